"""The package side of the dashboard issue: limits checked everywhere with one message (API, CLI, profiler request,
plans, sweeps), goal-driven layout search, checkpoint storage, plans as scenarios with money in every export, the
techniques (distillation, QAT) by hand, the i18n catalog, and the chart rules (colours, ticks, labels)."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

import costmodel
from costmodel.errors import InputError

ROOT = Path(__file__).resolve().parent.parent


def cli(*args):
    return subprocess.run([sys.executable, "-m", "costmodel", *args], cwd=ROOT, capture_output=True, text=True,
                          env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"}, timeout=300)


# ---- limits (issue 3) ---------------------------------------------------------------------------------------

GPT2_MSG = ("seq: needs 2,048 positions but gpt2 takes at most 1,024: its learned position table has no row beyond "
            "it (PyTorch: IndexError: index out of range); got 2,048")


def test_api_refuses_positions_beyond_the_context_and_defaults_within_it():
    with pytest.raises(InputError) as e:
        costmodel.estimate("gpt2", seq=2048)
    assert str(e.value) == GPT2_MSG
    assert costmodel.estimate("gpt2").workload.seq == 1024  # seq not given: 2048, or the context if shorter
    with pytest.raises(InputError, match=r"^prompt: needs 8,256 positions but llama-3-8b takes at most 8,192"):
        costmodel.estimate("llama-3-8b", task="infer", prompt=8000, generate=256)
    # the check is in the estimator: a Workload object is judged as given
    from costmodel.estimator import estimate
    from costmodel.models import load_model

    with pytest.raises(InputError, match="^seq: needs"):
        estimate(load_model("bert-base"), costmodel.Workload(seq=1024))  # BERT: 512 learned positions


def test_cli_and_profiler_request_say_the_same_line():
    out = cli("estimate", "--model", "gpt2", "--seq", "2048")
    assert out.returncode == 2 and out.stderr.strip() == f"error: {GPT2_MSG}"
    prof = cli("profile", "--model", "gpt2", "--seq", "2048", "--steps", "1")
    assert prof.returncode == 2 and prof.stderr.strip() == f"error: {GPT2_MSG}" and "IndexError" not in prof.stdout
    from costmodel.profiler.request import ProfileRequest

    with pytest.raises(InputError) as e:
        ProfileRequest(model="gpt2", workload={"seq": 2048})
    assert str(e.value) == GPT2_MSG
    assert ProfileRequest(model="gpt2", workload={"batch": 1}).workload["seq"] == 1024


def test_fixed_image_size_is_refused_with_the_reason_and_defaults_to_the_net():
    out = cli("estimate", "--model", "course-cnn-28", "--image-size", "64", "--hardware", "cpu-generic")
    assert out.returncode == 2
    assert out.stderr.strip() == ("error: image_size: must be 28 for course-cnn-28: its flatten feeds a dense layer "
                                  "sized for 28x28 inputs (another size is another model); got 64")
    ok = cli("estimate", "--model", "course-cnn-28", "--hardware", "cpu-generic", "--json")
    assert json.loads(ok.stdout)["workload"]["image_size"] == 28


def test_serving_context_is_capped_by_the_model_and_sweeps_stop_there():
    from costmodel.plans import plan_serving
    from costmodel.models import load_model
    from costmodel.ui import sweeps

    assert plan_serving("gpt2", "a100-sxm-80gb", prompt=512, generate=128).max_context == 1024
    vals, note = sweeps.cap_sweep(load_model("llama-3-8b"), {"generate": 256}, "seq", [1024, 2048, 4096, 8192, 16384,
                                                                                       32768])
    assert vals == [1024, 2048, 4096, 8192] and "8,192 positions" in note
    vals, note = sweeps.cap_sweep(load_model("llama-3-8b"), {"generate": 256}, "prompt", [4096, 8192])
    assert vals == [4096, 8192 - 256]


# ---- goal-driven planning (issue 9) -------------------------------------------------------------------------

def test_pipeline_splits_divide_the_layers():
    from costmodel.models import load_model
    from costmodel.plans import candidate_layouts

    pps = {lay.pp for lay in candidate_layouts(load_model("llama-2-70b"), 256)}  # 80 layers
    # the default counts are every 2^a 3^b 5^c up to 256: every divisor of 80 = 2^4 x 5 is reachable, and only
    # those (32 and 64 never)
    assert pps == {1, 2, 4, 5, 8, 10, 16, 20, 40, 80}
    pps = {lay.pp for lay in candidate_layouts(load_model("llama-2-70b"), 256, [2 ** i for i in range(9)])}
    assert pps == {1, 2, 4, 8, 16}  # powers of two dividing 80 (32 and 64 do not)


def test_search_keeps_to_the_goals():
    from costmodel.plans import search_layouts

    kw = dict(tokens=2e10, workload={"seq": 2048}, global_batch=256, max_devices=64, usd_per_device_hour=2.0)
    every = search_layouts("llama-2-7b", "h100-sxm-80gb", **kw)
    goals = search_layouts("llama-2-7b", "h100-sxm-80gb", min_devices=16, deadline_s=20 * 86400, budget_usd=30_000,
                           **kw)
    assert goals and len(goals) < len(every)
    assert all(r.num_devices >= 16 and r.wall_clock_s <= 20 * 86400 and r.cost_usd <= 30_000 for r in goals)
    assert {id(r) for r in goals} and all(any(r.layout == e.layout for e in every) for e in goals for r in [e])


def test_search_layout_flags_have_help_and_goals():
    out = cli("search-layouts", "--help")
    for flag in ("--min-devices", "--max-devices", "--deadline-days", "--budget-usd", "--rank-by", "--seq"):
        assert flag in out.stdout
    lines = [ln for ln in out.stdout.splitlines() if ln.strip().startswith("--")]
    assert all(len(ln.split(None, 2)) >= 2 for ln in lines)  # every flag is followed by its help text
    res = cli("search-layouts", "--model", "llama-2-70b", "--tokens", "2e11", "--seq", "4096", "--max-devices", "256",
              "--min-devices", "128", "--top", "5", "--json")
    assert res.returncode == 0, res.stderr
    assert all(r["num_devices"] >= 128 and 80 % r["layout"]["pp"] == 0 for r in json.loads(res.stdout))


def test_checkpoint_storage_cost_by_hand():
    from costmodel.checkpoint import checkpoint_of
    from costmodel.plans import plan_training

    ck = checkpoint_of("gpt2", {"precision": "amp-bf16", "optimizer": "adamw"})
    # 124,439,808 params x (4 B fp32 weight + 2 x 4 B AdamW states)
    assert ck.training_checkpoint_bytes == 124_439_808 * 12
    plan = plan_training("gpt2", "a100-sxm-80gb", tokens=1e9, global_batch=64, layout={"dp": 8, "micro_batch": 8},
                         workload={"seq": 1024}, pricing={"storage_bytes": 3 * ck.training_checkpoint_bytes,
                                                          "storage_months": 2})
    price = plan.cost.assumptions["storage_usd_per_gb_month"]["value"]
    assert plan.cost.storage_usd == pytest.approx(3 * 124_439_808 * 12 / 2**30 * 2 * price)


# ---- plans are scenarios; exports carry money (issue 4) -----------------------------------------------------

def _plan_scenario():
    from costmodel.plan_scenario import training_scenario

    return training_scenario("gpt2 on 8 A100s", "gpt2", "a100-sxm-80gb",
                             {"seq": 1024, "precision": "amp-bf16", "optimizer": "adamw"},
                             {"dp": 8, "tp": 1, "pp": 1, "zero": 1, "micro_batch": 4, "grad_checkpointing": False,
                              "offload": False}, tokens=1e9, global_batch=512, pricing={"tier": "on-demand"})


def test_a_saved_plan_reevaluates_and_exports_with_money(tmp_path):
    from costmodel.plan_scenario import evaluate_plan
    from costmodel.plans import plan_training
    from costmodel.storage import Store
    from costmodel.ui import report

    store = Store(tmp_path / "p.db")
    store.save_scenario("gpt2 on 8 A100s", _plan_scenario())
    scn = store.load_scenario("gpt2 on 8 A100s")
    plan = evaluate_plan(scn)
    want = plan_training("gpt2", "a100-sxm-80gb", tokens=1e9, global_batch=512, workload={"seq": 1024},
                         layout={"dp": 8, "zero": 1, "micro_batch": 4}, pricing={"tier": "on-demand"})
    assert plan.wall_clock_s == want.wall_clock_s and plan.cost.total_usd == want.cost.total_usd
    row = next(csv.DictReader(io.StringIO(report.export_csv(scn))))
    assert float(row["plan.total_usd"]) == pytest.approx(want.cost.total_usd)
    assert float(row["plan.carbon_kg_co2e"]) == pytest.approx(want.cost.carbon_kg_co2e)
    assert float(row["plan.energy_kwh"]) == pytest.approx(want.cost.energy_kwh)
    assert float(row["assumption.usd_per_gpu_hour"]) > 0 and row["assumption.region"] == "world"
    assert row["cost_usd.per_step"] and row["energy_kwh.per_step"] and row["carbon_kg_co2e.per_step"]
    data = json.loads(report.export_json(scn))
    assert data["plan_results"]["cost"]["carbon_kg_co2e"] == pytest.approx(want.cost.carbon_kg_co2e)
    html = report.export_html(scn)
    assert "Plan: time, money, energy, carbon" in html and "grid_g_co2e_per_kwh" in html


# ---- techniques by hand -------------------------------------------------------------------------------------

def test_distillation_step_is_teacher_forward_plus_student_step():
    from costmodel.techniques import distillation_estimate

    wl = {"batch": 32, "precision": "fp32", "optimizer": "adam"}
    d = distillation_estimate("course-teacher-28", "course-student-28", "cpu-generic", wl)
    t = costmodel.estimate("course-teacher-28", hardware="cpu-generic", task="infer", batch=32, precision="fp32")
    s = costmodel.estimate("course-student-28", hardware="cpu-generic", **{**wl, "task": "train"})
    assert d.step_s == t.time_s.forward_s + s.time_s.step_s
    assert d.step_flops == t.flops.forward + s.flops.total
    # teacher outputs: 32 x 10 classes x 4 B kept for the loss
    assert d.teacher_output_bytes == 32 * 10 * 4
    assert d.peak_bytes == s.memory_bytes.peak + t.memory_bytes.weights + 1280


def test_qat_adds_fake_quant_copies_and_masks_by_hand():
    from costmodel.techniques import qat_estimate

    q = qat_estimate("course-cnn-28", "cpu-generic", {"batch": 32, "precision": "fp32", "optimizer": "adam"})
    # matmul weights 288 + 692,224 + 1,280 = 693,792, each a 4 B fake-quantized copy + a 1 B mask; activation masks
    # of the matmul inputs the ledger saves: the image 32x784 and the flattened map 32x5,408 (dense 2's input is the
    # ReLU's saved output, counted there): 198,144 x 1 B
    assert q.extra_saved_bytes == 693_792 * 5 + 198_144
    assert q.deployed_model_bytes == 693_792 * 1 + (693_962 - 693_792) * 4
    assert q.step_s > q.base.time_s.step_s and q.peak_bytes == q.base.memory_bytes.peak + q.extra_saved_bytes


# ---- i18n: every key in both languages (Learn in the course's language) --------------------------------------

def test_every_message_has_english_and_chinese():
    from costmodel.ui.i18n import CATALOG, LANGS, t

    for key, entry in CATALOG.items():
        assert set(entry) == set(LANGS), key
        assert all(v.strip() for v in entry.values()), key
        assert entry["zh"] != entry["en"] or key == "home.title", key
    assert t("metric.params", "zh") == "参数量" and t("metric.params", "xx") == "Parameters"


# ---- charts (issue 6) ---------------------------------------------------------------------------------------

def test_a_memory_component_keeps_its_colour_across_charts():
    from costmodel.plans import plan_training
    from costmodel.ui import figures

    est = costmodel.estimate("llama-2-7b", hardware="a100-sxm-80gb", batch=1, seq=2048)
    plan = plan_training("llama-2-7b", "a100-sxm-80gb", tokens=1e9, global_batch=64,
                         layout={"dp": 8, "tp": 2, "zero": 1, "micro_batch": 1}, workload={"seq": 2048})
    a = {t.name.split(" (")[0]: t.marker.color for t in figures.memory_figure(est).data}
    b = {t.name.split(" (")[0]: t.marker.color for t in figures.plan_memory_figure(plan).data}
    for comp in ("weights", "gradients", "optimizer states"):
        assert a[comp] == b[comp] == figures.COMPONENT_COLOURS[comp]


def test_log_axes_write_their_ticks_out():
    from costmodel.ui.figures import log_axis

    ax = log_axis([8, 16, 32, 64, 128])
    assert ax["tickvals"] == [8, 16, 32, 64, 128] and ax["ticktext"] == ["8", "16", "32", "64", "128"]
    ax = log_axis([3e11, 2e14])
    assert ax["ticktext"][0].endswith("G") or ax["ticktext"][0].endswith("T")
    assert all(not t.isdigit() or len(t) > 1 or t in "125" for t in ax["ticktext"])


def test_pareto_labels_only_the_front_and_marks_what_does_not_fit():
    from costmodel.ui.figures import pareto_figure

    pts = [{"setting": str(i), "time_s": float(i), "cost_usd": float(10 - i), "fits": True} for i in range(1, 9)]
    pts += [{"setting": "big", "time_s": 0.5, "cost_usd": 0.5, "fits": False}]
    pts += [{"setting": f"slow{i}", "time_s": 20.0 + i, "cost_usd": 20.0, "fits": True} for i in range(400)]
    fig = pareto_figure(pts)
    labelled = [t for t in fig.data if t.mode and "text" in t.mode]
    assert len(labelled) == 1 and list(labelled[0].text) == [str(i) for i in range(1, 9)]
    unfit = next(t for t in fig.data if t.name == "does not fit")
    assert list(unfit.text) == ["big"] and unfit.marker.symbol == "x"


def test_roofline_puts_prefill_and_decode_at_their_intensity():
    from costmodel.catalog import load_hardware
    from costmodel.ui import figures, sweeps

    est = costmodel.estimate("llama-3-8b", hardware="h100-sxm-80gb", task="infer", batch=1, prompt=2048,
                             generate=256, precision="bf16")
    pts = {p["phase"]: p for p in sweeps.roofline_points("llama-3-8b", est)}
    # decode reads all the weights for one token: about 1 FLOP per byte; prefill reuses them over 2,048 tokens
    assert pts["decode"]["intensity"] < 2 < 100 < pts["prefill"]["intensity"]
    assert pts["decode"]["bound"] == est.perf.decode_bound and pts["prefill"]["bound"] == est.perf.bound
    fig = figures.roofline_figure(est, load_hardware("h100-sxm-80gb"), list(pts.values()))
    names = [t.name for t in fig.data]
    assert "prefill" in names and "decode" in names


def test_lstm_bound_is_latency_not_compute():
    est = costmodel.estimate("lstm-2x1024", hardware="h100-sxm-80gb", batch=4, seq=256, precision="fp32")
    assert est.perf.bound == "latency"  # 256 dependent steps of a few small kernels each


def test_numbers_for_people():
    from costmodel.ui import format as fmt

    assert fmt.fmt_hours(0.14) == "0.14" and fmt.fmt_co2(2.96e-05 * 1000) == "29.6 g CO2e"
    assert fmt.fmt_bytes(2_777_000) == "2.65 MiB" and fmt.fmt_bytes(3 * 2**40) == "3 TiB"
    assert fmt.fmt_seconds(1446982.9142418231) == "16.7 days" and fmt.fmt_seconds(12e-6) == "12 µs"
    assert fmt.fmt_value(2000000000000.0, "tokens") == "2,000,000,000,000 tokens"
