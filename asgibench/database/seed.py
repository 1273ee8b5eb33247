"""Schema and seed: prepare() migrates with Django (its migrations own the schema) and seeds with the
app's populate_test_db, unless the database already holds this scale of this schema (seed_fingerprint,
recorded in the asgibench_seed table). One seeder at a time (a PostgreSQL advisory lock); a reseed is
refused while another asgibench process uses the embedded cluster.

A new input of the seed goes in SEED_INPUTS (a change reseeds).
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import time
from contextlib import contextmanager

from asgibench import apps
from asgibench.database.common import first_line, psycopg, users_text
from asgibench.database.handle import Database
from asgibench.errors import RunError
from asgibench.files import last_line

SEED_LOCK_KEY = 0x61736762  # pg_advisory_lock key of migrate + seed ("asgb")
SEED_LOCK_TIMEOUT_S = 900.0

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
                    f"{users_text(users)}, which uses the embedded PostgreSQL: wait for it to finish, "
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
        raise RunError(f"database: {db.server_gone() or first_line(e)}") from None
    return {"scale": scale, "fingerprint": fp, "seeded": "now"}
