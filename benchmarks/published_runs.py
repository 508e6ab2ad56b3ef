"""Published multi-GPU training runs, predicted: throughput per GPU and whether the run fits.

    python benchmarks/published_runs.py            # the table, summaries and leave-one-source-out
    python benchmarks/published_runs.py --engine eager --out benchmarks/results/published_runs_eager.md

Every run in benchmarks/published_runs.json (375 runs, 8 sources; see published_runs_sources.md) is planned
with ``costmodel.plans.plan_training`` at its published layout (dp, tp, pp, cp, ep, ZeRO/FSDP stage,
micro-batch, activation checkpointing), global batch, sequence and precision, on its GPU, with the
training engine profile of its framework (``--engine auto``: llm-foundry / torchtitan -> ``fsdp``,
Megatron-LM / NeMo / Megatron-Bridge -> ``megatron``; the 2021-2022 Megatron runs (Narayanan et al. 2021,
Korthikanti et al. 2022, BLOOM), published before Megatron used flash attention, -> ``megatron-unfused``)
or the one given. Predicted
tokens/s per GPU = tokens per optimizer step / step time / GPUs, against the published number
(``derived.tokens_per_s_per_gpu``).

Leave-one-source-out (LOSO): the engine profiles have a few fitted constants (``costmodel.engines.FITTED``).
For each source, they are refitted on the runs of the other sources only (a coarse grid search of the
median absolute log error) and that source's runs are predicted with them: the LOSO column is
out-of-sample. NVIDIA's Megatron-family sources (narayanan2021, korthikanti2022, megatron-lm-h100-2024,
nemo-perf-summary, megatron-bridge-perf) share code and hardware; the report also groups them as one
source ("nvidia-megatron") for a stricter hold-out.

Mapping of the published fields (stated here, used for every run):
- precision: bf16 / 16bit-mixed -> amp-bf16 (fp32 master weights, bf16 matmuls); fp8, fp8-rowwise, mxfp8 ->
  fp8 (fp8 GEMMs, bf16 elsewhere); nvfp4 -> nvfp4 (fp4 GEMMs).
- sharding: fsdp_full_shard / zero3 -> ZeRO-3; zero2 -> 2; zero1 -> 1; none -> 0; not stated: Megatron's
  distributed optimizer (ZeRO-1) for the Megatron family, else 0.
- micro-batch not stated -> 1, except torchtitan with pipeline parallelism: each data-parallel rank's batch split
  into pp micro-batches, and an interleaved schedule with 2 stages per rank (its defaults,
  ``pipeline_split_of``); checkpointing: full -> on; selective in torchtitan -> "selective" (its per-op
  policy, ``selective_ac_option = "op"`` in the 8B configs: matmul and attention outputs kept, every second
  matmul and the elementwise ops recomputed; ``costmodel.ledger.selective_checkpoint``); selective in Megatron
  (Korthikanti et al. 2022) -> off (it re-runs only the attention core, which flash attention recomputes
  anyway); not stated -> off if the plan fits, else on (the run did run: a recipe that does not fit without
  recomputation used it).
- context beyond the model config's positions (torchtitan's 32k-262k Llama 3.1 runs on the llama-3-8b preset's
  8,192): the config's limit is raised to the run's sequence (the run did run; rotary models take any length).
- engine settings the run states: torchtitan runs without "torch.compile" -> ``fsdp-eager`` (elementwise ops
  unfused); "AsyncTP" -> tensor-parallel collectives overlapped (the fitted ``tp_overlap``), vanilla TP not.
- hardware: gb200 -> gb200-nvl72-186gb, gb300 -> gb300-nvl72-279gb; torchtitan's "H100 96GB HBM2e at 500 W"
  -> an H100 SXM record with 96 GiB, 2.4 TB/s and 0.92x the dense peaks ("between SXM and NVL", the doc's
  footnote: NVL's 835 vs SXM's 989 TFLOP/s bf16, midpoint).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.engines import ENGINES  # noqa: E402
from costmodel.errors import InputError  # noqa: E402
from costmodel.models import get_preset, load_model  # noqa: E402
from costmodel.parallel import Layout  # noqa: E402
from costmodel.plans import plan_training  # noqa: E402

DATA = ROOT / "benchmarks" / "published_runs.json"
MEGATRON_FAMILY = {"narayanan2021", "korthikanti2022", "megatron-lm-h100-2024", "nemo-perf-summary",
                   "megatron-bridge-perf", "bigscience-bloom"}
HW_MAP = {"gb200": "gb200-nvl72-186gb", "gb300": "gb300-nvl72-279gb"}
PRECISION = {"bf16": "amp-bf16", "16bit-mixed": "amp-bf16", "fp16": "amp-fp16", "fp8": "fp8", "fp8-rowwise": "fp8",
             "mxfp8": "fp8", "nvfp4": "nvfp4"}
ZERO = {"fsdp_full_shard": 3, "zero3": 3, "fsdp_hybrid": 3, "zero2": 2, "zero1": 1, "none": 0}
MEGATRON_FRAMEWORKS = {"megatron-lm", "nemo", "megatron-bridge", "megatron-deepspeed"}


def hardware(run: dict):
    hid = run["hardware"]["id"]
    if hid == "h100-96gb-hbm2e-500w":
        h = load_hardware("h100-sxm-80gb")
        return replace(h, id="h100-96gb-hbm2e-500w", memory_bytes=96 * 2**30, memory_bandwidth_bytes_per_s=2.4e12,
                       peak_flops_per_s={k: v * 0.92 for k, v in h.peak_flops_per_s.items()}, tdp_w=500,
                       name="H100 96GB HBM2e, 500 W (Grand Teton)")
    return load_hardware(HW_MAP.get(hid, hid))


# runs published before flash attention reached Megatron (FlashAttention: May 2022; Megatron-LM adopted it in 2023)
UNFUSED_ATTENTION_SOURCES = {"narayanan2021", "korthikanti2022", "bigscience-bloom"}


def engine_of(run: dict, engine: str):
    """The engine profile of a run's framework, with the settings the run states: torchtitan without
    torch.compile -> ``fsdp-eager``; AsyncTP (torchtitan) -> tensor-parallel collectives overlapped."""
    if engine != "auto":
        return engine
    if run["source_key"] in UNFUSED_ATTENTION_SOURCES:
        return "megatron-unfused"
    if run["framework"] in MEGATRON_FRAMEWORKS:
        return "megatron"
    settings = run.get("other_settings") or []
    name = "fsdp-eager" if run["framework"] == "torchtitan" and "torch.compile" not in settings else "fsdp"
    if "AsyncTP" in settings:
        return replace(ENGINES[name], name=name + "+async-tp", tp_overlap=True)
    return name


def pipeline_split_of(run: dict) -> tuple[int, int]:
    """(micro-batch, virtual stages per rank) as published, else the framework's defaults: torchtitan splits each
    data-parallel rank's batch into as many pipeline micro-batches as there are pipeline ranks
    (``pipeline_parallel_microbatches or parallel_dims.pp``) and gives an interleaved (multi-stage) schedule two
    stages per rank (``generate_split_points``); elsewhere micro-batch 1, one stage per rank."""
    lay = run["layout"]
    mb, vp = lay["micro_batch"], lay.get("vp")
    if run["framework"] == "torchtitan" and lay["pp"] > 1:
        if mb is None:
            mb = max(1, run["global_batch"] // lay["dp"] // lay["pp"])
        if vp is None and any("Interleaved" in x for x in run.get("other_settings") or []):
            vp = 2
    return mb or 1, vp or 1


def checkpointing_of(run: dict):
    """The published checkpointing setting as costmodel's (the mapping in the module docstring)."""
    ck = run["layout"]["grad_checkpointing"]
    if ck == "selective":
        return "selective" if run["framework"] == "torchtitan" else False
    return ck == "full"


