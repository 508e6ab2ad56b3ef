"""Per-op time sources for the serving model: the roofline of an engine profile, or measured tables.

``StepModel`` asks an op-time source for GEMMs, all-reduces and all-to-alls. ``RooflineOps`` prices them
from the datasheet peaks and the profile's efficiencies (the default; the step model folds its GEMMs into one
closed form for speed). A measured source (``time_source="measured"``) is looked up in ``costmodel.measured``
(per-op tables of a backend on a device, e.g. NVIDIA aiconfigurator's, wired in on another branch:
``tables_for(hardware_id, backend)`` with ``gemm_s(m, n, k, dtype)``), without importing it here when it is
absent; ``MeasuredOps`` adapts such a table to the same interface.
"""

from __future__ import annotations

import importlib

import numpy as np

from ..collectives import Link, alltoall_s as _alltoall_s, ring_allreduce_volume_bytes
from ..errors import InputError


class RooflineOps:
    """GEMM = max(2 m n k / (peak x eta_mm), (n k w + m (n + k) a) / (bw x eta_bw)); all-reduce = the engine's
    one-shot latency + ring volume / link bandwidth (custom all-reduce kernels of vLLM / TensorRT-LLM have a
    fixed latency of a few microseconds on NVLink instead of 2 (n-1) ring steps)."""

    name = "roofline"

    def __init__(self, hw, engine, prec):
        self.hw, self.engine, self.prec = hw, engine, prec
        self.byte_rate = hw.memory_bandwidth_bytes_per_s * engine.bandwidth

    def gemm_s(self, m, n, k, dtype):
        rate = self.hw.peak_flops(dtype) * self.engine.matmul_efficiency(dtype)
        w = self.prec.weight_bytes if dtype == self.prec.compute_dtype else self.prec.dense_bytes
        a = self.prec.act_bytes
        return np.maximum(2.0 * m * n * k / rate, (n * k * w + m * (n + k) * a) / self.byte_rate)

    def allreduce_s(self, nbytes, n: int, link: Link):
        if n <= 1:
            return 0.0 * nbytes
        return self.engine.allreduce_latency_s + ring_allreduce_volume_bytes(nbytes, n) / (
            link.bandwidth_bytes_per_s * self.engine.link_efficiency)

    def alltoall_s(self, nbytes, n: int, link: Link):
        if n <= 1:
            return 0.0 * nbytes
        eff = Link(link.bandwidth_bytes_per_s * self.engine.link_efficiency, link.latency_s)
        if isinstance(nbytes, np.ndarray):
            return (n - 1) / n * nbytes / eff.bandwidth_bytes_per_s + (n - 1) * eff.latency_s
        return _alltoall_s(nbytes, n, eff)


class MeasuredOps(RooflineOps):
    """Per-op tables (``costmodel.measured``) for GEMMs; collectives fall back to the roofline unless the
    tables provide ``allreduce_s(nbytes, n)``. ``provenance``: where the table came from."""

    name = "measured"

    def __init__(self, hw, engine, prec, tables):
        super().__init__(hw, engine, prec)
        self.tables = tables
        self.provenance = str(getattr(tables, "provenance", "measured tables"))

    def gemm_s(self, m, n, k, dtype):
        f = np.vectorize(lambda mm: self.tables.gemm_s(int(max(mm, 1)), int(n), int(k), dtype) if mm > 0 else 0.0)
        return f(m) if isinstance(m, np.ndarray) else float(f(np.asarray(m)))

    def allreduce_s(self, nbytes, n: int, link: Link):
        if hasattr(self.tables, "allreduce_s") and n > 1:
            f = np.vectorize(lambda b: self.tables.allreduce_s(float(b), n))
            return f(nbytes) if isinstance(nbytes, np.ndarray) else float(f(np.asarray(nbytes)))
        return super().allreduce_s(nbytes, n, link)


MEASURED_BACKENDS = {"tensorrt-llm": "trtllm", "vllm": "vllm", "sglang": "sglang"}


def op_times(hw, engine, prec):
    """The op-time source an engine profile asks for: roofline, or the measured tables of its backend on this
    device (InputError naming what is missing when there are none)."""
    if engine.time_source == "roofline":
        return RooflineOps(hw, engine, prec)
    backend = MEASURED_BACKENDS.get(engine.name)
    if backend is None:
        raise InputError("time_source", f"no measured tables exist for engine {engine.name}; use roofline")
    try:
        measured = importlib.import_module("costmodel.measured")
    except ImportError:
        raise InputError("time_source", "measured per-op tables are not installed (costmodel.measured); "
                                        "use roofline") from None
    tables = measured.tables_for(hw.id, backend)
    if tables is None:
        raise InputError("time_source", f"no measured {backend} tables for {hw.id}; use roofline")
    return MeasuredOps(hw, engine, prec, tables)
