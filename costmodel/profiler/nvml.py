"""Power, utilization and memory samples from NVML (nvidia-ml-py, imported as ``pynvml``) in a thread.

Energy per step comes from the GPU's cumulative energy counter (``nvmlDeviceGetTotalEnergyConsumption``,
millijoules, Volta and newer) read before and after the measured steps; where that counter is missing,
from the trapezoid integral of the sampled board power (``nvmlDeviceGetPowerUsage``, milliwatts) over
the same interval. Without an NVIDIA GPU ``start()`` reports ``available: False`` with "no NVIDIA GPU"
(``pynvml.nvmlInit`` raises ``NVMLError_LibraryNotFound``) and nothing is sampled.
"""

from __future__ import annotations

import threading
import time


class NvmlSampler:
    """``with NvmlSampler(index) as s: ...`` then ``s.summary(steps)``."""

    def __init__(self, index: int = 0, interval_s: float = 0.02):
        self.index = index
        self.interval_s = interval_s
        self.available = False
        self.reason = ""
        self.samples: list[tuple[float, float, float, float]] = []  # (t, watts, util %, used bytes)
        self._stop = threading.Event()
        self._thread = None
        self._energy0 = self._energy1 = None
        self._t0 = self._t1 = 0.0

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self) -> None:
        try:
            import pynvml
        except ImportError:
            self.reason = "nvidia-ml-py (pynvml) is not installed"
            return
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError_LibraryNotFound:
            self.reason = "no NVIDIA GPU (NVML library not found)"
            return
        except pynvml.NVMLError as exc:
            self.reason = f"no NVIDIA GPU (NVML: {exc})"
            return
        self._nv = pynvml
        try:
            self._h = pynvml.nvmlDeviceGetHandleByIndex(self.index)
        except pynvml.NVMLError as exc:
            self.reason = f"NVML: {exc}"
            return
        self.available = True
        self._energy0 = self._energy()
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def _energy(self):
        try:
            return self._nv.nvmlDeviceGetTotalEnergyConsumption(self._h) / 1000.0  # mJ -> J
        except self._nv.NVMLError:
            return None

    def _sample(self):
        nv, h = self._nv, self._h
        try:
            watts = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
        except nv.NVMLError:
            watts = float("nan")
        try:
            util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
        except nv.NVMLError:
            util = float("nan")
        try:
            used = float(nv.nvmlDeviceGetMemoryInfo(h).used)
        except nv.NVMLError:
            used = float("nan")
        self.samples.append((time.perf_counter(), watts, util, used))

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        if not self.available or self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
        self._sample()
        self._t1 = time.perf_counter()
        self._energy1 = self._energy()
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass
        self._thread = None

    def summary(self, steps: int) -> dict:
        if not self.available:
            return {"nvml_available": False, "nvml_reason": self.reason or "no NVIDIA GPU"}
        import math

        s = [x for x in self.samples if not math.isnan(x[1])]
        integral = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(s, s[1:]))
        if self._energy0 is not None and self._energy1 is not None:
            energy, how = self._energy1 - self._energy0, "NVML total energy counter"
        else:
            energy, how = integral, "trapezoid of sampled power"
        util = [x[2] for x in self.samples if not math.isnan(x[2])]
        used = [x[3] for x in self.samples if not math.isnan(x[3])]
        return {
            "nvml_available": True,
            "nvml_samples": len(self.samples),
            "power_w_mean": sum(x[1] for x in s) / len(s) if s else None,
            "power_w_max": max((x[1] for x in s), default=None),
            "gpu_util_pct_mean": sum(util) / len(util) if util else None,
            "nvml_memory_used_max_bytes": max(used) if used else None,
            "energy_j": energy,
            "energy_j_per_step": energy / steps if steps else None,
            "energy_method": how,
            "sampled_seconds": self._t1 - self._t0,
        }
