"""Plotly figures of profiler results. Pure functions: results in, ``plotly.graph_objects.Figure`` out;
no numbers are computed here that the results do not hold (except unit scaling for the axes).

Inputs are ``ProfileResult`` objects or their dicts / storage records (anything with "comparison" rows).
"""

from __future__ import annotations

import math

import plotly.graph_objects as go

UNIT_SCALE = {"bytes": (2**30, "GiB"), "s": (1e-3, "ms"), "FLOPs": (1e9, "GFLOP"), "count": (1.0, ""),
              "1/s": (1.0, "/s"), "J": (1.0, "J")}


def _as_dict(r) -> dict:
    return r.to_dict() if hasattr(r, "to_dict") else dict(r)


def _label(r: dict) -> str:
    wl = r.get("request", {}).get("workload") or r.get("workload") or {}
    return f"{r.get('model', '?')} {r.get('task', wl.get('task', ''))} b{wl.get('batch', '?')}"


def comparison_points(results, quantities=None) -> list[dict]:
    """Flatten comparison rows of many runs: {"run", "quantity", "unit", "predicted", "measured", "error_pct"}
    for rows where both sides exist and are positive."""
    pts = []
    for r in results:
        d = _as_dict(r)
        for row in d.get("comparison") or []:
            p, m = row.get("predicted"), row.get("measured")
            if quantities and row["quantity"] not in quantities:
                continue
            if isinstance(p, (int, float)) and isinstance(m, (int, float)) and p > 0 and m > 0:
                pts.append({"run": _label(d), "run_id": d.get("run_id", ""), "quantity": row["quantity"],
                            "unit": row.get("unit", ""), "predicted": float(p), "measured": float(m),
                            "error_pct": row.get("error_pct")})
    return pts


def parity_figure(results, quantities=None, title: str = "Predicted vs measured") -> go.Figure:
    """Log-log scatter, one trace per quantity, x = measured, y = predicted / measured ratio-free:
    points on the dashed diagonal are exact. Values are in each quantity's own unit."""
    pts = comparison_points(results, quantities)
    fig = go.Figure()
    by_q: dict[str, list[dict]] = {}
    for p in pts:
        by_q.setdefault(p["quantity"], []).append(p)
    for q, ps in by_q.items():
        fig.add_trace(go.Scatter(
            x=[p["measured"] for p in ps], y=[p["predicted"] for p in ps], mode="markers", name=q,
            text=[f"{p['run']}<br>error {p['error_pct']:+.1f}%" if p["error_pct"] is not None else p["run"] for p in ps],
            hovertemplate="%{text}<br>measured %{x:.4g}<br>predicted %{y:.4g}<extra>" + q + "</extra>"))
    if pts:
        lo = min(min(p["measured"], p["predicted"]) for p in pts)
        hi = max(max(p["measured"], p["predicted"]) for p in pts)
        fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="exact",
                                 line={"dash": "dash", "color": "gray"}, hoverinfo="skip"))
    fig.update_xaxes(type="log", title="measured (unit of each quantity)")
    fig.update_yaxes(type="log", title="predicted")
    fig.update_layout(title=title, legend_title="quantity")
    return fig


