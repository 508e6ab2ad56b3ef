"""Property tests: more than 10,000 random and extreme workloads at the estimator, the scenario
validator and the CLI (``main([...])`` in-process). No unhandled exception (``InputError`` is fine and
must name a field), every number finite and non-negative, and the invariants hold.

Where the invariants come from (read off ``costmodel/estimator.py`` and docs/formulas.md):

- inference: ``peak == weights + kv_cache + transient`` ("Memory: inference", peak row);
- training: the peak is the larger of the backward walk and the optimizer step ("The peak"), so
  ``peak >= weights + optimizer + activations + logits_loss`` (everything alive at the start of backward)
  and ``peak >= weights + optimizer + gradients``; at the optimizer step
  ``peak == weights + optimizer + gradients + transient`` (transient = the step temporary); elsewhere
  ``transient = max(peak - weights - optimizer - activations - gradients, 0)``;
- ``device_total == peak + runtime_overhead``, ``headroom == capacity - device_total``,
  ``fits == (device_total <= capacity)`` (results.MemoryBreakdown);
- ``params.total == sum(layer.params * layer.count) + params.adapter`` (the per-layer ledger plus LoRA);
- ``flops.total == forward + backward + recompute`` (train) and ``forward_macs == forward / 2``;
- per-device memory grows (non-strictly) with batch; under ``costmodel.parallel`` it never grows when
  the GPU count (dp, tp, pp) or the ZeRO stage grows (ZeRO paper, Rajbhandari et al. 2020, Fig. 1).

Counts (``max_examples``; derandomized, so CI runs the same cases every time). Workloads at the estimator:
2,000 random x 3 presets + 600 extreme x 3 presets + 800 batch pairs (1,600) + 400 scenarios from untrusted
JSON; at the CLI: 250 ``estimate`` + 60 ``scenarios save``. 10,110 in all; plus parallel 2 x 200 and
safe_json 400.
"""

from __future__ import annotations

import functools
import json
import math
import re

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import costmodel
from costmodel.catalog import load_hardware
from costmodel.errors import InputError
from costmodel.estimator import estimate
from costmodel.models import list_presets, load_model
from costmodel.safe_json import parse_config_text
from costmodel.scenario import validate_scenario
from costmodel.workload import ATTENTION_IMPLS, OPTIMIZERS, PRECISIONS, SPARSITY_PATTERNS, TASKS, Workload
from support import cli

PRESETS = sorted(p.id for p in list_presets())
HARDWARE = ["h100-sxm-80gb", "a100-sxm-40gb", "t4-16gb", "cpu-generic", "tpu-v5e", "mi300x-192gb"]
KV_PRECISIONS = [None, "fp32", "bf16", "fp16", "fp8", "int8", "int4"]
LORA_TARGETS = [("q_proj", "v_proj"), ("all-linear",), ("c_attn",), ("query", "value"), ("q", "v"), ("nope",)]
WORKLOAD_FIELDS = {f for f in Workload.__dataclass_fields__}
# first part of an InputError field: a workload field, or one of the other inputs
KNOWN_FIELDS = WORKLOAD_FIELDS | {"model", "hardware", "arguments", "workload", "scenario", "name", "notes", "plan",
                                  "assumptions", "schema", "config", "layout", "grad_accum", "efficiency"}

FAST = dict(deadline=None, derandomize=True, database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])


@functools.lru_cache(maxsize=None)
def spec_of(preset: str):
    return load_model(preset)  # loaded once per preset


def sized(lo: int, hi: int):
    """Mostly everyday sizes, sometimes anywhere in range, sometimes the exact limits."""
    edges = sorted({lo, lo + 1, hi - 1, hi, *(1 << k for k in range(0, 25) if lo <= 1 << k <= hi)})
    return st.one_of(st.integers(lo, min(hi, 4096)), st.integers(lo, hi), st.sampled_from(edges))


