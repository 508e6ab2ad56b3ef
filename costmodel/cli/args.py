"""The flags several commands share, and how their values become validated inputs: one place for each.

Every value arrives as text; ``number_arg`` / ``int_arg`` turn it into a finite number in range or raise
``InputError(field, ...)`` (exit 2, one line).
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import replace

from ..catalog import catalog_notes, replaced_catalog_note, resolve_hardware
from ..errors import InputError
from ..perf import default_efficiency
from ..workload import DEFAULT_OPTIMIZER, TRAINING_ONLY, Workload
from .output import note


class Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, status 2, no usage dump
        raise InputError("arguments", message)


def add_workload_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="preset id, path to a HF config.json, or a costmodel spec JSON")
    p.add_argument("--hardware", default=None, help="hardware id (default h100-sxm-80gb) or path to a hardware JSON")
    p.add_argument("--task", default="train", help="train | infer")
    p.add_argument("--batch", default=1, help="samples per step (per device)")
    p.add_argument("--seq", default=None, help="tokens per sample (train; encoders); default 2048, or the model's "
                                               "context length if shorter (GPT-2: 1024)")
    p.add_argument("--image-size", default=None, help="image side in pixels (vision models); default 224, or the "
                                                      "input a conv net with a dense head was built for (refused "
                                                      "if different: another size is another model)")
    p.add_argument("--prompt", default=None, help="prompt tokens (infer); default 512, or what fits the context")
    p.add_argument("--generate", default=128, help="generated tokens (infer)")
    p.add_argument("--precision", default="amp-bf16",
                   help="fp32 | amp-bf16 | amp-fp16 | bf16 | fp16 | fp8 | int8 | int4 | nvfp4 | mxfp4")
    p.add_argument("--optimizer", default=None, help="adamw (default) | adam | sgd | sgd-momentum | adafactor | "
                                                     "adamw-8bit | rmsprop | lamb (training only)")
    p.add_argument("--grad-checkpointing", nargs="?", const="full", default=False, metavar="full|selective",
                   help="activation checkpointing: full (the flag alone) keeps each block's input and recomputes its "
                        "forward in backward; selective keeps matmul and attention outputs too, recomputing every "
                        "second matmul and the elementwise ops (torchtitan's per-op policy)")
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


def workload_from_args(a: argparse.Namespace, spec=None):
    """The validated Workload of the flags; flags left out take the model's defaults
    (``costmodel.limits.resolve_defaults``: GPT-2 gets seq 1024, a 28x28 CNN image size 28)."""
    from ..limits import resolve_defaults
    from ..models import load_model

    if a.task == "infer" and a.optimizer is not None:  # explicit, even the default name: the one rule (refuse)
        raise InputError("optimizer", f"{TRAINING_ONLY['optimizer']}; inference has none: drop --optimizer or use "
                                      "--task train")
    fields = dict(
        task=a.task, batch=a.batch, generate=a.generate,
        precision=a.precision, optimizer=a.optimizer or DEFAULT_OPTIMIZER, grad_checkpointing=a.grad_checkpointing,
        lora_rank=a.lora_rank, lora_targets=a.lora_targets, bitfit=a.bitfit, sparsity=a.sparsity,
        sparsity_pattern=a.sparsity_pattern,
        attention=a.attention, kv_cache_precision=a.kv_cache_precision, dropout=False if a.no_dropout else None,
        kv_cache_layout=a.kv_cache_layout,
    )
    for key in ("seq", "image_size", "prompt"):
        if getattr(a, key, None) is not None:
            fields[key] = getattr(a, key)
    if spec is None:
        spec = load_model(a.model)
    return Workload(**resolve_defaults(spec, fields))


def add_assumption_args(p: argparse.ArgumentParser, engine_help: str | None = None) -> None:
    """Flags for every editable assumption: efficiency, engine, price, energy and carbon."""
    g = p.add_argument_group("assumptions (shown next to the numbers they affect)")
    g.add_argument("--engine", default=None,
                   help=engine_help or "eager (HF/PyTorch eager, measured) | compiled (CUDA graphs, fused)")
    g.add_argument("--matmul-efficiency", default=None, help="fraction of peak FLOP/s reached by matmuls (0-1)")
    g.add_argument("--bandwidth-efficiency", default=None, help="fraction of peak memory bandwidth reached (0-1)")
    g.add_argument("--overhead-us", default=None, help="host time per eager torch call in a forward pass, microseconds (docs/formulas.md, Host overhead)")
    g.add_argument("--provider", default=None, help="price provider (default: median across providers)")
    g.add_argument("--tier", default="on-demand", help="on-demand | reserved-1y | reserved-3y | spot | purchase")
    g.add_argument("--region", default="world", help="grid region for carbon (see docs/costs.md)")
    g.add_argument("--pue", default=None, help="power usage effectiveness (>= 1)")
    g.add_argument("--utilization", default=None, help="fraction of the idle-to-TDP power range drawn (0-1)")
    g.add_argument("--usd-per-device-hour", default=None,
                   help="your price per device-hour in USD (a negotiated rate); replaces the catalog's")


def number_arg(name: str, v, lo: float = -math.inf, hi: float = math.inf) -> float:
    """A finite number from a flag's text, in [lo, hi]."""
    try:
        f = float(str(v).strip()[:64])
    except (TypeError, ValueError):
        f = math.nan
    if not math.isfinite(f) or not lo <= f <= hi:
        rng = "" if (lo == -math.inf and hi == math.inf) else (
            f" from {lo:g} to {hi:g}" if hi != math.inf else f" >= {lo:g}")
        raise InputError(name, f"must be a finite number{rng}, got {str(v)[:40]!r}")
    return f


