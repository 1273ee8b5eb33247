"""Seed the circus: deterministic, idempotent, one transaction, `--scale N` multiplies every count.

At scale 1: 60 clown colleges, 40 troupes, 200 clowns, 120 acrobats (each troupe 3-8 clowns and 2-5
acrobats, each college one location and one troupe), plus the benchmark superuser from benchcontract.
Page 1 of both list endpoints therefore has a `next` link (PAGE_SIZE is 10).
"""
import random
import time

import benchcontract
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import User
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction

from circus.models import Acrobat, Clown, ClownCollege, Location, PerformerMixin, Troupe

SEED = 20240611  # fixed: the same --scale always yields the same rows (and, after a wipe, the same ids)

PER_SCALE = {"colleges": 60, "troupes": 40, "clowns": 200, "acrobats": 120}
CLOWNS_PER_TROUPE = (3, 8)
ACROBATS_PER_TROUPE = (2, 5)


def _words(text, sep=None):
    """Word lists are written as one string: easier to read and extend than a list of literals."""
    return tuple(text.split(sep))


FIRST_NAMES = _words(
    "Ada Alba Alma Amos Anna Arlo Beatrix Bruno Carmen Cecil Clara Dante Dora Edgar Edith Elio Elsa Enzo "
    "Esme Felix Flora Frida Gus Hazel Hugo Ida Igor Iris Ivan Jasper Juno Kit Lena Leo Lola Luca Mabel "
    "Marco Mila Milo Nell Nico Nina Olga Otto Pearl Pip Rosa Rufus Ruth Sal Stella Theo Tilda Uma Vera "
    "Viggo Wanda Willa Yara Zelda Zeno"
)
LAST_NAMES = _words(
    "Abbott Alvarez Baptiste Barnum Bellini Blanc Bouffon Carter Castellano Chaplin Costa Delacroix "
    "Dubois Esposito Fellini Fontaine Fratellini Garcia Grimaldi Hartmann Ivanova Jansen Keaton Kowalski "
    "Larsen Lecoq Lombardi Marceau Moreau Nakamura Novak Okafor Olsen Pagliacci Petrov Quinn Ricci "
    "Rossi Santos Schmidt Silva Tati Torres Vargas Wallenda Weber Yilmaz Zavatta Zielinski"
)
STAGE_ADJECTIVES = _words(
    "Amazing Bouncy Dazzling Fabulous Giggly Grand Great Incredible Jolly Little Magnificent Marvelous "
    "Mighty Mysterious Sparkly Topsy Wobbly Zany"
)
STAGE_NOUNS = _words(
    "Bubbles Buttons Confetti Cupcake Doodle Fizz Jingles Noodle Pickles Pretzel Sprinkles Squeaky "
    "Tumbleweed Waffles Whistle Ziggy Sprocket Marmalade"
)
TROUPE_ADJECTIVES = _words(
    "Flying Roaring Dancing Tumbling Spinning Laughing Daring Marvelous Whirling Soaring Leaping "
    "Juggling Wandering Midnight Golden Crimson Electric Velvet"
)
TROUPE_NOUNS = _words(
    "Zucchinis Pelicans Brothers Sisters Comets Acrobats Jesters Marionettes Lanterns Balloons Trapezists "
    "Otters Rockets Harlequins Pierrots Cannonballs Foxes Stars"
)
COLLEGE_KINDS = _words(
    "Academy of Clowning|School of Physical Comedy|Institute of Circus Arts|Conservatory of Mime|"
    "College of Slapstick|Clown Lab|Circus School|Studio of Balloon Art",
    "|",
)
CITIES = _words(
    "Avignon|Baraboo|Barcelona|Bristol|Brno|Budapest|Chicago|Copenhagen|Dublin|Ghent|Lisbon|Lyon|"
    "Melbourne|Montreal|Naples|Oslo|Portland|Sarasota|Seville|Tampere|Turin|Utrecht|Verona|Wellington",
    "|",
)
STREETS = _words(
    "Big Top|Sawdust|Trapeze|Carousel|Juggler|Calliope|Greasepaint|Ringmaster|Tightrope|Cannonball|"
    "Pie|Seltzer|Unicycle|Stilt|Popcorn|Confetti",
    "|",
)
STREET_KINDS = ("Street", "Avenue", "Lane", "Road", "Boulevard", "Way", "Square")


