"""Server step: the command line a row describes, started in its own process group on 127.0.0.1,
ready when its I/O probe answers from the database, stopped (the whole group) at the end; or a
server someone else runs (--target), checked for loopback and reachability and never stopped.

Both kinds answer the one interface the pipeline and the load step use, so nothing downstream asks
which kind it has:
  base_url, static_root (what the contract check may compare static files with), describe() (the
  progress line), record() (meta.json's "server"), start(), stop(), alive(), pids(), log_tail().
A new server program needs a branch in build_command; a new kind of server, a class with that
interface. Loopback decisions, for --target, --master-bind and `asgibench worker`, are `loopback`.
"""
from __future__ import annotations

import ipaddress
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from asgibench import apps, procs
from asgibench.errors import RunError, UsageError
from asgibench.variants import UVICORN_WORKER, Variant


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
    db_conn_source: str = "row default"  # why db_conn (policy.resolve_db_conn): recorded beside it

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return build_command(self.variant, bin_dir=self.env.bin, host="127.0.0.1", port=self.port,
                             workers=self.workers, gunicorn_version=self.env.version("gunicorn"),
                             uvicorn_worker=self.env.has("uvicorn-worker"))

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


def build_command(v: Variant, *, bin_dir, host: str, port: int, workers: int,
                  gunicorn_version: tuple = (), uvicorn_worker: bool = True) -> list[str]:
    """The server command line a row describes. One builder per server; the local runner (bin_dir =
    the env's bin, host 127.0.0.1) and compose/ (bin_dir "", host 0.0.0.0 inside a container) share it.
    `uvicorn_worker`: the env holds the uvicorn-worker package (Python >= 3.8); without it, gunicorn's
    -k is uvicorn's own (deprecated) uvicorn.workers.UvicornWorker, as teams on Django 3.2 ran it."""
    def exe(name):
        return f"{bin_dir}/{name}" if bin_dir else name

    bind = f"{host}:{port}"
    if v.server == "gunicorn":
        cmd = [exe("gunicorn"), v.app, "--bind", bind, "--workers", workers,
               "--worker-class", _worker_class(v.worker, uvicorn_worker), "--graceful-timeout", "5", "--timeout", "120",
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


def _worker_class(worker: str, uvicorn_worker: bool) -> str:
    if worker == UVICORN_WORKER and not uvicorn_worker:
        return "uvicorn.workers.UvicornWorker"
    return worker or "sync"


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
    """A server asgibench starts from a ServerSpec, and stops."""

    def __init__(self, spec: ServerSpec, log_path: Path, cpus=None):
        self.spec, self.log_path, self.cpus = spec, log_path, cpus
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        return self.spec.base_url

    @property
    def static_root(self) -> Path:
        """The env's collectstatic output: the files the server's /static/ must serve."""
        return self.spec.env.static_root

    def describe(self) -> str:
        spec = self.spec
        return (f"{' '.join(spec.command()[:1])} ... ({spec.workers} worker(s), db {spec.db_conn}) "
                f"on {spec.base_url}")

    def record(self) -> dict:
        spec = self.spec
        return {"external": False, "command": spec.command(), "workers": spec.workers, "port": spec.port,
                "db_conn": spec.db_conn, "db_conn_source": spec.db_conn_source,
                "pool_size_per_worker": spec.pool_size if spec.db_conn == "pool" or spec.variant.own_pool else None,
                "pg_driver": spec.variant.pg_driver}

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

    def stop(self, grace: float = 10.0) -> int | None:
        return procs.stop(self.proc, grace=grace)

    def log_tail(self, n: int = 1) -> str:
        try:
            lines = [ln for ln in self.log_path.read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return "(no server log)"
        if any("Address already in use" in ln or "address already in use" in ln.lower() for ln in lines):
            return f"port 127.0.0.1:{self.spec.port} is taken"
        return " | ".join(lines[-n:]) if lines else "(empty server log)"


class ExternalServer:
    """A server asgibench did not start (--target): it must accept connections when the run begins
    (RunError otherwise), is alive while it does, and is never stopped by us."""

    static_root = None  # its static files are its own business: the contract check skips them

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        u = urlsplit(self.base_url)
        self.host, self.port = u.hostname, u.port or 80
        if not self.alive():
            raise RunError(f"target {self.base_url} does not accept connections")

    def describe(self) -> str:
        return f"external {self.base_url} (not started by asgibench)"

    def record(self) -> dict:
        return {"external": True, "url": self.base_url}

    def start(self) -> None:
        """Someone else started it."""

    def stop(self, grace: float = 0.0) -> None:
        """Someone else stops it."""

    def alive(self) -> bool:
        try:
            socket.create_connection((self.host, self.port), timeout=2).close()
            return True
        except OSError:
            return False

    def pids(self) -> list[int]:
        return []

    def log_tail(self) -> str:
        return f"{self.base_url} stopped accepting connections"


def loopback(host: str) -> bool | None:
    """Whether `host` resolves to a loopback address; None when it does not resolve."""
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return None


def check_target(target: str, allow_remote: bool) -> str:
    """--target as a base URL (no trailing /); another host only with --allow-remote."""
    u = urlsplit(target)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError(f"--target must be a URL like http://127.0.0.1:8000, got {target!r}")
    if not loopback(u.hostname) and not allow_remote:
        raise UsageError(f"--target {u.hostname} is not a loopback address: add --allow-remote to load another host")
    return target.rstrip("/")
