"""Every dashboard page under Streamlit's AppTest: set widgets, run, and check that the numbers shown are the
numbers ``costmodel`` computes for the same inputs; bad inputs show an error element, never an exception.

The expected values are computed here by calling the package directly (``costmodel.estimate`` and friends)
with the inputs the test put into the widgets, then formatted with the same display helpers the page uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamlit.testing.v1 import AppTest  # noqa: E402

import costmodel  # noqa: E402
from costmodel.ui import format as fmt, lessons, page_state, seeds
from costmodel.units import GiB  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "costmodel_dashboard" / "app.py")


def open_page(page: str, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()  # st.navigation registers the pages' URL paths (plan-serving...) on the first run; switch after it
    for k, v in (query or {}).items():
        at.query_params[k] = v
    at.switch_page(f"app_pages/{page}")
    at.run()
    assert not at.exception, at.exception
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def query(at: AppTest) -> dict[str, str]:
    """The page's URL query parameters (AppTest keeps them as str or list of str)."""
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items()}


def frame(at: AppTest, column: str, last: bool = False):
    """The (first or last) table on the page that has ``column``."""
    found = [d.value for d in at.dataframe if column in d.value.columns]
    assert found, f"no table with column {column!r}"
    return found[-1] if last else found[0]


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def assert_no_exception_but_error(at: AppTest, field: str):
    assert not at.exception, at.exception
    errs = errors(at)
    assert errs, "expected an st.error element"
    assert any(f"**{field}**" in e for e in errs), errs


# ---- home -----------------------------------------------------------------------------------------

def test_home_lists_every_seed_with_a_link():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    seeds = json.loads((ROOT / "costmodel/assets/seeds.json").read_text())["seeds"]
    text = " ".join(c.value for c in at.caption)
    from costmodel_dashboard.app_pages._registry import PAGES

    registered = {p["file"] for group in PAGES.values() for p in group}
    for s in seeds:
        assert s["description"][:40] in text
        assert s["page"] in registered, f"seed {s['id']} links to {s['page']}, not a page of the app"


@pytest.mark.parametrize("seed", seeds.load_seeds(), ids=lambda s: s["id"])
def test_every_seed_opens_without_error(seed):
    at = open_page(seed["page"].split("/")[-1], seed["query"])
    assert not errors(at), errors(at)
    assert at.metric or at.dataframe


# ---- estimate -------------------------------------------------------------------------------------

def test_estimate_preset_numbers_equal_the_package():
    at = open_page("estimate.py")
    at.selectbox(key="estimate.preset").set_value("llama-2-7b").run()  # the sequence box now goes to 4,096
    at.selectbox(key="estimate.hw").set_value("a100-sxm-80gb")
    at.number_input(key="estimate.batch").set_value(2)
    at.number_input(key="estimate.seq").set_value(2048)
    at.checkbox(key="estimate.ckpt").check()
    at.run()
    assert not at.exception and not errors(at)
    est = costmodel.estimate("llama-2-7b", hardware="a100-sxm-80gb", task="train", batch=2, seq=2048,
                             precision="amp-bf16", optimizer="adamw", grad_checkpointing=True)
    m = metrics(at)
    assert m["Parameters"] == f"{est.params.total:,}" == "6,738,415,616"  # Llama-2-7B model card count
    assert m["Forward FLOPs"] == fmt.fmt_si(est.flops.forward, "FLOP")
    assert m["Forward MACs"] == fmt.fmt_si(est.flops.forward / 2, "MAC")
    assert m["Peak memory"] == fmt.fmt_bytes(est.memory_bytes.peak)
    assert m["Device total"] == fmt.fmt_bytes(est.memory_bytes.device_total)
    assert m["Fits"] == ("yes" if est.memory_bytes.fits else "NO")
    assert m["Step time"] == fmt.fmt_seconds(est.time_s.step_s)
    assert m["Bound"] == est.perf.bound
    assert m["Cost per step"] == fmt.fmt_usd(est.cost_usd.per_unit)
    assert m["Energy per step"] == fmt.fmt_kwh(est.energy_kwh.per_unit)
    # the memory table carries the exact bytes
    mem = frame(at, "key").set_index("key")["bytes"]
    assert mem["weights"] == est.memory_bytes.weights
    assert mem["activations"] == est.memory_bytes.activations
    assert mem["peak"] == est.memory_bytes.peak
    # the per-layer table is the ledger
    layers = frame(at, "layer")
    assert list(layers["layer"]) == [r.name for r in est.layers]
    assert layers["params_all"].sum() == est.params.total
    # the URL holds the state
    assert query(at)["preset"] == "llama-2-7b" and query(at)["ckpt"] == "1"
    assert any("FLOPs" in e.label for e in at.expander)
    assert at.latex


