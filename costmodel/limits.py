"""What a model can take: its context length, its sliding window and the image size its head is built for,
checked against a workload with one clear message (the same in the dashboard, the CLI, the API and the
profiler), and the defaults a workload takes from the model when the caller did not give them.

- ``max_positions``: a transformer's position table (GPT-2, BERT: learned positions, an index beyond the
  table is ``IndexError: index out of range in self`` in PyTorch) or the context it was trained for (rotary
  models: ``max_position_embeddings``; beyond it the model is outside its training and HF warns). The
  positions a pass needs: ``seq`` (training, encoders), ``prompt + generate`` (generation).
- ``sliding_window``: attention reaches back at most this many positions (Mistral); the KV cache stops
  growing there. Not a limit on the length, a fact shown next to it.
- ``fixed image size``: a conv net whose flatten feeds a dense layer was built for one input size (its
  dense layer's width is ``C x H x W`` of the last feature map); another size is a different model. Nets
  whose head pools globally (ResNet, ViT with interpolated positions, GlobalAveragePooling) take any size.
"""

from __future__ import annotations

from dataclasses import dataclass

from .cache import memo_by_identity
from .errors import InputError

DEFAULT_SEQ = 2048  # Workload's default tokens per sample
DEFAULT_IMAGE_SIZE = 224  # Workload's default image side


@dataclass(frozen=True)
class ModelLimits:
    """``max_positions``: 0 = no limit the model states; ``positions``: how it encodes positions ("learned",
    "rotary", "none", "" when not a transformer); ``sliding_window``: 0 = full attention; ``image_hw``: the
    (height, width) a fixed-size head needs, or None for any size."""

    model: str
    max_positions: int = 0
    positions: str = ""
    sliding_window: int = 0
    image_hw: tuple[int, int] | None = None

    def describe(self) -> str:
        """One line for a page or a CLI: what the model takes."""
        parts = []
        if self.max_positions:
            how = {"learned": "learned position table", "rotary": "trained context (max_position_embeddings)"}
            parts.append(f"at most {self.max_positions:,} positions ({how.get(self.positions, 'max positions')})")
        if self.sliding_window:
            parts.append(f"sliding-window attention over the last {self.sliding_window:,} positions")
        if self.image_hw:
            parts.append(f"fixed input {self.image_hw[0]}x{self.image_hw[1]} (its flatten feeds a dense layer)")
        return f"{self.model}: " + ("; ".join(parts) if parts else "no stated length or size limit")


@memo_by_identity(256)
def model_limits(spec) -> ModelLimits:
    """The limits of a model spec (any family; attributes a family lacks mean "no limit"). Memoized per spec
    object (specs are frozen; every estimate asks)."""
    mp = getattr(spec, "max_positions", 0)
    mp = mp if isinstance(mp, int) and not isinstance(mp, bool) else 0
    positions = getattr(spec, "positions", "")
    if positions == "none" and getattr(spec, "family", "") == "vit":
        mp = 0
    window = getattr(spec, "sliding_window", 0) or 0
    fixed = getattr(spec, "fixed_image_hw", None)
    if callable(fixed):
        fixed = fixed()
    elif fixed is None and getattr(spec, "family", "") == "cnn" and hasattr(spec, "in_height"):
        fixed = (spec.in_height, spec.in_width)  # CNNSpec: the traced input is its own
    return ModelLimits(model=getattr(spec, "name", "model"), max_positions=mp, positions=positions or "",
                       sliding_window=int(window), image_hw=tuple(fixed) if fixed else None)


def positions_needed(spec, w) -> tuple[str, int]:
    """(field named in an error, positions one sample needs) for a workload on a text model."""
    if w.task == "infer" and getattr(spec, "generative", False):
        return "prompt", w.prompt + w.generate
    return "seq", w.seq


