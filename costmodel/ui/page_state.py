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
from ..safe_json import parse_config_text
from ..units import GiB
from ..workload import Workload

CUSTOM_HARDWARE = "custom"
MODEL_SOURCES = ("preset", "paste", "build")


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
    if state["hw"] == CUSTOM_HARDWARE:
        return custom_hardware(state["hw_mem_gib"], state["hw_bw_gbs"], state["hw_tflops16"], state["hw_tflops32"],
                               state["hw_tdp_w"])
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
                    grad_checkpointing=bool(state["ckpt"]) and train,
                    lora_rank=state["lora_rank"] if train else 0, lora_targets=targets, attention=state["attention"],
                    sparsity=sparsity, sparsity_pattern=pattern)


def estimate_from_state(state: Mapping[str, Any], **overrides):
    """``costmodel.estimate`` for a page state; ``overrides`` replace workload fields."""
    w = workload_from_state(state)
    if overrides:
        w = w.with_(**overrides)
        w = type(w).from_dict(w.to_dict())  # re-validate
    return estimate(model_from_state(state), hardware=hardware_from_state(state), workload=w)


def pricing_from_state(state: Mapping[str, Any]) -> dict:
    """Keyword arguments of ``costmodel.costs.cost_breakdown`` from a page's pricing widgets."""
    return {"provider": state.get("provider") or None, "tier": state.get("tier", "on-demand"),
            "region": state.get("region", "world"), "utilization": float(state.get("utilization", 1.0))}


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
        st["ckpt"] = bool(w["grad_checkpointing"])
    if "lora_targets" in w:
        st["lora_targets"] = ",".join(w["lora_targets"])
    return state_to_query(st, ESTIMATE_STATE)
