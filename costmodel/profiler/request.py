"""What a profiling run is asked to do (``ProfileRequest``) and what it gives back (``ProfileResult``).

Both are plain records: no torch here, so the dashboard and the CLI can build, store and show them
without importing torch. ``ProfileResult.to_record()`` is the dict stored by ``costmodel.storage``
(or written as a JSON file).
"""

from __future__ import annotations

import copy
import re
from dataclasses import asdict, dataclass, field, fields

from ..errors import InputError

# What a run ends as. Every outcome is one of these; the parent never raises for a failed run.
# killed: by a signal from outside the profiler (not the time limit, not a cancel, not the OOM killer)
STATUSES = ("ok", "refused", "timeout", "cancelled", "oom", "killed", "error")
# Test hooks: make the child fail in a known way (the safety tests use them).
FAULTS = ("raise", "abort", "hang", "oom")

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _whole(v) -> int | None:
    """An int, or a float with no fraction (widgets give 3.0), as int; anything else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None


def _spec_or_none(model, overrides):
    """The model's spec when it can be read here (a preset, a config dict, a readable file), else None: the
    child reports what it cannot build."""
    if not isinstance(model, (str, dict)) or not isinstance(overrides, dict):
        return None
    try:
        from ..models import load_model

        return load_model(resolve_model(model, overrides)[1])
    except (InputError, OSError, ValueError, TypeError, KeyError):
        return None


@dataclass(frozen=True)
class ProfileRequest:
    """One run: a model, a workload and how to measure it.

    ``model``: preset id, path to a HF config.json / costmodel spec JSON, or the config dict itself.
    ``workload``: the fields of ``costmodel.Workload`` (a dict or a Workload).
    ``config_overrides``: keys replaced in the model's config before building (shrink a preset:
    ``{"n_layer": 2}``). The prediction uses the same overridden config.
    ``steps`` measured steps after ``warmup`` unmeasured ones; ``timeout_s`` is a hard limit on the
    whole child process (model build included), after which it is killed.
    ``hardware``: catalog id for the prediction (default: the catalog entry matching the GPU's NVML name and
    memory exactly, or ``cpu-generic`` on CPU). ``count_flops``/``fvcore``: the counter passes (after the
    measured steps); ``flops_cache``: reuse the counts of an earlier run with the same config, workload, device
    and versions (the profiler directory's ``flops_cache``). ``threads``: torch intra-op threads in the child (None: torch's default).
    ``fault``: test hook ("raise", "abort", "hang", "oom"), None in real use.
    """

    model: str | dict
    workload: dict = field(default_factory=dict)
    device: str = "cpu"
    steps: int = 3
    warmup: int = 1
    timeout_s: float = 600.0
    hardware: str | None = None
    config_overrides: dict = field(default_factory=dict)
    count_flops: bool = True
    fvcore: bool = True
    flops_cache: bool = True
    memory_timeline: bool = True
    threads: int | None = None
    fault: str | None = None

    def __post_init__(self):
        from ..workload import Workload

        wl = self.workload
        if isinstance(wl, Workload):
            wl = wl.to_dict()
        elif not isinstance(wl, dict):
            raise InputError("workload", "must be a dict of Workload fields or a Workload")
        spec = _spec_or_none(self.model, self.config_overrides)
        if spec is not None:  # fields left out take the model's defaults (seq within its context length)
            from ..limits import resolve_defaults

            wl = resolve_defaults(spec, wl)
        workload = Workload.from_dict(wl)  # validates
        if spec is not None:  # refused here, in one line, not as an IndexError in the child
            from ..limits import check_workload

            check_workload(spec, workload)
        object.__setattr__(self, "workload", workload.to_dict())
        if not isinstance(self.device, str) or not _DEVICE.match(self.device):
            raise InputError("device", f"must be cpu, cuda or cuda:N, got {self.device!r}")
        for name, lo, hi in (("steps", 1, 10000), ("warmup", 0, 1000)):
            v = _whole(getattr(self, name))
            if v is None or not lo <= v <= hi:
                raise InputError(name, f"must be a whole number from {lo} to {hi}, got {getattr(self, name)!r}")
            object.__setattr__(self, name, v)
        from .proc import check_timeout

        object.__setattr__(self, "timeout_s", check_timeout(self.timeout_s, "timeout_s"))
        if self.threads is not None:
            v = _whole(self.threads)
            if v is None or v < 1:
                raise InputError("threads", f"must be a positive whole number or None, got {self.threads!r}")
            object.__setattr__(self, "threads", v)
        if self.fault is not None and self.fault not in FAULTS:
            raise InputError("fault", f"must be one of {', '.join(FAULTS)} or None, got {self.fault!r}")
        if not isinstance(self.config_overrides, dict):
            raise InputError("config_overrides", "must be a dict of config keys")
        if not isinstance(self.model, (str, dict)):
            raise InputError("model", "give a preset id, a path to a config.json, or a config dict")

    def to_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "ProfileRequest":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(unknown[0], f"is not a ProfileRequest field; known: {', '.join(sorted(known))}")
        return cls(**data)


def resolve_model(model: str | dict, overrides: dict | None = None) -> tuple[str, dict]:
    """(name, config dict) for a preset id, a path to a JSON file, or a config dict, with
    ``overrides`` applied. The config is what both the estimator and the child build from."""
    from pathlib import Path

    from ..models import _preset_files, get_preset
    from ..specs.hf import read_json_file

    if isinstance(model, dict):
        import hashlib
        import json

        cfg = copy.deepcopy(model)
        name = cfg.get("name") or cfg.get("_name_or_path")
        if not name:  # tell different unnamed configs apart in stored runs
            digest = hashlib.sha1(json.dumps(cfg, sort_keys=True, default=str).encode()).hexdigest()[:8]
            name = f"{cfg.get('model_type') or cfg.get('family') or 'model'} (config {digest})"
        name = str(name)
    elif isinstance(model, str) and model in _preset_files():
        pre = get_preset(model)
        cfg, name = copy.deepcopy(pre.config), pre.id
    elif isinstance(model, str) and model.strip():
        cfg = read_json_file(model)
        name = Path(model).parent.name if Path(model).name == "config.json" else Path(model).stem
    else:
        raise InputError("model", "give a preset id (see `python -m costmodel presets`) or a path to a config.json")
    if overrides:
        cfg.update(copy.deepcopy(overrides))
        name = f"{name} (overridden: {', '.join(f'{k}={v}' for k, v in sorted(overrides.items()))})"
    if "family" in cfg and not cfg.get("name"):
        cfg["name"] = name
    return name, cfg


@dataclass
class ProfileResult:
    """The outcome of one run. ``status`` is one of ``STATUSES``; ``message`` says why in words.

    ``measured``: what the child measured (units in the key names: ``*_bytes``, ``*_s``, ``*_flops``).
    ``predicted``: the estimator's numbers for the same workload (``costmodel.estimate``).
    ``comparison``: one row per quantity: {"quantity", "unit", "predicted", "measured", "error_pct", "note"}.
    """

    status: str
    message: str = ""
    run_id: str = ""
    run_dir: str = ""
    model: str = ""
    device: str = ""  # the measured device's name (GPU name, or "cpu: <model name>")
    task: str = ""
    request: dict = field(default_factory=dict)
    measured: dict = field(default_factory=dict)
    predicted: dict = field(default_factory=dict)
    comparison: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    elapsed_s: float = 0.0
    stderr_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, data: dict) -> "ProfileResult":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_record(self) -> dict:
        """The storage record: {"device", "model", "task", "workload", "measured", "predicted",
        "environment", "status"} plus the comparison rows, notes and the request."""
        return {
            "device": self.device,
            "model": self.model,
            "task": self.task,
            "workload": copy.deepcopy(self.request.get("workload", {})),
            "measured": copy.deepcopy(self.measured),
            "predicted": copy.deepcopy(self.predicted),
            "environment": copy.deepcopy(self.environment),
            "status": self.status,
            "message": self.message,
            "comparison": copy.deepcopy(self.comparison),
            "notes": list(self.notes),
            "request": copy.deepcopy(self.request),
            "run_id": self.run_id,
        }
