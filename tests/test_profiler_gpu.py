"""GPU logic of the profiler on a CPU-only machine: NVML stubbed (tests/nvml_stub.py) with several GPUs in an
order that is not CUDA's, a fake CUDA_VISIBLE_DEVICES, MIG slices, a cgroup that hides the GPU. References: the
CUDA driver's rules for CUDA_VISIBLE_DEVICES (indices / GPU- / MIG- UUID prefixes; an invalid item ends the list,
a repeated one empties it -- the same rules as torch.cuda._parse_visible_devices), NVML names and memory totals
of real cards, the fused SDPA kernels' schemas (run on meta tensors)."""

from __future__ import annotations

import os
import sys
import time

import pytest

from nvml_stub import A100_40, A100_80, H100, L40, FakeNvml, gpu

U = {k: f"GPU-{k}{'0' * 7}-1111-2222-3333-444455556666" for k in "abcd"}
MIG1 = "MIG-9a9a9a9a-1111-2222-3333-444455556666"
MIG2 = "MIG-8b8b8b8b-1111-2222-3333-444455556666"


def shuffled_inventory():
    """NVML (PCI) order: an L40, an H100, an A100-40GB, an A100-80GB with MIG (two 1g.10gb slices), an H100."""
    return [gpu(U["a"], L40, free=40e9), gpu(U["b"], H100, free=70e9, watts=400.0, procs={os.getpid(): 3 * 2**30}),
            gpu(U["c"], A100_40, free=30e9),
            gpu(U["d"], A100_80, free=80e9, mig=[
                {"uuid": MIG1, "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "total": 10200547328, "free": 9e9},
                {"uuid": MIG2, "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb", "total": 10200547328, "free": 9e9}])]


@pytest.fixture
def nvml(monkeypatch):
    fake = FakeNvml(shuffled_inventory())
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    for var in ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER"):
        monkeypatch.delenv(var, raising=False)
    return fake


# ---- CUDA_VISIBLE_DEVICES and the CUDA -> NVML map ---------------------------------------------------------------

def test_parse_visible_devices_follows_the_driver():
    from costmodel.profiler.gpus import parse_visible_devices as p

    assert p(None) is None
    assert p("") == [] and p("-1") == []
    assert p("2,0") == [2, 0]
    assert p("1gpu2,3") == [1, 3]  # strtoul: leading digits count
    assert p("0,x,1") == [0]  # an unparsable item ends the list
    assert p("0,-1,1") == [0]  # so does a negative one
    assert p("1,1") == []  # a repeated index empties it
    assert p("GPU-ab12,GPU-cd34") == ["GPU-ab12", "GPU-cd34"]
    assert p("GPU-ab12,3") == ["GPU-ab12"]  # another kind of item ends a UUID list
    assert p("MIG-ab12") == ["MIG-ab12"]


def test_cuda_devices_map_to_nvml_by_visible_devices(nvml, monkeypatch):
    from costmodel.profiler.gpus import describe, visible_devices

    inv_env = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    vis = visible_devices(env=inv_env)
    # unset: every whole GPU, and one MIG slice of the MIG-enabled GPU, in PCI order
    assert [d["uuid"] for d in vis["devices"]] == [U["a"], U["b"], U["c"], MIG1]
    assert all(d["mapping_certain"] for d in vis["devices"][:3])
    # indices: cuda:0 is NVML 2 and cuda:1 is NVML 0 -- NOT the NVML device with the CUDA index
    env = {"CUDA_VISIBLE_DEVICES": "2,0", "CUDA_DEVICE_ORDER": "PCI_BUS_ID"}
    d0, d1 = describe("cuda:0", env=env), describe("cuda:1", env=env)
    assert (d0["uuid"], d0["nvml_index"], d0["name"]) == (U["c"], 2, "NVIDIA A100-SXM4-40GB")
    assert (d1["uuid"], d1["nvml_index"]) == (U["a"], 0)
    assert describe("cuda", env=env)["uuid"] == U["c"]
    # FASTEST_FIRST (the default) with different models: the order of plain indices is not certain, and says so
    assert not describe("cuda:0", env={"CUDA_VISIBLE_DEVICES": "2,0"})["mapping_certain"]
    # UUIDs (unique prefixes, as CUDA accepts them), and MIG UUIDs
    d = describe("cuda:0", env={"CUDA_VISIBLE_DEVICES": U["b"][:12]})
    assert d["uuid"] == U["b"] and d["mapping"] == "UUID in CUDA_VISIBLE_DEVICES" and d["mapping_certain"]
    m = describe("cuda:0", env={"CUDA_VISIBLE_DEVICES": MIG2})
    assert m["uuid"] == MIG2 and m["mig"] and m["mig_profile"] == "1g.10gb" and m["parent_uuid"] == U["d"]
    # an index past the visible devices is an unknown GPU, with the reason
    far = describe("cuda:2", env=env)
    assert not far["known"] and "unknown GPU" in far["reason"] and "2 device(s)" in far["reason"]


def test_torch_uuid_matches_nvml(nvml):
    from costmodel.profiler.gpus import match_torch_uuid, nvml_inventory

    inv = nvml_inventory()
    hit = match_torch_uuid(U["c"][4:], inv)  # torch prints the UUID without the GPU- prefix
    assert hit["uuid"] == U["c"] and hit["nvml_index"] == 2
    assert match_torch_uuid(MIG1[4:], inv)["mig"]
    assert match_torch_uuid("deadbeef-0000-0000-0000-000000000000", inv) is None


def test_unknown_gpu_is_named_and_the_profile_said(monkeypatch):
    """Under cgroups NVML may see no GPU (or not this one): no silent fall-back to another GPU's numbers."""
    from costmodel.profiler import runner
    from costmodel.profiler.env import device_label, hardware_for
    from costmodel.profiler.gpus import describe

    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], available=False))
    d = describe("cuda:0")
    assert not d["known"] and d["reason"].startswith("unknown GPU") and "NVML library not found" in d["reason"]
    assert device_label("cuda:0") == "cuda:0 (unknown GPU)"
    choice = hardware_for("cuda:0")
    assert choice["hardware"] == "h100-sxm-80gb" and "predictions use h100-sxm-80gb" in choice["note"]
    avail, why = runner.available_memory_bytes("cuda:0")
    assert avail is None and "unknown GPU" in why


