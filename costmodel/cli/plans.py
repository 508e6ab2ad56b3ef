"""``python -m costmodel plan-train|plan-serve|search-layouts|chinchilla``: the planning commands (plan-serve
lives in ``costmodel.cli.serving``)."""

from __future__ import annotations


from ..engines import ENGINES
from ..errors import InputError
from ..checkpoint import checkpoint_of
from ..limits import resolve_defaults
from ..ui.format import fmt_bytes, fmt_checkpointing, fmt_co2, fmt_hours, fmt_kwh, fmt_seconds
from ..models import load_model
from ..parallel import Layout
from ..plans import chinchilla_params, compute_optimal_tokens, plan_training, search_layouts
from ..safe_json import read_config_file
from ..units import GiB
from ..workload import Workload
from .args import (add_assumption_args, add_workload_args, efficiency_from_args, hardware_from_args, int_arg,
                   number_arg, pricing_from_args, workload_from_args)
from . import serving
from .output import dumps, money


def links_from_args(a, hw):
    """``--link-calibration``: latest | a stored id | a JSON file with the record (``probe --collectives --json``
    prints one) -> LinkCalibration, or None when not given."""
    from ..collectives import LinkCalibration
    from ..storage import Store

    value = getattr(a, "link_calibration", None)
    if not value:
        return None
    hw_id = hw if isinstance(hw, str) else getattr(hw, "id", "h100-sxm-80gb")
    if value == "latest" or value.isdigit():
        rec = Store(a.db).link_calibration(hw_id, "latest" if value == "latest" else int_arg("link_calibration", value))
    else:
        rec = read_config_file(value, field="link_calibration")
        rec = rec.get("calibration", rec) if isinstance(rec, dict) else rec
    return LinkCalibration.from_dict(rec)


def _plan_train(a) -> int:
    if a.task != "train":
        raise InputError("task", f"plan-train plans a training run, got --task {a.task[:20]!r}; for serving use "
                                 "plan-serve (or estimate --task infer)")
    hw = hardware_from_args(a)
    wl = workload_from_args(a)
    layout = Layout(dp=int_arg("dp", a.dp), tp=int_arg("tp", a.tp), pp=int_arg("pp", a.pp), cp=int_arg("cp", a.cp),
                    ep=int_arg("ep", a.ep), zero=int_arg("zero", a.zero, 0, 3), micro_batch=int_arg("batch", a.batch),
                    grad_checkpointing=a.grad_checkpointing, offload=a.offload, vp=int_arg("vp", a.vp))
    edited = a.matmul_efficiency or a.bandwidth_efficiency or a.overhead_us
    pricing = pricing_from_args(a)
    kept = int_arg("checkpoints_kept", a.checkpoints_kept, 0, 10_000)
    ckpt = checkpoint_of(a.model, wl)
    if kept:
        pricing.update(storage_bytes=ckpt.training_checkpoint_bytes * kept,
                       storage_months=number_arg("storage_months", a.storage_months, 0.0, 1200.0))
    plan = plan_training(a.model, hw, workload=wl, layout=layout,
                         tokens=number_arg("tokens", a.tokens, 1.0, 1e18) if a.tokens else None,
                         samples=int_arg("samples", a.samples, 1, 1 << 50) if a.samples else None,
                         epochs=number_arg("epochs", a.epochs, 1e-6, 1e6),
                         global_batch=int_arg("global_batch", a.global_batch) if a.global_batch else None,
                         efficiency=efficiency_from_args(a, hw) if edited else None, pricing=pricing,
                         engine=a.engine or "auto", links=links_from_args(a, hw or "h100-sxm-80gb"),
                         time_source=a.time_source)
    goals = {}
    if a.deadline_days:
        d = number_arg("deadline_days", a.deadline_days, 1e-6, 1e6)
        goals["deadline_days"] = {"value": d, "met": plan.wall_clock_s <= d * 86400}
    if a.budget_usd:
        b = number_arg("budget_usd", a.budget_usd, 0.0, 1e15)
        total = plan.cost.total_usd
        goals["budget_usd"] = {"value": b, "met": total is not None and total <= b}
    if a.json:
        print(dumps({**plan.to_dict(), "checkpoint": {**ckpt.__dict__, "kept": kept}, "goals": goals}))
        return 0
    s, c = plan.step, plan.cost
    m = s.memory_bytes
    eng = plan.assumptions["engine"]
    print(f"training plan: {plan.model} on {plan.num_devices} x {plan.hardware}  layout {s.layout.to_dict()}")
    print(f"engine {eng['engine']}: {eng['summary']}; precision {plan.assumptions['precision']}")
    print(f"tokens {plan.tokens:.4g}  global batch {s.global_batch} (grad accum {s.grad_accum})  steps {plan.steps:,}")
    print(f"step {s.step_s:.4g} s = compute {s.compute_s:.4g} (bubble {s.bubble_s:.3g}) + optimizer "
          f"{s.optimizer_s:.3g} + exposed comm {s.exposed_comm_s:.3g}   MFU {s.mfu:.1%}  HFU {s.hfu:.1%}")
    print(f"memory/device peak {m.peak / GiB:.2f} GiB, with runtime {m.device_total / GiB:.2f} GiB of "
          f"{m.capacity / GiB:.2f} GiB: {'fits' if s.fits else 'DOES NOT FIT'}")
    print(f"wall clock {fmt_seconds(plan.wall_clock_s)}  GPU-hours {fmt_hours(plan.gpu_hours)}  "
          f"FLOPs {plan.total_flops:.4g} (with recompute {plan.total_flops_with_recompute:.4g}; 6ND {plan.six_n_d_flops:.4g})")
    print(f"cost {money(c.compute_usd)}  energy {fmt_kwh(c.energy_kwh)}  carbon {fmt_co2(c.carbon_kg_co2e)}")
    print(f"checkpoint {fmt_bytes(ckpt.training_checkpoint_bytes)} (weights + optimizer states; model file "
          f"{fmt_bytes(ckpt.model_file_bytes)})" + (f", {kept} kept: storage {money(c.storage_usd)}" if kept else ""))
    for g, v in goals.items():
        print(f"goal {g} {v['value']:,.4g}: {'met' if v['met'] else 'NOT met'}")
    for k, v in c.assumptions.items():
        if not k.startswith("storage"):
            print(f"  assumption {k}: {v['value']}")
    for k, v in plan.assumptions.items():
        if k not in ("efficiency", "engine"):
            print(f"  assumption {k}: {v}")
    print(f"  assumption efficiency: {plan.assumptions['efficiency']}")
    return 0


