"""One state record per page: what the widgets show is what the numbers use.

Three layers: the pure rules (``costmodel.ui.page_state.derive`` / ``effective_defaults``); the exact sequences
the issue reported, walked under Streamlit's AppTest; and random walks (property-style): pick a drawn widget at
random, give it a random value it offers, run, and check that (1) no exception escaped, (2) every drawn widget
shows the value of the record the page computed from (``_<page>.used``), and (3) the numbers on the page are the
package's numbers for that record, or the page shows the package's own error for it.

``COSTMODEL_WALK_STEPS`` (default 100) sets the steps per page and seed, ``COSTMODEL_WALK_SEEDS`` (default "1,2")
the seeds: 200 widget changes per page in CI (about 35 s on 2 cores); runs with 200 steps x seeds 1-6 found and
now guard the bugs they found (a maximum clamped after its box was drawn, a best price of None)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from streamlit.testing.v1 import AppTest  # noqa: E402

import costmodel  # noqa: E402
from costmodel.errors import InputError
from costmodel.ui.safe_text import md  # noqa: E402
from costmodel.models import load_model  # noqa: E402
from costmodel.ui import format as fmt, page_state  # noqa: E402
from costmodel.ui.builder import TEMPLATES  # noqa: E402
from costmodel.ui.i18n import t  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "costmodel_dashboard" / "app.py")
STEPS = int(os.environ.get("COSTMODEL_WALK_STEPS", "100"))
SEEDS = [int(x) for x in os.environ.get("COSTMODEL_WALK_SEEDS", "1,2").split(",")]


# ---- the rules ----------------------------------------------------------------------------------------------

def test_inference_takes_bf16_weights_and_training_its_recipe_back():
    d = page_state.ESTIMATE_STATE
    prev = dict(d)
    state = {**d, "task": "infer"}
    notes = page_state.derive(state, prev, {"task"}, d, load_model("llama-3-8b"))
    assert state["precision"] == "bf16"  # amp-bf16 keeps fp32 weights: a training recipe
    assert notes == ["precision: amp-bf16 -> bf16, the default for inference (amp-bf16 keeps fp32 weights: a "
                     "training recipe)"]
    back = {**state, "task": "train"}
    page_state.derive(back, state, {"task"}, d, load_model("llama-3-8b"))
    assert back["precision"] == "amp-bf16"  # bf16 was inference's default: training's default follows


def test_sequence_follows_the_model_and_a_set_value_is_brought_within_it():
    d = page_state.ESTIMATE_STATE
    # an untouched default follows the model (1,024 is both Estimate's default and GPT-2's limit)
    state = {**d, "preset": "llama-3-8b", "seq": 4096}
    notes = page_state.derive(state, {**d, "preset": "llama-3-8b", "seq": 4096}, {"preset"}, d, load_model("gpt2"),
                              load_model("llama-3-8b"))
    assert state["seq"] == 1024 and "seq: 4,096 -> 1,024 (gpt2 takes at most 1,024 positions)" in notes
    # a fixed-size CNN takes its input, and the default comes back for a net that takes any size
    state = {**d, "preset": "course-cnn-28"}
    page_state.derive(state, dict(d), {"preset"}, d, load_model("course-cnn-28"), load_model("gpt2"))
    assert state["image_size"] == 28
    after = {**state, "preset": "resnet-50"}
    page_state.derive(after, state, {"preset"}, d, load_model("resnet-50"), load_model("course-cnn-28"))
    assert after["image_size"] == 224


def test_effective_defaults_keep_links_short():
    d = page_state.ESTIMATE_STATE
    state = {**d, "preset": "llama-3-8b", "task": "infer", "precision": "bf16"}
    eff = page_state.effective_defaults(state, d, load_model("llama-3-8b"))
    assert page_state.state_to_query(state, eff) == {"preset": "llama-3-8b", "task": "infer"}


# ---- AppTest helpers ----------------------------------------------------------------------------------------

def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.run()
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{page}.py")
    at.run()
    assert not at.exception, at.exception
    return at


def widget(at: AppTest, key: str, kind: str):
    return getattr(at, kind)(key=key)


def shown(at: AppTest, page: str) -> dict:
    """Every drawn widget's value as the page shows it (multiselects comma-joined, as the record keeps them)."""
    out = {}
    for field, info in at.session_state[f"_{page}.widgets"].items():
        v = widget(at, f"{page}.{field}", info["kind"]).value
        out[field] = ",".join(v) if info["kind"] == "multiselect" else v
    return out


