"""Plan training: a whole run on many devices (costmodel.plans): time, GPU-hours, money, energy, carbon,
checkpoint storage, the parallel layout against a deadline and a budget, scaling with the device count, and a
layout search. A layout the model cannot take is named beside the valid ones, and the rest of the page stays."""

import streamlit as st

import costmodel
from costmodel import plans, prices
from costmodel.checkpoint import checkpoint_of
from costmodel.ui import figures, format as fmt, i18n, page_state, sweeps, tables
from costmodel.catalog import catalog_state, list_hardware
from costmodel.errors import InputError
from costmodel.engines import ENGINES
from costmodel.workload import OPTIMIZERS, PRECISIONS
from costmodel.ui.safe_text import md
from costmodel_dashboard.app_pages._widgets import PageState, downloads, figure, lang, model_picker, show_error, table

DEFAULTS = {**page_state.MODEL_STATE, "hw": "a100-sxm-80gb", "seq": 2048, "image_size": 224, "precision": "amp-bf16",
            "optimizer": "adamw", "tokens_b": 10.0, "chinchilla": False, "samples": 1_000_000, "epochs": 1.0,
            "global_batch": 512, "dp": 8, "tp": 1, "pp": 1, "zero": 1, "micro_batch": 4, "ckpt": False, "ckpt_sel": False,
            "offload": False, "provider": "", "tier": "on-demand", "region": "world", "utilization": 1.0,
            "deadline_days": 0.0, "budget_usd": 0.0, "min_devices": 1, "max_devices": 64,
            "ckpt_kept": 0, "storage_months": 1.0,
            "scaling": True, "search": False, "rank_by": "time", "engine": "auto", "time_source": "roofline",
            "usd_h": 0.0}
DEVICE_COUNTS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096]
# one line per training engine, shown under the choice
ENGINE_HELP = {"auto": "auto: Megatron when the layout splits the model (tensor/pipeline/context/expert parallel), "
                       "FSDP otherwise, eager PyTorch on one device",
               **{name: f"{name}: {e.summary}" for name, e in ENGINES.items()}}
ps = PageState("plan_training", DEFAULTS)
L = lang(ps)
st.title("Plan training")
st.caption("A whole training run: how long, how many devices, how much money, energy and CO2. "
           "Numbers from `costmodel.plans.plan_training`; every assumption is listed below them.")
sb = st.sidebar


def pricing_widgets(where):
    provs = [""] + prices.list_providers()
    ps.select(where, "Provider", "provider", provs, format_func=lambda p: p or "median across providers")
    ps.select(where, "Tier", "tier", list(prices.TIERS))
    ps.select(where, "Grid region (carbon)", "region", [r.region for r in prices.list_regions()])
    ps.slider(where, "Power draw (fraction of idle-to-TDP)", "utilization", 0.0, 1.0, step=0.05)
    ps.number(where, "Your price ($/device-hour, 0 = catalog)", "usd_h", min_value=0.0, max_value=1e6,
              help="a negotiated rate: replaces the catalog's median price in the plan and the layout search")


# Page caches (issue 17): one process serves every session, so each is bounded in entries; the values are frozen
# records, tuples and figures no caller changes (st.plotly_chart copies a figure before sending it), shared as they
# are (st.cache_resource: no pickling per rerun). A rerun with unchanged inputs does no estimator work. A layout
# search result is ~15 MB at 16,000 layouts (the records and the figure; its table rows are made when shown).
# ``state`` (catalog.catalog_state(): the catalog folders named and their files' modification times) is in every
# key: an edited hardware or price file gives new plans, not the cached ones.
@st.cache_resource(show_spinner=False, max_entries=16)
def _plan_view(model, hw_id, workload, layout, tokens, samples, epochs, gb, pricing, engine_kw, state):
    """(the plan, its step and memory figures, its rows, its step rows), once per input."""
    plan = plans.plan_training(model, hw_id, workload=workload, layout=layout, tokens=tokens, samples=samples,
                               epochs=epochs, global_batch=gb, pricing=pricing, **engine_kw)
    return (plan, figures.plan_step_figure(plan), figures.plan_memory_figure(plan),
            tuple(tables.plan_training_rows(plan)), tuple(tables.plan_step_rows(plan)))


