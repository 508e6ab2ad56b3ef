"""Plan training: a whole run on many devices (costmodel.plans): time, GPU-hours, money, energy, carbon,
the parallel layout, scaling with the device count, and a layout search."""

import streamlit as st

import costmodel
from costmodel import plans, prices
from costmodel.ui import figures, format as fmt, page_state, sweeps, tables
from costmodel.catalog import list_hardware
from costmodel.errors import InputError
from costmodel.workload import OPTIMIZERS, PRECISIONS
from app_pages._widgets import PageState, downloads, figure, model_picker, show_error

st.title("Plan training")
st.caption("A whole training run: how long, how many devices, how much money, energy and CO2. "
           "Numbers from `costmodel.plans.plan_training`; every assumption is listed below them.")

DEFAULTS = {**page_state.MODEL_STATE, "hw": "a100-sxm-80gb", "seq": 2048, "image_size": 224, "precision": "amp-bf16",
            "optimizer": "adamw", "tokens_b": 10.0, "chinchilla": False, "samples": 1_000_000, "epochs": 1.0,
            "global_batch": 512, "dp": 8, "tp": 1, "pp": 1, "zero": 1, "micro_batch": 4, "ckpt": False,
            "offload": False, "provider": "", "tier": "on-demand", "region": "world", "utilization": 1.0,
            "scaling": True, "search": False, "max_devices": 64, "rank_by": "time"}
ps = PageState("plan_training", DEFAULTS)
sb = st.sidebar


def pricing_widgets(where):
    provs = [""] + prices.list_providers()
    ps.select(where, "Provider", "provider", provs, format_func=lambda p: p or "median across providers")
    ps.select(where, "Tier", "tier", list(prices.TIERS))
    ps.select(where, "Grid region (carbon)", "region", [r.region for r in prices.list_regions()])
    ps.slider(where, "Power draw (fraction of idle-to-TDP)", "utilization", 0.0, 1.0, step=0.05)


try:
    model = model_picker(ps)
    spec = costmodel.load_model(model)
    hws = {h.id: h for h in list_hardware()}
    hw_id = ps.select(sb, "Hardware", "hw", list(hws), format_func=lambda i: f"{i} — {hws[i].name}")
    if spec.modality == "image":
        ps.number(sb, "Image size", "image_size", min_value=0, max_value=16384)
    elif spec.modality == "text":
        ps.number(sb, "Sequence length", "seq", min_value=0, max_value=1 << 24)
    ps.select(sb, "Precision", "precision", list(PRECISIONS))
    ps.select(sb, "Optimizer", "optimizer", list(OPTIMIZERS))
    with sb.expander("Price, power, carbon"):
        pricing_widgets(st)
    workload = {"seq": ps.get("seq"), "image_size": ps.get("image_size"), "precision": ps.get("precision"),
                "optimizer": ps.get("optimizer")}
    costmodel.Workload.from_dict({**workload, "task": "train"})  # names a bad field before planning

    st.subheader("The run")
    c1, c2, c3 = st.columns(3)
    tokens = samples = None
    epochs = 1.0
    if spec.modality == "text":
        chin = ps.checkbox(c1, "Chinchilla-optimal tokens (20 per parameter)", "chinchilla")
        if chin:
            est1 = costmodel.estimate(model, hardware=hw_id, task="train", batch=1, seq=ps.get("seq"))
            tokens = plans.chinchilla_tokens(est1.params.total)
            c1.caption(f"{fmt.fmt_si(tokens, 'tokens')} for {fmt.fmt_count(est1.params.total)} parameters "
                       "(Hoffmann et al. 2022)")
        else:
            tokens = ps.number(c1, "Training tokens (billions)", "tokens_b", min_value=0.0, max_value=1e6) * 1e9
    else:
        samples = ps.number(c1, "Samples (images)", "samples", min_value=0, max_value=1 << 40)
        epochs = ps.number(c1, "Epochs", "epochs", min_value=0.0, max_value=1e6)
    gb = ps.number(c2, "Global batch (samples per optimizer step)", "global_batch", min_value=0, max_value=1 << 24)
    mb = ps.number(c3, "Micro-batch per device", "micro_batch", min_value=0, max_value=1 << 16)

    st.subheader("Layout")
    c = st.columns(6)
    dp = ps.number(c[0], "Data parallel", "dp", min_value=0, max_value=1 << 20)
    tp = ps.number(c[1], "Tensor parallel", "tp", min_value=0, max_value=1024)
    pp = ps.number(c[2], "Pipeline stages", "pp", min_value=0, max_value=1024)
    zero = ps.select(c[3], "ZeRO stage", "zero", [0, 1, 2, 3], format_func=lambda z: f"{z} (FSDP)" if z == 3 else str(z))
    ckpt = ps.checkbox(c[4], "Checkpointing", "ckpt")
    offload = ps.checkbox(c[5], "Optimizer offload", "offload")
    pricing = page_state.pricing_from_state(ps.state)
    layout = dict(dp=dp, tp=tp, pp=pp, zero=zero, micro_batch=mb, grad_checkpointing=ckpt, offload=offload)
    plan = plans.plan_training(model, hw_id, workload=workload, layout=layout, tokens=tokens, samples=samples,
                               epochs=epochs, global_batch=gb, pricing=pricing)
