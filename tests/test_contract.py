"""The contract comparison: what counts as the same JSON, and the SQL-built expectation; the check
asks for benchcontract's paths."""
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

import benchcontract as C
from asgibench import contract


def test_normalise_drops_only_scheme_and_host():
    doc = {"count": 3, "next": "http://localhost:8000/api/troupe/?page=2", "previous": None, "results": []}
    assert contract.normalise(doc) == {"count": 3, "next": "/api/troupe/?page=2", "previous": None, "results": []}


def test_first_difference_finds_the_path():
    exp = {"count": 1, "results": [{"id": 1, "name": "a", "location": {"zipcode": "1"}}]}
    assert contract.first_difference(exp, exp) is None
    act = {"count": 1, "results": [{"id": 1, "name": "a", "location": {"zipcode": "2"}}]}
    assert contract.first_difference(exp, act) == '$.results[0].location.zipcode: expected "1", got "2"'
    assert "fields differ" in contract.first_difference(exp, {"count": 1})
    assert "expected 1 items, got 0" in contract.first_difference(exp, {"count": 1, "results": []})
    # a stub like the original study's must fail
    stub = {"count": 1, "next": "stubbed", "results": ["blah"]}
    assert contract.first_difference({"count": 1, "next": None, "results": exp["results"]}, stub)


def test_first_difference_is_strict_about_json_types():
    """Python's True == 1 and 1 == 1.0; the apps' JSON keeps them apart, and so must the check."""
    fd = contract.first_difference
    assert fd({"id": 1}, {"id": True}) == "$.id: expected integer 1, got boolean true"
    assert fd({"id": 0}, {"id": False}) == "$.id: expected integer 0, got boolean false"
    assert fd({"count": 60}, {"count": 60.0}) == "$.count: expected integer 60, got float 60.0"
    assert fd({"count": 60}, {"count": "60"}) == '$.count: expected integer 60, got string "60"'
    assert fd({"slept": 0.2}, {"slept": "0.2"}) == '$.slept: expected float 0.2, got string "0.2"'
    assert fd({"next": None}, {"next": ""}) == '$.next: expected null, got string ""'
    assert fd({"next": "/a/?page=2"}, {"next": None}) == '$.next: expected string "/a/?page=2", got null'
    assert fd([{"x": [1]}], [{"x": [True]}]) == "$[0].x[0]: expected integer 1, got boolean true"
    assert fd({"id": 1, "ok": True}, {"id": 1, "ok": True}) is None


def test_first_difference_checks_fields_and_their_order():
    fd = contract.first_difference
    exp = {"id": 1, "name": "a", "troupe": {"id": 2, "name": "t"}}
    assert fd(exp, {**exp, "extra": 1}) == "$: fields differ (missing [], unexpected ['extra'])"
    assert fd(exp, {"id": 1, "troupe": exp["troupe"]}) == "$: fields differ (missing ['name'], unexpected [])"
    assert fd(exp, {"name": "a", "id": 1, "troupe": exp["troupe"]}) == (
        "$: fields in another order: expected ['id', 'name', 'troupe'], got ['name', 'id', 'troupe']")
    assert fd(exp, {**exp, "troupe": {"name": "t", "id": 2}}) == (
        "$.troupe: fields in another order: expected ['id', 'name'], got ['name', 'id']")


def test_first_difference_checks_item_order():
    fd = contract.first_difference
    exp = [{"id": 1}, {"id": 2}, {"id": 3}]
    assert fd(exp, [{"id": 1}, {"id": 3}, {"id": 2}]) == (
        "$: the expected items in another order (first at $[1].id: expected 2, got 3)")
    # not a permutation: the plain difference, no hint
    assert fd(exp, [{"id": 1}, {"id": 4}, {"id": 3}]) == "$[1].id: expected 2, got 4"
    # a permutation only of the same JSON: True is not 1 there either
    assert fd([2, 1], [1, True]) == "$[0]: expected 2, got 1"


