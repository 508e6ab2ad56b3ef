"""costmodel.ui.report: CSV / JSON / HTML contents, escaping of user text, and the HTML in a real browser.

Reference for every number: ``costmodel.estimate`` called directly with the same model, hardware and
workload (not through the scenario/report code under test).
"""

from __future__ import annotations

import csv
import html
import io
import json
import os
import shutil
from pathlib import Path

import pytest

import costmodel
from costmodel.errors import InputError
from costmodel.ui.report import (export_csv, export_html, export_json, flatten, import_scenario, import_scenarios,
                              report_data)
from costmodel.scenario import validate_scenario

EVIL = '<script>alert("pwn")</script>'
NOTES = '<img src=x onerror=alert(1)> & "quotes"'
TRAIN = {"name": f"train {EVIL}", "model": "gpt2", "hardware": "a100-sxm-80gb",
         "workload": {"task": "train", "batch": 8, "seq": 1024, "precision": "amp-bf16", "optimizer": "adamw"},
         "plan": {"num_gpus": 8}, "notes": NOTES}
INFER = {"name": "serve 7B", "model": "llama-2-7b", "hardware": "h100-sxm-80gb",
         "workload": {"task": "infer", "batch": 8, "prompt": 2048, "generate": 256, "precision": "bf16"}}
ROOT = Path(__file__).resolve().parent.parent


def _direct(s: dict):
    """The reference: costmodel.estimate with the scenario's inputs."""
    return costmodel.estimate(s["model"], hardware=s["hardware"], **s["workload"])


def _json_roundtrip(obj):
    return json.loads(json.dumps(obj))


def test_csv_numbers_equal_estimate():
    text = export_csv([TRAIN, INFER])
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["name"] for r in rows] == [TRAIN["name"], INFER["name"]]
    assert "memory_bytes.peak" in rows[0] and "params.total" in rows[0] and "workload.batch" in rows[0]
    for s, row in zip((TRAIN, INFER), rows):
        est = _direct(s)
        d = est.to_dict()
        flat = flatten({k: d[k] for k in ("params", "flops", "memory_bytes", "time_s", "perf")})
        checked = 0
        for k, v in flat.items():
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                assert row[k] == str(v)
            else:
                assert float(row[k]) == v, k  # str(float) round-trips exactly
                checked += 1
        assert checked > 20
        assert int(row["params.total"]) == est.params.total
        assert float(row["memory_bytes.peak"]) == est.memory_bytes.peak
    # the infer row has no time_s.step; the train row has no time_s.prefill
    assert rows[1]["time_s.step"] == "" and rows[0]["time_s.prefill"] == ""


def test_json_export_has_scenario_and_results():
    one = json.loads(export_json(TRAIN))
    assert one["format"] == "costmodel-scenario" and one["format_version"] == 1
    assert one["scenario"] == validate_scenario(TRAIN)
    assert one["results"] == _json_roundtrip(_direct(TRAIN).to_dict())
    many = json.loads(export_json([TRAIN, INFER]))
    assert many["format"] == "costmodel-comparison"
    assert [it["results"]["memory_bytes"]["peak"] for it in many["scenarios"]] == \
        [_direct(TRAIN).memory_bytes.peak, _direct(INFER).memory_bytes.peak]


def test_import():
    assert import_scenario(export_json(TRAIN)) == validate_scenario(TRAIN)
    assert import_scenarios(export_json([TRAIN, INFER])) == [validate_scenario(TRAIN), validate_scenario(INFER)]
    assert import_scenario(json.dumps(INFER)) == validate_scenario(INFER)  # a bare scenario object
    # results in the file are not trusted: only the inputs are imported
    doc = json.loads(export_json(TRAIN))
    doc["results"]["memory_bytes"]["peak"] = 1
    assert import_scenario(json.dumps(doc)) == validate_scenario(TRAIN)
    cases = {
        "import": export_json([TRAIN, INFER]),  # two scenarios where one is expected
        "import.format": json.dumps({"format": "something-else"}),
        "workload.batch": json.dumps({**doc, "scenario": {**doc["scenario"], "workload": {"batch": -1}}}),
    }
    for field, text in cases.items():
        with pytest.raises(InputError) as e:
            import_scenario(text)
        assert e.value.field == field
    with pytest.raises(InputError) as e:
        import_scenario('{"format": "costmodel-scenario", "x": NaN}')
    assert e.value.field == "import.x" and "NaN" in str(e.value)  # the key of the bad number is named


