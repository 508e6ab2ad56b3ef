"""A stand-in for ``pynvml`` (nvidia-ml-py) with several GPUs, for tests on machines without one.

``FakeNvml(gpus)`` is a module object to put in ``sys.modules["pynvml"]``. Each GPU is a dict: uuid, name, total,
free (bytes), and optionally ``mig`` (a list of slices: uuid, name, total, free), ``watts`` (board power; the
energy counter advances at that rate in real time), ``energy`` (False: no energy counter), ``procs`` ({pid: bytes}).
The list order is NVML's (PCI bus) order. ``available=False`` makes ``nvmlInit`` fail as it does without a driver.
"""

from __future__ import annotations

import time
import types

H100 = {"name": "NVIDIA H100 80GB HBM3", "total": 85520809984}
A100_40 = {"name": "NVIDIA A100-SXM4-40GB", "total": 42949672960}
A100_80 = {"name": "NVIDIA A100-SXM4-80GB", "total": 85899345920}
L40 = {"name": "NVIDIA L40", "total": 48305799168}


def gpu(uuid: str, model: dict, free: float | None = None, **kw) -> dict:
    return {"uuid": uuid, "name": model["name"], "total": model["total"],
            "free": model["total"] * 0.9 if free is None else free, **kw}


class _Obj:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class FakeNvml(types.ModuleType):
    def __init__(self, gpus: list[dict], driver: str = "550.54.15", available: bool = True):
        super().__init__("pynvml")
        self.gpus = gpus
        self.driver = driver
        self.available = available
        self.t0 = time.perf_counter()
        self.inits = 0

        class NVMLError(Exception):
            pass

        self.NVMLError = NVMLError
        self.NVMLError_LibraryNotFound = type("NVMLError_LibraryNotFound", (NVMLError,), {})
        self.NVMLError_NotSupported = type("NVMLError_NotSupported", (NVMLError,), {})
        self.NVMLError_NotFound = type("NVMLError_NotFound", (NVMLError,), {})
        self.NVMLError_InvalidArgument = type("NVMLError_InvalidArgument", (NVMLError,), {})

    # ---- init ----
    def nvmlInit(self):
        if not self.available:
            raise self.NVMLError_LibraryNotFound("NVML Shared Library Not Found")
        self.inits += 1

    def nvmlShutdown(self):
        pass

    def nvmlSystemGetDriverVersion(self):
        return self.driver

    # ---- handles: ("gpu", i) or ("mig", i, j) ----
    def nvmlDeviceGetCount(self):
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, i):
        if not 0 <= i < len(self.gpus):
            raise self.NVMLError_InvalidArgument("Invalid Argument")
        return ("gpu", i)

    def nvmlDeviceGetHandleByUUID(self, uuid):
        for i, g in enumerate(self.gpus):
            if g["uuid"] == uuid:
                return ("gpu", i)
            for j, m in enumerate(g.get("mig") or []):
                if m["uuid"] == uuid:
                    return ("mig", i, j)
        raise self.NVMLError_NotFound("Not Found")

    def _rec(self, h):
        g = self.gpus[h[1]]
        return g if h[0] == "gpu" else g["mig"][h[2]]

    def nvmlDeviceGetUUID(self, h):
        return self._rec(h)["uuid"]

    def nvmlDeviceGetName(self, h):
        return self._rec(h)["name"]

    def nvmlDeviceGetMemoryInfo(self, h):
        r = self._rec(h)
        return _Obj(total=r["total"], free=r["free"], used=r["total"] - r["free"])

    def nvmlDeviceGetMigMode(self, h):
        if h[0] != "gpu" or "mig" not in self.gpus[h[1]]:
            raise self.NVMLError_NotSupported("Not Supported")
        return (1, 1)

    def nvmlDeviceGetMaxMigDeviceCount(self, h):
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, h, j):
        migs = self.gpus[h[1]].get("mig") or []
        if j >= len(migs):
            raise self.NVMLError_NotFound("Not Found")
        return ("mig", h[1], j)

    # ---- power, energy, processes ----
    def nvmlDeviceGetPowerUsage(self, h):
        if h[0] == "mig":
            raise self.NVMLError_NotSupported("Not Supported")
        return int(self.gpus[h[1]].get("watts", 300.0) * 1000)

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        g = self.gpus[h[1]]
        if h[0] == "mig" or g.get("energy") is False:
            raise self.NVMLError_NotSupported("Not Supported")
        return int(1e9 + g.get("watts", 300.0) * (time.perf_counter() - self.t0) * 1000)  # mJ

    def nvmlDeviceGetUtilizationRates(self, h):
        if h[0] == "mig":
            raise self.NVMLError_NotSupported("Not Supported")
        return _Obj(gpu=97, memory=40)

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [_Obj(pid=pid, usedGpuMemory=b) for pid, b in (self._rec(h).get("procs") or {}).items()]
