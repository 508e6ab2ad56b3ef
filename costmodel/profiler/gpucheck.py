"""``python -m costmodel gpu-check``: what a first GPU user needs to trust the profiler, on whatever GPUs the
machine has, in under 8 minutes. No torch in this process: every measurement runs in a child.

Checks (each passes, fails, or is skipped with the reason; the budget is shared and a check that no longer fits
is skipped):

- ``environment``: torch / CUDA / cuDNN / driver versions, TF32, cudnn.benchmark, PYTORCH_CUDA_ALLOC_CONF,
  CUDA_VISIBLE_DEVICES (a child reports what torch sees);
- ``device-mapping``: every CUDA device's UUID from torch equals the NVML device the parent maps it to through
  CUDA_VISIBLE_DEVICES (``gpus.visible_devices``), and which catalog profile predicts it;
- ``smoke-profile``: a tiny GPT-2 training run: measured, params and FLOPs exact;
- ``gpt2-amp``: GPT-2 small, batch 8 x 1024, amp-bf16 training (``gpt2s_b8_s1024_amp`` of
  ``benchmarks/results/h100_reference_sample.json``): params exact, FLOPs (hardware convention, as the reference
  counted with torch's own SDPA formulas) within 0.5%, peak memory within 10%, and on the reference GPU (NVIDIA
  H100 80GB HBM3) the step time within 15% and the energy per step within 25%;
- ``llama2-7b-bf16``: Llama-2-7B bf16 inference, prompt 512 + 32 tokens (``llama2_7b_b1_p512``): params and
  weights exact, prefill FLOPs within 0.5%, KV cache exact, peak within 5%, prefill time within 15% on the
  reference GPU;
- ``gqa-flops``: a tiny Llama with grouped-query attention trained with SDPA: counted forward and backward model
  FLOPs equal the estimator's, and the fused kernel's recomputed scores are counted apart;
- ``lstm-cudnn-flops``: an LSTM training run: the cuDNN (CPU: oneDNN) kernel counted by costmodel's formula;
- ``probe``: the device probe (CUDA events, 8192^3 bf16 GEMM on a big GPU) gives rates below the datasheet;
- ``energy``: the gpt2-amp run's energy window lasted at least 2 s and its mean power lies between the profile's
  idle and 110% of its TDP;
- ``concurrent-runs``: while one run holds the GPU a second is refused, and cancelling the first frees it at once;
- ``data-parallel``: with two or more GPUs, the 2-process DDP check (NCCL) runs and the ranks stay in sync.

``--dry-run`` runs the same checks on the CPU at tiny sizes (expectations from the estimator instead of the H100
reference); checks that need a GPU or NVML say they were skipped. One JSON and one Markdown file with the
environment are written to ``--out`` (default ``benchmarks/results``).

About 600 lines: one self-contained script (no torch in the parent, every check a child it starts) so it
can be run, read and trusted as one file on a machine someone lends for ten minutes.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from ..errors import InputError

REFERENCE_FILE = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "h100_reference_sample.json"
REFERENCE_GPU = "NVIDIA H100 80GB HBM3"
CHECKS = ("environment", "device-mapping", "smoke-profile", "gpt2-amp", "llama2-7b-bf16", "gqa-flops",
          "lstm-cudnn-flops", "probe", "energy", "concurrent-runs", "data-parallel")
# seconds each check needs at least (GPU / dry run); a check is skipped when less of the budget is left
MIN_S = {"environment": (30, 30), "device-mapping": (5, 5), "smoke-profile": (60, 40), "gpt2-amp": (120, 60),
         "llama2-7b-bf16": (150, 60), "gqa-flops": (60, 40), "lstm-cudnn-flops": (60, 40), "probe": (90, 60),
         "energy": (1, 1), "concurrent-runs": (90, 60), "data-parallel": (120, 90)}

TINY_GPT2 = {"n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1024, "n_positions": 256}
TINY_LLAMA_GQA = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 256,
                  "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 8,
                  "num_key_value_heads": 2, "vocab_size": 1024, "max_position_embeddings": 512}
LSTM_SPEC = {"family": "lstm", "name": "lstm-check", "vocab_size": 1000, "embed_dim": 256, "hidden": 256, "layers": 2}
DRY_LLAMA = {"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 688, "num_attention_heads": 4,
             "num_key_value_heads": 4, "vocab_size": 1000}
DRY_GPT2 = {"n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000}


def _within(measured, expected, rel: float) -> bool:
    return measured is not None and expected not in (None, 0) and abs(measured - expected) <= rel * abs(expected)


def _cmp(name: str, measured, expected, rel: float | None, unit: str = "", source: str = "") -> dict:
    """One expectation: {"quantity", "measured", "expected", "rel_tol", "error_pct", "ok" (None: not judged)}."""
    err = None
    if measured is not None and expected not in (None, 0):
        err = 100.0 * (measured - expected) / expected
    ok = None if rel is None else _within(measured, expected, rel)
    return {"quantity": name, "measured": measured, "expected": expected, "rel_tol": rel, "error_pct": err, "ok": ok,
            "unit": unit, "source": source}


def _verdict(rows: list[dict]) -> str:
    judged = [r for r in rows if r["ok"] is not None]
    return "pass" if judged and all(r["ok"] for r in judged) else ("fail" if judged else "skip")


# ---- what torch sees (a child) ---------------------------------------------------------------------------------------

FACTS_CODE = r"""
import json, os, sys
import torch
out = {"torch": torch.__version__, "cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
       "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
       "cudnn_benchmark": torch.backends.cudnn.benchmark, "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
       "tf32_cudnn": torch.backends.cudnn.allow_tf32, "float32_matmul_precision": torch.get_float32_matmul_precision(),
       "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
       "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
       "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER"), "devices": []}
