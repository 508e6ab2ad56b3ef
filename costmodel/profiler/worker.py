"""The child process of a profiling run: builds the model, runs warm-up and measured steps, measures,
and writes ``result.json`` into its run directory. Progress goes to ``progress.jsonl`` (one JSON object a
line) as it happens. The parent (``runner.py``) starts it, polls it and kills it; the child also kills
itself at its deadline (a watchdog thread) and when its parent process ends (``proc.watch_parent``: a pipe
from the parent and, from a main thread, PR_SET_PDEATHSIG), so it never outlives either.
``python -m costmodel.profiler.worker RUN_DIR`` runs one prepared run directory by hand.

Order of work: the measured steps first; then the extra passes, each isolated (a failure there is reported
with its reason in ``measured["passes"]`` and the notes, and the measured times and peak are kept): the energy
window (GPUs), the memory-timeline step, the KV-cache re-run, FlopCounterMode, fvcore.

Files in a run directory: ``job.json`` (written by the parent), ``progress.jsonl``, ``result.json``,
``child.log`` (the child's stdout and stderr).

About 700 lines: the child is one script on purpose -- every extra module it imports adds to the profile's
start time (benchmarks/profile_startup.py), and its passes share one measured state.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from .files import JOB_FILE, LOG_FILE, PROGRESS_FILE, RESULT_FILE, write_json_atomic

WATCHDOG_GRACE_S = 3.0
MEMORY_MARGIN = 0.90  # as runner.MEMORY_MARGIN: a run may use this share of the free memory
FLOPS_CACHE_VERSION = 2  # bump when the counted quantities or formulas change
THREAD_ADDRESS_BYTES = 96 * 2**20  # per torch thread in the CPU hard limit: a malloc arena (64 MiB) + a stack


class Progress:
    """Appends {"t", "elapsed_s", "stage", "fraction", "message", "step", "of"} lines to progress.jsonl."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / PROGRESS_FILE
        self.t0 = time.time()

    def __call__(self, stage: str, fraction: float, message: str = "", step: int | None = None,
                 of: int | None = None) -> None:
        rec = {"t": time.time(), "elapsed_s": round(time.time() - self.t0, 3), "stage": stage,
               "fraction": round(min(max(fraction, 0.0), 1.0), 4), "message": message}
        if step is not None:
            rec["step"], rec["of"] = step, of
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec) + "\n")


