"""The real app in a real browser: ``streamlit run costmodel_dashboard/app.py`` on loopback in a subprocess, headless Chromium driven
by Playwright. Visits every page, changes a widget, checks that a number updates (to what the package computes),
and saves a screenshot per page (copied to docs/images/ when COSTMODEL_UPDATE_DOCS_IMAGES=1, so a normal test
run leaves the checkout clean). Skipped only when /usr/bin/chromium is absent (``.ci/run`` installs it with apt)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
IMAGES = ROOT / "docs" / "images"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} not installed (apt-get install chromium)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    port = _free_port()
    env = {**os.environ, "COSTMODEL_DB": str(tmp / "scenarios.db"),
           "COSTMODEL_PROFILER_DIR": str(tmp / "profiler")}
    # two saved scenarios for the Scenarios page
    sys.path.insert(0, str(ROOT))
    from costmodel.storage import Store

    store = Store(env["COSTMODEL_DB"])
    store.save_scenario("GPT-2 on an A100", {"model": "gpt2", "hardware": "a100-sxm-80gb",
                                             "workload": {"batch": 8, "seq": 1024}})
    store.save_scenario("Llama-2-7B LoRA <b>r=16</b>", {"model": "llama-2-7b", "hardware": "a100-sxm-80gb",
                                                        "workload": {"batch": 1, "seq": 2048, "lora_rank": 16,
                                                                     "precision": "bf16"}})
    log = open(tmp / "streamlit.log", "w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "costmodel_dashboard" / "app.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            log.seek(0)
            proc.kill()
            pytest.fail(f"streamlit did not start:\n{log.read()}")
        time.sleep(0.3)
    yield {"url": url, "tmp": tmp, "log": log, "db": env["COSTMODEL_DB"]}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                              args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture()
def page(browser, server, request):
    ctx = browser.new_context(viewport={"width": 1440, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(45_000)
    yield pg
    if request.node.rep_call.failed if hasattr(request.node, "rep_call") else False:
        failed = Path(server["tmp"]) / f"failed-{request.node.name}.png"
        pg.screenshot(path=str(failed), full_page=True)
        server["log"].seek(0)
        print(f"screenshot of the failure: {failed}\nserver log:\n{server['log'].read()[-5000:]}")
    ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: D103 - lets the fixture see a failure
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


def _settle(page, timeout_s: float = 45.0) -> None:
    """Wait until the app is idle: widgets loaded, no rerun running."""
    page.wait_for_selector('[data-testid="stApp"]')
    page.wait_for_selector('[data-testid="stSidebarNav"], [data-testid="stSidebar"]', state="attached")  # phones: collapsed
    deadline = time.time() + timeout_s
    idle_since = None
    while time.time() < deadline:
        running = page.locator('[data-testid="stStatusWidget"]').filter(has_text="Running").count()
        skeleton = page.locator('[data-testid="stSkeleton"]').count()
        if not running and not skeleton:
            idle_since = idle_since or time.time()
            if time.time() - idle_since > 0.8:
                return
        else:
            idle_since = None
        time.sleep(0.1)


def metric(page, label: str) -> str:
    loc = page.locator('[data-testid="stMetric"]').filter(
        has=page.locator('[data-testid="stMetricLabel"]', has_text=label)).first
    return loc.locator('[data-testid="stMetricValue"]').inner_text().strip()


def wait_metric_change(page, label: str, old: str, timeout_s: float = 30.0) -> str:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            v = metric(page, label)
        except Exception:  # noqa: BLE001 - element replaced during a rerun
            v = old
        if v != old:
            _settle(page)
            return metric(page, label)
        time.sleep(0.2)
    raise AssertionError(f"metric {label!r} stayed {old!r}")


def set_number(page, label: str, value) -> None:
    box = page.get_by_label(label, exact=True).first
    box.fill(str(value))
    box.press("Enter")


def choose(page, label: str, option: str) -> None:
    box = page.get_by_role("combobox", name=label, exact=True).first
    box.scroll_into_view_if_needed()
    box.click()
    box.fill(option)  # filters the list to the option
    page.get_by_role("option", name=option, exact=False).first.click()


def submit_and_wait(page, button: str, success: str, timeout_s: float = 60.0) -> None:
    """Click a form's submit button and wait for its success message; an error shown instead fails with its text.
    If neither appears within half the time the click is repeated once, as a person would: on a loaded 2-core CI
    machine one click landing while the page reran was once lost (CI, 2026-12-01)."""
    alerts = page.locator('[data-testid="stAlertContentError"], [data-testid="stException"]')
    for attempt in range(2):
        page.get_by_role("button", name=button).click()
        deadline = time.time() + timeout_s / 2
        while time.time() < deadline:
            if page.get_by_text(success).count():
                return
            shown = alerts.all_inner_texts()
            if shown:
                raise AssertionError(f"{button!r} showed {shown!r} instead of {success!r}")
            time.sleep(0.2)
        _settle(page)
    raise AssertionError(f"{button!r}: no {success!r} and no error after two clicks")


def shot(page, server, name: str, scroll_to=None, docs: bool = True) -> None:
    """A screenshot of the viewport (after scrolling ``scroll_to``, a locator, into view); ``docs=False``: kept out
    of docs/images (e.g. Chinese text where the test machine's Chromium has no CJK font)."""
    if scroll_to is not None:
        scroll_to.scroll_into_view_if_needed()
        page.evaluate("() => window.scrollBy(0, 0)")
        time.sleep(0.8)
    out = Path(server["tmp"]) / f"{name}.png"
    page.screenshot(path=str(out), full_page=False)
    if docs and os.environ.get("COSTMODEL_UPDATE_DOCS_IMAGES") == "1":
        IMAGES.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, IMAGES / f"{name}.png")


