"""Start page: what costmodel is, seed scenarios that open in one click, and the course's own models; in English
or Chinese (``lang=zh`` in the URL)."""

import streamlit as st

from costmodel import __version__
from costmodel.models import get_preset
from costmodel.ui import i18n, seeds
from costmodel_dashboard.app_pages._widgets import PageState, lang

ps = PageState("home", {})
L = lang(ps)
st.title(i18n.t("home.title", L))
st.markdown(i18n.t("home.intro", L))
st.caption(f"costmodel {__version__}")  # the one version (pyproject reads it from costmodel/__init__.py)

st.subheader(i18n.t("home.seeds", L))
all_seeds = seeds.load_seeds()
cols = st.columns(2)
for i, seed in enumerate(s for s in all_seeds if not s["id"].startswith("course-")):
    with cols[i % 2].container(border=True):
        st.markdown(f"**{seed['title']}**")
        st.caption(seed["description"])
        st.page_link(seed["page"], label=f"Open: {seed['title']}", icon=":material/play_arrow:",
                     query_params={**seed["query"], **({"lang": L} if L != "en" else {})},
                     help=f"opens {seed['page']} with this scenario's settings")

st.subheader(i18n.t("home.course", L))
st.markdown(i18n.t("home.course_intro", L))
cols = st.columns(2)
for i, seed in enumerate(s for s in all_seeds if s["id"].startswith("course-")):
    with cols[i % 2].container(border=True):
        st.markdown(f"**{seed['title']}**")
        st.caption(seed["description"])
        preset = seed["query"].get("preset")
        if preset:
            st.caption(f"{get_preset(preset).published_params:,} parameters — "
                       f"{get_preset(preset).published_params_source.split(';')[0][:140]}")
        st.page_link(seed["page"], label=f"Open: {seed['title']}", icon=":material/school:",
                     query_params={**seed["query"], **({"lang": L} if L != "en" else {})})

st.subheader(i18n.t("home.pages", L))
st.markdown(i18n.t("home.pages_list", L))
ps.write_url()
