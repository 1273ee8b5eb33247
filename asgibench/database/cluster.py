"""The embedded cluster's lifecycle: EmbeddedCluster initdb's, starts (on a free 127.0.0.1 port, its
socket in the folder, SETTINGS applied), waits for and stops the server, as root through the `postgres`
user (PostgreSQL refuses root). Every step runs under the cluster's lock (lock.py), taken by its callers.

What the folder holds and the damage checks are folder.ClusterFolder, its base. A new lifecycle step
goes here; the commands built on these steps (db stop / reset / status), in commands.py.
"""
from __future__ import annotations

import os
import pwd
import signal
import subprocess
import time
from pathlib import Path

from asgibench.database.common import (
    DB_USER,
    RESET_HINT,
    SETTINGS,
    STOP_HINT,
    admin_url,
    first_line,
    free_port,
    psycopg,
    send_signal,
)
from asgibench.database.folder import ClusterFolder
from asgibench.database.lock import process_start
from asgibench.errors import RunError
from asgibench.files import last_line, write_json_atomic
from asgibench.procs import wait_until

READY_TIMEOUT_S = 30.0  # a running server that does not accept connections within this is reported
LEFTOVER_TIMEOUT_S = 10.0  # backends of a killed postmaster exit by themselves within this


class EmbeddedCluster(ClusterFolder):
    """The embedded PostgreSQL asgibench owns, in `base` (default pg_dir())."""

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
            wait_until(lambda: not self._is_postgres(pf["pid"]), 60)
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
                    raise RunError(f"the embedded PostgreSQL (postmaster pid {pid}) exited: {first_line(e)}; "
                                   "retry (the next run starts it)") from None
                if time.monotonic() >= deadline:
                    raise RunError(
                        f"the embedded PostgreSQL (postmaster pid {pid}, port {port}) runs but has not accepted a "
                        f"connection in {READY_TIMEOUT_S:.0f} s: {first_line(e)}; {STOP_HINT}, then retry") from None
                time.sleep(0.2)

    def _await_leftovers(self) -> None:
        """Backends of a killed postmaster exit by themselves (they notice its death); a new server cannot
        start while they hold its shared memory. Wait, then ask them to quit, then give up naming them."""
        if wait_until(lambda: not self.processes(), LEFTOVER_TIMEOUT_S):
            return
        for pid in self.processes():
            send_signal(pid, signal.SIGQUIT)
        if not wait_until(lambda: not self.processes(), 5):
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
                    send_signal(pid, sig)
                if wait_until(lambda: not self.postmasters(), wait_s):
                    break
            if self.postmasters():
                raise RunError(f"the embedded PostgreSQL (postmaster pid {self.postmasters()[0]}) does not stop")
        if stopped:
            self.clear_state()
        return stopped
