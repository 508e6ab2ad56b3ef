"""costmodel.measured: aiconfigurator-core's measured tables, read and interpolated by our code.

References are the parquet rows themselves, read here with pyarrow independently of the loader.
Tests that need the tables skip without the extra (``pytest.importorskip`` inside each test);
the missing-extra behaviour is simulated by hiding the module."""

import math
import sys
from pathlib import Path

import pytest

from costmodel.errors import InputError
from costmodel import measured
from costmodel.measured import MISSING_MESSAGE, system_for


def _tables(hw="h200-sxm-141gb", backend="trtllm"):
    pytest.importorskip("aiconfigurator_core")
    return measured.tables_for(hw, backend)


def _data_dir():
    aic = pytest.importorskip("aiconfigurator_core")
    return Path(aic.__file__).resolve().parent / "systems" / "data"


def _rows(path, columns):
    pq = pytest.importorskip("pyarrow.parquet")
    t = pq.read_table(path, columns=columns)
    return list(zip(*(t.column(c).to_pylist() for c in columns)))


# ---- without the extra ------------------------------------------------------------------------------

def test_missing_extra_one_line_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)  # import fails, find_spec returns None
    assert measured.available() is False
    with pytest.raises(InputError) as err:
        measured.tables_for("h100-sxm-80gb")
    assert str(err.value) == "measured: install costmodel[measured] (aiconfigurator-core==0.12.0)"
    assert err.value.field == "measured" and err.value.message == MISSING_MESSAGE
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match=r"install costmodel\[measured\]"):
        measured.coverage()
    with pytest.raises(InputError, match=r"install costmodel\[measured\]"):
        measured.require()


def test_hardware_mapping_needs_no_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)
    assert system_for("h100-sxm-80gb") == "h100_sxm"
    assert system_for("H200-SXM-141GB") == "h200_sxm"
    assert system_for("gb200") == "gb200" and system_for("b300") == "b300_sxm"
    assert system_for("l40s") == "l40s"  # an aiconfigurator system name passes through
    for hw in ("a100-sxm-40gb", "h100-pcie-80gb", "l4-24gb", "mi300x-192gb", "tpu-v5e"):
        assert system_for(hw) is None
    assert set(measured.NO_TABLE) == {"a100-sxm-40gb", "a100-pcie-80gb", "h100-pcie-80gb", "l4-24gb", "gh200"}


# ---- tables_for and versions ------------------------------------------------------------------------

def test_tables_for_devices_and_backends():
    t = _tables()
    assert t is measured.tables_for("h200-sxm-141gb") is measured.tables_for("h200_sxm")  # one per system
    assert (t.system, t.backend) == ("h200_sxm", "trtllm")
    assert measured.tables_for("h100-pcie-80gb") is None  # spec only, no data
    assert measured.tables_for("a100-sxm-40gb") is None
    assert measured.tables_for("mi300x-192gb") is None
    assert measured.tables_for("b60", "trtllm") is None  # Intel B60: vLLM data only
    assert measured.tables_for("b60", "vllm").has("gemm")
    with pytest.raises(InputError, match="backend"):
        measured.tables_for("h200-sxm-141gb", "tensorrt")


def test_version_resolution_follows_query_slots_and_spec():
    t = _tables("a100-sxm-80gb")
    assert Path(t.table("gemm").path).parent.name == "1.0.0"  # overrides.a100_sxm.trtllm.current
    h = _tables()
    assert Path(h.table("gemm").path).parent.name == "1.3.0rc20"
    assert Path(h.table("nccl").path).parent.name == "2.26.2"  # systems/h200_sxm.yaml misc.nccl_version


def test_lazy_loading_one_op_at_a_time():
    pytest.importorskip("aiconfigurator_core")
    from costmodel.measured.tables import MeasuredTables

    t = MeasuredTables("h100_sxm", "trtllm")
    assert t._ops == {}
    t.gemm_s(128, 4096, 4096)
    assert list(t._ops) == ["gemm"]


