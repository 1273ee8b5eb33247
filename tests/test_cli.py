"""Bad input gets one clear line on stderr and exit 2, before anything starts."""
import argparse

import pytest

from asgibench import bounds, cli, compose, errors, loadgen, matrix, options, policy, variants
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


# -- the seams of the split: one bounds table, one exit mapping, compose as a subcommand -------------

@pytest.mark.parametrize(
    "args, message",
    [
        (["bench", "gunicorn-eventlet", "--warmup", "700"], "warm-up must be between 0 and 600 seconds, got 700.0"),
        (["bench", "gunicorn-eventlet", "--pool-size", "101"], "pool size must be between 1 and 100, got 101"),
        (["matrix", "--variants", "uvicorn", "--trials", "0"], "trials must be between 1 and 100, got 0"),
        (["matrix", "--variants", "uvicorn", "--io-seconds", "0"], "io seconds must be between 0.01 and 5, got 0.0"),
        (["bench", "uvicorn", "--master-bind", "0.0.0.0"], "--master-bind 0.0.0.0 is not loopback"),
        (["worker", "--master", "10.1.2.3"], "--master 10.1.2.3 is not loopback: add --allow-remote"),
    ],
)
def test_more_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    test_bad_input_is_one_line_and_exit_2(args, message, tmp_path)


def test_bound_messages():
    for name, value, message in (
        ("users", 0, "users must be between 1 and 10000, got 0"),
        ("duration", 100000.0, "duration must be between 1 and 86400, got 100000.0"),
        ("warmup", 700.0, "warm-up must be between 0 and 600 seconds, got 700.0"),
        ("matrix_warmup", 700.0, "warm-up must be between 0 and 600, got 700.0"),
        ("io_seconds_option", 0.0, "--io-seconds must be above 0 and at most 5, got 0.0"),
    ):
        with pytest.raises(UsageError) as e:
            bounds.check(name, value)
        assert str(e.value) == message
    bounds.check("workers", None)  # not given: nothing to check
    bounds.check("io_seconds", 0)  # the plan's bound includes 0 (the option's does not)
    bounds.check("io_seconds_option", 5)


def test_one_bounds_table_drives_options_policy_loadgen_and_the_matrix(monkeypatch):
    monkeypatch.setitem(bounds.BOUNDS, "users", bounds.Bound("users", 1, 5))
    monkeypatch.setitem(bounds.BOUNDS, "trials", bounds.Bound("trials", 1, 2))
    monkeypatch.setitem(bounds.BOUNDS, "io_seconds_option", bounds.Bound("--io-seconds", 0, 0.5, low_exclusive=True))
    o = _opts("gunicorn-eventlet", "--users", "6", "--duration", "3s")
    with pytest.raises(UsageError, match="users must be between 1 and 5, got 6"):
        loadgen.validate(o.plan)
    with pytest.raises(UsageError, match="users must be between 1 and 5, got 6"):
        policy.check_request(variants.get("gunicorn-eventlet"), o)
    with pytest.raises(UsageError, match="trials must be between 1 and 2, got 3"):
        policy.check_request(variants.get("gunicorn-eventlet"), _opts("gunicorn-eventlet", "--trials", "3"))
    with pytest.raises(UsageError, match="users must be between 1 and 5, got 6"):
        matrix.MatrixSettings(rows=[], scenarios=["cpu"], users=6, trials=1).validate()
    with pytest.raises(UsageError, match="trials must be between 1 and 2, got 3"):
        matrix.MatrixSettings(rows=[], scenarios=["cpu"], trials=3).validate()
    with pytest.raises(UsageError, match="--io-seconds must be above 0 and at most 0.5, got 0.75"):
        _opts("gunicorn-eventlet", "--scenario", "io", "--io-seconds", "0.75")
    matrix.MatrixSettings(rows=[], scenarios=["cpu"], users=5, trials=2).validate()


def test_exit_codes_are_mapped_once(capsys):
    def fails(exc):
        raise exc

    assert errors.exit_code(lambda: 0) == 0
    assert errors.exit_code(fails, UsageError("bad number 'x'")) == 2
    assert capsys.readouterr().err == "asgibench: error: bad number 'x'\n"
    assert errors.exit_code(fails, errors.RunError("server died")) == 1
    assert capsys.readouterr().err == "asgibench: error: server died\n"
    assert errors.exit_code(fails, KeyboardInterrupt()) == 130
    assert "interrupted; everything started was stopped" in capsys.readouterr().err


