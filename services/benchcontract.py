"""The JSON contract every variant serves: fixed here, in one place, for every app and for the runner.

Data and one rule, standard library only: it is read by the apps under test (any env group, Python
3.8+) and by the runner's contract check (asgibench.contract), so the page size, field lists and the
probe's bounds cannot drift apart.
"""
import math

# DRF PageNumberPagination shape: {"count", "next", "previous", "results"}, ?page=N, ordered by id.
PAGE_SIZE = 10
PAGE_PARAM = "page"

# List endpoints, relative to the API prefix: API_PREFIX (DRF, sync views) or ASYNC_API_PREFIX
# (Django's native async views), e.g. /api/clowncollege/.
API_PREFIX = "/api/"
ASYNC_API_PREFIX = "/async_api/"
LIST_ENDPOINTS = ("clowncollege", "troupe")
# A page past the last one: 404 with DRF's body, from every app.
INVALID_PAGE_BODY = {"detail": "Invalid page."}

LOCATION_FIELDS = ("id", "line_1", "line_2", "line_3", "zipcode")
TROUPE_REF_FIELDS = ("id", "name")
CLOWNCOLLEGE_FIELDS = ("id", "name", "location", "troupe")
TROUPE_FIELDS = ("id", "name", "clowns", "acrobats")
# Performers (clowns, acrobats) are ordered by id; id is the auth_user id (multi-table inheritance).
PERFORMER_FIELDS = ("id", "first_name", "last_name", "stage_name", "concentration")

# The I/O probe: one request waits S seconds inside PostgreSQL (SELECT pg_sleep(S)) and answers
# {"slept": S} with S read back from that same row. S is bounded to keep every run bounded.
SLEEP_PARAM = "seconds"
MAX_SLEEP_SECONDS = 5.0
DEFAULT_SLEEP_SECONDS = 1.0
# The load generator's bound on one request (Locust --request-timeout, asgibench --request-timeout):
# above the longest sleep, so a probe that does what it is asked never times out.
DEFAULT_REQUEST_TIMEOUT = 10.0



def parse_sleep_seconds(raw):
    """`?seconds=` as a float in [0, MAX_SLEEP_SECONDS]; None -> the default; ValueError(message) if bad.
    Every app's probe answers 400 with this message."""
    if raw is None:
        return DEFAULT_SLEEP_SECONDS
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = math.nan
    # float() accepts "nan" and "inf": isfinite rejects them with the unparsable values.
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_SLEEP_SECONDS:
        raise ValueError(f"{SLEEP_PARAM} must be a number of seconds between 0 and {MAX_SLEEP_SECONDS}, not {raw!r}")
    return seconds


# The original study's FastAPI "slowapi" app, mounted at /slowapi (its own routes are under /slowapi).
SLOWAPI_MOUNT = "/slowapi"
SLOWAPI_PATH = "/slowapi/slowapi/"  # {"message": "Honk Honk"}
SLOWAPI_SLEEP_PATH = "/slowapi/slowapi/sleep/"  # the I/O probe inside the slowapi app
SLOWAPI_ORM_PATH = "/slowapi/slowapi/django-async-orm/"  # counts through Django's async ORM
SLOWAPI_ORM_KEYS = ("clowncollege_count", "troupe_count")
SLOWAPI_MESSAGE = {"message": "Honk Honk"}

# Django's own pages and probes.
ADMIN_LOGIN_PATH = "/admin/login/"
ADMIN_INDEX_PATH = "/admin/"
IO_SLEEP_PATH = "/io/sleep/"  # sync view: "my blocking ORM code"
ASYNC_IO_SLEEP_PATH = "/async_io/sleep/"  # native async view
# A collected static file served byte-for-byte (path under STATIC_URL, /static/).
STATIC_URL = "/static/"
STATIC_PROBE = "admin/css/base.css"

# The whole-iteration pseudo-request the Locust workload reports (like k6's iteration_duration):
# an entry with this request type is not an HTTP request and never counts as one.
FLOW_REQUEST_TYPE = "FLOW"
FLOW_NAME = "iteration"

# The superuser the load test logs in with (seeded by `manage.py populate_test_db`).
ADMIN_USERNAME = "ringmaster"
ADMIN_PASSWORD = "honk-honk-benchmark"

# Tables (Django's migrations own the schema; every other ORM maps onto these).
TABLES = {
    "user": "auth_user",
    "performer": "circus_performermixin",  # user_ptr_id -> auth_user.id, stage_name
    "clown": "circus_clown",  # performermixin_ptr_id -> circus_performermixin.user_ptr_id, concentration
    "acrobat": "circus_acrobat",  # performermixin_ptr_id, concentration
    "troupe": "circus_troupe",  # id, name
    "troupe_clowns": "circus_troupe_clowns",  # id, troupe_id, clown_id
    "troupe_acrobats": "circus_troupe_acrobats",  # id, troupe_id, acrobat_id
    "location": "circus_location",  # id, line_1, line_2, line_3, zipcode
    "clowncollege": "circus_clowncollege",  # id, name, location_id, troupe_id
}
