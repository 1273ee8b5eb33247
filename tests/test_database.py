"""The database package (asgibench/database/) without a PostgreSQL server: the lock, the leases, the
cluster's state rules, the damage checks, and health reporting against a database that is not there."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from asgibench import ROOT, database
from asgibench.database import lock
from asgibench.errors import RunError
from asgibench.procs import wait_until
from helpers import kill_all

HOLD_LOCK = r"""
import sys, time
from asgibench.database.lock import ClusterLock
with ClusterLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def lock_holder(tmp_path):
    procs = []

    def start(path: Path) -> subprocess.Popen:
        proc = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, cwd=ROOT)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "locked"
        return proc

    yield start
    kill_all(procs, 5)


def test_lock_waits_bounded_and_names_its_live_holder(tmp_path, lock_holder):
    path = tmp_path / "lock"
    holder = lock_holder(path)
    t0 = time.monotonic()
    with pytest.raises(RunError) as e:
        with lock.ClusterLock(path, timeout=0.3):
            pass
    assert 0.3 <= time.monotonic() - t0 < 3
    msg = str(e.value)
    assert f"pid {holder.pid} (" in msg and "over 0 s" not in msg and "\n" not in msg


def test_a_sigkilled_holder_never_blocks_the_lock(tmp_path, lock_holder):
    path = tmp_path / "lock"
    holder = lock_holder(path)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(5)
    t0 = time.monotonic()
    with lock.ClusterLock(path, timeout=5):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert time.monotonic() - t0 < 1


def test_lock_is_reentrant_within_a_process(tmp_path):
    path = tmp_path / "lock"
    with lock.ClusterLock(path, timeout=1):
        with lock.ClusterLock(path, timeout=1):
            pass
        assert json.loads(path.read_text())["pid"] == os.getpid()  # still held after the inner exit
    assert path.read_text() == ""  # released: holder info cleared


def test_leases_live_stale_and_garbage(tmp_path):
    leases = lock.Leases(tmp_path / "users")
    mine = leases.take(started_cluster=True)
    assert [lease.path for lease in leases.live()] == [mine]
    assert leases.live(exclude_pid=os.getpid()) == []
    me = lock.process_start(os.getpid())
    (tmp_path / "users" / "1-2-3.json").write_text(json.dumps({"pid": dead_pid(), "start": 1, "command": "x"}))
    (tmp_path / "users" / "4-5-6.json").write_text(json.dumps({"pid": os.getpid(), "start": me + 1}))  # pid reused
    (tmp_path / "users" / "7-8-9.json").write_text("{not json")
    stale = leases.clean()
    assert len(stale) == 3
    assert sorted(p.name for p in (tmp_path / "users").iterdir()) == [mine.name]
    leases.drop(mine)
    leases.drop(mine)  # idempotent
    assert leases.all() == []


def test_command_of_names_the_asgibench_command():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)", "-m", "asgibench", "bench", "x"])
    try:
        for _ in range(50):
            if "bench" in lock.command_of(proc.pid):
                break
            time.sleep(0.02)
        assert lock.command_of(proc.pid) == "asgibench bench x"
    finally:
        proc.kill()
        proc.wait()
    assert lock.command_of(dead_pid()) == "?"
    assert not lock.pid_alive(dead_pid())


def test_a_starter_that_left_without_releasing_keeps_its_cluster(tmp_path):
    cluster = database.EmbeddedCluster(tmp_path / "pg")
    cluster.base.mkdir()
    cluster.write_state({"port": 1, "started": 123.0, "pid": 1, "kept": False})
    users = cluster.base / "users"
    users.mkdir()
    (users / "a.json").write_text(json.dumps({"pid": dead_pid(), "start": 1, "command": "asgibench bench x",
                                              "started_cluster": False, "cluster": 123.0}))
    assert cluster.clean_leases()["kept"] is False  # a joiner's wish (--keep-db) does not keep it, as before
    (users / "b.json").write_text(json.dumps({"pid": dead_pid(), "start": 1, "command": "asgibench bench x",
                                              "started_cluster": True, "cluster": 99.0}))
    assert cluster.clean_leases()["kept"] is False  # the starter of an earlier incarnation
    (users / "c.json").write_text(json.dumps({"pid": dead_pid(), "start": 1, "command": "asgibench bench x",
                                              "started_cluster": True, "cluster": 123.0}))
    state = cluster.clean_leases()
    assert state["kept"] is True and "left without releasing it" in state["kept_because"]
    assert cluster.read_state() == state and list(users.iterdir()) == []


