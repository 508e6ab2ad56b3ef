"""Predicted vs measured: the estimator's numbers for a run's workload, and one comparison row per quantity.

Error is ``(predicted - measured) / measured`` in percent: negative = the estimator predicted too little.
"""

from __future__ import annotations

import math


def predicted_from_estimate(est) -> dict:
    """Flat dict of what the estimator predicts (units in key names)."""
    f, mem, p = est.flops, est.memory_bytes, est.params
    out = {
        "params_total": p.total, "params_trainable": p.trainable,
        "flops_forward": f.forward, "flops_backward": f.backward, "flops_recompute": f.recompute,
        "flops_decode_per_token": f.decode_per_token,
        "weights_bytes": mem.weights, "gradients_bytes": mem.gradients, "optimizer_bytes": mem.optimizer,
        "activations_bytes": mem.activations, "logits_loss_bytes": mem.logits_loss, "kv_cache_bytes": mem.kv_cache,
        "peak_bytes": mem.peak, "device_total_bytes": mem.device_total, "peak_phase": mem.peak_phase,
        "hardware": est.hardware,
    }
    for k, v in est.time_s.to_dict().items():
        out[f"{k}_s"] = v
    perf = est.perf.to_dict()
    for k in ("mfu", "hfu", "tokens_per_s", "samples_per_s", "prefill_tokens_per_s", "bound"):
        if k in perf:
            out[k] = perf[k]
    eff = est.assumptions.get("efficiency") if isinstance(est.assumptions, dict) else None
    if eff:
        out["efficiency"] = {k: v for k, v in eff.items() if k != "peak_flops_per_s"}
    return out


def error_pct(predicted, measured) -> float | None:
    if predicted is None or measured is None:
        return None
    try:
        predicted, measured = float(predicted), float(measured)
    except (TypeError, ValueError):
        return None
    if not (math.isfinite(predicted) and math.isfinite(measured)) or measured == 0:
        return None
    return 100.0 * (predicted - measured) / measured


def _row(quantity: str, unit: str, predicted, measured, note: str = "") -> dict:
    return {"quantity": quantity, "unit": unit, "predicted": predicted, "measured": measured,
            "error_pct": error_pct(predicted, measured), "note": note}


