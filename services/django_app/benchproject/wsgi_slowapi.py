"""The original's "keep the legacy WSGI app, mount FastAPI at /slowapi": Django (WSGI) everywhere,
the slowapi FastAPI app (ASGI, adapted by a2wsgi) under /slowapi."""
import benchcontract
from a2wsgi import ASGIMiddleware
from slowapi_app.main import app as slowapi
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from benchproject.greenloop import start_loop
from benchproject.wsgi import application as django_application

# start_loop(): a2wsgi's own loop thread would break Django under gevent/eventlet (see greenloop).
application = DispatcherMiddleware(
    django_application, {benchcontract.SLOWAPI_MOUNT: ASGIMiddleware(slowapi, loop=start_loop())})
