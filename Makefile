# asgibench: a thin shim over `python -m asgibench` (the CLI). Every target bootstraps what it needs:
# uv (into .tools/ when not on PATH), the runner's virtualenv, then per-row envs on first use.
#
#   make bench-<variant>   benchmark one registry row   (make help lists them)
#   make ui-<variant>      Locust web UI on that row    (http://127.0.0.1:8089)
#   make verify-<variant>  contract check only
#   make test              the test suite (what CI runs)
#
# Knobs (all optional): PYTHON=3.x WORKERS=N USERS=N DURATION=30s SCENARIO=io|readme|easy|medium|...
#   DB_CONN=per-request|persistent|pool ASYNC=1 SLOWAPI=1 WARMUP=10s PIN=server=0,db=0,locust=1 ARGS="..."

SHELL := /bin/bash
.DEFAULT_GOAL := help
BOOT_PYTHON ?= python3
UV_VERSION := 0.13.9
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUNNER_PY_VERSION := $(shell $(BOOT_PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)
RUNNER_LOCK := envs/lock/runner-py$(RUNNER_PY_VERSION).txt
RUNNER := .venvs/runner/bin/python
ASGIBENCH := $(RUNNER) -m asgibench

BENCH_FLAGS := $(if $(PYTHON),--python $(PYTHON)) $(if $(WORKERS),--workers $(WORKERS)) \
  $(if $(USERS),--users $(USERS)) $(if $(DURATION),--duration $(DURATION)) $(if $(SCENARIO),--scenario $(SCENARIO)) \
  $(if $(DB_CONN),--db-conn $(DB_CONN)) $(if $(ASYNC),--async) $(if $(SLOWAPI),--with-slowapi) \
  $(if $(WARMUP),--warmup $(WARMUP)) $(if $(PIN),--pin $(PIN)) $(if $(TRIALS),--trials $(TRIALS)) $(ARGS)

.PHONY: help setup test lock db-start db-stop db-status clean-envs calibrate matrix report compose

$(CURDIR)/.tools/bin/uv:
	$(BOOT_PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(RUNNER): $(RUNNER_LOCK) | $(UV)
	@test -f $(RUNNER_LOCK) || { echo "asgibench: no runner lock for Python $(RUNNER_PY_VERSION) (have: $$(ls envs/lock/runner-*)); set BOOT_PYTHON=python3.11" >&2; exit 2; }
	$(UV) venv --quiet --allow-existing --python $(BOOT_PYTHON) .venvs/runner
	$(UV) pip sync --quiet --python $(RUNNER) $(RUNNER_LOCK)
	@touch $(RUNNER)

$(RUNNER_LOCK):
	@echo "asgibench: no locked runner pins for Python $(RUNNER_PY_VERSION) (have: $$(cd envs/lock && ls runner-*)); run with BOOT_PYTHON=python3.11 (3.10-3.13)" >&2; exit 2

setup: $(RUNNER) ## build the runner env (row envs are built on first use)

help: $(RUNNER) ## this help and the variant table
	@echo "make bench-<variant> | ui-<variant> | verify-<variant> | test | matrix | report | db-start | db-stop"
	@echo
	@$(ASGIBENCH) list

bench-%: $(RUNNER)
	@$(ASGIBENCH) bench $* $(BENCH_FLAGS)

ui-%: $(RUNNER)
	@$(ASGIBENCH) ui $* $(BENCH_FLAGS)

verify-%: $(RUNNER)
	@$(ASGIBENCH) verify $* $(BENCH_FLAGS)

env-%: $(RUNNER)
	@$(ASGIBENCH) env $* $(if $(PYTHON),--python $(PYTHON))

calibrate: $(RUNNER) ## how fast Locust itself goes on this machine (results/calibration.json)
	@$(ASGIBENCH) calibrate

matrix: $(RUNNER) ## every row x {cpu, io} x 3 trials, interleaved (VARIANTS=a,b TRIALS=N MATRIX_ID=id to resume)
	@$(ASGIBENCH) matrix $(if $(VARIANTS),--variants $(VARIANTS)) $(if $(TRIALS),--trials $(TRIALS)) \
	  $(if $(MATRIX_ID),--id $(MATRIX_ID)) $(if $(PYTHON),--python $(PYTHON)) $(ARGS)

report: $(RUNNER) ## results/report.md, summary.csv and charts from the runs (RUN_IDS=... to choose)
	@$(ASGIBENCH) report $(RUN_IDS)

compose: $(RUNNER) ## regenerate compose/compose.yaml from the registry (a test fails when they drift)
	@$(ASGIBENCH) compose

db-start: $(RUNNER)
	@$(ASGIBENCH) db start

db-stop: $(RUNNER)
	@$(ASGIBENCH) db stop

db-status: $(RUNNER)
	@$(ASGIBENCH) db status

test: $(RUNNER) ## the whole suite (CI runs this)
	$(RUNNER) -m pytest $(PYTEST_ARGS)

# Re-resolve every lock file (needs PyPI): envs/<group>.in -> envs/lock/<group>-py<X.Y>.txt
LOCK_PYTHONS := 3.8 3.9 3.10 3.11 3.12 3.13
lock: | $(UV)
	@for g in django eventlet gino; do for v in $(LOCK_PYTHONS); do \
	  $(UV) pip compile --quiet envs/$$g.in --python-version $$v -o envs/lock/$$g-py$$v.txt || exit 1; done; done
	@for v in 3.10 3.11 3.12 3.13; do \
	  $(UV) pip compile --quiet envs/runner.in --python-version $$v -o envs/lock/runner-py$$v.txt || exit 1; done

clean-envs:
	rm -rf .venvs .tools
