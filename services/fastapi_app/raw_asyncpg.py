"""The ceiling reference: no framework, a bare ASGI callable + an asyncpg pool + orjson.

Same queries as an ORM with eager loading (count, page, one query per M2M), so the gap to the other
rows is the framework + ORM overhead. Serve with `uvicorn --loop uvloop --http httptools` or granian.
The loaders and `sleep` are reused by fastapi_asyncpg.
"""
import asyncio
from urllib.parse import parse_qsl

import asyncpg
import benchcontract as bc
import orjson

from . import common

SQL = common.SQL("$1", "$2")
_pool = None
_pool_lock = None


async def pool():
    """The process's pool: created on lifespan startup, or on the first request without lifespan."""
    global _pool, _pool_lock
    if _pool is None:
        if _pool_lock is None:
            _pool_lock = asyncio.Lock()  # created inside the running loop (Python 3.8/3.9 bind at creation)
        async with _pool_lock:
            if _pool is None:
                _pool = await asyncpg.create_pool(
                    common.database_url(), min_size=1, max_size=common.POOL_SIZE, timeout=common.POOL_TIMEOUT
                )
    return _pool


async def close_pool():
    global _pool
    if _pool is not None:
        await _pool.close()
        _pool = None


async def clowncollege(page):
    async with (await pool()).acquire() as con:
        offset = page.bounds(await con.fetchval(SQL.count_colleges))
        rows = await con.fetch(SQL.college_page, bc.PAGE_SIZE, offset)
    return [common.college_from_row(r) for r in rows]


async def troupe(page):
    async with (await pool()).acquire() as con:
        offset = page.bounds(await con.fetchval(SQL.count_troupes))
        troupes = await con.fetch(SQL.troupe_page, bc.PAGE_SIZE, offset)
        ids = [t[0] for t in troupes]
        clowns = await con.fetch(SQL.clowns, ids)
        acrobats = await con.fetch(SQL.acrobats, ids)
    return common.troupes_from_rows(troupes, clowns, acrobats)


async def sleep(seconds):
    return await (await pool()).fetchval(SQL.sleep, seconds, column=1)


# --- the ASGI callable ----------------------------------------------------------------------------
def _list(load):
    async def handle(scope):
        try:
            page = common.Page(scope)
            results = await load(page)
        except common.InvalidPage:
            return 404, common.INVALID_PAGE
        return 200, page.body(results)
    return handle


async def _honk(scope):
    return 200, bc.SLOWAPI_MESSAGE


async def _probe(scope):
    raw = None
    for key, value in parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True):
        if key == bc.SLEEP_PARAM:
            raw = value
    try:
        seconds = common.parse_seconds(raw)
    except ValueError as exc:
        return 400, {"detail": str(exc)}
    return 200, {"slept": await sleep(seconds)}


ROUTES = {
    bc.API_PREFIX + "clowncollege/": _list(clowncollege),
    bc.API_PREFIX + "troupe/": _list(troupe),
    bc.SLOWAPI_PATH: _honk,
    bc.SLOWAPI_SLEEP_PATH: _probe,
}


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                await pool()
            except Exception as exc:  # noqa: BLE001 -- reported to the server, which exits
                await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close_pool()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        return await _lifespan(receive, send)
    if scope["type"] != "http":
        return
    handler = ROUTES.get(scope["path"])
    if handler is None:
        status, body = 404, {"detail": "Not Found"}
    elif scope["method"] not in ("GET", "HEAD"):
        status, body = 405, {"detail": "Method Not Allowed"}
    else:
        status, body = await handler(scope)
    data = orjson.dumps(body)
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
    })
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else data})
