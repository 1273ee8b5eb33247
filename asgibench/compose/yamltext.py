"""A small, deterministic YAML writer for compose/compose.yaml (PyYAML cannot write comments):
mappings in insertion order, lists as wrapped flow sequences, every string a JSON (double-quoted
YAML) scalar, comments wrapped at WIDTH. It knows nothing about compose: a new YAML shape the file
needs is one more case in emit.
"""
from __future__ import annotations

import json
import re

_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")
WIDTH = 118


def _scalar(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    return json.dumps(str(v), ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _key(k) -> str:
    return k if _PLAIN_KEY.match(k) else json.dumps(k)


def _flow(items, indent: int, lead: int) -> str:
    """[a, b, ...] wrapped at WIDTH; continuation lines are indented deeper than the key."""
    parts = [_scalar(i) for i in items]
    if not parts:
        return "[]"
    cont = " " * (indent + 4)
    lines, cur, used = [], "[", lead
    for i, p in enumerate(parts):
        piece = p + ("," if i < len(parts) - 1 else "]")
        fresh = cur in ("[", cont)
        if not fresh and used + len(cur) + 1 + len(piece) > WIDTH:
            lines.append(cur)
            cur, used, fresh = cont, 0, True
        cur += piece if fresh else " " + piece
    lines.append(cur)
    return "\n".join(lines)


def emit(mapping: dict, indent: int) -> list[str]:
    out = []
    pad = " " * indent
    for k, v in mapping.items():
        head = f"{pad}{_key(k)}:"
        if isinstance(v, dict):
            out += [head + " {}"] if not v else [head] + emit(v, indent + 2)
        elif isinstance(v, (list, tuple)):
            out.append(f"{head} {_flow(v, indent, len(head) + 1)}")
        else:
            out.append(f"{head} {_scalar(v)}")
    return out


def wrap_comment(text: str, pad: str) -> list[str]:
    if len(pad) + 2 + len(text) <= WIDTH or not text.strip():
        return [f"{pad}# {text}".rstrip()]
    lead = text[: len(text) - len(text.lstrip())]
    words, lines, cur = text.split(), [], lead
    for w in words:
        if cur.strip() and len(pad) + 2 + len(cur) + 1 + len(w) > WIDTH:
            lines.append(cur)
            cur = lead + "  " + w
        else:
            cur = (cur + " " + w) if cur.strip() else cur + w
    lines.append(cur)
    return [f"{pad}# {ln}" for ln in lines]

