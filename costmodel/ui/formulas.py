"""The formula behind each headline number, with the estimate's own values substituted (rendered with
st.latex on the pages); each points at the docs/formulas.md section that states it and its source."""

from __future__ import annotations

import math

from .format import fmt_gib, fmt_seconds


FORMULAS_DOC = "docs/formulas.md"


def _tex_num(x: float) -> str:
    if x == 0:
        return "0"
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e < 6:
        return f"{x:,.4g}".replace(",", "{,}")
    return f"{x / 10 ** e:.4g} \\times 10^{{{e}}}"


def formula_sections(est) -> list[dict]:
    """For each headline number: title, LaTeX with the estimate's own values substituted, a note, and the
    docs/formulas.md section that states the formula and its source."""
    d = est.to_dict()
    w = d["workload"]
    p, f, m = d["params"], d["flops"], d["memory_bytes"]
    train = w["task"] == "train"
    tokens = w["batch"] * w["seq"]
    out = [{
        "title": "Parameters",
        "latex": r"P = \sum_{\text{layers}} \text{count} \times \text{params}_\text{layer} = " + _tex_num(p["total"]),
        "note": "Linear d_in x d_out (+ bias), embedding num x dim, LayerNorm 2 x dim, RMSNorm dim; the per-layer "
                "table below lists every term. Trainable: all (full), adapters (LoRA/QLoRA) or biases (BitFit).",
        "doc": f"{FORMULAS_DOC}#parameters",
    }, {
        "title": "FLOPs (2 per multiply-add)",
        "latex": r"C_\text{fwd} = \sum_\text{linear} 2\,t\,d_\text{in} d_\text{out} + \sum_\text{attn} 4\,b\,H\,s\,"
                 r"s_\text{kv}\,d = " + _tex_num(f["forward"]) + r"\ \text{FLOPs} = "
                 + _tex_num(f["forward_macs"]) + r"\ \text{MACs}",
        "note": "One multiply-add is 2 FLOPs (torch FlopCounterMode); MACs = FLOPs / 2 (what fvcore calls flops).",
        "doc": f"{FORMULAS_DOC}#flops",
    }]
    if train:
        approx = 6 * p["trainable"] * tokens if p["trainable"] == p["total"] else None
        tex = (r"C_\text{step} = C_\text{fwd} + C_\text{bwd} + C_\text{recompute} = " + _tex_num(f["forward"]) + " + "
               + _tex_num(f["backward"]) + " + " + _tex_num(f["recompute"]) + " = " + _tex_num(f["total"]))
        if approx and est.family in ("decoder", "moe", "encoder") and approx:
            tex += r"\quad\left(6\,P\,T = " + _tex_num(approx) + r"\right)"
        out.append({"title": "Training step FLOPs", "latex": tex,
                    "note": "Backward = 2 x forward for trainable matmuls (dX and dW); a frozen weight skips dW. "
                            "Gradient checkpointing adds one block forward (recompute).",
                    "doc": f"{FORMULAS_DOC}#flops"})
        out.append({
            "title": "Memory (training)",
            "latex": r"M_\text{peak} = \max\big(W + O + \text{live}_\text{backward},\ W + G + O + \text{tmp}\big) = "
                     + _tex_num(m["peak"]) + r"\ \text{B};\quad M_\text{device} = M_\text{peak}(1 + 0.06) + "
                     r"0.79\,\text{GB} = " + _tex_num(m["device_total"]) + r"\ \text{B}",
            "note": f"W weights {fmt_gib(m['weights'])}, G gradients {fmt_gib(m['gradients'])}, O optimizer states "
                    f"{fmt_gib(m['optimizer'])}, saved activations {fmt_gib(m['activations'])}; the peak is at "
                    f"'{m['peak_phase']}'. Capacity {fmt_gib(m['capacity'])}.",
            "doc": f"{FORMULAS_DOC}#the-peak",
        })
    else:
        out.append({
            "title": "Memory (inference)",
            "latex": r"M_\text{peak} = W + KV + \text{working set};\quad KV = 2\,L\,b\,n_{kv}\,d\,"
                     r"(\text{prompt} + \text{generate})\,\text{bytes} = " + _tex_num(m["kv_cache"])
                     + r"\ \text{B};\quad M_\text{peak} = " + _tex_num(m["peak"]) + r"\ \text{B}",
            "note": f"Weights {fmt_gib(m['weights'])}, KV cache {fmt_gib(m['kv_cache'])}, working set "
                    f"{fmt_gib(m['transient'])}.",
            "doc": f"{FORMULAS_DOC}#memory-inference",
        })
    eff = d["assumptions"].get("efficiency", {})
    out.append({
        "title": "Time (roofline per layer)",
        "latex": r"t_\text{row} = \max\!\left(\frac{\text{FLOPs}}{\text{peak} \times " + f"{eff.get('matmul', 0):.2f}"
                 + r"},\ \frac{\text{bytes}}{\text{bandwidth} \times " + f"{eff.get('bandwidth', 0):.2f}"
                 + r"}\right),\quad t_\text{pass} = \max\!\big(t_\text{host},\ \textstyle\sum t_\text{row}\big)",
        "note": f"Efficiency source: {eff.get('source', '')}. Bound: {d['perf'].get('bound', '')}. "
                + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in d["time_s"].items()),
        "doc": "costmodel/perf.py (docstring)",
    })
    return out