def test_expected_pages_follow_drf_pagination(db):
    with db.connect() as conn:
        count = conn.execute(f"select count(*) from {C.TABLES['troupe']}").fetchone()[0]
        last = -(-count // C.PAGE_SIZE)
        p1 = contract.expected_page(conn, "/api/", "troupe", 1, "http://h")
        p2 = contract.expected_page(conn, "/api/", "troupe", 2, "http://h")
        pl = contract.expected_page(conn, "/api/", "troupe", last, "http://h")
    assert count > 2 * C.PAGE_SIZE, "seed must give pages 1 and 2 a non-null next"
    assert p1["count"] == p2["count"] == count
    assert p1["previous"] is None and p1["next"] == "http://h/api/troupe/?page=2"
    assert p2["previous"] == "http://h/api/troupe/" and p2["next"] == "http://h/api/troupe/?page=3"
    assert pl["next"] is None and pl["previous"] == f"http://h/api/troupe/?page={last - 1}"
    assert len(p1["results"]) == len(p2["results"]) == C.PAGE_SIZE
    assert len(pl["results"]) == count - (last - 1) * C.PAGE_SIZE


def test_expected_pages_are_the_tables_row_by_row(db):
    """The expected pages against the tables read back another way (one lookup per value), so a wrong join,
    offset, order or column-to-field mapping in expected_results shows."""
    t = C.TABLES
    with db.connect() as conn:
        one = lambda sql, *args: conn.execute(sql, args).fetchone()  # noqa: E731
        for endpoint in C.LIST_ENDPOINTS:
            ids = [r[0] for r in conn.execute(f"select id from {t[endpoint]} order by id limit %s",
                                              (2 * C.PAGE_SIZE,))]
            pages = [contract.expected_results(conn, endpoint, p)[1] for p in (1, 2)]
            assert [row["id"] for row in pages[0] + pages[1]] == ids
        colleges, troupes = (contract.expected_results(conn, e, 1)[1] for e in C.LIST_ENDPOINTS)
        for c in colleges:
            name, location_id, troupe_id = one(f"select name, location_id, troupe_id from {t['clowncollege']} "
                                               "where id = %s", c["id"])
            assert (c["name"], c["location"]["id"], c["troupe"]["id"]) == (name, location_id, troupe_id)
            loc = c["location"]
            assert (loc["line_1"], loc["line_2"], loc["line_3"], loc["zipcode"]) == one(
                f"select line_1, line_2, line_3, zipcode from {t['location']} where id = %s", location_id)
            assert c["troupe"]["name"] == one(f"select name from {t['troupe']} where id = %s", troupe_id)[0]
        seen = {"clown": 0, "acrobat": 0}
        for row in troupes:
            assert row["name"] == one(f"select name from {t['troupe']} where id = %s", row["id"])[0]
            for kind in seen:
                members = sorted(r[0] for r in conn.execute(
                    f"select {kind}_id from {t[f'troupe_{kind}s']} where troupe_id = %s", (row["id"],)))
                assert [p["id"] for p in row[f"{kind}s"]] == members  # all of them, this kind, by id
                for p in row[f"{kind}s"]:
                    first, last = one(f"select first_name, last_name from {t['user']} where id = %s", p["id"])
                    stage = one(f"select stage_name from {t['performer']} where user_ptr_id = %s", p["id"])[0]
                    conc = one(f"select concentration from {t[kind]} where performermixin_ptr_id = %s", p["id"])[0]
                    assert (p["first_name"], p["last_name"], p["stage_name"], p["concentration"]) == (
                        first, last, stage, conc)
                    seen[kind] += 1
        assert all(seen.values()), f"page 1 has no performer of some kind: {seen}"


class _ContractStub(BaseHTTPRequestHandler):
    """Answers benchcontract's paths (and only those) as a correct row would."""

    static = b"body { color: red }\n"

    def do_GET(self):  # noqa: N802
        path, _, query = self.path.partition("?")
        headers = {"Content-Type": "application/json"}
        if path == C.ADMIN_LOGIN_PATH:
            code, body = 200, b'<form><input name="csrfmiddlewaretoken" value="t"></form>'
            headers = {"Content-Type": "text/html", "Set-Cookie": "csrftoken=abc; Path=/"}
        elif path == C.STATIC_URL + C.STATIC_PROBE:
            code, body = 200, self.static
        elif path == C.SLOWAPI_PATH:
            code, body = 200, json.dumps(C.SLOWAPI_MESSAGE).encode()
        elif path == C.IO_SLEEP_PATH:
            try:
                seconds = C.parse_sleep_seconds(query.partition("=")[2])
                time.sleep(seconds)
                code, body = 200, json.dumps({"slept": seconds}).encode()
            except ValueError as exc:
                code, body = 400, json.dumps({"detail": str(exc)}).encode()
        else:
            code, body = 404, b'{"detail": "Not found."}'
        self.send_response(code)
        for k, v in {**headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_verify_asks_for_benchcontracts_paths(tmp_path):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _ContractStub)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        static_root = tmp_path / "static"
        (static_root / C.STATIC_PROBE).parent.mkdir(parents=True)
        (static_root / C.STATIC_PROBE).write_bytes(_ContractStub.static)
        variant = SimpleNamespace(serves={"admin", "static", "slowapi"}, io_probe=C.IO_SLEEP_PATH)
        rep = contract.verify(variant, f"http://127.0.0.1:{srv.server_address[1]}", db_conn=None,
                              static_root=static_root)
    finally:
        srv.shutdown()
        srv.server_close()
    assert not rep.failures, rep.failures
    assert [name for name, _, _ in rep.checks] == [
        "GET /admin/login/", "GET /static/admin/css/base.css", "GET /slowapi/slowapi/",
        "GET /io/sleep/?seconds=0.2", "GET /io/sleep/?seconds=6",
    ]
    assert rep.checks[1][2] == "bytes match the collected file"


# --- verify() end to end: the true pages, one thing broken per case --------------------------------------------
# A local HTTP server answers exactly what a correct row answers, built from the pages the contract computes from
# the seeded database (expected_page); each case breaks one thing and verify() must report that check, and only it.
VARIANT = SimpleNamespace(serves=frozenset({"api", "admin", "static", "slowapi", "slowapi_orm"}),
                          io_probe=C.IO_SLEEP_PATH)
BAD_SLEEP = f"{C.MAX_SLEEP_SECONDS + 1:g}"
LOGIN = "GET " + C.ADMIN_LOGIN_PATH
LOGIN_HTML = (b'<form method="post" id="login-form"><input type="hidden" name="csrfmiddlewaretoken" '
              b'value="Zq1lUe5tV7c0vB3nKx9pR2sW8yA4dF6gH1jL3mN5oP7qS9uT"><input type="text" name="username"></form>')
CSRF_COOKIE = "csrftoken=aB3dE5fG7hJ9kL1mN3pQ5rS7tV9wX1yZ; Path=/; SameSite=Lax"


@dataclass
class _Answer:
    status: int
    body: object  # bytes as they are, anything else as JSON
    headers: dict = field(default_factory=dict)
    delay: float = 0.0


class _Site(BaseHTTPRequestHandler):
    """Answers exactly the requests in server.answers (path with query -> _Answer), 404 to anything else."""

    def do_GET(self):  # noqa: N802
        a = self.server.answers.get(self.path) or _Answer(404, {"detail": "Not found."})
        body = a.body if isinstance(a.body, bytes) else json.dumps(a.body).encode()
        time.sleep(a.delay)
        self.send_response(a.status)
        for k, v in {"Content-Type": "application/json", **a.headers, "Content-Length": str(len(body))}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def site_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    srv.answers = {}
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


def _sleep_error(raw):
    with pytest.raises(ValueError) as exc:
        C.parse_sleep_seconds(raw)
    return str(exc.value)


@pytest.fixture
def site(db, site_server, tmp_path):
    """A correct row: answers[path] are the true pages (JSON docs to break in place); site.verify() checks it."""
    base_url = f"http://127.0.0.1:{site_server.server_port}"
    conn = db.connect()
    answers = {f"{C.API_PREFIX}{e}/?{C.PAGE_PARAM}={p}": _Answer(200, contract.expected_page(conn, C.API_PREFIX, e, p,
                                                                                               base_url))
               for e in C.LIST_ENDPOINTS for p in contract.PAGES_CHECKED}
    colleges, troupes = C.SLOWAPI_ORM_KEYS
    answers.update({
        C.ADMIN_LOGIN_PATH: _Answer(200, LOGIN_HTML, {"Content-Type": "text/html; charset=utf-8",
                                                      "Set-Cookie": CSRF_COOKIE}),
        C.STATIC_URL + C.STATIC_PROBE: _Answer(200, _ContractStub.static, {"Content-Type": "text/css"}),
        C.SLOWAPI_PATH: _Answer(200, dict(C.SLOWAPI_MESSAGE)),
        C.SLOWAPI_ORM_PATH: _Answer(200, {colleges: contract.expected_results(conn, "clowncollege", 1)[0],
                                          troupes: contract.expected_results(conn, "troupe", 1)[0]}),
        f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}=0.2": _Answer(200, {"slept": 0.2}, delay=0.2),
        f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}={BAD_SLEEP}": _Answer(400, {"detail": _sleep_error(BAD_SLEEP)}),
    })
    static_root = tmp_path / "static"
    (static_root / C.STATIC_PROBE).parent.mkdir(parents=True)
    (static_root / C.STATIC_PROBE).write_bytes(_ContractStub.static)
    site_server.answers = answers
    try:
        yield SimpleNamespace(answers=answers, base_url=base_url, doc=lambda path: answers[path].body,
                              verify=lambda: contract.verify(VARIANT, base_url, conn, static_root=static_root))
    finally:
        site_server.answers = {}
        conn.close()


