"""fastapi-gino: GINO 1.0.1 (SQLAlchemy 1.3 core + asyncpg) on Django's tables; env group `gino`.

GINO has no relationships (nor inheritance): rows are joined in SQL and put together by loaders; the
performers of a page come in one query per kind (as a selectin load would) and are grouped here.
No gino-starlette (it pins starlette < 1.0): the engine is bound in FastAPI's lifespan.
"""
from contextlib import asynccontextmanager

import benchcontract as bc
from gino import Gino

from . import common

T = bc.TABLES
db = Gino()


class User(db.Model):
    __tablename__ = T["user"]
    id = db.Column(db.Integer, primary_key=True)
    first_name = db.Column(db.String)
    last_name = db.Column(db.String)


class Performer(db.Model):
    __tablename__ = T["performer"]
    user_ptr_id = db.Column(db.Integer, db.ForeignKey(User.id), primary_key=True)
    stage_name = db.Column(db.String, nullable=True)


class Clown(db.Model):
    __tablename__ = T["clown"]
    performermixin_ptr_id = db.Column(db.Integer, db.ForeignKey(Performer.user_ptr_id), primary_key=True)
    concentration = db.Column(db.String)


class Acrobat(db.Model):
    __tablename__ = T["acrobat"]
    performermixin_ptr_id = db.Column(db.Integer, db.ForeignKey(Performer.user_ptr_id), primary_key=True)
    concentration = db.Column(db.String)


class Troupe(db.Model):
    __tablename__ = T["troupe"]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String)


class TroupeClown(db.Model):
    __tablename__ = T["troupe_clowns"]
    id = db.Column(db.Integer, primary_key=True)
    troupe_id = db.Column(db.Integer, db.ForeignKey(Troupe.id))
    clown_id = db.Column(db.Integer, db.ForeignKey(Clown.performermixin_ptr_id))


class TroupeAcrobat(db.Model):
    __tablename__ = T["troupe_acrobats"]
    id = db.Column(db.Integer, primary_key=True)
    troupe_id = db.Column(db.Integer, db.ForeignKey(Troupe.id))
    acrobat_id = db.Column(db.Integer, db.ForeignKey(Acrobat.performermixin_ptr_id))


class Location(db.Model):
    __tablename__ = T["location"]
    id = db.Column(db.Integer, primary_key=True)
    line_1 = db.Column(db.String)
    line_2 = db.Column(db.String)
    line_3 = db.Column(db.String)
    zipcode = db.Column(db.String)


class ClownCollege(db.Model):
    __tablename__ = T["clowncollege"]
    id = db.Column(db.Integer, primary_key=True)
    name = db.Column(db.String)
    location_id = db.Column(db.Integer, db.ForeignKey(Location.id))
    troupe_id = db.Column(db.Integer, db.ForeignKey(Troupe.id))


@asynccontextmanager
async def lifespan(app):
    await db.set_bind(common.database_url(), min_size=1, max_size=common.POOL_SIZE)
    yield
    await db.pop_bind().close()


def _count(model):
    return db.select([db.func.count()]).select_from(model).gino.scalar()


async def clowncollege(page):
    async with db.acquire():  # every query of this request on one connection (GINO reuses it)
        offset = page.bounds(await _count(ClownCollege))
        rows = await (
            ClownCollege.join(Location).join(Troupe).select()
            .order_by(ClownCollege.id).limit(bc.PAGE_SIZE).offset(offset)
            .gino.load(ClownCollege.load(location=Location, troupe=Troupe)).all()
        )
    return [common.college(c, c.location, c.troupe) for c in rows]


# performer field -> its column in a parent table (the clown/acrobat's own fields load by themselves)
_PARENT_COLUMNS = {f: getattr({"user": User, "performer": Performer}[table], f)
                   for f, table in common.PERFORMER_TABLE.items() if table != "kind"}


async def _members(link, kind, ids):
    """{troupe_id: [clown or acrobat...]} for these troupes, ordered by performer id. One model instance
    per performer, the parent tables' fields loaded onto it (what an inheritance mapping would give)."""
    rows = await (
        link.join(kind).join(Performer).join(User).select()
        .where(link.troupe_id.in_(ids)).order_by(User.id)
        .gino.load((link.troupe_id, kind.load(**_PARENT_COLUMNS))).all()
    )
    members = {}
    for troupe_id, member in rows:
        members.setdefault(troupe_id, []).append(member)
    return members


async def troupe(page):
    async with db.acquire():
        offset = page.bounds(await _count(Troupe))
        rows = await Troupe.query.order_by(Troupe.id).limit(bc.PAGE_SIZE).offset(offset).gino.all()
        ids = [t.id for t in rows]
        clowns = await _members(TroupeClown, Clown, ids)
        acrobats = await _members(TroupeAcrobat, Acrobat, ids)
    return [common.troupe(t, clowns.get(t.id, ()), acrobats.get(t.id, ())) for t in rows]


async def sleep(seconds):
    return (await db.first(db.text("SELECT pg_sleep(:s), CAST(:s AS float8)"), s=seconds))[1]


app = common.fastapi_app(clowncollege, troupe, sleep, lifespan=lifespan, title="fastapi-gino")
