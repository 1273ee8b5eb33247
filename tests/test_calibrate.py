"""Generator honesty: calibrate measures Locust's ceiling here; trials near it are flagged."""
import json

import pytest

from asgibench import calibrate, metrics, results
from helpers import cli


@pytest.fixture
def ceiling(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    (tmp_path / "calibration.json").write_text(json.dumps({"ceiling_rps": 4000.0}))
    return tmp_path


def test_generator_bound_rules(ceiling):
    ok = metrics.generator_bound({"cpu_percent_of_one_core": 40.0, "processes": 1}, {"rps": 1500})
    assert ok == {"bound": False, "bound_reasons": [], "calibrated_ceiling_rps": 4000.0}
    hot = metrics.generator_bound({"cpu_percent_of_one_core": 95.0, "processes": 1}, {"rps": 100})
    assert hot["bound"] and "95% of one core" in hot["bound_reasons"][0]
    # two processes at 95% together are 47.5% each: not saturated
    assert not metrics.generator_bound({"cpu_percent_of_one_core": 95.0, "processes": 2}, {"rps": 100})["bound"]
    fast = metrics.generator_bound({"cpu_percent_of_one_core": 50.0, "processes": 1}, {"rps": 2100})
    assert fast["bound"] and "above half the calibrated Locust ceiling" in fast["bound_reasons"][0]
    warned = metrics.generator_bound({"cpu_percent_of_one_core": 10.0, "cpu_warning": True}, {"rps": 1})
    assert warned["bound"] and warned["bound_reasons"] == ["Locust warned: CPU usage above 90%"]


def test_no_calibration_means_only_cpu_rules(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    assert calibrate.ceiling() is None
    assert not metrics.generator_bound({"cpu_percent_of_one_core": 50.0}, {"rps": 1e9})["bound"]


@pytest.mark.e2e
def test_calibrate_end_to_end(db, tmp_path):
    res = cli("calibrate", "--duration", "3s", "--open-rates", "20,40000", results=tmp_path, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    data = json.loads((tmp_path / "calibration.json").read_text())
    assert data["ceiling_rps"] > 100
    for key in ("bare", "api_flow", "original_flow"):
        assert data[key]["requests"] > 0 and data[key]["failures"] == 0
        assert data[key]["net_us_per_request"] > 0
    assert data["original_cost_ratio"] > 0 and data["api_cost_ratio"] > 0
    assert "Locust ceiling on this machine" in res.stdout
    # the open model's sweep: 20/s is held (within 2%: the dispatcher keeps its rate), 40,000/s is far past
    # one Locust process here (~2,000 bare GETs/s): not held, and the sweep says so and stops there
    om = data["open_model"]
    assert [s["target_per_s"] for s in om["steps"]] == [20.0, 40000.0]
    low, high = om["steps"]
    assert low["held"] and low["achieved_per_s"] >= 0.98 * 20 and low["failures"] == 0
    assert not high["held"] and high["achieved_per_s"] < 0.98 * 40000
    assert om["held_up_to_per_s"] == 20.0 and om["first_not_held_per_s"] == 40000.0
    assert "NOT HELD" in res.stdout and "held its rate within 2% up to 20.0 arrivals/s" in res.stdout