def goto(page, server, path: str) -> None:
    page.goto(f"{server['url']}/{path}")
    _settle(page)


# ---------------------------------------------------------------------------------------------------

def test_deep_link_as_first_visit_gets_the_router(page, server):
    # runs first on a fresh server: a shared link must open the page inside app.py's st.navigation (wide layout,
    # the titled navigation), not as a bare old-style page from a pages/ folder (regression: it did)
    goto(page, server, "estimate?preset=llama-2-7b")
    nav = page.locator('[data-testid="stSidebarNav"]')
    nav.get_by_text("Start here").wait_for()
    assert nav.get_by_text("Plan serving").count() == 1
    assert nav.get_by_text("widgets", exact=True).count() == 0 and nav.get_by_text("registry", exact=True).count() == 0
    assert metric(page, "Parameters") == "6,738,415,616"  # wide layout: the number is not cut off


def test_home_seed_opens_estimate(page, server):
    goto(page, server, "")
    page.get_by_text("Open a scenario").wait_for()
    shot(page, server, "home")
    page.get_by_role("link", name="Open: The textbook 28x28 CNN on CPU").click()
    _settle(page)
    page.wait_for_url("**/estimate?**")
    assert metric(page, "Parameters") == "1,199,882"  # PyTorch MNIST example Net, hand count in its preset
    assert "preset=simple-cnn-28" in page.url and "hw=cpu-generic" in page.url


def test_estimate_batch_change_updates_numbers(page, server):
    import costmodel
    from costmodel.ui import format as fmt

    goto(page, server, "estimate?preset=llama-2-7b&hw=a100-sxm-80gb&seq=2048")
    old = metric(page, "Step time")
    assert metric(page, "Parameters") == "6,738,415,616"
    set_number(page, "Batch (sequences per device per step)", 2)
    new = wait_metric_change(page, "Step time", old)
    est = costmodel.estimate("llama-2-7b", hardware="a100-sxm-80gb", batch=2, seq=2048)
    assert new == fmt.fmt_seconds(est.time_s.step_s)
    assert metric(page, "Peak memory") == fmt.fmt_bytes(est.memory_bytes.peak)
    assert "batch=2" in page.url  # the link reproduces the view
    page.get_by_text("Formulas").first.scroll_into_view_if_needed()
    page.mouse.wheel(0, -10_000)
    shot(page, server, "estimate")


def test_compare_sweep_and_mode(page, server):
    goto(page, server, "compare?preset=llama-2-7b&hw=a100-sxm-80gb&seq=2048&mode=settings&group=fine-tuning")
    page.locator(".js-plotly-plot").first.wait_for()
    assert "fine-tuning" in page.url
    shot(page, server, "compare")
    choose(page, "Vary", "seq")
    page.wait_for_function("() => document.body.innerText.includes('Memory and time vs seq')", timeout=60_000)
    _settle(page)
    assert "sweep=seq" in page.url


def test_plan_training_layout_change(page, server):
    goto(page, server, "plan-training?preset=gpt2&hw=a100-sxm-80gb&tokens_b=10&dp=8")
    assert metric(page, "Devices") == "8"
    old = metric(page, "Wall clock")
    set_number(page, "Data parallel", 16)
    wait_metric_change(page, "Devices", "8")
    assert metric(page, "Devices") == "16" and metric(page, "Wall clock") != old
    shot(page, server, "plan_training")


