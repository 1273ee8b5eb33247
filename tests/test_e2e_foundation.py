"""End to end on the real parts: uv envs, the embedded PostgreSQL, gunicorn + eventlet, Locust.
Every load here is a few seconds on 127.0.0.1."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from contextlib import ExitStack

import psutil
import pytest

from asgibench import ROOT, cli as asgicli, options, pipeline, procs
from helpers import cli, interrupt, meta_of, only_run_dir, skip_unless_ci

pytestmark = pytest.mark.e2e
SHORT = ["--users", "4", "--duration", "4s", "--warmup", "1s"]


def _no_tagged(tag):
    return not procs.tagged_pids(tag)


def test_bench_gunicorn_eventlet_end_to_end(db, results_dir):
    tag = "e2e-bench"
    res = cli("bench", "gunicorn-eventlet", *SHORT, results=results_dir, env={"ASGIBENCH_RUN_TAG": tag})
    assert res.returncode == 0, res.stderr
    run_dir = only_run_dir(results_dir, "gunicorn-eventlet")
    for name in ("locust_stats.csv", "locust_stats_history.csv", "locust_failures.csv", "locust_exceptions.csv",
                 "report.html", "locust.json", "server.log", "meta.json"):
        assert (run_dir / name).exists(), name
    meta = meta_of(run_dir)
    s = meta["summary"]
    assert meta["status"] == "completed"
    assert s["requests"] > 20 and s["failures"] == 0
    # every step of the original flow ran, and the whole-flow entry was recorded
    steps = {"GET /admin/login/", "POST /admin/login/", "GET /api/clowncollege/", "GET /api/troupe/"}
    assert steps <= set(s["endpoints"])
    assert s["flow"]["iterations"] > 0 and s["flow"]["failed"] == 0
    # Locust's CSV agrees with its final totals (the _stats.csv shutdown gotcha is fixed)
    with open(run_dir / "locust_stats.csv", newline="") as fh:
        rows = {(r["Type"], r["Name"]): r for r in csv.DictReader(fh)}
    csv_total = sum(int(r["Request Count"]) for (t, n), r in rows.items()
                    if t not in ("FLOW", "") and n != "Aggregated")
    assert csv_total == s["requests"]
    # what ran where is recorded
    assert meta["server"]["workers"] == 1 and meta["server"]["db_conn"] == "persistent"
    assert meta["env"]["packages"]["gunicorn"].startswith("25.")
    assert meta["database"]["settings"]["max_connections"] == "400"
    assert meta["generator"]["cpu_seconds"] > 0
    assert meta["contract"]["passed"] is True
    assert meta["db_peak_backends"] >= 1
    assert "leftover" not in res.stderr
    assert _no_tagged(tag), "a process of the run outlived it"
    assert "req/s" in res.stdout and "failures 0" in res.stdout


def test_api_reads_the_database(db, tmp_path):
    """Change rows in PostgreSQL, see them in the responses: no stubs, no cache. Every list endpoint,
    first and last page, a nested object (a college's troupe), and the count of an inserted row."""
    opts = options.build_options(asgicli.parser().parse_args(["bench", "gunicorn-eventlet", "--quiet"]))

    def get(st, path):
        with urllib.request.urlopen(f"{st.base_url}{path}") as r:
            return json.loads(r.read())

    with ExitStack() as stack, db.connect() as conn:
        st = pipeline.bring_up(opts, stack, tmp_path / "server.log")
        assert not st.contract.failures, st.contract.failures
        troupes = conn.execute("select id, name from circus_troupe order by id").fetchall()
        colleges = conn.execute("select id, name, troupe_id from circus_clowncollege order by id").fetchall()
        (first_t, old_first_t), (last_t, _) = troupes[0], troupes[-1]
        (cid, old_c, c_troupe), last_c = colleges[0], colleges[-1]
        last_page_t, last_page_c = (len(troupes) + 9) // 10, (len(colleges) + 9) // 10
        try:
            for table, rid, name in (("circus_troupe", first_t, "First Troupe Changed"),
                                     ("circus_troupe", last_t, "Last Troupe Changed"),
                                     ("circus_clowncollege", cid, "College Changed"),
                                     ("circus_troupe", c_troupe, "Its Troupe Changed"),
                                     ("circus_clowncollege", last_c[0], "Last College Changed")):
                conn.execute(f"update {table} set name = %s where id = %s", (name, rid))
            conn.execute("insert into circus_troupe (name) values ('Inserted Troupe')")
            page1 = get(st, "/api/troupe/")
            assert page1["count"] == len(troupes) + 1
            assert page1["results"][0]["id"] == first_t and page1["results"][0]["name"] == (
                "Its Troupe Changed" if c_troupe == first_t else "First Troupe Changed")
            last = get(st, f"/api/troupe/?page={(len(troupes) + 1 + 9) // 10}")["results"]
            assert last[-1]["name"] == "Inserted Troupe"
            by_id = {t["id"]: t for p in range(1, last_page_t + 1)
                     for t in get(st, f"/api/troupe/?page={p}")["results"]}
            assert by_id[last_t]["name"] == ("Its Troupe Changed" if c_troupe == last_t else "Last Troupe Changed")
            college = get(st, "/api/clowncollege/")["results"][0]
            assert college["id"] == cid and college["name"] == "College Changed"
            assert college["troupe"]["id"] == c_troupe and college["troupe"]["name"] == "Its Troupe Changed"
            assert get(st, f"/api/clowncollege/?page={last_page_c}")["results"][-1]["name"] == "Last College Changed"
        finally:
            conn.execute("delete from circus_troupe where name = 'Inserted Troupe'")
            for table, rows in (("circus_troupe", troupes), ("circus_clowncollege", colleges)):
                for row in rows:
                    conn.execute(f"update {table} set name = %s where id = %s", (row[1], row[0]))
        assert get(st, "/api/troupe/")["results"][0]["name"] == old_first_t
        assert get(st, "/api/troupe/")["count"] == len(troupes)
        assert get(st, "/api/clowncollege/")["results"][0]["name"] == old_c


def _wait_for_requests(run_parent, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        for p in run_parent.rglob("locust_stats.csv"):
            if "warmup" in p.parts:
                continue
            with open(p, newline="") as fh:
                for r in csv.DictReader(fh):
                    if r["Name"] == "Aggregated" and int(r["Request Count"]) > 0:
                        return p.parent
        time.sleep(0.5)
    raise AssertionError("no requests recorded in time")


def _start_bench(results_dir, tag, *extra):
    env = dict(os.environ, ASGIBENCH_RESULTS=str(results_dir), ASGIBENCH_RUN_TAG=tag)
    return subprocess.Popen([sys.executable, "-m", "asgibench", "bench", "gunicorn-eventlet", "--users", "4",
                             "--duration", "40s", "--warmup", "0", *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_server_killed_mid_run_exit_1_partial_results_no_orphans(db, results_dir):
    tag = "e2e-kill"
    proc = _start_bench(results_dir, tag)
    try:
        run_dir = _wait_for_requests(results_dir / "gunicorn-eventlet")
        port = meta_of(run_dir)["server"]["port"]
        master = next(c.pid for c in psutil.net_connections("tcp")
                      if c.laddr and c.laddr.port == port and c.status == "LISTEN" and c.pid)
        leader = os.getpgid(master)  # the server runs in its own process group, led by the gunicorn master
        assert leader != os.getpgid(proc.pid)
        os.kill(leader, signal.SIGKILL)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    last = [ln for ln in err.splitlines() if ln.strip()][-1]
    assert last.startswith("asgibench: error: server gunicorn-eventlet died mid-run")
    meta = meta_of(run_dir)
    assert meta["status"] == "server-died"
    assert (run_dir / "locust_stats.csv").exists() and meta["summary"]["requests"] > 0
    assert "leftover" not in err
    assert _no_tagged(tag)


def test_ctrl_c_keeps_partial_results_and_stops_everything(db, results_dir):
    tag = "e2e-sigint"
    proc = _start_bench(results_dir, tag)
    try:
        run_dir = _wait_for_requests(results_dir / "gunicorn-eventlet")
        time.sleep(1.5)
    finally:
        out, err = interrupt(proc, timeout=90)
    assert proc.returncode == 130, err
    meta = meta_of(run_dir)
    assert meta["status"] == "interrupted" and meta["interrupted"] is True
    assert meta["summary"]["requests"] > 0
    assert "leftover" not in err
    assert _no_tagged(tag)


def test_unreachable_database_is_one_line_exit_1(results_dir):
    res = cli("bench", "gunicorn-eventlet", *SHORT, results=results_dir,
              env={"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing"})
    assert res.returncode == 1
    last = [ln for ln in res.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("asgibench: error: database unreachable at postgresql://nobody@127.0.0.1:1/nothing")


def test_runs_never_overwrite_each_other(db, results_dir):
    for _ in range(2):
        res = cli("bench", "gunicorn-eventlet", "--users", "2", "--duration", "2s", "--warmup", "0", "--api-only",
                  results=results_dir)
        assert res.returncode == 0, res.stderr
    dirs = sorted(p for p in (results_dir / "gunicorn-eventlet").iterdir())
    assert len(dirs) == 2
    assert all(meta_of(d)["summary"]["requests"] > 0 for d in dirs)


def test_port_taken_is_one_line_exit_1(db, results_dir):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = cli("bench", "gunicorn-eventlet", *SHORT, "--port", str(port), results=results_dir)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines()[-1] == f"asgibench: error: port 127.0.0.1:{port} is taken"


def test_contract_check_rejects_the_original_stub(db):
    """The original study's API views were stubs; the contract check must refuse them."""
    import http.server
    import threading

    from asgibench import contract, variants

    class Stub(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"count": 1, "next": "stubbed", "previous": None, "results": ["blah"]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        with db.connect() as conn:
            rep = contract.verify(variants.get("gunicorn-eventlet"), f"http://127.0.0.1:{httpd.server_port}", conn)
    finally:
        httpd.shutdown()
    failed = {name for name, ok, _ in rep.failures}
    assert "GET /api/troupe/?page=1" in failed and "GET /api/clowncollege/?page=2" in failed
    with pytest.raises(contract.RunError, match="contract check failed on gunicorn-eventlet"):
        contract.require(rep, "gunicorn-eventlet")


# Locust's totals against the server's own count: test_e2e_oracles (one run with a warm-up, per endpoint).


def test_ui_serves_locust_web_ui_and_ctrl_c_stops_everything(db, results_dir):
    from asgibench.database import free_port

    tag, port = "e2e-ui", free_port()
    env = dict(os.environ, ASGIBENCH_RESULTS=str(results_dir), ASGIBENCH_RUN_TAG=tag)
    proc = subprocess.Popen([sys.executable, "-m", "asgibench", "ui", "gunicorn-eventlet", "--ui-port", str(port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline, page = time.time() + 90, b""
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    page = r.read()
                    break
            except OSError:
                time.sleep(0.5)
        assert b"<html" in page.lower(), "Locust's web UI did not answer"
    finally:
        out, err = interrupt(proc, timeout=60)
    assert proc.returncode == 130, err
    assert "leftover" not in err
    assert _no_tagged(tag)


def test_cpu_placement_is_applied_and_recorded(db, results_dir):
    if not db.embedded:  # DATABASE_URL: someone else's cluster, which we neither pin nor may pin
        pytest.skip("needs the embedded PostgreSQL to pin it (DATABASE_URL is set)")
    if (os.cpu_count() or 1) < 2:
        skip_unless_ci(f"needs 2 CPUs to place server and Locust apart; this machine has {os.cpu_count()}")
    args = ["bench", "gunicorn-sync", "--api-only", "--users", "2", "--duration", "2s", "--warmup", "0"]
    res = cli(*args, "--pin", "server=0,db=0,locust=1", results=results_dir)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, "gunicorn-sync"))
    assert meta["cpus"] == {"pinned": {"server": [0], "db": [0], "locust": [1]}, "policy": "--pin"}
    assert os.sched_getaffinity(db.embedded.pid()) == {0}  # the postmaster (its backends inherit it)
    res = cli(*args, results=results_dir / "again")  # the default puts the kept cluster back on every CPU
    assert res.returncode == 0, res.stderr[-2000:]
    assert os.sched_getaffinity(db.embedded.pid()) == set(range(os.cpu_count()))
