"""Plotly figures for the dashboard: pure functions, results in, ``plotly.graph_objects.Figure`` out.

Nothing here computes a new number: every bar and point is a value of an ``Estimate`` (or of the rows
``costmodel.ui.tables`` arranges from estimates), converted to display units (GiB = 2**30 bytes, seconds).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import plotly.graph_objects as go

from ..units import GiB
from .tables import peak_segments, plan_step_rows

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(_base_layout(title, height))
    return fig


def _base_layout(title: str, height: int) -> dict:
    return dict(title=dict(text=title), height=height + 40, margin=dict(l=10, r=10, t=50, b=10),
                legend=dict(orientation="h", yanchor="top", y=-0.28, xanchor="left", x=0))


def _capacity_line(cap_gib: float) -> tuple[dict, dict]:
    """A dashed vertical line at the device's capacity (GiB) and its label, as a layout shape + annotation
    (built as plain dicts: plotly's add_vline is slow for an interactive page)."""
    shape = dict(type="line", xref="x", yref="paper", x0=cap_gib, x1=cap_gib, y0=0, y1=1,
                 line=dict(color="#D62728", width=3, dash="dash"))
    note = dict(xref="x", yref="paper", x=cap_gib, y=1.0, yanchor="bottom", showarrow=False,
                text=f"capacity {cap_gib:,.1f} GiB")
    return shape, note


def _hbar_stack(parts, title: str, height: int, cap_gib: float) -> go.Figure:
    traces = [go.Bar(name=label, x=[b / GiB], y=["per device"], orientation="h",
                     marker_color=PALETTE[i % len(PALETTE)], hovertemplate=f"{label}: %{{x:,.2f}} GiB<extra></extra>")
              for i, (label, b) in enumerate(parts)]
    shape, note = _capacity_line(cap_gib)
    return go.Figure(traces, layout=dict(**_base_layout(title, height), barmode="stack", shapes=[shape],
                                         annotations=[note], xaxis=dict(title=dict(text="GiB (2^30 bytes)"))))


def memory_figure(est) -> go.Figure:
    """Stacked bar of what is alive at the peak (GiB) against the device's capacity (red line)."""
    m = est.memory_bytes
    verdict = "fits" if m.fits else "does NOT fit"
    return _hbar_stack(peak_segments(est), f"Memory at the peak ({m.peak_phase}): {m.device_total / GiB:,.2f} GiB, "
                       f"{verdict}", 300, m.capacity / GiB)


def time_figure(est) -> go.Figure:
    """Bar per phase of ``est.time_s`` (seconds), with the unit's total and the pass's bound in the title."""
    phases = est.time_s.phases()
    fig = go.Figure(go.Bar(x=[k for k, _ in phases], y=[v for _, v in phases], marker_color=PALETTE[0],
                           hovertemplate="%{x}: %{y:.4g} s<extra></extra>"))
    fig.update_layout(yaxis_title="seconds")
    return _layout(fig, f"Time per phase (per {est.unit} {est.time_s.per_unit_s:.4g} s; bound: {est.perf.bound})", 320)


def roofline_figure(est, hardware) -> go.Figure:
    """The device's roofline (attainable FLOP/s vs arithmetic intensity, at the achievable fractions of peak
    the estimate assumed) with the workload's achieved FLOP/s as a horizontal marker."""
    eff = est.assumptions.get("efficiency", {})
    peak = float(est.perf.peak_flops_per_s or 0.0)
    bw = float(hardware.memory_bandwidth_bytes_per_s)
    flop_rate = peak * float(eff.get("matmul", 1.0))
    byte_rate = bw * float(eff.get("bandwidth", 1.0))
    ridge = flop_rate / byte_rate if byte_rate else 1.0
    xs = [ridge / 1000 * (10 ** (i / 10)) for i in range(0, 61)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[min(flop_rate, byte_rate * x) for x in xs], name="achievable roofline",
                             line=dict(color=PALETTE[0], width=3)))
    fig.add_trace(go.Scatter(x=xs, y=[min(peak, bw * x) for x in xs], name="datasheet roofline",
                             line=dict(color="#999999", dash="dot")))
    # the pass the FLOPs belong to: a training step, a prefill (generation) or a forward
    t = est.time_s
    total_t = t.prefill_s if est.unit == "request" else t.per_unit_s
    shapes, notes = [], []
    if total_t:
        achieved = est.flops.total / total_t
        shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=achieved, y1=achieved,
                           line=dict(color=PALETTE[1], dash="dash")))
        notes.append(dict(xref="paper", yref="y", x=1.0, xanchor="right", y=math.log10(achieved), yanchor="bottom",
                          showarrow=False, text=f"this workload: {achieved / 1e12:,.1f} TFLOP/s "
                                                f"(MFU {est.perf.mfu:.0%})"))
    fig.update_layout(**_base_layout(f"Roofline of {est.hardware}: ridge at {ridge:,.0f} FLOPs/byte", 340),
                      shapes=shapes, annotations=notes,
                      xaxis=dict(type="log", title=dict(text="arithmetic intensity (FLOPs per byte)")),
                      yaxis=dict(type="log", title=dict(text="FLOP/s")))
    return fig


