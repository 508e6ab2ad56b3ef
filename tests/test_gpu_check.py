"""``python -m costmodel gpu-check``: the dry run on CPU end to end (every check's code path, the JSON and
Markdown it writes), and the GPU-only logic with stubs: two CUDA devices as torch reports them (UUIDs) against a
stubbed NVML in another order, the energy and budget rules, the reference expectations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nvml_stub import A100_40, H100, L40, FakeNvml, gpu

ROOT = Path(__file__).resolve().parent.parent


def test_gpu_check_does_not_import_torch_in_the_parent():
    code = ("import sys, costmodel.cli; costmodel.cli.build_parser(); import costmodel.profiler.gpucheck; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_gpu_check_dry_run_on_cpu(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COSTMODEL_PROFILER_DIR": str(tmp_path / "prof"),
           "COSTMODEL_LOCK_DIR": str(tmp_path / "locks")}
    out = subprocess.run([sys.executable, "-m", "costmodel", "gpu-check", "--dry-run", "--out", str(tmp_path / "out")],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    [jf] = list((tmp_path / "out").glob("gpu_check_dryrun-cpu_*.json"))
    [mf] = list((tmp_path / "out").glob("gpu_check_dryrun-cpu_*.md"))
    res = json.loads(jf.read_text())
    by = {c["name"]: c for c in res["checks"]}
    assert list(by) == ["environment", "device-mapping", "smoke-profile", "gpt2-amp", "llama2-7b-bf16", "gqa-flops",
                        "lstm-cudnn-flops", "probe", "energy", "concurrent-runs", "data-parallel"]
    ran = ("environment", "smoke-profile", "gpt2-amp", "llama2-7b-bf16", "gqa-flops", "lstm-cudnn-flops", "probe",
           "concurrent-runs", "data-parallel")
    assert all(by[n]["status"] == "pass" for n in ran), {n: by[n]["summary"] for n in ran}
    assert by["device-mapping"]["status"] == by["energy"]["status"] == "skip"  # no GPU, no NVML here
    assert res["verdict"] == "pass" and res["dry_run"] and res["seconds"] < 480
    env_rec = res["environment"]["torch"]
    for key in ("torch", "cudnn_benchmark", "tf32_matmul", "PYTORCH_CUDA_ALLOC_CONF", "CUDA_VISIBLE_DEVICES"):
        assert key in env_rec
    gqa = {r["quantity"]: r for r in by["gqa-flops"]["details"]["expectations"]}
    assert gqa["recomputed attention scores (hardware FLOPs)"]["ok"]  # the CPU flash kernel recomputes the scores
    assert "second run refused, naming the first" in mf.read_text()


FACTS = {"torch": "2.13.0+cu130", "cuda": "13.0", "cuda_available": True, "cudnn": 91900, "cudnn_benchmark": False,
         "tf32_matmul": False, "tf32_cudnn": True, "PYTORCH_CUDA_ALLOC_CONF": None, "CUDA_VISIBLE_DEVICES": "2,1"}


def _inventory(monkeypatch):
    fake = FakeNvml([gpu("GPU-11111111-aaaa", L40), gpu("GPU-22222222-bbbb", H100), gpu("GPU-33333333-cccc", A100_40)])
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    from costmodel.profiler.gpus import nvml_inventory

    return nvml_inventory()


def test_device_mapping_check_compares_torch_uuids_with_nvml(monkeypatch, tmp_path):
    from costmodel.profiler import gpucheck

    inv = _inventory(monkeypatch)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,1")
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    facts = {**FACTS, "devices": [{"cuda_index": 0, "name": "NVIDIA A100-SXM4-40GB", "uuid": "33333333-cccc"},
                                  {"cuda_index": 1, "name": "NVIDIA H100 80GB HBM3", "uuid": "22222222-bbbb"}]}
    res = gpucheck.run_checks(False, 60, ["environment", "device-mapping"], facts, inv, tmp_path / "l", tmp_path)
    mapping = res["checks"][1]
    assert mapping["status"] == "pass", mapping
    rows = mapping["details"]["devices"]
    assert [(r["cuda_index"], r["nvml_index"], r["hardware"]) for r in rows] == [(0, 2, "a100-sxm-40gb"),
                                                                                 (1, 1, "h100-sxm-80gb")]
    # torch disagrees with the parent's map (e.g. FASTEST_FIRST ordered them differently): the check fails
    swapped = {**facts, "devices": [dict(facts["devices"][1], cuda_index=0), dict(facts["devices"][0], cuda_index=1)]}
    res = gpucheck.run_checks(False, 60, ["device-mapping"], swapped, inv, tmp_path / "l", tmp_path)
    assert res["checks"][0]["status"] == "fail" and res["verdict"] == "fail"
    md = gpucheck.markdown(res)
    assert "| device-mapping | fail |" in md
    jp, mp = gpucheck.write_result(res, tmp_path / "out")
    assert json.loads(jp.read_text())["checks"][0]["name"] == "device-mapping" and mp.read_text() == md


def test_budget_energy_and_reference_rules(monkeypatch, tmp_path):
    from costmodel.profiler import gpucheck

    inv = _inventory(monkeypatch)
    facts = {**FACTS, "devices": [{"cuda_index": 0, "name": gpucheck.REFERENCE_GPU, "uuid": "22222222-bbbb"}]}
    # a budget too small for a check skips it, saying why
    res = gpucheck.run_checks(False, 3, ["smoke-profile"], facts, inv, tmp_path / "l", tmp_path)
    assert res["checks"][0]["status"] == "skip" and res["checks"][0]["summary"].startswith("budget:")
    ctx = gpucheck.Context(False, 100, facts, inv, tmp_path / "l", tmp_path)
    assert ctx.on_reference_gpu and ctx.reference["gpt2s_b8_s1024_amp"]["joules_per_step"] > 0
    ref = ctx.reference["gpt2s_b8_s1024_amp"]

    def run(**m):
        return {"status": "ok", "predicted": {"hardware": "h100-sxm-80gb"},
                "measured": {"nvml_available": True, "energy_method": "NVML total energy counter over the window", **m}}

    ctx.runs["gpt2-amp"] = run(energy_j_per_step=ref["joules_per_step"] * 1.1, energy_window_s=2.4,
                               energy_window_steps=34, energy_power_w=530.0)
    assert gpucheck.check_energy(ctx)["status"] == "pass"
    ctx.runs["gpt2-amp"] = run(energy_j_per_step=ref["joules_per_step"], energy_window_s=0.3, energy_window_steps=3,
                               energy_power_w=530.0)
    assert gpucheck.check_energy(ctx)["status"] == "fail"  # a 0.3 s window is too short
    ctx.runs["gpt2-amp"] = run(energy_j_per_step=ref["joules_per_step"], energy_window_s=2.4, energy_window_steps=34,
                               energy_power_w=2000.0)
    assert gpucheck.check_energy(ctx)["status"] == "fail"  # above 110% of the H100's 700 W: a unit or device mix-up
    ctx.runs["gpt2-amp"] = {"status": "ok", "measured": {"nvml_available": False, "nvml_reason": "no NVIDIA GPU"}}
    assert gpucheck.check_energy(ctx)["status"] == "skip"
    # two GPUs are needed for the data-parallel check
    assert gpucheck.check_data_parallel(ctx)["status"] == "skip"


@pytest.mark.parametrize("name", ["gpt2s_b8_s1024_amp", "llama2_7b_b1_p512"])
def test_reference_runs_the_checks_compare_with(name):
    """The expectations come from the H100 sample (how it was measured: its "about"), and its FLOPs used torch's
    own SDPA formulas -- the hardware convention, which the gpt2-amp check compares with forward + backward_hw."""
    from costmodel.profiler.gpucheck import REFERENCE_FILE

    data = json.loads(REFERENCE_FILE.read_text())
    assert "CUDA events" in data["about"] and data["env"]["gpu"] == "NVIDIA H100 80GB HBM3"
    ref = next(r for r in data["results"] if r["name"] == name)
    if name.startswith("gpt2"):
        # GPT-2 small, b8 x 1024: matmuls 3 x 2T(12 L h^2 + h V) + attention (1 fwd + 2.5 bwd) x 4 b s^2 h L
        T, L, h, V, b, s = 8 * 1024, 12, 768, 50257, 8, 1024
        matmul = 2 * T * (12 * L * h * h + h * V)
        attn = 4 * b * s * s * h * L
        assert ref["flops_fwd_bwd_counted"] == 3 * matmul + attn + int(2.5 * attn)
        assert ref["flops_fwd_bwd_counted"] != 3 * matmul + 3 * attn  # not the model-FLOP count
    else:
        assert ref["params_total"] == 6738415616 and ref["kv_cache_bytes_after_prefill"] == 2 * 32 * 512 * 4096 * 2
