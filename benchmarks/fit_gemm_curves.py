"""Fit shape-dependent GEMM efficiency curves to aiconfigurator-core's measured GEMM tables and
score them out of sample; measure the interpolation error of the tables themselves.

Run:  .venv/bin/python benchmarks/fit_gemm_curves.py            # print everything
      .venv/bin/python benchmarks/fit_gemm_curves.py --write    # also write the two outputs below

Needs the measured extra (aiconfigurator-core==0.12.0, which brings numpy, scipy, pyarrow).
Writes ``costmodel/assets/efficiency/gemm_curves.json`` (the fitted parameters, each record with its source
table, backend and version) and ``benchmarks/results/gemm_curves.md``.

The curve (costmodel/measured/curves.py), per device and dtype, five parameters:

    e_c       = e_max * (d / (d + d_half)) ** gamma,   d = min(n, k)
    t_model   = max(2 max(m, m_tile) n k / (P * e_c) + t0_s,  bytes / (BW * 0.92))

fitted by least squares on log(t_model / t_measured) over every measured shape of the table
(each shape one residual). ``P``: the costmodel catalog's dense peak for the dtype (the
aiconfigurator system spec where the catalog has no such device or dtype: B300, GB200, GB300,
RTX PRO 6000, Arc Pro B60, and every fp4 peak). ``BW``: catalog memory bandwidth (else spec).

Out-of-sample scores:
  random 70/30   fit on a random 70% of the shapes (seed 0), score the other 30%;
  band-out       leave one decade of F (FLOPs) out at a time, fit the rest, score that decade;
  device-out     the generic curve of a dtype fitted to every other device (each device weighted
                 equally), scored on the held-out device: what a device without tables can expect.

Interpolation error of the tables: each interior grid node of one axis at a time is removed and
its measured latencies are predicted from the neighbouring nodes by the same log-linear rule
``costmodel.measured._grid.LogGrid`` uses (a doubled grid spacing: an upper bound for queries
between the real nodes).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from scipy.optimize import least_squares  # noqa: E402

from costmodel.catalog import load_hardware  # noqa: E402
from costmodel.measured import require, tables_for  # noqa: E402
from costmodel.measured import files as mt  # noqa: E402
from costmodel.measured.curves import BANDWIDTH_EFFICIENCY, WEIGHT_BYTES, ACTIVATION_BYTES, efficiency  # noqa: E402

JSON_OUT = ROOT / "costmodel" / "assets" / "efficiency" / "gemm_curves.json"
MD_OUT = ROOT / "benchmarks" / "results" / "gemm_curves.md"

# (costmodel id, aiconfigurator system, backend, in the costmodel catalog)
DEVICES = [
    ("a100-sxm-80gb", "a100_sxm", "trtllm", True),
    ("h100-sxm-80gb", "h100_sxm", "trtllm", True),
    ("h200-sxm-141gb", "h200_sxm", "trtllm", True),
    ("b200-sxm-192gb", "b200_sxm", "trtllm", True),
    ("l40s-48gb", "l40s", "trtllm", True),
    ("b300-sxm-288gb", "b300_sxm", "trtllm", False),
    ("gb200", "gb200", "trtllm", False),
    ("gb300", "gb300", "trtllm", False),
    ("rtx-pro-6000-96gb", "rtx_pro_6000_server", "trtllm", False),
    ("arc-pro-b60-24gb", "b60", "vllm", False),
]
# curve dtype -> (table dtype, catalog dtype for the peak, system-spec peak key)
DTYPES = {
    "bf16": ("bfloat16", "bf16", "bfloat16_tc_flops"),
    "fp8": ("fp8", "fp8", "fp8_tc_flops"),
    "fp8_block": ("fp8_block", "fp8", "fp8_tc_flops"),
    "nvfp4": ("nvfp4", None, "fp4_tc_flops"),
    "int8": ("sq", "int8", "int8_tc_flops"),
}
# generic curves: dtype -> devices excluded from its pool (the B60 has no fp8 math: its fp8 GEMM
# dequantizes to bf16, so its "fp8" efficiency is not an fp8 tensor-core efficiency)
GENERIC = {"bf16": (), "fp8": ("arc-pro-b60-24gb",), "fp8_block": (), "nvfp4": ()}
REGIMES = {
    "decode": lambda d: (d.m <= 256) & (d.n >= 2048) & (d.k >= 2048),
    "large": lambda d: (d.m >= 2048) & (d.n >= 2048) & (d.k >= 2048),
}
CONSTANT = 0.50  # today's costmodel.perf.DEFAULT_EFFICIENCY["gpu"].matmul

# parameters: e_max, log t0_s, log d_half, gamma, log m_tile
LB = [0.05, math.log(1e-7), 0.0, 0.1, 0.0]
UB = [1.0, math.log(1e-3), math.log(1e5), 4.0, math.log(2048.0)]
X0 = [0.8, math.log(5e-6), math.log(128.0), 1.0, math.log(64.0)]


def params_dict(x) -> dict:
    return {"e_max": float(x[0]), "t0_s": float(math.exp(x[1])), "d_half": float(math.exp(x[2])), "gamma": float(x[3]),
            "m_tile": float(math.exp(x[4]))}


# ---- data ------------------------------------------------------------------------------------------

class Data:
    """One device's measured GEMM shapes for one dtype, with its peak and bandwidth."""

    def __init__(self, hw_id, system, backend, in_catalog, dtype):
        self.hw_id, self.system, self.backend, self.dtype = hw_id, system, backend, dtype
        table_dtype, cat_dtype, spec_key = DTYPES[dtype]
        t = tables_for(system, backend)
        op = t.table("gemm") if t is not None else None
        grid = op.grid((table_dtype,)) if op is not None else None
        self.ok = grid is not None and np.count_nonzero(grid.measured) >= 1000
        if not self.ok:
            return
        self.grid, self.kernel, self.provenance = grid, op.kernels[(table_dtype,)], op.provenance
        self.path = Path(op.path)
        pts = list(grid.points())
        self.m, self.n, self.k = (np.array([p[0][i] for p in pts]) for i in range(3))
        self.t = np.array([p[1] for p in pts])
        spec = mt.system_spec(system).get("gpu", {})
        if in_catalog and cat_dtype is not None:
            hw = load_hardware(hw_id)
            self.peak = hw.peak_flops(cat_dtype)
            self.bw = hw.memory_bandwidth_bytes_per_s
            self.peak_source = f"costmodel catalog {hw_id} peak_flops_per_s[{cat_dtype}]"
        else:
            self.peak = float(spec[spec_key])
            self.bw = load_hardware(hw_id).memory_bandwidth_bytes_per_s if in_catalog else float(spec["mem_bw"])
            self.peak_source = f"aiconfigurator-core systems/{system}.yaml gpu.{spec_key}"
        self.F = 2.0 * self.m * self.n * self.k
        self.bytes = WEIGHT_BYTES[dtype] * self.n * self.k + ACTIVATION_BYTES * (self.m * self.k + self.m * self.n)
        self.t_mem = self.bytes / (self.bw * BANDWIDTH_EFFICIENCY)

    def subset(self, mask):
        d = object.__new__(Data)
        d.__dict__.update(self.__dict__)
        for a in ("m", "n", "k", "t", "F", "bytes", "t_mem"):
            setattr(d, a, getattr(self, a)[mask])
        return d