def test_html_content_and_escaping():
    page = export_html([TRAIN, INFER])
    # user text is escaped wherever it appears, never raw
    assert EVIL not in page and "<img src=x" not in page
    assert html.escape(EVIL) in page and html.escape(NOTES) in page
    assert page.count("<script") == page.count("</script>")
    # numbers equal the direct estimate
    for s in (TRAIN, INFER):
        est = _direct(s)
        assert f"{est.params.total:,}" in page
        assert f"{est.memory_bytes.peak / 2**30:,.2f} GiB" in page
        assert f"{est.memory_bytes.device_total / 2**30:,.2f} GiB" in page
    data = report_data(page)
    assert [it["results"] for it in data["scenarios"]] == [_json_roundtrip(_direct(s).to_dict()) for s in (TRAIN, INFER)]
    assert data["scenarios"][0]["scenario"]["name"] == TRAIN["name"]  # JSON-escaped in the page, exact here
    # assumptions and formulas (names from docs/formulas.md, with their text)
    assert html.escape(_direct(TRAIN).assumptions["optimizer"]) in page
    for section in ("Memory: training", "Memory: inference", "Parameters", "FLOPs"):
        assert f">{section}</a>" in page
    kv_line = next(line for line in (ROOT / "docs" / "formulas.md").read_text().splitlines() if "KV cache" in line)
    assert html.escape(kv_line) in page
    # self-contained: plotly.js inline, no external scripts or styles
    assert "<script src=" not in page and "<link" not in page and 'src="http' not in page
    assert page.count('class="plotly-graph-div"') == 3


CHROMIUM = "/usr/bin/chromium"
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def test_html_report_in_headless_chromium(tmp_path):
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install -y chromium)")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    # the app imports streamlit, which sets plotly's global template; the report must not depend on it
    import streamlit.elements.plotly_chart  # noqa: F401

    report = tmp_path / "report.html"
    report.write_text(export_html([TRAIN, INFER]), encoding="utf-8")
    shot = tmp_path / "report.png"
    errors, dialogs, requests = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1600})
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(report.as_uri())
            page.wait_for_selector("#fig-time .bars path", timeout=30_000)
            # on a loaded machine plotly may still be drawing the later figures: wait for all of them
            page.wait_for_function("() => { const f = [...document.querySelectorAll('.js-plotly-plot')];"
                                   " return f.length >= 3 && f.every(e => e.querySelectorAll('.bars .point').length > 0); }",
                                   timeout=30_000)
            page.wait_for_timeout(300)
            # every figure drew its bars: one point per (scenario, category)
            points = page.eval_on_selector_all(".js-plotly-plot", "els => els.map(e => e.querySelectorAll('.bars .point').length)")
            assert points[0] == 2 * 11 and points[1] == 2 * 4 and points[2] >= 2, points
            assert page.title() == f"costmodel comparison: {TRAIN['name']}, {INFER['name']}"
            assert EVIL in page.inner_text("h2#scenario-0")  # shown as text ...
            assert page.locator("script", has_text="pwn").count() == 0  # ... never as a script
            # plotly shows the name literally in its legend (escaped going in, decoded for display)
            assert page.locator("#fig-memory .legendtext").first.text_content() == TRAIN["name"]
            page.screenshot(path=str(shot))
            fig_shot = tmp_path / "memory.png"
            page.locator("#fig-memory").screenshot(path=str(fig_shot))
        finally:
            browser.close()
    assert errors == [] and dialogs == []
    assert all(u.startswith(("file:", "data:", "about:")) for u in requests), requests  # works offline
    # the memory figure really shows bars in the package palette's first two colours (#4C78A8, #F58518)
    img = Image.open(fig_shot).convert("RGB")
    colours = img.getcolors(maxcolors=1 << 20)

    def near(rgb):  # anti-aliasing and colour management move a channel by a few units
        return sum(n for n, c in colours if all(abs(a - b) <= 6 for a, b in zip(c, rgb)))

    assert near((0x4C, 0x78, 0xA8)) > 200 and near((0xF5, 0x85, 0x18)) > 200
    assert Image.open(shot).size == (1280, 1600)
    if os.environ.get("COSTMODEL_UPDATE_DOCS_IMAGES"):
        dest = ROOT / "docs" / "images" / "report.png"
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, dest)


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": "1,2", "e": None}
