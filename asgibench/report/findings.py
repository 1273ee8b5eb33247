"""The "What this means" section of report.md: what one table (a section) says, in sentences.
A section holds one flow (groups.flow_key), so every comparison here is within a flow; the findings
that compare rows also check it (_same_flow) and rank by the table's headline figure.

Every finding is one function of a Section returning its bullet lines ([] when it has nothing to
say), and FINDINGS lists them in the order report.md prints them. A new finding: one function here
and one entry in FINDINGS (test_report checks that every public function of this module but
section_findings is listed). Helpers that are not findings start with an underscore.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass

import benchcontract
from asgibench import figures, stats
from asgibench.report.columns import median_column
from asgibench.report.fmt import num
from asgibench.report.groups import FAMILY_TITLES, Group, family_order, flow_key

SERIALISES_BELOW = 0.5  # concurrency efficiency below this: the row serialises I/O
CONCURRENT_FROM = 0.9  # at or above this: concurrent


@dataclass
class Section:
    """One table: every row (also those without a completed trial), the rows with a figure, and the
    best reference row of the table as (label, req/s) when it has one."""
    rows: list
    live: list
    ceiling: tuple | None

    @property
    def is_io(self) -> bool:
        return any(g.row.get("efficiency") is not None for g in self.live)

    @property
    def by_family(self) -> dict:
        out: dict = {}
        for g in self.live:
            out.setdefault(g.family, []).append(g)
        return out

    @property
    def headline(self):
        """The table's headline Figure (groups.choose_headline); req/s for a row summarised without one."""
        return figures.BY_KEY[(self.live[0].row.get("headline") if self.live else None) or "rps"]

    def value(self, g: Group) -> float:
        """A row's headline figure (its median over trials); 0 where it was not measured."""
        return g.row.get(median_column(self.headline.key)) or 0.0

    def best(self, gs: list) -> Group:
        """The best of rows gs by the headline figure, whichever way it is better."""
        if self.headline.better == "higher":
            return max(gs, key=self.value)
        return min(gs, key=lambda g: self.value(g) or float("inf"))

    @property
    def tops(self) -> dict:
        """The best row of each family by the table's headline figure (rows without it left out)."""
        col = median_column(self.headline.key)
        ranked = {fam: [g for g in gs if g.row.get(col) is not None] for fam, gs in self.by_family.items()}
        return {fam: self.best(gs) for fam, gs in ranked.items() if gs}

    @property
    def efficient(self) -> list:
        """Rows with a concurrency efficiency (the I/O scenario)."""
        return [g for g in self.live if g.row.get("efficiency") is not None]


def section_findings(rows: list[Group], ceiling) -> list[str]:
    """The bullet lines of one section, finding after finding."""
    live = [g for g in rows if g.trials and g.row.get("rps_median") is not None]
    if not live:
        return ["- No completed trial in this table."]
    s = Section(rows, live, ceiling)
    return [line for finding in FINDINGS for line in finding(s)]


def _same_flow(gs: list) -> bool:
    """Every row of gs runs one flow (a section always does: groups.flow_key); a finding that would
    compare two flows says nothing instead."""
    return len({flow_key(g.flow) for g in gs}) <= 1


def best_per_family(s: Section) -> list[str]:
    h = s.headline
    bests, tops = [], s.tops
    if not tops:
        return []
    for fam in sorted(tops, key=family_order):
        top = tops[fam]
        bests.append(f"{FAMILY_TITLES.get(fam, fam)}: **{top.label}** {num(s.value(top))} {h.unit}".rstrip())
    return [f"- Best row per family (median {h.label}): " + "; ".join(bests) + "."]


def versus_best_wsgi(s: Section) -> list[str]:
    tops = s.tops
    if s.is_io or "wsgi" not in tops or not _same_flow(s.live):
        return []
    w, h = tops["wsgi"], s.headline
    out = []
    for fam in ("asgi", "fastapi"):
        if fam in tops and s.value(w):
            o = tops[fam]
            out.append(f"- Best {FAMILY_TITLES[fam]} row vs best WSGI row, same flow: {o.label} has "
                       f"{s.value(o) / s.value(w):.2f}× the {h.label} of {w.label}, "
                       f"p95 {num(o.row['p95_ms'])} vs {num(w.row['p95_ms'])} ms.")
    return out


