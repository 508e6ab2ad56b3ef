"""The per-layer ledger: one ``Layer`` record per module, and the small formulas that fill it.

Conventions (docs/formulas.md states each formula with its source):
- FLOPs count 2 per multiply-add, as torch.utils.flop_counter.FlopCounterMode does.
  MACs (what fvcore calls "flops") are FLOPs / 2.
- Only matmul-class work is counted (linear, conv, attention scores, RNN gates):
  norms, activations, softmax and adds are memory-bound and below 1% of the FLOPs.
- ``activation_bytes`` are the bytes autograd saves for backward in eager PyTorch
  (what ``torch.autograd.graph.saved_tensors_hooks`` sees), per instance.
- A record stands for ``count`` identical instances (the repeated blocks of a network),
  so a 80-layer model has a ledger of ~15 rows, not 800.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Ctx:
    """Shapes and storage widths one pass of a model sees.

    ``seq`` is the number of new positions per sample (train: sequence length; prefill:
    prompt length; decode: 1); ``kv_len`` the number of positions attended to.
    """

    batch: int
    seq: int
    kv_len: int
    image_size: int
    training: bool
    stream_bytes: float  # residual stream / norm outputs
    compute_bytes: float  # matmul outputs
    kv_bytes: float  # KV-cache element
    autocast: bool
    eager_attention: bool
    dropout: bool  # dropout layers active (training with p > 0)
    kv_layout: str = "engine"  # "engine" | "hf": what a KV / SSM-state cache holds (Workload.kv_cache_layout)

    @property
    def tokens(self) -> int:
        return self.batch * self.seq

    @property
    def matmul_in_bytes(self) -> float:
        """Bytes per element of a saved matmul input that arrives in the stream dtype:
        autocast saves its own 16-bit cast copy; without autocast it is the stream tensor itself."""
        return self.compute_bytes if self.autocast else self.stream_bytes


@dataclass(frozen=True, slots=True)
class Layer:
    """One module's costs, per instance. All counts are plain numbers in base units."""

    name: str
    kind: str
    count: int = 1
    block: str = ""  # name of the repeated block this row belongs to ("" if none)
    module: str = ""  # short module name used to target LoRA (e.g. "q_proj")
    params: int = 0
    inactive_params: int = 0  # MoE: expert weights a token does not use (params - active)
    bias_params: int = 0
    matmul_params: int = 0  # weights of linear/conv: quantizable, prunable, autocast-cast
    factored_state_elems: int = 0  # Adafactor state elements for this row's params
    forward_flops: float = 0.0
    input_grad_flops: float = 0.0
    weight_grad_flops: float = 0.0
    activation_bytes: float = 0.0  # saved for backward (training), all of it
    weight_input_bytes: float = 0.0  # part of activation_bytes kept only for dW (dropped when frozen)
    shares_input: bool = False  # reads the same input tensor as the row before (k/v after q, up after gate)
    weight_cast_elems: int = 0  # weight elements a matmul reads (autocast makes a 16-bit copy of each)
    working_bytes: float = 0.0  # live while this layer runs forward (inputs + outputs)
    kv_cache_bytes: float = 0.0
    lora_in: int = 0  # LoRA adapter shape for this weight (in, out); 0 when not a linear
    lora_out: int = 0
    lora_tokens: int = 0  # tokens passing through, for adapter FLOPs/activations
    sequential_steps: int = 0  # dependent time steps a recurrent layer runs one after another
    traffic_bytes: float = 0.0  # forward inputs + outputs moved through memory; 0 = working_bytes
    saves_after_kernel: bool = False  # part of activation_bytes is saved after its kernel (a dropout mask on its output)
    host_ops: float = 0.0  # Python-level torch calls per instance in eager mode; 0 = HOST_OPS[kind] (below)
    # MoE routed experts: the weights one pass reads depend on how many distinct experts its tokens pick
    # (expected_experts below; costmodel.perf._row_traffic). 0 on every other row.
    experts: int = 0  # routed experts whose weights this row holds (params = experts x per-expert weights)
    experts_top_k: int = 0  # experts each token is routed to
    routed_tokens: int = 0  # tokens routed through the row in this pass (batch x new positions)
    weight_format: str = ""  # storage fixed by the checkpoint (workload.WEIGHT_FORMAT_BYTES: "mxfp4"); "" = precision's
    # the forward GEMM as (m, n, k): Y[m, n] = X[m, k] W[k, n] (linear: tokens, d_out, d_in; conv: implicit GEMM
    # b*h_out*w_out, c_out, c_in/groups*k*k; MoE: tokens per expert, ffn, hidden); () when the row is no GEMM.
    # Backward: dX is (m, k, n), dW is (k, n, m). Shape-dependent GEMM efficiency (costmodel.perf) reads it.
    gemm_mnk: tuple = ()
    state_bytes: float = 0.0  # part of kv_cache_bytes that does not grow with positions (SSM / conv state)
    output_bytes: float = 0.0  # the forward output of a matmul or attention core (what per-op checkpointing saves)


