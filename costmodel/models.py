"""Resolve what a user names as a model into a spec: a preset id, a path to a Hugging Face
config.json, a path to a costmodel spec JSON, or an already-parsed dict."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .specs.base import ModelSpec
from .specs.hf import read_json_file, spec_from_hf_config

ASSETS = Path(__file__).resolve().parent.parent / "assets"
PRESET_DIR = ASSETS / "presets"


@dataclass(frozen=True)
class Preset:
    id: str
    name: str
    family: str
    source: str
    config: dict
    published_params: int | None = None
    published_params_source: str = ""


def spec_from_dict(data: dict, name: str | None = None) -> ModelSpec:
    """A parsed config: HF (has ``model_type``) or costmodel JSON (has ``family``)."""
    if not isinstance(data, dict):
        raise InputError("model", "must be a JSON object")
    if "model_type" in data:
        if name and not data.get("_name_or_path"):
            data = {**data, "_name_or_path": name}
        return spec_from_hf_config(data)
    if data.get("family") in ("sequential", "wide_deep"):  # Keras-style layer lists, two-tower recommenders
        from .specs.sequential import sequential_from_dict, wide_deep_from_dict

        if name and not data.get("name"):
            data = {**data, "name": name}
        return (sequential_from_dict if data["family"] == "sequential" else wide_deep_from_dict)(data)
    if "family" in data:
        try:
            from .specs.custom import spec_from_costmodel_json
        except ImportError:
            raise InputError("model.family", f"{data['family']!r}: costmodel spec JSON families (lstm, gru, mlp, cnn) "
                             "are not available in this version; use a Hugging Face config.json") from None

        if name and not data.get("name"):
            data = {**data, "name": name}
        return spec_from_costmodel_json(data)
    raise InputError("model", "a config needs 'model_type' (Hugging Face config.json) or 'family' "
                     "(costmodel spec: lstm, gru, mlp, cnn, sequential, wide_deep)")


@functools.lru_cache(maxsize=None)
def _preset_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(PRESET_DIR.glob("*.json"))}


@functools.lru_cache(maxsize=None)
def get_preset(preset_id: str) -> Preset:
    files = _preset_files()
    if preset_id not in files:
        raise InputError("model", f"unknown preset {preset_id!r}; presets: {', '.join(files)}; "
                         "or give a path to a config.json")
    data = json.loads(files[preset_id].read_text(encoding="utf-8"))
    return Preset(id=data.get("id", preset_id), name=data.get("name", preset_id), family=data.get("family", ""),
                  source=data.get("source", ""), config=data["config"],
                  published_params=data.get("published_params"),
                  published_params_source=data.get("published_params_source", ""))


def list_presets() -> list[Preset]:
    return [get_preset(k) for k in _preset_files()]


@functools.lru_cache(maxsize=256)
def _load_preset_spec(preset_id: str) -> ModelSpec:
    pre = get_preset(preset_id)
    return spec_from_dict(pre.config, name=pre.id)


def load_model(model: str | dict | ModelSpec) -> ModelSpec:
    """Preset id, path to a JSON file, a dict, or a spec (returned as is)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return spec_from_dict(model)
    if not isinstance(model, str) or not model.strip():
        raise InputError("model", "give a preset id (see `python -m costmodel presets`) or a path to a config.json")
    if model in _preset_files():
        return _load_preset_spec(model)
    if model.endswith(".json") or "/" in model or Path(model).exists():
        return spec_from_dict(read_json_file(model), name=Path(model).parent.name or Path(model).stem)
    raise InputError("model", f"unknown preset {model!r}; presets: {', '.join(_preset_files())}; "
                     "or give a path to a config.json")
