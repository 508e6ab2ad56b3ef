"""FLOP counters (child side; imports torch): torch's ``FlopCounterMode`` and fvcore's ``FlopCountAnalysis``.

Conventions (stated once, used everywhere):
- ``FlopCounterMode`` counts **2 FLOPs per multiply-add** (costmodel's convention, ``flops.forward``).
- fvcore counts **1 per multiply-add** ("flops" in its docs are MACs); we report its raw total as
  ``fvcore_forward_macs`` and compare ``2 * macs`` with FlopCounterMode. fvcore also counts norm layers
  (batch/layer/group norm: a few FLOPs per element), which costmodel and FlopCounterMode do not.

Blind spots, and what is done about them:
- FlopCounterMode has no formula for the CPU flash-attention kernel
  (``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward), for the oneDNN and cuDNN
  RNN kernels (``aten.mkldnn_rnn_layer``, ``aten._cudnn_rnn``) or for ``aten._grouped_mm`` (the
  default Mixtral experts kernel in transformers 5): it silently counts 0 for them. ``EXTRA_FORMULAS``
  below adds them (the same arithmetic as costmodel's ledger: attention counts query heads, so GQA
  works; an RNN layer is ``2*tokens*(w_ih + w_hh)`` elements).
- fvcore traces with TorchScript, has no handle for ``aten::scaled_dot_product_attention``,
  ``aten::lstm``/``aten::gru`` or ``aten::_grouped_mm``; ``FVCORE_HANDLES`` adds them. Ops it still skips are listed in
  ``fvcore_unsupported_ops`` next to the count.
- A kernel no formula knows still counts 0. ``rnn_blind_spot`` reports when the RNN modules of a
  model were counted 0, and the worker then falls back to the estimator's number and says so.
"""

from __future__ import annotations

import math

# ---- FlopCounterMode formulas (receive shapes; 2 FLOPs per multiply-add) -------------------------------------------


def sdpa_flops(q, k, v, *args, out_shape=None, **kwargs) -> int:
    """Scores ``q @ k^T`` and ``P @ v``: 2*b*H*s*kv*d + 2*b*H*s*kv*dv. q (b, H, s, d), k (b, KV, kv, d),
    v (b, KV, kv, dv); query heads H count (GQA shares K/V across H/KV heads but every head attends)."""
    b, h, s, d = q
    kv, dv = k[-2], v[-1]
    return 2 * b * h * s * kv * d + 2 * b * h * s * kv * dv


