"""Database step: a PostgreSQL ready for the run, migrated by Django and seeded.

Either the user's (DATABASE_URL) or the embedded cluster asgibench owns: initdb'd once into
.asgibench/pg (ASGIBENCH_PG_DIR), started on a free 127.0.0.1 port with its socket in that folder,
kept between runs (data and seed), stopped when the last asgibench process using it leaves.
PostgreSQL refuses to run as root: as root, the cluster is owned and run by the `postgres` user.
A new server setting goes in SETTINGS (the embedded cluster and compose/compose.yaml both use it);
a new input of the seed, in SEED_INPUTS (a change reseeds).

Sharing (dblock): asgibench processes of one checkout share the embedded cluster. Its lifecycle steps
(initdb, start, stop, reset) run under one flock; every open Database holds a lease. The last user to
leave (Database.release) stops a cluster an asgibench run started; a kept one stays up until `db stop`:
started or joined with keep=True (`db start`, --keep-db), or whose starter left without releasing it
(--keep-db today, or a crash), as before sharing. `db stop` / `db reset` (stop_cluster, reset_cluster)
refuse while another process uses it, unless forced. Seeding runs under a PostgreSQL advisory lock, and
a reseed is refused while another process uses the cluster.

Faults: every one is one RunError line saying what to do. A data folder deleted, or a postmaster.pid
removed, under a running server; a damaged data folder (reset_cluster); a server that does not answer.
Recovered by themselves: leases and locks of dead processes, a stale or unreadable postmaster.pid with
no server on the folder, a killed server (its leftover backends are waited for, then it is started).
Database.gone() / alive() check a database during a run; BackendSampler remembers losing it.
"""
from __future__ import annotations

import glob
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from asgibench import ROOT, apps
from asgibench.dblock import (
    LOCK_TIMEOUT_S,
    ClusterLock,
    Leases,
    describe_users,
    pid_alive,
    proc_stat,
    process_start,
)
from asgibench.errors import RunError
from asgibench.files import last_line, write_json_atomic

DB_NAME = "asgibench"
DB_USER = "asgibench"
# Sized for the largest preset (asgi-with-static-gunicorn-w18: 18 workers x pool 4 = 72, and
# persistent-connection ASGI rows that open one connection per request thread) with room to spare.
SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    # Logins write a session row per iteration; don't make them wait for fsync (reads dominate anyway).
    "synchronous_commit": "off",
}

STOP_HINT = "`make db-stop` (asgibench db stop) stops it"
RESET_HINT = ("`make db-reset` (asgibench db reset) stops it and deletes its data; the next run initialises a "
              "fresh cluster and reseeds it")
# What initdb leaves and a server cannot start without.
ESSENTIAL = ("PG_VERSION", "base", "global", "global/pg_control", "pg_wal", "postgresql.conf")
READY_TIMEOUT_S = 30.0  # a running server that does not accept connections within this is reported
LEFTOVER_TIMEOUT_S = 10.0  # backends of a killed postmaster exit by themselves within this
SEED_LOCK_KEY = 0x61736762  # pg_advisory_lock key of migrate + seed ("asgb")
SEED_LOCK_TIMEOUT_S = 900.0


def pg_dir() -> Path:
    return Path(os.environ.get("ASGIBENCH_PG_DIR") or ROOT / ".asgibench" / "pg")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


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


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def _still_answering(e: BaseException) -> bool:
    """A refusal that proves the server is up (it answered), not gone."""
    msg = str(e)
    return "too many clients" in msg or "remaining connection slots" in msg


