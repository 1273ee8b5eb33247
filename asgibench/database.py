"""Database step: a PostgreSQL ready for the run, migrated by Django and seeded.

Either the user's (DATABASE_URL) or the embedded cluster asgibench owns: initdb'd once into
.asgibench/pg (ASGIBENCH_PG_DIR), started on a free 127.0.0.1 port with its socket in that folder,
kept between runs (data and seed), stopped at the end of the invocation that started it.
PostgreSQL refuses to run as root: as root, the cluster is owned and run by the `postgres` user.
A new server setting goes in SETTINGS (the embedded cluster and compose/compose.yaml both use it);
a new input of the seed, in SEED_INPUTS (a change reseeds).
"""
from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import psycopg

from asgibench import ROOT, apps
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


@dataclass
class Database:
    """A PostgreSQL the run can use. `embedded` is None for DATABASE_URL."""

    url: str
    embedded: "EmbeddedCluster | None" = None
    started_here: bool = False
    settings: dict = field(default_factory=dict)

    def connect(self, **kw) -> psycopg.Connection:
        return psycopg.connect(self.url, connect_timeout=5, autocommit=True, **kw)

    def describe(self) -> dict:
        with self.connect() as c:
            version = c.execute("show server_version").fetchone()[0]
            settings = {
                k: c.execute(f"show {k}").fetchone()[0]
                for k in ("max_connections", "shared_buffers", "synchronous_commit", "fsync", "work_mem")
            }
        return {
            "kind": "embedded" if self.embedded else "external (DATABASE_URL)",
            "url": _redact(self.url),
            "server_version": version,
            "settings": settings,
            "data_dir": str(self.embedded.data) if self.embedded else None,
            "started_by_this_run": self.started_here,
        }

    def stop_if_started(self) -> None:
        if self.started_here and self.embedded:
            self.embedded.stop()
            self.started_here = False


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
        self._bin: Path | None = None

    @property
    def bin(self) -> Path:
        if self._bin is None:
            self._bin = find_pg_bin()
        return self._bin

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
    def initialised(self) -> bool:
        return (self.data / "PG_VERSION").exists()

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

    def running_port(self) -> int | None:
        """Port of a postmaster already running on this data dir (e.g. left by --keep-db), else None."""
        pidfile = self.data / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError):
            return None  # a stale pid file: pg_ctl start copes with it
        except PermissionError:
            pass  # alive, owned by the postgres user
        return port

    def start(self) -> int:
        port = free_port()
        opts = [
            "-c listen_addresses=127.0.0.1",
            f"-c port={port}",
            f"-c unix_socket_directories={self.run_dir}",
        ] + [f"-c {k}={v}" for k, v in SETTINGS.items()]
        self.log.touch()
        self._chown(self.log)
        res = subprocess.run(
            self._as_owner([self.bin / "pg_ctl", "-D", self.data, "-l", self.log, "-w", "-t", "60",
                            "-o", " ".join(opts), "start"]),
            capture_output=True,
            text=True,
            env=self._env(),
        )
        if res.returncode != 0:
            raise RunError(f"embedded PostgreSQL failed to start: {last_line(self.log.read_text(), res.stderr)}")
        write_json_atomic(self.state_file, {"port": port, "started": time.time()}, indent=None)
        return port

    def stop(self) -> None:
        if self.running_port() is None:
            return
        subprocess.run(
            self._as_owner([self.bin / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "-t", "60", "stop"]),
            capture_output=True,
            env=self._env(),
        )

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, IndexError, ValueError):
            return None


def url_for(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def open_database() -> Database:
    """DATABASE_URL if set (checked reachable), else the embedded cluster (initdb'd / started as needed)."""
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
    if not cluster.initialised():
        cluster.init()
    port = cluster.running_port()
    started = False
    if port is None:
        port = cluster.start()
        started = True
    db = Database(url=url_for(port), embedded=cluster, started_here=started)
    try:
        _create_database(port)
    except BaseException:
        db.stop_if_started()
        raise
    return db


def _create_database(port: int) -> None:
    admin_url = f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as c:
        if not c.execute("select 1 from pg_database where datname = %s", (DB_NAME,)).fetchone():
            c.execute(f'create database "{DB_NAME}"')


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


def prepare(db: Database, django_env, scale: int) -> dict:
    """Migrate, then seed unless the database already holds this scale of this schema."""
    fp = seed_fingerprint(scale)
    with db.connect() as c:
        c.execute("create table if not exists asgibench_seed (fingerprint text, scale int, seeded_at timestamptz)")
        row = c.execute("select fingerprint from asgibench_seed").fetchone()
    if row and row[0] == fp:
        return {"scale": scale, "fingerprint": fp, "seeded": "reused"}
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
    return {"scale": scale, "fingerprint": fp, "seeded": "now"}


class BackendSampler:
    """Samples pg_stat_activity during a run: the peak number of backends on our database."""

    def __init__(self, db: Database, interval: float = 0.25):
        self.db, self.interval = db, interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def restart(self) -> None:
        self.peak = 0

    def _loop(self):
        try:
            with self.db.connect() as c:
                dbname = c.execute("select current_database()").fetchone()[0]
                while not self._stop.is_set():
                    n = c.execute(
                        "select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                        (dbname,),
                    ).fetchone()[0]
                    self.peak = max(self.peak, n)
                    self.samples += 1
                    self._stop.wait(self.interval)
        except psycopg.Error:
            pass  # the database going away is reported by the run itself
