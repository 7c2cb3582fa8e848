"""Years of a mixed fleet in seconds: one step per day, every cell of every pack at once.

A day is not time-stepped: its duty (cycles, depth, SoC, RMS and peak current) is drawn from
the pack kind, the pack's usage intensity, the weekday and the season, and its consequences
follow in closed form (I²R heat through the pack's thermal resistance, charge moved, SoC
held). Ageing then advances one day for every cell under that day's stress, with cell-to-cell
and pack-to-pack spread. The history rows are what the BMS would report (noisy estimates and
daily diagnostics and trips); the truth (capacities, resistances, fault onsets and trips,
abuse) is kept apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import pandas as pd

from cellwarden.simulation.fleet.abuse import (
    DEEP_DISCHARGE,
    HISTORY_COLUMNS,
    OVER_TEMPERATURE,
    Abuse,
)
from cellwarden.simulation.fleet.ageing_laws import LAWS, DayStress
from cellwarden.simulation.fleet.faults import (
    CONTACTOR_TRIP_RATIO,
    CURRENT_OFFSET_TRIP_C,
    FAULT_KINDS,
    OVER_TEMPERATURE_C,
    SELF_DISCHARGE_START_A,
    UNDER_VOLTAGE_SAG_V,
    VOLTAGE_OFFSET_TRIP_MV,
    FaultPlan,
)
from cellwarden.simulation.fleet.kinds import (
    INDOOR_COUPLING,
    INDOOR_SETPOINT_C,
    KINDS,
    Climate,
    FleetSpecError,
    PackKind,
    parse_mix,
    parse_sites,
)

OCV_SLOPE_MV_PER_PCT = {"NMC": 8.0, "LFP": 2.0, "LTO": 5.0}
BALANCE_HOURS_PER_DAY = 6.0
CONTACTOR_RESISTANCE_MOHM = 0.3
DERATE_TEMP_C = 45.0  # the BMS derates from here, 10 K below the over-temperature trip
FLOAT_CURRENT_C = 0.005  # a floating telecom pack's current, per Ah
WEATHER_SD_C = 1.8  # day-to-day innovation of the weather anomaly (AR(1), 0.7 a day)
SOH_NOISE_PCT = 0.3  # sd of the BMS capacity estimate from one day to the next
CELL_SPREAD_FLOOR_MV = 3.0  # cell voltage spread of a balanced pack at rest (channel offsets)
CELL_SPREAD_NOISE = (0.1, 1.0)  # its reading: log-normal sd, then additive sd in mV
ENERGY_NOISE = 0.002  # relative sd of the pack voltage in the energy integrals
# the trips of the developing faults that the BMS records as negative events
FAULT_EVENTS = {"self_discharge": DEEP_DISCHARGE, "resistance_growth": DEEP_DISCHARGE,
                "cooling": OVER_TEMPERATURE}  # fmt: skip


@dataclass(frozen=True)
class FleetSpec:
    packs: int
    days: int
    seed: int = 0
    mix: str | None = None
    sites: str | None = None
    start: date = date(2023, 1, 1)
    ageing_law: str = "plant"
    fault_fraction: float = 0.2
    stagger_days: int = 180
    abuse: float = 0.0  # scale of the abuse rates (abuse.py): 0 none, 1 as documented

    def __post_init__(self) -> None:
        if self.packs < 1 or self.days < 1:
            raise FleetSpecError("a fleet needs at least one pack and one day")
        if self.ageing_law not in LAWS:
            raise FleetSpecError(
                f"unknown ageing law {self.ageing_law!r}; known: {', '.join(LAWS)}"
            )
        if not 0.0 <= self.fault_fraction <= 1.0:
            raise FleetSpecError("the fault fraction is between 0 and 1")
        if not 0.0 <= self.abuse <= 10.0:
            raise FleetSpecError("the abuse scale is between 0 and 10")


@dataclass
class FleetRun:
    """The simulated fleet: what the cloud would hold, and the truth kept apart."""

    history: pd.DataFrame
    truth_daily: pd.DataFrame
    truth_packs: pd.DataFrame
    spec: FleetSpec = field(repr=False)


class _Fleet:
    """Per-pack and per-cell constants drawn once; cells flattened pack after pack."""

    def __init__(self, spec: FleetSpec, rng: np.random.Generator) -> None:
        mix = parse_mix(spec.mix)
        sites = parse_sites(spec.sites)
        names = list(mix)
        shares = np.array([mix[name] for name in names], dtype=float)
        counts = np.floor(shares / shares.sum() * spec.packs).astype(int)
        for extra in np.argsort(-(shares / shares.sum() * spec.packs - counts))[
            : spec.packs - counts.sum()
        ]:
            counts[extra] += 1
        kind_names = rng.permutation(np.repeat(names, counts))
        self.kinds: list[PackKind] = [KINDS[name] for name in kind_names]
        serials: dict[str, int] = {}
        self.pack_ids = []
        for kind in self.kinds:
            serials[kind.name] = serials.get(kind.name, 0) + 1
            self.pack_ids.append(f"{kind.name}-{serials[kind.name]:03d}")
        n = spec.packs
        self.sites: list[Climate] = [sites[i] for i in rng.integers(0, len(sites), n)]
        self.site_index = np.array([sites.index(site) for site in self.sites])
        self.site_list = sites
        self.commission_day = rng.integers(0, min(spec.stagger_days, spec.days // 3) + 1, n)
        self.usage = rng.lognormal(0.0, 0.3, n)

        def per_pack(getter) -> np.ndarray:
            return np.array([getter(kind) for kind in self.kinds], dtype=float)

        self.rated_ah = per_pack(lambda k: k.capacity_ah)
        self.cells = per_pack(lambda k: k.cells_series).astype(int)
        self.chemistry = [kind.chemistry for kind in self.kinds]
        self.thermal_k_per_w = per_pack(lambda k: k.thermal_resistance_k_per_w) * rng.normal(
            1.0, 0.1, n
        )
        self.contactor_mohm = CONTACTOR_RESISTANCE_MOHM * rng.normal(1.0, 0.1, n)
        self.starts = np.concatenate([[0], np.cumsum(self.cells)[:-1]])
        self.pack_of_cell = np.repeat(np.arange(n), self.cells)
        cells = int(self.cells.sum())
        pack_capacity = self.rated_ah * rng.normal(1.005, 0.01, n)
        self.new_cell_capacity_ah = pack_capacity[self.pack_of_cell] * rng.normal(1.0, 0.008, cells)
        self.cell_resistance_mohm = per_pack(lambda k: k.cell_resistance_mohm)[
            self.pack_of_cell
        ] * rng.normal(1.0, 0.04, cells)
        self.cell_temp_offset_c = rng.normal(0.0, 0.8, cells)
        self.sensitivity = (rng.lognormal(0.0, 0.1, n)[self.pack_of_cell]) * rng.lognormal(
            0.0, 0.04, cells
        )
        capacity_scale = self.rated_ah[self.pack_of_cell] / 20.0
        self.natural_leak_a = rng.lognormal(np.log(2e-5), 0.5, cells) * capacity_scale
        self.coulombic_loss = rng.uniform(0.0, 3e-5, cells)
        self.current_bias_a = rng.normal(0.0, 0.002, n) * self.rated_ah
        self.voltage_bias_mv = rng.normal(0.0, 3.0, n)
        self.voltage_sign = rng.choice([-1.0, 1.0], n)
        self.faults = FaultPlan.draw(
            rng,
            n,
            spec.days,
            spec.fault_fraction,
            self.cells,
            self.rated_ah,
            np.array([kind.name == "telecom" for kind in self.kinds]),
        )
        self.faults.onset_day = np.maximum(self.faults.onset_day, self.commission_day + 60.0)
        self.law = LAWS[spec.ageing_law](
            np.array(self.chemistry)[self.pack_of_cell], self.sensitivity
        )
        # its own random stream: without abuse, the fleet is the same as before it existed
        self.abuse = Abuse(
            np.random.default_rng([spec.seed, 2]), spec.abuse, self.kinds, self.commission_day,
            spec.days, self.pack_of_cell,
        )  # fmt: skip

    def per_pack(self, reduce, cell_values: np.ndarray) -> np.ndarray:
        return reduce.reduceat(cell_values, self.starts)

    def cell_of_fault(self) -> np.ndarray:
        return self.starts + self.faults.cell

    def cell_capacity_ah(self) -> np.ndarray:
        """Every cell's capacity now, aged and abused."""
        fade = np.minimum(self.law.capacity_fade + self.abuse.fade, 0.95)
        return self.new_cell_capacity_ah * (1.0 - fade)


