"""The serving plan of one deployment: a static-batch table (every batch size's TTFT, decode step, throughput,
memory and $ per million tokens) next to the engine's continuous-batching offline throughput
(``offline_throughput_tokens_per_s``), the largest batch and context that fit, and the engine profile chosen
(docs/serving.md). ``costmodel.plans.plan_serving`` is this function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..catalog import resolve_hardware
from ..costs import hourly_cost
from ..errors import InputError
from ..models import load_model
from .batching.offline import largest_static_batch, offline_throughput, static_batch_s
from .engines import resolve_engine
from .model import Layout, StepModel, check_positions


@dataclass(frozen=True)
class ServingPoint:
    batch: int
    fits: bool
    device_total_bytes: float
    kv_cache_bytes: float
    ttft_s: float  # time to first token: the prefill of the whole batch
    decode_per_token_s: float  # one decode step (every sequence in the batch gets a token)
    request_s: float  # prefill + generate decode steps
    throughput_tokens_per_s: float  # generated tokens per second, whole batch
    usd_per_million_tokens: float | None  # generated tokens; None: no price for this device
    energy_kwh_per_million_tokens: float


@dataclass(frozen=True)
class ServingPlan:
    model: str
    hardware: str
    tp: int
    precision: str
    kv_cache_precision: str
    prompt: int
    generate: int
    kv_cache_bytes_per_token: float  # all layers, one sequence, one position
    weights_bytes_per_device: float
    max_batch: int  # largest batch that fits at prompt + generate
    max_context: int  # longest prompt + generate that fits at batch 1, capped at the model's position limit
    points: tuple[ServingPoint, ...]
    assumptions: dict = field(default_factory=dict)
    engine: str = "vllm"
    engine_reason: str = ""
    pp: int = 1
    ep: int = 1
    max_positions: int = 0
    kv_pool_bytes_per_device: float = 0.0
    offline_throughput_tokens_per_s: float = 0.0  # continuous batching, all requests queued, whole replica
    offline_throughput_tokens_per_s_per_device: float = 0.0
    offline_usd_per_million_tokens: float | None = None
    offline_energy_kwh_per_million_tokens: float = 0.0
    offline: dict = field(default_factory=dict)

    @property
    def devices(self) -> int:
        return self.tp * self.pp

    @property
    def cheapest_fitting_point(self) -> ServingPoint | None:
        """The batch that fits in memory with the lowest $ per million generated tokens (the highest
        throughput per device when the device has no price); None when no batch fits."""
        fitting = [p for p in self.points if p.fits]
        if not fitting:
            return None
        if all(p.usd_per_million_tokens is not None for p in fitting):
            return min(fitting, key=lambda p: p.usd_per_million_tokens)
        return max(fitting, key=lambda p: p.throughput_tokens_per_s)

    def to_dict(self) -> dict:
        return asdict(self)


def engine_with_efficiency(engine, efficiency):
    """An engine profile with the kernel fractions of an edited ``Efficiency`` (CLI --matmul-efficiency ...)."""
    if efficiency is None:
        return engine
    ch = dict(matmul=efficiency.matmul, matmul_fp8=efficiency.matmul, matmul_fp4=efficiency.matmul,
              bandwidth=efficiency.bandwidth)
    if engine.per_op_overhead_s:
        ch["per_op_overhead_s"] = efficiency.overhead_s
    return engine.with_(**ch)


def step_model(model, hardware=None, *, precision: str = "bf16", kv_cache_precision: str | None = None, tp: int = 1,
               pp: int = 1, ep: int = 1, attention_dp: bool = False, engine=None, efficiency=None,
               speculation=None) -> tuple[StepModel, str]:
    """The step model of one replica and the reason its engine was chosen."""
    hw = resolve_hardware(hardware)
    prof, why = resolve_engine(engine, hw)
    prof = engine_with_efficiency(prof, efficiency)
    sm = StepModel(model, hw, precision=precision, kv_cache_precision=kv_cache_precision, engine=prof,
                   layout=Layout(tp=tp, pp=pp, ep=ep, attention_dp=attention_dp), speculation=speculation)
    return sm, why


def plan_serving(model, hardware=None, *, prompt: int = 512, generate: int = 128, precision: str = "bf16",
                 kv_cache_precision: str | None = None, tp: int = 1, pp: int = 1, ep: int = 1,
                 batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256), engine: str | None = None, efficiency=None,
                 pricing: dict | None = None, attention: str = "fused", prefix_hit: float = 0.0,
                 speculation=None) -> ServingPlan:
    """Latency, throughput, memory and $ per million generated tokens across static batch sizes, the engine's
    continuous-batching offline throughput, and the largest batch and context that fit, for ``tp`` x ``pp``
    devices serving one model replica. ``engine`` None: the device's default profile (printed with its reason).
    ``attention`` is kept for compatibility: every engine profile runs fused (flash) attention."""
    spec = load_model(model)
    if not spec.generative:
        raise InputError("model", f"{spec.name} is not a generative model; serving plans are for decoders")
    if attention not in ("fused", "eager"):
        raise InputError("attention", f"must be fused or eager, got {attention!r}")
    check_positions(spec, prompt, generate)
    sizes = sorted(set(int(x) for x in batch_sizes))
    if not sizes or sizes[0] < 1:
        raise InputError("batch_sizes", f"must be whole numbers >= 1, got {list(batch_sizes)!r}")
    sm, why = step_model(spec, hardware, precision=precision, kv_cache_precision=kv_cache_precision, tp=tp, pp=pp,
                         ep=ep, engine=engine, efficiency=efficiency, speculation=speculation)
    hw, e = sm.hw, sm.engine
    devices = sm.layout.devices
    one_hour = hourly_cost(hw, pricing)
    usd_h, kwh_h = one_hour.compute_usd, one_hour.energy_kwh
    cap = float(hw.memory_bytes)
    paged = e.kv_fraction_of != "none"
    pool = sm.kv_pool_bytes
    fixed = sm.weights_bytes + sm.runtime_bytes
    points = []
    for b in sizes:
        kv = b * sm.kv_bytes(prompt + generate)
        if paged:
            need = fixed + sm.engine_activation_bytes + kv
            fits = pool > 0 and b * sm.request_kv_bytes(prompt + generate) <= pool
        else:
            need = sm.static_device_bytes(b, prompt, generate)
            fits = need <= cap
        pre, dec = static_batch_s(sm, b, prompt, generate)
        request = pre + dec * max(generate - 1, 0) if generate else pre
        tput = b * generate / request if request and generate else 0.0
        per_m = 1e6 / tput / 3600.0 if tput else float("inf")  # replica-hours per million tokens
        points.append(ServingPoint(
            batch=b, fits=bool(fits), device_total_bytes=float(need), kv_cache_bytes=float(kv), ttft_s=float(pre),
            decode_per_token_s=float(dec), request_s=float(request), throughput_tokens_per_s=float(tput),
            usd_per_million_tokens=per_m * devices * usd_h if usd_h is not None else None,
            energy_kwh_per_million_tokens=per_m * devices * kwh_h))
    limit = spec.max_positions
    if paged:
        max_batch = int(pool // sm.request_kv_bytes(prompt + generate)) if pool > 0 else 0
        if sm.kv_bytes_per_token > 0:
            max_ctx = int(pool // sm.kv_bytes_per_token) if pool > 0 else 0
        else:  # a Mamba model's state does not grow with the context: memory sets no length
            max_ctx = CONTEXT_SEARCH_CAP if pool >= sm.request_kv_bytes(1) else 0
    else:
        max_batch = largest_static_batch(sm, prompt, generate)
        max_ctx = _largest_context(sm, generate, cap)
    max_ctx = min(max_ctx, limit) if limit else max_ctx
    off = offline_throughput(sm, prompt, generate, prefix_hit=prefix_hit) if generate else None
    off_tok = off.output_tokens_per_s if off else 0.0
    off_per_m = 1e6 / off_tok / 3600.0 if off_tok else float("inf")
    kv_default = "fp32" if precision == "fp32" else "bf16"
    full_kv_token = sm.shape.kv_token_elems * sm.prec.kv_bytes * sm.shape.n_attn_layers  # + none for Mamba state
    return ServingPlan(
        model=spec.name, hardware=hw.id, tp=tp, precision=precision, kv_cache_precision=kv_cache_precision or kv_default,
        prompt=prompt, generate=generate, kv_cache_bytes_per_token=full_kv_token,
        weights_bytes_per_device=sm.weights_bytes, max_batch=max_batch, max_context=max_ctx, points=tuple(points),
        engine=e.name, engine_reason=why, pp=pp, ep=ep, max_positions=limit, kv_pool_bytes_per_device=max(pool, 0.0),
        offline_throughput_tokens_per_s=off_tok, offline_throughput_tokens_per_s_per_device=off_tok / devices,
        offline_usd_per_million_tokens=off_per_m * devices * usd_h if (usd_h is not None and off_tok) else None,
        offline_energy_kwh_per_million_tokens=off_per_m * devices * kwh_h if off_tok else float("inf"),
        offline=off.to_dict() if off else {},
        assumptions={"engine": e.name, "engine_reason": why, "engine_profile": e.to_dict(),
                     "precision": sm.prec.to_dict(), "price": one_hour.assumptions, "usd_per_device_hour": usd_h,
                     "efficiency": {"matmul": e.matmul, "matmul_fp8": e.matmul_fp8, "matmul_fp4": e.matmul_fp4,
                                    "bandwidth": e.bandwidth, "attention": e.attention, "time_source": sm.ops.name},
                     "tensor_parallel": "weights, KV cache and compute split by tp (KV heads replicated when tp > "
                                        "KV heads); 2 all-reduces of the hidden state per layer per iteration",
                     "throughput": "static batch: generated tokens / (prefill + (generate - 1) x decode step); "
                                   "offline: continuous batching at steady state (costmodel.serving.batching.offline)",
                     "max_context": f"capped at the model's maximum positions ({limit:,})" if limit else "no limit"},
    )


CONTEXT_SEARCH_CAP = 1 << 24  # the longest context a plan reports (16.8M positions) when memory sets none


def _largest_context(sm: StepModel, generate: int, cap: float) -> int:
    lo = generate + 1
    if sm.static_device_bytes(1, max(lo - generate, 1), generate) > cap:
        return 0
    a, b = lo, lo * 2
    while b < CONTEXT_SEARCH_CAP and sm.static_device_bytes(1, b - generate, generate) <= cap:
        a, b = b, b * 2
    while b - a > 1:
        mid = (a + b) // 2
        if sm.static_device_bytes(1, mid - generate, generate) <= cap:
            a = mid
        else:
            b = mid
    return a
