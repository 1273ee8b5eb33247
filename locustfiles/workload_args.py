"""The workload's custom arguments (workload.py's user classes read them through options()).

Each is a Locust command-line argument, an environment variable (LOCUST_API_PREFIX, ...) and a web UI
field; the master sends them to its workers. Defaults: --api-prefix benchcontract.API_PREFIX (/api/),
--with-slowapi off, --only-slowapi off, --io-path benchcontract.IO_SLEEP_PATH (/io/sleep/),
--io-seconds benchcontract.DEFAULT_SLEEP_SECONDS (1.0), --bare-path /,
--admin-username/--admin-password benchcontract.ADMIN_USERNAME/ADMIN_PASSWORD, --arrival-rate 0,
--full-json-every 100, --reconnect-every 0, --request-timeout benchcontract.DEFAULT_REQUEST_TIMEOUT (10 s).
The recorder's (--timings-file, --generator-file, --cpu-monitor-interval,
--warmup-seconds) are in recorder.py, the shape's (--scenario readme, --time-scale 1.0) in shapes.py.

A new workload argument goes here: into DEFAULTS, _add_arguments and, if it needs normalising or a
range check, options().
"""

from __future__ import annotations

from locust import events

import benchcontract
from benchcontract import SLOWAPI_ORM_PATH, SLOWAPI_PATH

DEFAULTS = {
    "api_prefix": benchcontract.API_PREFIX,
    "with_slowapi": False,
    "only_slowapi": False,
    "io_path": benchcontract.IO_SLEEP_PATH,
    "io_seconds": benchcontract.DEFAULT_SLEEP_SECONDS,
    "bare_path": "/",
    "admin_username": benchcontract.ADMIN_USERNAME,
    "admin_password": benchcontract.ADMIN_PASSWORD,
    "full_json_every": 100,
    "arrival_rate": 0.0,
    "reconnect_every": 0,
    "request_timeout": benchcontract.DEFAULT_REQUEST_TIMEOUT,
}


@events.init_command_line_parser.add_listener
def _add_arguments(parser, **_kw):
    # parser.add_argument (not a group): only it takes Locust's extras (is_secret, include_in_web_ui)
    # the flow switches: shown in the web UI's form (include_in_web_ui), pre-set from the command line
    parser.add_argument("--api-prefix", default=DEFAULTS["api_prefix"], env_var="LOCUST_API_PREFIX",
                        include_in_web_ui=True,
                        help=f"prefix of the list endpoints (steps 4-5): {benchcontract.API_PREFIX} or "
                             f"{benchcontract.ASYNC_API_PREFIX} (async views)")
    parser.add_argument("--with-slowapi", action="store_true", default=False, env_var="LOCUST_WITH_SLOWAPI",
                        include_in_web_ui=True, help=f"also GET {SLOWAPI_PATH} and {SLOWAPI_ORM_PATH} each iteration")
    parser.add_argument("--only-slowapi", action="store_true", default=False, env_var="LOCUST_ONLY_SLOWAPI",
                        include_in_web_ui=True, help="iterations are only the two slowapi requests")
    parser.add_argument("--io-path", default=DEFAULTS["io_path"], env_var="LOCUST_IO_PATH",
                        help=f"I/O probe path (IoProbeUser), e.g. {benchcontract.IO_SLEEP_PATH}, "
                             f"{benchcontract.ASYNC_IO_SLEEP_PATH}, {benchcontract.SLOWAPI_SLEEP_PATH}")
    parser.add_argument("--io-seconds", type=float, default=DEFAULTS["io_seconds"], env_var="LOCUST_IO_SECONDS",
                        help=f"seconds each probe waits in pg_sleep (0..{benchcontract.MAX_SLEEP_SECONDS:g})")
    parser.add_argument("--bare-path", default=DEFAULTS["bare_path"], env_var="LOCUST_BARE_PATH",
                        include_in_web_ui=False, help="path BareGetUser requests (generator calibration)")
    parser.add_argument("--admin-username", default=DEFAULTS["admin_username"], env_var="LOCUST_ADMIN_USERNAME",
                        help="Django admin user of the login steps (default: benchcontract.ADMIN_USERNAME)")
    parser.add_argument("--admin-password", default=DEFAULTS["admin_password"], env_var="LOCUST_ADMIN_PASSWORD",
                        is_secret=True, help="its password (default: benchcontract.ADMIN_PASSWORD)")
    parser.add_argument("--arrival-rate", type=float, default=DEFAULTS["arrival_rate"], env_var="LOCUST_ARRIVAL_RATE",
                        help="open model (openmodel.py's dispatcher, -f ...,openmodel.py OpenModelUser): arrivals "
                             "started per second, independently of responses; 0 = closed model")
    parser.add_argument("--reconnect-every", type=int, default=DEFAULTS["reconnect_every"],
                        env_var="LOCUST_RECONNECT_EVERY",
                        help="flows: each user closes its connection(s) after every K iterations (its first "
                             "after a random 1..K, so users do not reconnect in step); 0 = keep-alive for the run")
    parser.add_argument("--request-timeout", type=float, default=DEFAULTS["request_timeout"],
                        env_var="LOCUST_REQUEST_TIMEOUT",
                        help="seconds a request may wait for a connection or the next byte; then it fails with "
                             "'timeout after S s' (inflight.py)")
    parser.add_argument("--full-json-every", type=int, default=DEFAULTS["full_json_every"],
                        env_var="LOCUST_FULL_JSON_EVERY",
                        help="list pages: parse the whole JSON on a user's 1st and every Nth response of each "
                             "endpoint, check the envelope cheaply on the others (1 = always parse, 0 = never)")


def _prefix(p: str) -> str:
    """Normalise a path prefix to start and end with '/'."""
    p = "/" + str(p).strip().strip("/")
    return p if p == "/" else p + "/"


def options(environment) -> dict:
    """The workload's settings: parsed options (CLI, env, web UI, or sent by the master) over DEFAULTS."""
    opts = getattr(environment, "parsed_options", None)
    out = {k: getattr(opts, k, v) if opts is not None else v for k, v in DEFAULTS.items()}
    out["api_prefix"] = _prefix(out["api_prefix"])
    out["io_path"] = "/" + str(out["io_path"]).lstrip("/")
    out["io_seconds"] = float(out["io_seconds"])
    out["with_slowapi"] = bool(out["with_slowapi"])
    out["only_slowapi"] = bool(out["only_slowapi"])
    out["full_json_every"] = int(out["full_json_every"])
    out["reconnect_every"] = int(out["reconnect_every"])
    if out["reconnect_every"] < 0:
        raise ValueError(f"--reconnect-every must be >= 0, not {out['reconnect_every']}")
    out["request_timeout"] = float(out["request_timeout"])
    if not out["request_timeout"] > 0:
        raise ValueError(f"--request-timeout must be above 0, not {out['request_timeout']}")
    if out["full_json_every"] < 0:
        raise ValueError(f"--full-json-every must be >= 0, not {out['full_json_every']}")
    if not 0.0 <= out["io_seconds"] <= benchcontract.MAX_SLEEP_SECONDS:
        raise ValueError(f"--io-seconds must be within 0..{benchcontract.MAX_SLEEP_SECONDS}, not {out['io_seconds']}")
    return out
