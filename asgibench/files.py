"""Small file rules every step shares: atomic writes (a reader never sees half a file, a crash never
leaves one) and the last line of a tool's output for a one-line error."""
from __future__ import annotations

import json
import os
from pathlib import Path


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename it over `path`. A write that fails (a
    full disk) leaves `path` as it was, removes the temporary file, and its OSError names `path`."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        try:
            tmp.unlink()
        except OSError:
            pass
        if e.filename:
            raise
        raise OSError(e.errno, e.strerror, str(path)) from e


def write_json_atomic(path: Path, data, *, indent: int = 2) -> None:
    write_text_atomic(path, json.dumps(data, indent=indent, default=str))


def last_line(*texts: str | None, default: str = "(no output)") -> str:
    """The last non-empty line of the first text that has one (stderr, then stdout, then a log)."""
    for text in texts:
        lines = (text or "").strip().splitlines()
        if lines:
            return lines[-1]
    return default
