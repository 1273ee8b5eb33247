# asgibench: a thin shim over `python -m asgibench` (the CLI). Every target bootstraps what it needs:
# uv (into .tools/ when not on PATH), the runner's virtualenv, then per-row envs on first use.
#
#   make bench-<variant>   benchmark one registry row   (make help lists them)
#   make ui-<variant>      Locust web UI on that row    (http://127.0.0.1:8089)
#   make verify-<variant>  contract check only
#   make test              the test suite (what CI runs)
#   make test-fast         the tests not marked e2e: no PostgreSQL, server or Locust run
#   make lint              ruff, and services/ compiled by the oldest Pythons it must run on
#   make fidelity          Locust against wrk and k6 on the same servers (fidelity/README.md)
#
# Knobs (all optional): PYTHON=3.x DJANGO=2.2|3.2|4.2|5.2|6.1 WORKERS=N USERS=N DURATION=30s SCENARIO=io|readme|easy|medium|...
#   DB_CONN=per-request|persistent|pool ASYNC=1 SLOWAPI=1 WARMUP=10s PIN=server=0,db=0,locust=1 ARGS="..."
#   REQUEST_TIMEOUT=10s (a request waiting longer fails) ACCEPT_FAILURES=1 (failed requests / stalls: exit 0)

SHELL := /bin/bash
.DEFAULT_GOAL := help
BOOT_PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUNNER := .venvs/runner/bin/python
# The runner's Python X.Y picks its lock. An existing runner env is asked (its own interpreter: quick, where
# BOOT_PYTHON may be a pyenv shim costing ~0.3 s on every make call); a BOOT_PYTHON given on the command
# line or in the environment, a fresh clone or a broken env ask BOOT_PYTHON.
PY_XY := import sys; print("%d.%d" % sys.version_info[:2])
RUNNER_PY_VERSION := $(shell $(if $(filter file,$(origin BOOT_PYTHON)),$(RUNNER) -c '$(PY_XY)' 2>/dev/null ||) \
  $(BOOT_PYTHON) -c '$(PY_XY)' 2>/dev/null)
RUNNER_LOCK := envs/lock/runner-py$(RUNNER_PY_VERSION).txt
ASGIBENCH := $(RUNNER) -m asgibench
RUFF := .venvs/runner/bin/ruff

DJANGO_FLAG := $(if $(DJANGO),--django $(DJANGO))
BENCH_FLAGS := $(if $(PYTHON),--python $(PYTHON)) $(DJANGO_FLAG) $(if $(WORKERS),--workers $(WORKERS)) \
  $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
  $(if $(DB_CONN),--db-conn $(DB_CONN)) $(if $(ASYNC),--async) $(if $(SLOWAPI),--with-slowapi) \
  $(if $(WARMUP),--warmup $(WARMUP)) $(if $(PIN),--pin $(PIN)) $(if $(TRIALS),--trials $(TRIALS)) \
  $(if $(REQUEST_TIMEOUT),--request-timeout $(REQUEST_TIMEOUT)) $(if $(ACCEPT_FAILURES),--accept-failures) \
  $(if $(RECONNECT_EVERY),--reconnect-every $(RECONNECT_EVERY)) $(ARGS)

.PHONY: help setup test test-fast lint lock db-start db-stop db-status db-reset clean-envs calibrate matrix migration report compare compose

