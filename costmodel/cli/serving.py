"""``python -m costmodel plan-serve``: the serving plan (static-batch table + continuous-batching offline
throughput), an online simulation (``--qps`` / ``--concurrency`` / ``--trace``) and the cheapest fleet within
SLOs (``--slo-ttft-ms`` and ``--slo-tpot-ms`` with ``--qps``)."""

from __future__ import annotations

from dataclasses import replace

from ..catalog import resolve_hardware
from ..errors import InputError
from ..perf import default_efficiency
from ..serving.capacity import plan_capacity
from ..serving.features import Speculation
from ..serving.plan import plan_serving, step_model
from ..serving.simulate import LENGTH_DISTRIBUTIONS, poisson_requests, read_trace, simulate
from ..units import GiB
from ..serving.engines import PROFILES
from .args import add_assumption_args, efficiency_edits, hardware_from_args, int_arg, number_arg, pricing_from_args
from .output import dumps, money


def _list(name: str, text, conv):
    items = [x.strip() for x in str(text).split(",") if x.strip()]
    if not items:
        raise InputError(name, f"must list at least one value, got {text!r}")
    return [conv(name, x) for x in items]


def _efficiency(a, hw):
    """Kernel fractions edited on the command line (they replace the engine profile's), or None."""
    ch = efficiency_edits(a)
    return replace(default_efficiency(hw, "compiled"), **ch) if ch else None


def _speculation(a, hw, precision):
    if a.spec_k is None:
        return None
    k = int_arg("spec_k", a.spec_k, 1, 16)
    alpha = number_arg("spec_alpha", a.spec_alpha if a.spec_alpha is not None else 0.7, 0.0, 1.0)
    draft = None
    if a.draft_model:
        draft, _ = step_model(a.draft_model, hw, precision=precision, engine=a.engine or None,
                              time_source=a.time_source)
    return Speculation(k=k, alpha=alpha, draft=draft)


def _ms(x: float) -> str:
    return f"{x * 1e3:,.1f}" if x == x else "n/a"


