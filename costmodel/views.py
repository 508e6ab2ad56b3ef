"""Page-independent helpers for the dashboard: page state <-> URL query parameters, the model
builder, custom hardware, seed scenarios, and Estimate -> display tables.

No Streamlit here (pages import this; this never imports streamlit). No new numbers are computed:
tables re-arrange what ``costmodel.estimate`` returns; the only arithmetic is unit conversion.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterable, Mapping

from .errors import InputError
from .units import GiB

ASSETS = Path(__file__).resolve().parent.parent / "assets"
SEEDS_FILE = ASSETS / "seeds.json"
DEFAULT_HARDWARE = "h100-sxm-80gb"
CUSTOM_HARDWARE = "custom"
MODEL_SOURCES = ("preset", "paste", "build")

# ---- page state ------------------------------------------------------------------------------
# One flat dict per page, every value a str / int / float / bool. The default's type is the type the
# URL value is parsed to. Only values that differ from the default go into the URL (short links).

MODEL_STATE = {
    "source": "preset",  # preset | paste (an uploaded or pasted config.json) | build (sliders)
    "preset": "gpt2",
    "config": "",  # JSON text of a pasted / uploaded config
    "layers": 12, "width": 768, "heads": 12, "kv_heads": 12, "ffn": 3072, "vocab": 32000,
    "experts": 0, "top_k": 2,
}
HARDWARE_STATE = {
    "hw": DEFAULT_HARDWARE,  # catalog id, or "custom"
    "hw_mem_gib": 80.0, "hw_bw_gbs": 3350.0, "hw_tflops16": 989.0, "hw_tflops32": 67.0, "hw_tdp_w": 700.0,
}
WORKLOAD_STATE = {
    "task": "train", "batch": 1, "seq": 1024, "image_size": 224, "prompt": 512, "generate": 128,
    "precision": "amp-bf16", "optimizer": "adamw", "ckpt": False, "lora_rank": 0,
    "lora_targets": "q_proj,v_proj", "attention": "fused", "pruning": "none",
}
# the pages' pruning choice (inference only) -> workload sparsity and its pattern
PRUNING = {"none": (0.0, "unstructured"), "50% unstructured": (0.5, "unstructured"), "2:4": (0.5, "2:4")}
ESTIMATE_STATE = {**MODEL_STATE, **HARDWARE_STATE, **WORKLOAD_STATE}


def _parse(value: str, default):
    if isinstance(default, bool):
        low = str(value).strip().lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off", ""):
            return False
        raise ValueError(value)
    if isinstance(default, int):
        f = float(value)
        if not f.is_integer():
            raise ValueError(value)
        return int(f)
    if isinstance(default, float):
        f = float(value)
        if not math.isfinite(f):
            raise ValueError(value)
        return f
    return str(value)


def _fmt(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() else repr(value)
    return str(value)


def state_from_query(query: Mapping[str, Any], defaults: Mapping[str, Any]) -> tuple[dict, list[str]]:
    """Page state from URL query parameters: ``(state, problems)``. Unknown keys are ignored; a value
    that does not parse as its default's type keeps the default and is named in ``problems``."""
    state = dict(defaults)
    problems = []
    for key, default in defaults.items():
        if key not in query:
            continue
        raw = query[key]
        if isinstance(raw, (list, tuple)):
            raw = raw[-1] if raw else ""
        try:
            state[key] = _parse(raw, default)
        except (TypeError, ValueError):
            problems.append(f"{key}: {str(raw)[:60]!r} in the link is not a {type(default).__name__}; "
                            f"using {default!r}")
    return state, problems


def state_to_query(state: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, str]:
    """URL query parameters for ``state``: only the keys whose value differs from the default."""
    out = {}
    for key, default in defaults.items():
        if key in state and state[key] != default:
            out[key] = _fmt(state[key])
    return out


# ---- model, hardware, workload from page state ------------------------------------------------

