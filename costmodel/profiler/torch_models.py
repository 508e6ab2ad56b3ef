"""torch modules for costmodel's own spec families, built for the profiler's child process (imports
torch on first call only). ``build_torch_cnn`` moved here from the specs package, which stays free of
torch; MLP and RNN builders still live beside their specs (``specs/mlp.py``, ``specs/rnn.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from ..specs.cnn import CNNSpec


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
