"""fp4 weight formats and MoE decode weight traffic, against hand arithmetic (shown in each test)."""

import pytest

import costmodel
from costmodel.ledger import ledger, make_ctx
from costmodel.layers import expected_experts
from costmodel.models import load_model
from costmodel.perf import _row_weights_read
from costmodel.workload import Workload


def test_expected_distinct_experts_hand_arithmetic():
    # E * (1 - (1 - k/E)^T): one token touches exactly k experts; Mixtral (8 experts, top-2) at 64 tokens
    # touches 8 * (1 - 0.75^64) = 7.999998... of 8
    assert expected_experts(8, 2, 1) == pytest.approx(2.0)
    assert expected_experts(8, 2, 64) == pytest.approx(8 * (1 - 0.75 ** 64))
    assert 7.9999 < expected_experts(8, 2, 64) < 8.0
    # two tokens: 8 * (1 - 0.75^2) = 3.5 (each expert is missed by both with probability 0.5625)
    assert expected_experts(8, 2, 2) == pytest.approx(3.5)


def test_mixtral_decode_reads_the_experts_its_batch_touches():
    # Mixtral-8x7B expert row per layer: 8 experts x 3 x 4096 x 14336 weights. A decode step of batch 1 reads
    # 2 of them; of batch 64, 8 * (1 - 0.75^64) of them, so the step streams ~all 45B expert weights
    spec = load_model("mixtral-8x7b")
    per_expert = 3 * 4096 * 14336
    for batch, touched in ((1, 2.0), (64, 8 * (1 - 0.75 ** 64))):
        ctx = make_ctx(spec, Workload(task="infer", batch=batch, prompt=512, generate=128, precision="fp8"), "decode")
        row = next(r for r in ledger(spec, ctx) if r.kind == "moe_experts")
        assert (row.experts, row.experts_top_k, row.routed_tokens) == (8, 2, batch)
        assert _row_weights_read(row) == pytest.approx(touched * per_expert)


def test_mixtral_decode_at_batch_64_is_not_faster_than_streaming_its_weights():
    # fp8 weights: 46.7e9 params, 45.1e9 of them expert weights at 1 byte; on an H100 (3.35 TB/s x 0.92 reached)
    # streaming them once takes >= 45.1e9 / 3.08e12 = 14.6 ms; decode at batch 64 must take at least that
    from costmodel.catalog import load_hardware
    from costmodel.perf import default_efficiency

    hw = load_hardware("h100-sxm-80gb")
    eff = default_efficiency(hw, "compiled")
    est = costmodel.estimate("mixtral-8x7b", hardware=hw, task="infer", batch=64, prompt=512, generate=128,
                             precision="fp8", efficiency=eff)
    expert_weights = 32 * 8 * 3 * 4096 * 14336
    assert est.time_s.decode_per_token_s >= expert_weights / (hw.memory_bandwidth_bytes_per_s * eff.bandwidth)
    one = costmodel.estimate("mixtral-8x7b", hardware=hw, task="infer", batch=1, prompt=512, generate=128,
                             precision="fp8", efficiency=eff)
    assert one.time_s.decode_per_token_s < est.time_s.decode_per_token_s / 2  # batch 1 reads 2 of 8 experts


@pytest.mark.parametrize("precision,scale_per_weight,per_tensor", [("nvfp4", 1 / 16, 4.0), ("mxfp4", 1 / 32, 0.0)])
def test_fp4_weight_bytes_hand_arithmetic(precision, scale_per_weight, per_tensor):
    # Llama-2-7B inference: 6,607,077,376 linear weights (7 per layer x 32 + lm_head) stored 4-bit + block
    # scales (NVFP4: one fp8 per 16 values = 1/16 byte per weight, + one fp32 per weight matrix: 225 matrices;
    # MXFP4: one E8M0 per 32 = 1/32 byte), the other 131,338,240 params (embeddings, norms) in bf16
    est = costmodel.estimate("llama-2-7b", task="infer", batch=1, prompt=16, generate=1, precision=precision)
    linear, other, matrices = 6_607_077_376, 6_738_415_616 - 6_607_077_376, 32 * 7 + 1
    assert est.memory_bytes.weights == pytest.approx(linear * (0.5 + scale_per_weight) + other * 2 + matrices * per_tensor)


def test_fp4_matmuls_fall_back_where_the_device_has_no_fp4():
    # no catalog device lists fp4 yet: fp4 runs at the fp8 rate on H100 (catalog FALLBACK), bf16 on A100
    from costmodel.catalog import load_hardware

    assert load_hardware("h100-sxm-80gb").peak_flops("fp4") == load_hardware("h100-sxm-80gb").peak_flops("fp8")
    assert load_hardware("a100-sxm-80gb").peak_flops("fp4") == load_hardware("a100-sxm-80gb").peak_flops("bf16")
