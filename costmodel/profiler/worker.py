"""The child process of a profiling run: builds the model, runs warm-up and measured steps, measures,
and writes ``result.json`` into its run directory. Progress goes to ``progress.jsonl`` (one JSON object a
line) as it happens. The parent (``runner.py``) starts it, polls it and kills it; the child also kills
itself at its deadline (a watchdog thread), so a run never outlives its time limit even if the parent is
gone. ``python -m costmodel.profiler.worker RUN_DIR`` runs one prepared run directory by hand.

Files in a run directory: ``job.json`` (written by the parent), ``progress.jsonl``, ``result.json``,
``child.log`` (the child's stdout and stderr).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import traceback
from pathlib import Path

from .files import JOB_FILE, LOG_FILE, PROGRESS_FILE, RESULT_FILE, write_json_atomic

WATCHDOG_GRACE_S = 3.0


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
            or "out of memory" in text or "can't allocate memory" in text)


def _stats(values: list[float]) -> dict:
    vals = sorted(values)
    n = len(vals)
    med = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    return {"median": med, "min": vals[0], "max": vals[-1], "mean": sum(vals) / n, "all": list(values)}


def environment(torch, device: str) -> dict:
    from .env import cpu_name, cuda_index, nvml_device

    import platform

    env = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
           "cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
           "device": device}
    tf = sys.modules.get("transformers")
    if tf is not None:
        env["transformers"] = tf.__version__
    if device.startswith("cuda"):
        idx = cuda_index(device)
        env["cuda"] = torch.version.cuda
        env["cudnn"] = torch.backends.cudnn.version()
        env["gpu"] = torch.cuda.get_device_name(idx)
        info = nvml_device(idx)
        env["driver"] = info.get("driver")
        env["gpu_memory_total_bytes"] = info.get("memory_total_bytes")
        env["device_label"] = info.get("name") or env["gpu"]  # the name the parent files calibrations under
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


def measure(job: dict, progress: Progress) -> dict:
    """Build, run and measure. Returns {"measured", "environment", "notes"}; raises on failure."""
    import torch

    from ..workload import Workload
    from . import counters
    from .build import Unsupported, build, make_optimizer
    from .memory import live_state_tensors, peak_rss_bytes, profile_allocations, reset_peak_rss, rss_bytes, storage_bytes
    from .nvml import NvmlSampler

    from .env import cuda_index

    req = job["request"]
    device = req["device"]
    if device.startswith("cuda"):
        device = f"cuda:{cuda_index(device)}"
    w = Workload.from_dict(job["workload"])
    if req.get("threads"):
        torch.set_num_threads(int(req["threads"]))
    cuda = device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        raise Unsupported("CUDA is not available to torch in this process (CPU build or no GPU)")
    if req.get("fault") == "oom":
        # a real allocation failure: 128 TiB
        torch.empty(1 << 47, dtype=torch.uint8, device=device)
    env = environment(torch, device)
    notes: list[str] = []
    m: dict = {}
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    if cuda:
        torch.cuda.set_device(cuda_index(device))
        free, total = torch.cuda.mem_get_info()
        need = job.get("predicted_device_total_bytes") or 0
        if need > free:
            raise Unsupported(f"predicted device total {need / 2**30:.2f} GiB exceeds free GPU memory "
                              f"{free / 2**30:.2f} GiB (torch.cuda.mem_get_info)")
        torch.cuda.reset_peak_memory_stats()
        base_alloc = torch.cuda.memory_allocated()
    torch.manual_seed(0)
    rss0 = rss_bytes()

    progress("build", 0.02, "building the model with random weights")
    t_build = time.perf_counter()
    built = build(job["config"], w, device)
    notes += built.notes
    model = built.model
    sync()
    m["build_s"] = time.perf_counter() - t_build
    params = _distinct_params(model)
    m["params_total"] = sum(p.numel() for p in params)
    if w.training:
        m["params_trainable"] = sum(p.numel() for p in params if p.requires_grad)
    m["weights_bytes"] = storage_bytes(params)
    m["buffers_bytes"] = storage_bytes(list(model.buffers()))
    warmup, steps = int(req["warmup"]), int(req["steps"])
    batch = built.make_batch()
    gen_tokens = w.generate if built.generative else 0
    opt = None

    if w.training:
        opt = make_optimizer(model, w)

        def step():
            loss = built.train_loss(batch)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
    else:
        def step():
            return built.infer(batch, gen_tokens, sync=sync)

    for i in range(warmup):
        step()
        progress("warmup", 0.1 + 0.2 * (i + 1) / max(warmup, 1), f"warm-up step {i + 1} of {warmup}", i + 1, warmup)
    sync()

    # ---- measured steps ------------------------------------------------------------------------------
    rss_reset = reset_peak_rss()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, infos = [], []
    sampler = NvmlSampler(torch.device(device).index or 0) if cuda else None
    if sampler:
        sampler.start()
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
    if sampler:
        sampler.stop()
        m.update(sampler.summary(steps))
    else:
        m.update({"nvml_available": False, "nvml_reason": "no NVIDIA GPU (CPU run)"})
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

    # ---- memory ----------------------------------------------------------------------------------------
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
    if not cuda or req.get("memory_timeline", True):
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
    if not w.training and built.generative:
        info = built.infer(batch, gen_tokens, sync=sync, keep_cache=True)
        m["kv_cache_bytes"] = _cache_bytes(info.get("cache"))
        del info

    # ---- FLOPs -----------------------------------------------------------------------------------------
    if req.get("count_flops", True):
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
        elif "decode" in marks and gen_tokens:
            m["counter_forward_flops"] = marks["decode"]
            m["counter_decode_per_token_flops"] = (total - marks["decode"]) / (gen_tokens * b)
        else:
            m["counter_forward_flops"] = total
        m["counter_by_module"] = counters.module_totals(fc)
        m["counter_by_operator"] = counters.op_totals(fc)
        missing = counters.rnn_blind_spot(model, fc)
        if missing:
            m["counter_blind_spot"] = missing
            notes.append(f"FlopCounterMode counted 0 FLOPs for {', '.join(missing)} (no formula for this RNN "
                         "kernel): forward FLOPs fall back to the estimator")
        if req.get("fvcore", True):
            progress("fvcore", 0.93, "counting multiply-adds with fvcore")
            m.update(_fvcore(torch, built, batch, counters))
            if "fvcore_error" in m:
                notes.append(f"fvcore could not trace this model: {m['fvcore_error']}")
    m["rss_end_bytes"] = rss_bytes()
    return {"measured": m, "environment": env, "notes": notes}


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


def _acquire_lock(path: str, run_id: str):
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = os.pread(fd, 4096, 0).decode(errors="replace").strip()
        finally:
            os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps({"pid": os.getpid(), "run_id": run_id, "since": time.time()}).encode(), 0)
    return fd, ""  # kept open (and locked) until this process exits


def child_main(run_dir: str) -> None:
    """Entry point of the child process (a multiprocessing target, or ``python -m``)."""
    rd = Path(run_dir)
    try:
        os.setsid()  # own process group: the parent kills the whole group (DDP grandchildren included)
    except OSError:
        pass
    log = os.open(rd / LOG_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    sys.stdout = os.fdopen(1, "w", buffering=1, closefd=False)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    job = json.loads((rd / JOB_FILE).read_text(encoding="utf-8"))
    progress = Progress(rd)
    threading.Thread(target=_watchdog, args=(float(job["deadline_unix"]), rd), daemon=True).start()
    (rd / "pid").write_text(str(os.getpid()), encoding="ascii")
    lock_fd, holder = _acquire_lock(job["lock_path"], job["run_id"])
    if lock_fd is None:
        write_json_atomic(rd / RESULT_FILE, {"status": "refused", "message": f"another run holds the "
                                             f"{job['request']['device']} lock: {holder}", "measured": {}})
        return
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
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a result
        from .build import Unsupported

        if isinstance(exc, Unsupported):
            status = "refused"
        elif _is_oom(exc):
            status = "oom"
        else:
            status = "error"
        out = {"status": status, "message": f"{type(exc).__name__}: {exc}"[:2000],
               "traceback": traceback.format_exc()[-8000:], "measured": {}}
    progress("done", 1.0, out["status"])
    write_json_atomic(rd / RESULT_FILE, out)
    sys.stdout.flush()
    sys.stderr.flush()


if __name__ == "__main__":  # pragma: no cover - manual use
    if len(sys.argv) != 2:
        print("usage: python -m costmodel.profiler.worker RUN_DIR", file=sys.stderr)
        sys.exit(2)
    child_main(sys.argv[1])
