"""Workload + model spec + hardware -> Estimate. Sums the per-layer ledger and applies the
memory formulas of docs/formulas.md. No torch, no I/O beyond the cached catalogs."""

from __future__ import annotations

import functools

from .catalog import resolve_hardware
from .errors import InputError
from .layers import Ctx, Layer
from .limits import check_workload
from .perf import Efficiency, default_efficiency
from .results import Estimate, FlopCounts, LayerRow, MemoryBreakdown, ParamCounts
from .specs.base import ModelSpec
from .timing import RunWork, device_rates, forward_times, generation_times, train_times
from .workload import QUANT_SCALE_BYTES_PER_WEIGHT, SPARSE_2_4_META_BYTES, Workload

# Device memory a CUDA process uses outside torch's allocator: CUDA context, cuBLAS/cuDNN
# workspaces and kernel images. Measured in benchmarks/results/h100_reference_sample.json: NVML "used"
# minus torch max_memory_reserved minus the empty-device baseline, 0.78-0.80 GB across runs.
CUDA_RUNTIME_BYTES = 0.79e9
# torch's caching allocator reserves more than it hands out: max_memory_reserved /
# max_memory_allocated was 1.045-1.096 in the same file; 6% is the middle.
ALLOCATOR_SLACK = 0.06


def runtime_overhead_bytes(peak_bytes: float, hw) -> float:
    """Device memory beside the tensors torch allocates: the CUDA context and library workspaces
    (``CUDA_RUNTIME_BYTES``, not on CPUs) + the caching allocator's slack (``ALLOCATOR_SLACK`` x peak).
    What nvidia-smi shows = peak + this."""
    return (CUDA_RUNTIME_BYTES if getattr(hw, "kind", "gpu") != "cpu" else 0.0) + ALLOCATOR_SLACK * peak_bytes

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
        dropout=training and (True if w.dropout is None else w.dropout),
    )


@functools.lru_cache(maxsize=8192)
def ledger(spec: ModelSpec, ctx: Ctx) -> tuple[Layer, ...]:
    """The per-layer ledger of one pass. Pure in (spec, ctx), so sweeps that vary only the
    optimizer, fine-tuning method or hardware reuse it."""
    return tuple(spec.ledger(ctx))


def _lora_targets(rows: list[Layer], w: Workload) -> set[str]:
    available = sorted({r.module for r in rows if r.lora_in})
    targets = set(w.lora_targets)
    if "all-linear" in targets:
        return {m for m in available if m != "lm_head"}
    missing = targets - set(available)
    if missing:
        raise InputError("lora_targets", f"no module named {', '.join(sorted(missing))} in this model; "
                         f"available: {', '.join(available)} (or all-linear)")
    return targets


class _RowSums:
    """The ledger summed for one (spec, pass, precision, fine-tuning method): everything the
    estimate needs from the rows. Cached, so sweeps over optimizer, checkpointing or hardware
    reuse it; ``peaks`` memoizes the backward walk per checkpointing setting."""

    __slots__ = ("total", "active", "matmul_total", "bias_total", "adapter", "adapter_fwd", "adapter_factored",
                 "fwd", "bwd", "prunable_fwd", "act_rows", "frozen_matmul", "trainable", "layer_rows", "peaks",
                 "factored", "recompute", "targeted_rows")


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


