"""The bounded caches (issue 17): a cached result is the uncached result, the bounds hold in entries and in bytes,
the byte estimates agree with tracemalloc, per-layer rows appear only when read, and the catalogs are read again
when a catalog file changes. Speed itself is measured in benchmarks/ (memory_growth.py, api_sweep.py), not here."""

from __future__ import annotations

import gc
import json
import pickle
import threading
import tracemalloc

import pytest

import costmodel
from costmodel import cache, catalog, costs, ledger as ledger_mod, prices
from costmodel.estimator import estimate
from costmodel.ledger import LazyLayerRows, ledger, make_ctx, row_sums
from costmodel.models import load_model
from costmodel.workload import Workload

CASES = [
    ("resnet-50", dict(task="train", batch=8, image_size=224, optimizer="sgd-momentum")),
    ("llama-3-8b", dict(task="infer", batch=4, prompt=300, generate=40, precision="bf16")),
    ("llama-2-7b", dict(task="train", batch=2, seq=512, lora_rank=8, grad_checkpointing=True)),
    ("mixtral-8x7b", dict(task="train", batch=1, seq=256)),
    ("gpt2", dict(task="train", batch=4, seq=128, precision="fp32", optimizer="adafactor")),
    ("bert-base", dict(task="infer", batch=8, seq=128, precision="bf16")),
]


@pytest.mark.parametrize("model, kw", CASES)
def test_cached_estimate_equals_uncached(model, kw):
    # the reference: every cache emptied before the estimate; then the same estimate from warm caches, and once
    # more after other shapes have pushed entries around
    costmodel.clear_caches()
    cold = costmodel.estimate(model, "h100-sxm-80gb", **kw).to_dict(with_layers=True)
    warm = costmodel.estimate(model, "h100-sxm-80gb", **kw).to_dict(with_layers=True)
    for b in (3, 5, 7):
        costmodel.estimate(model, "a100-sxm-80gb", **{**kw, "batch": b})
    again = costmodel.estimate(model, "h100-sxm-80gb", **kw).to_dict(with_layers=True)
    assert cold == warm == again


@pytest.mark.parametrize("model, kw", CASES)
def test_ledger_and_sums_equal_the_uncached_walk(model, kw):
    spec = load_model(model)
    w = Workload(**kw)
    phase = "train" if w.training else ("prefill" if spec.generative else "forward")
    ctx = make_ctx(spec, w, phase)
    assert tuple(ledger(spec, ctx)) == tuple(spec.ledger(ctx))
    args = (spec, ctx, w.prec, "full" if w.training else "none", frozenset(), 0)
    cached = row_sums(*args, False, False)
    fresh = ledger_mod._row_sums(*args, False, False)
    for name in ("total", "active", "fwd", "bwd", "act_rows", "recompute", "trainable", "native_bytes"):
        assert getattr(cached, name) == getattr(fresh, name), name


def test_layer_rows_are_built_when_read_and_equal_the_eager_table():
    spec = load_model("resnet-50")
    w = Workload(batch=4, image_size=224)
    est = estimate(spec, w, "h100-sxm-80gb")
    assert isinstance(est.layers, LazyLayerRows) and est.layers._rows is None  # nothing built yet
    ctx = make_ctx(spec, w, "train")
    eager = ledger_mod._row_sums(spec, ctx, w.prec, "full", frozenset(), 0, True, False).layer_rows
    assert len(eager) == len(ledger(spec, ctx)) > 50
    assert est.layers == eager and tuple(est.layers) == eager and est.layers[3] == eager[3]
    assert est.layers._rows is not None
    # pickled (st.cache_data, multiprocessing) as the plain tuple
    back = pickle.loads(pickle.dumps(est))
    assert type(back.layers) is tuple and back.layers == eager and back == est
    assert estimate(spec, w, "h100-sxm-80gb", with_layers=False).layers == ()