# ---- exact at measured points -----------------------------------------------------------------------

def test_gemm_reproduces_every_sampled_row_exactly():
    t = _tables()
    path = _data_dir() / "h200_sxm/gemm/trtllm/1.3.0rc20/gemm_perf.parquet"
    rows = _rows(path, ["gemm_dtype", "m", "n", "k", "latency"])
    assert len(rows) == 100668
    names = {"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block"}
    for dt, m, n, k, lat_ms in rows[::97]:
        assert t.gemm_s(m, n, k, names[dt]) == pytest.approx(lat_ms * 1e-3, rel=1e-9)


def test_attention_mla_moe_reproduce_rows_exactly():
    t = _tables()
    d = _data_dir() / "h200_sxm"
    cols = ["batch_size", "isl", "num_heads", "num_key_value_heads", "head_dim", "window_size", "attn_dtype",
            "kv_cache_dtype", "step", "latency"]
    ctx = _rows(d / "attention/trtllm/1.3.0rc20/context_attention_perf.parquet", cols)
    for b, s, h, kv, hd, w, a, kvd, _, lat in ctx[::211]:
        assert t.context_attention_s(b, s, h, kv, hd, a, kvd, w) == pytest.approx(lat * 1e-3, rel=1e-9)
    gen = _rows(d / "attention/trtllm/1.3.0rc20/generation_attention_perf.parquet", cols)
    for b, _, h, kv, hd, w, a, kvd, step, lat in gen[::173]:
        assert t.generation_attention_s(b, step, h, kv, hd, a, kvd, w) == pytest.approx(lat * 1e-3, rel=1e-9)
    mcols = ["batch_size", "isl", "step", "num_heads", "mla_dtype", "kv_cache_dtype", "latency"]
    for b, s, _, h, a, kvd, lat in _rows(d / "mla/trtllm/1.3.0rc20/context_mla_perf.parquet", mcols)[::37]:
        assert t.mla_context_s(b, s, h, a, kvd) == pytest.approx(lat * 1e-3, rel=1e-9)
    for b, _, step, h, a, kvd, lat in _rows(d / "mla/trtllm/1.3.0rc20/generation_mla_perf.parquet", mcols)[::41]:
        assert t.mla_generation_s(b, step, h, a, kvd) == pytest.approx(lat * 1e-3, rel=1e-9)
    moe_cols = ["kernel_source", "moe_dtype", "num_tokens", "hidden_size", "inter_size", "topk", "num_experts",
                "moe_tp_size", "moe_ep_size", "distribution", "latency"]
    checked = 0
    for ks, dt, tok, hid, inter, topk, ne, tp, ep, dist, lat in _rows(d / "moe/trtllm/1.3.0rc20/moe_perf.parquet",
                                                                     moe_cols)[::401]:
        if ks != "moe_torch_flow_cutlass":  # the kernel with the most rows answers each dtype
            continue
        assert t.moe_s(tok, hid, inter, topk, ne, dt, tp, ep, dist) == pytest.approx(lat * 1e-3, rel=1e-9)
        checked += 1
    assert checked > 100
    assert t.moe_s(16, 1, 1, 1, 1, "bf16") is None  # an unmeasured configuration


