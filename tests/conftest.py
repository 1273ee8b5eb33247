"""Shared fixtures, and the e2e rule. End-to-end tests run the real thing: uv-built envs, the embedded
PostgreSQL, real servers and real Locust, all on 127.0.0.1, each bounded in time.

The rule is enforced here, not left to each file: a test that uses a fixture of E2E_FIXTURES (directly or
through another fixture) is marked e2e, so `make test-fast` (-m "not e2e") never starts PostgreSQL or a
server. A test that starts one some other way (a subprocess running Locust, `asgibench bench`) must say
`@pytest.mark.e2e` itself; test-fast lists the unmarked tests slower than FAST_TEST_BUDGET_S at its end.
A fixture that starts PostgreSQL, a server or Locust goes into E2E_FIXTURES; helpers go in helpers.py.
"""
from __future__ import annotations

import pytest

from asgibench import database, envs
from helpers import PY

E2E_FIXTURES = {
    "db": "the embedded PostgreSQL, migrated and seeded",
    "api_server": "a live HTTP server for real Locust runs (test_locustfiles.py)",
}
FAST_TEST_BUDGET_S = 5.0  # setup + call + teardown of one test not marked e2e


@pytest.fixture(scope="session")
def db():
    """The embedded cluster (or DATABASE_URL), migrated and seeded once for the session. Started
    here -> stopped here; a cluster someone kept running is left running."""
    handle = database.open_database()
    database.prepare(handle, envs.ensure("django", PY, quiet=True), scale=1)
    yield handle
    handle.stop_if_started()


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"


@pytest.hookimpl(tryfirst=True)  # before `-m "not e2e"` deselects by mark
def pytest_collection_modifyitems(config, items):
    for item in items:
        if not item.get_closest_marker("e2e") and E2E_FIXTURES.keys() & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


_unmarked_s: dict[str, float] = {}


def pytest_runtest_logreport(report):
    if "e2e" not in report.keywords:
        _unmarked_s[report.nodeid] = _unmarked_s.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    slow = sorted(((s, n) for n, s in _unmarked_s.items() if s > FAST_TEST_BUDGET_S), reverse=True)
    if slow:
        terminalreporter.section(f"tests not marked e2e that took over {FAST_TEST_BUDGET_S:g} s")
        for s, nodeid in slow:
            terminalreporter.line(f"{s:6.1f}s {nodeid}  (starts PostgreSQL, a server or Locust? mark it e2e)")
