"""Fill ``derived`` in benchmarks/published_runs.json from each run's published numbers.

Every run names a derivation method (``derived.method``); this script computes
``derived.tokens_per_s_per_gpu`` (the throughput predictions are compared against) and writes
the arithmetic it used into ``derived.derivation``. It rewrites the file deterministically
(same input -> byte-identical output), so ``git diff`` after a rerun shows only real changes.

Methods
-------
published_tokens_per_s_per_gpu
    The source prints tokens/s/GPU: taken as is.
tokens_per_s_over_gpus
    The source prints whole-job tokens/s: divided by the GPU count (llm-foundry; its own
    T/s/GPU column is the same number truncated to an integer).
samples_per_s_times_seq
    samples/s x sequence length / GPUs (BLOOM log line).
samples_per_step_time
    global batch x sequence length / step time / GPUs (Korthikanti et al. 2022 Table 5).
megatron2021_tflops
    As megatron2021_aggregate, from the per-GPU TFLOP/s (Narayanan et al. Table 2 prints no aggregate).
megatron2021_aggregate
    Narayanan et al. 2021 count F = 96 B s l h^2 (1 + s/6h + V/16lh) FLOPs per iteration
    (forward + backward + one recompute forward; logits counted fwd+bwd only), so per token
    F/(B s) = 96 l h^2 (1 + s/6h + V/16lh). tokens/s/GPU = aggregate PFLOP/s x 1e15 / GPUs / that.
    The aggregate column has 4 significant digits; the per-GPU TFLOP/s column only 3.
megatron2024_tflops
    Megatron-LM num_floating_point_operations for MHA + 4h non-gated MLP + untied logits:
    72 B s l h^2 (1 + s/6h + V/12lh) per iteration (no recompute), so
    tokens/s/GPU = TFLOP/s x 1e12 / (72 l h^2 (1 + s/6h + V/12lh)).

Usage: ``python benchmarks/published_runs_derive.py [--check]`` (``--check`` exits 1 when the file
is not what the script would write).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

PATH = Path(__file__).resolve().parent / "published_runs.json"


def shape(run: dict) -> tuple[int, int, int]:
    """(layers, hidden, vocab) of the run's config (gpt2 or llama field names)."""
    cfg = run["model"]["config"] or {}
    layers = cfg.get("n_layer", cfg.get("num_hidden_layers"))
    hidden = cfg.get("n_embd", cfg.get("hidden_size"))
    return int(layers), int(hidden), int(cfg["vocab_size"])


def megatron2021_flops_per_token(layers: int, hidden: int, vocab: int, seq: int) -> float:
    return 96.0 * layers * hidden ** 2 * (1 + seq / (6.0 * hidden) + vocab / (16.0 * layers * hidden))


def megatron2024_flops_per_token(layers: int, hidden: int, vocab: int, seq: int) -> float:
    return 72.0 * layers * hidden ** 2 * (1 + seq / (6.0 * hidden) + vocab / (12.0 * layers * hidden))


def derive(run: dict) -> tuple[float, str]:
    method = run["derived"]["method"]
    pub = run["published"]
    gpus = run["hardware"]["num_gpus"]
    seq = run["seq"]
    if method == "published_tokens_per_s_per_gpu":
        v = float(pub["tokens_per_s_per_gpu"])
        return v, f"published tokens/s/GPU = {pub['tokens_per_s_per_gpu']}"
    if method == "tokens_per_s_over_gpus":
        v = pub["tokens_per_s"] / gpus
        return v, f"published tokens/s {pub['tokens_per_s']} / {gpus} GPUs"
    if method == "samples_per_s_times_seq":
        v = pub["samples_per_s"] * seq / gpus
        return v, f"samples/s {pub['samples_per_s']} x seq {seq} / {gpus} GPUs"
    if method == "samples_per_step_time":
        v = run["global_batch"] * seq / pub["step_time_s"] / gpus
        return v, f"global batch {run['global_batch']} x seq {seq} / step {pub['step_time_s']} s / {gpus} GPUs"
    if method == "megatron2021_tflops":
        L, h, V = shape(run)
        f = megatron2021_flops_per_token(L, h, V, seq)
        v = pub["hardware_tflops_per_gpu"] * 1e12 / f
        return v, (f"{pub['hardware_tflops_per_gpu']} TFLOP/s x 1e12 / "
                   f"[96*l*h^2*(1 + s/(6h) + V/(16*l*h)) with l={L}, h={h}, s={seq}, V={V} = {f:.6e} FLOP/token]")
    if method == "megatron2021_aggregate":
        L, h, V = shape(run)
        f = megatron2021_flops_per_token(L, h, V, seq)
        v = pub["aggregate_pflops"] * 1e15 / gpus / f
        return v, (f"aggregate {pub['aggregate_pflops']} PFLOP/s x 1e15 / {gpus} GPUs / "
                   f"[96*l*h^2*(1 + s/(6h) + V/(16*l*h)) with l={L}, h={h}, s={seq}, V={V} = {f:.6e} FLOP/token]")
    if method == "megatron2024_tflops":
        L, h, V = shape(run)
        f = megatron2024_flops_per_token(L, h, V, seq)
        v = pub["model_tflops_per_gpu"] * 1e12 / f
        return v, (f"{pub['model_tflops_per_gpu']} TFLOP/s x 1e12 / "
                   f"[72*l*h^2*(1 + s/(6h) + V/(12*l*h)) with l={L}, h={h}, s={seq}, V={V} = {f:.6e} FLOP/token]")
    raise ValueError(f"{run['id']}: unknown derivation method {method!r}")


def fill(data: dict) -> dict:
    for run in data["runs"]:
        v, how = derive(run)
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{run['id']}: derived throughput {v!r}")
        run["derived"]["tokens_per_s_per_gpu"] = round(v, 3)
        run["derived"]["derivation"] = how
    return data


def render(data: dict) -> str:
    return json.dumps(data, indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--check", action="store_true", help="do not write; exit 1 if the file would change")
    args = ap.parse_args()
    old = PATH.read_text(encoding="utf-8")
    new = render(fill(json.loads(old)))
    if args.check:
        if new != old:
            print("published_runs.json is not up to date: run benchmarks/published_runs_derive.py", file=sys.stderr)
            return 1
        return 0
    PATH.write_text(new, encoding="utf-8")
    print(f"derived throughput for {len(json.loads(new)['runs'])} runs -> {PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
