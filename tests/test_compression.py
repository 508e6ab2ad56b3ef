"""Pruning and compression trade-offs: 2:4 structured sparsity (inference), unstructured pruning, the Compare
page's "compression" group and the Estimate page's pruning choice.

References:
- Llama-2-7B's linear (matmul) weights, by hand from its config (Touvron et al. 2023; hidden 4096, MLP 11008,
  32 layers, vocab 32000, untied head): per layer 4 x 4096^2 + 3 x 4096 x 11008 = 202,375,168; x 32 plus the
  LM head 32000 x 4096 = 6,607,077,376.
- 2:4 storage (NVIDIA A100 whitepaper 2020, "Fine-Grained Structured Sparsity"; cuSPARSELt): half the values kept
  plus 2 bits of index metadata per kept value, i.e. 0.5 x b + 0.125 bytes per original weight of b bytes.
- Sparse tensor cores run 2:4 matmuls at the datasheet's "with sparsity" peak, 2x dense on A100/H100.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

import costmodel
from costmodel.catalog import load_hardware
from costmodel.errors import InputError
from costmodel.units import GiB

LLAMA2_7B_MATMUL_WEIGHTS = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008) + 32000 * 4096


def infer(hw="h100-sxm-80gb", **kw):
    args = dict(task="infer", batch=8, prompt=2048, generate=128, precision="bf16")
    args.update(kw)
    return costmodel.estimate("llama-2-7b", hardware=hw, **args)


def test_2_4_weight_bytes_by_hand():
    assert LLAMA2_7B_MATMUL_WEIGHTS == 6_607_077_376
    dense, sparse = infer(), infer(sparsity_pattern="2:4")
    assert sparse.workload.sparsity == 0.5  # 2:4 means half the weights
    # bf16: 2 bytes -> 0.5 x 2 + 0.125 = 1.125 bytes per original linear weight
    assert dense.memory_bytes.weights - sparse.memory_bytes.weights == LLAMA2_7B_MATMUL_WEIGHTS * (2 - 1.125)
    # the non-zero count: every linear weight halved
    assert sparse.params.nonzero == dense.params.total - LLAMA2_7B_MATMUL_WEIGHTS // 2
    # unstructured pruning in dense tensors saves no memory and no time (dense kernels)
    unstructured = infer(sparsity=0.5)
    assert unstructured.memory_bytes.weights == dense.memory_bytes.weights
    assert unstructured.time_s == dense.time_s
    # effective FLOPs skip the pruned half of every linear layer: 8 x 2048 prompt tokens through the blocks'
    # linears, the LM head at the last position of each of the 8 prompts (a prefill)
    blocks, head = 32 * (4 * 4096 * 4096 + 3 * 4096 * 11008), 32000 * 4096
    pruned = 0.5 * (2 * 8 * 2048 * blocks + 2 * 8 * head)
    assert unstructured.flops.forward_effective == pytest.approx(dense.flops.forward - pruned, rel=1e-12)


def test_2_4_speedup_is_a_rate_multiplier_on_weight_rows_only():
    # an H100 whose every FLOP/s peak is doubled and which has no sparse tensor cores must time an MLP (all its
    # FLOPs in linear layers) exactly like the real H100 with its 2x sparse speedup: the speedup scales only
    # the rows that hold weights
    h100 = load_hardware("h100-sxm-80gb")
    assert h100.sparse_2_4_speedup == 2.0 and load_hardware("v100-sxm-32gb").sparse_2_4_speedup == 1.0
    doubled = replace(h100, id="h100-2x", peak_flops_per_s={k: 2 * v for k, v in h100.peak_flops_per_s.items()},
                      sparse_2_4_speedup=1.0)
    kw = dict(task="infer", batch=4096, precision="bf16", sparsity_pattern="2:4")
    a = costmodel.estimate("mlp-mnist", hardware=h100, **kw).time_s
    b = costmodel.estimate("mlp-mnist", hardware=doubled, **kw).time_s
    assert a.forward_s == pytest.approx(b.forward_s, rel=1e-12)
    # on a transformer the attention core stays dense: 2:4 saves less than half of a compute-bound prefill
    dense, sparse = infer(), infer(sparsity_pattern="2:4")
    assert 0.5 * dense.time_s.prefill_s < sparse.time_s.prefill_s < dense.time_s.prefill_s
    # a GPU without sparse tensor cores gains only the smaller weight reads
    t4d, t4s = infer("t4-16gb"), infer("t4-16gb", sparsity_pattern="2:4")
    assert t4s.time_s.prefill_s <= t4d.time_s.prefill_s and t4s.time_s.prefill_s > 0.9 * t4d.time_s.prefill_s


def test_2_4_decode_reads_fewer_weight_bytes():
    # compiled engine: no per-op host time, so a batch-1 decode step is bound by reading the weights
    from costmodel.perf import default_efficiency

    compiled = default_efficiency(load_hardware("h100-sxm-80gb"), "compiled")
    # a short context so the KV cache read is negligible next to the 12.5 GiB of weights
    dense = infer(batch=1, prompt=16, generate=2, efficiency=compiled)
    sparse = infer(batch=1, prompt=16, generate=2, sparsity_pattern="2:4", efficiency=compiled)
    ratio = sparse.time_s.decode_per_token_s / dense.time_s.decode_per_token_s
    assert ratio == pytest.approx(sparse.memory_bytes.weights / dense.memory_bytes.weights, rel=0.02)


def test_2_4_input_errors_name_the_field():
    with pytest.raises(InputError) as e:
        costmodel.estimate("llama-2-7b", task="train", sparsity_pattern="2:4")
    assert e.value.field == "sparsity_pattern"
    with pytest.raises(InputError) as e:
        infer(sparsity=0.3, sparsity_pattern="2:4")
    assert e.value.field == "sparsity" and "0.5" in e.value.message
    with pytest.raises(InputError) as e:
        infer(sparsity_pattern="1:4")
    assert e.value.field == "sparsity_pattern"


def test_compare_page_compression_group():
    from test_app_pages import frame, open_page

    at = open_page("compare.py", {"preset": "llama-2-7b", "task": "infer", "precision": "bf16", "mode": "settings",
                                  "group": "compression", "hw": "h100-sxm-80gb"})
    assert not at.exception
    table = frame(at, "setting").set_index("setting")
    assert list(table.index) == ["dense bf16", "int8 weights", "int4 weights",
                                 "50% unstructured pruning (dense kernels)", "2:4 sparse bf16", "2:4 sparse int8"]
    for label, kw in [("dense bf16", {}), ("2:4 sparse bf16", {"sparsity_pattern": "2:4"}),
                      ("int4 weights", {"precision": "int4"})]:
        est = infer(batch=1, prompt=512, generate=128, **kw)
        assert table.loc[label, "weights_GiB"] == est.memory_bytes.weights / GiB
        assert table.loc[label, "time_s"] == est.time_s.request_s  # the unit: one whole request
    # training: 2:4 is inference-only, so those rows become a named explanation, not an exception
    at.radio(key="compare.task").set_value("train").run()
    assert not at.exception
    assert any("sparsity_pattern" in i.value for i in at.info)


def test_estimate_page_pruning_choice():
    from test_app_pages import metrics, open_page

    from costmodel.ui import format as fmt

    at = open_page("estimate.py", {"preset": "llama-2-7b", "hw": "h100-sxm-80gb", "task": "infer",
                                   "precision": "bf16", "pruning": "2:4"})
    assert not at.exception
    est = costmodel.estimate("llama-2-7b", hardware="h100-sxm-80gb", task="infer", precision="bf16", batch=1,
                             prompt=512, generate=128, sparsity_pattern="2:4")
    assert metrics(at)["Peak memory"] == fmt.fmt_bytes(est.memory_bytes.peak)
    at.radio(key="estimate.task").set_value("train").run()  # pruning applies to inference only: no error
    assert not at.exception and not at.error
