"""The served model's shape: what the serving step model (``serving/model.py``) needs from a decoder spec.

Two kinds of spec are read:

- ``TransformerSpec`` (GPT-2, Llama, Mistral, Mixtral, ...): every layer alike; the GEMMs are read off the
  fields (q/k/v or fused qkv, o, gate/up/down or the router + experts).
- ``DecoderSpec`` (Qwen3, Qwen3-MoE, DeepSeek-V3, gpt-oss, Llama 4, Gemma 3, Mamba-2, Nemotron-H): groups of
  layers that differ (dense first layers then MoE, sliding and full attention, Mamba and attention layers).
  The GEMMs are read off the estimator's own ledger rows (``Layer.gemm_mnk``) with the layers each runs in;
  the cache is read off the blocks:

      attention (GQA)  K and V: 2 KV d elements per token per layer, split over min(tp, KV) ranks
      MLA (DeepSeek)   the latent and the rope key: kv_lora_rank + qk_rope_head_dim elements per token per
                       layer, replicated on every TP rank (vLLM / SGLang MLA backends; DeepSeek-V2 paper, 2.1)
      Mamba-2          a fixed state per sequence per layer: H P N SSM state (+ conv_channels (kernel - 1)
                       conv inputs), the same at any context length (layers.ssd_scan)

  Attention FLOPs per (query, key position) per layer: 4 H d (QK^T and PV) for GQA; MLA decodes in the
  absorbed form, 2 H (kv_lora_rank + rope) + 2 H kv_lora_rank, and prefills in the expanded form,
  2 H (nope + rope) + 2 H v (DeepSeek-V2, appendix "absorbed" attention; FlashMLA).

Every shape is checked against the ledger: its GEMM weights + experts + LM head equal the ledger's matmul
parameters, so a layout the reader does not understand is refused, not mispriced.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import InputError
from ..estimator import ledger, make_ctx
from ..perf import HOST_OPS
from ..workload import Workload

# Ledger GEMMs split by rows (k) under Megatron tensor parallelism; the rest split by columns (n), except the
# ones every rank runs whole (router scores; MLA's low-rank q_a / kv_a projections, ReplicatedLinear in vLLM).
ROW_PARALLEL = ("o_proj", "down_proj", "out_proj", "fc2_latent_proj", "c_proj")
REPLICATED = ("router", "q_a_proj", "kv_a_proj_with_mqa", "shared_expert_gate")


@dataclass(frozen=True)
class Shape:
    """What the serving model needs from a decoder spec (whole model, no parallelism). The fields after
    ``eager_ops`` describe layers that are not all alike; their defaults are those of a uniform transformer."""

    name: str
    layers: int
    hidden: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    ffn: int
    num_experts: int
    top_k: int
    expert_params: int  # one expert's matmul weights
    window: int  # sliding window (0: none)
    window_layers: int
    max_positions: int
    gemms: tuple  # per layer, non-expert: (name, n_out, k_in, column_parallel: True | False | None = replicated)
    other_params: int  # embeddings, norms, biases: 16-bit, never quantized
    lm_head_params: int  # V x h (tied or not, its GEMM runs)
    tied: bool  # the LM head is the embedding matrix
    total_params: int
    eager_ops: float  # eager torch calls per forward (Hugging Face implementation)
    gemm_layers: tuple = ()  # layers each GEMM of ``gemms`` runs in (empty: all layers)
    moe_layers: int = -1  # layers with routed experts (-1: all layers of an MoE model)
    attn_layers: int = -1  # layers with attention (-1: all)
    kv_elems: int = 0  # cache elements per token per attention layer (0: 2 kv_heads head_dim)
    kv_split: int = 0  # TP ranks the cache splits over at most (0: kv_heads; 1: replicated, MLA)
    attn_decode_flops: float = 0.0  # per query row, key position and layer, whole model (0: 4 H d)
    attn_prefill_flops: float = 0.0  # the same in prefill (0: 4 H d)
    ssm_layers: int = 0  # Mamba-2 layers
    ssm_state_elems: int = 0  # state elements per sequence per Mamba layer (SSM state + conv inputs)
    ssm_state_bytes: float = 0.0  # element bytes of the SSM state when the config fixes them (0: the KV dtype)
    ssm_flops_token: float = 0.0  # scan + conv FLOPs per prefill token per Mamba layer
    expert_format: str = ""  # storage the checkpoint fixes for the routed experts ("mxfp4": gpt-oss); "" = precision's

    # ---- the defaults resolved ---------------------------------------------------------------------------
    @property
    def n_moe_layers(self) -> int:
        return (self.layers if self.moe_layers < 0 else self.moe_layers) if self.num_experts else 0

    @property
    def n_attn_layers(self) -> int:
        return self.layers if self.attn_layers < 0 else self.attn_layers

    @property
    def kv_token_elems(self) -> int:
        return self.kv_elems or 2 * self.kv_heads * self.head_dim

    @property
    def kv_split_ways(self) -> int:
        return self.kv_split or self.kv_heads

    def layers_of(self, i: int) -> int:
        """Layers the i-th GEMM of ``gemms`` runs in."""
        return self.gemm_layers[i] if self.gemm_layers else self.layers


@functools.lru_cache(maxsize=256)
def model_shape(spec) -> Shape:
    """Read the shape from a decoder spec and check it against the estimator's ledger."""
    from ..specs.decoder import DecoderSpec
    from ..specs.transformer import TransformerSpec

    if isinstance(spec, DecoderSpec):
        return _decoder_shape(spec)
    if not isinstance(spec, TransformerSpec) or not spec.causal:
        raise InputError("model", f"{spec.name} is not a decoder-only language model; the serving engines model "
                                  "decoder LMs (dense, mixture-of-experts, MLA, Mamba and hybrids)")
    h, H, KV, d, f = spec.hidden, spec.heads, spec.n_kv_heads, spec.d_head, spec.ffn
    gemms = [("qkv", (H + 2 * KV) * d, h, True)] if spec.fused_qkv else [
        ("q", H * d, h, True), ("k", KV * d, h, True), ("v", KV * d, h, True)]
    gemms.append(("o", h, H * d, False))
    E, k = spec.num_experts, spec.top_k
    expert = 0
    if E:
        gemms.append(("router", E, h, None))
        expert = (3 if spec.gated_mlp else 2) * h * f
    elif spec.gated_mlp:
        gemms += [("gate_up", 2 * f, h, True)] if spec.fused_gate_up else [("gate", f, h, True), ("up", f, h, True)]
        gemms.append(("down", h, f, False))
    else:
        gemms += [("up", f, h, True), ("down", h, f, False)]
    rows = _rows(spec)
    total, matmul = _totals(rows)
    lm = spec.vocab_size * h
    per_layer = sum(n * kk for _, n, kk, _ in gemms) + E * expert
    _check(spec, per_layer * spec.layers + (0 if spec.tied_embeddings else lm), matmul)
    window = spec.sliding_window if spec.sliding_layers else 0
    return Shape(name=spec.name, layers=spec.layers, hidden=h, heads=H, kv_heads=KV, head_dim=d,
                 vocab=spec.vocab_size, ffn=f, num_experts=E, top_k=k, expert_params=expert, window=window,
                 window_layers=min(spec.sliding_layers, spec.layers) if window else 0,
                 max_positions=spec.max_positions, gemms=tuple(gemms),
                 other_params=total - matmul, lm_head_params=lm, tied=spec.tied_embeddings, total_params=total,
                 eager_ops=_eager_ops(rows))


