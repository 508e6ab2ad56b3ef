"""Optional measured-latency backend: NVIDIA aiconfigurator-core's per-op tables.

Install the extra (``pip install costmodel[measured]``, i.e. ``aiconfigurator-core==0.12.0``) to
get measured GEMM, attention, MLA, MoE and collective latencies for the devices NVIDIA measured;
without it ``available()`` is False and ``tables_for`` raises one ``InputError`` naming the
extra. The analytic, shape-dependent GEMM efficiency curves fitted to those tables do not need
the extra: ``costmodel.measured.curves`` reads them from ``costmodel/assets/efficiency/gemm_curves.json``.

    from costmodel.measured import available, tables_for
    t = tables_for("h200-sxm-141gb")             # MeasuredTables, or None (no table for the device)
    t.gemm_s(4096, 14336, 4096, "bf16")          # seconds, or None outside the measured shapes
    t.provenance("gemm")                         # "measured (aiconfigurator-core 0.12.0, h200_sxm ...)"

Data: Apache-2.0, (c) NVIDIA CORPORATION & AFFILIATES, github.com/ai-dynamo/aiconfigurator.
How the tables are read and interpolated: docs/measured.md.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from typing import TYPE_CHECKING, Optional

from ..errors import InputError

if TYPE_CHECKING:
    from .tables import MeasuredTables

EXTRA_REQUIREMENT = "aiconfigurator-core==0.12.0"
MISSING_MESSAGE = f"install costmodel[measured] ({EXTRA_REQUIREMENT})"

# costmodel catalog ids (and ids the catalog may add) -> aiconfigurator system names. Only exact
# parts: an A100 40GB has 24% less memory bandwidth than the measured 80GB board, and the PCIe
# H100/A100 and L4 have system specs but no measured data in aiconfigurator-core 0.12.0.
HARDWARE_SYSTEMS = {
    "h100-sxm-80gb": "h100_sxm",
    "h200-sxm-141gb": "h200_sxm",
    "b200-sxm-192gb": "b200_sxm",
    "a100-sxm-80gb": "a100_sxm",
    "l40s-48gb": "l40s",
    "b300-sxm-270gb": "b300_sxm",  # catalog id (270 GiB usable of 288 GB)
    "gb200-nvl72-186gb": "gb200",  # catalog id
    "gb300-nvl72-279gb": "gb300",  # catalog id
    "b300-sxm-288gb": "b300_sxm",
    "b300": "b300_sxm",
    "gb200": "gb200",
    "gb200-186gb": "gb200",
    "gb300": "gb300",
    "gb300-288gb": "gb300",
    "rtx-pro-6000-96gb": "rtx_pro_6000_server",
    "rtx-pro-6000-blackwell-server": "rtx_pro_6000_server",  # benchmarks/hardware/ record of the same board
    "arc-pro-b60-24gb": "b60",
}
# catalog ids that have an aiconfigurator system spec but no measured table (documented, not guessed)
NO_TABLE = {
    "a100-sxm-40gb": "no table: aiconfigurator measured the A100-SXM4-80GB (2.04 TB/s; the 40GB board has 1.56 TB/s)",
    "a100-pcie-80gb": "no table: aiconfigurator-core 0.12.0 ships an estimate-only spec for a100_pcie",
    "h100-pcie-80gb": "no table: aiconfigurator-core 0.12.0 ships an estimate-only spec for h100_pcie",
    "l4-24gb": "no table: aiconfigurator-core 0.12.0 ships an estimate-only spec for l4",
    "gh200": "no table: aiconfigurator-core 0.12.0 has no GH200 system (its H100 runs at 4 TB/s, not the SXM's 3.35)",
}


def available() -> bool:
    """Whether the measured tables can be read (aiconfigurator-core and its pyarrow/yaml import)."""
    for mod in ("aiconfigurator_core", "pyarrow", "yaml"):
        try:
            if importlib.util.find_spec(mod) is None:
                return False
        except (ImportError, ValueError):
            return False
    try:
        importlib.import_module("aiconfigurator_core")
    except Exception:  # a broken install counts as missing
        return False
    return True


def require() -> None:
    """Raise ``InputError("measured", "install costmodel[measured] (...)")`` without the extra."""
    if not available():
        raise InputError("measured", MISSING_MESSAGE)


def system_for(hardware_id: str) -> Optional[str]:
    """The aiconfigurator system for a costmodel hardware id (an aiconfigurator system name
    passes through), or None when the device has no measured table."""
    hid = str(hardware_id).strip().lower()
    if hid in HARDWARE_SYSTEMS:
        return HARDWARE_SYSTEMS[hid]
    if hid in set(HARDWARE_SYSTEMS.values()):
        return hid
    return None


def tables_for(hardware_id: str, backend: str = "trtllm") -> Optional["MeasuredTables"]:
    """The measured tables of a device for one serving backend (trtllm, vllm, sglang), or None
    where aiconfigurator ships no table for it. Cached: one object per (system, backend), shared by
    every id that maps to the system."""
    require()
    from .tables import BACKENDS

    if backend not in BACKENDS:
        raise InputError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    system = system_for(hardware_id)
    if system is None:
        return None
    return _tables(system, backend)


@functools.lru_cache(maxsize=None)
def _tables(system: str, backend: str):
    from .files import systems_dir
    from .tables import MeasuredTables

    data = systems_dir() / "data" / system
    if not data.is_dir() or not any(
            (data / fam / backend).is_dir() for fam in ("gemm", "attention", "moe", "mla")):
        return None
    return MeasuredTables(system, backend)


def coverage() -> list[dict]:
    """One row per (system, op family, backend, version) folder holding parquet tables."""
    require()
    from .files import current_version, systems_dir

    rows = []
    root = systems_dir() / "data"
    for sys_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for fam in sorted(p for p in sys_dir.iterdir() if p.is_dir()):
            for be in sorted(p for p in fam.iterdir() if p.is_dir()):
                for ver in sorted(p for p in be.iterdir() if p.is_dir()):
                    files = sorted(f.name for f in ver.glob("*.parquet"))
                    if files:
                        rows.append({"system": sys_dir.name, "family": fam.name, "backend": be.name,
                                     "version": ver.name, "current": ver.name == current_version(sys_dir.name, be.name),
                                     "files": files})
    return rows


def __getattr__(name):  # MeasuredTables without importing numpy at package import
    if name == "MeasuredTables":
        from .tables import MeasuredTables

        return MeasuredTables
    raise AttributeError(name)


__all__ = ["available", "require", "tables_for", "system_for", "coverage", "MISSING_MESSAGE", "EXTRA_REQUIREMENT",
           "HARDWARE_SYSTEMS", "NO_TABLE", "MeasuredTables"]
