"""The ledger of one pass and its sums: which pass a phase runs (``make_ctx``), the per-layer ledger a spec
gives for it (``ledger``, cached), and one walk over the rows that sums everything an estimate needs
(``row_sums``: parameters, FLOPs incl. frozen fine-tuning's skipped input gradients, saved activations per
block for the backward-peak walk, LoRA adapters, checkpointing's recompute). Pure in its arguments, so sweeps
over the optimizer, checkpointing or hardware reuse the cached sums (costmodel.estimator applies the memory
formulas to them).

Both caches are bounded in entries and in approximate bytes (``costmodel.cache``; a ResNet-50 ledger holds ~90
rows of ~600 bytes, a Llama one ~15), and the per-layer table of an estimate (``LayerRow`` records) is built only
when someone reads it (``LazyLayerRows``), never kept in the cache."""

from __future__ import annotations

from collections.abc import Sequence

from .cache import bounded_cache
from .errors import InputError
from .layers import Ctx, Layer
from .perf import PASSES_PER_LEDGER
from .results import LayerRow
from .specs.base import ModelSpec
from .workload import QUANT_SCALE_BYTES_PER_WEIGHT, WEIGHT_FORMAT_BYTES, Workload

KV_DTYPE_BYTES = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5}


def make_ctx(spec: ModelSpec, w: Workload, phase: str) -> Ctx:
    """The pass a phase runs: "train", "prefill", "decode" (one token at the mean context), "forward"."""
    p = w.prec
    compute_bytes = p.compute_bytes
    kv_bytes = KV_DTYPE_BYTES[w.kv_cache_precision] if w.kv_cache_precision else (
        4.0 if p.compute_dtype == "fp32" else 2.0)
    if phase == "train" or phase == "forward":
        seq, kv_len = w.seq, w.seq
    elif phase == "prefill":
        seq, kv_len = w.prompt, w.prompt
    elif phase == "decode":
        seq, kv_len = 1, w.prompt + max(w.generate, 1) // 2
    elif phase == "decode_full":  # the cache at the end of generation
        seq, kv_len = 1, w.prompt + w.generate
    else:  # pragma: no cover
        raise ValueError(phase)
    training = phase == "train"
    return Ctx(
        batch=w.batch, seq=seq, kv_len=kv_len, image_size=w.image_size, training=training,
        stream_bytes=p.stream_bytes, compute_bytes=compute_bytes, kv_bytes=kv_bytes,
        autocast=p.autocast and training, eager_attention=w.attention == "eager",
        dropout=training and (True if w.dropout is None else w.dropout), kv_layout=w.kv_cache_layout,
    )


# Approximate bytes a cached record holds (tracemalloc: ~590-600 per Layer row of any family, ~120 per summed
# row of RowSums; tests/test_perf_caches.py checks the estimates against tracemalloc), and the bounds.
LAYER_ROW_BYTES = 600.0
SUM_ROW_BYTES = 120.0
ENTRY_BYTES = 1000.0  # the key, the table's own record, the tuple or object around the rows
# costmodel.perf memoizes the roofline of a pass on the ledger it ran on (at most PASSES_PER_LEDGER per ledger,
# ~PASS_BYTES each): counted with the ledger, and evicted with it
PASS_BYTES = 700.0
LEDGER_CACHE_ENTRIES, LEDGER_CACHE_BYTES = 4096, 64e6
SUMS_CACHE_ENTRIES, SUMS_CACHE_BYTES = 4096, 16e6


class LedgerRows(tuple):
    """The rows of one pass (a tuple of ``Layer``), carrying ``passes``: the memo of
    ``costmodel.perf.pass_times`` for this ledger, so that it lives and goes with the cached ledger."""

    passes: dict


def _ledger_bytes(rows) -> float:
    return ENTRY_BYTES + LAYER_ROW_BYTES * len(rows) + PASSES_PER_LEDGER * PASS_BYTES


