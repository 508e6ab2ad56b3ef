"""Money, energy and carbon: price catalog, power model, grid carbon intensity, storage and checkpoint sizes.

Data lives in ``assets/prices/*.json`` (GPU-hour prices, one file per provider, plus ``storage.json``) and
``assets/grid/carbon_intensity.json`` (grid gCO2e/kWh by region, PUE values, electricity prices). Every record
carries its ``source`` and ``date``/``year``. Files are read on first use, never at import, and cached.

User overrides follow the hardware catalog's pattern: ``COSTMODEL_PRICES_DIR`` and ``COSTMODEL_GRID_DIR`` each
take paths separated by ``os.pathsep`` (``:`` on Linux); a path may be a folder of ``*.json`` files or one file
of the same schema. A user price record with the same (hardware, provider, tier) replaces the built-in one; a user
region, PUE or electricity entry with the same key replaces the built-in one.

Formulas (see docs/costs.md for every default and its source):

- device power (IT power of one device, W) = idle_w + utilization x (tdp_w - idle_w)
- energy (kWh at the facility meter) = gpu_hours x device power x PUE / 1000
- carbon (kg CO2e) = kWh x grid gCO2e/kWh / 1000
- storage (USD) = bytes / 2^30 x months x USD per GiB-month (S3 and GCS bill binary gigabytes)
- compute (USD) = gpu_hours x USD per GPU-hour

Cloud GPU-hour prices already include electricity and cooling: ``energy_usd`` is reported beside them for
on-prem comparisons and is NOT part of ``total_usd`` for cloud tiers. For tier ``purchase`` (buying the device,
amortized) electricity is not in the price, so ``total_usd`` adds ``energy_usd``.
"""

from __future__ import annotations

import functools
import math
import os
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Mapping, Union

from . import catalog as hwcat
from .errors import InputError
from .workload import OPTIMIZERS, PRECISIONS, QUANT_SCALE_BYTES_PER_WEIGHT

PRICES_DIR = hwcat.ASSETS_DIR / "prices"
GRID_FILE = hwcat.ASSETS_DIR / "grid" / "carbon_intensity.json"
ENV_PRICES = "COSTMODEL_PRICES_DIR"
ENV_GRID = "COSTMODEL_GRID_DIR"

TIERS = ("on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block", "purchase")
# Tiers whose price does not include electricity (the buyer pays the power bill).
TIERS_WITHOUT_ELECTRICITY = ("purchase",)
HOURS_PER_YEAR = 8760.0  # 365 x 24: amortization assumes the device is in use around the clock
GIB = float(1 << 30)

# Power drawn between idle and TDP. 1.0 = TDP, the convention of published training footprints: the Llama 2 paper
# (Touvron et al. 2023, Table 2: "peak power capacity per GPU device ... adjusted for power usage efficiency",
# 400 W per A100) and the Llama 3 model card (H100-80GB, "TDP of 700W"). An upper bound for a busy GPU.
DEFAULT_UTILIZATION = 1.0
DEFAULT_UTILIZATION_SOURCE = ("default 1.0 = TDP, as in published training footprints (Llama 2 paper, Touvron et al. "
                              "2023, Table 2: peak power per GPU; Llama 3 model card: H100 TDP 700 W)")
PUE_RANGE = (1.0, 5.0)
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

PathLike = Union[str, "os.PathLike[str]"]


# ---------------------------------------------------------------------------------------------------------------
# records


@dataclass(frozen=True)
class PriceRecord:
    """USD per device-hour (GPU, TPU chip or CPU socket) for one hardware id, provider and tier."""

    hardware: str
    provider: str
    tier: str
    usd_per_gpu_hour: float
    source: str
    date: str  # YYYY-MM when the price was published or observed
    notes: str = ""


@dataclass(frozen=True)
class StorageRecord:
    tier: str
    usd_per_gib_month: float
    source: str
    date: str
    notes: str = ""


@dataclass(frozen=True)
class GridRecord:
    """Grid carbon intensity of one region: grams CO2-equivalent per kWh taken from the grid."""

    region: str
    g_co2e_per_kwh: float
    source: str
    year: int
    name: str = ""
    notes: str = ""