def comparison_rows(predicted: dict, measured: dict, task: str, device: str = "cpu") -> list[dict]:
    """One row per quantity both sides can speak to (a side missing -> None, with a note)."""
    P, M = predicted, measured
    rows = [_row("params (total)", "count", P.get("params_total"), M.get("params_total"),
                 "sum(p.numel()) of the built model")]
    train = task == "train"
    if train:
        rows.append(_row("params (trainable)", "count", P.get("params_trainable"), M.get("params_trainable")))
    blind = M.get("counter_blind_spot")
    fwd_note = "torch FlopCounterMode (2 per multiply-add) with costmodel's formulas for the fused SDPA kernels, " \
               "oneDNN/cuDNN RNNs and grouped_mm"
    if blind:
        rows.append(_row("forward FLOPs", "FLOPs", P.get("flops_forward"), None,
                         f"FlopCounterMode counted 0 for {', '.join(blind)}: not compared; the estimator's number stands"))
    elif "counter_forward_flops" in M:
        what = "prefill (last-position logits)" if task == "infer" and "counter_decode_per_token_flops" in M else "forward"
        rows.append(_row(f"{what} FLOPs", "FLOPs", P.get("flops_forward"), M["counter_forward_flops"], fwd_note))
    if "fvcore_forward_macs" in M:
        rows.append(_row("forward FLOPs (fvcore x 2)", "FLOPs", P.get("flops_forward"), 2 * M["fvcore_forward_macs"],
                         "fvcore counts multiply-adds (x 2 here) and also counts norm layers"))
    if train and "counter_backward_flops" in M and not blind:
        pb = (P.get("flops_backward") or 0) + (P.get("flops_recompute") or 0)
        rec = M.get("counter_attention_recompute_flops") or 0
        rows.append(_row("backward FLOPs", "FLOPs", pb, M["counter_backward_flops"],
                         "model FLOPs (attention backward 2x forward); includes the recomputed forward under gradient "
                         "checkpointing" + (f"; fused attention kernels also recomputed {rec:.4g} FLOPs of scores "
                                            "(hardware FLOPs, not compared)" if rec else "")))
    if "counter_decode_per_token_flops" in M:
        rows.append(_row("decode FLOPs per token", "FLOPs", P.get("flops_decode_per_token"),
                         M["counter_decode_per_token_flops"], "measured: mean over the decode loop; predicted: at "
                         "the mean context prompt + generate/2"))
    rows.append(_row("weights", "bytes", P.get("weights_bytes"), (M.get("weights_bytes") or 0) + (M.get("buffers_bytes") or 0)
                     if "weights_bytes" in M else None, "parameter + buffer storages"))
    if "kv_cache_bytes" in M:
        rows.append(_row("KV cache", "bytes", P.get("kv_cache_bytes"), M["kv_cache_bytes"],
                         "bytes of the cache tensors after prompt + generate positions"))
    gpu = device.startswith("cuda")
    rows.append(_row("peak memory", "bytes", P.get("peak_bytes"), M.get("peak_allocated_bytes"),
                     "torch.cuda.max_memory_allocated" if gpu else "CPU: live tensors at step start + peak of "
                     "torch.profiler allocation events"))
    if gpu and M.get("nvml_process_used_max_bytes"):
        rows.append(_row("device total (NVML, this process)", "bytes", P.get("device_total_bytes"),
                         M.get("nvml_process_used_max_bytes"), "nvmlDeviceGetComputeRunningProcesses: this process's "
                         "CUDA context + allocator reservation"))
    elif gpu and M.get("nvml_memory_used_max_bytes"):
        base = M.get("nvml_used_baseline_bytes")
        used = M["nvml_memory_used_max_bytes"] - (base or 0)
        rows.append(_row("device total (NVML used - baseline)" if base is not None else "device total (NVML used)",
                         "bytes", P.get("device_total_bytes"), used,
                         ("device memory used minus what was used before this run started (other processes and the "
                          "driver's reservation), assuming they did not change" if base is not None else
                          "includes other processes on the GPU and the driver's reservation")
                         + f"; per-process usage unavailable: {M.get('nvml_process_used_reason', 'unknown')}"))
    elif not gpu and "peak_rss_delta_bytes" in M:
        rows.append(_row("process peak RSS growth", "bytes", P.get("device_total_bytes"), M.get("peak_rss_delta_bytes"),
                         "context only: RSS includes allocator-retained memory and library scratch"))
    if train:
        rows.append(_row("step time", "s", P.get("step_s"), M.get("step_s"), "median of the measured steps"))
    elif "prefill_s" in M:
        rows.append(_row("prefill time", "s", P.get("prefill_s"), M.get("prefill_s"), "median"))
        if "decode_per_token_s" in M:
            rows.append(_row("decode time per token", "s", P.get("decode_per_token_s"), M.get("decode_per_token_s"),
                             "median; one step of the whole batch"))
    else:
        rows.append(_row("forward time", "s", P.get("forward_s"), M.get("forward_s"), "median"))
    if "tokens_per_s" in M:
        rows.append(_row("tokens/s", "1/s", P.get("tokens_per_s"), M.get("tokens_per_s"),
                         "generated tokens per second" if task == "infer" and "decode_per_token_s" in M else ""))
    if "samples_per_s" in M:
        rows.append(_row("samples/s", "1/s", P.get("samples_per_s"), M.get("samples_per_s")))
    if M.get("energy_j_per_step") is not None:
        window = (f" ({M['energy_window_steps']} steps in {M['energy_window_s']:.2f} s)"
                  if M.get("energy_window_s") is not None else "")
        rows.append(_row("energy per step", "J", P.get("energy_j_per_step"), M.get("energy_j_per_step"),
                         M.get("energy_method", "") + window + ("" if P.get("energy_j_per_step") is not None else
                                                                "; the estimator predicts no energy")))
    return rows


