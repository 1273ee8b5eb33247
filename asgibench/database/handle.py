"""The handle a run holds: Database (a PostgreSQL the run can use: connect, is it still there, who else
uses it, what meta.json records, release) and open_database, which returns one: DATABASE_URL checked
reachable, or the embedded cluster started as needed, with a lease on it.

A new question a run asks of its database goes on Database; a new way of opening one, in open_database.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from asgibench.database.cluster import EmbeddedCluster
from asgibench.database.common import (
    DB_NAME,
    admin_url,
    first_line,
    psycopg,
    redact,
    still_answering,
    url_for,
    users_text,
)
from asgibench.database.lock import process_start
from asgibench.errors import RunError
from asgibench.procs import wait_until


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
            if still_answering(e):
                return None
            # A dying server closes its sockets before /proc shows it gone: give the precise reason if it comes.
            if self.embedded and wait_until(lambda: self.server_gone() is not None, 1.0, 0.05):
                return self.server_gone()
            return f"database unreachable at {redact(self.url)}: {first_line(e)}"
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
        return (f"the embedded PostgreSQL is shared with {users_text(self.others_at_open)}: its load competes "
                "for the same CPUs (recorded in meta.json)")

    def describe(self) -> dict:
        """What meta.json records. Never raises for a database that went away: `error` says why."""
        info = {
            "kind": "embedded" if self.embedded else "external (DATABASE_URL)",
            "url": redact(self.url),
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
            info["error"] = self.server_gone() or first_line(e)
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


def open_database(keep: bool = False) -> Database:
    """DATABASE_URL if set (checked reachable), else the embedded cluster (initdb'd / started as needed),
    shared with the other asgibench processes of this checkout: the returned Database holds a lease until
    release(). keep=True (`db start`, --keep-db): the cluster stays up after its last user leaves."""
    url = os.environ.get("DATABASE_URL")
    if url:
        u = urlparse(url)
        if u.scheme not in ("postgres", "postgresql") or not u.path.strip("/"):
            raise RunError(f"DATABASE_URL must look like postgresql://user@host:port/dbname, got {redact(url)}")
        db = Database(url=url)
        try:
            db.connect().close()
        except psycopg.Error as e:
            raise RunError(f"database unreachable at {redact(url)}: {str(e).strip().splitlines()[0]}") from None
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
                       f"{first_line(e)}") from None
