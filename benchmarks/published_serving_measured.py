"""The "with measured tables" column of benchmarks/published_serving.py: the same runs and engine mapping,
each iteration priced from NVIDIA aiconfigurator-core's measured per-op tables (``time_source="measured"``,
costmodel.serving.measured_ops) where the run's device and backend have them; n/a elsewhere (LMDeploy has no
tables; GH200 has no system in aiconfigurator-core 0.12.0).

What is fitted on this path, and only this: the host time per iteration (``iteration_overhead_s``) and per layer
(``layer_overhead_s``), the part of an iteration no kernel table contains, by the same objective as the analytic
fit (mean |log(predicted / published)| + the same pull towards the same priors) over the offline runs with
tables. Ops without a table (elementwise, pipeline sends, PCIe collectives, shapes outside every grid) use the
documented prior efficiencies (engines.OPTIMISED_PRIOR), never a fit. Leave-one-source-out and
leave-one-TRT-LLM-version-group-out refit the host time without the held-out runs. An offline run's throughput
is K / (t_device + iteration_overhead + layers x layer_overhead) with K and t_device computed once (the device
time does not depend on the host parameters; checked against a full prediction), so a fit takes milliseconds.
Closed-loop and online runs are simulated with each fold's host time, never fitted on.
"""

from __future__ import annotations

import math
import statistics
import time

from costmodel.serving.batching.offline import offline_throughput
from costmodel.serving.engines import OPTIMISED_PRIOR, get_engine
from costmodel.serving.measured_ops import measured_tables

HOST_PARAMS = ("iteration_overhead_s", "layer_overhead_s")


def has_tables(case) -> bool:
    found, _ = measured_tables(case.hw, get_engine(case.engine_name))
    return found is not None


def as_measured(case, ps):
    return ps.Case(**{**case.__dict__, "engine_over": {**case.engine_over, "time_source": "measured"}})


def prior_kernels() -> dict:
    """Kernel efficiencies of the ops no table covers (elementwise, pipeline sends, PCIe collectives, shapes
    outside every grid): the documented priors, never fitted, so no fold's device time depends on a fit."""
    return {k: v for k, v in OPTIMISED_PRIOR.items() if k not in HOST_PARAMS}


def device_parts(cases, ps, log=print) -> list[tuple]:
    """Per offline run with tables: (case, K, t_device, stage layers, {source: share of device seconds}), host
    parameters zero; the shares are those of every iteration the steady-state search priced."""
    zero = {**prior_kernels(), **{k: 0.0 for k in HOST_PARAMS}}
    out = []
    for i, c in enumerate(cases):
        if c.kind != "offline":
            continue
        sm = as_measured(c, ps).step_model(zero)
        wl = c.r["workload"]
        with sm.ops.recording() as rec:
            res = offline_throughput(sm, wl["input_tokens"], wl["output_tokens"], num_requests=wl["num_requests"])
        tot = [sum(v[j] for v in rec["seconds"].values()) for j in range(3)]
        share = {src: x / sum(tot) for src, x in zip(("table", "extrapolated", "roofline"), tot)} if sum(tot) else {}
        tok = res.output_tokens_per_s * c.r["dp_replicas"]
        t0 = res.iteration_s
        out.append((c, tok * t0 if tok > 0 and math.isfinite(t0) else 0.0, t0, sm.stage_layers, share))
        if (i + 1) % 100 == 0:
            log(f"  measured device time: {i + 1} of {len(cases)} runs")
    return out


def closed_form(part, host: dict) -> float:
    _, k, t0, layers, _ = part
    return k / (t0 + host["iteration_overhead_s"] + layers * host["layer_overhead_s"]) if k > 0 else 0.0


