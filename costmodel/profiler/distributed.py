"""Scale-out check: a data-parallel training run over ``world_size`` processes with torch.distributed
(gloo on CPU, NCCL on GPUs), measuring all-reduce time and step time, compared with the ring all-reduce
model ``costmodel.collectives.allreduce_s`` (each device sends and receives 2(n-1)/n x the buffer in
2(n-1) steps: Patarasuk & Yuan 2009; NCCL docs).

What each rank does (same model, same seed, its own random batch):
1. DistributedDataParallel steps (bucketed all-reduce overlapped with backward): ``step_s``;
2. the same steps under ``ddp.no_sync()`` (no communication): ``step_no_sync_s``; the difference is the
   communication the overlap did not hide;
3. ``dist.all_reduce`` of flat fp32 buffers: the gradient's size and a few others. A least-squares line
   t = c0 + c1 * bytes through them gives the link's effective latency and bandwidth under the ring model
   (alpha = c0 / (2(n-1)), beta = 2(n-1)/n / c1);
4. after the steps, the ranks' parameters must be identical (DDP averages gradients): ``params_in_sync``.

Each rank is a child process (``python -m costmodel.profiler.distributed RUN_DIR RANK``) leading its own
process group; all are killed at ``timeout_s`` or when a rank fails. They meet through a file rendezvous in the run directory (no network port).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

SIZES_BYTES = (4 * 2**10, 256 * 2**10, 4 * 2**20)


def ring_allreduce_s(nbytes: float, n: int, bandwidth_bytes_per_s: float, latency_s: float) -> float:
    """Ring all-reduce time (costmodel.collectives.allreduce_s): 2(n-1)/n * bytes / bandwidth + 2(n-1) * latency."""
    from ..collectives import Link, allreduce_s

    return allreduce_s(nbytes, n, Link(bandwidth_bytes_per_s, latency_s))


def fit_ring(points: list[tuple[float, float]], n: int) -> dict:
    """Least-squares t = c0 + c1 * bytes over (bytes, seconds) points -> ring-model latency and bandwidth."""
    k = len(points)
    if k < 2 or n < 2:
        return {}
    mx = sum(p[0] for p in points) / k
    my = sum(p[1] for p in points) / k
    sxx = sum((p[0] - mx) ** 2 for p in points)
    if sxx == 0:
        return {}
    c1 = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx
    c0 = my - c1 * mx
    out = {"intercept_s": c0, "slope_s_per_byte": c1}
    if c1 > 0:
        out["bandwidth_bytes_per_s"] = 2 * (n - 1) / n / c1
    out["latency_s"] = max(c0, 0.0) / (2 * (n - 1))
    return out


def init_rank(rank: int, job: dict, run_dir: str):
    """Join the job's process group (NCCL on GPUs, gloo on CPU; file rendezvous in ``run_dir``), share the CPU
    threads among the ranks and pick this rank's device: (world size, on CUDA?, device, synchronize)."""
    import torch
    import torch.distributed as dist

    n = job["world_size"]
    cuda = job["device"] == "cuda"
    dist.init_process_group("nccl" if cuda else "gloo", init_method=f"file://{run_dir}/rendezvous", rank=rank,
                            world_size=n)
    torch.set_num_threads(job.get("threads") or max(1, (os.cpu_count() or 1) // n))
    if cuda:
        torch.cuda.set_device(rank)
    return n, cuda, (f"cuda:{rank}" if cuda else "cpu"), (torch.cuda.synchronize if cuda else (lambda: None))


def timed_across_ranks(fn, repeats: int, sync) -> list[float]:
    """Seconds of ``repeats`` calls of ``fn``, each started on every rank together (a barrier) and timed to the
    device's completion (``sync``)."""
    import torch.distributed as dist

    out = []
    for _ in range(repeats):
        dist.barrier()
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return out


def write_result(run_dir: str, name: str, out: dict) -> None:
    """Rank 0's result, written atomically (the parent reads ``run_dir/name`` only once it is whole)."""
    tmp = Path(run_dir) / f"{name}.tmp"
    tmp.write_text(json.dumps(out, indent=1))
    os.replace(tmp, Path(run_dir) / name)


def leave_group() -> None:
    """Every rank leaves the process group together."""
    import torch.distributed as dist

    dist.barrier()
    dist.destroy_process_group()


def _rank_main(rank: int, job: dict, run_dir: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    from ..workload import Workload
    from .build import build, make_optimizer

    n, cuda, dev, sync = init_rank(rank, job, run_dir)
    w = Workload.from_dict(job["workload"])
    torch.manual_seed(0)  # identical initial weights on every rank
    built = build(job["config"], w, dev)
    torch.manual_seed(1 + rank)  # different data per rank
    batch = built.make_batch()

    class LossModule(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = built.model

        def forward(self, b):
            return built.train_loss(b)

    ddp = DDP(LossModule(), device_ids=[rank] if cuda else None)
    opt = make_optimizer(built.model, w)

    def step():
        loss = ddp(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(job["warmup"]):
        step()
    step_s = timed_across_ranks(step, job["steps"], sync)

    def step_no_sync():
        with ddp.no_sync():
            loss = ddp(batch)
            loss.backward()
        opt.zero_grad(set_to_none=True)  # no optimizer step: the ranks' weights stay equal

    no_sync_s = timed_across_ranks(step_no_sync, job["steps"], sync)
    # parameters equal on every rank? compare a checksum: max - min over ranks
    with torch.no_grad():
        flat = torch.cat([p.detach().float().reshape(-1) for p in built.model.parameters()])
        lo, hi = flat.clone(), flat.clone()
        dist.all_reduce(lo, op=dist.ReduceOp.MIN)
        dist.all_reduce(hi, op=dist.ReduceOp.MAX)
        max_diff = float((hi - lo).abs().max())
    trainable = [p for p in built.model.parameters() if p.requires_grad]
    grad_elems = sum(p.numel() for p in trainable)
    # DDP all-reduces gradients in their own dtype (the parameters'): bf16 weights -> 2-byte gradients
    grad_bytes = sum(p.numel() * p.element_size() for p in trainable)
    grad_dtypes = sorted({str(p.dtype).replace("torch.", "") for p in trainable})
    gdtype = trainable[0].dtype if len(grad_dtypes) == 1 else torch.float32
    esize = torch.empty((), dtype=gdtype).element_size()
    sizes = sorted(set(list(job["sizes"]) + [grad_bytes]))
    ar = {}
    for nbytes in sizes:
        buf = torch.ones(max(1, nbytes // esize), dtype=gdtype, device=dev)
        for _ in range(2):
            dist.all_reduce(buf)
        ar[nbytes] = timed_across_ranks(lambda: dist.all_reduce(buf), job["repeats"], sync)
    if rank == 0:
        out = {"world_size": n, "backend": dist.get_backend(), "device": job["device"], "grad_elems": grad_elems,
               "grad_bytes": grad_bytes, "grad_dtypes": grad_dtypes, "allreduce_dtype": str(gdtype).replace("torch.", ""),
               "step_s": statistics.median(step_s), "step_s_all": step_s,
               "step_no_sync_s": statistics.median(no_sync_s), "step_no_sync_s_all": no_sync_s,
               "allreduce": [{"bytes": b, "median_s": statistics.median(v), "all_s": v} for b, v in sorted(ar.items())],
               "params_max_diff_across_ranks": max_diff, "torch": torch.__version__,
               "threads_per_rank": torch.get_num_threads()}
        write_result(run_dir, "dp_result.json", out)
    leave_group()


def run_rank(run_dir: str, rank: int, job_file: str, rank_main) -> None:
    """A rank's process: it dies with the process that started the job (which holds the device locks), reads
    the job from ``run_dir/job_file`` and runs ``rank_main(rank, job, run_dir)``."""
    from . import proc

    proc.watch_parent()
    rank_main(rank, json.loads((Path(run_dir) / job_file).read_text()), run_dir)


def _child(run_dir: str, rank: int) -> None:
    run_rank(run_dir, rank, "dp_job.json", _rank_main)


def run_data_parallel(model, workload: dict, world_size: int = 2, device: str = "cpu", steps: int = 3,
                      warmup: int = 1, timeout_s: float = 180.0, config_overrides: dict | None = None,
                      hardware: str | None = None, repeats: int = 5, sizes=SIZES_BYTES, threads: int | None = None,
                      base_dir_path=None, lock_dir=None) -> dict:
    """Run the data-parallel check and compare with the ring model. Never raises for a failed run:
    returns {"status": "ok" | "timeout" | "error" | "refused" | "cancelled", "message", "measured", "predicted",
    "comparison"}.

    Before anything starts: the workload must be a training run the profiler can execute (``check_workload``);
    ``world_size`` must not exceed the GPUs this process sees (rank r uses cuda:r) or, on CPU, the cores; the
    predicted memory of one rank must fit each GPU's free memory (on CPU: ``world_size`` ranks in the host's
    available memory); and every device's machine-wide lock must be free (this process holds them while the
    ranks run; the ranks die with it)."""
    from ..errors import InputError
    from ..workload import Workload
    from . import locks
    from .build import check_workload
    from .proc import check_timeout
    from .request import resolve_model
    from .runner import CHILD_PROCESS_BYTES, MEMORY_MARGIN, base_dir

    if device not in ("cpu", "cuda"):
        return {"status": "refused", "message": "device: must be cpu or cuda (ranks use cuda:0..n-1)"}
    try:
        timeout_s = check_timeout(timeout_s, "timeout_s")
        if isinstance(world_size, bool) or not isinstance(world_size, int) or not 2 <= world_size <= 64:
            raise InputError("world_size", f"must be a whole number from 2 to 64, got {world_size!r}")
        wl = Workload.from_dict(workload if isinstance(workload, dict) else workload.to_dict())
        if not wl.training:
            raise InputError("task", "the data-parallel check runs training steps (task train)")
        check_workload(wl)
        name, cfg = resolve_model(model, config_overrides)
    except InputError as exc:
        return {"status": "refused", "message": str(exc)}
    entries, need = [], None
    if device == "cuda":
        from .gpus import visible_devices

        vis = visible_devices()
        seen = len(vis["devices"])
        if world_size > seen:
            why = vis.get("reason") or f"{seen} visible"
            return {"status": "refused", "message": f"world_size: {world_size} ranks need {world_size} GPUs, but this "
                    f"process sees {seen} ({why}; CUDA_VISIBLE_DEVICES={vis['visible']!r})"}
        entries = vis["devices"][:world_size]
        mig = [e["name"] for e in entries if e.get("mig")]
        if mig:
            return {"status": "refused", "message": f"device: MIG slices ({', '.join(mig)}) cannot talk to each other "
                    "over NVLink/P2P; the data-parallel check needs whole GPUs"}
    elif world_size > (os.cpu_count() or 1):
        return {"status": "refused", "message": f"world_size: {world_size} ranks on {os.cpu_count()} CPU core(s); "
                "use at most one rank per core"}
    try:
        need = _predicted_rank_bytes(cfg, wl, device, hardware, entries)
    except InputError as exc:
        return {"status": "refused", "message": str(exc)}
    if device == "cuda":
        for e in entries:
            if need > MEMORY_MARGIN * e["memory_free_bytes"]:
                return {"status": "refused", "message": f"predicted memory per rank {need / 2**30:.2f} GiB exceeds "
                        f"{MEMORY_MARGIN:.0%} of the free memory of {e['name']} (cuda:{e['cuda_index']}): "
                        f"{e['memory_free_bytes'] / 2**30:.2f} GiB"}
    else:
        from .env import host_memory_available_bytes

        avail = host_memory_available_bytes()
        total = world_size * (need + CHILD_PROCESS_BYTES)
        if avail is not None and total > MEMORY_MARGIN * avail:
            return {"status": "refused", "message": f"predicted memory of {world_size} ranks {total / 2**30:.2f} GiB "
                    f"(incl. {CHILD_PROCESS_BYTES / 2**30:.2f} GiB per rank for Python + torch) exceeds "
                    f"{MEMORY_MARGIN:.0%} of available host memory: {avail / 2**30:.2f} GiB"}
    base = base_dir(base_dir_path)
    run_id = "dp-" + time.strftime("%Y%m%d-%H%M%S") + "-" + uuid.uuid4().hex[:6]
    keys = [locks.device_key(f"cuda:{e['cuda_index']}", e) for e in entries] if device == "cuda" else [locks.host_key()]
    held = []
    try:
        for key in keys:
            try:
                fd, holder = locks.acquire(key, lock_dir, run_id, "data-parallel check")
            except OSError as exc:
                return {"status": "refused", "message": f"cannot use the device-lock directory: {exc}"}
            if fd is None:
                return {"status": "refused", "message": f"another run is using {key}: run {holder.get('run_id')} "
                        f"(pid {holder.get('pid')}, {holder.get('what') or 'profile'})"}
            held.append(fd)
        return _run_dp(base / "runs" / run_id, name, cfg, wl, world_size, device, steps, warmup, timeout_s, hardware,
                       repeats, sizes, threads)
    finally:
        for fd in held:
            locks.release(fd)  # the device locks


def _predicted_rank_bytes(cfg, wl, device, hardware, entries) -> float:
    """The estimator's device total of one rank (the same model and batch on every rank, plus DDP's gradient
    buckets, which the estimator's single-device total does not hold: one more copy of the gradients)."""
    from ..api import estimate
    from .env import hardware_for

    hw = hardware or hardware_for(device if device == "cpu" else "cuda:0", entries[0] if entries else None)["hardware"]
    est = estimate(cfg, hardware=hw, workload=wl)
    return float(est.memory_bytes.device_total + est.memory_bytes.gradients)


def spawn_ranks(run_dir: Path, module: str, world_size: int, timeout_s: float, result_path: Path) -> tuple[str, str, float]:
    """Start ``python -m module RUN_DIR RANK`` for every rank (each leads its own process group and dies with this
    process), wait up to ``timeout_s``, and end them all when one fails or time runs out (a failed rank leaves
    the others waiting in a collective). Returns (status ok | timeout | error, message, elapsed seconds)."""
    from . import proc as procs_mod

    t0 = time.time()
    procs = []
    status, message = "ok", "measured"
    try:
        with open(run_dir / "child.log", "ab") as log:
            for rank in range(world_size):
                procs.append(procs_mod.spawn([sys.executable, "-m", module, str(run_dir), str(rank)],
                                             stdout=log, stderr=subprocess.STDOUT))
        try:
            for p in procs:
                p.wait(timeout=max(0.1, t0 + timeout_s - time.time()))
        except subprocess.TimeoutExpired:
            status, message = "timeout", f"killed after its time limit of {timeout_s:.0f} s"
    except BaseException:  # Ctrl-C / SIGTERM: end every rank before the locks are released
        for p in procs:
            procs_mod.stop(p)
        raise
    if status != "ok" or any(p.returncode for p in procs):
        for p in procs:
            if p.poll() is None:
                procs_mod.kill_group(p.pid)
            p.wait()
    for p in procs:
        procs_mod.release(p.pid)
    codes = [p.returncode for p in procs]
    if status == "ok" and (any(codes) or not result_path.exists()):
        status, message = "error", f"a rank failed (exit codes {codes})"
    return status, message, time.time() - t0


def _run_dp(run_dir, name, cfg, wl, world_size, device, steps, warmup, timeout_s, hardware, repeats, sizes,
            threads) -> dict:
    from ..catalog import load_hardware
    from ..collectives import INTRA_NODE_LATENCY_S
    from .compare import clean_json, error_pct
    from .env import device_label, hardware_for

    run_dir.mkdir(parents=True)
    job = {"config": cfg, "workload": wl.to_dict(), "world_size": world_size, "device": device, "steps": steps,
           "warmup": warmup, "repeats": repeats, "sizes": list(sizes), "threads": threads}
    (run_dir / "dp_job.json").write_text(json.dumps(job))
    status, message, elapsed = spawn_ranks(run_dir, "costmodel.profiler.distributed", world_size, timeout_s,
                                           run_dir / "dp_result.json")
    res_path = run_dir / "dp_result.json"
    out = {"status": status, "message": message, "model": name, "run_dir": str(run_dir),
           "elapsed_s": round(elapsed, 3), "device": device_label("cuda:0" if device == "cuda" else "cpu")}
    if status != "ok":
        out["log_tail"] = (run_dir / "child.log").read_text(errors="replace")[-3000:]
        return out
    m = json.loads(res_path.read_text())
    n = world_size
    hw_id = hardware or hardware_for("cuda:0" if device == "cuda" else "cpu")["hardware"]
    hw = load_hardware(hw_id)
    link = hw.intra_node_bandwidth_bytes_per_s
    fit = fit_ring([(a["bytes"], a["median_s"]) for a in m["allreduce"]], n)
    grad = next(a for a in m["allreduce"] if a["bytes"] == m["grad_bytes"])  # in the gradients' own dtype
    pred_catalog = ring_allreduce_s(m["grad_bytes"], n, link, INTRA_NODE_LATENCY_S)
    predicted = {"hardware": hw_id, "link_bandwidth_bytes_per_s": link, "latency_s": INTRA_NODE_LATENCY_S,
                 "allreduce_s": pred_catalog, "ring_bytes_per_device": 2 * (n - 1) / n * m["grad_bytes"]}
    rows = [{"quantity": "all-reduce of the gradients (catalog link)", "unit": "s", "predicted": pred_catalog,
             "measured": grad["median_s"], "error_pct": error_pct(pred_catalog, grad["median_s"]),
             "note": f"{hw_id} intra-node link {link / 1e9:.0f} GB/s, {INTRA_NODE_LATENCY_S * 1e6:.0f} us per step"}]
    if fit.get("bandwidth_bytes_per_s"):
        pred_fit = ring_allreduce_s(m["grad_bytes"], n, fit["bandwidth_bytes_per_s"], fit["latency_s"])
        predicted["allreduce_fitted_s"] = pred_fit
        rows.append({"quantity": "all-reduce of the gradients (ring model, fitted link)", "unit": "s",
                     "predicted": pred_fit, "measured": grad["median_s"], "error_pct": error_pct(pred_fit, grad["median_s"]),
                     "note": f"fitted over {len(m['allreduce'])} buffer sizes: {fit['bandwidth_bytes_per_s'] / 1e9:.2f} "
                             f"GB/s, {fit['latency_s'] * 1e6:.1f} us per step"})
    comm = m["step_s"] - m["step_no_sync_s"]
    rows.append({"quantity": "step time minus no-sync step (exposed communication)", "unit": "s",
                 "predicted": pred_catalog, "measured": comm, "error_pct": error_pct(pred_catalog, comm),
                 "note": "DDP overlaps bucketed all-reduces with backward; the model predicts no overlap"})
    m["exposed_comm_s"] = comm
    m["ring_fit"] = fit
    m["params_in_sync"] = m["params_max_diff_across_ranks"] == 0.0
    out.update({"measured": m, "predicted": predicted, "comparison": rows})
    return clean_json(out)


if __name__ == "__main__":  # pragma: no cover - the child process
    _child(sys.argv[1], int(sys.argv[2]))
