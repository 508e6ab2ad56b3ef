"""Vision Transformers: HF ``ViTModel`` / ``ViTForImageClassification`` (model_type "vit").

The pass takes the image side from ``ctx.image_size`` (square images). Parameters come from the
config (position embeddings are sized from the config's ``image_size``; HF interpolates them to
other sizes with ``interpolate_pos_encoding``). docs/families/vision.md states each formula.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from ..layers import Ctx, Layer, conv2d, elementwise, linear
from .base import ModelSpec
from .convnet import ACT_SAVES, HF_VISION_ACTS, _ce_loss_buffer
from . import hf_fields as F


@dataclass(frozen=True)
class ViTSpec(ModelSpec):
    """Dosovitskiy et al. 2021 (arXiv:2010.11929) as HF transformers ``models/vit/modeling_vit.py``:
    patch conv (k = stride = patch), CLS token, learned positions (1 x (n+1) x h), pre-LN encoder
    blocks (biases everywhere; qkv bias optional), GELU MLP, final LayerNorm, then either the
    pooler (``ViTModel``: dense + tanh on the CLS token) or a classifier on the CLS token
    (``ViTForImageClassification``)."""

    hidden: int = 768
    layers: int = 12
    heads: int = 12
    ffn: int = 3072
    activation: str = "gelu"
    image_size: int = 224  # of the config: sizes the position embeddings
    patch_size: int = 16
    channels: int = 3
    qkv_bias: bool = True
    pooler: bool = False
    pooler_size: int = 0  # 0: hidden
    pooler_act: str = "tanh"
    num_labels: int = 1000  # classifier width; 0 = no classifier
    hidden_dropout: float = 0.0
    attention_dropout: float = 0.0

    family = "vit"
    modality = "image"
    generative = False

    def __post_init__(self):
        for name in ("hidden", "layers", "heads", "ffn", "image_size", "patch_size", "channels"):
            F.whole(getattr(self, name), f"model.{name}")
        F.whole(self.num_labels, "model.num_labels", 0)
        F.whole(self.pooler_size, "model.pooler_size", 0)
        if self.patch_size > self.image_size:
            raise InputError("model.patch_size", f"must be at most image_size {self.image_size}, got {self.patch_size}")
        if self.pooler_act not in ACT_SAVES:
            raise InputError("model.pooler_act", f"must be one of {', '.join(ACT_SAVES)}, got {self.pooler_act!r}")
        self._encoder()  # validates heads / activation

    @property
    def config_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def patches(self, ctx: Ctx) -> int:
        if ctx.image_size < self.patch_size:
            raise InputError("image_size", f"must be at least the patch size {self.patch_size} of {self.name}, "
                             f"got {ctx.image_size}")
        return (ctx.image_size // self.patch_size) ** 2

    def _encoder(self):
        from .transformer import TransformerSpec  # the encoder blocks are TransformerSpec's pre-LN blocks

        return TransformerSpec(
            name=self.name, vocab_size=1, hidden=self.hidden, layers=self.layers, heads=self.heads, ffn=self.ffn,
            gated_mlp=False, activation=self.activation, norm="layernorm", norm_bias=True, qkv_bias=self.qkv_bias,
            out_bias=True, mlp_bias=True, positions="none", causal=False, post_norm=False, final_norm=True,
            head="none", hidden_dropout=self.hidden_dropout, attention_dropout=self.attention_dropout,
            module_names=("q_proj", "k_proj", "v_proj", "o_proj", "fc1", "fc1", "fc2"))

    def ledger(self, ctx: Ctx) -> list[Layer]:
        B, h, p, C = ctx.batch, self.hidden, self.patch_size, self.channels
        S = ctx.image_size
        n = self.patches(ctx)
        T = n + 1  # tokens per image: patches + CLS
        sb, cb, ab = ctx.stream_bytes, ctx.compute_bytes, ctx.matmul_in_bytes
        rows: list[Layer] = []
        # patch embedding: Conv2d(C, h, k=p, stride=p) over the whole image; it saves the image
        # (autocast: its 16-bit copy) and needs no input gradient (pixels do not require grad)
        patch = conv2d("embeddings.patch_embeddings.projection", B, C, h, p, S // p, S // p, bias=True,
                       save_input_elems=B * C * S * S, save_bytes=ab, out_bytes=cb, stride=p)
        rows.append(replace(patch, input_grad_flops=0.0))
        rows.append(Layer(name="embeddings.cls_token", kind="embedding", module="cls_token", params=h,
                          factored_state_elems=1 + h, working_bytes=B * T * h * sb))
        rows.append(Layer(name="embeddings.position_embeddings", kind="embedding", module="position_embeddings",
                          params=(self.config_patches + 1) * h, factored_state_elems=self.config_patches + 1 + h,
                          working_bytes=2 * B * T * h * sb))
        # encoder: TransformerSpec's pre-LN blocks and final norm over T tokens per image
        enc_ctx = replace(ctx, seq=T, kv_len=T)
        rows.extend(r for r in self._encoder().ledger(enc_ctx) if r.kind != "embedding")
        # head on the CLS token sequence_output[:, 0]: a strided view, so the matmul saves the whole
        # final-LayerNorm output storage (B*T*h); under autocast it saves a B*h 16-bit copy instead
        head_in = B * h * cb if ctx.autocast else B * T * h * sb
        if self.pooler:
            ps = self.pooler_size or h
            row = linear("pooler.dense", B, h, ps, bias=True, save_input_bytes=0.0, out_bytes=cb, module="dense")
            rows.append(replace(row, activation_bytes=head_in, weight_input_bytes=head_in))
            # tanh saves its output; an activation that saves its input saves dense's output: B*ps either way
            rows.append(elementwise("pooler.activation", self.pooler_act, saved_bytes=B * ps * cb,
                                    working_bytes=2 * B * ps * cb))
        if self.num_labels:
            row = linear("classifier", B, h, self.num_labels, bias=True, save_input_bytes=0.0, out_bytes=cb,
                         module="classifier")
            rows.append(replace(row, activation_bytes=head_in, weight_input_bytes=head_in))
            if ctx.training:
                lb = 4.0 if ctx.autocast else cb
                rows.append(elementwise("loss", "cross_entropy", saved_bytes=B * self.num_labels * lb + B * 8.0))
        return rows

    def checkpoint_bytes(self, ctx: Ctx) -> float:
        """HF gradient checkpointing (ViTLayer is a GradientCheckpointingLayer) keeps each layer's
        input hidden states: B*T*h*stream bytes."""
        return ctx.batch * (self.patches(ctx) + 1) * self.hidden * ctx.stream_bytes

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        return _ce_loss_buffer(ctx, self.num_labels)


VIT_ARCHS = {"ViTModel": dict(pooler=True, classifier=False),
             "ViTForImageClassification": dict(pooler=False, classifier=True)}


def vit_from_hf(cfg: dict) -> ViTSpec:
    """A ViT ``config.json`` (model_type "vit") -> ``ViTSpec``. Defaults are ``ViTConfig``'s."""
    arch = VIT_ARCHS[F.architecture(cfg, VIT_ARCHS, "vit")]
    h = F.req(cfg, "hidden_size", default=768)
    act = F.act(cfg.get("hidden_act", "gelu"), "config.hidden_act")
    pooler_act = HF_VISION_ACTS.get(cfg.get("pooler_act") or "tanh")
    if pooler_act is None:
        raise InputError("config.pooler_act",
                         f"must be one of {', '.join(HF_VISION_ACTS)}, got {cfg.get('pooler_act')!r}")
    return ViTSpec(
        name=F.name(cfg, "vit"), hidden=h, layers=F.req(cfg, "num_hidden_layers", default=12),
        heads=F.req(cfg, "num_attention_heads", default=12), ffn=F.req(cfg, "intermediate_size", default=3072),
        activation=act, image_size=F.square_side(cfg.get("image_size", 224), "config.image_size"),
        patch_size=F.square_side(cfg.get("patch_size", 16), "config.patch_size"),
        channels=F.req(cfg, "num_channels", default=3), qkv_bias=bool(cfg.get("qkv_bias", True)),
        pooler=arch["pooler"], pooler_size=F.req(cfg, "pooler_output_size", default=h), pooler_act=pooler_act,
        num_labels=F.num_labels(cfg) if arch["classifier"] else 0,
        hidden_dropout=F.req(cfg, "hidden_dropout_prob", default=0.0, kind=float),
        attention_dropout=F.req(cfg, "attention_probs_dropout_prob", default=0.0, kind=float),
    )