def check_workload(spec, w) -> None:
    """Raise ``InputError`` when ``w`` asks more than ``spec`` takes: positions beyond its context length, or an
    image size its fixed-size head cannot take. Called by the estimator for every estimate."""
    lim = model_limits(spec)
    modality = getattr(spec, "modality", "text")
    if modality == "text" and lim.max_positions:
        field, need = positions_needed(spec, w)
        if need > lim.max_positions:
            what = {"learned": "its learned position table has no row beyond it (PyTorch: IndexError: index out of "
                               "range)",
                    "rotary": "the context it was trained for (max_position_embeddings)"}.get(
                lim.positions, "it flattens its padded input of that length into a dense layer")
            got = f"{w.prompt:,} + {w.generate:,} = {need:,}" if field == "prompt" else f"{need:,}"
            raise InputError(field, f"needs {need:,} positions but {lim.model} takes at most {lim.max_positions:,}: "
                                    f"{what}; got {got}")
    if modality == "image" and lim.image_hw is not None:
        h, wd = lim.image_hw
        if w.image_size != h or w.image_size != wd:
            raise InputError("image_size", f"must be {h} for {lim.model}: its flatten feeds a dense layer sized for "
                                           f"{h}x{wd} inputs (another size is another model); got {w.image_size}")


def check_positions(spec, prompt: int, generate: int) -> None:
    """Serving: ``prompt + generate`` within the model's positions (the rule of ``check_workload`` for a
    generative request, for callers that have lengths rather than a Workload)."""
    lim = model_limits(spec)
    need = prompt + generate
    if getattr(spec, "modality", "text") == "text" and lim.max_positions and need > lim.max_positions:
        raise InputError("generate", f"prompt + generate = {prompt:,} + {generate:,} = {need:,} positions, but "
                                     f"{lim.model} takes at most {lim.max_positions:,}")


def default_seq(spec, want: int = DEFAULT_SEQ) -> int:
    """The tokens per sample a caller gets when it gives none: ``want``, or the model's limit if shorter."""
    lim = model_limits(spec)
    own = getattr(spec, "default_seq", 0)  # a model's own padded length (a Keras text classifier's input)
    if isinstance(own, int) and own > 0:
        want = own
    return min(want, lim.max_positions) if lim.max_positions else want


def default_image_size(spec, want: int = DEFAULT_IMAGE_SIZE) -> int:
    """The image side a caller gets when it gives none: the fixed input of a fixed-size head, else ``want``."""
    lim = model_limits(spec)
    return lim.image_hw[0] if lim.image_hw else want


def resolve_defaults(spec, fields: dict) -> dict:
    """Workload fields with the model-dependent defaults filled in where the caller gave none: ``seq`` (2048 or
    the context length if shorter), ``prompt`` (512, or what fits with ``generate``), ``image_size`` (224 or the
    fixed input). Given values are kept (``check_workload`` then judges them)."""
    out = dict(fields)
    lim = model_limits(spec)
    if "seq" not in out:
        out["seq"] = default_seq(spec)
    if "image_size" not in out:
        out["image_size"] = default_image_size(spec)
    if lim.max_positions and getattr(spec, "generative", False):
        gen = out.get("generate", 128)
        if "prompt" not in out and isinstance(gen, int):
            out["prompt"] = max(1, min(512, lim.max_positions - gen))
    return out


def clamp_state(spec, state: dict, task: str | None = None) -> list[tuple[str, object, object]]:
    """Bring a page's workload fields (``seq``, ``prompt``, ``generate``, ``image_size``) inside what ``spec``
    takes, in place. Returns ``(field, old, new)`` for every change, for the page to say what it did."""
    changes = []
    lim = model_limits(spec)
    modality = getattr(spec, "modality", "text")
    task = task or state.get("task", "train")
    if modality == "text" and lim.max_positions:
        m = lim.max_positions
        if "seq" in state and isinstance(state["seq"], int) and state["seq"] > m:
            changes.append(("seq", state["seq"], m))
            state["seq"] = m
        if getattr(spec, "generative", False) and "prompt" in state and "generate" in state:
            p, g = state["prompt"], state["generate"]
            if isinstance(p, int) and isinstance(g, int) and p + g > m:
                g2 = min(g, m - 1) if g >= m else g
                p2 = max(1, m - g2)
                if g2 != g:
                    changes.append(("generate", g, g2))
                    state["generate"] = g2
                if p2 != p:
                    changes.append(("prompt", p, p2))
                    state["prompt"] = p2
    if modality == "image" and lim.image_hw is not None and "image_size" in state:
        if state["image_size"] != lim.image_hw[0]:
            changes.append(("image_size", state["image_size"], lim.image_hw[0]))
            state["image_size"] = lim.image_hw[0]
    return changes
