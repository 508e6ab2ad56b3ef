"""Published training runs reproduced, and the layout search's speed.

Run:  .venv/bin/python benchmarks/plans_benchmark.py

1. GPU-hours of published trainings from their token counts and hardware, two ways:
   - "stated MFU": costmodel's training FLOPs (forward + backward per token from the per-layer
     ledger, attention included; + recomputation where the run used it) / (MFU x peak) / 3600,
     with the utilisation each source states (or an assumption, marked as such);
   - "layout model": costmodel.plans.plan_training with the run's parallel layout (where published)
     or the fastest layout search_layouts finds, default efficiency, no calibration.
2. search_layouts over >= 10,000 candidate layouts, timed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.estimator import estimate  # noqa: E402
from costmodel.models import load_model  # noqa: E402
from costmodel.parallel import Layout  # noqa: E402
from costmodel.plans import candidate_layouts, plan_training, search_layouts  # noqa: E402
from costmodel.workload import Workload  # noqa: E402

# BLOOM-176B has no HF importer here (model_type "bloom"): described as a gpt2-type stack of the
# same shape (70 layers, 14336 wide, 112 heads, 250,880 vocab). BLOOM uses ALiBi instead of learned
# positions (+29M params here, 0.02%) and has an embedding LayerNorm (-29K): negligible for FLOPs.
BLOOM = {"model_type": "gpt2", "n_layer": 70, "n_embd": 14336, "n_head": 112, "vocab_size": 250880,
         "n_positions": 2048, "name": "bloom-176b (gpt2-type stand-in)"}

RUNS = [
    # name, model, hardware, tokens, seq, published GPU-hours, source, MFU (value, source), recompute?, layout
    ("Llama 2 7B", "llama-2-7b", "a100-sxm-80gb", 2.0e12, 4096, 184_320,
     "Touvron et al. 2023, Llama 2 paper, Table 2", (0.40, "assumed (not published)"), False, None),
    ("Llama 2 13B", "llama-2-13b", "a100-sxm-80gb", 2.0e12, 4096, 368_640,
     "Touvron et al. 2023, Table 2", (0.40, "assumed (not published)"), False, None),
    ("Llama 2 70B", "llama-2-70b", "a100-sxm-80gb", 2.0e12, 4096, 1_720_320,
     "Touvron et al. 2023, Table 2", (0.40, "assumed (not published)"), False, None),
    ("Llama 3 8B", "llama-3-8b", "h100-sxm-80gb", 15.0e12, 8192, 1_300_000,
     "Meta Llama 3 model card (2024): 1.3M H100-80GB hours, 15T+ tokens",
     (0.40, "Llama 3 paper (Dubey et al. 2024, Table 4): 38-43% BF16 MFU"), False, None),
    ("Llama 3 70B", "llama-3-70b", "h100-sxm-80gb", 15.0e12, 8192, 6_400_000,
     "Meta Llama 3 model card (2024): 6.4M H100-80GB hours",
     (0.40, "Llama 3 paper (Dubey et al. 2024, Table 4): 38-43% BF16 MFU"), False, None),
    ("BLOOM 176B", BLOOM, "a100-sxm-80gb", 366e9, 2048, 1_082_990,
     "Luccioni et al. 2022, 'Estimating the Carbon Footprint of BLOOM', Table 1; 366B tokens (BigScience model card)",
     (150e12 / 312e12, "BigScience: ~150 TFLOP/s per A100 incl. recomputation (48% of 312)"), True,
     Layout(dp=8, tp=4, pp=12, zero=1, micro_batch=2, grad_checkpointing=True)),
]


def per_token_flops(model, hw, seq, recompute):
    est = estimate(load_model(model), Workload(batch=1, seq=seq, precision="bf16", grad_checkpointing=recompute),
                   hw, with_layers=False)
    f = est.flops
    return (f.forward + f.backward + (f.recompute if recompute else 0.0)) / seq, est.params.total


def published_table():
    print("## Published training runs: GPU-hours\n")
    print("| run | params | tokens | hardware | published GPU-h | stated MFU | predicted (MFU) | error | "
          "layout model | predicted | error | source |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, model, hw_id, tokens, seq, published, source, (mfu, mfu_src), recompute, layout in RUNS:
        hw = load_hardware(hw_id)
        fpt, params = per_token_flops(model, hw, seq, recompute)
        peak = hw.peak_flops("bf16")
        pred = fpt * tokens / (mfu * peak) / 3600
        if layout is None:
            best = search_layouts(model, hw, tokens=tokens, workload={"seq": seq, "precision": "bf16"},
                                  global_batch=4_000_000 // seq, device_counts=[512], micro_batches=(1, 2),
                                  usd_per_device_hour=1.0, limit=1)[0]
            lay, plan_h = best.layout, best.gpu_hours
            lay_txt = f"search: dp{lay.dp} tp{lay.tp} pp{lay.pp} zero{lay.zero} mb{lay.micro_batch}" \
                      f"{' ckpt' if lay.grad_checkpointing else ''}"
        else:
            plan = plan_training(model, hw, tokens=tokens, workload={"seq": seq, "precision": "bf16"}, layout=layout,
                                 global_batch=2048)
            plan_h = plan.gpu_hours
            lay_txt = f"published: dp{layout.dp} tp{layout.tp} pp{layout.pp} mb{layout.micro_batch} ckpt"
        print(f"| {name} | {params / 1e9:.1f}B | {tokens:.3g} | {hw_id} | {published:,} | {mfu:.0%} ({mfu_src}) | "
              f"{pred:,.0f} | {100 * (pred - published) / published:+.0f}% | {lay_txt} | {plan_h:,.0f} | "
              f"{100 * (plan_h - published) / published:+.0f}% | {source} |")


def search_speed():
    hw = load_hardware("h100-sxm-80gb")
    spec = load_model("llama-2-70b")
    kw = dict(device_counts=[2 ** i for i in range(0, 13)], micro_batches=(1, 2, 4, 8, 16, 32), zero_stages=(0, 1, 2, 3),
              checkpointing=(False, True))
    n = len(candidate_layouts(spec, 4096, **kw))
    t = time.perf_counter()
    res = search_layouts(spec, hw, tokens=2e12, workload={"seq": 4096}, global_batch=4096, max_devices=4096,
                         usd_per_device_hour=3.0, include_unfit=True, **kw)
    dt = time.perf_counter() - t
    feasible = sum(r.fits for r in res)
    print("\n## Layout search speed (this machine)\n")
    print("| model | candidates | evaluated | feasible | time | target |\n|---|---|---|---|---|---|")
    print(f"| llama-2-70b, up to 4,096 H100 | {n:,} | {len(res):,} | {feasible:,} | {dt:.2f} s | < 2 s |")
    best = next(r for r in res if r.fits)
    print(f"\nfastest feasible: {best.layout.to_dict()}, step {best.step_s:.2f} s, {best.wall_clock_s / 86400:.1f} days, "
          f"MFU {best.mfu:.1%}")


if __name__ == "__main__":
    published_table()
    search_speed()
