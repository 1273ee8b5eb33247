"""Shared fixtures. End-to-end tests run the real thing: uv-built envs, the embedded PostgreSQL,
real servers and real Locust, all on 127.0.0.1, each bounded in time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from asgibench import ROOT, database, envs

PY = envs.current_python()


@pytest.fixture(scope="session")
def db():
    """The embedded cluster (or DATABASE_URL), migrated and seeded once for the session. Started
    here -> stopped here; a cluster someone kept running is left running."""
    handle = database.open_database()
    database.prepare(handle, envs.ensure("django", PY, quiet=True), scale=1)
    os.environ.setdefault("DATABASE_URL_FOR_TESTS", handle.url)
    yield handle
    handle.stop_if_started()


@pytest.fixture
def results_dir(tmp_path):
    return tmp_path / "results"


def cli(*args, results: Path | None = None, env: dict | None = None, timeout: float = 300, **kw):
    """Run `python -m asgibench ...` as a user would; returns CompletedProcess (text)."""
    e = dict(os.environ)
    if results is not None:
        e["ASGIBENCH_RESULTS"] = str(results)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "asgibench", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=timeout, **kw)


def only_run_dir(results: Path, variant: str) -> Path:
    dirs = [p for p in (results / variant).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())
