"""Importers of the Hugging Face ``config.json`` of 2025-2026 decoder families into ``DecoderSpec``:
qwen3, qwen3_moe, qwen2_moe, olmoe, deepseek_v2, deepseek_v3, gpt_oss, llama4 / llama4_text,
gemma3 / gemma3_text. (State-space and hybrid models: specs/hf_ssm.py.)

Each importer reads the fields the transformers 5 modeling code reads, with the defaults of the
transformers config class, and rebuilds the per-layer pattern the config's ``__post_init__`` derives
(``layer_types``, ``mlp_only_layers`` / ``decoder_sparse_step``, ``first_k_dense_replace``, ``moe_layers``,
``no_rope_layers``). Configs are plain JSON data, never executed. docs/families/moe_mla_ssm.md.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import InputError
from ..layers import Ctx
from . import hf_fields as F
from . import vision_towers
from .blocks import MLA, MLP, Attention, Block, MoE, block_rows
from .decoder import DecoderSpec


def group_layers(layers: list[tuple], labels: list[str], norms: int = 2) -> tuple[Block, ...]:
    """Identical (mixer, ffn) layers into one ``Block`` each (first-occurrence order), so a 94-layer model
    has a few row groups. ``labels`` name each layer's kind for the row tags."""
    order: list[tuple] = []
    counts: dict[tuple, int] = {}
    names: dict[tuple, str] = {}
    for layer, label in zip(layers, labels):
        if layer not in counts:
            order.append(layer)
            counts[layer] = 0
            names[layer] = label
        counts[layer] += 1
    single = len(order) == 1
    return tuple(Block(count=counts[k], tag="layers.*" if single else f"layers.*({names[k]})", mixer=k[0], ffn=k[1],
                       norms=norms) for k in order)


def _int(cfg: dict, *keys: str, default=None) -> int:
    return F.req(cfg, *keys, default=default)