def test_your_price_and_a_custom_devices_price():
    """A negotiated $/device-hour replaces the catalog's (cost per step = price x step hours, by hand); a custom
    device has no price until one is typed, then its own."""
    at = open_page("estimate.py", {"preset": "gpt2", "hw": "a100-sxm-80gb", "batch": "4", "seq": "512",
                                   "usd_h": "1.25"})
    assert not at.exception and not errors(at), errors(at)
    est = costmodel.estimate("gpt2", hardware="a100-sxm-80gb", task="train", batch=4, seq=512, precision="amp-bf16",
                             optimizer="adamw")
    m = metrics(at)
    assert m["Price per device-hour"] == fmt.fmt_usd(1.25)
    assert m["Cost per step"] == fmt.fmt_usd(1.25 * est.time_s.step_s / 3600.0)
    at = open_page("estimate.py", {"preset": "gpt2", "hw": "custom", "batch": "4", "seq": "512"})
    assert metrics(at)["Cost per step"] == "no price"
    at.number_input(key="estimate.hw_usd_h").set_value(3.0).run()
    assert metrics(at)["Price per device-hour"] == fmt.fmt_usd(3.0)


def test_estimate_inference_and_url_state_round_trip():
    q = {"preset": "llama-3-8b", "hw": "l4-24gb", "task": "infer", "precision": "int4", "batch": "4",
         "prompt": "2048", "generate": "256"}
    at = open_page("estimate.py", q)
    est = costmodel.estimate("llama-3-8b", hardware="l4-24gb", task="infer", precision="int4", batch=4, prompt=2048,
                             generate=256)
    m = metrics(at)
    assert m["Parameters"] == f"{est.params.total:,}"
    assert m["Prefill time"] == fmt.fmt_seconds(est.time_s.prefill_s)
    assert m["Decode per token"] == fmt.fmt_seconds(est.time_s.decode_per_token_s)
    mem = frame(at, "key").set_index("key")["bytes"]
    assert mem["kv_cache"] == est.memory_bytes.kv_cache
    assert query(at) == q


