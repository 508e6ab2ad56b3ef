"""How the CLI prints: JSON that is always valid (no NaN/Infinity), money with "no price", user text without
terminal control characters."""

from __future__ import annotations

import json
import re
import sys

from ..safe_json import finite_json

_BREAKS = re.compile(r"[\t\n\r\u2028\u2029\x85]+")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


clean_json = finite_json  # the same data with every non-finite float (NaN, +-inf) as None


def dumps(obj) -> str:
    """One JSON document for stdout (strict JSON: ``allow_nan=False`` after ``clean_json``)."""
    return json.dumps(clean_json(obj), indent=1, allow_nan=False)


def money(usd: float | None) -> str:
    """"$1,234" (cents below $100), or "no price" for a device the catalog has no price for."""
    if usd is None:
        return "no price"
    return f"${usd:,.0f}" if abs(usd) >= 100 else f"${usd:,.4g}"


def printable(text) -> str:
    """User-derived text for a terminal: control characters (escape sequences, bidi overrides) removed, and
    anything that is not valid Unicode (a lone surrogate) replaced, so printing it cannot fail."""
    return _CONTROL.sub("", str(text)).encode("utf-8", "replace").decode("utf-8")


def one_line(text) -> str:
    """``printable`` text on one line: line breaks and tabs (a user's value may hold them) become spaces."""
    return _BREAKS.sub(" ", printable(text))


_NOTES: list[str] = []


def note(text) -> None:
    """A ``note: ...`` line for stderr (something the user should know that is not an error). Notes are held
    until the command succeeds (``flush_notes``): a command that fails prints its one error line only."""
    line = f"note: {one_line(text)}"
    if line not in _NOTES:
        _NOTES.append(line)


def flush_notes(print_them: bool = True) -> None:
    if print_them:
        for line in _NOTES:
            print(line, file=sys.stderr)
    _NOTES.clear()
