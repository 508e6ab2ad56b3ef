"""The Python API: ``costmodel.estimate(model, hardware=..., workload=... or **fields)``."""

from __future__ import annotations

from dataclasses import replace

from .catalog import resolve_hardware
from .costs import _hourly_entry, unit_rates
from .errors import InputError
from .limits import resolve_defaults
from .estimator import estimate as _estimate
from .models import load_model
from .perf import Efficiency
from .results import Estimate
from .workload import Workload


def estimate(model, hardware=None, workload: Workload | dict | None = None, efficiency=None, pricing: dict | None = None,
             **fields) -> Estimate:
    """Estimate one workload.

    ``model``: preset id, path to a HF config.json / costmodel spec JSON, a dict, or a spec.
    ``hardware``: catalog id, path to a hardware JSON, a ``Hardware``, or None (H100 SXM).
    ``workload``: a ``Workload``, a dict of its fields, or give the fields as keyword arguments; fields not
    given take the model's defaults (``costmodel.limits.resolve_defaults``: seq 2048 or the context length if
    shorter, the fixed input size of a conv net with a dense head). Positions beyond the model's context
    length, or another image size for a fixed-size head, are an ``InputError``.
    ``efficiency``: a ``costmodel.perf.Efficiency`` (achievable fractions of peak, host overheads),
    a dict of its fields, or None for the device kind's defaults.
    ``pricing``: keyword arguments of ``costmodel.costs.cost_breakdown`` (provider, tier, region, pue,
    utilization, usd_per_device_hour ...).
    """
    if isinstance(efficiency, dict):
        efficiency = Efficiency(**efficiency)
    spec = load_model(model)
    if workload is None:  # fields the caller did not give take the model's defaults (seq within its context)
        workload = Workload(**resolve_defaults(spec, fields))
    elif isinstance(workload, dict):
        workload = Workload.from_dict(resolve_defaults(spec, {**workload, **fields}))
    elif fields:
        workload = workload.with_(**fields)
    hw = resolve_hardware(hardware)
    est = _estimate(spec, workload, hw, efficiency=efficiency)
    return with_costs(est, pricing, hw)


def with_costs(est: Estimate, pricing: dict | None = None, hardware=None) -> Estimate:
    """Add ``cost_usd``, ``energy_kwh`` and ``carbon_kg_co2e`` per unit of the run (step / request / forward),
    per device-hour and per million tokens (text) or per 1,000 samples (images, vectors), from the time
    estimate and costmodel.costs (prices, power model, grid intensity). A device without a price gets energy
    and carbon, and ``cost_usd`` None with the reason in ``assumptions["cost"]``.
    ``hardware``: the ``Hardware`` the estimate ran on (default: the catalog record of ``est.hardware``)."""
    try:
        hour, cost_assumptions = _hourly_entry(hardware if hardware is not None else est.hardware, pricing)
    except InputError as err:
        if pricing:  # the user asked for something specific: say what is wrong
            raise
        return replace(est, assumptions={**est.assumptions, "cost": f"no cost: {err}"})
    text = est.modality == "text"
    unit, unit_s = est.time_s.unit, est.time_s.per_unit_s
    tps, sps = (est.perf.tokens_per_s, None) if text else (None, est.perf.samples_per_s)
    cost = unit_rates(hour.compute_usd, unit, unit_s, tps, sps) if hour.compute_usd is not None else None
    assumptions = {**est.assumptions, "cost": dict(cost_assumptions)}
    return est.with_money(cost, unit_rates(hour.energy_kwh, unit, unit_s, tps, sps),
                          unit_rates(hour.carbon_kg_co2e, unit, unit_s, tps, sps), assumptions)

