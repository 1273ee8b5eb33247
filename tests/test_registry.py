"""The registry is the heart: every row must be complete, consistent and runnable by name."""
import re
import subprocess

import pytest

from asgibench import ROOT, envs, variants
from asgibench.apps import DJANGO_DIR, SERVICES_DIR

ROWS = variants.VARIANTS


def test_names_are_unique_and_make_friendly():
    names = [v.name for v in ROWS]
    assert len(names) == len(set(names))
    for n in names:
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]*", n), n


def test_the_original_rows_exist():
    assert "gunicorn-eventlet" in variants.BY_NAME


@pytest.mark.parametrize("v", ROWS, ids=lambda v: v.name)
def test_row_is_complete(v):
    assert v.env in envs.groups(), f"{v.name}: env group {v.env} has no envs/{v.env}.in"
    assert envs.locked_pythons(v.env), f"{v.name}: no lock files for {v.env}"
    module, _, attr = v.app.partition(":")
    assert attr, f"{v.name}: app must be module:attribute"
    rel = module.replace(".", "/")
    candidates = [base / f"{rel}.py" for base in (SERVICES_DIR, DJANGO_DIR)] + \
                 [base / rel / "__init__.py" for base in (SERVICES_DIR, DJANGO_DIR)]
    assert any(c.exists() for c in candidates), f"{v.name}: {module} not found under services/"
    assert v.notes
    if v.server == "gunicorn":
        assert v.worker, f"{v.name}: gunicorn rows name their worker class"
    if v.worker in ("eventlet", "gevent"):
        # measured: Django async views 500 under green workers; the row must say so, not hide it
        assert "async_api" not in v.serves and v.no_async
    if v.env == "eventlet":
        assert v.pg_driver == "psycopg2", "psycopg 3 blocks under eventlet"
    if "async_api" not in v.serves and "api" in v.serves and v.family in ("wsgi", "asgi"):
        assert v.no_async, f"{v.name}: say why /async_api/ is not served"


@pytest.mark.parametrize("v", ROWS, ids=lambda v: v.name)
def test_make_targets_resolve_to_the_cli(v):
    out = subprocess.run(["make", "-n", f"bench-{v.name}", "WORKERS=3", "USERS=7"], cwd=ROOT,
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert f"-m asgibench bench {v.name}" in out.stdout
    assert "--workers 3" in out.stdout and "--users 7" in out.stdout
    ui = subprocess.run(["make", "-n", f"ui-{v.name}"], cwd=ROOT, capture_output=True, text=True)
    assert f"-m asgibench ui {v.name}" in ui.stdout


def test_unknown_row_is_a_usage_error():
    with pytest.raises(variants.UsageError, match="unknown variant 'nope'"):
        variants.get("nope")


def test_workers_default_and_override():
    v = variants.get("gunicorn-eventlet")
    assert v.effective_workers() == 1  # the original's
    assert v.effective_workers(4) == 4


def test_every_group_is_locked_for_the_default_python():
    for g in envs.groups():
        assert envs.current_python() in envs.locked_pythons(g), g
