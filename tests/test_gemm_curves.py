"""GEMM efficiency curves: costmodel/assets/efficiency/gemm_curves.json and costmodel.measured.curves.

The loader is pure Python and works without the measured extra; the tests that compare the curves
with the measured tables read the parquet rows with pyarrow and skip without the extra."""

import json
import sys

import pytest

from costmodel.catalog import load_hardware
from costmodel.errors import InputError
from costmodel.measured import curves
from costmodel.measured.curves import CURVES_PATH, compute_s, efficiency, gemm_compute_s, gemm_efficiency

DATA = json.loads(CURVES_PATH.read_text())
PARAMS = ("e_max", "t0_s", "d_half", "gamma", "m_tile")
SIZES = [1, 2, 8, 17, 64, 128, 255, 256, 1024, 4096, 4097, 16384, 65536]


def test_curves_file_is_complete():
    assert DATA["schema"] == "costmodel.gemm_curves/1"
    assert {"e_max", "t0_s", "d_half", "gamma", "m_tile", "peak_flops_per_s"} <= set(DATA["units"])
    assert DATA["bandwidth_term"]["bandwidth_efficiency"] == 0.92
    seen = set()
    for rec in DATA["curves"]:
        seen.add((rec["hardware_id"], rec["dtype"]))
        for p in PARAMS:
            assert isinstance(rec[p], float) and rec[p] > 0, (rec["hardware_id"], p)
        assert rec["e_max"] <= 1.0
        src = rec["source"]
        for key in ("package", "package_version", "table", "system", "backend", "version", "kernel", "shapes",
                    "provenance"):
            assert src[key], (rec["hardware_id"], rec["dtype"], key)
        assert src["package"] == "aiconfigurator-core" and src["package_version"] == "0.12.0"
        assert src["table"] == f"systems/data/{src['system']}/gemm/{src['backend']}/{src['version']}/gemm_perf.parquet"
        assert src["provenance"].startswith(f"measured (aiconfigurator-core 0.12.0, {src['system']} {src['backend']} "
                                            f"{src['version']} gemm table")
        assert rec["peak_flops_per_s"] > 0 and rec["memory_bandwidth_bytes_per_s"] > 0 and rec["peak_source"]
        for split in ("in_sample", "random_70_30", "band_out", "constant_0_50"):
            assert 0 <= rec["error"][split]["median_abs_rel_err"] <= rec["error"][split]["p90_abs_rel_err"]
    # every measured NVIDIA device has a bf16 curve; Hopper and newer fp8 too
    for hw in ("a100-sxm-80gb", "h100-sxm-80gb", "h200-sxm-141gb", "b200-sxm-192gb", "l40s-48gb", "b300-sxm-288gb",
               "gb200", "gb300", "rtx-pro-6000-96gb"):
        assert (hw, "bf16") in seen
    for hw in ("h100-sxm-80gb", "h200-sxm-141gb", "b200-sxm-192gb", "l40s-48gb", "gb200", "gb300"):
        assert (hw, "fp8") in seen
    assert ("b200-sxm-192gb", "nvfp4") in seen
    assert {g["dtype"] for g in DATA["generic"]} == {"bf16", "fp8", "fp8_block", "nvfp4"}
    for g in DATA["generic"]:
        assert len(g["fitted_on"]) >= 3 and len(g["source"]["tables"]) == len(g["fitted_on"])
        assert set(g["held_out"]) == set(g["fitted_on"])
        u = g["uncertainty"]
        assert 0 < u["median_abs_rel_err"] <= u["p90_abs_rel_err"]


def test_catalog_peaks_are_the_ones_fitted():
    for rec in DATA["curves"]:
        if rec["peak_source"].startswith("costmodel catalog"):
            hw = load_hardware(rec["hardware_id"])
            dt = "fp8" if rec["dtype"] == "fp8_block" else rec["dtype"]
            assert rec["peak_flops_per_s"] == hw.peak_flops(dt)
            assert rec["memory_bandwidth_bytes_per_s"] == hw.memory_bandwidth_bytes_per_s


@pytest.mark.parametrize("rec", DATA["curves"] + DATA["generic"],
                         ids=lambda r: f"{r.get('hardware_id', 'generic')}-{r['dtype']}")
