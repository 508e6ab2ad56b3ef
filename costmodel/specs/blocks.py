"""Building blocks of the decoders of 2025-2026 (``DecoderSpec``, specs/decoder.py): token mixers
(grouped-query attention with its variants, multi-head latent attention, Mamba-2) and feed-forward parts
(dense MLP, mixture of experts with shared experts), each a frozen record of plain numbers plus the
function that turns it into ledger rows for one pass.

Parameter counts follow the Hugging Face implementations exactly (tests build them on the meta device);
FLOPs follow what those implementations multiply (FlopCounterMode), except where a serving engine does
less and the workload's ``kv_cache_layout`` is "engine" (MLA decode). Saved activations use the
conventions of ``TransformerSpec`` (what eager PyTorch keeps for backward) for the pieces the two share;
the new pieces (latent projections, scan) are estimates named as such in docs/families/moe_mla_ssm.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

from ..layers import (Ctx, Layer, conv1d_depthwise, elementwise, linear, mla_attention_core, moe_experts, norm,
                      ssd_scan, windowed_attention_core)

# tensors of T x ffn an activation saves for backward (TransformerSpec.ACTIVATION_SAVED_TENSORS plus relu2 =
# HF ReLUSquaredActivation: relu saves its output, square its input; gpt-oss's clamped SwiGLU ~5)
SAVED_TENSORS = {"gelu_new": 4, "gelu": 1, "gelu_tanh": 1, "silu": 1, "relu": 1, "quick_gelu": 2, "relu2": 2,
                 "swiglu_oai": 5}


@dataclass(frozen=True)
class Attention:
    """Grouped-query attention (q, k, v, o projections) and its 2025 variants."""

    heads: int
    kv_heads: int
    head_dim: int
    qkv_bias: bool = False
    o_bias: bool = False
    qk_norm: str = ""  # "" | "head": RMSNorm over head_dim (Qwen3, Gemma 3) | "full": over all q / k features
    #                    (OLMoE) | "l2": weightless L2 norm (Llama 4)
    window: int = 0  # sliding window, or the chunk of chunked attention (Llama 4); 0 = full attention
    chunked: bool = False
    sinks: bool = False  # gpt-oss: one learned logit per head joins each softmax (params: heads)
    rope: bool = True  # False: NoPE layer (Llama 4 every 4th) or no positions at all (Nemotron-H)


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention (DeepSeek-V2/V3): q through an optional low-rank pair, K/V from a shared
    latent of kv_lora_rank dims plus one decoupled RoPE key of qk_rope_head_dim dims."""

    heads: int
    q_lora_rank: int  # 0: a plain q_proj (DeepSeek-V2-Lite)
    kv_lora_rank: int
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int
    bias: bool = False  # attention_bias: q_a_proj, kv_a_proj_with_mqa and o_proj


@dataclass(frozen=True)
class Mamba2:
    """Mamba-2 mixer: in_proj -> causal depthwise conv -> SSD scan -> gated RMSNorm -> out_proj."""

    heads: int
    head_dim: int
    state: int
    groups: int
    conv_kernel: int = 4
    chunk: int = 256
    conv_bias: bool = True
    bias: bool = False
    state_bytes: float = 0.0  # engine SSM-state element bytes the config asks for (0: the KV dtype)

    @property
    def inner(self) -> int:
        return self.heads * self.head_dim

    @property
    def conv_channels(self) -> int:
        return self.inner + 2 * self.groups * self.state


@dataclass(frozen=True)
class MLP:
    ffn: int
    gated: bool = True
    bias: bool = False
    activation: str = "silu"


@dataclass(frozen=True)
class MoE:
    """Routed experts (top-k of E) with optional shared experts and a router."""

    experts: int
    top_k: int
    ffn: int
    gated: bool = True
    activation: str = "silu"
    expert_bias: bool = False  # gpt-oss: biases on every expert projection
    router_bias: bool = False  # gpt-oss
    shared_ffn: int = 0  # width of the always-on shared expert MLP (0: none)
    shared_gate: bool = False  # Qwen2-MoE: sigmoid(Linear(h, 1)) scales the shared expert
    weight_format: str = ""  # "mxfp4": the checkpoint stores the expert weights so (gpt-oss)
    latent: int = 0  # Nemotron-H: experts work in a latent of this width (fc1/fc2_latent_proj h <-> latent)
    proj_bias: bool = False  # biases of the shared expert and latent projections (Nemotron-H mlp_bias)


