"""Plotly figures for the dashboard: pure functions, results in, ``plotly.graph_objects.Figure`` out.

Nothing here computes a new number: every bar and point is a value of an ``Estimate`` (or of the rows
``costmodel.ui.tables`` arranges from estimates), converted to display units (GiB = 2**30 bytes, seconds).
"""

from __future__ import annotations

import math
from typing import Iterable, Sequence

import plotly.graph_objects as go

from ..units import GiB
from .safe_text import plotly_text
from .tables import peak_segments, plan_step_rows

PALETTE = ("#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC")
UNFIT = "#D62728"  # does not fit in memory: red, and an x marker on point charts

# One colour per memory component on every chart (Estimate, Plan training, the HTML report): a component keeps
# its colour whichever other components a chart shows.
COMPONENT_COLOURS = {
    "weights": "#4C78A8", "gradients": "#F58518", "optimizer states": "#54A24B", "optimizer": "#54A24B",
    "activations": "#B279A2", "logits / loss buffers": "#FF9DA6", "logits_loss": "#FF9DA6", "kv_cache": "#72B7B2",
    "KV cache": "#72B7B2", "transient": "#9D755D", "runtime overhead": "#BAB0AC", "other live tensors": "#E8C547",
}


def component_colour(label: str) -> str:
    """The colour of a memory component, from its label ("activations (saved for backward)" -> activations)."""
    for key in sorted(COMPONENT_COLOURS, key=len, reverse=True):
        if label == key or label.startswith(key):
            return COMPONENT_COLOURS[key]
    if label.startswith("transient") or label.startswith("working set"):
        return COMPONENT_COLOURS["transient"]
    if label.startswith("activations"):
        return COMPONENT_COLOURS["activations"]
    return "#999999"


def _layout(fig: go.Figure, title: str, height: int = 360) -> go.Figure:
    fig.update_layout(_base_layout(title, height))
    return fig


def _base_layout(title: str, height: int) -> dict:
    # the title sits above the plot and the toolbar stands vertically at the right edge: on a phone it no longer
    # covers the title
    return dict(title=dict(text=title, x=0, xanchor="left", font=dict(size=15)), height=height + 40,
                margin=dict(l=10, r=44, t=60, b=10), modebar=dict(orientation="v"),
                legend=dict(orientation="h", yanchor="top", y=-0.28, xanchor="left", x=0))


def _si(x: float) -> str:
    from .format import fmt_num

    for scale, p in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale:
            return f"{fmt_num(x / scale)}{p}"
    return fmt_num(x)


def log_axis(values, title: str = "") -> dict:
    """A log axis people read: ticks only at values written out in full (1, 2, 5 x 10^k, or powers of two
    when the data are powers of two), never the bare minor digits ("8 9 1 2 3") plotly puts between decades."""
    vals = [v for v in values if v and v > 0 and math.isfinite(v)]
    axis = dict(type="log", title=dict(text=title))
    if not vals:
        return axis
    lo, hi = min(vals), max(vals)
    if all(math.log2(v).is_integer() for v in vals) and hi / lo <= 2 ** 20:
        ticks = [2 ** k for k in range(int(math.log2(lo)), int(math.log2(hi)) + 1)]
        if len(ticks) > 12:
            ticks = ticks[:: math.ceil(len(ticks) / 12)]
    else:
        ticks = []
        mult = (1, 2, 5) if hi / lo < 1e4 else (1,)
        for e in range(int(math.floor(math.log10(lo))) - 1, int(math.ceil(math.log10(hi))) + 1):
            ticks.extend(m * 10 ** e for m in mult)
        ticks = [t for t in ticks if lo / 1.5 <= t <= hi * 1.5] or [lo, hi]
    axis.update(tickmode="array", tickvals=ticks, ticktext=[_si(t) for t in ticks])
    return axis


def _capacity_line(cap_gib: float) -> tuple[dict, dict]:
    """A dashed vertical line at the device's capacity (GiB) and its label, as a layout shape + annotation
    (built as plain dicts: plotly's add_vline is slow for an interactive page)."""
    from .format import fmt_bytes

    shape = dict(type="line", xref="x", yref="paper", x0=cap_gib, x1=cap_gib, y0=0, y1=1,
                 line=dict(color=UNFIT, width=3, dash="dash"))
    note = dict(xref="x", yref="paper", x=cap_gib, y=1.0, yanchor="bottom", xanchor="right", showarrow=False,
                text=f"capacity {fmt_bytes(cap_gib * GiB)}")
    return shape, note


