"""FLOP counters (child side; imports torch): torch's ``FlopCounterMode`` and fvcore's ``FlopCountAnalysis``.

Conventions (stated once, used everywhere):
- ``FlopCounterMode`` counts **2 FLOPs per multiply-add** (costmodel's convention, ``flops.forward``).
- fvcore counts **1 per multiply-add** ("flops" in its docs are MACs); we report its raw total as
  ``fvcore_forward_macs`` and compare ``2 * macs`` with FlopCounterMode. fvcore also counts norm layers
  (batch/layer/group norm: a few FLOPs per element), which costmodel and FlopCounterMode do not.

Attention: model FLOPs vs hardware FLOPs.
- ``counter_*_flops`` are **model FLOPs**: what the model's math needs, the convention of costmodel's estimator
  (``flops.forward``/``flops.backward``) and of MFU. The attention backward is 4 matmuls of the forward's size
  (dV, dP, dQ, dK) = 2 x forward, whichever kernel runs.
- Fused SDPA backward kernels (FlashAttention-2 on CUDA, memory-efficient, cuDNN, and the CPU flash kernel)
  also recompute the scores S = Q K^T instead of saving P: a 5th matmul, so they execute 2.5 x the forward.
  torch's own formulas count that (2.5x); costmodel registers its own for every fused SDPA kernel so the counted
  backward stays 2x, and adds the recomputed scores apart (``counter.costmodel_recompute``): the worker reports
  them as ``counter_attention_recompute_flops`` and ``counter_backward_hw_flops`` (hardware FLOPs, HFU's
  numerator, like gradient checkpointing's recompute). Eager attention (bmm + softmax) saves P and recomputes
  nothing.

Blind spots, and what is done about them:
- FlopCounterMode has no formula for the CPU flash-attention kernel
  (``aten._scaled_dot_product_flash_attention_for_cpu`` and its backward), for the oneDNN and cuDNN
  RNN kernels (``aten.mkldnn_rnn_layer``, ``aten._cudnn_rnn``) or for ``aten._grouped_mm`` (the
  default Mixtral experts kernel in transformers 5): it silently counts 0 for them; and torch builds before the
  SDPA GQA fix assert equal query and key heads in their SDPA formulas. ``extra_formulas``
  below adds / replaces them (the same arithmetic as costmodel's ledger: attention counts query heads, so GQA
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
    """Model FLOPs of the attention backward: dV = P^T dO, dP = dO V^T, dQ = dS K, dK = dS^T Q -- four matmuls of
    the forward's size, 2 x forward. (Fused kernels also recompute S = Q K^T: ``sdpa_recompute_flops``.)"""
    return 2 * sdpa_flops(q, k, v)


def sdpa_recompute_flops(q, k, v) -> int:
    """The scores ``Q K^T`` that a fused (flash / memory-efficient / cuDNN / CPU flash) backward recomputes instead
    of reading a saved P: 2*b*H*s*kv*d. Hardware FLOPs, not model FLOPs (like checkpointing's recompute)."""
    b, h, s, d = q
    return 2 * b * h * s * k[-2] * d


# Fused SDPA kernels: (aten name, position of q in the args, backward?). Their layout is (b, H, s, d).
SDPA_KERNELS = (
    ("_scaled_dot_product_flash_attention_for_cpu", 0, False),
    ("_scaled_dot_product_flash_attention_for_cpu_backward", 1, True),
    ("_scaled_dot_product_flash_attention", 0, False),
    ("_scaled_dot_product_flash_attention_backward", 1, True),
    ("_scaled_dot_product_efficient_attention", 0, False),
    ("_scaled_dot_product_efficient_attention_backward", 1, True),
    ("_scaled_dot_product_cudnn_attention", 0, False),
    ("_scaled_dot_product_cudnn_attention_backward", 1, True),
    ("_scaled_dot_product_fused_attention_overrideable", 0, False),
    ("_scaled_dot_product_fused_attention_overrideable_backward", 1, True),
)
# The kernels SDPA calls for nested / variable-length batches: layout (b, s, H, d), or (total tokens, H, d) with
# cumulative sequence offsets. (name, backward?, index of the first offsets tensor)
VARLEN_KERNELS = (
    ("_flash_attention_forward", False, 3),
    ("_flash_attention_backward", True, 6),
    ("_efficient_attention_forward", False, 4),
    ("_efficient_attention_backward", True, 6),
)


