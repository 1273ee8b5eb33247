"""Child processes the suite starts: each in its own session (process group), tagged with the
invocation's ASGIBENCH_RUN_TAG, stopped by PID / process group only — never by name. And the
process-level guard of an asgibench command (run_as_main): signals that reach the clean-up, the
exit status, and a sweep for anything tagged that outlived it.

Every new child process goes through spawn (tag, session, log) and is stopped with stop."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

from asgibench import errors

# Every process this invocation starts carries this tag in its environment, so a test (or a
# curious user) can prove that nothing was left behind: see `tagged_pids`.
RUN_TAG = os.environ.get("ASGIBENCH_RUN_TAG") or uuid.uuid4().hex[:12]


def child_env(extra: dict | None = None) -> dict:
    env = dict(os.environ)
    env["ASGIBENCH_RUN_TAG"] = RUN_TAG
    env.update(extra or {})
    return env


def spawn(cmd, *, log_path=None, env=None, cwd=None, cpus=None) -> subprocess.Popen:
    """Start cmd in a new session so a Ctrl-C on the terminal reaches us, not it, and so the whole
    group (gunicorn master + workers, locust + its processes) can be stopped at once."""
    if log_path:
        os.makedirs(os.path.dirname(log_path), exist_ok=True)
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(
            [str(c) for c in cmd],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env(env),
            cwd=cwd,
            start_new_session=True,
        )
    finally:
        if log_path:
            out.close()
    if cpus:
        pin(proc.pid, cpus)
    return proc


def pin(pid: int, cpus) -> None:
    """CPU placement: children inherit the affinity, so pinning the group leader right after the
    fork covers the workers it starts (it has not started them yet)."""
    try:
        os.sched_setaffinity(pid, set(cpus))
    except (OSError, AttributeError):
        pass


def pin_tree(pid: int | None, cpus) -> None:
    """Pin a running process and its current children (e.g. the postmaster and its backends);
    processes it forks later inherit the affinity."""
    import psutil

    if not pid:
        return
    try:
        root = psutil.Process(pid)
        for p in [root] + root.children(recursive=True):
            pin(p.pid, cpus)
    except psutil.Error:
        pass


def stop(proc: subprocess.Popen | None, *, grace: float = 10.0, sig=signal.SIGTERM) -> int | None:
    """Stop a process we started and everything in its process group; returns its exit code."""
    if proc is None:
        return None
    if proc.poll() is None:
        _signal_group(proc.pid, sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait(5)
    # The leader may be gone while workers of its group linger (e.g. leader SIGKILLed): kill them
    # and wait until they are gone (SIGKILL is delivered asynchronously).
    if _group_alive(proc.pid):
        _signal_group(proc.pid, signal.SIGKILL)
        wait_until(lambda: not _group_alive(proc.pid), 5.0)
    return proc.returncode


def _signal_group(pgid: int, sig) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def tagged_pids(tag: str = RUN_TAG) -> list[int]:
    """PIDs of live processes carrying our run tag (Linux /proc)."""
    found = []
    needle = f"ASGIBENCH_RUN_TAG={tag}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.append(int(entry))
        except OSError:
            continue
    return found


def describe(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return f"{pid} " + fh.read().replace(b"\0", b" ").decode(errors="replace")[:100].strip()
    except OSError:
        return str(pid)


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM: the same clean-up path as Ctrl-C


def run_as_main(fn, *args) -> int:
    """An asgibench process's command: SIGTERM and SIGINT raise KeyboardInterrupt (so every `with`
    stops what it started), errors.exit_code maps how it ends, and then nothing this invocation
    started may outlive it (the CLI and `python -m asgibench.compose`; never inside a test process)."""
    signal.signal(signal.SIGTERM, _terminate)
    # Ctrl-C must reach our clean-up even when started from a shell that ignores SIGINT (`cmd &`).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return errors.exit_code(fn, *args)
    finally:
        sweep_leftovers()


def sweep_leftovers() -> None:
    """Belt and braces: kill what carries our run tag. Finding anything here is a clean-up bug, so
    say so (the tests assert this line never appears)."""
    left = tagged_pids()
    names = [describe(pid) for pid in left]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if left:
        print(f"asgibench: warning: killed {len(left)} leftover process(es): {names}", file=sys.stderr)
