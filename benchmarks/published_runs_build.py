"""Build the raw records of benchmarks/published_runs.json from the published tables.

One-off transcription tool, kept so the parsing is reviewable. The large markdown tables
(llm-foundry benchmarking README, Megatron-Bridge performance archive, NeMo performance
summary, torchtitan performance docs) are read from copies of the source files at the commits
named in each record (``--raw DIR``; they are not part of this repository: fetch the files at
those commits and save them under the names in RAW_FILES). Tables that were published as
images (Megatron-LM README) and single log lines (BLOOM) are transcribed below by hand, one
tuple per published row.

Usage::

    python benchmarks/published_runs_build.py --raw /path/to/raw   # writes the raw records
    python benchmarks/published_runs_derive.py                     # fills ``derived``

The records written here carry no ``derived`` values; published_runs_derive.py fills them.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "published_runs.json"

RAW_FILES = {
    "llm-foundry": "llm_foundry_benchmarking_README_4952183.md",
    "megatron-bridge": "megatron_bridge_performance-summary-archive_4ab94df.md",
    "nemo": "nemo_performance_summary_8e3d65d.md",
    "torchtitan": "torchtitan_docs_performance_d4c86e3.md",
    "torchtitan-asynctp": "torchtitan_asyncTP_llama3_h100_2025-06.md",
    "torchtitan-h200": "torchtitan_llama3-8b_h200_202506_trainy-whitefiber.md",
}

SCHEMA = {
    "id": "unique readable id of the run",
    "source_key": "short id of the source (paper / repository); leave-one-source-out groups share it",
    "source": "{title, url, table (table/figure/section read), date (publication date or commit+date read)}",
    "task": "pretrain | sft (supervised fine-tuning, all weights trained)",
    "model.name": "model name as the source writes it",
    "model.config": "Hugging Face-style config dict costmodel imports (model_type gpt2/llama/...), or null when model.preset is given",
    "model.preset": "costmodel preset id used instead of config (llama-2-7b, llama-3-8b, ...), or null",
    "model.params_published": "parameter count the source states (int), or null when it states none",
    "model.arch_notes": "what the config cannot express (ALiBi, untied embeddings, vocab padding...) and where it came from",
    "hardware.id": "costmodel catalog id (costmodel/assets/hardware/*.json) or a new id string explained in hardware.hardware_notes",
    "hardware.num_gpus": "accelerators in the job",
    "hardware.gpus_per_node": "accelerators per node if stated, else null",
    "hardware.interconnect": "network notes as stated, else null",
    "hardware.hardware_notes": "why a non-catalog id / deviations from the catalog part (memory, power cap), else null",
    "layout.dp": "data-parallel degree (includes FSDP/ZeRO sharding degree; expert parallelism lives inside it)",
    "layout.tp": "tensor-parallel degree",
    "layout.pp": "pipeline-parallel degree",
    "layout.cp": "context-parallel degree",
    "layout.ep": "expert-parallel degree (1 for dense models)",
    "layout.vp": "virtual pipeline (interleaved) stages per pipeline rank, null if not used / not stated",
    "layout.sharding": "none | zero1 | zero2 | zero3 | fsdp_full_shard | fsdp_hybrid, null if not stated",
    "layout.micro_batch": "samples per micro-batch per model replica, null if not stated",
    "layout.grad_checkpointing": "none | full | selective | partial:<what>, null if not stated",
    "global_batch": "samples (sequences) per optimizer step",
    "seq": "tokens per sample",
    "precision": "bf16 | fp16 | 16bit-mixed (fp16 or bf16, source does not say) | fp8 (per-tensor/current scaling) | fp8-rowwise | mxfp8 | nvfp4 (matmul precision)",
    "framework": "training software (llm-foundry, megatron-lm, nemo, megatron-bridge, torchtitan, megatron-deepspeed)",
    "attention_kernel": "attention implementation if stated, else null",
    "other_settings": "list of other stated settings (torch.compile, overlap flags, FSDP mixed-precision mode...)",
    "published": "numbers exactly as published; units in the key names (tokens_per_s_per_gpu, tokens_per_s, step_time_s, "
                 "model_tflops_per_gpu, hardware_tflops_per_gpu, aggregate_pflops, mfu (fraction), hfu (fraction), "
                 "samples_per_s); plus metric_definition (how the source defines its number)",
    "derived.tokens_per_s_per_gpu": "throughput per GPU computed from the published numbers by published_runs_derive.py",
    "derived.method": "name of the derivation in published_runs_derive.py",
    "derived.derivation": "the arithmetic used, with the numbers",
    "notes": "caveats for this run",
}


def run(**kw):
    base = {
        "id": None, "source_key": None, "source": None, "task": "pretrain",
        "model": {"name": None, "config": None, "preset": None, "params_published": None, "arch_notes": None},
        "hardware": {"id": None, "num_gpus": None, "gpus_per_node": None, "interconnect": None, "hardware_notes": None},
        "layout": {"dp": None, "tp": 1, "pp": 1, "cp": 1, "ep": 1, "vp": None, "sharding": None, "micro_batch": None,
                   "grad_checkpointing": None},
        "global_batch": None, "seq": None, "precision": None, "framework": None, "attention_kernel": None,
        "other_settings": [], "published": {}, "derived": {"method": None, "tokens_per_s_per_gpu": None,
                                                          "derivation": None},
        "notes": "",
    }
    for k, v in kw.items():
        if isinstance(v, dict) and isinstance(base.get(k), dict):
            base[k] = {**base[k], **v}
        else:
            base[k] = v
    return base


def md_rows(text: str, header_start: str):
    """Yield (header cells, row cells) for every markdown table whose header starts with header_start."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("|") and line.strip("| ").startswith(header_start):
            header = [c.strip() for c in line.strip().strip("|").split("|")]
            i += 2  # skip the |---| line
            while i < len(lines) and lines[i].strip().startswith("|"):
                yield header, [c.strip() for c in lines[i].strip().strip("|").split("|")]
                i += 1
            continue
        i += 1


# --------------------------------------------------------------------------------------------
# llm-foundry (MosaicML) MPT benchmarks
# --------------------------------------------------------------------------------------------
MPT_SHAPES = {  # scripts/train/yamls/pretrain/mpt-*.yaml at 5e85bd6 / b2a43a1: d_model, n_heads, n_layers
    "125m": (768, 12, 12), "350m": (1024, 16, 24), "760m": (1536, 12, 24), "1b": (2048, 16, 24),
    "3b": (2560, 20, 32), "7b": (4096, 32, 32), "13b": (5120, 40, 40), "30b": (7168, 56, 48),
    "70b": (8192, 64, 80),
}
LLMF_SECTIONS = {  # section heading -> (hardware id, commit that added the rows, date, interconnect)
    "H100 80GB BF16 (Large Scale, >= 128 GPUs)": ("h100-sxm-80gb", "5e85bd6", "2024-01-06", None),
    "H100 80GB BF16": ("h100-sxm-80gb", "5e85bd6", "2024-01-06", None),
    "H100 80GB FP8": ("h100-sxm-80gb", "5e85bd6", "2024-01-06", None),
    "A100 80GB with 1600 Gbps node-node interconnect (RoCE)": ("a100-sxm-80gb", "b2a43a1", "2023-10-19",
                                                              "1600 Gbps node-to-node (RoCE), as the section title states"),
    "A100 40GB with 1600 Gbps node-node interconnect (RoCE)": ("a100-sxm-40gb", "b2a43a1", "2023-10-19",
                                                              "1600 Gbps node-to-node (RoCE), as the section title states"),
}
LLMF_PEAK = {  # composer GPU_AVAILABLE_FLOPS used by collect_results.py (dense, per GPU)
    ("h100-sxm-80gb", "amp_bf16"): 989.5e12, ("h100-sxm-80gb", "amp_fp8"): 1979e12,
    ("a100-sxm-80gb", "amp_bf16"): 312e12, ("a100-sxm-80gb", "bf16"): 312e12,
    ("a100-sxm-40gb", "amp_bf16"): 312e12, ("a100-sxm-40gb", "bf16"): 312e12,
}


