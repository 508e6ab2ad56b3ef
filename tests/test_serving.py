"""costmodel.serving against independent references: hand arithmetic, closed-form queueing (M/D/1), exact
probability (distinct experts, speculative decoding), brute force, and the published serving runs."""

from __future__ import annotations

import itertools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from costmodel.catalog import load_hardware
from costmodel.cli import main
from costmodel.errors import InputError
from costmodel.plans import plan_serving
from costmodel.serving.batching.offline import offline_throughput
from costmodel.serving.capacity import plan_capacity
from costmodel.serving.engines import default_engine, get_engine, resolve_engine
from costmodel.serving.features import (Speculation, expected_tokens_per_step, kv_transfer_s,
                                        simulate_disaggregated)
from costmodel.layers import expected_experts as expected_distinct_experts
from costmodel.serving.model import Layout, StepModel
from costmodel.serving.plan import step_model
from costmodel.serving.simulate import Requests, poisson_requests, read_trace, simulate

ROOT = Path(__file__).resolve().parent.parent
H100 = load_hardware("h100-sxm-80gb")


# ---- engine profiles -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("hw,engine", [("h100-sxm-80gb", "vllm"), ("l4-24gb", "vllm"), ("mi300x-192gb", "vllm-rocm"),
                                       ("tpu-v5e", "jetstream"), ("cpu-generic", "cpu-eager"),
                                       ("apple-m4-max-36gb", "hf-eager"), ("gaudi3-128gb", "hf-eager")])
def test_default_engine_per_device_with_a_reason(hw, engine):
    prof, why = default_engine(load_hardware(hw))
    assert prof.name == engine and why
    assert resolve_engine(None, load_hardware(hw))[0].name == engine


