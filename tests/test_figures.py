"""The dashboard's figure builders (costmodel/ui/figures.py) plot the estimator's numbers, unchanged."""

from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest

import costmodel

from costmodel.ui import figures, page_state, sweeps, tables
from costmodel.catalog import load_hardware
from costmodel.units import GiB


@pytest.fixture(scope="module")
def train_est():
    return costmodel.estimate("llama-2-7b", hardware="a100-sxm-80gb", task="train", batch=1, seq=2048)


@pytest.mark.parametrize("kwargs", [
    dict(model="llama-2-7b", task="train", batch=1, seq=2048),  # peak at the start of backward
    dict(model="gpt2", task="train", batch=1, seq=128),  # small activations: peak in the optimizer step
    dict(model="llama-2-7b", task="train", batch=1, seq=2048, lora_rank=16, precision="int4"),
    dict(model="llama-3-8b", task="infer", batch=8, prompt=2048, generate=256, precision="bf16"),
    dict(model="resnet-50", task="train", batch=64, image_size=224),
])
def test_memory_figure_stacks_to_the_device_total(kwargs):
    kwargs = dict(kwargs)
    est = costmodel.estimate(kwargs.pop("model"), hardware="a100-sxm-80gb", **kwargs)
    fig = figures.memory_figure(est)
    assert isinstance(fig, go.Figure)
    bars = [t for t in fig.data if t.type == "bar"]
    total = sum(t.x[0] for t in bars)
    assert total == pytest.approx(est.memory_bytes.device_total / GiB, rel=1e-12)
    # the weights bar is the estimator's weight bytes, and the last bar the runtime overhead
    assert bars[0].name == "weights" and bars[0].x[0] == est.memory_bytes.weights / GiB
    assert bars[-1].x[0] == est.memory_bytes.runtime_overhead / GiB
    # the capacity line sits at the device's memory (80 GiB for the A100 80GB catalog record)
    line = [s for s in fig.layout.shapes if s.type == "line"][0]
    assert line.x0 == est.memory_bytes.capacity / GiB == 80.0
    assert ("does NOT fit" in fig.layout.title.text) == (not est.memory_bytes.fits)


def test_peak_segments_name_the_phase_components():
    # Llama-3-8B, 2 x 4096: activations dominate, the peak is at the start of backward
    est = costmodel.estimate("llama-3-8b", hardware="a100-sxm-80gb", task="train", batch=2, seq=4096)
    m = est.memory_bytes
    assert m.peak_phase == "start of backward"
    segs = dict(tables.peak_segments(est))
    # weights + optimizer states + every saved activation + loss buffers = the peak
    assert segs["weights"] == m.weights and segs["optimizer states"] == m.optimizer
    assert segs["activations (saved for backward)"] == m.activations
    assert sum(v for k, v in segs.items() if not k.startswith("runtime")) == pytest.approx(m.peak, rel=1e-12)
    # GPT-2, 1 x 128: the optimizer step is the peak: weights + gradients + states + step temporaries
    est = costmodel.estimate("gpt2", hardware="a100-sxm-80gb", task="train", batch=1, seq=128)
    m = est.memory_bytes
    assert m.peak_phase == "optimizer step"
    segs = dict(tables.peak_segments(est))
    assert segs["gradients"] == m.gradients and segs["optimizer states"] == m.optimizer
    assert m.weights + m.gradients + m.optimizer + m.transient == pytest.approx(m.peak, rel=1e-12)


def test_time_figure_bars_are_time_s(train_est):
    fig = figures.time_figure(train_est)
    bar = fig.data[0]
    assert list(bar.x) == ["forward", "backward", "recompute", "optimizer"]
    assert list(bar.y) == [train_est.time_s.to_dict()[k] for k in bar.x]
    assert train_est.perf.bound in fig.layout.title.text


def test_roofline_uses_the_assumed_efficiency(train_est):
    hw = load_hardware("a100-sxm-80gb")
    fig = figures.roofline_figure(train_est, hw)
    eff = train_est.assumptions["efficiency"]
    roof = fig.data[0]
    assert max(roof.y) == pytest.approx(3.12e14 * eff["matmul"])  # A100 bf16 dense peak x matmul efficiency
    datasheet = fig.data[1]
    assert max(datasheet.y) == pytest.approx(3.12e14)
    achieved = [s for s in fig.layout.shapes if s.type == "line"][0].y0
    assert achieved == pytest.approx(train_est.flops.total / train_est.time_s.step_s)


def test_layers_figure_is_the_ledger(train_est):
    fig = figures.layers_figure(train_est, top=50)
    bar = fig.data[0]
    assert sum(bar.x) == pytest.approx(sum(r.forward_flops * r.count for r in train_est.layers))
    assert sum(bar.x) == pytest.approx(train_est.flops.forward)  # full FT: the ledger sums to the forward


def test_compare_and_sweep_figures():
    rows = [tables.compare_row(hw, costmodel.estimate("gpt2", hardware=hw, batch=8, seq=1024))
            for hw in ("t4-16gb", "a100-sxm-80gb")]
    fig = figures.compare_figure(rows, "time_s", "t", "s")
    assert list(fig.data[0].y) == [r["time_s"] for r in rows]
    state = {**page_state.ESTIMATE_STATE, "hw": "a100-sxm-80gb"}
    srows = sweeps.sweep_rows(state, "seq", [256, 512, 1024])
    fig = figures.sweep_figure(srows, "seq")
    est = costmodel.estimate("gpt2", hardware="a100-sxm-80gb", batch=1, seq=512)
    assert fig.data[0].y[1] == est.memory_bytes.device_total / GiB
    assert fig.data[2].y[1] == est.time_s.step_s


