"""Bad input gets one clear line on stderr and exit 2, before anything starts."""
import pytest

from asgibench import cli, loadgen, options
from asgibench.errors import UsageError
from helpers import cli as run_cli


@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "no-such-row"], "unknown variant 'no-such-row'"),
        (["bench", "gunicorn-eventlet", "--users", "ten"], "bad number 'ten'"),
        (["bench", "gunicorn-eventlet", "--users", "0"], "users must be between"),
        (["bench", "gunicorn-eventlet", "--duration", "soon"], "bad duration 'soon'"),
        (["bench", "gunicorn-eventlet", "--spawn-rate", "-3"], "spawn rate must be between"),
        (["bench", "gunicorn-eventlet", "--scenario", "huge"], "unknown scenario 'huge'"),
        (["bench", "gunicorn-eventlet", "--scenario", "medium", "--users", "5"], "is a ramp of its own"),
        (["bench", "gunicorn-eventlet", "--workers", "0"], "workers must be between"),
        (["bench", "gunicorn-eventlet", "--db-conn", "sometimes"], "--db-conn must be one of"),
        (["bench", "gunicorn-eventlet", "--db-conn", "pool"], "psycopg2, which has no Django pool"),
        (["bench", "gunicorn-eventlet", "--async"], "does not serve /async_api/: green-thread worker"),
        (["bench", "gunicorn-eventlet", "--with-slowapi"], "does not serve the slowapi app"),
        (["bench", "fastapi-sync", "--with-slowapi"], "does not serve the slowapi app with Django's async ORM"),
        (["bench", "gunicorn-eventlet", "--python", "three"], "bad Python version 'three'"),
        (["bench", "gunicorn-eventlet", "--python", "3.99"], "no locked pins for Python 3.99"),
        (["bench", "gunicorn-eventlet", "--pin", "server=99"], "this machine has CPUs"),
        (["bench", "gunicorn-eventlet", "--scenario", "io", "--io-seconds", "9"], "--io-seconds must be"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    res = run_cli(*args, results=tmp_path)
    assert res.returncode == 2, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("asgibench: error:"), res.stderr
    assert message in lines[0]
    assert not tmp_path.exists() or not any(tmp_path.rglob("meta.json")), "a refused run must not leave results"


def test_durations():
    assert options.duration("30") == 30 and options.duration("30s") == 30 and options.duration("2m") == 120
    assert options.duration("1.5m") == 90
    with pytest.raises(UsageError):
        options.duration("-3s")


def test_cpu_placement():
    assert options.cpu_placement("server=0,db=0,locust=1") == {"server": {0}, "db": {0}, "locust": {1}}
    assert options.cpu_placement("server=0-1") == {"server": {0, 1}}
    assert options.cpu_placement(None) == {}
    with pytest.raises(UsageError):
        options.cpu_placement("gpu=0")


def _opts(*argv):
    return options.build_options(cli.parser().parse_args(["bench", *argv]))


def test_scenario_selection():
    o = _opts("gunicorn-eventlet")
    assert o.plan.scenario == "readme" and o.plan.flow == "original" and o.plan.seconds == 60
    o = _opts("gunicorn-eventlet", "--users", "5", "--duration", "7s")
    assert o.plan.scenario == loadgen.CONSTANT and o.plan.users == 5 and o.plan.seconds == 7
    o = _opts("gunicorn-eventlet", "--scenario", "io", "--users", "10", "--io-seconds", "0.5")
    assert o.plan.flow == "io" and o.plan.io_path == "/io/sleep/" and o.plan.io_seconds == 0.5
    o = _opts("gunicorn-eventlet", "--scenario", "medium", "--time-scale", "0.01")
    assert o.plan.peak_users == 90 and abs(o.plan.seconds - 3.6) < 1e-9
    o = _opts("gunicorn-eventlet", "--api-only")
    assert o.plan.flow == "api"


def test_list_shows_every_row_and_why_no_async(tmp_path):
    res = run_cli("list", results=tmp_path)
    assert res.returncode == 0
    assert "gunicorn-eventlet" in res.stdout and "SynchronousOnlyOperation" in res.stdout
