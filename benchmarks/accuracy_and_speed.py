"""Predicted vs reference tables (params, FLOPs, memory) and the estimator's speed.

Run:  .venv/bin/python benchmarks/accuracy_and_speed.py [--skip-flops]

References: published parameter counts stored with each preset (model cards, papers),
sum(p.numel()) and FlopCounterMode of the transformers implementations on the meta device,
and the H100 measurements in benchmarks/results/h100_reference_sample.json.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path


os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.estimator import estimate  # noqa: E402
from costmodel.ledger import make_ctx  # noqa: E402
from costmodel.models import list_presets, load_model  # noqa: E402
from costmodel.workload import Workload  # noqa: E402

H100 = load_hardware("h100-sxm-80gb")  # memory_bytes = the NVML total of the measured H100


def table(title, header, rows):
    print(f"\n## {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")


def params_table():
    rows = []
    for p in list_presets():
        spec = load_model(p.id)
        ctx = make_ctx(spec, Workload(batch=1, seq=8, prompt=8, generate=1, precision="fp32"), "train")
        ours = sum(r.params * r.count for r in spec.ledger(ctx))
        ref = p.published_params
        rows.append((p.id, p.family, f"{ours:,}", f"{ref:,}" if ref else "-", (ours - ref) if ref else "-"))
    table("Parameters vs published", ["preset", "family", "costmodel", "published", "difference"], rows)


def flops_table():
    import torch
    import transformers
    from torch.utils.flop_counter import FlopCounterMode

    rows = []
    for p in list_presets():
        cfg = p.config
        if cfg.get("model_type") not in ("gpt2", "llama", "mistral", "bert", "t5", "vit", "resnet"):
            continue
        hf_cfg = transformers.AutoConfig.for_model(**cfg)
        hf_cfg._attn_implementation = "eager"
        cls = getattr(transformers, cfg["architectures"][0]) if cfg.get("architectures") else None
        if cls is None:
            continue
        with torch.device("meta"):
            model = cls(hf_cfg)
        b, s = 2, 128
        spec = load_model(p.id)
        if spec.modality != "text" or cfg["model_type"] == "t5":
            continue
        ids = torch.zeros(b, s, dtype=torch.long, device="meta")
        kwargs = {} if cfg["model_type"] == "bert" else {"attention_mask": torch.ones(b, s, dtype=torch.long, device="meta")}
        with FlopCounterMode(display=False) as fc:
            model(input_ids=ids, **kwargs)
        ref = fc.get_total_flops()
        w = Workload(batch=b, seq=s, precision="fp32", attention="eager")
        ours = sum(r.forward_flops * r.count for r in spec.ledger(make_ctx(spec, w, "train")))
        rows.append((p.id, f"{ours:.6e}", f"{ref:.6e}", f"{100 * (ours - ref) / ref:+.3f}%"))
    table("Forward FLOPs (b=2, s=128, eager attention) vs torch FlopCounterMode", ["preset", "costmodel", "FlopCounterMode", "error"], rows)


MEASURED = [
    ("gpt2s_b8_s1024_fp32", "gpt2", dict(batch=8, seq=1024, precision="fp32"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b8_s1024_amp", "gpt2", dict(batch=8, seq=1024, precision="amp-bf16"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b16_s1024_amp", "gpt2", dict(batch=16, seq=1024, precision="amp-bf16"), "peak", "peak_steady_step_bytes"),
    ("gpt2s_b8_s1024_fp32", "gpt2", dict(batch=8, seq=1024, precision="fp32"), "device_total", "nvml_used_bytes"),
    ("gpt2s_b1_p512", "gpt2", dict(task="infer", batch=1, prompt=512, generate=32, precision="bf16"), "peak", "peak_prefill_bytes"),
    ("llama2_7b_b1_p512", "llama-2-7b", dict(task="infer", batch=1, prompt=512, generate=32, precision="bf16"), "peak", "peak_prefill_bytes"),
    ("llama2_7b_b8_p2048", "llama-2-7b", dict(task="infer", batch=8, prompt=2048, generate=32, precision="bf16"), "peak", "peak_prefill_bytes"),
    ("llama2_7b_b8_p2048", "llama-2-7b", dict(task="infer", batch=8, prompt=2048, generate=0, precision="bf16"), "kv_cache", "kv_cache_bytes_after_prefill"),
    ("resnet50_bs64_amp_bf16", "resnet-50", dict(batch=64, image_size=224, precision="amp-bf16", optimizer="sgd-momentum"), "peak", "peak_steady_step_bytes"),
    ("lstm_2x1024_bs64_seq256_fp32", "lstm-2x1024", dict(batch=64, seq=256, precision="fp32"), "peak", "peak_steady_step_bytes"),
]


def memory_table():
    ref = {r["name"]: r for r in json.loads((ROOT / "benchmarks/results/h100_reference_sample.json").read_text())["results"]}
    rows = []
    for run, preset, wl, key, ref_key in MEASURED:
        try:
            est = estimate(load_model(preset), Workload(**wl), H100)
        except Exception as exc:  # a family not available yet: show it, do not hide it
            rows.append((run, key, "-", f"{ref[run][ref_key] / 2**30:.3f}", f"error: {exc}"))
            continue
        got = getattr(est.memory_bytes, key)
        want = ref[run][ref_key]
        rows.append((run, key, f"{got / 2**30:.3f}", f"{want / 2**30:.3f}", f"{100 * (got - want) / want:+.1f}%"))
    table("Memory (GiB) vs H100 measurements (peak = torch max_memory_allocated; device_total = NVML used)",
          ["run", "quantity", "costmodel", "measured", "error"], rows)


def speed_table():
    spec = load_model("llama-3-8b")
    w = Workload(batch=4, seq=2048)
    estimate(spec, w, H100)
    times = []
    for i in range(500):
        w_i = Workload(batch=1 + i % 64, seq=2048)  # a fresh shape each time: no memoized ledger
        t = time.perf_counter()
        estimate(spec, w_i, H100)
        times.append(time.perf_counter() - t)
    grid = list(itertools.product(range(1, 41), (256, 512, 1024, 2048, 4096, 8192), ("fp32", "amp-bf16", "bf16"),
                                  ("adamw", "sgd", "adafactor", "adamw-8bit"), (False, True), (0, 16)))
    random.Random(0).shuffle(grid)
    workloads = [Workload(batch=b, seq=s, precision=p, optimizer=o, grad_checkpointing=c, lora_rank=r)
                 for b, s, p, o, c, r in grid[:10000]]
    t = time.perf_counter()
    for wl in workloads:
        estimate(spec, wl, H100, with_layers=False)
    sweep = time.perf_counter() - t
    table("Estimator speed (this machine)", ["what", "value", "target"], [
        ("one estimate, median (Llama-3-8B train, new shape each call)", f"{statistics.median(times) * 1e3:.3f} ms", "< 1 ms"),
        (f"sweep of {len(workloads):,} distinct configurations", f"{sweep:.3f} s", "< 1 s"),
    ])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skip-flops", action="store_true", help="skip the FlopCounterMode table (imports torch)")
    a = ap.parse_args()
    params_table()
    if not a.skip_flops:
        flops_table()
    memory_table()
    speed_table()


if __name__ == "__main__":
    main()