@dataclass(frozen=True)
class DefaultValue:
    """A named default (PUE, electricity price) with its source."""

    key: str
    value: float
    source: str
    year: int
    notes: str = ""


@dataclass(frozen=True)
class PowerModel:
    """Per-device power: ``idle_w + utilization x (tdp_w - idle_w)`` of IT power, times ``pue`` at the meter."""

    idle_w: float
    tdp_w: float
    utilization: float
    pue: float
    source: str


@dataclass(frozen=True)
class CheckpointSize:
    """Bytes on disk. ``model_file_bytes``: weights only; ``training_checkpoint_bytes``: weights + optimizer
    states (what resuming training needs; gradients are not saved)."""

    model_file_bytes: float
    trainable_weight_bytes: float
    optimizer_state_bytes: float
    training_checkpoint_bytes: float
    assumptions: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class CostBreakdown:
    """Cost of ``gpu_hours`` device-hours. ``compute_usd`` = gpu_hours x price. ``energy_usd`` is what the
    electricity would cost at ``assumptions['electricity_usd_per_kwh']``; cloud prices already include it, so
    it is only added to ``total_usd`` for tiers in ``TIERS_WITHOUT_ELECTRICITY`` (purchase)."""

    compute_usd: float
    storage_usd: float
    energy_kwh: float
    energy_usd: float
    carbon_kg_co2e: float
    gpu_hours: float
    assumptions: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def total_usd(self) -> float:
        included = self.assumptions.get("electricity_in_compute_price", {}).get("value", True)
        return self.compute_usd + self.storage_usd + (0.0 if included else self.energy_usd)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["total_usd"] = self.total_usd
        return out


# ---------------------------------------------------------------------------------------------------------------
# validation helpers


def _number(name: str, v, lo: float = 0.0, hi: float = math.inf, what: str = "") -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        rng = f"from {lo:g} to {hi:g}" if math.isfinite(hi) else f">= {lo:g}"
        raise InputError(name, f"must be a number {rng}{what}, got {v!r}")
    return float(v)


def _paths(env: str) -> tuple[Path, ...]:
    return tuple(Path(p).expanduser() for p in os.environ.get(env, "").split(os.pathsep) if p.strip())


def _json_files(p: Path, env: str) -> list[Path]:
    if p.is_dir():
        return sorted(p.glob("*.json"))
    if p.is_file():
        return [p]
    raise InputError(env, f"{p} is neither a folder nor a file; set it to folders or JSON files separated by "
                          f"'{os.pathsep}'")


def _text(data: dict, key: str, where: str, required: bool = True) -> str:
    v = data.get(key, "" if not required else None)
    if not isinstance(v, str) or (required and not v.strip()):
        raise InputError(key, f"must be a non-empty string{where}, got {v!r}")
    return v.strip()


# ---------------------------------------------------------------------------------------------------------------
# price catalog

_PRICE_KEYS = ("hardware", "tier", "usd_per_gpu_hour", "purchase_usd", "amortization_years", "source", "date", "notes")
_STORAGE_KEYS = ("tier", "usd_per_gib_month", "source", "date", "notes")


