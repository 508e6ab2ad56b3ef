"""Build a model with random weights from its config and make the inputs of one step (child side;
imports torch). No downloads: Hugging Face models come from ``transformers.AutoConfig.for_model``
and the class named in the config's ``architectures``; CNN, MLP and RNN specs from costmodel's own
torch builders (``costmodel.profiler.torch_models.build_torch_cnn``, ``costmodel.specs.mlp.build_torch_mlp``,
``costmodel.specs.rnn.build_torch_rnn``).

``Built`` carries the module and three callables the worker times:
- ``train_loss(batch)``: forward + loss (the workload's autocast applied);
- ``infer(batch, generate)``: one inference: forward, or prefill + ``generate`` decode steps with a
  KV cache (recurrent state for RNNs); returns {"prefill_s", "decode_s", "decode_steps"} when it times
  itself, and accepts a ``mark`` callback the FLOP counter uses to split prefill from decode.

About 530 lines: one builder per model family the profiler runs plus the inputs and the loss of each, kept
together so the child imports one module before its first step.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import InputError
from ..workload import Workload


class Unsupported(Exception):
    """The run asks for something the profiler cannot execute here; the run is refused with this text."""


@dataclass
class Built:
    model: object
    kind: str  # hf-causal | hf-seq2seq | hf-encoder | hf-vision | cnn | mlp | rnn
    generative: bool
    make_batch: Callable[[], dict]
    train_loss: Callable[[dict], object]
    infer: Callable[..., dict]
    autocast: Callable[[], object]
    flops_forward: Callable[[dict], object]  # the forward the estimator's flops.forward describes
    tokens_per_sample: int
    notes: list = field(default_factory=list)
    param_dtype: object = None


def _dtype(torch, precision: str, training: bool):
    """(parameter dtype, autocast dtype or None) for a costmodel precision id."""
    if precision == "fp32":
        return torch.float32, None
    if precision == "amp-bf16":
        return torch.float32, torch.bfloat16
    if precision == "amp-fp16":
        return torch.float32, torch.float16
    if precision == "bf16":
        return torch.bfloat16, None
    if precision == "fp16":
        return torch.float16, None
    raise Unsupported(f"precision {precision} needs quantization kernels (bitsandbytes / Transformer Engine) "
                      "that the profiler does not drive; profile fp32, amp-bf16, amp-fp16, bf16 or fp16")


def _zero_dropout(cfg: dict) -> dict:
    out = dict(cfg)
    for k, v in cfg.items():
        if ("dropout" in k or "pdrop" in k or k.endswith("_drop")) and isinstance(v, float):
            out[k] = 0.0
    if out.get("family") in ("lstm", "gru", "mlp"):
        out["dropout"] = 0.0
    return out


# ---- LoRA (a minimal adapter, Hu et al. 2021; the same shapes as peft's LoraLayer) -----------------------------

def _lora_class():
    import torch
    from torch import nn

    class LoRA(nn.Module):
        """base(x) + B(A(x)) * alpha/r with the base frozen; A (r x d_in) random, B (d_out x r) zero."""

        def __init__(self, base: nn.Module, d_in: int, d_out: int, r: int, alpha: float = 16.0):
            super().__init__()
            self.base = base
            p = next(base.parameters())
            self.lora_A = nn.Linear(d_in, r, bias=False, device=p.device, dtype=p.dtype)
            self.lora_B = nn.Linear(r, d_out, bias=False, device=p.device, dtype=p.dtype)
            nn.init.zeros_(self.lora_B.weight)
            self.scale = alpha / r

        def forward(self, x):
            return self.base(x) + self.lora_B(self.lora_A(x)) * self.scale

    return LoRA, torch


def _linear_dims(mod) -> tuple[int, int] | None:
    from torch import nn

    if isinstance(mod, nn.Linear):
        return mod.in_features, mod.out_features
    if type(mod).__name__ == "Conv1D" and hasattr(mod, "weight") and mod.weight.dim() == 2:  # HF GPT-2: (in, out)
        return int(mod.weight.shape[0]), int(mod.weight.shape[1])
    return None


def apply_lora(model, targets: tuple[str, ...], r: int) -> int:
    """Freeze ``model`` and wrap every linear whose name ends with a target (``all-linear``: every
    linear but the LM head) with a rank-``r`` adapter. Returns the number of wrapped modules."""
    LoRA, _ = _lora_class()
    for p in model.parameters():
        p.requires_grad_(False)
    wanted = set(targets)
    found = []
    for name, mod in list(model.named_modules()):
        dims = _linear_dims(mod)
        if dims is None or not name:
            continue
        if "all-linear" in wanted:
            hit = not name.endswith("lm_head") and "lora_" not in name
        else:
            hit = any(name == t or name.endswith("." + t) for t in wanted)
        if hit:
            found.append((name, mod, dims))
    if not found:
        raise Unsupported(f"no linear module named {', '.join(sorted(wanted))} in this model for LoRA")
    for name, mod, (d_in, d_out) in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRA(mod, d_in, d_out, r))
    return len(found)


# ---- building ---------------------------------------------------------------------------------------------------

def build(config: dict, workload: Workload, device: str) -> Built:
    import torch

    w = workload
    dtype, amp = _dtype(torch, w.precision, w.training)
    if w.optimizer == "adamw-8bit" and w.training:
        raise Unsupported("optimizer adamw-8bit needs bitsandbytes, which the profiler does not drive; "
                          "profile adamw, adam, sgd, sgd-momentum or adafactor")
    cfg = _zero_dropout(config) if w.dropout is False else dict(config)
    dev = torch.device(device)
    notes: list[str] = []
    if w.sparsity:
        notes.append(f"sparsity {w.sparsity} is not applied: the measured model has dense weights")

    def autocast():
        if amp is None:
            return contextlib.nullcontext()
        return torch.autocast(dev.type, dtype=amp)

    # Built directly in the parameter dtype on the device: never an fp32 copy first (a bf16 model built in fp32
    # and cast would briefly hold 3x its bf16 bytes, and the freed fp32 blocks would stay in torch's cache)
    if "model_type" in cfg:
        built = _build_hf(torch, cfg, w, dev, autocast, notes, dtype)
    elif cfg.get("family") in ("cnn", "mlp", "lstm", "gru"):
        with default_dtype(torch, dtype):
            built = _build_own(torch, cfg, w, dev, autocast, notes, dtype)
    else:
        raise Unsupported("the profiler builds Hugging Face configs (model_type) and costmodel specs "
                          "(family cnn, mlp, lstm, gru)")
    model = built.model
    if w.training:
        if w.lora_rank:
            n = apply_lora(model, w.lora_targets, w.lora_rank)
            notes.append(f"LoRA rank {w.lora_rank} on {n} modules (costmodel's own adapter; peft not used)")
        elif w.bitfit:
            for name, p in model.named_parameters():
                p.requires_grad_(name.endswith("bias"))
        if w.grad_checkpointing == "selective":
            raise Unsupported("selective (per-op) checkpointing is priced in plans (torchtitan's policy) but not run "
                              "by the profiler, which drives the Hugging Face models' full checkpointing: use true")
        if w.grad_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 name
                model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            elif hasattr(model, "gradient_checkpointing_enable"):
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            else:
                raise Unsupported(f"gradient checkpointing is only driven for Hugging Face models, not {built.kind}")
        model.train()
    else:
        model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
    stray = sorted({str(p.dtype).replace("torch.", "") for p in model.parameters() if p.dtype != dtype})
    if stray and not w.lora_rank:  # a module that forces its own dtype (e.g. _keep_in_fp32_modules)
        notes.append(f"some parameters are not {str(dtype).replace('torch.', '')}: {', '.join(stray)} (as the "
                     "model class creates them)")
    built.notes = notes
    built.param_dtype = dtype
    return built


@contextlib.contextmanager
def default_dtype(torch, dtype):
    """Floating tensors created inside are ``dtype`` (torch.set_default_dtype, restored after)."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


