"""Page state <-> URL query parameters, and the model, hardware, workload and pricing a page state means.

One flat dict per page, every value a str / int / float / bool. The default's type is the type the URL value
is parsed to. Only values that differ from the default go into the URL (short links). No Streamlit here.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping

from ..api import estimate
from ..catalog import DEFAULT_HARDWARE, catalog, hardware_from_dict, load_hardware
from ..errors import InputError
from .. import limits
from ..safe_json import parse_config_text
from ..units import GiB
from ..workload import Workload, checkpointing

CUSTOM_HARDWARE = "custom"
MODEL_SOURCES = ("preset", "paste", "build", "layers")


MODEL_STATE = {
    "source": "preset",  # preset | paste (an uploaded or pasted config.json) | build (sliders)
    "preset": "gpt2",
    "config": "",  # JSON text of a pasted / uploaded config
    "layers": 12, "width": 768, "heads": 12, "kv_heads": 12, "ffn": 3072, "vocab": 32000,
    "experts": 0, "top_k": 2,
    # the layer builder (source "layers"): the input and one Keras-style layer per line (costmodel.ui.builder)
    "net_input": "28x28x1",
    "net_layers": "Conv2D 32 3x3 relu\nMaxPooling2D 2\nFlatten\nDense 128 relu\nDense 10 softmax",
}


HARDWARE_STATE = {
    "hw": DEFAULT_HARDWARE,  # catalog id, or "custom"
    "hw_mem_gib": 80.0, "hw_bw_gbs": 3350.0, "hw_tflops16": 989.0, "hw_tflops32": 67.0, "hw_tdp_w": 700.0,
    "hw_usd_h": 0.0,  # the custom device's own price per device-hour (0: no price)
    "usd_h": 0.0,  # your price per device-hour for any device, replacing the catalog's (0: the catalog's)
}


WORKLOAD_STATE = {
    "task": "train", "batch": 1, "seq": 1024, "image_size": 224, "prompt": 512, "generate": 128,
    "precision": "amp-bf16", "optimizer": "adamw", "ckpt": False, "ckpt_sel": False, "lora_rank": 0,
    "lora_targets": "q_proj,v_proj", "attention": "fused", "pruning": "none",
}


# the pages' pruning choice (inference only) -> workload sparsity and its pattern
PRUNING = {"none": (0.0, "unstructured"), "50% unstructured": (0.5, "unstructured"), "2:4": (0.5, "2:4")}


# Estimate's training method: a plain step, knowledge distillation (teacher forward + this model's step) or
# quantization-aware training (costmodel.techniques)
METHODS = {"standard": "standard training", "distill": "distillation (teacher forward + student step)",
           "qat": "quantization-aware training (fake-quantized weights and activations)"}
ESTIMATE_STATE = {**MODEL_STATE, **HARDWARE_STATE, **WORKLOAD_STATE, "method": "standard",
                  "teacher": "course-teacher-28", "qat_bits": 8}


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


# ---- one record per page: defaults that follow the model and the task, and what a change re-derives ----------

# training recipes that keep fp32 master weights -> the weights inference runs with
TRAIN_ONLY_PRECISIONS = {"amp-bf16": "bf16", "amp-fp16": "fp16"}
QUANT_PRECISIONS = ("int8", "int4")
MODEL_FIELDS = tuple(MODEL_STATE)


def spec_of_state(state: Mapping[str, Any]):
    """The model spec a page state names, or None when it cannot be read (the page shows that error)."""
    from ..models import load_model

    if not all(k in state for k in ("source", "preset")):
        return None
    try:
        return load_model(model_from_state(state))
    except (InputError, KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError):
        return None


def checkpointing_from_state(state: Mapping[str, Any]):
    """The page's two boxes as one setting: off, full (True) or "selective" (per op, the second box)."""
    if not state.get("ckpt"):
        return False
    return "selective" if state.get("ckpt_sel") else True


def supports_selective_checkpointing(spec) -> bool:
    """Whether per-op selective checkpointing is priced for this model (attention + dense MLP blocks:
    ``ledger.selective_checkpoint`` names no other kind of row)."""
    from ..ledger import make_ctx, selective_checkpoint_of

    if not supports_checkpointing(spec):
        return False
    return not selective_checkpoint_of(spec, make_ctx(spec, Workload(batch=1, seq=16), "train"))[2]


def supports_checkpointing(spec) -> bool:
    """Whether the estimator models gradient checkpointing for this family (a spec that says what one block
    keeps: transformers and ViT)."""
    from ..specs.base import ModelSpec

    return type(spec).checkpoint_bytes is not ModelSpec.checkpoint_bytes


