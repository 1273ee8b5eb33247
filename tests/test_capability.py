"""The Django dimension without running anything: the lock names derive from envs.DJANGO_PYTHONS, what a
row needs is derived from its fields and its app's imports and checked against the locked packages
(policy.capability), and every impossible request is refused in one line."""
import re
from types import SimpleNamespace

import pytest

from asgibench import ROOT, envs, policy, server, variants
from asgibench.cli import main
from asgibench.errors import UsageError

LOCK_HEADER = re.compile(r"^#\s+uv pip compile (?:--\S+ \S+ )*(\S+\.in) --python-version (\S+) -o (\S+)$", re.M)


def refusal(row, python, django=None) -> str:
    with pytest.raises(UsageError) as e:
        policy.capability(variants.get(row), python, django)
    assert "\n" not in str(e.value)
    return str(e.value)


# ---- locks: derived from the table, each compiled from the .in the plan names ---------------------------

def test_lock_files_are_exactly_the_plan_and_each_was_compiled_from_its_in_file():
    plan = envs.lock_plan()
    outs = {out for _, _, out in plan}
    have = {f"envs/lock/{p.name}" for p in envs.LOCK_DIR.glob("*.txt") if not p.name.startswith("runner-")}
    assert have == outs, (have - outs, outs - have)
    for src, py, out in plan:
        header = LOCK_HEADER.search((ROOT / out).read_text())
        assert header and header.groups() == (src, py, out), (out, header and header.groups())
        assert (ROOT / src).exists(), src


def test_every_django_python_pair_of_the_table_has_a_lock_holding_that_django():
    for django, pythons in envs.DJANGO_PYTHONS.items():
        for py in pythons:
            for group in envs.DJANGO_GROUPS:
                lock = envs.lock_file(group, py, django)
                assert envs.locked_packages(lock)["django"].startswith(django + "."), (group, django, py, lock)
    # the default lock of each Python is its default Django: what it was before the Django knob
    assert [envs.default_django(p) for p in ("3.6", "3.7", "3.8", "3.9", "3.10", "3.11", "3.12", "3.13")] == \
        ["3.2", "3.2", "4.2", "4.2", "5.2", "5.2", "6.1", "6.1"]
    assert envs.lock_name("django", "4.2", "3.8") == "django-py3.8.txt"  # 4.2 is 3.8's default: no twin
    assert envs.lock_name("eventlet", "2.2", "3.6") == "eventlet-dj2.2-py3.6.txt"
    assert envs.lock_name("gino", "2.2", "3.8") == "gino-py3.8.txt"  # no Django in that group


def test_make_lock_compiles_the_plan():
    target = (ROOT / "Makefile").read_text().split("\nlock:", 1)[1].split("\n\n", 1)[0]
    assert "envs.lock_plan()" in target and "uv" in target.lower()


def test_the_in_files_say_which_versions_a_team_ran():
    for django in ("2.2", "3.2"):
        for group in envs.DJANGO_GROUPS:
            text = (envs.ENVS_DIR / f"{group}-dj{django}.in").read_text()
            assert f"django>={django},<" in text
            for pkg in ("djangorestframework", "whitenoise", "gunicorn"):
                assert re.search(rf"^#.*{pkg}", text, re.M), (group, django, pkg)


@pytest.mark.parametrize("text,want", [("2.2", "2.2"), ("3.2.25", "3.2"), ("6", "6.1"), ("3", "3.2"), (None, None)])
def test_parse_django(text, want):
    assert envs.parse_django(text) == want


@pytest.mark.parametrize("text", ["1.11", "4.0", "x", "7"])
def test_unknown_django_is_refused(text):
    with pytest.raises(UsageError, match="choose one of 2.2, 3.2, 4.2, 5.2, 6.1"):
        envs.parse_django(text)


# ---- capability rules ------------------------------------------------------------------------------------

def test_asgi_needs_django_3():
    for row in ("uvicorn", "gunicorn-uvicornworker", "asgi-with-static", "fastapi-with-django-mounted-asgi"):
        assert "needs django >= 3.0 (ASGI" in refusal(row, "3.6", "2.2")
        policy.capability(variants.get(row), "3.8", "3.2")  # runs on 3.2


def test_django_async_orm_row_needs_4_1():
    assert "needs django >= 4.1 (Django's async ORM" in refusal("fastapi-django-orm", "3.8", "3.2")
    policy.capability(variants.get("fastapi-django-orm"), "3.8", "4.2")
    # the slowapi app mounted by benchproject falls back to sync_to_async before 4.1: it runs on 3.2
    mounted = policy.capability(variants.get("fastapi-with-django-mounted-asgi"), "3.8", "3.2")
    assert "slowapi_orm" in mounted.variant.serves


def test_gunicorn_asgi_worker_needs_gunicorn_24_from_the_lock():
    assert "needs gunicorn >= 24" in refusal("gunicorn-asgi", "3.8")  # Python 3.8's lock has gunicorn 23
    policy.capability(variants.get("gunicorn-asgi"), "3.10")


