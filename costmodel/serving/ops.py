"""Per-op time sources for the serving model: the roofline of an engine profile, or measured tables.

``StepModel`` asks an op-time source for GEMMs, all-reduces and all-to-alls. ``RooflineOps`` prices them
from the datasheet peaks and the profile's efficiencies (the default; the step model folds its GEMMs into one
closed form for speed). ``time_source="measured"`` prices every op of the iteration from the measured tables of
the engine's backend on the device (``costmodel.measured``, NVIDIA aiconfigurator-core's, an optional extra;
``costmodel.serving.measured_ops.MeasuredOps``); ``"auto"`` does so where such tables exist and falls back to
the roofline, saying why, where they do not. ``describe`` names the source in one line.
"""

from __future__ import annotations

import numpy as np

from ..collectives import Link, alltoall_s as _alltoall_s, ring_allreduce_volume_bytes


class RooflineOps:
    """GEMM = max(2 m n k / (peak x eta_mm), (n k w + m (n + k) a) / (bw x eta_bw)); all-reduce = the engine's
    one-shot latency + ring volume / link bandwidth (custom all-reduce kernels of vLLM / TensorRT-LLM have a
    fixed latency of a few microseconds on NVLink instead of 2 (n-1) ring steps)."""

    name = "roofline"
    note = ""  # why ``auto`` chose the roofline

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


def describe(ops, engine) -> str:
    """One line naming where the op times come from: "measured (aiconfigurator-core 0.12.0, trtllm 1.3.0rc20
    tables, h200_sxm)" or "analytic (roofline, fitted efficiencies ...)" (+ why auto chose it)."""
    if ops.name == "measured":
        return ops.provenance
    e = engine
    fitted = "fitted " if "fitted" in str(e.sources.get("kernels", "")) else ""
    text = (f"analytic (roofline with {fitted}{e.name} efficiencies: GEMM {e.matmul:.3g} bf16 / {e.matmul_fp8:.3g} fp8 / "
            f"{e.matmul_fp4:.3g} fp4 of peak, memory {e.bandwidth:.3g}, attention {e.attention:.3g})")
    return f"{text}; {ops.note}" if getattr(ops, "note", "") else text
