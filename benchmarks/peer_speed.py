"""costmodel beside its peers on the same workloads: time per estimate and forward FLOPs against FlopCounterMode.

    pip install --target /tmp/peers llm-analysis calflops accelerate fire termcolor --no-deps  # or a side venv
    PYTHONPATH=/tmp/peers python benchmarks/peer_speed.py --out benchmarks/results/peer_speed.md

Peers, each asked what it answers for a training step of batch x seq tokens:
- llm-analysis (``LLMAnalysis(model, gpu, dtype, ParallelismConfig(dp_size=8)).training(..., ds_zero=STAGE_3)``,
  model shape given as its ``ModelConfig``, A100-SXM-80GB, w16a16e16): the whole analysis call, and its
  ``get_num_flops_fwd_total``;
- calflops (``calculate_flops(model, input_shape=(b, s), include_backPropagation=False)``) on a transformers model
  built from the config (random weights, CPU; building it is timed apart: a user of calflops pays it too);
- accelerate's memory estimate (``calculate_maximum_sizes`` + ``estimate_training_usage`` on an empty model from
  ``init_empty_weights``; ``accelerate estimate-memory`` itself needs the Hub, which this machine cannot reach): memory
  only, no FLOPs;
- costmodel (``costmodel.estimate(config, hardware, task="train", ...)``) on the same config dict, warm (its ledger
  caches hold other shapes, as in a long-running server) and cold (a new shape each call).
DeepSpeed's flops profiler is not run: DeepSpeed does not install beside this CPU build of torch without compiling
its ops. The reference forward FLOPs: torch.utils.flop_counter.FlopCounterMode over one forward of the same
transformers model on the meta device (2 FLOPs per multiply-add, attention through SDPA).
Times: median of repeats after one warm-up call, this machine's CPU; nothing here runs in CI.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import costmodel  # noqa: E402
from bench_report import emit  # noqa: E402

CONFIGS = {
    "gpt2 (124M)": dict(model_type="gpt2", n_layer=12, n_embd=768, n_head=12, vocab_size=50257, n_positions=1024),
    "llama-2-7b": dict(model_type="llama", hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                       num_attention_heads=32, num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096),
    "llama-3-8b (GQA)": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                             num_attention_heads=32, num_key_value_heads=8, vocab_size=128256,
                             max_position_embeddings=8192, rope_theta=500000.0),
}
WORKLOADS = {"gpt2 (124M)": (8, 1024), "llama-2-7b": (1, 4096), "llama-3-8b (GQA)": (1, 8192)}


def timed(fn, repeats: int) -> tuple[float, object]:
    out = fn()  # warm-up (imports, first-call caches)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def hf_model(cfg: dict, device: str):
    import torch
    import transformers

    hf = transformers.AutoConfig.for_model(**cfg)
    with torch.device(device), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transformers.AutoModelForCausalLM.from_config(hf, attn_implementation="sdpa")


def reference_forward_flops(cfg: dict, b: int, s: int) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    model = hf_model(cfg, "meta")
    x = torch.zeros((b, s), dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        model(input_ids=x)
    return fc.get_total_flops()


def llm_analysis_row(cfg: dict, b: int, s: int, repeats: int):
    from llm_analysis.analysis import DSZeRO, LLMAnalysis
    from llm_analysis.config import ModelConfig, ParallelismConfig, get_dtype_config_by_name, get_gpu_config_by_name

    llama = cfg["model_type"] == "llama"
    mc = ModelConfig(name="x", num_layers=cfg.get("num_hidden_layers", cfg.get("n_layer")),
                     n_head=cfg.get("num_attention_heads", cfg.get("n_head")),
                     hidden_dim=cfg.get("hidden_size", cfg.get("n_embd")), vocab_size=cfg["vocab_size"],
                     max_seq_len=s, num_key_value_heads=cfg.get("num_key_value_heads"),
                     ffn_embed_dim=cfg.get("intermediate_size"), model_type=cfg["model_type"],
                     # both given: its check that ffn is a whole multiple of hidden (11008 / 4096 is not) is skipped
                     expansion_ratio=cfg["intermediate_size"] / cfg["hidden_size"] if llama else None)
    gpu, dtype = get_gpu_config_by_name("a100-sxm-80gb"), get_dtype_config_by_name("w16a16e16")

    def run():
        # 8 GPUs under ZeRO-3: a 7B model's full training state does not fit one 80 GB device (it refuses then)
        a = LLMAnalysis(mc, gpu, dtype, ParallelismConfig(dp_size=8), flops_efficiency=0.5, hbm_memory_efficiency=0.9)
        a.training(batch_size_per_gpu=b, seq_len=s, total_num_tokens=b * s * 1000, mlp_gated_linear_units=llama,
                   ds_zero=DSZeRO.STAGE_3)
        return a.get_num_flops_fwd_total(b, s)

    import logging

    logging.getLogger("llm_analysis").setLevel(logging.ERROR)  # its advice (ZeRO, Chinchilla) on every call
    for h in logging.getLogger().handlers:
        h.setLevel(logging.ERROR)
    with open(os.devnull, "w") as null:  # it prints its summary
        old = sys.stdout
        sys.stdout = null
        try:
            t, flops = timed(run, repeats)
        finally:
            sys.stdout = old
    return t, flops


def calflops_row(cfg: dict, b: int, s: int, repeats: int):
    import torch
    from calflops import calculate_flops

    # on the meta device: calflops counts from shapes, and a 7B model's forward on a CPU would take minutes
    t_build, model = timed(lambda: hf_model(cfg, "meta"), 1)
    x = torch.zeros((b, s), dtype=torch.long, device="meta")

    def run():
        flops, _, _ = calculate_flops(model=model, kwargs={"input_ids": x}, include_backPropagation=False,
                                      print_results=False, print_detailed=False, output_as_string=False)
        return flops

    t, flops = timed(run, repeats)
    return t, flops, t_build


def accelerate_row(cfg: dict, repeats: int):
    import transformers
    from accelerate import init_empty_weights
    from accelerate.commands.estimate import calculate_maximum_sizes, estimate_training_usage

    hf = transformers.AutoConfig.for_model(**cfg)

    def run():
        with init_empty_weights(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = transformers.AutoModelForCausalLM.from_config(hf)
        total, _ = calculate_maximum_sizes(model)
        return estimate_training_usage(total // 2, "float16")  # the bf16 model's bytes -> its training estimate

    return timed(run, repeats)


def costmodel_rows(cfg: dict, b: int, s: int, repeats: int):
    est = lambda bb: costmodel.estimate(dict(cfg), hardware="a100-sxm-80gb", task="train", batch=bb, seq=s,  # noqa
                                        precision="amp-bf16")
    t_warm, e = timed(lambda: est(b), repeats)
    sizes = iter(range(2, 10_000))
    t_cold, _ = timed(lambda: est(next(sizes)), repeats)  # a new batch each call: no cached ledger for it
    return t_warm, t_cold, e.flops.forward


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default=None)
    a = ap.parse_args(argv)
    import torch

    versions = {"costmodel": costmodel.__version__, "torch": torch.__version__}
    for name in ("llm_analysis", "calflops", "accelerate", "transformers"):
        try:
            from importlib.metadata import version
            versions[name] = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001 - a peer that is not installed is reported as such
            versions[name] = "not installed"
    lines = ["## costmodel beside its peers: time per estimate and forward FLOPs", "",
             f"`python benchmarks/peer_speed.py` on {platform.processor() or platform.machine()}, "
             f"{os.cpu_count()} CPUs, Python {platform.python_version()}; "
             + ", ".join(f"{k} {v}" for k, v in versions.items()) + ". "
             f"Median of {a.repeats} calls after a warm-up. Forward FLOPs of one step against FlopCounterMode "
             "(transformers model on the meta device, SDPA attention).", "",
             "| model, batch x seq | tool | time per estimate | forward FLOPs | vs FlopCounterMode | costmodel faster by |",
             "|---|---|---|---|---|---|"]
    for name, cfg in CONFIGS.items():
        b, s = WORKLOADS[name]
        ref = reference_forward_flops(cfg, b, s)
        t_warm, t_cold, f_cm = costmodel_rows(cfg, b, s, a.repeats)
        rows = [("costmodel (warm)", t_warm, f_cm), ("costmodel (new shape)", t_cold, f_cm)]
        for tool, call in (("llm-analysis", lambda: llm_analysis_row(cfg, b, s, a.repeats)),
                           ("calflops", lambda: calflops_row(cfg, b, s, max(1, a.repeats // 2))),
                           ("accelerate memory estimate", lambda: accelerate_row(cfg, a.repeats))):
            try:
                got = call()
            except ImportError:
                rows.append((tool, None, "not installed"))
                continue
            except Exception as exc:  # noqa: BLE001 - a peer that refuses the model is a result, reported
                rows.append((tool, None, f"refused: {str(exc).splitlines()[0][:90]}"))
                continue
            if tool == "calflops":
                rows.append(("calflops (meta model built)", got[0], got[1]))
                rows.append(("calflops (+ building the model)", got[0] + got[2], got[1]))
            elif tool == "llm-analysis":
                rows.append((tool, got[0], got[1]))
            else:
                rows.append((tool, got[0], None))
        for tool, t, f in rows:
            if t is None:
                lines.append(f"| {name}, {b} x {s} | {tool} | {f} | | | |")
                continue
            ratio = "" if tool.startswith("costmodel") else f"{t / t_cold:,.1f}x"
            err = f"{f / ref - 1:+.2%}" if f is not None else "(memory only)"
            flops = f"{f:.4g}" if f is not None else ""
            lines.append(f"| {name}, {b} x {s} | {tool} | {t * 1e3:,.2f} ms | {flops} | {err} | {ratio} |")
        lines.append(f"| {name}, {b} x {s} | FlopCounterMode (reference) | | {ref:.4g} | 0 | |")
    lines += ["", "\"costmodel faster by\": the peer's time / costmodel's time for a new shape (the slower of its two)."]
    emit(lines, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
