"""The verdicts of issue 11 on synthetic data (fast): the stall detector and the measured window from
timings and generator.json, the verdict and its exit code, an unexpected error or a full disk inside a
run's record (one RunError line, status "failed", error.log), the exit mapping outside one."""
from __future__ import annotations

import errno
import json

import pytest

from asgibench import errors, results, runmeta
from asgibench.errors import RunError
from locustfiles import timingfile

T0 = 1_000_000.0


def window(start=T0, stop=T0 + 10):
    return {"start": start, "stop": stop}


def test_no_stall_when_requests_keep_completing():
    done = [T0 + 0.5 * i for i in range(1, 20)]
    assert results.find_stall(done, window(), 5.0) is None


def test_a_gap_inside_the_window_is_a_stall_with_when_and_how_long():
    done = [T0 + 1, T0 + 2, T0 + 8.5, T0 + 9.5]
    st = results.find_stall(done, window(), 5.0)
    assert st == {"threshold_s": 5.0, "stalls": [{"at_s": 2.0, "seconds": 6.5}], "longest_s": 6.5, "total_s": 6.5}


def test_the_gap_from_the_last_completion_to_the_windows_end_counts():
    st = results.find_stall([T0 + 1, T0 + 3], window(), 5.0)
    assert st["stalls"] == [{"at_s": 3.0, "seconds": 7.0}]


def test_no_completion_at_all_is_one_stall_over_the_window_and_completions_outside_it_do_not_count():
    st = results.find_stall([T0 - 1, T0 + 15], window(), 5.0)
    assert st["stalls"] == [{"at_s": 0.0, "seconds": 10.0}]


def test_threshold_is_one_constant_plus_the_io_probes_sleep():
    assert results.stall_threshold() == results.STALL_SECONDS == 5.0
    assert results.stall_threshold(2.0) == 7.0
    assert results.find_stall([T0 + 1, T0 + 7.5], window(stop=T0 + 8), results.stall_threshold(2.0)) is None


def write_run(tmp, completions_ok, completions_failed=(), stopping=10.0):
    """A run folder: generator.json (test start T0, stopping at T0+stopping) and a timings.bin whose
    requests of 0.1 s complete at the given offsets."""
    (tmp / "generator.json").write_text(json.dumps({"run": {"started_at": T0, "stopping_at": T0 + stopping,
                                                            "stopped_at": T0 + stopping + 1}}))
    series = {}
    for ok, ends in ((True, completions_ok), (False, completions_failed)):
        if ends:
            series[timingfile.SeriesKey("GET", "/x", ok)] = timingfile.Series([100.0] * len(ends),
                                                                             [e - 0.1 for e in ends])
    timingfile.write_timings(str(tmp / "timings.bin"), T0, series)


def test_window_is_test_start_to_stop_not_to_the_last_completion(tmp_path):
    write_run(tmp_path, [1, 2, 3, 4])
    done, last_ok = results.completions(tmp_path)
    w = results.measured_window(tmp_path, T0 + 0.2, last_ok)
    assert w["seconds"] == 10.0 and w["last_completion_s"] == pytest.approx(4, abs=1e-3)
    assert w["early_end_s"] == pytest.approx(6, abs=1e-3)


def test_window_stretches_to_a_later_success_but_not_to_requests_cut_off_at_the_stop_timeout(tmp_path):
    write_run(tmp_path, [5, 10.5], completions_failed=[15.0])
    done, last_ok = results.completions(tmp_path)
    assert len(done) == 3
    w = results.measured_window(tmp_path, None, last_ok)
    assert w["seconds"] == pytest.approx(10.5, abs=1e-3) and w["early_end_s"] == 0.0


def test_summary_rates_over_the_window_and_names_the_stall(tmp_path):
    write_run(tmp_path, [1, 2, 3, 4])
    entries = [{"method": "GET", "name": "/x", "num_requests": 4, "num_failures": 0, "response_times": {"100": 4},
                "total_response_time": 400, "max_response_time": 100, "start_time": T0 + 0.9,
                "last_request_timestamp": T0 + 4}]
    (tmp_path / "locust.json").write_text(json.dumps(entries))
    s = results.summarize(tmp_path, 5.0)
    assert s["seconds"] == 10.0 and s["rps"] == 0.4  # not 4 / 3.1 s
    assert s["stall"]["stalls"][0]["at_s"] == pytest.approx(4, abs=1e-3)


