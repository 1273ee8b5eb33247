"""What every app here shares: settings, DRF-style pagination, row -> dict serialization, the SQL of the
driver-level apps, and the FastAPI routes (API + slowapi) built around per-ORM loaders.

Module level imports only the stdlib, orjson and benchcontract: the framework-free raw app imports this
module, and so does the gino env (SQLAlchemy 1.3). FastAPI/Starlette are imported inside the factories.
Python 3.8 compatible.

A loader is `loader(page) -> results` (a coroutine function, or a plain function for sync apps): it
counts the rows, calls `page.bounds(count)` (raises InvalidPage, i.e. DRF's 404, before fetching) and
returns the serialized rows of that page.
"""
import inspect
import math
import os
from urllib.parse import parse_qs, parse_qsl, quote, urlencode

import benchcontract as bc
import orjson

# --- settings -------------------------------------------------------------------------------------
# Connections per worker process, for every pool of every app here: the variable (and default) Django's
# pool reads in benchproject/settings.py. N concurrent probe requests need N connections to overlap.
POOL_SIZE = int(os.environ.get("ASGIBENCH_POOL_SIZE", "10"))
POOL_TIMEOUT = 30.0  # seconds a request waits for a free connection (as Django's pool)


def database_url(scheme=None):
    """DATABASE_URL (postgresql://user[:password]@host:port/dbname), its scheme replaced if asked."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        raise RuntimeError("DATABASE_URL is not set (the runner sets it for every server)")
    if scheme:
        url = scheme + url[url.index("://"):]
    return url


# --- pagination (DRF PageNumberPagination on Django's Paginator) -----------------------------------
INVALID_PAGE = bc.INVALID_PAGE_BODY


class InvalidPage(Exception):
    """The requested page does not exist: 404 INVALID_PAGE, as DRF answers."""


class Page:
    """One request's page: the number it asks for and DRF's next/previous links for it."""

    __slots__ = ("count", "num_pages", "number", "offset", "query", "raw", "scope")

    def __init__(self, scope):
        self.scope = scope
        self.query = scope["query_string"].decode("latin-1")
        raw = None
        if self.query:
            for key, value in parse_qsl(self.query, keep_blank_values=True):
                if key == bc.PAGE_PARAM:
                    raw = value  # the last one wins, as QueryDict.get
        self.raw = raw or "1"
        if self.raw != "last":
            try:
                self.number = int(self.raw)
            except ValueError:
                raise InvalidPage(self.raw)

    def bounds(self, count):
        """Validate the page against `count` rows; sets and returns the OFFSET of the page."""
        self.count = count
        self.num_pages = max(1, math.ceil(count / bc.PAGE_SIZE))
        if self.raw == "last":
            self.number = self.num_pages
        elif not 1 <= self.number <= self.num_pages:
            raise InvalidPage(self.raw)
        self.offset = (self.number - 1) * bc.PAGE_SIZE
        return self.offset

    def body(self, results):
        number = self.number
        return {
            "count": self.count,
            "next": self._link(number + 1) if number < self.num_pages else None,
            "previous": self._link(number - 1) if number > 1 else None,
            "results": results,
        }

    def _link(self, number):
        # DRF: request.build_absolute_uri(), then replace_query_param (remove_query_param for page 1).
        scope = self.scope
        host = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
                break
        if host is None:  # Django falls back to SERVER_NAME:SERVER_PORT
            server_name, port = scope.get("server") or ("unknown", 0)
            host = server_name if port in (80, 443) else f"{server_name}:{port}"
        query = parse_qs(self.query, keep_blank_values=True)
        if number == 1:
            query.pop(bc.PAGE_PARAM, None)
        else:
            query[bc.PAGE_PARAM] = [str(number)]
        query = urlencode(sorted(query.items()), doseq=True)
        path = quote(scope["path"], safe="/:@&+$,-_.!~*'()")  # django.utils.encoding.escape_uri_path
        return f"{scope.get('scheme', 'http')}://{host}{path}{'?' + query if query else ''}"


# --- serialization --------------------------------------------------------------------------------
def pick(obj, fields):
    return {f: getattr(obj, f) for f in fields}


def college(c, location, troupe):
    """A clowncollege row from ORM objects (attribute access)."""
    return {
        "id": c.id,
        "name": c.name,
        "location": pick(location, bc.LOCATION_FIELDS),
        "troupe": pick(troupe, bc.TROUPE_REF_FIELDS),
    }


# Which of the three MTI tables (auth_user, circus_performermixin, circus_clown/acrobat) holds each
# performer field, for the ORMs without inheritance and for the SQL below.
PERFORMER_TABLE = {"id": "user", "first_name": "user", "last_name": "user", "stage_name": "performer",
                   "concentration": "kind"}


def performer(p):
    """A performer row from an object with every field (an ORM with multi-table inheritance)."""
    return {f: getattr(p, f) for f in bc.PERFORMER_FIELDS}


def performer_from_parts(parts):
    """A performer row from its per-table objects: {"user": u, "performer": p, "kind": clown_or_acrobat}."""
    return {f: getattr(parts[PERFORMER_TABLE[f]], f) for f in bc.PERFORMER_FIELDS}


def troupe(t, clowns, acrobats, performer=performer):
    """A troupe row from ORM objects; clowns and acrobats already ordered by id."""
    return {
        "id": t.id,
        "name": t.name,
        "clowns": [performer(p) for p in clowns],
        "acrobats": [performer(p) for p in acrobats],
    }


_N_LOC = len(bc.LOCATION_FIELDS)


def college_from_row(r):
    """A clowncollege row from a flat DB row, columns in SQL.college_page order."""
    return {
        "id": r[0],
        "name": r[1],
        "location": dict(zip(bc.LOCATION_FIELDS, r[2:2 + _N_LOC])),
        "troupe": dict(zip(bc.TROUPE_REF_FIELDS, r[2 + _N_LOC:])),
    }


def troupes_from_rows(troupes, clowns, acrobats):
    """Troupe rows from flat rows: troupes (id, name); performers (troupe_id, *PERFORMER_FIELDS)."""
    out = []
    by_id = {}
    for t in troupes:
        by_id[t[0]] = row = {"id": t[0], "name": t[1], "clowns": [], "acrobats": []}
        out.append(row)
    for key, rows in (("clowns", clowns), ("acrobats", acrobats)):
        for r in rows:
            by_id[r[0]][key].append(dict(zip(bc.PERFORMER_FIELDS, r[1:])))
    return out


# --- SQL of the driver-level apps (asyncpg, psycopg): the queries an ORM with eager loading issues --
_T = bc.TABLES
_ALIAS = {"user": "u", "performer": "p", "kind": "k"}


class SQL:
    """The statements with a driver's placeholder style: SQL("$1", "$2") or SQL("%s", "%s")."""

    def __init__(self, p1, p2):
        self.count_colleges = f"SELECT count(*) FROM {_T['clowncollege']}"
        self.count_troupes = f"SELECT count(*) FROM {_T['troupe']}"
        columns = ", ".join(
            ["c.id", "c.name"] + ["l." + f for f in bc.LOCATION_FIELDS] + ["t." + f for f in bc.TROUPE_REF_FIELDS]
        )
        self.college_page = (
            "SELECT {cols} FROM {college} c JOIN {location} l ON l.id = c.location_id"
            " JOIN {troupe} t ON t.id = c.troupe_id ORDER BY c.id LIMIT {p1} OFFSET {p2}"
        ).format(cols=columns, college=_T["clowncollege"], location=_T["location"], troupe=_T["troupe"], p1=p1, p2=p2)
        self.troupe_page = f"SELECT id, name FROM {_T['troupe']} ORDER BY id LIMIT {p1} OFFSET {p2}"
        performer_columns = ", ".join(_ALIAS[PERFORMER_TABLE[f]] + "." + f for f in bc.PERFORMER_FIELDS)
        for kind in ("clown", "acrobat"):
            setattr(self, kind + "s", (
                "SELECT m.troupe_id, {cols} FROM {m2m} m JOIN {kind} k ON k.performermixin_ptr_id = m.{kind_name}_id"
                " JOIN {performer} p ON p.user_ptr_id = k.performermixin_ptr_id JOIN {user} u ON u.id = p.user_ptr_id"
                " WHERE m.troupe_id = ANY({p1}) ORDER BY u.id"
            ).format(cols=performer_columns, m2m=_T["troupe_" + kind + "s"], kind=_T[kind], kind_name=kind,
                     performer=_T["performer"], user=_T["user"], p1=p1))
        self.sleep = f"SELECT pg_sleep({p1}), {p1}::float8"


