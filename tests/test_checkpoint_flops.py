"""Backward and recomputation FLOPs against torch's FlopCounterMode on tiny Hugging Face models (CPU).

Reference: torch.utils.flop_counter.FlopCounterMode (2 FLOPs per multiply-add) counting a real
forward and a real backward of transformers' GPT-2 / Llama built from configs with random weights.
What is checked (docs/formulas.md, "FLOPs"):
- non-reentrant gradient checkpointing (the default of torch and transformers >= 5) re-runs each block's
  forward up to, not including, its last op that saves a tensor (Llama: down_proj); an active dropout
  after GPT-2's MLP projection saves its mask after the matmul, so that matmul is re-run;
- frozen fine-tuning (LoRA) forms no input gradients before the first trainable parameter, unless
  checkpointing made the embedding output require a gradient (transformers' enable_input_require_grads).
"""

from __future__ import annotations

import warnings

import pytest

import costmodel

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

GPT2 = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=2, n_embd=64, n_head=4, vocab_size=1000,
            n_positions=128)
LLAMA = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
             num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
B, S = 2, 32


def measure(cfg: dict, *, ckpt: bool, dropout: bool, lora: tuple[str, ...] = (), attention: str = "eager") -> tuple[int, int]:
    """(forward FLOPs, backward FLOPs incl. recomputation) of one eager fp32 training step."""
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.profiler.build import apply_lora

    torch.manual_seed(0)
    hf = transformers.AutoConfig.for_model(**{k: v for k, v in cfg.items() if k != "architectures"})
    if not dropout:
        for k, v in hf.to_dict().items():
            if "pdrop" in k or "dropout" in k:
                if isinstance(v, float):
                    setattr(hf, k, 0.0)
    model = transformers.AutoModelForCausalLM.from_config(hf, attn_implementation=attention)
    if lora:
        apply_lora(model, lora, 4)
    model.train()
    if ckpt:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    x = torch.randint(0, hf.vocab_size, (B, S))
    fwd, bwd = FlopCounterMode(display=False), FlopCounterMode(display=False)
    with fwd:
        loss = model(input_ids=x, labels=x).loss
    with bwd:
        loss.backward()
    return fwd.get_total_flops(), bwd.get_total_flops()


def predict(cfg: dict, attention: str = "eager", **kw):
    e = costmodel.estimate(dict(cfg), task="train", batch=B, seq=S, precision="fp32",
                           attention="eager" if attention == "eager" else "fused", **kw)
    return e.flops.forward, e.flops.backward + e.flops.recompute


# LoRA on q and v only: in the first block eager attention's matmuls skip dK (k_proj is frozen and its input
# needs no gradient), 2*B*H*S*S*d FLOPs; LoRA on v only skips dQ, dK and dP. Fused SDPA kernels form dQ, dK
# and dV together, as costmodel counts for attention="fused" (tests/test_profiler.py, LoRA on q,v).
@pytest.mark.parametrize("name,cfg,ckpt,dropout,lora,attention", [
    ("llama checkpointed", LLAMA, True, False, (), "eager"),
    ("gpt2 checkpointed, no dropout", GPT2, True, False, (), "eager"),
    ("gpt2 checkpointed, dropout 0.1", GPT2, True, True, (), "eager"),
    ("llama LoRA q,k,v", LLAMA, False, False, ("q_proj", "k_proj", "v_proj"), "eager"),
    ("llama LoRA q,k,v checkpointed", LLAMA, True, False, ("q_proj", "k_proj", "v_proj"), "eager"),
    ("llama LoRA q,v", LLAMA, False, False, ("q_proj", "v_proj"), "eager"),
    ("llama LoRA v", LLAMA, False, False, ("v_proj",), "eager"),
    ("llama LoRA o,down (attention core before any adapter)", LLAMA, False, False, ("o_proj", "down_proj"), "eager"),
    ("gpt2 LoRA c_attn (fused qkv)", GPT2, False, False, ("c_attn",), "eager"),
])
def test_backward_and_recompute_flops_equal_flopcountermode(name, cfg, ckpt, dropout, lora, attention):
    measured = measure(cfg, ckpt=ckpt, dropout=dropout, lora=lora, attention=attention)
    kw = dict(grad_checkpointing=ckpt, dropout=dropout)
    if lora:
        kw.update(lora_rank=4, lora_targets=",".join(lora))
    assert predict(cfg, attention, **kw) == (pytest.approx(measured[0], rel=1e-12), pytest.approx(measured[1], rel=1e-12))


def test_hand_arithmetic_of_llama_recompute():
    # per block: q (64x64), k and v (64x32), o (64x64), gate and up (64x128) re-run, down_proj not;
    # attention core 2 x 2*B*H*S*S*d with H=4, d=16; T = B*S tokens
    T, h, kv, f, H, d = B * S, 64, 32, 128, 4, 16
    block = 2 * T * (h * h + 2 * h * kv + h * h + 2 * h * f) + 2 * 2 * B * H * S * S * d
    e = costmodel.estimate(dict(LLAMA), task="train", batch=B, seq=S, precision="fp32", attention="eager",
                           grad_checkpointing=True)
    assert e.flops.recompute == 2 * block