@functools.lru_cache(maxsize=8192)
def _row_sums(spec: ModelSpec, ctx: Ctx, p, method: str, targets: frozenset, r: int, with_layers: bool,
              input_grads: bool = False) -> _RowSums:
    rows = ledger(spec, ctx)
    train = ctx.training
    total = active = matmul_total = bias_total = 0
    adapter = adapter_fwd = adapter_act = adapter_factored = 0.0
    fwd = bwd = 0.0
    prunable_fwd = 0.0
    act_rows: list[tuple[float, float, str, int]] = []  # (activation bytes, grad bytes, block, count)
    frozen_matmul = 0
    trainable = 0
    cast_elems = 0
    layer_rows = []
    weight_b = p.weight_bytes if train else (4.0 if p.compute_dtype == "fp32" and not p.autocast else
                                             (4.0 if p.autocast else p.weight_bytes))
    frozen_b = p.frozen_weight_bytes + QUANT_SCALE_BYTES_PER_WEIGHT.get(p.name, 0.0)
    quantized = p.weight_only_quant or p.name == "fp8"
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
        if with_layers:
            if quantized and (method in ("lora", "qlora", "none")) and row.matmul_params:
                wb = row.matmul_params * frozen_b + (row.params - row.matmul_params) * weight_b
            else:
                wb = row.params * weight_b
            layer_rows.append(LayerRow(row.name, row.kind, n, row.params, row.forward_flops, row_bwd, wb,
                                       act if train else 0.0, row.kv_cache_bytes))


    out = _RowSums()
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
    out.targeted_rows = sum(row.count for row in rows if targets and row.module in targets and row.lora_in)
    return out


