"""Serving precisions: how weights and the KV cache are stored and which tensor-core rate the matmuls run at
(docs/serving.md, "Precisions").

A weight format names bytes per weight *including* its quantization scales, and the dtype its matmuls compute
in when the device has that rate; a device without it runs the format weight-only (dequantize, compute in 16
bits), which is what vLLM's Marlin kernels do for fp8/int4 on Ampere and what TensorRT-LLM does for int4 AWQ.
Embeddings and the LM head stay 16-bit under every quantized format (ModelOpt, AWQ and GPTQ leave lm_head
unquantized by default).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class WeightFormat:
    name: str
    bytes_per_weight: float  # stored bytes per weight, scales included
    compute_dtype: str  # tensor-core rate the matmuls run at when the device has it (else 16-bit)
    source: str


WEIGHT_FORMATS = {f.name: f for f in (
    WeightFormat("fp32", 4.0, "fp32", "IEEE fp32"),
    WeightFormat("bf16", 2.0, "bf16", "bfloat16"),
    WeightFormat("fp16", 2.0, "fp16", "IEEE half"),
    WeightFormat("fp8", 1.0, "fp8", "FP8 E4M3 weights and activations (W8A8), per-tensor scales (ModelOpt / "
                 "vLLM fp8); weight-only on devices without fp8 tensor cores"),
    WeightFormat("int8", 1.0 + 2.0 / 4096, "bf16", "int8 weight-only (W8A16), one fp16 scale per output channel "
                 "of ~4096 weights; computes in 16 bits"),
    WeightFormat("int4", 0.5 + 2.0 / 128, "bf16", "4-bit weight-only (AWQ / GPTQ, group size 128: one fp16 scale "
                 "per 128 weights); computes in 16 bits"),
    WeightFormat("fp4", 0.5 + 1.0 / 16, "fp4", "NVFP4: E2M1 values with one FP8 scale per 16 (NVIDIA Blackwell "
                 "technical brief); W4A4 on fp4 tensor cores, weight-only elsewhere"),
    WeightFormat("mxfp4", 0.5 + 1.0 / 32, "fp4", "MXFP4 (OCP microscaling): E2M1 values with one E8M0 scale per "
                 "32; fp4 tensor cores where present, weight-only elsewhere"),
)}

# bytes per cached K or V element; fp4 KV = NVFP4 with its per-16 FP8 scale
KV_FORMATS = {"fp32": 4.0, "bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "int8": 1.0, "int4": 0.5, "fp4": 0.5 + 1.0 / 16}


@dataclass(frozen=True)
class ServingPrecision:
    """Weights, activations and KV cache of one served model on one device.

    ``weight_bytes``: bytes per quantized (matmul) weight; ``dense_bytes``: embeddings, LM head, norms (16-bit;
    4 under fp32); ``act_bytes``: activations between kernels; ``kv_bytes``: per cached element;
    ``compute_dtype``: the peak the linear layers run at; ``attention_dtype``: the peak of attention's matmuls
    (fp8 when the KV cache is fp8 and the device has fp8: FlashAttention-3 / TRT-LLM fp8 FMHA)."""

    weights: str
    kv_cache: str
    weight_bytes: float
    dense_bytes: float
    act_bytes: float
    kv_bytes: float
    compute_dtype: str
    attention_dtype: str

    def to_dict(self) -> dict:
        return {"weights": self.weights, "kv_cache": self.kv_cache, "weight_bytes": self.weight_bytes,
                "kv_bytes": self.kv_bytes, "compute_dtype": self.compute_dtype,
                "attention_dtype": self.attention_dtype}


def _has_rate(hw, dtype: str) -> bool:
    return dtype in getattr(hw, "peak_flops_per_s", {})


def serving_precision(weights: str, kv_cache: str | None, hw) -> ServingPrecision:
    """Resolve a weight format and KV-cache format on a device. ``kv_cache`` None: 16-bit (fp32 under fp32)."""
    if weights not in WEIGHT_FORMATS:
        raise InputError("precision", f"must be one of {', '.join(WEIGHT_FORMATS)}, got {weights!r}")
    fmt = WEIGHT_FORMATS[weights]
    kv = kv_cache or ("fp32" if weights == "fp32" else "bf16")
    if kv not in KV_FORMATS:
        raise InputError("kv_cache_precision", f"must be one of {', '.join(KV_FORMATS)}, got {kv!r}")
    base16 = "bf16" if _has_rate(hw, "bf16") or not _has_rate(hw, "fp16") else "fp16"
    if weights == "fp32":
        compute, dense, act = "fp32", 4.0, 4.0
    else:
        compute = fmt.compute_dtype if _has_rate(hw, fmt.compute_dtype) else base16
        dense, act = 2.0, 2.0
    attn = "fp8" if kv in ("fp8", "fp4") and _has_rate(hw, "fp8") else ("fp32" if weights == "fp32" else base16)
    return ServingPrecision(weights=weights, kv_cache=kv, weight_bytes=fmt.bytes_per_weight, dense_bytes=dense,
                            act_bytes=act, kv_bytes=KV_FORMATS[kv], compute_dtype=compute, attention_dtype=attn)