def _search(a) -> int:
    hw = hardware_from_args(a)
    spec = load_model(a.model)
    given = {"task": "train", "precision": a.precision, "optimizer": a.optimizer}
    if a.seq is not None:
        given["seq"] = int_arg("seq", a.seq)
    wl = Workload(**resolve_defaults(spec, given))
    price = number_arg("usd_per_device_hour", a.usd_per_device_hour, 0.0, 1e6) if a.usd_per_device_hour else None
    res = search_layouts(a.model, hw, tokens=number_arg("tokens", a.tokens, 1.0, 1e18), workload=wl,
                         global_batch=int_arg("global_batch", a.global_batch),
                         max_devices=int_arg("max_devices", a.max_devices, 1, 1 << 20), rank_by=a.rank_by,
                         usd_per_device_hour=price, limit=int_arg("top", a.top), engine=a.engine,
                         links=links_from_args(a, hw or "h100-sxm-80gb"), time_source=a.time_source,
                         min_devices=int_arg("min_devices", a.min_devices),
                         deadline_s=number_arg("deadline_days", a.deadline_days, 1e-6, 1e6) * 86400
                         if a.deadline_days else None,
                         budget_usd=number_arg("budget_usd", a.budget_usd, 0.0, 1e15) if a.budget_usd else None)
    if not res and not a.json:
        print("no layout fits the device memory within the goals (--min-devices/--max-devices, --deadline-days, "
              "--budget-usd): raise --max-devices, the deadline or the budget")
        return 0
    if a.json:
        print(dumps([r.to_dict() for r in res]))
        return 0
    print(f"{'devices':>7} {'dp':>4} {'tp':>3} {'pp':>3} {'zero':>4} {'mb':>3} {'ckpt':>9} {'step s':>8} "
          f"{'days':>7} {'GPU-h':>10} {'$':>12} {'MFU':>6} {'GiB':>6}")
    for r in res:
        lay = r.layout
        cost = f"{r.cost_usd:>12,.0f}" if r.cost_usd is not None else f"{'no price':>12}"
        print(f"{r.num_devices:>7} {lay.dp:>4} {lay.tp:>3} {lay.pp:>3} {lay.zero:>4} {lay.micro_batch:>3} "
              f"{fmt_checkpointing(lay.grad_checkpointing):>9} {r.step_s:>8.3f} {r.wall_clock_s / 86400:>7.2f} "
              f"{r.gpu_hours:>10,.0f} {cost} {r.mfu:>6.1%} {r.device_total_bytes / GiB:>6.1f}")
    return 0