def _hbar_stack(parts, title: str, height: int, cap_gib: float) -> go.Figure:
    """Stacked horizontal bar of memory components against the device's capacity. In GiB, or in MiB / KiB for a
    small model (a 28x28 CNN is a few MiB: "0.00 GiB" helps nobody); the capacity line is drawn when it is
    within 50x the bar, else named in a note (the bar would be a sliver)."""
    from .format import fmt_bytes

    total = sum(b for _, b in parts)
    scale, unit = (GiB, "GiB (2^30 bytes)") if total >= GiB else ((2**20, "MiB (2^20 bytes)") if total >= 2**20
                                                                   else (2**10, "KiB (2^10 bytes)"))
    traces = [go.Bar(name=label, x=[b / scale], y=["per device"], orientation="h",
                     marker_color=component_colour(label),
                     hovertemplate=f"{label}: {fmt_bytes(b)}<extra></extra>")
              for label, b in parts]
    cap = cap_gib * GiB / scale
    shapes, notes = [], []
    if cap <= 50 * total / scale:
        shape, note = _capacity_line(cap_gib)
        shape.update(x0=cap, x1=cap)
        note.update(x=cap)
        shapes, notes = [shape], [note]
    else:
        notes = [dict(xref="paper", yref="paper", x=1, y=1.0, xanchor="right", yanchor="bottom", showarrow=False,
                      text=f"capacity {fmt_bytes(cap_gib * GiB)}: this uses {total / (cap_gib * GiB):.2%}")]
    return go.Figure(traces, layout=dict(**_base_layout(title, height), barmode="stack", shapes=shapes,
                                         annotations=notes, xaxis=dict(title=dict(text=unit), rangemode="tozero")))


def memory_figure(est) -> go.Figure:
    """Stacked bar of what is alive at the peak (GiB) against the device's capacity (red line)."""
    m = est.memory_bytes
    from .format import fmt_bytes

    verdict = "fits" if m.fits else "does NOT fit"
    return _hbar_stack(peak_segments(est), f"Memory at the peak ({m.peak_phase}): {fmt_bytes(m.device_total)}, "
                       f"{verdict}", 300, m.capacity / GiB)


def time_figure(est) -> go.Figure:
    """Bar per phase of ``est.time_s`` (seconds), with the unit's total and each phase's bound in the title."""
    from .format import fmt_seconds
    from .tables import bound_by_phase

    phases = est.time_s.phases()
    fig = go.Figure(go.Bar(x=[k for k, _ in phases], y=[v for _, v in phases], marker_color=PALETTE[0],
                           text=[fmt_seconds(v) for _, v in phases], textposition="outside",
                           hovertemplate="%{x}: %{text}<extra></extra>"))
    fig.update_layout(yaxis=dict(title=dict(text="seconds"), rangemode="tozero"))
    bounds = ", ".join(f"{p} {b}" for p, b in bound_by_phase(est))
    return _layout(fig, f"Time per phase: {fmt_seconds(est.time_s.per_unit_s)} per {est.unit} (bound: {bounds})", 320)