def int_arg(name: str, v, lo: int = 1, hi: int = 1 << 30) -> int:
    """A whole number from a flag's text (``1e6`` is fine; plain digits are read exactly), in [lo, hi]."""
    text = str(v).strip()[:64]
    if _DIGITS.fullmatch(text):
        n = int(text)
        if lo <= n <= hi:
            return n
    else:
        try:
            f = float(text)
        except (TypeError, ValueError):
            f = math.nan
        if math.isfinite(f) and f.is_integer() and lo <= f <= hi:
            return int(f)
    raise InputError(name, f"must be a whole number from {lo} to {hi}, got {str(v)[:40]!r}")


_DIGITS = re.compile(r"[+-]?[0-9]{1,40}")


def hardware_from_args(a):
    """The device a command runs on: ``--hardware`` (catalog id or a hardware JSON file) or the default. A file
    that reuses a catalog id gets a note on stderr (its record replaces the catalog's), as do user catalog
    files that were skipped."""
    hw = resolve_hardware(a.hardware)
    for line in catalog_notes():
        note(line)
    replaced = replaced_catalog_note(hw, a.hardware)
    if replaced:
        note(replaced)
    return hw


def efficiency_from_args(a, hw):
    """The device kind's default efficiency for ``--engine`` (a training engine's own efficiency for the
    training engines of costmodel.engines), with any ``--*-efficiency`` / ``--overhead-us`` edits (validated
    by ``costmodel.perf.Efficiency``)."""
    from ..engines import ENGINES, engine_efficiency

    name = a.engine or "eager"
    eff = engine_efficiency(ENGINES[name], hw) if name in ENGINES else default_efficiency(hw, name)
    changes = efficiency_edits(a)
    return replace(eff, **changes, source=eff.source + "; edited on the command line") if changes else eff


def efficiency_edits(a) -> dict:
    """``Efficiency`` fields given by ``--matmul-efficiency`` (both matmul rates), ``--bandwidth-efficiency`` and
    ``--overhead-us`` (in seconds), validated; {} when none is given."""
    changes = {}
    if a.matmul_efficiency is not None:
        changes["matmul"] = changes["matmul_fp32"] = number_arg("matmul_efficiency", a.matmul_efficiency)
    if a.bandwidth_efficiency is not None:
        changes["bandwidth"] = number_arg("bandwidth_efficiency", a.bandwidth_efficiency)
    if a.overhead_us is not None:
        changes["overhead_s"] = number_arg("overhead_us", a.overhead_us) * 1e-6
    return changes


def pricing_from_args(a) -> dict:
    """Keyword arguments of ``costmodel.costs.cost_breakdown`` from the assumption flags."""
    out = {"tier": a.tier, "region": a.region}
    if a.provider:
        out["provider"] = a.provider
    if a.pue is not None:
        out["pue"] = number_arg("pue", a.pue, 1.0, 5.0)
    if a.utilization is not None:
        out["utilization"] = number_arg("utilization", a.utilization, 0.0, 1.0)
    if a.usd_per_device_hour is not None:
        out["usd_per_device_hour"] = number_arg("usd_per_device_hour", a.usd_per_device_hour, 0.0, 1e6)
    return out


