"""The Python API: ``costmodel.estimate(model, hardware=..., workload=... or **fields)``."""

from __future__ import annotations

from dataclasses import replace

from .estimator import estimate as _estimate
from .models import load_model
from .results import Estimate
from .workload import Workload


def estimate(model, hardware=None, workload: Workload | dict | None = None, efficiency=None, pricing: dict | None = None,
             **fields) -> Estimate:
    """Estimate one workload.

    ``model``: preset id, path to a HF config.json / costmodel spec JSON, a dict, or a spec.
    ``hardware``: catalog id, path to a hardware JSON, a ``Hardware``, or None (H100 SXM).
    ``workload``: a ``Workload``, a dict of its fields, or give the fields as keyword arguments.
    ``efficiency``: a ``costmodel.perf.Efficiency`` (achievable fractions of peak, host overheads),
    a dict of its fields, or None for the device kind's defaults.
    """
    if isinstance(efficiency, dict):
        from .perf import Efficiency

        efficiency = Efficiency(**efficiency)
    if workload is None:
        workload = Workload(**fields)
    elif isinstance(workload, dict):
        workload = Workload.from_dict({**workload, **fields})
    elif fields:
        workload = workload.with_(**fields)
    est = _estimate(load_model(model), workload, hardware, efficiency=efficiency)
    return with_costs(est, pricing)


def with_costs(est: Estimate, pricing: dict | None = None) -> Estimate:
    """Add ``cost_usd``, ``energy_kwh`` and ``carbon_kg_co2e`` per step / request / hour / million
    tokens from the time estimate and costmodel.costs (prices, power model, grid intensity).
    ``pricing``: keyword arguments of costmodel.costs.cost_breakdown (provider, tier, pue, region...)."""
    from .costs import cost_breakdown
    from .errors import InputError

    try:
        hour = cost_breakdown(1.0, est.hardware, **(pricing or {}))
    except InputError as err:
        if pricing:  # the user asked for something specific: say what is wrong
            raise
        return replace(est, assumptions={**est.assumptions, "cost": f"no cost: {err}"})
    t = est.time_s
    unit_s = t.get("step") or t.get("request") or t.get("forward") or 0.0
    unit = "per_step" if "step" in t else ("per_request" if "request" in t else "per_forward")
    tokens = est.perf.get("tokens_per_s", 0.0)
    rates = {"cost_usd": hour.compute_usd, "energy_kwh": hour.energy_kwh, "carbon_kg_co2e": hour.carbon_kg_co2e}
    out = {}
    for key, per_hour in rates.items():
        out[key] = {unit: per_hour * unit_s / 3600.0, "per_hour": per_hour,
                    "per_million_tokens": per_hour / 3600.0 * 1e6 / tokens if tokens else 0.0}
    assumptions = {**est.assumptions, "cost": {k: v for k, v in hour.assumptions.items()
                                               if not k.startswith("storage")}}
    return replace(est, cost_usd=out["cost_usd"], energy_kwh=out["energy_kwh"],
                   carbon_kg_co2e=out["carbon_kg_co2e"], assumptions=assumptions)
