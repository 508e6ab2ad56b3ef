"""Parse every JSON document costmodel reads as data, never as code: the one input boundary for files.

``parse_config_text`` is the one door for text a user hands us (dashboard uploads, pasted configs,
imported scenario files) and ``read_json_file`` the one door for files: model configs and costmodel specs
(``--model path``), device files (``--hardware path``, ``COSTMODEL_HARDWARE_DIR``), price and grid files,
presets, scenario imports. ``parse_json_value`` reads one JSON value of a flag (``profile --set k=v``).
Rules (docs/scenarios.md, "Safety"):

- files: a regular file only (a FIFO, socket, device or folder is refused before it is opened for reading,
  and opened non-blocking so a swapped-in FIFO cannot hang the reader); a path that cannot be opened (missing,
  no permission, name too long) is an ``InputError`` too;

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
import os
import stat

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


def _int_parser(limit: int):
    digits = len(str(limit))

    def parse(text: str) -> int:
        if len(text.lstrip("-")) > digits:
            raise _Reject(f"integer {text[:40]}... is out of range (+-{_limit_words(limit)})")
        v = int(text)
        if abs(v) > limit:
            raise _Reject(f"integer {text} is out of range (+-{_limit_words(limit)})")
        return v

    return parse


def _limit_words(limit: int) -> str:
    return "2**63" if limit == MAX_INT else f"{limit:.0e}"


_int = _int_parser(MAX_INT)


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
                      field: str = "config", int_limit: int = MAX_INT) -> dict:
    """Parse ``text`` (str or bytes) as one JSON object under the rules above; return the dict.

    ``int_limit`` (default 2**63) is the largest integer magnitude accepted; an import that ignores part of the
    document (exported results) may raise it and check the part it keeps with ``check_ints``."""
    return _parse(text, max_bytes, max_depth, field, int_limit, want_object=True)


def parse_json_value(text: str, field: str, max_bytes: int = 100_000):
    """One JSON value (number, string, list, object, true/false/null) under the same rules, for a flag's value."""
    return _parse(text, max_bytes, MAX_DEPTH, field, MAX_INT, want_object=False)


def _parse(text, max_bytes: int, max_depth: int, field: str, int_limit: int, want_object: bool):
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
        obj = json.loads(text, parse_constant=_no_constant, parse_float=_float,
                         parse_int=_int if int_limit == MAX_INT else _int_parser(int_limit), object_pairs_hook=_pairs)
    except _Reject as exc:
        where = _locate_bad_number(text, int_limit) if "number" in str(exc) or "integer" in str(exc) else None
        raise InputError(f"{field}.{where}" if where else field, str(exc)) from None
    except RecursionError:
        raise InputError(field, f"is nested more than {max_depth} levels deep") from None
    except json.JSONDecodeError as exc:
        raise InputError(field, f"is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:  # e.g. Python's integer-digits limit
        raise InputError(field, f"is not valid JSON: {exc}") from None
    if want_object and not isinstance(obj, dict):
        raise InputError(field, f"must be a JSON object ({{...}}), got a JSON {type(obj).__name__}")
    check_depth_and_text(obj, max_depth, field)
    return obj


def finite_json(obj):
    """The same data with every non-finite float (NaN, +-inf) as None, for writing strict JSON (JSON has no such
    numbers; ``json.dumps`` would write ``NaN``, which other readers reject)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


class _Bad:
    pass


def _locate_bad_number(text: str, int_limit: int) -> str | None:
    """The key path (``a.b[2]``) of the first non-finite or out-of-range number, found by a second, tolerant
    parse, so the error can name the field as well as the problem."""
    bad = _Bad()
    digits = len(str(int_limit))

    def flt(t):
        v = float(t)
        return v if math.isfinite(v) else bad

    def integer(t):
        return bad if len(t.lstrip("-")) > digits or abs(int(t)) > int_limit else int(t)

    try:
        obj = json.loads(text, parse_constant=lambda _: bad, parse_float=flt, parse_int=integer)
    except (ValueError, RecursionError):
        return None
    stack = [(obj, "")]
    while stack:
        node, path = stack.pop()
        if node is bad:
            return path or None
        if isinstance(node, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in reversed(list(node.items())))
        elif isinstance(node, list):
            stack.extend((v, f"{path}[{i}]") for i, v in reversed(list(enumerate(node))))
    return None


def check_ints(obj, field: str, limit: int = MAX_INT) -> None:
    """Every integer in ``obj`` (dicts and lists, walked without recursion) is within +-``limit``."""
    stack = [obj]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > limit:
            raise InputError(field, f"integer {str(node)[:40]} is out of range (+-2**63)")


def _show(path) -> str:
    text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)
    return text if len(text) <= 200 else text[:120] + "..." + text[-40:]


def read_file_bytes(path, max_bytes: int = MAX_BYTES, field: str = "config") -> bytes:
    """At most ``max_bytes`` bytes of a regular file (more is an error); FIFOs, sockets, devices and folders
    are refused without blocking; every OS error is an ``InputError`` naming ``field``."""
    shown = _show(path)
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise InputError(field, f"{shown} is not a regular file (a folder, FIFO, socket or device); "
                                    "give a JSON file")
        # O_NONBLOCK: if the path was swapped for a FIFO after the check, open() still returns at once
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except InputError:
        raise
    except (OSError, ValueError, TypeError) as exc:  # ValueError: a NUL byte in the path
        if isinstance(exc, FileNotFoundError):
            raise InputError(field, f"no such file: {shown}") from None
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise InputError(field, f"cannot read {shown}: {reason}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise InputError(field, f"{shown} is not a regular file; give a JSON file")
        chunks, size = [], 0
        while size <= max_bytes:
            chunk = os.read(fd, min(1 << 20, max_bytes + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise InputError(field, f"cannot read {shown}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    raw = b"".join(chunks)
    if len(raw) > max_bytes:
        raise InputError(field, f"{shown} is larger than {max_bytes:,} bytes (the limit for a JSON input file)")
    return raw


def read_json_file(path, max_bytes: int = MAX_BYTES, field: str = "config", int_limit: int = MAX_INT) -> dict:
    """Read a regular file (at most ``max_bytes``) and parse it with ``parse_config_text``: the one reader of
    every JSON file costmodel opens. Errors name ``field`` and the path."""
    raw = read_file_bytes(path, max_bytes, field)
    try:
        return parse_config_text(raw, max_bytes=max_bytes, field=field, int_limit=int_limit)
    except InputError as err:
        sep = " " if err.message.startswith(("is ", "must ", "contains ")) else ": "
        raise InputError(err.field, f"{_show(path)}{sep}{err.message}") from None


read_config_file = read_json_file  # the older name
