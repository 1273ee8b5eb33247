"""Response checks and the cookie jar of workload.py, without Locust (importing locust monkey-patches
the process with gevent), so they can be unit-tested and reused anywhere."""

from __future__ import annotations

import json
import re
import time
from email.utils import parsedate_to_datetime

_json_loads = json.loads


class FastCookieJar:
    """The part of http.cookiejar.CookieJar that geventhttpclient uses (add_cookie_header,
    extract_cookies), for one origin: the stdlib jar cost ~100 µs of generator CPU per request (its
    policy checks), which would make the generator, not the server, the bottleneck of the
    cookie-heavy login flow. Honoured: name=value, Path (prefix match), Max-Age, Expires (a past date
    deletes, as Django's delete_cookie does). Ignored, as for one loopback host: Domain, Secure
    (Locust's own jar sends secure cookies over http too), HttpOnly, SameSite."""

    __slots__ = ("_cookies",)

    def __init__(self):
        self._cookies: dict[str, tuple[str, str, float | None]] = {}  # name -> (value, path, expires)

    def clear(self) -> None:
        self._cookies.clear()

    def get(self, name: str, default=None):
        c = self._cookies.get(name)
        if c is None or (c[2] is not None and c[2] <= time.time()):
            return default
        return c[0]

    def __len__(self) -> int:
        return len(self._cookies)

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def add_cookie_header(self, request) -> None:
        if not self._cookies:
            return
        path = request.url_split.path or "/"
        now = None
        parts = []
        for name, (value, cpath, expires) in self._cookies.items():
            if expires is not None:
                now = now or time.time()
                if expires <= now:
                    continue
            if cpath == "/" or path == cpath or path.startswith(cpath if cpath.endswith("/") else cpath + "/"):
                parts.append(f"{name}={value}")
        if parts:
            request.headers["Cookie"] = "; ".join(parts)

    def extract_cookies(self, response, request) -> None:
        headers = response.headers
        if not headers:
            return
        for line in headers.getlist("set-cookie"):
            self.set_cookie_line(line, request.url_split.path or "/")

    def set_cookie_line(self, line: str, request_path: str = "/") -> None:
        pairs = line.split(";")
        name, sep, value = pairs[0].partition("=")
        name = name.strip()
        if not sep or not name:
            return
        value = value.strip()  # kept verbatim, quotes included, as browsers and the stdlib jar do
        # RFC 6265 default path: the request path up to its last "/"
        path = (request_path[: request_path.rfind("/")] or "/") if request_path.startswith("/") else "/"
        expires = None
        max_age = None
        for attr in pairs[1:]:
            k, _, v = attr.partition("=")
            k = k.strip().lower()
            if k == "path":
                v = v.strip()
                path = v if v.startswith("/") else path
            elif k == "max-age":
                try:
                    max_age = int(v.strip())
                except ValueError:
                    pass
            elif k == "expires":
                expires = v
        if max_age is not None:  # Max-Age wins over Expires (RFC 6265 5.3), so its date is not even parsed
            expires = time.time() + max_age
        elif expires is not None:
            try:
                expires = parsedate_to_datetime(expires.strip()).timestamp()
            except (TypeError, ValueError, IndexError):
                expires = None
        if expires is not None and expires <= time.time():
            self._cookies.pop(name, None)
        else:
            # Django's session and CSRF cookies live for weeks: only past expiry dates matter here
            self._cookies[name] = (value, path, expires)


# Cheap checks of a list page's envelope. They read the keys with regular expressions over the raw
# bytes, which is sound for contract-shaped documents: a JSON string cannot contain an unescaped
# '"', so '"next":' can only be an object key, and the contract has no nested count/next/results.
_COUNT_RE = re.compile(rb'"count"\s*:\s*(\S)')
_NEXT_RE = re.compile(rb'"next"\s*:\s*(\S\S?)')
_RESULTS_RE = re.compile(rb'"results"\s*:\s*(\S)\s*(\S)')


def list_page_problem_fast(body: bytes) -> str | None:
    """None if the page looks like a DRF page with a count, a next page and results, else why not."""
    b = body.strip()
    if b[:1] != b"{" or b[-1:] != b"}":
        return "response is not JSON"
    m = _COUNT_RE.search(b)
    if m is None or m.group(1) == b"n":
        return "count is null or missing"
    if m.group(1) not in b"-0123456789":
        return "count is not an integer"
    m = _NEXT_RE.search(b)
    if m is None or m.group(1)[:1] != b'"' or m.group(1) == b'""':
        return "next is empty: no second page (seed more data)"
    m = _RESULTS_RE.search(b)
    if m is None:
        return "results is empty or missing"
    if m.group(1) != b"[":
        return "results is not a list"
    if m.group(2) == b"]":
        return "results is empty or missing"
    return None


def list_page_problem_full(body: bytes) -> str | None:
    """The same checks on the fully parsed JSON."""
    try:
        data = _json_loads(body)
    except (ValueError, TypeError):
        return "response is not JSON"
    if type(data) is not dict:
        return "response is not JSON"
    if data.get("count") is None:
        return "count is null or missing"
    if type(data["count"]) is not int:
        return "count is not an integer"
    nxt = data.get("next")
    if not nxt or type(nxt) is not str:
        return "next is empty: no second page (seed more data)"
    results = data.get("results")
    if not results:
        return "results is empty or missing"
    if type(results) is not list:
        return "results is not a list"
    return None
