"""Probe: microbenchmarks of this device that set the time model's efficiency without profiling a model.

Three measurements, each the median of repeated timings (CUDA: CUDA events on the probed device's stream;
CPU: ``time.perf_counter``), in a child that holds the device's lock:

- **GEMM rate** per dtype: ``C = A @ B`` with square ``n x n`` operands (CPU: up to n = 1024, smaller where one
  product would take over ~50 ms by a 256^3 timing; GPU: n = 8192, halved only while the operands would take over
  a quarter of the free memory or one 8192^3 product, timed itself, over 0.5 s; fp32 on GPU with TF32 off),
  ``2 n^3`` FLOPs per product. Efficiency ``matmul`` = bf16 rate / the hardware record's bf16
  peak, ``matmul_fp32`` = fp32 rate / fp32 peak.
- **Copy bandwidth**: ``dst.copy_(src)`` of a buffer far larger than the caches (CPU 256 MiB, GPU 1 GiB),
  ``2 x bytes`` moved per copy (read + write). Efficiency ``bandwidth`` = rate / the record's bandwidth.
- **Host time per eager call** (``overhead_s``): a forward + backward of 10 tiny (width 8) Linear -> LayerNorm ->
  GELU module triples under autograd, divided by the 30 module calls and 3 (backward costs twice the forward in
  the time model): the Python, dispatcher and launch cost that dominates small eager workloads.

The other ``Efficiency`` fields (``step_overhead_s``, ``decode_overhead_s``, ``elementwise_traffic``,
``recurrent_step_s``) keep the hardware kind's defaults. A probe is a floor for what a model reaches: real
GEMMs are smaller than the probe's (a tiny model's reach a fraction of the probe rate), so fitting stored runs
(``costmodel.profiler.calibrate``) remains the way to a close fit; the probe gives a device-specific start
without running a model. Run it in a child process (``run_probe``): ``python -m costmodel.profiler.probe``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, replace

from ..errors import InputError

GEMM_N = {"cpu": 1024, "cuda": 8192}
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2**30}
TINY_WIDTH, TINY_TRIPLES = 8, 10


def _timer(torch, device: str):
    """``median_s(fn)``: seconds per call, the median over repeats. CUDA: CUDA events recorded on the probed
    device's stream around a batch of calls (no host clock, no synchronisation of another device); CPU:
    ``time.perf_counter``."""
    if device.startswith("cuda"):
        dev = torch.device(device)

        def median_s(fn, min_time_s: float = 0.25, min_reps: int = 5, per_batch: int = 1) -> float:
            fn()
            fn()
            torch.cuda.synchronize(dev)
            times = []
            end = time.perf_counter() + min_time_s
            while len(times) < min_reps or time.perf_counter() < end:
                a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                a.record()
                for _ in range(per_batch):
                    fn()
                b.record()
                b.synchronize()
                times.append(a.elapsed_time(b) / 1000.0 / per_batch)
                if len(times) >= 1000:
                    break
            return statistics.median(times)

        return median_s

    def median_s(fn, min_time_s: float = 0.25, min_reps: int = 5, per_batch: int = 1) -> float:
        fn()
        fn()
        times = []
        end = time.perf_counter() + min_time_s
        while len(times) < min_reps or time.perf_counter() < end:
            t0 = time.perf_counter()
            for _ in range(per_batch):
                fn()
            times.append((time.perf_counter() - t0) / per_batch)
            if len(times) >= 1000:
                break
        return statistics.median(times)

    return median_s


def _gemm_size(torch, device: str, dtype, n_max: int, target_s: float = 0.05) -> int:
    """CPU: the largest power-of-two n <= n_max whose product takes about ``target_s`` or less, from a 256^3
    timing (a dtype without fast kernels, such as bf16 on a CPU without AVX512_BF16, would otherwise take
    seconds)."""
    n = 256
    a = torch.randn(n, n, device=device, dtype=dtype)
    (a @ a).sum().item()
    t0 = time.perf_counter()
    (a @ a).sum().item()
    t = max(time.perf_counter() - t0, 1e-6)
    while n * 2 <= n_max and t * 8 <= target_s:
        n, t = n * 2, t * 8
    return n


def gpu_gemm_size(torch, device: str, dtype, n_max: int = 8192, memory_share: float = 0.25,
                  max_s: float = 0.5) -> int:
    """GPU: start at ``n_max`` (8192: 1.1 TFLOP per product, far past the launch-latency and wave-quantisation
    regime of a big GPU) and halve while the three operands would exceed ``memory_share`` of the free memory or
    one product (timed with CUDA events at that size, never extrapolated from a small one) takes over ``max_s``."""
    free, _ = torch.cuda.mem_get_info(torch.device(device))
    esize = torch.empty((), dtype=dtype).element_size()
    n = n_max
    while n > 1024 and 3 * n * n * esize > memory_share * free:
        n //= 2
    while n > 1024:
        a = torch.randn(n, n, device=device, dtype=dtype)
        a @ a  # warm (cuBLAS heuristics, workspace)
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record()
        a @ a
        e.record()
        e.synchronize()
        del a
        if s.elapsed_time(e) / 1000.0 <= max_s:
            break
        n //= 2
    return n


def measure(device: str = "cpu", threads: int | None = None, min_time_s: float = 0.25) -> dict:
    """The microbenchmarks, in this process (imports torch). Units in the key names."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if kind == "cuda":
        device = f"cuda:{torch.device(device).index or 0}"
        torch.cuda.set_device(device)  # every allocation, kernel and event below is on this device
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 rate is plain fp32 (the catalog's fp32 peak)
    median_s = _timer(torch, device)
    out: dict = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "copy_bytes": COPY_BYTES[kind], "gemm_flops_per_s": {}}
    out["gemm_n"] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if kind == "cpu" and name == "fp16":
            continue  # CPUs run fp16 GEMMs through fp32 or not at all; the catalog takes fp16 at the fp32 rate
        n = gpu_gemm_size(torch, device, dtype, GEMM_N[kind]) if kind == "cuda" else _gemm_size(torch, device, dtype,
                                                                                                GEMM_N[kind])
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        t = median_s(lambda: a @ b, min_time_s)
        out["gemm_flops_per_s"][name] = 2.0 * n ** 3 / t
        out["gemm_n"][name] = n
        del a, b
    elems = COPY_BYTES[kind] // 4
    src = torch.ones(elems, device=device)
    dst = torch.empty_like(src)
    out["copy_bytes_per_s"] = 2.0 * src.numel() * 4 / median_s(lambda: dst.copy_(src), min_time_s)
    del src, dst
    layers = []
    for _ in range(TINY_TRIPLES):
        layers += [torch.nn.Linear(TINY_WIDTH, TINY_WIDTH), torch.nn.LayerNorm(TINY_WIDTH), torch.nn.GELU()]
    tiny = torch.nn.Sequential(*layers).to(device)
    x = torch.randn(2, TINY_WIDTH, device=device)

    def step():
        tiny(x).sum().backward()

    calls = 3 * TINY_TRIPLES
    host = _timer(torch, "cpu")  # host time per call: the host clock is the point here (the GPU work is tiny)
    if kind == "cuda":
        def step_synced():
            step()
            torch.cuda.synchronize(device)

        out["host_s_per_call"] = host(step_synced, min_time_s) / (3.0 * calls)  # forward 1x + backward 2x per call
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
        out["gpu_uuid"] = str(getattr(torch.cuda.get_device_properties(torch.device(device)), "uuid", "") or "")
        out["timing_method"] = "CUDA events around the calls on the probed device; host clock for the host time"
    else:
        out["host_s_per_call"] = host(step, min_time_s) / (3.0 * calls)
        out["timing_method"] = "time.perf_counter"
    return out