_LAYER_FIELDS = tuple(Layer.__slots__)


def _evolve(row: Layer, **changes) -> Layer:
    """``dataclasses.replace(row, **changes)`` for a ``Layer`` (no __post_init__ to run), field by field: about
    4x faster, and a ResNet-50 ledger makes one per convolution and linear layer."""
    new = object.__new__(Layer)
    for name in _LAYER_FIELDS:
        object.__setattr__(new, name, changes.pop(name) if name in changes else getattr(row, name))
    if changes:
        raise TypeError(f"Layer has no field(s) {', '.join(changes)}")
    return new


def linear(name: str, tokens: int, d_in: int, d_out: int, *, bias: bool, save_input_bytes: float,
           out_bytes: float, module: str = "", count: int = 1, block: str = "", extra_saved: float = 0.0,
           tied: bool = False, shares_input: bool = False) -> Layer:
    """y = x W^T + b over ``tokens`` rows.

    FLOPs: forward 2*t*d_in*d_out; backward: the same again for dX and for dW.
    Saved: the input (``save_input_bytes`` per element, 0 when another op already saved
    the same tensor); autograd keeps it only to compute dW, so a frozen weight saves nothing.
    ``tied``: the weight is shared with an embedding and not counted again.
    """
    w = 0 if tied else d_in * d_out
    b = d_out if bias else 0
    mm = 2.0 * tokens * d_in * d_out
    return Layer(
        name=name, kind="linear", count=count, block=block, module=module or name.rsplit(".", 1)[-1],
        params=w + b, bias_params=b, matmul_params=w,
        factored_state_elems=(0 if tied else d_in + d_out) + b,
        forward_flops=mm, input_grad_flops=mm, weight_grad_flops=mm,
        activation_bytes=tokens * d_in * save_input_bytes + extra_saved,
        weight_input_bytes=tokens * d_in * save_input_bytes, shares_input=shares_input,
        weight_cast_elems=d_in * d_out,
        working_bytes=tokens * (d_in * out_bytes + d_out * out_bytes),
        lora_in=d_in, lora_out=d_out, lora_tokens=tokens, saves_after_kernel=extra_saved > 0,
        gemm_mnk=(tokens, d_out, d_in), output_bytes=tokens * d_out * out_bytes,
    )


def embedding(name: str, tokens: int, num: int, dim: int, *, out_bytes: float, count: int = 1,
              block: str = "", kind: str = "embedding") -> Layer:
    """Lookup table of ``num`` x ``dim``. No FLOPs; saves the int64 indices (8 bytes each)."""
    return Layer(
        name=name, kind=kind, count=count, block=block, module=name.rsplit(".", 1)[-1],
        params=num * dim, factored_state_elems=num + dim,
        activation_bytes=tokens * 8.0, working_bytes=tokens * dim * out_bytes,
    )


def norm(name: str, tokens: int, dim: int, *, bias: bool, saved_bytes: float, out_bytes: float,
         count: int = 1, block: str = "", kind: str = "layernorm") -> Layer:
    """LayerNorm (weight+bias) or RMSNorm (weight). ``saved_bytes`` is what its
    implementation saves for backward (the input, the normalised tensor, fp32 statistics)."""
    return Layer(
        name=name, kind=kind, count=count, block=block, module=name.rsplit(".", 1)[-1],
        params=dim * (2 if bias else 1), bias_params=dim if bias else 0, factored_state_elems=dim * (2 if bias else 1),
        activation_bytes=saved_bytes, working_bytes=tokens * dim * out_bytes * 2,
    )


