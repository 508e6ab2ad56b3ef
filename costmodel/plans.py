"""Training plans, layout search and serving plans: the numbers a capacity-planning meeting needs.

    plan_training(model, hardware, tokens=..., global_batch=..., layout=Layout(...))  -> TrainingPlan
    search_layouts(model, hardware, tokens=..., max_devices=...)                       -> list[LayoutResult]
    plan_serving(model, hardware, prompt=..., generate=...)                            -> ServingPlan
        (costmodel.serving.plan; continuous batching, simulation and capacity in costmodel.serving)
    chinchilla_tokens(params) / chinchilla_params(flops)

All results are frozen records with ``to_dict()``; every assumption is in ``assumptions``.
Formulas and sources: docs/formulas.md ("Plans").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields

from .catalog import resolve_hardware
from .collectives import LinkCalibration
from .costs import CostBreakdown, cost_breakdown, hourly_cost
from .engines import (ENGINES, TrainingEngine, engine_efficiency, engine_workload, fitted, resolve_engine,
                      resolve_time_source)
from .estimator import runtime_overhead_bytes
from .errors import InputError
from .estimator import estimate
from .limits import resolve_defaults
from .models import load_model
from .parallel import (DEFAULT_DP_OVERLAP, Layout, ParallelStep, _int_attr, expert_fraction, model_shard_fraction,
                       n_layers, shard_group_size, sharded_state_bytes, train_step)
from .perf import Efficiency
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


def training_setup(spec, hw, workload: Workload, layout: Layout, engine: str | None, efficiency: Efficiency | None,
                   engine_params: dict | None = None, time_source: str | None = None
                   ) -> tuple[TrainingEngine, Workload, Efficiency]:
    """The engine profile a plan runs under (``auto``: Megatron when the model is split, FSDP otherwise; a plan
    on one device with no engine named stays eager), the workload as that stack runs it (production
    engines: bf16 model with fp32 masters instead of autocast) and the efficiency of its kernels
    (``time_source``: "measured" GEMM tables where resolved by ``engines.resolve_time_source``)."""
    if engine in (None, "auto") and layout.num_devices == 1:
        eng = ENGINES["eager"]
    else:
        eng = resolve_engine(engine, layout)
    wl = engine_workload(eng, workload)
    eff = efficiency or engine_efficiency(eng, hw, engine_params, time_source or "roofline")
    return eng, wl, eff


def _links(links) -> LinkCalibration | None:
    return LinkCalibration.from_dict(links) if isinstance(links, dict) else links


def _training_workload(workload, spec) -> Workload:
    """A plan's workload: task train (a workload for another task is refused, not silently switched); fields a
    dict leaves out take the model's defaults (``limits.resolve_defaults``: GPT-2 trains at its 1,024 positions)."""
    if isinstance(workload, Workload):
        w = workload
    else:
        data = dict(workload or {})
        if data.get("task", "train") != "train":
            raise InputError("task", f"a training plan needs task train, got {data['task']!r:.20}; serving plans "
                                     "are costmodel.plans.plan_serving")
        w = Workload.from_dict(resolve_defaults(spec, {**data, "task": "train"}))
    if w.task != "train":
        raise InputError("task", "a training plan needs task train; serving plans are costmodel.plans.plan_serving")
    return w


