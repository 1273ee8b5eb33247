"""`asgibench compare` on synthetic run folders (no server, no PostgreSQL, no Locust): verdicts that
could go either way, the bootstrap interval against an independent computation, pairing and its
refusals, the outputs and the exit codes of the command as a user runs it."""
from __future__ import annotations

import csv
import json
import statistics

import numpy
import pytest

from asgibench import cli as asgibench_cli, errors, figures
from asgibench.errors import UsageError
from asgibench.report import compare, verdicts
from helpers import cli


def meta(variant="uvicorn", rps=1000.0, *, matrix="m1", trial=1, flow="api", users=8, workers=2, p99=40.0,
         server_us=500.0, family="asgi", scenario="constant", status="completed", django=None):
    plan = {"scenario": scenario, "flow": flow, "users": users, "peak_users": users, "seconds": 10.0,
            "api_prefix": "/api/", "io_seconds": 0.5, "time_scale": 1.0, "processes": 1}
    m = {"status": status, "plan": plan, "python": "3.11", "started_at": f"2026-12-01T00:00:0{trial}Z",
         "variant": {"name": variant, "family": family, "server": "uvicorn", "serves": ["api"]},
         "server": {"workers": workers, "db_conn": "pool"}, "matrix": {"id": matrix, "trial": trial, "trials": 3},
         "generator": {"bound": False, "bound_reasons": []}, "django": {"requested": None, "version": django}}
    if status == "completed":
        m["summary"] = {"requests": int(rps * 10), "failures": 0, "rps": rps,
                        "exact_percentiles_ms": {"p50": p99 / 4, "p99": p99},
                        "cost": {"server_us_per_request": server_us}}
    return m


def runs(root, side, metas):
    for i, m in enumerate(metas):
        d = root / side / f"{m['variant']['name']}-{i}"
        d.mkdir(parents=True)
        (d / "meta.json").write_text(json.dumps(m))
    return root / side


def trio(values, **kw):
    return [meta(rps=v, trial=i, **kw) for i, v in enumerate(values, 1)]


def line(res, row, fig):
    (c,) = [c for c in res["lines"] if c["row"] == row and c["figure"] == fig]
    return c


def test_a_clear_20pct_regression_is_worse_and_fails_the_gate(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1010, 990]))
    new = runs(tmp_path, "new", trio([800, 812, 790], matrix="m2", p99=50.0))
    res = compare.compare([str(base)], [str(new)], tmp_path, fail_if_worse=10)
    rps = line(res, "uvicorn", "rps")
    assert rps["ratio"] == pytest.approx(800.667 / 1000, abs=1e-4)
    assert rps["ci_high"] < 1 and rps["verdict"] == verdicts.WORSE
    assert line(res, "uvicorn", "p99_ms")["verdict"] == verdicts.WORSE  # lower is better: 40 -> 50 ms
    # identical server CPU on both sides: no difference (the CI is the single point 1.0)
    assert line(res, "uvicorn", "server_us_per_request")["verdict"] == verdicts.SAME
    assert {c["figure"] for c in res["failed"]} == {"rps", "p50_ms", "p99_ms"}
    assert verdicts.failures(res["lines"], 25) == [] and verdicts.failures(res["lines"], 19) != []


def test_an_improvement_is_better_in_each_direction(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1010, 990], p99=50.0))
    new = runs(tmp_path, "new", trio([1200, 1210, 1190], p99=40.0))
    res = compare.compare([str(base)], [str(new)], tmp_path, fail_if_worse=0)
    assert line(res, "uvicorn", "rps")["verdict"] == verdicts.BETTER
    assert line(res, "uvicorn", "p99_ms")["verdict"] == verdicts.BETTER
    assert res["failed"] == []


def test_same_distribution_noisy_samples_are_no_significant_difference(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1070, 940]))
    new = runs(tmp_path, "new", trio([1040, 960, 1010]))
    res = compare.compare([str(base)], [str(new)], tmp_path, fail_if_worse=0)
    rps = line(res, "uvicorn", "rps")
    assert rps["ci_low"] < 1 < rps["ci_high"] and rps["verdict"] == verdicts.SAME
    assert res["failed"] == []


def test_a_change_within_the_noise_floor_is_not_called():
    """The bootstrap of 3 trials can exclude 1 for a 2% shift; a 6.5% CV side means that is noise."""
    fig = figures.BY_KEY["rps"]
    assert verdicts.verdict(fig, 0.98, (0.97, 0.99), 6.5) == (verdicts.SAME, "2.0% is within the noise floor (6.5% CV)")
    assert verdicts.verdict(fig, 0.90, (0.85, 0.95), 6.5)[0] == verdicts.WORSE
    assert verdicts.verdict(fig, 0.90, None, None)[0] == verdicts.UNTESTED


def test_bootstrap_interval_is_seeded_and_matches_an_independent_resampling():
    b, n = [100.0, 104.0, 97.0, 101.0], [90.0, 93.0, 88.0]
    ci = verdicts.bootstrap_ratio_ci(b, n, seed=7)
    assert ci == verdicts.bootstrap_ratio_ci(b, n, seed=7)  # reproducible
    rng = numpy.random.default_rng(12345)  # another seed, a plain loop: the same interval within noise
    ratios = [statistics.fmean(rng.choice(n, len(n))) / statistics.fmean(rng.choice(b, len(b))) for _ in range(5000)]
    lo, hi = numpy.percentile(ratios, [2.5, 97.5])
    assert ci[0] == pytest.approx(lo, abs=0.008) and ci[1] == pytest.approx(hi, abs=0.008)
    assert ci[0] <= statistics.fmean(n) / statistics.fmean(b) <= ci[1]
    assert verdicts.bootstrap_ratio_ci([100.0], n, seed=1) is None  # one trial: no interval


