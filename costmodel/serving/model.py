"""The served model on one device: its shape, memory (weights, KV pool, activations) and the time of one
engine iteration (docs/serving.md, "Iteration time").

An iteration runs ``n_dec`` decode tokens (one per running sequence) and ``pre_tok`` prefill tokens (chunks of
prompts) through one pipeline stage on one device. Its time is the sum over op classes of
max(FLOPs / (peak x efficiency), bytes / (bandwidth x efficiency)) (a roofline per op class, or a measured
per-op table through ``costmodel.serving.ops``), plus collectives and host time:

    dense GEMMs    T = n_dec + pre_tok rows: 2 T P_dense / (peak eta_mm)  vs  (P_dense w + T io a) / (bw eta_bw)
    MoE experts    weights of the distinct experts the T tokens touch (costmodel.layers.expected_experts)
    LM head        one row per sampled sequence (decodes + prefills that finish), 16-bit weights
    attention      decode: KV bytes of every context read once; prefill: 4 H d (c p + c^2/2) FLOPs per chunk
    elementwise    norms, residual adds, activation, rotary: ~(10 h + 3 f + 2 (H+KV) d) activation bytes/token
    collectives    2 all-reduces of T x h per layer under TP; all-to-all dispatch + combine under EP
    host           iteration + per-sequence overhead (CUDA-graph engines); max(host, device) for eager loops

Inputs are numbers or numpy arrays of the same shape (the simulator prices many iterations at once).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..catalog import resolve_hardware
from ..collectives import p2p_s
from ..errors import InputError
from ..estimator import ALLOCATOR_SLACK, CUDA_RUNTIME_BYTES
from ..models import load_model
from ..collectives import group_link
from ..layers import expected_experts
from ..limits import check_positions  # noqa: F401 - re-exported for serving callers
from .engines import EngineProfile
from .measured_ops import op_times
from .quant import WEIGHT_FORMATS, ServingPrecision, serving_precision
from .shape import Shape, model_shape  # noqa: F401 - re-exported for serving callers


@dataclass(frozen=True)
class Layout:
    """Devices of one model replica: ``tp`` tensor-parallel x ``pp`` pipeline stages; ``ep`` expert-parallel
    ways for MoE layers. ``attention_dp``: attention runs data-parallel over the ``ep`` ranks (each rank its own
    sequences and KV, full attention weights) and tokens reach their experts by all-to-all (DeepSeek/SGLang
    "DP attention + EP"); otherwise experts are split over ``ep`` ranks inside the TP group and the MLP
    all-reduce combines them (TensorRT-LLM moe_ep_size x moe_tp_size = tp)."""

    tp: int = 1
    pp: int = 1
    ep: int = 1
    attention_dp: bool = False

    @property
    def devices(self) -> int:
        return (self.ep if self.attention_dp else self.tp) * self.pp


def check_serving_layout(shape: Shape, lay: Layout) -> None:
    for name, v in (("tp", lay.tp), ("pp", lay.pp), ("ep", lay.ep)):
        if not isinstance(v, int) or isinstance(v, bool) or not 1 <= v <= 1024:
            raise InputError(f"layout.{name}", f"must be a whole number from 1 to 1024, got {v!r}")
    if shape.heads % lay.tp:
        raise InputError("layout.tp", f"must divide the {shape.heads} attention heads, got {lay.tp}")
    if lay.pp > shape.layers:
        raise InputError("layout.pp", f"must be at most the {shape.layers} layers, got {lay.pp}")
    if lay.ep > 1:
        if not shape.num_experts:
            raise InputError("layout.ep", "expert parallelism needs a mixture-of-experts model")
        if shape.num_experts % lay.ep:
            raise InputError("layout.ep", f"must divide the {shape.num_experts} experts, got {lay.ep}")
        if lay.attention_dp and lay.tp != 1:
            raise InputError("layout.tp", "attention data parallelism runs tp = 1 per rank; set ep to the ranks")
        if not lay.attention_dp and lay.tp % lay.ep:
            raise InputError("layout.ep", f"must divide tp = {lay.tp} (experts split inside the TP group), or set "
                                          "attention_dp")
    elif lay.attention_dp:
        raise InputError("layout.attention_dp", "needs ep > 1")


class StepModel:
    """Iteration time and memory of one engine on one device of a replica (the slowest pipeline stage)."""

    def __init__(self, model, hardware, *, precision: str = "bf16", kv_cache_precision: str | None = None,
                 engine: EngineProfile, layout: Layout | None = None, ops=None, speculation=None):
        self.speculation = speculation
        self.spec = load_model(model)
        self.hw = resolve_hardware(hardware)
        self.shape = s = model_shape(self.spec)
        self.engine = engine
        self.layout = lay = layout or Layout()
        check_serving_layout(s, lay)
        self.prec: ServingPrecision = serving_precision(precision, kv_cache_precision, self.hw)
        self.ops = ops or op_times(self.hw, engine, self.prec)
        hw, p, e = self.hw, self.prec, engine
        tp = 1 if lay.attention_dp else lay.tp
        self.tp = tp
        L = s.layers
        self.stage_layers = Ls = math.ceil(L / lay.pp)
        frac = Ls / L
        # layer kinds on the slowest stage, in proportion (a hybrid's stage holds its share of each kind)
        self.attn_stage_layers = Ls if s.n_attn_layers == L else s.n_attn_layers * frac
        self.moe_stage_layers = Ls if s.n_moe_layers == L else s.n_moe_layers * frac
        self.ssm_stage_layers = s.ssm_layers * frac
        # engines that honour a sliding window cap those layers' attention and cache at it; TensorRT-LLM attends
        # over everything unless max_attention_window is set (trtllm-bench does not set it)
        self.window = s.window if e.sliding_window else 0
        self.window_layers = s.window_layers * frac if self.window else 0.0
        self.full_layers = self.attn_stage_layers - self.window_layers
        kv_ways = min(tp, max(s.kv_split_ways, 1))  # the cache splits over at most kv_split ranks, then replicates
        kv_loc = max(s.kv_heads / tp, 1.0) if tp > 1 else s.kv_heads  # KV heads replicate when tp > KV heads
        self.heads_local = s.heads / tp
        # attention FLOPs per (query row, key position) per layer on this device: 4 (H / tp) d, or MLA's forms
        self.decode_flops_pos = s.attn_decode_flops / tp if s.attn_decode_flops else 4.0 * self.heads_local * s.head_dim
        self.prefill_flops_pos = (s.attn_prefill_flops / tp if s.attn_prefill_flops else
                                  4.0 * self.heads_local * s.head_dim)
        self.kv_layer_bytes = s.kv_token_elems / kv_ways * p.kv_bytes  # K and V (or MLA's latent), one token, layer
        self.ssm_seq_bytes = self.ssm_stage_layers * s.ssm_state_elems / tp * (s.ssm_state_bytes or p.kv_bytes)
        # dense GEMMs per device per stage: column-parallel split n, row-parallel split k, replicated whole;
        # k/v replicate when tp > KV heads
        self.local_gemms, self.local_gemm_layers = [], []
        for i, (name, n, k, col) in enumerate(s.gemms):
            if col is None or name == "router":
                self.local_gemms.append((name, n, k))
            elif name in ("k", "v", "k_proj", "v_proj") and tp > s.kv_heads:
                self.local_gemms.append((name, kv_loc * s.head_dim, k))
            elif name == "qkv" and tp > s.kv_heads:
                self.local_gemms.append((name, (s.heads / tp + 2 * kv_loc) * s.head_dim, k))
            else:
                self.local_gemms.append((name, n / tp if col else n, k if col else k / tp))
            self.local_gemm_layers.append(Ls if not s.gemm_layers else s.layers_of(i) * frac)
        self.dense_params = sum(c * n * k for c, (_, n, k) in zip(self.local_gemm_layers, self.local_gemms))
        self.dense_io = sum(c * (n + k) for c, (_, n, k) in zip(self.local_gemm_layers, self.local_gemms))
        # experts: E / ep per device, each sliced by moe_tp = tp / ep (attention_dp: whole experts)
        self.moe_tp = 1 if lay.attention_dp else max(tp // lay.ep, 1)
        self.experts_local = s.num_experts / lay.ep if s.num_experts else 0.0
        self.expert_params_local = s.expert_params / self.moe_tp if s.num_experts else 0.0
        # experts a checkpoint ships quantized (gpt-oss MXFP4) stay so under a wider precision (as the estimator)
        fixed = WEIGHT_FORMATS[s.expert_format].bytes_per_weight if s.expert_format in WEIGHT_FORMATS else p.weight_bytes
        self.expert_weight_bytes = min(p.weight_bytes, fixed)
        self.lm_params = s.lm_head_params / tp  # vocab-parallel LM head on the last stage
        f_loc = (s.top_k * s.ffn if s.num_experts else s.ffn) / tp
        self.ew_bytes_token = Ls * (10 * s.hidden + 3 * f_loc + 2 * (s.heads + s.kv_heads) * s.head_dim / tp) * \
            p.act_bytes * e.elementwise_traffic
        # rates
        self.mm_rate = hw.peak_flops(p.compute_dtype) * e.matmul_efficiency(p.compute_dtype)
        self.mm16_rate = hw.peak_flops("fp32" if p.weights == "fp32" else "bf16") * e.matmul
        self.attn_rate = hw.peak_flops(p.attention_dtype) * e.attention
        self.byte_rate = hw.memory_bandwidth_bytes_per_s * e.bandwidth
        self.link = group_link(hw, 1, lay.ep if lay.attention_dp else tp)
        self.pp_link = group_link(hw, tp, lay.pp)
        self.eager = not e.cuda_graphs and e.per_op_overhead_s > 0
        self.eager_ops = s.eager_ops * frac
        self.roofline = self.ops.name == "roofline"  # measured tables are asked per GEMM shape

    # ---- memory --------------------------------------------------------------------------------------------
    @property
    def weights_bytes(self) -> float:
        """Weights on the most loaded device: its stage's layers (quantized matmuls, 16-bit router) + experts +
        embedding / LM head / norms in 16 bits, split by tp (embedding and LM head are vocab-parallel)."""
        s, p = self.shape, self.prec
        router = self.moe_stage_layers * s.num_experts * s.hidden
        experts = self.moe_stage_layers * self.experts_local * self.expert_params_local
        lm = 0.0 if s.tied else s.lm_head_params
        other = s.other_params + lm if self.layout.pp == 1 else max(s.other_params, lm)
        if self.expert_weight_bytes == p.weight_bytes:
            quantized = (self.dense_params - router + experts) * p.weight_bytes
        else:
            quantized = (self.dense_params - router) * p.weight_bytes + experts * self.expert_weight_bytes
        return quantized + router * p.dense_bytes + other / self.tp * p.dense_bytes

    def activation_bytes(self, tokens: float, logits_rows: float) -> float:
        """Peak activation workspace of one iteration of ``tokens`` rows: hidden states, q/k/v, the MLP's
        widest tensor, and fp32 logits of ``logits_rows`` sampled rows."""
        s, p = self.shape, self.prec
        f_loc = (s.top_k * s.ffn if s.num_experts else s.ffn) / self.tp
        per_tok = (4 * s.hidden + (s.heads + 2 * s.kv_heads) * s.head_dim / self.tp + 2 * f_loc) * p.act_bytes
        return tokens * per_tok + logits_rows * s.vocab / self.tp * 4.0

    @property
    def runtime_bytes(self) -> float:
        gpu = getattr(self.hw, "kind", "gpu") != "cpu"
        return (CUDA_RUNTIME_BYTES if gpu else 0.0) + self.engine.graph_pool_bytes

    @property
    def engine_activation_bytes(self) -> float:
        e = self.engine
        rows = min(e.max_num_batched_tokens, 65536)
        return self.activation_bytes(rows, min(e.max_num_seqs, rows))

    @property
    def kv_pool_bytes(self) -> float:
        """KV-cache pool of a paged engine (0 or less: the model does not fit). A draft model's weights come out
        of it (speculative decoding)."""
        e, cap = self.engine, float(self.hw.memory_bytes)
        used = self.weights_bytes + self.engine_activation_bytes + self.runtime_bytes
        sp = self.speculation
        if sp is not None and sp.draft is not None:
            used += sp.draft.weights_bytes
        if e.kv_fraction_of == "total":
            return e.kv_memory_fraction * cap - used
        if e.kv_fraction_of == "free":
            return e.kv_memory_fraction * (cap - used)
        return cap - used

    def kv_bytes(self, tokens):
        """KV bytes of one sequence of ``tokens`` on this device (windowed layers keep the last ``window``; a
        draft model keeps its own cache of the same tokens)."""
        w = self.window
        win = np.minimum(tokens, w) if w else tokens
        own = self.kv_layer_bytes * (self.full_layers * tokens + self.window_layers * win) + self.ssm_seq_bytes
        sp = self.speculation
        return own + (sp.draft.kv_bytes(tokens) if sp is not None and sp.draft is not None else 0.0)

    def request_kv_bytes(self, tokens) -> float:
        """KV a request holds at ``tokens`` tokens, rounded up to whole blocks."""
        b = self.engine.block_size
        if b > 1:
            tokens = math.ceil(tokens / b) * b
        return float(self.kv_bytes(tokens))

    @property
    def kv_bytes_per_token(self) -> float:
        """All layers of the stage, one token (no window), the draft model's cache included."""
        sp = self.speculation
        extra = sp.draft.kv_bytes_per_token if sp is not None and sp.draft is not None else 0.0
        return self.kv_layer_bytes * self.attn_stage_layers + extra

    @property
    def tokens_per_step(self) -> float:
        """Output tokens a decoding sequence gains per iteration: 1, or speculative decoding's expectation."""
        return self.speculation.tokens_per_step if self.speculation is not None else 1.0

    def static_device_bytes(self, batch: int, prompt: int, generate: int) -> float:
        """Device memory of a static batch: weights, the batch's cache at prompt + generate, the prefill's
        activations, runtime (+ allocator slack for eager loops)."""
        peak = self.weights_bytes + batch * self.kv_bytes(prompt + generate) + \
            self.activation_bytes(batch * prompt, batch)
        slack = ALLOCATOR_SLACK * peak if self.engine.kv_fraction_of == "none" else 0.0
        return peak + slack + self.runtime_bytes

    # ---- time ----------------------------------------------------------------------------------------------
    def iteration_s(self, n_dec=0.0, ctx=0.0, pre_tok=0.0, pre_attn=0.0, pre_kv=0.0, n_logits=None, n_seqs=None,
                    ctx_win=None, pre_attn_win=None):
        """Seconds of one iteration (see ``_iteration_s``). Under speculative decoding every decoding sequence
        verifies k + 1 tokens in the target pass (k + 1 GEMM rows and attention queries over the same KV) after
        k draft steps (the draft model's own iterations, or ``draft_fraction`` of a plain decode iteration)."""
        sp = self.speculation
        if sp is None:
            return self._iteration_s(n_dec, ctx, pre_tok, pre_attn, pre_kv, n_logits, n_seqs, ctx_win, pre_attn_win)
        kk = sp.k + 1
        t = self._iteration_s(n_dec, ctx, pre_tok, pre_attn, pre_kv, n_logits, n_seqs, ctx_win, pre_attn_win,
                              rows_per_decode=kk)
        if sp.draft is not None:
            draft = sp.draft.iteration_s(n_dec=n_dec, ctx=ctx, n_seqs=n_seqs)
        else:
            draft = sp.draft_fraction * self._iteration_s(n_dec, ctx, n_seqs=n_seqs, ctx_win=ctx_win)
        arr = isinstance(n_dec, np.ndarray)
        has_dec = (n_dec > 0).astype(float) if arr else float(n_dec > 0)
        return t + sp.k * draft * has_dec

    def _iteration_s(self, n_dec=0.0, ctx=0.0, pre_tok=0.0, pre_attn=0.0, pre_kv=0.0, n_logits=None, n_seqs=None,
                     ctx_win=None, pre_attn_win=None, rows_per_decode: int = 1):
        """Seconds of one iteration on the slowest stage.

        n_dec: decode rows; ctx: sum of their context lengths (KV positions read); pre_tok: prefill rows;
        pre_attn: sum over prefill chunks of c x p + c^2 / 2 (p = tokens before the chunk); pre_kv: sum over
        chunks of p + c (KV positions a chunk reads); n_logits: sampled rows (default n_dec); n_seqs: sequences
        in the iteration (default n_dec); ctx_win / pre_attn_win: the same sums with every context capped at
        the sliding window (default: the uncapped sums)."""
        arr = isinstance(n_dec, np.ndarray) or isinstance(ctx, np.ndarray) or isinstance(pre_tok, np.ndarray)
        mx = np.maximum if arr else max
        s, lay = self.shape, self.layout
        T = n_dec * rows_per_decode + pre_tok
        if n_logits is None:
            n_logits = n_dec * rows_per_decode
        if n_seqs is None:
            n_seqs = n_dec
        if ctx_win is None:
            ctx_win = ctx
        if pre_attn_win is None:
            pre_attn_win = pre_attn
        if not self.roofline:
            t = self.ops.device_s(self, T=T, n_dec=n_dec, ctx=ctx, pre_tok=pre_tok, pre_attn=pre_attn, pre_kv=pre_kv,
                                  n_logits=n_logits, ctx_win=ctx_win, pre_attn_win=pre_attn_win,
                                  rows_per_decode=rows_per_decode)
            return self._add_host_s(t, n_dec, n_seqs, arr, mx)
        br = self.byte_rate
        p = self.prec
        dense = mx(2.0 * T * self.dense_params / self.mm_rate,
                   (self.dense_params * p.weight_bytes + T * self.dense_io * p.act_bytes) / br)
        lm = mx(2.0 * n_logits * self.lm_params / self.mm16_rate,
                (self.lm_params * p.dense_bytes + n_logits * s.vocab / self.tp * 4.0) / br)
        t = dense + lm
        if s.num_experts:
            t = t + self.moe_stage_layers * self.moe_roofline_s(T, mx)
        # attention
        Lf, Lw = self.full_layers, self.window_layers
        dec_pos = Lf * ctx + Lw * ctx_win
        t_dec = self.decode_attention_roofline_s(dec_pos, rows_per_decode, mx)
        pre_pos = Lf * pre_attn + Lw * pre_attn_win
        t_pre = self.prefill_attention_roofline_s(pre_pos, self.attn_stage_layers * pre_kv, mx)
        t_dec, t_pre = t_dec + self.ssm_decode_s(n_dec), t_pre + self.ssm_prefill_s(pre_tok)
        t = t + t_dec + t_pre + T * self.ew_bytes_token / br
        # collectives
        if self.tp > 1:
            t = t + 2 * self.stage_layers * self.ops.allreduce_s(T * s.hidden * p.act_bytes, self.tp, self.link)
        if lay.ep > 1 and lay.attention_dp:
            t = t + 2 * self.stage_layers * self.ops.alltoall_s(T * s.top_k * s.hidden * p.act_bytes, lay.ep,
                                                                self.link)
        if lay.pp > 1:
            t = t + p2p_s(1.0, self.pp_link) + T * s.hidden * p.act_bytes / self.pp_link.bandwidth_bytes_per_s
        return self._add_host_s(t, n_dec, n_seqs, arr, mx)

    def _add_host_s(self, t, n_dec, n_seqs, arr, mx):
        """Device time ``t`` plus host time: CUDA-graph engines add it; eager loops overlap it (max)."""
        e = self.engine
        if self.eager:
            host = e.per_op_overhead_s * self.eager_ops
            t = mx(t, host) + e.iteration_overhead_s
            if e.decode_loop_overhead_s:
                t = t + e.decode_loop_overhead_s * (n_dec > 0 if not arr else (n_dec > 0).astype(float))
        else:
            t = t + e.iteration_overhead_s + e.layer_overhead_s * self.stage_layers + e.per_sequence_overhead_s * n_seqs
        return t

    # ---- roofline formulas of the op classes (also the measured path's fallback) ---------------------------
    def moe_roofline_s(self, T, mx=max):
        """One MoE layer's experts: every rank's experts see the tokens of the whole group (the TP group's T, or
        the T of each of the ep attention-DP ranks after the all-to-all); balanced routing gives a rank
        T k / ways rows; the weights of the distinct experts those tokens touch are read once."""
        s, lay = self.shape, self.layout
        routed = T * lay.ep if lay.attention_dp else T
        ways = lay.ep if lay.attention_dp else self.tp
        touched = expected_experts(s.num_experts, s.top_k, routed) / lay.ep
        return mx(2.0 * routed * s.top_k * s.expert_params / (ways * self.mm_rate),
                  touched * self.expert_params_local * self.expert_weight_bytes / self.byte_rate)

    def decode_attention_roofline_s(self, positions, rows_per_decode=1, mx=max):
        """Decode attention over ``positions`` cached (layer x token) positions: 4 (H / tp) d FLOPs per position
        and query row (MLA: its absorbed form, serving/shape.py) vs reading each position's K and V (or latent)
        once (FlashDecoding / paged attention)."""
        return mx(self.decode_flops_pos * positions * rows_per_decode / self.attn_rate,
                  positions * self.kv_layer_bytes / self.byte_rate)

    def prefill_attention_roofline_s(self, pair_positions, kv_positions, mx=max):
        """Prefill attention: 4 (H / tp) d FLOPs per (query, key) pair of the causal chunks vs reading the prior
        K and V of ``kv_positions`` (layer x token) positions."""
        return mx(self.prefill_flops_pos * pair_positions / self.attn_rate,
                  kv_positions * self.kv_layer_bytes / self.byte_rate)

    def ssm_decode_s(self, n_dec):
        """Mamba-2 layers of a decode step: each decoding sequence reads and writes its state (memory-bound)."""
        return 2.0 * n_dec * self.ssm_seq_bytes / self.byte_rate if self.shape.ssm_layers else 0.0 * n_dec

    def ssm_prefill_s(self, pre_tok):
        """Mamba-2 layers of a prefill: the chunked SSD scan and conv FLOPs per token (layers.ssd_scan)."""
        s = self.shape
        return pre_tok * self.ssm_stage_layers * s.ssm_flops_token / self.tp / self.attn_rate if s.ssm_layers \
            else 0.0 * pre_tok

    def to_dict(self) -> dict:
        return {"engine": self.engine.name, "precision": self.prec.to_dict(), "tp": self.layout.tp,
                "pp": self.layout.pp, "ep": self.layout.ep, "attention_dp": self.layout.attention_dp,
                "weights_bytes_per_device": self.weights_bytes, "kv_pool_bytes_per_device": self.kv_pool_bytes,
                "kv_bytes_per_token_per_device": self.kv_bytes_per_token, "time_source": self.ops.name}


__all__ = ["StepModel", "Layout", "Shape", "model_shape", "check_positions"]