def elementwise(name: str, kind: str, *, saved_bytes: float, working_bytes: float = 0.0, count: int = 1,
                block: str = "", host_ops: float = 0.0, traffic_bytes: float = 0.0) -> Layer:
    """Activation functions, dropout, residual adds: no counted FLOPs, only saved tensors."""
    return Layer(name=name, kind=kind, count=count, block=block, module=name.rsplit(".", 1)[-1],
                 activation_bytes=saved_bytes, working_bytes=working_bytes, host_ops=host_ops,
                 traffic_bytes=traffic_bytes)


# ---- eager-execution facts of the rows (read by the time model, costmodel/perf.py) ----------
# Memory passes of an eager non-matmul row, relative to max(its inputs+outputs, what it saves).
# They follow how the reference implementations are written (one kernel per Python op):
# HF NewGELUActivation 0.5*x*(1+tanh(sqrt(2/pi)*(x+0.044715*x**3))) runs ~8 elementwise kernels;
# HF LlamaRMSNorm (to fp32, pow, mean, rsqrt, mul, cast, mul weight) ~5; HF's causal-LM loss
# (upcast logits, log_softmax, nll) ~3; fused kernels (LayerNorm, BatchNorm, ReLU, SiLU*mul,
# dropout, pooling) 1.
EAGER_PASSES = {"gelu_new": 6.0, "rmsnorm": 4.0, "cross_entropy": 3.0}

# Python-level torch calls per row instance in the eager reference implementations (each pays the
# host overhead ``Efficiency.overhead_s``); kinds not listed make one call (nn.Linear, Conv2d,
# BatchNorm2d, ReLU, LayerNorm, Embedding, Dropout, nn.GELU, pooling, a cuDNN RNN).
# HF NewGELUActivation: pow, mul, add, mul, tanh, add, mul, mul = 8; HF LlamaRMSNorm: to(fp32), pow,
# mean, add, rsqrt, mul, to(dtype), mul weight = 8; HF causal-LM loss: shift
# (2 slices, 2 contiguous), view, float, cross_entropy = 7; torchvision's avgpool + flatten = 2.
# Attention rows carry their own count (ATTENTION_HOST_OPS below); a gated MLP's
# act(gate) * up row adds the multiply.
HOST_OPS = {"gelu_new": 8.0, "rmsnorm": 8.0, "cross_entropy": 7.0,
            "adaptive_avgpool2d": 2.0}


# Python-level torch calls of one attention block in eager HF code, besides its projections:
# q/k/v view+transpose (6), the SDPA call and its layout fix-ups (~4), output transpose/reshape (2),
# the block's two residual adds (2). Rotary (apply_rotary_pos_emb: q*cos, rotate_half = 2 slices,
# neg, cat; *sin, add, for q and k) adds ~14. Used by the host-overhead term of the time model.
ATTENTION_HOST_OPS = 14.0
ROTARY_HOST_OPS = 14.0


def attention_core(name: str, ctx: Ctx, *, heads: int, kv_heads: int, head_dim: int, window: int = 0,
                   saved_bytes: float, count: int = 1, block: str = "", cache: bool = True,
                   v_head_dim: int | None = None, rotary: bool = False) -> Layer:
    """softmax(Q K^T / sqrt(d)) V for ``heads`` query heads.

    FLOPs forward: 2*b*h*s*kv*d (scores) + 2*b*h*s*kv*d_v (weighted sum), kv = keys attended
    (capped by a sliding window). Causal masking is not subtracted: eager and
    FlopCounterMode count the full square. Backward: 2x forward (dQ, dK from the scores,
    dP and dV from the weighted sum; FlopCounterMode's sdpa backward formula).
    KV cache (inference): 2 * b * kv_heads * d * positions kept * kv_bytes.
    """
    dv = v_head_dim or head_dim
    kv = min(ctx.kv_len, window) if window else ctx.kv_len
    fwd = 2.0 * ctx.batch * heads * ctx.seq * kv * (head_dim + dv)
    kv_cache = ctx.batch * kv_heads * kv * (head_dim + dv) * ctx.kv_bytes if cache else 0.0
    scores = ctx.batch * heads * ctx.seq * kv * 4.0 if ctx.eager_attention else 0.0
    return Layer(
        name=name, kind="attention", count=count, block=block, module=name.rsplit(".", 1)[-1],
        forward_flops=fwd, input_grad_flops=2.0 * fwd,
        activation_bytes=saved_bytes, kv_cache_bytes=kv_cache,
        working_bytes=scores + ctx.tokens * heads * dv * ctx.compute_bytes,
        host_ops=ATTENTION_HOST_OPS + (ROTARY_HOST_OPS if rotary else 0.0),
        output_bytes=ctx.tokens * heads * (dv * ctx.compute_bytes + 4.0),  # output + fp32 logsumexp per row
    )