def plan_run(run: dict, engine: str = "auto", engine_params: dict | None = None, time_source: str = "roofline"):
    """The costmodel plan of one published run (raises InputError when a field cannot be modelled)."""
    lay = run["layout"]
    sharding = lay["sharding"]
    zero = ZERO[sharding] if sharding is not None else (1 if run["framework"] in MEGATRON_FRAMEWORKS else 0)
    dp = lay["dp"]
    micro_batch, vp = pipeline_split_of(run)
    layout = Layout(dp=dp, tp=lay["tp"], pp=lay["pp"], cp=lay["cp"] or 1, ep=lay["ep"] or 1,
                    zero=zero if dp * (lay["cp"] or 1) > 1 else 0, micro_batch=micro_batch,
                    grad_checkpointing=checkpointing_of(run), vp=vp)
    model = run["model"]["preset"] or run["model"]["config"]
    spec = load_model(model)
    limit = getattr(spec, "max_positions", 0)
    if limit and run["seq"] > limit:  # the run trained at that length: a rotary model runs beyond its config's
        cfg = dict(get_preset(model).config if isinstance(model, str) else model)  # trained context
        cfg["max_position_embeddings"] = run["seq"]
        spec = load_model(cfg)
    workload = {"seq": run["seq"], "precision": PRECISION[run["precision"]]}
    kw = {"time_source": time_source}
    eng = engine_of(run, engine)
    if eng != "default":
        kw["engine"] = eng
    if engine_params:
        kw["engine_params"] = engine_params
    hw = hardware(run)
    plan = plan_training(spec, hw, workload=workload, layout=layout, tokens=1e10, global_batch=run["global_batch"], **kw)
    if lay["grad_checkpointing"] is None and not plan.step.fits:
        plan = plan_training(spec, hw, workload=workload, layout=replace(layout, grad_checkpointing=True), tokens=1e10,
                             global_batch=run["global_batch"], **kw)
    return plan


