"""Learn page: small worked examples, every number from costmodel.estimate / costmodel.plans."""

from __future__ import annotations

from ..api import estimate
from ..catalog import DEFAULT_HARDWARE
from ..models import load_model
from ..plans import plan_training
from ..units import GiB
from ..workload import OPTIMIZERS


def lesson_flops(model: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    """A training step's FLOPs from the ledger next to the 6 x P x T rule of thumb."""
    est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, precision="amp-bf16")
    tokens = batch * seq
    rule = 6.0 * est.params.total * tokens
    return {"estimate": est, "tokens": tokens, "forward": est.flops.forward, "backward": est.flops.backward,
            "total": est.flops.total, "six_pt": rule, "ratio": est.flops.total / rule,
            "per_token": est.flops.per_token_train}


def lesson_optimizers(model: str, precision: str, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    """Bytes per parameter of weights, gradients and optimizer states, for every optimizer."""
    rows = []
    for name in OPTIMIZERS:
        est = estimate(model, hardware=hardware, task="train", batch=1, seq=128, precision=precision, optimizer=name)
        n = est.params.total
        m = est.memory_bytes
        rows.append({"optimizer": name, "weights_B_per_param": m.weights / n, "grads_B_per_param": m.gradients / n,
                     "states_B_per_param": m.optimizer / n,
                     "total_B_per_param": (m.weights + m.gradients + m.optimizer) / n,
                     "weights+grads+states_GiB": (m.weights + m.gradients + m.optimizer) / GiB})
    return rows


def lesson_checkpointing(model: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    rows = []
    for ckpt in (False, True):
        est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, grad_checkpointing=ckpt)
        rows.append({"checkpointing": "on" if ckpt else "off", "activations_GiB": est.memory_bytes.activations / GiB,
                     "peak_GiB": est.memory_bytes.peak / GiB, "recompute_flops": est.flops.recompute,
                     "step_flops": est.flops.total, "step_s": est.time_s.step_s})
    return rows


def lesson_kv_cache(model: str, batch: int, prompt: int, generate: int, kv_precision: str | None,
                    hardware: str = DEFAULT_HARDWARE) -> dict:
    """KV cache of a decoder from the estimator, with the formula's terms (layers, KV heads, head dim)."""
    spec = load_model(model)
    est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=prompt, generate=generate,
                   precision="bf16", kv_cache_precision=kv_precision)
    terms = {k: getattr(spec, a) for k, a in (("layers", "layers"), ("kv_heads", "n_kv_heads"), ("head_dim", "d_head"))
             if hasattr(spec, a)}
    return {"estimate": est, "kv_cache": est.memory_bytes.kv_cache, "weights": est.memory_bytes.weights,
            "positions": prompt + generate, "terms": terms}


def lesson_quantization(model: str, batch: int, prompt: int, generate: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    rows = []
    for prec in ("fp32", "bf16", "fp8", "int8", "int4"):
        est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=prompt, generate=generate,
                       precision=prec)
        rows.append({"precision": prec, "weights_GiB": est.memory_bytes.weights / GiB,
                     "peak_GiB": est.memory_bytes.peak / GiB, "fits": bool(est.memory_bytes.fits),
                     "prefill_s": est.time_s.prefill_s, "decode_s_per_token": est.time_s.decode_per_token_s})
    return rows


def lesson_pruning(model: str, sparsity: float, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    est = estimate(model, hardware=hardware, task="infer", batch=batch, prompt=seq, generate=0, seq=seq,
                   precision="bf16", sparsity=sparsity)
    return {"estimate": est, "total": est.params.total, "nonzero": est.params.nonzero,
            "forward": est.flops.forward, "forward_effective": est.flops.forward_effective}


def lesson_distillation(teacher: str, student: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> dict:
    """One distillation step = the teacher's forward (inference over the batch) + the student's training step."""
    t = estimate(teacher, hardware=hardware, task="infer", batch=batch, prompt=seq, generate=0, seq=seq,
                 precision="bf16")
    s = estimate(student, hardware=hardware, task="train", batch=batch, seq=seq, precision="amp-bf16")
    # the teacher only runs its forward over the batch: its prefill (a decoder) or its forward (an encoder)
    t_time = t.time_s.prefill_s if t.unit == "request" else t.time_s.forward_s
    return {"teacher": t, "student": s, "teacher_flops": t.flops.forward, "student_flops": s.flops.total,
            "step_flops": t.flops.forward + s.flops.total, "teacher_s": t_time, "student_s": s.time_s.step_s,
            "step_s": t_time + s.time_s.step_s}


def lesson_lora(model: str, rank: int, targets: str, batch: int, seq: int, hardware: str = DEFAULT_HARDWARE) -> list[dict]:
    rows = []
    for label, kw in (("full fine-tune", {"lora_rank": 0, "precision": "amp-bf16"}),
                      (f"LoRA r={rank}", {"lora_rank": rank, "lora_targets": targets, "precision": "bf16"}),
                      (f"QLoRA r={rank}", {"lora_rank": rank, "lora_targets": targets, "precision": "int4"})):
        est = estimate(model, hardware=hardware, task="train", batch=batch, seq=seq, **kw)
        m = est.memory_bytes
        rows.append({"method": label, "trainable_params": est.params.trainable,
                     "trainable_pct": 100.0 * est.params.trainable / est.params.total,
                     "weights_GiB": m.weights / GiB, "grads_GiB": m.gradients / GiB, "optimizer_GiB": m.optimizer / GiB,
                     "peak_GiB": m.peak / GiB, "fits": bool(m.fits), "step_s": est.time_s.step_s})
    return rows


def lesson_parallel(model: str, hardware: str, dp: int, tp: int, pp: int, zero: int, seq: int = 2048,
                    micro_batch: int = 1, global_batch: int | None = None) -> dict:
    """One optimizer step of ``model`` under a dp x tp x pp layout (costmodel.plans.plan_training for 1B tokens):
    per-device memory, the step's time split and the communication of each collective."""
    gb = global_batch or micro_batch * dp * max(pp, 1) * 4
    plan = plan_training(model, hardware, workload={"seq": seq}, tokens=1e9, global_batch=gb,
                         layout=dict(dp=dp, tp=tp, pp=pp, zero=zero, micro_batch=micro_batch))
    return {"plan": plan, "memory": plan.step.memory_bytes, "step_s": plan.step.step_s,
            "comm": plan.step.comm_s, "exposed_comm_s": plan.step.exposed_comm_s, "bubble_s": plan.step.bubble_s,
            "devices": plan.num_devices, "global_batch": gb}


def lesson_course_cnn(model: str, batch: int, hardware: str = "cpu-generic") -> dict:
    """A course CNN (Keras layer list): its parameters, forward FLOPs, and how they split between the convolutions
    (most of the multiplying) and the dense layers (most of the weights), from the ledger; trained with Adam in
    fp32 on a CPU, as the course runs it."""
    est = estimate(model, hardware=hardware, task="train", batch=batch, precision="fp32", optimizer="adam")
    conv_f = sum(r.forward_flops * r.count for r in est.layers if r.kind == "conv2d")
    dense_p = sum(r.params * r.count for r in est.layers if r.kind == "linear")
    return {"estimate": est, "params": est.params.total, "forward": est.flops.forward,
            "conv_share": conv_f / est.flops.forward if est.flops.forward else 0.0,
            "dense_param_share": dense_p / est.params.total if est.params.total else 0.0}
