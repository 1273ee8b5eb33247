"""Result writing: run folders are never reused, meta.json is atomic, percentiles are right; the one
calibration reader serves the runner (no argument) and the report (candidate files)."""
import json
import random
import threading

import pytest

import benchcontract
from asgibench import results
from helpers import locust_function


def test_run_dirs_never_collide(tmp_path):
    made = {results.new_run_dir("v", "readme", tmp_path) for _ in range(5)}
    assert len(made) == 5
    assert all(p.parent == tmp_path / "v" for p in made)


def test_meta_is_replaced_atomically(tmp_path):
    results.write_meta(tmp_path, {"status": "running"})
    results.write_meta(tmp_path, {"status": "completed", "n": 1})
    assert json.loads((tmp_path / "meta.json").read_text()) == {"status": "completed", "n": 1}
    assert not (tmp_path / "meta.json.tmp").exists()


def test_a_reader_never_sees_half_a_meta_and_a_crash_keeps_the_last_whole_one(tmp_path, monkeypatch):
    big = {"pad": "x" * 400_000}  # large enough that a plain write is seen half-done
    results.write_meta(tmp_path, {**big, "n": -1})
    stop, seen, bad = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                seen.append(json.loads((tmp_path / "meta.json").read_text())["n"])
            except ValueError as e:
                bad.append(e)

    t = threading.Thread(target=reader)
    t.start()
    try:
        for n in range(60):
            results.write_meta(tmp_path, {**big, "n": n})
    finally:
        stop.set()
        t.join()
    assert not bad and seen, (len(bad), len(seen))
    # the writer dies half-way (the disk fills, the process is killed): the previous file is intact
    real_write = type(tmp_path).write_text

    def half_write(self, text, *a, **kw):
        real_write(self, text[: len(text) // 2], *a, **kw)
        raise OSError("no space left on device")

    monkeypatch.setattr(type(tmp_path), "write_text", half_write)
    with pytest.raises(OSError):
        results.write_meta(tmp_path, {**big, "n": 99})
    monkeypatch.undo()
    assert json.loads((tmp_path / "meta.json").read_text())["n"] == 59


def test_meta_json_is_indented_and_keeps_key_order(tmp_path):
    # the same file as before the writer moved to files.write_json_atomic: indent=2, insertion order,
    # anything JSON cannot encode as its str()
    results.write_meta(tmp_path, {"z": 1, "a": {"path": tmp_path}})
    text = (tmp_path / "meta.json").read_text()
    assert text == json.dumps({"z": 1, "a": {"path": str(tmp_path)}}, indent=2)


def test_bucket_percentile_matches_locusts_own_function():
    """Against locust.stats.calculate_response_time_percentile itself (Locust's installed source), on
    hand-made edge cases and on random bucket sets shaped like Locust's (2 significant figures)."""
    theirs = locust_function("stats", "calculate_response_time_percentile")
    rng = random.Random(16)
    cases = [({10: 50, 20: 45, 300: 5}, 100), ({10: 1}, 1), ({1: 3, 2: 3}, 6), ({5: 99, 7000: 1}, 100),
             ({1: 1, 2: 1, 3: 1, 4: 1, 5: 1, 6: 1, 7: 1}, 7)]  # one request per bucket: every rank shows
    for _ in range(40):
        buckets = {}
        for _ in range(rng.randint(1, 30)):
            rt = rng.choice([rng.randint(0, 99), rng.randint(10, 99) * 10, rng.randint(10, 99) * 100])
            buckets[rt] = buckets.get(rt, 0) + rng.randint(1, 500)
        cases.append((buckets, sum(buckets.values())))
    qs = (0.0, 0.3, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0, *(rng.random() for _ in range(12)))
    queries = [[b, n, q] for b, n in cases for q in qs]
    ours = [results.bucket_percentile({float(k): v for k, v in b.items()}, n, q) for b, n, q in queries]
    assert ours == [theirs(b, n, q) for b, n, q in queries]


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
    assert s["flow"]["iterations_per_s"] == 2.5  # over the same window as req/s


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
