"""Compare: the same workload on several devices, or several settings on one device; sweeps."""

import streamlit as st

import costmodel
from costmodel import figures, views
from costmodel.catalog import list_hardware
from costmodel.errors import InputError
from app_pages._widgets import PageState, downloads, figure, hardware_picker, model_picker, show_error, workload_picker

st.title("Compare")
st.caption("The same workload side by side: across devices, or across settings. Red bars do not fit in memory.")

DEFAULTS = {**views.ESTIMATE_STATE, "mode": "gpus", "gpus": "a100-sxm-80gb,h100-sxm-80gb,l4-24gb",
            "group": "precision", "sweep": "batch", "sweep_from": 1, "sweep_to": 64}
ps = PageState("compare", DEFAULTS)
mode = ps.radio(st, "Compare", "mode", ["gpus", "settings"], horizontal=True,
                format_func={"gpus": "Several devices", "settings": "Several settings"}.get)
try:
    model = model_picker(ps)
    if mode == "settings":
        hw = hardware_picker(ps)
    workload = workload_picker(ps, model)
except InputError as err:
    ps.stop(err)

rows, ests = [], []
if mode == "gpus":
    hws = {h.id: h for h in list_hardware()}
    cur = [g for g in str(ps.get("gpus")).split(",") if g]
    bad = [g for g in cur if g not in hws]
    if bad:
        ps.problems.append(f"gpus: {', '.join(bad)} not in the catalog")
    mk = ps.key("gpus_ms")
    if ps.loaded is not None or mk not in st.session_state:
        st.session_state[mk] = [g for g in cur if g in hws]
    chosen = st.multiselect("Devices", list(hws), key=mk, format_func=lambda i: f"{i} — {hws[i].name}")
    ps.values["gpus"] = ",".join(chosen)
    for g in chosen:
        try:
            est = costmodel.estimate(model, hardware=hws[g], workload=workload)
        except InputError as err:
            show_error(err)
            continue
        ests.append(est)
        rows.append(views.compare_row(g, est))
else:
    group = ps.select(st, "Settings to compare", "group", list(views.SETTING_VARIANTS))
    for label in views.SETTING_VARIANTS[group]:
        try:
            ov = views.variant_overrides(group, label, workload.task)
            w = costmodel.Workload.from_dict({**workload.to_dict(), **ov})
            est = costmodel.estimate(model, hardware=hw, workload=w)
        except InputError as err:
            st.info(f"{label} — {err.field}: {err.message}")
            continue
        ests.append(est)
        rows.append(views.compare_row(label, est))
ps.show_problems()

if rows:
    st.dataframe(views.to_frame(rows), hide_index=True)
    downloads("Comparison", rows, "comparison", "cmp.dl")
    c1, c2 = st.columns(2)
    with c1:
        figure(figures.compare_figure(rows, "time_s", "Time per step / prefill", "s"), "compare_time", "cmp.t")
    with c2:
        figure(figures.compare_figure(rows, "device_total_GiB", "Device memory", "GiB"), "compare_memory", "cmp.m")
    priced = [r for r in rows if r["usd_per_million_tokens"] == r["usd_per_million_tokens"]]
    if len(priced) >= 2:
        figure(figures.pareto_figure(priced, x="time_s", y="usd_per_million_tokens", label="setting",
                                     x_title="time per step / request (s)", y_title="USD per million tokens"),
               "compare_pareto", "cmp.par")
    if any("decode_s_per_token" in r for r in rows):
        figure(figures.compare_figure(rows, "decode_s_per_token", "Decode latency per token", "s"),
               "compare_decode", "cmp.d")

st.subheader("Sweep")
st.caption("Memory and time against one workload size on one device. Time and cost against the number of GPUs "
           "are on *Plan training* (scaling) and *Plan serving* (tensor parallel).")
c1, c2, c3 = st.columns(3)
field = ps.select(c1, "Vary", "sweep", list(views.SWEEP_FIELDS))
lo = ps.number(c2, "from", "sweep_from", min_value=0, max_value=1 << 24)
hi = ps.number(c3, "to", "sweep_to", min_value=0, max_value=1 << 24)
sweep_state = {**ps.state(), "hw": (ps.get("hw") if mode == "settings" else (rows[0]["hardware"] if rows else
                                                                             views.DEFAULT_HARDWARE))}
try:
    values = views.sweep_values(field, lo, hi)
    srows = views.sweep_rows(sweep_state, field, values)
except InputError as err:
    show_error(err)
else:
    st.caption(f"On {sweep_state['hw']}, powers of two from {values[0]} to {values[-1]}.")
    figure(figures.sweep_figure(srows, field), f"sweep_{field}", "cmp.sw")
    st.dataframe(views.to_frame(srows), hide_index=True)
    downloads("Sweep", srows, f"sweep_{field}", "cmp.swdl")
ps.write_url()
