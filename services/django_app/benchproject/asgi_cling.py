"""The original's uvicorn-wsgimiddleware-with-cling: Django's WSGI app behind dj-static's Cling
(serves STATIC_ROOT), adapted to ASGI by a2wsgi (a pool of 10 threads runs the WSGI app)."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
os.environ.setdefault("ASGIBENCH_STATIC_SERVER", "cling")

from a2wsgi import WSGIMiddleware
from dj_static import Cling
from django.core.wsgi import get_wsgi_application

application = WSGIMiddleware(Cling(get_wsgi_application()))
