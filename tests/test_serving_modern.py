"""Serving the 2026 decoders (DecoderSpec: Qwen3, Qwen3-MoE, DeepSeek-V3 MLA, gpt-oss, Llama 4, Gemma 3, Mamba-2,
Nemotron-H): the cache, weights and plans of ``costmodel.serving`` against numbers derived by hand from the
published config.json values (costmodel/assets/presets/*.json) and the papers that define the caches."""

from __future__ import annotations

import pytest

from costmodel import load_model
from costmodel.models import get_preset
from costmodel.serving.engines import get_engine
from costmodel.serving.model import Layout, StepModel, model_shape
from costmodel.serving.plan import plan_serving

H100, H200 = "h100-sxm-80gb", "h200-sxm-141gb"
MODERN = ["qwen3-8b", "qwen3-30b-a3b", "qwen3-235b-a22b", "deepseek-v3", "gpt-oss-20b", "gpt-oss-120b",
          "llama-4-scout-17b-16e", "gemma-3-27b", "mamba2-2.7b", "nemotron-h-8b"]


@pytest.mark.parametrize("name", MODERN)
def test_every_modern_preset_has_a_serving_shape_that_matches_its_ledger(name):
    shape = model_shape(load_model(name))  # raises when GEMMs + experts + LM head disagree with the ledger
    # the parameter count the preset's source publishes (model card / safetensors index), not the ledger's
    assert shape.total_params == get_preset(name).published_params


def test_qwen3_8b_kv_cache_is_gqa():
    # config: 36 layers, 8 KV heads of 128 -> K and V, bf16: 2 * 8 * 128 * 2 B * 36 = 147,456 B per token
    sm = StepModel("qwen3-8b", H100, engine=get_engine("vllm"))
    assert sm.kv_bytes_per_token == 2 * 8 * 128 * 2 * 36
    # tp = 4 splits the 8 KV heads two per rank; tp = 16 cannot split below one head per rank (replicated)
    assert StepModel("qwen3-8b", H100, engine=get_engine("vllm"), layout=Layout(tp=4)).kv_bytes_per_token == \
        2 * 2 * 128 * 2 * 36
    assert StepModel("qwen3-8b", H100, engine=get_engine("vllm"), layout=Layout(tp=8)).kv_bytes_per_token == \
        2 * 1 * 128 * 2 * 36


def test_deepseek_v3_caches_the_mla_latent_replicated_over_tp():
    # DeepSeek-V2 paper (arXiv:2405.04434) section 2.1.2: MLA caches the compressed latent c_KV (d_c =
    # kv_lora_rank = 512) and the decoupled rope key (d_h^R = 64): 576 elements per token per layer; 61 layers.
    # (Relabelled as Mixtral it would cache 2 * 128 heads * 128 dims: the 80x error issue 13 names.)
    one = StepModel("deepseek-v3", H200, precision="fp8", engine=get_engine("sglang"))
    assert one.kv_bytes_per_token == (512 + 64) * 2 * 61
    eight = StepModel("deepseek-v3", H200, precision="fp8", engine=get_engine("sglang"), layout=Layout(tp=8))
    assert eight.kv_bytes_per_token == one.kv_bytes_per_token  # every TP rank keeps the whole latent


def test_deepseek_v3_fp8_on_one_h200_node():
    # DeepSeek-V3 is served in FP8 on one 8 x H200 node (SGLang's DeepSeek-V3 instructions: tp 8):
    # 671B fp8 weights ~ 84 GB per GPU leave room for the cache
    p = plan_serving("deepseek-v3", H200, precision="fp8", tp=8, engine="sglang", prompt=1024, generate=256)
    assert 80e9 < p.weights_bytes_per_device < 95e9
    assert p.max_batch > 8 and p.kv_cache_bytes_per_token == (512 + 64) * 2 * 61
    # and does not fit on one H100 at bf16 (1.34 TB of weights)
    assert plan_serving("deepseek-v3", H100, precision="bf16", tp=1, prompt=1024, generate=256).max_batch == 0


