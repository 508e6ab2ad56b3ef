"""The 2025-2026 decoder families (qwen3, qwen3_moe, qwen2_moe, olmoe, deepseek_v2/v3, gpt_oss, llama4(_text),
gemma3(_text), mamba2, nemotron_h) against independent references:
- parameter counts: sum(p.numel()) of the transformers implementation built on the meta device, for tiny
  configs and for the published config.json of real checkpoints (exact: 0 difference);
- FLOPs: torch.utils.flop_counter.FlopCounterMode over a real CPU training step (forward and backward) of tiny
  models with eager attention, and over one decode step after a prefill with transformers' DynamicCache;
- cache bytes: the tensors transformers' own DynamicCache holds after a prefill (KV, sliding windows,
  MLA latents, Mamba conv + SSM states);
- published totals and active counts (model cards / papers, rounded as published) and hand arithmetic.
"""

from __future__ import annotations

import warnings

import pytest

import costmodel
from costmodel.layers import Ctx
from costmodel.models import get_preset, load_model
from costmodel.specs.hf import spec_from_hf_config

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
from reference import param_count  # noqa: E402

T = dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2, vocab_size=128,
         intermediate_size=96)
MLA_T = dict(T, num_key_value_heads=4)  # MLA expands K/V per query head (num_key_value_heads = heads)
TINY = {
    "qwen3": dict(model_type="qwen3", head_dim=16, **T),
    "qwen3_moe": dict(model_type="qwen3_moe", head_dim=32, num_experts=4, num_experts_per_tok=2,
                      moe_intermediate_size=48, mlp_only_layers=[0], **T),
    "qwen2_moe": dict(model_type="qwen2_moe", num_experts=4, num_experts_per_tok=2, moe_intermediate_size=48,
                      shared_expert_intermediate_size=80, decoder_sparse_step=2, **T),
    "olmoe": dict(model_type="olmoe", num_experts=4, num_experts_per_tok=2, **T),
    "deepseek_v2": dict(model_type="deepseek_v2", n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                        n_shared_experts=2, first_k_dense_replace=1, q_lora_rank=None, kv_lora_rank=16,
                        qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, n_group=1, topk_group=1, **MLA_T),
    "deepseek_v3": dict(model_type="deepseek_v3", n_routed_experts=4, num_experts_per_tok=2, moe_intermediate_size=32,
                        n_shared_experts=1, first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16,
                        qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, n_group=1, topk_group=1, **MLA_T),
    "gpt_oss": dict(model_type="gpt_oss", head_dim=16, num_local_experts=4, num_experts_per_tok=2, sliding_window=4,
                    **T),
    # E = k: transformers' Llama4TextExperts runs every token through every expert (see the E > k test below)
    "llama4_text": dict(model_type="llama4_text", head_dim=16, num_local_experts=2, num_experts_per_tok=2,
                        intermediate_size_mlp=128, interleave_moe_layer_step=2, attention_chunk_size=4, **T),
    "gemma3_text": dict(model_type="gemma3_text", head_dim=16, sliding_window=4, sliding_window_pattern=2, **T),
    "mamba2": dict(model_type="mamba2", hidden_size=64, num_hidden_layers=2, num_heads=8, head_dim=16, state_size=16,
                   n_groups=2, vocab_size=128, chunk_size=8),
    "nemotron_h": dict(model_type="nemotron_h", hidden_size=64, hybrid_override_pattern="M-*E", num_attention_heads=4,
                       num_key_value_heads=2, head_dim=16, mamba_num_heads=8, mamba_head_dim=16, ssm_state_size=16,
                       n_groups=2, intermediate_size=96, n_routed_experts=4, num_experts_per_tok=2,
                       moe_intermediate_size=32, moe_shared_expert_intermediate_size=40, vocab_size=128, chunk_size=8),
}
MULTIMODAL = {
    "gemma3": dict(model_type="gemma3", architectures=["Gemma3ForConditionalGeneration"], mm_tokens_per_image=4,
                   text_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                    head_dim=16, intermediate_size=96, vocab_size=300, sliding_window=4),
                   vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                                      image_size=28, patch_size=14, vision_use_head=False)),
    "llama4": dict(model_type="llama4", architectures=["Llama4ForConditionalGeneration"],
                   text_config=dict(hidden_size=64, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                                    head_dim=16, intermediate_size=96, intermediate_size_mlp=128, vocab_size=128,
                                    num_local_experts=4, attention_chunk_size=4),
                   vision_config=dict(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2,
                                      image_size=28, patch_size=14, vision_output_dim=40, projector_input_dim=48,
                                      projector_output_dim=48)),
}
# published config.json of real checkpoints that are not presets (sources in the comments)
REAL = {
    # hf.co/meta-llama/Llama-4-Maverick-17B-128E: Scout's fields with 128 experts on every other layer, no qk norm
    "llama-4-maverick": dict(get_preset("llama-4-scout-17b-16e").config, text_config=dict(
        get_preset("llama-4-scout-17b-16e").config["text_config"], interleave_moe_layer_step=2,
        moe_layers=list(range(1, 48, 2)), num_local_experts=128, use_qk_norm=False, max_position_embeddings=1048576)),
    # hf.co/google/gemma-3-4b-it: text_config gives width, depth, MLP and window; heads from Gemma3TextConfig defaults
    "gemma-3-4b": dict(get_preset("gemma-3-27b").config, text_config={
        "hidden_size": 2560, "intermediate_size": 10240, "model_type": "gemma3_text", "num_hidden_layers": 34,
        "rope_scaling": {"factor": 8.0, "rope_type": "linear"}, "sliding_window": 1024}),
    # hf.co/allenai/OLMoE-1B-7B-0924
    "olmoe-1b-7b": dict(model_type="olmoe", architectures=["OlmoeForCausalLM"], hidden_size=2048, intermediate_size=1024,
                        num_attention_heads=16, num_key_value_heads=16, num_experts=64, num_experts_per_tok=8,
                        num_hidden_layers=16, vocab_size=50304, tie_word_embeddings=False),
    # hf.co/Qwen/Qwen1.5-MoE-A2.7B
    "qwen1.5-moe-a2.7b": dict(model_type="qwen2_moe", architectures=["Qwen2MoeForCausalLM"], hidden_size=2048,
                              intermediate_size=5632, moe_intermediate_size=1408, num_attention_heads=16,
                              num_key_value_heads=16, num_experts=60, num_experts_per_tok=4, num_hidden_layers=24,
                              shared_expert_intermediate_size=5632, vocab_size=151936, tie_word_embeddings=False),
    # hf.co/deepseek-ai/DeepSeek-V2-Lite: no q LoRA, 64 experts top-6, 2 shared, first layer dense
    "deepseek-v2-lite": dict(model_type="deepseek_v2", architectures=["DeepseekV2ForCausalLM"], hidden_size=2048,
                             intermediate_size=10944, kv_lora_rank=512, q_lora_rank=None, moe_intermediate_size=1408,
                             n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6, first_k_dense_replace=1,
                             num_attention_heads=16, num_key_value_heads=16, num_hidden_layers=27, qk_nope_head_dim=128,
                             qk_rope_head_dim=64, v_head_dim=128, vocab_size=102400, n_group=1, topk_group=1,
                             topk_method="greedy"),
}
PRESETS = ["qwen3-8b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3", "gpt-oss-20b", "gpt-oss-120b",
           "llama-4-scout-17b-16e", "gemma-3-27b", "mamba2-2.7b", "nemotron-h-8b"]


