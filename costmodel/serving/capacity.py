"""Capacity planning to a target: the cheapest fleet that serves ``qps`` requests per second within p99 TTFT and
p99 TPOT SLOs, and what a million tokens costs there (docs/serving.md, "Capacity planning").

For every candidate (device x tensor-parallel size x engine x weight precision) one replica is simulated under
Poisson traffic (``costmodel.serving.simulate``) and the largest request rate it sustains within both SLOs is
found by bisection between 0 and its saturation rate (the offline throughput). A fleet of R replicas behind a
random router gives each replica a Poisson stream at qps / R, so R = ceil(qps / max rate per replica). The
cheapest candidate by $ per hour (by devices when a device has no price) wins; $ and kWh per million output
tokens are at the target load: fleet $/h / (qps x output tokens x 3600 / 1e6). Every simulated rate is kept as a
point of the latency-throughput frontier (output tokens/s per device against p99 TPOT), feasible or not.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..catalog import resolve_hardware
from ..costs import hourly_cost
from ..errors import InputError
from ..models import load_model
from .batching.offline import offline_throughput
from .engines import engine_with_time_source, resolve_engine
from .measured_ops import op_times
from .model import Layout, StepModel, check_positions, model_shape
from .ops import describe
from .quant import serving_precision
from .simulate import poisson_requests, simulate


@dataclass(frozen=True)
class FrontierPoint:
    hardware: str
    tp: int
    engine: str
    precision: str
    rate_per_s: float  # offered requests/s per replica
    output_tokens_per_s_per_device: float
    ttft_p99_s: float
    tpot_p99_s: float
    feasible: bool  # meets both SLOs


@dataclass(frozen=True)
class Candidate:
    hardware: str
    tp: int
    engine: str
    engine_reason: str
    precision: str
    devices_per_replica: int
    feasible: bool
    reason: str  # why not, or "meets the SLOs"
    max_rate_per_replica: float  # requests/s within the SLOs (0: none)
    replicas: int
    devices: int
    usd_per_hour: float | None
    kwh_per_hour: float
    usd_per_million_tokens: float | None
    kwh_per_million_tokens: float | None
    offline_tokens_per_s_per_device: float
    ttft_p99_s: float  # at the planned load per replica
    tpot_p99_s: float
    ttft_p50_s: float
    tpot_p50_s: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CapacityPlan:
    model: str
    qps: float
    input_tokens: int
    output_tokens: int
    slo_ttft_s: float
    slo_tpot_s: float
    best: Candidate | None
    candidates: tuple[Candidate, ...]
    frontier: tuple[FrontierPoint, ...]
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"model": self.model, "qps": self.qps, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "slo_ttft_s": self.slo_ttft_s, "slo_tpot_s": self.slo_tpot_s,
                "best": self.best.to_dict() if self.best else None,
                "candidates": [c.to_dict() for c in self.candidates],
                "frontier": [asdict(p) for p in self.frontier], "assumptions": dict(self.assumptions)}


def _measure(sm, rate, isl, osl, n, seed, distribution, spread, prefix_hit):
    reqs = poisson_requests(rate, n, isl, osl, distribution=distribution, spread=spread, seed=seed,
                            max_positions=getattr(sm.spec, "max_positions", None))
    res = simulate(sm, reqs, prefix_hit=prefix_hit)
    return res


def max_rate_within_slo(sm: StepModel, input_tokens: int, output_tokens: int, slo_ttft_s: float, slo_tpot_s: float,
                        *, percentile: float = 99.0, num_requests: int = 400, seed: int = 0,
                        distribution: str = "fixed", spread: float = 0.0, prefix_hit: float = 0.0,
                        saturation_rate: float | None = None, steps: int = 7, points: list | None = None):
    """Largest Poisson rate (requests/s) one replica serves with TTFT and TPOT percentiles within the SLOs, by
    bisection on [0, saturation]; returns (rate, the simulation at that rate or None). ``points`` collects
    (rate, SimResult, feasible) of every rate tried."""
    if saturation_rate is None:
        saturation_rate = offline_throughput(sm, input_tokens, output_tokens,
                                             prefix_hit=prefix_hit).requests_per_s
    if not saturation_rate > 0:
        return 0.0, None

    def ok(res):
        return res.percentile("ttft_s", percentile) <= slo_ttft_s and \
            not (res.percentile("tpot_s", percentile) > slo_tpot_s)

    lo, hi, best = 0.0, saturation_rate, None
    # the latency floor first: a light load that misses the SLOs means no rate does
    probe = _measure(sm, saturation_rate * 0.02, input_tokens, output_tokens, min(num_requests, 100), seed,
                     distribution, spread, prefix_hit)
    if points is not None:
        points.append((saturation_rate * 0.02, probe, ok(probe)))
    if not ok(probe):
        return 0.0, probe
    lo, best = saturation_rate * 0.02, probe
    for _ in range(steps):
        mid = (lo + hi) / 2.0 if hi < math.inf else lo * 2
        res = _measure(sm, mid, input_tokens, output_tokens, num_requests, seed, distribution, spread, prefix_hit)
        good = ok(res)
        if points is not None:
            points.append((mid, res, good))
        if good:
            lo, best = mid, res
        else:
            hi = mid
    return lo, best


def plan_capacity(model, *, qps: float, input_tokens: int, output_tokens: int, slo_ttft_s: float,
                  slo_tpot_s: float, hardware=("h100-sxm-80gb",), tps=(1, 2, 4, 8), engines=(None,),
                  precisions=("bf16", "fp8"), kv_cache_precision: str | None = None, pricing: dict | None = None,
                  percentile: float = 99.0, num_requests: int = 400, distribution: str = "fixed",
                  spread: float = 0.0, prefix_hit: float = 0.0, seed: int = 0,
                  time_source: str | None = None) -> CapacityPlan:
    """Search devices x TP x engine x precision x replicas for the cheapest fleet meeting the SLOs.
    ``engines``: profile names, or None for each device's default. ``time_source``: roofline | measured | auto
    (None: the profiles'); when given, ``assumptions["op_times"]`` names the source per device and engine."""
    if not (isinstance(qps, (int, float)) and qps > 0 and math.isfinite(qps)):
        raise InputError("qps", f"must be a positive number of requests per second, got {qps!r}")
    for name, v in (("slo_ttft_ms", slo_ttft_s), ("slo_tpot_ms", slo_tpot_s)):
        if not (isinstance(v, (int, float)) and v > 0):
            raise InputError(name, f"must be positive, got {v!r}")
    if not 50.0 <= percentile < 100.0:
        raise InputError("percentile", f"must be from 50 to below 100, got {percentile}")
    for name, v in (("prompt", input_tokens), ("generate", output_tokens)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(name, f"must be a whole number of tokens >= 1 for a serving fleet (the SLOs and $ per "
                                   f"million tokens are per generated token), got {v!r}")
    spec = load_model(model)
    shape = model_shape(spec)
    check_positions(spec, input_tokens, output_tokens)
    cands: list[Candidate] = []
    frontier: list[FrontierPoint] = []
    sources: dict = {}
    for hw_id in hardware:
        hw = resolve_hardware(hw_id)
        hour = hourly_cost(hw, pricing)
        for eng_name in engines:
            engine, why = resolve_engine(eng_name, hw)
            engine = engine_with_time_source(engine, time_source)
            if time_source is not None:
                for prec in precisions:
                    try:
                        text = describe(op_times(hw, engine, serving_precision(prec, kv_cache_precision, hw)), engine)
                    except InputError as err:  # the candidates say it too (infeasible)
                        text = f"{err.field}: {err.message}"
                    sources[f"{hw.id} {engine.name} {prec}"] = text
            for prec in precisions:
                for tp in sorted(set(tps)):
                    if shape.heads % tp or tp > max(hw.nvlink_domain_gpus, hw.gpus_per_node, 1):
                        continue
                    cands.append(_candidate(spec, hw, hour, engine, why, prec, tp, kv_cache_precision, qps,
                                            input_tokens, output_tokens, slo_ttft_s, slo_tpot_s, percentile,
                                            num_requests, distribution, spread, prefix_hit, seed, frontier))
    if not cands:
        raise InputError("tps", "no tensor-parallel size divides the model's heads on these devices")
    feasible = [c for c in cands if c.feasible]
    best = None
    if feasible:
        priced = [c for c in feasible if c.usd_per_hour is not None]
        best = min(priced, key=lambda c: (c.usd_per_hour, c.devices)) if priced else \
            min(feasible, key=lambda c: c.devices)
    return CapacityPlan(
        model=spec.name, qps=float(qps), input_tokens=input_tokens, output_tokens=output_tokens,
        slo_ttft_s=slo_ttft_s, slo_tpot_s=slo_tpot_s, best=best, candidates=tuple(cands), frontier=tuple(frontier),
        assumptions={"traffic": f"Poisson arrivals, {distribution} lengths" + (f" (spread {spread})" if spread else ""),
                     "percentile": percentile, "requests_per_simulation": num_requests,
                     "routing": "random routing: each of R replicas sees a Poisson stream at qps / R",
                     "cost": "fleet $/h = replicas x devices x price per device-hour; per million output tokens "
                             "at the target load", "prefix_hit": prefix_hit,
                     **({"op_times": sources} if time_source is not None else {})})


def _candidate(spec, hw, hour, engine, why, prec, tp, kvp, qps, isl, osl, slo_ttft, slo_tpot, pct, n, dist, spread,
               hit, seed, frontier) -> Candidate:
    def infeasible(reason, offline_dev=0.0, sim=None):
        return Candidate(hw.id, tp, engine.name, why, prec, tp, False, reason, 0.0, 0, 0, None, 0.0, None, None,
                         offline_dev,
                         sim.percentile("ttft_s", pct) if sim else math.nan,
                         sim.percentile("tpot_s", pct) if sim else math.nan,
                         sim.percentile("ttft_s", 50) if sim else math.nan,
                         sim.percentile("tpot_s", 50) if sim else math.nan)
    try:
        sm = StepModel(spec, hw, precision=prec, kv_cache_precision=kvp, engine=engine, layout=Layout(tp=tp))
    except InputError as err:
        return infeasible(f"{err.field}: {err.message}")
    if sm.kv_pool_bytes <= sm.request_kv_bytes(isl + osl):
        return infeasible(f"does not fit: {sm.weights_bytes / 2**30:.1f} GiB of weights per device leave no KV "
                          f"cache for one request on {hw.id}")
    off = offline_throughput(sm, isl, osl, prefix_hit=hit)
    pts: list = []
    rate, sim = max_rate_within_slo(sm, isl, osl, slo_ttft, slo_tpot, percentile=pct, num_requests=n, seed=seed,
                                    distribution=dist, spread=spread, prefix_hit=hit,
                                    saturation_rate=off.requests_per_s, points=pts)
    for r, res, good in pts:
        frontier.append(FrontierPoint(hw.id, tp, engine.name, prec, r, res.output_tokens_per_s / tp,
                                      res.percentile("ttft_s", pct), res.percentile("tpot_s", pct), good))
    if rate <= 0:
        return infeasible(f"latency floor above the SLOs even at light load (p{pct:g} TTFT "
                          f"{sim.percentile('ttft_s', pct) * 1e3:.0f} ms, TPOT {sim.percentile('tpot_s', pct) * 1e3:.1f} ms)",
                          off.output_tokens_per_s_per_device, sim)
    replicas = max(1, math.ceil(qps / rate - 1e-9))
    devices = replicas * tp
    usd_h = devices * hour.compute_usd if hour.compute_usd is not None else None
    kwh_h = devices * hour.energy_kwh
    mtok_per_h = qps * osl * 3600.0 / 1e6
    at = _measure(sm, qps / replicas, isl, osl, n, seed, dist, spread, hit)
    return Candidate(hw.id, tp, engine.name, why, prec, tp, True, "meets the SLOs", rate, replicas, devices, usd_h,
                     kwh_h, usd_h / mtok_per_h if usd_h is not None else None, kwh_h / mtok_per_h,
                     off.output_tokens_per_s_per_device, at.percentile("ttft_s", pct), at.percentile("tpot_s", pct),
                     at.percentile("ttft_s", 50), at.percentile("tpot_s", 50))
