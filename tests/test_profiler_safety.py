"""The profiler's runs as processes, and what a run builds and measures, on CPU: interrupts and orphans, statuses,
time limits, the hard memory limit, the memory guard on the built model, isolated extra passes, models built in
their dtype, registered architectures only, the KV-cache precision, GradScaler, the data-parallel check's
refusals and gradient dtype, the FLOP-count cache and the timing breakdown.

Every test that starts a child gives it its own lock directory (the real one is machine-wide)."""

from __future__ import annotations

import dataclasses

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from costmodel.errors import InputError
from costmodel.profiler import ProfileRequest, lock_holder, run_profile, start_profile
from costmodel.profiler import runner as runner_mod

ROOT = Path(__file__).resolve().parent.parent
TINY_GPT2 = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=2, n_embd=64, n_head=4,
                 vocab_size=1000, n_positions=128)
TINY_LLAMA = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
HANG = dict(model="simple-cnn-28", workload={"task": "train", "batch": 1, "precision": "fp32"}, fault="hang")


def env_for(tmp_path) -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "COSTMODEL_PROFILER_DIR": str(tmp_path / "prof"),
            "COSTMODEL_LOCK_DIR": str(tmp_path / "locks"), "PYTHONPATH": str(ROOT)}


def wait_for(cond, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    return cond()


def pid_gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # dead, not yet reaped by init
    except OSError:
        return True


def newest_run(tmp_path) -> Path | None:
    runs = sorted((tmp_path / "prof" / "runs").glob("*"), key=lambda p: p.stat().st_mtime)
    return runs[-1] if runs else None


# ---- interrupts and orphans ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sig,name", [(signal.SIGINT, "SIGINT"), (signal.SIGTERM, "SIGTERM")])
def test_interrupting_profile_cancels_the_run_and_frees_the_device(tmp_path, sig, name):
    """Before: a traceback, and a worker left running under PID 1 holding the lock until its own deadline."""
    cmd = [sys.executable, "-m", "costmodel", "profile", "--model", "gpt2", "--set", "n_layer=1", "--set", "n_embd=64",
           "--set", "n_head=2", "--task", "train", "--batch", "1", "--seq", "32", "--steps", "10000",
           "--timeout", "300", "--threads", "1"]
    cli = subprocess.Popen(cmd, cwd=ROOT, env=env_for(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    holder = wait_for(lambda: lock_holder("cpu", tmp_path / "locks"))
    assert holder, "the run never took the device lock"
    assert wait_for(lambda: "measure" in (newest_run(tmp_path) / "progress.jsonl").read_text(), 60)
    t0 = time.time()
    cli.send_signal(sig)
    out, err = cli.communicate(timeout=30)
    assert cli.returncode == 1
    assert f"cancelled -- cancelled by {name}" in out and "Traceback" not in err
    assert time.time() - t0 < 10
    assert pid_gone(holder["pid"]) and lock_holder("cpu", tmp_path / "locks") is None  # free at once


PARENT = """
import sys, threading, time
from costmodel.profiler import ProfileRequest, start_profile
req = ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"}, fault="hang", timeout_s=300)
box = {}
def go():
    box["h"] = start_profile(req)
if sys.argv[1] == "thread":  # as a Streamlit script thread does: PR_SET_PDEATHSIG cannot be used there
    t = threading.Thread(target=go); t.start(); t.join()
else:
    go()
print(box["h"].run_dir, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("where", ["main", "thread"])
def test_the_worker_dies_with_its_parent(tmp_path, where):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, where], cwd=ROOT, env=env_for(tmp_path),
                              stdout=subprocess.PIPE, text=True)
    run_dir = Path(parent.stdout.readline().strip())
    holder = wait_for(lambda: lock_holder("cpu", tmp_path / "locks"))
    assert holder
    parent.kill()  # SIGKILL: the parent gets no chance to clean up
    parent.wait()
    assert wait_for(lambda: pid_gone(holder["pid"]), 10), "the worker outlived its parent"
    # (a dying multi-threaded process shows as a zombie a moment before its last thread closes its files)
    assert wait_for(lambda: lock_holder("cpu", tmp_path / "locks") is None, 5)
    if where == "thread":  # no PDEATHSIG: the parent pipe's end of file stopped it, and it said why
        res = json.loads((run_dir / "result.json").read_text())
        assert res["status"] == "cancelled" and "parent process ended" in res["message"]


def test_a_child_killed_from_outside_is_killed_not_oom(tmp_path):
    h = start_profile(ProfileRequest(**HANG, timeout_s=120), base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert wait_for(lambda: lock_holder("cpu", tmp_path / "locks"))
    os.kill(h.process.pid, signal.SIGKILL)
    res = h.wait(timeout=20)
    assert res.status == "killed" and "signal 9 (SIGKILL)" in res.message and "not by the profiler" in res.message
    assert lock_holder("cpu", tmp_path / "locks") is None


def test_exit_statuses():
    from costmodel.profiler.proc import exit_status

    assert exit_status(-9, None, 3, 4)[0] == "oom"  # the cgroup's oom_kill count rose: the OOM killer
    assert exit_status(-9, None, 3, 3)[0] == "killed"
    assert exit_status(-15)[0] == "killed" and "SIGTERM" in exit_status(-15)[1]
    assert exit_status(-11) == ("error", "the child process crashed with signal 11 (SIGSEGV) without a result")
    assert exit_status(3)[0] == "error"


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e308, 0.5, 86401, -1, "soon", True])
def test_time_limits_are_validated(bad):
    with pytest.raises(InputError, match="timeout_s"):
        ProfileRequest("gpt2", {"task": "train"}, timeout_s=bad)


def test_cli_time_limits_are_one_line_errors(tmp_path):
    for args in (["probe", "--timeout", "nan"], ["probe", "--timeout", "inf"], ["probe", "--timeout", "1e308"],
                 ["profile", "--model", "mlp-mnist", "--timeout", "nan"], ["gpu-check", "--budget", "nan"]):
        out = subprocess.run([sys.executable, "-m", "costmodel", *args], cwd=ROOT, env=env_for(tmp_path),
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 2 and "Traceback" not in out.stderr, args
        assert len(out.stderr.strip().splitlines()) == 1 and "finite number of seconds" in out.stderr
    assert not (tmp_path / "prof" / "runs").exists() or not list((tmp_path / "prof" / "runs").iterdir())


# ---- memory: the hard limit on a CPU child, the guard on the built model ----------------------------------------------

def test_cpu_child_has_a_hard_memory_limit(tmp_path, monkeypatch):
    """A run that allocates far beyond its prediction fails as "oom" naming the limit, instead of taking the host."""
    monkeypatch.setattr(runner_mod, "MEMORY_LIMIT_FACTOR", 0.05)
    monkeypatch.setattr(runner_mod, "MEMORY_LIMIT_SLACK_BYTES", 0)
    res = run_profile(ProfileRequest("gpt2", {"task": "train", "batch": 1, "seq": 32, "precision": "fp32"},
                                     config_overrides={"n_layer": 1}, timeout_s=120, threads=1),
                      base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "oom", (res.message, res.stderr_tail[-800:])
    assert "hard memory limit" in res.message and "0.05 x the predicted memory" in res.message


GUARD_CFG = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=1, n_embd=64, n_head=2,
                 vocab_size=400000, n_positions=64, tie_word_embeddings=False)


def _misread_untied(monkeypatch):
    """An importer that reads the config differently from transformers (here: assumes tied embeddings, as the
    gpt2 importer once did): the prediction comes from the tied model, the child builds the untied one."""
    real_predict = runner_mod.predict

    def predict(request, *args, **kwargs):
        name, cfg, _, _, notes = real_predict(request, *args, **kwargs)
        tied = dataclasses.replace(request, model={**GUARD_CFG, "tie_word_embeddings": True})
        _, _, pred, est, _ = real_predict(tied, *args, **kwargs)
        return name, cfg, pred, est, notes

    monkeypatch.setattr(runner_mod, "predict", predict)


def test_memory_guard_checks_the_built_models_real_parameters(tmp_path, monkeypatch):
    """With tie_word_embeddings=false the model holds a second 400000 x 64 matrix (102 MB) that a misreading
    prediction lacks. The guard re-checks with the real bytes."""
    wl = {"task": "train", "batch": 1, "seq": 16, "precision": "fp32", "optimizer": "sgd"}
    req = ProfileRequest(GUARD_CFG, wl, timeout_s=120, threads=1, count_flops=False)
    _misread_untied(monkeypatch)
    _, _, pred, _, _ = runner_mod.predict(req)
    need = pred["device_total_bytes"] + runner_mod.CHILD_PROCESS_BYTES
    extra = 400000 * 64 * 4 * 2  # the untied matrix and its gradient (SGD keeps no state)
    avail = (need + extra / 2) / runner_mod.MEMORY_MARGIN  # the prediction fits; the real model does not
    monkeypatch.setattr(runner_mod, "available_memory_bytes", lambda device, entry=None: (int(avail), "test memory"))
    res = run_profile(req, base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "refused" and res.message.startswith("Unsupported: memory guard after build"), res.message
    import re

    assert re.search(r"holds 0\.19\d GiB of parameters and buffers, the prediction assumed 0\.09\d GiB \(\+(99|100)%\)",
                     res.message), res.message
    monkeypatch.undo()
    _misread_untied(monkeypatch)
    res = run_profile(req, base_dir_path=tmp_path, lock_dir=tmp_path / "locks")  # plenty of memory: runs, and says so
    assert res.status == "ok" and any(re.search(r"\(\+(99|100)%\)", n) for n in res.notes)
    assert res.measured["params_total"] == pytest.approx(2 * res.predicted["params_total"], rel=0.01)


@pytest.mark.parametrize("arch", ["AutoConfig", "os", "pipeline", "GenerationConfig"])
def test_only_registered_model_classes_are_built(tmp_path, arch):
    res = run_profile(ProfileRequest({**TINY_GPT2, "architectures": [arch]}, {"task": "infer", "batch": 1, "prompt": 8,
                                     "generate": 1, "precision": "fp32"}, timeout_s=120, count_flops=False),
                      base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "refused" and "not a model class registered in transformers' auto mappings" in res.message


# ---- what is built and run ---------------------------------------------------------------------------------------------

class _Recorder:
    """Every floating tensor an op creates (dtype, elements), through a TorchDispatchMode."""

    def __enter__(self):
        import torch
        from torch.utils._python_dispatch import TorchDispatchMode

        rec = self.made = []

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                for t in out if isinstance(out, (tuple, list)) else [out]:
                    if isinstance(t, torch.Tensor) and t.is_floating_point():
                        rec.append((t.dtype, t.numel()))
                return out

        self.mode = Mode()
        self.mode.__enter__()
        return self

    def __exit__(self, *exc):
        self.mode.__exit__(*exc)

    def largest(self, dtype):
        return max((n for d, n in self.made if d == dtype), default=0)


@pytest.mark.parametrize("cfg", [TINY_LLAMA, TINY_GPT2, {"family": "mlp", "name": "m", "input_dim": 64, "hidden": [128],
                                                         "output_dim": 10}])
def test_models_are_built_in_their_dtype(cfg):
    """Before: built in fp32 then cast -- a bf16 model briefly held 3x its bytes, and the fp32 blocks stayed cached."""
    import torch

    from costmodel.profiler.build import build
    from costmodel.workload import Workload

    wl = Workload(task="infer", batch=1, prompt=8, generate=1, precision="bf16")
    with _Recorder() as rec:
        built = build(cfg, wl, "cpu")
    params = list(built.model.parameters())
    assert {p.dtype for p in params} == {torch.bfloat16}
    biggest = max(p.numel() for p in params)
    assert rec.largest(torch.bfloat16) >= biggest
    assert rec.largest(torch.float32) < biggest / 10  # at most small fp32 buffers (e.g. rotary inv_freq)
    # the recorder sees the old way's fp32 weights: this test fails if the build goes back to it
    if "model_type" in cfg:
        import transformers

        hf = transformers.AutoConfig.for_model(**cfg)
        with _Recorder() as old:
            getattr(transformers, cfg["architectures"][0])(hf).to(torch.bfloat16)
        assert old.largest(torch.float32) >= biggest


def _job(req: ProfileRequest) -> dict:
    name, cfg, pred, _, _ = runner_mod.predict(req)
    return {"run_id": "in-process", "request": req.to_dict(), "workload": req.workload, "config": cfg,
            "deadline_unix": time.time() + 300, "lock_key": "test", "predicted_device_total_bytes": 0,
            "predicted_parts": {}}


def test_failed_extra_passes_keep_the_measured_steps(monkeypatch):
    """Before: a failure in the memory / KV-cache / FLOP pass threw away the measured times and peak."""
    from costmodel.profiler import counters, memory, worker

    def broken(*a, **k):
        raise RuntimeError("CUPTI_ERROR_NOT_INITIALIZED (injected)")

    monkeypatch.setattr(counters, "flop_counter", broken)
    monkeypatch.setattr(memory, "profile_allocations", broken)
    monkeypatch.setattr(worker, "_cache_bytes", broken)
    req = ProfileRequest(TINY_LLAMA, {"task": "infer", "batch": 1, "prompt": 8, "generate": 2, "precision": "fp32"},
                         steps=2, warmup=0, threads=1, flops_cache=False)
    out = worker.measure(_job(req), lambda *a, **k: None)
    m = out["measured"]
    assert m["prefill_s"] > 0 and len(m["decode_per_token_s_all"]) == 2 and m["params_total"] > 0
    for name in ("memory", "kv-cache", "flops"):
        assert m["passes"][name]["status"] == "failed" and "CUPTI_ERROR_NOT_INITIALIZED" in m["passes"][name]["error"]
        assert any(n.startswith(f"the {name} pass failed") for n in out["notes"])
    assert "fvcore" not in m["passes"]  # fvcore follows the FLOP pass


def test_kv_cache_precision_is_honoured_or_refused(tmp_path):
    from costmodel.profiler.build import check_workload
    from costmodel.workload import Workload

    check_workload(Workload(task="infer", precision="bf16", kv_cache_precision="bf16"))  # what the run stores
    check_workload(Workload(task="infer", precision="fp32"))
    res = run_profile(ProfileRequest(TINY_LLAMA, {"task": "infer", "precision": "fp32", "kv_cache_precision": "fp16"}),
                      base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "refused" and res.message.startswith("kv_cache_precision: a fp16 KV cache is not profiled")


def test_amp_fp16_training_uses_a_grad_scaler_and_records_the_environment(tmp_path):
    res = run_profile(ProfileRequest({"family": "mlp", "name": "m", "input_dim": 64, "hidden": [64], "output_dim": 10},
                                     {"task": "train", "batch": 4, "precision": "amp-fp16", "optimizer": "adamw"},
                                     steps=2, warmup=1, timeout_s=120, threads=1),
                      base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "ok", res.message
    assert res.measured["grad_scaler"] is True
    env = res.environment
    for key in ("float32_matmul_precision", "cudnn_benchmark", "PYTORCH_CUDA_ALLOC_CONF", "CUDA_VISIBLE_DEVICES",
                "CUDA_DEVICE_ORDER", "sdpa_kernel"):
        assert key in env, key


def test_sdpa_backward_is_counted_as_model_flops_end_to_end(tmp_path):
    """GQA Llama through SDPA (the CPU flash kernel): the counted backward equals the estimator's (attention 2x
    forward), the recomputed scores are reported apart, and hardware FLOPs = model + recompute."""
    b, s = 2, 32
    res = run_profile(ProfileRequest(TINY_LLAMA, {"task": "train", "batch": b, "seq": s, "precision": "fp32",
                                                  "attention": "fused", "dropout": False},
                                     steps=1, warmup=0, timeout_s=180, threads=1, fvcore=False, flops_cache=False),
                      base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    assert res.status == "ok", res.message
    m, p = res.measured, res.predicted
    assert m["sdpa_kernels"] == ["_scaled_dot_product_flash_attention_for_cpu"]
    assert m["counter_forward_flops"] == pytest.approx(p["flops_forward"], rel=1e-9)
    assert m["counter_backward_flops"] == pytest.approx(p["flops_backward"], rel=1e-9)
    L, H, d = 2, 4, 16
    assert m["counter_attention_recompute_flops"] == L * 2 * b * H * s * s * d
    assert m["counter_backward_hw_flops"] == m["counter_backward_flops"] + m["counter_attention_recompute_flops"]


# ---- data-parallel check ------------------------------------------------------------------------------------------------

MLP = {"family": "mlp", "name": "mlp-dp", "input_dim": 32, "hidden": [32], "output_dim": 4}


def test_data_parallel_refusals(tmp_path, monkeypatch):
    from nvml_stub import H100, FakeNvml, gpu

    from costmodel.profiler import distributed, env

    run = distributed.run_data_parallel
    wl = {"task": "train", "batch": 4, "precision": "fp32", "optimizer": "sgd"}
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([gpu("GPU-only0000-0000", H100)]))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    out = run(MLP, wl, world_size=2, device="cuda", lock_dir=tmp_path)
    assert out["status"] == "refused" and out["message"].startswith("world_size: 2 ranks need 2 GPUs, but this process "
                                                                    "sees 1")
    assert run(MLP, wl, world_size=1, lock_dir=tmp_path)["message"].startswith("world_size: must be")
    infer = {"task": "infer", "batch": 4, "precision": "fp32"}  # a valid inference workload: not a training run
    assert run(MLP, infer, lock_dir=tmp_path)["message"].startswith("task:")
    assert run(MLP, {**wl, "precision": "int8", "lora_rank": 4, "lora_targets": "fc1"},
               lock_dir=tmp_path)["message"].startswith("precision:")
    assert run(MLP, wl, timeout_s=float("nan"), lock_dir=tmp_path)["message"].startswith("timeout_s:")
    monkeypatch.setattr(env, "host_memory_available_bytes", lambda: 2**20)
    out = run(MLP, wl, world_size=2, lock_dir=tmp_path)
    assert out["status"] == "refused" and "predicted memory of 2 ranks" in out["message"]


def test_data_parallel_gradients_in_their_own_dtype(tmp_path):
    from costmodel.profiler.distributed import run_data_parallel

    dp = run_data_parallel(MLP, {"task": "train", "batch": 4, "precision": "bf16", "optimizer": "sgd"}, world_size=2,
                           steps=1, warmup=1, repeats=2, timeout_s=120, base_dir_path=tmp_path, lock_dir=tmp_path / "l")
    assert dp["status"] == "ok", dp.get("log_tail")
    m = dp["measured"]
    elems = 32 * 32 + 32 + 32 * 4 + 4
    assert m["grad_elems"] == elems and m["grad_bytes"] == 2 * elems  # bf16 gradients: 2 bytes, not 4
    assert m["allreduce_dtype"] == "bfloat16" and m["grad_dtypes"] == ["bfloat16"]


# ---- speed: the FLOP-count cache and the time breakdown -------------------------------------------------------------

def test_flop_counts_are_cached_and_the_time_is_broken_down(tmp_path):
    req = ProfileRequest("mlp-mnist", {"task": "train", "batch": 4, "precision": "fp32", "optimizer": "sgd"},
                         steps=2, warmup=1, timeout_s=120, threads=1)
    kw = dict(base_dir_path=tmp_path, lock_dir=tmp_path / "locks")
    first, second = run_profile(req, **kw), run_profile(req, **kw)
    assert first.status == second.status == "ok"
    assert "counter_source" not in first.measured and first.measured["passes"]["flops"]["status"] == "ok"
    assert second.measured["counter_source"].startswith(f"cached from run {first.run_id}")
    assert "flops" not in second.measured["passes"]
    for k in ("counter_forward_flops", "counter_backward_flops", "fvcore_forward_macs"):
        assert second.measured[k] == first.measured[k]
    again = run_profile(ProfileRequest(**{**req.to_dict(), "flops_cache": False}), **kw)
    assert again.measured["passes"]["flops"]["status"] == "ok" and "counter_source" not in again.measured
    t = second.measured["timing"]
    assert {"torch_import_s", "build_s", "optimizer_s", "warmup_s", "measured_s", "passes_s", "setup_s", "wall_s"} <= set(t)
    assert 0 < t["measured_s"] < t["wall_s"] and t["setup_s"] + t["measured_s"] + t["passes_s"] < t["wall_s"]