def module_flops_rows(measured: dict) -> list[dict]:
    """Per-module FLOPs of a run from both counters, one row per module path (to the counters' depth):

    - ``torch_flops``: torch ``FlopCounterMode``, 2 FLOPs per multiply-add, over everything the counted pass
      did: forward + backward in training, prefill + every decode step in inference;
    - ``fvcore_macs``: fvcore ``FlopCountAnalysis``, 1 per multiply-add, over one forward (prefill-style in
      inference), and ``fvcore_flops`` = 2 x that, on torch's scale.

    Module paths are relative to the model ('' = the whole model): FlopCounterMode names modules from the
    model's class (``GPT2LMHeadModel.transformer``), fvcore from the wrapper attribute (``model.transformer``)."""
    torch_mod = measured.get("counter_by_module") or {}
    fv_mod = measured.get("fvcore_by_module") or {}
    rows: dict[str, dict] = {}
    # both name the root first (the model's class / the wrapper's "model"), then the module path
    for key, counts, total in (("torch_flops", torch_mod, "Global"), ("fvcore_macs", fv_mod, "(total)")):
        for name, v in counts.items():
            if name != total:
                rows.setdefault(name.partition(".")[2], {})[key] = int(v)
    out = []
    for path in sorted(rows, key=lambda p: (p.split("."), p)):
        r = rows[path]
        fv = r.get("fvcore_macs")
        out.append({"module": path or "(whole model)", "depth": 0 if not path else path.count(".") + 1,
                    "torch_flops": r.get("torch_flops"), "fvcore_macs": fv,
                    "fvcore_flops": None if fv is None else 2 * fv})
    return out


HISTORY_ERRORS = (("peak memory", "peak_err_pct"), ("step time", "step_err_pct"), ("prefill time", "prefill_err_pct"),
                  ("forward time", "forward_err_pct"), ("decode time per token", "decode_err_pct"))


def history_rows(records: list[dict]) -> list[dict]:
    """One row per stored run (``Store.list_measurements`` records), newest first: when, where, what, the
    measured times and the % error of the peak memory and times (None where the run has no such row)."""
    from ..ui.format import fmt_timestamp

    out = []
    for r in sorted(records, key=lambda r: r.get("id") or 0, reverse=True):
        wl = r.get("workload") or {}
        m = r.get("measured") or {}
        errs = {row.get("quantity"): row.get("error_pct") for row in r.get("comparison") or []}
        row = {"id": r.get("id"), "saved": fmt_timestamp(r.get("created_at")),
               "device": r.get("device"), "model": r.get("model"), "task": r.get("task") or wl.get("task"),
               "batch": wl.get("batch"), "precision": wl.get("precision"), "status": r.get("status", "ok"),
               "step_s": m.get("step_s"), "prefill_s": m.get("prefill_s"), "forward_s": m.get("forward_s"),
               "decode_per_token_s": m.get("decode_per_token_s"),
               "peak_bytes": m.get("peak_allocated_bytes") or m.get("peak_bytes")}
        for quantity, key in HISTORY_ERRORS:
            row[key] = errs.get(quantity)
        out.append(row)
    return out


def clean_json(obj):
    """NaN and infinities -> None (JSON and the store hold only finite numbers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    return obj


def format_table(rows: list[dict]) -> str:
    """A plain-text table of comparison rows."""
    def fmt(v, unit):
        if v is None:
            return "-"
        if unit == "bytes":
            return f"{v / 2**30:.4f} GiB" if v >= 2**27 else f"{v / 2**20:.3f} MiB"
        if unit == "count":
            return f"{int(v):,}"
        return f"{v:.4g}"

    lines = [f"{'quantity':<28s} {'predicted':>16s} {'measured':>16s} {'error':>9s}  note"]
    for r in rows:
        err = "-" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%"
        lines.append(f"{r['quantity']:<28s} {fmt(r['predicted'], r['unit']):>16s} {fmt(r['measured'], r['unit']):>16s} "
                     f"{err:>9s}  {r['note']}")
    return "\n".join(lines)