def test_bounded_cache_evicts_least_recent_first_by_entries_and_by_bytes():
    c = cache.BoundedCache("test.lru", max_entries=3, max_bytes=100, sizeof=lambda v: v)
    try:
        for k, size in (("a", 10), ("b", 10), ("c", 10)):
            c.put(k, size)
        assert c.get("a") == 10  # a is now the most recent
        c.put("d", 10)  # 4 entries > 3: b (least recent) goes
        assert c.get("b", None) is None and [c.get(k) for k in "acd"] == [10, 10, 10]
        c.put("e", 75)  # 105 bytes > 100: a (least recent) goes, then 95 bytes fit
        assert c.get("a", None) is None and c.bytes == 95 and len(c) == 3
        c.put("huge", 101)  # larger than the whole bound: returned by the caller, never kept
        assert c.get("huge", None) is None and c.bytes == 95
        c.put("d", 20)  # replacing a key updates its size: 105 bytes, so c (now least recent) goes
        assert c.get("c", None) is None and c.bytes == 95 and len(c) == 2
        assert c.stats()["evictions"] == 3
    finally:
        cache._REGISTRY.pop("test.lru")


def test_bounded_cache_is_consistent_under_threads():
    c = cache.BoundedCache("test.threads", max_entries=50, max_bytes=400, sizeof=lambda v: 7)
    try:
        def work(seed):
            for i in range(3000):
                k = (seed * 7919 + i) % 120
                if c.get(k, None) is None:
                    c.put(k, k)
        threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(c) <= 50 and c.bytes == 7 * len(c) <= 400
        assert all(c.get(k, k) == k for k in range(120))  # every kept value is its key's
    finally:
        cache._REGISTRY.pop("test.threads")


def test_ledger_cache_stays_within_its_bounds_over_many_shapes(monkeypatch):
    lc = ledger.cache
    monkeypatch.setattr(lc, "max_bytes", 3e6)
    costmodel.clear_caches()
    spec = load_model("resnet-50")
    for b in range(1, 120):
        estimate(spec, Workload(batch=b, image_size=160), "h100-sxm-80gb", with_layers=False)
        assert lc.bytes <= 3e6 and len(lc) <= lc.max_entries
    assert lc.stats()["evictions"] > 0
    s = costmodel.cache_stats()
    assert {"ledger", "row_sums", "costs.hourly_cost", "prices.price_per_gpu_hour"} <= set(s)
    costmodel.clear_caches()


@pytest.mark.parametrize("model, kw, phase", [
    ("resnet-50", dict(image_size=224), "train"), ("llama-3-8b", dict(seq=512), "train"),
    ("mixtral-8x7b", dict(task="infer", prompt=64, generate=8, precision="bf16"), "prefill")])
def test_byte_estimates_agree_with_tracemalloc(model, kw, phase):
    # the reference: what tracemalloc sees allocated by 40 ledgers and their sums, kept alive; the cache's
    # estimate (without the pass allowance, which is filled later) must be within a factor of 1.6 either way
    spec = load_model(model)
    ctxs = [make_ctx(spec, Workload(batch=b, **kw), phase) for b in range(1, 41)]
    spec.ledger(ctxs[0])
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        rows = [tuple(spec.ledger(c)) for c in ctxs]
        t1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    measured = (t1 - t0) / len(rows)
    n = len(rows[0])
    estimated = ledger_mod.ENTRY_BYTES + ledger_mod.LAYER_ROW_BYTES * n
    assert measured / 1.6 < estimated < measured * 1.6, (measured, estimated, n)


def test_row_sums_bytes_agree_with_tracemalloc():
    spec = load_model("resnet-50")
    ctxs = [make_ctx(spec, Workload(batch=b, image_size=192), "train") for b in range(1, 41)]
    p = Workload().prec
    rows = [ledger(spec, c) for c in ctxs]  # built (and kept) before measuring: only the sums are counted
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        sums = [ledger_mod._row_sums(spec, c, p, "full", frozenset(), 0, False) for c in ctxs]
        t1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    measured = (t1 - t0) / len(sums)
    estimated = ledger_mod._sums_bytes(sums[0])
    assert len(rows) == len(sums)
    assert measured / 1.6 < estimated < measured * 1.6, (measured, estimated)


