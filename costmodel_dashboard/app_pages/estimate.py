"""Estimate: one model, one device, one workload -> params, FLOPs, memory, time, per-layer ledger."""

import streamlit as st

import costmodel
from costmodel.ui import figures, format as fmt, formulas, i18n, page_state, sweeps, tables
from costmodel.ui.safe_text import md
from costmodel.errors import InputError
from costmodel_dashboard.app_pages._widgets import (PageState, downloads, figure, hardware_picker, lang, method_picker, model_picker,
                                show_error, table, workload_picker)

ps = PageState("estimate", page_state.ESTIMATE_STATE)
L = lang(ps)
st.title(i18n.t("estimate.title", L))
st.caption(i18n.t("estimate.caption", L))
try:
    model = model_picker(ps)
    hw = hardware_picker(ps)
    workload = workload_picker(ps, model)
    method = method_picker(ps, costmodel.load_model(model))
    est = costmodel.estimate(model, hardware=hw, workload=workload, pricing=page_state.your_price(ps.state))
    technique = None
    if method == "distill":
        from costmodel.techniques import distillation_estimate

        technique = distillation_estimate(ps.get("teacher"), model, hw, workload)
    elif method == "qat":
        from costmodel.techniques import qat_estimate

        technique = qat_estimate(model, hw, workload, bits=ps.get("qat_bits"))
except InputError as err:
    ps.stop(err)
ps.show_problems()
ps.write_url()

m, fl, p, t = est.memory_bytes, est.flops, est.params, est.time_s
words = i18n.unit_words(est, L)
train = workload.task == "train"
st.subheader(f"{md(est.model, 200)} on {md(hw.name, 200)}: {i18n.t('estimate.run_' + est.unit, L)}, "
             f"{i18n.t('estimate.batch', L)} {workload.batch:,} ({words['samples']})")

spec = costmodel.load_model(model)
if hasattr(spec, "layer_table"):
    with st.expander(i18n.t("estimate.layers_table", L), expanded=ps.get("source") == "layers"):
        size = workload.image_size if spec.modality == "image" else None
        rows = spec.layer_table(image_size=size) if spec.family == "sequential" else spec.layer_table()
        table(rows)

if technique is not None:
    money = technique.money
    usd = fmt.fmt_usd(money["usd_per_step"]) if money.get("usd_per_step") is not None else "no price"
    if method == "distill":
        st.markdown(f"**Distillation step**: teacher `{md(technique.teacher.model, 200)}` forward + student `{md(est.model, 200)}` "
                    "training step (the numbers further down are the student's own step).")
        c = st.columns(5)
        c[0].metric("Teacher forward", fmt.fmt_seconds(technique.teacher_forward_s))
        c[1].metric("Student step", fmt.fmt_seconds(technique.student.time_s.step_s))
        c[2].metric("Distillation step", fmt.fmt_seconds(technique.step_s))
        c[3].metric("Memory with the teacher", fmt.fmt_bytes(technique.device_total_bytes),
                    delta="fits" if technique.fits else "does NOT fit", delta_color="off",
                    help="student peak + teacher weights + teacher outputs kept for the loss, + runtime overhead")
        c[4].metric("Cost per step", usd)
    else:
        st.markdown(f"**Quantization-aware training** ({technique.bits}-bit): fake quantization of every conv/linear "
                    "weight and of the activations they read (the numbers further down are the plain step).")
        c = st.columns(5)
        c[0].metric("QAT step", fmt.fmt_seconds(technique.step_s),
                    delta=f"+{fmt.fmt_seconds(technique.extra_time_s)}", delta_color="off")
        c[1].metric("Peak memory with QAT", fmt.fmt_bytes(technique.peak_bytes),
                    delta=f"+{fmt.fmt_bytes(technique.extra_saved_bytes)}", delta_color="off")
        c[2].metric("Deployed model", fmt.fmt_bytes(technique.deployed_model_bytes),
                    help=f"{technique.bits}-bit matmul weights + the rest in fp32")
        c[3].metric("fp32 model", fmt.fmt_bytes(technique.float_model_bytes))
        c[4].metric("Cost per step", usd)
    with st.expander("What this technique assumes"):
        table([{"assumption": k, "value": str(v)} for k, v in technique.assumptions.items()])

c = st.columns(4)
c[0].metric(i18n.t("metric.params", L), fmt.fmt_count(p.total), help="exact count, all parameters (incl. LoRA adapters)")
c[1].metric(i18n.t("metric.trainable", L), fmt.fmt_count(p.trainable))
c[2].metric(i18n.t("metric.forward_flops", L), fmt.fmt_si(fl.forward, "FLOP"), help="2 FLOPs per multiply-add")
c[3].metric(i18n.t("metric.forward_macs", L), fmt.fmt_si(fl.forward_macs, "MAC"),
            help="multiply-adds = FLOPs / 2 (fvcore's 'flops')")

