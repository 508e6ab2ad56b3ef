"""Transformer family (decoder, MoE, encoder) against independent references:
published parameter counts, the real Hugging Face implementations built on the meta device,
torch's FlopCounterMode, and the tensors autograd really saves."""

import pytest
import torch
import transformers

import costmodel
from costmodel.models import get_preset, list_presets, load_model
from costmodel.specs.hf import spec_from_hf_config
from reference import counted_flops, param_count, saved_activation_bytes
from support import make_ctx

TRANSFORMER_PRESETS = [p.id for p in list_presets() if p.config.get("model_type") in
                       ("gpt2", "bert", "llama", "mistral", "mixtral")]


def ctx(b=1, s=8, training=True, eager=False, sb=4, cb=4, autocast=False):
    return make_ctx(b, s, training=training, stream_bytes=sb, compute_bytes=cb, autocast=autocast,
                    eager_attention=eager)


def ledger_params(spec):
    return sum(r.params * r.count for r in spec.ledger(ctx()))


def hf_model(cfg_dict, meta=True, attn="eager"):
    cfg = transformers.AutoConfig.for_model(**cfg_dict)
    cfg._attn_implementation = attn
    if cfg_dict["model_type"] == "mixtral":
        cfg._experts_implementation = "eager"
    cls = getattr(transformers, cfg_dict["architectures"][0])
    if meta:
        with torch.device("meta"):
            return cls(cfg)
    return cls(cfg)


@pytest.mark.parametrize("preset_id", TRANSFORMER_PRESETS)
def test_preset_params_exact(preset_id):
    # references: the preset's published count (model card / paper, in the preset file) and
    # sum(p.numel()) of the same architecture built by transformers on the meta device
    pre = get_preset(preset_id)
    ours = ledger_params(load_model(preset_id))
    assert ours == pre.published_params
    assert ours == param_count(hf_model(pre.config))


# Real config.json contents (abridged to the fields the architectures read) of public models.
REAL_CONFIGS = {
    # Qwen/Qwen2-0.5B config.json; model card: 0.49B params
    "qwen2-0.5b": dict(model_type="qwen2", architectures=["Qwen2ForCausalLM"], hidden_size=896,
                       intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                       vocab_size=151936, tie_word_embeddings=True, max_position_embeddings=131072,
                       sliding_window=131072, max_window_layers=24, use_sliding_window=False, hidden_act="silu"),
    # google/gemma-2b config.json; 2.51B params
    "gemma-2b": dict(model_type="gemma", architectures=["GemmaForCausalLM"], hidden_size=2048,
                     intermediate_size=16384, num_hidden_layers=18, num_attention_heads=8, num_key_value_heads=1,
                     head_dim=256, vocab_size=256000, hidden_act="gelu", hidden_activation="gelu_pytorch_tanh",
                     max_position_embeddings=8192),
    # google/gemma-2-2b config.json; 2.61B params
    "gemma-2-2b": dict(model_type="gemma2", architectures=["Gemma2ForCausalLM"], hidden_size=2304,
                       intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4,
                       head_dim=256, vocab_size=256000, hidden_activation="gelu_pytorch_tanh", sliding_window=4096,
                       max_position_embeddings=8192, query_pre_attn_scalar=256),
    # microsoft/Phi-3-mini-4k-instruct config.json; 3.82B params
    "phi-3-mini": dict(model_type="phi3", architectures=["Phi3ForCausalLM"], hidden_size=3072,
                       intermediate_size=8192, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=32,
                       vocab_size=32064, max_position_embeddings=4096, sliding_window=2047, hidden_act="silu",
                       tie_word_embeddings=False),
    # mistralai/Mistral-7B-v0.1 with its real sliding window
    "mistral-7b": get_preset("mistral-7b").config,
    # google-bert/bert-base-uncased for sequence classification with 3 labels
    "bert-cls": dict(model_type="bert", architectures=["BertForSequenceClassification"], hidden_size=768,
                     num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072, vocab_size=30522,
                     id2label={"0": "a", "1": "b", "2": "c"}),
}


@pytest.mark.parametrize("name", sorted(REAL_CONFIGS))
def test_real_config_params_exact(name):
    # reference: sum(p.numel()) of the transformers implementation of that config.json
    cfg = REAL_CONFIGS[name]
    ref_cfg = dict(cfg)
    if name == "bert-cls":
        ref_cfg["num_labels"] = 3
    assert ledger_params(spec_from_hf_config(cfg)) == param_count(hf_model(ref_cfg))