@st.cache_resource(show_spinner=False, max_entries=16)
def _scaling_view(model, hw_id, workload, counts, tp, pp, zero, mb, ckpt, gb, pricing, tokens, samples, epochs,
                  state):
    """(the scaling rows, their figure or None), once per input."""
    scal = tuple(sweeps.scaling_rows(model, hw_id, workload, counts, tp, pp, zero, mb, ckpt, gb, pricing,
                                     tokens=tokens, samples=samples, epochs=epochs))
    return scal, (figures.scaling_figure(list(scal)) if scal else None)


@st.cache_resource(show_spinner=False, max_entries=4)
def _search(model, hw_id, rank, include_unfit, kw, state):
    """``plans.search_layouts`` once per input (a tuple of LayoutResult)."""
    return tuple(plans.search_layouts(model, hw_id, rank_by=rank, include_unfit=include_unfit, **kw))


@st.cache_resource(show_spinner=False, max_entries=4)
def _pareto(model, hw_id, rank, kw, state):
    """The cost-vs-time figure of a search, once per input."""
    pts = [{**r, "label": f"{r['dp']}x{r['tp']}x{r['pp']}"}
           for r in tables.layout_rows(_search(model, hw_id, rank, True, kw, state)) if r["cost_usd"] is not None]
    return figures.pareto_figure(pts, x="wall_clock_days", y="cost_usd", label="label", x_title="wall clock (days)",
                                 y_title="cost (USD)")


