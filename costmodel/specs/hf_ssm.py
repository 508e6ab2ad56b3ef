"""Importers of state-space and hybrid models into ``DecoderSpec``: mamba2 (pure Mamba-2 stacks) and
nemotron_h (NVIDIA Nemotron-H: Mamba-2, attention, MLP and MoE layers in the order of
``hybrid_override_pattern`` / ``layers_block_type``). Fields and defaults are those of transformers 5's
``Mamba2Config`` and ``NemotronHConfig``. docs/families/moe_mla_ssm.md states the formulas.
"""

from __future__ import annotations

from ..errors import InputError
from . import hf_fields as F
from .blocks import MLP, Attention, Mamba2, MoE
from .decoder import DecoderSpec
from .hf_modern import group_layers

SSM_NOTE = ("ssm_state", "SSM layers keep a fixed state per sequence instead of a growing KV cache: heads x head_dim x "
            "state (SSM) + conv channels x (kernel - 1) (engine, KV dtype; transformers keeps the SSM state in fp32 and "
            "kernel conv inputs); the scan FLOPs are the chunked SSD algorithm's (chunk_size positions per chunk)")


def mamba2(cfg: dict) -> DecoderSpec:
    """Mamba2ForCausalLM: per layer RMSNorm + Mamba-2 mixer (in_proj h -> 2*I + 2*G*N + H, depthwise conv over
    I + 2*G*N channels, dt_bias / A_log / D, gated RMSNorm, out_proj), I = expand * h = heads * head_dim."""
    L, h = F.req(cfg, "num_hidden_layers", default=64), F.req(cfg, "hidden_size", default=4096)
    heads, hd = F.req(cfg, "num_heads", default=128), F.req(cfg, "head_dim", default=64)
    expand = F.req(cfg, "expand", default=2)
    if expand * h != heads * hd:
        raise InputError("config.num_heads", f"num_heads x head_dim ({heads} x {hd}) must equal expand x hidden_size "
                         f"({expand} x {h}), as Mamba2Config requires")
    mixer = Mamba2(heads, hd, F.req(cfg, "state_size", default=128), F.req(cfg, "n_groups", default=8),
                   F.req(cfg, "conv_kernel", default=4), F.req(cfg, "chunk_size", default=256),
                   F.flag(cfg, "use_conv_bias", True), F.flag(cfg, "use_bias", False))
    blocks = group_layers([(mixer, None)] * L, ["mamba"] * L, norms=1)
    return DecoderSpec(name=F.name(cfg, "mamba2"), vocab_size=F.req(cfg, "vocab_size", default=32768), hidden=h,
                       blocks=blocks, tied_embeddings=F.flag(cfg, "tie_word_embeddings", False),
                       hf_model_type="mamba2", notes=(SSM_NOTE,))


PATTERN = {"M": "linear_attention", "E": "moe", "*": "full_attention", "-": "mlp"}
LEGACY = {"mamba": "linear_attention", "attention": "full_attention"}


def nemotron_h(cfg: dict) -> DecoderSpec:
    """NemotronHForCausalLM: each layer is RMSNorm + one of Mamba-2 ("M"), attention without positions ("*", no
    biases), a squared-ReLU MLP up -> down ("-"), or MoE ("E": non-gated squared-ReLU experts, a shared expert,
    optional latent projections, sigmoid router)."""
    types = F.str_list(cfg, "layers_block_type") or F.str_list(cfg, "layer_types")
    if types is None:
        pattern = cfg.get("hybrid_override_pattern")
        if pattern is None:
            types = ["linear_attention", "moe", "full_attention", "mlp"]
        elif not isinstance(pattern, str) or any(c not in PATTERN for c in pattern):
            raise InputError("config.hybrid_override_pattern", f"must be a string of M, *, - and E, got {pattern!r}")
        else:
            types = [PATTERN[c] for c in pattern]
    types = [LEGACY.get(t, t) for t in types]
    bad = sorted(set(types) - set(PATTERN.values()))
    if bad:
        raise InputError("config.layers_block_type", f"unknown layer types {bad}; use {', '.join(PATTERN.values())}")
    h = F.req(cfg, "hidden_size", default=4096)
    H = F.req(cfg, "num_attention_heads", default=32)
    kv = F.req(cfg, "num_key_value_heads", default=H)
    hd = F.req(cfg, "head_dim", "attention_head_dim", default=128)
    act = F.act(cfg.get("mlp_hidden_act", "relu2"), "config.mlp_hidden_act")
    mlp_bias = F.flag(cfg, "mlp_bias", False)
    ssm_dtype = cfg.get("mamba_ssm_cache_dtype", "float32")
    mixer = Mamba2(F.req(cfg, "mamba_num_heads", default=128), F.req(cfg, "mamba_head_dim", default=64),
                   F.req(cfg, "ssm_state_size", default=128), F.req(cfg, "n_groups", "mamba_n_groups", default=8),
                   F.req(cfg, "conv_kernel", "mamba_d_conv", default=4), F.req(cfg, "chunk_size", default=128),
                   F.flag(cfg, "use_conv_bias", True), F.flag(cfg, "use_bias", False),
                   state_bytes=4.0 if ssm_dtype == "float32" else 0.0)
    attn = Attention(H, kv, hd, rope=False)
    mlp = MLP(F.req(cfg, "intermediate_size", default=21504), gated=False, bias=mlp_bias, activation=act)
    latent = F.req(cfg, "moe_latent_size", default=0)
    moe = None
    if "moe" in types:
        moe = MoE(F.req(cfg, "n_routed_experts", "num_local_experts", default=8),
                  F.req(cfg, "num_experts_per_tok", default=2), F.req(cfg, "moe_intermediate_size", default=7688),
                  gated=False, activation=act,
                  shared_ffn=F.req(cfg, "moe_shared_expert_intermediate_size", default=7688), latent=latent,
                  proj_bias=mlp_bias)
    by_type = {"linear_attention": (mixer, None), "full_attention": (attn, None), "mlp": (None, mlp), "moe": (None, moe)}
    label = {"linear_attention": "mamba", "full_attention": "attention", "mlp": "mlp", "moe": "moe"}
    blocks = group_layers([by_type[t] for t in types], [label[t] for t in types], norms=1)
    notes = [SSM_NOTE, ("attention", "Nemotron-H attention layers use no positional encoding (no RoPE)")]
    if F.req(cfg, "num_nextn_predict_layers", default=0):
        notes.append(("mtp", "multi-token-prediction layers (num_nextn_predict_layers) are not built by transformers "
                      "and not counted"))
    return DecoderSpec(name=F.name(cfg, "nemotron_h"), vocab_size=F.req(cfg, "vocab_size", default=131072), hidden=h,
                       blocks=blocks, tied_embeddings=F.flag(cfg, "tie_word_embeddings", False),
                       hf_model_type="nemotron_h", notes=tuple(notes))


IMPORTERS = {"mamba2": mamba2, "nemotron_h": nemotron_h}
