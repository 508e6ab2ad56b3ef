"""Hardware catalog: ``costmodel/assets/hardware/<id>.json`` (one device a file, each with its datasheet source), plus
user files given by path or placed in folders named by ``COSTMODEL_HARDWARE_DIR`` (colon-separated; a user
file whose id matches a catalog id replaces that entry). Files are read on first use, never at import.

Units are in the key names and are base units: bytes, FLOP/s, bytes/s, watts. ``peak_flops_per_s`` holds
dense (no 2:4 sparsity) peaks per dtype; see ``Hardware.peak_flops`` for what a missing dtype runs at.

``fp4`` is the 4-bit float tensor-core rate (NVIDIA Blackwell NVFP4/MXFP4, AMD CDNA 4 MXFP4: E2M1 values with a
shared block scale). A device without it runs fp4 at its fp8 rate, else the faster of bf16/fp16, else fp32.

``nvlink_domain_gpus`` (optional, default ``gpus_per_node``) is how many devices share the scale-up fabric whose
per-direction bandwidth is ``intra_node_bandwidth_bytes_per_s`` (NVLink/NVSwitch, Infinity Fabric). It is the node
for an HGX/DGX board (8), but a GB200/GB300 NVL72 rack joins 72 GPUs in one NVLink domain while a compute tray
("node": one host OS) holds 4. It must be at least ``gpus_per_node``.

``usd_per_device_hour`` (optional) is a record's own price per device-hour. Catalog records take theirs from the
price catalog (``costmodel.prices``); a device file given by path has no price unless it carries one, even when it
reuses a catalog id (``is_catalog_record``; the CLI notes that such a file replaces the catalog record). A user
folder's file that cannot be read or fails the schema is skipped and named in ``catalog_notes()``.

Every file is read through ``costmodel.safe_json.read_json_file`` (regular files only, at most 1 MB, strict JSON)."""

from __future__ import annotations

import functools
import math
import os
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

from .errors import InputError
from .safe_json import read_json_file

ASSETS_DIR = Path(__file__).resolve().parent / "assets"
HARDWARE_DIR = ASSETS_DIR / "hardware"
ENV_DIRS = "COSTMODEL_HARDWARE_DIR"
# The device every command, page and API call uses when none is named (one home for this rule).
DEFAULT_HARDWARE = "h100-sxm-80gb"
# a device, price or grid file is a few KB; anything larger is refused before it is parsed
MAX_FILE_BYTES = 1_000_000

# kind picks the default efficiency and whether a CUDA-context overhead is counted (only "cpu" differs): Apple
# M-series GPUs (PyTorch MPS, eager) and Intel Gaudi (HPU, eager) are "gpu" records
KINDS = ("gpu", "tpu", "cpu")
DTYPES = ("fp32", "tf32", "bf16", "fp16", "fp8", "int8", "fp4")
# A dtype the device lacks runs at the next wider level it has: fp4 -> fp8 -> bf16/fp16; fp8/int8 -> bf16/fp16 (the
# faster of the two the device lists) -> fp32; tf32 -> fp32. bf16 and fp16 fall straight to fp32: a device without bf16
# (V100, T4) does not run it on its fp16 units, and one without fp16 (TPU) computes it in fp32.
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
                 "float16": "fp16", "half": "fp16", "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
                 "float4": "fp4", "float4_e2m1fn_x2": "fp4", "nvfp4": "fp4", "mxfp4": "fp4"}

_STRINGS = ("id", "name", "vendor", "kind", "source")
_POSITIVE = ("memory_bytes", "memory_bandwidth_bytes_per_s", "tdp_w", "intra_node_bandwidth_bytes_per_s",
             "inter_node_bandwidth_bytes_per_s")
_UNITS = {"memory_bytes": "bytes", "memory_bandwidth_bytes_per_s": "bytes/s", "tdp_w": "watts", "idle_w": "watts",
          "intra_node_bandwidth_bytes_per_s": "bytes/s", "inter_node_bandwidth_bytes_per_s": "bytes/s"}
REQUIRED = (*_STRINGS, "memory_bytes", "memory_bandwidth_bytes_per_s", "peak_flops_per_s", "tdp_w", "idle_w",
            "intra_node_bandwidth_bytes_per_s", "inter_node_bandwidth_bytes_per_s", "gpus_per_node")
