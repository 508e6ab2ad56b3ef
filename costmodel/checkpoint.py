"""Checkpoint sizes on disk: a model file (weights) and a full training checkpoint (weights + optimizer states)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import InputError
from .validate import check_number as _number
from .workload import OPTIMIZERS, PRECISIONS, QUANT_SCALE_BYTES_PER_WEIGHT


@dataclass(frozen=True)
class CheckpointSize:
    """Bytes on disk. ``model_file_bytes``: weights only; ``training_checkpoint_bytes``: weights + optimizer
    states (what resuming training needs; gradients are not saved)."""

    model_file_bytes: float
    trainable_weight_bytes: float
    optimizer_state_bytes: float
    training_checkpoint_bytes: float
    assumptions: dict = field(default_factory=dict, compare=False, hash=False)



def checkpoint_bytes(params_total: int, trainable: int, optimizer: str, precision: str, *,
                     optimizer_state_bytes: float | None = None) -> CheckpointSize:
    """Bytes of a model file (weights only) and of a full training checkpoint (weights + optimizer states),
    using the per-element widths of ``costmodel.workload.PRECISIONS`` / ``OPTIMIZERS``:

    - weights = trainable x weight_bytes + frozen x (frozen_weight_bytes + quantization scales per weight)
    - optimizer states = trainable x (states_per_param x state_bytes + fixed_bytes_per_param)
    - training checkpoint = weights + optimizer states (gradients are not saved)

    E.g. Llama-2-7B (6,738,415,616 params), AdamW, amp-bf16 (fp32 master weights and states):
    6,738,415,616 x (4 + 2 x 4) = 80.86e9 bytes. Frozen weights of int8/int4 precision are all counted at the
    quantized width (embeddings and norms are in fact kept in 16 bits: a slight underestimate). Adafactor's
    factored state depends on matrix shapes: pass ``optimizer_state_bytes`` (an estimate's
    ``memory_bytes.optimizer``)."""
    for name, v in (("params_total", params_total), ("trainable", trainable)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(name, f"must be a whole number >= 0, got {v!r}")
    if trainable > params_total:
        raise InputError("trainable", f"must not exceed params_total ({params_total}), got {trainable}")
    if precision not in PRECISIONS:
        raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if optimizer not in OPTIMIZERS:
        raise InputError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    p, o = PRECISIONS[precision], OPTIMIZERS[optimizer]
    frozen = params_total - trainable
    scale = QUANT_SCALE_BYTES_PER_WEIGHT.get(precision, 0.0)
    trainable_w = trainable * p.weight_bytes
    frozen_w = frozen * (p.frozen_weight_bytes + scale)
    if optimizer_state_bytes is not None:
        opt = _number("optimizer_state_bytes", optimizer_state_bytes, 0.0, 1e18, " bytes")
        opt_src = "given by the caller"
    elif o.factored:
        raise InputError("optimizer_state_bytes", f"{optimizer} keeps factored states whose size depends on matrix "
                                                  f"shapes: pass the estimate's memory_bytes.optimizer")
    else:
        opt = trainable * (o.states_per_param * p.state_bytes + o.fixed_bytes_per_param + p.master_bytes)
        opt_src = (f"{trainable} trainable x ({o.states_per_param:g} states x {p.state_bytes:g} B + "
                   f"{o.fixed_bytes_per_param:g} B fixed): {o.source}")
    model = trainable_w + frozen_w
    assumptions = {
        "weight_bytes_per_param": {"value": p.weight_bytes, "source": f"precision {precision}: {p.description}"},
        "frozen_weight_bytes_per_param": {"value": p.frozen_weight_bytes + scale,
                                          "source": f"precision {precision} (+ quantization scales {scale:g} B)"},
        "optimizer_state_bytes": {"value": opt, "source": opt_src},
        "gradients_saved": {"value": False, "source": "torch.save(optimizer.state_dict()) holds states, not grads"},
    }
    return CheckpointSize(float(model), float(trainable_w), float(opt), float(model + opt), assumptions)




def checkpoint_of(model, workload=None) -> CheckpointSize:
    """``checkpoint_bytes`` of a model under a training workload (its precision, optimizer and fine-tuning
    method): the parameter counts and, for a factored optimizer, the state bytes come from ``costmodel.estimate``
    of one tiny step (they do not depend on the batch)."""
    from .api import estimate
    from .limits import resolve_defaults
    from .models import load_model
    from .workload import Workload

    spec = load_model(model)
    if isinstance(workload, Workload):
        w = workload.with_(task="train", batch=1)
    else:
        w = Workload.from_dict(resolve_defaults(spec, {**(workload or {}), "task": "train", "batch": 1}))
    est = estimate(spec, workload=w)
    opt = est.memory_bytes.optimizer if w.opt.factored else None
    return checkpoint_bytes(est.params.total, est.params.trainable, w.optimizer, w.precision, optimizer_state_bytes=opt)