def _torchtitan_op_policy():
    """torchtitan's per-op selective checkpoint policy (``selective_ac_option = "op"``, torchtitan
    models/llama/parallelize_llama.py ``_apply_ac_to_transformer_block`` at 9dec370): save the outputs of mm and the
    SDPA kernels, "except every second mm"; recompute the rest. The CPU flash kernel joins the CUDA ones here."""
    from collections import defaultdict
    from functools import partial

    from torch.utils.checkpoint import CheckpointPolicy, create_selective_checkpoint_contexts

    aten = torch.ops.aten
    save = {aten.mm.default, aten._scaled_dot_product_flash_attention.default,
            aten._scaled_dot_product_efficient_attention.default,
            aten._scaled_dot_product_flash_attention_for_cpu.default, aten.max.default}

    def policy(meta, ctx, func, *args, **kwargs):
        key = f"{'recompute' if ctx.is_recompute else 'forward'}_mm_count"
        if func == aten.mm.default:
            meta[key] += 1
        keep = func in save and not (func == aten.mm.default and meta[key] % 2 == 0)
        return CheckpointPolicy.MUST_SAVE if keep else CheckpointPolicy.PREFER_RECOMPUTE

    return lambda: create_selective_checkpoint_contexts(partial(policy, defaultdict(int)))


def test_selective_recompute_flops_equal_torchtitan_policy_under_flopcountermode():
    # the real policy on transformers' Llama blocks (torch.utils.checkpoint with its context_fn), counted by
    # FlopCounterMode: the backward with per-op checkpointing minus the backward without any is the recompute
    from torch.utils.flop_counter import FlopCounterMode

    def backward_flops(context_fn):
        torch.manual_seed(0)
        hf = transformers.AutoConfig.for_model(**{k: v for k, v in LLAMA.items() if k != "architectures"})
        model = transformers.AutoModelForCausalLM.from_config(hf, attn_implementation="sdpa")
        model.train()
        if context_fn is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False,
                                                                                   "context_fn": context_fn})
        x = torch.randint(0, hf.vocab_size, (B, S))
        loss = model(input_ids=x, labels=x).loss
        with FlopCounterMode(display=False) as bwd:
            loss.backward()
        return bwd.get_total_flops()

    measured = backward_flops(_torchtitan_op_policy()) - backward_flops(None)
    e = costmodel.estimate(dict(LLAMA), task="train", batch=B, seq=S, precision="fp32", attention="fused",
                           grad_checkpointing="selective")
    assert e.flops.recompute == pytest.approx(measured, rel=1e-12)
    # hand arithmetic: per block k_proj (64x32), o_proj (64x64) and up_proj (64x128) re-run; T = B*S tokens
    T, h, kv, f = B * S, 64, 32, 128
    assert measured == 2 * 2 * T * (h * kv + h * h + h * f)


def test_selective_checkpoint_keeps_what_the_policy_saves():
    # Llama 3 8B, 2 x 8,192 tokens, bf16: each block keeps its input (checkpoint) and the outputs of q, v, the
    # attention kernel (+ fp32 logsumexp per head), gate and down; all 32 blocks, plus what full checkpointing
    # keeps outside them (embedding indices, final norm, logits and loss buffers)
    T, h, kv, f, H, L = 2 * 8192, 4096, 1024, 14336, 32, 32
    per_block = T * (2 * h + 2 * (h + kv + h + f + h) + 4 * H)
    kw = dict(task="train", batch=2, seq=8192, precision="bf16-mixed")
    full = costmodel.estimate("llama-3-8b", grad_checkpointing=True, **kw).memory_bytes.activations
    sel = costmodel.estimate("llama-3-8b", grad_checkpointing="selective", **kw).memory_bytes.activations
    assert sel - full == pytest.approx(L * (per_block - T * 2 * h))
    none = costmodel.estimate("llama-3-8b", **kw).memory_bytes.activations
    assert full < sel < none / 2  # 12.3, 39.4 and 106.4 GiB


def test_checkpointing_setting_is_read_one_way():
    from costmodel.parallel import Layout
    from costmodel.workload import Workload

    assert Workload(grad_checkpointing="full").grad_checkpointing is True
    assert Workload(grad_checkpointing="none").grad_checkpointing is False
    assert Layout(grad_checkpointing="Selective").grad_checkpointing == "selective"
    for bad in ("partial", 2, 0.5):
        with pytest.raises(costmodel.InputError) as err:
            Workload(grad_checkpointing=bad)
        assert err.value.field == "grad_checkpointing"
    with pytest.raises(costmodel.InputError, match="moe_experts"):  # the per-op policy is priced for dense blocks
        costmodel.estimate("mixtral-8x7b", task="train", seq=512, grad_checkpointing="selective")