def fit_host_params(parts, ps, log=print) -> dict:
    """Coordinate descent in log space from the priors on the closed form (published_serving.fit's scheme)."""
    theta = {k: OPTIMISED_PRIOR[k] for k in HOST_PARAMS}
    if not parts:
        log("  measured host fit: no offline run with tables in this fold; priors kept")
        return theta

    def objective(th):
        errs = []
        for p in parts:
            pred = closed_form(p, th)
            pub = ps.published_value(p[0].r, "output_tokens_per_s")
            errs.append(abs(math.log(pred / pub)) if pred > 0 else 3.0)
        reg = sum(math.log(max(th[k], 1e-12) / OPTIMISED_PRIOR[k]) ** 2 for k in HOST_PARAMS)
        return statistics.fmean(errs) + ps.PRIOR_WEIGHT * reg

    best, step = objective(theta), 0.2
    while step > 0.005:
        improved = False
        for k in HOST_PARAMS:
            for f in (1 + step, 1 / (1 + step)):
                trial = {**theta, k: ps._clip(k, theta[k] * f)}
                val = objective(trial)
                if trial[k] != theta[k] and val < best - 1e-7:
                    theta, best, improved = trial, val, True
        if not improved:
            step /= 2
    log(f"  measured host fit on {len(parts)} runs: objective {best:.4f}; " +
        ", ".join(f"{k}={theta[k]:.3g}" for k in HOST_PARAMS))
    return theta


def predict_measured(c, host: dict, ps, parts_by_id: dict) -> float:
    """Throughput with measured tables: the closed form for offline runs, a simulation for the others."""
    if c.r["id"] in parts_by_id:
        return closed_form(parts_by_id[c.r["id"]], host)
    return ps.predict(as_measured(c, ps), {**prior_kernels(), **host}, throughput_only=True)["output_tokens_per_s"]


def shipped_host() -> dict:
    """The host parameters the engine profiles ship (the analytic fit's)."""
    from costmodel.serving.engines import OPTIMISED_KERNELS

    return {k: OPTIMISED_KERNELS[k] for k in HOST_PARAMS}


def folds_of(cases, ps) -> dict:
    """Leave-one-source-out and leave-one-TRT-LLM-version-group-out folds: {(kind, name): held-out ids}."""
    out = {}
    for s in sorted({c.r["source_key"] for c in cases}):
        out[("source", s)] = {c.r["id"] for c in cases if c.r["source_key"] == s}
    for g in sorted({ps.group(c.r) for c in cases if c.r["source_key"] == "trtllm-perf-overview"}):
        out[("group", g)] = {c.r["id"] for c in cases if ps.group(c.r) == g}
    return out


def run(cases, ps, fit_host: bool = True, loso: bool = True, log=print) -> dict:
    """Measured predictions in-sample ("in") and out-of-sample ("src": host fitted without the run's source,
    "grp": without its TRT-LLM version group) for every run with tables: {"rows": {id: {...}}, "fits": ...}."""
    eligible = [c for c in cases if has_tables(c)]
    log(f"with measured tables: {len(eligible)} of {len(cases)} runs have tables for their device and backend")
    t0 = time.time()
    parts = device_parts(eligible, ps, log)
    n_off = max(len(parts), 1)
    per_run_s = (time.time() - t0) / n_off
    by_id = {p[0].r["id"]: p for p in parts}
    check = next((p for p in parts if p[1] > 0), None)
    if check is not None:  # the closed form is the full prediction
        host = {"iteration_overhead_s": 1.3e-3, "layer_overhead_s": 21e-6}
        full = ps.predict(as_measured(check[0], ps), {**prior_kernels(), **host})["output_tokens_per_s"]
        assert abs(closed_form(check, host) / full - 1) < 1e-9, (closed_form(check, host), full)
    log("measured, all sources (in-sample):")
    host_fits = {"all": fit_host_params(parts, ps, log) if fit_host else shipped_host()}
    rows = {c.r["id"]: {"in": predict_measured(c, host_fits["all"], ps, by_id)} for c in eligible}
    if fit_host and loso:
        for key, held in folds_of(eligible, ps).items():
            log(f"measured, without {key[0]} {key[1]}:")
            host_fits[key] = th = fit_host_params([p for p in parts if p[0].r["id"] not in held], ps, log)
            col = "src" if key[0] == "source" else "grp"
            for c in eligible:
                if c.r["id"] in held:
                    same = th == host_fits["all"]
                    rows[c.r["id"]][col] = rows[c.r["id"]]["in"] if same else predict_measured(c, th, ps, by_id)
    shares = []
    for p in parts:
        if p[1] <= 0 or not p[4]:
            continue
        h = host_fits["all"]
        it = p[2] + h["iteration_overhead_s"] + p[3] * h["layer_overhead_s"]
        shares.append({**{k: v * p[2] / it for k, v in p[4].items()}, "host": 1 - p[2] / it})
    return {"rows": rows, "fits": host_fits, "seconds_per_run": per_run_s, "eligible": eligible,
            "shares": shares}


