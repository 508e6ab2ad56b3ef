"""The live profiler end to end on CPU: real child processes run tiny models of every family (GPT-2,
Llama with GQA, Mixtral MoE with LoRA, the MNIST CNN, an LSTM), and the safety rules (time limit, memory
guard, crash, one run per device) are exercised for real.

References: hand arithmetic of parameters / FLOPs / KV-cache bytes (shown next to each assertion),
torch's FlopCounterMode, the preset's published parameter count, and torch.profiler's memory events.
"""

import json
import os
import time

import pytest

from costmodel.errors import InputError
from costmodel.profiler import ProfileRequest, attach, lock_holder, run_profile, start_profile
from costmodel.profiler import runner as runner_mod
from costmodel.profiler.compare import comparison_rows, error_pct

TINY_GPT2 = dict(model_type="gpt2", architectures=["GPT2LMHeadModel"], n_layer=2, n_embd=64, n_head=4,
                 vocab_size=1000, n_positions=128)
TINY_LLAMA = dict(model_type="llama", architectures=["LlamaForCausalLM"], hidden_size=64, intermediate_size=128,
                  num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256)
TINY_MIXTRAL = dict(model_type="mixtral", architectures=["MixtralForCausalLM"], hidden_size=64, intermediate_size=96,
                    num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, vocab_size=256,
                    num_local_experts=4, num_experts_per_tok=2)
SMALL_LSTM = {"family": "lstm", "name": "lstm-small", "vocab_size": 500, "embed_dim": 128, "hidden": 128,
              "layers": 2}
MEASURE = dict(steps=2, warmup=1, timeout_s=180, threads=1)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return tmp_path_factory.mktemp("profiler")


@pytest.fixture(scope="module")
def lockdir(tmp_path_factory):
    return tmp_path_factory.mktemp("locks")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from costmodel.storage import Store

    return Store(tmp_path_factory.mktemp("db") / "costmodel.db")


def rows(result):
    return {r["quantity"]: r for r in result.comparison}


def check_ok(res):
    assert res.status == "ok", f"{res.status}: {res.message}\n{res.stderr_tail}"


REQUESTS = {
    "gpt2": ProfileRequest(TINY_GPT2, {"task": "train", "batch": 2, "seq": 32, "precision": "fp32",
                                       "attention": "eager", "dropout": False, "optimizer": "adamw"}, **MEASURE),
    "llama": ProfileRequest(TINY_LLAMA, {"task": "infer", "batch": 2, "prompt": 16, "generate": 4, "precision": "fp32"},
                            fvcore=False, **MEASURE),
    "mixtral": ProfileRequest(TINY_MIXTRAL, {"task": "train", "batch": 2, "seq": 32, "precision": "amp-bf16",
                                             "lora_rank": 4, "lora_targets": "q_proj,v_proj"}, fvcore=False, **MEASURE),
    "lstm": ProfileRequest(SMALL_LSTM, {"task": "train", "batch": 2, "seq": 16, "precision": "fp32", "optimizer": "sgd"},
                           fvcore=False, **MEASURE),
}
CNN_ARGS = ["profile", "--model", "simple-cnn-28", "--task", "train", "--batch", "8", "--precision", "fp32",
            "--optimizer", "sgd-momentum", "--steps", "2", "--warmup", "1", "--threads", "1", "--json"]


