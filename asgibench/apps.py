"""Where the apps under test live and the environment every server process gets. Shared by the
env step (collectstatic), the database step (migrate, seed) and the server step (and compose, for
the image). A variable every app process needs goes in base_env; one row's own variables are its
env_vars in the registry (variants)."""
from __future__ import annotations

import os

from asgibench import ROOT

SERVICES_DIR = ROOT / "services"
DJANGO_DIR = SERVICES_DIR / "django_app"


def base_env(env, *, database_url: str, extra: dict | None = None) -> dict:
    """Environment for any process running app code from `env` (an envs.Env)."""
    out = {
        "PYTHONPATH": os.pathsep.join([str(SERVICES_DIR), str(DJANGO_DIR)]),
        "DJANGO_SETTINGS_MODULE": "benchproject.settings",
        "DATABASE_URL": database_url,
        "ASGIBENCH_STATIC_ROOT": str(env.static_root),
        "PYTHONUNBUFFERED": "1",
        "PATH": f"{env.bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "VIRTUAL_ENV": str(env.path),
    }
    out.update(extra or {})
    return out