def _cell(errs) -> str:
    e = [x for x in errs if x is not None and math.isfinite(x)]
    if not e:
        return "n/a"
    return f"{sum(abs(x) <= 0.20 for x in e) / len(e):.0%} ({statistics.median(e):+.1%})"


def report(rows, measured, ps) -> list[str]:
    """The "with measured tables" section: both columns on the same runs, in-sample and out-of-sample."""
    sel = [r for r in rows if r.get("err_meas")]
    L = ["", "## With measured tables (aiconfigurator-core 0.12.0)", "",
         "The same runs and engine mapping with `time_source=\"measured\"`: every op of an iteration priced from "
         "NVIDIA aiconfigurator-core's measured per-op tables of the run's backend on its device "
         "(costmodel.serving.measured_ops; docs/serving.md, \"Measured tables\"), the roofline per op outside them "
         "at the documented prior efficiencies (never fitted). "
         f"{len(sel)} of {len(rows)} runs have tables (n/a: LMDeploy, which has none, and GH200, which "
         "aiconfigurator-core does not cover). Fitted on this path: only the host time per iteration and per "
         "layer (`benchmarks/published_serving_measured.py`), refitted for every left-out source and TRT-LLM "
         "version group like the analytic parameters. Cells: share within ±20% (median error).",
         "", "| fit | iteration_overhead_s | layer_overhead_s |", "|---|---|---|",
         "| prior | " + " | ".join(f"{OPTIMISED_PRIOR[k]:.3g}" for k in HOST_PARAMS) + " |"]
    for key, th in measured["fits"].items():
        name = "all sources" if key == "all" else f"without {key[0]} {key[1]}"
        L.append(f"| {name} | " + " | ".join(f"{th[k]:.3g}" for k in HOST_PARAMS) + " |")
    tp = "output_tokens_per_s"

    def line(name, rs):
        return (f"| {name} | {len(rs)} | {_cell([r['err_fit'].get(tp) for r in rs])} | "
                f"{_cell([r['err_src'].get(tp) for r in rs])} | {_cell([r['err_meas'].get('in') for r in rs])} | "
                f"{_cell([r['err_meas'].get('src') for r in rs])} | {_cell([r['err_grp'].get(tp) for r in rs])} | "
                f"{_cell([r['err_meas'].get('grp') for r in rs])} |")

    head = ["| runs | n | analytic in-sample | analytic LOSO | measured in-sample | measured LOSO | analytic LOGO | "
            "measured LOGO |", "|---|---|---|---|---|---|---|---|"]
    off = [r for r in sel if r["case"].kind == "offline"]
    L += ["", "### Throughput, runs with tables", ""] + head
    L.append(line("offline runs with tables", off))
    L.append(line("all runs with tables", sel))
    for title, keyf in (("by source", lambda c: c.r["source_key"]), ("by GPU", lambda c: c.r["hardware"]),
                        ("by model", lambda c: c.r["model"]["key"]),
                        ("by TP x PP", lambda c: f"tp{c.r['tp']} pp{c.r['pp']}"),
                        ("by weight precision", lambda c: c.r["precision"]["weights"])):
        L += ["", f"### Throughput {title}, runs with tables", ""] + head
        groups: dict = {}
        for r in sel:
            groups.setdefault(keyf(r["case"]), []).append(r)
        for k in sorted(groups, key=str):
            L.append(line(str(k), groups[k]))
    sh = [x for x in measured["shares"] if x]
    if sh:
        L += ["", "### Where the iteration time comes from (offline runs with tables, steady-state iteration)", "",
              "| share of iteration time | median | p10 | p90 |", "|---|---|---|---|"]
        for k, name in (("table", "measured tables"), ("extrapolated", "tables, extrapolated beyond the grid"),
                        ("roofline", "roofline fallback (no table)"), ("host", "host time (fitted)")):
            v = sorted(x[k] for x in sh)
            L.append(f"| {name} | {statistics.median(v):.1%} | {v[len(v) // 10]:.1%} | {v[(9 * len(v)) // 10]:.1%} |")
    L += ["", f"Measured prediction time: {measured['seconds_per_run'] * 1e3:.0f} ms per offline run (tables loaded "
          "once per device and backend)."]
    return L
