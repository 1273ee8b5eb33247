"""The runner's shape (issue 10): no import cycle among asgibench's modules, no step importing a
later step or the code that drives the steps, one definition of each shared rule, every module
short and saying what it holds."""
from __future__ import annotations

import ast
import re

import pytest

from asgibench import ROOT

PKG = ROOT / "asgibench"
# The data path, in order; a step may import earlier steps and the leaves, never a later step nor
# the orchestration that runs the steps (pipeline, cli, options, matrix, ...).
STEPS = ["variants", "envs", "database", "server", "contract", "loadgen", "results", "metrics", "capacity", "figures",
         "report"]
LEAVES = {"asgibench", "errors", "files", "stats", "apps", "bounds", "measure", "procs"}
LEGACY: set = set()  # modules allowed to exceed the rules while being split (none left)


def modules() -> dict:
    out = {}
    for f in sorted(PKG.rglob("*.py")):
        parts = f.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def imports(path) -> set[str]:
    """asgibench modules imported at module level or inside functions (lazy imports count too)."""
    mods, found = modules(), set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("asgibench")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("asgibench"):
            for a in node.names:
                full = f"{node.module}.{a.name}"
                found.add(full if full in mods else node.module)
    return {m for m in found if m in mods}


def graph() -> dict:
    return {name: imports(path) - {name} for name, path in modules().items()}


def short(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "asgibench"


def test_no_import_cycle():
    g, state, cycles = graph(), {}, []

    def visit(n, path):
        state[n] = "open"
        for d in sorted(g[n]):
            if state.get(d) == "open":
                cycles.append(path[path.index(d):] + [d])
            elif d not in state:
                visit(d, path + [d])
        state[n] = "done"

    for n in sorted(g):
        if n not in state:
            visit(n, [n])
    assert not cycles, [" -> ".join(c) for c in cycles]


def test_no_step_reaches_back_up_the_data_path():
    bad = []
    for name, deps in graph().items():
        step = short(name)
        if step not in STEPS:
            continue
        for d in deps:
            other = short(d)
            if other == step or other in LEAVES:
                continue
            if other not in STEPS or STEPS.index(other) > STEPS.index(step):
                bad.append(f"{name} imports {d}")
    assert not bad, bad


def test_compose_never_imports_the_cli():
    for name, deps in graph().items():
        if name.startswith("asgibench.compose"):
            assert "asgibench.cli" not in deps, name


@pytest.mark.parametrize("name", sorted(modules()), ids=str)
def test_module_is_short_and_says_what_it_holds(name):
    path = modules()[name]
    if str(path.relative_to(ROOT)) in LEGACY:
        pytest.skip("being split by its own helper")
    assert len(path.read_text().splitlines()) <= 400, name
    assert ast.get_docstring(ast.parse(path.read_text())), f"{name} has no module docstring"


@pytest.mark.parametrize("pattern, home", [
    (r"^def check_target\b|^def loopback\b", "asgibench/server.py"),
    (r"\.is_loopback\b", "asgibench/server.py"),
    (r"^def locust_env\b|\"PYTHONPATH\": str\(ROOT / \"services\"\)", "asgibench/loadgen.py"),
    (r"^BOUNDS\b", "asgibench/bounds.py"),
    (r"^DEFAULT_POOL_SIZE\b|^PLACEMENT_DEFAULT\b", "asgibench/policy.py"),
    (r"^def generator_bound\b", "asgibench/metrics.py"),
    (r"^def exit_code\b", "asgibench/errors.py"),
])
def test_rule_is_defined_once(pattern, home):
    where = {str(p.relative_to(ROOT)) for p in PKG.rglob("*.py")
             if re.search(pattern, p.read_text(), re.MULTILINE)}
    assert where == {home}, where


def test_no_hand_written_range_check():
    """Numeric ranges are bounds.BOUNDS: no `must be between` message is written anywhere else."""
    where = {str(p.relative_to(ROOT)) for p in PKG.rglob("*.py") if "must be between" in p.read_text()}
    assert where == {"asgibench/bounds.py"}, where