def plan_training(model, hardware=None, *, workload: Workload | dict | None = None, layout: Layout | dict | None = None,
                  tokens: float | None = None, samples: int | None = None, epochs: float = 1.0,
                  global_batch: int | None = None, efficiency: Efficiency | None = None,
                  dp_overlap: float = DEFAULT_DP_OVERLAP, pricing: dict | None = None, engine: str | None = "auto",
                  engine_params: dict | None = None, links: LinkCalibration | dict | None = None,
                  time_source: str | None = None) -> TrainingPlan:
    """A whole training run: ``tokens`` (language models) or ``samples`` x ``epochs`` (vision),
    ``global_batch`` samples per optimizer step (default: one micro-batch per data-parallel rank),
    a ``layout`` of devices. ``pricing``: keyword arguments of costmodel.costs.cost_breakdown
    (provider, tier, utilization, pue, region, electricity_usd_per_kwh, storage_bytes, storage_months).
    ``engine``: the training stack (``costmodel.engines``: eager, compiled, fsdp, megatron, or auto);
    ``engine_params``: overrides of its fitted constants (``costmodel.engines.FITTED``).
    ``links``: a measured link calibration (``probe --collectives``; ``costmodel.collectives.LinkCalibration``)
    for the collectives inside an NVLink domain, instead of the catalog link x NVLINK_BUS_EFFICIENCY.
    ``time_source``: roofline (default: GEMMs at the fitted shape curves) | measured (each GEMM from the device's
    measured table, costmodel[measured]) | auto (measured where a table exists).
    """
    links = _links(links)
    spec = load_model(model)
    hw = resolve_hardware(hardware)
    ts, ts_why = resolve_time_source(time_source, hw)
    engine_params = fitted(engine_params, ts)
    wl = _training_workload(workload, spec)
    lay = layout if isinstance(layout, Layout) else Layout(**(layout or {}))
    eng, wl, eff = training_setup(spec, hw, wl, lay, engine, efficiency, engine_params, ts)
    tps = wl.seq if spec.modality == "text" else 1  # tokens per sample
    per_step_min = lay.micro_batch * lay.dp
    gb = global_batch or per_step_min
    if gb < per_step_min:
        raise InputError("global_batch", f"must be at least micro_batch x dp = {per_step_min}, got {gb}")
    if gb % per_step_min:  # refused, not rounded: the run would silently train on another batch size
        lower, upper = gb // per_step_min * per_step_min, (gb // per_step_min + 1) * per_step_min
        raise InputError("global_batch", f"must be a multiple of micro_batch x dp = {per_step_min} (each step "
                                         f"splits it evenly over the data-parallel ranks and accumulation steps), "
                                         f"got {gb}; e.g. {lower} or {upper}")
    grad_accum = gb // per_step_min
    if tokens is None and samples is None:
        raise InputError("tokens", "give the training tokens (language models) or samples and epochs (vision)")
    if tokens is not None and tokens <= 0:
        raise InputError("tokens", f"must be positive, got {tokens}")
    if samples is not None and (samples <= 0 or epochs <= 0):
        raise InputError("samples", "samples and epochs must be positive")
    total_samples = (tokens / tps) if tokens is not None else samples * epochs
    micro = _micro_estimate(spec, hw, wl, lay, eff)
    step = train_step(spec, micro, hw, lay, grad_accum, dp_overlap, tps, engine=eng if eng.production else None,
                      engine_params=engine_params, links=links)
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
                     "grad_accum": grad_accum, "tokens_per_sample": tps,
                     "engine": eng.assumptions(fitted(engine_params)), "precision": wl.precision,
                     "time_source": ts_why if eng.production else "eager/compiled: the reference-fitted efficiency",
                     "link_calibration": links.to_dict() if links is not None else None},
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


MAX_LAYOUT_DEVICES = 1 << 20  # the largest device count (and dp, tp, ... each) a Layout takes
MAX_GRAD_ACCUM = 1 << 20  # the most accumulation steps train_step takes