def sdpa_backward_flops(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
    """dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q: two forwards' worth (torch's sdpa_backward_flop_count)."""
    return 2 * sdpa_flops(q, k, v)


def mkldnn_rnn_layer_flops(inp, w_ih, w_hh, *args, out_shape=None, **kwargs) -> int:
    """One oneDNN RNN layer: every time step multiplies input and hidden state by the gate weights:
    2 * tokens * (G*h*d_in + G*h*h)."""
    tokens = math.prod(inp[:-1])
    return 2 * tokens * (math.prod(w_ih) + math.prod(w_hh))


def mkldnn_rnn_layer_backward_flops(inp, w1, w2, *args, out_shape=None, **kwargs) -> int:
    """dX and dW of one layer: 2 x forward."""
    return 2 * mkldnn_rnn_layer_flops(inp, w1, w2)


def cudnn_rnn_flops(inp, weights, *args, out_shape=None, **kwargs) -> int:
    """cuDNN RNN over all layers: ``weights`` lists (w_ih, w_hh[, b_ih, b_hh]) per layer; every 2-D
    weight is multiplied once per token: 2 * tokens * sum(numel of the matrices)."""
    tokens = math.prod(inp[:-1])
    return 2 * tokens * sum(math.prod(w) for w in weights if len(w) == 2)


def cudnn_rnn_backward_flops(inp, weights, *args, out_shape=None, **kwargs) -> int:
    return 2 * cudnn_rnn_flops(inp, weights)


def grouped_mm_flops(a, b, *args, out_shape=None, **kwargs) -> int:
    """``aten._grouped_mm``: G independent matmuls. 2-D x 2-D (groups split the contraction dim K, output
    (G, M, N)): 2*M*N*K_total; otherwise every output element needs K = a[-1] multiply-adds."""
    if len(a) == 2 and len(b) == 2:
        g = out_shape[0] if out_shape and len(out_shape) == 3 else 1
        return 2 * (math.prod(out_shape) // g) * a[1]
    return 2 * math.prod(out_shape) * a[-1]


def extra_formulas() -> dict:
    """{aten op: formula} for the ops above that exist in this torch build."""
    import torch

    aten = torch.ops.aten
    table = {
        "_scaled_dot_product_flash_attention_for_cpu": sdpa_flops,
        "_scaled_dot_product_flash_attention_for_cpu_backward": sdpa_backward_flops,
        "mkldnn_rnn_layer": mkldnn_rnn_layer_flops,
        "mkldnn_rnn_layer_backward": mkldnn_rnn_layer_backward_flops,
        "_cudnn_rnn": cudnn_rnn_flops,
        "_cudnn_rnn_backward": cudnn_rnn_backward_flops,
        "_grouped_mm": grouped_mm_flops,
    }
    out = {}
    for name, fn in table.items():
        op = getattr(aten, name, None)
        if op is not None:
            out[op] = fn
    return out


def flop_counter(display: bool = False):
    """A ``FlopCounterMode`` with costmodel's extra formulas registered."""
    from torch.utils.flop_counter import FlopCounterMode

    return FlopCounterMode(display=display, depth=3, custom_mapping=extra_formulas())


def module_totals(counter, max_depth: int = 3) -> dict[str, int]:
    """{module path: FLOPs} from a FlopCounterMode (``Global`` = everything), down to ``max_depth`` dots."""
    out = {}
    for mod, ops in counter.get_flop_counts().items():
        if mod.count(".") < max_depth:
            total = int(sum(ops.values()))
            if total:
                out[mod] = total
    return out


def op_totals(counter) -> dict[str, int]:
    return {str(op): int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}


def rnn_blind_spot(model, counter) -> list[str]:
    """Names of nn.LSTM/nn.GRU/nn.RNN modules the counter attributed 0 FLOPs to."""
    from torch import nn

    counts = counter.get_flop_counts()
    missing = []
    for name, mod in model.named_modules():
        if isinstance(mod, (nn.LSTM, nn.GRU, nn.RNN)):
            # ModuleTracker names a module by its path from the first module entered, or by its class
            # name when it was called directly (the decode loop calls model.rnn itself)
            leaf = name.rsplit(".", 1)[-1] if name else type(mod).__name__
            keys = [k for k in counts if k.rsplit(".", 1)[-1] in (leaf, type(mod).__name__)]
            if not any(sum(counts[k].values()) for k in keys):
                missing.append(name or type(mod).__name__)
    return missing


# ---- fvcore --------------------------------------------------------------------------------------------------------

def _jit_shape(val):
    from fvcore.nn.jit_handles import get_shape

    return get_shape(val)


def _fvcore_sdpa(inputs, outputs):
    """MACs of aten::scaled_dot_product_attention: b*H*s*kv*(d + dv)."""
    from collections import Counter

    q, k, v = (_jit_shape(x) for x in inputs[:3])
    b, h, s, d = q
    return Counter({"scaled_dot_product_attention": b * h * s * k[-2] * (d + v[-1])})


def _fvcore_rnn(inputs, outputs):
    """MACs of aten::lstm / aten::gru: tokens * sum(2-D weight elements) (weights are the ListConstruct input)."""
    from collections import Counter

    x = _jit_shape(inputs[0])
    params = None
    for val in inputs[1:]:
        node = val.node()
        if node.kind() == "prim::ListConstruct":
            shapes = [_jit_shape(p) for p in node.inputs()]
            if shapes and all(s is not None for s in shapes):
                params = shapes  # the last list is the weights (the first may be hx)
    if params is None:
        return Counter()
    tokens = math.prod(x[:-1])
    return Counter({"rnn": tokens * sum(math.prod(s) for s in params if len(s) == 2)})


def _fvcore_grouped_mm(inputs, outputs):
    """MACs of aten::_grouped_mm (see grouped_mm_flops): output elements x contraction length."""
    from collections import Counter

    a, b = _jit_shape(inputs[0]), _jit_shape(inputs[1])
    out = _jit_shape(outputs[0])
    if a is None or b is None or out is None:
        return Counter()
    return Counter({"grouped_mm": grouped_mm_flops(a, b, out_shape=out) // 2})


FVCORE_HANDLES = {"aten::scaled_dot_product_attention": _fvcore_sdpa, "aten::lstm": _fvcore_rnn,
                  "aten::gru": _fvcore_rnn, "aten::_grouped_mm": _fvcore_grouped_mm}


def fvcore_count(fn_module, inputs: tuple, max_depth: int = 3) -> dict:
    """Run fvcore's FlopCountAnalysis on ``fn_module(*inputs)``: {"fvcore_forward_macs", "fvcore_by_module",
    "fvcore_by_operator", "fvcore_unsupported_ops", "fvcore_table"} or {"fvcore_error": text}."""
    import logging
    import warnings

    try:
        from fvcore.nn import FlopCountAnalysis, flop_count_table
    except ImportError as exc:
        return {"fvcore_error": f"fvcore not installed: {exc}"}
    logging.getLogger("fvcore").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fca = FlopCountAnalysis(fn_module, inputs)
            fca.set_op_handle(**FVCORE_HANDLES)
            fca.unsupported_ops_warnings(False)
            fca.uncalled_modules_warnings(False)
            fca.tracer_warnings("none")
            total = int(fca.total())
            by_module = {k or "(total)": int(v) for k, v in fca.by_module().items()
                         if v and (k.count(".") < max_depth)}
            return {
                "fvcore_forward_macs": total,
                "fvcore_by_module": by_module,
                "fvcore_by_operator": {k: int(v) for k, v in fca.by_operator().items()},
                "fvcore_unsupported_ops": {k: int(v) for k, v in fca.unsupported_ops().items()},
                "fvcore_table": flop_count_table(fca, max_depth=max_depth),
            }
    except Exception as exc:  # noqa: BLE001 - tracing failures are reported, not fatal
        return {"fvcore_error": f"{type(exc).__name__}: {str(exc)[:300]}"}