def test_curve_monotone_in_each_dimension_and_at_most_one(rec):
    peak = rec.get("peak_flops_per_s", 1e15)
    for a in SIZES:
        for b in SIZES:
            rows = [[efficiency(rec, x, a, b, peak) for x in SIZES],
                    [efficiency(rec, a, x, b, peak) for x in SIZES],
                    [efficiency(rec, a, b, x, peak) for x in SIZES]]
            for row in rows:
                assert all(0 < e <= rec["e_max"] <= 1.0 for e in row)
                assert all(e2 >= e1 * (1 - 1e-12) for e1, e2 in zip(row, row[1:])), (a, b, row)


def test_curve_formula_by_hand():
    rec = next(r for r in DATA["curves"] if (r["hardware_id"], r["dtype"]) == ("h100-sxm-80gb", "bf16"))
    P = 989.4e12
    m, n, k = 64, 4096, 14336  # m below the tile: padded
    e_c = rec["e_max"] * (4096 / (4096 + rec["d_half"])) ** rec["gamma"]
    t = 2 * max(64, rec["m_tile"]) * n * k / (P * e_c) + rec["t0_s"]
    assert rec["m_tile"] > 64
    assert compute_s(rec, m, n, k, P) == pytest.approx(t, rel=1e-12)
    assert efficiency(rec, m, n, k, P) == pytest.approx(2 * m * n * k / (P * t), rel=1e-12)
    e, src = gemm_efficiency("h100-sxm-80gb", "bf16", m, n, k)
    assert e == pytest.approx(2 * m * n * k / (P * t), rel=1e-12)
    assert src.startswith("GEMM curve fitted to aiconfigurator-core 0.12.0 h100_sxm trtllm 1.3.0rc20 gemm table")
    assert gemm_compute_s("h100-sxm-80gb", "bf16", m, n, k)[0] == pytest.approx(t, rel=1e-12)


def test_generic_curve_uses_the_device_peak():
    g = next(r for r in DATA["generic"] if r["dtype"] == "bf16")
    P = load_hardware("mi300x-192gb").peak_flops("bf16")
    e, src = gemm_efficiency("mi300x-192gb", "bf16", 8192, 8192, 8192)
    assert e == pytest.approx(efficiency(g, 8192, 8192, 8192, P), rel=1e-12)
    assert src.startswith("generic bf16 GEMM curve (no table for mi300x-192gb")
    assert "leave-one-device-out median |error|" in src
    # int8 on a device without an int8 curve reads the fp8 curve class, with the catalog int8 peak
    g8 = next(r for r in DATA["generic"] if r["dtype"] == "fp8")
    e8, _ = gemm_efficiency("tpu-v5e", "int8", 4096, 4096, 4096)
    assert e8 == pytest.approx(efficiency(g8, 4096, 4096, 4096, load_hardware("tpu-v5e").peak_flops("int8")))
    # fp4 has no catalog peak: a device without an nvfp4 curve must be given one
    with pytest.raises(InputError, match="peak_flops_per_s"):
        gemm_efficiency("h100-sxm-80gb", "nvfp4", 4096, 4096, 4096)
    gn = next(r for r in DATA["generic"] if r["dtype"] == "nvfp4")
    got, _ = gemm_efficiency("h100-sxm-80gb", "nvfp4", 4096, 4096, 4096, peak_flops_per_s=4e15)
    assert got == pytest.approx(efficiency(gn, 4096, 4096, 4096, 4e15))


def test_dtype_aliases_and_errors():
    e16, src16 = gemm_efficiency("h200-sxm-141gb", "fp16", 4096, 4096, 4096)
    ebf, srcbf = gemm_efficiency("h200-sxm-141gb", "bfloat16", 4096, 4096, 4096)
    assert e16 == ebf and "(the bf16 curve, used for fp16)" in src16 and "used for" not in srcbf
    assert gemm_efficiency("gb200", "fp4", 4096, 4096, 4096) == gemm_efficiency("gb200", "nvfp4", 4096, 4096, 4096)
    with pytest.raises(InputError, match="dtype"):
        gemm_efficiency("h100-sxm-80gb", "fp64", 1, 1, 1)
    with pytest.raises(InputError, match="k"):
        gemm_efficiency("h100-sxm-80gb", "bf16", 1, 1, 0)


def test_loader_needs_no_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiconfigurator_core", None)
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    e, src = gemm_efficiency("b200-sxm-192gb", "bf16", 4096, 4096, 4096)
    assert 0 < e < 1 and "b200_sxm" in src


# ---- against the measured tables (need the extra) ---------------------------------------------------------