def predict(run: dict, engine: str = "auto", engine_params: dict | None = None, time_source: str = "roofline") -> dict:
    plan = plan_run(run, engine, engine_params, time_source)
    s = plan.step
    tps = s.tokens_per_step / s.step_s / plan.num_devices
    return {"tokens_per_s_per_gpu": tps, "fits": s.fits, "step_s": s.step_s, "mfu": s.mfu,
            "device_total_gib": s.memory_bytes.device_total / 2**30, "exposed_comm_s": s.exposed_comm_s,
            "compute_s": s.compute_s}


GRIDS = {
    "gemm_scale_ampere": [0.6 + 0.05 * i for i in range(10)],
    "gemm_scale_hopper": [0.5 + 0.05 * i for i in range(12)],
    "gemm_scale_blackwell": [0.5 + 0.05 * i for i in range(12)],
    "megatron_gemm_factor": [0.8 + 0.05 * i for i in range(9)],
    "legacy_gemm_factor": [0.7 + 0.05 * i for i in range(8)],
    "attention_scale": [0.3 + 0.1 * i for i in range(12)],
    "dp_overlap": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
    "tp_overlap": [0.0, 0.2, 0.4, 0.6, 0.8],
    "network_efficiency": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
}


def _loss(runs: list[dict], params: dict, time_source: str = "roofline") -> float:
    """Mean absolute log error of tokens/s per GPU, each run's term capped at log 2 (one wild run cannot
    drag the fit), runs that cannot be modelled skipped."""
    errs = []
    for r in runs:
        try:
            p = predict(r, "auto", params, time_source)["tokens_per_s_per_gpu"]
        except InputError:
            continue
        errs.append(min(abs(math.log(p / r["derived"]["tokens_per_s_per_gpu"])), math.log(2)))
    return sum(errs) / len(errs) if errs else float("inf")


