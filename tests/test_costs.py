"""Money, energy and carbon (costmodel/costs.py, costmodel/prices.py, costmodel/checkpoint.py): catalogs, formulas against hand arithmetic, overrides, errors."""

import json
import re
import statistics
from pathlib import Path

import pytest

from costmodel import checkpoint, costs, prices
from costmodel.catalog import HARDWARE_DIR, load_hardware
from costmodel.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
ASSETS = ROOT / "costmodel" / "assets"
PRICE_FILES = sorted((ASSETS / "prices").glob("*.json"))
GRID = json.loads((ASSETS / "grid" / "carbon_intensity.json").read_text())
HW_IDS = {p.stem for p in HARDWARE_DIR.glob("*.json")}  # file stem == id in the built-in catalog


@pytest.fixture(autouse=True)
def _no_user_overrides(monkeypatch):
    for env in (prices.ENV_PRICES, prices.ENV_GRID, "COSTMODEL_HARDWARE_DIR"):
        monkeypatch.delenv(env, raising=False)


# ---------------------------------------------------------------------------------------------- catalog files


def _raw_records():
    for f in PRICE_FILES:
        data = json.loads(f.read_text())
        for rec in data.get("records", []):
            yield f.name, data["provider"], rec


def test_every_price_record_has_source_date_notes_and_a_known_hardware_id():
    n = 0
    for fname, provider, rec in _raw_records():
        n += 1
        assert rec["source"].strip(), (fname, rec)
        assert re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", rec["date"]), (fname, rec)
        assert 2015 <= int(rec["date"][:4]) <= 2026, (fname, rec)
        assert rec["notes"].strip(), (fname, rec)
        assert rec["hardware"] in HW_IDS, (fname, rec["hardware"])
        assert rec["tier"] in prices.TIERS, (fname, rec)
    assert n >= 60


def test_every_storage_and_grid_record_has_source_and_date():
    storage = json.loads((ASSETS / "prices" / "storage.json").read_text())["storage"]
    assert {s["tier"] for s in storage} >= {"object-standard", "object-standard-gcs", "object-archive"}
    for s in storage:
        assert s["source"].strip() and re.fullmatch(r"\d{4}-\d{2}", s["date"])
    for rid, r in GRID["regions"].items():
        assert r["source"].strip() and 2018 <= r["year"] <= 2026, rid
        assert 0 <= r["g_co2e_per_kwh"] < 1200, rid
    for table in ("pue", "electricity_usd_per_kwh"):
        for k, v in GRID[table].items():
            assert v["source"].strip() and isinstance(v["year"], int), (table, k)


def test_catalog_covers_the_main_hardware_and_regions():
    priced = {r.hardware for r in prices.list_prices()}
    required = {"a100-sxm-40gb", "a100-sxm-80gb", "h100-sxm-80gb", "h100-pcie-80gb", "h200-sxm-141gb",
                "b200-sxm-192gb", "l4-24gb", "l40s-48gb", "t4-16gb", "v100-sxm-16gb", "a10g-24gb", "rtx-4090-24gb",
                "rtx-3090-24gb", "mi300x-192gb", "tpu-v4", "tpu-v5e", "tpu-v5p", "cpu-generic"}
    assert required <= priced, required - priced
    assert {"aws", "gcp", "azure", "lambda", "coreweave", "runpod"} <= set(prices.list_providers())
    tiers = {r.tier for r in prices.list_prices()}
    assert {"on-demand", "spot", "reserved-1y", "reserved-3y", "purchase"} <= tiers
    regions = {r.region for r in prices.list_regions()}
    assert {"world", "us", "us-east-1", "us-west-2", "us-central1", "eu", "france", "germany", "sweden", "uk",
            "ireland", "poland", "india", "china", "japan", "australia", "quebec", "canada"} <= regions


def test_loader_matches_the_files():
    # the loader's record for a file entry carries the same number, source and date
    for fname, provider, rec in _raw_records():
        if "usd_per_gpu_hour" not in rec:
            continue
        got = prices.price_per_gpu_hour(rec["hardware"], provider, rec["tier"])
        assert got.usd_per_gpu_hour == rec["usd_per_gpu_hour"]
        assert (got.source, got.date) == (rec["source"], rec["date"])


# ---------------------------------------------------------------------------------------------- prices


