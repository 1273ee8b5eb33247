"""The pipeline's parts, without servers: one server interface for ours and theirs, the stack's
record in meta.json, how a run's end is recorded, and the derived figures."""
from __future__ import annotations

import json
import socket
from types import SimpleNamespace

import pytest

from asgibench import envs, loadgen, metrics, policy, runmeta, variants
from asgibench.errors import RunError, UsageError
from asgibench.server import ExternalServer, Server, ServerSpec

INTERFACE = ("base_url", "static_root", "describe", "record", "start", "stop", "alive", "pids", "log_tail")
SERVER_KEYS = ["external", "command", "workers", "port", "db_conn", "db_conn_source", "pool_size_per_worker",
               "pg_driver"]


def _spec(tmp_path, name="uvicorn", db_conn="pool", why="row default"):
    env = envs.Env("django", envs.current_python(), tmp_path / "venv", {"gunicorn": "25.0.0"})
    return ServerSpec(variants.get(name), env, 8123, 2, db_conn, 10, "postgresql://x@127.0.0.1/db",
                      db_conn_source=why)


def test_our_server_answers_the_interface_before_it_starts(tmp_path):
    srv = Server(_spec(tmp_path, why="--db-conn"), tmp_path / "server.log")
    assert all(hasattr(srv, a) for a in INTERFACE)
    assert srv.base_url == "http://127.0.0.1:8123" and srv.static_root == tmp_path / "venv" / "static"
    assert not srv.alive() and srv.pids() == []
    rec = srv.record()
    assert list(rec) == SERVER_KEYS
    assert rec["external"] is False and rec["db_conn"] == "pool" and rec["db_conn_source"] == "--db-conn"
    assert rec["pool_size_per_worker"] == 10 and rec["workers"] == 2 and rec["port"] == 8123
    assert rec["command"] == srv.spec.command()
    assert srv.describe().endswith("... (2 worker(s), db pool) on http://127.0.0.1:8123")
    rec = Server(_spec(tmp_path, db_conn="persistent"), tmp_path / "server.log").record()
    assert rec["pool_size_per_worker"] is None  # no pool: nothing to record