# --- the I/O probe --------------------------------------------------------------------------------
parse_seconds = bc.parse_sleep_seconds  # the contract's one rule for S


# --- FastAPI --------------------------------------------------------------------------------------
# Endpoints return ready Responses of orjson bytes: FastAPI then skips jsonable_encoder and response
# validation, the fast path its docs recommend (its ORJSONResponse class is deprecated).
def json_response(body, status_code=200):
    from starlette.responses import Response
    return Response(orjson.dumps(body), status_code=status_code, media_type="application/json")


def _list_endpoint(load):
    from fastapi import Request

    if inspect.iscoroutinefunction(load):
        async def endpoint(request: Request):
            try:
                page = Page(request.scope)
                results = await load(page)
            except InvalidPage:
                return json_response(INVALID_PAGE, 404)
            return json_response(page.body(results))
    else:  # a plain def: FastAPI runs it on its thread pool (40 threads)
        def endpoint(request: Request):
            try:
                page = Page(request.scope)
                results = load(page)
            except InvalidPage:
                return json_response(INVALID_PAGE, 404)
            return json_response(page.body(results))
    return endpoint


def api_router(clowncollege, troupe, prefix=bc.API_PREFIX):
    """GET {prefix}clowncollege/ and {prefix}troupe/ (prefix: benchcontract's, with both slashes) from
    two loaders."""
    from fastapi import APIRouter
    router = APIRouter()
    for name, load in (("clowncollege", clowncollege), ("troupe", troupe)):
        router.add_api_route(f"{prefix}{name}/", _list_endpoint(load), methods=["GET"], name=name)
    return router


