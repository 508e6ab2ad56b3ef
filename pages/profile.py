"""Profile: run real steps of the chosen model in a child process (costmodel.profiler), watch progress, cancel,
and see predicted vs measured. The dashboard never runs the model itself: the child can time out, crash or be
cancelled, and this page only shows what came back."""

import streamlit as st

from costmodel import views
from costmodel.errors import InputError
from costmodel.profiler import ProfileRequest, load_results, start_profile
from costmodel.profiler import figures as pfig
from costmodel.storage import Store
from pages._widgets import PageState, downloads, figure, model_picker, show_error, workload_picker

st.title("Profile")
st.caption("Runs real PyTorch steps of the model (random weights, built from its config) in a separate process "
           "with a hard time limit, then puts each measurement beside the estimator's prediction.")

DEFAULTS = {**views.MODEL_STATE, **views.WORKLOAD_STATE, "preset": "gpt2", "batch": 1, "seq": 128,
            "precision": "fp32", "device": "cpu", "steps": 3, "warmup": 1, "timeout_s": 300, "overrides": "",
            "threads": 0}
ps = PageState("profile", DEFAULTS)
HANDLE, RESULT = "profile.handle", "profile.result"
sb = st.sidebar

try:
    model = model_picker(ps)
    workload = workload_picker(ps, model)
    c = st.columns(5)
    device = ps.select(c[0], "Device", "device", ["cpu", "cuda"])
    steps = ps.number(c[1], "Measured steps", "steps", min_value=0, max_value=10000)
    warmup = ps.number(c[2], "Warm-up steps", "warmup", min_value=0, max_value=1000)
    timeout = ps.number(c[3], "Time limit (s)", "timeout_s", min_value=0, max_value=86400)
    threads = ps.number(c[4], "CPU threads (0 = torch default)", "threads", min_value=0, max_value=1024)
    over_text = ps.text_area(st, 'Config overrides (JSON), e.g. {"n_layer": 2} to shrink a preset', "overrides",
                             height=68)
    overrides = views.parse_config(over_text) if over_text.strip() else {}
    request = ProfileRequest(model=model, workload=workload.to_dict(), device=device, steps=steps, warmup=warmup,
                             timeout_s=timeout, config_overrides=overrides, threads=threads or None)
except InputError as err:
    ps.show_problems()
    show_error(err)
    ps.write_url()
    st.stop()
ps.show_problems()
ps.write_url()

running = st.session_state.get(HANDLE) is not None
if st.button("Run", type="primary", disabled=running, key="profile.run"):
    try:
        st.session_state[HANDLE] = start_profile(request, store=Store())
        st.session_state.pop(RESULT, None)
    except InputError as err:
        show_error(err)


@st.fragment(run_every=0.5)
def progress_panel():
    handle = st.session_state.get(HANDLE)
    if handle is None:
        return
    if handle.done():
        st.session_state[RESULT] = handle.result()
        st.session_state[HANDLE] = None
        st.rerun(scope="app")
    p = handle.progress()
    frac = min(max(float(p.get("fraction") or 0.0), 0.0), 1.0)
    st.progress(frac, text=f"{p.get('stage', '')}: {p.get('message', '')} — {p.get('elapsed_s', 0):.1f} s, "
                           f"{p.get('time_left_s', 0):.0f} s left")
    if st.button("Cancel", key="profile.cancel"):
        st.session_state[RESULT] = handle.cancel()
        st.session_state[HANDLE] = None
        st.rerun(scope="app")


progress_panel()

res = st.session_state.get(RESULT)
if res is not None:
    st.subheader(f"Run {res.run_id or ''}: {res.status}")
    if res.status != "ok":
        st.error(f"**{res.status}**: {res.message}")
        if res.stderr_tail:
            st.code(res.stderr_tail, language=None)
    else:
        st.success(f"{res.model} on {res.device}: {res.message or 'measured'} in {res.elapsed_s:.1f} s")
    if res.comparison:
        rows = res.comparison
        st.dataframe(views.to_frame(rows), hide_index=True,
                     column_config={"error_pct": st.column_config.NumberColumn("error %", format="%+.1f")})
        downloads("Predicted vs measured", rows, "profile_comparison", "prof.dl")
        c1, c2 = st.columns(2)
        with c1:
            figure(pfig.parity_figure([res], title=f"Predicted vs measured: {res.model}"), "parity", "prof.parity")
        with c2:
            figure(pfig.step_times_figure(res), "step_times", "prof.steps")
        if (res.measured or {}).get("memory_timeline"):
            figure(pfig.memory_timeline_figure(res), "memory_timeline", "prof.mem")
    for n in res.notes:
        st.caption(n)
    with st.expander("Everything measured (JSON)"):
        st.json({"measured": res.measured, "environment": res.environment}, expanded=False)

st.subheader("All runs on this machine")
history = [r for r in load_results() if r.status == "ok" and r.comparison]
if not history:
    st.caption("No finished runs yet.")
else:
    c1, c2 = st.columns(2)
    with c1:
        figure(pfig.parity_figure(history, title=f"Predicted vs measured across {len(history)} runs"), "parity_all",
               "prof.all")
    with c2:
        figure(pfig.error_bars_figure(history), "errors_all", "prof.err")
    summary = [{"run_id": r.run_id, "model": r.model, "task": r.task, "device": r.device,
                "elapsed_s": r.elapsed_s} for r in history]
    st.dataframe(views.to_frame(summary), hide_index=True)
