"""Import a Hugging Face ``config.json`` (parsed as plain JSON data, never executed) into a spec.

Supported ``model_type``: gpt2, bert, llama, mistral, mixtral, qwen2, gemma, gemma2, phi3, t5, vit,
resnet (this module and the family modules), qwen3, qwen3_moe, qwen2_moe, olmoe, deepseek_v2, deepseek_v3,
gpt_oss, llama4, llama4_text, gemma3, gemma3_text (specs/hf_modern.py), mamba2, nemotron_h (specs/hf_ssm.py).
Any other type transformers registers: exact parameters from a meta-device build, the rest from a generic
decoder approximation (specs/generic.py, torch imported only then). Anything else is rejected naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from ..safe_json import read_json_file as _read_json_file
from ..errors import InputError
from .base import ModelSpec
from .encdec import t5_from_hf
from .hf_fields import act as _act
from .hf_fields import name as _name
from .hf_fields import req as _req
from .hf_modern import IMPORTERS as MODERN_IMPORTERS
from .hf_ssm import IMPORTERS as SSM_IMPORTERS
from .resnet import resnet_from_hf
from .transformer import TransformerSpec
from .vit import vit_from_hf

MAX_CONFIG_BYTES = 1_000_000
from .hf_fields import MAX_POSITIONS


def _gpt2(cfg: dict) -> TransformerSpec:
    h = _req(cfg, "n_embd", "hidden_size", default=768)
    return TransformerSpec(
        name=_name(cfg, "gpt2"), vocab_size=_req(cfg, "vocab_size", default=50257), hidden=h,
        layers=_req(cfg, "n_layer", "num_hidden_layers", default=12), heads=_req(cfg, "n_head", default=12),
        ffn=_req(cfg, "n_inner", default=4 * h), gated_mlp=False,
        activation=_act(cfg.get("activation_function", "gelu_new"), "config.activation_function"),
        norm="layernorm", norm_bias=True, qkv_bias=True, out_bias=True, mlp_bias=True, fused_qkv=True,
        positions="learned", max_positions=_req(cfg, "n_positions", default=1024, hi=MAX_POSITIONS), tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
        hidden_dropout=_req(cfg, "resid_pdrop", default=0.1, kind=float),
        attention_dropout=_req(cfg, "attn_pdrop", default=0.1, kind=float),
        module_names=("c_attn", "c_attn", "c_attn", "c_proj", "c_fc", "c_fc", "c_proj"),
    )


def _llama_like(cfg: dict, **overrides) -> TransformerSpec:
    h = _req(cfg, "hidden_size")
    heads = _req(cfg, "num_attention_heads")
    base = dict(
        name=_name(cfg, cfg.get("model_type", "llama")), vocab_size=_req(cfg, "vocab_size"), hidden=h,
        layers=_req(cfg, "num_hidden_layers"), heads=heads,
        kv_heads=_req(cfg, "num_key_value_heads", default=heads, lo=1),
        head_dim=_req(cfg, "head_dim", default=h // heads if heads else 0), ffn=_req(cfg, "intermediate_size"),
        gated_mlp=True, activation=_act(cfg.get("hidden_act", cfg.get("hidden_activation", "silu")), "config.hidden_act"),
        norm="rmsnorm", qkv_bias=bool(cfg.get("attention_bias", False)), out_bias=bool(cfg.get("attention_bias", False)),
        mlp_bias=bool(cfg.get("mlp_bias", False)), positions="rotary",
        max_positions=_req(cfg, "max_position_embeddings", default=4096, hi=MAX_POSITIONS),
        tied_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        attention_dropout=_req(cfg, "attention_dropout", default=0.0, kind=float),
    )
    base.update(overrides)
    return TransformerSpec(**base)


def _llama(cfg: dict) -> TransformerSpec:
    return _llama_like(cfg)


def _mistral(cfg: dict) -> TransformerSpec:
    window = _req(cfg, "sliding_window", default=0, hi=MAX_POSITIONS)
    return _llama_like(cfg, sliding_window=window, sliding_layers=_req(cfg, "num_hidden_layers") if window else 0)


def _qwen2(cfg: dict) -> TransformerSpec:
    # Qwen2: biases on q, k, v only; sliding window only when use_sliding_window
    layers = _req(cfg, "num_hidden_layers")
    window = _req(cfg, "sliding_window", default=0, hi=MAX_POSITIONS) if cfg.get("use_sliding_window") else 0
    n_full = min(_req(cfg, "max_window_layers", default=layers), layers) if window else layers
    return _llama_like(cfg, qkv_bias=True, out_bias=False, sliding_window=window,
                       sliding_layers=(layers - n_full) if window else 0)


def _gemma(cfg: dict) -> TransformerSpec:
    return _llama_like(cfg, norm="gemma_rmsnorm", tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                       activation=_act(cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh",
                                       "config.hidden_activation"))


def _gemma2(cfg: dict) -> TransformerSpec:
    layers = _req(cfg, "num_hidden_layers")
    window = _req(cfg, "sliding_window", default=0, hi=MAX_POSITIONS)
    types = cfg.get("layer_types")
    n_sliding = sum(1 for t in types if t == "sliding_attention") if isinstance(types, list) else (layers + 1) // 2
    return _llama_like(cfg, norm="gemma_rmsnorm", norms_per_block=4,
                       tied_embeddings=bool(cfg.get("tie_word_embeddings", True)),
                       activation=_act(cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh",
                                       "config.hidden_activation"),
                       sliding_window=window, sliding_layers=n_sliding if window else 0)


def _phi3(cfg: dict) -> TransformerSpec:
    window = _req(cfg, "sliding_window", default=0, hi=MAX_POSITIONS)
    return _llama_like(cfg, fused_qkv=True, fused_gate_up=True, sliding_window=window,
                       sliding_layers=_req(cfg, "num_hidden_layers") if window else 0,
                       hidden_dropout=_req(cfg, "resid_pdrop", default=0.0, kind=float),
                       module_names=("qkv_proj", "qkv_proj", "qkv_proj", "o_proj", "gate_up_proj", "gate_up_proj",
                                     "down_proj"))


def _mixtral(cfg: dict) -> TransformerSpec:
    window = _req(cfg, "sliding_window", default=0, hi=MAX_POSITIONS)
    return _llama_like(cfg, num_experts=_req(cfg, "num_local_experts", lo=1),
                       top_k=_req(cfg, "num_experts_per_tok", lo=1),
                       sliding_window=window, sliding_layers=_req(cfg, "num_hidden_layers") if window else 0)


BERT_HEADS = {
    "BertModel": dict(pooler=True, head="none"),
    "BertForMaskedLM": dict(pooler=False, head="mlm"),
    "BertForPreTraining": dict(pooler=True, head="mlm", cls_labels=2),
    "BertForSequenceClassification": dict(pooler=True, head="none"),
}


def _bert(cfg: dict) -> TransformerSpec:
    arch = (cfg.get("architectures") or ["BertModel"])[0]
    if arch not in BERT_HEADS:
        raise InputError("config.architectures", f"{arch!r} is not supported for bert; use one of {', '.join(BERT_HEADS)}")
    head = dict(BERT_HEADS[arch])
    if arch == "BertForSequenceClassification":
        head["cls_labels"] = len(cfg.get("id2label") or {}) or 2
    h = _req(cfg, "hidden_size", default=768)
    return TransformerSpec(
        name=_name(cfg, "bert"), vocab_size=_req(cfg, "vocab_size", default=30522), hidden=h,
        layers=_req(cfg, "num_hidden_layers", default=12), heads=_req(cfg, "num_attention_heads", default=12),
        ffn=_req(cfg, "intermediate_size", default=3072), gated_mlp=False,
        activation=_act(cfg.get("hidden_act", "gelu"), "config.hidden_act"), norm="layernorm", norm_bias=True,
        qkv_bias=True, out_bias=True, mlp_bias=True, positions="learned",
        max_positions=_req(cfg, "max_position_embeddings", default=512, hi=MAX_POSITIONS), tied_embeddings=True,
        causal=False,
        post_norm=True, final_norm=False, type_vocab=_req(cfg, "type_vocab_size", default=2), embed_norm=True,
        hidden_dropout=_req(cfg, "hidden_dropout_prob", default=0.1, kind=float),
        attention_dropout=_req(cfg, "attention_probs_dropout_prob", default=0.1, kind=float),
        module_names=("query", "key", "value", "attention.output.dense", "intermediate.dense", "intermediate.dense",
                      "output.dense"),
        **head,
    )


# model_type -> importer
IMPORTERS: dict[str, Callable[[dict], ModelSpec]] = {
    "gpt2": _gpt2,
    "bert": _bert,
    "llama": _llama,
    "mistral": _mistral,
    "mixtral": _mixtral,
    "qwen2": _qwen2,
    "gemma": _gemma,
    "gemma2": _gemma2,
    "phi3": _phi3,
    "t5": t5_from_hf,
    "vit": vit_from_hf,
    "resnet": resnet_from_hf,
    **MODERN_IMPORTERS,
    **SSM_IMPORTERS,
}


def spec_from_hf_config(cfg: dict) -> ModelSpec:
    if not isinstance(cfg, dict):
        raise InputError("config", "must be a JSON object (a Hugging Face config.json)")
    mt = cfg.get("model_type")
    if not isinstance(mt, str) or not mt:
        raise InputError("config.model_type", f"is required, as text; supported: {', '.join(IMPORTERS)}")
    if mt not in IMPORTERS:
        from .generic import generic_from_hf  # imports torch/transformers, only for such configs

        return generic_from_hf(cfg, tuple(IMPORTERS))
    imp = IMPORTERS[mt]
    try:
        return imp(cfg)
    except InputError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError, ArithmeticError) as exc:
        # malformed values inside the config: the user's input, not our crash
        raise InputError("config", f"could not read this {mt} config ({type(exc).__name__}: {str(exc)[:200]})") from None


def read_json_file(path: str | Path, what: str = "model") -> dict:
    """Read a JSON file as data through ``costmodel.safe_json`` (regular file, size, depth, numbers, duplicate
    keys, Unicode; never executes anything)."""
    return _read_json_file(path, MAX_CONFIG_BYTES, field=what)
