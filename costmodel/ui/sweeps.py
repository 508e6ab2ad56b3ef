"""Comparisons and sweeps the Compare and Plan pages show: one workload across devices or settings, one
field swept over powers of two, one run over more devices."""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from ..api import estimate
from ..errors import InputError
from ..plans import plan_training
from ..units import GiB
from ..workload import Workload
from .page_state import estimate_from_state
from .tables import compare_row


SETTING_VARIANTS: dict[str, dict[str, dict]] = {
    # name -> workload overrides; each group is one "compare settings" choice on the Compare page
    "precision": {"fp32": {"precision": "fp32"}, "amp-bf16": {"precision": "amp-bf16"},
                  "bf16": {"precision": "bf16"}, "int8 (infer) / QLoRA-8 (train)": {"precision": "int8"},
                  "int4 (infer) / QLoRA (train)": {"precision": "int4"}},
    "fine-tuning": {"full fine-tune": {"lora_rank": 0, "precision": "amp-bf16"},
                    "LoRA r=16": {"lora_rank": 16, "precision": "bf16"},
                    "QLoRA r=16 (int4)": {"lora_rank": 16, "precision": "int4"},
                    "BitFit (biases only)": {"lora_rank": 0, "bitfit": True, "precision": "bf16"}},
    # compression for serving: weight quantization and pruning (2:4 is inference-only, so training shows why)
    "compression": {"dense bf16": {"precision": "bf16"},
                    "int8 weights": {"precision": "int8"},
                    "int4 weights": {"precision": "int4"},
                    "50% unstructured pruning (dense kernels)": {"precision": "bf16", "sparsity": 0.5},
                    "2:4 sparse bf16": {"precision": "bf16", "sparsity": 0.5, "sparsity_pattern": "2:4"},
                    "2:4 sparse int8": {"precision": "int8", "sparsity": 0.5, "sparsity_pattern": "2:4"}},
    "checkpointing": {"no checkpointing": {"grad_checkpointing": False},
                      "gradient checkpointing": {"grad_checkpointing": True},
                      "selective checkpointing (per op)": {"grad_checkpointing": "selective"}},
    "optimizer": {"adamw": {"optimizer": "adamw"}, "adamw-8bit": {"optimizer": "adamw-8bit"},
                  "adafactor": {"optimizer": "adafactor"}, "sgd-momentum": {"optimizer": "sgd-momentum"}},
}


def variant_overrides(group: str, label: str, task: str) -> dict:
    """A setting variant's workload changes; int8/int4 training means QLoRA (a LoRA rank is added)."""
    ov = dict(SETTING_VARIANTS[group][label])
    if task == "train" and ov.get("precision") in ("int8", "int4") and not ov.get("lora_rank"):
        ov["lora_rank"] = 16
    return ov


SWEEP_FIELDS = ("batch", "seq", "prompt", "image_size")


def sweep_values(field: str, start: int, stop: int) -> list[int]:
    """Powers of two from ``start`` to ``stop`` (inclusive, both rounded to powers of two)."""
    if start < 1 or stop < start:
        raise InputError(f"sweep.{field}", f"needs 1 <= from <= to, got {start} .. {stop}")
    v = 1 << max(0, (int(start) - 1).bit_length())
    out = []
    while v <= stop and len(out) < 24:
        out.append(v)
        v *= 2
    return out or [int(start)]


def cap_sweep(spec, state: Mapping[str, Any], field: str, values: list[int]) -> tuple[list[int], str]:
    """The swept values the model takes (``costmodel.limits``): sequence lengths up to its context length (a
    prompt leaves room for the generated tokens); image sizes only its own for a fixed-size net. Returns
    (values, a sentence saying what was left out, or "")."""
    from ..limits import model_limits

    lim = model_limits(spec)
    hi = None
    if field == "seq" and lim.max_positions:
        hi = lim.max_positions
    elif field == "prompt" and lim.max_positions:
        hi = lim.max_positions - int(state.get("generate", 0))
    elif field == "image_size" and lim.image_hw:
        kept = [lim.image_hw[0]]
        return kept, f"{lim.model} takes only {lim.image_hw[0]}x{lim.image_hw[1]} images (fixed head)"
    if hi is None:
        return list(values), ""
    kept = [v for v in values if v <= hi]
    if len(kept) == len(values):
        return kept, ""
    if not kept or kept[-1] != hi:
        kept.append(hi)
    return kept, (f"{field} stops at {hi:,}: {lim.model} takes at most {lim.max_positions:,} positions"
                  + (f" ({int(state.get('generate', 0)):,} of them generated)" if field == "prompt" else ""))


def sweep_rows(state: Mapping[str, Any], field: str, values: Iterable[int]) -> list[dict]:
    """Estimate at each value of one workload field: memory and time per value."""
    if field not in SWEEP_FIELDS:
        raise InputError("sweep.field", f"must be one of {', '.join(SWEEP_FIELDS)}, got {field!r}")
    rows = []
    for v in values:
        est = estimate_from_state(state, **{field: int(v)})
        rows.append({field: int(v), "peak_GiB": est.memory_bytes.peak / GiB,
                     "device_total_GiB": est.memory_bytes.device_total / GiB,
                     "capacity_GiB": est.memory_bytes.capacity / GiB, "fits": bool(est.memory_bytes.fits),
                     "per_unit": est.unit, "time_s": est.time_s.per_unit_s, "tokens_per_s": est.perf.tokens_per_s})
    return rows


