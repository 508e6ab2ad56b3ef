"""Keras-style layer lists (``"family": "sequential"``) and two-tower Wide & Deep recommenders
(``"family": "wide_deep"``): the small models courses teach with, written the way the course writes them.

A sequential spec is an input and a list of layers, as ``tf.keras.Sequential([...])`` takes them::

    {"family": "sequential", "name": "course-cnn-28", "input": {"shape": [28, 28, 1]},
     "layers": [{"type": "conv2d", "filters": 32, "kernel": 3, "activation": "relu"},
                {"type": "maxpool2d", "pool": 2}, {"type": "flatten"},
                {"type": "dense", "units": 128, "activation": "relu"},
                {"type": "dense", "units": 10, "activation": "softmax"}]}

Inputs: ``{"shape": [H, W, C]}`` (images, Keras' channels-last ``input_shape``), ``{"tokens": N}`` (token ids;
N = the padded length, 0 = any; the first layer is an embedding) or ``{"features": N}`` (flat vectors).
Layer types (Keras class names are accepted too: Conv2D, MaxPooling2D, AveragePooling2D,
GlobalAveragePooling1D/2D, GlobalMaxPooling1D/2D, MaxPooling1D, AveragePooling1D, Flatten, Dense, Embedding,
Dropout): ``conv2d`` (filters, kernel, strides 1, padding "valid" | "same", activation, use_bias),
``maxpool2d`` / ``avgpool2d`` (pool 2, strides = pool), ``maxpool1d`` / ``avgpool1d`` (over the sequence),
``global_avgpool1d`` / ``global_maxpool1d`` / ``global_avgpool2d`` / ``global_maxpool2d``, ``flatten``,
``dense`` (units, activation; on a sequence it acts on every position, as Keras' Dense does on the last
axis), ``embedding`` (input_dim = vocabulary, output_dim), ``dropout`` (rate).

The numbers are those of the same network in eager PyTorch (``nn.Conv2d``, ``nn.MaxPool2d``, ``nn.Linear``,
``nn.Embedding``, the activation modules, ``x.mean`` for global average pooling), so they follow the
conventions of costmodel.specs.vision's conv nets: 2 FLOPs per multiply-add (conv 2*b*h_out*w_out*c_out*c_in*k*k,
dense 2*tokens*d_in*d_out), pooling and activations 0 FLOPs; saved activations as autograd keeps them (a tensor
several ops save is counted once). The last layer's softmax (or sigmoid) is the loss: cross-entropy over its
units (binary cross-entropy for one sigmoid unit), as ``from_logits`` training computes it.

Output sizes (Keras / PyTorch docs): "valid" ``floor((n - k) / s) + 1`` (28, kernel 3 -> 26; 26, pool 2 -> 13),
"same" ``ceil(n / s)``. Parameters: conv ``k*k*c_in*filters + filters``, dense ``d_in*units + units``,
embedding ``input_dim*output_dim``; ``layer_table()`` lists every layer's output shape and parameters with the
arithmetic, which the dashboard's layer builder shows.

A net whose flatten turns a feature map into the input of a dense layer is built for one input size (the
dense layer is ``h*w*c`` wide): ``fixed_image_hw()`` says which, and other image sizes are refused
(costmodel.limits). A net that pools globally takes any size (``ctx.image_size``).

About 710 lines: the Keras layer vocabulary (one reader, one shape rule and one ledger row per layer type)
and the Wide & Deep towers share the shape walk, so they stay in one file a lecturer can read top to bottom.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from ..errors import InputError
from ..layers import Ctx, Layer, conv2d, elementwise, embedding, linear, pooling
from .base import ModelSpec

MAX_WIDTH = 1 << 24
MAX_LAYERS = 1024
ACTIVATIONS = ("linear", "relu", "tanh", "sigmoid", "softmax", "gelu", "silu")
# which tensor the activation's backward reads (eager PyTorch): relu/tanh/sigmoid their output, gelu/silu input
ACT_SAVES = {"relu": "out", "tanh": "out", "sigmoid": "out", "gelu": "in", "silu": "in"}
KERAS_NAMES = {
    "Conv2D": "conv2d", "MaxPooling2D": "maxpool2d", "MaxPool2D": "maxpool2d", "AveragePooling2D": "avgpool2d",
    "AvgPool2D": "avgpool2d", "GlobalAveragePooling2D": "global_avgpool2d", "GlobalMaxPooling2D": "global_maxpool2d",
    "GlobalAveragePooling1D": "global_avgpool1d", "GlobalMaxPooling1D": "global_maxpool1d",
    "MaxPooling1D": "maxpool1d", "AveragePooling1D": "avgpool1d", "Flatten": "flatten", "Dense": "dense",
    "Embedding": "embedding", "Dropout": "dropout",
}
LAYER_FIELDS = {  # type -> (required, optional with defaults)
    "conv2d": (("filters", "kernel"), {"strides": 1, "padding": "valid", "activation": "linear", "use_bias": True}),
    "maxpool2d": ((), {"pool": 2, "strides": None, "padding": "valid"}),
    "avgpool2d": ((), {"pool": 2, "strides": None, "padding": "valid"}),
    "maxpool1d": ((), {"pool": 2, "strides": None, "padding": "valid"}),
    "avgpool1d": ((), {"pool": 2, "strides": None, "padding": "valid"}),
    "global_avgpool1d": ((), {}), "global_maxpool1d": ((), {}),
    "global_avgpool2d": ((), {}), "global_maxpool2d": ((), {}),
    "flatten": ((), {}),
    "dense": (("units",), {"activation": "linear", "use_bias": True}),
    "embedding": (("input_dim", "output_dim"), {}),
    "dropout": ((), {"rate": 0.5}),
}
INPUT_KINDS = ("image", "tokens", "vector")


def _whole(v, where: str, lo: int = 1, hi: int = MAX_WIDTH) -> int:
    if isinstance(v, (list, tuple)):  # Keras kernel_size=(3, 3): square only
        if len(v) != 2 or v[0] != v[1]:
            raise InputError(where, f"only square sizes are supported, e.g. 3 or [3, 3]; got {v!r}")
        v = v[0]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != v or int(v) != v or not lo <= v <= hi:
        raise InputError(where, f"must be a whole number from {lo} to {hi}, got {v!r}")
    return int(v)


def out_size(n: int, k: int, s: int, padding: str) -> int:
    """Output side of a window: valid ``floor((n - k) / s) + 1``; same ``ceil(n / s)``."""
    if padding == "same":
        return -(-n // s)
    return (n - k) // s + 1


@dataclass(frozen=True)
class SeqLayer:
    """One layer of a ``SequentialSpec`` (unused fields keep their defaults)."""

    type: str
    units: int = 0  # dense units / conv filters / embedding output_dim
    kernel: int = 0  # conv kernel / pool size
    strides: int = 0  # 0: 1 for conv, the pool size for pools
    padding: str = "valid"
    activation: str = "linear"
    use_bias: bool = True
    rate: float = 0.0
    input_dim: int = 0  # embedding vocabulary

    @property
    def step(self) -> int:
        return self.strides or (1 if self.type == "conv2d" else self.kernel)

    def to_dict(self) -> dict:
        t = self.type
        if t == "conv2d":
            return {"type": t, "filters": self.units, "kernel": self.kernel, "strides": self.step,
                    "padding": self.padding, "activation": self.activation, "use_bias": self.use_bias}
        if t in ("maxpool2d", "avgpool2d", "maxpool1d", "avgpool1d"):
            return {"type": t, "pool": self.kernel, "strides": self.step, "padding": self.padding}
        if t == "dense":
            return {"type": t, "units": self.units, "activation": self.activation, "use_bias": self.use_bias}
        if t == "embedding":
            return {"type": t, "input_dim": self.input_dim, "output_dim": self.units}
        if t == "dropout":
            return {"type": t, "rate": self.rate}
        return {"type": t}


# ---- a tracer over one forward (each storage saved once) -------------------------------------------------

class _Storage:
    __slots__ = ("saved",)

    def __init__(self):
        self.saved = False


@dataclass
class _X:
    """A tensor of the forward: ``shape`` per sample, ("image", h, w, c) / ("seq", t, d) / ("flat", n)."""

    shape: tuple
    nbytes: float
    grad: bool = False
    storage: _Storage = field(default_factory=_Storage)

    @property
    def per_sample(self) -> int:
        return math.prod(self.shape[1:])


class _Tracer:
    def __init__(self, ctx: Ctx):
        self.ctx, self.b, self.rows = ctx, ctx.batch, []

    def elems(self, x: _X) -> int:
        return self.b * x.per_sample

    def size(self, x: _X) -> float:
        return self.elems(x) * x.nbytes

    def save(self, x: _X) -> float:
        if x.storage.saved:
            return 0.0
        x.storage.saved = True
        return self.size(x)

    def _matmul_input_saved(self, x: _X) -> float:
        """What a conv/linear keeps of its input for dW: autocast's own 16-bit copy, else the input itself."""
        ctx = self.ctx
        if ctx.autocast and x.nbytes != ctx.compute_bytes:
            return self.elems(x) * ctx.compute_bytes
        return self.save(x)

    def _cast(self, x: _X) -> float:
        ctx = self.ctx
        return 2.0 * self.elems(x) * ctx.compute_bytes if ctx.autocast and x.nbytes != ctx.compute_bytes else 0.0

    def act(self, name: str, x: _X, kind: str) -> _X:
        y = _X(x.shape, x.nbytes, grad=x.grad)
        if kind in ("linear", "softmax"):
            return x
        if not x.grad:
            saved = 0.0
        elif ACT_SAVES[kind] == "out":
            saved = self.save(y)
        else:
            saved = self.save(x)
        moved = self.size(x) + self.size(y)
        self.rows.append(elementwise(name, kind, saved_bytes=saved, working_bytes=moved, traffic_bytes=moved))
        return y