def test_tortoise_needs_python_3_10_derived_from_the_in_files_marker():
    why = refusal("fastapi-tortoise", "3.9")
    assert "needs tortoise-orm" in why and 'python_version >= "3.10"' in why
    policy.capability(variants.get("fastapi-tortoise"), "3.10")


def test_the_hand_written_python_fields_agree_with_the_derivation():
    """Rows still carrying python=">=X" (compose reads it) are refused below X for a derived reason."""
    for v in variants.VARIANTS:
        if v.python.startswith(">="):
            for py in envs.locked_pythons(v.env):
                if envs._vkey(py) < envs._vkey(v.python[2:]):
                    assert "needs Python" not in refusal(v.name, py), v.name


def test_old_django_narrows_what_a_row_serves_and_its_driver():
    on22 = policy.capability(variants.get("gunicorn-sync"), "3.6", "2.2")
    assert "async_api" not in on22.variant.serves and on22.variant.pg_driver == "psycopg2"
    assert on22.django == "2.2.28" and "3.1" in on22.variant.no_async
    on32 = policy.capability(variants.get("gunicorn-sync"), "3.8", "3.2")
    assert "async_api" in on32.variant.serves and on32.variant.pg_driver == "psycopg2"  # psycopg 3 is 4.2+
    on42 = policy.capability(variants.get("gunicorn-sync"), "3.8", "4.2")
    assert on42.variant.pg_driver == "psycopg" and on42.lock.name == "django-py3.8.txt"


def test_async_flow_on_django_2_2_is_refused_with_the_reason():
    fit = policy.capability(variants.get("gunicorn-sync"), "3.6", "2.2")
    opts = SimpleNamespace(plan=SimpleNamespace(api_prefix="/async_api/", with_slowapi=False, only_slowapi=False,
                                                flow="api"))
    with pytest.raises(UsageError, match=r"gunicorn-sync does not serve /async_api/: Django 2\.2\.28 has no async"):
        policy.check_request(fit.variant, opts)


def test_rows_without_django_are_unaffected():
    for row in ("fastapi-sqlalchemy-async", "raw-asgi-asyncpg", "fastapi-gino"):
        v = variants.get(row)
        assert not variants.uses_django(v)
        fit = policy.capability(v, "3.8", "2.2")
        assert fit.lock.name == f"{v.env}-py3.8.txt" and fit.django is None
        assert fit.django_record("2.2") == {"requested": "2.2", "version": None}


def test_impossible_combinations_are_one_line():
    assert "Django 2.2 supports Python 3.6-3.9, not 3.11" in refusal("gunicorn-sync", "3.11", "2.2")
    assert "Django 6.1 supports Python 3.12-3.13, not 3.8" in refusal("uvicorn", "3.8", "6.1")
    assert "no locked pins for Python 3.6" in refusal("fastapi-sqlalchemy-async", "3.6")


