"""Training across many devices: layouts, per-device memory, communication, step time.

A ``Layout`` places ``dp x tp x pp x cp`` devices (tensor parallel innermost, then context,
pipeline, data parallel outermost, as Megatron-LM orders its groups), with ZeRO/FSDP sharding,
expert parallelism for MoE (inside the data-parallel group) and optional optimizer offload to
the host. ``train_step`` turns a single-device estimate of one micro-batch into the per-device
memory and the step time of the whole layout. Every formula and its source is in
docs/formulas.md ("Parallelism" and "Collectives").
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, fields

from .collectives import (DP_TERMS, dp_sync_terms, ep_term, tp_term, group_link, group_topology, shard_group_topology,
                          NVLINK_BUS_EFFICIENCY, CommBreakdown,
                          CommTerm, LinkCalibration, Topology, allgather_topo_s, allreduce_topo_s, alltoall_topo_s, cp_term,
                          dp_sync_volume_bytes, ep_volume_bytes, exposed_comm_s, pp_term, reduce_scatter_topo_s,
                          tp_volume_bytes)
from .engines import ENGINES, TrainingEngine, fitted
from .errors import InputError
from .estimator import runtime_overhead_bytes
from .ledger import ledger, make_ctx, selective_checkpoint_of
from .workload import Workload, checkpointing

# Host link for optimizer offload: PCIe 4.0 x16 moves about 25 GB/s each way in practice
# (32 GB/s raw); ZeRO-Offload (Ren et al. 2021) reports similar effective rates.
PCIE_BYTES_PER_S = 25e9
# Fraction of data-parallel gradient communication hidden behind the backward pass (PyTorch DDP
# buckets and FSDP prefetch overlap collectives with compute; Li et al. 2020, PyTorch DDP paper).
DEFAULT_DP_OVERLAP = 0.5


# ---- layouts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How a training job is spread over devices.

    ``dp`` data parallel, ``tp`` tensor parallel (Megatron, with sequence parallelism),
    ``pp`` pipeline stages (1F1B schedule), ``cp`` context/sequence parallel (ring attention),
    ``ep`` expert parallel (MoE; experts split over ``ep`` devices of the data-parallel group),
    ``zero`` 0-3 (ZeRO stage; 3 = FSDP full sharding), ``micro_batch`` samples per device per
    micro-batch, ``offload`` optimizer states and step on the host (ZeRO-Offload), ``vp`` virtual pipeline
    stages per pipeline rank (Megatron's interleaved 1F1B; 1 = plain 1F1B).
    """

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    micro_batch: int = 1
    grad_checkpointing: bool | str = False  # False, True (full) or "selective" (workload.checkpointing)
    offload: bool = False
    vp: int = 1

    def __post_init__(self):
        for name in ("dp", "tp", "pp", "cp", "ep", "micro_batch", "vp"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 20:
                raise InputError(f"layout.{name}", f"must be a whole number from 1 to {1 << 20}, got {v!r}")
        if self.grad_checkpointing is not False and self.grad_checkpointing is not True:
            object.__setattr__(self, "grad_checkpointing", checkpointing(self.grad_checkpointing,
                                                                        "layout.grad_checkpointing"))
        if self.zero not in (0, 1, 2, 3):
            raise InputError("layout.zero", f"must be 0, 1, 2 or 3 (ZeRO stage; 3 = FSDP), got {self.zero!r}")
        if self.dp % self.ep:
            raise InputError("layout.ep", f"must divide dp ({self.dp}): experts are split inside the data-parallel group")
        if self.vp > 1 and self.pp == 1:
            raise InputError("layout.vp", "virtual pipeline stages need pipeline parallelism (pp > 1)")

    @property
    def num_devices(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"num_devices": self.num_devices}


def check_layout(spec, layout: Layout) -> None:
    """Divisibility rules of Megatron-style parallelism, each naming the field."""
    heads = _int_attr(spec, "heads")
    kv = _int_attr(spec, "n_kv_heads") or heads
    layers = n_layers(spec)
    experts = getattr(spec, "num_experts", 0)
    if layout.tp > 1:
        if not heads:
            raise InputError("layout.tp", f"tensor parallelism is modelled for transformers; {spec.family} has no heads")
        if heads % layout.tp:
            raise InputError("layout.tp", f"must divide the number of attention heads ({heads}), got {layout.tp}")
        if kv % layout.tp and layout.tp % kv:
            raise InputError("layout.tp", f"must divide or be a multiple of the KV heads ({kv}), got {layout.tp}")
    if layout.pp > 1:
        if not layers:
            raise InputError("layout.pp", f"pipeline parallelism is modelled for transformers; {spec.family} has no layer stack")
        if layout.pp > layers:
            raise InputError("layout.pp", f"must be at most the number of layers ({layers}), got {layout.pp}")
        if layout.pp * layout.vp > layers + 2:  # Megatron may count the embedding and the loss as pipeline layers
            raise InputError("layout.vp", f"pp x vp must be at most the number of layers + 2 ({layers + 2}), got "
                                          f"{layout.pp} x {layout.vp}")
    if layout.ep > 1:
        if not experts:
            raise InputError("layout.ep", "expert parallelism needs a mixture-of-experts model")
        if experts % layout.ep:
            raise InputError("layout.ep", f"must divide the number of experts ({experts}), got {layout.ep}")
    if layout.cp > 1 and not heads:
        raise InputError("layout.cp", "context parallelism is modelled for transformers")


def _int_attr(spec, name: str) -> int:
    """A transformer shape attribute; 0 when a family has none (MLP ``hidden`` is a tuple, CNN
    ``layers`` a list of records)."""
    v = getattr(spec, name, 0)
    return v if isinstance(v, int) and not isinstance(v, bool) else 0


def shard_group_size(layout: Layout) -> int:
    """Devices that hold the same model shard and reduce its gradients together: the data-parallel ranks and,
    with context parallelism, the context-parallel ranks too (each computes the gradients of its slice of the
    sequence for the same weights). ZeRO/FSDP shards over this group: Megatron-LM's data-parallel group "with
    context parallel" (``parallel_state.get_data_parallel_group(with_context_parallel=True)``, used by the
    distributed optimizer and the gradient buffers), torchtitan's ``dp_shard_cp`` mesh that FSDP2 is applied
    to (``parallelize_llama``).

        n_shard = dp x cp"""
    return layout.dp * layout.cp


def n_layers(spec) -> int:
    """Repeated blocks of a transformer stack (0 for families without one)."""
    return _int_attr(spec, "layers")


@dataclass(frozen=True)
class ParallelMemory:
    """Bytes per device under a layout: sharded weights, gradients and optimizer states, the activations of
    the micro-batches in flight, the peak (comparable to torch.cuda.max_memory_allocated) and the device total
    with the runtime overhead (what nvidia-smi shows), against the device's capacity."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    peak: float
    device_total: float
    capacity: float

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class ParallelStep:
    """One optimizer step of a layout, per device. Bytes and seconds."""

    layout: Layout
    global_batch: int
    grad_accum: int
    memory_bytes: ParallelMemory
    fits: bool
    compute_s: float  # all micro-batches incl. the pipeline bubble
    bubble_s: float
    optimizer_s: float
    comm_s: CommBreakdown  # per collective, before overlap
    exposed_comm_s: float
    step_s: float
    tokens_per_step: int
    model_flops_per_step: float  # forward + backward, whole job (no recomputation)
    hardware_flops_per_step: float  # with recomputation
    mfu: float
    hfu: float
    assumptions: dict

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out.update(layout=self.layout.to_dict(), memory_bytes=self.memory_bytes.to_dict(),
                   comm_s=self.comm_s.to_dict(), assumptions=dict(self.assumptions))
        return out


# ---- the named pieces of a step --------------------------------------------------------------------------------

def model_shard_fraction(expert_fraction: float, tp: int, pp: int, ep: int) -> float:
    """Share of the model's parameters one device holds before ZeRO: dense weights split tp x pp ways, expert
    weights (``expert_fraction`` of all) tp x pp x ep ways."""
    model_shards = tp * pp
    return (1.0 - expert_fraction) / model_shards + expert_fraction / (model_shards * ep)


def sharded_state_bytes(m, shard: float, dp: int, zero: int, offload: bool = False,
                        master_is_param: bool = False) -> tuple[float, float, float]:
    """(weights, gradients, optimizer states) bytes one device holds, from the single-device ``m``
    (``MemoryBreakdown``) and its ``model_shard_fraction`` ``shard``: ZeRO-1 splits the optimizer states over
    the ``dp`` ranks, ZeRO-2 the gradients too, ZeRO-3 (FSDP) the weights too; ``master_is_param``: FSDP's
    sharded fp32 parameter is the master copy (counted with the optimizer states), so no 16-bit resident copy is
    kept; ``offload``: the optimizer states live on the host. ``train_step``'s peak adds the live activations
    to their sum, so the sum is also a lower bound of the peak (``plans.search_layouts`` prunes by it)."""
    weights = m.weights * shard
    grads = m.gradients * shard
    optimizer = m.optimizer * shard
    if zero >= 1:
        optimizer /= dp
    if zero >= 2:
        grads /= dp
    if zero >= 3:
        weights /= dp
        if master_is_param:  # only the gathered units are in flight (train_step's gather_buf)
            weights = 0.0
    if offload:
        optimizer = 0.0
    return weights, grads, optimizer


def pipeline_compute_s(micro_batch_s: float, micro_batches: int, stages: int, virtual: int = 1) -> tuple[float, float]:
    """(compute, bubble) seconds of one optimizer step under a 1F1B pipeline (Narayanan et al. 2021): each
    stage runs 1/stages of a micro-batch's work; the bubble is (stages - 1) stage slots, divided by the
    virtual stages per rank of the interleaved schedule (Narayanan et al. 2021, Section 2.2.2):

        compute = (m + (p - 1) / v) x micro_batch_s / p,   bubble = (p - 1) / v x micro_batch_s / p"""
    stage_s = micro_batch_s / stages
    bubble = (stages - 1) / virtual * stage_s
    return micro_batches * stage_s + bubble, bubble


def activations_in_flight_scale(pp: int, tp: int, cp: int, micro_batches: int) -> float:
    """Activation bytes on the busiest device relative to one micro-batch on one device: Megatron TP + sequence
    parallelism splits them by tp (Korthikanti et al. 2022), context parallelism by cp; 1F1B keeps
    min(pp, micro-batches) micro-batches in flight on the first stage, each holding 1/pp of the layers."""
    return min(pp, micro_batches) / (pp * tp * cp)


def fused_activation_bytes_per_token(spec, act_bytes: float = 2.0, dropout: bool = False) -> float:
    """Bytes one transformer layer saves for backward per token under fused kernels and flash attention
    (Korthikanti et al. 2022, Section 4.1, whose 34 s b h counts a GPT layer with dropout and without flash),
    for activations of ``act_bytes`` bytes:

        attention: norm output (QKV input) h + Q H d + K, V 2 n_kv d + attention output H d
        MLP:       input h + hidden f + activation f (plain) | gate f + up f + product f (gated)
        norms:     2 inputs h;  dropout masks (1 byte): 2 h when the model trains with dropout

    times ``act_bytes`` (flash attention keeps no score matrix; its logsumexp is negligible). A GPT-3 layer
    (H d = h, n_kv = H, f = 4 h) gives 32 h bytes in bf16, 34 h with dropout masks: Korthikanti's 34 s b h."""
    h = _int_attr(spec, "hidden")
    heads = _int_attr(spec, "heads")
    d = getattr(spec, "d_head", 0) or (h // heads if heads else 0)
    kv = _int_attr(spec, "kv_heads") or heads
    f = _int_attr(spec, "ffn")
    gated = bool(getattr(spec, "gated_mlp", False))
    attn = h + heads * d + 2 * kv * d + heads * d
    mlp = h + (3 * f if gated else 2 * f)
    out = (attn + mlp + 2 * h) * act_bytes
    return out + (2 * h if dropout else 0.0)


def _fused_activations(spec, micro_est, layout: Layout, tokens_mb: float, in_flight: int) -> float | None:
    """Live activation bytes on the busiest device under fused kernels (None: the spec is no dense transformer,
    use the ledger's). Full checkpointing keeps each layer's input and recomputes one layer at a time;
    selective (per op) also keeps the outputs ``ledger.selective_checkpoint`` names."""
    if not (_int_attr(spec, "hidden") and _int_attr(spec, "heads") and _int_attr(spec, "ffn")) or \
            getattr(spec, "num_experts", 0):
        return None
    layers = n_layers(spec) or 1
    w = micro_est.workload
    act_bytes = 4.0 if w.precision == "fp32" else 2.0
    dropout = bool(getattr(spec, "hidden_dropout", 0.0)) and w.dropout is not False
    per_layer = fused_activation_bytes_per_token(spec, act_bytes, dropout) * tokens_mb
    split = layout.tp * layout.cp
    layers_stage = layers / layout.pp
    if layout.grad_checkpointing == "selective":  # block inputs + the outputs the per-op policy keeps
        ctx = make_ctx(spec, w, "train")
        kept, _, _ = selective_checkpoint_of(spec, ctx)
        instances = {r.block: r.count for r in ledger(spec, ctx) if r.block}
        kept_per_layer = sum(kept[b] * n for b, n in instances.items() if b in kept) / layers
        saved = layers_stage * (tokens_mb * _int_attr(spec, "hidden") * act_bytes + kept_per_layer) * in_flight \
            + per_layer
    elif layout.grad_checkpointing:
        saved = layers_stage * tokens_mb * _int_attr(spec, "hidden") * act_bytes * in_flight + per_layer
    else:
        saved = layers_stage * per_layer * in_flight
    # the logits of one micro-batch in 16 bits; a fused (vocab-parallel) cross-entropy forms their gradient in
    # place rather than keeping fp32 copies (Megatron's vocab_parallel_cross_entropy, flash-attn's xentropy)
    vocab = _int_attr(spec, "vocab_size")
    logits = tokens_mb * vocab * act_bytes if vocab else micro_est.memory_bytes.logits_loss
    return (saved + logits) / split


def _dp_terms(zero: int, grad_bytes: float, param_bytes: float, topo: Topology, micro_batches: int,
              reduce_every_micro_batch: bool) -> list[CommTerm]:
    """The data-parallel collectives of one optimizer step over a topology (names as ``dp_sync_terms``)."""
    n = topo.size
    if n <= 1:
        return []
    f = (n - 1) / n
    if zero <= 1:
        return [CommTerm("dp_grad_allreduce", allreduce_topo_s(grad_bytes, topo),
                         dp_sync_volume_bytes(zero, grad_bytes, param_bytes, n))]
    reduces = micro_batches if (zero == 3 and reduce_every_micro_batch) else 1
    rs = CommTerm("dp_grad_reduce_scatter", reduces * reduce_scatter_topo_s(grad_bytes, topo), reduces * f * grad_bytes)
    if zero == 2:
        return [rs, CommTerm("dp_param_allgather", allgather_topo_s(param_bytes, topo), f * param_bytes)]
    return [rs, CommTerm("fsdp_param_allgather", 2.0 * micro_batches * allgather_topo_s(param_bytes, topo),
                         2.0 * micro_batches * f * param_bytes)]


def overlapped_comm_s(comm: CommBreakdown, forward_s: float, backward_s: float, micro_batches: int, layers: int,
                      engine: TrainingEngine, dp_overlap: float, tp_overlap: float) -> float:
    """Communication left on the critical path under a production engine (forward and backward times are
    of the whole step on this device):

    - FSDP / ZeRO-3: the forward parameter gathers hide behind the forward (prefetch of the next unit) and the
      backward gathers + gradient reduce-scatters behind the backward, each up to ``dp_overlap`` of the
      compute; the first unit's gather and the last unit's reduce-scatter cannot hide (1 / layers of each):
      exposed = max(AG_f - a F, AG_f / L) + max(AG_b + RS - a B, RS / L).
    - DDP / ZeRO-1/2: the gradient reduction overlaps the last micro-batch's backward (bucketed,
      --overlap-grad-reduce), the parameter all-gather the first micro-batch's forward (--overlap-param-gather).
    - tensor-parallel collectives: ``tp_overlap`` of them hidden (Megatron --tp-comm-overlap), the rest exposed;
      context-parallel, pipeline and expert-parallel traffic exposed."""
    a = dp_overlap
    L = max(layers, 1)
    ag = comm.seconds("fsdp_param_allgather")
    rs = comm.seconds("dp_grad_reduce_scatter")
    exposed = 0.0
    if ag:
        fwd_ag = bwd_ag = ag / 2
        if not engine.forward_prefetch:
            exposed += fwd_ag
        else:
            exposed += max(fwd_ag - a * forward_s, fwd_ag / L)
        exposed += max(bwd_ag + rs - a * backward_s, rs / L)
    else:
        last_bwd = backward_s / micro_batches
        first_fwd = forward_s / micro_batches
        grad = comm.seconds("dp_grad_allreduce") + rs
        exposed += max(grad - a * last_bwd, grad / L)
        pag = comm.seconds("dp_param_allgather")
        exposed += max(pag - a * first_fwd, pag / L) if engine.overlap_param_gather else pag
    exposed += comm.seconds("tp_allreduce") * (1.0 - (tp_overlap if engine.tp_overlap else 0.0))
    exposed += sum(t.seconds for t in comm.terms if t.name not in DP_TERMS and t.name != "tp_allreduce")
    return exposed


def train_step(spec, micro_est, hw, layout: Layout, grad_accum: int, dp_overlap: float = DEFAULT_DP_OVERLAP,
               tokens_per_sample: int = 1, engine: TrainingEngine | None = None,
               engine_params: dict | None = None, links: LinkCalibration | None = None) -> ParallelStep:
    """Per-device memory and step time of ``layout`` from ``micro_est``: the single-device estimate of one
    micro-batch (``layout.micro_batch`` samples) with the layout's checkpointing setting, priced under
    ``engine`` (``costmodel.engines``; None = the eager profile's flat collectives and ``dp_overlap``).
    ``links``: a measured link calibration for the NVLink-domain collectives of a production engine."""
    check_layout(spec, layout)
    if not 1 <= grad_accum <= 1 << 20:
        raise InputError("grad_accum", f"must be from 1 to {1 << 20}, got {grad_accum}")
    if not 0.0 <= dp_overlap <= 1.0:
        raise InputError("dp_overlap", f"must be from 0 to 1, got {dp_overlap}")
    eng = engine or ENGINES["eager"]
    production = eng.production
    fit = fitted(engine_params)
    m = micro_est.memory_bytes
    w = micro_est.workload
    tp, pp, cp, dp, ep, zero = layout.tp, layout.pp, layout.cp, layout.dp, layout.ep, layout.zero

    # ---- memory per device (docs/formulas.md "Per-device memory under parallelism")
    shard = model_shard_fraction(expert_fraction(spec), tp, pp, ep)
    n_shard = shard_group_size(layout)  # dp x cp: the ranks that hold this shard (ZeRO/FSDP split over them)
    weights, grads, optimizer = sharded_state_bytes(m, shard, n_shard, zero, layout.offload,
                                                    production and eng.sharded_master_is_param)
    in_flight = min(pp, grad_accum)
    act_scale = activations_in_flight_scale(pp, tp, cp, grad_accum)
    tokens_mb = layout.micro_batch * tokens_per_sample
    fused = _fused_activations(spec, micro_est, layout, tokens_mb, in_flight) if eng.fused_kernels else None
    if m.peak_phase == "optimizer step":
        # the micro-batch peaked in the optimizer step (weights + grads + states + the step's
        # temporaries, which shard like the states); the backward peak is bounded by its saved
        # activations and loss buffers on top of the gradients
        live = m.activations + m.logits_loss
        step_temp = 0.0 if eng.fused_optimizer else m.transient * shard / (n_shard if zero >= 1 else 1)
    else:
        live = max(m.peak - m.weights - m.optimizer - m.gradients, 0.0)
        step_temp = 0.0
    live_act = fused if fused is not None else live * act_scale
    gather_buf = 0.0
    if zero >= 3 and n_shard > 1:  # FSDP all-gathers one unit's full parameters (+ prefetch of the next),
        # never more than sharding saved (a model wrapped as one unit gathers all of it)
        units = n_layers(spec) or 1
        gather_buf = min(2.0 * m.weights * shard / units, m.weights * shard * (1.0 - 1.0 / n_shard))
    peak = weights + optimizer + grads + max(live_act + gather_buf, step_temp)
    device_total = peak + runtime_overhead_bytes(peak, hw)
    memory = ParallelMemory(weights=weights, gradients=grads, optimizer=optimizer,
                            activations=(fused if fused is not None else m.activations * act_scale), peak=peak,
                            device_total=device_total, capacity=m.capacity)

    # ---- compute: every micro-batch runs on 1/(tp*cp) of its work per stage
    t = micro_est.time_s
    mb_s = (t.forward_s + t.backward_s + t.recompute_s) / (tp * cp)
    compute, bubble = pipeline_compute_s(mb_s, grad_accum, pp, layout.vp)
    opt_s = t.optimizer_s * shard / (n_shard if zero >= 1 else 1)
    if layout.offload:  # states on the host: grads down, params up over PCIe, step at host speed
        opt_s = (m.gradients + m.weights) * shard / PCIE_BYTES_PER_S + t.optimizer_s * shard * 10.0

    # ---- communication (costmodel.collectives)
    h = _int_attr(spec, "hidden")
    cb = 2.0 if w.precision != "fp32" else 4.0
    layers = n_layers(spec) or 1
    per_stage = layers / pp
    if not production:
        terms = [tp_term(tokens_mb / cp, h, cb, tp, group_link(hw, 1, tp), per_stage, grad_accum),
                 cp_term(tokens_mb, _int_attr(spec, "n_kv_heads") * _int_attr(spec, "d_head"), cb, tp, cp,
                         group_link(hw, tp, cp), per_stage, grad_accum),
                 pp_term(tokens_mb / cp * h * cb / tp, pp, group_link(hw, tp * cp, pp), grad_accum)]
        # this device's model shard, before ZeRO partitioning
        terms += dp_sync_terms(zero, m.gradients * shard, m.weights * shard, n_shard,
                               group_link(hw, tp * cp * pp, dp) if dp > 1 else group_link(hw, tp, cp), grad_accum)
        if ep > 1:
            terms.append(ep_term(tokens_mb, getattr(spec, "top_k", 1), h, cb, ep, group_link(hw, tp * cp * pp, ep),
                                 per_stage, grad_accum, split=tp * cp))
        comm = CommBreakdown(tuple(terms))
        exposed = exposed_comm_s(comm, (t.backward_s / (tp * cp)) * grad_accum, dp_overlap)
    else:
        net = fit["network_efficiency"]
        tp_topo = group_topology(hw, 1, tp, net, links)
        act = tokens_mb / cp * h * cb
        terms = []
        if tp > 1:  # 4 all-reduces (or all-gather + reduce-scatter pairs) of the layer's activations
            terms.append(CommTerm("tp_allreduce", 4.0 * per_stage * allreduce_topo_s(act, tp_topo) * grad_accum,
                                  tp_volume_bytes(tokens_mb / cp, h, cb, tp, per_stage) * grad_accum))
        terms.append(cp_term(tokens_mb, _int_attr(spec, "n_kv_heads") * _int_attr(spec, "d_head"), cb, tp, cp,
                             group_link(hw, tp, cp), per_stage, grad_accum))
        terms.append(pp_term(act / tp, pp, group_link(hw, tp * cp, pp), grad_accum * layout.vp))
        dp_topo = shard_group_topology(hw, tp, cp, pp, dp, net, links)
        terms += _dp_terms(zero, m.gradients * shard, m.weights * shard, dp_topo, grad_accum,
                           eng.fsdp_reduce_every_micro_batch)
        if ep > 1:
            ep_topo = group_topology(hw, tp * cp * pp, ep, net, links)
            k = getattr(spec, "top_k", 1)
            terms.append(CommTerm("ep_alltoall", 4.0 * per_stage * alltoall_topo_s(tokens_mb * k * h * cb / (tp * cp),
                                                                                   ep_topo) * grad_accum,
                                  ep_volume_bytes(tokens_mb / (tp * cp), k, h, cb, ep, per_stage) * grad_accum))
        comm = CommBreakdown(tuple(terms))
        fwd_total = t.forward_s / (tp * cp) * grad_accum
        bwd_total = (t.backward_s + t.recompute_s) / (tp * cp) * grad_accum
        exposed = overlapped_comm_s(comm, fwd_total, bwd_total, grad_accum, layers, eng, fit["dp_overlap"],
                                    fit["tp_overlap"])
    step = compute + opt_s + exposed

    f = micro_est.flops
    n_dev = layout.num_devices
    mb_total = grad_accum * dp
    model_flops = (f.forward + f.backward) * mb_total
    hw_flops = (f.forward + f.backward + f.recompute) * mb_total
    peak_rate = micro_est.perf.peak_flops_per_s or 1.0
    if production:
        overlap = (f"FSDP/ZeRO gathers and reductions hidden behind forward and backward up to "
                   f"{fit['dp_overlap']:.0%} of the compute; tensor-parallel {fit['tp_overlap'] if eng.tp_overlap else 0:.0%}")
        fabric = (f"at the measured link calibration ({links.bus_bandwidth_bytes_per_s / 1e9:.1f} GB/s bus bandwidth, "
                  f"{links.latency_s * 1e6:.1f} us per step; {links.source})" if links is not None else
                  f"at {NVLINK_BUS_EFFICIENCY:.0%} bus efficiency")
        collectives = (f"hierarchical (NVLink inside a {hw.nvlink_domain_gpus}-GPU domain {fabric}, every GPU's NIC "
                       f"across at {fit['network_efficiency']:.0%}); ring or tree, whichever is faster")
    else:
        overlap = f"{dp_overlap:.0%} of data-parallel collectives hidden behind backward"
        collectives = ("ring algorithms, alpha-beta model: intra-node "
                       f"{hw.intra_node_bandwidth_bytes_per_s / 1e9:.0f} GB/s, inter-node "
                       f"{hw.inter_node_bandwidth_bytes_per_s / 1e9:.0f} GB/s per device")
    return ParallelStep(
        layout=layout, global_batch=layout.micro_batch * mb_total, grad_accum=grad_accum,
        memory_bytes=memory, fits=device_total <= m.capacity, compute_s=compute, bubble_s=bubble, optimizer_s=opt_s,
        comm_s=comm, exposed_comm_s=exposed, step_s=step, tokens_per_step=tokens_mb * mb_total,
        model_flops_per_step=model_flops, hardware_flops_per_step=hw_flops,
        mfu=model_flops / (step * n_dev * peak_rate), hfu=hw_flops / (step * n_dev * peak_rate),
        assumptions={
            "placement": "tensor parallel innermost, then context, pipeline, data parallel outermost; a group "
                         "stays on NVLink while it fits in the NVLink domain",
            "dp_overlap": overlap,
            "tp_overlap": "tensor-parallel collectives not overlapped (Megatron default)" if not production else
                          ("--tp-comm-overlap" if eng.tp_overlap else "not overlapped"),
            "pipeline": "1F1B schedule: (micro-batches + (stages - 1) / virtual stages) stage slots",
            "collectives": collectives,
            "activations": "fused kernels and flash attention (Korthikanti et al. 2022)" if fused is not None else
                           "the single-device ledger's saved tensors",
            "offload": f"optimizer on host over PCIe {PCIE_BYTES_PER_S / 1e9:.0f} GB/s" if layout.offload else "none",
        },
    )


@functools.lru_cache(maxsize=256)
def expert_fraction(spec) -> float:
    """Share of parameters in MoE expert weights (split by expert parallelism); 0 for dense models."""
    if not getattr(spec, "num_experts", 0):
        return 0.0
    rows = ledger(spec, make_ctx(spec, Workload(batch=1, seq=16), "train"))
    total = sum(r.params * r.count for r in rows)
    experts = sum(r.params * r.count for r in rows if r.kind == "moe_experts")
    return experts / total if total else 0.0
