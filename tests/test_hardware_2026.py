"""The accelerators added for 2026 planning: datasheet numbers quoted independently of the JSON files, the fp4 dtype
and its fallback chain, the nvlink_domain_gpus field, and the price records that came with them."""

import json
import math

import pytest

import costmodel
from costmodel import costs, prices
from costmodel.catalog import (DTYPES, FALLBACK, HARDWARE_DIR, Hardware, hardware_from_dict, list_hardware,
                               load_hardware)
from costmodel.errors import InputError

GiB = 2**30
T, P = 1e12, 1e15

NEW_IDS = ("gb200-nvl72-186gb", "gb300-nvl72-279gb", "b300-sxm-270gb", "h20-96gb", "h800-sxm-80gb", "mi325x-256gb", "mi355x-288gb",
           "gaudi3-128gb", "tpu-v6e", "tpu7x", "rtx-5090-32gb", "apple-m4-max-36gb", "apple-m3-ultra-96gb")


@pytest.fixture(autouse=True)
def _no_user_overrides(monkeypatch):
    for env in (costs.ENV_PRICES, costs.ENV_GRID, "COSTMODEL_HARDWARE_DIR"):
        monkeypatch.delenv(env, raising=False)


# ---------------------------------------------------------------- datasheet numbers, per device

# (id, memory bytes, bandwidth B/s, dense bf16, dense fp8, dense fp4 or None (no fp4 entry), TDP W, where from).
# The values are typed here from the sources named, not read from the JSON files.
DATASHEET = [
    # NVIDIA GB200 NVL72 spec table, superchip column (1 Grace + 2 GPUs): FP4 40 PF, FP8 20, BF16 10 with sparsity,
    # 8 TB/s per GPU; 186 GB per GPU (13.4 TB / 72; MLPerf v6.1 Crusoe GB200-186GB); 1,200 W per GPU
    ("gb200-nvl72-186gb", 186 * GiB, 8e12, 40 * P / 2 / 2 / 4, 20 * P / 2 / 2, 40 * P / 2 / 2, 1200,
     "GB200 NVL72 datasheet"),
    # NVIDIA Blackwell Architecture Technical Brief v2.1, Table 3, HGX B300 per GPU: FP4 14 dense, FP8 4.5 dense
    # (9 sparse), BF16 4.5 sparse, 270 GB HBM3e at 7.7 TB/s, 1,100 W
    ("b300-sxm-270gb", 270 * GiB, 7.7e12, 4.5 * P / 2, 4.5 * P, 14 * P, 1100, "Blackwell brief v2.1 Table 3"),
    # GB300 NVL72 (GTC 2025): 1.08 EF dense FP4 and 360 PF FP8 per 72 GPUs; Verda's per-GPU dense table: BF16 2.5 PF,
    # 279 GB HBM3E at 8 TB/s, 1.4 kW
    ("gb300-nvl72-279gb", 279 * GiB, 8e12, 2.5 * P, 360 * P / 72, 1080 * P / 72, 1400, "GB300 NVL72 rack figures"),
    # NVIDIA H20 partner spec sheet (no public datasheet): 96 GB HBM3, 4.0 TB/s, FP16/BF16 148, FP8 296, 400 W
    ("h20-96gb", 96 * GiB, 4.0e12, 148 * T, 296 * T, None, 400, "H20 spec sheet as reported"),
    # NVIDIA H800 datasheet, SXM: H100 SXM compute (BF16 1,979 sparse), 80 GB HBM3 at 3.35 TB/s, 700 W
    ("h800-sxm-80gb", 80 * GiB, 3.35e12, 1978.9 * T / 2, 3957.8 * T / 2, None, 700, "H800 datasheet"),
    # AMD MI325X data sheet: 256 GB HBM3E, 6 TB/s, BF16 1,307.4, FP8 2,614.9 dense, 1,000 W
    ("mi325x-256gb", 256 * GiB, 6e12, 1307.4 * T, 2614.9 * T, None, 1000, "AMD MI325X data sheet"),
    # AMD MI355X: 288 GB HBM3E, 8 TB/s, 1,400 W; 256 CUs x 2.4 GHz x (4,096 bf16 / 8,192 fp8 / 16,384 fp4 FLOP/clk)
    ("mi355x-288gb", 288 * GiB, 8e12, 256 * 2.4e9 * 4096, 256 * 2.4e9 * 8192, 256 * 2.4e9 * 16384, 1400,
     "AMD MI355X launch figures, ROCm GPU specs, ISSCC 2026"),
    # Intel Gaudi 3 (Hot Chips 2024): BF16 and FP8 matrix 1,835 TFLOP/s, 128 GB HBM2e at 3.67 TB/s, 900 W air
    ("gaudi3-128gb", 128 * GiB, 3.67e12, 1835 * T, 1835 * T, None, 900, "Intel Gaudi 3, Hot Chips 2024"),
    # Google Cloud TPU docs / Compute Engine TPU table: v6e 918 bf16 and fp8, 32 GiB at 1,638 GB/s
    ("tpu-v6e", 32 * GiB, 1638e9, 918 * T, 918 * T, None, None, "Cloud TPU v6e docs"),
    # TPU7x (Ironwood): 2,307 bf16, 4,614 fp8, 192 GiB at 7,380 GB/s
    ("tpu7x", 192 * GiB, 7380e9, 2307 * T, 4614 * T, None, None, "Cloud TPU7x docs"),
    # GeForce RTX 5090: 32 GB GDDR7, 1,792 GB/s, 575 W, 3,352 AI TOPS (FP4 sparse); bf16/fp8 at fp32 accumulate
    # (derived: half of the FP16-accumulate 838.4 / 1,676.8 sparse figures halved to dense)
    ("rtx-5090-32gb", 32 * GiB, 1792e9, 838.4 * T / 4, 1676.8 * T / 4, 3352 * T / 2, 575, "NVIDIA RTX 5090 specs"),
    # Apple (Mac Studio 2025 base configurations): M4 Max 36 GB at 410 GB/s; M3 Ultra 96 GB at 819 GB/s; no matrix
    # units with a published rate (fp32 estimates 13.74 and 14.32 x 60/40 TFLOP/s, hmc-tech.com)
    ("apple-m4-max-36gb", 36 * GiB, 410e9, 13.74 * T, 13.74 * T, None, None, "Apple Mac Studio (2025)"),
    ("apple-m3-ultra-96gb", 96 * GiB, 819e9, 14.32 * T * 60 / 40, 14.32 * T * 60 / 40, None, None,
     "Apple Mac Studio (2025)"),
]


