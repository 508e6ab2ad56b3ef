"""Serving: engine profiles, continuous batching, the online simulator and capacity planning (docs/serving.md).

    plan_serving(model, hardware, prompt=..., generate=...)          -> ServingPlan (static table + offline throughput)
    step_model(model, hardware, engine=None, tp=...)                  -> (StepModel, why this engine)
    offline_throughput(step_model, input_tokens, output_tokens)      -> OfflineResult
    simulate(step_model, poisson_requests(qps, n, isl, osl))          -> SimResult (TTFT / TPOT / e2e percentiles)
    plan_capacity(model, qps=..., slo_ttft_s=..., slo_tpot_s=...)     -> CapacityPlan (cheapest fleet, frontier)
"""

from .batching.offline import OfflineResult, offline_throughput
from .capacity import CapacityPlan, plan_capacity
from .engines import EngineProfile, default_engine, engine_names, get_engine
from .features import Speculation, expected_tokens_per_step, simulate_disaggregated
from .model import Layout, StepModel
from .plan import ServingPlan, ServingPoint, plan_serving, step_model
from .simulate import Requests, SimResult, poisson_requests, read_trace, simulate

__all__ = ["OfflineResult", "offline_throughput", "CapacityPlan", "plan_capacity", "EngineProfile", "default_engine",
           "engine_names", "get_engine", "Speculation", "expected_tokens_per_step", "simulate_disaggregated", "Layout",
           "StepModel", "ServingPlan", "ServingPoint", "plan_serving", "step_model",
           "Requests", "SimResult", "poisson_requests", "read_trace", "simulate"]
