"""ResNets: HF ``ResNetModel`` / ``ResNetForImageClassification`` (model_type "resnet").

The pass takes the image side from ``ctx.image_size`` (square images); rows come from the
convnet tracer (``specs/convnet.py``). docs/families/vision.md states each formula.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..layers import Ctx, Layer
from .base import ModelSpec
from .convnet import ACT_SAVES, BN_BUFFER_BYTES_PER_CHANNEL, BN_COUNTER_BYTES, HF_VISION_ACTS, _ce_loss_buffer, _Net, _T
from . import hf_fields as F


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
        F.whole(self.channels, "model.channels")
        F.whole(self.embedding_size, "model.embedding_size")
        F.whole(self.num_labels, "model.num_labels", 0)
        if not self.depths or len(self.depths) != len(self.hidden_sizes):
            raise InputError("model.depths", f"needs one depth per stage ({len(self.hidden_sizes)} hidden_sizes), "
                             f"got {list(self.depths)}")
        for i, d in enumerate(self.depths):
            F.whole(d, f"model.depths[{i}]")
        for i, c in enumerate(self.hidden_sizes):
            F.whole(c, f"model.hidden_sizes[{i}]", 4 if self.layer_type == "bottleneck" else 1)
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
    arch = RESNET_ARCHS[F.architecture(cfg, RESNET_ARCHS, "resnet")]
    depths = cfg.get("depths", [3, 4, 6, 3])
    sizes = cfg.get("hidden_sizes", [256, 512, 1024, 2048])
    for key, val in (("depths", depths), ("hidden_sizes", sizes)):
        if not isinstance(val, (list, tuple)) or not val:
            raise InputError(f"config.{key}", f"must be a non-empty list of whole numbers, got {val!r}")
        for i, v in enumerate(val):
            F.whole(v, f"config.{key}[{i}]")
    act = HF_VISION_ACTS.get(cfg.get("hidden_act") or "relu")
    if act is None:
        raise InputError("config.hidden_act",
                         f"must be one of {', '.join(HF_VISION_ACTS)}, got {cfg.get('hidden_act')!r}")
    layer_type = cfg.get("layer_type", "bottleneck")
    if layer_type not in ("basic", "bottleneck"):
        raise InputError("config.layer_type", f"must be basic or bottleneck, got {layer_type!r}")
    return ResNetSpec(
        name=F.name(cfg, "resnet"), channels=F.req(cfg, "num_channels", default=3),
        embedding_size=F.req(cfg, "embedding_size", default=64), hidden_sizes=tuple(int(v) for v in sizes),
        depths=tuple(int(v) for v in depths), layer_type=layer_type, activation=act,
        downsample_in_first_stage=bool(cfg.get("downsample_in_first_stage", False)),
        downsample_in_bottleneck=bool(cfg.get("downsample_in_bottleneck", False)),
        num_labels=F.num_labels(cfg) if arch["classifier"] else 0,
    )
