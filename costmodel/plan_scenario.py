"""Plans are scenarios too: a training (or serving) plan's inputs stored in a scenario's ``plan`` entry, evaluated
again from them, and summarised with their money, energy and carbon and what those assume.

    {"kind": "training", "layout": {dp, tp, pp, zero, micro_batch, grad_checkpointing, offload},
     "tokens": ..., "samples": ..., "epochs": ..., "global_batch": ..., "pricing": {cost_breakdown keywords}}
    {"kind": "serving", "prompt": ..., "generate": ..., "precision": ..., "kv_cache_precision": ..., "tp": ...,
     "engine": ..., "pricing": {...}}

The scenario's ``workload`` is one device's micro-batch (training) or batch-1 request (serving), so the
scenario's own estimate stays what ``costmodel.scenario.evaluate_scenario`` computes.
"""

from __future__ import annotations

from .errors import InputError
from .workload import checkpointing

PLAN_KINDS = ("training", "serving")


def _clean_pricing(pricing: dict | None) -> dict:
    return {k: v for k, v in (pricing or {}).items() if v not in (None, "")}


def training_scenario(name: str, model, hardware: str, workload: dict, layout: dict, *, tokens=None, samples=None,
                      epochs: float = 1.0, global_batch: int | None = None, pricing: dict | None = None,
                      notes: str = "") -> dict:
    """A scenario of a training plan (the arguments of ``costmodel.plans.plan_training``)."""
    plan = {"kind": "training", "layout": dict(layout), "epochs": float(epochs), "global_batch": global_batch,
            "pricing": _clean_pricing(pricing)}
    if tokens is not None:
        plan["tokens"] = float(tokens)
    if samples is not None:
        plan["samples"] = int(samples)
    wl = {**workload, "task": "train", "batch": int(layout.get("micro_batch", 1)),
          "grad_checkpointing": checkpointing(layout.get("grad_checkpointing", False), "layout.grad_checkpointing")}
    return {"name": name, "model": model, "hardware": hardware, "workload": wl, "plan": plan, "notes": notes}


def serving_scenario(name: str, model, hardware: str, *, prompt: int, generate: int, precision: str = "bf16",
                     kv_cache_precision: str | None = None, tp: int = 1, engine: str = "eager",
                     pricing: dict | None = None, notes: str = "") -> dict:
    """A scenario of a serving plan (the arguments of ``costmodel.plans.plan_serving``)."""
    plan = {"kind": "serving", "prompt": prompt, "generate": generate, "precision": precision,
            "kv_cache_precision": kv_cache_precision, "tp": tp, "engine": engine, "pricing": _clean_pricing(pricing)}
    wl = {"task": "infer", "batch": 1, "prompt": prompt, "generate": generate, "precision": precision}
    return {"name": name, "model": model, "hardware": hardware, "workload": wl, "plan": plan, "notes": notes}


def evaluate_plan(scenario: dict):
    """The scenario's plan (``TrainingPlan`` / ``ServingPlan``), or None when it stores no plan of a known kind."""
    from .catalog import hardware_from_dict, load_hardware
    from .plans import plan_serving, plan_training

    plan = scenario.get("plan") or {}
    kind = plan.get("kind")
    if kind not in PLAN_KINDS:
        return None
    hw = scenario.get("hardware")
    hw = load_hardware(hw) if isinstance(hw, str) else hardware_from_dict(hw)
    try:
        if kind == "training":
            w = {k: v for k, v in (scenario.get("workload") or {}).items()
                 if k in ("seq", "image_size", "precision", "optimizer", "lora_rank", "lora_targets", "bitfit")}
            return plan_training(scenario["model"], hw, workload=w, layout=plan.get("layout") or {},
                                 tokens=plan.get("tokens"), samples=plan.get("samples"),
                                 epochs=plan.get("epochs", 1.0), global_batch=plan.get("global_batch"),
                                 pricing=plan.get("pricing") or None)
        return plan_serving(scenario["model"], hw, prompt=plan.get("prompt", 512), generate=plan.get("generate", 128),
                            precision=plan.get("precision", "bf16"), kv_cache_precision=plan.get("kv_cache_precision"),
                            tp=plan.get("tp", 1), engine=plan.get("engine", "eager"), pricing=plan.get("pricing") or None)
    except InputError as err:
        raise InputError(f"plan.{err.field}", err.message) from None
    except TypeError as exc:
        raise InputError("plan", f"has a value of the wrong type ({exc})") from None


def plan_summary(plan) -> dict:
    """The plan's headline numbers, flat: devices, time, GPU-hours, money, energy, carbon, and the assumptions
    those rest on (price per device-hour and its provider/tier, power, PUE, grid intensity)."""
    from .plans import ServingPlan, TrainingPlan

    if isinstance(plan, TrainingPlan):
        c = plan.cost
        out = {"plan.kind": "training", "plan.num_devices": plan.num_devices, "plan.tokens": plan.tokens,
               "plan.steps": plan.steps, "plan.step_s": plan.step.step_s, "plan.wall_clock_s": plan.wall_clock_s,
               "plan.gpu_hours": plan.gpu_hours, "plan.mfu": plan.step.mfu, "plan.fits": plan.step.fits,
               "plan.compute_usd": c.compute_usd, "plan.storage_usd": c.storage_usd, "plan.total_usd": c.total_usd,
               "plan.energy_kwh": c.energy_kwh, "plan.carbon_kg_co2e": c.carbon_kg_co2e}
        for k, v in c.assumptions.items():
            out[f"plan.assumption.{k}"] = v.get("value") if isinstance(v, dict) else v
        return out
    if isinstance(plan, ServingPlan):
        best = plan.cheapest_fitting_point
        out = {"plan.kind": "serving", "plan.tp": plan.tp, "plan.max_batch": plan.max_batch,
               "plan.max_context": plan.max_context, "plan.ttft_s": plan.points[0].ttft_s,
               "plan.decode_per_token_s": plan.points[0].decode_per_token_s}
        if best is not None:
            out.update({"plan.best_batch": best.batch, "plan.usd_per_million_tokens": best.usd_per_million_tokens,
                        "plan.energy_kwh_per_million_tokens": best.energy_kwh_per_million_tokens,
                        "plan.throughput_tokens_per_s": best.throughput_tokens_per_s})
        for k, v in (plan.assumptions.get("price") or {}).items():
            out[f"plan.assumption.{k}"] = v.get("value") if isinstance(v, dict) else v
        return out
    return {}
