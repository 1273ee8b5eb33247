"""The report's input: run folders -> Trial (one benchmark run's meta.json, as the report reads it),
and RUN_IDS (matrix ids, folders, run names) -> run folders.

A new per-trial figure read from meta.json becomes a Figure in asgibench/figures.py (Trial.figure
reads it) or, when it is not a headline figure, a property of Trial; a new way of naming runs on
the command line goes in resolve_run_ids (and the RUN_IDS paragraph of the package docstring).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from asgibench import figures, stats
from asgibench.errors import UsageError

AD_HOC = "ad-hoc"  # the "matrix id" of runs made with `bench` (no matrix, no series)


@dataclass
class Trial:
    path: Path
    meta: dict

    @property
    def status(self) -> str:
        return self.meta.get("status") or "unknown"

    @property
    def completed(self) -> bool:
        return self.status == "completed" and bool(self.meta.get("summary"))

    @property
    def summary(self) -> dict:
        return self.meta.get("summary") or {}

    @property
    def plan(self) -> dict:
        return self.meta.get("plan") or {}

    @property
    def variant(self) -> dict:
        return self.meta.get("variant") or {}

    @property
    def matrix_id(self) -> str:
        m = self.meta.get("matrix") or {}
        return str(m.get("id")) if m.get("id") else AD_HOC

    @property
    def scenario(self) -> str:
        """The scenario a report table is about: the matrix's scenario name when it says more than the
        flow (e.g. "keepalive": the API flow on a few long-lived connections; "capacity"), else the
        load plan's (constant, io, readme, ...; the matrix's "api" / "original" / "cpu" are constant
        users on a flow, and the flow is part of the section already)."""
        plan_scenario = self.plan.get("scenario") or "?"
        named = (self.meta.get("matrix") or {}).get("scenario")
        if named and named not in (self.plan.get("flow"), "cpu", plan_scenario):
            return str(named)
        return plan_scenario

    @property
    def trial_no(self) -> int | None:
        return (self.meta.get("matrix") or {}).get("trial")

    @property
    def rps(self) -> float | None:
        return self.summary.get("rps")

    @property
    def efficiency(self) -> float | None:
        return (self.summary.get("concurrency") or {}).get("efficiency")

    @property
    def generator(self) -> dict:
        return self.meta.get("generator") or {}

    @property
    def capacity(self) -> dict:
        """meta["capacity"] (the capacity scenario's ladder result), {} elsewhere."""
        return self.meta.get("capacity") or {}

    @property
    def django_version(self) -> str | None:
        """The Django the server ran (meta["django"]["version"]); None: the row has no Django."""
        d = self.meta.get("django")
        return d.get("version") if isinstance(d, dict) else None

    def figure(self, key: str) -> float | None:
        """One headline figure of figures.FIGURES in this trial (None where it was not measured)."""
        return figures.BY_KEY[key].of(self.meta)

    @property
    def flags(self) -> list[tuple[str, str]]:
        """[(flag, reason)] by figures.flags, the one rule of what marks a trial."""
        return figures.flags(self.meta)

    def bound(self, ceiling_rps: float | None) -> tuple[bool, str, list]:
        """(generator-bound?, "meta" | "derived", reasons): the runner's own flag when meta.json has
        one, else the rule of stats.generator_bound_reasons applied here (runs made before the flag)."""
        gen = self.generator
        if "bound" in gen:
            return bool(gen["bound"]), "meta", list(gen.get("bound_reasons") or [])
        reasons = stats.generator_bound_reasons(gen.get("cpu_percent_of_one_core"), gen.get("processes"),
                                                bool(gen.get("cpu_warning")), self.rps, ceiling_rps)
        return bool(reasons), "derived", reasons


def load_trial(run_dir: Path) -> Trial | None:
    """A benchmark run folder (meta.json with a load plan), else None (verify/ui folders, junk)."""
    try:
        meta = json.loads((Path(run_dir) / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or not meta.get("plan") or not meta.get("variant"):
        return None
    return Trial(Path(run_dir), meta)


def find_runs(root: Path) -> list[Path]:
    """Every benchmark run folder below root (a folder with a meta.json that has a load plan)."""
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for meta in sorted(root.rglob("meta.json")):
        inner = meta.parent.parts[len(root.parts):]
        # warm-ups are not runs; `asgibench calibrate` measures Locust, not a row (results/calibration/);
        # `asgibench fidelity`'s Locust trials are checks of the generator (results/fidelity/)
        if "warmup" in inner or inner[:1] in (("calibration",), ("fidelity",)) or "-calibrate-" in meta.parent.name:
            continue
        if load_trial(meta.parent) is not None:
            out.append(meta.parent)
    return out


def resolve_run_ids(ids, results_root: Path) -> list[Path]:
    """RUN_IDS (see the package docstring) -> run folders, in order, without duplicates."""
    results_root = Path(results_root)
    if not ids:
        return find_runs(results_root)
    every = None
    out: list[Path] = []
    for rid in ids:
        p = Path(rid)
        found: list[Path] = []
        for cand in (p, results_root / rid):
            if (cand / "meta.json").exists() and load_trial(cand):
                found = [cand]
                break
            if cand.is_dir() and (found := find_runs(cand)):
                break
        if not found:
            if every is None:
                every = [load_trial(d) for d in find_runs(results_root)]
            found = [t.path for t in every if t.matrix_id == rid]
            found = found or [t.path for t in every if t.path.name == rid]
        if not found:
            raise UsageError(f"no run matches {rid!r}: give a matrix id, a run folder, "
                             f"or a run name under {results_root}")
        out += [f for f in found if f.resolve() not in {o.resolve() for o in out}]
    return out
