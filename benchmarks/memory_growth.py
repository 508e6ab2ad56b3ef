"""Memory of a long-lived process: RSS growth over 20,000 distinct estimates in one interpreter (issue 17).

10,000 ResNet-50 training shapes (batch x image size) and 10,000 Llama-3-8B inference shapes (batch x prompt x
generate), each through the public API (``costmodel.estimate``, per-layer rows available as by default), as a
dashboard server that every user session shares would run them. Prints RSS after a warm-up (imports, catalogs, the
first estimate of each model), at every 2,000 estimates and at the end, the growth, the time per estimate and what
the module caches hold at the end (``costmodel.cache_stats``, where this version has it).

    .venv/bin/python benchmarks/memory_growth.py [--n 10000] [--out benchmarks/results/memory_growth.md]

Target: growth < 150 MB (10^6 bytes) over the 20,000 estimates."""

from __future__ import annotations

import argparse
import gc
import itertools
import os
import sys
import time
from pathlib import Path

from bench_report import emit, machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_MB = 150.0


def rss_bytes() -> int:
    """Resident set size of this process now (Linux /proc; ru_maxrss, the peak, elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def shapes(n: int) -> list[tuple[str, dict]]:
    """n distinct ResNet-50 training workloads, then n distinct Llama-3-8B inference workloads."""
    resnet = [("resnet-50", dict(task="train", batch=b, image_size=s, precision="amp-bf16", optimizer="sgd-momentum"))
              for s, b in itertools.product((224, 192, 160, 256, 128), range(1, 2001))][:n]
    llama = [("llama-3-8b", dict(task="infer", batch=b, prompt=p, generate=g, precision="bf16"))
             for g, p, b in itertools.product((128, 256), range(64, 64 + 50 * 128, 128), range(1, 101))][:n]
    assert len(resnet) == n and len(llama) == n
    return resnet + llama


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000, help="estimates per model (default 10,000)")
    ap.add_argument("--out", help="also write the table to this Markdown file")
    a = ap.parse_args()
    import costmodel

    work = shapes(a.n)
    for model, kw in (work[0], work[a.n]):  # warm-up: imports, catalogs, presets, the first ledger of each
        costmodel.estimate(model, "h100-sxm-80gb", **kw)
    gc.collect()
    base = rss_bytes()
    lines = ["| estimates | model | RSS MB | growth MB | us per estimate (last 2,000) |", "|---|---|---|---|---|"]
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    for i, (model, kw) in enumerate(work, 1):
        est = costmodel.estimate(model, "h100-sxm-80gb", **kw)
        assert est.time_s.per_unit_s > 0
        if i % 2000 == 0:
            now = rss_bytes()
            dt = (time.perf_counter() - t0) / 2000
            lines.append(f"| {i:,} | {model} | {now / 1e6:.1f} | {(now - base) / 1e6:+.1f} | {dt * 1e6:.0f} |")
            print(lines[-1], flush=True)
            t0 = time.perf_counter()
    total_s = time.perf_counter() - t_all
    gc.collect()
    end = rss_bytes()
    growth = (end - base) / 1e6
    stats = getattr(costmodel, "cache_stats", None)
    head = [f"# RSS growth over {2 * a.n:,} distinct estimates in one process (benchmarks/memory_growth.py)", "",
            f"{machine_line()} at the end. {a.n:,} ResNet-50 "
            f"training shapes (batch 1-2,000 x image 224/192/160/256/128, amp-bf16), then {a.n:,} Llama-3-8B inference "
            "shapes (batch 1-100 x prompt 64-6,336 x generate 128/256, bf16), on h100-sxm-80gb through "
            "`costmodel.estimate`. MB = 10^6 bytes.", "",
            f"- RSS after warm-up: {base / 1e6:.1f} MB; at the end (after gc): {end / 1e6:.1f} MB",
            f"- **growth: {growth:+.1f} MB** (target < {TARGET_MB:.0f} MB: "
            f"{'met' if growth < TARGET_MB else 'NOT met'})",
            f"- {total_s:.1f} s in all, {total_s / (2 * a.n) * 1e6:.0f} us per estimate", ""]
    if stats is not None:
        head += ["Module caches at the end (`costmodel.cache_stats()`):", "",
                 "| cache | entries | approx. bytes | byte bound |", "|---|---|---|---|"]
        for name, s in stats().items():
            head.append(f"| {name} | {s['entries']:,} | {s['bytes'] / 1e6:.1f} MB | {s['max_bytes'] / 1e6:.0f} MB |")
        head.append("")
    emit(head + lines, a.out)


if __name__ == "__main__":
    main()