def _price_record(provider: str, data, where: str, known_hw) -> PriceRecord:
    if not isinstance(data, dict):
        raise InputError("prices.records", f"each record must be a JSON object{where}")
    unknown = sorted(set(data) - set(_PRICE_KEYS))
    if unknown:
        raise InputError(f"prices.{unknown[0]}", f"unknown key{where}; allowed: {', '.join(_PRICE_KEYS)}")
    hw = _text(data, "hardware", where)
    if hw not in known_hw:
        raise InputError("prices.hardware", f"unknown hardware id {hw!r}{where}; known: {', '.join(sorted(known_hw))}")
    tier = _text(data, "tier", where)
    if tier not in TIERS:
        raise InputError("prices.tier", f"must be one of {', '.join(TIERS)}{where}, got {tier!r}")
    source, date = _text(data, "source", where), _text(data, "date", where)
    if not _DATE.match(date):
        raise InputError("prices.date", f"must be YYYY-MM (when the price was published or observed){where}, "
                                        f"got {date!r}")
    notes = _text(data, "notes", where, required=False)
    if "usd_per_gpu_hour" in data:
        usd = _number("prices.usd_per_gpu_hour", data["usd_per_gpu_hour"], 0.0, 1e6, f" USD{where}")
    elif "purchase_usd" in data:
        buy = _number("prices.purchase_usd", data["purchase_usd"], 0.0, 1e9, f" USD{where}")
        years = _number("prices.amortization_years", data.get("amortization_years"), 0.1, 50.0, f" years{where}")
        usd = buy / (years * HOURS_PER_YEAR)
        notes = (f"${buy:,.0f} amortized over {years:g} years of 24x7 use ({years:g} x 8760 h). " + notes).strip()
    else:
        raise InputError("prices.usd_per_gpu_hour", f"is required (or purchase_usd with amortization_years){where}")
    if usd <= 0:
        raise InputError("prices.usd_per_gpu_hour", f"must be > 0{where}")
    return PriceRecord(hw, provider, tier, usd, source, date, notes)


@functools.lru_cache(maxsize=None)
def _price_catalog(paths: tuple[Path, ...], hw_ids: frozenset) -> tuple[Mapping, Mapping]:
    prices: dict[tuple[str, str, str], PriceRecord] = {}
    storage: dict[str, StorageRecord] = {}
    if not PRICES_DIR.is_dir():
        raise InputError("prices", f"catalog folder {PRICES_DIR} is missing (broken install?)")
    files = [(f, "prices") for f in sorted(PRICES_DIR.glob("*.json"))]
    files += [(f, ENV_PRICES) for p in paths for f in _json_files(p, ENV_PRICES)]
    for f, _ in files:
        where = f" (in {f})"
        data = hwcat._read_json(f, "prices")
        if not isinstance(data, dict) or not ({"records", "storage"} & set(data)):
            raise InputError("prices", f"{f} must be a JSON object with 'provider' and 'records' (GPU-hour "
                                       f"prices) and/or 'storage' (USD per GiB-month)")
        seen: set = set()
        if "records" in data:
            provider = _text(data, "provider", where).lower()
            if not isinstance(data["records"], list):
                raise InputError("prices.records", f"must be a list{where}")
            for raw in data["records"]:
                rec = _price_record(provider, raw, where, hw_ids)
                key = (rec.hardware, rec.provider, rec.tier)
                if key in seen:
                    raise InputError("prices.records", f"duplicate {provider}/{rec.hardware}/{rec.tier}{where}")
                seen.add(key)
                prices[key] = rec  # later files (user ones) replace earlier keys
        if "storage" in data:
            if not isinstance(data["storage"], list):
                raise InputError("prices.storage", f"must be a list{where}")
            for raw in data["storage"]:
                if not isinstance(raw, dict) or sorted(set(raw) - set(_STORAGE_KEYS)):
                    raise InputError("prices.storage", f"each entry must be an object with keys "
                                                       f"{', '.join(_STORAGE_KEYS)}{where}")
                date = _text(raw, "date", where)
                if not _DATE.match(date):
                    raise InputError("prices.storage.date", f"must be YYYY-MM{where}, got {date!r}")
                tier = _text(raw, "tier", where)
                usd = _number("prices.storage.usd_per_gib_month", raw.get("usd_per_gib_month"), 0.0, 1e3,
                              f" USD per GiB-month{where}")
                storage[tier] = StorageRecord(tier, usd, _text(raw, "source", where), date,
                                              _text(raw, "notes", where, required=False))
    return MappingProxyType(prices), MappingProxyType(storage)


def _prices() -> tuple[Mapping, Mapping]:
    return _price_catalog(_paths(ENV_PRICES), frozenset(hwcat.catalog()))


def _hw_id(hardware) -> str:
    if isinstance(hardware, hwcat.Hardware):
        return hardware.id
    if not isinstance(hardware, str) or not hardware.strip():
        raise InputError("hardware", f"must be a hardware id such as h100-sxm-80gb, got {hardware!r}")
    return hardware.strip()


