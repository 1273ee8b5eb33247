"""Every registry row, in turn: built, started, contract verified, a 2 s Locust burst of its default flow
with zero failures (the original flow's checks include both admin redirects, 7 exchanges an iteration),
stopped. This is the test that says "every row in `asgibench list` works"."""
import pytest

from asgibench import envs, procs, variants
from helpers import cli, meta_of, only_run_dir

pytestmark = pytest.mark.e2e
PY = envs.current_python()


@pytest.mark.parametrize("v", variants.VARIANTS, ids=lambda v: v.name)
def test_row_serves_the_contract_under_load(v, db, results_dir):
    tag = f"matrix-{v.name}"
    res = cli("bench", v.name, "--users", "4", "--duration", "2s", "--warmup", "1s",
              results=results_dir, env={"ASGIBENCH_RUN_TAG": tag}, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, v.name))
    assert meta["status"] == "completed"
    assert meta["contract"]["passed"], meta["contract"]
    checked = {c["check"] for c in meta["contract"]["checks"]}
    # the contract covered exactly what the row serves
    assert any(c.startswith("GET /api/troupe/") for c in checked)
    assert any(c.startswith("GET /async_api/") for c in checked) == ("async_api" in v.serves)
    assert ("GET /static/admin/css/base.css" in checked) == ("static" in v.serves)
    assert ("GET /slowapi/slowapi/" in checked) == ("slowapi" in v.serves)
    s = meta["summary"]
    assert s["requests"] > 0 and s["failures"] == 0, s
    if v.default_flow == "original":  # every HTTP exchange counted, both redirects followed as requests
        assert s["requests"] == pytest.approx(7 * s["flow"]["iterations"], abs=7 * 4), s
        assert {"GET /admin/ (login redirect)", "GET /admin/ (logged-in redirect)"} <= set(s["endpoints"])
    assert meta["server"]["workers"] == v.effective_workers()
    assert meta["server"]["db_conn"] == v.db_conn
    assert not procs.tagged_pids(tag)


@pytest.mark.parametrize("name", ["gunicorn-eventlet-slowapi-wsgi", "uvicorn"])
def test_io_scenario_reports_concurrency_efficiency(name, db, results_dir):
    """N users each waiting S s in PostgreSQL: the run reports achieved / (N/S). Both rows serve the
    sleeps concurrently (eventlet: green psycopg2; uvicorn: a thread per request, the pool sized to the
    users), so 4 users over 4 s complete 4 x 8 sleeps and the efficiency is high; a serialising server
    (gunicorn sync) stays at its capacity: test_e2e_oracles and test_report. One second of warm-up keeps
    the first round's connection set-up (eventlet's green psycopg2 connect, Django's first request) out of
    the measured window, as in every real run: without it a slow CI machine measured 0.84."""
    res = cli("bench", name, "--scenario", "io", "--users", "4", "--io-seconds", "0.5", "--duration", "4s",
              "--warmup", "1s", results=results_dir, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, name))
    c = meta["summary"]["concurrency"]
    assert c["ideal_rps"] == 8.0
    s = meta["summary"]
    assert 4 * 8 - 4 <= s["requests"] <= 4 * 8 + 4, s["requests"]  # users x (duration / sleep), +- one round
    # The 4-s window cuts each user's sleep at both ends: up to one round (4 of 32) more or fewer completions
    # than N/S allows, so 0.875..1.125, less a little request overhead; a serialising server gets 0.25.
    assert 0.82 <= c["efficiency"] <= 1.125, c
    assert c["efficiency"] == pytest.approx(s["requests"] / s["seconds"] / 8.0, abs=0.01)
    assert meta["summary"]["failures"] == 0
    assert "concurrency efficiency" in res.stdout
    v = variants.get(name)
    assert set(meta["summary"]["endpoints"]) == {f"GET {v.io_probe}?seconds=0.5"}


def test_async_flow_on_an_asgi_row(db, results_dir):
    res = cli("bench", "uvicorn", "--async", "--users", "2", "--duration", "3s", "--warmup", "0",
              results=results_dir, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    s = meta_of(only_run_dir(results_dir, "uvicorn"))["summary"]
    assert {"GET /async_api/clowncollege/", "GET /async_api/troupe/"} <= set(s["endpoints"])
    assert s["failures"] == 0


def test_db_conn_override_and_backend_peak_recorded(db, results_dir):
    res = cli("bench", "gunicorn-sync", "--db-conn", "per-request", "--workers", "2", "--users", "4",
              "--duration", "3s", "--warmup", "0", "--api-only", results=results_dir, timeout=240)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, "gunicorn-sync"))
    assert meta["server"]["db_conn"] == "per-request" and meta["server"]["db_conn_source"] == "--db-conn"
    assert meta["server"]["workers"] == 2
    assert meta["db_peak_backends"] >= 1
