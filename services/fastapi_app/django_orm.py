"""fastapi-django-orm: FastAPI endpoints reading through Django's native async ORM (the circus models and
querysets of the DRF views), as the original's slowapi did with django-async-orm.

Env: DJANGO_SETTINGS_MODULE (default benchproject.settings), DATABASE_URL, ASGIBENCH_DB_CONN (pool needs
Django >= 5.1; use persistent or per-request on Django 4.2), ASGIBENCH_POOL_SIZE.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

import django

django.setup()

import benchcontract as bc
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from circus import probe, queries
from circus.models import ClownCollege, Troupe
from django.db import connections

from . import common


async def clowncollege(page):
    qs = queries.clowncolleges()
    offset = page.bounds(await qs.acount())
    return [common.college(c, c.location, c.troupe) async for c in qs[offset:offset + bc.PAGE_SIZE]]


async def troupe(page):
    qs = queries.troupes()
    offset = page.bounds(await qs.acount())
    # `async for` runs _fetch_all() (prefetch included) in one sync_to_async call
    rows = [t async for t in qs[offset:offset + bc.PAGE_SIZE]]
    return [common.troupe(t, t.clowns.all(), t.acrobats.all()) for t in rows]


async def sleep(seconds):
    return await sync_to_async(probe.pg_sleep)(seconds)


def django_async_orm_router():
    """bc.SLOWAPI_ORM_PATH -> {"clowncollege_count", "troupe_count"} (bc.SLOWAPI_ORM_KEYS) via acount()."""
    from fastapi import APIRouter
    router = APIRouter()
    colleges, troupes = bc.SLOWAPI_ORM_KEYS

    @router.get(bc.SLOWAPI_ORM_PATH)
    async def counts():
        return common.json_response({colleges: await ClownCollege.objects.acount(),
                                     troupes: await Troupe.objects.acount()})
    return router


class DjangoRequestScope:
    """What Django's ASGIHandler does around a request, which FastAPI does not.

    Without a ThreadSensitiveContext every sync_to_async(thread_sensitive=True) call of every request
    (i.e. every async ORM query) runs on ONE shared thread, so requests serialize on the database.
    With it, each request gets its own thread and so its own Django connection, which must go back to
    the pool when the request ends (Django's request_finished does that; FastAPI sends no such signal).
    The thread dies with the request, so a persistent (CONN_MAX_AGE > 0) connection is closed too
    rather than left to the garbage collector.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        async with ThreadSensitiveContext():
            try:
                await self.app(scope, receive, send)
            finally:
                await sync_to_async(connections.close_all)()


app = common.fastapi_app(clowncollege, troupe, sleep, title="fastapi-django-orm", routers=[django_async_orm_router()])
app.add_middleware(DjangoRequestScope)