try:
    model = model_picker(ps)
    spec = costmodel.load_model(model)
    hws = {h.id: h for h in list_hardware()}
    hw_id = ps.select(sb, "Hardware", "hw", list(hws), format_func=lambda i: f"{i} — {hws[i].name}")
    from costmodel.limits import model_limits

    lim = model_limits(spec)
    if spec.modality == "image":
        if lim.image_hw:
            ps.set("image_size", lim.image_hw[0])
            sb.caption(f"Image size {lim.image_hw[0]} x {lim.image_hw[1]}, fixed by the model")
        else:
            ps.number(sb, "Image size", "image_size", min_value=8, max_value=16384)
    elif spec.modality == "text":
        ps.number(sb, "Sequence length", "seq", min_value=1, max_value=lim.max_positions or (1 << 24))
        if lim.max_positions:
            sb.caption(md(lim.describe(), 2000))  # the model's name is user text
    ps.select(sb, "Precision", "precision", list(PRECISIONS))
    ps.select(sb, "Optimizer", "optimizer", list(OPTIMIZERS))
    eng = ps.select(sb, "Training engine", "engine", ["auto", *ENGINES],
                    help="the software stack the run uses: what fuses, which attention kernel, fp8 scope, how "
                         "FSDP/ZeRO gathers and overlaps (docs/formulas.md, Training engines)")
    sb.caption(md(ENGINE_HELP.get(eng, ""), 2000))
    ps.radio(sb, "GEMM times", "time_source", ["roofline", "measured", "auto"], horizontal=True,
             help="roofline: each GEMM at the fitted shape curve of the device; measured: the measured latency of "
                  "that shape in NVIDIA aiconfigurator-core's table (pip install costmodel[measured]; NVIDIA devices "
                  "with tables); auto: measured where it exists")
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
        chin = ps.checkbox(c1, "Chinchilla-optimal tokens (20 per active parameter)", "chinchilla")
        if chin:
            n_active, tokens = plans.compute_optimal_tokens(model)
            c1.caption(f"{fmt.fmt_si(tokens, 'tokens')} for {fmt.fmt_count(n_active)} active parameters "
                       "(Hoffmann et al. 2022)")
        else:
            tokens = ps.number(c1, "Training tokens (billions)", "tokens_b", min_value=0.001, max_value=1e6) * 1e9
    else:
        unit = "images" if spec.modality == "image" else "samples"
        samples = ps.number(c1, f"Training {unit} (per epoch)", "samples", min_value=1, max_value=1 << 40)
        epochs = ps.number(c1, "Epochs", "epochs", min_value=0.01, max_value=1e6)
    gb = ps.number(c2, "Global batch (samples per optimizer step)", "global_batch", min_value=1, max_value=1 << 24)
    mb = ps.number(c3, "Micro-batch per device", "micro_batch", min_value=1, max_value=1 << 16)

    st.subheader("Goals")
    c = st.columns(4)
    deadline = ps.number(c[0], "Deadline (days, 0 = none)", "deadline_days", min_value=0.0, max_value=1e5)
    budget = ps.number(c[1], "Budget (USD, 0 = none)", "budget_usd", min_value=0.0, max_value=1e12)
    min_dev = ps.select(c[2], "At least devices", "min_devices", DEVICE_COUNTS)
    if ps.get("max_devices") < min_dev:  # before the box is drawn, so it shows what is used
        ps.notes.append(f"max_devices: {ps.get('max_devices'):,} -> {min_dev:,} (at least the minimum)")
        ps.set("max_devices", min_dev)
    max_dev = ps.select(c[3], "At most devices", "max_devices", DEVICE_COUNTS)

    st.subheader("Layout")
    c = st.columns([1, 1, 1, 1, 1.45, 1.45])  # the two check-box columns hold longer labels
    dp = ps.number(c[0], "Data parallel", "dp", min_value=1, max_value=1 << 20)
    tp = ps.number(c[1], "Tensor parallel", "tp", min_value=1, max_value=1024)
    pp = ps.number(c[2], "Pipeline stages", "pp", min_value=1, max_value=1024)
    zero = ps.select(c[3], "ZeRO stage", "zero", [0, 1, 2, 3], format_func=lambda z: f"{z} (FSDP)" if z == 3 else str(z))
    ckpt = ps.checkbox(c[4], "Checkpointing", "ckpt", help="full: each block keeps its input and recomputes its "
                       "forward in backward")
    if ckpt and ps.checkbox(c[4], "Per op (selective)", "ckpt_sel",
                            help="torchtitan's selective policy: keep the matmul and attention outputs too, recompute "
                                 "every second matmul and the elementwise ops (less recompute, more memory)"):
        ckpt = "selective"
    offload = ps.checkbox(c[5], "Optimizer offload", "offload")

    st.subheader("Checkpoints in storage")
    c = st.columns(3)
    kept = ps.number(c[0], "Checkpoints kept", "ckpt_kept", min_value=0, max_value=10_000)
    months = ps.number(c[1], "Months stored", "storage_months", min_value=0.0, max_value=1200.0)
    ck = checkpoint_of(model, workload)
    c[2].metric("One checkpoint", fmt.fmt_bytes(ck.training_checkpoint_bytes),
                help=f"weights + optimizer states (costmodel.checkpoint); model file alone "
                     f"{fmt.fmt_bytes(ck.model_file_bytes)}")
    pricing = page_state.pricing_from_state(ps.state)
    if kept:
        pricing.update(storage_bytes=ck.training_checkpoint_bytes * kept, storage_months=months)
except InputError as err:
    ps.stop(err)
ps.show_problems()

layout = dict(dp=dp, tp=tp, pp=pp, zero=zero, micro_batch=mb, grad_checkpointing=ckpt, offload=offload)
engine_kw = dict(engine=ps.get("engine"), time_source=ps.get("time_source"))
search_price = dict(usd_per_device_hour=float(ps.get("usd_h"))) if float(ps.get("usd_h") or 0) > 0 else {}
goal_kw = dict(min_devices=min_dev, deadline_s=deadline * 86400 if deadline else None,
               budget_usd=budget if budget else None)
search_kw = dict(tokens=tokens, samples=samples, epochs=epochs, workload=workload, global_batch=gb,
                 max_devices=max_dev, **goal_kw, **engine_kw, **search_price)
plan = None
try:
    plan, step_fig, mem_fig, plan_rows, step_rows = _plan_view(model, hw_id, workload, layout, tokens, samples, epochs,
                                                               gb, pricing, engine_kw, catalog_state())