def test_published_counts_of_real_configs():
    # model cards: Qwen2-0.5B "0.49B", Gemma-2B "2.51B", Gemma-2-2B "2.61B", Phi-3-mini "3.8B"
    assert round(ledger_params(spec_from_hf_config(REAL_CONFIGS["qwen2-0.5b"])) / 1e9, 2) == 0.49
    assert round(ledger_params(spec_from_hf_config(REAL_CONFIGS["gemma-2b"])) / 1e9, 2) == 2.51
    assert round(ledger_params(spec_from_hf_config(REAL_CONFIGS["gemma-2-2b"])) / 1e9, 2) == 2.61
    assert round(ledger_params(spec_from_hf_config(REAL_CONFIGS["phi-3-mini"])) / 1e9, 1) == 3.8


def test_mixtral_active_params():
    # Jiang et al. 2024 (Mixtral of Experts): 46.7B total, 12.9B active (top-2 of 8 experts)
    from costmodel import estimate

    est = estimate("mixtral-8x7b", task="infer", batch=1, prompt=16, generate=1, precision="bf16")
    assert round(est.params.total / 1e9, 1) == 46.7
    assert round(est.params.active / 1e9, 1) == 12.9


@pytest.mark.parametrize("preset_id", ["gpt2", "llama-2-7b", "llama-3-8b", "mistral-7b", "bert-base"])
def test_forward_flops_match_flop_counter(preset_id):
    # reference: torch.utils.flop_counter.FlopCounterMode on the meta device (2 FLOPs per MAC),
    # eager attention so the score matmuls are visible to it
    pre = get_preset(preset_id)
    model = hf_model(pre.config)
    b, s = 2, 64
    ids = torch.zeros(b, s, dtype=torch.long, device="meta")
    # decoders need an explicit mask on meta; BERT's mask handling calls .item(), so it gets none
    kwargs = {} if pre.config["model_type"] == "bert" else {"attention_mask": torch.ones(b, s, dtype=torch.long,
                                                                                           device="meta")}
    ref = counted_flops(lambda: model(input_ids=ids, **kwargs))
    ours = sum(r.forward_flops * r.count for r in load_model(preset_id).ledger(ctx(b, s, eager=True)))
    assert ours == pytest.approx(ref, rel=0.01)


def test_moe_forward_flops_match_flop_counter():
    # a 2-layer Mixtral-shaped model on CPU (eager experts): each token runs top_k experts,
    # so FLOPs do not depend on the routing: T*k*3*2*h*f for the experts
    cfg = dict(model_type="mixtral", architectures=["MixtralForCausalLM"], hidden_size=64, intermediate_size=96,
               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=100,
               num_local_experts=4, num_experts_per_tok=2)
    model = hf_model(cfg, meta=False)
    ids = torch.randint(0, 100, (2, 16))
    ref = counted_flops(lambda: model(input_ids=ids))
    ours = sum(r.forward_flops * r.count for r in spec_from_hf_config(cfg).ledger(ctx(2, 16, eager=True)))
    assert ours == pytest.approx(ref, rel=0.01)


def test_attention_flops_hand_arithmetic():
    # Llama-2-7B, b=1, s=4096: per layer the score and weighted-sum matmuls are
    # 2 * (2*b*heads*s*s*head_dim) = 4 * 32 * 4096^2 * 128 = 274,877,906,944 FLOPs
    spec = load_model("llama-2-7b")
    rows = {r.name: r for r in spec.ledger(ctx(1, 4096))}
    assert rows["layers.*.attn.core"].forward_flops == 4 * 32 * 4096**2 * 128
    # and the projections follow 2*T*d_in*d_out: q_proj 2*4096*4096*4096
    assert rows["layers.*.attn.q_proj"].forward_flops == 2 * 4096**3


def test_gqa_attention_flops_where_flop_counter_fails():
    # FlopCounterMode's SDPA formula rejects GQA shapes (k/v with fewer heads), so check by hand:
    # Llama-3-8B (32 query heads, 8 KV heads, head_dim 128), b=1, s=2048 per layer:
    # scores 2*32*2048*2048*128 + weighted sum the same = 68,719,476,736 FLOPs: query heads count.
    spec = load_model("llama-3-8b")
    rows = {r.name: r for r in spec.ledger(ctx(1, 2048))}
    assert rows["layers.*.attn.core"].forward_flops == 2 * (2 * 32 * 2048 * 2048 * 128)
    # and k_proj is 4x narrower than q_proj (8 vs 32 heads)
    assert rows["layers.*.attn.k_proj"].params * 4 == rows["layers.*.attn.q_proj"].params


TINY = {
    "llama-gqa": (dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=128,
                       intermediate_size=344, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                       vocab_size=1000), "LlamaForCausalLM"),
    "gpt2": (dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=2, n_embd=128, n_head=4,
                  vocab_size=1000, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0), "GPT2LMHeadModel"),
    "bert-mlm": (dict(model_type="bert", architectures=["BertForMaskedLM"], hidden_size=128, num_hidden_layers=2,
                      num_attention_heads=4, intermediate_size=512, vocab_size=1000, hidden_dropout_prob=0.0,
                      attention_probs_dropout_prob=0.0), "BertForMaskedLM"),
}


