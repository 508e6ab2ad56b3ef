"""Estimate: one model, one device, one workload -> params, FLOPs, memory, time, per-layer ledger."""

import streamlit as st

import costmodel
from costmodel import figures, views
from costmodel.errors import InputError
from app_pages._widgets import PageState, downloads, figure, hardware_picker, model_picker, show_error, workload_picker

st.title("Estimate")
st.caption("Pick a model, a device and a workload in the sidebar. Every number below comes from "
           "`costmodel.estimate`; open *Formulas* to see how.")

ps = PageState("estimate", views.ESTIMATE_STATE)
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
st.subheader(f"{est.model} on {hw.name}: {'training step' if train else 'inference'}, batch {workload.batch}")

c = st.columns(4)
c[0].metric("Parameters", views.fmt_count(p.total), help="exact count, all parameters (incl. LoRA adapters)")
c[1].metric("Trainable parameters", views.fmt_count(p.trainable))
c[2].metric("Forward FLOPs", views.fmt_si(fl.forward, "FLOP"), help="2 FLOPs per multiply-add")
c[3].metric("Forward MACs", views.fmt_si(fl.forward_macs, "MAC"), help="multiply-adds = FLOPs / 2 (fvcore's 'flops')")

c = st.columns(4)
c[0].metric("Peak memory", views.fmt_gib(m.peak), help="comparable to torch.cuda.max_memory_allocated()")
c[1].metric("Device total", views.fmt_gib(m.device_total),
            help="peak + CUDA context + allocator slack: what nvidia-smi shows")
c[2].metric("Fits", "yes" if m.fits else "NO", delta=f"{views.fmt_gib(m.headroom)} headroom",
            delta_color="normal", help="device total against the device's memory; headroom = capacity - device total")
c[3].metric("Capacity", views.fmt_gib(m.capacity))

c = st.columns(4)
if train:
    c[0].metric("Step time", views.fmt_seconds(t["step"]))
    c[1].metric("Step FLOPs", views.fmt_si(fl.total, "FLOP"))
elif "prefill" in t:
    c[0].metric("Prefill time", views.fmt_seconds(t["prefill"]), help="time to first token")
    c[1].metric("Decode per token", views.fmt_seconds(t["decode_per_token"]))
else:
    c[0].metric("Forward time", views.fmt_seconds(t["forward"]))
    c[1].metric("Samples/s", f"{est.perf['samples_per_s']:,.4g}")
c[2].metric("MFU", f"{est.perf.get('mfu', 0):.1%}", help="model FLOPs / (time x peak FLOP/s)")
c[3].metric("Bound", str(est.perf.get("bound", "")), help="what sets the time: compute, memory or host overhead")

unit = views.run_unit(est)
c = st.columns(4)
if est.cost_usd:
    c[0].metric(f"Cost per {unit}", views.fmt_usd(est.cost_usd[f"per_{unit}"]),
                help="device rental at the price below; cloud prices include electricity")
    c[1].metric("Cost per million tokens", views.fmt_usd(est.cost_usd["per_million_tokens"]))
    c[2].metric(f"Energy per {unit}", views.fmt_kwh(est.energy_kwh[f"per_{unit}"]),
                help="device power x PUE, at the facility meter")
    c[3].metric("Price per device-hour", views.fmt_usd(est.cost_usd["per_hour"]))
    price = est.assumptions.get("cost", {})
    with st.expander("Price, power and carbon assumptions"):
        st.dataframe(views.to_frame(views.assumption_rows(price)), hide_index=True)
else:
    st.info(f"No cost: {est.assumptions.get('cost', 'no price for this device')}")

tab_mem, tab_time, tab_layers, tab_all = st.tabs(["Memory", "Time", "Per layer", "All numbers"])
with tab_mem:
    figure(figures.memory_figure(est), "memory", "est.mem")
    rows = views.memory_rows(est)
    st.dataframe(views.to_frame(rows), hide_index=True, column_config={"bytes": st.column_config.NumberColumn(format="%d"),
                                                                      "GiB": st.column_config.NumberColumn(format="%.3f")})
    downloads("Memory table", rows, "memory", "est.memdl")
with tab_time:
    figure(figures.time_figure(est), "time", "est.time")
    figure(figures.roofline_figure(est, hw), "roofline", "est.roof")
    trows = views.time_rows(est)
    st.dataframe(views.to_frame(trows), hide_index=True)
    downloads("Time table", trows, "time", "est.timedl")
with tab_layers:
    lrows = views.layer_rows(est)
    st.dataframe(views.to_frame(lrows), hide_index=True)
    downloads("Per-layer table", lrows, "layers", "est.layersdl")
    figure(figures.layers_figure(est), "layers", "est.layersfig")
with tab_all:
    srows = views.summary_rows(est)
    st.dataframe(views.to_frame([{**r, "value": str(r["value"])} for r in srows]), hide_index=True)
    downloads("All numbers", srows, "estimate", "est.alldl")
    st.download_button("Full estimate with per-layer ledger (JSON)", lambda: views.to_json(est.to_dict(with_layers=True)),
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

                Store().save_scenario(name, views.scenario_from_state(ps.state(), name, notes), overwrite=overwrite)
            except InputError as err:
                show_error(err)
            else:
                st.success("Saved. Open it again from the Scenarios page.")

st.subheader("Formulas")
for sec in views.formula_sections(est):
    with st.expander(sec["title"]):
        st.latex(sec["latex"])
        st.caption(f"{sec['note']}  \nSource: `{sec['doc']}`")