def metrics(at: AppTest) -> dict:
    return {m.label: m.value for m in at.metric}


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def assert_shown_is_used(at: AppTest, page: str) -> dict:
    assert not at.exception, at.exception
    used = at.session_state[f"_{page}.used"]
    for field, value in shown(at, page).items():
        assert value == used[field], f"{field}: the widget shows {value!r}, the numbers use {used[field]!r}"
    return used


def check_estimate_numbers(at: AppTest, used: dict) -> None:
    """The page's numbers are the package's for the record, or the page shows the package's error."""
    try:
        est = page_state.estimate_from_state(used)
        if used.get("task") == "train" and used.get("method") in ("distill", "qat"):  # the training method, too
            from costmodel.techniques import distillation_estimate, qat_estimate

            hw, w = page_state.hardware_from_state(used), page_state.workload_from_state(used)
            model = page_state.model_from_state(used)
            if used["method"] == "distill":
                distillation_estimate(used["teacher"], model, hw, w)
            else:
                qat_estimate(model, hw, w, bits=used["qat_bits"])
    except InputError as err:
        assert any(f"**{md(err.field, 200)}**" in e for e in errors(at)), (err, errors(at))  # shown as text
        return
    assert not errors(at), errors(at)
    m = metrics(at)
    lang = used.get("lang", "en")  # the walk may switch the page to Chinese: labels from the same catalog
    assert m[t("metric.params", lang)] == fmt.fmt_count(est.params.total)
    key = {"step": "metric.step_time", "request": "metric.prefill", "forward": "metric.forward_time"}[est.unit]
    shown_t = {"step": est.time_s.per_unit_s, "request": getattr(est.time_s, "prefill_s", 0),
               "forward": est.time_s.per_unit_s}[est.unit]
    assert m[t(key, lang)] == fmt.fmt_seconds(shown_t)
    assert m[t("metric.peak", lang)] == fmt.fmt_bytes(est.memory_bytes.peak)


# ---- the sequences the issue reported -----------------------------------------------------------------------

def test_issue_1_upload_then_preset_keeps_the_sidebar_and_the_numbers():
    at = open_page("estimate", {"preset": "llama-3-8b", "hw": "a100-sxm-80gb", "batch": "4"})
    at.radio(key="estimate.source").set_value("paste").run()
    assert errors(at)  # nothing pasted yet: named, not a traceback
    at.radio(key="estimate.source").set_value("preset").run()
    used = assert_shown_is_used(at, "estimate")
    assert (used["preset"], used["hw"], used["batch"], used["seq"], used["precision"], used["optimizer"]) == \
        ("llama-3-8b", "a100-sxm-80gb", 4, 1024, "amp-bf16", "adamw")
    assert metrics(at)["Parameters"] == "8,030,261,248"
    at.checkbox(key="estimate.ckpt").check().run()  # ticking a box applies what is shown: no "batch: must be"
    used = assert_shown_is_used(at, "estimate")
    assert used["batch"] == 4 and used["ckpt"] is True and not errors(at)
    check_estimate_numbers(at, used)


def test_issue_1_build_then_preset_keeps_the_preset():
    at = open_page("plan_training", {"preset": "llama-2-7b", "hw": "a100-sxm-80gb", "seq": "4096"})
    at.radio(key="plan_training.source").set_value("build").run()
    at.radio(key="plan_training.source").set_value("preset").run()
    used = assert_shown_is_used(at, "plan_training")
    assert used["preset"] == "llama-2-7b" and used["seq"] == 4096


def test_issue_1_resnet_inference_keeps_the_hidden_sequence_and_optimizer():
    at = open_page("estimate", {"preset": "llama-2-7b", "seq": "4096", "optimizer": "sgd-momentum"})
    at.selectbox(key="estimate.preset").set_value("resnet-50").run()
    at.radio(key="estimate.task").set_value("infer").run()
    at.radio(key="estimate.task").set_value("train").run()
    at.selectbox(key="estimate.preset").set_value("llama-2-7b").run()
    used = assert_shown_is_used(at, "estimate")
    assert used["seq"] == 4096 and used["optimizer"] == "sgd-momentum"
    check_estimate_numbers(at, used)


def test_issue_1_learn_topics_in_order_never_reach_seq_0():
    at = open_page("learn")
    for topic in ("flops", "adam", "activations", "kv", "parallel", "quantization", "pruning", "distillation",
                  "lora"):
        at.selectbox(key="learn.topic").set_value(topic).run()
        assert not at.exception and not errors(at), (topic, errors(at))
        used = assert_shown_is_used(at, "learn")
        assert used["seq"] >= 1 and used["batch"] >= 1