def estimate(spec: ModelSpec, workload: Workload, hardware=None, with_layers: bool = True,
             efficiency: Efficiency | None = None) -> Estimate:
    """Estimate params, FLOPs, per-device memory and time of ``workload`` on ``spec``.

    ``hardware``: a catalog ``Hardware`` (or None for the default) giving capacity and peaks.
    ``efficiency``: achievable fractions of peak and host overheads (default: per device kind,
    ``costmodel.perf.DEFAULT_EFFICIENCY``).
    """
    hw = resolve_hardware(hardware)
    w = workload
    check_workload(spec, w)  # positions within the context length, image size a fixed head takes
    p, opt = w.prec, w.opt
    train = w.training
    generative_infer = (not train) and spec.generative
    main_phase = "train" if train else ("prefill" if generative_infer else "forward")
    ctx = make_ctx(spec, w, main_phase)
    rows = ledger(spec, ctx)

    # ---- which parameters train --------------------------------------------------------
    method = w.fine_tune_method if train else "none"
    targets = _lora_targets(rows, w) if w.lora_rank else set()
    r = w.lora_rank

    sums = _row_sums(spec, ctx, p, method, frozenset(targets), r, with_layers,
                     bool(w.grad_checkpointing) and spec.modality == "text")
    total, active, matmul_total, bias_total = sums.total, sums.active, sums.matmul_total, sums.bias_total
    adapter, adapter_fwd, adapter_factored = sums.adapter, sums.adapter_fwd, sums.adapter_factored
    fwd, bwd, prunable_fwd = sums.fwd, sums.bwd, sums.prunable_fwd
    act_rows, frozen_matmul, trainable, layer_rows = sums.act_rows, sums.frozen_matmul, sums.trainable, sums.layer_rows
    weight_b = p.weight_bytes if train else (4.0 if p.compute_dtype == "fp32" and not p.autocast else
                                             (4.0 if p.autocast else p.weight_bytes))
    frozen_b = p.frozen_weight_bytes + QUANT_SCALE_BYTES_PER_WEIGHT.get(p.name, 0.0)
    quantized = p.weight_only_quant or p.name == "fp8"
    trainable += int(adapter)
    total_with_adapter = total + int(adapter)
    fwd += adapter_fwd

    # ---- weights -----------------------------------------------------------------------
    frozen_quantized = quantized and method in ("lora", "qlora", "none")  # frozen linears stored quantized
    if frozen_quantized:
        weights = frozen_matmul * frozen_b + (total - frozen_matmul) * weight_b
    else:
        weights = total * weight_b
    if w.sparsity_pattern == "2:4" and not train:
        # 2:4: half of every linear/conv weight kept, compressed, plus 2 bits of position metadata per kept value
        b = frozen_b if frozen_quantized else weight_b
        weights -= matmul_total * (b - (0.5 * b + SPARSE_2_4_META_BYTES))
    weights += adapter * p.weight_bytes
    buffer_bytes = getattr(spec, "buffer_bytes", None)
    if buffer_bytes is not None:
        weights += buffer_bytes()

    # ---- training state ----------------------------------------------------------------
    grads = optimizer = opt_temp = 0.0
    if train:
        grads = trainable * p.grad_bytes
        if opt.factored:
            if method == "full":
                factored = sums.factored
            elif method == "bitfit":
                factored = bias_total
            else:
                factored = adapter_factored
            optimizer = factored * 4.0
        else:
            optimizer = trainable * (opt.states_per_param * p.state_bytes + opt.fixed_bytes_per_param)
        opt_temp = trainable * opt.step_temp_per_param * p.state_bytes

    # ---- activations and the peak --------------------------------------------------------
    kv_cache = 0.0
    logits_loss = 0.0
    transient = 0.0
    recompute = 0.0
    if train:
        ckpt_per_block = spec.checkpoint_bytes(ctx) if w.grad_checkpointing else 0.0
        if w.grad_checkpointing and not ckpt_per_block:
            raise InputError("grad_checkpointing", f"is not modelled for the {spec.family} family; "
                             "supported for transformer decoders, encoders and MoE")
        logits_loss = spec.loss_buffer_bytes(ctx)
        key = (logits_loss, ckpt_per_block)
        if key not in sums.peaks:
            sums.peaks[key] = _backward_peak(act_rows, logits_loss, ckpt_per_block)
        activations, peak_live, phase = sums.peaks[key]
        if w.grad_checkpointing:
            recompute = sums.recompute
        base = weights + optimizer
        peak = base + peak_live
        step_peak = base + grads + opt_temp
        if step_peak > peak:
            peak, phase = step_peak, "optimizer step"
        transient = peak - base - activations - grads if phase != "optimizer step" else opt_temp
        transient = max(transient, 0.0)
    else:
        activations = 0.0
        work = max((row.working_bytes for row in rows), default=0.0)
        head_logits = 0.0
        if spec.generative:
            vocab = getattr(spec, "vocab_size", 0)
            head_logits = w.batch * vocab * 4.0  # last-position fp32 logits
            full_ctx = make_ctx(spec, w, "decode_full")
            kv_cache = sum(row.kv_cache_bytes * row.count for row in ledger(spec, full_ctx))
        transient = work + head_logits
        peak = weights + kv_cache + transient
        phase = "prefill" if generative_infer else "forward"

    # decode FLOPs per token at the mean context
    decode_flops = 0.0
    if generative_infer:
        dctx = make_ctx(spec, w, "decode")
        decode_flops = sum(row.forward_flops * row.count for row in ledger(spec, dctx))
        decode_flops += sum(2.0 * w.batch * r * (row.lora_in + row.lora_out) * row.count
                            for row in rows if targets and row.module in targets and row.lora_in) if r else 0.0
        decode_flops /= w.batch  # per generated token

    is_gpu = getattr(hw, "kind", "gpu") != "cpu"
    overhead = runtime_overhead_bytes(peak, hw)
    device_total = peak + overhead
    capacity = float(hw.memory_bytes)

    tokens = w.batch * (w.seq if spec.modality == "text" else 1)
    total_flops = fwd + bwd + recompute
    eff = efficiency or default_efficiency(hw)
    work = RunWork(rows=rows, weight_read_bytes=weights / total if total else p.weight_bytes, forward_flops=fwd,
                   backward_flops=bwd, recompute_flops=recompute, adapter_forward_flops=adapter_fwd,
                   adapter_rows=sums.targeted_rows, params=total, matmul_params=matmul_total, trainable=trainable,
                   tokens=tokens, full_backward=method == "full")
    rates = device_rates(hw, w)
    if train:
        time_s, perf = train_times(work, w, rates, eff)
    elif generative_infer:
        time_s, perf = generation_times(work, ledger(spec, make_ctx(spec, w, "decode")), w, rates, eff)
    else:
        time_s, perf = forward_times(work, w, rates, eff)
    flops = FlopCounts(
        forward=fwd, backward=bwd, recompute=recompute, total=total_flops if train else fwd,
        forward_macs=fwd / 2.0, forward_effective=fwd - w.sparsity * prunable_fwd,
        decode_per_token=decode_flops, per_token_train=(total_flops / tokens) if train else 0.0,
    )
    params = ParamCounts(
        total=total_with_adapter, trainable=trainable if train else 0, active=active + int(adapter),
        frozen=total_with_adapter - (trainable if train else 0), nonzero=total_with_adapter - int(w.sparsity * matmul_total),
        adapter=int(adapter),
    )
    memory = MemoryBreakdown(
        weights=weights, gradients=grads, optimizer=optimizer, activations=activations,
        logits_loss=logits_loss, kv_cache=kv_cache, transient=transient, peak=peak,
        runtime_overhead=overhead, device_total=device_total, capacity=capacity,
        fits=device_total <= capacity, headroom=capacity - device_total, peak_phase=phase,
    )
    assumptions = {
        "precision": p.description,
        "optimizer": opt.source,
        "activations": "bytes autograd saves in eager PyTorch (HF implementations); "
                       + ("fused SDPA attention (flash / memory-efficient)" if w.attention == "fused"
                          else "eager attention (scores materialised)"),
        "runtime_overhead": f"{CUDA_RUNTIME_BYTES / 1e9:.2f} GB CUDA context/workspaces + "
                            f"{ALLOCATOR_SLACK:.0%} allocator slack" if is_gpu else f"{ALLOCATOR_SLACK:.0%} allocator slack",
        "flops": "2 FLOPs per multiply-add; matmul/conv/attention/RNN-gate work only",
        "efficiency": {**eff.to_dict(), "peak_flops_per_s": perf.peak_flops_per_s,
                       "peak_bandwidth_bytes_per_s": hw.memory_bandwidth_bytes_per_s},
        "time": "per row max(FLOPs / (peak x efficiency.matmul), bytes / (bandwidth x efficiency.bandwidth)); "
                "a pass takes max(host overhead, device time); one device, no communication",
    }
    return Estimate(
        model=spec.name, family=spec.family, hardware=hw.id, workload=w, params=params, flops=flops,
        memory_bytes=memory, time_s=time_s, perf=perf, assumptions=assumptions, layers=tuple(layer_rows),
        modality=spec.modality,
    )


