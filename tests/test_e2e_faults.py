"""Faults a real run meets, made for real (issue 11): the database killed mid-run, a server frozen with
SIGSTOP (a stall, requests cut off at the end), requests slower than --request-timeout, an unexpected
exception inside a run and outside one, a results folder that is read-only or full. Each ends in a clear
verdict: meta.json's status, the summary's first line, one line on stderr and the exit code; never a
traceback, never "completed" for a run that did not complete, never a process left behind.

Runs are short (6-12 s, --warmup 0, 4 users, one uvicorn worker). The database test uses a cluster of its
own (ASGIBENCH_PG_DIR), never the session's. Every process started here is stopped here, by PID."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from asgibench import ROOT
from helpers import cli, meta_of, only_run_dir

pytestmark = pytest.mark.e2e

ROW = "uvicorn"
SHORT = ["--warmup", "0", "--users", "4", "--workers", "1"]
LEFTOVER = "leftover process"


def start_cli(args: list, results: Path, env: dict | None = None) -> subprocess.Popen:
    e = {**os.environ, "ASGIBENCH_RESULTS": str(results), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "asgibench", *args], cwd=ROOT, env=e, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_load(results: Path, timeout: float = 240) -> tuple[Path, dict]:
    """The run folder once Locust has started measuring (its first stats file), and its meta.json."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for d in (results / ROW).glob("*") if (results / ROW).exists() else []:
            if (d / "locust_stats.csv").exists():
                return d, meta_of(d)
        time.sleep(0.2)
    raise AssertionError("the load never started")


def server_tree(meta: dict) -> list[psutil.Process]:
    port = meta["server"]["port"]
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info["cmdline"] or []
        if "--port" in cmd and str(port) in cmd:
            return [p] + p.children(recursive=True)
    raise AssertionError(f"no server on port {port}")


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise
    return proc.returncode, out, err


def test_frozen_server_is_a_stall_and_requests_cut_off_at_the_end_are_failures(results_dir):
    """SIGSTOP the server 3 s into a 10 s run, SIGCONT only after Locust has given up on its users: no
    request completes from ~3 s to the end, req/s is over the whole 10 s window, the requests still
    waiting are failures of their own, the verdict is "stalled", exit 1."""
    proc = start_cli(["bench", ROW, "--scenario", "io", "--io-seconds", "0.2", "--duration", "10",
                      "--request-timeout", "60", *SHORT], results_dir)
    frozen = []
    try:
        run_dir, meta = wait_for_load(results_dir)
        time.sleep(3)
        frozen = server_tree(meta)
        for p in frozen:
            p.send_signal(signal.SIGSTOP)
        time.sleep(14)  # past the run's end (10 s) and Locust's --stop-timeout (5 s)
    finally:
        for p in frozen:
            try:
                p.send_signal(signal.SIGCONT)
            except psutil.NoSuchProcess:
                pass
        code, out, err = finish(proc)
    meta = meta_of(run_dir)
    s = meta["summary"]
    assert code == 1, err
    assert meta["status"] == "stalled"
    assert out.splitlines()[0].startswith("STALLED: no request completed from"), out
    stall = s["stall"]
    assert stall["threshold_s"] == 5.2 and stall["longest_s"] >= 5.2, stall
    assert 1.5 <= stall["stalls"][-1]["at_s"] <= 6, stall  # froze ~3 s in
    assert 9.5 <= s["seconds"] <= 11.5, s["window"]  # the whole window, not start..last completion
    assert s["window"]["early_end_s"] >= 4
    assert "before the measured window's end" in out
    fails = (run_dir / "locust_failures.csv").read_text()
    assert "timeout: still in flight when the run ended" in fails, fails
    assert LEFTOVER not in err


def test_request_timeout_is_a_failure_of_its_own_and_exit_codes(results_dir):
    """A probe sleeping 2 s with --request-timeout 1: every request fails as "timeout after 1 s";
    exit 1, and 0 with --accept-failures (still recorded)."""
    args = ["bench", ROW, "--scenario", "io", "--io-seconds", "2", "--request-timeout", "1", "--duration", "6",
            *SHORT]
    res = cli(*args, results=results_dir)
    assert res.returncode == 1, res.stderr
    run_dir = only_run_dir(results_dir, ROW)
    meta = meta_of(run_dir)
    assert meta["status"] == "completed" and meta["verdict"]["failed_requests"] > 0
    assert meta["verdict"] == {**meta["verdict"], "clean": False, "accepted": False, "exit_code": 1}
    assert res.stdout.splitlines()[0].startswith("FAILED REQUESTS:"), res.stdout
    assert "('timeout after 1 s')" in (run_dir / "locust_failures.csv").read_text()
    assert "--accept-failures" in res.stderr.strip().splitlines()[-1]
    accepted = cli(*args, "--accept-failures", results=results_dir / "accepted")
    assert accepted.returncode == 0, accepted.stderr
    assert "(accepted: --accept-failures)" in accepted.stdout.splitlines()[0]
    assert meta_of(only_run_dir(results_dir / "accepted", ROW))["verdict"]["accepted"] is True
    assert LEFTOVER not in res.stderr + accepted.stderr


