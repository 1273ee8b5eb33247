"""Contract step: before any load, every endpoint a row serves must answer the JSON the database
says it should. The expected pages are built here straight from the tables with SQL — not through
any app's code path — so a stub, a wrong field or a stale cache fails the run.

Comparison parses JSON and normalises only the scheme/host of `next`/`previous` URLs; everything else
must be exactly the expected JSON (first_difference): the same types (a boolean is not an integer, an
integer is not a float), the same fields in the same order, the same items in the same order. Every
path and expected body comes from benchcontract (the apps' own vocabulary); a new check of an endpoint
a row serves goes into verify(), keyed by the `serves` name of variants.py.
"""
from __future__ import annotations

import hashlib
import http.cookiejar
import json
import math
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

import benchcontract as C
from asgibench.errors import RunError

PAGES_CHECKED = (1, 2)


def _performers(cur, kind: str, troupe_ids: list[int]) -> dict[int, list[dict]]:
    table, link = C.TABLES[kind], C.TABLES[f"troupe_{kind}s"]
    rows = cur.execute(
        f"""select l.troupe_id, u.id, u.first_name, u.last_name, p.stage_name, k.concentration
            from {link} l
            join {table} k on k.performermixin_ptr_id = l.{kind}_id
            join {C.TABLES['performer']} p on p.user_ptr_id = k.performermixin_ptr_id
            join {C.TABLES['user']} u on u.id = p.user_ptr_id
            where l.troupe_id = any(%s) order by l.troupe_id, u.id""",
        (troupe_ids,),
    ).fetchall()
    out: dict[int, list[dict]] = {t: [] for t in troupe_ids}
    for troupe_id, *vals in rows:
        out[troupe_id].append(dict(zip(C.PERFORMER_FIELDS, vals)))
    return out


def expected_results(conn, endpoint: str, page: int) -> tuple[int, list[dict]]:
    """(count, results of `page`) for one list endpoint, from SQL."""
    cur = conn.cursor()
    offset = (page - 1) * C.PAGE_SIZE
    if endpoint == "clowncollege":
        count = cur.execute(f"select count(*) from {C.TABLES['clowncollege']}").fetchone()[0]
        rows = cur.execute(
            f"""select c.id, c.name, l.id, l.line_1, l.line_2, l.line_3, l.zipcode, t.id, t.name
                from {C.TABLES['clowncollege']} c
                join {C.TABLES['location']} l on l.id = c.location_id
                join {C.TABLES['troupe']} t on t.id = c.troupe_id
                order by c.id limit %s offset %s""",
            (C.PAGE_SIZE, offset),
        ).fetchall()
        results = [
            {"id": r[0], "name": r[1], "location": dict(zip(C.LOCATION_FIELDS, r[2:7])),
             "troupe": dict(zip(C.TROUPE_REF_FIELDS, r[7:9]))}
            for r in rows
        ]
        return count, results
    if endpoint == "troupe":
        count = cur.execute(f"select count(*) from {C.TABLES['troupe']}").fetchone()[0]
        rows = cur.execute(
            f"select id, name from {C.TABLES['troupe']} order by id limit %s offset %s", (C.PAGE_SIZE, offset)
        ).fetchall()
        ids = [r[0] for r in rows]
        clowns, acrobats = _performers(cur, "clown", ids), _performers(cur, "acrobat", ids)
        return count, [{"id": i, "name": n, "clowns": clowns[i], "acrobats": acrobats[i]} for i, n in rows]
    raise ValueError(endpoint)


def expected_page(conn, prefix: str, endpoint: str, page: int, base_url: str) -> dict:
    count, results = expected_results(conn, endpoint, page)
    last = max(1, math.ceil(count / C.PAGE_SIZE))
    path = f"{base_url}{prefix}{endpoint}/"
    nxt = f"{path}?{C.PAGE_PARAM}={page + 1}" if page < last else None
    prev = None if page == 1 else (path if page == 2 else f"{path}?{C.PAGE_PARAM}={page - 1}")
    return {"count": count, "next": nxt, "previous": prev, "results": results}


def normalise(doc):
    """Drop scheme and host from next/previous: a row may see 127.0.0.1 or localhost."""
    if isinstance(doc, dict):
        doc = dict(doc)
        for k in ("next", "previous"):
            if isinstance(doc.get(k), str):
                s = urlsplit(doc[k])
                doc[k] = urlunsplit(("", "", s.path, s.query, ""))
    return doc


_JSON_TYPE = {dict: "object", list: "array", str: "string", int: "integer", float: "float", bool: "boolean",
              type(None): "null"}