def test_compose_is_an_ordinary_subcommand(tmp_path):
    a = cli.parser().parse_args(["compose", "--check", "-o", "x.yaml", "--python", "3.12"])
    assert a.fn is compose.cmd_compose and a.check and a.output == "x.yaml" and a.python == "3.12"
    assert a.compose_service is None
    a = cli.parser().parse_args(["compose", "locust-master", "uvicorn", "--expect-workers", "3", "--load-args=--async"])
    assert a.fn is compose.cmd_compose and a.compose_service == "locust-master"
    assert (a.row, a.expect_workers, a.load_args) == ("uvicorn", 3, "--async")
    res = run_cli("compose", "--check", results=tmp_path)
    assert res.returncode == 0 and "compose/compose.yaml matches the registry" in res.stdout, res.stderr


def test_db_help_lists_reset_and_force(tmp_path):
    a = cli.parser().parse_args(["db", "reset", "--force"])
    assert a.fn is cli.cmd_db and a.action == "reset" and a.force
    res = run_cli("db", "--help", results=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "reset" in res.stdout and "--force" in res.stdout and "delete its data" in res.stdout


def test_db_commands_leave_a_database_url_alone(tmp_path, monkeypatch, capsys):
    """stop / status / reset never touch the embedded cluster (nor the user's database) under DATABASE_URL:
    `db reset --force` as a user runs it (a process), the others through the same dispatch in this one."""
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing", "ASGIBENCH_PG_DIR": str(tmp_path / "pg")}
    said = "DATABASE_URL is set: asgibench does not manage that database\n"
    res = run_cli("db", "reset", "--force", results=tmp_path, env=env)
    assert res.returncode == 0 and res.stdout == said, res.stderr
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    for action in ("stop", "status", "reset"):
        assert errors.exit_code(cli._dispatch, ["db", action]) == 0
        assert capsys.readouterr().out == said
    assert not (tmp_path / "pg").exists()


def test_db_status_of_an_embedded_cluster_never_initialised(tmp_path):
    env = {"ASGIBENCH_PG_DIR": str(tmp_path / "pg")}
    res = run_cli("db", "status", results=tmp_path, env={**env, "DATABASE_URL": ""})
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("embedded PostgreSQL not running (not initialised at ")


@pytest.mark.e2e
def test_ui_form_is_prefilled_with_the_rows_defaults_and_flow_switches(tmp_path):
    """`ui ROW --async --with-slowapi`: Locust's web UI (the command `ui` starts, against a closed port:
    no request is sent before Start) offers 10 users at 10/s and the flow switches as set."""
    import json
    import re
    import socket
    import subprocess
    import time
    import urllib.request

    a = cli.parser().parse_args(["ui", "django-with-fastapi-mounted-asgi", "--async", "--with-slowapi"])
    opts = cli.ui_options(a)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = loadgen.command(opts.plan, "http://127.0.0.1:9", tmp_path, headless=False, web_port=port)
    proc = subprocess.Popen(cmd, env={**__import__("os").environ, **loadgen.locust_env()},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        page, deadline = None, time.monotonic() + 30
        while page is None and time.monotonic() < deadline and proc.poll() is None:
            try:
                page = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).read().decode()
            except OSError:
                time.sleep(0.2)
        assert page, f"the web UI did not answer (exit {proc.poll()})"
    finally:
        proc.terminate()
        proc.wait(10)
    args = json.loads(re.search(r"templateArgs\s*=\s*(\{.*?\})\s*</script>", page, re.S).group(1))
    assert (args["num_users"], args["spawn_rate"], args["hide_common_options"]) == (10, 10.0, None)
    extra = {k: v["default_value"] for k, v in args["extra_options"].items()}
    assert extra["api_prefix"] == "/async_api/" and extra["with_slowapi"] is True and extra["only_slowapi"] is False
    assert "bare_path" not in extra  # calibration only: not a switch of the form


def test_every_help_page_renders(capsys):
    """argparse %-formats every help string: a bare '%' (e.g. '95% CIs') turned `asgibench --help` into an
    internal error. Rendered in-process for the top level and every subcommand."""
    p = cli.parser()
    sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
    assert len(sub.choices) >= 10
    for name, sp in [("asgibench", p), *sub.choices.items()]:
        text = sp.format_help()
        assert "usage:" in text, name
