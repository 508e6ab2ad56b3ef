"""costmodel.collectives: the alpha-beta primitives and the named volumes, each against hand arithmetic
(the equations are in the module docstring and docs/formulas.md, "Collectives")."""

from __future__ import annotations

import pytest

import costmodel
from costmodel.catalog import load_hardware
from costmodel.collectives import (CommBreakdown, CommTerm, Link, allgather_s, allreduce_s, alltoall_s,
                                   cp_volume_bytes, dp_sync_terms, dp_sync_volume_bytes, ep_volume_bytes,
                                   exposed_comm_s, p2p_s, pp_volume_bytes, reduce_scatter_s,
                                   ring_allreduce_volume_bytes, tp_volume_bytes)
from costmodel.errors import InputError
from costmodel.parallel import Layout, train_step

LINK = Link(bandwidth_bytes_per_s=100e9, latency_s=5e-6)


def test_ring_allreduce_moves_2_n_minus_1_over_n_of_the_buffer():
    # Patarasuk & Yuan 2009: each of n devices sends 2(n-1)/n x S in 2(n-1) latency steps
    assert ring_allreduce_volume_bytes(1e9, 8) == 2 * 7 / 8 * 1e9
    assert allreduce_s(1e9, 8, LINK) == pytest.approx(2 * 7 / 8 * 1e9 / 100e9 + 14 * 5e-6)
    assert allreduce_s(1e9, 1, LINK) == 0.0
    # tree (NCCL double binary tree): 2 S / B + 2 log2(n) alpha
    assert allreduce_s(1e9, 8, LINK, "tree") == pytest.approx(2 * 1e9 / 100e9 + 6 * 5e-6)
    with pytest.raises(InputError) as err:
        allreduce_s(1e9, 8, LINK, "butterfly")
    assert err.value.field == "algorithm"


def test_allgather_reduce_scatter_alltoall_p2p():
    link = Link(50e9, 0.0)
    assert allgather_s(4e9, 4, link) == pytest.approx(3 / 4 * 4e9 / 50e9)
    assert reduce_scatter_s(4e9, 4, link) == pytest.approx(3 / 4 * 4e9 / 50e9)
    assert alltoall_s(4e9, 4, link) == pytest.approx(3 / 4 * 4e9 / 50e9)
    assert p2p_s(1e9, Link(50e9, 1e-5)) == pytest.approx(1e9 / 50e9 + 1e-5)
    # an all-reduce is a reduce-scatter followed by an all-gather
    assert allreduce_s(4e9, 4, link) == pytest.approx(2 * reduce_scatter_s(4e9, 4, link))


def test_zero3_moves_one_and_a_half_times_the_allreduce_volume():
    # Rajbhandari et al. 2020 (ZeRO), Section 7: stage 3 = all-gather (forward) + all-gather (backward)
    # + reduce-scatter = 3 (n-1)/n P = 1.5 x the 2 (n-1)/n P of DDP's all-reduce
    n, p = 64, 13.5e9
    ddp = dp_sync_volume_bytes(0, p, p, n)
    assert ddp == 2 * 63 / 64 * p
    assert dp_sync_volume_bytes(1, p, p, n) == ddp  # stage 1 shards states only: same traffic
    assert dp_sync_volume_bytes(2, p, p, n) == pytest.approx(ddp)  # reduce-scatter + all-gather
    assert dp_sync_volume_bytes(3, p, p, n) == pytest.approx(1.5 * ddp)
    # with 4 micro-batches the parameters are gathered twice for each of them: (8 + 1) (n-1)/n P
    assert dp_sync_volume_bytes(3, p, p, n, micro_batches=4) == pytest.approx(9 * 63 / 64 * p)


def test_dp_sync_terms_seconds_match_their_volumes():
    n, g = 16, 4e9
    for stage, names in ((0, ["dp_grad_allreduce"]), (2, ["dp_grad_reduce_scatter", "dp_param_allgather"]),
                         (3, ["dp_grad_reduce_scatter", "fsdp_param_allgather"])):
        terms = dp_sync_terms(stage, g, g, n, Link(100e9, 0.0))
        assert [t.name for t in terms] == names
        assert sum(t.volume_bytes for t in terms) == pytest.approx(dp_sync_volume_bytes(stage, g, g, n))
        # no latency: seconds = volume / bandwidth
        assert sum(t.seconds for t in terms) == pytest.approx(dp_sync_volume_bytes(stage, g, g, n) / 100e9)


def test_zero3_step_sends_1p5x_the_ddp_volume_in_a_real_plan():
    # the same Llama-2-7B micro-batch on 16 H100s under DDP and under ZeRO-3: the data-parallel bytes per step
    spec = costmodel.load_model("llama-2-7b")
    micro = costmodel.estimate(spec, "h100-sxm-80gb", task="train", batch=1, seq=1024, precision="bf16")
    hw = load_hardware("h100-sxm-80gb")
    ddp = train_step(spec, micro, hw, Layout(dp=16, zero=0), 1)
    z3 = train_step(spec, micro, hw, Layout(dp=16, zero=3), 1)
    vol = lambda st: sum(t.volume_bytes for t in st.comm_s.terms if t.name.startswith(("dp_", "fsdp_")))
    assert vol(ddp) == pytest.approx(2 * 15 / 16 * micro.memory_bytes.gradients)
    assert vol(z3) == pytest.approx(1.5 * vol(ddp))
    assert "dp_param_allgather" not in z3.comm_s.to_dict()  # no extra all-gather after the step under stage 3


def test_tensor_pipeline_expert_context_volumes():
    # Megatron TP: 4 all-reduces of (tokens x hidden x bytes) per layer; 2 (tp-1)/tp each
    assert tp_volume_bytes(4096, 4096, 2, 8, 32) == pytest.approx(4 * 32 * 2 * 7 / 8 * 4096 * 4096 * 2)
    # pipeline: activations forward + their gradients backward
    assert pp_volume_bytes(4096, 8192, 2) == 2 * 4096 * 8192 * 2
    # GShard all-to-all: 4 per MoE layer of tokens x k x hidden, (ep-1)/ep leaves the device
    assert ep_volume_bytes(4096, 2, 4096, 2, 8, 32) == pytest.approx(4 * 32 * 7 / 8 * 4096 * 2 * 4096 * 2)
    assert ep_volume_bytes(4096, 2, 4096, 2, 1, 32) == 0.0
    # ring attention: K and V all-gathered once forward, twice backward
    assert cp_volume_bytes(8192, 1024, 2, 4, 32) == pytest.approx(3 * 32 * 3 / 4 * 2 * 8192 * 1024 * 2)


def test_exposed_communication_overlaps_only_data_parallel():
    comm = CommBreakdown((CommTerm("tp_allreduce", 1.0, 0.0), CommTerm("dp_grad_allreduce", 4.0, 0.0)))
    # 50% overlap, 10 s of backward: dp hides min(0.5 x 10, 0.5 x 4) = 2 s; tp is never hidden
    assert exposed_comm_s(comm, 10.0, 0.5) == pytest.approx(1.0 + 2.0)
    # a short backward hides less: 4 - 0.5 x 1 = 3.5 s of dp exposed
    assert exposed_comm_s(comm, 1.0, 0.5) == pytest.approx(1.0 + 3.5)
    assert comm.total_s == 5.0 and comm.seconds("tp_allreduce") == 1.0
