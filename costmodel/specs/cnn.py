"""Plain conv nets described layer by layer: ``CNNSpec`` (costmodel spec JSON with ``"family": "cnn"``).

A ``CNNSpec`` has a fixed input (its ``input`` field, usually with a flatten + linear head whose width
depends on it), so it ignores ``ctx.image_size``. The torch module it describes is built by
``costmodel.profiler.torch_models.build_torch_cnn``. docs/families/vision.md states each formula.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError
from ..layers import Ctx, Layer
from .base import ModelSpec
from .convnet import ACT_SAVES, BN_BUFFER_BYTES_PER_CHANNEL, BN_COUNTER_BYTES, _ce_loss_buffer, _conv_out, _Net, _T
from . import hf_fields as F

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
            F.whole(getattr(self, key), f"model.input.{key[3:]}")
        F.whole(self.num_classes, "model.num_classes", 0)
        for i, L in enumerate(self.layers):
            where = f"model.layers[{i}]"
            if L.type not in CNN_LAYER_FIELDS:
                raise InputError(f"{where}.type", f"must be one of {', '.join(CNN_LAYER_FIELDS)}, got {L.type!r}")
            if L.type in ("conv2d", "linear"):
                F.whole(L.out, f"{where}.{'out_channels' if L.type == 'conv2d' else 'out_features'}")
            if L.type in ("conv2d", "maxpool2d", "avgpool2d"):
                F.whole(L.kernel, f"{where}.kernel")
                F.whole(L.stride, f"{where}.stride", 0)
                F.whole(L.padding, f"{where}.padding", 0)
            if L.type == "conv2d":
                F.whole(L.groups, f"{where}.groups")
            if L.type == "adaptive_avgpool2d":
                F.whole(L.output_size, f"{where}.output_size")
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
    c, h, w = (F.whole(inp[k], f"model.input.{k}") for k in ("channels", "height", "width"))
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
            kw["out"] = F.whole(raw["out_channels"], f"{where}.out_channels")
            kw["kernel"] = F.whole(raw["kernel"], f"{where}.kernel")
            kw["stride"] = F.whole(raw.get("stride", 1), f"{where}.stride")
            kw["padding"] = F.whole(raw.get("padding", 0), f"{where}.padding", 0)
            kw["groups"] = F.whole(raw.get("groups", 1), f"{where}.groups")
            kw["bias"] = _bool(raw.get("bias", True), f"{where}.bias")
            if raw.get("in_channels") is not None:
                F.whole(raw["in_channels"], f"{where}.in_channels")
        elif t == "linear":
            kw["out"] = F.whole(raw["out_features"], f"{where}.out_features")
            kw["bias"] = _bool(raw.get("bias", True), f"{where}.bias")
            if raw.get("in_features") is not None:
                F.whole(raw["in_features"], f"{where}.in_features")
        elif t in ("maxpool2d", "avgpool2d"):
            kw["kernel"] = F.whole(raw["kernel"], f"{where}.kernel")
            kw["stride"] = F.whole(raw["stride"], f"{where}.stride") if raw.get("stride") is not None else kw["kernel"]
            kw["padding"] = F.whole(raw.get("padding", 0), f"{where}.padding", 0)
        elif t == "adaptive_avgpool2d":
            kw["output_size"] = F.whole(raw.get("output_size", 1), f"{where}.output_size")
        elif t == "dropout":
            p = raw.get("p", 0.5)
            if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise InputError(f"{where}.p", f"must be a probability in [0, 1), got {p!r}")
            kw["p"] = float(p)
        layers.append(CNNLayer(**kw))
    num_classes = data.get("num_classes")
    num_classes = F.whole(num_classes, "model.num_classes") if num_classes is not None else 0
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
