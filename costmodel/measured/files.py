"""Where aiconfigurator-core's measured tables lie and which version answers: the package root and version,
the ``current`` data slot per (system, backend) from ``systems/query_versions.yaml`` with the backward fill
for op files a version lacks, the NCCL folder, each file's collection metadata, and a column reader that
loads only the columns a lookup needs. ``costmodel.measured.tables`` builds the lookup grids from them."""

from __future__ import annotations

import functools
from importlib import metadata
from pathlib import Path
from typing import Optional

import numpy as np

def _package_root() -> Path:
    import aiconfigurator_core  # noqa: F401  (ImportError handled by the caller)

    return Path(aiconfigurator_core.__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def package_version() -> str:
    try:
        return metadata.version("aiconfigurator-core")
    except metadata.PackageNotFoundError:  # a source checkout on sys.path
        return "unknown"


def systems_dir() -> Path:
    return _package_root() / "systems"


def _version_key(v: str):
    from packaging.version import InvalidVersion, Version

    try:
        return (1, Version(v))
    except InvalidVersion:
        return (0, v)


@functools.lru_cache(maxsize=1)
def _query_slots() -> dict:
    import yaml

    path = systems_dir() / "query_versions.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


@functools.lru_cache(maxsize=None)
def system_spec(system: str) -> dict:
    """The system's YAML spec (peaks, bandwidths, ``misc.nccl_version``)."""
    import yaml

    path = systems_dir() / f"{system}.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}


def current_version(system: str, backend: str) -> Optional[str]:
    """The ``current`` slot of query_versions.yaml for (system, backend)."""
    slots = _query_slots()
    over = (slots.get("overrides") or {}).get(system, {}).get(backend)
    slot = over or (slots.get("defaults") or {}).get(backend) or {}
    return slot.get("current")


def resolve_op_file(system: str, family: str, backend: str, filename: str) -> Optional[Path]:
    """Path of ``filename`` for (system, family, backend): the current version's copy, else the
    newest older version's (backward fill); with no current slot, the newest version's."""
    base = systems_dir() / "data" / system / family / backend
    if not base.is_dir():
        return None
    versions = sorted((p.name for p in base.iterdir() if (p / filename).is_file()), key=_version_key, reverse=True)
    if not versions:
        return None
    cur = current_version(system, backend)
    if cur is None:
        return base / versions[0] / filename
    for v in versions:
        if _version_key(v) <= _version_key(cur):
            return base / v / filename
    return None


def resolve_nccl_file(system: str) -> Optional[Path]:
    base = systems_dir() / "data" / system / "comm" / "nccl"
    if not base.is_dir():
        return None
    versions = sorted((p.name for p in base.iterdir() if (p / "nccl_perf.parquet").is_file()), key=_version_key)
    if not versions:
        return None
    declared = str((system_spec(system).get("misc") or {}).get("nccl_version", ""))
    v = declared if declared in versions else versions[-1]
    return base / v / "nccl_perf.parquet"


def _collection_meta(path: Path) -> dict:
    import yaml

    meta = path.parent / "collection_meta.yaml"
    try:
        return yaml.safe_load(meta.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}


def _read_columns(path: Path, wanted: tuple[str, ...], defaults: dict) -> dict:
    """The named columns as numpy arrays; a column the file lacks takes its default
    (older files have no ``window_size``: full attention)."""
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    have = [c for c in wanted if c in names]
    table = pq.read_table(path, columns=have)
    n = table.num_rows
    out = {}
    for c in wanted:
        if c in names:
            col = table.column(c)
            out[c] = col.to_numpy(zero_copy_only=False)
        elif c in defaults:
            out[c] = np.full(n, defaults[c], dtype=object if isinstance(defaults[c], str) else float)
        else:
            raise KeyError(f"{path} has no column {c!r}")
    return out
