"""``python -m costmodel probe --collectives``: measure this machine's collectives and store them as the link
calibration plans use.

``world_size`` ranks (one per GPU with NCCL, or processes on the CPU with gloo; torch.distributed with a file
rendezvous in the run directory, no network port) each time ``all_reduce``, ``all_gather_into_tensor`` and
``reduce_scatter_tensor`` of flat buffers over a range of sizes (median of ``repeats`` after two warm-ups,
every call between barriers). From each time t of a buffer of S bytes (the full, reduced or gathered size):

    algorithm bandwidth  algbw = S / t
    bus bandwidth        busbw = algbw x 2 (n - 1) / n   (all-reduce)
                         busbw = algbw x (n - 1) / n     (all-gather, reduce-scatter)

(the definitions of NVIDIA's nccl-tests, doc/PERFORMANCE.md: bus bandwidth is what each link carries, so it
compares across n and with the hardware's link rate). A least-squares line t = c0 + c1 S through the all-reduce
points gives the ring model's link (``distributed.fit_ring``: bandwidth 2 (n-1)/n / c1, latency c0 / 2 (n-1));
that is the calibration (``costmodel.collectives.LinkCalibration``) stored under ``collectives/<hardware id>``
and read by ``plan-train --link-calibration`` / ``search-layouts --link-calibration``.

A backend that lacks an operation (gloo has no reduce-scatter in some torch builds) reports it as unsupported
with torch's reason; the all-reduce alone is enough for the calibration.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
import uuid

# 4 KiB .. 64 MiB on GPUs (NCCL reaches its bus bandwidth from a few MiB); the CPU tops out at 16 MiB so
# the probe stays a few seconds on a laptop
SIZES_BYTES = {"cuda": tuple(4 * 4**k * 2**10 for k in range(9)),  # 4 KiB x 4^k up to 256 MiB
               "cpu": tuple(4 * 4**k * 2**10 for k in range(7))}  # up to 16 MiB
OPS = ("all_reduce", "all_gather", "reduce_scatter")


def _rank_main(rank: int, job: dict, run_dir: str) -> None:
    import torch
    import torch.distributed as dist

    from .distributed import init_rank, leave_group, timed_across_ranks, write_result

    n, cuda, dev, sync = init_rank(rank, job, run_dir)
    dtype = torch.bfloat16 if cuda else torch.float32  # what training reduces: bf16 on GPUs; gloo sums fp32
    esize = torch.empty((), dtype=dtype).element_size()

    results: dict = {op: [] for op in OPS}
    unsupported: dict = {}
    for nbytes in job["sizes"]:
        elems = max(n, nbytes // esize // n * n)  # a multiple of n: every rank holds an equal shard
        full = torch.ones(elems, dtype=dtype, device=dev)
        shard = torch.ones(elems // n, dtype=dtype, device=dev)
        calls = {"all_reduce": lambda: dist.all_reduce(full),
                 "all_gather": lambda: dist.all_gather_into_tensor(full, shard),
                 "reduce_scatter": lambda: dist.reduce_scatter_tensor(shard, full)}
        for op, call in calls.items():
            if op in unsupported:
                continue
            try:
                call()
                call()
            except (RuntimeError, NotImplementedError, ValueError) as exc:  # the backend lacks it
                unsupported[op] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
                dist.barrier()
                continue
            times = timed_across_ranks(call, job["repeats"], sync)
            results[op].append({"bytes": elems * esize, "median_s": statistics.median(times), "all_s": times})
    if rank == 0:
        out = {"world_size": n, "backend": dist.get_backend(), "device": job["device"], "dtype": str(dtype).replace("torch.", ""),
               "ops": results, "unsupported": unsupported, "torch": torch.__version__,
               "threads_per_rank": torch.get_num_threads()}
        write_result(run_dir, "collectives_result.json", out)
    leave_group()


def _child(run_dir: str, rank: int) -> None:
    from .distributed import run_rank

    run_rank(run_dir, rank, "collectives_job.json", _rank_main)


def summarize(measured: dict, hardware_id: str) -> dict:
    """Bus bandwidth per op and size, the ring fit of the all-reduce (the link calibration), and the catalog's
    prediction for the same all-reduces (``costmodel.collectives``: the fabric x NVLINK_BUS_EFFICIENCY)."""
    from ..catalog import load_hardware
    from ..collectives import (INTRA_NODE_LATENCY_S, NVLINK_BUS_EFFICIENCY, Link, LinkCalibration, allreduce_s,
                               bus_bandwidth_bytes_per_s)
    from .distributed import fit_ring

    n = measured["world_size"]
    table = []
    for op, pts in measured["ops"].items():
        for p in pts:
            table.append({"op": op, "bytes": p["bytes"], "median_s": p["median_s"],
                          "algbw_bytes_per_s": p["bytes"] / p["median_s"],
                          "busbw_bytes_per_s": bus_bandwidth_bytes_per_s(op, p["bytes"], n, p["median_s"])})
    ar = measured["ops"].get("all_reduce") or []
    fit = fit_ring([(p["bytes"], p["median_s"]) for p in ar], n)
    hw = load_hardware(hardware_id)
    catalog = Link(hw.intra_node_bandwidth_bytes_per_s * NVLINK_BUS_EFFICIENCY, INTRA_NODE_LATENCY_S)
    for row in table:
        if row["op"] == "all_reduce":
            row["catalog_s"] = allreduce_s(row["bytes"], n, catalog)
    largest = [r for r in table if r["op"] == "all_reduce"][-2:]
    out = {"table": table, "ring_fit": fit, "hardware": hardware_id,
           "catalog_bus_bandwidth_bytes_per_s": catalog.bandwidth_bytes_per_s}
    if fit.get("bandwidth_bytes_per_s"):
        cal = LinkCalibration(
            hardware=hardware_id, world_size=n, backend=measured["backend"],
            bus_bandwidth_bytes_per_s=fit["bandwidth_bytes_per_s"], latency_s=fit["latency_s"],
            largest_busbw_bytes_per_s=statistics.median([r["busbw_bytes_per_s"] for r in largest]) if largest else 0.0,
            source=f"probe --collectives: {n} ranks, {measured['backend']}, {measured['dtype']}, torch "
                   f"{measured['torch']}, all-reduce of {len(ar)} sizes {ar[0]['bytes']}-{ar[-1]['bytes']} bytes")
        out["calibration"] = cal.to_dict()
    return out


def run_collectives_probe(world_size: int = 2, device: str = "cpu", hardware: str | None = None,
                          sizes=None, repeats: int = 5, timeout_s: float = 180.0, threads: int | None = None,
                          base_dir_path=None, lock_dir=None) -> dict:
    """Measure the collectives over ``world_size`` local ranks. Never raises for a failed run: returns
    {"status": "ok" | "timeout" | "error" | "refused", "message", "measured", "summary"}. Holds every device's
    machine-wide lock while the ranks run (the ranks die with this process)."""
    from ..errors import InputError
    from . import locks
    from .distributed import spawn_ranks
    from .env import hardware_for
    from .proc import check_timeout
    from .runner import base_dir

    if device not in ("cpu", "cuda"):
        return {"status": "refused", "message": "device: must be cpu or cuda (ranks use cuda:0..n-1)"}
    try:
        timeout_s = check_timeout(timeout_s, "timeout_s")
        if isinstance(world_size, bool) or not isinstance(world_size, int) or not 2 <= world_size <= 64:
            raise InputError("world_size", f"must be a whole number from 2 to 64, got {world_size!r}")
        if isinstance(repeats, bool) or not isinstance(repeats, int) or not 1 <= repeats <= 1000:
            raise InputError("repeats", f"must be a whole number from 1 to 1000, got {repeats!r}")
        sizes = tuple(sizes or SIZES_BYTES[device])
        if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or not 4 <= s <= 2**34 for s in sizes):
            raise InputError("sizes", "must be whole numbers of bytes from 4 to 16 GiB")
    except InputError as exc:
        return {"status": "refused", "message": str(exc)}
    entries = []
    if device == "cuda":
        from .gpus import visible_devices

        vis = visible_devices()
        if world_size > len(vis["devices"]):
            return {"status": "refused", "message": f"world_size: {world_size} ranks need {world_size} GPUs, but this "
                    f"process sees {len(vis['devices'])} (CUDA_VISIBLE_DEVICES={vis['visible']!r})"}
        entries = vis["devices"][:world_size]
        if any(e.get("mig") for e in entries):
            return {"status": "refused", "message": "device: MIG slices cannot talk to each other over NVLink/P2P; "
                    "the collectives probe needs whole GPUs"}
        need = 3 * max(sizes) + 2**30  # three buffers and the NCCL context
        for e in entries:
            if need > e["memory_free_bytes"]:
                return {"status": "refused", "message": f"sizes: the largest buffer needs {need / 2**30:.1f} GiB on "
                        f"{e['name']} (cuda:{e['cuda_index']}), which has {e['memory_free_bytes'] / 2**30:.1f} GiB free"}
    elif world_size > (os.cpu_count() or 1):
        return {"status": "refused", "message": f"world_size: {world_size} ranks on {os.cpu_count()} CPU core(s); "
                "use at most one rank per core"}
    hw_id = hardware or hardware_for("cuda:0" if device == "cuda" else "cpu", entries[0] if entries else None)["hardware"]
    base = base_dir(base_dir_path)
    run_id = "coll-" + time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    keys = [locks.device_key(f"cuda:{e['cuda_index']}", e) for e in entries] if device == "cuda" else [locks.host_key()]
    held = []
    try:
        for key in keys:
            try:
                fd, holder = locks.acquire(key, lock_dir, run_id, "collectives probe")
            except OSError as exc:
                return {"status": "refused", "message": f"cannot use the device-lock directory: {exc}"}
            if fd is None:
                return {"status": "refused", "message": f"another run is using {key}: run {holder.get('run_id')} "
                        f"(pid {holder.get('pid')}, {holder.get('what') or 'profile'})"}
            held.append(fd)
        run_dir = base / "runs" / run_id
        run_dir.mkdir(parents=True)
        job = {"world_size": world_size, "device": device, "sizes": list(sizes), "repeats": repeats, "threads": threads}
        (run_dir / "collectives_job.json").write_text(json.dumps(job))
        status, message, elapsed = spawn_ranks(run_dir, "costmodel.profiler.collectives_probe", world_size, timeout_s,
                                               run_dir / "collectives_result.json")
    finally:
        for fd in held:
            locks.release(fd)
    out = {"status": status, "message": message, "run_dir": str(run_dir), "elapsed_s": round(elapsed, 3),
           "hardware": hw_id}
    if status != "ok":
        out["log_tail"] = (run_dir / "child.log").read_text(errors="replace")[-3000:]
        return out
    measured = json.loads((run_dir / "collectives_result.json").read_text())
    out.update({"measured": measured, "summary": summarize(measured, hw_id)})
    return out


def format_collectives(res: dict) -> str:
    """The probe as a table: per op and size, time, algorithm and bus bandwidth (and the catalog's all-reduce
    time), then the fitted link."""
    m, s = res["measured"], res["summary"]
    lines = [f"collectives on {m['world_size']} ranks ({m['backend']}, {m['dtype']}, torch {m['torch']}); "
             f"predictions from {s['hardware']} (bus bandwidth {s['catalog_bus_bandwidth_bytes_per_s'] / 1e9:.1f} GB/s)",
             "", f"{'op':<15}{'bytes':>12}{'time':>12}{'algbw GB/s':>12}{'busbw GB/s':>12}{'catalog':>12}"]
    for r in s["table"]:
        cat = f"{r['catalog_s'] * 1e3:.3f} ms" if "catalog_s" in r else ""
        lines.append(f"{r['op']:<15}{r['bytes']:>12,}{r['median_s'] * 1e3:>9.3f} ms{r['algbw_bytes_per_s'] / 1e9:>12.2f}"
                     f"{r['busbw_bytes_per_s'] / 1e9:>12.2f}{cat:>12}")
    for op, why in m.get("unsupported", {}).items():
        lines.append(f"{op}: not supported by {m['backend']} here ({why})")
    cal = s.get("calibration")
    if cal:
        lines += ["", f"link calibration (ring fit of the all-reduce): bus bandwidth "
                      f"{cal['bus_bandwidth_bytes_per_s'] / 1e9:.2f} GB/s, latency {cal['latency_s'] * 1e6:.1f} us per step"]
    else:
        lines += ["", "no link calibration: the all-reduce times did not grow with size (too few or too noisy points)"]
    return "\n".join(lines)


if __name__ == "__main__":  # pragma: no cover - the child process
    _child(sys.argv[1], int(sys.argv[2]))