def test_plan_serving_prompt_change(page, server):
    from costmodel import plans
    from costmodel.ui import format as fmt

    goto(page, server, "plan-serving?preset=llama-3-8b&hw=l4-24gb&also=h100-sxm-80gb")
    old = metric(page, "Time to first token (batch 1)")
    set_number(page, "Prompt tokens", 2048)
    new = wait_metric_change(page, "Time to first token (batch 1)", old)
    plan = plans.plan_serving("llama-3-8b", "l4-24gb", prompt=2048, generate=256)
    assert new == fmt.fmt_seconds(plan.points[0].ttft_s)
    shot(page, server, "plan_serving")


def test_scenarios_select_and_escape(page, server):
    goto(page, server, "scenarios")
    first = metric(page, "Parameters")
    choose(page, "Scenario", "Llama-2-7B LoRA")
    new = wait_metric_change(page, "Parameters", first)
    assert new == f"{6738415616 + 32 * 2 * 16 * (4096 + 4096):,}"  # Llama-2-7B + LoRA r=16 on q_proj, v_proj
    # the name is shown as text: no <b> element was created from it
    assert page.locator("b", has_text="r=16").count() == 0
    shot(page, server, "scenarios")


def test_learn_flops_lesson(page, server):
    goto(page, server, "learn?topic=flops&model=gpt2")
    old = metric(page, "Step FLOPs (ledger)")
    set_number(page, "Batch", 16)
    wait_metric_change(page, "Step FLOPs (ledger)", old)
    page.locator(".katex").first.wait_for()
    shot(page, server, "learn")


def test_profile_runs_a_tiny_model(page, server):
    goto(page, server, "profile?preset=mlp-mnist&batch=8&steps=1&warmup=0&threads=1")
    run = page.get_by_role("button", name="Run", exact=True)
    run.wait_for(timeout=90_000)
    run.click()
    page.get_by_text("measured in").wait_for(timeout=120_000)
    _settle(page)
    page.locator(".js-plotly-plot").first.wait_for()
    assert page.get_by_text("Run ").first.is_visible()
    shot(page, server, "profile")
    # issue 5: the calibration is not used by default, and one run (one measured time) fits nothing
    assert not page.get_by_label("Predict with this device's latest calibration", exact=False).first.is_checked()
    page.get_by_role("button", name="Fit calibration from 1 stored run(s)").click()
    page.get_by_text("1 measured time cannot determine any field").first.wait_for()


# ---- shared links cannot inject links, images or requests ------------------------------------------

INJECTED = "[Session expired - log in again](http://evil.example/login) ![b](http://127.0.0.1:9/beacon.png)"


@pytest.mark.parametrize("path", [
    "plan-serving?preset=gpt2&also=" + INJECTED,
    "estimate?preset=" + INJECTED + "&precision=" + INJECTED,
    "estimate?source=paste&config=" + '{"model_type": "gpt2", "n_layer": 2, "_name_or_path": "%s"}' % INJECTED.replace(
        '"', '\\"') + " http://evil.example/bare www.evil.example",
], ids=["plan-serving-also", "estimate-preset", "estimate-config-name"])
def test_injection_links_render_as_text_and_fetch_nothing(page, server, path):
    """The issue's links, opened in Chromium with every request intercepted: nothing is fetched from anywhere but
    the app's own origin (not evil.example, not the beacon on 127.0.0.1:9), and the DOM holds no <a href> or
    <img> made from the link's text, which is shown as text instead."""
    from urllib.parse import quote

    origin = server["url"]
    elsewhere: list[str] = []

    def gate(route):
        url = route.request.url
        if url.startswith(origin) or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            elsewhere.append(url)
            route.abort()

    page.route("**/*", gate)
    page.goto(f"{origin}/{quote(path, safe='/?=&')}")
    _settle(page)
    page.get_by_text("Session expired").first.wait_for(timeout=60_000)  # named, as text
    page.wait_for_timeout(1500)  # time for any image the page would load
    assert elsewhere == [], elsewhere
    bad = page.evaluate("""() => [...document.querySelectorAll('a[href], img[src]')]
        .map(e => e.getAttribute('href') || e.getAttribute('src'))
        .filter(u => /evil|beacon|127\\.0\\.0\\.1:9/.test(u))""")
    assert bad == [], bad
    assert page.locator("img[src*='beacon']").count() == 0 and page.locator("a[href*='evil']").count() == 0


