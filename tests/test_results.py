"""Result writing: run folders are never reused, meta.json is atomic, percentiles are right."""
import json

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


def test_bucket_percentile_matches_locust_definition():
    # Locust (stats.calculate_response_time_percentile) walks buckets from the top and returns the first
    # bucket at which at most n - int(n*q) requests have been seen: for this data p50 is 20, not 10.
    buckets = {10.0: 50, 20.0: 45, 300.0: 5}
    assert results.bucket_percentile(buckets, 100, 0.5) == 20.0
    assert results.bucket_percentile(buckets, 100, 0.9) == 20.0
    assert results.bucket_percentile(buckets, 100, 0.95) == 300.0
    assert results.bucket_percentile(buckets, 100, 0.3) == 10.0
