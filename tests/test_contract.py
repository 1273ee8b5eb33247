"""The contract comparison: what counts as the same JSON, and the SQL-built expectation; the check
asks for benchcontract's paths."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

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
    assert fd({"next": None}, {"next": ""}) == '$.next: expected null null, got string ""'
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
        count, _ = contract.expected_results(conn, "troupe", 1)
        last = -(-count // C.PAGE_SIZE)
        p1 = contract.expected_page(conn, "/api/", "troupe", 1, "http://h")
        p2 = contract.expected_page(conn, "/api/", "troupe", 2, "http://h")
        pl = contract.expected_page(conn, "/api/", "troupe", last, "http://h")
    assert count > C.PAGE_SIZE, "seed must give page 1 a non-null next"
    assert p1["previous"] is None and p1["next"] == "http://h/api/troupe/?page=2"
    assert p2["previous"] == "http://h/api/troupe/" and len(p1["results"]) == C.PAGE_SIZE
    assert pl["next"] is None
    ids = [r["id"] for r in p1["results"] + p2["results"]]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    for row in p1["results"]:
        assert list(row) == list(C.TROUPE_FIELDS)
        for perf in row["clowns"] + row["acrobats"]:
            assert list(perf) == list(C.PERFORMER_FIELDS)
        assert [p["id"] for p in row["clowns"]] == sorted(p["id"] for p in row["clowns"])


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