def test_nccl_rows_median_of_repeats_and_bytes():
    np = pytest.importorskip("numpy")
    t = _tables()
    rows = _rows(_data_dir() / "h200_sxm/comm/nccl/2.26.2/nccl_perf.parquet",
                 ["op_name", "nccl_dtype", "num_gpus", "message_size", "latency"])
    groups = {}
    for op, dt, n, size, lat in rows:
        groups.setdefault((op, dt, n, size), []).append(lat)
    assert max(len(v) for v in groups.values()) == 2  # this file repeats every point
    for (op, dt, n, size, ), lats in list(groups.items())[::7]:
        nbytes = size * (2 if dt == "half" else 1)  # message_size counts elements
        got = t.nccl_s(op, nbytes, n, "bf16" if dt == "half" else "int8")
        assert got == pytest.approx(math.exp(float(np.median(np.log(lats)))) * 1e-3, rel=1e-9)
    assert t.nccl_s("all_reduce", 1 << 20, 1) == 0.0
    assert t.nccl_s("all_reduce", 1 << 20, 3) is None  # 2, 4, 8 measured
    smallest = min(s for (op, dt, n, s) in groups if (op, dt, n) == ("all_reduce", "half", 8))
    assert t.nccl_s("all_reduce", 64, 8) is None
    assert t.nccl_s("all_reduce", 64, 8, extrapolate=True) == pytest.approx(
        t.nccl_s("all_reduce", smallest * 2, 8), rel=1e-12)  # flat latency floor below the table
    with pytest.raises(InputError, match="op"):
        t.nccl_s("broadcast", 1024, 8)


# ---- between and beyond the measured points -----------------------------------------------------------

def test_gemm_between_nodes_is_log_linear():
    t = _tables()
    assert 2049 in t.table("gemm").grid(("bfloat16",)).axes[0]  # measured m: ... 2048, 2049, 2304 ...
    lo, hi = t.gemm_s(2049, 4096, 4096), t.gemm_s(2304, 4096, 4096)
    m = math.sqrt(2049 * 2304)  # halfway in log m
    assert t.gemm_s(m, 4096, 4096) == pytest.approx(math.sqrt(lo * hi), rel=1e-12)
    assert min(lo, hi) < t.gemm_s(2200, 4096, 4096) < max(lo, hi)


def test_gemm_outside_coverage_and_extrapolation():
    t = _tables()
    assert t.gemm_s(65536, 4096, 4096) is None
    assert t.gemm_s(65536, 4096, 4096, extrapolate=True) == pytest.approx(2 * t.gemm_s(32768, 4096, 4096), rel=1e-12)
    assert t.gemm_s(4096, 131072, 4096, extrapolate=True) == pytest.approx(2 * t.gemm_s(4096, 65536, 4096), rel=1e-12)
    assert t.gemm_s(16, 16, 4096) is None and t.gemm_s(16, 16, 4096, extrapolate=True) is None  # n < 32
    assert t.gemm_s(32768, 65536, 4096) is None  # the collector skipped m*n >= 2**31
    filled = t.gemm_s(32768, 65536, 4096, extrapolate=True)
    assert filled == pytest.approx(2 * t.gemm_s(16384, 65536, 4096), rel=1e-12)  # filled along m first
    # n = k = 65536 was never measured (n*k >= 2**31): filled along n from n = 51200, time ∝ n
    assert t.gemm_s(1024, 65536, 65536) is None
    assert t.gemm_s(1024, 65536, 65536, extrapolate=True) == pytest.approx(
        t.gemm_s(1024, 51200, 65536) * 65536 / 51200, rel=1e-12)
    assert t.gemm_s(64, 4096, 4096, "nvfp4") is None  # no nvfp4 on Hopper
    with pytest.raises(InputError, match="dtype"):
        t.gemm_s(64, 4096, 4096, "fp64")
    with pytest.raises(InputError, match="m"):
        t.gemm_s(0, 4096, 4096)


def test_attention_keys_and_extrapolation():
    t = _tables()
    # GQA-8 and MHA are different grids; an unmeasured KV-head count is None, not a guess
    assert t.context_attention_s(1, 4096, 32, 8, 128) is not None
    assert t.context_attention_s(1, 4096, 32, 32, 128) is not None
    assert t.context_attention_s(1, 4096, 64, 16, 128) is None
    assert t.context_attention_s(1, 4096, 32, 8, 96) is None  # head_dim 96 not measured
    with pytest.raises(InputError, match="num_kv_heads"):
        t.context_attention_s(1, 4096, 32, 6, 128)
    # beyond the longest prompt, causal attention grows with seq^2
    top = t.context_attention_s(1, 16384, 32, 8, 128)
    assert t.context_attention_s(1, 32768, 32, 8, 128) is None
    assert t.context_attention_s(1, 32768, 32, 8, 128, extrapolate=True) == pytest.approx(4 * top, rel=1e-12)
    # fp8 KV cache reads half the bytes: decode attention at long context is faster
    bf = t.generation_attention_s(64, 8191, 32, 8, 128)
    f8 = t.generation_attention_s(64, 8191, 32, 8, 128, kv_dtype="fp8")
    assert f8 < bf


