"""The contract comparison: what counts as the same JSON, and the SQL-built expectation."""
from asgibench import contract
from services import benchcontract as C


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