def test_one_trial_per_side_has_no_ci_and_never_fails(tmp_path):
    base = runs(tmp_path, "base", [meta(rps=1000)])
    new = runs(tmp_path, "new", [meta(rps=500)])
    res = compare.compare([str(base)], [str(new)], tmp_path, fail_if_worse=1)
    rps = line(res, "uvicorn", "rps")
    assert rps["ci_low"] is None and rps["verdict"] == verdicts.UNTESTED and "fewer than 2 trials" in rps["why"]
    assert res["failed"] == []
    assert "no CI (n<2)" in compare.terminal_table(res)


def test_mixed_flows_and_load_settings_are_refused_unless_allowed(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1010, 990]))
    new = runs(tmp_path, "new", trio([1000, 1010, 990], flow="original", users=16))
    with pytest.raises(UsageError, match=r"different flow or load settings: flow api vs original; users 8 vs 16"):
        compare.compare([str(base)], [str(new)], tmp_path)
    res = compare.compare([str(base)], [str(new)], tmp_path, allow_mixed=True)
    # the report labels rows without their flow (its section names it): the "changed" cell says it
    assert line(res, "uvicorn", "rps")["changed"] == "flow api vs original; users 8 vs 16"


def test_server_settings_pair_with_what_changed_and_one_side_rows_are_listed(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1010, 990], workers=1) + trio([500, 505, 495], variant="daphne"))
    new = runs(tmp_path, "new", trio([1900, 2010, 1990], workers=2, django="5.2.1")
               + trio([700, 705, 695], variant="hypercorn"))
    res = compare.compare([str(base)], [str(new)], tmp_path)
    rps = line(res, "uvicorn", "rps")
    assert rps["changed"] == "workers 1 -> 2; Django - -> 5.2.1" and rps["verdict"] == verdicts.BETTER
    assert [r.variant for r in res["base_only"]] == ["daphne"] and [r.variant for r in res["new_only"]] == ["hypercorn"]
    text = compare.terminal_table(res)
    assert "BASE only" in text and "daphne" in text and "NEW only" in text and "hypercorn" in text


def test_trials_of_several_matrices_pool_and_incomplete_trials_are_left_out(tmp_path):
    base = runs(tmp_path, "base", trio([1000, 1010], matrix="a") + trio([990], matrix="b")
                + [meta(rps=1, status="interrupted", trial=4)])
    new = runs(tmp_path, "new", trio([800, 810, 790], matrix="c"))
    res = compare.compare([str(base)], [str(new)], tmp_path)
    assert line(res, "uvicorn", "rps")["base_n"] == 3 and line(res, "uvicorn", "rps")["base_mean"] == 1000


def test_a_row_without_a_completed_trial_is_listed_not_compared(tmp_path):
    base = runs(tmp_path, "base", [meta(status="interrupted", trial=i) for i in (1, 2)])
    new = runs(tmp_path, "new", trio([800, 810, 790], matrix="c"))
    res = compare.compare([str(base)], [str(new)], tmp_path)
    assert res["lines"] == [] and [r.variant for r in res["base_only"]] == ["uvicorn"]
    assert "uvicorn (constant, api): 0 trial(s), 2 not completed" in compare.terminal_table(res)


def test_family_geometric_mean():
    lines = [{"family": "asgi", "figure": "rps", "ratio": r, "verdict": verdicts.SAME} for r in (0.5, 2.0, 1.0)]
    (f,) = verdicts.family_summary(lines)
    assert f["geomean_ratio"] == pytest.approx(1.0) and f["rows"] == 3


def run_cli(capsys, *argv):
    """The command in this process (the parser, the command function and the exit-code mapping)."""
    code = errors.exit_code(asgibench_cli._dispatch, list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_the_command_writes_outputs_never_overwrites_and_exits_1_naming_the_regression(tmp_path, capsys):
    runs(tmp_path, "base", trio([1000, 1010, 990]))
    runs(tmp_path, "new", trio([800, 812, 790], matrix="m2"))
    code, out, err = run_cli(capsys, "compare", "base", "new", "--fail-if-worse", "10", "--results", str(tmp_path))
    assert code == 1, err
    assert "significantly worse: uvicorn req/s (19.9% worse)" in err
    assert "worse !" in out and "NEW/BASE" in out
    out = tmp_path / "compare" / "base-vs-new"
    rows = list(csv.DictReader(open(out / "compare.csv")))
    assert {row["figure"] for row in rows} == {"rps", "p50_ms", "p99_ms", "server_us_per_request"}
    assert rows[0]["base_runs"].startswith("../../base/")
    assert "FAILED: uvicorn req/s" in (out / "compare.md").read_text()
    # a second run: a new folder, exit 0 without the gate; an existing --out is refused
    assert run_cli(capsys, "compare", "base", "new", "--results", str(tmp_path))[0] == 0
    assert (tmp_path / "compare" / "base-vs-new-2" / "compare.md").exists()
    code, _, err = run_cli(capsys, "compare", "base", "new", "--out", str(out), "--results", str(tmp_path))
    assert code == 2 and "--force" in err


def test_the_command_refuses_mixed_runs_with_one_line_exit_2(tmp_path):  # as a user runs it: a process
    runs(tmp_path, "base", trio([1000, 1010, 990]))
    runs(tmp_path, "new", trio([1000, 1010, 990], users=16, matrix="m2"))
    r = cli("compare", "m1", "m2", results=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip().count("\n") == 0 and "users 8 vs 16" in r.stderr and "--allow-mixed" in r.stderr