@dataclass
class Database:
    """A PostgreSQL the run can use. `embedded` is None for DATABASE_URL.

    For the embedded cluster: `lease` is this user's lease (None once released), `postmaster` the
    (pid, start time) of the server it opened, `others_at_open` the other asgibench processes that
    were using the cluster then, `notes` what open_database recovered by itself."""

    url: str
    embedded: "EmbeddedCluster | None" = None
    started_here: bool = False
    settings: dict = field(default_factory=dict)
    lease: Path | None = None
    postmaster: tuple[int, int | None] | None = None
    others_at_open: list = field(default_factory=list)
    notes: list = field(default_factory=list)

    def connect(self, **kw) -> psycopg.Connection:
        return psycopg.connect(self.url, connect_timeout=5, autocommit=True, **kw)

    # -- health --------------------------------------------------------------------------------
    def server_gone(self) -> str | None:
        """The cheap part of gone(), no connection: the embedded server this Database opened has exited,
        was replaced, or its data folder vanished. Always None for DATABASE_URL."""
        c = self.embedded
        if c is None or self.postmaster is None:
            return None
        pid, start = self.postmaster
        if process_start(pid) != start:
            return f"the embedded PostgreSQL (postmaster pid {pid}) is gone"
        if not (c.data / "PG_VERSION").exists():
            return f"the embedded PostgreSQL's data folder {c.data} is gone (its server, pid {pid}, still runs)"
        pf = c.pidfile()
        if pf is None or (pf and pf["pid"] != pid):  # ({} is a file being rewritten: no verdict)
            return (f"the embedded PostgreSQL's postmaster.pid no longer names its server (pid {pid}, now "
                    f"{pf['pid'] if pf else 'none'}): it was stopped or replaced")
        return None

    def gone(self, timeout: float = 2.0) -> str | None:
        """None while the database answers; else one line saying why it does not. Embedded: the postmaster
        alive (same process) and accepting connections; DATABASE_URL: a connection within `timeout` s.
        A server refusing with "too many clients" is alive."""
        reason = self.server_gone()
        if reason:
            return reason
        try:
            with psycopg.connect(self.url, connect_timeout=max(2, round(timeout)), autocommit=True) as conn:
                conn.execute("select 1")
        except psycopg.Error as e:
            if _still_answering(e):
                return None
            # A dying server closes its sockets before /proc shows it gone: give the precise reason if it comes.
            if self.embedded and _wait(lambda: self.server_gone() is not None, 1.0, 0.05):
                return self.server_gone()
            return f"database unreachable at {_redact(self.url)}: {_first_line(e)}"
        return None

    def alive(self, timeout: float = 2.0) -> bool:
        return self.gone(timeout) is None

    # -- sharing -------------------------------------------------------------------------------
    def users_now(self) -> list[dict]:
        """The other asgibench processes using the embedded cluster now (empty for DATABASE_URL)."""
        if self.embedded is None:
            return []
        return [lease.as_dict() for lease in self.embedded.leases.live(exclude_pid=os.getpid())]

    def sharing_note(self) -> str | None:
        """One line for the console when other asgibench processes were on the cluster at open, else None."""
        if not self.others_at_open:
            return None
        return (f"the embedded PostgreSQL is shared with {_users_text(self.others_at_open)}: its load competes "
                "for the same CPUs (recorded in meta.json)")

    def describe(self) -> dict:
        """What meta.json records. Never raises for a database that went away: `error` says why."""
        info = {
            "kind": "embedded" if self.embedded else "external (DATABASE_URL)",
            "url": _redact(self.url),
            "server_version": None,
            "settings": {},
            "data_dir": str(self.embedded.data) if self.embedded else None,
            "started_by_this_run": self.started_here,
        }
        if self.embedded:
            info.update({
                "postmaster_pid": self.postmaster[0] if self.postmaster else None,
                "other_users_at_start": len(self.others_at_open),
                "other_users": self.others_at_open,
                "other_users_now": len(self.users_now()),
            })
            if self.notes:
                info["recovered"] = self.notes
        try:
            with psycopg.connect(self.url, connect_timeout=3, autocommit=True) as c:
                info["server_version"] = c.execute("show server_version").fetchone()[0]
                info["settings"] = {
                    k: c.execute(f"show {k}").fetchone()[0]
                    for k in ("max_connections", "shared_buffers", "synchronous_commit", "fsync", "work_mem")
                }
        except psycopg.Error as e:
            info["error"] = self.server_gone() or _first_line(e)
        return info

    # -- leaving -------------------------------------------------------------------------------
    def release(self, keep: bool = False) -> bool:
        """Leave the embedded cluster: drop this lease. keep=True marks the cluster kept (it stays up until
        `db stop`). Otherwise the last user to leave stops it when an asgibench run started it and nobody
        kept it. Returns whether it stopped it. Idempotent; nothing to do for DATABASE_URL."""
        c = self.embedded
        if c is None or self.lease is None:
            return False
        with c.lock():
            c.leases.drop(self.lease)
            self.lease = None
            state = c.clean_leases()
            if keep:
                if state:
                    c.write_state({**state, "kept": True, "kept_because": "kept on request"})
                return False
            if c.leases.live() or not state or state.get("kept"):
                return False
            pf = c.pidfile()
            if not pf or pf["pid"] != state.get("pid"):
                return False  # not the server asgibench started (stopped already, or started by hand)
            return c.stop()

    def stop_if_started(self) -> None:
        """The name callers know: release(), i.e. stop the cluster if this is its last user and a run started it."""
        self.release()


