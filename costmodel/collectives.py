"""Collective communication: the alpha-beta primitives and the named volumes each kind of parallelism moves.

Alpha-beta model (Hockney 1994; Thakur, Rabenseifner & Gropp 2005): a collective of ``steps`` dependent
messages moving ``volume`` bytes per device over a link of bandwidth B (bytes/s, one direction) and per-step
latency alpha (s) takes

    t = volume / B + steps x alpha

Ring algorithms (Patarasuk & Yuan 2009; NCCL's ring), for a buffer of ``S`` bytes on each of ``n`` devices:

    all-reduce      volume 2 (n-1)/n S   steps 2 (n-1)
    all-gather      volume   (n-1)/n S   steps   (n-1)     S = the gathered (full) buffer
    reduce-scatter  volume   (n-1)/n S   steps   (n-1)     S = the full input buffer
    all-to-all      volume   (n-1)/n S   steps   (n-1)     S = what one device holds before the exchange
    point-to-point  volume   S           steps   1

Named volumes (``*_volume_bytes``): what one device sends per optimizer step for each parallelism, with the
source of each. docs/formulas.md ("Collectives") states them all; tests/test_collectives.py checks each by hand.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .errors import InputError

# Per-hop latency of a collective step (NCCL over NVLink is a few microseconds; over InfiniBand about
# 5-10 us): the alpha of the alpha-beta model.
INTRA_NODE_LATENCY_S = 5e-6
INTER_NODE_LATENCY_S = 10e-6


@dataclass(frozen=True)
class Link:
    """The link a communication group uses: bandwidth per device per direction (bytes/s) and per-step
    latency (s)."""

    bandwidth_bytes_per_s: float
    latency_s: float = INTRA_NODE_LATENCY_S


@dataclass(frozen=True)
class LinkCalibration:
    """A measured scale-up link (``python -m costmodel probe --collectives``): the ring model's bus bandwidth
    and per-step latency fitted to all-reduce times of ``world_size`` ranks (``bus_bandwidth_bytes_per_s``
    replaces fabric x NVLINK_BUS_EFFICIENCY inside an NVLink domain in plans given it), and the largest
    buffers' bus bandwidth as measured (nccl-tests' number, for comparison)."""

    hardware: str
    world_size: int
    backend: str
    bus_bandwidth_bytes_per_s: float
    latency_s: float
    largest_busbw_bytes_per_s: float = 0.0
    source: str = ""

    def __post_init__(self):
        if not (self.bus_bandwidth_bytes_per_s > 0 and math.isfinite(self.bus_bandwidth_bytes_per_s)):
            raise InputError("link_calibration.bus_bandwidth_bytes_per_s",
                             f"must be a finite number above 0, got {self.bus_bandwidth_bytes_per_s!r}")
        if not (self.latency_s >= 0 and math.isfinite(self.latency_s)):
            raise InputError("link_calibration.latency_s", f"must be a finite number >= 0, got {self.latency_s!r}")

    @property
    def link(self) -> Link:
        return Link(self.bus_bandwidth_bytes_per_s, self.latency_s)

    def to_dict(self) -> dict:
        return {"hardware": self.hardware, "world_size": self.world_size, "backend": self.backend,
                "bus_bandwidth_bytes_per_s": self.bus_bandwidth_bytes_per_s, "latency_s": self.latency_s,
                "largest_busbw_bytes_per_s": self.largest_busbw_bytes_per_s, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "LinkCalibration":
        if not isinstance(data, dict):
            raise InputError("link_calibration", "must be an object with bus_bandwidth_bytes_per_s and latency_s")
        try:
            return cls(hardware=str(data.get("hardware", "")), world_size=int(data.get("world_size", 0)),
                       backend=str(data.get("backend", "")),
                       bus_bandwidth_bytes_per_s=float(data["bus_bandwidth_bytes_per_s"]),
                       latency_s=float(data["latency_s"]),
                       largest_busbw_bytes_per_s=float(data.get("largest_busbw_bytes_per_s", 0.0)),
                       source=str(data.get("source", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError("link_calibration", f"is not a link calibration record ({exc})") from None


def bus_bandwidth_bytes_per_s(op: str, nbytes: float, n: int, seconds: float) -> float:
    """nccl-tests' bus bandwidth (NVIDIA nccl-tests, doc/PERFORMANCE.md) of a collective on ``n`` ranks that took
    ``seconds`` on a buffer of ``nbytes`` (the full buffer: reduced, gathered, or scattered from):

        algbw = nbytes / seconds
        busbw = algbw x 2 (n-1)/n   all-reduce
        busbw = algbw x   (n-1)/n   all-gather, reduce-scatter

    i.e. the bytes each rank's link carries per second under the ring algorithm -- comparable with a link's
    rate and across n."""
    factors = {"all_reduce": 2.0 * (n - 1) / n, "all_gather": (n - 1) / n, "reduce_scatter": (n - 1) / n}
    if op not in factors:
        raise InputError("op", f"must be one of {', '.join(factors)}, got {op!r}")
    if n < 2 or seconds <= 0:
        raise InputError("n", f"needs at least 2 ranks and a positive time, got n={n}, t={seconds}")
    return nbytes / seconds * factors[op]


# ---- primitives -----------------------------------------------------------------------------------------------

def ring_allreduce_volume_bytes(nbytes: float, n: int) -> float:
    """Bytes each device sends in a ring all-reduce of an ``nbytes`` buffer: 2 (n-1)/n x nbytes."""
    return 2.0 * (n - 1) / n * nbytes if n > 1 else 0.0


def allreduce_s(nbytes: float, n: int, link: Link, algorithm: str = "ring") -> float:
    """All-reduce of ``nbytes`` on each of ``n`` devices. Ring: 2(n-1)/n x nbytes / B + 2(n-1) alpha.
    Tree (NCCL double binary tree): 2 x nbytes / B + 2 ceil(log2 n) alpha."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    if algorithm == "tree":
        return 2.0 * nbytes / link.bandwidth_bytes_per_s + 2.0 * math.ceil(math.log2(n)) * link.latency_s
    if algorithm != "ring":
        raise InputError("algorithm", f"must be ring or tree, got {algorithm!r}")
    return ring_allreduce_volume_bytes(nbytes, n) / link.bandwidth_bytes_per_s + 2.0 * (n - 1) * link.latency_s