def llm_foundry(raw: Path):
    text = (raw / RAW_FILES["llm-foundry"]).read_text()
    runs = []
    section = None
    seen = {}
    for line in text.splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            continue
        if not line.startswith("|  ") or line.startswith("|  Model") or line.startswith("|  ---"):
            continue
        c = [x.strip() for x in line.strip().strip("|").split("|")]
        (model, seq, gpus, gpu, mfu, hfu, mtflop, mbs, accum, gbs, sps, tps, tpsg, gbs_t, prec, mp_mode, shard,
         ac, offload, nparams) = c
        hw, commit, date, ic = LLMF_SECTIONS[section]
        d, heads, layers = MPT_SHAPES[model]
        seq, gpus, mbs, accum, gbs = int(seq), int(gpus), int(mbs), int(accum), int(gbs)
        key = f"llmf-{hw.split('-')[0]}{'40' if '40gb' in hw else '80'}-{prec.replace('amp_', '')}-mpt{model}-s{seq}-g{gpus}-b{gbs}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key += f"-r{seen[key]}"
        precision = {"amp_bf16": "bf16", "bf16": "bf16", "amp_fp8": "fp8"}[prec]
        other = [f"Composer precision {prec}", f"FSDP mixed_precision {mp_mode}",
                 "FSDP activation_cpu_offload False", "norm_type low_precision_layernorm (set by submit_benchmarks.py)"]
        if prec == "amp_fp8":
            other.append("FP8 via TransformerEngine (amp_fp8); flash-attn 2.4.2 installed for H100 fp8 runs")
        if mp_mode == "PURE":
            other.append("FSDP PURE: parameters, gradients and reductions kept in bf16 (no fp32 master copy in the FSDP units)")
        runs.append(run(
            id=key, source_key="llm-foundry",
            source={"title": "MosaicML llm-foundry: MPT Training Benchmarks (scripts/train/benchmarking/README.md)",
                    "url": "https://github.com/mosaicml/llm-foundry/blob/495218376830947dce625efabc4d86be7c47cc45/scripts/train/benchmarking/README.md",
                    "table": f"section '{section}'",
                    "date": f"rows added in commit {commit} ({date}); file read at 4952183 (2024-04-22, last change of the README)"},
            model={"name": f"MPT-{model} (benchmark config)",
                   "config": {"model_type": "gpt2", "n_embd": d, "n_layer": layers, "n_head": heads, "n_inner": 4 * d,
                              "vocab_size": 50368, "n_positions": seq, "activation_function": "gelu"},
                   "params_published": int(nparams),
                   "arch_notes": ("mpt-*.yaml sets only d_model/n_heads/n_layers/expansion_ratio 4/vocab 50368/max_seq_len; "
                                  "MPTConfig defaults at the time (learned_pos_emb=True, no_bias=False, tied embeddings, "
                                  "LayerNorm with bias, GELU) make it a GPT-2-style model with learned positions of length "
                                  "max_seq_len: NumParams in the table matches this gpt2 config exactly (it grows with SeqLen "
                                  "by d_model x seq). Not the ALiBi/no-bias configuration of the released MPT checkpoints.")},
            hardware={"id": hw, "num_gpus": gpus, "gpus_per_node": None, "interconnect": ic,
                      "hardware_notes": None},
            layout={"dp": gpus, "tp": 1, "pp": 1, "cp": 1, "ep": 1, "vp": None,
                    "sharding": {"FULL_SHARD": "fsdp_full_shard", "SHARD_GRAD_OP": "zero2"}[shard],
                    "micro_batch": mbs, "grad_checkpointing": "full" if ac == "True" else "none"},
            global_batch=gbs, seq=seq, precision=precision, framework="llm-foundry",
            attention_kernel=None,
            other_settings=other,
            published={"tokens_per_s": int(tps), "tokens_per_s_per_gpu": int(tpsg), "samples_per_s": int(sps),
                       "mfu": round(float(mfu) / 100, 6), "hfu": round(float(hfu) / 100, 6),
                       "model_tflops_per_gpu": int(mtflop), "grad_accum": int(accum), "num_params_reported": int(nparams),
                       "peak_flops_per_gpu_used": LLMF_PEAK[(hw, prec)],
                       "metric_definition": (
                           "collect_results.py: MFU = (6*NumParams + 12*n_layers*d_model*seq) * tokens_per_s / "
                           "(num_gpus * peak); attention counted for the full (non-causal) seq x seq score matrix; "
                           "NumParams includes embeddings; HFU uses 8*N + 16*L*d*seq when activation checkpointing is on "
                           "(flash-attention recompute not counted). Peak: composer GPU_AVAILABLE_FLOPS (A100 312e12; "
                           "H100-SXM bf16 989.5e12, fp8 1979e12). Model TFLOP is int()-truncated; Throughput columns are "
                           "int()-truncated (S/s is useless for slow runs); T/s = samples_per_sec * seq.")},
            derived={"method": "tokens_per_s_over_gpus"},
            notes=("Short benchmark runs (12 steps) on the MosaicML platform; per-GPU throughput is the whole-job T/s / #GPUs. "
                   "attn_impl was submit_benchmarks.py's default 'triton' unless overridden; the table does not record it. "
                   "GradAccum is ceil(GBS / (gpus*MBS)) (Composer allows a short last micro-batch)."),
        ))
    return runs


# --------------------------------------------------------------------------------------------
# NVIDIA NeMo 24.07 performance summary
# --------------------------------------------------------------------------------------------
LLAMA31_405B = {"model_type": "llama", "hidden_size": 16384, "intermediate_size": 53248, "num_hidden_layers": 126,
                "num_attention_heads": 128, "num_key_value_heads": 8, "vocab_size": 128256, "hidden_act": "silu",
                "tie_word_embeddings": False, "max_position_embeddings": 131072, "rope_theta": 500000.0}
LLAMA31_405B_NOTES = ("Llama 3.1 405B shape (meta-llama/Llama-3.1-405B config.json: hidden 16384, 126 layers, 128 heads, "
                      "8 KV heads, FFN 53248, vocab 128256, untied); rope scaling not modelled.")
