"""compose/ for Docker users, generated from the registry: `python -m asgibench compose` writes
compose/compose.yaml, `--check` fails when the checked-in file differs (tests/test_compose.py too).

  services   what each service runs, computed by the local runner's own code (command lines,
             environments, PostgreSQL's settings, the Locust workers), as compose variables whose
             defaults are what the local runner would use
  yamltext   a small deterministic YAML writer with comments
  document   the file: header + services (render)
  master     the locust-master service: `python -m asgibench.compose locust-master ROW ...` waits for
             the row, then runs `bench ROW --target http://ROW:8000 --remote-workers N ...` through
             options, pipeline and console, the same code path as a local distributed run

The image (compose/Dockerfile) installs the SAME committed lock files as the local envs.
This module is the `compose` subcommand (add_arguments, cmd_compose; the CLI registers it) and the
entry point of `python -m asgibench.compose` (main). A new subcommand option goes in add_arguments.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from asgibench import ROOT, envs, errors, options, variants
from asgibench.compose import master
from asgibench.compose.document import render
from asgibench.compose.master import locust_master
from asgibench.compose.services import DEFAULT_PYTHON
from asgibench.errors import AsgibenchError

__all__ = ["add_arguments", "cmd_compose", "locust_master", "main", "render"]

COMPOSE_DIR = ROOT / "compose"
COMPOSE_FILE = COMPOSE_DIR / "compose.yaml"
DESCRIPTION = "write compose/compose.yaml from the registry"


def add_arguments(p, parser_class=options.Parser) -> None:
    p.add_argument("--check", action="store_true", help="exit 1 if the checked-in file differs from the registry")
    p.add_argument("--python", default=DEFAULT_PYTHON, help=f"the rows' Python (default {DEFAULT_PYTHON})")
    p.add_argument("--output", "-o", help="file to write (default compose/compose.yaml, or compose/compose-pyX.Y.yaml)")
    # `locust-master ROW ...`: the load service inside the runner image, not a user's command (hidden)
    sub = p.add_subparsers(dest="compose_service", parser_class=parser_class, help=argparse.SUPPRESS,
                           metavar=argparse.SUPPRESS)
    master.add_arguments(sub.add_parser("locust-master", prog=master.PROG))


def cmd_compose(a) -> int:
    """Write (or --check) the file; `locust-master` runs the load service instead."""
    if a.compose_service == "locust-master":
        return master.run(a)
    try:
        python = envs.parse_python(a.python)
        text = render(python)
    except AsgibenchError as e:
        print(f"asgibench: {e}", file=sys.stderr)
        return 2
    default = COMPOSE_FILE if python == DEFAULT_PYTHON else COMPOSE_DIR / f"compose-py{python}.yaml"
    path = Path(a.output) if a.output else default
    if a.check:
        current = path.read_text() if path.exists() else None
        if current != text:
            print(f"asgibench: {_rel(path)} is out of date with the registry: run `python -m asgibench compose`",
                  file=sys.stderr)
            return 1
        print(f"asgibench: {_rel(path)} matches the registry")
        return 0
    path.write_text(text)
    print(f"asgibench: wrote {_rel(path)} ({len(variants.VARIANTS)} row services, Python {python})")
    return 0


def main(argv: list[str] | None = None) -> int:
    """`python -m asgibench.compose [--check] [--python X.Y] [--output FILE]` and, inside the runner
    image, `python -m asgibench.compose locust-master ROW ...` -> exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)

    def parse_and_run():
        p = options.Parser(prog="python -m asgibench.compose", description=DESCRIPTION)
        add_arguments(p)
        return cmd_compose(p.parse_args(argv))

    return errors.exit_code(parse_and_run)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)