def test_their_server_answers_the_same_interface(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        srv = ExternalServer(f"http://127.0.0.1:{port}/")
        assert all(hasattr(srv, a) for a in INTERFACE)
        assert srv.base_url == f"http://127.0.0.1:{port}" and srv.static_root is None
        assert srv.alive() and srv.pids() == [] and srv.start() is None and srv.stop() is None
        assert srv.record() == {"external": True, "url": srv.base_url}
        assert srv.describe() == f"external {srv.base_url} (not started by asgibench)"
    assert not srv.alive() and srv.log_tail() == f"{srv.base_url} stopped accepting connections"
    with pytest.raises(RunError, match=f"target http://127.0.0.1:{port} does not accept connections"):
        ExternalServer(f"http://127.0.0.1:{port}")


def _stack(server, env=None, seed=None):
    db = SimpleNamespace(describe=lambda: {"kind": "embedded", "url": "postgresql://x@h/db"})
    report = SimpleNamespace(as_dict=lambda: {"passed": True, "checks": []})
    return SimpleNamespace(env=env, seed=seed, server=server, db=db, contract=report)


def test_stack_meta_of_our_server_and_of_theirs(tmp_path):
    srv = Server(_spec(tmp_path), tmp_path / "server.log")
    meta = runmeta.stack_meta(_stack(srv, env=srv.spec.env, seed={"scale": 1, "seeded": "now"}))
    assert list(meta) == ["python", "env", "runner", "server", "database", "contract"]
    assert meta["python"] == envs.current_python() and meta["env"]["group"] == "django"
    assert meta["database"] == {"kind": "embedded", "url": "postgresql://x@h/db", "seed": {"scale": 1, "seeded": "now"}}
    assert list(meta["server"]) == SERVER_KEYS and "pytest" in meta["runner"]["packages"]
    theirs = SimpleNamespace(record=lambda: {"external": True, "url": "http://127.0.0.1:9"})
    meta = runmeta.stack_meta(_stack(theirs))
    assert list(meta) == ["runner", "server", "database", "contract"]
    assert meta["server"] == {"external": True, "url": "http://127.0.0.1:9"} and "seed" not in meta["database"]


def test_placement_record():
    assert runmeta.placement_record({}) == {"pinned": None, "policy": f"not pinned ({policy.PLACEMENT_DEFAULT})"}
    assert runmeta.placement_record({"server": {1, 0}, "locust": {2}}) == {
        "pinned": {"server": [0, 1], "locust": [2]}, "policy": "--pin"}


@pytest.mark.parametrize("exc, status", [(None, "completed"), (RunError("boom"), "failed"),
                                         (UsageError("boom"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_recorded_says_how_the_run_ended(exc, status, tmp_path):
    meta = {"status": "running"}
    try:
        with runmeta.recorded(tmp_path, meta):
            if exc:
                raise exc
    except (RunError, UsageError, KeyboardInterrupt) as e:
        assert e is exc  # recorded, then re-raised as it was (a refusal keeps its exit code 2)
    written = json.loads((tmp_path / "meta.json").read_text())
    assert written["status"] == status and "ended_at" in written and "loadavg" in written["machine_after"]
    assert written.get("error") == ("boom" if status == "failed" else None)
    assert written.get("interrupted") is (True if status == "interrupted" else None)
    meta = {"status": "server-died"}
    with pytest.raises(RunError), runmeta.recorded(tmp_path, meta):
        raise RunError("died")
    assert meta["status"] == "server-died"  # a status set on the way is kept


def test_derived_figures(tmp_path):
    io = loadgen.LoadPlan(scenario=loadgen.IO, flow="io", users=4, io_seconds=0.5)
    summary = {"rps": 6.0, "requests": 60, "seconds": 10.0}
    metrics.derive(summary, io)
    assert summary["concurrency"] == {"users": 4, "sleep_seconds": 0.5, "ideal_rps": 8.0, "achieved_rps": 6.0,
                                      "efficiency": 0.75}
    assert "open_model" not in summary
    opened = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="api", users=20, arrival_rate=10.0)
    summary = {"rps": 30.0, "requests": 300, "seconds": 10.0, "flow": {"iterations": 96}}
    metrics.derive(summary, opened)
    # 9.6 of 10 arrivals/s: 4% short, so not held within the 2% the open model promises (stats.OPEN_MODEL_HELD)
    assert summary["open_model"] == {"target_per_s": 10.0, "achieved_per_s": 9.6, "users": 20, "held": False}
    summary = {"rps": 30.0, "requests": 300, "seconds": 10.0, "flow": {"iterations": 99}}
    metrics.derive(summary, opened)
    assert summary["open_model"]["held"] is True  # 1% short: held
    assert "concurrency" not in summary


def test_generator_record(tmp_path, monkeypatch):
    from asgibench import results

    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path / "none")  # no calibration here
    for i, (cpu, n, warned) in enumerate(((1.5, 300, False), (0.5, 100, True))):
        (tmp_path / f"generator{'' if i == 0 else f'.worker{i}'}.json").write_text(json.dumps(
            {"run": {"cpu_s": cpu, "wall_s": 10.0}, "requests": n, "cpu_warning_emitted": warned}))
    load = loadgen.LoadResult(exit_code=0, wall_seconds=12.3456, generator_cpu_seconds=2.71828)
    plan = loadgen.LoadPlan(scenario=loadgen.CONSTANT, flow="api", processes=1)
    gen = metrics.generator(tmp_path, load, plan, {"rps": 40.0})
    assert list(gen) == ["cpu_seconds", "cpu_percent_of_one_core", "cpu_us_per_request", "cpu_warning", "processes",
                         "per_process", "process_cpu_seconds_incl_startup", "locust_exit_code",
                         "wall_seconds_incl_startup", "processes_option", "bound", "bound_reasons",
                         "calibrated_ceiling_rps"]
    assert gen["cpu_seconds"] == 2.0 and gen["cpu_percent_of_one_core"] == 20.0 and gen["cpu_us_per_request"] == 5000.0
    assert gen["processes"] == 2 and gen["process_cpu_seconds_incl_startup"] == 2.718
    assert gen["wall_seconds_incl_startup"] == 12.346 and gen["locust_exit_code"] == 0
    assert gen["bound"] and gen["bound_reasons"] == ["Locust warned: CPU usage above 90%"]
    assert gen["calibrated_ceiling_rps"] is None


def test_cost_memory_balance_and_competing_keys_are_the_contracts():
    """meta.json's new keys are exactly PLAN2's contract (report, compare and figures.py read them)."""
    from asgibench import measure

    tree = measure.Tree(lambda: [])
    summary = {"requests": 10, "rps": 1.0, "window": {"start": 1.0, "stop": 11.0}}
    mem = metrics.memory(summary, tree, 2)
    assert list(mem) == ["server_rss_mb", "server_pss_mb", "per_worker", "db_backends_peak"]
    assert mem["server_rss_mb"] == mem["server_pss_mb"] == {"steady": None, "peak": None}
    assert list(metrics.cost(summary, tree, None, {"cpu_seconds": 0.1}, mem)) == [
        "server_us_per_request", "db_us_per_request", "generator_us_per_request", "capacity_per_server_core",
        "rps_per_gb", "server_cpu_seconds", "db_cpu_seconds", "window_s", "server_ref_us_per_request",
        "capacity_per_ref_core"]
    sampler = measure.Sampler({})
    assert list(sampler.speed(0.0, 1.0)) == ["probe_us", "probe_runs", "speed_factor", "steal_pct", "probe_nominal_us"]
    assert metrics.balance(summary, tree) is None
    got = metrics.competing({"cpu_seconds": 1.0, "per_process": [{"run": {"wall_s": 10.0}}]}, 0.95, cpu_count=2)
    assert {"machine_share", "competing", "competing_reason"} <= set(got) and got["machine_share"] == 0.05
