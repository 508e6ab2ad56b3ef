"""Model and hardware descriptions shared by the published-serving truth base
(benchmarks/published_serving_build.py writes benchmarks/published_serving.json from them).

Config dicts carry Hugging Face config.json field names and the published values.  Models whose
model_type costmodel cannot import yet (qwen3_moe, llama4_text, deepseek_v3, gpt_oss) carry the
key published fields and ``supported_today: False``.
"""

from __future__ import annotations

_LLAMA31_ROPE = {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                 "original_max_position_embeddings": 8192, "rope_type": "llama3"}


def _llama31(hidden, ffn, layers, heads):
    return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
            "intermediate_size": ffn, "num_hidden_layers": layers, "num_attention_heads": heads,
            "num_key_value_heads": 8, "vocab_size": 128256, "hidden_act": "silu", "rms_norm_eps": 1e-05,
            "tie_word_embeddings": False, "max_position_embeddings": 131072, "rope_theta": 500000.0,
            "rope_scaling": dict(_LLAMA31_ROPE)}


MODELS = {
    "llama-3.1-8b": {
        "name": "Llama 3.1 8B (Instruct)",
        "config": _llama31(4096, 14336, 32, 32),
        "params_published": 8030261248,
        "params_source": "same tensor shapes as Llama 3 8B (preset llama-3-8b, 8,030,261,248); HF meta-llama/Llama-3.1-8B config.json",
        "supported_today": True,
    },
    "llama-3.1-70b": {
        "name": "Llama 3.1 / 3.3 70B (Instruct)",
        "config": _llama31(8192, 28672, 80, 64),
        "params_published": 70553706496,
        "params_source": "same tensor shapes as Llama 3 70B (preset llama-3-70b, 70,553,706,496); Llama 3.3 70B shares the Llama 3.1 70B config.json",
        "supported_today": True,
    },
    "llama-3.1-405b": {
        "name": "Llama 3.1 405B (Instruct)",
        "config": _llama31(16384, 53248, 126, 128),
        "params_published": 405853388800,
        "params_source": "HF meta-llama/Llama-3.1-405B safetensors total (405,853,388,800 = 126 x 3,187,703,808 per block + 2 x 128256 x 16384 embeddings + final norm)",
        "supported_today": True,
    },
    "mistral-7b": {
        "name": "Mistral 7B",
        "preset": "mistral-7b",
        "params_published": 7241732096,
        "params_source": "preset mistral-7b (HF mistralai/Mistral-7B-v0.1); the publication does not say which Mistral 7B release",
        "supported_today": True,
    },
    "mixtral-8x7b": {
        "name": "Mixtral 8x7B",
        "preset": "mixtral-8x7b",
        "params_published": 46702792704,
        "params_source": "preset mixtral-8x7b (HF mistralai/Mixtral-8x7B-v0.1)",
        "supported_today": True,
    },
    "mixtral-8x22b": {
        "name": "Mixtral 8x22B",
        "config": {"model_type": "mixtral", "architectures": ["MixtralForCausalLM"], "hidden_size": 6144,
                   "intermediate_size": 16384, "num_hidden_layers": 56, "num_attention_heads": 48,
                   "num_key_value_heads": 8, "vocab_size": 32000, "hidden_act": "silu", "rms_norm_eps": 1e-05,
                   "tie_word_embeddings": False, "max_position_embeddings": 65536, "rope_theta": 1000000.0,
                   "num_local_experts": 8, "num_experts_per_tok": 2, "sliding_window": None},
        "params_published": 140620634112,
        "params_source": "HF mistralai/Mixtral-8x22B-v0.1 config.json shapes (vocab 32000; the Instruct-v0.1 release has vocab 32768, +0.01%); the publication does not say base or instruct",
        "supported_today": True,
    },
    "llama-2-7b": {"name": "Llama 2 7B", "preset": "llama-2-7b", "params_published": 6738415616,
                   "params_source": "preset llama-2-7b", "supported_today": True},
    "llama-2-13b": {"name": "Llama 2 13B", "preset": "llama-2-13b", "params_published": 13015864320,
                    "params_source": "preset llama-2-13b", "supported_today": True},
    "llama-2-70b": {"name": "Llama 2 70B", "preset": "llama-2-70b", "params_published": 68976648192,
                    "params_source": "preset llama-2-70b", "supported_today": True},
    # --- model types costmodel does not import yet -------------------------------------------
    "qwen3-235b-a22b": {
        "name": "Qwen3-235B-A22B",
        "config": {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 4096,
                   "num_hidden_layers": 94, "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 128,
                   "moe_intermediate_size": 1536, "num_experts": 128, "num_experts_per_tok": 8,
                   "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": False},
        "params_published": None,
        "params_source": "model card: 235B total, 22B activated (no exact count published there)",
        "supported_today": False,
    },
    "qwen3-30b-a3b": {
        "name": "Qwen3-30B-A3B",
        "config": {"model_type": "qwen3_moe", "architectures": ["Qwen3MoeForCausalLM"], "hidden_size": 2048,
                   "num_hidden_layers": 48, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128,
                   "moe_intermediate_size": 768, "num_experts": 128, "num_experts_per_tok": 8,
                   "vocab_size": 151936, "max_position_embeddings": 40960, "tie_word_embeddings": False},
        "params_published": None,
        "params_source": "model card: 30.5B total, 3.3B activated",
        "supported_today": False,
    },
    "llama-4-scout": {
        "name": "Llama 4 Scout 17B-16E (Instruct)",
        "config": {"model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48,
                   "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                   "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_local_experts": 16,
                   "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "vocab_size": 202048},
        "params_published": None,
        "params_source": "model card: 109B total, 17B active",
        "supported_today": False,
    },
    "llama-4-maverick": {
        "name": "Llama 4 Maverick 17B-128E (Instruct)",
        "config": {"model_type": "llama4_text", "hidden_size": 5120, "num_hidden_layers": 48,
                   "num_attention_heads": 40, "num_key_value_heads": 8, "head_dim": 128,
                   "intermediate_size": 8192, "intermediate_size_mlp": 16384, "num_local_experts": 128,
                   "num_experts_per_tok": 1, "interleave_moe_layer_step": 2, "vocab_size": 202048},
        "params_published": None,
        "params_source": "model card: 400B total, 17B active",
        "supported_today": False,
    },
    "deepseek-r1-0528": {
        "name": "DeepSeek-R1-0528",
        "config": {"model_type": "deepseek_v3", "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 7168,
                   "num_hidden_layers": 61, "num_attention_heads": 128, "q_lora_rank": 1536, "kv_lora_rank": 512,
                   "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128,
                   "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
                   "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3,
                   "vocab_size": 129280, "max_position_embeddings": 163840},
        "params_published": None,
        "params_source": "DeepSeek-V3 report: 671B total, 37B activated per token (plus a 14B MTP module)",
        "supported_today": False,
    },
    "gpt-oss-120b": {
        "name": "gpt-oss-120b",
        "config": {"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": 2880,
                   "num_hidden_layers": 36, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                   "intermediate_size": 2880, "num_local_experts": 128, "experts_per_token": 4,
                   "sliding_window": 128, "vocab_size": 201088},
        "params_published": None,
        "params_source": "model card: 117B total, 5.1B active",
        "supported_today": False,
    },
    "gpt-oss-20b": {
        "name": "gpt-oss-20b",
        "config": {"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": 2880,
                   "num_hidden_layers": 24, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64,
                   "intermediate_size": 2880, "num_local_experts": 32, "experts_per_token": 4,
                   "sliding_window": 128, "vocab_size": 201088},
        "params_published": None,
        "params_source": "model card: 21B total, 3.6B active",
        "supported_today": False,
    },
}

# Hardware ids not (yet) in costmodel/assets/hardware/: what the publications call them.
NEW_HARDWARE = {
    "gh200": "NVIDIA GH200 Grace Hopper Superchip; TRT-LLM v0.17 column 'GH200 480GB' (96 GB HBM3 + 480 GB LPDDR5X per later TRT-LLM docs); 1 Hopper GPU per superchip",
    "gb200": "NVIDIA GB200 (GB200 NVL72 system), 'GB200 192GB' per the TRT-LLM docs; Blackwell GPU",
    "rtx-pro-6000-blackwell-server": "NVIDIA RTX PRO 6000 Blackwell Server Edition (96 GB GDDR7, PCIe, no NVLink)",
    "a100-80gb": "NVIDIA A100 80GB; the publication says 'A100-80G' and does not say SXM or PCIe (catalog has a100-sxm-80gb and a100-pcie-80gb)",
    "h100-80gb": "NVIDIA H100 80GB; the publication does not say SXM or PCIe (catalog has h100-sxm-80gb and h100-pcie-80gb)",
    "intel-arc-pro-b60-24gb": "Intel Arc Pro B60 (24 GB GDDR6, 456 GB/s per the vLLM blog), PCIe",
}
