"""Training engines, topology-aware collectives, flash attention and fp8 pricing: each named formula against
hand arithmetic (docs/formulas.md, "Training engines"), and the profiles' choices visible in the plans."""

from __future__ import annotations

from dataclasses import replace

import pytest

import costmodel
from costmodel.catalog import load_hardware
from costmodel.errors import InputError
from costmodel.collectives import (NVLINK_BUS_EFFICIENCY, Link, Topology, allgather_s, allgather_topo_s, allreduce_s,
                                   allreduce_topo_s, reduce_scatter_s)
from costmodel.engines import ENGINES, engine_efficiency, engine_workload, resolve_engine
from costmodel.layers import attention_core
from costmodel.collectives import group_topology, shard_group_topology
from costmodel.parallel import Layout, fused_activation_bytes_per_token, pipeline_compute_s
from costmodel.perf import DeviceRates, Efficiency, PassSpec, pass_times
from costmodel.plans import plan_training
from costmodel.specs.transformer import TransformerSpec
from costmodel.workload import Workload
from support import make_ctx

NVL = Link(450e9, 0.0)
NIC = Link(50e9, 0.0)


def test_hierarchical_allreduce_uses_every_nic_of_a_node():
    # 2 nodes x 8 GPUs, S = 1 GB: reduce-scatter and all-gather inside each node over NVLink, then each GPU
    # all-reduces its 1/8 shard with its peer on the other node over its own NIC (Jeaugey 2019, NCCL)
    topo = Topology(size=16, per_domain=8, intra=NVL, inter=NIC)
    S = 1e9
    want = 7 / 8 * S / 450e9 + 2 * 1 / 2 * (S / 8) / 50e9 + 7 / 8 * S / 450e9
    assert allreduce_topo_s(S, topo) == pytest.approx(want)
    # the flat ring priced every byte at one GPU's NIC: 2 x 15/16 x S / 50e9 = 37.5 ms against ~13.9 ms here
    flat = allreduce_s(S, 16, NIC)
    assert flat == pytest.approx(2 * 15 / 16 * S / 50e9) and flat / allreduce_topo_s(S, topo) > 2.5
    # inside one NVLink domain it is a plain all-reduce on the fabric
    assert allreduce_topo_s(S, Topology(8, 8, NVL, NIC)) == pytest.approx(allreduce_s(S, 8, NVL))


def test_hierarchical_allgather_and_topology_of_groups():
    topo = Topology(size=32, per_domain=8, intra=NVL, inter=NIC)
    assert allgather_topo_s(4e9, topo) == pytest.approx(allgather_s(4e9 / 8, 4, NIC) + allgather_s(4e9, 8, NVL))
    assert allgather_topo_s(4e9, topo) == pytest.approx(3 / 4 * 0.5e9 / 50e9 + 7 / 8 * 4e9 / 450e9)
    h100 = load_hardware("h100-sxm-80gb")
    # data parallel outside tp = 8: one member per node, every GPU on its own NIC
    dp = group_topology(h100, 8, 16, network_efficiency=0.8)
    assert (dp.size, dp.per_domain, dp.domains) == (16, 1, 16)
    assert dp.inter.bandwidth_bytes_per_s == pytest.approx(h100.inter_node_bandwidth_bytes_per_s * 0.8)
    # pure data parallel over 64 GPUs: 8 per node; NVLink at the measured bus efficiency
    dp = group_topology(h100, 1, 64, 0.8)
    assert (dp.per_domain, dp.domains) == (8, 8)
    assert dp.intra.bandwidth_bytes_per_s == pytest.approx(450e9 * NVLINK_BUS_EFFICIENCY)
    # a GB200 NVL72 rack keeps 64 GPUs in one NVLink domain
    gb = group_topology(load_hardware("gb200-nvl72-186gb"), 1, 64, 0.8)
    assert gb.domains == 1


def test_reduce_scatter_mirrors_allgather():
    assert reduce_scatter_s(3e9, 4, NIC) == allgather_s(3e9, 4, NIC)


def test_interleaved_pipeline_bubble():
    # Narayanan et al. 2021: bubble = (p - 1) / v stage slots; m micro-batches fill m slots
    compute, bubble = pipeline_compute_s(8.0, micro_batches=16, stages=4, virtual=2)
    assert bubble == pytest.approx(3 / 2 * 8.0 / 4)
    assert compute == pytest.approx(16 * 8.0 / 4 + 3 / 2 * 8.0 / 4)
    assert pipeline_compute_s(8.0, 16, 4, 1)[1] == pytest.approx(3 * 2.0)