def registered_model_classes(transformers) -> set[str]:
    """Every model class name in transformers' auto mappings (``*_MAPPING_NAMES`` of ``modeling_auto``)."""
    from transformers.models.auto import modeling_auto

    names: set[str] = set()
    for attr in dir(modeling_auto):
        if attr.endswith("_MAPPING_NAMES"):
            for v in getattr(modeling_auto, attr).values():
                names.update([v] if isinstance(v, str) else v)
    return names


def _hf_class(transformers, cfg: dict):
    """The model class: ``architectures[0]`` when it is a registered model class (transformers' auto mappings;
    any other attribute of the package is refused, since it would be called with the config), else the
    model type's default."""
    arch = (cfg.get("architectures") or [None])[0]
    if arch is not None:
        if not isinstance(arch, str) or arch not in registered_model_classes(transformers):
            raise Unsupported(f"architectures names {arch!r}, which is not a model class registered in transformers' "
                              "auto mappings; give a model class such as LlamaForCausalLM")
        cls = getattr(transformers, arch, None)
        if cls is None:
            raise Unsupported(f"transformers {transformers.__version__} has no class {arch}")
        return cls
    mt = cfg["model_type"]
    default = {"gpt2": "GPT2LMHeadModel", "llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM",
               "mixtral": "MixtralForCausalLM", "qwen2": "Qwen2ForCausalLM", "gemma": "GemmaForCausalLM",
               "gemma2": "Gemma2ForCausalLM", "phi3": "Phi3ForCausalLM", "bert": "BertForPreTraining",
               "t5": "T5ForConditionalGeneration", "vit": "ViTForImageClassification",
               "resnet": "ResNetForImageClassification"}.get(mt)
    if default is None:
        raise Unsupported(f"model_type {mt!r} has no default architecture; give 'architectures' in the config")
    return getattr(transformers, default)