def _shape(cfg: dict, head_dim_default: int | None = None, defaults: dict | None = None
           ) -> tuple[int, int, int, int, int]:
    """(layers, hidden, heads, kv heads, head dim); ``defaults``: the config class's, for nested configs
    that omit fields (Gemma 3's text_config)."""
    d = defaults or {}
    L, h = _int(cfg, "num_hidden_layers", default=d.get("layers")), _int(cfg, "hidden_size", default=d.get("hidden"))
    H = _int(cfg, "num_attention_heads", default=d.get("heads"))
    if H < 1:
        raise InputError("config.num_attention_heads", f"must be at least 1, got {H}")
    kv = _int(cfg, "num_key_value_heads", default=d.get("kv_heads", H))
    hd = _int(cfg, "head_dim", default=head_dim_default if head_dim_default else h // H)
    return L, h, H, kv, hd


def _types(cfg: dict, L: int, default: list[str]) -> list[str]:
    types = F.str_list(cfg, "layer_types", L)
    return types if types is not None else default


def _spec(cfg: dict, default_name: str, h: int, blocks, name_cfg: dict | None = None, **kw) -> DecoderSpec:
    vocab = _int(cfg, "vocab_size", default=VOCAB_DEFAULTS.get(default_name))
    kw.setdefault("max_positions", F.req(cfg, "max_position_embeddings", default=0, hi=F.MAX_POSITIONS))
    return DecoderSpec(name=F.name(name_cfg or cfg, default_name), vocab_size=vocab, hidden=h,
                       blocks=blocks, tied_embeddings=F.flag(cfg, "tie_word_embeddings", kw.pop("tied_default", False)),
                       **kw)


# the config classes' vocab_size defaults (a nested text_config may omit it)
VOCAB_DEFAULTS = {"qwen3": 151936, "qwen3_moe": 151936, "qwen2_moe": 151936, "olmoe": 50304, "deepseek_v2": 102400,
                  "deepseek_v3": 129280, "gpt_oss": 201088, "llama4": 202048}


def _moe_layer(cfg: dict, i: int, L: int) -> bool:
    """Qwen2/3-MoE: an MoE block unless in ``mlp_only_layers``, every ``decoder_sparse_step``-th layer."""
    only = F.int_list(cfg, "mlp_only_layers") or []
    step = _int(cfg, "decoder_sparse_step", default=1)
    experts = _int(cfg, "num_experts", default=1)
    return i not in only and experts > 0 and step > 0 and (i + 1) % step == 0


def qwen3(cfg: dict) -> DecoderSpec:
    """Qwen3 (dense): Llama blocks + RMSNorm on each q and k head (head_dim weights each), no qkv bias."""
    L, h, H, kv, hd = _shape(cfg, head_dim_default=128)
    window = _int(cfg, "sliding_window", default=0) if F.flag(cfg, "use_sliding_window", False) else 0
    mwl = _int(cfg, "max_window_layers", default=28)
    types = _types(cfg, L, ["sliding_attention" if window and i >= mwl else "full_attention" for i in range(L)])
    bias = F.flag(cfg, "attention_bias", False)
    mlp = MLP(_int(cfg, "intermediate_size"), activation=F.act(cfg.get("hidden_act", "silu"), "config.hidden_act"))
    layers = [(Attention(H, kv, hd, bias, bias, "head", window if t == "sliding_attention" else 0), mlp) for t in types]
    return _spec(cfg, "qwen3", h, group_layers(layers, [t.split("_")[0] for t in types]), hf_model_type="qwen3")


def qwen3_moe(cfg: dict) -> DecoderSpec:
    """Qwen3-MoE: Qwen3 attention; routed experts (no shared expert) on the layers ``_moe_layer`` picks."""
    L, h, H, kv, hd = _shape(cfg)
    window = _int(cfg, "sliding_window", default=0) if F.flag(cfg, "use_sliding_window", False) else 0
    bias = F.flag(cfg, "attention_bias", False)
    act = F.act(cfg.get("hidden_act", "silu"), "config.hidden_act")
    attn = Attention(H, kv, hd, bias, bias, "head", window)
    moe = MoE(_int(cfg, "num_experts", default=128), _int(cfg, "num_experts_per_tok", default=8),
              _int(cfg, "moe_intermediate_size", default=768), activation=act)
    dense = MLP(_int(cfg, "intermediate_size", default=6144), activation=act)
    kinds = [_moe_layer(cfg, i, L) for i in range(L)]
    layers = [(attn, moe if k else dense) for k in kinds]
    return _spec(cfg, "qwen3_moe", h, group_layers(layers, ["moe" if k else "dense" for k in kinds]),
                 hf_model_type="qwen3_moe")


def qwen2_moe(cfg: dict) -> DecoderSpec:
    """Qwen2-MoE / Qwen1.5-MoE: q, k, v biases; routed experts plus one shared expert MLP scaled by
    sigmoid(Linear(h, 1))."""
    L, h, H, kv, hd = _shape(cfg)
    use_sw = F.flag(cfg, "use_sliding_window", False)
    window = _int(cfg, "sliding_window", default=0) if use_sw else 0
    mwl = _int(cfg, "max_window_layers", default=28)
    types = _types(cfg, L, ["sliding_attention" if (i + 1) % 2 and i < mwl and use_sw else "full_attention"
                            for i in range(L)])
    qkv_bias = F.flag(cfg, "qkv_bias", True)
    act = F.act(cfg.get("hidden_act", "silu"), "config.hidden_act")
    moe = MoE(_int(cfg, "num_experts", default=60), _int(cfg, "num_experts_per_tok", default=4),
              _int(cfg, "moe_intermediate_size", default=1408), activation=act,
              shared_ffn=_int(cfg, "shared_expert_intermediate_size", default=5632), shared_gate=True)
    dense = MLP(_int(cfg, "intermediate_size", default=5632), activation=act)
    layers, labels = [], []
    for i, t in enumerate(types):
        k = _moe_layer(cfg, i, L)
        layers.append((Attention(H, kv, hd, qkv_bias, False, "", window if t == "sliding_attention" else 0),
                       moe if k else dense))
        labels.append(("moe" if k else "dense") + (",sliding" if t == "sliding_attention" else ""))
    return _spec(cfg, "qwen2_moe", h, group_layers(layers, labels), hf_model_type="qwen2_moe")


def olmoe(cfg: dict) -> DecoderSpec:
    """OLMoE: RMSNorm over all q features (hidden) and all k features; every layer routed experts."""
    L, h, H, kv, hd = _shape(cfg)
    bias = F.flag(cfg, "attention_bias", False)
    moe = MoE(_int(cfg, "num_experts", default=64), _int(cfg, "num_experts_per_tok", default=8),
              _int(cfg, "intermediate_size", default=2048),
              activation=F.act(cfg.get("hidden_act", "silu"), "config.hidden_act"))
    layers = [(Attention(H, kv, hd, bias, bias, "full"), moe)] * L
    return _spec(cfg, "olmoe", h, group_layers(layers, ["moe"] * L), hf_model_type="olmoe")


def _deepseek_moe(cfg: dict, act: str) -> MoE:
    shared = _int(cfg, "n_shared_experts", default=0)
    ffn = _int(cfg, "moe_intermediate_size")
    return MoE(_int(cfg, "n_routed_experts", "num_experts", "num_local_experts"), _int(cfg, "num_experts_per_tok"),
               ffn, activation=act, shared_ffn=ffn * shared)


def deepseek(cfg: dict) -> DecoderSpec:
    """DeepSeek-V2 / V3 (and R1): MLA in every layer; a dense MLP in the first ``first_k_dense_replace`` layers,
    then routed experts + ``n_shared_experts`` shared experts (one MLP of n_shared x moe_intermediate_size).
    V3's multi-token-prediction module (``num_nextn_predict_layers``) is counted apart (``_mtp_params``)."""
    mt = cfg.get("model_type")
    L, h = _int(cfg, "num_hidden_layers"), _int(cfg, "hidden_size")
    act = F.act(cfg.get("hidden_act", "silu"), "config.hidden_act")
    mla = MLA(_int(cfg, "num_attention_heads"), _int(cfg, "q_lora_rank", default=0), _int(cfg, "kv_lora_rank"),
              _int(cfg, "qk_nope_head_dim"), _int(cfg, "qk_rope_head_dim"), _int(cfg, "v_head_dim"),
              F.flag(cfg, "attention_bias", False))
    k = min(_int(cfg, "first_k_dense_replace", default=0), L)
    moe = _deepseek_moe(cfg, act)
    dense = MLP(_int(cfg, "intermediate_size"), activation=act)
    layers = [(mla, dense)] * k + [(mla, moe)] * (L - k)
    blocks = group_layers(layers, ["dense"] * k + ["moe"] * (L - k))
    H, r, c, v = mla.heads, mla.qk_rope_head_dim, mla.kv_lora_rank, mla.v_head_dim
    decompressed = H * (mla.qk_nope_head_dim + r + v)
    notes = [("kv_cache_mla", f"MLA caches a {c}-dim latent + a {r}-dim RoPE key = {c + r} values per token per layer "
              f"(vLLM, SGLang, TensorRT-LLM; transformers 5 keeps the same latent and re-expands it with kv_b_proj "
              f"every step); a cache of decompressed per-head K and V (DeepSeek's own modeling_deepseek.py remote "
              f"code) would hold {H} x ({mla.qk_nope_head_dim + r} + {v}) = {decompressed} values per token per layer, "
              f"{decompressed / (c + r):.0f}x more: in bf16 {L * decompressed * 2:,} instead of {L * (c + r) * 2:,} "
              "bytes per token")]
    apart = []
    n_mtp = _int(cfg, "num_nextn_predict_layers", default=0) if mt == "deepseek_v3" else 0
    if n_mtp:
        mtp = n_mtp * _mtp_params(Block(1, "mtp", mla, moe), h)
        apart.append(("mtp", mtp))
        notes.append(("mtp", f"{n_mtp} multi-token-prediction module(s) (num_nextn_predict_layers): enorm + hnorm "
                      f"(2h), eh_proj (2h -> h), one MLA + MoE layer, a final norm (h); embedding and head shared "
                      f"with the main model: {mtp:,} params, reported in params.apart and not in params.total "
                      "(transformers does not build it; engines load it only for speculative decoding). Its router "
                      "bias e_score_correction_bias (E floats) is a buffer, as in transformers."))
    return _spec(cfg, mt, h, blocks, hf_model_type=mt, params_apart=tuple(apart), notes=tuple(notes))


def _block_params(block: Block, hidden: int) -> int:
    ctx = Ctx(batch=1, seq=1, kv_len=1, image_size=0, training=False, stream_bytes=2, compute_bytes=2, kv_bytes=2,
              autocast=False, eager_attention=False, dropout=False)
    return sum(r.params * r.count for r in block_rows(block, ctx, hidden, "rmsnorm"))


def _mtp_params(block: Block, hidden: int) -> int:
    """DeepSeek-V3 MTP module (arXiv:2412.19437 section 2.2; README_WEIGHTS.md of deepseek-ai/DeepSeek-V3):
    RMSNorm enorm and hnorm (h each), eh_proj Linear(2h, h, bias=False), one decoder layer like the main
    MoE layers, shared_head.norm (h); embedding and output head shared."""
    return 2 * hidden + 2 * hidden * hidden + _block_params(block, hidden) + hidden


def gpt_oss(cfg: dict) -> DecoderSpec:
    """gpt-oss: q, k, v, o biases; one learned attention-sink logit per head; alternating sliding (128) and full
    layers; every layer routed experts with biases (gate_up E x h x 2f + E x 2f, down E x f x h + E x h) and a
    router with bias; the released checkpoint stores the expert weights MXFP4."""
    L, h, H, kv, hd = _shape(cfg, head_dim_default=64)
    window = _int(cfg, "sliding_window", default=128)
    types = _types(cfg, L, ["sliding_attention" if i % 2 == 0 else "full_attention" for i in range(L)])
    bias = F.flag(cfg, "attention_bias", True)
    q = cfg.get("quantization_config")
    fmt = "mxfp4" if isinstance(q, dict) and q.get("quant_method") == "mxfp4" else ""
    moe = MoE(_int(cfg, "num_local_experts", "num_experts", default=128),
              _int(cfg, "num_experts_per_tok", "experts_per_token", default=4), _int(cfg, "intermediate_size"),
              activation="swiglu_oai", expert_bias=True, router_bias=True, weight_format=fmt)
    layers = [(Attention(H, kv, hd, bias, bias, "", window if t == "sliding_attention" else 0, sinks=True), moe)
              for t in types]
    notes = [("attention_sinks", f"one learned sink logit per head joins each softmax ({H} params per layer); sinks "
              "hold no cache entries and add no matmul FLOPs")]
    if fmt:
        notes.append(("weights", "expert weights as the checkpoint ships them: MXFP4 (4-bit + one E8M0 scale per 32, "
                      "0.53125 bytes per weight) for inference; attention, router, embeddings and head in the "
                      "workload precision; training dequantizes the experts"))
    return _spec(cfg, "gpt_oss", h, group_layers(layers, [t.split("_")[0] for t in types]), hf_model_type="gpt_oss",
                 notes=tuple(notes))


def llama4_text(cfg: dict, name_cfg: dict | None = None) -> DecoderSpec:
    """Llama 4 text model: MoE on ``moe_layers`` (k routed of E + one shared expert, sigmoid router without bias),
    dense MLPs of ``intermediate_size_mlp`` elsewhere; NoPE (no RoPE, full attention) every 4th layer, RoPE layers
    chunked (``attention_chunk_size``) with a weightless L2 q/k norm when ``use_qk_norm``."""
    L, h, H, kv, hd = _shape(cfg, head_dim_default=128, defaults=dict(layers=48, hidden=5120, heads=40, kv_heads=8))
    interval = _int(cfg, "no_rope_layer_interval", default=4)
    rope = F.int_list(cfg, "no_rope_layers", L) or [int((i + 1) % interval != 0) for i in range(L)]
    step = _int(cfg, "interleave_moe_layer_step", default=1)
    moe_layers = set(F.int_list(cfg, "moe_layers") or range(step - 1, L, step))
    chunk = _int(cfg, "attention_chunk_size", default=8192) if cfg.get("attention_chunk_size", 0) is not None else 0
    types = _types(cfg, L, ["chunked_attention" if r and chunk else "full_attention" for r in rope])
    bias = F.flag(cfg, "attention_bias", False)
    qk = F.flag(cfg, "use_qk_norm", True)
    act = F.act(cfg.get("hidden_act", "silu"), "config.hidden_act")
    ffn = _int(cfg, "intermediate_size", default=8192)
    moe = MoE(_int(cfg, "num_local_experts", default=16), _int(cfg, "num_experts_per_tok", default=1), ffn,
              activation=act, shared_ffn=ffn)
    dense = MLP(_int(cfg, "intermediate_size_mlp", default=16384), activation=act)
    layers, labels = [], []
    for i in range(L):
        chunked = types[i] == "chunked_attention"
        a = Attention(H, kv, hd, bias, bias, "l2" if qk and rope[i] else "", chunk if chunked else 0, chunked=chunked,
                      rope=bool(rope[i]))
        layers.append((a, moe if i in moe_layers else dense))
        labels.append(("chunked" if chunked else "NoPE" if not rope[i] else "full") + (",moe" if i in moe_layers
                                                                                       else ",dense"))
    notes = [("experts", "transformers' Llama4TextExperts multiplies every token by all E experts (unrouted ones "
              "weighted 0), so its eager FLOPs for the experts are E/k x these; costmodel counts the k routed "
              "experts a grouped-GEMM engine runs"),
             ("chunked_attention", f"chunked layers attend within {chunk}-token chunks; their cache is capped at one "
              "chunk (engine: the current chunk, at most the chunk size; transformers: chunk - 1 positions)")]
    return _spec(cfg, "llama4", h, group_layers(layers, labels), name_cfg=name_cfg, hf_model_type="llama4_text",
                 notes=tuple(notes))


def _nested(cfg: dict, key: str) -> dict:
    v = cfg.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise InputError(f"config.{key}", "must be a JSON object")
    return v


def llama4(cfg: dict) -> DecoderSpec:
    """Llama 4 multimodal checkpoint: the language model from ``text_config``; the vision tower and the
    projector counted apart (``params.apart``)."""
    text, vision = _nested(cfg, "text_config"), _nested(cfg, "vision_config")
    spec = llama4_text(text, name_cfg=cfg)
    h = spec.hidden
    apart = (("vision_tower", vision_towers.llama4_vision(vision)), ("multi_modal_projector",
                                                                      vision_towers.llama4_projector(vision, h)))
    note = ("vision", "text model only: the vision tower and projector are counted in params.apart, not in "
            "params.total, FLOPs or memory")
    return replace(spec, params_apart=apart, notes=spec.notes + (note,), hf_model_type="llama4",
                   tied_embeddings=F.flag(cfg, "tie_word_embeddings", False))


def gemma3_text(cfg: dict, name_cfg: dict | None = None, tied_default: bool = True) -> DecoderSpec:
    """Gemma 3 text: Gemma RMSNorm (1 + w) sandwich (4 per layer), RMSNorm q/k per head, sliding-window layers
    (``sliding_window``, 5 of every 6 by default: ``sliding_window_pattern``) and full layers, GeGLU MLP,
    tied embeddings."""
    L, h, H, kv, hd = _shape(cfg, head_dim_default=256, defaults=dict(layers=26, hidden=2304, heads=8, kv_heads=4))
    window = _int(cfg, "sliding_window", default=4096)
    if F.flag(cfg, "use_bidirectional_attention", False):
        window = window // 2 + 1  # as Gemma3TextConfig.__post_init__
    pattern = _int(cfg, "sliding_window_pattern", default=6)
    types = _types(cfg, L, ["sliding_attention" if (i + 1) % pattern else "full_attention" for i in range(L)])
    bias = F.flag(cfg, "attention_bias", False)
    mlp = MLP(_int(cfg, "intermediate_size", default=9216),
              activation=F.act(cfg.get("hidden_activation") or "gelu_pytorch_tanh", "config.hidden_activation"))
    layers = [(Attention(H, kv, hd, bias, bias, "head", window if t == "sliding_attention" else 0), mlp) for t in types]
    blocks = group_layers(layers, [t.split("_")[0] for t in types], norms=4)
    src = name_cfg or cfg
    return DecoderSpec(name=F.name(src, "gemma3"), vocab_size=_int(cfg, "vocab_size", default=262_208), hidden=h,
                       blocks=blocks, norm="gemma_rmsnorm",
                       tied_embeddings=F.flag(src, "tie_word_embeddings", tied_default), hf_model_type="gemma3_text",
                       # Gemma3TextConfig's default (transformers) when the checkpoint's text_config omits it
                       max_positions=F.req(cfg, "max_position_embeddings", default=131_072, hi=F.MAX_POSITIONS))


def gemma3(cfg: dict) -> DecoderSpec:
    """Gemma 3 multimodal checkpoint: the language model from ``text_config``; SigLIP vision tower and the
    multimodal projector counted apart."""
    if "text_config" not in cfg and "vision_config" not in cfg:
        return gemma3_text(cfg)  # a text-only checkpoint saved with model_type gemma3
    text, vision = _nested(cfg, "text_config"), _nested(cfg, "vision_config")
    spec = gemma3_text(text, name_cfg=cfg)
    apart = (("vision_tower", vision_towers.siglip_vision(vision)),
             ("multi_modal_projector", vision_towers.gemma3_projector(vision, spec.hidden)))
    note = ("vision", "text model only: the SigLIP vision tower and the projector are counted in params.apart, not "
            "in params.total, FLOPs or memory")
    return replace(spec, params_apart=apart, notes=(note,), hf_model_type="gemma3")


IMPORTERS = {
    "qwen3": qwen3, "qwen3_moe": qwen3_moe, "qwen2_moe": qwen2_moe, "olmoe": olmoe, "deepseek_v2": deepseek,
    "deepseek_v3": deepseek, "gpt_oss": gpt_oss, "llama4": llama4, "llama4_text": llama4_text, "gemma3": gemma3,
    "gemma3_text": gemma3_text,
}