def test_every_new_device_is_checked():
    assert {row[0] for row in DATASHEET} == set(NEW_IDS)
    assert set(NEW_IDS) <= {h.id for h in list_hardware()}


@pytest.mark.parametrize("hw_id,mem,bw,bf16,fp8,fp4,tdp,where", DATASHEET, ids=[r[0] for r in DATASHEET])
def test_headline_numbers_match_the_datasheet(hw_id, mem, bw, bf16, fp8, fp4, tdp, where):
    hw = load_hardware(hw_id)
    assert hw.memory_bytes == mem, where
    assert hw.memory_bandwidth_bytes_per_s == pytest.approx(bw, rel=1e-9), where
    assert hw.peak_flops("bf16") == pytest.approx(bf16, rel=1e-3), where
    assert hw.peak_flops("fp8") == pytest.approx(fp8, rel=1e-3), where
    if fp4 is None:
        assert "fp4" not in hw.peak_flops_per_s, where
    else:
        assert hw.peak_flops_per_s["fp4"] == pytest.approx(fp4, rel=1e-3), where
    if tdp is not None:
        assert hw.tdp_w == tdp, where
    assert hw.source.strip() and hw.notes.strip()


def test_interconnects_and_node_shapes():
    gb200 = load_hardware("gb200-nvl72-186gb")  # 72 GPUs per NVLink domain, a compute tray holds 4
    assert (gb200.gpus_per_node, gb200.nvlink_domain_gpus) == (4, 72)
    assert gb200.intra_node_bandwidth_bytes_per_s == 900e9  # NVLink 5: 1.8 TB/s bidirectional
    assert load_hardware("b300-sxm-270gb").inter_node_bandwidth_bytes_per_s == 800e9 / 8  # ConnectX-8 800 Gb/s
    assert load_hardware("h800-sxm-80gb").intra_node_bandwidth_bytes_per_s == 400e9 / 2  # NVLink cut to 400 GB/s
    assert load_hardware("tpu-v6e").intra_node_bandwidth_bytes_per_s == 800e9 / 2  # ICI 800 GB/s bidirectional
    assert load_hardware("tpu7x").intra_node_bandwidth_bytes_per_s == 1200e9 / 2  # ICI 1,200 GB/s bidirectional
    assert load_hardware("tpu7x").gpus_per_node == 4  # 4 chips per TPU7x VM
    gb300 = load_hardware("gb300-nvl72-279gb")  # the same rack shape, ConnectX-8 800 Gb/s per GPU
    assert (gb300.gpus_per_node, gb300.nvlink_domain_gpus, gb300.inter_node_bandwidth_bytes_per_s) == (4, 72, 100e9)
    for hw_id in NEW_IDS:
        hw = load_hardware(hw_id)
        if hw_id not in ("gb200-nvl72-186gb", "gb300-nvl72-279gb"):
            assert hw.nvlink_domain_gpus == hw.gpus_per_node, hw_id


