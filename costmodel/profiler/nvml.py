"""Power, utilisation and memory samples from NVML (nvidia-ml-py, imported as ``pynvml``) in a thread, for the GPU
a run really uses: the handle is found by UUID (``nvmlDeviceGetHandleByUUID``; the UUID comes from
``torch.cuda.get_device_properties(i).uuid`` through ``costmodel.profiler.gpus``), never by assuming that the CUDA
index is the NVML index.

Energy. ``nvmlDeviceGetPowerUsage`` is, on Ampere and newer, an average over about one second, and the cumulative
energy counter (``nvmlDeviceGetTotalEnergyConsumption``, mJ, Volta and newer) updates every 20-100 ms, so a window
of a few steps (0.2 s) says little. The worker therefore measures energy over a separate window of back-to-back
steps lasting at least ``ENERGY_WINDOW_S`` (``mark_window`` / ``end_window``): energy = the counter's difference
over the window where the counter exists, else the trapezoid integral of the sampled power inside the window
(biased by the 1 s averaging at the window's edges: the result says which). The window's length and steps are
reported.

Memory. ``nvmlDeviceGetMemoryInfo().used`` counts every process on the GPU and the driver's reservation; the
sampler also records this process's own usage from ``nvmlDeviceGetComputeRunningProcesses`` where the driver
reports it (not inside a PID namespace that hides host PIDs), and the caller records the device's usage before the
run (the baseline).

MIG. On a MIG slice NVML reports power for the whole board (every slice), so no energy is measured; memory is
read from the slice's own handle.
"""

from __future__ import annotations

import math
import os
import threading
import time

ENERGY_WINDOW_S = 2.0