@pytest.fixture
def own_cluster():
    base = Path(tempfile.mkdtemp(prefix="asgibench-faults-", dir="/tmp"))
    os.chmod(base, 0o755)  # the postgres user must reach it
    env = {"ASGIBENCH_PG_DIR": str(base / "pg"), "DATABASE_URL": ""}
    yield env, base / "pg"
    cli("db", "stop", env=env, timeout=120)
    shutil.rmtree(base, ignore_errors=True)


def test_database_killed_mid_run_ends_it_at_once_as_database_died(results_dir, own_cluster):
    env, pg = own_cluster
    env = {k: v for k, v in env.items() if v}
    os.environ.pop("DATABASE_URL", None)
    proc = start_cli(["bench", ROW, "--scenario", "constant", "--duration", "30", "--api-only", *SHORT],
                     results_dir, env)
    run_dir, _ = wait_for_load(results_dir, timeout=400)
    time.sleep(3)
    from asgibench import database  # the test's own view of that folder
    os.environ["ASGIBENCH_PG_DIR"] = env["ASGIBENCH_PG_DIR"]
    try:
        assert database.pg_dir() == pg
        postmaster = int((pg / "data" / "postmaster.pid").read_text().split()[0])
    finally:
        del os.environ["ASGIBENCH_PG_DIR"]
    t_kill = time.monotonic()
    os.kill(postmaster, signal.SIGKILL)
    code, out, err = finish(proc)
    ended_after = time.monotonic() - t_kill
    meta = meta_of(run_dir)
    assert code == 1, err
    assert meta["status"] == "database-died", meta.get("error")
    assert ended_after < 20, ended_after  # well before the planned 30 s (~27 s were left)
    assert out.splitlines()[0].startswith("DATABASE DIED after"), out
    assert "died mid-run" in err.strip().splitlines()[-1] and "Traceback" not in err
    assert (run_dir / "locust_stats.csv").exists() and (run_dir / "locust.json").exists()
    assert LEFTOVER not in err
    again = cli("verify", ROW, "--workers", "1", results=results_dir / "again", env=env, timeout=300)
    assert again.returncode == 0, again.stderr  # the next run starts a healthy cluster


INJECT = r"""
import sys
from asgibench import cli, pipeline, results
def boom(*a, **k):
    raise RuntimeError("injected fault")
target = sys.argv[1]
if target == "in-run":
    pipeline.bring_up = boom
else:
    results.new_run_dir = boom
sys.exit(cli.main(sys.argv[2:]))
"""


@pytest.mark.parametrize("where", ["in-run", "outside"])
def test_unexpected_exception_is_one_line_a_logged_traceback_and_exit_1(results_dir, where):
    res = subprocess.run([sys.executable, "-c", INJECT, where, "bench", ROW, "--duration", "5", *SHORT],
                         cwd=ROOT, env={**os.environ, "ASGIBENCH_RESULTS": str(results_dir)},
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "RuntimeError: injected fault" in lines[0], res.stderr
    if where == "in-run":
        run_dir = only_run_dir(results_dir, ROW)
        meta = meta_of(run_dir)
        assert meta["status"] == "failed" and meta["error"] == "RuntimeError: injected fault"
        assert str(run_dir) in lines[0]
        assert "Traceback" in (run_dir / "error.log").read_text()
    else:
        log = ROOT / ".asgibench" / "last-error.log"
        assert str(log) in lines[0] and "injected fault" in log.read_text()


@pytest.fixture
def tiny_tmpfs():
    mnt = Path(tempfile.mkdtemp(prefix="asgibench-tmpfs-", dir="/tmp"))
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                      capture_output=True).returncode != 0:
        mnt.rmdir()
        pytest.skip("cannot mount a tmpfs here (not root?): ENOSPC is covered by test_results' writer test")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)
    mnt.rmdir()


@pytest.mark.parametrize("fault", ["full", "read-only"])
def test_results_folder_full_or_read_only_is_one_line(tiny_tmpfs, fault):
    earlier = tiny_tmpfs / ROW / "earlier-run" / "meta.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text(json.dumps({"status": "completed"}))
    if fault == "full":
        with open(tiny_tmpfs / "filler", "wb") as f:
            try:
                f.write(b"x" * 1024 * 1024)
            except OSError:
                pass
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(tiny_tmpfs)], check=True)
    try:
        res = cli("bench", ROW, "--duration", "5", *SHORT, "--results", str(tiny_tmpfs), timeout=120)
    finally:
        subprocess.run(["mount", "-o", "remount,rw", str(tiny_tmpfs)], check=False)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 1 and lines, res.stderr
    expected = "meta.json: No space left on device" if fault == "full" else "Read-only file system"
    assert expected in lines[-1], res.stderr
    assert "Traceback" not in res.stderr
    assert json.loads(earlier.read_text()) == {"status": "completed"}