def test_gpt_oss_experts_stay_mxfp4():
    # gpt-oss ships its experts in MXFP4 (OpenAI model card): 4.25 bits per expert weight (E2M1 + one E8M0
    # scale per 32); the rest bf16. Config: 24 layers x 32 experts x 3 x 2880 x 2880 expert weights.
    spec = load_model("gpt-oss-20b")
    shape = model_shape(spec)
    experts = 24 * 32 * 3 * 2880 * 2880
    assert shape.num_experts * shape.expert_params * shape.n_moe_layers == experts
    sm = StepModel(spec, H100, engine=get_engine("vllm"))
    by_hand = experts * (0.5 + 1 / 32) + (shape.total_params - experts) * 2
    assert sm.weights_bytes == pytest.approx(by_hand, rel=1e-9)
    assert 13e9 < sm.weights_bytes < 14.5e9  # "runs within 16 GB of memory" (model card)


def test_windowed_layers_cap_their_cache():
    # Gemma 3 27B: 62 layers, every 6th full attention (10 full, 52 sliding over 1,024 positions), 16 KV heads of
    # 128: a 32,768-token sequence caches 2*16*128*2 B x (10 x 32,768 + 52 x 1,024) under an engine that honours
    # the window (vLLM); TensorRT-LLM's default attends over everything
    vllm = StepModel("gemma-3-27b", H200, engine=get_engine("vllm"))
    assert vllm.kv_bytes(32768) == 2 * 16 * 128 * 2 * (10 * 32768 + 52 * 1024)
    trt = StepModel("gemma-3-27b", H200, engine=get_engine("tensorrt-llm"))
    assert trt.kv_bytes(32768) == 2 * 16 * 128 * 2 * 62 * 32768


def test_mamba_state_does_not_grow_with_the_context():
    # Mamba-2 2.7B: 64 layers; d_inner = 2 x 2560 = 5120 in 80 heads of 64, state 128, 1 group; conv over
    # 5120 + 2 x 128 = 5376 channels keeps its last 3 inputs: 80*64*128 + 5376*3 elements per layer, bf16
    sm = StepModel("mamba2-2.7b", H100, engine=get_engine("vllm"))
    per_seq = (80 * 64 * 128 + 5376 * 3) * 2 * 64
    assert sm.kv_bytes_per_token == 0
    assert sm.kv_bytes(1) == sm.kv_bytes(100_000) == per_seq
    # decode time grows with sequences (their states are read and written), not with their length
    assert sm.iteration_s(n_dec=64, ctx=64 * 100) == sm.iteration_s(n_dec=64, ctx=64 * 100_000)
    assert sm.iteration_s(n_dec=64, ctx=64) > sm.iteration_s(n_dec=8, ctx=8)


def test_moe_layers_only_where_the_config_puts_them():
    # DeepSeek-V3: first_k_dense_replace = 3 dense layers, 58 MoE layers of 256 experts (top-8, 1 shared)
    s = model_shape(load_model("deepseek-v3"))
    assert (s.n_moe_layers, s.num_experts, s.top_k) == (58, 256, 8)
    assert s.expert_params == 3 * 7168 * 2048


@pytest.mark.parametrize("name", ["qwen3-8b", "qwen3-30b-a3b", "gpt-oss-20b", "gemma-3-27b", "mamba2-2.7b",
                                  "nemotron-h-8b"])
def test_plans_of_modern_models_on_one_h200(name):
    precision = "mxfp4" if name.startswith("gpt-oss") else "bf16"
    p = plan_serving(name, H200, precision=precision, prompt=1024, generate=256)
    assert p.max_batch >= 1 and p.offline_throughput_tokens_per_s > 0
    # a dense model's decode step streams every weight once: at least weights / datasheet bandwidth (the
    # memory roofline; an engine's bandwidth efficiency is <= 1)
    sm = StepModel(name, H200, precision=precision, engine=get_engine(p.engine))
    from costmodel.catalog import resolve_hardware

    if not sm.shape.num_experts:
        assert sm.iteration_s(n_dec=1, ctx=1024) > sm.weights_bytes / resolve_hardware(H200).memory_bandwidth_bytes_per_s