def _page(endpoint, page):
    return f"{C.API_PREFIX}{endpoint}/?{C.PAGE_PARAM}={page}"


def _only_failure(rep):
    failed = [(name, detail) for name, ok, detail in rep.checks if not ok]
    assert len(failed) == 1, failed
    return failed[0]


def test_verify_passes_the_true_pages(site):
    rep = site.verify()
    assert not rep.failures, rep.failures
    assert [name for name, _, _ in rep.checks] == [
        "GET /api/clowncollege/?page=1", "GET /api/clowncollege/?page=2", "GET /api/troupe/?page=1",
        "GET /api/troupe/?page=2", LOGIN, "GET /static/admin/css/base.css", "GET /slowapi/slowapi/",
        "GET /slowapi/slowapi/django-async-orm/", "GET /io/sleep/?seconds=0.2", f"GET /io/sleep/?seconds={BAD_SLEEP}",
    ]


def test_verify_ignores_only_the_scheme_and_host_of_the_links(site):
    doc = site.doc(_page("troupe", 2))
    doc["next"] = doc["next"].replace(site.base_url, "https://localhost:8443")
    doc["previous"] = doc["previous"].replace(site.base_url, "http://testserver")
    assert not site.verify().failures


def _swap_first_two(site):
    r = site.doc(_page("troupe", 1))["results"]
    a, b = r[0]["id"], r[1]["id"]
    r[0], r[1] = r[1], r[0]
    return "GET /api/troupe/?page=1", (
        f"$.results: the expected items in another order (first at $.results[0].id: expected {a}, got {b})")