@pytest.fixture(scope="module")
def started(tmp_path_factory, store):
    """Start the model runs at once, each in its own profiler directory (so its own device lock), to fit the
    CI time budget on 2 cores: most of a tiny run is importing torch/transformers in the child. No test
    asserts a time value, so the runs may share the CPU. The CNN goes through the real CLI in a subprocess."""
    import subprocess
    import sys

    handles = {name: start_profile(req, store=store, base_dir_path=tmp_path_factory.mktemp(name),
                                   lock_dir=tmp_path_factory.mktemp(name + "-locks"))
               for name, req in REQUESTS.items()}
    out_dir = tmp_path_factory.mktemp("records")
    env = {**os.environ, runner_mod.DIR_ENV: str(tmp_path_factory.mktemp("cnn")),
           "COSTMODEL_LOCK_DIR": str(tmp_path_factory.mktemp("cnn-locks"))}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = subprocess.Popen([sys.executable, "-m", "costmodel", *CNN_ARGS, "--out", str(out_dir)], cwd=root, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return handles, (cli, out_dir)


@pytest.fixture(scope="module")
def gpt2_train(started):
    return started[0]["gpt2"].wait()


@pytest.fixture(scope="module")
def llama_infer(started):
    return started[0]["llama"].wait()


@pytest.fixture(scope="module")
def mixtral_lora(started):
    return started[0]["mixtral"].wait()


@pytest.fixture(scope="module")
def lstm_train(started):
    return started[0]["lstm"].wait()


@pytest.fixture(scope="module")
def cnn_cli(started):
    """simple-cnn-28 through ``python -m costmodel profile ... --json``."""
    cli, out_dir = started[1]
    stdout, stderr = cli.communicate(timeout=300)
    return cli.returncode, json.loads(stdout), out_dir, stderr


# ---- transformer (dense), eager attention: exact against hand arithmetic --------------------------------------------

def test_gpt2_train_measured_and_compared(gpt2_train):
    res = gpt2_train
    check_ok(res)
    m, r = res.measured, rows(res)
    L, h, V, P = 2, 64, 1000, 128
    # GPT-2 parameters: wte V*h + wpe P*h + per block (12h^2 + 13h) + final LayerNorm 2h = 172,288
    hand_params = V * h + P * h + L * (12 * h * h + 13 * h) + 2 * h
    assert m["params_total"] == hand_params == res.predicted["params_total"]
    assert r["params (total)"]["error_pct"] == 0
    # forward FLOPs, T = 2*32 tokens: per block 2*T*12h^2 (matmuls) + 4*b*s^2*h (eager scores and P@V);
    # LM head 2*T*h*V -> 21,823,488
    b, s = 2, 32
    T = b * s
    hand_fwd = L * (2 * T * 12 * h * h + 4 * b * s * s * h) + 2 * T * h * V
    assert m["counter_forward_flops"] == hand_fwd
    assert res.predicted["flops_forward"] == pytest.approx(hand_fwd, rel=0.01)
    # every weight trains: backward = dX + dW for each matmul and 2x the attention core = 2 x forward
    assert m["counter_backward_flops"] == 2 * hand_fwd
    # fvcore counts multiply-adds (x2 here) plus LayerNorms: a little above FlopCounterMode
    assert 2 * m["fvcore_forward_macs"] == pytest.approx(hand_fwd, rel=0.02)
    assert 2 * m["fvcore_forward_macs"] >= hand_fwd
    assert "model.transformer" in m["fvcore_by_module"]
    # the per-module table of both counters (Profile page): the LM head row is 2*T*h*V per forward in fvcore's
    # FLOPs, and FlopCounterMode's row holds forward + backward (dX and dW: 3x the forward)
    from costmodel.profiler.compare import module_flops_rows

    mods = {row["module"]: row for row in module_flops_rows(m)}
    assert mods["lm_head"]["fvcore_flops"] == 2 * T * h * V == 2 * mods["lm_head"]["fvcore_macs"]
    assert mods["lm_head"]["torch_flops"] == 3 * 2 * T * h * V
    assert mods["(whole model)"]["torch_flops"] == 3 * hand_fwd
    assert mods["(whole model)"]["fvcore_macs"] == m["fvcore_forward_macs"]
    # memory: AdamW fp32 keeps weights + 2 states = 12 bytes per parameter alive at every step start
    assert m["peak_allocated_bytes"] > 12 * hand_params
    # the estimator models this eager fp32 step; torch.profiler's allocation events are the reference.
    # Measured +6.6% (3.85 MiB measured, 4.11 MiB predicted): at this size the 250 KB logits/loss
    # buffers (T*V*(4+8) bytes, fitted on CUDA, where GPT-2 fp32 is -3.7%) dominate the error
    assert r["peak memory"]["error_pct"] == pytest.approx(0, abs=8)
    assert max(m["memory_timeline"]["bytes"]) == m["peak_allocated_bytes"]
    # timing: 2 measured steps, median between min and max
    assert len(m["step_s_all"]) == 2 and m["step_s_min"] <= m["step_s"] <= m["step_s_max"]
    assert m["tokens_per_s"] == pytest.approx(T / m["step_s"])
    assert {"step time", "tokens/s", "weights", "backward FLOPs"} <= set(r)
    assert m["nvml_available"] is False and "no NVIDIA GPU" in m["nvml_reason"]
    assert res.environment["torch"] and res.environment["python"] and res.device.startswith("cpu: ")


def test_progress_file_is_pollable(gpt2_train):
    lines = [json.loads(x) for x in open(os.path.join(gpt2_train.run_dir, "progress.jsonl"))]
    stages = [x["stage"] for x in lines]
    assert stages[0] == "start" and stages[-1] == "done"
    assert {"build", "measure", "flops"} <= set(stages)
    fractions = [x["fraction"] for x in lines]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0


# ---- Llama with GQA: prefill + decode with a KV cache, fused (SDPA) attention ---------------------------------------

def test_llama_gqa_infer_prefill_decode_kv_cache(llama_infer):
    res = llama_infer
    check_ok(res)
    m = res.measured
    h, f, L, H, KV, d, V, b, prompt, gen = 64, 128, 2, 4, 2, 16, 256, 2, 16, 4
    T = b * prompt
    # prefill: q,o 2*T*h*h; k,v 2*T*h*KV*d; gated MLP 3*2*T*h*f; attention 4*b*H*s^2*d (query heads count);
    # LM head on the last position only 2*b*h*V -> 5,046,272. The CPU flash-attention kernel is counted by
    # costmodel's formula (FlopCounterMode has none); GQA shapes work.
    hand = L * (2 * 2 * T * h * h + 2 * 2 * T * h * KV * d + 3 * 2 * T * h * f + 4 * b * H * prompt ** 2 * d) + 2 * b * h * V
    assert m["counter_forward_flops"] == hand
    assert res.predicted["flops_forward"] == pytest.approx(hand, rel=0.01)
    # KV cache after prompt + generate positions: 2 (K,V) * L * b * KV * d * 20 positions * 4 bytes = 20,480
    assert m["kv_cache_bytes"] == 2 * L * b * KV * d * (prompt + gen) * 4 == res.predicted["kv_cache_bytes"]
    assert m["counter_decode_per_token_flops"] == pytest.approx(res.predicted["flops_decode_per_token"], rel=0.01)
    assert m["prefill_s"] > 0 and m["decode_per_token_s"] > 0
    assert len(m["decode_per_token_s_all"]) == 2
    assert {"prefill (last-position logits) FLOPs", "KV cache", "prefill time", "decode time per token"} <= set(rows(res))


# ---- MoE + LoRA + autocast ------------------------------------------------------------------------------------------

def test_mixtral_lora_amp(mixtral_lora):
    res = mixtral_lora
    check_ok(res)
    m = res.measured
    L, h, H, KV, d, f, E, k, V, r_ = 2, 64, 4, 2, 16, 96, 4, 2, 256, 4
    # LoRA on q_proj (64->64) and v_proj (64->32): r*(d_in+d_out) per module = 4*(128 + 96) per layer = 1,792
    assert m["params_trainable"] == L * r_ * ((h + H * d) + (h + KV * d)) == res.predicted["params_trainable"]
    # forward: experts 2*T*k*3*h*f (counted through aten._grouped_mm, the transformers-5 experts kernel, with
    # costmodel's formula) + router 2*T*h*E + attention projections and core + LM head + LoRA 2*T*r*(d_in+d_out)
    b, s = 2, 32
    T = b * s
    per_layer = (2 * T * k * 3 * h * f + 2 * T * h * E + 2 * 2 * T * h * h + 2 * 2 * T * h * KV * d
                 + 4 * b * H * s * s * d + 2 * T * r_ * ((h + H * d) + (h + KV * d)))
    hand = L * per_layer + 2 * T * h * V
    assert m["counter_forward_flops"] == hand
    assert res.predicted["flops_forward"] == pytest.approx(hand, rel=0.01)
    # frozen weights form no weight gradients: backward is well below 2 x forward
    assert m["counter_backward_flops"] < 1.5 * hand
    # ... and autograd skips the input gradients of the first block's q/k/v projections (and of their
    # adapters' A), whose input, the frozen embedding's output, needs no gradient: the estimator agrees exactly
    assert res.predicted["flops_backward"] == pytest.approx(m["counter_backward_flops"], rel=1e-9)
    assert any("LoRA rank 4" in n for n in res.notes)


# ---- CNN through the CLI --------------------------------------------------------------------------------------------

def test_cnn_via_cli_json(cnn_cli):
    code, out, out_dir, stderr = cnn_cli
    assert code == 0, (out.get("message"), stderr)
    m = out["measured"]
    # published_params of the preset: hand count 320 + 18,496 + 1,179,776 + 1,290
    assert m["params_total"] == 1_199_882
    # convs 2*b*Ho*Wo*Co*Ci*k*k: 2*8*26*26*32*1*9 + 2*8*24*24*64*32*9; linears 2*8*9216*128 + 2*8*128*10
    hand = 2 * 8 * 26 * 26 * 32 * 9 + 2 * 8 * 24 * 24 * 64 * 32 * 9 + 2 * 8 * 9216 * 128 + 2 * 8 * 128 * 10
    assert m["counter_forward_flops"] == hand
    assert 2 * m["fvcore_forward_macs"] == hand  # no norm layers here: fvcore agrees exactly
    # the first conv's input needs no gradient: backward = 2 x forward - conv1's dX
    assert m["counter_backward_flops"] == 2 * hand - 2 * 8 * 26 * 26 * 32 * 9
    qs = {r["quantity"] for r in out["comparison"]}
    assert {"params (total)", "forward FLOPs", "peak memory", "step time", "samples/s"} <= qs
    files = list(out_dir.glob("*.json"))
    assert len(files) == 1
    rec = json.loads(files[0].read_text())
    assert {"device", "model", "task", "workload", "measured", "predicted", "environment", "status"} <= set(rec)


# ---- LSTM: the RNN kernel blind spot --------------------------------------------------------------------------------

def test_lstm_train_counts_onednn_kernel(lstm_train):
    res = lstm_train
    check_ok(res)
    m = res.measured
    V, E, hdim, L, T = 500, 128, 128, 2, 2 * 16
    # LSTM: 2*T*4h*(d_in + h) per layer; head 2*T*h*V -> 20,873,216 (aten.mkldnn_rnn_layer, which
    # FlopCounterMode alone counts as 0, is counted by costmodel's formula)
    hand = L * 2 * T * 4 * hdim * (E + hdim) + 2 * T * hdim * V
    assert m["counter_forward_flops"] == hand
    assert res.predicted["flops_forward"] == pytest.approx(hand, rel=0.01)
    assert "counter_blind_spot" not in m
    assert any("onednn" in n for n in res.notes)  # the prediction used the CPU kernel's memory model


def test_rnn_blind_spot_detected_and_reported():
    # plain FlopCounterMode (no costmodel formulas) counts nothing for the oneDNN LSTM kernel
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from costmodel.profiler.counters import flop_counter, rnn_blind_spot

    lstm = torch.nn.LSTM(16, 16, 2, batch_first=True)
    x = torch.randn(2, 5, 16, requires_grad=True)
    with FlopCounterMode(display=False) as plain:
        lstm(x)
    assert plain.get_total_flops() == 0
    assert rnn_blind_spot(lstm, plain) == ["LSTM"]
    with flop_counter() as ours:
        lstm(x)
    # 2 layers * 2*T*4h*(d_in + h), T = 10 tokens, h = d_in = 16
    assert ours.get_total_flops() == 2 * 2 * 10 * 4 * 16 * 32
    assert rnn_blind_spot(lstm, ours) == []
    # and a blind spot turns the FLOP row into "not compared", the estimator's number standing
    rows_ = comparison_rows({"flops_forward": 1e6, "params_total": 10}, {"params_total": 10,
                            "counter_forward_flops": 0, "counter_blind_spot": ["rnn"]}, "train")
    fl = next(r for r in rows_ if r["quantity"] == "forward FLOPs")
    assert fl["measured"] is None and fl["error_pct"] is None and "not compared" in fl["note"]


# ---- safety -----------------------------------------------------------------------------------------------------------

def test_timeout_kills_the_child(base, lockdir):
    t0 = time.time()
    res = run_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"},
                                     timeout_s=2, fault="hang"), base_dir_path=base, lock_dir=lockdir)
    assert res.status == "timeout" and "time limit of 2 s" in res.message
    assert time.time() - t0 < 15
    pid = int(open(os.path.join(res.run_dir, "pid")).read())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert lock_holder("cpu", lockdir) is None  # the lock died with the child


