"""The figures a trial is judged by, as data: one Figure per headline number (its key, label, unit,
which way is better and where meta.json holds it), and the per-trial flags a reader must see beside
them (generator-bound, generator-competing, imbalanced, stalled...).

The report's columns (median and CV over trials), `compare`'s ratios and verdicts and the HTML
report's charts all read these tables, so a figure means the same everywhere. A new headline figure
is one Figure in FIGURES (and the step that records it in meta.json); a new trial flag is one entry
in FLAGS. A figure meta.json does not hold (an older run, another scenario) is None, never 0.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    better: str  # "higher" | "lower": which way is an improvement
    path: tuple  # keys into meta.json, outermost first
    doc: str

    def of(self, meta: dict) -> float | None:
        """This figure in one trial's meta.json, or None where it was not measured."""
        v = meta
        for k in self.path:
            if not isinstance(v, dict):
                return None
            v = v.get(k)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            return None
        return float(v)


def _f(key, label, unit, better, path, doc) -> Figure:
    assert better in ("higher", "lower"), key
    return Figure(key, label, unit, better, tuple(path.split(".")), doc)


FIGURES: tuple[Figure, ...] = (
    _f("rps", "req/s", "req/s", "higher", "summary.rps",
       "HTTP exchanges per second over the planned measured window"),
    _f("iterations_per_s", "iterations/s", "it/s", "higher", "summary.flow.iterations_per_s",
       "flow iterations completed per second (flows of several requests)"),
    _f("p50_ms", "p50", "ms", "lower", "summary.exact_percentiles_ms.p50", "median response time"),
    _f("p99_ms", "p99", "ms", "lower", "summary.exact_percentiles_ms.p99", "99th percentile response time"),
    _f("server_us_per_request", "server CPU / request", "us", "lower", "summary.cost.server_us_per_request",
       "CPU of the whole server process tree per request, microseconds"),
    _f("server_ref_us_per_request", "server CPU / request at ref. speed", "us", "lower",
       "summary.cost.server_ref_us_per_request",
       "server CPU per request times the window's machine speed factor (the speed probe, asgibench/measure.py): "
       "the VM's own drift divided out"),
    _f("db_us_per_request", "PostgreSQL CPU / request", "us", "lower", "summary.cost.db_us_per_request",
       "CPU of the PostgreSQL backends (and postmaster) per request, microseconds"),
    _f("generator_us_per_request", "generator CPU / request", "us", "lower", "summary.cost.generator_us_per_request",
       "the load generator's own CPU per request, microseconds"),
    _f("capacity_per_core", "req/s per server core", "req/s", "higher", "summary.cost.capacity_per_server_core",
       "1e6 / server_us_per_request: what one core of this server serves at this cost"),
    _f("capacity_per_ref_core", "req/s per ref. core", "req/s", "higher", "summary.cost.capacity_per_ref_core",
       "1e6 / server_ref_us_per_request: capacity per core of the reference machine"),
    _f("server_pss_mb", "server memory (PSS)", "MB", "lower", "summary.memory.server_pss_mb.steady",
       "proportional set size of the server tree in steady state, MB"),
    _f("rps_per_gb", "req/s per GB", "req/s", "higher", "summary.cost.rps_per_gb",
       "req/s per GB of server memory (steady PSS)"),
    _f("efficiency", "I/O efficiency", "", "higher", "summary.concurrency.efficiency",
       "io scenario: achieved req/s / (users / io_seconds)"),
    _f("capacity_rps", "capacity at SLO", "req/s", "higher", "capacity.capacity_rps",
       "capacity scenario: the highest offered rate sustained within the SLO"),
    _f("capacity_ref_rps", "capacity at SLO, ref. speed", "req/s", "higher", "capacity.capacity_ref_rps",
       "capacity scenario: capacity at SLO over the machine's speed factor during that step (the speed probe)"),
    _f("capacity_p99_ms", "p99 at capacity", "ms", "lower", "capacity.at_capacity.p99_ms",
       "capacity scenario: p99 (from the intended start) at the capacity step"),
)
BY_KEY = {f.key: f for f in FIGURES}


def values(metas, key: str) -> list[float]:
    """The figure `key` of each trial that has it (trials without it are left out)."""
    fig = BY_KEY[key]
    return [v for v in (fig.of(m) for m in metas) if v is not None]


# -- per-trial flags -------------------------------------------------------------------------------
# (flag, test(meta) -> reason or ""): every place that marks a trial (summary, matrix table, report,
# HTML) asks flags(meta), so a flag's rule and wording live here only.

def _generator_bound(meta: dict) -> str:
    g = meta.get("generator") or {}
    return "; ".join(g.get("bound_reasons") or []) or ("flagged" if g.get("bound") else "")


def _generator_competing(meta: dict) -> str:
    g = meta.get("generator") or {}
    return (g.get("competing_reason") or "flagged") if g.get("competing") else ""


def _imbalanced(meta: dict) -> str:
    b = (meta.get("summary") or {}).get("balance") or {}
    return (b.get("reason") or "flagged") if b.get("imbalanced") else ""


def _not_completed(meta: dict) -> str:
    """Not a figure: the run did not run its course (runmeta.STATUSES), with what meta.json says why."""
    status = meta.get("status") or "unknown"
    if status == "completed":
        return ""
    stall = (meta.get("summary") or {}).get("stall") or {}
    died = meta.get("died") or {}
    why = meta.get("error") or died.get("reason") or (
        f"no request completed for {stall.get('longest_s')} s" if stall else "")
    return f"{status}: {why}" if why else status


FLAGS = (
    ("not-completed", _not_completed),
    ("generator-bound", _generator_bound),
    ("generator-competing", _generator_competing),
    ("imbalanced", _imbalanced),
)


def flags(meta: dict) -> list[tuple[str, str]]:
    """[(flag, reason)] of one trial, in FLAGS order; [] for a clean trial."""
    out = []
    for name, test in FLAGS:
        reason = test(meta)
        if reason:
            out.append((name, reason))
    return out
