"""Every op of a serving iteration priced from measured per-op tables (``costmodel.measured``: NVIDIA
aiconfigurator-core's latencies for one backend on one device), the roofline per op where the tables do not
cover it, and a count of which ops came from where (docs/serving.md, "Measured tables").

One iteration on one device of one pipeline stage (``StepModel``: T = decode rows x rows per decode + prompt
rows; ``Ls`` layers of which ``Lf`` attend to every cached token and ``Lw`` to a sliding window):

    GEMMs           Ls x sum over the engine's fused GEMMs (qkv, o, gate_up, down, router) gemm(T, n, k, dtype)
                    + LM head gemm(n_logits, V / tp, h, bf16)
    MoE experts     Ls x the fused MoE op moe(tokens routed to this rank's experts, h, f, k, E, moe_tp, ep)
                    where the table measured that model configuration; else its grouped GEMMs: every touched
                    expert runs gemm(rows, 2f / moe_tp, h) + gemm(rows, h, f / moe_tp), rows = T k / touched
    decode attn     Lf x generation_attention(batch = n_dec, kv_len = ctx / n_dec)  (+ Lw at ctx_win / n_dec);
                    MLA models (DeepSeek-V3's latent shape) read generation_mla / context_mla with H / tp heads
    prefill attn    Lf x context_attention(batch = n_eq, seq = s_eq)  (+ Lw at the windowed sum), where
                    s_eq = 2 pre_attn / pre_tok and n_eq = pre_tok / s_eq: the causal prefills with the same
                    query rows and the same (query, key) pairs as the iteration's chunks (a chunk of c tokens
                    after p cached ones has c p + c^2 / 2 pairs, a prefill of s tokens s^2 / 2)
    all-reduce      2 Ls x the backend's custom all-reduce of T h a bytes over tp GPUs, else NCCL all_reduce
    all-to-all      2 Ls x NCCL alltoall of T k h a bytes over ep GPUs (attention data parallelism)
    elementwise     roofline (no table): T x the elementwise bytes of a token / (bandwidth x efficiency)
    pipeline send   roofline (no table)

Batches below one (an average of 0.3 prompts per iteration) cost that fraction of a batch of one. Each lookup
is first answered inside the measured grid ("table"), else by the tables' documented extrapolation rules
(time grows as the work beyond the largest measured size, collectives flat below the smallest message:
"extrapolated"), else by the roofline of that op ("roofline"), and is counted under that source. Lookups are
vectorised (the simulator prices thousands of iterations at once) and memoised per shape.
"""

from __future__ import annotations

import contextlib
from collections import Counter, defaultdict

import numpy as np

from ..collectives import p2p_s
from ..errors import InputError
from .ops import RooflineOps

SOURCES = ("table", "extrapolated", "roofline")
SMALL_ARRAY = 16  # arrays up to this size are looked up point by point through the memo
MEMO_MAX = 200_000  # memoised points per MeasuredOps (a long simulation meets new context lengths every iteration)
TABLE, EXTRAPOLATED, ROOFLINE = 0, 1, 2

# How tokens spread over experts in the measured MoE op: aiconfigurator's own default for decode steps
# (power law, alpha 1.2: a few experts get most tokens); "balanced" where that distribution was not measured.
MOE_DISTRIBUTIONS = ("power_law_1.2", "balanced")

# serving weight format (with the dtype its matmuls compute in) -> the GEMM table's dtype; None: no table
# (fp8 weight-only on devices without fp8, mxfp4 and fp32 have no measured GEMMs; fp16 reads bf16's)
_GEMM_DTYPE = {("bf16", "bf16"): "bfloat16", ("fp16", "bf16"): "bfloat16", ("fp16", "fp16"): "bfloat16",
               ("bf16", "fp16"): "bfloat16", ("fp8", "fp8"): "fp8", ("fp4", "fp4"): "nvfp4",
               ("int8", "bf16"): "int8_wo", ("int8", "fp16"): "int8_wo", ("int4", "bf16"): "int4_wo",
               ("int4", "fp16"): "int4_wo"}
