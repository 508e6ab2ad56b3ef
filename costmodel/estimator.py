"""Workload + model spec + hardware -> Estimate: the memory formulas of docs/formulas.md applied to the
ledger sums of ``costmodel.ledger`` (weights, gradients, optimizer states, the backward-peak walk, KV cache,
runtime overhead), the time of ``costmodel.timing``, and the assumptions next to them. No torch, no I/O
beyond the cached catalogs."""

from __future__ import annotations

from dataclasses import replace

from .catalog import resolve_hardware
from .errors import InputError
from .ledger import LazyLayerRows, check_lora_rank, ledger, lora_targets, make_ctx, row_sums, selective_checkpoint_of
from .limits import check_workload
from .perf import Efficiency, default_efficiency
from .results import Estimate, FlopCounts, MemoryBreakdown, ParamCounts
from .specs.base import ModelSpec
from .timing import RunWork, device_rates, forward_times, generation_times, train_times
from .workload import QUANT_SCALE_BYTES_PER_TENSOR, QUANT_SCALE_BYTES_PER_WEIGHT, SPARSE_2_4_META_BYTES, Workload

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
    targets = lora_targets(rows, w) if w.lora_rank else set()
    r = w.lora_rank
    if r:
        check_lora_rank(rows, targets, r)

    input_grads = bool(w.grad_checkpointing) and spec.modality == "text"
    sums = row_sums(spec, ctx, p, method, frozenset(targets), r, False, input_grads)
    # the per-layer table is built when someone reads est.layers (ledger.LazyLayerRows), not here
    layer_rows = LazyLayerRows(spec, ctx, p, method, frozenset(targets), r, input_grads) if with_layers else ()
    total, active, matmul_total, bias_total = sums.total, sums.active, sums.matmul_total, sums.bias_total
    adapter, adapter_fwd, adapter_factored = sums.adapter, sums.adapter_fwd, sums.adapter_factored
    fwd, bwd, prunable_fwd = sums.fwd, sums.bwd, sums.prunable_fwd
    act_rows, frozen_matmul, trainable = sums.act_rows, sums.frozen_matmul, sums.trainable
    weight_b = p.weight_bytes if train else (4.0 if p.compute_dtype == "fp32" and not p.autocast else
                                             (4.0 if p.autocast else p.weight_bytes))
    frozen_b = p.frozen_weight_bytes + QUANT_SCALE_BYTES_PER_WEIGHT.get(p.name, 0.0)
    quantized = p.weight_only_quant or p.compute_dtype in ("fp8", "fp4")
    trainable += int(adapter)
    total_with_adapter = total + int(adapter)
    fwd += adapter_fwd

    # ---- weights -----------------------------------------------------------------------
    frozen_quantized = quantized and method in ("lora", "qlora", "none")  # frozen linears stored quantized
    # rows the checkpoint stores in its own format (gpt-oss's MXFP4 experts) are priced apart
    n_total, n_matmul = total - sums.native_params, matmul_total - sums.native_matmul
    n_frozen = frozen_matmul - sums.native_matmul if frozen_quantized else frozen_matmul
    if frozen_quantized:
        weights = n_frozen * frozen_b + (n_total - n_frozen) * weight_b
        weights += sums.weight_tensors * QUANT_SCALE_BYTES_PER_TENSOR.get(p.name, 0.0)
    else:
        weights = n_total * weight_b
    weights += sums.native_bytes
    if w.sparsity_pattern == "2:4" and not train:
        # 2:4: half of every linear/conv weight kept, compressed, plus 2 bits of position metadata per kept value
        b = frozen_b if frozen_quantized else weight_b
        weights -= n_matmul * (b - (0.5 * b + SPARSE_2_4_META_BYTES))
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
            optimizer = trainable * (opt.states_per_param * p.state_bytes + opt.fixed_bytes_per_param + p.master_bytes)
        opt_temp = trainable * opt.step_temp_per_param * p.state_bytes

    # ---- activations and the peak --------------------------------------------------------
    kv_cache = 0.0
    logits_loss = 0.0
    transient = 0.0
    recompute = 0.0
    if train:
        mode = w.grad_checkpointing  # False, True (full) or "selective" (per op)
        block_input = spec.checkpoint_bytes(ctx) if mode else 0.0
        if mode and not block_input:
            raise InputError("grad_checkpointing", f"is not modelled for the {spec.family} family; "
                             "supported for transformer decoders, encoders and MoE")
        if mode == "selective":
            sel_saved, sel_recompute, refused = selective_checkpoint_of(spec, ctx)
            if refused:
                raise InputError("grad_checkpointing", f"'selective' (per-op) is modelled for attention and dense MLP "
                                 f"blocks; this {spec.family} model's blocks have {refused} rows: "
                                 "use full checkpointing (true)")
            kept = tuple(sorted((b, block_input + v) for b, v in sel_saved.items()))
        else:
            kept = block_input
        logits_loss = spec.loss_buffer_bytes(ctx)
        key = (logits_loss, kept)
        if key not in sums.peaks:
            sums.peaks[key] = _backward_peak(act_rows, logits_loss, kept)
        activations, peak_live, phase = sums.peaks[key]
        if mode:
            recompute = sel_recompute if mode == "selective" else sums.recompute
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
    # per-weight read bytes of the rows in the workload's precision (natively stored rows carry their own)
    own_params = total - sums.native_params
    work = RunWork(rows=rows, weight_read_bytes=(weights - sums.native_bytes) / own_params if own_params else p.weight_bytes,
                   forward_flops=fwd, backward_flops=bwd, recompute_flops=recompute, adapter_forward_flops=adapter_fwd,
                   adapter_rows=sums.targeted_rows, params=own_params, matmul_params=matmul_total, trainable=trainable,
                   tokens=tokens, full_backward=method == "full")
    rates = device_rates(hw, w, causal=spec.generative)
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
    embed = 0 if getattr(spec, "tied_embeddings", False) else sum(
        r.params * r.count for r in rows if r.kind == "embedding" and r.name == "embed_tokens")
    params = ParamCounts(
        total=total_with_adapter, trainable=trainable if train else 0, active=active + int(adapter),
        frozen=total_with_adapter - (trainable if train else 0), nonzero=total_with_adapter - int(w.sparsity * matmul_total),
        adapter=int(adapter), active_without_embedding=active + int(adapter) - embed,
        apart=dict(getattr(spec, "params_apart", ())),
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
    if generative_infer:
        assumptions["kv_cache"] = kv_cache_summary(spec, w)
    notes = dict(getattr(spec, "notes", ()))
    if notes:
        assumptions["model"] = notes
    if sums.native_params and not train:
        assumptions["precision"] += (f"; {sums.native_params:,} params stored as the checkpoint ships them "
                                     "(Layer.weight_format, e.g. gpt-oss MXFP4 experts)")
    if params.active != params.total:
        assumptions["active_params"] = ("params.active: everything a token's forward uses (attention, shared experts, "
                                        "top-k routed experts, router, norms, embedding table and head; Mixtral 12.9B, "
                                        "Qwen3-30B-A3B 3.3B); params.active_without_embedding drops the input "
                                        "embedding table (gpt-oss 3.6B/5.1B, DeepSeek-V3 36.6B)")
    return Estimate(
        model=spec.name, family=spec.family, hardware=hw.id, workload=w, params=params, flops=flops,
        memory_bytes=memory, time_s=time_s, perf=perf, assumptions=assumptions, layers=layer_rows,
        modality=spec.modality,
    )


def kv_cache_summary(spec: ModelSpec, w: Workload) -> dict:
    """What one more position costs in the cache, and what a sequence holds regardless of length, for both
    layouts (``Workload.kv_cache_layout``): engine (vLLM / SGLang / TensorRT-LLM) and hf (transformers' own
    cache objects). Bytes for one sequence at the workload's KV dtype: per token = cache(2 positions) -
    cache(1 position) while every window still holds both; fixed = cache(1) - per token (SSM / conv state)."""
    out: dict = {"layout": w.kv_cache_layout}
    for layout in ("engine", "hf"):
        base = make_ctx(spec, w.with_(batch=1, kv_cache_layout=layout), "decode")
        one, two = (sum(r.kv_cache_bytes * r.count for r in spec.ledger(replace(base, seq=1, kv_len=n)))
                    for n in (1, 2))
        out[f"{layout}_bytes_per_token"] = two - one
        if one - (two - one) > 0.5:
            out[f"{layout}_state_bytes_per_sequence"] = one - (two - one)
    out["note"] = ("engine: serving engines' cache (MLA latent, sliding/chunked layers capped at their window, SSM "
                   "state in the KV dtype); hf: transformers' DynamicCache (window - 1 positions, fp32 SSM state); "
                   "memory_bytes.kv_cache uses the chosen layout at prompt + generate positions")
    return out


def _backward_peak(act_rows, loss_buffer: float, ckpt: float | tuple) -> tuple[float, float, str]:
    """Live activation+gradient bytes over the backward pass, walking the ledger in reverse.

    At the start of backward every saved tensor is alive plus the loss buffers; each layer's
    backward then frees its saved tensors and adds its parameter gradients. Identical
    blocks are handled in closed form: the running total moves by the same amount per
    block, so its maximum over a block run is at the first or the last block.
    With checkpointing a block run keeps only what its checkpoint saves (``ckpt``: bytes per block instance, or
    (block name, bytes) pairs when that differs by block: per-op selective checkpointing) and recomputes one
    block's activations just before that block's backward.
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
    per_name = dict(ckpt) if isinstance(ckpt, tuple) else None

    def kept(block: str) -> float:
        return per_name.get(block, 0.0) if per_name is not None else ckpt

    total_act = 0.0
    for block, n, items in segments:
        blk = sum(a for a, _ in items)
        total_act += (kept(block) if (ckpt and block) else blk) * n
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
        if ckpt:
            run = blk_act  # recomputed activations appear before this block's backward
            excursion = run
        for a, g in reversed(items):
            run += g - a
            excursion = max(excursion, run)
        per_block = run - (kept(block) if ckpt else 0.0)
        seg_peak = live + excursion + max(0.0, (n - 1) * per_block)
        if seg_peak > peak:
            peak = seg_peak
            phase = "start of backward" if per_block <= 0 else "end of backward"
        live += n * per_block
    return total_act, peak, phase