def build_config(layers: int, width: int, heads: int, kv_heads: int, ffn: int, vocab: int,
                 experts: int = 0, top_k: int = 2) -> dict:
    """A Llama-style Hugging Face config (Mixtral-style when ``experts`` > 1) from the builder's sliders."""
    for name, v in (("layers", layers), ("width", width), ("heads", heads), ("kv_heads", kv_heads),
                    ("ffn", ffn), ("vocab", vocab)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise InputError(f"model.{name}", f"must be a whole number >= 1, got {v!r}")
    if width % heads:
        raise InputError("model.heads", f"must divide the width {width} (each head gets width / heads "
                                        f"dimensions), got {heads} heads")
    if kv_heads > heads or heads % kv_heads:
        raise InputError("model.kv_heads", f"must divide the number of attention heads {heads}, got {kv_heads}")
    cfg = {
        "model_type": "llama", "_name_or_path": f"custom-{layers}x{width}",
        "hidden_size": width, "intermediate_size": ffn, "num_hidden_layers": layers,
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "vocab_size": vocab,
        "hidden_act": "silu", "tie_word_embeddings": False, "max_position_embeddings": 1 << 20,
    }
    if experts and experts > 1:
        if not 1 <= top_k <= experts:
            raise InputError("model.top_k", f"must be from 1 to the number of experts {experts}, got {top_k}")
        cfg.update(model_type="mixtral", num_local_experts=experts, num_experts_per_tok=top_k,
                   _name_or_path=f"custom-moe-{layers}x{width}x{experts}e")
    return cfg


def parse_config(text: str | bytes) -> dict:
    """A pasted or uploaded config.json as data (``costmodel.safe_json.parse_config_text``)."""
    from .safe_json import parse_config_text

    if not (text.strip() if isinstance(text, str) else bytes(text).strip()):
        raise InputError("config", "is empty; paste or upload a Hugging Face config.json")
    return parse_config_text(text, field="config")


def model_from_state(state: Mapping[str, Any]):
    """What ``costmodel.estimate`` takes as ``model``: a preset id or a config dict."""
    src = state["source"]
    if src == "preset":
        return state["preset"]
    if src == "paste":
        return parse_config(state["config"])
    if src == "build":
        return build_config(state["layers"], state["width"], state["heads"], state["kv_heads"], state["ffn"],
                            state["vocab"], state["experts"], state["top_k"])
    raise InputError("model.source", f"must be one of {', '.join(MODEL_SOURCES)}, got {src!r}")


def model_label(state: Mapping[str, Any]) -> str:
    if state["source"] == "preset":
        return state["preset"]
    if state["source"] == "build":
        return f"custom {state['layers']}x{state['width']}"
    return "pasted config"


def custom_hardware(mem_gib: float, bw_gb_s: float, tflops16: float, tflops32: float, tdp_w: float = 700.0):
    """A ``Hardware`` from the page's custom inputs (GiB, GB/s, dense TFLOP/s, watts), validated by the
    catalog's own schema. Interconnect figures are the H100 SXM catalog's (they do not affect one device)."""
    from .catalog import hardware_from_dict, load_hardware

    ref = load_hardware(DEFAULT_HARDWARE)
    for name, v in (("hw_mem_gib", mem_gib), ("hw_bw_gbs", bw_gb_s), ("hw_tflops16", tflops16),
                    ("hw_tflops32", tflops32), ("hw_tdp_w", tdp_w)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
            raise InputError(f"hardware.{name}", f"must be a positive number, got {v!r}")
    return hardware_from_dict({
        "id": CUSTOM_HARDWARE, "name": "Custom device", "vendor": "custom", "kind": "gpu",
        "memory_bytes": float(mem_gib) * GiB, "memory_bandwidth_bytes_per_s": float(bw_gb_s) * 1e9,
        "peak_flops_per_s": {"fp32": float(tflops32) * 1e12, "bf16": float(tflops16) * 1e12,
                             "fp16": float(tflops16) * 1e12},
        "tdp_w": float(tdp_w), "idle_w": 0.0,
        "intra_node_bandwidth_bytes_per_s": ref.intra_node_bandwidth_bytes_per_s,
        "inter_node_bandwidth_bytes_per_s": ref.inter_node_bandwidth_bytes_per_s,
        "gpus_per_node": ref.gpus_per_node,
        "source": "entered in the dashboard", "notes": "custom device; idle power taken as 0 W",
    })


def hardware_from_state(state: Mapping[str, Any]):
    from .catalog import load_hardware

    if state["hw"] == CUSTOM_HARDWARE:
        return custom_hardware(state["hw_mem_gib"], state["hw_bw_gbs"], state["hw_tflops16"], state["hw_tflops32"],
                               state["hw_tdp_w"])
    return load_hardware(state["hw"])


def workload_from_state(state: Mapping[str, Any]):
    from .workload import Workload

    targets = tuple(t.strip() for t in str(state["lora_targets"]).split(",") if t.strip())
    pruning = state.get("pruning", "none")
    if pruning not in PRUNING:
        raise InputError("pruning", f"must be one of {', '.join(PRUNING)}, got {pruning!r}")
    sparsity, pattern = PRUNING[pruning] if state["task"] == "infer" else PRUNING["none"]
    return Workload(task=state["task"], batch=state["batch"], seq=state["seq"], image_size=state["image_size"],
                    prompt=state["prompt"], generate=state["generate"], precision=state["precision"],
                    optimizer=state["optimizer"], grad_checkpointing=bool(state["ckpt"]),
                    lora_rank=state["lora_rank"], lora_targets=targets, attention=state["attention"],
                    sparsity=sparsity, sparsity_pattern=pattern)


def estimate_from_state(state: Mapping[str, Any], **overrides):
    """``costmodel.estimate`` for a page state; ``overrides`` replace workload fields."""
    from .api import estimate

    w = workload_from_state(state)
    if overrides:
        w = w.with_(**overrides)
        w = type(w).from_dict(w.to_dict())  # re-validate
    return estimate(model_from_state(state), hardware=hardware_from_state(state), workload=w)


# ---- seeds ------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _seeds(path: str) -> tuple[dict, ...]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(data["seeds"])


def load_seeds(path: str | Path = SEEDS_FILE) -> list[dict]:
    """Seed scenarios (``assets/seeds.json``): id, title, description, page, query (URL parameters)."""
    return [dict(s) for s in _seeds(str(path))]


def get_seed(seed_id: str) -> dict:
    for s in load_seeds():
        if s["id"] == seed_id:
            return s
    raise InputError("seed", f"unknown seed {seed_id!r}; seeds: {', '.join(s['id'] for s in load_seeds())}")


# ---- formatting (display only) ----------------------------------------------------------------

_SI = ((1e24, "Y"), (1e21, "Z"), (1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def fmt_si(x: float, unit: str = "", digits: int = 3) -> str:
    """1.405e14 -> '140.5 T' + unit (decimal prefixes)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    ax = abs(x)
    for scale, prefix in _SI:
        if ax >= scale:
            return f"{x / scale:.{digits}g} {prefix}{unit}".rstrip()
    return f"{x:.{digits}g} {unit}".rstrip()


def fmt_gib(b: float) -> str:
    return f"{b / GiB:,.2f} GiB"


def fmt_seconds(s: float) -> str:
    if s is None or not math.isfinite(s):
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.3g} µs"
    if s < 1:
        return f"{s * 1e3:.3g} ms"
    if s < 120:
        return f"{s:.3g} s"
    if s < 7200:
        return f"{s / 60:.3g} min"
    if s < 172800:
        return f"{s / 3600:.3g} h"
    return f"{s / 86400:,.1f} days"


def fmt_timestamp(ts) -> str:
    """A stored ISO timestamp to the minute ("2026-11-23 13:19"); "" for none."""
    return str(ts or "")[:16].replace("T", " ")


def fmt_count(n: int) -> str:
    return f"{int(n):,}"


# ---- Estimate -> tables -----------------------------------------------------------------------

MEMORY_LABELS = {
    "weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
    "activations": "activations (saved for backward)", "logits_loss": "logits / loss buffers",
    "kv_cache": "KV cache", "transient": "transient (working set / step temporaries)",
    "runtime_overhead": "runtime overhead (CUDA context + allocator slack)",
}


def peak_segments(est) -> list[tuple[str, float]]:
    """What is alive at the peak, as (label, bytes) summing exactly to ``memory_bytes.device_total``.

    The estimate lists each component at its own size; they are not all alive at once (gradients appear
    as activations are freed). The peak's phase says which are: start of backward = weights + optimizer
    states + every saved activation + loss buffers; end of backward = weights + states + gradients + what
    is still saved; optimizer step = weights + gradients + states + step temporaries; inference = weights
    + KV cache + working set. Any rest the phase does not name is shown as "other live tensors"."""
    m = est.memory_bytes
    phase = m.peak_phase
    if est.workload.get("task") != "train":
        order = ["weights", "kv_cache", "transient"]
    elif phase == "optimizer step":
        order = ["weights", "optimizer", "gradients", "transient"]
    elif phase == "end of backward":
        order = ["weights", "optimizer", "gradients", "activations", "logits_loss"]
    else:
        order = ["weights", "optimizer", "activations", "logits_loss", "gradients"]
    remaining = m.peak
    out = []
    for key in order:
        take = min(float(getattr(m, key)), remaining)
        if take > 0:
            out.append((MEMORY_LABELS[key], take))
            remaining -= take
    if remaining > 0:
        out.append(("other live tensors at the peak", remaining))
    out.append((MEMORY_LABELS["runtime_overhead"], m.runtime_overhead))
    return out


def memory_rows(est) -> list[dict]:
    m = est.memory_bytes
    rows = [{"component": MEMORY_LABELS[k], "key": k, "bytes": float(getattr(m, k)),
             "GiB": float(getattr(m, k)) / GiB} for k in MEMORY_LABELS]
    for k, label in (("peak", "peak allocated (torch max_memory_allocated)"),
                     ("device_total", "device total (what nvidia-smi shows)"), ("capacity", "device capacity"),
                     ("headroom", "headroom (capacity - device total)")):
        rows.append({"component": label, "key": k, "bytes": float(getattr(m, k)), "GiB": float(getattr(m, k)) / GiB})
    return rows


def summary_rows(est) -> list[dict]:
    """Every number of an estimate as (group, quantity, value, unit) rows, in the JSON's keys."""
    d = est.to_dict()
    units = {"params": "parameters", "flops": "FLOPs", "memory_bytes": "bytes", "time_s": "s"}
    rows = []
    for group in ("params", "flops", "memory_bytes", "time_s"):
        for k, v in d[group].items():
            unit = units[group]
            if group == "flops" and k.endswith("_macs"):
                unit = "multiply-adds"
            if isinstance(v, bool) or isinstance(v, str):
                unit = ""
            rows.append({"group": group, "quantity": k, "value": v, "unit": unit})
    for group, unit in (("cost_usd", "USD"), ("energy_kwh", "kWh"), ("carbon_kg_co2e", "kg CO2e")):
        for k, v in d.get(group, {}).items():
            rows.append({"group": group, "quantity": k, "value": v, "unit": unit})
    for k, v in d["perf"].items():
        unit = {"peak_flops_per_s": "FLOP/s", "tokens_per_s": "tokens/s", "samples_per_s": "samples/s",
                "prefill_tokens_per_s": "tokens/s", "host_s": "s", "device_s": "s"}.get(k, "")
        rows.append({"group": "perf", "quantity": k, "value": v, "unit": unit})
    return rows


def time_rows(est) -> list[dict]:
    return [{"phase": k, "seconds": float(v)} for k, v in est.time_s.items()]


def layer_rows(est) -> list[dict]:
    """The per-layer ledger (``est.layers``), per instance and for all ``count`` instances."""
    out = []
    for r in est.layers:
        d = asdict(r)
        n = d["count"]
        out.append({
            "layer": d["name"], "kind": d["kind"], "count": n, "params": d["params"],
            "params_all": d["params"] * n, "forward_flops": d["forward_flops"],
            "forward_flops_all": d["forward_flops"] * n, "backward_flops_all": d["backward_flops"] * n,
            "weight_bytes_all": d["weight_bytes"] * n, "activation_bytes_all": d["activation_bytes"] * n,
            "kv_cache_bytes_all": d["kv_cache_bytes"] * n,
        })
    return out


def to_frame(rows: Iterable[dict]):
    import pandas as pd

    return pd.DataFrame(list(rows))


def to_csv(rows: Iterable[dict]) -> str:
    return to_frame(rows).to_csv(index=False)


def to_json(obj) -> str:
    return json.dumps(obj, indent=1, default=str)


# ---- comparisons and sweeps -------------------------------------------------------------------

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
                      "gradient checkpointing": {"grad_checkpointing": True}},
    "optimizer": {"adamw": {"optimizer": "adamw"}, "adamw-8bit": {"optimizer": "adamw-8bit"},
                  "adafactor": {"optimizer": "adafactor"}, "sgd-momentum": {"optimizer": "sgd-momentum"}},
}


def variant_overrides(group: str, label: str, task: str) -> dict:
    """A setting variant's workload changes; int8/int4 training means QLoRA (a LoRA rank is added)."""
    ov = dict(SETTING_VARIANTS[group][label])
    if task == "train" and ov.get("precision") in ("int8", "int4") and not ov.get("lora_rank"):
        ov["lora_rank"] = 16
    return ov


def compare_row(label: str, est) -> dict:
    """One row of a comparison table: the headline numbers of an estimate."""
    m = est.memory_bytes
    t = est.time_s
    main_time = t.get("step", t.get("prefill", t.get("forward", float("nan"))))
    row = {
        "setting": label, "hardware": est.hardware, "params_trainable": est.params.trainable,
        "flops_total": est.flops.total, "peak_GiB": m.peak / GiB, "device_total_GiB": m.device_total / GiB,
        "capacity_GiB": m.capacity / GiB, "weights_GiB": m.weights / GiB, "fits": bool(m.fits), "time_s": main_time,
        "bound": est.perf.get("bound", ""), "mfu": est.perf.get("mfu", float("nan")),
        "tokens_per_s": est.perf.get("tokens_per_s", float("nan")),
    }
    if "decode_per_token" in t:
        row["decode_s_per_token"] = t["decode_per_token"]
    unit = run_unit(est)
    row["usd_per_" + unit] = est.cost_usd.get("per_" + unit, float("nan"))
    row["usd_per_million_tokens"] = est.cost_usd.get("per_million_tokens", float("nan"))
    row["kwh_per_" + unit] = est.energy_kwh.get("per_" + unit, float("nan"))
    row["kg_co2e_per_" + unit] = est.carbon_kg_co2e.get("per_" + unit, float("nan"))
    return row


def run_unit(est) -> str:
    """What one run of the estimate is: a training "step", an inference "request" (prefill + decode) or a
    "forward" (non-generative inference); ``cost_usd`` / ``energy_kwh`` use the same key ``per_<unit>``."""
    if est.workload.get("task") == "train":
        return "step"
    return "request" if "prefill" in est.time_s else "forward"


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


def sweep_rows(state: Mapping[str, Any], field: str, values: Iterable[int]) -> list[dict]:
    """Estimate at each value of one workload field: memory and time per value."""
    if field not in SWEEP_FIELDS:
        raise InputError("sweep.field", f"must be one of {', '.join(SWEEP_FIELDS)}, got {field!r}")
    rows = []
    for v in values:
        est = estimate_from_state(state, **{field: int(v)})
        t = est.time_s
        rows.append({field: int(v), "peak_GiB": est.memory_bytes.peak / GiB,
                     "device_total_GiB": est.memory_bytes.device_total / GiB,
                     "capacity_GiB": est.memory_bytes.capacity / GiB, "fits": bool(est.memory_bytes.fits),
                     "time_s": t.get("step", t.get("prefill", t.get("forward"))),
                     "tokens_per_s": est.perf.get("tokens_per_s")})
    return rows


# ---- the formulas behind each number (rendered with st.latex on the pages) -------------------

FORMULAS_DOC = "docs/formulas.md"


def _tex_num(x: float) -> str:
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e < 6:
        return f"{x:,.4g}".replace(",", "{,}")
    return f"{x / 10 ** e:.4g} \\times 10^{{{e}}}"


def formula_sections(est) -> list[dict]:
    """For each headline number: title, LaTeX with the estimate's own values substituted, a note, and the
    docs/formulas.md section that states the formula and its source."""
    d = est.to_dict()
    w = d["workload"]
    p, f, m = d["params"], d["flops"], d["memory_bytes"]
    train = w["task"] == "train"
    tokens = w["batch"] * w["seq"]
    out = [{
        "title": "Parameters",
        "latex": r"P = \sum_{\text{layers}} \text{count} \times \text{params}_\text{layer} = " + _tex_num(p["total"]),
        "note": "Linear d_in x d_out (+ bias), embedding num x dim, LayerNorm 2 x dim, RMSNorm dim; the per-layer "
                "table below lists every term. Trainable: all (full), adapters (LoRA/QLoRA) or biases (BitFit).",
        "doc": f"{FORMULAS_DOC}#parameters",
    }, {
        "title": "FLOPs (2 per multiply-add)",
        "latex": r"C_\text{fwd} = \sum_\text{linear} 2\,t\,d_\text{in} d_\text{out} + \sum_\text{attn} 4\,b\,H\,s\,"
                 r"s_\text{kv}\,d = " + _tex_num(f["forward"]) + r"\ \text{FLOPs} = "
                 + _tex_num(f["forward_macs"]) + r"\ \text{MACs}",
        "note": "One multiply-add is 2 FLOPs (torch FlopCounterMode); MACs = FLOPs / 2 (what fvcore calls flops).",
        "doc": f"{FORMULAS_DOC}#flops",
    }]
    if train:
        approx = 6 * p["trainable"] * tokens if p["trainable"] == p["total"] else None
        tex = (r"C_\text{step} = C_\text{fwd} + C_\text{bwd} + C_\text{recompute} = " + _tex_num(f["forward"]) + " + "
               + _tex_num(f["backward"]) + " + " + _tex_num(f["recompute"]) + " = " + _tex_num(f["total"]))
        if approx and est.family in ("decoder", "moe", "encoder") and approx:
            tex += r"\quad\left(6\,P\,T = " + _tex_num(approx) + r"\right)"
        out.append({"title": "Training step FLOPs", "latex": tex,
                    "note": "Backward = 2 x forward for trainable matmuls (dX and dW); a frozen weight skips dW. "
                            "Gradient checkpointing adds one block forward (recompute).",
                    "doc": f"{FORMULAS_DOC}#flops"})
        out.append({
            "title": "Memory (training)",
            "latex": r"M_\text{peak} = \max\big(W + O + \text{live}_\text{backward},\ W + G + O + \text{tmp}\big) = "
                     + _tex_num(m["peak"]) + r"\ \text{B};\quad M_\text{device} = M_\text{peak}(1 + 0.06) + "
                     r"0.79\,\text{GB} = " + _tex_num(m["device_total"]) + r"\ \text{B}",
            "note": f"W weights {fmt_gib(m['weights'])}, G gradients {fmt_gib(m['gradients'])}, O optimizer states "
                    f"{fmt_gib(m['optimizer'])}, saved activations {fmt_gib(m['activations'])}; the peak is at "
                    f"'{m['peak_phase']}'. Capacity {fmt_gib(m['capacity'])}.",
            "doc": f"{FORMULAS_DOC}#the-peak",
        })
    else:
        out.append({
            "title": "Memory (inference)",
            "latex": r"M_\text{peak} = W + KV + \text{working set};\quad KV = 2\,L\,b\,n_{kv}\,d\,"
                     r"(\text{prompt} + \text{generate})\,\text{bytes} = " + _tex_num(m["kv_cache"])
                     + r"\ \text{B};\quad M_\text{peak} = " + _tex_num(m["peak"]) + r"\ \text{B}",
            "note": f"Weights {fmt_gib(m['weights'])}, KV cache {fmt_gib(m['kv_cache'])}, working set "
                    f"{fmt_gib(m['transient'])}.",
            "doc": f"{FORMULAS_DOC}#memory-inference",
        })
    eff = d["assumptions"].get("efficiency", {})
    out.append({
        "title": "Time (roofline per layer)",
        "latex": r"t_\text{row} = \max\!\left(\frac{\text{FLOPs}}{\text{peak} \times " + f"{eff.get('matmul', 0):.2f}"
                 + r"},\ \frac{\text{bytes}}{\text{bandwidth} \times " + f"{eff.get('bandwidth', 0):.2f}"
                 + r"}\right),\quad t_\text{pass} = \max\!\big(t_\text{host},\ \textstyle\sum t_\text{row}\big)",
        "note": f"Efficiency source: {eff.get('source', '')}. Bound: {d['perf'].get('bound', '')}. "
                + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in d["time_s"].items()),
        "doc": "costmodel/perf.py (docstring)",
    })
    return out


# ---- Learn page: small worked examples, every number from costmodel.estimate ------------------

def lesson_flops(model: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    """A training step's FLOPs from the ledger next to the 6 x P x T rule of thumb."""
    from .api import estimate

    est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, precision="amp-bf16")
    tokens = batch * seq
    rule = 6.0 * est.params.total * tokens
    return {"estimate": est, "tokens": tokens, "forward": est.flops.forward, "backward": est.flops.backward,
            "total": est.flops.total, "six_pt": rule, "ratio": est.flops.total / rule,
            "per_token": est.flops.per_token_train}


def lesson_optimizers(model: str, precision: str, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    """Bytes per parameter of weights, gradients and optimizer states, for every optimizer."""
    from .api import estimate
    from .workload import OPTIMIZERS

    rows = []
    for name in OPTIMIZERS:
        est = estimate(model, hardware=hardware, task="train", batch=1, seq=128, precision=precision, optimizer=name)
        n = est.params.total
        m = est.memory_bytes
        rows.append({"optimizer": name, "weights_B_per_param": m.weights / n, "grads_B_per_param": m.gradients / n,
                     "states_B_per_param": m.optimizer / n,
                     "total_B_per_param": (m.weights + m.gradients + m.optimizer) / n,
                     "weights+grads+states_GiB": (m.weights + m.gradients + m.optimizer) / GiB})
    return rows


def lesson_checkpointing(model: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    from .api import estimate

    rows = []
    for ckpt in (False, True):
        est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, grad_checkpointing=ckpt)
        rows.append({"checkpointing": "on" if ckpt else "off", "activations_GiB": est.memory_bytes.activations / GiB,
                     "peak_GiB": est.memory_bytes.peak / GiB, "recompute_flops": est.flops.recompute,
                     "step_flops": est.flops.total, "step_s": est.time_s["step"]})
    return rows


def lesson_kv_cache(model: str, batch: int, prompt: int, generate: int, kv_precision: str | None,
                    hardware: str = DEFAULT_HARDWARE) -> dict:
    """KV cache of a decoder from the estimator, with the formula's terms (layers, KV heads, head dim)."""
    from .api import estimate
    from .models import load_model

    spec = load_model(model)
    est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=prompt, generate=generate,
                   precision="bf16", kv_cache_precision=kv_precision)
    terms = {k: getattr(spec, a) for k, a in (("layers", "layers"), ("kv_heads", "n_kv_heads"), ("head_dim", "d_head"))
             if hasattr(spec, a)}
    return {"estimate": est, "kv_cache": est.memory_bytes.kv_cache, "weights": est.memory_bytes.weights,
            "positions": prompt + generate, "terms": terms}


def lesson_quantization(model: str, batch: int, prompt: int, generate: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    from .api import estimate

    rows = []
    for prec in ("fp32", "bf16", "fp8", "int8", "int4"):
        est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=prompt, generate=generate,
                       precision=prec)
        rows.append({"precision": prec, "weights_GiB": est.memory_bytes.weights / GiB,
                     "peak_GiB": est.memory_bytes.peak / GiB, "fits": bool(est.memory_bytes.fits),
                     "prefill_s": est.time_s.get("prefill"), "decode_s_per_token": est.time_s.get("decode_per_token")})
    return rows


def lesson_pruning(model: str, sparsity: float, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    from .api import estimate

    est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=seq, generate=1, seq=seq,
                   precision="bf16", sparsity=sparsity)
    return {"estimate": est, "total": est.params.total, "nonzero": est.params.nonzero,
            "forward": est.flops.forward, "forward_effective": est.flops.forward_effective}


def lesson_distillation(teacher: str, student: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    """One distillation step = the teacher's forward (inference over the batch) + the student's training step."""
    from .api import estimate

    t = estimate(teacher, hardware=hardware, task="infer", batch=batch, prompt=seq, generate=0, seq=seq,
                 precision="bf16")
    s = estimate(student, hardware=hardware, task="train", batch=batch, seq=seq, precision="amp-bf16")
    t_time = t.time_s.get("prefill", t.time_s.get("forward", 0.0))
    return {"teacher": t, "student": s, "teacher_flops": t.flops.forward, "student_flops": s.flops.total,
            "step_flops": t.flops.forward + s.flops.total, "teacher_s": t_time, "student_s": s.time_s["step"],
            "step_s": t_time + s.time_s["step"]}


def lesson_lora(model: str, rank: int, targets: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    from .api import estimate

    rows = []
    for label, kw in (("full fine-tune", {"lora_rank": 0, "precision": "amp-bf16"}),
                      (f"LoRA r={rank}", {"lora_rank": rank, "lora_targets": targets, "precision": "bf16"}),
                      (f"QLoRA r={rank}", {"lora_rank": rank, "lora_targets": targets, "precision": "int4"})):
        est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, **kw)
        m = est.memory_bytes
        rows.append({"method": label, "trainable_params": est.params.trainable,
                     "trainable_pct": 100.0 * est.params.trainable / est.params.total,
                     "weights_GiB": m.weights / GiB, "grads_GiB": m.gradients / GiB, "optimizer_GiB": m.optimizer / GiB,
                     "peak_GiB": m.peak / GiB, "fits": bool(m.fits), "step_s": est.time_s["step"]})
    return rows


def fmt_usd(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e6:
        return f"${x / 1e6:,.3g}M"
    if abs(x) >= 100:
        return f"${x:,.0f}"
    if abs(x) >= 0.01:
        return f"${x:,.2f}"
    return f"${x:.3g}"


def fmt_kwh(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1e3:
        return f"{x / 1e3:,.4g} MWh"
    if abs(x) >= 1:
        return f"{x:,.4g} kWh"
    return f"{x * 1e3:.3g} Wh"


def assumption_rows(assumptions: Mapping[str, Any]) -> list[dict]:
    """``{"name": {"value", "source"}}`` (costmodel.costs assumptions) -> rows for a table."""
    rows = []
    for k, v in (assumptions or {}).items():
        if isinstance(v, Mapping):
            rows.append({"assumption": k, "value": str(v.get("value", "")), "source": str(v.get("source", ""))})
        else:
            rows.append({"assumption": k, "value": str(v), "source": ""})
    return rows


# ---- plans (costmodel.plans) -> tables ---------------------------------------------------------

def pricing_from_state(state: Mapping[str, Any]) -> dict:
    """Keyword arguments of ``costmodel.costs.cost_breakdown`` from a page's pricing widgets."""
    return {"provider": state.get("provider") or None, "tier": state.get("tier", "on-demand"),
            "region": state.get("region", "world"), "utilization": float(state.get("utilization", 1.0))}


def plan_training_rows(plan) -> list[dict]:
    """Headline numbers of a TrainingPlan as (quantity, value, unit) rows."""
    c = plan.cost
    s = plan.step
    rows = [
        ("devices", plan.num_devices, ""), ("tokens", plan.tokens, "tokens"), ("steps", plan.steps, ""),
        ("global batch", s.global_batch, "samples"), ("gradient accumulation", s.grad_accum, "micro-batches"),
        ("step time", s.step_s, "s"), ("wall clock", plan.wall_clock_s, "s"), ("GPU-hours", plan.gpu_hours, "h"),
        ("model FLOPs", plan.total_flops, "FLOPs"), ("FLOPs with recompute", plan.total_flops_with_recompute, "FLOPs"),
        ("6 N D", plan.six_n_d_flops, "FLOPs"), ("MFU", s.mfu, ""), ("HFU", s.hfu, ""),
        ("compute cost", c["compute_usd"], "USD"), ("storage cost", c["storage_usd"], "USD"),
        ("energy", c["energy_kwh"], "kWh"), ("electricity cost (not in cloud price)", c["energy_usd"], "USD"),
        ("carbon", c["carbon_kg_co2e"], "kg CO2e"),
        ("per-device peak", s.memory_bytes["peak"], "bytes"), ("per-device total", s.memory_bytes["device_total"], "bytes"),
        ("capacity", s.memory_bytes["capacity"], "bytes"), ("fits", s.fits, ""),
    ]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def plan_step_rows(plan) -> list[dict]:
    """Where one optimizer step's time goes (seconds): compute (without the bubble), pipeline bubble,
    optimizer, exposed communication; and each collective before overlap."""
    s = plan.step
    rows = [{"part": "compute (micro-batches)", "seconds": s.compute_s - s.bubble_s},
            {"part": "pipeline bubble", "seconds": s.bubble_s},
            {"part": "optimizer step", "seconds": s.optimizer_s},
            {"part": "exposed communication", "seconds": s.exposed_comm_s}]
    rows += [{"part": f"{k} (before overlap)", "seconds": v} for k, v in s.comm_s.items()]
    return rows


def layout_rows(results: Iterable) -> list[dict]:
    out = []
    for r in results:
        d = r.to_dict()
        lay = d.pop("layout")
        out.append({**{k: lay[k] for k in ("dp", "tp", "pp", "ep", "zero", "micro_batch", "grad_checkpointing")},
                    "devices": d["num_devices"], "step_s": d["step_s"], "wall_clock_days": d["wall_clock_s"] / 86400,
                    "gpu_hours": d["gpu_hours"], "cost_usd": d["cost_usd"], "mfu": d["mfu"],
                    "device_total_GiB": d["device_total_bytes"] / GiB, "grad_accum": d["grad_accum"],
                    "fits": d["fits"]})
    return out


def scaling_rows(model, hardware, workload: dict, counts: Iterable[int], tp: int, pp: int, zero: int,
                 micro_batch: int, ckpt: bool, global_batch: int, pricing: dict, tokens=None, samples=None,
                 epochs: float = 1.0) -> list[dict]:
    """The same run on more devices (data parallel grows; tp and pp fixed): time, GPU-hours, cost."""
    from .plans import plan_training

    rows = []
    for n in counts:
        if n % (tp * pp):
            continue
        dp = n // (tp * pp)
        if micro_batch * dp > global_batch:
            continue
        p = plan_training(model, hardware, workload=workload, tokens=tokens, samples=samples, epochs=epochs,
                          global_batch=global_batch, pricing=pricing,
                          layout=dict(dp=dp, tp=tp, pp=pp, zero=zero if dp > 1 else 0, micro_batch=micro_batch,
                                      grad_checkpointing=ckpt))
        rows.append({"devices": n, "wall_clock_days": p.wall_clock_s / 86400, "gpu_hours": p.gpu_hours,
                     "cost_usd": p.cost["compute_usd"] + p.cost["storage_usd"], "mfu": p.step.mfu,
                     "fits": bool(p.step.fits), "step_s": p.step.step_s})
    return rows


def serving_rows(plan) -> list[dict]:
    return [{**asdict(p), "device_total_GiB": p.device_total_bytes / GiB} for p in plan.points]


def serving_summary_rows(plan) -> list[dict]:
    best = min((p for p in plan.points if p.fits), key=lambda p: p.usd_per_million_tokens, default=None)
    rows = [("tensor-parallel devices", plan.tp, ""), ("weights per device", plan.weights_bytes_per_device, "bytes"),
            ("KV cache per token", plan.kv_cache_bytes_per_token, "bytes"), ("largest batch that fits", plan.max_batch, ""),
            ("longest context that fits (batch 1)", plan.max_context, "tokens")]
    if best is not None:
        rows += [("cheapest batch that fits", best.batch, ""), ("its $ per million tokens", best.usd_per_million_tokens, "USD"),
                 ("its throughput", best.throughput_tokens_per_s, "tokens/s")]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


# ---- scenarios (costmodel.scenario / storage) <-> page state ----------------------------------

def scenario_from_state(state: Mapping[str, Any], name: str, notes: str = "") -> dict:
    """A scenario dict (costmodel/scenario.py schema) of the Estimate page's state."""
    hw = hardware_from_state(state)
    model = model_from_state(state)
    return {"name": name, "model": model, "hardware": hw.id if state["hw"] != CUSTOM_HARDWARE else hw.to_dict(),
            "workload": workload_from_state(state).to_dict(), "notes": notes}


def state_from_scenario(scenario: Mapping[str, Any]) -> dict[str, str]:
    """URL query parameters of the Estimate page that reproduce a saved scenario."""
    from .catalog import catalog

    st = dict(ESTIMATE_STATE)
    m = scenario["model"]
    if isinstance(m, str):
        st.update(source="preset", preset=m)
    else:
        st.update(source="paste", config=json.dumps(m, separators=(",", ":")))
    hw = scenario.get("hardware") or DEFAULT_HARDWARE
    if isinstance(hw, str):
        st["hw"] = hw
    elif hw.get("id") in catalog() and catalog()[hw["id"]].to_dict() == hw:
        st["hw"] = hw["id"]
    else:
        pf = hw.get("peak_flops_per_s", {})
        st.update(hw=CUSTOM_HARDWARE, hw_mem_gib=float(hw["memory_bytes"]) / GiB,
                  hw_bw_gbs=float(hw["memory_bandwidth_bytes_per_s"]) / 1e9,
                  hw_tflops16=float(pf.get("bf16", pf.get("fp16", pf.get("fp32", 1e12)))) / 1e12,
                  hw_tflops32=float(pf.get("fp32", 1e12)) / 1e12, hw_tdp_w=float(hw.get("tdp_w", 700.0)))
    w = scenario.get("workload") or {}
    for k in ("task", "batch", "seq", "image_size", "prompt", "generate", "precision", "optimizer", "lora_rank",
              "attention"):
        if k in w:
            st[k] = w[k]
    if "grad_checkpointing" in w:
        st["ckpt"] = bool(w["grad_checkpointing"])
    if "lora_targets" in w:
        st["lora_targets"] = ",".join(w["lora_targets"])
    return state_to_query(st, ESTIMATE_STATE)


def lesson_parallel(model: str, hardware: str, dp: int, tp: int, pp: int, zero: int, seq: int = 2048,
                    micro_batch: int = 1, global_batch: int | None = None) -> dict:
    """One optimizer step of ``model`` under a dp x tp x pp layout (costmodel.plans.plan_training for 1B tokens):
    per-device memory, the step's time split and the communication of each collective."""
    from .plans import plan_training

    gb = global_batch or micro_batch * dp * max(pp, 1) * 4
    plan = plan_training(model, hardware, workload={"seq": seq}, tokens=1e9, global_batch=gb,
                         layout=dict(dp=dp, tp=tp, pp=pp, zero=zero, micro_batch=micro_batch))
    return {"plan": plan, "memory": plan.step.memory_bytes, "step_s": plan.step.step_s,
            "comm": plan.step.comm_s, "exposed_comm_s": plan.step.exposed_comm_s, "bubble_s": plan.step.bubble_s,
            "devices": plan.num_devices, "global_batch": gb}