def list_prices(hardware: str | None = None, provider: str | None = None, tier: str | None = None) -> list[PriceRecord]:
    """Price records matching every filter given (None = any), sorted by hardware, provider, tier."""
    if tier is not None and tier not in TIERS:
        raise InputError("tier", f"must be one of {', '.join(TIERS)}, got {tier!r}")
    hw = _hw_id(hardware) if hardware is not None else None
    prov = provider.strip().lower() if isinstance(provider, str) else provider
    prices, _ = _prices()
    return [prices[k] for k in sorted(prices)
            if (hw is None or k[0] == hw) and (prov is None or k[1] == prov) and (tier is None or k[2] == tier)]


def list_providers() -> list[str]:
    return sorted({k[1] for k in _prices()[0]})


def price_per_gpu_hour(hardware: str, provider: str | None = None, tier: str = "on-demand") -> PriceRecord:
    """The price of one device-hour.

    With ``provider``: that provider's record for (hardware, tier). Without: if one provider has a record, that
    record; if several do, the MEDIAN of their prices (``statistics.median``: the mean of the two middle values
    for an even count), returned as provider ``"median of N providers"`` with every source joined and the date
    span. The median resists one outlier (a hyperscaler's list price or a marketplace's spot rate)."""
    hw = _hw_id(hardware)
    if tier not in TIERS:
        raise InputError("tier", f"must be one of {', '.join(TIERS)}, got {tier!r}")
    every = list_prices(hardware=hw)
    if not every:
        priced = sorted({r.hardware for r in list_prices()})
        raise InputError("hardware", f"no price for {hw!r}; priced hardware: {', '.join(priced)} (add a price "
                                     f"file via {ENV_PRICES})")
    if provider is not None:
        prov = str(provider).strip().lower()
        if prov not in list_providers():
            raise InputError("provider", f"unknown {provider!r}; use one of {', '.join(list_providers())} "
                                         f"(or leave it out for the median across providers)")
        match = [r for r in every if r.provider == prov and r.tier == tier]
        if not match:
            have = ", ".join(f"{r.provider}/{r.tier}" for r in every)
            field_name = "tier" if any(r.provider == prov for r in every) else "provider"
            raise InputError(field_name, f"no {prov} {tier} price for {hw}; available for {hw}: {have}")
        return match[0]
    match = [r for r in every if r.tier == tier]
    if not match:
        tiers = sorted({r.tier for r in every}, key=TIERS.index)
        raise InputError("tier", f"no {tier} price for {hw}; tiers with a price for {hw}: {', '.join(tiers)}")
    if len(match) == 1:
        return match[0]
    usd = statistics.median(r.usd_per_gpu_hour for r in match)
    dates = sorted(r.date for r in match)
    return PriceRecord(
        hardware=hw, provider=f"median of {len(match)} providers", tier=tier, usd_per_gpu_hour=usd,
        source="; ".join(f"{r.provider}: {r.source}" for r in match),
        date=dates[0] if dates[0] == dates[-1] else f"{dates[0]} to {dates[-1]}",
        notes="median of " + ", ".join(f"{r.provider} ${r.usd_per_gpu_hour:.4g} ({r.date})" for r in match))


# ---------------------------------------------------------------------------------------------------------------
# storage and checkpoints


def list_storage_tiers() -> list[StorageRecord]:
    _, storage = _prices()
    return [storage[k] for k in sorted(storage)]


def storage_price(tier: str = "object-standard") -> StorageRecord:
    _, storage = _prices()
    if tier not in storage:
        raise InputError("storage_tier", f"unknown {tier!r}; use one of {', '.join(sorted(storage))}")
    return storage[tier]


