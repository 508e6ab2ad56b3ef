"""Recurrent language models: ``Embedding(vocab, emb) -> nn.LSTM / nn.GRU(emb, hidden, layers,
batch_first=True) -> Linear(hidden, vocab)``, as ``build_torch_rnn`` builds them.

Parameters (torch.nn.LSTM / nn.GRU docs): per layer G*hidden*(in + hidden) weights plus, with
``bias``, two bias vectors b_ih and b_hh of G*hidden each; G = 4 gates for LSTM (i, f, g, o),
3 for GRU (r, z, n); ``in`` = emb for layer 0, hidden above.

FLOPs (2 per multiply-add): per token and layer 2*G*hidden*(in + hidden) (the gate matmuls of
x_t and h_{t-1}); backward 2x forward (dX/dh and dW). torch's FlopCounterMode counts none of it
for the fused kernels (cuDNN ``_cudnn_rnn`` on CUDA, oneDNN ``mkldnn_rnn_layer`` for a CPU LSTM);
it does count the decomposed CPU GRU (``addmm`` per step).

Saved activations depend on the kernel (``kernel``), derived in docs/families/t5_rnn_mlp.md:
- ``cudnn`` (CUDA, the default): the (contiguous) input, h0 (and c0), the output y and cuDNN's
  reserve space. Reserve per token: LSTM (6*layers - 1)*hidden elements, GRU
  (7*layers - 1)*hidden (each layer's gate activations and states; the top layer's output is y).
  Both fit the cudnnGetRNNTrainingReserveSize values printed in pytorch/pytorch#2895
  (LSTM 736,000,000 and GRU 864,000,000 bytes for 4 layers x 320 hidden) and the LSTM reproduces
  the H100 step in benchmarks/results/h100_reference_sample.json to 0.1%.
- ``onednn`` (CPU LSTM in fp32/bf16, torch's ``mkldnn_rnn_layer``): per layer its output, hy, cy
  and oneDNN's workspace (rnn_utils set_workspace_sizes: gates, ht, 3 state and 2 cell-state
  buffers, each rounded up to a 4096-byte page).
- ``native`` (torch's decomposed cells: CPU GRU; CPU LSTM with oneDNN off): per layer and token
  the layer input plus 7*hidden elements (h_{t-1}, the gate tensor, c_{t-1}, tanh(c_t) for LSTM;
  h_{t-1}, the 3-gate tensor, a clone, n_t and h_{t-1}-n_t for GRU).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from ..layers import Ctx, Layer, elementwise, embedding, linear
from .base import ModelSpec

GATES = {"lstm": 4, "gru": 3}
KERNELS = ("cudnn", "onednn", "native")
# cuDNN reserve space, elements per token: a*layers - 1 (pytorch/pytorch#2895; h100_sample.json)
CUDNN_RESERVE_PER_LAYER = {"lstm": 6, "gru": 7}
ONEDNN_PAGE = 4096
NATIVE_SAVED_PER_STEP = 7  # x hidden, per layer and token (both cells)


def _good_ld(dim: int, elem_bytes: int) -> int:
    """oneDNN rnn_utils::get_good_ld: round up to 64 bytes, avoid multiples of 256 elements."""
    step = 64 // elem_bytes
    ld = -(-dim // step) * step
    return ld + step if ld % 256 == 0 else ld


def onednn_lstm_workspace_bytes(t_steps: int, batch: int, d_in: int, hidden: int, elem_bytes: int = 4) -> int:
    """oneDNN's forward-training workspace for one LSTM layer (one direction), as torch's
    ``mkldnn_rnn_layer`` allocates it: each buffer starts on a 4096-byte page (rnn_utils
    set_offsets; sizes from set_workspace_sizes with n_layer = n_dir = 1):
    gates T*b*ld(4h)*4, ht T*b*ld(h)*e, states_layer and diff_states_layer and diff_states_iter
    2*(T+1)*b*ld(max(in, h))*e, states_iter_c and diff_states_iter_c 2*(T+1)*b*h*4
    (ld = _good_ld; e = element bytes). Checked on fp32 CPU tensors."""
    ld_s = _good_ld(max(d_in, hidden), elem_bytes)
    parts = [t_steps * batch * _good_ld(4 * hidden, 4) * 4,
             t_steps * batch * _good_ld(hidden, elem_bytes) * elem_bytes,
             *[2 * (t_steps + 1) * batch * ld_s * elem_bytes] * 3,
             *[2 * (t_steps + 1) * batch * hidden * 4] * 2]
    return sum(math.ceil(p / ONEDNN_PAGE) * ONEDNN_PAGE for p in parts)


def cudnn_reserve_bytes(cell: str, layers: int, tokens: int, hidden: int, elem_bytes: float = 4.0) -> float:
    """cuDNN's training reserve space for a stacked unidirectional LSTM / GRU over ``tokens``
    (= seq * batch) positions: tokens * hidden * (a*layers - 1) * elem_bytes, a = 6 (LSTM: 4 gates,
    c_t, h_t per layer) or 7 (GRU), less the top layer's output (cuDNN reads it from y).
    Fits cudnnGetRNNTrainingReserveSize in pytorch/pytorch#2895 (4 layers, hidden 320:
    LSTM 736,000,000 = 23 x 32,000,000 and GRU 864,000,000 = 27 x 32,000,000 bytes)."""
    return tokens * hidden * (CUDNN_RESERVE_PER_LAYER[cell] * layers - 1) * elem_bytes


@dataclass(frozen=True)
class RNNSpec(ModelSpec):
    cell: str = "lstm"  # lstm | gru
    vocab_size: int = 10000
    embed_dim: int = 0  # 0: same as hidden
    hidden: int = 1024
    layers: int = 2
    bias: bool = True
    tie_embeddings: bool = False  # head weight = embedding weight (needs embed_dim == hidden)
    dropout: float = 0.0  # nn.LSTM dropout between layers
    kernel: str = "cudnn"  # which PyTorch kernel runs the recurrence: cudnn | onednn | native

    modality = "text"
    generative = True

    def __post_init__(self):
        if self.cell not in GATES:
            raise InputError("model.family", f"must be lstm or gru, got {self.cell!r}")
        for field_name, lo in (("vocab_size", 1), ("hidden", 1), ("layers", 1), ("embed_dim", 0)):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                raise InputError(f"model.{field_name}", f"must be a whole number >= {lo}, got {value!r}")
        if self.kernel not in KERNELS:
            raise InputError("model.kernel", f"must be one of {', '.join(KERNELS)}, got {self.kernel!r}")
        if self.kernel == "onednn" and self.cell != "lstm":
            raise InputError("model.kernel", "onednn runs only the LSTM in PyTorch (the CPU GRU is native)")
        if self.tie_embeddings and self.emb != self.hidden:
            raise InputError("model.tie_embeddings", f"needs embed_dim == hidden ({self.emb} != {self.hidden})")
        p = self.dropout
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p < 1:
            raise InputError("model.dropout", f"must be a probability in [0, 1), got {p!r}")

    @property
    def family(self) -> str:  # type: ignore[override]
        return self.cell

    @property
    def emb(self) -> int:
        return self.embed_dim or self.hidden

    @property
    def gates(self) -> int:
        return GATES[self.cell]

    def layer_params(self, d_in: int) -> int:
        g, h = self.gates, self.hidden
        return g * h * (d_in + h) + (2 * g * h if self.bias else 0)

    # ---- saved bytes of one layer, by kernel ------------------------------------------------------
    def _layer_saved(self, ctx: Ctx, d_in: int, first: bool) -> float:
        h, b, T = self.hidden, ctx.batch, ctx.seq
        tok = b * T
        e = ctx.compute_bytes
        n_states = 2 if self.cell == "lstm" else 1
        if self.kernel == "cudnn":
            # per layer: its share of the reserve (+ y for the top layer: a*hidden per token in all)
            # and its h0 (c0); the stack's contiguous input once
            saved = cudnn_reserve_bytes(self.cell, 1, tok, h, e) + tok * h * e + n_states * b * h * e
            if first:
                saved += tok * d_in * e  # the contiguous (time-major) input
            return saved
        if self.kernel == "onednn":
            # its output (the next layer's saved input too), hy, cy, h0/c0 (one (layers, b, h)
            # tensor each, a slice per layer) and the workspace; layer 0 also saves its input copy
            saved = tok * h * e + 2 * b * h * e + 2 * b * h * e
            saved += onednn_lstm_workspace_bytes(T, b, d_in, h, int(e))
            if first:
                saved += tok * d_in * e
            return saved
        # native cells: the layer input (precomputed input projection) + 7 x hidden per step
        return tok * (d_in + NATIVE_SAVED_PER_STEP * h) * e

    def ledger(self, ctx: Ctx) -> list[Layer]:
        V, E, h, L, g = self.vocab_size, self.emb, self.hidden, self.layers, self.gates
        b = ctx.batch
        t = ctx.tokens
        cb, sb, ab = ctx.compute_bytes, ctx.stream_bytes, ctx.matmul_in_bytes
        n_states = 2 if self.cell == "lstm" else 1
        drop = ctx.training and ctx.dropout and self.dropout > 0 and L > 1
        rows: list[Layer] = [embedding("embed", t, V, E, out_bytes=sb)]
        for i, (d_in, count) in enumerate(((E, 1), (h, L - 1))):
            if not count:
                continue
            p = self.layer_params(d_in)
            w = g * h * (d_in + h)
            mm = 2.0 * t * w
            saved = self._layer_saved(ctx, d_in, first=i == 0) if ctx.training else 0.0
            if drop and i == 1:
                saved += t * d_in * 1.0  # dropout mask on the input of every layer above the first
            rows.append(Layer(
                name=f"{self.cell}.layer0" if i == 0 else f"{self.cell}.layers.1-{L - 1}", kind=self.cell,
                count=count, block="" if i == 0 else "rnn", module=self.cell,
                params=p, bias_params=p - w, matmul_params=w,
                factored_state_elems=(d_in + h) + g * h + (2 * g * h if self.bias else 0),
                forward_flops=mm, input_grad_flops=mm, weight_grad_flops=mm,
                activation_bytes=saved,
                weight_cast_elems=w,
                # inference: input, all-step input projections (G*h), output
                working_bytes=t * (d_in + g * h + h) * cb,
                kv_cache_bytes=n_states * b * h * cb,  # h (and c) carried between decode steps
                sequential_steps=ctx.seq,
            ))
        # the head reads the batch-first view of the time-major output: matmul saves a contiguous copy
        out_t = t if ctx.training else b  # generation scores the last position only
        rows.append(linear("head", out_t, h, V, bias=True, save_input_bytes=ab, out_bytes=cb,
                           tied=self.tie_embeddings, module="head"))
        if ctx.training:
            lb = 4.0 if ctx.autocast else cb
            rows.append(elementwise("loss", "cross_entropy", saved_bytes=t * V * lb + t * 8.0))
        return rows

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Alive at the start of backward beyond saved tensors: the gradient of log_softmax's
        output and the gradient of the logits, T*V*2*loss_bytes (4 under autocast, else the
        compute width). The logits themselves are not kept: the training loop passes
        ``model(x)`` straight to cross_entropy (which saves its log_softmax output). With this
        term the H100 LSTM sample (h100_sample.json) is matched to 0.1%."""
        if not ctx.training:
            return 0.0
        lb = 4.0 if ctx.autocast else ctx.compute_bytes
        return ctx.tokens * self.vocab_size * 2 * lb

    def to_dict(self) -> dict:
        """costmodel spec JSON (``spec_from_costmodel_json(spec.to_dict()) == spec``)."""
        return {"family": self.cell, "name": self.name, "vocab_size": self.vocab_size, "embed_dim": self.emb,
                "hidden": self.hidden, "layers": self.layers, "bias": self.bias,
                "tie_embeddings": self.tie_embeddings, "dropout": self.dropout, "kernel": self.kernel}


def build_torch_rnn(spec: RNNSpec):
    """The ``torch.nn.Module`` an ``RNNSpec`` describes: token ids (batch, seq) -> logits
    (batch, seq, vocab). torch is imported here only."""
    from torch import nn

    class RNNLanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(spec.vocab_size, spec.emb)
            cls = nn.LSTM if spec.cell == "lstm" else nn.GRU
            self.rnn = cls(spec.emb, spec.hidden, spec.layers, bias=spec.bias, batch_first=True,
                           dropout=spec.dropout if spec.layers > 1 else 0.0)
            self.head = nn.Linear(spec.hidden, spec.vocab_size)
            if spec.tie_embeddings:
                self.head.weight = self.embed.weight

        def forward(self, ids):
            out, _ = self.rnn(self.embed(ids))
            return self.head(out)

    return RNNLanguageModel()
