"""The battery's condition: the passport's dynamic data (Art. 14 and Annex XIII of Regulation
(EU) 2023/1542; Battery Pass ``batteryCondition``) from the BMS history the cloud stores.

``battery_condition`` is a pure function of a pack's daily rows (the fleet history format),
its passport counters (one row per day: time outside the idle temperature range, rest SoC
drift), its DTC trips and the battery's ratings. docs/passport.md ("Dynamic data") defines
each quantity; the docstrings of ``BatteryCondition`` say the same in short.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from cellwarden.passport.negative_events import DAILY_COLUMN, KINDS, classify

POWER_SOC_PCT = 50.0  # the original and remaining power capability are stated at this SoC
SOH_WINDOW_DAYS = 7  # state of health: the median of the last this many daily estimates
RTE_WINDOW_DAYS = 30  # round-trip efficiency: the energy of the last this many days ...
RTE_MIN_CYCLES = 2.0  # ... when at least this many times the rated energy was charged
SELF_DISCHARGE_WINDOW_DAYS = 30  # self-discharge: the mean rest drift of these days
DAYS_PER_MONTH = 365.25 / 12
# the passport counters of time outside the idle range, as the condition's minutes
MINUTES_OF = {
    "minutes_above_idle_range": "time_above_temp_s",
    "minutes_below_idle_range": "time_below_temp_s",
    "charging_minutes_above_idle_range": "charge_time_above_temp_s",
    "charging_minutes_below_idle_range": "charge_time_below_temp_s",
}


@dataclass(frozen=True)
class Ratings:
    """What the condition is measured against: the battery's rated and initial values."""

    rated_capacity_ah: float
    rated_energy_kwh: float
    nominal_voltage_v: float
    original_power_w: float  # power capability when new, at POWER_SOC_PCT
    initial_round_trip_efficiency_pct: float
    initial_self_discharge_pct_per_month: float
    idle_temp_min_c: float  # the idle-state temperature range
    idle_temp_max_c: float

    def __post_init__(self) -> None:
        positive = ("rated_capacity_ah", "rated_energy_kwh", "nominal_voltage_v",
                    "initial_round_trip_efficiency_pct")  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"rating {name} must be above 0, not {getattr(self, name)}")
        if not self.idle_temp_min_c < self.idle_temp_max_c:
            raise ValueError(
                f"idle temperature range {self.idle_temp_min_c}..{self.idle_temp_max_c} °C is empty"
            )

    @classmethod
    def from_document(cls, document: dict) -> Ratings:
        """The ratings a passport document states (``performance.batteryTechicalProperties``
        of the data model); ValueError naming the first one missing."""
        props = _path(document, "performance", "batteryTechicalProperties")
        powers = {
            float(_path(entry, "atSoC")): float(_path(entry, "powerCapabilityAt")) * 1000  # kW
            for entry in _path(props, "originalPowerCapability")
        }
        if POWER_SOC_PCT not in powers:
            raise ValueError(
                f"passport document states no original power capability at {POWER_SOC_PCT:g} % "
                f"SoC (only at {', '.join(f'{soc:g}' for soc in sorted(powers)) or 'none'})"
            )
        return cls(
            rated_capacity_ah=float(_path(props, "ratedCapacity")),
            rated_energy_kwh=float(_path(props, "ratedEnergy")),
            nominal_voltage_v=float(_path(props, "nominalVoltage")),
            original_power_w=powers[POWER_SOC_PCT],
            initial_round_trip_efficiency_pct=float(_path(props, "roundtripEfficiency")),
            initial_self_discharge_pct_per_month=float(_path(props, "initialSelfDischarge")),
            idle_temp_min_c=float(_path(props, "temperatureRangeIdleState", "minimum")),
            idle_temp_max_c=float(_path(props, "temperatureRangeIdleState", "maximum")),
        )


