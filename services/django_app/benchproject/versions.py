"""Where the app differs by Django version: each difference is one flag here, named by the release that
brought it, and the code that depends on it asks this module (never django.VERSION directly).
The same JSON is served on every supported Django (2.2, 3.2, 4.2, 5.2, 6.x); Python 3.6 syntax.

  ASGI         Django 3.0: django.core.asgi and asgiref (2.2 has neither: asgiref is not even installed)
  ASYNC_VIEWS  Django 3.1: `async def` views; before, /async_api/ is not routed
  ASYNC_ORM    Django 4.1: QuerySet.acount() and `async for`; before, the async views reach the sync ORM
               through sync_to_async, as the original study did on 3.2
  PSYCOPG3     Django 4.2: the psycopg 3 backend; before, psycopg2 whatever the row asks
  POOL         Django 5.1: DATABASES OPTIONS["pool"] (psycopg 3's pool)
  AUTH_0012    Django 3.1: auth's migration 0012 (first_name max_length 150), the app's migration's
               dependency; 2.2 ends at 0011
"""
import django

VERSION = django.VERSION[:2]
ASGI = VERSION >= (3, 0)
ASYNC_VIEWS = VERSION >= (3, 1)
ASYNC_ORM = VERSION >= (4, 1)
PSYCOPG3 = VERSION >= (4, 2)
POOL = VERSION >= (5, 1)
AUTH_0012 = VERSION >= (3, 1)
