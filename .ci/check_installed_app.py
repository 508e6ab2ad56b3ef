"""AppTest of the installed dashboard (CI): the app file inside site-packages, no source tree."""
import sys
from pathlib import Path

import costmodel_dashboard
from streamlit.testing.v1 import AppTest

app = Path(costmodel_dashboard.__file__).parent / "app.py"
assert "site-packages" in str(app), app
at = AppTest.from_file(str(app), default_timeout=120)
at.run()
assert not at.exception, at.exception
for page in ("estimate", "plan_serving", "profile"):
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, (page, at.exception)
    if page == "estimate":
        labels = {m.label: m.value for m in at.metric}
        assert labels, "no metrics on the Estimate page"
    if page == "profile":
        assert any("costmodel[profile]" in e.value for e in at.error), [e.value for e in at.error]
print("installed app: Start, Estimate, Plan serving, Profile (missing extra named) OK")
