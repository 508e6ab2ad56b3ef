"""Frozen result records with unit-suffixed fields; ``to_dict()`` gives the CLI/JSON contract."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class ParamCounts:
    total: int
    trainable: int
    active: int  # used per token (MoE: top-k experts only)
    frozen: int
    nonzero: int  # after pruning sparsity
    adapter: int  # LoRA adapter parameters (included in total and trainable)
    # active minus the input embedding table (a lookup reads one row per token): the convention of
    # OpenAI's gpt-oss (3.6B / 5.1B) and DeepSeek-V3's README (36.6B); tied embeddings stay (the head uses them)
    active_without_embedding: int = 0
    # exact counts of parts the estimate does not run (MTP module, vision tower, projector), not in total
    apart: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FlopCounts:
    """FLOPs (2 per multiply-add) for one training step or one inference pass.

    train: forward/backward over the whole batch; recompute = the extra forward of
    gradient checkpointing. infer: forward = the prefill (or the single forward of a
    non-generative model); decode_per_token = one decode step at the mean context length.
    """

    forward: float
    backward: float
    recompute: float
    total: float
    forward_macs: float
    forward_effective: float  # forward with pruned weights skipped (ideal sparse kernels)
    decode_per_token: float
    per_token_train: float  # total / tokens (about 6 x params for dense LMs)


@dataclass(frozen=True)
class MemoryBreakdown:
    """Bytes per device. ``peak`` is comparable to torch.cuda.max_memory_allocated();
    ``device_total`` adds runtime overhead (CUDA context, allocator cache) for nvidia-smi."""

    weights: float
    gradients: float
    optimizer: float
    activations: float
    logits_loss: float
    kv_cache: float
    transient: float
    peak: float
    runtime_overhead: float
    device_total: float
    capacity: float
    fits: bool
    headroom: float
    peak_phase: str  # where the peak happens: backward start, end of backward, optimizer step, prefill, decode


@dataclass(frozen=True)
class LayerRow:
    name: str
    kind: str
    count: int
    params: int
    forward_flops: float
    backward_flops: float
    weight_bytes: float
    activation_bytes: float
    kv_cache_bytes: float


@dataclass(frozen=True)
class Estimate:
    model: str
    family: str
    hardware: str
    workload: dict
    params: ParamCounts
    flops: FlopCounts
    memory_bytes: MemoryBreakdown
    time_s: dict = field(default_factory=dict)
    perf: dict = field(default_factory=dict)  # mfu, hfu, tokens_per_s, samples_per_s, bound
    cost_usd: dict = field(default_factory=dict)  # per_step | per_request | per_forward, per_hour, per_million_tokens
    energy_kwh: dict = field(default_factory=dict)
    carbon_kg_co2e: dict = field(default_factory=dict)
    assumptions: dict = field(default_factory=dict)
    layers: tuple[LayerRow, ...] = ()

    def to_dict(self, with_layers: bool = False) -> dict:
        out = {
            "model": self.model,
            "family": self.family,
            "hardware": self.hardware,
            "workload": self.workload,
            "params": asdict(self.params),
            "flops": asdict(self.flops),
            "memory_bytes": asdict(self.memory_bytes),
            "time_s": dict(self.time_s),
            "perf": dict(self.perf),
            "cost_usd": dict(self.cost_usd),
            "energy_kwh": dict(self.energy_kwh),
            "carbon_kg_co2e": dict(self.carbon_kg_co2e),
            "assumptions": dict(self.assumptions),
            "units": {
                "flops": "FLOPs, 2 per multiply-add (torch FlopCounterMode convention); *_macs = FLOPs / 2 (fvcore)",
                "memory_bytes": "bytes per device (1 GiB = 2**30 bytes)",
                "time_s": "seconds",
                "cost_usd": "US dollars (device rental; energy not added for cloud tiers)",
                "energy_kwh": "kilowatt-hours at the facility (device power x PUE)",
                "carbon_kg_co2e": "kilograms CO2-equivalent (energy x grid intensity)",
            },
        }
        if with_layers:
            out["layers"] = [asdict(r) for r in self.layers]
        return out
