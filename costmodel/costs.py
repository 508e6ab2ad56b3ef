"""Money, energy and carbon: the power model and the cost formulas (docs/costs.md gives every default and its
source; the prices and grid intensities they use come from ``costmodel.prices``).

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

from dataclasses import asdict, dataclass, field

from . import catalog as hwcat
from .cache import BoundedCache
from .errors import InputError
from .prices import (ENV_GRID, ENV_PRICES, GIB, PUE_RANGE, TIERS_WITHOUT_ELECTRICITY, PriceRecord, default_pue, electricity_price,
                     grid_intensity, list_prices, price_per_gpu_hour, storage_price)
from .results import UnitRates
from .validate import check_number as _number


# Power drawn between idle and TDP. 1.0 = TDP, the convention of published training footprints: the Llama 2 paper
# (Touvron et al. 2023, Table 2: "peak power capacity per GPU device ... adjusted for power usage efficiency",
# 400 W per A100) and the Llama 3 model card (H100-80GB, "TDP of 700W"). An upper bound for a busy GPU.
DEFAULT_UTILIZATION = 1.0
DEFAULT_UTILIZATION_SOURCE = ("default 1.0 = TDP, as in published training footprints (Llama 2 paper, Touvron et al. "
                              "2023, Table 2: peak power per GPU; Llama 3 model card: H100 TDP 700 W)")

@dataclass(frozen=True)
class PowerModel:
    """Per-device power: ``idle_w + utilization x (tdp_w - idle_w)`` of IT power, times ``pue`` at the meter."""

    idle_w: float
    tdp_w: float
    utilization: float
    pue: float
    source: str



@dataclass(frozen=True)
class CostBreakdown:
    """Cost of ``gpu_hours`` device-hours. ``compute_usd`` = gpu_hours x price. ``energy_usd`` is what the
    electricity would cost at ``assumptions['electricity_usd_per_kwh']``; cloud prices already include it, so
    it is only added to ``total_usd`` for tiers in ``TIERS_WITHOUT_ELECTRICITY`` (purchase)."""

    compute_usd: float | None  # None: no price for this device
    storage_usd: float
    energy_kwh: float
    energy_usd: float
    carbon_kg_co2e: float
    gpu_hours: float
    assumptions: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def total_usd(self) -> float | None:
        if self.compute_usd is None:
            return None
        included = self.assumptions.get("electricity_in_compute_price", {}).get("value", True)
        return self.compute_usd + self.storage_usd + (0.0 if included else self.energy_usd)

    def to_dict(self) -> dict:
        out = asdict(self)
        out["total_usd"] = self.total_usd
        return out



def storage_cost_usd(bytes_: float, months: float, usd_per_gb_month: float | None = None,
                     tier: str = "object-standard") -> float:
    """USD = bytes / 2^30 x months x price. ``usd_per_gb_month`` is in the unit providers bill (AWS S3 and GCS
    bill binary gigabytes, 2^30 bytes); None takes the price of ``tier`` from costmodel/assets/prices/storage.json."""
    b = _number("storage_bytes", bytes_, 0.0, 1e21, " bytes")
    m = _number("storage_months", months, 0.0, 1200.0, " months")
    price = (storage_price(tier).usd_per_gib_month if usd_per_gb_month is None
             else _number("usd_per_gb_month", usd_per_gb_month, 0.0, 1e3, " USD"))
    return b / GIB * m * price



def carbon_kg(kwh: float, region: str) -> float:
    """kg CO2e = kWh x gCO2e/kWh / 1000 (location-based: the grid's average, not the operator's purchases)."""
    e = _number("energy_kwh", kwh, 0.0, 1e15, " kWh")
    return e * grid_intensity(region).g_co2e_per_kwh / 1000.0



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


def device_hour_price(hw, provider: str | None = None, tier: str = "on-demand",
                      usd_per_device_hour: float | None = None) -> PriceRecord | None:
    """The price of one device-hour, in this order: ``usd_per_device_hour`` when given (a negotiated price); the
    record's own ``usd_per_device_hour`` (a device file may carry one); for a catalog record, the catalog's
    (``costmodel.prices.price_per_gpu_hour``). None when there is no price: a device file or custom device
    without its own (even one reusing a catalog id: its numbers are not the catalog device's), or a catalog
    device the price catalog lacks. Time and energy are still reported, money is not. A provider the user named
    for a device without catalog prices, or a provider/tier the catalog lacks, is an error."""
    if usd_per_device_hour is not None:
        usd = _number("usd_per_device_hour", usd_per_device_hour, 0.0, 1e6, " USD")
        if usd <= 0:
            raise InputError("usd_per_device_hour", f"must be > 0 USD, got {usd_per_device_hour!r}")
        return PriceRecord(hw.id, provider or "given", tier, usd, "given (--usd-per-device-hour)", "", "")
    if hw.usd_per_device_hour is not None:
        return PriceRecord(hw.id, provider or "hardware record", tier, float(hw.usd_per_device_hour),
                           f"usd_per_device_hour of the hardware record {hw.id} ({hw.source})", "", "")
    if not hwcat.is_catalog_record(hw):
        if provider is not None:
            raise InputError("provider", f"{provider!r}: the device {hw.id!r} is not the catalog's record, so the "
                                         "price catalog does not apply; give usd_per_device_hour in its file or "
                                         "--usd-per-device-hour")
        return None
    if provider is None and not list_prices(hardware=hw.id):
        return None
    return price_per_gpu_hour(hw.id, provider, tier)


def _no_price_reason(hw) -> str:
    if hwcat.is_catalog_record(hw):
        return f"no price for {hw.id} in the catalog: give one with --usd-per-device-hour (or a price file)"
    return (f"no price for the device file / custom device {hw.id}: give usd_per_device_hour in its record or "
            "--usd-per-device-hour (the catalog's prices apply only to the catalog's own records)")


def cost_breakdown(gpu_hours: float, hardware, *, provider: str | None = None, tier: str = "on-demand",
                   utilization: float = DEFAULT_UTILIZATION, pue: float | None = None, region: str = "world",
                   electricity_usd_per_kwh: float | None = None, storage_bytes: float = 0.0,
                   storage_months: float = 0.0, storage_tier: str = "object-standard",
                   storage_usd_per_gb_month: float | None = None,
                   usd_per_device_hour: float | None = None) -> CostBreakdown:
    """Hardware, storage, energy and carbon for ``gpu_hours`` device-hours on ``hardware`` (id or Hardware).

    compute_usd = gpu_hours x price per device-hour (``device_hour_price``: ``usd_per_device_hour`` if given,
    else the catalog's for ``provider``/``tier``; None when the device has no price); energy_kwh = gpu_hours x
    device power x PUE / 1000; energy_usd = energy_kwh x electricity price; carbon = energy_kwh x grid intensity
    of ``region`` (default ``world``: the world average); storage_usd = storage_cost_usd(storage_bytes,
    storage_months). PUE defaults to 1.10 (hyperscale) for cloud tiers and 1.58 (industry average) for
    ``purchase``. ``assumptions`` maps each assumption to {"value", "source"} so every number can be shown next
    to what it rests on."""
    hours = _number("gpu_hours", gpu_hours, 0.0, 1e12, " device-hours")
    hw = hwcat.load_hardware(hardware)
    price = device_hour_price(hw, provider, tier, usd_per_device_hour)
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
                             "source": f"{price.provider} {price.tier} ({price.date}): {price.source}. {price.notes}"}
        if price is not None else {"value": None, "source": _no_price_reason(hw)},
        "provider": {"value": price.provider if price is not None else None,
                     "source": "given" if provider is not None else
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
    return CostBreakdown(compute_usd=hours * price.usd_per_gpu_hour if price is not None else None, storage_usd=storage_usd, energy_kwh=kwh,
                         energy_usd=kwh * elec_v, carbon_kg_co2e=kwh * grid.g_co2e_per_kwh / 1000.0,
                         gpu_hours=hours, assumptions=a)


# ---------------------------------------------------------------------------------------------------------------
# per unit of a run


# (hardware record, pricing, catalog state) -> (the CostBreakdown of one device-hour, the part of its assumptions an
# estimate lists); ~4 KB each
_HOURLY = BoundedCache("costs.hourly_cost", 1024, 8e6, lambda entry: 4000.0)


def hourly_cost(hw, pricing: dict | None = None) -> CostBreakdown:
    """``cost_breakdown`` of one device-hour, cached per (device record, pricing, ``catalog.catalog_state()``):
    sweeps price many estimates of the same device at the same rates, so the price look-up, the median across
    providers, the power model and the grid intensity are worked out once per catalog change, not per call."""
    return _hourly_entry(hw, pricing)[0]


def _hourly_entry(hw, pricing: dict | None) -> tuple[CostBreakdown, dict]:
    """(``hourly_cost``, its assumptions without the storage ones: what ``costmodel.api.with_costs`` lists)."""
    hw = hwcat.load_hardware(hw)
    try:
        key = (hw, tuple(sorted(pricing.items())) if pricing else (), hwcat.catalog_state())
        hit = _HOURLY.get(key, None)
    except TypeError:  # an unhashable pricing value: no caching
        key = hit = None
    if hit is None:
        hour = cost_breakdown(1.0, hw, **(pricing or {}))
        hit = (hour, {k: v for k, v in hour.assumptions.items() if not k.startswith("storage")})
        if key is not None:
            _HOURLY.put(key, hit)
    return hit


def unit_rates(per_hour: float, unit: str, unit_s: float, tokens_per_s: float | None = None,
               samples_per_s: float | None = None) -> UnitRates:
    """A quantity per device-hour (USD, kWh, kg CO2e) turned into the run's units:
    per unit = per_hour x unit_s / 3600; per million tokens = per_hour / 3600 x 1e6 / tokens_per_s (text);
    per 1,000 samples = per_hour / 3600 x 1e3 / samples_per_s (images, vectors)."""
    return UnitRates(
        unit=unit, per_unit=per_hour * unit_s / 3600.0, per_hour=per_hour,
        per_million_tokens=None if tokens_per_s is None else (
            per_hour / 3600.0 * 1e6 / tokens_per_s if tokens_per_s else 0.0),
        per_thousand_samples=None if samples_per_s is None else (
            per_hour / 3600.0 * 1e3 / samples_per_s if samples_per_s else 0.0))