def test_refused_when_predicted_memory_does_not_fit(base, monkeypatch):
    # GPT-2 small, batch 64 x 1024, AdamW fp32: the estimator predicts tens of GiB
    res = run_profile(ProfileRequest("gpt2", {"task": "train", "batch": 64, "seq": 1024, "precision": "fp32"}),
                      base_dir_path=base)
    assert res.status == "refused" and "exceeds" in res.message and "GiB" in res.message
    assert res.predicted["peak_bytes"] > 20 * 2**30
    # a tiny model refused too when the machine says only 1 MiB is free
    monkeypatch.setattr(runner_mod, "available_memory_bytes", lambda device, entry=None: (2**20, "test: 1 MiB free"))
    res = run_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"}),
                      base_dir_path=base)
    assert res.status == "refused" and "test: 1 MiB free: 0.00 GiB" in res.message


def test_refused_unsupported_precision(base):
    res = run_profile(ProfileRequest(TINY_LLAMA, {"task": "infer", "precision": "int4"}), base_dir_path=base)
    assert res.status == "refused" and "int4" in res.message


@pytest.mark.parametrize("fault,status,text", [("abort", "error", "SIGABRT"), ("raise", "error", "injected failure"),
                                               ("oom", "oom", "can't allocate memory")])
def test_crashing_child_gives_a_result(base, lockdir, fault, status, text):
    res = run_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"},
                                     timeout_s=60, fault=fault), base_dir_path=base, lock_dir=lockdir)
    assert res.status == status and text in res.message, (res.message, res.stderr_tail)
    assert res.measured == {} and res.comparison == []