def first_difference(expected, actual, path="$") -> str | None:
    """The first place where `actual` is not the JSON `expected`, as "<JSON path>: what differs", or None.

    Strict, as the apps' JSON is: a value's type must be the expected one (a boolean is not an integer,
    although Python's True == 1; an integer is not a float: ids and counts are integers in every app, as
    DRF emits them), an object has exactly the expected fields in the expected order (every app emits the
    documented order: DRF's serializers and pagination, and the FastAPI/raw apps build their dicts from
    benchcontract's field tuples), and an array has the expected items in the expected order.
    """
    if type(expected) is not type(actual):
        return f"{path}: expected {_typed(expected)}, got {_typed(actual)}"
    if isinstance(expected, dict):
        if expected.keys() != actual.keys():
            missing = [k for k in expected if k not in actual]
            extra = [k for k in actual if k not in expected]
            return f"{path}: fields differ (missing {missing}, unexpected {extra})"
        if list(expected) != list(actual):
            return f"{path}: fields in another order: expected {list(expected)}, got {list(actual)}"
        for k in expected:
            d = first_difference(expected[k], actual[k], f"{path}.{k}")
            if d:
                return d
        return None
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{path}: expected {len(expected)} items, got {len(actual)}"
        for i, (e, a) in enumerate(zip(expected, actual)):
            d = first_difference(e, a, f"{path}[{i}]")
            if d:
                if sorted(map(_canonical, expected)) == sorted(map(_canonical, actual)):
                    return f"{path}: the expected items in another order (first at {d})"
                return d
        return None
    return None if expected == actual else f"{path}: expected {_short(expected)}, got {_short(actual)}"


def _typed(v) -> str:
    """A value with its JSON type: 'integer 1', 'boolean true', 'string "1"', 'null'."""
    return "null" if v is None else f"{_JSON_TYPE.get(type(v), type(v).__name__)} {_short(v)}"


def _canonical(v) -> str:
    """One string per JSON value, field order included: equal strings, equal values (and types)."""
    return json.dumps(v, default=str)


def _short(v) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= 80 else s[:77] + "..."


@dataclass
class ContractReport:
    checks: list = field(default_factory=list)  # (name, ok, detail)

    def add(self, name: str, ok: bool, detail: str = "") -> None:
        self.checks.append((name, ok, detail))

    @property
    def failures(self) -> list:
        return [c for c in self.checks if not c[1]]

    def as_dict(self) -> dict:
        return {"passed": not self.failures,
                "checks": [{"check": n, "ok": ok, "detail": d} for n, ok, d in self.checks]}


