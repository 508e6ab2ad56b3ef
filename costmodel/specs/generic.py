"""Any other decoder transformers knows: exact parameters from a meta-device build, everything else from a
generic decoder approximation.

For a ``model_type`` costmodel has no importer for, but that transformers registers
(``transformers.AutoConfig.for_model``; never ``trust_remote_code``, never a download), the model is built on
the meta device with ``AutoModelForCausalLM.from_config`` and its parameters counted (sum of ``numel``; no
memory used). FLOPs, memory and time come from a Llama-like decoder (grouped-query attention + gated MLP)
built from the config's standard fields (hidden_size, num_hidden_layers, num_attention_heads,
num_key_value_heads, head_dim, intermediate_size, vocab_size); the parameters that decoder lacks (or has in
excess) form one extra weight row, so ``params.total`` is exact. The estimate says so in its assumptions.

torch and transformers are imported here only, when such a config is read: the rest of costmodel never
imports them. Without them the config is refused, naming what to install.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass

from ..errors import InputError
from ..layers import Ctx, Layer
from .base import ModelSpec
from .transformer import TransformerSpec

STANDARD_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size")
DESCRIBE = ("describe the model as a costmodel spec instead: a Hugging Face config.json of a supported "
            "model_type with the same shapes, or a costmodel spec JSON (\"family\": lstm | gru | mlp | cnn)")


@dataclass(frozen=True)
class GenericHFSpec(ModelSpec):
    """A generic decoder (``approx``) plus one row holding the parameters it does not model, so the total
    equals transformers' count (``exact_params``)."""

    approx: TransformerSpec = None  # type: ignore[assignment]
    exact_params: int = 0
    hf_model_type: str = ""
    hf_class: str = ""
    notes: tuple[tuple[str, str], ...] = ()

    family = "decoder"
    generative = True

    def _approx_params(self) -> int:
        ctx = Ctx(batch=1, seq=1, kv_len=1, image_size=0, training=False, stream_bytes=2, compute_bytes=2,
                  kv_bytes=2, autocast=False, eager_attention=False, dropout=False)
        return sum(r.params * r.count for r in self.approx.ledger(ctx))

    def ledger(self, ctx: Ctx) -> list[Layer]:
        rows = self.approx.ledger(ctx)
        rest = self.exact_params - self._approx_params()
        if rest:
            rows.append(Layer(name="not_in_generic_decoder", kind="unmodelled", module="unmodelled", params=rest,
                              factored_state_elems=abs(rest)))
        return rows

    # facts other modules read
    def __getattr__(self, item):
        if item in ("vocab_size", "hidden", "layers", "heads", "n_kv_heads", "d_head", "tied_embeddings"):
            return getattr(self.approx, item)
        raise AttributeError(item)

    def checkpoint_bytes(self, ctx: Ctx) -> float:
        return self.approx.checkpoint_bytes(ctx)

    def loss_buffer_bytes(self, ctx: Ctx) -> float:
        return self.approx.loss_buffer_bytes(ctx)


def _refuse(mt, why: str, supported) -> InputError:
    return InputError("config.model_type", f"{mt!r}: {why}. costmodel has formulas for: {', '.join(supported)}; "
                      f"or {DESCRIBE}")


def generic_from_hf(cfg: dict, supported: tuple[str, ...]) -> GenericHFSpec:
    mt = cfg.get("model_type")
    try:
        import torch  # noqa: F401
        import transformers
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    except ImportError:
        raise _refuse(mt, "costmodel has no formulas for it, and an exact count through transformers needs torch "
                          "and transformers installed (pip install 'costmodel[profile]')",
                      supported) from None
    if not isinstance(mt, str) or mt not in CONFIG_MAPPING_NAMES:
        raise _refuse(mt, "not a model type transformers registers", supported)
    causal = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(mt)
    if not causal:
        raise _refuse(mt, "transformers registers no causal language model for it (costmodel's generic path covers "
                          "decoders)", supported)
    registered = {c for names in _all_mappings() for c in names}
    for arch in cfg.get("architectures") or []:
        if not isinstance(arch, str) or arch not in registered:
            raise InputError("config.architectures", f"{arch!r} is not a model class transformers registers; "
                             "costmodel only builds transformers' own classes (never remote code)")
    key = json.dumps({k: v for k, v in cfg.items() if k not in ("auto_map", "quantization_config")}, sort_keys=True,
                     default=str)
    return _build(key, tuple(supported))


def _all_mappings():
    from transformers.models.auto import modeling_auto

    for name in dir(modeling_auto):
        if name.startswith("MODEL_") and name.endswith("_MAPPING_NAMES"):
            for v in getattr(modeling_auto, name).values():
                yield (v,) if isinstance(v, str) else tuple(v)


@functools.lru_cache(maxsize=32)
def _build(key: str, supported: tuple[str, ...]) -> GenericHFSpec:
    import torch
    import transformers

    cfg = json.loads(key)
    mt = cfg["model_type"]
    fields = {k: v for k, v in cfg.items() if k not in ("model_type", "architectures", "_name_or_path")}
    try:
        hf = transformers.AutoConfig.for_model(mt, **fields)
    except Exception as exc:  # transformers validates its configs (strict dataclasses)
        raise InputError("config", f"transformers rejects this {mt} config: {exc}") from None
    text = hf.get_text_config() if hasattr(hf, "get_text_config") else hf
    missing = [f for f in STANDARD_FIELDS if not isinstance(getattr(text, f, None), int)]
    if missing:
        raise _refuse(mt, f"no costmodel formulas, and its config lacks the standard decoder fields "
                          f"{', '.join(missing)} a generic approximation needs", supported)
    try:
        with torch.device("meta"):
            model = transformers.AutoModelForCausalLM.from_config(hf, trust_remote_code=False)
    except Exception as exc:
        raise InputError("config", f"transformers could not build this {mt} config on the meta device: {exc}") from None
    exact = sum(p.numel() for p in model.parameters())
    heads = text.num_attention_heads
    kv = getattr(text, "num_key_value_heads", None) or heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
    approx = TransformerSpec(
        name=cfg.get("_name_or_path") or mt, vocab_size=text.vocab_size, hidden=text.hidden_size,
        layers=text.num_hidden_layers, heads=heads, kv_heads=kv if heads % kv == 0 else heads, head_dim=head_dim,
        ffn=text.intermediate_size, tied_embeddings=bool(getattr(text, "tie_word_embeddings", False)))
    cls = type(model).__name__
    spec = GenericHFSpec(name=approx.name, approx=approx, exact_params=exact, hf_model_type=mt, hf_class=cls)
    rest = exact - spec._approx_params()
    note = (f"{mt} has no costmodel formulas: params.total is exact ({exact:,}: transformers' {cls} built on the meta "
            f"device); FLOPs, memory and time come from a generic decoder (grouped-query attention + gated MLP) built "
            f"from the config's standard fields (hidden {text.hidden_size}, {text.num_hidden_layers} layers, {heads} "
            f"heads / {kv} KV heads, MLP {text.intermediate_size}, vocab {text.vocab_size}); {rest:+,} params that "
            "decoder does not model are held as weights without FLOPs")
    return GenericHFSpec(name=approx.name, approx=approx, exact_params=exact, hf_model_type=mt, hf_class=cls,
                         notes=(("generic", note),))