def allgather_s(nbytes: float, n: int, link: Link) -> float:
    """Ring all-gather of a ``nbytes`` result (each device holds nbytes / n before): (n-1)/n x nbytes / B +
    (n-1) alpha."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return (n - 1) / n * nbytes / link.bandwidth_bytes_per_s + (n - 1) * link.latency_s


def reduce_scatter_s(nbytes: float, n: int, link: Link) -> float:
    """Ring reduce-scatter of a ``nbytes`` input: the mirror of all-gather, the same cost."""
    return allgather_s(nbytes, n, link)


def alltoall_s(nbytes: float, n: int, link: Link) -> float:
    """All-to-all of ``nbytes`` per device: it keeps 1/n and sends (n-1)/n to the others, in n-1 steps."""
    if n <= 1 or nbytes <= 0:
        return 0.0
    return (n - 1) / n * nbytes / link.bandwidth_bytes_per_s + (n - 1) * link.latency_s


def p2p_s(nbytes: float, link: Link) -> float:
    """One point-to-point send: nbytes / B + alpha."""
    return nbytes / link.bandwidth_bytes_per_s + link.latency_s


# ---- named volumes -------------------------------------------------------------------------------------------

def dp_sync_volume_bytes(zero_stage: int, grad_bytes: float, param_bytes: float, n: int,
                         micro_batches: int = 1) -> float:
    """Bytes one data-parallel device sends per optimizer step to keep ``n`` replicas in sync
    (Rajbhandari et al. 2020, "ZeRO", Section 7):

    - stage 0/1 (DDP): all-reduce of the gradients: 2 (n-1)/n G;
    - stage 2: reduce-scatter of the gradients + all-gather of the updated parameters: (n-1)/n (G + P),
      the all-reduce volume when G = P;
    - stage 3 (FSDP full shard): parameters all-gathered for the forward and again for the backward of every
      micro-batch, gradients reduce-scattered once: (n-1)/n (2 m P + G), i.e. 1.5x the all-reduce volume for
      one micro-batch (m = 1) and G = P.
    """
    if n <= 1:
        return 0.0
    f = (n - 1) / n
    if zero_stage <= 1:
        return 2.0 * f * grad_bytes
    if zero_stage == 2:
        return f * (grad_bytes + param_bytes)
    return f * (2.0 * micro_batches * param_bytes + grad_bytes)


def tp_volume_bytes(tokens: float, hidden: int, act_bytes: float, tp: int, layers_per_stage: float) -> float:
    """Bytes one tensor-parallel device sends per micro-batch: Megatron-LM runs 2 all-reduces of the layer's
    activations (tokens x hidden) in the forward and 2 in the backward per transformer layer (Shoeybi et al.
    2019; with sequence parallelism they become all-gather + reduce-scatter pairs of the same volume,
    Korthikanti et al. 2022): 4 x layers x 2 (tp-1)/tp x tokens x hidden x bytes."""
    return 4.0 * layers_per_stage * ring_allreduce_volume_bytes(tokens * hidden * act_bytes, tp)


def pp_volume_bytes(tokens: float, hidden: int, act_bytes: float) -> float:
    """Bytes a pipeline stage sends per micro-batch: its output activations forward and their gradient
    backward (Narayanan et al. 2021): 2 x tokens x hidden x bytes."""
    return 2.0 * tokens * hidden * act_bytes


def ep_volume_bytes(tokens: float, top_k: int, hidden: int, act_bytes: float, ep: int, moe_layers: float) -> float:
    """Bytes one expert-parallel device sends per micro-batch: each MoE layer dispatches every token's hidden
    state to its top-k experts and combines the results, in the forward and again in the backward: 4
    all-to-alls of tokens x k x hidden x bytes per layer (Lepikhin et al. 2020, GShard): 4 x layers x
    (ep-1)/ep x tokens x k x hidden x bytes."""
    if ep <= 1:
        return 0.0
    return 4.0 * moe_layers * (ep - 1) / ep * tokens * top_k * hidden * act_bytes


def cp_volume_bytes(tokens: float, kv_dim: int, act_bytes: float, cp: int, layers_per_stage: float) -> float:
    """Bytes one context-parallel device sends per micro-batch: ring attention all-gathers each layer's K and V
    (2 x tokens x kv_dim) once in the forward and twice in the backward (recompute + gradient)
    (Liu et al. 2023; Megatron-LM context parallelism): 3 x layers x (cp-1)/cp x 2 x tokens x kv_dim x bytes."""
    if cp <= 1:
        return 0.0
    return 3.0 * layers_per_stage * (cp - 1) / cp * 2.0 * tokens * kv_dim * act_bytes


@dataclass(frozen=True)
class CommTerm:
    """One collective of a training step: ``name``, seconds per optimizer step before any overlap, and bytes
    each device sends per step."""

    name: str
    seconds: float
    volume_bytes: float


@dataclass(frozen=True)
class CommBreakdown:
    """Every collective of one optimizer step, in order. ``to_dict()`` maps name -> seconds."""

    terms: tuple[CommTerm, ...]

    def seconds(self, name: str) -> float:
        return sum(t.seconds for t in self.terms if t.name == name)

    @property
    def total_s(self) -> float:
        return sum(t.seconds for t in self.terms)

    def to_dict(self) -> dict:
        return {t.name: t.seconds for t in self.terms}


# ---- the collectives of one training step --------------------------------------------------------------------

def dp_sync_terms(zero_stage: int, grad_bytes: float, param_bytes: float, n: int, link: Link,
                  micro_batches: int = 1) -> tuple[CommTerm, ...]:
    """The data-parallel collectives of one optimizer step (``dp_sync_volume_bytes`` says what each moves):
    stage 0/1 one gradient all-reduce; stage 2 a gradient reduce-scatter + a parameter all-gather after the
    step; stage 3 a gradient reduce-scatter + two parameter all-gathers (forward, backward) per micro-batch."""
    if zero_stage <= 1:
        return (CommTerm("dp_grad_allreduce", allreduce_s(grad_bytes, n, link),
                         dp_sync_volume_bytes(zero_stage, grad_bytes, param_bytes, n)),)
    f = (n - 1) / n if n > 1 else 0.0
    rs = CommTerm("dp_grad_reduce_scatter", reduce_scatter_s(grad_bytes, n, link), f * grad_bytes)
    if zero_stage == 2:
        return rs, CommTerm("dp_param_allgather", allgather_s(param_bytes, n, link), f * param_bytes)
    return rs, CommTerm("fsdp_param_allgather", 2.0 * allgather_s(param_bytes, n, link) * micro_batches,
                        2.0 * micro_batches * f * param_bytes)


def tp_term(tokens: float, hidden: int, act_bytes: float, tp: int, link: Link, layers_per_stage: float,
            micro_batches: int) -> CommTerm:
    """Megatron tensor parallelism: 4 all-reduces of tokens x hidden activations per layer per micro-batch."""
    seconds = 4.0 * layers_per_stage * allreduce_s(tokens * hidden * act_bytes, tp, link) * micro_batches
    return CommTerm("tp_allreduce", seconds,
                    tp_volume_bytes(tokens, hidden, act_bytes, tp, layers_per_stage) * micro_batches)


def cp_term(tokens: float, kv_dim: int, act_bytes: float, tp: int, cp: int, link: Link, layers_per_stage: float,
            micro_batches: int) -> CommTerm:
    """Context parallelism (ring attention): 3 all-gathers of each layer's K and V (split by tp) per micro-batch."""
    kv_bytes = 2 * tokens * kv_dim * act_bytes / tp
    seconds = 3.0 * layers_per_stage * allgather_s(kv_bytes, cp, link) * micro_batches
    return CommTerm("cp_kv_allgather", seconds,
                    cp_volume_bytes(tokens, kv_dim, act_bytes / tp, cp, layers_per_stage) * micro_batches)