def roofline_figure(est, hardware, points=None) -> go.Figure:
    """The device's roofline (attainable FLOP/s vs arithmetic intensity, at the achievable fractions of peak the
    estimate assumed, and at the datasheet's) with the run's phases as points: a training step, or a prefill and
    a decode step, or a forward, each at its arithmetic intensity and achieved FLOP/s
    (``costmodel.ui.sweeps.roofline_points``). A point below the roof is held back by something else: host
    overhead, or latency."""
    from .format import fmt_num

    eff = est.assumptions.get("efficiency", {})
    peak = float(est.perf.peak_flops_per_s or 0.0)
    bw = float(hardware.memory_bandwidth_bytes_per_s)
    flop_rate = peak * float(eff.get("matmul", 1.0))
    byte_rate = bw * float(eff.get("bandwidth", 1.0))
    ridge = flop_rate / byte_rate if byte_rate else 1.0
    lo_x = ridge / 1000
    hi_x = ridge * 1000
    if points:
        xs_pts = [p["intensity"] for p in points if p["intensity"] > 0]
        if xs_pts:
            lo_x, hi_x = min(lo_x, min(xs_pts) / 3), max(hi_x, max(xs_pts) * 3)
    n = 61
    xs = [lo_x * (hi_x / lo_x) ** (i / (n - 1)) for i in range(n)]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=xs, y=[min(flop_rate, byte_rate * x) for x in xs], name="achievable roofline",
                             line=dict(color=PALETTE[0], width=3), hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=xs, y=[min(peak, bw * x) for x in xs], name="datasheet roofline",
                             line=dict(color="#999999", dash="dot"), hoverinfo="skip"))
    shapes, notes = [], []
    ys = [min(peak, bw * x) for x in xs]
    if points:
        colours = {"step": PALETTE[1], "prefill": PALETTE[1], "decode": PALETTE[3], "forward": PALETTE[1]}
        for p in points:
            fig.add_trace(go.Scatter(
                x=[p["intensity"]], y=[p["flops_per_s"]], mode="markers+text", name=p["phase"],
                text=[f"{p['phase']} ({p['bound']})"], textposition="top center",
                marker=dict(size=13, color=colours.get(p["phase"], PALETTE[2]), line=dict(color="white", width=1)),
                hovertemplate=(f"{p['phase']}: %{{x:,.3g}} FLOPs/byte, %{{y:.3s}}FLOP/s, bound {p['bound']}"
                               "<extra></extra>")))
            ys.append(p["flops_per_s"])
    else:  # the pass the FLOPs belong to: a training step, a prefill (generation) or a forward
        t = est.time_s
        total_t = t.prefill_s if est.unit == "request" else t.per_unit_s
        if total_t:
            achieved = est.flops.total / total_t
            shapes.append(dict(type="line", xref="paper", yref="y", x0=0, x1=1, y0=achieved, y1=achieved,
                               line=dict(color=PALETTE[1], dash="dash")))
            notes.append(dict(xref="paper", yref="y", x=1.0, xanchor="right", y=math.log10(achieved),
                              yanchor="bottom", showarrow=False,
                              text=f"this workload: {achieved / 1e12:,.1f} TFLOP/s (MFU {est.perf.mfu:.0%})"))
            ys.append(achieved)
    fig.update_layout(**_base_layout(f"Roofline of {est.hardware}: ridge at {fmt_num(ridge)} FLOPs/byte", 360),
                      shapes=shapes, annotations=notes,
                      xaxis=log_axis([lo_x, hi_x], "arithmetic intensity (FLOPs per byte)"),
                      yaxis=log_axis([y for y in ys if y > 0], "FLOP/s"))
    fig.update_xaxes(tickmode="array", tickvals=[10.0 ** k for k in range(int(math.floor(math.log10(lo_x))),
                                                                         int(math.ceil(math.log10(hi_x))) + 1)],
                     ticktext=[_si(10.0 ** k) for k in range(int(math.floor(math.log10(lo_x))),
                                                            int(math.ceil(math.log10(hi_x))) + 1)])
    return fig


def layers_figure(est, top: int = 15) -> go.Figure:
    """The ``top`` ledger rows by forward FLOPs (all instances), as horizontal bars."""
    rows = sorted(est.layers, key=lambda r: r.forward_flops * r.count, reverse=True)[:top]
    rows = rows[::-1]
    fig = go.Figure(go.Bar(x=[r.forward_flops * r.count for r in rows],
                           y=[plotly_text(f"{r.name} (x{r.count})") for r in rows], orientation="h",
                           marker_color=PALETTE[2], hovertemplate="%{y}: %{x:.4g} FLOPs<extra></extra>"))
    fig.update_layout(xaxis_title="forward FLOPs (all instances)")
    return _layout(fig, "Where the forward FLOPs go", max(260, 22 * len(rows) + 80))


