"""Faults a real run meets in its embedded PostgreSQL, made for real: two processes opening the cluster
at the same moment, a user SIGKILLed while it held the lock, `db stop` while another process uses it, a
postmaster killed or shut down in immediate mode, a data folder deleted or damaged under the suite.
Each ends in a healthy cluster or in one clear line, never a traceback.

Every test works on one cluster of this module in its own ASGIBENCH_PG_DIR (a folder the postgres
user can reach), never on the session's; each test leaves it stopped. Processes started here are
stopped here, by PID."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from asgibench import ROOT, database
from asgibench.errors import RunError
from asgibench.procs import wait_until
from helpers import kill_all

pytestmark = pytest.mark.e2e

# A user of the cluster in its own process: waits until time t0 (so that two start at the same moment),
# opens the database, then holds it `hold` seconds ("lock": also takes the cluster's lock and never
# leaves; "stdin": until a line arrives, then says whether the database is still alive), then releases.
USER = r"""
import sys, time
from asgibench import database
mode, t0, hold = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
while time.time() < t0:
    time.sleep(0.002)
db = database.open_database()
print("open", db.started_here, db.postmaster[0], len(db.others_at_open), flush=True)
if mode == "lock":
    db.embedded.lock().__enter__()
    print("locked", flush=True)
    time.sleep(120)
elif mode == "stdin":
    sys.stdin.readline()
    print("alive", db.alive(), flush=True)
else:
    time.sleep(hold)
print("stopped" if db.release() else "left", flush=True)
"""


@pytest.fixture(scope="module")
def pg_base():
    base = Path(tempfile.mkdtemp(prefix="asgibench-dbfaults-", dir="/tmp"))
    os.chmod(base, 0o755)  # the postgres user must reach it (pytest's tmp_path is root-only)
    mp = pytest.MonkeyPatch()
    mp.setenv("ASGIBENCH_PG_DIR", str(base / "pg"))
    mp.delenv("DATABASE_URL", raising=False)
    yield base / "pg"
    mp.undo()
    cluster = database.EmbeddedCluster(base / "pg")
    try:
        cluster.stop(mode="immediate")
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def cluster(pg_base):
    """The module's cluster, stopped before and after each test."""
    c = database.EmbeddedCluster(pg_base)
    c.stop(mode="immediate")
    yield c
    c.stop(mode="immediate")
    c.leases.clean()


