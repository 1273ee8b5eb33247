"""The two ways a command fails: bad input (exit 2) and a run that could not finish (exit 1).
Both carry one line for stderr; exit_code prints it and returns the status (0 ok, 1, 2, 130).
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
