"""The layout search at any scale (issue 17): default device counts, pruning before evaluation, 2^20 devices.

References are independent of the search's own loops: the 5-smooth numbers by trial division, and every layout
of a small cluster priced one by one through ``plan_training`` (which refuses what the search skips)."""

from __future__ import annotations

import itertools

import pytest

from costmodel.errors import InputError
from costmodel.models import load_model
from costmodel.parallel import Layout
from costmodel.plans import MAX_GRAD_ACCUM, candidate_layouts, default_device_counts, plan_training, search_layouts


def _smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


def test_default_counts_are_the_5_smooth_numbers_and_the_maximum():
    assert default_device_counts(1000) == [n for n in range(1, 1001) if _smooth(n)]
    assert default_device_counts(100)[:12] == [1, 2, 3, 4, 5, 6, 8, 9, 10, 12, 15, 16]
    assert default_device_counts(1001)[-1] == 1001 and 1000 in default_device_counts(1001)  # the maximum itself
    assert default_device_counts(64, 16) == [16, 18, 20, 24, 25, 27, 30, 32, 36, 40, 45, 48, 50, 54, 60, 64]
    assert 100_000 in default_device_counts(1 << 20)  # 2^5 x 5^5
    for bad in (0, (1 << 20) + 1, 2.5, True, "8"):
        with pytest.raises(InputError, match="max_devices"):
            default_device_counts(bad)


def test_511_smooth_counts_up_to_2_20():
    # 2^a 3^b 5^c <= 2^20, counted exponent by exponent (independent of the generator's loops)
    count = sum(1 for a in range(21) for b in range(13) for c in range(9) if 2 ** a * 3 ** b * 5 ** c <= 1 << 20)
    assert count == 511 == len(default_device_counts(1 << 20))


def test_search_equals_brute_force_over_every_layout_of_a_small_cluster():
    # every (dp, tp, pp, ep=1, zero, micro-batch, checkpointing) on up to 12 L4s, each priced alone by plan_training
    # (which refuses a global batch the layout cannot split and layouts the model cannot take); the search with its
    # pruning must return exactly the layouts that fit, with the same wall-clock times, in time order
    kw = dict(tokens=1e9, workload={"seq": 1024}, global_batch=24)
    mbs, zs, cks = (1, 2), (0, 1, 2, 3), (False, "selective", True)  # the search's default checkpointing settings
    found = search_layouts("llama-2-7b", "l4-24gb", max_devices=12, micro_batches=mbs, zero_stages=zs,
                           checkpointing=cks, **kw)
    brute = {}
    unfit = 0
    for dp, tp, pp in itertools.product(range(1, 13), repeat=3):
        # the search's rules beyond check_layout: tp at most 8 (one NVLink domain), pipeline stages of equal whole
        # blocks (pp divides llama-2-7b's 32 layers), device counts 2^a 3^b 5^c (7 and 11 are not tried)
        if dp * tp * pp > 12 or tp > 8 or 32 % pp or not _smooth(dp * tp * pp):
            continue
        for z, mb, ck in itertools.product(zs, mbs, cks):
            if z and dp == 1:  # the search's convention: ZeRO shards over data-parallel ranks, so needs dp > 1
                continue
            lay = Layout(dp=dp, tp=tp, pp=pp, zero=z, micro_batch=mb, grad_checkpointing=ck)
            try:
                plan = plan_training("llama-2-7b", "l4-24gb", layout=lay, **kw)
            except InputError:
                continue
            if plan.step.fits:
                brute[lay] = plan.wall_clock_s
            else:
                unfit += 1
    assert unfit > 0 and len(brute) > 10  # memory pruning had something to prune, and something was left
    assert {r.layout: r.wall_clock_s for r in found} == brute
    assert any(r.num_devices in (3, 6, 12) and r.layout.dp % 3 == 0 for r in found)  # not only powers of two
    assert found[0].wall_clock_s == min(brute.values())


def test_pruned_candidates_are_the_ones_that_split_the_global_batch():
    spec = load_model("llama-2-70b")
    every = candidate_layouts(spec, 256)
    kept = candidate_layouts(spec, 256, global_batch=96)
    assert kept == [lay for lay in every if 96 % (lay.micro_batch * lay.dp) == 0]


def test_a_million_devices_and_100000_are_searchable():
    # the default global batch (8 x 2^20) would need 2^23 accumulation steps on one device: such layouts are
    # skipped, not an error
    res = search_layouts("llama-2-7b", "h100-sxm-80gb", tokens=1e12, max_devices=1 << 20,
                         device_counts=[1, 2, 1 << 20], include_unfit=True)
    assert res and all(1 <= r.grad_accum <= MAX_GRAD_ACCUM for r in res)
    assert {r.num_devices for r in res} == {1, 2, 1 << 20}
    res = search_layouts("llama-2-70b", "h100-sxm-80gb", tokens=2e12, workload={"seq": 4096}, min_devices=100_000,
                         max_devices=100_000, limit=5)
    assert res and all(r.num_devices == 100_000 and r.global_batch == 800_000 for r in res)


def test_max_devices_beyond_a_layout_is_refused():
    with pytest.raises(InputError, match="max_devices"):
        search_layouts("llama-2-7b", "h100-sxm-80gb", tokens=1e9, max_devices=(1 << 20) + 1)
