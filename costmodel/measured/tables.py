"""Measured per-op latency tables of NVIDIA aiconfigurator-core, read with our own code.

Source: the ``aiconfigurator-core`` wheel (Apache-2.0, NVIDIA; github.com/ai-dynamo/aiconfigurator)
ships ``systems/data/<system>/<op family>/<backend>/<version>/*.parquet``: kernel latencies
measured by its collector on real GPUs (CUDA-graph replays, several weight copies so weights
stream from HBM rather than L2). This module only reads those files; none of its interpolation
code is used. Units in the files: ``latency`` in milliseconds (converted to seconds here);
GEMM ``m, n, k`` for ``x[m, k] @ W[n, k]^T``; NCCL/custom all-reduce ``message_size`` in
elements of the whole (unsharded) buffer, as nccl-tests counts it (``nccl_dtype`` half = 2
bytes, int8 = 1 byte).

Which data version answers: the ``current`` slot of ``systems/query_versions.yaml`` for
(system, backend); an op file missing there comes from the newest older version that has it
(the same backward fill aiconfigurator documents). NCCL tables are backend-independent: the
system spec's ``misc.nccl_version`` when that folder exists, else the newest.

Every lookup is a log-multilinear interpolation on the measured grid (``costmodel.measured._grid``)
and returns None outside the measured coverage unless ``extrapolate=True`` (rules in ``_grid``).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import InputError
from ._grid import LogGrid
from .files import _collection_meta, _read_columns, package_version, resolve_nccl_file, resolve_op_file

MS_TO_S = 1e-3

# costmodel dtype names -> the tables' names. fp16 reads the bf16 table: every GPU here runs
# both at the same tensor-core rate and the collector measures bf16 only.
GEMM_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "bfloat16", "float16": "bfloat16",
               "half": "bfloat16", "fp8": "fp8", "float8": "fp8", "float8_e4m3fn": "fp8", "fp8_block": "fp8_block",
               "fp4": "nvfp4", "nvfp4": "nvfp4", "int8": "sq", "sq": "sq", "int8_wo": "int8_wo", "int4_wo": "int4_wo"}
ATTN_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "bfloat16", "float16": "bfloat16",
               "half": "bfloat16", "fp8": "fp8", "float8": "fp8"}
MOE_DTYPES = {"bf16": "bfloat16", "bfloat16": "bfloat16", "fp16": "bfloat16", "fp8": "fp8", "fp8_block": "fp8_block",
              "fp4": "nvfp4", "nvfp4": "nvfp4", "int4_wo": "int4_wo", "w4a16_mxfp4": "w4a16_mxfp4",
              "w4afp8": "w4afp8", "w4a8_mxfp4_mxfp8": "w4a8_mxfp4_mxfp8"}
# NCCL tables hold fp16 ("half") and int8 messages; the time of a collective depends on its bytes
# (and, for reductions, barely on the element type), so bf16/fp16 read "half" and 1-byte types "int8".
NCCL_DTYPES = {"bf16": ("half", 2), "fp16": ("half", 2), "bfloat16": ("half", 2), "float16": ("half", 2),
               "half": ("half", 2), "fp8": ("int8", 1), "int8": ("int8", 1)}
NCCL_OPS = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
BACKENDS = ("trtllm", "vllm", "sglang")


@dataclass(frozen=True)
class OpTable:
    """One op family of one (system, backend): grids keyed by the op's discrete parameters."""

    op: str
    path: str
    provenance: str
    grids: dict  # key tuple -> LogGrid
    kernels: dict  # key tuple -> kernel_source used for that key

    def grid(self, key: tuple) -> Optional[LogGrid]:
        return self.grids.get(key)


def _provenance(system: str, backend_label: str, version: str, what: str, path: Path, device: str,
                kernels: set) -> str:
    meta = _collection_meta(path)
    tier = meta.get("provenance", "unrecorded")
    status = sorted({str(v.get("status", "")) for v in (meta.get("tables") or {}).values() if isinstance(v, dict)}
                    - {""})
    extra = f"; kernel {', '.join(sorted(kernels))}" if kernels else ""
    dev = f"; {device}" if device else ""
    st = f", {'/'.join(status)}" if status else ""
    return (f"measured (aiconfigurator-core {package_version()}, {system} {backend_label} {version} {what} table"
            f"{extra}{dev}; tier {tier}{st})")