class _Client:
    def __init__(self, base_url: str):
        self.base_url = base_url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str, timeout: float = 15.0):
        try:
            with self.opener.open(self.base_url + path, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as e:
            return e.code, e.read()

    def cookie(self, name: str):
        return next((c.value for c in self.jar if c.name == name), None)


def verify(variant, base_url: str, db_conn, *, static_root=None, api_prefixes=None) -> ContractReport:
    """Check every endpoint set `variant` serves against the database. Returns the report; the
    caller decides what a failure means (bench refuses to load a server that fails)."""
    rep = ContractReport()
    client = _Client(base_url)
    prefixes = api_prefixes or [p for s, p in (("api", C.API_PREFIX), ("async_api", C.ASYNC_API_PREFIX))
                                if s in variant.serves]
    for prefix in prefixes:
        for endpoint in C.LIST_ENDPOINTS:
            for page in PAGES_CHECKED:
                status, body = client.get(f"{prefix}{endpoint}/?{C.PAGE_PARAM}={page}")
                expected = expected_page(db_conn, prefix, endpoint, page, base_url)
                ok, detail = _json_check(status, body, normalise(expected), prepare=normalise)
                if ok:
                    detail = f"{len(expected['results'])} rows match the database"
                rep.add(f"GET {prefix}{endpoint}/?page={page}", ok, detail)
    if "admin" in variant.serves:
        status, body = client.get(C.ADMIN_LOGIN_PATH)
        cookie, form_token = client.cookie("csrftoken"), _form_csrf_token(body)
        rep.add(f"GET {C.ADMIN_LOGIN_PATH}", status == 200 and bool(cookie) and bool(form_token),
                f"HTTP {status}, csrftoken cookie {'set' if cookie else 'missing'}, "
                f"csrfmiddlewaretoken {'in the form' if form_token else 'missing from the form'}")
    if "static" in variant.serves:
        status, body = client.get(f"{C.STATIC_URL}{C.STATIC_PROBE}")
        ok, detail = status == 200, f"HTTP {status}"
        if ok and static_root is not None:
            on_disk = (static_root / C.STATIC_PROBE).read_bytes()
            ok = body == on_disk
            detail = "bytes match the collected file" if ok else (
                f"bytes differ from the collected file: served {_digest(body)}, on disk {_digest(on_disk)}")
        rep.add(f"GET {C.STATIC_URL}{C.STATIC_PROBE}", ok, detail)
    if "slowapi" in variant.serves:
        status, body = client.get(C.SLOWAPI_PATH)
        rep.add(f"GET {C.SLOWAPI_PATH}", *_json_check(status, body, C.SLOWAPI_MESSAGE))
    if "slowapi_orm" in variant.serves:
        status, body = client.get(C.SLOWAPI_ORM_PATH)
        cur = db_conn.cursor()
        colleges, troupes = C.SLOWAPI_ORM_KEYS
        want = {
            colleges: cur.execute(f"select count(*) from {C.TABLES['clowncollege']}").fetchone()[0],
            troupes: cur.execute(f"select count(*) from {C.TABLES['troupe']}").fetchone()[0],
        }
        rep.add(f"GET {C.SLOWAPI_ORM_PATH}", *_json_check(status, body, want))
    seconds = 0.2
    t0 = time.monotonic()
    status, body = client.get(f"{variant.io_probe}?{C.SLEEP_PARAM}={seconds}")
    took = time.monotonic() - t0
    ok, detail = _json_check(status, body, {"slept": seconds})
    rep.add(f"GET {variant.io_probe}?{C.SLEEP_PARAM}={seconds}", ok and took >= seconds,
            f"{detail} in {took:.3f}s" + ("" if took >= seconds else f", before {seconds}s of sleep"))
    # The bound is part of the contract (every run stays bounded): 400 with benchcontract's message.
    bad = f"{C.MAX_SLEEP_SECONDS + 1:g}"
    status, body = client.get(f"{variant.io_probe}?{C.SLEEP_PARAM}={bad}")
    rep.add(f"GET {variant.io_probe}?{C.SLEEP_PARAM}={bad}",
            *_json_check(status, body, {"detail": _sleep_error(bad)}, status_wanted=400))
    return rep


def _json_check(status: int, body: bytes, want, *, status_wanted: int = 200, prepare=lambda doc: doc):
    """(ok, detail) of one JSON answer: the wanted status, JSON, and first_difference(want, answer)."""
    if status != status_wanted:
        return False, f"HTTP {status} (expected {status_wanted}): {body[:120]!r}"
    try:
        got = _loads(body)
    except ValueError as exc:
        return False, f"HTTP {status}, not JSON ({exc}): {body[:80]!r}"
    diff = first_difference(want, prepare(got))
    return diff is None, diff or f"HTTP {status} {_short(got)}"


def _loads(body: bytes):
    """JSON, strictly: a field given twice or NaN/Infinity (which json.loads accepts) is an error."""
    return json.loads(body, object_pairs_hook=_object, parse_constant=_not_json)


def _object(pairs) -> dict:
    doc = {}
    for k, v in pairs:
        if k in doc:
            raise ValueError(f"field {k!r} given twice")
        doc[k] = v
    return doc


def _not_json(name: str):
    raise ValueError(f"{name} is not JSON")


_CSRF_INPUT = re.compile(rb"<input\b[^>]*\bname=[\"']csrfmiddlewaretoken[\"'][^>]*>", re.IGNORECASE)
_VALUE = re.compile(rb"\bvalue=[\"']([^\"']+)[\"']", re.IGNORECASE)


def _form_csrf_token(html: bytes) -> bytes | None:
    """The value of the form's csrfmiddlewaretoken input ({% csrf_token %}), or None."""
    tag = _CSRF_INPUT.search(html)
    value = tag and _VALUE.search(tag.group(0))
    return value.group(1) if value else None


def _digest(data: bytes) -> str:
    return f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()[:12]}"


def _sleep_error(raw: str) -> str:
    """benchcontract's message for an out-of-range ?seconds= (what every app's probe answers with 400)."""
    try:
        C.parse_sleep_seconds(raw)
    except ValueError as exc:
        return str(exc)
    raise ValueError(f"{raw} is within the probe's bounds")


def require(report: ContractReport, variant_name: str) -> None:
    if report.failures:
        name, _, detail = report.failures[0]
        more = f" (+{len(report.failures) - 1} more)" if len(report.failures) > 1 else ""
        raise RunError(f"contract check failed on {variant_name}: {name}: {detail}{more}")