def probe_efficiency(measured: dict, hardware):
    """(Efficiency, rows, base): the kind's default efficiency (``base``) with matmul, matmul_fp32, bandwidth and
    overhead_s set from the probe, relative to ``hardware``'s datasheet peaks; rows = {"quantity", "measured",
    "datasheet", "fraction", "unit"} for display."""
    from ..catalog import load_hardware
    from ..perf import default_efficiency

    hw = load_hardware(hardware)
    base = default_efficiency(hw)
    rates, sizes = measured.get("gemm_flops_per_s") or {}, measured.get("gemm_n") or {}
    fields, rows = {}, []
    # fp16 is shown but sets nothing: the time model's 16-bit rate is `matmul` on the bf16/fp16 peak
    for dtype, field in (("fp32", "matmul_fp32"), ("bf16", "matmul"), ("fp16", None)):
        if rates.get(dtype):
            peak = hw.peak_flops(dtype)
            if field:
                fields[field] = min(max(rates[dtype] / peak, 1e-4), 1.0)
            rows.append({"quantity": f"{dtype} GEMM {sizes.get(dtype, '?')}^3", "measured": rates[dtype],
                         "datasheet": peak, "fraction": rates[dtype] / peak, "unit": "FLOP/s"})
    bw = measured.get("copy_bytes_per_s")
    if bw:
        peak_bw = hw.memory_bandwidth_bytes_per_s
        fields["bandwidth"] = min(max(bw / peak_bw, 1e-4), 1.0)
        rows.append({"quantity": "copy bandwidth", "measured": bw, "datasheet": peak_bw, "fraction": bw / peak_bw,
                     "unit": "bytes/s"})
    if measured.get("host_s_per_call"):
        fields["overhead_s"] = float(measured["host_s_per_call"])
        rows.append({"quantity": "host time per eager call", "measured": fields["overhead_s"], "datasheet": None,
                     "fraction": None, "unit": "s"})
    eff = replace(base, **fields, source=f"probe of {measured.get('gpu') or measured.get('device')} "
                  f"({time.strftime('%Y-%m-%d')}): " + ", ".join(f"{k}={v:.4g}" for k, v in fields.items())
                  + f" relative to {hw.id}; other fields: {hw.kind} defaults")
    return eff, rows, base