def effective_defaults(state: Mapping[str, Any], defaults: Mapping[str, Any], spec=None) -> dict:
    """The page's defaults in the context of ``state``: inference takes bf16 (fp16) weights where training
    defaults to amp-bf16 (amp-fp16); the sequence default stays within the model's context length (and is a
    Keras text model's own padded length); the image default is a fixed-size net's input; the prompt default
    leaves room for the generated tokens. A value equal to its effective default is left out of the URL."""
    d = dict(defaults)
    if "task" in d and "precision" in d and state.get("task", d["task"]) == "infer" \
            and d["precision"] in TRAIN_ONLY_PRECISIONS:
        d["precision"] = TRAIN_ONLY_PRECISIONS[d["precision"]]
    if spec is not None:
        if "seq" in d and isinstance(d["seq"], int):
            d["seq"] = limits.default_seq(spec, d["seq"])
        if "image_size" in d and isinstance(d["image_size"], int):
            d["image_size"] = limits.default_image_size(spec, d["image_size"])
        lim = limits.model_limits(spec)
        if lim.max_positions and "prompt" in d and "generate" in d and getattr(spec, "generative", False):
            gen = state.get("generate", d["generate"])
            if isinstance(gen, int) and d["prompt"] + gen > lim.max_positions:
                d["prompt"] = max(1, lim.max_positions - gen)
    return d


def derive(state: dict, prev: Mapping[str, Any] | None, changed: set, defaults: Mapping[str, Any], spec=None,
           prev_spec=None) -> list[str]:
    """Re-derive the fields that depend on the model and the task after the user changed ``changed`` (in
    place); returns one sentence per value it changed that the user had set. Rules:

    - a field that held its effective default keeps holding it when the context changes (GPT-2 -> seq 1,024;
      ResNet-50's image 224 after the 28x28 CNN's 28; amp-bf16 -> bf16 for inference);
    - inference never runs a training recipe: amp-bf16 -> bf16, amp-fp16 -> fp16 weights;
    - training int8 / int4 weights needs LoRA (QLoRA): back to amp-bf16 when no LoRA rank is set;
    - values beyond what the model takes (positions, a fixed input size) are brought within it.
    Fields nobody changed and no rule touches keep their values, shown or not (a hidden field is still
    the page's state, not reset by a widget that disappeared)."""
    notes: list[str] = []
    new_eff = effective_defaults(state, defaults, spec)
    if prev is not None:
        old_eff = effective_defaults(prev, defaults, prev_spec if prev_spec is not None else spec)
        for f in defaults:
            if f in changed or f not in prev or f not in state:
                continue
            if prev[f] == old_eff.get(f) and state[f] == prev[f] and new_eff[f] != old_eff.get(f):
                state[f] = new_eff[f]
                if f == "precision":
                    notes.append(f"precision: {prev[f]} -> {new_eff[f]}, the default for "
                                 f"{'inference' if state.get('task') == 'infer' else 'training'}"
                                 + (" (amp-bf16 keeps fp32 weights: a training recipe)" if new_eff[f] == "bf16" else ""))
    if "task" in state and "precision" in state:
        if state["task"] == "infer" and state["precision"] in TRAIN_ONLY_PRECISIONS:
            new = TRAIN_ONLY_PRECISIONS[state["precision"]]
            notes.append(f"precision: {state['precision']} is a training recipe (fp32 master weights); inference "
                         f"runs with {new} weights")
            state["precision"] = new
        if state["task"] == "train" and state["precision"] in QUANT_PRECISIONS and not state.get("lora_rank") \
                and prev is not None and prev.get("task") == "infer":
            notes.append(f"precision: {state['precision']} weights are frozen (training them needs LoRA: QLoRA); "
                         f"training uses {defaults['precision']}")
            state["precision"] = defaults["precision"]
    if spec is not None:
        generation = state.get("task") == "infer" and getattr(spec, "generative", False)
        shown = {"prompt", "generate", "image_size"} if generation else {"seq", "image_size"}
        for field, old, new in limits.clamp_state(spec, state):
            if field not in shown:  # a hidden field brought within the limit: nothing to tell
                continue
            lim = limits.model_limits(spec)
            why = (f"{lim.model} takes at most {lim.max_positions:,} positions" if field != "image_size"
                   else f"{lim.model} is built for {lim.image_hw[0]}x{lim.image_hw[1]} inputs")
            notes.append(f"{field}: {old:,} -> {new:,} ({why})")
    return notes


def state_to_query(state: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, str]:
    """URL query parameters for ``state``: only the keys whose value differs from the default."""
    out = {}
    for key, default in defaults.items():
        if key in state and state[key] != default:
            out[key] = _fmt(state[key])
    return out


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
    if src == "layers":
        from .builder import config_from_text

        return config_from_text(state.get("net_input", ""), state.get("net_layers", ""))
    raise InputError("model.source", f"must be one of {', '.join(MODEL_SOURCES)}, got {src!r}")