def _performers_reversed(kind):
    def mutate(site):
        results = site.doc(_page("troupe", 1))["results"]
        i = next(i for i, row in enumerate(results) if len(row[kind]) >= 2)  # the seed gives troupes several
        perf = results[i][kind]
        first, last = perf[0]["id"], perf[-1]["id"]
        perf.reverse()
        return "GET /api/troupe/?page=1", (f"$.results[{i}].{kind}: the expected items in another order "
                                           f"(first at $.results[{i}].{kind}[0].id: expected {first}, got {last})")
    return mutate


def _wrong_next(site):
    site.doc(_page("clowncollege", 1))["next"] = f"{site.base_url}/api/clowncollege/?page=3"
    return "GET /api/clowncollege/?page=1", (
        '$.next: expected "/api/clowncollege/?page=2", got "/api/clowncollege/?page=3"')


def _wrong_previous(site):  # DRF drops ?page=1 from the link to page 1
    site.doc(_page("troupe", 2))["previous"] = f"{site.base_url}/api/troupe/?page=1"
    return "GET /api/troupe/?page=2", '$.previous: expected "/api/troupe/", got "/api/troupe/?page=1"'


def _missing_previous(site):
    del site.doc(_page("troupe", 2))["previous"]
    return "GET /api/troupe/?page=2", "$: fields differ (missing ['previous'], unexpected [])"


