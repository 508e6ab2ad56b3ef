"""Hardware catalog: assets/hardware/*.json (one device a file, each with its source), plus
user files given by path or in folders named by COSTMODEL_HARDWARE_DIR (colon-separated).
Read on first use, never at import."""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .errors import InputError

HARDWARE_DIR = Path(__file__).resolve().parent.parent / "assets" / "hardware"
KINDS = ("gpu", "tpu", "cpu")
# a dtype the device lacks runs at the next wider one it has
FALLBACK = {"fp8": ("bf16", "fp16", "fp32"), "int8": ("fp8", "bf16", "fp16", "fp32"), "bf16": ("fp16", "fp32"),
            "fp16": ("bf16", "fp32"), "tf32": ("fp32",), "fp32": ()}
_NUMBERS = ("memory_bytes", "memory_bandwidth_bytes_per_s", "tdp_w", "idle_w", "intra_node_bandwidth_bytes_per_s",
            "inter_node_bandwidth_bytes_per_s", "gpus_per_node")


@dataclass(frozen=True)
class Hardware:
    id: str
    name: str
    vendor: str
    kind: str
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: dict = field(hash=False)
    tdp_w: float
    idle_w: float
    intra_node_bandwidth_bytes_per_s: float
    inter_node_bandwidth_bytes_per_s: float
    gpus_per_node: int
    source: str
    release_year: int = 0
    notes: str = ""

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``, falling back to the next wider dtype the device has."""
        for d in (dtype, *FALLBACK.get(dtype, ("fp32",))):
            if d in self.peak_flops_per_s:
                return float(self.peak_flops_per_s[d])
        return float(self.peak_flops_per_s.get("fp32", 0.0))

    def to_dict(self) -> dict:
        return asdict(self)


def hardware_from_dict(data: dict, origin: str = "hardware") -> Hardware:
    if not isinstance(data, dict):
        raise InputError(origin, "must be a JSON object")
    for key in ("id", "name", "kind", "source", "peak_flops_per_s", *_NUMBERS):
        if key not in data:
            raise InputError(f"hardware.{key}", f"is required (in {origin})")
    if data["kind"] not in KINDS:
        raise InputError("hardware.kind", f"must be one of {', '.join(KINDS)}, got {data['kind']!r}")
    for key in _NUMBERS:
        v = data[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0 or (v == 0 and key != "idle_w"):
            raise InputError(f"hardware.{key}", f"must be a positive number, got {v!r}")
    flops = data["peak_flops_per_s"]
    if not isinstance(flops, dict) or not flops:
        raise InputError("hardware.peak_flops_per_s", "must map dtypes (fp32, bf16, ...) to FLOP/s")
    for k, v in flops.items():
        if k not in FALLBACK and k != "int8":
            raise InputError(f"hardware.peak_flops_per_s.{k}", f"unknown dtype; use {', '.join(FALLBACK)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
            raise InputError(f"hardware.peak_flops_per_s.{k}", f"must be a positive FLOP/s, got {v!r}")
    if not str(data["source"]).strip():
        raise InputError("hardware.source", "must say where the numbers come from")
    known = {f for f in Hardware.__dataclass_fields__}
    return Hardware(**{k: v for k, v in data.items() if k in known})


def _dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("COSTMODEL_HARDWARE_DIR", "").split(":") if p]
    return [HARDWARE_DIR, *extra]


@functools.lru_cache(maxsize=None)
def _catalog(dirs: tuple[Path, ...]) -> dict[str, Hardware]:
    out: dict[str, Hardware] = {}
    for d in dirs:
        for f in sorted(Path(d).glob("*.json")):
            hw = hardware_from_dict(json.loads(f.read_text(encoding="utf-8")), origin=str(f))
            out[hw.id] = hw
    return out


def catalog() -> dict[str, Hardware]:
    return _catalog(tuple(_dirs()))


def list_hardware() -> list[Hardware]:
    return [catalog()[k] for k in sorted(catalog())]


def load_hardware(hw_id_or_path: str) -> Hardware:
    """A catalog id (``h100-sxm-80gb``) or a path to a hardware JSON file of the same schema."""
    cat = catalog()
    if hw_id_or_path in cat:
        return cat[hw_id_or_path]
    p = Path(hw_id_or_path)
    if hw_id_or_path.endswith(".json") or p.is_file():
        if not p.is_file():
            raise InputError("hardware", f"no such file: {hw_id_or_path}")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError("hardware", f"{hw_id_or_path} is not valid JSON: {exc}") from None
        return hardware_from_dict(data, origin=str(p))
    raise InputError("hardware", f"unknown id {hw_id_or_path!r}; known: {', '.join(sorted(cat))}")