def test_interpolation_error_within_reported():
    """Leave each interior m node of the H200 bf16 GEMM grid out (LogGrid.without) and predict it from
    the rest: the error distribution stays within what benchmarks/results/gemm_curves.md reports, and
    the benchmark's vectorized hold-out equals the grid's own query."""
    np = pytest.importorskip("numpy")
    import json

    from costmodel.measured.curves import CURVES_PATH

    reported = json.loads(CURVES_PATH.read_text())["interpolation_error"]["gemm.m"]
    g = _tables().table("gemm").grid(("bfloat16",))
    errs = []
    for i in range(1, len(g.axes[0]) - 1, 3):
        g2 = g.without(0, i)
        m = g.axes[0][i]
        for j in range(0, len(g.axes[1]), 2):
            for k in range(0, len(g.axes[2]), 2):
                if not g.measured[i, j, k]:
                    continue
                pred = g2.query((m, g.axes[1][j], g.axes[2][k]))
                if pred is None:  # a neighbour was not measured
                    continue
                errs.append(abs(pred / math.exp(g.log_t[i, j, k]) - 1))
    errs = np.asarray(errs)
    assert len(errs) > 2000
    assert np.median(errs) <= 1.5 * reported["median_abs_rel_err"]
    assert np.percentile(errs, 90) <= 1.5 * reported["p90_abs_rel_err"]
    assert reported["median_abs_rel_err"] < 0.05 and reported["p90_abs_rel_err"] < 0.2


def test_provenance_strings():
    t = _tables()
    assert t.provenance("gemm") == ("measured (aiconfigurator-core 0.12.0, h200_sxm trtllm 1.3.0rc20 gemm table; "
                                    "kernel torch_flow; NVIDIA H200; tier collected, complete)")
    assert t.provenance("context_attention").startswith(
        "measured (aiconfigurator-core 0.12.0, h200_sxm trtllm 1.3.0rc20 context attention table")
    assert t.provenance("nccl").startswith("measured (aiconfigurator-core 0.12.0, h200_sxm nccl 2.26.2 nccl table")
    assert "tier legacy" in t.provenance("nccl")
    a = _tables("a100-sxm-80gb")
    assert a.provenance("gemm").startswith("measured (aiconfigurator-core 0.12.0, a100_sxm trtllm 1.0.0 gemm table")
    # L40S: no MLA in trtllm 1.3.0rc20, so the newest older version that has it answers (backward fill)
    assert "l40s trtllm 1.0.0 context mla table" in _tables("l40s-48gb").provenance("context_mla")
    assert _tables("b60", "vllm").provenance("context_mla") is None  # no MLA table at all


def test_coverage_lists_current_folders():
    pytest.importorskip("aiconfigurator_core")
    rows = measured.coverage()
    key = {(r["system"], r["family"], r["backend"], r["version"]) for r in rows}
    assert ("h200_sxm", "gemm", "trtllm", "1.3.0rc20") in key
    assert ("a100_sxm", "gemm", "trtllm", "1.0.0") in key
    assert not any(r["system"] in ("l4", "h100_pcie", "a100_pcie", "a30") for r in rows)
    cur = [r for r in rows if r["system"] == "h200_sxm" and r["family"] == "gemm" and r["backend"] == "trtllm"]
    assert [r["current"] for r in cur] == [True]
