"""Transformers: decoder-only LMs (GPT-2, Llama, Mistral, Qwen2, Gemma, Phi-3), mixture-of-experts
decoders (Mixtral), and BERT-style encoders.

One spec covers them all with flags. The saved-activation bytes mirror what the Hugging Face
eager-PyTorch implementations keep for backward (checked in tests with
``torch.autograd.graph.saved_tensors_hooks``); docs/formulas.md walks through each term.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from ..layers import HOST_OPS, Ctx, Layer, attention_core, elementwise, embedding, linear, moe_experts, norm
from .base import ModelSpec

# Activation functions: how many T x ffn tensors each implementation saves for backward.
#  - gelu_new: HF NewGELUActivation, composite 0.5*x*(1+tanh(...)): saves x, tanh(.), 0.5*x, 1+tanh(.)
#  - gelu, gelu_tanh (F.gelu), silu (F.silu): native kernels save their input
#  - relu: saves its output (which the next linear saves too: one storage)
ACTIVATION_SAVED_TENSORS = {"gelu_new": 4, "gelu": 1, "gelu_tanh": 1, "silu": 1, "relu": 1, "quick_gelu": 2}


@dataclass(frozen=True)
class TransformerSpec(ModelSpec):
    vocab_size: int = 32000
    hidden: int = 4096
    layers: int = 32
    heads: int = 32
    kv_heads: int = 0  # 0: same as heads (MHA); 1: MQA; between: GQA
    head_dim: int = 0  # 0: hidden // heads
    ffn: int = 11008
    gated_mlp: bool = True  # SwiGLU / GeGLU: act(gate(x)) * up(x)
    activation: str = "silu"
    norm: str = "rmsnorm"  # rmsnorm | gemma_rmsnorm | layernorm
    norm_bias: bool = False  # LayerNorm with bias
    norms_per_block: int = 2  # Gemma-2 has 4 (pre and post around attention and MLP)
    qkv_bias: bool = False
    out_bias: bool = False
    mlp_bias: bool = False
    fused_qkv: bool = False  # one projection for q, k, v (GPT-2 c_attn, Phi-3 qkv_proj)
    fused_gate_up: bool = False  # one projection for gate and up (Phi-3 gate_up_proj)
    positions: str = "rotary"  # rotary | learned | none
    max_positions: int = 4096
    tied_embeddings: bool = False
    causal: bool = True  # False: encoder (BERT)
    post_norm: bool = False  # BERT: LayerNorm after each residual add
    final_norm: bool = True
    sliding_window: int = 0
    sliding_layers: int = 0  # how many layers use the window (Mistral: all, Gemma-2: every other)
    num_experts: int = 0
    top_k: int = 0
    type_vocab: int = 0  # BERT token-type embeddings
    embed_norm: bool = False  # BERT: LayerNorm on the embeddings
    pooler: bool = False  # BERT pooler: dense(h, h) + tanh on the first token
    head: str = "lm"  # lm (tied or not) | mlm (BERT transform + tied decoder + bias) | none
    cls_labels: int = 0  # classifier on the pooled output (BERT NSP = 2, sequence classification)
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0
    module_names: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")

    def __post_init__(self):
        checks = [("hidden", self.hidden, 1), ("layers", self.layers, 1), ("heads", self.heads, 1),
                  ("vocab_size", self.vocab_size, 1), ("ffn", self.ffn, 1)]
        for field_name, value, lo in checks:
            if not isinstance(value, int) or value < lo:
                raise InputError(f"model.{field_name}", f"must be a whole number >= {lo}, got {value!r}")
        if self.head_dim == 0 and self.hidden % self.heads:
            raise InputError("model.heads", f"must divide hidden size {self.hidden} (got {self.heads} heads); "
                             "or set head_dim explicitly")
        kvh = self.kv_heads or self.heads
        if kvh > self.heads or self.heads % kvh:
            raise InputError("model.kv_heads", f"must divide the number of attention heads {self.heads}, got {kvh}")
        if self.num_experts and not 1 <= self.top_k <= self.num_experts:
            raise InputError("model.top_k", f"must be from 1 to num_experts={self.num_experts}, got {self.top_k}")
        if self.activation not in ACTIVATION_SAVED_TENSORS:
            raise InputError("model.activation", f"must be one of {', '.join(ACTIVATION_SAVED_TENSORS)}, got {self.activation!r}")
        if self.norm not in ("rmsnorm", "gemma_rmsnorm", "layernorm"):
            raise InputError("model.norm", f"must be rmsnorm, gemma_rmsnorm or layernorm, got {self.norm!r}")
        if self.positions not in ("rotary", "learned", "none"):
            raise InputError("model.positions", f"must be rotary, learned or none, got {self.positions!r}")

    @property
    def family(self) -> str:  # type: ignore[override]
        if self.num_experts:
            return "moe"
        return "decoder" if self.causal else "encoder"

    @property
    def generative(self) -> bool:  # type: ignore[override]
        return self.causal

    @property
    def d_head(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def n_kv_heads(self) -> int:
        return self.kv_heads or self.heads

    # ---- saved-activation pieces (bytes for `t` tokens) ------------------------------------
    def _norm_saved(self, t: int, ctx: Ctx) -> float:
        h = self.hidden
        if self.norm == "layernorm":  # native layer_norm saves input + fp32 mean and rstd
            return t * h * ctx.stream_bytes + 8.0 * t
        if self.norm == "gemma_rmsnorm":  # x.float(), normalised fp32 product, fp32 rsqrt
            return t * h * 8.0 + 4.0 * t
        # Llama RMSNorm: fp32 input of pow/mul (the input itself when already fp32) + normalised
        # tensor cast back to the input dtype + fp32 rsqrt
        return t * h * (4.0 + ctx.stream_bytes) + 4.0 * t

    def ledger(self, ctx: Ctx) -> list[Layer]:
        t = ctx.tokens
        h, L = self.hidden, self.layers
        hd, H, KV = self.d_head, self.heads, self.n_kv_heads
        q_dim, kv_dim = H * hd, KV * hd
        sb, cb, ab = ctx.stream_bytes, ctx.compute_bytes, ctx.matmul_in_bytes
        # a second matmul reading the same input: autocast makes another cast copy; otherwise shared
        again = cb if ctx.autocast else 0.0
        drop = ctx.dropout and ctx.training
        hmask = t * h * 1.0 if drop and self.hidden_dropout > 0 else 0.0
        norm_kind = "layernorm" if self.norm == "layernorm" else "rmsnorm"
        nb = self.norm == "layernorm" and self.norm_bias
        rows: list[Layer] = []

        # ---- embeddings
        rows.append(embedding("embed_tokens", t, self.vocab_size, h, out_bytes=sb))
        if self.positions == "learned":
            rows.append(embedding("embed_positions", ctx.seq, self.max_positions, h, out_bytes=sb))
        if self.type_vocab:
            rows.append(embedding("embed_token_types", t, self.type_vocab, h, out_bytes=sb))
        if self.embed_norm:
            rows.append(norm("embed_norm", t, h, bias=True, saved_bytes=self._norm_saved(t, ctx),
                             out_bytes=sb, kind=norm_kind))
        if hmask:
            rows.append(elementwise("embed_dropout", "dropout", saved_bytes=hmask))

        # ---- blocks (one set of rows, count = L)
        blk = "layers"
        n_window = min(self.sliding_layers, L) if self.sliding_window else 0
        groups = [(L - n_window, 0), (n_window, self.sliding_window)] if n_window else [(L, 0)]
        for count, window in groups:
            if not count:
                continue
            tag = "layers.*" if not n_window else ("layers.*(sliding)" if window else "layers.*(global)")
            b = tag
            R = []
            pre = not self.post_norm
            n_norms = self.norms_per_block
            if pre:
                R.append(norm(f"{tag}.input_norm", t, h, bias=nb, saved_bytes=self._norm_saved(t, ctx), out_bytes=sb,
                              count=count, block=b, kind=norm_kind))
            # projections
            if self.fused_qkv:
                R.append(linear(f"{tag}.attn.qkv_proj", t, h, q_dim + 2 * kv_dim, bias=self.qkv_bias,
                                save_input_bytes=ab, out_bytes=cb, module=self.module_names[0], count=count, block=b))
            else:
                R.append(linear(f"{tag}.attn.{self.module_names[0]}", t, h, q_dim, bias=self.qkv_bias,
                                save_input_bytes=ab, out_bytes=cb, module=self.module_names[0], count=count, block=b))
                R.append(linear(f"{tag}.attn.{self.module_names[1]}", t, h, kv_dim, bias=self.qkv_bias,
                                save_input_bytes=again, out_bytes=cb, module=self.module_names[1], count=count, block=b,
                                shares_input=True))
                R.append(linear(f"{tag}.attn.{self.module_names[2]}", t, h, kv_dim, bias=self.qkv_bias,
                                save_input_bytes=again, out_bytes=cb, module=self.module_names[2], count=count, block=b,
                                shares_input=True))
            # attention core: what the kernel keeps
            kv_len = min(ctx.kv_len, window) if window else ctx.kv_len
            score_elems = ctx.batch * H * ctx.seq * kv_len
            if ctx.eager_attention:
                rep = KV != H
                saved = t * (q_dim + 2 * (q_dim if rep else kv_dim)) * cb  # q, k, v (repeated for GQA)
                saved += score_elems * (4.0 + (cb if cb != 4 else 0.0))  # fp32 softmax + cast copy
                if drop and self.attention_dropout > 0:
                    saved += score_elems * (1.0 + cb)  # mask + dropped probabilities
            else:  # fused SDPA (flash / memory-efficient): q, k, v, output, fp32 logsumexp
                saved = t * (2 * q_dim + 2 * kv_dim) * cb + ctx.batch * H * ctx.seq * 4.0
            R.append(attention_core(f"{tag}.attn.core", ctx, heads=H, kv_heads=KV, head_dim=hd, window=window,
                                    saved_bytes=saved, count=count, block=b, cache=self.causal,
                                    rotary=self.positions == "rotary"))
            # fused kernels return their output already laid out as (b, s, heads, d): the output
            # projection saves that same storage; eager attention makes a contiguous copy
            R.append(linear(f"{tag}.attn.{self.module_names[3]}", t, q_dim, h, bias=self.out_bias,
                            save_input_bytes=cb if ctx.eager_attention else 0.0, out_bytes=cb, module=self.module_names[3], count=count, block=b,
                            extra_saved=hmask))
            if n_norms == 4:  # Gemma-2 post-attention norm
                R.append(norm(f"{tag}.post_attn_norm", t, h, bias=nb, saved_bytes=self._norm_saved(t, ctx),
                              out_bytes=sb, count=count, block=b, kind=norm_kind))
            R.append(norm(f"{tag}.{'attn_out_norm' if self.post_norm else 'post_attention_norm'}", t, h, bias=nb,
                          saved_bytes=self._norm_saved(t, ctx), out_bytes=sb, count=count, block=b, kind=norm_kind))
            # MLP
            R.extend(self._mlp_rows(tag, ctx, count, b, hmask))
            if n_norms == 4:
                R.append(norm(f"{tag}.post_mlp_norm", t, h, bias=nb, saved_bytes=self._norm_saved(t, ctx),
                              out_bytes=sb, count=count, block=b, kind=norm_kind))
            if self.post_norm:
                R.append(norm(f"{tag}.out_norm", t, h, bias=nb, saved_bytes=self._norm_saved(t, ctx), out_bytes=sb,
                              count=count, block=b, kind=norm_kind))
            rows.extend(R)

        # ---- head
        if self.final_norm and not self.post_norm:
            rows.append(norm("final_norm", t, h, bias=nb, saved_bytes=self._norm_saved(t, ctx), out_bytes=sb,
                             kind=norm_kind))
        if self.pooler:  # on the first token of each sample
            rows.append(linear("pooler.dense", ctx.batch, h, h, bias=True, save_input_bytes=ab, out_bytes=cb,
                               extra_saved=ctx.batch * h * cb))
        if self.cls_labels:
            rows.append(linear("classifier", ctx.batch, h, self.cls_labels, bias=True, save_input_bytes=ab,
                               out_bytes=cb, module="classifier"))
        out_t = t if ctx.training or not self.causal else ctx.batch  # generation keeps last-position logits only
        if self.head == "mlm":
            rows.append(linear("mlm.transform", out_t, h, h, bias=True, save_input_bytes=ab, out_bytes=cb,
                               extra_saved=out_t * h * cb))
            rows.append(norm("mlm.norm", out_t, h, bias=True, saved_bytes=out_t * h * sb + 8.0 * out_t,
                             out_bytes=sb, kind="layernorm"))
            rows.append(linear("mlm.decoder", out_t, h, self.vocab_size, bias=True, save_input_bytes=ab,
                               out_bytes=cb, tied=True, module="lm_head"))
        elif self.head == "lm":
            rows.append(linear("lm_head", out_t, h, self.vocab_size, bias=False, save_input_bytes=ab,
                               out_bytes=cb, tied=self.tied_embeddings, module="lm_head"))
        if ctx.training and self.head in ("lm", "mlm"):
            # cross_entropy on fp32-upcast logits saves log_softmax's fp32 output and int64 targets
            rows.append(elementwise("loss", "cross_entropy", saved_bytes=t * self.vocab_size * 4.0 + t * 8.0))
        return rows

    def _mlp_rows(self, tag: str, ctx: Ctx, count: int, b: str, hmask: float) -> list[Layer]:
        t = ctx.tokens
        h, f = self.hidden, self.ffn
        cb, ab = ctx.compute_bytes, ctx.matmul_in_bytes
        again = cb if ctx.autocast else 0.0
        n_act = ACTIVATION_SAVED_TENSORS[self.activation]
        names = self.module_names
        rows: list[Layer] = []
        if self.num_experts:
            E, k = self.num_experts, self.top_k
            rows.append(Layer(
                name=f"{tag}.moe.router", kind="linear", count=count, block=b, module="gate",
                params=E * h, matmul_params=E * h, factored_state_elems=E + h, weight_cast_elems=E * h,
                weight_input_bytes=t * h * ab,
                forward_flops=2.0 * t * h * E, input_grad_flops=2.0 * t * h * E, weight_grad_flops=2.0 * t * h * E,
                activation_bytes=t * h * ab + t * E * 4.0, working_bytes=t * (h * ab + E * 4.0)))
            experts = moe_experts(f"{tag}.moe.experts", ctx, hidden=h, ffn=f, experts=E, top_k=k,
                                  gated=self.gated_mlp, n_act=n_act, count=count, block=b)
            rows.append(replace(experts, activation_bytes=experts.activation_bytes + hmask))
            return rows
        if self.gated_mlp:
            if self.fused_gate_up:
                rows.append(linear(f"{tag}.mlp.gate_up_proj", t, h, 2 * f, bias=self.mlp_bias, save_input_bytes=ab,
                                   out_bytes=cb, module="gate_up_proj", count=count, block=b))
            else:
                rows.append(linear(f"{tag}.mlp.{names[4]}", t, h, f, bias=self.mlp_bias, save_input_bytes=ab,
                                   out_bytes=cb, module=names[4], count=count, block=b))
                rows.append(linear(f"{tag}.mlp.{names[5]}", t, h, f, bias=self.mlp_bias, save_input_bytes=again,
                                   out_bytes=cb, module=names[5], count=count, block=b, shares_input=True))
            # gate and up outputs, act(gate), and act(gate)*up (saved by down_proj)
            rows.append(elementwise(f"{tag}.mlp.act_mul", self.activation, saved_bytes=3 * t * f * cb,
                                    working_bytes=t * (h + 3 * f) * cb, count=count, block=b,
                                    host_ops=HOST_OPS.get(self.activation, 1.0) + 1.0))
            rows.append(linear(f"{tag}.mlp.{names[6]}", t, f, h, bias=self.mlp_bias, save_input_bytes=cb,
                               out_bytes=cb, module=names[6], count=count, block=b, extra_saved=hmask))
        else:
            rows.append(linear(f"{tag}.mlp.{names[4]}", t, h, f, bias=self.mlp_bias, save_input_bytes=ab,
                               out_bytes=cb, module=names[4], count=count, block=b))
            # relu's saved output is the same storage the next linear saves
            act_saved = n_act * t * f * cb
            if self.activation == "gelu_new" and ctx.autocast:
                # CUDA autocast runs pow in fp32: saved are an fp32 copy of x, fp32 tanh(.),
                # 16-bit 0.5*x and fp32 1+tanh(.) -> 4+4+2+4 bytes per element
                act_saved = t * f * (12.0 + cb)
            rows.append(elementwise(f"{tag}.mlp.act", self.activation, saved_bytes=act_saved,
                                    working_bytes=t * (h + 2 * f) * cb, count=count, block=b))
            fc2_in = 0.0 if self.activation == "relu" else cb
            rows.append(linear(f"{tag}.mlp.{names[6]}", t, f, h, bias=self.mlp_bias, save_input_bytes=fc2_in,
                               out_bytes=cb, module=names[6], count=count, block=b, extra_saved=hmask))
        return rows

    def checkpoint_bytes(self, ctx: Ctx) -> float:
        """HF gradient checkpointing keeps each decoder layer's input hidden states: T*h*stream."""
        return ctx.tokens * self.hidden * ctx.stream_bytes

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Logits and cross-entropy buffers alive at the start of backward, beyond saved tensors.

        HF's ForCausalLMLoss upcasts logits to fp32 and calls cross_entropy (log_softmax + nll;
        log_softmax's fp32 output is already counted as saved by the "loss" row). At the start
        of backward also live: the logits (compute dtype, returned to the caller), the fp32
        gradient of log_softmax's output, and the fp32 gradient of the logits being produced:
        T*V*(compute_bytes + 8).
        """
        if not ctx.training or self.head not in ("lm", "mlm"):
            return 0.0
        return ctx.tokens * self.vocab_size * (ctx.compute_bytes + 8.0)
