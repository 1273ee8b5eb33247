"""locustfiles/: load shapes, the timings file format, the response checks and cookie jar, the custom
arguments, the recorder and its plugins, and short real Locust runs against a stdlib server started
here (marked e2e).

Locust itself is only ever imported in subprocesses: importing it monkey-patches the whole process
with gevent, which must not happen to pytest's process.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import pytest

import benchcontract
from locustfiles import checks, stages, timingfile

ROOT = Path(__file__).resolve().parents[1]
LOCUSTFILES = ROOT / "locustfiles"
LOCUST = Path(sys.executable).parent / "locust"
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "services"), str(LOCUSTFILES)])}


# -- stages (k6 ramps) -----------------------------------------------------------------------------
def test_scenarios_are_the_original_k6_stages():
    assert stages.SHAPES == ("readme", "easy", "medium", "medium-large", "laptop-heater")
    assert stages.SCENARIOS["readme"] == ((60, 10),)
    assert stages.SCENARIOS["easy"] == ((60, 100),)
    assert [t for _, t in stages.SCENARIOS["medium"]] == [50, 60, 70, 80, 90, 0]
    assert [t for _, t in stages.SCENARIOS["medium-large"]] == [100, 120, 140, 160, 180, 0]
    assert [t for _, t in stages.SCENARIOS["laptop-heater"]] == [200, 500, 700, 900, 1100, 0]
    assert all(d == 60 for name in stages.SHAPES for d, _ in stages.SCENARIOS[name])
    assert stages.DEFAULT_SCENARIO == "readme"


def test_users_follow_k6_linear_ramps():
    easy = stages.scaled_stages("easy")
    assert stages.users_at(easy, 0) == 1  # k6 startVUs default
    assert stages.users_at(easy, 30) == 50  # 1 + 99 * 0.5 = 50.5 -> 50 (floor while rising)
    assert stages.users_at(easy, 59.99) == 99
    assert stages.users_at(easy, 60) is None  # over
    medium = stages.scaled_stages("medium")
    assert stages.users_at(medium, 60) == 50
    assert stages.users_at(medium, 90) == 55
    assert stages.users_at(medium, 330) == 45  # 90 -> 0 over the last minute, half way
    assert stages.users_at(medium, 359.5) == 1  # ceil(0.75) while falling
    assert stages.users_at(medium, 360) is None
    fine = [stages.users_at(medium, t / 10) for t in range(0, 3000)]
    assert fine == sorted(fine)  # rising stages never step back


def test_time_scale_compresses_every_stage():
    assert stages.total_seconds("medium") == 360
    assert stages.total_seconds("medium", 0.05) == pytest.approx(18)
    fast = stages.scaled_stages("medium", 0.05)
    assert stages.users_at(fast, 1.5) == stages.users_at(stages.scaled_stages("medium"), 30)
    assert stages.users_at(fast, 18) is None
    with pytest.raises(ValueError):
        stages.scaled_stages("medium", 0)
    with pytest.raises(ValueError):
        stages.scaled_stages("medium", -1)
    with pytest.raises(ValueError):
        stages.scaled_stages("nope")


def test_peak_users():
    assert stages.peak_users("readme") == 10
    assert stages.peak_users("laptop-heater") == 1100
    assert stages.peak_users("medium") == 90


def test_plan_aims_one_tick_ahead_and_ends_with_none():
    easy = stages.scaled_stages("easy")
    assert stages.plan(easy, 0, current_users=0) == (2, 2.0)  # users_at(1 s) = floor(2.65)
    target, rate = stages.plan(easy, 29, current_users=48)
    assert target == stages.users_at(easy, 30) and rate == target - 48
    assert stages.plan(easy, 59.5, current_users=99) == (100, 1.0)  # the last target, reached
    assert stages.plan(easy, 60, current_users=100) is None
    medium = stages.scaled_stages("medium")
    assert stages.plan(medium, 359.2, current_users=3)[0] == 0
    assert stages.plan(medium, 400, current_users=0) is None
    # the spawn rate is never 0 (Locust needs a positive rate), and covers any lag in one tick
    assert stages.plan(medium, 100, current_users=stages.users_at(medium, 101))[1] == 1.0
    assert stages.plan(medium, 100, current_users=0)[1] == stages.users_at(medium, 101)


# -- timings file ----------------------------------------------------------------------------------
def _series(ms, t=None):
    return timingfile.Series(ms, t if t is not None else [i * 0.5 for i in range(len(ms))])


def test_timings_round_trip(tmp_path):
    K = timingfile.SeriesKey
    data = {
        K("GET", "/api/troupe/", True): _series([1.25, 2.5, 1000.125]),
        K("GET", "/api/troupe/", False): _series([30001.5]),
        K("FLOW", "iteration", True): _series([12.0, 13.0]),
    }
    p = tmp_path / "t.bin"
    timingfile.write_timings(str(p), 1700000000.25, data, {"pid": 1, "role": "standalone"})
    tf = timingfile.read_timings(str(p))
    assert tf.t0 == 1700000000.25 and tf.meta["role"] == "standalone"
    assert set(tf.series) == set(data)
    for k, s in data.items():
        assert list(tf.series[k].ms) == pytest.approx(list(s.ms), rel=1e-7)
        assert list(tf.series[k].t) == pytest.approx(list(s.t), abs=1e-4)
    # FLOW excluded unless asked; ok filter; failures counted like Locust does
    assert sorted(timingfile.select(tf)) == pytest.approx([1.25, 2.5, 1000.125, 30001.5])
    assert list(timingfile.select(tf, ok=False)) == pytest.approx([30001.5])
    assert len(timingfile.select(tf, include_flow=True)) == 6
    assert list(timingfile.select(tf, request_type="FLOW")) == [12.0, 13.0]
    # the documented layout: magic line, JSON header line, then float32 arrays
    raw = p.read_bytes()
    assert raw.startswith(timingfile.MAGIC)
    header_end = raw.index(b"\n", len(timingfile.MAGIC)) + 1
    header = json.loads(raw[len(timingfile.MAGIC):header_end])
    assert [s["count"] for s in header["series"]] == [2, 3, 1]  # sorted by type, name, successes first
    assert len(raw) - header_end == 4 * 2 * 6


def test_timings_reader_rejects_garbage(tmp_path):
    p = tmp_path / "t.bin"
    p.write_bytes(b"Type,Name\n")
    with pytest.raises(ValueError, match="not an asgibench timings file"):
        timingfile.read_timings(str(p))
    K = timingfile.SeriesKey
    timingfile.write_timings(str(p), 0.0, {K("GET", "/", True): _series([1.0, 2.0])})
    p.write_bytes(p.read_bytes()[:-3])
    with pytest.raises(ValueError, match="truncated"):
        timingfile.read_timings(str(p))


def test_merge_rebases_start_offsets():
    K = timingfile.SeriesKey
    a = timingfile.TimingsFile(100.0, {"w": 0}, {K("GET", "/", True): _series([1.0], [2.0])})
    b = timingfile.TimingsFile(105.0, {"w": 1}, {K("GET", "/", True): _series([3.0], [1.0]),
                                                K("GET", "/x", False): _series([9.0], [0.0])})
    m = timingfile.merge_timings([a, b])
    assert m.t0 == 100.0
    assert list(m.series[K("GET", "/", True)].ms) == [1.0, 3.0]
    assert list(m.series[K("GET", "/", True)].t) == [2.0, 6.0]
    assert list(m.series[K("GET", "/x", False)].t) == [5.0]


def test_exact_percentiles():
    v = list(range(1, 101))
    assert timingfile.percentile(v, 0.5) == pytest.approx(50.5)
    assert timingfile.percentile(v, 0.99) == pytest.approx(99.01)
    assert timingfile.percentile(v, 1.0) == 100
    assert math.isnan(timingfile.percentile([], 0.5))
    s = timingfile.summarize([5.0, 1.0, 3.0])
    assert s["count"] == 3 and s["p50"] == 3.0 and s["max"] == 5.0 and s["min"] == 1.0 and s["mean"] == 3.0


# -- response checks -------------------------------------------------------------------------------
GOOD = json.dumps({"count": 40, "next": "http://h/api/troupe/?page=2", "previous": None,
                   "results": [{"id": 1, "name": "x", "clowns": [], "acrobats": []}]}).encode()
CASES = {
    GOOD: None,
    json.dumps(json.loads(GOOD), separators=(",", ":")).encode(): None,  # DRF's compact output
    json.dumps(dict(reversed(list(json.loads(GOOD).items()))), indent=2).encode(): None,  # any order/spacing
    b'{"count": null, "next": "http://h/?page=2", "results": [1]}': "count is null or missing",
    b'{"next": "http://h/?page=2", "results": [1]}': "count is null or missing",
    b'{"count": "40", "next": "http://h/?page=2", "results": [1]}': "count is not an integer",
    b'{"count": 5, "next": null, "previous": null, "results": [1]}': "next is empty: no second page (seed more data)",
    b'{"count": 5, "next": "", "results": [1]}': "next is empty: no second page (seed more data)",
    b'{"count": 5, "next": "http://h/?page=2", "results": []}': "results is empty or missing",
    b'{"count": 5, "next": "http://h/?page=2", "results": [ ] }': "results is empty or missing",
    b'{"count": 5, "next": "http://h/?page=2"}': "results is empty or missing",
    b'{"count": 5, "next": "http://h/?page=2", "results": {"a": 1}}': "results is not a list",
    b"<!doctype html><html><body>Server Error (500)</body></html>": "response is not JSON",
    b'{"detail": "Invalid page."}': "count is null or missing",
    b"": "response is not JSON",
}


@pytest.mark.parametrize("body,expected", list(CASES.items()))
def test_fast_and_full_list_checks_agree(body, expected):
    assert checks.list_page_problem_full(body) == expected
    assert checks.list_page_problem_fast(body) == expected


def test_fast_check_is_not_fooled_by_keys_inside_strings():
    body = json.dumps({"count": 3, "next": None, "results": [{"name": '"next": "http://x"'}]}).encode()
    assert checks.list_page_problem_fast(body) == "next is empty: no second page (seed more data)"


class _Req:
    def __init__(self, path):
        self.url_split = SimpleNamespace(path=path)
        self.headers = {}


class _Resp:
    def __init__(self, *set_cookie):
        self.headers = SimpleNamespace(getlist=lambda name: list(set_cookie) if name == "set-cookie" else [])


def test_cookie_jar_keeps_django_cookies_and_sends_them():
    jar = checks.FastCookieJar()
    jar.extract_cookies(_Resp(
        "csrftoken=abc123; expires=Wed, 24 Nov 2027 00:00:00 GMT; Max-Age=31449600; Path=/; SameSite=Lax",
        'sessionid="s1"; HttpOnly; Max-Age=1209600; Path=/',
    ), _Req("/admin/login/"))
    assert jar.get("csrftoken") == "abc123" and jar.get("sessionid") == '"s1"' and len(jar) == 2
    req = _Req("/api/troupe/")
    jar.add_cookie_header(req)
    assert req.headers["Cookie"] == 'csrftoken=abc123; sessionid="s1"'  # quoted values go back verbatim
    # Django's delete_cookie, and an expired date, remove a cookie
    jar.extract_cookies(_Resp('sessionid=""; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Path=/'), _Req("/"))
    jar.extract_cookies(_Resp("csrftoken=x; expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"), _Req("/"))
    assert jar.get("sessionid") is None and jar.get("csrftoken") is None and len(jar) == 0
    jar.add_cookie_header(req := _Req("/"))
    assert "Cookie" not in req.headers


def test_cookie_jar_paths_and_clear():
    jar = checks.FastCookieJar()
    jar.set_cookie_line("a=1; Path=/admin")
    jar.set_cookie_line("b=2", request_path="/api/troupe/")  # default path: /api/troupe
    for path, expected in (("/admin/", "a=1"), ("/admin", "a=1"), ("/administrator", None),
                           ("/api/troupe/x", "b=2"), ("/", None)):
        req = _Req(path)
        jar.add_cookie_header(req)
        assert req.headers.get("Cookie") == expected, path
    jar.clear()
    assert len(jar) == 0
    # Max-Age wins over Expires, whichever comes first (its date is then not parsed at all); a bad date is ignored
    jar.set_cookie_line("c=3; expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=60")
    jar.set_cookie_line("d=4; Max-Age=60; expires=Thu, 01 Jan 1970 00:00:00 GMT")
    jar.set_cookie_line("e=5; expires=not a date")
    jar.set_cookie_line("f=6; Max-Age=0; expires=Wed, 24 Nov 2100 00:00:00 GMT")
    assert (jar.get("c"), jar.get("d"), jar.get("e"), jar.get("f")) == ("3", "4", "5", None)


# -- Locust side (subprocesses) --------------------------------------------------------------------
PARSE_ARGS = """
import json, sys
import workload, shapes
from locust.argument_parser import get_parser
o = vars(get_parser().parse_args(sys.argv[1:]))
keys = ["api_prefix", "with_slowapi", "only_slowapi", "io_path", "io_seconds", "bare_path", "admin_username",
        "admin_password", "full_json_every", "scenario", "time_scale", "timings_file", "generator_file",
        "cpu_monitor_interval", "reconnect_every"]