def test_fused_activation_bytes_reproduce_korthikanti():
    # Korthikanti et al. 2022, Section 4.1: a GPT-3 layer saves s b h (34 + 5 a s / h) bytes in 16 bits; flash
    # attention drops the 5 a s / h score terms and the attention dropout mask: 32 h without dropout, 34 h with
    # the two residual-dropout masks (1 byte each)
    h = 12288
    gpt3 = TransformerSpec(name="gpt3-layer", vocab_size=50257, hidden=h, layers=96, heads=96, ffn=4 * h,
                           gated_mlp=False, activation="gelu", norm="layernorm", norm_bias=True, positions="learned")
    assert fused_activation_bytes_per_token(gpt3, 2.0, dropout=False) == 32 * h
    assert fused_activation_bytes_per_token(gpt3, 2.0, dropout=True) == 34 * h
    # Llama-3-8B (GQA 8 of 32 heads, SwiGLU 14336): attention h + h + 2 x 1024 + h, MLP h + 3 x 14336, norms 2h
    llama = costmodel.load_model("llama-3-8b")
    assert fused_activation_bytes_per_token(llama, 2.0) == 2 * (3 * 4096 + 2 * 1024 + 4096 + 3 * 14336 + 2 * 4096)


def _attention_row(causal_len=1024):
    ctx = make_ctx(2, causal_len, training=True, stream_bytes=2, compute_bytes=2)
    return attention_core("attn", ctx, heads=16, kv_heads=16, head_dim=64, saved_bytes=0.0)


def test_flash_attention_prices_the_causal_half_and_recomputes_scores():
    row = _attention_row()
    fwd_flops = row.forward_flops  # 2 x 2 x b h s^2 d: the full square, as FlopCounterMode counts it
    assert fwd_flops == 4 * 2 * 16 * 1024 * 1024 * 64
    rates = DeviceRates(peak_flops_per_s=1e15, bandwidth_bytes_per_s=1e18, causal=True)  # compute-bound
    eff = Efficiency(matmul=0.5, attention_kernel="flash", causal_half=True, attention_fwd=0.6, attention_bwd=0.4,
                     overhead_s=0.0, step_overhead_s=0.0)
    f, b = pass_times((row,), rates, eff, PassSpec(weight_read_bytes=2.0, training=True, full_backward=True))
    assert f.device_s == pytest.approx(0.5 * fwd_flops / (1e15 * 0.6))
    # backward: dQ, dK, dV, dP and the recomputed S = 2.5 x the forward's FLOPs (Dao 2023, Algorithm 2)
    assert b.device_s == pytest.approx(0.5 * 2.5 * fwd_flops / (1e15 * 0.4))
    # a non-causal model (an encoder) computes the whole square
    f2, _ = pass_times((row,), DeviceRates(1e15, 1e18, causal=False), eff, PassSpec(2.0, training=True))
    assert f2.device_s == pytest.approx(fwd_flops / (1e15 * 0.6))


def test_fp8_gemms_leave_attention_in_bf16():
    # fp8 doubles the GEMM peak; the attention core stays at the bf16 peak (H100: 989 vs 1979 TFLOP/s dense)
    h100 = load_hardware("h100-sxm-80gb")
    spec = costmodel.load_model("llama-3-8b")
    rows = {r.name: r for r in costmodel.estimate(spec, h100, task="train", batch=1, seq=4096,
                                                  precision="fp8").layers}
    assert rows  # the ledger is there
    from costmodel.ledger import ledger, make_ctx
    from costmodel.timing import device_rates

    w = Workload(task="train", batch=1, seq=4096, precision="fp8")
    r = device_rates(h100, w, causal=True)
    assert r.peak_flops_per_s == h100.peak_flops("fp8") and r.attention_peak_flops_per_s == h100.peak_flops("bf16")
    attn = [row for row in ledger(spec, make_ctx(spec, w, "train")) if row.kind == "attention"]
    eff = Efficiency(matmul=0.5, overhead_s=0.0, step_overhead_s=0.0)
    f, _ = pass_times(tuple(attn), r, eff, PassSpec(2.0))
    assert f.compute_s == pytest.approx(sum(a.forward_flops * a.count for a in attn) / (h100.peak_flops("bf16") * 0.5))


