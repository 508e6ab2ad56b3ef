"""Scenarios: saved named estimates (costmodel.storage), compared and exported (costmodel.ui.report).

Names are user text: they are shown only in tables, select boxes and escaped markdown, never as HTML."""

import streamlit as st
from costmodel.ui import figures, format as fmt, page_state, report, tables
from costmodel.errors import InputError
from costmodel.plan_scenario import evaluate_plan, plan_summary
from costmodel.scenario import evaluate_scenario
from costmodel.storage import Store, default_path
from costmodel_dashboard.app_pages._widgets import show_error, table

st.title("Scenarios")
st.caption("Named estimates and plans saved from the Estimate and Plan pages (or imported), kept in a SQLite file "
           f"(`{str(default_path()).replace('`', '')}`; set `COSTMODEL_DB` to move it). Compare them and export reports.")

try:
    store = Store()
    listed = store.list_scenarios()
except InputError as err:
    show_error(err)
    st.stop()

with st.expander("Import scenarios from a JSON export"):
    up = st.file_uploader("costmodel JSON export (one scenario or a comparison)", type=["json"], key="sc.import",
                          max_upload_size=1)
    over = st.checkbox("Overwrite scenarios with the same names", key="sc.import_over")
    if up is not None and st.button("Import", key="sc.import_btn"):
        try:
            items = report.import_scenarios(up.getvalue())
            store.save_scenarios(items, overwrite=over)  # all or nothing
        except InputError as err:
            show_error(err)
        else:
            st.success(f"Imported {len(items)} scenario(s).")
            listed = store.list_scenarios()

if not listed:
    st.info("No scenarios yet. On the Estimate page, open *Save this view as a named scenario* (Plan training and "
            "Plan serving save their plans the same way).")
    st.stop()

st.dataframe(tables.to_frame(listed), hide_index=True,
             column_config={"name": st.column_config.TextColumn("name")})
names = [s["name"] for s in listed]

st.subheader("One scenario")
name = st.selectbox("Scenario", names, key="sc.pick")
try:
    scn = store.load_scenario(name)
    est = evaluate_scenario(scn)
except InputError as err:
    show_error(err)
    st.stop()
c = st.columns(4)
c[0].metric("Parameters", fmt.fmt_count(est.params.total))
c[1].metric("Peak memory", fmt.fmt_bytes(est.memory_bytes.peak))
c[2].metric("Fits", "yes" if est.memory_bytes.fits else "NO")
c[3].metric(f"Time per {est.unit}", fmt.fmt_seconds(est.time_s.per_unit_s))
plan = evaluate_plan(scn) if scn.get("plan") else None
if plan is not None:  # a saved training or serving plan: its totals, with money, energy and carbon
    ps_ = plan_summary(plan)
    c = st.columns(5)
    if ps_["plan.kind"] == "training":
        c[0].metric("Devices", f"{ps_['plan.num_devices']:,}")
        c[1].metric("Wall clock", fmt.fmt_seconds(ps_["plan.wall_clock_s"]))
        c[2].metric("Cost", fmt.fmt_usd(ps_["plan.total_usd"]) if ps_["plan.total_usd"] is not None else "no price")
        c[3].metric("Energy", fmt.fmt_kwh(ps_["plan.energy_kwh"]))
        c[4].metric("Carbon", fmt.fmt_co2(ps_["plan.carbon_kg_co2e"]))
    else:
        c[0].metric("Largest batch", f"{ps_['plan.max_batch']:,}")
        c[1].metric("Time to first token", fmt.fmt_seconds(ps_["plan.ttft_s"]))
        usd = ps_.get("plan.usd_per_million_tokens")
        c[2].metric("Best $ per million tokens", fmt.fmt_usd(usd) if usd is not None else "n/a")
        kwh = ps_.get("plan.energy_kwh_per_million_tokens")
        c[3].metric("kWh per million tokens", fmt.fmt_kwh(kwh) if kwh is not None else "n/a")
if scn.get("notes"):
    st.text(scn["notes"])  # plain text, never markdown or HTML
st.page_link("app_pages/estimate.py", label="Open in Estimate", icon=":material/calculate:", query_params=page_state.state_from_scenario(scn))

c1, c2, c3 = st.columns(3)
stem = "scenario"
c1.download_button("Report (HTML)", lambda: report.export_html(scn), file_name=f"{stem}.html", mime="text/html",
                   key="sc.html", on_click="ignore")
c2.download_button("Scenario (JSON)", lambda: report.export_json(scn), file_name=f"{stem}.json", mime="application/json",
                   key="sc.json", on_click="ignore")
c3.download_button("Results (CSV)", lambda: report.export_csv(scn), file_name=f"{stem}.csv", mime="text/csv",
                   key="sc.csv", on_click="ignore")

with st.expander("Rename, duplicate or delete"):
    new = st.text_input("New name", key="sc.new_name", max_chars=120)
    b1, b2, b3 = st.columns(3)
    confirm = st.checkbox("Yes, delete this scenario", key="sc.confirm_delete")
    try:
        if b1.button("Rename", key="sc.rename"):
            store.rename_scenario(name, new)
            st.rerun()
        if b2.button("Duplicate", key="sc.duplicate"):
            store.duplicate_scenario(name, new)
            st.rerun()
        if b3.button("Delete", key="sc.delete", disabled=not confirm):
            store.delete_scenario(name)
            st.rerun()
    except InputError as err:
        show_error(err)

st.subheader("Compare scenarios")
chosen = st.multiselect("Scenarios", names, default=names[: min(3, len(names))], key="sc.compare")
if chosen:
    rows, scns = [], []
    for n in chosen:
        try:
            s = store.load_scenario(n)
            row = tables.compare_row(n, evaluate_scenario(s))
            pl = evaluate_plan(s) if s.get("plan") else None
            rows.append({**row, **(plan_summary(pl) if pl is not None else {})})
            scns.append(s)
        except InputError as err:
            show_error(err)
    if rows:
        table(rows)
        c1, c2 = st.columns(2)
        with c1:
            st.plotly_chart(figures.compare_figure(rows, "time_s", "Time per run (step, request or forward)", "s"), key="sc.ft")
        with c2:
            st.plotly_chart(figures.compare_figure(rows, "device_total_GiB", "Device memory", "GiB"), key="sc.fm")
        c1, c2, c3 = st.columns(3)
        c1.download_button("Comparison report (HTML)", lambda: report.export_html(scns), file_name="comparison.html",
                           mime="text/html", key="sc.chtml", on_click="ignore")
        c2.download_button("Comparison (JSON)", lambda: report.export_json(scns), file_name="comparison.json",
                           mime="application/json", key="sc.cjson", on_click="ignore")
        c3.download_button("Comparison (CSV)", lambda: report.export_csv(scns), file_name="comparison.csv", mime="text/csv",
                           key="sc.ccsv", on_click="ignore")
