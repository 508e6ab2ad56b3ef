"""Validated workload: the one place where ranges and combinations are checked.

Everything downstream (specs, estimator, CLI, pages) trusts a ``Workload``: if it
was constructed, its fields are in range. Errors are ``InputError(field, allowed)``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from .errors import InputError
from .validate import check_int as _check_int


@dataclass(frozen=True)
class Precision:
    """How each kind of tensor is stored for one precision setting (bytes per element).

    - ``weight_bytes``: trainable weights as held in memory (fp32 master under AMP).
    - ``frozen_weight_bytes``: weights that are not trained (quantized under int8/int4/fp8).
    - ``grad_bytes`` / ``state_bytes``: gradients and optimizer states (torch keeps states
      in the parameter dtype).
    - ``stream_bytes``: the residual stream and normalisation outputs. Under autocast
      these stay fp32 because embeddings and LayerNorm/RMSNorm produce fp32.
    - ``compute_bytes``: outputs of matmuls/convs (autocast casts them to 16-bit).
    - ``compute_dtype``: key into a hardware's peak FLOP/s table.
    - ``autocast``: matmul inputs are cast copies; each trainable matmul weight also gets a
      16-bit cast copy that lives until its backward (torch.autocast weight cache).
    - ``master_bytes``: an fp32 master copy of each trainable weight kept with the optimizer states (and
      sharded like them): the production "mixed" precisions, where the model itself runs in 16 bits.
    """

    name: str
    weight_bytes: float
    frozen_weight_bytes: float
    grad_bytes: float
    state_bytes: float
    stream_bytes: float
    compute_bytes: float
    compute_dtype: str
    autocast: bool = False
    weight_only_quant: bool = False
    description: str = ""
    master_bytes: float = 0.0


PRECISIONS: dict[str, Precision] = {
    p.name: p
    for p in [
        Precision("fp32", 4, 4, 4, 4, 4, 4, "fp32", description="everything in fp32"),
        Precision("amp-bf16", 4, 4, 4, 4, 4, 2, "bf16", autocast=True,
                  description="fp32 weights/grads/states, torch.autocast bf16 matmuls"),
        Precision("amp-fp16", 4, 4, 4, 4, 4, 2, "fp16", autocast=True,
                  description="fp32 weights/grads/states, torch.autocast fp16 matmuls + GradScaler"),
        Precision("bf16", 2, 2, 2, 2, 2, 2, "bf16", description="model cast to bf16 (.to(torch.bfloat16))"),
        Precision("fp16", 2, 2, 2, 2, 2, 2, "fp16", description="model cast to fp16"),
        Precision("fp8", 2, 1, 2, 2, 2, 1, "fp8",
                  description="fp8 matmuls (Transformer-Engine style); frozen weights stored in fp8, "
                              "trainable weights/grads/states in bf16"),
        # production training stacks (Megatron-LM, NeMo, FSDP MixedPrecision, torchtitan, llm-foundry): the model runs
        # in 16 bits (bf16 weights, activations and residual stream, no autocast copies), the optimizer keeps an fp32
        # master copy, fp32 gradients and fp32 states: 2 + 4 + 4 + 8 = 18 bytes per parameter with Adam
        # (Megatron's distributed optimizer; FSDP holds 16: its sharded fp32 parameter is the master)
        Precision("bf16-mixed", 2, 2, 4, 4, 2, 2, "bf16", master_bytes=4,
                  description="bf16 model (weights, activations, residual stream) with fp32 master weights, fp32 "
                              "gradients and fp32 optimizer states (Megatron --bf16, FSDP MixedPrecision bf16)"),
        Precision("fp8-mixed", 2, 1, 4, 4, 2, 2, "fp8", master_bytes=4,
                  description="bf16-mixed with fp8 GEMMs (Transformer Engine / torchao float8: inputs and weights cast "
                              "to fp8 per GEMM, bf16 outputs; attention stays bf16)"),
        Precision("fp4-mixed", 2, 0.5, 4, 4, 2, 2, "fp4", master_bytes=4,
                  description="bf16-mixed with fp4 GEMMs (NVFP4/MXFP4 training recipes on Blackwell; attention bf16)"),
        Precision("int8", 2, 1, 2, 2, 2, 2, "bf16", weight_only_quant=True,
                  description="linear weights stored int8 (weight-only, LLM.int8 / bitsandbytes), "
                              "compute in bf16"),
        Precision("int4", 2, 0.5, 2, 2, 2, 2, "bf16", weight_only_quant=True,
                  description="linear weights stored 4-bit (NF4/GPTQ-style, + fp16 scale per 64 weights), "
                              "compute in bf16"),
        # OCP Microscaling (MX) spec v1.0 (2023) and NVIDIA's NVFP4 (Blackwell, 2025): 4-bit E2M1 values with a
        # shared scale per block; matmuls run as fp4 where the device has fp4 tensor cores (catalog dtype "fp4",
        # falling back to fp8, then bf16, elsewhere) and write bf16 outputs
        Precision("nvfp4", 2, 0.5, 2, 2, 2, 2, "fp4",
                  description="NVFP4: frozen linear weights 4-bit E2M1 + one fp8 (E4M3) scale per 16 values + one fp32 "
                              "scale per tensor; fp4 matmuls with bf16 outputs; trainable weights/grads/states bf16"),
        Precision("mxfp4", 2, 0.5, 2, 2, 2, 2, "fp4",
                  description="MXFP4 (OCP MX): frozen linear weights 4-bit E2M1 + one 8-bit power-of-two (E8M0) scale "
                              "per 32 values; fp4 matmuls with bf16 outputs; trainable weights/grads/states bf16"),
    ]
}

# Bytes of quantization metadata per quantized weight: one fp16 scale per 64-weight block
# (bitsandbytes NF4 default blocksize 64; GPTQ/AWQ group size 128 would halve this); NVFP4 one fp8
# scale per 16 values (1/16 byte per weight); MXFP4 one E8M0 scale per 32 (1/32 byte per weight).
QUANT_SCALE_BYTES_PER_WEIGHT = {"int4": 2 / 64, "int8": 4 / 4096, "fp8": 0.0, "nvfp4": 1 / 16, "mxfp4": 1 / 32}
# Bytes of quantization metadata per weight matrix (per expert for MoE expert weights): NVFP4's
# second-level fp32 scale per tensor.
QUANT_SCALE_BYTES_PER_TENSOR = {"nvfp4": 4.0}
# Weights a checkpoint stores in a fixed format whatever the workload precision (``Layer.weight_format``;
# inference only: training dequantizes them): bytes per weight incl. block scales.
# gpt-oss ships its MoE expert weights as MXFP4 (4-bit values + one E8M0 scale per 32).
WEIGHT_FORMAT_BYTES = {"mxfp4": 0.5 + 1 / 32}


@dataclass(frozen=True)
class Optimizer:
    """Optimizer state per trainable parameter.

    ``states_per_param``: number of full-size state tensors (in ``Precision.state_bytes``).
    ``fixed_bytes_per_param``: states with a fixed width regardless of precision (8-bit Adam).
    ``factored``: Adafactor keeps row+column statistics for each matrix instead of a full tensor.
    ``step_temp_per_param``: full-size temporaries the optimizer step allocates (torch's
    foreach Adam materialises sqrt(v) for all parameters at once).
    """

    name: str
    states_per_param: float
    fixed_bytes_per_param: float = 0.0
    factored: bool = False
    step_temp_per_param: float = 0.0
    source: str = ""


OPTIMIZERS: dict[str, Optimizer] = {
    o.name: o
    for o in [
        Optimizer("sgd", 0, source="torch.optim.SGD, momentum=0: no state"),
        Optimizer("sgd-momentum", 1, source="torch.optim.SGD momentum buffer: 1 tensor per param"),
        Optimizer("adam", 2, step_temp_per_param=1, source="torch.optim.Adam exp_avg + exp_avg_sq; "
                  "foreach step allocates sqrt(exp_avg_sq)"),
        Optimizer("adamw", 2, step_temp_per_param=1, source="torch.optim.AdamW exp_avg + exp_avg_sq; "
                  "foreach step allocates sqrt(exp_avg_sq)"),
        Optimizer("adafactor", 0, factored=True, source="Shazeer & Stern 2018; transformers Adafactor "
                  "(beta1=None): row + column second-moment vectors per matrix, full vector for 1-D params"),
        Optimizer("adamw-8bit", 0, fixed_bytes_per_param=2.0 + 8 / 2048, source="bitsandbytes AdamW8bit: "
                  "two uint8 states + one fp32 absmax per 2048-element block for each state"),
        Optimizer("rmsprop", 1, step_temp_per_param=1, source="torch.optim.RMSprop (momentum=0, centered=False, "
                  "the default; Keras' RMSprop likewise): square_avg, 1 tensor per param; the foreach step "
                  "allocates sqrt(square_avg) for all params (Hinton, Coursera lecture 6e, 2012)"),
        Optimizer("lamb", 2, source="LAMB (You et al. 2020, arXiv:1904.00962): Adam's exp_avg + exp_avg_sq per "
                  "param and one trust ratio per tensor (negligible); torch-optimizer Lamb and apex FusedLAMB form "
                  "the update one tensor (or chunk) at a time, so no full-size temporary"),
    ]
}

# activation checkpointing: off, full (each block keeps its input, recomputes its forward) or "selective" (per op:
# matmul and attention outputs kept, "every second mm" recomputed; torchtitan's selective_ac_option "op")
CHECKPOINTING = {False: False, True: True, "none": False, "off": False, "full": True, "on": True,
                 "selective": "selective"}


def checkpointing(value, field: str = "grad_checkpointing"):
    """The one reading of a checkpointing setting: False, True (full) or "selective"; 0/1 and the names "none",
    "full", "selective" are accepted (a CLI value, a scenario file)."""
    key = value.strip().lower() if isinstance(value, str) else value
    if isinstance(key, float) or (not isinstance(key, (bool, int, str))):
        key = None
    if isinstance(key, int) and not isinstance(key, bool) and key in (0, 1):
        key = bool(key)
    if key not in CHECKPOINTING:
        raise InputError(field, f"must be true (full), false or 'selective' (per-op, as torchtitan), got {value!r}")
    return CHECKPOINTING[key]


TASKS = ("train", "infer")
DEFAULT_OPTIMIZER = "adamw"  # the field's default; for inference it means "none" (inference runs no optimizer)
# the one rule for training-only settings with task infer: refused, with the reason (costmodel.workload, CLI, pages)
TRAINING_ONLY = {
    "optimizer": "is a training setting (the optimizer updates weights after backward)",
    "grad_checkpointing": "is a training setting (it recomputes activations that backward would need)",
    "lora_rank": "is a training setting (LoRA trains adapters; to serve a LoRA model, merge them and estimate the "
                 "base model)",
    "bitfit": "is a training setting (BitFit trains the biases only)",
}
SPARSITY_PATTERNS = ("unstructured", "2:4")
# 2:4 metadata: 2 bits per kept weight (its position in the group of 4) = 0.125 bytes per original weight
SPARSE_2_4_META_BYTES = 0.125
ATTENTION_IMPLS = ("fused", "eager")
KV_CACHE_LAYOUTS = ("engine", "hf")

_LIMITS = {
    "batch": (1, 1 << 24),
    "seq": (1, 1 << 24),
    "image_size": (8, 16384),
    "prompt": (1, 1 << 24),
    "generate": (0, 1 << 24),
    "lora_rank": (0, 65536),
}


@dataclass(frozen=True)
class Workload:
    """What is run: task, shapes, precision, optimizer and fine-tuning method.

    ``seq`` is tokens per sample in training (and the sequence length for encoders);
    for inference of decoders ``prompt`` and ``generate`` are used instead.
    ``image_size`` applies to vision models.
    """

    task: str = "train"
    batch: int = 1
    seq: int = 2048
    image_size: int = 224
    prompt: int = 512
    generate: int = 128
    precision: str = "amp-bf16"
    optimizer: str = DEFAULT_OPTIMIZER
    grad_checkpointing: bool | str = False  # False, True (full) or "selective" (costmodel.workload.checkpointing)
    lora_rank: int = 0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")
    bitfit: bool = False
    sparsity: float = 0.0
    attention: str = "fused"
    dropout: bool | None = None  # None: as the model config says
    kv_cache_precision: str | None = None  # None: the compute dtype
    # "unstructured": pruned weights stay in dense tensors (dense kernels: no memory or time saved);
    # "2:4": NVIDIA/AMD structured sparsity, 2 of every 4 weights kept, compressed, on sparse tensor cores
    sparsity_pattern: str = "unstructured"
    # what a KV cache holds (docs/families/moe_mla_ssm.md): "engine" = what serving engines keep (vLLM, SGLang,
    # TensorRT-LLM: MLA's compressed latent, sliding/chunked layers capped at their window, SSM states in the
    # KV dtype); "hf" = what transformers' own cache objects keep (DynamicCache: window - 1 positions per
    # sliding layer, fp32 SSM states, MLA latent re-expanded into K/V at every step)
    kv_cache_layout: str = "engine"

    def __post_init__(self):
        for name in ("task", "precision", "optimizer", "attention"):
            if not isinstance(getattr(self, name), str):
                raise InputError(name, f"must be a string, got {getattr(self, name)!r}")
        if self.grad_checkpointing is not False and self.grad_checkpointing is not True:
            object.__setattr__(self, "grad_checkpointing", checkpointing(self.grad_checkpointing))
        for name in ("bitfit",):
            v = getattr(self, name)
            if not isinstance(v, bool):
                if v in (0, 1) and not isinstance(v, float):
                    object.__setattr__(self, name, bool(v))
                else:
                    raise InputError(name, f"must be true or false, got {v!r}")
        if self.dropout is not None and not isinstance(self.dropout, bool):
            raise InputError("dropout", f"must be true, false or null (as the model config says), got {self.dropout!r}")
        if not isinstance(self.lora_targets, (str, tuple, list)) or (
                not isinstance(self.lora_targets, str) and not all(isinstance(t, str) for t in self.lora_targets)):
            raise InputError("lora_targets", f"must be module names (e.g. q_proj,v_proj), got {self.lora_targets!r}")
        if self.kv_cache_precision is not None and not isinstance(self.kv_cache_precision, str):
            raise InputError("kv_cache_precision", f"must be a string or null, got {self.kv_cache_precision!r}")
        if self.task not in TASKS:
            raise InputError("task", f"must be one of {', '.join(TASKS)}, got {self.task!r}")
        for name, (lo, hi) in _LIMITS.items():
            v = getattr(self, name)
            if type(v) is not int or not lo <= v <= hi:  # the common case (a whole number in range) stays as is
                object.__setattr__(self, name, _check_int(name, v, lo, hi))
        if self.precision not in PRECISIONS:
            raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.optimizer not in OPTIMIZERS:
            raise InputError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        if self.attention not in ATTENTION_IMPLS:
            raise InputError("attention", f"must be one of {', '.join(ATTENTION_IMPLS)}, got {self.attention!r}")
        try:
            sparsity = float(self.sparsity)
        except (TypeError, ValueError):
            raise InputError("sparsity", f"must be a number from 0 to 0.99, got {self.sparsity!r}") from None
        if not 0.0 <= sparsity <= 0.99:
            raise InputError("sparsity", f"must be from 0 to 0.99 (fraction of weights pruned), got {sparsity}")
        object.__setattr__(self, "sparsity", sparsity)
        if not isinstance(self.kv_cache_layout, str) or self.kv_cache_layout not in KV_CACHE_LAYOUTS:
            raise InputError("kv_cache_layout", f"must be one of {', '.join(KV_CACHE_LAYOUTS)}, "
                                                f"got {self.kv_cache_layout!r}")
        if not isinstance(self.sparsity_pattern, str) or self.sparsity_pattern not in SPARSITY_PATTERNS:
            raise InputError("sparsity_pattern", f"must be one of {', '.join(SPARSITY_PATTERNS)}, "
                                                 f"got {self.sparsity_pattern!r}")
        if self.sparsity_pattern == "2:4":
            if self.task != "infer":
                raise InputError("sparsity_pattern", "2:4 is modelled for inference (task infer): sparse training "
                                 "keeps dense weights, gradients and optimizer states; use unstructured")
            if sparsity == 0.0:
                object.__setattr__(self, "sparsity", 0.5)
            elif sparsity != 0.5:
                raise InputError("sparsity", f"2:4 keeps 2 of every 4 weights, so sparsity must be 0.5 (or 0, read "
                                             f"as 0.5), got {sparsity}")
        if isinstance(self.lora_targets, str):
            targets = tuple(t.strip() for t in self.lora_targets.split(",") if t.strip())
            object.__setattr__(self, "lora_targets", targets)
        else:
            object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if self.lora_rank and not self.lora_targets:
            raise InputError("lora_targets", "needs at least one module name (e.g. q_proj,v_proj) when lora_rank > 0")
        if self.lora_rank and self.bitfit:
            raise InputError("bitfit", "choose LoRA (lora_rank > 0) or BitFit, not both")
        if self.kv_cache_precision is not None and self.kv_cache_precision not in ("fp32", "bf16", "fp16", "fp8", "int8", "int4"):
            raise InputError("kv_cache_precision", "must be one of fp32, bf16, fp16, fp8, int8, int4")
        if self.task == "infer":  # training-only settings are refused for inference, naming the setting
            for name, given in (("optimizer", self.optimizer != DEFAULT_OPTIMIZER),
                                ("grad_checkpointing", self.grad_checkpointing), ("lora_rank", self.lora_rank > 0),
                                ("bitfit", self.bitfit)):
                if given:
                    raise InputError(name, f"{TRAINING_ONLY[name]}; inference has none: drop it or use task train")
        elif self.kv_cache_precision is not None:
            raise InputError("kv_cache_precision", "is an inference setting (the KV cache of generation); training "
                                                   "keeps no KV cache: drop it or use task infer")
        prec = PRECISIONS[self.precision]
        if self.task == "train" and prec.weight_only_quant and not self.lora_rank:
            raise InputError(
                "precision",
                f"{self.precision} stores frozen quantized weights; training needs LoRA (QLoRA): set lora_rank > 0, "
                "or use fp32, amp-bf16, amp-fp16, bf16, fp16 or fp8",
            )

    @property
    def prec(self) -> Precision:
        return PRECISIONS[self.precision]

    @property
    def opt(self) -> Optimizer:
        return OPTIMIZERS[self.optimizer]

    @property
    def training(self) -> bool:
        return self.task == "train"

    @property
    def fine_tune_method(self) -> str:
        if self.lora_rank:
            return "qlora" if self.prec.weight_only_quant else "lora"
        return "bitfit" if self.bitfit else "full"

    def with_(self, **changes) -> "Workload":
        return replace(self, **changes)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["lora_targets"] = list(self.lora_targets)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> "Workload":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InputError(unknown[0], f"is not a workload field; known fields: {', '.join(sorted(known))}")
        data = dict(data)
        if "lora_targets" in data and isinstance(data["lora_targets"], list):
            data["lora_targets"] = tuple(data["lora_targets"])
        return cls(**data)