def _plan_serve(a) -> int:
    hw = hardware_from_args(a)
    sizes = [int_arg("batch_sizes", x) for x in str(a.batch_sizes).split(",") if x.strip()]
    if not sizes:
        raise InputError("batch_sizes", f"must list at least one batch size, e.g. 1,8,64, got {a.batch_sizes!r}")
    prompt, generate = int_arg("prompt", a.prompt), int_arg("generate", a.generate, 0)
    tp, pp, ep = int_arg("tp", a.tp), int_arg("pp", a.pp), int_arg("ep", a.ep)
    hit = number_arg("prefix_hit", a.prefix_hit, 0.0, 0.99)
    spec = _speculation(a, hw, a.precision)
    eff = _efficiency(a, hw)
    plan = plan_serving(a.model, hw, prompt=prompt, generate=generate, precision=a.precision,
                        kv_cache_precision=a.kv_cache_precision, tp=tp, pp=pp, ep=ep, batch_sizes=sizes,
                        engine=a.engine, efficiency=eff, pricing=pricing_from_args(a), prefix_hit=hit,
                        speculation=spec, time_source=a.time_source)
    out = plan.to_dict()
    sim = None
    if a.qps is not None or a.trace or a.concurrency is not None:
        sm, _ = step_model(a.model, hw, precision=a.precision, kv_cache_precision=a.kv_cache_precision, tp=tp,
                           pp=pp, ep=ep, engine=a.engine, efficiency=eff, speculation=spec, time_source=a.time_source)
        n = int_arg("requests", a.requests, 1, 1_000_000)
        dist = a.length_distribution
        if dist not in LENGTH_DISTRIBUTIONS:
            raise InputError("length_distribution", f"must be one of {', '.join(LENGTH_DISTRIBUTIONS)}, got {dist!r}")
        spread = number_arg("length_spread", a.length_spread, 0.0, 5.0)
        if a.trace:
            reqs = read_trace(a.trace)
            sim = simulate(sm, reqs, prefix_hit=hit)
        elif a.concurrency is not None:
            reqs = poisson_requests(float("inf"), n, prompt, generate, distribution=dist, spread=spread,
                                    seed=int_arg("seed", a.seed, 0, 1 << 31), max_positions=plan.max_positions or None)
            sim = simulate(sm, reqs, concurrency=int_arg("concurrency", a.concurrency), prefix_hit=hit)
        else:
            qps = number_arg("qps", a.qps, 1e-6, 1e7)
            reqs = poisson_requests(qps, n, prompt, generate, distribution=dist, spread=spread,
                                    seed=int_arg("seed", a.seed, 0, 1 << 31), max_positions=plan.max_positions or None)
            sim = simulate(sm, reqs, prefix_hit=hit)
        out["simulation"] = sim.summary()
    slo = (a.slo_ttft_ms, a.slo_tpot_ms)
    cap = None
    if any(x is not None for x in slo):
        if None in slo or a.qps is None:
            raise InputError("slo_ttft_ms", "a fleet plan needs --qps, --slo-ttft-ms and --slo-tpot-ms together")
        ttft = number_arg("slo_ttft_ms", a.slo_ttft_ms, 1e-3, 1e7) / 1e3
        tpot = number_arg("slo_tpot_ms", a.slo_tpot_ms, 1e-3, 1e7) / 1e3
        devices = [d.strip() for d in str(a.devices).split(",") if d.strip()] if a.devices else [hw]
        for d in devices:
            resolve_hardware(d)
        tps = _list("tp_options", a.tp_options, lambda n, x: int_arg(n, x, 1, 64)) if a.tp_options else [tp]
        precisions = [x.strip() for x in str(a.precisions).split(",") if x.strip()] if a.precisions else [a.precision]
        cap = plan_capacity(a.model, qps=number_arg("qps", a.qps, 1e-6, 1e7), input_tokens=prompt,
                            output_tokens=generate, slo_ttft_s=ttft, slo_tpot_s=tpot, hardware=devices, tps=tps,
                            engines=(a.engine,), precisions=precisions, kv_cache_precision=a.kv_cache_precision,
                            pricing=pricing_from_args(a), percentile=number_arg("percentile", a.percentile, 50, 99.99),
                            prefix_hit=hit, time_source=a.time_source)
        out["capacity"] = cap.to_dict()
        if sim is not None:
            out["simulation"]["goodput_requests_per_s"] = sim.goodput(ttft, tpot)
    if a.json:
        print(dumps(out))
        return 0
    _print(plan, sim, cap)
    return 0


