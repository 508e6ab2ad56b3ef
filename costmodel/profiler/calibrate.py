"""Calibration: fit the estimator's efficiency parameters (``costmodel.perf.Efficiency``) for one device from
its stored runs, and use them for later predictions.

Method. Each stored run contributes its measured times: a training step (``step``), or a prefill and a
decode step (``prefill``, ``decode_per_token``), or one forward (``forward``). For an ``Efficiency`` e, the
estimator predicts each of them (``costmodel.estimate(..., efficiency=e).time_s``). The fit minimises the
mean squared log error

    L(e) = mean_i (ln predicted_i(e) - ln measured_i)^2

(a ratio error: 2x too slow and 2x too fast weigh the same; the mean over runs is the geometric-mean
error). It is a coordinate search: each field in turn is set to the best of 13 values spaced evenly in
log scale around its current value (span 2^+-4, then 2^+-1, 2^+-0.25, 2^+-0.06), keeping the others; the
span sequence is repeated (at most 4 times) while the loss still falls, because the fields interact
through the roofline's max(). Fields that change no prediction of the stored runs (e.g. ``matmul`` when every run is fp32,
where ``matmul_fp32`` applies) are left as they were. The result is stored with the residuals before and
after, so the fit can be judged: a calibration is only as good as the spread of workloads it saw.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, replace

FIT_FIELDS = ("matmul", "matmul_fp32", "bandwidth", "overhead_s", "step_overhead_s", "decode_overhead_s")
# bounds, as costmodel.perf.Efficiency validates them
BOUNDS = {"matmul": (1e-4, 1.0), "matmul_fp32": (1e-4, 1.0), "bandwidth": (1e-4, 1.0), "overhead_s": (0.0, 1.0),
          "step_overhead_s": (0.0, 60.0), "decode_overhead_s": (0.0, 60.0)}
SPANS = (4.0, 1.0, 0.25, 0.0625)
PASSES = 4  # the span sequence again while it still improves (the fields interact through max())


def time_targets(record: dict) -> list[tuple[str, float]]:
    """(estimator time_s key, measured seconds) pairs of a stored run."""
    m = record.get("measured") or {}
    out = []
    for key, mkey in (("step", "step_s"), ("prefill", "prefill_s"), ("decode_per_token", "decode_per_token_s"),
                      ("forward", "forward_s")):
        v = m.get(mkey)
        if isinstance(v, (int, float)) and v > 0:
            out.append((key, float(v)))
    return out


def _usable(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("status") == "ok" and time_targets(r)
            and (r.get("request") or {}).get("config") and r.get("workload")]


class _Predictor:
    """Predicts the time rows of a set of runs for a given Efficiency (specs parsed once)."""

    def __init__(self, records: list[dict]):
        from ..models import load_model
        from ..workload import Workload

        self.items = []
        for r in records:
            spec = load_model(r["request"]["config"])
            w = Workload.from_dict(r["workload"])
            hw = (r.get("predicted") or {}).get("hardware") or None
            for key, measured in time_targets(r):
                self.items.append((r, spec, w, hw, key, measured))

    def predict(self, eff) -> list[float]:
        from ..api import estimate

        cache, out = {}, []
        for r, spec, w, hw, key, _ in self.items:
            k = id(r)
            if k not in cache:
                cache[k] = estimate(spec, hardware=hw, workload=w, efficiency=eff).time_s.to_dict()
            out.append(cache[k][key])
        return out

    def loss(self, eff) -> float:
        pred = self.predict(eff)
        errs = [(math.log(p) - math.log(it[5])) ** 2 for p, it in zip(pred, self.items) if p > 0]
        return sum(errs) / len(errs) if errs else float("inf")


def _candidates(cur: float, lo: float, hi: float, span: float) -> list[float]:
    base = cur if cur > 0 else max(lo, 1e-6)
    vals = {min(max(base * 2 ** (span * (i - 6) / 6), lo if lo > 0 else 1e-9), hi) for i in range(13)}
    if lo == 0.0:
        vals.add(0.0)
    vals.add(cur)
    return sorted(vals)


def fit_efficiency(records: list[dict], base=None, fields=FIT_FIELDS, device: str = "") -> dict:
    """Fit ``fields`` of an Efficiency to the time measurements in ``records`` (stored run records of one
    device). Returns the calibration record: {"device", "efficiency" (all fields), "fitted_fields",
    "n_runs", "n_points", "rmse_log_before", "rmse_log_after", "rows": [...], "method", "created"}."""
    from ..catalog import load_hardware
    from ..errors import InputError
    from ..perf import default_efficiency

    runs = _usable(records)
    if not runs:
        raise InputError("calibration", "needs at least one successful stored run with measured times")
    pred = _Predictor(runs)
    if base is None:
        hw = (runs[0].get("predicted") or {}).get("hardware") or "cpu-generic"
        base = default_efficiency(load_hardware(hw))
    before = pred.predict(base)
    loss0 = pred.loss(base)
    eff = base
    active = []
    for f in fields:  # only fields that move some prediction
        cur = getattr(eff, f)
        lo, hi = BOUNDS[f]
        probe = replace(eff, **{f: min(max(cur * 2 if cur else 1e-3, lo), hi)})
        if any(abs(a - b) > 1e-12 * max(abs(a), 1e-30) for a, b in zip(pred.predict(probe), before)):
            active.append(f)
    best = loss0
    for _ in range(PASSES):
        start = best
        for span in SPANS:
            for f in active:
                lo, hi = BOUNDS[f]
                for v in _candidates(getattr(eff, f), lo, hi, span):
                    trial = replace(eff, **{f: v})
                    val = pred.loss(trial)
                    if val < best - 1e-15:
                        best, eff = val, trial
        if start - best < 1e-6 * max(start, 1e-12):
            break
    after = pred.predict(eff)
    rows = []
    for (r, _s, _w, _hw, key, measured), b, a in zip(pred.items, before, after):
        rows.append({"run_id": r.get("run_id") or r.get("id"), "model": r.get("model"), "task": r.get("task"),
                     "quantity": key, "measured_s": measured, "before_s": b, "after_s": a,
                     "error_before_pct": 100 * (b - measured) / measured, "error_after_pct": 100 * (a - measured) / measured,
                     "residual_log_after": math.log(a) - math.log(measured) if a > 0 else None})
    n = len(rows)
    source = (f"calibrated on {len(runs)} run(s), {n} time(s) of {device or 'this device'} "
              f"({time.strftime('%Y-%m-%d')}); fitted {', '.join(active) or 'nothing'}")
    eff = replace(eff, source=source)
    return {
        "device": device, "efficiency": asdict(eff), "base_efficiency": asdict(base), "fitted_fields": active,
        "n_runs": len(runs), "n_points": n, "rmse_log_before": math.sqrt(loss0), "rmse_log_after": math.sqrt(best),
        "rows": rows, "method": "coordinate search minimising mean squared log error of predicted vs measured times",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# display units of the time fields (the record stores seconds)
FIELD_UNITS = {"overhead_s": ("us per op", 1e6), "step_overhead_s": ("ms per step", 1e3),
               "decode_overhead_s": ("ms per decode step", 1e3), "recurrent_step_s": ("us per time step", 1e6)}


def efficiency_rows(calibration: dict) -> list[dict]:
    """One row per Efficiency field of a calibration record: {"field", "unit", "before", "after", "fitted"}
    (fractions of peak are plain numbers; time fields in the unit named)."""
    base, eff, fitted = calibration["base_efficiency"], calibration["efficiency"], set(calibration["fitted_fields"])
    rows = []
    for f, v in eff.items():
        if f == "source" or not isinstance(v, (int, float)):
            continue
        unit, k = FIELD_UNITS.get(f, ("fraction of peak" if f != "elementwise_traffic" else "x tensor bytes", 1.0))
        rows.append({"field": f, "unit": unit, "before": base.get(f, v) * k, "after": v * k, "fitted": f in fitted})
    return rows


def latest_probe(store, device: str) -> dict | None:
    """The newest stored probe (``costmodel.profiler.probe``) of ``device``, or None."""
    return next((c for c in store.list_calibrations(device) if c.get("method") == "probe"), None)


def calibrate_device(store, device: str, base=None, fields=FIT_FIELDS, save: bool = True) -> dict:
    """Fit from ``store.list_measurements(device=device)`` and (``save``) store the calibration. The fit starts
    from ``base``, else from the device's latest probe if one is stored, else from the hardware defaults."""
    if base is None:
        probe = latest_probe(store, device)
        base = efficiency_from_calibration(probe) if probe else None
    rec = fit_efficiency(store.list_measurements(device=device), base=base, fields=fields, device=device)
    if save:
        rec["id"] = store.save_calibration(device, rec)
    return rec


def efficiency_from_calibration(rec: dict):
    from ..perf import Efficiency

    return Efficiency(**rec["efficiency"])


def calibrated_efficiency(device: str, store=None):
    """The latest stored calibration of ``device`` as an Efficiency, or None."""
    if store is None:
        return None
    rec = store.latest_calibration(device)
    return efficiency_from_calibration(rec) if rec else None
