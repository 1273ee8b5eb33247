"""`asgibench matrix`: interleaved trials, resumable after Ctrl-C, and a table at the end."""
import csv
import json
import os
import subprocess
import sys
import time

import pytest

from asgibench import ROOT, matrix
from helpers import cli, interrupt

pytestmark = pytest.mark.e2e
# api on both rows, original on gunicorn-sync only (raw-asgi-asyncpg has no admin); io: plan_for in test_matrix.py
ARGS = ["--variants", "raw-asgi-asyncpg,gunicorn-sync", "--trials", "2", "--duration", "2s", "--scenario",
        "api,original", "--warmup", "1s", "--users", "2"]


def _state(results, mid):
    return json.loads((results / "matrix" / mid / "matrix.json").read_text())


def test_matrix_interleaves_resumes_and_reports(db, results_dir):
    mid = "m-test"
    env = dict(os.environ, ASGIBENCH_RESULTS=str(results_dir))
    proc = subprocess.Popen([sys.executable, "-m", "asgibench", "matrix", "--id", mid, *ARGS], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # interrupt once the first row-trial is done and the next one measures
            try:
                runs = _state(results_dir, mid)["runs"]
                if any(r.get("status") == "completed" for r in runs.values()) and any(
                        r.get("status") == "running" and r.get("run_dirs") for r in runs.values()):
                    time.sleep(1.0)
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
    finally:
        out, err = interrupt(proc, timeout=120)
    assert proc.returncode == 130, err
    first = _state(results_dir, mid)
    done_before = {k for k, r in first["runs"].items() if r["status"] == "completed"}
    assert done_before and len(done_before) < 4
    assert "estimated" in out and "[1/4] raw-asgi-asyncpg trial 1/2" in out  # interleaved: rows of trial 1 first

    res = cli("matrix", "--id", mid, results=results_dir, timeout=400)  # resumes with the recorded settings
    assert res.returncode == 0, res.stderr[-2000:]
    assert "resuming matrix m-test" in res.stdout
    final = _state(results_dir, mid)
    assert all(r["status"] == "completed" for r in final["runs"].values()) and len(final["runs"]) == 4
    for key in done_before:  # what was measured before the interruption was not measured again
        assert final["runs"][key]["run_dirs"] == first["runs"][key]["run_dirs"]
    for r in final["runs"].values():
        for rel in r["run_dirs"].values():
            meta = json.loads((results_dir / rel / "meta.json").read_text())
            assert meta["matrix"]["id"] == mid and meta["status"] == "completed"
            assert meta["summary"]["failures"] == 0
    # interleaved: by the time each row-trial really started (its run folders' meta.json), every row's
    # trial 1 came before any trial 2, rows in the order asked, across the interruption
    started = sorted((min(json.loads((results_dir / rel / "meta.json").read_text())["started_at"]
                          for rel in r["run_dirs"].values()), key) for key, r in final["runs"].items())
    assert [key for _, key in started] == ["1/raw-asgi-asyncpg", "1/gunicorn-sync", "2/raw-asgi-asyncpg",
                                           "2/gunicorn-sync"], started
    # the warm-up warms the freshly started server once: before the first scenario only; the API flow on
    # every row, the original flow on the admin row only, each a scenario with its own run folders
    for key, r in final["runs"].items():
        metas = {sc: json.loads((results_dir / rel / "meta.json").read_text()) for sc, rel in r["run_dirs"].items()}
        plans = {sc: m["plan"] for sc, m in metas.items()}
        assert set(plans) == ({"api", "original"} if key.endswith("gunicorn-sync") else {"api"}), (key, plans)
        assert all(m["matrix"]["scenario"] == sc for sc, m in metas.items())
        assert {sc: p["flow"] for sc, p in plans.items()} == {sc: sc for sc in plans}
        assert all(p["reconnect_every"] == matrix.RECONNECT_EVERY for p in plans.values())
        assert plans["api"]["warmup"] == 1.0 and plans.get("original", {"warmup": 0.0})["warmup"] == 0.0, plans
        if "original" in metas:  # every HTTP exchange counted: 7 per iteration
            s = metas["original"]["summary"]
            assert s["requests"] == pytest.approx(7 * s["flow"]["iterations"], abs=7 * 2), s  # +- 1 iteration a user
            assert s["flow"]["iterations_per_s"] > 0
    assert "median req/s" in res.stdout  # the final table
    rep = cli("report", mid, results=results_dir, timeout=200)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (results_dir / "report.md").exists() and (results_dir / "summary.csv").exists()
    # the report averages the completed trials only: a folder the interruption left half-done is not in it
    partial = {p.parent.relative_to(results_dir).as_posix() for p in results_dir.glob("*/*/meta.json")
               if json.loads(p.read_text())["status"] != "completed"}
    with open(results_dir / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["trials"] == "2" for r in rows), rows  # raw api, sync api, sync original
    used = {d for r in rows for d in r["run_dirs"].split()}
    assert used == {rel for r in final["runs"].values() for rel in r["run_dirs"].values()}
    assert partial and not used & partial, partial  # the interrupted row-trial left one


def test_a_failing_row_is_recorded_and_the_matrix_goes_on(db, results_dir, tmp_path):
    """gunicorn-sync cannot start (GUNICORN_CMD_ARGS points it at a config file that is not there; the
    uvicorn row ignores it): recorded failed with its reason, the next row still measured, exit 1."""
    res = cli("matrix", "--id", "m-fail", "--variants", "gunicorn-sync,raw-asgi-asyncpg", "--trials", "1",
              "--scenario", "api", "--duration", "2s", "--warmup", "0", "--users", "2", results=results_dir,
              env={"GUNICORN_CMD_ARGS": f"--config {tmp_path / 'missing.py'}"}, timeout=300)
    assert res.returncode == 1, res.stderr[-2000:]
    runs = _state(results_dir, "m-fail")["runs"]
    assert runs["1/gunicorn-sync"]["status"] == "failed" and runs["1/gunicorn-sync"]["error"]
    assert "failed:" in res.stderr
    assert runs["1/raw-asgi-asyncpg"]["status"] == "completed"
    (rel,) = runs["1/raw-asgi-asyncpg"]["run_dirs"].values()
    meta = json.loads((results_dir / rel / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["summary"]["requests"] > 0