def test_aws_p5_price_is_the_instance_price_over_eight_gpus():
    # p5.48xlarge $98.32/h on demand in us-east-1 at launch (2023-07), 8 x H100 SXM
    r = prices.price_per_gpu_hour("h100-sxm-80gb", "aws")
    assert r.usd_per_gpu_hour == pytest.approx(98.32 / 8, abs=1e-4)
    assert r.date == "2023-07" and "p5.48xlarge" in r.notes


def test_default_provider_is_the_median_of_on_demand_records():
    recs = prices.list_prices(hardware="h100-sxm-80gb", tier="on-demand")
    assert len(recs) >= 5
    r = prices.price_per_gpu_hour("h100-sxm-80gb")
    assert r.usd_per_gpu_hour == statistics.median(x.usd_per_gpu_hour for x in recs)
    assert r.provider == f"median of {len(recs)} providers"
    for x in recs:  # every contributing source is named
        assert x.source in r.source and x.provider in r.notes
    # one provider only: its own record, unchanged
    assert prices.price_per_gpu_hour("tpu-v5e") == prices.price_per_gpu_hour("tpu-v5e", "gcp")
    assert prices.price_per_gpu_hour("tpu-v5e").usd_per_gpu_hour == 1.20


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(tmp_path, monkeypatch):
    (tmp_path / "x.json").write_text(json.dumps({"provider": "x", "records": [
        {"hardware": "cpu-laptop", "tier": "on-demand", "usd_per_gpu_hour": 1.0, "source": "s", "date": "2024-01"}]}))
    (tmp_path / "y.json").write_text(json.dumps({"provider": "y", "records": [
        {"hardware": "cpu-laptop", "tier": "on-demand", "usd_per_gpu_hour": 2.0, "source": "t", "date": "2025-02"}]}))
    monkeypatch.setenv(prices.ENV_PRICES, str(tmp_path))
    r = prices.price_per_gpu_hour("cpu-laptop")
    assert r.usd_per_gpu_hour == 1.5 and r.date == "2024-01 to 2025-02" and r.source == "x: s; y: t"


def test_purchase_tier_is_amortized_over_24x7_hours():
    # RTX 4090 MSRP $1,599 over 4 years: 1599 / (4 x 8760) = $0.04563 per hour
    r = prices.price_per_gpu_hour("rtx-4090-24gb", tier="purchase")
    assert r.usd_per_gpu_hour == pytest.approx(1599 / (4 * 8760), rel=1e-12)
    assert r.provider == "purchase" and "amortized" in r.notes


def test_tpu_commitments_are_cheaper_than_on_demand():
    for hw in ("tpu-v4", "tpu-v5e", "tpu-v5p"):
        od, y1, y3 = (prices.price_per_gpu_hour(hw, "gcp", t).usd_per_gpu_hour
                      for t in ("on-demand", "reserved-1y", "reserved-3y"))
        assert od > y1 > y3 > 0


def test_price_errors_name_the_allowed_values():
    with pytest.raises(InputError, match=r"^provider: unknown 'nope'; use one of aws, azure"):
        prices.price_per_gpu_hour("h100-sxm-80gb", "nope")
    with pytest.raises(InputError, match=r"^tier: no aws spot price for h100-sxm-80gb; available .*aws/on-demand"):
        prices.price_per_gpu_hour("h100-sxm-80gb", "aws", "spot")
    with pytest.raises(InputError, match=r"^provider: no oci on-demand price for t4-16gb"):
        prices.price_per_gpu_hour("t4-16gb", "oci")
    with pytest.raises(InputError, match=r"^tier: must be one of on-demand, spot"):
        prices.price_per_gpu_hour("h100-sxm-80gb", tier="hourly")
    with pytest.raises(InputError, match=r"^hardware: no price for 'cpu-laptop'; priced hardware: a100"):
        prices.price_per_gpu_hour("cpu-laptop")
    with pytest.raises(InputError, match=r"^tier: no purchase price for t4-16gb; tiers with a price"):
        prices.price_per_gpu_hour("t4-16gb", tier="purchase")
    with pytest.raises(InputError, match=r"^tier:"):
        prices.list_prices(tier="monthly")


def test_list_prices_filters():
    aws = prices.list_prices(provider="AWS")
    assert aws and all(r.provider == "aws" for r in aws)
    assert all(r.tier == "spot" for r in prices.list_prices(tier="spot"))
    hw = load_hardware("l4-24gb")
    assert prices.list_prices(hardware=hw) == prices.list_prices(hardware="l4-24gb")
    assert prices.list_prices(hardware="l4-24gb", provider="oci") == []


# ---------------------------------------------------------------------------------------------- power, energy, carbon