@dataclass(frozen=True)
class SequentialSpec(ModelSpec):
    """A Keras-style ``Sequential`` network (see the module docstring)."""

    input_kind: str = "image"  # image | tokens | vector
    in_height: int = 28
    in_width: int = 28
    in_channels: int = 1
    input_length: int = 0  # tokens: the padded length (0 = any); the default sequence length
    in_features: int = 0  # vector input
    layers: tuple[SeqLayer, ...] = ()

    family = "sequential"
    generative = False

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.input_kind not in INPUT_KINDS:
            raise InputError("model.input", f"must be an image shape, tokens or features, got {self.input_kind!r}")
        self._trace_shapes(None, None)  # validates the layer list

    @property
    def modality(self) -> str:  # type: ignore[override]
        return {"image": "image", "tokens": "text", "vector": "vector"}[self.input_kind]

    # ---- shapes ---------------------------------------------------------------------------------------
    def _input_shape(self, image_size: int | None, seq: int | None) -> tuple:
        if self.input_kind == "image":
            if image_size is not None and self.fixed_image_hw() is None:
                return ("image", image_size, image_size, self.in_channels)
            return ("image", self.in_height, self.in_width, self.in_channels)
        if self.input_kind == "tokens":
            return ("ids", seq if seq is not None else (self.input_length or 0))
        return ("flat", self.in_features)

    def _trace_shapes(self, image_size: int | None, seq: int | None) -> list[tuple]:
        """The output shape after each layer (validating the list); sequence length 0 = symbolic."""
        shape = self._input_shape(image_size, seq)
        out = []
        n = len(self.layers)
        if not n:
            raise InputError("model.layers", "must be a non-empty list of layers")
        for i, L in enumerate(self.layers):
            where = f"model.layers[{i}]"
            t = L.type
            kind = shape[0]
            if kind == "ids" and t != "embedding":
                raise InputError(f"{where}.type", "a token input needs an embedding first (token ids -> vectors)")
            if t == "embedding":
                if kind != "ids":
                    raise InputError(f"{where}.type", "an embedding takes token ids: only as the first layer of a "
                                                      "{\"tokens\": N} input")
                shape = ("seq", shape[1], L.units)
            elif t == "conv2d":
                if kind != "image":
                    raise InputError(f"{where}.type", f"conv2d needs an H x W x C feature map; its input is {fmt_shape(shape)}")
                _, h, w, _c = shape
                k, s = L.kernel, L.step
                if L.padding == "valid" and (h < k or w < k):
                    raise InputError(f"{where}.kernel", f"kernel {k} is larger than its input {h}x{w}")
                shape = ("image", out_size(h, k, s, L.padding), out_size(w, k, s, L.padding), L.units)
            elif t in ("maxpool2d", "avgpool2d"):
                if kind != "image":
                    raise InputError(f"{where}.type", f"{t} needs an H x W x C feature map; its input is {fmt_shape(shape)}")
                _, h, w, c = shape
                k, s = L.kernel, L.step
                if L.padding == "valid" and (h < k or w < k):
                    raise InputError(f"{where}.pool", f"pool {k} is larger than its input {h}x{w}")
                shape = ("image", out_size(h, k, s, L.padding), out_size(w, k, s, L.padding), c)
            elif t in ("maxpool1d", "avgpool1d"):
                if kind != "seq":
                    raise InputError(f"{where}.type", f"{t} needs a sequence (T x D); its input is {fmt_shape(shape)}")
                T = shape[1]
                if T and L.padding == "valid" and T < L.kernel:
                    raise InputError(f"{where}.pool", f"pool {L.kernel} is longer than the sequence {T}")
                shape = ("seq", out_size(T, L.kernel, L.step, L.padding) if T else 0, shape[2])
            elif t in ("global_avgpool2d", "global_maxpool2d"):
                if kind != "image":
                    raise InputError(f"{where}.type", f"{t} needs an H x W x C feature map; its input is {fmt_shape(shape)}")
                shape = ("flat", shape[3])
            elif t in ("global_avgpool1d", "global_maxpool1d"):
                if kind != "seq":
                    raise InputError(f"{where}.type", f"{t} needs a sequence (T x D); its input is {fmt_shape(shape)}")
                shape = ("flat", shape[2])
            elif t == "flatten":
                if kind == "seq" and not shape[1]:
                    raise InputError(f"{where}.type", "flatten of a sequence needs a fixed length: give the input "
                                                      "{\"tokens\": N}, or pool it (global_avgpool1d)")
                shape = ("flat", math.prod(shape[1:]))
            elif t == "dense":
                if kind == "image":
                    raise InputError(f"{where}.type", f"dense needs a flat input or a sequence; its input is "
                                                      f"{fmt_shape(shape)}: add a flatten (or a global pooling) before it")
                shape = ("seq", shape[1], L.units) if kind == "seq" else ("flat", L.units)
            elif t == "dropout":
                pass
            if L.activation == "softmax" and i != n - 1:
                raise InputError(f"{where}.activation", "softmax is modelled on the last layer only (it is the "
                                                        "cross-entropy loss's); use relu, tanh, sigmoid, gelu or silu")
            out.append(shape)
        last = out[-1]
        if last[0] != "flat":
            raise InputError("model.layers", f"must end with a flat output (dense after a flatten or a global pooling) "
                                             f"for the classification loss; it ends with {fmt_shape(last)}")
        return out

    def fixed_image_hw(self) -> tuple[int, int] | None:
        """(height, width) when a flatten of a feature map feeds a dense layer (the dense width depends on it)."""
        if self.input_kind != "image":
            return None
        kind = "image"
        for L in self.layers:
            if L.type == "flatten" and kind == "image":
                return (self.in_height, self.in_width)
            if L.type in ("global_avgpool2d", "global_maxpool2d"):
                kind = "flat"
        return None

    @property
    def max_positions(self) -> int:
        """A token input flattened before a dense layer takes exactly its padded length; else any length (0)."""
        if self.input_kind == "tokens" and any(L.type == "flatten" for L in self.layers):
            return self.input_length
        return 0

    @property
    def default_seq(self) -> int:
        return self.input_length

    @property
    def classes(self) -> int:
        return self._trace_shapes(None, None)[-1][1]

    @property
    def loss_kind(self) -> str:
        """"binary" (one sigmoid unit: binary cross-entropy) or "categorical" (softmax cross-entropy)."""
        last = self.layers[-1]
        return "binary" if last.activation == "sigmoid" and self.classes == 1 else "categorical"

    # ---- what the builder shows -----------------------------------------------------------------------
    def layer_table(self, image_size: int | None = None, seq: int | None = None) -> list[dict]:
        """One row per layer: its output shape (Keras order, batch left out), parameters with the arithmetic,
        and how the output size follows from the input (e.g. "(28 - 3) / 1 + 1 = 26")."""
        shapes = self._trace_shapes(image_size, seq)
        prev = self._input_shape(image_size, seq)
        rows = [{"layer": "input", "type": self.input_kind, "output_shape": fmt_shape(prev), "params": 0,
                 "params_arithmetic": "", "size_arithmetic": ""}]
        for i, (L, shape) in enumerate(zip(self.layers, shapes)):
            params, how = _params_of(L, prev)
            size = ""
            if L.type in ("conv2d", "maxpool2d", "avgpool2d", "maxpool1d", "avgpool1d"):
                n_in = prev[1]
                n_out = shape[1]
                if n_in:
                    size = (f"({n_in} - {L.kernel}) / {L.step} + 1 = {n_out}" if L.padding == "valid"
                            else f"ceil({n_in} / {L.step}) = {n_out}")
            elif L.type == "flatten":
                size = " x ".join(str(d) for d in prev[1:]) + f" = {shape[1]:,}"
            act = f" ({L.activation})" if L.type in ("conv2d", "dense") and L.activation != "linear" else ""
            rows.append({"layer": f"{L.type}_{i}", "type": L.type + act, "output_shape": fmt_shape(shape),
                         "params": params, "params_arithmetic": how, "size_arithmetic": size})
            prev = shape
        return rows

    def param_count(self) -> int:
        return sum(r["params"] for r in self.layer_table())

    # ---- the ledger -----------------------------------------------------------------------------------
    def ledger(self, ctx: Ctx) -> list[Layer]:
        shapes = self._trace_shapes(ctx.image_size, ctx.seq)
        tr = _Tracer(ctx)
        b, cb = ctx.batch, ctx.compute_bytes
        first = self._input_shape(ctx.image_size, ctx.seq)
        if first[0] == "ids":
            x = _X(("ids", first[1]), 8.0)
        else:
            x = _X(first, ctx.stream_bytes)
        for i, (L, shape) in enumerate(zip(self.layers, shapes)):
            name = f"layers.{i}.{L.type}"
            t = L.type
            last = i == len(self.layers) - 1
            out_b = cb if ctx.autocast else x.nbytes
            if t == "embedding":
                T = x.shape[1]
                row = embedding(name, b * T, L.input_dim, L.units, out_bytes=ctx.stream_bytes)
                x = _X(shape, ctx.stream_bytes, grad=True)
                tr.rows.append(replace(row, traffic_bytes=b * T * (8.0 + L.units * ctx.stream_bytes)))
            elif t == "conv2d":
                _, h, w, c_in = x.shape
                saved = tr._matmul_input_saved(x)
                y = _X(shape, out_b, grad=True)
                row = conv2d(name, b, c_in, L.units, L.kernel, shape[1], shape[2], bias=L.use_bias,
                             save_input_elems=tr.elems(x), save_bytes=x.nbytes, out_bytes=out_b, stride=L.step)
                moved = tr.size(x) + tr.size(y) + tr._cast(x)
                tr.rows.append(replace(row, activation_bytes=saved, weight_input_bytes=saved,
                                       input_grad_flops=row.input_grad_flops if x.grad else 0.0,
                                       working_bytes=tr.size(x) + tr.size(y), traffic_bytes=moved))
                x = y
                if not last or L.activation not in ("softmax", "sigmoid"):
                    x = tr.act(f"layers.{i}.{L.activation}", x, L.activation)
            elif t == "dense":
                tokens = b * (x.shape[1] if x.shape[0] == "seq" else 1)
                d_in = x.shape[-1]
                saved = tr._matmul_input_saved(x)
                y = _X(shape, out_b, grad=True)
                row = linear(name, tokens, d_in, L.units, bias=L.use_bias, save_input_bytes=0.0, out_bytes=out_b,
                             module=f"layers.{i}")
                moved = tr.size(x) + tr.size(y) + tr._cast(x)
                tr.rows.append(replace(row, activation_bytes=saved, weight_input_bytes=saved,
                                       input_grad_flops=row.input_grad_flops if x.grad else 0.0,
                                       working_bytes=tr.size(x) + tr.size(y), traffic_bytes=moved))
                x = y
                if not last or L.activation not in ("softmax", "sigmoid"):
                    x = tr.act(f"layers.{i}.{L.activation}", x, L.activation)
            elif t in ("maxpool2d", "maxpool1d", "avgpool2d", "avgpool1d", "global_avgpool2d", "global_avgpool1d",
                       "global_maxpool2d", "global_maxpool1d"):
                y = _X(shape, x.nbytes, grad=x.grad)
                if not x.grad:
                    saved = 0.0
                elif t.startswith("maxpool"):
                    saved = tr.save(x) + tr.elems(y) * 8.0  # input + int64 argmax per output
                elif t.startswith("avgpool"):
                    saved = tr.save(x)
                elif t.startswith("global_max"):
                    saved = tr.save(x) + tr.save(y)  # amax backward: input and output
                else:
                    saved = 0.0  # mean over dims keeps nothing
                kind = "global_avgpool" if t.startswith("global_avg") else (
                    "global_maxpool" if t.startswith("global_max") else t)
                tr.rows.append(pooling(name, kind, in_elems=tr.elems(x), out_elems=tr.elems(y), elem_bytes=x.nbytes,
                                       saved_bytes=saved))
                x = y
            elif t == "flatten":
                x = _X(shape, x.nbytes, grad=x.grad, storage=x.storage)  # a view
            elif t == "dropout":
                if ctx.training and ctx.dropout and L.rate > 0:
                    y = _X(shape, x.nbytes, grad=x.grad)
                    moved = tr.size(x) + tr.size(y)
                    tr.rows.append(elementwise(name, "dropout", saved_bytes=tr.elems(x) * 1.0 if x.grad else 0.0,
                                               working_bytes=moved, traffic_bytes=moved))
                    x = y
        if ctx.training:
            lb = 4.0 if ctx.autocast else x.nbytes
            units = x.shape[-1]
            if self.loss_kind == "binary":  # BCE with logits keeps its input and the float targets
                saved = b * units * lb + b * units * 4.0
                kind = "binary_cross_entropy"
            else:  # log_softmax output + int64 targets
                saved = b * units * lb + b * 8.0
                kind = "cross_entropy"
            tr.rows.append(elementwise("loss", kind, saved_bytes=saved))
        return tr.rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Logits + fp32 gradient of the loss's input + gradient of the logits: B*classes*(compute + 8)."""
        if not ctx.training:
            return 0.0
        return ctx.batch * self.classes * (ctx.compute_bytes + 8.0)

    def to_dict(self) -> dict:
        if self.input_kind == "image":
            inp = {"shape": [self.in_height, self.in_width, self.in_channels]}
        elif self.input_kind == "tokens":
            inp = {"tokens": self.input_length}
        else:
            inp = {"features": self.in_features}
        return {"family": "sequential", "name": self.name, "input": inp, "layers": [L.to_dict() for L in self.layers]}


