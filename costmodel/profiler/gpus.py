"""Which physical GPU is ``cuda:N``, what it is called, and which catalog profile predicts it. No torch here.

NVML (nvidia-ml-py, imported as ``pynvml``) numbers GPUs in PCI bus order; CUDA numbers the devices a process
may see, after ``CUDA_VISIBLE_DEVICES`` (indices, ``GPU-`` UUIDs or ``MIG-`` UUIDs) and ``CUDA_DEVICE_ORDER``
(``FASTEST_FIRST`` by default, or ``PCI_BUS_ID``). So the NVML index is not the CUDA index in general. The
exact map is by UUID: ``torch.cuda.get_device_properties(i).uuid`` (the child has torch) equals
``nvmlDeviceGetUUID`` without its ``GPU-``/``MIG-`` prefix. The parent, which never imports torch, predicts the
map from ``CUDA_VISIBLE_DEVICES`` the way the CUDA driver parses it (as ``torch.cuda._parse_visible_devices``
does); when the order of plain indices could differ (``FASTEST_FIRST`` with different GPU models) it says so
(``mapping_certain: False``), and the child checks the UUID before it uses any NVML number.

Under cgroups/containers NVML may see no GPU, or not the one CUDA uses: then the device is an "unknown GPU"
and the reason is given; nothing falls back silently to some other GPU's numbers.

Catalog profiles are matched exactly by NVML name and memory size (``catalog_match``); a GPU without a profile
gets ``no catalog profile for X; predictions use Y``. MIG slices are detected and named (``NVIDIA A100-SXM4-80GB
MIG 1g.10gb``); ``mig_hardware`` scales the whole GPU's profile to the slice (compute by its GPU-slice share,
bandwidth by its memory share), and energy is not measured on a slice (NVML power covers the whole board).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

# Exact NVML names (lower case, without the "NVIDIA " / "Tesla " prefix that older drivers omit) ->
# (catalog id, memory total the card reports, bytes). The memory must match within MEMORY_TOLERANCE: the same
# name can come with several memory sizes, and a MIG slice or a cut-down SKU must not take the full card's profile.
GPU_CATALOG: dict[str, tuple[str, float]] = {
    "h100 80gb hbm3": ("h100-sxm-80gb", 85520809984),
    "h100 sxm5 80gb": ("h100-sxm-80gb", 85520809984),
    "h100 pcie": ("h100-pcie-80gb", 85520809984),
    "h200": ("h200-sxm-141gb", 150754820096),
    "b200": ("b200-sxm-192gb", 191553421312),
    "a100-sxm4-80gb": ("a100-sxm-80gb", 85899345920),
    "a100-sxm4-40gb": ("a100-sxm-40gb", 42949672960),
    "a100 80gb pcie": ("a100-pcie-80gb", 85899345920),
    "a100-pcie-80gb": ("a100-pcie-80gb", 85899345920),
    "a10g": ("a10g-24gb", 24146608128),
    "l4": ("l4-24gb", 24146608128),
    "l40s": ("l40s-48gb", 48305799168),
    "t4": ("t4-16gb", 16106127360),
    "v100-sxm2-16gb": ("v100-sxm-16gb", 17179869184),
    "v100-sxm2-32gb": ("v100-sxm-32gb", 34359738368),
    "geforce rtx 4090": ("rtx-4090-24gb", 25757220864),
    "geforce rtx 3090": ("rtx-3090-24gb", 25769803776),
}
MEMORY_TOLERANCE = 0.06  # NVML totals differ from the marketing size by a few % (ECC, firmware reservations)
DEFAULT_GPU_PROFILE = "h100-sxm-80gb"  # the estimator's default device (costmodel.estimate with no hardware)
# compute slices of a full GPU in MIG mode (A100/H100/H200/B200: 7 GPCs; A30: 4)
MIG_COMPUTE_SLICES = {"a30": 4}
MIG_COMPUTE_SLICES_DEFAULT = 7
_MIG_PROFILE = re.compile(r"(\d+)g\.(\d+)gb", re.I)


def _text(v) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def normal_name(name: str) -> str:
    n = " ".join(str(name).split()).lower()
    for prefix in ("nvidia ", "tesla "):
        if n.startswith(prefix):
            n = n[len(prefix):]
    return n


# ---- CUDA_VISIBLE_DEVICES -------------------------------------------------------------------------------------------

def parse_visible_devices(value: str | None) -> list[int] | list[str] | None:
    """``CUDA_VISIBLE_DEVICES`` as the CUDA driver reads it: None when unset (every device); a list of indices
    (``strtoul`` of each item: ``1gpu2`` is 1; a negative or unparsable item ends the list; a repeated one makes
    it empty) or of ``GPU-``/``MIG-`` UUID prefixes (an item with another prefix ends the list)."""
    if value is None:
        return None
    value = value.strip()
    if value.startswith(("GPU-", "MIG-")):
        prefix = value[:4]
        out: list[str] = []
        for item in value.split(","):
            item = item.strip()
            if item in out:
                return []
            if not item.startswith(prefix):
                break
            out.append(item)
        return out
    idx: list[int] = []
    for item in value.split(","):
        m = re.match(r"\s*([+-]?\d+)", item)
        if not m:
            break
        x = int(m.group(1))
        if x < 0:
            break
        if x in idx:
            return []
        idx.append(x)
    return idx


# ---- NVML inventory ---------------------------------------------------------------------------------------------------

def nvml_inventory() -> dict:
    """Every GPU NVML sees: {"available": True, "driver", "gpus": [{"nvml_index", "uuid", "name",
    "memory_total_bytes", "memory_free_bytes", "memory_used_bytes", "mig_enabled", "mig_devices": [...]}]} or
    {"available": False, "reason"}. Never raises; never creates a CUDA context."""
    try:
        import pynvml
    except ImportError:
        return {"available": False, "reason": "nvidia-ml-py (pynvml) is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return {"available": False, "reason": "no NVIDIA GPU (NVML library not found)"}
    except pynvml.NVMLError as exc:
        return {"available": False, "reason": f"no NVIDIA GPU (NVML: {exc})"}
    try:
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            h = pynvml.nvmlDeviceGetHandleByIndex(i)
            g = {"nvml_index": i, **_handle_info(pynvml, h), "mig_enabled": False, "mig_devices": []}
            try:
                current, _pending = pynvml.nvmlDeviceGetMigMode(h)
                g["mig_enabled"] = bool(current)
            except (pynvml.NVMLError, AttributeError):  # no MIG on this GPU / old library
                pass
            if g["mig_enabled"]:
                try:
                    slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(h)
                except pynvml.NVMLError:
                    slots = 0
                for j in range(slots):
                    try:
                        mh = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(h, j)
                    except pynvml.NVMLError:  # an empty slot
                        continue
                    info = _handle_info(pynvml, mh)
                    info["mig_profile"] = mig_profile(info["name"])
                    g["mig_devices"].append(info)
            gpus.append(g)
        try:
            driver = _text(pynvml.nvmlSystemGetDriverVersion())
        except pynvml.NVMLError:
            driver = None
        return {"available": True, "driver": driver, "gpus": gpus}
    except pynvml.NVMLError as exc:
        return {"available": False, "reason": f"NVML error: {exc}"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutdown failures do not matter here
            pass


def _handle_info(pynvml, h) -> dict:
    mem = pynvml.nvmlDeviceGetMemoryInfo(h)
    return {"uuid": _text(pynvml.nvmlDeviceGetUUID(h)), "name": _text(pynvml.nvmlDeviceGetName(h)),
            "memory_total_bytes": int(mem.total), "memory_free_bytes": int(mem.free),
            "memory_used_bytes": int(mem.used)}


def mig_profile(name: str) -> str | None:
    """'1g.10gb' from an NVML MIG device name such as 'NVIDIA A100-SXM4-80GB MIG 1g.10gb'."""
    m = _MIG_PROFILE.search(name or "")
    return f"{m.group(1)}g.{m.group(2)}gb" if m else None


def _entry(gpu: dict, mig: dict | None, cuda_index: int, how: str, certain: bool) -> dict:
    e = {"known": True, "cuda_index": cuda_index, "nvml_index": gpu["nvml_index"], "mapping": how,
         "mapping_certain": certain, "mig": mig is not None, "parent_uuid": gpu["uuid"], "parent_name": gpu["name"],
         "parent_memory_total_bytes": gpu["memory_total_bytes"]}
    src = mig or gpu
    e.update({k: src[k] for k in ("uuid", "name", "memory_total_bytes", "memory_free_bytes", "memory_used_bytes")})
    if mig is not None:
        e["mig_profile"] = mig.get("mig_profile") or mig_profile(mig["name"])
        if "MIG" not in e["name"]:
            e["name"] = f"{gpu['name']} MIG {e['mig_profile'] or '?'}"
    return e


def visible_devices(inventory: dict | None = None, env: dict | None = None) -> dict:
    """The CUDA devices this process would see, in CUDA order: {"available", "reason", "devices": [entry...],
    "visible": the raw CUDA_VISIBLE_DEVICES or None, "order"}. Each entry: cuda_index, nvml_index, uuid, name,
    memory_*_bytes, mig, mig_profile, parent_uuid/name, mapping (how it was matched), mapping_certain."""
    env = os.environ if env is None else env
    inv = nvml_inventory() if inventory is None else inventory
    raw = env.get("CUDA_VISIBLE_DEVICES")
    order = env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    out = {"available": False, "visible": raw, "order": order, "devices": []}
    if not inv.get("available"):
        out["reason"] = inv.get("reason", "no NVIDIA GPU")
        return out
    gpus = inv["gpus"]
    parsed = parse_visible_devices(raw)
    # Plain indices follow CUDA's order; FASTEST_FIRST only differs from NVML's PCI order between different models
    same_model = len({g["name"] for g in gpus}) <= 1
    certain_order = order == "PCI_BUS_ID" or same_model
    devices: list[dict] = []
    if parsed is None or (parsed and isinstance(parsed[0], int)):
        # a process sees one MIG device per MIG-enabled GPU when it is addressed by index (MIG user guide)
        enumerable = [(g, g["mig_devices"][0] if g["mig_enabled"] and g["mig_devices"] else None) for g in gpus
                      if not g["mig_enabled"] or g["mig_devices"]]
        how = "CUDA_VISIBLE_DEVICES index" if parsed is not None else "enumeration order (CUDA_VISIBLE_DEVICES unset)"
        how += f", CUDA_DEVICE_ORDER={order}"
        wanted = range(len(enumerable)) if parsed is None else parsed
        for ci, idx in enumerate(wanted):
            if idx >= len(enumerable):
                break  # an index past the last device ends the list (the driver ignores the rest)
            g, mig = enumerable[idx]
            devices.append(_entry(g, mig, ci, how, certain_order and mig is None))
    else:
        for ci, token in enumerate(parsed):
            hit = _match_uuid_prefix(token, gpus)
            if hit is None:
                break  # an unknown or ambiguous UUID ends the list
            g, mig = hit
            devices.append(_entry(g, mig, ci, "UUID in CUDA_VISIBLE_DEVICES", True))
    out["devices"] = devices
    out["available"] = bool(devices)
    if not devices:
        out["reason"] = (f"CUDA_VISIBLE_DEVICES={raw!r} names no GPU that NVML sees ({len(gpus)} GPU(s) visible to "
                         "NVML)" if raw is not None else "NVML sees no usable GPU")
    return out


def _match_uuid_prefix(token: str, gpus: list[dict]):
    """(gpu, mig or None) whose UUID starts with ``token`` (a unique prefix, as CUDA accepts); 'MIG-GPU-<uuid>/gi/ci'
    (the R450 form) names a MIG device by its parent's UUID and instance ids, which NVML exposes only on the handle:
    it matches when that GPU has exactly one MIG device."""
    hits = []
    if token.startswith("MIG-GPU-"):
        parent = token[4:].split("/", 1)[0]
        for g in gpus:
            if g["uuid"].startswith(parent) and len(g["mig_devices"]) == 1:
                hits.append((g, g["mig_devices"][0]))
        return hits[0] if len(hits) == 1 else None
    for g in gpus:
        if token.startswith("GPU-") and g["uuid"].startswith(token):
            hits.append((g, None))
        for m in g["mig_devices"]:
            if token.startswith("MIG-") and m["uuid"].startswith(token):
                hits.append((g, m))
    return hits[0] if len(hits) == 1 else None


def cuda_index(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def describe(device: str, inventory: dict | None = None, env: dict | None = None) -> dict:
    """The entry of ``device`` ("cuda", "cuda:N") or {"known": False, "reason": "unknown GPU: ..."}."""
    idx = cuda_index(device)
    vis = visible_devices(inventory, env)
    if not vis["available"]:
        return {"known": False, "cuda_index": idx, "reason": f"unknown GPU: {vis.get('reason')}"}
    if idx >= len(vis["devices"]):
        return {"known": False, "cuda_index": idx,
                "reason": f"unknown GPU: cuda:{idx} is not among the {len(vis['devices'])} device(s) this process sees "
                          f"(CUDA_VISIBLE_DEVICES={vis['visible']!r}; NVML may not see every GPU under cgroups)"}
    return vis["devices"][idx]


def match_torch_uuid(torch_uuid: str, inventory: dict) -> dict | None:
    """The NVML GPU (or MIG device) whose UUID is ``torch.cuda.get_device_properties(i).uuid`` ('xxxxxxxx-...',
    without the GPU-/MIG- prefix). None when NVML does not see it."""
    u = str(torch_uuid).lower().removeprefix("gpu-").removeprefix("mig-")
    for g in inventory.get("gpus", []):
        for m in g["mig_devices"]:
            if m["uuid"].lower().split("-", 1)[-1] == u:
                return _entry(g, m, -1, "UUID from torch.cuda.get_device_properties", True)
        if g["uuid"].lower().split("-", 1)[-1] == u:
            return _entry(g, None, -1, "UUID from torch.cuda.get_device_properties", True)
    return None


def label(entry: dict) -> str:
    """The name runs and calibrations are filed under."""
    if entry.get("known"):
        return entry["name"]
    return f"cuda:{entry.get('cuda_index', 0)} (unknown GPU)"


# ---- catalog profiles -----------------------------------------------------------------------------------------------

def catalog_match(name: str, memory_total_bytes: float | None) -> str | None:
    """The catalog id whose exact NVML name and memory size this GPU has, else None."""
    hit = GPU_CATALOG.get(normal_name(name))
    if hit is None:
        return None
    hw, mem = hit
    if memory_total_bytes is None or abs(memory_total_bytes - mem) > MEMORY_TOLERANCE * mem:
        return None
    return hw


def hardware_choice(entry: dict) -> dict:
    """{"hardware": catalog id (or None for an unknown/MIG device handled elsewhere), "source": why, "note": text
    when the prediction does not use this GPU's own profile}."""
    if not entry.get("known"):
        return {"hardware": DEFAULT_GPU_PROFILE, "source": "default",
                "note": f"{entry.get('reason', 'unknown GPU')}; predictions use {DEFAULT_GPU_PROFILE} (the default "
                        "GPU profile): pass --hardware ID or a hardware JSON for this GPU"}
    name = entry["parent_name"] if entry.get("mig") else entry["name"]
    mem = entry["parent_memory_total_bytes"] if entry.get("mig") else entry["memory_total_bytes"]
    hw = catalog_match(name, mem)
    if hw is None:
        return {"hardware": DEFAULT_GPU_PROFILE, "source": "default",
                "note": f"no catalog profile for {name} ({mem / 2**30:.1f} GiB); predictions use {DEFAULT_GPU_PROFILE} "
                        "(the default GPU profile): pass --hardware ID or a hardware JSON for this GPU"}
    if entry.get("mig"):
        return {"hardware": hw, "source": "catalog (whole GPU) scaled to the MIG slice",
                "note": f"MIG slice {entry.get('mig_profile') or '?'} of {name}: predictions use {hw} scaled to the "
                        "slice (compute by its GPU-slice share, bandwidth by its memory share); energy is not measured "
                        "(NVML board power covers every slice)"}
    return {"hardware": hw, "source": f"catalog match by NVML name and memory ({name})", "note": ""}


def mig_hardware(base, entry: dict):
    """The whole GPU's ``Hardware`` scaled to a MIG slice: peaks x g/G (GPU slices of G), bandwidth x the slice's
    share of the memory, memory = the slice's, power x g/G; no NVLink between slices (intra-node bandwidth 0 is not
    allowed by the schema, so it keeps PCIe-like 1/10 of the board's)."""
    prof = entry.get("mig_profile") or ""
    m = _MIG_PROFILE.search(prof)
    if not m:
        raise ValueError(f"cannot read the MIG profile of {entry.get('name')!r}")
    g = int(m.group(1))
    total = MIG_COMPUTE_SLICES.get(normal_name(entry["parent_name"]).split()[0], MIG_COMPUTE_SLICES_DEFAULT)
    cf = min(g / total, 1.0)
    mf = min(entry["memory_total_bytes"] / entry["parent_memory_total_bytes"], 1.0)
    return replace(base, id=f"{base.id}-mig-{prof}", name=f"{base.name} MIG {prof}",
                   memory_bytes=float(entry["memory_total_bytes"]),
                   memory_bandwidth_bytes_per_s=base.memory_bandwidth_bytes_per_s * mf,
                   peak_flops_per_s={k: v * cf for k, v in base.peak_flops_per_s.items()},
                   tdp_w=base.tdp_w * cf, idle_w=base.idle_w * cf,
                   intra_node_bandwidth_bytes_per_s=base.intra_node_bandwidth_bytes_per_s / 10,
                   source=f"{base.source}; scaled to MIG {prof}: compute x {g}/{total}, bandwidth x {mf:.3f}",
                   notes=f"MIG slice {prof} of {base.id} (costmodel.profiler.gpus.mig_hardware)")
