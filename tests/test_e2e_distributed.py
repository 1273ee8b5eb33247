"""Distributed load (Locust master + workers) and external targets, on loopback only."""
import csv
from contextlib import ExitStack

import pytest

from asgibench import cli as asgicli, options, pipeline, procs
from helpers import cli, meta_of, only_run_dir

pytestmark = pytest.mark.e2e


def test_master_and_two_workers_aggregate(db, results_dir):
    tag = "e2e-workers"
    res = cli("bench", "raw-asgi-asyncpg", "--locust-workers", "2", "--users", "6", "--duration", "4s",
              "--warmup", "0", results=results_dir, env={"ASGIBENCH_RUN_TAG": tag})
    assert res.returncode == 0, res.stderr[-2000:]
    run_dir = only_run_dir(results_dir, "raw-asgi-asyncpg")
    meta = meta_of(run_dir)
    s = meta["summary"]
    assert s["requests"] > 0 and s["failures"] == 0
    # every worker did work and reported it; the master's totals are their sum
    per = [p for p in meta["generator"]["per_process"] if p["role"] == "worker"]
    assert len(per) == 2 and all(p["requests"] > 0 for p in per)
    assert sum(p["requests"] for p in per) == s["requests"]
    assert sorted(p.name for p in run_dir.glob("timings*.bin")) == ["timings.bin", "timings.worker0.bin",
                                                                     "timings.worker1.bin"]
    assert s["exact_percentiles_ms"]["count"] == s["requests"]
    with open(run_dir / "locust_stats.csv", newline="") as fh:
        agg = [r for r in csv.DictReader(fh) if r["Name"] == "Aggregated"][0]
    flows = s["flow"]["iterations"]
    assert int(agg["Request Count"]) == s["requests"] + flows  # Locust's Aggregated includes the FLOW row
    assert meta["plan"]["locust_workers"] == 2
    assert not procs.tagged_pids(tag)


def test_external_target_contract_then_load(db, results_dir, tmp_path):
    """A server asgibench did not start: contract first, then load; meta says it was external."""
    opts = options.build_options(asgicli.parser().parse_args(["bench", "uvicorn", "--quiet"]))
    with ExitStack() as stack:
        st = pipeline.bring_up(opts, stack, tmp_path / "server.log")
        res = cli("bench", "uvicorn", "--target", st.base_url, "--users", "3", "--duration", "3s", "--warmup", "0",
                  results=results_dir, env={"DATABASE_URL": db.url})
        assert res.returncode == 0, res.stderr[-2000:]
        assert st.server.alive(), "bench --target must not stop a server it did not start"
    meta = meta_of(only_run_dir(results_dir, "uvicorn"))
    assert meta["server"] == {"external": True, "url": st.base_url}
    assert meta["contract"]["passed"] and meta["summary"]["requests"] > 0 and meta["summary"]["failures"] == 0


@pytest.mark.parametrize("args, message", [
    (["--target", "http://10.1.2.3:8000"], "is not a loopback address: add --allow-remote"),
    (["--target", "ftp://127.0.0.1"], "--target must be a URL"),
    (["--master-bind", "0.0.0.0"], "is not loopback: add --allow-remote"),
    (["--locust-workers", "2", "--processes", "2"], "pick one"),
])
def test_distributed_usage_errors(args, message, tmp_path):
    res = cli("bench", "uvicorn", *args, results=tmp_path)
    assert res.returncode == 2
    assert message in res.stderr.strip().splitlines()[-1]


def test_target_without_database_url_is_refused(tmp_path):
    env = {"DATABASE_URL": ""}
    res = cli("bench", "uvicorn", "--target", "http://127.0.0.1:9", results=tmp_path, env=env)
    assert res.returncode == 2 and "--target needs DATABASE_URL" in res.stderr