OPTIONAL = ("release_year", "notes", "sparse_2_4_speedup", "nvlink_domain_gpus", "usd_per_device_hour")

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
    # devices sharing the intra_node (NVLink) fabric; 0 = not given, taken as gpus_per_node
    nvlink_domain_gpus: int = 0
    # the record's own price per device-hour (a device file's rental or amortized price); None: catalog records
    # take theirs from costmodel/assets/prices, a device file without one has no price
    usd_per_device_hour: float | None = None

    def __post_init__(self):
        # read-only view: records come from a shared cache, so a caller must not be able to edit one in place
        object.__setattr__(self, "peak_flops_per_s", MappingProxyType(dict(self.peak_flops_per_s)))
        if not self.nvlink_domain_gpus:
            object.__setattr__(self, "nvlink_domain_gpus", self.gpus_per_node)

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype`` (fp32, tf32, bf16, fp16, fp8, int8, fp4, or a torch spelling such as
        ``bfloat16``). A dtype the device lacks falls back to the next wider one it has: tf32 -> fp32;
        fp4 -> fp8, else the faster of bf16/fp16, else fp32; fp8/int8 -> the faster of bf16/fp16, else fp32;
        bf16/fp16 -> fp32."""
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
        if out["usd_per_device_hour"] is None:  # optional: absent, as in the catalog files
            del out["usd_per_device_hour"]
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
    nd = data.get("nvlink_domain_gpus", n)
    if isinstance(nd, bool) or not isinstance(nd, int) or nd < n:
        raise InputError("hardware.nvlink_domain_gpus", f"must be a whole number >= gpus_per_node ({n}): the devices "
                                                        f"sharing the NVLink/scale-up fabric{where}, got {nd!r}")
    sp = data.get("sparse_2_4_speedup", 1.0)
    if _bad_number(sp) or not 1.0 <= sp <= 4.0:
        raise InputError("hardware.sparse_2_4_speedup", f"must be a number from 1 (no sparse tensor cores) to 4{where}, "
                                                        f"got {sp!r}")
    price = data.get("usd_per_device_hour")
    if price is not None and (_bad_number(price) or not 0 < price <= 1e6):
        raise InputError("hardware.usd_per_device_hour", f"must be a price in USD per device-hour, more than 0 and at "
                                                         f"most 1e6{where}, got {price!r}")
    return Hardware(**{k: data[k] for k in (*REQUIRED, *OPTIONAL) if k in data})


def _read_json(path: Path, field_name: str = "hardware"):
    """A catalog, device, price or grid file through the one safe reader (``costmodel.safe_json``)."""
    return read_json_file(path, MAX_FILE_BYTES, field=field_name)


# The environment variables naming user catalog files: hardware here, prices and grid in costmodel.prices.
CATALOG_ENVS = (ENV_DIRS, "COSTMODEL_PRICES_DIR", "COSTMODEL_GRID_DIR")
# How often (seconds) catalog_state() looks at the catalog files' modification times again
CATALOG_CHECK_S = 1.0
_STATE: tuple = ((), -math.inf, None, ((), 0))  # (environment, when the files were looked at, their stamp, state)
_STATE_LOCK = threading.Lock()


def _stamp(path: Path) -> tuple:
    """(path, mtime, size) of a file, or of a folder and every JSON file in it; (path,) if it is neither."""
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return (str(path),)
    if not os.path.isdir(path):
        return (str(path), st.st_mtime_ns, st.st_size)
    try:
        with os.scandir(path) as it:
            files = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it if e.name.endswith(".json"))
    except OSError:
        files = []
    return (str(path), st.st_mtime_ns, tuple(files))


def catalog_state() -> tuple:
    """What every catalog (hardware, prices, grid) is read from, as a small key: (the values of ``CATALOG_ENVS``, a
    generation number). The environment is looked at on every call; the modification times and sizes of the
    built-in and user catalog folders and files once per ``CATALOG_CHECK_S`` seconds, and the generation grows when
    they change. The catalog caches, and the caches of what is derived from them (price lists and medians, the cost
    of a device-hour), key on it: another folder named, a file added, removed or edited gives a new state and a
    fresh read; an unchanged one costs a few environment look-ups per call."""
    global _STATE
    env = tuple(os.environ.get(k, "") for k in CATALOG_ENVS)
    cur = _STATE
    if env == cur[0] and time.monotonic() - cur[1] < CATALOG_CHECK_S:
        return cur[3]
    with _STATE_LOCK:
        cur = _STATE
        paths = [HARDWARE_DIR, ASSETS_DIR / "prices", ASSETS_DIR / "grid"]
        paths += [Path(p).expanduser() for value in env for p in value.split(os.pathsep) if p.strip()]
        stamp = (env, tuple(_stamp(p) for p in paths))
        state = cur[3] if stamp == cur[2] else (env, cur[3][1] + 1)
        _STATE = (env, time.monotonic(), stamp, state)
    return state


@functools.lru_cache(maxsize=16)
def _dirs(env: str) -> tuple[Path, ...]:
    """The built-in folder and those named by ``COSTMODEL_HARDWARE_DIR``'s value ``env``."""
    extra = [Path(p).expanduser() for p in env.split(os.pathsep) if p.strip()]
    return (HARDWARE_DIR, *extra)


