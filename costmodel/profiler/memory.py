"""Memory measures (child side).

GPU: ``torch.cuda.max_memory_allocated()`` (what the estimator's ``memory_bytes.peak`` predicts) and
``max_memory_reserved()`` (plus the caching allocator's slack), both minus what was allocated before the
model was built.

CPU has no caching-allocator statistics, so the profiler uses two measures and says which is which:

1. **peak allocated** (compared with ``memory_bytes.peak``): the bytes of tensors alive at the start of a
   steady-state step (parameters, buffers, optimizer states, gradients if any, the input batch -- the
   distinct storages, counted once) plus the highest running sum of the allocation and free events that
   ``torch.profiler`` (``profile_memory=True``) records during that one step. This is the CPU analogue of
   ``max_memory_allocated``: tensor bytes only, no allocator slack. Memory that oneDNN/MKL allocate
   outside torch's allocator (scratch pads) is not seen. It runs as an extra, untimed step (profiling
   slows the step).
2. **peak RSS** (process level, compared with nothing; shown for context): the process's resident-set
   high-water mark (``VmHWM`` in /proc/self/status, reset through /proc/self/clear_refs before the
   measured steps where the kernel allows) minus its resident set just before the model was built. It
   includes glibc's retained free memory, the interpreter's own growth and library scratch buffers, so it
   is an upper bound on what the model needed.

``tracemalloc`` is useless here: torch allocates tensor memory in C++, outside Python's allocator.
"""

from __future__ import annotations

import os
import resource


def rss_bytes() -> int:
    """Resident set size now (/proc/self/statm), bytes."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def peak_rss_bytes() -> int:
    """Resident-set high-water mark (VmHWM), bytes; ru_maxrss where /proc is missing."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to /proc/self/clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def storage_bytes(tensors) -> int:
    """Bytes of the distinct storages behind ``tensors`` (a tied weight counts once)."""
    seen = {}
    for t in tensors:
        if t is None:
            continue
        st = t.untyped_storage()
        key = (st.data_ptr(), t.device.type, t.device.index)
        seen[key] = st.nbytes()
    return sum(seen.values())


def live_state_tensors(model, optimizer=None, batch=None) -> list:
    """Parameters, buffers, gradients, optimizer states and the input batch: what is alive between steps."""
    import torch

    out = list(model.parameters()) + list(model.buffers())
    out += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        for state in optimizer.state.values():
            out += [v for v in state.values() if isinstance(v, torch.Tensor)]
    if batch:
        out += [v for v in batch.values() if isinstance(v, torch.Tensor)]
    return out


def profile_allocations(fn, device_type: str = "cpu", max_points: int = 400) -> dict:
    """Run ``fn()`` under torch.profiler with ``profile_memory=True`` and return
    {"peak_above_start_bytes", "end_above_start_bytes", "timeline": [[ms, bytes above start], ...],
    "events"} for allocations on ``device_type``. The timeline keeps the largest value in each of
    ``max_points`` time buckets so the peak survives downsampling."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if device_type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with profile(activities=activities, profile_memory=True, record_shapes=False) as prof:
        fn()
    want = device_type.upper()
    events = []
    for e in prof.profiler.kineto_results.events():
        if e.name() == "[memory]" and str(e.device_type()).upper().endswith(want):
            events.append((e.start_ns(), e.nbytes()))
    events.sort()
    if not events:
        return {"peak_above_start_bytes": 0, "end_above_start_bytes": 0, "timeline": [], "events": 0}
    t0 = events[0][0]
    cur = peak = 0
    points = []
    for t, n in events:
        cur += n
        peak = max(peak, cur)
        points.append(((t - t0) / 1e6, cur))
    span = max(points[-1][0], 1e-9)
    buckets: dict[int, tuple[float, int]] = {}
    for ms, val in points:
        i = min(int(ms / span * max_points), max_points - 1)
        if i not in buckets or val > buckets[i][1]:
            buckets[i] = (ms, val)
    timeline = [[round(ms, 4), int(v)] for ms, v in (buckets[i] for i in sorted(buckets))]
    return {"peak_above_start_bytes": int(peak), "end_above_start_bytes": int(cur), "timeline": timeline,
            "events": len(events)}
