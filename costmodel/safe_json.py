"""Parse uploaded or pasted configs as data, never as code.

``parse_config_text`` is the one door for text a user hands us (dashboard uploads, pasted configs,
imported scenario files). Rules (docs/scenarios.md, "Safety"):

- at most ``max_bytes`` bytes (default 1,000,000), checked before parsing;
- UTF-8 (a leading byte-order mark is dropped); JSON only, via the stdlib ``json`` parser: no
  ``eval``, no ``pickle``, no YAML tags, nothing that can run code; a Hugging Face ``auto_map`` /
  ``trust_remote_code`` entry is plain data that costmodel never follows;
- the document must be one JSON object;
- ``NaN``, ``Infinity``, ``-Infinity`` and numbers that overflow to infinity are rejected (JSON has no
  such numbers; Python's parser accepts them by default); integers beyond +-2**63 are rejected;
- duplicate keys in one object are **rejected**: Python would silently keep the last one, so the
  file would not mean what one of its readers thinks it means;
- nesting deeper than ``max_depth`` (default 64) is rejected; strings must be valid Unicode (no lone
  surrogates).

Every rejection is ``InputError(field, message)`` with ``field`` "config" unless told otherwise.
"""

from __future__ import annotations

import json
import math

from .errors import InputError

MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_INT = 2**63


class _Reject(Exception):
    pass


def _no_constant(name: str):
    raise _Reject(f"{name} is not a JSON number; give a finite number")


def _float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _Reject(f"number {text[:40]} is too large (overflows to infinity)")
    return v


def _int(text: str) -> int:
    if len(text.lstrip("-")) > 19:
        raise _Reject(f"integer {text[:40]}... is out of range (+-2**63)")
    v = int(text)
    if abs(v) > MAX_INT:
        raise _Reject(f"integer {text} is out of range (+-2**63)")
    return v


def _pairs(pairs: list) -> dict:
    out = {}
    for k, v in pairs:
        if k in out:
            raise _Reject(f"duplicate key {k!r} in one object; each key may appear once")
        out[k] = v
    return out


def check_depth_and_text(obj, max_depth: int = MAX_DEPTH, field: str = "config") -> None:
    """Iteratively check nesting depth and that every string (and key) is encodable as UTF-8."""
    stack = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            raise InputError(field, f"is nested more than {max_depth} levels deep")
        if isinstance(node, dict):
            for k, v in node.items():
                _check_text(k, field)
                stack.append((v, depth + 1))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str):
            _check_text(node, field)


def _check_text(s: str, field: str) -> None:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(field, "contains invalid Unicode (a lone surrogate escape such as \\ud800)") from None


def parse_config_text(text: str | bytes, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH,
                      field: str = "config") -> dict:
    """Parse ``text`` (str or bytes) as one JSON object under the rules above; return the dict."""
    if isinstance(text, (bytes, bytearray, memoryview)):
        raw = bytes(text)
        if len(raw) > max_bytes:
            raise InputError(field, f"is {len(raw):,} bytes; the limit is {max_bytes:,} bytes")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise InputError(field, f"is not UTF-8 text (byte {exc.start}); give a JSON file") from None
    elif isinstance(text, str):
        # cheap bound first: every character is at least one byte
        if len(text) > max_bytes or len(text.encode("utf-8", "surrogatepass")) > max_bytes:
            raise InputError(field, f"is more than {max_bytes:,} bytes; the limit is {max_bytes:,} bytes")
        if text.startswith("\ufeff"):
            text = text[1:]
    else:
        raise InputError(field, f"must be JSON text, got {type(text).__name__}")
    if not text.strip():
        raise InputError(field, "is empty; give a JSON object such as a Hugging Face config.json")
    try:
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_float, parse_int=_int,
                         object_pairs_hook=_pairs)
    except _Reject as exc:
        raise InputError(field, str(exc)) from None
    except RecursionError:
        raise InputError(field, f"is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise InputError(field, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. Python's integer-digits limit
        raise InputError(field, f"is not valid JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise InputError(field, f"must be a JSON object ({{...}}), got a JSON {type(obj).__name__}")
    check_depth_and_text(obj, max_depth, field)
    return obj


def read_config_file(path, max_bytes: int = MAX_BYTES, field: str = "config") -> dict:
    """Read a file (at most ``max_bytes``) and parse it with ``parse_config_text``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(max_bytes + 1)
    except OSError as exc:
        raise InputError(field, f"cannot read {path}: {exc.strerror or exc}") from None
    return parse_config_text(raw, max_bytes=max_bytes, field=field)