print(json.dumps({k: o[k] for k in keys}))
"""


def _parsed(*args, env=None):
    r = subprocess.run([sys.executable, "-c", PARSE_ARGS, *args], env={**ENV, **(env or {})}, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.e2e  # loads Locust and the locustfiles in a subprocess (seconds each)
def test_custom_argument_defaults_and_env_vars():
    d = _parsed()
    assert d == {
        "api_prefix": "/api/", "with_slowapi": False, "only_slowapi": False, "io_path": "/io/sleep/",
        "io_seconds": benchcontract.DEFAULT_SLEEP_SECONDS, "bare_path": "/",
        "admin_username": benchcontract.ADMIN_USERNAME, "admin_password": benchcontract.ADMIN_PASSWORD,
        "full_json_every": 100, "scenario": "readme", "time_scale": 1.0, "timings_file": None,
        "generator_file": None, "cpu_monitor_interval": 1.0, "reconnect_every": 0,
    }
    e = _parsed("--with-slowapi", "--io-seconds", "0.25", "--scenario", "medium",
                env={"LOCUST_API_PREFIX": "/async_api/", "LOCUST_TIME_SCALE": "0.1"})
    assert (e["api_prefix"], e["with_slowapi"], e["io_seconds"], e["scenario"], e["time_scale"]) == \
        ("/async_api/", True, 0.25, "medium", 0.1)


RECORDER_LIBRARY_RUN = """
import json, os, sys, time
import workload  # registers the recorder
import recorder, timingfile
import locust
from locust.argument_parser import get_parser
from locust.env import Environment
opts = get_parser().parse_args(["--timings-file", sys.argv[1], "--generator-file", sys.argv[2]])
env = Environment(user_classes=[workload.ApiOnlyUser], events=locust.events, parsed_options=opts)
runner = env.create_local_runner()
locust.events.init.fire(environment=env, runner=runner, web_ui=None)
rec = recorder.RECORDERS[-1]
locust.events.test_start.fire(environment=env)

