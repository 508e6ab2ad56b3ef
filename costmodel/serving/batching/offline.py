"""Offline throughput: every request queued at once, the engine at its steady state (docs/serving.md,
"Offline throughput").

Continuous (iteration-level) batching keeps ``B`` sequences running. ``B`` is the smallest of

- the KV pool / the KV one request holds: prompt + output reserved up front (``reserve``: TensorRT-LLM's
  GUARANTEED_NO_EVICT, JetStream's slots) or on average prompt + output / 2 (``on-demand``: vLLM allocates
  blocks as tokens arrive; sequences at staggered ages hold I + O/2 on average), in whole blocks;
- ``max_num_seqs`` (the engine's batch cap);
- the token budget: every iteration gives each running sequence one decode token and spends the rest of
  ``max_num_batched_tokens`` on prompt chunks; at steady state B / (O - 1) requests finish per iteration and
  as many prompts of I tokens must be prefilled, so B + B I / (O - 1) <= max_num_batched_tokens.

One iteration then runs B decode rows at mean context I + O/2 plus B I / (O - 1) prefill rows whose attention
is I^2 / 2 per prompt (chunking does not change the total); output tokens/s = B O / ((O - 1) t_iter). Under
pipeline parallelism ``pp`` micro-batches of B / pp are in flight and each stage time yields B / pp tokens.
Static batching (Hugging Face generate) runs the largest batch that fits: B O / (prefill + (O - 1) decode).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ...errors import InputError
from ..model import StepModel


@dataclass(frozen=True)
class OfflineResult:
    output_tokens_per_s: float  # whole replica
    requests_per_s: float
    concurrency: float  # sequences running at steady state
    limited_by: str  # kv_cache | max_num_seqs | token_budget | requests | static_batch
    iteration_s: float  # one engine iteration at steady state (one pipeline stage)
    tpot_s: float  # time between two output tokens of one sequence
    kv_capacity_tokens: float  # the pool in tokens (pool / KV bytes per token)
    devices: int

    @property
    def output_tokens_per_s_per_device(self) -> float:
        return self.output_tokens_per_s / self.devices

    def to_dict(self) -> dict:
        out = asdict(self)
        out["output_tokens_per_s_per_device"] = self.output_tokens_per_s_per_device
        return out


def _chunks(prompt: float, budget: float) -> float:
    return max(1.0, math.ceil(prompt / max(budget, 1.0)))


def steady_iteration(sm: StepModel, b: float, isl: float, osl: float, *, prefill_isl: float | None = None,
                     tokens_per_step: float = 1.0) -> float:
    """Seconds of one steady-state iteration with ``b`` decoding sequences (per pipeline micro-batch).
    ``prefill_isl``: prompt tokens that need computing (prefix caching skips the rest); ``tokens_per_step``:
    decode tokens a sequence gains per iteration (speculative decoding)."""
    pi = isl if prefill_isl is None else prefill_isl
    steps = max((osl - 1) / tokens_per_step, 1e-9)
    r = b / steps  # requests finishing (and prompts starting) per iteration
    e = sm.engine
    budget = e.max_num_batched_tokens - b if e.chunked_prefill else float("inf")
    n_ch = _chunks(pi, budget) if math.isfinite(budget) else 1.0
    cached = isl - pi
    pre_attn = r * (pi * cached + pi * pi / 2.0)
    pre_kv = r * (cached * n_ch + pi * (n_ch + 1) / 2.0)
    w = sm.window
    ctx = b * (isl + osl / 2.0)
    ctx_win = b * min(isl + osl / 2.0, w) if w else ctx
    pre_attn_win = min(pre_attn, r * pi * w) if w else pre_attn
    return sm.iteration_s(n_dec=b, ctx=ctx, pre_tok=r * pi, pre_attn=pre_attn, pre_kv=pre_kv, n_logits=b + r,
                          n_seqs=b + r * n_ch, ctx_win=ctx_win, pre_attn_win=pre_attn_win)


def max_concurrency(sm: StepModel, isl: int, osl: int, *, prefix_hit: float = 0.0) -> tuple[float, str]:
    """Running sequences the KV pool and the engine's caps allow (per replica, all micro-batches together)."""
    e = sm.engine
    pool = sm.kv_pool_bytes
    if pool <= 0:
        return 0.0, "kv_cache"
    hold = isl + osl if e.admission == "reserve" else isl + osl / 2.0
    per_req = sm.request_kv_bytes(hold - prefix_hit * isl)
    kv_b = math.floor(pool / per_req) if per_req > 0 else float("inf")
    caps = [(kv_b, "kv_cache"), (e.max_num_seqs * sm.layout.pp, "max_num_seqs")]
    if e.chunked_prefill and osl > 1:
        tb = e.max_num_batched_tokens * (osl - 1) / (osl - 1 + isl * (1 - prefix_hit)) * sm.layout.pp
        caps.append((tb, "token_budget"))
    b, why = min(caps, key=lambda c: c[0])
    return max(b, 0.0), why


