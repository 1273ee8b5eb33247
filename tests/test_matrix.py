"""The matrix's plan (unit: no PostgreSQL, server or Locust): which scenario runs which flow on which row,
with which connections, and the 60-minute budget of the default matrix."""
import pytest

from asgibench import loadgen, matrix, variants

ADMIN_ROWS = [v for v in variants.VARIANTS if "admin" in v.serves]
API_ONLY_ROWS = [v for v in variants.VARIANTS if "admin" not in v.serves]


def _settings(**kw):
    return matrix.MatrixSettings(rows=[v.name for v in variants.VARIANTS], scenarios=list(matrix.DEFAULT_SCENARIOS),
                                 **kw)


def test_api_flow_on_every_row_and_the_original_flow_on_admin_rows_only():
    assert matrix.DEFAULT_SCENARIOS == ("api", "original", "io")
    assert ADMIN_ROWS and API_ONLY_ROWS
    s = _settings()
    for v in variants.VARIANTS:
        ran = {sc: matrix.plan_for(s, v, sc) for sc in s.scenarios if matrix.applies(sc, v)}
        assert ran["api"].flow == "api" and ran["io"].flow == "io"
        assert ("original" in ran) == ("admin" in v.serves), v.name
        if "original" in ran:
            assert ran["original"].flow == "original"
        assert matrix.plan_for(s, v, "keepalive").flow == "api" and matrix.applies("keepalive", v)
        assert matrix.plan_for(s, v, "cpu").flow == v.default_flow  # the old scenario, kept for old matrices
        io = ran["io"]
        assert io.scenario == loadgen.IO and io.io_path == v.io_probe and io.duration == s.io_duration


def test_default_flows_turn_connections_over_and_keepalive_keeps_them():
    s = _settings()
    v = variants.get("uvicorn")
    for sc in ("api", "original"):
        p = matrix.plan_for(s, v, sc)
        assert p.reconnect_every == matrix.RECONNECT_EVERY > 0 and p.scenario == loadgen.CONSTANT
        assert p.users == s.users and p.duration == s.duration
        assert "--reconnect-every" in loadgen.command(p, "http://127.0.0.1:1", _Out())
    for sc in ("keepalive", "cpu", "io"):
        p = matrix.plan_for(s, v, sc)
        assert p.reconnect_every == 0
        assert "--reconnect-every" not in loadgen.command(p, "http://127.0.0.1:1", _Out())
    assert matrix.plan_for(s, v, "keepalive").duration == s.keepalive_duration


class _Out:
    def __truediv__(self, other):
        return f"/nowhere/{other}"


def test_default_matrix_fits_its_budget():
    s = _settings()
    assert (s.trials, s.duration, s.io_duration, s.warmup, s.users) == (3, 12.0, 8.0, 3.0, 10)
    per_row = matrix.SERVER_OVERHEAD_SECONDS + s.warmup
    scenario = {sc: matrix.LOCUST_OVERHEAD_SECONDS + s.scenario_seconds(sc) for sc in s.scenarios}
    expected = s.trials * (len(variants.VARIANTS) * (per_row + scenario["api"] + scenario["io"])
                           + len(ADMIN_ROWS) * scenario["original"])
    assert s.estimate_seconds() == pytest.approx(expected)
    assert s.estimate_seconds() <= 60 * 60, s.estimate_seconds() / 60
    # a row none of the scenarios applies to is not started (cmd_matrix leaves it out, saying why)
    assert matrix.MatrixSettings(rows=[API_ONLY_ROWS[0].name], scenarios=["original"]).estimate_seconds() == 0


def test_cmd_matrix_leaves_out_rows_no_scenario_applies_to(monkeypatch, capsys, tmp_path):
    import argparse

    from asgibench import results

    planned = []
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    monkeypatch.setattr(matrix.Matrix, "run", lambda self, quiet=False: planned.append(self.settings) or 0)
    p = argparse.ArgumentParser()
    matrix.add_arguments(p)
    admin, api_only = ADMIN_ROWS[0].name, API_ONLY_ROWS[0].name
    assert matrix.cmd_matrix(p.parse_args(["--variants", f"{admin},{api_only}", "--scenario", "original"])) == 0
    assert planned[-1].rows == [admin] and planned[-1].scenarios == ["original"]
    assert f"skipping {api_only}: none of the scenarios original applies to it" in capsys.readouterr().err
    assert matrix.cmd_matrix(p.parse_args(["--variants", f"{admin},{api_only}"])) == 0  # the default: both rows
    assert planned[-1].rows == [admin, api_only] and planned[-1].scenarios == list(matrix.DEFAULT_SCENARIOS)
    assert (planned[-1].duration, planned[-1].io_duration, planned[-1].keepalive_duration) == (12.0, 8.0, 12.0)
    with pytest.raises(matrix.UsageError, match="matrix scenarios are api, original, io, keepalive, cpu"):
        matrix.cmd_matrix(p.parse_args(["--variants", admin, "--scenario", "api,nope"]))


@pytest.mark.parametrize("scenario, failed", [("capacity", False), ("api", True)])
def test_failed_requests_fail_a_row_trial_except_the_capacity_ladders(monkeypatch, tmp_path, capsys, scenario, failed):
    """The ladder pushes past the knee on purpose (its overload step's timeouts are figures, the run's
    verdict accepts them): a capacity matrix whose ladders failed requests exits 0 and marks no FAIL;
    the same failures in an api run fail the row-trial. The pipeline's steps are stood in for here (the
    matrix's own bookkeeping is what is tested; e2e tests run the real ones)."""
    from asgibench import database, pipeline

    class Db:
        def release(self):
            pass

    def measure(st, opts, plan, run_dir, meta):
        meta.update(status="completed", summary={"rps": 50.0, "requests": 500, "failures": 7,
                                                  "exact_percentiles_ms": {"p95": 9.0}})
        if scenario == "capacity":
            meta["capacity"] = {"capacity_rps": 40.0, "capacity_ref_rps": 44.0}
    monkeypatch.setattr(database, "open_database", lambda: Db())
    monkeypatch.setattr(pipeline, "validate", lambda opts: None)
    monkeypatch.setattr(pipeline, "bring_up", lambda opts, stack, log: object())
    monkeypatch.setattr(pipeline, "measure", measure)
    m = matrix.Matrix("t", matrix.MatrixSettings(rows=["raw-asgi-asyncpg"], scenarios=[scenario], trials=1),
                      root=tmp_path)
    assert m.run() == (1 if failed else 0)
    out = capsys.readouterr().out
    assert ("FAIL" in out.split("srv µs/req")[1].splitlines()[1]) is failed
    assert ("capacity at SLO 40.0 req/s (at ref. speed 44.0)" in out) is (scenario == "capacity")
