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

It refuses to overfit. n measured times determine at most n - 1 fields (one degree of freedom is kept to
measure the error: with as many fields as times, any fit is exact and its "error after" of 0 means nothing).
Which fields: the sensitivities of every predicted log time to every field's log (a finite-difference Jacobian
at the starting point) say which fields the runs can tell apart; fields are taken greedily by how much they
move the predictions, skipping one whose column the chosen ones already explain (the runs cannot separate
them), up to n - 1. The record says which fields were fitted and why the others were not. Uncertainty: the
residual variance s^2 = SSR / (n - k) times (J^T J)^-1 at the optimum gives each fitted field's standard error
in log units, shown as a factor (x/ 1.3 = the value could be 1.3 times larger or smaller). ``enough_data``:
at least 3 runs and 2 degrees of freedom; the Profile page does not use a calibration by default until then.
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
# values outside these are flagged in the record as implausible for real hardware (the fit still reports them)
PLAUSIBLE = {"matmul": (0.05, 1.0), "matmul_fp32": (0.02, 1.0), "bandwidth": (0.05, 1.0), "overhead_s": (0.0, 1e-4),
             "step_overhead_s": (0.0, 1.0), "decode_overhead_s": (0.0, 1.0)}
ENOUGH_RUNS, ENOUGH_DOF = 3, 2
RANK_TOL = 1e-3  # a field whose column adds less than this (relative) to the chosen ones is not separable


def _log_sensitivities(pred, eff, fields) -> dict[str, list[float]]:
    """d ln(predicted time) / d ln(field) for every time and field (forward difference at x1.25)."""
    base = [math.log(max(v, 1e-300)) for v in pred.predict(eff)]
    out = {}
    for f in fields:
        cur = getattr(eff, f)
        lo, hi = BOUNDS[f]
        step = 1.25
        new = min(max(cur * step if cur else 1e-6, lo if lo > 0 else 1e-9), hi)
        if new == cur:  # at the upper bound: step down
            new = cur / step
        d = math.log(new / cur) if cur else math.log(step)
        vals = pred.predict(replace(eff, **{f: new}))
        out[f] = [(math.log(max(v, 1e-300)) - b) / d for v, b in zip(vals, base)]
    return out


def _choose_fields(sens: dict[str, list[float]], k_max: int) -> tuple[list[str], dict[str, str]]:
    """Greedy: the field moving the predictions most first; a field is added only when its column is not (nearly)
    a combination of the chosen ones; at most ``k_max``. Returns (chosen, {field: why not})."""
    import numpy as np

    order = sorted(sens, key=lambda f: -sum(x * x for x in sens[f]))
    chosen, why = [], {}
    for f in order:
        col = np.array(sens[f])
        if not np.any(np.abs(col) > 1e-9):
            why[f] = "no stored run depends on it"
            continue
        if len(chosen) >= k_max:
            why[f] = f"too few measured times: {k_max} field(s) at most (one fewer than the times)"
            continue
        if chosen:
            A = np.array([sens[c] for c in chosen]).T
            coef, *_ = np.linalg.lstsq(A, col, rcond=None)
            resid = np.linalg.norm(col - A @ coef) / np.linalg.norm(col)
            if resid < RANK_TOL:
                why[f] = f"the runs cannot tell it apart from {', '.join(chosen)}"
                continue
        chosen.append(f)
    return chosen, why


def _uncertainty(pred, eff, fields, measured) -> dict[str, float]:
    """Standard error of ln(field) for each fitted field: s^2 (J^T J)^-1, s^2 = SSR / (n - k)."""
    import numpy as np

    n, k = len(measured), len(fields)
    if not fields or n <= k:
        return {}
    sens = _log_sensitivities(pred, eff, fields)
    J = np.array([sens[f] for f in fields]).T
    r = np.array([math.log(p) - math.log(m) for p, m in zip(pred.predict(eff), measured)])
    s2 = float(r @ r) / (n - k)
    # a direction the times do not depend on at the optimum (a singular value ~0) leaves the fields in it
    # undetermined: infinite uncertainty for them, the others from the pseudo-inverse
    _, sv, vt = np.linalg.svd(J, full_matrices=True)
    sv = np.concatenate([sv, np.zeros(vt.shape[0] - len(sv))])
    null = vt[sv < RANK_TOL * max(sv.max(), 1e-30)]
    cov = s2 * np.linalg.pinv(J.T @ J, rcond=RANK_TOL ** 2)
    out = {}
    for i, f in enumerate(fields):
        undetermined = null.size and float(np.max(np.abs(null[:, i]))) > 0.1
        out[f] = float("inf") if undetermined else float(math.sqrt(max(cov[i, i], 0.0)))
    return out
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
        from ..limits import model_limits, resolve_defaults

        for r in records:
            spec = load_model(r["request"]["config"])
            w = Workload.from_dict(resolve_defaults(spec, r["workload"]))
            fixed = model_limits(spec).image_hw
            if fixed and w.image_size != fixed[0]:  # runs stored when a fixed-size net ignored the image size
                w = w.with_(image_size=fixed[0])
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