def async_versus_sync(s: Section) -> list[str]:
    out = []
    for g in s.live:
        if "+async" not in g.flow:
            continue
        twin = [h for h in s.live if h.variant == g.variant and h.flow == g.flow.replace("+async", "")
                and h.config == g.config]
        if twin:
            h = twin[0]
            ratio = g.row["rps_median"] / h.row["rps_median"]
            out.append(f"- Django async views on {g.variant}: {ratio:.2f}× the req/s "
                       f"of its sync views ({num(g.row['rps_median'])} vs {num(h.row['rps_median'])}), p95 "
                       f"{num(g.row['p95_ms'])} vs {num(h.row['p95_ms'])} ms.")
    return out


def spread(s: Section) -> list[str]:
    non_ref = [g for g in s.live if g.family != "reference" and g.row.get(median_column(s.headline.key)) is not None]
    if not non_ref or s.is_io:
        return []
    if s.headline.better != "higher" or not _same_flow(non_ref):
        return []
    top = max(non_ref, key=s.value)
    slow = min(non_ref, key=s.value)
    if top is not slow and s.value(slow) and s.value(top) >= 1.1 * s.value(slow):
        return [(f"- Spread ({s.headline.label}): the best non-reference row ({top.label}) has "
                 f"{s.value(top) / s.value(slow):.1f}× the slowest ({slow.label}).")]
    return []


def raw_ceiling(s: Section) -> list[str]:
    if not s.ceiling:
        if any(flow_key(g.flow).split("+")[0] == "original" for g in s.live):
            return ["- No reference row serves this flow (the bare reference apps serve the API flow only): "
                    "no ceiling in this table; the API-flow table has one."]
        return ["- No reference row in this table: no ceiling to compare with (add `raw-asgi-asyncpg` to the run)."]
    if s.is_io:
        return []
    label, rps = s.ceiling
    ratios = sorted((g for g in s.live if g.label != label), key=lambda g: -(g.row["ceiling_ratio"] or 0))
    out = [f"- Raw ceiling: **{label}** at {num(rps)} req/s (a bare ASGI app on asyncpg: what Python reaches on "
           "these queries without a framework). Each row as a fraction of it: "
           + ", ".join(f"{g.label} {g.row['ceiling_ratio']:.2f}×" for g in ratios) + "."]
    overall = max(s.live, key=lambda g: g.row["rps_median"])
    if overall.label != label and overall.row["rps_median"] > 1.02 * rps:
        out.append(f"  - {overall.label} beat the reference row here; check it is generator-bound or unstable before "
                   "reading it as faster than the ceiling.")
    return out


def serialising_per_family(s: Section) -> list[str]:
    effs = s.efficient
    if not effs:
        return []
    fams = []
    for fam in sorted({g.family for g in effs}, key=family_order):
        n = [g for g in effs if g.family == fam]
        k = sum(g.row["efficiency"] < SERIALISES_BELOW for g in n)
        fams.append(f"{FAMILY_TITLES.get(fam, fam)} {k} of {len(n)}")
    return ["- Rows that serialise I/O, per family: " + ", ".join(fams) + "."]


def serialises_io(s: Section) -> list[str]:
    ser = [g for g in s.efficient if g.row["efficiency"] < SERIALISES_BELOW]
    if not ser:
        return []
    return [(f"- **Serialises I/O** (efficiency < {SERIALISES_BELOW}: waiting requests queue behind each other, "
             f"as the original study saw with 1.65 of 10 req/s): {_by_efficiency(ser)}.")]


def partly_concurrent(s: Section) -> list[str]:
    part = [g for g in s.efficient if SERIALISES_BELOW <= g.row["efficiency"] < CONCURRENT_FROM]
    return [f"- Partly concurrent ({SERIALISES_BELOW}–{CONCURRENT_FROM}): {_by_efficiency(part)}."] if part else []


def concurrent(s: Section) -> list[str]:
    conc = [g for g in s.efficient if g.row["efficiency"] >= CONCURRENT_FROM]
    if not conc:
        return []
    return [(f"- Concurrent (≥ {CONCURRENT_FROM}: the waits overlap, as many requests in flight as users): "
             f"{_by_efficiency(conc)}.")]


