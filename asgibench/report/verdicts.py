"""compare's statistics, defined once: the bootstrap interval of a NEW/BASE ratio, the verdict (better /
worse / no significant difference / untested), how much worse a figure is in its own direction, the
--fail-if-worse gate and the per-family geometric mean. compare.py's docstring says why each is so.
"""
from __future__ import annotations

import math

from asgibench import figures
from asgibench.report.groups import family_order

BOOTSTRAP_ROUNDS = 10_000
CONFIDENCE = 0.95
BETTER, WORSE, SAME, UNTESTED = "better", "worse", "no significant difference", "untested"
VERDICTS = (BETTER, WORSE, SAME, UNTESTED)


def bootstrap_ratio_ci(base, new, seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of mean(new) / mean(base); None with < 2 values on a side."""
    import numpy as np  # here: the CLI imports this module for every command

    b, n = np.asarray(base, float), np.asarray(new, float)
    if len(b) < 2 or len(n) < 2:
        return None
    rng = np.random.default_rng(seed)
    mb = b[rng.integers(0, len(b), (rounds, len(b)))].mean(axis=1)
    mn = n[rng.integers(0, len(n), (rounds, len(n)))].mean(axis=1)
    ok = mb != 0
    if not ok.any():
        return None
    ratios = mn[ok] / mb[ok]
    a = 100 * (1 - CONFIDENCE) / 2
    return float(np.percentile(ratios, a)), float(np.percentile(ratios, 100 - a))


def verdict(fig: figures.Figure, ratio: float | None, ci, noise_pct: float | None) -> tuple[str, str]:
    """(verdict, why) of one figure's NEW/BASE ratio and its interval."""
    if ratio is None:
        return UNTESTED, "BASE is 0"
    if ci is None:
        return UNTESTED, "fewer than 2 trials on a side: no confidence interval"
    if ci[0] <= 1.0 <= ci[1]:
        return SAME, "the 95% CI contains 1"
    change = 100 * abs(ratio - 1)
    if noise_pct is not None and change <= noise_pct:
        return SAME, f"{change:.1f}% is within the noise floor ({noise_pct:.1f}% CV)"
    return (BETTER if (ratio > 1) == (fig.better == "higher") else WORSE), ""


def change_pct(fig: figures.Figure, ratio: float) -> float:
    """How much worse (> 0) or better (< 0) NEW is, in percent of BASE, in the figure's direction."""
    return 100 * ((1 - ratio) if fig.better == "higher" else (ratio - 1))


def family_summary(lines: list[dict]) -> list[dict]:
    """Per family and figure: the geometric mean of NEW/BASE over its rows, and the verdict counts."""
    acc: dict = {}
    for c in lines:
        if c["ratio"] and c["ratio"] > 0:
            acc.setdefault((c["family"], c["figure"]), []).append(c)
    out = []
    for (fam, key), cs in sorted(acc.items(), key=lambda kv: (family_order(kv[0][0]), kv[0][0],
                                                              [f.key for f in figures.FIGURES].index(kv[0][1]))):
        fig = figures.BY_KEY[key]
        gm = math.exp(sum(math.log(c["ratio"]) for c in cs) / len(cs))
        out.append({"family": fam, "figure": key, "label": fig.label, "better": fig.better, "rows": len(cs),
                    "geomean_ratio": gm, **{v: sum(c["verdict"] == v for c in cs) for v in VERDICTS}})
    return out


def failures(lines: list[dict], pct: float | None) -> list[dict]:
    """The figures significantly worse by more than pct percent (--fail-if-worse)."""
    if pct is None:
        return []
    return [c for c in lines if c["verdict"] == WORSE and change_pct(figures.BY_KEY[c["figure"]], c["ratio"]) > pct]
