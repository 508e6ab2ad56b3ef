"""A scenario: everything needed to reproduce one estimate, as plain JSON data.

    {"schema": 1,
     "name": "7B on 8 H100s",
     "model": "llama-2-7b" | {HF config.json or costmodel spec dict},
     "hardware": "h100-sxm-80gb" | {hardware record, costmodel/assets/hardware/*.json schema},
     "workload": Workload.to_dict(),
     "plan": {training/serving plan inputs: num_gpus, tokens, price overrides, ...},
     "assumptions": {overrides, e.g. "efficiency": {"matmul": 0.5}},
     "notes": "free text"}

``validate_scenario`` returns the normalised dict (all keys, canonical order, the workload filled in
with defaults) and guarantees that ``evaluate_scenario`` of it succeeds. Model and hardware given as
strings must be preset / catalog ids: a scenario never points at a file on the machine that saved it
(it would not travel, and on a shared dashboard it would read server files); give the parsed file as a
dict instead. ``plan`` is stored as validated JSON data only (``costmodel.plans`` interprets it).
"""

from __future__ import annotations

import json
import math
from dataclasses import fields

from .api import estimate
from .catalog import DEFAULT_HARDWARE, catalog, hardware_from_dict, load_hardware
from .errors import InputError
from .models import list_presets, load_model
from .perf import Efficiency
from .results import Estimate
from .safe_json import check_depth_and_text
from .workload import Workload

SCHEMA = 1
KEYS = ("schema", "name", "model", "hardware", "workload", "plan", "assumptions", "notes")
NOTES_MAX_CHARS = 20_000
DATA_MAX_BYTES = 1_000_000
_WORKLOAD_FIELDS = frozenset(f.name for f in fields(Workload))
# plan entries that count things: whole numbers >= 1
_PLAN_COUNTS = ("num_gpus", "gpus", "nodes", "gpus_per_node", "replicas", "tp", "pp", "dp",
                "micro_batches", "grad_accum")


NAME_MAX_CHARS = 120


def model_label(model) -> str:
    """A short name for a scenario's model: the preset id, or a config's name."""
    if isinstance(model, str):
        return model
    if isinstance(model, dict):
        for key in ("_name_or_path", "name", "model_type", "family"):
            v = model.get(key)
            if isinstance(v, str) and v:
                return v if key in ("_name_or_path", "name") else f"custom {v}"
    return "custom"


def hardware_label(hw) -> str:
    """A short name for a scenario's hardware: the catalog id, or a record's id."""
    if isinstance(hw, str):
        return hw
    if isinstance(hw, dict) and isinstance(hw.get("id"), str):
        return hw["id"]
    return "custom"