def _sdpa_formula(backward: bool, recompute: dict):
    def fwd(q, k, v, *args, out_shape=None, **kwargs) -> int:
        return sdpa_flops(q, k, v)

    def bwd(grad_out, q, k, v, *args, out_shape=None, **kwargs) -> int:
        recompute["flops"] += sdpa_recompute_flops(q, k, v)
        return sdpa_backward_flops(grad_out, q, k, v)

    return bwd if backward else fwd


def _varlen_formula(backward: bool, offsets_at: int, recompute: dict):
    """Raw formula (receives tensors): per sequence of a variable-length batch, or the dense (b, s, H, d) case."""
    def shapes(q, k, v, cq, ck):
        if cq is None or ck is None or q.dim() == 4:
            b, s, h, d = q.shape
            return [((b, h, s, d), (b, k.shape[2], k.shape[1], k.shape[3]), (b, v.shape[2], v.shape[1], v.shape[3]))]
        lq = cq.diff().tolist() if cq.device.type != "meta" else None
        lk = ck.diff().tolist() if ck.device.type != "meta" else None
        n = cq.numel() - 1
        lq = lq or [q.shape[0] // max(n, 1)] * n
        lk = lk or [k.shape[0] // max(n, 1)] * n
        h, d = q.shape[1], q.shape[2]
        return [((1, h, a, d), (1, k.shape[1], c, k.shape[2]), (1, v.shape[1], c, v.shape[2])) for a, c in zip(lq, lk)]

    def formula(*args, out_shape=None, **kwargs) -> int:
        base = 1 if backward else 0
        q, k, v = args[base], args[base + 1], args[base + 2]
        cq, ck = args[offsets_at], args[offsets_at + 1]
        total = 0
        for qs, ks, vs in shapes(q, k, v, cq, ck):
            if backward:
                recompute["flops"] += sdpa_recompute_flops(qs, ks, vs)
                total += sdpa_backward_flops(None, qs, ks, vs)
            else:
                total += sdpa_flops(qs, ks, vs)
        return total

    formula._get_raw = True
    return formula


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


def extra_formulas(recompute: dict | None = None) -> dict:
    """{aten op: formula} for the ops above that exist in this torch build. Every fused SDPA kernel (CPU flash,
    CUDA flash / memory-efficient / cuDNN / overrideable, and the variable-length kernels) gets costmodel's formula,
    replacing torch's: query heads count (GQA works on torch builds whose own formula asserts equal heads), and the
    backward is counted as model FLOPs (2 x forward); the scores a fused backward recomputes are added to
    ``recompute["flops"]`` (hardware FLOPs, reported apart)."""
    import torch

    aten = torch.ops.aten
    recompute = {"flops": 0} if recompute is None else recompute
    table = {
        "mkldnn_rnn_layer": mkldnn_rnn_layer_flops,
        "mkldnn_rnn_layer_backward": mkldnn_rnn_layer_backward_flops,
        "_cudnn_rnn": cudnn_rnn_flops,
        "_cudnn_rnn_backward": cudnn_rnn_backward_flops,
        "_grouped_mm": grouped_mm_flops,
    }
    for name, _q_at, backward in SDPA_KERNELS:
        table[name] = _sdpa_formula(backward, recompute)
    for name, backward, offsets_at in VARLEN_KERNELS:
        table[name] = _varlen_formula(backward, offsets_at, recompute)
    out = {}
    for name, fn in table.items():
        op = getattr(aten, name, None)
        if op is not None:
            out[op] = fn
    return out


def flop_counter(display: bool = False):
    """A ``FlopCounterMode`` with costmodel's extra formulas registered. ``counter.costmodel_recompute["flops"]``
    holds, after the pass, the attention scores that fused SDPA backward kernels recomputed."""
    from torch.utils.flop_counter import FlopCounterMode

    recompute = {"flops": 0}
    fc = FlopCounterMode(display=display, depth=3, custom_mapping=extra_formulas(recompute))
    fc.costmodel_recompute = recompute
    return fc


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