def model_s(x, d: Data):
    e_max, lt0, ldh, gamma, lmt = x
    dnk = np.minimum(d.n, d.k)
    e_c = e_max * (dnk / (dnk + math.exp(ldh))) ** gamma
    return np.maximum(2.0 * np.maximum(d.m, math.exp(lmt)) * d.n * d.k / (d.peak * e_c) + math.exp(lt0), d.t_mem)


def constant_s(d: Data, e=CONSTANT):
    return np.maximum(d.F / (d.peak * e), d.t_mem)


# Each shape's log residual is weighted by sqrt(its time / the median time): the curve prices a model's total
# time, which large GEMMs dominate (unweighted, the A100 curve fitted its many mid-size shapes and priced
# large training GEMMs 19% slow; time-weighted, the large-shape bias is 1% on every device).
TIME_WEIGHT_POWER = 0.5


def fit(datas, weights=None):
    """Least squares on sqrt(time)-weighted log(model / measured); ``weights`` per Data (pooled fits weight
    each device equally: 1/sqrt(its number of shapes))."""
    weights = weights or [1.0] * len(datas)
    tw = [(d.t / np.median(d.t)) ** TIME_WEIGHT_POWER for d in datas]

    def res(x):
        return np.concatenate([w * t * (np.log(model_s(x, d)) - np.log(d.t))
                               for d, w, t in zip(datas, weights, tw)])

    r = least_squares(res, X0, bounds=(LB, UB), x_scale=[0.1, 1.0, 1.0, 0.3, 1.0])
    return r.x