def fmt_shape(shape: tuple) -> str:
    """A per-sample shape as the course writes it: "26 x 26 x 32", "T x 16" (T: the sequence length), "5,408"."""
    kind = shape[0]
    if kind == "image":
        return f"{shape[1]} x {shape[2]} x {shape[3]}"
    if kind == "seq":
        return f"{shape[1] or 'T'} x {shape[2]}"
    if kind == "ids":
        return f"{shape[1] or 'T'} token ids"
    return f"{shape[1]:,}"


def _params_of(L: SeqLayer, prev: tuple) -> tuple[int, str]:
    if L.type == "conv2d":
        c_in = prev[3]
        w = L.kernel * L.kernel * c_in * L.units
        b = L.units if L.use_bias else 0
        return w + b, f"{L.kernel}*{L.kernel}*{c_in}*{L.units}" + (f" + {L.units}" if b else "") + f" = {w + b:,}"
    if L.type == "dense":
        d_in = prev[-1]
        w = d_in * L.units
        b = L.units if L.use_bias else 0
        return w + b, f"{d_in:,}*{L.units:,}" + (f" + {L.units:,}" if b else "") + f" = {w + b:,}"
    if L.type == "embedding":
        return L.input_dim * L.units, f"{L.input_dim:,}*{L.units:,} = {L.input_dim * L.units:,}"
    return 0, ""