def test_energy_of_1000_h100_hours_by_hand():
    # H100 SXM record: idle_w 70, tdp_w 700 (NVIDIA datasheet; idle measured ~72 W in benchmarks/results).
    # device power = idle + u (tdp - idle) = 70 + 0.8 x (700 - 70) = 574 W
    # energy = gpu_hours x W x PUE / 1000 = 1000 x 574 x 1.1 / 1000 = 631.4 kWh
    hw = load_hardware("h100-sxm-80gb")
    assert (hw.idle_w, hw.tdp_w) == (70, 700)
    pm = costs.power_model(hw, utilization=0.8, pue=1.1)
    assert costs.device_power_w(pm) == pytest.approx(574.0, rel=1e-12)
    assert costs.energy_kwh(1000, pm) == pytest.approx(631.4, rel=1e-12)
    # carbon = kWh x gCO2e/kWh / 1000; France 56 g (Ember 2023): 631.4 x 56 / 1000 = 35.3584 kg
    assert costs.carbon_kg(631.4, "france") == pytest.approx(35.3584, rel=1e-12)
    assert costs.carbon_kg(631.4, "FRANCE ") == costs.carbon_kg(631.4, "france")


def test_power_model_defaults_are_tdp_and_hyperscale_pue():
    pm = costs.power_model("a100-sxm-80gb")
    assert (pm.utilization, pm.pue) == (1.0, 1.10)
    assert costs.device_power_w(pm) == 400.0  # A100 SXM TDP
    assert "Llama 2" in pm.source and "Google" in pm.source
    # utilization 0 = idle power
    assert costs.device_power_w(costs.power_model("t4-16gb", 0.0, 1.0)) == load_hardware("t4-16gb").idle_w


def test_llama2_7b_published_footprint_is_reproduced():
    # Llama 2 paper (Touvron et al. 2023), Table 2: 7B = 184,320 A100-80GB GPU-hours at 400 W peak power
    # -> 73,728 kWh of device energy (PUE 1.0). At utilization 1.0 our model gives the same figure.
    pm = costs.power_model("a100-sxm-80gb", utilization=1.0, pue=1.0)
    assert costs.energy_kwh(184_320, pm) == pytest.approx(73_728.0, rel=1e-12)


def test_grid_values_and_errors():
    assert prices.grid_intensity("world").g_co2e_per_kwh == 481  # Ember 2023 global average
    assert prices.grid_intensity("us-central1").g_co2e_per_kwh == 412.72  # Google region-carbon-info 2024
    assert prices.grid_intensity("us-west-2").g_co2e_per_kwh < prices.grid_intensity("us-east-1").g_co2e_per_kwh
    with pytest.raises(InputError, match=r"^region: unknown 'mars'; use one of .*france"):
        prices.grid_intensity("mars")
    with pytest.raises(InputError, match=r"^energy_kwh: must be a number from 0 to"):
        costs.carbon_kg(-1, "world")


@pytest.mark.parametrize("call, message", [
    (lambda: costs.power_model("h100-sxm-80gb", utilization=1.5), r"^utilization: must be a number from 0 to 1"),
    (lambda: costs.power_model("h100-sxm-80gb", utilization=-0.1), r"^utilization: must be a number from 0 to 1"),
    (lambda: costs.power_model("h100-sxm-80gb", pue=0.9), r"^pue: must be a number from 1 to 5"),
    (lambda: costs.power_model("h100-sxm-80gb", pue=float("nan")), r"^pue: must be a number from 1 to 5"),
    (lambda: costs.energy_kwh(-5, costs.power_model("t4-16gb")), r"^gpu_hours: must be a number from 0 to 1e\+12"),
    (lambda: costs.cost_breakdown(-1, "t4-16gb"), r"^gpu_hours: must be a number from 0 to 1e\+12 device-hours"),
    (lambda: costs.cost_breakdown(10, "t4-16gb", region="atlantis"), r"^region: unknown 'atlantis'"),
    (lambda: costs.cost_breakdown(10, "nope-gpu"), r"^hardware: unknown id 'nope-gpu'"),
    (lambda: costs.storage_cost_usd(-1, 1), r"^storage_bytes: must be a number from 0 to"),
    (lambda: costs.storage_cost_usd(1, -1), r"^storage_months: must be a number from 0 to 1200"),
    (lambda: costs.storage_cost_usd(1, 1, tier="tape"), r"^storage_tier: unknown 'tape'; use one of block-ssd"),
])
def test_clear_errors(call, message):
    with pytest.raises(InputError, match=message):
        call()


