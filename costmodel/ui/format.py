"""Numbers formatted for people: significant figures, thousands separators, units scaled to the value.
Display only: nothing here computes a new number."""

from __future__ import annotations

import math

from ..units import GiB


_SI = ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def fmt_checkpointing(value) -> str:
    """A checkpointing setting (False, True or "selective") as one word: none, full, selective."""
    return {False: "none", True: "full", "selective": "selective"}[value]


def fmt_si(x: float, unit: str = "", digits: int = 3) -> str:
    """1.405e14 -> '140.5 T' + unit (decimal prefixes)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    for scale, prefix in _SI:
        if ax >= scale:
            return f"{x / scale:.{digits}g} {prefix}{unit}".rstrip()
    return f"{x:.{digits}g} {unit}".rstrip()


def fmt_num(x: float, sig: int = 3) -> str:
    """A plain number for people: ``sig`` significant figures, thousands separators, no exponent for numbers
    a person reads (0.14, 2.96, 1,230, 0.000123); an exponent only below 10^-6 or at 10^15 and above."""
    if x is None or isinstance(x, bool) or not math.isfinite(x):
        return "n/a"
    if x == 0:
        return "0"
    ax = abs(x)
    if ax < 1e-6 or ax >= 1e15:
        return f"{x:.{sig - 1}e}".replace("e-0", "e-").replace("e+", "e")
    digits = sig - 1 - int(math.floor(math.log10(ax)))
    if digits <= 0:
        return f"{round(x, digits):,.0f}"
    return f"{x:,.{digits}f}".rstrip("0").rstrip(".") if "." in f"{x:.{digits}f}" else f"{x:,.{digits}f}"


_BYTES = ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB"))


def fmt_bytes(b: float) -> str:
    """Bytes in the binary unit that suits them (1 KiB = 1,024 B ... 1 TiB = 2^40 B), 3 significant figures:
    a 28x28 CNN's 2.65 MiB and Llama-3-70B's 131 GiB are both readable; whole bytes below 1 KiB."""
    if b is None or not math.isfinite(b):
        return "n/a"
    ab = abs(b)
    for scale, unit in _BYTES:
        if ab >= scale:
            return f"{fmt_num(b / scale)} {unit}"
    return f"{b:,.0f} B"


def fmt_gib(b: float) -> str:
    """Bytes as GiB with two decimals (kept for tables that compare in one unit); pages show ``fmt_bytes``."""
    return f"{b / GiB:,.2f} GiB"


def fmt_seconds(s: float) -> str:
    """Seconds in the unit that suits them, from ns to years, 3 significant figures."""
    if s is None or not math.isfinite(s):
        return "n/a"
    a = abs(s)
    if a == 0:
        return "0 s"
    if a < 1e-6:
        return f"{fmt_num(s * 1e9)} ns"
    if a < 1e-3:
        return f"{fmt_num(s * 1e6)} µs"
    if a < 1:
        return f"{fmt_num(s * 1e3)} ms"
    if a < 120:
        return f"{fmt_num(s)} s"
    if a < 7200:
        return f"{fmt_num(s / 60)} min"
    if a < 172800:
        return f"{fmt_num(s / 3600)} h"
    if a < 2 * 365.25 * 86400:
        return f"{fmt_num(s / 86400)} days"
    return f"{fmt_num(s / (365.25 * 86400))} years"


def fmt_hours(h: float) -> str:
    """Device-hours: 0.14, 3.2, 1,234 (never "0" for a run that took some)."""
    return fmt_num(h)


def fmt_co2(kg: float) -> str:
    """kg CO2e in the unit that suits it: g below 1 kg, t from 1,000 kg."""
    if kg is None or not math.isfinite(kg):
        return "n/a"
    if abs(kg) >= 1000:
        return f"{fmt_num(kg / 1000)} t CO2e"
    if abs(kg) >= 1:
        return f"{fmt_num(kg)} kg CO2e"
    return f"{fmt_num(kg * 1000)} g CO2e"


def fmt_value(v, unit: str = "") -> str:
    """One value of a (quantity, value, unit) table for display: bytes and seconds auto-scaled, USD with $,
    kWh and CO2 in their units, counts with separators, fractions as percentages."""
    if v is None:
        return "n/a"
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, str):
        return v
    if not isinstance(v, (int, float)):
        return str(v)
    if unit == "bytes":
        return fmt_bytes(v)
    if unit == "s":
        return fmt_seconds(v)
    if unit == "USD":
        return fmt_usd(v)
    if unit == "kWh":
        return fmt_kwh(v)
    if unit == "kg CO2e":
        return fmt_co2(v)
    if unit in ("FLOPs", "FLOP", "FLOP/s"):
        return fmt_si(v, unit.rstrip("s") if unit == "FLOPs" else unit)
    if unit == "fraction":
        return f"{v:.1%}"
    if isinstance(v, int) or (isinstance(v, float) and v.is_integer() and abs(v) < 1e15):
        return f"{int(v):,}" + (f" {unit}" if unit else "")
    return fmt_num(v) + (f" {unit}" if unit else "")


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
    if x == 0:
        return "$0"
    return f"${fmt_num(x)}"


def fmt_kwh(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e3:
        return f"{fmt_num(x / 1e3)} MWh"
    if abs(x) >= 1:
        return f"{fmt_num(x)} kWh"
    if abs(x) >= 1e-3:
        return f"{fmt_num(x * 1e3)} Wh"
    return f"{fmt_num(x * 1e6)} mWh"
