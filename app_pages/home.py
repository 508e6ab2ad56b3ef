"""Start page: what costmodel is, and seed scenarios that open in one click."""

import streamlit as st

from costmodel.ui import seeds

st.title("costmodel")
st.markdown("**What does this model cost to train and to serve?** Pick a model, a device and a workload; get "
            "exact parameter counts, FLOPs (2 per multiply-add), per-device memory, step time, and the formulas "
            "behind every number. Everything is in the URL: copy the address bar to share a view.")

st.subheader("Open a scenario")
seeds = seeds.load_seeds()
cols = st.columns(2)
for i, seed in enumerate(seeds):
    with cols[i % 2].container(border=True):
        st.markdown(f"**{seed['title']}**")
        st.caption(seed["description"])
        st.page_link(seed["page"], label=f"Open: {seed['title']}", icon=":material/play_arrow:",
                     query_params=seed["query"], help=f"opens {seed['page']} with this scenario's settings")

st.subheader("Pages")
st.markdown(
    "- **Estimate**: one model on one device: params, FLOPs and MACs, memory against capacity, step time with its "
    "roofline bound, \\$ and energy, per-layer table, and the formulas behind each number.\n"
    "- **Compare**: the same workload on several devices, or several settings (precision, full fine-tune vs LoRA "
    "vs QLoRA, checkpointing, optimizer), with sweeps over batch, sequence, prompt or image size.\n"
    "- **Plan training**: a whole run on many devices: parallel layout, wall clock, GPU-hours, \\$, kWh, CO2, "
    "scaling with the device count, and a layout search.\n"
    "- **Plan serving**: time to first token, per-token latency, throughput, the largest batch and context that "
    "fit, \\$ per million tokens, on several devices.\n"
    "- **Profile**: run real steps of a model on this machine and see predicted vs measured.\n"
    "- **Scenarios**: saved views, compared and exported as CSV, JSON or an HTML report.\n"
    "- **Learn**: where cost comes from, with small examples computed by the same estimator.")
