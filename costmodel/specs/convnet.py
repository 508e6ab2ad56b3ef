"""Shared pieces of the convolutional and vision families (``specs/resnet.py``, ``specs/cnn.py``,
``specs/vit.py``): activation and BatchNorm facts, and a tiny forward tracer that emits ledger rows.

Saved activations follow what eager PyTorch keeps for backward (checked with
``torch.autograd.graph.saved_tensors_hooks`` in tests/test_vision_specs.py). A tensor that
several ops save (a ReLU's output that the next conv saves as its input) is counted once, by
the first op that saves it. Convnet feature maps are stored in ``ctx.matmul_in_bytes``: the
16-bit compute dtype under autocast (convs output bf16/fp16, and BatchNorm -- not on autocast's
fp32 list -- keeps its input's dtype), the stream dtype otherwise.

docs/families/vision.md states every formula used here with its units and source.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..layers import Ctx, Layer, _evolve, conv2d, elementwise, linear

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
        self.add(_evolve(row, activation_bytes=saved, weight_input_bytes=saved, shares_input=shares_input,
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
        self.add(_evolve(row, activation_bytes=saved, weight_input_bytes=saved,
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