def _divisors(n: int) -> list[int]:
    """The divisors of ``n`` in increasing order (trial division up to sqrt(n): 1,024 steps for 2^20)."""
    small, large = [], []
    d = 1
    while d * d <= n:
        if n % d == 0:
            small.append(d)
            if d * d != n:
                large.append(n // d)
        d += 1
    return small + large[::-1]


def default_device_counts(max_devices: int, min_devices: int = 1) -> list[int]:
    """The device counts a layout search tries when none are given: every n = 2^a x 3^b x 5^c ("5-smooth":
    1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16, ... 96, 100, 120, 128 ...) with ``min_devices`` <= n <= ``max_devices``,
    and ``max_devices`` itself. These are the counts real clusters and parallel splits are made of (nodes of 4 or
    8 devices, 3-way and 5-way pipeline or data splits: 80 layers split 5 ways, 100,000 = 2^5 x 5^5 devices), a
    superset of the powers of two, and few: 511 counts up to 2^20 (powers of two alone: 21)."""
    if isinstance(max_devices, bool) or not isinstance(max_devices, int) or not 1 <= max_devices <= MAX_LAYOUT_DEVICES:
        raise InputError("max_devices", f"must be a whole number from 1 to {MAX_LAYOUT_DEVICES:,}, got {max_devices!r}")
    out = set()
    p2 = 1
    while p2 <= max_devices:
        p3 = p2
        while p3 <= max_devices:
            p5 = p3
            while p5 <= max_devices:
                out.add(p5)
                p5 *= 5
            p3 *= 3
        p2 *= 2
    out.add(max_devices)
    return sorted(n for n in out if n >= min_devices)


# checkpointing settings a layout search tries, least recompute first (ties rank in this order): none, per-op
# selective (torchtitan's policy; models it is not priced for skip it), full
CHECKPOINTING_SEARCHED = (False, "selective", True)


def _candidates(spec, counts, micro_batches, zero_stages, checkpointing, global_batch: int | None = None):
    """(dp, tp, pp, ep, zero, micro_batch, checkpointing) of every layout with dp x tp x pp devices in ``counts``
    that passes the divisibility rules, in the order the search ranks ties by (count, tp, pp, ep, zero,
    micro-batch, checkpointing). With ``global_batch``: only layouts whose micro_batch x dp divides it in at most
    ``MAX_GRAD_ACCUM`` accumulation steps, pruned per (count, tp, pp) before the inner loops run."""
    heads = _int_attr(spec, "heads")
    layers = n_layers(spec) or 1
    experts = getattr(spec, "num_experts", 0)
    tps = [t for t in range(1, 9) if t == 1 or (heads and heads % t == 0)]  # tp > 8 leaves the NVLink domain
    pps = [1] + ([p for p in _divisors(layers) if p > 1] if heads else [])
    for n in counts:
        for tp in tps:
            if n % tp:
                continue
            for pp in pps:
                # a pipeline stage holds whole blocks, the same number each (Megatron-LM needs num_layers % pp
                # == 0): 80 layers split 2, 4, 5, 8, 10, 16, 20, 40 or 80 ways, never 32 or 64
                if (n // tp) % pp:
                    continue
                dp = n // (tp * pp)
                mbs = micro_batches
                if global_batch is not None:
                    if global_batch % dp:  # no micro-batch splits it evenly
                        continue
                    mbs = [mb for mb in micro_batches if mb * dp <= global_batch and global_batch % (mb * dp) == 0
                           and global_batch // (mb * dp) <= MAX_GRAD_ACCUM]
                    if not mbs:
                        continue
                eps = [e for e in _divisors(math.gcd(dp, experts))] if experts else [1]
                for ep in eps:
                    for z in zero_stages:
                        if z and dp == 1:
                            continue
                        for mb in mbs:
                            for ck in checkpointing:
                                yield dp, tp, pp, ep, z, mb, ck


def candidate_layouts(spec, max_devices: int, device_counts=None, micro_batches=(1, 2, 4, 8),
                      zero_stages=(0, 1, 2, 3), checkpointing=CHECKPOINTING_SEARCHED, *, global_batch: int | None = None,
                      min_devices: int = 1):
    """Every layout with dp x tp x pp devices in ``device_counts`` (default ``default_device_counts``: every
    2^a 3^b 5^c up to ``max_devices`` and ``max_devices`` itself) that passes the divisibility rules (tp <= 8
    dividing the heads, pp dividing the layers, ep dividing dp and the experts); with ``global_batch`` only those
    that split it evenly (micro_batch x dp divides it, at most 2^20 accumulation steps)."""
    counts = list(device_counts) if device_counts else default_device_counts(max_devices)
    counts = [n for n in counts if n >= min_devices]
    return [Layout(dp=dp, tp=tp, pp=pp, ep=ep, zero=z, micro_batch=mb, grad_checkpointing=ck)
            for dp, tp, pp, ep, z, mb, ck in _candidates(spec, counts, micro_batches, zero_stages, checkpointing,
                                                         global_batch)]


def search_layouts(model, hardware=None, *, tokens: float | None = None, samples: int | None = None, epochs: float = 1.0,
                   workload: Workload | dict | None = None, global_batch: int | None = None, max_devices: int = 1024,
                   device_counts=None, micro_batches=(1, 2, 4, 8), zero_stages=(0, 1, 2, 3),
                   checkpointing=CHECKPOINTING_SEARCHED, efficiency: Efficiency | None = None,
                   usd_per_device_hour: float | None = None,
                   rank_by: str = "time", include_unfit: bool = False, limit: int | None = None,
                   engine: str | None = "auto", engine_params: dict | None = None,
                   links: LinkCalibration | dict | None = None, min_devices: int = 1, deadline_s: float | None = None,
                   budget_usd: float | None = None, time_source: str | None = None) -> list[LayoutResult]:
    """Rank feasible layouts by wall-clock ``time`` or ``cost`` for one training run.

    ``global_batch``: samples per optimizer step (fixed, as a training recipe fixes it; default
    the largest micro-batch x the largest device count). ``engine``: as ``plan_training`` (auto: Megatron
    for layouts that split the model, FSDP otherwise, eager on one device). Each distinct (engine,
    micro-batch, checkpointing) single-device estimate is computed once and shared by every layout using it.
    Goals: only layouts of ``min_devices``..``max_devices`` devices, finishing within ``deadline_s`` and costing
    at most ``budget_usd`` (each None: no limit).

    Device counts: ``device_counts`` as given, else ``default_device_counts`` (every 2^a 3^b 5^c up to
    ``max_devices``, up to 2^20, and ``max_devices`` itself). Pruned before any step is priced, each prune
    exact (a pruned layout is one the full evaluation would drop): layouts that do not split the global batch
    evenly (``_candidates``), and, unless ``include_unfit``, layouts whose sharded weights, gradients and
    optimizer states alone (``parallel.sharded_state_bytes``, + the runtime overhead of that much) exceed the
    device: the step's peak only adds activations to them. Engine setup and micro-batch estimates are shared.
    """
    if rank_by not in ("time", "cost"):
        raise InputError("rank_by", f"must be time or cost, got {rank_by!r}")
    links = _links(links)
    spec = load_model(model)
    hw = resolve_hardware(hardware)
    ts, _ = resolve_time_source(time_source, hw)
    engine_params = fitted(engine_params, ts)
    wl = _training_workload(workload, spec)
    if usd_per_device_hour is None:
        usd_per_device_hour = hourly_cost(hw).compute_usd
    tps = wl.seq if spec.modality == "text" else 1
    if tokens is None and samples is None:
        raise InputError("tokens", "give the training tokens (language models) or samples and epochs (vision)")
    total_samples = (tokens / tps) if tokens is not None else samples * epochs
    counts = list(device_counts) if device_counts else default_device_counts(max_devices, min_devices)
    counts = [n for n in counts if n >= min_devices]
    gb = global_batch or max(micro_batches) * max(device_counts or [max_devices])
    efrac = expert_fraction(spec)
    setups: dict = {}  # engine -> (engine, its workload, its efficiency): the same for every layout it runs
    micro_cache: dict = {}
    results = []
    for dp, tp, pp, ep, z, mb, ck in _candidates(spec, counts, micro_batches, zero_stages, checkpointing, gb):
        lay = Layout(dp=dp, tp=tp, pp=pp, ep=ep, zero=z, micro_batch=mb, grad_checkpointing=ck)
        single = engine in (None, "auto") and lay.num_devices == 1
        eng0 = ENGINES["eager"] if single else resolve_engine(engine, lay)
        setup = setups.get(id(eng0))
        if setup is None:
            setup = setups[id(eng0)] = (eng0, training_setup(spec, hw, wl, lay, engine, efficiency, engine_params, ts))
        eng, lwl, eff = setup[1]
        key = (eng.name, mb, ck)
        if key not in micro_cache:
            try:
                micro_cache[key] = _micro_estimate(spec, hw, lwl, lay, eff)
            except InputError:
                micro_cache[key] = None
        micro = micro_cache[key]
        if micro is None:
            continue
        if not include_unfit:  # exact: train_step's peak = these states + live activations >= their sum
            m = micro.memory_bytes
            w_b, g_b, o_b = sharded_state_bytes(m, model_shard_fraction(efrac, tp, pp, ep), shard_group_size(lay), z,
                                                False,
                                                eng.production and eng.sharded_master_is_param)
            states = w_b + o_b + g_b
            if states + runtime_overhead_bytes(states, hw) > m.capacity:
                continue
        grad_accum = gb // (mb * dp)
        st = train_step(spec, micro, hw, lay, grad_accum, DEFAULT_DP_OVERLAP, tps,
                        engine=eng if eng.production else None, engine_params=engine_params, links=links)
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
# The serving plan lives in costmodel.serving (engine profiles, continuous batching, simulation, capacity);
# re-exported here so ``from costmodel.plans import plan_serving`` keeps working.
from .serving.plan import ServingPlan, ServingPoint, plan_serving  # noqa: E402


__all__ = ["TrainingPlan", "LayoutResult", "ServingPlan", "ServingPoint", "plan_training", "search_layouts",
           "plan_serving", "chinchilla_tokens", "chinchilla_params", "compute_optimal_tokens", "candidate_layouts",
           "default_device_counts", "Layout"]