def test_damage_checks(tmp_path):
    cluster = database.EmbeddedCluster(tmp_path / "pg")
    assert cluster.damage() is None  # absent: initdb creates it
    cluster.data.mkdir(parents=True)
    assert cluster.damage() is None  # empty: initdb fills it
    (cluster.data / "stray.txt").write_text("x")
    assert "PG_VERSION is missing" in cluster.damage()
    (cluster.data / "PG_VERSION").write_text("15\n")
    assert cluster.damage() == "base, global, global/pg_control, pg_wal, postgresql.conf missing"
    for d in ("base", "global", "pg_wal"):
        (cluster.data / d).mkdir()
    (cluster.data / "global" / "pg_control").write_bytes(b"\0")
    (cluster.data / "postgresql.conf").write_text("")
    (cluster.data / "PG_VERSION").write_text("9\n")
    assert cluster.damage(check_version=False) is None
    assert "initialised by PostgreSQL 9, but the binaries" in cluster.damage()


def test_pidfile_parsing(tmp_path):
    cluster = database.EmbeddedCluster(tmp_path / "pg")
    cluster.data.mkdir(parents=True)
    assert cluster.pidfile() is None and cluster.running_port() is None
    (cluster.data / "postmaster.pid").write_text("garbage\n")
    assert cluster.pidfile() == {} and cluster.running_port() is None and cluster.pid() is None
    lines = [str(dead_pid()), str(cluster.data), "1", "5432", "/tmp", "127.0.0.1", "1 2", "ready"]
    (cluster.data / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert cluster.pidfile()["status"] == "ready"
    assert cluster.running_port() is None  # stale: its pid is gone
    lines[0] = str(os.getpid())  # alive, but not a PostgreSQL process (a reused pid)
    (cluster.data / "postmaster.pid").write_text("\n".join(lines) + "\n")
    assert cluster.running_port() is None


def test_reset_refuses_a_folder_that_is_not_a_cluster(tmp_path, monkeypatch):
    monkeypatch.setenv("ASGIBENCH_PG_DIR", str(tmp_path / "pg"))
    data = tmp_path / "pg" / "data"
    data.mkdir(parents=True)
    (data / "thesis.tex").write_text("precious")
    with pytest.raises(RunError, match="does not look like a PostgreSQL data folder"):
        database.reset_cluster()
    assert (data / "thesis.tex").exists()


def test_status_and_stop_of_a_cluster_that_is_not_running(tmp_path, monkeypatch):
    monkeypatch.setenv("ASGIBENCH_PG_DIR", str(tmp_path / "pg"))
    assert database.status_line().startswith("embedded PostgreSQL not running (not initialised")
    assert database.stop_cluster().startswith("embedded PostgreSQL is not running")
    (tmp_path / "pg" / "data").mkdir(parents=True)
    (tmp_path / "pg" / "data" / "PG_VERSION").write_text("15\n")
    line = database.status_line()
    assert "is damaged (base, global" in line and "make db-reset" in line


UNREACHABLE = "postgresql://nobody@127.0.0.1:1/nothing"


def test_an_unreachable_database_is_reported_not_raised():
    db = database.Database(url=UNREACHABLE)
    reason = db.gone()
    assert reason.startswith("database unreachable at postgresql://nobody@127.0.0.1:1/nothing: ")
    assert "\n" not in reason and not db.alive()
    info = db.describe()
    assert info["server_version"] is None and info["settings"] == {} and info["error"]
    assert db.release() is False and db.users_now() == [] and db.sharing_note() is None


def test_sampler_remembers_losing_the_database():
    db = database.Database(url=UNREACHABLE)
    seen = []
    with database.BackendSampler(db, interval=0.05, on_lost=seen.append) as sampler:
        assert wait_until(lambda: sampler.database_gone() is not None, 10)
    assert sampler.lost_at and abs(sampler.lost_at - time.time()) < 15
    assert sampler.database_gone() == seen[0] and len(seen) == 1
    assert sampler.database_gone().startswith("database unreachable at")


class _FlakyDb:
    """Its connections fail while the server still answers (gone() is None): a dropped connection."""

    embedded = None

    def connect(self):
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    def server_gone(self):
        return None

    def gone(self):
        return None


def test_sampler_reconnects_while_the_server_answers():
    with database.BackendSampler(_FlakyDb(), interval=0.02) as sampler:
        assert wait_until(lambda: sampler.reconnects >= 3, 5)
    assert sampler.database_gone() is None and sampler.lost_at is None
