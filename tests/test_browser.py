"""The real app in a real browser: ``streamlit run app.py`` on loopback in a subprocess, headless Chromium driven
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
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COSTMODEL_DB": str(tmp / "scenarios.db"),
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
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.address", "127.0.0.1",
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
    page.wait_for_selector('[data-testid="stSidebarNav"], [data-testid="stSidebar"]')
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


def shot(page, server, name: str) -> None:
    out = Path(server["tmp"]) / f"{name}.png"
    page.screenshot(path=str(out), full_page=False)
    if os.environ.get("COSTMODEL_UPDATE_DOCS_IMAGES") == "1":
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
    set_number(page, "Batch (samples per device per step)", 2)
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
