"""The original study's FastAPI "slowapi" app: its routes live under /slowapi/, and the entry modules
mount it at benchcontract.SLOWAPI_MOUNT (/slowapi), so clients see benchcontract's /slowapi/slowapi/...

  GET /slowapi/                    {"message": "Honk Honk"}
  GET /slowapi/sleep/?seconds=S    the I/O probe, through Django's DB connection (sync endpoint)
  GET /slowapi/django-async-orm/   {"clowncollege_count", "troupe_count"} via Django's async ORM

Django's request signals open/recycle/close DB connections around each request; FastAPI sends none,
so both DB endpoints call close_old_connections() before and after, in the thread that ran the queries,
which honours CONN_MAX_AGE and returns pooled connections to the psycopg 3 pool.
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchproject.settings")

import django
from django.apps import apps

if not apps.ready:  # the entry modules usually set Django up first; standalone use needs this
    django.setup()

import benchcontract
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from benchproject import versions
from circus import probe
from circus.models import ClownCollege, Troupe
from django.db import close_old_connections
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse


def _route(path):
    """A benchcontract path as a route of this app, which the entry modules mount at SLOWAPI_MOUNT."""
    return path[len(benchcontract.SLOWAPI_MOUNT):]


router = APIRouter()
_COLLEGES, _TROUPES = benchcontract.SLOWAPI_ORM_KEYS


@router.get(_route(benchcontract.SLOWAPI_PATH))
async def honk():
    return benchcontract.SLOWAPI_MESSAGE


@router.get(_route(benchcontract.SLOWAPI_SLEEP_PATH))
def sleep(request: Request):
    # A sync endpoint: FastAPI runs it in its thread pool, where Django's connection is per thread.
    try:
        value = probe.parse_seconds(request.query_params.get(benchcontract.SLEEP_PARAM))
    except ValueError as exc:
        return JSONResponse({"detail": str(exc)}, status_code=400)
    close_old_connections()
    try:
        return {"slept": probe.pg_sleep(value)}
    finally:
        close_old_connections()


@router.get(_route(benchcontract.SLOWAPI_ORM_PATH))
async def django_async_orm():
    # Like Django's ASGIHandler: one sync thread per request (without the context every request
    # would share asgiref's single global thread), with the connection checks inside it.
    async with ThreadSensitiveContext():
        await sync_to_async(close_old_connections)()
        try:
            if versions.ASYNC_ORM:
                return {
                    _COLLEGES: await ClownCollege.objects.acount(),
                    _TROUPES: await Troupe.objects.acount(),
                }
            # Django 3.2-4.0: no acount() (4.1), the sync ORM through sync_to_async as the study did
            return {
                _COLLEGES: await sync_to_async(ClownCollege.objects.count)(),
                _TROUPES: await sync_to_async(Troupe.objects.count)(),
            }
        finally:
            await sync_to_async(close_old_connections)()


app = FastAPI(title="slowapi")
app.include_router(router)
