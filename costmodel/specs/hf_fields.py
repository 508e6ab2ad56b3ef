"""Readers of Hugging Face ``config.json`` fields, shared by every importer (``specs/hf.py``,
``specs/hf_moe.py``, ``specs/hf_ssm.py``, ``specs/encdec.py``, ``specs/vit.py``, ``specs/resnet.py``).

A config is plain JSON data: these functions only check types and ranges, naming the field in the
``InputError`` they raise. This module imports nothing from costmodel but the error type, so every
family module can import it without a cycle.
"""

from __future__ import annotations

import math
from typing import Any

from ..errors import InputError


# the largest count a config may give (widths, vocabularies, layers, heads, experts): 16.7M, far above any real
# model, and small enough that every product the estimator forms stays a finite float
MAX_COUNT = 1 << 24
MAX_POSITIONS = 1 << 31
NAME_MAX_CHARS = 200


def req(cfg: dict, *keys: str, default: Any = None, kind: type = int, lo: float = 0, hi: float | None = None) -> Any:
    """First present key among ``keys`` (HF renamed several fields across versions), checked: a whole number
    from ``lo`` to ``hi`` (default ``MAX_COUNT``), or a finite number from ``lo`` to ``hi`` (a dropout
    probability, any key with "drop" in its name: from 0 to below 1)."""
    for k in keys:
        if k in cfg and cfg[k] is not None:
            v = cfg[k]
            number = not isinstance(v, bool) and isinstance(v, (int, float)) and math.isfinite(v)
            if kind is int:
                top = MAX_COUNT if hi is None else hi
                if not number or int(v) != v or not lo <= v <= top:
                    raise InputError(f"config.{k}", f"must be a whole number from {lo:,} to {top:,}, got {v!r:.60}")
                return int(v)
            if kind is float:
                if "drop" in k:
                    if not number or not 0 <= v < 1:
                        raise InputError(f"config.{k}", f"must be a probability from 0 to below 1, got {v!r:.60}")
                elif not number or not lo <= v <= (math.inf if hi is None else hi):
                    rng = f"from {lo:g}" + ("" if hi is None else f" to {hi:g}")
                    raise InputError(f"config.{k}", f"must be a finite number {rng}, got {v!r:.60}")
                return float(v)
            return v
    if default is None:
        raise InputError(f"config.{keys[0]}", "is required for this model_type")
    return default


ACTIVATIONS = {"gelu_new": "gelu_new", "gelu": "gelu", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_new",
               "silu": "silu", "swish": "silu", "relu": "relu", "quick_gelu": "quick_gelu", "relu2": "relu2"}


def act(name: str, field: str) -> str:
    """A config's activation name -> costmodel's (``layers.ACTIVATION_SAVED_TENSORS`` keys)."""
    if name not in ACTIVATIONS:
        raise InputError(field, f"activation {name!r} is not supported; use one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def name(cfg: dict, default: str) -> str:
    value = cfg.get("_name_or_path") or cfg.get("name") or default
    if not isinstance(value, str):
        raise InputError("config._name_or_path", f"must be text, got {type(value).__name__}")
    return value[:NAME_MAX_CHARS]


def whole(value, field_name: str, lo: int = 1, hi: int = MAX_COUNT) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or int(value) != value or not lo <= value <= hi:
        raise InputError(field_name, f"must be a whole number >= {lo} (at most {hi:,}), got {value!r:.60}")
    return int(value)


def flag(cfg: dict, key: str, default: bool) -> bool:
    v = cfg.get(key, default)
    if v is None:
        return default
    if not isinstance(v, (bool, int)) or v not in (0, 1, True, False):
        raise InputError(f"config.{key}", f"must be true or false, got {v!r}")
    return bool(v)


def int_list(cfg: dict, key: str, length: int | None = None) -> list[int] | None:
    """A list of whole numbers (layer indices, 0/1 masks), or None when absent."""
    v = cfg.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in v):
        raise InputError(f"config.{key}", f"must be a list of non-negative whole numbers, got {v!r}")
    if length is not None and len(v) != length:
        raise InputError(f"config.{key}", f"must have one entry per layer ({length}), got {len(v)}")
    return list(v)


def str_list(cfg: dict, key: str, length: int | None = None) -> list[str] | None:
    v = cfg.get(key)
    if v is None:
        return None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise InputError(f"config.{key}", f"must be a list of strings, got {v!r}")
    if length is not None and len(v) != length:
        raise InputError(f"config.{key}", f"must have one entry per layer ({length}), got {len(v)}")
    return list(v)


def num_labels(cfg: dict) -> int:
    labels = cfg.get("id2label")
    if isinstance(labels, dict) and labels:
        return len(labels)
    if cfg.get("num_labels") is not None:
        return whole(cfg["num_labels"], "config.num_labels", 0)
    return 2  # transformers' PreTrainedConfig default


def architecture(cfg: dict, supported: dict, family: str) -> str:
    """The class named in ``architectures`` (one of ``supported``), or a default from the labels."""
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


def square_side(value, field_name: str) -> int:
    """An HF image_size / patch_size: an int or a square [h, w] pair."""
    if isinstance(value, (list, tuple)):
        if len(value) != 2 or value[0] != value[1]:
            raise InputError(field_name, f"only square sizes are supported, got {value!r}")
        value = value[0]
    return whole(value, field_name)
