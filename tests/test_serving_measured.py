"""Serving op times from aiconfigurator-core's measured tables (costmodel.serving.measured_ops): the op times of an
iteration against the parquet rows themselves (read here with pyarrow, independently of costmodel's loader), the
roofline fallback and its count, provenance, the time-source choice (API, CLI, plan) with and without the extra.

Tests that need the tables skip without the extra (CI installs it: requirements.txt); the missing-extra
behaviour is simulated by monkeypatching ``costmodel.measured.available``."""

from __future__ import annotations

import math
import statistics
import time
from importlib import metadata
from pathlib import Path

import pytest

from costmodel.cli import main
from costmodel.errors import InputError
from costmodel.plans import plan_serving
from costmodel.serving.batching.offline import offline_throughput
from costmodel.serving.engines import get_engine
from costmodel.serving.model import Layout, StepModel

H200 = "h200-sxm-141gb"
TRT = "tensorrt-llm"


def _data_dir() -> Path:
    aic = pytest.importorskip("aiconfigurator_core")
    return Path(aic.__file__).resolve().parent / "systems" / "data" / "h200_sxm"


def _rows(path, columns):
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(path, columns=columns)
    return list(zip(*(t.column(c).to_pylist() for c in columns)))


def _measured(model="llama-3-8b", precision="bf16", tp=1, kv=None, hw=H200):
    pytest.importorskip("aiconfigurator_core")
    sm = StepModel(model, hw, precision=precision, kv_cache_precision=kv,
                   engine=get_engine(TRT).with_(time_source="measured"), layout=Layout(tp=tp))
    assert sm.ops.name == "measured"
    return sm


# ---- each op class equals its own table row ---------------------------------------------------------------
def test_gemm_equals_the_table_row_bf16_and_fp8():
    rows = _rows(_data_dir() / "gemm/trtllm/1.3.0rc20/gemm_perf.parquet", ["gemm_dtype", "m", "n", "k", "latency"])
    for prec, dtype, table_dtype in (("bf16", "bf16", "bfloat16"), ("fp8", "fp8", "fp8")):
        sm = _measured(precision=prec)
        picked = [r for r in rows if r[0] == table_dtype][::2003][:25]
        assert len(picked) >= 10
        for _, m, n, k, lat_ms in picked:
            assert sm.ops.gemm_s(m, n, k, dtype) == pytest.approx(lat_ms * 1e-3, rel=1e-9)
        assert sm.ops.counts[("gemm", "table")] == len(picked)