def test_gemm_rows_use_the_measured_curve_at_their_shape():
    from costmodel.measured.curves import gemm_efficiency

    h100 = load_hardware("h100-sxm-80gb")
    ctx = make_ctx(8, 2048, training=False, stream_bytes=2, compute_bytes=2)
    from costmodel.layers import linear

    row = linear("fc", ctx.tokens, 4096, 14336, bias=False, save_input_bytes=2, out_bytes=2)
    assert row.gemm_mnk == (16384, 14336, 4096)
    rates = DeviceRates(h100.peak_flops("bf16"), 1e18, dtype="bf16", hardware_id=h100.id)
    eff = Efficiency(gemm_curve=True, gemm_scale=0.9, overhead_s=0.0, step_overhead_s=0.0)
    f, _ = pass_times((row,), rates, eff, PassSpec(2.0))
    e, _ = gemm_efficiency(h100.id, "bf16", 16384, 14336, 4096, peak_flops_per_s=h100.peak_flops("bf16"))
    assert f.device_s == pytest.approx(row.forward_flops / (h100.peak_flops("bf16") * e * 0.9))


def test_engines_resolve_by_layout_and_map_precisions():
    assert resolve_engine("auto", Layout(dp=8)).name == "fsdp"
    assert resolve_engine("auto", Layout(dp=2, tp=4)).name == "megatron"
    assert resolve_engine(None, Layout(dp=8, pp=2)).name == "megatron"
    w = Workload(task="train", precision="amp-bf16")
    assert engine_workload(ENGINES["fsdp"], w).precision == "bf16-mixed"
    assert engine_workload(ENGINES["megatron"], w.with_(precision="fp8")).precision == "fp8-mixed"
    assert engine_workload(ENGINES["megatron-unfused"], w).attention == "eager"  # scores materialised
    assert engine_workload(ENGINES["eager"], w) == w
    with pytest.raises(costmodel.InputError) as err:
        resolve_engine("deepspeed-magic", Layout())
    assert err.value.field == "engine"


def test_bf16_mixed_is_18_bytes_per_parameter_with_adam():
    # bf16 weights 2 + fp32 gradients 4 + fp32 master 4 + Adam m, v 8 (Megatron's distributed optimizer layout)
    est = costmodel.estimate("llama-2-7b", task="train", batch=1, seq=128, precision="bf16-mixed")
    n = est.params.total
    m = est.memory_bytes
    assert (m.weights, m.gradients, m.optimizer) == (2 * n, 4 * n, 12 * n)


def test_plans_default_to_production_engines_and_say_so():
    one = plan_training("llama-2-7b", "h100-sxm-80gb", tokens=1e9, workload={"seq": 2048}, layout={"dp": 1})
    assert one.assumptions["engine"]["engine"] == "eager"
    fsdp = plan_training("llama-2-7b", "h100-sxm-80gb", tokens=1e9, workload={"seq": 2048},
                         layout={"dp": 16, "zero": 3})
    assert fsdp.assumptions["engine"]["engine"] == "fsdp" and fsdp.assumptions["precision"] == "bf16-mixed"
    # FSDP gathers bf16 parameters: 2 gathers per micro-batch of (n-1)/n x 2 bytes x params
    n = 6_738_415_616
    ag = next(t for t in fsdp.step.comm_s.terms if t.name == "fsdp_param_allgather")
    assert ag.volume_bytes == pytest.approx(2 * 15 / 16 * 2 * n)
    meg = plan_training("llama-2-70b", "h100-sxm-80gb", tokens=1e9, workload={"seq": 4096},
                        layout={"dp": 4, "tp": 8, "pp": 2, "zero": 1})
    assert meg.assumptions["engine"]["engine"] == "megatron"
    assert "fitted" in meg.assumptions["engine"]


def test_engine_efficiency_states_its_kernels():
    h100 = load_hardware("h100-sxm-80gb")
    eff = engine_efficiency(ENGINES["megatron"], h100)
    assert eff.gemm_curve and eff.attention_kernel == "flash" and eff.causal_half and not eff.elementwise_passes
    assert "cudnn" in eff.source


# ---- GEMM times from the measured tables (issue 20, training side) ---------------------------------------------

