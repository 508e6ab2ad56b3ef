"""Numbers formatted for people: significant figures, thousands separators, units scaled to the value.
Display only: nothing here computes a new number."""

from __future__ import annotations

import math

from ..units import GiB


_SI = ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def fmt_si(x: float, unit: str = "", digits: int = 3) -> str:
    """1.405e14 -> '140.5 T' + unit (decimal prefixes)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    for scale, prefix in _SI:
        if ax >= scale:
            return f"{x / scale:.{digits}g} {prefix}{unit}".rstrip()
    return f"{x:.{digits}g} {unit}".rstrip()


def fmt_gib(b: float) -> str:
    return f"{b / GiB:,.2f} GiB"


def fmt_seconds(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 172800:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:,.1f} days"


def fmt_timestamp(ts) -> str:
    """A stored ISO timestamp to the minute ("2026-11-23 13:19"); "" for none."""
    return str(ts or "")[:16].replace("T", " ")


def fmt_count(n: int) -> str:
    return f"{int(n):,}"


def fmt_usd(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e6:
        return f"${x / 1e6:,.3g}M"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 0.01:
        return f"${x:,.2f}"
    return f"${x:.3g}"


def fmt_kwh(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e3:
        return f"{x / 1e3:,.4g} MWh"
    if abs(x) >= 1:
        return f"{x:,.4g} kWh"
    return f"{x * 1e3:.3g} Wh"