def conv2d(name: str, batch: int, c_in: int, c_out: int, kernel: int, h_out: int, w_out: int, *,
           bias: bool, save_input_elems: int, save_bytes: float, out_bytes: float, groups: int = 1,
           count: int = 1, block: str = "", stride: int = 1) -> Layer:
    """2-D convolution. FLOPs forward: 2 * b * h_out * w_out * c_out * (c_in/groups) * k * k
    (FlopCounterMode's conv formula); backward: the same for dX and for dW.
    Saved: the input (``save_input_elems`` elements)."""
    w = c_out * (c_in // groups) * kernel * kernel
    b = c_out if bias else 0
    mm = 2.0 * batch * h_out * w_out * c_out * (c_in // groups) * kernel * kernel
    return Layer(
        name=name, kind="conv2d", count=count, block=block, module=name.rsplit(".", 1)[-1],
        params=w + b, bias_params=b, matmul_params=w, factored_state_elems=c_out + (c_in // groups) * kernel * kernel + b,
        forward_flops=mm, input_grad_flops=mm, weight_grad_flops=mm,
        activation_bytes=save_input_elems * save_bytes, weight_input_bytes=save_input_elems * save_bytes,
        weight_cast_elems=w,
        working_bytes=save_input_elems * save_bytes + batch * c_out * h_out * w_out * out_bytes,
        gemm_mnk=(batch * h_out * w_out, c_out, (c_in // groups) * kernel * kernel) if groups == 1 else (),
    )


# ---- 2026 families: windows, MoE routing, multi-head latent attention, state-space scans -------------
# docs/families/moe_mla_ssm.md states each formula with its source and the test that checks it.


def cached_positions(ctx: Ctx, window: int = 0) -> int:
    """Positions a KV cache keeps for one layer at context ``ctx.kv_len``.

    Full attention: every position. A sliding-window (Mistral, Gemma 2/3, gpt-oss) or chunked (Llama 4)
    layer: serving engines keep at most ``window`` (vLLM's sliding-window / local-attention block
    tables; rounding up to whole 16-token blocks is ignored); transformers' DynamicSlidingWindowLayer keeps
    the last ``window - 1`` and concatenates the new token at each step (``ctx.kv_layout == "hf"``).
    A chunked layer only needs the current chunk (at most ``window``), so the engine figure is its worst case.
    """
    if not window:
        return ctx.kv_len
    return min(ctx.kv_len, window - 1 if ctx.kv_layout == "hf" else window)


def attended_positions(ctx: Ctx, window: int = 0) -> int:
    """Keys each query's scores are computed against (the FLOP count's ``kv``).

    Fused kernels with a window (flash-attention's ``window_size``) skip keys outside it: min(kv_len, window).
    Eager attention and a decode step read what the cache returns: a prefill or training pass with eager
    attention multiplies against every position (the mask hides the rest, FlopCounterMode counts them);
    a decode step sees the cache plus the new token, min(kv_len, window).
    """
    if not window or (ctx.eager_attention and ctx.seq > 1):
        return ctx.kv_len
    return min(ctx.kv_len, window)


def windowed_attention_core(name: str, ctx: Ctx, *, heads: int, kv_heads: int, head_dim: int, window: int = 0,
                            saved_bytes: float, count: int = 1, block: str = "", rotary: bool = True) -> Layer:
    """``attention_core`` with the window rules of ``attended_positions`` (FLOPs) and ``cached_positions``
    (KV cache: 2 * b * kv_heads * d * positions kept * kv_bytes)."""
    kv = attended_positions(ctx, window)
    row = attention_core(name, replace(ctx, kv_len=kv), heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                         saved_bytes=saved_bytes, count=count, block=block, rotary=rotary)
    return replace(row, kv_cache_bytes=2.0 * ctx.batch * kv_heads * head_dim * cached_positions(ctx, window)
                   * ctx.kv_bytes)


def mla_attention_core(name: str, ctx: Ctx, *, heads: int, kv_lora_rank: int, qk_nope_head_dim: int,
                       qk_rope_head_dim: int, v_head_dim: int, saved_bytes: float, count: int = 1,
                       block: str = "") -> Layer:
    """Multi-head latent attention's core (DeepSeek-V2, arXiv:2405.04434, section 2.1; V3 the same).

    Cache (both layouts): the compressed latent c_KV (kv_lora_rank) and the shared decoupled RoPE key
    (qk_rope_head_dim) per position: (kv_lora_rank + qk_rope_head_dim) * kv_bytes per token per layer
    (DeepSeek-V3: 512 + 64 = 576 values). vLLM, SGLang, TensorRT-LLM and transformers >= 5 (its
    DeepseekV3Attention caches the latent, then re-expands it with kv_b_proj) all keep this.
    FLOPs, expanded form (training, prefill, and every transformers step): per head, scores over
    qk_nope + qk_rope dims and a weighted sum over v dims, as ``attention_core``.
    FLOPs, absorbed form (engine decode, ``ctx.seq == 1`` with ``kv_layout == "engine"``): W_UK is folded into
    the query and W_UV into the output, so scores run over kv_lora_rank + qk_rope dims and the weighted sum
    over kv_lora_rank dims of the shared latent: 2*b*H*s*kv*(2*kv_lora + rope).
    """
    absorbed = ctx.kv_layout == "engine" and ctx.seq == 1 and not ctx.training
    kv = ctx.kv_len
    if absorbed:
        fwd = 2.0 * ctx.batch * heads * ctx.seq * kv * (2 * kv_lora_rank + qk_rope_head_dim)
    else:
        fwd = 2.0 * ctx.batch * heads * ctx.seq * kv * (qk_nope_head_dim + qk_rope_head_dim + v_head_dim)
    scores = ctx.batch * heads * ctx.seq * kv * 4.0 if ctx.eager_attention else 0.0
    return Layer(
        name=name, kind="attention", count=count, block=block, module=name.rsplit(".", 1)[-1],
        forward_flops=fwd, input_grad_flops=2.0 * fwd, activation_bytes=saved_bytes,
        kv_cache_bytes=ctx.batch * kv * (kv_lora_rank + qk_rope_head_dim) * ctx.kv_bytes,
        working_bytes=scores + ctx.tokens * heads * v_head_dim * ctx.compute_bytes,
        host_ops=ATTENTION_HOST_OPS + ROTARY_HOST_OPS,
        output_bytes=ctx.tokens * heads * (v_head_dim * ctx.compute_bytes + 4.0),
    )


# Python-level torch calls of an eager MoE block (transformers 5, whose experts default to the grouped_mm
# implementation, integrations/moe.py grouped_mm_experts_forward): routing linear, softmax, topk, normalise,
# cast ~ 8; then a fixed sequence whatever the number of experts hit: sort, gather the tokens and weights,
# histc, cumsum, two grouped_mm with their transposes, gate chunk/act/mul, weight, un-permute, reshape-sum,
# cast ~ 22. (transformers 4's per-expert Python loop made ~9 calls per hit expert; Llama 4's experts are one
# bmm over all experts, also a fixed sequence.) Compiled or fused-MoE engines make few launches.
MOE_ROUTING_HOST_OPS = 8.0
MOE_EXPERT_HOST_OPS = 22.0


def expected_experts(experts: int, top_k: int, tokens: int) -> float:
    """Expected distinct routed experts that ``tokens`` tokens touch in one MoE layer, each token picking
    ``top_k`` of ``experts`` (uniform, independent routing): E * (1 - (1 - k/E)^T).

    One token: k. Many tokens: all E. A decode step of batch 64 on Mixtral (E = 8, k = 2) touches
    8 * (1 - 0.75^64) = 7.99999... experts, so it streams nearly all expert weights, not 2 of 8.
    ``tokens`` may be a numpy array (the serving simulator asks for every batch at once); 0 tokens touch 0.
    """
    if experts <= 0 or top_k <= 0:
        return 0.0 * tokens
    return experts * (1.0 - (1.0 - min(top_k, experts) / experts) ** tokens)


def moe_experts(name: str, ctx: Ctx, *, hidden: int, ffn: int, experts: int, top_k: int, gated: bool = True,
                bias: bool = False, n_act: int = 1, count: int = 1, block: str = "", weight_format: str = "") -> Layer:
    """The routed experts of one MoE layer (one row: E expert MLPs h -> f -> h).

    Params: E * (3*h*f gated | 2*h*f plain) (+ E * (2f + h | f + h) with expert biases, gpt-oss).
    FLOPs: each token runs k experts: 2 * T*k * (3*h*f | 2*h*f); backward: dX and dW each the same.
    Active params per token: k experts (``inactive_params`` = (E - k) experts). Weight bytes read by a
    pass: ``expected_experts(E, k, T)`` experts (costmodel.perf).
    """
    t = ctx.tokens
    cb, ab = ctx.compute_bytes, ctx.matmul_in_bytes
    per = (3 if gated else 2) * hidden * ffn
    per_bias = ((2 * ffn if gated else ffn) + hidden) if bias else 0
    tk = t * top_k
    mm = 2.0 * tk * per
    saved = tk * (hidden * ab + (4 if gated else 1 + n_act) * ffn * cb + hidden * cb)
    return Layer(
        name=name, kind="moe_experts", count=count, block=block, module="experts",
        params=experts * (per + per_bias), bias_params=experts * per_bias, matmul_params=experts * per,
        factored_state_elems=experts * ((3 if gated else 2) * (hidden + ffn) + per_bias),
        forward_flops=mm, input_grad_flops=mm, weight_grad_flops=mm,
        activation_bytes=saved, working_bytes=tk * (hidden + 3 * ffn) * cb,
        weight_input_bytes=tk * (hidden * ab + ffn * cb), weight_cast_elems=experts * per,
        inactive_params=(experts - top_k) * (per + per_bias),
        experts=experts, experts_top_k=top_k, routed_tokens=t, weight_format=weight_format,
        gemm_mnk=(max(1, round(tk / experts)), ffn, hidden),
        host_ops=MOE_ROUTING_HOST_OPS + MOE_EXPERT_HOST_OPS,
    )


def ssd_scan(name: str, ctx: Ctx, *, heads: int, head_dim: int, state: int, groups: int, chunk: int,
             conv_channels: int, conv_kernel: int, count: int = 1, block: str = "", state_elem_bytes: float = 0.0) -> Layer:
    """Mamba-2's selective state-space scan (SSD; Dao & Gu 2024, arXiv:2405.21060, section 6), chunked as
    transformers' ``mamba2_chunk_scan`` (and the mamba_ssm kernels) run it: the sequence is padded to
    c = ceil(s / Q) chunks of Q = ``chunk`` positions; per sample, with H heads of P dims and state N:
      C B^T within chunks 2*c*Q*Q*H*N, their weights times x 2*c*Q*Q*H*P, chunk states 2*c*Q*H*P*N,
      chunk-to-chunk recurrence 2*(c+1)^2*H*P*N, states to outputs 2*c*Q*H*P*N (FLOPs; backward 2x).
    A decode step (s = 1) updates the state h = exp(dt A) h + dt B x (elementwise, memory-bound: the state
    is read and written) and reads it out, y = C h: 2*H*P*N FLOPs.
    State per sequence (inference cache, no growth with positions): SSM state H*P*N plus the causal
    conv's last inputs conv_channels * (kernel - 1) (engines: vLLM / mamba_ssm, in the KV dtype, or
    ``state_elem_bytes`` for the SSM state when the config asks, e.g. Nemotron-H's mamba_ssm_cache_dtype
    float32) or fp32 SSM state + conv_channels * kernel (transformers' LinearAttentionLayer,
    ``kv_layout == "hf"``).
    """
    b, s = ctx.batch, ctx.seq
    H, P, N = heads, head_dim, state
    if s == 1 and not ctx.training and ctx.kv_len > 1:
        fwd = 2.0 * b * H * P * N
    else:
        c = -(-s // chunk)
        S = c * chunk
        fwd = 2.0 * b * (S * chunk * H * (N + P) + 2 * S * H * P * N + (c + 1) ** 2 * H * P * N)
    if ctx.kv_layout == "hf":
        state_bytes = b * (H * P * N * 4.0 + conv_channels * conv_kernel * ctx.kv_bytes)
    else:
        state_bytes = b * (H * P * N * (state_elem_bytes or ctx.kv_bytes) + conv_channels * (conv_kernel - 1)
                           * ctx.kv_bytes)
    state_traffic = 2.0 * b * H * P * N * 4.0
    return Layer(
        name=name, kind="ssm_scan", count=count, block=block, module=name.rsplit(".", 1)[-1],
        forward_flops=fwd, input_grad_flops=2.0 * fwd,
        activation_bytes=ctx.tokens * H * (2 * P + 2 * N) * 4.0 if ctx.training else 0.0,
        kv_cache_bytes=state_bytes, state_bytes=state_bytes,
        working_bytes=ctx.tokens * H * P * 4.0 + state_traffic, traffic_bytes=ctx.tokens * H * (2 * P + 2 * N) * 4.0
        + state_traffic, host_ops=30.0,
    )


def conv1d_depthwise(name: str, ctx: Ctx, *, channels: int, kernel: int, bias: bool, count: int = 1,
                     block: str = "") -> Layer:
    """Mamba's causal depthwise Conv1d (groups = channels, padding = kernel - 1, output cut to s).

    FLOPs (FlopCounterMode's conv formula on the padded output of s + kernel - 1 positions):
    2 * b * channels * kernel * (s + kernel - 1); backward: dX and dW each the same. A decode step
    (``causal_conv1d_update``) convolves the cached kernel inputs with the new one: 2 * b * channels * kernel
    (transformers' eager update computes 2 output positions: 2x this).
    """
    b, s = ctx.batch, ctx.seq
    decode = s == 1 and not ctx.training and ctx.kv_len > 1
    if decode:
        fwd = 2.0 * b * channels * kernel * (2 if ctx.kv_layout == "hf" else 1)
    else:
        fwd = 2.0 * b * channels * kernel * (s + kernel - 1)
    w = channels * kernel
    return Layer(
        name=name, kind="conv1d", count=count, block=block, module=name.rsplit(".", 1)[-1],
        params=w + (channels if bias else 0), bias_params=channels if bias else 0, matmul_params=w,
        factored_state_elems=channels + kernel + (channels if bias else 0),
        forward_flops=fwd, input_grad_flops=fwd, weight_grad_flops=fwd,
        activation_bytes=ctx.tokens * channels * ctx.matmul_in_bytes, weight_input_bytes=ctx.tokens * channels
        * ctx.matmul_in_bytes, working_bytes=2.0 * ctx.tokens * channels * ctx.compute_bytes,
    )


def pooling(name: str, kind: str, *, in_elems: int, out_elems: int, elem_bytes: float, saved_bytes: float,
            count: int = 1, block: str = "") -> Layer:
    """A pooling window over a feature map or a sequence: max / average pooling (``kind`` "maxpool2d",
    "avgpool2d", "maxpool1d", "avgpool1d") or global pooling ("global_avgpool", "global_maxpool").

    Output side of a window: ``floor((size + 2*padding - pool) / stride) + 1`` (PyTorch MaxPool2d / AvgPool2d
    docs; Keras MaxPooling2D with padding="valid": 26 -> 13 for pool 2). FLOPs: 0, like FlopCounterMode, which
    counts no pooling op (a max or a mean is one compare or add per input element: memory-bound).
    Saved for backward (``saved_bytes``, computed by the caller, in eager PyTorch): max_pool2d_with_indices
    keeps its input and the int64 argmax of each output; avg_pool2d keeps its input; a global average
    (``x.mean(dims)``) keeps nothing; a global max (``amax``) keeps its input and output. Traffic: the input
    read and the output written (``in_elems + out_elems`` elements of ``elem_bytes``)."""
    moved = (in_elems + out_elems) * elem_bytes
    return Layer(name=name, kind=kind, count=count, block=block, module=name.rsplit(".", 1)[-1],
                 activation_bytes=saved_bytes, working_bytes=moved, traffic_bytes=moved)