except InputError as err:  # a layout the model cannot take: said here, the valid ones below, the page goes on
    show_error(err)
    st.markdown("**Layouts this model can take** (within the goals, nearest to the devices you typed first; pick "
                "one to use it):")
    try:
        found = _search(model, hw_id, "time", False, search_kw, catalog_state())
    except InputError as err2:
        show_error(err2)
        found = []
    import math

    typed = max(dp * tp * pp, 1)
    best: dict = {}  # the fastest variant of each (dp, tp, pp)
    for r in found:
        k = (r.layout.dp, r.layout.tp, r.layout.pp)
        if k not in best:
            best[k] = r
    valid = sorted(best.values(), key=lambda r: (abs(math.log2(r.num_devices) - math.log2(typed)),
                                                 r.wall_clock_s))[:6]
    if not valid:
        st.info("None fits within the goals: raise *At most devices*, the deadline or the budget.")
    for i, r in enumerate(valid):
        lay = r.layout
        cols = st.columns([4, 1])
        cols[0].write(f"dp {lay.dp} x tp {lay.tp} x pp {lay.pp}, ZeRO {lay.zero}, micro-batch {lay.micro_batch}"
                      f"{f', {fmt.fmt_checkpointing(lay.grad_checkpointing)} checkpointing' if lay.grad_checkpointing else ''}: "
                      f"{r.num_devices:,} devices, "
                      f"{fmt.fmt_seconds(r.wall_clock_s)}, {fmt.fmt_usd(r.cost_usd)}")
        if cols[1].button("Use", key=f"pt.use{i}"):
            ps.request(dp=lay.dp, tp=lay.tp, pp=lay.pp, zero=lay.zero, micro_batch=lay.micro_batch,
                       ckpt=bool(lay.grad_checkpointing), ckpt_sel=lay.grad_checkpointing == "selective")

