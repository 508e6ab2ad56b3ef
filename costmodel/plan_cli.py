"""``python -m costmodel plan-train|plan-serve|search-layouts|chinchilla``: the planning CLI."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from .errors import InputError
from .units import GiB


def add_assumption_args(p: argparse.ArgumentParser) -> None:
    """Flags for every editable assumption: efficiency, engine, price, energy and carbon."""
    g = p.add_argument_group("assumptions (shown next to the numbers they affect)")
    g.add_argument("--engine", default=None, help="eager (HF/PyTorch eager, measured) | compiled (CUDA graphs, fused)")
    g.add_argument("--matmul-efficiency", default=None, help="fraction of peak FLOP/s reached by matmuls (0-1)")
    g.add_argument("--bandwidth-efficiency", default=None, help="fraction of peak memory bandwidth reached (0-1)")
    g.add_argument("--overhead-us", default=None, help="host time per eager torch call in a forward pass, microseconds (docs/formulas.md, Host overhead)")
    g.add_argument("--provider", default=None, help="price provider (default: median across providers)")
    g.add_argument("--tier", default="on-demand", help="on-demand | reserved-1y | reserved-3y | spot | purchase")
    g.add_argument("--region", default="world", help="grid region for carbon (see docs/costs.md)")
    g.add_argument("--pue", default=None, help="power usage effectiveness (>= 1)")
    g.add_argument("--utilization", default=None, help="fraction of the idle-to-TDP power range drawn (0-1)")


def _float(name: str, v):
    try:
        return float(v)
    except (TypeError, ValueError):
        raise InputError(name, f"must be a number, got {v!r}") from None


def efficiency_from_args(a, hw):
    from .perf import default_efficiency

    eff = default_efficiency(hw, a.engine or "eager")
    changes = {}
    if a.matmul_efficiency is not None:
        changes["matmul"] = changes["matmul_fp32"] = _float("matmul_efficiency", a.matmul_efficiency)
    if a.bandwidth_efficiency is not None:
        changes["bandwidth"] = _float("bandwidth_efficiency", a.bandwidth_efficiency)
    if a.overhead_us is not None:
        changes["overhead_s"] = _float("overhead_us", a.overhead_us) * 1e-6
    return replace(eff, **changes, source=eff.source + "; edited on the command line") if changes else eff


def pricing_from_args(a) -> dict:
    out = {"tier": a.tier, "region": a.region}
    if a.provider:
        out["provider"] = a.provider
    if a.pue is not None:
        out["pue"] = _float("pue", a.pue)
    if a.utilization is not None:
        out["utilization"] = _float("utilization", a.utilization)
    return out


def _int(name, v, lo=1, hi=1 << 30):
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(name, f"must be a whole number from {lo} to {hi}, got {v!r}") from None
    if not f.is_integer() or not lo <= f <= hi:
        raise InputError(name, f"must be a whole number from {lo} to {hi}, got {v!r}")
    return int(f)


def _plan_train(a) -> int:
    from .catalog import load_hardware
    from .cli import workload_from_args
    from .parallel import Layout
    from .plans import plan_training

    hw = load_hardware(a.hardware or "h100-sxm-80gb")
    wl = workload_from_args(a)
    layout = Layout(dp=_int("dp", a.dp), tp=_int("tp", a.tp), pp=_int("pp", a.pp), cp=_int("cp", a.cp),
                    ep=_int("ep", a.ep), zero=_int("zero", a.zero, 0, 3), micro_batch=_int("batch", a.batch),
                    grad_checkpointing=a.grad_checkpointing, offload=a.offload)
    plan = plan_training(a.model, hw, workload=wl, layout=layout,
                         tokens=_float("tokens", a.tokens) if a.tokens else None,
                         samples=_int("samples", a.samples) if a.samples else None,
                         epochs=_float("epochs", a.epochs),
                         global_batch=_int("global_batch", a.global_batch) if a.global_batch else None,
                         efficiency=efficiency_from_args(a, hw), pricing=pricing_from_args(a))
    if a.json:
        print(json.dumps(plan.to_dict(), indent=1))
        return 0
    s, c = plan.step, plan.cost
    m = s.memory_bytes
    print(f"training plan: {plan.model} on {plan.num_devices} x {plan.hardware}  layout {s.layout}")
    print(f"tokens {plan.tokens:.4g}  global batch {s.global_batch} (grad accum {s.grad_accum})  steps {plan.steps:,}")
    print(f"step {s.step_s:.4g} s = compute {s.compute_s:.4g} (bubble {s.bubble_s:.3g}) + optimizer "
          f"{s.optimizer_s:.3g} + exposed comm {s.exposed_comm_s:.3g}   MFU {s.mfu:.1%}  HFU {s.hfu:.1%}")
    print(f"memory/device peak {m['peak'] / GiB:.2f} GiB, with runtime {m['device_total'] / GiB:.2f} GiB of "
          f"{m['capacity'] / GiB:.2f} GiB: {'fits' if s.fits else 'DOES NOT FIT'}")
    print(f"wall clock {plan.wall_clock_s / 86400:.3g} days  GPU-hours {plan.gpu_hours:,.0f}  "
          f"FLOPs {plan.total_flops:.4g} (with recompute {plan.total_flops_with_recompute:.4g}; 6ND {plan.six_n_d_flops:.4g})")
    print(f"cost ${c['compute_usd']:,.0f}  energy {c['energy_kwh']:,.0f} kWh  carbon {c['carbon_kg_co2e'] / 1000:,.1f} t CO2e")
    for k, v in c["assumptions"].items():
        if not k.startswith("storage"):
            print(f"  assumption {k}: {v['value']}")
    for k, v in plan.assumptions.items():
        if k != "efficiency":
            print(f"  assumption {k}: {v}")
    print(f"  assumption efficiency: {plan.assumptions['efficiency']}")
    return 0


def _plan_serve(a) -> int:
    from .catalog import load_hardware
    from .plans import plan_serving

    hw = load_hardware(a.hardware or "h100-sxm-80gb")
    sizes = [_int("batch_sizes", x) for x in str(a.batch_sizes).split(",") if x.strip()]
    plan = plan_serving(a.model, hw, prompt=_int("prompt", a.prompt), generate=_int("generate", a.generate, 0),
                        precision=a.precision, kv_cache_precision=a.kv_cache_precision, tp=_int("tp", a.tp),
                        batch_sizes=sizes, engine=a.engine or "compiled", efficiency=None if not (
                            a.matmul_efficiency or a.bandwidth_efficiency or a.overhead_us) else
                        efficiency_from_args(a, hw), pricing=pricing_from_args(a))
    if a.json:
        print(json.dumps(plan.to_dict(), indent=1))
        return 0
    print(f"serving plan: {plan.model} on {plan.tp} x {plan.hardware}, {plan.precision} weights, "
          f"{plan.kv_cache_precision} KV cache, prompt {plan.prompt} + generate {plan.generate}")
    print(f"weights/device {plan.weights_bytes_per_device / GiB:.2f} GiB  KV cache {plan.kv_cache_bytes_per_token / 2**10:.1f} "
          f"KiB/token  max batch {plan.max_batch}  max context (batch 1) {plan.max_context:,}")
    print(f"{'batch':>6} {'fits':>5} {'mem GiB':>8} {'TTFT s':>8} {'decode ms':>10} {'tok/s':>9} {'$/M tok':>9} {'kWh/M tok':>10}")
    for p in plan.points:
        print(f"{p.batch:>6} {'yes' if p.fits else 'NO':>5} {p.device_total_bytes / GiB:>8.2f} {p.ttft_s:>8.3f} "
              f"{p.decode_per_token_s * 1e3:>10.2f} {p.throughput_tokens_per_s:>9.1f} {p.usd_per_million_tokens:>9.3f} "
              f"{p.energy_kwh_per_million_tokens:>10.3f}")
    print(f"  assumption engine: {plan.assumptions['engine']}; efficiency: {plan.assumptions['efficiency']}")
    print(f"  assumption price: ${plan.assumptions['usd_per_device_hour']:.3g}/device-hour "
          f"({plan.assumptions['price']['usd_per_gpu_hour']['source'][:120]})")
    return 0


def _search(a) -> int:
    from .catalog import load_hardware
    from .plans import search_layouts
    from .workload import Workload

    hw = load_hardware(a.hardware or "h100-sxm-80gb")
    wl = Workload(task="train", seq=a.seq, precision=a.precision, optimizer=a.optimizer)
    res = search_layouts(a.model, hw, tokens=_float("tokens", a.tokens), workload=wl,
                         global_batch=_int("global_batch", a.global_batch),
                         max_devices=_int("max_devices", a.max_devices), rank_by=a.rank_by,
                         limit=_int("top", a.top))
    if a.json:
        print(json.dumps([r.to_dict() for r in res], indent=1))
        return 0
    print(f"{'devices':>7} {'dp':>4} {'tp':>3} {'pp':>3} {'zero':>4} {'mb':>3} {'ckpt':>5} {'step s':>8} "
          f"{'days':>7} {'GPU-h':>10} {'$':>12} {'MFU':>6} {'GiB':>6}")
    for r in res:
        lay = r.layout
        print(f"{r.num_devices:>7} {lay['dp']:>4} {lay['tp']:>3} {lay['pp']:>3} {lay['zero']:>4} {lay['micro_batch']:>3} "
              f"{'yes' if lay['grad_checkpointing'] else 'no':>5} {r.step_s:>8.3f} {r.wall_clock_s / 86400:>7.2f} "
              f"{r.gpu_hours:>10,.0f} {r.cost_usd:>12,.0f} {r.mfu:>6.1%} {r.device_total_bytes / GiB:>6.1f}")
    return 0


def _chinchilla(a) -> int:
    from .models import load_model
    from .plans import chinchilla_params, chinchilla_tokens

    if a.model:
        from .workload import Workload
        from .estimator import estimate

        n = estimate(load_model(a.model), Workload(batch=1, seq=16), "h100-sxm-80gb", with_layers=False).params.active
        out = {"params": n, "compute_optimal_tokens": chinchilla_tokens(n),
               "flops_6nd": 6.0 * n * chinchilla_tokens(n), "rule": "D = 20 N (Hoffmann et al. 2022)"}
    elif a.flops:
        n, d = chinchilla_params(_float("flops", a.flops))
        out = {"flops": _float("flops", a.flops), "params": n, "tokens": d, "rule": "C = 6 N D, D = 20 N"}
    else:
        raise InputError("model", "give --model (tokens for a size) or --flops (size for a budget)")
    print(json.dumps(out, indent=1) if a.json else "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                                             for k, v in out.items()))
    return 0


def register(sub) -> None:
    from .cli import _add_workload_args

    pt = sub.add_parser("plan-train", help="a whole training run: layout, step time, wall clock, GPU-hours, $, kWh, CO2")
    _add_workload_args(pt)
    pt.add_argument("--tokens", default=None, help="training tokens (language models)")
    pt.add_argument("--samples", default=None, help="training samples per epoch (vision)")
    pt.add_argument("--epochs", default=1, help="epochs over --samples")
    pt.add_argument("--global-batch", default=None, help="samples per optimizer step (default micro-batch x dp)")
    for name, default, what in (("dp", 1, "data-parallel replicas"), ("tp", 1, "tensor-parallel ways"),
                                ("pp", 1, "pipeline stages"), ("cp", 1, "context-parallel ways"),
                                ("ep", 1, "expert-parallel ways (MoE)"), ("zero", 0, "ZeRO stage 0-3 (3 = FSDP)")):
        pt.add_argument(f"--{name}", default=default, help=what)
    pt.add_argument("--offload", action="store_true", help="optimizer states and step on the host")
    add_assumption_args(pt)
    pt.set_defaults(run=_plan_train)

    ps = sub.add_parser("plan-serve", help="serving: TTFT, decode latency, throughput, max batch/context, $ per M tokens")
    ps.add_argument("--model", required=True)
    ps.add_argument("--hardware", default=None)
    ps.add_argument("--prompt", default=512)
    ps.add_argument("--generate", default=128)
    ps.add_argument("--precision", default="bf16", help="fp32 | bf16 | fp16 | fp8 | int8 | int4 (weights)")
    ps.add_argument("--kv-cache-precision", default=None)
    ps.add_argument("--tp", default=1, help="tensor-parallel devices per replica")
    ps.add_argument("--batch-sizes", default="1,2,4,8,16,32,64,128,256")
    ps.add_argument("--json", action="store_true")
    add_assumption_args(ps)
    ps.set_defaults(run=_plan_serve)

    sl = sub.add_parser("search-layouts", help="rank parallel layouts for a training run by time or cost")
    sl.add_argument("--model", required=True)
    sl.add_argument("--hardware", default=None)
    sl.add_argument("--tokens", required=True)
    sl.add_argument("--seq", default=2048, type=int)
    sl.add_argument("--precision", default="amp-bf16")
    sl.add_argument("--optimizer", default="adamw")
    sl.add_argument("--global-batch", default=1024)
    sl.add_argument("--max-devices", default=1024)
    sl.add_argument("--rank-by", default="time", help="time | cost")
    sl.add_argument("--top", default=10)
    sl.add_argument("--json", action="store_true")
    sl.set_defaults(run=_search)

    ch = sub.add_parser("chinchilla", help="compute-optimal tokens for a model, or model size for a FLOP budget")
    ch.add_argument("--model", default=None)
    ch.add_argument("--flops", default=None)
    ch.add_argument("--json", action="store_true")
    ch.set_defaults(run=_chinchilla)
