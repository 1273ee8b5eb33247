"""The original's django-with-fastapi-mounted-asgi: an ASGI router sending /slowapi to the slowapi
FastAPI app and everything else to Django's ASGI app."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before the FastAPI app imports models

import benchcontract
from slowapi_app.main import app as slowapi

PREFIX = benchcontract.SLOWAPI_MOUNT


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        # Django's ASGI handler refuses lifespan; FastAPI runs it (startup/shutdown hooks, none today).
        return await slowapi(scope, receive, send)
    path = scope["path"]
    if path == PREFIX or path.startswith(PREFIX + "/"):
        # The Starlette Mount convention: `path` stays whole, `root_path` gains the mount point.
        scope = dict(scope, root_path=scope.get("root_path", "") + PREFIX)
        return await slowapi(scope, receive, send)
    return await django_application(scope, receive, send)