@pytest.mark.parametrize("name,mem,expected", [
    ("NVIDIA H100 80GB HBM3", 85520809984, "h100-sxm-80gb"),
    ("NVIDIA H100 PCIe", 85520809984, "h100-pcie-80gb"),
    ("NVIDIA A100-SXM4-40GB", 42949672960, "a100-sxm-40gb"),
    ("A100-SXM4-40GB", 42949672960, "a100-sxm-40gb"),  # drivers before R470 omit "NVIDIA "
    ("NVIDIA A100 80GB PCIe", 85899345920, "a100-pcie-80gb"),
    ("NVIDIA A100-PCIE-40GB", 42949672960, None),  # was sent to the 80 GB card
    ("NVIDIA L40", 48305799168, None),  # was sent to l4-24gb
    ("NVIDIA L40S", 48305799168, "l40s-48gb"),
    ("NVIDIA L4", 24152899584, "l4-24gb"),
    ("NVIDIA A10", 24146608128, None),  # was sent to the H100 profile
    ("NVIDIA A10G", 24146608128, "a10g-24gb"),
    ("NVIDIA RTX 6000 Ada Generation", 51527024640, None),
    ("NVIDIA H20", 102005473280, None),
    ("NVIDIA H100 80GB HBM3", 42949672960, None),  # right name, wrong memory: not that card
    ("Tesla T4", 16106127360, "t4-16gb"),
])
def test_catalog_profile_by_exact_name_and_memory(name, mem, expected):
    from costmodel.profiler.gpus import catalog_match, hardware_choice

    assert catalog_match(name, mem) == expected
    choice = hardware_choice({"known": True, "name": name, "memory_total_bytes": mem, "mig": False})
    if expected is None:
        assert choice["hardware"] == "h100-sxm-80gb"
        assert choice["note"].startswith(f"no catalog profile for {name}") and "predictions use h100-sxm-80gb" in choice["note"]
    else:
        assert choice["hardware"] == expected and choice["note"] == ""