def hf_config(cfg: dict, attn: str = "eager"):
    clean = {k: v for k, v in cfg.items() if k not in ("architectures", "auto_map", "quantization_config")}
    if "attn_temperature_tuning" in clean.get("text_config", {}):  # an int 4 in Meta's config; bool in transformers 5
        clean["text_config"] = dict(clean["text_config"], attn_temperature_tuning=True)
    c = transformers.AutoConfig.for_model(**clean)
    c._attn_implementation = attn
    c._experts_implementation = "eager"  # the per-expert loop FlopCounterMode sees as k experts per token
    return c


def hf_model(cfg: dict, meta: bool = True):
    c = hf_config(cfg)
    cls = getattr(transformers, cfg["architectures"][0]) if "architectures" in cfg else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if meta:
            with torch.device("meta"):
                return cls(c) if cls else transformers.AutoModelForCausalLM.from_config(c)
        return cls(c) if cls else transformers.AutoModelForCausalLM.from_config(c)


def ctx(b=1, s=8, kv=None, training=False, nbytes=4, layout="engine"):
    return Ctx(batch=b, seq=s, kv_len=s if kv is None else kv, image_size=0, training=training, stream_bytes=nbytes,
               compute_bytes=nbytes, kv_bytes=nbytes, autocast=False, eager_attention=True, dropout=False,
               kv_layout=layout)