def _print(plan, sim, cap) -> None:
    print(f"serving plan: {plan.model} on {plan.tp * plan.pp} x {plan.hardware} (tp {plan.tp}, pp {plan.pp}), "
          f"{plan.precision} weights, {plan.kv_cache_precision} KV cache, prompt {plan.prompt} + generate {plan.generate}")
    print(f"engine: {plan.engine} ({plan.engine_reason})")
    print(f"op times: {plan.op_times}")
    if plan.op_time_shares:
        sh = plan.op_time_shares
        print(f"          offline device time {sh['table']:.0%} from the tables, {sh['extrapolated']:.0%} extrapolated "
              f"beyond their grids, {sh['roofline']:.0%} roofline fallback (ops or shapes without a table)")
    print(f"weights/device {plan.weights_bytes_per_device / GiB:.2f} GiB  KV pool/device "
          f"{plan.kv_pool_bytes_per_device / GiB:.2f} GiB  KV cache {plan.kv_cache_bytes_per_token / 2**10:.1f} KiB/token  "
          f"max batch {plan.max_batch:,}  max context {plan.max_context:,}"
          + (f" (model limit {plan.max_positions:,})" if plan.max_positions else ""))
    o = plan.offline
    if o:
        print(f"offline throughput (continuous batching, all requests queued): {plan.offline_throughput_tokens_per_s:,.0f} "
              f"tok/s = {plan.offline_throughput_tokens_per_s_per_device:,.0f} tok/s/device at {o['concurrency']:,.0f} "
              f"running ({o['limited_by']}); {money(plan.offline_usd_per_million_tokens)} and "
              f"{plan.offline_energy_kwh_per_million_tokens:.3g} kWh per million tokens")
    print("static batch:")
    print(f"{'batch':>6} {'fits':>5} {'mem GiB':>8} {'TTFT s':>8} {'decode ms':>10} {'tok/s':>9} {'$/M tok':>9} {'kWh/M tok':>10}")
    for p in plan.points:
        usd = f"{p.usd_per_million_tokens:>9.3f}" if p.usd_per_million_tokens is not None else f"{'no price':>9}"
        print(f"{p.batch:>6} {'yes' if p.fits else 'NO':>5} {p.device_total_bytes / GiB:>8.2f} {p.ttft_s:>8.3f} "
              f"{p.decode_per_token_s * 1e3:>10.2f} {p.throughput_tokens_per_s:>9.1f} {usd} "
              f"{p.energy_kwh_per_million_tokens:>10.3f}")
    if sim is not None:
        s = sim.summary()
        print(f"simulation: {s['requests']:,} requests in {s['duration_s']:,.1f} s, {s['output_tokens_per_s']:,.0f} tok/s "
              f"({s['output_tokens_per_s_per_device']:,.0f}/device), {s['preemptions']} preemptions")
        for m, name in (("ttft_s", "TTFT"), ("tpot_s", "TPOT"), ("e2e_s", "end-to-end")):
            q = s[m]
            print(f"  {name:>10} ms  p50 {_ms(q['p50'])}  p90 {_ms(q['p90'])}  p99 {_ms(q['p99'])}  mean {_ms(q['mean'])}")
        if "goodput_requests_per_s" in s:
            print(f"  goodput within the SLOs: {s['goodput_requests_per_s']:.3g} requests/s")
    if cap is not None:
        print(f"fleet for {cap.qps:g} requests/s within p{cap.assumptions['percentile']:g} TTFT {cap.slo_ttft_s * 1e3:g} ms "
              f"and TPOT {cap.slo_tpot_s * 1e3:g} ms:")
        b = cap.best
        if b is None:
            print("  no candidate meets the SLOs")
        else:
            print(f"  cheapest: {b.replicas} x {b.devices_per_replica} {b.hardware} = {b.devices} devices (tp {b.tp}, "
                  f"{b.precision}, {b.engine}), {money(b.usd_per_hour)}/h, {money(b.usd_per_million_tokens)} and "
                  f"{b.kwh_per_million_tokens:.3g} kWh per million tokens; p99 TTFT {_ms(b.ttft_p99_s)} ms, "
                  f"TPOT {_ms(b.tpot_p99_s)} ms")
        print(f"  {'device':<22} {'tp':>3} {'prec':>5} {'engine':>13} {'max req/s':>10} {'replicas':>8} {'$/h':>10} {'$/M tok':>9}  why")
        for c in cap.candidates:
            usd = money(c.usd_per_hour) if c.feasible else "-"
            per_m = money(c.usd_per_million_tokens) if c.feasible else "-"
            print(f"  {c.hardware:<22} {c.tp:>3} {c.precision:>5} {c.engine:>13} {c.max_rate_per_replica:>10.3g} "
                  f"{c.replicas:>8} {usd:>10} {per_m:>9}  {c.reason}")
    print(f"  assumption engine profile: {plan.assumptions['efficiency']}")
    price = plan.assumptions["usd_per_device_hour"]
    print(f"  assumption price: {money(price)}/device-hour ({plan.assumptions['price']['usd_per_gpu_hour']['source'][:120]})")


