"""``DecoderSpec``: a decoder-only language model as a stack of block groups (specs/blocks.py), for the
families whose layers are not all alike: mixture-of-experts with shared experts and dense first layers
(Qwen2/3-MoE, OLMoE, DeepSeek-V2/V3, gpt-oss, Llama 4), multi-head latent attention (DeepSeek),
sliding / chunked / NoPE layer patterns (Gemma 3, gpt-oss, Llama 4), state-space models (Mamba-2) and
hybrids (Nemotron-H). Importers: specs/hf_modern.py, specs/hf_ssm.py. Formulas:
docs/families/moe_mla_ssm.md.

What a spec reports besides its ledger:
- ``params_apart``: parameters of parts the estimate does not run, counted exactly but kept out of
  ``params.total`` (DeepSeek-V3's multi-token-prediction module, the vision tower and projector of
  Gemma 3 / Llama 4 multimodal checkpoints); the estimate lists them under ``params.apart``.
- ``notes``: statements the estimate repeats in its assumptions (what is approximate and why).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..layers import Ctx, Layer, elementwise, embedding, linear, norm
from .base import ModelSpec
from .blocks import MLA, Attention, Block, Mamba2, MoE, block_rows, norm_saved


@dataclass(frozen=True)
class DecoderSpec(ModelSpec):
    vocab_size: int = 32000
    hidden: int = 4096
    blocks: tuple[Block, ...] = ()
    norm: str = "rmsnorm"  # rmsnorm | gemma_rmsnorm
    tied_embeddings: bool = False
    hf_model_type: str = ""
    max_positions: int = 0  # max_position_embeddings: the trained context (0: none stated, e.g. Mamba)
    params_apart: tuple[tuple[str, int], ...] = ()
    notes: tuple[tuple[str, str], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "blocks", tuple(self.blocks))
        for field_name, value in (("hidden", self.hidden), ("vocab_size", self.vocab_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InputError(f"model.{field_name}", f"must be a whole number >= 1, got {value!r}")
        if not self.blocks or any(b.count < 1 for b in self.blocks):
            raise InputError("model.layers", "needs at least one layer")
        for b in self.blocks:
            a = b.mixer
            if isinstance(a, Attention) and (a.kv_heads < 1 or a.heads % a.kv_heads):
                raise InputError("model.kv_heads", f"must divide the number of attention heads {a.heads}, "
                                 f"got {a.kv_heads}")
            if isinstance(b.ffn, MoE) and not 1 <= b.ffn.top_k <= b.ffn.experts:
                raise InputError("model.top_k", f"must be from 1 to the {b.ffn.experts} experts, got {b.ffn.top_k}")
            if isinstance(a, Mamba2) and (a.groups < 1 or a.heads % a.groups):
                raise InputError("model.n_groups", f"must divide the {a.heads} Mamba heads, got {a.groups}")

    # ---- facts other modules read (parallel.py, plans.py, views.py) -----------------------------------
    @property
    def layers(self) -> int:
        return sum(b.count for b in self.blocks)

    def _first(self, kind):
        return next((b.mixer for b in self.blocks if isinstance(b.mixer, kind)), None)

    @property
    def heads(self) -> int:
        a = self._first(Attention) or self._first(MLA)
        return a.heads if a else 0

    @property
    def n_kv_heads(self) -> int:
        a = self._first(Attention)
        return a.kv_heads if a else self.heads

    @property
    def d_head(self) -> int:
        a = self._first(Attention)
        return a.head_dim if a else 0

    @property
    def num_experts(self) -> int:
        return next((b.ffn.experts for b in self.blocks if isinstance(b.ffn, MoE)), 0)

    @property
    def top_k(self) -> int:
        return next((b.ffn.top_k for b in self.blocks if isinstance(b.ffn, MoE)), 0)

    @property
    def family(self) -> str:  # type: ignore[override]
        ssm = any(isinstance(b.mixer, Mamba2) for b in self.blocks)
        attn = any(isinstance(b.mixer, (Attention, MLA)) for b in self.blocks)
        if ssm:
            return "hybrid" if attn else "ssm"
        return "moe" if self.num_experts else "decoder"

    @property
    def positions(self) -> str:
        """How positions are encoded, for ``limits.model_limits``: rotary where a context length is stated."""
        return "rotary" if self.max_positions else "none"

    @property
    def generative(self) -> bool:  # type: ignore[override]
        return True

    # ---- the ledger -------------------------------------------------------------------------------------
    def ledger(self, ctx: Ctx) -> list[Layer]:
        t, h = ctx.tokens, self.hidden
        sb, cb, ab = ctx.stream_bytes, ctx.compute_bytes, ctx.matmul_in_bytes
        rows: list[Layer] = [embedding("embed_tokens", t, self.vocab_size, h, out_bytes=sb)]
        for b in self.blocks:
            rows.extend(block_rows(b, ctx, h, self.norm))
        rows.append(norm("final_norm", t, h, bias=False, saved_bytes=norm_saved(self.norm, t, h, ctx), out_bytes=sb,
                         kind="rmsnorm"))
        out_t = t if ctx.training else ctx.batch  # generation keeps last-position logits only
        rows.append(linear("lm_head", out_t, h, self.vocab_size, bias=False, save_input_bytes=ab, out_bytes=cb,
                           tied=self.tied_embeddings))
        if ctx.training:
            rows.append(elementwise("loss", "cross_entropy", saved_bytes=t * self.vocab_size * 4.0 + t * 8.0))
        return rows

    def checkpoint_bytes(self, ctx: Ctx) -> float:
        """HF gradient checkpointing keeps each decoder layer's input hidden states: T*h*stream."""
        return ctx.tokens * self.hidden * ctx.stream_bytes

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Logits and cross-entropy buffers at the start of backward (as TransformerSpec): T*V*(cb + 8)."""
        return ctx.tokens * self.vocab_size * (ctx.compute_bytes + 8.0) if ctx.training else 0.0

    def describe_layers(self) -> str:
        """One line per block group, e.g. '58 x MLA + MoE(256 experts, top-8, 1 shared)'."""
        out = []
        for b in self.blocks:
            m = b.mixer
            parts = []
            if isinstance(m, Attention):
                kind = ("chunked" if m.chunked else "sliding") if m.window else "full"
                parts.append(f"{kind} attention{f' {m.window}' if m.window else ''}"
                             f"{'' if m.rope else ' (NoPE)'}{' + sinks' if m.sinks else ''}")
            elif isinstance(m, MLA):
                parts.append("MLA")
            elif isinstance(m, Mamba2):
                parts.append("Mamba-2")
            f = b.ffn
            if isinstance(f, MoE):
                parts.append(f"MoE({f.experts} experts, top-{f.top_k}{', shared' if f.shared_ffn else ''})")
            elif f is not None:
                parts.append(f"MLP({f.ffn})")
            out.append(f"{b.count} x {' + '.join(parts)}")
        return "; ".join(out)