except InputError as err:
    ps.stop(err)
ps.show_problems()

s, cost = plan.step, plan.cost
c = st.columns(4)
c[0].metric("Devices", f"{plan.num_devices:,}")
c[1].metric("Wall clock", fmt.fmt_seconds(plan.wall_clock_s))
c[2].metric("GPU-hours", f"{plan.gpu_hours:,.0f}")
c[3].metric("Cost", fmt.fmt_usd(cost.total_usd) if cost.total_usd is not None else "no price")
c = st.columns(4)
c[0].metric("Energy", fmt.fmt_kwh(cost.energy_kwh))
c[1].metric("Carbon", f"{cost.carbon_kg_co2e / 1000:,.3g} t CO2e")
c[2].metric("MFU", f"{s.mfu:.1%}")
c[3].metric("Fits per device", "yes" if s.fits else "NO",
            delta=f"{fmt.fmt_bytes(s.memory_bytes.device_total)} of {fmt.fmt_bytes(s.memory_bytes.capacity)}",
            delta_color="off")
if not s.fits:
    st.warning("This layout does not fit in device memory: add tensor/pipeline stages, a higher ZeRO stage, "
               "checkpointing or a smaller micro-batch — or let the layout search below find one.")

c1, c2 = st.columns(2)
with c1:
    figure(figures.plan_step_figure(plan), "plan_step", "pt.step")
with c2:
    figure(figures.plan_memory_figure(plan), "plan_memory", "pt.mem")
rows = tables.plan_training_rows(plan)
t1, t2, t3 = st.tabs(["Plan", "Step time", "Assumptions"])
with t1:
    st.dataframe(tables.to_frame([{**r, "value": str(r["value"])} for r in rows]), hide_index=True)
    downloads("Plan", rows, "training_plan", "pt.dl")
    st.download_button("Full plan (JSON)", lambda: tables.to_json(plan.to_dict()), file_name="training_plan.json",
                       mime="application/json", key="pt.json", on_click="ignore")
with t2:
    srows = tables.plan_step_rows(plan)
    st.dataframe(tables.to_frame(srows), hide_index=True)
    downloads("Step", srows, "training_step", "pt.sdl")
with t3:
    st.dataframe(tables.to_frame(tables.assumption_rows(cost.assumptions)), hide_index=True)
    st.json({k: v for k, v in plan.assumptions.items()}, expanded=False)

st.subheader("Scaling with the number of devices")
if ps.checkbox(st, "Show time and cost from 1 device up (data parallel grows; tensor/pipeline fixed)", "scaling"):
    counts = [n for n in (2 ** i for i in range(0, 15)) if n >= tp * pp and n <= max(plan.num_devices * 4, 8)]
    try:
        scal = sweeps.scaling_rows(model, hw_id, workload, counts, tp, pp, zero, mb, ckpt, gb, pricing,
                                  tokens=tokens, samples=samples, epochs=epochs)
    except InputError as err:
        show_error(err)
    else:
        if scal:
            figure(figures.scaling_figure(scal), "scaling", "pt.scal")
            st.dataframe(tables.to_frame(scal), hide_index=True)
            downloads("Scaling", scal, "scaling", "pt.scaldl")

st.subheader("Layout search")
if ps.checkbox(st, "Search layouts (dp x tp x pp, ZeRO, micro-batch, checkpointing) that fit, ranked", "search"):
    c1, c2 = st.columns(2)
    maxd = ps.select(c1, "Up to devices", "max_devices", [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096])
    rank = ps.radio(c2, "Rank by", "rank_by", ["time", "cost"], horizontal=True)
    try:
        with st.spinner("Searching layouts..."):
            found = plans.search_layouts(model, hw_id, tokens=tokens, samples=samples, epochs=epochs,
                                         workload=workload, global_batch=gb, max_devices=maxd, rank_by=rank)
    except InputError as err:
        show_error(err)
    else:
        lrows = tables.layout_rows(found)
        st.caption(f"{len(lrows):,} layouts fit; the best 25 by {rank}:")
        if lrows:
            st.dataframe(tables.to_frame(lrows[:25]), hide_index=True)
            downloads("Layouts", lrows, "layouts", "pt.laydl")
            pts = [{**r, "label": f"{r['dp']}x{r['tp']}x{r['pp']}", "wall_clock_s": r["wall_clock_days"] * 86400}
                   for r in lrows[:400]]
            figure(figures.pareto_figure(pts, x="wall_clock_days", y="cost_usd", label="label",
                                         x_title="wall clock (days)", y_title="cost (USD)"), "layouts_pareto", "pt.par")
ps.write_url()
