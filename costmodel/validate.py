"""Range checks for numbers that come from users, flags, URLs and files: one home, one message style.

Every check raises ``InputError(field, "must be ... , got ...")`` naming the field and what is allowed, and
rejects booleans, NaN and infinities.
"""

from __future__ import annotations

import math

from .errors import InputError


def check_number(name: str, v, lo: float = 0.0, hi: float = math.inf, what: str = "") -> float:
    """A finite number in [lo, hi] (``what``: unit or context appended to the message)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        rng = f"from {lo:g} to {hi:g}" if math.isfinite(hi) else f">= {lo:g}"
        raise InputError(name, f"must be a number {rng}{what}, got {v!r}")
    return float(v)


def check_int(name: str, value, lo: int, hi: int) -> int:
    """A whole number in [lo, hi]; integral floats and digit strings are accepted and converted."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
            elif isinstance(value, str) and value.strip().lstrip("-").isdigit() and len(value.strip()) <= 20:
                value = int(value)
            else:
                raise ValueError
        except (ValueError, AttributeError, OverflowError):
            raise InputError(name, f"must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= value <= hi:
        raise InputError(name, f"must be from {lo} to {hi}, got {value}")
    return value

