"""Compare: the same workload on several devices, or several settings on one device; sweeps."""

import streamlit as st

import costmodel

from costmodel.ui import figures, page_state, sweeps
from costmodel.ui.safe_text import md
from costmodel.catalog import catalog_state, list_hardware
from costmodel.errors import InputError
from costmodel_dashboard.app_pages._widgets import (PageState, downloads, figure, hardware_picker, lang, model_picker, show_error, table,
                                workload_picker)

st.title("Compare")
st.caption("The same workload side by side: across devices, or across settings. Red bars do not fit in memory.")

DEFAULTS = {**page_state.ESTIMATE_STATE, "mode": "gpus", "gpus": "a100-sxm-80gb,h100-sxm-80gb,l4-24gb",
            "group": "precision", "sweep": "batch", "sweep_from": 1, "sweep_to": 64}
ps = PageState("compare", DEFAULTS)
lang(ps)
mode = ps.radio(st, "Compare", "mode", ["gpus", "settings"], horizontal=True,
                format_func={"gpus": "Several devices", "settings": "Several settings"}.get)
try:
    model = model_picker(ps)
    if mode == "settings":
        hw = hardware_picker(ps)
    workload = workload_picker(ps, model)
except InputError as err:
    ps.stop(err)

# Cached per input and catalog state (issue 17; one process serves every session, so bounded in entries): a rerun
# with unchanged inputs runs no estimate. The values are not changed by the page.
@st.cache_resource(show_spinner=False, max_entries=16)
def _compare_devices(model, chosen: tuple, workload, state):
    hws = {h.id: h for h in list_hardware()}
    return sweeps.compare_devices(model, {g: hws[g] for g in chosen}, workload)


@st.cache_resource(show_spinner=False, max_entries=16)
def _compare_settings(model, _hw, hw_key: str, workload, group, state):
    """``_hw`` (a Hardware record, not hashed: it holds a mapping proxy) is keyed by ``hw_key``, its repr."""
    return sweeps.compare_settings(model, _hw, workload, group)


@st.cache_resource(show_spinner=False, max_entries=16)
def _sweep_rows(sweep_state, field, values: tuple, state):
    return sweeps.sweep_rows(sweep_state, field, list(values))


if mode == "gpus":
    hws = {h.id: h for h in list_hardware()}
    chosen = ps.multiselect(st, "Devices", "gpus", list(hws), format_func=lambda i: f"{i} — {hws[i].name}")
    rows, ests, errors = _compare_devices(model, tuple(chosen), workload, catalog_state())
    for err in errors:
        show_error(err)
else:
    group = ps.select(st, "Settings to compare", "group", list(sweeps.SETTING_VARIANTS))
    rows, ests, notes = _compare_settings(model, hw, repr(hw), workload, group, catalog_state())
    for note in notes:
        st.info(md(note, 2000))
ps.show_problems()

if rows:
    table(rows)
    downloads("Comparison", rows, "comparison", "cmp.dl")
    c1, c2 = st.columns(2)
    with c1:
        figure(figures.compare_figure(rows, "time_s", f"Time per {rows[0]['per_unit']}", "s"), "compare_time", "cmp.t")
    with c2:
        figure(figures.compare_figure(rows, "device_total_GiB", "Device memory", "GiB"), "compare_memory", "cmp.m")
    # time and money of the same unit (a training step, a whole request or a forward)
    priced = [r for r in rows if r["usd"] == r["usd"]]
    if len(priced) >= 2:
        unit = rows[0]["per_unit"]
        figure(figures.pareto_figure(priced, x="time_s", y="usd", label="setting",
                                     x_title=f"time per {unit} (s)", y_title=f"USD per {unit}"),
               "compare_pareto", "cmp.par")
    if any("decode_s_per_token" in r for r in rows):
        figure(figures.compare_figure(rows, "decode_s_per_token", "Decode latency per token", "s"),
               "compare_decode", "cmp.d")

st.subheader("Sweep")
st.caption("Memory and time against one workload size on one device. Time and cost against the number of GPUs "
           "are on *Plan training* (scaling) and *Plan serving* (tensor parallel).")
c1, c2, c3 = st.columns(3)
field = ps.select(c1, "Vary", "sweep", list(sweeps.SWEEP_FIELDS))
lo = ps.number(c2, "from", "sweep_from", min_value=1, max_value=1 << 24)
hi = ps.number(c3, "to", "sweep_to", min_value=1, max_value=1 << 24)
sweep_state = {**ps.state, "hw": (ps.get("hw") if mode == "settings" else (rows[0]["hardware"] if rows else
                                                                             page_state.DEFAULT_HARDWARE))}
try:
    values = sweeps.sweep_values(field, lo, hi)
    values, capped = sweeps.cap_sweep(costmodel.load_model(model), sweep_state, field, values)
    if capped:
        st.info(capped)
    srows = _sweep_rows(sweep_state, field, tuple(values), catalog_state())
except InputError as err:
    show_error(err)
else:
    st.caption(f"On {sweep_state['hw']}, powers of two from {values[0]:,} to {values[-1]:,}.")
    figure(figures.sweep_figure(srows, field), f"sweep_{field}", "cmp.sw")
    table(srows)
    downloads("Sweep", srows, f"sweep_{field}", "cmp.swdl")
ps.write_url()
