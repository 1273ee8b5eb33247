"""fastapi-sqlalchemy-async: SQLAlchemy 2.x asyncio ORM on asyncpg, mapped onto Django's tables.

Django's multi-table inheritance (auth_user <- circus_performermixin <- circus_clown/acrobat) is
SQLAlchemy's joined-table inheritance; every relation is lazy="raise" so a missed eager load fails
loudly instead of turning into N+1 queries.
"""
from contextlib import asynccontextmanager

import benchcontract as bc
from sqlalchemy import Column, ForeignKey, Integer, String, Table, func, select, text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase, joinedload, mapped_column, relationship, selectinload

from . import common

T = bc.TABLES


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = T["user"]
    id = mapped_column(Integer, primary_key=True)
    first_name = mapped_column(String)
    last_name = mapped_column(String)


class Performer(User):
    __tablename__ = T["performer"]
    user_ptr_id = mapped_column(Integer, ForeignKey(User.id), primary_key=True)
    stage_name = mapped_column(String, nullable=True)


class Clown(Performer):
    __tablename__ = T["clown"]
    performermixin_ptr_id = mapped_column(Integer, ForeignKey(Performer.user_ptr_id), primary_key=True)
    concentration = mapped_column(String)


class Acrobat(Performer):
    __tablename__ = T["acrobat"]
    performermixin_ptr_id = mapped_column(Integer, ForeignKey(Performer.user_ptr_id), primary_key=True)
    concentration = mapped_column(String)


def _m2m(kind, model):
    return Table(T["troupe_" + kind + "s"], Base.metadata,
                 Column("id", Integer, primary_key=True),
                 Column("troupe_id", ForeignKey(T["troupe"] + ".id")),
                 Column(kind + "_id", ForeignKey(model.performermixin_ptr_id)))


troupe_clowns = _m2m("clown", Clown)
troupe_acrobats = _m2m("acrobat", Acrobat)


class Troupe(Base):
    __tablename__ = T["troupe"]
    id = mapped_column(Integer, primary_key=True)
    name = mapped_column(String)
    clowns = relationship(Clown, secondary=troupe_clowns, order_by=Clown.id, lazy="raise")
    acrobats = relationship(Acrobat, secondary=troupe_acrobats, order_by=Acrobat.id, lazy="raise")


class Location(Base):
    __tablename__ = T["location"]
    id = mapped_column(Integer, primary_key=True)
    line_1 = mapped_column(String)
    line_2 = mapped_column(String)
    line_3 = mapped_column(String)
    zipcode = mapped_column(String)


class ClownCollege(Base):
    __tablename__ = T["clowncollege"]
    id = mapped_column(Integer, primary_key=True)
    name = mapped_column(String)
    location_id = mapped_column(Integer, ForeignKey(Location.id))
    troupe_id = mapped_column(Integer, ForeignKey(Troupe.id))
    location = relationship(Location, lazy="raise")
    troupe = relationship(Troupe, lazy="raise")


engine = None
Session = None


@asynccontextmanager
async def lifespan(app):
    global engine, Session
    engine = create_async_engine(common.database_url("postgresql+asyncpg"), pool_size=common.POOL_SIZE,
                                 max_overflow=0, pool_timeout=common.POOL_TIMEOUT)
    Session = async_sessionmaker(engine, expire_on_commit=False)
    yield
    await engine.dispose()


async def clowncollege(page):
    async with Session() as s:
        offset = page.bounds(await s.scalar(select(func.count()).select_from(ClownCollege)))
        rows = await s.scalars(
            select(ClownCollege)
            .options(joinedload(ClownCollege.location, innerjoin=True), joinedload(ClownCollege.troupe, innerjoin=True))
            .order_by(ClownCollege.id).limit(bc.PAGE_SIZE).offset(offset)
        )
        return [common.college(c, c.location, c.troupe) for c in rows]


async def troupe(page):
    async with Session() as s:
        offset = page.bounds(await s.scalar(select(func.count()).select_from(Troupe)))
        rows = await s.scalars(
            select(Troupe).options(selectinload(Troupe.clowns), selectinload(Troupe.acrobats))
            .order_by(Troupe.id).limit(bc.PAGE_SIZE).offset(offset)
        )
        return [common.troupe(t, t.clowns, t.acrobats) for t in rows]


async def sleep(seconds):
    async with engine.connect() as conn:
        result = await conn.execute(text("SELECT pg_sleep(:s), CAST(:s AS float8)"), {"s": seconds})
        return result.one()[1]


app = common.fastapi_app(clowncollege, troupe, sleep, lifespan=lifespan, title="fastapi-sqlalchemy-async")
