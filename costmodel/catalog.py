"""Hardware catalog: ``assets/hardware/<id>.json`` (one device a file, each with its datasheet source), plus
user files given by path or placed in folders named by ``COSTMODEL_HARDWARE_DIR`` (colon-separated; a user
file whose id matches a catalog id replaces that entry). Files are read on first use, never at import.

Units are in the key names and are base units: bytes, FLOP/s, bytes/s, watts. ``peak_flops_per_s`` holds
dense (no 2:4 sparsity) peaks per dtype; see ``Hardware.peak_flops`` for what a missing dtype runs at."""

from __future__ import annotations

import functools
import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

from .errors import InputError

ASSETS_DIR = Path(__file__).resolve().parent.parent / "assets"
HARDWARE_DIR = ASSETS_DIR / "hardware"
ENV_DIRS = "COSTMODEL_HARDWARE_DIR"

KINDS = ("gpu", "tpu", "cpu")
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")
# A dtype the device lacks runs at the next wider level it has: fp8/int8 -> bf16/fp16 (the faster of the two
# the device lists) -> fp32; tf32 -> fp32. bf16 and fp16 fall straight to fp32: a device without bf16 (V100,
# T4) does not run it on its fp16 units, and one without fp16 (TPU) computes it in fp32.
FALLBACK: dict[str, tuple[tuple[str, ...], ...]] = {
    "fp32": (),
    "tf32": (("fp32",),),
    "bf16": (("fp32",),),
    "fp16": (("fp32",),),
    "fp8": (("bf16", "fp16"), ("fp32",)),
    "int8": (("bf16", "fp16"), ("fp32",)),
    "fp4": (("fp8",), ("bf16", "fp16"), ("fp32",)),
}
# torch / numpy spellings accepted by Hardware.peak_flops
DTYPE_ALIASES = {"float32": "fp32", "float": "fp32", "tensorfloat32": "tf32", "bfloat16": "bf16",
                 "float16": "fp16", "half": "fp16", "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8"}

_STRINGS = ("id", "name", "vendor", "kind", "source")
_POSITIVE = ("memory_bytes", "memory_bandwidth_bytes_per_s", "tdp_w", "intra_node_bandwidth_bytes_per_s",
             "inter_node_bandwidth_bytes_per_s")
_UNITS = {"memory_bytes": "bytes", "memory_bandwidth_bytes_per_s": "bytes/s", "tdp_w": "watts", "idle_w": "watts",
          "intra_node_bandwidth_bytes_per_s": "bytes/s", "inter_node_bandwidth_bytes_per_s": "bytes/s"}
REQUIRED = (*_STRINGS, "memory_bytes", "memory_bandwidth_bytes_per_s", "peak_flops_per_s", "tdp_w", "idle_w",
            "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "gpus_per_node")
OPTIONAL = ("release_year", "notes", "sparse_2_4_speedup")

PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class Hardware:
    """One device (per GPU / TPU chip / CPU socket). Catalog records are shared and read-only."""

    id: str
    name: str
    vendor: str
    kind: str
    memory_bytes: float
    memory_bandwidth_bytes_per_s: float
    peak_flops_per_s: Mapping[str, float] = field(hash=False)
    tdp_w: float
    idle_w: float
    intra_node_bandwidth_bytes_per_s: float
    inter_node_bandwidth_bytes_per_s: float
    gpus_per_node: int
    source: str
    release_year: int = 0
    notes: str = ""
    # how much faster matmuls run with 2:4 structured-sparse weights (sparse tensor cores): 1.0 = no support
    sparse_2_4_speedup: float = 1.0

    def __post_init__(self):
        # read-only view: records come from a shared cache, so a caller must not be able to edit one in place
        object.__setattr__(self, "peak_flops_per_s", MappingProxyType(dict(self.peak_flops_per_s)))

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (fp32, tf32, bf16, fp16, fp8, int8, or a torch spelling such as
        ``bfloat16``). A dtype the device lacks falls back to the next wider one it has: tf32 -> fp32;
        fp8/int8 -> the faster of bf16/fp16, else fp32; bf16/fp16 -> fp32."""
        key = str(dtype).strip().lower().replace("torch.", "")
        key = DTYPE_ALIASES.get(key, key)
        if key not in FALLBACK:
            raise InputError("dtype", f"unknown {dtype!r}; use one of {', '.join(DTYPES)}")
        for level in ((key,), *FALLBACK[key]):
            rates = [self.peak_flops_per_s[d] for d in level if d in self.peak_flops_per_s]
            if rates:
                return float(max(rates))
        raise InputError("hardware.peak_flops_per_s", f"{self.id} lists no rate for {key} or fp32")

    def to_dict(self) -> dict:
        """Plain JSON-ready dict in the file schema (``hardware_from_dict(hw.to_dict()) == hw``)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["peak_flops_per_s"] = dict(self.peak_flops_per_s)
        return out


def _bad_number(v) -> bool:
    return isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)


