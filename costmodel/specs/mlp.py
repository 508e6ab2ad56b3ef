"""Multi-layer perceptrons on flat feature vectors: for each hidden width
``Linear -> [BatchNorm1d | LayerNorm] -> activation -> [Dropout]``, then ``Linear(.., output_dim)``,
trained with cross-entropy over ``output_dim`` classes. A batch is ``ctx.batch`` rows.

Parameters: in*out (+ out with bias) per Linear, 2*width per norm (BatchNorm1d also keeps
running_mean/var buffers, fp32, and an int64 counter). FLOPs: 2*batch*in*out per Linear,
backward 2x except the first Linear's dX (the input needs no gradient). Saved for backward (torch eager): each Linear's input, what each norm and
activation keeps (below), the dropout mask, and log_softmax's output + int64 targets.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from ..errors import InputError
from ..layers import Ctx, Layer, elementwise, linear, norm
from .base import ModelSpec

# activation -> does it save its own output? relu/tanh/sigmoid save their
# output, which the next Linear saves too (one storage); F.gelu saves its input.
ACTIVATIONS = {"relu": True, "tanh": True, "sigmoid": True, "gelu": False}
NORMS = ("none", "batchnorm", "layernorm")
DROPOUT_MASK_BYTES = 1.0  # CUDA native_dropout: bool mask (the CPU path keeps a float32 noise tensor)
BN_BUFFER_BYTES_PER_FEATURE = 8.0  # running_mean + running_var, fp32
BN_COUNTER_BYTES = 8.0  # num_batches_tracked, int64


@dataclass(frozen=True)
class MLPSpec(ModelSpec):
    input_dim: int = 784
    hidden: tuple[int, ...] = (512, 512)
    output_dim: int = 10
    activation: str = "relu"
    bias: bool = True
    dropout: float = 0.0
    norm: str = "none"  # none | batchnorm | layernorm (after each hidden Linear, before the activation)

    family = "mlp"
    modality = "vector"
    generative = False

    def __post_init__(self):
        object.__setattr__(self, "hidden", tuple(self.hidden))
        for field_name in ("input_dim", "output_dim"):
            v = getattr(self, field_name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise InputError(f"model.{field_name}", f"must be a whole number >= 1, got {v!r}")
        for i, w in enumerate(self.hidden):
            if isinstance(w, bool) or not isinstance(w, int) or w < 1:
                raise InputError(f"model.hidden[{i}]", f"must be a whole number >= 1, got {w!r}")
        if self.activation not in ACTIVATIONS:
            raise InputError("model.activation", f"must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        if self.norm not in NORMS:
            raise InputError("model.norm", f"must be one of {', '.join(NORMS)}, got {self.norm!r}")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise InputError("model.dropout", f"must be a probability in [0, 1), got {p!r}")

    @property
    def widths(self) -> list[int]:
        return [self.input_dim, *self.hidden, self.output_dim]

    def buffer_bytes(self) -> float:
        """BatchNorm1d running statistics (fp32) and its int64 batch counter."""
        if self.norm != "batchnorm":
            return 0.0
        return sum(w * BN_BUFFER_BYTES_PER_FEATURE + BN_COUNTER_BYTES for w in self.hidden)

    def ledger(self, ctx: Ctx) -> list[Layer]:
        b = ctx.batch
        sb, cb, ab = ctx.stream_bytes, ctx.compute_bytes, ctx.matmul_in_bytes
        drop = ctx.training and ctx.dropout and self.dropout > 0
        own_out = ACTIVATIONS[self.activation]
        rows: list[Layer] = []
        widths = self.widths
        # the first Linear saves the input batch itself (a float tensor in the stream dtype)
        in_bytes = ab
        for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
            last = i == len(widths) - 2
            row = linear(f"layers.{i}.linear", b, d_in, d_out, bias=self.bias, save_input_bytes=in_bytes,
                         out_bytes=cb, module=f"layers.{i}")
            if i == 0:  # the input batch needs no gradient: autograd skips the first layer's dX matmul
                row = replace(row, input_grad_flops=0.0)
            rows.append(row)
            if last:
                break
            if self.norm == "batchnorm":  # input + fp32 save_mean, save_invstd per feature
                rows.append(norm(f"layers.{i}.batchnorm", b, d_out, bias=True,
                                 saved_bytes=b * d_out * cb + 8.0 * d_out, out_bytes=cb, kind="batchnorm"))
            elif self.norm == "layernorm":  # input + fp32 mean, rstd per row
                rows.append(norm(f"layers.{i}.layernorm", b, d_out, bias=True,
                                 saved_bytes=b * d_out * cb + 8.0 * b, out_bytes=cb, kind="layernorm"))
            saved = b * d_out * cb  # relu/tanh/sigmoid: output; gelu: input
            if drop:
                saved += b * d_out * DROPOUT_MASK_BYTES
            rows.append(elementwise(f"layers.{i}.{self.activation}", self.activation, saved_bytes=saved,
                                    working_bytes=2 * b * d_out * cb))
            # what the next Linear saves: the activation output when the activation did not keep
            # it already, or the dropped copy
            in_bytes = 0.0 if (own_out and not drop) else cb
        if ctx.training:
            lb = 4.0 if ctx.autocast else cb
            rows.append(elementwise("loss", "cross_entropy", saved_bytes=b * self.output_dim * lb + b * 8.0))
        return rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Output, gradient of log_softmax's output and of the output: B*classes*(compute + 2*loss)."""
        if not ctx.training:
            return 0.0
        lb = 4.0 if ctx.autocast else ctx.compute_bytes
        return ctx.batch * self.output_dim * (ctx.compute_bytes + 2 * lb)

    def to_dict(self) -> dict:
        """costmodel spec JSON (``spec_from_costmodel_json(spec.to_dict()) == spec``)."""
        return {"family": "mlp", "name": self.name, "input_dim": self.input_dim, "hidden": list(self.hidden),
                "output_dim": self.output_dim, "activation": self.activation, "bias": self.bias,
                "dropout": self.dropout, "norm": self.norm}


def build_torch_mlp(spec: MLPSpec):
    """The ``torch.nn.Sequential`` an ``MLPSpec`` describes (torch is imported here only)."""
    from torch import nn

    acts = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "gelu": nn.GELU}
    mods: list = []
    widths = spec.widths
    for i, (d_in, d_out) in enumerate(zip(widths[:-1], widths[1:])):
        mods.append(nn.Linear(d_in, d_out, bias=spec.bias))
        if i == len(widths) - 2:
            break
        if spec.norm == "batchnorm":
            mods.append(nn.BatchNorm1d(d_out))
        elif spec.norm == "layernorm":
            mods.append(nn.LayerNorm(d_out))
        mods.append(acts[spec.activation]())
        if spec.dropout > 0:
            mods.append(nn.Dropout(spec.dropout))
    return nn.Sequential(*mods)