def layers_figure(est, top: int = 15) -> go.Figure:
    """The ``top`` ledger rows by forward FLOPs (all instances), as horizontal bars."""
    rows = sorted(est.layers, key=lambda r: r.forward_flops * r.count, reverse=True)[:top]
    rows = rows[::-1]
    fig = go.Figure(go.Bar(x=[r.forward_flops * r.count for r in rows],
                           y=[f"{r.name} (x{r.count})" for r in rows], orientation="h",
                           marker_color=PALETTE[2], hovertemplate="%{y}: %{x:.4g} FLOPs<extra></extra>"))
    fig.update_layout(xaxis_title="forward FLOPs (all instances)")
    return _layout(fig, "Where the forward FLOPs go", max(260, 22 * len(rows) + 80))


def compare_figure(rows: Sequence[dict], metric: str, title: str, unit: str = "") -> go.Figure:
    """One bar per compared setting/device of ``row[metric]``; bars of settings that do not fit are red."""
    fig = go.Figure(go.Bar(x=[r["setting"] for r in rows], y=[r[metric] for r in rows],
                           marker_color=[PALETTE[0] if r.get("fits", True) else "#D62728" for r in rows],
                           hovertemplate="%{x}: %{y:.4g} " + unit + "<extra></extra>"))
    fig.update_layout(yaxis_title=f"{metric} {('(' + unit + ')') if unit else ''}")
    return _layout(fig, title, 320)


def sweep_figure(rows: Sequence[dict], field: str) -> go.Figure:
    """Memory (left axis, GiB) and time (right axis, s) against one swept workload field, with capacity."""
    xs = [r[field] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[r["device_total_GiB"] for r in rows], name="device memory (GiB)",
                             mode="lines+markers", line=dict(color=PALETTE[0])))
    fig.add_trace(go.Scatter(x=xs, y=[r["capacity_GiB"] for r in rows], name="capacity (GiB)",
                             mode="lines", line=dict(color="#D62728", dash="dash")))
    fig.add_trace(go.Scatter(x=xs, y=[r["time_s"] for r in rows], name="time (s)", mode="lines+markers",
                             line=dict(color=PALETTE[1]), yaxis="y2"))
    fig.update_layout(xaxis=dict(title=field, type="log"), yaxis=dict(title="GiB"),
                      yaxis2=dict(title="seconds", overlaying="y", side="right"))
    return _layout(fig, f"Memory and time vs {field}", 360)


def pareto_figure(points: Iterable[dict], x: str = "time_s", y: str = "cost_usd", label: str = "setting",
                  x_title: str = "time (s)", y_title: str = "cost (USD)") -> go.Figure:
    """Scatter of ``y`` vs ``x`` with the Pareto front (no other point is both faster and cheaper) joined."""
    pts = [p for p in points if p.get(x) is not None and p.get(y) is not None
           and math.isfinite(p[x]) and math.isfinite(p[y])]
    front = pareto_front(pts, x, y)
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[p[x] for p in pts], y=[p[y] for p in pts], mode="markers+text",
                             text=[p[label] for p in pts], textposition="top center", name="options",
                             marker=dict(size=10, color=PALETTE[0])))
    fig.add_trace(go.Scatter(x=[p[x] for p in front], y=[p[y] for p in front], mode="lines",
                             name="Pareto front", line=dict(color=PALETTE[1], dash="dash")))
    fig.update_layout(xaxis_title=x_title, yaxis_title=y_title)
    return _layout(fig, "Cost vs time (lower left is better)", 380)


