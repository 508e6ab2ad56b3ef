"""Profile: run real steps of the chosen model in a child process (costmodel.profiler), watch progress, cancel,
and see predicted vs measured. The dashboard never runs the model itself: the child can time out, crash or be
cancelled, and this page only shows what came back."""

import streamlit as st

from costmodel.ui import format as fmt, page_state, tables
from costmodel.ui.safe_text import plotly_text
from costmodel import extras
from costmodel.errors import InputError
from costmodel.profiler import ProfileRequest, start_profile
from costmodel.profiler import figures as pfig
from costmodel.profiler.calibrate import calibrate_device, efficiency_rows
from costmodel.profiler.compare import history_rows, module_flops_rows
from costmodel.profiler.env import default_hardware, device_label
from costmodel.profiler.probe import probe_calibration, run_probe
from costmodel.storage import Store
from costmodel_dashboard.app_pages._widgets import PageState, downloads, figure, model_picker, plain, show_error, workload_picker

st.title("Profile")
st.caption("Runs real PyTorch steps of the model (random weights, built from its config) in a separate process "
           "with a hard time limit, then puts each measurement beside the estimator's prediction.")
if not extras.available("profile"):  # the light install has no torch: say what to install, run nothing
    st.error(f"The profiler needs PyTorch and transformers ({', '.join(extras.missing('profile'))} not installed). "
             f"Install the extra: `{extras.install_hint('profile')}` — the other pages work without it.")
    st.stop()

DEFAULTS = {**page_state.MODEL_STATE, **page_state.WORKLOAD_STATE, "preset": "gpt2", "batch": 1, "seq": 128,
            "precision": "fp32", "device": "cpu", "steps": 3, "warmup": 1, "timeout_s": 300, "overrides": "",
            "threads": 0, "calibrated": False, "hist_device": "all", "hist_model": "all"}
ps = PageState("profile", DEFAULTS)
HANDLE, RESULT = "profile.handle", "profile.result"
sb = st.sidebar

try:
    model = model_picker(ps)
    workload = workload_picker(ps, model, selective=False)
    c = st.columns(5)
    device = ps.select(c[0], "Device", "device", ["cpu", "cuda"])
    steps = ps.number(c[1], "Measured steps", "steps", min_value=1, max_value=10000)
    warmup = ps.number(c[2], "Warm-up steps", "warmup", min_value=0, max_value=1000)
    timeout = ps.number(c[3], "Time limit (s)", "timeout_s", min_value=1, max_value=86400)
    threads = ps.number(c[4], "CPU threads (0 = torch default)", "threads", min_value=0, max_value=1024)
    over_text = ps.text_area(st, 'Config overrides (JSON), e.g. {"n_layer": 2} to shrink a preset', "overrides",
                             height=68)
    overrides = page_state.parse_config(over_text) if over_text.strip() else {}
    use_calibration = ps.checkbox(st, "Predict with this device's latest calibration (off until a fit from enough "
                                      "runs is stored: 3 runs, 2 more times than fitted fields)", "calibrated")
    request = ProfileRequest(model=model, workload=workload.to_dict(), device=device, steps=steps, warmup=warmup,
                             timeout_s=timeout, config_overrides=overrides, threads=threads or None)
except InputError as err:
    ps.stop(err)
ps.show_problems()
ps.write_url()

try:
    store = Store()  # the page's runs, calibrations and history (COSTMODEL_DB)
except InputError as err:
    show_error(err)
    st.stop()
running = st.session_state.get(HANDLE) is not None
if st.button("Run", type="primary", disabled=running, key="profile.run"):
    try:
        st.session_state[HANDLE] = start_profile(request, store=store,
                                                 efficiency="calibrated" if use_calibration else None)
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
    st.progress(frac, text=plain(f"{p.get('stage', '')}: {p.get('message', '')} — {p.get('elapsed_s', 0):.1f} s, "
                                 f"{p.get('time_left_s', 0):.0f} s left"))
    if st.button("Cancel", key="profile.cancel"):
        st.session_state[RESULT] = handle.cancel()
        st.session_state[HANDLE] = None
        st.rerun(scope="app")


progress_panel()

