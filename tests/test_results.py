"""Result writing: run folders are never reused, meta.json is atomic, percentiles are right; the one
calibration reader serves the runner (no argument) and the report (candidate files)."""
import json

import benchcontract
from asgibench import results


def test_run_dirs_never_collide(tmp_path):
    made = {results.new_run_dir("v", "readme", tmp_path) for _ in range(5)}
    assert len(made) == 5
    assert all(p.parent == tmp_path / "v" for p in made)


def test_meta_is_replaced_atomically(tmp_path):
    results.write_meta(tmp_path, {"status": "running"})
    results.write_meta(tmp_path, {"status": "completed", "n": 1})
    assert json.loads((tmp_path / "meta.json").read_text()) == {"status": "completed", "n": 1}
    assert not (tmp_path / "meta.json.tmp").exists()


def test_meta_json_is_indented_and_keeps_key_order(tmp_path):
    # the same file as before the writer moved to files.write_json_atomic: indent=2, insertion order,
    # anything JSON cannot encode as its str()
    results.write_meta(tmp_path, {"z": 1, "a": {"path": tmp_path}})
    text = (tmp_path / "meta.json").read_text()
    assert text == json.dumps({"z": 1, "a": {"path": str(tmp_path)}}, indent=2)


def test_bucket_percentile_matches_locust_definition():
    # Locust (stats.calculate_response_time_percentile) walks buckets from the top and returns the first
    # bucket at which at most n - int(n*q) requests have been seen: for this data p50 is 20, not 10.
    buckets = {10.0: 50, 20.0: 45, 300.0: 5}
    assert results.bucket_percentile(buckets, 100, 0.5) == 20.0
    assert results.bucket_percentile(buckets, 100, 0.9) == 20.0
    assert results.bucket_percentile(buckets, 100, 0.95) == 300.0
    assert results.bucket_percentile(buckets, 100, 0.3) == 10.0


def test_summary_leaves_out_the_flow_entry(tmp_path):
    def entry(method, name, n, rt):
        return {"method": method, "name": name, "num_requests": n, "num_failures": 0, "start_time": 100.0,
                "last_request_timestamp": 110.0, "total_response_time": n * rt, "max_response_time": rt,
                "response_times": {str(rt): n}}

    flow = entry(benchcontract.FLOW_REQUEST_TYPE, benchcontract.FLOW_NAME, 25, 40.0)
    (tmp_path / "locust.json").write_text(json.dumps([entry("GET", "/api/troupe/", 50, 10.0), flow]))
    s = results.summarize(tmp_path)
    assert s["requests"] == 50 and s["rps"] == 5.0 and list(s["endpoints"]) == ["GET /api/troupe/"]
    assert s["flow"]["iterations"] == 25 and s["flow"]["p50_ms"] == 40.0


def test_one_calibration_reader_for_the_runner_and_the_report(tmp_path, monkeypatch):
    monkeypatch.setattr(results, "RESULTS_DIR", tmp_path)
    assert results.calibration() is None  # not calibrated
    (tmp_path / "calibration.json").write_text(json.dumps({"ceiling_rps": 4000.0, "api_cost_ratio": 1.2}))
    # the runner: no argument, results/calibration.json
    assert results.calibration() == {"ceiling_rps": 4000.0, "api_cost_ratio": 1.2,
                                     "_path": str(tmp_path / "calibration.json")}
    # the report: the first candidate that holds a ceiling; missing, broken, non-dict and unmeasured ones are skipped
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "list.json").write_text("[1, 2]")
    (tmp_path / "unmeasured.json").write_text(json.dumps({"ceiling_rps": None}))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"ceiling_rps": 5000.0}))
    found = results.calibration(None, tmp_path / "missing.json", tmp_path / "broken.json", tmp_path / "list.json",
                                tmp_path / "unmeasured.json", tmp_path, other, tmp_path / "calibration.json")
    assert found == {"ceiling_rps": 5000.0, "_path": str(other)}
    assert results.calibration(tmp_path / "missing.json") is None  # candidates given: no fallback to the default