def _wait_for_lock(lockdir, timeout=20):
    deadline = time.time() + timeout
    while lock_holder("cpu", lockdir) is None and time.time() < deadline:
        time.sleep(0.05)
    return lock_holder("cpu", lockdir)


def test_one_run_per_device_and_cancel_from_another_handle(base, lockdir):
    h = start_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"},
                                     timeout_s=60, fault="hang"), base_dir_path=base, lock_dir=lockdir)
    holder = _wait_for_lock(lockdir)
    assert holder and holder["run_id"] == h.run_id
    # another profiler directory does not make another device: the lock is machine-wide
    second = run_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"}),
                         base_dir_path=base / "elsewhere", lock_dir=lockdir)
    assert second.status == "refused" and h.run_id in second.message
    assert not h.done() and h.progress()["stage"] == "start"
    # a dashboard rerun lost the handle: rebuild it from the run directory and cancel through it
    again = attach(h.run_dir)
    assert not again.done() and again.progress()["stage"] == "start"
    res = again.cancel()
    assert res.status == "cancelled" and res.model == "simple-cnn-28"
    assert h.wait(timeout=10) is not None
    assert lock_holder("cpu", lockdir) is None


@pytest.fixture(scope="module")
def orphan(tmp_path_factory):
    """A hanging run with a 2 s limit whose parent never polls it (its own profiler dir: it holds that lock)."""
    own = tmp_path_factory.mktemp("orphan")
    h = start_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"},
                                     timeout_s=2, fault="hang"), base_dir_path=own, lock_dir=own / "locks")
    return h, own / "locks"