def score(pred, meas) -> dict:
    lr = np.log(pred) - np.log(meas)
    a = np.abs(np.expm1(lr))
    return {"median_abs_rel_err": float(np.median(a)), "p90_abs_rel_err": float(np.percentile(a, 90)),
            "p99_abs_rel_err": float(np.percentile(a, 99)), "rms_log_err": float(np.sqrt(np.mean(lr ** 2))),
            "bias_log": float(np.mean(lr)), "points": int(len(lr))}


def rounded(s: dict) -> dict:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in s.items()}


# ---- interpolation error -----------------------------------------------------------------------------

def slice_out_errors(grid) -> dict:
    """Relative errors when each interior node of each axis is predicted from its two neighbours
    (log-linear in the axis, the LogGrid rule). Returns axis name -> array of log errors."""
    out = {}
    L, M = grid.log_t, grid.measured
    for ax, la in enumerate(grid.log_axes):
        errs = []
        for i in range(1, len(la) - 1):
            u = (la[i] - la[i - 1]) / (la[i + 1] - la[i - 1])
            take = lambda j: np.take(L, j, axis=ax)  # noqa: E731
            okm = np.take(M, i, axis=ax) & np.take(M, i - 1, axis=ax) & np.take(M, i + 1, axis=ax)
            pred = (1 - u) * take(i - 1) + u * take(i + 1)
            errs.append((pred - take(i))[okm])
        out[grid.names[ax]] = np.concatenate(errs) if errs else np.array([])
    return out


def err_stats(lr) -> dict:
    a = np.abs(np.expm1(lr))
    return {"median_abs_rel_err": float(np.median(a)), "p90_abs_rel_err": float(np.percentile(a, 90)),
            "p99_abs_rel_err": float(np.percentile(a, 99)), "max_abs_rel_err": float(a.max()), "points": int(len(a))}


# ---- realistic shapes -------------------------------------------------------------------------------

LLAMA = {  # hidden, q heads, kv heads, head_dim, intermediate, vocab (HF configs of Llama-3-8B / -70B)
    "Llama-3-8B": (4096, 32, 8, 128, 14336, 128256),
    "Llama-3-70B": (8192, 64, 8, 128, 28672, 128256),
}


def llama_linears(model):
    """(name, d_in, d_out) of one decoder layer's linears (HF: q/k/v, o, gate, up, down) + lm_head."""
    h, nq, nkv, hd, inter, vocab = LLAMA[model]
    return [("q_proj", h, nq * hd), ("k_proj", h, nkv * hd), ("v_proj", h, nkv * hd), ("o_proj", nq * hd, h),
            ("gate_proj", h, inter), ("up_proj", h, inter), ("down_proj", inter, h), ("lm_head", h, vocab)]


