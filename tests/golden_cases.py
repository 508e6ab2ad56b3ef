"""The JSON contract cases pinned by tests/test_golden_contract.py.

Every preset is estimated for training and for inference (with the per-layer ledger), on a GPU and a CPU
where it matters, plus training plans (every ZeRO stage, expert parallelism, pipeline), a serving plan and
a layout search. ``python tests/golden_cases.py`` rewrites tests/golden/*.json from the current code: run
it only when a number is meant to change, and list each change (before/after) in the commit message.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def preset_cases(preset_id: str, family: str, modality: str, generative: bool) -> dict:
    import costmodel
    from costmodel.limits import model_limits
    from costmodel.models import load_model

    out = {}
    # a conv net whose flatten feeds a dense layer takes only its own input size (costmodel.limits): 64 for the
    # others (the numbers of the fixed-size nets are those they always had; only workload.image_size says so now)
    fixed = model_limits(load_model(preset_id)).image_hw
    side = fixed[0] if fixed else 64
    if modality == "text":
        train = dict(task="train", batch=2, seq=128, precision="amp-bf16", optimizer="adamw")
    elif modality == "image":
        train = dict(task="train", batch=8, image_size=side, precision="amp-bf16", optimizer="sgd-momentum")
    else:
        train = dict(task="train", batch=32, precision="fp32", optimizer="adam")
    out["train_h100"] = costmodel.estimate(preset_id, hardware="h100-sxm-80gb", **train).to_dict(with_layers=True)
    out["train_fp32_a100"] = costmodel.estimate(preset_id, hardware="a100-sxm-80gb",
                                                **{**train, "precision": "fp32"}).to_dict()
    if generative:
        infer = dict(task="infer", batch=4, prompt=64, generate=16, precision="bf16")
    elif modality == "text":
        infer = dict(task="infer", batch=4, seq=128, precision="bf16")
    elif modality == "image":
        infer = dict(task="infer", batch=8, image_size=side, precision="bf16")
    else:
        infer = dict(task="infer", batch=32, precision="bf16")
    out["infer_h100"] = costmodel.estimate(preset_id, hardware="h100-sxm-80gb", **infer).to_dict(with_layers=True)
    out["infer_cpu"] = costmodel.estimate(preset_id, hardware="cpu-generic", **infer).to_dict()
    return out


def plan_cases() -> dict:
    from costmodel.plans import plan_serving, plan_training, search_layouts

    out = {}
    for zero in (0, 1, 2, 3):
        out[f"plan_train_llama-2-7b_zero{zero}"] = plan_training(
            "llama-2-7b", "a100-sxm-80gb", tokens=1e10, workload={"seq": 2048},
            layout={"dp": 16, "tp": 2, "zero": zero, "micro_batch": 1}, global_batch=64).to_dict()
    out["plan_train_mixtral_ep"] = plan_training(
        "mixtral-8x7b", "h100-sxm-80gb", tokens=1e10, workload={"seq": 2048},
        layout={"dp": 16, "tp": 2, "ep": 8, "zero": 1, "micro_batch": 1, "grad_checkpointing": True},
        global_batch=64).to_dict()
    out["plan_train_llama-2-70b_pp"] = plan_training(
        "llama-2-70b", "h100-sxm-80gb", tokens=1e11, workload={"seq": 4096},
        layout={"dp": 8, "tp": 8, "pp": 4, "zero": 1, "micro_batch": 1}, global_batch=256).to_dict()
    out["plan_train_resnet-50"] = plan_training(
        "resnet-50", "a100-sxm-80gb", samples=1_281_167, epochs=2, workload={"image_size": 224},
        layout={"dp": 8, "micro_batch": 64}).to_dict()
    out["plan_serve_llama-3-8b_l4"] = plan_serving("llama-3-8b", "l4-24gb", prompt=512, generate=128,
                                                   precision="int4").to_dict()
    out["plan_serve_llama-2-70b_tp4"] = plan_serving("llama-2-70b", "h100-sxm-80gb", prompt=1024, generate=256,
                                                     tp=4, engine="compiled").to_dict()
    out["search_llama-2-7b"] = [r.to_dict() for r in search_layouts(
        "llama-2-7b", "h100-sxm-80gb", tokens=1e11, workload={"seq": 2048}, global_batch=256, max_devices=64,
        limit=8)]
    return out


def all_cases() -> dict[str, dict]:
    from costmodel.models import list_presets, load_model

    files = {}
    for p in list_presets():
        spec = load_model(p.id)
        files[p.id] = preset_cases(p.id, spec.family, spec.modality, spec.generative)
    files["plans"] = plan_cases()
    return files


def dumps(obj) -> str:
    return json.dumps(obj, indent=1, sort_keys=False, allow_nan=True) + "\n"


if __name__ == "__main__":
    GOLDEN_DIR.mkdir(exist_ok=True)
    for name, cases in all_cases().items():
        (GOLDEN_DIR / f"{name}.json").write_text(dumps(cases), encoding="utf-8")
    print(f"wrote {len(list(GOLDEN_DIR.glob('*.json')))} files to {GOLDEN_DIR}")
