"""fastapi-tortoise: Tortoise ORM models on Django's tables (Python >= 3.10), no schema generation.

Tortoise has no multi-table inheritance, so there is one model per table: auth_user, circus_performermixin,
circus_clown/acrobat and the M2M tables. A troupe page prefetches its M2M rows with the performer chain
select_related in the same query (4 queries per page, as with SQLAlchemy's selectinload).
"""
from contextlib import asynccontextmanager

import benchcontract as bc
from tortoise import connections, fields
from tortoise.contrib.fastapi import RegisterTortoise
from tortoise.models import Model
from tortoise.query_utils import Prefetch

from . import common

T = bc.TABLES


class User(Model):
    id = fields.IntField(primary_key=True)
    first_name = fields.CharField(150)
    last_name = fields.CharField(150)

    class Meta:
        table = T["user"]


# Tortoise 1.1 ignores source_field on a primary-key OneToOneField (it then queries "user_id" and its M2M
# prefetch breaks), so the parent link column is mapped twice: an IntField pk and a plain OneToOneField.
# The pk attribute stays unset on loaded rows; nothing here reads it.
class Performer(Model):
    id = fields.IntField(primary_key=True, source_field="user_ptr_id")
    user = fields.OneToOneField("models.User", source_field="user_ptr_id", related_name=False)
    stage_name = fields.CharField(50, null=True)

    class Meta:
        table = T["performer"]


class Clown(Model):
    id = fields.IntField(primary_key=True, source_field="performermixin_ptr_id")
    performer = fields.OneToOneField("models.Performer", source_field="performermixin_ptr_id", related_name=False)
    concentration = fields.CharField(50)

    class Meta:
        table = T["clown"]


class Acrobat(Model):
    id = fields.IntField(primary_key=True, source_field="performermixin_ptr_id")
    performer = fields.OneToOneField("models.Performer", source_field="performermixin_ptr_id", related_name=False)
    concentration = fields.CharField(50)

    class Meta:
        table = T["acrobat"]


class Troupe(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(100)

    class Meta:
        table = T["troupe"]


# The M2M rows; `member` is the clown/acrobat, so one function serializes both kinds.
class TroupeClown(Model):
    id = fields.IntField(primary_key=True)
    troupe = fields.ForeignKeyField("models.Troupe", related_name="clown_links")
    member = fields.ForeignKeyField("models.Clown", source_field="clown_id", related_name=False)

    class Meta:
        table = T["troupe_clowns"]


class TroupeAcrobat(Model):
    id = fields.IntField(primary_key=True)
    troupe = fields.ForeignKeyField("models.Troupe", related_name="acrobat_links")
    member = fields.ForeignKeyField("models.Acrobat", source_field="acrobat_id", related_name=False)

    class Meta:
        table = T["troupe_acrobats"]


class Location(Model):
    id = fields.IntField(primary_key=True)
    line_1 = fields.CharField(50)
    line_2 = fields.CharField(50)
    line_3 = fields.CharField(50)
    zipcode = fields.CharField(50)

    class Meta:
        table = T["location"]


class ClownCollege(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(100)
    location = fields.ForeignKeyField("models.Location", related_name=False)
    troupe = fields.ForeignKeyField("models.Troupe", related_name=False)

    class Meta:
        table = T["clowncollege"]


@asynccontextmanager
async def lifespan(app):
    url = common.database_url("asyncpg")
    url += ("&" if "?" in url else "?") + f"minsize=1&maxsize={common.POOL_SIZE}"
    async with RegisterTortoise(app, db_url=url, modules={"models": [__name__]}):
        yield


async def clowncollege(page):
    offset = page.bounds(await ClownCollege.all().count())
    rows = await (ClownCollege.all().select_related("location", "troupe").order_by("id")
                  .offset(offset).limit(bc.PAGE_SIZE))
    return [common.college(c, c.location, c.troupe) for c in rows]


def _performer(link):
    kind = link.member
    return common.performer_from_parts({"user": kind.performer.user, "performer": kind.performer, "kind": kind})


async def troupe(page):
    offset = page.bounds(await Troupe.all().count())
    rows = await Troupe.all().order_by("id").offset(offset).limit(bc.PAGE_SIZE).prefetch_related(
        # a link's member_id is the performer's auth_user id: ordering by it orders by performer id
        Prefetch("clown_links", TroupeClown.all().select_related("member__performer__user").order_by("member_id")),
        Prefetch("acrobat_links", TroupeAcrobat.all().select_related("member__performer__user").order_by("member_id")),
    )
    return [common.troupe(t, t.clown_links, t.acrobat_links, performer=_performer) for t in rows]


async def sleep(seconds):
    _, rows = await connections.get("default").execute_query("SELECT pg_sleep($1), $1::float8", [seconds])
    return rows[0][1]


app = common.fastapi_app(clowncollege, troupe, sleep, lifespan=lifespan, title="fastapi-tortoise")
