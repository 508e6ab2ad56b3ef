"""``python -m costmodel ...``: the same numbers as the dashboard, as a table or one JSON object.

Bad input exits with status 2 and one line ``error: <field>: <what is allowed>``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from .errors import InputError
from .units import GiB


# Subcommands that live beside the feature they drive. Each module has ``register(sub)``
# which adds its parser(s) with ``set_defaults(run=fn)``; ``fn(args) -> int`` exit status.
SUBCOMMAND_MODULES: tuple[str, ...] = ("costmodel.plan_cli", "costmodel.scenarios_cli", "costmodel.profiler.cli",)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, no usage dump
        raise InputError("arguments", message)


def _add_workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="preset id, path to a HF config.json, or a costmodel spec JSON")
    p.add_argument("--hardware", default=None, help="hardware id (default h100-sxm-80gb) or path to a hardware JSON")
    p.add_argument("--task", default="train", help="train | infer")
    p.add_argument("--batch", default=1, help="samples per step (per device)")
    p.add_argument("--seq", default=2048, help="tokens per sample (train; encoders)")
    p.add_argument("--image-size", default=224, help="image side in pixels (vision models)")
    p.add_argument("--prompt", default=512, help="prompt tokens (infer)")
    p.add_argument("--generate", default=128, help="generated tokens (infer)")
    p.add_argument("--precision", default="amp-bf16",
                   help="fp32 | amp-bf16 | amp-fp16 | bf16 | fp16 | fp8 | int8 | int4 | nvfp4 | mxfp4")
    p.add_argument("--optimizer", default="adamw", help="adamw | adam | sgd | sgd-momentum | adafactor | adamw-8bit")
    p.add_argument("--grad-checkpointing", action="store_true")
    p.add_argument("--lora-rank", default=0, help="LoRA rank (0 = full fine-tune)")
    p.add_argument("--lora-targets", default="q_proj,v_proj", help="comma-separated module names, or all-linear")
    p.add_argument("--bitfit", action="store_true", help="train biases only")
    p.add_argument("--sparsity", default=0.0, help="fraction of linear/conv weights pruned (0-0.99)")
    p.add_argument("--sparsity-pattern", default="unstructured",
                   help="unstructured (dense kernels: nothing saved) | 2:4 (inference: compressed weights on sparse "
                        "tensor cores; sparsity 0.5)")
    p.add_argument("--attention", default="fused", help="fused (flash / memory-efficient SDPA) | eager")
    p.add_argument("--kv-cache-precision", default=None, help="fp32 | bf16 | fp16 | fp8 | int8 | int4")
    p.add_argument("--kv-cache-layout", default="engine",
                   help="engine (what vLLM/SGLang/TensorRT-LLM keep: MLA latent, windows capped) | hf (transformers' "
                        "DynamicCache)")
    p.add_argument("--no-dropout", action="store_true", help="dropout off even if the config has it")
    p.add_argument("--layers", action="store_true", help="include the per-layer ledger in --json output")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m costmodel", description="Estimate what a deep-learning model costs.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    est = sub.add_parser("estimate", help="params, FLOPs, memory, time, $ and energy for one workload")
    _add_workload_args(est)
    from .plan_cli import add_assumption_args

    add_assumption_args(est)
    pre = sub.add_parser("presets", help="list model presets")
    pre.add_argument("--json", action="store_true")
    hw = sub.add_parser("hardware", help="list the hardware catalog")
    hw.add_argument("--json", action="store_true")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def workload_from_args(a: argparse.Namespace):
    from .workload import Workload

    return Workload(
        task=a.task, batch=a.batch, seq=a.seq, image_size=a.image_size, prompt=a.prompt, generate=a.generate,
        precision=a.precision, optimizer=a.optimizer, grad_checkpointing=a.grad_checkpointing,
        lora_rank=a.lora_rank, lora_targets=a.lora_targets, bitfit=a.bitfit, sparsity=a.sparsity,
        sparsity_pattern=a.sparsity_pattern,
        attention=a.attention, kv_cache_precision=a.kv_cache_precision, dropout=False if a.no_dropout else None,
        kv_cache_layout=a.kv_cache_layout,
    )


def _fmt_bytes(b: float) -> str:
    return f"{b / GiB:,.2f} GiB"


def _print_estimate(est) -> None:
    d = est.to_dict()
    p, f, m = d["params"], d["flops"], d["memory_bytes"]
    lines = [
        f"model {est.model} ({est.family}) on {est.hardware}: {d['workload']['task']}, batch {d['workload']['batch']}",
        f"params     total {p['total']:,}  trainable {p['trainable']:,}  active {p['active']:,}",
        f"FLOPs      forward {f['forward']:.4g}  backward {f['backward']:.4g}  (2 per multiply-add; MACs = FLOPs/2)",
    ]
    if f["decode_per_token"]:
        lines.append(f"           decode per token {f['decode_per_token']:.4g}")
    for k in ("weights", "gradients", "optimizer", "activations", "logits_loss", "kv_cache", "transient", "peak",
              "runtime_overhead", "device_total", "capacity"):
        lines.append(f"memory     {k:<17s}{_fmt_bytes(m[k]):>16s}")
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
        lines.append(f"note       {key}: {text}")
    for k, v in d["time_s"].items():
        lines.append(f"time       {k:<17s}{v:>12.6g} s")
    perf = d["perf"]
    if perf:
        lines.append(f"perf       MFU {perf['mfu']:.1%}  HFU {perf['hfu']:.1%}  {perf['tokens_per_s']:,.0f} tokens/s  "
                     f"bound by {perf['bound']}")
    for key, label, unit in (("cost_usd", "cost", "$"), ("energy_kwh", "energy", "kWh"),
                             ("carbon_kg_co2e", "carbon", "kg CO2e")):
        if d[key]:
            lines.append(f"{label:<11s}" + "  ".join(f"{k} {v:.4g} {unit}" for k, v in d[key].items()))
    eff = d["assumptions"].get("efficiency")
    if eff:
        lines.append(f"assumes    matmul {eff['matmul']:.0%} (fp32 {eff['matmul_fp32']:.0%}) of peak, bandwidth "
                     f"{eff['bandwidth']:.0%}, host {eff['overhead_s'] * 1e6:.1f} us/op: {eff['source']}")
    cost = d["assumptions"].get("cost")
    if isinstance(cost, dict):
        lines.append(f"assumes    ${cost['usd_per_gpu_hour']['value']:.3g}/device-hour ({cost['provider']['value']}, "
                     f"{cost['tier']['value']}), {cost['device_power_w']['value']:.0f} W x PUE {cost['pue']['value']}, "
                     f"grid {cost['grid_g_co2e_per_kwh']['value']:.0f} gCO2e/kWh ({cost['region']['value']})")
    print("\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "run", None) is not None:
            return args.run(args)
        if args.command == "estimate":
            from .api import estimate

            from .catalog import load_hardware
            from .plan_cli import efficiency_from_args, pricing_from_args

            hw = load_hardware(args.hardware or "h100-sxm-80gb")
            est = estimate(args.model, hardware=hw, workload=workload_from_args(args),
                           efficiency=efficiency_from_args(args, hw), pricing=pricing_from_args(args))
            if args.json:
                print(json.dumps(est.to_dict(with_layers=args.layers), indent=1))
            else:
                _print_estimate(est)
        elif args.command == "presets":
            from .models import list_presets

            rows = [{"id": p.id, "name": p.name, "family": p.family, "published_params": p.published_params,
                     "source": p.source} for p in list_presets()]
            if args.json:
                print(json.dumps(rows, indent=1))
            else:
                for r in rows:
                    print(f"{r['id']:<16s} {r['family']:<16s} {r['name']}")
        elif args.command == "hardware":
            from .catalog import list_hardware

            hws = list_hardware()
            if args.json:
                print(json.dumps([h.to_dict() for h in hws], indent=1))
            else:
                for h in hws:
                    print(f"{h.id:<18s} {h.memory_bytes / GiB:>7.1f} GiB  {h.peak_flops('bf16') / 1e12:>7.1f} TFLOP/s bf16  {h.name}")
        return 0
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # e.g. piped into `head`
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
