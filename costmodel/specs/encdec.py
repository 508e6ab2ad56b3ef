"""Encoder-decoder transformers: T5 (v1.0, v1.1, Flan-T5), as Hugging Face's
``T5ForConditionalGeneration`` implements them (transformers/models/t5/modeling_t5.py).

Architecture (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified
Text-to-Text Transformer"): one shared token embedding; an encoder stack and a decoder stack
of pre-norm blocks; T5LayerNorm (RMS-style, weight only, no bias); attention projections
q, k, v: d_model -> heads*d_kv and o: heads*d_kv -> d_model, no biases, no score scaling;
a relative position bias (an ``Embedding(num_buckets, heads)``) only in the first layer of each
stack, shared by the other layers; decoder blocks add cross-attention over the encoder output;
FFN ``wo(act(wi(x)))`` (v1.0, ReLU) or ``wo(act(wi_0(x)) * wi_1(x))`` (v1.1 / Flan, gated-gelu);
``lm_head`` tied to the shared embedding (t5-small/base/large) or separate (v1.1, Flan).

Lengths. The encoder reads ``ctx.seq`` tokens per sample. The decoder (target) length is
``round(target_len_ratio * ctx.seq)`` (at least 1) in training: ``target_len_ratio`` = 1.0
(default) trains on equal source and target lengths; 0.25 models summarisation-like
targets a quarter of the source.

Inference (generation):
- prefill (``ctx.seq == ctx.kv_len``): the encoder over the prompt plus, for every decoder
  layer, the cross-attention K and V of the prompt, computed once and cached:
  2 * b * prompt * heads*d_kv * kv_bytes per decoder layer.
- decode (``ctx.seq < ctx.kv_len``): one decoder step per new token. ``ctx.kv_len`` counts
  prompt + generated positions; self-attention attends the generated ones and
  cross-attention the prompt ones, and both cost the same per attended position
  (4*heads*d_kv FLOPs per query, 2*heads*d_kv cached elements), so the decode rows carry
  the whole ``kv_len`` on the self-attention core row and none on the cross-attention core
  row: exact for FLOPs and cache bytes, whatever the split.

Saved activations follow the eager HF code (checked with saved_tensors_hooks in
tests/test_t5_rnn_mlp_specs.py); docs/families/t5_rnn_mlp.md walks through each term.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from ..layers import Ctx, Layer, attention_core, elementwise, embedding, linear, norm
from .base import ModelSpec
from . import hf_fields as F

# feed_forward_proj -> (gated, activation). T5Config: "gated-gelu" runs gelu_new (HF NewGELU).
FFN_KINDS = {
    "relu": (False, "relu"),
    "gelu": (False, "gelu"),
    "gated-gelu": (True, "gelu_new"),
    "gated-relu": (True, "relu"),
    "gated-silu": (True, "silu"),
}
# Tensors of T x d_ff each activation implementation saves itself:
# relu its output, F.gelu / F.silu their input, HF NewGELU's composite
# 0.5*x*(1+tanh(c*(x+0.044715*x^3))) saves x, tanh(.), 0.5*x and 1+tanh(.).
ACT_SAVED = {"relu": 1, "gelu": 1, "silu": 1, "gelu_new": 4}
DROPOUT_MASK_BYTES = 1.0  # CUDA native_dropout keeps a bool mask (CPU keeps a float noise tensor)


@dataclass(frozen=True)
class T5Spec(ModelSpec):
    vocab_size: int = 32128
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_heads: int = 8
    num_layers: int = 6
    num_decoder_layers: int = 0  # 0: same as num_layers
    relative_attention_num_buckets: int = 32
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    dropout_rate: float = 0.1
    target_len_ratio: float = 1.0  # decoder (target) length / encoder (source) length in training

    family = "encoder-decoder"
    modality = "text"
    generative = True

    def __post_init__(self):
        for field_name, lo in (("vocab_size", 1), ("d_model", 1), ("d_kv", 1), ("d_ff", 1), ("num_heads", 1),
                               ("num_layers", 1), ("num_decoder_layers", 0), ("relative_attention_num_buckets", 1)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"model.{field_name}", f"must be a whole number >= {lo}, got {value!r}")
        if self.feed_forward_proj not in FFN_KINDS:
            raise InputError("model.feed_forward_proj", f"must be one of {', '.join(FFN_KINDS)}, "
                             f"got {self.feed_forward_proj!r}")
        r = self.target_len_ratio
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r <= 64:
            raise InputError("model.target_len_ratio", f"must be a number in (0, 64] (decoder length / encoder "
                             f"length), got {r!r}")
        p = self.dropout_rate
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise InputError("model.dropout_rate", f"must be a probability in [0, 1), got {p!r}")

    # ---- shapes ------------------------------------------------------------------------------
    @property
    def inner(self) -> int:
        return self.num_heads * self.d_kv

    @property
    def n_dec(self) -> int:
        return self.num_decoder_layers or self.num_layers

    @property
    def gated(self) -> bool:
        return FFN_KINDS[self.feed_forward_proj][0]

    @property
    def activation(self) -> str:
        return FFN_KINDS[self.feed_forward_proj][1]

    def target_len(self, seq: int) -> int:
        return max(1, round(self.target_len_ratio * seq))

    # ---- saved-activation pieces -----------------------------------------------------------------
    @staticmethod
    def _norm_saved(t: int, d: int, ctx: Ctx) -> float:
        """T5LayerNorm: x.to(fp32).pow(2) saves the fp32 copy of x (x itself when already fp32),
        x * rsqrt(var) saves x (stream dtype) and the fp32 rsqrt, weight * h saves the normalised h."""
        sb = ctx.stream_bytes
        fp32_copy = 0.0 if sb == 4 else 4.0
        return t * d * (fp32_copy + 2 * sb) + 4.0 * t

    def _attn_saved(self, ctx: Ctx, tq: int, q: int, tk: int, k: int, drop: bool, bias_saved: bool) -> float:
        """Bytes one attention core keeps (the output projection's saved input is on its own row).

        Eager: q, k, v (matmul's contiguous copies), softmax probabilities (fp32 under autocast,
        where the fp32 position bias promotes the scores, plus the 16-bit cast the second matmul
        saves), and with dropout the mask and the dropped probabilities.
        Fused (CUDA memory-efficient SDPA with the position bias as an additive mask): q, k, v,
        the output, fp32 logsumexp (query length padded to 32) and the bias mask it was given
        (``bias_saved``: a fresh tensor per layer for encoder / decoder self-attention; the
        cross-attention zeros bias is one tensor shared by all layers, counted elsewhere).
        """
        cb, H, inner = ctx.compute_bytes, self.num_heads, self.inner
        b = ctx.batch
        if ctx.eager_attention:
            scores = b * H * q * k
            saved = (tq + 2 * tk) * inner * cb + scores * ((4.0 + cb) if ctx.autocast else cb)
            if drop:
                saved += scores * (DROPOUT_MASK_BYTES + cb)
            return saved
        lse = b * H * (-(-q // 32) * 32) * 4.0
        return (2 * tq + 2 * tk) * inner * cb + lse + (H * q * k * cb if bias_saved else 0.0)

    def _ffn_rows(self, tag: str, t: int, ctx: Ctx, count: int, blk: str, drop: bool) -> list[Layer]:
        d, f = self.d_model, self.d_ff
        cb, ab = ctx.compute_bytes, ctx.matmul_in_bytes
        again = cb if ctx.autocast else 0.0
        act = self.activation
        n_act = ACT_SAVED[act]
        act_b = cb
        if act == "gelu_new" and ctx.autocast:
            # CUDA autocast runs pow in fp32: fp32 x copy, fp32 tanh, 16-bit 0.5*x, fp32 1+tanh
            act_saved = t * f * (12.0 + cb)
            act_out_b = 4.0  # 16-bit 0.5*x times fp32 (1+tanh) promotes to fp32
        else:
            act_saved = n_act * t * f * act_b
            act_out_b = cb
        rows: list[Layer] = []
        mask = t * f * DROPOUT_MASK_BYTES if drop else 0.0
        if self.gated:
            rows.append(linear(f"{tag}.ff.wi_0", t, d, f, bias=False, save_input_bytes=ab, out_bytes=cb,
                               module="wi_0", count=count, block=blk))
            rows.append(linear(f"{tag}.ff.wi_1", t, d, f, bias=False, save_input_bytes=again, out_bytes=cb,
                               module="wi_1", count=count, block=blk, shares_input=True))
            # act's own saves + act(x) (kept by the gating multiply unless relu already keeps it) + wi_1(x)
            saved = act_saved + (0.0 if act == "relu" else t * f * act_out_b) + t * f * cb
            rows.append(elementwise(f"{tag}.ff.act_mul", act, saved_bytes=saved + mask,
                                    working_bytes=t * (d + 3 * f) * cb, count=count, block=blk))
            # the product (or its dropped copy) is wo's saved input; an fp32 product is cast under autocast
            rows.append(linear(f"{tag}.ff.wo", t, f, d, bias=False, save_input_bytes=cb, out_bytes=cb,
                               module="wo", count=count, block=blk))
        else:
            rows.append(linear(f"{tag}.ff.wi", t, d, f, bias=False, save_input_bytes=ab, out_bytes=cb,
                               module="wi", count=count, block=blk))
            # relu saves its output, which wo saves too (one storage) unless dropout makes a new tensor
            wo_in = cb if (act != "relu" or drop) else 0.0
            rows.append(elementwise(f"{tag}.ff.act", act, saved_bytes=act_saved + mask,
                                    working_bytes=t * (d + 2 * f) * cb, count=count, block=blk))
            rows.append(linear(f"{tag}.ff.wo", t, f, d, bias=False, save_input_bytes=wo_in, out_bytes=cb,
                               module="wo", count=count, block=blk))
        return rows

    # ---- the ledger ------------------------------------------------------------------------------
    def ledger(self, ctx: Ctx) -> list[Layer]:
        d, V, H, inner = self.d_model, self.vocab_size, self.num_heads, self.inner
        b = ctx.batch
        sb, cb, ab = ctx.stream_bytes, ctx.compute_bytes, ctx.matmul_in_bytes
        again = cb if ctx.autocast else 0.0
        drop = ctx.training and ctx.dropout and self.dropout_rate > 0
        hmask = DROPOUT_MASK_BYTES if drop else 0.0
        L_enc, L_dec = self.num_layers, self.n_dec
        buckets = self.relative_attention_num_buckets

        # tokens per sample of each stack in this pass
        if ctx.training:
            phase = "train"
            s_enc, s_dec, kv_dec = ctx.seq, self.target_len(ctx.seq), self.target_len(ctx.seq)
        elif ctx.seq >= ctx.kv_len:  # prefill: encoder over the prompt + cross K/V
            phase = "prefill"
            s_enc, s_dec, kv_dec = ctx.seq, 0, 0
        else:  # decode: ctx.seq new decoder tokens attending ctx.kv_len cached positions
            phase = "decode"
            s_enc, s_dec, kv_dec = 0, ctx.seq, ctx.kv_len
        te, td = b * s_enc, b * s_dec
        # cross-attention K/V projections run over the source once (train, prefill), not in decode
        s_src = s_enc

        rows: list[Layer] = []
        # ---- shared embedding (encoder lookup saves the int64 ids)
        rows.append(embedding("shared", te, V, d, out_bytes=sb))
        if hmask:
            rows.append(elementwise("encoder.dropout", "dropout", saved_bytes=te * d * hmask))
        # relative position bias of the encoder's first layer: saves the (s, s) int64 bucket ids
        rows.append(Layer(name="encoder.relative_attention_bias", kind="embedding", module="relative_attention_bias",
                          params=buckets * H, factored_state_elems=buckets + H,
                          activation_bytes=s_enc * s_enc * 8.0 if ctx.training else 0.0,
                          working_bytes=s_enc * s_enc * H * cb))

        # ---- encoder blocks
        blk, tag, n = "encoder.block", "encoder.block.*", L_enc
        ctx_e = replace(ctx, seq=s_enc, kv_len=s_enc)
        rows.append(norm(f"{tag}.self_attn.layer_norm", te, d, bias=False, saved_bytes=self._norm_saved(te, d, ctx),
                         out_bytes=sb, count=n, block=blk, kind="rmsnorm"))
        rows += self._self_attn_rows(tag, ctx_e, te, s_enc, te, s_enc, n, blk, drop, cache=False)
        if hmask:
            rows.append(elementwise(f"{tag}.self_attn.dropout", "dropout", saved_bytes=te * d * hmask, count=n,
                                    block=blk))
        rows.append(norm(f"{tag}.ff.layer_norm", te, d, bias=False, saved_bytes=self._norm_saved(te, d, ctx),
                         out_bytes=sb, count=n, block=blk, kind="rmsnorm"))
        rows += self._ffn_rows(tag, te, ctx, n, blk, drop)
        if hmask:
            rows.append(elementwise(f"{tag}.ff.dropout", "dropout", saved_bytes=te * d * hmask, count=n, block=blk))
        rows.append(norm("encoder.final_layer_norm", te, d, bias=False, saved_bytes=self._norm_saved(te, d, ctx),
                         out_bytes=sb, kind="rmsnorm"))
        if hmask:
            rows.append(elementwise("encoder.final_dropout", "dropout", saved_bytes=te * d * hmask))
        # the encoder output is the input of every decoder layer's cross-attention k and v: without
        # autocast they all save that one tensor; under autocast each makes its own 16-bit cast
        if ctx.training and not ctx.autocast:
            rows.append(elementwise("encoder.output_kv_input", "saved_input",
                                    saved_bytes=te * d * sb))

        # ---- decoder
        if ctx.training:
            rows.append(Layer(name="decoder.embed_tokens", kind="embedding", module="embed_tokens",
                              activation_bytes=td * 8.0, working_bytes=td * d * sb))  # tied to `shared`
        if hmask:
            rows.append(elementwise("decoder.dropout", "dropout", saved_bytes=td * d * hmask))
        rows.append(Layer(name="decoder.relative_attention_bias", kind="embedding", module="relative_attention_bias",
                          params=buckets * H, factored_state_elems=buckets + H,
                          activation_bytes=s_dec * s_dec * 8.0 if ctx.training else 0.0,
                          working_bytes=s_dec * kv_dec * H * cb))
        blk, tag, n = "decoder.block", "decoder.block.*", L_dec
        ctx_self = replace(ctx, seq=s_dec, kv_len=kv_dec)
        rows.append(norm(f"{tag}.self_attn.layer_norm", td, d, bias=False, saved_bytes=self._norm_saved(td, d, ctx),
                         out_bytes=sb, count=n, block=blk, kind="rmsnorm"))
        rows += self._self_attn_rows(tag, ctx_self, td, s_dec, td, kv_dec, n, blk, drop, cache=True)
        if hmask:
            rows.append(elementwise(f"{tag}.self_attn.dropout", "dropout", saved_bytes=td * d * hmask, count=n,
                                    block=blk))
        # cross-attention
        rows.append(norm(f"{tag}.cross_attn.layer_norm", td, d, bias=False, saved_bytes=self._norm_saved(td, d, ctx),
                         out_bytes=sb, count=n, block=blk, kind="rmsnorm"))
        ts = b * s_src
        rows.append(linear(f"{tag}.cross_attn.q", td, d, inner, bias=False, save_input_bytes=ab, out_bytes=cb,
                           module="q", count=n, block=blk))
        # k, v read the encoder output (its one saved copy is the row above, or their own casts)
        rows.append(linear(f"{tag}.cross_attn.k", ts, d, inner, bias=False, save_input_bytes=again, out_bytes=cb,
                           module="k", count=n, block=blk))
        rows.append(linear(f"{tag}.cross_attn.v", ts, d, inner, bias=False, save_input_bytes=again, out_bytes=cb,
                           module="v", count=n, block=blk, shares_input=True))
        if phase == "decode":  # cross-attention over the prompt is carried by the self-attention core row
            ctx_x = replace(ctx, seq=s_dec, kv_len=0)
            cross_kv = 0
        else:
            ctx_x = replace(ctx, seq=s_dec, kv_len=s_src)
            cross_kv = s_src
        core = attention_core(f"{tag}.cross_attn.core", ctx_x, heads=H, kv_heads=H, head_dim=self.d_kv,
                              saved_bytes=self._attn_saved(ctx, td, s_dec, ts, cross_kv, drop, bias_saved=False)
                              if ctx.training else 0.0, count=n, block=blk, cache=False)
        if phase == "prefill":  # K/V of the prompt computed once per decoder layer and kept
            core = replace(core, kv_cache_bytes=2.0 * b * s_src * inner * ctx.kv_bytes)
        rows.append(core)
        rows.append(linear(f"{tag}.cross_attn.o", td, inner, d, bias=False,
                           save_input_bytes=cb if ctx.eager_attention else 0.0, out_bytes=cb, module="o", count=n,
                           block=blk))
        if hmask:
            rows.append(elementwise(f"{tag}.cross_attn.dropout", "dropout", saved_bytes=td * d * hmask, count=n,
                                    block=blk))
        rows.append(norm(f"{tag}.ff.layer_norm", td, d, bias=False, saved_bytes=self._norm_saved(td, d, ctx),
                         out_bytes=sb, count=n, block=blk, kind="rmsnorm"))
        rows += self._ffn_rows(tag, td, ctx, n, blk, drop)
        if hmask:
            rows.append(elementwise(f"{tag}.ff.dropout", "dropout", saved_bytes=td * d * hmask, count=n, block=blk))
        if ctx.training and not ctx.eager_attention:
            # fused SDPA: the cross-attention zeros bias (1, heads, target, source), one tensor for all layers
            rows.append(elementwise("decoder.cross_attn.bias_mask", "attention_bias",
                                    saved_bytes=H * s_dec * s_src * cb))
        rows.append(norm("decoder.final_layer_norm", td, d, bias=False, saved_bytes=self._norm_saved(td, d, ctx),
                         out_bytes=sb, kind="rmsnorm"))
        if hmask:
            rows.append(elementwise("decoder.final_dropout", "dropout", saved_bytes=td * d * hmask))
        # ---- head: training scores every target position; generation only the new one(s)
        rows.append(linear("lm_head", td, d, V, bias=False, save_input_bytes=ab, out_bytes=cb,
                           tied=self.tie_word_embeddings, module="lm_head"))
        if ctx.training:
            # CrossEntropyLoss on the logits (no upcast in T5; autocast runs log_softmax in fp32)
            lb = 4.0 if ctx.autocast else cb
            rows.append(elementwise("loss", "cross_entropy", saved_bytes=td * V * lb + td * 8.0))
        return rows

    def _self_attn_rows(self, tag: str, actx: Ctx, tq: int, q: int, tk: int, k: int, n: int, blk: str,
                        drop: bool, cache: bool) -> list[Layer]:
        d, H, inner = self.d_model, self.num_heads, self.inner
        cb, ab = actx.compute_bytes, actx.matmul_in_bytes
        again = cb if actx.autocast else 0.0
        rows = [
            linear(f"{tag}.self_attn.q", tq, d, inner, bias=False, save_input_bytes=ab, out_bytes=cb, module="q",
                   count=n, block=blk),
            linear(f"{tag}.self_attn.k", tq, d, inner, bias=False, save_input_bytes=again, out_bytes=cb, module="k",
                   count=n, block=blk, shares_input=True),
            linear(f"{tag}.self_attn.v", tq, d, inner, bias=False, save_input_bytes=again, out_bytes=cb, module="v",
                   count=n, block=blk, shares_input=True),
            attention_core(f"{tag}.self_attn.core", actx, heads=H, kv_heads=H, head_dim=self.d_kv,
                           saved_bytes=self._attn_saved(actx, tq, q, tk, k, drop, bias_saved=True)
                           if actx.training else 0.0, count=n, block=blk, cache=cache),
            linear(f"{tag}.self_attn.o", tq, inner, d, bias=False,
                   save_input_bytes=cb if actx.eager_attention else 0.0, out_bytes=cb, module="o", count=n,
                   block=blk),
        ]
        return rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Logits (returned to the caller), the gradient of log_softmax's output and the gradient of
        the logits, alive at the start of backward: T_dec*V*(compute_bytes + 2*loss_bytes)."""
        if not ctx.training:
            return 0.0
        td = ctx.batch * self.target_len(ctx.seq)
        lb = 4.0 if ctx.autocast else ctx.compute_bytes
        return td * self.vocab_size * (ctx.compute_bytes + 2 * lb)

    def to_dict(self) -> dict:
        """A Hugging Face T5 config.json (plus costmodel's ``target_len_ratio``) that
        ``t5_from_hf`` reads back to this spec."""
        return {
            "model_type": "t5", "architectures": ["T5ForConditionalGeneration"], "_name_or_path": self.name,
            "vocab_size": self.vocab_size, "d_model": self.d_model, "d_kv": self.d_kv, "d_ff": self.d_ff,
            "num_heads": self.num_heads, "num_layers": self.num_layers, "num_decoder_layers": self.n_dec,
            "relative_attention_num_buckets": self.relative_attention_num_buckets,
            "feed_forward_proj": self.feed_forward_proj, "tie_word_embeddings": self.tie_word_embeddings,
            "dropout_rate": self.dropout_rate, "target_len_ratio": self.target_len_ratio,
        }


def t5_from_hf(cfg: dict) -> T5Spec:
    """A T5 / T5 v1.1 / Flan-T5 / mT5-style config.json. ``tie_word_embeddings`` (default true, as in
    t5-small/base) false gives a separate lm_head, as the v1.1 and Flan checkpoints have."""
    proj = cfg.get("feed_forward_proj", "relu")
    if proj not in FFN_KINDS:
        raise InputError("config.feed_forward_proj", f"{proj!r} is not supported; use one of {', '.join(FFN_KINDS)}")
    tie = cfg.get("tie_word_embeddings", True)
    if not isinstance(tie, bool):
        raise InputError("config.tie_word_embeddings", f"must be true or false, got {tie!r}")
    layers = F.req(cfg, "num_layers", "num_hidden_layers", default=6)
    return T5Spec(
        name=F.name(cfg, "t5"), vocab_size=F.req(cfg, "vocab_size", default=32128),
        d_model=F.req(cfg, "d_model", "hidden_size", default=512), d_kv=F.req(cfg, "d_kv", "head_dim", default=64),
        d_ff=F.req(cfg, "d_ff", default=2048), num_heads=F.req(cfg, "num_heads", "num_attention_heads", default=8),
        num_layers=layers, num_decoder_layers=F.req(cfg, "num_decoder_layers", default=layers),
        relative_attention_num_buckets=F.req(cfg, "relative_attention_num_buckets", default=32),
        feed_forward_proj=proj, tie_word_embeddings=tie,
        dropout_rate=F.req(cfg, "dropout_rate", default=0.1, kind=float),
        target_len_ratio=F.req(cfg, "target_len_ratio", default=1.0, kind=float),
    )