def test_measured_gemm_efficiency_is_the_tables_own_time():
    """Under time_source="measured" a GEMM row's efficiency is 2 m n k / (t x peak) with t the latency NVIDIA
    measured for that very shape (independent reference: the table's own lookup), x gemm_scale."""
    from costmodel import measured
    from costmodel.catalog import load_hardware
    from costmodel.perf import DeviceRates, Efficiency, _gemm_eff

    if not measured.available():
        pytest.skip("the [measured] extra (aiconfigurator-core) is not installed")
    hw = load_hardware("h100-sxm-80gb")
    t = measured.tables_for("h100-sxm-80gb", "trtllm").gemm_s(4096, 11008, 4096, "bf16")
    peak = hw.peak_flops("bf16")
    rates = DeviceRates(peak_flops_per_s=peak, bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
                        hardware_id=hw.id, dtype="bf16")
    eff = Efficiency(gemm_curve=True, gemm_scale=0.5, gemm_source="measured")
    assert _gemm_eff(rates, eff, 4096, 11008, 4096) == pytest.approx(0.5 * 2 * 4096 * 11008 * 4096 / (t * peak))
    curve = _gemm_eff(rates, replace(eff, gemm_source="curve"), 4096, 11008, 4096)
    assert curve != _gemm_eff(rates, eff, 4096, 11008, 4096)  # the fitted curve is not the table


def test_time_source_resolution_and_its_errors(monkeypatch):
    from costmodel import measured
    from costmodel.catalog import load_hardware
    from costmodel.engines import resolve_time_source

    mi300x, h100 = load_hardware("mi300x-192gb"), load_hardware("h100-sxm-80gb")
    assert resolve_time_source(None, h100)[0] == "roofline"
    assert resolve_time_source("auto", mi300x)[0] == "roofline"  # AMD: no NVIDIA table
    with pytest.raises(InputError, match="no measured GEMM table for mi300x-192gb"):
        resolve_time_source("measured", mi300x)
    if measured.available():
        src, why = resolve_time_source("auto", h100)
        assert src == "measured" and "aiconfigurator-core 0.12.0" in why and "h100_sxm" in why
    monkeypatch.setattr(measured, "available", lambda: False)  # a light install without the extra
    assert resolve_time_source("auto", h100) == ("roofline", f"analytic (no measured tables installed: "
                                                              f"{measured.MISSING_MESSAGE})")
    with pytest.raises(InputError, match=r"costmodel\[measured\]"):
        resolve_time_source("measured", h100)


def test_context_parallel_ranks_join_the_sharding_group():
    # Megatron-LM shards its distributed optimizer over the data-parallel group *with* context parallel, and
    # torchtitan applies FSDP2 over the dp_shard_cp mesh: dp x cp ranks hold the same weights. Llama 3 8B,
    # bf16-mixed (4 + 8 bytes of fp32 master + Adam states per parameter; test_bf16_mixed_is_18_bytes...):
    n = 8_030_261_248  # Llama 3 8B, published count (meta-llama/Meta-Llama-3-8B)
    wl = {"seq": 8192, "precision": "fp8"}
    p = plan_training("llama-3-8b", "h100-sxm-80gb", tokens=1e9, workload=wl, global_batch=128,
                      layout={"dp": 4, "cp": 2, "zero": 1}, engine="megatron")
    assert p.step.memory_bytes.optimizer == pytest.approx(12 * n / (4 * 2))  # not / 4
    assert p.step.memory_bytes.gradients == pytest.approx(4 * n)  # ZeRO-1 keeps the fp32 main grads whole
    # the gradients of the 2 context-parallel ranks are reduced together with the 4 data-parallel ones:
    # one all-reduce of 4n bytes over 8 ranks moves 2 x 7/8 x 4n per rank (ring volume)
    ar = next(t for t in p.step.comm_s.terms if t.name == "dp_grad_allreduce")
    assert ar.volume_bytes == pytest.approx(2 * 7 / 8 * 4 * n)
    # dp = 1, cp = 8 under FSDP (torchtitan's 262k-token run): still sharded 8 ways, and the gradients still
    # reduce-scattered over the 8 ranks (each holds a slice of the sequence, all of the weights)
    t = plan_training("llama-3-8b", "h100-sxm-80gb", tokens=1e9, workload={"seq": 8192}, global_batch=1,
                      layout={"dp": 1, "cp": 8, "zero": 3}, engine="fsdp")
    m = t.step.memory_bytes  # the sharded fp32 parameter is the master: 4 + Adam 8 per parameter, fp32 grads 4
    assert (m.weights, m.optimizer, m.gradients) == (0.0, pytest.approx(12 * n / 8), pytest.approx(4 * n / 8))
    assert any(x.name == "dp_grad_reduce_scatter" and x.volume_bytes > 0 for x in t.step.comm_s.terms)