def scaling_rows(model, hardware, workload: dict, counts: Iterable[int], tp: int, pp: int, zero: int,
                 micro_batch: int, ckpt: bool, global_batch: int, pricing: dict, tokens=None, samples=None,
                 epochs: float = 1.0) -> list[dict]:
    """The same run on more devices (data parallel grows; tp and pp fixed): time, GPU-hours, cost."""


    rows = []
    for n in counts:
        if n % (tp * pp):
            continue
        dp = n // (tp * pp)
        if micro_batch * dp > global_batch or global_batch % (micro_batch * dp):  # plans refuse uneven splits
            continue
        p = plan_training(model, hardware, workload=workload, tokens=tokens, samples=samples, epochs=epochs,
                          global_batch=global_batch, pricing=pricing,
                          layout=dict(dp=dp, tp=tp, pp=pp, zero=zero if dp > 1 else 0, micro_batch=micro_batch,
                                      grad_checkpointing=ckpt))
        rows.append({"devices": n, "wall_clock_days": p.wall_clock_s / 86400, "gpu_hours": p.gpu_hours,
                     "cost_usd": p.cost.total_usd, "mfu": p.step.mfu,
                     "fits": bool(p.step.fits), "step_s": p.step.step_s})
    return rows


def compare_devices(model, hardware: Mapping[str, Any], workload) -> tuple[list[dict], list, list]:
    """One workload on each device: (rows of ``tables.compare_row``, estimates, errors). ``hardware``: label ->
    ``Hardware``. A device the workload cannot run on is an ``InputError`` in ``errors``, not a missing row."""
    rows, ests, errors = [], [], []
    for label, hw in hardware.items():
        try:
            est = estimate(model, hardware=hw, workload=workload)
        except InputError as err:
            errors.append(err)
            continue
        ests.append(est)
        rows.append(compare_row(label, est))
    return rows, ests, errors


def compare_settings(model, hardware, workload, group: str) -> tuple[list[dict], list, list[str]]:
    """Each setting of ``SETTING_VARIANTS[group]`` applied to one workload on one device: (rows, estimates,
    notes for the settings that do not apply, e.g. 2:4 sparsity when training)."""
    if group not in SETTING_VARIANTS:
        raise InputError("group", f"must be one of {', '.join(SETTING_VARIANTS)}, got {group!r}")
    rows, ests, notes = [], [], []
    for label in SETTING_VARIANTS[group]:
        try:
            w = Workload.from_dict({**workload.to_dict(), **variant_overrides(group, label, workload.task)})
            est = estimate(model, hardware=hardware, workload=w)
        except InputError as err:
            notes.append(f"{label} — {err.field}: {err.message}")
            continue
        ests.append(est)
        rows.append(compare_row(label, est))
    return rows, ests, notes


def roofline_points(model, est) -> list[dict]:
    """Where each phase of an estimate sits on the device's roofline: FLOPs, bytes moved, arithmetic intensity
    (FLOPs per byte) and achieved FLOP/s (FLOPs / the phase's time, host overhead included), with its bound.

    Bytes are the forward traffic the time model charges each ledger row (``costmodel.perf``: weights read,
    inputs and outputs moved, KV cache read or written); a training step moves about 3x its forward's (the
    backward reads the saved inputs and the weights again and writes both gradients), which the point uses."""
    from ..estimator import ledger, make_ctx
    from ..models import load_model
    from ..perf import _row_traffic

    spec = load_model(model)
    w = est.workload
    eff = est.assumptions.get("efficiency", {})
    ew = float(eff.get("elementwise_traffic", 1.0))
    params = est.params.total or 1
    weight_read = est.memory_bytes.weights / params

    def traffic(phase: str) -> float:
        rows = ledger(spec, make_ctx(spec, w, phase))
        return sum(_row_traffic(r, weight_read, phase == "train", ew) * r.count for r in rows)

    t, perf = est.time_s, est.perf
    out = []
    if est.unit == "step":
        out.append(("step", est.flops.total, 3.0 * traffic("train"), t.step_s, perf.bound))
    elif est.unit == "request":
        out.append(("prefill", est.flops.forward, traffic("prefill"), t.prefill_s, perf.bound))
        out.append(("decode", est.flops.decode_per_token * w.batch, traffic("decode"), t.decode_per_token_s,
                    perf.decode_bound or ""))
    else:
        out.append(("forward", est.flops.forward, traffic("forward"), t.forward_s, perf.bound))
    return [{"phase": ph, "flops": f, "bytes": b, "intensity": f / b if b else 0.0,
             "flops_per_s": f / s if s else 0.0, "bound": bound} for ph, f, b, s, bound in out]
