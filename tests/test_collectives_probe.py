"""``probe --collectives``: the bus-bandwidth definitions, a real gloo run on this machine's CPU, storage, and
plans that price their collectives with the stored link."""

from __future__ import annotations

import json

import pytest

from costmodel.collectives import Link, LinkCalibration, allreduce_s, bus_bandwidth_bytes_per_s
from costmodel.errors import InputError
from costmodel.plans import plan_training
from costmodel.profiler.collectives_probe import run_collectives_probe, summarize
from tests.support import run_cli


def test_bus_bandwidth_is_nccl_tests_definition():
    """nccl-tests doc/PERFORMANCE.md: busbw = algbw x 2(n-1)/n for all-reduce, x (n-1)/n for all-gather and
    reduce-scatter. 8 ranks, 1 GB in 10 ms: algbw 100 GB/s -> 175 and 87.5 GB/s."""
    assert bus_bandwidth_bytes_per_s("all_reduce", 1e9, 8, 0.01) == pytest.approx(175e9)
    assert bus_bandwidth_bytes_per_s("all_gather", 1e9, 8, 0.01) == pytest.approx(87.5e9)
    assert bus_bandwidth_bytes_per_s("reduce_scatter", 1e9, 8, 0.01) == pytest.approx(87.5e9)
    # the ring all-reduce of the alpha-beta model run at bus bandwidth B (no latency) shows busbw = B
    t = allreduce_s(1e9, 8, Link(50e9, 0.0))
    assert bus_bandwidth_bytes_per_s("all_reduce", 1e9, 8, t) == pytest.approx(50e9)
    with pytest.raises(InputError, match="op"):
        bus_bandwidth_bytes_per_s("broadcast", 1e9, 8, 0.01)


def test_summary_fits_the_ring_link_it_was_given():
    """Times made by the ring model with a 20 GB/s, 30 us link: the summary's calibration recovers both."""
    n, link = 4, Link(20e9, 30e-6)
    sizes = [2**k for k in range(12, 26, 2)]
    measured = {"world_size": n, "backend": "nccl", "dtype": "bfloat16", "torch": "test",
                "ops": {"all_reduce": [{"bytes": s, "median_s": allreduce_s(s, n, link)} for s in sizes],
                        "all_gather": [], "reduce_scatter": []}}
    cal = summarize(measured, "h100-sxm-80gb")["calibration"]
    assert cal["bus_bandwidth_bytes_per_s"] == pytest.approx(20e9, rel=1e-9)
    assert cal["latency_s"] == pytest.approx(30e-6, rel=1e-9)


def test_probe_runs_on_cpu_with_gloo(tmp_path):
    res = run_collectives_probe(2, "cpu", sizes=(4096, 262144, 4 * 2**20), repeats=3, timeout_s=120,
                                base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res["status"] == "ok", res.get("log_tail", res["message"])
    m = res["measured"]
    assert m["backend"] == "gloo" and m["world_size"] == 2
    rows = res["summary"]["table"]
    assert {r["op"] for r in rows} | set(m["unsupported"]) == {"all_reduce", "all_gather", "reduce_scatter"}
    for r in rows:  # every row's bus bandwidth is the definition applied to its own time
        assert r["busbw_bytes_per_s"] == pytest.approx(bus_bandwidth_bytes_per_s(r["op"], r["bytes"], 2, r["median_s"]))
        assert r["median_s"] > 0


def test_probe_refuses_bad_requests(tmp_path):
    assert run_collectives_probe(1, "cpu", base_dir_path=tmp_path)["status"] == "refused"
    assert run_collectives_probe(2, "tpu", base_dir_path=tmp_path)["status"] == "refused"
    assert "sizes" in run_collectives_probe(2, "cpu", sizes=(1,), base_dir_path=tmp_path)["message"]


def test_plan_prices_tensor_parallel_all_reduce_with_the_calibrated_link():
    """GPT-2 (12 layers, hidden 768), tp 2, micro-batch 1 x 1024 tokens in bf16 under Megatron: 4 all-reduces of
    1024 x 768 x 2 = 1,572,864 bytes per layer, each the faster of ring (S/B + 2 alpha) and tree (2S/B + 2 alpha)
    on the calibrated 10 GB/s, 50 us link."""
    cal = LinkCalibration(hardware="h100-sxm-80gb", world_size=2, backend="nccl", bus_bandwidth_bytes_per_s=10e9,
                          latency_s=50e-6, source="test")
    plan = plan_training("gpt2", "h100-sxm-80gb", workload={"seq": 1024, "precision": "bf16"},
                         layout={"tp": 2}, tokens=1e6, engine="megatron", links=cal)
    s = 1024 * 768 * 2
    per_call = min(s / 10e9 + 2 * 50e-6, 2 * s / 10e9 + 2 * 50e-6)
    tp = next(t for t in plan.step.comm_s.terms if t.name == "tp_allreduce")
    assert tp.seconds == pytest.approx(4 * 12 * per_call)
    assert plan.assumptions["link_calibration"]["bus_bandwidth_bytes_per_s"] == 10e9
    base = plan_training("gpt2", "h100-sxm-80gb", workload={"seq": 1024, "precision": "bf16"},
                         layout={"tp": 2}, tokens=1e6, engine="megatron")
    assert base.assumptions["link_calibration"] is None
    assert next(t for t in base.step.comm_s.terms if t.name == "tp_allreduce").seconds < tp.seconds


def test_cli_stores_the_link_and_plans_use_it(tmp_path):
    env = {"COSTMODEL_DB": str(tmp_path / "c.db"), "COSTMODEL_PROFILER_DIR": str(tmp_path / "prof")}
    missing = run_cli(*["plan-train", "--model", "gpt2", "--hardware", "cpu-generic", "--dp", "2", "--tokens", "1e6",
                       "--seq", "128", "--link-calibration", "latest"], env=env)
    assert missing.returncode == 2 and "no stored link calibration for cpu-generic" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    probe = run_cli(*["probe", "--collectives", "--world-size", "2", "--save", "--json"], env=env, timeout=300)
    assert probe.returncode == 0, probe.stderr
    res = json.loads(probe.stdout)
    cal = res["summary"]["calibration"]
    plan = run_cli(*["plan-train", "--model", "gpt2", "--hardware", "cpu-generic", "--dp", "2", "--tokens", "1e6",
                    "--seq", "128", "--link-calibration", "latest", "--json"], env=env)
    assert plan.returncode == 0, plan.stderr
    used = json.loads(plan.stdout)["assumptions"]["link_calibration"]
    assert used["bus_bandwidth_bytes_per_s"] == pytest.approx(cal["bus_bandwidth_bytes_per_s"])
    f = tmp_path / "link.json"
    f.write_text(json.dumps(res["summary"]))  # a file with the probe's summary works too
    plan2 = run_cli(*["search-layouts", "--model", "gpt2", "--hardware", "cpu-generic", "--tokens", "1e6", "--seq",
                     "128", "--global-batch", "8", "--max-devices", "2", "--link-calibration", str(f), "--json"], env=env)
    assert plan2.returncode == 0, plan2.stderr
