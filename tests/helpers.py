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


def only_run_dir(results: Path, variant: str) -> Path:
    dirs = [p for p in (results / variant).iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


def meta_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


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
