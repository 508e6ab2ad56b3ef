"""Facts about this machine, read without torch (the parent side uses them before a run):
device names, free host memory, NVIDIA GPUs through NVML (nvidia-ml-py, imported as ``pynvml``)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def host_memory_available_bytes() -> int | None:
    """``MemAvailable`` of /proc/meminfo in bytes: what the kernel says can be allocated without
    swapping (free + reclaimable cache). None where /proc/meminfo does not exist."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # the file says kB; it means KiB
    except (OSError, ValueError, IndexError):
        pass
    return None


def cuda_index(device: str) -> int:
    from .gpus import cuda_index as _idx

    return _idx(device)


def gpu_entry(device: str) -> dict:
    """``costmodel.profiler.gpus.describe``: which GPU ``cuda:N`` is (UUID, name, memory, MIG), from NVML and
    CUDA_VISIBLE_DEVICES, without creating a CUDA context; {"known": False, "reason": "unknown GPU: ..."} else."""
    from .gpus import describe

    return describe(device)


def device_label(device: str, entry: dict | None = None) -> str:
    """The name runs and calibrations are filed under: the GPU's (or MIG slice's) NVML name, ``cuda:N (unknown
    GPU)``, or ``cpu: <model name>``."""
    if device.startswith("cuda"):
        from .gpus import label

        return label(gpu_entry(device) if entry is None else entry)
    return f"cpu: {cpu_name()}"


def hardware_for(device: str, entry: dict | None = None, profile_dir=None) -> dict:
    """The hardware a prediction for ``device`` uses when the caller names none: {"hardware": catalog id or path
    of a hardware JSON, "source", "note"}. GPUs: the catalog profile matching the NVML name and memory exactly
    (``gpus.hardware_choice``), a MIG slice's profile scaled from its GPU's and written as JSON under
    ``profile_dir`` (so stored runs can be predicted again), else the default with a note saying so."""
    if not device.startswith("cuda"):
        return {"hardware": "cpu-generic", "source": "CPU default", "note": ""}
    from .gpus import hardware_choice, mig_hardware

    entry = gpu_entry(device) if entry is None else entry
    choice = hardware_choice(entry)
    if entry.get("mig") and choice["source"].startswith("catalog") and profile_dir is not None:
        import json
        from pathlib import Path

        from ..catalog import load_hardware

        hw = mig_hardware(load_hardware(choice["hardware"]), entry)
        path = Path(profile_dir) / "hardware" / f"{hw.id}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(hw.to_dict(), indent=1), encoding="utf-8")
        choice = {**choice, "hardware": str(path)}
    return choice


def default_hardware(device: str, label: str | None = None) -> str:
    """The catalog entry a prediction for ``device`` uses when the caller names none (``hardware_for``; a MIG
    slice gets its whole GPU's id here)."""
    return hardware_for(device)["hardware"]


def environment_parent() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count()}
