"""Resolve what a user names as a model into a spec: a preset id, a path to a Hugging Face
config.json, a path to a costmodel spec JSON, or an already-parsed dict."""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .safe_json import read_json_file
from .specs.base import ModelSpec
from .specs.hf import read_json_file as read_config_file, spec_from_hf_config

ASSETS = Path(__file__).resolve().parent / "assets"
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
    data = read_json_file(files[preset_id], field="preset")
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


HF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def hf_cache_dir() -> Path:
    """The local Hugging Face hub cache: HF_HUB_CACHE, else HF_HOME/hub, else ~/.cache/huggingface/hub
    (huggingface_hub's own resolution order)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hf_cached_config(repo_id: str) -> Path:
    """config.json of ``org/name`` from the local Hugging Face cache, offline: the snapshot refs/main points
    to, else the most recent snapshot that has one. Nothing is downloaded."""
    repo = hf_cache_dir() / ("models--" + repo_id.replace("/", "--"))
    snaps = repo / "snapshots"
    ref = repo / "refs" / "main"
    if ref.is_file():
        candidate = snaps / ref.read_text(encoding="utf-8").strip() / "config.json"
        if candidate.is_file():
            return candidate
    found = sorted(snaps.glob("*/config.json"), key=lambda f: f.stat().st_mtime, reverse=True) if snaps.is_dir() else []
    if not found:
        raise InputError("model", f"{repo_id!r} is not a preset, a file, or a model in the local Hugging Face cache "
                         f"({repo}); costmodel works offline: download it first (huggingface-cli download {repo_id} "
                         "config.json) or give the path to its config.json")
    return found[0]


def display_name(spec: ModelSpec, cfg: dict, fallback: str = "") -> ModelSpec:
    """Name a spec read from a file after what the config says: the last part of ``_name_or_path`` (e.g.
    "Qwen3-8B"), else the model type and size ("qwen3 8.2B"), never the folder it sits in (a snapshot hash)."""
    from dataclasses import replace

    named = _clean_name(cfg.get("_name_or_path"))
    if named:
        return replace(spec, name=named)
    if fallback:
        return replace(spec, name=fallback)
    from .ledger import ledger, make_ctx  # local: the ledger imports the specs this module builds
    from .workload import Workload

    rows = ledger(spec, make_ctx(spec, Workload(task="infer", batch=1, prompt=1, generate=1), "prefill"))
    total = sum(r.params * r.count for r in rows)
    kind = cfg.get("model_type") or ((cfg.get("architectures") or [""])[0]) or cfg.get("family") or spec.family
    size = f"{total / 1e9:.1f}B" if total >= 1e9 else f"{total / 1e6:.0f}M"
    return replace(spec, name=f"{kind} {size}")


def _clean_name(value) -> str:
    """The model's name in an HF ``_name_or_path``: "Qwen/Qwen3-8B" -> "Qwen3-8B"; a local cache path
    ".../models--Qwen--Qwen3-8B/snapshots/<hash>" -> "Qwen3-8B"; a bare snapshot hash -> ""."""
    if not isinstance(value, str):
        return ""
    parts = [s for s in value.replace("\\", "/").split("/") if s and s != "snapshots"
             and not re.fullmatch(r"[0-9a-f]{40}", s)]
    if not parts:
        return ""
    last = parts[-1]
    return last.rsplit("--", 1)[-1] if last.startswith("models--") else last


def _from_file(path: Path, fallback: str = "") -> ModelSpec:
    cfg = read_config_file(path)
    return display_name(spec_from_dict(cfg), cfg, fallback)


def _exists(path: str | Path) -> bool:
    """Whether a path exists; a name the OS refuses (too long, a NUL byte) does not."""
    try:
        return Path(path).exists()
    except (OSError, ValueError):
        return False


def load_model(model: str | dict | ModelSpec) -> ModelSpec:
    """Preset id, path to a JSON file (or a folder holding config.json), a Hugging Face id ``org/name`` found in
    the local Hugging Face cache, a dict, or a spec (returned as is)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, dict):
        return spec_from_dict(model)
    if not isinstance(model, str) or not model.strip():
        raise InputError("model", "give a preset id (see `python -m costmodel presets`), a path to a config.json "
                         "or a Hugging Face id in the local cache")
    if model in _preset_files():
        return _load_preset_spec(model)
    path = Path(model).expanduser()
    if _exists(path / "config.json") and path.is_dir():
        return _from_file(path / "config.json")
    if _exists(path) or model.endswith(".json"):
        return _from_file(path)
    if HF_ID.fullmatch(model):
        return _from_file(hf_cached_config(model), fallback=model.rsplit("/", 1)[-1])
    raise InputError("model", f"unknown preset {model[:80]!r}; presets: {', '.join(_preset_files())}; "
                     "or give a path to a config.json or a Hugging Face id (org/name) in the local cache")