def test_orphan_started(orphan):
    # the child itself holds its device lock while it runs (checked again after its deadline below)
    h, own = orphan
    assert _wait_for_lock(own)["run_id"] == h.run_id


def test_data_parallel_refused_while_device_busy(base, lockdir):
    from costmodel.profiler.distributed import run_data_parallel

    h = start_profile(ProfileRequest("simple-cnn-28", {"task": "train", "batch": 1, "precision": "fp32"},
                                     timeout_s=60, fault="hang"), base_dir_path=base, lock_dir=lockdir)
    assert _wait_for_lock(lockdir)
    dp = run_data_parallel("mlp-mnist", {"task": "train", "precision": "fp32"}, base_dir_path=base, lock_dir=lockdir)
    assert dp["status"] == "refused" and h.run_id in dp["message"]
    assert h.cancel().status == "cancelled"


def test_request_validation():
    with pytest.raises(InputError) as err:
        ProfileRequest("gpt2", {"task": "train"}, steps=0)
    assert err.value.field == "steps"
    with pytest.raises(InputError) as err:
        ProfileRequest("gpt2", {"batch": 0})
    assert err.value.field == "batch"
    with pytest.raises(InputError) as err:
        ProfileRequest("gpt2", device="tpu")
    assert err.value.field == "device"