def training_gemms(model, tokens):
    """Forward y = x W^T (m=tokens, n=d_out, k=d_in), backward dX (m=tokens, n=d_in, k=d_out) and
    dW (m=d_out, n=d_in, k=tokens) of every linear."""
    out = []
    for name, din, dout in llama_linears(model):
        out += [(name, "fwd", tokens, dout, din), (name, "dX", tokens, din, dout), (name, "dW", dout, din, tokens)]
    return out


def shape_times(hw_id, system, dtype, m, n, k, curve, peak, bw, tables):
    F = 2.0 * m * n * k
    by = WEIGHT_BYTES[dtype] * n * k + ACTIVATION_BYTES * (m * k + m * n)
    t_mem = by / (bw * BANDWIDTH_EFFICIENCY)
    meas = tables.gemm_s(m, n, k, dtype)
    flag = ""
    if meas is None:
        meas = tables.gemm_s(m, n, k, dtype, extrapolate=True)
        flag = "*"
    e = efficiency(curve, m, n, k, peak)
    return meas, max(F / (peak * e), t_mem), max(F / (peak * CONSTANT), t_mem), flag


# ---- main -------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--write", action="store_true", help="write the JSON asset and the markdown results")
    args = ap.parse_args()
    require()
    md = []
    p = lambda *a: (print(*a), md.append(" ".join(str(x) for x in a)))  # noqa: E731

    datas = {}
    for hw_id, system, backend, in_cat in DEVICES:
        for dtype in DTYPES:
            d = Data(hw_id, system, backend, in_cat, dtype)
            if d.ok:
                datas[(hw_id, dtype)] = d

    # -- per-device fits ---------------------------------------------------------------------------------
    records = []
    rng = np.random.default_rng(0)
    p("## Per-device curves (in-sample and out-of-sample)\n")
    p("Errors are |model/measured - 1| over every measured shape (median / p90), for the curve as the roofline "
      "uses it and for today's constant 0.50 x peak with the same bandwidth term.\n")
    p("| device | dtype | backend version | shapes | e_max | t0 (us) | d_half | gamma | m_tile | in-sample med/p90 | "
      "random 30% med/p90 | band-out med/p90 | constant 0.50 med/p90 |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    fitted = {}
    regimes_rows = []
    for (hw_id, dtype), d in datas.items():
        x = fit([d])
        fitted[(hw_id, dtype)] = x
        ins = score(model_s(x, d), d.t)
        mask = rng.random(len(d.t)) < 0.7
        x70 = fit([d.subset(mask)])
        te = d.subset(~mask)
        r70 = score(model_s(x70, te), te.t)
        band = np.floor(np.log10(d.F))
        preds, meas = [], []
        for b in np.unique(band):
            tr, ho = d.subset(band != b), d.subset(band == b)
            xb = fit([tr])
            preds.append(model_s(xb, ho))
            meas.append(ho.t)
        rb = score(np.concatenate(preds), np.concatenate(meas))
        rc = score(constant_s(d), d.t)
        regime = {}
        for rname, msk in REGIMES.items():
            sel = msk(d)
            if sel.sum() >= 20:
                regime[rname] = {"curve": rounded(score(model_s(x, d)[sel], d.t[sel])),
                                 "constant_0_50": rounded(score(constant_s(d)[sel], d.t[sel]))}
        regimes_rows.append((hw_id, dtype, regime))
        pd = params_dict(x)
        version = d.path.parent.name
        p(f"| {hw_id} | {dtype} | {d.backend} {version} | {len(d.t)} | {pd['e_max']:.3f} | {pd['t0_s'] * 1e6:.2f} | "
          f"{pd['d_half']:.0f} | {pd['gamma']:.2f} | {pd['m_tile']:.0f} | {ins['median_abs_rel_err']:.0%} / {ins['p90_abs_rel_err']:.0%} | "
          f"{r70['median_abs_rel_err']:.0%} / {r70['p90_abs_rel_err']:.0%} | "
          f"{rb['median_abs_rel_err']:.0%} / {rb['p90_abs_rel_err']:.0%} | "
          f"{rc['median_abs_rel_err']:.0%} / {rc['p90_abs_rel_err']:.0%} |")
        records.append({
            "hardware_id": hw_id, "system": d.system, "dtype": dtype, **{k: float(f"{v:.6g}") for k, v in pd.items()},
            "peak_flops_per_s": d.peak, "peak_source": d.peak_source, "memory_bandwidth_bytes_per_s": d.bw,
            "source": {"package": "aiconfigurator-core", "package_version": mt.package_version(),
                       "table": f"systems/data/{d.system}/gemm/{d.backend}/{version}/gemm_perf.parquet",
                       "system": d.system, "backend": d.backend, "version": version, "table_dtype": DTYPES[dtype][0],
                       "kernel": d.kernel, "shapes": int(len(d.t)), "provenance": d.provenance},
            "error": {"in_sample": rounded(ins), "random_70_30": rounded(r70), "band_out": rounded(rb),
                      "constant_0_50": rounded(rc), "by_regime": regime},
        })

    p("\nIn-sample error by regime (median / p90 |error|, bias = mean log(model/measured)): decode-like shapes "
      "(m <= 256, n and k >= 2048) and large shapes (m, n, k >= 2048), curve vs constant 0.50 x peak:\n")
    p("| device | dtype | decode curve | decode 0.50 | large curve | large 0.50 |")
    p("|---|---|---|---|---|---|")
    for hw_id, dtype, regime in regimes_rows:
        cells = []
        for rname in REGIMES:
            for which in ("curve", "constant_0_50"):
                r = regime.get(rname, {}).get(which)
                cells.append(f"{r['median_abs_rel_err']:.0%} / {r['p90_abs_rel_err']:.0%} ({r['bias_log']:+.2f})"
                             if r else "-")
        p(f"| {hw_id} | {dtype} | " + " | ".join(cells) + " |")

    # -- generic curves, leave-one-device-out ------------------------------------------------------------
    p("\n## Generic curves and leave-one-device-out error\n")
    p("Each generic curve is fitted to every listed device at once (each device weighted equally, parameters "
      "relative to the device's own peak). The held-out rows fit it to all devices but one and score that one: "
      "the error to expect on a device without tables.\n")
    p("| dtype | held-out device | e_max | t0 (us) | d_half | gamma | m_tile | held-out med/p90 | bias (log) | "
      "own-curve med/p90 |")
    p("|---|---|---|---|---|---|---|---|---|---|")
    generic = []
    for dtype, excluded in GENERIC.items():
        pool = [(h, d) for (h, dt), d in datas.items() if dt == dtype and h not in excluded]
        if len(pool) < 3:
            continue
        lr_all = []
        per_dev = {}
        for h_out, d_out in pool:
            rest = [d for h, d in pool if h != h_out]
            x = fit(rest, [1 / math.sqrt(len(d.t)) for d in rest])
            pred = model_s(x, d_out)
            s = score(pred, d_out.t)
            per_dev[h_out] = rounded(s)
            own = next(r for r in records if r["hardware_id"] == h_out and r["dtype"] == dtype)["error"]["in_sample"]
            pdx = params_dict(x)
            p(f"| {dtype} | {h_out} | {pdx['e_max']:.3f} | {pdx['t0_s'] * 1e6:.2f} | {pdx['d_half']:.0f} | "
              f"{pdx['gamma']:.2f} | {pdx['m_tile']:.0f} | {s['median_abs_rel_err']:.0%} / {s['p90_abs_rel_err']:.0%} | {s['bias_log']:+.2f} | "
              f"{own['median_abs_rel_err']:.0%} / {own['p90_abs_rel_err']:.0%} |")
            # each device contributes equally to the pooled held-out distribution: resample to 5000 points
            idx = np.random.default_rng(1).choice(len(pred), 5000, replace=len(pred) < 5000)
            lr_all.append((np.log(pred) - np.log(d_out.t))[idx])
        x = fit([d for _, d in pool], [1 / math.sqrt(len(d.t)) for _, d in pool])
        pdx = params_dict(x)
        lr = np.concatenate(lr_all)
        a = np.abs(np.expm1(lr))
        unc = {"median_abs_rel_err": round(float(np.median(a)), 4), "p90_abs_rel_err": round(float(np.percentile(a, 90)), 4),
               "rms_log_err": round(float(np.sqrt(np.mean(lr ** 2))), 4),
               "worst_device_median_abs_rel_err": round(max(v["median_abs_rel_err"] for v in per_dev.values()), 4)}
        p(f"| **{dtype}** | **all (final)** | {pdx['e_max']:.3f} | {pdx['t0_s'] * 1e6:.2f} | {pdx['d_half']:.0f} | "
          f"{pdx['gamma']:.2f} | {pdx['m_tile']:.0f} | pooled {unc['median_abs_rel_err']:.0%} / {unc['p90_abs_rel_err']:.0%} | | |")
        generic.append({"dtype": dtype, **{k: float(f"{v:.6g}") for k, v in pdx.items()},
                        "fitted_on": [h for h, _ in pool],
                        "source": {"package": "aiconfigurator-core", "package_version": mt.package_version(),
                                   "tables": [f"systems/data/{d.system}/gemm/{d.backend}/{d.path.parent.name}/"
                                              f"gemm_perf.parquet ({DTYPES[dtype][0]})" for _, d in pool]},
                        "uncertainty": unc, "held_out": per_dev})

    # -- interpolation error of the tables ----------------------------------------------------------------
    p("\n## Interpolation error of the measured tables (leave one grid node out)\n")
    p("Each interior node of one axis is removed and predicted log-linearly from its two neighbours (doubled "
      "spacing, so an upper bound for queries between real nodes). |error| median / p90 / p99 / max.\n")
    p("| device | table | axis | points | median | p90 | p99 | max |")
    p("|---|---|---|---|---|---|---|---|")
    interp = {}
    pooled = {}
    for (hw_id, dtype), d in datas.items():
        if dtype not in ("bf16", "fp8"):
            continue
        errs = slice_out_errors(d.grid)
        for ax, lr in errs.items():
            pooled.setdefault(("gemm", ax), []).append(lr)
            if hw_id in ("h100-sxm-80gb", "h200-sxm-141gb", "b200-sxm-192gb", "a100-sxm-80gb"):
                s = err_stats(lr)
                p(f"| {hw_id} | gemm {dtype} | {ax} | {s['points']} | {s['median_abs_rel_err']:.1%} | "
                  f"{s['p90_abs_rel_err']:.1%} | {s['p99_abs_rel_err']:.1%} | {s['max_abs_rel_err']:.0%} |")
    for sysname in ("h100_sxm", "h200_sxm", "b200_sxm"):
        t = tables_for(sysname)
        for op in ("context_attention", "generation_attention"):
            tab = t.table(op)
            key = ("bfloat16", "bfloat16", 128, 0, 8)
            errs = slice_out_errors(tab.grid(key))
            for ax, lr in errs.items():
                pooled.setdefault((op, ax), []).append(lr)
                s = err_stats(lr)
                p(f"| {sysname} | {op} bf16 hd128 GQA-8 | {ax} | {s['points']} | {s['median_abs_rel_err']:.1%} | "
                  f"{s['p90_abs_rel_err']:.1%} | {s['p99_abs_rel_err']:.1%} | {s['max_abs_rel_err']:.0%} |")
        tab = t.table("nccl")
        lrs = [slice_out_errors(g)["message_size"] for g in tab.grids.values()]
        pooled.setdefault(("nccl", "message_size"), []).extend(lrs)
        s = err_stats(np.concatenate(lrs))
        p(f"| {sysname} | nccl (all ops, dtypes, GPUs) | message_size | {s['points']} | {s['median_abs_rel_err']:.1%} | "
          f"{s['p90_abs_rel_err']:.1%} | {s['p99_abs_rel_err']:.1%} | {s['max_abs_rel_err']:.0%} |")
    p("\nPooled (gemm: bf16 and fp8 of every device with tables; attention and NCCL: H100, H200, B200):\n")
    p("| table | axis | points | median | p90 | p99 | max |")
    p("|---|---|---|---|---|---|---|")
    for (op, ax), lrs in pooled.items():
        s = err_stats(np.concatenate(lrs))
        interp[f"{op}.{ax}"] = rounded(s)
        p(f"| {op} | {ax} | {s['points']} | {s['median_abs_rel_err']:.1%} | {s['p90_abs_rel_err']:.1%} | "
          f"{s['p99_abs_rel_err']:.1%} | {s['max_abs_rel_err']:.0%} |")

    # -- realistic shapes ------------------------------------------------------------------------------
    p("\n## Llama-3 GEMMs: measured table vs curve vs constant 0.50 x peak\n")
    p("Times per decoder layer (q, k, v, o, gate, up, down; HF layout) plus the lm_head, bf16, each GEMM "
      "`max(compute, bytes / (BW x 0.92))`; ratio = model / measured. Training: forward + dX + dW at "
      "micro-batch b x seq 4096 (m = 4096 b tokens). Measured values marked * are extrapolated "
      "(lm_head n = 128256 > 65536 measured, time ∝ n; A100 table m <= 8192, time ∝ m).\n")
    recs = {(r["hardware_id"], r["dtype"]): r for r in records}
    comp = []
    for hw_id, system in (("h100-sxm-80gb", "h100_sxm"), ("h200-sxm-141gb", "h200_sxm"), ("b200-sxm-192gb", "b200_sxm"),
                          ("a100-sxm-80gb", "a100_sxm")):
        t = tables_for(system)
        rec = recs[(hw_id, "bf16")]
        for model in LLAMA:
            for mb in (1, 2, 4, 8):
                rows = training_gemms(model, 4096 * mb)
                tot = np.zeros(3)
                tot_head = np.zeros(3)
                flags = set()
                for name, _, m, n, k in rows:
                    meas, cur, const, flag = shape_times(hw_id, system, "bf16", m, n, k, rec, rec["peak_flops_per_s"],
                                                         rec["memory_bandwidth_bytes_per_s"], t)
                    if name != "lm_head":
                        flags.add(flag)
                    (tot_head if name == "lm_head" else tot)[:] += (meas, cur, const)
                comp.append(("train", hw_id, model, f"mb {mb}", tot, tot_head, "*" if "*" in flags else ""))
            for batch in (1, 8, 32, 64, 128, 256):
                tot = np.zeros(3)
                tot_head = np.zeros(3)
                flags = set()
                for name, din, dout in llama_linears(model):
                    meas, cur, const, flag = shape_times(hw_id, system, "bf16", batch, dout, din, rec,
                                                         rec["peak_flops_per_s"], rec["memory_bandwidth_bytes_per_s"], t)
                    if name != "lm_head":
                        flags.add(flag)
                    (tot_head if name == "lm_head" else tot)[:] += (meas, cur, const)
                comp.append(("decode", hw_id, model, f"batch {batch}", tot, tot_head, "*" if "*" in flags else ""))
    p("| phase | device | model | size | layer measured (ms) | curve (ms) | ratio | 0.50 x peak (ms) | ratio | "
      "lm_head measured (ms) | curve ratio | 0.50 ratio |")
    p("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for phase, hw_id, model, size, tot, head, flag in comp:
        p(f"| {phase} | {hw_id} | {model} | {size} | {tot[0] * 1e3:.3f}{flag} | "
          f"{tot[1] * 1e3:.3f} | {tot[1] / tot[0]:.2f} | {tot[2] * 1e3:.3f} | {tot[2] / tot[0]:.2f} | "
          f"{head[0] * 1e3:.3f}* | {head[1] / head[0]:.2f} | {head[2] / head[0]:.2f} |")
    # implied efficiency of the measured training GEMMs
    p("\nAchieved fraction of the catalog peak in the measured training GEMMs of one layer (forward+backward), "
      "i.e. the constant the roofline would need:\n")
    p("| device | model | mb 1 | mb 2 | mb 4 | mb 8 |")
    p("|---|---|---|---|---|---|")
    for hw_id, system in (("h100-sxm-80gb", "h100_sxm"), ("h200-sxm-141gb", "h200_sxm"), ("b200-sxm-192gb", "b200_sxm"),
                          ("a100-sxm-80gb", "a100_sxm")):
        t = tables_for(system)
        peak = recs[(hw_id, "bf16")]["peak_flops_per_s"]
        cells = []
        for model in LLAMA:
            cells = []
            for mb in (1, 2, 4, 8):
                F = tt = 0.0
                for name, _, m, n, k in training_gemms(model, 4096 * mb):
                    if name == "lm_head":
                        continue
                    tm = t.gemm_s(m, n, k, "bf16") or t.gemm_s(m, n, k, "bf16", extrapolate=True)
                    F += 2.0 * m * n * k
                    tt += tm
                cells.append(f"{F / tt / peak:.2f}")
            p(f"| {hw_id} | {model} | " + " | ".join(cells) + " |")

    if args.write:
        out = {
            "schema": "costmodel.gemm_curves/1",
            "about": "Shape-dependent GEMM efficiency curves fitted by benchmarks/fit_gemm_curves.py to the measured "
                     "GEMM tables of NVIDIA aiconfigurator-core (Apache-2.0). Form and use: costmodel/measured/curves.py "
                     "and docs/measured.md.",
            "form": "efficiency = F / (peak_flops_per_s * t_compute), t_compute = 2 max(m, m_tile) n k / "
                    "(peak_flops_per_s * e_c) + t0_s, e_c = e_max * (d / (d + d_half)) ** gamma, d = min(n, k), "
                    "F = 2 m n k; fitted inside device_s = max(F / (peak * efficiency), "
                    "bytes / (memory_bandwidth_bytes_per_s * 0.92))",
            "units": {"e_max": "fraction of peak_flops_per_s", "t0_s": "seconds", "d_half": "elements",
                      "m_tile": "rows (tokens)",
                      "gamma": "dimensionless", "peak_flops_per_s": "FLOP/s",
                      "memory_bandwidth_bytes_per_s": "bytes/s", "errors": "fractions (|model/measured - 1|), "
                                                                          "log errors natural log"},
            "bandwidth_term": {"weight_bytes_per_element": WEIGHT_BYTES, "activation_bytes_per_element": ACTIVATION_BYTES,
                               "bandwidth_efficiency": BANDWIDTH_EFFICIENCY},
            "interpolation_error": interp,
            "curves": records,
            "generic": generic,
        }
        JSON_OUT.parent.mkdir(parents=True, exist_ok=True)
        JSON_OUT.write_text(json.dumps(out, indent=1) + "\n")
        head = ("# GEMM efficiency curves and measured-table interpolation\n\n"
                "Generated by `benchmarks/fit_gemm_curves.py --write` from the measured GEMM, attention and NCCL tables "
                f"of aiconfigurator-core {mt.package_version()} (NVIDIA, Apache-2.0). Form, scheme and use: "
                "docs/measured.md. Parameters: costmodel/assets/efficiency/gemm_curves.json.\n\n")
        MD_OUT.write_text(head + "\n".join(md) + "\n")
        print(f"\nwrote {JSON_OUT.relative_to(ROOT)} and {MD_OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