def test_shard_group_topology_places_cp_then_dp_members():
    h100 = load_hardware("h100-sxm-80gb")  # 8 GPUs per NVLink domain
    # tp 1, cp 2, dp 4: the 2 cp ranks are neighbours, 4 blocks of 2 fill a node -> 8 members per domain
    topo = shard_group_topology(h100, tp=1, cp=2, pp=1, dp=4, network_efficiency=0.8)
    assert (topo.size, topo.per_domain, topo.domains) == (8, 8, 1)
    # tp 8, cp 8, pp 8, dp 1 (torchtitan's 405B at 262k tokens): each cp rank is a node of its own
    topo = shard_group_topology(h100, tp=8, cp=8, pp=8, dp=1, network_efficiency=0.8)
    assert (topo.size, topo.per_domain, topo.domains) == (8, 1, 8)
    # tp 2, cp 2, pp 4, dp 4: cp pairs share a node, the dp members (16 GPUs apart) do not
    topo = shard_group_topology(h100, tp=2, cp=2, pp=4, dp=4, network_efficiency=0.8)
    assert (topo.size, topo.per_domain, topo.domains) == (8, 2, 4)


def test_megatron_fused_adam_allocates_no_step_temporaries():
    # torch's foreach AdamW materialises sqrt(v) for every parameter in the step (Optimizer.step_temp_per_param
    # = 1, in fp32); Megatron's FusedAdam updates in place. Llama 2 70B at tp 4 x pp 4, dp 1 (NeMo's SFT run on
    # 16 H100s, recompute not stated: with full recompute): the peak is the states plus the live activations, no
    # extra 4 bytes x params / 16.
    wl = {"seq": 4096, "precision": "fp8"}
    lay = {"dp": 1, "tp": 4, "pp": 4, "grad_checkpointing": True}
    meg = plan_training("llama-2-70b", "h100-sxm-80gb", tokens=1e9, workload=wl, global_batch=32, layout=lay,
                        engine="megatron")
    m = meg.step.memory_bytes
    assert m.peak == pytest.approx(m.weights + m.gradients + m.optimizer + m.activations)
    assert meg.step.fits  # it ran (NeMo 24.07 performance summary, SFT table)
    fsdp = plan_training("llama-2-70b", "h100-sxm-80gb", tokens=1e9, workload=wl, global_batch=32, layout=lay,
                         engine="fsdp")
    assert ENGINES["megatron"].fused_optimizer and not ENGINES["fsdp"].fused_optimizer
    assert fsdp.step.memory_bytes.peak > fsdp.step.memory_bytes.weights + fsdp.step.memory_bytes.gradients + \
        fsdp.step.memory_bytes.optimizer + fsdp.step.memory_bytes.activations


def test_selective_checkpointing_under_fused_kernels_keeps_the_policy_outputs():
    # torchtitan's 8B recipe (FSDP, per-op selective checkpointing, 2 x 8,192 tokens per GPU): on top of full
    # checkpointing's block inputs every block keeps q, v, attention (+ fp32 logsumexp), gate and down outputs
    T, h, kv, f, H, L = 2 * 8192, 4096, 1024, 14336, 32, 32
    kw = dict(tokens=1e9, workload={"seq": 8192}, global_batch=16, engine="fsdp")
    full = plan_training("llama-3-8b", "h100-sxm-80gb", layout={"dp": 8, "zero": 3, "micro_batch": 2,
                                                                "grad_checkpointing": True}, **kw)
    sel = plan_training("llama-3-8b", "h100-sxm-80gb", layout={"dp": 8, "zero": 3, "micro_batch": 2,
                                                               "grad_checkpointing": "selective"}, **kw)
    kept = T * (2 * (h + kv + h + f + h) + 4 * H)
    assert sel.step.memory_bytes.activations - full.step.memory_bytes.activations == pytest.approx(L * kept)
    # it fits where no checkpointing does not (the run did run: torchtitan docs/performance.md, Table 1)
    off = plan_training("llama-3-8b", "h100-sxm-80gb", layout={"dp": 8, "zero": 3, "micro_batch": 2}, **kw)
    assert sel.step.fits and not off.step.fits
    # and it recomputes about a third of the forward's FLOPs (k, o, up of each block), full recomputes all of it
    f_sel, f_full = sel.step.hardware_flops_per_step, full.step.hardware_flops_per_step
    assert sel.step.model_flops_per_step < f_sel < f_full
