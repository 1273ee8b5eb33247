"""The two ways a command fails: bad input (exit 2) and a run that could not finish (exit 1).
Both carry one line for stderr; exit_code prints it and returns the status (0 ok, 1, 2, 130).
A run whose requests failed or that stalled is a VerdictError (1; --accept-failures: 0). Anything else
is one line too: an OSError (a folder not writable, a full disk) says what and where; any other
exception is a bug, its traceback in .asgibench/last-error.log (inside a run: the run's error.log).
A new kind of failure is a subclass here with its exit_code, mapped once in exit_code."""
import os
import sys


class AsgibenchError(Exception):
    exit_code = 1


class UsageError(AsgibenchError):
    """The user asked for something that does not exist or makes no sense (unknown variant, bad number)."""

    exit_code = 2


class RunError(AsgibenchError):
    """Something real failed: database unreachable, port taken, server died, contract broken."""

    exit_code = 1


class VerdictError(RunError):
    """The run completed and was recorded, but requests failed or it stalled (exit 1)."""


def exit_code(fn, *args) -> int:
    """Run a command function and map how it ends to the exit status, with one line on stderr:
    its return value (0), an AsgibenchError (its exit_code: 1 or 2), Ctrl-C / SIGTERM (130), or a
    reader that went away (`... | head`: 0). Shared by the CLI and the compose locust-master."""
    try:
        return fn(*args)
    except AsgibenchError as e:
        print(f"asgibench: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("\nasgibench: interrupted; everything started was stopped, partial results kept", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; the run itself finished and was cleaned up
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:  # outside a run's record (runmeta.recorded names the run): a folder, a full disk
        print(f"asgibench: error: {describe(e)}", file=sys.stderr)
        return 1
    except Exception as e:  # a bug: one line, the traceback in a file
        log = _save_traceback()
        print(f"asgibench: internal error: {describe(e)}" + (f" (traceback in {log})" if log else ""),
              file=sys.stderr)
        return 1


def describe(e: BaseException) -> str:
    """One line for an exception: an OSError says what it could not do to which file."""
    if isinstance(e, OSError) and e.strerror:
        return f"{e.filename}: {e.strerror}" if e.filename else e.strerror
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


LAST_ERROR_LOG = ".asgibench/last-error.log"  # under the checkout: an error outside any run folder


def _save_traceback() -> str | None:
    import traceback

    from asgibench import ROOT

    path = ROOT / LAST_ERROR_LOG
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(traceback.format_exc())
    except OSError:
        return None
    return str(path)