def storage_cost_usd(bytes_: float, months: float, usd_per_gb_month: float | None = None,
                     tier: str = "object-standard") -> float:
    """USD = bytes / 2^30 x months x price. ``usd_per_gb_month`` is in the unit providers bill (AWS S3 and GCS
    bill binary gigabytes, 2^30 bytes); None takes the price of ``tier`` from assets/prices/storage.json."""
    b = _number("storage_bytes", bytes_, 0.0, 1e21, " bytes")
    m = _number("storage_months", months, 0.0, 1200.0, " months")
    price = (storage_price(tier).usd_per_gib_month if usd_per_gb_month is None
             else _number("usd_per_gb_month", usd_per_gb_month, 0.0, 1e3, " USD"))
    return b / GIB * m * price


def checkpoint_bytes(params_total: int, trainable: int, optimizer: str, precision: str, *,
                     optimizer_state_bytes: float | None = None) -> CheckpointSize:
    """Bytes of a model file (weights only) and of a full training checkpoint (weights + optimizer states),
    using the per-element widths of ``costmodel.workload.PRECISIONS`` / ``OPTIMIZERS``:

    - weights = trainable x weight_bytes + frozen x (frozen_weight_bytes + quantization scales per weight)
    - optimizer states = trainable x (states_per_param x state_bytes + fixed_bytes_per_param)
    - training checkpoint = weights + optimizer states (gradients are not saved)

    E.g. Llama-2-7B (6,738,415,616 params), AdamW, amp-bf16 (fp32 master weights and states):
    6,738,415,616 x (4 + 2 x 4) = 80.86e9 bytes. Frozen weights of int8/int4 precision are all counted at the
    quantized width (embeddings and norms are in fact kept in 16 bits: a slight underestimate). Adafactor's
    factored state depends on matrix shapes: pass ``optimizer_state_bytes`` (an estimate's
    ``memory_bytes.optimizer``)."""
    for name, v in (("params_total", params_total), ("trainable", trainable)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise InputError(name, f"must be a whole number >= 0, got {v!r}")
    if trainable > params_total:
        raise InputError("trainable", f"must not exceed params_total ({params_total}), got {trainable}")
    if precision not in PRECISIONS:
        raise InputError("precision", f"must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if optimizer not in OPTIMIZERS:
        raise InputError("optimizer", f"must be one of {', '.join(OPTIMIZERS)}, got {optimizer!r}")
    p, o = PRECISIONS[precision], OPTIMIZERS[optimizer]
    frozen = params_total - trainable
    scale = QUANT_SCALE_BYTES_PER_WEIGHT.get(precision, 0.0)
    trainable_w = trainable * p.weight_bytes
    frozen_w = frozen * (p.frozen_weight_bytes + scale)
    if optimizer_state_bytes is not None:
        opt = _number("optimizer_state_bytes", optimizer_state_bytes, 0.0, 1e18, " bytes")
        opt_src = "given by the caller"
    elif o.factored:
        raise InputError("optimizer_state_bytes", f"{optimizer} keeps factored states whose size depends on matrix "
                                                  f"shapes: pass the estimate's memory_bytes.optimizer")
    else:
        opt = trainable * (o.states_per_param * p.state_bytes + o.fixed_bytes_per_param)
        opt_src = (f"{trainable} trainable x ({o.states_per_param:g} states x {p.state_bytes:g} B + "
                   f"{o.fixed_bytes_per_param:g} B fixed): {o.source}")
    model = trainable_w + frozen_w
    assumptions = {
        "weight_bytes_per_param": {"value": p.weight_bytes, "source": f"precision {precision}: {p.description}"},
        "frozen_weight_bytes_per_param": {"value": p.frozen_weight_bytes + scale,
                                          "source": f"precision {precision} (+ quantization scales {scale:g} B)"},
        "optimizer_state_bytes": {"value": opt, "source": opt_src},
        "gradients_saved": {"value": False, "source": "torch.save(optimizer.state_dict()) holds states, not grads"},
    }
    return CheckpointSize(float(model), float(trainable_w), float(opt), float(model + opt), assumptions)


# ---------------------------------------------------------------------------------------------------------------
# grid carbon, PUE, electricity


def _default_entry(key: str, raw, where: str, lo: float, hi: float, unit: str) -> DefaultValue:
    if not isinstance(raw, dict):
        raise InputError(key, f"must be an object with value, source, year{where}")
    v = _number(f"{key}.value", raw.get("value"), lo, hi, f" {unit}{where}")
    year = raw.get("year")
    if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
        raise InputError(f"{key}.year", f"must be a year such as 2023{where}, got {year!r}")
    return DefaultValue(key, v, _text(raw, "source", where), year, _text(raw, "notes", where, required=False))


@functools.lru_cache(maxsize=None)
def _grid_catalog(paths: tuple[Path, ...]) -> Mapping:
    if not GRID_FILE.is_file():
        raise InputError("grid", f"catalog file {GRID_FILE} is missing (broken install?)")
    regions: dict[str, GridRecord] = {}
    pue: dict[str, DefaultValue] = {}
    elec: dict[str, DefaultValue] = {}
    defaults: dict[str, str] = {}
    for f in [GRID_FILE] + [f for p in paths for f in _json_files(p, ENV_GRID)]:
        where = f" (in {f})"
        data = hwcat._read_json(f, "grid")
        if not isinstance(data, dict) or not ({"regions", "pue", "electricity_usd_per_kwh", "defaults"} & set(data)):
            raise InputError("grid", f"{f} must be a JSON object with 'regions' (and optionally 'pue', "
                                     f"'electricity_usd_per_kwh', 'defaults')")
        for rid, raw in (data.get("regions") or {}).items():
            key = str(rid).strip().lower()
            if not isinstance(raw, dict):
                raise InputError(f"grid.regions.{key}", f"must be an object with g_co2e_per_kwh, source, year{where}")
            g = _number(f"grid.regions.{key}.g_co2e_per_kwh", raw.get("g_co2e_per_kwh"), 0.0, 2000.0,
                        f" gCO2e/kWh{where}")
            year = raw.get("year")
            if isinstance(year, bool) or not isinstance(year, int) or not 1900 <= year <= 2100:
                raise InputError(f"grid.regions.{key}.year", f"must be a year such as 2023{where}, got {year!r}")
            regions[key] = GridRecord(key, g, _text(raw, "source", where), year,
                                      _text(raw, "name", where, required=False), _text(raw, "notes", where, False))
        for k, raw in (data.get("pue") or {}).items():
            pue[k] = _default_entry(f"grid.pue.{k}", raw, where, *PUE_RANGE, "(PUE)")
        for k, raw in (data.get("electricity_usd_per_kwh") or {}).items():
            elec[k] = _default_entry(f"grid.electricity_usd_per_kwh.{k}", raw, where, 0.0, 10.0, "USD/kWh")
        defaults.update(data.get("defaults") or {})
    for name, table in (("region", regions), ("pue_cloud", pue), ("pue_on_prem", pue), ("electricity", elec)):
        if defaults.get(name) not in table:
            raise InputError(f"grid.defaults.{name}", f"must name one of {', '.join(sorted(table))}, "
                                                      f"got {defaults.get(name)!r}")
    return MappingProxyType({"regions": MappingProxyType(regions), "pue": MappingProxyType(pue),
                             "electricity": MappingProxyType(elec), "defaults": MappingProxyType(defaults)})


def _grid() -> Mapping:
    return _grid_catalog(_paths(ENV_GRID))


def list_regions() -> list[GridRecord]:
    regions = _grid()["regions"]
    return [regions[k] for k in sorted(regions)]


def grid_intensity(region: str) -> GridRecord:
    """The grid carbon intensity of a region id (case-insensitive): a country (``france``), ``world``, ``us``,
    ``eu``, or a cloud region (``us-east-1``, ``us-central1``, ``europe-west4`` ...)."""
    regions = _grid()["regions"]
    key = region.strip().lower() if isinstance(region, str) else None
    if key not in regions:
        raise InputError("region", f"unknown {region!r}; use one of {', '.join(sorted(regions))} (or add one via "
                                   f"{ENV_GRID})")
    return regions[key]


def carbon_kg(kwh: float, region: str) -> float:
    """kg CO2e = kWh x gCO2e/kWh / 1000 (location-based: the grid's average, not the operator's purchases)."""
    e = _number("energy_kwh", kwh, 0.0, 1e15, " kWh")
    return e * grid_intensity(region).g_co2e_per_kwh / 1000.0


def pue_value(key: str) -> DefaultValue:
    """A named PUE (``hyperscale`` 1.10, ``enterprise-average`` 1.58, ``none`` 1.0) with its source."""
    pue = _grid()["pue"]
    if key not in pue:
        raise InputError("pue", f"unknown PUE name {key!r}; use one of {', '.join(sorted(pue))} or a number")
    return pue[key]


def default_pue(tier: str = "on-demand") -> DefaultValue:
    """Hyperscale PUE for cloud tiers, the industry-average PUE for ``purchase`` (your own data center)."""
    d = _grid()["defaults"]
    return pue_value(d["pue_on_prem"] if tier in TIERS_WITHOUT_ELECTRICITY else d["pue_cloud"])


def electricity_price(key: str | None = None) -> DefaultValue:
    elec, d = _grid()["electricity"], _grid()["defaults"]
    key = d["electricity"] if key is None else key
    if key not in elec:
        raise InputError("electricity", f"unknown {key!r}; use one of {', '.join(sorted(elec))} or a number")
    return elec[key]


def default_region() -> str:
    return _grid()["defaults"]["region"]


# ---------------------------------------------------------------------------------------------------------------
# power and energy


def power_model(hardware_obj, utilization: float = DEFAULT_UTILIZATION, pue: float | None = None) -> PowerModel:
    """Power model of one device. ``idle_w``/``tdp_w`` come from the hardware record; ``utilization`` is the
    fraction of the idle-to-TDP range drawn (power, not SM occupancy; default 1.0 = TDP, see
    ``DEFAULT_UTILIZATION_SOURCE``); ``pue`` None = the hyperscale default (1.10, Google fleet 2023)."""
    hw = hwcat.load_hardware(hardware_obj)
    u = _number("utilization", utilization, 0.0, 1.0, " (fraction of the idle-to-TDP power range)")
    if pue is None:
        d = default_pue()
        p, pue_src = d.value, f"default PUE {d.value:g} ({d.key}): {d.source}"
    else:
        p, pue_src = _number("pue", pue, *PUE_RANGE, " (facility power / IT power)"), "given"
    u_src = DEFAULT_UTILIZATION_SOURCE if utilization == DEFAULT_UTILIZATION else "given"
    src = f"idle_w/tdp_w: {hw.id} ({hw.source}); utilization: {u_src}; pue: {pue_src}"
    return PowerModel(float(hw.idle_w), float(hw.tdp_w), u, p, src)


def device_power_w(pm: PowerModel) -> float:
    """IT power of ONE device in watts: idle_w + utilization x (tdp_w - idle_w). No PUE, no host CPU/RAM."""
    return pm.idle_w + pm.utilization * (pm.tdp_w - pm.idle_w)


def energy_kwh(gpu_hours: float, pm: PowerModel) -> float:
    """Facility energy in kWh: gpu_hours x device_power_w x pue / 1000."""
    h = _number("gpu_hours", gpu_hours, 0.0, 1e12, " device-hours")
    return h * device_power_w(pm) * pm.pue / 1000.0


# ---------------------------------------------------------------------------------------------------------------
# the breakdown


def cost_breakdown(gpu_hours: float, hardware, *, provider: str | None = None, tier: str = "on-demand",
                   utilization: float = DEFAULT_UTILIZATION, pue: float | None = None, region: str = "world",
                   electricity_usd_per_kwh: float | None = None, storage_bytes: float = 0.0,
                   storage_months: float = 0.0, storage_tier: str = "object-standard",
                   storage_usd_per_gb_month: float | None = None) -> CostBreakdown:
    """Hardware, storage, energy and carbon for ``gpu_hours`` device-hours on ``hardware`` (id or Hardware).

    compute_usd = gpu_hours x price_per_gpu_hour(hardware, provider, tier); energy_kwh = gpu_hours x device power x
    PUE / 1000; energy_usd = energy_kwh x electricity price; carbon = energy_kwh x grid intensity of ``region``
    (default ``world``: the world average); storage_usd = storage_cost_usd(storage_bytes, storage_months). PUE
    defaults to 1.10 (hyperscale) for cloud tiers and 1.58 (industry average) for ``purchase``. ``assumptions`` maps
    each assumption to {"value", "source"} so every number can be shown next to what it rests on."""
    hours = _number("gpu_hours", gpu_hours, 0.0, 1e12, " device-hours")
    hw = hwcat.load_hardware(hardware)
    price = price_per_gpu_hour(hw.id, provider, tier)
    if pue is None:
        d = default_pue(tier)
        pue_v, pue_src = d.value, f"default for tier {tier} ({d.key}): {d.source}"
    else:
        pue_v, pue_src = _number("pue", pue, *PUE_RANGE, " (facility power / IT power)"), "given"
    pm = power_model(hw, utilization, pue_v)
    kwh = energy_kwh(hours, pm)
    grid = grid_intensity(region)
    if electricity_usd_per_kwh is None:
        e = electricity_price()
        elec_v, elec_src = e.value, f"default ({e.key}): {e.source}"
    else:
        elec_v = _number("electricity_usd_per_kwh", electricity_usd_per_kwh, 0.0, 10.0, " USD/kWh")
        elec_src = "given"
    if storage_usd_per_gb_month is None:
        s = storage_price(storage_tier)
        st_v, st_src = s.usd_per_gib_month, f"{s.tier} ({s.date}): {s.source}"
    else:
        st_v, st_src = storage_usd_per_gb_month, "given"
    storage_usd = storage_cost_usd(storage_bytes, storage_months, st_v)
    in_price = tier not in TIERS_WITHOUT_ELECTRICITY
    a = {
        "usd_per_gpu_hour": {"value": price.usd_per_gpu_hour,
                             "source": f"{price.provider} {price.tier} ({price.date}): {price.source}. {price.notes}"},
        "provider": {"value": price.provider, "source": "given" if provider is not None else
                     "default: the median on-demand price across providers (one provider: its record)"},
        "tier": {"value": tier, "source": "given" if tier != "on-demand" else "default"},
        "idle_w": {"value": pm.idle_w, "source": f"{hw.id}: {hw.source}"},
        "tdp_w": {"value": pm.tdp_w, "source": f"{hw.id}: {hw.source}"},
        "utilization": {"value": pm.utilization, "source": DEFAULT_UTILIZATION_SOURCE
                        if utilization == DEFAULT_UTILIZATION else "given"},
        "device_power_w": {"value": device_power_w(pm), "source": "idle_w + utilization x (tdp_w - idle_w), "
                                                                  "IT power of one device"},
        "pue": {"value": pm.pue, "source": pue_src},
        "region": {"value": grid.region, "source": "default (world average)" if region == "world" else "given"},
        "grid_g_co2e_per_kwh": {"value": grid.g_co2e_per_kwh, "source":
                                f"{grid.name or grid.region}, {grid.year}: {grid.source}. {grid.notes}".strip()},
        "electricity_usd_per_kwh": {"value": elec_v, "source": elec_src},
        "electricity_in_compute_price": {"value": in_price, "source":
                                         "cloud GPU-hour prices include power and cooling: energy_usd is shown for "
                                         "comparison and not added to total_usd" if in_price else
                                         "purchase prices exclude power: energy_usd is added to total_usd"},
        "storage_usd_per_gb_month": {"value": st_v, "source": st_src + " (GB = 2^30 bytes, as S3/GCS bill)"},
        "storage_bytes": {"value": float(storage_bytes), "source": "given"},
        "storage_months": {"value": float(storage_months), "source": "given"},
    }
    return CostBreakdown(compute_usd=hours * price.usd_per_gpu_hour, storage_usd=storage_usd, energy_kwh=kwh,
                         energy_usd=kwh * elec_v, carbon_kg_co2e=kwh * grid.g_co2e_per_kwh / 1000.0,
                         gpu_hours=hours, assumptions=a)
