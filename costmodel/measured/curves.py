"""Shape-dependent GEMM efficiency curves (no aiconfigurator import: pure Python + JSON).

``costmodel/assets/efficiency/gemm_curves.json`` holds, per measured device and dtype, four parameters
fitted by ``benchmarks/fit_gemm_curves.py`` to aiconfigurator-core's measured GEMM tables, and a
*generic* curve per dtype (fitted to all measured devices at once) for devices without tables.

The curve, for ``y[m, n] = x[m, k] @ W[n, k]^T`` with ``F = 2 m n k`` FLOPs on a device of dense
peak ``P`` FLOP/s, has five parameters:

    e_c(n, k)  = e_max * (d / (d + d_half)) ** gamma,   d = min(n, k)   tile fill of the weight dims
    m_eff      = max(m, m_tile)                                         token rows padded to a tile
    t_compute  = 2 * m_eff * n * k / (P * e_c) + t0_s                   peak-rate time + kernel time
    efficiency = F / (P * t_compute)

``efficiency`` rises monotonically with each of m, n and k (below ``m_tile`` the time stays put
while F grows; above it ``1/efficiency = 1/e_c + t0_s * P / F`` and both terms fall) and never
exceeds ``e_max <= 1``. ``F / (P * efficiency)`` is ``t_compute``. The memory-bound regime is
left to the roofline's bandwidth term, which the fit included as costmodel uses it:

    device_s = max(F / (P * efficiency), bytes / (bandwidth * 0.92))
    bytes    = w_bytes * n * k + 2 * (m * k + m * n)    (weights in the GEMM dtype, bf16 activations)

(w_bytes: bf16 2, fp8 1, fp8_block 1 + 4/128², nvfp4 0.5 + 1/16; 0.92 is
``costmodel.perf.DEFAULT_EFFICIENCY["gpu"].bandwidth``). The errors of every record (in-sample,
random 70/30 split, leave-one-size-band-out, leave-one-device-out) are in the JSON and in
benchmarks/results/gemm_curves.md.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Optional

from ..errors import InputError

CURVES_PATH = Path(__file__).resolve().parent.parent / "assets" / "efficiency" / "gemm_curves.json"

# costmodel dtype spellings -> curve dtypes. fp16 runs at the bf16 tensor-core rate on every
# measured device and reads the bf16 curve.
DTYPES = {"bf16": "bf16", "bfloat16": "bf16", "fp16": "bf16", "float16": "bf16", "half": "bf16",
          "fp8": "fp8", "float8": "fp8", "float8_e4m3fn": "fp8", "fp8_block": "fp8_block",
          "fp4": "nvfp4", "nvfp4": "nvfp4", "int8": "int8"}
# spellings of the same number format (no note in the source string)
SAME_FORMAT = {"bfloat16": "bf16", "float8": "fp8", "float8_e4m3fn": "fp8", "fp4": "nvfp4"}
# a dtype with no curve of its own on a device reads this one (same tensor-core class, documented)
FALLBACK = {"int8": "fp8", "fp8_block": "fp8"}
# bytes per weight element the fit's bandwidth term used
WEIGHT_BYTES = {"bf16": 2.0, "fp8": 1.0, "int8": 1.0, "fp8_block": 1.0 + 4.0 / (128 * 128), "nvfp4": 0.5 + 1.0 / 16}
ACTIVATION_BYTES = 2.0
# the catalog peak a generic curve is scaled by (the catalog has no fp4 entry)
CATALOG_DTYPES = {"bf16": "bf16", "fp8": "fp8", "fp8_block": "fp8", "int8": "int8"}
BANDWIDTH_EFFICIENCY = 0.92


@functools.lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError("gemm_curves", f"cannot read {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise InputError("gemm_curves", f"{path} is not valid JSON: {exc}") from None
    by_dev: dict = {}
    for rec in data.get("curves", []):
        for name in {rec["hardware_id"], rec["system"]}:
            by_dev[(name, rec["dtype"])] = rec
    generic = {rec["dtype"]: rec for rec in data.get("generic", [])}
    return {"data": data, "by_device": by_dev, "generic": generic}


def curves_file() -> dict:
    """The parsed ``gemm_curves.json`` (read once)."""
    return _load(str(CURVES_PATH))["data"]


def compute_s(params: dict, m: float, n: float, k: float, peak_flops_per_s: float) -> float:
    """``t_compute`` of the module docstring (seconds) for one parameter record
    (e_max, t0_s, d_half, gamma, m_tile)."""
    d = min(n, k)
    e_c = params["e_max"] * (d / (d + params["d_half"])) ** params["gamma"]
    return 2.0 * max(m, params["m_tile"]) * n * k / (peak_flops_per_s * e_c) + params["t0_s"]


def efficiency(params: dict, m: float, n: float, k: float, peak_flops_per_s: float) -> float:
    """The curve of the module docstring: achieved FLOP/s over ``peak_flops_per_s``."""
    return 2.0 * m * n * k / (peak_flops_per_s * compute_s(params, m, n, k, peak_flops_per_s))


def _norm_dtype(dtype: str) -> str:
    key = str(dtype).strip().lower().replace("torch.", "")
    if key not in DTYPES:
        raise InputError("dtype", f"no GEMM curve for {dtype!r}; use one of {', '.join(sorted(DTYPES))}")
    return DTYPES[key]


# Devices whose tensor cores and clocks are another record's (only memory differs): they take its fitted
# compute curve; the roofline's bandwidth term still prices their own HBM. The A100 40 GB SXM4 runs the same
# 108 SMs at the same clocks as the measured 80 GB board (1.56 vs 2.04 TB/s; NVIDIA A100 datasheet).
CURVE_ALIASES = {"a100-sxm-40gb": "a100-sxm-80gb"}


def curve_for(hardware_id: str, dtype: str) -> tuple[dict, bool]:
    """``(record, measured)``: the device's own fitted record for ``dtype`` (measured=True), or
    the generic record of that dtype class (measured=False). Ids are costmodel catalog ids or
    aiconfigurator system names (``costmodel.measured.HARDWARE_SYSTEMS``)."""
    from . import system_for

    db = _load(str(CURVES_PATH))
    want = _norm_dtype(dtype)
    hid = str(hardware_id).strip().lower()
    hid = CURVE_ALIASES.get(hid, hid)
    names = [hid] + ([system_for(hid)] if system_for(hid) else [])
    for dt in (want, FALLBACK.get(want)):
        for name in names:
            if dt and (name, dt) in db["by_device"]:
                return db["by_device"][(name, dt)], True
    for dt in (want, FALLBACK.get(want)):
        if dt and dt in db["generic"]:
            return db["generic"][dt], False
    return db["generic"]["bf16"], False


def _peak(hardware_id: str, dtype: str, rec: dict, measured: bool, peak_flops_per_s: Optional[float]) -> float:
    if peak_flops_per_s is not None:
        p = float(peak_flops_per_s)
        if not p > 0 or not math.isfinite(p):
            raise InputError("peak_flops_per_s", f"must be a positive number of FLOP/s, got {peak_flops_per_s!r}")
        return p
    if measured:
        return float(rec["peak_flops_per_s"])
    catalog_dtype = CATALOG_DTYPES.get(_norm_dtype(dtype))
    if catalog_dtype is None:
        raise InputError("peak_flops_per_s", f"the catalog lists no {dtype} peak for {hardware_id}; pass "
                                             f"peak_flops_per_s")
    from ..catalog import load_hardware

    return load_hardware(hardware_id).peak_flops(catalog_dtype)


def _check_dims(m, n, k) -> tuple[float, float, float]:
    out = []
    for name, v in (("m", m), ("n", n), ("k", k)):
        try:
            f = float(v)
        except (TypeError, ValueError):
            raise InputError(name, f"must be a positive number, got {v!r}") from None
        if not f > 0 or not math.isfinite(f):
            raise InputError(name, f"must be a positive number, got {v!r}")
        out.append(f)
    return out[0], out[1], out[2]


def _source(rec: dict, measured: bool, hardware_id: str, dtype: str) -> str:
    if measured:
        s = rec["source"]
        key = str(dtype).strip().lower().replace("torch.", "")
        used = "" if SAME_FORMAT.get(key, key) == rec["dtype"] else f" (the {rec['dtype']} curve, used for {dtype})"
        return (f"GEMM curve fitted to aiconfigurator-core {s['package_version']} {s['system']} {s['backend']} "
                f"{s['version']} gemm table{used}; out-of-sample median |error| "
                f"{rec['error']['random_70_30']['median_abs_rel_err']:.0%}")
    u = rec["uncertainty"]
    return (f"generic {rec['dtype']} GEMM curve (no table for {hardware_id}; fitted to "
            f"{', '.join(rec['fitted_on'])}); leave-one-device-out median |error| "
            f"{u['median_abs_rel_err']:.0%}, p90 {u['p90_abs_rel_err']:.0%}")


def gemm_efficiency(hardware_id: str, dtype: str, m: float, n: float, k: float, *,
                    peak_flops_per_s: Optional[float] = None) -> tuple[float, str]:
    """``(efficiency, source)``: achieved FLOP/s over the dense peak for an ``m x k @ k x n``
    GEMM. The device's own fitted curve where aiconfigurator measured it, else the generic
    curve with the device's catalog peak (``peak_flops_per_s`` overrides the peak either way).
    Use it in place of the roofline's constant matmul fraction:
    ``max(2*m*n*k / (peak * efficiency), bytes / (bandwidth * 0.92))``."""
    m, n, k = _check_dims(m, n, k)
    rec, measured = curve_for(hardware_id, dtype)
    p = _peak(hardware_id, dtype, rec, measured, peak_flops_per_s)
    return efficiency(rec, m, n, k, p), _source(rec, measured, hardware_id, dtype)


def gemm_compute_s(hardware_id: str, dtype: str, m: float, n: float, k: float, *,
                   peak_flops_per_s: Optional[float] = None) -> tuple[float, str]:
    """``(seconds, source)``: the curve's ``t_compute`` with the peak the curve was fitted with
    (needed for nvfp4, which the catalog does not list)."""
    m, n, k = _check_dims(m, n, k)
    rec, measured = curve_for(hardware_id, dtype)
    p = _peak(hardware_id, dtype, rec, measured, peak_flops_per_s)
    return compute_s(rec, m, n, k, p), _source(rec, measured, hardware_id, dtype)
