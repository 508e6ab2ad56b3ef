"""Validate benchmarks/published_runs.json, the truth base for training-throughput predictions.

Checks the schema, source citations, plausible ranges, layout arithmetic, that every model
config imports into costmodel (and matches the published parameter count within 3%), and
re-derives each run's tokens/s/GPU from its published numbers with formulas written here
independently of benchmarks/published_runs_derive.py.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
from collections import Counter
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "benchmarks" / "published_runs.json"
CATALOG = {p.stem for p in (ROOT / "costmodel" / "assets" / "hardware").glob("*.json")}

RUN_FIELDS = ("id", "source_key", "source", "task", "model", "hardware", "layout", "global_batch", "seq", "precision",
              "framework", "attention_kernel", "other_settings", "published", "derived", "notes")
MODEL_FIELDS = ("name", "config", "preset", "params_published", "arch_notes")
HW_FIELDS = ("id", "num_gpus", "gpus_per_node", "interconnect", "hardware_notes")
LAYOUT_FIELDS = ("dp", "tp", "pp", "cp", "ep", "vp", "sharding", "micro_batch", "grad_checkpointing")
SHARDING = {None, "none", "zero1", "zero2", "zero3", "fsdp_full_shard", "fsdp_hybrid"}
PRECISION = {"bf16", "fp16", "16bit-mixed", "fp8", "fp8-rowwise", "mxfp8", "nvfp4"}
PUBLISHED_NUMBERS = ("tokens_per_s_per_gpu", "tokens_per_s", "step_time_s", "model_tflops_per_gpu",
                     "hardware_tflops_per_gpu", "mfu", "hfu", "samples_per_s", "aggregate_pflops")


@lru_cache(maxsize=1)
def data() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def runs() -> list[dict]:
    return data()["runs"]


def _model_key(run: dict) -> str:
    m = run["model"]
    return m["preset"] if m["preset"] else json.dumps(m["config"], sort_keys=True)


@lru_cache(maxsize=None)
def costmodel_params(key: str) -> int:
    import costmodel

    model = key if not key.startswith("{") else json.loads(key)
    return costmodel.estimate(model, task="train", batch=1, seq=128).params.total


# --- schema, ids, sources ------------------------------------------------------------------


def test_schema_and_counts():
    d = data()
    assert isinstance(d["schema"], dict) and d["schema"]
    for key in ("id", "source_key", "layout.dp", "published", "derived.tokens_per_s_per_gpu"):
        assert d["schema"].get(key), f"schema lacks a meaning for {key}"
    ids = [r["id"] for r in runs()]
    dup = [i for i, c in Counter(ids).items() if c > 1]
    assert not dup, f"duplicate ids: {dup}"
    assert len(ids) >= 110
    assert len({r["source_key"] for r in runs()}) >= 6


@pytest.mark.parametrize("run", runs(), ids=lambda r: r["id"])
def test_record_shape(run):
    for f in RUN_FIELDS:
        assert f in run, f"missing {f}"
    for f in MODEL_FIELDS:
        assert f in run["model"], f"missing model.{f}"
    for f in HW_FIELDS:
        assert f in run["hardware"], f"missing hardware.{f}"
    for f in LAYOUT_FIELDS:
        assert f in run["layout"], f"missing layout.{f}"
    for f in ("title", "url", "table", "date"):
        assert isinstance(run["source"].get(f), str) and run["source"][f].strip(), f"source.{f} empty"
    assert run["source"]["url"].startswith("https://")
    assert run["task"] in ("pretrain", "sft")
    assert (run["model"]["config"] is None) != (run["model"]["preset"] is None), "exactly one of config / preset"
    assert run["precision"] in PRECISION
    assert run["layout"]["sharding"] in SHARDING
    assert run["layout"]["grad_checkpointing"] in (None, "none", "full", "selective") or \
        run["layout"]["grad_checkpointing"].startswith("partial:")
    hw = run["hardware"]
    assert hw["id"] in CATALOG or (hw["hardware_notes"] or "").strip(), \
        f"{hw['id']} is not in the catalog and has no hardware_notes"
    assert isinstance(run["published"].get("metric_definition"), str) and run["published"]["metric_definition"]
    assert run["derived"]["method"] and run["derived"]["derivation"]


@pytest.mark.parametrize("run", runs(), ids=lambda r: r["id"])
def test_numbers_plausible(run):
    pub = run["published"]
    assert any(k in pub for k in ("tokens_per_s_per_gpu", "tokens_per_s", "samples_per_s", "step_time_s", "model_tflops_per_gpu",
                                  "hardware_tflops_per_gpu", "aggregate_pflops", "mfu"))
    for k in PUBLISHED_NUMBERS:
        if k in pub:
            v = pub[k]
            assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v), (k, v)
            if k in ("mfu", "hfu"):
                assert 0 < v <= 1, (k, v)
            else:
                assert v >= 0, (k, v)
    for k in ("tokens_per_s_per_gpu", "tokens_per_s", "model_tflops_per_gpu", "hardware_tflops_per_gpu"):
        if k in pub:
            assert pub[k] > 0, k
    tok = run["derived"]["tokens_per_s_per_gpu"]
    assert isinstance(tok, (int, float)) and math.isfinite(tok) and 1 <= tok <= 1e6
    assert 128 <= run["seq"] <= 1 << 20
    assert run["global_batch"] >= 1
    if run["published"].get("model_tflops_per_gpu"):
        assert run["published"]["model_tflops_per_gpu"] < 5000  # no accelerator here exceeds 5 PFLOP/s dense


@pytest.mark.parametrize("run", runs(), ids=lambda r: r["id"])
def test_layout_arithmetic(run):
    lay, n = run["layout"], run["hardware"]["num_gpus"]
    assert isinstance(n, int) and n >= 2, "multi-GPU runs only"
    for k in ("dp", "tp", "pp", "cp", "ep"):
        assert isinstance(lay[k], int) and lay[k] >= 1, k
    assert lay["dp"] * lay["tp"] * lay["pp"] * lay["cp"] == n, "num_gpus != dp*tp*pp*cp"
    assert lay["dp"] % lay["ep"] == 0 or lay["ep"] == 1
    if lay["micro_batch"] is not None and lay["pp"] == 1:
        # every data-parallel rank processes whole micro-batches (llm-foundry may cut the last one short)
        assert lay["micro_batch"] * lay["dp"] <= run["global_batch"] * max(1, lay["cp"])


# --- costmodel import and parameter counts -------------------------------------------------


@pytest.mark.parametrize("key", sorted({_model_key(r) for r in runs()}))
def test_model_imports(key):
    from costmodel.models import load_model

    load_model(key if not key.startswith("{") else json.loads(key))


def test_params_match_published():
    bad = []
    for run in runs():
        pub = run["model"]["params_published"]
        if pub is None:
            continue
        got = costmodel_params(_model_key(run))
        if abs(got / pub - 1) > 0.03:
            bad.append(f"{run['id']}: costmodel {got:,} vs published {pub:,} ({got / pub - 1:+.1%})")
    assert not bad, "\n".join(bad)


# --- independent re-derivation of tokens/s/GPU ---------------------------------------------


def _shape(run):
    c = run["model"]["config"]
    return (c.get("n_layer") or c["num_hidden_layers"], c.get("n_embd") or c["hidden_size"], c["vocab_size"])


def test_derived_matches_published_direct():
    """Sources that print tokens/s (per GPU or per job): derived equals the printed number."""
    for run in runs():
        pub, got = run["published"], run["derived"]["tokens_per_s_per_gpu"]
        m = run["derived"]["method"]
        if m == "published_tokens_per_s_per_gpu":
            assert got == pytest.approx(pub["tokens_per_s_per_gpu"], rel=1e-9, abs=1.1e-3), run["id"]
        elif m == "tokens_per_s_over_gpus":
            assert got == pytest.approx(pub["tokens_per_s"] / run["hardware"]["num_gpus"], rel=1e-6, abs=1.1e-3), run["id"]
            # the table's own integer T/s/GPU column
            assert abs(got - pub["tokens_per_s_per_gpu"]) <= 1.0 + 1e-6, run["id"]


def test_llm_foundry_mfu_and_tflops_rederivation():
    """MFU-based: tokens/s/GPU = MFU x peak / (6N + 12 L d s); TFLOP-based: int(TFLOP) = flops x tokens / 1e12."""
    n = 0
    for run in runs():
        if run["source_key"] != "llm-foundry":
            continue
        pub, c = run["published"], run["model"]["config"]
        flops_tok = 6.0 * pub["num_params_reported"] + 12.0 * c["n_layer"] * c["n_embd"] * run["seq"]
        from_mfu = pub["mfu"] * pub["peak_flops_per_gpu_used"] / flops_tok
        derived = run["derived"]["tokens_per_s_per_gpu"]
        assert from_mfu == pytest.approx(derived, rel=2e-3, abs=1.0), run["id"]
        tflops = derived * flops_tok / 1e12
        assert pub["model_tflops_per_gpu"] <= tflops + 0.5 and tflops < pub["model_tflops_per_gpu"] + 1.5, run["id"]
        if run["layout"]["grad_checkpointing"] == "full":
            assert pub["hfu"] == pytest.approx(pub["mfu"] * 4 / 3, abs=2e-4), run["id"]
        else:
            assert pub["hfu"] == pub["mfu"], run["id"]
        n += 1
    assert n >= 200


def test_megatron_readme_rederivation():
    """TFLOP/s-based: per-GPU TFLOP/s over the FLOPs per token of each table's formula; MFU/HFU vs peak."""
    seen = Counter()
    for run in runs():
        m = run["derived"]["method"]
        if m not in ("megatron2021_aggregate", "megatron2021_tflops", "megatron2024_tflops"):
            continue
        pub, (L, h, V), s, g = run["published"], _shape(run), run["seq"], run["hardware"]["num_gpus"]
        derived = run["derived"]["tokens_per_s_per_gpu"]
        if m == "megatron2021_tflops":  # Narayanan Table 2: per-GPU TFLOP/s only
            per_tok = 4 * (24 * L * h * h + 4 * L * h * s) + 6 * h * V
            assert pub["hardware_tflops_per_gpu"] * 1e12 / per_tok == pytest.approx(derived, rel=1e-6, abs=1.1e-3), run["id"]
        elif m == "megatron2021_aggregate":
            # 96 B s l h^2 (1 + s/6h + V/16lh) per iteration: 4 passes (fwd, bwd=2 fwd, recompute fwd) of
            # 24 l h^2 + 4 l h s per token, plus 6 h V for the logits (no recompute)
            per_tok = 4 * (24 * L * h * h + 4 * L * h * s) + 6 * h * V
            assert per_tok == pytest.approx(96 * L * h * h * (1 + s / (6 * h) + V / (16 * L * h)), rel=1e-12)
            assert pub["hardware_tflops_per_gpu"] * 1e12 / per_tok == pytest.approx(derived, rel=0.01), run["id"]
            assert pub["hardware_tflops_per_gpu"] == pytest.approx(pub["hfu"] * 312, abs=0.5 / 100 * 312 + 0.5)
        else:
            # 3 passes of 24 l h^2 + 4 l h s per token, plus 6 h V logits
            per_tok = 3 * (24 * L * h * h + 4 * L * h * s) + 6 * h * V
            assert pub["model_tflops_per_gpu"] * 1e12 / per_tok == pytest.approx(derived, rel=1e-6, abs=1.1e-3), run["id"]
            assert pub["aggregate_pflops"] * 1e15 / g / per_tok == pytest.approx(derived, rel=0.01), run["id"]
            # the printed MFU is rounded to whole percent (462B: 459.9 / 989.5 = 46.5% printed as 47%)
            assert pub["model_tflops_per_gpu"] == pytest.approx(pub["mfu"] * 989.5, abs=0.006 * 989.5)
        seen[m] += 1
    assert seen["megatron2021_aggregate"] == 10 and seen["megatron2024_tflops"] == 9
    assert seen["megatron2021_tflops"] == 6