def workload_fields(extreme: bool = False):
    big = (lambda lo, hi: st.sampled_from(sorted({lo, lo + 1, hi - 1, hi}))) if extreme else sized
    return st.fixed_dictionaries({
        "task": st.sampled_from(TASKS),
        "batch": big(1, 1 << 24),
        "seq": big(1, 1 << 24),
        "image_size": big(8, 16384),
        "prompt": big(1, 1 << 24),
        "generate": big(0, 1 << 24),
        "precision": st.sampled_from(sorted(PRECISIONS)),
        "optimizer": st.sampled_from(sorted(OPTIMIZERS)),
        "grad_checkpointing": st.booleans(),
        "lora_rank": st.one_of(st.just(0), big(1, 65536)),
        "lora_targets": st.sampled_from(LORA_TARGETS),
        "bitfit": st.booleans(),
        "sparsity": st.one_of(st.just(0.0), st.just(0.5), st.just(0.99), st.floats(0.0, 0.99)),
        "sparsity_pattern": st.sampled_from([*SPARSITY_PATTERNS, "unstructured"]),
        "attention": st.sampled_from(ATTENTION_IMPLS),
        "dropout": st.sampled_from([None, True, False]),
        "kv_cache_precision": st.sampled_from(KV_PRECISIONS),
    })


def _field_ok(err: InputError) -> bool:
    head = re.split(r"[.\[]", err.field)[0]
    return bool(err.message) and head in KNOWN_FIELDS


def leaves(d, path=""):
    if isinstance(d, dict):
        for k, v in d.items():
            yield from leaves(v, f"{path}.{k}" if path else str(k))
    elif isinstance(d, (list, tuple)):
        for i, v in enumerate(d):
            yield from leaves(v, f"{path}[{i}]")
    else:
        yield path, d


def check_numbers(d: dict) -> None:
    """Every number finite; every number non-negative except the signed headroom."""
    for path, v in leaves(d):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        assert math.isfinite(v), f"{path} = {v}"
        if path != "memory_bytes.headroom":
            assert v >= 0, f"{path} = {v}"


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-3)


def check_estimate(est, w: Workload) -> None:
    check_numbers(est.to_dict(with_layers=True))
    m, p, f = est.memory_bytes, est.params, est.flops
    assert close(m.device_total, m.peak + m.runtime_overhead)
    assert close(m.headroom, m.capacity - m.device_total)
    assert m.fits == (m.device_total <= m.capacity)
    if w.task == "infer":
        assert close(m.peak, m.weights + m.kv_cache + m.transient)
        assert m.gradients == m.optimizer == m.activations == 0 and p.trainable == 0
        assert f.backward == 0 and close(f.total, f.forward)
    else:
        assert m.peak >= (m.weights + m.optimizer + m.activations + m.logits_loss) * (1 - 1e-12)
        assert m.peak >= (m.weights + m.optimizer + m.gradients) * (1 - 1e-12)
        parts = m.weights + m.optimizer + m.activations + m.gradients + m.transient
        if m.peak_phase == "optimizer step":
            assert close(m.peak, m.weights + m.optimizer + m.gradients + m.transient)
        else:
            assert m.peak <= parts * (1 + 1e-12)
            if m.transient > 0:
                assert close(m.peak, parts)
        assert close(f.total, f.forward + f.backward + f.recompute)
    assert sum(r.params * r.count for r in est.layers) + p.adapter == p.total
    assert p.trainable <= p.total and p.active <= p.total and p.nonzero <= p.total
    assert p.frozen + p.trainable == p.total and p.adapter <= p.trainable + p.frozen
    assert close(2 * f.forward_macs, f.forward) and f.forward_effective <= f.forward * (1 + 1e-12)


def run_estimate(preset: str, hw: str, fields: dict):
    """(workload, estimate) or None when the input is rejected with a proper InputError."""
    try:
        w = Workload(**fields)
        return w, estimate(spec_of(preset), w, load_hardware(hw))
    except InputError as err:
        assert _field_ok(err), str(err)
        return None


# ---- the estimator --------------------------------------------------------------------------------
# Each example runs its workload on PER_EXAMPLE presets spread over the families (generating an example
# costs more than estimating it), so "examples x PER_EXAMPLE" workloads reach the estimator.