def run_probe(device: str = "cpu", threads: int | None = None, timeout_s: float = 120.0, lock_dir=None) -> dict:
    """Run ``measure`` in a child process with a hard time limit; the parent never imports torch. The child holds
    the device's machine-wide lock (``costmodel.profiler.locks``) while it measures and dies with this process.
    Raises InputError for a bad device or time limit; a busy device, a failed or timed-out child raise
    RuntimeError with its message."""
    from . import locks, proc
    from .request import _DEVICE

    if not isinstance(device, str) or not _DEVICE.match(device):
        raise InputError("device", f"must be cpu, cuda or cuda:N, got {device!r}")
    timeout_s = proc.check_timeout(timeout_s, "timeout")
    key = locks.device_key(device)
    ldir = str(locks.lock_dir(lock_dir))
    holder = locks.holder(key, ldir)
    if holder:
        raise RuntimeError(f"another run is using {device} ({key}): run {holder.get('run_id')} (pid {holder.get('pid')}, "
                           f"{holder.get('what') or 'profile'}); one run at a time per device")
    args = {"device": device, "threads": int(threads) if threads else None, "lock_key": key, "lock_dir": ldir}
    child = proc.spawn([sys.executable, "-m", "costmodel.profiler.probe", json.dumps(args)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = child.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.stop(child)
        child.communicate()
        raise RuntimeError(f"probe of {device} passed its {timeout_s:g} s limit and was killed") from None
    except BaseException:  # Ctrl-C / SIGTERM: no orphan, and the lock is free when this returns
        proc.stop(child)
        raise
    finally:
        proc.release(child.pid)
    if child.returncode == BUSY_EXIT:
        raise RuntimeError(err.strip().splitlines()[-1] if err.strip() else f"{device} is busy")
    if child.returncode != 0:
        _, message = proc.exit_status(child.returncode)
        raise RuntimeError(f"probe of {device} failed ({message}): {err.strip()[-500:]}")
    return json.loads(out.strip().splitlines()[-1])


BUSY_EXIT = 3


def _child_main(args: dict) -> None:
    from . import locks, proc

    proc.watch_parent()
    fd, holder = locks.acquire(args["lock_key"], args["lock_dir"], "probe-" + str(os.getpid()), "probe")
    if fd is None:
        print(f"another run is using {args['device']}: run {holder.get('run_id')} (pid {holder.get('pid')}, "
              f"{holder.get('what') or 'profile'})", file=sys.stderr)
        sys.stderr.flush()
        os._exit(BUSY_EXIT)
    print(json.dumps(measure(args["device"], args.get("threads"))))
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip torch's interpreter teardown


def probe_calibration(measured: dict, hardware, device_label: str) -> dict:
    """A calibration record (the schema of ``calibrate.fit_efficiency``) holding the probe's efficiency, so
    ``Store.save_calibration`` / ``efficiency="calibrated"`` use it like a fitted one."""
    from ..catalog import load_hardware

    eff, rows, base = probe_efficiency(measured, hardware)
    fitted = [f for f in ("matmul", "matmul_fp32", "bandwidth", "overhead_s") if getattr(eff, f) != getattr(base, f)]
    return {"device": device_label, "method": "probe", "efficiency": asdict(eff), "base_efficiency": asdict(base),
            "fitted_fields": fitted, "n_runs": 0, "n_points": 0, "rmse_log_before": None, "rmse_log_after": None,
            "rows": [], "probe": measured, "probe_rows": rows, "hardware": load_hardware(hardware).id,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S")}


if __name__ == "__main__":  # the child: python -m costmodel.profiler.probe '{"device": ..., "lock_key": ...}'
    _child_main(json.loads(sys.argv[1]))