def test_list_shows_what_runs_on_django_2_2_python_3_6_and_why_not(capsys):
    assert main(["list", "--django", "2.2", "--python", "3.6"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    runs = {ln.split()[0] for ln in lines[1:] if not ln.strip().startswith("NOT ")}
    assert runs == {"gunicorn-sync", "gunicorn-gthread", "gunicorn-eventlet", "gunicorn-gevent"}
    assert "NOT uvicorn: needs django >= 3.0" in out
    assert main(["list", "--django", "2.2", "--python", "3.12"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Django 2.2 supports Python 3.6-3.9, not 3.12" in err[0], err


def test_uvicorn_worker_class_without_the_uvicorn_worker_package():
    """Python 3.6/3.7 locks have no uvicorn-worker (it needs 3.8): gunicorn gets uvicorn's own worker."""
    v = variants.get("gunicorn-uvicornworker")
    fit = policy.capability(v, "3.6", "3.2")
    assert "uvicorn-worker" not in fit.packages
    cmd = server.build_command(v, bin_dir="", host="h", port=1, workers=1, uvicorn_worker=False)
    assert cmd[cmd.index("--worker-class") + 1] == "uvicorn.workers.UvicornWorker"
    cmd = server.build_command(v, bin_dir="", host="h", port=1, workers=1)
    assert cmd[cmd.index("--worker-class") + 1] == variants.UVICORN_WORKER


def test_python_3_6_syntax_check_covers_every_file_a_3_6_env_imports():
    """Lint compiles SYNTAX_PY36 with Python 3.6: it must include every project file the rows that run
    on Python 3.6 import (variants.app_files), so a 3.7+ construct there fails `make lint`."""
    listed = re.search(r"^SYNTAX_PY36 := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    roots = [ROOT / p for p in listed]
    needed = set()
    for django in ("2.2", "3.2"):
        for v in variants.VARIANTS:
            try:
                policy.capability(v, "3.6", django)
            except UsageError:
                continue
            needed |= variants.app_files(v.app.split(":")[0])
    assert needed
    for f in needed:
        assert any(f == r or r in f.parents for r in roots), f"{f} is not in SYNTAX_PY36"


# ---- the migration preset and its report section ---------------------------------------------------------

def test_migration_cells_follow_the_studys_path_each_step_on_its_oldest_python():
    cells = policy.migration_cells()
    assert cells[:2] == ["gunicorn-eventlet@2.2/3.6", "gunicorn-sync@2.2/3.6"]
    # 3.2 lands on 3.8 because fastapi (the mounted row) is installed from Python 3.8 on: derived
    assert "fastapi-with-django-mounted-asgi@3.2/3.8" in cells and "uvicorn+async@3.2/3.8" in cells
    assert {c.split("@")[1] for c in cells} == {"2.2/3.6", "3.2/3.8", "4.2/3.8", "5.2/3.10", "6.1/3.12"}
    assert policy.parse_cell("uvicorn+async@3.2/3.8") == ("uvicorn", True, "3.2", "3.8")
    assert policy.parse_cell("uvicorn") == ("uvicorn", False, None, None)
    with pytest.raises(UsageError, match="migration step Django 2.2"):
        policy.migration_cells("3.11")


def _meta(django, python, rps, p99, row="uvicorn", scenario="constant", status="completed"):
    return {"status": status, "python": python, "django": {"requested": django[:3], "version": django},
            "variant": {"name": row}, "plan": {"scenario": scenario, "flow": "original", "api_prefix": "/api/"},
            "summary": {"rps": rps, "exact_percentiles_ms": {"p99": p99}}}


def test_migration_section_ratios_and_noise(tmp_path):
    from asgibench.report import migration

    metas = [_meta("3.2.25", "3.8", r, 100) for r in (100, 102)] + \
            [_meta("4.2.30", "3.8", r, 99) for r in (150, 152)] + \
            [_meta("5.2.19", "3.10", r, 60) for r in (151, 153)] + \
            [_meta("5.2.19", "3.10", 1, 1, status="failed"), _meta("3.2.25", "3.8", 5, 5, row="solo")]
    rows = migration.steps_by_row(metas)
    assert list(rows) == [("uvicorn", "constant", "original", "sync")]  # "solo" has one Django only
    s32, s42, s52 = rows[("uvicorn", "constant", "original", "sync")]
    assert [s.django for s in (s32, s42, s52)] == ["3.2", "4.2", "5.2"] and len(s52.metas) == 2
    ratio, beyond = migration.change(s32, s42, "rps")
    assert round(ratio, 3) == round(151 / 101, 3) and beyond
    ratio, beyond = migration.change(s42, s52, "rps")
    assert not beyond  # 1.3% is within the noise
    assert migration.change(s42, s52, "p99_ms")[1]  # p99 99 -> 60 ms is not
    lines = "\n".join(migration.section(metas, tmp_path, charts=False))
    assert "| Django 4.2.30 / Py 3.8 | 2 |" in lines and "**better**" in lines and "(noise)" in lines
    assert migration.section([_meta("3.2.25", "3.8", 1, 1)], tmp_path) == []
    one = migration.steps_by_row([_meta("3.2.25", "3.8", 100, 1), _meta("4.2.30", "3.8", 200, 1)])
    a, b = next(iter(one.values()))
    assert migration.change(a, b, "rps") == (2.0, None)  # one trial each: no CV, not judged


@pytest.mark.e2e  # matplotlib: seconds (as test_report's chart test)
def test_migration_chart_per_row(tmp_path):
    from asgibench.report import migration

    metas = [_meta("3.2.25", "3.8", 100, 100), _meta("4.2.30", "3.8", 150, 90)]
    lines = "\n".join(migration.section(metas, tmp_path))
    png = list((tmp_path / "charts").glob("migration-uvicorn-*.png"))
    assert len(png) == 1 and png[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"(charts/{png[0].name})" in lines


def test_every_row_runs_somewhere_and_django_rows_on_several_djangos():
    where = {}
    for v in variants.VARIANTS:
        for django, pythons in envs.DJANGO_PYTHONS.items():
            for py in pythons:
                try:
                    fit = policy.capability(v, py, django)
                except UsageError:
                    continue
                where.setdefault(v.name, set()).add(fit.django[:3] if fit.django else None)
    assert set(where) == set(variants.BY_NAME), set(variants.BY_NAME) - set(where)
    assert where["gunicorn-eventlet"] == {"2.2", "3.2", "4.2", "5.2", "6.1"}
    assert where["uvicorn"] == {"3.2", "4.2", "5.2", "6.1"} and where["fastapi-django-orm"] == {"4.2", "5.2", "6.1"}


def test_a_pool_row_on_psycopg2_falls_back_to_persistent_and_refuses_pool():
    fit = policy.capability(variants.get("gunicorn-gthread"), "3.6", "2.2")  # row default: pool
    env = SimpleNamespace(has=lambda p: True, version=lambda p: (2, 2), packages={"django": "2.2.28"})
    strategy, why = policy.resolve_db_conn(fit.variant, SimpleNamespace(db_conn=None), env)
    assert strategy == "persistent" and "psycopg 3" in why
    with pytest.raises(UsageError, match="psycopg2 here, which has no Django pool"):
        policy.resolve_db_conn(fit.variant, SimpleNamespace(db_conn="pool"), env)