# ---- reading the JSON --------------------------------------------------------------------------------------

def _layer_from_dict(raw, i: int) -> SeqLayer:
    where = f"model.layers[{i}]"
    if not isinstance(raw, dict):
        raise InputError(where, f"must be an object with a 'type', got {raw!r:.60}")
    t = raw.get("type")
    t = KERAS_NAMES.get(t, t)
    if t not in LAYER_FIELDS:
        raise InputError(f"{where}.type", f"must be one of {', '.join(LAYER_FIELDS)} (or a Keras name such as "
                                          f"Conv2D, MaxPooling2D, Dense), got {raw.get('type')!r:.40}")
    required, optional = LAYER_FIELDS[t]
    aliases = {"kernel_size": "kernel", "pool_size": "pool", "stride": "strides", "bias": "use_bias",
               "out_channels": "filters", "out_features": "units"}
    data = {aliases.get(k, k): v for k, v in raw.items() if k != "type"}
    for k in data:
        if k not in required and k not in optional:
            raise InputError(f"{where}.{k}", f"unknown field for {t}; allowed: {', '.join((*required, *optional)) or 'none'}")
    for k in required:
        if k not in data:
            raise InputError(f"{where}.{k}", f"is required for {t}")
    kw: dict = {"type": t}
    pad = data.get("padding", "valid")
    if pad not in ("valid", "same"):
        raise InputError(f"{where}.padding", f"must be valid or same, got {pad!r:.40}")
    if t == "conv2d":
        kw.update(units=_whole(data["filters"], f"{where}.filters"), kernel=_whole(data["kernel"], f"{where}.kernel"),
                  strides=_whole(data.get("strides", 1), f"{where}.strides"), padding=pad)
    elif t in ("maxpool2d", "avgpool2d", "maxpool1d", "avgpool1d"):
        k = _whole(data.get("pool", 2), f"{where}.pool")
        s = data.get("strides")
        kw.update(kernel=k, strides=_whole(s, f"{where}.strides") if s is not None else k, padding=pad)
    elif t == "dense":
        kw["units"] = _whole(data["units"], f"{where}.units")
    elif t == "embedding":
        kw.update(input_dim=_whole(data["input_dim"], f"{where}.input_dim"),
                  units=_whole(data["output_dim"], f"{where}.output_dim"))
    elif t == "dropout":
        r = data.get("rate", 0.5)
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 <= r < 1:
            raise InputError(f"{where}.rate", f"must be a probability from 0 to below 1, got {r!r:.40}")
        kw["rate"] = float(r)
    if t in ("conv2d", "dense"):
        act = data.get("activation", "linear")
        act = "linear" if act is None else act
        if act not in ACTIVATIONS:
            raise InputError(f"{where}.activation", f"must be one of {', '.join(ACTIVATIONS)}, got {act!r:.40}")
        ub = data.get("use_bias", True)
        if not isinstance(ub, bool):
            raise InputError(f"{where}.use_bias", f"must be true or false, got {ub!r:.40}")
        kw.update(activation=act, use_bias=ub)
    return SeqLayer(**kw)