def model_label(state: Mapping[str, Any]) -> str:
    if state["source"] == "preset":
        return state["preset"]
    if state["source"] == "build":
        return f"custom {state['layers']}x{state['width']}"
    if state["source"] == "layers":
        return "layer builder"
    return "pasted config"


def custom_hardware(mem_gib: float, bw_gb_s: float, tflops16: float, tflops32: float, tdp_w: float = 700.0,
                    usd_per_device_hour: float = 0.0):
    """A ``Hardware`` from the page's custom inputs (GiB, GB/s, dense TFLOP/s, watts, USD per device-hour; 0 = no
    price), validated by the catalog's own schema. Interconnect figures are the H100 SXM catalog's (they do not
    affect one device)."""
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
        **({"usd_per_device_hour": float(usd_per_device_hour)} if usd_per_device_hour else {}),
    })


def hardware_from_state(state: Mapping[str, Any]):
    if state["hw"] == CUSTOM_HARDWARE:
        return custom_hardware(state["hw_mem_gib"], state["hw_bw_gbs"], state["hw_tflops16"], state["hw_tflops32"],
                               state["hw_tdp_w"], float(state.get("hw_usd_h") or 0.0))
    return load_hardware(state["hw"])


def workload_from_state(state: Mapping[str, Any]):
    targets = tuple(t.strip() for t in str(state["lora_targets"]).split(",") if t.strip())
    pruning = state.get("pruning", "none")
    if pruning not in PRUNING:
        raise InputError("pruning", f"must be one of {', '.join(PRUNING)}, got {pruning!r}")
    sparsity, pattern = PRUNING[pruning] if state["task"] == "infer" else PRUNING["none"]
    train = state["task"] == "train"  # the training-only widgets are hidden for inference: their values are unused
    return Workload(task=state["task"], batch=state["batch"], seq=state["seq"], image_size=state["image_size"],
                    prompt=state["prompt"], generate=state["generate"], precision=state["precision"],
                    optimizer=state["optimizer"] if train else WORKLOAD_STATE["optimizer"],
                    grad_checkpointing=checkpointing_from_state(state) if train else False,
                    lora_rank=state["lora_rank"] if train else 0, lora_targets=targets, attention=state["attention"],
                    sparsity=sparsity, sparsity_pattern=pattern)


def estimate_from_state(state: Mapping[str, Any], **overrides):
    """``costmodel.estimate`` for a page state; ``overrides`` replace workload fields. Read in the page's
    order (model, hardware, workload), so both report the same first error."""
    model = model_from_state(state)
    hw = hardware_from_state(state)
    w = workload_from_state(state)
    if overrides:
        w = w.with_(**overrides)
        w = type(w).from_dict(w.to_dict())  # re-validate
    return estimate(model, hardware=hw, workload=w, pricing=your_price(state))


def your_price(state: Mapping[str, Any]) -> dict | None:
    """``estimate(..., pricing=)`` for a page's "your price" box: the negotiated $/device-hour, or None (the
    catalog's)."""
    price = float(state.get("usd_h") or 0.0)
    return {"usd_per_device_hour": price} if price > 0 else None


def pricing_from_state(state: Mapping[str, Any]) -> dict:
    """Keyword arguments of ``costmodel.costs.cost_breakdown`` from a page's pricing widgets (``usd_h`` > 0: your
    price per device-hour replaces the catalog's)."""
    out = {"provider": state.get("provider") or None, "tier": state.get("tier", "on-demand"),
           "region": state.get("region", "world"), "utilization": float(state.get("utilization", 1.0))}
    if float(state.get("usd_h") or 0.0) > 0:
        out["usd_per_device_hour"] = float(state["usd_h"])
    return out


def scenario_from_state(state: Mapping[str, Any], name: str, notes: str = "") -> dict:
    """A scenario dict (costmodel/scenario.py schema) of the Estimate page's state."""
    hw = hardware_from_state(state)
    model = model_from_state(state)
    return {"name": name, "model": model, "hardware": hw.id if state["hw"] != CUSTOM_HARDWARE else hw.to_dict(),
            "workload": workload_from_state(state).to_dict(), "notes": notes}


def state_from_scenario(scenario: Mapping[str, Any]) -> dict[str, str]:
    """URL query parameters of the Estimate page that reproduce a saved scenario."""
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
        mode = checkpointing(w["grad_checkpointing"])
        st["ckpt"], st["ckpt_sel"] = bool(mode), mode == "selective"
    if "lora_targets" in w:
        st["lora_targets"] = ",".join(w["lora_targets"])
    return state_to_query(st, ESTIMATE_STATE)