def _extra_field(site):
    site.doc(_page("clowncollege", 2))["results"][3]["location"]["country"] = "FR"
    return "GET /api/clowncollege/?page=2", "$.results[3].location: fields differ (missing [], unexpected ['country'])"


def _missing_field(site):
    del site.doc(_page("clowncollege", 1))["results"][0]["troupe"]
    return "GET /api/clowncollege/?page=1", "$.results[0]: fields differ (missing ['troupe'], unexpected [])"


def _string_for_number(site):
    doc = site.doc(_page("troupe", 1))
    doc["count"] = str(doc["count"])
    return "GET /api/troupe/?page=1", f'$.count: expected integer {doc["count"]}, got string "{doc["count"]}"'


def _find(doc, want, path="$"):
    """(container, key, JSON path) of the first value `want(key, value)` accepts."""
    items = doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    for k, v in items:
        p = f"{path}.{k}" if isinstance(doc, dict) else f"{path}[{k}]"
        if want(k, v):
            return doc, k, p
        found = _find(v, want, p)
        if found:
            return found
    return None


def _bool_for_int(site):
    """`true` where the contract wants 1: Python's True == 1, the contract's not."""
    for path in (_page(e, p) for e in C.LIST_ENDPOINTS for p in contract.PAGES_CHECKED):
        found = _find(site.doc(path), lambda k, v: k == "id" and type(v) is int and v == 1)
        if found:
            doc, k, where = found
            doc[k] = True
            return f"GET {path}", f"{where}: expected integer 1, got boolean true"
    raise AssertionError("no id 1 on the checked pages")


def _float_for_int(site):
    loc = site.doc(_page("clowncollege", 1))["results"][2]["location"]
    i = loc["id"]
    loc["id"] = float(i)
    return "GET /api/clowncollege/?page=1", f"$.results[2].location.id: expected integer {i}, got float {i}.0"


def _fields_reordered(site):
    row = site.doc(_page("clowncollege", 2))["results"][0]
    site.doc(_page("clowncollege", 2))["results"][0] = dict(reversed(row.items()))
    return "GET /api/clowncollege/?page=2", (
        "$.results[0]: fields in another order: expected ['id', 'name', 'location', 'troupe'], "
        "got ['troupe', 'location', 'name', 'id']")


def _envelope_reordered(site):  # DRF's PageNumberPagination order: count, next, previous, results
    path = _page("troupe", 1)
    doc = site.doc(path)
    site.answers[path].body = {"results": doc["results"], "count": doc["count"], "next": doc["next"],
                               "previous": doc["previous"]}
    return "GET /api/troupe/?page=1", ("$: fields in another order: expected ['count', 'next', 'previous', 'results'], "
                                       "got ['results', 'count', 'next', 'previous']")


def _nan_for_a_number(site):  # json.loads accepts NaN, JSON does not
    colleges, troupes = C.SLOWAPI_ORM_KEYS
    site.answers[C.SLOWAPI_ORM_PATH].body = f'{{"{colleges}": NaN, "{troupes}": 1}}'.encode()
    return "GET /slowapi/slowapi/django-async-orm/", "HTTP 200, not JSON (NaN is not JSON): "


def _field_given_twice(site):  # json.loads keeps the last one: the page would pass
    path = _page("clowncollege", 2)
    site.answers[path].body = b'{"count": -1, ' + json.dumps(site.doc(path))[1:].encode()
    return "GET /api/clowncollege/?page=2", "HTTP 200, not JSON (field 'count' given twice): b'{\"count\": -1, "


def _static_differs(site):
    site.answers[C.STATIC_URL + C.STATIC_PROBE].body = _ContractStub.static.replace(b"red", b"tan")
    return "GET /static/admin/css/base.css", "bytes differ from the collected file: served 20 bytes, sha256 "


def _login_without_cookie(site):
    del site.answers[C.ADMIN_LOGIN_PATH].headers["Set-Cookie"]
    return LOGIN, "HTTP 200, csrftoken cookie missing, csrfmiddlewaretoken in the form"