SERVE_ENGINE_HELP = ("serving engine: auto (the device's default: vllm on NVIDIA, vllm-rocm on AMD, jetstream on TPU, "
                     "cpu-eager on CPUs) | " + " | ".join(PROFILES))


def register(sub) -> None:
    ps = sub.add_parser("plan-serve", help="serving: engine, static batches, offline throughput, simulated latency "
                                           "percentiles and the cheapest fleet within SLOs")
    ps.add_argument("--model", required=True, help="preset id, path to a HF config.json, or a costmodel spec JSON")
    ps.add_argument("--hardware", default=None, help="hardware id (default h100-sxm-80gb) or path to a hardware JSON")
    ps.add_argument("--prompt", default=512, help="prompt tokens per request")
    ps.add_argument("--generate", default=128, help="generated tokens per request")
    ps.add_argument("--precision", default="bf16", help="weights: fp32 | bf16 | fp16 | fp8 | int8 | int4 | fp4 | mxfp4")
    ps.add_argument("--kv-cache-precision", default=None, help="fp32 | bf16 | fp16 | fp8 | int8 | int4 | fp4")
    ps.add_argument("--tp", default=1, help="tensor-parallel devices per replica")
    ps.add_argument("--pp", default=1, help="pipeline stages per replica")
    ps.add_argument("--ep", default=1, help="expert-parallel ways (MoE; inside the TP group)")
    ps.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256", help="comma-separated static batch sizes")
    ps.add_argument("--qps", default=None, help="Poisson request rate for the simulation (requests/s)")
    ps.add_argument("--concurrency", default=None, help="closed loop: this many users instead of --qps")
    ps.add_argument("--trace", default=None, help="CSV or JSON lines with arrival_s,input_tokens,output_tokens")
    ps.add_argument("--requests", default=2000, help="requests to simulate")
    ps.add_argument("--length-distribution", default="fixed", help=" | ".join(LENGTH_DISTRIBUTIONS))
    ps.add_argument("--length-spread", default=0.0, help="uniform: +-fraction; lognormal: sigma")
    ps.add_argument("--seed", default=0, help="random seed of the arrivals and lengths")
    ps.add_argument("--slo-ttft-ms", default=None, help="p99 time-to-first-token SLO (ms): plan a fleet")
    ps.add_argument("--slo-tpot-ms", default=None, help="p99 time-per-output-token SLO (ms): plan a fleet")
    ps.add_argument("--percentile", default=99, help="SLO percentile (default 99)")
    ps.add_argument("--devices", default=None, help="fleet search: comma-separated hardware ids (default --hardware)")
    ps.add_argument("--tp-options", default="1,2,4,8", help="fleet search: tensor-parallel sizes to try")
    ps.add_argument("--precisions", default=None, help="fleet search: weight precisions to try (default --precision)")
    ps.add_argument("--prefix-hit", default=0.0, help="fraction of each prompt found in the prefix cache (0-0.99)")
    ps.add_argument("--spec-k", default=None, help="speculative decoding: drafted tokens per step")
    ps.add_argument("--spec-alpha", default=None, help="speculative decoding: per-token acceptance rate (default 0.7)")
    ps.add_argument("--draft-model", default=None, help="speculative decoding: draft model (default: a draft head "
                                                        "costing 5%% of a decode step)")
    ps.add_argument("--time-source", default=None,
                    help="op times: roofline (the engine profile's fitted efficiencies; the default) | measured "
                         "(aiconfigurator-core's per-op tables of the engine's backend on the device: pip install "
                         "costmodel[measured]) | auto (measured where such tables exist, else roofline, saying why)")
    ps.add_argument("--json", action="store_true", help="print one JSON object")
    add_assumption_args(ps, engine_help=SERVE_ENGINE_HELP)
    ps.set_defaults(run=_plan_serve)