def simulate_fleet(spec: FleetSpec) -> FleetRun:
    """Run the fleet day by day."""
    rng = np.random.default_rng(spec.seed)
    fleet = _Fleet(spec, rng)
    noise = np.random.default_rng([spec.seed, 1])  # measurement noise apart from the physics
    reading = np.random.default_rng([spec.seed, 3])  # that of the readings added for passports
    n = spec.packs
    kinds = fleet.kinds

    def per_kind(getter) -> np.ndarray:
        return np.array([getter(kind) for kind in kinds], dtype=float)

    efc_nominal = per_kind(lambda k: k.efc_per_day)
    dod_nominal = per_kind(lambda k: k.dod)
    target = per_kind(lambda k: k.charge_target)
    use_hours = per_kind(lambda k: k.use_hours)
    work_days = per_kind(lambda k: k.work_days_per_week)
    c_rms = per_kind(lambda k: k.c_rms)
    c_peak = per_kind(lambda k: k.c_peak)
    indoor = per_kind(lambda k: k.indoor).astype(bool)
    bleed_a = per_kind(lambda k: k.bleed_current_a)
    summer_boost = per_kind(lambda k: k.summer_usage_boost)
    telecom = np.array([k.name == "telecom" for k in kinds])
    slope_mv = np.array([OCV_SLOPE_MV_PER_PCT[c] for c in fleet.chemistry])
    southern = np.array([site.southern for site in fleet.sites])
    voltage_nominal_v = per_kind(lambda k: k.voltage_nominal_v)
    rated_resistance_mohm = per_kind(lambda k: k.cell_resistance_mohm * k.cells_series)

    faults = fleet.faults
    abuse = fleet.abuse
    fault_active = faults.kind >= 0
    fault_event = np.array(
        [FAULT_EVENTS.get(FAULT_KINDS[k], "") if k >= 0 else "" for k in faults.kind]
    )
    trip_day = np.full(n, -1)
    imbalance_ah = np.zeros(n)
    weather = np.zeros(len(fleet.site_list))
    efc_total = np.zeros(n)
    fault_cell = fleet.cell_of_fault()
    rows: list[dict[str, np.ndarray]] = []
    truth_rows: list[dict[str, np.ndarray]] = []

    for day in range(spec.days):
        today = spec.start + timedelta(days=day)
        day_of_year = today.timetuple().tm_yday
        weather = 0.7 * weather + rng.normal(0.0, WEATHER_SD_C, len(weather))
        outdoor_mean = (
            np.array([site.daily_mean_c(np.array(day_of_year)) for site in fleet.site_list])[
                fleet.site_index
            ]
            + weather[fleet.site_index]
        )
        outdoor_peak = outdoor_mean + np.array([site.daily_peak_c for site in fleet.sites])
        ambient = np.where(
            indoor,
            INDOOR_SETPOINT_C + INDOOR_COUPLING * (outdoor_mean - INDOOR_SETPOINT_C),
            outdoor_mean,
        )
        ambient_peak = np.where(indoor, ambient + INDOOR_COUPLING * (outdoor_peak - outdoor_mean),
                                outdoor_peak)  # fmt: skip

        in_service = day >= fleet.commission_day
        season = np.cos((day_of_year - 196.0) / 365.25 * 2 * np.pi) * np.where(southern, -1, 1)
        working = (today.weekday() < work_days) & in_service
        intensity = fleet.usage * (1.0 + summer_boost * season) * rng.gamma(6.0, 1.0 / 6.0, n)
        outage = telecom & (rng.random(n) < 0.03)
        efc = np.where(working, efc_nominal * intensity, 0.0)
        dod = np.where(working, np.clip(dod_nominal * np.sqrt(intensity), 0.02, 0.95), 0.0)
        efc = np.where(telecom & working, np.where(outage, dod, 0.002), efc)
        dod = np.where(telecom & working & ~outage, 0.002, dod)
        soc_mean = np.where(in_service, target - dod * (0.25 + 0.5 * use_hours / 24.0), target)
        current_rms = np.where(efc > 0, c_rms * fleet.rated_ah * np.sqrt(intensity), 0.0)
        current_rms = np.where(telecom & ~outage, FLOAT_CURRENT_C * fleet.rated_ah, current_rms)
        current_peak = np.where(efc > 0, c_peak * fleet.rated_ah * rng.normal(1.0, 0.1, n), 0.0)

        # developing faults
        growth = faults.growth(day, fault_active)
        resistance_fault = np.ones(int(fleet.cells.sum()))
        resistance_fault[fault_cell] = np.where(
            faults.is_kind("resistance_growth"), 1.0 + 0.05 * growth, 1.0
        )
        cooling_factor = np.where(faults.is_kind("cooling"), 1.0 + 0.1 * growth, 1.0)
        contactor_ratio = np.where(faults.is_kind("contactor"), 1.0 + 0.05 * growth, 1.0)
        leak_a = np.where(
            faults.is_kind("self_discharge") & (growth > 0),
            SELF_DISCHARGE_START_A * (growth + 1.0), 0.0,
        )  # fmt: skip
        drift = faults.drift(day, fault_active)
        current_offset = fleet.current_bias_a + np.where(faults.is_kind("current_sensor"), drift, 0)
        voltage_drift_mv = np.where(faults.is_kind("voltage_sensor"), drift, 0.0)

        # heat and temperatures
        cell_resistance = (
            fleet.cell_resistance_mohm
            * (1.0 + fleet.law.resistance_growth + abuse.resistance_growth)
            * resistance_fault
        )
        pack_resistance_mohm = fleet.per_pack(np.add, cell_resistance)
        contactor_mohm = fleet.contactor_mohm * contactor_ratio
        heat_w = current_rms**2 * (pack_resistance_mohm + contactor_mohm) / 1000.0
        # the BMS derates the current so that the pack, as designed, stays below the limit
        allowed_rise = np.maximum(DERATE_TEMP_C - ambient_peak, 1.0)
        derate = np.minimum(1.0, allowed_rise / np.maximum(heat_w * fleet.thermal_k_per_w, 1e-9))
        current_rms *= np.sqrt(derate)
        heat_w *= derate
        rise_c = heat_w * fleet.thermal_k_per_w * cooling_factor
        busy = np.minimum(1.0, 1.5 * use_hours / 24.0) * (efc > 0)
        temp_mean = ambient + rise_c * busy
        temp_max = ambient_peak + rise_c
        cell_temp = temp_mean[fleet.pack_of_cell] + fleet.cell_temp_offset_c
        cycle_temp = (ambient + 0.8 * rise_c)[fleet.pack_of_cell] + fleet.cell_temp_offset_c

        # ageing of today
        active_cells = in_service[fleet.pack_of_cell]
        fleet.law.step(DayStress(
            temp_c=cell_temp, cycle_temp_c=cycle_temp,
            soc_mean=np.where(active_cells, soc_mean[fleet.pack_of_cell], 0.5),
            efc=efc[fleet.pack_of_cell], dod=dod[fleet.pack_of_cell],
            c_rate=(current_rms / fleet.rated_ah)[fleet.pack_of_cell],
        ))  # fmt: skip
        charging = (efc > 0) | telecom
        events = abuse.day(
            day, in_service, efc > 0, charging, dod / dod_nominal, temp_max,
            fleet.cell_capacity_ah(),
        )  # fmt: skip
        cell_capacity = fleet.cell_capacity_ah()
        pack_capacity = fleet.per_pack(np.minimum, cell_capacity)
        throughput = efc * 2.0 * pack_capacity
        efc_total += throughput / (2.0 * fleet.rated_ah)

        # balancing: the leaky cell's deficit is bled from every other cell while it can be
        bleed_ah = np.where(charging, bleed_a * np.where(telecom, 24.0, BALANCE_HOURS_PER_DAY), 0)
        leak_ah = leak_a * 24.0
        natural_ah = (
            fleet.natural_leak_a * 24.0 + fleet.coulombic_loss * throughput[fleet.pack_of_cell]
        )
        natural_need = fleet.per_pack(np.add, natural_ah) - fleet.cells * fleet.per_pack(
            np.minimum, natural_ah
        )
        followed = np.minimum(leak_ah, bleed_ah)
        imbalance_ah = np.where(fault_active, imbalance_ah + leak_ah - followed, 0.0)
        balancing_ah = natural_need + (fleet.cells - 1) * followed
        median_leak = fleet.per_pack(np.add, fleet.natural_leak_a) / fleet.cells
        worst_leak = fleet.per_pack(np.maximum, fleet.natural_leak_a) + leak_a
        drift_mv = (worst_leak - median_leak) * 24.0 / pack_capacity * 100.0 * slope_mv

        # trips of today (the protection's view of the truth)
        sag_v = current_peak * cell_resistance[fault_cell] / 1000.0
        # the leaky cell empties before the pack does (the day's own depth is not the fault's)
        lowest_soc = np.maximum(target - dod, 0.03) - imbalance_ah / pack_capacity
        kind = faults.kind
        trips = fault_active & (day >= faults.onset_day) & (
            ((kind == FAULT_KINDS.index("self_discharge")) & (lowest_soc < 0.03))
            | ((kind == FAULT_KINDS.index("resistance_growth")) & (sag_v > UNDER_VOLTAGE_SAG_V))
            | ((kind == FAULT_KINDS.index("cooling")) & (temp_max > OVER_TEMPERATURE_C)
               & (ambient_peak + rise_c / cooling_factor <= OVER_TEMPERATURE_C))
            | ((kind == FAULT_KINDS.index("current_sensor"))
               & (np.abs(current_offset) > CURRENT_OFFSET_TRIP_C * fleet.rated_ah))
            | ((kind == FAULT_KINDS.index("voltage_sensor"))
               & (voltage_drift_mv > VOLTAGE_OFFSET_TRIP_MV))
            | ((kind == FAULT_KINDS.index("contactor")) & (contactor_ratio > CONTACTOR_TRIP_RATIO))
        ) & in_service  # fmt: skip
        trip_day = np.where(trips & (trip_day < 0), day, trip_day)
        tripped = trips & (trip_day == day)
        for kind_name in (DEEP_DISCHARGE, OVER_TEMPERATURE):
            events[kind_name] = events[kind_name] + (tripped & (fault_event == kind_name))
        abuse.tally(events)

        resistance_gap_mohm = fleet.per_pack(np.maximum, cell_resistance) - fleet.per_pack(
            np.minimum, cell_resistance
        )
        spread_mv = _cell_voltage_spread_mv(
            np.maximum(target - soc_mean, 0.0) * pack_capacity, pack_capacity,
            fleet.per_pack(np.maximum, cell_capacity), imbalance_ah, slope_mv,
            busy * current_rms * resistance_gap_mohm,
        )  # fmt: skip
        open_circuit_v = voltage_nominal_v + fleet.cells * slope_mv * (soc_mean - 0.5) / 10.0
        drop_v = current_rms * (pack_resistance_mohm + contactor_mohm) / 1000.0
        true_soh_capacity = pack_capacity / fleet.rated_ah * 100.0
        true_soh_resistance = rated_resistance_mohm / pack_resistance_mohm * 100.0
        rows.append({
            "day": np.full(n, day), "in_service": in_service,
            "soh_capacity_pct": true_soh_capacity + noise.normal(0.0, SOH_NOISE_PCT, n)
            + np.where(noise.random(n) < 0.005, noise.choice([-1, 1], n)
                       * noise.uniform(2.0, 5.0, n), 0.0),
            "soh_capacity_missing": noise.random(n) < 0.02,
            "soh_resistance_pct": true_soh_resistance + noise.normal(0.0, 1.0, n),
            "efc_total": efc_total.copy(),
            "temp_mean_c": temp_mean + noise.normal(0.0, 0.3, n),
            "temp_max_c": temp_max + noise.normal(0.0, 0.5, n),
            "soc_mean_pct": np.clip(soc_mean * 100.0 + noise.normal(0.0, 1.0, n), 0, 100),
            "dod_mean_pct": dod * 100.0,
            "throughput_ah": throughput * noise.normal(1.0, 0.005, n),
            "ambient_temp_c": ambient + noise.normal(0.0, 0.5, n),
            "current_rms_a": current_rms * noise.normal(1.0, 0.01, n),
            "current_peak_a": current_peak,
            "balancing_ah": balancing_ah * noise.lognormal(0.0, 0.15, n),
            "rest_drift_mv_per_day": drift_mv + noise.normal(0.0, 0.15, n),
            "resistance_max_ratio": fleet.per_pack(np.maximum, cell_resistance)
            / _per_pack_median(cell_resistance, fleet) * noise.normal(1.0, 0.02, n),
            "current_offset_a": current_offset + noise.normal(0.0, 0.0015, n) * fleet.rated_ah,
            "voltage_mismatch_mv": fleet.voltage_bias_mv + fleet.voltage_sign * voltage_drift_mv
            + noise.normal(0.0, 2.0 + 0.005 * voltage_nominal_v, n),
            "contactor_resistance_mohm": np.where(
                current_rms > 0.05 * fleet.rated_ah,
                contactor_mohm * noise.normal(1.0, 0.08, n), np.nan,
            ),
            "protection_trips": tripped.astype(float),
            "cell_voltage_spread_mv": np.maximum(
                spread_mv * reading.lognormal(0.0, CELL_SPREAD_NOISE[0], n)
                + reading.normal(0.0, CELL_SPREAD_NOISE[1], n), 0.0,
            ),
            # half the charge in, half out; through the pack's resistance both ways
            **{name: throughput / 2.0 * (open_circuit_v + sign * drop_v) / 1000.0
               * reading.normal(1.0, ENERGY_NOISE, n)
               for name, sign in (("energy_charged_kwh", 1.0), ("energy_discharged_kwh", -1.0))},
            **{HISTORY_COLUMNS[name]: count for name, count in events.items()},
        })  # fmt: skip
        truth_rows.append({
            "day": np.full(n, day), "true_soh_capacity_pct": true_soh_capacity,
            "true_soh_resistance_pct": true_soh_resistance,
        })  # fmt: skip
        # repaired the day after the trip
        fault_active &= ~((trip_day >= 0) & (trip_day < day + 1))
    return _assemble(spec, fleet, rows, truth_rows, trip_day)