def sequential_from_dict(data: dict) -> SequentialSpec:
    """Validate a sequential spec dict; every problem is an ``InputError`` naming the field path."""
    if not isinstance(data, dict):
        raise InputError("model", "must be a JSON object")
    allowed = ("family", "name", "input", "layers")
    for k in data:
        if k not in allowed:
            raise InputError(f"model.{k}", f"unknown field for a sequential spec; allowed: {', '.join(allowed)}")
    name = data.get("name", "sequential")
    if not isinstance(name, str) or not name.strip():
        raise InputError("model.name", f"must be a non-empty string, got {name!r:.40}")
    inp = data.get("input")
    if not isinstance(inp, dict) or len(inp) != 1 or next(iter(inp)) not in ("shape", "tokens", "features"):
        raise InputError("model.input", "is required: {\"shape\": [H, W, C]} (images), {\"tokens\": N} (token ids, "
                                        "N = padded length or 0) or {\"features\": N} (vectors)")
    kw: dict = {}
    if "shape" in inp:
        shp = inp["shape"]
        if not isinstance(shp, list) or len(shp) != 3:
            raise InputError("model.input.shape", f"must be [height, width, channels] (Keras input_shape), got {shp!r:.60}")
        kw.update(input_kind="image", in_height=_whole(shp[0], "model.input.shape[0]"),
                  in_width=_whole(shp[1], "model.input.shape[1]"), in_channels=_whole(shp[2], "model.input.shape[2]"))
    elif "tokens" in inp:
        kw.update(input_kind="tokens", input_length=_whole(inp["tokens"], "model.input.tokens", lo=0))
    else:
        kw.update(input_kind="vector", in_features=_whole(inp["features"], "model.input.features"))
    layers = data.get("layers")
    if not isinstance(layers, list) or not layers:
        raise InputError("model.layers", "must be a non-empty list of layers such as "
                                         "{\"type\": \"dense\", \"units\": 10, \"activation\": \"softmax\"}")
    if len(layers) > MAX_LAYERS:
        raise InputError("model.layers", f"must have at most {MAX_LAYERS} layers, got {len(layers)}")
    return SequentialSpec(name=name, layers=tuple(_layer_from_dict(r, i) for i, r in enumerate(layers)), **kw)