Mixer = Union[Attention, MLA, Mamba2, None]
FFN = Union[MLP, MoE, None]


@dataclass(frozen=True)
class Block:
    """``count`` identical decoder layers. ``norms``: 2 = pre-norm before the mixer and before the FFN;
    4 = Gemma's sandwich (pre and post around each); 1 = one norm before the block's only sub-layer
    (Mamba-2, Nemotron-H)."""

    count: int
    tag: str
    mixer: Mixer = None
    ffn: FFN = None
    norms: int = 2


# ---- rows -------------------------------------------------------------------------------------------


def norm_saved(kind: str, t: int, dim: int, ctx: Ctx) -> float:
    """What a norm saves for backward (TransformerSpec._norm_saved): Llama RMSNorm fp32 input + normalised
    tensor + fp32 rsqrt; Gemma RMSNorm two fp32 tensors + rsqrt."""
    if kind == "gemma_rmsnorm":
        return t * dim * 8.0 + 4.0 * t
    return t * dim * (4.0 + ctx.stream_bytes) + 4.0 * t


def norm_row(name: str, ctx: Ctx, dim: int, kind: str, count: int, block: str, tokens: int = 0) -> Layer:
    t = tokens or ctx.tokens
    return norm(name, t, dim, bias=False, saved_bytes=norm_saved(kind, t, dim, ctx), out_bytes=ctx.stream_bytes,
                count=count, block=block, kind="rmsnorm")


def _core_saved(ctx: Ctx, heads: int, q_dim: int, kv_dim: int, kv_len: int, v_dim: int) -> float:
    """Attention core's saved tensors, as TransformerSpec: eager keeps q, repeated k and v, the fp32 softmax
    and its cast; fused kernels keep q, k, v, the output and an fp32 logsumexp."""
    cb, t = ctx.compute_bytes, ctx.tokens
    if ctx.eager_attention:
        scores = ctx.batch * heads * ctx.seq * kv_len
        return t * (q_dim + 2 * heads * v_dim) * cb + scores * (4.0 + (cb if cb != 4 else 0.0))
    return t * (2 * q_dim + 2 * kv_dim) * cb + ctx.batch * heads * ctx.seq * 4.0


