"""Seed scenarios (``costmodel/assets/seeds.json``): one-click starting points on the Start page."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from ..catalog import ASSETS_DIR
from ..errors import InputError

SEEDS_FILE = ASSETS_DIR / "seeds.json"


@functools.lru_cache(maxsize=1)
def _seeds(path: str) -> tuple[dict, ...]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return tuple(data["seeds"])


def load_seeds(path: str | Path = SEEDS_FILE) -> list[dict]:
    """Seed scenarios (``costmodel/assets/seeds.json``): id, title, description, page, query (URL parameters)."""
    return [dict(s) for s in _seeds(str(path))]


def get_seed(seed_id: str) -> dict:
    for s in load_seeds():
        if s["id"] == seed_id:
            return s
    raise InputError("seed", f"unknown seed {seed_id!r}; seeds: {', '.join(s['id'] for s in load_seeds())}")
