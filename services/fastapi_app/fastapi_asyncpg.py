"""FastAPI + raw asyncpg (the raw app's queries and pool): the framework's own cost over the ceiling."""
from contextlib import asynccontextmanager

from . import common
from . import raw_asyncpg as raw


@asynccontextmanager
async def lifespan(app):
    await raw.pool()
    yield
    await raw.close_pool()


app = common.fastapi_app(raw.clowncollege, raw.troupe, raw.sleep, lifespan=lifespan, title="fastapi-asyncpg")