def pp_term(act_bytes_per_mb: float, pp: int, link: Link, micro_batches: int) -> CommTerm:
    """Pipeline point-to-point traffic of a 1F1B schedule: 2 (m + p - 2) sends (activations forward, their
    gradients backward) of one micro-batch's stage output on the critical path."""
    if pp <= 1:
        return CommTerm("pp_p2p", 0.0, 0.0)
    sends = 2.0 * (micro_batches + pp - 2)
    return CommTerm("pp_p2p", sends * (act_bytes_per_mb / link.bandwidth_bytes_per_s + link.latency_s),
                    sends * act_bytes_per_mb)


def ep_term(tokens: float, top_k: int, hidden: int, act_bytes: float, ep: int, link: Link, moe_layers: float,
            micro_batches: int, split: int = 1) -> CommTerm:
    """Expert parallelism: 4 all-to-alls (dispatch and combine, forward and backward) of tokens x k x hidden
    activations per MoE layer per micro-batch; ``split``: the tensor x context parallel ways the tokens are
    divided over."""
    seconds = 4.0 * moe_layers * alltoall_s(tokens * top_k * hidden * act_bytes / split, ep, link) * micro_batches
    return CommTerm("ep_alltoall", seconds,
                    ep_volume_bytes(tokens / split, top_k, hidden, act_bytes, ep, moe_layers) * micro_batches)