def test_decode_and_prefill_attention_equal_their_rows():
    """Llama 3 8B (32 query heads, 8 KV heads, head_dim 128, 32 layers) at tp 1: an iteration of n_dec decodes
    with `step` cached tokens each prices decode attention as 32 x the generation-attention row (batch n_dec,
    step); a prefill of one s-token prompt as 32 x the context-attention row (batch 1, isl s)."""
    d = _data_dir() / "attention/trtllm/1.3.0rc20"
    cols = ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "window_size", "attn_dtype",
            "kv_cache_dtype", "step", "latency"]
    gen = [r for r in _rows(d / "generation_attention_perf.parquet", cols)
           if r[2:8] == (32, 8, 128, 0, "bfloat16", "bfloat16")]
    assert len(gen) >= 8
    sm = _measured()
    for b, _, _, _, _, _, _, _, step, lat in gen[::max(len(gen) // 8, 1)][:8]:
        with sm.ops.recording() as rec:
            sm.iteration_s(n_dec=b, ctx=b * step)
        assert rec["seconds"]["generation_attention"][0] == pytest.approx(32 * lat * 1e-3, rel=1e-9)
    ctx = [r for r in _rows(d / "context_attention_perf.parquet", cols)
           if r[0] == 1 and r[2:8] == (32, 8, 128, 0, "bfloat16", "bfloat16")]
    assert len(ctx) >= 6
    for _, s, *_, lat in ctx[::max(len(ctx) // 6, 1)][:6]:
        # one causal prefill of s tokens: s query rows, s^2 / 2 (query, key) pairs (StepModel's pre_attn)
        with sm.ops.recording() as rec:
            sm.iteration_s(n_dec=0, ctx=0, pre_tok=s, pre_attn=s * s / 2.0, pre_kv=0)
        assert rec["seconds"]["context_attention"][0] == pytest.approx(32 * lat * 1e-3, rel=1e-9)


def test_mla_reads_the_mla_tables_off_the_spec():
    """DeepSeek-V3 (128 latent-attention heads, kv_lora_rank 512): at tp 8 a GPU runs 16 heads; decode attention
    of its 61 layers is 61 x the generation-MLA row (batch, step, 16 heads)."""
    from types import SimpleNamespace

    from costmodel.models import load_model
    from costmodel.serving.measured_ops import mla_of

    spec = load_model("deepseek-v3")
    mla = mla_of(spec)
    assert (mla.heads, mla.kv_lora_rank, mla.qk_rope_head_dim) == (128, 512, 64)  # the preset's config.json
    assert mla_of(load_model("llama-3-8b")) is None
    ops = _measured().ops
    stub = SimpleNamespace(tp=8, spec=spec)
    key = ops._mla_key(stub, mla)
    assert key[0] == ("bfloat16", "bfloat16") and key[1] == 16
    rows = [r for r in _rows(_data_dir() / "mla/trtllm/1.3.0rc20/generation_mla_perf.parquet",
                             ["batch_size", "step", "num_heads", "mla_dtype", "kv_cache_dtype", "latency"])
            if r[2:5] == (16, "bfloat16", "bfloat16")]
    assert len(rows) >= 5
    for b, step, _, _, _, lat in rows[::max(len(rows) // 5, 1)][:5]:
        got = ops._attention("generation_mla", stub, b, step, 61, lambda: math.nan, key)
        assert got == pytest.approx(61 * lat * 1e-3, rel=1e-9)
    assert ops._mla_key(stub, replace_dims(mla, kv_lora_rank=256))[0] is None  # a latent shape never measured


def replace_dims(mla, **kw):
    from dataclasses import replace

    return replace(mla, **kw)


def test_allreduce_equals_the_custom_allreduce_row():
    """tp 2: 2 all-reduces per layer of T x hidden bf16 values; the row's message_size counts elements."""
    rows = _rows(_data_dir() / "comm/trtllm/1.3.0rc20/custom_allreduce_perf.parquet",
                 ["allreduce_dtype", "num_gpus", "message_size", "latency"])
    by = {}
    for dt, n, size, lat in rows:
        if dt == "bfloat16" and n == 2 and size % 4096 == 0:
            by.setdefault(size, []).append(lat)
    sm = _measured(tp=2)
    sizes = sorted(by)[::3][:6]
    assert len(sizes) >= 3
    for size in sizes:
        T = size // 4096  # hidden 4096: one decode row per token
        with sm.ops.recording() as rec:
            sm.iteration_s(n_dec=T, ctx=T * 100)
        # 2 all-reduces x 32 layers; repeated rows: their median in log space (as the NCCL tables)
        expect = 2 * 32 * math.exp(statistics.median([math.log(x) for x in by[size]])) * 1e-3
        assert rec["seconds"]["custom_allreduce"][0] == pytest.approx(expect, rel=1e-9)


# ---- fallback, provenance, the choice ---------------------------------------------------------------------
def test_shape_outside_the_tables_falls_back_to_the_roofline_and_is_counted():
    sm = _measured()
    hw, e = sm.hw, sm.engine
    m, n, k = 16, 16, 4096  # n < 32: the collector measured no such GEMM, and nothing extrapolates to it
    before = sm.ops.counts[("gemm", "roofline")]
    got = sm.ops.gemm_s(m, n, k, "bf16")
    # roofline by hand: max(2 m n k / (peak x eta), (n k + m (n + k)) x 2 bytes / (bandwidth x eta_bw))
    expect = max(2.0 * m * n * k / (hw.peak_flops("bf16") * e.matmul),
                 (n * k * 2 + m * (n + k) * 2) / (hw.memory_bandwidth_bytes_per_s * e.bandwidth))
    assert got == pytest.approx(expect, rel=1e-12)
    assert sm.ops.counts[("gemm", "roofline")] == before + 1
    # an op with no table at all (elementwise) is counted as roofline in every iteration
    with sm.ops.recording() as rec:
        sm.iteration_s(n_dec=8, ctx=8000)
    assert rec["lookups"][("elementwise", "roofline")] == 1 and rec["seconds"]["elementwise"][2] > 0


def test_provenance_names_package_backend_version_and_system():
    sm = _measured()
    version = metadata.version("aiconfigurator-core")
    assert sm.ops.provenance == f"measured (aiconfigurator-core {version}, trtllm 1.3.0rc20 tables, h200_sxm)"
    prov = sm.ops.provenances()
    assert "gemm" in prov["gemm"] and "NVIDIA H200" in prov["gemm"]


def test_auto_chooses_measured_on_h200_for_tensorrt_llm_and_reports_shares():
    pytest.importorskip("aiconfigurator_core")
    plan = plan_serving("llama-3-8b", H200, engine=TRT, precision="fp8", time_source="auto", batch_sizes=(1, 8))
    assert plan.op_times.startswith("measured (aiconfigurator-core ") and "h200_sxm" in plan.op_times
    sh = plan.op_time_shares
    assert set(sh) == {"table", "extrapolated", "roofline"} and sum(sh.values()) == pytest.approx(1.0)
    assert sh["table"] > 0.5
    roof = plan_serving("llama-3-8b", H200, engine=TRT, precision="fp8", batch_sizes=(1, 8))
    assert roof.op_times.startswith("analytic (roofline") and roof.op_time_shares == {}
    # auto on a device without tables: the roofline, saying why
    l4 = plan_serving("llama-3-8b", "l4-24gb", engine=TRT, time_source="auto", batch_sizes=(1,))
    assert l4.op_times.startswith("analytic") and "no measured trtllm tables for l4-24gb" in l4.op_times
    with pytest.raises(InputError, match="time_source"):
        plan_serving("llama-3-8b", "l4-24gb", engine=TRT, time_source="measured", batch_sizes=(1,))
    with pytest.raises(InputError, match="time_source"):
        plan_serving("llama-3-8b", H200, engine=TRT, time_source="tables", batch_sizes=(1,))


def test_one_offline_run_well_under_a_second():
    sm = _measured(precision="fp8")
    offline_throughput(sm, 1024, 1024)  # loads the tables once
    t0 = time.perf_counter()
    res = offline_throughput(sm, 2048, 2048)
    assert time.perf_counter() - t0 < 1.0 and res.output_tokens_per_s > 0


def test_cli_prints_the_source_and_the_shares(capsys):
    pytest.importorskip("aiconfigurator_core")
    argv = ["plan-serve", "--model", "llama-3-8b", "--hardware", H200, "--engine", TRT, "--precision", "fp8",
            "--batch-sizes", "1,8", "--time-source", "auto"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "op times: measured (aiconfigurator-core" in out and "from the tables" in out


# ---- without the extra --------------------------------------------------------------------------------------
def test_without_the_extra_auto_is_analytic_and_measured_is_one_line(monkeypatch, capsys):
    import costmodel.measured

    monkeypatch.setattr(costmodel.measured, "available", lambda: False)
    plan = plan_serving("llama-3-8b", H200, engine=TRT, time_source="auto", batch_sizes=(1,))
    assert plan.op_times.startswith("analytic") and "pip install costmodel[measured]" in plan.op_times
    with pytest.raises(InputError, match=r"pip install costmodel\[measured\]"):
        plan_serving("llama-3-8b", H200, engine=TRT, time_source="measured", batch_sizes=(1,))
    argv = ["plan-serve", "--model", "llama-3-8b", "--hardware", H200, "--engine", TRT, "--batch-sizes", "1",
            "--time-source", "measured"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: time_source: measured:") and "pip install costmodel[measured]" in err
    assert err.count("\n") == 1, err