c = st.columns(4)
c[0].metric(i18n.t("metric.peak", L), fmt.fmt_bytes(m.peak), help="comparable to torch.cuda.max_memory_allocated()")
c[1].metric(i18n.t("metric.device_total", L), fmt.fmt_bytes(m.device_total),
            help="peak + CUDA context + allocator slack: what nvidia-smi shows")
c[2].metric(i18n.t("metric.fits", L), "yes" if m.fits else "NO", delta=f"{fmt.fmt_bytes(m.headroom)} headroom",
            delta_color="normal", help="device total against the device's memory; headroom = capacity - device total")
c[3].metric(i18n.t("metric.capacity", L), fmt.fmt_bytes(m.capacity))

c = st.columns(4)
bounds = tables.bound_by_phase(est)
if est.unit == "step":
    c[0].metric(i18n.t("metric.step_time", L), fmt.fmt_seconds(t.step_s))
    if est.modality == "text":
        c[1].metric("Tokens/s", fmt.fmt_num(est.perf.tokens_per_s), help="batch x sequence / step time")
    else:
        c[1].metric(f"{words['Samples']}/s", fmt.fmt_num(est.perf.samples_per_s))
elif est.unit == "request":
    c[0].metric(i18n.t("metric.prefill", L), fmt.fmt_seconds(t.prefill_s), help="time to first token")
    c[1].metric(i18n.t("metric.decode", L), fmt.fmt_seconds(t.decode_per_token_s))
else:
    c[0].metric(i18n.t("metric.forward_time", L), fmt.fmt_seconds(t.forward_s))
    c[1].metric(f"{words['Samples']}/s", fmt.fmt_num(est.perf.samples_per_s))
c[2].metric("MFU", f"{est.perf.mfu:.1%}", help="model FLOPs / (time x the peak FLOP/s its kernels run at)")
c[3].metric(i18n.t("metric.bound", L) + (f" ({' · '.join(ph for ph, _ in bounds)})" if len(bounds) > 1 else ""),
            " · ".join(b for _, b in bounds),
            help="what sets each phase's time: compute (FLOP/s), memory (bandwidth), host (Python/launch overhead) "
                 "or latency (a recurrence's sequential time steps)")

unit = est.unit
c = st.columns(4)
if est.energy_kwh is not None:
    if est.cost_usd is not None:
        c[0].metric(f"{i18n.t('metric.cost_per', L)} {unit}", fmt.fmt_usd(est.cost_usd.per_unit),
                    help="device rental at the price below; cloud prices include electricity")
        if est.cost_usd.per_million_tokens is not None:
            c[1].metric(i18n.t("metric.cost_per_million_tokens", L), fmt.fmt_usd(est.cost_usd.per_million_tokens))
        else:
            c[1].metric(f"{i18n.t('metric.cost_per', L)} 1,000 {words['samples']}",
                        fmt.fmt_usd(est.cost_usd.per_thousand_samples))
        c[3].metric(i18n.t("metric.price_hour", L), fmt.fmt_usd(est.cost_usd.per_hour))
    else:
        c[0].metric(f"{i18n.t('metric.cost_per', L)} {unit}", "no price", help="the catalog has no price for this device")
    c[2].metric(f"{i18n.t('metric.energy_per', L)} {unit}", fmt.fmt_kwh(est.energy_kwh.per_unit),
                help="device power x PUE, at the facility meter")
    price = est.assumptions.get("cost", {})
    with st.expander("Price, power and carbon assumptions"):
        table(tables.assumption_rows(price))
else:
    st.info(f"No cost: {md(est.assumptions.get('cost', 'no price for this device'))}")

tab_mem, tab_time, tab_layers, tab_all = st.tabs(["Memory", "Time", "Per layer", "All numbers"])
with tab_mem:
    figure(figures.memory_figure(est), "memory", "est.mem")
    rows = tables.memory_rows(est)
    table(rows)
    downloads("Memory table", rows, "memory", "est.memdl")
with tab_time:
    figure(figures.time_figure(est), "time", "est.time")
    figure(figures.roofline_figure(est, hw, sweeps.roofline_points(model, est)), "roofline", "est.roof")
    trows = tables.time_rows(est)
    table(trows)
    downloads("Time table", trows, "time", "est.timedl")
with tab_layers:
    lrows = tables.layer_rows(est)
    table(lrows)
    downloads("Per-layer table", lrows, "layers", "est.layersdl")
    figure(figures.layers_figure(est), "layers", "est.layersfig")
with tab_all:
    srows = tables.summary_rows(est)
    table(tables.display_value_rows(srows))
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

                Store().save_scenario(name, page_state.scenario_from_state(ps.state, name, notes), overwrite=overwrite)
            except InputError as err:
                show_error(err)
            else:
                st.success("Saved. Open it again from the Scenarios page.")

st.subheader(i18n.t("estimate.formulas", L))
for sec in formulas.formula_sections(est):
    with st.expander(sec["title"]):
        st.latex(sec["latex"])
        st.caption(f"{sec['note']}  \nSource: `{sec['doc']}`")