# =============================================================================================================
# Wide & Deep (Cheng et al. 2016, arXiv:1606.07792): a linear model over sparse cross-product features (wide)
# beside an MLP over embedded categorical features and dense features (deep); their logits are summed into one
# sigmoid unit trained with binary cross-entropy.

@dataclass(frozen=True)
class WideDeepSpec(ModelSpec):
    """``wide_features``: hashed cross-product columns (one weight each) + 1 bias, of which ``wide_active``
    are non-zero per example; ``fields``: (vocabulary, embedding dim) per categorical feature;
    ``dense_features``: numeric inputs concatenated with the embeddings; ``hidden``: the deep MLP's widths
    (ReLU); one output unit per tower (deep: ``hidden[-1] + 1`` parameters).

    Parameters = (wide_features + 1) + sum(vocab x dim) + sum over the MLP of (d_in x d_out + d_out).
    Embedding lookups and the wide sum are gathers (0 FLOPs, memory-bound); the MLP is 2 x batch x d_in x
    d_out FLOPs per layer."""

    wide_features: int = 10_000
    wide_active: int = 8
    fields: tuple[tuple[int, int], ...] = ((1000, 32),) * 8
    dense_features: int = 16
    hidden: tuple[int, ...] = (1024, 512, 256)

    family = "wide_deep"
    modality = "vector"
    generative = False

    def __post_init__(self):
        object.__setattr__(self, "fields", tuple(tuple(f) for f in self.fields))
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _whole(self.wide_features, "model.wide.features", lo=0)
        _whole(self.wide_active, "model.wide.active", lo=0)
        _whole(self.dense_features, "model.deep.dense_features", lo=0)
        for i, (v, d) in enumerate(self.fields):
            _whole(v, f"model.deep.fields[{i}].vocab")
            _whole(d, f"model.deep.fields[{i}].dim")
        for i, h in enumerate(self.hidden):
            _whole(h, f"model.deep.hidden[{i}]")
        if not self.deep_in:
            raise InputError("model.deep", "needs categorical fields or dense features for the deep tower")

    @property
    def deep_in(self) -> int:
        return sum(d for _, d in self.fields) + self.dense_features

    def layer_table(self) -> list[dict]:
        rows = [{"layer": "wide", "type": "linear over sparse cross features", "output_shape": "1",
                 "params": self.wide_features + 1, "params_arithmetic": f"{self.wide_features:,} + 1 = "
                 f"{self.wide_features + 1:,}", "size_arithmetic": f"{self.wide_active} active per example"}]
        for i, (v, d) in enumerate(self.fields):
            rows.append({"layer": f"deep.embedding_{i}", "type": "embedding", "output_shape": f"{d}",
                         "params": v * d, "params_arithmetic": f"{v:,}*{d} = {v * d:,}", "size_arithmetic": ""})
        widths = [self.deep_in, *self.hidden, 1]
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            rows.append({"layer": f"deep.dense_{i}", "type": "dense" + ("" if last else " (relu)"),
                         "output_shape": f"{b:,}", "params": a * b + b,
                         "params_arithmetic": f"{a:,}*{b:,} + {b:,} = {a * b + b:,}",
                         "size_arithmetic": f"input {self.deep_in:,} = embeddings + {self.dense_features} dense"
                         if i == 0 else ""})
        return rows

    def ledger(self, ctx: Ctx) -> list[Layer]:
        b, sb, cb = ctx.batch, ctx.stream_bytes, ctx.compute_bytes
        out_b = cb if ctx.autocast else sb
        rows: list[Layer] = []
        # wide: EmbeddingBag(sum) of dim 1 over the active columns + a bias
        wide = embedding("wide.linear", b * self.wide_active, self.wide_features, 1, out_bytes=sb)
        rows.append(replace(wide, params=self.wide_features + 1, bias_params=1,
                            traffic_bytes=b * self.wide_active * (8.0 + sb) + b * sb))
        for i, (v, d) in enumerate(self.fields):
            rows.append(replace(embedding(f"deep.embedding_{i}", b, v, d, out_bytes=sb),
                                traffic_bytes=b * (8.0 + d * sb)))
        widths = [self.deep_in, *self.hidden, 1]
        in_bytes = sb  # concatenated embeddings + dense features (fp32), saved by the first linear
        x_grad = True
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            saved = b * d_in * (cb if ctx.autocast else in_bytes)
            row = linear(f"deep.dense_{i}", b, d_in, d_out, bias=True, save_input_bytes=0.0, out_bytes=out_b,
                         module=f"deep.dense_{i}")
            rows.append(replace(row, activation_bytes=saved, weight_input_bytes=saved,
                                input_grad_flops=row.input_grad_flops if x_grad else 0.0))
            if not last:  # ReLU saves its output, which the next linear reads (one storage)
                moved = 2 * b * d_out * out_b
                rows.append(elementwise(f"deep.relu_{i}", "relu", saved_bytes=b * d_out * out_b, working_bytes=moved,
                                        traffic_bytes=moved))
                in_bytes = 0.0 if not ctx.autocast else out_b
        if ctx.training:
            lb = 4.0 if ctx.autocast else out_b
            rows.append(elementwise("loss", "binary_cross_entropy", saved_bytes=b * lb + b * 4.0))
        return rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        return ctx.batch * (ctx.compute_bytes + 8.0) if ctx.training else 0.0

    def to_dict(self) -> dict:
        return {"family": "wide_deep", "name": self.name,
                "wide": {"features": self.wide_features, "active": self.wide_active},
                "deep": {"fields": [{"vocab": v, "dim": d} for v, d in self.fields],
                         "dense_features": self.dense_features, "hidden": list(self.hidden)}}


