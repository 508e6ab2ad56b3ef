"""The layout search at cluster scale (issue 17): ``search_layouts`` up to 1,048,576 devices.

For llama-2-70b and mixtral-8x7b on H100s (2T tokens, seq 4,096, the default global batch: 8 x the largest
count), at ``max_devices`` 4,096, 100,000 and 1,048,576 with the default device counts (every 2^a 3^b 5^c up
to the maximum, and the maximum: ``costmodel.plans.default_device_counts``): the counts tried, the candidates
the divisibility rules give, those left after the global-batch pruning, the layouts that fit, the time and the
fastest layout. Target: < 10 s each at 1,048,576.

    .venv/bin/python benchmarks/search_scale.py [--out benchmarks/results/search_scale.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench_report import machine_line

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGET_S = 10.0
CASES = [(m, n) for m in ("llama-2-70b", "mixtral-8x7b") for n in (4096, 100_000, 1 << 20)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", help="also write the table to this Markdown file")
    a = ap.parse_args()
    from costmodel.models import load_model
    from costmodel.plans import CHECKPOINTING_SEARCHED, _candidates, default_device_counts, search_layouts

    lines = ["# Layout search at scale (benchmarks/search_scale.py)", "",
             f"{machine_line()}. H100-SXM-80GB, 2T tokens, seq 4,096, "
             f"default global batch (8 x max devices), default device counts. Target < {TARGET_S:.0f} s at 1,048,576.",
             "", "| model | max devices | counts | candidates | split the batch | fit (ranked) | time | fastest |",
             "|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    search_layouts("llama-2-7b", "h100-sxm-80gb", tokens=1e9, max_devices=8)  # warm-up: imports, catalogs
    for model, n in CASES:
        spec = load_model(model)
        counts = default_device_counts(n)
        args = (spec, counts, (1, 2, 4, 8), (0, 1, 2, 3), CHECKPOINTING_SEARCHED)
        every = sum(1 for _ in _candidates(*args))
        split = sum(1 for _ in _candidates(*args, global_batch=8 * n))
        t = time.perf_counter()
        res = search_layouts(model, "h100-sxm-80gb", tokens=2e12, workload={"seq": 4096}, max_devices=n)
        dt = time.perf_counter() - t
        best = res[0].layout if res else None
        what = (f"dp {best.dp} tp {best.tp} pp {best.pp} ep {best.ep} zero {best.zero} mb {best.micro_batch}"
                f"{ {False: '', True: ' ckpt', 'selective': ' sel-ckpt'}[best.grad_checkpointing]}, "
                f"{res[0].wall_clock_s / 86400:.2f} days") if best else "-"
        lines.append(f"| {model} | {n:,} | {len(counts):,} | {every:,} | {split:,} | {len(res):,} | {dt:.2f} s "
                     f"| {what} |")
        print(lines[-1], flush=True)
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
