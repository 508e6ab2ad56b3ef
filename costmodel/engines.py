"""Training engines as named profiles: what the software stack that runs a training step does, so that a
plan says which stack it prices and every assumption is printed next to the numbers.

    eager      Hugging Face / PyTorch eager (one kernel per Python op, autocast, SDPA): the single-device
               default, fitted to the H100 reference steps (benchmarks/results/h100_reference_sample.json).
    compiled   torch.compile of the same model: no per-op host time, fused elementwise chains.
    fsdp       FSDP with FlashAttention (llm-foundry, torchtitan): bf16 model with fp32 master weights and
               fp32 gradient reduction (FSDP MixedPrecision), parameters all-gathered in bf16 with forward and
               backward prefetch, native / fused kernels.
    megatron   Megatron-LM / NeMo with fused kernels, cuDNN/flash attention, Transformer Engine fp8 GEMMs,
               the distributed optimizer, gradient-reduce and parameter-gather overlap, sequence parallelism.
    megatron-unfused
               Megatron-LM as it ran before flash attention (2021-2022: Narayanan et al. 2021, Korthikanti et
               al. 2022, BLOOM): fused kernels, but attention scores materialised (baddbmm + fused softmax), the
               full score square computed, no overlap of the data-parallel gradient all-reduce with the last
               micro-batch beyond bucketing.

A profile maps to: a workload precision policy (``production_precision``), an ``Efficiency`` for the
per-row roofline (shape-dependent GEMM efficiency from the measured curves, the attention kernel and its
causal work, fp8 scope and cast cost, fused elementwise kernels), and the communication policy of
``costmodel.parallel.train_step`` (collective dtypes, what overlaps with what, activations under fused
kernels). The few fitted constants (``FITTED``) are fitted by benchmarks/published_runs.py on published
runs and reported leave-one-source-out; docs/formulas.md ("Training engines") states every assumption.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from .errors import InputError
from .perf import DEFAULT_EFFICIENCY, Efficiency, default_efficiency

# Fitted on the published runs of benchmarks/published_runs.json by benchmarks/published_runs.py (median
# absolute log error of tokens/s per GPU, coarse grid; results/published_runs.md shows the fit and its
# leave-one-source-out error). Everything else in a profile is a stated property of the software.
FITTED = {
    # x the measured-curve GEMM efficiency (costmodel.measured.curves, inference kernels measured one at a time):
    # what a whole training step sustains of it, per GPU generation (clocks under sustained load, kernel mix)
    "gemm_scale_ampere": 0.8,
    "gemm_scale_hopper": 0.7,
    "gemm_scale_blackwell": 1.0,
    "megatron_gemm_factor": 1.2,  # x the above under the Megatron stack (TE/cuBLASLt tuned kernels, fewer gaps)
    "legacy_gemm_factor": 0.9,  # x the above under 2020-21 Megatron-LM (no flash attention; its own GEMM mix)
    "attention_scale": 0.5,  # x the flash-attention kernel efficiencies below
    "dp_overlap": 0.5,  # fraction of the overlappable compute that hides data-parallel collectives
    "tp_overlap": 0.6,  # fraction of tensor-parallel collectives hidden (Megatron --tp-comm-overlap)
    "network_efficiency": 1.0,  # NCCL bus bandwidth / NIC line rate across nodes
}

# The same constants fitted with every GEMM read from aiconfigurator-core's measured tables (time_source
# "measured"; benchmarks/published_runs.py --time-source measured, benchmarks/results/published_runs_measured.md,
# "Fitted on every run"). Devices without a table fall back to the curves.
FITTED_MEASURED = {**FITTED, "gemm_scale_blackwell": 0.95, "tp_overlap": 0.6}

# FlashAttention kernel efficiency (fraction of the bf16 dense peak, head dim 128, long sequences), forward /
# backward: FlashAttention-2 on A100 reaches 50-73% forward and about 63% over forward + backward (Dao 2023,
# "FlashAttention-2", Fig. 4-6); on H100 FlashAttention-2 stays near 35-50% (its Fig. 7, 335 TFLOP/s forward),
# FlashAttention-3 / cuDNN reach 75% forward, 50-55% backward (Shah et al. 2024, "FlashAttention-3",
# Fig. 5-7: 740 TFLOP/s forward); Blackwell kernels (cuDNN 9, FlashAttention-4) are taken at the Hopper
# cuDNN fractions.
FLASH_EFFICIENCY = {
    ("fa2", "ampere"): (0.65, 0.50), ("fa2", "hopper"): (0.45, 0.35), ("fa2", "blackwell"): (0.45, 0.35),
    ("cudnn", "ampere"): (0.65, 0.50), ("cudnn", "hopper"): (0.70, 0.50), ("cudnn", "blackwell"): (0.70, 0.50),
}


def architecture(hw) -> str:
    """ampere | hopper | blackwell | other, from the catalog id (the attention kernels differ by generation)."""
    hid = getattr(hw, "id", None)
    if hid is None:  # not getattr(hw, "id", str(hw)): that formats the whole record on every call
        hid = str(hw)
    if hid.startswith(("a100", "a10", "a30", "rtx-3090")):
        return "ampere"
    if hid.startswith(("h100", "h200", "h800", "h20", "gh200")):
        return "hopper"
    if hid.startswith(("b200", "b300", "gb200", "gb300", "rtx-5090", "rtx-pro")):
        return "blackwell"
    return "other"


@dataclass(frozen=True)
class TrainingEngine:
    """One training stack. ``summary``: one line for the UI and CLI; the fields say what it assumes."""

    name: str
    summary: str
    production: bool  # runs the "mixed" precisions (bf16 model, fp32 master) instead of autocast
    attention: str  # "sdpa" (eager HF / torch SDPA as the reference steps ran) | "unfused" (scores materialised)
    #                 | "fa2" | "cudnn" (FA3-class)
    fused_kernels: bool  # elementwise chains fused; activations saved as fused kernels save them
    gemm_curve: bool  # shape-dependent GEMM efficiency from the measured curves
    fp8_cast_bytes: float  # bytes per GEMM input element to cast it to fp8/fp4 and track its amax
    fsdp_reduce_every_micro_batch: bool  # FSDP reduce-scatters gradients every micro-batch (no no_sync)
    sharded_master_is_param: bool  # ZeRO-3: the sharded fp32 parameter is the master (no 16-bit resident copy)
    forward_prefetch: bool  # data-parallel parameter gathers overlap the forward
    overlap_param_gather: bool  # ZeRO-1/2 parameter all-gather overlaps the next forward (Megatron)
    tp_overlap: bool  # tensor-parallel collectives overlapped with GEMMs (Megatron --tp-comm-overlap)
    overhead_s: float  # host time per launched kernel (asynchronous: binds only for tiny kernels)
    # the optimizer step updates in place in fused multi-tensor kernels (Megatron-LM's optimizer is Transformer
    # Engine's FusedAdam, else apex's: megatron/core/optimizer/__init__.py), so it allocates no full-size
    # temporaries; torch.optim's foreach step does (Optimizer.step_temp_per_param)
    fused_optimizer: bool = False
    notes: tuple[str, ...] = field(default=(), compare=False)

    def assumptions(self, params: dict) -> dict:
        """What this profile assumes, for the plan's ``assumptions`` (with the fitted constants used)."""
        return {"engine": self.name, "summary": self.summary, "attention_kernel": self.attention,
                "fused_kernels": self.fused_kernels, "gemm_efficiency": "measured-table curves x gemm_scale"
                if self.gemm_curve else "one fitted fraction of peak", "fp8_cast_bytes_per_element": self.fp8_cast_bytes,
                "fsdp_reduce_every_micro_batch": self.fsdp_reduce_every_micro_batch,
                "sharded_master_is_param": self.sharded_master_is_param,
                "forward_prefetch": self.forward_prefetch, "overlap_param_gather": self.overlap_param_gather,
                "tp_comm_overlap": self.tp_overlap, "fused_optimizer": self.fused_optimizer, "fitted": dict(params),
                "notes": list(self.notes)}


