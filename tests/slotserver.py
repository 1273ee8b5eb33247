"""A loopback HTTP server with a known behaviour, for the open-model and capacity tests (standard library
only): every GET waits for one of N slots and holds it S seconds (capacity exactly N/S req/s), and
optionally every request arriving in [PAUSE_AT, PAUSE_AT + PAUSE_S) seconds after the first request
waits until that pause is over (a deliberately stalled server).

    python tests/slotserver.py PORT [--slots N --seconds S] [--pause-at A --pause-s P]
"""
import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

a = argparse.ArgumentParser()
a.add_argument("port", type=int)
a.add_argument("--slots", type=int, default=0)
a.add_argument("--seconds", type=float, default=0.0)
a.add_argument("--pause-at", type=float, default=-1.0)
a.add_argument("--pause-s", type=float, default=0.0)
args = a.parse_args()
SLOTS = threading.BoundedSemaphore(args.slots) if args.slots else None
FIRST = []


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if not FIRST:
            FIRST.append(time.monotonic())
        since = time.monotonic() - FIRST[0]
        if args.pause_s and args.pause_at <= since < args.pause_at + args.pause_s:
            time.sleep(args.pause_at + args.pause_s - since)
        if SLOTS is not None:
            with SLOTS:
                time.sleep(args.seconds)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *_a):
        pass


ThreadingHTTPServer.daemon_threads = True
ThreadingHTTPServer.request_queue_size = 1024
ThreadingHTTPServer(("127.0.0.1", args.port), Handler).serve_forever()