DP_TERMS = frozenset({"dp_grad_allreduce", "dp_grad_reduce_scatter", "dp_param_allgather", "fsdp_param_allgather"})


def exposed_comm_s(comm: CommBreakdown, backward_s: float, dp_overlap: float) -> float:
    """Communication left on the critical path: data-parallel collectives overlap the backward pass (PyTorch
    DDP gradient buckets, FSDP prefetch; Li et al. 2020) up to a fraction ``dp_overlap`` of themselves and of
    the backward time, whichever hides less; tensor-, context-, pipeline- and expert-parallel collectives sit
    between dependent kernels and are not overlapped (Megatron's default):

        exposed = max(dp - overlap x backward, dp x (1 - overlap)) + other collectives"""
    dp = sum(t.seconds for t in comm.terms if t.name in DP_TERMS)
    exposed_dp = max(dp - dp_overlap * backward_s, dp * (1.0 - dp_overlap))
    return exposed_dp + sum(t.seconds for t in comm.terms if t.name not in DP_TERMS)


# ---- groups laid over nodes: NVLink inside, all NICs across (NCCL's hierarchical algorithms) ---------------
# Bus-bandwidth efficiency of NCCL collectives at large messages: aiconfigurator-core 0.12.0's measured NCCL
# tables (costmodel.measured; 256 MB, 8 GPUs, one node) give all-reduce / all-gather bus bandwidths of
# 214 / 192 GB/s on 8x A100 SXM (catalog NVLink 300 GB/s per direction: 0.71 / 0.64), 648 / 595 GB/s on
# 8x B200 (900 GB/s: 0.72 / 0.66) and 320 GB/s all-gather on 8x H100 (450 GB/s: 0.71; its all-reduce
# reaches 0.95 with NVLink SHARP). 0.70 is taken for every collective on the scale-up fabric.
NVLINK_BUS_EFFICIENCY = 0.70
# Across nodes each GPU drives its own NIC (NCCL rails: one ring/tree channel per NIC). The fraction of the
# NIC's line rate NCCL reaches is a fitted constant of the engine profiles (costmodel.engines), default 0.85.
NETWORK_BUS_EFFICIENCY = 0.85