def _chinchilla(a) -> int:
    if a.model:
        n, d = compute_optimal_tokens(a.model)
        out = {"params": n, "compute_optimal_tokens": d, "flops_6nd": 6.0 * n * d,
               "rule": "D = 20 N on the active parameters (Hoffmann et al. 2022)"}
    elif a.flops is not None:
        flops = number_arg("flops", a.flops, 1.0, 1e40)
        n, d = chinchilla_params(flops)
        out = {"flops": flops, "params": n, "tokens": d, "rule": "C = 6 N D, D = 20 N"}
    else:
        raise InputError("model", "give --model (tokens for a size) or --flops (size for a budget)")
    print(dumps(out) if a.json else "  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                                              for k, v in out.items()))
    return 0


TRAIN_ENGINE_HELP = ("training stack: auto (megatron when the model is split, fsdp otherwise, eager on one device) | "
                     + " | ".join(f"{e.name} ({e.summary})" for e in ENGINES.values()))


def _add_link_args(p) -> None:
    p.add_argument("--time-source", default="roofline", help="GEMM times: roofline (the fitted shape curves, every "
                   "device) | measured (each GEMM from the device's aiconfigurator-core table; costmodel[measured]) | "
                   "auto (measured where a table exists)")
    p.add_argument("--link-calibration", default=None,
                   help="measured NVLink-domain link for the collectives: latest | a stored id (probe --collectives "
                        "--save) | a JSON file with the record")
    if not any(x.dest == "db" for x in p._actions):
        p.add_argument("--db", default=None, help="SQLite file of stored calibrations (default: $COSTMODEL_DB or "
                                                  "~/.costmodel/costmodel.db)")


def register(sub) -> None:
    pt = sub.add_parser("plan-train", help="a whole training run: layout, step time, wall clock, GPU-hours, $, kWh, CO2")
    add_workload_args(pt)
    pt.add_argument("--tokens", default=None, help="training tokens (language models)")
    pt.add_argument("--samples", default=None, help="training samples per epoch (vision)")
    pt.add_argument("--epochs", default=1, help="epochs over --samples")
    pt.add_argument("--global-batch", default=None, help="samples per optimizer step (default micro-batch x dp)")
    for name, default, what in (("dp", 1, "data-parallel replicas"), ("tp", 1, "tensor-parallel ways"),
                                ("pp", 1, "pipeline stages"), ("cp", 1, "context-parallel ways"),
                                ("ep", 1, "expert-parallel ways (MoE)"), ("zero", 0, "ZeRO stage 0-3 (3 = FSDP)")):
        pt.add_argument(f"--{name}", default=default, help=what)
    pt.add_argument("--offload", action="store_true", help="optimizer states and step on the host")
    pt.add_argument("--vp", default=1, help="virtual pipeline stages per pipeline rank (interleaved 1F1B)")
    pt.add_argument("--deadline-days", default=None, help="say whether the run finishes within this many days")
    pt.add_argument("--budget-usd", default=None, help="say whether the run costs at most this many US dollars")
    pt.add_argument("--checkpoints-kept", default=0, help="full training checkpoints kept in object storage "
                                                          "(weights + optimizer states each; costmodel.checkpoint)")
    pt.add_argument("--storage-months", default=1, help="months the kept checkpoints are stored")
    add_assumption_args(pt, engine_help=TRAIN_ENGINE_HELP)
    _add_link_args(pt)
    pt.set_defaults(run=_plan_train)

    serving.register(sub)

    sl = sub.add_parser("search-layouts", help="rank parallel layouts for a training run by time or cost")
    sl.add_argument("--model", required=True, help="preset id, path to a HF config.json, or a costmodel spec JSON")
    sl.add_argument("--hardware", default=None, help="hardware id (default h100-sxm-80gb) or path to a hardware JSON")
    sl.add_argument("--tokens", required=True, help="training tokens")
    sl.add_argument("--seq", default=None, help="tokens per sample (default 2048, or the model's context length "
                                                "if shorter)")
    sl.add_argument("--precision", default="amp-bf16", help="training precision")
    sl.add_argument("--optimizer", default="adamw", help="optimizer")
    sl.add_argument("--global-batch", default=1024, help="samples per optimizer step (fixed, as a recipe fixes it)")
    sl.add_argument("--max-devices", default=1024, help="largest device count to try (every 2^a x 3^b x 5^c up to it, and it; at most 1,048,576)")
    sl.add_argument("--min-devices", default=1, help="smallest device count to try")
    sl.add_argument("--deadline-days", default=None, help="only layouts that finish within this many days")
    sl.add_argument("--budget-usd", default=None, help="only layouts that cost at most this many US dollars")
    sl.add_argument("--rank-by", default="time", help="time | cost")
    sl.add_argument("--top", default=10, help="how many layouts to print")
    sl.add_argument("--usd-per-device-hour", default=None, help="your price per device-hour (default: the catalog's)")
    sl.add_argument("--engine", default="auto", help=TRAIN_ENGINE_HELP)
    _add_link_args(sl)
    sl.add_argument("--json", action="store_true", help="print JSON")
    sl.set_defaults(run=_search)

    ch = sub.add_parser("chinchilla", help="compute-optimal tokens for a model, or model size for a FLOP budget")
    ch.add_argument("--model", default=None, help="a model: its compute-optimal training tokens")
    ch.add_argument("--flops", default=None, help="a FLOP budget: the compute-optimal model size and tokens")
    ch.add_argument("--json", action="store_true", help="print JSON")
    ch.set_defaults(run=_chinchilla)
