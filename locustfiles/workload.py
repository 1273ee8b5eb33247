"""asgibench's Locust workload: the original study's k6 flow, an API-only flow, the I/O probe.

Files in this folder: workload.py (user classes; adminsteps.py: the admin steps), workload_args.py
(their custom arguments), recorder.py (plugin_timings.py, plugin_outputs.py, plugin_generator.py, plugin_shared.py:
exact timings, complete CSV/JSON, generator CPU; imported here so it is always active), shapes.py (the k6
stages as a LoadTestShape), stages.py / timingfile.py / checks.py (no Locust import: the runner can
import them, e.g. `from locustfiles import stages, timingfile`).

How the runner calls it (PYTHONPATH must contain services/, for benchcontract):

  standalone, one process (the default; pin it with taskset, away from the server):
    locust -f locustfiles/workload.py[,locustfiles/shapes.py] <UserClass> --headless \
      --host http://127.0.0.1:PORT --csv PREFIX --csv-full-history --html FILE \
      --json-file PREFIX (Locust appends .json) --stop-timeout 5 --only-summary \
      --users N --spawn-rate R --run-time T          (constant load; omit all three with shapes.py)
      [--scenario NAME --time-scale X]               (shapes.py only)
      [--api-prefix /async_api/] [--with-slowapi | --only-slowapi] [--io-path P --io-seconds S] \
      --timings-file DIR/timings.bin --generator-file DIR/generator.json
  several processes on one machine: the same plus `--processes K` (K forked workers; every custom
    argument reaches them because they parse the same command line).
  master/workers (e.g. compose): the same command plus `--master --master-bind-host H
    --master-bind-port P --expect-workers K` for the master, and K times
    `locust -f <same files> --worker --master-host H --master-port P` (custom arguments are sent by
    the master to the workers with the spawn message; workers need only -f).
  Every custom argument is also an environment variable (LOCUST_API_PREFIX, ...) and a web UI field.
  shapes.py is added to -f only for a ramp scenario; the shape then drives the user count and ends the
  run by itself (Locust ignores --users/--spawn-rate/--run-time then, with a warning).

User classes (no think time: wait_time = constant(0), like k6's default iteration loop):

  OriginalFlowUser  the original k6 iteration, step by step, with real checks (every failed check is a
                    Locust failure with a specific message). Redirects are NOT followed by the client:
                    each is followed explicitly as a request of its own, so Locust counts every HTTP
                    exchange, as the server's access log and k6 (http_reqs) do: 7 per iteration.
                      1. GET  /admin/login/            200 and a csrftoken cookie
                      2. POST /admin/login/?next=/admin/ username, password (benchcontract's admin;
                         the original posted `email=`, so its login silently failed),
                         csrfmiddlewaretoken, next + X-CSRFToken and Referer headers: must answer
                         302 to /admin/ with a sessionid cookie (a 200 with the login form again is
                         "login failed"); then
                         GET  /admin/                  the redirect (stats name "/admin/ (login
                         redirect)"): 200, the logged-in admin index, not the login form
                      3. GET  /admin/login/            logged in, Django answers 302 to /admin/ (stats
                         name "/admin/login/ (logged in)": not the anonymous form of step 1); then
                         GET  /admin/                  the redirect ("/admin/ (logged-in redirect)"):
                         200, the logged-in admin index
                      4. GET  {api-prefix}clowncollege/  200, JSON, count not null, next truthy,
                         results non-empty
                      5. GET  {api-prefix}troupe/        same checks
                    --with-slowapi appends GET /slowapi/slowapi/ ({"message": "Honk Honk"}) and GET
                    /slowapi/slowapi/django-async-orm/ (int counts); --only-slowapi runs just those two.
  ApiOnlyUser       steps 4-5 only (rows without the Django admin, e.g. FastAPI apps); the slowapi
                    switches apply here too.
  IoProbeUser       GET {io-path}?seconds=S only: 200, {"slept": S}, and not faster than S.
                    Concurrency efficiency = achieved req/s / (users / S) (the runner computes it).
  BareGetUser       GET --bare-path (default "/"), no checks, Locust's stock client: calibrates the
                    generator's own cost per request.

Custom arguments: workload_args.py (defaults and checks; it also says where the recorder's and the
shape's are).

Connections: each user holds one keep-alive connection for the whole run (as k6's VUs do) unless
--reconnect-every K: then it closes it after every K iterations (the first time after a random 1..K,
so the users' reconnections are spread), and the server's workers compete to accept the new one.
The matrix's default scenarios turn connections over (asgibench/matrix.py says why).

Cookies: k6 keeps a VU's cookie jar across iterations. Here the jar is cleared at the start of every
iteration, so every iteration really starts logged out and really logs in (otherwise iteration 2+
would skip the login's work and step 1 would be a logged-in redirect). The jar is
checks.FastCookieJar: Locust's stdlib CookieJar cost ~120 µs of generator CPU per request in this
cookie-heavy flow. The admin steps are adminsteps.py's (a mixin of OriginalFlowUser).

Generator cost: JSON list pages are checked cheaply (checks.list_page_problem_fast: the envelope's
keys read off the raw bytes) and fully parsed on each user's first and every --full-json-every-th
response per endpoint; both checks give the same verdicts (tests/test_locustfiles.py). Where the rest
goes (measured 2026-12-02, cProfile with a CPU clock over test_start..test_stop, 10 users, machine
shared, load average 4-8): this folder's code is ~5% of the generator's CPU on the API flow and ~6%
on the original flow (mostly the cookie jar); geventhttpclient ~35%, gevent 10-15%, Locust ~5-10%,
their C parts and sockets the rest. Interleaved on raw-asgi-asyncpg: a bare FastHttpUser GET with no
checks and no recorder cost 443-532 us/request, with catch_response 587-640, this API flow 517-675.

Stats names are stable per endpoint: (GET, /admin/login/), (POST, /admin/login/),
(GET, /admin/ (login redirect)), (GET, /admin/login/ (logged in)), (GET, /admin/ (logged-in redirect)),
(GET, /api/clowncollege/), (GET, /api/troupe/), ...
A failed step does not abort the iteration (k6's checks do not either).

The whole iteration is also reported as one pseudo-request, like k6's iteration_duration:
request_type benchcontract.FLOW_REQUEST_TYPE ("FLOW"), name FLOW_NAME ("iteration"), response_time =
the whole iteration in ms, and an exception naming the first failed step if any step failed
(OriginalFlowUser and ApiOnlyUser). It appears in every Locust output (CSV, JSON, HTML, the
Aggregated row, the exit code): totals of real requests (req/s, failures) must EXCLUDE request_type
FLOW.
"""

