"""Server step: the command line a row describes, started in its own process group on 127.0.0.1,
ready when its I/O probe answers from the database, stopped (the whole group) at the end."""
from __future__ import annotations

import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from asgibench import apps, procs
from asgibench.errors import RunError
from asgibench.variants import Variant


@dataclass
class ServerSpec:
    """Everything that decides how one server process runs (recorded in meta.json)."""

    variant: Variant
    env: object  # envs.Env
    port: int
    workers: int
    db_conn: str
    pool_size: int
    database_url: str

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return build_command(self.variant, bin_dir=self.env.bin, host="127.0.0.1", port=self.port,
                             workers=self.workers, gunicorn_version=self.env.version("gunicorn"))

    def environment(self) -> dict:
        return apps.base_env(
            self.env,
            database_url=self.database_url,
            extra={
                "ASGIBENCH_DB_CONN": self.db_conn,
                "ASGIBENCH_POOL_SIZE": str(self.pool_size),
                "ASGIBENCH_PG_DRIVER": self.variant.pg_driver,
                **self.variant.env_vars,
            },
        )


def build_command(v: Variant, *, bin_dir, host: str, port: int, workers: int, gunicorn_version: tuple = ()) -> list[str]:
    """The server command line a row describes. One builder per server; the local runner (bin_dir =
    the env's bin, host 127.0.0.1) and compose/ (bin_dir "", host 0.0.0.0 inside a container) share it."""
    def exe(name):
        return f"{bin_dir}/{name}" if bin_dir else name

    bind = f"{host}:{port}"
    if v.server == "gunicorn":
        cmd = [exe("gunicorn"), v.app, "--bind", bind, "--workers", workers,
               "--worker-class", v.worker or "sync", "--graceful-timeout", "5", "--timeout", "120",
               "--error-logfile", "-", "--log-level", "warning"]
        if gunicorn_version >= (25,):
            cmd.append("--no-control-socket")  # 25+ otherwise creates a control socket in ~/.gunicorn
    elif v.server == "uvicorn":
        cmd = [exe("uvicorn"), v.app, "--host", host, "--port", port, "--workers", workers,
               "--no-access-log", "--log-level", "warning", "--lifespan", "auto"]
        if v.interface == "wsgi":
            cmd += ["--interface", "wsgi"]
    elif v.server == "hypercorn":
        cmd = [exe("hypercorn"), v.app, "--bind", bind, "--workers", workers, "--log-level", "warning"]
    elif v.server == "daphne":
        cmd = [exe("daphne"), "-b", host, "-p", port, "-v", "0", v.app]  # one process, no workers option
    elif v.server == "granian":
        cmd = [exe("granian"), "--interface", v.interface, "--host", host, "--port", port,
               "--workers", workers, "--log-level", "warning", v.app]
    else:  # pragma: no cover - the registry validates servers
        raise RunError(f"no command builder for server {v.server!r}")
    return [str(c) for c in cmd] + list(v.extra_args)


def wait_ready(url: str, timeout: float, *, interval: float = 1.0, alive=lambda: True, waiting=None) -> str | None:
    """Poll `url` until it answers 200. None when ready; else "exited" (alive() turned false) or the
    last problem seen. waiting(last) is called every 15 s while it waits (for a progress line)."""
    deadline = time.monotonic() + timeout
    last, told = "no answer", time.monotonic()
    while time.monotonic() < deadline:
        if not alive():
            return "exited"
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return None
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code} from {url}"
        except (urllib.error.URLError, OSError) as e:
            last = str(getattr(e, "reason", e))
        if waiting and time.monotonic() - told > 15:
            waiting(last)
            told = time.monotonic()
        time.sleep(interval)
    return last


class Server:
    def __init__(self, spec: ServerSpec, log_path: Path, cpus=None):
        self.spec, self.log_path, self.cpus = spec, log_path, cpus
        self.proc: subprocess.Popen | None = None

    def start(self, ready_timeout: float = 60.0) -> None:
        self.proc = procs.spawn(self.spec.command(), log_path=self.log_path, env=self.spec.environment(),
                                cwd=apps.DJANGO_DIR, cpus=self.cpus)
        probe = f"{self.spec.base_url}{self.spec.variant.io_probe}?seconds=0"
        problem = wait_ready(probe, ready_timeout, interval=0.2, alive=lambda: self.proc.poll() is None)
        if problem == "exited":
            raise RunError(f"server {self.spec.variant.name} exited during start-up (code {self.proc.returncode}): "
                           f"{self.log_tail()}")
        if problem:
            raise RunError(f"server {self.spec.variant.name} not ready after {ready_timeout:.0f}s ({problem}): "
                           f"{self.log_tail()}")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server's process and its workers (for CPU accounting)."""
        import psutil

        if not self.alive():
            return []
        try:
            p = psutil.Process(self.proc.pid)
            return [p.pid] + [c.pid for c in p.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def stop(self) -> int | None:
        return procs.stop(self.proc)

    def log_tail(self, n: int = 1) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no server log)"
        if any("Address already in use" in ln or "address already in use" in ln.lower() for ln in lines):
            return f"port 127.0.0.1:{self.spec.port} is taken"
        return " | ".join(lines[-n:]) if lines else "(empty server log)"