_MOE_DTYPE = {"bfloat16": "bfloat16", "fp8": "fp8", "nvfp4": "nvfp4", "int4_wo": "int4_wo"}
_ATTN_DTYPE = {"bf16": "bfloat16", "fp16": "bfloat16", "fp8": "fp8"}
ENGINE_FUSIONS = (("qkv", ("q", "k", "v")), ("gate_up", ("gate", "up")))
# Collective tables are used only between GPUs joined by NVLink / NVSwitch: that fabric belongs to the GPU board, so
# the collector's all-reduce times carry over to another server. Between PCIe-only GPUs (L40S, RTX PRO 6000 Server:
# intra-node links up to PCIe Gen5 x16, 64 GB/s per direction) they measure the collector's own PCIe switches and
# sockets: the L40S table's 4-GPU all-reduce of 16 MB takes 4.8 ms (3.3 GB/s), several times what a server with
# the GPUs under one PCIe switch reaches; there the roofline of the catalog link is used instead.
PCIE_MAX_BYTES_PER_S = 64e9


# The MLA tables measured DeepSeek-V3's latent attention only (aiconfigurator-core's collector: kv_lora_rank 512,
# qk_nope 128 + qk_rope 64 query/key dims, v 128), per GPU head count; another MLA shape falls back to the roofline.
MLA_MEASURED_DIMS = {"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 128}


def mla_of(spec):
    """The spec's multi-head latent attention mixer (specs.blocks.MLA: DeepSeek-V2/V3, Kimi K2), or None."""
    from ..specs.blocks import MLA

    return next((b.mixer for b in getattr(spec, "blocks", ()) if isinstance(b.mixer, MLA)), None)


def fused_gemms(local_gemms, layers=None) -> list[tuple[str, float, float, float]]:
    """The GEMMs as serving engines launch them, with the layers each runs in: q/k/v as one qkv GEMM and gate/up
    as one gate_up GEMM (TensorRT-LLM, vLLM and SGLang fuse both; same input, outputs concatenated). A decoder
    whose layers differ (``layers``: per GEMM, serving/shape.py) fuses runs of consecutive GEMMs of the same
    layers (q_proj, k_proj, v_proj -> qkv; gate_proj, up_proj -> gate_up)."""
    layers = list(layers) if layers is not None else [1.0] * len(local_gemms)
    names = [name[:-5] if name.endswith("_proj") else name for name, _, _ in local_gemms]
    out, i = [], 0
    while i < len(local_gemms):
        for fused, parts in ENGINE_FUSIONS:
            j = i + len(parts)
            if tuple(names[i:j]) == parts and len(set(layers[i:j])) == 1 and \
                    len({local_gemms[x][2] for x in range(i, j)}) == 1:
                out.append((fused, sum(local_gemms[x][1] for x in range(i, j)), local_gemms[i][2], layers[i]))
                i = j
                break
        else:
            name, n, k = local_gemms[i]
            out.append((name, n, k, layers[i]))
            i += 1
    return out


PER_EXPERT_GEMMS_UP_TO = 16  # experts priced as separate measured GEMMs outside the fused-MoE tables


class MeasuredOps(RooflineOps):
    """Op times of one backend's measured tables on one device; the roofline of the engine profile per op where
    they do not cover it. ``counts``: lookups per (op, source) since creation; ``recording()`` collects the
    seconds per op and source of the iterations priced inside it."""

    name = "measured"

    def __init__(self, hw, engine, prec, tables, backend: str):
        super().__init__(hw, engine, prec)
        self.tables = tables
        self.backend = backend
        self.counts: Counter = Counter()
        self._grids: dict = {}
        self._memo: dict = {}
        self._rec = None
        self.nvlink = getattr(hw, "intra_node_bandwidth_bytes_per_s", 0.0) > PCIE_MAX_BYTES_PER_S

    # ---- provenance ------------------------------------------------------------------------------------------
    @property
    def provenance(self) -> str:
        """One line: "measured (aiconfigurator-core 0.12.0, trtllm 1.3.0rc20 tables, h200_sxm)"."""
        from ..measured.files import current_version, package_version

        version = current_version(self.tables.system, self.backend) or "?"
        return (f"measured (aiconfigurator-core {package_version()}, {self.backend} {version} tables, "
                f"{self.tables.system})")

    def provenances(self) -> dict:
        """Each op table's own provenance line (version, kernel, GPU, collection tier), None where not shipped."""
        return {op: self.tables.provenance(op) for op in ("gemm", "context_attention", "generation_attention",
                                                          "context_mla", "generation_mla", "moe", "custom_allreduce",
                                                          "nccl")}

    @contextlib.contextmanager
    def recording(self):
        """Collect {op: [table s, extrapolated s, roofline s]} and lookups of the iterations priced inside."""
        rec = {"seconds": defaultdict(lambda: [0.0, 0.0, 0.0]), "lookups": Counter()}
        prev, self._rec = self._rec, rec
        try:
            yield rec
        finally:
            self._rec = prev

    # ---- lookups -------------------------------------------------------------------------------------------
    def _grid(self, op: str, key: tuple):
        ck = (op, key)
        if ck not in self._grids:
            table = self.tables.table(op)
            self._grids[ck] = table.grid(key) if table is not None else None
        return self._grids[ck]

    def _query_scalar(self, op: str, key: tuple, g, point: tuple):
        mk = (op, key, point)
        hit = self._memo.get(mk)
        if hit is None:
            if g is None:
                hit = (float("nan"), ROOFLINE)
            else:
                v = g.query(point, False)
                hit = (v, TABLE) if v is not None else (g.query(point, True), EXTRAPOLATED)
                if hit[0] is None:
                    hit = (float("nan"), ROOFLINE)
            if len(self._memo) < MEMO_MAX:
                self._memo[mk] = hit
        return hit

    def _query(self, op: str, key: tuple, coords: tuple):
        """(seconds, source code) from the grid of ``key``: NaN and ROOFLINE where neither the grid nor its
        extrapolation covers a point. Scalars, and the points of small arrays (the simulator's few candidate
        batches), are memoised; large arrays go through the vectorised grid query."""
        g = self._grid(op, key)
        if all(np.ndim(c) == 0 for c in coords):
            return self._query_scalar(op, key, g, tuple(float(c) for c in coords))
        arrays = np.broadcast_arrays(*[np.asarray(c, dtype=float) for c in coords])
        shape = arrays[0].shape
        if g is None:
            return np.full(shape, np.nan), np.full(shape, ROOFLINE)
        if arrays[0].size <= SMALL_ARRAY:
            hits = [self._query_scalar(op, key, g, pt) for pt in zip(*(a.ravel().tolist() for a in arrays))]
            t = np.array([h[0] for h in hits], dtype=float).reshape(shape)
            return t, np.array([h[1] for h in hits]).reshape(shape)
        t = g.query_many(coords, False)
        code = np.where(np.isnan(t), ROOFLINE, TABLE)
        if (code == ROOFLINE).any():
            t2 = g.query_many(coords, True)
            code = np.where((code == ROOFLINE) & ~np.isnan(t2), EXTRAPOLATED, code)
            t = np.where(np.isnan(t), t2, t)
        return t, code

    def _price(self, op: str, key, coords, roofline, scale=1.0, active=True, times=1.0, table: str = ""):
        """``scale`` x the table time of ``coords`` where ``active`` (a mask or bool), else 0; the roofline
        (a function of no arguments, the op's whole time) where the table has no answer; x ``times`` (layers,
        experts). Looked up in ``table`` (default: ``op``); counted and recorded under ``op``."""
        if key is None:
            t, code = np.nan, ROOFLINE
        else:
            t, code = self._query(table or op, key, coords)
        t = scale * np.asarray(t, dtype=float)
        if np.any(np.asarray(code) == ROOFLINE):
            t = np.where(np.asarray(code) == ROOFLINE, roofline(), t)
        t = np.where(active, t, 0.0) * times
        if t.ndim == 0:
            t = float(t)
        codes = np.broadcast_to(np.asarray(code), np.shape(t))
        act = np.broadcast_to(np.asarray(active, dtype=bool), np.shape(t))
        for src in (TABLE, EXTRAPOLATED, ROOFLINE):
            sel = act & (codes == src)
            n = int(sel.sum())
            if n:
                self.counts[(op, SOURCES[src])] += n
                if self._rec is not None:
                    self._rec["lookups"][(op, SOURCES[src])] += n
                    self._rec["seconds"][op][src] += float(np.sum(np.where(sel, t, 0.0)))
        return t

    def _roofline(self, op: str, t):
        """An op with no table: its roofline time, counted and recorded as such."""
        n = int(np.size(t))
        self.counts[(op, "roofline")] += n
        if self._rec is not None:
            self._rec["lookups"][(op, "roofline")] += n
            self._rec["seconds"][op][ROOFLINE] += float(np.sum(t))
        return t

    # ---- primitives ----------------------------------------------------------------------------------------
    def gemm_s(self, m, n, k, dtype, *, op: str = "gemm", weights: str | None = None, times=1.0):
        """``y[m, n] = x[m, k] W^T`` with weights in ``weights`` (default: the served format when ``dtype`` is
        its compute dtype, else 16-bit); 0 for m = 0, m below one row costs one row."""
        w = weights or (self.prec.weights if dtype == self.prec.compute_dtype else "bf16")
        table_dtype = _GEMM_DTYPE.get((w, dtype))
        rows = np.maximum(m, 1.0)
        return self._price(op, (table_dtype,) if table_dtype else None, (rows, float(n), float(k)),
                           lambda: RooflineOps.gemm_s(self, rows, n, k, dtype), active=np.asarray(m) > 0, times=times,
                           table="gemm")

    def allreduce_s(self, nbytes, n: int, link, times=1.0):
        """The backend's custom all-reduce, else NCCL's all_reduce table, else the roofline (alpha-beta)."""
        if n <= 1:
            return 0.0 * nbytes
        elems = np.asarray(nbytes, dtype=float) / 2.0  # the tables measured bf16 / fp16 messages
        if not self.nvlink:
            return self._roofline("allreduce_pcie", RooflineOps.allreduce_s(self, nbytes, n, link) * times)
        if self._grid("custom_allreduce", ("bfloat16", n)) is not None:
            op, key = "custom_allreduce", ("bfloat16", n)
        else:
            op, key = "nccl", ("all_reduce", "half", n)
        return self._price(op, key, (elems,), lambda: RooflineOps.allreduce_s(self, nbytes, n, link),
                           active=np.asarray(nbytes) > 0, times=times)

    def alltoall_s(self, nbytes, n: int, link, times=1.0):
        if n <= 1:
            return 0.0 * nbytes
        elems = np.asarray(nbytes, dtype=float) / 2.0
        if not self.nvlink:
            return self._roofline("alltoall_pcie", RooflineOps.alltoall_s(self, np.asarray(nbytes, dtype=float), n,
                                                                          link) * times)
        return self._price("nccl", ("alltoall", "half", n), (elems,),
                           lambda: RooflineOps.alltoall_s(self, np.asarray(nbytes, dtype=float), n, link),
                           active=np.asarray(nbytes) > 0, times=times)

    def _attention_key(self, sm):
        p, s = self.prec, sm.shape
        kv = _ATTN_DTYPE.get(p.kv_cache)
        math_dtype = _ATTN_DTYPE.get(p.attention_dtype)
        heads, kv_heads = sm.heads_local, max(round(s.kv_heads / sm.tp), 1) if sm.tp > 1 else s.kv_heads
        if kv is None or math_dtype is None or not kv_heads or heads != int(heads) or int(heads) % kv_heads:
            return None, heads, kv_heads
        group = 0 if kv_heads == heads else kv_heads
        return (math_dtype, kv, s.head_dim, 0, group), heads, kv_heads

    def _mla_key(self, sm, mla):
        """(table key, heads per GPU, None) of the MLA tables for this spec, or (None, ...) where they do not
        cover it (another latent shape, a dtype without a table)."""
        p = self.prec
        kv, math_dtype = _ATTN_DTYPE.get(p.kv_cache), _ATTN_DTYPE.get(p.attention_dtype)
        heads = mla.heads / sm.tp
        dims_ok = all(getattr(mla, k) == v for k, v in MLA_MEASURED_DIMS.items())
        if kv is None or math_dtype is None or not dims_ok or heads != int(heads):
            return None, heads, None
        return (math_dtype, kv), heads, None

    def _attention(self, op, sm, batch, seq, layers, roofline, key_heads):
        key, heads, _ = key_heads
        if key is not None and self._grid(op, key) is None:  # a decode kernel measured with the other math dtype
            alt = (("bfloat16" if key[0] == "fp8" else "fp8"),) + key[1:]
            key = alt if self._grid(op, alt) is not None else key
        b = np.asarray(batch, dtype=float)
        active = b > 0
        seq = np.where(active, seq, 1.0)
        return self._price(op, key, (np.maximum(b, 1.0), np.maximum(seq, 1.0), float(heads)), roofline,
                           scale=np.minimum(b, 1.0), active=active, times=layers)

    def _moe_s(self, sm, T, mx, layers):
        """``layers`` MoE layers: the fused op where measured, else its GEMMs (up to ``PER_EXPERT_GEMMS_UP_TO``
        experts, e.g. Mixtral's 8), else the roofline."""
        s, lay, p = sm.shape, sm.layout, self.prec
        routed = T * lay.ep if lay.attention_dp else T
        dtype = _GEMM_DTYPE.get((p.weights, p.compute_dtype))
        moe_dtype = _MOE_DTYPE.get(dtype or "")
        if moe_dtype is not None:
            for dist in MOE_DISTRIBUTIONS:
                key = (moe_dtype, s.hidden, s.ffn, s.top_k, s.num_experts, sm.moe_tp, lay.ep, dist)
                if self._grid("moe", key) is not None:
                    return self._price("moe", key, (np.maximum(routed, 1.0),), lambda: sm.moe_roofline_s(T, mx),
                                       active=np.asarray(routed) > 0, times=layers)
        from ..layers import expected_experts

        if s.num_experts > PER_EXPERT_GEMMS_UP_TO:
            # engines run many small experts as one grouped GEMM; one measured GEMM launch per expert would charge
            # each its own fixed latency (gpt-oss-120b on B200: 54 ms of "expert GEMMs" for a 12 ms step)
            return self._roofline("moe", layers * sm.moe_roofline_s(T, mx))
        touched = expected_experts(s.num_experts, s.top_k, routed) / lay.ep
        rows = np.where(touched > 0, routed * s.top_k / lay.ep / np.maximum(touched, 1e-9), 0.0)
        gated = s.expert_params == 3 * s.hidden * s.ffn
        up = (2 if gated else 1) * s.ffn / sm.moe_tp
        return self.gemm_s(rows, up, s.hidden, p.compute_dtype, op="moe_gemm", times=layers * touched) + \
            self.gemm_s(rows, s.hidden, s.ffn / sm.moe_tp, p.compute_dtype, op="moe_gemm", times=layers * touched)

    # ---- the iteration ---------------------------------------------------------------------------------------
    def device_s(self, sm, *, T, n_dec, ctx, pre_tok, pre_attn, pre_kv, n_logits, ctx_win, pre_attn_win,
                 rows_per_decode=1):
        """Device seconds of one iteration on one device of the slowest stage (module docstring)."""
        arr = any(isinstance(x, np.ndarray) for x in (T, n_dec, ctx, pre_tok, pre_attn))
        mx = np.maximum if arr else max
        s, lay, p = sm.shape, sm.layout, self.prec
        Ls, Lf, Lw = sm.stage_layers, sm.full_layers, sm.window_layers
        gemms = getattr(sm, "_fused_gemms", None)
        if gemms is None:
            gemms = sm._fused_gemms = fused_gemms(sm.local_gemms, sm.local_gemm_layers)
        t = 0.0
        for name, n, k, layers in gemms:
            dt = "bf16" if name == "router" else p.compute_dtype
            t = t + self.gemm_s(T, n, k, dt, weights="bf16" if name == "router" else None, times=layers)
        t = t + self.gemm_s(n_logits, s.vocab / sm.tp, s.hidden, "bf16", op="lm_head", weights="bf16")
        if s.num_experts:
            t = t + self._moe_s(sm, T, mx, sm.moe_stage_layers)
        if not hasattr(sm, "_mla"):
            sm._mla = mla_of(sm.spec)
        mla = sm._mla
        heads = self._mla_key(sm, mla) if mla is not None else self._attention_key(sm)
        gen_op, ctx_op = ("generation_mla", "context_mla") if mla is not None else \
            ("generation_attention", "context_attention")
        nd = np.asarray(n_dec, dtype=float)
        safe = np.maximum(nd, 1e-9)
        if rows_per_decode == 1:
            for layers, c in ((Lf, ctx), (Lw, ctx_win)):
                if layers:
                    t = t + self._attention(gen_op, sm, nd, np.asarray(c) / safe, layers,
                                            lambda c=c: sm.decode_attention_roofline_s(np.asarray(c, dtype=float), 1, np.maximum),
                                            heads)
        else:  # speculative verification: k + 1 query rows per sequence; no table measured it
            t = t + self._roofline(gen_op,
                                   sm.decode_attention_roofline_s(Lf * ctx + Lw * ctx_win, rows_per_decode, mx))
        pt = np.asarray(pre_tok, dtype=float)
        for layers, pa in ((Lf, pre_attn), (Lw, pre_attn_win)):
            if layers:
                s_eq = np.where(pt > 0, 2.0 * np.asarray(pa, dtype=float) / np.maximum(pt, 1e-9), 0.0)
                n_eq = np.where(s_eq > 0, pt / np.maximum(s_eq, 1e-9), 0.0)
                t = t + self._attention(ctx_op, sm, n_eq, s_eq, layers,
                                        lambda pa=pa: sm.prefill_attention_roofline_s(
                                            np.asarray(pa, dtype=float), np.asarray(pre_kv, dtype=float), np.maximum),
                                        heads)
        t = t + self._roofline("elementwise", T * sm.ew_bytes_token / sm.byte_rate)
        if s.ssm_layers:  # Mamba-2 state and scan: no table measured them
            t = t + self._roofline("ssm", sm.ssm_decode_s(n_dec) + sm.ssm_prefill_s(pre_tok))
        if sm.tp > 1:
            t = t + self.allreduce_s(T * s.hidden * p.act_bytes, sm.tp, sm.link, times=2 * Ls)
        if lay.ep > 1 and lay.attention_dp:
            t = t + self.alltoall_s(T * s.top_k * s.hidden * p.act_bytes, lay.ep, sm.link, times=2 * Ls)
        if lay.pp > 1:
            t = t + self._roofline("pipeline_send", p2p_s(1.0, sm.pp_link) +
                                   T * s.hidden * p.act_bytes / sm.pp_link.bandwidth_bytes_per_s)
        return t


MEASURED_BACKENDS = {"tensorrt-llm": "trtllm", "vllm": "vllm", "sglang": "sglang"}


def measured_tables(hw, engine):
    """``((tables, backend), None)`` when measured tables exist for this engine on this device, else
    ``(None, why not)``. Reads ``costmodel.measured`` at call time (its ``available()`` says whether the
    optional extra is installed)."""
    backend = MEASURED_BACKENDS.get(engine.name)
    if backend is None:
        return None, (f"no measured tables for engine {engine.name} (they exist for "
                      f"{', '.join(MEASURED_BACKENDS)})")
    from .. import measured

    if not measured.available():
        return None, f"the measured tables are not installed: pip install costmodel[measured] ({measured.EXTRA_REQUIREMENT})"
    tables = measured.tables_for(getattr(hw, "id", ""), backend)
    if tables is None:
        why = measured.NO_TABLE.get(getattr(hw, "id", ""), "aiconfigurator-core measured no such device")
        return None, f"no measured {backend} tables for {getattr(hw, 'id', hw)} ({why})"
    return (tables, backend), None


def op_times(hw, engine, prec):
    """The op-time source an engine profile asks for: ``roofline``; ``measured`` (the tables of its backend on this
    device: a one-line InputError naming what is missing when there are none); ``auto`` (measured where they
    exist, else the roofline with the reason in ``.note``)."""
    if engine.time_source == "roofline":
        return RooflineOps(hw, engine, prec)
    found, why = measured_tables(hw, engine)
    if found is None:
        if engine.time_source == "measured":
            raise InputError("time_source", f"measured: {why}")
        ops = RooflineOps(hw, engine, prec)
        ops.note = f"auto: {why}"
        return ops
    return MeasuredOps(hw, engine, prec, *found)