def params(spec) -> int:
    return sum(r.params * r.count for r in spec.ledger(ctx()))


def apart(spec, *skip) -> int:
    return sum(v for k, v in getattr(spec, "params_apart", ()) if k not in skip)


# ---- parameters -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TINY) + sorted(MULTIMODAL))
def test_tiny_params_equal_meta_build(name):
    # reference: sum(p.numel()) of the transformers model on the meta device; multimodal: text model + the
    # vision tower and projector counted apart
    cfg = TINY.get(name) or MULTIMODAL[name]
    spec = spec_from_hf_config(cfg)
    assert params(spec) + apart(spec) == param_count(hf_model(cfg))


@pytest.mark.parametrize("name", PRESETS + sorted(REAL))
def test_real_config_params_equal_meta_build(name):
    # reference: the published config.json built by transformers on the meta device (no memory used);
    # DeepSeek-V3's MTP module is not built by transformers and is reported apart
    cfg = get_preset(name).config if name in PRESETS else REAL[name]
    spec = spec_from_hf_config(cfg)
    ours = params(spec)
    assert ours + apart(spec, "mtp") == param_count(hf_model(cfg))
    if name in PRESETS:
        assert ours == get_preset(name).published_params


def estimate(model, **kw):
    return costmodel.estimate(model, task="infer", batch=1, prompt=16, generate=1, precision="bf16", **kw)


@pytest.mark.parametrize("name,total,active,active_no_emb", [
    # published figures in billions, as written (None: not published). Each must be within one unit of its last
    # published digit (published figures are rounded or truncated: Qwen's "3.3B" for 3.35B)
    ("qwen3-8b", "8.2", None, None),                # model card: 8.2B (6.95B non-embedding)
    ("qwen3-30b-a3b", "30.5", "3.3", None),         # model card: 30.5B total, 3.3B activated (embeddings included)
    ("qwen3-235b-a22b", "235", "22", None),         # model card: 235B total, 22B activated
    ("deepseek-v3", "671", "37", "36.6"),           # arXiv:2412.19437 671B / 37B; README_WEIGHTS 36.6B (no embedding)
    ("gpt-oss-20b", "20.9", None, "3.6"),           # model card: 20.9B total, 3.6B active (without the embedding)
    ("gpt-oss-120b", "116.8", None, "5.1"),         # model card: 116.8B total, 5.1B active
    ("llama-4-scout-17b-16e", None, "17", None),    # Meta: 17B active (109B total incl. vision: test below)
    ("gemma-3-27b", "27", None, None),              # Gemma 3 report: 27B (text 25.6B non-embedding + 1.4B embedding)
    ("mamba2-2.7b", "2.7", None, None),             # Mamba-2 paper: 2.7B
    ("nemotron-h-8b", "8", None, None),             # Nemotron-H paper: 8B
])
def test_published_totals_and_active(name, total, active, active_no_emb):
    est = estimate(name)

    def close(ours: int, published: str) -> bool:
        unit = 10.0 ** -(len(published.split(".")[1]) if "." in published else 0)
        return abs(ours / 1e9 - float(published)) < unit

    assert total is None or close(est.params.total, total)
    assert active is None or close(est.params.active, active)
    assert active_no_emb is None or close(est.params.active_without_embedding, active_no_emb)


def test_llama4_scout_total_with_vision_matches_published_109b():
    # Meta: 109B total = text model + vision tower + projector (params.apart)
    est = estimate("llama-4-scout-17b-16e")
    assert round((est.params.total + sum(est.params.apart.values())) / 1e9) == 109


def test_deepseek_v3_mtp_hand_arithmetic():
    # MTP module: enorm + hnorm (2 x 7168) + eh_proj (2 x 7168 x 7168) + one MLA + MoE decoder layer + final norm (7168);
    # the layer: the main model's MoE layers, (671,026,404,352 - 3 dense layers - embeddings/head/norm) / 58
    h = 7168
    est = estimate("deepseek-v3")
    spec = load_model("deepseek-v3")
    rows = spec.ledger(ctx())
    moe_layer = sum(r.params for r in rows if r.block == "layers.*(moe)")
    assert est.params.apart["mtp"] == 2 * h + 2 * h * h + moe_layer + h == 11_610_067_968
    assert est.params.total == 671_026_404_352  # + 58 x 256 router-bias floats (buffers) = 671,026,419,200 in the checkpoint


# ---- FLOPs ------------------------------------------------------------------------------------------------