PER_EXAMPLE = 3


def presets_from(i: int) -> list[str]:
    stride = len(PRESETS) // PER_EXAMPLE
    return [PRESETS[(i + k * stride) % len(PRESETS)] for k in range(PER_EXAMPLE)]


@settings(max_examples=2000, **FAST)
@given(i=st.integers(0, len(PRESETS) - 1), hw=st.sampled_from(HARDWARE), fields=workload_fields())
def test_estimator_random_workloads(i, hw, fields):
    for preset in presets_from(i):
        got = run_estimate(preset, hw, fields)
        if got:
            check_estimate(got[1], got[0])


@settings(max_examples=600, **FAST)
@given(i=st.integers(0, len(PRESETS) - 1), hw=st.sampled_from(HARDWARE), fields=workload_fields(extreme=True))
def test_estimator_extreme_workloads(i, hw, fields):
    for preset in presets_from(i):
        got = run_estimate(preset, hw, fields)
        if got:
            check_estimate(got[1], got[0])


@settings(max_examples=800, **FAST)
@given(preset=st.sampled_from(PRESETS), hw=st.sampled_from(HARDWARE), fields=workload_fields(),
       b1=sized(1, 1 << 20), extra=sized(1, 1 << 20))
def test_memory_grows_with_batch(preset, hw, fields, b1, extra):
    small = run_estimate(preset, hw, {**fields, "batch": b1})
    large = run_estimate(preset, hw, {**fields, "batch": b1 + extra})
    if not (small and large):
        return  # rejected cleanly (checked in run_estimate)
    a, b = small[1].memory_bytes, large[1].memory_bytes
    for key in ("peak", "device_total", "activations", "kv_cache", "logits_loss"):
        assert getattr(a, key) <= getattr(b, key) * (1 + 1e-12), (key, getattr(a, key), getattr(b, key))
    assert small[1].flops.total <= large[1].flops.total * (1 + 1e-12)


# ---- the CLI, in-process --------------------------------------------------------------------------

JUNK = st.one_of(st.sampled_from(["0", "-1", "", " ", "1.5", "1e3", "nan", "inf", "99999999999999999999", "abc",
                                  "16777217", "0x10", "--json", "－1", "٣"]),
                 st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=8))


def _arg(valid):
    return st.one_of(valid, valid, valid, JUNK)


_cli = cli


def _check_error_line(rc: int, out: str, err: str) -> None:
    assert rc == 2 and out == ""
    m = re.fullmatch(r"error: ([^\s:]+): (.+)\n", err, re.S)
    assert m, err
    assert re.split(r"[.\[]", m.group(1))[0] in KNOWN_FIELDS, err


@settings(max_examples=250, **FAST)
@given(preset=st.sampled_from(PRESETS), hw=st.sampled_from(HARDWARE), data=st.data())
def test_cli_estimate(preset, hw, data):
    ints = lambda lo, hi: _arg(sized(lo, hi).map(str))  # noqa: E731
    opts = {
        "--task": _arg(st.sampled_from(TASKS)), "--batch": ints(1, 1 << 24), "--seq": ints(1, 1 << 24),
        "--prompt": ints(1, 1 << 24), "--generate": ints(0, 1 << 24), "--image-size": ints(8, 16384),
        "--precision": _arg(st.sampled_from(sorted(PRECISIONS))), "--optimizer": _arg(st.sampled_from(sorted(OPTIMIZERS))),
        "--lora-rank": _arg(st.sampled_from(["0", "0", "8", "65536"])),
        "--lora-targets": _arg(st.sampled_from([",".join(t) for t in LORA_TARGETS])),
        "--sparsity": _arg(st.sampled_from(["0", "0.5", "0.99", "1", "-0.1"])),
        "--sparsity-pattern": _arg(st.sampled_from(["unstructured", "2:4", "4:8"])),
        "--attention": _arg(st.sampled_from(ATTENTION_IMPLS)),
        "--kv-cache-precision": _arg(st.sampled_from([k for k in KV_PRECISIONS if k])),
    }
    argv = ["estimate", "--model", preset, "--hardware", hw, "--json"]
    for opt, strat in opts.items():
        if data.draw(st.booleans(), label=f"use {opt}"):
            argv += [opt, data.draw(strat, label=opt)]
    for flag in ("--grad-checkpointing", "--bitfit", "--no-dropout"):
        if data.draw(st.integers(0, 3), label=flag) == 0:
            argv.append(flag)
    rc, out, err = _cli(argv)
    if rc != 0:
        _check_error_line(rc, out, err)
        return
    d = json.loads(out)
    check_numbers(d)
    # the reference: the Python API with the same inputs gives the same JSON
    api = costmodel.estimate(preset, hardware=hw, workload=Workload.from_dict(d["workload"]))
    assert d == json.loads(json.dumps(api.to_dict()))