def _login_without_form_token(site):  # the word on the page is not the form's hidden input
    site.answers[C.ADMIN_LOGIN_PATH].body = b'<p>csrfmiddlewaretoken</p><form method="post"></form>'
    return LOGIN, "HTTP 200, csrftoken cookie set, csrfmiddlewaretoken missing from the form"


def _login_with_empty_form_token(site):
    site.answers[C.ADMIN_LOGIN_PATH].body = b'<form><input type="hidden" name="csrfmiddlewaretoken" value=""></form>'
    return LOGIN, "HTTP 200, csrftoken cookie set, csrfmiddlewaretoken missing from the form"


def _probe_accepts_out_of_range(site):
    site.answers[f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}={BAD_SLEEP}"] = _Answer(200, {"slept": 6.0})
    return f"GET /io/sleep/?seconds={BAD_SLEEP}", "HTTP 200 (expected 400): b'{\"slept\": 6.0}'"


def _probe_400_without_the_message(site):
    site.answers[f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}={BAD_SLEEP}"].body = {"detail": "Bad Request"}
    return f"GET /io/sleep/?seconds={BAD_SLEEP}", (
        f'$.detail: expected "{_sleep_error(BAD_SLEEP)}", got "Bad Request"')


def _probe_slept_as_string(site):
    site.answers[f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}=0.2"].body = {"slept": "0.2"}
    return "GET /io/sleep/?seconds=0.2", '$.slept: expected float 0.2, got string "0.2" in 0.2'


def _probe_extra_field(site):
    site.answers[f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}=0.2"].body = {"slept": 0.2, "seconds": 0.2}
    return "GET /io/sleep/?seconds=0.2", "$: fields differ (missing [], unexpected ['seconds']) in 0.2"


def _probe_does_not_sleep(site):
    site.answers[f"{C.IO_SLEEP_PATH}?{C.SLEEP_PARAM}=0.2"].delay = 0
    return "GET /io/sleep/?seconds=0.2", ", before 0.2s of sleep"


def _slowapi_message(site):
    site.answers[C.SLOWAPI_PATH].body = {"message": "Honk"}
    return "GET /slowapi/slowapi/", '$.message: expected "Honk Honk", got "Honk"'


def _slowapi_orm_count_as_float(site):
    counts = site.answers[C.SLOWAPI_ORM_PATH].body
    key = C.SLOWAPI_ORM_KEYS[1]
    n = counts[key]
    counts[key] = float(n)
    return "GET /slowapi/slowapi/django-async-orm/", f"$.{key}: expected integer {n}, got float {n}.0"


BREAKS = {
    "results-in-another-order": _swap_first_two,
    "clowns-in-another-order": _performers_reversed("clowns"),
    "acrobats-in-another-order": _performers_reversed("acrobats"),
    "wrong-next-alone": _wrong_next,
    "wrong-previous-alone": _wrong_previous,
    "missing-previous-alone": _missing_previous,
    "extra-field": _extra_field,
    "missing-field": _missing_field,
    "string-for-number": _string_for_number,
    "bool-for-int": _bool_for_int,
    "float-for-int": _float_for_int,
    "fields-in-another-order": _fields_reordered,
    "envelope-in-another-order": _envelope_reordered,
    "field-given-twice": _field_given_twice,
    "nan-for-a-number": _nan_for_a_number,
    "static-bytes-differ": _static_differs,
    "login-without-csrftoken-cookie": _login_without_cookie,
    "login-without-form-token": _login_without_form_token,
    "login-with-empty-form-token": _login_with_empty_form_token,
    "probe-200-out-of-range": _probe_accepts_out_of_range,
    "probe-400-without-the-message": _probe_400_without_the_message,
    "probe-slept-as-string": _probe_slept_as_string,
    "probe-extra-field": _probe_extra_field,
    "probe-does-not-sleep": _probe_does_not_sleep,
    "slowapi-message-wrong": _slowapi_message,
    "slowapi-orm-count-as-float": _slowapi_orm_count_as_float,
}


@pytest.mark.parametrize("broken", BREAKS.values(), ids=BREAKS.keys())
def test_verify_fails_the_one_broken_thing(site, broken):
    check, detail = broken(site)
    failed, got = _only_failure(site.verify())
    assert failed == check
    assert got.startswith(detail) or got.endswith(detail), got
