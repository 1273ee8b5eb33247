"""Environment step: one uv-managed virtualenv per (env group, Python), built from the committed
lock file envs/lock/<group>-py<X.Y>.txt, created on first use and reused while the lock is unchanged.
A new env group is envs/<group>.in and its locks (`make lock`); rows name their group in the registry."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from asgibench import ROOT
from asgibench.errors import RunError, UsageError
from asgibench.files import last_line, write_json_atomic

ENVS_DIR = ROOT / "envs"
LOCK_DIR = ENVS_DIR / "lock"
VENVS_DIR = ROOT / ".venvs"
TOOLS_DIR = ROOT / ".tools"
STAMP = ".asgibench-env.json"


@dataclass(frozen=True)
class Env:
    group: str
    python_version: str  # "3.11"
    path: Path
    packages: dict  # name (lower-case, normalised) -> version

    @property
    def bin(self) -> Path:
        return self.path / "bin"

    @property
    def python(self) -> Path:
        return self.bin / "python"

    @property
    def static_root(self) -> Path:
        """Django's collectstatic target for this env (its Django version's admin files)."""
        return self.path / "static"

    def version(self, package: str) -> tuple:
        v = self.packages.get(_norm(package))
        return tuple(int(p) for p in v.split(".")[:3] if p.isdigit()) if v else ()

    def has(self, package: str) -> bool:
        return _norm(package) in self.packages


def _norm(name: str) -> str:
    return name.lower().replace("_", "-")


def groups() -> list[str]:
    return sorted(p.stem for p in ENVS_DIR.glob("*.in"))


def locked_pythons(group: str) -> list[str]:
    out = []
    for p in LOCK_DIR.glob(f"{group}-py*.txt"):
        out.append(p.stem.split("-py", 1)[1])
    return sorted(out, key=lambda v: tuple(map(int, v.split("."))))


def current_python() -> str:
    return "%d.%d" % sys.version_info[:2]


def find_uv() -> str:
    """uv from $UV, PATH, or the project-local tools venv (bootstrapped here if missing)."""
    for cand in (os.environ.get("UV"), shutil.which("uv"), str(TOOLS_DIR / "bin" / "uv")):
        if cand and Path(cand).exists():
            return cand
    subprocess.run([sys.executable, "-m", "venv", str(TOOLS_DIR)], check=True)
    subprocess.run([str(TOOLS_DIR / "bin" / "pip"), "install", "-q", "uv"], check=True)
    return str(TOOLS_DIR / "bin" / "uv")


def find_interpreter(version: str) -> str:
    """An interpreter for X.Y: this one, pyenv's versions, pythonX.Y on PATH, or what uv knows."""
    if version == current_python():
        return sys.executable
    try:
        pyenv_root = os.environ.get("PYENV_ROOT") or subprocess.run(
            ["pyenv", "root"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pyenv_root = os.path.expanduser("~/.pyenv")
    cands = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python{version}"), reverse=True)
    cands += [shutil.which(f"python{version}") or ""]
    for c in cands:
        if c and os.access(c, os.X_OK):
            return c
    res = subprocess.run(
        [find_uv(), "python", "find", "--no-python-downloads", version], capture_output=True, text=True
    )
    if res.returncode == 0 and res.stdout.strip():
        return res.stdout.strip()
    raise UsageError(
        f"Python {version} not found (looked in pyenv versions, PATH and uv); "
        f"install it (e.g. `pyenv install {version}`)"
    )


def parse_python(value: str | None) -> str:
    if not value:
        return current_python()
    parts = value.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise UsageError(f"bad Python version {value!r}: expected X.Y, e.g. 3.11")
    return f"{parts[0]}.{parts[1]}"


def lock_file(group: str, python_version: str) -> Path:
    """The committed pins of `group` for `python_version` (a usage error when there are none)."""
    if group not in groups():
        raise UsageError(f"unknown env group {group!r} (have: {', '.join(groups())})")
    lock = LOCK_DIR / f"{group}-py{python_version}.txt"
    if not lock.exists():
        have = ", ".join(locked_pythons(group)) or "none"
        raise UsageError(f"env group {group!r} has no locked pins for Python {python_version} (locked: {have})")
    return lock


def ensure(group: str, python_version: str, *, quiet: bool = False) -> Env:
    """Create (or reuse) the venv for `group` on `python_version` and return it."""
    lock = lock_file(group, python_version)
    path = VENVS_DIR / f"{group}-py{python_version}"
    lock_sha = hashlib.sha256(lock.read_bytes()).hexdigest()
    stamp = path / STAMP
    if stamp.exists():
        data = json.loads(stamp.read_text())
        if data.get("lock_sha256") == lock_sha and (path / "bin" / "python").exists():
            return Env(group, python_version, path, data["packages"])
    interpreter = find_interpreter(python_version)
    uv = find_uv()
    if not quiet:
        print(f"asgibench: building env {path.relative_to(ROOT)} from {lock.relative_to(ROOT)}", file=sys.stderr)
    _run([uv, "venv", "--quiet", "--allow-existing", "--python", interpreter, str(path)], f"create venv {path.name}")
    _run(
        [uv, "pip", "sync", "--quiet", "--python", str(path / "bin" / "python"), str(lock)],
        f"install {lock.name}",
    )
    packages = _freeze(uv, path)
    env = Env(group, python_version, path, packages)
    if env.has("django"):
        _collectstatic(env)
    write_json_atomic(stamp, {"lock": lock.name, "lock_sha256": lock_sha, "packages": packages}, indent=1)
    return env


def _freeze(uv: str, path: Path) -> dict:
    out = _run([uv, "pip", "freeze", "--python", str(path / "bin" / "python")], "list packages")
    pkgs = {}
    for line in out.splitlines():
        if "==" in line:
            name, version = line.split("==", 1)
            pkgs[_norm(name.strip())] = version.strip()
    return pkgs


def _collectstatic(env: Env) -> None:
    from asgibench import apps  # the apps' import path and base environment

    _run(
        [str(env.python), "manage.py", "collectstatic", "--noinput", "--clear", "-v", "0"],
        "collectstatic",
        cwd=apps.DJANGO_DIR,
        env=apps.base_env(env, database_url="postgresql://collectstatic@127.0.0.1/none"),
    )


def _run(cmd, what, **kw) -> str:
    res = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RunError(f"env: {what} failed: {last_line(res.stderr, res.stdout)}")
    return res.stdout
