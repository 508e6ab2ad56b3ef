"""The Python API: ``costmodel.estimate(model, hardware=..., workload=... or **fields)``."""

from __future__ import annotations

from .estimator import estimate as _estimate
from .models import load_model
from .results import Estimate
from .workload import Workload


def estimate(model, hardware=None, workload: Workload | dict | None = None, efficiency=None, **fields) -> Estimate:
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
    return _estimate(load_model(model), workload, hardware, efficiency=efficiency)