NEMO_GPT3 = {  # nemo/collections/llm/gpt/model/base.py GPTConfig5B/20B/175B
    "GPT3-5B": (4096, 24, 32, 16384), "GPT3-20B": (6144, 44, 48, 24576), "GPT3-175B": (12288, 96, 96, 49152),
}
NEMO_PRESETS = {"LLAMA2-7B": "llama-2-7b", "LLAMA2-13B": "llama-2-13b", "LLAMA2-70B": "llama-2-70b",
                "LLAMA3-8B": "llama-3-8b", "LLAMA3-70B": "llama-3-70b"}


def nemo(raw: Path):
    text = (raw / RAW_FILES["nemo"]).read_text()
    src = {"title": "NVIDIA NeMo Framework performance summary (docs/source/performance/performance_summary.md), NeMo 24.07 container",
           "url": "https://github.com/NVIDIA/NeMo/blob/8e3d65dcfe3504689bfc5b6e67d502780aacad41/docs/source/performance/performance_summary.md",
           "date": "commit 8e3d65d (2024-09-09; table first published 2024-08-14, removed from the repo 2024-12-12)"}
    runs = []
    for header, c in md_rows(text, "Model"):
        name = c[0]
        if "Task" in header:
            name, task, gpus, gbs, mbs, seq, tp, pp, tps, tfl = c[:10]
            cp, vp = "1", "1"
            if task != "SFT":
                continue  # LoRA trains adapters only: a different workload
            table = "Finetuning table (SFT, SQuAD v1.1 packed to 4096 tokens)"
            tsk = "sft"
        else:
            name, gpus, gbs, mbs, seq, tp, pp, cp, vp, tps, tfl = c[:11]
            table = "Pretraining table"
            tsk = "pretrain"
            if name.startswith("Nemotron"):
                continue  # squared-ReLU MLP, not importable by costmodel (see sources.md)
        tfl_num = re.sub(r"\[(\d+)\].*", r"\1", tfl)
        gpus, gbs, mbs, seq, tp, pp, cp, vp = map(int, (gpus, gbs, mbs, seq, tp, pp, cp, vp))
        model = {"name": name}
        if name in NEMO_GPT3:
            h, L, H, ffn = NEMO_GPT3[name]
            model.update(config={"model_type": "gpt2", "n_embd": h, "n_layer": L, "n_head": H, "n_inner": ffn,
                                 "vocab_size": 50257, "n_positions": 2048, "activation_function": "gelu"},
                         arch_notes=("NeMo GPTConfig defaults: learned absolute positions, tied embeddings, biases, GeLU. "
                                     "Tokenizer/vocab not stated in the table: GPT-2 BPE (50257) used here; Megatron pads "
                                     "the vocabulary (to a multiple of 128 x TP by default), which adds <0.2% FLOPs."))
        else:
            model.update(preset=NEMO_PRESETS[name], arch_notes="costmodel preset of the same published model shape.")
        dp = gpus // (tp * pp * cp)
        runs.append(run(
            id=f"nemo2407-h100-{name.lower()}-{tsk}-g{gpus}-tp{tp}pp{pp}cp{cp}-b{gbs}",
            source_key="nemo-perf-summary", source={**src, "table": table}, task=tsk, model=model,
            hardware={"id": "h100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8, "interconnect": None,
                      "hardware_notes": "DGX-H100 (as stated)"},
            layout={"dp": dp, "tp": tp, "pp": pp, "cp": cp, "ep": 1, "vp": vp if vp > 1 else None, "sharding": None,
                    "micro_batch": mbs, "grad_checkpointing": None},
            global_batch=gbs, seq=seq, precision="fp8", framework="nemo",
            other_settings=["NeMo 24.07 container"] + (["sequence packing to 4096 tokens (SQuAD v1.1)"] if tsk == "sft" else []),
            published={"tokens_per_s_per_gpu": int(tps), "model_tflops_per_gpu": int(tfl_num),
                       "metric_definition": ("Tokens/sec/GPU and Model TFLOP/sec/GPU as printed; the page does not give the "
                                             "FLOP formula (NeMo uses Megatron-style model FLOPs without recompute).")},
            derived={"method": "published_tokens_per_s_per_gpu"},
            notes=("FP8 per the page ('pre-training performance ... at FP8 precision'); recompute, distributed optimizer "
                   "and overlap settings not stated. The GPT3-175B 512-GPU TFLOP number links to MLPerf Training."
                   + (" SFT on packed sequences." if tsk == "sft" else "")),
        ))
    return runs


# --------------------------------------------------------------------------------------------
# Megatron-Bridge performance summary archive
# --------------------------------------------------------------------------------------------
MB_MODELS = {"LLAMA3_8B": ("llama-3-8b", None), "LLAMA3_70B": ("llama-3-70b", None),
             "LLAMA3.1_405B": (None, LLAMA31_405B)}
MB_HW = {
    "DGX-H100": ("h100-sxm-80gb", "DGX-H100 (as stated)"),
    "DGX-B200": ("b200-sxm-192gb", "DGX-B200 (as stated)"),
    "DGX-GB200": ("gb200", "DGX-GB200 (Grace-Blackwell GB200 NVL system); not in costmodel's catalog"),
    "DGX-GB300": ("gb300", "DGX-GB300 (Grace-Blackwell Ultra GB300 NVL system); not in costmodel's catalog"),
}
MB_PREC = {"FP8-CS": "fp8", "FP8": "fp8", "FP8-MX": "mxfp8", "MXFP8": "mxfp8", "NVFP4": "nvfp4", "BF16": "bf16"}


def _num(x):
    return None if x.strip().lower() in ("n/a", "") else int(x)


