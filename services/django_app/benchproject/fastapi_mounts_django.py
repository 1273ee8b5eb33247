"""The original's fastapi-with-django-mounted-asgi: a FastAPI app serving the slowapi routes itself
(at /slowapi/slowapi/..., the paths of the other slowapi rows) with Django's ASGI app mounted at "/"."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

from django.core.asgi import get_asgi_application

django_application = get_asgi_application()  # sets Django up before the FastAPI app imports models

import benchcontract
from fastapi import FastAPI
from slowapi_app.main import router as slowapi_router

# No /docs, /redoc, /openapi.json: they would shadow Django's URL space.
app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
app.include_router(slowapi_router, prefix=benchcontract.SLOWAPI_MOUNT)  # as if mounted there
app.mount("/", django_application)
