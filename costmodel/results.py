"""Frozen result records with unit-suffixed fields; ``to_dict()`` gives the CLI/JSON contract.

Every number a consumer shows comes from one of these records, so "the headline time" and the money of
the same run are read from one place:

- ``Estimate.time_s`` is a ``TrainTimes`` (unit: one optimizer step), ``GenerationTimes`` (unit: one
  request = prefill + decode steps) or ``ForwardTimes`` (unit: one forward of a non-generative model).
  All three have ``unit`` and ``per_unit_s``.
- ``Estimate.cost_usd`` / ``.energy_kwh`` / ``.carbon_kg_co2e`` are ``UnitRates`` of the same unit.
- ``Estimate.perf`` is ``Perf``; ``Estimate.workload`` the validated ``Workload``.

The JSON keys are today's contract (tests/test_golden_contract.py pins them byte-for-byte).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import ClassVar, Union

from .workload import Workload


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


# ---- times: one record per kind of run, each with its unit -------------------------------------------------

@dataclass(frozen=True)
class TrainTimes:
    """Seconds of one optimizer step on one device: forward + backward (adapters included) + recompute
    (gradient checkpointing) + optimizer step."""

    unit: ClassVar[str] = "step"
    forward_s: float
    backward_s: float
    recompute_s: float
    optimizer_s: float
    step_s: float

    @property
    def per_unit_s(self) -> float:
        return self.step_s

    def phases(self) -> tuple[tuple[str, float], ...]:
        """The parts that add up to the step, for display (name, seconds)."""
        return (("forward", self.forward_s), ("backward", self.backward_s), ("recompute", self.recompute_s),
                ("optimizer", self.optimizer_s))

    def to_dict(self) -> dict:
        return {"forward": self.forward_s, "backward": self.backward_s, "recompute": self.recompute_s,
                "optimizer": self.optimizer_s, "step": self.step_s}


@dataclass(frozen=True)
class GenerationTimes:
    """Seconds of one generation request of the whole batch: the prefill (time to first token) and
    ``generate`` decode steps at the mean context length."""

    unit: ClassVar[str] = "request"
    prefill_s: float
    decode_per_token_s: float  # one decode step: every sequence of the batch gets one token
    generate_s: float
    request_s: float

    @property
    def per_unit_s(self) -> float:
        return self.request_s

    def phases(self) -> tuple[tuple[str, float], ...]:
        return (("prefill", self.prefill_s), ("decode_per_token", self.decode_per_token_s))

    def to_dict(self) -> dict:
        return {"prefill": self.prefill_s, "decode_per_token": self.decode_per_token_s,
                "generate": self.generate_s, "request": self.request_s}


@dataclass(frozen=True)
class ForwardTimes:
    """Seconds of one forward pass of a non-generative model (classification, embedding, encoder)."""

    unit: ClassVar[str] = "forward"
    forward_s: float

    @property
    def per_unit_s(self) -> float:
        return self.forward_s

    def phases(self) -> tuple[tuple[str, float], ...]:
        return (("forward", self.forward_s),)

    def to_dict(self) -> dict:
        return {"forward": self.forward_s}


Times = Union[TrainTimes, GenerationTimes, ForwardTimes]


def phase_seconds(times: Times, phase: str) -> float:
    """Seconds of a phase by its JSON key ("step", "prefill", "decode_per_token", "forward", ...): what the
    profiler measures under the same names. Raises KeyError for a phase this kind of run does not have."""
    return times.to_dict()[phase]


@dataclass(frozen=True)
class Perf:
    """Utilisation and throughput of the run's unit.

    ``peak_flops_per_s``: the peak the model's FLOPs run at, weighted by FLOPs (total FLOPs / sum of
    FLOPs_row / peak_row): the compute dtype's tensor-core peak for matmuls, TF32 for cuDNN convolutions
    and RNNs under fp32, x the 2:4 speedup for sparse weights. MFU = model FLOPs / (time x that peak), so
    MFU <= the matmul efficiency <= 1. ``bound``: what sets the (prefill) pass time: compute, memory or
    host; ``decode_bound`` the same for one decode step."""

    peak_flops_per_s: float
    mfu: float
    hfu: float
    tokens_per_s: float
    samples_per_s: float
    bound: str
    host_s: float
    device_s: float
    prefill_tokens_per_s: float | None = None  # generation only
    decode_bound: str | None = None  # generation only

    def to_dict(self) -> dict:
        out = {"peak_flops_per_s": self.peak_flops_per_s, "mfu": self.mfu, "hfu": self.hfu,
               "tokens_per_s": self.tokens_per_s, "samples_per_s": self.samples_per_s}
        if self.prefill_tokens_per_s is not None:
            out["prefill_tokens_per_s"] = self.prefill_tokens_per_s
        out["bound"] = self.bound
        if self.decode_bound is not None:
            out["decode_bound"] = self.decode_bound
        out.update(host_s=self.host_s, device_s=self.device_s)
        return out


@dataclass(frozen=True)
class UnitRates:
    """One quantity (US dollars, kWh or kg CO2e) per unit of the run, per device-hour, and per million
    tokens (text models) or per 1,000 samples (images, feature vectors).

    ``per_unit``: for one step / request / forward (``unit``), i.e. ``per_hour x per_unit_s / 3600``."""

    unit: str
    per_unit: float
    per_hour: float
    per_million_tokens: float | None = None
    per_thousand_samples: float | None = None

    def to_dict(self) -> dict:
        out = {f"per_{self.unit}": self.per_unit, "per_hour": self.per_hour}
        if self.per_million_tokens is not None:
            out["per_million_tokens"] = self.per_million_tokens
        if self.per_thousand_samples is not None:
            out["per_thousand_samples"] = self.per_thousand_samples
        return out


UNITS_DOC = {
    "flops": "FLOPs, 2 per multiply-add (torch FlopCounterMode convention); *_macs = FLOPs / 2 (fvcore)",
    "memory_bytes": "bytes per device (1 GiB = 2**30 bytes)",
    "time_s": "seconds",
    "cost_usd": "US dollars (device rental; energy not added for cloud tiers)",
    "energy_kwh": "kilowatt-hours at the facility (device power x PUE)",
    "carbon_kg_co2e": "kilograms CO2-equivalent (energy x grid intensity)",
}


@dataclass(frozen=True)
class Estimate:
    model: str
    family: str
    hardware: str
    workload: Workload
    params: ParamCounts
    flops: FlopCounts
    memory_bytes: MemoryBreakdown
    time_s: Times
    perf: Perf
    cost_usd: UnitRates | None = None  # None: no price for this device (the reason is in assumptions["cost"])
    energy_kwh: UnitRates | None = None
    carbon_kg_co2e: UnitRates | None = None
    assumptions: dict = field(default_factory=dict)
    layers: tuple[LayerRow, ...] = ()
    modality: str = "text"  # the model's input: "text" (rates per million tokens) or "image"/"vector" (per 1,000 samples)

    @property
    def unit(self) -> str:
        """What one run is: a training "step", a generation "request" or a "forward"."""
        return self.time_s.unit

    def with_money(self, cost_usd, energy_kwh, carbon_kg_co2e, assumptions: dict) -> "Estimate":
        """A copy with the money, energy and carbon rates and ``assumptions`` set: what
        ``dataclasses.replace`` gives, without re-running ``__init__`` over every field (an estimate has no
        checks of its own; ~1 us instead of ~10, once per estimate of an API sweep)."""
        new = object.__new__(Estimate)
        new.__dict__.update(self.__dict__)
        d = new.__dict__
        d["cost_usd"], d["energy_kwh"], d["carbon_kg_co2e"], d["assumptions"] = (cost_usd, energy_kwh,
                                                                                carbon_kg_co2e, assumptions)
        return new

    def to_dict(self, with_layers: bool = False) -> dict:
        out = {
            "model": self.model,
            "family": self.family,
            "hardware": self.hardware,
            "workload": self.workload.to_dict(),
            "params": asdict(self.params),
            "flops": asdict(self.flops),
            "memory_bytes": asdict(self.memory_bytes),
            "time_s": self.time_s.to_dict(),
            "perf": self.perf.to_dict(),
            "cost_usd": self.cost_usd.to_dict() if self.cost_usd else {},
            "energy_kwh": self.energy_kwh.to_dict() if self.energy_kwh else {},
            "carbon_kg_co2e": self.carbon_kg_co2e.to_dict() if self.carbon_kg_co2e else {},
            "assumptions": dict(self.assumptions),
            "units": dict(UNITS_DOC),
        }
        if with_layers:
            out["layers"] = [asdict(r) for r in self.layers]
        return out
