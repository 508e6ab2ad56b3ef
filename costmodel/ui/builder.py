"""The dashboard's layer builder: a network written one layer per line, the way a course writes Keras, read into
a ``"family": "sequential"`` spec (costmodel.specs.sequential). No Streamlit here.

    Conv2D 32 3x3 relu          Conv2D(32, (3, 3), activation='relu')      conv2d filters=32 kernel=3 relu
    MaxPooling2D 2              MaxPooling2D((2, 2))                       maxpool2d pool=2
    Flatten                     GlobalAveragePooling1D                     Dropout 0.5
    Dense 128 relu              Dense(10, activation='softmax')            Embedding 10000 16

Positional numbers: Conv2D filters, kernel[, strides]; pools pool[, strides]; Dense units; Embedding input_dim,
output_dim; Dropout rate. Words: an activation (relu, tanh, sigmoid, softmax, gelu, silu, linear) or a padding
(valid, same). ``key=value`` names any field. The input is ``28x28x1`` (H x W x C), ``tokens:256`` (padded token
ids; ``tokens`` alone for any length) or ``features:784``. Every problem is an ``InputError`` naming the line.
"""

from __future__ import annotations

import re

from ..errors import InputError
from ..specs.sequential import ACTIVATIONS, KERAS_NAMES, LAYER_FIELDS

MAX_LINES = 200
SHORT = {"conv": "conv2d", "conv2d": "conv2d", "maxpool": "maxpool2d", "maxpooling2d": "maxpool2d",
         "avgpool": "avgpool2d", "averagepooling2d": "avgpool2d", "maxpool2d": "maxpool2d", "avgpool2d": "avgpool2d",
         "maxpool1d": "maxpool1d", "maxpooling1d": "maxpool1d", "avgpool1d": "avgpool1d",
         "averagepooling1d": "avgpool1d", "flatten": "flatten", "dense": "dense", "linear": "dense", "fc": "dense",
         "embedding": "embedding", "dropout": "dropout", "globalaveragepooling1d": "global_avgpool1d",
         "globalaveragepooling2d": "global_avgpool2d", "globalmaxpooling1d": "global_maxpool1d",
         "globalmaxpooling2d": "global_maxpool2d", "gap": "global_avgpool2d", "gap1d": "global_avgpool1d",
         **{k.lower(): v for k, v in KERAS_NAMES.items()}, **{t: t for t in LAYER_FIELDS}}
POSITIONAL = {"conv2d": ("filters", "kernel", "strides"), "maxpool2d": ("pool", "strides"),
              "avgpool2d": ("pool", "strides"), "maxpool1d": ("pool", "strides"), "avgpool1d": ("pool", "strides"),
              "dense": ("units",), "embedding": ("input_dim", "output_dim"), "dropout": ("rate",)}
NAMED = {"filters": "filters", "kernel": "kernel", "kernel_size": "kernel", "strides": "strides", "stride": "strides",
         "pool": "pool", "pool_size": "pool", "units": "units", "activation": "activation", "padding": "padding",
         "input_dim": "input_dim", "output_dim": "output_dim", "rate": "rate", "use_bias": "use_bias"}

TEMPLATES = {
    # the course articles' networks, as a lecturer would type them
    "course-cnn-28": ("28x28x1", "Conv2D 32 3x3 relu\nMaxPooling2D 2\nFlatten\nDense 128 relu\nDense 10 softmax"),
    "course-cnn-224": ("224x224x3", "Conv2D 32 3x3 relu\nMaxPooling2D 2\nConv2D 64 3x3 relu\nMaxPooling2D 2\n"
                                    "Conv2D 128 3x3 relu\nMaxPooling2D 2\nFlatten\nDense 512 relu\nDense 1000 softmax"),
    "course-text-classifier": ("tokens:256", "Embedding 10000 16\nGlobalAveragePooling1D\nDense 1 sigmoid"),
    "mlp-mnist": ("features:784", "Dense 512 relu\nDense 512 relu\nDense 10 softmax"),
}


