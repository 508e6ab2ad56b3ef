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

from dataclasses import dataclass


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
    host_ops: float = 0.0  # Python-level torch calls per instance in eager mode; 0 = costmodel.perf.HOST_OPS[kind]


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