def _cell_voltage_spread_mv(
    drawn_ah: np.ndarray, pack_capacity_ah: np.ndarray, largest_cell_ah: np.ndarray,
    imbalance_ah: np.ndarray, slope_mv_per_pct: np.ndarray, resistance_spread_mv: np.ndarray,
) -> np.ndarray:  # fmt: skip
    """The day's typical highest - lowest cell voltage: from a top-balanced full charge,
    ``drawn_ah`` out of every cell leaves the smallest and the largest that far apart in SoC,
    a leaky cell behind by its imbalance; the OCV slope makes that millivolts, and the current
    through unequal resistances adds its share of the day."""
    soc_gap_pct = 100.0 * (drawn_ah * (1.0 / pack_capacity_ah - 1.0 / largest_cell_ah)
                           + imbalance_ah / pack_capacity_ah)  # fmt: skip
    return CELL_SPREAD_FLOOR_MV + soc_gap_pct * slope_mv_per_pct + resistance_spread_mv


def _per_pack_median(cell_values: np.ndarray, fleet: _Fleet) -> np.ndarray:
    medians = np.empty(len(fleet.cells))
    for kind_cells in np.unique(fleet.cells):
        packs = np.flatnonzero(fleet.cells == kind_cells)
        block = cell_values[(fleet.starts[packs][:, None] + np.arange(kind_cells)).ravel()]
        medians[packs] = np.median(block.reshape(len(packs), kind_cells), axis=1)
    return medians