def find_bad_value(obj, path: str) -> str | None:
    """Path of the first value JSON cannot hold exactly (NaN, infinity, a non-string key, an object)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return path
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                return f"{path}.{k!r}"
            bad = find_bad_value(v, f"{path}.{k}")
            if bad:
                return bad
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = find_bad_value(v, f"{path}[{i}]")
            if bad:
                return bad
    elif not (obj is None or isinstance(obj, (str, int, float, bool))):
        return path
    return None


def check_name(name, field: str = "name") -> str:
    """A scenario name: 1-120 characters after trimming, printable, valid Unicode."""
    if not isinstance(name, str):
        raise InputError(field, f"must be text, got {type(name).__name__}")
    name = name.strip()
    if not name:
        raise InputError(field, "must not be empty")
    if len(name) > NAME_MAX_CHARS:
        raise InputError(field, f"must be at most {NAME_MAX_CHARS} characters, got {len(name)}")
    if any(not ch.isprintable() for ch in name):
        raise InputError(field, "must not contain control characters (tabs, newlines, ...)")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(field, "is not valid Unicode text") from None
    return name


def _json_data(value, field: str, max_depth: int = 32) -> dict:
    if not isinstance(value, dict):
        raise InputError(field, f"must be an object (dict), got {type(value).__name__}")
    bad = find_bad_value(value, field)
    if bad:
        raise InputError(bad, "must be JSON data: a finite number, text, true/false, null, list or object")
    check_depth_and_text(value, max_depth=max_depth, field=field)
    size = len(json.dumps(value))
    if size > DATA_MAX_BYTES:
        raise InputError(field, f"is {size:,} bytes as JSON; the limit is {DATA_MAX_BYTES:,}")
    return json.loads(json.dumps(value))  # a deep copy made of plain JSON types (tuples -> lists)


def _model(value):

    if isinstance(value, str):
        ids = [p.id for p in list_presets()]
        if value.strip() not in ids:
            raise InputError("model", f"unknown preset {value!r}; presets: {', '.join(ids)}; or give the parsed "
                                      "config.json as an object (a scenario never refers to a file path)")
        value = value.strip()
    elif isinstance(value, dict):
        value = _json_data(value, "model")
    else:
        raise InputError("model", f"must be a preset id or a config object, got {type(value).__name__}")
    try:
        load_model(value)
    except InputError:
        raise
    except (KeyError, TypeError, ValueError, ArithmeticError, AttributeError, IndexError) as exc:
        # a config importer tripping over a malformed value: still the user's input, not our crash
        raise InputError("model", f"config could not be read ({type(exc).__name__}: {exc})") from None
    return value


def _hardware(value):

    if value is None:
        return DEFAULT_HARDWARE
    if isinstance(value, str):
        cat = catalog()
        if value.strip() not in cat:
            raise InputError("hardware", f"unknown id {value!r}; known: {', '.join(sorted(cat))} (or give the "
                                         "hardware record as an object)")
        return value.strip()
    if isinstance(value, dict):
        return hardware_from_dict(_json_data(value, "hardware")).to_dict()
    raise InputError("hardware", f"must be a catalog id or a hardware object, got {type(value).__name__}")


_WORKLOAD_TYPES = {  # JSON types a scenario may give (Workload itself checks ranges and choices)
    "task": (str,), "precision": (str,), "optimizer": (str,), "attention": (str,),
    "batch": (int, float, str), "seq": (int, float, str), "image_size": (int, float, str), "prompt": (int, float, str),
    "generate": (int, float, str), "lora_rank": (int, float, str), "sparsity": (int, float),
    "grad_checkpointing": (bool, str), "bitfit": (bool,), "dropout": (bool, type(None)),
    "kv_cache_precision": (str, type(None)), "lora_targets": (str, list, tuple),
}
_TYPE_WORDS = {str: "text", int: "a number", float: "a number", bool: "true or false", type(None): "null",
               list: "a list of module names", tuple: "a list of module names"}


def _check_workload_types(value: dict) -> None:
    for k, v in value.items():
        kinds = _WORKLOAD_TYPES.get(k)
        if kinds is None:
            continue  # unknown keys: Workload.from_dict names them
        ok = isinstance(v, kinds) and not (isinstance(v, bool) and bool not in kinds)
        if k == "lora_targets" and isinstance(v, (list, tuple)):
            ok = all(isinstance(t, str) for t in v)
        if not ok:
            allowed = " or ".join(dict.fromkeys(_TYPE_WORDS[t] for t in kinds))
            raise InputError(f"workload.{k}", f"must be {allowed}, got {v!r:.60}")


def _workload(value, model=None) -> dict:
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InputError("workload", f"must be an object of workload fields, got {type(value).__name__}")
    _check_workload_types(value)
    if model is not None:  # fields left out take the model's defaults (seq within its context length)
        from .limits import resolve_defaults

        value = resolve_defaults(load_model(model), value)
    try:
        return Workload.from_dict(value).to_dict()
    except InputError as err:
        raise InputError(f"workload.{err.field}", err.message) from None
    except TypeError as exc:  # e.g. a list where a string belongs
        raise InputError("workload", f"has a value of the wrong type ({exc})") from None


def _plan(value) -> dict:
    if value is None:
        return {}
    plan = _json_data(value, "plan", max_depth=8)
    stack = [(plan, "plan")]
    while stack:
        node, path = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for k, v in items:
            p = f"{path}.{k}" if isinstance(node, dict) else f"{path}[{k}]"
            if isinstance(v, (dict, list)):
                stack.append((v, p))
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                if v < 0:
                    raise InputError(p, f"must be >= 0 (counts, token totals and prices are never negative), got {v}")
                if isinstance(node, dict) and k in _PLAN_COUNTS and (v < 1 or v != int(v)):
                    raise InputError(p, f"must be a whole number >= 1, got {v}")
            elif isinstance(v, str) and len(v) > 10_000:
                raise InputError(p, "must be at most 10,000 characters")
    return plan


def _assumptions(value) -> dict:
    if value is None:
        return {}
    out = _json_data(value, "assumptions", max_depth=8)
    if "efficiency" in out:
        _efficiency(out["efficiency"])
    return out


def _efficiency(value):

    if not isinstance(value, dict):
        raise InputError("assumptions.efficiency", "must be an object such as {\"matmul\": 0.5, \"bandwidth\": 0.7}")
    known = {f.name for f in fields(Efficiency)}
    unknown = sorted(set(value) - known)
    if unknown:
        raise InputError(f"assumptions.efficiency.{unknown[0]}", f"unknown; known: {', '.join(sorted(known))}")
    try:
        return Efficiency(**value)
    except InputError as err:
        raise InputError(f"assumptions.{err.field}", err.message) from None


def _normalise(d) -> dict:
    if not isinstance(d, dict):
        raise InputError("scenario", f"must be an object (dict), got {type(d).__name__}")
    unknown = sorted(set(d) - set(KEYS), key=str)
    if unknown:
        raise InputError(f"scenario.{unknown[0]}", f"unknown key; allowed: {', '.join(KEYS)}")
    schema = d.get("schema", SCHEMA)
    if isinstance(schema, bool) or not isinstance(schema, int) or schema < 1:
        raise InputError("schema", f"must be {SCHEMA}, got {schema!r}")
    if schema > SCHEMA:
        raise InputError("schema", f"is {schema}, newer than this costmodel understands ({SCHEMA}); upgrade costmodel")
    if "name" not in d:
        raise InputError("name", "is required")
    if "model" not in d:
        raise InputError("model", "is required: a preset id or a config object")
    notes = d.get("notes", "")
    if notes is None:
        notes = ""
    if not isinstance(notes, str):
        raise InputError("notes", f"must be text, got {type(notes).__name__}")
    if len(notes) > NOTES_MAX_CHARS:
        raise InputError("notes", f"must be at most {NOTES_MAX_CHARS:,} characters, got {len(notes):,}")
    check_depth_and_text(notes, field="notes")
    model = _model(d["model"])
    return {
        "schema": SCHEMA,
        "name": check_name(d["name"]),
        "model": model,
        "hardware": _hardware(d.get("hardware")),
        "workload": _workload(d.get("workload"), model),
        "plan": _plan(d.get("plan")),
        "assumptions": _assumptions(d.get("assumptions")),
        "notes": notes,
    }


def _evaluate(s: dict) -> Estimate:
    hw = load_hardware(s["hardware"]) if isinstance(s["hardware"], str) else hardware_from_dict(s["hardware"])
    eff = s["assumptions"].get("efficiency")
    try:
        return estimate(s["model"], hardware=hw, workload=Workload.from_dict(s["workload"]),
                        efficiency=_efficiency(eff) if eff is not None else None)
    except InputError as err:
        if err.field.split(".")[0] in _WORKLOAD_FIELDS:
            raise InputError(f"workload.{err.field}", err.message) from None
        raise


def validate_scenario(d: dict) -> dict:
    """The normalised scenario; ``InputError`` naming the field (``workload.batch``, ``model``,
    ``hardware.memory_bytes``, ``plan.num_gpus``...) if any part is invalid or cannot be estimated."""
    s = _normalise(d)
    est = _evaluate(s)  # combinations only the estimator can check (LoRA targets, checkpointing support)
    if not all(math.isfinite(v) for v in (est.memory_bytes.peak, est.flops.total)):
        raise InputError("workload", "gives numbers too large to represent; reduce batch or sequence length")
    return s


def evaluate_scenario(d: dict) -> Estimate:
    """``costmodel.estimate`` of a scenario (validated first)."""
    return _evaluate(_normalise(d))