res = st.session_state.get(RESULT)
if res is not None:
    st.subheader(plain(f"Run {res.run_id or ''}: {res.status}"))
    if res.status != "ok":
        st.error(f"**{plain(res.status)}**: {plain(res.message)}")
        if res.stderr_tail:
            st.code(res.stderr_tail, language=None)
    else:
        st.success(plain(f"{res.model} on {res.device}: {res.message or 'measured'} in {res.elapsed_s:.1f} s"))
    if res.comparison:
        st.caption(plain(f"Predicted for hardware {res.predicted.get('hardware')} with efficiency: "
                         f"{res.predicted.get('efficiency_source')}"))
        rows = res.comparison
        st.dataframe(tables.to_frame(rows), hide_index=True,
                     column_config={"error_pct": st.column_config.NumberColumn("error %", format="%+.1f")})
        downloads("Predicted vs measured", rows, "profile_comparison", "prof.dl")
        c1, c2 = st.columns(2)
        with c1:
            figure(pfig.parity_figure([res], title=f"Predicted vs measured: {plotly_text(res.model)}"), "parity",
                   "prof.parity")
        with c2:
            figure(pfig.step_times_figure(res), "step_times", "prof.steps")
        if (res.measured or {}).get("memory_timeline"):
            figure(pfig.memory_timeline_figure(res), "memory_timeline", "prof.mem")
        mod_rows = module_flops_rows(res.measured or {})
        if mod_rows:
            with st.expander("FLOPs by module, from both counters"):
                st.caption("torch FlopCounterMode counts 2 FLOPs per multiply-add over the whole counted pass "
                           "(training: forward + backward; inference: prefill + every decode step); fvcore counts "
                           "1 per multiply-add (MACs) over one forward, so `fvcore FLOPs` = 2 x MACs. Blank: that "
                           "counter has no row for the module (FlopCounterMode skips containers that are never "
                           "called, such as ModuleLists).")
                st.dataframe(tables.to_frame(mod_rows), hide_index=True)
                downloads("FLOPs by module", mod_rows, "profile_flops_by_module", "prof.mods")
                unsupported = (res.measured or {}).get("fvcore_unsupported_ops") or {}
                if unsupported:
                    st.caption("fvcore skipped (no formula; counted 0): " + ", ".join(
                        f"{plain(k)} x{v}" for k, v in sorted(unsupported.items())))
    for n in res.notes:
        st.caption(plain(n))
    with st.expander("Everything measured (JSON)"):
        st.json({"measured": res.measured, "environment": res.environment}, expanded=False)

st.subheader("Calibration")
label = device_label(device)
n_stored = store.count_measurements(device=label)
st.caption(f"Fits the time model's efficiency (fraction of peak FLOP/s and bandwidth, host overhead per op and per "
           f"step) to the stored runs of **{plain(label)}** ({n_stored} stored), by least squares on "
           "log(predicted / measured). It fits only as many fields as the runs determine (at most one fewer than the "
           "measured times, and only fields the runs can tell apart), says which and why not the others, and gives "
           "each fitted value's uncertainty. More varied runs (sizes, training and inference) determine more. "
           "CLI: `python -m costmodel calibrate`.")
b1, b2 = st.columns(2)
if b1.button(f"Fit calibration from {n_stored} stored run(s)", disabled=n_stored == 0, key="profile.calibrate"):
    with st.spinner("fitting..."):
        try:
            calibrate_device(store, label)
        except InputError as err:
            show_error(err)
if b2.button("Probe this device (microbenchmarks, under a minute)", key="profile.probe",
             disabled=st.session_state.get(HANDLE) is not None,
             help="GEMM rate, copy bandwidth and host time per eager call, measured in a child process; sets the "
                  "efficiency without running a model (CLI: python -m costmodel probe)"):
    with st.spinner("probing in a child process..."):
        try:
            measured_probe = run_probe(device, threads=threads or None, timeout_s=180)
            store.save_calibration(label, probe_calibration(measured_probe, default_hardware(device, label), label))
        except (RuntimeError, InputError, ValueError) as err:
            st.error(f"**probe**: {plain(err)}")
cal = store.latest_calibration(label)
if cal is None:
    st.caption("No calibration stored for this device yet: predictions use the estimator's defaults.")
