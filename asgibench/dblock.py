"""Sharing the embedded PostgreSQL between asgibench processes of one checkout: one lock, one lease per user.

- ClusterLock: flock(2) on <pg dir>/lock around every lifecycle step (initdb, start, stop, reset, taking and
  dropping a lease). The kernel drops a flock when its holder dies, SIGKILL included, so a crashed run never
  blocks the next one; a live holder is waited for, bounded (`timeout`), and named when the wait gives up
  (the holder writes its pid and command into the file). Re-entrant within one process.
- Leases: <pg dir>/users/<pid>-<start>-<n>.json, one per open Database. A lease is live while its process
  is: the same pid AND the same start time (/proc/<pid>/stat), so a recycled pid does not count; anything
  else (process gone, zombie, pid reused, unreadable file) is stale: ignored, and removed under the lock.
Linux only (/proc), like the rest of the suite's process handling.
"""
from __future__ import annotations

import fcntl
import itertools
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from asgibench.errors import RunError

LOCK_TIMEOUT_S = 180.0  # longer than the slowest step under the lock (pg_ctl start/stop wait up to 60 s each)


# -- processes -----------------------------------------------------------------------------------

def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, ppid, start time in clock ticks) of a process, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            raw = fh.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    try:
        return fields[0], int(fields[1]), int(fields[19])
    except (IndexError, ValueError):
        return None


def process_start(pid: int) -> int | None:
    """The start time of a live (non-zombie) process, None when it is gone."""
    st = proc_stat(pid)
    if st is None or st[0] in ("Z", "X"):
        return None
    return st[2]


def pid_alive(pid: int | None) -> bool:
    return bool(pid) and process_start(pid) is not None


def command_of(pid: int, limit: int = 160) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
    except OSError:
        return "?"
    # `python -m asgibench bench x` and `.venvs/runner/bin/asgibench bench x` both read as `asgibench bench x`
    for i, a in enumerate(argv):
        if (a == "asgibench" and i > 0 and argv[i - 1] == "-m") or os.path.basename(a) == "asgibench":
            argv = ["asgibench"] + argv[i + 1:]
            break
    text = " ".join(" ".join(argv).split())  # one line, whatever a `python -c` script holds
    return text if len(text) <= limit else text[: limit - 3] + "..."


# -- the lock ------------------------------------------------------------------------------------

_local = threading.Lock()
_held: dict[str, list] = {}  # path -> [threading.RLock, depth, fd]


class ClusterLock:
    """An exclusive flock on `path`, waited for at most `timeout` seconds (then RunError naming the holder)."""

    def __init__(self, path: Path, timeout: float = LOCK_TIMEOUT_S, what: str = "the embedded PostgreSQL"):
        self.path, self.timeout, self.what = Path(path), timeout, what

    def __enter__(self):
        key = str(self.path)
        with _local:
            entry = _held.setdefault(key, [threading.RLock(), 0, None])
        if not entry[0].acquire(timeout=self.timeout):
            raise RunError(f"{self.what}: another thread of this process has held {self.path} for over "
                           f"{self.timeout:g} s")
        if entry[1] == 0:
            try:
                entry[2] = self._flock()
            except BaseException:
                entry[0].release()
                raise
        entry[1] += 1
        return self

    def __exit__(self, *exc):
        entry = _held[str(self.path)]
        entry[1] -= 1
        if entry[1] == 0:
            fd, entry[2] = entry[2], None
            try:
                os.ftruncate(fd, 0)
            except OSError:
                pass
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        entry[0].release()

    def _flock(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self.holder() or "another process"
                    os.close(fd)
                    raise RunError(
                        f"{self.what} is busy: {holder} has held its lock ({self.path}) for over "
                        f"{self.timeout:g} s; wait for it to finish or stop it") from None
                time.sleep(0.05)
            except BaseException:
                os.close(fd)
                raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "command": command_of(os.getpid())}).encode(), 0)
        return fd

    def holder(self) -> str | None:
        """`pid N (command)` of the process that wrote the lock file last, if it is alive."""
        try:
            info = json.loads(self.path.read_text() or "{}")
            pid = int(info["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return f"pid {pid} ({info.get('command', '?')})" if pid_alive(pid) else None


# -- leases --------------------------------------------------------------------------------------

@dataclass
class Lease:
    path: Path
    pid: int
    start: int | None
    command: str
    opened_at: float
    info: dict

    @property
    def live(self) -> bool:
        return self.start is not None and process_start(self.pid) == self.start

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"

    def as_dict(self) -> dict:
        return {"pid": self.pid, "command": self.command, "since": round(self.opened_at, 3)}


_counter = itertools.count(1)


class Leases:
    """One file per user of the cluster in `folder`; take/drop/clean under the ClusterLock."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def take(self, **info) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        start = process_start(pid)
        path = self.folder / f"{pid}-{start}-{next(_counter)}.json"
        data = {"pid": pid, "start": start, "command": command_of(pid), "opened_at": time.time(), **info}
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, path)
        return path

    @staticmethod
    def drop(path: Path | None) -> None:
        if path is not None:
            try:
                Path(path).unlink()
            except FileNotFoundError:
                pass

    def all(self) -> list[Lease]:
        out = []
        try:
            paths = sorted(self.folder.glob("*.json"))
        except OSError:
            return out
        for p in paths:
            try:
                d = json.loads(p.read_text())
                out.append(Lease(p, int(d["pid"]), d.get("start"), str(d.get("command", "?")),
                                 float(d.get("opened_at", 0)), d))
            except FileNotFoundError:
                continue  # dropped while we looked
            except (OSError, ValueError, KeyError, TypeError):
                out.append(Lease(p, 0, None, "(unreadable lease)", 0.0, {}))  # garbage: stale
        return out

    def live(self, *, exclude_pid: int | None = None) -> list[Lease]:
        return [lease for lease in self.all() if lease.live and lease.pid != exclude_pid]

    def clean(self) -> list[Lease]:
        """Remove the stale leases (call under the lock); returns them. Leftover temporary files go too."""
        stale = [lease for lease in self.all() if not lease.live]
        for lease in stale:
            self.drop(lease.path)
        try:
            for tmp in self.folder.glob("*.tmp"):
                if time.time() - tmp.stat().st_mtime > 60:
                    self.drop(tmp)
        except OSError:
            pass
        return stale


def describe_users(leases: list[Lease], limit: int = 3) -> str:
    shown = ", ".join(lease.describe() for lease in leases[:limit])
    return shown + (f" and {len(leases) - limit} more" if len(leases) > limit else "")