@dataclass(frozen=True)
class Topology:
    """A communication group of ``size`` devices, ``per_domain`` of them in each NVLink domain (a node of 8,
    a GB200 rack of 72), over ``intra`` (the scale-up fabric) and ``inter`` (each GPU's NIC) links."""

    size: int
    per_domain: int
    intra: Link
    inter: Link

    @property
    def domains(self) -> int:
        return math.ceil(self.size / self.per_domain)


def _best_allreduce_s(nbytes: float, n: int, link: Link) -> float:
    """NCCL picks ring or tree by size: the faster of the two (tree wins on latency at scale)."""
    return min(allreduce_s(nbytes, n, link, "ring"), allreduce_s(nbytes, n, link, "tree"))


def allreduce_topo_s(nbytes: float, topo: Topology) -> float:
    """Hierarchical all-reduce (NCCL across nodes; Jeaugey 2019): reduce-scatter inside each domain over the
    fabric, all-reduce of the 1/g shard across domains with every GPU on its own NIC, all-gather inside:

        t = RS(S, g, intra) + AR(S / g, N, inter) + AG(S, g, intra)

    so the network carries 2 (N-1)/N x S / g per GPU, not 2 (n-1)/n x S: a node of g GPUs moves its
    buffer over g NICs at once. One domain: a plain all-reduce on the fabric."""
    g, nodes = topo.per_domain, topo.domains
    if nodes <= 1:
        return _best_allreduce_s(nbytes, topo.size, topo.intra)
    return (reduce_scatter_s(nbytes, g, topo.intra) + _best_allreduce_s(nbytes / g, nodes, topo.inter)
            + allgather_s(nbytes, g, topo.intra))


def allgather_topo_s(nbytes: float, topo: Topology) -> float:
    """Hierarchical all-gather of an ``nbytes`` result: across domains each GPU gathers the S / g chunk of its
    rail (same local rank), then the domain gathers the rest over the fabric:
    t = AG(S / g, N, inter) + AG(S, g, intra). Reduce-scatter mirrors it (``reduce_scatter_topo_s``)."""
    g, nodes = topo.per_domain, topo.domains
    if nodes <= 1:
        return allgather_s(nbytes, topo.size, topo.intra)
    return allgather_s(nbytes / g, nodes, topo.inter) + allgather_s(nbytes, g, topo.intra)


