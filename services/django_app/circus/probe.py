"""The I/O probe of the contract: one request waits S seconds inside PostgreSQL. Shared by the
Django views (sync and async) and the slowapi app."""
import benchcontract
from django.db import connection

SQL = "SELECT pg_sleep(%s), %s::float8"


parse_seconds = benchcontract.parse_sleep_seconds  # the contract's one rule for S


def pg_sleep(seconds):
    """Run the probe query on Django's connection of this thread (sync code); return S read back."""
    with connection.cursor() as cursor:
        cursor.execute(SQL, [seconds, seconds])
        return cursor.fetchone()[1]
