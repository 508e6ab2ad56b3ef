"""Results -> rows for tables and downloads: re-arranged, never recomputed (the only arithmetic is unit
conversion)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any, Iterable, Mapping

from ..safe_json import finite_json
from ..units import GiB
from .safe_text import csv_cell
from .format import fmt_checkpointing


MEMORY_LABELS = {
    "weights": "weights", "gradients": "gradients", "optimizer": "optimizer states",
    "activations": "activations (saved for backward)", "logits_loss": "logits / loss buffers",
    "kv_cache": "KV cache", "transient": "transient (working set / step temporaries)",
    "runtime_overhead": "runtime overhead (CUDA context + allocator slack)",
}


def peak_segments(est) -> list[tuple[str, float]]:
    """What is alive at the peak, as (label, bytes) summing exactly to ``memory_bytes.device_total``.

    The estimate lists each component at its own size; they are not all alive at once (gradients appear
    as activations are freed). The peak's phase says which are: start of backward = weights + optimizer
    states + every saved activation + loss buffers; end of backward = weights + states + gradients + what
    is still saved; optimizer step = weights + gradients + states + step temporaries; inference = weights
    + KV cache + working set. Any rest the phase does not name is shown as "other live tensors"."""
    m = est.memory_bytes
    phase = m.peak_phase
    if est.workload.task != "train":
        order = ["weights", "kv_cache", "transient"]
    elif phase == "optimizer step":
        order = ["weights", "optimizer", "gradients", "transient"]
    elif phase == "end of backward":
        order = ["weights", "optimizer", "gradients", "activations", "logits_loss"]
    else:
        order = ["weights", "optimizer", "activations", "logits_loss", "gradients"]
    remaining = m.peak
    out = []
    for key in order:
        take = min(float(getattr(m, key)), remaining)
        if take > 0:
            out.append((MEMORY_LABELS[key], take))
            remaining -= take
    if remaining > 0:
        out.append(("other live tensors at the peak", remaining))
    out.append((MEMORY_LABELS["runtime_overhead"], m.runtime_overhead))
    return out


def memory_rows(est) -> list[dict]:
    m = est.memory_bytes
    rows = [{"component": MEMORY_LABELS[k], "key": k, "bytes": float(getattr(m, k)),
             "GiB": float(getattr(m, k)) / GiB} for k in MEMORY_LABELS]
    for k, label in (("peak", "peak allocated (torch max_memory_allocated)"),
                     ("device_total", "device total (what nvidia-smi shows)"), ("capacity", "device capacity"),
                     ("headroom", "headroom (capacity - device total)")):
        rows.append({"component": label, "key": k, "bytes": float(getattr(m, k)), "GiB": float(getattr(m, k)) / GiB})
    return rows


def summary_rows(est) -> list[dict]:
    """Every number of an estimate as (group, quantity, value, unit) rows, in the JSON's keys."""
    d = est.to_dict()
    units = {"params": "parameters", "flops": "FLOPs", "memory_bytes": "bytes", "time_s": "s"}
    rows = []
    for group in ("params", "flops", "memory_bytes", "time_s"):
        for k, v in d[group].items():
            unit = units[group]
            if group == "flops" and k.endswith("_macs"):
                unit = "multiply-adds"
            if isinstance(v, bool) or isinstance(v, str):
                unit = ""
            rows.append({"group": group, "quantity": k, "value": v, "unit": unit})
    for group, unit in (("cost_usd", "USD"), ("energy_kwh", "kWh"), ("carbon_kg_co2e", "kg CO2e")):
        for k, v in d.get(group, {}).items():
            rows.append({"group": group, "quantity": k, "value": v, "unit": unit})
    for k, v in d["perf"].items():
        unit = {"peak_flops_per_s": "FLOP/s", "tokens_per_s": "tokens/s", "samples_per_s": "samples/s",
                "prefill_tokens_per_s": "tokens/s", "host_s": "s", "device_s": "s"}.get(k, "")
        rows.append({"group": "perf", "quantity": k, "value": v, "unit": unit})
    return rows