@pytest.fixture(scope="module")
def scen_db(tmp_path_factory):
    return str(tmp_path_factory.mktemp("props") / "scenarios.db")


@settings(max_examples=60, **FAST)
@given(name=st.one_of(st.text(max_size=130), st.sampled_from(["<script>alert(1)</script>", "a" * 121, " ", "x"])),
       preset=st.sampled_from(PRESETS), batch=_arg(sized(1, 1 << 24).map(str)), plan=st.sampled_from(
           [None, '{"num_gpus": 8}', '{"num_gpus": 0}', "[1]", "{", '{"tokens": NaN}', '{"a": 1, "a": 2}']))
def test_cli_scenarios_save_show(scen_db, name, preset, batch, plan):
    argv = ["scenarios", "save", "--db", scen_db, "--overwrite", "--name", name, "--model", preset, "--batch", batch]
    if plan is not None:
        argv += ["--plan", plan]
    rc, out, err = _cli(argv)
    if rc != 0:
        _check_error_line(rc, out, err)
        return
    rc, out, err = _cli(["scenarios", "show", "--db", scen_db, "--json", name.strip()])
    assert rc == 0, err
    d = json.loads(out)
    check_numbers(d["results"])
    assert d["scenario"]["name"] == name.strip() and d["scenario"]["model"] == preset


# ---- scenarios from untrusted JSON ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=6)


@settings(max_examples=400, **FAST)
@given(preset=st.one_of(st.sampled_from(PRESETS), json_values), hw=st.one_of(st.sampled_from(HARDWARE), json_values),
       workload=st.dictionaries(st.sampled_from(sorted(WORKLOAD_FIELDS) + ["colour"]),
                                st.one_of(json_values, st.sampled_from(["train", "infer", "bf16", "adamw", 8, 512])),
                                max_size=5),
       plan=st.one_of(st.none(), json_values), notes=st.one_of(st.none(), st.text(max_size=50), json_values))
def test_scenario_validation_never_crashes(preset, hw, workload, plan, notes):
    raw = {"name": "p", "model": preset, "hardware": hw, "workload": workload, "plan": plan, "notes": notes}
    try:
        s = validate_scenario(raw)
    except InputError as err:
        assert _field_ok(err), str(err)
        return
    assert validate_scenario(s) == s  # normal form is a fixed point
    assert json.loads(json.dumps(s, allow_nan=False)) == s  # plain JSON data
    check_numbers(costmodel.estimate(s["model"], hardware=s["hardware"], **s["workload"]).to_dict())


# ---- safe_json ------------------------------------------------------------------------------------

TRICKY = ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '{"a": 1e999}', '{"a": 1, "a": 2}', "[1, 2]", '"x"',
          "null", "", "   ", "{", '{"a": "\\ud800"}', "[" * 5000 + "]" * 5000, '{"a":' * 200 + "1" + "}" * 200,
          "\ufeff{}", '{"a": ' + "9" * 5000 + "}", '{"model_type": "gpt2", "auto_map": {"AutoModel": "evil.Model"}}']


@settings(max_examples=400, **FAST)
@given(text=st.one_of(st.binary(max_size=300), st.text(max_size=300), st.sampled_from(TRICKY),
                      json_values.map(json.dumps)))