def _is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return (isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError"
            or "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text)


def _stats(values: list[float]) -> dict:
    vals = sorted(values)
    n = len(vals)
    med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {"median": med, "min": vals[0], "max": vals[-1], "mean": sum(vals) / n, "all": list(values)}


def environment(torch, device: str, gpu: dict | None = None) -> dict:
    """Versions and every setting that changes what a step does or how fast: TF32, cudnn.benchmark, the allocator
    configuration, the visible devices; on GPUs the device's name, UUID and how it was matched to NVML."""
    import platform

    from .env import cpu_name

    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": device, "float32_matmul_precision": torch.get_float32_matmul_precision(),
           "cudnn_benchmark": bool(torch.backends.cudnn.benchmark),
           "cudnn_deterministic": bool(torch.backends.cudnn.deterministic),
           "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
           "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "CUDA_DEVICE_ORDER": os.environ.get("CUDA_DEVICE_ORDER")}
    tf = sys.modules.get("transformers")
    if tf is not None:
        env["transformers"] = tf.__version__
    if device.startswith("cuda"):
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
        env["tf32_cudnn"] = bool(torch.backends.cudnn.allow_tf32)
        env["sdpa_backends_enabled"] = {k: bool(getattr(torch.backends.cuda, f"{k}_sdp_enabled")())
                                        for k in ("flash", "mem_efficient", "math", "cudnn")
                                        if hasattr(torch.backends.cuda, f"{k}_sdp_enabled")}
        idx = torch.cuda.current_device()
        env["gpu"] = torch.cuda.get_device_name(idx)
        gpu = gpu or {}
        env["gpu_uuid"] = gpu.get("uuid")
        env["gpu_mapping"] = gpu.get("mapping") or gpu.get("reason")
        env["gpu_nvml_index"] = gpu.get("nvml_index")
        env["mig"] = bool(gpu.get("mig"))
        if gpu.get("mig"):
            env["mig_profile"] = gpu.get("mig_profile")
            env["mig_parent"] = gpu.get("parent_name")
        env["gpu_memory_total_bytes"] = gpu.get("memory_total_bytes") or torch.cuda.get_device_properties(idx).total_memory
        env["driver"] = gpu.get("driver")
        env["device_label"] = gpu.get("name") if gpu.get("known") else f"cuda:{idx} (unknown GPU)"
    else:
        env["device_label"] = f"cpu: {env['cpu']}"
    return env


def _distinct_params(model) -> list:
    seen, out = set(), []
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            out.append(p)
    return out


def _cache_bytes(obj, seen=None) -> int:
    """Bytes of the tensors inside a KV cache (DynamicCache, tuples of tensors, RNN state)."""
    import torch

    seen = set() if seen is None else seen
    if isinstance(obj, torch.Tensor):
        key = obj.untyped_storage().data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return obj.untyped_storage().nbytes()
    if isinstance(obj, (list, tuple)):
        return sum(_cache_bytes(x, seen) for x in obj)
    if isinstance(obj, dict):
        return sum(_cache_bytes(x, seen) for x in obj.values())
    total = 0
    for attr in ("layers", "self_attention_cache", "cross_attention_cache", "keys", "values", "key_cache",
                 "value_cache"):
        if hasattr(obj, attr):
            total += _cache_bytes(getattr(obj, attr), seen)
    return total


def cuda_device(torch, job: dict, notes: list) -> dict:
    """Select the run's CUDA device and find it in NVML by the UUID torch reports (never by index). Returns the
    gpus entry ({"known": True, uuid, name, ...} or {"known": False, "reason"}) with "driver"."""
    from . import gpus

    idx = gpus.cuda_index(job["request"]["device"])
    n = torch.cuda.device_count()
    if idx >= n:
        from .build import Unsupported

        raise Unsupported(f"cuda:{idx} does not exist: torch sees {n} CUDA device(s) "
                          f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})")
    torch.cuda.set_device(idx)
    torch_uuid = str(getattr(torch.cuda.get_device_properties(idx), "uuid", "") or "")
    inv = gpus.nvml_inventory()
    entry = gpus.match_torch_uuid(torch_uuid, inv) if inv.get("available") and torch_uuid else None
    if entry is None:
        why = inv.get("reason") if not inv.get("available") else (
            f"NVML does not list the device torch uses (UUID {torch_uuid or 'unknown'}; cgroups/containers can hide it)")
        entry = {"known": False, "cuda_index": idx, "reason": f"unknown GPU: {why}"}
        notes.append(f"{entry['reason']}: no NVML memory, power or energy for this run")
    entry["cuda_index"] = idx
    entry["driver"] = inv.get("driver")
    parent = job.get("gpu") or {}
    if parent.get("known") and entry.get("known") and parent.get("uuid") != entry.get("uuid"):
        notes.append(f"the parent mapped cuda:{idx} to {parent.get('name')} ({parent.get('uuid')}, by "
                     f"{parent.get('mapping')}); torch says it is {entry['name']} ({entry['uuid']}): measured on the latter")
    return entry


