"""Time model, collectives, parallel layouts, training and serving plans (issue 3).

References are named per test: hand-derived alpha-beta costs of ring collectives (Patarasuk &
Yuan 2009; Thakur et al. 2005), the memory-bound decode bound (weights / bandwidth), the
compute-bound prefill (FLOPs / peak), ZeRO's partitioning (Rajbhandari et al. 2020),
Chinchilla's 20 tokens per parameter (Hoffmann et al. 2022).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

import costmodel
from costmodel.catalog import load_hardware
from costmodel.cli import main
from costmodel.errors import InputError
from costmodel.parallel import Layout, train_step
from costmodel.perf import Efficiency, default_efficiency
from costmodel.plans import (chinchilla_params, chinchilla_tokens, plan_serving, plan_training, search_layouts)

ROOT = Path(__file__).resolve().parent.parent

H100 = load_hardware("h100-sxm-80gb")


# ---- single-device time --------------------------------------------------------------------------
def test_decode_is_bounded_by_reading_the_weights():
    # batch-1 decode of Llama-2-7B in bf16 reads every weight once per token: the classic
    # memory-bound estimate weights / (bandwidth x efficiency); compiled engine = no host overhead
    eff = default_efficiency(H100, "compiled")
    est = costmodel.estimate("llama-2-7b", hardware=H100, task="infer", batch=1, prompt=128, generate=2,
                             precision="bf16", efficiency=eff)
    bound = 6_738_415_616 * 2 / (3.35e12 * eff.bandwidth)
    assert est.time_s.decode_per_token_s == pytest.approx(bound, rel=0.05)
    assert est.perf.decode_bound == "memory"


def test_large_prefill_is_bounded_by_flops():
    # batch 8 x 2048 prefill: FLOPs / (peak bf16 x matmul efficiency) within 10%
    eff = Efficiency(matmul=0.5, bandwidth=0.8, overhead_s=0.0, step_overhead_s=0.0)
    est = costmodel.estimate("llama-2-7b", hardware=H100, task="infer", batch=8, prompt=2048, generate=1,
                             precision="bf16", efficiency=eff)
    bound = est.flops.forward / (989.4e12 * 0.5)
    assert est.time_s.prefill_s == pytest.approx(bound, rel=0.10)
    assert est.time_s.prefill_s >= bound * 0.999  # the roofline never beats the compute bound


def test_mfu_is_model_flops_over_time_and_peak():
    # PaLM (Chowdhery et al. 2022, appendix B): MFU = model FLOPs per second / peak; HFU adds recomputation
    est = costmodel.estimate("llama-3-8b", hardware=H100, batch=1, seq=4096, grad_checkpointing=True)
    step = est.time_s.step_s
    assert est.perf.mfu == pytest.approx((est.flops.forward + est.flops.backward) / (step * 989.4e12))
    assert est.perf.hfu == pytest.approx(est.flops.total / (step * 989.4e12))
    assert est.perf.hfu > est.perf.mfu
    parts = est.time_s.forward_s + est.time_s.backward_s + est.time_s.recompute_s + est.time_s.optimizer_s
    assert est.time_s.step_s == pytest.approx(parts)


def test_host_overhead_dominates_tiny_steps_and_scales_with_layers():
    eff = Efficiency(matmul=0.5, bandwidth=0.8, overhead_s=100e-6, step_overhead_s=0.0)
    est = costmodel.estimate("gpt2", hardware=H100, task="infer", batch=1, prompt=8, generate=1, precision="bf16",
                             efficiency=eff)
    assert est.perf.bound == "host"
    # eager torch calls, counted by hand from HF GPT2Model (docs/formulas.md, "Host overhead"):
    # wte + wpe, then per block 2 LayerNorms + 4 Conv1D + attention glue (14) + NewGELU (8), ln_f, lm_head
    host_ops = 2 + 12 * (2 + 4 + 14 + 8) + 1 + 1
    assert host_ops == 340
    assert est.time_s.prefill_s == pytest.approx(host_ops * 100e-6)
    # Llama adds rotary (14 more per attention) and RMSNorm's 8 ops, SwiGLU's act*mul (2)
    est = costmodel.estimate("llama-3.2-1b", hardware=H100, task="infer", batch=1, prompt=8, generate=1,
                             precision="bf16", efficiency=eff)
    assert est.perf.bound == "host"
    llama_ops = 1 + 16 * (2 * 8 + 7 + 28 + 2) + 8 + 1  # embed, 16 blocks, final norm, lm_head (tied: still a call)
    assert est.time_s.prefill_s == pytest.approx(llama_ops * 100e-6)


def test_recurrent_backward_repeats_the_forward_recurrence_once():
    # cuDNN's LSTM backward = backward-data (dh recurrence: one sequential sweep, like the forward)
    # + backward-weights (one GEMM over all steps). With a 1 ms floor per step and no host time, both
    # passes are 2 layers x 64 steps x 1 ms; the old "x2 in backward" rule would give 256 ms.
    eff = Efficiency(matmul=1.0, matmul_fp32=1.0, bandwidth=1.0, overhead_s=0.0, step_overhead_s=0.0,
                     recurrent_step_s=1e-3)
    est = costmodel.estimate("lstm-2x1024", hardware=H100, batch=1, seq=64, precision="fp32", efficiency=eff)
    assert est.time_s.forward_s == pytest.approx(2 * 64 * 1e-3, rel=0.01)
    assert est.time_s.backward_s == pytest.approx(2 * 64 * 1e-3, rel=0.01)


def test_vision_traffic_counts_what_kernels_move():
    # ResNet-50 stem under AMP bf16, one 224x224 image (docs/formulas.md, "Time"): the conv reads the
    # fp32 image (3x224x224 = 150,528 elements), autocast writes and the conv reads a bf16 copy, and
    # it writes a bf16 64x112x112 = 802,816-element output; training BatchNorm reads its input twice
    from costmodel.ledger import ledger, make_ctx
    from costmodel.models import load_model
    from costmodel.workload import Workload

    spec = load_model("resnet-50")
    w = Workload(task="train", batch=1, image_size=224, precision="amp-bf16")
    rows = {r.name: r for r in ledger(spec, make_ctx(spec, w, "train"))}
    assert rows["embedder.convolution"].traffic_bytes == 150_528 * 4 + 2 * 150_528 * 2 + 802_816 * 2
    assert rows["embedder.normalization"].traffic_bytes == 3 * 802_816 * 2
    # a block's last ReLU follows the in-place residual add (read both operands, write one: 3 tensors)
    # and then reads and writes its own (2): five 256x56x56 bf16 tensors
    out = 256 * 56 * 56 * 2
    assert rows["stages.0.layers.0.activation"].traffic_bytes == 5 * out


def test_efficiency_validation_names_the_field():
    with pytest.raises(InputError) as err:
        Efficiency(matmul=1.5)
    assert err.value.field == "efficiency.matmul"


def test_cost_and_energy_follow_time():
    est = costmodel.estimate("gpt2", hardware="a100-sxm-80gb", batch=8, seq=1024, pricing={"provider": "aws"})
    price = est.assumptions["cost"]["usd_per_gpu_hour"]["value"]
    assert est.cost_usd.per_unit == pytest.approx(est.time_s.step_s / 3600 * price)
    power = est.assumptions["cost"]["device_power_w"]["value"] * est.assumptions["cost"]["pue"]["value"]
    assert est.energy_kwh.per_hour == pytest.approx(power / 1000)
    grid = est.assumptions["cost"]["grid_g_co2e_per_kwh"]["value"]
    assert est.carbon_kg_co2e.per_hour == pytest.approx(power / 1000 * grid / 1000)


# ---- parallel layouts ------------------------------------------------------------------------------
def _micro(model="llama-2-7b", **kw):
    return costmodel.estimate(model, hardware=H100, **{"batch": 1, "seq": 4096, **kw})


def test_zero_partitions_states_by_dp():
    # ZeRO (Rajbhandari et al. 2020): stage 1 splits optimizer states, 2 adds gradients, 3 adds weights
    micro = _micro()
    m = micro.memory_bytes
    spec = costmodel.load_model("llama-2-7b")
    s0 = train_step(spec, micro, H100, Layout(dp=8, zero=0), 1)
    s1 = train_step(spec, micro, H100, Layout(dp=8, zero=1), 1)
    s2 = train_step(spec, micro, H100, Layout(dp=8, zero=2), 1)
    s3 = train_step(spec, micro, H100, Layout(dp=8, zero=3), 1)
    assert s0.memory_bytes.optimizer == pytest.approx(m.optimizer)
    assert s1.memory_bytes.optimizer == pytest.approx(m.optimizer / 8)
    assert s2.memory_bytes.gradients == pytest.approx(m.gradients / 8)
    assert s3.memory_bytes.weights == pytest.approx(m.weights / 8)
    peaks = [s.memory_bytes.peak for s in (s0, s1, s2, s3)]
    assert peaks == sorted(peaks, reverse=True)


def test_tensor_and_pipeline_split_weights_and_bubble():
    micro = _micro()
    spec = costmodel.load_model("llama-2-7b")
    s = train_step(spec, micro, H100, Layout(tp=4, pp=2), 8)
    assert s.memory_bytes.weights == pytest.approx(micro.memory_bytes.weights / 8)
    # 1F1B: (m + p - 1) stage slots, bubble = (p - 1) slots (Narayanan et al. 2021)
    stage = (micro.time_s.forward_s + micro.time_s.backward_s) / 4 / 2
    assert s.compute_s == pytest.approx((8 + 2 - 1) * stage)
    assert s.bubble_s == pytest.approx(stage)
    assert s.comm_s.seconds("tp_allreduce") > 0 and s.comm_s.seconds("pp_p2p") > 0


def test_layout_rules_name_the_field():
    spec = costmodel.load_model("llama-2-7b")
    with pytest.raises(InputError) as err:
        train_step(spec, _micro(), H100, Layout(tp=3), 1)
    assert err.value.field == "layout.tp"
    with pytest.raises(InputError) as err:
        Layout(dp=4, ep=3)
    assert err.value.field == "layout.ep"
    with pytest.raises(InputError) as err:
        train_step(spec, _micro(), H100, Layout(pp=64), 1)
    assert err.value.field == "layout.pp"


def test_dp_crossing_nodes_uses_the_network():
    spec = costmodel.load_model("llama-2-7b")
    micro = _micro()
    inside = train_step(spec, micro, H100, Layout(dp=8), 1, dp_overlap=0.0)
    across = train_step(spec, micro, H100, Layout(dp=16), 1, dp_overlap=0.0)
    grads = micro.memory_bytes.gradients
    assert inside.comm_s.seconds("dp_grad_allreduce") == pytest.approx(2 * 7 / 8 * grads / 450e9 + 14 * 5e-6)
    assert across.comm_s.seconds("dp_grad_allreduce") == pytest.approx(2 * 15 / 16 * grads / 50e9 + 30 * 10e-6)


# ---- plans ---------------------------------------------------------------------------------------
def test_chinchilla_rule():
    # Hoffmann et al. 2022: Chinchilla, 70B parameters, 1.4T tokens
    assert chinchilla_tokens(70e9) == pytest.approx(1.4e12)
    n, d = chinchilla_params(6 * 70e9 * 1.4e12)
    assert n == pytest.approx(70e9) and d == pytest.approx(1.4e12)


def test_training_plan_adds_up():
    plan = plan_training("llama-2-7b", "a100-sxm-80gb", tokens=1e11, workload={"seq": 4096},
                         layout={"dp": 64, "zero": 1, "micro_batch": 1, "grad_checkpointing": True}, global_batch=256)
    assert plan.steps == math.ceil(1e11 / 4096 / 256)
    assert plan.wall_clock_s == pytest.approx(plan.steps * plan.step.step_s)
    assert plan.gpu_hours == pytest.approx(plan.wall_clock_s * 64 / 3600)
    # 6 N D (Kaplan et al. 2020) is the matmul-only rule; ours adds attention scores: a bit larger
    assert 1.0 < plan.total_flops / plan.six_n_d_flops < 1.3
    assert plan.total_flops_with_recompute > plan.total_flops
    assert plan.cost.compute_usd == pytest.approx(plan.gpu_hours * plan.cost.assumptions["usd_per_gpu_hour"]["value"])


def test_layout_search_ranks_feasible_layouts():
    res = search_layouts("llama-2-13b", "h100-sxm-80gb", tokens=1e11, workload={"seq": 4096}, max_devices=64,
                         global_batch=256, usd_per_device_hour=3.0)
    assert res and all(r.fits for r in res)
    times = [r.wall_clock_s for r in res]
    assert times == sorted(times)
    by_cost = search_layouts("llama-2-13b", "h100-sxm-80gb", tokens=1e11, workload={"seq": 4096}, max_devices=64,
                             global_batch=256, usd_per_device_hour=3.0, rank_by="cost")
    assert by_cost[0].cost_usd <= min(r.cost_usd for r in res) + 1e-6
    assert by_cost[0].cost_usd == pytest.approx(by_cost[0].gpu_hours * 3.0)


def test_serving_plan_kv_cache_and_limits():
    plan = plan_serving("llama-3-8b", "l4-24gb", prompt=512, generate=128, batch_sizes=(1, 8))
    # Llama-3-8B KV cache: 2 x 32 layers x 8 KV heads x 128 dims x 2 bytes = 131,072 bytes per token
    assert plan.kv_cache_bytes_per_token == 131072
    assert plan.max_batch >= 8
    p1, p8 = plan.points
    assert p8.throughput_tokens_per_s > p1.throughput_tokens_per_s
    assert p8.usd_per_million_tokens < p1.usd_per_million_tokens
    tp2 = plan_serving("llama-3-8b", "l4-24gb", prompt=512, generate=128, batch_sizes=(1,), tp=2)
    assert tp2.weights_bytes_per_device == pytest.approx(plan.weights_bytes_per_device / 2)
    # the longest context is capped at the model's position limit (Llama 3: max_position_embeddings 8192) ...
    assert plan.max_context == tp2.max_context == plan.max_positions == 8192
    # ... and below it, memory decides: splitting the weights over two devices leaves more for the KV cache
    # (Llama 3.1 8B: the same tensors, max_position_embeddings 131072)
    cfg = {**json.loads((ROOT / "costmodel" / "assets" / "presets" / "llama-3-8b.json").read_text())["config"],
           "max_position_embeddings": 131072}
    long1 = plan_serving(cfg, "l4-24gb", prompt=512, generate=128, batch_sizes=(1,))
    long2 = plan_serving(cfg, "l4-24gb", prompt=512, generate=128, batch_sizes=(1,), tp=2)
    assert long1.max_context < long2.max_context == long1.max_positions == 131072
    # the memory bound by hand: KV pool / KV bytes per token (2 x 32 layers x 8 KV heads x 128 x 2 B = 128 KiB)
    assert long1.max_context == int(long1.kv_pool_bytes_per_device // 131072) < 131072


# ---- CLI -------------------------------------------------------------------------------------------
def test_cli_plan_commands_json(capsys):
    assert main(["plan-train", "--model", "gpt2", "--tokens", "1e9", "--seq", "1024", "--batch", "8", "--dp", "4",
                 "--hardware", "a100-sxm-80gb", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["num_devices"] == 4 and d["gpu_hours"] > 0 and d["cost"]["compute_usd"] > 0
    assert main(["plan-serve", "--model", "llama-3-8b", "--hardware", "h100-sxm-80gb", "--batch-sizes", "1,4",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert [p["batch"] for p in d["points"]] == [1, 4]
    assert main(["estimate", "--model", "gpt2", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("step", "forward", "backward", "optimizer"):
        assert d["time_s"][key] > 0
    assert d["cost_usd"]["per_step"] > 0 and d["energy_kwh"]["per_step"] > 0
    main(["estimate", "--model", "gpt2", "--task", "infer", "--json"])
    d = json.loads(capsys.readouterr().out)
    assert d["time_s"]["prefill"] > 0 and d["time_s"]["decode_per_token"] > 0


@pytest.mark.parametrize("argv,field", [
    (["plan-train", "--model", "gpt2", "--tokens", "1e9", "--tp", "5"], "layout.tp"),
    (["plan-train", "--model", "gpt2", "--tokens", "-1"], "tokens"),
    (["plan-serve", "--model", "bert-base"], "model"),
    (["estimate", "--model", "gpt2", "--matmul-efficiency", "2"], "efficiency.matmul"),
    (["estimate", "--model", "gpt2", "--region", "atlantis"], "region"),
])
def test_cli_plan_bad_input(argv, field, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {field}") and "\n" not in err