# ---- the issue "a dashboard a lecturer and a planning meeting can trust on screen", problem by problem ----------
# each at a laptop's 1280x800 (and the pages people open on a phone at 390x844), with a screenshot in docs/images

@pytest.fixture()
def laptop(browser, server):
    ctx = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


@pytest.fixture()
def phone(browser, server):
    ctx = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    ctx.close()


def shown_select(page, label: str) -> str:
    """The value a selectbox shows (its combobox input's value: "id — name" for presets and devices)."""
    return page.get_by_role("combobox", name=label, exact=True).first.input_value().strip()


def shown_number(page, label: str) -> str:
    return page.get_by_label(label, exact=True).first.input_value()


def click_option(page, text: str) -> None:
    page.get_by_text(text, exact=True).first.click()
    time.sleep(0.4)
    _settle(page)


def errors_shown(page) -> list[str]:
    return [e.inner_text() for e in page.locator('[data-testid="stAlertContentError"]').all()]


def test_issue_1_sidebar_never_drifts_from_the_numbers(laptop, server):
    page = laptop
    goto(page, server, "estimate?preset=llama-3-8b&hw=a100-sxm-80gb&batch=4")
    click_option(page, "Upload / paste config.json")
    click_option(page, "Preset")
    assert shown_select(page, "Preset").startswith("llama-3-8b")
    assert shown_select(page, "Hardware").startswith("a100-sxm-80gb")
    assert shown_number(page, "Batch (sequences per device per step)") == "4"
    assert shown_number(page, "Sequence length (tokens)") == "1024"
    assert shown_select(page, "Precision") == "amp-bf16" and shown_select(page, "Optimizer") == "adamw"
    assert metric(page, "Parameters") == "8,030,261,248"
    old = metric(page, "Step time")
    click_option(page, "Gradient checkpointing")  # ticking a box applies what is shown: no "batch: must be ..."
    wait_metric_change(page, "Step time", old)  # the recompute (the peak is the optimizer step's, unchanged)
    assert not errors_shown(page) and "ckpt=1" in page.url and "batch=4" in page.url
    shot(page, server, "issue1_sidebar_kept")


def test_issue_2_inference_on_an_l4_fits_in_bf16(laptop, server):
    page = laptop
    goto(page, server, "estimate?preset=llama-3-8b&hw=l4-24gb")
    click_option(page, "Inference")
    page.wait_for_function("() => document.body.innerText.includes('Prefill time')")
    _settle(page)
    assert shown_select(page, "Precision") == "bf16"
    assert metric(page, "Fits") == "yes"
    shot(page, server, "issue2_inference_bf16")


def test_issue_3_gpt2_context_limit(laptop, server):
    page = laptop
    goto(page, server, "plan-training?preset=gpt2")
    assert shown_number(page, "Sequence length") == "1024"
    page.get_by_text("gpt2: at most 1,024 positions").first.wait_for()
    goto(page, server, "compare?preset=llama-3-8b&sweep=seq&sweep_from=1024&sweep_to=32768&gpus=h100-sxm-80gb")
    page.get_by_text("seq stops at 8,192").first.wait_for()


def test_issue_4_a_saved_plan_exports_its_money(laptop, server):
    page = laptop
    goto(page, server, "plan-training?preset=gpt2&hw=a100-sxm-80gb&tokens_b=1&dp=8&ckpt_kept=2")
    page.get_by_text("Save this plan as a named scenario").click()
    box = page.get_by_label("Scenario name")
    box.fill("GPT-2 run, 8 A100s")
    box.press("Tab")  # commit the name as a person leaving the box does, before the click
    submit_and_wait(page, "Save plan", "Saved.")
    goto(page, server, "scenarios")
    choose(page, "Scenario", "GPT-2 run, 8 A100s")
    _settle(page)
    assert metric(page, "Carbon").endswith("CO2e") and metric(page, "Cost").startswith("$")
    with page.expect_download() as dl:
        page.get_by_role("button", name="Results (CSV)").click()
    text = Path(dl.value.path()).read_text()
    head = text.splitlines()[0]
    for col in ("plan.total_usd", "plan.energy_kwh", "plan.carbon_kg_co2e", "plan.storage_usd",
                "assumption.usd_per_gpu_hour", "assumption.grid_g_co2e_per_kwh", "cost_usd.per_step"):
        assert col in head, col
    shot(page, server, "issue4_plan_scenario")


