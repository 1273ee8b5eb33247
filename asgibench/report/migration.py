"""The report's migration section: per row (and scenario, flow, sync or async views), each Django step's
headline figures side by side, the step-to-step ratio of each, and whether that change is beyond noise;
one chart per row across the Django versions.

  steps_by_row   completed trials -> {(row, scenario, flow, views): [Step, ...]} in Django order
  section        the Markdown lines (empty when no row ran on two Django versions or more)

A step is one Django X.Y (and Python) of one row: meta["django"]["version"] of its trials. The figures are
figures.FIGURES (HEADLINES, median over the step's trials); "beyond noise": the change |ratio - 1| exceeds
the larger of stats.UNSTABLE_CV_PCT and the two steps' CVs (stats.cv_pct over their trials), so a change
smaller than the trials' own spread is never called one; a step of one trial has no CV and is not judged.
Steps compare the same flow only (it is in the key).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import benchcontract
from asgibench import figures, stats

# The headline figures of a step (the first the trials hold lead each row's chart): capacity or req/s,
# p99, server CPU per request, memory, I/O efficiency.
HEADLINES = ("capacity_rps", "rps", "p99_ms", "server_us_per_request", "server_pss_mb", "efficiency")


@dataclass
class Step:
    django: str  # "3.2"
    version: str  # "3.2.25"
    python: str
    metas: list = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"Django {self.version} / Py {self.python}"

    def median(self, key: str) -> float | None:
        return stats.median(figures.values(self.metas, key))

    def cv(self, key: str) -> float | None:
        vals = figures.values(self.metas, key)
        return stats.cv_pct(vals) if len(vals) > 1 else None


def _xy(version: str) -> tuple:
    return tuple(int(p) for p in re.findall(r"\d+", version)[:2])


def steps_by_row(metas: list[dict]) -> dict:
    """{(row, scenario, flow, views): [Step]} of completed trials that record a Django version."""
    out: dict = {}
    for m in metas:
        version = (m.get("django") or {}).get("version")
        if m.get("status") != "completed" or not version or not m.get("summary"):
            continue
        plan = m.get("plan") or {}
        # the io flow hits the row's I/O probe whatever --async says: one series per row there
        views = "async" if plan.get("api_prefix") == benchcontract.ASYNC_API_PREFIX else "sync"
        views = "probe" if plan.get("flow") == "io" else views
        key = ((m.get("variant") or {}).get("name"), plan.get("scenario"), plan.get("flow"), views)
        steps = out.setdefault(key, {})
        dj = ".".join(map(str, _xy(version)))
        step = steps.setdefault((dj, m.get("python")), Step(dj, version, m.get("python") or "?"))
        step.metas.append(m)
    return {k: sorted(v.values(), key=lambda s: (_xy(s.version), _xy(s.python))) for k, v in out.items()
            if len({s.django for s in v.values()}) > 1}


def change(prev: Step, cur: Step, key: str) -> tuple[float | None, bool | None]:
    """(cur / prev of the figure's medians, beyond noise?); None for "not judged": a step with one trial
    has no CV, so its noise is unknown."""
    a, b = prev.median(key), cur.median(key)
    if a is None or b is None or a == 0:
        return None, None
    ratio = b / a
    cvs = (prev.cv(key), cur.cv(key))
    if None in cvs:
        return ratio, None
    noise = max((stats.UNSTABLE_CV_PCT,) + cvs)
    return ratio, abs(ratio - 1) * 100 > noise


def _cell(step: Step, prev: Step | None, key: str) -> str:
    v = step.median(key)
    if v is None:
        return "—"
    text = f"{v:.2f}" if abs(v) < 10 else f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    cv = step.cv(key)
    if cv is not None:
        text += f" (CV {cv:.0f}%)"
    if prev is not None:
        ratio, beyond = change(prev, step, key)
        if ratio is not None:
            better = (ratio > 1) == (figures.BY_KEY[key].better == "higher")
            verdict = ("**better**" if better else "**worse**") if beyond else \
                "(noise)" if beyond is False else "(1 trial: not judged)"
            text += f" ×{ratio:.2f} {verdict}"
    return text


def _head(f) -> str:
    return f.label if not f.unit or f.unit == f.label else f"{f.label} ({f.unit})"


def _flags(step: Step) -> str:
    """figures.flags of the step's trials, and failed requests (a figure with failures is suspect)."""
    seen = {}
    for m in step.metas:
        for name, _ in figures.flags(m):
            seen[name] = seen.get(name, 0) + 1
    failed = sum((m.get("summary") or {}).get("failures") or 0 for m in step.metas)
    out = [f"{n} ({c}/{len(step.metas)})" for n, c in seen.items()]
    return ", ".join(out + ([f"{failed} failed requests"] if failed else [])) or "—"


def _chart(key: tuple, steps: list[Step], charts_dir: Path) -> Path | None:
    shown = [k for k in HEADLINES if any(s.median(k) is not None for s in steps)][:2]
    if not shown:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shown), figsize=(5 * len(shown), 3.2), squeeze=False)
    labels = [f"{s.django}\npy{s.python}" for s in steps]
    for ax, k in zip(axes[0], shown):
        f = figures.BY_KEY[k]
        ys = [s.median(k) for s in steps]
        ax.plot(range(len(steps)), [y if y is not None else float("nan") for y in ys], marker="o")
        ax.set_xticks(range(len(steps)))
        ax.set_xticklabels(labels)
        ax.set_ylabel(_head(f))
        ax.set_title(f"{f.label} ({f.better} is better)", fontsize=9)
        ax.grid(alpha=0.3)
    row, scenario, flow, views = key
    fig.suptitle(f"{row} ({views} views), {scenario} / {flow} flow, across Django versions", fontsize=10)
    fig.tight_layout()
    charts_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", f"migration-{row}-{views}-{scenario}-{flow}")
    path = charts_dir / f"{slug}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def section(metas: list[dict], out_dir: Path, *, charts: bool = True) -> list[str]:
    """The migration section's Markdown lines ([] when no row ran on two Django versions or more)."""
    rows = steps_by_row(metas)
    if not rows:
        return []
    L = ["## Migration: the same rows across Django versions", "",
         "Each step is one Django version (and the Python it ran on) of one row; figures are medians over the "
         "step's trials (CV beside them), ×r is the ratio to the previous step, called **better** / **worse** "
         f"only when the change exceeds the noise (the larger of {stats.UNSTABLE_CV_PCT:.0f}% and the two steps' "
         "CVs), else (noise); a step of one trial is not judged. Same flow across steps.", ""]
    for key in sorted(rows, key=lambda k: tuple(str(x) for x in k)):
        steps = rows[key]
        row, scenario, flow, views = key
        shown = [k for k in HEADLINES if any(s.median(k) is not None for s in steps)]
        L += [f"### {row} ({views} views) — {scenario}, {flow} flow", ""]
        L.append("| step | trials | " + " | ".join(_head(figures.BY_KEY[k]) for k in shown) + " | flags |")
        L.append("|---|---:|" + "---:|" * len(shown) + "---|")
        for i, s in enumerate(steps):
            prev = steps[i - 1] if i else None
            L.append(f"| {s.label} | {len(s.metas)} | " + " | ".join(_cell(s, prev, k) for k in shown)
                     + f" | {_flags(s)} |")
        L.append("")
        if charts:
            p = _chart(key, steps, Path(out_dir) / "charts")
            if p:
                L += [f"![{row} across Django versions]({p.relative_to(out_dir)})", ""]
    return L
