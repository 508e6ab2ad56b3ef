"""Probe: microbenchmarks of this device that set the time model's efficiency without profiling a model.

Three measurements, each the median of repeated timings (CUDA: synchronised; CPU: ``time.perf_counter``):

- **GEMM rate** per dtype: ``C = A @ B`` with square ``n x n`` operands (up to CPU n = 1024, GPU n = 8192,
  smaller where one product would take over ~50 ms; fp32 on GPU with TF32 off), ``2 n^3`` FLOPs per product. Efficiency ``matmul`` = bf16 rate / the hardware record's bf16
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
from pathlib import Path

from ..errors import InputError

GEMM_N = {"cpu": 1024, "cuda": 8192}
COPY_BYTES = {"cpu": 256 * 2**20, "cuda": 2**30}
TINY_WIDTH, TINY_TRIPLES = 8, 10


def _timer(torch, device: str):
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def median_s(fn, min_time_s: float = 0.25, min_reps: int = 5) -> float:
        fn()
        fn()
        sync()
        times = []
        end = time.perf_counter() + min_time_s
        while len(times) < min_reps or time.perf_counter() < end:
            t0 = time.perf_counter()
            fn()
            sync()
            times.append(time.perf_counter() - t0)
            if len(times) >= 1000:
                break
        return statistics.median(times)

    return median_s


def _gemm_size(torch, device: str, dtype, n_max: int, target_s: float = 0.05) -> int:
    """The largest power-of-two n <= n_max whose product takes about ``target_s`` or less (a dtype without fast
    kernels on this device, such as bf16 on a CPU without AVX512_BF16, would otherwise take seconds)."""
    n = 256
    a = torch.randn(n, n, device=device, dtype=dtype)
    (a @ a).sum().item()
    t0 = time.perf_counter()
    (a @ a).sum().item()
    t = max(time.perf_counter() - t0, 1e-6)
    while n * 2 <= n_max and t * 8 <= target_s:
        n, t = n * 2, t * 8
    return n


def measure(device: str = "cpu", threads: int | None = None, min_time_s: float = 0.25) -> dict:
    """The microbenchmarks, in this process (imports torch). Units in the key names."""
    import torch

    if threads:
        torch.set_num_threads(int(threads))
    kind = "cuda" if device.startswith("cuda") else "cpu"
    if kind == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the fp32 rate is plain fp32 (the catalog's fp32 peak)
    median_s = _timer(torch, device)
    out: dict = {"device": device, "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "copy_bytes": COPY_BYTES[kind], "gemm_flops_per_s": {}}
    out["gemm_n"] = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        if kind == "cpu" and name == "fp16":
            continue  # CPUs run fp16 GEMMs through fp32 or not at all; the catalog takes fp16 at the fp32 rate
        n = _gemm_size(torch, device, dtype, GEMM_N[kind])
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
    out["host_s_per_call"] = median_s(step, min_time_s) / (3.0 * calls)  # forward 1x + backward 2x per call
    if kind == "cuda":
        out["gpu"] = torch.cuda.get_device_name(torch.device(device))
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


def run_probe(device: str = "cpu", threads: int | None = None, timeout_s: float = 120.0) -> dict:
    """Run ``measure`` in a child process with a hard time limit; the parent never imports torch.
    Raises InputError for a bad device; a failed or timed-out child raises RuntimeError with its message."""
    from .request import _DEVICE

    if not isinstance(device, str) or not _DEVICE.match(device):
        raise InputError("device", f"must be cpu, cuda or cuda:N, got {device!r}")
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    cmd = [sys.executable, "-m", "costmodel.profiler.probe", device] + ([str(int(threads))] if threads else [])
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)
        proc.communicate()
        raise RuntimeError(f"probe of {device} passed its {timeout_s:g} s limit and was killed") from None
    if proc.returncode != 0:
        raise RuntimeError(f"probe of {device} failed (exit {proc.returncode}): {err.strip()[-500:]}")
    return json.loads(out.strip().splitlines()[-1])


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


if __name__ == "__main__":  # the child: python -m costmodel.profiler.probe DEVICE [THREADS]
    dev = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    thr = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(measure(dev, thr)))