ENGINES: dict[str, TrainingEngine] = {e.name: e for e in (
    TrainingEngine("eager", "Hugging Face / PyTorch eager with autocast and SDPA (the single-device default, fitted "
                   "to measured H100 steps)", production=False, attention="sdpa", fused_kernels=False,
                   gemm_curve=False, fp8_cast_bytes=0.0, fsdp_reduce_every_micro_batch=True, sharded_master_is_param=False,
                   forward_prefetch=False, overlap_param_gather=False, tp_overlap=False, overhead_s=0.0),
    TrainingEngine("compiled", "torch.compile of the same model: no per-op host time, fused elementwise chains",
                   production=False, attention="sdpa", fused_kernels=False, gemm_curve=False, fp8_cast_bytes=0.0,
                   fsdp_reduce_every_micro_batch=True, sharded_master_is_param=False, forward_prefetch=False,
                   overlap_param_gather=False, tp_overlap=False, overhead_s=0.0),
    TrainingEngine("fsdp", "FSDP + FlashAttention-2 (llm-foundry, torchtitan): bf16 model, fp32 master and gradient "
                   "reduction, bf16 parameter gathers prefetched in forward and backward",
                   production=True, attention="fa2", fused_kernels=True, gemm_curve=True, fp8_cast_bytes=3.0,
                   fsdp_reduce_every_micro_batch=True, sharded_master_is_param=True, forward_prefetch=True,
                   overlap_param_gather=True,
                   tp_overlap=False, overhead_s=4e-6,
                   notes=("fp8 (torchao float8 / Transformer Engine) covers the linear layers; attention runs bf16",
                          "gradients reduce-scattered in fp32 every micro-batch (FSDP MixedPrecision reduce_dtype)")),
    TrainingEngine("fsdp-eager", "FSDP + FlashAttention-2 without torch.compile (torchtitan without compile, HF "
                   "Accelerate FSDP): as fsdp, but every elementwise op is its own kernel and saves its own tensors",
                   production=True, attention="fa2", fused_kernels=False, gemm_curve=True, fp8_cast_bytes=3.0,
                   fsdp_reduce_every_micro_batch=True, sharded_master_is_param=True, forward_prefetch=True,
                   overlap_param_gather=True, tp_overlap=False, overhead_s=4e-6,
                   notes=("elementwise chains (norms, activations, residual adds) run unfused, one kernel per op",)),
    TrainingEngine("megatron", "Megatron-LM / NeMo: fused kernels, cuDNN flash attention, Transformer Engine fp8, "
                   "distributed optimizer, overlapped gradient reduce and parameter gather, sequence parallel",
                   production=True, attention="cudnn", fused_kernels=True, gemm_curve=True, fp8_cast_bytes=0.0,
                   fsdp_reduce_every_micro_batch=False, sharded_master_is_param=False, forward_prefetch=True,
                   overlap_param_gather=True,
                   tp_overlap=True, overhead_s=3e-6, fused_optimizer=True,
                   notes=("fp8 covers the linear layers (Transformer Engine); attention bf16 (cuDNN); activation casts "
                          "fused into the preceding norm/activation kernels, weights cast each micro-batch",
                          "gradients reduced once per step in fp32 main-grad buffers (--overlap-grad-reduce)")),
    TrainingEngine("megatron-unfused", "Megatron-LM before flash attention (2021-2022): fused kernels, attention "
                   "scores materialised over the full square", production=True, attention="unfused",
                   fused_kernels=True, gemm_curve=True, fp8_cast_bytes=0.0, fsdp_reduce_every_micro_batch=False,
                   sharded_master_is_param=False, forward_prefetch=True, overlap_param_gather=True, tp_overlap=False,
                   overhead_s=3e-6, fused_optimizer=True,
                   notes=("attention: baddbmm + fused scale-mask-softmax over the full s x s scores (saved for "
                          "backward unless recomputed), at the GEMM efficiency",)),
)}
PRODUCTION_PRECISION = {"amp-bf16": "bf16-mixed", "amp-fp16": "bf16-mixed", "bf16": "bf16-mixed",
                        "fp8": "fp8-mixed", "nvfp4": "fp4-mixed", "mxfp4": "fp4-mixed"}