def _rows(spec):
    return ledger(spec, make_ctx(spec, Workload(task="infer", batch=1, prompt=1, generate=1, precision="bf16"),
                                 "decode"))


def _totals(rows) -> tuple[int, int]:
    total = sum(r.params * r.count for r in rows)
    matmul = sum(r.matmul_params * r.count for r in rows if r.kind in ("linear", "moe_experts"))
    return total, matmul


def _eager_ops(rows) -> float:
    return sum(r.count * (r.host_ops or HOST_OPS.get(r.kind, 1.0)) for r in rows)


def _check(spec, modelled: float, matmul: float) -> None:
    if abs(modelled - matmul) > 1e-6 * max(matmul, 1):
        raise InputError("model", f"{spec.name}: serving shape ({modelled:,.0f} matmul weights) disagrees with the "
                                  f"ledger ({matmul:,}); this layout is not modelled")


def _decoder_shape(spec) -> Shape:
    """A ``DecoderSpec``: GEMMs from its ledger rows, cache and attention FLOPs from its blocks."""
    from ..specs.blocks import MLA, Attention, Mamba2, MoE

    h = spec.hidden
    rows = _rows(spec)
    total, matmul = _totals(rows)
    gemms, layers_of = [], []
    for r in rows:
        if r.kind != "linear" or r.name == "lm_head" or not r.gemm_mnk:
            continue
        _, n, k = r.gemm_mnk
        leaf = r.name.rsplit(".", 1)[-1]
        col = None if leaf in REPLICATED else (False if leaf in ROW_PARALLEL else True)
        gemms.append((leaf, int(n), int(k), col))
        layers_of.append(r.count)
    moe = [b for b in spec.blocks if isinstance(b.ffn, MoE)]
    if len({(b.ffn.experts, b.ffn.top_k, b.ffn.ffn, b.ffn.latent) for b in moe}) > 1:
        raise InputError("model", f"{spec.name}: MoE layers of different shapes are not modelled by the serving "
                                  "engines")
    E = moe[0].ffn.experts if moe else 0
    expert_rows = [r for r in rows if r.kind == "moe_experts"]
    expert = int(expert_rows[0].matmul_params // max(expert_rows[0].experts, 1)) if expert_rows else 0
    n_moe = sum(b.count for b in moe)
    lm = spec.vocab_size * h
    _check(spec, sum(c * n * k for c, (_, n, k, _) in zip(layers_of, gemms)) + n_moe * E * expert +
           (0 if spec.tied_embeddings else lm), matmul)

    attn = [b for b in spec.blocks if isinstance(b.mixer, (Attention, MLA))]
    ssm = [b for b in spec.blocks if isinstance(b.mixer, Mamba2)]
    kinds = {type(b.mixer) for b in attn}
    if len(kinds) > 1 or len({(b.mixer.heads, getattr(b.mixer, "kv_heads", 0), getattr(b.mixer, "head_dim", 0))
                              for b in attn}) > 1:
        raise InputError("model", f"{spec.name}: attention layers of different widths are not modelled by the "
                                  "serving engines")
    a = attn[0].mixer if attn else None
    if isinstance(a, MLA):
        H, qk = a.heads, a.qk_nope_head_dim + a.qk_rope_head_dim
        heads, kv_heads, d = H, H, qk
        kv_elems, kv_split = a.kv_lora_rank + a.qk_rope_head_dim, 1
        dec = 2.0 * H * (a.kv_lora_rank + a.qk_rope_head_dim) + 2.0 * H * a.kv_lora_rank
        pre = 2.0 * H * qk + 2.0 * H * a.v_head_dim
    elif a is not None:
        heads, kv_heads, d = a.heads, a.kv_heads, a.head_dim
        kv_elems, kv_split, dec, pre = 0, 0, 0.0, 0.0
    else:
        heads = kv_heads = d = kv_elems = 0
        kv_split, dec, pre = 1, 0.0, 0.0
    windowed = [b for b in attn if isinstance(b.mixer, Attention) and b.mixer.window]
    windows = {b.mixer.window for b in windowed}
    window = min(windows) if windows else 0  # one window per model (gpt-oss 128, Gemma 3 1024, Llama 4 8192)

    m = ssm[0].mixer if ssm else None
    state_elems = (m.heads * m.head_dim * m.state + m.conv_channels * (m.conv_kernel - 1)) if m else 0
    scan_flops = 0.0
    if m:
        pre_rows = ledger(spec, make_ctx(spec, Workload(task="infer", batch=1, prompt=m.chunk, generate=1,
                                                        precision="bf16"), "prefill"))
        n_ssm = sum(b.count for b in ssm)
        scan_flops = sum(r.forward_flops * r.count for r in pre_rows if r.kind in ("ssm_scan", "conv1d")) / (
            m.chunk * n_ssm)
    ffn = moe[0].ffn.ffn if moe else next((b.ffn.ffn for b in spec.blocks if b.ffn is not None), 0)
    return Shape(name=spec.name, layers=spec.layers, hidden=h, heads=heads, kv_heads=kv_heads, head_dim=d,
                 vocab=spec.vocab_size, ffn=ffn, num_experts=E, top_k=moe[0].ffn.top_k if moe else 0,
                 expert_params=expert, window=window, window_layers=sum(b.count for b in windowed),
                 max_positions=int(getattr(spec, "max_positions", 0) or 0), gemms=tuple(gemms),
                 other_params=total - matmul, lm_head_params=lm, tied=spec.tied_embeddings, total_params=total,
                 eager_ops=_eager_ops(rows), gemm_layers=tuple(layers_of), moe_layers=n_moe,
                 attn_layers=sum(b.count for b in attn), kv_elems=kv_elems, kv_split=kv_split,
                 attn_decode_flops=dec, attn_prefill_flops=pre, ssm_layers=sum(b.count for b in ssm),
                 ssm_state_elems=state_elems, ssm_state_bytes=m.state_bytes if m else 0.0,
                 ssm_flops_token=scan_flops, expert_format=expert_rows[0].weight_format if expert_rows else "")