def compare_figure(rows: Sequence[dict], metric: str, title: str, unit: str = "") -> go.Figure:
    """One bar per compared setting/device of ``row[metric]``; bars of settings that do not fit are red."""
    fig = go.Figure(go.Bar(x=[plotly_text(r["setting"]) for r in rows], y=[r[metric] for r in rows],
                           marker_color=[PALETTE[0] if r.get("fits", True) else UNFIT for r in rows],
                           hovertemplate="%{x}: %{y:.4g} " + unit + "<extra></extra>"))
    fig.update_layout(yaxis=dict(title=dict(text=f"{metric} {('(' + unit + ')') if unit else ''}"), rangemode="tozero"))
    if any(not r.get("fits", True) for r in rows):
        title += " (red: does not fit)"
    return _layout(fig, title, 320)


def _two_panels(xs, top: tuple, bottom: tuple, x_axis: dict, title: str, height: int = 420,
                extra_top=(), fits=None) -> go.Figure:
    """Two stacked panels sharing x (instead of two y axes on one plot, whose ticks never line up): ``top`` and
    ``bottom`` are (name, ys, axis title, colour, log?). ``fits``: False points are drawn as red x."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08)
    sym = None if fits is None else ["circle" if f else "x" for f in fits]
    col = None if fits is None else [None if f else UNFIT for f in fits]
    for row, (name, ys, ytitle, colour, logy) in ((1, top), (2, bottom)):
        marker = dict(size=9, symbol=sym, color=[c or colour for c in col] if col else colour)
        fig.add_trace(go.Scatter(x=xs, y=ys, name=name, mode="lines+markers", line=dict(color=colour),
                                 marker=marker), row=row, col=1)
        yaxis = log_axis(ys, ytitle) if logy else dict(title=dict(text=ytitle), rangemode="tozero")
        fig.update_yaxes(**yaxis, row=row, col=1)
    for tr in extra_top:
        fig.add_trace(tr, row=1, col=1)
    fig.update_xaxes(**x_axis, row=2, col=1)
    fig.update_xaxes(type=x_axis.get("type", "linear"), tickmode=x_axis.get("tickmode"),
                     tickvals=x_axis.get("tickvals"), ticktext=x_axis.get("ticktext"), row=1, col=1)
    fig.update_layout(_base_layout(title, height))
    return fig


def sweep_figure(rows: Sequence[dict], field: str) -> go.Figure:
    """Memory (top, GiB, with capacity) and time (bottom, s) against one swept workload field."""
    xs = [r[field] for r in rows]
    cap = go.Scatter(x=xs, y=[r["capacity_GiB"] for r in rows], name="capacity (GiB)", mode="lines",
                     line=dict(color=UNFIT, dash="dash"))
    fits = [r.get("fits", True) for r in rows]
    fig = _two_panels(xs, ("device memory (GiB)", [r["device_total_GiB"] for r in rows], "GiB", PALETTE[0], False),
                      ("time (s)", [r["time_s"] for r in rows], "seconds", PALETTE[1], False),
                      log_axis(xs, field), f"Memory and time vs {field}", extra_top=(cap,), fits=fits)
    # keep the trace order the tests and downloads know: memory, capacity, time
    fig.data = (fig.data[0], fig.data[2], fig.data[1])
    return fig


def pareto_figure(points: Iterable[dict], x: str = "time_s", y: str = "cost_usd", label: str = "setting",
                  x_title: str = "time (s)", y_title: str = "cost (USD)") -> go.Figure:
    """Scatter of ``y`` vs ``x``; the Pareto front (no other point is both faster and cheaper) joined and
    labelled, the other options unlabelled (hover names them), options that do not fit drawn as red x and left
    out of the front."""
    pts = [p for p in points if p.get(x) is not None and p.get(y) is not None
           and math.isfinite(p[x]) and math.isfinite(p[y])]
    ok = [p for p in pts if p.get("fits", True)]
    bad = [p for p in pts if not p.get("fits", True)]
    front = pareto_front(ok, x, y)
    front_ids = {id(p) for p in front}
    rest = [p for p in ok if id(p) not in front_ids]
    n_ok, n_bad = len(ok), len(bad)
    # a chart of tens of thousands of layouts is slow to send and no easier to read: every point of the front,
    # and an even sample (by x) of the rest, said in the legend
    ok = front + thin(rest, x, MAX_SCATTER_POINTS)
    bad = thin(bad, x, MAX_SCATTER_POINTS // 2)
    fig = go.Figure()
    if bad:  # underneath, faint: they are not options
        fig.add_trace(go.Scatter(x=[p[x] for p in bad], y=[p[y] for p in bad], mode="markers",
                                 name="does not fit" + (f" ({len(bad):,} of {n_bad:,} shown)" if len(bad) < n_bad
                                                        else ""), text=[plotly_text(p[label]) for p in bad],
                                 hovertemplate="%{text} (does not fit)<extra></extra>",
                                 marker=dict(size=7, symbol="x", color=UNFIT, opacity=0.45)))
    fig.add_trace(go.Scatter(x=[p[x] for p in ok], y=[p[y] for p in ok], mode="markers",
                             name="options" + (f" ({len(ok):,} of {n_ok:,} shown)" if len(ok) < n_ok else ""),
                             text=[plotly_text(p[label]) for p in ok], hovertemplate="%{text}: %{x:.4g}, %{y:.4g}<extra></extra>",
                             marker=dict(size=8, color=PALETTE[0], opacity=0.45 if len(rest) > 30 else 0.8)))
    positions = ["top right", "bottom right", "top left", "bottom left"]
    fig.add_trace(go.Scatter(x=[p[x] for p in front], y=[p[y] for p in front], mode="lines+markers+text",
                             name="Pareto front", text=[plotly_text(p[label]) for p in front],
                             textposition=[positions[i % len(positions)] for i in range(len(front))],
                             textfont=dict(size=12, color="#333333"),
                             line=dict(color=PALETTE[1], dash="dash"), marker=dict(size=11, color=PALETTE[1])))
    fig.update_layout(xaxis=dict(title=dict(text=x_title), rangemode="tozero"),
                      yaxis=dict(title=dict(text=y_title), rangemode="tozero"))
    return _layout(fig, "Cost vs time (lower left is better; labelled: the Pareto front)", 380)


MAX_SCATTER_POINTS = 1500  # drawn options of a cost-vs-time chart beyond its Pareto front


def thin(points: Sequence[dict], x: str, most: int) -> list[dict]:
    """At most ``most`` of ``points``, evenly spaced in their order by ``x`` (all of them when fewer)."""
    if len(points) <= most:
        return list(points)
    ordered = sorted(points, key=lambda p: p[x])
    step = len(ordered) / most
    return [ordered[int(i * step)] for i in range(most)]


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
    fig.update_xaxes(rangemode="tozero")
    fig.update_layout(barmode="stack", xaxis_title="seconds")
    from .format import fmt_seconds

    return _layout(fig, f"One optimizer step: {fmt_seconds(plan.step.step_s)} on {plan.num_devices:,} devices", 240)


def plan_memory_figure(plan) -> go.Figure:
    """Per-device memory of a training plan (GiB): weights, gradients, optimizer states, activations and other
    live tensors, runtime overhead, against capacity."""
    m = plan.step.memory_bytes
    parts = [("weights", m.weights), ("gradients", m.gradients), ("optimizer states", m.optimizer)]
    rest = m.peak - sum(v for _, v in parts)
    parts.append(("activations and other live tensors", max(rest, 0.0)))
    parts.append(("runtime overhead", m.device_total - m.peak))
    verdict = "fits" if plan.step.fits else "does NOT fit"
    from .format import fmt_bytes

    return _hbar_stack(parts, f"Memory per device: {fmt_bytes(m.device_total)}, {verdict}", 260, m.capacity / GiB)


def scaling_figure(rows: Sequence[dict]) -> go.Figure:
    """Wall-clock days (top) and cost (bottom) against the number of devices; layouts that do not fit are red x."""
    xs = [r["devices"] for r in rows]
    fits = [r["fits"] for r in rows]
    return _two_panels(xs, ("wall clock (days)", [r["wall_clock_days"] for r in rows], "days", PALETTE[0], True),
                       ("cost (USD)", [r["cost_usd"] for r in rows], "USD", PALETTE[1], False),
                       log_axis(xs, "devices"), "Time and cost vs number of devices (x: does not fit)", fits=fits)


def serving_figure(plan) -> go.Figure:
    """Throughput (top) and per-token decode latency (bottom) against batch size; batches that do not fit are x."""
    pts = plan.points
    xs = [p.batch for p in pts]
    fits = [p.fits for p in pts]
    return _two_panels(xs, ("throughput (tokens/s)", [p.throughput_tokens_per_s for p in pts], "tokens/s",
                            PALETTE[0], False),
                       ("decode step (ms)", [p.decode_per_token_s * 1e3 for p in pts], "ms per decode step",
                        PALETTE[1], False),
                       log_axis(xs, "batch"),
                       f"Serving {plotly_text(plan.model)} on {plotly_text(plan.hardware)} (tp={plan.tp}): throughput and latency", fits=fits)


def serving_cost_figure(plan) -> go.Figure:
    pts = [p for p in plan.points if p.usd_per_million_tokens is not None and math.isfinite(p.usd_per_million_tokens)]
    fig = go.Figure(go.Bar(x=[str(p.batch) for p in pts], y=[p.usd_per_million_tokens for p in pts],
                           marker_color=[PALETTE[2] if p.fits else UNFIT for p in pts],
                           hovertemplate="batch %{x}: $%{y:.4g} per million tokens<extra></extra>"))
    fig.update_layout(xaxis=dict(title=dict(text="batch"), type="category"),
                      yaxis=log_axis([p.usd_per_million_tokens for p in pts], "USD per million generated tokens"))
    return _layout(fig, "$ per million generated tokens (red: does not fit)", 300)



def frontier_figure(cap) -> go.Figure:
    """Latency-throughput frontier of a capacity plan: output tokens/s per device against p99 TPOT for every
    simulated (device, TP, precision, rate); points missing an SLO are red x; the SLO is a dashed line."""
    fig = go.Figure()
    groups: dict = {}
    for p in cap.frontier:
        groups.setdefault((p.hardware, p.tp, p.precision, p.engine), []).append(p)
    for i, ((hw, tp, prec, eng), pts) in enumerate(sorted(groups.items())):
        pts = sorted(pts, key=lambda p: p.rate_per_s)
        fig.add_trace(go.Scatter(
            x=[p.tpot_p99_s * 1e3 for p in pts], y=[p.output_tokens_per_s_per_device for p in pts],
            name=f"{hw} tp{tp} {prec}", mode="lines+markers", line=dict(color=PALETTE[i % len(PALETTE)]),
            marker=dict(symbol=["circle" if p.feasible else "x" for p in pts], size=9,
                        color=[PALETTE[i % len(PALETTE)] if p.feasible else "#D62728" for p in pts]),
            customdata=[[p.rate_per_s, p.ttft_p99_s * 1e3] for p in pts],
            hovertemplate="%{y:.4g} tok/s/device at p99 TPOT %{x:.3g} ms<br>%{customdata[0]:.3g} req/s per replica, "
                          "p99 TTFT %{customdata[1]:.4g} ms<extra>" + f"{hw} tp{tp} {prec} ({eng})</extra>"))
    fig.add_vline(x=cap.slo_tpot_s * 1e3, line=dict(color="#D62728", dash="dash"),
                  annotation_text="TPOT SLO", annotation_position="top")
    fig.update_layout(xaxis=dict(title="p99 time per output token (ms)", type="log"),
                      yaxis=dict(title="output tokens/s per device"))
    return _layout(fig, "Latency-throughput frontier (x: misses an SLO)", 380)


def latency_figure(summary: dict) -> go.Figure:
    """p50 / p90 / p99 of TTFT, TPOT and end-to-end latency of a simulation summary (ms, log axis)."""
    fig = go.Figure()
    for i, q in enumerate(("p50", "p90", "p99")):
        fig.add_trace(go.Bar(name=q, x=["TTFT", "TPOT", "end-to-end"],
                             y=[summary[m][q] * 1e3 for m in ("ttft_s", "tpot_s", "e2e_s")],
                             marker_color=PALETTE[i % len(PALETTE)],
                             hovertemplate="%{x} " + q + ": %{y:.4g} ms<extra></extra>"))
    fig.update_layout(barmode="group", yaxis=dict(title="ms", type="log"))
    return _layout(fig, "Simulated latency percentiles (one replica)", 320)