def get_engine(name: str) -> TrainingEngine:
    if name not in ENGINES:
        raise InputError("engine", f"must be one of {', '.join(ENGINES)} (or auto), got {name!r}")
    return ENGINES[name]


def resolve_engine(name, layout) -> TrainingEngine:
    """``auto`` (or None): Megatron when the layout splits the model (tensor, pipeline, context or expert
    parallel), FSDP otherwise; a profile name; or a ``TrainingEngine`` (e.g. ``replace(ENGINES["fsdp"],
    tp_overlap=True)`` for torchtitan's AsyncTP), used as given."""
    if isinstance(name, TrainingEngine):
        return name
    if name in (None, "auto"):
        split = layout.tp > 1 or layout.pp > 1 or layout.cp > 1 or layout.ep > 1
        return ENGINES["megatron" if split else "fsdp"]
    return get_engine(name)


def engine_workload(engine: TrainingEngine, w):
    """The workload as this stack runs it: production precisions; materialised attention scores for the
    pre-flash Megatron."""
    if not engine.production:
        return w
    w = w.with_(precision=production_precision(engine, w.precision))
    return w.with_(attention="eager") if engine.attention == "unfused" else w


def production_precision(engine: TrainingEngine, precision: str) -> str:
    """The precision a production stack runs when asked for ``precision``: the model in bf16 with fp32 master
    weights (no autocast copies, bf16 residual stream), fp8 / fp4 GEMMs for the fp8 / fp4 recipes."""
    if not engine.production:
        return precision
    return PRODUCTION_PRECISION.get(precision, precision)


