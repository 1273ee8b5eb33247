"""The embedded cluster's folder (ASGIBENCH_PG_DIR, default .asgibench/pg) and what is in it, read without
starting or stopping anything: its paths, the PostgreSQL binaries (find_pg_bin), the state file (who
started the running server, whether it is kept), the leases' bookkeeping, postmaster.pid, the PostgreSQL
processes working in it (/proc), and the damage checks.

ClusterFolder is the base of cluster.EmbeddedCluster, which starts and stops the server. A new question
about what is on disk or running goes here; a new action on the server, in cluster.py.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

from asgibench.database.common import RESET_HINT, pg_dir
from asgibench.database.lock import LOCK_TIMEOUT_S, ClusterLock, Leases, pid_alive, proc_stat
from asgibench.errors import RunError
from asgibench.files import write_json_atomic

# What initdb leaves and a server cannot start without.
ESSENTIAL = ("PG_VERSION", "base", "global", "global/pg_control", "pg_wal", "postgresql.conf")


def find_pg_bin() -> Path:
    cands = []
    if os.environ.get("PG_BIN"):
        cands.append(os.environ["PG_BIN"])
    if shutil.which("pg_config"):
        res = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        cands.append(res.stdout.strip())
    cands += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    if shutil.which("initdb"):
        cands.append(str(Path(shutil.which("initdb")).parent))
    for c in cands:
        if c and (Path(c) / "initdb").exists() and (Path(c) / "pg_ctl").exists():
            return Path(c)
    raise RunError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL "
        "(e.g. `apt-get install postgresql`), set PG_BIN to their folder, or set DATABASE_URL"
    )


def _version_key(path: str):
    part = path.split("/")[-2]
    return int(part) if part.isdigit() else 0


class ClusterFolder:
    """The embedded cluster's folder `base` (default pg_dir()) and what is in it; its lock and leases."""

    def __init__(self, base: Path | None = None):
        self.base = base or pg_dir()
        self.data = self.base / "data"
        self.run_dir = self.base / "run"
        self.state_file = self.base / "cluster.json"
        self.log = self.base / "postgres.log"
        self.lock_file = self.base / "lock"
        self.leases = Leases(self.base / "users")
        self._bin: Path | None = None
        self._bin_major: str | None = None

    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = find_pg_bin()
        return self._bin

    def lock(self, timeout: float = LOCK_TIMEOUT_S) -> ClusterLock:
        return ClusterLock(self.lock_file, timeout, what=f"the embedded PostgreSQL in {self.base}")


    # -- state: who started the running server, and whether it is kept -------------------------
    def read_state(self) -> dict:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}
        return state if isinstance(state, dict) else {}

    def write_state(self, state: dict) -> None:
        write_json_atomic(self.state_file, state, indent=None)

    def clear_state(self) -> None:
        try:
            self.state_file.unlink()
        except FileNotFoundError:
            pass

    def clean_leases(self) -> dict:
        """Drop stale leases (under the lock). A starter that left without releasing (--keep-db, `db start`,
        a crash) leaves its cluster kept, as it did before sharing. Returns the (updated) state."""
        state = self.read_state()
        starter = self._starter_gone(state, self.leases.clean())
        if starter and not state.get("kept"):
            state = {**state, "kept": True,
                     "kept_because": f"its starter ({starter.describe()}) left without releasing it"}
            self.write_state(state)
        return state

    @staticmethod
    def _starter_gone(state: dict, stale: list):
        """The stale lease of the process that started the running server, if it is among `stale`."""
        if state.get("started") is None:
            return None
        return next((lease for lease in stale
                     if lease.info.get("started_cluster") and lease.info.get("cluster") == state["started"]), None)

    # -- what is there -------------------------------------------------------------------------
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

    def pidfile(self) -> dict | None:
        """postmaster.pid: None when absent, {} when unreadable, else {"pid", "port", "status"}."""
        try:
            lines = (self.data / "postmaster.pid").read_text().splitlines()
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError):
            return {}
        try:
            return {"pid": int(lines[0]), "port": int(lines[3]),
                    "status": lines[7].strip() if len(lines) > 7 else ""}
        except (IndexError, ValueError):
            return {}

    @staticmethod
    def _is_postgres(pid: int | None) -> bool:
        if not pid_alive(pid):
            return False
        try:
            with open(f"/proc/{pid}/comm") as fh:
                return fh.read().strip() in ("postgres", "postmaster")
        except OSError:
            return False

    def processes(self) -> dict[int, bool]:
        """Live PostgreSQL processes working in this data folder (deleted or not): {pid: is_postmaster}.
        Found through /proc (their working directory is the data folder), so also without a postmaster.pid."""
        real = os.path.realpath(self.data)
        wanted = {real, real + " (deleted)"}
        found: dict[int, tuple[int, bool]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/comm") as fh:
                    if fh.read().strip() not in ("postgres", "postmaster"):
                        continue
                if os.readlink(f"/proc/{entry}/cwd") not in wanted:
                    continue
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    titled = fh.read().startswith(b"postgres:")  # children set their title; the postmaster does not
            except OSError:
                continue
            st = proc_stat(int(entry))
            if st and st[0] not in ("Z", "X"):
                found[int(entry)] = (st[1], not titled)
        return {pid: not_titled and ppid not in found for pid, (ppid, not_titled) in found.items()}

    def postmasters(self) -> list[int]:
        return sorted(pid for pid, is_pm in self.processes().items() if is_pm)

    def running_port(self) -> int | None:
        """Port of a postmaster already running on this data dir (e.g. left by --keep-db), else None."""
        pf = self.pidfile()
        if pf and self._is_postgres(pf["pid"]):
            return pf["port"]
        return None  # none, unreadable or stale (its pid gone or reused)

    def pid(self) -> int | None:
        pf = self.pidfile()
        return pf["pid"] if pf else None

    def binaries_major(self) -> str | None:
        if self._bin_major is None:
            res = subprocess.run([str(self.bin / "pg_ctl"), "--version"], capture_output=True, text=True)
            m = re.search(r"\)\s+(\d+)", res.stdout)
            self._bin_major = m.group(1) if m else ""
        return self._bin_major or None

    def damage(self, check_version: bool = True) -> str | None:
        """What is wrong with a data folder that is neither absent nor empty, else None."""
        try:
            entries = os.listdir(self.data)
        except FileNotFoundError:
            return None
        except OSError as e:
            return f"unreadable: {e.strerror}"
        if not entries:
            return None
        if not (self.data / "PG_VERSION").exists():
            return "it holds files but no PostgreSQL cluster: PG_VERSION is missing"
        missing = [n for n in ESSENTIAL if not (self.data / n).exists()]
        if missing:
            return f"{', '.join(missing)} missing"
        if check_version:
            version = (self.data / "PG_VERSION").read_text(errors="replace").strip()
            binaries = self.binaries_major()
            if binaries and version != binaries:
                return (f"initialised by PostgreSQL {version}, but the binaries in {self.bin} are PostgreSQL "
                        f"{binaries} (or set PG_BIN to PostgreSQL {version}'s)")
        return None

    def _damaged(self, detail: str) -> RunError:
        return RunError(f"the embedded PostgreSQL's data folder {self.data} is damaged ({detail}): {RESET_HINT}")
