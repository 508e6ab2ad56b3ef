"""Training techniques the course teaches that are more than one estimate: knowledge distillation (a teacher's
forward + the student's training step) and quantization-aware training (QAT: training with fake-quantized
weights and activations so the deployed int8 model keeps its accuracy).

    distillation_estimate(teacher, student, hardware, workload)   -> DistillationEstimate
    qat_estimate(model, hardware, workload, bits=8)                -> QATEstimate

Both build on ``costmodel.estimate`` and add only what the technique adds; every term is in ``assumptions``.

Distillation (Hinton et al. 2015, arXiv:1503.02531): each step runs the teacher forward over the batch
(inference: no gradients, no optimizer, its weights frozen in ``teacher_precision``) and the student's full
training step on the same inputs; the loss compares the student's outputs with the teacher's, which stay alive
until the student's backward. Time = teacher forward + student step; FLOPs likewise; memory at the peak =
the student's peak + the teacher's weights + the teacher's outputs (fp32 logits: batch x classes, or batch x
seq x vocabulary for a language model).

QAT (Jacob et al. 2018, arXiv:1712.05877; PyTorch ``torch.ao.quantization`` QAT, TF Model Optimization
``quantize_model``): every conv / linear weight passes through a FakeQuantize (quantize-dequantize) in the
forward, and so does every activation such a layer reads. Relative to the same training step in its
precision it adds, per step: a fake-quantized copy of each matmul weight that the layer saves for backward
(weight bytes each) and a 1-byte clamp mask per weight (``fake_quantize_per_tensor_affine_cachemask``, the
straight-through estimator's mask); a 1-byte mask per element of each quantized activation (the matmul inputs
the ledger saves); and the memory traffic of those elementwise passes (read + write in the forward, the mask
and the gradient in the backward) at the achievable bandwidth, plus two eager calls per quantized layer and
pass. FLOPs are unchanged (2 per multiply-add counts matmuls only). The deployed model: ``bits``-bit matmul
weights + the other parameters in fp32.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .api import estimate
from .catalog import resolve_hardware
from .costs import hourly_cost
from .errors import InputError
from .limits import resolve_defaults
from .models import load_model
from .perf import default_efficiency
from .results import Estimate
from .workload import Workload

QAT_HOST_OPS_PER_LAYER = 2  # weight FakeQuantize + activation FakeQuantize, each one eager call per pass
QAT_MASK_BYTES = 1.0  # bool clamp mask per fake-quantized element (cachemask variants)


def _train_workload(spec, workload) -> Workload:
    if isinstance(workload, Workload):
        return workload.with_(task="train")
    return Workload.from_dict(resolve_defaults(spec, {**(workload or {}), "task": "train"}))


def _money(hw, pricing, seconds: float) -> dict:
    hour = hourly_cost(hw, pricing)
    out = {"energy_kwh_per_step": hour.energy_kwh * seconds / 3600.0,
           "carbon_kg_co2e_per_step": hour.carbon_kg_co2e * seconds / 3600.0}
    out["usd_per_step"] = hour.compute_usd * seconds / 3600.0 if hour.compute_usd is not None else None
    out["usd_per_hour"] = hour.compute_usd
    return out


@dataclass(frozen=True)
class DistillationEstimate:
    teacher: Estimate
    student: Estimate
    teacher_forward_s: float
    step_s: float
    step_flops: float
    teacher_output_bytes: float
    peak_bytes: float
    device_total_bytes: float
    capacity_bytes: float
    fits: bool
    money: dict = field(default_factory=dict)
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": "distillation", "teacher": self.teacher.to_dict(), "student": self.student.to_dict(),
                "teacher_forward_s": self.teacher_forward_s, "step_s": self.step_s, "step_flops": self.step_flops,
                "teacher_output_bytes": self.teacher_output_bytes, "peak_bytes": self.peak_bytes,
                "device_total_bytes": self.device_total_bytes, "capacity_bytes": self.capacity_bytes,
                "fits": self.fits, "money": dict(self.money), "assumptions": dict(self.assumptions)}


def _outputs_per_sample(spec, seq: int) -> int:
    """Numbers a model outputs per sample (its logits): classes, or seq x vocabulary for a language model."""
    vocab = getattr(spec, "vocab_size", 0)
    if getattr(spec, "generative", False) and vocab:
        return seq * vocab
    classes = getattr(spec, "classes", None) or getattr(spec, "num_labels", 0) or getattr(spec, "output_dim", 0)
    return int(classes or 1)


def distillation_estimate(teacher, student, hardware=None, workload=None, teacher_precision: str | None = None,
                          pricing: dict | None = None) -> DistillationEstimate:
    """One distillation step: ``teacher`` forward (inference) + ``student`` training step, on one device."""
    t_spec, s_spec = load_model(teacher), load_model(student)
    if t_spec.modality != s_spec.modality:
        raise InputError("teacher", f"must take the same input as the student: {t_spec.name} takes "
                                    f"{t_spec.modality}, {s_spec.name} {s_spec.modality}")
    hw = resolve_hardware(hardware)
    w = _train_workload(s_spec, workload)
    tp = teacher_precision or {"amp-bf16": "bf16", "amp-fp16": "fp16"}.get(w.precision, w.precision)
    if tp in ("int8", "int4") and not w.lora_rank:
        pass  # a quantized teacher is fine: it is frozen
    t_fields = {"task": "infer", "batch": w.batch, "seq": w.seq, "image_size": w.image_size, "prompt": w.seq,
                "generate": 0, "precision": tp}
    try:
        t_est = estimate(t_spec, hardware=hw, workload=t_fields, pricing=pricing)
    except InputError as err:
        raise InputError(f"teacher.{err.field}", err.message) from None
    s_est = estimate(s_spec, hardware=hw, workload=w, pricing=pricing)
    t_fwd = t_est.time_s.prefill_s if t_est.unit == "request" else t_est.time_s.forward_s
    out_bytes = w.batch * _outputs_per_sample(t_spec, w.seq) * 4.0
    peak = s_est.memory_bytes.peak + t_est.memory_bytes.weights + out_bytes
    overhead = s_est.memory_bytes.runtime_overhead + 0.06 * (t_est.memory_bytes.weights + out_bytes)
    total = peak + overhead
    step = t_fwd + s_est.time_s.step_s
    return DistillationEstimate(
        teacher=t_est, student=s_est, teacher_forward_s=t_fwd, step_s=step,
        step_flops=t_est.flops.forward + s_est.flops.total, teacher_output_bytes=out_bytes, peak_bytes=peak,
        device_total_bytes=total, capacity_bytes=float(hw.memory_bytes), fits=total <= hw.memory_bytes,
        money=_money(hw, pricing, step),
        assumptions={"method": "Hinton et al. 2015: teacher forward (frozen, inference) + student training step",
                     "teacher_precision": tp,
                     "teacher_outputs": "fp32 logits kept until the student's backward: batch x classes "
                                        "(x seq for a language model's vocabulary)",
                     "memory": "student peak + teacher weights + teacher outputs; runtime overhead as the student's "
                               "+ 6% allocator slack on the teacher's share"})


@dataclass(frozen=True)
class QATEstimate:
    base: Estimate
    bits: int
    extra_saved_bytes: float
    extra_time_s: float
    step_s: float
    peak_bytes: float
    device_total_bytes: float
    capacity_bytes: float
    fits: bool
    deployed_model_bytes: float
    float_model_bytes: float
    money: dict = field(default_factory=dict)
    assumptions: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"method": "qat", "bits": self.bits, "base": self.base.to_dict(),
                "extra_saved_bytes": self.extra_saved_bytes, "extra_time_s": self.extra_time_s,
                "step_s": self.step_s, "peak_bytes": self.peak_bytes, "device_total_bytes": self.device_total_bytes,
                "capacity_bytes": self.capacity_bytes, "fits": self.fits,
                "deployed_model_bytes": self.deployed_model_bytes, "float_model_bytes": self.float_model_bytes,
                "money": dict(self.money), "assumptions": dict(self.assumptions)}


def qat_estimate(model, hardware=None, workload=None, bits: int = 8, efficiency=None,
                 pricing: dict | None = None) -> QATEstimate:
    """A quantization-aware training step (see the module docstring) and the size of the model it deploys."""
    if bits not in (4, 8):
        raise InputError("qat_bits", f"must be 8 or 4, got {bits!r}")
    spec = load_model(model)
    hw = resolve_hardware(hardware)
    w = _train_workload(spec, workload)
    if w.prec.weight_only_quant:
        raise InputError("precision", "QAT trains the float weights (fake-quantized); use fp32, amp-bf16 or bf16")
    base = estimate(spec, hardware=hw, workload=w, efficiency=efficiency, pricing=pricing)
    eff = efficiency or default_efficiency(hw)
    matmul_rows = [r for r in base.layers if r.kind in ("linear", "conv2d")]
    from .estimator import ledger, make_ctx  # the rows' matmul fields (LayerRow keeps only the totals)

    rows = [r for r in ledger(spec, make_ctx(spec, w, "train")) if r.matmul_params]
    wparams = sum(r.matmul_params * r.count for r in rows)
    in_b = w.prec.compute_bytes if w.prec.autocast else w.prec.stream_bytes
    act_elems = sum(r.weight_input_bytes * r.count for r in rows) / in_b if in_b else 0.0
    wb = w.prec.weight_bytes
    saved = wparams * (wb + QAT_MASK_BYTES) + act_elems * QAT_MASK_BYTES
    # forward: read + write each fake-quantized tensor and write its mask; backward: read the mask and the
    # gradient, write the gradient
    traffic = wparams * (2 * wb + QAT_MASK_BYTES) * 2 + act_elems * (2 * in_b + QAT_MASK_BYTES) * 2
    layers = sum(r.count for r in matmul_rows)
    extra_s = traffic / (hw.memory_bandwidth_bytes_per_s * eff.bandwidth) + \
        3 * QAT_HOST_OPS_PER_LAYER * layers * eff.overhead_s  # forward + backward (2x) eager calls
    m = base.memory_bytes
    peak = m.peak + saved
    total = peak + (m.device_total - m.peak) + 0.06 * saved
    step = base.time_s.step_s + extra_s
    float_bytes = base.params.total * 4.0
    deployed = wparams * bits / 8.0 + (base.params.total - wparams) * 4.0
    return QATEstimate(
        base=base, bits=bits, extra_saved_bytes=saved, extra_time_s=extra_s, step_s=step, peak_bytes=peak,
        device_total_bytes=total, capacity_bytes=float(hw.memory_bytes), fits=total <= hw.memory_bytes,
        deployed_model_bytes=deployed, float_model_bytes=float_bytes, money=_money(hw, pricing, step),
        assumptions={"method": "fake quantization of every conv/linear weight and of the activations they read "
                               "(Jacob et al. 2018; torch.ao.quantization QAT)",
                     "saved": f"{wparams:,} weights x ({wb:g} B fake-quantized copy + 1 B mask) + "
                              f"{act_elems:,.0f} activation elements x 1 B mask",
                     "time": f"{traffic:,.0f} bytes of elementwise traffic at {eff.bandwidth:.0%} of "
                             f"{hw.memory_bandwidth_bytes_per_s / 1e9:,.0f} GB/s + "
                             f"{3 * QAT_HOST_OPS_PER_LAYER * layers} eager calls x {eff.overhead_s * 1e6:g} us",
                     "deployed": f"{bits}-bit matmul weights + the other parameters in fp32"})
