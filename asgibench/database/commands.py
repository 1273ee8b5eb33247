"""The `asgibench db` commands on the embedded cluster, each returning the one line to print:
stop_cluster (`db stop`), reset_cluster (`db reset`), status_line (`db status`). stop and reset refuse
while another asgibench process holds a lease, unless forced; status only reads (it takes no lock).
`db start` is handle.open_database(keep=True). A new command goes here, built on cluster.EmbeddedCluster.
"""
from __future__ import annotations

import os
import shutil

from asgibench.database.cluster import EmbeddedCluster
from asgibench.database.common import RESET_HINT, STOP_HINT
from asgibench.database.folder import ESSENTIAL
from asgibench.database.lock import describe_users
from asgibench.errors import RunError


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