def wide_deep_from_dict(data: dict) -> WideDeepSpec:
    if not isinstance(data, dict):
        raise InputError("model", "must be a JSON object")
    for k in data:
        if k not in ("family", "name", "wide", "deep"):
            raise InputError(f"model.{k}", "unknown field for a wide_deep spec; allowed: family, name, wide, deep")
    name = data.get("name", "wide-deep")
    if not isinstance(name, str) or not name.strip():
        raise InputError("model.name", f"must be a non-empty string, got {name!r:.40}")
    wide = data.get("wide", {})
    deep = data.get("deep")
    if not isinstance(wide, dict):
        raise InputError("model.wide", "must be {\"features\": N, \"active\": K}")
    if not isinstance(deep, dict):
        raise InputError("model.deep", "is required: {\"fields\": [{\"vocab\": V, \"dim\": D}, ...], "
                                       "\"dense_features\": N, \"hidden\": [1024, 512, 256]}")
    for k in wide:
        if k not in ("features", "active"):
            raise InputError(f"model.wide.{k}", "unknown field; allowed: features, active")
    for k in deep:
        if k not in ("fields", "dense_features", "hidden"):
            raise InputError(f"model.deep.{k}", "unknown field; allowed: fields, dense_features, hidden")
    fields_in = deep.get("fields", [])
    if not isinstance(fields_in, list):
        raise InputError("model.deep.fields", "must be a list of {\"vocab\": V, \"dim\": D}")
    fields_out = []
    for i, f in enumerate(fields_in):
        if not isinstance(f, dict) or set(f) != {"vocab", "dim"}:
            raise InputError(f"model.deep.fields[{i}]", f"must be {{\"vocab\": V, \"dim\": D}}, got {f!r:.60}")
        fields_out.append((f["vocab"], f["dim"]))
    hidden = deep.get("hidden", [1024, 512, 256])
    if not isinstance(hidden, list):
        raise InputError("model.deep.hidden", "must be a list of layer widths")
    return WideDeepSpec(name=name, wide_features=wide.get("features", 0), wide_active=wide.get("active", 0),
                        fields=tuple(fields_out), dense_features=deep.get("dense_features", 0), hidden=tuple(hidden))
