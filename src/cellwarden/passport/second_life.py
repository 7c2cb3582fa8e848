"""Second-life assessment from the BMS history, in the spirit of UL 1974's sorting of used
batteries for repurposing: the evidence per pack, a grade A/B/C/reject with every reason that
lowered it, a score, a recommended second use, and the fleet's list of candidates.

``evidence_from_history`` reads the fleet history format (a ``FleetHistory`` or a frame such
as the cloud's ``pack_daily`` export); ``assess`` grades the evidence against ``RULES``, whose
thresholds are the named constants below, each with its reason. docs/second-life.md states
the same for users. Everything is computed over all packs at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from cellwarden.telemetry.fleet_history import EVENT_COUNT_COLUMNS, FleetHistory

# --- evidence --------------------------------------------------------------------------------
RECENT_DAYS = 14  # the pack's present state: the median of its last 14 days of readings
MIN_RECENT_ESTIMATES = 7  # fewer SoH estimates in those days: SoH unknown
HOT_DAY_C = 45.0  # a day whose hottest cell reached this (the BMS's derating point) is hot
DAYS_PER_MONTH = 365.25 / 12
HISTORY_COLUMNS = (
    "pack_id", "date", "soh_capacity_pct", "soh_resistance_pct", "efc_total", "temp_max_c",
    "capacity_nominal_ah", "cell_count", "balancing_ah", "rest_drift_mv_per_day",
    "resistance_max_ratio", "cell_voltage_spread_mv", *EVENT_COUNT_COLUMNS,
)  # fmt: skip
# the evidence ``assess`` grades (``evidence_from_history`` gives these and more)
EVIDENCE_COLUMNS = (
    "pack_id", "soh_pct", "resistance_increase_pct", "cell_voltage_spread_mv",
    "cell_resistance_ratio", "self_discharge_pct_per_month", "rest_drift_mv_per_day",
    *EVENT_COUNT_COLUMNS, "hot_day_share_pct", "age_years",
)  # fmt: skip

# --- thresholds: the least (for SoH and remaining life) or most a grade allows ----------------
# SoH, % of rated capacity: 80 % ends a first life in a vehicle and starts a stationary one
SOH_A_MIN_PCT = 80.0
SOH_B_MIN_PCT = 70.0  # a 70 % pack still stores enough for a float-charged backup
SOH_C_MIN_PCT = 60.0  # below 60 % fade speeds up (the knee): too little life left to pay
# pack resistance increase over new, %: a 50 % rise still leaves 2/3 of the power for 0.5 C ESS
RESISTANCE_A_MAX_PCT = 50.0
RESISTANCE_B_MAX_PCT = 75.0  # backup draws little power, but heat grows with resistance
RESISTANCE_C_MAX_PCT = 100.0  # doubled resistance: half the power, twice the heat
# median spread of cell voltages, mV: a balanced healthy pack stays within a few tens of mV
SPREAD_A_MAX_MV = 30.0
SPREAD_B_MAX_MV = 50.0  # a passive balancer needs days to close this
SPREAD_C_MAX_MV = 100.0  # beyond: a cell far off the others (soft short, damaged cell)
# worst cell's resistance over the median cell's: one weak cell limits and heats the string
CELL_RESISTANCE_A_MAX = 1.3
CELL_RESISTANCE_B_MAX = 1.6
CELL_RESISTANCE_C_MAX = 2.0  # twice the others' resistance: twice their heat at any current
# the balancer's effort per cell, % of capacity a month: what a leaky cell loses beyond the
# others (a healthy cell's own self-discharge is 1-3 % a month, the same in every cell)
SELF_DISCHARGE_A_MAX_PCT = 0.5
SELF_DISCHARGE_B_MAX_PCT = 1.0
SELF_DISCHARGE_C_MAX_PCT = 2.0  # beyond: twice a cell's normal loss, a soft internal short
# fastest fall of a cell's rest voltage below the median cell's, mV a day: the balancer can no
# longer follow a leaky cell (UL 1974 sorts out abnormal self-discharge)
REST_DRIFT_A_MAX_MV = 0.3
REST_DRIFT_B_MAX_MV = 0.6
REST_DRIFT_C_MAX_MV = 1.0
# deep discharges to the cell under-voltage cut-off (RSL): each strains the weakest cell
DEEP_DISCHARGE_A_MAX = 5
DEEP_DISCHARGE_B_MAX = 20  # running the pack flat is a habit, not an accident
DEEP_DISCHARGE_C_MAX = 60  # beyond: copper dissolution and dendrites become likely
# over-voltage trips (RSL): lithium plating
OVERCHARGE_A_MAX = 0  # the best grade has never been overcharged
OVERCHARGE_B_MAX = 5
OVERCHARGE_C_MAX = 20  # beyond: a faulty charger left in service; plated cells can short
# over-temperature trips: SEI growth, gassing, separator stress
OVER_TEMP_A_MAX = 2
OVER_TEMP_B_MAX = 10
OVER_TEMP_C_MAX = 40
# latched safety events (MSL trips, short circuits): any one rejects (docs/second-life.md: the
# cell left its safe operating area; the damage is inside, where the BMS data cannot see it,
# and only a teardown, which this assessment cannot stand in for, could clear it)
LATCHED_MAX = 0
# share of days in service whose hottest cell reached HOT_DAY_C: heat ages faster than the
# capacity shows yet; it caps the grade, it never rejects
HOT_DAYS_A_MAX_PCT = 5.0
HOT_DAYS_B_MAX_PCT = 15.0
# remaining calendar life, years: what a second life needs to pay back its repurposing
REMAINING_A_MIN_YEARS = 8.0  # a stationary ESS is financed over 8-10 years
REMAINING_B_MIN_YEARS = 5.0
REMAINING_C_MIN_YEARS = 2.0  # less: not worth the sorting, testing and rebuilding
DEFAULT_LIFETIME_YEARS = 15.0

GRADES = ("reject", "C", "B", "A")  # by level 0, 1, 2, 3
SECOND_USE = {
    "A": "stationary ESS",  # daily cycling at moderate power for years: the healthiest packs
    "B": "telecom backup",  # float charge, rare shallow discharges, low power
    "C": "low-power / light duty",  # small storage, tools, lighting, supervised
    "reject": "recycling",
}
UNKNOWN_LEVEL = 1.0  # evidence the history lacks: C at best, until tested
POINTS_PER_LEVEL = 25.0  # score = 25 × the weakest criterion's level (0..4)


@dataclass(frozen=True)
class Rule:
    """One criterion: the grade its evidence allows. ``limits`` are the most (``higher`` False)
    or the least (``higher`` True) A, B and C allow; ``best`` scores 100 and ``worst`` 0."""

    column: str
    label: str
    unit: str
    limits: tuple[float, float, float]
    best: float
    worst: float
    higher: bool = False


RULES = (
    Rule("soh_pct", "SoH", "%", (SOH_A_MIN_PCT, SOH_B_MIN_PCT, SOH_C_MIN_PCT), 100.0, 40.0,
         higher=True),
    Rule("resistance_increase_pct", "resistance increase", "%",
         (RESISTANCE_A_MAX_PCT, RESISTANCE_B_MAX_PCT, RESISTANCE_C_MAX_PCT), 0.0, 200.0),
    Rule("cell_voltage_spread_mv", "cell voltage spread", "mV",
         (SPREAD_A_MAX_MV, SPREAD_B_MAX_MV, SPREAD_C_MAX_MV), 0.0, 300.0),
    Rule("cell_resistance_ratio", "worst cell resistance / median cell", "",
         (CELL_RESISTANCE_A_MAX, CELL_RESISTANCE_B_MAX, CELL_RESISTANCE_C_MAX), 1.0, 4.0),
    Rule("self_discharge_pct_per_month", "excess self-discharge (balancing)", "%/month",
         (SELF_DISCHARGE_A_MAX_PCT, SELF_DISCHARGE_B_MAX_PCT, SELF_DISCHARGE_C_MAX_PCT), 0.0,
         10.0),
    Rule("rest_drift_mv_per_day", "cell rest-voltage drift", "mV/day",
         (REST_DRIFT_A_MAX_MV, REST_DRIFT_B_MAX_MV, REST_DRIFT_C_MAX_MV), 0.0, 5.0),
    Rule("deep_discharge_events", "deep discharges", "",
         (DEEP_DISCHARGE_A_MAX, DEEP_DISCHARGE_B_MAX, DEEP_DISCHARGE_C_MAX), 0.0, 200.0),
    Rule("overcharge_events", "overcharges", "",
         (OVERCHARGE_A_MAX, OVERCHARGE_B_MAX, OVERCHARGE_C_MAX), 0.0, 60.0),
    Rule("over_temp_events", "over-temperature trips", "",
         (OVER_TEMP_A_MAX, OVER_TEMP_B_MAX, OVER_TEMP_C_MAX), 0.0, 120.0),
    Rule("latched_safety_events", "latched safety events", "",
         (LATCHED_MAX, LATCHED_MAX, LATCHED_MAX), 0.0, 1.0),
    Rule("hot_day_share_pct", "hot days", "% of days",
         (HOT_DAYS_A_MAX_PCT, HOT_DAYS_B_MAX_PCT, np.inf), 0.0, 100.0),
    Rule("remaining_life_years", "remaining calendar life", "years",
         (REMAINING_A_MIN_YEARS, REMAINING_B_MIN_YEARS, REMAINING_C_MIN_YEARS), 12.0, 0.0,
         higher=True),
)  # fmt: skip


@dataclass(frozen=True)
class SecondLifeSettings:
    expected_lifetime_years: float = DEFAULT_LIFETIME_YEARS  # calendar life of the cells

    def __post_init__(self) -> None:
        if not self.expected_lifetime_years > 0:
            raise ValueError(
                f"expected lifetime must be above 0 years, not {self.expected_lifetime_years}"
            )


def _require(present: Iterable[str], columns: tuple[str, ...], what: str) -> None:
    missing = [name for name in columns if name not in set(present)]
    if missing:
        raise ValueError(f"{what} lacks the column(s) {', '.join(missing)}")


def evidence_from_history(history: FleetHistory | pd.DataFrame, as_of: date | str) -> pd.DataFrame:
    """One row per pack from its rows up to ``as_of``: the present state (medians of its last
    ``RECENT_DAYS`` days: SoH, resistance increase, cell voltage spread and resistance ratio,
    excess self-discharge from the balancing effort, rest drift), its whole history's negative
    events and stress (EFC, share of hot days) and its age since its first row. A value the
    rows do not give is NaN. ValueError naming the columns the history lacks."""
    _require(history.columns, HISTORY_COLUMNS, "the history")  # a FleetHistory: its source's
    if isinstance(history, FleetHistory):
        source = history.rows
    else:
        source = history.assign(date=pd.to_datetime(history["date"]))
    as_of = pd.Timestamp(as_of).normalize()
    source = source[source["date"] <= as_of]
    if source.empty:
        raise ValueError(f"the history has no rows on or before {as_of.date()}")
    numeric = source[list(HISTORY_COLUMNS[2:])].apply(pd.to_numeric, errors="coerce")
    rows = pd.concat([source[["pack_id", "date"]], numeric.replace([np.inf, -np.inf], np.nan)],
                     axis=1)  # fmt: skip
    packs = rows.groupby("pack_id", sort=True)
    first, last = packs["date"].min(), packs["date"].max()
    recent = rows[rows["date"] > rows["pack_id"].map(last) - pd.Timedelta(days=RECENT_DAYS)]
    per_cell_capacity_ah = recent["cell_count"] * recent["capacity_nominal_ah"]
    balancing_pct_per_month = (
        recent["balancing_ah"] / per_cell_capacity_ah.where(per_cell_capacity_ah > 0)
    ) * (100.0 * DAYS_PER_MONTH)
    recent = recent.assign(self_discharge=balancing_pct_per_month)
    now = recent.groupby("pack_id", sort=True)
    soh = (
        now["soh_capacity_pct"]
        .median()
        .where(now["soh_capacity_pct"].count() >= MIN_RECENT_ESTIMATES)
    )
    soh_resistance = now["soh_resistance_pct"].median()
    temp_known = packs["temp_max_c"].count()
    hot_days = (rows["temp_max_c"] >= HOT_DAY_C).groupby(rows["pack_id"], sort=True).sum()
    evidence = pd.DataFrame({
        "soh_pct": soh,
        "resistance_increase_pct": (100.0 / soh_resistance.where(soh_resistance > 0) - 1.0)
        * 100.0,
        "cell_voltage_spread_mv": now["cell_voltage_spread_mv"].median(),
        "cell_resistance_ratio": now["resistance_max_ratio"].median(),
        "self_discharge_pct_per_month": now["self_discharge"].median(),
        "rest_drift_mv_per_day": now["rest_drift_mv_per_day"].median(),
        **{name: packs[name].sum(min_count=1) for name in EVENT_COUNT_COLUMNS},
        "efc_total": packs["efc_total"].max(),
        "hot_days": hot_days.where(temp_known > 0),
        "hot_day_share_pct": 100.0 * hot_days / temp_known.where(temp_known > 0),
        "first_date": first,
        "last_date": last,
        "age_years": (as_of - first).dt.days / 365.25,
    })  # fmt: skip
    if "pack_type" in source.columns:
        evidence.insert(0, "pack_type", source.groupby("pack_id", sort=True)["pack_type"].first())
    return evidence.rename_axis("pack_id").reset_index()


def _levels(values: np.ndarray, rule: Rule) -> np.ndarray:
    """Each value's level: 3 or more grade A, 2 B, 1 C, below 1 reject; the fraction is the
    place within the grade's band (between ``best`` and ``worst``); NaN stays NaN."""
    sign = -1.0 if rule.higher else 1.0  # lower is better from here on
    x = sign * values
    edges = sign * np.array([rule.best, *rule.limits, rule.worst])
    grade = sum((x <= limit).astype(int) for limit in edges[1:4])
    upper, lower = edges[4 - grade], edges[3 - grade]
    upper = np.where(np.isinf(upper), edges[4], upper)  # a grade no value misses ends at worst
    width = upper - lower
    with np.errstate(invalid="ignore"):
        inside = np.where(width > 0, (upper - x) / np.where(width > 0, width, 1.0), 1.0)
    return np.where(np.isnan(values), np.nan, grade + np.clip(inside, 0.0, 1.0))


