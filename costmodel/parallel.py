"""Training across many devices: layouts, per-device memory, communication, step time.

A ``Layout`` places ``dp x tp x pp x cp`` devices (tensor parallel innermost, then context,
pipeline, data parallel outermost, as Megatron-LM orders its groups), with ZeRO/FSDP sharding,
expert parallelism for MoE (inside the data-parallel group) and optional optimizer offload to
the host. ``train_step`` turns a single-device estimate of one micro-batch into the per-device
memory and the step time of the whole layout. Every formula and its source is in
docs/formulas.md ("Parallelism" and "Collectives").
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from .errors import InputError
from .estimator import ALLOCATOR_SLACK, CUDA_RUNTIME_BYTES

# Per-hop latency of a collective step (NCCL over NVLink is a few microseconds; over InfiniBand
# about 5-10 us): the alpha of the alpha-beta model (Thakur, Rabenseifner & Gropp 2005).
INTRA_NODE_LATENCY_S = 5e-6
INTER_NODE_LATENCY_S = 10e-6
# Host link for optimizer offload: PCIe 4.0 x16 moves about 25 GB/s each way in practice
# (32 GB/s raw); ZeRO-Offload (Ren et al. 2021) reports similar effective rates.
PCIE_BYTES_PER_S = 25e9
# Fraction of data-parallel gradient communication hidden behind the backward pass (PyTorch DDP
# buckets and FSDP prefetch overlap collectives with compute; Li et al. 2020, PyTorch DDP paper).
DEFAULT_DP_OVERLAP = 0.5


# ---- collectives (alpha-beta model, ring algorithms) -------------------------------------------
def allreduce_time_s(nbytes: float, n: int, bandwidth: float, latency_s: float = INTRA_NODE_LATENCY_S,
                     algorithm: str = "ring") -> float:
    """Ring all-reduce: each device sends and receives 2(n-1)/n of the buffer in 2(n-1) steps
    (Patarasuk & Yuan 2009; NCCL docs). Tree (NCCL double binary tree): 2 x buffer over the
    bandwidth, 2 log2(n) latency steps."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    if algorithm == "tree":
        return 2.0 * nbytes / bandwidth + 2.0 * math.ceil(math.log2(n)) * latency_s
    if algorithm != "ring":
        raise InputError("algorithm", f"must be ring or tree, got {algorithm!r}")
    return 2.0 * (n - 1) / n * nbytes / bandwidth + 2.0 * (n - 1) * latency_s


def allgather_time_s(nbytes: float, n: int, bandwidth: float, latency_s: float = INTRA_NODE_LATENCY_S) -> float:
    """Ring all-gather of a ``nbytes`` result: each device receives (n-1)/n of it in n-1 steps."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return (n - 1) / n * nbytes / bandwidth + (n - 1) * latency_s


def reduce_scatter_time_s(nbytes: float, n: int, bandwidth: float, latency_s: float = INTRA_NODE_LATENCY_S) -> float:
    """Ring reduce-scatter of a ``nbytes`` input: the mirror of all-gather, same cost."""
    return allgather_time_s(nbytes, n, bandwidth, latency_s)


def alltoall_time_s(nbytes: float, n: int, bandwidth: float, latency_s: float = INTRA_NODE_LATENCY_S) -> float:
    """All-to-all of ``nbytes`` per device: it keeps 1/n and sends (n-1)/n to the others."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return (n - 1) / n * nbytes / bandwidth + (n - 1) * latency_s


