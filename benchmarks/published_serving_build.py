"""Build benchmarks/published_serving.json: published LLM serving benchmark runs with their full
settings, one record per published table cell or row.

The numbers live in benchmarks/published_serving_tables.py (transcribed from the sources listed in
benchmarks/published_serving_sources.md); model configs in benchmarks/published_serving_models.py.
``derived`` is filled by benchmarks/published_serving_derive.py.

    python benchmarks/published_serving_build.py
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import published_serving_derive as derive_mod  # noqa: E402
import published_serving_tables as T  # noqa: E402
from published_serving_models import MODELS, NEW_HARDWARE  # noqa: E402

OUT = HERE / "published_serving.json"

SCHEMA = {
    "id": "unique record id: <source_key>/<table>/<model>/<hardware>/<parallel>/<isl>-<osl>[/<load>]",
    "source_key": "independent source the record belongs to (group for leave-one-source-out)",
    "source": "{title, publisher, url, table, date, commit (git commit of the cited file, or null), file_id (stored-index id when no commit is known)}",
    "model": "{key, name, preset (costmodel preset id) or config (Hugging Face config.json fields), params_published (exact count or null), params_source, supported_today (costmodel imports this model_type today)}",
    "hardware": "costmodel catalog id (costmodel/assets/hardware/<id>.json) or a new id explained in hardware_notes",
    "hardware_notes": "how the source names the GPU; why a new id is used",
    "num_gpus": "GPUs used by the run (whole system)",
    "tp": "tensor-parallel size (for TRT-LLM 'DEPn' runs: n, with attention data parallelism, see engine_settings)",
    "pp": "pipeline-parallel size",
    "ep": "expert-parallel size (1 for dense models; null when the source does not say)",
    "dp_replicas": "independent model replicas (num_gpus = tp * pp * dp_replicas)",
    "engine": "tensorrt-llm | vllm | lmdeploy | nvidia-nim",
    "engine_version": "as published, or null (see notes)",
    "engine_settings": "what the source states: benchmark tool, backend, batching, CUDA graphs, KV memory fraction, attention DP, ...",
    "precision": "{weights, activations, kv_cache: fp8 | fp4 (NVFP4) | mxfp4 | bf16 | fp16 | null (not published), notes}",
    "workload": "{mode: offline | online, input_tokens, output_tokens, input_tokens_fixed, output_tokens_fixed, length_distribution, num_requests, concurrency, request_rate_per_s, request_rate_infinite, dataset}",
    "published": "numbers exactly as published, units in the key names: output_tokens_per_s (whole system), output_tokens_per_s_per_gpu, total_tokens_per_s, requests_per_s, ttft_ms_*, ttft_s_*, itl_ms_*, tpot_ms_*, token_latency_s_*, benchmark_duration_s, gpu_mem_gb; '_unstated_stat' = the table does not say mean or median; plus metric_definition",
    "derived": "{output_tokens_per_s (whole system), derivation}: filled by benchmarks/published_serving_derive.py",
    "notes": "caveats specific to the record",
}

HW_TRT = {
    "H200": ("h200-sxm-141gb", "TRT-LLM docs: 'H200 141GB HBM3' (v0.17 table) / 'H200 SXM 141GB (DGX H200)'"),
    "H100": ("h100-sxm-80gb", "TRT-LLM docs: 'H100 80GB HBM3' (HBM3 = SXM part) / 'H100 SXM 80GB (DGX H100)'"),
    "GH200": ("gh200", NEW_HARDWARE["gh200"]),
    "L40S": ("l40s-48gb", "TRT-LLM v0.17 table: 'L40S'"),
    "A100": ("a100-sxm-80gb", "TRT-LLM v0.17 table: 'A100-SXM4-80GB'"),
    "B200": ("b200-sxm-192gb", "TRT-LLM docs: 'B200 180GB (DGX B200)'; catalog entry b200-sxm-192gb"),
    "GB200": ("gb200", NEW_HARDWARE["gb200"]),
    "RTX": ("rtx-pro-6000-blackwell-server", NEW_HARDWARE["rtx-pro-6000-blackwell-server"]),
}

TRT_REPO = "https://github.com/NVIDIA/TensorRT-LLM/blob/{commit}/{path}"
PERF_MD = "docs/source/performance/perf-overview.md"

SOURCES = {
    "trtllm-v0.17": {
        "title": "TensorRT-LLM Performance Overview (perf-overview.md), Throughput Measurements generated with version 0.17",
        "publisher": "NVIDIA TensorRT-LLM",
        "url": TRT_REPO.format(commit="258c7540c03517def55d9a5aadfa9288af474e1b", path=PERF_MD),
        "table": "Throughput Measurements ('All data in the table below was generated using version 0.17')",
        "date": "TensorRT-LLM release 0.17 documentation",
        "commit": "258c7540c03517def55d9a5aadfa9288af474e1b", "file_id": None,
    },
    "trtllm-v0.14-online": {
        "title": "TensorRT-LLM Performance Overview (perf-overview.md), Online Serving Measurements generated with version 0.14.0",
        "publisher": "NVIDIA TensorRT-LLM",
        "url": TRT_REPO.format(commit="258c7540c03517def55d9a5aadfa9288af474e1b", path=PERF_MD),
        "table": "Online Serving Measurements ('generated using version 0.14.0, with 500 requests and BF16 precision')",
        "date": "TensorRT-LLM release 0.17 documentation (table data from release 0.14.0)",
        "commit": "258c7540c03517def55d9a5aadfa9288af474e1b", "file_id": None,
    },
    "trtllm-v0.19": {
        "title": "TensorRT-LLM Performance Overview, release 0.19.0 documentation (PyTorch backend)",
        "publisher": "NVIDIA TensorRT-LLM",
        "url": "https://nvidia.github.io/TensorRT-LLM/0.19.0/performance/perf-overview.html",
        "table": "Throughput Measurements: Llama 3.3 70B FP4, Llama 3.1 405B FP4, Llama 3.1 8B/70B/405B FP8",
        "date": "TensorRT-LLM release 0.19.0 documentation",
        "commit": None, "file_id": "2997649200",
    },
    "trtllm-v1.0": {
        "title": "TensorRT-LLM Performance Overview (perf-overview.md), page headed '(NEW for v1.0) RTX 6000 Pro Blackwell Server Edition Benchmarks'",
        "publisher": "NVIDIA TensorRT-LLM",
        "url": TRT_REPO.format(commit="00f37686aa854010d68bcbd0f4ab000221541ca6", path=PERF_MD),
        "table": "Throughput Measurements (per-model tables; Total Output Throughput tokens/sec)",
        "date": "TensorRT-LLM v1.0-era documentation (commit 00f37686)",
        "commit": "00f37686aa854010d68bcbd0f4ab000221541ca6", "file_id": None,
    },
    "trtllm-devguide": {
        "title": "TensorRT-LLM developer guide Performance Overview (developer-guide/perf-overview.md)",
        "publisher": "NVIDIA TensorRT-LLM",
        "url": TRT_REPO.format(commit="03e27c7d5ff0c6e89f8328838c0a8e64f1b34f9d", path="docs/source/developer-guide/perf-overview.md"),
        "table": "Performance Summary - All Networks (output tokens per second per GPU)",
        "date": "TensorRT-LLM 1.x documentation (commit 03e27c7d; the 1.2.0 docs carry the same per-GPU layout)",
        "commit": "03e27c7d5ff0c6e89f8328838c0a8e64f1b34f9d", "file_id": None,
    },
    "lmdeploy-a100": {
        "title": "LMDeploy: Benchmark on A100 (FP16)",
        "publisher": "InternLM LMDeploy",
        "url": "https://github.com/InternLM/lmdeploy/blob/3e391df4673326f79363eebe030876861a9b7090/docs/en/benchmark/a100_fp16.md",
        "table": "Static Inference Benchmark (llama2-7b, llama2-13b, llama2-70b)",
        "date": "LMDeploy v0.1.0a1 documentation",
        "commit": "3e391df4673326f79363eebe030876861a9b7090", "file_id": None,
    },
    "nim-benchmarking": {
        "title": "NVIDIA NIM LLMs Benchmarking guide (v1.0.0): Performance",
        "publisher": "NVIDIA NIM",
        "url": "https://docs.nvidia.com/nim/benchmarking/llm/1.0.0/performance.md",
        "table": "Llama-3.3-70b-instruct Results, Version 1.8.0, 2 x H100 80G, fp8 TP2, 5000 Input Tokens / 500 Output Tokens",
        "date": "NIM LLM benchmarking guide version 1.0.0 (the stored copy carries no page date)",
        "commit": None, "file_id": None,
    },
    "vllm-blog-fp8kv": {
        "title": "The State of FP8 KV-Cache and Attention Quantization in vLLM",
        "publisher": "vLLM blog (AWS and Red Hat AI authors)",
        "url": "https://github.com/vllm-project/vllm-project.github.io/blob/c3a01c4a5807c8d900ae468897e45263373e534e/_posts/2026-04-22-fp8-kvcache.md",
        "table": "Throughput under Load, Tables 4 (Llama-3.1-8B) and 5 (gpt-oss-20b)",
        "date": "2026-04-22",
        "commit": "c3a01c4a5807c8d900ae468897e45263373e534e", "file_id": None,
    },
    "vllm-blog-intel-arc": {
        "title": "Fast and Affordable LLMs serving on Intel Arc Pro B-Series GPUs with vLLM",
        "publisher": "vLLM blog (Intel vLLM Team)",
        "url": "https://github.com/vllm-project/vllm-project.github.io/blob/c3a01c4a5807c8d900ae468897e45263373e534e/_posts/2025-11-11-intel-arc-pro-b.md",
        "table": "Table 1: GPT-OSS vLLM inference throughput using 1-4 GPUs",
        "date": "2025-11-11",
        "commit": "c3a01c4a5807c8d900ae468897e45263373e534e", "file_id": None,
    },
}

# independent source -> which of the SOURCES above belong to it
SOURCE_KEY = {
    "trtllm-v0.17": "trtllm-perf-overview", "trtllm-v0.14-online": "trtllm-perf-overview",
    "trtllm-v0.19": "trtllm-perf-overview", "trtllm-v1.0": "trtllm-perf-overview",
    "trtllm-devguide": "trtllm-perf-overview", "lmdeploy-a100": "lmdeploy-benchmark",
    "nim-benchmarking": "nvidia-nim-benchmarking", "vllm-blog-fp8kv": "vllm-blog-fp8-kv-cache",
    "vllm-blog-intel-arc": "vllm-blog-intel-arc",
}

CUDA_GRAPH_OPTS = {"enable_padding": True,
                   "batch_sizes": [1, 2, 4, 8, 16, 32, 64, 128, 256, 384, 512, 1024, 2048, 4096, 8192]}
KV_FRACTION_NOTE = ("--kv_cache_free_gpu_mem_fraction 0.95 'in many/the majority of cases', falling back to 0.90 "
                    "or lower on out-of-memory; the value used for this row is not stated")


def model_block(key: str) -> dict:
    m = copy.deepcopy(MODELS[key])
    out = {"key": key, "name": m["name"]}
    if "preset" in m:
        out["preset"] = m["preset"]
    else:
        out["config"] = m["config"]
    out.update(params_published=m["params_published"], params_source=m["params_source"],
               supported_today=m["supported_today"])
    return out


def num(s: str):
    s = s.strip().replace(",", "")
    if not s:
        return None
    v = float(s)
    return int(v) if v.is_integer() and "." not in s else v


def is_moe(key: str) -> bool:
    cfg = MODELS[key].get("config") or {}
    return key.startswith(("mixtral", "qwen3", "llama-4", "deepseek", "gpt-oss")) or "num_local_experts" in cfg


def base_record(src: str, rid: str, model_key: str, hw: str, hw_note: str, num_gpus: int, tp: int, pp: int,
                ep, dp: int, engine: str, version, settings: dict, precision: dict, workload: dict,
                published: dict, notes: str) -> dict:
    return {
        "id": rid, "source_key": SOURCE_KEY[src], "source": dict(SOURCES[src]),
        "model": model_block(model_key), "hardware": hw, "hardware_notes": hw_note,
        "num_gpus": num_gpus, "tp": tp, "pp": pp, "ep": ep, "dp_replicas": dp,
        "engine": engine, "engine_version": version, "engine_settings": settings,
        "precision": precision, "workload": workload, "published": published,
        "derived": None, "notes": notes,
    }


def trt_offline_workload(isl: int, osl: int, nreq) -> dict:
    return {"mode": "offline", "input_tokens": isl, "output_tokens": osl, "input_tokens_fixed": True,
            "output_tokens_fixed": True,
            "length_distribution": "fixed: prepare_dataset.py token-norm-dist with --input-stdev=0 --output-stdev=0 (every request has exactly ISL/OSL tokens)",
            "num_requests": nreq, "concurrency": None, "request_rate_per_s": None, "request_rate_infinite": True,
            "dataset": "synthetic random token ids (benchmarks/cpp/prepare_dataset.py)"}


def trt_precision(p: str, kv_known: bool) -> dict:
    if p == "fp16":
        return {"weights": "fp16", "activations": "fp16", "kv_cache": "fp16",
                "notes": "FP16 engine without quantization (A100 column)"}
    if p == "fp8" and kv_known:
        return {"weights": "fp8", "activations": "fp8", "kv_cache": "fp8",
                "notes": "trtllm-bench build --quantization FP8; the doc: 'If you specify FP8 quantization, the KV cache will automatically be set to FP8 as well'"}
    w = {"fp8": "fp8", "fp4": "fp4"}[p]
    return {"weights": w, "activations": w, "kv_cache": None,
            "notes": (f"ModelOpt pre-quantized {p.upper()} checkpoint (nvidia/...-{'FP8' if p == 'fp8' else 'FP4'}); FP4 = NVFP4; "
                      "KV-cache dtype not stated for this table")}


def build_trt_v017(records: list) -> None:
    cols = ["H200", "H100", "GH200", "L40S", "A100"]
    for line in T.TRTLLM_V017.strip().splitlines():
        parts = line.split("|")
        key, tp, lens = parts[0], int(parts[1]), parts[2]
        isl, osl = (int(x) for x in lens.split(","))
        for gpu, cell in zip(cols, parts[3:]):
            v = num(cell)
            if v is None:
                continue
            hw, hw_note = HW_TRT[gpu]
            prec = "fp16" if gpu == "A100" else "fp8"
            if gpu == "GH200":
                settings = {"benchmark_tool": "gptManagerBenchmark (legacy C++ flow, recommended for GH200 in v0.17)",
                            "engine_build": "trtllm-bench build --tp_size $tp --quantization FP8 --dataset $dataset",
                            "runtime": "TensorRT engine, in-flight batching (--type IFB)",
                            "scheduler_policy": "guaranteed_no_evict", "kv_cache_free_gpu_mem_fraction": 0.95,
                            "chunked_context": True, "request_rate": -1.0, "eos_id": -1}
            else:
                settings = {"benchmark_tool": "trtllm-bench throughput",
                            "engine_build": ("trtllm-bench build --tp_size $tp --pp_size $pp " + ("--quantization FP8 " if prec == "fp8" else "")
                                             + "--dataset $dataset (max_batch_size / max_num_tokens chosen by trtllm-bench build heuristics from the dataset statistics)"),
                            "runtime": "TensorRT engine (C++ runtime), in-flight batching",
                            "kv_cache_free_gpu_mem_fraction": KV_FRACTION_NOTE}
            ep = None if is_moe(key) else 1
            rid = f"trtllm-v0.17/{key}/{hw}/tp{tp}/{isl}-{osl}"
            notes = "Offline max-throughput scenario: all requests queued at once ('infinite rate')."
            if is_moe(key):
                notes += " MoE expert-parallel mode not stated (trtllm-bench build defaults)."
            if gpu == "GH200":
                notes += " GH200 rows were benchmarked with gptManagerBenchmark, not trtllm-bench."
            records.append(base_record(
                "trtllm-v0.17", rid, key, hw, hw_note, tp, tp, 1, ep, 1, "tensorrt-llm", "0.17", settings,
                trt_precision(prec, kv_known=True), trt_offline_workload(isl, osl, T.TRTLLM_NUM_REQUESTS_V017[(isl, osl)]),
                {"output_tokens_per_s": v, "metric_definition": "table 'Throughput (tokens / sec)': token throughput of the trtllm-bench throughput run (Token Throughput (tokens/sec) in trtllm-bench's report counts output tokens)"},
                notes))


def build_trt_v014_online(records: list) -> None:
    for line in T.TRTLLM_V014_ONLINE.strip().splitlines():
        key, gpu, tp, isl, osl, qps, rps, ttft, itl, tot, out = line.split("|")
        tp, isl, osl = int(tp), int(isl), int(osl)
        hw, hw_note = HW_TRT[gpu]
        if gpu == "H200":
            hw_note += "; this table labels it 'H200 131GB HBM3'"
        inf = qps == "INF"
        wl = {"mode": "online", "input_tokens": isl, "output_tokens": osl, "input_tokens_fixed": None,
              "output_tokens_fixed": None,
              "length_distribution": "'Input Length' / 'Output Length' as published; whether fixed per request or a dataset mean is not stated",
              "num_requests": 500, "concurrency": None, "request_rate_per_s": None if inf else float(qps),
              "request_rate_infinite": inf, "dataset": None}
        rid = f"trtllm-v0.14-online/{key}/{hw}/tp{tp}/{isl}-{osl}/qps-{qps.lower()}"
        records.append(base_record(
            "trtllm-v0.14-online", rid, key, hw, hw_note, tp, tp, 1, 1, 1, "tensorrt-llm", "0.14.0",
            {"serving_frontend": "Triton Inference Server with the TensorRT-LLM backend (tensorrtllm_backend)",
             "runtime": "TensorRT engine, in-flight batching"},
            {"weights": "bf16", "activations": "bf16", "kv_cache": "bf16",
             "notes": "'BF16 precision' as published; no KV-cache quantization mentioned"},
            wl,
            {"requests_per_s": num(rps), "ttft_ms_mean": num(ttft), "itl_ms_mean": num(itl),
             "total_tokens_per_s": num(tot), "output_tokens_per_s": num(out),
             "metric_definition": "QPS = offered request rate (INF = all at once); Tput(req/s); Mean TTFT(ms); Mean ITL(ms) = inter-token latency; Total Token Tput (tok/s) = input+output; Output Tput (tok/s)"},
            "Online serving table; QPS INF issues all 500 requests at once."))


def build_trt_v019(records: list) -> None:
    for key, gpu, prec, tp, (isl, osl), cell in T.TRTLLM_V019:
        v = num(cell)
        if v is None:
            continue
        hw, hw_note = HW_TRT[gpu]
        rid = f"trtllm-v0.19/{key}/{hw}/{prec}/tp{tp}/{isl}-{osl}"
        model_note = ("Llama 3.3 70B (nvidia/Llama-3.3-70B-Instruct-FP4)" if (key == "llama-3.1-70b" and prec == "fp4")
                      else "")
        records.append(base_record(
            "trtllm-v0.19", rid, key, hw, hw_note, tp, tp, 1, 1, 1, "tensorrt-llm", "0.19.0",
            {"benchmark_tool": "trtllm-bench throughput --backend pytorch --extra_llm_api_options llm_options.yml",
             "backend": "pytorch (no engine build)", "cuda_graph_config": CUDA_GRAPH_OPTS,
             "kv_cache_free_gpu_mem_fraction": KV_FRACTION_NOTE},
            trt_precision(prec, kv_known=False),
            trt_offline_workload(isl, osl, T.TRTLLM_NUM_REQUESTS_V019.get((isl, osl))),
            {"output_tokens_per_s": v, "metric_definition": "Total Output Throughput (tokens/sec), whole system"},
            ("Offline max-throughput scenario. engine_version is the release of the documentation that carries this table "
             "(the table itself does not state it). " + (model_note + ". " if model_note else "")
             + ("num_requests for 1024/2048 not listed in the doc." if (isl, osl) == (1024, 2048) else "")).strip()))


def _parse_col(spec: str):
    gpu, par, prec = spec.split(":")
    attn_dp = par.startswith("DEP")
    pp = 1
    if "-PP" in par:
        par, pp_s = par.split("-PP")
        pp = int(pp_s)
    n = int(par[3:] if attn_dp else par[2:])
    return gpu, n, pp, attn_dp, prec


def build_trt_blocks(records: list, src: str, blocks, per_gpu: bool, nreq_table: dict, version) -> None:
    for key, cols, body in blocks:
        specs = [_parse_col(c) for c in cols]
        for line in body.strip().splitlines():
            parts = line.split("|")
            isl, osl = (int(x) for x in parts[0].split("/"))
            for (gpu, n, pp, attn_dp, prec), cell in zip(specs, parts[1:]):
                v = num(cell)
                if v is None:
                    continue
                hw, hw_note = HW_TRT[gpu]
                num_gpus = n * pp
                ep = n if attn_dp else (1 if not is_moe(key) else None)
                settings = {"benchmark_tool": "trtllm-bench throughput --backend pytorch --extra_llm_api_options llm_options.yml",
                            "backend": "pytorch (no engine build)", "cuda_graph_config": CUDA_GRAPH_OPTS,
                            "kv_cache_free_gpu_mem_fraction": KV_FRACTION_NOTE}
                prec_block = trt_precision(prec, kv_known=False)
                if attn_dp:
                    settings["enable_attention_dp"] = True
                    settings["parallel_label"] = f"DEP{n}: --tp {n} --ep {n} with attention data parallelism"
                if src == "trtllm-v1.0" and is_moe(key):
                    settings["moe_llm_options"] = "MoE llm_options.yml lists enable_attention_dp: true (placed under cuda_graph_config as published); --ep value not stated"
                if src == "trtllm-devguide":
                    if key.startswith("gpt-oss"):
                        settings.update(enable_attention_dp=True,
                                        moe_backend="CUTLASS on Blackwell, TRITON on Hopper (as published)")
                        prec_block["kv_cache"] = "fp8" if gpu in ("B200", "GB200") else None
                        prec_block["notes"] += "; GPT-OSS llm_options: kv_cache_config dtype fp8 (Hopper: auto)"
                    if key.startswith("deepseek"):
                        settings.update(enable_attention_dp=True, moe_backend="CUTLASS",
                                        attention_dp_config={"batching_wait_iters": 0, "enable_balance": True, "timeout_iters": 60})
                        prec_block["kv_cache"] = "fp8"
                        prec_block["notes"] += "; DeepSeek R1 llm_options: kv_cache_config dtype fp8"
                        if prec == "fp8":
                            prec_block["notes"] += "; FP8 model is deepseek-ai/DeepSeek-R1-0528 (native block-scaled FP8)"
                    if key.startswith(("qwen3", "llama-4")):
                        settings["enable_attention_dp"] = True
                    if key.startswith("gpt-oss") and prec == "fp8":
                        prec_block["notes"] += "; table labels the Hopper runs '(FP8)' although gpt-oss ships MXFP4 MoE weights"
                par = (f"dep{n}" if attn_dp else f"tp{n}") + (f"-pp{pp}" if pp > 1 else "")
                rid = f"{src}/{key}/{hw}/{prec}/{par}/{isl}-{osl}"
                if per_gpu:
                    pub = {"output_tokens_per_s_per_gpu": v,
                           "metric_definition": "output tokens per second per GPU (trtllm-bench 'Per GPU Output Throughput'); output tokens include the first token, input tokens excluded"}
                else:
                    pub = {"output_tokens_per_s": v, "metric_definition": "Total Output Throughput (tokens/sec), whole system"}
                note = "Offline max-throughput scenario."
                if key == "llama-3.1-70b":
                    note += " Model is Llama 3.3 70B (same architecture as Llama 3.1 70B)."
                if version is None:
                    note += " Engine version not stated in this table."
                if (isl, osl) not in nreq_table:
                    note += " num_requests for this ISL/OSL not listed in the doc."
                records.append(base_record(
                    src, rid, key, hw, hw_note, num_gpus, n, pp, ep, 1, "tensorrt-llm", version, settings, prec_block,
                    trt_offline_workload(isl, osl, nreq_table.get((isl, osl))), pub, note))


def build_lmdeploy(records: list) -> None:
    for key, body in T.LMDEPLOY_A100_STATIC.items():
        for line in body.strip().splitlines():
            (bs, tp, isl, osl, thr, mem, fa, fmin, fmax, p50, p75, p95, p99) = line.split("|")
            bs, tp, isl, osl = int(bs), int(tp), int(isl), int(osl)
            rid = f"lmdeploy-a100/{key}/a100-80gb/tp{tp}/{isl}-{osl}/bs{bs}"
            records.append(base_record(
                "lmdeploy-a100", rid, key, "a100-80gb", NEW_HARDWARE["a100-80gb"], tp, tp, 1, 1, 1, "lmdeploy", "v0.1.0a1",
                {"benchmark_tool": "benchmark/profile_generation.py (static inference: fixed batch, fixed input/output tokens)",
                 "backend": "TurboMind (model converted to turbomind format)", "streaming": True,
                 "cuda": "11.8"},
                {"weights": "fp16", "activations": "fp16", "kv_cache": "fp16",
                 "notes": "document title 'Benchmark on A100 (FP16)'; no KV-cache quantization mentioned"},
                {"mode": "offline", "input_tokens": isl, "output_tokens": osl, "input_tokens_fixed": True,
                 "output_tokens_fixed": True, "length_distribution": "fixed prompt_tokens / output_tokens per test case",
                 "num_requests": None, "concurrency": bs, "request_rate_per_s": None, "request_rate_infinite": False,
                 "dataset": "synthetic prompts of prompt_tokens tokens"},
                {"output_tokens_per_s": num(thr), "gpu_mem_gb": num(mem), "ttft_s_mean": num(fa), "ttft_s_min": num(fmin),
                 "ttft_s_max": num(fmax), "token_latency_s_p50": num(p50), "token_latency_s_p75": num(p75),
                 "token_latency_s_p95": num(p95), "token_latency_s_p99": num(p99),
                 "metric_definition": "throughput(out tok/s) = generated tokens / total time (prefill included); FTL = first token latency (s); 50/75/95/99% = percentiles of each token's latency (s); mem = GPU memory (GB, includes the pre-allocated KV cache)"},
                "Static batch: `batch` concurrent request threads each run one request with the fixed lengths; number of rounds per case not stated on the results page."))


def build_nim(records: list) -> None:
    for line in T.NIM_LLAMA33_70B_V180.strip().splitlines():
        c, ttft, itl, thr = line.split("|")
        c = int(c)
        rid = f"nim-benchmarking/llama-3.1-70b/h100-80gb/fp8/tp2/5000-500/c{c}"
        records.append(base_record(
            "nim-benchmarking", rid, "llama-3.1-70b", "h100-80gb",
            "published as '2 x H100 80G'; SXM/PCIe is in the page's Hardware Specifications section, which the stored copy does not include",
            2, 2, 1, 1, 1, "nvidia-nim", "1.8.0",
            {"container": "NIM Llama-3.3-70b-Instruct, version 1.8.0", "client": "AIPerf (per the guide)",
             "inference_backend": None},
            {"weights": "fp8", "activations": None, "kv_cache": None, "notes": "published 'fp8 TP2'; activation and KV-cache dtypes not stated"},
            {"mode": "online", "input_tokens": 5000, "output_tokens": 500, "input_tokens_fixed": None,
             "output_tokens_fixed": None, "length_distribution": "'5000 Input Tokens / 500 Output Tokens'; distribution not stated",
             "num_requests": None, "concurrency": c, "request_rate_per_s": None, "request_rate_infinite": False,
             "dataset": None},
            {"ttft_ms_unstated_stat": num(ttft), "itl_ms_unstated_stat": num(itl), "output_tokens_per_s": num(thr),
             "metric_definition": "Throughput(Tokens/s) as published; it is output tokens/s of the whole system: the concurrency 1 and 5 rows equal c*500/(TTFT+499*ITL) within 1%. TTFT/ITL statistic (mean or median) not stated"},
            "Model is Llama 3.3 70B Instruct. Inference backend inside the NIM (TRT-LLM or vLLM profile) not stated in the stored excerpt."))


def build_vllm_fp8kv(records: list) -> None:
    for line in T.VLLM_FP8KV.strip().splitlines():
        key, cfg, ttft, itl, dur, thr = line.split("|")
        kv = {"BF16": "bf16", "FP8": "fp8", "FP8 skip-SW": "fp8 (sliding-window layers kept in bf16)"}[cfg]
        if key == "llama-3.1-8b":
            weights, wnote = "bf16", ("weights not stated: the post varies only --kv-cache-dtype; its quick start serves "
                                      "meta-llama/Llama-3.1-8B without a quantization flag (bf16 checkpoint)")
        else:
            weights, wnote = "mxfp4", "weights not restated in the post; gpt-oss-20b ships MXFP4 MoE weights (model card)"
        slug = cfg.lower().replace(" ", "-")
        rid = f"vllm-blog-fp8kv/{key}/h100-80gb/tp1/20000-2000/c8/kv-{slug}"
        records.append(base_record(
            "vllm-blog-fp8kv", rid, key, "h100-80gb",
            "'All Hopper experiments run on a single H100 GPU'; SXM/PCIe not stated", 1, 1, 1, 1 if key == "llama-3.1-8b" else None, 1,
            "vllm", None,
            {"benchmark_tool": "vllm bench serve", "attention_backend": "FlashAttention-3 (vLLM fork) with FP8 KV-cache support",
             "kv_cache_dtype_flag": {"bf16": "auto", "fp8": "--kv-cache-dtype fp8"}.get(kv, "--kv-cache-dtype fp8 --kv-cache-dtype-skip-layers sliding_window")},
            {"weights": weights, "activations": None, "kv_cache": kv, "notes": wnote + "; FP8 KV also runs QK and PV matmuls in FP8 (e4m3)"},
            {"mode": "online", "input_tokens": 20000, "output_tokens": 2000, "input_tokens_fixed": False,
             "output_tokens_fixed": False,
             "length_distribution": "'~20k input tokens and ~2k output tokens (±15% variance)' per request",
             "num_requests": 150, "concurrency": 8, "request_rate_per_s": None, "request_rate_infinite": False,
             "dataset": None},
            {"ttft_ms_p50": num(ttft), "itl_ms_p50": num(itl), "benchmark_duration_s": num(dur), "output_tokens_per_s": num(thr),
             "metric_definition": "Median TTFT (ms), Median ITL (ms), Total duration (s), Output tok/s (whole system) from vllm bench serve"},
            ("vLLM version for the load test not stated (the post's single-request results compare v0.10.2 with v0.19.1 'after'). "
             "input/output_tokens are the approximate published means.")))


def build_vllm_intel(records: list) -> None:
    for line in T.VLLM_INTEL_ARC.strip().splitlines():
        key, dtype, tp, lens, c, ttft, tpot, thr = line.split("|")
        tp, c = int(tp), int(c)
        isl, osl = (int(x) for x in lens.split("/"))
        rid = f"vllm-blog-intel-arc/{key}/intel-arc-pro-b60-24gb/tp{tp}/{isl}-{osl}/c{c}"
        records.append(base_record(
            "vllm-blog-intel-arc", rid, key, "intel-arc-pro-b60-24gb", NEW_HARDWARE["intel-arc-pro-b60-24gb"] + "; 'x8 Intel Arc Pro B-series System', the run uses TP GPUs",
            tp, tp, 1, None, 1, "vllm", None,
            {"published_setup": "intel/vllm:0.10.2-xpu docker image; example server command for gpt-oss-120b: --dtype=bfloat16 --enforce-eager --gpu-memory-util=0.9 --no-enable-prefix-caching --max-num-batched-tokens=8192 --max-model-len=16384 --block-size 64 -tp 4",
             "benchmark_tool": "vllm bench serve (example uses --dataset-name sonnet --ignore-eos)"},
            {"weights": "mxfp4", "activations": None, "kv_cache": None,
             "notes": "'Data type MXFP4' as published; the example server command sets --dtype=bfloat16; KV-cache dtype not stated"},
            {"mode": "online", "input_tokens": isl, "output_tokens": osl, "input_tokens_fixed": None,
             "output_tokens_fixed": None, "length_distribution": "'Input/output seq length' as published (example command: sonnet dataset with --ignore-eos)",
             "num_requests": None, "concurrency": c, "request_rate_per_s": None, "request_rate_infinite": False,
             "dataset": "sonnet (per the example command; not restated for the table)"},
            {"ttft_s_unstated_stat": num(ttft), "tpot_ms_unstated_stat": num(tpot), "output_tokens_per_s": num(thr),
             "metric_definition": "TTFT (s), TPOT (ms), Output Token Throughput (toks/s) as published; statistic (mean/median) not stated"},
            ("The example commands use the 0.10.2-xpu image and --enforce-eager (no graph capture); whether Table 1 used exactly these "
             "settings is not stated, so engine_version is null.")))


def build() -> dict:
    records: list = []
    build_trt_v017(records)
    build_trt_v014_online(records)
    build_trt_v019(records)
    build_trt_blocks(records, "trtllm-v1.0", T.TRTLLM_V10_BLOCKS, per_gpu=False,
                     nreq_table=T.TRTLLM_NUM_REQUESTS_V10, version=None)
    build_trt_blocks(records, "trtllm-devguide", T.TRTLLM_DEVGUIDE_BLOCKS, per_gpu=True,
                     nreq_table=T.TRTLLM_NUM_REQUESTS_DEVGUIDE, version=None)
    build_lmdeploy(records)
    build_nim(records)
    build_vllm_fp8kv(records)
    build_vllm_intel(records)
    for r in records:
        r["derived"] = derive_mod.derive(r)
    return {"schema": SCHEMA,
            "about": ("Published LLM serving benchmark runs with their settings, as ground truth for costmodel's serving "
                      "predictions. Built by benchmarks/published_serving_build.py; sources and caveats in "
                      "benchmarks/published_serving_sources.md."),
            "new_hardware_ids": NEW_HARDWARE,
            "records": records}


def main() -> int:
    data = build()
    OUT.write_text(derive_mod.dump(data), encoding="utf-8")
    print(f"{len(data['records'])} records -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
