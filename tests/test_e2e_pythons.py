"""The PYTHON knob: the same rows on the oldest and newest interpreters the locks cover, each env
built from its own locked pins (Django 4.2 LTS on 3.8, Django 6.x on 3.13)."""
import glob
import os

import pytest

from asgibench import envs
from asgibench.errors import UsageError
from helpers import cli, meta_of, only_run_dir, skip_unless_ci

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("python", ["3.8", "3.13"])
@pytest.mark.parametrize("row", ["gunicorn-eventlet", "uvicorn"])
def test_row_on_python(row, python, db, results_dir):
    try:
        envs.find_interpreter(python)
    except UsageError as e:
        root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
        pyenv = glob.glob(f"{root}/versions/{python}.*/bin/python{python}")
        assert not pyenv, f"pyenv has {pyenv} but find_interpreter({python!r}) said: {e}"
        skip_unless_ci(f"Python {python} is not installed here: {e}")
    res = cli("bench", row, "--python", python, "--users", "3", "--duration", "3s", "--warmup", "0",
              results=results_dir, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    meta = meta_of(only_run_dir(results_dir, row))
    assert meta["python"] == python
    assert meta["summary"]["requests"] > 0 and meta["summary"]["failures"] == 0
    django = meta["env"]["packages"]["django"]
    assert django.startswith("4.2.") if python == "3.8" else int(django.split(".")[0]) >= 5
    if row == "uvicorn" and python == "3.8":
        # Django 4.2 has no connection pool: the row's default falls back, and says so
        assert meta["server"]["db_conn"] == "persistent" and "needs Django >= 5.1" in meta["server"]["db_conn_source"]


def test_row_refused_on_a_python_it_cannot_run_on(tmp_path):
    res = cli("bench", "fastapi-tortoise", "--python", "3.8", results=tmp_path)
    # derived from the lock (tortoise-orm is installed where python_version >= "3.10"), not hand-listed
    assert res.returncode == 2 and "fastapi-tortoise needs tortoise-orm" in res.stderr
    assert 'python_version >= "3.10"' in res.stderr and len(res.stderr.strip().splitlines()) == 1
