"""The device probe (costmodel.profiler.probe): microbenchmarks in a child process -> efficiency fields.

References: the efficiency fractions are the measured rates divided by the hardware record's datasheet numbers
(costmodel/assets/hardware/cpu-generic.json: fp32 peak 4.096e12 FLOP/s, bandwidth 3.072e11 bytes/s); the measured values
themselves can only be checked for plausibility on an unknown CI machine (bounds below, each named)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from costmodel.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def probed():
    from costmodel.profiler.probe import run_probe

    return run_probe("cpu", threads=1, timeout_s=300)


def test_probe_measures_plausible_rates(probed):
    m = probed
    assert m["threads"] == 1
    fp32 = m["gemm_flops_per_s"]["fp32"]
    # one core of any x86/ARM CPU from the last 15 years: above 1 GFLOP/s (SSE2, no FMA) and below 1 TFLOP/s
    # (2 AVX-512 FMA units at 4 GHz = 256 GFLOP/s per core)
    assert 1e9 < fp32 < 1e12
    assert m["gemm_n"]["fp32"] in (256, 512, 1024) and m["gemm_n"]["bf16"] in (256, 512, 1024)
    # DRAM copy: above 0.5 GB/s (a single DDR3 channel streams ~10 GB/s) and below 1 TB/s (no CPU socket's DRAM)
    assert 5e8 < m["copy_bytes_per_s"] < 1e12
    # a tiny eager module call: above 0.1 us (a bare C++ dispatch) and below 10 ms
    assert 1e-7 < m["host_s_per_call"] < 1e-2


def test_probe_efficiency_is_rate_over_datasheet(probed):
    from costmodel.perf import default_efficiency
    from costmodel.catalog import load_hardware
    from costmodel.profiler.probe import probe_calibration, probe_efficiency

    eff, rows, _ = probe_efficiency(probed, "cpu-generic")
    assert eff.matmul_fp32 == pytest.approx(probed["gemm_flops_per_s"]["fp32"] / 4.096e12, rel=1e-12)
    assert eff.matmul == pytest.approx(probed["gemm_flops_per_s"]["bf16"] / 8.192e12, rel=1e-12)
    assert eff.bandwidth == pytest.approx(probed["copy_bytes_per_s"] / 3.072e11, rel=1e-12)
    assert eff.overhead_s == probed["host_s_per_call"]
    base = default_efficiency(load_hardware("cpu-generic"))
    assert (eff.step_overhead_s, eff.elementwise_traffic) == (base.step_overhead_s, base.elementwise_traffic)
    assert [r["quantity"] for r in rows][-1] == "host time per eager call"
    cal = probe_calibration(probed, "cpu-generic", "cpu: test")
    assert cal["method"] == "probe" and cal["n_runs"] == 0 and set(cal["fitted_fields"]) <= {
        "matmul", "matmul_fp32", "bandwidth", "overhead_s"}
    # a prediction with it is the estimator's own arithmetic with these fields
    import costmodel

    t = costmodel.estimate("simple-cnn-28", hardware="cpu-generic", task="train", batch=64, precision="fp32",
                           efficiency=eff).time_s.step_s
    assert math.isfinite(t) and t > 0


def test_probe_rejects_bad_device_and_enforces_its_limit():
    from costmodel.profiler.probe import run_probe

    with pytest.raises(InputError, match="device"):
        run_probe("tpu")
    for bad in (0.05, float("nan"), float("inf"), 1e308, -5, "soon", 90000):
        with pytest.raises(InputError, match="timeout"):
            run_probe("cpu", timeout_s=bad)
    with pytest.raises(RuntimeError, match="limit"):
        run_probe("cpu", timeout_s=1)  # torch import + five timed measurements take longer: the child is killed


def test_cli_probe_saves_and_calibrate_starts_from_it(tmp_path):
    import os

    from costmodel.profiler.env import device_label
    from costmodel.storage import Store

    db = tmp_path / "p.db"
    env = dict(os.environ)
    out = subprocess.run([sys.executable, "-m", "costmodel", "probe", "--threads", "1", "--save", "--json",
                          "--db", str(db)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    cal = json.loads(out.stdout)
    label = device_label("cpu")
    stored = Store(db).latest_calibration(label)
    assert stored["method"] == "probe" and stored["efficiency"] == cal["efficiency"]
    # a later fit from stored runs starts from the probe (its "before" is the probe's efficiency)
    from known_efficiency import known_efficiency_records
    from costmodel.profiler.calibrate import calibrate_device

    store = Store(db)
    for r in known_efficiency_records():
        store.save_measurement(r)
    fit = calibrate_device(store, label)
    assert fit["base_efficiency"] == cal["efficiency"]
    bad = subprocess.run([sys.executable, "-m", "costmodel", "probe", "--device", "gpu0"], cwd=ROOT,
                         capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "device" in bad.stderr and "Traceback" not in bad.stderr


def test_profile_page_probe_button(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from costmodel.profiler.env import device_label
    from costmodel.profiler.probe import probe_efficiency
    from costmodel.storage import Store

    db = tmp_path / "page.db"
    monkeypatch.setenv("COSTMODEL_DB", str(db))
    monkeypatch.setenv("COSTMODEL_PROFILER_DIR", str(tmp_path / "prof"))
    at = AppTest.from_file(str(ROOT / "costmodel_dashboard" / "app.py"), default_timeout=300)
    at.query_params["threads"] = "1"
    at.switch_page("app_pages/profile.py")
    at.run()
    at.button(key="profile.probe").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    stored = Store(db).latest_calibration(device_label("cpu"))
    assert stored["method"] == "probe" and stored["probe"]["threads"] == 1
    shown = next(d.value for d in at.dataframe if "fraction" in d.value.columns).set_index("quantity")
    assert shown.loc["host time per eager call", "measured"] == stored["probe"]["host_s_per_call"]
    eff, _, _ = probe_efficiency(stored["probe"], "cpu-generic")
    fields = next(d.value for d in at.dataframe if "field" in d.value.columns).set_index("field")
    assert fields.loc["matmul_fp32", "after"] == pytest.approx(eff.matmul_fp32, rel=1e-12)