@pytest.fixture
def users(pg_base):
    """Start USER processes; any still running at the end is SIGKILLed (by PID)."""
    started: list[subprocess.Popen] = []

    def start(mode="hold", hold=0.0, at=None, stdin=False) -> subprocess.Popen:
        proc = subprocess.Popen(
            [sys.executable, "-c", USER, mode, str(at or 0), str(hold)], cwd=ROOT,
            env={**os.environ, "ASGIBENCH_PG_DIR": str(pg_base)}, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        started.append(proc)
        return proc

    yield start
    kill_all(started, 10)


def finished(proc: subprocess.Popen, timeout: float = 30) -> list[str]:
    out, err = proc.communicate(timeout=timeout)
    assert "Traceback" not in err, err
    assert proc.returncode == 0, err
    return out.split("\n")


def answers(port: int) -> bool:
    try:
        with psycopg.connect(database.url_for(port), connect_timeout=2) as c:
            return c.execute("select 1").fetchone() == (1,)
    except psycopg.Error:
        return False


def one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg and msg
    return msg


def test_two_processes_opening_at_the_same_moment_share_it_and_the_last_stops_it(cluster, users):
    at = time.time() + 1.5  # both are imported and waiting by then
    short, long_ = users(hold=0.5, at=at), users(hold=3.0, at=at)
    first = finished(short)
    assert first[1] == "left"  # the other one still uses it
    port = cluster.running_port()
    assert port and answers(port)
    last = finished(long_)
    assert last[1] == "stopped"
    assert cluster.running_port() is None and cluster.postmasters() == []
    opened = sorted([first[0].split(), last[0].split()])  # "open <started_here> <postmaster pid> <others>"
    assert [o[1] for o in opened] == ["False", "True"]  # one started it, the other joined it
    assert opened[0][2] == opened[1][2]  # one server
    assert [o[3] for o in opened] == ["1", "0"]  # the joiner saw the starter
    assert list(cluster.leases.folder.iterdir()) == []


def test_a_user_sigkilled_while_holding_the_lock_blocks_nobody_and_its_lease_is_ignored(cluster, users):
    crashed = users(mode="lock")
    assert crashed.stdout.readline().startswith("open True")
    assert crashed.stdout.readline().strip() == "locked"
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.wait(5)
    t0 = time.monotonic()
    db = database.open_database()
    assert time.monotonic() - t0 < 5
    assert db.others_at_open == [] and not db.started_here and db.alive()
    assert [p.name for p in cluster.leases.folder.iterdir()] == [db.lease.name]  # its lease was cleaned
    info = db.describe()
    assert info["other_users_at_start"] == 0 and info["other_users_now"] == 0
    # Its starter left without releasing it (as a crash or --keep-db does): the cluster is kept.
    assert db.release() is False and cluster.running_port()
    assert "kept: stays up until `db stop`" in database.status_line()
    assert database.stop_cluster().startswith("embedded PostgreSQL stopped (was on port ")
    assert cluster.running_port() is None


def test_db_stop_and_reset_refuse_while_another_process_uses_the_cluster(cluster, users):
    user = users(mode="stdin", stdin=True)
    assert user.stdout.readline().startswith("open True")
    port = cluster.running_port()
    for action in (database.stop_cluster, database.reset_cluster):
        with pytest.raises(RunError) as e:
            action()
        msg = one_line(e)
        assert f"in use by pid {user.pid} (" in msg and "--force`" in msg
    assert answers(port) and cluster.initialised()
    assert f"in use by pid {user.pid}" in database.status_line()
    stopped = database.stop_cluster(force=True)
    assert stopped.startswith(f"embedded PostgreSQL stopped (was on port {port}); pid {user.pid} (")
    assert stopped.endswith(" lost it")
    user.stdin.write("\n")
    user.stdin.flush()
    assert finished(user)[:2] == ["alive False", "left"]  # it sees the loss, and leaves without a traceback


def test_a_killed_postmaster_is_seen_and_the_next_open_starts_a_healthy_cluster(cluster):
    db = database.open_database()
    assert db.alive() and db.started_here
    lost = []
    with database.BackendSampler(db, interval=0.05, on_lost=lost.append) as sampler:
        assert wait_until(lambda: sampler.samples > 0, 10)
        os.kill(db.postmaster[0], signal.SIGKILL)
        assert wait_until(lambda: sampler.database_gone() is not None, 10)
    assert lost == [sampler.lost_error] and sampler.lost_at <= time.time()
    assert sampler.lost_error == f"the embedded PostgreSQL (postmaster pid {db.postmaster[0]}) is gone"
    assert not db.alive() and db.gone() == sampler.lost_error
    assert db.describe()["error"] == sampler.lost_error  # meta.json still gets its record
    db.release()

    again = database.open_database()
    assert again.started_here and again.alive() and again.postmaster != db.postmaster
    assert any("stale postmaster.pid" in n for n in again.notes)
    assert again.describe()["recovered"] == again.notes
    # An immediate shutdown (crash-like: no checkpoint): the next open recovers it too.
    cluster.stop(mode="immediate")
    assert "postmaster pid" in again.gone()
    third = database.open_database()
    assert third.started_here and third.alive()
    with third.connect() as c:
        assert c.execute("select count(*) from pg_database where datname = %s", (database.DB_NAME,)).fetchone() == (1,)
    again.release()
    assert third.release() is True and cluster.running_port() is None


def test_a_data_folder_deleted_under_a_running_cluster_is_one_clear_line(cluster):
    kept = database.open_database(keep=True)
    kept.release()
    pid = cluster.pid()
    assert cluster.running_port()
    shutil.rmtree(cluster.data)
    with pytest.raises(RunError) as e:
        database.open_database()
    msg = one_line(e)
    assert msg == (f"the embedded PostgreSQL's data folder {cluster.data} was deleted while its server (postmaster "
                   f"pid {pid}) still runs: {database.STOP_HINT}; the next run then initialises a fresh cluster")
    assert f"postmaster pid {pid}" in database.status_line()
    assert database.stop_cluster() == (f"embedded PostgreSQL stopped (was on postmaster pid {pid}, without its "
                                       "postmaster.pid or data folder)")
    assert cluster.postmasters() == []
    fresh = database.open_database()  # what the message promised
    assert fresh.started_here and fresh.alive()
    assert fresh.release() is True


def test_a_postmaster_pid_deleted_under_a_running_cluster_is_one_clear_line(cluster):
    kept = database.open_database(keep=True)
    kept.release()
    pid = cluster.pid()
    (cluster.data / "postmaster.pid").unlink()
    with pytest.raises(RunError) as e:
        database.open_database()
    assert one_line(e).startswith(f"a PostgreSQL server (postmaster pid {pid}) runs on {cluster.data} but its "
                                  "postmaster.pid is gone: a second server on the same files would corrupt them")
    assert database.stop_cluster().startswith("embedded PostgreSQL stopped (was on postmaster pid")
    again = database.open_database()
    assert again.alive() and again.release() is True


def test_a_damaged_data_folder_is_one_clear_line_and_db_reset_recovers(cluster, pg_base):
    database.open_database().release()  # initialised, stopped
    shutil.rmtree(cluster.data / "base")
    res = subprocess.run([sys.executable, "-m", "asgibench", "db", "start"], cwd=ROOT, capture_output=True,
                         text=True, env={**os.environ, "ASGIBENCH_PG_DIR": str(pg_base)}, timeout=60)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.strip() == (f"asgibench: error: the embedded PostgreSQL's data folder {cluster.data} is "
                                  f"damaged (base missing): {database.RESET_HINT}")
    with pytest.raises(RunError, match=r"is damaged \(base missing\)"):
        database.open_database()
    assert database.reset_cluster().startswith(f"embedded PostgreSQL reset: deleted {cluster.data}")
    assert not cluster.data.exists()
    fresh = database.open_database()
    assert fresh.started_here and fresh.alive() and fresh.release() is True


def test_an_unreadable_postmaster_pid_of_a_stopped_cluster_is_recovered(cluster):
    database.open_database().release()
    (cluster.data / "postmaster.pid").write_text("\x00garbage\n")
    db = database.open_database()
    assert db.alive() and db.notes == ["removed an unreadable postmaster.pid"]
    assert db.release() is True


def test_seeding_waits_for_another_seeder_and_a_reseed_under_another_user_is_refused(cluster, users, monkeypatch):
    db = database.open_database()
    fp = database.seed_fingerprint(1)
    with db.connect() as c:
        c.execute("create table if not exists asgibench_seed (fingerprint text, scale int, seeded_at timestamptz)")
        c.execute("delete from asgibench_seed")
        c.execute("insert into asgibench_seed values (%s, 1, now())", (fp,))
    assert database.prepare(db, None, 1)["seeded"] == "reused"  # no env needed: nothing to run
    with db.connect(application_name="the other seeder") as holder:
        holder.execute("select pg_advisory_lock(%s)", (database.SEED_LOCK_KEY,))
        monkeypatch.setattr(database.seed, "SEED_LOCK_TIMEOUT_S", 0.5)  # where _seed_lock looks it up
        with pytest.raises(RunError) as e:
            database.prepare(db, None, 1)
        assert one_line(e).startswith("database: the other seeder (backend ")
    other = users(mode="stdin", stdin=True)
    assert other.stdout.readline().startswith("open False")
    with pytest.raises(RunError) as e:
        database.prepare(db, None, 2)
    msg = one_line(e)
    assert msg.startswith("database: seeded with scale 1; reseeding it for scale 2 would change the data under pid "
                          f"{other.pid} (")
    other.stdin.write("\n")
    other.stdin.flush()
    assert finished(other)[:2] == ["alive True", "left"]
    assert db.release() is True