def _build(path: Path, *, op: str, system: str, backend_label: str, what: str, key_cols: tuple[str, ...],
           axis_cols: tuple[str, ...], up_power: tuple, down_power: Optional[tuple] = None, fill_axis=0,
           defaults: Optional[dict] = None) -> OpTable:
    """Group rows by ``key_cols`` (+ kernel source); per key keep the kernel source with the most rows;
    build one LogGrid per key over ``axis_cols``."""
    defaults = dict(defaults or {})
    defaults.setdefault("kernel_source", "default")
    defaults.setdefault("device", "")
    cols = _read_columns(path, (*key_cols, *axis_cols, "kernel_source", "device", "latency"), defaults)
    n = len(cols["latency"])
    keys_all = list(zip(*(cols[c].tolist() for c in key_cols), cols["kernel_source"].tolist())) if key_cols else \
        [(ks,) for ks in cols["kernel_source"].tolist()]
    groups: dict = {}
    for i, key in enumerate(keys_all):
        groups.setdefault(key, []).append(i)
    # per discrete key, the kernel source with the most rows answers (one kernel a grid)
    chosen: dict = {}
    for key, rows in groups.items():
        base = key[:-1]
        if base not in chosen or len(rows) > len(groups[chosen[base]]):
            chosen[base] = key
    lat_s = np.asarray(cols["latency"], dtype=float) * MS_TO_S
    grids, kernels = {}, {}
    for base, key in chosen.items():
        idx = np.asarray(groups[key])
        coords = [np.asarray(cols[c], dtype=float)[idx] for c in axis_cols]
        ok = lat_s[idx] > 0
        if not ok.any():
            continue
        grids[tuple(_norm(v) for v in base)] = LogGrid.from_points(
            [c[ok] for c in coords], lat_s[idx][ok], names=axis_cols, up_power=up_power, down_power=down_power,
            fill_axis=fill_axis)
        kernels[tuple(_norm(v) for v in base)] = key[-1]
    device = str(cols["device"][0]) if n else ""
    version = path.parent.name
    prov = _provenance(system, backend_label, version, what, path, device, set(kernels.values()))
    return OpTable(op=op, path=str(path), provenance=prov, grids=grids, kernels=kernels)


def _norm(v):
    """Key values as plain Python scalars (ints stay ints, strings stay strings)."""
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        f = float(v)
        return int(f) if f.is_integer() else f
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def _dtype(table: dict, dtype: str, field: str) -> str:
    key = str(dtype).strip().lower().replace("torch.", "")
    if key in table:
        return table[key]
    raise InputError(field, f"unknown {dtype!r}; use one of {', '.join(sorted(table))}")


def _positive_int(name: str, v) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise InputError(name, f"must be a whole number >= 1, got {v!r}")
    return int(v)


def _positive(name: str, v) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise InputError(name, f"must be a positive number, got {v!r}") from None
    if not f > 0 or not math.isfinite(f):
        raise InputError(name, f"must be a positive number, got {v!r}")
    return f