def test_korthikanti_mfu_rederivation():
    """Step-time-derived throughput vs the MFU printed for the same run (model FLOPs, 312 TFLOP/s peak)."""
    n = 0
    for run in runs():
        if run["source_key"] != "korthikanti2022":
            continue
        pub, (L, h, V), s = run["published"], _shape(run), run["seq"]
        derived = run["derived"]["tokens_per_s_per_gpu"]
        assert derived == pytest.approx(run["global_batch"] * s / pub["step_time_s"] / run["hardware"]["num_gpus"], abs=1e-3)
        if "mfu" in pub:
            per_tok = 3 * (24 * L * h * h + 4 * L * h * s) + 6 * h * V  # 72 B s l h^2 (1 + s/6h + V/12lh) / (B s)
            assert pub["mfu"] * 312e12 / per_tok == pytest.approx(derived, rel=0.015), run["id"]
            n += 1
    assert n == 4


def test_bloom_rederivation():
    (run,) = [r for r in runs() if r["source_key"] == "bigscience-bloom"]
    pub, (L, h, V), s, g, B = run["published"], _shape(run), run["seq"], run["hardware"]["num_gpus"], run["global_batch"]
    # Megatron-DeepSpeed hardware TFLOPs: 24*4*B*s*l*h^2*(1 + s/6h + V/16lh) / (step time * GPUs)
    tflops = 96 * B * s * L * h * h * (1 + s / (6 * h) + V / (16 * L * h)) / pub["step_time_s"] / g / 1e12
    assert tflops == pytest.approx(pub["hardware_tflops_per_gpu"], abs=0.01)
    assert B * s / pub["step_time_s"] / g == pytest.approx(run["derived"]["tokens_per_s_per_gpu"], rel=5e-3)


def test_model_flops_per_token_plausible():
    """Where both tokens/s and model TFLOP/s are printed, FLOPs per token sit between 6N and 6N + attention."""
    bad = []
    for run in runs():
        pub = run["published"]
        if "model_tflops_per_gpu" not in pub or run["derived"]["method"] != "published_tokens_per_s_per_gpu":
            continue
        per_tok = pub["model_tflops_per_gpu"] * 1e12 / run["derived"]["tokens_per_s_per_gpu"]
        ratio = per_tok / (6.0 * costmodel_params(_model_key(run)))
        if not 0.9 <= ratio <= 1.6:
            bad.append(f"{run['id']}: model FLOPs/token = {ratio:.2f} x 6N")
    assert not bad, "\n".join(bad)


def test_derive_script_is_up_to_date():
    spec = importlib.util.spec_from_file_location("published_runs_derive", ROOT / "benchmarks" / "published_runs_derive.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    text = DATA.read_text(encoding="utf-8")
    assert mod.render(mod.fill(copy.deepcopy(json.loads(text)))) == text