def test_mig_slice_is_detected_and_scaled(nvml, tmp_path):
    from costmodel.catalog import load_hardware
    from costmodel.profiler.env import device_label, hardware_for
    from costmodel.profiler.gpus import describe

    os.environ["CUDA_VISIBLE_DEVICES"] = MIG1
    try:
        e = describe("cuda:0")
        assert device_label("cuda:0", e) == "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
        choice = hardware_for("cuda:0", e, tmp_path)
        assert "MIG slice 1g.10gb" in choice["note"] and "energy is not measured" in choice["note"]
        hw, full = load_hardware(choice["hardware"]), load_hardware("a100-sxm-80gb")
        # 1 of 7 GPU slices of compute; bandwidth by the slice's share of the memory; the slice's own memory
        assert hw.peak_flops("bf16") == pytest.approx(full.peak_flops("bf16") / 7)
        assert hw.memory_bytes == 10200547328
        assert hw.memory_bandwidth_bytes_per_s == pytest.approx(full.memory_bandwidth_bytes_per_s * 10200547328 / 85899345920)
    finally:
        del os.environ["CUDA_VISIBLE_DEVICES"]


def test_prediction_memory_guard_and_label_use_the_mapped_gpu(nvml, monkeypatch, tmp_path):
    """cuda:0 under CUDA_VISIBLE_DEVICES=2 is the A100-40GB (NVML 2): its profile, its free memory, its name --
    not NVML 0 (the L40, which has the most free memory)."""
    from costmodel.profiler import ProfileRequest, runner, start_profile

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2")
    req = ProfileRequest("llama-2-7b", {"task": "infer", "batch": 1, "prompt": 128, "generate": 8, "precision": "fp32"},
                         device="cuda:0")
    name, cfg, pred, _, notes = runner.predict(req)
    assert pred["hardware"] == "a100-sxm-40gb" and pred["hardware_source"].startswith("catalog match")
    avail, why = runner.available_memory_bytes("cuda:0")
    assert avail == 30e9 and "A100-SXM4-40GB" in why
    # fp32 Llama-2-7B needs ~27 GB > 90% of the A100's 30 GB free (the L40's 40 GB would have let it through)
    res = start_profile(req, base_dir_path=tmp_path, lock_dir=tmp_path / "locks").result()
    assert res.status == "refused" and "free GPU memory of NVIDIA A100-SXM4-40GB (NVML): 27.94 GiB" in res.message
    assert res.device == "NVIDIA A100-SXM4-40GB"
    # no catalog profile: the run says which profile predicts it and why
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    _, _, pred, _, notes = runner.predict(req)
    assert pred["hardware"] == "h100-sxm-80gb" and any(n.startswith("no catalog profile for NVIDIA L40") for n in notes)


# ---- device locks ----------------------------------------------------------------------------------------------------

