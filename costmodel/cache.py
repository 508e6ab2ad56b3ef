"""Bounded memo caches shared by every caller in the process.

The estimator memoizes what sweeps repeat (the per-layer ledger of a pass, its sums, the roofline of a pass, the
price of a device-hour). These caches are module globals, so a long-lived process -- the Streamlit server, whose
sessions all run in one interpreter -- shares them across every user. Each one here is therefore

- **bounded twice**: at most ``max_entries`` entries and at most ``max_bytes`` approximate bytes (a ResNet-50
  ledger holds ~100 rows, a Llama ledger ~20: an entry bound alone lets memory grow with the model mix); the least
  recently used entries go first, and a value larger than the whole byte bound is returned but not kept;
- **safe to share between threads**: one lock guards each cache's table (the value is computed outside it; two
  threads missing the same key both compute it, and the second result replaces the first);
- **keyed by everything that determines the value** (the arguments of a pure function), so a hit is exactly what
  the function would return; tests/test_perf_caches.py checks cached == uncached.

Sizes are approximate: each cache takes a ``sizeof(value)`` function that counts its records with per-record
constants (``costmodel.ledger.LAYER_ROW_BYTES`` ...) rather than walking every object; tests compare them with
what ``tracemalloc`` measures. ``cache_stats()`` reports every cache's entries and bytes, ``clear_caches()``
empties them all (tests, or a server that wants its memory back).
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from typing import Callable

_MISSING = object()
_REGISTRY: dict[str, "BoundedCache"] = {}


class BoundedCache:
    """A least-recently-used table bounded in entries and in approximate bytes, guarded by a lock."""

    def __init__(self, name: str, max_entries: int, max_bytes: float, sizeof: Callable[[object], float]):
        if name in _REGISTRY:
            raise ValueError(f"cache {name!r} exists already")
        self.name, self.max_entries, self.max_bytes, self.sizeof = name, int(max_entries), float(max_bytes), sizeof
        self._data: OrderedDict = OrderedDict()  # key -> (value, approximate bytes)
        self._lock = threading.Lock()
        self.bytes = 0.0
        self.hits = self.misses = self.evictions = 0
        _REGISTRY[name] = self

    def get(self, key, default=_MISSING):
        with self._lock:
            item = self._data.get(key)
            if item is None:
                self.misses += 1
                return default
            self._data.move_to_end(key)
            self.hits += 1
            return item[0]

    def put(self, key, value) -> None:
        size = float(self.sizeof(value))
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._data[key] = (value, size)
            self.bytes += size
            while len(self._data) > self.max_entries or self.bytes > self.max_bytes:
                _, (_, s) = self._data.popitem(last=False)
                self.bytes -= s
                self.evictions += 1

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.bytes = 0.0

    def __len__(self) -> int:
        return len(self._data)

    def stats(self) -> dict:
        return {"entries": len(self._data), "bytes": self.bytes, "max_entries": self.max_entries,
                "max_bytes": self.max_bytes, "hits": self.hits, "misses": self.misses, "evictions": self.evictions}


class _Key(list):
    """Arguments as a cache key whose hash is computed once (functools' ``_HashedSeq`` idea): a look-up hashes
    the key for the table and again to mark it recently used, and specs and contexts are dataclasses of tens of
    fields. Equal arguments (the same spec object, or an equal one) give an equal key."""

    __slots__ = ("hashvalue",)

    def __init__(self, args: tuple):
        self[:] = args
        self.hashvalue = hash(args)

    def __hash__(self) -> int:
        return self.hashvalue


def bounded_cache(name: str, max_entries: int, max_bytes: float, sizeof: Callable[[object], float]):
    """Memoize a pure function of hashable positional arguments in a ``BoundedCache`` named ``name``.
    The wrapper has ``cache`` (the table), ``cache_clear()`` and ``uncached`` (the function itself)."""

    def wrap(fn):
        cache = BoundedCache(name, max_entries, max_bytes, sizeof)

        @functools.wraps(fn)
        def cached(*args):
            key = _Key(args)
            hit = cache.get(key)
            if hit is not _MISSING:
                return hit
            out = fn(*args)
            cache.put(key, out)
            return out

        cached.cache = cache
        cached.cache_clear = cache.clear
        cached.uncached = fn
        return cached

    return wrap


def memo_by_identity(max_entries: int = 64):
    """Memoize a function of one argument by the argument's identity (a spec a sweep passes again and again):
    a look-up costs a dict access instead of hashing a record of tens of fields. The entry keeps the argument
    alive, so its id cannot be reused while the entry exists; the table is emptied when it holds
    ``max_entries``. For pure functions of immutable arguments only."""

    def wrap(fn):
        table: dict[int, tuple] = {}

        @functools.wraps(fn)
        def memo(obj):
            hit = table.get(id(obj))
            if hit is not None and hit[0] is obj:
                return hit[1]
            out = fn(obj)
            if len(table) >= max_entries:
                table.clear()
            table[id(obj)] = (obj, out)
            return out

        memo.cache_clear = table.clear
        _IDENTITY_TABLES.append(table)
        return memo

    return wrap


_IDENTITY_TABLES: list[dict] = []


def cache_stats() -> dict[str, dict]:
    """Every bounded cache of the package: entries, approximate bytes, bounds, hits, misses, evictions."""
    return {name: c.stats() for name, c in sorted(_REGISTRY.items())}


def clear_caches() -> None:
    """Empty every bounded cache (the next calls recompute and refill them)."""
    for c in _REGISTRY.values():
        c.clear()
    for t in _IDENTITY_TABLES:
        t.clear()