def _backward_peak(act_rows, loss_buffer: float, ckpt_per_block: float) -> tuple[float, float, str]:
    """Live activation+gradient bytes over the backward pass, walking the ledger in reverse.

    At the start of backward every saved tensor is alive plus the loss buffers; each layer's
    backward then frees its saved tensors and adds its parameter gradients. Identical
    blocks are handled in closed form: the running total moves by the same amount per
    block, so its maximum over a block run is at the first or the last block.
    With checkpointing a block run keeps only its inputs (``ckpt_per_block`` each) and
    recomputes one block's activations just before that block's backward.
    Returns (activation bytes at the start of backward, peak live bytes, phase name).
    """
    # group consecutive rows of the same block
    segments: list[tuple[str, int, list[tuple[float, float]]]] = []
    for act, grad, block, n in act_rows:
        if block and segments and segments[-1][0] == block:
            segments[-1][2].append((act, grad))
        elif block:
            segments.append((block, n, [(act, grad)]))
        else:
            segments.append(("", 1, [(act * n, grad * n)]))
    total_act = 0.0
    for block, n, items in segments:
        blk = sum(a for a, _ in items)
        total_act += (ckpt_per_block if (ckpt_per_block and block) else blk) * n
    live = total_act + loss_buffer
    peak = live
    phase = "start of backward"
    first = True
    for block, n, items in reversed(segments):
        if not block:
            for a, g in reversed(items):
                live += g - a
                peak = max(peak, live)
            if first and loss_buffer:
                live -= loss_buffer
                first = False
            continue
        first = False
        # one block, in reverse: excursion above the block's starting level
        run = 0.0
        excursion = 0.0
        blk_act = sum(a for a, _ in items)
        if ckpt_per_block:
            run = blk_act  # recomputed activations appear before this block's backward
            excursion = run
        for a, g in reversed(items):
            run += g - a
            excursion = max(excursion, run)
        per_block = run - (ckpt_per_block if ckpt_per_block else 0.0)
        seg_peak = live + excursion + max(0.0, (n - 1) * per_block)
        if seg_peak > peak:
            peak = seg_peak
            phase = "start of backward" if per_block <= 0 else "end of backward"
        live += n * per_block
    return total_act, peak, phase