def hardware_from_dict(data: dict, origin: str = "hardware") -> Hardware:
    """Validate one record of the file schema; every problem is an ``InputError`` naming the field."""
    where = f" (in {origin})" if origin != "hardware" else ""
    if not isinstance(data, dict):
        raise InputError("hardware", f"must be a JSON object with keys {', '.join(REQUIRED)}{where}")
    unknown = sorted(set(data) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise InputError(f"hardware.{unknown[0]}",
                         f"unknown key{where}; allowed: {', '.join((*REQUIRED, *OPTIONAL))}")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise InputError(f"hardware.{missing[0]}", f"is required{where}; required keys: {', '.join(REQUIRED)}")
    for key in _STRINGS:
        if not isinstance(data[key], str) or not data[key].strip():
            raise InputError(f"hardware.{key}", f"must be a non-empty string{where}, got {data[key]!r}")
    if data["kind"] not in KINDS:
        raise InputError("hardware.kind", f"must be one of {', '.join(KINDS)}{where}, got {data['kind']!r}")
    for key in _POSITIVE:
        v = data[key]
        if _bad_number(v) or v <= 0:
            raise InputError(f"hardware.{key}", f"must be a positive number of {_UNITS[key]}{where}, got {v!r}")
    idle = data["idle_w"]
    if _bad_number(idle) or idle < 0:
        raise InputError("hardware.idle_w", f"must be a number of watts >= 0{where}, got {idle!r}")
    if idle > data["tdp_w"]:
        raise InputError("hardware.idle_w", f"must not exceed tdp_w ({data['tdp_w']} W){where}, got {idle!r}")
    n = data["gpus_per_node"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError("hardware.gpus_per_node", f"must be a whole number >= 1{where}, got {n!r}")
    flops = data["peak_flops_per_s"]
    if not isinstance(flops, dict) or not flops:
        raise InputError("hardware.peak_flops_per_s",
                         f"must map dtypes ({', '.join(DTYPES)}) to dense FLOP/s{where}, got {flops!r}")
    for k, v in flops.items():
        if k not in DTYPES:
            raise InputError(f"hardware.peak_flops_per_s.{k}", f"unknown dtype{where}; use {', '.join(DTYPES)}")
        if _bad_number(v) or v <= 0:
            raise InputError(f"hardware.peak_flops_per_s.{k}", f"must be a positive number of FLOP/s{where}, "
                                                               f"got {v!r}")
    if "fp32" not in flops:
        raise InputError("hardware.peak_flops_per_s.fp32",
                         f"is required (every dtype falls back to it){where}")
    year = data.get("release_year", 0)
    if isinstance(year, bool) or not isinstance(year, int) or year < 0:
        raise InputError("hardware.release_year", f"must be a year such as 2022{where}, got {year!r}")
    if not isinstance(data.get("notes", ""), str):
        raise InputError("hardware.notes", f"must be a string{where}")
    sp = data.get("sparse_2_4_speedup", 1.0)
    if _bad_number(sp) or not 1.0 <= sp <= 4.0:
        raise InputError("hardware.sparse_2_4_speedup", f"must be a number from 1 (no sparse tensor cores) to 4{where}, "
                                                        f"got {sp!r}")
    return Hardware(**{k: data[k] for k in (*REQUIRED, *OPTIONAL) if k in data})


def _read_json(path: Path, field_name: str = "hardware"):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(field_name, f"cannot read {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(field_name, f"{path} is not valid JSON: {exc}") from None


def _dirs() -> tuple[Path, ...]:
    extra = [Path(p).expanduser() for p in os.environ.get(ENV_DIRS, "").split(os.pathsep) if p.strip()]
    return (HARDWARE_DIR, *extra)


@functools.lru_cache(maxsize=None)
def _catalog(dirs: tuple[Path, ...]) -> Mapping[str, Hardware]:
    out: dict[str, Hardware] = {}
    for i, d in enumerate(dirs):
        if not d.is_dir():
            if i == 0:
                raise InputError("hardware", f"catalog folder {d} is missing (broken install?)")
            raise InputError(ENV_DIRS, f"{d} is not a folder; set it to folders of hardware JSON files, "
                                       f"separated by '{os.pathsep}'")
        for f in sorted(d.glob("*.json")):
            hw = hardware_from_dict(_read_json(f), origin=str(f))
            out[hw.id] = hw  # later folders (user ones) replace earlier ids
    return MappingProxyType(out)


def catalog() -> Mapping[str, Hardware]:
    """id -> Hardware for the built-in catalog plus the ``COSTMODEL_HARDWARE_DIR`` folders (cached)."""
    return _catalog(_dirs())


def list_hardware() -> list[Hardware]:
    """Every catalog record, sorted by id."""
    cat = catalog()
    return [cat[k] for k in sorted(cat)]


def load_hardware(hw_id_or_path: PathLike) -> Hardware:
    """A catalog id (``h100-sxm-80gb``) or a path to a hardware JSON file of the same schema."""
    if isinstance(hw_id_or_path, Hardware):
        return hw_id_or_path
    if not isinstance(hw_id_or_path, (str, os.PathLike)):
        raise InputError("hardware", f"must be a catalog id or a path to a JSON file, got {hw_id_or_path!r}")
    text = os.fspath(hw_id_or_path)
    cat = catalog()
    if text in cat:
        return cat[text]
    p = Path(text).expanduser()
    if text.endswith(".json") or os.sep in text or p.is_file():
        if not p.is_file():
            raise InputError("hardware", f"no such file: {text}")
        return hardware_from_dict(_read_json(p), origin=str(p))
    raise InputError("hardware", f"unknown id {text!r}; known: {', '.join(sorted(cat))} "
                                 f"(or give a path to a hardware JSON file)")