def _by_efficiency(gs: list[Group]) -> str:
    gs = sorted(gs, key=lambda g: g.row["efficiency"])
    return ", ".join(f"{g.label} ({g.row['efficiency']:.2f})" for g in gs)


def unstable_rows(s: Section) -> list[str]:
    out = []
    shaky = [g for g in s.live if stats.unstable(g.row.get("headline_cv_pct"))]
    if shaky and s.headline.key != "rps":
        out.append(f"- **Unstable headline** ({s.headline.label} CV > {stats.UNSTABLE_CV_PCT:.0f}%; rerun or add "
                   "trials before comparing): " + ", ".join(f"{g.label} (CV {g.row['headline_cv_pct']:.1f}%)"
                                                           for g in shaky) + ".")
    unstable = [g for g in s.live if g.row["unstable"]]
    if unstable:
        what = "rerun or add trials before comparing" if s.headline.key == "rps" else \
            f"req/s only; the headline {s.headline.label} is what to compare"
        out.append(f"- **Unstable** req/s (CV > {stats.UNSTABLE_CV_PCT:.0f}%; {what}): "
                   + ", ".join(f"{g.label} (CV {g.row['rps_cv_pct']:.1f}%" + (
                       f", worker shares % {g.row['balance_shares']}" if g.row.get("imbalanced") else "") + ")"
                       for g in unstable) + ".")
    return out


def single_trial(s: Section) -> list[str]:
    single = [g for g in s.live if g.row["trials"] < 2]
    return ["- One trial only (no variance estimate): " + ", ".join(g.label for g in single) + "."] if single else []


def generator_bound_rows(s: Section) -> list[str]:
    bound = [g for g in s.live if g.row["generator_bound"]]
    if bound:
        return ["- **Generator-bound** (the load generator may have set the pace; the figure is a lower bound): "
                + "; ".join(f"{g.label} ({g.row['generator_bound_reasons']})" for g in bound) + "."]
    top_cpu = max((g.row["gen_cpu_pct_max"] or 0) for g in s.live)
    return [f"- No figure is generator-bound (highest generator CPU {top_cpu:.0f}% of one core)."]


def imbalanced_rows(s: Section) -> list[str]:
    flagged = [g for g in s.live if g.row.get("imbalanced")]
    if not flagged:
        return []
    return ["- **Imbalanced workers** (one worker carried most of the server's CPU; real server behaviour with few "
            "long-lived connections, and why req/s swings while CPU per request does not): "
            + "; ".join(f"{g.label} (worker shares % {g.row['balance_shares']})" for g in flagged) + "."]


def generator_competing_rows(s: Section) -> list[str]:
    flagged = [g for g in s.live if g.row.get("generator_competing")]
    if not flagged:
        return []
    return ["- **Generator-competing** (the load generator took CPU the server needed; req/s is a lower bound, "
            "CPU per request is not affected): " + "; ".join(
                g.label + (f" ({g.row['generator_share_pct_max']:.0f}% of the machine)"
                           if g.row.get("generator_share_pct_max") is not None else "") for g in flagged) + "."]


def cost_per_request(s: Section) -> list[str]:
    costed = [g for g in s.live if g.row.get("server_us_per_request_median") is not None]
    if not costed or s.is_io or s.live[0].scenario == "capacity":  # capacity: the table has it at the knee
        return []
    cheap = min(costed, key=lambda g: g.row["server_us_per_request_median"])
    dear = max(costed, key=lambda g: g.row["server_us_per_request_median"])
    out = [f"- Server CPU per request: lowest {num(cheap.row['server_us_per_request_median'])} µs ({cheap.label}, "
           f"{num(cheap.row['capacity_per_core_median'])} req/s per core)"
           + (f", highest {num(dear.row['server_us_per_request_median'])} µs ({dear.label})." if dear is not cheap
              else ".")]
    gen = [g.row.get("generator_us_per_request_median") for g in costed]
    gen = sorted(v for v in gen if v is not None)
    if gen:
        span = num(gen[0]) if gen[0] == gen[-1] else f"{num(gen[0])}–{num(gen[-1])}"
        out.append(f"  - The load generator spent {span} µs of CPU per request on this flow.")
    return out


