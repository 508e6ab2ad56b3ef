"""Independent references the tests compare costmodel with: the real PyTorch implementations.

- ``param_count(module)``: sum(p.numel()) of the real module (shared weights counted once).
- ``counted_flops(fn)``: torch.utils.flop_counter.FlopCounterMode total (2 FLOPs per multiply-add).
- ``saved_activation_bytes(fn, params)``: bytes of the distinct tensor storages autograd saves
  for backward while ``fn`` runs, excluding parameters (torch.autograd.graph.saved_tensors_hooks).
  Works on real CPU tensors and under FakeTensorMode (no memory used).
"""

from __future__ import annotations



import torch
from torch.utils.flop_counter import FlopCounterMode


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _storage_key(t: torch.Tensor):
    try:
        return (t.untyped_storage().data_ptr(), t.device.type) if t.device.type != "meta" else id(t.untyped_storage())
    except Exception:  # fake tensors
        return id(t.untyped_storage())


def saved_activation_bytes(fn, params=()) -> int:
    """Bytes of distinct storages saved for backward by ``fn()`` (parameters excluded)."""
    param_storages = {_storage_key(p) for p in params}
    seen: dict = {}
    keep = []

    def pack(t):
        if isinstance(t, torch.Tensor):
            key = _storage_key(t)
            if key not in param_storages and key not in seen:
                seen[key] = t.untyped_storage().nbytes()
                keep.append(t)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn()
    return sum(seen.values())