try:
    import transformers
    out["transformers"] = transformers.__version__
except Exception as exc:
    out["transformers"] = f"not importable: {exc}"
if out["cuda_available"]:
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        out["devices"].append({"cuda_index": i, "name": p.name, "uuid": str(getattr(p, "uuid", "")),
                               "total_memory_bytes": p.total_memory, "capability": [p.major, p.minor]})
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def torch_facts(timeout_s: float = 120.0) -> dict:
    """What torch in a child process sees: versions, settings and every CUDA device's name and UUID."""
    from . import proc

    child = proc.spawn([sys.executable, "-c", FACTS_CODE], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.stop(child)
        return {"error": f"the torch child passed {timeout_s:g} s"}
    except BaseException:
        proc.stop(child)
        raise
    finally:
        proc.release(child.pid)
    if child.returncode != 0:
        return {"error": f"the torch child failed (exit {child.returncode}): {err.strip()[-300:]}"}
    return json.loads(out.strip().splitlines()[-1])


# ---- the checks ----------------------------------------------------------------------------------------------------

class Context:
    """What the checks share: mode, device, time budget, the runs made so far."""

    def __init__(self, dry_run: bool, budget_s: float, facts: dict, inventory: dict, lock_dir=None, base_dir=None):
        self.dry_run = dry_run
        self.t0 = time.time()
        self.budget_s = budget_s
        self.facts = facts
        self.inventory = inventory
        self.cuda = bool(facts.get("cuda_available")) and not dry_run
        self.device = "cuda" if self.cuda else "cpu"
        self.gpu_count = len(facts.get("devices") or []) if self.cuda else 0
        self.lock_dir = lock_dir
        self.base_dir = base_dir
        self.runs: dict[str, dict] = {}
        self.reference = _load_reference()
        names = [d.get("name") for d in facts.get("devices") or []]
        self.on_reference_gpu = self.cuda and bool(names) and names[0] == REFERENCE_GPU

    def left(self) -> float:
        return self.budget_s - (time.time() - self.t0)

    def profile(self, key: str, request, timeout_s: float) -> dict:
        from .runner import start_profile

        timeout_s = max(1.0, min(timeout_s, self.left() - 5))
        req = request.__class__(**{**request.to_dict(), "timeout_s": timeout_s})
        handle = start_profile(req, base_dir_path=self.base_dir, lock_dir=self.lock_dir)
        try:
            res = handle.wait(poll_s=0.1)
        except BaseException:
            handle.cancel("cancelled: gpu-check interrupted")
            raise
        d = res.to_dict()
        self.runs[key] = d
        return d


def _load_reference() -> dict:
    try:
        data = json.loads(REFERENCE_FILE.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}
    return {r["name"]: r for r in data.get("results", [])} | {"_about": data.get("about", ""), "_env": data.get("env", {})}


def _run_summary(run: dict) -> dict:
    m = run.get("measured") or {}
    keep = ("params_total", "weights_bytes", "peak_allocated_bytes", "peak_reserved_bytes", "step_s", "prefill_s",
            "decode_per_token_s", "forward_s", "counter_forward_flops", "counter_backward_flops",
            "counter_backward_hw_flops", "counter_attention_recompute_flops", "kv_cache_bytes", "energy_j_per_step",
            "energy_window_s", "energy_window_steps", "energy_method", "power_w_mean", "sdpa_kernels", "timing",
            "passes", "nvml_process_used_max_bytes", "nvml_used_baseline_bytes")
    return {"status": run.get("status"), "message": run.get("message"), "run_id": run.get("run_id"),
            "device": run.get("device"), "measured": {k: m[k] for k in keep if k in m}, "notes": run.get("notes"),
            "hardware": (run.get("predicted") or {}).get("hardware"),
            "sdpa_kernel": (run.get("environment") or {}).get("sdpa_kernel")}


def _failed_run(run: dict) -> dict:
    return {"status": "fail" if run.get("status") != "refused" else "skip",
            "summary": f"run {run.get('status')}: {run.get('message')}", "details": {"run": _run_summary(run)}}


def check_environment(ctx: Context) -> dict:
    f = ctx.facts
    if f.get("error"):
        return {"status": "fail", "summary": f["error"], "details": {}}
    gpus = ", ".join(f"{d['name']} ({d['uuid']})" for d in f.get("devices") or []) or "none"
    return {"status": "pass", "summary": f"torch {f.get('torch')}, CUDA {f.get('cuda')}, cuDNN {f.get('cudnn')}, "
            f"GPUs seen by torch: {gpus}", "details": f}


def check_device_mapping(ctx: Context) -> dict:
    """torch's UUID of every CUDA index == the UUID of the NVML device the parent maps that index to."""
    from .gpus import hardware_choice, visible_devices

    devs = ctx.facts.get("devices") or []
    if not ctx.cuda or not devs:
        return {"status": "skip", "summary": "no CUDA device" + (" (dry run)" if ctx.dry_run else ""), "details": {}}
    vis = visible_devices(ctx.inventory)
    rows, ok = [], True
    for d in devs:
        i = d["cuda_index"]
        mapped = vis["devices"][i] if i < len(vis["devices"]) else {"known": False, "reason": "not mapped"}
        u = (mapped.get("uuid") or "").lower()
        match = bool(mapped.get("known")) and u.split("-", 1)[-1] == str(d["uuid"]).lower().removeprefix("gpu-")
        ok &= match
        choice = hardware_choice(mapped) if mapped.get("known") else {"hardware": None, "note": mapped.get("reason")}
        rows.append({"cuda_index": i, "torch_name": d["name"], "torch_uuid": d["uuid"], "nvml_uuid": mapped.get("uuid"),
                     "nvml_index": mapped.get("nvml_index"), "mapping": mapped.get("mapping") or mapped.get("reason"),
                     "match": match, "hardware": choice.get("hardware"), "note": choice.get("note")})
    return {"status": "pass" if ok else "fail",
            "summary": f"{sum(r['match'] for r in rows)} of {len(rows)} CUDA devices matched to NVML by UUID "
                       f"(CUDA_VISIBLE_DEVICES={vis['visible']!r})", "details": {"devices": rows}}


def _req(model, workload: dict, overrides=None, **kw):
    from .request import ProfileRequest

    return ProfileRequest(model, workload, config_overrides=overrides or {}, **kw)


def check_smoke(ctx: Context) -> dict:
    run = ctx.profile("smoke", _req("gpt2", {"task": "train", "batch": 2, "seq": 64, "precision": "fp32",
                                             "dropout": False}, TINY_GPT2, device=ctx.device, steps=3, warmup=1,
                                    fvcore=False, flops_cache=False), 240)
    if run["status"] != "ok":
        return _failed_run(run)
    m, p = run["measured"], run["predicted"]
    rows = [_cmp("params", m.get("params_total"), p.get("params_total"), 0.0, "count", "estimator (exact)"),
            _cmp("forward FLOPs", m.get("counter_forward_flops"), p.get("flops_forward"), 0.01, "FLOPs", "estimator"),
            _cmp("backward FLOPs", m.get("counter_backward_flops"), p.get("flops_backward"), 0.01, "FLOPs", "estimator")]
    return {"status": _verdict(rows), "summary": f"tiny GPT-2 train on {run['device']}: step {m.get('step_s', 0):.4g} s",
            "details": {"expectations": rows, "run": _run_summary(run)}}


def check_gpt2_amp(ctx: Context) -> dict:
    if ctx.dry_run:
        req = _req("gpt2", {"task": "train", "batch": 1, "seq": 32, "precision": "amp-bf16"}, DRY_GPT2,
                   device=ctx.device, steps=2, warmup=1, fvcore=False, flops_cache=False)
    else:
        req = _req("gpt2", {"task": "train", "batch": 8, "seq": 1024, "precision": "amp-bf16", "optimizer": "adamw"},
                   device=ctx.device, steps=8, warmup=2, fvcore=False, flops_cache=False)
    run = ctx.profile("gpt2-amp", req, 240)
    if run["status"] != "ok":
        return _failed_run(run)
    m, p = run["measured"], run["predicted"]
    hw_flops = (m.get("counter_forward_flops") or 0) + (m.get("counter_backward_hw_flops") or 0)
    ref = ctx.reference.get("gpt2s_b8_s1024_amp") if not ctx.dry_run else None
    if ref:
        src = "h100_reference_sample.json gpt2s_b8_s1024_amp"
        rows = [_cmp("params", m.get("params_total"), ref["params_total"], 0.0, "count", src),
                _cmp("FLOPs fwd+bwd (hardware: torch's SDPA formulas, as the reference)", hw_flops,
                     ref["flops_fwd_bwd_counted"], 0.005, "FLOPs", src),
                _cmp("peak allocated (steady step)", m.get("peak_allocated_bytes"), ref["peak_steady_step_bytes"], 0.10,
                     "bytes", src),
                _cmp("step time", m.get("step_s"), ref["step_time_s"], 0.15 if ctx.on_reference_gpu else None, "s",
                     src + ("" if ctx.on_reference_gpu else f" (measured on {REFERENCE_GPU}: not judged here)")),
                _cmp("step time vs prediction", m.get("step_s"), p.get("step_s"), None, "s", "estimator")]
    else:
        src = "estimator (dry run: no reference at this size)"
        rows = [_cmp("params", m.get("params_total"), p.get("params_total"), 0.0, "count", src),
                _cmp("forward FLOPs", m.get("counter_forward_flops"), p.get("flops_forward"), 0.01, "FLOPs", src),
                _cmp("peak allocated", m.get("peak_allocated_bytes"), p.get("peak_bytes"), 0.5, "bytes", src),
                _cmp("step time vs prediction", m.get("step_s"), p.get("step_s"), None, "s", "estimator")]
    return {"status": _verdict(rows), "summary": f"GPT-2 amp-bf16 train: step {m.get('step_s', 0):.4g} s, peak "
            f"{(m.get('peak_allocated_bytes') or 0) / 2**30:.2f} GiB", "details": {"expectations": rows,
                                                                                  "run": _run_summary(run)}}


def check_llama(ctx: Context) -> dict:
    if ctx.dry_run:
        req = _req("llama-2-7b", {"task": "infer", "batch": 1, "prompt": 32, "generate": 4, "precision": "bf16"},
                   DRY_LLAMA, device=ctx.device, steps=2, warmup=1, fvcore=False, flops_cache=False)
    else:
        from .gpus import describe

        need = 16 * 2**30
        dev = describe("cuda:0", ctx.inventory) if ctx.inventory.get("available") else {}
        free = dev.get("memory_free_bytes")
        if free is not None and free < need:
            return {"status": "skip", "summary": f"Llama-2-7B bf16 needs ~16 GiB free; the GPU has "
                    f"{free / 2**30:.1f} GiB", "details": {}}
        req = _req("llama-2-7b", {"task": "infer", "batch": 1, "prompt": 512, "generate": 32, "precision": "bf16"},
                   device=ctx.device, steps=3, warmup=1, fvcore=False, flops_cache=False)
    run = ctx.profile("llama2-7b-bf16", req, 300)
    if run["status"] != "ok":
        return _failed_run(run)
    m, p = run["measured"], run["predicted"]
    ref = ctx.reference.get("llama2_7b_b1_p512") if not ctx.dry_run else None
    if ref:
        src = "h100_reference_sample.json llama2_7b_b1_p512"
        positions = (512 + 32) / 512  # the reference's cache is after the prefill; ours after prompt + generate
        rows = [_cmp("params", m.get("params_total"), ref["params_total"], 0.0, "count", src),
                _cmp("weights", m.get("weights_bytes"), ref["mem_weights_bytes"], 0.001, "bytes", src),
                _cmp("prefill FLOPs", m.get("counter_forward_flops"), ref["prefill_flops_counted"], 0.005, "FLOPs", src),
                _cmp("KV cache after 544 positions", m.get("kv_cache_bytes"),
                     ref["kv_cache_bytes_after_prefill"] * positions, 0.001, "bytes", src + " x 544/512"),
                _cmp("peak allocated", m.get("peak_allocated_bytes"), ref["peak_after_decode_bytes"], 0.05, "bytes", src),
                _cmp("prefill time", m.get("prefill_s"), ref["prefill_time_s"], 0.15 if ctx.on_reference_gpu else None,
                     "s", src + ("" if ctx.on_reference_gpu else f" (measured on {REFERENCE_GPU}: not judged here)")),
                _cmp("decode time per token", m.get("decode_per_token_s"), ref["decode_step_time_median_s"], None, "s",
                     src + " (host-bound in eager HF code: depends on the CPU; not judged)")]
    else:
        src = "estimator (dry run: no reference at this size)"
        rows = [_cmp("params", m.get("params_total"), p.get("params_total"), 0.0, "count", src),
                _cmp("prefill FLOPs", m.get("counter_forward_flops"), p.get("flops_forward"), 0.01, "FLOPs", src),
                _cmp("KV cache", m.get("kv_cache_bytes"), p.get("kv_cache_bytes"), 0.001, "bytes", src)]
    return {"status": _verdict(rows), "summary": f"Llama-2-7B bf16 inference: prefill {m.get('prefill_s', 0):.4g} s, "
            f"decode {m.get('decode_per_token_s', 0):.4g} s/token", "details": {"expectations": rows,
                                                                                "run": _run_summary(run)}}


def check_gqa(ctx: Context) -> dict:
    b, s = 2, 128
    run = ctx.profile("gqa-flops", _req(TINY_LLAMA_GQA, {"task": "train", "batch": b, "seq": s,
                                                         "precision": "bf16" if ctx.cuda else "fp32",
                                                         "attention": "fused", "dropout": False},
                                        device=ctx.device, steps=2, warmup=1, fvcore=False, flops_cache=False), 240)
    if run["status"] != "ok":
        return _failed_run(run)
    m, p = run["measured"], run["predicted"]
    c = TINY_LLAMA_GQA
    L, H, d = c["num_hidden_layers"], c["num_attention_heads"], c["hidden_size"] // c["num_attention_heads"]
    kernels = m.get("sdpa_kernels") or []
    scores = L * 2 * b * H * s * s * d  # what a fused backward recomputes: Q K^T once per layer
    rows = [_cmp("forward FLOPs", m.get("counter_forward_flops"), p.get("flops_forward"), 1e-9, "FLOPs",
                 "estimator (model FLOPs)"),
            _cmp("backward FLOPs (model: attention 2x forward)", m.get("counter_backward_flops"), p.get("flops_backward"),
                 1e-9, "FLOPs", "estimator (model FLOPs)"),
            _cmp("recomputed attention scores (hardware FLOPs)", m.get("counter_attention_recompute_flops"),
                 scores if kernels else 0, 1e-9 if kernels else None, "FLOPs", "L x 2 b H s^2 d for a fused kernel")]
    return {"status": _verdict(rows), "summary": f"GQA (8 query / 2 KV heads) through {', '.join(kernels) or 'no fused kernel'}",
            "details": {"expectations": rows, "run": _run_summary(run)}}


def check_lstm(ctx: Context) -> dict:
    b, s = 4, 64
    run = ctx.profile("lstm-cudnn-flops", _req(LSTM_SPEC, {"task": "train", "batch": b, "seq": s, "precision": "fp32",
                                                           "optimizer": "sgd"},
                                               device=ctx.device, steps=2, warmup=1, fvcore=False, flops_cache=False), 240)
    if run["status"] != "ok":
        return _failed_run(run)
    m = run["measured"]
    V, E, h, L, T = LSTM_SPEC["vocab_size"], LSTM_SPEC["embed_dim"], LSTM_SPEC["hidden"], LSTM_SPEC["layers"], b * s
    hand = L * 2 * T * 4 * h * (E + h) + 2 * T * h * V  # 2*T*4h*(d_in + h) per layer + the head
    ops = m.get("counter_by_operator") or {}
    rnn_ops = sorted(k for k in ops if "rnn" in k)
    rows = [_cmp("forward FLOPs", m.get("counter_forward_flops"), hand, 0.0, "FLOPs", "hand: 2T*4h*(d_in+h) per layer"),
            _cmp("RNN kernel counted (not a blind spot)", 0 if m.get("counter_blind_spot") else 1, 1, 0.0, "", "")]
    return {"status": _verdict(rows), "summary": f"LSTM train, RNN kernel ops counted: {', '.join(rnn_ops) or 'none'}",
            "details": {"expectations": rows, "run": _run_summary(run)}}


def check_probe(ctx: Context) -> dict:
    from ..catalog import load_hardware
    from .env import hardware_for
    from .probe import run_probe

    try:
        m = run_probe("cuda" if ctx.cuda else "cpu", timeout_s=max(1.0, min(180.0, ctx.left() - 5)),
                      lock_dir=ctx.lock_dir)
    except RuntimeError as exc:
        return {"status": "fail", "summary": f"probe failed: {exc}", "details": {}}
    hw = load_hardware(hardware_for(ctx.device)["hardware"])
    rates = m.get("gemm_flops_per_s") or {}
    rows = []
    for dt in ("bf16", "fp32"):
        if rates.get(dt):
            peak = hw.peak_flops(dt)
            rows.append(_cmp(f"{dt} GEMM {m['gemm_n'][dt]}^3 rate / datasheet peak ({hw.id})", rates[dt] / peak, 0.5,
                             1.0, "fraction", "between 0 and 1 (a rate above the datasheet means a timing bug)"))
    if ctx.cuda and hw.memory_bytes >= 40 * 2**30:
        rows.append(_cmp("bf16 GEMM size on a big GPU", m["gemm_n"].get("bf16"), 8192, 0.0, "n", "8192^3"))
    return {"status": _verdict(rows), "summary": ", ".join(f"{k} {v / 1e12:.3g} TFLOP/s" for k, v in rates.items())
            + f", copy {m.get('copy_bytes_per_s', 0) / 1e9:.3g} GB/s", "details": {"expectations": rows, "probe": m}}


def check_energy(ctx: Context) -> dict:
    from ..catalog import load_hardware

    run = ctx.runs.get("gpt2-amp")
    if run is None or run.get("status") != "ok":
        return {"status": "skip", "summary": "needs the gpt2-amp run", "details": {}}
    m = run["measured"]
    if not m.get("nvml_available"):
        return {"status": "skip", "summary": f"no NVML: {m.get('nvml_reason')}", "details": {}}
    if m.get("energy_j_per_step") is None:
        return {"status": "fail", "summary": f"no energy measured: {m.get('energy_reason')}", "details": {}}
    hw_id = (run.get("predicted") or {}).get("hardware")
    rows = [_cmp("energy window", m.get("energy_window_s"), 2.0, None, "s", "at least 2 s"),
            _cmp("window long enough (>= 2 s)", 1 if (m.get("energy_window_s") or 0) >= 2.0 else 0, 1, 0.0, "", "")]
    try:
        hw = load_hardware(hw_id)
        mid = (hw.idle_w + 1.1 * hw.tdp_w) / 2
        rows.append(_cmp(f"mean power in the window, between idle {hw.idle_w:.0f} W and 110% of TDP {hw.tdp_w:.0f} W",
                         m.get("energy_power_w") or m.get("power_w_mean"), mid, (1.1 * hw.tdp_w - mid) / mid, "W", hw_id))
    except Exception:  # noqa: BLE001 - a file profile that vanished: no power bounds
        pass
    ref = ctx.reference.get("gpt2s_b8_s1024_amp")
    if ref and ctx.on_reference_gpu:
        rows.append(_cmp("energy per step", m["energy_j_per_step"], ref["joules_per_step"], 0.25, "J",
                         "h100_reference_sample.json gpt2s_b8_s1024_amp"))
    return {"status": _verdict(rows), "summary": f"{m['energy_j_per_step']:.4g} J/step over {m.get('energy_window_steps')} "
            f"steps in {m.get('energy_window_s', 0):.2f} s ({m.get('energy_method')})", "details": {"expectations": rows}}


def check_concurrent(ctx: Context) -> dict:
    """A long run holds the device; a second is refused naming it; cancelling frees the device at once."""
    from .runner import lock_holder, run_profile, start_profile

    long = _req("gpt2", {"task": "train", "batch": 1, "seq": 32, "precision": "fp32"}, TINY_GPT2,
                device=ctx.device, steps=10000, warmup=0, timeout_s=max(1.0, min(120.0, ctx.left() - 10)),
                count_flops=False)
    first = start_profile(long, base_dir_path=ctx.base_dir, lock_dir=ctx.lock_dir)
    try:
        if first.done():
            return _failed_run(first.result().to_dict())
        end = time.time() + 90
        while lock_holder(ctx.device, ctx.lock_dir) is None and time.time() < end and not first.done():
            time.sleep(0.1)
        holder = lock_holder(ctx.device, ctx.lock_dir)
        second = run_profile(_req("gpt2", {"task": "train", "batch": 1, "seq": 32, "precision": "fp32"}, TINY_GPT2,
                                  device=ctx.device, steps=1, warmup=0, timeout_s=60),
                             base_dir_path=ctx.base_dir, lock_dir=ctx.lock_dir)
        t0 = time.time()
        cancelled = first.cancel("cancelled by gpu-check")
        freed_s = time.time() - t0
        after = lock_holder(ctx.device, ctx.lock_dir)
    finally:
        if not first.done():
            first.cancel("cancelled by gpu-check")
    refused = second.status == "refused" and first.run_id in second.message
    rows = [_cmp("first run held the device lock", 1 if holder and holder.get("run_id") == first.run_id else 0, 1, 0.0),
            _cmp("second run refused, naming the first", 1 if refused else 0, 1, 0.0),
            _cmp("cancel frees the device (lock free after cancel)", 1 if after is None else 0, 1, 0.0),
            _cmp("first run's status says cancelled", 1 if cancelled.status == "cancelled" else 0, 1, 0.0)]
    return {"status": _verdict(rows), "summary": f"second run: {second.status} ({second.message}); cancel took "
            f"{freed_s:.2f} s", "details": {"expectations": rows, "holder": holder}}


def check_data_parallel(ctx: Context) -> dict:
    from .distributed import run_data_parallel

    if ctx.cuda and ctx.gpu_count < 2:
        return {"status": "skip", "summary": f"{ctx.gpu_count} GPU visible: the 2-GPU check needs two", "details": {}}
    mlp = {"family": "mlp", "name": "mlp-dp-check", "input_dim": 256, "hidden": [256], "output_dim": 10}
    dp = run_data_parallel(mlp, {"task": "train", "batch": 16, "precision": "fp32", "optimizer": "sgd"},
                           world_size=2, device=ctx.device, steps=3, repeats=3,
                           timeout_s=max(1.0, min(180.0, ctx.left() - 5)), lock_dir=ctx.lock_dir,
                           base_dir_path=ctx.base_dir)
    if dp.get("status") != "ok":
        return {"status": "fail", "summary": f"data-parallel check {dp.get('status')}: {dp.get('message')}",
                "details": {"log_tail": dp.get("log_tail", "")[-1500:]}}
    m = dp["measured"]
    rows = [_cmp("ranks hold identical weights after DDP steps", 1 if m.get("params_in_sync") else 0, 1, 0.0),
            _cmp("gradient bytes (fp32: 4 per parameter)", m.get("grad_bytes"), 4 * (256 * 256 + 256 + 256 * 10 + 10),
                 0.0, "bytes", "hand count")]
    rows += [_cmp(r["quantity"], r["measured"], r["predicted"], None, "s", r.get("note", "")) for r in dp["comparison"]]
    return {"status": _verdict(rows), "summary": f"{m['backend']} x{m['world_size']}: step {m['step_s']:.4g} s, "
            f"exposed communication {m.get('exposed_comm_s', 0):.3g} s", "details": {"expectations": rows}}


RUNNERS = {"environment": check_environment, "device-mapping": check_device_mapping, "smoke-profile": check_smoke,
           "gpt2-amp": check_gpt2_amp, "llama2-7b-bf16": check_llama, "gqa-flops": check_gqa,
           "lstm-cudnn-flops": check_lstm, "probe": check_probe, "energy": check_energy,
           "concurrent-runs": check_concurrent, "data-parallel": check_data_parallel}


def run_checks(dry_run: bool, budget_s: float = 480.0, only=None, facts: dict | None = None,
               inventory: dict | None = None, lock_dir=None, base_dir=None) -> dict:
    """Run the checks; returns the whole result (environment, checks, verdict). ``facts``/``inventory`` are read
    from a torch child and NVML unless given."""
    from .env import environment_parent
    from .gpus import nvml_inventory

    t0 = time.time()
    facts = torch_facts() if facts is None else facts
    inventory = nvml_inventory() if inventory is None else inventory
    ctx = Context(dry_run, budget_s, facts, inventory, lock_dir, base_dir)
    names = [c for c in CHECKS if only is None or c in only]
    results = []
    for name in names:
        need = MIN_S[name][1 if dry_run or not ctx.cuda else 0]
        t1 = time.time()
        if ctx.left() < need:
            res = {"status": "skip", "summary": f"budget: {ctx.left():.0f} s left, the check needs {need} s",
                   "details": {}}
        else:
            try:
                res = RUNNERS[name](ctx)
            except (KeyboardInterrupt, SystemExit):
                raise
            except Exception as exc:  # noqa: BLE001 - one broken check must not lose the others
                res = {"status": "error", "summary": f"{type(exc).__name__}: {exc}", "details": {}}
        res = {"name": name, **res, "seconds": round(time.time() - t1, 2)}
        results.append(res)
        print(f"[{time.time() - t0:6.1f} s] {name}: {res['status']} -- {res['summary']}", file=sys.stderr)
    counts = {s: sum(r["status"] == s for r in results) for s in ("pass", "fail", "error", "skip")}
    gpu = ", ".join(d["name"] for d in facts.get("devices") or []) if ctx.cuda else f"CPU ({platform.processor() or 'cpu'})"
    return {"kind": "gpu-check", "dry_run": dry_run, "device": ctx.device, "gpus": gpu, "started": time.strftime(
        "%Y-%m-%dT%H:%M:%S", time.localtime(t0)), "seconds": round(time.time() - t0, 1), "budget_s": budget_s,
        "verdict": "pass" if counts["fail"] == 0 and counts["error"] == 0 else "fail", "counts": counts,
        "environment": {"parent": environment_parent(), "torch": facts, "nvml": inventory,
                        "reference": {"file": str(REFERENCE_FILE), "about": ctx.reference.get("_about"),
                                      "env": ctx.reference.get("_env")}},
        "checks": results}


def markdown(result: dict) -> str:
    env = result["environment"]["torch"]
    lines = [f"# gpu-check {'(dry run, CPU) ' if result['dry_run'] else ''}-- {result['gpus']}", "",
             f"{result['started']}, {result['seconds']} s of a {result['budget_s']:.0f} s budget. Verdict: "
             f"**{result['verdict']}** ({', '.join(f'{v} {k}' for k, v in result['counts'].items())}).", "",
             f"Environment: torch {env.get('torch')}, CUDA {env.get('cuda')}, cuDNN {env.get('cudnn')}, transformers "
             f"{env.get('transformers')}, driver {result['environment']['nvml'].get('driver')}, TF32 matmul "
             f"{env.get('tf32_matmul')} / cuDNN {env.get('tf32_cudnn')}, cudnn.benchmark {env.get('cudnn_benchmark')}, "
             f"PYTORCH_CUDA_ALLOC_CONF={env.get('PYTORCH_CUDA_ALLOC_CONF')!r}, "
             f"CUDA_VISIBLE_DEVICES={env.get('CUDA_VISIBLE_DEVICES')!r}; "
             f"{result['environment']['parent'].get('cpu')}, Python {result['environment']['parent'].get('python')}.",
             "", "| check | status | s | summary |", "|---|---|---|---|"]
    for c in result["checks"]:
        lines.append(f"| {c['name']} | {c['status']} | {c['seconds']} | {str(c['summary']).replace('|', '/')} |")
    for c in result["checks"]:
        rows = (c.get("details") or {}).get("expectations")
        if not rows:
            continue
        lines += ["", f"## {c['name']}", "", "| quantity | measured | expected | tolerance | error | ok | source |",
                  "|---|---|---|---|---|---|---|"]
        for r in rows:
            err = "-" if r["error_pct"] is None else f"{r['error_pct']:+.2f}%"
            tol = "not judged" if r["rel_tol"] is None else f"{100 * r['rel_tol']:g}%"
            ok = "-" if r["ok"] is None else ("yes" if r["ok"] else "**no**")
            lines.append(f"| {r['quantity']} | {_fmt(r['measured'])} | {_fmt(r['expected'])} | {tol} | {err} | {ok} | "
                         f"{r.get('source', '')} |")
        run = (c.get("details") or {}).get("run")
        if run and run.get("sdpa_kernel"):
            lines.append(f"\nSDPA kernel: {run['sdpa_kernel']}; hardware profile: {run.get('hardware')}")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_result(result: dict, out_dir) -> tuple[Path, Path]:
    from .compare import clean_json
    from .files import write_json_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tag = "dryrun-cpu" if result["dry_run"] else "".join(ch if ch.isalnum() else "-" for ch in result["gpus"].split(",")[0]
                                                         ).strip("-").lower()[:40]
    stem = f"gpu_check_{tag}_{time.strftime('%Y%m%d-%H%M%S')}"
    jp, mp = out / f"{stem}.json", out / f"{stem}.md"
    write_json_atomic(jp, clean_json(result))
    mp.write_text(markdown(result), encoding="utf-8")
    return jp, mp


def main(args) -> int:
    from .proc import Interrupted, check_timeout, on_signals, signal_name

    budget = check_timeout(args.budget, "budget")
    only = None
    if args.only:
        only = [c.strip() for c in str(args.only).split(",") if c.strip()]
        bad = [c for c in only if c not in CHECKS]
        if bad:
            raise InputError("only", f"unknown check {bad[0]!r}; known: {', '.join(CHECKS)}")
    out = args.out or (REFERENCE_FILE.parent if REFERENCE_FILE.parent.is_dir() else Path.cwd())
    with on_signals():
        try:
            result = run_checks(args.dry_run, budget, only)
        except (KeyboardInterrupt, Interrupted) as exc:
            print(f"gpu-check cancelled by {signal_name(getattr(exc, 'signum', 2))}; its runs were stopped",
                  file=sys.stderr)
            return 1
    jp, mp = write_result(result, out)
    print(markdown(result))
    print(f"wrote {jp} and {mp}", file=sys.stderr)
    return 0 if result["verdict"] == "pass" else 1