def attention_rows(a: Attention, tag: str, ctx: Ctx, hidden: int, norm_kind: str, count: int) -> list[Layer]:
    t, cb, ab = ctx.tokens, ctx.compute_bytes, ctx.matmul_in_bytes
    again = cb if ctx.autocast else 0.0
    q_dim, kv_dim = a.heads * a.head_dim, a.kv_heads * a.head_dim
    p = f"{tag}.attn"
    rows = [linear(f"{p}.q_proj", t, hidden, q_dim, bias=a.qkv_bias, save_input_bytes=ab, out_bytes=cb,
                   count=count, block=tag),
            linear(f"{p}.k_proj", t, hidden, kv_dim, bias=a.qkv_bias, save_input_bytes=again, out_bytes=cb,
                   count=count, block=tag, shares_input=True),
            linear(f"{p}.v_proj", t, hidden, kv_dim, bias=a.qkv_bias, save_input_bytes=again, out_bytes=cb,
                   count=count, block=tag, shares_input=True)]
    if a.qk_norm in ("head", "full"):
        qd, kd = (a.head_dim, a.head_dim) if a.qk_norm == "head" else (hidden, (hidden // a.heads) * a.kv_heads)
        rows.append(norm(f"{p}.q_norm", t, qd, bias=False, saved_bytes=norm_saved(norm_kind, t, q_dim, ctx),
                         out_bytes=cb, count=count, block=tag, kind="rmsnorm"))
        rows.append(norm(f"{p}.k_norm", t, kd, bias=False, saved_bytes=norm_saved(norm_kind, t, kv_dim, ctx),
                         out_bytes=cb, count=count, block=tag, kind="rmsnorm"))
    if a.sinks:  # one logit per head, concatenated to the scores before the softmax (no matmul FLOPs)
        rows.append(Layer(name=f"{p}.sinks", kind="sinks", count=count, block=tag, module="sinks", params=a.heads,
                          factored_state_elems=a.heads, host_ops=4.0))
    kv_len = ctx.kv_len if not a.window else min(ctx.kv_len, a.window)
    saved = _core_saved(ctx, a.heads, q_dim, kv_dim, kv_len, a.head_dim)
    rows.append(windowed_attention_core(f"{p}.core", ctx, heads=a.heads, kv_heads=a.kv_heads, head_dim=a.head_dim,
                                        window=a.window, saved_bytes=saved, count=count, block=tag, rotary=a.rope))
    rows.append(linear(f"{p}.o_proj", t, q_dim, hidden, bias=a.o_bias,
                       save_input_bytes=cb if ctx.eager_attention else 0.0, out_bytes=cb, count=count, block=tag))
    return rows


def mla_rows(m: MLA, tag: str, ctx: Ctx, hidden: int, norm_kind: str, count: int) -> list[Layer]:
    """q_a_proj (h -> q_lora) + q_a_layernorm + q_b_proj (q_lora -> H*(nope+rope)), or q_proj;
    kv_a_proj_with_mqa (h -> kv_lora + rope) + kv_a_layernorm; kv_b_proj (kv_lora -> H*(nope+v)) run over the
    positions it expands: every cached one in transformers (``kv_layout == "hf"``: the latent cache is
    re-expanded each step), the new ones in an engine (absorbed into q and the output: same FLOPs per token);
    core (``layers.mla_attention_core``); o_proj (H*v -> h)."""
    t, cb, ab = ctx.tokens, ctx.compute_bytes, ctx.matmul_in_bytes
    again = cb if ctx.autocast else 0.0
    H, qk = m.heads, m.qk_nope_head_dim + m.qk_rope_head_dim
    p = f"{tag}.attn"
    # the two projections of the block input first (kv_a reads the tensor q_a / q_proj reads), then each path
    q_first = (linear(f"{p}.q_a_proj", t, hidden, m.q_lora_rank, bias=m.bias, save_input_bytes=ab, out_bytes=cb,
                      count=count, block=tag) if m.q_lora_rank else
               linear(f"{p}.q_proj", t, hidden, H * qk, bias=False, save_input_bytes=ab, out_bytes=cb, count=count,
                      block=tag))
    rows: list[Layer] = [q_first, linear(f"{p}.kv_a_proj_with_mqa", t, hidden, m.kv_lora_rank + m.qk_rope_head_dim,
                                         bias=m.bias, save_input_bytes=again, out_bytes=cb, count=count, block=tag,
                                         shares_input=True)]
    if m.q_lora_rank:
        rows.append(norm_row(f"{p}.q_a_layernorm", ctx, m.q_lora_rank, norm_kind, count, tag))
        rows.append(linear(f"{p}.q_b_proj", t, m.q_lora_rank, H * qk, bias=False, save_input_bytes=cb, out_bytes=cb,
                           count=count, block=tag))
    rows.append(norm_row(f"{p}.kv_a_layernorm", ctx, m.kv_lora_rank, norm_kind, count, tag))
    expanded = ctx.batch * (ctx.kv_len if ctx.kv_layout == "hf" else ctx.seq)
    rows.append(linear(f"{p}.kv_b_proj", expanded, m.kv_lora_rank, H * (m.qk_nope_head_dim + m.v_head_dim),
                       bias=False, save_input_bytes=cb, out_bytes=cb, count=count, block=tag))
    saved = _core_saved(ctx, H, H * qk, H * qk, ctx.kv_len, m.v_head_dim)
    rows.append(mla_attention_core(f"{p}.core", ctx, heads=H, kv_lora_rank=m.kv_lora_rank,
                                   qk_nope_head_dim=m.qk_nope_head_dim, qk_rope_head_dim=m.qk_rope_head_dim,
                                   v_head_dim=m.v_head_dim, saved_bytes=saved, count=count, block=tag))
    rows.append(linear(f"{p}.o_proj", t, H * m.v_head_dim, hidden, bias=m.bias,
                       save_input_bytes=cb if ctx.eager_attention else 0.0, out_bytes=cb, count=count, block=tag))
    return rows


def mamba2_rows(m: Mamba2, tag: str, ctx: Ctx, hidden: int, norm_kind: str, count: int) -> list[Layer]:
    """in_proj h -> 2*I + 2*G*N + H (gate z, x, B, C, dt); conv1d over I + 2*G*N channels; dt_bias, A_log, D
    (H each); SSD scan (``layers.ssd_scan``); gated RMSNorm (I); out_proj I -> h."""
    t, cb, ab = ctx.tokens, ctx.compute_bytes, ctx.matmul_in_bytes
    p = f"{tag}.mixer"
    proj = m.inner + m.conv_channels + m.heads
    return [
        linear(f"{p}.in_proj", t, hidden, proj, bias=m.bias, save_input_bytes=ab, out_bytes=cb, count=count, block=tag),
        conv1d_depthwise(f"{p}.conv1d", ctx, channels=m.conv_channels, kernel=m.conv_kernel, bias=m.conv_bias,
                         count=count, block=tag),
        Layer(name=f"{p}.ssm_params", kind="ssm_params", count=count, block=tag, module="ssm_params",
              params=3 * m.heads, factored_state_elems=3 * m.heads),  # dt_bias, A_log, D
        ssd_scan(f"{p}.scan", ctx, heads=m.heads, head_dim=m.head_dim, state=m.state, groups=m.groups, chunk=m.chunk,
                 conv_channels=m.conv_channels, conv_kernel=m.conv_kernel, count=count, block=tag,
                 state_elem_bytes=m.state_bytes),
        norm(f"{p}.norm", t, m.inner, bias=False, saved_bytes=t * m.inner * 12.0, out_bytes=cb, count=count,
             block=tag, kind="rmsnorm"),  # gated: fp32 input, silu(gate), product
        linear(f"{p}.out_proj", t, m.inner, hidden, bias=m.bias, save_input_bytes=cb, out_bytes=cb, count=count,
               block=tag),
    ]


def mlp_rows(f: MLP, prefix: str, ctx: Ctx, hidden: int, count: int, block: str, tokens: int = 0) -> list[Layer]:
    """Gated (act(gate) * up -> down) or plain (act(up) -> down) MLP."""
    t = tokens or ctx.tokens
    cb, ab = ctx.compute_bytes, ctx.matmul_in_bytes
    again = cb if ctx.autocast else 0.0
    n_act = SAVED_TENSORS[f.activation]
    if f.gated:
        return [
            linear(f"{prefix}.gate_proj", t, hidden, f.ffn, bias=f.bias, save_input_bytes=ab, out_bytes=cb,
                   count=count, block=block),
            linear(f"{prefix}.up_proj", t, hidden, f.ffn, bias=f.bias, save_input_bytes=again, out_bytes=cb,
                   count=count, block=block, shares_input=True),
            elementwise(f"{prefix}.act_mul", f.activation, saved_bytes=(2 + n_act) * t * f.ffn * cb,
                        working_bytes=t * (hidden + 3 * f.ffn) * cb, count=count, block=block, host_ops=2.0),
            linear(f"{prefix}.down_proj", t, f.ffn, hidden, bias=f.bias, save_input_bytes=cb, out_bytes=cb,
                   count=count, block=block),
        ]
    return [
        linear(f"{prefix}.up_proj", t, hidden, f.ffn, bias=f.bias, save_input_bytes=ab, out_bytes=cb, count=count,
               block=block),
        elementwise(f"{prefix}.act", f.activation, saved_bytes=n_act * t * f.ffn * cb,
                    working_bytes=t * (hidden + 2 * f.ffn) * cb, count=count, block=block, host_ops=float(n_act)),
        linear(f"{prefix}.down_proj", t, f.ffn, hidden, bias=f.bias, save_input_bytes=cb, out_bytes=cb, count=count,
               block=block),
    ]


def moe_rows(m: MoE, tag: str, ctx: Ctx, hidden: int, count: int) -> list[Layer]:
    """Router (h -> E, fp32 softmax/sigmoid scores saved), shared expert MLP (+ Qwen2-MoE's sigmoid gate
    h -> 1), and the routed experts (``layers.moe_experts``)."""
    t, cb, ab = ctx.tokens, ctx.compute_bytes, ctx.matmul_in_bytes
    p = f"{tag}.moe"
    router = linear(f"{p}.router", t, hidden, m.experts, bias=m.router_bias, save_input_bytes=ab, out_bytes=4.0,
                    count=count, block=tag)
    rows = [replace(router, activation_bytes=router.activation_bytes + t * m.experts * 4.0)]  # fp32 scores
    if m.shared_ffn:
        rows.extend(mlp_rows(MLP(m.shared_ffn, m.gated, m.proj_bias, m.activation), f"{p}.shared_expert", ctx, hidden, count,
                             tag))
        if m.shared_gate:
            gate = linear(f"{p}.shared_expert_gate", t, hidden, 1, bias=False, save_input_bytes=0.0, out_bytes=cb,
                          count=count, block=tag)
            rows.append(replace(gate, activation_bytes=t * cb))  # sigmoid output
    fmt = "" if ctx.training else m.weight_format
    width = m.latent or hidden
    if m.latent:
        rows.append(linear(f"{p}.fc1_latent_proj", t, hidden, m.latent, bias=m.proj_bias, save_input_bytes=0.0,
                           out_bytes=cb, count=count, block=tag))
    rows.append(moe_experts(f"{p}.experts", ctx, hidden=width, ffn=m.ffn, experts=m.experts, top_k=m.top_k,
                            gated=m.gated, bias=m.expert_bias, n_act=SAVED_TENSORS[m.activation],
                            count=count, block=tag, weight_format=fmt))
    if m.latent:
        rows.append(linear(f"{p}.fc2_latent_proj", t, m.latent, hidden, bias=m.proj_bias, save_input_bytes=cb,
                           out_bytes=cb, count=count, block=tag))
    return rows


def block_rows(b: Block, ctx: Ctx, hidden: int, norm_kind: str) -> list[Layer]:
    """One group of identical layers: norms around the mixer and the feed-forward part."""
    tag, n = b.tag, b.count
    rows: list[Layer] = []
    if b.mixer is not None:
        rows.append(norm_row(f"{tag}.input_norm", ctx, hidden, norm_kind, n, tag))
        if isinstance(b.mixer, Attention):
            rows.extend(attention_rows(b.mixer, tag, ctx, hidden, norm_kind, n))
        elif isinstance(b.mixer, MLA):
            rows.extend(mla_rows(b.mixer, tag, ctx, hidden, norm_kind, n))
        else:
            rows.extend(mamba2_rows(b.mixer, tag, ctx, hidden, norm_kind, n))
        if b.norms == 4:
            rows.append(norm_row(f"{tag}.post_attention_norm", ctx, hidden, norm_kind, n, tag))
    if b.ffn is not None:
        if b.norms != 1 or b.mixer is None:
            name = "pre_feedforward_norm" if b.norms == 4 else ("norm" if b.mixer is None else "post_attention_norm")
            rows.append(norm_row(f"{tag}.{name}", ctx, hidden, norm_kind, n, tag))
        if isinstance(b.ffn, MoE):
            rows.extend(moe_rows(b.ffn, tag, ctx, hidden, n))
        else:
            rows.extend(mlp_rows(b.ffn, f"{tag}.mlp", ctx, hidden, n, tag))
        if b.norms == 4:
            rows.append(norm_row(f"{tag}.post_feedforward_norm", ctx, hidden, norm_kind, n, tag))
    return rows
