"""Plan serving: latency, throughput, memory and $ per million tokens for a decoder (costmodel.plans)."""

import streamlit as st

import costmodel
from costmodel import plans, prices
from costmodel.ui import figures, format as fmt, page_state, tables
from costmodel.catalog import list_hardware
from costmodel.errors import InputError
from costmodel.perf import ENGINES
from app_pages._widgets import PageState, downloads, figure, model_picker, show_error

st.title("Plan serving")
st.caption("Time to first token, per-token latency, throughput against batch size, the largest batch and context "
           "that fit, and $ per million generated tokens. Numbers from `costmodel.plans.plan_serving`.")

DEFAULTS = {**page_state.MODEL_STATE, "preset": "llama-3-8b", "hw": "h100-sxm-80gb", "prompt": 1024, "generate": 256,
            "precision": "bf16", "kv_precision": "", "tp": 1, "engine": "eager", "provider": "",
            "tier": "on-demand", "region": "world", "utilization": 1.0, "also": ""}
SERVE_PRECISIONS = ["fp32", "bf16", "fp16", "fp8", "int8", "int4"]
ps = PageState("plan_serving", DEFAULTS)
sb = st.sidebar
hws = {h.id: h for h in list_hardware()}


def plan_for(hw_id: str):
    return plans.plan_serving(model, hw_id, prompt=ps.get("prompt"), generate=ps.get("generate"),
                              precision=ps.get("precision"), kv_cache_precision=ps.get("kv_precision") or None,
                              tp=ps.get("tp"), engine=ps.get("engine"), pricing=page_state.pricing_from_state(ps.state))


try:
    model = model_picker(ps)
    hw_id = ps.select(sb, "Hardware", "hw", list(hws), format_func=lambda i: f"{i} — {hws[i].name}")
    ps.number(sb, "Prompt tokens", "prompt", min_value=0, max_value=1 << 24)
    ps.number(sb, "Generated tokens", "generate", min_value=0, max_value=1 << 24)
    ps.select(sb, "Weight precision", "precision", SERVE_PRECISIONS)
    ps.select(sb, "KV-cache precision", "kv_precision", ["", "fp32", "bf16", "fp16", "fp8", "int8", "int4"],
              format_func=lambda p: p or "as the compute dtype")
    ps.number(sb, "Tensor-parallel devices", "tp", min_value=0, max_value=64)
    ps.select(sb, "Engine", "engine", list(ENGINES),
              help="eager: Hugging Face generate-style loop (host overhead per step); compiled: CUDA-graph servers "
                   "such as vLLM / TensorRT-LLM (no per-op host time)")
    with sb.expander("Price, power, carbon"):
        provs = [""] + prices.list_providers()
        ps.select(st, "Provider", "provider", provs, format_func=lambda p: p or "median across providers")
        ps.select(st, "Tier", "tier", list(prices.TIERS))
        ps.select(st, "Grid region (carbon)", "region", [r.region for r in prices.list_regions()])
        ps.slider(st, "Power draw (fraction of idle-to-TDP)", "utilization", 0.0, 1.0, step=0.05)
    plan = plan_for(hw_id)
except InputError as err:
    ps.stop(err)
ps.show_problems()

p1 = plan.points[0]
best = plan.cheapest_fitting_point  # None prices (a device without one) are not compared
c = st.columns(4)
c[0].metric("Time to first token (batch 1)", fmt.fmt_seconds(p1.ttft_s))
c[1].metric("Decode per token (batch 1)", fmt.fmt_seconds(p1.decode_per_token_s))
c[2].metric("Largest batch that fits", f"{plan.max_batch:,}")
c[3].metric("Longest context (batch 1)", f"{plan.max_context:,} tokens")
c = st.columns(4)
c[0].metric("KV cache per token", f"{plan.kv_cache_bytes_per_token / 2**20:,.3f} MiB")
c[1].metric("Weights per device", fmt.fmt_gib(plan.weights_bytes_per_device))
c[2].metric("Best $ per million tokens", fmt.fmt_usd(best.usd_per_million_tokens) if best and
            best.usd_per_million_tokens is not None else "n/a",
            help="the cheapest batch size that fits")
c[3].metric("At batch", f"{best.batch}" if best else "n/a")

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

st.subheader("Compare devices")
cur = [h for h in str(ps.get("also")).split(",") if h]
bad = [h for h in cur if h not in hws]
if bad:
    st.warning(f"**also** (from the link): {', '.join(bad)} not in the catalog")
mk = ps.key("also_ms")
if ps.loaded is not None or mk not in st.session_state:
    st.session_state[mk] = [h for h in cur if h in hws and h != hw_id]
also = st.multiselect("Also plan on", [h for h in hws if h != hw_id], key=mk,
                      format_func=lambda i: f"{i} — {hws[i].name}")
ps.values["also"] = ",".join(also)
if also:
    crow = []
    for h in [hw_id, *also]:
        try:
            pl = plan if h == hw_id else plan_for(h)
        except InputError as err:
            st.info(f"{h} — {err.field}: {err.message}")
            continue
        b = pl.cheapest_fitting_point
        crow.append({"setting": h, "ttft_s": pl.points[0].ttft_s, "decode_s_per_token": pl.points[0].decode_per_token_s,
                     "max_batch": pl.max_batch, "max_context": pl.max_context, "fits": pl.max_batch > 0,
                     "best_usd_per_million_tokens": b.usd_per_million_tokens if b and b.usd_per_million_tokens
                     is not None else float("nan"),
                     "best_batch": b.batch if b else 0,
                     "best_throughput_tokens_per_s": b.throughput_tokens_per_s if b else float("nan")})
    st.dataframe(tables.to_frame(crow), hide_index=True)
    downloads("Device comparison", crow, "serving_devices", "ps.cmpdl")
    c1, c2 = st.columns(2)
    with c1:
        figure(figures.compare_figure(crow, "decode_s_per_token", "Decode latency per token (batch 1)", "s"),
               "serving_latency_devices", "ps.cl")
    with c2:
        figure(figures.compare_figure(crow, "best_usd_per_million_tokens", "Best $ per million tokens", "USD"),
               "serving_cost_devices", "ps.cc")
ps.write_url()