# ---------------------------------------------------------------------------------------------- storage, checkpoints


def test_storage_cost_by_hand():
    # 1 TiB for 12 months on S3 Standard ($0.023 per GB-month, GB = 2^30 bytes as AWS bills):
    # 1024 GiB x 12 x 0.023 = $282.624
    assert costs.storage_cost_usd(2**40, 12) == pytest.approx(282.624, rel=1e-12)
    # GCS Standard us-central1 $0.020: 500e9 bytes for 3 months = 500e9 / 2^30 x 3 x 0.02 = $27.94
    assert costs.storage_cost_usd(500e9, 3, tier="object-standard-gcs") == pytest.approx(
        500e9 / 2**30 * 3 * 0.020, rel=1e-12)
    assert costs.storage_cost_usd(2**30, 1, usd_per_gb_month=0.5) == 0.5


def test_llama2_7b_adamw_checkpoint_bytes():
    # Llama-2-7B has 6,738,415,616 parameters (sum of numel of the HF LlamaForCausalLM; model card "7B").
    # AdamW with fp32 master weights (amp-bf16): weights 4 B + exp_avg 4 B + exp_avg_sq 4 B = 12 B per param
    # -> 6,738,415,616 x 12 = 80,860,987,392 bytes = 80.86 GB (the "16 bytes per param minus gradients" rule of
    # ZeRO, Rajbhandari et al. 2020, section 3.1: fp32 params + momentum + variance = 12 B).
    n = 6_738_415_616
    c = checkpoint.checkpoint_bytes(n, n, "adamw", "amp-bf16")
    assert c.training_checkpoint_bytes == 80_860_987_392
    assert c.model_file_bytes == n * 4 and c.optimizer_state_bytes == n * 8
    # a bf16 export of the weights: 2 B per param = 13.48 GB, the size of the released safetensors
    assert checkpoint.checkpoint_bytes(n, 0, "adamw", "bf16").model_file_bytes == 13_476_831_232
    # plain SGD keeps no state
    assert checkpoint.checkpoint_bytes(n, n, "sgd", "fp32").optimizer_state_bytes == 0


def test_checkpoint_bytes_lora_int4_and_8bit_adam():
    # QLoRA-style: 7e9 frozen int4 weights (0.5 B + one fp16 scale per 64 weights = 0.53125 B) and 4e6 trainable
    # bf16 adapter weights with 8-bit AdamW (2 B + 8/2048 B of absmax per param).
    c = checkpoint.checkpoint_bytes(7_004_000_000, 4_000_000, "adamw-8bit", "int4")
    assert c.trainable_weight_bytes == 4_000_000 * 2
    assert c.model_file_bytes == pytest.approx(7e9 * (0.5 + 2 / 64) + 8e6, rel=1e-12)
    assert c.optimizer_state_bytes == pytest.approx(4e6 * (2 + 8 / 2048), rel=1e-12)
    with pytest.raises(InputError, match=r"^optimizer_state_bytes: adafactor keeps factored states"):
        checkpoint.checkpoint_bytes(100, 100, "adafactor", "fp32")
    assert checkpoint.checkpoint_bytes(100, 100, "adafactor", "fp32", optimizer_state_bytes=40).optimizer_state_bytes == 40
    with pytest.raises(InputError, match=r"^trainable: must not exceed params_total"):
        checkpoint.checkpoint_bytes(10, 11, "adamw", "fp32")
    with pytest.raises(InputError, match=r"^optimizer: must be one of sgd"):
        checkpoint.checkpoint_bytes(10, 10, "lion", "fp32")
    with pytest.raises(InputError, match=r"^precision: must be one of fp32"):
        checkpoint.checkpoint_bytes(10, 10, "adamw", "fp64")


# ---------------------------------------------------------------------------------------------- breakdown