def _path(node: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            raise ValueError(f"passport document has no {key!r} where the ratings are read")
        node = node[key]
    return node


class NegativeEvent(NamedTuple):
    """One trip of a negative event kind (a trip may be of two: an MSL both is and latches)."""

    kind: str  # negative_events.KINDS
    when: datetime  # UTC
    code: str  # the DTC


@dataclass(frozen=True)
class EventCount:
    kind: str
    count: int
    first_day: date | None  # the first and last day with one (None without any)
    last_day: date | None


@dataclass(frozen=True)
class BatteryCondition:
    """The passport's dynamic data as of ``updated``. None: the history holds no basis for
    the value yet (no SoH estimate, no resistance estimate, too little energy moved, no
    rest)."""

    updated: datetime  # as of (UTC): the days completed by then and the trips before it
    state_of_charge_pct: float | None  # the latest reading (else the last day's mean)
    soh_capacity_pct: float | None  # median of the last SOH_WINDOW_DAYS daily estimates
    capacity_fade_pct: float | None  # 100 - soh_capacity_pct
    remaining_capacity_ah: float | None  # soh_capacity_pct × rated capacity
    remaining_energy_kwh: float | None  # soh_capacity_pct × rated energy
    state_of_certified_energy_pct: float | None  # remaining / rated energy
    soh_power_pct: float | None  # P / P_new = R_new / R: median of the last daily estimates
    power_fade_pct: float | None  # 100 - soh_power_pct
    remaining_power_w: float | None  # soh_power_pct × original power, at POWER_SOC_PCT
    resistance_increase_pct: float | None  # (R - R_new) / R_new
    round_trip_efficiency_pct: float | None  # discharged / (charged - stored) over 30 days
    round_trip_efficiency_fade_pct: float | None  # 1 - RTE / initial RTE
    full_cycles: float  # equivalent full cycles: the latest efc_total
    energy_throughput_kwh: float  # Σ energy charged + discharged
    capacity_throughput_ah: float  # Σ charge moved in and out
    self_discharge_pct_per_month: float | None  # mean rest drift of the last 30 days
    self_discharge_change_pct: float | None  # relative to the initial rate
    minutes_above_idle_range: float  # the hottest cell above the idle range
    minutes_below_idle_range: float  # the coldest cell below it
    charging_minutes_above_idle_range: float
    charging_minutes_below_idle_range: float
    negative_event_counts: tuple[EventCount, ...]  # one per negative_events.KINDS
    negative_events: tuple[NegativeEvent, ...]  # every trip, oldest first


def _column(frame: pd.DataFrame, name: str) -> pd.Series:
    """A numeric column (all NaN where the frame lacks it)."""
    if name not in frame:
        return pd.Series(np.nan, index=frame.index, dtype=float)
    return frame[name].astype(float)


def _completed(frame: pd.DataFrame, last_day: date) -> pd.DataFrame:
    """The rows dated up to ``last_day``, oldest first."""
    days = pd.to_datetime(frame["date"])
    kept = frame.assign(date=days)[days <= pd.Timestamp(last_day)]
    return kept.sort_values("date", kind="stable").reset_index(drop=True)


def _recent_median(values: pd.Series) -> float | None:
    known = values.dropna().tail(SOH_WINDOW_DAYS)
    return float(known.median()) if len(known) else None


def _scaled(fraction_pct: float | None, value: float) -> float | None:
    return None if fraction_pct is None else fraction_pct / 100 * value


def _energy_kwh(daily: pd.DataFrame, ratings: Ratings) -> pd.Series:
    """Each day's energy charged + discharged; where the day has no energy figures, its
    charge throughput at the nominal voltage."""
    measured = _column(daily, "energy_charged_kwh") + _column(daily, "energy_discharged_kwh")
    estimated = _column(daily, "throughput_ah") * ratings.nominal_voltage_v / 1000
    return measured.fillna(estimated).fillna(0.0)


def _round_trip_efficiency_pct(
    daily: pd.DataFrame, last_day: date, ratings: Ratings, energy_kwh: float
) -> float | None:
    """100 × discharged / (charged - ΔSoC × energy) over the last RTE_WINDOW_DAYS days that
    have both energy figures, ΔSoC the change of the mean SoC from the first of them to the
    last; None below RTE_MIN_CYCLES × rated energy charged."""
    start = pd.Timestamp(last_day - timedelta(days=RTE_WINDOW_DAYS - 1))
    charged, discharged = (
        _column(daily, "energy_charged_kwh"),
        _column(daily, "energy_discharged_kwh"),
    )
    window = daily[(daily["date"] >= start) & charged.notna() & discharged.notna()]
    charged_kwh = float(charged[window.index].sum())
    if charged_kwh < RTE_MIN_CYCLES * ratings.rated_energy_kwh:
        return None
    soc = _column(window, "soc_mean_pct")
    change_pct = float(soc.iloc[-1] - soc.iloc[0])
    stored_kwh = 0.0 if np.isnan(change_pct) else change_pct / 100 * energy_kwh
    return 100 * float(discharged[window.index].sum()) / (charged_kwh - stored_kwh)


def _self_discharge_pct_per_month(counters: pd.DataFrame, last_day: date) -> float | None:
    """The mean daily rest SoC drift of the last SELF_DISCHARGE_WINDOW_DAYS days that have
    one, per month; a falling SoC is positive, a rising one (noise) reads 0."""
    start = pd.Timestamp(last_day - timedelta(days=SELF_DISCHARGE_WINDOW_DAYS - 1))
    drift = _column(counters, "rest_soc_drift_pct_per_day")[counters["date"] >= start].dropna()
    return max(0.0, float(drift.mean()) * DAYS_PER_MONTH) if len(drift) else None


def _relative_change_pct(value: float | None, initial: float) -> float | None:
    """(value / initial - 1) × 100; None without a value or an initial one."""
    return None if value is None or initial <= 0 else (value / initial - 1) * 100


def _negative_events(
    daily: pd.DataFrame, events: pd.DataFrame, before_s: float
) -> tuple[tuple[EventCount, ...], tuple[NegativeEvent, ...]]:
    """Every negative trip before ``before_s``, and per kind the count and the first and last
    day. A day counts the larger of its trips found and its daily figure (an imported history
    has only the figure; a derived day's figure is the trips found, less any that came late)."""
    trips = events[events["time_s"] < before_s]
    if "kind" in trips:
        trips = trips[trips["kind"] == "trip"]
    found = sorted(
        (
            NegativeEvent(kind, datetime.fromtimestamp(float(time_s), UTC), str(code))
            for code, time_s in zip(trips["code"], trips["time_s"], strict=True)
            for kind in classify(str(code))
        ),
        key=lambda event: (event.when, event.kind),
    )
    counts = []
    for kind in KINDS:
        per_day = pd.Series(Counter(e.when.date() for e in found if e.kind == kind), dtype=float)
        if kind in DAILY_COLUMN:
            figures = _column(daily, DAILY_COLUMN[kind])
            figures.index = daily["date"].dt.date
            per_day = per_day.combine(figures.dropna(), max, fill_value=0)
        days = sorted(per_day.index[per_day > 0])
        counts.append(EventCount(kind, int(per_day.sum()), days[0] if days else None,
                                 days[-1] if days else None))  # fmt: skip
    return tuple(counts), tuple(found)


def battery_condition(
    daily: pd.DataFrame,
    counters: pd.DataFrame,
    events: pd.DataFrame,
    ratings: Ratings,
    as_of: datetime,
    latest_soc_pct: float | None = None,
) -> BatteryCondition:
    """The condition as of ``as_of`` (naive: UTC) from one pack's rows: ``daily`` in the fleet
    history format (``date`` and its numeric columns; missing ones count as unknown),
    ``counters`` its passport counters (``date`` and schema_v4.COUNTER_COLUMNS), ``events`` its
    events (``code``, ``time_s`` and optionally ``kind``: only trips count). Days count once
    completed by ``as_of``, trips once before it. ``latest_soc_pct`` is the SoC last read
    (default: the last day's mean)."""
    updated = as_of.astimezone(UTC) if as_of.tzinfo else as_of.replace(tzinfo=UTC)
    last_day = (updated - timedelta(days=1)).date()
    daily = _completed(daily, last_day)
    counters = _completed(counters, last_day)
    soh = _recent_median(_column(daily, "soh_capacity_pct"))
    soh_power = _recent_median(_column(daily, "soh_resistance_pct"))
    remaining_energy = _scaled(soh, ratings.rated_energy_kwh)
    rte = _round_trip_efficiency_pct(
        daily, last_day, ratings, remaining_energy or ratings.rated_energy_kwh
    )
    self_discharge = _self_discharge_pct_per_month(counters, last_day)
    efc = _column(daily, "efc_total").dropna()
    soc = _column(daily, "soc_mean_pct").dropna()
    if latest_soc_pct is None and len(soc):
        latest_soc_pct = float(soc.iloc[-1])
    counts, found = _negative_events(daily, events, updated.timestamp())
    return BatteryCondition(
        updated=updated,
        state_of_charge_pct=latest_soc_pct,
        soh_capacity_pct=soh,
        capacity_fade_pct=None if soh is None else 100 - soh,
        remaining_capacity_ah=_scaled(soh, ratings.rated_capacity_ah),
        remaining_energy_kwh=remaining_energy,
        state_of_certified_energy_pct=soh,
        soh_power_pct=soh_power,
        power_fade_pct=None if soh_power is None else 100 - soh_power,
        remaining_power_w=_scaled(soh_power, ratings.original_power_w),
        resistance_increase_pct=None if not soh_power else (100 / soh_power - 1) * 100,
        round_trip_efficiency_pct=rte,
        round_trip_efficiency_fade_pct=(
            None if rte is None else (1 - rte / ratings.initial_round_trip_efficiency_pct) * 100
        ),
        full_cycles=float(efc.iloc[-1]) if len(efc) else 0.0,
        energy_throughput_kwh=float(_energy_kwh(daily, ratings).sum()),
        capacity_throughput_ah=float(_column(daily, "throughput_ah").sum()),
        self_discharge_pct_per_month=self_discharge,
        self_discharge_change_pct=_relative_change_pct(
            self_discharge, ratings.initial_self_discharge_pct_per_month
        ),
        **{field: float(_column(counters, name).sum()) / 60 for field, name in MINUTES_OF.items()},
        negative_event_counts=counts,
        negative_events=found,
    )