def test_pareto_front():
    pts = [{"setting": "a", "time_s": 1.0, "cost_usd": 5.0}, {"setting": "b", "time_s": 2.0, "cost_usd": 3.0},
           {"setting": "c", "time_s": 3.0, "cost_usd": 4.0}, {"setting": "d", "time_s": 4.0, "cost_usd": 1.0},
           {"setting": "e", "time_s": float("nan"), "cost_usd": 1.0}]
    front = figures.pareto_front([p for p in pts if not math.isnan(p["time_s"])], "time_s", "cost_usd")
    assert [p["setting"] for p in front] == ["a", "b", "d"]  # c is slower and dearer than b
    fig = figures.pareto_figure(pts)
    assert list(fig.data[1].x) == [1.0, 2.0, 4.0]
    assert len(fig.data[0].x) == 4  # the NaN point is left out


def test_state_query_round_trip():
    state = {**page_state.ESTIMATE_STATE, "preset": "llama-3-8b", "batch": 16, "ckpt": True, "hw_mem_gib": 24.5}
    q = page_state.state_to_query(state, page_state.ESTIMATE_STATE)
    assert q == {"preset": "llama-3-8b", "batch": "16", "ckpt": "1", "hw_mem_gib": "24.5"}
    back, problems = page_state.state_from_query(q, page_state.ESTIMATE_STATE)
    assert back == state and not problems
    _, problems = page_state.state_from_query({"batch": "1.5", "ckpt": "maybe"}, page_state.ESTIMATE_STATE)
    assert [p.split(":")[0] for p in problems] == ["batch", "ckpt"]


def test_build_config_checks_heads():
    with pytest.raises(costmodel.InputError) as e:
        page_state.build_config(2, 1000, 7, 7, 2000, 100)
    assert e.value.field == "model.heads"
    with pytest.raises(costmodel.InputError) as e:
        page_state.build_config(2, 1024, 16, 5, 2000, 100)
    assert e.value.field == "model.kv_heads"
    cfg = page_state.build_config(2, 1024, 16, 4, 2048, 100, experts=8, top_k=2)
    assert cfg["model_type"] == "mixtral" and cfg["num_local_experts"] == 8


def test_plan_figures_are_the_plan():
    from costmodel import plans

    plan = plans.plan_training("gpt2", "a100-sxm-80gb", tokens=1e9, global_batch=64,
                               layout=dict(dp=4, pp=2, micro_batch=2))
    fig = figures.plan_step_figure(plan)
    parts = {t.name: t.x[0] for t in fig.data}
    s = plan.step
    assert parts["pipeline bubble"] == s.bubble_s and parts["optimizer step"] == s.optimizer_s
    assert sum(parts.values()) == pytest.approx(s.compute_s + s.optimizer_s + s.exposed_comm_s)
    assert s.step_s == pytest.approx(s.compute_s + s.optimizer_s + s.exposed_comm_s)
    fig = figures.plan_memory_figure(plan)
    assert sum(t.x[0] for t in fig.data) == pytest.approx(s.memory_bytes.device_total / GiB)
    rows = sweeps.scaling_rows("gpt2", "a100-sxm-80gb", {"seq": 1024}, [1, 2, 4], 1, 1, 0, 2, False, 64, {},
                              tokens=1e8)
    fig = figures.scaling_figure(rows)
    assert list(fig.data[0].x) == [1, 2, 4]
    assert list(fig.data[1].y) == [r["cost_usd"] for r in rows]


def test_serving_figures_are_the_plan():
    from costmodel import plans

    plan = plans.plan_serving("llama-3-8b", "l4-24gb", prompt=512, generate=128, batch_sizes=(1, 4, 64))
    fig = figures.serving_figure(plan)
    assert list(fig.data[0].y) == [p.throughput_tokens_per_s for p in plan.points]
    assert list(fig.data[1].y) == [p.decode_per_token_s * 1e3 for p in plan.points]
    fig = figures.serving_cost_figure(plan)
    assert list(fig.data[0].y) == [p.usd_per_million_tokens for p in plan.points]
    assert fig.layout.xaxis.type == "category"


def test_a_large_search_draws_its_whole_front_and_a_sample():
    # 3,000 layouts: the front found by brute force (no other point faster-or-equal and cheaper-or-equal, better in
    # one), every point of it drawn and labelled; the rest thinned to MAX_SCATTER_POINTS, said in the legend
    import random

    from costmodel.ui.figures import MAX_SCATTER_POINTS, pareto_figure

    rng = random.Random(7)
    pts = [{"t": rng.uniform(1, 100), "c": rng.uniform(1, 100), "k": f"p{i}"} for i in range(3000)]
    brute = {p["k"] for p in pts
             if not any(q["t"] <= p["t"] and q["c"] <= p["c"] and (q["t"] < p["t"] or q["c"] < p["c"]) for q in pts)}
    fig = pareto_figure(pts, x="t", y="c", label="k")
    options, front = fig.data[-2], fig.data[-1]
    assert set(front.text) == brute
    assert len(options.x) == len(brute) + MAX_SCATTER_POINTS
    assert options.name == f"options ({len(brute) + MAX_SCATTER_POINTS:,} of 3,000 shown)"