def time_rows(est) -> list[dict]:
    """Every time of the run (its JSON keys), in seconds."""
    return [{"phase": k, "seconds": float(v)} for k, v in est.time_s.to_dict().items()]


def layer_rows(est) -> list[dict]:
    """The per-layer ledger (``est.layers``), per instance and for all ``count`` instances."""
    out = []
    for r in est.layers:
        d = asdict(r)
        n = d["count"]
        out.append({
            "layer": d["name"], "kind": d["kind"], "count": n, "params": d["params"],
            "params_all": d["params"] * n, "forward_flops": d["forward_flops"],
            "forward_flops_all": d["forward_flops"] * n, "backward_flops_all": d["backward_flops"] * n,
            "weight_bytes_all": d["weight_bytes"] * n, "activation_bytes_all": d["activation_bytes"] * n,
            "kv_cache_bytes_all": d["kv_cache_bytes"] * n,
        })
    return out


def to_frame(rows: Iterable[dict]):
    import pandas as pd

    return pd.DataFrame(list(rows))


def to_csv(rows: Iterable[dict]) -> str:
    return to_frame(rows).map(csv_cell).to_csv(index=False)  # formula-like text cells get a leading '


def to_json(obj) -> str:
    return json.dumps(finite_json(obj), indent=1, default=str, allow_nan=False)  # strict JSON: NaN/inf -> null


def assumption_rows(assumptions: Mapping[str, Any]) -> list[dict]:
    """``{"name": {"value", "source"}}`` (costmodel.costs assumptions) -> rows for a table."""
    rows = []
    for k, v in (assumptions or {}).items():
        if isinstance(v, Mapping):
            rows.append({"assumption": k, "value": str(v.get("value", "")), "source": str(v.get("source", ""))})
        else:
            rows.append({"assumption": k, "value": str(v), "source": ""})
    return rows


def plan_training_rows(plan) -> list[dict]:
    """Headline numbers of a TrainingPlan as (quantity, value, unit) rows."""
    c = plan.cost
    s = plan.step
    m = s.memory_bytes
    rows = [
        ("devices", plan.num_devices, ""), ("tokens", plan.tokens, "tokens"), ("steps", plan.steps, ""),
        ("global batch", s.global_batch, "samples"), ("gradient accumulation", s.grad_accum, "micro-batches"),
        ("step time", s.step_s, "s"), ("wall clock", plan.wall_clock_s, "s"), ("GPU-hours", plan.gpu_hours, "h"),
        ("model FLOPs", plan.total_flops, "FLOPs"), ("FLOPs with recompute", plan.total_flops_with_recompute, "FLOPs"),
        ("6 N D", plan.six_n_d_flops, "FLOPs"), ("MFU", s.mfu, ""), ("HFU", s.hfu, ""),
        ("compute cost", c.compute_usd, "USD"), ("storage cost", c.storage_usd, "USD"),
        ("energy", c.energy_kwh, "kWh"), ("electricity cost (not in cloud price)", c.energy_usd, "USD"),
        ("carbon", c.carbon_kg_co2e, "kg CO2e"),
        ("per-device peak", m.peak, "bytes"), ("per-device total", m.device_total, "bytes"),
        ("capacity", m.capacity, "bytes"), ("fits", s.fits, ""),
    ]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def plan_step_rows(plan) -> list[dict]:
    """Where one optimizer step's time goes (seconds): compute (without the bubble), pipeline bubble,
    optimizer, exposed communication; and each collective before overlap."""
    s = plan.step
    rows = [{"part": "compute (micro-batches)", "seconds": s.compute_s - s.bubble_s},
            {"part": "pipeline bubble", "seconds": s.bubble_s},
            {"part": "optimizer step", "seconds": s.optimizer_s},
            {"part": "exposed communication", "seconds": s.exposed_comm_s}]
    rows += [{"part": f"{t.name} (before overlap)", "seconds": t.seconds} for t in s.comm_s.terms]
    return rows