# ---- layouts -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """How a training job is spread over devices.

    ``dp`` data parallel, ``tp`` tensor parallel (Megatron, with sequence parallelism),
    ``pp`` pipeline stages (1F1B schedule), ``cp`` context/sequence parallel (ring attention),
    ``ep`` expert parallel (MoE; experts split over ``ep`` devices of the data-parallel group),
    ``zero`` 0-3 (ZeRO stage; 3 = FSDP full sharding), ``micro_batch`` samples per device per
    micro-batch, ``offload`` optimizer states and step on the host (ZeRO-Offload).
    """

    dp: int = 1
    tp: int = 1
    pp: int = 1
    cp: int = 1
    ep: int = 1
    zero: int = 0
    micro_batch: int = 1
    grad_checkpointing: bool = False
    offload: bool = False

    def __post_init__(self):
        for name in ("dp", "tp", "pp", "cp", "ep", "micro_batch"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 1 << 20:
                raise InputError(f"layout.{name}", f"must be a whole number from 1 to {1 << 20}, got {v!r}")
        if self.zero not in (0, 1, 2, 3):
            raise InputError("layout.zero", f"must be 0, 1, 2 or 3 (ZeRO stage; 3 = FSDP), got {self.zero!r}")
        if self.dp % self.ep:
            raise InputError("layout.ep", f"must divide dp ({self.dp}): experts are split inside the data-parallel group")

    @property
    def num_devices(self) -> int:
        return self.dp * self.tp * self.pp * self.cp

    def to_dict(self) -> dict:
        return {**asdict(self), "num_devices": self.num_devices}


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


def n_layers(spec) -> int:
    """Repeated blocks of a transformer stack (0 for families without one)."""
    return _int_attr(spec, "layers")


def _group_bandwidth(hw, inner: int, size: int) -> tuple[float, float]:
    """(bandwidth, latency) of a communication group of ``size`` devices whose members are
    ``inner`` devices apart: it stays in one node if inner x size <= devices per node."""
    if inner * size <= max(hw.gpus_per_node, 1):
        return hw.intra_node_bandwidth_bytes_per_s, INTRA_NODE_LATENCY_S
    return hw.inter_node_bandwidth_bytes_per_s, INTER_NODE_LATENCY_S


@dataclass(frozen=True)
class ParallelStep:
    """One optimizer step of a layout, per device. Bytes and seconds."""

    layout: dict
    global_batch: int
    grad_accum: int
    memory_bytes: dict  # weights, gradients, optimizer, activations, peak, device_total, capacity
    fits: bool
    compute_s: float  # all micro-batches incl. the pipeline bubble
    bubble_s: float
    optimizer_s: float
    comm_s: dict  # per collective, before overlap
    exposed_comm_s: float
    step_s: float
    tokens_per_step: int
    model_flops_per_step: float  # forward + backward, whole job (no recomputation)
    hardware_flops_per_step: float  # with recomputation
    mfu: float
    hfu: float
    assumptions: dict

    def to_dict(self) -> dict:
        return asdict(self)


def train_step(spec, micro_est, hw, layout: Layout, grad_accum: int, dp_overlap: float = DEFAULT_DP_OVERLAP,
               tokens_per_sample: int = 1) -> ParallelStep:
    """Per-device memory and step time of ``layout`` from ``micro_est``: the single-device estimate
    of one micro-batch (``layout.micro_batch`` samples) with the layout's checkpointing setting."""
    check_layout(spec, layout)
    if not 1 <= grad_accum <= 1 << 20:
        raise InputError("grad_accum", f"must be from 1 to {1 << 20}, got {grad_accum}")
    if not 0.0 <= dp_overlap <= 1.0:
        raise InputError("dp_overlap", f"must be from 0 to 1, got {dp_overlap}")
    m = micro_est.memory_bytes
    w = micro_est.workload
    tp, pp, cp, dp, ep, zero = layout.tp, layout.pp, layout.cp, layout.dp, layout.ep, layout.zero
    model_shards = tp * pp

    # ---- memory per device (docs/formulas.md "Per-device memory under parallelism")
    expert_frac = _expert_fraction(spec)
    shard = (1.0 - expert_frac) / model_shards + expert_frac / (model_shards * ep)
    weights = m.weights * shard
    grads = m.gradients * shard
    optimizer = m.optimizer * shard
    if zero >= 1:
        optimizer /= dp
    if zero >= 2:
        grads /= dp
    if zero >= 3:
        weights /= dp
    if layout.offload:
        optimizer = 0.0
    # activations: Megatron TP + sequence parallelism splits them by tp (Korthikanti et al. 2022);
    # context parallelism by cp; 1F1B keeps min(pp, micro-batches) in flight on the first stage,
    # each holding 1/pp of the layers (Narayanan et al. 2021)
    in_flight = min(pp, grad_accum)
    act_scale = in_flight / (pp * tp * cp)
    if m.peak_phase == "optimizer step":
        # the micro-batch peaked in the optimizer step (weights + grads + states + the step's
        # temporaries, which shard like the states); the backward peak is bounded by its saved
        # activations and loss buffers on top of the gradients
        live = m.activations + m.logits_loss
        step_temp = m.transient * shard / (dp if zero >= 1 else 1)
    else:
        live = max(m.peak - m.weights - m.optimizer - m.gradients, 0.0)
        step_temp = 0.0
    gather_buf = 0.0
    if zero >= 3 and dp > 1:  # FSDP all-gathers one unit's full parameters (+ prefetch of the next),
        # never more than sharding saved (a model wrapped as one unit gathers all of it)
        units = n_layers(spec) or 1
        gather_buf = min(2.0 * m.weights * shard / units, m.weights * shard * (1.0 - 1.0 / dp))
    peak = weights + optimizer + grads + max(live * act_scale + gather_buf, step_temp)
    runtime = (CUDA_RUNTIME_BYTES if getattr(hw, "kind", "gpu") != "cpu" else 0.0) + ALLOCATOR_SLACK * peak
    device_total = peak + runtime
    memory = dict(weights=weights, gradients=grads, optimizer=optimizer, activations=m.activations * act_scale,
                  peak=peak, device_total=device_total, capacity=m.capacity)

    # ---- compute: every micro-batch runs on 1/(tp*cp) of its work per stage
    t = micro_est.time_s
    mb_s = (t["forward"] + t["backward"] + t.get("recompute", 0.0)) / (tp * cp)
    stage_s = mb_s / pp
    compute = (grad_accum + pp - 1) * stage_s  # 1F1B: (m + p - 1) stage slots
    bubble = (pp - 1) * stage_s
    opt_s = t.get("optimizer", 0.0) * shard / (dp if zero >= 1 else 1)
    if layout.offload:  # states on the host: grads down, params up over PCIe, step at host speed
        opt_s = (m.gradients + m.weights) * shard / PCIE_BYTES_PER_S + t.get("optimizer", 0.0) * shard * 10.0

    # ---- communication
    h = _int_attr(spec, "hidden")
    cb = 2.0 if w["precision"] != "fp32" else 4.0
    tokens_mb = layout.micro_batch * tokens_per_sample
    layers = n_layers(spec) or 1
    comm = {}
    bw_tp, lat_tp = _group_bandwidth(hw, 1, tp)
    # Megatron: 2 all-reduces (or all-gather + reduce-scatter with SP, same volume) of the layer's
    # activations in forward and 2 in backward per layer
    act_bytes = tokens_mb / cp * h * cb
    comm["tp_allreduce"] = 4.0 * (layers / pp) * allreduce_time_s(act_bytes, tp, bw_tp, lat_tp) * grad_accum
    bw_cp, lat_cp = _group_bandwidth(hw, tp, cp)
    kv_dim = _int_attr(spec, "n_kv_heads") * _int_attr(spec, "d_head")
    comm["cp_kv_allgather"] = 3.0 * (layers / pp) * allgather_time_s(2 * tokens_mb * kv_dim * cb / tp, cp,
                                                                     bw_cp, lat_cp) * grad_accum
    bw_pp, lat_pp = _group_bandwidth(hw, tp * cp, pp)
    comm["pp_p2p"] = (2.0 * (grad_accum + pp - 2) * (act_bytes / tp / bw_pp + lat_pp)) if pp > 1 else 0.0
    bw_dp, lat_dp = _group_bandwidth(hw, tp * cp * pp, dp)
    grad_bytes_full = m.gradients * shard  # this device's model shard, before ZeRO partitioning
    if zero <= 1:
        comm["dp_grad_allreduce"] = allreduce_time_s(grad_bytes_full, dp, bw_dp, lat_dp)
    else:
        comm["dp_grad_reduce_scatter"] = reduce_scatter_time_s(grad_bytes_full, dp, bw_dp, lat_dp)
        comm["dp_param_allgather"] = allgather_time_s(m.weights * shard, dp, bw_dp, lat_dp)
    if zero >= 3:  # parameters gathered for forward and again for backward (ZeRO paper: 1.5x DP volume)
        comm["fsdp_param_allgather"] = 2.0 * allgather_time_s(m.weights * shard, dp, bw_dp, lat_dp) * grad_accum
    if ep > 1:
        k = getattr(spec, "top_k", 1)
        bw_ep, lat_ep = _group_bandwidth(hw, tp * cp * pp, ep)
        comm["ep_alltoall"] = 4.0 * (layers / pp) * alltoall_time_s(tokens_mb * k * h * cb / (tp * cp), ep,
                                                                    bw_ep, lat_ep) * grad_accum
    dp_keys = ("dp_grad_allreduce", "dp_grad_reduce_scatter", "dp_param_allgather", "fsdp_param_allgather")
    dp_comm = sum(comm.get(k, 0.0) for k in dp_keys)
    backward_total = (t["backward"] / (tp * cp)) * grad_accum
    exposed_dp = max(dp_comm - dp_overlap * backward_total, dp_comm * (1.0 - dp_overlap))
    exposed = exposed_dp + sum(v for k, v in comm.items() if k not in dp_keys)
    step = compute + opt_s + exposed

    f = micro_est.flops
    n_dev = layout.num_devices
    mb_total = grad_accum * dp
    model_flops = (f.forward + f.backward) * mb_total
    hw_flops = (f.forward + f.backward + f.recompute) * mb_total
    peak_rate = micro_est.perf.get("peak_flops_per_s", 0.0) or 1.0
    return ParallelStep(
        layout=layout.to_dict(), global_batch=layout.micro_batch * mb_total, grad_accum=grad_accum,
        memory_bytes=memory, fits=device_total <= m.capacity, compute_s=compute, bubble_s=bubble, optimizer_s=opt_s,
        comm_s=comm, exposed_comm_s=exposed, step_s=step, tokens_per_step=tokens_mb * mb_total,
        model_flops_per_step=model_flops, hardware_flops_per_step=hw_flops,
        mfu=model_flops / (step * n_dev * peak_rate), hfu=hw_flops / (step * n_dev * peak_rate),
        assumptions={
            "placement": "tensor parallel innermost, then context, pipeline, data parallel outermost; a group "
                         "stays on NVLink while it fits in one node",
            "dp_overlap": f"{dp_overlap:.0%} of data-parallel collectives hidden behind backward",
            "tp_overlap": "tensor-parallel collectives not overlapped (Megatron default)",
            "pipeline": "1F1B schedule: (micro-batches + stages - 1) stage slots",
            "collectives": "ring algorithms, alpha-beta model: intra-node "
                           f"{hw.intra_node_bandwidth_bytes_per_s / 1e9:.0f} GB/s, inter-node "
                           f"{hw.inter_node_bandwidth_bytes_per_s / 1e9:.0f} GB/s per device",
            "offload": f"optimizer on host over PCIe {PCIE_BYTES_PER_S / 1e9:.0f} GB/s" if layout.offload else "none",
        },
    )


def _expert_fraction(spec) -> float:
    """Share of parameters in MoE expert weights (split by expert parallelism)."""
    if not getattr(spec, "num_experts", 0):
        return 0.0
    from .estimator import ledger, make_ctx
    from .workload import Workload

    rows = ledger(spec, make_ctx(spec, Workload(batch=1, seq=16), "train"))
    total = sum(r.params * r.count for r in rows)
    experts = sum(r.params * r.count for r in rows if r.kind == "moe_experts")
    return experts / total if total else 0.0