def megatron_bridge(raw: Path):
    text = (raw / RAW_FILES["megatron-bridge"]).read_text()
    runs = []
    release = section = system = model_hdr = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("## ") and "NeMo Container" in s:
            release = s[3:].replace(" NeMo Container", "").strip()
            continue
        if s.startswith("### "):
            section = s[4:].strip()
            continue
        if s.startswith("#### System:"):
            system, model_hdr = "DGX-" + s.split("DGX-")[1].strip(), None
            continue
        if s.startswith("#### Model:"):
            model_hdr, system = s.split(":", 1)[1].strip(), None
            continue
        if not s.startswith("|") or s.startswith("|--") or s.startswith("| Model") or s.startswith("| System"):
            continue
        if release == "25.09":
            continue  # no precision column; see sources.md
        if section not in ("Pre-Training Performance", "SFT Performance"):
            continue
        c = [x.strip() for x in s.strip("|").split("|")]
        if system is not None:  # 25.11 layout: Model | #-GPUs | Precision | GBS | MBS | Seq | FSDP | TP | PP | CP | VP | EP | GA | tok | tflop
            name, gpus, prec, gbs, mbs, seq, fsdp, tp, pp, cp, vp, ep, ga, tok, tfl = c
            sysname = system
        else:  # 26.x layout: System | #-GPUs | Precision | GBS | MBS | Seq | [FSDP] | TP | PP | CP | VP | EP | tok | tflop
            name = model_hdr
            if len(c) == 14:
                sysname, gpus, prec, gbs, mbs, seq, fsdp, tp, pp, cp, vp, ep, tok, tfl = c
            else:
                sysname, gpus, prec, gbs, mbs, seq, tp, pp, cp, vp, ep, tok, tfl = c
                fsdp = "0"
            ga = None
        if name not in MB_MODELS:
            continue  # MoE / hybrid models: not importable by costmodel
        # "FP8-CS (FP8-MX)" rows: two runs with the same layout, the second in parentheses.
        precs = [p.strip() for p in re.split(r"[()]", prec) if p.strip()]
        toks = [t.strip() for t in re.split(r"[()]", tok) if t.strip()]
        tfls = [t.strip() for t in re.split(r"[()]", tfl) if t.strip()]
        assert len(precs) == len(toks) == len(tfls), (release, line)
        gpus, gbs, mbs, seq, tp, pp, cp = map(int, (gpus, gbs, mbs, seq, tp, pp, cp))
        fsdp = int(fsdp)
        hw, hw_notes = MB_HW[sysname]
        preset, cfg = MB_MODELS[name]
        tsk = "sft" if section.startswith("SFT") else "pretrain"
        for p, t, f in zip(precs, toks, tfls):
            precision = MB_PREC[p]
            rid = (f"mbridge{release.replace('.', '')}-{sysname.lower().replace('dgx-', '')}-{name.lower()}-{tsk}-"
                   f"{precision}-g{gpus}-tp{tp}pp{pp}cp{cp}-b{gbs}")
            dp = gpus // (tp * pp * cp)
            runs.append(run(
                id=rid, source_key="megatron-bridge-perf", task=tsk,
                source={"title": "NVIDIA Megatron-Bridge performance summary archive (docs/performance-summary-archive.md)",
                        "url": "https://github.com/NVIDIA-NeMo/Megatron-Bridge/blob/4ab94df/docs/performance-summary-archive.md",
                        "table": f"'{release} NeMo Container' / {section} / {system or 'Model: ' + name}",
                        "date": "archive read at commit 4ab94df (2026-08-11); per-release sections added with each NeMo container release"},
                model={"name": name, "preset": preset, "config": cfg,
                       "arch_notes": LLAMA31_405B_NOTES if cfg else "costmodel preset of the same published model shape."},
                hardware={"id": hw, "num_gpus": gpus, "gpus_per_node": None, "interconnect": None, "hardware_notes": hw_notes},
                layout={"dp": dp, "tp": tp, "pp": pp, "cp": cp, "ep": _num(ep) or 1, "vp": _num(vp),
                        "sharding": "fsdp_full_shard" if fsdp > 0 else None, "micro_batch": mbs,
                        "grad_checkpointing": None},
                global_batch=gbs, seq=seq, precision=precision, framework="megatron-bridge",
                other_settings=[f"NeMo {release} container", f"precision label '{p}'"]
                + ([f"Megatron-FSDP, sharding group {fsdp} (= #GPUs/(TP*PP))"] if fsdp > 0 else
                   ["FSDP = 0 (page: 'use DDP'); distributed-optimizer setting not stated"])
                + ([f"GA {ga}"] if ga else []),
                published={"tokens_per_s_per_gpu": int(t), "model_tflops_per_gpu": int(f),
                           "metric_definition": ("Tokens/sec/GPU and Model TFLOP/sec/GPU as printed; the page does not state "
                                                 "the FLOP formula (Megatron-style model FLOPs, no recompute).")},
                derived={"method": "published_tokens_per_s_per_gpu"},
                notes=("Performance-recipe benchmark; recompute not stated. "
                       + ("SFT row (page does not say whether sequences are packed). " if tsk == "sft" else "")
                       + ("FP8-MX: MXFP8 block scaling, 32x32 granularity on Blackwell per the page's footnote. "
                          if precision == "mxfp8" else "")),
            ))
    return runs


# --------------------------------------------------------------------------------------------
# Megatron-LM README tables (published as images): transcribed by hand
# --------------------------------------------------------------------------------------------
# images/cases_april2021.png (commit 50a4b5f, 2021-04-08) = Narayanan et al. 2021 Table 1 numbers:
# (label, heads, hidden, layers, params_B, model_parallel_size, gpus, batch, tflops_per_gpu, pct_peak, aggregate_pflops)
# heads are not in the README image: they are the paper's Table 1 column as transcribed in third-party paper notes
# (every other column of that transcription equals the image).
MEG2021 = [
    ("1.7B", 24, 2304, 24, 1.7, 1, 32, 512, 137, 44, 4.4),
    ("3.6B", 32, 3072, 30, 3.6, 2, 64, 512, 138, 44, 8.8),
    ("7.5B", 32, 4096, 36, 7.5, 4, 128, 512, 142, 46, 18.2),
    ("18B", 48, 6144, 40, 18.4, 8, 256, 1024, 135, 43, 34.6),
    ("39B", 64, 8192, 48, 39.1, 16, 512, 1536, 138, 44, 70.8),
    ("76B", 80, 10240, 60, 76.1, 32, 1024, 1792, 140, 45, 143.8),
    ("145B", 96, 12288, 80, 145.6, 64, 1536, 2304, 148, 47, 227.1),
    ("310B", 128, 16384, 96, 310.1, 128, 1920, 2160, 155, 50, 297.4),
    ("530B", 128, 20480, 105, 529.6, 280, 2520, 2520, 163, 52, 410.2),
    ("1T", 160, 25600, 128, 1008.0, 512, 3072, 3072, 163, 52, 502.0),
]
# images/model_table.png (commit f2e5db4, 2024-07-15), H100 weak scaling:
# (label, heads, hidden, layers, tp, pp, dp, gpus, batch, tflops_per_gpu, mfu_pct, aggregate_pflops)
MEG2024 = [
    ("1.7B", 16, 2048, 24, 1, 1, 48, 48, 192, 408.8, 41, 19.6),
    ("7.1B", 32, 4096, 30, 2, 1, 48, 96, 192, 465.9, 47, 44.7),
    ("16B", 48, 6144, 32, 4, 1, 48, 192, 192, 489.1, 49, 93.9),
    ("32B", 56, 7168, 48, 8, 1, 48, 384, 192, 459.6, 46, 176.5),
    ("70B", 64, 8192, 84, 8, 2, 48, 768, 384, 419.7, 42, 322.3),
    ("119B", 80, 10240, 92, 8, 4, 48, 1536, 768, 420.5, 43, 645.9),
    ("177B", 96, 12288, 96, 8, 6, 48, 2304, 1152, 432.8, 44, 997.2),
    ("314B", 128, 16384, 96, 8, 8, 48, 3072, 1536, 474.4, 48, 1457.4),
    ("462B", 144, 18432, 112, 8, 16, 48, 6144, 3072, 459.9, 47, 2825.6),
]