class NvmlSampler:
    """``s = NvmlSampler(uuid); s.start(); ...; s.mark_window(); <steps>; s.end_window(n); s.stop()``,
    then ``s.summary(steps)``."""

    def __init__(self, uuid: str | None = None, interval_s: float = 0.02, mig: bool = False, pid: int | None = None):
        self.uuid = uuid
        self.interval_s = interval_s
        self.mig = mig
        self.pid = os.getpid() if pid is None else pid
        self.available = False
        self.reason = ""
        self.samples: list[tuple[float, float, float, float, float]] = []  # (t, watts, util %, used, own bytes)
        self._stop = threading.Event()
        self._thread = None
        self._window: dict = {}
        self._process_reason = ""

    def start(self) -> None:
        if not self.uuid:
            self.reason = "unknown GPU: NVML does not see the device torch uses, so nothing is sampled"
            return
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
            self._h = pynvml.nvmlDeviceGetHandleByUUID(self.uuid)
        except pynvml.NVMLError as exc:
            self.reason = f"NVML has no device with UUID {self.uuid}: {exc}"
            pynvml.nvmlShutdown()
            return
        self.available = True
        self._sample()  # the first sample now, not when the thread gets to it
        self._thread = threading.Thread(target=self._run, name="nvml-sampler", daemon=True)
        self._thread.start()

    def energy_j(self) -> float | None:
        """The cumulative energy counter in J, or None where the GPU has none (or on a MIG slice)."""
        if not self.available or self.mig:
            return None
        try:
            return self._nv.nvmlDeviceGetTotalEnergyConsumption(self._h) / 1000.0  # mJ -> J
        except self._nv.NVMLError:
            return None

    def own_used_bytes(self) -> float:
        """This process's GPU memory per NVML, NaN where the driver does not report it."""
        nv = self._nv
        for fn in ("nvmlDeviceGetComputeRunningProcesses_v3", "nvmlDeviceGetComputeRunningProcesses"):
            getter = getattr(nv, fn, None)
            if getter is None:
                continue
            try:
                procs = getter(self._h)
            except nv.NVMLError as exc:
                self._process_reason = f"nvmlDeviceGetComputeRunningProcesses: {exc}"
                return float("nan")
            for p in procs:
                if int(getattr(p, "pid", -1)) == self.pid:
                    used = getattr(p, "usedGpuMemory", None)
                    if used is None or used >= 2**63:  # NVML_VALUE_NOT_AVAILABLE
                        self._process_reason = "the driver does not report per-process memory here"
                        return float("nan")
                    return float(used)
            self._process_reason = ("this process is not in NVML's process list (a PID namespace hides host PIDs, "
                                    "or no CUDA context yet)")
            return float("nan")
        self._process_reason = "this nvidia-ml-py has no nvmlDeviceGetComputeRunningProcesses"
        return float("nan")

    def _sample(self):
        nv, h = self._nv, self._h
        watts = util = float("nan")
        if not self.mig:  # board power and utilisation are not per slice
            try:
                watts = nv.nvmlDeviceGetPowerUsage(h) / 1000.0
            except nv.NVMLError:
                pass
            try:
                util = float(nv.nvmlDeviceGetUtilizationRates(h).gpu)
            except nv.NVMLError:
                pass
        try:
            used = float(nv.nvmlDeviceGetMemoryInfo(h).used)
        except nv.NVMLError:
            used = float("nan")
        self.samples.append((time.perf_counter(), watts, util, used, self.own_used_bytes()))

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval_s)

    def mark_window(self) -> None:
        """Start of the energy window (call right after a device synchronise)."""
        if self.available:
            self._window = {"t0": time.perf_counter(), "e0": self.energy_j()}

    def end_window(self, steps: int) -> None:
        """End of the energy window of ``steps`` steps (call right after a device synchronise)."""
        if self.available and self._window:
            self._window.update({"t1": time.perf_counter(), "e1": self.energy_j(), "steps": steps})

    def stop(self) -> None:
        if not self.available or self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=2)
        self._sample()
        try:
            self._nv.nvmlShutdown()
        except self._nv.NVMLError:
            pass
        self._thread = None

    def summary(self) -> dict:
        if not self.available:
            return {"nvml_available": False, "nvml_reason": self.reason or "no NVIDIA GPU"}
        s = [x for x in self.samples if not math.isnan(x[1])]
        util = [x[2] for x in self.samples if not math.isnan(x[2])]
        used = [x[3] for x in self.samples if not math.isnan(x[3])]
        own = [x[4] for x in self.samples if not math.isnan(x[4])]
        out = {
            "nvml_available": True, "nvml_uuid": self.uuid, "nvml_samples": len(self.samples),
            "power_w_mean": sum(x[1] for x in s) / len(s) if s else None,
            "power_w_max": max((x[1] for x in s), default=None),
            "gpu_util_pct_mean": sum(util) / len(util) if util else None,
            "nvml_memory_used_max_bytes": max(used) if used else None,
            "nvml_process_used_max_bytes": max(own) if own else None,
        }
        if not own:
            out["nvml_process_used_reason"] = self._process_reason or "not sampled"
        w = self._window
        if self.mig:
            out["energy_reason"] = ("MIG slice: NVML reports power and energy for the whole board (every slice), "
                                    "so energy per step is not measured")
            return out
        if not w.get("steps"):
            out["energy_reason"] = "no energy window was run"
            return out
        span = w["t1"] - w["t0"]
        if w.get("e0") is not None and w.get("e1") is not None:
            energy, how = w["e1"] - w["e0"], "NVML total energy counter over the window"
        else:
            inside = [x for x in s if w["t0"] <= x[0] <= w["t1"]]
            if len(inside) < 2:
                out["energy_reason"] = "no energy counter and too few power samples in the window"
                return out
            energy = sum((b[0] - a[0]) * (a[1] + b[1]) / 2 for a, b in zip(inside, inside[1:]))
            energy *= span / max(inside[-1][0] - inside[0][0], 1e-9)
            how = ("trapezoid of sampled power over the window (no energy counter; nvmlDeviceGetPowerUsage averages "
                   "about 1 s on Ampere+, so the edges are smoothed)")
        out.update({"energy_j": energy, "energy_j_per_step": energy / w["steps"], "energy_method": how,
                    "energy_window_s": span, "energy_window_steps": w["steps"],
                    "energy_power_w": energy / span if span > 0 else None})
        return out