else:
    when = fmt.fmt_timestamp(cal.get("created_at") or cal.get("created"))
    is_probe = cal.get("method") == "probe"
    if is_probe:
        st.caption(f"Calibration {cal.get('id')} of {when} (UTC) is a **probe**: measured rates relative to "
                   f"{plain(cal.get('hardware'))}'s datasheet; a fit from stored runs starts from it.")
        st.dataframe(tables.to_frame(cal.get("probe_rows") or []), hide_index=True)
    else:
        c = st.columns(5)
        c[0].metric("Runs fitted", cal["n_runs"])
        c[1].metric("Times fitted", cal["n_points"])
        c[2].metric("Fields fitted", len(cal["fitted_fields"]),
                    help=", ".join(cal["fitted_fields"]) or "none")
        c[3].metric("RMS log error before", f"{cal['rmse_log_before']:.3f}")
        c[4].metric("RMS log error after", f"{cal['rmse_log_after']:.3f}",
                    help=f"{cal.get('dof', '?')} degree(s) of freedom left to measure it")
        st.caption(f"Calibration {cal.get('id')} of {when} (UTC): fitted {', '.join(cal['fitted_fields']) or 'nothing'}; "
                   "an RMS log error of 0.1 is a typical factor of 1.11.")
        if not cal.get("enough_data", False):
            st.warning(f"Fitted from {cal['n_runs']} run(s) and {cal['n_points']} time(s): not enough to trust it "
                       f"(at least {3} runs and 2 more times than fields). Store more varied runs before using it.")
        if cal.get("implausible"):
            st.warning("Implausible for real hardware: " + ", ".join(cal["implausible"])
                       + " (the runs may be dominated by something the model does not have, e.g. a busy machine).")
    eff_rows = efficiency_rows(cal)
    st.dataframe(tables.to_frame(eff_rows), hide_index=True)
    downloads("Calibration", eff_rows, "calibration", "prof.cal.dl")
    if not is_probe:
        c1, c2 = st.columns(2)
        with c1:
            figure(pfig.calibration_figure(cal), "calibration", "prof.cal")
        with c2:
            figure(pfig.residuals_figure(cal), "calibration_residuals", "prof.res")

st.subheader("Measurement history")
st.caption("Every run saved in the database (the Profile page saves each finished run; the CLI with `--save`). "
           "CLI: `python -m costmodel measurements list --device ... --model ...`.")
labels = store.measurement_labels()
n_before = len(ps.problems)
c1, c2 = st.columns(2)
hist_device = ps.select(c1, "Device", "hist_device", ["all", *labels["devices"]],
                        format_func=lambda d: d if d == "all" else f"{d} ({labels['devices'][d]} runs)")
hist_model = ps.select(c2, "Model", "hist_model", ["all", *labels["models"]],
                       format_func=lambda m: m if m == "all" else f"{m} ({labels['models'][m]} runs)")
for problem in ps.problems[n_before:]:
    field, _, msg = problem.partition(": ")
    st.warning(f"**{plain(field)}** (from the link): {plain(msg)}")
ps.write_url()
records = store.list_measurements(device=None if hist_device == "all" else hist_device,
                                  model=None if hist_model == "all" else hist_model)
if not records:
    st.caption("No stored runs yet." if not labels["devices"] else "No stored runs match the filter.")
else:
    hist_rows = history_rows(records)
    st.dataframe(tables.to_frame(hist_rows), hide_index=True, column_config={
        k: st.column_config.NumberColumn(k, format="%+.1f") for k in
        ("peak_err_pct", "step_err_pct", "prefill_err_pct", "forward_err_pct", "decode_err_pct")})
    downloads("Measurement history", hist_rows, "profile_history", "prof.hist")
    done = [r for r in records if r.get("status", "ok") == "ok" and r.get("comparison")]
    if done:
        c1, c2 = st.columns(2)
        with c1:
            figure(pfig.parity_figure(done, title=f"Predicted vs measured across {len(done)} runs"), "parity_all",
                   "prof.all")
        with c2:
            figure(pfig.error_bars_figure(done), "errors_all", "prof.err")