def mt_has_attention(model_type: str) -> bool:
    return model_type != "resnet"  # ResNets have no attention (and transformers refuses an sdpa setting)


def _build_hf(torch, cfg: dict, w: Workload, dev, autocast, notes, dtype) -> Built:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    from ..models import spec_from_dict

    spec = spec_from_dict(cfg)
    hf_cfg = transformers.AutoConfig.for_model(**cfg)
    if w.dropout is False:  # also the config class's defaults that the dict did not name (GPT-2's 0.1 pdrops)
        for k, v in hf_cfg.to_dict().items():
            if ("dropout" in k or "pdrop" in k or k.endswith("_drop")) and isinstance(v, float):
                setattr(hf_cfg, k, 0.0)
    if mt_has_attention(cfg["model_type"]):
        hf_cfg._attn_implementation = "eager" if w.attention == "eager" else "sdpa"
    cls = _hf_class(transformers, cfg)
    with torch.device(dev):  # transformers' own way to build in a dtype (local default dtype, as from_pretrained)
        model = cls._from_config(hf_cfg, dtype=dtype)
    name = cls.__name__
    mt = cfg["model_type"]
    b = w.batch
    gen = bool(spec.generative)
    vocab = getattr(hf_cfg, "vocab_size", None)

    if mt in ("vit", "resnet"):
        kind = "hf-vision"
        size = w.image_size
        chans = getattr(hf_cfg, "num_channels", 3)
        classify = name.endswith("ForImageClassification")
        labels_n = getattr(hf_cfg, "num_labels", 2)
        extra = {"interpolate_pos_encoding": True} if mt == "vit" and size != getattr(hf_cfg, "image_size", size) else {}

        def make_batch():
            x = torch.randn(b, chans, size, size, device=dev)
            out = {"pixel_values": x, **extra}
            if classify:
                out["labels"] = torch.randint(0, labels_n, (b,), device=dev)
            return out

        def fwd(batch, with_labels=True):
            kw = dict(batch) if with_labels else {k: v for k, v in batch.items() if k != "labels"}
            with autocast():
                return model(**kw)

        tokens = 1
    elif mt == "t5":
        kind = "hf-seq2seq"
        tgt = spec.target_len(w.seq)

        def make_batch():
            ids = torch.randint(0, vocab, (b, w.seq if w.training else w.prompt), device=dev)
            return {"input_ids": ids, "labels": torch.randint(0, vocab, (b, tgt), device=dev)}

        def fwd(batch, with_labels=True):
            with autocast():
                if with_labels:
                    return model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False)
                start = torch.full((b, 1), hf_cfg.decoder_start_token_id or 0, device=dev, dtype=torch.long)
                return model(input_ids=batch["input_ids"], decoder_input_ids=start, use_cache=False)

        tokens = w.seq
    elif gen:
        kind = "hf-causal"

        def make_batch():
            ids = torch.randint(0, vocab, (b, w.seq if w.training else w.prompt), device=dev)
            return {"input_ids": ids, "labels": ids}

        def fwd(batch, with_labels=True):
            with autocast():
                if with_labels:
                    return model(input_ids=batch["input_ids"], labels=batch["labels"], use_cache=False)
                return model(input_ids=batch["input_ids"], use_cache=False, logits_to_keep=1)

        tokens = w.seq
    else:  # encoders (BERT)
        kind = "hf-encoder"
        pretraining = name.endswith("ForPreTraining")
        mlm = name.endswith("ForMaskedLM")
        seq_cls = name.endswith("ForSequenceClassification")
        labels_n = getattr(hf_cfg, "num_labels", 2)

        def make_batch():
            ids = torch.randint(0, vocab, (b, w.seq), device=dev)
            out = {"input_ids": ids}
            if pretraining:
                out["labels"] = ids
                out["next_sentence_label"] = torch.randint(0, 2, (b,), device=dev)
            elif mlm:
                out["labels"] = ids
            elif seq_cls:
                out["labels"] = torch.randint(0, labels_n, (b,), device=dev)
            return out

        def fwd(batch, with_labels=True):
            kw = dict(batch) if with_labels else {"input_ids": batch["input_ids"]}
            with autocast():
                return model(**kw)

        tokens = w.seq

    def train_loss(batch):
        out = fwd(batch, with_labels=True)
        loss = getattr(out, "loss", None)
        if loss is None:  # a headless model: reduce its output to a scalar
            hidden = out[0] if isinstance(out, (tuple, list)) else out.last_hidden_state
            loss = hidden.float().mean()
        return loss

    def flops_forward(batch):
        if w.training:
            return train_loss(batch)
        return fwd(batch, with_labels=False)

    def infer(batch, generate: int, mark=None, sync=lambda: None, keep_cache=False):
        with torch.inference_mode():
            t0 = time.perf_counter()
            if not gen or kind == "hf-seq2seq" and generate == 0:
                fwd(batch, with_labels=False)
                sync()
                return {"prefill_s": time.perf_counter() - t0, "decode_s": 0.0, "decode_steps": 0}
            with autocast():
                if kind == "hf-seq2seq":
                    enc = model.get_encoder()(input_ids=batch["input_ids"])
                    nxt = torch.full((b, 1), hf_cfg.decoder_start_token_id or 0, device=dev, dtype=torch.long)
                    out = model(encoder_outputs=enc, decoder_input_ids=nxt, use_cache=True)
                else:
                    out = model(input_ids=batch["input_ids"], use_cache=True, logits_to_keep=1)
                sync()
                t1 = time.perf_counter()
                if mark:
                    mark("decode")
                pkv = out.past_key_values
                nxt = out.logits[:, -1:].argmax(-1)
                for _ in range(generate):
                    if kind == "hf-seq2seq":
                        out = model(encoder_outputs=enc, decoder_input_ids=nxt, past_key_values=pkv, use_cache=True)
                    else:
                        out = model(input_ids=nxt, past_key_values=pkv, use_cache=True)
                    pkv = out.past_key_values
                    nxt = out.logits[:, -1:].argmax(-1)
                sync()
            t2 = time.perf_counter()
            out = {"prefill_s": t1 - t0, "decode_s": t2 - t1, "decode_steps": generate}
            if keep_cache:
                out["cache"] = pkv
            return out

    if kind == "hf-seq2seq" and not w.training:
        notes.append("T5 prefill = encoder over the prompt + the first decoder token")
    return Built(model=model, kind=kind, generative=gen, make_batch=make_batch, train_loss=train_loss,
                 infer=infer, autocast=autocast, flops_forward=flops_forward, tokens_per_sample=tokens)


