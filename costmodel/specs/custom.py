"""costmodel spec JSON: models that have no Hugging Face config.json, described by a small dict
with a ``family``: "lstm" / "gru" (RNN language models), "mlp", "cnn" (costmodel.specs.cnn).

Every problem is an ``InputError`` naming the field path (``model.hidden``, ``model.layers[2].kernel``)
and what is allowed; ``spec.to_dict()`` reads back to the same spec.

    {"family": "lstm", "name": "lstm-2x1024", "vocab_size": 10000, "embed_dim": 1024, "hidden": 1024,
     "layers": 2, "bias": true, "tie_embeddings": false, "dropout": 0.0, "kernel": "cudnn"}
    {"family": "mlp", "name": "mlp-mnist", "input_dim": 784, "hidden": [512, 512], "output_dim": 10,
     "activation": "relu", "bias": true, "dropout": 0.0, "norm": "none"}
"""

from __future__ import annotations

from ..errors import InputError
from .base import ModelSpec
from .mlp import ACTIVATIONS, NORMS, MLPSpec
from .rnn import KERNELS, RNNSpec

FAMILIES = ("lstm", "gru", "mlp", "cnn")
MAX_WIDTH = 1 << 24  # widths, vocabularies: up to 16.7M
MAX_LAYERS = 4096

RNN_FIELDS = ("family", "name", "vocab_size", "embed_dim", "hidden", "layers", "bias", "tie_embeddings", "dropout",
              "kernel")
MLP_FIELDS = ("family", "name", "input_dim", "hidden", "output_dim", "activation", "bias", "dropout", "norm")


def _int(data: dict, key: str, *, lo: int, hi: int, default: int | None = None, where: str = "model") -> int:
    if key not in data or data[key] is None:
        if default is None:
            raise InputError(f"{where}.{key}", f"is required: a whole number from {lo} to {hi}")
        return default
    v = data[key]
    if isinstance(v, bool) or not isinstance(v, (int, float)) or int(v) != v:
        raise InputError(f"{where}.{key}", f"must be a whole number from {lo} to {hi}, got {v!r}")
    v = int(v)
    if not lo <= v <= hi:
        raise InputError(f"{where}.{key}", f"must be from {lo} to {hi}, got {v}")
    return v


def _bool(data: dict, key: str, default: bool) -> bool:
    v = data.get(key, default)
    if not isinstance(v, bool):
        raise InputError(f"model.{key}", f"must be true or false, got {v!r}")
    return v


def _prob(data: dict, key: str) -> float:
    v = data.get(key, 0.0)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < 1:
        raise InputError(f"model.{key}", f"must be a probability from 0 to below 1, got {v!r}")
    return float(v)


def _choice(data: dict, key: str, allowed, default: str) -> str:
    v = data.get(key, default)
    if v not in allowed:
        raise InputError(f"model.{key}", f"must be one of {', '.join(allowed)}, got {v!r}")
    return v


def _name(data: dict, default: str) -> str:
    v = data.get("name", default)
    if not isinstance(v, str) or not v.strip():
        raise InputError("model.name", f"must be a non-empty string, got {v!r}")
    return v


def _known(data: dict, allowed: tuple[str, ...], family: str) -> None:
    for key in data:
        if key not in allowed:
            raise InputError(f"model.{key}", f"unknown field for a {family} spec; allowed: {', '.join(allowed)}")


def rnn_from_dict(data: dict) -> RNNSpec:
    family = data["family"]
    _known(data, RNN_FIELDS, family)
    hidden = _int(data, "hidden", lo=1, hi=MAX_WIDTH)
    embed_dim = _int(data, "embed_dim", lo=1, hi=MAX_WIDTH, default=hidden)
    tie = _bool(data, "tie_embeddings", False)
    if tie and embed_dim != hidden:
        raise InputError("model.tie_embeddings", f"needs embed_dim == hidden to share the weight "
                         f"(embed_dim {embed_dim}, hidden {hidden})")
    kernel = _choice(data, "kernel", KERNELS, "cudnn")
    if kernel == "onednn" and family != "lstm":
        raise InputError("model.kernel", "onednn runs only the LSTM in PyTorch; use cudnn or native for a GRU")
    return RNNSpec(
        name=_name(data, family), cell=family, vocab_size=_int(data, "vocab_size", lo=1, hi=MAX_WIDTH),
        embed_dim=embed_dim, hidden=hidden, layers=_int(data, "layers", lo=1, hi=MAX_LAYERS, default=1),
        bias=_bool(data, "bias", True), tie_embeddings=tie, dropout=_prob(data, "dropout"), kernel=kernel,
    )


def mlp_from_dict(data: dict) -> MLPSpec:
    _known(data, MLP_FIELDS, "mlp")
    hidden = data.get("hidden", [])
    if not isinstance(hidden, list):
        raise InputError("model.hidden", f"must be a list of layer widths (whole numbers from 1 to {MAX_WIDTH}), "
                         f"got {hidden!r}")
    if len(hidden) > MAX_LAYERS:
        raise InputError("model.hidden", f"must have at most {MAX_LAYERS} widths, got {len(hidden)}")
    widths = tuple(_width(w, i) for i, w in enumerate(hidden))
    return MLPSpec(
        name=_name(data, "mlp"), input_dim=_int(data, "input_dim", lo=1, hi=MAX_WIDTH), hidden=widths,
        output_dim=_int(data, "output_dim", lo=1, hi=MAX_WIDTH),
        activation=_choice(data, "activation", tuple(ACTIVATIONS), "relu"), bias=_bool(data, "bias", True),
        dropout=_prob(data, "dropout"), norm=_choice(data, "norm", NORMS, "none"),
    )


def _width(w, i: int) -> int:
    if isinstance(w, bool) or not isinstance(w, (int, float)) or int(w) != w or not 1 <= w <= MAX_WIDTH:
        raise InputError(f"model.hidden[{i}]", f"must be a whole number from 1 to {MAX_WIDTH}, got {w!r}")
    return int(w)


def spec_from_costmodel_json(data: dict) -> ModelSpec:
    """A parsed costmodel spec JSON -> its spec. Dispatches on ``data["family"]``."""
    if not isinstance(data, dict):
        raise InputError("model", "must be a JSON object with a 'family' (lstm, gru, mlp, cnn)")
    family = data.get("family")
    if family not in FAMILIES:
        raise InputError("model.family", f"must be one of {', '.join(FAMILIES)}, got {family!r}")
    if family in ("lstm", "gru"):
        return rnn_from_dict(data)
    if family == "mlp":
        return mlp_from_dict(data)
    try:
        from .cnn import cnn_from_dict
    except ImportError:
        raise InputError("model.family", "'cnn' specs are not available in this version") from None
    return cnn_from_dict(data)