def offline_throughput(sm: StepModel, isl: int, osl: int, *, num_requests: int | None = None,
                       prefix_hit: float = 0.0) -> OfflineResult:
    """Steady-state output tokens/s of one replica serving requests of ``isl`` prompt and ``osl`` output tokens.
    ``prefix_hit``: fraction of each prompt found in the prefix cache (not recomputed, its blocks shared).
    Speculative decoding comes with the step model (``sm.tokens_per_step`` tokens per decode iteration)."""
    if not 0.0 <= prefix_hit < 1.0:
        raise InputError("prefix_hit", f"must be from 0 to below 1, got {prefix_hit}")
    tokens_per_step = sm.tokens_per_step
    e, lay = sm.engine, sm.layout
    devices = lay.devices
    ranks = lay.ep if lay.attention_dp else 1  # attention-DP ranks each run their own batch
    cap_tokens = max(sm.kv_pool_bytes, 0.0) / sm.kv_bytes_per_token if sm.kv_bytes_per_token else 0.0
    if not e.continuous_batching:
        return _static_offline(sm, isl, osl, devices, cap_tokens, num_requests)
    pi = isl * (1.0 - prefix_hit)
    B, why = max_concurrency(sm, isl, osl, prefix_hit=prefix_hit)
    if num_requests is not None and num_requests / ranks < B:
        B, why = num_requests / ranks, "requests"
    if B < 1:
        return OfflineResult(0.0, 0.0, 0.0, why, float("inf"), float("inf"), cap_tokens, devices)
    if osl <= 1:  # prefill only: the token budget of prompt rows per iteration
        rows = min(e.max_num_batched_tokens, B * isl) if e.chunked_prefill else B * isl
        reqs = rows / isl
        t = sm.iteration_s(pre_tok=reqs * pi, pre_attn=reqs * (pi * (isl - pi) + pi * pi / 2), pre_kv=reqs * isl,
                           n_logits=reqs, n_seqs=reqs)
        rps = reqs / t * ranks
        return OfflineResult(rps * osl, rps, reqs * ranks, "token_budget", t, t, cap_tokens, devices)
    b = B / lay.pp
    t = steady_iteration(sm, b, isl, osl, prefill_isl=pi, tokens_per_step=tokens_per_step)
    per_iter_tokens = b * tokens_per_step
    tok_s = per_iter_tokens / t * osl / (osl - 1) * ranks
    tpot = t * lay.pp / tokens_per_step
    return OfflineResult(tok_s, tok_s / osl, B * ranks, why, t, tpot, cap_tokens, devices)


def static_batch_s(sm: StepModel, batch: int, isl: int, osl: int) -> tuple[float, float]:
    """(prefill seconds, one decode step at the mean context) of a static batch."""
    pre = sm.iteration_s(pre_tok=batch * isl, pre_attn=batch * isl * isl / 2.0, pre_kv=batch * isl,
                         n_logits=batch, n_seqs=batch)
    mean_ctx = isl + max(osl, 1) / 2.0
    w = sm.window
    dec = sm.iteration_s(n_dec=batch, ctx=batch * mean_ctx, ctx_win=batch * min(mean_ctx, w) if w else None)
    return pre, dec


def largest_static_batch(sm: StepModel, isl: int, osl: int, hi: int = 1 << 20) -> int:
    """Largest batch whose static memory (weights + cache at isl + osl + prefill activations) fits."""
    cap = float(sm.hw.memory_bytes)
    if sm.static_device_bytes(1, isl, osl) > cap:
        return 0
    lo, up = 1, 2
    while up <= hi and sm.static_device_bytes(up, isl, osl) <= cap:
        lo, up = up, up * 2
    up = min(up, hi + 1)
    while up - lo > 1:
        mid = (lo + up) // 2
        if sm.static_device_bytes(mid, isl, osl) <= cap:
            lo = mid
        else:
            up = mid
    return lo


def _static_offline(sm, isl, osl, devices, cap_tokens, num_requests) -> OfflineResult:
    bmax = min(largest_static_batch(sm, isl, osl), sm.engine.max_num_seqs)
    if num_requests:
        bmax = min(bmax, num_requests)
    if bmax < 1:
        return OfflineResult(0.0, 0.0, 0.0, "static_batch", float("inf"), float("inf"), cap_tokens, devices)
    best = None
    b = 1
    cands = set()
    while b < bmax:
        cands.add(b)
        b *= 2
    cands.add(bmax)
    for b in sorted(cands):
        pre, dec = static_batch_s(sm, b, isl, osl)
        tok_s = b * osl / (pre + (osl - 1) * dec) if osl else 0.0
        if best is None or tok_s > best[0]:
            best = (tok_s, b, dec)
    tok_s, b, dec = best
    return OfflineResult(tok_s, tok_s / max(osl, 1), float(b), "static_batch", dec, dec, cap_tokens, devices)