def megatron_readme():
    runs = []
    for label, heads, h, L, pb, mp, gpus, batch, tfl, pct, agg in MEG2021:
        tp, pp = (mp, 1) if mp <= 8 else (8, mp // 8)
        runs.append(run(
            id=f"megatron2021-a100-gpt{label.lower()}-g{gpus}-tp{tp}pp{pp}-b{batch}", source_key="narayanan2021",
            source={"title": "NVIDIA Megatron-LM README, 'Training Speed and Scalability' table (numbers of Narayanan et al. 2021, "
                             "'Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM', Table 1)",
                    "url": "https://github.com/NVIDIA/Megatron-LM/blob/50a4b5fa0280a160cc1b03a1c15faddbc1b1da9a/images/cases_april2021.png",
                    "table": "README image images/cases_april2021.png (= arXiv 2104.04473 Table 1)",
                    "date": "commit 50a4b5f (2021-04-08); paper arXiv 2104.04473 (2021-04-09)"},
            model={"name": f"GPT {label}",
                   "config": {"model_type": "gpt2", "n_embd": h, "n_layer": L, "n_head": heads, "n_inner": 4 * h,
                              "vocab_size": 51200, "n_positions": 2048, "activation_function": "gelu"},
                   "params_published": int(round(pb * 1e9)),
                   "arch_notes": ("GPT-2/3-style Megatron GPT (learned positions, tied embeddings, biases, GeLU 4h MLP); "
                                  "vocab 51,200 and seq 2048 per the README text. The attention-head count is not in the "
                                  "README image; it is the paper's Table 1 column as transcribed in third-party notes "
                                  "(heads change neither parameters nor the published FLOP count).")},
            hardware={"id": "a100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8,
                      "interconnect": "Selene (DGX A100 nodes, 8x 80GB A100 each, per the README)", "hardware_notes": None},
            layout={"dp": gpus // mp, "tp": tp, "pp": pp, "cp": 1, "ep": 1, "vp": None, "sharding": "none",
                    "micro_batch": None, "grad_checkpointing": "full"},
            global_batch=batch, seq=2048, precision="16bit-mixed", framework="megatron-lm",
            other_settings=["interleaved pipeline schedule / micro-batch size per model not in the README table"],
            published={"hardware_tflops_per_gpu": tfl, "aggregate_pflops": agg, "hfu": pct / 100,
                       "metric_definition": (
                           "Narayanan et al. 2021 Sec. 5.1: FLOPs per iteration = 96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h)), "
                           "i.e. forward+backward PLUS one extra forward for full activation recomputation (a hardware-FLOP "
                           "count, not 6N model FLOPs); 'percentage of theoretical peak' (recorded as hfu, since the count includes the recompute forward) is against the A100 312 TFLOP/s fp16 peak. "
                           "Aggregate petaFLOP/s = per-GPU x #GPUs. Measured end-to-end (data loading, optimizer, logging).")},
            derived={"method": "megatron2021_aggregate"},
            notes=("Model-parallel size is the README's combined TP x PP; the README says sizes > 8 used TP = 8 (e.g. 64 -> "
                   "TP8 PP8), so TP = min(MP, 8), PP = MP/8. Paper: mixed precision (fp16) with full activation "
                   "recomputation; micro-batch sizes are not in this table (the paper tunes them per model)."),
        ))
    for label, heads, h, L, tp, pp, dp, gpus, batch, tfl, mfu, agg in MEG2024:
        ffn = round(8 * h / 3)
        runs.append(run(
            id=f"megatron2024-h100-gpt{label.lower()}-g{gpus}-tp{tp}pp{pp}-b{batch}", source_key="megatron-lm-h100-2024",
            source={"title": "NVIDIA Megatron-LM README, 'Training Speed and Scalability' H100 weak-scaling table",
                    "url": "https://github.com/NVIDIA/Megatron-LM/blob/f2e5db402c44ae309aa6448bcb4ae87e8ae0f5f4/images/model_table.png",
                    "table": "README image images/model_table.png",
                    "date": "commit f2e5db4 (2024-07-15, 'New scaling figures on H100 GPUs')"},
            model={"name": f"GPT {label}",
                   "config": {"model_type": "llama", "hidden_size": h, "num_hidden_layers": L, "num_attention_heads": heads,
                              "num_key_value_heads": heads, "intermediate_size": ffn, "vocab_size": 131072,
                              "max_position_embeddings": 4096, "tie_word_embeddings": False, "hidden_act": "silu"},
                   "params_published": None,
                   "arch_notes": (f"Published only as 'GPT {label}' with heads/hidden/layers, vocab 131,072, seq 4096; the "
                                  "README calls the 177B one 'the standard GPT-3 model (slightly more than 175B due to larger "
                                  "vocabulary)', and the labels match 12*L*h^2 + 2*V*h (GeLU 4h MLP, untied embeddings). "
                                  "costmodel has no untied non-gated importer, so this llama-type config with SwiGLU "
                                  f"intermediate round(8h/3) = {ffn} reproduces the matmul parameters/FLOPs (within 0.01%) "
                                  "but not the activation, norm or position encoding.")},
            hardware={"id": "h100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": None, "interconnect": None,
                      "hardware_notes": None},
            layout={"dp": dp, "tp": tp, "pp": pp, "cp": 1, "ep": 1, "vp": None, "sharding": "zero1",
                    "micro_batch": None, "grad_checkpointing": None},
            global_batch=batch, seq=4096, precision="bf16", framework="megatron-lm",
            other_settings=["--overlap-grad-reduce", "--overlap-param-gather", "--tp-comm-overlap",
                            "pipeline-parallel communication overlap (default)"],
            published={"model_tflops_per_gpu": tfl, "mfu": mfu / 100, "aggregate_pflops": agg,
                       "metric_definition": (
                           "Megatron-LM num_floating_point_operations (megatron/training/training.py at f2e5db4): "
                           "12*B*s*L*h^2*((1 + g/a + s/h) + (ffn/h) + V/(2*L*h)) = 72*B*s*L*h^2*(1 + s/(6h) + V/(12*L*h)) "
                           "for MHA and a 4h non-gated MLP: forward+backward model FLOPs, no recompute, full (non-causal) "
                           "attention. MFU against the 989.5 TFLOP/s dense BF16 H100 peak (408.8/989.5 = 41%).")},
            derived={"method": "megatron2024_tflops"},
            notes=("Precision and micro-batch are not stated; bf16 is inferred from MFU = TFLOP/s / 989.5 (the dense BF16 "
                   "peak). '--overlap-param-gather' implies Megatron's distributed optimizer (ZeRO-1). Measured end-to-end."),
        ))
    return runs


# Narayanan et al. 2021 Table 2 (PTD-P rows; ZeRO-3 rows skipped: their model-parallel column is ambiguous)
# (params_B, heads, hidden, layers, model_parallel_size, batch, gpus, micro_batch, tflops_per_gpu)
NARAYANAN_T2 = [
    (174.6, 96, 12288, 96, 96, 1536, 384, 1, 153), (174.6, 96, 12288, 96, 96, 1536, 768, 1, 149),
    (174.6, 96, 12288, 96, 96, 1536, 1536, 1, 141),
    (529.6, 128, 20480, 105, 280, 2240, 560, 1, 171), (529.6, 128, 20480, 105, 280, 2240, 1120, 1, 167),
    (529.6, 128, 20480, 105, 280, 2240, 2240, 1, 159),
]
# Korthikanti et al. 2022: Table 3 (configs) + Table 5 (iteration time, full recompute vs present work; MFU/HFU of
# present work). MFU/HFU also in the Megatron-LM README (commit 2e90a34, 2022-05-19).
# (label, heads, hidden, layers, tp, pp, gpus, global_batch, micro_batch, t_full_s, t_present_s, mfu_pct, hfu_pct, vp)
KORTHIKANTI = [
    ("22B", 64, 6144, 48, 8, 1, 8, 4, 4, 1.42, 1.10, 41.5, 43.7, None),
    ("175B", 96, 12288, 96, 8, 8, 64, 64, 1, 18.13, 13.75, 51.4, 52.8, 3),
    ("530B", 128, 20480, 105, 8, 35, 280, 280, 1, 49.05, 37.83, 56.0, 57.0, 3),
    ("1T", 160, 25600, 128, 8, 64, 512, 512, 1, 94.42, 71.49, 56.3, 57.0, None),
]
SECONDARY = ("Values read from a Markdown transcription of the paper's table in third-party paper notes on GitHub (the PDF "
             "itself was not readable here); the transcription's Table 1 agrees digit for digit with the Megatron-LM README image.")


def megatron_papers():
    runs = []
    for pb, heads, h, L, mp, batch, gpus, mb, tfl in NARAYANAN_T2:
        tp, pp = 8, mp // 8
        runs.append(run(
            id=f"narayanan2021-t2-a100-gpt{int(round(pb))}b-g{gpus}-tp{tp}pp{pp}-b{batch}", source_key="narayanan2021",
            source={"title": "Narayanan et al. 2021, Efficient Large-Scale Language Model Training on GPU Clusters Using Megatron-LM (SC21)",
                    "url": "https://arxiv.org/abs/2104.04473", "table": "Table 2 (PTD-P rows; comparison with ZeRO-3)",
                    "date": "2021-04 (arXiv v1), SC21"},
            model={"name": f"GPT {pb}B",
                   "config": {"model_type": "gpt2", "n_embd": h, "n_layer": L, "n_head": heads, "n_inner": 4 * h,
                              "vocab_size": 51200, "n_positions": 2048, "activation_function": "gelu"},
                   "params_published": int(round(pb * 1e9)),
                   "arch_notes": "Megatron GPT (learned positions, tied embeddings, biases, GeLU 4h MLP), V = 51,200, s = 2048."},
            hardware={"id": "a100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8,
                      "interconnect": "Selene: 8x 200 Gb/s HDR InfiniBand per node (paper Sec. 5)", "hardware_notes": None},
            layout={"dp": gpus // mp, "tp": tp, "pp": pp, "cp": 1, "ep": 1, "vp": None, "sharding": "none",
                    "micro_batch": mb, "grad_checkpointing": "full"},
            global_batch=batch, seq=2048, precision="16bit-mixed", framework="megatron-lm",
            other_settings=["PTD-P (tensor + pipeline + data parallelism)"],
            published={"hardware_tflops_per_gpu": tfl,
                       "metric_definition": ("Same FLOP count as Table 1: 96*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h)) per "
                                             "iteration, i.e. including the recompute forward (hardware FLOPs).")},
            derived={"method": "megatron2021_tflops"},
            notes=("Table 2 gives only the model-parallel size (96 / 280); TP = 8, PP = MP/8 follows the paper's rule "
                   "(tensor parallelism up to the 8 GPUs of a node, as the Megatron-LM README states for its table). "
                   "Interleaving not stated for this table. " + SECONDARY),
        ))
    for label, heads, h, L, tp, pp, gpus, gbs, mb, t_full, t_sel, mfu, hfu, vp in KORTHIKANTI:
        for mode, t in (("full", t_full), ("selective", t_sel)):
            pub = {"step_time_s": t,
                   "metric_definition": ("Table 5 'iteration time' (seconds per global batch, data parallel size 1). MFU = "
                                         "72*B*s*l*h^2*(1 + s/(6h) + V/(12*l*h)) / (step time * GPUs * 312e12) (model FLOPs, no "
                                         "recompute); HFU adds the recomputed FLOPs (selective recompute: attention "
                                         "score/softmax part only).")}
            if mode == "selective":
                pub.update(mfu=mfu / 100, hfu=hfu / 100)
            runs.append(run(
                id=f"korthikanti2022-a100-gpt{label.lower()}-g{gpus}-tp{tp}pp{pp}-{mode}-recompute",
                source_key="korthikanti2022",
                source={"title": "Korthikanti et al. 2022, Reducing Activation Recomputation in Large Transformer Models (MLSys 2023)",
                        "url": "https://arxiv.org/abs/2205.05198",
                        "table": "Table 3 (configurations) and Table 5 (end-to-end iteration time"
                                 + (", MFU, HFU" if mode == "selective" else "") + "); MFU/HFU also in the Megatron-LM README",
                        "date": "2022-05-10 (arXiv); Megatron-LM README table at commit 2e90a34 (2022-05-19)"},
                model={"name": f"GPT {label}",
                       "config": {"model_type": "gpt2", "n_embd": h, "n_layer": L, "n_head": heads, "n_inner": 4 * h,
                                  "vocab_size": 51200, "n_positions": 2048, "activation_function": "gelu"},
                       "params_published": None,
                       "arch_notes": "GPT-3-style Megatron GPT (learned positions, tied embeddings, GeLU 4h MLP), V = 51,200, s = 2048."},
                hardware={"id": "a100-sxm-80gb", "num_gpus": gpus, "gpus_per_node": 8, "interconnect": None,
                          "hardware_notes": None},
                layout={"dp": gpus // (tp * pp), "tp": tp, "pp": pp, "cp": 1, "ep": 1, "vp": vp, "sharding": "none",
                        "micro_batch": mb, "grad_checkpointing": mode},
                global_batch=gbs, seq=2048, precision="16bit-mixed", framework="megatron-lm",
                other_settings=(["sequence parallelism", "selective activation recomputation"] if mode == "selective"
                                else ["full activation recomputation (baseline)"])
                + ([f"interleaved pipeline, {vp} stages per rank"] if vp else []),
                published=pub, derived={"method": "samples_per_step_time"},
                notes=("Data-parallel size 1 (the README: 'measured using a data parallel size of one'). " + SECONDARY),
            ))
    return runs


# --------------------------------------------------------------------------------------------
# torchtitan
# --------------------------------------------------------------------------------------------
TT_HW_NOTES = ("Grand Teton H100 with 96GB HBM2e (2.4 TB/s), default 500 W power limit (per the doc); "
               "'actual peak TFLOPs between SXM and NVL' (doc footnote). Closest catalog part: h100-sxm-80gb.")
TT_MODELS = {"8B": ("llama-3-8b", None), "70B": ("llama-3-70b", None), "405B": (None, LLAMA31_405B)}


def _tt(id_, src, table, size, gpus, fsdp, tp, pp, cp, local_bs, gbs, seq, ac, prec, tps, other, notes, mem=None,
        hw="h100-96gb-hbm2e-500w", hw_notes=TT_HW_NOTES, interconnect="backend RDMA 400 Gb/s per GPU; 8 GPUs/host with NVLink",
        micro=None):
    preset, cfg = TT_MODELS[size]
    pub = {"tokens_per_s_per_gpu": tps,
           "metric_definition": "TPS/GPU: tokens per second per GPU logged by torchtitan every 10 iterations and read at "
                                "one iteration (90th for the 2024 docs, 100th for the H200 run); MFU not reported."}
    if mem is not None:
        pub["peak_memory_gib"] = mem
    return run(
        id=id_, source_key="torchtitan", source={**src, "table": table},
        model={"name": f"Llama 3.1 {size}", "preset": preset, "config": cfg,
               "arch_notes": LLAMA31_405B_NOTES if cfg else
               "costmodel Llama 3 preset (Llama 3.1 has the same shape; rope scaling not modelled)."},
        hardware={"id": hw, "num_gpus": gpus, "gpus_per_node": 8, "interconnect": interconnect, "hardware_notes": hw_notes},
        layout={"dp": fsdp, "tp": tp, "pp": pp, "cp": cp, "ep": 1, "vp": None, "sharding": "fsdp_full_shard",
                "micro_batch": micro if micro is not None else (local_bs if pp == 1 else None), "grad_checkpointing": ac},
        global_batch=gbs, seq=seq, precision=prec, framework="torchtitan", other_settings=other, published=pub,
        derived={"method": "published_tokens_per_s_per_gpu"},
        notes=notes)


def torchtitan(raw: Path):
    src = {"title": "torchtitan docs/performance.md (Llama 3.1 8B/70B/405B on H100, end of 2024)",
           "url": "https://github.com/pytorch/torchtitan/blob/d4c86e375/docs/performance.md",
           "date": "doc at d4c86e3 (2025-01-30); runs used torchtitan 9dec370 (2024-12-26), torch 1963fc8, torchao eab345c"}
    seq_note = ("seq 8192: not restated in Tables 1/3/4/5 — it is the seq_len of train_configs/llama3_{8b,70b,405b}.toml "
                "at torchtitan 9dec370, the commit the doc names. ")
    f8 = ["torch.compile", "Float8 on nn.Linear (torchao, tensorwise dynamic scaling)", "FSDP2 float8 all-gather"]
    runs = []
    # Table 1 / Table 3: FSDP only, 8B, selective AC, local batch 2
    for tno, gpus, rows in (("Table 1", 8, [("FSDP", 5762, 82.4), ("FSDP + torch.compile", 6667, 77.0),
                                            ("FSDP + torch.compile + Float8", 8532, 76.8)]),
                            ("Table 3", 128, [("FSDP", 5605, 67.0), ("FSDP + torch.compile", 6514, 62.0),
                                              ("FSDP + torch.compile + Float8", 8380, 61.8)])):
        for tech, tps, mem in rows:
            fp8 = "Float8" in tech
            other = (["torch.compile"] if "compile" in tech else []) + (f8[1:] if fp8 else [])
            runs.append(_tt(f"torchtitan2412-h100-llama31-8b-g{gpus}-fsdp-{'compile-' if 'compile' in tech else ''}{'fp8' if fp8 else 'bf16'}",
                            src, f"{tno} ({tech})", "8B", gpus, gpus, 1, 1, 1, 2, 2 * gpus, 8192, "selective",
                            "fp8" if fp8 else "bf16", tps, other,
                            seq_note + "Selective AC = per-op SAC ('op') in the 8B config.", mem))
    # Table 2: 8B, 8 GPUs, FSDP + CP + compile + Float8, local batch 1, full AC
    for fsdp, cp, seq, tps, mem in ((8, 1, 32768, 3890, 83.9), (4, 2, 65536, 2540, 84.2), (2, 4, 131072, 1071, 84.0),
                                    (1, 8, 262144, 548, 84.5)):
        runs.append(_tt(f"torchtitan2412-h100-llama31-8b-g8-fsdp{fsdp}cp{cp}-s{seq}-fp8", src, "Table 2", "8B", 8, fsdp, 1, 1,
                        cp, 1, fsdp, seq, "full", "fp8", tps, f8,
                        "Global batch = local batch 1 x FSDP degree (the doc gives the local batch only).", mem))
    # Table 4: 70B, 256 GPUs, FSDP 32 TP 8, local 16, global 512, full AC
    for tech, tps, mem in (("2D", 829, 71.9), ("2D + AsyncTP", 876, 67.6)):
        runs.append(_tt(f"torchtitan2412-h100-llama31-70b-g256-fsdp32tp8-{'asynctp-' if 'Async' in tech else ''}fp8",
                        src, f"Table 4 ({tech})", "70B", 256, 32, 8, 1, 1, 16, 512, 8192, "full", "fp8", tps,
                        f8 + (["AsyncTP"] if "Async" in tech else []), seq_note, mem))
    # Table 5: 405B, 512 GPUs FSDP 8 TP 8 PP 8, local 32, global 256 (as printed), full AC
    for sched, tps, mem in (("1F1B", 100, 82.5), ("Interleaved 1F1B", 128, 72.7)):
        runs.append(_tt(f"torchtitan2412-h100-llama31-405b-g512-fsdp8tp8pp8-{sched.lower().replace(' ', '-')}-fp8",
                        src, f"Table 5 ({sched})", "405B", 512, 8, 8, 8, 1, 32, 256, 8192, "full", "fp8", tps,
                        f8 + ["AsyncTP", f"pipeline schedule {sched}"],
                        seq_note + "The caption prints local batch 32 and global batch 256 with FSDP 8 (8 x 32 = 256); "
                                   "pipeline micro-batch count not stated.", mem))
    # Table 6: 405B, 512 GPUs TP 8 PP 8, FSDP x CP = 8, local batch 8, 1F1B
    for fsdp, cp, seq, tps, mem in ((8, 1, 32768, 76, 75.3), (4, 2, 65536, 47, 75.9), (2, 4, 131072, 31, 77.1),
                                    (1, 8, 262144, 16, 84.9)):
        runs.append(_tt(f"torchtitan2412-h100-llama31-405b-g512-fsdp{fsdp}tp8pp8cp{cp}-s{seq}-fp8", src, "Table 6", "405B",
                        512, fsdp, 8, 8, cp, 8, 8 * fsdp, seq, "full", "fp8", tps, f8 + ["AsyncTP", "pipeline schedule 1F1B"],
                        "Global batch = local batch 8 x FSDP degree (the doc gives the local batch only); pipeline "
                        "micro-batch count not stated.", mem))
    # asyncTP benchmarks (June 2025)
    src2 = {"title": "torchtitan benchmarks/asyncTP_llama3_h100_2025-06_torchtitan.md",
            "url": "https://github.com/pytorch/torchtitan/blob/4a61bd87d3c7e92bcfeb5d5464d9e6bd13ef440a/benchmarks/asyncTP_llama3_h100_2025-06_torchtitan.md",
            "date": "runs June 2025 (torchtitan 820504e, torch 38410cf9); file read at 4a61bd8 (2026-04-20)"}
    seq_note2 = ("seq 8192 is not stated in this file: it is the seq_len of train_configs/llama3_{8b,70b}.toml at 820504e, the "
                 "commit the file names. The columns are headed 'tokens/sec'; their magnitude matches the per-GPU TPS of "
                 "docs/performance.md (e.g. 70B 2D fp8 829 there), so they are per-GPU numbers. ")
    for size, gpus, fsdp, tp, local, ac, rows in (
            ("70B", 256, 32, 8, 16, "full", [("bf16", 597.3, 652.4), ("fp8", 809.8, 942.4), ("fp8-rowwise", 599.6, 624.8)]),
            ("8B", 64, 8, 8, 12, "selective", [("bf16", 4378, 4809.4), ("fp8", 5078.1, 5570.1),
                                               ("fp8-rowwise", 3708.5, 3914.9)])):
        for prec, vanilla, async_ in rows:
            for mode, tps in (("vanilla-tp", vanilla), ("async-tp", async_)):
                quant = {"bf16": "None (bfloat16)", "fp8": "float8 tensorwise", "fp8-rowwise": "float8 rowwise"}[prec]
                runs.append(_tt(f"torchtitan2506-h100-llama31-{size.lower()}-g{gpus}-fsdp{fsdp}tp{tp}-{mode}-{prec}", src2,
                                f"'Llama3 {size.lower()} on {gpus} H100s' table, row '{quant}', column "
                                f"'{'Async' if mode == 'async-tp' else 'Vanilla'} TP tokens/sec'", size, gpus, fsdp, tp, 1, 1,
                                local, local * fsdp, 8192, ac, prec, tps,
                                ["torch.compile"] + (["AsyncTP"] if mode == "async-tp" else []) +
                                ([f"torchao {quant}"] if prec != "bf16" else []),
                                seq_note2 + "Global batch = local batch x FSDP degree." +
                                (" Selective AC = 'per op SAC'." if ac == "selective" else "")))
    # Trainy H200 (June 2025)
    src3 = {"title": "torchtitan benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md (Trainy on WhiteFiber)",
            "url": "https://github.com/pytorch/torchtitan/blob/4a61bd87d3c7e92bcfeb5d5464d9e6bd13ef440a/benchmarks/llama3-8b_h200_202506_trainy-whitefiber.md",
            "date": "runs June 2025 (torchtitan e7c0cae); file read at 4a61bd8 (2026-04-20)"}
    for nodes, tps, mem in ((4, 10938, 47.96), (8, 10753, 46.97)):
        g = 8 * nodes
        runs.append(_tt(f"torchtitan2506-h200-llama31-8b-g{g}-fsdp-compile-fp8", src3, f"Results table, NUM_NODES={nodes}", "8B",
                        g, g, 1, 1, 1, 2, 2 * g, 8192, "selective", "fp8", tps,
                        ["torch.compile", "Float8 linear (quantize.linear.float8)", "FSDP float8 all-gather",
                         "precompute float8 dynamic scale for FSDP", "force_recompute_fp8_weight_in_bwd"],
                        "seq 8192 and selective (per-op) AC from train_configs/llama3_8b.toml at e7c0cae (not restated in "
                        "the file); FSDP over all GPUs (data_parallel_shard_degree -1 default); global batch = local 2 x "
                        "GPUs.", mem, hw="h200-sxm-141gb", hw_notes="NVIDIA H200 (8 per host, NVLink), as stated",
                        interconnect="RDMA 400 Gb/s (Mellanox CX-7) per GPU", micro=2))
    return runs


# --------------------------------------------------------------------------------------------
# BLOOM-176B (BigScience)
# --------------------------------------------------------------------------------------------
def bloom():
    return [run(
        id="bloom176b-a100-80gb-g384-tp4pp12dp8-b2048", source_key="bigscience-bloom",
        source={"title": "BigScience tr11-176B-ml training README and chronicles (BLOOM-176B)",
                "url": "https://github.com/bigscience-workshop/bigscience/blob/master/train/tr11-176B-ml/README.md",
                "table": "README sections 'Architecture', 'Replica setup', 'Global batch size', 'Throughput'; "
                         "chronicles.md log line of iteration 12695",
                "date": "training March-July 2022; log line from the chronicles (iteration 12695, ~20B tokens)"},
        model={"name": "BLOOM-176B",
               "config": {"model_type": "gpt2", "n_embd": 14336, "n_layer": 70, "n_head": 112, "n_inner": 4 * 14336,
                          "vocab_size": 250880, "n_positions": 2048, "activation_function": "gelu"},
               "params_published": 176_000_000_000,
               "arch_notes": ("ALiBi positions (no learned position table; the gpt2 config adds 2048 x 14336 = 29M learned "
                              "position parameters, 0.02%), embedding LayerNorm, tied embeddings, GeLU, biases; padded vocab "
                              "250,880 (README 'embedding size v*h: 250880*14336'). params_published = the README's "
                              "'Model size: 176B'.")},
        hardware={"id": "a100-sxm-80gb", "num_gpus": 384, "gpus_per_node": 8,
                  "interconnect": "Omni-Path (4 OPA links per node), NVLink inside the node (README)", "hardware_notes": None},
        layout={"dp": 8, "tp": 4, "pp": 12, "cp": 1, "ep": 1, "vp": None, "sharding": "zero1", "micro_batch": 2,
                "grad_checkpointing": "full"},
        global_batch=2048, seq=2048, precision="bf16", framework="megatron-deepspeed",
        other_settings=["DeepSpeed BF16_Optimizer with its own ZeRO stage 1", "PP partition 'type:transformer|embedding'",
                        "apex FusedAdam"],
        published={"step_time_s": 105.22, "samples_per_s": 19.463, "hardware_tflops_per_gpu": 149.02,
                   "metric_definition": ("Megatron-DeepSpeed log 'TFLOPs': hardware TFLOPs with activation recomputation "
                                         "(factor 4*2 instead of 3*2 per parameter, README 'Throughput'), i.e. "
                                         "24*4*B*s*l*h^2*(1 + s/(6h) + V/(16*l*h)) / (step time * GPUs).")},
        derived={"method": "samples_per_s_times_seq"},
        notes=("Production training (not a benchmark): iteration 12695 at GBS 2048 after the batch-size ramp-up; MBS 2 "
               "(README: switched from MBS 1 to 2 at around GBS 784). Includes data loading and logging; eval and "
               "checkpointing happen in separate iterations."),
    )]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", type=Path, required=True, help="folder with the source files named in RAW_FILES")
    args = ap.parse_args()
    runs = (llm_foundry(args.raw) + nemo(args.raw) + megatron_bridge(args.raw) + megatron_readme() + megatron_papers()
            + torchtitan(args.raw) + bloom())
    data = {"schema": SCHEMA, "runs": runs}
    OUT.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {len(runs)} raw runs to {OUT}")


if __name__ == "__main__":
    main()