@bounded_cache("ledger", LEDGER_CACHE_ENTRIES, LEDGER_CACHE_BYTES, _ledger_bytes)
def ledger(spec: ModelSpec, ctx: Ctx) -> tuple[Layer, ...]:
    """The per-layer ledger of one pass. Pure in (spec, ctx), so sweeps that vary only the
    optimizer, fine-tuning method or hardware reuse it."""
    rows = LedgerRows(spec.ledger(ctx))
    rows.passes = {}
    return rows


def lora_targets(rows: list[Layer], w: Workload) -> set[str]:
    available = sorted({r.module for r in rows if r.lora_in})
    targets = set(w.lora_targets)
    if "all-linear" in targets:
        return {m for m in available if m != "lm_head"}
    missing = targets - set(available)
    if missing:
        raise InputError("lora_targets", f"no module named {', '.join(sorted(missing))[:200]} in this model; "
                         f"available: {', '.join(available)} (or all-linear)")
    return targets


def check_lora_rank(rows: list[Layer], targets: set[str], rank: int) -> None:
    """A LoRA rank above a targeted layer's smaller side adds more parameters than the layer has and is no
    longer low-rank: refused, naming the limit."""
    sides = [min(r.lora_in, r.lora_out) for r in rows if r.module in targets and r.lora_in and r.lora_out]
    if sides and rank > min(sides):
        raise InputError("lora_rank", f"must be at most {min(sides)} (the smaller side of the smallest targeted "
                                      f"layer: LoRA's B A is low-rank), got {rank}")


# rows a per-op selective policy can price: GEMMs and attention cores save their outputs, the rest recompute
SELECTIVE_KINDS = {"linear", "attention", "rmsnorm", "layernorm", "silu", "gelu", "gelu_tanh", "gelu_new", "relu", "relu2",
                   "dropout", "sinks"}


@bounded_cache("selective_checkpoint", 256, 1 << 20, lambda out: 200.0 + 100.0 * len(out[0]))
def selective_checkpoint_of(spec: ModelSpec, ctx: Ctx) -> tuple[dict, float, str]:
    """``selective_checkpoint`` of the ledger of (spec, ctx), worked out once per ledger and only when asked."""
    return selective_checkpoint(ledger(spec, ctx))


def selective_checkpoint(rows) -> tuple[dict, float, str]:
    """Per-op selective activation checkpointing as torchtitan applies it to each transformer block
    (``selective_ac_option = "op"``, torchtitan/models/llama/parallelize_llama.py ``_apply_ac_to_transformer_block``
    at 9dec370, Dec 2024): inside a block, the outputs of the matmuls (``aten.mm``) and of the attention kernel
    (SDPA: output and logsumexp) are saved, "except every second mm" in execution order; every other op is
    recomputed before the block's backward. Returns

    - saved bytes per block instance, by block name: sum of ``output_bytes`` over its 1st, 3rd, 5th ... linear
      rows and its attention cores (the block's input is added by the caller: the checkpoint keeps it);
    - recompute FLOPs: the forward FLOPs of the 2nd, 4th ... linear rows and of the block's other non-saved ops;
    - the kind of the first row no per-op policy is priced for ("" when every block can run it).

    A Llama block (q, k, v, o, gate, up, down) thus keeps q, v, the attention output, gate and down and
    recomputes k, o and up: 79.7 M of its 218 M forward MACs per token for Llama 3 8B."""
    saved: dict[str, float] = {}
    recompute = 0.0
    refused = ""
    mm_seen: dict[str, int] = {}
    for row in rows:
        if not row.block:
            continue
        if row.kind not in SELECTIVE_KINDS and row.kind != "embedding":
            refused = refused or row.kind
            continue
        saved.setdefault(row.block, 0.0)
        if row.kind == "linear" and row.matmul_params:
            mm_seen[row.block] = mm_seen.get(row.block, 0) + 1
            if mm_seen[row.block] % 2 == 1:
                saved[row.block] += row.output_bytes
                continue
        elif row.kind == "attention":
            saved[row.block] += row.output_bytes
            continue
        recompute += row.forward_flops * row.count
    return saved, recompute, refused