class MeasuredTables:
    """The measured tables of one aiconfigurator system and backend. Op families load on first
    use (each parquet file read once, kept as numpy grids) and are shared by every caller.

    All times are seconds of device time of one kernel (or one fused op), no host overhead.
    """

    def __init__(self, system: str, backend: str = "trtllm"):
        if backend not in BACKENDS:
            raise InputError("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
        self.system = system
        self.backend = backend
        self._lock = threading.Lock()
        self._ops: dict = {}

    def __repr__(self) -> str:
        return f"MeasuredTables({self.system!r}, {self.backend!r})"

    # ---- loading ---------------------------------------------------------------------------------

    def _op(self, op: str) -> Optional[OpTable]:
        with self._lock:
            if op not in self._ops:
                self._ops[op] = self._load(op)
            return self._ops[op]

    def _load(self, op: str) -> Optional[OpTable]:
        s, b = self.system, self.backend
        if op == "gemm":
            path = resolve_op_file(s, "gemm", b, "gemm_perf.parquet")
            if path is None:
                return None
            return _build(path, op=op, system=s, backend_label=b, what="gemm", key_cols=("gemm_dtype",),
                          axis_cols=("m", "n", "k"), up_power=(1.0, 1.0, 1.0), fill_axis=(0, 1, 2))
        if op in ("context_attention", "generation_attention"):
            path = resolve_op_file(s, "attention", b, f"{op}_perf.parquet")
            if path is None:
                return None
            seq = "isl" if op == "context_attention" else "step"
            return _build_attention(path, op, s, b, seq)
        if op in ("context_mla", "generation_mla"):
            path = resolve_op_file(s, "mla", b, f"{op}_perf.parquet")
            if path is None:
                return None
            seq = "isl" if op == "context_mla" else "step"
            return _build(path, op=op, system=s, backend_label=b, what=op.replace("_", " "),
                          key_cols=("mla_dtype", "kv_cache_dtype"), axis_cols=("batch_size", seq, "num_heads"),
                          up_power=(1.0, 2.0 if op == "context_mla" else 1.0, 1.0), fill_axis=0)
        if op == "moe":
            path = resolve_op_file(s, "moe", b, "moe_perf.parquet")
            if path is None:
                return None
            return _build(path, op=op, system=s, backend_label=b, what="moe",
                          key_cols=("moe_dtype", "hidden_size", "inter_size", "topk", "num_experts", "moe_tp_size",
                                    "moe_ep_size", "distribution"),
                          axis_cols=("num_tokens",), up_power=(1.0,), fill_axis=None)
        if op == "nccl":
            path = resolve_nccl_file(s)
            if path is None:
                return None
            return _build(path, op=op, system=s, backend_label="nccl", what="nccl",
                          key_cols=("op_name", "nccl_dtype", "num_gpus"), axis_cols=("message_size",),
                          up_power=(1.0,), down_power=(0.0,), fill_axis=None)
        if op == "custom_allreduce":
            path = resolve_op_file(s, "comm", b, "custom_allreduce_perf.parquet")
            if path is None:
                return None
            return _build(path, op=op, system=s, backend_label=b, what="custom all-reduce",
                          key_cols=("allreduce_dtype", "num_gpus"), axis_cols=("message_size",),
                          up_power=(1.0,), down_power=(0.0,), fill_axis=None)
        raise InputError("op", f"unknown op {op!r}")

    def has(self, op: str) -> bool:
        """Whether this system/backend ships a table for ``op``."""
        return self._op(op) is not None

    def table(self, op: str) -> Optional[OpTable]:
        """The loaded table of ``op`` (gemm, context_attention, generation_attention, context_mla,
        generation_mla, moe, nccl, custom_allreduce), or None when not shipped."""
        return self._op(op)

    def provenance(self, op: str) -> Optional[str]:
        """One line naming the package version, system, backend, data version, table, kernel,
        device and collection tier, e.g. ``measured (aiconfigurator-core 0.12.0, h200_sxm trtllm
        1.3.0rc20 gemm table; kernel torch_flow; NVIDIA H200; tier collected, complete)``."""
        t = self._op(op)
        return t.provenance if t is not None else None

    # ---- queries -----------------------------------------------------------------------------------

    def gemm_s(self, m: int, n: int, k: int, dtype: str = "bf16", *, extrapolate: bool = False) -> Optional[float]:
        """Device time of ``y[m, n] = x[m, k] @ W[n, k]^T`` in seconds, as the framework's Linear
        runs it (fp8: per-tensor scaled, the activation quantized inside the op; fp8_block:
        128x128-block scales; nvfp4: 16-element block scales; int8 = SmoothQuant W8A8 where
        measured). Log-trilinear in (m, n, k) between measured shapes; None outside them
        (``extrapolate=True``: time ∝ each dimension beyond the largest measured one)."""
        t = self._op("gemm")
        if t is None:
            return None
        g = t.grid((_dtype(GEMM_DTYPES, dtype, "dtype"),))
        if g is None:
            return None
        return g.query((_positive("m", m), _positive("n", n), _positive("k", k)), extrapolate)

    def _attention(self, op: str, batch, seq, num_heads, num_kv_heads, head_dim, dtype, kv_dtype, window,
                   extrapolate) -> Optional[float]:
        t = self._op(op)
        if t is None:
            return None
        h = _positive_int("num_heads", num_heads)
        kv = _positive_int("num_kv_heads", num_kv_heads)
        if kv > h or h % kv:
            raise InputError("num_kv_heads", f"must divide num_heads ({h}), got {kv}")
        a = _dtype(ATTN_DTYPES, dtype, "dtype")
        kvd = _dtype(ATTN_DTYPES, kv_dtype if kv_dtype is not None else dtype, "kv_dtype")
        group = 0 if kv == h else kv  # 0 = MHA: the heads axis then carries the kv heads too
        g = t.grid((a, kvd, _positive_int("head_dim", head_dim), int(window or 0), group))
        if g is None:
            return None
        return g.query((_positive("batch", batch), _positive("seq", seq), float(h)), extrapolate)

    def context_attention_s(self, batch: int, seq_len: int, num_heads: int, num_kv_heads: int, head_dim: int,
                            dtype: str = "bf16", kv_dtype: Optional[str] = None, window: int = 0, *,
                            extrapolate: bool = False) -> Optional[float]:
        """Prefill attention (causal, no cached prefix) of ``batch`` sequences of ``seq_len`` tokens,
        ``num_heads`` query and ``num_kv_heads`` KV heads per GPU, in seconds. ``dtype`` is the
        FMHA math (bf16, or fp8 with an fp8 KV cache), ``kv_dtype`` the cache (default: dtype),
        ``window`` a sliding window (0 = full). Grids per (dtype, kv dtype, head_dim, window, KV
        heads; MHA separately), log-trilinear in (batch, seq_len, num_heads); None where the
        table has no such configuration (``extrapolate``: time ∝ batch, ∝ seq_len² beyond it)."""
        return self._attention("context_attention", batch, seq_len, num_heads, num_kv_heads, head_dim, dtype,
                               kv_dtype, window, extrapolate)

    def generation_attention_s(self, batch: int, kv_len: int, num_heads: int, num_kv_heads: int, head_dim: int,
                               dtype: str = "bf16", kv_dtype: Optional[str] = None, window: int = 0, *,
                               extrapolate: bool = False) -> Optional[float]:
        """One decode step's attention: ``batch`` sequences, each with ``kv_len`` cached tokens
        (the table's ``step``; the new token attends kv_len + 1), in seconds. Same keys and
        scheme as ``context_attention_s`` (``extrapolate``: time ∝ batch, ∝ kv_len)."""
        return self._attention("generation_attention", batch, kv_len, num_heads, num_kv_heads, head_dim, dtype,
                               kv_dtype, window, extrapolate)

    def _mla(self, op, batch, seq, num_heads, dtype, kv_dtype, extrapolate) -> Optional[float]:
        t = self._op(op)
        if t is None:
            return None
        g = t.grid((_dtype(ATTN_DTYPES, dtype, "dtype"),
                    _dtype(ATTN_DTYPES, kv_dtype if kv_dtype is not None else dtype, "kv_dtype")))
        if g is None:
            return None
        return g.query((_positive("batch", batch), _positive("seq", seq), _positive("num_heads", num_heads)),
                       extrapolate)

    def mla_context_s(self, batch: int, seq_len: int, num_heads: int, dtype: str = "bf16",
                      kv_dtype: Optional[str] = None, *, extrapolate: bool = False) -> Optional[float]:
        """DeepSeek-V3-style multi-head latent attention, prefill, ``num_heads`` per GPU (128 / TP),
        in seconds; log-trilinear in (batch, seq_len, num_heads)."""
        return self._mla("context_mla", batch, seq_len, num_heads, dtype, kv_dtype, extrapolate)

    def mla_generation_s(self, batch: int, kv_len: int, num_heads: int, dtype: str = "bf16",
                         kv_dtype: Optional[str] = None, *, extrapolate: bool = False) -> Optional[float]:
        """MLA decode step with ``kv_len`` cached tokens per sequence, in seconds."""
        return self._mla("generation_mla", batch, kv_len, num_heads, dtype, kv_dtype, extrapolate)

    def moe_s(self, num_tokens: int, hidden_size: int, inter_size: int, topk: int, num_experts: int,
              dtype: str = "bf16", tp_size: int = 1, ep_size: int = 1, distribution: str = "balanced", *,
              extrapolate: bool = False) -> Optional[float]:
        """One MoE expert block (routing-sorted grouped GEMMs up/gate + down) for ``num_tokens``
        tokens on one GPU, in seconds, for a measured model configuration: (hidden_size,
        inter_size, topk, num_experts, tp_size, ep_size, distribution of tokens over experts:
        balanced, power_law_1.01, power_law_1.2) must match a table key exactly; log-linear
        in num_tokens. None for configurations not measured."""
        t = self._op("moe")
        if t is None:
            return None
        key = (_dtype(MOE_DTYPES, dtype, "dtype"), int(hidden_size), int(inter_size), int(topk), int(num_experts),
               int(tp_size), int(ep_size), str(distribution))
        g = t.grid(key)
        if g is None:
            return None
        return g.query((_positive("num_tokens", num_tokens),), extrapolate)

    def moe_configs(self, dtype: Optional[str] = None) -> list[tuple]:
        """The measured MoE keys (dtype, hidden, inter, topk, experts, tp, ep, distribution)."""
        t = self._op("moe")
        if t is None:
            return []
        want = _dtype(MOE_DTYPES, dtype, "dtype") if dtype else None
        return sorted(k for k in t.grids if want is None or k[0] == want)

    def nccl_s(self, op: str, message_bytes: float, num_gpus: int, dtype: str = "bf16", *,
               extrapolate: bool = False) -> Optional[float]:
        """An NCCL collective inside one node (nccl-tests, out-of-place), in seconds.
        ``message_bytes``: the whole buffer as nccl-tests sizes it (all_reduce: the reduced
        tensor; all_gather: the gathered output; reduce_scatter: the full input; alltoall: each
        rank's send buffer). Log-log interpolation in bytes per (op, dtype, num_gpus in {2, 4, 8}
        as measured; 4 on GB200/GB300 nodes); 1 GPU takes 0 s. ``extrapolate``: flat below the
        smallest message (the latency floor), ∝ bytes above the largest (bandwidth-bound)."""
        if op not in NCCL_OPS:
            raise InputError("op", f"must be one of {', '.join(NCCL_OPS)}, got {op!r}")
        n = _positive_int("num_gpus", num_gpus)
        if n == 1:
            return 0.0
        t = self._op("nccl")
        if t is None:
            return None
        name, size = _dtype(NCCL_DTYPES, dtype, "dtype")
        g = t.grid((op, name, n))
        if g is None:
            return None
        return g.query((_positive("message_bytes", message_bytes) / size,), extrapolate)

    def custom_allreduce_s(self, message_bytes: float, num_gpus: int, *, extrapolate: bool = False) -> Optional[float]:
        """The serving framework's own bf16 all-reduce (TRT-LLM / vLLM / SGLang custom kernels,
        CUDA graph), in seconds, for a ``message_bytes`` bf16 tensor on ``num_gpus`` GPUs."""
        n = _positive_int("num_gpus", num_gpus)
        if n == 1:
            return 0.0
        t = self._op("custom_allreduce")
        if t is None:
            return None
        g = t.grid(("bfloat16", n))
        if g is None:
            return None
        return g.query((_positive("message_bytes", message_bytes) / 2.0,), extrapolate)


def _build_attention(path: Path, op: str, system: str, backend: str, seq_col: str) -> OpTable:
    """Attention rows keyed by (attn dtype, kv dtype, head_dim, window, KV-head group) where the
    group is the KV-head count for GQA/MQA and 0 for MHA (num_kv_heads == num_heads); the grid
    axes are (batch, seq, num_heads). Holes (the collector skips batch*seq beyond its limits)
    are filled along batch with time ∝ batch and count as extrapolation."""
    cols = _read_columns(path, ("attn_dtype", "kv_cache_dtype", "head_dim", "window_size", "num_heads",
                                "num_key_value_heads", "batch_size", seq_col, "kernel_source", "device", "latency"),
                         {"window_size": 0, "kernel_source": "default", "device": ""})
    h = np.asarray(cols["num_heads"], dtype=np.int64)
    kv = np.asarray(cols["num_key_value_heads"], dtype=np.int64)
    group = np.where(kv == h, 0, kv)
    keys = list(zip(cols["attn_dtype"].tolist(), cols["kv_cache_dtype"].tolist(),
                    np.asarray(cols["head_dim"], dtype=np.int64).tolist(),
                    np.asarray(cols["window_size"], dtype=np.int64).tolist(), group.tolist(),
                    cols["kernel_source"].tolist()))
    groups: dict = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    chosen: dict = {}
    for key, rows in groups.items():
        if key[:-1] not in chosen or len(rows) > len(groups[chosen[key[:-1]]]):
            chosen[key[:-1]] = key
    lat_s = np.asarray(cols["latency"], dtype=float) * MS_TO_S
    b = np.asarray(cols["batch_size"], dtype=float)
    s = np.asarray(cols[seq_col], dtype=float)
    hf = h.astype(float)
    grids, kernels = {}, {}
    for base, key in chosen.items():
        idx = np.asarray(groups[key])
        idx = idx[(lat_s[idx] > 0) & (s[idx] > 0)]
        if not len(idx):
            continue
        grids[base] = LogGrid.from_points([b[idx], s[idx], hf[idx]], lat_s[idx],
                                          names=("batch_size", seq_col, "num_heads"),
                                          up_power=(1.0, 2.0 if op == "context_attention" else 1.0, 1.0),
                                          fill_axis=0)
        kernels[base] = key[-1]
    device = str(cols["device"][0]) if len(cols["device"]) else ""
    prov = _provenance(system, backend, path.parent.name, op.replace("_", " "), path, device, set(kernels.values()))
    return OpTable(op=op, path=str(path), provenance=prov, grids=grids, kernels=kernels)