def test_cost_breakdown_by_hand():
    # 1000 H100-hours on AWS on-demand ($98.32/8 per GPU-hour), utilization 0.8, PUE 1.1, in us-east-1
    # (323.05 gCO2e/kWh), electricity $0.10/kWh, a 80.86e9-byte checkpoint kept 6 months on S3 Standard.
    b = costs.cost_breakdown(1000, "h100-sxm-80gb", provider="aws", utilization=0.8, pue=1.1, region="us-east-1",
                             electricity_usd_per_kwh=0.10, storage_bytes=80_860_987_392, storage_months=6)
    assert b.compute_usd == pytest.approx(1000 * 12.29, rel=1e-12)
    assert b.energy_kwh == pytest.approx(631.4, rel=1e-12)
    assert b.energy_usd == pytest.approx(63.14, rel=1e-12)
    assert b.carbon_kg_co2e == pytest.approx(631.4 * 323.05 / 1000, rel=1e-12)
    assert b.storage_usd == pytest.approx(80_860_987_392 / 2**30 * 6 * 0.023, rel=1e-12)
    # cloud price includes power: total = compute + storage
    assert b.total_usd == pytest.approx(b.compute_usd + b.storage_usd, rel=1e-12)
    a = b.assumptions
    for key in ("usd_per_gpu_hour", "utilization", "pue", "grid_g_co2e_per_kwh", "electricity_usd_per_kwh",
                "idle_w", "tdp_w", "storage_usd_per_gb_month", "electricity_in_compute_price"):
        assert set(a[key]) == {"value", "source"} and a[key]["source"], key
    assert a["usd_per_gpu_hour"]["value"] == 12.29 and "p5.48xlarge" in a["usd_per_gpu_hour"]["source"]
    assert a["electricity_in_compute_price"]["value"] is True
    assert b.to_dict()["total_usd"] == b.total_usd
    json.dumps(b.to_dict())  # JSON-ready


def test_cost_breakdown_defaults_and_purchase_tier():
    b = costs.cost_breakdown(100, "rtx-4090-24gb", tier="purchase")
    # on-prem: industry-average PUE 1.58 (Uptime 2023), world grid 481 g, US commercial power $0.1274/kWh
    kwh = 100 * 450 * 1.58 / 1000  # utilization 1.0 -> TDP 450 W
    assert b.energy_kwh == pytest.approx(kwh, rel=1e-12)
    assert b.carbon_kg_co2e == pytest.approx(kwh * 481 / 1000, rel=1e-12)
    assert b.energy_usd == pytest.approx(kwh * 0.1274, rel=1e-12)
    assert b.compute_usd == pytest.approx(100 * 1599 / (4 * 8760), rel=1e-12)
    assert b.total_usd == pytest.approx(b.compute_usd + b.energy_usd, rel=1e-12)  # power is paid separately
    assert b.assumptions["pue"]["value"] == 1.58 and "Uptime" in b.assumptions["pue"]["source"]
    cloud = costs.cost_breakdown(100, "rtx-4090-24gb")
    assert cloud.assumptions["pue"]["value"] == 1.10 and cloud.storage_usd == 0.0
    assert cloud.assumptions["region"]["value"] == "world"
    zero = costs.cost_breakdown(0, "t4-16gb")
    assert (zero.compute_usd, zero.energy_kwh, zero.carbon_kg_co2e) == (0.0, 0.0, 0.0)


# ---------------------------------------------------------------------------------------------- overrides


def test_user_price_file_replaces_and_adds(tmp_path, monkeypatch):
    f = tmp_path / "mine.json"
    f.write_text(json.dumps({"provider": "aws", "records": [
        {"hardware": "h100-sxm-80gb", "tier": "on-demand", "usd_per_gpu_hour": 6.88, "source": "our invoice",
         "date": "2025-07", "notes": "after the 2025 price cut"},
        {"hardware": "h100-sxm-80gb", "tier": "spot", "usd_per_gpu_hour": 3.1, "source": "console",
         "date": "2025-07"}],
        "storage": [{"tier": "object-standard", "usd_per_gib_month": 0.01, "source": "contract", "date": "2025-01"}]}))
    monkeypatch.setenv(prices.ENV_PRICES, str(f))  # a file path works as well as a folder
    assert prices.price_per_gpu_hour("h100-sxm-80gb", "aws").usd_per_gpu_hour == 6.88
    assert prices.price_per_gpu_hour("h100-sxm-80gb", "aws", "spot").source == "console"
    assert costs.storage_cost_usd(2**30, 1) == 0.01
    monkeypatch.delenv(prices.ENV_PRICES)
    assert prices.price_per_gpu_hour("h100-sxm-80gb", "aws").usd_per_gpu_hour == 12.29


