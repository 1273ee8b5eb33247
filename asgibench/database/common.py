"""What every module of the database package shares: the database's names and server settings, the
embedded cluster's folder, ports and URLs, the hints the fault messages end with, and small helpers
(one-line error text, a redacted URL, waiting, signalling).

A new server setting goes in SETTINGS (the embedded cluster and compose/compose.yaml both use it); a
helper goes here only when two modules of the package need it, else beside its one user. Imports
nothing from the package (every other module may import it).
"""
from __future__ import annotations

import importlib.util
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

from asgibench import ROOT


def _lazy(name: str):
    """`name`, imported on first attribute access: psycopg's import costs ~0.5 s, and every CLI call
    (a refusal, `list`, `report`) imports this package without ever connecting."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


psycopg = _lazy("psycopg")  # the package's one psycopg (database modules import it from here)

DB_NAME = "asgibench"
DB_USER = "asgibench"
# Sized for the largest preset (asgi-with-static-gunicorn-w18: 18 workers x pool 4 = 72, and
# persistent-connection ASGI rows that open one connection per request thread) with room to spare.
SETTINGS = {
    "max_connections": "400",
    "shared_buffers": "256MB",
    # Logins write a session row per iteration; don't make them wait for fsync (reads dominate anyway).
    "synchronous_commit": "off",
}

STOP_HINT = "`make db-stop` (asgibench db stop) stops it"
RESET_HINT = ("`make db-reset` (asgibench db reset) stops it and deletes its data; the next run initialises a "
              "fresh cluster and reseeds it")


def pg_dir() -> Path:
    return Path(os.environ.get("ASGIBENCH_PG_DIR") or ROOT / ".asgibench" / "pg")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def url_for(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/{DB_NAME}"


def admin_url(port: int) -> str:
    return f"postgresql://{DB_USER}@127.0.0.1:{port}/postgres"


def first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__


def still_answering(e: BaseException) -> bool:
    """A refusal that proves the server is up (it answered), not gone."""
    msg = str(e)
    return "too many clients" in msg or "remaining connection slots" in msg


def users_text(users: list[dict], limit: int = 3) -> str:
    shown = ", ".join(f"pid {u['pid']} ({u['command']})" for u in users[:limit])
    return shown + (f" and {len(users) - limit} more" if len(users) > limit else "")


def redact(url: str) -> str:
    u = urlparse(url)
    if u.password:
        return url.replace(f":{u.password}@", ":***@")
    return url


def send_signal(pid: int, sig) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass
