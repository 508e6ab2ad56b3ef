"""``python -m costmodel estimate|presets|hardware``: one workload's numbers, and the catalogs."""

from __future__ import annotations

from ..api import estimate
from ..catalog import catalog_notes, list_hardware
from ..models import list_presets
from ..units import GiB
from .args import (add_assumption_args, add_workload_args, efficiency_from_args, hardware_from_args,
                   pricing_from_args, workload_from_args)
from ..errors import InputError
from .output import dumps, note, printable


def _fmt_bytes(b: float) -> str:
    """Bytes in the unit that suits them (a 28x28 CNN's MiB, not "0.00 GiB")."""
    from ..ui.format import fmt_bytes

    return fmt_bytes(b)


def print_estimate(est) -> None:
    """The estimate as lines of text: params, FLOPs, memory, times, perf, money, and what they assume."""
    d = est.to_dict()
    p, f, m = d["params"], d["flops"], d["memory_bytes"]
    w = est.workload
    lines = [
        f"model {printable(est.model)} ({est.family}) on {printable(est.hardware)}: {w.task}, batch {w.batch}",
        f"params     total {p['total']:,}  trainable {p['trainable']:,}  active {p['active']:,}",
        f"FLOPs      forward {f['forward']:.4g}  backward {f['backward']:.4g}  (2 per multiply-add; MACs = FLOPs/2)",
    ]
    if f["decode_per_token"]:
        lines.append(f"           decode per token {f['decode_per_token']:.4g}")
    for k in ("weights", "gradients", "optimizer", "activations", "logits_loss", "kv_cache", "transient", "peak",
              "runtime_overhead", "device_total", "capacity"):
        lines.append(f"memory     {k:<17s}{_fmt_bytes(m[k]):>12s}")
    lines.append(f"fits       {'yes' if m['fits'] else 'NO'} (headroom {_fmt_bytes(m['headroom'])}; peak at {m['peak_phase']})")
    kv = d["assumptions"].get("kv_cache")
    if kv:
        lines.append(f"kv cache   {kv['engine_bytes_per_token']:,.0f} bytes/token engine layout (vLLM/SGLang/TRT-LLM), "
                     f"{kv['hf_bytes_per_token']:,.0f} bytes/token transformers (hf layout); using {kv['layout']}")
        if "engine_state_bytes_per_sequence" in kv or "hf_state_bytes_per_sequence" in kv:
            lines.append(f"           + fixed state per sequence: {kv.get('engine_state_bytes_per_sequence', 0):,.0f} bytes "
                         f"engine, {kv.get('hf_state_bytes_per_sequence', 0):,.0f} bytes transformers")
    if p.get("apart"):
        lines.append("params     apart (not in total): " + ", ".join(f"{k} {v:,}" for k, v in p["apart"].items()))
    for key, text in (d["assumptions"].get("model") or {}).items():
        lines.append(f"note       {key}: {printable(text)}")
    for k, v in d["time_s"].items():
        lines.append(f"time       {k:<17s}{v:>12.6g} s")
    perf = est.perf
    rate = f"{perf.tokens_per_s:,.0f} tokens/s" if est.modality == "text" else f"{perf.samples_per_s:,.4g} samples/s"
    bound = f"{perf.bound}" if perf.decode_bound is None else f"{perf.bound} (prefill), {perf.decode_bound} (decode)"
    lines.append(f"perf       MFU {perf.mfu:.1%}  HFU {perf.hfu:.1%}  {rate}  bound by {bound}")
    for key, label, unit in (("cost_usd", "cost", "$"), ("energy_kwh", "energy", "kWh"),
                             ("carbon_kg_co2e", "carbon", "kg CO2e")):
        if d[key]:
            lines.append(f"{label:<11s}" + "  ".join(f"{k} {v:.4g} {unit}" for k, v in d[key].items()))
        elif key == "cost_usd" and est.energy_kwh is not None:
            lines.append(f"{label:<11s}no price for {printable(est.hardware)}: give --usd-per-device-hour")
    eff = d["assumptions"].get("efficiency")
    if eff:
        lines.append(f"assumes    matmul {eff['matmul']:.0%} (fp32 {eff['matmul_fp32']:.0%}) of peak, bandwidth "
                     f"{eff['bandwidth']:.0%}, host {eff['overhead_s'] * 1e6:.1f} us/op: {eff['source']}")
    cost = d["assumptions"].get("cost")
    if isinstance(cost, dict):
        price = cost["usd_per_gpu_hour"]["value"]
        shown = f"${price:.3g}/device-hour ({cost['provider']['value']}, {cost['tier']['value']})" \
            if price is not None else "no price"
        lines.append(f"assumes    {shown}, {cost['device_power_w']['value']:.0f} W x PUE {cost['pue']['value']}, "
                     f"grid {cost['grid_g_co2e_per_kwh']['value']:.0f} gCO2e/kWh ({cost['region']['value']})")
    print("\n".join(lines))


def _technique(args, hw) -> int:
    """--teacher (distillation) or --qat: the technique's step on top of the student's / model's estimate."""
    from ..techniques import distillation_estimate, qat_estimate

    wl = workload_from_args(args)
    if args.task != "train":
        raise InputError("task", "distillation and QAT are training techniques: use --task train")
    if args.teacher:
        r = distillation_estimate(args.teacher, args.model, hw, wl, teacher_precision=args.teacher_precision,
                                  pricing=pricing_from_args(args))
        head = (f"distillation step: teacher {printable(r.teacher.model)} forward "
                f"{r.teacher_forward_s:.4g} s + student {printable(r.student.model)} step "
                f"{r.student.time_s.step_s:.4g} s = {r.step_s:.4g} s; FLOPs {r.step_flops:.4g}")
        mem = (f"memory     student peak {_fmt_bytes(r.student.memory_bytes.peak)} + teacher weights "
               f"{_fmt_bytes(r.teacher.memory_bytes.weights)} + teacher outputs {_fmt_bytes(r.teacher_output_bytes)}"
               f" = {_fmt_bytes(r.peak_bytes)}; device total {_fmt_bytes(r.device_total_bytes)} of "
               f"{_fmt_bytes(r.capacity_bytes)}: {'fits' if r.fits else 'DOES NOT FIT'}")
    else:
        r = qat_estimate(args.model, hw, wl, bits=int(args.qat_bits), efficiency=efficiency_from_args(args, hw),
                         pricing=pricing_from_args(args))
        head = (f"QAT step ({r.bits}-bit fake quantization): {r.base.time_s.step_s:.4g} s + {r.extra_time_s:.4g} s "
                f"= {r.step_s:.4g} s")
        mem = (f"memory     peak {_fmt_bytes(r.base.memory_bytes.peak)} + fake-quant copies and masks "
               f"{_fmt_bytes(r.extra_saved_bytes)} = {_fmt_bytes(r.peak_bytes)}; device total "
               f"{_fmt_bytes(r.device_total_bytes)} of {_fmt_bytes(r.capacity_bytes)}: "
               f"{'fits' if r.fits else 'DOES NOT FIT'}\ndeployed   {_fmt_bytes(r.deployed_model_bytes)} "
               f"({r.bits}-bit) instead of {_fmt_bytes(r.float_model_bytes)} (fp32)")
    if args.json:
        print(dumps(r.to_dict()))
        return 0
    money = r.money
    usd = f"${money['usd_per_step']:.4g}" if money.get("usd_per_step") is not None else "no price"
    print(head)
    print(mem)
    print(f"cost       {usd} per step, energy {money['energy_kwh_per_step']:.4g} kWh, carbon "
          f"{money['carbon_kg_co2e_per_step']:.4g} kg CO2e per step")
    for k, v in r.assumptions.items():
        print(f"assumes    {k}: {v}")
    return 0


def _estimate(args) -> int:
    hw = hardware_from_args(args)
    if args.teacher or args.qat:
        if args.teacher and args.qat:
            raise InputError("qat", "choose --teacher (distillation) or --qat, not both")
        return _technique(args, hw)
    est = estimate(args.model, hardware=hw, workload=workload_from_args(args),
                   efficiency=efficiency_from_args(args, hw), pricing=pricing_from_args(args))
    if args.json:
        print(dumps(est.to_dict(with_layers=args.layers)))
    else:
        print_estimate(est)
    return 0


def _presets(args) -> int:
    rows = [{"id": p.id, "name": p.name, "family": p.family, "published_params": p.published_params,
             "source": p.source} for p in list_presets()]
    if args.json:
        print(dumps(rows))
    else:
        for r in rows:
            print(f"{r['id']:<16s} {r['family']:<16s} {r['name']}")
    return 0


def _hardware(args) -> int:
    hws = list_hardware()
    for line in catalog_notes():
        note(line)
    if args.json:
        print(dumps([h.to_dict() for h in hws]))
    else:
        for h in hws:
            print(f"{h.id:<18s} {h.memory_bytes / GiB:>7.1f} GiB  {h.peak_flops('bf16') / 1e12:>7.1f} TFLOP/s bf16  {h.name}")
    return 0


def register(sub) -> None:
    est = sub.add_parser("estimate", help="params, FLOPs, memory, time, $ and energy for one workload")
    add_workload_args(est)
    tech = est.add_argument_group("training techniques (--task train)")
    tech.add_argument("--teacher", default=None, help="distillation: the teacher model (preset id or config); --model "
                                                      "is the student. Step = teacher forward + student step")
    tech.add_argument("--teacher-precision", default=None, help="the teacher's weights (default: the student's "
                                                                "precision without amp, e.g. bf16)")
    tech.add_argument("--qat", action="store_true", help="quantization-aware training: fake-quantized weights and "
                                                         "activations (costs of the fake-quant passes added)")
    tech.add_argument("--qat-bits", default=8, choices=["8", "4", 8, 4], help="bits of the deployed weights (8 or 4)")
    add_assumption_args(est)
    est.set_defaults(run=_estimate)
    pre = sub.add_parser("presets", help="list model presets")
    pre.add_argument("--json", action="store_true", help="print JSON")
    pre.set_defaults(run=_presets)
    hw = sub.add_parser("hardware", help="list the hardware catalog")
    hw.add_argument("--json", action="store_true", help="print JSON")
    hw.set_defaults(run=_hardware)
