"""Stored-run records whose "measured" times the estimator itself generated with a known ``Efficiency``.

Reference for calibration tests: a correct fit recovers parameters that reproduce these times (to well under 1%),
and the CLI and pages must show what ``costmodel.profiler.calibrate`` computes from them. Used by
tests/test_profiler.py, tests/test_calibration_ui.py and tests/test_probe.py."""

from __future__ import annotations

from dataclasses import replace

TINY_GPT2 = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=2, n_embd=64, n_head=4,
                 vocab_size=1000, n_positions=128)
# the generating efficiency: cpu-generic's defaults with these fields replaced
TRUTH = dict(matmul_fp32=0.05, overhead_s=2e-4, bandwidth=0.2)


def known_efficiency_records(infer_model=TINY_GPT2) -> list[dict]:
    """Four records of this machine's CPU: two GPT-2 training steps, one generation of ``infer_model`` (prefill +
    decode) and one SimpleCNN step, all fp32 on ``cpu-generic``."""
    from costmodel.api import estimate
    from costmodel.catalog import load_hardware
    from costmodel.perf import default_efficiency
    from costmodel.profiler.env import device_label
    from costmodel.profiler.request import resolve_model

    truth = replace(default_efficiency(load_hardware("cpu-generic")), **TRUTH)
    out = []
    for cfg, wl in [(TINY_GPT2, {"task": "train", "batch": 4, "seq": 64, "precision": "fp32"}),
                    (TINY_GPT2, {"task": "train", "batch": 16, "seq": 128, "precision": "fp32"}),
                    (infer_model, {"task": "infer", "batch": 2, "prompt": 64, "generate": 8, "precision": "fp32"}),
                    ("simple-cnn-28", {"task": "train", "batch": 64, "precision": "fp32"})]:
        _, config = resolve_model(cfg)
        t = estimate(config, hardware="cpu-generic", workload=wl, efficiency=truth).time_s
        measured = ({"step_s": t.step_s} if wl["task"] == "train"
                    else {"prefill_s": t.prefill_s, "decode_per_token_s": t.decode_per_token_s})
        out.append({"status": "ok", "device": device_label("cpu"), "model": "tiny " + wl["task"], "task": wl["task"],
                    "workload": wl, "request": {"config": config}, "predicted": {"hardware": "cpu-generic"},
                    "measured": measured})
    return out