def test_blackwell_ultra_int8_cut_and_other_published_oddities():
    b300 = load_hardware("b300-sxm-270gb")
    assert b300.peak_flops("int8") == pytest.approx(0.30 * P / 2)  # 0.15 POPS dense: far below bf16, as published
    gaudi = load_hardware("gaudi3-128gb")
    assert gaudi.peak_flops("fp8") == gaudi.peak_flops("bf16")  # Gaudi 3 MME: fp8 at the bf16 rate
    assert gaudi.sparse_2_4_speedup == 1.0
    for tpu in ("tpu-v6e", "tpu7x"):  # fp32 is listed at bf16/6 (6 passes at HIGHEST precision), as for v5e/v5p
        hw = load_hardware(tpu)
        assert hw.peak_flops("fp32") == pytest.approx(hw.peak_flops("bf16") / 6, rel=1e-3)
        assert hw.kind == "tpu" and "fp16" not in hw.peak_flops_per_s
    for apple in ("apple-m4-max-36gb", "apple-m3-ultra-96gb"):
        hw = load_hardware(apple)
        assert hw.kind == "gpu" and hw.vendor == "Apple"
        assert len({hw.peak_flops(d) for d in DTYPES}) == 1  # no matrix units: every dtype at the ALU rate
        assert "ESTIMATE" in hw.notes and "approximate" in hw.notes


def test_new_records_say_what_is_approximate():
    for hw_id in ("gb200-nvl72-186gb", "b300-sxm-270gb", "h20-96gb", "h800-sxm-80gb", "mi325x-256gb", "mi355x-288gb",
                  "gaudi3-128gb", "rtx-5090-32gb"):
        assert "idle_w is an approximate" in load_hardware(hw_id).notes, hw_id
    for hw_id in ("tpu-v6e", "tpu7x"):
        assert "rough placeholders" in load_hardware(hw_id).notes, hw_id
    assert "No public NVIDIA datasheet" in load_hardware("h20-96gb").source
    assert "DERIVED" in load_hardware("rtx-5090-32gb").notes


@pytest.mark.parametrize("hw_id", NEW_IDS)
def test_every_new_device_runs_an_estimate(hw_id):
    est = costmodel.estimate("gpt2", hardware=hw_id, task="train", batch=1, seq=256)
    assert est.time_s.step_s > 0 and math.isfinite(est.time_s.step_s)
    assert est.memory_bytes.fits


# ---------------------------------------------------------------- fp4 and its fallback chain


def test_fp4_is_a_dtype_and_falls_back_to_fp8_then_16_bit_then_fp32():
    assert "fp4" in DTYPES
    assert FALLBACK["fp4"] == (("fp8",), ("bf16", "fp16"), ("fp32",))
    b200, h100, a100, v100, v6e = (load_hardware(i) for i in ("b200-sxm-192gb", "h100-sxm-80gb", "a100-sxm-80gb",
                                                               "v100-sxm-32gb", "tpu-v6e"))
    assert b200.peak_flops("fp4") == 9 * P  # Blackwell brief v2.1 Table 3, HGX B200 per GPU: 9 dense / 18 sparse
    assert h100.peak_flops("fp4") == h100.peak_flops("fp8") == 1978.9 * T  # Hopper has no fp4: fp8 rate
    assert a100.peak_flops("fp4") == a100.peak_flops("bf16") == 312 * T  # no fp8 either: the 16-bit rate
    assert v100.peak_flops("fp4") == v100.peak_flops("fp16") == 125 * T  # the faster of bf16/fp16
    assert v6e.peak_flops("fp4") == v6e.peak_flops("fp8")
    bare = hardware_from_dict({**json.loads((HARDWARE_DIR / "l4-24gb.json").read_text()),
                               "id": "bare", "peak_flops_per_s": {"fp32": 1e12}})
    assert bare.peak_flops("fp4") == 1e12  # down to fp32


def test_fp4_spellings_and_file_validation():
    b200 = load_hardware("b200-sxm-192gb")
    for name in ("fp4", "FP4", "float4_e2m1fn_x2", "torch.float4_e2m1fn_x2", "nvfp4", "mxfp4", "float4"):
        assert b200.peak_flops(name) == 9 * P, name
    spec = json.loads((HARDWARE_DIR / "b200-sxm-192gb.json").read_text())
    spec["peak_flops_per_s"]["fp4"] = -1
    with pytest.raises(InputError) as err:
        hardware_from_dict(spec)
    assert err.value.field == "hardware.peak_flops_per_s.fp4"


def test_fp4_peaks_are_dense_and_above_fp8():
    for hw in list_hardware():
        if "fp4" in hw.peak_flops_per_s:
            ratio = hw.peak_flops("fp4") / hw.peak_flops("fp8")
            assert 1.5 <= ratio <= 4.0, hw.id  # 2x on B200/GB200/MI355X, 3.1x on B300, 4x on RTX 5090 (fp32 acc.)