_CURRENT: tuple = (None, None)  # (state, what _catalog gave for it): one look-up per state, not per call


def _current() -> tuple[Mapping[str, Hardware], tuple[str, ...]]:
    state = catalog_state()
    cur = _CURRENT
    if cur[0] is not state:
        cur = (state, _catalog(_dirs(state[0][0]), state))
        globals()["_CURRENT"] = cur
    return cur[1]


@functools.lru_cache(maxsize=4)
def _catalog(dirs: tuple[Path, ...], state: tuple = ()) -> tuple[Mapping[str, Hardware], tuple[str, ...]]:
    """(id -> Hardware, notes). A bad built-in file is a broken install (an error); a bad user folder or file is
    skipped and named in the notes, so one broken user file does not stop every command."""
    out: dict[str, Hardware] = {}
    notes: list[str] = []
    for i, d in enumerate(dirs):
        if not d.is_dir():
            if i == 0:
                raise InputError("hardware", f"catalog folder {d} is missing (broken install?)")
            notes.append(f"{ENV_DIRS}: {d} is not a folder (skipped); set it to folders of hardware JSON files, "
                         f"separated by '{os.pathsep}'")
            continue
        for f in sorted(d.glob("*.json")):
            if i == 0:
                hw = hardware_from_dict(_read_json(f), origin=str(f))
            else:
                try:
                    hw = hardware_from_dict(_read_json(f), origin=str(f))
                except InputError as err:
                    notes.append(f"{ENV_DIRS}: skipped {f}: {err}")
                    continue
                if hw.id in out:
                    notes.append(f"{ENV_DIRS}: {f} replaces the record {hw.id!r}")
            out[hw.id] = hw  # later folders (user ones) replace earlier ids
    return MappingProxyType(out), tuple(notes)


def catalog() -> Mapping[str, Hardware]:
    """id -> Hardware for the built-in catalog plus the ``COSTMODEL_HARDWARE_DIR`` folders (cached per
    ``catalog_state()``)."""
    return _current()[0]


def catalog_notes() -> tuple[str, ...]:
    """What loading the user folders skipped or replaced (a bad file, a folder that is not one, a reused id)."""
    return _current()[1]


def is_catalog_record(hw: Hardware) -> bool:
    """Whether ``hw`` is exactly the catalog's record of its id (then the price catalog applies to it); a device
    file, a custom device or an edited copy of a catalog record is not."""
    return catalog().get(hw.id) == hw


def list_hardware() -> list[Hardware]:
    """Every catalog record, sorted by id."""
    cat = catalog()
    return [cat[k] for k in sorted(cat)]


def resolve_hardware(hardware: "Hardware | PathLike | None") -> Hardware:
    """``load_hardware`` with ``None`` (or "") meaning ``DEFAULT_HARDWARE``."""
    return load_hardware(hardware or DEFAULT_HARDWARE)


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
    if text.endswith(".json") or os.sep in text or "/" in text or _is_file(p):
        return hardware_from_dict(_read_json(p), origin=str(p))
    skipped = [n for n in catalog_notes() if "skipped" in n]
    raise InputError("hardware", f"unknown id {text[:80]!r}; known: {', '.join(sorted(cat))} "
                                 f"(or give a path to a hardware JSON file)"
                                 + (f"; {'; '.join(skipped)}" if skipped else ""))


def _is_file(p: Path) -> bool:
    try:
        return p.is_file()
    except (OSError, ValueError):  # a name the OS refuses (too long, NUL byte)
        return False


def replaced_catalog_note(hw: Hardware, given) -> str | None:
    """A note when a device file (``given``: the path the user named) reuses a catalog id with other numbers: the
    file's record replaces the catalog's for this run (its own power and memory; its own price, or none)."""
    cat = catalog()
    if isinstance(given, (str, os.PathLike)) and os.fspath(given) not in cat and hw.id in cat and cat[hw.id] != hw:
        price = (f"its own price ${hw.usd_per_device_hour:g}/device-hour" if hw.usd_per_device_hour is not None
                 else "no price (add usd_per_device_hour to the file, or give --usd-per-device-hour)")
        return (f"hardware: {os.fspath(given)} reuses the catalog id {hw.id!r}; its record replaces the catalog's "
                f"for this run (its own memory, FLOP/s and power; {price})")
    return None