# ---- storage, calibration, figures ------------------------------------------------------------------------------------

def test_runs_are_stored(store, gpt2_train, lstm_train):
    recs = store.list_measurements(device=gpt2_train.device)
    models = {r["model"] for r in recs}
    assert gpt2_train.model in models and lstm_train.model in models
    rec = next(r for r in recs if r["run_id"] == gpt2_train.run_id)
    assert rec["measured"]["params_total"] == gpt2_train.measured["params_total"]
    assert rec["workload"]["batch"] == 2 and rec["environment"]["torch"]


def test_calibration_recovers_known_efficiency():
    # records whose "measured" times were generated by the estimator with a known Efficiency; the fit
    # must find parameters that reproduce them (reference: the generating parameters' predictions)
    from known_efficiency import known_efficiency_records

    from costmodel.profiler.calibrate import fit_efficiency

    records = known_efficiency_records(infer_model=TINY_LLAMA)
    cal = fit_efficiency(records, device="test cpu")
    assert cal["rmse_log_before"] > 0.3  # the defaults are far from the truth
    # the fit takes only the fields the 5 times determine (3 here: bandwidth moves only the CNN step, together with
    # matmul_fp32, so it is left at its default), which reproduces the times to a few percent, not exactly
    assert cal["rmse_log_after"] < 0.05 and cal["dof"] == 5 - len(cal["fitted_fields"]) >= 1
    assert "matmul_fp32" in cal["fitted_fields"] and "matmul" not in cal["fitted_fields"]  # all fp32 runs
    assert all(abs(r["error_after_pct"]) < 5 for r in cal["rows"])


def test_calibration_on_measured_runs(store, gpt2_train, lstm_train, mixtral_lora, llama_infer, base):
    from costmodel.profiler.calibrate import calibrate_device
    from costmodel.profiler.figures import calibration_figure, residuals_figure

    device = gpt2_train.device
    cal = calibrate_device(store, device)
    assert cal["n_runs"] >= 4 and cal["rmse_log_after"] < cal["rmse_log_before"]
    assert store.latest_calibration(device)["efficiency"] == cal["efficiency"]
    # later predictions use it: the calibrated prediction of a stored run equals the fit's "after" value
    req = ProfileRequest(**{k: v for k, v in gpt2_train.request.items() if k != "config"})
    _, _, pred, _, _ = runner_mod.predict(req, efficiency="calibrated", store=store, label=device)
    row = next(r for r in cal["rows"] if r["run_id"] == gpt2_train.run_id)
    assert pred["step_s"] == pytest.approx(row["after_s"], rel=1e-9)
    assert pred["efficiency_source"].startswith("calibrated on")
    fig = calibration_figure(cal)
    assert len(fig.data) == 2 and list(fig.data[1].y) == [r["error_after_pct"] for r in cal["rows"]]
    assert len(residuals_figure(cal).data[0].x) == len(cal["rows"])


