"""Exact response times, one file per Locust process: the format, a writer, a reader, a merger.

Standard library and benchcontract only, no Locust import (importing locust monkey-patches the whole
process with gevent), so the runner (asgibench) can read these files with `from locustfiles import
timingfile`; Locust processes import it as `timingfile`. benchcontract is a top-level module in both
(services/ on PYTHONPATH, or installed in the runner). plugin_timings.py (the recorder's Locust
plugin) collects the samples and calls write_timings() at quit.

File format, version 1 (all numbers little-endian):

    line 1   b"ASGIBENCH-TIMINGS 1\\n"                       magic + version
    line 2   one line of UTF-8 JSON, then b"\\n":
             {"version": 1, "t0": <epoch seconds, float>, "meta": {...free-form: pid, role,
              worker_index, locust_version...},
              "series": [{"request_type": "GET", "name": "/api/troupe/", "ok": true, "count": N}, ...]}
    then, for every series in the order listed: N float32 response times in milliseconds
             (exactly the `response_time` Locust's request event carried, rounded to float32: ~7
             significant digits, i.e. better than 1 microsecond below 8 s), followed by N float32
             start offsets in seconds relative to t0 (when the request started; resolution better
             than 0.25 ms for runs under an hour), and, only when the series entry says
             "lag": true, N float32 lags in seconds (open model, openmodel.py: how long after its
             intended start the request's arrival was actually started; the request's latency from
             its intended start is ms + 1000 * lag, corrected for coordinated omission).

A series without lags (closed model) is laid out exactly as before the lag arrays existed; its
lag is 0 (intended start = actual send). Series.intended_ms() gives the corrected latencies.

A series is one (request_type, name, ok) triple: successes and failures are kept apart, so exact
percentiles can be computed over successes only, or over everything as Locust does. Requests whose
response_time was None (Locust allows that for some clients) are not stored; the JSON header
counts them under meta["none_response_times"].

request_type benchcontract.FLOW_REQUEST_TYPE ("FLOW", name FLOW_NAME "iteration") is the
whole-iteration pseudo-request of workload.py: exclude it from request totals.
"""

from __future__ import annotations

import json
import math
import os
import sys
from array import array
from typing import BinaryIO, Iterable, NamedTuple

from benchcontract import FLOW_REQUEST_TYPE

MAGIC = b"ASGIBENCH-TIMINGS 1\n"
FORMAT_VERSION = 1


class SeriesKey(NamedTuple):
    request_type: str
    name: str
    ok: bool


class Series:
    """Samples of one (request_type, name, ok): response times (ms) and start offsets (s since t0)."""

    __slots__ = ("ms", "t", "lag")

    def __init__(self, ms: Iterable[float] = (), t: Iterable[float] = (), lag: Iterable[float] = ()):
        self.ms = array("f", ms)
        self.t = array("f", t)
        self.lag = array("f", lag)  # empty (no lags: closed model) or one per sample, seconds

    def __len__(self) -> int:
        return len(self.ms)

    def lags(self) -> array:
        """One lag (s) per sample: the stored ones, or zeros for a series without lags."""
        return self.lag if len(self.lag) == len(self.ms) else array("f", bytes(4 * len(self.ms)))

    def intended_ms(self) -> array:
        """Latencies from the intended start (ms + 1000 * lag): equal to ms without lags."""
        if len(self.lag) != len(self.ms):
            return array("f", self.ms)
        return array("f", (m + 1000.0 * g for m, g in zip(self.ms, self.lag)))


def _to_le(a: array) -> bytes:
    if sys.byteorder == "little":
        return a.tobytes()
    b = array(a.typecode, a)
    b.byteswap()
    return b.tobytes()


def _from_le(raw: bytes) -> array:
    a = array("f")
    a.frombytes(raw)
    if sys.byteorder != "little":
        a.byteswap()
    return a


def write_timings(path: str, t0: float, series: dict[SeriesKey, Series], meta: dict | None = None) -> None:
    """Write one timings file (atomically: a temporary file renamed over `path`)."""
    keys = sorted(series, key=lambda k: (k.request_type, k.name, not k.ok))
    header = {
        "version": FORMAT_VERSION,
        "t0": t0,
        "meta": meta or {},
        "series": [
            {"request_type": k.request_type, "name": k.name, "ok": bool(k.ok), "count": len(series[k]),
             **({"lag": True} if _has_lag(series[k]) else {})} for k in keys
        ],
    }
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        f.write(MAGIC)
        f.write(json.dumps(header, separators=(",", ":")).encode("utf-8") + b"\n")
        for k in keys:
            s = series[k]
            if len(s.ms) != len(s.t):
                raise ValueError(f"series {k} has {len(s.ms)} response times but {len(s.t)} start offsets")
            f.write(_to_le(s.ms))
            f.write(_to_le(s.t))
            if _has_lag(s):
                f.write(_to_le(s.lag))
    os.replace(tmp, path)