@pytest.mark.parametrize("record, message", [
    ({"hardware": "h100-sxm-80gb", "tier": "on-demand", "usd_per_gpu_hour": 1.0, "date": "2025-01"},
     r"^source: must be a non-empty string \(in "),
    ({"hardware": "h100-sxm-80gb", "tier": "on-demand", "usd_per_gpu_hour": 1.0, "source": "x", "date": "2025"},
     r"^prices.date: must be YYYY-MM"),
    ({"hardware": "h999", "tier": "on-demand", "usd_per_gpu_hour": 1.0, "source": "x", "date": "2025-01"},
     r"^prices.hardware: unknown hardware id 'h999'"),
    ({"hardware": "h100-sxm-80gb", "tier": "weekly", "usd_per_gpu_hour": 1.0, "source": "x", "date": "2025-01"},
     r"^prices.tier: must be one of on-demand"),
    ({"hardware": "h100-sxm-80gb", "tier": "on-demand", "usd_per_gpu_hour": -2, "source": "x", "date": "2025-01"},
     r"^prices.usd_per_gpu_hour: must be a number from 0"),
    ({"hardware": "h100-sxm-80gb", "tier": "on-demand", "source": "x", "date": "2025-01"},
     r"^prices.usd_per_gpu_hour: is required"),
    ({"hardware": "h100-sxm-80gb", "tier": "on-demand", "usd": 1, "source": "x", "date": "2025-01"},
     r"^prices.usd: unknown key"),
])
def test_bad_user_price_records(tmp_path, monkeypatch, record, message):
    (tmp_path / "bad.json").write_text(json.dumps({"provider": "me", "records": [record]}))
    monkeypatch.setenv(prices.ENV_PRICES, str(tmp_path))
    with pytest.raises(InputError, match=message):
        prices.list_prices()


def test_bad_price_paths(tmp_path, monkeypatch):
    monkeypatch.setenv(prices.ENV_PRICES, str(tmp_path / "missing"))
    with pytest.raises(InputError, match=rf"^{prices.ENV_PRICES}: .* is neither a folder nor a file"):
        prices.list_prices()
    (tmp_path / "broken.json").write_text("{not json")
    monkeypatch.setenv(prices.ENV_PRICES, str(tmp_path))
    with pytest.raises(InputError, match=r"^prices: .*broken.json is not valid JSON"):
        prices.list_prices()


def test_user_grid_file_adds_regions_and_defaults(tmp_path, monkeypatch):
    (tmp_path / "grid.json").write_text(json.dumps({
        "regions": {"My-DC": {"g_co2e_per_kwh": 12.5, "source": "utility bill 2024", "year": 2024}},
        "pue": {"ours": {"value": 1.3, "source": "facility meter", "year": 2024}},
        "defaults": {"region": "my-dc", "pue_on_prem": "ours"}}))
    monkeypatch.setenv(prices.ENV_GRID, str(tmp_path))
    assert costs.carbon_kg(1000, "my-dc") == 12.5
    assert prices.default_region() == "my-dc" and prices.default_pue("purchase").value == 1.3
    assert prices.grid_intensity("world").g_co2e_per_kwh == 481  # built-ins stay


def test_bad_user_grid_file(tmp_path, monkeypatch):
    (tmp_path / "grid.json").write_text(json.dumps({"regions": {"x": {"g_co2e_per_kwh": -3, "source": "s",
                                                                      "year": 2024}}}))
    monkeypatch.setenv(prices.ENV_GRID, str(tmp_path))
    with pytest.raises(InputError, match=r"^grid.regions.x.g_co2e_per_kwh: must be a number from 0 to 2000"):
        prices.list_regions()
    (tmp_path / "grid.json").write_text(json.dumps({"pue": {"bad": {"value": 0.8, "source": "s", "year": 2024}}}))
    with pytest.raises(InputError, match=r"^grid.pue.bad.value: must be a number from 1 to 5"):
        prices.list_regions()


def test_no_catalog_is_read_at_import():
    import subprocess
    import sys
    code = ("import costmodel.costs, costmodel.prices as c; "
            "print(c._price_catalog.cache_info().currsize, c._grid_catalog.cache_info().currsize)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "0"]


def test_docs_list_every_record_region_and_default():
    # docs/costs.md carries a table generated from the catalog: a changed or added record must be documented
    docs = (ROOT / "docs" / "costs.md").read_text()
    for r in prices.list_prices():
        assert f"| {r.hardware} | {r.provider} | {r.tier} | {r.usd_per_gpu_hour:.4g} | {r.date} |" in docs, r
    for g in prices.list_regions():
        assert f"| {g.region} | {g.name} | {g.g_co2e_per_kwh:g} | {g.year} |" in docs, g
    for s in prices.list_storage_tiers():
        assert s.tier in docs
    for key in ("hyperscale", "enterprise-average", "us-commercial", prices.ENV_PRICES, prices.ENV_GRID):
        assert key in docs