def test_figures_from_results(gpt2_train, llama_infer):
    from costmodel.profiler.figures import (error_bars_figure, error_summary, memory_timeline_figure, parity_figure,
                                            step_times_figure)

    fig = parity_figure([gpt2_train, llama_infer])
    params = next(t for t in fig.data if t.name == "params (total)")
    assert sorted(params.x) == sorted([gpt2_train.measured["params_total"], llama_infer.measured["params_total"]])
    assert fig.layout.xaxis.type == "log"
    # error summary by hand on synthetic rows: errors +10, -20, +40 -> median +10, min -20, max +40
    fake = [{"model": "m", "comparison": [{"quantity": "q", "unit": "s", "predicted": p, "measured": 1.0,
                                           "error_pct": error_pct(p, 1.0)}]} for p in (1.1, 0.8, 1.4)]
    s = error_summary(fake)[0]
    assert (s["n"], round(s["median_pct"], 6), round(s["min_pct"], 6), round(s["max_pct"], 6)) == (3, 10, -20, 40)
    bars = error_bars_figure(fake)
    assert list(bars.data[0].y) == [pytest.approx(10)]
    tl = memory_timeline_figure(gpt2_train)
    assert max(tl.data[0].y) == pytest.approx(gpt2_train.measured["peak_allocated_bytes"] / 2**20)
    steps = step_times_figure(llama_infer)
    assert [t.name for t in steps.data] == ["measured prefill", "measured decode_per_token"]
    assert list(steps.data[0].y) == pytest.approx([v * 1e3 for v in llama_infer.measured["prefill_s_all"]])


# ---- data parallel ------------------------------------------------------------------------------------------------------

def test_data_parallel_two_processes_gloo(base, lockdir):
    from costmodel.collectives import Link, allreduce_s
    from costmodel.profiler.distributed import fit_ring, run_data_parallel
    from costmodel.profiler.figures import allreduce_figure

    mlp = {"family": "mlp", "name": "mlp-tiny", "input_dim": 64, "hidden": [64], "output_dim": 10}
    dp = run_data_parallel(mlp, {"task": "train", "batch": 8, "precision": "fp32", "optimizer": "sgd"},
                           world_size=2, steps=2, repeats=3, timeout_s=120, base_dir_path=base, lock_dir=lockdir)
    assert dp["status"] == "ok", dp.get("log_tail")
    m = dp["measured"]
    assert m["backend"] == "gloo" and m["world_size"] == 2
    # gradients: 64*64+64 + 64*10+10 = 4,810 fp32 values = 19,240 bytes
    assert m["grad_bytes"] == 4 * (64 * 64 + 64 + 64 * 10 + 10)
    assert m["params_in_sync"]  # DDP averaged the gradients: both ranks hold the same weights
    assert m["step_s"] > 0 and all(a["median_s"] > 0 for a in m["allreduce"])
    # ring model: each of n=2 ranks moves 2(n-1)/n x buffer = 1 x buffer
    assert dp["predicted"]["ring_bytes_per_device"] == m["grad_bytes"]
    assert dp["predicted"]["allreduce_s"] == allreduce_s(m["grad_bytes"], 2, Link(dp["predicted"]["link_bandwidth_bytes_per_s"],
                                                                                  dp["predicted"]["latency_s"]))
    assert {r["quantity"] for r in dp["comparison"]} >= {"all-reduce of the gradients (catalog link)"}
    assert len(allreduce_figure(dp).data[0].x) == len(m["allreduce"])
    # the line fit itself, on exact ring-model points (bandwidth 1e9 B/s, latency 1e-4 s, n=4)
    pts = [(x, allreduce_s(x, 4, Link(1e9, 1e-4))) for x in (1e3, 1e5, 1e7)]
    fit = fit_ring(pts, 4)
    assert fit["bandwidth_bytes_per_s"] == pytest.approx(1e9) and fit["latency_s"] == pytest.approx(1e-4)


def test_profiler_import_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, costmodel.profiler, costmodel.profiler.figures, costmodel.cli; " \
           "costmodel.cli.build_parser(); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.stdout.strip() == "False", out.stderr


def test_orphan_run_ends_itself_at_its_deadline(orphan):
    # nobody polled the handle, so nobody killed the child: its watchdog must have ended it 3 s after the
    # 2 s limit, writing a "timeout" result (the other tests ran meanwhile)
    h, own = orphan
    result_file = h.run_dir / "result.json"
    deadline = time.time() + 20
    while not result_file.exists() and time.time() < deadline:
        time.sleep(0.1)
    raw = json.loads(result_file.read_text())
    assert raw["status"] == "timeout" and "watchdog" in raw["message"]
    time.sleep(0.2)
    assert h.process.poll() == 124
    assert lock_holder("cpu", own) is None
