"""Plan serving: engine, latency, throughput, memory, $ per million tokens, simulated latency percentiles under
traffic and the cheapest fleet within SLOs (costmodel.serving)."""

import streamlit as st

from costmodel import plans, prices
from costmodel.models import list_presets
from costmodel.ui import figures, format as fmt, page_state, tables
from costmodel.ui.safe_text import md
from costmodel.catalog import catalog_state, list_hardware
from costmodel.errors import InputError
from costmodel.serving import capacity as serving_capacity
from costmodel.serving.engines import engine_names
from costmodel.serving.plan import step_model
from costmodel.serving.simulate import LENGTH_DISTRIBUTIONS, poisson_requests, simulate
from costmodel_dashboard.app_pages._widgets import PageState, downloads, figure, model_picker, show_error

st.title("Plan serving")
st.caption("The engine each device would run, time to first token and per-token latency against batch size, the "
           "continuous-batching throughput, latency percentiles under your traffic and the cheapest fleet that meets "
           "your SLOs. Numbers from `costmodel.plans.plan_serving` and `costmodel.serving`.")

DEFAULTS = {**page_state.MODEL_STATE, "preset": "llama-3-8b", "hw": "h100-sxm-80gb", "prompt": 1024, "generate": 256,
            "precision": "bf16", "kv_precision": "", "tp": 1, "engine": "auto", "time_source": "roofline", "provider": "",
            "tier": "on-demand", "region": "world", "utilization": 1.0, "also": "", "also_models": "", "usd_h": 0.0,
            "qps": 2.0, "dist": "fixed", "slo_ttft_ms": 500.0, "slo_tpot_ms": 50.0, "requests": 500}
SERVE_PRECISIONS = ["fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"]
ENGINES = ["auto", *engine_names()]
TIME_SOURCES = ["roofline", "auto", "measured"]
ps = PageState("plan_serving", DEFAULTS)
sb = st.sidebar
hws = {h.id: h for h in list_hardware()}


@st.cache_resource(show_spinner=False, max_entries=32)
def _serving_plan(model_key, hw_id, prompt, generate, precision, kv, tp, engine, pricing, time_source, state):
    """``plans.plan_serving`` once per input and catalog state (a frozen record, shared by every session)."""
    return plans.plan_serving(model_key, hw_id, prompt=prompt, generate=generate, precision=precision,
                              kv_cache_precision=kv, tp=tp, engine=engine, pricing=pricing, time_source=time_source)


def plan_for(hw_id: str, other_model=None):
    return _serving_plan(other_model or model, hw_id, ps.get("prompt"), ps.get("generate"), ps.get("precision"),
                         ps.get("kv_precision") or None, ps.get("tp"), ps.get("engine"),
                         page_state.pricing_from_state(ps.state), ps.get("time_source"), catalog_state())


@st.cache_data(show_spinner=False, max_entries=32)
def _simulate(model_key, hw_id, precision, kv, tp, engine, prompt, generate, qps, dist, n, time_source):
    sm, _ = step_model(model_key, hw_id, precision=precision, kv_cache_precision=kv, tp=tp, engine=engine,
                       time_source=time_source)
    reqs = poisson_requests(qps, n, prompt, generate, distribution=dist, spread=0.5 if dist != "fixed" else 0.0,
                            seed=0, max_positions=sm.spec.max_positions or None)
    return simulate(sm, reqs).summary()


@st.cache_data(show_spinner=False, max_entries=16)
def _capacity(model_key, devices, precision, kv, engine, prompt, generate, qps, ttft, tpot, dist, pricing_items,
              time_source):
    return serving_capacity.plan_capacity(
        model_key, qps=qps, input_tokens=prompt, output_tokens=generate, slo_ttft_s=ttft, slo_tpot_s=tpot,
        hardware=devices, tps=(1, 2, 4, 8), engines=(engine,), precisions=(precision,), kv_cache_precision=kv,
        pricing=dict(pricing_items), num_requests=300, distribution=dist, spread=0.5 if dist != "fixed" else 0.0,
        time_source=time_source)