def _build_own(torch, cfg: dict, w: Workload, dev, autocast, notes, dtype) -> Built:
    import torch.nn.functional as F

    from ..models import spec_from_dict

    spec = spec_from_dict(cfg)
    fam = cfg["family"]
    b = w.batch
    with torch.device(dev):
        if fam == "cnn":
            from .torch_models import build_torch_cnn

            model = build_torch_cnn(spec)
        elif fam == "mlp":
            from ..specs.mlp import build_torch_mlp

            model = build_torch_mlp(spec)
        else:
            from ..specs.rnn import build_torch_rnn

            model = build_torch_rnn(spec)

    if fam == "cnn":
        c, hgt, wid = spec.in_channels, spec.in_height, spec.in_width
        classes = spec.classes

        def make_batch():  # inputs in the parameter dtype (a bf16 model takes bf16 images)
            return {"x": torch.randn(b, c, hgt, wid, device=dev, dtype=dtype),
                    "y": torch.randint(0, classes, (b,), device=dev)}

        tokens, gen = 1, False
    elif fam == "mlp":
        def make_batch():
            return {"x": torch.randn(b, spec.input_dim, device=dev, dtype=dtype),
                    "y": torch.randint(0, spec.output_dim, (b,), device=dev)}

        tokens, gen = 1, False
    else:
        V = spec.vocab_size

        def make_batch():
            ids = torch.randint(0, V, (b, w.seq if w.training else w.prompt), device=dev)
            return {"x": ids, "y": ids}

        tokens, gen = w.seq, True

    def train_loss(batch):
        with autocast():
            out = model(batch["x"])
            if fam in ("lstm", "gru"):
                return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch["y"].reshape(-1))
            return F.cross_entropy(out, batch["y"])

    def flops_forward(batch):
        if w.training:
            return train_loss(batch)
        with autocast():
            if fam in ("lstm", "gru"):
                out, _ = model.rnn(model.embed(batch["x"]))
                return model.head(out[:, -1:])
            return model(batch["x"])

    def infer(batch, generate: int, mark=None, sync=lambda: None, keep_cache=False):
        with torch.inference_mode(), autocast():
            t0 = time.perf_counter()
            if fam not in ("lstm", "gru"):
                model(batch["x"])
                sync()
                return {"prefill_s": time.perf_counter() - t0, "decode_s": 0.0, "decode_steps": 0}
            out, state = model.rnn(model.embed(batch["x"]))
            nxt = model.head(out[:, -1:]).argmax(-1)
            sync()
            t1 = time.perf_counter()
            if mark:
                mark("decode")
            for _ in range(generate):
                out, state = model.rnn(model.embed(nxt), state)
                nxt = model.head(out).argmax(-1)
            sync()
            out = {"prefill_s": t1 - t0, "decode_s": time.perf_counter() - t1, "decode_steps": generate}
            if keep_cache:
                out["cache"] = state
            return out

    return Built(model=model, kind=fam if fam in ("cnn", "mlp") else "rnn", generative=gen, make_batch=make_batch,
                 train_loss=train_loss, infer=infer, autocast=autocast, flops_forward=flops_forward,
                 tokens_per_sample=tokens)