def _has_lag(s: Series) -> bool:
    if len(s.lag) and len(s.lag) != len(s.ms):
        raise ValueError(f"a series has {len(s.ms)} response times but {len(s.lag)} lags")
    return bool(len(s.lag)) and any(s.lag)


class TimingsFile(NamedTuple):
    t0: float
    meta: dict
    series: dict[SeriesKey, Series]


def _read_exact(f: BinaryIO, n: int, path: str) -> bytes:
    raw = f.read(n)
    if len(raw) != n:
        raise ValueError(f"{path}: truncated timings file (wanted {n} bytes, got {len(raw)})")
    return raw


def read_timings(path: str) -> TimingsFile:
    with open(path, "rb") as f:
        magic = f.readline()
        if magic != MAGIC:
            raise ValueError(f"{path}: not an asgibench timings file (first line {magic[:40]!r})")
        header = json.loads(f.readline().decode("utf-8"))
        if header.get("version") != FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported timings format version {header.get('version')!r}")
        out: dict[SeriesKey, Series] = {}
        for entry in header["series"]:
            n = int(entry["count"])
            s = Series()
            s.ms = _from_le(_read_exact(f, 4 * n, path))
            s.t = _from_le(_read_exact(f, 4 * n, path))
            if entry.get("lag"):
                s.lag = _from_le(_read_exact(f, 4 * n, path))
            out[SeriesKey(entry["request_type"], entry["name"], bool(entry["ok"]))] = s
        if f.read(1):
            raise ValueError(f"{path}: trailing bytes after the last series")
    return TimingsFile(float(header["t0"]), header.get("meta", {}), out)


def merge_timings(files: Iterable[TimingsFile]) -> TimingsFile:
    """Merge the files of several processes (master + workers). Start offsets are re-based on the
    earliest t0 (the processes' wall clocks are the same machine's clock, or close enough)."""
    files = list(files)
    if not files:
        return TimingsFile(0.0, {}, {})
    t0 = min(f.t0 for f in files)
    merged: dict[SeriesKey, Series] = {}
    for tf in files:
        shift = tf.t0 - t0
        for k, s in tf.series.items():
            m = merged.setdefault(k, Series())
            if len(s.lag) or len(m.lag):  # keep one lag per sample once any file has lags
                m.lag = m.lags()
                m.lag.extend(s.lags())
            m.ms.extend(s.ms)
            m.t.extend(s.t if shift == 0 else array("f", (x + shift for x in s.t)))
    return TimingsFile(t0, {"merged_from": [tf.meta for tf in files]}, merged)


def percentile(sorted_values, q: float) -> float:
    """Exact percentile of already sorted values, linear interpolation between closest ranks
    (numpy's default "linear" method). q in [0, 1]."""
    n = len(sorted_values)
    if n == 0:
        return math.nan
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], not {q}")
    pos = (n - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, n - 1)
    frac = pos - lo
    return float(sorted_values[lo]) + (float(sorted_values[hi]) - float(sorted_values[lo])) * frac


def summarize(values, quantiles=(0.5, 0.9, 0.95, 0.99)) -> dict:
    """count, mean, min, max and exact percentiles (keys p50, p90, ...) of a sequence of ms."""
    v = sorted(values)
    out = {"count": len(v)}
    if not v:
        out.update({"mean": math.nan, "min": math.nan, "max": math.nan})
        out.update({f"p{q * 100:g}": math.nan for q in quantiles})
        return out
    out.update({"mean": math.fsum(v) / len(v), "min": float(v[0]), "max": float(v[-1])})
    out.update({f"p{q * 100:g}": percentile(v, q) for q in quantiles})
    return out


def select(tf: TimingsFile, request_type: str | None = None, name: str | None = None, ok: bool | None = None,
           include_flow: bool = False) -> array:
    """All response times (ms) matching the filters (None = any). FLOW rows only when include_flow
    or request_type == "FLOW"."""
    out = array("f")
    for k, s in tf.series.items():
        if k.request_type == FLOW_REQUEST_TYPE and not include_flow and request_type != FLOW_REQUEST_TYPE:
            continue
        if request_type is not None and k.request_type != request_type:
            continue
        if name is not None and k.name != name:
            continue
        if ok is not None and k.ok != ok:
            continue
        out.extend(s.ms)
    return out
