"""Step time from the per-layer ledger: a roofline per row, plus host overhead.

For each ledger row (docs/formulas.md, "Time"):

    device_s(row) = max(flops / (peak_flops[dtype] * eff.matmul),
                        bytes  / (peak_bandwidth  * eff.bandwidth))

and for a whole pass

    pass_s = max(host_s, sum(device_s))        host_s = eff.overhead_s * host ops + fixed

(host ops: the Python-level torch calls of each row in eager mode, ``HOST_OPS``)

because eager PyTorch launches kernels asynchronously: the GPU runs behind the Python thread, so
a pass takes as long as the slower of the two (the host wins for small batches and decode
steps). The optimizer step is memory-bound (it streams weights, gradients and states once).

``Efficiency`` holds the achievable fractions of peak and the overhead terms; every number
here is shown next to the result it affects and can be edited or fitted from measurements
(costmodel.profiler calibration).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, replace

from .errors import InputError
from .layers import EAGER_PASSES, HOST_OPS, Layer, expected_experts
from .workload import WEIGHT_FORMAT_BYTES


GEMM_SOURCES = ("curve", "measured")
ATTENTION_KERNELS = ("sdpa", "flash")

# The backward of FlashAttention recomputes the score matrix: dQ, dK, dV, dP and the recomputed S = 5
# matmuls of the forward's size (2 in the forward): 2.5x the forward FLOPs (Dao 2023, FlashAttention-2,
# Algorithm 2; torch's FlopCounterMode counts the flash/efficient/cuDNN SDPA backward the same way).
FLASH_BACKWARD_FLOPS = 2.5
# Every fp8/fp4 GEMM reads its bf16 weight and writes the low-precision copy (+ amax) each micro-batch: 2 + 1
# bytes per weight (Transformer Engine, torchao float8); the activation casts depend on the engine
# (``Efficiency.fp8_cast_bytes``: separate kernels in torchao, fused into the preceding norm or activation in TE).
FP8_WEIGHT_CAST_BYTES = 3.0


@dataclass(frozen=True)
class Efficiency:
    """What fraction of a device's datasheet peak real code reaches, and the host overhead.

    - ``matmul``: fraction of dense peak FLOP/s reached by matmul/conv/attention FLOPs on tensor
      cores (bf16, fp16, fp8, TF32).
    - ``matmul_fp32``: the same for plain fp32 (CUDA-core SGEMM reaches a larger fraction of its
      much lower peak).
    - ``bandwidth``: fraction of peak memory bandwidth reached by memory-bound work.
    - ``overhead_s``: host time per eager torch call in a forward pass (Python, dispatcher, module
      hooks, kernel launch); a row makes ``HOST_OPS[kind]`` calls (or its own ``host_ops``);
      backward costs twice this.
    - ``step_overhead_s``: fixed host time per training step or forward pass (loss, zero_grad,
      optimizer bookkeeping, synchronisation).
    - ``decode_overhead_s``: extra fixed host time per decode step (cache update, mask and
      sampling logic of the serving loop). 0 for CUDA-graph servers such as vLLM/TensorRT-LLM.
    - ``elementwise_traffic``: bytes moved per byte of input/output (or saved tensor) of a
      non-matmul row (norms, activations, dropout, softmax, loss). Eager PyTorch runs e.g. GELU
      as a chain of kernels, each reading and writing the whole tensor, so this exceeds 1;
      a fused (compiled) graph is near 1.
    - ``recurrent_step_s``: device time floor of one dependent time step of a recurrent layer
      (an RNN runs its sequence one step after another: small GEMMs + a gate kernel per step,
      latency-bound); backward's dh recurrence has the same floor, and its weight gradient is one
      GEMM over all steps (cuDNN's backward-weights call), added at the matmul rate.
    - ``gemm_curve``: price GEMM rows (``Layer.gemm_mnk``) at the shape-dependent efficiency of
      ``costmodel.measured.curves.gemm_efficiency`` (fitted to measured GEMM tables) x ``gemm_scale``
      instead of the one constant ``matmul``: small matrices run far below peak, large ones near the
      measured ceiling. Backward dX and dW use their own shapes.
    - ``attention_kernel``: "sdpa" prices the attention core at the matmul rate over the full score
      square (eager HF code, torch SDPA as the reference steps ran it); "flash" is FlashAttention-2/3:
      a causal square does half the work (``causal_half``), at its own fractions of the attention
      dtype's peak (``attention_fwd``, ``attention_bwd``), and the backward recomputes the scores
      (5 matmuls of the forward's size instead of 4: 2.5x the forward FLOPs; Dao 2023, Algorithm 2).
    - ``fp8_cast_bytes``: under fp8/fp4 GEMMs, bytes moved per activation element (X in the forward, dY in
      the backward) to cast it and track its amax as separate memory-bound kernels (read 2, write 1 for
      bf16 -> fp8 in torchao float8; 0 where the cast is fused into the preceding kernel, as Transformer
      Engine's LayerNormLinear does). Weights are cast every micro-batch (``FP8_WEIGHT_CAST_BYTES``).
    - ``elementwise_passes``: eager PyTorch runs composite ops as one kernel per Python op
      (``costmodel.layers.EAGER_PASSES``); fused kernel libraries (Megatron, torch.compile) do not.
    - ``gemm_source``: with ``gemm_curve``, where the GEMM efficiency comes from: "curve" (the fitted curves,
      every device) or "measured" (the measured latency of that very shape in NVIDIA aiconfigurator-core's
      TensorRT-LLM GEMM table of the device, ``costmodel.measured``: efficiency = 2 m n k / (t x peak),
      falling back to the curve for a device or dtype without a table).
    """

    matmul: float = 0.55
    matmul_fp32: float = 0.85
    bandwidth: float = 0.75
    overhead_s: float = 10e-6  # ~10 us per eager op: He, "Making Deep Learning Go Brrrr" (2022)
    step_overhead_s: float = 1e-3
    decode_overhead_s: float = 0.0
    elementwise_traffic: float = 1.0
    recurrent_step_s: float = 20e-6
    gemm_curve: bool = False
    gemm_scale: float = 1.0
    attention_kernel: str = "sdpa"
    causal_half: bool = False
    attention_fwd: float = 0.0
    attention_bwd: float = 0.0
    fp8_cast_bytes: float = 0.0
    elementwise_passes: bool = True
    gemm_source: str = "curve"
    source: str = "generic defaults"

    def __post_init__(self):
        if self.gemm_source not in GEMM_SOURCES:
            raise InputError("efficiency.gemm_source", f"must be one of {', '.join(GEMM_SOURCES)}, "
                                                        f"got {self.gemm_source!r}")
        if self.attention_kernel not in ATTENTION_KERNELS:
            raise InputError("efficiency.attention_kernel", f"must be one of {', '.join(ATTENTION_KERNELS)}, "
                                                             f"got {self.attention_kernel!r}")
        for name in ("gemm_curve", "causal_half", "elementwise_passes"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"efficiency.{name}", f"must be true or false, got {getattr(self, name)!r}")
        if self.attention_kernel == "flash" and not (self.attention_fwd > 0 and self.attention_bwd > 0):
            raise InputError("efficiency.attention_fwd", "flash attention needs attention_fwd and attention_bwd > 0")
        for name, lo, hi in (("matmul", 1e-4, 1.0), ("matmul_fp32", 1e-4, 1.0), ("bandwidth", 1e-4, 1.0), ("overhead_s", 0.0, 1.0),
                             ("step_overhead_s", 0.0, 60.0), ("decode_overhead_s", 0.0, 60.0),
                             ("elementwise_traffic", 0.1, 100.0), ("recurrent_step_s", 0.0, 1.0),
                             ("gemm_scale", 0.1, 2.0), ("attention_fwd", 0.0, 1.0), ("attention_bwd", 0.0, 1.0),
                             ("fp8_cast_bytes", 0.0, 100.0)):
            v = getattr(self, name)
            try:
                v = float(v)
            except (TypeError, ValueError):
                raise InputError(f"efficiency.{name}", f"must be a number from {lo} to {hi}, got {v!r}") from None
            if not lo <= v <= hi or v != v:
                raise InputError(f"efficiency.{name}", f"must be from {lo} to {hi}, got {v}")
            object.__setattr__(self, name, v)

    def to_dict(self) -> dict:
        return dict(self._as_dict)

    @functools.cached_property
    def _as_dict(self) -> dict:  # estimates in a sweep share one Efficiency: build its dict once
        return asdict(self)


# Defaults per device kind. GPU numbers are fitted to the H100 steps in
# benchmarks/results/h100_reference_sample.json (eager PyTorch 2.11, HF transformers 5.17, SDPA
# attention; GPT-2 train fp32/AMP, GPT-2 and Llama-2-7B prefill, ResNet-50, LSTM): see
# benchmarks/fit_efficiency.py, which prints the fit and its residuals.
DEFAULT_EFFICIENCY = {
    "gpu": Efficiency(matmul=0.50, matmul_fp32=0.866, bandwidth=0.92, overhead_s=17.6e-6, step_overhead_s=5.16e-3,
                      decode_overhead_s=0.0656, elementwise_traffic=1.50, recurrent_step_s=29.4e-6,
                      source="fitted to the H100 steps in benchmarks/results/h100_reference_sample.json by "
                             "benchmarks/fit_efficiency.py (eager PyTorch 2.11, HF transformers 5.17, SDPA; "
                             "decode_overhead_s is that file's HF decode loop, ~66 ms/step)"),
    "tpu": Efficiency(matmul=0.55, bandwidth=0.70, overhead_s=0.0, step_overhead_s=1e-3, decode_overhead_s=0.0,
                      source="XLA-compiled steps launch no per-op host work; 55% of peak is within the MFU range "
                             "PaLM (Chowdhery et al. 2022, 46-58%) reports for large TPU trainings"),
    "cpu": Efficiency(matmul=0.35, matmul_fp32=0.35, bandwidth=0.50, overhead_s=20e-6, step_overhead_s=1e-3,
                      source="rough: oneDNN GEMMs reach 30-60% of AVX peak on small shapes, ~20 us per eager op; "
                             "calibrate with "
                             "`python -m costmodel profile`"),
}

# A serving/training stack that compiles the graph and replays it (torch.compile with CUDA graphs,
# vLLM, TensorRT-LLM, Megatron with fused kernels): no per-op host work, fused elementwise chains.
ENGINES = ("eager", "compiled")


def default_efficiency(hardware, engine: str = "eager") -> Efficiency:
    """The defaults for a device kind; ``engine="compiled"`` removes host overheads and fuses
    elementwise chains (what CUDA-graph servers and compiled trainers do)."""
    if engine not in ENGINES:
        raise InputError("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    eff = DEFAULT_EFFICIENCY.get(getattr(hardware, "kind", "gpu"), DEFAULT_EFFICIENCY["gpu"])
    if engine == "compiled":
        eff = replace(eff, overhead_s=0.0, step_overhead_s=min(eff.step_overhead_s, 1e-3), decode_overhead_s=0.0,
                      elementwise_traffic=0.5, source=eff.source + "; compiled engine: no per-op host time, "
                      "elementwise chains fused (traffic x0.5)")
    return eff


@dataclass(frozen=True)
class PassTime:
    """One pass (forward, backward, a decode step...) in seconds."""

    total_s: float
    device_s: float  # sum over rows of max(compute, memory)
    compute_s: float  # the compute-bound rows' share
    memory_s: float  # the memory-bound rows' share
    host_s: float
    bound: str  # "compute", "memory", "latency" or "host": what sets the pass time
    # ("latency": a recurrence's dependent time steps, each a few small kernels, whose floor
    # ``Efficiency.recurrent_step_s`` x steps exceeds their FLOPs at the matmul rate: an LSTM at 0.5% MFU)
    # FLOPs of the pass by the peak rate (FLOP/s, efficiency not applied) its rows run at: MFU's denominator
    flops_by_peak: tuple[tuple[float, float], ...] = ()


# Kinds run by cuDNN: PyTorch lets cuDNN use TF32 for fp32 convolutions and RNNs by default
# (torch.backends.cudnn.allow_tf32 = True), unlike fp32 matmuls (torch.backends.cuda.matmul.allow_tf32 = False).
CUDNN_KINDS = frozenset({"conv2d", "lstm", "gru", "rnn"})


def _row_weights_read(row: Layer) -> float:
    """Weights a row reads in one pass: all of them, except MoE routed experts, whose pass reads the
    expected number of distinct experts its tokens pick, E * (1 - (1 - k/E)^tokens) of E
    (costmodel.layers.expected_experts): k at one token, nearly all E at a decode batch of 64."""
    if row.experts:
        return row.params * expected_experts(row.experts, row.experts_top_k, row.routed_tokens) / row.experts
    return row.params - row.inactive_params


def _row_traffic(row: Layer, weight_read: float, training: bool, elementwise: float, passes: bool = True) -> float:
    """Bytes a row moves in its forward: the weights it reads, its inputs/outputs (or what it saves,
    if larger; times ``elementwise`` for non-matmul rows), and the KV cache it writes or reads.
    A row whose weights the checkpoint stores in a fixed format (gpt-oss's MXFP4 experts) reads that
    format's bytes per weight instead of ``weight_read``."""
    acts = max(row.traffic_bytes or row.working_bytes, row.activation_bytes if training else 0.0)
    if not row.forward_flops:
        acts *= elementwise * (EAGER_PASSES.get(row.kind, 1.0) if passes else 1.0)
    if row.kind == "embedding":  # a gather reads only the rows it needs
        return acts + row.kv_cache_bytes
    per_weight = WEIGHT_FORMAT_BYTES[row.weight_format] if row.weight_format else weight_read
    return _row_weights_read(row) * per_weight + acts + row.kv_cache_bytes


@dataclass(frozen=True)
class DeviceRates:
    """The peaks one pass runs at on one device.

    ``peak_flops_per_s``: matmul-class rows at the workload's compute dtype; ``cudnn_peak_flops_per_s``:
    the rows in ``CUDNN_KINDS`` (TF32 under fp32 on GPUs; 0 = same as ``peak_flops_per_s``);
    ``fp32``: matmuls run as plain fp32 (``Efficiency.matmul_fp32`` applies); ``sparse_speedup``: rate
    multiplier of the rows with weights (linear/conv) when they are 2:4 sparse (1 = dense)."""

    peak_flops_per_s: float
    bandwidth_bytes_per_s: float
    cudnn_peak_flops_per_s: float = 0.0
    fp32: bool = False
    sparse_speedup: float = 1.0
    # for shape-dependent GEMM efficiency and flash attention (Efficiency.gemm_curve / attention_kernel):
    dtype: str = ""  # the GEMMs' compute dtype (bf16, fp8, fp4 ...)
    hardware_id: str = ""  # whose measured GEMM curve applies (a generic curve for devices without one)
    attention_peak_flops_per_s: float = 0.0  # the attention core's dtype peak (bf16 under fp8 GEMMs); 0 = the GEMMs'
    causal: bool = False  # decoders: a causal score square (flash kernels skip its masked half)


@dataclass(frozen=True)
class PassSpec:
    """How one ledger is run: ``weight_read_bytes`` per weight in the forward; ``training``: a backward
    follows; ``backward_weight_bytes`` per weight in backward (read again + gradient written);
    ``full_backward``: weight gradients are formed (full fine-tune); ``fixed_host_s``: host time per pass
    beside the per-call overheads (loss, zero_grad, sampling loop ...)."""

    weight_read_bytes: float
    training: bool = False
    backward_weight_bytes: float = 0.0
    full_backward: bool = False
    fixed_host_s: float = 0.0


def effective_peak_flops(passes, nominal: float, extra_flops: float = 0.0) -> float:
    """The peak a run's FLOPs execute at, weighted by FLOPs: sum(F) / sum(F_r / peak_r) over the rates r of
    its passes (``extra_flops`` run at ``nominal``). With one rate this is that rate exactly; a ResNet in
    fp32 on an A100 mixes TF32 convolutions (156 TFLOP/s) with an fp32 classifier (19.5 TFLOP/s)."""
    by_rate: dict[float, float] = {}
    for p in passes:
        for rate, flops in p.flops_by_peak:
            by_rate[rate] = by_rate.get(rate, 0.0) + flops
    if extra_flops:
        by_rate[nominal] = by_rate.get(nominal, 0.0) + extra_flops
    by_rate = {r: f for r, f in by_rate.items() if f > 0}
    if not by_rate:
        return nominal
    if len(by_rate) == 1:
        return next(iter(by_rate))
    return sum(by_rate.values()) / sum(f / r for r, f in by_rate.items())


# at most this many passes memoized per cached ledger (costmodel.ledger counts them in the ledger's size)
PASSES_PER_LEDGER = 8


def pass_times(rows: tuple[Layer, ...], rates: DeviceRates, eff: Efficiency, spec: PassSpec) -> tuple[PassTime, PassTime]:
    """Memoized ``_pass_times``. A cached ledger (``costmodel.ledger.LedgerRows``) carries its own memo,
    keyed by (rates, efficiency, pass spec): hashing ~20 Layer records per call would cost more than the
    computation, and the memo is evicted with the ledger instead of keeping it alive. Rows from anywhere else
    are computed uncached."""
    memo = getattr(rows, "passes", None)
    if memo is None:
        return _pass_times(rows, rates, eff, spec)
    key = (rates, eff, spec)
    hit = memo.get(key)
    if hit is not None:
        return hit
    out = _pass_times(rows, rates, eff, spec)
    if len(memo) >= PASSES_PER_LEDGER:
        memo.clear()
    memo[key] = out
    return out


def _gemm_eff(rates: DeviceRates, eff: Efficiency, m: float, n: float, k: float) -> float:
    """Shape-dependent fraction of the dtype's peak one GEMM reaches, x gemm_scale: measured for this shape
    (``gemm_source="measured"`` on a device with a table) else the fitted curve (costmodel.measured.curves)."""
    from .measured.curves import gemm_efficiency  # local: the curves file is read on first use

    e = None
    if eff.gemm_source == "measured":
        e = measured_gemm_efficiency(rates.hardware_id, rates.dtype or "bf16", round(max(m, 1)), round(max(n, 1)),
                                     round(max(k, 1)), rates.peak_flops_per_s)
    if e is None:
        e, _ = gemm_efficiency(rates.hardware_id, rates.dtype or "bf16", max(m, 1), max(n, 1), max(k, 1),
                               peak_flops_per_s=rates.peak_flops_per_s)
    return min(1.0, max(1e-4, e * eff.gemm_scale))


@functools.lru_cache(maxsize=65536)
def measured_gemm_efficiency(hardware_id: str, dtype: str, m: int, n: int, k: int, peak_flops_per_s: float):
    """2 m n k / (t x peak) with t the measured latency of ``y[m, n] = x[m, k] W^T`` in the device's
    TensorRT-LLM GEMM table (aiconfigurator-core; log-interpolated between measured shapes, extrapolated in
    proportion beyond the largest), or None: no extra, no table for the device or the dtype."""
    from . import measured

    if not measured.available():
        return None
    tables = measured.tables_for(hardware_id, "trtllm")
    if tables is None:
        return None
    try:
        t = tables.gemm_s(m, n, k, dtype, extrapolate=True)
    except InputError:  # a dtype the tables do not hold
        return None
    return 2.0 * m * n * k / (t * peak_flops_per_s) if t else None


def _pass_times(rows: tuple[Layer, ...], rates: DeviceRates, eff: Efficiency,
                spec: PassSpec) -> tuple[PassTime, PassTime]:
    """(forward, backward) times of one ledger (the roofline of the module docstring)."""
    weight_read = spec.weight_read_bytes
    training, full_backward = spec.training, spec.full_backward
    mm_peak = rates.peak_flops_per_s
    cudnn_peak = rates.cudnn_peak_flops_per_s or mm_peak
    attn_peak = rates.attention_peak_flops_per_s or mm_peak
    flop_rate = mm_peak * (eff.matmul_fp32 if rates.fp32 else eff.matmul)
    cudnn_rate = (rates.cudnn_peak_flops_per_s * eff.matmul) if rates.cudnn_peak_flops_per_s else flop_rate
    byte_rate = rates.bandwidth_bytes_per_s * eff.bandwidth
    ew = eff.elementwise_traffic
    flash = eff.attention_kernel == "flash"
    causal = 0.5 if (flash and eff.causal_half and rates.causal) else 1.0
    low_precision_gemm = rates.dtype in ("fp8", "fp4") and eff.fp8_cast_bytes > 0
    f_comp = f_mem = b_comp = b_mem = f_lat = b_lat = 0.0
    f_by_peak: dict[float, float] = {}
    b_by_peak: dict[float, float] = {}
    instances = 0
    for row in rows:
        n = row.count
        instances += n * (row.host_ops or HOST_OPS.get(row.kind, 1.0))
        traffic = _row_traffic(row, weight_read, training, ew, eff.elementwise_passes)
        cudnn = row.kind in CUDNN_KINDS
        rate = cudnn_rate if cudnn else flop_rate
        peak = cudnn_peak if cudnn else mm_peak
        if rates.sparse_speedup != 1.0 and row.matmul_params:
            rate *= rates.sparse_speedup
            peak *= rates.sparse_speedup
        curve = eff.gemm_curve and row.gemm_mnk and not cudnn
        attention = flash and row.kind == "attention"
        if row.kind == "attention" and attn_peak != mm_peak:  # bf16 attention beside fp8/fp4 GEMMs
            peak, rate = attn_peak, attn_peak * eff.matmul
        if attention:
            peak = attn_peak
        if row.forward_flops:
            f_by_peak[peak] = f_by_peak.get(peak, 0.0) + row.forward_flops * n
        lat = row.sequential_steps * eff.recurrent_step_s
        if attention:
            c = row.forward_flops * causal / (attn_peak * eff.attention_fwd)
        elif curve:
            m_, n_, k_ = row.gemm_mnk
            c = row.forward_flops / (peak * _gemm_eff(rates, eff, m_, n_, k_))
        else:
            c = row.forward_flops / rate
        latency = lat > c
        c = max(c, lat)
        m = traffic / byte_rate
        if c < m:
            f_mem += m * n
        else:
            f_comp += c * n
            if latency:
                f_lat += c * n  # (also in f_comp: the bound tells them apart)
        if low_precision_gemm and row.gemm_mnk and not cudnn:  # cast X and W to fp8/fp4 (+ amax): own kernels
            m_, n_, k_ = row.gemm_mnk
            f_mem += (eff.fp8_cast_bytes * m_ * k_ + FP8_WEIGHT_CAST_BYTES * k_ * n_) / byte_rate * n
        if training:
            bflops = row.input_grad_flops + (row.weight_grad_flops if full_backward else 0.0)
            if attention:
                bflops = FLASH_BACKWARD_FLOPS * row.forward_flops if row.input_grad_flops else 0.0
            if bflops:
                b_by_peak[peak] = b_by_peak.get(peak, 0.0) + bflops * n
            btraffic = 2.0 * (traffic - _row_weights_read(row) * weight_read) + \
                _row_weights_read(row) * spec.backward_weight_bytes
            latency = False
            if row.sequential_steps:
                # the dh recurrence runs step by step like the forward; dW is one GEMM over all steps
                wg = row.weight_grad_flops if full_backward else 0.0
                lat = row.sequential_steps * eff.recurrent_step_s
                latency = lat > row.input_grad_flops / rate
                c = max(row.input_grad_flops / rate, lat) + wg / rate
            elif attention:
                c = bflops * causal / (attn_peak * eff.attention_bwd)
            elif curve:
                m_, n_, k_ = row.gemm_mnk
                c = row.input_grad_flops / (peak * _gemm_eff(rates, eff, m_, k_, n_))
                if full_backward and row.weight_grad_flops:
                    c += row.weight_grad_flops / (peak * _gemm_eff(rates, eff, k_, n_, m_))
            else:
                c = bflops / rate
            m = btraffic / byte_rate
            if c < m:
                b_mem += m * n
            else:
                b_comp += c * n
                if latency:
                    b_lat += c * n
            if low_precision_gemm and row.gemm_mnk and not cudnn:  # cast dY
                m_, n_, _ = row.gemm_mnk
                b_mem += eff.fp8_cast_bytes * m_ * n_ / byte_rate * n
    fwd_host = eff.overhead_s * instances + spec.fixed_host_s
    fwd = _pass(f_comp, f_mem, fwd_host, tuple(f_by_peak.items()), f_lat)
    if not training:
        return fwd, PassTime(0.0, 0.0, 0.0, 0.0, 0.0, "compute")
    bwd = _pass(b_comp, b_mem, 2.0 * eff.overhead_s * instances, tuple(b_by_peak.items()), b_lat)
    return fwd, bwd


def _pass(comp: float, mem: float, host: float, flops_by_peak=(), lat: float = 0.0) -> PassTime:
    """``comp``: rows not memory-bound, ``mem``: memory-bound rows; ``lat``: the part of ``comp`` held by a
    recurrence's sequential steps (only the bound tells it apart)."""
    device = comp + mem
    if host > device:
        bound = "host"
    else:
        bound = max((("compute", comp - lat), ("latency", lat), ("memory", mem)), key=lambda kv: kv[1])[0]
    return PassTime(max(host, device), device, comp, mem, host, bound, flops_by_peak)


def optimizer_time_s(trainable: float, bytes_per_param: float, bandwidth: float, eff: Efficiency) -> float:
    """The optimizer step streams each trainable parameter's weight, gradient and states:
    ``bytes_per_param`` read + written (e.g. AdamW fp32: read w, g, m, v and write w, m, v = 28 bytes)."""
    if trainable <= 0:
        return 0.0
    return trainable * bytes_per_param / (bandwidth * eff.bandwidth)


def optimizer_bytes_per_param(weight_bytes: float, grad_bytes: float, state_bytes_total: float,
                              temp_bytes: float) -> float:
    """Read weight + grad + states, write weight + states, write + read temporaries."""
    return 2.0 * weight_bytes + grad_bytes + 2.0 * state_bytes_total + 2.0 * temp_bytes
