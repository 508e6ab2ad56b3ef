"""Cold estimates (issue 17, "vision estimates ~5x slower"): microseconds per estimate of 200 distinct training
shapes (batch 2..201, every ledger built) for ResNet-50 (224 px), ViT-B/16 and Llama-3-8B (seq 512), amp-bf16, on
h100-sxm-80gb, each model in its own fresh interpreter, this checkout and optionally another one (``--before``,
e.g. ``git archive <commit> | tar -x -C PATH``) interleaved run by run so both see the same machine load.

    .venv/bin/python benchmarks/cold_estimates.py [--runs 3] [--before PATH] [--out benchmarks/results/cold_estimates.md]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

from bench_report import emit, machine_line

ROOT = Path(__file__).resolve().parent.parent
MODELS = {"resnet-50": "image_size=224", "vit-b-16": "", "llama-3-8b": "seq=512"}
CHILD = """
import sys, time
sys.path.insert(0, {root!r})
import costmodel
model, extra = {model!r}, dict({kw})
costmodel.estimate(model, "h100-sxm-80gb", batch=1, **extra)
t = time.perf_counter()
for b in range(2, 202):
    costmodel.estimate(model, "h100-sxm-80gb", task="train", batch=b, precision="amp-bf16", **extra)
print((time.perf_counter() - t) / 200 * 1e6)
"""


def one(root: Path, model: str) -> float:
    code = CHILD.format(root=str(root), model=model, kw=MODELS[model])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--before", help="another checkout to time, interleaved")
    ap.add_argument("--out")
    a = ap.parse_args()
    trees = {"this checkout": ROOT} | ({"before": Path(a.before)} if a.before else {})
    got = {(t, m): [] for t in trees for m in MODELS}
    for _ in range(a.runs):
        for m in MODELS:
            for t, root in trees.items():
                got[(t, m)].append(one(root, m))
    lines = ["# Cold estimates (benchmarks/cold_estimates.py)", "",
             f"{machine_line()}. Microseconds per estimate of 200 "
             f"distinct training shapes (every ledger built), median of {a.runs} fresh interpreters.", "",
             "| model | " + " | ".join(trees) + " |", "|---|" + "---|" * len(trees)]
    for m in MODELS:
        lines.append(f"| {m} | " + " | ".join(f"{statistics.median(got[(t, m)]):,.0f}" for t in trees) + " |")
    emit(lines, a.out)


if __name__ == "__main__":
    main()
