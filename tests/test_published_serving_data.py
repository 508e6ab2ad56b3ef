"""Validate benchmarks/published_serving.json, the truth base of published LLM serving runs.

Checks structure, provenance, plausibility, internal consistency of the published numbers (which
catches transcription slips), that every model imports with costmodel (or is honestly flagged as
not supported yet), and recomputes ``derived`` independently of benchmarks/published_serving_derive.py.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / "published_serving.json"
SOURCES_MD = ROOT / "benchmarks" / "published_serving_sources.md"
HW_DIR = ROOT / "costmodel" / "assets" / "hardware"

REQUIRED = ["id", "source_key", "source", "model", "hardware", "hardware_notes", "num_gpus", "tp", "pp", "ep",
            "dp_replicas", "engine", "engine_version", "engine_settings", "precision", "workload", "published",
            "derived", "notes"]
WORKLOAD_KEYS = ["mode", "input_tokens", "output_tokens", "input_tokens_fixed", "output_tokens_fixed",
                 "length_distribution", "num_requests", "concurrency", "request_rate_per_s",
                 "request_rate_infinite", "dataset"]
PRECISIONS = {"fp8", "fp4", "mxfp4", "bf16", "fp16", "int4", "int8", "fp32"}
ENGINES = {"tensorrt-llm", "vllm", "sglang", "lmdeploy", "nvidia-nim", "tgi"}
PUBLISHED_KEY = re.compile(
    r"^(output_tokens_per_s(_per_gpu)?|total_tokens_per_s|requests_per_s|benchmark_duration_s|gpu_mem_gb|"
    r"(ttft|itl|tpot|e2e_latency)_(ms|s)_(mean|min|max|p50|p75|p90|p95|p99|unstated_stat)|"
    r"token_latency_s_(p50|p75|p95|p99)|metric_definition)$")
THROUGHPUT_KEYS = ("output_tokens_per_s", "output_tokens_per_s_per_gpu", "total_tokens_per_s", "requests_per_s")


@pytest.fixture(scope="module")
def data():
    return json.loads(DATA.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def records(data):
    return data["records"]


def finite_pos(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


def test_schema_documents_every_field(data):
    assert set(REQUIRED) <= set(data["schema"]), set(REQUIRED) - set(data["schema"])
    for k, v in data["schema"].items():
        assert isinstance(v, str) and v, k


def test_fields_present_and_ids_unique(records):
    for r in records:
        missing = [k for k in REQUIRED if k not in r]
        assert not missing, (r.get("id"), missing)
        assert set(WORKLOAD_KEYS) <= set(r["workload"]), r["id"]
        assert {"weights", "activations", "kv_cache", "notes"} <= set(r["precision"]), r["id"]
    ids = Counter(r["id"] for r in records)
    assert not [i for i, n in ids.items() if n > 1]


def test_counts(records):
    assert len(records) >= 80
    assert len({r["source_key"] for r in records}) >= 5
    assert sum(r["workload"]["mode"] == "online" for r in records) >= 10


def test_sources_complete(records):
    text = SOURCES_MD.read_text(encoding="utf-8")
    for r in records:
        s = r["source"]
        for k in ("title", "publisher", "url", "table", "date"):
            assert isinstance(s.get(k), str) and s[k].strip(), (r["id"], k)
        assert s["url"].startswith("https://"), r["id"]
        assert s["commit"] is None or re.fullmatch(r"[0-9a-f]{40}", s["commit"]), r["id"]
        if s["commit"]:
            assert s["commit"] in s["url"], r["id"]
        assert r["source_key"] in text, f"{r['source_key']} has no section in {SOURCES_MD.name}"


def test_essentials_and_vocabularies(records, data):
    catalog = {p.stem for p in HW_DIR.glob("*.json")}
    for r in records:
        rid = r["id"]
        assert r["engine"] in ENGINES, rid
        assert r["hardware"] in catalog or r["hardware"] in data["new_hardware_ids"], (rid, r["hardware"])
        assert r["hardware_notes"].strip(), rid
        assert r["precision"]["weights"] in PRECISIONS, rid
        kv = r["precision"]["kv_cache"]
        assert kv is None or kv.split(" ")[0] in PRECISIONS, rid
        if kv is None or r["precision"]["activations"] is None:
            assert r["precision"]["notes"].strip(), rid  # unpublished dtypes are explained
        if r["engine_version"] is None:
            assert "version" in r["notes"].lower(), rid  # a missing version is said so
        wl = r["workload"]
        assert wl["mode"] in ("offline", "online"), rid
        assert finite_pos(wl["input_tokens"]) and finite_pos(wl["output_tokens"]), rid
        assert wl["length_distribution"], rid
        load = [wl["num_requests"], wl["concurrency"], wl["request_rate_per_s"]]
        assert any(finite_pos(x) for x in load) or wl["request_rate_infinite"] is True, rid
        if wl["mode"] == "online":
            assert finite_pos(wl["concurrency"]) or finite_pos(wl["request_rate_per_s"]) or wl["request_rate_infinite"], rid
        pub = r["published"]
        assert pub.get("metric_definition"), rid
        assert any(k != "metric_definition" for k in pub), rid
        for k in pub:
            assert PUBLISHED_KEY.match(k), (rid, k)


def test_numbers_finite_and_plausible(records):
    for r in records:
        rid, pub, wl = r["id"], r["published"], r["workload"]
        for k, v in pub.items():
            if k == "metric_definition":
                continue
            assert finite_pos(v), (rid, k, v)
        if "output_tokens_per_s" in pub:
            assert 1 <= pub["output_tokens_per_s"] <= 500_000, rid
        if "output_tokens_per_s_per_gpu" in pub:
            assert 1 <= pub["output_tokens_per_s_per_gpu"] <= 100_000, rid
        for k, v in pub.items():
            if k.startswith(("ttft_ms", "itl_ms", "tpot_ms")):
                assert 1 <= v <= 300_000, (rid, k)
            if k.startswith(("ttft_s", "token_latency_s")):
                assert 0.001 <= v <= 1000, (rid, k)
        assert 1 <= wl["input_tokens"] <= 131072 and 1 <= wl["output_tokens"] <= 32768, rid
        # system output throughput per GPU stays below a generous ceiling (1e5 tok/s/GPU)
        d = r["derived"]["output_tokens_per_s"]
        assert d is None or d / r["num_gpus"] < 100_000, rid


def test_parallelism_consistent(records):
    for r in records:
        for k in ("num_gpus", "tp", "pp", "dp_replicas"):
            assert isinstance(r[k], int) and r[k] >= 1, (r["id"], k)
        assert r["num_gpus"] == r["tp"] * r["pp"] * r["dp_replicas"], r["id"]
        assert r["ep"] is None or (isinstance(r["ep"], int) and r["ep"] >= 1 and r["num_gpus"] % r["ep"] == 0), r["id"]
        if r["ep"] is None:  # only MoE models may leave the expert-parallel size unstated
            assert _is_moe(r["model"]), r["id"]
        elif not _is_moe(r["model"]):
            assert r["ep"] == 1, r["id"]


def _is_moe(m: dict) -> bool:
    cfg = m.get("config") or {}
    return m.get("preset") == "mixtral-8x7b" or any(
        k in cfg for k in ("num_local_experts", "num_experts", "n_routed_experts"))


def _model_source(m: dict):
    assert ("preset" in m) != ("config" in m), m["key"]
    return m["preset"] if "preset" in m else m["config"]


def test_models_import_and_params(records):
    import costmodel
    from costmodel.errors import InputError
    from costmodel.models import load_model

    models = {}
    for r in records:
        models.setdefault(r["model"]["key"], r["model"])
        assert r["model"] == models[r["model"]["key"]], r["id"]  # one description per model key
    for key, m in models.items():
        src = _model_source(m)
        if not m["supported_today"]:  # recorded before costmodel read this model type; it may load now
            assert isinstance(src, dict) and src.get("model_type"), key
            try:
                spec = load_model(src)
            except InputError:
                continue
        else:
            spec = load_model(src)
        if m["params_published"]:
            p = costmodel.estimate(spec, task="infer", batch=1, prompt=128, generate=1).params
            # vision towers and MTP modules are reported apart (params.apart); a published count may include them
            totals = (p.total, p.total + sum((p.apart or {}).values()))
            assert any(abs(t / m["params_published"] - 1) <= 0.02 for t in totals), (key, totals, m["params_published"])


def _derive(r: dict):
    """Independent re-implementation of the derivation rules."""
    p = r["published"]
    if "output_tokens_per_s" in p:
        return p["output_tokens_per_s"]
    if "output_tokens_per_s_per_gpu" in p:
        return p["output_tokens_per_s_per_gpu"] * r["num_gpus"]
    if "requests_per_s" in p and r["workload"]["output_tokens_fixed"]:
        return p["requests_per_s"] * r["workload"]["output_tokens"]
    return None


def test_derived_recomputed(records):
    for r in records:
        want = _derive(r)
        got = r["derived"]["output_tokens_per_s"]
        assert r["derived"]["derivation"], r["id"]
        if want is None:
            assert got is None, r["id"]
        else:
            assert got == pytest.approx(want, rel=1e-9), r["id"]


# ---- internal consistency of published numbers (guards against transcription slips) -------------

def test_online_trtllm_totals_match_request_rate(records):
    rows = [r for r in records if r["id"].startswith("trtllm-v0.14-online/")]
    assert len(rows) == 72
    for r in rows:
        p, wl = r["published"], r["workload"]
        isl, osl, rps = wl["input_tokens"], wl["output_tokens"], p["requests_per_s"]
        # Tput(req/s) is rounded to an integer: allow +-0.5 req/s plus 5 %
        assert abs(p["total_tokens_per_s"] - rps * (isl + osl)) <= 0.5 * (isl + osl) + 0.05 * p["total_tokens_per_s"], r["id"]
        assert abs(p["output_tokens_per_s"] - rps * osl) <= 0.5 * osl + 0.05 * p["output_tokens_per_s"], r["id"]
        if not wl["request_rate_infinite"]:
            assert rps <= wl["request_rate_per_s"] + 0.5, r["id"]


def test_closed_loop_rows_match_latencies(records):
    """Closed-loop concurrency c: output tok/s ~ c * osl / (TTFT + (osl-1) * ITL)."""
    n = 0
    for r in records:
        p, wl = r["published"], r["workload"]
        if r["source_key"] == "nvidia-nim-benchmarking":
            ttft, itl = p["ttft_ms_unstated_stat"] / 1000, p["itl_ms_unstated_stat"] / 1000
        elif r["source_key"] == "vllm-blog-intel-arc":
            ttft, itl = p["ttft_s_unstated_stat"], p["tpot_ms_unstated_stat"] / 1000
        else:
            continue
        c, osl = wl["concurrency"], wl["output_tokens"]
        model = c * osl / (ttft + (osl - 1) * itl)
        assert model == pytest.approx(p["output_tokens_per_s"], rel=0.05), r["id"]
        n += 1
    assert n == 14


def test_vllm_blog_duration_times_throughput(records):
    rows = [r for r in records if r["source_key"] == "vllm-blog-fp8-kv-cache"]
    assert len(rows) == 5
    for r in rows:
        p, wl = r["published"], r["workload"]
        produced = p["output_tokens_per_s"] * p["benchmark_duration_s"]
        assert produced == pytest.approx(wl["num_requests"] * wl["output_tokens"], rel=0.15), r["id"]


def test_lmdeploy_batch1_throughput_matches_token_latency(records):
    rows = [r for r in records if r["source_key"] == "lmdeploy-benchmark" and r["workload"]["concurrency"] == 1]
    assert len(rows) == 15
    for r in rows:
        p = r["published"]
        assert 0.7 <= p["output_tokens_per_s"] * p["token_latency_s_p50"] <= 1.2, r["id"]


def test_trtllm_versions_agree_within_factor(records):
    """The same configuration published in several TRT-LLM doc versions stays within 3x
    (software changes move it by tens of percent, a slipped digit by 10x)."""
    groups = defaultdict(list)
    for r in records:
        if r["engine"] != "tensorrt-llm" or r["workload"]["mode"] != "offline":
            continue
        key = (r["model"]["key"], r["hardware"], r["precision"]["weights"], r["num_gpus"], r["tp"], r["pp"],
               r["workload"]["input_tokens"], r["workload"]["output_tokens"])
        groups[key].append(r["derived"]["output_tokens_per_s"])
    multi = [v for v in groups.values() if len(v) > 1]
    assert len(multi) >= 50
    for v in multi:
        assert max(v) / min(v) < 3.0, v


def test_offline_trtllm_throughput_grows_with_gpus(records):
    """Within one table, more GPUs for the same model, GPU and lengths never lose more than half the
    throughput (a transcription slip into the wrong column would)."""
    groups = defaultdict(dict)
    for r in records:
        if r["source_key"] != "trtllm-perf-overview" or r["workload"]["mode"] != "offline" or r["pp"] != 1:
            continue
        tab = r["id"].split("/")[0]
        key = (tab, r["model"]["key"], r["hardware"], r["precision"]["weights"],
               r["workload"]["input_tokens"], r["workload"]["output_tokens"])
        groups[key][r["num_gpus"]] = r["derived"]["output_tokens_per_s"]
    for key, by_n in groups.items():
        ns = sorted(by_n)
        for a, b in zip(ns, ns[1:]):
            assert by_n[b] > 0.5 * by_n[a], (key, by_n)