from __future__ import annotations

import json
import random
import time
from urllib.parse import urlencode

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

import benchcontract
import inflight
import recorder  # noqa: F401  (registers the exact-timings / CSV / generator-CPU plugins)
from adminsteps import (  # noqa: F401  (the admin names: tests read them here)
    ADMIN_INDEX_MARKER,
    AFTER_LOGIN_NAME,
    LOGGED_IN_INDEX_NAME,
    LOGGED_IN_LOGIN_NAME,
    LOGIN_FORM_MARKER,
    LOGIN_POST_PATH,
    AdminSteps,
    status_failure,
)
from benchcontract import (
    ADMIN_INDEX_PATH,
    ADMIN_LOGIN_PATH,
    FLOW_NAME,
    FLOW_REQUEST_TYPE,
    SLOWAPI_ORM_KEYS,
    SLOWAPI_ORM_PATH,
    SLOWAPI_PATH,
)
from checks import FastCookieJar, list_page_problem_fast, list_page_problem_full
from workload_args import options  # registers the workload's custom arguments (after the recorder's)

inflight.install()  # a request cut off by the end of the run is a failure, not a lost sample

class FlowError(Exception):
    """Exception of a FLOW pseudo-request: the first failed step of the iteration."""


_json_loads = json.loads


def bounded(user, environment) -> None:
    """Before FastHttpUser.__init__ builds its client: every request bounded by --request-timeout."""
    user.network_timeout = user.connection_timeout = inflight.configured_timeout = \
        options(environment)["request_timeout"]


