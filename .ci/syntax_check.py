"""`make lint`'s old-Python check: every .py file under PATHS must compile with Python X.Y itself (its own
parser and compiler, so `from __future__ import annotations` on 3.6 is caught, unlike with ast.parse).

    python .ci/syntax_check.py X.Y PATH...

The interpreter is found the way the suite finds one for an env (asgibench.envs.find_interpreter: pyenv's
versions, pythonX.Y on PATH, uv). Without it the check is skipped with the reason (exit 0); a file that does
not compile fails it (exit 1). Nothing is written (no __pycache__).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from asgibench.envs import find_interpreter
from asgibench.errors import UsageError

# Runs under Python X.Y: keep it valid on 3.6 (no f-string `=`, no walrus, nothing newer).
COMPILE_EACH = r"""
import sys
bad = 0
for name in sys.argv[1:]:
    try:
        with open(name, "rb") as f:
            compile(f.read(), name, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as e:
        bad += 1
        print("%s:%s:%s: %s: %s" % (name, getattr(e, "lineno", "?"), getattr(e, "offset", "?"),
                                    type(e).__name__, getattr(e, "msg", e)))
sys.exit(1 if bad else 0)
"""


def python_files(paths: list[str]) -> list[str]:
    out = []
    for p in map(Path, paths):
        if p.is_file():
            out.append(p)
        else:
            out += [f for f in p.rglob("*.py") if not any(part == "__pycache__" or part.startswith(".")
                                                          for part in f.relative_to(p).parts)]
    return sorted(str(f) for f in out)


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    version, paths = argv[0], argv[1:]
    what = " ".join(paths)
    try:
        python = find_interpreter(version)
    except UsageError as e:
        print(f"syntax check on Python {version}: SKIPPED for {what}: {e}")
        return 0
    files = python_files(paths)
    if not files:
        print(f"syntax check on Python {version}: no .py files in {what}", file=sys.stderr)
        return 1
    res = subprocess.run([python, "-c", COMPILE_EACH, *files], check=False)
    verdict = "ok" if res.returncode == 0 else "FAILED"
    print(f"syntax check on Python {version} ({python}): {len(files)} files in {what}: {verdict}")
    return 1 if res.returncode else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