$(CURDIR)/.tools/bin/uv:
	$(BOOT_PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

# The runner env: the locked pins, then the project itself (editable, no deps: everything it needs is in the
# lock), so that `.venvs/runner/bin/asgibench` exists and benchcontract/locustfiles import from anywhere.
# Rebuilt when the lock or the packaging (pyproject.toml, setup.cfg) changes.
$(RUNNER): $(RUNNER_LOCK) pyproject.toml setup.cfg | $(UV)
	@test -f $(RUNNER_LOCK) || { echo "asgibench: no runner lock for Python $(RUNNER_PY_VERSION) (have: $$(ls envs/lock/runner-*)); set BOOT_PYTHON=python3.11" >&2; exit 2; }
	$(UV) venv --quiet --allow-existing --python $(BOOT_PYTHON) .venvs/runner
	$(UV) pip sync --quiet --python $(RUNNER) $(RUNNER_LOCK)
	$(UV) pip install --quiet --python $(RUNNER) --no-deps --editable .
	@touch $(RUNNER)

$(RUNNER_LOCK):
	@echo "asgibench: no locked runner pins for Python $(RUNNER_PY_VERSION) (have: $$(cd envs/lock && ls runner-*)); run with BOOT_PYTHON=python3.11 (3.10-3.13)" >&2; exit 2

setup: $(RUNNER) ## build the runner env (row envs are built on first use)

help: $(RUNNER) ## this help and the variant table
	@echo "make bench-<variant> | ui-<variant> | verify-<variant> | test | test-fast | lint | matrix | report | compare | db-start | db-stop | db-reset"
	@echo
	@$(ASGIBENCH) list $(if $(PYTHON),--python $(PYTHON)) $(DJANGO_FLAG)

bench-%: $(RUNNER)
	@$(ASGIBENCH) bench $* $(BENCH_FLAGS)

ui-%: $(RUNNER)
	@$(ASGIBENCH) ui $* $(BENCH_FLAGS)

verify-%: $(RUNNER)
	@$(ASGIBENCH) verify $* $(BENCH_FLAGS)

env-%: $(RUNNER)
	@$(ASGIBENCH) env $* $(if $(PYTHON),--python $(PYTHON)) $(DJANGO_FLAG)

calibrate: $(RUNNER) ## how fast Locust itself goes on this machine (results/calibration.json)
	@$(ASGIBENCH) calibrate

.PHONY: fidelity
fidelity: $(RUNNER) ## Locust vs wrk (API flow) and k6 (original flow; CAPACITY_RUN=dir: capacity) on the same servers
	@$(ASGIBENCH) fidelity $(if $(CAPACITY_RUN),--capacity-run $(CAPACITY_RUN)) $(if $(DURATION),--duration $(DURATION)) \
	  $(if $(USERS),--users $(USERS)) $(if $(PYTHON),--python $(PYTHON)) $(ARGS)

matrix: $(RUNNER) ## every row x {api, original, io} x 3 trials, interleaved (VARIANTS=a,b TRIALS=N MATRIX_ID=id to resume; SCENARIO=capacity: the SLO ladder)
	@$(ASGIBENCH) matrix $(if $(VARIANTS),--variants $(VARIANTS)) $(if $(TRIALS),--trials $(TRIALS)) \
	  $(if $(MATRIX_ID),--id $(MATRIX_ID)) $(if $(PYTHON),--python $(PYTHON)) $(DJANGO_FLAG) $(if $(SCENARIO),--scenario $(SCENARIO)) $(ARGS)

# --accept-failures: on Django 3.2 the ASGI rows' sync views share ONE thread per process (its ASGIHandler has no
# per-request ThreadSensitiveContext; 4.2's has), so the io scenario's requests queue past the request timeout.
# That is a finding of the migration (flagged FAIL in the table and the report), not a broken matrix.
migration: $(RUNNER) ## the study's path: Django 2.2 (Py 3.6) -> 3.2 -> 4.2 -> 5.2 -> 6.x x {api, original, io} x 3 trials (MATRIX_ID=id resumes)
	@$(ASGIBENCH) matrix --preset migration --accept-failures $(if $(TRIALS),--trials $(TRIALS)) $(if $(MATRIX_ID),--id $(MATRIX_ID)) \
	  $(if $(PYTHON),--python $(PYTHON)) $(ARGS)

report: $(RUNNER) ## results/report.md, summary.csv and charts from the runs (RUN_IDS=... to choose)
	@$(ASGIBENCH) report $(RUN_IDS)

compare: $(RUNNER) ## NEW vs BASE (matrix ids / run folders): ratios, 95% CIs, verdicts (FAIL_IF_WORSE=PCT: exit 1)
	@test -n "$(BASE)" -a -n "$(NEW)" || { echo "usage: make compare BASE=<matrix id|run folder,...> NEW=<...> [FAIL_IF_WORSE=5]" >&2; exit 2; }
	@$(ASGIBENCH) compare $(BASE) $(NEW) $(if $(FAIL_IF_WORSE),--fail-if-worse $(FAIL_IF_WORSE)) $(ARGS)

compose: $(RUNNER) ## regenerate compose/compose.yaml from the registry (a test fails when they drift)
	@$(ASGIBENCH) compose

db-start: $(RUNNER)
	@$(ASGIBENCH) db start

db-stop: $(RUNNER)
	@$(ASGIBENCH) db stop $(ARGS)

db-status: $(RUNNER)
	@$(ASGIBENCH) db status

db-reset: $(RUNNER) ## stop the embedded PostgreSQL and delete its data (ARGS=--force: even while a run uses it)
	@$(ASGIBENCH) db reset $(ARGS)

test: $(RUNNER) ## the whole suite (CI runs this)
	$(RUNNER) -m pytest $(PYTEST_ARGS)

test-fast: $(RUNNER) ## the tests not marked e2e (tests/conftest.py marks users of the db/server fixtures e2e)
	$(RUNNER) -m pytest -m "not e2e" $(PYTEST_ARGS)

# Old-Python syntax of services/, compiled by each interpreter itself (.ci/syntax_check.py; skipped, saying
# why, where that Python is not installed): benchcontract and the Django app on 3.6, all of services/ on 3.8
# (the oldest Python of the env groups). ruff's own targets per tree are in pyproject.toml.
SYNTAX_PY36 := services/benchcontract.py services/django_app
SYNTAX_PY38 := services

lint: $(RUNNER) ## ruff check + services/ syntax on Python 3.6 and 3.8 (every check runs; fails if any failed)
	@rc=0; \
	$(RUFF) check --output-format concise . || rc=1; \
	UV=$(UV) $(RUNNER) .ci/syntax_check.py 3.6 $(SYNTAX_PY36) || rc=1; \
	UV=$(UV) $(RUNNER) .ci/syntax_check.py 3.8 $(SYNTAX_PY38) || rc=1; \
	exit $$rc

# Re-resolve every lock file (needs PyPI). The list is asgibench.envs.lock_plan(), derived from its Django x
# Python table: envs/<group>.in -> envs/lock/<group>-py<P>.txt (each Python's default Django) and
# envs/<group>-dj<D>.in -> envs/lock/<group>-dj<D>-py<P>.txt. LOCK_ONLY=<pattern> compiles the matching outputs
# only (e.g. LOCK_ONLY=-dj2.2-); LOCK_EXCLUDE_NEWER resolves as PyPI stood then, so the same command gives the
# same pins (the -dj locks were compiled so; LOCK_EXCLUDE_NEWER= resolves against today's PyPI).
LOCK_EXCLUDE_NEWER ?= 2026-12-02T00:40:00Z
LOCK_FLAGS := $(if $(LOCK_EXCLUDE_NEWER),--exclude-newer $(LOCK_EXCLUDE_NEWER))
lock: $(RUNNER) | $(UV)
	@$(RUNNER) -c 'from asgibench import envs; [print(*x) for x in envs.lock_plan()]' | grep -e '$(LOCK_ONLY)' | \
	while read -r in py out; do \
	  $(UV) pip compile --quiet $(LOCK_FLAGS) $$in --python-version $$py -o $$out || exit 1; done
	@$(if $(LOCK_ONLY),true,for v in 3.10 3.11 3.12 3.13; do \
	  $(UV) pip compile --quiet $(LOCK_FLAGS) envs/runner.in --python-version $$v -o envs/lock/runner-py$$v.txt || exit 1; done)

clean-envs:
	rm -rf .venvs .tools