def layout_rows(results: Iterable) -> list[dict]:
    """One row per ``plans.LayoutResult`` (read attribute by attribute: a search returns tens of thousands)."""
    out = []
    for r in results:
        lay = r.layout
        out.append({"dp": lay.dp, "tp": lay.tp, "pp": lay.pp, "ep": lay.ep, "zero": lay.zero,
                    "micro_batch": lay.micro_batch, "grad_checkpointing": fmt_checkpointing(lay.grad_checkpointing),  # one type per column
                    "devices": r.num_devices, "step_s": r.step_s, "wall_clock_days": r.wall_clock_s / 86400,
                    "gpu_hours": r.gpu_hours, "cost_usd": r.cost_usd, "mfu": r.mfu,
                    "device_total_GiB": r.device_total_bytes / GiB, "grad_accum": r.grad_accum, "fits": r.fits})
    return out


def serving_rows(plan) -> list[dict]:
    return [{**asdict(p), "device_total_GiB": p.device_total_bytes / GiB} for p in plan.points]


def serving_summary_rows(plan) -> list[dict]:
    best = plan.cheapest_fitting_point
    rows = [("tensor-parallel devices", plan.tp, ""), ("weights per device", plan.weights_bytes_per_device, "bytes"),
            ("KV cache per token", plan.kv_cache_bytes_per_token, "bytes"), ("largest batch that fits", plan.max_batch, ""),
            ("longest context that fits (batch 1)", plan.max_context, "tokens")]
    if best is not None:
        rows += [("cheapest batch that fits", best.batch, ""), ("its $ per million tokens", best.usd_per_million_tokens, "USD"),
                 ("its throughput", best.throughput_tokens_per_s, "tokens/s")]
    return [{"quantity": q, "value": v, "unit": u} for q, v, u in rows]


def compare_row(label: str, est) -> dict:
    """One row of a comparison table: the headline numbers of an estimate. ``time_s`` is the time of the run's
    unit (a training step, a whole request or a forward) and the money, energy and carbon columns are for that
    same unit (``per_unit`` names it)."""
    m = est.memory_bytes
    nan = float("nan")
    cost, kwh, co2 = est.cost_usd, est.energy_kwh, est.carbon_kg_co2e
    row = {
        "setting": label, "hardware": est.hardware, "params_trainable": est.params.trainable,
        "flops_total": est.flops.total, "peak_GiB": m.peak / GiB, "device_total_GiB": m.device_total / GiB,
        "capacity_GiB": m.capacity / GiB, "weights_GiB": m.weights / GiB, "fits": bool(m.fits),
        "per_unit": est.unit, "time_s": est.time_s.per_unit_s,
        "bound": est.perf.bound, "mfu": est.perf.mfu, "tokens_per_s": est.perf.tokens_per_s,
    }
    if est.unit == "request":
        row["ttft_s"] = est.time_s.prefill_s
        row["decode_s_per_token"] = est.time_s.decode_per_token_s
    row["usd"] = cost.per_unit if cost else nan
    if est.modality == "text":
        row["usd_per_million_tokens"] = cost.per_million_tokens if cost else nan
    else:
        row["usd_per_thousand_samples"] = cost.per_thousand_samples if cost else nan
    row["kwh"] = kwh.per_unit if kwh else nan
    row["kg_co2e"] = co2.per_unit if co2 else nan
    return row

def latency_rows(summary: dict) -> list[dict]:
    """One row per latency metric of a simulation summary (milliseconds)."""
    names = {"ttft_s": "time to first token", "tpot_s": "time per output token", "e2e_s": "end-to-end"}
    return [{"metric": names[m], "p50_ms": summary[m]["p50"] * 1e3, "p90_ms": summary[m]["p90"] * 1e3,
             "p99_ms": summary[m]["p99"] * 1e3, "mean_ms": summary[m]["mean"] * 1e3} for m in names]


