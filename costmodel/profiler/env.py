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
    return int(device.split(":", 1)[1]) if ":" in device else 0


def nvml_device(index: int = 0) -> dict:
    """{"available": True, "name", "driver", "memory_total_bytes", "memory_free_bytes", "memory_used_bytes"}
    or {"available": False, "reason": "no NVIDIA GPU" | ...}. Never raises; never creates a CUDA context."""
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
        if index >= pynvml.nvmlDeviceGetCount():
            return {"available": False, "reason": f"no NVIDIA GPU with index {index}"}
        h = pynvml.nvmlDeviceGetHandleByIndex(index)
        name = pynvml.nvmlDeviceGetName(h)
        driver = pynvml.nvmlSystemGetDriverVersion()
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        return {"available": True, "name": name.decode() if isinstance(name, bytes) else name,
                "driver": driver.decode() if isinstance(driver, bytes) else driver,
                "memory_total_bytes": int(mem.total), "memory_free_bytes": int(mem.free),
                "memory_used_bytes": int(mem.used)}
    except pynvml.NVMLError as exc:
        return {"available": False, "reason": f"NVML error: {exc}"}
    finally:
        try:
            pynvml.nvmlShutdown()
        except Exception:  # noqa: BLE001 - shutdown failures do not matter here
            pass


def device_label(device: str) -> str:
    """The name runs and calibrations are filed under: the GPU's name, or ``cpu: <model name>``."""
    if device.startswith("cuda"):
        info = nvml_device(cuda_index(device))
        return info["name"] if info.get("available") else f"cuda:{cuda_index(device)} (unknown GPU)"
    return f"cpu: {cpu_name()}"


# GPU name fragments -> hardware catalog id (most specific first)
_GPU_CATALOG = (
    (("h100", "pcie"), "h100-pcie-80gb"), (("h100",), "h100-sxm-80gb"), (("h200",), "h200-sxm-141gb"),
    (("b200",), "b200-sxm-192gb"), (("a100", "pcie"), "a100-pcie-80gb"), (("a100", "40gb"), "a100-sxm-40gb"),
    (("a100",), "a100-sxm-80gb"), (("l40s",), "l40s-48gb"), (("a10g",), "a10g-24gb"), (("l4",), "l4-24gb"),
    (("t4",), "t4-16gb"), (("v100", "16gb"), "v100-sxm-16gb"), (("v100",), "v100-sxm-32gb"),
    (("4090",), "rtx-4090-24gb"), (("3090",), "rtx-3090-24gb"), (("mi300x",), "mi300x-192gb"),
)


def default_hardware(device: str, label: str) -> str:
    """The catalog entry a prediction for ``device`` uses when the caller names none."""
    if device.startswith("cuda"):
        low = label.lower()
        for keys, hw in _GPU_CATALOG:
            if all(k in low for k in keys):
                return hw
        return "h100-sxm-80gb"
    return "cpu-generic"


def environment_parent() -> dict:
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
            "cpu_count": os.cpu_count()}
