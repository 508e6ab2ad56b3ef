"""The hardware catalog (costmodel/assets/hardware/*.json) and its loader (costmodel.catalog)."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from costmodel.catalog import DTYPES, ENV_DIRS, Hardware, catalog_notes, hardware_from_dict, list_hardware, load_hardware
from costmodel.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
HW_DIR = ROOT / "costmodel" / "assets" / "hardware"
FILES = sorted(HW_DIR.glob("*.json"))
GiB = 2**30

EXPECTED_IDS = {
    "a100-sxm-40gb", "a100-sxm-80gb", "a100-pcie-80gb", "h100-sxm-80gb", "h100-pcie-80gb", "h200-sxm-141gb",
    "b200-sxm-192gb", "l4-24gb", "l40s-48gb", "t4-16gb", "v100-sxm-32gb", "v100-sxm-16gb", "a10g-24gb",
    "rtx-4090-24gb", "rtx-3090-24gb", "mi300x-192gb", "tpu-v4", "tpu-v5e", "tpu-v5p", "cpu-generic", "cpu-laptop",
    # 2026 additions (tests/test_hardware_2026.py checks their datasheet numbers)
    "gb200-nvl72-186gb", "b300-sxm-270gb", "h20-96gb", "h800-sxm-80gb", "mi325x-256gb", "mi355x-288gb", "gaudi3-128gb",
    "tpu-v6e", "tpu7x", "rtx-5090-32gb", "apple-m4-max-36gb", "apple-m3-ultra-96gb", "gb300-nvl72-279gb",
}
# GPUs without bf16 tensor cores: their files list bf16 at the fp32 rate
NO_BF16_TENSOR_CORES = {"v100-sxm-32gb", "v100-sxm-16gb", "t4-16gb"}
# GPUs without matrix units of a published rate: every dtype at the ALU (fp32) rate
NO_MATRIX_UNITS = {"apple-m4-max-36gb", "apple-m3-ultra-96gb"}
# fp8 at the bf16 rate by design (Gaudi 3's MME), not a sparse figure left un-halved
FP8_AT_BF16_RATE = {"gaudi3-128gb"}


def user_spec(**changes):
    """A valid user record (a copy of the L4 file under another id) with ``changes`` applied."""
    spec = json.loads((HW_DIR / "l4-24gb.json").read_text())
    spec.update(id="my-gpu", name="My GPU", source="my own measurements")
    spec.update(changes)
    return spec


def write(path, obj):
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return path


# ---------------------------------------------------------------- the catalog files


def test_catalog_has_exactly_the_expected_devices():
    assert {f.stem for f in FILES} == EXPECTED_IDS
    assert [h.id for h in list_hardware()] == sorted(EXPECTED_IDS)  # sorted by id


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_catalog_file_loads(path):
    raw = json.loads(path.read_text(encoding="utf-8"))
    hw = load_hardware(path.stem)
    assert isinstance(hw, Hardware)
    assert hw.id == raw["id"] == path.stem  # file name is the id
    assert load_hardware(str(path)) == hw  # the same file loaded by path
    assert hw.to_dict() == raw  # every key in the file is a field; nothing is dropped
    assert set(raw["peak_flops_per_s"]) <= set(DTYPES)


@pytest.mark.parametrize("hw", list_hardware(), ids=lambda h: h.id)
def test_every_record_is_sane_and_sourced(hw):
    assert hw.source.strip(), "every record says where its numbers come from"
    assert hw.notes.strip()
    assert hw.name.strip() and hw.vendor.strip()
    assert hw.kind in ("gpu", "tpu", "cpu")
    assert 1 * GiB <= hw.memory_bytes <= 1024 * GiB
    assert 1e10 <= hw.memory_bandwidth_bytes_per_s <= 1e13
    assert 0 < hw.idle_w < hw.tdp_w <= 1500
    assert hw.gpus_per_node >= 1
    assert hw.intra_node_bandwidth_bytes_per_s > 0 and hw.inter_node_bandwidth_bytes_per_s > 0
    assert 2010 <= hw.release_year <= 2030
    for v in hw.peak_flops_per_s.values():
        assert isinstance(v, (int, float)) and math.isfinite(v) and v > 0
    for d in DTYPES:
        assert hw.peak_flops(d) > 0
    if hw.kind != "cpu":
        # fp32 matrix peaks: Gaudi 3 MME 229 TFLOP/s; TPU7x bf16/6 = 385 TFLOP/s
        assert 1e12 <= hw.peak_flops("fp32") <= 4e14
        assert hw.peak_flops("bf16") <= 5e15  # dense: the largest device (B200) is 2.25e15


def test_sparse_numbers_were_halved_everywhere():
    # dense fp8 is 2x dense bf16 on Hopper/Blackwell/MI300X; a record that kept a sparse figure would show 4x
    for hw in list_hardware():
        if hw.id in FP8_AT_BF16_RATE:
            continue
        if "fp8" in hw.peak_flops_per_s and hw.kind == "gpu" and hw.vendor != "generic":
            assert hw.peak_flops("fp8") / hw.peak_flops("bf16") == pytest.approx(2, rel=0.02), hw.id


# ---------------------------------------------------------------- datasheet numbers


def test_h100_sxm_datasheet():
    # NVIDIA H100 Tensor Core GPU datasheet, SXM column (dense: the sheet prints 1,979* with sparsity)
    h100 = load_hardware("h100-sxm-80gb")
    assert h100.peak_flops("bf16") == 989.4e12
    assert h100.peak_flops("fp16") == 989.4e12
    assert h100.peak_flops("fp8") == 1978.9e12
    assert h100.peak_flops("tf32") == 494.7e12
    assert h100.peak_flops("fp32") == 66.9e12
    assert h100.memory_bandwidth_bytes_per_s == 3.35e12
    assert h100.memory_bytes == 85520809984  # NVML total of an H100 80GB HBM3 (79.65 GiB)
    assert h100.tdp_w == 700
    assert h100.intra_node_bandwidth_bytes_per_s == 450e9  # NVLink 4: 900 GB/s bidirectional


@pytest.mark.parametrize("hw_id,bandwidth,tdp", [
    ("a100-sxm-40gb", 1.555e12, 400), ("a100-sxm-80gb", 2.039e12, 400), ("a100-pcie-80gb", 1.935e12, 300)])
def test_a100_datasheet(hw_id, bandwidth, tdp):
    # NVIDIA A100 Tensor Core GPU datasheet: 312 TFLOP/s dense bf16, 156 tf32, 19.5 fp32
    a100 = load_hardware(hw_id)
    assert a100.peak_flops("bf16") == 312e12
    assert a100.peak_flops("tf32") == 156e12
    assert a100.peak_flops("fp32") == 19.5e12
    assert a100.memory_bandwidth_bytes_per_s == bandwidth
    assert a100.tdp_w == tdp
    assert "fp8" not in a100.peak_flops_per_s


def test_other_anchors():
    mi300x = load_hardware("mi300x-192gb")  # AMD MI300X data sheet
    assert (mi300x.peak_flops("bf16"), mi300x.memory_bandwidth_bytes_per_s, mi300x.tdp_w) == (1307.4e12, 5.3e12, 750)
    assert mi300x.memory_bytes == 192 * GiB
    # Google Cloud TPU docs, per chip
    v4, v5e, v5p = load_hardware("tpu-v4"), load_hardware("tpu-v5e"), load_hardware("tpu-v5p")
    assert (v4.peak_flops("bf16"), v4.memory_bytes, v4.memory_bandwidth_bytes_per_s) == (275e12, 32 * GiB, 1.2e12)
    assert (v5e.peak_flops("bf16"), v5e.peak_flops("int8")) == (197e12, 394e12)
    assert (v5e.memory_bytes, v5e.memory_bandwidth_bytes_per_s) == (16 * GiB, 8.19e11)
    assert (v5p.peak_flops("bf16"), v5p.memory_bytes, v5p.memory_bandwidth_bytes_per_s) == (459e12, 95 * GiB,
                                                                                         2.765e12)
    assert {h.kind for h in (v4, v5e, v5p)} == {"tpu"}
    h200 = load_hardware("h200-sxm-141gb")
    assert (h200.memory_bytes, h200.memory_bandwidth_bytes_per_s) == (141 * GiB, 4.8e12)
    for cpu in ("cpu-generic", "cpu-laptop"):
        hw = load_hardware(cpu)
        assert hw.kind == "cpu" and "rough" in hw.name.lower() and "rough" in hw.source.lower()


@pytest.mark.parametrize("hw", [h for h in list_hardware() if h.kind == "gpu"], ids=lambda h: h.id)
def test_tensor_core_ratios(hw):
    fp32 = hw.peak_flops("fp32")
    if hw.id in NO_MATRIX_UNITS:
        assert {d: hw.peak_flops(d) for d in DTYPES} == {d: fp32 for d in DTYPES}
        return
    assert hw.peak_flops("fp16") / fp32 > 1  # every other GPU here has fp16 tensor cores
    if hw.id in NO_BF16_TENSOR_CORES:
        assert hw.peak_flops("bf16") == fp32  # listed at the fp32 rate, as the notes say
        assert "bf16" in hw.notes
    else:
        assert 1 < hw.peak_flops("bf16") / fp32 < 40
        assert fp32 <= hw.peak_flops("tf32") <= hw.peak_flops("bf16")


# ---------------------------------------------------------------- dtype fallback


def test_missing_dtypes_fall_back_to_the_next_wider():
    a100, v100, t4, v5e = (load_hardware(i) for i in ("a100-sxm-80gb", "v100-sxm-32gb", "t4-16gb", "tpu-v5e"))
    assert a100.peak_flops("fp8") == a100.peak_flops("bf16") == 312e12  # no fp8 on Ampere
    assert t4.peak_flops("tf32") == t4.peak_flops("fp32") == 8.1e12  # no tf32 on Turing
    assert v100.peak_flops("fp8") == v100.peak_flops("fp16") == 125e12  # the faster of bf16/fp16
    assert v5e.peak_flops("fp16") == v5e.peak_flops("fp32")  # no fp16 on TPU: computed in fp32
    assert a100.peak_flops("bfloat16") == a100.peak_flops("torch.bfloat16") == 312e12  # torch spellings
    with pytest.raises(InputError) as err:
        a100.peak_flops("fp64")
    assert err.value.field == "dtype" and "bf16" in err.value.message


def test_bare_record_falls_back_to_fp32():
    hw = hardware_from_dict(user_spec(peak_flops_per_s={"fp32": 1e12}))
    assert {d: hw.peak_flops(d) for d in DTYPES} == {d: 1e12 for d in DTYPES}


# ---------------------------------------------------------------- errors


def test_unknown_id_names_hardware_and_lists_the_known_ids():
    with pytest.raises(InputError) as err:
        load_hardware("h900")
    assert err.value.field == "hardware"
    assert "h900" in err.value.message and "h100-sxm-80gb" in err.value.message
    assert str(err.value).startswith("hardware: ")


def test_missing_file_and_bad_json(tmp_path):
    with pytest.raises(InputError) as err:
        load_hardware(str(tmp_path / "nope.json"))
    assert err.value.field == "hardware" and "no such file" in err.value.message
    with pytest.raises(InputError) as err:
        load_hardware(str(write(tmp_path / "bad.json", "{not json")))
    assert err.value.field == "hardware" and "not valid JSON" in err.value.message


@pytest.mark.parametrize("field,value", [
    ("memory_bandwidth_bytes_per_s", -1),
    ("inter_node_bandwidth_bytes_per_s", -5e10),
    ("intra_node_bandwidth_bytes_per_s", 0),
    ("memory_bytes", "24GB"),
    ("memory_bytes", True),
    ("tdp_w", float("nan")),
    ("idle_w", -1),
    ("idle_w", 1e6),  # above tdp_w
    ("gpus_per_node", 0),
    ("gpus_per_node", 2.5),
    ("kind", "fpga"),
    ("source", " "),
    ("id", ""),
    ("release_year", "2023"),
])
def test_user_file_with_a_bad_field_names_the_field(tmp_path, field, value):
    path = write(tmp_path / "my.json", user_spec(**{field: value}))
    with pytest.raises(InputError) as err:
        load_hardware(str(path))
    assert err.value.field == f"hardware.{field}"
    assert str(path) in err.value.message  # says which file


def test_bad_peak_flops_tables(tmp_path):
    cases = {
        "hardware.peak_flops_per_s": {},
        "hardware.peak_flops_per_s.fp64": {"fp32": 1e12, "fp64": 1e12},
        "hardware.peak_flops_per_s.bf16": {"fp32": 1e12, "bf16": -1},
        "hardware.peak_flops_per_s.fp32": {"bf16": 1e12},  # every dtype falls back to fp32
    }
    for field, flops in cases.items():
        with pytest.raises(InputError) as err:
            load_hardware(str(write(tmp_path / "my.json", user_spec(peak_flops_per_s=flops))))
        assert err.value.field == field


def test_missing_and_unknown_keys(tmp_path):
    spec = user_spec()
    del spec["memory_bandwidth_bytes_per_s"]
    with pytest.raises(InputError) as err:
        load_hardware(str(write(tmp_path / "my.json", spec)))
    assert err.value.field == "hardware.memory_bandwidth_bytes_per_s" and "required" in err.value.message
    with pytest.raises(InputError) as err:  # a typo is reported, not silently ignored
        load_hardware(str(write(tmp_path / "my.json", user_spec(memory_bandwith_bytes_per_s=1e12))))
    assert err.value.field == "hardware.memory_bandwith_bytes_per_s"
    assert "memory_bandwidth_bytes_per_s" in err.value.message  # lists the allowed keys
    with pytest.raises(InputError) as err:
        load_hardware(str(write(tmp_path / "my.json", "[1, 2]")))
    assert err.value.field == "hardware"


# ---------------------------------------------------------------- user files


def test_user_file_from_tmp_path(tmp_path):
    spec = user_spec(memory_bytes=12 * GiB, memory_bandwidth_bytes_per_s=5e11, peak_flops_per_s={"fp32": 2e13,
                                                                                                   "fp16": 8e13})
    del spec["release_year"], spec["notes"]  # optional
    hw = load_hardware(str(write(tmp_path / "my.json", spec)))
    assert (hw.id, hw.memory_bytes, hw.memory_bandwidth_bytes_per_s) == ("my-gpu", 12 * GiB, 5e11)
    assert hw.peak_flops("fp16") == 8e13 and hw.peak_flops("bf16") == 2e13 and hw.peak_flops("fp8") == 8e13
    assert load_hardware(tmp_path / "my.json") == hw  # a Path works too
    assert hardware_from_dict(hw.to_dict()) == hw
    json.dumps(hw.to_dict())  # JSON-ready


def test_user_folder_from_environment(tmp_path, monkeypatch):
    write(tmp_path / "my.json", user_spec(id="my-gpu"))
    write(tmp_path / "h100-sxm-80gb.json", user_spec(id="h100-sxm-80gb", tdp_w=600))  # replaces the built-in
    monkeypatch.setenv(ENV_DIRS, str(tmp_path))
    assert load_hardware("my-gpu").name == "My GPU"
    assert load_hardware("h100-sxm-80gb").tdp_w == 600
    ids = [h.id for h in list_hardware()]
    assert "my-gpu" in ids and "a100-sxm-80gb" in ids and ids == sorted(ids)
    monkeypatch.delenv(ENV_DIRS)
    assert load_hardware("h100-sxm-80gb").tdp_w == 700  # the built-in again
    with pytest.raises(InputError):
        load_hardware("my-gpu")


def test_several_user_folders_and_bad_ones(tmp_path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write(a / "x.json", user_spec(id="gpu-a"))
    write(b / "y.json", user_spec(id="gpu-b"))
    monkeypatch.setenv(ENV_DIRS, f"{a}:{b}")
    assert load_hardware("gpu-a").id == "gpu-a" and load_hardware("gpu-b").id == "gpu-b"
    # a bad user folder or file is skipped and named (catalog_notes; the CLI prints them as notes): one broken
    # user file does not stop every command, and asking for its id says why it is missing
    monkeypatch.setenv(ENV_DIRS, str(tmp_path / "missing"))
    assert load_hardware("h100-sxm-80gb").id == "h100-sxm-80gb"
    assert any(ENV_DIRS in n and "missing" in n for n in catalog_notes())
    write(b / "z.json", user_spec(id="gpu-z", memory_bandwidth_bytes_per_s=-1))
    monkeypatch.setenv(ENV_DIRS, str(b))
    assert "gpu-b" in {h.id for h in list_hardware()} and "gpu-z" not in {h.id for h in list_hardware()}
    (skipped,) = catalog_notes()
    assert "z.json" in skipped and "hardware.memory_bandwidth_bytes_per_s" in skipped
    with pytest.raises(InputError) as err:
        load_hardware("gpu-z")
    assert err.value.field == "hardware" and "z.json" in err.value.message


# ---------------------------------------------------------------- loader behaviour


def test_catalog_records_are_cached_and_read_only():
    a, b = load_hardware("h100-sxm-80gb"), load_hardware("h100-sxm-80gb")
    assert a is b
    with pytest.raises(TypeError):
        a.peak_flops_per_s["bf16"] = 1.0
    with pytest.raises(AttributeError):
        a.tdp_w = 1
    assert load_hardware("h100-sxm-80gb").peak_flops("bf16") == 989.4e12


def test_import_reads_no_files():
    code = ("import costmodel.catalog as c; "
            "assert c._catalog.cache_info().currsize == 0; "
            "c.list_hardware(); assert c._catalog.cache_info().currsize == 1")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