def proc_cpu():  # this process's user+sys CPU, read by the test from the kernel, not as the recorder does
    with open("/proc/self/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

c0, w0 = proc_cpu(), time.monotonic()
while proc_cpu() - c0 < 0.4:  # 0.4 s of CPU (user, and sys from reading /proc), then 0.3 s idle
    pass
time.sleep(0.3)
fire = locust.events.request.fire
for i in range(1000):
    fire(request_type="GET", name="/api/troupe/", response_time=i / 10, response_length=1, exception=None,
         start_time=time.time())
fire(request_type="GET", name="/api/troupe/", response_time=5000.0, response_length=0, exception=ValueError("x"))
fire(request_type="FLOW", name="iteration", response_time=12.5, response_length=0, exception=None)
fire(request_type="GET", name="/none", response_time=None, response_length=0, exception=None)
burned_cpu, burned_wall = proc_cpu() - c0, time.monotonic() - w0
locust.events.test_stop.fire(environment=env)
locust.events.quit.fire(exit_code=0)
print(json.dumps({"burned_cpu": burned_cpu, "burned_wall": burned_wall,
                  "csv_interval": __import__("locust.runners").runners.CPU_MONITOR_INTERVAL,
                  "locust_total": env.stats.total.num_requests}))
"""


@pytest.mark.e2e  # loads Locust and the locustfiles in a subprocess (seconds each)
def test_recorder_writes_exact_timings_and_generator_file(tmp_path):
    t, g = tmp_path / "timings.bin", tmp_path / "generator.json"
    r = subprocess.run([sys.executable, "-c", RECORDER_LIBRARY_RUN, str(t), str(g)], env=ENV, cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["csv_interval"] == 1.0
    tf = timingfile.read_timings(str(t))
    ok = tf.series[timingfile.SeriesKey("GET", "/api/troupe/", True)]
    assert list(ok.ms) == pytest.approx([i / 10 for i in range(1000)], rel=1e-6)
    assert all(0 <= x < 60 for x in ok.t)
    assert list(tf.series[timingfile.SeriesKey("GET", "/api/troupe/", False)].ms) == [5000.0]
    assert list(tf.series[timingfile.SeriesKey("FLOW", "iteration", True)].ms) == [12.5]
    assert tf.meta["none_response_times"] == 1 and tf.meta["role"] == "standalone"
    gen = json.loads(g.read_text())
    assert gen["role"] == "standalone" and gen["worker_index"] is None
    assert gen["requests"] == 1001 and gen["failures"] == 1 and gen["flow_iterations"] == 1
    assert gen["cpu_warning_emitted"] is False
    # the recorder's CPU and wall time of the run against what the script burned between test_start and
    # test_stop, as the kernel counted it (/proc/self/stat: 10 ms ticks)
    run = gen["run"]
    assert run["cpu_s"] == pytest.approx(out["burned_cpu"], abs=0.05), (run, out)
    assert run["cpu_user_s"] > 0 and run["cpu_sys_s"] > 0  # the loop spends both
    assert run["wall_s"] == pytest.approx(out["burned_wall"], abs=0.05), (run, out)
    assert run["wall_s"] > run["cpu_s"] + 0.25  # the idle 0.3 s is wall time, not CPU
    assert gen["cpu_us_per_request"] == pytest.approx(out["burned_cpu"] * 1e6 / 1001, rel=0.15)


@pytest.mark.e2e  # loads Locust and the locustfiles in a subprocess (seconds each)
def test_per_process_file_names():
    code = ("import plugin_shared; p = plugin_shared.per_process_path; "
            "print(p('r/t.bin', 'standalone', None, 7), p('r/t.bin', 'master', None, 7), "
            "p('r/t.bin', 'worker', 2, 7), p('r/t.bin', 'worker', None, 7), p('r/gen', 'worker', 0, 7))")
    r = subprocess.run([sys.executable, "-c", code], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["r/t.bin", "r/t.bin", "r/t.worker2.bin", "r/t.pid7.bin", "r/gen.worker0"]


SEAMS = """
import json, sys
import locust
from locust.env import Environment
from locust.event import Events
import benchcontract as bc
import plugin_generator, plugin_outputs, plugin_shared, plugin_timings
import workload  # imports the recorder, which registers the plugins' options and its init listener
import recorder, timingfile

def handlers(events, name):
    return getattr(events, name)._handlers

def order(events, name, *listeners):
    return [h for h in handlers(events, name) if h in listeners] == list(listeners)

out = {}
# each plugin adds its own listeners, to the environment it is given
env = Environment(user_classes=[workload.ApiOnlyUser], events=Events())
env.create_local_runner()
proc = plugin_shared.ThisProcess(env.runner)
t = plugin_timings.ExactTimings(env, proc)
w = plugin_shared.RunWindow(env, proc)
g = plugin_generator.GeneratorCpu(env, proc, w, t.counts)
o = plugin_outputs.LocustOutputs(env, proc)
ev = env.events
out["timings"] = [t.on_request in handlers(ev, "request"), t.clear in handlers(ev, "test_start"),
                  t.clear in handlers(ev, "reset_stats"), t.on_spawning_complete in handlers(ev, "spawning_complete")]
out["window"] = [order(ev, "test_start", t.clear, w.on_test_start), w.on_test_stopping in handlers(ev, "test_stopping"),
                 w.on_test_stop in handlers(ev, "test_stop"), w.restarted._handlers == [g.clear]]
out["generator"] = [g.on_usage_monitor in handlers(ev, "usage_monitor"),
                    g.on_cpu_warning in handlers(ev, "cpu_warning")]
out["outputs"] = [o.on_quitting in handlers(ev, "quitting"),
                  o.on_master_test_stop not in handlers(ev, "test_stop")]  # a master's only
out["quit_order"] = order(ev, "quit", t.on_quit, g.on_quit)
out["role"] = proc.role
# the run window: a warm-up restart clears the generator's samples and the timings
ev.test_start.fire()
g.cpu_samples.append([0.0, 1.0]); g.cpu_warning_readings = 1
ev.request.fire(request_type="GET", name="/x", response_time=1.0, response_length=0, exception=None)
first = w.start
w.end_warmup()
out["warmup"] = [g.cpu_samples == [], g.cpu_warning_readings == 0, t.counts() == (0, 0, 0), w.start > first]
ev.test_stop.fire()
out["window_closed"] = [w.open is False, w.stop is not None]

# the recorder creates all three (and the window) at init, on Locust's global events
env2 = Environment(user_classes=[workload.ApiOnlyUser], events=locust.events)
env2.create_local_runner()
locust.events.init.fire(environment=env2, runner=env2.runner, web_ui=None)
rec = recorder.RECORDERS[-1]
ge = locust.events
out["recorder"] = [rec.timings.on_request in handlers(ge, "request"),
                   rec.generator.on_usage_monitor in handlers(ge, "usage_monitor"),
                   rec.outputs.on_quitting in handlers(ge, "quitting"),
                   rec.window.on_test_stop in handlers(ge, "test_stop"),
                   order(ge, "quit", rec.timings.on_quit, rec.generator.on_quit),
                   type(rec.timings).__name__, type(rec.generator).__name__, type(rec.outputs).__name__]

# workload's paths and FLOW come from benchcontract
out["paths"] = [workload.ADMIN_LOGIN_PATH, workload.ADMIN_INDEX_PATH, workload.LOGIN_POST_PATH,
                workload.LOGGED_IN_LOGIN_NAME, workload.SLOWAPI_PATH, workload.SLOWAPI_ORM_PATH,
                list(workload.SLOWAPI_ORM_KEYS), workload.FLOW_REQUEST_TYPE, workload.FLOW_NAME,
                timingfile.FLOW_REQUEST_TYPE]
# Runner.stop()'s caller look-up (inspect.stack(), ~60 ms of CPU in the measured window) is skipped
import logging
import locust.runners as lr
try:
    lr.inspect.stack()
    out["stack"] = "looked up"
except RuntimeError as e:
    out["stack"] = str(e)
logging.getLogger("locust.runners").setLevel(logging.DEBUG)
out["stack_debug"] = len(lr.inspect.stack()) > 0 and lr.inspect.getframeinfo is __import__("inspect").getframeinfo
logging.getLogger("locust.runners").setLevel(logging.WARNING)
import workload_args
out["defaults"] = [workload_args.DEFAULTS["api_prefix"], workload_args.DEFAULTS["io_path"]]
print(json.dumps(out))
"""


@pytest.mark.e2e  # loads Locust and the locustfiles in a subprocess (seconds each)
def test_plugins_register_their_listeners_and_recorder_registers_them_all():
    r = subprocess.run([sys.executable, "-c", SEAMS], env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["role"] == "standalone"
    for part in ("timings", "window", "generator", "outputs", "warmup", "window_closed"):
        assert all(out[part]), (part, out[part])
    assert out["quit_order"] is True  # the timings file is written before the generator file
    assert out["recorder"][:5] == [True] * 5
    assert out["recorder"][5:] == ["ExactTimings", "GeneratorCpu", "LocustOutputs"]
    bc = benchcontract
    assert out["paths"] == [bc.ADMIN_LOGIN_PATH, bc.ADMIN_INDEX_PATH, "/admin/login/?next=/admin/",
                            "/admin/login/ (logged in)", bc.SLOWAPI_PATH, bc.SLOWAPI_ORM_PATH,
                            list(bc.SLOWAPI_ORM_KEYS), bc.FLOW_REQUEST_TYPE, bc.FLOW_NAME, bc.FLOW_REQUEST_TYPE]
    assert out["defaults"] == [bc.API_PREFIX, bc.IO_SLEEP_PATH]
    assert out["stack"] == "caller not looked up: debug logging is off" and out["stack_debug"] is True


def test_timingfile_flow_type_is_benchcontracts():
    assert timingfile.FLOW_REQUEST_TYPE == benchcontract.FLOW_REQUEST_TYPE == "FLOW"


def test_locustfiles_stay_small():
    for f in LOCUSTFILES.glob("*.py"):
        assert len(f.read_text().splitlines()) <= 400, f.name


# -- short real runs against a stdlib server -------------------------------------------------------
PAGE = json.dumps({"count": 25, "next": "http://127.0.0.1/api/x/?page=2", "previous": None,
                   "results": [{"id": i} for i in range(10)]}).encode()


ADMIN_FORM = b'<form id="login-form" method="post"></form>'
ADMIN_INDEX = b'<div id="user-tools">Welcome</div>'


class _Handler(BaseHTTPRequestHandler):
    """The two list pages, and a Django admin stand-in: login form + csrftoken cookie, a login POST that
    answers 302 + sessionid for the right credentials, a logged-in login page that redirects to the index.
    Every exchange is appended to `served` (the server's own count)."""

    protocol_version = "HTTP/1.1"
    served: list = []
    connections: list = []  # one entry per accepted connection (a handler serves one connection)

    def setup(self):
        self.connections.append(self.client_address)
        super().setup()

    def _send(self, code, body=b"", ctype="application/json", headers=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _logged_in(self):
        return "sessionid=s1" in (self.headers.get("Cookie") or "")

    def do_GET(self):  # noqa: N802
        path = self.path.split("?")[0]
        self.served.append(("GET", path))
        if path in ("/api/clowncollege/", "/api/troupe/"):
            self._send(200, PAGE)
        elif path == "/empty/troupe/":
            self._send(200, b'{"count": 0, "next": null, "previous": null, "results": []}')
        elif path == benchcontract.ADMIN_LOGIN_PATH and self._logged_in():
            self._send(302, headers=[("Location", benchcontract.ADMIN_INDEX_PATH)])
        elif path == benchcontract.ADMIN_LOGIN_PATH:
            self._send(200, ADMIN_FORM, "text/html", [("Set-Cookie", "csrftoken=t0k; Path=/")])
        elif path == benchcontract.ADMIN_INDEX_PATH and self._logged_in():
            self._send(200, ADMIN_INDEX, "text/html")
        else:
            self._send(404, b'{"detail": "Not found."}')

    def do_POST(self):  # noqa: N802
        path = self.path.split("?")[0]
        self.served.append(("POST", path))
        form = dict(x.split("=", 1) for x in self.rfile.read(int(self.headers["Content-Length"])).decode().split("&"))
        if form.get("password") == benchcontract.ADMIN_PASSWORD and form.get("csrfmiddlewaretoken") == "t0k":
            self._send(302, headers=[("Location", benchcontract.ADMIN_INDEX_PATH),
                                     ("Set-Cookie", "sessionid=s1; Path=/; HttpOnly")])
        else:
            self._send(200, ADMIN_FORM, "text/html")

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def api_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    th = threading.Thread(target=srv.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _locust(tmp_path, host, *args, shape=False, timeout=90):
    files = str(LOCUSTFILES / "workload.py") + ("," + str(LOCUSTFILES / "shapes.py") if shape else "")
    cmd = [str(LOCUST), "-f", files, "--headless", "--host", host, "--csv", str(tmp_path / "locust"),
           "--csv-full-history", "--json-file", str(tmp_path / "locust"), "--stop-timeout", "5", "--only-summary",
           "--timings-file", str(tmp_path / "timings.bin"), "--generator-file", str(tmp_path / "generator.json"),
           *args]
    t0 = time.monotonic()
    r = subprocess.run(cmd, env=ENV, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    return r, time.monotonic() - t0


def _csv_rows(tmp_path):
    with open(tmp_path / "locust_stats.csv", newline="") as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


@pytest.mark.e2e  # a real Locust run
def test_api_flow_run_is_consistent_everywhere(tmp_path, api_server):
    _Handler.connections.clear()
    r, _ = _locust(tmp_path, api_server, "ApiOnlyUser", "--users", "2", "--spawn-rate", "10", "--run-time", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _csv_rows(tmp_path)
    flows = int(rows[("FLOW", "iteration")]["Request Count"])
    assert flows > 10
    assert int(rows[("GET", "/api/clowncollege/")]["Request Count"]) == flows
    assert int(rows[("GET", "/api/troupe/")]["Request Count"]) == flows
    assert int(rows[("", "Aggregated")]["Failure Count"]) == 0
    entries = json.loads((tmp_path / "locust.json").read_text())
    total = sum(e["num_requests"] for e in entries)
    assert int(rows[("", "Aggregated")]["Request Count"]) == total  # the final CSV rewrite
    merged = timingfile.read_timings(str(tmp_path / "timings.bin"))
    assert sum(len(s) for s in merged.series.values()) == total
    gen = json.loads((tmp_path / "generator.json").read_text())
    assert gen["requests"] == total - flows == 2 * flows
    assert gen["run"]["wall_s"] == pytest.approx(3.0, abs=1.0)  # --run-time is honoured, not cut short
    assert len(gen["cpu_percent_samples"]) >= 2  # Locust's CPU monitor runs every second
    assert len(_Handler.connections) == 2  # one keep-alive connection per user for the whole run


@pytest.mark.e2e  # a real Locust run
def test_failed_checks_are_failures_with_reasons(tmp_path, api_server):
    r, _ = _locust(tmp_path, api_server, "ApiOnlyUser", "--users", "1", "--spawn-rate", "10", "--run-time", "2",
                   "--api-prefix", "/empty/")
    assert r.returncode == 1
    rows = _csv_rows(tmp_path)
    assert rows[("GET", "/empty/clowncollege/")]["Failure Count"] == rows[("GET", "/empty/clowncollege/")][
        "Request Count"]
    with open(tmp_path / "locust_failures.csv", newline="") as f:
        errors = {(row["Name"], row["Error"]) for row in csv.DictReader(f)}
    assert ("/empty/clowncollege/", "CatchResponseError('HTTP 404, expected 200')") in errors
    assert ("/empty/troupe/", "CatchResponseError('next is empty: no second page (seed more data)')") in errors
    assert ("iteration", "FlowError('step 1 (get_clowncollege): HTTP 404, expected 200')") in errors


@pytest.mark.e2e  # a real Locust run
def test_shape_runs_scaled_stages_and_stops_by_itself(tmp_path, api_server):
    r, took = _locust(tmp_path, api_server, "ApiOnlyUser", "--scenario", "readme", "--time-scale", "0.05",
                      shape=True)
    assert r.returncode == 0, r.stderr[-3000:]
    assert took < 30  # 3 s of stages, not a minute
    with open(tmp_path / "locust_stats_history.csv", newline="") as f:
        users = [int(row["User Count"]) for row in csv.DictReader(f) if row["Name"] == "Aggregated"]
    assert max(users) == 10 and users[-1] == 0
    assert int(_csv_rows(tmp_path)[("", "Aggregated")]["Request Count"]) > 0


@pytest.mark.e2e  # a real Locust run
def test_original_flow_counts_every_http_exchange_as_the_server_does(tmp_path, api_server):
    """Redirects are followed by the workload, not the client: 7 Locust requests per iteration, each
    one exchange the server saw (POST login -> 302 -> /admin/, GET login logged in -> 302 -> /admin/)."""
    _Handler.served.clear()
    _Handler.connections.clear()
    r, _ = _locust(tmp_path, api_server, "OriginalFlowUser", "--users", "2", "--spawn-rate", "10",
                   "--run-time", "2", "--reconnect-every", "3")
    assert r.returncode == 0, r.stderr[-3000:]
    rows = _csv_rows(tmp_path)
    flows = int(rows[("FLOW", "iteration")]["Request Count"])
    assert flows > 10 and int(rows[("", "Aggregated")]["Failure Count"]) == 0
    admin, login = benchcontract.ADMIN_INDEX_PATH, benchcontract.ADMIN_LOGIN_PATH
    steps = [("GET", login), ("POST", login), ("GET", f"{admin} (login redirect)"), ("GET", f"{login} (logged in)"),
             ("GET", f"{admin} (logged-in redirect)"), ("GET", "/api/clowncollege/"), ("GET", "/api/troupe/")]
    assert sorted(k for k in rows if k[0] not in ("FLOW", "")) == sorted(steps)
    assert all(int(rows[k]["Request Count"]) == flows for k in steps), {k: rows[k]["Request Count"] for k in steps}
    requests = sum(int(rows[k]["Request Count"]) for k in steps)
    served = list(_Handler.served)
    assert requests == len(served) == 7 * flows  # the server's own count, redirects included
    assert served.count(("GET", admin)) == 2 * flows and served.count(("GET", login)) == 2 * flows
    gen = json.loads((tmp_path / "generator.json").read_text())
    assert gen["requests"] == requests and gen["flow_iterations"] == flows
    # --reconnect-every 3: each user opens a new connection every 3 iterations (its first after 1..3)
    assert flows / 3 <= len(_Handler.connections) <= flows / 3 + 2 * 2, (len(_Handler.connections), flows)


@pytest.mark.e2e  # a real Locust run
def test_original_flow_login_failure_is_reported_at_the_post(tmp_path, api_server):
    r, _ = _locust(tmp_path, api_server, "OriginalFlowUser", "--users", "1", "--spawn-rate", "10",
                   "--run-time", "1", "--admin-password", "wrong")
    assert r.returncode == 1
    with open(tmp_path / "locust_failures.csv", newline="") as f:
        errors = {(row["Method"], row["Name"], row["Error"]) for row in csv.DictReader(f)}
    assert ("POST", benchcontract.ADMIN_LOGIN_PATH,
            "CatchResponseError('login failed: the login form came back (wrong username or password?)')") in errors
    assert ("GET", f"{benchcontract.ADMIN_LOGIN_PATH} (logged in)",
            "CatchResponseError('not logged in: got the login form')") in errors
    rows = _csv_rows(tmp_path)
    assert not any("redirect" in name for _, name in rows)  # no redirect to follow: none requested