try:
    model = model_picker(ps)
    hw_id = ps.select(sb, "Hardware", "hw", list(hws), format_func=lambda i: f"{i} — {hws[i].name}")
    ps.number(sb, "Prompt tokens", "prompt", min_value=0, max_value=1 << 24)
    ps.number(sb, "Generated tokens", "generate", min_value=0, max_value=1 << 24)
    ps.select(sb, "Weight precision", "precision", SERVE_PRECISIONS)
    ps.select(sb, "KV-cache precision", "kv_precision", ["", "fp32", "bf16", "fp16", "fp8", "int8", "int4", "fp4"],
              format_func=lambda p: p or "as the compute dtype")
    ps.number(sb, "Tensor-parallel devices", "tp", min_value=0, max_value=64)
    ps.select(sb, "Engine", "engine", ENGINES,
              help="auto: what a planner deploys on the device (vLLM on NVIDIA, vLLM-ROCm on AMD, JetStream on TPU, "
                   "eager on CPU); hf-eager: Hugging Face generate, static batch; vllm / sglang / tensorrt-llm: paged KV, "
                   "continuous batching, CUDA graphs, chunked prefill (docs/serving.md)")
    ps.select(sb, "Op times", "time_source", TIME_SOURCES,
              help="roofline: every op from the engine's fitted efficiencies of the datasheet peaks; measured: from "
                   "NVIDIA aiconfigurator-core's measured per-op tables of the engine's backend on this device "
                   "(pip install costmodel[measured]); auto: measured where such tables exist, else roofline")
    with sb.expander("Traffic and SLOs", expanded=True):
        ps.number(st, "Requests per second", "qps", min_value=0.001, max_value=1e6, step=0.5)
        ps.select(st, "Length distribution", "dist", list(LENGTH_DISTRIBUTIONS),
                  help="fixed: every request has the prompt / generated lengths above; uniform: +-50%; exponential; "
                       "lognormal (sigma 0.5); means as above")
        ps.number(st, "p99 TTFT SLO (ms)", "slo_ttft_ms", min_value=1.0, max_value=1e7, step=50.0)
        ps.number(st, "p99 TPOT SLO (ms)", "slo_tpot_ms", min_value=0.1, max_value=1e6, step=5.0)
        ps.number(st, "Requests to simulate", "requests", min_value=50, max_value=10000, step=50)
    with sb.expander("Price, power, carbon"):
        provs = [""] + prices.list_providers()
        ps.select(st, "Provider", "provider", provs, format_func=lambda p: p or "median across providers")
        ps.select(st, "Tier", "tier", list(prices.TIERS))
        ps.select(st, "Grid region (carbon)", "region", [r.region for r in prices.list_regions()])
        ps.slider(st, "Power draw (fraction of idle-to-TDP)", "utilization", 0.0, 1.0, step=0.05)
        ps.number(st, "Your price ($/device-hour, 0 = catalog)", "usd_h", min_value=0.0, max_value=1e6,
                  help="a negotiated rate: replaces the catalog's median price for this device (and the others "
                       "compared below)")
    plan = plan_for(hw_id)
except InputError as err:
    ps.stop(err)
ps.show_problems()

st.info(f"**Engine: {plan.engine}** — {plan.engine_reason}", icon=":material/settings:")
_sh = plan.op_time_shares
st.caption(f"Op times: {md(plan.op_times, 2000)}" + (
    f" — offline device time {_sh['table']:.0%} from the tables, {_sh['extrapolated']:.0%} extrapolated beyond them, "
    f"{_sh['roofline']:.0%} roofline fallback" if _sh else ""))
p1 = plan.points[0]
best = min((p for p in plan.points if p.fits), key=lambda p: p.usd_per_million_tokens
           if p.usd_per_million_tokens is not None else float("inf"), default=None)
c = st.columns(4)
c[0].metric("Time to first token (batch 1)", fmt.fmt_seconds(p1.ttft_s))
c[1].metric("Decode per token (batch 1)", fmt.fmt_seconds(p1.decode_per_token_s))
c[2].metric("Largest batch that fits", f"{plan.max_batch:,}")
c[3].metric("Longest context (batch 1)", f"{plan.max_context:,} tokens",
            help=f"capped at the model's maximum positions ({plan.max_positions:,})" if plan.max_positions else None)
c = st.columns(4)
c[0].metric("Offline throughput", f"{plan.offline_throughput_tokens_per_s:,.0f} tok/s",
            help="continuous batching with every request queued (steady state); "
                 f"{plan.offline.get('concurrency', 0):,.0f} sequences running, limited by "
                 f"{plan.offline.get('limited_by', 'n/a')}")
c[1].metric("$ per million tokens (offline)", fmt.fmt_usd(plan.offline_usd_per_million_tokens)
            if plan.offline_usd_per_million_tokens is not None else "no price")
c[2].metric("KV cache per token", f"{plan.kv_cache_bytes_per_token / 2**20:,.3f} MiB")
c[3].metric("Weights per device", fmt.fmt_gib(plan.weights_bytes_per_device))
c = st.columns(4)
c[0].metric("Best static-batch $ per million tokens", fmt.fmt_usd(best.usd_per_million_tokens)
            if best and best.usd_per_million_tokens is not None else "n/a", help="the cheapest batch size that fits")
c[1].metric("At batch", f"{best.batch}" if best else "n/a")
c[2].metric("KV pool per device", fmt.fmt_gib(plan.kv_pool_bytes_per_device))
c[3].metric("kWh per million tokens (offline)", f"{plan.offline_energy_kwh_per_million_tokens:.3g}")

