"""An asyncio loop for a2wsgi's ASGIMiddleware that does not leak into gevent/eventlet greenlets.

a2wsgi runs the ASGI app on an event loop in a background thread. Under gunicorn's gevent or eventlet
worker that "thread" is a greenlet in the worker's only OS thread, and asyncio keeps the running loop
per OS thread, so EVERY greenlet (each Django request, each FastAPI worker thread) then sees a running
event loop: Django's sync ORM raises SynchronousOnlyOperation and async_to_sync raises RuntimeError,
i.e. the whole Django app answers 500 on anything touching the database (measured here on both
workers; the original study's slowapi-wsgi rows never noticed, their API views were stubs).

Fix: when greenlets are in use, a greenlet switch tracer publishes the loop as "running" only while
the loop's own greenlet runs, which is what a real thread would give. Without monkey-patching this is
a plain thread, exactly what a2wsgi does by default.
"""
import asyncio
import sys
import threading


def _greenlets_in_use():
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None and gevent_monkey.is_module_patched("threading"):
        return True
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    return eventlet_patcher is not None and eventlet_patcher.is_monkey_patched("thread")


def _run_forever_in_own_greenlet(loop):
    import greenlet

    me = greenlet.getcurrent()

    def trace(event, args):
        if event in ("switch", "throw"):
            origin, target = args
            if origin is me:
                asyncio._set_running_loop(None)
            elif target is me:
                asyncio._set_running_loop(loop)
        if previous is not None:
            previous(event, args)

    previous = greenlet.settrace(trace)
    loop.run_forever()


def start_loop():
    """A new event loop, running forever in a daemon thread (a greenlet under gevent/eventlet)."""
    loop = asyncio.new_event_loop()
    if _greenlets_in_use():
        thread = threading.Thread(target=_run_forever_in_own_greenlet, args=(loop,), daemon=True)
    else:
        thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    return loop
