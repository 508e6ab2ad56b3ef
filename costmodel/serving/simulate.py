"""Online serving simulation: requests arrive (Poisson at a rate, a trace, or a closed loop of concurrent
users), an iteration-level scheduler batches them, and every request gets its time to first token (TTFT),
time per output token (TPOT) and end-to-end latency (docs/serving.md, "Simulation").

The scheduler is the engine profile's: FCFS admission while sequences (``max_num_seqs``) and KV blocks allow
(``reserve``: prompt + max output up front; ``on-demand``: blocks as tokens arrive, the newest request preempted
and recomputed when they run out), every running sequence decodes one token per iteration and the rest of
``max_num_batched_tokens`` goes to prompt chunks (chunked prefill). Static engines run a batch to completion.
Iteration times come from ``StepModel.iteration_s``. Runs of decode-only iterations between two events (an
arrival that can be admitted, a completion, KV exhaustion) are priced at once with numpy, so the loop runs
once per event, not once per token: 10,000 requests take about a second.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from ..limits import check_positions
from .model import StepModel


@dataclass(frozen=True)
class Requests:
    """Arrival times (s, open loop; ignored in a closed loop) and prompt / output lengths (tokens)."""

    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray

    def __len__(self) -> int:
        return len(self.input_tokens)


LENGTH_DISTRIBUTIONS = ("fixed", "uniform", "exponential", "lognormal")


def lengths(mean: int, n: int, distribution: str = "fixed", spread: float = 0.0, rng=None, lo: int = 1,
            hi: int | None = None) -> np.ndarray:
    """``n`` lengths with ``mean``: fixed; uniform on mean x (1 +- spread); exponential; lognormal with sigma
    ``spread`` (mean preserved). Clipped to [lo, hi]."""
    rng = rng or np.random.default_rng(0)
    if distribution == "fixed":
        x = np.full(n, float(mean))
    elif distribution == "uniform":
        x = mean * (1.0 + spread * (2.0 * rng.random(n) - 1.0))
    elif distribution == "exponential":
        x = rng.exponential(mean, n)
    elif distribution == "lognormal":
        s = spread or 0.5
        x = rng.lognormal(math.log(mean) - s * s / 2.0, s, n)
    else:
        raise InputError("length_distribution", f"must be one of {', '.join(LENGTH_DISTRIBUTIONS)}, got {distribution!r}")
    return np.clip(np.rint(x), lo, hi if hi is not None else np.inf).astype(np.int64)


def poisson_requests(rate_per_s: float, n: int, input_tokens: int, output_tokens: int, *,
                     distribution: str = "fixed", spread: float = 0.0, seed: int = 0,
                     max_positions: int | None = None) -> Requests:
    """Poisson arrivals at ``rate_per_s`` (exponential gaps; infinite rate: all at t = 0)."""
    if n < 1:
        raise InputError("num_requests", f"must be at least 1, got {n}")
    rng = np.random.default_rng(seed)
    if rate_per_s is None or math.isinf(rate_per_s):
        arr = np.zeros(n)
    else:
        if not rate_per_s > 0:
            raise InputError("qps", f"must be positive, got {rate_per_s}")
        arr = np.cumsum(rng.exponential(1.0 / rate_per_s, n))
    isl = lengths(input_tokens, n, distribution, spread, rng)
    osl = lengths(output_tokens, n, distribution, spread, rng)
    if max_positions:
        isl = np.minimum(isl, max_positions - 1)
        osl = np.minimum(osl, max_positions - isl)
    return Requests(arr, isl, osl)


def read_trace(path) -> Requests:
    """A trace file: CSV (header ``arrival_s,input_tokens,output_tokens``) or JSON lines with those keys."""
    import csv
    import json
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise InputError("trace", f"no such file: {path}")
    rows = []
    text = p.read_text(encoding="utf-8")
    try:
        if text.lstrip().startswith("{"):
            rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            rows = list(csv.DictReader(text.splitlines()))
        arr = np.array([float(r["arrival_s"]) for r in rows])
        isl = np.array([int(float(r["input_tokens"])) for r in rows])
        osl = np.array([int(float(r["output_tokens"])) for r in rows])
    except (KeyError, ValueError, TypeError, json.JSONDecodeError) as err:
        raise InputError("trace", f"needs arrival_s, input_tokens, output_tokens per row (CSV or JSON lines): {err}") from None
    if not len(rows):
        raise InputError("trace", "is empty")
    if (isl < 1).any() or (osl < 1).any() or (arr < 0).any() or not np.isfinite(arr).all():
        raise InputError("trace", "lengths must be >= 1 and arrival times finite and >= 0")
    order = np.argsort(arr, kind="stable")
    return Requests(arr[order], isl[order], osl[order])


def _pct(x: np.ndarray, q: float) -> float:
    x = x[np.isfinite(x)]
    return float(np.percentile(x, q)) if len(x) else float("nan")


@dataclass(frozen=True)
class SimResult:
    ttft_s: np.ndarray = field(repr=False)
    tpot_s: np.ndarray = field(repr=False)
    e2e_s: np.ndarray = field(repr=False)
    output_tokens: np.ndarray = field(repr=False)
    duration_s: float
    iterations: int
    preemptions: int
    devices: int

    completed: int = 0  # requests run (latency arrays may leave out a closed loop's warm-up wave)

    @property
    def output_tokens_per_s(self) -> float:
        return float(self.output_tokens.sum()) / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def requests_per_s(self) -> float:
        return self.completed / self.duration_s if self.duration_s > 0 else 0.0

    def percentile(self, metric: str, q: float) -> float:
        return _pct(getattr(self, metric), q)

    def goodput(self, slo_ttft_s: float | None = None, slo_tpot_s: float | None = None) -> float:
        """Requests per second that meet both SLOs (DistServe's goodput)."""
        ok = np.ones(len(self.e2e_s), bool)  # measured requests; scaled to all completed
        if slo_ttft_s is not None:
            ok &= self.ttft_s <= slo_ttft_s
        if slo_tpot_s is not None:
            ok &= ~(self.tpot_s > slo_tpot_s)
        frac = float(ok.mean()) if len(ok) else 0.0
        return frac * self.requests_per_s

    def summary(self) -> dict:
        out = {"requests": self.completed, "measured_requests": len(self.e2e_s), "duration_s": self.duration_s,
               "output_tokens_per_s": self.output_tokens_per_s,
               "output_tokens_per_s_per_device": self.output_tokens_per_s / self.devices,
               "requests_per_s": self.requests_per_s, "iterations": self.iterations, "preemptions": self.preemptions}
        for m in ("ttft_s", "tpot_s", "e2e_s"):
            x = getattr(self, m)
            out[m] = {"mean": float(np.nanmean(x)) if np.isfinite(x).any() else float("nan"),
                      "p50": _pct(x, 50), "p90": _pct(x, 90), "p99": _pct(x, 99)}
        return out


def simulate(sm: StepModel, reqs: Requests, *, concurrency: int | None = None, prefix_hit: float = 0.0,
             prefilled: bool = False, max_iterations: int = 5_000_000) -> SimResult:
    """Run ``reqs`` through one replica. ``concurrency``: closed loop (that many users, each sending its next
    request when the previous finishes; arrival times ignored). ``prefix_hit``: fraction of each prompt
    already in the prefix cache (skipped, its blocks shared); ``prefilled``: requests arrive with their KV (the
    decode pool of a disaggregated deployment). Speculative decoding comes with the step model."""
    if not 0.0 <= prefix_hit < 1.0:
        raise InputError("prefix_hit", f"must be from 0 to below 1, got {prefix_hit}")
    tokens_per_step = sm.tokens_per_step
    if len(reqs):  # the longest request within the model's positions (one rule: costmodel.limits)
        i = int(np.argmax(reqs.input_tokens + reqs.output_tokens))
        check_positions(sm.spec, int(reqs.input_tokens[i]), int(reqs.output_tokens[i]))
    n = len(reqs)
    e, lay = sm.engine, sm.layout
    isl = reqs.input_tokens.astype(float)
    osl = reqs.output_tokens.astype(float)
    if concurrency is not None:
        if concurrency < 1:
            raise InputError("concurrency", f"must be at least 1, got {concurrency}")
        arrival = np.full(n, np.inf)
        arrival[:min(concurrency, n)] = 0.0
    else:
        arrival = reqs.arrival_s.astype(float).copy()
    if not e.continuous_batching:
        return _simulate_static(sm, isl, osl, arrival, concurrency)
    cached = np.floor(isl * prefix_hit) if prefix_hit else np.zeros(n)
    ctx = np.zeros(n)  # tokens in the KV cache
    left = isl - cached  # prompt tokens still to compute
    if prefilled:
        left[:] = 0.0
        ctx[:] = isl
    out_left = osl.copy()
    t_first = np.full(n, np.nan)
    t_done = np.full(n, np.nan)
    pool = sm.kv_pool_bytes
    if pool <= 0:
        raise InputError("hardware", f"{sm.shape.name} does not fit on {sm.hw.id} at this precision and layout "
                                     f"(no memory left for the KV cache)")
    per_tok = sm.kv_bytes_per_token
    blk = max(e.block_size, 1)
    cap_tokens = pool / per_tok
    reserve = e.admission == "reserve"
    held = np.zeros(n)  # KV tokens a request holds of its own (reserved or allocated, whole blocks)
    used = float(cached.max()) if n and prefix_hit else 0.0  # a shared prefix is cached once
    need_max = isl + osl
    if (np.ceil(need_max / blk) * blk > cap_tokens).any():
        i = int(np.argmax(need_max))
        raise InputError("input_tokens", f"a request of {int(isl[i])} + {int(osl[i])} tokens needs more KV cache than "
                                         f"the {cap_tokens:,.0f} tokens {sm.hw.id} holds at this layout")
    closed = concurrency is not None
    order = np.argsort(arrival, kind="stable") if not closed else np.arange(n)
    nxt = 0  # open loop: next request (in arrival order) not yet queued
    waiting: deque = deque()
    issued = 0
    if closed:
        issued = min(concurrency, n)
        waiting.extend(range(issued))
        nxt = n
    prefilling: list = []  # admitted, prompt not finished, FIFO
    decoding: list = []
    t = 0.0
    done = 0
    iters = 0
    preempt = 0
    max_seqs = e.max_num_seqs * lay.pp
    budget_total = e.max_num_batched_tokens * lay.pp if e.chunked_prefill else float("inf")
    w = sm.window

    def blocks(x):
        return math.ceil(x / blk) * blk

    def next_arrival():
        return arrival[order[nxt]] if nxt < n else math.inf

    while done < n:
        while nxt < n and arrival[order[nxt]] <= t:
            waiting.append(order[nxt])
            nxt += 1
        # admission (FCFS)
        while waiting and len(prefilling) + len(decoding) < max_seqs:
            i = waiting[0]
            own = max(ctx[i] - cached[i], 0.0) if not prefilled else ctx[i]
            need = blocks(isl[i] + osl[i] - cached[i]) if reserve else blocks(own + left[i] + 1)
            if used + need > cap_tokens:
                break
            waiting.popleft()
            held[i] = need
            used += need
            if left[i] > 0:
                if ctx[i] == 0.0:
                    ctx[i] = cached[i]
                prefilling.append(i)
            else:
                decoding.append(i)
                if np.isnan(t_first[i]):
                    t_first[i] = t
        if not prefilling and not decoding:
            if nxt < n:
                t = max(t, next_arrival())
                continue
            break  # nothing left that can run
        budget = budget_total - len(decoding)
        chunks = []
        if prefilling:
            for i in prefilling:
                if budget <= 0:
                    break
                c = min(left[i], budget) if e.chunked_prefill else left[i]
                chunks.append((i, c))
                budget -= c
            if not chunks and not decoding:
                chunks.append((prefilling[0], min(left[prefilling[0]], e.max_num_batched_tokens)))
        dec = np.fromiter(decoding, dtype=np.int64, count=len(decoding))
        nd = len(dec)
        ctx_sum = float(ctx[dec].sum()) if nd else 0.0
        ctx_win = float(np.minimum(ctx[dec], w).sum()) if (w and nd) else None
        if not chunks:
            # decode-only iterations until the next event: first completion, an admissible arrival, a full pool
            k = max(1, int(math.ceil(float(out_left[dec].min()) / tokens_per_step - 1e-9)))
            if not reserve:
                room = cap_tokens - used
                k = max(1, min(k, int(room // max(nd * tokens_per_step, 1e-9))))
            j = np.arange(k, dtype=float)
            ctx_j = ctx_sum + j * nd * tokens_per_step
            win_j = None if not w else np.minimum(ctx_j, nd * w)
            dts = sm.iteration_s(n_dec=np.full(k, float(nd)), ctx=ctx_j, ctx_win=win_j) 
            cum = np.cumsum(dts)
            ta = next_arrival()
            if not waiting and ta < t + cum[-1] and nd < max_seqs:
                k = min(int(np.searchsorted(cum, ta - t)) + 1, k)
            t += float(cum[k - 1])
            iters += k
            gained = np.minimum(k * tokens_per_step, out_left[dec])
            ctx[dec] += gained
            out_left[dec] -= gained
        else:
            pre_tok = pre_attn = pre_kv = pre_attn_win = 0.0
            finishing = 0
            for i, c in chunks:
                p = ctx[i]
                pre_tok += c
                pre_attn += c * p + c * c / 2.0
                pre_kv += p + c
                if w:
                    pre_attn_win += c * min(p + c / 2.0, w)
                if c >= left[i]:
                    finishing += 1
            dt = sm.iteration_s(n_dec=float(nd), ctx=ctx_sum, pre_tok=pre_tok, pre_attn=pre_attn, pre_kv=pre_kv,
                                n_logits=float(nd + finishing), n_seqs=float(nd + len(chunks)), ctx_win=ctx_win,
                                pre_attn_win=pre_attn_win if w else None) 
            t += dt
            iters += 1
            if nd:
                gained = np.minimum(tokens_per_step, out_left[dec])
                ctx[dec] += gained
                out_left[dec] -= gained
            for i, c in chunks:
                ctx[i] += c
                left[i] -= c
                if left[i] <= 0:
                    left[i] = 0.0
                    prefilling.remove(i)
                    if np.isnan(t_first[i]):
                        t_first[i] = t
                    out_left[i] -= 1.0
                    ctx[i] += 1.0
                    decoding.append(i)
        if not reserve and decoding:
            da = np.fromiter(decoding, dtype=np.int64, count=len(decoding))
            nh = np.ceil(np.maximum(ctx[da] - cached[da], 0.0) / blk) * blk
            used += float((nh - held[da]).sum())
            held[da] = nh
        # completions
        if decoding:
            da = np.fromiter(decoding, dtype=np.int64, count=len(decoding))
            fin = da[out_left[da] <= 1e-9]
            if len(fin):
                fs = set(fin.tolist())
                decoding = [i for i in decoding if i not in fs]
                t_done[fin] = t
                used -= float(held[fin].sum())
                held[fin] = 0.0
                done += len(fin)
                if closed:
                    for _ in range(len(fin)):
                        if issued < n:
                            arrival[issued] = t
                            waiting.append(issued)
                            issued += 1
        # on-demand: preempt the newest running request (recomputed later) while the pool is over-committed
        while not reserve and used > cap_tokens and (decoding or prefilling):
            victim = prefilling.pop() if prefilling else decoding.pop()
            used -= held[victim]
            held[victim] = 0.0
            left[victim] = ctx[victim] - cached[victim]
            ctx[victim] = 0.0
            waiting.appendleft(victim)
            preempt += 1
        if iters > max_iterations:
            raise InputError("num_requests", "the simulation did not finish (overloaded far beyond capacity?)")
    return _result(arrival, t_first, t_done, osl, iters, preempt, sm, warmup=concurrency if closed else 0)


def _simulate_static(sm: StepModel, isl, osl, arrival, concurrency) -> SimResult:
    """Static batching: when idle, take up to the largest batch that fits from the queue, prefill it (padded to
    its longest prompt), decode until its longest output is done; a sequence's last token is its done time."""
    from .batching.offline import largest_static_batch

    n = len(isl)
    t = 0.0
    t_first = np.full(n, np.nan)
    t_done = np.full(n, np.nan)
    arrival = arrival.copy()
    issued = min(concurrency, n) if concurrency is not None else n
    remaining = set(range(n))
    iters = 0
    cache: dict = {}
    while remaining:
        ready = sorted((i for i in remaining if arrival[i] <= t), key=lambda i: arrival[i])
        if not ready:
            t = min(arrival[i] for i in remaining)
            if not np.isfinite(t):
                break
            continue
        P, O = int(isl[ready].max()), int(osl[ready].max())
        key = (P, O)
        if key not in cache:
            cache[key] = max(1, min(largest_static_batch(sm, P, O), sm.engine.max_num_seqs))
        batch = ready[:cache[key]]
        b = len(batch)
        P, O = int(isl[batch].max()), int(osl[batch].max())
        pre = sm.iteration_s(pre_tok=float(b * P), pre_attn=b * P * P / 2.0, pre_kv=float(b * P), n_logits=float(b),
                             n_seqs=float(b))
        j = np.arange(max(O - 1, 0), dtype=float)
        dec = sm.iteration_s(n_dec=np.full(len(j), float(b)), ctx=b * (P + 1 + j)) if len(j) else np.zeros(0)
        cum = np.concatenate([[0.0], np.cumsum(dec)])
        for i in batch:
            t_first[i] = t + pre
            t_done[i] = t + pre + cum[int(osl[i]) - 1]
        t += pre + cum[-1]
        iters += 1 + len(j)
        for i in batch:
            remaining.discard(i)
            if concurrency is not None and issued < n:
                arrival[issued] = t
                issued += 1
    return _result(arrival, t_first, t_done, osl, iters, 0, sm, warmup=concurrency or 0)


def _result(arrival, t_first, t_done, osl, iters, preempt, sm, warmup: int = 0) -> SimResult:
    """Latencies per request (the frontend's per-request time added to TTFT and end-to-end); throughput over the
    whole run. A closed loop's first wave (all users starting at once) is left out of the latencies when more
    requests follow it, as load generators warm up before measuring."""
    arr0 = np.where(np.isfinite(arrival), arrival, 0.0)
    extra = sm.engine.request_overhead_s
    ttft = t_first - arr0 + extra
    tpot = np.where(osl > 1, (t_done - t_first) / np.maximum(osl - 1, 1), np.nan)
    e2e = t_done - arr0 + extra
    n = len(osl)
    dur = float(np.nanmax(t_done)) - float(np.nanmin(arr0)) if n else 0.0
    keep = np.ones(n, bool)
    if warmup and n >= 2 * warmup:
        keep[:warmup] = False
    return SimResult(ttft[keep], tpot[keep], e2e[keep], osl, dur, iters, preempt, sm.layout.devices,
                     completed=n)