@pytest.mark.parametrize("name,dtype", [("llama-gqa", torch.float32), ("llama-gqa", torch.bfloat16),
                                        ("gpt2", torch.float32), ("bert-mlm", torch.float32)])
def test_saved_activations_match_autograd(name, dtype):
    # reference: the distinct storages autograd saves for backward (saved_tensors_hooks) during a
    # real CPU training forward with the loss, eager attention; parameters excluded
    cfg, _ = TINY[name]
    torch.manual_seed(0)
    model = hf_model(cfg, meta=False).to(dtype).train()
    b, s = 2, 64
    ids = torch.randint(0, 1000, (b, s))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=ids), model.parameters())
    nbytes = 2 if dtype == torch.bfloat16 else 4
    rows = spec_from_hf_config(cfg).ledger(ctx(b, s, eager=True, sb=nbytes, cb=nbytes))
    ours = sum(r.activation_bytes * r.count for r in rows)
    assert ours == pytest.approx(ref, rel=0.01)


def test_saved_activations_fused_attention_llama():
    # fused SDPA (CPU flash kernel) keeps q, k, v, output and the fp32 logsumexp
    cfg, _ = TINY["llama-gqa"]
    torch.manual_seed(0)
    model = hf_model(cfg, meta=False, attn="sdpa").train()
    ids = torch.randint(0, 1000, (2, 64))
    ref = saved_activation_bytes(lambda: model(input_ids=ids, labels=ids), model.parameters())
    ours = sum(r.activation_bytes * r.count for r in spec_from_hf_config(cfg).ledger(ctx(2, 64)))
    assert ours == pytest.approx(ref, rel=0.01)


def test_saved_activations_autocast_llama():
    # torch.autocast: every linear saves a bf16 cast of its input and of its weight
    cfg, _ = TINY["llama-gqa"]
    torch.manual_seed(0)
    model = hf_model(cfg, meta=False).train()
    ids = torch.randint(0, 1000, (2, 64))

    def fwd():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(input_ids=ids, labels=ids)

    ref = saved_activation_bytes(fwd, model.parameters())
    rows = spec_from_hf_config(cfg).ledger(ctx(2, 64, eager=True, sb=4, cb=2, autocast=True))
    ours = sum(r.activation_bytes * r.count for r in rows) + 2 * sum(r.weight_cast_elems * r.count for r in rows)
    assert ours == pytest.approx(ref, rel=0.01)


def test_kv_heads_must_divide_heads():
    from costmodel.errors import InputError

    # 33 query heads cannot be grouped over 32 key/value heads
    cfg = dict(get_preset("llama-2-7b").config, num_attention_heads=33)
    with pytest.raises(InputError) as err:
        spec_from_hf_config(cfg)
    assert err.value.field == "model.kv_heads"
    # a width the heads do not divide, with no explicit head_dim
    with pytest.raises(InputError) as err:
        load_model({"model_type": "gpt2", "n_embd": 100, "n_head": 3, "n_layer": 1})
    assert err.value.field == "model.heads"


def test_unsupported_model_type_names_field():
    from costmodel.errors import InputError

    with pytest.raises(InputError) as err:
        spec_from_hf_config({"model_type": "falcon_mamba"})
    assert err.value.field == "config.model_type"
    assert "gpt2" in err.value.message


def test_sliding_window_caps_kv_cache():
    # Mistral-7B: window 4096 keys -> the KV cache stops growing past 4096 positions:
    # 2 (K,V) * 32 layers * 8 kv heads * 128 dims * 4096 positions * 2 bytes = 536,870,912 bytes per sequence
    from costmodel import estimate

    long = estimate("mistral-7b", task="infer", batch=1, prompt=16000, generate=0, precision="bf16")
    assert long.memory_bytes.kv_cache == 2 * 32 * 8 * 128 * 4096 * 2


def test_gpt2_with_untied_embeddings_counts_its_head():
    # found by the profiler's memory guard: the importer assumed GPT-2 always ties wte and lm_head; the reference
    # is transformers' GPT2LMHeadModel on the meta device with tie_word_embeddings=False (its own lm_head weight)
    import transformers

    cfg = dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=1000, n_positions=128,
               bos_token_id=0, eos_token_id=0, tie_word_embeddings=False)
    with torch.device("meta"):
        ref = param_count(transformers.AutoModelForCausalLM.from_config(transformers.AutoConfig.for_model(**cfg)))
    assert costmodel.estimate(cfg, task="train", batch=1, seq=16).params.total == ref == 236_288
    tied = costmodel.estimate({**cfg, "tie_word_embeddings": True}, task="train", batch=1, seq=16).params.total
    assert ref - tied == 1000 * 64  # the untied head's vocab x hidden weight
