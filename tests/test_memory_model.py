"""Memory model against measurements and hand-derived formulas.

Measured reference: benchmarks/results/h100_reference_sample.json (copied from the team's
shared H100 sample: real PyTorch steps, torch.cuda.max_memory_allocated minus what was
allocated before the model was built; how it was measured is in its "about" field)."""

import json
from pathlib import Path
from costmodel.catalog import load_hardware

import pytest

from costmodel import Workload, estimate
from costmodel.estimator import estimate as estimate_spec
from costmodel.models import load_model

REF = {r["name"]: r for r in json.loads(
    (Path(__file__).resolve().parent.parent / "benchmarks/results/h100_reference_sample.json").read_text())["results"]}
# capacity of the measured card (NVML total of an H100 80GB HBM3), so these tests need no catalog
H100 = load_hardware("h100-sxm-80gb")  # memory_bytes = the NVML total of the measured H100

MEASURED = [
    # (reference run, preset, workload, our field, measured field)
    ("gpt2s_b8_s1024_fp32", "gpt2", dict(batch=8, seq=1024, precision="fp32"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b8_s1024_amp", "gpt2", dict(batch=8, seq=1024, precision="amp-bf16"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b16_s1024_amp", "gpt2", dict(batch=16, seq=1024, precision="amp-bf16"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b1_p512", "gpt2", dict(task="infer", batch=1, prompt=512, generate=32, precision="bf16"),
     "peak", "peak_prefill_bytes"),
    ("llama2_7b_b1_p512", "llama-2-7b", dict(task="infer", batch=1, prompt=512, generate=32, precision="bf16"),
     "peak", "peak_prefill_bytes"),
    ("llama2_7b_b8_p2048", "llama-2-7b", dict(task="infer", batch=8, prompt=2048, generate=32, precision="bf16"),
     "peak", "peak_prefill_bytes"),
]


@pytest.mark.parametrize("run,preset,wl,ours_key,ref_key", MEASURED, ids=[m[0] for m in MEASURED])
def test_peak_memory_within_10_percent_of_h100_measurement(run, preset, wl, ours_key, ref_key):
    est = estimate_spec(load_model(preset), Workload(**wl), H100)
    assert getattr(est.memory_bytes, ours_key) == pytest.approx(REF[run][ref_key], rel=0.10)


def test_weights_bytes_match_measurement():
    # measured memory_allocated after moving Llama-2-7B to the GPU in bf16: 13,476,832,256 = 2 bytes x params
    est = estimate_spec(load_model("llama-2-7b"), Workload(task="infer", batch=1, prompt=8, generate=1,
                                                           precision="bf16"), H100)
    # (the measured value has 1 KiB more: rotary inv_freq buffers rounded to 512-byte allocator blocks)
    assert est.memory_bytes.weights == pytest.approx(REF["llama2_7b_b1_p512"]["mem_weights_bytes"], abs=2048)


def test_kv_cache_matches_measurement_and_formula():
    # 2 (K and V) x layers x batch x positions x hidden x 2 bytes = 2*32*8*2048*4096*2 = 8,589,934,592
    est = estimate_spec(load_model("llama-2-7b"), Workload(task="infer", batch=8, prompt=2048, generate=0,
                                                           precision="bf16"), H100)
    assert est.memory_bytes.kv_cache == 2 * 32 * 8 * 2048 * 4096 * 2
    assert est.memory_bytes.kv_cache == REF["llama2_7b_b8_p2048"]["kv_cache_bytes_after_prefill"]


def test_optimizer_state_bytes_by_optimizer():
    # per trainable parameter: AdamW 2 fp32 states (8 B), SGD+momentum 1 (4 B), SGD 0,
    # bitsandbytes AdamW8bit 2 uint8 states + one fp32 absmax per 2048 values per state (2 + 8/2048 B)
    n = 124439808  # GPT-2 small
    def opt_bytes(name, precision="amp-bf16"):
        return estimate_spec(load_model("gpt2"), Workload(batch=1, seq=128, optimizer=name, precision=precision),
                             H100).memory_bytes.optimizer
    assert opt_bytes("adamw") == 8 * n
    assert opt_bytes("sgd-momentum") == 4 * n
    assert opt_bytes("sgd") == 0
    assert opt_bytes("adamw-8bit") == pytest.approx(n * (2 + 8 / 2048))
    assert opt_bytes("adamw", "bf16") == 4 * n  # states kept in the bf16 parameter dtype


def test_adafactor_factored_states():
    # Adafactor (Shazeer & Stern 2018) keeps a row and a column vector per matrix:
    # Llama-2-7B q_proj 4096x4096 -> 8192 fp32 values instead of 16.8M
    est = estimate("llama-2-7b", hardware=H100, batch=1, seq=128, optimizer="adafactor")
    adam = estimate("llama-2-7b", hardware=H100, batch=1, seq=128, optimizer="adamw")
    assert est.memory_bytes.optimizer < adam.memory_bytes.optimizer / 500


def test_lora_trainable_params_match_peft():
    # peft's print_trainable_parameters for Llama-2-7B, r=8, target q_proj,v_proj:
    # 32 layers x 2 modules x 8 x (4096 + 4096) = 4,194,304 trainable
    est = estimate("llama-2-7b", hardware=H100, batch=1, seq=512, lora_rank=8, lora_targets="q_proj,v_proj")
    assert est.params.trainable == 4_194_304
    assert est.params.total == 6_738_415_616 + 4_194_304
    # QLoRA: 4-bit base weights are about a quarter of bf16
    q = estimate("llama-2-7b", hardware=H100, batch=1, seq=512, precision="int4", lora_rank=8)
    full_bf16 = estimate("llama-2-7b", hardware=H100, task="infer", batch=1, prompt=8, precision="bf16")
    assert q.memory_bytes.weights < 0.35 * full_bf16.memory_bytes.weights


def test_lora_saves_less_activation_than_full():
    # frozen weights never form dW, so most linear inputs are not saved
    full = estimate("llama-2-7b", hardware=H100, batch=1, seq=2048, precision="bf16")
    lora = estimate("llama-2-7b", hardware=H100, batch=1, seq=2048, precision="bf16", lora_rank=16)
    assert lora.memory_bytes.activations < full.memory_bytes.activations
    assert lora.memory_bytes.gradients < full.memory_bytes.gradients / 100


def test_checkpointing_reduces_activations():
    # with checkpointing each of 32 layers keeps its input (T*h*4 bytes under AMP) plus one layer recomputed
    plain = estimate("llama-2-7b", hardware=H100, batch=4, seq=2048)
    ckpt = estimate("llama-2-7b", hardware=H100, batch=4, seq=2048, grad_checkpointing=True)
    assert ckpt.memory_bytes.peak < plain.memory_bytes.peak
    # non-reentrant checkpointing re-runs each block's forward but stops before its last saving op,
    # down_proj (docs/formulas.md, FLOPs; checked against FlopCounterMode in test_checkpoint_flops.py)
    assert ckpt.flops.recompute == pytest.approx(sum(
        r.forward_flops * r.count for r in plain.layers
        if r.name.startswith("layers.") and not r.name.endswith("down_proj")))


def test_breakdown_sums_to_peak_at_backward_start():
    est = estimate("gpt2", hardware=H100, batch=8, seq=1024, precision="fp32")
    m = est.memory_bytes
    assert m.peak_phase == "start of backward"
    assert m.peak == pytest.approx(m.weights + m.optimizer + m.activations + m.logits_loss)


def test_memory_grows_with_batch():
    # saved activations are linear in batch (the AMP weight casts are the constant part)
    act = {b: estimate("llama-3-8b", hardware=H100, batch=b, seq=4096).memory_bytes for b in (1, 2, 4)}
    assert act[4].activations - act[1].activations == pytest.approx(3 * (act[2].activations - act[1].activations))
    # the peak never shrinks with batch (for 8B full fine-tuning it sits at the optimizer step until
    # activations outgrow weights+grads+states+the foreach temporary)
    assert act[1].peak <= act[2].peak <= act[4].peak
    assert act[4].peak > act[1].peak