def _measured_rows(system, backend, version, table_dtype):
    aic = pytest.importorskip("aiconfigurator_core")
    pq = pytest.importorskip("pyarrow.parquet")
    from pathlib import Path

    path = Path(aic.__file__).resolve().parent / "systems/data" / system / "gemm" / backend / version / "gemm_perf.parquet"
    t = pq.read_table(path, columns=["gemm_dtype", "m", "n", "k", "latency"])
    return [(m, n, k, lat * 1e-3) for dt, m, n, k, lat in zip(*(t.column(c).to_pylist() for c in t.column_names))
            if dt == table_dtype]


def _model_s(rec, dtype, m, n, k):
    """The roofline with the curve, as the fit scored it."""
    F = 2.0 * m * n * k
    by = curves.WEIGHT_BYTES[dtype] * n * k + 2.0 * (m * k + m * n)
    return max(F / (rec["peak_flops_per_s"] * efficiency(rec, m, n, k, rec["peak_flops_per_s"])),
               by / (rec["memory_bandwidth_bytes_per_s"] * 0.92))


@pytest.mark.parametrize("hw,dtype", [("h200-sxm-141gb", "bf16"), ("h100-sxm-80gb", "fp8"), ("b200-sxm-192gb", "bf16")])
def test_stated_in_sample_error_recomputes_from_the_rows(hw, dtype):
    rec = next(r for r in DATA["curves"] if (r["hardware_id"], r["dtype"]) == (hw, dtype))
    s = rec["source"]
    rows = _measured_rows(s["system"], s["backend"], s["version"], s["table_dtype"])
    assert len(rows) == s["shapes"]
    errs = sorted(abs(_model_s(rec, dtype, m, n, k) / t - 1) for m, n, k, t in rows)
    median = errs[len(errs) // 2] if len(errs) % 2 else 0.5 * (errs[len(errs) // 2 - 1] + errs[len(errs) // 2])
    assert median == pytest.approx(rec["error"]["in_sample"]["median_abs_rel_err"], abs=2e-4)
    # out of sample; the fit weights shapes by their time (large GEMMs dominate a model's time), which costs a
    # little median error on the many small shapes
    assert rec["error"]["random_70_30"]["median_abs_rel_err"] < 0.16
    assert rec["error"]["constant_0_50"]["median_abs_rel_err"] > 2.5 * rec["error"]["in_sample"]["median_abs_rel_err"]
    # large shapes (m, n, k >= 2048; training GEMMs) carry no bias: unweighted, the A100 curve priced them 19% slow
    large = rec["error"]["by_regime"].get("large", {}).get("curve")
    if large and large["points"] >= 50:
        assert abs(large["bias_log"]) < 0.10, large


def test_llama_training_gemms_curve_vs_constant_on_h100():
    """Llama-3-8B layer GEMMs (forward, dX, dW) at micro-batch 1 x seq 4096 on the H100 table: the curve
    is within 10% of the measured sum; 0.50 x peak is ~1.5x too slow (the table runs them at ~78% of peak)."""
    from costmodel.measured import tables_for

    rec = next(r for r in DATA["curves"] if (r["hardware_id"], r["dtype"]) == ("h100-sxm-80gb", "bf16"))
    s = rec["source"]
    measured = {(m, n, k): t for m, n, k, t in _measured_rows(s["system"], s["backend"], s["version"], "bfloat16")}
    table = tables_for("h100-sxm-80gb")
    T = 4096
    gemms = []
    for din, dout in ((4096, 4096), (4096, 1024), (4096, 1024), (4096, 4096), (4096, 14336), (4096, 14336),
                      (14336, 4096)):
        gemms += [(T, dout, din), (T, din, dout), (dout, din, T)]
    # 12 of the 21 are measured shapes; those with 14336 (not a grid value: 12288, 16384) interpolate
    assert sum(g in measured for g in gemms) == 12
    meas = sum(measured[g] if g in measured else table.gemm_s(*g) for g in gemms)
    curve = sum(_model_s(rec, "bf16", *g) for g in gemms)
    const = sum(max(2.0 * m * n * k / (989.4e12 * 0.5), (2 * n * k + 2 * (m * k + m * n)) / (3.35e12 * 0.92))
                for m, n, k in gemms)
    assert curve / meas == pytest.approx(1.0, abs=0.10)
    assert const / meas > 1.4
    achieved = sum(2.0 * m * n * k for m, n, k in gemms) / meas / 989.4e12
    assert 0.7 < achieved < 0.85