class Command(BaseCommand):
    help = "Wipe and (re)seed the circus tables deterministically; create/update the benchmark superuser."

    def add_arguments(self, parser):
        parser.add_argument("--scale", type=int, default=1, help="multiplies every row count (default 1)")

    def handle(self, *args, scale, **options):
        if scale < 1:
            raise CommandError("--scale must be >= 1")
        started = time.perf_counter()
        with transaction.atomic():
            self._wipe()
            self._superuser()
            counts = self._seed(random.Random(SEED), scale)
        counts["seconds"] = round(time.perf_counter() - started, 2)
        self.stdout.write(
            "populate_test_db --scale {scale}: {colleges} clown colleges, {locations} locations, "
            "{troupes} troupes, {clowns} clowns, {acrobats} acrobats, {troupe_clowns} troupe-clown and "
            "{troupe_acrobats} troupe-acrobat links, superuser {admin!r} in {seconds} s".format(
                scale=scale, admin=benchcontract.ADMIN_USERNAME, **counts
            )
        )

    def _wipe(self):
        # Raw SQL: Django's ORM delete would walk the multi-table-inheritance cascade row by row.
        circus = [m._meta.db_table for m in (ClownCollege, Location, Troupe, Clown, Acrobat, PerformerMixin)]
        circus += [Troupe.clowns.through._meta.db_table, Troupe.acrobats.through._meta.db_table]
        user = User._meta.db_table
        with connection.cursor() as cur:
            cur.execute("TRUNCATE {} RESTART IDENTITY".format(", ".join(circus)))
            for table in ("auth_user_groups", "auth_user_user_permissions", "django_admin_log"):
                cur.execute(f"DELETE FROM {table} WHERE user_id IN (SELECT id FROM {user} WHERE NOT is_superuser)")
            cur.execute(f"DELETE FROM {user} WHERE NOT is_superuser")
            # Restart the user id sequence after the surviving superusers, so performer ids repeat.
            cur.execute(
                "SELECT setval(pg_get_serial_sequence(%s, 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {user}), 0) + 1, false)",
                [user],
            )

    def _superuser(self):
        admin, _ = User.objects.get_or_create(username=benchcontract.ADMIN_USERNAME)
        admin.set_password(benchcontract.ADMIN_PASSWORD)
        admin.is_staff = admin.is_superuser = admin.is_active = True
        admin.first_name, admin.last_name = "Ring", "Master"
        admin.email = "ringmaster@example.com"
        admin.save()

    def _seed(self, rng, scale):
        n = {key: value * scale for key, value in PER_SCALE.items()}
        clown_ids = self._performers(rng, Clown, "clown", n["clowns"], [c for c, _ in Clown.CONCENTRATIONS])
        acrobat_ids = self._performers(
            rng, Acrobat, "acrobat", n["acrobats"], [c for c, _ in Acrobat.CONCENTRATIONS]
        )

        troupes = Troupe.objects.bulk_create(
            [
                Troupe(name=f"The {rng.choice(TROUPE_ADJECTIVES)} {rng.choice(TROUPE_NOUNS)} of {rng.choice(CITIES)}")
                for _ in range(n["troupes"])
            ]
        )
        troupe_clowns, troupe_acrobats = [], []
        for troupe in troupes:
            for clown_id in sorted(rng.sample(clown_ids, rng.randint(*CLOWNS_PER_TROUPE))):
                troupe_clowns.append(Troupe.clowns.through(troupe_id=troupe.id, clown_id=clown_id))
            for acrobat_id in sorted(rng.sample(acrobat_ids, rng.randint(*ACROBATS_PER_TROUPE))):
                troupe_acrobats.append(Troupe.acrobats.through(troupe_id=troupe.id, acrobat_id=acrobat_id))
        Troupe.clowns.through.objects.bulk_create(troupe_clowns)
        Troupe.acrobats.through.objects.bulk_create(troupe_acrobats)

        locations = Location.objects.bulk_create([self._location(rng) for _ in range(n["colleges"])])
        colleges = []
        for i, location in enumerate(locations):
            city = location.line_3.split(",")[0]
            name = f"{rng.choice(LAST_NAMES)} {city} {rng.choice(COLLEGE_KINDS)}"
            # Every troupe gets at least one college, the rest are drawn at random.
            troupe = troupes[i] if i < len(troupes) else rng.choice(troupes)
            colleges.append(ClownCollege(name=name, location=location, troupe=troupe))
        ClownCollege.objects.bulk_create(colleges)
        return {
            "colleges": len(colleges), "locations": len(locations), "troupes": len(troupes),
            "clowns": len(clown_ids), "acrobats": len(acrobat_ids),
            "troupe_clowns": len(troupe_clowns), "troupe_acrobats": len(troupe_acrobats),
        }

    @staticmethod
    def _location(rng):
        street = f"{rng.randint(1, 999)} {rng.choice(STREETS)} {rng.choice(STREET_KINDS)}"
        line_2 = rng.choice(["", "", f"Suite {rng.randint(1, 40)}", f"Big Top {rng.randint(1, 9)}"])
        city = rng.choice(CITIES)
        return Location(line_1=street, line_2=line_2, line_3=f"{city}, Circusland",
                        zipcode=f"{rng.randint(1000, 99999):05d}")

    @staticmethod
    def _performers(rng, model, kind, count, concentrations):
        """Create `count` performers of a multi-table-inheritance model; return their ids.

        Django cannot bulk_create MTI children, so: bulk_create the auth_user rows (PostgreSQL
        returns their ids), then fill the two child tables with one INSERT ... unnest() each.
        """
        unusable = make_password(None)  # "!<random>": one unusable hash is enough for every performer
        users, stage_names, picks = [], [], []
        for i in range(count):
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            users.append(User(username=f"{first}.{last}.{kind}{i + 1}".lower(),
                              first_name=first, last_name=last, password=unusable,
                              email=f"{first}.{last}@example.com".lower()))
            # About one performer in five has no stage name: null must survive every serializer.
            stage_names.append(None if rng.random() < 0.2 else
                               f"{rng.choice(STAGE_ADJECTIVES)} {rng.choice(STAGE_NOUNS)}")
            picks.append(rng.choice(concentrations))
        ids = [u.id for u in User.objects.bulk_create(users)]
        parent = PerformerMixin._meta
        child = model._meta
        with connection.cursor() as cur:
            cur.execute(
                f"INSERT INTO {parent.db_table} ({parent.pk.column}, stage_name) "
                "SELECT * FROM unnest(%s::int[], %s::varchar[])",
                [ids, stage_names],
            )
            cur.execute(
                f"INSERT INTO {child.db_table} ({child.pk.column}, concentration) "
                "SELECT * FROM unnest(%s::int[], %s::varchar[])",
                [ids, picks],
            )
        return ids