def reduce_scatter_topo_s(nbytes: float, topo: Topology) -> float:
    """Hierarchical reduce-scatter: the mirror of ``allgather_topo_s``, the same time."""
    return allgather_topo_s(nbytes, topo)


def alltoall_topo_s(nbytes: float, topo: Topology) -> float:
    """All-to-all over domains: the (g-1)/n share stays on the fabric, the (n-g)/n share crosses the network
    on each GPU's NIC; the two overlap, the slower sets the time."""
    n, g = topo.size, topo.per_domain
    if n <= 1 or nbytes <= 0:
        return 0.0
    if topo.domains <= 1:
        return alltoall_s(nbytes, n, topo.intra)
    intra = (g - 1) / n * nbytes / topo.intra.bandwidth_bytes_per_s + (g - 1) * topo.intra.latency_s
    inter = (n - g) / n * nbytes / topo.inter.bandwidth_bytes_per_s + (topo.domains - 1) * topo.inter.latency_s
    return max(intra, inter)


def group_link(hw, inner: int, size: int) -> Link:
    """The link of a communication group of ``size`` devices whose members are ``inner`` devices apart: it
    stays on NVLink/ICI if inner x size <= the NVLink domain (8 on an HGX node, 72 on a GB200 NVL72 rack),
    else it crosses the network (nominal bandwidths: the eager engine's original, flat model)."""
    if inner * size <= max(hw.nvlink_domain_gpus, 1):
        return Link(hw.intra_node_bandwidth_bytes_per_s, INTRA_NODE_LATENCY_S)
    return Link(hw.inter_node_bandwidth_bytes_per_s, INTER_NODE_LATENCY_S)


def group_topology(hw, inner: int, size: int, network_efficiency: float,
                   links: LinkCalibration | None = None) -> Topology:
    """A group of ``size`` devices ``inner`` apart laid over NVLink domains: ``g`` members share a domain
    (all of them when it fits; one per domain when ``inner`` fills it), the rest of the path is each GPU's
    own NIC. Bandwidths are NCCL bus bandwidths: the fabric's x ``NVLINK_BUS_EFFICIENCY`` (measured), or the
    bus bandwidth and latency of ``links`` (this machine's ``probe --collectives``); the NIC's x
    ``network_efficiency`` (fitted)."""
    domain = max(hw.nvlink_domain_gpus, 1)
    per = max(1, min(size, domain // inner)) if inner <= domain else 1
    intra = links.link if links is not None else Link(hw.intra_node_bandwidth_bytes_per_s * NVLINK_BUS_EFFICIENCY,
                                                      INTRA_NODE_LATENCY_S)
    inter = Link(hw.inter_node_bandwidth_bytes_per_s * network_efficiency, INTER_NODE_LATENCY_S)
    return Topology(size=size, per_domain=per, intra=intra, inter=inter)


def shard_group_topology(hw, tp: int, cp: int, pp: int, dp: int, network_efficiency: float,
                         links: LinkCalibration | None = None) -> Topology:
    """``group_topology`` of the dp x cp sharding group (``parallel.shard_group_size``): its context-parallel
    members sit ``tp`` apart, its data-parallel members ``tp x cp x pp`` apart; the members in one NVLink domain
    are the cp ones that fit times the dp ones whose whole tp x cp x pp block fits."""
    if cp == 1:
        return group_topology(hw, tp * pp, dp, network_efficiency, links)
    domain = max(hw.nvlink_domain_gpus, 1)
    cp_in = max(1, min(cp, domain // tp)) if tp <= domain else 1
    dp_in = max(1, min(dp, domain // (tp * cp * pp))) if tp * cp * pp <= domain else 1
    base = group_topology(hw, tp * cp * pp, dp, network_efficiency, links)
    return Topology(size=dp * cp, per_domain=cp_in * dp_in, intra=base.intra, inter=base.inter)