B, S = 2, 16


def _train_step_flops(cfg):
    """(forward, backward, depthwise-conv backward) FLOPs of one real fp32 CPU training step, FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = hf_model(cfg, meta=False).train()
    ids = torch.randint(0, 128, (B, S))
    fwd, bwd = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with fwd:
        loss = model(input_ids=ids, labels=ids).loss
    with bwd:
        loss.backward()
    conv_bwd = sum(v for k, v in bwd.get_flop_counts().get("Global", {}).items() if "convolution_backward" in str(k))
    conv_fwd = sum(v for k, v in fwd.get_flop_counts().get("Global", {}).items() if "convolution" in str(k))
    return fwd.get_total_flops(), bwd.get_total_flops(), conv_fwd, conv_bwd


@pytest.mark.parametrize("name", sorted(TINY))
def test_training_flops_equal_flop_counter(name):
    # reference: FlopCounterMode over forward + backward of the transformers model (eager attention, eager
    # experts). Mamba's causal conv is depthwise (groups = channels): FlopCounterMode's conv backward formula drops
    # the groups in its weight-gradient term (it counts channels x the real work), so for the SSM families the
    # reference backward replaces its convolution_backward count with dX + dW = 2 x the conv's forward FLOPs
    cfg = TINY[name]
    fwd, bwd, conv_fwd, conv_bwd = _train_step_flops(cfg)
    if conv_bwd:
        bwd = bwd - conv_bwd + 2 * conv_fwd
    est = costmodel.estimate(dict(cfg), task="train", batch=B, seq=S, precision="fp32", attention="eager",
                             dropout=False)
    assert (est.flops.forward, est.flops.backward) == (fwd, bwd)


def test_llama4_dense_expert_flops_in_transformers_hand_arithmetic():
    # transformers' Llama4TextExperts multiplies every token by all E experts (bmm over E, zero-weighted when not
    # routed); costmodel counts the k routed experts. With E = 4, k = 1 on the 2 MoE layers of the tiny model:
    # FlopCounterMode - costmodel = (E - k) x T x 3 x h x f x 2 (forward) per MoE layer, T = B*S, h = 64, f = 96
    cfg = dict(TINY["llama4_text"], num_local_experts=4, num_experts_per_tok=1)
    fwd, _, _, _ = _train_step_flops(cfg)
    est = costmodel.estimate(dict(cfg), task="train", batch=B, seq=S, precision="fp32", attention="eager",
                             dropout=False)
    assert fwd - est.flops.forward == 2 * (4 - 1) * (B * S) * 3 * 64 * 96 * 2


def _cache_bytes(cache) -> int:
    n = 0
    for layer in cache.layers:
        for attr in ("keys", "values"):
            t = getattr(layer, attr, None)
            if isinstance(t, torch.Tensor):
                n += t.numel() * t.element_size()
        for attr in ("conv_states", "recurrent_states"):
            for t in (getattr(layer, attr, None) or {}).values():
                if isinstance(t, torch.Tensor):
                    n += t.numel() * t.element_size()
    return n


@pytest.mark.parametrize("name", sorted(TINY))
def test_hf_cache_bytes_and_decode_flops(name):
    # references: the tensors of transformers' DynamicCache after a prefill of 12 tokens (KV, sliding windows of
    # 4 keeping 3, MLA latents, Mamba conv + fp32 SSM states) and FlopCounterMode over the next decode step,
    # against costmodel's hf layout (kv_cache_layout="hf")
    from torch.utils.flop_counter import FlopCounterMode

    cfg, s = TINY[name], 12
    torch.manual_seed(0)
    c = hf_config(cfg)
    model = transformers.AutoModelForCausalLM.from_config(c).eval()
    ids = torch.randint(0, 128, (B, s))
    cache = transformers.DynamicCache(config=c)
    with torch.no_grad():
        model(input_ids=ids, cache=cache, use_cache=True)
    spec = spec_from_hf_config(cfg)
    assert sum(r.kv_cache_bytes * r.count for r in spec.ledger(ctx(B, s, layout="hf"))) == _cache_bytes(cache)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(input_ids=ids[:, :1], cache=cache, use_cache=True)
    step = spec.ledger(ctx(B, 1, kv=s + 1, layout="hf"))
    assert sum(r.forward_flops * r.count for r in step) == counter.get_total_flops()
    assert sum(r.kv_cache_bytes * r.count for r in step) == _cache_bytes(cache)
