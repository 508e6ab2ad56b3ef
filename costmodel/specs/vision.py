"""Vision models: Vision Transformers (HF ``ViTModel`` / ``ViTForImageClassification``), ResNets
(HF ``ResNetModel`` / ``ResNetForImageClassification``) and plain conv nets described layer by
layer (``CNNSpec``, costmodel spec JSON with ``"family": "cnn"``).

docs/families/vision.md states every formula used here with its units and source.

What a pass sees (``Ctx``):
- ``ViTSpec`` and ``ResNetSpec`` take the image side from ``ctx.image_size`` (square images).
  Parameters come from the config (ViT position embeddings are sized from the config's
  ``image_size``; HF interpolates them to other sizes with ``interpolate_pos_encoding``).
- ``CNNSpec`` has a fixed input (its ``input`` field, usually with a flatten + linear head whose
  width depends on it), so it ignores ``ctx.image_size``.

Saved activations follow what eager PyTorch keeps for backward (checked with
``torch.autograd.graph.saved_tensors_hooks`` in tests/test_vision_specs.py). A tensor that
several ops save (a ReLU's output that the next conv saves as its input) is counted once, by
the first op that saves it. Convnet feature maps are stored in ``ctx.matmul_in_bytes``: the
16-bit compute dtype under autocast (convs output bf16/fp16, and BatchNorm -- not on autocast's
fp32 list -- keeps its input's dtype), the stream dtype otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..errors import InputError
from ..layers import Ctx, Layer, conv2d, elementwise, linear
from .base import ModelSpec

# ---------------------------------------------------------------------------------------------
# Activation functions of convnets: does the native kernel save its output or its input?
#   relu (threshold_backward on the result), tanh, sigmoid: the output
#   gelu, silu, leaky_relu: the input
ACT_SAVES = {"relu": "out", "tanh": "out", "sigmoid": "out", "gelu": "in", "silu": "in", "leaky_relu": "in"}
HF_VISION_ACTS = {"relu": "relu", "gelu": "gelu", "silu": "silu", "swish": "silu", "tanh": "tanh",
                  "sigmoid": "sigmoid", "leaky_relu": "leaky_relu"}
BN_STAT_BYTES = 8.0  # per channel: fp32 save_mean + save_invstd kept by batch_norm for backward
BN_BUFFER_BYTES_PER_CHANNEL = 8.0  # fp32 running_mean + running_var
BN_COUNTER_BYTES = 8.0  # int64 num_batches_tracked


def _conv_out(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output side of a conv/pool window: floor((size + 2*padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def _whole(value, field_name: str, lo: int = 1, hi: int = 1 << 24) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or not lo <= value <= hi:
        raise InputError(field_name, f"must be a whole number >= {lo} (at most {hi:,}), got {value!r:.60}")
    return int(value)


# ---------------------------------------------------------------------------------------------
# A tiny forward tracer shared by ResNet and CNN ledgers: it follows one tensor at a time and
# knows which storages autograd has already saved, so each storage is counted once.


class _Storage:
    __slots__ = ("saved",)

    def __init__(self, saved: bool = False):
        self.saved = saved


@dataclass
class _T:
    """A tensor of the forward pass: ``c`` channels of ``h`` x ``w`` (``h == w == 0``: flat)."""

    c: int
    h: int
    w: int
    nbytes: float  # bytes per element
    grad: bool = False  # requires grad (False for the input image)
    storage: _Storage = field(default_factory=_Storage)

    @property
    def flat(self) -> bool:
        return self.h == 0

    @property
    def per_sample(self) -> int:
        return self.c * (self.h * self.w if self.h else 1)


class _Net:
    """Emits ``Layer`` rows while tracing a forward pass of batch ``ctx.batch``."""

    def __init__(self, ctx: Ctx):
        self.ctx = ctx
        self.b = ctx.batch
        self.rows: list[Layer] = []
        self.count = 1
        self.block = ""
        self.held: _T | None = None  # residual kept alive across a block (inference working set)

    # -- helpers
    def elems(self, t: _T) -> int:
        return self.b * t.per_sample

    def size(self, t: _T) -> float:
        return self.elems(t) * t.nbytes

    def _save(self, t: _T) -> float:
        """Bytes newly saved when an op saves ``t`` (0 if its storage is already saved)."""
        if t.storage.saved:
            return 0.0
        t.storage.saved = True
        return self.size(t)

    def _traffic(self, x: _T, y: _T, cast: bool = False) -> float:
        """Bytes a forward kernel moves: its input and output (not the tensors merely held live,
        which ``_working`` adds for the memory peak). ``cast``: autocast first writes a 16-bit copy
        of the input, which the kernel then reads."""
        return self.size(x) + self.size(y) + (2.0 * self.elems(x) * self.ctx.compute_bytes if cast else 0.0)

    def _working(self, x: _T, y: _T) -> float:
        work = self.size(x) + self.size(y)
        if self.held is not None and self.held.storage is not x.storage:
            work += self.size(self.held)
        return work

    def add(self, row: Layer) -> None:
        self.rows.append(row)

    # -- layers
    def conv(self, name: str, x: _T, c_out: int, kernel: int, stride: int = 1, padding: int = 0, *,
             bias: bool, groups: int = 1, shares_input: bool = False) -> _T:
        ctx = self.ctx
        h, w = _conv_out(x.h, kernel, stride, padding), _conv_out(x.w, kernel, stride, padding)
        out_b = ctx.compute_bytes if ctx.autocast else x.nbytes
        if ctx.autocast and x.nbytes != ctx.compute_bytes:
            saved = self.elems(x) * ctx.compute_bytes  # autocast's own 16-bit cast copy of the input
        else:
            saved = self._save(x)
        y = _T(c_out, h, w, out_b, grad=True)
        row = conv2d(name, self.b, x.c, c_out, kernel, h, w, bias=bias, save_input_elems=self.elems(x),
                     save_bytes=x.nbytes, out_bytes=out_b, groups=groups, count=self.count, block=self.block,
                     stride=stride)
        self.add(replace(row, activation_bytes=saved, weight_input_bytes=saved, shares_input=shares_input,
                         input_grad_flops=row.input_grad_flops if x.grad else 0.0,
                         working_bytes=self._working(x, y),
                         traffic_bytes=self._traffic(x, y, cast=ctx.autocast and x.nbytes != ctx.compute_bytes)))
        return y

    def linear(self, name: str, x: _T, d_out: int, *, bias: bool, module: str = "") -> _T:
        ctx = self.ctx
        d_in = x.per_sample
        out_b = ctx.compute_bytes if ctx.autocast else x.nbytes
        if ctx.autocast and x.nbytes != ctx.compute_bytes:
            saved = self.elems(x) * ctx.compute_bytes
        else:
            saved = self._save(x)
        y = _T(d_out, 0, 0, out_b, grad=True)
        row = linear(name, self.b, d_in, d_out, bias=bias, save_input_bytes=0.0, out_bytes=out_b,
                     module=module, count=self.count, block=self.block)
        self.add(replace(row, activation_bytes=saved, weight_input_bytes=saved,
                         input_grad_flops=row.input_grad_flops if x.grad else 0.0,
                         working_bytes=self._working(x, y),
                         traffic_bytes=self._traffic(x, y, cast=ctx.autocast and x.nbytes != ctx.compute_bytes)))
        return y

    def batchnorm(self, name: str, x: _T) -> _T:
        """Training-mode batch_norm saves its input and fp32 save_mean / save_invstd per channel
        (and the running_mean / running_var buffers, which are persistent: see ``buffer_bytes``)."""
        c = x.c
        saved = self._save(x) + BN_STAT_BYTES * c
        y = _T(x.c, x.h, x.w, x.nbytes, grad=True)
        self.add(Layer(name=name, kind="batchnorm", count=self.count, block=self.block,
                       module=name.rsplit(".", 1)[-1], params=2 * c, bias_params=c, factored_state_elems=2 * c,
                       activation_bytes=saved, working_bytes=self._working(x, y),
                       # training mode reads the input twice: once for the batch statistics
                       traffic_bytes=self._traffic(x, y) + (self.size(x) if self.ctx.training else 0.0)))
        return y

    def act(self, name: str, x: _T, kind: str, residual: _T | None = None) -> _T:
        """The activation; with ``residual``, preceded by the in-place ``x += residual`` (which
        reads both and writes x: one more kernel and its traffic)."""
        y = _T(x.c, x.h, x.w, x.nbytes, grad=x.grad)
        if not x.grad:
            saved = 0.0  # nothing upstream needs a gradient
        elif ACT_SAVES[kind] == "out":
            saved = self._save(y)
        else:
            saved = self._save(x)
        add = 0.0 if residual is None else self.size(residual) + 2.0 * self.size(x)  # read both, write x
        self.add(elementwise(name, kind, saved_bytes=saved, working_bytes=self._working(x, y),
                             traffic_bytes=self._traffic(x, y) + add, count=self.count,
                             block=self.block, host_ops=0.0 if residual is None else 2.0))
        return y

    def maxpool(self, name: str, x: _T, kernel: int, stride: int, padding: int) -> _T:
        """max_pool2d_with_indices saves its input and the int64 argmax indices of the output."""
        y = _T(x.c, _conv_out(x.h, kernel, stride, padding), _conv_out(x.w, kernel, stride, padding), x.nbytes,
               grad=x.grad)
        saved = (self._save(x) + self.elems(y) * 8.0) if x.grad else 0.0
        self.add(elementwise(name, "maxpool2d", saved_bytes=saved, working_bytes=self._working(x, y),
                             traffic_bytes=self._traffic(x, y),
                             count=self.count, block=self.block))
        return y

    def avgpool(self, name: str, x: _T, kernel: int, stride: int, padding: int) -> _T:
        """avg_pool2d saves its input (its backward reads the input's shape from it)."""
        y = _T(x.c, _conv_out(x.h, kernel, stride, padding), _conv_out(x.w, kernel, stride, padding), x.nbytes,
               grad=x.grad)
        saved = self._save(x) if x.grad else 0.0
        self.add(elementwise(name, "avgpool2d", saved_bytes=saved, working_bytes=self._working(x, y),
                             traffic_bytes=self._traffic(x, y),
                             count=self.count, block=self.block))
        return y

    def adaptive_avgpool(self, name: str, x: _T, out: int) -> _T:
        """Output 1x1 is computed as mean(-1, -2) (saves nothing); other sizes save the input."""
        y = _T(x.c, out, out, x.nbytes, grad=x.grad)
        saved = self._save(x) if (x.grad and out != 1) else 0.0
        self.add(elementwise(name, "adaptive_avgpool2d", saved_bytes=saved, working_bytes=self._working(x, y),
                             traffic_bytes=self._traffic(x, y),
                             count=self.count, block=self.block))
        return y

    def dropout(self, name: str, x: _T, p: float) -> _T:
        """Active dropout keeps a 1-byte bool mask (CUDA native_dropout); inactive it is the identity."""
        if not (self.ctx.dropout and self.ctx.training and p > 0):
            return x
        y = _T(x.c, x.h, x.w, x.nbytes, grad=x.grad)
        self.add(elementwise(name, "dropout", saved_bytes=self.elems(x) * 1.0 if x.grad else 0.0,
                             working_bytes=self._working(x, y), traffic_bytes=self._traffic(x, y), count=self.count,
                             block=self.block))
        return y

    def flatten(self, x: _T) -> _T:
        """A view: same storage (so the same saved flag)."""
        return _T(x.per_sample, 0, 0, x.nbytes, grad=x.grad, storage=x.storage)

    def cross_entropy(self, logits: _T) -> None:
        """cross_entropy = log_softmax (saves its output; fp32 under autocast, whose fp32 list holds it)
        + nll_loss (saves the int64 targets)."""
        if not self.ctx.training:
            return
        lb = 4.0 if self.ctx.autocast else logits.nbytes
        self.add(elementwise("loss", "cross_entropy", saved_bytes=self.elems(logits) * lb + self.b * 8.0))


def _ce_loss_buffer(ctx: Ctx, classes: int) -> float:
    """Logits + fp32 gradient of log_softmax's output + gradient of the logits, alive at the start
    of backward: B*classes*(compute_bytes + 8). Same formula as TransformerSpec (tiny here)."""
    if not ctx.training or classes <= 0:
        return 0.0
    return ctx.batch * classes * (ctx.compute_bytes + 8.0)


def _num_labels(cfg: dict) -> int:
    labels = cfg.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    if cfg.get("num_labels") is not None:
        return _whole(cfg["num_labels"], "config.num_labels", 0)
    return 2  # transformers' PreTrainedConfig default


def _arch(cfg: dict, supported: dict, family: str) -> str:
    archs = cfg.get("architectures")
    if archs:
        if not isinstance(archs, list) or not isinstance(archs[0], str):
            raise InputError("config.architectures", "must be a list of class names")
        arch = archs[0]
    else:
        arch = [k for k in supported if k.endswith("ForImageClassification")][0] \
            if ("id2label" in cfg or "num_labels" in cfg) else [k for k in supported if k.endswith("Model")][0]
    if arch not in supported:
        raise InputError("config.architectures", f"{arch!r} is not supported for {family}; "
                         f"use one of {', '.join(supported)}")
    return arch


def _side(value, field_name: str) -> int:
    """An HF image_size / patch_size: an int or a square [h, w] pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise InputError(field_name, f"only square sizes are supported, got {value!r}")
        value = value[0]
    return _whole(value, field_name)


# =============================================================================================
# ViT


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
            _whole(getattr(self, name), f"model.{name}")
        _whole(self.num_labels, "model.num_labels", 0)
        _whole(self.pooler_size, "model.pooler_size", 0)
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
    from .hf import _act, _name, _req

    arch = VIT_ARCHS[_arch(cfg, VIT_ARCHS, "vit")]
    h = _req(cfg, "hidden_size", default=768)
    act = _act(cfg.get("hidden_act", "gelu"), "config.hidden_act")
    pooler_act = HF_VISION_ACTS.get(cfg.get("pooler_act") or "tanh")
    if pooler_act is None:
        raise InputError("config.pooler_act",
                         f"must be one of {', '.join(HF_VISION_ACTS)}, got {cfg.get('pooler_act')!r}")
    return ViTSpec(
        name=_name(cfg, "vit"), hidden=h, layers=_req(cfg, "num_hidden_layers", default=12),
        heads=_req(cfg, "num_attention_heads", default=12), ffn=_req(cfg, "intermediate_size", default=3072),
        activation=act, image_size=_side(cfg.get("image_size", 224), "config.image_size"),
        patch_size=_side(cfg.get("patch_size", 16), "config.patch_size"),
        channels=_req(cfg, "num_channels", default=3), qkv_bias=bool(cfg.get("qkv_bias", True)),
        pooler=arch["pooler"], pooler_size=_req(cfg, "pooler_output_size", default=h), pooler_act=pooler_act,
        num_labels=_num_labels(cfg) if arch["classifier"] else 0,
        hidden_dropout=_req(cfg, "hidden_dropout_prob", default=0.0, kind=float),
        attention_dropout=_req(cfg, "attention_probs_dropout_prob", default=0.0, kind=float),
    )


# =============================================================================================
# ResNet


@dataclass(frozen=True)
class ResNetSpec(ModelSpec):
    """He et al. 2016 (arXiv:1512.03385) as HF transformers ``models/resnet/modeling_resnet.py``:
    stem conv7x7/2 + BN + act + maxpool3x3/2, stages of basic (two 3x3) or bottleneck
    (1x1 -> 3x3 -> 1x1, width/4) blocks, a conv1x1 + BN shortcut where the shape changes,
    in-place residual add + act, adaptive average pool, and a linear classifier
    (``ResNetForImageClassification``; ``ResNetModel`` has none). Convs have no bias.
    ``activation`` (config ``hidden_act``) is used by the stem and after each residual add; the
    activations inside a block are always ReLU (HF's ``ResNetConvLayer`` default)."""

    channels: int = 3
    embedding_size: int = 64
    hidden_sizes: tuple[int, ...] = (256, 512, 1024, 2048)
    depths: tuple[int, ...] = (3, 4, 6, 3)
    layer_type: str = "bottleneck"
    activation: str = "relu"
    downsample_in_first_stage: bool = False
    downsample_in_bottleneck: bool = False
    num_labels: int = 1000  # 0 = no classifier (ResNetModel)

    family = "resnet"
    modality = "image"
    generative = False

    def __post_init__(self):
        object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
        object.__setattr__(self, "depths", tuple(self.depths))
        _whole(self.channels, "model.channels")
        _whole(self.embedding_size, "model.embedding_size")
        _whole(self.num_labels, "model.num_labels", 0)
        if not self.depths or len(self.depths) != len(self.hidden_sizes):
            raise InputError("model.depths", f"needs one depth per stage ({len(self.hidden_sizes)} hidden_sizes), "
                             f"got {list(self.depths)}")
        for i, d in enumerate(self.depths):
            _whole(d, f"model.depths[{i}]")
        for i, c in enumerate(self.hidden_sizes):
            _whole(c, f"model.hidden_sizes[{i}]", 4 if self.layer_type == "bottleneck" else 1)
        if self.layer_type not in ("basic", "bottleneck"):
            raise InputError("model.layer_type", f"must be basic or bottleneck, got {self.layer_type!r}")
        if self.activation not in ACT_SAVES:
            raise InputError("model.activation", f"must be one of {', '.join(ACT_SAVES)}, got {self.activation!r}")

    def _bn_channels(self) -> list[int]:
        """Channels of every BatchNorm2d."""
        out = [self.embedding_size]
        c_in = self.embedding_size
        for s, (c, d) in enumerate(zip(self.hidden_sizes, self.depths)):
            stride = 2 if (s > 0 or self.downsample_in_first_stage) else 1
            for i in range(d):
                inner = [c // 4, c // 4, c] if self.layer_type == "bottleneck" else [c, c]
                out.extend(inner)
                if i == 0 and (c_in != c or stride != 1):
                    out.append(c)
            c_in = c
        return out

    def buffer_bytes(self) -> float:
        """Non-parameter buffers, fp32 running_mean + running_var (8 bytes per channel) and one int64
        num_batches_tracked (8 bytes) per BatchNorm2d: ResNet-50 has 26,560 channels in 53 norms
        -> 26560*8 + 53*8 = 212,904 bytes."""
        bns = self._bn_channels()
        return sum(bns) * BN_BUFFER_BYTES_PER_CHANNEL + len(bns) * BN_COUNTER_BYTES

    def ledger(self, ctx: Ctx) -> list[Layer]:
        net = _Net(ctx)
        act = self.activation
        S = ctx.image_size
        x = _T(self.channels, S, S, ctx.stream_bytes, grad=False)  # pixel values
        net.block = "embedder"
        x = net.conv("embedder.convolution", x, self.embedding_size, 7, 2, 3, bias=False)
        x = net.batchnorm("embedder.normalization", x)
        x = net.act("embedder.activation", x, act)
        x = net.maxpool("embedder.pooler", x, 3, 2, 1)
        c_in = self.embedding_size
        for s, (c, depth) in enumerate(zip(self.hidden_sizes, self.depths)):
            stride = 2 if (s > 0 or self.downsample_in_first_stage) else 1
            net.block, net.count = f"stages.{s}.layers.0", 1
            x = self._block(net, f"stages.{s}.layers.0", x, c_in, c, stride)
            if depth > 1:
                net.block, net.count = f"stages.{s}.layers.*", depth - 1
                # every repeated block sees an input already saved by the previous block's activation;
                # trace one and count it depth-1 times
                x = self._block(net, f"stages.{s}.layers.*", x, c, c, 1)
            c_in = c
        net.block, net.count = "", 1
        x = net.adaptive_avgpool("pooler", x, 1)
        x = net.flatten(x)
        if self.num_labels:
            x = net.linear("classifier", x, self.num_labels, bias=True, module="classifier")
            net.cross_entropy(x)
        return net.rows

    def _block(self, net: _Net, tag: str, x: _T, c_in: int, c_out: int, stride: int) -> _T:
        # HF builds the inner ResNetConvLayers with their default activation="relu"; only the stem and
        # the activation after the residual add use config.hidden_act
        act, inner = self.activation, "relu"
        shortcut = c_in != c_out or stride != 1
        net.held = x
        if self.layer_type == "bottleneck":
            r = c_out // 4
            s1, s2 = (stride, 1) if self.downsample_in_bottleneck else (1, stride)
            y = net.conv(f"{tag}.conv1", x, r, 1, s1, 0, bias=False)
            y = net.batchnorm(f"{tag}.bn1", y)
            y = net.act(f"{tag}.act1", y, inner)
            y = net.conv(f"{tag}.conv2", y, r, 3, s2, 1, bias=False)
            y = net.batchnorm(f"{tag}.bn2", y)
            y = net.act(f"{tag}.act2", y, inner)
            y = net.conv(f"{tag}.conv3", y, c_out, 1, 1, 0, bias=False)
            y = net.batchnorm(f"{tag}.bn3", y)
        else:
            y = net.conv(f"{tag}.conv1", x, c_out, 3, stride, 1, bias=False)
            y = net.batchnorm(f"{tag}.bn1", y)
            y = net.act(f"{tag}.act1", y, inner)
            y = net.conv(f"{tag}.conv2", y, c_out, 3, 1, 1, bias=False)
            y = net.batchnorm(f"{tag}.bn2", y)
        res = x
        if shortcut:
            net.held = y  # the main branch's output waits for the shortcut
            res = net.conv(f"{tag}.shortcut.convolution", x, c_out, 1, stride, 0, bias=False, shares_input=True)
            res = net.batchnorm(f"{tag}.shortcut.normalization", res)
        # hidden_state += residual (in place: saves nothing), then the activation; HF's `residual`
        # variable keeps the residual alive until the block returns
        net.held = res
        out = net.act(f"{tag}.activation", y, act, residual=res)
        net.held = None
        return out

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        return _ce_loss_buffer(ctx, self.num_labels)


RESNET_ARCHS = {"ResNetModel": dict(classifier=False), "ResNetForImageClassification": dict(classifier=True)}


def resnet_from_hf(cfg: dict) -> ResNetSpec:
    """A ResNet ``config.json`` (model_type "resnet") -> ``ResNetSpec``. Defaults are ``ResNetConfig``'s."""
    from .hf import _name, _req

    arch = RESNET_ARCHS[_arch(cfg, RESNET_ARCHS, "resnet")]
    depths = cfg.get("depths", [3, 4, 6, 3])
    sizes = cfg.get("hidden_sizes", [256, 512, 1024, 2048])
    for key, val in (("depths", depths), ("hidden_sizes", sizes)):
        if not isinstance(val, (list, tuple)) or not val:
            raise InputError(f"config.{key}", f"must be a non-empty list of whole numbers, got {val!r}")
        for i, v in enumerate(val):
            _whole(v, f"config.{key}[{i}]")
    act = HF_VISION_ACTS.get(cfg.get("hidden_act") or "relu")
    if act is None:
        raise InputError("config.hidden_act",
                         f"must be one of {', '.join(HF_VISION_ACTS)}, got {cfg.get('hidden_act')!r}")
    layer_type = cfg.get("layer_type", "bottleneck")
    if layer_type not in ("basic", "bottleneck"):
        raise InputError("config.layer_type", f"must be basic or bottleneck, got {layer_type!r}")
    return ResNetSpec(
        name=_name(cfg, "resnet"), channels=_req(cfg, "num_channels", default=3),
        embedding_size=_req(cfg, "embedding_size", default=64), hidden_sizes=tuple(int(v) for v in sizes),
        depths=tuple(int(v) for v in depths), layer_type=layer_type, activation=act,
        downsample_in_first_stage=bool(cfg.get("downsample_in_first_stage", False)),
        downsample_in_bottleneck=bool(cfg.get("downsample_in_bottleneck", False)),
        num_labels=_num_labels(cfg) if arch["classifier"] else 0,
    )


# =============================================================================================
# Plain CNN described layer by layer

# type -> (required keys, optional keys with defaults)
CNN_LAYER_FIELDS: dict[str, tuple[tuple[str, ...], dict]] = {
    "conv2d": (("out_channels", "kernel"), {"stride": 1, "padding": 0, "bias": True, "groups": 1, "in_channels": None}),
    "linear": (("out_features",), {"bias": True, "in_features": None}),
    "batchnorm2d": ((), {}),
    "batchnorm1d": ((), {}),
    "maxpool2d": (("kernel",), {"stride": None, "padding": 0}),
    "avgpool2d": (("kernel",), {"stride": None, "padding": 0}),
    "adaptive_avgpool2d": ((), {"output_size": 1}),
    "dropout": ((), {"p": 0.5}),
    "flatten": ((), {}),
    **{a: ((), {}) for a in ACT_SAVES},
}


@dataclass(frozen=True)
class CNNLayer:
    """One layer of a ``CNNSpec``. Unused fields keep their defaults."""

    type: str
    out: int = 0  # conv2d out_channels / linear out_features
    kernel: int = 0
    stride: int = 0  # 0: pools default to their kernel
    padding: int = 0
    groups: int = 1
    bias: bool = True
    p: float = 0.0  # dropout probability
    output_size: int = 1  # adaptive_avgpool2d

    @property
    def step(self) -> int:
        """The stride in use: conv2d defaults to 1, pools to their kernel."""
        return self.stride or (1 if self.type == "conv2d" else self.kernel)

    def to_dict(self) -> dict:
        t = self.type
        if t == "conv2d":
            return {"type": t, "out_channels": self.out, "kernel": self.kernel, "stride": self.step,
                    "padding": self.padding, "bias": self.bias, "groups": self.groups}
        if t == "linear":
            return {"type": t, "out_features": self.out, "bias": self.bias}
        if t in ("maxpool2d", "avgpool2d"):
            return {"type": t, "kernel": self.kernel, "stride": self.step, "padding": self.padding}
        if t == "adaptive_avgpool2d":
            return {"type": t, "output_size": self.output_size}
        if t == "dropout":
            return {"type": t, "p": self.p}
        return {"type": t}


@dataclass(frozen=True)
class CNNSpec(ModelSpec):
    """A feed-forward conv net (an ``nn.Sequential`` of the layers), trained with cross-entropy on
    its final output. The input size is the spec's own (``in_height`` x ``in_width``):
    ``ctx.image_size`` is ignored, because a flatten + linear head fixes it."""

    in_channels: int = 1
    in_height: int = 28
    in_width: int = 28
    layers: tuple[CNNLayer, ...] = ()
    num_classes: int = 0  # 0: the final output's width

    family = "cnn"
    modality = "image"
    generative = False

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        for key in ("in_channels", "in_height", "in_width"):
            _whole(getattr(self, key), f"model.input.{key[3:]}")
        _whole(self.num_classes, "model.num_classes", 0)
        for i, L in enumerate(self.layers):
            where = f"model.layers[{i}]"
            if L.type not in CNN_LAYER_FIELDS:
                raise InputError(f"{where}.type", f"must be one of {', '.join(CNN_LAYER_FIELDS)}, got {L.type!r}")
            if L.type in ("conv2d", "linear"):
                _whole(L.out, f"{where}.{'out_channels' if L.type == 'conv2d' else 'out_features'}")
            if L.type in ("conv2d", "maxpool2d", "avgpool2d"):
                _whole(L.kernel, f"{where}.kernel")
                _whole(L.stride, f"{where}.stride", 0)
                _whole(L.padding, f"{where}.padding", 0)
            if L.type == "conv2d":
                _whole(L.groups, f"{where}.groups")
            if L.type == "adaptive_avgpool2d":
                _whole(L.output_size, f"{where}.output_size")
        self._shapes()  # raises InputError on a shape problem

    def _shapes(self) -> list[tuple[int, int, int]]:
        """(channels or features, h, w) after each layer (h == w == 0: flat); validates shapes."""
        c, h, w = self.in_channels, self.in_height, self.in_width
        out = []
        for i, L in enumerate(self.layers):
            where = f"model.layers[{i}]"
            t = L.type
            if t in ("conv2d", "maxpool2d", "avgpool2d", "adaptive_avgpool2d", "batchnorm2d") and h == 0:
                raise InputError(f"{where}.type", f"{t} needs a C x H x W feature map, but its input is flat "
                                 f"({c} features after a flatten/linear)")
            if t in ("conv2d", "maxpool2d", "avgpool2d"):
                k, s = L.kernel, L.step
                if L.padding * 2 > k and t != "conv2d":
                    raise InputError(f"{where}.padding", f"must be at most half the kernel ({k}), got {L.padding}")
                if h + 2 * L.padding < k or w + 2 * L.padding < k:
                    raise InputError(f"{where}.kernel", f"kernel {k} is larger than its input {h}x{w}"
                                     + (f" (+ padding {L.padding})" if L.padding else ""))
                if t == "conv2d":
                    if c % L.groups or L.out % L.groups:
                        raise InputError(f"{where}.groups", f"must divide in_channels {c} and out_channels {L.out}, "
                                         f"got {L.groups}")
                    c = L.out
                h, w = _conv_out(h, k, s, L.padding), _conv_out(w, k, s, L.padding)
            elif t == "adaptive_avgpool2d":
                if L.output_size > min(h, w):
                    raise InputError(f"{where}.output_size", f"must be at most its input {h}x{w}, got {L.output_size}")
                h = w = L.output_size
            elif t == "flatten":
                c, h, w = c * (h * w if h else 1), 0, 0
            elif t == "linear":
                if h != 0:
                    raise InputError(f"{where}.type", f"linear needs a flat input; its input is {c}x{h}x{w}: "
                                     "add {\"type\": \"flatten\"} before it")
                c = L.out
            elif t == "batchnorm1d" and h != 0:
                raise InputError(f"{where}.type", f"batchnorm1d needs a flat input; its input is {c}x{h}x{w} "
                                 "(use batchnorm2d)")
            out.append((c, h, w))
        if self.layers and out[-1][1] != 0:
            raise InputError("model.layers", f"must end with a flat output (flatten / linear) for the classification "
                             f"loss; it ends with a {out[-1][0]}x{out[-1][1]}x{out[-1][2]} feature map")
        final = out[-1][0] if out else self.in_channels * self.in_height * self.in_width
        if self.num_classes and self.num_classes != final:
            raise InputError("model.num_classes", f"must equal the final output width {final}, got {self.num_classes}")
        return out

    @property
    def classes(self) -> int:
        shapes = self._shapes()
        return shapes[-1][0] if shapes else self.in_channels * self.in_height * self.in_width

    def buffer_bytes(self) -> float:
        """BatchNorm running_mean + running_var (fp32, 8 bytes per channel) + int64 num_batches_tracked."""
        total = 0.0
        shapes = self._shapes()
        for i, L in enumerate(self.layers):
            if L.type in ("batchnorm2d", "batchnorm1d"):
                ch = shapes[i][0]
                total += ch * BN_BUFFER_BYTES_PER_CHANNEL + BN_COUNTER_BYTES
        return total

    def ledger(self, ctx: Ctx) -> list[Layer]:
        net = _Net(ctx)
        x = _T(self.in_channels, self.in_height, self.in_width, ctx.stream_bytes, grad=False)
        for i, L in enumerate(self.layers):
            name = f"layers.{i}"
            t = L.type
            if t == "conv2d":
                x = net.conv(name, x, L.out, L.kernel, L.step, L.padding, bias=L.bias, groups=L.groups)
            elif t == "linear":
                x = net.linear(name, x, L.out, bias=L.bias, module=name)
            elif t in ("batchnorm2d", "batchnorm1d"):
                x = net.batchnorm(name, x)
            elif t == "maxpool2d":
                x = net.maxpool(name, x, L.kernel, L.step, L.padding)
            elif t == "avgpool2d":
                x = net.avgpool(name, x, L.kernel, L.step, L.padding)
            elif t == "adaptive_avgpool2d":
                x = net.adaptive_avgpool(name, x, L.output_size)
            elif t == "dropout":
                x = net.dropout(name, x, L.p)
            elif t == "flatten":
                x = net.flatten(x)
            else:
                x = net.act(name, x, t)
        net.cross_entropy(x)
        return net.rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        return _ce_loss_buffer(ctx, self.classes)

    def to_dict(self) -> dict:
        """The costmodel spec JSON this was read from (``cnn_from_dict(spec.to_dict()) == spec``)."""
        out = {"family": "cnn", "name": self.name,
               "input": {"channels": self.in_channels, "height": self.in_height, "width": self.in_width},
               "layers": [L.to_dict() for L in self.layers]}
        if self.num_classes:
            out["num_classes"] = self.num_classes
        return out


def _bool(value, field_name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(field_name, f"must be true or false, got {value!r}")
    return value


def cnn_from_dict(data: dict) -> CNNSpec:
    """Validate a costmodel CNN spec dict; every problem is an ``InputError`` naming the field path."""
    if not isinstance(data, dict):
        raise InputError("model", "must be a JSON object")
    allowed = ("family", "name", "input", "layers", "num_classes")
    for key in data:
        if key not in allowed:
            raise InputError(f"model.{key}", f"unknown field; allowed: {', '.join(allowed)}")
    if data.get("family", "cnn") != "cnn":
        raise InputError("model.family", f"must be 'cnn' for a CNN spec, got {data.get('family')!r}")
    name = data.get("name", "cnn")
    if not isinstance(name, str) or not name.strip():
        raise InputError("model.name", f"must be a non-empty string, got {name!r}")
    inp = data.get("input")
    if not isinstance(inp, dict):
        raise InputError("model.input", "is required: {\"channels\": C, \"height\": H, \"width\": W}")
    for key in inp:
        if key not in ("channels", "height", "width"):
            raise InputError(f"model.input.{key}", "unknown field; allowed: channels, height, width")
    for key in ("channels", "height", "width"):
        if key not in inp:
            raise InputError(f"model.input.{key}", "is required")
    c, h, w = (_whole(inp[k], f"model.input.{k}") for k in ("channels", "height", "width"))
    layers_in = data.get("layers")
    if not isinstance(layers_in, list) or not layers_in:
        raise InputError("model.layers", "must be a non-empty list of layers such as "
                         "{\"type\": \"conv2d\", \"out_channels\": 32, \"kernel\": 3}")
    layers: list[CNNLayer] = []
    for i, raw in enumerate(layers_in):
        where = f"model.layers[{i}]"
        if not isinstance(raw, dict):
            raise InputError(where, f"must be an object with a 'type', got {raw!r}")
        t = raw.get("type")
        if t not in CNN_LAYER_FIELDS:
            raise InputError(f"{where}.type", f"must be one of {', '.join(CNN_LAYER_FIELDS)}, got {t!r}")
        required, optional = CNN_LAYER_FIELDS[t]
        for key in raw:
            if key != "type" and key not in required and key not in optional:
                known = ", ".join((*required, *optional)) or "none"
                raise InputError(f"{where}.{key}", f"unknown field for {t}; allowed: {known}")
        for key in required:
            if key not in raw:
                raise InputError(f"{where}.{key}", f"is required for {t}")
        kw: dict = {"type": t}
        if t == "conv2d":
            kw["out"] = _whole(raw["out_channels"], f"{where}.out_channels")
            kw["kernel"] = _whole(raw["kernel"], f"{where}.kernel")
            kw["stride"] = _whole(raw.get("stride", 1), f"{where}.stride")
            kw["padding"] = _whole(raw.get("padding", 0), f"{where}.padding", 0)
            kw["groups"] = _whole(raw.get("groups", 1), f"{where}.groups")
            kw["bias"] = _bool(raw.get("bias", True), f"{where}.bias")
            if raw.get("in_channels") is not None:
                _whole(raw["in_channels"], f"{where}.in_channels")
        elif t == "linear":
            kw["out"] = _whole(raw["out_features"], f"{where}.out_features")
            kw["bias"] = _bool(raw.get("bias", True), f"{where}.bias")
            if raw.get("in_features") is not None:
                _whole(raw["in_features"], f"{where}.in_features")
        elif t in ("maxpool2d", "avgpool2d"):
            kw["kernel"] = _whole(raw["kernel"], f"{where}.kernel")
            kw["stride"] = _whole(raw["stride"], f"{where}.stride") if raw.get("stride") is not None else kw["kernel"]
            kw["padding"] = _whole(raw.get("padding", 0), f"{where}.padding", 0)
        elif t == "adaptive_avgpool2d":
            kw["output_size"] = _whole(raw.get("output_size", 1), f"{where}.output_size")
        elif t == "dropout":
            p = raw.get("p", 0.5)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise InputError(f"{where}.p", f"must be a probability in [0, 1), got {p!r}")
            kw["p"] = float(p)
        layers.append(CNNLayer(**kw))
    num_classes = data.get("num_classes")
    num_classes = _whole(num_classes, "model.num_classes") if num_classes is not None else 0
    spec = CNNSpec(name=name, in_channels=c, in_height=h, in_width=w, layers=tuple(layers), num_classes=num_classes)
    # in_channels / in_features given: check them against the traced shapes
    shapes = spec._shapes()
    for i, raw in enumerate(layers_in):
        for key, what in (("in_channels", "channels"), ("in_features", "features")):
            if raw.get(key) is not None:
                got = shapes[i - 1][0] if i else (c if key == "in_channels" else c * h * w)
                if int(raw[key]) != got:
                    raise InputError(f"model.layers[{i}].{key}", f"is {raw[key]} but its input has {got} {what}")
    return spec


def build_torch_cnn(spec: CNNSpec):
    """The ``torch.nn.Sequential`` a ``CNNSpec`` describes (torch is imported here only)."""
    from torch import nn

    mods = []
    shapes = spec._shapes()
    for i, L in enumerate(spec.layers):
        c_in = shapes[i - 1][0] if i else spec.in_channels
        t = L.type
        if t == "conv2d":
            mods.append(nn.Conv2d(c_in, L.out, L.kernel, stride=L.step, padding=L.padding, groups=L.groups,
                                  bias=L.bias))
        elif t == "linear":
            mods.append(nn.Linear(c_in, L.out, bias=L.bias))
        elif t == "batchnorm2d":
            mods.append(nn.BatchNorm2d(c_in))
        elif t == "batchnorm1d":
            mods.append(nn.BatchNorm1d(c_in))
        elif t == "maxpool2d":
            mods.append(nn.MaxPool2d(L.kernel, stride=L.step, padding=L.padding))
        elif t == "avgpool2d":
            mods.append(nn.AvgPool2d(L.kernel, stride=L.step, padding=L.padding))
        elif t == "adaptive_avgpool2d":
            mods.append(nn.AdaptiveAvgPool2d(L.output_size))
        elif t == "dropout":
            mods.append(nn.Dropout(L.p))
        elif t == "flatten":
            mods.append(nn.Flatten())
        else:
            mods.append({"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid,
                         "leaky_relu": nn.LeakyReLU}[t]())
    return nn.Sequential(*mods)
