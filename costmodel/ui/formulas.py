"""The formula behind each headline number, with the estimate's own values substituted (rendered with
st.latex on the pages); each points at the docs/formulas.md section that states it and its source."""

from __future__ import annotations

import math

from .format import fmt_bytes, fmt_seconds


FORMULAS_DOC = "docs/formulas.md"


def _tex_num(x: float) -> str:
    """A number for LaTeX: whole numbers below 10^12 exactly with thousands separators (693{,}962), others with 4
    significant figures, as a power of ten beyond 10^6."""
    if x == 0:
        return "0"
    if float(x).is_integer() and abs(x) < 1e12:
        return f"{int(x):,}".replace(",", "{,}")
    e = int(math.floor(math.log10(abs(x))))
    if -3 <= e < 6:
        from .format import fmt_num

        return fmt_num(x, 4).replace(",", "{,}")
    return f"{x / 10 ** e:.4g} \\times 10^{{{e}}}"


# what a family's FLOPs are made of (its terms), in the notation of docs/formulas.md
FAMILY_TERMS = {
    "attention": r"\sum_\text{linear} 2\,t\,d_\text{in} d_\text{out} + \sum_\text{attn} 4\,b\,H\,s\,s_\text{kv}\,d",
    "conv": r"\sum_\text{conv} 2\,b\,h_\text{out} w_\text{out}\,c_\text{out}\,\frac{c_\text{in}}{g}\,k^2 + "
            r"\sum_\text{dense} 2\,b\,d_\text{in} d_\text{out}",
    "recurrence": r"\sum_\text{layers} 2\,b\,T\,G\,h\,(d_\text{in} + h) + 2\,b\,T\,h\,V",
    "mlp": r"\sum_\text{dense} 2\,b\,d_\text{in} d_\text{out}",
}
FAMILY_NOTES = {
    "attention": "t = batch x tokens; the attention term grows with the sequence: H heads of d dimensions, s "
                 "queries against s_kv keys (causal masking not subtracted, as the kernels compute the square).",
    "conv": "A 3x3 convolution of 32 filters over a 28x28x1 image: h_out = w_out = 26, so 2 x 26 x 26 x 32 x 1 x 9 = "
            "389,376 FLOPs per image; pooling, activations and flatten add none.",
    "recurrence": "G gates (LSTM 4, GRU 3) of the input x_t and the state h_{t-1}, every time step, one after the "
                  "other: T dependent steps, which is why a small LSTM is latency-bound; then the vocabulary head.",
    "mlp": "Each dense layer: one multiply-add per weight per sample; embeddings and the wide part of Wide & Deep are "
           "lookups (no FLOPs).",
}


def family_kind(est) -> str:
    """Which formula family an estimate's FLOPs follow: attention, conv, recurrence or mlp."""
    fam = est.family
    kinds = {r.kind for r in est.layers}
    if fam in ("lstm", "gru") or kinds & {"lstm", "gru", "rnn"}:
        return "recurrence"
    if "attention" in kinds:
        return "attention"
    if "conv2d" in kinds:
        return "conv"
    return "mlp"


def flops_section(est, f) -> dict:
    kind = family_kind(est)
    return {
        "title": "FLOPs (2 per multiply-add)",
        "latex": r"C_\text{fwd} = " + FAMILY_TERMS[kind] + " = " + _tex_num(f["forward"]) + r"\ \text{FLOPs} = "
                 + _tex_num(f["forward_macs"]) + r"\ \text{MACs}",
        "note": FAMILY_NOTES[kind] + " One multiply-add is 2 FLOPs (torch FlopCounterMode); MACs = FLOPs / 2 (what "
                "fvcore calls flops).",
        "doc": f"{FORMULAS_DOC}#flops",
    }


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
    }, flops_section(est, f)]
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
            "note": f"W weights {fmt_bytes(m['weights'])}, G gradients {fmt_bytes(m['gradients'])}, O optimizer states "
                    f"{fmt_bytes(m['optimizer'])}, saved activations {fmt_bytes(m['activations'])}; the peak is at "
                    f"'{m['peak_phase']}'. Capacity {fmt_bytes(m['capacity'])}.",
            "doc": f"{FORMULAS_DOC}#the-peak",
        })
    elif family_kind(est) != "attention" or not m["kv_cache"]:
        out.append({
            "title": "Memory (inference)",
            "latex": r"M_\text{peak} = W + \text{working set} = " + _tex_num(m["weights"]) + " + "
                     + _tex_num(m["transient"] + m["kv_cache"]) + " = " + _tex_num(m["peak"]) + r"\ \text{B}",
            "note": f"Weights {fmt_bytes(m['weights'])}; the largest layer's inputs and outputs alive at once "
                    f"{fmt_bytes(m['transient'] + m['kv_cache'])}"
                    + (" (with the recurrent state)" if family_kind(est) == "recurrence" else "") + ".",
            "doc": f"{FORMULAS_DOC}#memory-inference",
        })
    else:
        out.append({
            "title": "Memory (inference)",
            "latex": r"M_\text{peak} = W + KV + \text{working set};\quad KV = 2\,L\,b\,n_{kv}\,d\,"
                     r"(\text{prompt} + \text{generate})\,\text{bytes} = " + _tex_num(m["kv_cache"])
                     + r"\ \text{B};\quad M_\text{peak} = " + _tex_num(m["peak"]) + r"\ \text{B}",
            "note": f"Weights {fmt_bytes(m['weights'])}, KV cache {fmt_bytes(m['kv_cache'])}, working set "
                    f"{fmt_bytes(m['transient'])}.",
            "doc": f"{FORMULAS_DOC}#memory-inference",
        })
    eff = d["assumptions"].get("efficiency", {})
    out.append({
        "title": "Time (roofline per layer)",
        "latex": r"t_\text{row} = \max\!\left(\frac{\text{FLOPs}}{\text{peak} \times " + f"{eff.get('matmul', 0):.2f}"
                 + r"},\ \frac{\text{bytes}}{\text{bandwidth} \times " + f"{eff.get('bandwidth', 0):.2f}"
                 + r"}\right),\quad t_\text{pass} = \max\!\big(t_\text{host},\ \textstyle\sum t_\text{row}\big)",
        "note": f"Efficiency source: {eff.get('source', '')}. Bound: "
                + ", ".join(f"{k} {v}" for k, v in (("prefill" if est.unit == "request" else est.unit,
                                                     d['perf'].get('bound', '')),
                                                    ("decode", d['perf'].get('decode_bound'))) if v) + ". "
                + ", ".join(f"{k} {fmt_seconds(v)}" for k, v in d["time_s"].items()),
        "doc": "costmodel/perf.py (docstring)",
    })
    return out