def test_pass_memo_lives_on_the_ledger_and_is_bounded():
    from costmodel.perf import PASSES_PER_LEDGER

    spec = load_model("llama-3-8b")
    w = Workload(batch=3, seq=256)
    rows = ledger(spec, make_ctx(spec, w, "train"))
    for hw in ("h100-sxm-80gb", "a100-sxm-80gb", "l4-24gb", "a10g-24gb", "h200-sxm-141gb", "b200-sxm-192gb",
               "mi300x-192gb", "v100-sxm-32gb", "t4-16gb", "rtx-4090-24gb"):
        estimate(spec, w, hw, with_layers=False)
        assert 1 <= len(rows.passes) <= PASSES_PER_LEDGER


def test_hourly_cost_cached_equals_cost_breakdown():
    for hw, pricing in (("h100-sxm-80gb", None), ("a100-sxm-80gb", {"tier": "spot"}),
                        ("l4-24gb", {"region": "france", "pue": 1.3}), ("h100-sxm-80gb", {"provider": "aws"})):
        assert costs.hourly_cost(hw, pricing) == costs.hourly_cost(hw, pricing) == \
            costs.cost_breakdown(1.0, hw, **(pricing or {}))


def test_an_edited_price_file_is_read_again(tmp_path, monkeypatch):
    # prices, medians and hourly costs are cached per catalog state: an edit is seen once the files are looked
    # at again (every CATALOG_CHECK_S seconds; 0 here), without a restart
    monkeypatch.setattr(catalog, "CATALOG_CHECK_S", 0.0)
    f = tmp_path / "mine.json"

    def write(usd):
        f.write_text(json.dumps({"provider": "mine", "records": [
            {"hardware": "cpu-laptop", "tier": "on-demand", "usd_per_gpu_hour": usd, "source": "s", "date": "2025-01"}]}))

    write(1.25)
    monkeypatch.setenv(prices.ENV_PRICES, str(tmp_path))
    assert prices.price_per_gpu_hour("cpu-laptop", "mine").usd_per_gpu_hour == 1.25
    assert costs.hourly_cost("cpu-laptop", {"provider": "mine"}).compute_usd == 1.25
    write(2.5)
    assert prices.price_per_gpu_hour("cpu-laptop", "mine").usd_per_gpu_hour == 2.5
    assert costs.hourly_cost("cpu-laptop", {"provider": "mine"}).compute_usd == 2.5
    state = catalog.catalog_state()
    assert catalog.catalog_state() == state  # nothing changed: the same state, the same cache entries


def test_catalog_state_follows_the_environment_at_once(tmp_path, monkeypatch):
    before = catalog.catalog_state()
    monkeypatch.setenv(prices.ENV_GRID, str(tmp_path))
    assert catalog.catalog_state() != before
    monkeypatch.delenv(prices.ENV_GRID)
    assert catalog.catalog_state()[0] == before[0]


def test_evolve_is_dataclasses_replace():
    # the ResNet ledger's fast copy of a Layer row: the same record dataclasses.replace makes, the same refusal
    from dataclasses import replace

    from costmodel.layers import _evolve

    spec = load_model("resnet-50")
    rows = ledger(spec, make_ctx(spec, Workload(batch=2, image_size=96), "train"))
    for row in rows[:40]:
        ch = dict(activation_bytes=row.activation_bytes + 1.0, working_bytes=3.0, shares_input=True)
        assert _evolve(row, **ch) == replace(row, **ch) and _evolve(row) == row
    with pytest.raises(TypeError):
        _evolve(rows[0], not_a_field=1)
