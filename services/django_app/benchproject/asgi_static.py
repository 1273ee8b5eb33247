"""The original's asgi-with-static: Django's ASGI app wrapped in staticfiles' ASGIStaticFilesHandler,
which serves /static/ from the finders (app folders), so WhiteNoise is switched off."""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")
os.environ.setdefault("ASGIBENCH_STATIC_SERVER", "django")

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.core.asgi import get_asgi_application

application = ASGIStaticFilesHandler(get_asgi_application())