def _users_text(users: list[dict], limit: int = 3) -> str:
    shown = ", ".join(f"pid {u['pid']} ({u['command']})" for u in users[:limit])
    return shown + (f" and {len(users) - limit} more" if len(users) > limit else "")


def _redact(url: str) -> str:
    u = urlparse(url)
    if u.password:
        return url.replace(f":{u.password}@", ":***@")
    return url


class EmbeddedCluster:
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

    # -- privileges: PostgreSQL refuses root ---------------------------------------------------
    @staticmethod
    def _env() -> dict:
        # PostgreSQL outlives a run when kept (--keep-db, `db start`): it is not one of the run's
        # tagged children, pg_ctl owns its lifecycle.
        return {k: v for k, v in os.environ.items() if k != "ASGIBENCH_RUN_TAG"}

    def _as_owner(self, cmd) -> list[str]:
        if os.geteuid() != 0:
            return [str(c) for c in cmd]
        return ["runuser", "-u", "postgres", "--"] + [str(c) for c in cmd]

    def _chown(self, *paths: Path) -> None:
        if os.geteuid() != 0:
            return
        try:
            pw = pwd.getpwnam("postgres")
        except KeyError:
            raise RunError(
                "running as root and no `postgres` user exists: PostgreSQL refuses root; "
                "create one (useradd postgres) or set DATABASE_URL"
            ) from None
        for p in paths:
            os.chown(p, pw.pw_uid, pw.pw_gid)

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

    # -- lifecycle -------------------------------------------------------------------------------
    def init(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        self._chown(self.base, self.run_dir)
        if os.geteuid() == 0:
            probe = subprocess.run(self._as_owner(["test", "-w", self.base]))
            if probe.returncode != 0:
                raise RunError(
                    f"the postgres user cannot write {self.base} (a parent folder is not reachable): "
                    "set ASGIBENCH_PG_DIR to a folder it can reach, or DATABASE_URL"
                )
        res = subprocess.run(
            self._as_owner(
                [self.bin / "initdb", "-D", self.data, "-U", DB_USER, "--auth=trust", "-E", "UTF8",
                 "--locale=C.UTF-8", "--no-sync"]
            ),
            capture_output=True,
            text=True,
            env=self._env(),
        )
        if res.returncode != 0:
            raise RunError(f"initdb failed: {last_line(res.stderr, res.stdout)}")

    def ensure_running(self, keep: bool = False) -> tuple[int, bool, list[str]]:
        """Under the lock: (port, started by this call, what was recovered). Initialises an absent cluster,
        refuses (one line) what it must not touch, starts a stopped one."""
        notes: list[str] = []
        if not self.initialised():
            pms = self.postmasters()
            if pms:
                raise RunError(
                    f"the embedded PostgreSQL's data folder {self.data} was deleted while its server (postmaster "
                    f"pid {pms[0]}) still runs: {STOP_HINT}; the next run then initialises a fresh cluster")
            detail = self.damage()
            if detail:
                raise self._damaged(detail)
            self.init()
        pf = self.pidfile()
        if pf and self._is_postgres(pf["pid"]) and pf["status"] == "stopping":
            _wait(lambda: not self._is_postgres(pf["pid"]), 60)
            pf = self.pidfile()
        if pf and self._is_postgres(pf["pid"]):
            detail = self.damage(check_version=False)
            if detail:
                raise self._damaged(f"{detail}, under its running server pid {pf['pid']}")
            self._wait_ready(pf["port"], pf["pid"])
            return pf["port"], False, notes
        pms = self.postmasters()
        if pms:
            what = "gone" if pf is None else "unreadable" if not pf else f"stale (pid {pf['pid']})"
            raise RunError(
                f"a PostgreSQL server (postmaster pid {pms[0]}) runs on {self.data} but its postmaster.pid is "
                f"{what}: a second server on the same files would corrupt them; {STOP_HINT}, then retry")
        detail = self.damage()
        if detail:
            raise self._damaged(detail)
        self._await_leftovers()
        if pf is not None:
            # No server works in this folder (checked above): the file is a leftover (a crash, a kill).
            (self.data / "postmaster.pid").unlink(missing_ok=True)
            notes.append("removed an unreadable postmaster.pid" if not pf else
                         f"removed a stale postmaster.pid (pid {pf['pid']} was gone)")
        return self.start(keep=keep), True, notes

    def start(self, keep: bool = False) -> int:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.run_dir)
        self.log.touch()
        self._chown(self.log)
        for attempt in (1, 2):
            port = free_port()
            opts = [
                "-c listen_addresses=127.0.0.1",
                f"-c port={port}",
                f"-c unix_socket_directories={self.run_dir}",
            ] + [f"-c {k}={v}" for k, v in SETTINGS.items()]
            log_size = self.log.stat().st_size
            try:
                res = subprocess.run(
                    self._as_owner([self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                                    "-o", " ".join(opts), "start"]),
                    capture_output=True,
                    text=True,
                    env=self._env(),
                )
            except BaseException:  # Ctrl-C while pg_ctl waits: its server (in a session of its own) lives on
                try:
                    self.stop()
                except Exception:
                    pass
                raise
            if res.returncode == 0:
                break
            with open(self.log, errors="replace") as fh:
                fh.seek(log_size)
                tail = last_line(fh.read(), res.stderr, res.stdout)
            if attempt == 1 and "could not bind" in tail:
                continue  # someone took the free port between our check and the server's bind
            raise RunError(f"embedded PostgreSQL failed to start: {tail} (log: {self.log}); if its data folder "
                           f"is damaged, {RESET_HINT}")
        pid = self.pid()
        write_json_atomic(self.state_file, {
            "port": port, "started": time.time(), "pid": pid, "kept": keep,
            "kept_because": "started with keep" if keep else None,
            "started_by": {"pid": os.getpid(), "start": process_start(os.getpid())}}, indent=None)
        return port

    def _wait_ready(self, port: int, pid: int) -> None:
        """A running server accepts connections (it may be starting, or recovering after a crash)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(admin_url(port), connect_timeout=3, autocommit=True) as c:
                    c.execute("select 1")
                return
            except psycopg.Error as e:
                if not self._is_postgres(pid):
                    raise RunError(f"the embedded PostgreSQL (postmaster pid {pid}) exited: {_first_line(e)}; "
                                   "retry (the next run starts it)") from None
                if time.monotonic() >= deadline:
                    raise RunError(
                        f"the embedded PostgreSQL (postmaster pid {pid}, port {port}) runs but has not accepted a "
                        f"connection in {READY_TIMEOUT_S:.0f} s: {_first_line(e)}; {STOP_HINT}, then retry") from None
                time.sleep(0.2)

    def _await_leftovers(self) -> None:
        """Backends of a killed postmaster exit by themselves (they notice its death); a new server cannot
        start while they hold its shared memory. Wait, then ask them to quit, then give up naming them."""
        if _wait(lambda: not self.processes(), LEFTOVER_TIMEOUT_S):
            return
        for pid in self.processes():
            _signal(pid, signal.SIGQUIT)
        if not _wait(lambda: not self.processes(), 5):
            pids = ", ".join(map(str, sorted(self.processes())))
            raise RunError(f"PostgreSQL processes {pids} still work in {self.data} without their server; "
                           "stop them, then retry")

    def stop(self, mode: str = "fast") -> bool:
        """Stop the server on this data folder (under the lock): pg_ctl when postmaster.pid names it, else by
        signal to the postmaster found in /proc (pid file gone, data folder deleted). True if one ran."""
        stopped = False
        pf = self.pidfile()
        if pf and self._is_postgres(pf["pid"]):
            subprocess.run(
                self._as_owner([self.bin / "pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop"]),
                capture_output=True,
                env=self._env(),
            )
            stopped = True
        pms = self.postmasters()
        if pms:
            stopped = True
            gentle = signal.SIGINT if mode == "fast" and self.initialised() else signal.SIGQUIT
            for sig, wait_s in ((gentle, 30), (signal.SIGQUIT, 10), (signal.SIGKILL, 5)):
                for pid in pms:
                    _signal(pid, sig)
                if _wait(lambda: not self.postmasters(), wait_s):
                    break
            if self.postmasters():
                raise RunError(f"the embedded PostgreSQL (postmaster pid {self.postmasters()[0]}) does not stop")
        if stopped:
            self.clear_state()
        return stopped


def _signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def url_for(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def admin_url(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"


def open_database(keep: bool = False) -> Database:
    """DATABASE_URL if set (checked reachable), else the embedded cluster (initdb'd / started as needed),
    shared with the other asgibench processes of this checkout: the returned Database holds a lease until
    release(). keep=True (`db start`, --keep-db): the cluster stays up after its last user leaves."""
    url = os.environ.get("DATABASE_URL")
    if url:
        u = urlparse(url)
        if u.scheme not in ("postgres", "postgresql") or not u.path.strip("/"):
            raise RunError(f"DATABASE_URL must look like postgresql://user@host:port/dbname, got {_redact(url)}")
        db = Database(url=url)
        try:
            db.connect().close()
        except psycopg.Error as e:
            raise RunError(f"database unreachable at {_redact(url)}: {str(e).strip().splitlines()[0]}") from None
        return db
    cluster = EmbeddedCluster()
    with cluster.lock():
        cluster.clean_leases()
        port, started, notes = cluster.ensure_running(keep=keep)
        state = cluster.read_state()
        if keep and state and not state.get("kept"):
            state = {**state, "kept": True, "kept_because": "kept on request"}
            cluster.write_state(state)
        try:
            _create_database(port)
        except BaseException:
            if started:
                cluster.stop()
            raise
        pid = cluster.pid()
        others = [lease.as_dict() for lease in cluster.leases.live(exclude_pid=os.getpid())]
        lease = cluster.leases.take(started_cluster=started, cluster=state.get("started"), port=port)
    return Database(url=url_for(port), embedded=cluster, started_here=started, lease=lease,
                    postmaster=(pid, process_start(pid)) if pid else None, others_at_open=others, notes=notes)


def _create_database(port: int) -> None:
    try:
        with psycopg.connect(admin_url(port), autocommit=True, connect_timeout=5) as c:
            if not c.execute("select 1 from pg_database where datname = %s", (DB_NAME,)).fetchone():
                c.execute(f'create database "{DB_NAME}"')
    except psycopg.Error as e:
        raise RunError(f"embedded PostgreSQL on port {port}: creating database {DB_NAME} failed: "
                       f"{_first_line(e)}") from None


def stop_cluster(force: bool = False) -> str:
    """`db stop`: stop the embedded cluster unless another asgibench process uses it (force=True stops it
    anyway: that run loses its database). Returns the line to print; RunError when refused."""
    cluster = EmbeddedCluster()
    with cluster.lock():
        cluster.clean_leases()
        users = cluster.leases.live(exclude_pid=os.getpid())
        port = cluster.running_port()
        pms = cluster.postmasters()
        if port is None and not pms:
            cluster.clear_state()
            return f"embedded PostgreSQL is not running ({cluster.data})"
        if users and not force:
            raise RunError(f"the embedded PostgreSQL is in use by {describe_users(users)}: stopping it would pull "
                           "the database from under that run; wait for it to finish, or `asgibench db stop --force`")
        cluster.stop()
    where = f"port {port}" if port else f"postmaster pid {pms[0]}, without its postmaster.pid or data folder"
    lost = f"; {describe_users(users)} lost it" if users else ""
    return f"embedded PostgreSQL stopped (was on {where}){lost}"


def reset_cluster(force: bool = False) -> str:
    """`db reset`: stop the embedded cluster and delete its data folder (the next run initialises a fresh one
    and reseeds it). Refused while another asgibench process uses it, unless force=True."""
    cluster = EmbeddedCluster()
    with cluster.lock():
        cluster.clean_leases()
        users = cluster.leases.live(exclude_pid=os.getpid())
        if users and not force:
            raise RunError(f"the embedded PostgreSQL is in use by {describe_users(users)}: resetting it would pull "
                           "the database from under that run; wait for it to finish, or `asgibench db reset --force`")
        data = cluster.data
        if data.exists() and not data.is_dir():
            raise RunError(f"{data} is not a folder: not deleting it; remove it yourself")
        if data.exists() and os.listdir(data) and not any((data / n).exists() for n in (*ESSENTIAL, "postmaster.pid")):
            raise RunError(f"{data} does not look like a PostgreSQL data folder: not deleting it; check "
                           "ASGIBENCH_PG_DIR, or remove it yourself")
        cluster.stop(mode="immediate")  # its data is about to go: no checkpoint
        cluster._await_leftovers()
        if data.exists():
            shutil.rmtree(data)
        cluster.clear_state()
        cluster.leases.clean()
    return f"embedded PostgreSQL reset: deleted {data}; the next run initialises a fresh cluster and reseeds it"


def status_line() -> str:
    """`db status`: one line on the embedded cluster (running or not, kept or not, who uses it, damage)."""
    cluster = EmbeddedCluster()
    port = cluster.running_port()
    users = cluster.leases.live(exclude_pid=os.getpid())
    using = f"in use by {describe_users(users)}" if users else "no asgibench process uses it"
    if port:
        state = cluster.read_state()
        stale = [lease for lease in cluster.leases.all() if not lease.live]
        if not state or state.get("pid") != cluster.pid():
            life = "not started by an asgibench run: stays up until `db stop`"
        elif state.get("kept") or cluster._starter_gone(state, stale):
            life = "kept: stays up until `db stop`"
        else:
            life = "stopped when its last user leaves"
        return f"embedded PostgreSQL running on 127.0.0.1:{port} ({cluster.data}); {using}; {life}"
    pms = cluster.postmasters()
    if pms:
        return (f"embedded PostgreSQL: a server (postmaster pid {pms[0]}) runs on {cluster.data} without its "
                f"postmaster.pid or data folder: {STOP_HINT}")
    detail = cluster.damage(check_version=False) if cluster.data.exists() else None
    if detail:
        return f"embedded PostgreSQL not running; its data folder {cluster.data} is damaged ({detail}): {RESET_HINT}"
    return (f"embedded PostgreSQL not running ({'initialised' if cluster.initialised() else 'not initialised'} "
            f"at {cluster.data})")


# -- schema and seed (Django's migrations own the schema) ------------------------------------------

SEED_INPUTS = [
    apps.DJANGO_DIR / "circus" / "migrations",
    apps.DJANGO_DIR / "circus" / "management" / "commands" / "populate_test_db.py",
    apps.DJANGO_DIR / "circus" / "models.py",
]


def seed_fingerprint(scale: int) -> str:
    h = hashlib.sha256(f"scale={scale}".encode())
    for p in SEED_INPUTS:
        files = sorted(p.glob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]


@contextmanager
def _seed_lock(db: Database):
    """One migrate + seed at a time on a database, across processes (and machines, for DATABASE_URL):
    a PostgreSQL advisory lock, released by the server when its holder's connection goes."""
    with db.connect(application_name=f"asgibench seed (pid {os.getpid()})") as c:
        deadline = time.monotonic() + SEED_LOCK_TIMEOUT_S
        while not c.execute("select pg_try_advisory_lock(%s)", (SEED_LOCK_KEY,)).fetchone()[0]:
            if time.monotonic() >= deadline:
                holder = c.execute(
                    "select a.application_name, a.pid from pg_locks l join pg_stat_activity a using (pid) "
                    "where l.locktype = 'advisory' and l.objid = %s::oid and l.granted", (SEED_LOCK_KEY,)).fetchone()
                who = f"{holder[0] or 'a session'} (backend {holder[1]})" if holder else "another session"
                raise RunError(f"database: {who} has been migrating / seeding it for over "
                               f"{SEED_LOCK_TIMEOUT_S:g} s; wait for it, or stop it")
            time.sleep(0.2)
        yield


def prepare(db: Database, django_env, scale: int) -> dict:
    """Migrate, then seed unless the database already holds this scale of this schema. One process at a
    time; a reseed is refused while another asgibench process uses the embedded cluster (it would change
    the data under that run)."""
    fp = seed_fingerprint(scale)
    try:
        with _seed_lock(db):
            with db.connect() as c:
                c.execute("create table if not exists asgibench_seed "
                          "(fingerprint text, scale int, seeded_at timestamptz)")
                row = c.execute("select fingerprint, scale from asgibench_seed").fetchone()
            if row and row[0] == fp:
                return {"scale": scale, "fingerprint": fp, "seeded": "reused"}
            users = db.users_now()
            if row and users:
                was = f"scale {row[1]}" if row[1] != scale else "an older schema or seed"
                raise RunError(
                    f"database: seeded with {was}; reseeding it for scale {scale} would change the data under "
                    f"{_users_text(users)}, which uses the embedded PostgreSQL: wait for it to finish, "
                    "or use its --scale")
            env = apps.base_env(django_env, database_url=db.url)
            for args, what in ((["migrate", "--noinput", "-v", "0"], "migrate"),
                               (["populate_test_db", "--scale", str(scale)], "populate_test_db")):
                res = subprocess.run([str(django_env.python), "manage.py", *args], cwd=apps.DJANGO_DIR, env=env,
                                     capture_output=True, text=True)
                if res.returncode != 0:
                    raise RunError(f"database: {what} failed: {last_line(res.stderr, res.stdout)}")
            with db.connect() as c:
                c.execute("delete from asgibench_seed")
                c.execute("insert into asgibench_seed values (%s, %s, now())", (fp, scale))
    except psycopg.Error as e:
        raise RunError(f"database: {db.server_gone() or _first_line(e)}") from None
    return {"scale": scale, "fingerprint": fp, "seeded": "now"}


class BackendSampler:
    """Samples pg_stat_activity during a run: the peak number of backends on our database. It also
    watches the database: when it is lost (the embedded server gone, or no connection and gone() says
    why), `lost_at` (time.time()) and `lost_error` (one line) are set, `on_lost(reason)` is called once
    from the sampler's thread, and sampling stops. A dropped connection with the server still answering
    is reconnected."""

    def __init__(self, db: Database, interval: float = 0.25, on_lost=None):
        self.db, self.interval, self.on_lost = db, interval, on_lost
        self.peak = 0
        self.samples = 0
        self.reconnects = 0
        self.lost_at: float | None = None
        self.lost_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="asgibench-backends")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def restart(self) -> None:
        self.peak = 0

    def database_gone(self) -> str | None:
        """None while the database is there; else the one-line reason it was lost."""
        return self.lost_error

    def _lose(self, reason: str) -> None:
        self.lost_at, self.lost_error = time.time(), reason
        if self.on_lost:
            try:
                self.on_lost(reason)
            except Exception:
                pass  # the run's own hook must not kill the sampler's thread with a traceback

    def _loop(self):
        while not self._stop.is_set():
            try:
                with self.db.connect() as c:
                    dbname = c.execute("select current_database()").fetchone()[0]
                    while not self._stop.is_set():
                        reason = self.db.server_gone()
                        if reason:
                            self._lose(reason)
                            return
                        n = c.execute(
                            "select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                            (dbname,),
                        ).fetchone()[0]
                        self.peak = max(self.peak, n)
                        self.samples += 1
                        self._stop.wait(self.interval)
            except psycopg.Error:
                if self._stop.is_set():
                    return
                reason = self.db.gone()
                if reason:
                    self._lose(reason)
                    return
                self.reconnects += 1  # our connection went (or the server is full) but it answers: sample on
                self._stop.wait(self.interval)