@pytest.mark.parametrize("failures, stall, accept, clean, code", [
    (0, None, False, True, 0), (3, None, False, False, 1), (3, None, True, False, 0),
    (0, {"stalls": []}, False, False, 1), (0, {"stalls": []}, True, False, 0)])
def test_verdict_and_exit_code(failures, stall, accept, clean, code):
    v = runmeta.verdict({"failures": failures, "stall": stall}, accept)
    assert (v["clean"], v["exit_code"], v["accepted"], v["failed_requests"]) == (clean, code, accept, failures)


def test_every_status_is_documented():
    assert set(runmeta.STATUSES) == {"running", "completed", "stalled", "database-died", "server-died",
                                     "interrupted", "failed"}


def test_unexpected_exception_in_a_run_is_status_failed_error_log_and_one_line(tmp_path):
    meta = {"status": "running"}
    with pytest.raises(RunError) as e:
        with runmeta.recorded(tmp_path, meta):
            raise ValueError("boom\nsecond line")
    assert str(tmp_path) in str(e.value) and "ValueError: boom" in str(e.value) and "\n" not in str(e.value)
    saved = json.loads((tmp_path / "meta.json").read_text())
    assert saved["status"] == "failed" and saved["error"] == "ValueError: boom"
    assert "Traceback" in (tmp_path / "error.log").read_text()


def test_a_full_disk_while_recording_is_one_line(tmp_path, monkeypatch):
    results.write_meta(tmp_path, {"status": "running", "earlier": True})

    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "meta.json"))

    monkeypatch.setattr(results, "write_meta", full)
    with pytest.raises(RunError) as e:
        with runmeta.recorded(tmp_path, {"status": "running"}):
            full()
    assert "No space left on device" in str(e.value)
    assert json.loads((tmp_path / "meta.json").read_text()) == {"status": "running", "earlier": True}


def test_exit_mapping_outside_a_run(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(errors, "LAST_ERROR_LOG", str(tmp_path / "last-error.log"))

    def disk_full():
        raise OSError(errno.ENOSPC, "No space left on device", "/r/meta.json")

    def bug():
        raise KeyError("k")

    assert errors.exit_code(disk_full) == 1
    assert capsys.readouterr().err == "asgibench: error: /r/meta.json: No space left on device\n"
    assert errors.exit_code(bug) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError: 'k'" in err
    assert "KeyError" in (tmp_path / "last-error.log").read_text()
    assert errors.exit_code(lambda: (_ for _ in ()).throw(errors.VerdictError("3 failed"))) == 1


def test_atomic_write_on_a_full_disk_keeps_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    from pathlib import Path

    from asgibench import files

    target = tmp_path / "meta.json"
    files.write_json_atomic(target, {"old": 1})

    def full(self, *_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(OSError) as e:
        files.write_json_atomic(target, {"new": 2})
    monkeypatch.undo()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert json.loads(target.read_text()) == {"old": 1} and not (tmp_path / "meta.json.tmp").exists()
    assert errors.describe(e.value) == f"{target}: No space left on device"


def test_matrix_table_lists_a_stalled_trial_apart_and_flags_failed_requests(tmp_path, capsys):
    from asgibench import matrix

    def run(rel, status, failures):
        d = tmp_path / rel
        d.mkdir(parents=True)
        results.write_meta(d, {"status": status, "generator": {"bound": False},
                               "summary": {"rps": 10.0, "failures": failures, "exact_percentiles_ms": {"p95": 5.0}}})

    run("uvicorn/a", "completed", 3)
    run("uvicorn/b", "stalled", 0)
    settings = matrix.MatrixSettings(rows=["uvicorn"], scenarios=["cpu"], trials=2, duration=5, io_duration=5,
                                     warmup=0, users=1, io_users=1, io_seconds=1, python=None)
    m = matrix.Matrix("m1", settings, tmp_path)
    m.state["runs"] = {"1/uvicorn": {"status": "completed", "run_dirs": {"cpu": "uvicorn/a"}},
                       "2/uvicorn": {"status": "stalled", "run_dirs": {"cpu": "uvicorn/b"}}}
    m.print_table()
    out = capsys.readouterr().out
    assert "not in the figures: uvicorn cpu trial 2: stalled (uvicorn/b)" in out
    row = next(ln for ln in out.splitlines() if ln.startswith("uvicorn "))
    assert row.endswith(" FAIL") and " 1 " in row  # one trial in the figures, flagged
