"""Serving engines as named profiles: what each assumes about kernels, scheduling and memory
(docs/serving.md, "Engine profiles").

One profile is chosen per device when none is given (``default_engine``), the same in the dashboard, the
CLI and the API, and the choice is printed with its reason. A profile carries:

- kernel efficiencies (fractions of the datasheet peaks): ``matmul`` for 16-bit GEMMs at large M,
  ``matmul_fp8`` / ``matmul_fp4`` for fp8 / fp4 GEMMs, ``bandwidth`` for streaming weights and KV, ``attention``
  for prefill (flash) attention FLOPs, ``link_efficiency`` and ``allreduce_latency_s`` for collectives;
- scheduling: continuous (iteration-level) batching or a static batch, chunked prefill with a token budget
  per iteration (``max_num_batched_tokens``), ``max_num_seqs``, paged KV blocks of ``block_size`` tokens,
  admission ``reserve`` (a started request never waits for KV: prompt + max output reserved, TensorRT-LLM's
  GUARANTEED_NO_EVICT) or ``on-demand`` (blocks allocated as tokens arrive, the newest request preempted and
  recomputed when they run out: vLLM);
- host time per iteration: ``iteration_overhead_s`` (scheduler, sampling, launch of a CUDA graph) and
  ``per_sequence_overhead_s`` (per running request per iteration); eager loops add ``per_op_overhead_s`` per
  kernel call and ``decode_loop_overhead_s`` per decode step and run host and device concurrently
  (time = max(host, device)); ``layer_overhead_s`` per layer per iteration (kernel gaps inside a graph);
  ``request_overhead_s`` per request of the frontend (TTFT only);
- memory: the KV pool is ``kv_memory_fraction`` of the device (``kv_fraction_of = "total"``: vLLM's
  gpu_memory_utilization, from which weights and activations are then subtracted) or of the memory left after
  weights and activations (``"free"``: TensorRT-LLM's kv_cache_free_gpu_mem_fraction); ``"none"``: no pool, the
  batch's cache is allocated as it grows (Hugging Face generate);
- ``time_source``: "roofline" (these efficiencies) or "measured" (per-op tables, ``costmodel.serving.ops``).

The numbers marked *fitted* come from ``benchmarks/published_serving.py`` (published runs of TensorRT-LLM,
LMDeploy, NIM and vLLM; leave-one-source-out scores in benchmarks/results/published_serving.md); the others
are the engines' documented defaults, cited per field in ``sources``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from ..errors import InputError
from ..perf import DEFAULT_EFFICIENCY

# Kernel efficiencies of CUDA-graph engines with fused kernels (cuBLASLt/CUTLASS GEMMs, FlashAttention /
# TRT-LLM FMHA, paged decode attention), fitted to the published runs (benchmarks/published_serving.py).
# Priors: what the kernels reach in published microbenchmarks before any fitting (cuBLAS bf16 GEMMs ~70% of
# the H100 dense peak, fp8 ~60%, fp4 ~50%; HBM streaming ~80%; FlashAttention-2/3 forward 45-75%; NCCL / custom
# all-reduce ~70% of NVLink at MB-sized messages, a few us per call; ~1 ms of scheduler + sampling per
# iteration). The fit starts here and is pulled back towards these values.
OPTIMISED_PRIOR = dict(matmul=0.70, matmul_fp8=0.60, matmul_fp4=0.50, bandwidth=0.80, attention=0.45,
                       link_efficiency=0.70, allreduce_latency_s=8e-6, iteration_overhead_s=1.0e-3,
                       layer_overhead_s=15e-6, per_sequence_overhead_s=2.0e-6)
OPTIMISED_KERNELS = dict(matmul=0.652, matmul_fp8=0.660, matmul_fp4=0.437, bandwidth=0.683, attention=0.439,
                         link_efficiency=0.517, allreduce_latency_s=8.94e-6, iteration_overhead_s=1.02e-3,
                         layer_overhead_s=16.1e-6, per_sequence_overhead_s=2.0e-6)
OPTIMISED_SOURCE = ("kernel efficiencies and host time per iteration fitted to the published TensorRT-LLM, "
                    "LMDeploy, NIM and vLLM runs (benchmarks/published_serving.py)")

# Per request, outside the engine loop: HTTP, tokenizer and detokenizer of an OpenAI-style / Triton frontend
# (a few ms in vLLM's and Triton's own benchmarks at low load); added to TTFT and end-to-end latency, not fitted.
FRONTEND_S = 5e-3

ADMISSIONS = ("reserve", "on-demand", "static")
KV_FRACTION_OF = ("total", "free", "none")
TIME_SOURCES = ("roofline", "measured", "auto")


@dataclass(frozen=True)
class EngineProfile:
    name: str
    title: str
    matmul: float  # 16-bit (and weight-only quantized) GEMMs
    matmul_fp8: float
    matmul_fp4: float
    bandwidth: float
    attention: float
    link_efficiency: float  # fraction of the link bandwidth all-reduce / all-to-all reach
    iteration_overhead_s: float
    per_sequence_overhead_s: float
    continuous_batching: bool
    chunked_prefill: bool
    max_num_batched_tokens: int
    max_num_seqs: int
    block_size: int  # paged-KV block in tokens (1: no paging waste; 0: contiguous per request)
    admission: str
    kv_memory_fraction: float
    kv_fraction_of: str
    cuda_graphs: bool
    allreduce_latency_s: float  # one small all-reduce (custom one-shot kernels on NVLink)
    layer_overhead_s: float = 0.0  # per transformer layer per iteration: kernel ramp/tail gaps a graph keeps
    request_overhead_s: float = 0.0  # per request, added to TTFT: HTTP, tokenizer, detokenizer of the frontend
    per_op_overhead_s: float = 0.0  # eager loops: host time per kernel call
    decode_loop_overhead_s: float = 0.0  # eager loops: extra host time per decode step
    elementwise_traffic: float = 1.0  # bytes moved per byte of a fused elementwise row
    graph_pool_bytes: float = 0.0  # CUDA-graph memory pool beside weights, KV and activations
    sliding_window: bool = True  # windowed layers attend to and cache only the window (False: full attention)
    time_source: str = "roofline"
    sources: dict = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self):
        for name in ("matmul", "matmul_fp8", "matmul_fp4", "bandwidth", "attention", "link_efficiency"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 1e-3 <= v <= 1.0:
                raise InputError(f"engine.{name}", f"must be a fraction of peak from 0.001 to 1, got {v!r}")
        for name in ("iteration_overhead_s", "per_sequence_overhead_s", "per_op_overhead_s", "layer_overhead_s",
                     "request_overhead_s", "decode_loop_overhead_s", "allreduce_latency_s"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not 0.0 <= v <= 10.0:
                raise InputError(f"engine.{name}", f"must be seconds from 0 to 10, got {v!r}")
        if self.admission not in ADMISSIONS:
            raise InputError("engine.admission", f"must be one of {', '.join(ADMISSIONS)}, got {self.admission!r}")
        if self.kv_fraction_of not in KV_FRACTION_OF:
            raise InputError("engine.kv_fraction_of", f"must be one of {', '.join(KV_FRACTION_OF)}")
        if self.time_source not in TIME_SOURCES:
            raise InputError("engine.time_source", f"must be one of {', '.join(TIME_SOURCES)}, got {self.time_source!r}")
        if not 0.05 <= self.kv_memory_fraction <= 1.0:
            raise InputError("engine.kv_memory_fraction", f"must be from 0.05 to 1, got {self.kv_memory_fraction}")
        if self.max_num_seqs < 1 or self.max_num_batched_tokens < 1:
            raise InputError("engine.max_num_seqs", "max_num_seqs and max_num_batched_tokens must be >= 1")

    def with_(self, **changes) -> "EngineProfile":
        return replace(self, **changes)

    def matmul_efficiency(self, compute_dtype: str) -> float:
        if compute_dtype == "fp4":
            return self.matmul_fp4
        return self.matmul_fp8 if compute_dtype in ("fp8", "int8") else self.matmul

    def to_dict(self) -> dict:
        return asdict(self)


_VLLM_SOURCES = {
    "scheduling": "vLLM V1 scheduler: continuous batching, chunked prefill on by default, decodes first then "
                  "prefill chunks within max_num_batched_tokens (vLLM docs, 'Optimization and Tuning')",
    "max_num_batched_tokens": "8192: vLLM's API-server default on >= 70 GiB GPUs (V1 engine args)",
    "max_num_seqs": "1024 on >= 70 GiB GPUs in vLLM V1 (256 in older releases)",
    "block_size": "16 tokens (vLLM default --block-size)",
    "admission": "on-demand blocks; recompute preemption of the newest request when blocks run out (vLLM V1)",
    "kv_memory_fraction": "gpu_memory_utilization 0.9 of the whole device, weights, activations and CUDA graphs "
                          "subtracted (vLLM default)",
    "cuda_graphs": "decode iterations replay captured CUDA graphs (piecewise graphs in V1)",
    "allreduce_latency_s": "custom all-reduce (one-shot for small messages on NVLink): ~8 us",
    "kernels": OPTIMISED_SOURCE,
}
_TRT_SOURCES = {
    "scheduling": "in-flight batching with chunked context; max_num_tokens 8192 per iteration (TensorRT-LLM "
                  "'Tuning Max Batch Size and Max Num Tokens')",
    "max_num_seqs": "max_batch_size 2048 (trtllm-bench picks it from the dataset; the perf-overview printout shows "
                    "up to 4096; PyTorch backend CUDA graphs padded up to 8192)",
    "block_size": "tokens_per_block 32",
    "admission": "GUARANTEED_NO_EVICT (the default capacity scheduler policy): a request starts only if its "
                 "prompt + max output tokens fit, and is never paused",
    "kv_memory_fraction": "kv_cache_free_gpu_mem_fraction 0.9 of the memory left after weights and activations "
                          "(the default; the perf-overview runs used 0.95 'in the majority of cases')",
    "allreduce_latency_s": "custom one-shot/two-shot all-reduce kernels: ~6 us for decode-sized messages",
    "sliding_window": "not applied: max_attention_window defaults to the maximum sequence length, so a Mistral-style "
                      "window only limits attention when set explicitly (trtllm-bench does not)",
    "kernels": OPTIMISED_SOURCE,
}

_EAGER = DEFAULT_EFFICIENCY["gpu"]

PROFILES: dict[str, EngineProfile] = {p.name: p for p in (
    EngineProfile(
        name="hf-eager", title="Hugging Face generate (eager PyTorch, static batch)",
        matmul=_EAGER.matmul, matmul_fp8=_EAGER.matmul, matmul_fp4=_EAGER.matmul, bandwidth=_EAGER.bandwidth,
        attention=0.35, link_efficiency=0.7,
        iteration_overhead_s=_EAGER.step_overhead_s, per_sequence_overhead_s=0.0,
        continuous_batching=False, chunked_prefill=False, max_num_batched_tokens=1 << 24, max_num_seqs=1 << 16,
        block_size=0, admission="static", kv_memory_fraction=1.0, kv_fraction_of="none", cuda_graphs=False,
        allreduce_latency_s=30e-6, per_op_overhead_s=_EAGER.overhead_s,
        decode_loop_overhead_s=_EAGER.decode_overhead_s, elementwise_traffic=_EAGER.elementwise_traffic,
        sources={"kernels": _EAGER.source,
                 "scheduling": "model.generate on a fixed batch: every sequence holds prompt + all generated "
                               "tokens until the last one finishes; no continuous batching, no paging",
                 "host": "eager PyTorch: ~18 us per kernel call and ~66 ms of Python per decode step "
                         "(transformers' generate loop, measured on the H100 reference steps)"}),
    EngineProfile(
        name="vllm", title="vLLM (paged KV, continuous batching, CUDA graphs, chunked prefill)",
        **OPTIMISED_KERNELS, continuous_batching=True, chunked_prefill=True, max_num_batched_tokens=8192,
        max_num_seqs=1024, block_size=16, admission="on-demand", kv_memory_fraction=0.90, kv_fraction_of="total",
        cuda_graphs=True, graph_pool_bytes=0.5e9, request_overhead_s=FRONTEND_S, sources=_VLLM_SOURCES),
    EngineProfile(
        name="sglang", title="SGLang (radix/paged KV, continuous batching, CUDA graphs, chunked prefill)",
        **OPTIMISED_KERNELS, continuous_batching=True, chunked_prefill=True, max_num_batched_tokens=8192,
        max_num_seqs=1024, block_size=1, admission="on-demand", kv_memory_fraction=0.88, kv_fraction_of="total",
        cuda_graphs=True, graph_pool_bytes=0.5e9, request_overhead_s=FRONTEND_S,
        sources={**_VLLM_SOURCES, "block_size": "page size 1 (token-granular radix cache)",
                 "kv_memory_fraction": "mem_fraction_static ~0.88 on 80 GB GPUs (SGLang server args)",
                 "max_num_batched_tokens": "chunked_prefill_size 8192 on H100-class GPUs"}),
    EngineProfile(
        name="tensorrt-llm", title="TensorRT-LLM (in-flight batching, paged KV, CUDA graphs, chunked context)",
        **OPTIMISED_KERNELS, continuous_batching=True, chunked_prefill=True, max_num_batched_tokens=8192,
        max_num_seqs=2048, block_size=32, admission="reserve", kv_memory_fraction=0.90, kv_fraction_of="free",
        cuda_graphs=True, graph_pool_bytes=0.5e9, request_overhead_s=FRONTEND_S, sliding_window=False,
        sources=_TRT_SOURCES),
    EngineProfile(
        name="lmdeploy", title="LMDeploy TurboMind (persistent batch, paged KV, C++ engine)",
        **OPTIMISED_KERNELS, continuous_batching=True, chunked_prefill=False, max_num_batched_tokens=8192,
        max_num_seqs=256, block_size=64, admission="on-demand", kv_memory_fraction=0.90, kv_fraction_of="free",
        cuda_graphs=True, graph_pool_bytes=0.0, request_overhead_s=FRONTEND_S, sliding_window=False,
        sources={"kernels": OPTIMISED_SOURCE,
                 "scheduling": "TurboMind persistent batch (continuous batching), whole prompts per iteration",
                 "kv_memory_fraction": "~0.9 of the free memory: the LMDeploy v0.1 A100 tables show 76.5 GB of 80 GB "
                                       "in use with a 7B model (the cache is pre-allocated)",
                 "block_size": "cache_block_seq_len 64 (LMDeploy TurboMind default)"}),
    EngineProfile(
        name="vllm-rocm", title="vLLM on ROCm (AMD Instinct: hipBLASLt GEMMs, paged KV, HIP graphs)",
        matmul=0.55, matmul_fp8=0.45, matmul_fp4=0.40, bandwidth=0.70, attention=0.35, link_efficiency=0.6,
        iteration_overhead_s=1.5e-3,
        per_sequence_overhead_s=2.0e-6, continuous_batching=True, chunked_prefill=True, max_num_batched_tokens=8192,
        max_num_seqs=1024, block_size=16, admission="on-demand", kv_memory_fraction=0.90, kv_fraction_of="total",
        cuda_graphs=True, allreduce_latency_s=10e-6, graph_pool_bytes=0.5e9, request_overhead_s=FRONTEND_S,
        sources={**_VLLM_SOURCES, "kernels": "not fitted (no published AMD run with all essentials in "
                 "benchmarks/published_serving.json): the optimised-engine values lowered by ~20% for the younger "
                 "ROCm kernels; treat as rough"}),
    EngineProfile(
        name="jetstream", title="JetStream (TPU, XLA-compiled, continuous batching over fixed slots)",
        matmul=DEFAULT_EFFICIENCY["tpu"].matmul, matmul_fp8=DEFAULT_EFFICIENCY["tpu"].matmul,
        matmul_fp4=DEFAULT_EFFICIENCY["tpu"].matmul, bandwidth=DEFAULT_EFFICIENCY["tpu"].bandwidth, attention=0.40,
        link_efficiency=0.7, iteration_overhead_s=1.0e-3,
        per_sequence_overhead_s=0.0, continuous_batching=True, chunked_prefill=False, max_num_batched_tokens=8192,
        max_num_seqs=256, block_size=0, admission="reserve", kv_memory_fraction=0.90, kv_fraction_of="free",
        cuda_graphs=True, allreduce_latency_s=10e-6, request_overhead_s=FRONTEND_S,
        sources={"kernels": DEFAULT_EFFICIENCY["tpu"].source,
                 "scheduling": "JetStream (MaxText): prefill one request at a time, insert into a fixed decode "
                               "slot, generate over all slots; the cache is preallocated per slot (no paging), so a "
                               "slot reserves prompt + max output; not fitted to published TPU runs"}),
    EngineProfile(
        name="cpu-eager", title="PyTorch eager on CPU (static batch)",
        matmul=DEFAULT_EFFICIENCY["cpu"].matmul, matmul_fp8=DEFAULT_EFFICIENCY["cpu"].matmul,
        matmul_fp4=DEFAULT_EFFICIENCY["cpu"].matmul, bandwidth=DEFAULT_EFFICIENCY["cpu"].bandwidth, attention=0.30,
        link_efficiency=0.5,
        iteration_overhead_s=DEFAULT_EFFICIENCY["cpu"].step_overhead_s, per_sequence_overhead_s=0.0,
        continuous_batching=False, chunked_prefill=False, max_num_batched_tokens=1 << 24, max_num_seqs=1 << 16,
        block_size=0, admission="static", kv_memory_fraction=1.0, kv_fraction_of="none", cuda_graphs=False,
        allreduce_latency_s=50e-6, per_op_overhead_s=DEFAULT_EFFICIENCY["cpu"].overhead_s,
        elementwise_traffic=1.5, sources={"kernels": DEFAULT_EFFICIENCY["cpu"].source,
                                          "scheduling": "static batch, Hugging Face generate on CPU"}),
)}

# the old static-batch engine names still work
ALIASES = {"eager": "hf-eager", "compiled": "vllm", "trtllm": "tensorrt-llm", "trt-llm": "tensorrt-llm",
           "hf": "hf-eager", "transformers": "hf-eager"}


def engine_names() -> list[str]:
    return list(PROFILES)


def get_engine(name) -> EngineProfile:
    """A profile by name (or alias: eager -> hf-eager, compiled -> vllm); a profile passes through."""
    if isinstance(name, EngineProfile):
        return name
    key = ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in PROFILES:
        raise InputError("engine", f"must be one of {', '.join(PROFILES)} (or eager/compiled), got {name!r}")
    return PROFILES[key]


def default_engine(hw) -> tuple[EngineProfile, str]:
    """The engine a planner would deploy on ``hw``, and why (printed next to the numbers)."""
    kind, vendor = getattr(hw, "kind", "gpu"), str(getattr(hw, "vendor", "")).lower()
    if kind == "tpu":
        return PROFILES["jetstream"], "TPU: JetStream-style XLA serving (continuous batching over fixed slots)"
    if kind == "cpu":
        return PROFILES["cpu-eager"], "CPU: eager PyTorch, static batch (no CUDA-graph server)"
    if vendor == "nvidia":
        return PROFILES["vllm"], "NVIDIA GPU: vLLM-style server (paged KV, continuous batching, CUDA graphs)"
    if vendor == "amd":
        return PROFILES["vllm-rocm"], "AMD GPU: vLLM on ROCm"
    return PROFILES["hf-eager"], (f"{getattr(hw, 'vendor', '?')} {kind}: no optimised-server profile modelled for "
                                  "this device; Hugging Face generate (eager, static batch)")


def resolve_engine(engine, hw) -> tuple[EngineProfile, str]:
    """``engine`` None / "" / "auto": the device's default with its reason; else the named profile."""
    if engine in (None, "", "auto", "default"):
        return default_engine(hw)
    prof = get_engine(engine)
    return prof, f"{prof.name}: chosen"


def engine_with_time_source(engine, time_source):
    """An engine profile with op times from ``time_source`` (roofline | measured | auto; None: the profile's)."""
    if time_source is None:
        return engine
    if time_source not in TIME_SOURCES:
        raise InputError("time_source", f"must be one of {', '.join(TIME_SOURCES)}, got {time_source!r}")
    return engine.with_(time_source=time_source)
