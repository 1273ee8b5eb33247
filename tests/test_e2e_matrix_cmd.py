"""`asgibench matrix`: interleaved trials, resumable after Ctrl-C, and a table at the end."""
import json
import os
import subprocess
import sys
import time

import pytest

from asgibench import ROOT
from helpers import cli, interrupt

pytestmark = pytest.mark.e2e
ARGS = ["--variants", "raw-asgi-asyncpg,gunicorn-sync", "--trials", "2", "--duration", "2s", "--io-duration", "2s",
        "--warmup", "0", "--io-seconds", "0.2", "--users", "2", "--io-users", "2"]


def _state(results, mid):
    return json.loads((results / "matrix" / mid / "matrix.json").read_text())


def test_matrix_interleaves_resumes_and_reports(db, results_dir):
    mid = "m-test"
    env = dict(os.environ, ASGIBENCH_RESULTS=str(results_dir))
    proc = subprocess.Popen([sys.executable, "-m", "asgibench", "matrix", "--id", mid, *ARGS], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 180
        while time.time() < deadline:  # interrupt once the first row-trial is done
            try:
                runs = _state(results_dir, mid)["runs"]
                if any(r.get("status") == "completed" for r in runs.values()):
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
    assert "median req/s" in res.stdout  # the final table
    rep = cli("report", mid, results=results_dir, timeout=200)
    assert rep.returncode == 0, rep.stderr[-2000:]
    assert (results_dir / "report.md").exists() and (results_dir / "summary.csv").exists()