def run_pass(name: str, fn, m: dict, notes: list, torch=None) -> bool:
    """Run one extra pass in isolation: a failure is recorded (``m["passes"][name]``, a note) and the run goes on."""
    t0 = time.perf_counter()
    rec = m.setdefault("passes", {})
    try:
        fn()
        rec[name] = {"status": "ok", "s": round(time.perf_counter() - t0, 4)}
        return True
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a failed extra pass must not lose the measured steps
        oom = _is_oom(exc)
        rec[name] = {"status": "failed", "s": round(time.perf_counter() - t0, 4), "oom": oom,
                     "error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
        notes.append(f"the {name} pass failed ({rec[name]['error']}); the measured steps are kept")
        if oom and torch is not None and torch.cuda.is_available():
            torch.cuda.empty_cache()
        return False


def flops_cache_key(job: dict, env: dict) -> str:
    """What the FLOP counts depend on: the config, the workload, the device (kernels), torch/transformers versions."""
    key = {"v": FLOPS_CACHE_VERSION, "config": job["config"], "workload": job["workload"],
           "device": env.get("device_label"), "torch": env.get("torch"), "transformers": env.get("transformers"),
           "fvcore": bool(job["request"].get("fvcore", True))}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:32]


FLOP_KEYS = ("counter_forward_flops", "counter_backward_flops", "counter_decode_per_token_flops",
             "counter_attention_recompute_flops", "counter_backward_hw_flops", "counter_by_module",
             "counter_by_operator", "counter_blind_spot", "sdpa_kernels", "fvcore_forward_macs", "fvcore_by_module",
             "fvcore_by_operator", "fvcore_unsupported_ops", "fvcore_table", "fvcore_error")


def sdpa_kernels(ops) -> list[str]:
    """The fused attention kernels among counted aten op names."""
    from .counters import SDPA_KERNELS, VARLEN_KERNELS

    names = {n for n, _, bwd in SDPA_KERNELS if not bwd} | {n for n, bwd, _ in VARLEN_KERNELS if not bwd}
    return sorted({str(o).replace("aten.", "").split(".")[0] for o in ops} & names)


