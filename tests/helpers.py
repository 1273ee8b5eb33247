"""Helpers the tests share (import them from here, not from conftest): run the CLI as a user would,
find a run folder, read its meta.json."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from asgibench import ROOT, envs

PY = envs.current_python()


def cli(*args, results: Path | None = None, env: dict | None = None, timeout: float = 300, **kw):
    """Run `python -m asgibench ...` as a user would; returns CompletedProcess (text)."""
    e = dict(os.environ)
    if results is not None:
        e["ASGIBENCH_RESULTS"] = str(results)
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "asgibench", *args], cwd=ROOT, env=e, capture_output=True,
                          text=True, timeout=timeout, **kw)


def cli_watched(args: list, env: dict, watcher_of, timeout: float = 240) -> tuple[int, str, str]:
    """`python -m asgibench *args` as a user runs it, while the test's own /proc instrument watches it:
    watcher_of(pid) makes a thread with a `halt` event, started before and stopped (and joined) after
    the command, also when it times out (then it is killed). Returns (exit code, stdout, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "asgibench", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watcher = watcher_of(proc.pid)
    watcher.start()
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        watcher.halt.set()
        watcher.join(5)
    return proc.returncode, out, err


def only_run_dir(results: Path, variant: str) -> Path:
    dirs = [p for p in (results / variant).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


def skip_unless_ci(reason: str) -> None:
    """Skip, saying why; on CI (CI=true) fail instead: CI is set up to run every test it can, so a
    missing prerequisite there is a broken CI, not a reason to pass quietly."""
    import pytest

    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: this test must run, not skip ({reason})")
    pytest.skip(reason)


def locust_function(module: str, name: str):
    """A top-level function of Locust's own source (e.g. stats.calculate_response_time_percentile),
    compiled from the installed file without importing the locust package: importing it gevent-patches
    the whole process. For tests that check the suite against Locust's definitions."""
    import ast
    import importlib.util

    path = Path(importlib.util.find_spec("locust").origin).parent / f"{module}.py"
    tree = ast.parse(path.read_text())
    (node,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name]
    namespace: dict = {}
    exec(compile(ast.Module(body=[node], type_ignores=[]), str(path), "exec"), namespace)
    return namespace[name]


def interrupt(proc: subprocess.Popen, timeout: float) -> tuple[str, str]:
    """Ctrl-C a running asgibench command as a user would; (stdout, stderr) once it exited. A process
    that does not exit within `timeout` is killed (and the test's assertions on its exit code fail)."""
    import signal

    try:
        proc.send_signal(signal.SIGINT)
        return proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def kill_all(procs: list, timeout: float) -> None:
    """Fixture teardown: SIGKILL whichever of the test's own subprocesses is still running, then reap each."""
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout)
