"""KV / state cache layouts (serving engines vs transformers), checkpoint-native weight formats, the generic
path for other transformers model types, and how configs are found and named. References: hand arithmetic
(shown in each test), published checkpoint sizes, and transformers built on the meta device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import costmodel
from costmodel.cli import main
from costmodel.errors import InputError
from costmodel.ledger import ledger, make_ctx
from costmodel.models import get_preset, load_model
from costmodel.workload import Workload

ROOT = Path(__file__).resolve().parent.parent


def infer(model, **kw):
    args = dict(task="infer", batch=1, prompt=16, generate=1, precision="bf16")
    args.update(kw)
    return costmodel.estimate(model, **args)


def test_deepseek_v3_cli_prints_mla_latent_cache_and_the_alternatives(tmp_path, capsys):
    # 61 layers x (512 latent + 64 RoPE key) x 2 bytes (bf16 KV) = 70,272 bytes per token, in both layouts
    # (transformers 5 caches the latent too); decompressed per-head K/V: 61 x 128 x (192 + 128) x 2 = 4,997,120
    cfg = tmp_path / "snapshot-abc" / "config.json"
    cfg.parent.mkdir()
    cfg.write_text(json.dumps(get_preset("deepseek-v3").config))
    assert main(["estimate", "--model", str(cfg), "--task", "infer", "--precision", "fp8",
                 "--hardware", "h200-sxm-141gb"]) == 0
    out = capsys.readouterr().out
    assert "70,272 bytes/token engine layout" in out and "70,272 bytes/token transformers" in out
    assert "4,997,120" in out and "mtp 11,610,067,968" in out
    assert out.startswith("model deepseek_v3 671.0B")  # named from the config, not the folder
    assert 61 * 576 * 2 == 70_272 and 61 * 128 * (192 + 128) * 2 == 4_997_120


def test_mla_decode_flops_engine_absorbed_vs_transformers_reexpanded():
    # DeepSeek-V3 decode at context n, batch b, per layer: engine (absorbed W_UK/W_UV) scores over 512 + 64 dims and
    # weighted sum over 512 per head: 2*b*128*n*(2*512 + 64); kv_b_proj on the new token only: 2*b*512*128*256.
    # transformers: per head 2*b*128*n*(192 + 128) and kv_b_proj re-expands all n cached positions: 2*b*n*512*128*256
    spec = load_model("deepseek-v3")
    b, n = 4, 1000
    w = Workload(task="infer", batch=b, prompt=n - 1, generate=2)
    rows = {lay: {r.name: r for r in ledger(spec, make_ctx(spec, w.with_(kv_cache_layout=lay), "decode"))}
            for lay in ("engine", "hf")}
    core, kvb = "layers.*(moe).attn.core", "layers.*(moe).attn.kv_b_proj"
    assert rows["engine"][core].forward_flops == 2 * b * 128 * n * (2 * 512 + 64)
    assert rows["hf"][core].forward_flops == 2 * b * 128 * n * (192 + 128)
    assert rows["engine"][kvb].forward_flops == 2 * b * 512 * 128 * 256
    assert rows["hf"][kvb].forward_flops == 2 * b * n * 512 * 128 * 256


@pytest.mark.parametrize("layout,window_kept", [("engine", 1024), ("hf", 1023)])
def test_gemma3_sliding_layers_cap_the_cache(layout, window_kept):
    # Gemma-3-27B: 62 layers, 1 full of every 6 -> 10 full + 52 sliding (window 1024); 16 KV heads x 128 dims, bf16.
    # At 16,000 positions: 2 * 16 * 128 * 2 bytes * (10 * 16000 + 52 * kept); transformers keeps window - 1
    est = infer("gemma-3-27b", prompt=15_999, kv_cache_layout=layout)
    assert est.memory_bytes.kv_cache == 2 * 16 * 128 * 2 * (10 * 16_000 + 52 * window_kept)
    assert est.assumptions["kv_cache"]["engine_bytes_per_token"] == 62 * 2 * 16 * 128 * 2


def test_gpt_oss_sinks_add_no_cache_and_sliding_layers_cap():
    # gpt-oss-120b: 18 sliding (128) + 18 full layers, 8 KV heads x 64, bf16: at 100,000 positions
    # 2 * 8 * 64 * 2 * (18 * 100000 + 18 * 128); attention sinks (64 logits per layer) hold no cache
    est = infer("gpt-oss-120b", prompt=99_999)
    assert est.memory_bytes.kv_cache == 2 * 8 * 64 * 2 * (18 * 100_000 + 18 * 128)
    rows = ledger(load_model("gpt-oss-120b"), make_ctx(load_model("gpt-oss-120b"), Workload(task="infer"), "prefill"))
    sinks = [r for r in rows if r.kind == "sinks"]
    assert sinks and all(r.params == 64 and r.kv_cache_bytes == 0 for r in sinks)


def test_llama4_chunked_layers_cap_at_one_chunk():
    # Llama-4-Scout: 36 chunked layers (8192-token chunks) + 12 NoPE full layers; 8 KV heads x 128, bf16.
    # At 20,000 positions: 2 * 8 * 128 * 2 * (12 * 20000 + 36 * 8192)
    est = infer("llama-4-scout-17b-16e", prompt=19_999)
    assert est.memory_bytes.kv_cache == 2 * 8 * 128 * 2 * (12 * 20_000 + 36 * 8192)


def test_mamba2_state_instead_of_kv_cache():
    # Mamba2-2.7B: 64 layers, 80 heads x 64 dims x state 128, conv over 5120 + 2*128 = 5376 channels, kernel 4.
    # engine (bf16): per layer (80*64*128 + 5376*3) * 2 bytes; transformers: fp32 SSM state + 4 conv positions
    # in bf16; nothing grows with the context
    kv = infer("mamba2-2.7b", prompt=4095).assumptions["kv_cache"]
    assert kv["engine_bytes_per_token"] == 0 and kv["hf_bytes_per_token"] == 0
    assert kv["engine_state_bytes_per_sequence"] == 64 * (80 * 64 * 128 + 5376 * 3) * 2 == 85_950_464
    assert kv["hf_state_bytes_per_sequence"] == 64 * (80 * 64 * 128 * 4 + 5376 * 4 * 2)
    assert infer("mamba2-2.7b", prompt=4095).memory_bytes.kv_cache == 85_950_464


def test_nemotron_h_hybrid_cache():
    # Nemotron-H-8B: 4 attention layers (8 KV heads x 128) grow with the context; 24 Mamba-2 layers keep
    # 128 heads x 64 x 128 state in fp32 (its config's mamba_ssm_cache_dtype) + 10240 conv channels x 3 in bf16
    kv = infer("nemotron-h-8b").assumptions["kv_cache"]
    assert kv["engine_bytes_per_token"] == 4 * 2 * 8 * 128 * 2
    assert kv["engine_state_bytes_per_sequence"] == 24 * (128 * 64 * 128 * 4 + (8192 + 2 * 8 * 128) * 3 * 2)


@pytest.mark.parametrize("preset,gib", [("gpt-oss-20b", 12.8), ("gpt-oss-120b", 60.8)])
def test_gpt_oss_mxfp4_experts_match_the_published_checkpoint_size(preset, gib):
    # OpenAI's model card gives the checkpoint sizes: 12.8 GiB (20b) and 60.8 GiB (120b). Experts MXFP4 =
    # 0.5 + 1/32 bytes per weight (24 x 32 or 36 x 128 experts x 3 x 2880 x 2880), everything else bf16
    est = infer(preset)
    layers, experts = (24, 32) if preset == "gpt-oss-20b" else (36, 128)
    expert_weights = layers * experts * 3 * 2880 * 2880
    assert est.memory_bytes.weights == pytest.approx(expert_weights * (0.5 + 1 / 32)
                                                     + (est.params.total - expert_weights) * 2)
    assert round(est.memory_bytes.weights / 2 ** 30, 1) == gib
    # training dequantizes the experts: bf16 weights for all
    train = costmodel.estimate(preset, task="train", batch=1, seq=16, precision="bf16")
    assert train.memory_bytes.weights == est.params.total * 2


def test_generic_path_counts_other_transformers_decoders_exactly():
    # reference: sum(p.numel()) of transformers' PhiForCausalLM on the meta device
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    cfg = dict(model_type="phi", architectures=["PhiForCausalLM"], hidden_size=64, num_hidden_layers=2,
               num_attention_heads=4, intermediate_size=128, vocab_size=100)
    hf = transformers.AutoConfig.for_model("phi", **{k: v for k, v in cfg.items() if k not in ("model_type",
                                                                                               "architectures")})
    with torch.device("meta"):
        ref = sum(p.numel() for p in transformers.AutoModelForCausalLM.from_config(hf).parameters())
    est = infer(cfg, prompt=8)
    assert est.params.total == ref
    assert "generic decoder" in est.assumptions["model"]["generic"]
    assert est.flops.forward > 0 and est.memory_bytes.kv_cache > 0


@pytest.mark.parametrize("cfg,field", [
    ({"model_type": "no_such_model"}, "config.model_type"),
    ({"model_type": "phi", "architectures": ["MyRemoteCodeForCausalLM"], "hidden_size": 64}, "config.architectures"),
    ({"model_type": "falcon_mamba"}, "config.model_type"),  # registered, but no standard decoder fields
])
def test_generic_path_refusals_name_the_field_and_the_supported_families(cfg, field):
    pytest.importorskip("transformers")
    with pytest.raises(InputError) as err:
        load_model(cfg)
    assert err.value.field == field
    if field == "config.model_type":
        assert "qwen3" in err.value.message and "costmodel spec" in err.value.message


def _run(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", **env})


def test_estimates_never_import_torch():
    code = ("import sys, costmodel\n"
            "for m in ('deepseek-v3', 'mamba2-2.7b', 'gpt2', 'resnet-50'):\n"
            "    costmodel.estimate(m, task='infer')\n"
            "from costmodel.cli import main\n"
            "main(['presets'])\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = _run(code)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_generic_path_without_torch_says_what_to_install():
    code = ("import sys\nsys.modules['torch'] = None\nimport costmodel\n"
            "try:\n    costmodel.estimate({'model_type': 'phi'})\n"
            "except costmodel.errors.InputError as e:\n    print(e.field, '|', e.message)")
    out = _run(code)
    assert "config.model_type |" in out.stdout and "pip install 'costmodel[profile]'" in out.stdout


def test_config_names_come_from_the_config_not_the_folder(tmp_path):
    cfg = dict(get_preset("qwen3-8b").config)
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(cfg))
    assert load_model(str(tmp_path / "cfg" / "config.json")).name == "qwen3 8.2B"
    assert load_model(str(tmp_path / "cfg")).name == "qwen3 8.2B"  # a folder holding config.json
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(dict(cfg, _name_or_path="Qwen/Qwen3-8B")))
    assert load_model(str(tmp_path / "cfg" / "config.json")).name == "Qwen3-8B"
    snapshot = "/root/.cache/huggingface/hub/models--Qwen--Qwen3-8B/snapshots/" + "a" * 40
    (tmp_path / "cfg" / "config.json").write_text(json.dumps(dict(cfg, _name_or_path=snapshot)))
    assert load_model(str(tmp_path / "cfg" / "config.json")).name == "Qwen3-8B"


def test_hugging_face_ids_resolve_from_the_local_cache(tmp_path, monkeypatch):
    snap = tmp_path / "hub" / "models--Qwen--Qwen3-8B" / "snapshots" / ("b" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps(get_preset("qwen3-8b").config))
    (tmp_path / "hub" / "models--Qwen--Qwen3-8B" / "refs").mkdir()
    (tmp_path / "hub" / "models--Qwen--Qwen3-8B" / "refs" / "main").write_text("b" * 40)
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    spec = load_model("Qwen/Qwen3-8B")
    assert spec.name == "Qwen3-8B" and spec.hf_model_type == "qwen3"
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # HF_HUB_CACHE wins over HF_HOME
    with pytest.raises(InputError) as err:
        load_model("Qwen/Qwen3-8B")
    assert "local Hugging Face cache" in err.value.message and "huggingface-cli download" in err.value.message
