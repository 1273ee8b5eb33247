"""Database step: a PostgreSQL ready for the run, migrated by Django and seeded.

Either the user's (DATABASE_URL) or the embedded cluster asgibench owns: initdb'd once into
.asgibench/pg (ASGIBENCH_PG_DIR), started on a free 127.0.0.1 port with its socket in that folder,
kept between runs (data and seed), stopped when the last asgibench process using it leaves.

Sharing: asgibench processes of one checkout share the embedded cluster. Its lifecycle steps (initdb,
start, stop, reset) run under one flock; every open Database holds a lease. The last user to leave
(Database.release) stops a cluster an asgibench run started; a kept one stays up until `db stop`:
started or joined with keep=True (`db start`, --keep-db), or whose starter left without releasing it
(a crash). `db stop` / `db reset` refuse while another process uses it, unless forced.

Faults: every one is one RunError line saying what to do (a deleted data folder or postmaster.pid under
a running server, a damaged data folder, a server that does not answer). Recovered by themselves:
leases and locks of dead processes, a stale postmaster.pid, a killed server.

This module is the facade: the names the rest of asgibench uses, re-exported. Each concern lives in
its own module, whose docstring says what goes there (imports only go down this list):
  common.py    names, SETTINGS, the folder, ports and URLs, shared helpers
  lock.py      the flock and the leases (sharing between processes)
  folder.py    ClusterFolder: what the folder holds (state, postmaster.pid, processes), damage checks
  cluster.py   EmbeddedCluster: initdb, start, stop
  handle.py    Database (what a run holds) and open_database
  commands.py  db stop / reset / status
  seed.py      prepare: migrate and seed (SEED_INPUTS)
  sampler.py   BackendSampler: backends counted, a lost database noticed during a run
A new public name is added to __all__ here once other code needs it; patch a name (tests) in the module
that looks it up, not here.
"""
from __future__ import annotations

from asgibench.database.cluster import EmbeddedCluster
from asgibench.database.commands import reset_cluster, status_line, stop_cluster
from asgibench.database.common import (
    DB_NAME,
    DB_USER,
    RESET_HINT,
    SETTINGS,
    STOP_HINT,
    free_port,
    pg_dir,
    port_is_free,
    url_for,
)
from asgibench.database.folder import find_pg_bin
from asgibench.database.handle import Database, open_database
from asgibench.database.sampler import BackendSampler
from asgibench.database.seed import SEED_INPUTS, SEED_LOCK_KEY, prepare, seed_fingerprint

__all__ = [
    "DB_NAME", "DB_USER", "SETTINGS", "STOP_HINT", "RESET_HINT", "pg_dir", "free_port", "port_is_free", "url_for",
    "find_pg_bin", "EmbeddedCluster", "Database", "open_database", "stop_cluster", "reset_cluster", "status_line",
    "prepare", "seed_fingerprint", "SEED_INPUTS", "SEED_LOCK_KEY", "BackendSampler",
]
