"""Predict every supported published serving run (benchmarks/published_serving.json) with the engine profile
matching its source, and print predicted vs published per run and summarised by source, model, GPU, TP,
ISL/OSL band and TensorRT-LLM version group, with leave-one-source-out (LOSO) scores.

    python benchmarks/published_serving.py            # fit, score, print the report
    python benchmarks/published_serving.py --write    # ... and write benchmarks/results/published_serving.md
    python benchmarks/published_serving.py --no-fit   # score the profiles as shipped (no fitting)

What is predicted (costmodel.serving):
  offline runs (all requests queued)      offline_throughput: steady-state continuous batching
  closed loops (LMDeploy, NIM, vLLM blog) simulate(..., concurrency=c): c users, next request on completion
  online runs (TRT-LLM v0.14, Poisson)    simulate(poisson_requests(qps, 500, ...)); QPS INF: all at t = 0

What is fitted: the shared kernel parameters of the optimised engines (GEMM efficiency per compute dtype,
memory-bandwidth efficiency, flash-attention efficiency, link efficiency and latency of the all-reduce, host
time per iteration) by coordinate descent on the mean |log(predicted / published)| of the throughputs, with a
pull towards the documented priors (costmodel.serving.engines.OPTIMISED_PRIOR). "in-sample" fits on every
source; "LOSO" refits without the scored run's source (and, because the TensorRT-LLM perf overview is most of
the data, without its version group inside that source). Latencies are never fitted.

With costmodel[measured] installed the report gains a "with measured tables" column: the same runs and engine
mapping with every op priced from aiconfigurator-core's tables where the run's device and backend have them
(benchmarks/published_serving_measured.py; --no-measured skips it).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.errors import InputError  # noqa: E402
from costmodel.models import load_model  # noqa: E402
from costmodel.serving.batching.offline import offline_throughput  # noqa: E402
from costmodel.serving.engines import OPTIMISED_KERNELS, OPTIMISED_PRIOR, get_engine  # noqa: E402
from costmodel.serving.model import Layout, StepModel  # noqa: E402
from costmodel.serving.simulate import Requests, poisson_requests, simulate  # noqa: E402

DATA = ROOT / "benchmarks" / "published_serving.json"
OUT = ROOT / "benchmarks" / "results" / "published_serving.md"
HW_LOCAL = ROOT / "benchmarks" / "hardware"

# ids the truth base introduced (published_serving.json "new_hardware_ids") -> a catalog record or a
# benchmark-local record (benchmarks/hardware/*.json, sources inside)
HARDWARE = {"a100-80gb": "a100-sxm-80gb",  # "A100-80G": the 8-GPU LMDeploy server is an SXM HGX box
            "h100-80gb": "h100-sxm-80gb",  # NIM "2 x H100 80G" and the vLLM blog's H100: taken as SXM
            "gb200": "gb200-nvl72-186gb",
            "gh200": str(HW_LOCAL / "gh200.json"),
            "rtx-pro-6000-blackwell-server": str(HW_LOCAL / "rtx-pro-6000-blackwell-server.json")}

# the engine profile matching each source, with what the source states about its settings
SOURCE_ENGINE = {
    "trtllm-perf-overview": ("tensorrt-llm", {"kv_memory_fraction": 0.95},
                             "kv_cache_free_gpu_mem_fraction 0.95 ('in the majority of cases')"),
    "nvidia-nim-benchmarking": ("tensorrt-llm", {}, "NIM's TensorRT-LLM backend assumed (the page does not say)"),
    "lmdeploy-benchmark": ("lmdeploy", {}, "TurboMind persistent batch"),
    "vllm-blog-fp8-kv-cache": ("vllm", {}, "vLLM, FlashAttention-3"),
}
FIT_PARAMS = ("matmul", "matmul_fp8", "matmul_fp4", "bandwidth", "attention", "link_efficiency",
              "allreduce_latency_s", "iteration_overhead_s", "layer_overhead_s")
LIMITS = {"allreduce_latency_s": (0.5e-6, 200e-6), "iteration_overhead_s": (1e-5, 0.05),
          "layer_overhead_s": (0.0, 500e-6)}
PRIOR_WEIGHT = 0.02  # objective += weight x sum(log(theta / prior)^2)
CLOSED_LOOP_ROUNDS = 8  # requests per user in closed loops whose request count is not published
FIT_ROUNDS = 3  # the same while fitting (throughput barely depends on it; latencies are reported with 8)


def group(r: dict) -> str:
    """Source, and for the TRT-LLM perf overview its version group (record id prefix)."""
    return r["id"].split("/")[0]


@dataclass
class Case:
    r: dict
    spec: object
    hw: object
    weights: str
    kv: str | None
    kv_note: str
    layout: Layout
    kind: str  # offline | closed | online
    engine_name: str
    engine_over: dict

    def step_model(self, kernels: dict) -> StepModel:
        eng = get_engine(self.engine_name).with_(**{**kernels, **self.engine_over})
        return StepModel(self.spec, self.hw, precision=self.weights, kv_cache_precision=self.kv, engine=eng,
                         layout=self.layout)


def layout_of(r: dict) -> Layout:
    """The record's parallel layout: TRT-LLM's DEP (``--tp N --ep N`` with attention data parallelism) is N
    attention-DP ranks whose experts are split N ways; TP x EP without it splits the experts inside the TP group."""
    tp, pp, ep = r["tp"], r["pp"], r.get("ep") or 1
    if ep > 1 and (r.get("engine_settings") or {}).get("enable_attention_dp"):
        return Layout(tp=1, pp=pp, ep=ep, attention_dp=True)
    return Layout(tp=tp, pp=pp, ep=ep if ep > 1 and tp % ep == 0 else 1)


def load_cases():
    data = json.loads(DATA.read_text(encoding="utf-8"))
    cases, skipped = [], defaultdict(int)
    specs = {}
    for r in data["records"]:
        # ``supported_today`` records what costmodel imported when the record was built; the 2026 decoders
        # (qwen3_moe, llama4_text, deepseek_v3, gpt_oss) import now, from the record's published config fields
        m = r["model"].get("preset") or dict(r["model"]["config"], _name_or_path=r["model"]["key"])
        key = r["model"]["key"]
        if key not in specs:
            try:
                specs[key] = load_model(m)
            except InputError:
                specs[key] = None
        if specs[key] is None:
            skipped[r["source_key"]] += 1
            continue
        try:
            hw = load_hardware(HARDWARE.get(r["hardware"], r["hardware"]))
        except InputError:  # a device with no hardware record (Intel Arc Pro B60)
            skipped[r["source_key"]] += 1
            continue
        w = r["precision"]["weights"]
        kv = r["precision"]["kv_cache"]
        if kv and " " in kv:  # "fp8 (sliding-window layers kept in bf16)": the full layers' format, the larger cache
            kv = kv.split()[0]
        note = "published"
        if kv is None:
            kv = "fp8" if w in ("fp8", "fp4") else None
            note = ("not published: fp8 assumed (NVIDIA's ModelOpt FP8/FP4 checkpoints quantize the KV cache to "
                    "FP8)" if kv else "not published: 16-bit assumed")
        wl = r["workload"]
        if wl["mode"] == "offline" and wl["concurrency"] is None:
            kind = "offline"
        elif wl["concurrency"] is not None:
            kind = "closed"
        else:
            kind = "online"
        name, over, _ = SOURCE_ENGINE[r["source_key"]]
        cases.append(Case(r, specs[key], hw, w, kv, note, layout_of(r), kind, name, over))
    return cases, dict(skipped)


def _closed_requests(r: dict, n: int) -> Requests:
    wl = r["workload"]
    spread = 0.15 if wl["input_tokens_fixed"] is False else 0.0
    rng = np.random.default_rng(7)
    isl = np.full(n, wl["input_tokens"], dtype=np.int64)
    osl = np.full(n, wl["output_tokens"], dtype=np.int64)
    if spread:
        isl = np.rint(isl * (1 + spread * (2 * rng.random(n) - 1))).astype(np.int64)
        osl = np.rint(osl * (1 + spread * (2 * rng.random(n) - 1))).astype(np.int64)
    return Requests(np.zeros(n), isl, osl)


def predict(c: Case, kernels: dict, throughput_only: bool = False) -> dict:
    """Predicted metrics under the published metric names (only those the record publishes)."""
    r, wl = c.r, c.r["workload"]
    sm = c.step_model(kernels)
    isl, osl = wl["input_tokens"], wl["output_tokens"]
    if c.kind == "offline":
        res = offline_throughput(sm, isl, osl, num_requests=wl["num_requests"])
        return {"output_tokens_per_s": res.output_tokens_per_s * r["dp_replicas"]}
    if c.kind == "closed":
        conc = wl["concurrency"]
        rounds = FIT_ROUNDS if throughput_only else CLOSED_LOOP_ROUNDS
        n = wl["num_requests"] or max(rounds * conc, 20)
        sim = simulate(sm, _closed_requests(r, n), concurrency=conc)
    else:
        rate = wl["request_rate_per_s"] if not wl["request_rate_infinite"] else math.inf
        sim = simulate(sm, poisson_requests(rate, wl["num_requests"] or 500, isl, osl, seed=11))
    out = {"output_tokens_per_s": sim.output_tokens_per_s * r["dp_replicas"]}
    if throughput_only:
        return out
    pub = r["published"]
    stat = {"mean": lambda m: float(np.nanmean(getattr(sim, m))), "p50": lambda m: sim.percentile(m, 50),
            "p99": lambda m: sim.percentile(m, 99), "p75": lambda m: sim.percentile(m, 75),
            "p95": lambda m: sim.percentile(m, 95), "unstated_stat": lambda m: float(np.nanmean(getattr(sim, m)))}
    for key in pub:
        parts = key.split("_")
        if key.startswith(("ttft_", "itl_", "tpot_", "token_latency_")):
            metric = "ttft_s" if key.startswith("ttft") else "tpot_s"
            st = "unstated_stat" if key.endswith("unstated_stat") else parts[-1]
            if st in ("min", "max") or st not in stat:
                continue
            unit = 1e3 if "_ms_" in key else 1.0
            out[key] = stat[st](metric) * unit
        elif key == "requests_per_s":
            out[key] = sim.requests_per_s * r["dp_replicas"]
        elif key == "total_tokens_per_s":
            out[key] = (sim.requests_per_s * isl + sim.output_tokens_per_s) * r["dp_replicas"]
    return out


def published_value(r: dict, key: str) -> float:
    if key == "output_tokens_per_s":
        return float(r["derived"]["output_tokens_per_s"])
    return float(r["published"][key])


def fit_cases(cases):
    """The runs whose throughput enters the fit: offline and closed-loop runs (an open-loop run below
    saturation just returns its offered load, so it carries no information about the kernels)."""
    return [c for c in cases if c.kind != "online"]


def objective(cases, kernels) -> float:
    errs = []
    for c in cases:
        try:
            p = predict(c, kernels, throughput_only=True)["output_tokens_per_s"]
        except Exception:  # noqa: BLE001 - an unfit layout counts as a large miss
            p = 0.0
        pub = published_value(c.r, "output_tokens_per_s")
        errs.append(abs(math.log(max(p, 1e-9) / pub)) if p > 0 else 3.0)
    reg = sum(math.log(kernels[k] / OPTIMISED_PRIOR[k]) ** 2 for k in FIT_PARAMS)
    return statistics.fmean(errs) + PRIOR_WEIGHT * reg


def _clip(k: str, v: float) -> float:
    lo, hi = LIMITS.get(k, (0.05, 0.98))
    return min(max(v, lo), hi)


def fit(cases, start: dict | None = None, log=print) -> dict:
    """Coordinate descent in log space from the priors (never from another fit: a leave-out fit must not start
    from values the held-out runs shaped); multiplicative steps shrink when nothing improves. Parameters no fitted
    run depends on (fp4 GEMMs without fp4 runs, links without TP) stay at their priors."""
    cases = fit_cases(cases)
    theta = {k: (start or OPTIMISED_PRIOR)[k] for k in FIT_PARAMS}
    theta = {**OPTIMISED_PRIOR, **theta}
    # only parameters some fitted run depends on move (fp4 without fp4 runs stays at its prior)
    used = set(FIT_PARAMS)
    dts = {c.step_model(theta).prec.compute_dtype for c in cases}
    if "fp4" not in dts:
        used.discard("matmul_fp4")
    if not dts & {"fp8", "int8"}:
        used.discard("matmul_fp8")
    if not dts & {"bf16", "fp16"}:
        used.discard("matmul")
    if all(c.layout.tp == 1 for c in cases):
        used -= {"link_efficiency", "allreduce_latency_s"}
    best = objective(cases, theta)
    step = 0.2
    while step > 0.02:
        improved = False
        for k in FIT_PARAMS:
            if k not in used:
                continue
            for f in (1 + step, 1 / (1 + step)):
                trial = {**theta, k: _clip(k, theta[k] * f)}
                if trial[k] == theta[k]:
                    continue
                val = objective(cases, trial)
                if val < best - 1e-6:
                    theta, best, improved = trial, val, True
        if not improved:
            step /= 2
    log(f"  fit on {len(cases)} runs: objective {best:.4f}; " +
        ", ".join(f"{k}={theta[k]:.3g}" for k in FIT_PARAMS))
    return theta


# ---- reporting -------------------------------------------------------------------------------------------------
def band(r) -> str:
    i, o = r["workload"]["input_tokens"], r["workload"]["output_tokens"]
    ib = "short-in" if i <= 256 else ("mid-in" if i <= 2048 else "long-in")
    ob = "short-out" if o <= 256 else ("mid-out" if o <= 2048 else "long-out")
    return f"{ib}/{ob}"


def summarise(errs) -> str:
    e = [x for x in errs if x is not None and math.isfinite(x)]
    if not e:
        return "| 0 | | | |"
    within = sum(abs(x) <= 0.20 for x in e) / len(e)
    within25 = sum(abs(x) <= 0.25 for x in e) / len(e)
    return f"| {len(e)} | {within:.0%} | {within25:.0%} | {statistics.median(e):+.1%} | " \
           f"{statistics.median([abs(x) for x in e]):.1%} |"


def table(rows, keyf, title, metric="output_tokens_per_s", col="err_fit"):
    out = [f"\n### {title}\n", "| group | n | within ±20% | within ±25% | median error | median abs error |",
           "|---|---|---|---|---|---|"]
    g = defaultdict(list)
    for row in rows:
        if metric in row["pred"]:
            g[keyf(row["case"].r)].append(row[col].get(metric))
    for k in sorted(g, key=str):
        out.append(f"| {k} " + summarise(g[k]))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--write", action="store_true", help=f"write {OUT.relative_to(ROOT)}")
    ap.add_argument("--no-fit", action="store_true", help="score the shipped profiles, fit nothing")
    ap.add_argument("--no-loso", action="store_true", help="skip the leave-one-out refits")
    ap.add_argument("--no-measured", action="store_true", help="skip the 'with measured tables' column")
    a = ap.parse_args(argv)
    t0 = time.time()
    cases, skipped = load_cases()
    print(f"{len(cases)} supported runs; skipped (model or device not importable): {sum(skipped.values())} {skipped}")
    shipped = {k: OPTIMISED_KERNELS[k] for k in OPTIMISED_PRIOR}
    fits = {}
    if a.no_fit:
        full = shipped
    else:
        print("fitting on all sources (in-sample):")
        full = fit(cases)
    fits["all"] = full
    loso = {}
    if not a.no_fit and not a.no_loso:
        sources = sorted({c.r["source_key"] for c in cases})
        groups = sorted({group(c.r) for c in cases if c.r["source_key"] == "trtllm-perf-overview"})
        for s in sources:
            print(f"leave out source {s}:")
            loso[("source", s)] = fit([c for c in cases if c.r["source_key"] != s])
        for gname in groups:
            if not [c for c in fit_cases(cases) if group(c.r) == gname]:
                loso[("group", gname)] = full  # its runs never enter a fit (open-loop): in-sample is out-of-sample
                continue
            print(f"leave out TRT-LLM version group {gname}:")
            loso[("group", gname)] = fit([c for c in cases if group(c.r) != gname])
    rows = []
    for c in cases:
        pub_keys = ["output_tokens_per_s"] + [k for k in c.r["published"] if k.startswith(
            ("ttft_", "itl_", "tpot_", "token_latency_")) and not k.endswith(("_min", "_max", "_p75", "_p95"))]
        pred = predict(c, full)
        row = {"case": c, "pred": pred, "err_fit": {}, "err_src": {}, "err_grp": {}}
        for k in pub_keys:
            if k in pred:
                row["err_fit"][k] = pred[k] / published_value(c.r, k) - 1
        if loso:
            p_src = predict(c, loso[("source", c.r["source_key"])], throughput_only=True)
            row["err_src"]["output_tokens_per_s"] = p_src["output_tokens_per_s"] / published_value(
                c.r, "output_tokens_per_s") - 1
            if ("group", group(c.r)) in loso:
                p_grp = predict(c, loso[("group", group(c.r))], throughput_only=True)
                row["err_grp"]["output_tokens_per_s"] = p_grp["output_tokens_per_s"] / published_value(
                    c.r, "output_tokens_per_s") - 1
        rows.append(row)
    measured = None
    if not a.no_measured:
        from costmodel.measured import available

        if available():
            import published_serving_measured as psm

            measured = psm.run(cases, sys.modules[__name__], loso=not a.no_loso)
            for row in rows:
                m = measured["rows"].get(row["case"].r["id"])
                pub = published_value(row["case"].r, "output_tokens_per_s")
                row["err_meas"] = {k: v / pub - 1 for k, v in m.items()} if m else None
        else:
            print("costmodel[measured] is not installed: no 'with measured tables' column")
    lines = report(rows, cases, skipped, fits, loso, time.time() - t0, measured)
    text = "\n".join(lines) + "\n"
    print(text)
    if a.write:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text, encoding="utf-8")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


def report(rows, cases, skipped, fits, loso, seconds, measured=None) -> list[str]:
    L = ["# Published serving runs: predicted vs published",
         "",
         "Generated by `python benchmarks/published_serving.py --write` (costmodel.serving; truth base "
         "benchmarks/published_serving.json, sources in benchmarks/published_serving_sources.md). "
         f"{len(cases)} runs predicted; {sum(skipped.values())} skipped because their model or device has no "
         f"importable record ({', '.join(f'{k} {v}' for k, v in sorted(skipped.items()))}). Runtime {seconds:.0f} s.",
         "",
         "Error = predicted / published - 1. *in-sample*: kernel parameters fitted on every source; *LOSO*: refitted "
         "without the run's source; *LOGO*: refitted without the run's TensorRT-LLM version group (the perf "
         "overview is most of the data). Latencies are predicted by the simulator and never fitted.",
         "", "## Fitted kernel parameters (shared by the optimised engine profiles)", "",
         "| fit | " + " | ".join(FIT_PARAMS) + " |", "|---|" + "---|" * len(FIT_PARAMS),
         "| prior | " + " | ".join(f"{OPTIMISED_PRIOR[k]:.3g}" for k in FIT_PARAMS) + " |"]
    for name, th in [("all sources", fits["all"])] + [(f"without {k[0]} {k[1]}", v) for k, v in loso.items()]:
        L.append(f"| {name} | " + " | ".join(f"{th[k]:.3g}" for k in FIT_PARAMS) + " |")
    off = [r for r in rows if r["case"].kind == "offline" or r["case"].r["workload"]["mode"] == "offline"]
    L += ["", "## Throughput (output tokens/s)", "",
          "| runs | n | within ±20% | within ±25% | median error | median abs error |", "|---|---|---|---|---|---|"]
    for name, sel, col in [("offline, in-sample", off, "err_fit"), ("offline, LOSO", off, "err_src"),
                           ("offline, LOGO (TRT version group)", off, "err_grp"),
                           ("all, in-sample", rows, "err_fit"), ("all, LOSO", rows, "err_src")]:
        L.append(f"| {name} " + summarise([r[col].get("output_tokens_per_s") for r in sel]))
    for keyf, title in [(lambda r: r["source_key"], "by source"), (group, "by source / TRT-LLM version group"),
                        (lambda r: r["model"]["key"], "by model"), (lambda r: r["hardware"], "by GPU"),
                        (lambda r: f"tp{r['tp']} pp{r['pp']}", "by TP x PP"), (band, "by ISL/OSL band"),
                        (lambda r: r["precision"]["weights"], "by weight precision")]:
        L += table(rows, keyf, f"Throughput {title}, in-sample")
        if loso:
            L += table(rows, keyf, f"Throughput {title}, LOSO", col="err_src")
    if measured is not None:
        import published_serving_measured as psm

        L += psm.report(rows, measured, sys.modules[__name__])
    L += ["", "## Latencies (simulated; never fitted)", "",
          "| source | metric | n | within ±20% | within ±25% | median error | median abs error |",
          "|---|---|---|---|---|---|---|"]
    lat = defaultdict(list)
    for r in rows:
        for k, v in r["err_fit"].items():
            if k != "output_tokens_per_s":
                lat[(r["case"].r["source_key"], k)].append(v)
    for (s, k), v in sorted(lat.items()):
        L.append(f"| {s} | {k} " + summarise(v))
    L += ["", "## Every run", "",
          "| id | engine | kv | published tok/s | predicted | in-sample | LOSO | LOGO | measured in-sample | "
          "measured LOSO | latencies (pred/pub) |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r["case"]
        pub = published_value(c.r, "output_tokens_per_s")
        lats = "; ".join(f"{k} {r['pred'][k]:.4g}/{published_value(c.r, k):.4g}" for k in r["err_fit"]
                         if k != "output_tokens_per_s")
        fmt = lambda d: f"{d['output_tokens_per_s']:+.0%}" if "output_tokens_per_s" in d else ""  # noqa: E731
        me = r.get("err_meas") or {}
        mfmt = lambda k: f"{me[k]:+.0%}" if k in me else "n/a"  # noqa: E731
        L.append(f"| {c.r['id']} | {c.engine_name} | {c.kv or '16-bit'} | {pub:,.0f} | "
                 f"{r['pred']['output_tokens_per_s']:,.0f} | {fmt(r['err_fit'])} | {fmt(r['err_src'])} | "
                 f"{fmt(r['err_grp'])} | {mfmt('in')} | {mfmt('src')} | {lats} |")
    return L


if __name__ == "__main__":
    raise SystemExit(main())
