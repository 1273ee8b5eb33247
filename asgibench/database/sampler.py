"""BackendSampler: during a run, a thread that counts the backends on the run's database
(pg_stat_activity) and notices when the database is lost. A new measurement of the database during
a run goes here.
"""
from __future__ import annotations

import threading
import time

from asgibench.database.common import psycopg
from asgibench.database.handle import Database


class BackendSampler:
    """Samples pg_stat_activity during a run: the peak number of backends on our database. It also
    watches the database: when it is lost (the embedded server gone, or no connection and gone() says
    why), `lost_at` (time.time()) and `lost_error` (one line) are set, `on_lost(reason)` is called once
    from the sampler's thread, and sampling stops. A dropped connection with the server still answering
    is reconnected."""

    def __init__(self, db: Database, interval: float = 0.25, on_lost=None):
        self.db, self.interval, self.on_lost = db, interval, on_lost
        self.peak = 0
        self.samples = 0
        self.reconnects = 0
        self.lost_at: float | None = None
        self.lost_error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="asgibench-backends")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def restart(self) -> None:
        self.peak = 0

    def database_gone(self) -> str | None:
        """None while the database is there; else the one-line reason it was lost."""
        return self.lost_error

    def _lose(self, reason: str) -> None:
        self.lost_at, self.lost_error = time.time(), reason
        if self.on_lost:
            try:
                self.on_lost(reason)
            except Exception:
                pass  # the run's own hook must not kill the sampler's thread with a traceback

    def _loop(self):
        while not self._stop.is_set():
            try:
                with self.db.connect() as c:
                    dbname = c.execute("select current_database()").fetchone()[0]
                    while not self._stop.is_set():
                        reason = self.db.server_gone()
                        if reason:
                            self._lose(reason)
                            return
                        n = c.execute(
                            "select count(*) from pg_stat_activity where datname = %s and pid <> pg_backend_pid()",
                            (dbname,),
                        ).fetchone()[0]
                        self.peak = max(self.peak, n)
                        self.samples += 1
                        self._stop.wait(self.interval)
            except psycopg.Error:
                if self._stop.is_set():
                    return
                reason = self.db.gone()
                if reason:
                    self._lose(reason)
                    return
                self.reconnects += 1  # our connection went (or the server is full) but it answers: sample on
                self._stop.wait(self.interval)