def slowapi_router(sleep):
    """The original's slowapi routes: bc.SLOWAPI_PATH -> Honk Honk, bc.SLOWAPI_SLEEP_PATH?seconds=S ->
    {"slept": sleep(S)}. `sleep(seconds) -> seconds read back from PostgreSQL`, a coroutine function or
    a plain function."""
    from fastapi import APIRouter, Request
    router = APIRouter()

    @router.get(bc.SLOWAPI_PATH)
    async def honk():
        return json_response(bc.SLOWAPI_MESSAGE)

    def seconds_or_error(request):
        try:
            return parse_seconds(request.query_params.get(bc.SLEEP_PARAM)), None
        except ValueError as exc:
            return None, json_response({"detail": str(exc)}, 400)

    if inspect.iscoroutinefunction(sleep):
        @router.get(bc.SLOWAPI_SLEEP_PATH)
        async def probe(request: Request):
            seconds, error = seconds_or_error(request)
            return error or json_response({"slept": await sleep(seconds)})
    else:
        @router.get(bc.SLOWAPI_SLEEP_PATH)
        def probe(request: Request):
            seconds, error = seconds_or_error(request)
            return error or json_response({"slept": sleep(seconds)})
    return router


def fastapi_app(clowncollege, troupe, sleep, lifespan=None, title="asgibench", routers=()):
    """A FastAPI app serving the contract: the API_PREFIX lists and the slowapi routes (+ extra routers)."""
    from fastapi import FastAPI
    app = FastAPI(title=title, lifespan=lifespan)
    app.include_router(api_router(clowncollege, troupe))
    app.include_router(slowapi_router(sleep))
    for router in routers:
        app.include_router(router)
    return app