def fit(runs: list[dict], passes: int = 2, time_source: str = "roofline") -> dict:
    """Coordinate descent of the engines' fitted constants over ``GRIDS`` (a parameter a source set cannot
    move, e.g. the Blackwell GEMM scale without Blackwell runs, keeps its default)."""
    from costmodel.engines import fitted

    params = fitted(None, time_source)
    best = _loss(runs, params, time_source)
    for _ in range(passes):
        for name, grid in GRIDS.items():
            for v in grid:
                trial = {**params, name: v}
                loss = _loss(runs, trial, time_source)
                if loss < best - 1e-9:
                    best, params = loss, trial
    return {k: round(v, 3) for k, v in params.items()}


def source_groups(runs: list[dict], merge_megatron: bool) -> dict[str, set]:
    """Held-out groups: each source alone, or NVIDIA's Megatron-family sources as one group."""
    keys = sorted({r["source_key"] for r in runs})
    if not merge_megatron:
        return {k: {k} for k in keys}
    out = {k: {k} for k in keys if k not in MEGATRON_FAMILY}
    out["nvidia-megatron (all Megatron-family sources)"] = {k for k in keys if k in MEGATRON_FAMILY}
    return out


def band(n: int) -> str:
    return "<=8" if n <= 8 else "9-64" if n <= 64 else "65-512" if n <= 512 else ">512"


def summarise(rows: list[dict], key, label: str, col: str = "err") -> list[str]:
    groups = collections.defaultdict(list)
    for r in rows:
        groups[key(r)].append(r)
    out = [f"\n### By {label}\n", f"| {label} | runs | within +-15% | median abs error | median error |",
           "|---|---|---|---|---|"]
    for k in sorted(groups, key=str):
        g = [r for r in groups[k] if r.get(col) is not None]
        if not g:
            continue
        within = sum(abs(r[col]) <= 0.15 for r in g)
        out.append(f"| {k} | {len(g)} | {within} ({within / len(g):.0%}) | "
                   f"{statistics.median(abs(r[col]) for r in g):.1%} | {statistics.median(r[col] for r in g):+.1%} |")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--engine", default="auto", help="auto | default | eager | compiled | fsdp | megatron")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-source-out refits")
    ap.add_argument("--out", default=None, help="also write the report to this Markdown file")
    ap.add_argument("--time-source", default="roofline", help="roofline (GEMMs at the fitted curves) | measured "
                    "(each GEMM from the device's aiconfigurator-core table; runs on devices without one: n/a)")
    ap.add_argument("--rows-out", default=None, help="write every run's predictions (and LOSO) as JSON here")
    a = ap.parse_args(argv)
    ts = a.time_source
    runs = json.loads(DATA.read_text(encoding="utf-8"))["runs"]
    rows = []
    for r in runs:
        pub = r["derived"]["tokens_per_s_per_gpu"]
        row = {"id": r["id"], "source": r["source_key"], "gpu": r["hardware"]["id"], "precision": r["precision"],
               "gpus": r["hardware"]["num_gpus"], "published": pub}
        try:
            p = predict(r, a.engine, None, ts)
        except InputError as err:
            row.update(error=str(err), err=None, fits=None)
        else:
            row.update(predicted=p["tokens_per_s_per_gpu"], err=p["tokens_per_s_per_gpu"] / pub - 1, fits=p["fits"],
                       gib=p["device_total_gib"], exposed=p["exposed_comm_s"], step=p["step_s"])
        rows.append(row)
    fit_note = []
    if not a.no_loso and a.engine == "auto":
        modelled = [r for r, row in zip(runs, rows) if row.get("err") is not None]
        full = fit(modelled, time_source=ts)
        fit_note.append("Fitted on every run (the shipped constants should equal these): "
                        + ", ".join(f"{k} {v:g}" for k, v in full.items()))
        for group_name, groups in (("loso", source_groups(runs, merge_megatron=False)),
                                   ("loso_nvidia", source_groups(runs, merge_megatron=True))):
            for held, members in groups.items():
                params = fit([r for r in modelled if r["source_key"] not in members], time_source=ts)
                fit_note.append(f"without {held}: " + ", ".join(f"{k} {v:g}" for k, v in params.items()))
                for r, row in zip(runs, rows):
                    if r["source_key"] in members and row.get("err") is not None:
                        try:
                            row[group_name] = predict(r, a.engine, params, ts)["tokens_per_s_per_gpu"] / row["published"] - 1
                        except InputError:
                            pass
    lines = report(rows, a.engine, ts) + (["\n### Fitted constants\n"] + [f"- {n}" for n in fit_note] if fit_note else [])
    if a.rows_out:
        Path(a.rows_out).write_text(json.dumps({"time_source": ts, "engine": a.engine, "rows": rows}, indent=1) + "\n",
                                    encoding="utf-8")
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n", encoding="utf-8")
    return 0


