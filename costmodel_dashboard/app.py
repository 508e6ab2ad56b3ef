"""costmodel dashboard: ``costmodel dashboard`` (or ``streamlit run costmodel_dashboard/app.py``). Router only; the pages are
in app_pages/ beside it (not pages/: Streamlit
would also serve a pages/ folder as old-style pages, so a shared deep link such as /estimate would open the page
without this router, its layout and its navigation)."""

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent  # costmodel_dashboard/: pages are app_pages/<page>.py in it
if str(ROOT.parent) not in sys.path:  # a checkout run as `streamlit run costmodel_dashboard/app.py`
    sys.path.insert(0, str(ROOT.parent))

import streamlit as st  # noqa: E402

from costmodel_dashboard.app_pages._registry import PAGES  # noqa: E402

# an emoji favicon is drawn locally (a data: URL); a :material/...: one is fetched from fonts.gstatic.com, a request
# that would leave the machine on every page view
st.set_page_config(page_title="costmodel", page_icon="🧮", layout="wide")
# metric values wrap instead of being cut ("8,030,261,…" at 1280 px); a smaller font on narrow screens
st.html("""<style>
[data-testid="stMetricValue"] { font-size: clamp(1.15rem, 1.7vw, 1.9rem); }
[data-testid="stMetricValue"] > div { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; overflow-wrap: anywhere; }
[data-testid="stMetricLabel"] p { white-space: normal !important; }
</style>""")
nav = st.navigation({section: [st.Page(str(ROOT / p["file"]), title=p["title"], url_path=p["url"],
                                       default=p.get("default", False), icon=p.get("icon"))
                               for p in pages] for section, pages in PAGES.items()})
nav.run()
