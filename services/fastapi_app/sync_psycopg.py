"""fastapi-sync: plain `def` endpoints (FastAPI runs them on its 40-thread pool) on psycopg 3.

psycopg_pool.ConnectionPool is bounded and WAITS (up to POOL_TIMEOUT) when all connections are out, so
40 threads on a pool of ASGIBENCH_POOL_SIZE queue instead of failing (psycopg2's pools raise instead).
"""
from contextlib import asynccontextmanager

import benchcontract as bc
from psycopg_pool import ConnectionPool

from . import common

SQL = common.SQL("%s", "%s")
_pool = None


@asynccontextmanager
async def lifespan(app):
    global _pool
    # autocommit: reads need no BEGIN/COMMIT round trips (Django and asyncpg do the same)
    _pool = ConnectionPool(common.database_url(), min_size=1, max_size=common.POOL_SIZE,
                           timeout=common.POOL_TIMEOUT, kwargs={"autocommit": True}, open=True)
    _pool.wait()
    yield
    _pool.close()


def clowncollege(page):
    with _pool.connection() as con:
        offset = page.bounds(con.execute(SQL.count_colleges).fetchone()[0])
        rows = con.execute(SQL.college_page, (bc.PAGE_SIZE, offset)).fetchall()
    return [common.college_from_row(r) for r in rows]


def troupe(page):
    with _pool.connection() as con:
        offset = page.bounds(con.execute(SQL.count_troupes).fetchone()[0])
        troupes = con.execute(SQL.troupe_page, (bc.PAGE_SIZE, offset)).fetchall()
        ids = [t[0] for t in troupes]
        clowns = con.execute(SQL.clowns, (ids,)).fetchall()
        acrobats = con.execute(SQL.acrobats, (ids,)).fetchall()
    return common.troupes_from_rows(troupes, clowns, acrobats)


def sleep(seconds):
    with _pool.connection() as con:
        return con.execute(SQL.sleep, (seconds, seconds)).fetchone()[1]


app = common.fastapi_app(clowncollege, troupe, sleep, lifespan=lifespan, title="fastapi-sync")