c1, c2 = st.columns(2)
with c1:
    figure(figures.serving_figure(plan), "serving", "ps.fig")
with c2:
    figure(figures.serving_cost_figure(plan), "serving_cost", "ps.cost")
rows = tables.serving_rows(plan)
st.dataframe(tables.to_frame(rows), hide_index=True)
downloads("Serving points", rows, "serving_points", "ps.dl")
st.download_button("Full plan (JSON)", lambda: tables.to_json(plan.to_dict()), file_name="serving_plan.json",
                   mime="application/json", key="ps.json", on_click="ignore")
with st.expander("Assumptions"):
    st.json(plan.assumptions, expanded=False)
with st.expander("Save this plan as a named scenario (see the Scenarios page)"):
    with st.form("ps.save", clear_on_submit=False, border=False):
        sname = st.text_input("Scenario name", key="ps.save_name", max_chars=120)
        snotes = st.text_area("Notes", key="ps.save_notes", height=80)
        sover = st.checkbox("Overwrite a scenario with the same name", key="ps.save_over")
        if st.form_submit_button("Save plan"):
            try:
                from costmodel.plan_scenario import serving_scenario
                from costmodel.storage import Store

                Store().save_scenario(sname, serving_scenario(
                    sname, model, hw_id, prompt=ps.get("prompt"), generate=ps.get("generate"),
                    precision=ps.get("precision"), kv_cache_precision=ps.get("kv_precision") or None, tp=ps.get("tp"),
                    engine=ps.get("engine"), pricing=page_state.pricing_from_state(ps.state), notes=snotes),
                    overwrite=sover)
            except InputError as err:
                show_error(err)
            else:
                st.success("Saved. Compare and export it from the Scenarios page.")

st.subheader("Under traffic")
model_key = model
kv = ps.get("kv_precision") or None
qps, n = float(ps.get("qps")), int(ps.get("requests"))
slo_ttft, slo_tpot = float(ps.get("slo_ttft_ms")) / 1e3, float(ps.get("slo_tpot_ms")) / 1e3
try:
    summary = _simulate(model_key, hw_id, ps.get("precision"), kv, ps.get("tp"), ps.get("engine"), ps.get("prompt"),
                        ps.get("generate"), qps, ps.get("dist"), n, ps.get("time_source"))
except InputError as err:
    summary = None
    st.info(f"simulation — {md(err.field, 200)}: {md(err.message, 2000)}")
if summary is not None:
    c = st.columns(4)
    c[0].metric("p99 time to first token", fmt.fmt_seconds(summary["ttft_s"]["p99"]))
    c[1].metric("p99 time per output token", fmt.fmt_seconds(summary["tpot_s"]["p99"]))
    c[2].metric("Throughput (one replica)", f"{summary['output_tokens_per_s']:,.0f} tok/s")
    c[3].metric("Meets both SLOs", "yes" if summary["ttft_s"]["p99"] <= slo_ttft and
                summary["tpot_s"]["p99"] <= slo_tpot else "no")
    c1, c2 = st.columns(2)
    with c1:
        figure(figures.latency_figure(summary), "serving_latency", "ps.lat")
    with c2:
        st.dataframe(tables.to_frame(tables.latency_rows(summary)), hide_index=True)
        st.caption(f"One replica at {qps:g} requests/s (Poisson), {summary['requests']:,} requests, "
                   f"{summary['preemptions']} preemptions.")

st.subheader("Fleet within the SLOs")
cur = [h for h in str(ps.get("also")).split(",") if h]
bad = [h for h in cur if h not in hws]
if bad:
    st.warning(f"**also** (from the link): {md(', '.join(bad), 2000)} not in the catalog")
mk = ps.key("also_ms")
if ps.loaded is not None or mk not in st.session_state:
    st.session_state[mk] = [h for h in cur if h in hws and h != hw_id]
also = st.multiselect("Also plan on", [h for h in hws if h != hw_id], key=mk,
                      format_func=lambda i: f"{i} — {hws[i].name}")
ps.values["also"] = ",".join(also)
try:
    pricing = page_state.pricing_from_state(ps.state)
    cap = _capacity(model_key, tuple([hw_id, *also]), ps.get("precision"), kv, ps.get("engine"), ps.get("prompt"),
                    ps.get("generate"), qps, slo_ttft, slo_tpot, ps.get("dist"), tuple(sorted(pricing.items())),
                    ps.get("time_source"))
except InputError as err:
    cap = None
    st.info(f"fleet — {md(err.field, 200)}: {md(err.message, 2000)}")