def test_issue_2_inference_on_an_l4_takes_bf16_weights():
    at = open_page("estimate", {"preset": "llama-3-8b", "hw": "l4-24gb"})
    at.radio(key="estimate.task").set_value("infer").run()
    used = assert_shown_is_used(at, "estimate")
    assert used["precision"] == "bf16" and at.selectbox(key="estimate.precision").value == "bf16"
    assert metrics(at)["Fits"] == "yes"
    check_estimate_numbers(at, used)


def test_issue_3_gpt2_is_planned_within_its_1024_positions():
    at = open_page("plan_training", {"preset": "gpt2"})
    used = assert_shown_is_used(at, "plan_training")
    assert used["seq"] == 1024 and not errors(at)
    at = open_page("estimate", {"preset": "gpt2", "seq": "2048"})  # an old link: named, brought within
    assert at.number_input(key="estimate.seq").value == 1024
    assert any("seq" in w.value for w in [*at.warning, *at.info])


# ---- random walks -------------------------------------------------------------------------------------------

CONFIGS = [
    json.dumps({"model_type": "gpt2", "n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000, "n_positions": 256}),
    json.dumps({"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
                "max_position_embeddings": 2048}),
    json.dumps({"family": "sequential", "name": "tiny", "input": {"shape": [28, 28, 1]},
                "layers": [{"type": "conv2d", "filters": 4, "kernel": 3, "activation": "relu"}, {"type": "flatten"},
                           {"type": "dense", "units": 10, "activation": "softmax"}]}),
    '{"model_type": "gpt2", "n_layer": ',
]
NICE_INTS = (0, 1, 2, 3, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 32768)


def pick(rng: random.Random, field: str, info: dict, current):
    kind = info["kind"]
    if kind in ("selectbox", "radio"):
        return rng.choice(info["options"])
    if kind == "checkbox":
        return not current
    if kind == "multiselect":
        opts = info["options"]
        return rng.sample(opts, k=rng.randint(0, min(3, len(opts))))
    if kind == "text_area":
        if field == "config":
            return rng.choice(CONFIGS)
        if field == "net_layers":
            return rng.choice([t[1] for t in TEMPLATES.values()] + ["Dense 10 softmax", "Conv2D 8 3 relu\nFlatten\n"
                                                                     "Dense 10 softmax", "Pool3D 2"])
        return rng.choice(["", '{"n_layer": 2}', "{oops"])
    if kind == "text_input":
        return rng.choice(["28x28x1", "224x224x3", "32x32x3", "tokens:256", "tokens", "features:784", "28x28"])
    lo, hi = info.get("min"), info.get("max")
    if isinstance(current, float):
        cands = [x for x in (0.0, 0.25, 0.5, 1.0, 2.0, 10.0, 300.0) if (lo is None or x >= lo) and (hi is None or x <= hi)]
        return rng.choice(cands or [current])
    step = info.get("step") or 1
    cands = [x for x in NICE_INTS if (lo is None or x >= lo) and (hi is None or x <= hi) and (x - (lo or 0)) % step == 0]
    return rng.choice(cands or [current])


def set_widget(at: AppTest, page: str, field: str, info: dict, value) -> None:
    w = widget(at, f"{page}.{field}", info["kind"])
    if info["kind"] == "checkbox":
        w.check() if value else w.uncheck()
    elif info["kind"] in ("text_area", "text_input"):
        w.input(value)
    else:
        w.set_value(value)


WALK_PAGES = {
    # page -> (link it starts from, the number check for the record)
    "estimate": ({}, check_estimate_numbers),
    "compare": ({"gpus": "a100-sxm-80gb,l4-24gb"}, None),
    "plan_training": ({"tokens_b": "1"}, None),
    "plan_serving": ({"preset": "llama-3.2-1b"}, None),
    "learn": ({}, None),
    "profile": ({"preset": "mlp-mnist"}, None),
}
SKIP_FIELDS = {"search", "scaling"}  # layout search and scaling sweeps: slow, and checked on their own


@pytest.mark.parametrize("page", sorted(WALK_PAGES))
@pytest.mark.parametrize("seed", SEEDS)
def test_random_widget_walks_show_what_they_use(page, seed):
    link, check = WALK_PAGES[page]
    at = open_page(page, link)
    rng = random.Random(f"{page}-{seed}")
    for step in range(STEPS):
        widgets = at.session_state[f"_{page}.widgets"]
        fields = sorted(f for f in widgets if f not in SKIP_FIELDS)
        field = rng.choice(fields)
        info = widgets[field]
        current = at.session_state[f"_{page}.used"].get(field)
        value = pick(rng, field, info, current)
        set_widget(at, page, field, info, value)
        at.run()
        used = assert_shown_is_used(at, page)
        if check is not None:
            check(at, used)