class _CheckedUser(FastHttpUser):
    abstract = True

    # Closed model: no think time, like k6's iteration loop. The open model (--arrival-rate) is
    # openmodel.py's dispatcher, which runs these classes' iterations on its own greenlets.
    wait_time = constant(0)

    def __init__(self, environment):
        bounded(self, environment)
        super().__init__(environment)
        jar = FastCookieJar()
        self.client.cookiejar = jar  # FastHttpSession's reference
        self.client.client.cookiejar = jar  # the one geventhttpclient's UserAgent actually uses

    def on_start(self):
        self.opts = options(self.environment)
        self._list_seen: dict[str, int] = {}
        k = self.opts["reconnect_every"]
        self._until_reconnect = random.randint(1, k) if k else 0  # a random phase: users do not reconnect in step

    def turn_over(self) -> None:
        """--reconnect-every K: after every K iterations close this user's connections; the next request
        opens a new one (which the server's workers compete to accept, as with many real clients)."""
        if self._until_reconnect:
            self._until_reconnect -= 1
            if not self._until_reconnect:
                self.client.client.clientpool.close()
                self._until_reconnect = self.opts["reconnect_every"]

    # -- checked requests: each returns None or the failure message it reported --------------------
    def get_clowncollege(self) -> str | None:  # step 4 (OriginalFlowUser, ApiOnlyUser)
        return self.check_list(f"{self.opts['api_prefix']}clowncollege/")

    def get_troupe(self) -> str | None:  # step 5
        return self.check_list(f"{self.opts['api_prefix']}troupe/")

    def check_list(self, path: str) -> str | None:
        """Steps 4-5: a DRF page that must have a count, a next page and results."""
        with self.client.get(path, name=path, catch_response=True) as resp:
            if resp.status_code != 200:
                return status_failure(resp)
            n = self._list_seen[path] = self._list_seen.get(path, 0) + 1
            every = self.opts["full_json_every"]
            body = resp.content or b""
            if every and (n - 1) % every == 0:
                msg = list_page_problem_full(body)
            else:
                msg = list_page_problem_fast(body)
            if msg is not None:
                resp.failure(msg)
            return msg

    def check_json(self, path: str, valid, expected: str) -> str | None:
        """GET path; a failure unless HTTP 200 and valid(parsed JSON); returns the failure message."""
        with self.client.get(path, name=path, catch_response=True) as resp:
            if resp.status_code != 200:
                return status_failure(resp)
            try:
                data = _json_loads(resp.content)
            except (ValueError, TypeError):
                data = None
            if not valid(data):
                msg = f"expected {expected}"
                resp.failure(msg)
                return msg
        return None

    def check_slowapi(self) -> str | None:
        return self.check_json(SLOWAPI_PATH, lambda d: d == benchcontract.SLOWAPI_MESSAGE,
                               json.dumps(benchcontract.SLOWAPI_MESSAGE))

    def check_slowapi_orm(self) -> str | None:
        return self.check_json(
            SLOWAPI_ORM_PATH,
            lambda d: type(d) is dict and all(type(d.get(k)) is int for k in SLOWAPI_ORM_KEYS),
            f"integer {' and '.join(SLOWAPI_ORM_KEYS)}",
        )

    def slowapi_steps(self):
        return [self.check_slowapi, self.check_slowapi_orm]

    def run_flow(self, steps) -> None:
        """Run the steps as one iteration and report it as the FLOW pseudo-request."""
        start_time = time.time()
        t = time.perf_counter()
        first = None
        for i, step in enumerate(steps, 1):
            err = step()
            if err is not None and first is None:
                first = f"step {i} ({step.__name__}): {err}"
        self.environment.events.request.fire(
            request_type=FLOW_REQUEST_TYPE,
            name=FLOW_NAME,
            response_time=(time.perf_counter() - t) * 1000.0,
            response_length=0,
            exception=FlowError(first) if first is not None else None,
            context=self.context(),  # the open model's arrival lag (openmodel.py): the iteration's own
            start_time=start_time,
        )
        self.turn_over()


class OriginalFlowUser(AdminSteps, _CheckedUser):
    """The original study's k6 iteration (see the module docstring)."""

    def on_start(self):
        super().on_start()
        o = self.opts
        self._login_body = urlencode({"username": o["admin_username"], "password": o["admin_password"],
                                      "next": ADMIN_INDEX_PATH}) + "&csrfmiddlewaretoken="
        self._referer = f"{self.host.rstrip('/')}{ADMIN_LOGIN_PATH}"
        self._csrftoken = None
        if o["only_slowapi"]:
            self.steps = self.slowapi_steps()
        else:
            self.steps = [self.get_login_form, self.post_login, self.get_login_logged_in,
                          self.get_clowncollege, self.get_troupe]
            if o["with_slowapi"]:
                self.steps += self.slowapi_steps()

    @task
    def iteration(self):
        self.client.cookiejar.clear()
        self._csrftoken = None
        self.run_flow(self.steps)

class ApiOnlyUser(_CheckedUser):
    """Steps 4-5 of the original flow (no Django admin), plus the slowapi switches."""

    def on_start(self):
        super().on_start()
        o = self.opts
        if o["only_slowapi"]:
            self.steps = self.slowapi_steps()
        else:
            self.steps = [self.get_clowncollege, self.get_troupe]
            if o["with_slowapi"]:
                self.steps += self.slowapi_steps()

    @task
    def iteration(self):
        self.run_flow(self.steps)


class IoProbeUser(_CheckedUser):
    """One request per iteration: GET {io-path}?seconds=S, which waits S seconds in PostgreSQL."""

    def on_start(self):
        super().on_start()
        s = self.opts["io_seconds"]
        self._seconds = s
        self._path = f"{self.opts['io_path']}?{benchcontract.SLEEP_PARAM}={s:g}"
        self._min_ms = s * 1000.0 - 1.0  # 1 ms of slack for clock granularity

    @task
    def probe(self):
        with self.client.get(self._path, name=self._path, catch_response=True) as resp:
            if resp.status_code != 200:
                status_failure(resp)
                return
            try:
                data = _json_loads(resp.content)
            except (ValueError, TypeError):
                data = None
            slept = data.get("slept") if type(data) is dict else None
            if type(slept) not in (int, float) or abs(slept - self._seconds) > 1e-9:
                resp.failure(f'expected {{"slept": {self._seconds:g}}}')
            elif resp.request_meta["response_time"] < self._min_ms:
                resp.failure(f"answered faster than the {self._seconds:g} s sleep")


class BareGetUser(FastHttpUser):
    """GET --bare-path with no checks at all: the generator's cheapest request, for calibration."""

    wait_time = constant(0)

    def __init__(self, environment):
        bounded(self, environment)
        super().__init__(environment)

    def on_start(self):
        self._path = options(self.environment)["bare_path"]

    @task
    def get(self):
        self.client.get(self._path)
