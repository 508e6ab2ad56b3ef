"""Estimate: one model, one device, one workload -> params, FLOPs, memory, time, per-layer ledger."""

import streamlit as st

import costmodel
from costmodel.ui import figures, format as fmt, formulas, page_state, tables
from costmodel.ui.safe_text import md
from costmodel.errors import InputError
from app_pages._widgets import PageState, downloads, figure, hardware_picker, model_picker, show_error, workload_picker

st.title("Estimate")
st.caption("Pick a model, a device and a workload in the sidebar. Every number below comes from "
           "`costmodel.estimate`; open *Formulas* to see how.")

ps = PageState("estimate", page_state.ESTIMATE_STATE)
try:
    model = model_picker(ps)
    hw = hardware_picker(ps)
    workload = workload_picker(ps, model)
    est = costmodel.estimate(model, hardware=hw, workload=workload)
except InputError as err:
    ps.stop(err)
ps.show_problems()
ps.write_url()

m, fl, p, t = est.memory_bytes, est.flops, est.params, est.time_s
train = workload.task == "train"
st.subheader(f"{md(est.model, 200)} on {md(hw.name, 200)}: {'training step' if train else 'inference'}, "
             f"batch {workload.batch}")

c = st.columns(4)
c[0].metric("Parameters", fmt.fmt_count(p.total), help="exact count, all parameters (incl. LoRA adapters)")
c[1].metric("Trainable parameters", fmt.fmt_count(p.trainable))
c[2].metric("Forward FLOPs", fmt.fmt_si(fl.forward, "FLOP"), help="2 FLOPs per multiply-add")
c[3].metric("Forward MACs", fmt.fmt_si(fl.forward_macs, "MAC"), help="multiply-adds = FLOPs / 2 (fvcore's 'flops')")

c = st.columns(4)
c[0].metric("Peak memory", fmt.fmt_gib(m.peak), help="comparable to torch.cuda.max_memory_allocated()")
c[1].metric("Device total", fmt.fmt_gib(m.device_total),
            help="peak + CUDA context + allocator slack: what nvidia-smi shows")
c[2].metric("Fits", "yes" if m.fits else "NO", delta=f"{fmt.fmt_gib(m.headroom)} headroom",
            delta_color="normal", help="device total against the device's memory; headroom = capacity - device total")
c[3].metric("Capacity", fmt.fmt_gib(m.capacity))

c = st.columns(4)
if est.unit == "step":
    c[0].metric("Step time", fmt.fmt_seconds(t.step_s))
    c[1].metric("Step FLOPs", fmt.fmt_si(fl.total, "FLOP"))
elif est.unit == "request":
    c[0].metric("Prefill time", fmt.fmt_seconds(t.prefill_s), help="time to first token")
    c[1].metric("Decode per token", fmt.fmt_seconds(t.decode_per_token_s))
else:
    c[0].metric("Forward time", fmt.fmt_seconds(t.forward_s))
    c[1].metric("Samples/s", f"{est.perf.samples_per_s:,.4g}")
c[2].metric("MFU", f"{est.perf.mfu:.1%}", help="model FLOPs / (time x the peak FLOP/s its kernels run at)")
c[3].metric("Bound", str(est.perf.bound), help="what sets the time: compute, memory or host overhead")

unit = est.unit
c = st.columns(4)
if est.energy_kwh is not None:
    if est.cost_usd is not None:
        c[0].metric(f"Cost per {unit}", fmt.fmt_usd(est.cost_usd.per_unit),
                    help="device rental at the price below; cloud prices include electricity")
        if est.cost_usd.per_million_tokens is not None:
            c[1].metric("Cost per million tokens", fmt.fmt_usd(est.cost_usd.per_million_tokens))
        else:
            c[1].metric("Cost per 1,000 samples", fmt.fmt_usd(est.cost_usd.per_thousand_samples))
        c[3].metric("Price per device-hour", fmt.fmt_usd(est.cost_usd.per_hour))
    else:
        c[0].metric(f"Cost per {unit}", "no price", help="the catalog has no price for this device")
    c[2].metric(f"Energy per {unit}", fmt.fmt_kwh(est.energy_kwh.per_unit),
                help="device power x PUE, at the facility meter")
    price = est.assumptions.get("cost", {})
    with st.expander("Price, power and carbon assumptions"):
        st.dataframe(tables.to_frame(tables.assumption_rows(price)), hide_index=True)
else:
    st.info(f"No cost: {md(est.assumptions.get('cost', 'no price for this device'))}")

tab_mem, tab_time, tab_layers, tab_all = st.tabs(["Memory", "Time", "Per layer", "All numbers"])
with tab_mem:
    figure(figures.memory_figure(est), "memory", "est.mem")
    rows = tables.memory_rows(est)
    st.dataframe(tables.to_frame(rows), hide_index=True, column_config={"bytes": st.column_config.NumberColumn(format="%d"),
                                                                      "GiB": st.column_config.NumberColumn(format="%.3f")})
    downloads("Memory table", rows, "memory", "est.memdl")
with tab_time:
    figure(figures.time_figure(est), "time", "est.time")
    figure(figures.roofline_figure(est, hw), "roofline", "est.roof")
    trows = tables.time_rows(est)
    st.dataframe(tables.to_frame(trows), hide_index=True)
    downloads("Time table", trows, "time", "est.timedl")
with tab_layers:
    lrows = tables.layer_rows(est)
    st.dataframe(tables.to_frame(lrows), hide_index=True)
    downloads("Per-layer table", lrows, "layers", "est.layersdl")
    figure(figures.layers_figure(est), "layers", "est.layersfig")
with tab_all:
    srows = tables.summary_rows(est)
    st.dataframe(tables.to_frame([{**r, "value": str(r["value"])} for r in srows]), hide_index=True)
    downloads("All numbers", srows, "estimate", "est.alldl")
    st.download_button("Full estimate with per-layer ledger (JSON)", lambda: tables.to_json(est.to_dict(with_layers=True)),
                       file_name="estimate.json", mime="application/json", key="est.fulljson", on_click="ignore")
    st.json(est.assumptions, expanded=False)

with st.expander("Save this view as a named scenario (see the Scenarios page)"):
    with st.form("est.save", clear_on_submit=False, border=False):
        name = st.text_input("Scenario name", key="est.save_name", max_chars=120)
        notes = st.text_area("Notes", key="est.save_notes", height=80)
        overwrite = st.checkbox("Overwrite a scenario with the same name", key="est.save_over")
        if st.form_submit_button("Save scenario"):
            try:
                from costmodel.storage import Store

                Store().save_scenario(name, page_state.scenario_from_state(ps.state(), name, notes), overwrite=overwrite)
            except InputError as err:
                show_error(err)
            else:
                st.success("Saved. Open it again from the Scenarios page.")

st.subheader("Formulas")
for sec in formulas.formula_sections(est):
    with st.expander(sec["title"]):
        st.latex(sec["latex"])
        st.caption(f"{sec['note']}  \nSource: `{sec['doc']}`")