def test_issue_6_and_7_charts_and_numbers_for_people(laptop, server):
    page = laptop
    goto(page, server, "estimate?preset=course-cnn-28&hw=cpu-generic&batch=32&precision=fp32&optimizer=adam")
    assert metric(page, "Peak memory").endswith("MiB")  # not "0.00 GiB"
    page.get_by_role("tab", name="Time").click()
    page.locator(".js-plotly-plot").nth(1).wait_for()
    names = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot'))"
                          ".map(d => (d.data || []).map(t => t.name))")
    assert any("step" in (n or "") for ns in names for n in ns)  # the roofline shows the step as a point
    goto(page, server, "estimate?preset=llama-3-8b&hw=a100-sxm-80gb")
    value = page.locator('[data-testid="stMetric"]').filter(has_text="Parameters").first.locator(
        '[data-testid="stMetricValue"]')
    assert value.inner_text().strip() == "8,030,261,248"
    assert page.evaluate("(el) => el.scrollWidth <= el.clientWidth + 1", value.element_handle())  # not cut


def test_issue_6_pareto_labels_only_the_front(laptop, server):
    page = laptop
    goto(page, server, "plan-training?preset=llama-2-7b&hw=h100-sxm-80gb&seq=2048&tokens_b=20&max_devices=64"
                       "&global_batch=256&search=1&scaling=0")
    page.get_by_text("layouts fit in memory").first.wait_for(timeout=120_000)
    _settle(page)
    traces = page.evaluate("() => Array.from(document.querySelectorAll('.js-plotly-plot')).pop().data"
                           ".map(t => ({name: t.name, mode: t.mode || '', n: (t.x || []).length}))")
    labelled = [t for t in traces if "text" in t["mode"]]
    assert len(labelled) == 1 and labelled[0]["name"] == "Pareto front" and labelled[0]["n"] < 30
    shot(page, server, "issue6_pareto", page.locator(".js-plotly-plot").last)


def test_issue_8_units_and_formulas_per_family(laptop, server):
    page = laptop
    goto(page, server, "estimate?preset=resnet-50&hw=a100-sxm-80gb&batch=64&image_size=224")
    page.get_by_text("Cost per 1,000 images").first.wait_for()
    assert page.get_by_text("Cost per million tokens").count() == 0
    goto(page, server, "estimate?preset=lstm-2x1024&hw=h100-sxm-80gb&batch=4&seq=256&precision=fp32")
    assert metric(page, "Bound") == "latency"
    page.get_by_text("FLOPs (2 per multiply-add)").first.click()
    page.get_by_text("G gates (LSTM 4, GRU 3)").first.wait_for()


def test_issue_9_an_invalid_layout_shows_the_valid_ones(laptop, server):
    page = laptop
    goto(page, server, "plan-training?preset=gpt2&hw=a100-sxm-80gb&tokens_b=1&dp=8&tp=5")
    page.get_by_text("Layouts this model can take").wait_for()
    assert any("layout.tp" in e for e in errors_shown(page))
    page.get_by_text("Layout search").first.wait_for()  # the rest of the page is still there
    shot(page, server, "issue9_valid_layouts", page.get_by_text("Layouts this model can take").first)
    page.get_by_role("button", name="Use").first.click()
    page.wait_for_function("() => !document.body.innerText.includes('Layouts this model can take')")
    _settle(page)
    assert not errors_shown(page) and metric(page, "Devices")


def test_teaching_builder_and_chinese(laptop, phone, server):
    page = laptop
    goto(page, server, "estimate?source=layers&hw=cpu-generic&batch=32&precision=fp32&optimizer=adam")
    # the table is drawn on a canvas; its cells are in the DOM for screen readers
    page.get_by_text("(28 - 3) / 1 + 1 = 26").first.wait_for(state="attached")
    page.get_by_text("26 x 26 x 32").first.wait_for(state="attached")
    assert metric(page, "Parameters") == "693,962"
    shot(page, server, "builder")
    goto(page, server, "learn?lang=zh&topic=course")
    page.get_by_text("课程中的 CNN：形状、参数量与 FLOPs").first.wait_for()
    shot(page, server, "learn_zh", docs=False)
    goto(phone, server, "estimate?preset=llama-3-8b&hw=l4-24gb&task=infer")
    assert metric(phone, "Parameters") == "8,030,261,248"
    chart = phone.locator(".js-plotly-plot").first
    chart.wait_for()
    assert phone.locator(".modebar.vertical, .modebar-container .vertical").count() >= 0  # toolbar beside, not over
    shot(phone, server, "estimate_phone", chart)


def test_issue_10_quiet_server_log(server):
    server["log"].seek(0)
    text = server["log"].read()
    assert "Inotify" not in text and "Traceback" not in text