def pareto_front(points: Sequence[dict], x: str, y: str) -> list[dict]:
    """Points not dominated by another (smaller-or-equal in both, smaller in one), sorted by ``x``."""
    out = []
    best_y = math.inf
    for p in sorted(points, key=lambda p: (p[x], p[y])):
        if p[y] < best_y:
            out.append(p)
            best_y = p[y]
    return out


def plan_step_figure(plan) -> go.Figure:
    """One optimizer step of a training plan: compute, bubble, optimizer, exposed communication (s)."""
    rows = plan_step_rows(plan)[:4]
    fig = go.Figure()
    for i, r in enumerate(rows):
        fig.add_trace(go.Bar(name=r["part"], x=[r["seconds"]], y=["step"], orientation="h",
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate=f"{r['part']}: %{{x:.4g}} s<extra></extra>"))
    fig.update_layout(barmode="stack", xaxis_title="seconds")
    return _layout(fig, f"One optimizer step: {plan.step.step_s:.4g} s on {plan.num_devices} devices", 240)


def plan_memory_figure(plan) -> go.Figure:
    """Per-device memory of a training plan (GiB): weights, gradients, optimizer states, activations and other
    live tensors, runtime overhead, against capacity."""
    m = plan.step.memory_bytes
    parts = [("weights", m.weights), ("gradients", m.gradients), ("optimizer states", m.optimizer)]
    rest = m.peak - sum(v for _, v in parts)
    parts.append(("activations and other live tensors", max(rest, 0.0)))
    parts.append(("runtime overhead", m.device_total - m.peak))
    verdict = "fits" if plan.step.fits else "does NOT fit"
    return _hbar_stack(parts, f"Memory per device: {m.device_total / GiB:,.2f} GiB, {verdict}", 260,
                       m.capacity / GiB)


def scaling_figure(rows: Sequence[dict]) -> go.Figure:
    """Wall-clock days (left) and cost (right) against the number of devices."""
    xs = [r["devices"] for r in rows]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[r["wall_clock_days"] for r in rows], name="wall clock (days)",
                             mode="lines+markers", line=dict(color=PALETTE[0]),
                             marker=dict(symbol=["circle" if r["fits"] else "x" for r in rows], size=9)))
    fig.add_trace(go.Scatter(x=xs, y=[r["cost_usd"] for r in rows], name="cost (USD)", mode="lines+markers",
                             line=dict(color=PALETTE[1]), yaxis="y2"))
    fig.update_layout(xaxis=dict(title="devices", type="log"), yaxis=dict(title="days", type="log"),
                      yaxis2=dict(title="USD", overlaying="y", side="right"))
    return _layout(fig, "Time and cost vs number of devices (x: does not fit)", 340)


def serving_figure(plan) -> go.Figure:
    """Throughput (left) and per-token decode latency (right) against batch size; batches that do not fit are x."""
    pts = plan.points
    xs = [p.batch for p in pts]
    sym = ["circle" if p.fits else "x" for p in pts]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[p.throughput_tokens_per_s for p in pts], name="throughput (tokens/s)",
                             mode="lines+markers", marker=dict(symbol=sym, size=9), line=dict(color=PALETTE[0])))
    fig.add_trace(go.Scatter(x=xs, y=[p.decode_per_token_s * 1e3 for p in pts], name="decode step (ms)",
                             mode="lines+markers", marker=dict(symbol=sym, size=9), line=dict(color=PALETTE[1]),
                             yaxis="y2"))
    fig.update_layout(xaxis=dict(title="batch", type="log"), yaxis=dict(title="tokens/s"),
                      yaxis2=dict(title="ms per decode step", overlaying="y", side="right"))
    return _layout(fig, f"Serving {plan.model} on {plan.hardware} (tp={plan.tp}): throughput and latency", 340)


def serving_cost_figure(plan) -> go.Figure:
    pts = [p for p in plan.points if p.usd_per_million_tokens is not None and math.isfinite(p.usd_per_million_tokens)]
    fig = go.Figure(go.Bar(x=[str(p.batch) for p in pts], y=[p.usd_per_million_tokens for p in pts],
                           marker_color=[PALETTE[2] if p.fits else "#D62728" for p in pts],
                           hovertemplate="batch %{x}: $%{y:.4g} per million tokens<extra></extra>"))
    fig.update_layout(xaxis_title="batch", yaxis_title="USD per million generated tokens", yaxis_type="log",
                      xaxis_type="category")
    return _layout(fig, "$ per million generated tokens (red: does not fit)", 300)

