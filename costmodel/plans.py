"""Training plans, layout search and serving plans: the numbers a capacity-planning meeting needs.

    plan_training(model, hardware, tokens=..., global_batch=..., layout=Layout(...))  -> TrainingPlan
    search_layouts(model, hardware, tokens=..., max_devices=...)                       -> list[LayoutResult]
    plan_serving(model, hardware, prompt=..., generate=...)                            -> ServingPlan
    chinchilla_tokens(params) / chinchilla_params(flops)

All results are frozen records with ``to_dict()``; every assumption is in ``assumptions``.
Formulas and sources: docs/formulas.md ("Plans").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .catalog import resolve_hardware
from .collectives import INTRA_NODE_LATENCY_S, Link, allreduce_s
from .costs import CostBreakdown, cost_breakdown, hourly_cost
from .errors import InputError
from .estimator import estimate
from .limits import model_limits, resolve_defaults
from .models import load_model
from .parallel import DEFAULT_DP_OVERLAP, Layout, ParallelStep, _int_attr, check_layout, n_layers, train_step
from .perf import Efficiency, default_efficiency
from .workload import Workload

# Hoffmann et al. 2022 ("Chinchilla"): compute-optimal training uses about 20 tokens per parameter,
# and training compute is about 6 x params x tokens FLOPs (Kaplan et al. 2020).
CHINCHILLA_TOKENS_PER_PARAM = 20.0


def chinchilla_tokens(params: float) -> float:
    """Compute-optimal training tokens for a model of ``params`` parameters: 20 x params."""
    if params <= 0:
        raise InputError("params", f"must be positive, got {params}")
    return CHINCHILLA_TOKENS_PER_PARAM * params


def compute_optimal_tokens(model) -> tuple[int, float]:
    """(parameters, compute-optimal tokens) of a model: Chinchilla's rule on the parameters a token uses
    (``params.active``: all of them for a dense model, shared + top-k experts for a mixture of experts, whose
    compute per token is what the rule trades against data; Mixtral-8x7B: 12.9B active of 46.7B)."""
    spec = load_model(model)
    n = estimate(spec, Workload(**resolve_defaults(spec, {"batch": 1, "seq": 16})), None, with_layers=False).params.active
    return n, chinchilla_tokens(n)


def chinchilla_params(flops: float) -> tuple[float, float]:
    """(params, tokens) that spend ``flops`` compute-optimally: C = 6 N D with D = 20 N, so
    N = sqrt(C / 120), D = 20 N."""
    if flops <= 0:
        raise InputError("flops", f"must be positive, got {flops}")
    n = math.sqrt(flops / (6.0 * CHINCHILLA_TOKENS_PER_PARAM))
    return n, CHINCHILLA_TOKENS_PER_PARAM * n


@dataclass(frozen=True)
class TrainingPlan:
    model: str
    hardware: str
    num_devices: int
    tokens: float
    steps: int
    step: ParallelStep
    wall_clock_s: float
    gpu_hours: float
    total_flops: float  # model FLOPs (forward + backward), no recomputation
    total_flops_with_recompute: float
    six_n_d_flops: float  # the 6 x params x tokens rule, for comparison
    cost: CostBreakdown
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(step=self.step.to_dict(), cost=asdict(self.cost), assumptions=dict(self.assumptions))
        return out


def _micro_estimate(spec, hw, workload: Workload, layout: Layout, eff: Efficiency):
    w = workload.with_(task="train", batch=layout.micro_batch, grad_checkpointing=layout.grad_checkpointing,
                       seq=workload.seq)
    return estimate(spec, w, hw, with_layers=False, efficiency=eff)


def plan_training(model, hardware=None, *, workload: Workload | dict | None = None, layout: Layout | dict | None = None,
                  tokens: float | None = None, samples: int | None = None, epochs: float = 1.0,
                  global_batch: int | None = None, efficiency: Efficiency | None = None,
                  dp_overlap: float = DEFAULT_DP_OVERLAP, pricing: dict | None = None) -> TrainingPlan:
    """A whole training run: ``tokens`` (language models) or ``samples`` x ``epochs`` (vision),
    ``global_batch`` samples per optimizer step (default: one micro-batch per data-parallel rank),
    a ``layout`` of devices. ``pricing``: keyword arguments of costmodel.costs.cost_breakdown
    (provider, tier, utilization, pue, region, electricity_usd_per_kwh, storage_bytes, storage_months).
    """
    spec = load_model(model)
    hw = resolve_hardware(hardware)
    wl = workload if isinstance(workload, Workload) else \
        Workload.from_dict(resolve_defaults(spec, {**(workload or {}), "task": "train"}))
    lay = layout if isinstance(layout, Layout) else Layout(**(layout or {}))
    eff = efficiency or default_efficiency(hw)
    tps = wl.seq if spec.modality == "text" else 1  # tokens per sample
    per_step_min = lay.micro_batch * lay.dp
    gb = global_batch or per_step_min
    if gb < per_step_min:
        raise InputError("global_batch", f"must be at least micro_batch x dp = {per_step_min}, got {gb}")
    grad_accum = math.ceil(gb / per_step_min)
    if tokens is None and samples is None:
        raise InputError("tokens", "give the training tokens (language models) or samples and epochs (vision)")
    if tokens is not None and tokens <= 0:
        raise InputError("tokens", f"must be positive, got {tokens}")
    if samples is not None and (samples <= 0 or epochs <= 0):
        raise InputError("samples", "samples and epochs must be positive")
    total_samples = (tokens / tps) if tokens is not None else samples * epochs
    micro = _micro_estimate(spec, hw, wl, lay, eff)
    step = train_step(spec, micro, hw, lay, grad_accum, dp_overlap, tps)
    steps = max(1, math.ceil(total_samples / step.global_batch))
    wall = steps * step.step_s
    gpu_hours = wall * lay.num_devices / 3600.0
    total_tokens = total_samples * tps
    return TrainingPlan(
        model=spec.name, hardware=hw.id, num_devices=lay.num_devices, tokens=total_tokens, steps=steps, step=step,
        wall_clock_s=wall, gpu_hours=gpu_hours, total_flops=step.model_flops_per_step * steps,
        total_flops_with_recompute=step.hardware_flops_per_step * steps,
        six_n_d_flops=6.0 * micro.params.active * total_tokens,
        cost=cost_breakdown(gpu_hours, hw, **(pricing or {})),
        assumptions={**step.assumptions, "efficiency": eff.to_dict(), "global_batch": step.global_batch,
                     "grad_accum": grad_accum, "tokens_per_sample": tps},
    )


# ---- layout search ------------------------------------------------------------------------------
@dataclass(frozen=True)
class LayoutResult:
    layout: Layout
    num_devices: int
    fits: bool
    peak_bytes: float
    device_total_bytes: float
    step_s: float
    wall_clock_s: float
    gpu_hours: float
    cost_usd: float | None  # None: no price for this device
    mfu: float
    global_batch: int
    grad_accum: int

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["layout"] = self.layout.to_dict()
        return out


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def candidate_layouts(spec, max_devices: int, device_counts=None, micro_batches=(1, 2, 4, 8),
                      zero_stages=(0, 1, 2, 3), checkpointing=(False, True)):
    """Every layout with dp x tp x pp devices in ``device_counts`` (default powers of two up to
    ``max_devices``) that passes the divisibility rules."""
    counts = device_counts or [2 ** i for i in range(0, int(math.log2(max_devices)) + 1)]
    heads = _int_attr(spec, "heads")
    layers = n_layers(spec) or 1
    experts = getattr(spec, "num_experts", 0)
    out = []
    for n in counts:
        for tp in _divisors(n):
            if tp > 1 and (not heads or heads % tp or tp > 8):
                continue
            for pp in _divisors(n // tp):
                # a pipeline stage holds whole blocks, the same number each (Megatron-LM needs num_layers % pp
                # == 0): 80 layers split 2, 4, 5, 8, 10, 16, 20, 40 or 80 ways, never 32 or 64
                if pp > 1 and (pp > layers or not heads or layers % pp):
                    continue
                dp = n // (tp * pp)
                eps = [e for e in _divisors(dp) if experts and experts % e == 0] if experts else [1]
                for ep in eps:
                    for z in zero_stages:
                        if z and dp == 1:
                            continue
                        for mb in micro_batches:
                            for ck in checkpointing:
                                out.append(Layout(dp=dp, tp=tp, pp=pp, ep=ep, zero=z, micro_batch=mb,
                                                  grad_checkpointing=ck))
    return out


def search_layouts(model, hardware=None, *, tokens: float | None = None, samples: int | None = None, epochs: float = 1.0,
                   workload: Workload | dict | None = None, global_batch: int | None = None, max_devices: int = 1024,
                   device_counts=None, micro_batches=(1, 2, 4, 8), zero_stages=(0, 1, 2, 3),
                   checkpointing=(False, True), efficiency: Efficiency | None = None, usd_per_device_hour: float | None = None,
                   rank_by: str = "time", include_unfit: bool = False, limit: int | None = None,
                   min_devices: int = 1, deadline_s: float | None = None,
                   budget_usd: float | None = None) -> list[LayoutResult]:
    """Rank feasible layouts by wall-clock ``time`` or ``cost`` for one training run.

    ``global_batch``: samples per optimizer step (fixed, as a training recipe fixes it; default
    the largest micro-batch x the largest device count). Each distinct (micro-batch, checkpointing)
    single-device estimate is computed once and shared by every layout using it. Goals: only layouts of
    ``min_devices``..``max_devices`` devices, finishing within ``deadline_s`` and costing at most ``budget_usd``
    (each None: no limit).
    """
    if rank_by not in ("time", "cost"):
        raise InputError("rank_by", f"must be time or cost, got {rank_by!r}")
    spec = load_model(model)
    hw = resolve_hardware(hardware)
    wl = workload if isinstance(workload, Workload) else \
        Workload.from_dict(resolve_defaults(spec, {**(workload or {}), "task": "train"}))
    eff = efficiency or default_efficiency(hw)
    if usd_per_device_hour is None:
        usd_per_device_hour = hourly_cost(hw).compute_usd
    tps = wl.seq if spec.modality == "text" else 1
    if tokens is None and samples is None:
        raise InputError("tokens", "give the training tokens (language models) or samples and epochs (vision)")
    total_samples = (tokens / tps) if tokens is not None else samples * epochs
    gb = global_batch or max(micro_batches) * max(device_counts or [max_devices])
    micro_cache: dict = {}
    results = []
    for lay in candidate_layouts(spec, max_devices, device_counts, micro_batches, zero_stages, checkpointing):
        if lay.num_devices < min_devices:
            continue
        per_step = lay.micro_batch * lay.dp
        if per_step > gb:
            continue
        key = (lay.micro_batch, lay.grad_checkpointing)
        if key not in micro_cache:
            try:
                micro_cache[key] = _micro_estimate(spec, hw, wl, lay, eff)
            except InputError:
                micro_cache[key] = None
        micro = micro_cache[key]
        if micro is None:
            continue
        grad_accum = math.ceil(gb / per_step)
        st = train_step(spec, micro, hw, lay, grad_accum, DEFAULT_DP_OVERLAP, tps)
        if not st.fits and not include_unfit:
            continue
        steps = max(1, math.ceil(total_samples / st.global_batch))
        wall = steps * st.step_s
        gpu_hours = wall * lay.num_devices / 3600.0
        if deadline_s is not None and wall > deadline_s:
            continue
        if budget_usd is not None and usd_per_device_hour is not None and gpu_hours * usd_per_device_hour > budget_usd:
            continue
        results.append(LayoutResult(
            layout=st.layout, num_devices=lay.num_devices, fits=st.fits, peak_bytes=st.memory_bytes.peak,
            device_total_bytes=st.memory_bytes.device_total, step_s=st.step_s, wall_clock_s=wall,
            gpu_hours=gpu_hours, cost_usd=gpu_hours * usd_per_device_hour if usd_per_device_hour is not None else None,
            mfu=st.mfu,
            global_batch=st.global_batch, grad_accum=grad_accum))
    if rank_by == "cost" and usd_per_device_hour is None:
        raise InputError("rank_by", f"cost needs a price: {hw.id} has none in the catalog; give usd_per_device_hour")
    key = (lambda r: (r.wall_clock_s, r.cost_usd or 0.0)) if rank_by == "time" else \
        (lambda r: (r.cost_usd, r.wall_clock_s))
    results.sort(key=key)
    return results[:limit] if limit else results


# ---- serving ------------------------------------------------------------------------------------
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
    max_context: int  # longest prompt + generate that fits at batch 1
    points: tuple[ServingPoint, ...]
    assumptions: dict = field(default_factory=dict)

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


def _serve_estimate(spec, hw, w: Workload, eff: Efficiency, tp: int):
    """Per-device serving numbers under ``tp``-way tensor parallelism: weights, KV cache and compute
    split by tp; two all-reduces of the hidden state per layer per pass (Megatron)."""
    est = estimate(spec, w, hw, with_layers=False, efficiency=eff)
    m = est.memory_bytes
    t = est.time_s
    h = _int_attr(spec, "hidden")
    layers = n_layers(spec) or 1
    cb = 4.0 if w.precision == "fp32" else 2.0
    link = Link(hw.intra_node_bandwidth_bytes_per_s, INTRA_NODE_LATENCY_S)
    pre_comm = 2 * layers * allreduce_s(w.batch * w.prompt * h * cb, tp, link)
    dec_comm = 2 * layers * allreduce_s(w.batch * h * cb, tp, link)
    device = (m.peak - m.transient) / tp + m.transient + (m.device_total - m.peak)
    host = est.perf.host_s if est.perf.bound == "host" else 0.0  # host time does not shrink with more devices
    prefill = (t.prefill_s - host) / tp + host + pre_comm if tp > 1 else t.prefill_s
    decode = (t.decode_per_token_s / tp + dec_comm) if tp > 1 else t.decode_per_token_s
    if tp > 1 and est.perf.decode_bound == "host":
        decode = t.decode_per_token_s + dec_comm
    return est, device, prefill, decode


def plan_serving(model, hardware=None, *, prompt: int = 512, generate: int = 128, precision: str = "bf16",
                 kv_cache_precision: str | None = None, tp: int = 1, batch_sizes=(1, 2, 4, 8, 16, 32, 64, 128, 256),
                 engine: str = "eager", efficiency: Efficiency | None = None, pricing: dict | None = None,
                 attention: str = "fused") -> ServingPlan:
    """Latency, throughput, memory and $ per million generated tokens across batch sizes, the
    largest batch and context that fit, for ``tp`` devices serving one model replica."""
    spec = load_model(model)
    if not spec.generative:
        raise InputError("model", f"{spec.name} is not a generative model; serving plans are for decoders")
    hw = resolve_hardware(hardware)
    check_layout(spec, Layout(tp=tp))
    eff = efficiency or default_efficiency(hw, engine)
    base = Workload(task="infer", batch=1, prompt=prompt, generate=generate, precision=precision,
                    kv_cache_precision=kv_cache_precision, attention=attention)
    one_hour = hourly_cost(hw, pricing)
    usd_per_device_hour = one_hour.compute_usd
    kwh_per_device_hour = one_hour.energy_kwh
    points = []
    for b in sorted(set(int(x) for x in batch_sizes)):
        w = base.with_(batch=b)
        est, device, prefill, decode = _serve_estimate(spec, hw, w, eff, tp)
        request = prefill + decode * generate
        tput = b * generate / request if request else 0.0
        per_m = 1e6 / tput / 3600.0 if tput else float("inf")  # device-hours per million tokens, per device
        points.append(ServingPoint(
            batch=b, fits=device <= hw.memory_bytes, device_total_bytes=device,
            kv_cache_bytes=est.memory_bytes.kv_cache / tp, ttft_s=prefill, decode_per_token_s=decode,
            request_s=request, throughput_tokens_per_s=tput,
            usd_per_million_tokens=per_m * tp * usd_per_device_hour if usd_per_device_hour is not None else None,
            energy_kwh_per_million_tokens=per_m * tp * kwh_per_device_hour))
    kv_per_token = estimate(spec, base.with_(prompt=1, generate=0), hw, with_layers=False,
                            efficiency=eff).memory_bytes.kv_cache
    max_batch = _largest(lambda b: _serve_estimate(spec, hw, base.with_(batch=b), eff, tp)[1] <= hw.memory_bytes)
    limit = model_limits(spec).max_positions  # no context beyond the model's own
    max_ctx = _largest(lambda n: _serve_estimate(spec, hw, base.with_(prompt=max(n - generate, 1)), eff, tp)[1]
                       <= hw.memory_bytes, lo=generate + 1, hi=limit or 1 << 22)
    weights = estimate(spec, base, hw, with_layers=False, efficiency=eff).memory_bytes.weights / tp
    return ServingPlan(
        model=spec.name, hardware=hw.id, tp=tp, precision=precision,
        kv_cache_precision=kv_cache_precision or ("fp32" if precision == "fp32" else "bf16"),
        prompt=prompt, generate=generate, kv_cache_bytes_per_token=kv_per_token, weights_bytes_per_device=weights,
        max_batch=max_batch, max_context=max_ctx, points=tuple(points),
        assumptions={"efficiency": eff.to_dict(), "engine": engine,
                     "price": one_hour.assumptions, "usd_per_device_hour": usd_per_device_hour,
                     "tensor_parallel": "weights, KV cache and compute split by tp; 2 all-reduces of the hidden "
                                        "state per layer per pass over NVLink",
                     "throughput": "generated tokens / (prefill + generate x decode step) for a static batch"},
    )


def _largest(fits, lo: int = 1, hi: int = 1 << 22) -> int:
    """Largest n in [lo, hi] with fits(n) (monotone), 0 if none."""
    if not fits(lo):
        return 0
    n = lo
    while n * 2 <= hi and fits(n * 2):
        n *= 2
    a, b = n, min(n * 2, hi)
    while b - a > 1:
        mid = (a + b) // 2
        if fits(mid):
            a = mid
        else:
            b = mid
    return a if not fits(b) else b


__all__ = ["TrainingPlan", "LayoutResult", "ServingPlan", "ServingPoint", "plan_training", "search_layouts",
           "plan_serving", "chinchilla_tokens", "chinchilla_params", "compute_optimal_tokens", "candidate_layouts",
           "Layout"]
