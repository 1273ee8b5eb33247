"""meta.json of one run folder: what it is, what ran where, and how it ended.

  new_meta        written before anything starts: row, plan, machine, git, run tag, CPU placement
  stack_meta      the prepared stack: Python and env, the runner's packages, server, database, contract
  recorded()      whatever happens inside, meta.json ends up saying it (STATUSES) with what was
                  measured so far; finish() closes the record
  verdict         meta.json's "verdict": failed requests, a stall, accepted or not, the exit code
Every write goes through results.write_meta. A new field of the record goes into the function that
knows it at that moment (new_meta before the run, stack_meta once the stack is up, the pipeline's
measure step after the load); derived figures come from metrics, not from here.
"""
from __future__ import annotations

import time
import traceback
from contextlib import contextmanager
from pathlib import Path

from asgibench import envs, errors, procs, results
from asgibench.errors import RunError
from asgibench.policy import PLACEMENT_DEFAULT

# meta.json "status": how the run ended. Only "completed" runs are figures (report, matrix table); a
# completed run may still have failed requests: its "verdict" says so (clean: none, and no stall).
STATUSES = {
    "running": "under way (or the process was killed: nothing closed the record)",
    "completed": "ran its course; verdict.failed_requests says whether any request failed",
    "stalled": "ran its course, but no request completed for a while (summary.stall: when, how long)",
    "database-died": "the database went away mid-run; the run stopped at once (died: reason, after_s)",
    "server-died": "the server died mid-run; the run stopped at once",
    "interrupted": "Ctrl-C or SIGTERM",
    "failed": "the run could not finish (error: the line; error.log: an unexpected error's traceback)",
}


def verdict(summary: dict, accept_failures: bool) -> dict:
    """meta.json's "verdict" of a run that ran its course: exit code 0 when no request failed and it did
    not stall, or when --accept-failures accepts both (still recorded here); else 1."""
    failed, stalled = summary.get("failures", 0), bool(summary.get("stall"))
    clean = not failed and not stalled
    return {"failed_requests": failed, "stalled": stalled, "clean": clean, "accepted": accept_failures,
            "exit_code": 0 if clean or accept_failures else 1}


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def new_meta(variant, opts, plan) -> dict:
    """`opts` is an options.BenchOptions, `plan` the loadgen.LoadPlan this run folder measures."""
    return {
        "status": "running",
        "variant": variant.as_dict(),
        "plan": plan.as_dict(),
        "started_at": _now(),
        "machine_before": results.machine(),
        "git": results.git_state(),
        "run_tag": procs.RUN_TAG,
        "cpus": placement_record(opts.cpus),
        # the Django asked for (--django) and, once the stack is up, the one its env holds (stack_meta)
        "django": {"requested": envs.parse_django(getattr(opts, "django", None)), "version": None},
    }


def placement_record(cpus: dict) -> dict:
    return {"pinned": {k: sorted(v) for k, v in cpus.items()} or None,
            "policy": "--pin" if cpus else f"not pinned ({PLACEMENT_DEFAULT})"}


def stack_meta(st) -> dict:
    """What a pipeline.Stack ran on. A server we did not start (--target) has no env and no seed of
    ours: those keys are absent, and its record says external."""
    meta = {}
    if st.env is not None:
        meta["python"] = st.env.python_version
        meta["env"] = {"group": st.env.group, "path": str(st.env.path), "packages": st.env.packages}
    meta["runner"] = {"python": envs.current_python(), "packages": runner_packages()}
    meta["server"] = st.server.record()
    meta["database"] = st.db.describe() if st.seed is None else {**st.db.describe(), "seed": st.seed}
    meta["contract"] = st.contract.as_dict()
    if getattr(st, "django", None) is not None:
        meta["django"] = st.django
    return meta


def runner_packages() -> dict:
    from importlib import metadata

    return {d.metadata["Name"].lower(): d.version for d in metadata.distributions()}


@contextmanager
def recorded(run_dir: Path, meta: dict):
    """Whatever happens inside, meta.json ends up saying it (STATUSES), with what was measured so far.
    An unexpected exception becomes status "failed", its traceback run_dir/error.log, and a RunError
    naming the folder (one line, exit 1); a write that fails (disk full, not writable) is one line too."""
    try:
        yield
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        meta["interrupted"] = True
        finish(run_dir, meta)
        raise
    except errors.AsgibenchError as e:  # a RunError, or a refusal found once the run began (exit 2 kept)
        if meta["status"] == "running":
            meta["status"] = "failed"
        meta["error"] = str(e)
        finish(run_dir, meta)
        raise
    except Exception as e:
        meta["status"] = "failed"
        meta["error"] = errors.describe(e)
        log = Path(run_dir) / "error.log"
        try:
            log.write_text(traceback.format_exc())
            finish(run_dir, meta)
        except OSError:
            pass  # the disk that failed us: the line below says what happened
        hint = f"; traceback in {log}" if log.exists() else ""
        raise RunError(f"run {run_dir} failed: {meta['error']}{hint}") from e
    if meta["status"] == "running":  # measure may have set "stalled"
        meta["status"] = "completed"
    finish(run_dir, meta)


def finish(run_dir: Path, meta: dict) -> None:
    meta["ended_at"] = _now()
    meta["machine_after"] = {"loadavg": results.machine()["loadavg"]}
    if "summary" not in meta and (run_dir / "locust.json").exists():
        meta["summary"] = results.summarize(run_dir)
    results.write_meta(run_dir, meta)
