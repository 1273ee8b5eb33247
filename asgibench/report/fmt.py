"""How the report writes a value: a figure for people (num), a load setting (setting) and a run
folder relative to the report (rel). report.md, the findings, the charts and the console headline
all write values through here, so a figure reads the same everywhere; a new way of writing a value
goes here (and only here)."""
from __future__ import annotations

import os
from pathlib import Path


def num(v, unit: str = "") -> str:
    """1,234 / 12.3 / 1.23 (three significant-ish digits); "–" for a missing figure."""
    if v is None:
        return "–"
    v = float(v)
    s = f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"
    return s + unit


def setting(v) -> str:
    """A load setting in a label or title: 50.0 -> "50", anything else as str()."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def rel(path: Path, base: Path) -> str:
    """`path` relative to the report folder `base` (the links in report.md, run_dirs in summary.csv)."""
    return os.path.relpath(Path(path).resolve(), Path(base).resolve())
