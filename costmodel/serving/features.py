"""Serving features that change cost: speculative decoding, prefix caching, KV-cache quantization and
disaggregated prefill / decode pools (docs/serving.md, "Features").

- Speculative decoding (Leviathan et al. 2023; Chen et al. 2023): a draft proposes k tokens, the target
  verifies them in one pass; with per-token acceptance probability alpha the expected tokens per target step are
  (1 - alpha^(k+1)) / (1 - alpha). A step costs k draft iterations + one target pass over k + 1 rows per
  sequence (``StepModel.iteration_s``).
- Prefix caching (vLLM automatic prefix caching, SGLang RadixAttention): a hit rate h skips h x prompt tokens of
  prefill (their attention is still read by the rest of the prompt) and their KV blocks are shared, so a request
  holds (1 - h) x prompt + output tokens of its own (``offline_throughput(prefix_hit=...)``,
  ``simulate(prefix_hit=...)``).
- KV-cache quantization: the KV format of ``serving_precision`` (fp8 / int8 halve, int4 / fp4 quarter the bytes
  per cached token: more sequences fit, decode attention reads less).
- Disaggregated prefill / decode (DistServe, Zhong et al. 2024; Splitwise, Patel et al. 2024): prefill replicas
  produce the first token and ship the KV (prompt x KV bytes per token over the link between pools) to decode
  replicas; each pool is sized for its own phase. ``simulate_disaggregated`` runs one replica of each pool at its
  share of the traffic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..collectives import INTER_NODE_LATENCY_S, INTRA_NODE_LATENCY_S
from ..errors import InputError
from .model import StepModel
from .simulate import SimResult, poisson_requests, simulate


def expected_tokens_per_step(alpha: float, k: int) -> float:
    """(1 - alpha^(k+1)) / (1 - alpha): tokens a target step yields when each of k drafted tokens is accepted with
    probability alpha until the first rejection, plus the target's own token (Leviathan et al. 2023, eq. 1)."""
    if not 0.0 <= alpha <= 1.0:
        raise InputError("spec_alpha", f"must be from 0 to 1, got {alpha}")
    if k < 0:
        raise InputError("spec_k", f"must be >= 0, got {k}")
    if alpha == 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


@dataclass(frozen=True)
class Speculation:
    """Speculative decoding: ``k`` drafted tokens per step, acceptance ``alpha``; the draft is a small model
    (``draft``: its StepModel on the same device) or a head whose step costs ``draft_fraction`` of a target decode
    iteration (Medusa / EAGLE / MTP heads: a few percent)."""

    k: int
    alpha: float
    draft: StepModel | None = None
    draft_fraction: float = 0.05

    def __post_init__(self):
        if not isinstance(self.k, int) or isinstance(self.k, bool) or not 1 <= self.k <= 16:
            raise InputError("spec_k", f"must be a whole number from 1 to 16, got {self.k!r}")
        expected_tokens_per_step(self.alpha, self.k)
        if not 0.0 <= self.draft_fraction <= 1.0:
            raise InputError("spec_draft_fraction", f"must be from 0 to 1, got {self.draft_fraction}")

    @property
    def tokens_per_step(self) -> float:
        return expected_tokens_per_step(self.alpha, self.k)

    def to_dict(self) -> dict:
        return {"k": self.k, "alpha": self.alpha, "tokens_per_step": self.tokens_per_step,
                "draft": self.draft.shape.name if self.draft is not None else None,
                "draft_fraction": None if self.draft is not None else self.draft_fraction}


def kv_transfer_s(sm: StepModel, prompt_tokens: float, same_node: bool = False) -> float:
    """Seconds to ship a prompt's KV from a prefill replica to a decode replica: bytes / link + latency, each
    device of the replica sending its own shard in parallel (prompt x KV bytes per token per device)."""
    hw = sm.hw
    bw = hw.intra_node_bandwidth_bytes_per_s if same_node else hw.inter_node_bandwidth_bytes_per_s
    lat = INTRA_NODE_LATENCY_S if same_node else INTER_NODE_LATENCY_S
    return prompt_tokens * sm.kv_bytes_per_token / (bw * sm.engine.link_efficiency) + lat


@dataclass(frozen=True)
class DisaggregatedResult:
    prefill: SimResult
    decode: SimResult
    transfer_s: float
    ttft_s: np.ndarray
    tpot_s: np.ndarray
    devices: int
    rate_per_s: float
    output_tokens: float

    def summary(self) -> dict:
        def pct(x, q):
            x = x[np.isfinite(x)]
            return float(np.percentile(x, q)) if len(x) else float("nan")
        tput = self.rate_per_s * self.output_tokens
        return {"kv_transfer_s": self.transfer_s, "devices": self.devices,
                "output_tokens_per_s": tput, "output_tokens_per_s_per_device": tput / self.devices,
                "ttft_s": {q: pct(self.ttft_s, v) for q, v in (("p50", 50), ("p90", 90), ("p99", 99))},
                "tpot_s": {q: pct(self.tpot_s, v) for q, v in (("p50", 50), ("p90", 90), ("p99", 99))}}


def simulate_disaggregated(prefill: StepModel, decode: StepModel, rate_per_s: float, input_tokens: int,
                           output_tokens: int, *, prefill_replicas: int = 1, decode_replicas: int = 1,
                           num_requests: int = 1000, seed: int = 0, same_node: bool = False) -> DisaggregatedResult:
    """One prefill replica at rate / prefill_replicas (its requests stop after the first token) and one decode
    replica at rate / decode_replicas whose requests arrive with their KV; TTFT = prefill TTFT + KV transfer,
    TPOT from the decode pool. The pools are simulated apart (the decode pool sees Poisson arrivals), as
    DistServe's placement search does."""
    if prefill_replicas < 1 or decode_replicas < 1:
        raise InputError("replicas", "prefill and decode pools need at least one replica each")
    pre = simulate(prefill, poisson_requests(rate_per_s / prefill_replicas, num_requests, input_tokens, 1, seed=seed))
    dreq = poisson_requests(rate_per_s / decode_replicas, num_requests, input_tokens, output_tokens, seed=seed + 1)
    dec = simulate(decode, dreq, prefilled=True)
    xfer = kv_transfer_s(prefill, input_tokens, same_node)
    ttft = pre.ttft_s + xfer
    devices = prefill_replicas * prefill.layout.devices + decode_replicas * decode.layout.devices
    return DisaggregatedResult(pre, dec, xfer, ttft, dec.tpot_s, devices, rate_per_s, float(output_tokens))


__all__ = ["Speculation", "expected_tokens_per_step", "kv_transfer_s", "simulate_disaggregated",
           "DisaggregatedResult"]