def make_optimizer(model, workload: Workload):
    """The workload's optimizer over the trainable parameters. Adam/AdamW use torch's foreach
    implementation (what CUDA picks by default), whose step allocates sqrt(exp_avg_sq) for all
    parameters at once -- the temporary the estimator models."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise Unsupported("nothing to train: no parameter requires a gradient")
    name = workload.optimizer
    if name == "adamw":
        return torch.optim.AdamW(params, lr=1e-5, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=1e-5, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=1e-5, momentum=0.0)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=1e-5, momentum=0.9)
    if name == "rmsprop":  # torch's default (and Keras'): momentum 0, not centered; foreach like Adam
        return torch.optim.RMSprop(params, lr=1e-5, foreach=True)
    if name == "adafactor":
        if not hasattr(torch.optim, "Adafactor"):
            raise Unsupported("torch.optim.Adafactor needs torch >= 2.5")
        return torch.optim.Adafactor(params, lr=1e-5)
    raise Unsupported(f"optimizer {name} is not driven by the profiler")


# the dtype the KV cache (or RNN state) is stored in: the compute dtype (K/V projections' outputs)
KV_CACHE_DTYPE = {"fp32": "fp32", "amp-bf16": "bf16", "amp-fp16": "fp16", "bf16": "bf16", "fp16": "fp16"}


def check_workload(workload: Workload) -> None:
    """Raise ``InputError`` early (in the parent) for what the child could not run."""
    if workload.precision in ("fp8", "int8", "int4"):
        raise InputError("precision", f"{workload.precision} is not profiled (needs bitsandbytes / Transformer "
                         "Engine); use fp32, amp-bf16, amp-fp16, bf16 or fp16")
    if workload.training and workload.optimizer == "adamw-8bit":
        raise InputError("optimizer", "adamw-8bit is not profiled (needs bitsandbytes)")
    if not workload.training and workload.kv_cache_precision is not None:
        natural = KV_CACHE_DTYPE.get(workload.precision)
        if workload.kv_cache_precision != natural:
            raise InputError("kv_cache_precision", f"a {workload.kv_cache_precision} KV cache is not profiled: the run "
                             f"keeps its cache in the compute dtype ({natural} for {workload.precision}); leave it "
                             f"unset or give {natural}")
    if workload.training and workload.optimizer == "lamb":
        raise InputError("optimizer", "lamb is not profiled (torch has no LAMB; apex / torch-optimizer are not "
                         "driven); profile adamw, adam, rmsprop, sgd, sgd-momentum or adafactor")
    if workload.sparsity_pattern == "2:4":
        raise InputError("sparsity_pattern", "2:4 sparse kernels are not profiled (needs cuSPARSELt); the profiler "
                         "builds dense models: use sparsity_pattern unstructured")