def _search(pred, base, active, loss0):
    """The coordinate search of the module docstring over ``active`` fields, from ``base``."""
    eff, best = base, loss0
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
    return eff, best


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
    n_points = len(pred.items)
    k_max = n_points - 1
    if k_max < 1:
        raise InputError("calibration", f"{n_points} measured time cannot determine any field without fitting it "
                         "exactly (an error of 0 that means nothing): store at least one more run (e.g. another "
                         "batch size, or an inference run, which measures a prefill and a decode step)")
    sens0 = _log_sensitivities(pred, base, fields)
    active, not_fitted = _choose_fields(sens0, k_max)
    measured = [it[5] for it in pred.items]
    while True:
        eff, best = _search(pred, base, active, loss0)
        sigma = _uncertainty(pred, eff, active, measured)
        # a field the times do not pin down at the fitted point (its direction is a combination the runs do not
        # measure) is left at its starting value and the rest fitted again: only what the runs determine
        loose = [f for f in active if not math.isfinite(sigma.get(f, 0.0))]
        if not loose or len(active) <= 1:
            break
        drop = min(loose, key=lambda f: sum(x * x for x in sens0[f]))
        active = [f for f in active if f != drop]
        not_fitted[drop] = (f"the runs measure it only together with {', '.join(f for f in loose if f != drop)}: "
                            "left at its starting value")
    after = pred.predict(eff)
    rows = []
    for (r, _s, _w, _hw, key, measured), b, a in zip(pred.items, before, after):
        rows.append({"run_id": r.get("run_id") or r.get("id"), "model": r.get("model"), "task": r.get("task"),
                     "quantity": key, "measured_s": measured, "before_s": b, "after_s": a,
                     "error_before_pct": 100 * (b - measured) / measured, "error_after_pct": 100 * (a - measured) / measured,
                     "residual_log_after": math.log(a) - math.log(measured) if a > 0 else None})
    n = len(rows)
    implausible = [f for f in active if not PLAUSIBLE[f][0] <= getattr(eff, f) <= PLAUSIBLE[f][1]]
    dof = n - len(active)
    source = (f"calibrated on {len(runs)} run(s), {n} time(s) of {device or 'this device'} "
              f"({time.strftime('%Y-%m-%d')}); fitted {', '.join(active) or 'nothing'}")
    eff = replace(eff, source=source)
    return {
        "device": device, "efficiency": asdict(eff), "base_efficiency": asdict(base), "fitted_fields": active,
        # undetermined (infinite) uncertainties are stored as null: the record is strict JSON (costmodel.storage)
        "not_fitted": not_fitted, "uncertainty_log": {f: (v if math.isfinite(v) else None) for f, v in sigma.items()},
        "uncertainty_factor": {f: (math.exp(v) if math.isfinite(v) and v < 10 else None) for f, v in sigma.items()},
        "dof": dof, "enough_data": len(runs) >= ENOUGH_RUNS and dof >= ENOUGH_DOF, "implausible": implausible,
        "n_runs": len(runs), "n_points": n, "rmse_log_before": math.sqrt(loss0), "rmse_log_after": math.sqrt(best),
        "rows": rows, "method": "coordinate search minimising mean squared log error of predicted vs measured times, "
                                "over at most n_points - 1 fields the runs can tell apart",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


# display units of the time fields (the record stores seconds)
FIELD_UNITS = {"overhead_s": ("us per op", 1e6), "step_overhead_s": ("ms per step", 1e3),
               "decode_overhead_s": ("ms per decode step", 1e3), "recurrent_step_s": ("us per time step", 1e6)}


def efficiency_rows(calibration: dict) -> list[dict]:
    """One row per Efficiency field of a calibration record: {"field", "unit", "before", "after", "fitted"}
    (fractions of peak are plain numbers; time fields in the unit named)."""
    base, eff, fitted = calibration["base_efficiency"], calibration["efficiency"], set(calibration["fitted_fields"])
    why = calibration.get("not_fitted") or {}
    factor = calibration.get("uncertainty_factor") or {}
    rows = []
    for f, v in eff.items():
        if f == "source" or not isinstance(v, (int, float)):
            continue
        unit, k = FIELD_UNITS.get(f, ("fraction of peak" if f != "elementwise_traffic" else "x tensor bytes", 1.0))
        u = factor.get(f)
        rows.append({"field": f, "unit": unit, "before": base.get(f, v) * k, "after": v * k, "fitted": f in fitted,
                     "uncertainty": (f"x/ {u:.3g}" if u is not None and math.isfinite(u) else
                                     ("undetermined" if f in factor else "")),
                     "why_not_fitted": "" if f in fitted else why.get(f, "not a fitted field")})
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
