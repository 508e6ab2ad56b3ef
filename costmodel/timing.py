"""Step-time composition: from the roofline of each pass (``costmodel.perf.pass_times``) to the time of one
unit of a run on one device, and its utilisation (docs/formulas.md, "Time").

    train:       step    = forward + backward + recompute + adapters + optimizer step
    generation:  request = prefill + generate x decode step
    forward:     forward  (non-generative inference)

Each function takes records (the ledger work of the run, the device's rates, the efficiency) and returns a
typed ``Times`` record and a ``Perf`` record (costmodel.results).
"""

from __future__ import annotations

from dataclasses import dataclass

from .layers import Layer
from .perf import (DeviceRates, Efficiency, PassSpec, effective_peak_flops, optimizer_bytes_per_param,
                   optimizer_time_s, pass_times)
from .results import ForwardTimes, GenerationTimes, Perf, TrainTimes
from .workload import Workload

# peft's LoRA forward adds lora_dropout(x) (an Identity call when p = 0), lora_A, lora_B, * scaling and
# + result: 5 eager calls beyond the base layer's (docs/formulas.md, "Host overhead")
LORA_HOST_OPS = 5.0


@dataclass(frozen=True)
class RunWork:
    """What the time model needs from an estimate's ledger sums: one device, one unit of the run.

    ``rows``: the ledger of the main pass (training step, prefill or forward). FLOPs are whole-batch totals
    with LoRA adapters included (``adapter_forward_flops`` is their forward share). ``weight_read_bytes``:
    bytes per weight as stored (quantized, 2:4-compressed ...); ``params`` / ``matmul_params`` / ``trainable``:
    counts; ``tokens``: tokens per unit (samples for non-text models)."""

    rows: tuple[Layer, ...]
    weight_read_bytes: float  # bytes read per weight: the blended width (quantized matmuls read fewer bytes)
    forward_flops: float
    backward_flops: float
    recompute_flops: float
    adapter_forward_flops: float
    adapter_rows: int
    params: int
    matmul_params: int
    trainable: int
    tokens: int
    full_backward: bool


def device_rates(hw, w: Workload, causal: bool = False) -> DeviceRates:
    """The peaks a workload's kernels run at: the compute dtype's peak for GEMMs; the attention core in bf16
    when the GEMMs run in fp8/fp4 (FlashAttention and cuDNN attention keep bf16 inputs: Transformer Engine's
    fp8 recipes cover the linear layers); cuDNN convolutions and RNNs at TF32 under fp32 on GPUs
    (torch.backends.cudnn.allow_tf32 = True by default, unlike matmuls); 2:4 sparse weights at the device's
    sparse speedup. ``causal``: the model's attention is causal (decoders)."""
    p = w.prec
    fp32 = p.compute_dtype == "fp32"
    low = p.compute_dtype in ("fp8", "fp4")
    return DeviceRates(
        peak_flops_per_s=hw.peak_flops(p.compute_dtype), bandwidth_bytes_per_s=hw.memory_bandwidth_bytes_per_s,
        cudnn_peak_flops_per_s=hw.peak_flops("tf32") if fp32 and hw.kind == "gpu" else 0.0, fp32=fp32,
        sparse_speedup=hw.sparse_2_4_speedup if w.sparsity_pattern == "2:4" else 1.0,
        dtype=p.compute_dtype, hardware_id=hw.id, attention_peak_flops_per_s=hw.peak_flops("bf16") if low else 0.0,
        causal=causal)


def _matmul_rate(rates: DeviceRates, eff: Efficiency) -> float:
    return rates.peak_flops_per_s * (eff.matmul_fp32 if rates.fp32 else eff.matmul)