def _assemble(spec, fleet: _Fleet, rows, truth_rows, trip_day) -> FleetRun:
    n = spec.packs
    columns = {name: np.concatenate([row[name] for row in rows]) for name in rows[0]}
    pack_index = np.tile(np.arange(n), spec.days)
    dates = pd.Timestamp(spec.start) + pd.to_timedelta(columns.pop("day"), unit="D")
    keep = columns.pop("in_service")
    missing = columns.pop("soh_capacity_missing")
    columns["soh_capacity_pct"] = np.where(missing, np.nan, columns["soh_capacity_pct"])
    ids = np.array(fleet.pack_ids)
    history = pd.DataFrame({
        "pack_id": ids[pack_index], "date": dates,
        "pack_type": np.array([k.name for k in fleet.kinds])[pack_index],
        "site": np.array([s.name for s in fleet.sites])[pack_index],
        "capacity_nominal_ah": fleet.rated_ah[pack_index],
        "cell_count": fleet.cells[pack_index].astype(float), **columns,
    })[keep]  # fmt: skip
    truth = {name: np.concatenate([row[name] for row in truth_rows]) for name in truth_rows[0]}
    truth_daily = pd.DataFrame({
        "pack_id": ids[pack_index], "date": dates,
        "true_soh_capacity_pct": truth["true_soh_capacity_pct"],
        "true_soh_resistance_pct": truth["true_soh_resistance_pct"],
    })[keep]  # fmt: skip
    faults = fleet.faults

    def day_date(days: np.ndarray) -> list[str]:
        return [(spec.start + timedelta(days=int(d))).isoformat() if d >= 0 else "" for d in days]

    faulty = faults.kind >= 0
    abuse = fleet.abuse
    truth_packs = pd.DataFrame({
        "pack_id": ids, "pack_type": [k.name for k in fleet.kinds],
        "site": [s.name for s in fleet.sites], "chemistry": fleet.chemistry,
        "ageing_law": spec.ageing_law, "cell_count": fleet.cells,
        "capacity_rated_ah": fleet.rated_ah, "usage_factor": fleet.usage,
        "commission_date": day_date(fleet.commission_day),
        "fault_kind": [FAULT_KINDS[k] if k >= 0 else "" for k in faults.kind],
        "fault_cell": np.where(faulty, faults.cell, -1),
        "fault_onset_date": day_date(np.where(faulty, faults.onset_day, -1).astype(int)),
        "fault_trip_date": day_date(trip_day),
        **{column: abuse.totals[name].astype(int) for name, column in HISTORY_COLUMNS.items()},
        "latched_safety": abuse.latched_day >= 0,
        "latched_safety_date": day_date(abuse.latched_day),
        "latched_safety_cause": abuse.latched_cause,
        "faulty_charger_from": day_date(abuse.charger_from),
        "faulty_charger_to": day_date(np.minimum(abuse.charger_to - 1, spec.days - 1)),
    })  # fmt: skip
    return FleetRun(
        history.sort_values(["pack_id", "date"]).reset_index(drop=True),
        truth_daily.sort_values(["pack_id", "date"]).reset_index(drop=True),
        truth_packs, spec,
    )  # fmt: skip
