"""Profile GPT-2, a Llama-style GQA model (Llama-3.2-1B), BERT, ResNet-50, ViT-B/16 and an LSTM for training
and inference on this machine with ``costmodel.profiler``, print predicted vs measured, and write every run
(with the environment: CPU/GPU, driver, torch, CUDA) to ``benchmarks/results/``.

    .venv/bin/python benchmarks/profile_suite.py --device cpu --small      # minutes on a laptop CPU
    .venv/bin/python benchmarks/profile_suite.py --device cuda             # real shapes on one GPU

``--small`` shrinks every model (fewer/narrower layers, small images and sequences) so a CPU finishes in a
few minutes; without it the presets run at the shapes of benchmarks/results/h100_reference_sample.json.
``--calibrate`` fits the time model's efficiency to these runs and prints the error before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from costmodel.profiler import ProfileRequest, run_profile  # noqa: E402
from costmodel.profiler.compare import format_table  # noqa: E402

# (name, preset, small-config overrides, {task: (real workload, small workload)})
SUITE = [
    ("gpt2", "gpt2", {"n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 2048},
     {"train": (dict(batch=8, seq=1024, precision="amp-bf16"), dict(batch=2, seq=64, precision="fp32")),
      "infer": (dict(batch=1, prompt=512, generate=32, precision="bf16"), dict(batch=2, prompt=32, generate=8, precision="fp32"))}),
    ("llama-gqa", "llama-3.2-1b", {"num_hidden_layers": 2, "hidden_size": 256, "intermediate_size": 512,
                                   "num_attention_heads": 8, "num_key_value_heads": 2, "head_dim": 32, "vocab_size": 2048},
     {"train": (dict(batch=1, seq=2048, precision="amp-bf16"), dict(batch=2, seq=64, precision="fp32")),
      "infer": (dict(batch=1, prompt=512, generate=32, precision="bf16"), dict(batch=2, prompt=32, generate=8, precision="fp32"))}),
    ("bert", "bert-base", {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4, "intermediate_size": 512,
                           "vocab_size": 2048},
     {"train": (dict(batch=16, seq=128, precision="amp-bf16"), dict(batch=2, seq=64, precision="fp32")),
      "infer": (dict(batch=16, seq=128, precision="bf16"), dict(batch=2, seq=64, precision="fp32"))}),
    ("resnet-50", "resnet-50", {"depths": [1, 1, 1, 1], "num_labels": 10},
     {"train": (dict(batch=64, image_size=224, precision="amp-bf16", optimizer="sgd-momentum"),
                dict(batch=2, image_size=64, precision="fp32", optimizer="sgd-momentum")),
      "infer": (dict(batch=64, image_size=224, precision="bf16"), dict(batch=2, image_size=64, precision="fp32"))}),
    ("vit-b-16", "vit-b-16", {"num_hidden_layers": 2, "hidden_size": 128, "num_attention_heads": 4,
                              "intermediate_size": 512, "image_size": 64, "num_labels": 10},
     {"train": (dict(batch=32, image_size=224, precision="amp-bf16"), dict(batch=2, image_size=64, precision="fp32")),
      "infer": (dict(batch=32, image_size=224, precision="bf16"), dict(batch=2, image_size=64, precision="fp32"))}),
    ("lstm", "lstm-2x1024", {"hidden": 256, "embed_dim": 256, "vocab_size": 2000},
     {"train": (dict(batch=64, seq=256, precision="fp32"), dict(batch=2, seq=64, precision="fp32")),
      "infer": (dict(batch=64, prompt=256, generate=32, precision="fp32"), dict(batch=2, prompt=32, generate=8, precision="fp32"))}),
]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--small", action="store_true", help="shrunken models and shapes (for CPUs)")
    ap.add_argument("--steps", type=int, default=None, help="measured steps (default 3 small, 10 real)")
    ap.add_argument("--warmup", type=int, default=None, help="warm-up steps (default 1 small, 3 real)")
    ap.add_argument("--timeout", type=float, default=600.0, help="per-run limit, seconds")
    ap.add_argument("--only", default="", help="comma-separated suite names (gpt2,llama-gqa,bert,resnet-50,vit-b-16,lstm)")
    ap.add_argument("--tasks", default="train,infer")
    ap.add_argument("--no-fvcore", action="store_true")
    ap.add_argument("--calibrate", action="store_true", help="fit the time efficiency to these runs")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    a = ap.parse_args(argv)
    small = a.small
    steps = a.steps or (3 if small else 10)
    warmup = a.warmup if a.warmup is not None else (1 if small else 3)
    only = {x for x in a.only.split(",") if x}
    tasks = [t for t in a.tasks.split(",") if t]
    runs, summary = [], []
    t_start = time.time()
    for name, preset, overrides, work in SUITE:
        if only and name not in only:
            continue
        for task in tasks:
            real, tiny = work[task]
            wl = {"task": task, **(tiny if small else real)}
            req = ProfileRequest(preset, wl, device=a.device, steps=steps, warmup=warmup, timeout_s=a.timeout,
                                 config_overrides=overrides if small else {}, fvcore=not a.no_fvcore)
            print(f"\n### {name} {task} {wl}", flush=True)
            res = run_profile(req)
            print(f"{res.status}: {res.message} ({res.elapsed_s:.1f} s)")
            if res.comparison:
                print(format_table(res.comparison))
            for n in res.notes:
                print(f"note: {n}")
            if not res.ok and res.stderr_tail:
                print(res.stderr_tail[-800:])
            rec = res.to_record()
            rec["suite_name"] = name
            rec["measured"].pop("fvcore_table", None)
            runs.append(rec)
            for r in res.comparison:
                if r["error_pct"] is not None:
                    summary.append((name, task, r["quantity"], r["error_pct"]))
    env = next((r["environment"] for r in runs if r["status"] == "ok"), {})
    slug = (env.get("gpu") or "cpu").lower().replace(" ", "-").replace("/", "-")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"profile_{slug}_{'small_' if small else ''}{time.strftime('%Y%m%d-%H%M%S')}.json"
    doc = {"about": ("costmodel.profiler suite (benchmarks/profile_suite.py): predicted vs measured per run; "
                     "random weights; CPU peak = live tensors + torch.profiler allocation events, GPU peak = "
                     "torch.cuda.max_memory_allocated; FLOPs by torch FlopCounterMode (2 per multiply-add)"),
           "small": small, "device": a.device, "environment": env, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
           "elapsed_s": round(time.time() - t_start, 1), "runs": runs}
    if a.calibrate and any(r["status"] == "ok" for r in runs):
        from costmodel.profiler.calibrate import fit_efficiency

        cal = fit_efficiency(runs, device=runs[0]["device"])
        doc["calibration"] = cal
        print(f"\n## calibration on {cal['n_points']} times: RMS log error {cal['rmse_log_before']:.3f} -> "
              f"{cal['rmse_log_after']:.3f}; fitted {cal['fitted_fields']}")
        for r in cal["rows"]:
            print(f"  {r['model'][:40]:<40s} {r['quantity']:<17s} measured {r['measured_s'] * 1e3:9.3f} ms  "
                  f"before {r['error_before_pct']:+8.1f}%  after {r['error_after_pct']:+8.1f}%")
    path.write_text(json.dumps(doc, indent=1))
    print(f"\n## error per quantity (predicted vs measured), {len(runs)} runs\n")
    by_q: dict[str, list[float]] = {}
    for _n, _t, q, e in summary:
        by_q.setdefault(q, []).append(e)
    print("| quantity | runs | median error | min | max |\n|---|---|---|---|---|")
    for q, errs in by_q.items():
        s = sorted(errs)
        print(f"| {q} | {len(s)} | {s[len(s) // 2]:+.1f}% | {s[0]:+.1f}% | {s[-1]:+.1f}% |")
    print(f"\nwrote {path}")
    return 0 if all(r["status"] == "ok" for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