def parse_input(text: str) -> dict:
    """``28x28x1`` / ``tokens:256`` / ``tokens`` / ``features:784`` -> the spec's ``input``."""
    t = str(text).strip().lower().replace(" ", "").replace("×", "x")
    m = re.fullmatch(r"(\d+)x(\d+)x(\d+)", t)
    if m:
        return {"shape": [int(g) for g in m.groups()]}
    m = re.fullmatch(r"tokens(?::(\d+))?", t)
    if m:
        return {"tokens": int(m.group(1) or 0)}
    m = re.fullmatch(r"features:(\d+)", t)
    if m:
        return {"features": int(m.group(1))}
    raise InputError("net_input", f"must be H x W x C (e.g. 28x28x1), tokens:N (e.g. tokens:256) or features:N, "
                                  f"got {str(text)[:40]!r}")


def _number(tok: str):
    return float(tok) if "." in tok else int(tok)


def parse_line(line: str, n: int) -> dict:
    """One layer line -> the spec's layer dict."""
    where = f"net_layers (line {n})"
    raw = re.sub(r"input_shape\s*=\s*[\(\[][^\)\]]*[\)\]]", " ", line.strip())  # the input is set apart
    raw = re.sub(r"(\w+)\s*=\s*['\"]?([\w.]+)['\"]?", r"\1=\2", raw)  # activation='relu' -> activation=relu
    # (3, 3) and [3, 3] are one square size
    raw = re.sub(r"[\(\[]\s*(\d+)\s*,\s*(\d+)\s*[\)\]]",
                 lambda m: m.group(1) if m.group(1) == m.group(2) else f"{m.group(1)}x{m.group(2)}", raw)
    raw = re.sub(r"(\d+)x\1\b", r"\1", raw)  # 3x3 -> 3
    toks = [t for t in re.split(r"[\s,()'\"]+", raw) if t]
    if not toks:
        raise InputError(where, "is empty")
    toks[0] = toks[0].rsplit(".", 1)[-1]  # tf.keras.layers.Dense -> Dense
    name = toks[0].lower().replace("_", "")
    kind = SHORT.get(name) or SHORT.get(toks[0].lower())
    if kind is None:
        raise InputError(where, f"{toks[0][:30]!r} is not a layer; use Conv2D, MaxPooling2D, AveragePooling2D, "
                                "GlobalAveragePooling1D/2D, Flatten, Dense, Embedding or Dropout")
    out: dict = {"type": kind}
    positional = list(POSITIONAL.get(kind, ()))
    for tok in toks[1:]:
        if "=" in tok:
            k, _, v = tok.partition("=")
            key = NAMED.get(k.lower())
            if key is None or not v:
                raise InputError(where, f"{tok[:30]!r}: unknown setting for {kind}")
            out[key] = (v.lower() == "true") if key == "use_bias" else (
                _number(v) if re.fullmatch(r"\d+(\.\d+)?", v) else v.lower())
        elif re.fullmatch(r"\d+(\.\d+)?", tok):
            if not positional:
                raise InputError(where, f"{kind} takes no more numbers, got {tok!r}")
            out[positional.pop(0)] = _number(tok)
        elif re.fullmatch(r"\d+x\d+", tok):
            raise InputError(where, f"only square windows are supported, got {tok!r}")
        elif tok.lower() in ACTIVATIONS:
            out["activation"] = tok.lower()
        elif tok.lower() in ("valid", "same"):
            out["padding"] = tok.lower()
        elif tok.lower() in ("activation", "padding", "input_shape"):
            continue
        else:
            raise InputError(where, f"{tok[:30]!r} is not understood for {kind}")
    return out


def parse_layers(text: str) -> list[dict]:
    lines = [(i + 1, ln) for i, ln in enumerate(str(text).splitlines()) if ln.strip() and not ln.strip().startswith("#")]
    if not lines:
        raise InputError("net_layers", "is empty: one layer per line, e.g. Dense 10 softmax")
    if len(lines) > MAX_LINES:
        raise InputError("net_layers", f"has {len(lines)} layers; at most {MAX_LINES}")
    return [parse_line(ln, n) for n, ln in lines]


def config_from_text(input_text: str, layers_text: str, name: str = "my-net") -> dict:
    """The sequential spec dict the builder's two fields describe (validated by ``load_model`` later)."""
    return {"family": "sequential", "name": name, "input": parse_input(input_text), "layers": parse_layers(layers_text)}


def layer_rows(config: dict, image_size: int | None = None, seq: int | None = None) -> list[dict]:
    """The builder's table: every layer's output shape and parameters, with the arithmetic."""
    from ..models import load_model

    spec = load_model(config)
    return spec.layer_table(image_size=image_size, seq=seq) if hasattr(spec, "layer_table") else []
