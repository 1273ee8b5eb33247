"""The I/O probe of the contract: one request waits S seconds inside PostgreSQL. Shared by the
Django views (sync and async) and the slowapi app."""
import math

import benchcontract
from django.db import connection

SQL = "SELECT pg_sleep(%s), %s::float8"


def parse_seconds(raw):
    """`?seconds=` as a float in [0, MAX_SLEEP_SECONDS]; None -> the default; ValueError(message) if bad."""
    if raw is None:
        return benchcontract.DEFAULT_SLEEP_SECONDS
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = math.nan
    # float() accepts "nan" and "inf": isfinite rejects them with the unparsable values.
    if not math.isfinite(seconds) or not 0 <= seconds <= benchcontract.MAX_SLEEP_SECONDS:
        raise ValueError(
            f"{benchcontract.SLEEP_PARAM} must be a number of seconds between 0 and {benchcontract.MAX_SLEEP_SECONDS}, not {raw!r}"
        )
    return seconds


def pg_sleep(seconds):
    """Run the probe query on Django's connection of this thread (sync code); return S read back."""
    with connection.cursor() as cursor:
        cursor.execute(SQL, [seconds, seconds])
        return cursor.fetchone()[1]