def fitted(params: dict | None = None, time_source: str = "roofline") -> dict:
    """The fitted constants (``FITTED_MEASURED`` under measured GEMM tables), with any given overrides (names
    must exist)."""
    out = dict(FITTED_MEASURED if time_source == "measured" else FITTED)
    for k, v in (params or {}).items():
        if k not in FITTED:
            raise InputError(f"engine_params.{k}", f"is not a fitted engine constant; known: {', '.join(FITTED)}")
        out[k] = float(v)
    return out


TIME_SOURCES = ("roofline", "measured", "auto")


def resolve_time_source(time_source: str | None, hw) -> tuple[str, str]:
    """(``roofline`` | ``measured``, why): ``measured`` needs the [measured] extra and a GEMM table of the device
    (an explicit request without them is an InputError naming what is missing); ``auto`` takes measured where
    both exist, else the roofline; None is ``roofline``."""
    from . import measured

    ts = time_source or "roofline"
    if ts not in TIME_SOURCES:
        raise InputError("time_source", f"must be one of {', '.join(TIME_SOURCES)}, got {ts!r:.40}")
    if ts == "roofline":
        return "roofline", "analytic: GEMMs at the fitted shape curves"
    if not measured.available():
        if ts == "measured":
            raise InputError("time_source", f"measured GEMM tables need the extra: {measured.MISSING_MESSAGE}")
        return "roofline", f"analytic (no measured tables installed: {measured.MISSING_MESSAGE})"
    tables = measured.tables_for(getattr(hw, "id", ""), "trtllm")
    if tables is None:
        if ts == "measured":
            from .catalog import list_hardware

            have = [h.id for h in list_hardware() if measured.system_for(h.id) and measured.tables_for(h.id, "trtllm")]
            raise InputError("time_source", f"aiconfigurator-core has no measured GEMM table for {getattr(hw, 'id', hw)}"
                                            f"; use roofline (catalog devices with tables: {', '.join(have)})")
        return "roofline", f"analytic (no measured GEMM table for {getattr(hw, 'id', hw)})"
    return "measured", str(tables.provenance("gemm"))


def engine_efficiency(engine: TrainingEngine, hw, params: dict | None = None, time_source: str = "roofline") -> Efficiency:
    """The ``Efficiency`` of the per-row roofline under this engine on this device; ``time_source`` "measured"
    takes each GEMM's efficiency from the device's measured table (``resolve_time_source`` first)."""
    if engine.name in ("eager", "compiled"):
        return default_efficiency(hw, engine.name)
    p = fitted(params, time_source)
    base = DEFAULT_EFFICIENCY.get(getattr(hw, "kind", "gpu"), DEFAULT_EFFICIENCY["gpu"])
    arch = architecture(hw)
    fwd, bwd = FLASH_EFFICIENCY.get((engine.attention, arch), (0.5, 0.4))
    scale = p["attention_scale"]
    factor = {"megatron": p["megatron_gemm_factor"], "megatron-unfused": p["legacy_gemm_factor"]}.get(engine.name, 1.0)
    gemm_scale = p.get(f"gemm_scale_{arch}", 1.0) * factor
    if engine.attention == "unfused":  # the score matmuls are batched GEMMs over the full square
        return replace(base, overhead_s=engine.overhead_s, step_overhead_s=2e-3, decode_overhead_s=0.0,
                       elementwise_traffic=1.0, elementwise_passes=False, bandwidth=0.85, gemm_curve=True,
                       gemm_scale=gemm_scale, matmul=min(1.0, 0.6 * gemm_scale),
                       gemm_source="measured" if time_source == "measured" else "curve",
                       source=f"training engine {engine.name}: GEMMs at the measured-curve efficiency x {gemm_scale:g}, "
                              "attention score GEMMs at 60% of it over the full square, bandwidth 85%")
    gemms = "the measured GEMM table's efficiency of each shape" if time_source == "measured" else \
        "the measured-curve efficiency"
    return replace(base, overhead_s=engine.overhead_s, step_overhead_s=2e-3, decode_overhead_s=0.0,
                   elementwise_traffic=1.0, elementwise_passes=not engine.fused_kernels, bandwidth=0.85,
                   gemm_curve=engine.gemm_curve, gemm_scale=gemm_scale, attention_kernel="flash", causal_half=True,
                   attention_fwd=min(1.0, fwd * scale), attention_bwd=min(1.0, bwd * scale),
                   fp8_cast_bytes=engine.fp8_cast_bytes, gemm_source="measured" if time_source == "measured" else "curve",
                   source=f"training engine {engine.name}: GEMMs at {gemms} x {gemm_scale:g}, "
                          f"{engine.attention} attention {fwd * scale:.2f}/{bwd * scale:.2f} of the bf16 peak "
                          f"(forward/backward, causal half), bandwidth 85%, {engine.overhead_s * 1e6:g} us per kernel")