def train_times(work: RunWork, w: Workload, rates: DeviceRates, eff: Efficiency) -> tuple[TrainTimes, Perf]:
    """One optimizer step. Under autocast each trainable matmul weight is also cast to 16 bits in the forward
    (read 4 B, write 2 B) and the cast copy is read again in backward; the optimizer step streams weights,
    gradients and states once (``costmodel.perf.optimizer_time_s``); gradient checkpointing re-runs the
    forward share ``recompute_flops / forward_flops``; LoRA adapters run 3x their forward (forward, dX, dW)
    plus their eager calls."""
    p = w.prec
    per_param = work.weight_read_bytes
    cast = 2.0 * p.compute_bytes * (work.matmul_params / work.params if work.params else 0.0) if p.autocast else 0.0
    bwd_weight = (p.compute_bytes if p.autocast else per_param) + (p.grad_bytes if work.full_backward else 0.0)
    spec = PassSpec(weight_read_bytes=per_param + cast, training=True, backward_weight_bytes=bwd_weight,
                    full_backward=work.full_backward, fixed_host_s=eff.step_overhead_s)
    f, b = pass_times(work.rows, rates, eff, spec)
    adapter_s = (3.0 * work.adapter_forward_flops / _matmul_rate(rates, eff)
                 + 3.0 * eff.overhead_s * LORA_HOST_OPS * work.adapter_rows)
    fwd_flops, bwd_flops, re_flops = work.forward_flops, work.backward_flops, work.recompute_flops
    recompute_s = f.total_s * (re_flops / fwd_flops) if fwd_flops and re_flops else 0.0
    opt = w.opt
    states = (0.0 if opt.factored else opt.states_per_param * p.state_bytes + opt.fixed_bytes_per_param) + p.master_bytes
    opt_s = optimizer_time_s(work.trainable, optimizer_bytes_per_param(p.weight_bytes, p.grad_bytes, states,
                                                                       opt.step_temp_per_param * p.state_bytes),
                             rates.bandwidth_bytes_per_s, eff)
    step = f.total_s + b.total_s + recompute_s + adapter_s + opt_s
    times = TrainTimes(forward_s=f.total_s, backward_s=b.total_s + adapter_s, recompute_s=recompute_s,
                       optimizer_s=opt_s, step_s=step)
    peak = effective_peak_flops((f, b), rates.peak_flops_per_s, 3.0 * work.adapter_forward_flops)
    perf = Perf(peak_flops_per_s=peak, mfu=(fwd_flops + bwd_flops) / (step * peak),
                hfu=(fwd_flops + bwd_flops + re_flops) / (step * peak), tokens_per_s=work.tokens / step,
                samples_per_s=w.batch / step, bound=f.bound if f.total_s >= b.total_s else b.bound,
                host_s=f.host_s + b.host_s, device_s=f.device_s + b.device_s)
    return times, perf


def _adapter_forward_s(work: RunWork, rates: DeviceRates, eff: Efficiency) -> float:
    return work.adapter_forward_flops / _matmul_rate(rates, eff) + eff.overhead_s * LORA_HOST_OPS * work.adapter_rows


def generation_times(work: RunWork, decode_rows: tuple[Layer, ...], w: Workload, rates: DeviceRates,
                     eff: Efficiency) -> tuple[GenerationTimes, Perf]:
    """One request of the whole batch: the prefill of ``w.prompt`` tokens, then ``w.generate`` decode steps,
    each priced at the mean context length (``decode_rows``: the ledger of one decode step). A decode step
    adds ``eff.decode_overhead_s`` of serving-loop host time (cache update, sampling)."""
    spec = PassSpec(weight_read_bytes=work.weight_read_bytes, fixed_host_s=eff.step_overhead_s)
    f, _ = pass_times(work.rows, rates, eff, spec)
    d_spec = PassSpec(weight_read_bytes=work.weight_read_bytes,
                      fixed_host_s=eff.step_overhead_s + eff.decode_overhead_s)
    d, _ = pass_times(decode_rows, rates, eff, d_spec)
    prefill = f.total_s + _adapter_forward_s(work, rates, eff)
    decode = d.total_s + eff.overhead_s * LORA_HOST_OPS * work.adapter_rows
    times = GenerationTimes(prefill_s=prefill, decode_per_token_s=decode, generate_s=decode * w.generate,
                            request_s=prefill + decode * w.generate)
    peak = effective_peak_flops((f,), rates.peak_flops_per_s, work.adapter_forward_flops)
    mfu = work.forward_flops / (prefill * peak)
    perf = Perf(peak_flops_per_s=peak, mfu=mfu, hfu=mfu, tokens_per_s=w.batch / decode,
                samples_per_s=w.batch / (prefill + decode * w.generate),
                prefill_tokens_per_s=w.batch * w.prompt / prefill, bound=f.bound, decode_bound=d.bound,
                host_s=f.host_s, device_s=f.device_s)
    return times, perf


def forward_times(work: RunWork, w: Workload, rates: DeviceRates, eff: Efficiency) -> tuple[ForwardTimes, Perf]:
    """One forward of a non-generative model over the batch."""
    spec = PassSpec(weight_read_bytes=work.weight_read_bytes, fixed_host_s=eff.step_overhead_s)
    f, _ = pass_times(work.rows, rates, eff, spec)
    forward = f.total_s + _adapter_forward_s(work, rates, eff)
    peak = effective_peak_flops((f,), rates.peak_flops_per_s, work.adapter_forward_flops)
    mfu = work.forward_flops / (forward * peak)
    perf = Perf(peak_flops_per_s=peak, mfu=mfu, hfu=mfu, tokens_per_s=work.tokens / forward,
                samples_per_s=w.batch / forward, bound=f.bound, host_s=f.host_s, device_s=f.device_s)
    return ForwardTimes(forward_s=forward), perf