def capacity_rows(cap) -> list[dict]:
    """One row per fleet candidate of a capacity plan (costmodel.serving.capacity)."""
    return [{"hardware": c.hardware, "tp": c.tp, "precision": c.precision, "engine": c.engine,
             "feasible": c.feasible, "max_requests_per_s_per_replica": c.max_rate_per_replica,
             "replicas": c.replicas, "devices": c.devices, "usd_per_hour": c.usd_per_hour,
             "usd_per_million_tokens": c.usd_per_million_tokens, "kwh_per_million_tokens": c.kwh_per_million_tokens,
             "ttft_p99_ms": c.ttft_p99_s * 1e3, "tpot_p99_ms": c.tpot_p99_s * 1e3, "why": c.reason}
            for c in cap.candidates]


# ---- display: what a table shows (downloads keep the raw numbers) ------------------------------------------

def _kind_of_column(name: str) -> str:
    n = name.lower()
    if n in ("mfu", "hfu") or n.endswith("_pct_of_peak") or n.endswith("_fraction"):
        return "fraction"
    if n.endswith("_gib"):
        return "gib"
    if n == "bytes" or n.endswith("_bytes") or n.endswith("_bytes_all") or n.endswith("bytes_per_token"):
        return "bytes"
    if n in ("seconds", "time_s", "step_s", "ttft_s", "request_s", "wall_clock_s") or n.endswith("_s") \
            or n.endswith("_s_per_token") or n.startswith("seconds"):
        return "seconds"
    if n.startswith("usd") or n.endswith("_usd") or "usd_per" in n:
        return "usd"
    if "flops" in n:
        return "flops"
    if n.endswith("_days"):
        return "days"
    return ""


def display_rows(rows: Iterable[dict]) -> tuple[list[dict], dict]:
    """Rows as a table shows them, and a column -> format map (Streamlit NumberColumn formats): numbers stay
    numbers (sortable, and the same values as the downloads), shown for people: seconds with 4 significant
    figures and "s" (or in days from 100,000 s), dollars with thousands separators (or 3 significant figures
    below $1), bytes as whole numbers with separators, GiB with two decimals, FLOPs compact (1.2T), fractions as
    percentages, other whole numbers with separators, other decimals with 4 significant figures."""
    rows = [dict(r) for r in rows]
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    kinds = {c: _kind_of_column(c) for c in cols}
    for r in rows:
        for k, v in r.items():
            if kinds[k] == "bytes" and isinstance(v, float) and v == v and not isinstance(v, bool):
                r[k] = int(round(v))  # no fractional bytes on screen
    formats = {}
    for c in cols:
        vals = [r.get(c) for r in rows if isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)]
        vals = [v for v in vals if v == v]
        if not vals:
            continue
        kind, top = kinds[c], max(abs(v) for v in vals)
        if kind == "fraction":
            formats[c] = "percent"
        elif kind == "gib":
            formats[c] = "%.2f GiB"
        elif kind == "flops":
            formats[c] = "compact"
        elif kind == "seconds":
            formats[c] = "%.4g s" if top < 1e5 else "%.0f s"
        elif kind == "usd":
            formats[c] = "dollar" if top >= 1 else "$%.3g"
        elif kind == "days":
            formats[c] = "%.3g days" if top < 1000 else "%.0f days"
        elif kind == "bytes" or all(float(v).is_integer() for v in vals):
            formats[c] = "localized"
        else:
            formats[c] = "%.4g"
    return rows, formats


def display_value_rows(rows: Iterable[dict]) -> list[dict]:
    """(… value, unit) rows with the value as human text in its unit (``format.fmt_value``)."""
    from .format import fmt_value

    return [{**r, "value": fmt_value(r.get("value"), r.get("unit", ""))} for r in rows]


def bound_by_phase(est) -> list[tuple[str, str]]:
    """What limits each phase of the run: [("step", bound)] for training and one forward, [("prefill", bound),
    ("decode", bound)] for generation (``Perf.bound`` and ``Perf.decode_bound``)."""
    if est.unit == "request" and est.perf.decode_bound:
        return [("prefill", str(est.perf.bound)), ("decode", str(est.perf.decode_bound))]
    return [(est.unit, str(est.perf.bound))]
