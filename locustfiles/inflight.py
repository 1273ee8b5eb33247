"""Every request is bounded and accounted for: a timeout is a failure of its own, and a request still in
flight when the run ends is a failure too, instead of a sample that vanishes.

  --request-timeout S   (workload_args; default benchcontract.DEFAULT_REQUEST_TIMEOUT, 10) FastHttpUser's
                        network_timeout and connection_timeout: a request that gets no byte for S seconds (or
                        no connection) fails with the reason "timeout after S s" (timeout_reason, used
                        by workload._status_failure).
  in flight at the end  Locust stops users at the end of the run (after --stop-timeout) by killing their
                        greenlets: a request blocked in the network then raises GreenletExit and never fires
                        its request event. install() wraps FastHttpSession.request so that it does: a failure
                        IN_FLIGHT_REASON, response time = how long it had been waiting. Those land in every
                        output (CSV, JSON, timings.bin) before Locust writes its final stats.

Locust-only (imports gevent and locust); workload.py calls install() once at import.
"""

from __future__ import annotations

import socket
import time

import gevent
from gevent import GreenletExit
from locust.contrib.fasthttp import FastHttpSession

from benchcontract import DEFAULT_REQUEST_TIMEOUT

IN_FLIGHT_REASON = "timeout: still in flight when the run ended"
configured_timeout = DEFAULT_REQUEST_TIMEOUT  # this process's --request-timeout (workload.bounded sets it)


class StillInFlight(Exception):
    """A request the end of the run cut off (its user was stopped while it waited)."""


def timeout_reason(seconds: float) -> str:
    return f"timeout after {seconds:g} s"


def is_timeout(err) -> bool:
    """A timeout, also as geventhttpclient wraps it (RetriesExceeded(..., original=timed out))."""
    while err is not None:
        if isinstance(err, (TimeoutError, socket.timeout, gevent.Timeout)):
            return True
        err = getattr(err, "original", None)
    return False


_original_request = FastHttpSession.request


def _request(self, method, url, *args, **kwargs):
    start_time = time.time()
    t = time.perf_counter()
    try:
        return _original_request(self, method, url, *args, **kwargs)
    except GreenletExit:
        name = kwargs.get("name") or (args[0] if args else None) or self.request_name or url
        self.request_event.fire(request_type=method, name=name, response_time=(time.perf_counter() - t) * 1000.0,
                                response_length=0, exception=StillInFlight(IN_FLIGHT_REASON), context={},
                                start_time=start_time)
        raise


def install() -> None:
    FastHttpSession.request = _request