def test_lock_keys_are_the_physical_device(nvml, monkeypatch):
    import socket

    from costmodel.profiler.locks import device_key

    monkeypatch.setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
    assert device_key("cuda") == device_key("cuda:0") == U["a"]
    assert device_key("cuda:1") == U["b"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert device_key("cuda:0") == U["b"]  # the same GPU as cuda:1 without CUDA_VISIBLE_DEVICES: the same lock
    assert device_key("cpu") == "cpu-" + socket.gethostname()
    monkeypatch.setitem(sys.modules, "pynvml", FakeNvml([], available=False))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-0badc0de")
    assert device_key("cuda:0") == "cuda-unknown-GPU-0badc0de"


def test_lock_directory_is_machine_wide_and_safe(monkeypatch, tmp_path):
    import stat

    from costmodel.profiler import locks

    shared = tmp_path / "shared-locks"
    monkeypatch.delenv(locks.LOCK_DIR_ENV, raising=False)
    monkeypatch.setattr(locks, "DEFAULT_LOCK_DIR", str(shared))
    d = locks.lock_dir()
    assert d == shared and stat.S_IMODE(os.stat(d).st_mode) == 0o1777  # sticky, every user may create a lock
    fd, holder = locks.acquire("GPU-x", None, "run-1", "profile")
    assert fd is not None and holder is None
    assert stat.S_IMODE(os.stat(shared / "GPU-x.lock").st_mode) == 0o666  # other users can take it later
    fd2, holder2 = locks.acquire("GPU-x", None, "run-2", "probe")
    assert fd2 is None and holder2["run_id"] == "run-1" and holder2["pid"] == os.getpid()
    locks.release(fd)
    assert locks.holder("GPU-x") is None
    # a lock file replaced by a symlink is not followed; a lock directory that is a symlink is refused
    (shared / "GPU-y.lock").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(OSError):
        locks.acquire("GPU-y")
    link = tmp_path / "link"
    link.symlink_to(shared)
    with pytest.raises(locks.LockError, match="not a directory"):
        locks.lock_dir(link)


def test_probe_takes_the_device_lock(tmp_path):
    from costmodel.profiler import locks
    from costmodel.profiler.probe import run_probe

    fd, _ = locks.acquire(locks.host_key(), tmp_path, "someone-else", "profile")
    try:
        with pytest.raises(RuntimeError, match="another run is using cpu.*someone-else"):
            run_probe("cpu", lock_dir=tmp_path)
    finally:
        locks.release(fd)


# ---- NVML sampling by UUID, energy window, this process's memory --------------------------------------------------

def test_sampler_reads_the_right_gpu_over_an_energy_window(nvml):
    from costmodel.profiler.nvml import NvmlSampler
    from costmodel.profiler.worker import energy_window

    nvml.gpus[0]["watts"] = 111.0  # NVML 0 -- the GPU a by-index sampler of cuda:0 would have read
    s = NvmlSampler(U["b"], interval_s=0.01)  # the H100 at NVML index 1, drawing 400 W
    s.start()
    assert s.available
    steps = energy_window(lambda: time.sleep(0.05), lambda: None, s, min_s=2.0)
    s.stop()
    out = s.summary()
    assert out["energy_window_s"] >= 2.0 and out["energy_window_steps"] == steps >= 2.0 / 0.06
    assert out["energy_method"] == "NVML total energy counter over the window"
    assert out["energy_j"] == pytest.approx(400.0 * out["energy_window_s"], rel=0.02)
    assert out["energy_j_per_step"] == pytest.approx(out["energy_j"] / steps)
    assert out["power_w_mean"] == pytest.approx(400.0)
    assert out["nvml_process_used_max_bytes"] == 3 * 2**30  # this process's own usage, not the device's


def test_sampler_without_counter_and_on_mig(nvml):
    from costmodel.profiler.nvml import NvmlSampler

    nvml.gpus[2]["energy"] = False
    s = NvmlSampler(U["c"], interval_s=0.01)
    s.start()
    s.mark_window()
    time.sleep(0.3)
    s.end_window(3)
    s.stop()
    out = s.summary()
    assert out["energy_method"].startswith("trapezoid of sampled power")
    assert out["energy_j"] == pytest.approx(300.0 * out["energy_window_s"], rel=0.05)
    assert out["nvml_process_used_max_bytes"] is None and "not in NVML's process list" in out["nvml_process_used_reason"]
    m = NvmlSampler(MIG1, interval_s=0.01, mig=True)
    m.start()
    m.mark_window()
    m.end_window(2)
    m.stop()
    out = m.summary()
    assert "energy_j" not in out and "whole board" in out["energy_reason"]
    unknown = NvmlSampler(None)  # the device torch uses is not in NVML (cgroups)
    unknown.start()
    assert not unknown.available and unknown.summary()["nvml_reason"].startswith("unknown GPU")


def test_device_total_row_prefers_this_process(nvml):
    from costmodel.profiler.compare import comparison_rows

    P = {"device_total_bytes": 10e9}
    own = comparison_rows(P, {"nvml_process_used_max_bytes": 9e9, "nvml_memory_used_max_bytes": 30e9}, "train", "cuda")
    row = next(r for r in own if r["quantity"].startswith("device total"))
    assert row["quantity"] == "device total (NVML, this process)" and row["measured"] == 9e9
    base = comparison_rows(P, {"nvml_memory_used_max_bytes": 30e9, "nvml_used_baseline_bytes": 21e9,
                               "nvml_process_used_reason": "PID namespace"}, "train", "cuda")
    row = next(r for r in base if r["quantity"].startswith("device total"))
    assert row["quantity"] == "device total (NVML used - baseline)" and row["measured"] == 9e9


# ---- FLOP formulas of the fused SDPA kernels (meta tensors: the CUDA kernels' schemas, no GPU) --------------------

def _meta(*shape):
    import torch

    return torch.empty(*shape, device="meta", dtype=torch.bfloat16)


@pytest.mark.parametrize("old_torch", [False, True])
def test_every_fused_sdpa_kernel_counts_gqa_in_model_flops(monkeypatch, old_torch):
    """flash / memory-efficient / cuDNN / overrideable, forward and backward, 8 query heads on 2 KV heads.
    ``old_torch``: torch's own SDPA formulas raise on GQA shapes (as before the SDPA GQA fix); costmodel's replace
    them, so the count still works."""
    import torch
    import torch.utils.flop_counter as tfc

    from costmodel.profiler.counters import flop_counter

    if old_torch:
        def refuse(*a, **k):
            raise AssertionError("query and key heads differ")

        monkeypatch.setattr(tfc, "sdpa_flop_count", refuse)
        monkeypatch.setattr(tfc, "sdpa_backward_flop_count", refuse)
    aten = torch.ops.aten
    b, H, KV, s, d = 2, 8, 2, 64, 32
    q, k, v, go = _meta(b, H, s, d), _meta(b, KV, s, d), _meta(b, KV, s, d), _meta(b, H, s, d)
    fwd = 2 * b * H * s * s * d * 2  # scores + P@V, every query head
    calls = {
        "flash": (lambda: aten._scaled_dot_product_flash_attention(q, k, v),
                  lambda o: aten._scaled_dot_product_flash_attention_backward(
                      go, q, k, v, o[0], o[1], o[2], o[3], o[4], o[5], 0.0, False, o[6], o[7])),
        "efficient": (lambda: aten._scaled_dot_product_efficient_attention(q, k, v, None, True),
                      lambda o: aten._scaled_dot_product_efficient_attention_backward(
                          go, q, k, v, torch.empty(0, device="meta"), o[0], o[1], o[2], o[3], 0.0,
                          [True, True, True, False])),
        "cudnn": (lambda: aten._scaled_dot_product_cudnn_attention(q, k, v, None, True),
                  None),
    }
    for name, (f, bwd) in calls.items():
        fc = flop_counter()
        with fc:
            o = f()
        assert fc.get_total_flops() == fwd, name
        if bwd is None:
            continue
        fc = flop_counter()
        with fc:
            bwd(o)
        assert fc.get_total_flops() == 2 * fwd, name  # model FLOPs: dV, dP, dQ, dK
        assert fc.costmodel_recompute["flops"] == fwd // 2, name  # the scores the kernel recomputes
    # and plain FlopCounterMode: torch's 2.5x backward (or, on an old torch, an error)
    from torch.utils.flop_counter import FlopCounterMode

    qq, kk = _meta(b, H, s, d), _meta(b, H, s, d)
    with FlopCounterMode(display=False) as plain:
        o = aten._scaled_dot_product_flash_attention(qq, kk, kk) if not old_torch else None
        if o is not None:
            aten._scaled_dot_product_flash_attention_backward(qq, qq, kk, kk, o[0], o[1], o[2], o[3], o[4], o[5], 0.0,
                                                             False, o[6], o[7])
    if not old_torch:
        assert plain.get_total_flops() == fwd + int(2.5 * fwd)


def test_varlen_kernel_formula_counts_each_sequence():
    import torch

    from costmodel.profiler.counters import _varlen_formula, sdpa_flops

    rec = {"flops": 0}
    f = _varlen_formula(False, 3, rec)
    H, KV, d = 4, 2, 16
    q, k = torch.zeros(3 + 5, H, d), torch.zeros(3 + 5, KV, d)
    cum = torch.tensor([0, 3, 8])
    got = f(q, k, k, cum, cum, 5, 5)
    assert got == sdpa_flops((1, H, 3, d), (1, KV, 3, d), (1, KV, 3, d)) + sdpa_flops((1, H, 5, d), (1, KV, 5, d),
                                                                                      (1, KV, 5, d))
    bwd = _varlen_formula(True, 6, rec)
    assert bwd(q, q, k, k, None, None, cum, cum, 5, 5) == 2 * got and rec["flops"] == got // 2
    dense = torch.zeros(2, 7, H, d)  # (b, s, H, d)
    assert f(dense, torch.zeros(2, 7, KV, d), torch.zeros(2, 7, KV, d), None, None, 7, 7) == sdpa_flops(
        (2, H, 7, d), (2, KV, 7, d), (2, KV, 7, d))


def test_cudnn_lstm_kernel_is_counted():
    import torch

    from costmodel.profiler.counters import cudnn_rnn_backward_flops, flop_counter

    T, B, E, Hd, L = 16, 2, 32, 64, 2
    ws = []
    for layer in range(L):
        din = E if layer == 0 else Hd
        ws += [torch.empty(4 * Hd, din, device="meta"), torch.empty(4 * Hd, Hd, device="meta"),
               torch.empty(4 * Hd, device="meta"), torch.empty(4 * Hd, device="meta")]
    hx = torch.empty(L, B, Hd, device="meta")
    with flop_counter() as fc:  # aten._cudnn_rnn's meta kernel: the op a CUDA LSTM runs
        torch.ops.aten._cudnn_rnn(torch.empty(T, B, E, device="meta"), ws, 4, None, hx, hx, 2, Hd, 0, L, False, 0.0,
                                  True, False, [], None)
    hand = 2 * T * B * (4 * Hd * (E + Hd) + 4 * Hd * (Hd + Hd))  # 2 * tokens * (w_ih + w_hh) per layer
    assert fc.get_total_flops() == hand
    assert cudnn_rnn_backward_flops((T, B, E), [tuple(w.shape) for w in ws]) == 2 * hand


# ---- the child's check by UUID, and the parent's second prediction -----------------------------------------------

class _FakeTorch:
    """What cuda_device() asks torch: device count, set_device, get_device_properties(i).uuid."""

    def __init__(self, uuids):
        import types

        self.set_to = None
        props = [types.SimpleNamespace(uuid=u) for u in uuids]
        self.cuda = types.SimpleNamespace(device_count=lambda: len(props), get_device_properties=lambda i: props[i],
                                          set_device=lambda i: setattr(self, "set_to", i))


def test_child_finds_its_gpu_by_the_uuid_torch_reports(nvml):
    from costmodel.profiler.build import Unsupported
    from costmodel.profiler.gpus import describe
    from costmodel.profiler.worker import cuda_device

    parent = describe("cuda:0", env={"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})  # the parent thought NVML 0 (the L40)
    job = {"request": {"device": "cuda:0"}, "gpu": parent}
    notes: list[str] = []
    fake = _FakeTorch([U["c"][4:]])  # torch: cuda:0 is the A100-40GB (FASTEST_FIRST ordered them differently)
    e = cuda_device(fake, job, notes)
    assert fake.set_to == 0 and e["uuid"] == U["c"] and e["name"] == "NVIDIA A100-SXM4-40GB" and e["driver"]
    assert any("torch says it is NVIDIA A100-SXM4-40GB" in n for n in notes)
    notes.clear()
    e = cuda_device(_FakeTorch(["deadbeef-0000-0000-0000-000000000000"]), job, notes)  # hidden from NVML (cgroups)
    assert not e["known"] and "NVML does not list the device torch uses" in e["reason"]
    assert notes and notes[0].startswith("unknown GPU")
    with pytest.raises(Unsupported, match="cuda:3 does not exist: torch sees 1"):
        cuda_device(_FakeTorch([U["a"][4:]]), {"request": {"device": "cuda:3"}}, [])


def test_parent_predicts_again_for_the_gpu_the_child_used(nvml, tmp_path):
    import json as _json

    from costmodel.profiler import ProfileRequest
    from costmodel.profiler.gpus import describe, match_torch_uuid, nvml_inventory
    from costmodel.profiler.runner import RunHandle, predict

    req = ProfileRequest("gpt2", {"task": "train", "batch": 1, "seq": 64, "precision": "bf16"}, device="cuda:0")
    parent = describe("cuda:0", env={"CUDA_DEVICE_ORDER": "PCI_BUS_ID"})
    name, cfg, pred, _, notes = predict(req, entry=parent)
    assert pred["hardware"] == "h100-sxm-80gb" and any("no catalog profile for NVIDIA L40" in n for n in notes)
    child = match_torch_uuid(U["c"][4:], nvml_inventory())
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "result.json").write_text(_json.dumps({"status": "ok", "message": "measured", "gpu": child,
                                                      "measured": {"params_total": 124439808, "step_s": 0.1},
                                                      "environment": {"device_label": child["name"]}}))
    meta = {"model": name, "label": "NVIDIA L40", "task": "train", "predicted": pred, "gpu": parent,
            "request": {**req.to_dict(), "config": cfg}, "notes": notes, "profile_dir": str(tmp_path)}
    res = RunHandle(run_dir, base=meta).result()
    assert res.device == "NVIDIA A100-SXM4-40GB" and res.predicted["hardware"] == "a100-sxm-40gb"
    assert any(n.startswith("predicted again for NVIDIA A100-SXM4-40GB") for n in res.notes)