if plan is not None:
    s, cost = plan.step, plan.cost
    c = st.columns(4)
    c[0].metric(i18n.t("metric.devices", L), f"{plan.num_devices:,}")
    c[1].metric(i18n.t("metric.wall_clock", L), fmt.fmt_seconds(plan.wall_clock_s))
    c[2].metric(i18n.t("metric.gpu_hours", L), fmt.fmt_hours(plan.gpu_hours))
    c[3].metric(i18n.t("metric.cost", L), fmt.fmt_usd(cost.total_usd) if cost.total_usd is not None else "no price",
                help="device rental" + (f" + checkpoint storage {fmt.fmt_usd(cost.storage_usd)}" if kept else ""))
    c = st.columns(4)
    c[0].metric(i18n.t("metric.energy", L), fmt.fmt_kwh(cost.energy_kwh))
    c[1].metric(i18n.t("metric.carbon", L), fmt.fmt_co2(cost.carbon_kg_co2e))
    c[2].metric("MFU", f"{s.mfu:.1%}")
    c[3].metric("Fits per device", "yes" if s.fits else "NO",
                delta=f"{fmt.fmt_bytes(s.memory_bytes.device_total)} of {fmt.fmt_bytes(s.memory_bytes.capacity)}",
                delta_color="off")
    ea = plan.assumptions["engine"]
    st.info(f"**Engine: {md(ea['engine'], 80)}** — {md(ea['summary'], 400)}; precision {md(plan.assumptions['precision'], 40)}; "
            f"GEMM times: {md(plan.assumptions.get('time_source', ''), 400)}", icon=":material/settings:")
    goals = []
    if deadline:
        goals.append(f"deadline {fmt.fmt_num(deadline)} days: " + ("met" if plan.wall_clock_s <= deadline * 86400
                                                                  else f"**missed** ({fmt.fmt_seconds(plan.wall_clock_s)})"))
    if budget:
        total = cost.total_usd
        goals.append(f"budget {fmt.fmt_usd(budget)}: " + ("met" if total is not None and total <= budget
                                                            else f"**over** ({fmt.fmt_usd(total)})"))
    if not min_dev <= plan.num_devices <= max_dev:
        goals.append(f"devices {min_dev:,}..{max_dev:,}: **outside** ({plan.num_devices:,})")
    if goals:
        st.markdown("Goals: " + "; ".join(goals))
    if kept:
        st.caption(f"{kept} checkpoint(s) of {fmt.fmt_bytes(ck.training_checkpoint_bytes)} for {fmt.fmt_num(months)} "
                   f"month(s): {fmt.fmt_usd(cost.storage_usd)} of object storage (in the cost above).")
    if not s.fits:
        st.warning("This layout does not fit in device memory: add tensor/pipeline stages, a higher ZeRO stage, "
                   "checkpointing or a smaller micro-batch — or let the layout search below find one.")

    c1, c2 = st.columns(2)
    with c1:
        figure(step_fig, "plan_step", "pt.step")
    with c2:
        figure(mem_fig, "plan_memory", "pt.mem")
    rows = list(plan_rows)
    t1, t2, t3 = st.tabs(["Plan", "Step time", "Assumptions"])
    with t1:
        table(tables.display_value_rows(rows))
        downloads("Plan", rows, "training_plan", "pt.dl")
        st.download_button("Full plan (JSON)", lambda: tables.to_json(plan.to_dict()), file_name="training_plan.json",
                           mime="application/json", key="pt.json", on_click="ignore")
    with t2:
        srows = list(step_rows)
        table(srows)
        downloads("Step", srows, "training_step", "pt.sdl")
    with t3:
        table(tables.assumption_rows(cost.assumptions))
        st.json({k: v for k, v in plan.assumptions.items()}, expanded=False)

    with st.expander("Save this plan as a named scenario (see the Scenarios page)"):
        with st.form("pt.save", clear_on_submit=False, border=False):
            name = st.text_input("Scenario name", key="pt.save_name", max_chars=120)
            notes = st.text_area("Notes", key="pt.save_notes", height=80)
            overwrite = st.checkbox("Overwrite a scenario with the same name", key="pt.save_over")
            if st.form_submit_button("Save plan"):
                try:
                    from costmodel.plan_scenario import training_scenario
                    from costmodel.storage import Store

                    scn = training_scenario(name, model, hw_id, workload, layout, tokens=tokens, samples=samples,
                                            epochs=epochs, global_batch=gb, pricing=pricing, notes=notes)
                    Store().save_scenario(name, scn, overwrite=overwrite)
                except InputError as err:
                    show_error(err)
                else:
                    st.success("Saved. Compare and export it from the Scenarios page.")

    st.subheader("Scaling with the number of devices")
    if ps.checkbox(st, "Show time and cost from 1 device up (data parallel grows; tensor/pipeline fixed)", "scaling"):
        counts = [n for n in DEVICE_COUNTS if n >= tp * pp and n <= max(plan.num_devices * 4, 8)]
        try:
            scal, scal_fig = _scaling_view(model, hw_id, workload, counts, tp, pp, zero, mb, ckpt, gb, pricing,
                                           tokens, samples, epochs, catalog_state())
        except InputError as err:
            show_error(err)
        else:
            if scal:
                figure(scal_fig, "scaling", "pt.scal")
                table(list(scal))
                downloads("Scaling", scal, "scaling", "pt.scaldl")

st.subheader("Layout search")
if ps.checkbox(st, "Search layouts (dp x tp x pp, ZeRO, micro-batch, checkpointing) within the goals, ranked",
               "search"):
    rank = ps.radio(st, "Rank by", "rank_by", ["time", "cost"], horizontal=True)
    try:
        with st.spinner("Searching layouts..."):
            found = _search(model, hw_id, rank, True, search_kw, catalog_state())
            pareto = _pareto(model, hw_id, rank, search_kw, catalog_state())
    except InputError as err:
        show_error(err)
    else:
        n_fit = sum(1 for r in found if r.fits)
        st.caption(f"{n_fit:,} layouts fit in memory within the goals ({len(found) - n_fit:,} more do not fit); "
                   f"devices {min_dev:,}..{max_dev:,}; the best 25 by {rank}:")
        if n_fit:
            best25 = []
            for r in found:  # ranked: the first 25 that fit
                if r.fits:
                    best25.append(r)
                    if len(best25) == 25:
                        break
            table(tables.layout_rows(best25))
            downloads("Layouts", lambda: tables.layout_rows(found), "layouts", "pt.laydl")  # rows made on a click
        if found:
            figure(pareto, "layouts_pareto", "pt.par")
ps.write_url()
