"""gunicorn config for `-k gevent` with psycopg2: make psycopg2 cooperative in every worker.

psycopg2 blocks the whole gevent hub without psycogreen's wait callback (8 concurrent pg_sleep(0.5)
took ~2 s instead of ~0.5 s). psycopg 3 needs none of this. Usage:
  gunicorn -k gevent -c gunicorn_conf/gevent_psycogreen.py benchproject.wsgi:application
"""


def post_fork(server, worker):
    from psycogreen.gevent import patch_psycopg

    patch_psycopg()
    worker.log.info("psycogreen: psycopg2 patched for gevent")
