"""The price and grid catalogs: GPU-hour prices, storage prices, grid carbon intensity, PUE and electricity
prices, each record with its ``source`` and ``date``/``year``.

Data lives in ``costmodel/assets/prices/*.json`` (one file per provider, plus ``storage.json``) and
``costmodel/assets/grid/carbon_intensity.json``. Files are read on first use, never at import, and cached per catalog
state (``costmodel.catalog.catalog_state``: the user folders named and the files' modification times), as are the
sorted price lists and the medians across providers.

User overrides follow the hardware catalog's pattern: ``COSTMODEL_PRICES_DIR`` and ``COSTMODEL_GRID_DIR`` each
take paths separated by ``os.pathsep`` (``:`` on Linux); a path may be a folder of ``*.json`` files or one file
of the same schema. A user price record with the same (hardware, provider, tier) replaces the built-in one; a user
region, PUE or electricity entry with the same key replaces the built-in one.

The formulas that use these numbers (power, energy, carbon, money) are in ``costmodel.costs``.
"""

from __future__ import annotations

import functools
import os
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Mapping

from . import catalog as hwcat
from .cache import BoundedCache
from .errors import InputError
from .validate import check_number as _number

PRICES_DIR = hwcat.ASSETS_DIR / "prices"
GRID_FILE = hwcat.ASSETS_DIR / "grid" / "carbon_intensity.json"
ENV_PRICES = "COSTMODEL_PRICES_DIR"
ENV_GRID = "COSTMODEL_GRID_DIR"

TIERS = ("on-demand", "spot", "reserved-1y", "reserved-3y", "capacity-block", "purchase")
# Tiers whose price does not include electricity (the buyer pays the power bill).
TIERS_WITHOUT_ELECTRICITY = ("purchase",)
HOURS_PER_YEAR = 8760.0  # 365 x 24: amortization assumes the device is in use around the clock
GIB = float(1 << 30)
PUE_RANGE = (1.0, 5.0)
_DATE = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

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



# ---------------------------------------------------------------------------------------------------------------
# validation helpers



def _paths(env: str, value: str | None = None) -> tuple[Path, ...]:
    """The user paths an environment variable names (``value``: its value, default the environment's)."""
    value = os.environ.get(env, "") if value is None else value
    return tuple(Path(p).expanduser() for p in value.split(os.pathsep) if p.strip())


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


@functools.lru_cache(maxsize=4)
def _price_catalog(paths: tuple[Path, ...], hw_ids: frozenset, state: tuple = ()) -> tuple[Mapping, Mapping]:
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
    return _prices_for(hwcat.catalog_state())


@functools.lru_cache(maxsize=4)
def _prices_for(state: tuple) -> tuple[Mapping, Mapping]:
    """The price catalog of one ``catalog_state()`` (user paths from its environment, ids of its hardware)."""
    return _price_catalog(_paths(ENV_PRICES, state[0][hwcat.CATALOG_ENVS.index(ENV_PRICES)]),
                          frozenset(hwcat.catalog()), state)


@functools.lru_cache(maxsize=4)
def _price_index(state: tuple) -> tuple[tuple[PriceRecord, ...], Mapping, tuple[str, ...]]:
    """(every record sorted by hardware, provider, tier; hardware id -> its records in that order; providers),
    worked out once per catalog state instead of sorting the catalog on every look-up."""
    prices, _ = _prices_for(state)
    every = tuple(prices[k] for k in sorted(prices))
    by_hw: dict[str, list[PriceRecord]] = {}
    for r in every:
        by_hw.setdefault(r.hardware, []).append(r)
    return every, MappingProxyType({k: tuple(v) for k, v in by_hw.items()}), tuple(sorted({k[1] for k in prices}))


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
    every, by_hw, _ = _price_index(hwcat.catalog_state())
    rows = every if hw is None else by_hw.get(hw, ())
    return [r for r in rows if (prov is None or r.provider == prov) and (tier is None or r.tier == tier)]


def list_providers() -> list[str]:
    return list(_price_index(hwcat.catalog_state())[2])


# (hardware, provider, tier, catalog state) -> PriceRecord (~1.5 KB with its joined sources)
_PRICE_MEMO = BoundedCache("prices.price_per_gpu_hour", 2048, 4e6, lambda rec: 1500.0)


def price_per_gpu_hour(hardware: str, provider: str | None = None, tier: str = "on-demand") -> PriceRecord:
    """The price of one device-hour.

    With ``provider``: that provider's record for (hardware, tier). Without: if one provider has a record, that
    record; if several do, the MEDIAN of their prices (``statistics.median``: the mean of the two middle values
    for an even count), returned as provider ``"median of N providers"`` with every source joined and the date
    span. The median resists one outlier (a hyperscaler's list price or a marketplace's spot rate).
    Worked out once per (hardware, provider, tier) and catalog state (``catalog.catalog_state``)."""
    try:
        key = (hardware, provider, tier, hwcat.catalog_state())
        hit = _PRICE_MEMO.get(key, None)
    except TypeError:  # an unhashable argument: refused below, naming the field
        key = hit = None
    if hit is not None:
        return hit
    out = _price_per_gpu_hour(hardware, provider, tier)
    if key is not None:
        _PRICE_MEMO.put(key, out)
    return out


def _price_per_gpu_hour(hardware: str, provider: str | None = None, tier: str = "on-demand") -> PriceRecord:
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


@functools.lru_cache(maxsize=4)
def _grid_catalog(paths: tuple[Path, ...], state: tuple = ()) -> Mapping:
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
    return _grid_for(hwcat.catalog_state())


@functools.lru_cache(maxsize=4)
def _grid_for(state: tuple) -> Mapping:
    return _grid_catalog(_paths(ENV_GRID, state[0][hwcat.CATALOG_ENVS.index(ENV_GRID)]), state)


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


