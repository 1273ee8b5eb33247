"""Every statistical rule the suite applies, defined once: medians, the coefficient of variation and
the "unstable" threshold, the generator-bound rule, and exact percentiles. The runner, the matrix,
the console, the report (and later compare) ask this module; none of them redefines a rule.
"""
from __future__ import annotations

import statistics

from locustfiles.timingfile import percentile  # noqa: F401  the one exact-percentile definition

# A figure whose CV over trials is above this is called out as unstable (summary, matrix, report).
UNSTABLE_CV_PCT = 5.0
# The generator-bound rule: Locust itself was the limit when one of its processes used more than
# this share of a core, when Locust raised its own CPU warning, or when the measured rate was above
# this fraction of the ceiling `asgibench calibrate` measured on this machine.
GENERATOR_CPU_BOUND_PCT = 90.0
GENERATOR_CEILING_FRACTION = 0.5


def median(values) -> float | None:
    """Median of the values that are not None; None when there are none."""
    vals = [v for v in values if v is not None]
    return float(statistics.median(vals)) if vals else None


def cv_pct(values) -> float | None:
    """Coefficient of variation in percent: sample stdev (n-1) / mean; None below two values."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return None
    mean = statistics.fmean(vals)
    return 100.0 * statistics.stdev(vals) / mean if mean else None


def unstable(cv: float | None) -> bool:
    """The one threshold: a CV (in percent) above UNSTABLE_CV_PCT."""
    return cv is not None and cv > UNSTABLE_CV_PCT


def generator_bound_reasons(cpu_percent_of_one_core: float | None, processes: int, cpu_warning: bool,
                            rps: float | None, ceiling_rps: float | None) -> list[str]:
    """Why a trial's load generator was its limit ([] = it was not)."""
    reasons = []
    procs = max(1, int(processes or 1))
    if cpu_percent_of_one_core is not None and cpu_percent_of_one_core / procs > GENERATOR_CPU_BOUND_PCT:
        reasons.append(f"generator CPU {cpu_percent_of_one_core / procs:.0f}% of one core per process")
    if cpu_warning:
        reasons.append("Locust warned: CPU usage above 90%")
    if ceiling_rps and rps and rps > GENERATOR_CEILING_FRACTION * ceiling_rps:
        reasons.append(f"{rps:.0f} req/s is above half the calibrated Locust ceiling ({ceiling_rps:.0f} req/s)")
    return reasons
