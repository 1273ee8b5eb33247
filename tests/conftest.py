"""Shared fixtures. End-to-end tests run the real thing: uv-built envs, the embedded PostgreSQL,
real servers and real Locust, all on 127.0.0.1, each bounded in time."""
from __future__ import annotations

import pytest

from asgibench import database, envs
from helpers import PY


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