if cap is not None:
    b = cap.best
    c = st.columns(4)
    if b is None:
        c[0].metric("Fleet", "none meets the SLOs")
    else:
        c[0].metric("Fleet", f"{b.devices} x {b.hardware}", help=f"{b.replicas} replica(s) of tp {b.tp}, {b.engine}")
        c[1].metric("Fleet $ per hour", fmt.fmt_usd(b.usd_per_hour) if b.usd_per_hour is not None else "no price")
        c[2].metric("$ per million tokens at the SLO", fmt.fmt_usd(b.usd_per_million_tokens)
                    if b.usd_per_million_tokens is not None else "no price")
        c[3].metric("kWh per million tokens", f"{b.kwh_per_million_tokens:.3g}")
    figure(figures.frontier_figure(cap), "serving_frontier", "ps.front")
    crows = tables.capacity_rows(cap)
    st.dataframe(tables.to_frame(crows), hide_index=True)
    downloads("Fleet candidates", crows, "serving_fleet", "ps.capdl")

if also:
    st.subheader("Compare devices")
    crow = []
    for h in [hw_id, *also]:
        try:
            pl = plan if h == hw_id else plan_for(h)
        except InputError as err:
            st.info(md(f"{h} — {err.field}: {err.message}", 2000))
            continue
        bb = min((p for p in pl.points if p.fits), key=lambda p: p.usd_per_million_tokens
                 if p.usd_per_million_tokens is not None else float("inf"), default=None)
        crow.append({"setting": h, "engine": pl.engine, "ttft_s": pl.points[0].ttft_s,
                     "decode_s_per_token": pl.points[0].decode_per_token_s, "max_batch": pl.max_batch,
                     "max_context": pl.max_context, "fits": pl.max_batch > 0,
                     "offline_tokens_per_s": pl.offline_throughput_tokens_per_s,
                     "offline_usd_per_million_tokens": pl.offline_usd_per_million_tokens
                     if pl.offline_usd_per_million_tokens is not None else float("nan"),
                     "best_usd_per_million_tokens": bb.usd_per_million_tokens
                     if bb and bb.usd_per_million_tokens is not None else float("nan"),
                     "best_batch": bb.batch if bb else 0,
                     "best_throughput_tokens_per_s": bb.throughput_tokens_per_s if bb else float("nan")})
    st.dataframe(tables.to_frame(crow), hide_index=True)
    downloads("Device comparison", crow, "serving_devices", "ps.cmpdl")
    c1, c2 = st.columns(2)
    with c1:
        figure(figures.compare_figure(crow, "decode_s_per_token", "Decode latency per token (batch 1)", "s"),
               "serving_latency_devices", "ps.cl")
    with c2:
        figure(figures.compare_figure(crow, "offline_usd_per_million_tokens", "$ per million tokens (offline)",
                                      "USD"), "serving_cost_devices", "ps.cc")
st.subheader("Compare models on this device")
decoders = [p.id for p in list_presets() if p.family in ("decoder", "moe", "ssm", "hybrid")]
mm = ps.key("also_models_ms")
cur_m = [m for m in str(ps.get("also_models")).split(",") if m]
if ps.loaded is not None or mm not in st.session_state:
    st.session_state[mm] = [m for m in cur_m if m in decoders and m != model]
bad_m = [m for m in cur_m if m not in decoders]
if bad_m:
    st.warning(f"**also_models** (from the link): {md(', '.join(bad_m), 2000)} not a decoder preset")
others = st.multiselect("Also plan these models (same device, precision and lengths)",
                        [m for m in decoders if m != model], key=mm)
ps.values["also_models"] = ",".join(others)
if others:
    mrow = []
    for name, pl_fn in [(str(model) if isinstance(model, str) else "this model", lambda: plan), *[
            (m, (lambda m=m: plan_for(hw_id, m))) for m in others]]:
        try:
            pl = pl_fn()
        except InputError as err:
            st.info(md(f"{name} — {err.field}: {err.message}", 2000))
            continue
        mrow.append({"setting": name, "engine": pl.engine, "weights_GiB_per_device": pl.weights_bytes_per_device / 2**30,
                     "ttft_s": pl.points[0].ttft_s, "decode_s_per_token": pl.points[0].decode_per_token_s,
                     "offline_tokens_per_s": pl.offline_throughput_tokens_per_s,
                     "offline_usd_per_million_tokens": pl.offline_usd_per_million_tokens
                     if pl.offline_usd_per_million_tokens is not None else float("nan"),
                     "offline_kwh_per_million_tokens": pl.offline_energy_kwh_per_million_tokens,
                     "fits": pl.max_batch > 0})
    st.dataframe(tables.to_frame(mrow), hide_index=True)
    downloads("Model comparison", mrow, "serving_models", "ps.mdl")
    figure(figures.compare_figure(mrow, "offline_usd_per_million_tokens", "$ per million tokens (offline)", "USD"),
           "serving_cost_models", "ps.mc")
ps.write_url()