def measure(job: dict, progress: Progress) -> dict:
    """Build, run and measure. Returns {"measured", "environment", "notes"}; raises on failure."""
    t_enter = time.time()
    import torch

    t_torch = time.time()
    from ..workload import Workload
    from . import counters
    from .build import Unsupported, build, make_optimizer
    from .env import host_memory_available_bytes
    from .memory import live_state_tensors, peak_rss_bytes, profile_allocations, reset_peak_rss, rss_bytes, storage_bytes
    from .nvml import ENERGY_WINDOW_S, NvmlSampler

    req = job["request"]
    if req.get("threads"):
        torch.set_num_threads(int(req["threads"]))
    if job.get("memory_limit_bytes"):  # after importing torch, whose libraries take address space (CPU runs only)
        from . import proc

        # every thread that allocates may get its own glibc arena (64 MiB of address space) and has a stack
        job["memory_limit_bytes"] += (torch.get_num_threads() + torch.get_num_interop_threads()) * THREAD_ADDRESS_BYTES
        job["_limit_set"] = proc.set_memory_limit(int(job["memory_limit_bytes"]))
    w = Workload.from_dict(job["workload"])
    notes: list[str] = []
    m: dict = {}
    timing = m["timing"] = {"child_start_unix": job.get("_child_start_unix"), "torch_import_s": t_torch - t_enter}
    cuda = req["device"].startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise Unsupported("CUDA is not available to torch in this process (CPU build or no GPU)")
    if req.get("fault") == "oom":
        torch.empty(1 << 47, dtype=torch.uint8, device=req["device"])  # a real allocation failure: 128 TiB
    gpu = cuda_device(torch, job, notes) if cuda else None
    device = f"cuda:{gpu['cuda_index']}" if cuda else "cpu"
    if cuda and gpu.get("known") and gpu.get("uuid") != job.get("lock_key"):
        from . import locks

        fd, holder = locks.acquire(gpu["uuid"], job.get("lock_dir"), job["run_id"], "profile")
        if fd is None:
            raise Unsupported(f"another run is using {gpu['name']} ({gpu['uuid']}): run {holder.get('run_id')} "
                              f"(pid {holder.get('pid')}); one run at a time per GPU")
        job["_extra_lock_fd"] = fd  # held until this process ends
    env = environment(torch, device, gpu)
    sync = (lambda: torch.cuda.synchronize(device)) if cuda else (lambda: None)
    sampler = None
    if cuda:
        free, total = torch.cuda.mem_get_info()
        need = job.get("predicted_device_total_bytes") or 0
        if need > free:
            raise Unsupported(f"predicted device total {need / 2**30:.2f} GiB exceeds free GPU memory "
                              f"{free / 2**30:.2f} GiB (torch.cuda.mem_get_info)")
        sampler = NvmlSampler(gpu.get("uuid") if gpu.get("known") else None, mig=bool(gpu.get("mig")))
        sampler.start()  # before the model exists
        parent_gpu = job.get("gpu") or {}
        if sampler.available and parent_gpu.get("uuid") == gpu.get("uuid") and parent_gpu.get("memory_used_bytes") is not None:
            m["nvml_used_baseline_bytes"] = parent_gpu["memory_used_bytes"]  # read by the parent, before this process
        if sampler.available and sampler.samples:
            m["nvml_used_after_context_bytes"] = sampler.samples[0][3]  # + this process's CUDA context
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    rss0 = rss_bytes()
    rss_reset = reset_peak_rss()

    # ---- build (directly in the parameter dtype), then the guard on the real parameter bytes --------------------
    progress("build", 0.02, "building the model with random weights")
    t_build = time.perf_counter()
    built = build(job["config"], w, device)
    notes += built.notes
    model = built.model
    sync()
    m["build_s"] = timing["build_s"] = time.perf_counter() - t_build
    if cuda:
        m["build_peak_allocated_bytes"] = torch.cuda.max_memory_allocated() - base_alloc
        m["build_peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
    elif rss_reset:
        m["build_peak_rss_delta_bytes"] = peak_rss_bytes() - rss0
    params = _distinct_params(model)
    m["params_total"] = sum(p.numel() for p in params)
    if w.training:
        m["params_trainable"] = sum(p.numel() for p in params if p.requires_grad)
    m["weights_bytes"] = storage_bytes(params)
    m["buffers_bytes"] = storage_bytes(list(model.buffers()))
    m["param_dtypes"] = sorted({str(p.dtype).replace("torch.", "") for p in params})
    _guard_real_weights(job, m, notes, torch, cuda, rss0, host_memory_available_bytes, rss_bytes)

    warmup, steps = int(req["warmup"]), int(req["steps"])
    batch = built.make_batch()
    gen_tokens = w.generate if built.generative else 0
    opt = scaler = None
    t_opt = time.perf_counter()
    if w.training:
        opt = make_optimizer(model, w)
        if w.precision == "amp-fp16":  # the workload says fp16 autocast with loss scaling
            scaler = torch.amp.GradScaler(torch.device(device).type)
            m["grad_scaler"] = True

        def step():
            loss = built.train_loss(batch)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            else:
                loss.backward()
                opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        def step():
            return built.infer(batch, gen_tokens, sync=sync)
    timing["optimizer_s"] = time.perf_counter() - t_opt

    t_warm = time.perf_counter()
    for i in range(warmup):
        step()
        progress("warmup", 0.1 + 0.2 * (i + 1) / max(warmup, 1), f"warm-up step {i + 1} of {warmup}", i + 1, warmup)
    sync()
    timing["warmup_s"] = time.perf_counter() - t_warm

    # ---- measured steps ------------------------------------------------------------------------------
    rss_reset = reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, infos = [], []
    t_meas = time.perf_counter()
    for i in range(steps):
        if cuda:
            start_ev, end_ev = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start_ev.record()
            info = step()
            end_ev.record()
            end_ev.synchronize()
            times.append(start_ev.elapsed_time(end_ev) / 1000.0)
        else:
            t0 = time.perf_counter()
            info = step()
            times.append(time.perf_counter() - t0)
        infos.append(info)
        progress("measure", 0.3 + 0.5 * (i + 1) / steps, f"measured step {i + 1} of {steps}: {times[-1]:.4g} s",
                 i + 1, steps)
    timing["measured_s"] = time.perf_counter() - t_meas
    m["timing_method"] = "CUDA events around each step" if cuda else "time.perf_counter around each step"
    st = _stats(times)
    b = w.batch
    if w.training:
        m.update({"step_s": st["median"], "step_s_min": st["min"], "step_s_max": st["max"], "step_s_all": st["all"]})
        m["samples_per_s"] = b / st["median"]
        if built.tokens_per_sample > 1:
            m["tokens_per_s"] = b * built.tokens_per_sample / st["median"]
    elif built.generative:
        pre = _stats([x["prefill_s"] for x in infos])
        m.update({"prefill_s": pre["median"], "prefill_s_min": pre["min"], "prefill_s_max": pre["max"],
                  "prefill_s_all": pre["all"], "generation_s": st["median"], "generation_s_all": st["all"]})
        m["prefill_tokens_per_s"] = b * w.prompt / pre["median"]
        if gen_tokens:
            dec = _stats([x["decode_s"] / x["decode_steps"] for x in infos])
            m.update({"decode_per_token_s": dec["median"], "decode_per_token_s_min": dec["min"],
                      "decode_per_token_s_max": dec["max"], "decode_per_token_s_all": dec["all"]})
            m["tokens_per_s"] = b / dec["median"]  # generated tokens per second (all sequences)
    else:
        m.update({"forward_s": st["median"], "forward_s_min": st["min"], "forward_s_max": st["max"],
                  "forward_s_all": st["all"]})
        m["samples_per_s"] = b / st["median"]
        if built.tokens_per_sample > 1:
            m["tokens_per_s"] = b * built.tokens_per_sample / st["median"]

    # ---- memory of the measured steps ---------------------------------------------------------------------
    if cuda:
        m["peak_allocated_bytes"] = torch.cuda.max_memory_allocated() - base_alloc
        m["peak_reserved_bytes"] = torch.cuda.max_memory_reserved()
        m["memory_method"] = ("torch.cuda.max_memory_allocated() over the measured steps minus what was allocated "
                              "before the model was built; reserved = max_memory_reserved()")
    m["peak_rss_bytes"] = peak_rss_bytes()
    m["rss_before_build_bytes"] = rss0
    m["peak_rss_delta_bytes"] = m["peak_rss_bytes"] - rss0
    m["peak_rss_method"] = ("VmHWM over the measured steps (reset via /proc/self/clear_refs)" if rss_reset else
                            "VmHWM since the process started (could not reset)") + " minus RSS before the model was built"

    # ---- extra passes, each isolated -------------------------------------------------------------------------
    deadline = float(job.get("deadline_unix") or time.time() + 3600)
    t_passes = time.perf_counter()
    if sampler is not None:
        def energy():
            if not sampler.available or gpu.get("mig"):
                return
            left = deadline - time.time()
            if left < ENERGY_WINDOW_S + 5 + 2 * st["max"]:
                notes.append(f"no energy window: {left:.0f} s left before the time limit")
                return
            progress("energy", 0.81, f"energy over >= {ENERGY_WINDOW_S:g} s of back-to-back steps")
            energy_window(step, sync, sampler, ENERGY_WINDOW_S)

        run_pass("energy", energy, m, notes, torch)
        sampler.stop()
        m.update(sampler.summary())
        if m.get("energy_reason") and sampler.available:
            notes.append(m["energy_reason"])
    else:
        m.update({"nvml_available": False, "nvml_reason": "no NVIDIA GPU (CPU run)"})

    if not cuda or req.get("memory_timeline", True):
        def memory_pass():
            progress("memory", 0.83, "one extra step with torch.profiler memory events")
            start_bytes = storage_bytes(live_state_tensors(model, opt, batch))
            prof = profile_allocations(step, "cuda" if cuda else "cpu")
            sync()
            m["memory_timeline"] = {"t_ms": [p[0] for p in prof["timeline"]],
                                    "bytes": [start_bytes + p[1] for p in prof["timeline"]],
                                    "start_bytes": start_bytes, "events": prof["events"]}
            if not cuda:
                m["peak_allocated_bytes"] = start_bytes + prof["peak_above_start_bytes"]
                m["memory_method"] = ("tensor bytes alive at the start of a steady-state step (params, buffers, "
                                      "optimizer states, batch) + the peak running sum of torch.profiler "
                                      "allocation/free events during that step")

        run_pass("memory", memory_pass, m, notes, torch)
    if not w.training and built.generative:
        def kv_pass():
            progress("kv-cache", 0.86, "one more generation keeping its KV cache")
            info = built.infer(batch, gen_tokens, sync=sync, keep_cache=True)
            m["kv_cache_bytes"] = _cache_bytes(info.get("cache"))

        run_pass("kv-cache", kv_pass, m, notes, torch)

    if req.get("count_flops", True):
        cache_dir = job.get("flops_cache_dir") if req.get("flops_cache", True) else None
        key = flops_cache_key(job, env)
        cached = _read_cache(cache_dir, key)
        if cached:
            m.update({k: v for k, v in cached["measured"].items() if k in FLOP_KEYS})
            m["counter_source"] = f"cached from run {cached.get('run_id')} ({cached.get('saved')})"
            notes.append(f"FLOP counts reused from run {cached.get('run_id')} (same config, workload, device and "
                         "versions); --recount-flops counts again")
        else:
            def flops_pass():
                progress("flops", 0.88, "counting FLOPs with torch FlopCounterMode")
                marks = {}
                with counters.flop_counter() as fc:
                    if w.training:
                        loss = built.flops_forward(batch)
                        marks["forward"] = fc.get_total_flops()
                        loss.backward()
                    else:
                        built.infer(batch, gen_tokens, mark=lambda name: marks.setdefault(name, fc.get_total_flops()))
                total = fc.get_total_flops()
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                if w.training:
                    m["counter_forward_flops"] = marks["forward"]
                    m["counter_backward_flops"] = total - marks["forward"]
                    m["counter_attention_recompute_flops"] = fc.costmodel_recompute["flops"]
                    m["counter_backward_hw_flops"] = m["counter_backward_flops"] + fc.costmodel_recompute["flops"]
                elif "decode" in marks and gen_tokens:
                    m["counter_forward_flops"] = marks["decode"]
                    m["counter_decode_per_token_flops"] = (total - marks["decode"]) / (gen_tokens * b)
                else:
                    m["counter_forward_flops"] = total
                m["counter_by_module"] = counters.module_totals(fc)
                m["counter_by_operator"] = counters.op_totals(fc)
                m["sdpa_kernels"] = sdpa_kernels(m["counter_by_operator"])
                missing = counters.rnn_blind_spot(model, fc)
                if missing:
                    m["counter_blind_spot"] = missing

            ok = run_pass("flops", flops_pass, m, notes, torch)
            if ok and req.get("fvcore", True):
                def fvcore_pass():
                    progress("fvcore", 0.93, "counting multiply-adds with fvcore")
                    m.update(_fvcore(torch, built, batch, counters))

                run_pass("fvcore", fvcore_pass, m, notes, torch)
            if ok:
                _write_cache(cache_dir, key, job, m)
        if m.get("counter_blind_spot"):
            notes.append(f"FlopCounterMode counted 0 FLOPs for {', '.join(m['counter_blind_spot'])} (no formula for "
                         "this RNN kernel): forward FLOPs fall back to the estimator")
        if "fvcore_error" in m:
            notes.append(f"fvcore could not trace this model: {m['fvcore_error']}")
    if m.get("sdpa_kernels") is not None:  # the fused attention kernel(s) the counted pass ran
        env["sdpa_kernel"] = ", ".join(m["sdpa_kernels"]) or "none (eager attention or no attention)"
    timing["passes_s"] = time.perf_counter() - t_passes
    # set-up: everything in measure() before the measured steps (torch import, build, optimizer, warm-up)
    timing["setup_s"] = (time.time() - t_enter) - timing["measured_s"] - timing["passes_s"]
    m["rss_end_bytes"] = rss_bytes()
    return {"measured": m, "environment": env, "notes": notes, "gpu": gpu}


def energy_window(step, sync, sampler, min_s: float) -> int:
    """Back-to-back steps for at least ``min_s`` seconds between the sampler's window marks (the energy counter
    updates every 20-100 ms and board power is a ~1 s average: a window of a few short steps says little).
    Returns the number of steps."""
    sync()
    sampler.mark_window()
    t0, n = time.perf_counter(), 0
    while n < 1 or time.perf_counter() - t0 < min_s:
        step()
        sync()
        n += 1
    sampler.end_window(n)
    return n


def _guard_real_weights(job, m, notes, torch, cuda, rss0, host_available, rss_bytes) -> None:
    """The memory guard, again, with the built model's real parameter bytes: a config the estimator's importer
    reads differently (e.g. untied embeddings it assumed tied) makes the prediction too small. Re-estimate the need
    (weights, gradients and optimizer states scale with the parameters) and refuse when it does not fit."""
    from .build import Unsupported

    pred = job.get("predicted_parts") or {}
    pw = pred.get("weights_bytes") or 0
    real = m["weights_bytes"] + m["buffers_bytes"]
    if not pw or real <= pw * 1.02 + 2**20:
        return
    scale = real / pw
    per_param = (pred.get("weights_bytes") or 0) + (pred.get("gradients_bytes") or 0) + (pred.get("optimizer_bytes") or 0)
    need = (job.get("predicted_device_total_bytes") or 0) + (scale - 1.0) * per_param
    m["guard_need_after_build_bytes"] = need
    msg = (f"the built model holds {real / 2**30:.3f} GiB of parameters and buffers, the prediction assumed "
           f"{pw / 2**30:.3f} GiB ({100 * (scale - 1):+.0f}%): the config builds a different model than the estimator "
           f"reads (e.g. untied embeddings); memory need re-estimated as {need / 2**30:.2f} GiB")
    if cuda:
        free, _ = torch.cuda.mem_get_info()
        held = torch.cuda.memory_allocated()
        avail, where = free + held, "free GPU memory + what this run already holds"
    else:
        avail = (host_available() or 0) + max(rss_bytes() - rss0, 0)
        where = "available host memory + what this run already holds"
        parent = job.get("available_bytes")
        overhead = job.get("child_process_bytes") or 0  # the parent's figure predates this interpreter
        if parent and parent - overhead < avail:
            avail, where = parent - overhead, ("available host memory when the run started, less "
                                               f"{overhead / 2**30:.2f} GiB for this process's Python + torch")
    if avail and need > MEMORY_MARGIN * avail:
        raise Unsupported(f"memory guard after build: {msg}, which exceeds {MEMORY_MARGIN:.0%} of {where}: "
                          f"{avail / 2**30:.2f} GiB")
    notes.append(msg)
    if not cuda and job.get("memory_limit_bytes"):
        from . import proc

        extra = int((scale - 1.0) * per_param * job.get("memory_limit_factor", 2.0))
        job["memory_limit_bytes"] += extra
        proc.set_memory_limit(job["memory_limit_bytes"])
        m["memory_limit_bytes"] = job["memory_limit_bytes"]


def _read_cache(cache_dir, key: str) -> dict | None:
    if not cache_dir:
        return None
    try:
        return json.loads((Path(cache_dir) / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def _write_cache(cache_dir, key: str, job: dict, m: dict) -> None:
    if not cache_dir:
        return
    try:
        Path(cache_dir).mkdir(parents=True, exist_ok=True)
        write_json_atomic(Path(cache_dir) / f"{key}.json", {
            "run_id": job["run_id"], "saved": time.strftime("%Y-%m-%d %H:%M:%S"),
            "measured": {k: m[k] for k in FLOP_KEYS if k in m}})
    except OSError:
        pass


def _fvcore(torch, built, batch, counters) -> dict:
    """fvcore counts one forward: with the loss in training, prefill-style (last-position logits) in inference."""
    keys = [k for k, v in batch.items() if isinstance(v, torch.Tensor)]
    rest = {k: v for k, v in batch.items() if k not in keys}

    class Forward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = built.model

        def forward(self, *tensors):
            out = built.flops_forward({**dict(zip(keys, tensors)), **rest})
            if isinstance(out, torch.Tensor):
                return out
            for attr in ("loss", "logits", "last_hidden_state"):
                val = getattr(out, attr, None)
                if isinstance(val, torch.Tensor):
                    return val
            return out[0]

    ctx = torch.no_grad() if not built.model.training else torch.enable_grad()
    with ctx:
        return counters.fvcore_count(Forward(), tuple(batch[k] for k in keys))


def _watchdog(deadline: float, run_dir: Path) -> None:
    time.sleep(max(0.0, deadline + WATCHDOG_GRACE_S - time.time()))
    try:
        write_json_atomic(run_dir / RESULT_FILE, {"status": "timeout", "message": "the child's watchdog stopped "
                                                  "the run at its deadline", "measured": {}})
    finally:
        os._exit(124)


def child_main(run_dir: str) -> None:
    """Entry point of the child process (``python -m costmodel.profiler.worker RUN_DIR``)."""
    t_start = time.time()
    rd = Path(run_dir)
    try:
        os.setsid()  # own process group (already so when started by proc.spawn)
    except OSError:
        pass
    log = os.open(rd / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from . import locks, proc

    def parent_gone():
        write_json_atomic(rd / RESULT_FILE, {"status": "cancelled", "message": "the parent process ended, so the run "
                                             "stopped with it", "measured": {}})

    proc.watch_parent(parent_gone)
    job = json.loads((rd / JOB_FILE).read_text(encoding="utf-8"))
    job["_child_start_unix"] = t_start
    progress = Progress(rd)
    threading.Thread(target=_watchdog, args=(float(job["deadline_unix"]), rd), daemon=True).start()
    (rd / "pid").write_text(str(os.getpid()), encoding="ascii")
    lock_fd, holder = locks.acquire(job["lock_key"], job.get("lock_dir"), job["run_id"], "profile")
    if lock_fd is None:
        write_json_atomic(rd / RESULT_FILE, {"status": "refused", "message": f"another run holds the "
                                             f"{job['request']['device']} lock: run {holder.get('run_id')} "
                                             f"(pid {holder.get('pid')})", "measured": {}})
        _exit(0)
    progress("start", 0.01, "child started")
    fault = job["request"].get("fault")
    if fault == "abort":
        os.abort()  # dies by SIGABRT without writing a result: the parent must cope
    if fault == "hang":
        while True:
            time.sleep(1)
    try:
        if fault == "raise":
            raise RuntimeError("injected failure (fault='raise')")
        out = measure(job, progress)
        out["status"] = "ok"
        out["message"] = "measured"
        if job.get("_limit_set"):
            out["measured"].setdefault("memory_limit_bytes", job["memory_limit_bytes"])
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a result
        from .build import Unsupported

        message = f"{type(exc).__name__}: {exc}"[:2000]
        if isinstance(exc, Unsupported):
            status = "refused"
        elif _is_oom(exc):
            status = "oom"
            if job.get("_limit_set"):
                message += (f" (this CPU run's hard memory limit: {job['memory_limit_bytes'] / 2**30:.2f} GiB beyond the "
                            f"interpreter, {job.get('memory_limit_factor', 2.0):g} x the predicted memory + "
                            f"{job.get('memory_limit_slack_bytes', 0) / 2**30:.1f} GiB)")
        else:
            status = "error"
        out = {"status": status, "message": message, "traceback": traceback.format_exc()[-8000:], "measured": {}}
    progress("done", 1.0, out["status"])
    write_json_atomic(rd / RESULT_FILE, out)
    _exit(0)


def _exit(code: int) -> None:
    """Leave at once: the result is written, and tearing down torch's interpreter state takes ~0.4 s."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


if __name__ == "__main__":  # pragma: no cover - manual use
    if len(sys.argv) != 2:
        print("usage: python -m costmodel.profiler.worker RUN_DIR", file=sys.stderr)
        sys.exit(2)
    child_main(sys.argv[1])
