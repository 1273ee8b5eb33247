"""meta.json of one run folder: what it is, what ran where, and how it ended.

  new_meta        written before anything starts: row, plan, machine, git, run tag, CPU placement
  stack_meta      the prepared stack: Python and env, the runner's packages, server, database, contract
  recorded()      whatever happens inside, meta.json ends up saying it (completed, interrupted,
                  server-died, failed) with what was measured so far; finish() closes the record
Every write goes through results.write_meta. A new field of the record goes into the function that
knows it at that moment (new_meta before the run, stack_meta once the stack is up, the pipeline's
measure step after the load); derived figures come from metrics, not from here.
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from asgibench import envs, procs, results
from asgibench.errors import RunError
from asgibench.policy import PLACEMENT_DEFAULT


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
    return meta


def runner_packages() -> dict:
    from importlib import metadata

    return {d.metadata["Name"].lower(): d.version for d in metadata.distributions()}


@contextmanager
def recorded(run_dir: Path, meta: dict):
    """Whatever happens inside, meta.json ends up saying it: completed, interrupted (Ctrl-C),
    server-died or failed, with what was measured so far."""
    try:
        yield
    except KeyboardInterrupt:
        meta["status"] = "interrupted"
        meta["interrupted"] = True
        finish(run_dir, meta)
        raise
    except RunError as e:
        if meta["status"] == "running":
            meta["status"] = "failed"
        meta["error"] = str(e)
        finish(run_dir, meta)
        raise
    meta["status"] = "completed"
    finish(run_dir, meta)


def finish(run_dir: Path, meta: dict) -> None:
    meta["ended_at"] = _now()
    meta["machine_after"] = {"loadavg": results.machine()["loadavg"]}
    if "summary" not in meta and (run_dir / "locust.json").exists():
        meta["summary"] = results.summarize(run_dir)
    results.write_meta(run_dir, meta)
