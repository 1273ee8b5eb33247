"""Environment step: one uv-managed virtualenv per (env group, Django, Python), built from the committed
lock file, created on first use and reused while the lock is unchanged.
A new env group is envs/<group>.in and its locks (`make lock`); rows name their group in the registry.

The Django dimension (DJANGO_PYTHONS, the one table): envs/<group>.in resolves, per Python, to that
Python's default Django (envs/lock/<group>-py<P>.txt: 4.2 on 3.8/3.9, 5.2 on 3.10/3.11, 6.1 on 3.12+);
every other (Django D, Python P) the table allows is envs/<group>-dj<D>.in -> envs/lock/<group>-dj<D>-py<P>.txt.
Python 3.6/3.7 have no default lock: their default Django is the newest the table allows there (3.2).
`make lock` compiles exactly lock_plan(), so the lock names derive from the table."""
from __future__ import annotations

import glob
import hashlib
import json
import os
import re
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

# Django X.Y -> the Pythons it supports upstream (and that pyenv provides here: 3.6-3.13).
DJANGO_PYTHONS = {
    "2.2": ("3.6", "3.7", "3.8", "3.9"),
    "3.2": ("3.6", "3.7", "3.8", "3.9", "3.10"),
    "4.2": ("3.8", "3.9", "3.10", "3.11", "3.12"),
    "5.2": ("3.10", "3.11", "3.12", "3.13"),
    "6.1": ("3.12", "3.13"),
}
DJANGO_VERSIONS = tuple(DJANGO_PYTHONS)
DJANGO_GROUPS = ("django", "eventlet")  # the env groups that install Django (gino and runner do not)
DEFAULT_PYTHONS = ("3.8", "3.9", "3.10", "3.11", "3.12", "3.13")  # envs/<group>.in is locked for these


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
    return sorted(p.stem for p in ENVS_DIR.glob("*.in") if "-dj" not in p.stem)


def _vkey(v: str) -> tuple:
    return tuple(int(p) for p in v.split(".") if p.isdigit())


def locked_pythons(group: str) -> list[str]:
    """The Pythons `group`'s default lock covers (each with that Python's default Django; the other
    Djangos of DJANGO_PYTHONS are their own locks, lock_file(group, python, django))."""
    return sorted((p.stem.rsplit("-py", 1)[1] for p in LOCK_DIR.glob(f"{group}-py*.txt")), key=_vkey)


def parse_django(value: str | None) -> str | None:
    """--django X.Y (or X for the one X.Y of that major in the table, e.g. 6 -> 6.1); None = the default."""
    if not value:
        return None
    v = value.strip()
    parts = v.split(".")
    xy = ".".join(parts[:2])
    if xy in DJANGO_PYTHONS:
        return xy
    same_major = [d for d in DJANGO_VERSIONS if d.split(".")[0] == parts[0]]
    if len(parts) == 1 and len(same_major) == 1:
        return same_major[0]
    raise UsageError(f"--django {value}: choose one of {', '.join(DJANGO_VERSIONS)}")


def _locked_version(path: Path, package: str) -> str | None:
    m = re.search(rf"^{re.escape(package)}==(\S+)", path.read_text(), re.M | re.I) if path.exists() else None
    return m.group(1) if m else None


def default_django(python_version: str) -> str | None:
    """The Django a Python gets without --django: the one its default lock holds, else the newest the
    table allows on it (3.6/3.7: 3.2); None when no Django runs on it."""
    v = _locked_version(LOCK_DIR / f"django-py{python_version}.txt", "django")
    if v:
        return ".".join(v.split(".")[:2])
    ok = [d for d, pys in DJANGO_PYTHONS.items() if python_version in pys]
    return ok[-1] if ok else None


def check_django(django: str, python_version: str) -> None:
    """One line, exit 2, when Django `django` does not run on Python `python_version` upstream."""
    pys = DJANGO_PYTHONS[django]
    if python_version not in pys:
        raise UsageError(f"Django {django} supports Python {pys[0]}-{pys[-1]}, not {python_version} "
                         f"(Python {python_version} runs Django "
                         f"{', '.join(d for d, p in DJANGO_PYTHONS.items() if python_version in p) or 'none of ours'})")


def lock_name(group: str, django: str | None, python_version: str) -> str:
    """The lock file name of (group, Django, Python): the default lock when `django` is that Python's
    default (or the group has no Django), else <group>-dj<D>-py<P>.txt."""
    if group not in DJANGO_GROUPS or django is None or django == _default_lock_django(group, python_version):
        return f"{group}-py{python_version}.txt"
    return f"{group}-dj{django}-py{python_version}.txt"


def _default_lock_django(group: str, python_version: str) -> str | None:
    v = _locked_version(LOCK_DIR / f"{group}-py{python_version}.txt", "django")
    return ".".join(v.split(".")[:2]) if v else None


def lock_plan() -> list[tuple[str, str, str]]:
    """(envs/<in>, Python, envs/lock/<out>) for every lock `make lock` compiles: each group's default
    lock per DEFAULT_PYTHONS, then each Django group x (Django, Python) of DJANGO_PYTHONS that is not
    that Python's default Django (runner locks are compiled by the Makefile itself)."""
    out = [(f"envs/{g}.in", py, f"envs/lock/{g}-py{py}.txt")
           for g in groups() if g != "runner" for py in DEFAULT_PYTHONS]
    for g in DJANGO_GROUPS:
        for dj, pys in DJANGO_PYTHONS.items():
            for py in pys:
                if py in DEFAULT_PYTHONS and default_django(py) == dj:
                    continue
                out.append((f"envs/{g}-dj{dj}.in", py, f"envs/lock/{g}-dj{dj}-py{py}.txt"))
    return out


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


def lock_file(group: str, python_version: str, django: str | None = None) -> Path:
    """The committed pins of `group` for `python_version` and Django `django` (None: the default lock
    <group>-py<P>.txt, which Python 3.6/3.7 do not have: policy.row_django names their default Django);
    a usage error, one line, when there are none."""
    if group not in groups():
        raise UsageError(f"unknown env group {group!r} (have: {', '.join(groups())})")
    if group in DJANGO_GROUPS and django is not None:
        check_django(django, python_version)
    lock = LOCK_DIR / lock_name(group, django, python_version)
    if not lock.exists():
        have = ", ".join(locked_pythons(group)) or "none"
        dj = f", Django {django}" if group in DJANGO_GROUPS and django else ""
        planned = any(out.endswith("/" + lock.name) for _, _, out in lock_plan())
        hint = f"`make lock` writes {lock.name}" if planned else f"default locks: Python {have}"
        raise UsageError(f"env group {group!r} has no locked pins for Python {python_version}{dj} ({hint})")
    return lock


def locked_packages(lock: Path) -> dict:
    """name -> version of a lock file (what the env will hold, known before it is built)."""
    pkgs = {}
    for line in lock.read_text().splitlines():
        if "==" in line and not line.lstrip().startswith("#"):
            name, version = line.split(";")[0].strip().split("==", 1)
            pkgs[_norm(name.split("[")[0])] = version.strip()
    return pkgs


def ensure(group: str, python_version: str, *, quiet: bool = False, django: str | None = None) -> Env:
    """Create (or reuse) the venv for `group` on `python_version` (Django `django`) and return it."""
    lock = lock_file(group, python_version, django)
    path = VENVS_DIR / lock.stem
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