def report(rows: list[dict], engine: str, time_source: str = "roofline") -> list[str]:
    ok = [r for r in rows if r.get("err") is not None]
    within = sum(abs(r["err"]) <= 0.15 for r in ok)
    not_fit = [r for r in ok if not r["fits"]]
    lines = [f"## Published training runs: predicted vs published tokens/s per GPU (engine {engine}, GEMMs: "
             f"{'measured tables' if time_source == 'measured' else 'fitted curves (analytic)'})\n",
             f"{len(rows)} runs, {len(ok)} predicted ({len(rows) - len(ok)} not modelled). "
             f"Within +-15%: **{within} ({within / len(ok):.0%})**, median |error| "
             f"{statistics.median(abs(r['err']) for r in ok):.1%}. Runs that ran but are predicted NOT to fit: "
             f"**{len(not_fit)}**."]
    loso = [r for r in ok if r.get("loso") is not None]
    if loso:
        lw = sum(abs(r["loso"]) <= 0.15 for r in loso)
        lines.append(f"Leave-one-source-out: within +-15% **{lw} ({lw / len(loso):.0%})**, median |error| "
                     f"{statistics.median(abs(r['loso']) for r in loso):.1%}.")
        ln = [r for r in ok if r.get("loso_nvidia") is not None]
        if ln:
            nw = sum(abs(r["loso_nvidia"]) <= 0.15 for r in ln)
            lines.append(f"Holding out all of NVIDIA's Megatron-family sources together: within +-15% **{nw} "
                         f"({nw / len(ln):.0%})**, median |error| {statistics.median(abs(r['loso_nvidia']) for r in ln):.1%}.")
    for key, label in ((lambda r: r["source"], "source"), (lambda r: r["gpu"], "GPU"),
                       (lambda r: band(r["gpus"]), "GPUs in the job"), (lambda r: r["precision"], "precision")):
        lines += summarise(ok, key, label)
        if loso:
            lines += summarise(loso, key, label + " (leave-one-source-out)", "loso")
    lines += ["\n### Every run\n", "| run | source | GPU | GPUs | precision | published | predicted | error | LOSO | "
              "LOSO (Megatron family together) | fits |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r.get("err") is None:
            lines.append(f"| {r['id']} | {r['source']} | {r['gpu']} | {r['gpus']} | {r['precision']} | "
                         f"{r['published']:,.0f} | not modelled: {r.get('error', '')[:80]} | | | | |")
            continue
        lo = f"{r['loso']:+.0%}" if r.get("loso") is not None else ""
        ln = f"{r['loso_nvidia']:+.0%}" if r.get("loso_nvidia") is not None else ""
        lines.append(f"| {r['id']} | {r['source']} | {r['gpu']} | {r['gpus']} | {r['precision']} | "
                     f"{r['published']:,.0f} | {r['predicted']:,.0f} | {r['err']:+.0%} | {lo} | {ln} | "
                     f"{'yes' if r['fits'] else '**NO**'} |")
    return lines


if __name__ == "__main__":
    sys.exit(main())