def _reasons(values: pd.Series, levels: np.ndarray, rule: Rule) -> pd.Series:
    """The words for each pack this rule holds below A ("" where it does not)."""
    grade = np.floor(np.nan_to_num(levels, nan=UNKNOWN_LEVEL)).astype(int)
    capped = pd.Series(np.array(GRADES)[np.minimum(grade, 3)], index=values.index)
    missed = np.clip(2 - grade, 0, 2)  # the grade whose limit the value is beyond
    limit = pd.Series(np.array(rule.limits)[missed], index=values.index)
    side, bound = ("below", "minimum") if rule.higher else ("above", "limit")
    which: pd.Series | str = pd.Series(np.array(["A ", "B ", "C "])[missed], index=values.index)
    if len(set(rule.limits)) == 1:
        which, bound = "", "limit of every grade"
    unit = f" {rule.unit}" if rule.unit else ""
    text = (
        f"{rule.label} " + values.map(_number) + f"{unit} is {side} the " + which + bound + " "
        + limit.map(_number) + unit + ": " + capped.where(capped == "reject", capped + " at best")
    )  # fmt: skip
    unknown = f"{rule.label}: not in the history, C at best until tested"
    text = text.where(values.notna(), unknown)
    return text.where(np.isnan(levels) | (levels < 3.0), "")