def test_safe_json_never_crashes(text):
    try:
        d = parse_config_text(text, max_bytes=100_000)
    except InputError as err:
        # "config", or "config.<key path>" when the problem is one number (NaN, 1e999, a huge integer)
        assert (err.field == "config" or err.field.startswith("config.")) and err.message
        return
    assert isinstance(d, dict)
    json.dumps(d, allow_nan=False)  # only finite numbers got through


# ---- per-device memory under parallelism ------------------------------------------------------------

def _parallel_case(data):
    from costmodel.parallel import Layout, train_step

    preset = data.draw(st.sampled_from(PARALLEL_PRESETS), label="preset")
    spec = spec_of(preset)
    mb = data.draw(st.integers(1, 8), label="micro_batch")
    w = Workload(batch=mb, seq=data.draw(st.sampled_from([128, 512, 2048]), label="seq"),
                 precision=data.draw(st.sampled_from(["fp32", "amp-bf16", "bf16"]), label="precision"),
                 optimizer=data.draw(st.sampled_from(sorted(OPTIMIZERS)), label="optimizer"),
                 grad_checkpointing=data.draw(st.booleans(), label="ckpt"))
    try:
        est = estimate(spec, w, load_hardware("h100-sxm-80gb"))
    except InputError as err:  # e.g. checkpointing not modelled for a family
        assert _field_ok(err), str(err)
        assume(False)
    ga = data.draw(st.integers(1, 16), label="grad_accum")
    heads, kv, layers = spec.heads, getattr(spec, "n_kv_heads", spec.heads), spec.layers
    tps = [t for t in (1, 2, 4, 8) if heads % t == 0 and (kv % t == 0 or t % kv == 0)]
    base = dict(dp=data.draw(st.sampled_from([1, 2, 4, 8, 64]), label="dp"), tp=data.draw(st.sampled_from(tps), label="tp"),
                pp=data.draw(st.sampled_from([p for p in (1, 2, 4) if p <= layers]), label="pp"),
                zero=data.draw(st.integers(0, 3), label="zero"), micro_batch=mb)

    def mem(**change):
        return train_step(spec, est, load_hardware("h100-sxm-80gb"), Layout(**{**base, **change}), ga).memory_bytes.to_dict()

    return base, mem, spec


def _transformers():
    out = []
    for p in PRESETS:
        s = spec_of(p)
        if isinstance(getattr(s, "layers", None), int) and getattr(s, "heads", 0):
            out.append(p)
    return out


PARALLEL_PRESETS = _transformers()


@settings(max_examples=200, **FAST)
@given(data=st.data())
def test_parallel_memory_never_grows_with_gpu_count(data):
    base, mem, spec = _parallel_case(data)
    before = mem()
    growth = [{"dp": base["dp"] * 2}]
    if base["pp"] * 2 <= spec.layers:
        growth.append({"pp": base["pp"] * 2})
    t2 = base["tp"] * 2
    kv = getattr(spec, "n_kv_heads", spec.heads)
    if spec.heads % t2 == 0 and (kv % t2 == 0 or t2 % kv == 0):
        growth.append({"tp": t2})
    for change in growth:
        after = mem(**change)
        for key in ("peak", "device_total", "weights", "gradients", "optimizer"):
            assert after[key] <= before[key] * (1 + 1e-12), (change, key, before[key], after[key])


@settings(max_examples=200, **FAST)
@given(data=st.data())
def test_parallel_memory_never_grows_with_zero_stage(data):
    base, mem, _ = _parallel_case(data)
    before = mem()
    for z in range(base["zero"] + 1, 4):
        after = mem(zero=z)
        for key in ("peak", "device_total", "weights", "gradients", "optimizer"):
            assert after[key] <= before[key] * (1 + 1e-12), (z, key, before[key], after[key])


# ---- reproductions of bugs the tests above found (fixed; kept as regression tests) ----

