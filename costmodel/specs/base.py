"""What every model family provides: a name, a few facts, and a per-layer ledger for a pass."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..layers import Ctx, Layer


@dataclass(frozen=True)
class ModelSpec:
    """Base of all architecture specs. Subclasses are frozen dataclasses of plain numbers.

    ``modality``: "text" (token ids; uses ``seq``), "image" (uses ``image_size``) or
    "vector" (MLP on flat features). ``generative``: has a decode loop with a KV cache
    or recurrent state (decoders, encoder-decoders, RNN LMs).
    """

    name: str

    family = "base"
    modality = "text"
    generative = False

    def ledger(self, ctx: Ctx) -> list[Layer]:  # pragma: no cover - abstract
        raise NotImplementedError

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        """Extra bytes alive at the start of backward for logits and the loss (see formulas.md)."""
        return 0.0

    def checkpoint_bytes(self, ctx: Ctx) -> float:
        """Bytes one repeated block keeps under activation checkpointing (its input); 0 = unsupported."""
        return 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out["family"] = self.family
        return out
