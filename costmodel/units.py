"""Unit constants. Internally everything is in base units: bytes, FLOPs, seconds, watts.

GiB = 2**30 bytes (what nvidia-smi and torch report as "GB"); GB = 1e9 bytes (what
vendors print on spec sheets). Names say which.
"""

KiB = 2**10
MiB = 2**20
GiB = 2**30
GB = 10**9
TB = 10**12
TFLOP = 10**12

# Bytes per element of each storage dtype. int4 is half a byte.
DTYPE_BYTES = {
    "fp32": 4.0,
    "tf32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
    "bool": 1.0,
}


def gib(n_bytes: float) -> float:
    return n_bytes / GiB