def _number(value: float) -> str:
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def assess(
    evidence: pd.DataFrame, settings: SecondLifeSettings = SecondLifeSettings()
) -> pd.DataFrame:
    """The evidence with, per pack, ``remaining_life_years``, ``score`` (0-100: 25 × the
    weakest criterion's level), ``grade`` (A, B, C, reject), ``reasons`` (every rule that held
    it below A, in words with the numbers; unknown evidence holds it at C) and
    ``second_use``. ValueError naming evidence columns that are missing."""
    _require(evidence.columns, EVIDENCE_COLUMNS, "the evidence")
    graded = evidence.copy()
    graded["remaining_life_years"] = settings.expected_lifetime_years - graded["age_years"]
    levels, reasons = [], []
    for rule in RULES:
        values = pd.to_numeric(graded[rule.column], errors="coerce").astype(float)
        level = _levels(values.to_numpy(), rule)
        levels.append(np.where(np.isnan(level), UNKNOWN_LEVEL, level))
        reasons.append(_reasons(values, level, rule))
    weakest = np.min(levels, axis=0)
    graded["score"] = np.floor(POINTS_PER_LEVEL * weakest * 10.0) / 10.0  # stays in its band
    graded["grade"] = np.array(GRADES)[np.minimum(np.floor(weakest).astype(int), 3)]
    joined = reasons[0]
    for text in reasons[1:]:
        joined = joined + ((joined != "") & (text != "")).map({True: "; ", False: ""}) + text
    graded["reasons"] = joined
    graded["second_use"] = graded["grade"].map(SECOND_USE)
    return graded


def candidates(assessment: pd.DataFrame) -> pd.DataFrame:
    """The packs fit for a second life, best first (score, then SoH), ranked from 1."""
    _require(assessment.columns, ("pack_id", "score", "grade", "soh_pct"), "the assessment")
    fit = assessment[assessment["grade"] != "reject"]
    ordered = fit.sort_values(
        ["score", "soh_pct", "pack_id"], ascending=[False, False, True], na_position="last"
    )
    ordered = ordered.reset_index(drop=True)
    ordered.insert(0, "rank", np.arange(1, len(ordered) + 1))
    return ordered