def memory(s: Section) -> list[str]:
    mem = [g for g in s.live if g.row.get("server_pss_mb_median") is not None]
    if not mem:
        return []
    small = min(mem, key=lambda g: g.row["server_pss_mb_median"])
    big = max(mem, key=lambda g: g.row["server_pss_mb_median"])
    if small is big:
        return [f"- Server memory (PSS, steady): {num(small.row['server_pss_mb_median'])} MB ({small.label})."]
    return [f"- Server memory (PSS, steady): smallest {num(small.row['server_pss_mb_median'])} MB ({small.label}), "
            f"largest {num(big.row['server_pss_mb_median'])} MB ({big.label})."]


def capacity_and_overload(s: Section) -> list[str]:
    rows = [g for g in s.live if g.row.get("capacity_rps_median") is not None]
    none = [g for g in s.live if g.row.get("capacity_rps_median") is None and g.row.get("slo")]
    if not rows and not none:
        return []
    slo = (rows or none)[0].row.get("slo")
    out = [f"- Capacity at the SLO ({slo or 'as recorded'}), highest first: " + ", ".join(
        f"{g.label} {num(g.row['capacity_rps_median'])} req/s" for g in
        sorted(rows, key=lambda g: -g.row["capacity_rps_median"])) + "."] if rows else []
    if none:
        out.append("- **No step met the SLO** (not even the ladder's first, lowest rate; lower --ladder-start or "
                   "relax --slo to find a knee): " + ", ".join(g.label for g in none) + ".")
    for g in rows:
        r = g.row
        if r.get("overload_offered_rps") is None:
            continue
        errs = sum(r.get(f"overload_{k}") or 0 for k in ("timeouts", "errors_5xx", "resets"))
        rec = "did not recover within the run" if r.get("overload_recovery_s") is None else \
            f"back within the SLO after {num(r['overload_recovery_s'])} s"
        out.append(f"  - {g.label} at {num(r['overload_offered_rps'])} req/s offered: served "
                   f"{num(r['overload_achieved_rps'])}, p99 {num(r['overload_p99_ms'])} ms, {errs} errors, "
                   f"{r.get('overload_dropped') or 0} dropped, {r.get('overload_worker_restarts') or 0} worker "
                   f"restarts; {rec}.")
    return out


def failures(s: Section) -> list[str]:
    failing = [g for g in s.live if g.row["failures"]]
    if not failing:
        return ["- No failed request in this table (every check of every request passed)."]
    out = []
    for g in failing:
        top = _top_failures(g)
        out.append(f"- **Failures** in {g.label}: {g.row['failures']} of {g.row['requests']} requests "
                   f"({g.row['failure_pct']:.2f}%)" + (f"; most frequent: {'; '.join(top)}" if top else "") + ".")
    return out


def _top_failures(g: Group, n: int = 2) -> list[str]:
    counts: dict = {}
    for t in g.trials:
        try:
            with open(t.path / "locust_failures.csv", newline="") as f:
                for rec in csv.DictReader(f):
                    k = f"{rec.get('Method')} {rec.get('Name')}: {rec.get('Error')}"
                    counts[k] = counts.get(k, 0) + int(rec.get("Occurrences") or 0)
        except (OSError, ValueError):
            continue
    return [f"{k} (×{c})" for k, c in sorted(counts.items(), key=lambda kv: -kv[1])[:n]]


def not_in_async_rows(s: Section) -> list[str]:
    no_async = {}
    for g in s.rows:
        reason = (g.all_trials[0].variant.get("no_async") or "")
        if reason:
            no_async[g.variant] = reason
    if no_async and any("+async" in g.flow for g in s.rows):
        return [f"- Not in the async rows (they cannot serve `{benchcontract.ASYNC_API_PREFIX}`): "
                + "; ".join(f"{k}: {v}" for k, v in no_async.items()) + "."]
    return []


# report.md prints them in this order.
FINDINGS = (
    best_per_family, versus_best_wsgi, async_versus_sync, spread, raw_ceiling, capacity_and_overload,
    cost_per_request, memory, serialising_per_family, serialises_io, partly_concurrent, concurrent,
    unstable_rows, single_trial, imbalanced_rows, generator_bound_rows, generator_competing_rows, failures,
    not_in_async_rows,
)