def test_zero3_with_one_gpu_adds_memory():
    from costmodel.parallel import Layout, train_step

    spec, hw = spec_of("gpt2"), load_hardware("h100-sxm-80gb")
    est = estimate(spec, Workload(batch=1, seq=512), hw)
    z2 = train_step(spec, est, hw, Layout(dp=1, zero=2), 1).memory_bytes.peak
    z3 = train_step(spec, est, hw, Layout(dp=1, zero=3), 1).memory_bytes.peak
    assert z3 <= z2  # with one device ZeRO-3 shards nothing, so it must not add a gather buffer


@pytest.mark.parametrize("preset", ["mlp-mnist", "simple-cnn-28"])
def test_parallel_non_transformer_families(preset):
    from costmodel.parallel import Layout, train_step

    spec, hw = spec_of(preset), load_hardware("h100-sxm-80gb")
    est = estimate(spec, Workload(batch=8, seq=16, image_size=28), hw)
    # data parallelism needs no heads or layer stack: 2 replicas hold the full model each and all-reduce the
    # gradients (2 (n-1)/n = 1 x the gradient bytes per device over NVLink)
    step = train_step(spec, est, hw, Layout(dp=2), 1, dp_overlap=0.0)
    assert step.memory_bytes.weights == est.memory_bytes.weights
    assert step.comm_s.seconds("dp_grad_allreduce") == pytest.approx(
        est.memory_bytes.gradients / hw.intra_node_bandwidth_bytes_per_s + 2 * 5e-6)
    # tensor parallelism is refused with the field named (no attention heads to split)
    with pytest.raises(InputError) as err:
        train_step(spec, est, hw, Layout(tp=2), 1)
    assert err.value.field == "layout.tp"


@pytest.mark.parametrize("fields", [{"dropout": []}, {"precision": {}}, {"lora_targets": None}, {"bitfit": "yes"}])
def test_workload_rejects_wrong_types(fields):
    # found by test_scenario_validation_never_crashes: these escaped as TypeError before workload.py checked types
    with pytest.raises(InputError) as e:
        estimate(spec_of("gpt2"), Workload(**fields), load_hardware("h100-sxm-80gb"))
    assert e.value.field == next(iter(fields))


@settings(max_examples=300, **FAST)
@given(fields=st.dictionaries(st.sampled_from(sorted(WORKLOAD_FIELDS)), json_values, max_size=4))
def test_workload_junk_values(fields):
    """Any JSON value in any workload field, straight at the Python API: a result or an InputError."""
    try:
        w = Workload(**fields)
        est = estimate(spec_of("gpt2"), w, load_hardware("h100-sxm-80gb"))
    except InputError as err:
        assert _field_ok(err), str(err)
        return
    check_estimate(est, w)


def test_mfu_at_most_one_and_hfu_at_least_mfu_everywhere():
    # MFU divides by the peak the FLOPs run at (docs/formulas.md, "Time"); every row runs at no more than
    # its peak x efficiency, so MFU <= 1 for every preset x device x precision (ResNet-50 fp32 on an A100
    # once showed 123%: TF32 convolutions against the fp32 peak). HFU adds recomputation: never below MFU.
    from costmodel.catalog import list_hardware
    from costmodel.models import list_presets
    from costmodel.workload import PRECISIONS

    checked = 0
    for p in list_presets():
        spec = spec_of(p.id)
        for hw in list_hardware():
            for prec in PRECISIONS:
                for task, ckpt in (("train", False), ("train", True), ("infer", False)):
                    kw = dict(task=task, batch=2, seq=64, prompt=64, generate=8, image_size=64, precision=prec,
                              grad_checkpointing=ckpt and spec.modality == "text" and spec.family != "rnn",
                              lora_rank=8 if (task == "train" and PRECISIONS[prec].weight_only_quant) else 0,
                              lora_targets="all-linear")
                    try:
                        est = estimate(spec, Workload(**kw), hw)
                    except InputError:
                        continue
                    assert 0.0 < est.perf.mfu <= 1.0, (p.id, hw.id, prec, task, est.perf.mfu)
                    assert est.perf.hfu >= est.perf.mfu * (1 - 1e-12), (p.id, hw.id, prec, task)
                    checked += 1
    assert checked > 5000