def test_one_default_everywhere(capsys):
    # the API's default, the CLI's (printed and in the JSON) and the old names as aliases
    plan = plan_serving("llama-3-8b", "l4-24gb", prompt=512, generate=128, batch_sizes=(1,))
    assert plan.engine == "vllm" and "NVIDIA" in plan.engine_reason
    assert main(["plan-serve", "--model", "llama-3-8b", "--hardware", "l4-24gb", "--batch-sizes", "1", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["engine"] == "vllm" and d["offline_throughput_tokens_per_s"] == pytest.approx(
        plan.offline_throughput_tokens_per_s)
    assert main(["plan-serve", "--model", "llama-3-8b", "--hardware", "l4-24gb", "--batch-sizes", "1"]) == 0
    assert "engine: vllm (NVIDIA GPU" in capsys.readouterr().out
    assert get_engine("eager").name == "hf-eager" and get_engine("compiled").name == "vllm"
    with pytest.raises(InputError, match="engine"):
        get_engine("tgi-9000")


def test_l4_vs_h100_seed_shows_the_difference():
    # the seed the issue names: 101 ms/token on both devices under eager; an optimised server is
    # bandwidth-bound, so decode follows the memory bandwidth ratio (3.35 TB/s / 0.30 TB/s = 11x)
    l4 = plan_serving("llama-3-8b", "l4-24gb", prompt=1024, generate=256)
    h100 = plan_serving("llama-3-8b", "h100-sxm-80gb", prompt=1024, generate=256)
    ratio = l4.points[0].decode_per_token_s / h100.points[0].decode_per_token_s
    assert 6.0 < ratio < 12.0
    assert h100.offline_usd_per_million_tokens < l4.offline_usd_per_million_tokens
    eager = plan_serving("llama-3-8b", "h100-sxm-80gb", prompt=1024, generate=256, engine="hf-eager")
    assert eager.points[0].decode_per_token_s > 10 * h100.points[0].decode_per_token_s  # the HF loop's host time


# ---- step model by hand ----------------------------------------------------------------------------------------
def test_decode_step_by_hand():
    # Llama-3-8B bf16 batch 1 on an H100 under vLLM: every matmul weight read once (7.50e9 weights incl. LM head,
    # 2 bytes) + the KV of 1,000 positions (128 KiB each) at bandwidth x efficiency, + host time per iteration
    eng = get_engine("vllm")
    sm = StepModel("llama-3-8b", H100, engine=eng)
    matmul = 32 * (4096 * 4096 * 2 + 4096 * 1024 * 2 + 3 * 4096 * 14336) + 128256 * 4096
    bytes_ = matmul * 2 + 1000 * 131072
    expect = bytes_ / (3.35e12 * eng.bandwidth) + eng.iteration_overhead_s + 32 * eng.layer_overhead_s
    got = sm.iteration_s(n_dec=1, ctx=1000)
    assert got == pytest.approx(expect, rel=0.03)  # the rest: activations and norms


def test_kv_bytes_tp_and_quantization():
    sm = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    assert sm.kv_bytes_per_token == 2 * 32 * 8 * 128 * 2  # 131,072
    fp8 = StepModel("llama-3-8b", H100, engine=get_engine("vllm"), kv_cache_precision="fp8")
    assert fp8.kv_bytes_per_token == 65536
    tp2 = StepModel("llama-3-8b", H100, engine=get_engine("vllm"), layout=Layout(tp=2))
    assert tp2.kv_bytes_per_token == 65536 and tp2.weights_bytes == pytest.approx(sm.weights_bytes / 2)
    # 32 query heads over 16 devices: the 8 KV heads are replicated, one per device
    tp16 = StepModel("llama-3-8b", H100, engine=get_engine("vllm"), layout=Layout(tp=16))
    assert tp16.kv_bytes_per_token == 2 * 32 * 1 * 128 * 2
    with pytest.raises(InputError, match="layout.tp"):
        StepModel("llama-3-8b", H100, engine=get_engine("vllm"), layout=Layout(tp=3))


def test_sliding_window_per_engine():
    # Mistral-7B-v0.1 (window 4,096 on all 32 layers): vLLM caches at most the window per layer; TensorRT-LLM
    # attends over and caches everything unless max_attention_window is set
    vllm = StepModel("mistral-7b", H100, engine=get_engine("vllm"))
    trt = StepModel("mistral-7b", H100, engine=get_engine("tensorrt-llm"))
    assert vllm.kv_bytes(20000) == 32 * 2 * 8 * 128 * 2 * 4096
    assert trt.kv_bytes(20000) == 32 * 2 * 8 * 128 * 2 * 20000
    assert vllm.iteration_s(n_dec=8, ctx=8 * 20000, ctx_win=8 * 4096) < trt.iteration_s(n_dec=8, ctx=8 * 20000)


def test_distinct_experts_exact():
    # brute force: every token picks k of E experts uniformly; count the expected union size
    E, k = 4, 2
    subsets = list(itertools.combinations(range(E), k))
    for tokens in (1, 2, 3):
        total = sum(len(set().union(*combo)) for combo in itertools.product(subsets, repeat=tokens))
        brute = total / len(subsets) ** tokens
        assert expected_distinct_experts(E, k, tokens) == pytest.approx(brute)
    assert expected_distinct_experts(8, 2, 1) == 2.0
    assert expected_distinct_experts(8, 2, 10_000) == pytest.approx(8.0)


def test_moe_decode_reads_more_experts_at_larger_batch():
    sm = StepModel("mixtral-8x7b", H100, precision="fp8", engine=get_engine("vllm"), layout=Layout(tp=2))
    t1, t64 = sm.iteration_s(n_dec=1, ctx=100), sm.iteration_s(n_dec=64, ctx=6400)
    # batch 1 reads 2 of 8 experts per layer, batch 64 all 8: the weight traffic grows ~3x, far from 64x
    assert 1.5 < t64 / t1 < 4.0
    ep = StepModel("mixtral-8x7b", H100, precision="fp8", engine=get_engine("vllm"),
                   layout=Layout(ep=2, attention_dp=True))
    assert ep.weights_bytes < StepModel("mixtral-8x7b", H100, precision="fp8", engine=get_engine("vllm")).weights_bytes
    # attention DP + EP over 2 ranks: each MoE layer dispatches and combines T k h x 2 bytes by all-to-all,
    # (n-1)/n of it over NVLink x link efficiency + (n-1) latencies (alpha-beta), 2 x 32 layers per iteration
    T, link = 64, ep.link
    a2a = (2 - 1) / 2 * T * 2 * 4096 * 2 / (link.bandwidth_bytes_per_s * ep.engine.link_efficiency) + link.latency_s
    assert ep.ops.alltoall_s(T * 2 * 4096 * 2, 2, link) == pytest.approx(a2a)
    fast = StepModel("mixtral-8x7b", H100, precision="fp8", layout=Layout(ep=2, attention_dp=True),
                     engine=get_engine("vllm").with_(link_efficiency=1.0))
    assert ep.iteration_s(n_dec=T, ctx=T * 100) - fast.iteration_s(n_dec=T, ctx=T * 100) == pytest.approx(
        2 * 32 * (a2a - ((T * 2 * 4096 * 2) / 2 / link.bandwidth_bytes_per_s + link.latency_s)), rel=1e-6)


# ---- queueing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rho", [0.5, 0.8])
def test_md1_mean_wait(rho):
    # one request at a time (max_num_seqs 1), fixed lengths: deterministic service S, Poisson arrivals.
    # Pollaczek-Khinchine for M/D/1: mean wait in queue W = rho / (2 mu (1 - rho)), mu = 1/S.
    eng = get_engine("tensorrt-llm").with_(max_num_seqs=1, request_overhead_s=0.0)
    sm = StepModel("llama-3-8b", H100, engine=eng)
    one = simulate(sm, Requests(np.zeros(1), np.array([256]), np.array([64])))
    S = float(one.e2e_s[0])
    prefill = float(one.ttft_s[0])
    n = 20000
    res = simulate(sm, poisson_requests(rho / S, n, 256, 64, seed=3))
    wait = float(np.mean(res.ttft_s)) - prefill
    assert wait == pytest.approx(rho / (2 * (1 / S) * (1 - rho)), rel=0.08)


def test_saturation_matches_offline_throughput():
    # all requests at t = 0 (infinite rate): the simulator's throughput approaches the steady-state formula
    for name in ("tensorrt-llm", "vllm"):
        sm = StepModel("llama-3-8b", H100, engine=get_engine(name))
        off = offline_throughput(sm, 512, 256)
        sim = simulate(sm, poisson_requests(math.inf, 6000, 512, 256))
        assert sim.output_tokens_per_s == pytest.approx(off.output_tokens_per_s, rel=0.10), name


def test_offline_by_hand_kv_bound():
    # TensorRT-LLM reserves prompt + output per request: B = floor(pool / (blocks of 2,560 tokens x KV/token))
    sm = StepModel("llama-3-8b", H100, engine=get_engine("tensorrt-llm"))
    off = offline_throughput(sm, 2048, 512)
    per_req = math.ceil(2560 / 32) * 32 * 131072
    B = math.floor(sm.kv_pool_bytes / per_req)
    assert off.limited_by == "kv_cache" and off.concurrency == B
    t = sm.iteration_s(n_dec=B, ctx=B * (2048 + 256), pre_tok=B * 2048 / 511, pre_attn=B / 511 * 2048 ** 2 / 2,
                       pre_kv=B / 511 * 2048 * 1.5, n_logits=B + B / 511, n_seqs=B + B / 511)
    assert off.output_tokens_per_s == pytest.approx(B / t * 512 / 511, rel=1e-9)


def test_static_batching_is_slower_than_continuous():
    sm = StepModel("llama-3-8b", H100, engine=get_engine("hf-eager"))
    res = simulate(sm, poisson_requests(math.inf, 64, 128, 32))
    assert res.output_tokens_per_s < offline_throughput(StepModel("llama-3-8b", H100, engine=get_engine("vllm")),
                                                        128, 32).output_tokens_per_s


def test_closed_loop_littles_law():
    # c users, no think time: throughput (requests/s) x mean end-to-end latency = c (Little's law)
    sm = StepModel("llama-3-8b", H100, engine=get_engine("vllm").with_(request_overhead_s=0.0))
    res = simulate(sm, poisson_requests(math.inf, 800, 512, 128), concurrency=16)
    assert res.requests_per_s * float(np.mean(res.e2e_s)) == pytest.approx(16, rel=0.05)


def test_simulator_speed_10000_requests():
    sm = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    reqs = poisson_requests(20.0, 10_000, 512, 256, distribution="lognormal", spread=0.5, seed=1)
    t0 = time.perf_counter()
    res = simulate(sm, reqs)
    assert time.perf_counter() - t0 < 10.0  # about 1 s alone; generous for shared CI cores
    assert res.completed == 10_000 and np.isfinite(res.ttft_s).all()


def test_on_demand_preempts_when_the_pool_runs_out():
    sm = StepModel("llama-3-8b", "l4-24gb", engine=get_engine("vllm"))
    res = simulate(sm, poisson_requests(math.inf, 300, 1024, 1024))
    assert res.preemptions > 0 and res.completed == 300
    trt = StepModel("llama-3-8b", "l4-24gb", engine=get_engine("tensorrt-llm"))
    assert simulate(trt, poisson_requests(math.inf, 300, 1024, 1024)).preemptions == 0


# ---- features ------------------------------------------------------------------------------------------------
def test_speculative_tokens_per_step():
    assert expected_tokens_per_step(0.8, 4) == pytest.approx((1 - 0.8 ** 5) / 0.2)  # 3.3616
    assert expected_tokens_per_step(0.0, 4) == 1.0 and expected_tokens_per_step(1.0, 4) == 5.0
    # Monte Carlo: accept drafted tokens until the first rejection, then the target adds one
    rng = np.random.default_rng(0)
    draws = rng.random((200_000, 4)) < 0.7
    accepted = np.where(draws.all(1), 4, np.argmin(draws, 1))
    assert float(np.mean(accepted + 1)) == pytest.approx(expected_tokens_per_step(0.7, 4), rel=0.01)


def test_speculation_speeds_up_low_batch_decode():
    plain = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    draft, _ = step_model("llama-3.2-1b", H100)
    spec = StepModel("llama-3-8b", H100, engine=get_engine("vllm"), speculation=Speculation(k=4, alpha=0.8, draft=draft))
    tpot_plain = plain.iteration_s(n_dec=1, ctx=1000)
    tpot_spec = spec.iteration_s(n_dec=1, ctx=1000) / spec.tokens_per_step
    assert tpot_spec < 0.75 * tpot_plain
    assert spec.kv_pool_bytes < plain.kv_pool_bytes  # the draft's weights
    assert spec.kv_bytes_per_token == plain.kv_bytes_per_token + draft.kv_bytes_per_token


def test_prefix_caching_skips_prefill_and_shares_blocks():
    sm = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    base = offline_throughput(sm, 4000, 100)
    hit = offline_throughput(sm, 4000, 100, prefix_hit=0.75)
    assert hit.output_tokens_per_s > 1.5 * base.output_tokens_per_s
    with pytest.raises(InputError, match="prefix_hit"):
        offline_throughput(sm, 4000, 100, prefix_hit=1.0)


def test_disaggregated_ttft_adds_the_kv_transfer():
    pre = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    dec = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    res = simulate_disaggregated(pre, dec, 4.0, 2048, 256, num_requests=300)
    # 2,048 tokens x 128 KiB over 50 GB/s x link efficiency + 10 us
    xfer = 2048 * 131072 / (5e10 * pre.engine.link_efficiency) + 10e-6
    assert res.transfer_s == pytest.approx(xfer) == pytest.approx(kv_transfer_s(pre, 2048))
    assert np.nanmedian(res.ttft_s) == pytest.approx(np.nanmedian(res.prefill.ttft_s) + xfer)
    assert res.summary()["devices"] == 2


# ---- limits --------------------------------------------------------------------------------------------------
def test_position_limit_everywhere(capsys):
    import costmodel

    with pytest.raises(InputError, match="takes at most 8,192"):
        plan_serving("llama-3-8b", "h100-sxm-80gb", prompt=8000, generate=500)
    with pytest.raises(InputError, match="takes at most 1,024"):
        costmodel.estimate("gpt2", task="infer", prompt=1000, generate=100)
    sm = StepModel("llama-3-8b", H100, engine=get_engine("vllm"))
    with pytest.raises(InputError, match="takes at most 8,192"):
        simulate(sm, Requests(np.zeros(1), np.array([8000]), np.array([500])))
    assert main(["plan-serve", "--model", "gpt2", "--prompt", "1000", "--generate", "100"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: generate: ") and err.count("\n") == 1
    assert plan_serving("gpt2", "h100-sxm-80gb", prompt=512, generate=128).max_context == 1024


# ---- capacity ------------------------------------------------------------------------------------------------
def test_capacity_plan_meets_the_slo_and_prices_it():
    cap = plan_capacity("llama-3-8b", qps=12, input_tokens=512, output_tokens=128, slo_ttft_s=0.5, slo_tpot_s=0.04,
                        hardware=("l4-24gb", "h100-sxm-80gb"), tps=(1, 2), precisions=("bf16",), num_requests=300)
    b = cap.best
    assert b is not None and b.feasible
    assert b.replicas == math.ceil(12 / b.max_rate_per_replica - 1e-9)
    assert b.usd_per_million_tokens == pytest.approx(b.usd_per_hour / (12 * 128 * 3600 / 1e6))
    assert b.ttft_p99_s <= 0.5 and b.tpot_p99_s <= 0.04
    assert all(b.usd_per_hour <= c.usd_per_hour for c in cap.candidates if c.feasible and c.usd_per_hour is not None)
    assert any(not p.feasible for p in cap.frontier) and any(p.feasible for p in cap.frontier)
    with pytest.raises(InputError, match="qps"):
        plan_capacity("llama-3-8b", qps=0, input_tokens=512, output_tokens=128, slo_ttft_s=0.5, slo_tpot_s=0.04)


def test_cli_simulation_and_fleet(tmp_path, capsys):
    argv = ["plan-serve", "--model", "llama-3-8b", "--hardware", "h100-sxm-80gb", "--qps", "4", "--requests", "300",
            "--slo-ttft-ms", "500", "--slo-tpot-ms", "50", "--tp-options", "1", "--batch-sizes", "1,8", "--json"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["simulation"]["ttft_s"]["p99"] > 0 and d["capacity"]["best"]["replicas"] >= 1
    assert d["simulation"]["goodput_requests_per_s"] > 0
    trace = tmp_path / "t.csv"
    trace.write_text("arrival_s,input_tokens,output_tokens\n0.0,100,20\n0.5,200,10\n0.25,50,5\n")
    reqs = read_trace(trace)
    assert list(reqs.arrival_s) == [0.0, 0.25, 0.5]
    assert main(["plan-serve", "--model", "llama-3-8b", "--trace", str(trace), "--batch-sizes", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["simulation"]["requests"] == 3
    for bad, field in ((["--engine", "nope"], "engine"), (["--slo-ttft-ms", "100"], "slo_ttft_ms"),
                       (["--qps", "-1"], "qps"), (["--trace", str(tmp_path / "missing.csv")], "trace")):
        assert main(["plan-serve", "--model", "llama-3-8b", *bad]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {field}") and err.count("\n") == 1, err


# ---- measured per-op tables (tests/test_serving_measured.py has the rest) -------------------------------------
def test_measured_time_source_without_the_extra(monkeypatch):
    import costmodel.measured

    monkeypatch.setattr(costmodel.measured, "available", lambda: False)
    with pytest.raises(InputError, match=r"pip install costmodel\[measured\]"):
        StepModel("llama-3-8b", H100, engine=get_engine("tensorrt-llm").with_(time_source="measured"))
    auto = StepModel("llama-3-8b", H100, engine=get_engine("tensorrt-llm").with_(time_source="auto"))
    roof = StepModel("llama-3-8b", H100, engine=get_engine("tensorrt-llm"))
    assert auto.ops.name == "roofline" and "not installed" in auto.ops.note
    assert auto.iteration_s(n_dec=8, ctx=800) == roof.iteration_s(n_dec=8, ctx=800)


# ---- the published runs ---------------------------------------------------------------------------------------
def test_published_offline_runs_within_20_percent():
    """The shipped engine parameters against the published offline runs of the families they were fitted on
    (benchmarks/published_serving.json): at least 80% within +-20% (in-sample; leave-one-source-out scores are in
    benchmarks/results/published_serving.md)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import published_serving as ps

    cases, skipped = ps.load_cases()
    assert sum(skipped.values()) == 6  # the Intel Arc Pro B60 runs: no hardware record
    shipped = {k: ps.OPTIMISED_KERNELS[k] for k in ps.OPTIMISED_PRIOR}
    # the families the shipped parameters were fitted on (Llama 2/3, Mistral, Mixtral: ``supported_today`` in the
    # truth base); the 2026 families (Qwen3 MoE, Llama 4, DeepSeek-R1, gpt-oss) score lower and are reported in
    # benchmarks/results/published_serving.md and docs/accuracy.md, not pinned here
    errs = [ps.predict(c, shipped)["output_tokens_per_s"] / ps.published_value(c.r, "output_tokens_per_s") - 1
            for c in cases if c.kind == "offline" and c.r["model"]["supported_today"]]
    assert len(errs) >= 700
    assert sum(abs(e) <= 0.20 for e in errs) / len(errs) >= 0.80