def error_summary(results, quantities=None) -> list[dict]:
    """Per quantity: {"quantity", "n", "median_pct", "min_pct", "max_pct"} of the signed % errors."""
    by_q: dict[str, list[float]] = {}
    for p in comparison_points(results, quantities):
        if p["error_pct"] is not None and math.isfinite(p["error_pct"]):
            by_q.setdefault(p["quantity"], []).append(p["error_pct"])
    out = []
    for q, errs in by_q.items():
        s = sorted(errs)
        k = len(s)
        med = s[k // 2] if k % 2 else (s[k // 2 - 1] + s[k // 2]) / 2
        out.append({"quantity": q, "n": k, "median_pct": med, "min_pct": s[0], "max_pct": s[-1]})
    return out


def error_bars_figure(results, quantities=None, title: str = "Prediction error per quantity") -> go.Figure:
    """Bars: median signed % error per quantity across runs; whiskers: the smallest and largest error."""
    rows = error_summary(results, quantities)
    fig = go.Figure(go.Bar(
        x=[r["quantity"] for r in rows], y=[r["median_pct"] for r in rows],
        error_y={"type": "data", "symmetric": False, "array": [r["max_pct"] - r["median_pct"] for r in rows],
                 "arrayminus": [r["median_pct"] - r["min_pct"] for r in rows]},
        text=[f"n={r['n']}" for r in rows], hovertemplate="%{x}: median %{y:+.1f}%<br>%{text}<extra></extra>"))
    fig.add_hline(y=0, line_color="gray")
    fig.update_layout(title=title, yaxis_title="error % ((predicted - measured) / measured)")
    return fig


def memory_timeline_figure(result, title: str = "Memory over one step") -> go.Figure:
    """Allocated bytes over one step (the profiler's memory events) with the measured and predicted peaks."""
    d = _as_dict(result)
    tl = (d.get("measured") or {}).get("memory_timeline") or {}
    fig = go.Figure()
    if tl.get("t_ms"):
        fig.add_trace(go.Scatter(x=tl["t_ms"], y=[b / 2**20 for b in tl["bytes"]], mode="lines", name="allocated",
                                 line={"shape": "hv"}))
    peak_m = (d.get("measured") or {}).get("peak_allocated_bytes")
    peak_p = (d.get("predicted") or {}).get("peak_bytes")
    if peak_m:
        fig.add_hline(y=peak_m / 2**20, line_dash="dot", line_color="black",
                      annotation_text=f"measured peak {peak_m / 2**20:.2f} MiB")
    if peak_p:
        fig.add_hline(y=peak_p / 2**20, line_dash="dash", line_color="red",
                      annotation_text=f"predicted peak {peak_p / 2**20:.2f} MiB", annotation_position="bottom right")
    fig.update_layout(title=title, xaxis_title="time in the step (ms)", yaxis_title="MiB")
    return fig


def step_times_figure(result, title: str = "Measured steps") -> go.Figure:
    """Each measured step's time, with the prediction as a line."""
    d = _as_dict(result)
    m, p = d.get("measured") or {}, d.get("predicted") or {}
    fig = go.Figure()
    for key in ("step_s", "forward_s", "prefill_s", "decode_per_token_s"):
        vals = m.get(f"{key}_all")
        if vals:
            fig.add_trace(go.Scatter(x=list(range(1, len(vals) + 1)), y=[v * 1e3 for v in vals], mode="markers+lines",
                                     name=f"measured {key[:-2]}"))
            if p.get(key):
                fig.add_hline(y=p[key] * 1e3, line_dash="dash", annotation_text=f"predicted {key[:-2]}")
    fig.update_layout(title=title, xaxis_title="measured step", yaxis_title="ms")
    return fig


def calibration_figure(calibration: dict, title: str = "Calibration: time error before and after") -> go.Figure:
    """Grouped bars of the % time error of each fitted point, before and after calibration."""
    rows = calibration.get("rows") or []
    # short axis labels (a shrunken preset's name lists its overrides); the full name is in the hover
    names = [f"#{i + 1} {str(r.get('model')).split(' (')[0]} {r.get('quantity')}" for i, r in enumerate(rows)]
    full = [str(r.get("model")) for r in rows]
    fig = go.Figure([
        go.Bar(x=names, y=[r["error_before_pct"] for r in rows], name="before", customdata=full,
               hovertemplate="%{customdata}<br>%{y:+.1f}%<extra>before</extra>"),
        go.Bar(x=names, y=[r["error_after_pct"] for r in rows], name="after", customdata=full,
               hovertemplate="%{customdata}<br>%{y:+.1f}%<extra>after</extra>"),
    ])
    fig.add_hline(y=0, line_color="gray")
    fig.update_layout(barmode="group", title=title, yaxis_title="error %")
    return fig


def residuals_figure(calibration: dict, title: str = "Calibration residuals") -> go.Figure:
    """ln(predicted / measured) after the fit against the measured time: a good fit scatters around 0."""
    rows = [r for r in calibration.get("rows") or [] if r.get("residual_log_after") is not None]
    fig = go.Figure(go.Scatter(x=[r["measured_s"] * 1e3 for r in rows], y=[r["residual_log_after"] for r in rows],
                               mode="markers", text=[f"{r.get('model')} {r.get('quantity')}" for r in rows],
                               hovertemplate="%{text}<br>measured %{x:.4g} ms<br>ln ratio %{y:+.3f}<extra></extra>"))
    fig.add_hline(y=0, line_color="gray")
    fig.update_xaxes(type="log", title="measured time (ms)")
    fig.update_layout(title=title, yaxis_title="ln(predicted / measured) after calibration")
    return fig


def allreduce_figure(dp: dict, title: str = "All-reduce time vs buffer size") -> go.Figure:
    """Measured all-reduce medians and the ring model with the fitted link (from run_data_parallel)."""
    m, p = dp.get("measured") or {}, dp.get("predicted") or {}
    pts = m.get("allreduce") or []
    fig = go.Figure(go.Scatter(x=[a["bytes"] for a in pts], y=[a["median_s"] * 1e3 for a in pts], mode="markers",
                               name="measured (median)"))
    fit = m.get("ring_fit") or {}
    n = m.get("world_size", 2)
    if pts and fit.get("bandwidth_bytes_per_s"):
        xs = sorted(a["bytes"] for a in pts)
        bw, lat = fit["bandwidth_bytes_per_s"], fit["latency_s"]
        # the ring model's line with the fitted link (same formula as costmodel.collectives.allreduce_s)
        ys = [(2 * (n - 1) / n * x / bw + 2 * (n - 1) * lat) * 1e3 for x in xs]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="ring model, fitted link"))
    if p.get("allreduce_s") and m.get("grad_bytes"):
        fig.add_trace(go.Scatter(x=[m["grad_bytes"]], y=[p["allreduce_s"] * 1e3], mode="markers",
                                 marker={"symbol": "x", "size": 10}, name="ring model, catalog link"))
    fig.update_xaxes(type="log", title="buffer bytes")
    fig.update_yaxes(type="log", title="ms")
    fig.update_layout(title=title)
    return fig