class RowSums:
    """The ledger summed for one (spec, pass, precision, fine-tuning method): everything the
    estimate needs from the rows. Cached, so sweeps over optimizer, checkpointing or hardware
    reuse it; ``peaks`` memoizes the backward walk per checkpointing setting."""

    __slots__ = ("total", "active", "matmul_total", "bias_total", "adapter", "adapter_fwd", "adapter_factored",
                 "fwd", "bwd", "prunable_fwd", "act_rows", "frozen_matmul", "trainable", "layer_rows", "peaks",
                 "factored", "recompute", "targeted_rows", "native_params", "native_matmul", "native_bytes",
                 "weight_tensors")


def _eager_attention_skipped(forward_flops: float, proj_grads: list[bool]) -> float:
    """Backward FLOPs eager attention does not run in the first block instance when some of q, k, v need no
    gradient (frozen projections before any trainable parameter). The core is two matmuls of equal size
    (scores Q K^T and P V, head_dim = v_head_dim): dQ and dK from the first, dP and dV from the second, and
    autograd forms only the gradients of inputs that require one (dP when Q or K does).
    ``proj_grads``: the q, k, v rows' flags in order, or one flag for a fused qkv row; else nothing skipped."""
    if len(proj_grads) == 3:
        q, k, v = proj_grads
    elif len(proj_grads) == 1:
        q = k = v = proj_grads[0]
    else:
        return 0.0
    half = forward_flops / 2.0
    return half * ((not q) + (not k) + (not (q or k)) + (not v))


def _sums_bytes(out: RowSums) -> float:
    return ENTRY_BYTES + SUM_ROW_BYTES * len(out.act_rows) + LAYER_ROW_BYTES * len(out.layer_rows)


@bounded_cache("row_sums", SUMS_CACHE_ENTRIES, SUMS_CACHE_BYTES, _sums_bytes)
def _cached_sums(spec, ctx, p, method, targets, r, input_grads) -> RowSums:
    return _row_sums(spec, ctx, p, method, targets, r, False, input_grads)


def row_sums(spec: ModelSpec, ctx: Ctx, p, method: str, targets: frozenset, r: int, with_layers: bool = False,
             input_grads: bool = False) -> RowSums:
    """The ledger of (spec, ctx) summed for precision ``p``, fine-tuning ``method``, LoRA ``targets`` and rank ``r``
    (``input_grads``: checkpointing's enable_input_require_grads). Cached without the per-layer table; with
    ``with_layers`` the table (``RowSums.layer_rows``) is built too, uncached (``LazyLayerRows`` asks for it)."""
    if with_layers:
        return _row_sums(spec, ctx, p, method, targets, r, True, input_grads)
    return _cached_sums(spec, ctx, p, method, targets, r, input_grads)


class LazyLayerRows(Sequence):
    """``Estimate.layers`` before anyone reads it: the arguments of ``row_sums``, from which the per-layer table
    (``LayerRow`` records) is built on first access and then kept here. An estimate nobody asks per-layer rows
    of holds a few references instead of a record per row; equal to, and pickled as, the plain tuple."""

    __slots__ = ("_args", "_rows")

    def __init__(self, spec, ctx, p, method: str, targets: frozenset, r: int, input_grads: bool):
        self._args = (spec, ctx, p, method, targets, r, input_grads)
        self._rows = None

    def _get(self) -> tuple:
        rows = self._rows
        if rows is None:  # two threads may both build it: the same rows either way
            spec, ctx, p, method, targets, r, input_grads = self._args
            rows = self._rows = _row_sums(spec, ctx, p, method, targets, r, True, input_grads).layer_rows
        return rows

    def __getitem__(self, i):
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self):
        return iter(self._get())

    def __eq__(self, other):
        if isinstance(other, (LazyLayerRows, tuple)):
            return self._get() == tuple(other)
        return NotImplemented

    def __hash__(self):
        return hash(self._get())

    def __repr__(self) -> str:
        return repr(self._get())

    def __reduce__(self):
        return (tuple, (self._get(),))