# ---------------------------------------------------------------- nvlink_domain_gpus


def _spec(**changes):
    spec = json.loads((HARDWARE_DIR / "h100-sxm-80gb.json").read_text())
    spec.update(id="my-gpu", name="My GPU", source="my own measurements")
    spec.update(changes)
    return spec


def test_nvlink_domain_defaults_to_the_node():
    spec = _spec()
    del spec["nvlink_domain_gpus"]
    hw = hardware_from_dict(spec)
    assert hw.nvlink_domain_gpus == hw.gpus_per_node == 8
    assert hardware_from_dict(hw.to_dict()) == hw  # round trip keeps the resolved value
    direct = Hardware(**{k: v for k, v in spec.items()})
    assert direct.nvlink_domain_gpus == 8


def test_nvlink_domain_larger_than_the_node():
    hw = hardware_from_dict(_spec(gpus_per_node=4, nvlink_domain_gpus=72))
    assert (hw.gpus_per_node, hw.nvlink_domain_gpus) == (4, 72)
    assert hw.to_dict()["nvlink_domain_gpus"] == 72


@pytest.mark.parametrize("value", [0, 4, -8, 2.5, True, "72", None])
def test_bad_nvlink_domain_names_the_field(value):
    with pytest.raises(InputError) as err:
        hardware_from_dict(_spec(gpus_per_node=8, nvlink_domain_gpus=value))
    assert err.value.field == "hardware.nvlink_domain_gpus"
    assert "gpus_per_node" in err.value.message


def test_every_catalog_file_states_its_nvlink_domain():
    for f in sorted(HARDWARE_DIR.glob("*.json")):
        raw = json.loads(f.read_text())
        assert raw["nvlink_domain_gpus"] >= raw["gpus_per_node"], f.name


# ---------------------------------------------------------------- prices that came with the new devices


def _new_records():
    return [r for r in prices.list_prices() if r.hardware in NEW_IDS]


def test_every_new_price_record_loads_and_cites_a_source():
    recs = _new_records()
    assert len(recs) >= 9
    for r in recs:
        assert r.source.strip() and r.date[:4] in ("2024", "2025", "2026") and r.notes.strip(), r
        assert r.usd_per_gpu_hour > 0
        again = prices.price_per_gpu_hour(r.hardware, r.provider, r.tier)
        assert again == r


def test_new_prices_by_hand():
    gp = prices.price_per_gpu_hour
    # Google's Trillium GA announcement (2024-12): from $2.70, $1.89 (1 year), $1.22 (3 years) per chip-hour
    assert [gp("tpu-v6e", "gcp", t).usd_per_gpu_hour for t in ("on-demand", "reserved-1y", "reserved-3y")] == [
        2.70, 1.89, 1.22]
    assert gp("gb200-nvl72-186gb", "coreweave").usd_per_gpu_hour == pytest.approx(42.00 / 4)  # 4-GPU tray
    assert gp("gb200-nvl72-186gb", "spheron").usd_per_gpu_hour == pytest.approx(9.08 / 2)  # per superchip
    assert gp("h200-sxm-141gb", "spheron").usd_per_gpu_hour == 4.54
    assert gp("mi325x-256gb", "tensorwave").usd_per_gpu_hour == 1.95
    hours = 4 * 8760
    assert gp("rtx-5090-32gb", tier="purchase").usd_per_gpu_hour == pytest.approx(1999 / hours)
    assert gp("apple-m4-max-36gb", tier="purchase").usd_per_gpu_hour == pytest.approx(1999 / hours)
    assert gp("apple-m3-ultra-96gb", tier="purchase").usd_per_gpu_hour == pytest.approx(3999 / hours)
    # the default (no provider) is the median of on-demand records: GB200 has two
    assert gp("gb200-nvl72-186gb").usd_per_gpu_hour == pytest.approx((10.50 + 4.54) / 2)


@pytest.mark.parametrize("hw_id", ["b300-sxm-270gb", "h20-96gb", "h800-sxm-80gb", "mi355x-288gb", "gaudi3-128gb",
                                   "tpu7x"])
def test_devices_without_a_published_price_have_none(hw_id):
    assert prices.list_prices(hardware=hw_id) == []
    with pytest.raises(InputError):
        prices.price_per_gpu_hour(hw_id)


def test_purchase_tier_adds_energy_for_apple():
    b = costs.cost_breakdown(100, "apple-m3-ultra-96gb", tier="purchase")
    assert b.compute_usd == pytest.approx(100 * 3999 / (4 * 8760))
    assert b.total_usd == pytest.approx(b.compute_usd + b.energy_usd)  # electricity is not in a purchase price
