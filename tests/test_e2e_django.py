"""The Django knob end to end: the study's start (gunicorn + eventlet on Django 2.2, Python 3.6) and its
target's async views (uvicorn --async on Django 3.2, Python 3.8), each from its own lock, contract-
verified (bench verifies before any load) and a short burst with no failed request."""
import glob
import os

import pytest

from asgibench import envs
from asgibench.errors import UsageError
from helpers import cli, meta_of, only_run_dir, skip_unless_ci

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("row,django,python,extra,version,driver,checks", [
    ("gunicorn-eventlet", "2.2", "3.6", [], "2.2.", "psycopg2", "GET /api/troupe/"),
    ("uvicorn", "3.2", "3.8", ["--async"], "3.2.", "psycopg2", "GET /async_api/troupe/"),
])
def test_row_on_an_old_django(row, django, python, extra, version, driver, checks, db, results_dir):
    try:
        envs.find_interpreter(python)
    except UsageError as e:
        root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
        assert not glob.glob(f"{root}/versions/{python}.*/bin/python{python}"), e
        skip_unless_ci(f"Python {python} is not installed here: {e}")
    res = cli("bench", row, "--django", django, "--python", python, *extra, "--users", "3", "--duration", "3s",
              "--warmup", "0", results=results_dir, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, row))
    assert meta["python"] == python
    assert meta["django"]["requested"] == django and meta["django"]["version"].startswith(version), meta["django"]
    assert meta["env"]["packages"]["django"] == meta["django"]["version"]
    assert meta["server"]["pg_driver"] == driver  # Django < 4.2 has no psycopg 3 backend
    assert meta["contract"]["passed"]
    assert any(c["check"].startswith(checks) and c["ok"] for c in meta["contract"]["checks"]), meta["contract"]
    assert meta["summary"]["requests"] > 0 and meta["summary"]["failures"] == 0