def test_estimate_builder_and_its_errors():
    at = open_page("estimate.py", {"source": "build"})
    at.slider(key="estimate.layers").set_value(4)
    at.slider(key="estimate.width").set_value(1024)
    at.slider(key="estimate.heads").set_value(16)
    at.slider(key="estimate.kv_heads").set_value(4)
    at.slider(key="estimate.ffn").set_value(2816)
    at.slider(key="estimate.vocab").set_value(32000)
    at.run()
    cfg = page_state.build_config(4, 1024, 16, 4, 2816, 32000)
    est = costmodel.estimate(cfg, hardware="h100-sxm-80gb", task="train", batch=1, seq=1024)
    # hand count, Llama layout: embed + 4 x (q,o: h*h; k,v: h*h/4; gate,up,down: 3*h*f; 2 norms h) + norm h + head
    h, f, V = 1024, 2816, 32000
    hand = V * h + 4 * (2 * h * h + 2 * h * (h // 4) + 3 * h * f + 2 * h) + h + V * h
    assert metrics(at)["Parameters"] == f"{est.params.total:,}" == f"{hand:,}"
    at.slider(key="estimate.heads").set_value(7).run()  # 7 does not divide 1024
    assert_no_exception_but_error(at, "model.heads")
    at.slider(key="estimate.heads").set_value(16)
    at.slider(key="estimate.kv_heads").set_value(5).run()
    assert_no_exception_but_error(at, "model.kv_heads")


def test_estimate_pasted_config_and_malformed_json():
    cfg = {"model_type": "gpt2", "n_layer": 2, "n_embd": 128, "n_head": 4, "vocab_size": 1000, "n_positions": 256}
    at = open_page("estimate.py", {"source": "paste"})
    at.text_area(key="estimate.config").input(json.dumps(cfg)).run()
    # the page's sequence (1,024) is beyond this config's 256 positions: brought within, and said so
    assert at.number_input(key="estimate.seq").value == 256
    assert any("seq" in i.value and "256" in i.value for i in at.info), [i.value for i in at.info]
    est = costmodel.estimate(cfg, task="train", batch=1, seq=256)
    assert metrics(at)["Parameters"] == f"{est.params.total:,}"
    assert metrics(at)["Step time"] == fmt.fmt_seconds(est.time_s.step_s)
    at.text_area(key="estimate.config").input('{"model_type": "gpt2", "n_layer": ').run()
    assert_no_exception_but_error(at, "config")
    at.text_area(key="estimate.config").input('{"model_type": "gpt2", "n_layer": 2, "n_layer": 3}').run()
    assert_no_exception_but_error(at, "config")


def test_estimate_bad_inputs_name_the_field():
    # batch 0 cannot be typed (the box starts at 1); from a link it is named and replaced
    at = open_page("estimate.py", {"batch": "0"})
    assert any("batch" in w.value for w in at.warning) and at.number_input(key="estimate.batch").value == 1
    at.selectbox(key="estimate.precision").set_value("int4").run()  # int4 training needs LoRA
    assert_no_exception_but_error(at, "precision")
    # a link with junk values: named as warnings, defaults used, no traceback
    at = open_page("estimate.py", {"preset": "<b>nope</b>", "batch": "abc", "hw": "custom", "hw_mem_gib": "-5"})
    assert not at.exception
    warn = " ".join(w.value for w in at.warning)
    assert "preset" in warn and "batch" in warn and "hw_mem_gib" in warn


def test_estimate_custom_hardware():
    at = open_page("estimate.py", {"hw": "custom", "hw_mem_gib": "16", "hw_bw_gbs": "500", "hw_tflops16": "100",
                                   "hw_tflops32": "20"})
    hw = page_state.custom_hardware(16, 500, 100, 20)
    est = costmodel.estimate("gpt2", hardware=hw, task="train", batch=1, seq=1024)
    m = metrics(at)
    assert m["Capacity"] == "16 GiB"
    assert m["Step time"] == fmt.fmt_seconds(est.time_s.step_s)


# ---- compare --------------------------------------------------------------------------------------

def test_compare_gpus_and_settings():
    at = open_page("compare.py", {"preset": "llama-3-8b", "task": "infer", "precision": "bf16",
                                  "gpus": "l4-24gb,h100-sxm-80gb"})
    table = frame(at, "setting")
    assert list(table["setting"]) == ["l4-24gb", "h100-sxm-80gb"]
    for _, row in table.iterrows():
        est = costmodel.estimate("llama-3-8b", hardware=row["hardware"], task="infer", precision="bf16", batch=1,
                                 prompt=512, generate=128)
        # time and money of the same unit: one whole request (prefill + 128 decode steps)
        assert row["per_unit"] == "request"
        assert row["time_s"] == est.time_s.request_s == est.time_s.prefill_s + 128 * est.time_s.decode_per_token_s
        assert row["ttft_s"] == est.time_s.prefill_s
        assert row["peak_GiB"] == est.memory_bytes.peak / GiB
        assert row["usd"] == est.cost_usd.per_unit == pytest.approx(est.cost_usd.per_hour * row["time_s"] / 3600)
        assert row["kwh"] == est.energy_kwh.per_unit
    at.multiselect(key="compare.gpus").select("a100-sxm-80gb").run()
    assert list(frame(at, "setting")["setting"]) == ["l4-24gb", "h100-sxm-80gb", "a100-sxm-80gb"]

    at.radio(key="compare.mode").set_value("settings").run()
    at.selectbox(key="compare.group").set_value("checkpointing").run()
    table = frame(at, "setting")
    # the sidebar workload is still "infer" from the link: checkpointing is a training setting, refused with the
    # reason (one rule for training-only settings in inference)
    assert list(table["setting"]) == ["no checkpointing"]
    assert any("grad_checkpointing" in i.value for i in at.info)
    # switch to training
    at.radio(key="compare.task").set_value("train").run()
    # bf16 was inference's default weights; training's default recipe is amp-bf16, and the box says so
    assert at.selectbox(key="compare.precision").value == "amp-bf16"
    table = frame(at, "setting")
    for ckpt, (_, row) in zip((False, True), table.iterrows()):
        est = costmodel.estimate("llama-3-8b", hardware="h100-sxm-80gb", task="train", precision="amp-bf16", batch=1,
                                 seq=1024, grad_checkpointing=ckpt)
        assert row["peak_GiB"] == est.memory_bytes.peak / GiB
        assert row["time_s"] == est.time_s.step_s


def test_compare_sweep_equals_the_package_and_bad_range_errors():
    at = open_page("compare.py", {"preset": "gpt2", "gpus": "a100-sxm-80gb", "sweep": "batch", "sweep_from": "1",
                                  "sweep_to": "8"})
    sweep = frame(at, "batch", last=True)
    assert list(sweep["batch"]) == [1, 2, 4, 8]
    for _, row in sweep.iterrows():
        est = costmodel.estimate("gpt2", hardware="a100-sxm-80gb", batch=int(row["batch"]), seq=1024)
        assert row["device_total_GiB"] == est.memory_bytes.device_total / GiB
        assert row["time_s"] == est.time_s.step_s
    at.number_input(key="compare.sweep_from").set_value(16).run()  # from > to
    assert_no_exception_but_error(at, "sweep.batch")


# ---- learn ----------------------------------------------------------------------------------------

def test_learn_topics_show_estimator_numbers():
    at = open_page("learn.py", {"topic": "flops", "model": "gpt2", "batch": "4", "seq": "512"})
    est = costmodel.estimate("gpt2", task="train", batch=4, seq=512, precision="amp-bf16")
    m = metrics(at)
    assert m["Step FLOPs (ledger)"] == fmt.fmt_si(est.flops.total, "FLOP")
    assert m["6 x P x T"] == fmt.fmt_si(6 * est.params.total * 4 * 512, "FLOP")
    assert at.latex
    at.selectbox(key="learn.topic").set_value("kv").run()
    at.selectbox(key="learn.model").set_value("llama-3-8b").run()
    at.number_input(key="learn.prompt").set_value(1024).run()  # GPT-2's 1,024 positions held it to 768
    est = costmodel.estimate("llama-3-8b", task="infer", batch=4, prompt=1024, generate=256, precision="bf16",
                             kv_cache_precision="bf16")
    # 2 x 32 layers x 4 x 8 KV heads x 128 x (1024 + 256) positions x 2 bytes
    assert est.memory_bytes.kv_cache == 2 * 32 * 4 * 8 * 128 * 1280 * 2
    assert metrics(at)["KV cache"] == fmt.fmt_bytes(est.memory_bytes.kv_cache)
    at.selectbox(key="learn.topic").set_value("lora").run()
    at.slider(key="learn.rank").set_value(8).run()
    est = costmodel.estimate("llama-2-7b", task="train", batch=1, seq=512, lora_rank=8,
                             lora_targets="q_proj,k_proj,v_proj,o_proj", precision="bf16")
    assert est.params.trainable == 32 * 4 * 8 * (4096 + 4096)  # r (d_in + d_out) per adapter
    assert metrics(at)["LoRA trainable parameters"] == f"{est.params.trainable:,}"
    at.selectbox(key="learn.topic").set_value("parallel").run()
    at.selectbox(key="learn.tp").set_value(4)
    at.selectbox(key="learn.zero").set_value(1).run()
    plan = lessons.lesson_parallel("llama-2-13b", "a100-sxm-80gb", dp=8, tp=4, pp=1, zero=1)["plan"]
    assert metrics(at)["Weights per device"] == fmt.fmt_bytes(plan.step.memory_bytes.weights)
    assert metrics(at)["Step time"] == fmt.fmt_seconds(plan.step.step_s)
    # ZeRO-1 splits the mixed-precision AdamW states -- fp32 master, m and v: K = 12 bytes per parameter
    # (Rajbhandari et al. 2020, "ZeRO", Sec. 3.1) -- over tp x dp = 32 devices (the lesson runs the
    # production Megatron engine: bf16 weights with an fp32 master copy)
    est = costmodel.estimate("llama-2-13b", hardware="a100-sxm-80gb", batch=1, seq=2048)
    assert plan.step.memory_bytes.optimizer == pytest.approx(12 * est.params.total / 32)
    for topic in ("adam", "activations", "quantization", "pruning", "distillation"):
        at.selectbox(key="learn.topic").set_value(topic).run()
        assert not at.exception and not errors(at), topic
        assert at.latex
    at = open_page("learn.py", {"topic": "flops", "batch": "0"})  # batch 0 from a link: named, replaced by 1
    assert any("batch" in w.value for w in at.warning) and at.number_input(key="learn.batch").value == 1


# ---- plan training --------------------------------------------------------------------------------

def test_plan_training_numbers_equal_the_package():
    from costmodel import plans

    at = open_page("plan_training.py", {"preset": "gpt2", "hw": "a100-sxm-80gb", "tokens_b": "10", "dp": "8",
                                        "micro_batch": "4", "global_batch": "512", "scaling": "0"})
    at.number_input(key="plan_training.dp").set_value(16)
    at.selectbox(key="plan_training.zero").set_value(2)
    at.run()
    assert not at.exception and not errors(at), errors(at)
    # GPT-2 has 1,024 positions: the page's sequence default (2,048) follows the model
    assert at.number_input(key="plan_training.seq").value == 1024
    plan = plans.plan_training("gpt2", "a100-sxm-80gb", tokens=10e9, global_batch=512,
                               workload={"seq": 1024, "precision": "amp-bf16", "optimizer": "adamw"},
                               layout=dict(dp=16, zero=2, micro_batch=4),
                               pricing={"provider": None, "tier": "on-demand", "region": "world", "utilization": 1.0})
    m = metrics(at)
    assert m["Devices"] == "16"
    assert m["Wall clock"] == fmt.fmt_seconds(plan.wall_clock_s)
    assert m["GPU-hours"] == fmt.fmt_hours(plan.gpu_hours)
    assert m["Cost"] == fmt.fmt_usd(plan.cost.compute_usd + plan.cost.storage_usd)
    assert m["Energy"] == fmt.fmt_kwh(plan.cost.energy_kwh)
    assert m["MFU"] == f"{plan.step.mfu:.1%}"
    steps = frame(at, "part").set_index("part")["seconds"]
    assert steps["pipeline bubble"] == plan.step.bubble_s and steps["optimizer step"] == plan.step.optimizer_s
    # a layout the model cannot take: tensor parallel 5 does not divide GPT-2's 12 heads. The error is named, the
    # valid layouts are offered (each with a Use button), and using one plans it
    at.number_input(key="plan_training.tp").set_value(5).run()
    assert_no_exception_but_error(at, "layout.tp")
    use = [b for b in at.button if b.key and b.key.startswith("pt.use")]
    assert use, "valid layouts offered"
    use[0].click().run()
    at.run()  # the request is applied on the rerun
    assert not errors(at) and at.number_input(key="plan_training.tp").value in (1, 2, 3, 4, 6, 12)
    assert "Wall clock" in metrics(at)


def test_plan_training_engine_and_measured_gemm_choices():
    """The engine and GEMM-time choices reach the package: the page's numbers equal plan_training with them, and the
    page names the engine and where the GEMM times come from (measured tables when the extra is installed)."""
    from costmodel import measured, plans

    q = {"preset": "llama-2-7b", "hw": "h100-sxm-80gb", "tokens_b": "10", "dp": "2", "tp": "4", "micro_batch": "1",
         "global_batch": "64", "seq": "4096", "scaling": "0"}
    at = open_page("plan_training.py", q)
    pricing = {"provider": None, "tier": "on-demand", "region": "world", "utilization": 1.0}
    kw = dict(tokens=10e9, global_batch=64, workload={"seq": 4096, "precision": "amp-bf16", "optimizer": "adamw"},
              layout=dict(dp=2, tp=4, zero=1, micro_batch=1), pricing=pricing)
    auto = plans.plan_training("llama-2-7b", "h100-sxm-80gb", **kw)
    assert auto.assumptions["engine"]["engine"] == "megatron"  # auto: the model is split
    assert metrics(at)["Wall clock"] == fmt.fmt_seconds(auto.wall_clock_s)
    assert any("Engine: megatron" in i.value for i in at.info)
    at.selectbox(key="plan_training.engine").set_value("fsdp").run()
    fsdp = plans.plan_training("llama-2-7b", "h100-sxm-80gb", engine="fsdp", **kw)
    assert metrics(at)["Wall clock"] == fmt.fmt_seconds(fsdp.wall_clock_s) != fmt.fmt_seconds(auto.wall_clock_s)
    if measured.available():
        at.radio(key="plan_training.time_source").set_value("measured").run()
        meas = plans.plan_training("llama-2-7b", "h100-sxm-80gb", engine="fsdp", time_source="measured", **kw)
        assert metrics(at)["Wall clock"] == fmt.fmt_seconds(meas.wall_clock_s)
        assert any("aiconfigurator-core" in i.value and "h100_sxm" in i.value for i in at.info)


def test_plan_training_selective_checkpointing_box():
    """Ticking "Per op (selective)" under "Checkpointing" plans torchtitan's per-op policy: the page's numbers equal
    plan_training with grad_checkpointing="selective" (and differ from full checkpointing's)."""
    from costmodel import plans

    q = {"preset": "llama-3-8b", "hw": "h100-sxm-80gb", "tokens_b": "10", "dp": "8", "zero": "3", "micro_batch": "2",
         "global_batch": "16", "seq": "8192", "engine": "fsdp", "scaling": "0", "ckpt": "1"}
    at = open_page("plan_training.py", q)
    pricing = {"provider": None, "tier": "on-demand", "region": "world", "utilization": 1.0}
    kw = dict(tokens=10e9, global_batch=16, workload={"seq": 8192, "precision": "amp-bf16", "optimizer": "adamw"},
              pricing=pricing, engine="fsdp")
    full = plans.plan_training("llama-3-8b", "h100-sxm-80gb", layout=dict(dp=8, zero=3, micro_batch=2,
                                                                           grad_checkpointing=True), **kw)
    assert metrics(at)["Wall clock"] == fmt.fmt_seconds(full.wall_clock_s)
    at.checkbox(key="plan_training.ckpt_sel").check().run()
    sel = plans.plan_training("llama-3-8b", "h100-sxm-80gb", layout=dict(dp=8, zero=3, micro_batch=2,
                                                                          grad_checkpointing="selective"), **kw)
    assert not errors(at)
    assert metrics(at)["Wall clock"] == fmt.fmt_seconds(sel.wall_clock_s) != fmt.fmt_seconds(full.wall_clock_s)
    assert at.query_params.get("ckpt_sel") in ("1", ["1"], "true", ["true"])  # a link keeps the choice


def test_plan_training_search_and_seeds_of_vision():
    from costmodel import plans

    seed = seeds.get_seed("resnet50-imagenet-a100")
    at = open_page("plan_training.py", {**seed["query"], "search": "1", "max_devices": "8"})
    plan = plans.plan_training("resnet-50", "a100-sxm-80gb", samples=100_000, epochs=10, global_batch=256,
                               workload={"seq": 2048, "image_size": 224, "precision": "amp-bf16",
                                         "optimizer": "sgd-momentum"},
                               layout=dict(dp=1, micro_batch=256, zero=0))
    assert plan.steps == 3907  # ceil(100,000 x 10 / 256)
    assert metrics(at)["Wall clock"] == fmt.fmt_seconds(plan.wall_clock_s)
    layouts = frame(at, "grad_accum")
    found = plans.search_layouts("resnet-50", "a100-sxm-80gb", samples=100_000, epochs=10, global_batch=256,
                                 workload={"seq": 2048, "image_size": 224, "precision": "amp-bf16",
                                           "optimizer": "sgd-momentum"}, max_devices=8)
    assert len(layouts) == min(25, len(found))
    assert layouts["step_s"].iloc[0] == found[0].step_s


# ---- plan serving ---------------------------------------------------------------------------------

def test_plan_serving_numbers_equal_the_package():
    from costmodel import plans

    at = open_page("plan_serving.py", {"preset": "llama-3-8b", "hw": "l4-24gb", "also": "h100-sxm-80gb"})
    at.selectbox(key="plan_serving.precision").set_value("int4").run()
    plan = plans.plan_serving("llama-3-8b", "l4-24gb", prompt=1024, generate=256, precision="int4")
    m = metrics(at)
    assert m["Time to first token (batch 1)"] == fmt.fmt_seconds(plan.points[0].ttft_s)
    assert m["Largest batch that fits"] == f"{plan.max_batch:,}"
    assert m["Longest context (batch 1)"] == f"{plan.max_context:,} tokens"
    pts = frame(at, "ttft_s")
    assert list(pts["usd_per_million_tokens"]) == [p.usd_per_million_tokens for p in plan.points]
    devices = frame(at, "best_batch")
    assert list(devices["setting"]) == ["l4-24gb", "h100-sxm-80gb"]
    at.number_input(key="plan_serving.tp").set_value(3).run()  # 3 does not divide 32 heads
    assert_no_exception_but_error(at, "layout.tp")
    at = open_page("plan_serving.py", {"preset": "bert-base"})
    assert_no_exception_but_error(at, "model")  # an encoder has no decode loop


def test_plan_serving_traffic_fleet_and_the_l4_h100_seed():
    from costmodel import plans
    from costmodel.serving import capacity

    seed = {"preset": "llama-3-8b", "hw": "l4-24gb", "prompt": "1024", "generate": "256", "precision": "bf16",
            "also": "h100-sxm-80gb", "qps": "2", "slo_ttft_ms": "500", "slo_tpot_ms": "80", "requests": "200"}
    at = open_page("plan_serving.py", seed)
    m = metrics(at)
    l4 = plans.plan_serving("llama-3-8b", "l4-24gb", prompt=1024, generate=256)
    h100 = plans.plan_serving("llama-3-8b", "h100-sxm-80gb", prompt=1024, generate=256)
    assert m["Offline throughput"] == f"{l4.offline_throughput_tokens_per_s:,.0f} tok/s"
    assert any("Engine: vllm" in i.value for i in at.info)
    devices = frame(at, "best_batch")
    l4_row, h100_row = devices.iloc[0], devices.iloc[1]
    # the planner's picture: the H100 decodes ~9x faster and is cheaper per million tokens at full load
    assert l4_row["decode_s_per_token"] > 6 * h100_row["decode_s_per_token"]
    assert h100_row["offline_usd_per_million_tokens"] < l4_row["offline_usd_per_million_tokens"]
    assert h100.offline_usd_per_million_tokens == pytest.approx(h100_row["offline_usd_per_million_tokens"])
    cap = capacity.plan_capacity("llama-3-8b", qps=2.0, input_tokens=1024, output_tokens=256, slo_ttft_s=0.5,
                                 slo_tpot_s=0.08, hardware=("l4-24gb", "h100-sxm-80gb"), tps=(1, 2, 4, 8),
                                 precisions=("bf16",), num_requests=300,
                                 pricing={"provider": None, "tier": "on-demand", "region": "world", "utilization": 1.0})
    assert m["Fleet"] == f"{cap.best.devices} x {cap.best.hardware}"
    assert list(frame(at, "why")["feasible"]) == [c.feasible for c in cap.candidates]
    assert "p99_ms" in frame(at, "p99_ms").columns and "p99 time to first token" in m


# ---- scenarios ------------------------------------------------------------------------------------

def test_scenarios_save_list_compare_and_escape(tmp_path, monkeypatch):
    monkeypatch.setenv("COSTMODEL_DB", str(tmp_path / "s.db"))
    at = open_page("scenarios.py")
    assert any("No scenarios yet" in i.value for i in at.info)
    # save from the Estimate page, with a name that is HTML and markdown
    evil = "<img src=x onerror=alert(1)> **x**"
    at = open_page("estimate.py", {"preset": "gpt2", "batch": "4"})
    at.text_input(key="est.save_name").input(evil)
    at.button(key="FormSubmitter:est.save-Save scenario").click().run()
    assert not at.exception and at.success
    from costmodel.storage import Store

    Store().save_scenario("llama", {"model": "llama-3-8b", "hardware": "l4-24gb",
                                    "workload": {"task": "infer", "precision": "bf16"}})
    at = open_page("scenarios.py")
    names = list(frame(at, "name")["name"])
    assert names == sorted([evil, "llama"])
    at.selectbox(key="sc.pick").set_value(evil).run()
    est = costmodel.estimate("gpt2", task="train", batch=4, seq=1024)
    assert metrics(at)["Peak memory"] == fmt.fmt_bytes(est.memory_bytes.peak)
    # the name never reaches the page as markup: no markdown or HTML element contains it
    assert not any("onerror" in getattr(el, "value", "") for el in at.markdown)
    cmp = frame(at, "setting")
    assert sorted(cmp["setting"]) == sorted([evil, "llama"])
    at.text_input(key="sc.new_name").input("gpt2 copy")
    at.button(key="sc.duplicate").click().run()
    assert "gpt2 copy" in list(frame(at, "name")["name"])
    at.text_input(key="sc.new_name").input("llama").run()
    at.button(key="sc.rename").click().run()  # the name exists already
    assert_no_exception_but_error(at, "new_name")


# ---- profile --------------------------------------------------------------------------------------

def test_profile_refusal_and_a_real_run(tmp_path, monkeypatch):
    import time

    monkeypatch.setenv("COSTMODEL_DB", str(tmp_path / "s.db"))
    monkeypatch.setenv("COSTMODEL_PROFILER_DIR", str(tmp_path / "prof"))
    # a run predicted not to fit in this machine's memory is refused before any child starts
    at = open_page("profile.py", {"preset": "llama-2-70b", "seq": "4096"})
    at.button(key="profile.run").click().run()
    assert not at.exception
    assert any("refused" in e.value for e in at.error)
    # a tiny real run: MLP on MNIST-shaped input, one measured step
    at = open_page("profile.py", {"preset": "mlp-mnist", "batch": "8", "steps": "1", "warmup": "0", "threads": "1"})
    at.button(key="profile.run").click().run()
    deadline = time.time() + 150
    while time.time() < deadline and not any(s.value.startswith("Run ") for s in at.subheader):
        time.sleep(0.5)
        at.run()
    assert not at.exception
    assert any(s.value.endswith(": ok") for s in at.subheader), [e.value for e in at.error]
    rows = frame(at, "quantity").set_index("quantity")
    est = costmodel.estimate("mlp-mnist", hardware="cpu-generic", task="train", batch=8, precision="fp32")
    assert rows.loc["params (total)", "predicted"] == est.params.total == 669_706  # 784*512+512 + 512*512+512 + 512*10+10
    assert rows.loc["params (total)", "measured"] == est.params.total
    assert rows.loc["forward FLOPs", "measured"] == est.flops.forward  # 2 x 8 x (784*512 + 512*512 + 512*10)
    # FLOPs by module: FlopCounterMode over forward + backward (the estimator's backward skips the first
    # layer's dX: the input needs no gradient), fvcore's multiply-adds x 2 over one forward
    mods = frame(at, "module").set_index("module")
    assert mods.loc["(whole model)", "torch_flops"] == est.flops.forward + est.flops.backward
    assert mods.loc["(whole model)", "fvcore_flops"] == est.flops.forward


def test_plan_training_rerun_does_no_estimator_work(monkeypatch):
    # issue 17: the plan, the scaling sweep and the layout search are cached per input (st.cache_resource, bounded);
    # a rerun with nothing changed, or a change the search does not use, calls none of them again, and shows what
    # an uncached call gives
    from costmodel import plans
    from costmodel.ui import sweeps

    q = {"preset": "llama-2-7b", "hw": "h100-sxm-80gb", "seq": "2048", "global_batch": "64", "dp": "8",
         "micro_batch": "2", "search": "1", "max_devices": "16"}
    at = open_page("plan_training.py", q)
    calls = []
    for mod, name in ((plans, "plan_training"), (plans, "search_layouts"), (plans, "train_step"),
                      (sweeps, "scaling_rows")):
        real = getattr(mod, name)
        monkeypatch.setattr(mod, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    at.run()
    assert not at.exception and calls == []
    first = frame(at, "grad_accum")
    at.number_input(key="plan_training.dp").set_value(4).run()  # the plan changes; the search does not
    assert not at.exception and "search_layouts" not in calls and "plan_training" in calls
    found = plans.search_layouts("llama-2-7b", "h100-sxm-80gb", tokens=10e9, global_batch=64, max_devices=16,
                                 workload={"seq": 2048, "image_size": 224, "precision": "amp-bf16",
                                           "optimizer": "adamw"}, include_unfit=True)
    fit = [r for r in found if r.fits][:25]
    assert list(first["step_s"]) == [r.step_s for r in fit]
    assert list(frame(at, "grad_accum")["step_s"]) == [r.step_s for r in fit]


def test_estimate_per_op_checkpointing_box_and_where_it_is_not_offered():
    """Estimate: "Per op (selective)" under "Gradient checkpointing" estimates torchtitan's per-op policy (numbers
    equal the API's); a model it is not priced for (MoE) and the Profile page hide the box and say full is used; a
    scenario holding "selective" opens with both boxes ticked."""
    from costmodel.ui import page_state

    at = open_page("estimate.py", {"preset": "llama-3-8b", "hw": "h100-sxm-80gb", "batch": "2", "seq": "4096",
                                   "ckpt": "1", "ckpt_sel": "1"})
    est = costmodel.estimate("llama-3-8b", hardware="h100-sxm-80gb", task="train", batch=2, seq=4096,
                             precision="amp-bf16", optimizer="adamw", grad_checkpointing="selective")
    full = costmodel.estimate("llama-3-8b", hardware="h100-sxm-80gb", task="train", batch=2, seq=4096,
                              precision="amp-bf16", optimizer="adamw", grad_checkpointing=True)
    assert not errors(at)
    assert metrics(at)["Step time"] == fmt.fmt_seconds(est.time_s.step_s) != fmt.fmt_seconds(full.time_s.step_s)
    assert frame(at, "key").set_index("key")["bytes"]["activations"] == est.memory_bytes.activations
    moe = open_page("estimate.py", {"preset": "mixtral-8x7b", "batch": "1", "seq": "512", "ckpt": "1", "ckpt_sel": "1"})
    assert not errors(moe) and not [c for c in moe.checkbox if c.key == "estimate.ckpt_sel"]
    assert any("ckpt_sel" in i.value and "full checkpointing used" in i.value for i in moe.info)
    prof = open_page("profile.py", {"preset": "gpt2", "ckpt": "1", "ckpt_sel": "1"})
    assert not [c for c in prof.checkbox if c.key == "profile.ckpt_sel"]
    scn = {"name": "s", "model": "llama-3-8b", "hardware": "h100-sxm-80gb",
           "workload": {"task": "train", "grad_checkpointing": "selective"}}
    q = page_state.state_from_scenario(scn)
    assert q["ckpt"] == "1" and q["ckpt_sel"] == "1"