def _row_sums(spec: ModelSpec, ctx: Ctx, p, method: str, targets: frozenset, r: int, with_layers: bool,
              input_grads: bool = False) -> RowSums:
    rows = ledger(spec, ctx)
    train = ctx.training
    total = active = matmul_total = bias_total = 0
    adapter = adapter_fwd = adapter_factored = 0.0
    fwd = bwd = 0.0
    prunable_fwd = 0.0
    act_rows: list[tuple[float, float, str, int]] = []  # (activation bytes, grad bytes, block, count)
    frozen_matmul = 0
    trainable = 0
    native_params = native_matmul = 0
    native_bytes = 0.0
    weight_tensors = 0
    cast_elems = 0
    layer_rows = []
    weight_b = p.weight_bytes if train else (4.0 if p.compute_dtype == "fp32" and not p.autocast else
                                             (4.0 if p.autocast else p.weight_bytes))
    frozen_b = p.frozen_weight_bytes + QUANT_SCALE_BYTES_PER_WEIGHT.get(p.name, 0.0)
    quantized = p.weight_only_quant or p.compute_dtype in ("fp8", "fp4")
    group_input, group_kept = 0.0, False
    # Under frozen fine-tuning autograd forms input gradients only downstream of a trainable
    # parameter: the rows before the first one (in the first instance of their block) skip dX.
    # Rows reading the same tensor (q/k/v after q) share their group's state.
    partial = train and method != "full"
    if partial:
        block_trains = {}
        for row in rows:
            if row.block:
                t = (row.bias_params if method == "bitfit" else 0) or (bool(targets) and row.module in targets and row.lora_in > 0)
                block_trains[row.block] = block_trains.get(row.block, False) or bool(t)
    # transformers' checkpointing on a token model calls enable_input_require_grads() (the embedding
    # output then needs a gradient, so every block forms dX): ``input_grads``
    grad_on = group_grad = block_grad = input_grads
    current_block = None
    # first-instance "output needs a gradient" of the projections feeding the next attention core
    # (q, k, v in order, or one fused qkv row): eager attention's matmuls then skip dQ / dK / dP / dV
    proj_grads: list[bool] = []
    for row in rows:
        n = row.count
        total += row.params * n
        active += (row.params - row.inactive_params) * n
        matmul_total += row.matmul_params * n
        bias_total += row.bias_params * n
        fwd += row.forward_flops * n
        if row.matmul_params:
            prunable_fwd += row.forward_flops * n
        targeted = bool(targets) and row.module in targets and row.lora_in > 0
        if method == "full":
            row_trainable = row.params
        elif method == "bitfit":
            row_trainable = row.bias_params
        else:
            row_trainable = 0
        trainable += row_trainable * n
        row_bwd = (row.input_grad_flops + (row.weight_grad_flops if method == "full" else 0.0)) if train else 0.0
        if partial:
            if row.block != current_block:
                current_block, block_grad = row.block, grad_on
                proj_grads = []
            if not row.shares_input:
                group_grad = grad_on
                if row.matmul_params:
                    proj_grads = []
            # instances after the first see gradients if their block trains anything (or one before did)
            no_dx = 0 if group_grad else n - ((n - 1) if (block_grad or block_trains.get(row.block, False)) else 0)
            row_bwd = max(0.0, row_bwd - row.input_grad_flops * (no_dx / n))
            if row.matmul_params:
                proj_grads.append(group_grad or bool(row_trainable or targeted))
            elif row.kind == "attention" and ctx.eager_attention and group_grad and not block_grad:
                row_bwd = max(0.0, row_bwd - _eager_attention_skipped(row.forward_flops, proj_grads) / n)
            if row_trainable or targeted:
                grad_on = True
        else:
            no_dx = 0
        act = row.activation_bytes
        if train and method != "full" and (row.weight_input_bytes or row.shares_input):
            # a frozen weight never forms dW, so its input is not saved ... unless a LoRA adapter
            # reads it. Rows reading one tensor (q/k/v) share one saved copy, except under
            # autocast where each makes its own 16-bit cast.
            if not row.shares_input:
                group_input, group_kept = row.weight_input_bytes, False
            act -= row.weight_input_bytes
            if targeted:
                if ctx.autocast:
                    act += row.weight_input_bytes
                elif not group_kept:
                    act += group_input
                    group_kept = True
        if targeted:
            a_params = r * (row.lora_in + row.lora_out)
            adapter += a_params * n
            a_fwd = 2.0 * row.lora_tokens * a_params
            adapter_fwd += a_fwd * n
            row_bwd += 2.0 * a_fwd if train else 0.0
            # backward of B then A: dB, d(A's output), dA, and dX through A (not where no_dx)
            if no_dx:
                row_bwd = max(0.0, row_bwd - 2.0 * row.lora_tokens * r * row.lora_in * (no_dx / n))
            a_act = row.lora_tokens * r * p.compute_bytes  # A's output, saved by B
            act += a_act
            adapter_factored += (2 * r + row.lora_in + row.lora_out) * n
        if ctx.autocast and row.weight_cast_elems:
            cast_elems += row.weight_cast_elems * n
            act += row.weight_cast_elems * p.compute_bytes  # 16-bit weight copy kept for backward
        if row.matmul_params and method in ("lora", "qlora", "bitfit", "none"):
            frozen_matmul += row.matmul_params * n
        grad_bytes_row = (row_trainable * p.grad_bytes + (r * (row.lora_in + row.lora_out) * p.grad_bytes
                                                          if targeted else 0.0))
        bwd += row_bwd * n
        act_rows.append((act if train else 0.0, grad_bytes_row if train else 0.0, row.block, n))
        if row.weight_format:  # stored as the checkpoint ships it (inference rows only: training dequantizes)
            native_params += row.params * n
            native_matmul += row.matmul_params * n
            native_bytes += (row.matmul_params * WEIGHT_FORMAT_BYTES[row.weight_format]
                             + (row.params - row.matmul_params) * weight_b) * n
        if row.matmul_params:
            weight_tensors += n * max(1, row.experts)
        if with_layers:
            if row.weight_format:
                wb = row.matmul_params * WEIGHT_FORMAT_BYTES[row.weight_format] + (row.params - row.matmul_params) * weight_b
            elif quantized and (method in ("lora", "qlora", "none")) and row.matmul_params:
                wb = row.matmul_params * frozen_b + (row.params - row.matmul_params) * weight_b
            else:
                wb = row.params * weight_b
            layer_rows.append(LayerRow(row.name, row.kind, n, row.params, row.forward_flops, row_bwd, wb,
                                       act if train else 0.0, row.kv_cache_bytes))


    out = RowSums()
    out.total, out.active, out.matmul_total, out.bias_total = total, active, matmul_total, bias_total
    out.adapter, out.adapter_fwd, out.adapter_factored = adapter, adapter_fwd, adapter_factored
    out.fwd, out.bwd, out.prunable_fwd = fwd, bwd, prunable_fwd
    out.act_rows, out.frozen_matmul, out.trainable = tuple(act_rows), frozen_matmul, trainable
    out.layer_rows, out.peaks = tuple(layer_rows), {}
    out.factored = sum(row.factored_state_elems * row.count for row in rows)
    # gradient checkpointing re-runs every block's forward (adapters included) ... except its last op
    # that saves a tensor: non-reentrant checkpointing (torch.utils.checkpoint, use_reentrant=False, the
    # default of PyTorch and transformers >= 5) stops as soon as every saved tensor is back, and an op
    # saves its inputs before its kernel runs (e.g. a Llama block's down_proj is not recomputed; with an
    # active dropout after it, the mask is saved after the matmul, which then does run)
    last_saver = {}
    for i, row in enumerate(rows):
        if row.block and (row.activation_bytes > 0 or row.matmul_params > 0):
            last_saver[row.block] = -1 if row.saves_after_kernel else i
    out.recompute = sum(row.forward_flops * row.count for i, row in enumerate(rows)
                        if row.block and last_saver.get(row.block) != i) + sum(
        2.0 * row.lora_tokens * r * (row.lora_in + row.lora_out) * row.count
        for row in rows if row.block and targets and row.module in targets and row.lora_in)
    out.native_params, out.native_matmul, out.native_bytes = native_params, native_matmul, native_bytes
    out.weight_tensors = weight_tensors
    out.targeted_rows = sum(row.count for row in rows if targets and row.module in targets and row.lora_in)
    return out
