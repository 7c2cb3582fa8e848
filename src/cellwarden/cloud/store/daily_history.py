"""Daily pack figures in the fleet history format, and each fleet's latest analysis.

Rows come from history files (``import_history``) and from a day of a pack's summaries
(``derive_day``); ``export_history`` gives them back as a fleet history. In a history a pack
is named by its registry name, or by its device id where two packs of the fleet share a name.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.registry import Registry, RegistryError
from cellwarden.passport.negative_events import DAILY_COLUMN, classify
from cellwarden.telemetry.fleet_history import (
    ALL_COLUMNS,
    KEY_COLUMNS,
    NUMERIC_COLUMNS,
    TEXT_COLUMNS,
    FleetHistory,
    RowProblem,
    parse_history,
    read_history,
)
from cellwarden.telemetry.schema import ID_PATTERN

MAX_GAP_S = 600.0  # summaries further apart are a gap: the time between is not integrated
STORED_COLUMNS = ("pack", "day", *NUMERIC_COLUMNS, *TEXT_COLUMNS)
# what a derived day sets besides its figures (its other columns stay as imported)
DERIVED_TEXT = ("capacity_nominal_ah", "cell_count", "pack_type", "site")
# the summary columns a day's figures come from, after time_s
DAY_SOURCE_COLUMNS = ("soc_pct", "soh_pct", "current_a", "temp_min_c", "temp_max_c",
                      "voltage_v", "cell_voltage_min_v", "cell_voltage_max_v")  # fmt: skip
J_PER_KWH = 3.6e6
MIN_REST_S = 3600.0  # a day's rest SoC drift needs at least this much rest


@dataclass(frozen=True)
class ImportReport:
    rows_written: int
    packs_created: list[str]  # their names (= device ids)
    problems: list[RowProblem]  # rows left out, by line


@dataclass(frozen=True)
class FleetPack:
    id: int
    device_id: str
    history_id: str  # its pack_id in a fleet history


# --- lines of a history's rows ----------------------------------------------------------------
def read_import(path: str | Path) -> FleetHistory:
    """``read_history`` with each usable row's line in the file (a ``line`` column), so that
    rows refused on import are reported by line."""
    history = read_history(path)
    if Path(path).suffix.lower() == ".parquet":
        keys = pd.read_parquet(path, columns=list(KEY_COLUMNS))
    else:
        keys = pd.read_csv(path, usecols=list(KEY_COLUMNS), dtype=str, keep_default_na=False)
    return _with_lines(history, keys)


def parse_import(raw: pd.DataFrame, source: str = "history") -> FleetHistory:
    """``parse_history`` of a frame, its rows with their line (row position + 1)."""
    return _with_lines(parse_history(raw, source), raw)


def _with_lines(history: FleetHistory, raw: pd.DataFrame) -> FleetHistory:
    """Each kept row is the first line with its (pack, date): later ones are refused."""
    rows = history.rows
    keys = pd.DataFrame({
        "pack_id": raw["pack_id"].astype(str).str.strip().to_numpy(),
        "date": pd.to_datetime(raw["date"].astype(str).str.strip().str[:10], format="%Y-%m-%d",
                               errors="coerce").astype(rows["date"].dtype).to_numpy(),
        "line": np.arange(1, len(raw) + 1),
    }).drop_duplicates(list(KEY_COLUMNS))  # fmt: skip
    keys["pack_id"] = keys["pack_id"].astype(rows["pack_id"].dtype)
    merged = rows.merge(keys, on=list(KEY_COLUMNS), how="left", validate="one_to_one")
    return FleetHistory(merged, history.problems, history.columns)


# --- a day's figures from summaries -----------------------------------------------------------
def _intervals(time_s: np.ndarray, *values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(durations, usable): the steps between records, usable where no longer than
    ``MAX_GAP_S`` and every value is known at both ends."""
    steps = np.diff(time_s)
    usable = steps <= MAX_GAP_S
    for value in values:
        usable &= np.isfinite(value[1:]) & np.isfinite(value[:-1])
    return steps, usable


def _integral(time_s: np.ndarray, value: np.ndarray) -> tuple[float, float]:
    """(trapezoid integral of ``value`` over the usable intervals, their total duration)."""
    steps, usable = _intervals(time_s, value)
    areas = 0.5 * (value[1:] + value[:-1]) * steps
    return float(areas[usable].sum()), float(steps[usable].sum())


def _time_mean(time_s: np.ndarray, value: np.ndarray) -> float:
    """Mean over time (trapezoid over the usable intervals); the plain mean of the known
    values when no interval is usable."""
    area, duration_s = _integral(time_s, value)
    if duration_s > 0:
        return area / duration_s
    return _stat(np.mean, value)


def _stat(function: Callable[[np.ndarray], np.generic], value: np.ndarray) -> float:
    known = value[np.isfinite(value)]
    return float(function(known)) if known.size else float("nan")


def _above(
    time_s: np.ndarray, value: np.ndarray, bound: float, where: np.ndarray | None = None
) -> tuple[float, float]:
    """(time in s, integral) of ``value`` above ``bound``, the signal taken as linear between
    records (as the trapezoid rule takes it; a step that crosses the bound counts up to the
    crossing) over the usable intervals, and of them only those ``where`` marks. NaN for
    both when no interval is usable."""
    steps, usable = _intervals(time_s, value)
    if not usable.any():
        return float("nan"), float("nan")
    if where is not None:
        usable &= where
    start, end = value[:-1] - bound, value[1:] - bound
    high = np.maximum(start, 0.0) + np.maximum(end, 0.0)
    crossing = (start > 0) != (end > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(crossing, high / (np.abs(start) + np.abs(end)), start > 0)
    duration_s = share * steps
    return float(duration_s[usable].sum()), float((duration_s * high / 2)[usable].sum())


def day_figures(records: np.ndarray, capacity_ah: float | None,
                efc_before: float) -> dict[str, float]:  # fmt: skip
    """A day's history figures from its summaries (rows of time_s and ``DAY_SOURCE_COLUMNS``,
    time-ordered); ``efc_before`` is the pack's equivalent full cycles before the day."""
    time_s, soc, soh, current, temp_min, temp_max, voltage, cell_min, cell_max = records.T
    magnitude = np.abs(current)
    throughput_ah = _integral(time_s, magnitude)[0] / 3600.0
    efc_total = efc_before + throughput_ah / (2 * capacity_ah) if capacity_ah else float("nan")
    power_w = voltage * current
    return {
        "soh_capacity_pct": _stat(np.mean, soh),
        "soh_resistance_pct": float("nan"),  # the BMS does not send it yet
        "efc_total": efc_total,
        "temp_mean_c": _time_mean(time_s, 0.5 * (temp_min + temp_max)),
        "temp_max_c": _stat(np.max, temp_max),
        "soc_mean_pct": _stat(np.mean, soc),
        "dod_mean_pct": _stat(np.max, soc) - _stat(np.min, soc),
        "throughput_ah": throughput_ah,
        "current_rms_a": float(np.sqrt(_time_mean(time_s, current**2))),
        "current_peak_a": _stat(np.max, magnitude),
        "cell_voltage_spread_mv": _stat(np.median, 1000.0 * (cell_max - cell_min)),
        "energy_charged_kwh": _above(time_s, power_w, 0.0)[1] / J_PER_KWH,
        "energy_discharged_kwh": _above(time_s, -power_w, 0.0)[1] / J_PER_KWH,
    }  # fmt: skip


def trip_counts(codes: Iterable[str]) -> dict[str, float]:
    """The day's negative event columns from the codes of its trips."""
    counts = dict.fromkeys(DAILY_COLUMN.values(), 0.0)
    for code in codes:
        for kind in classify(code) & DAILY_COLUMN.keys():
            counts[DAILY_COLUMN[kind]] += 1
    return counts


def day_counters(records: np.ndarray, idle_temp_min_c: float, idle_temp_max_c: float,
                 rest_current_a: float) -> dict[str, float]:  # fmt: skip
    """A day's passport counters (schema_v4.COUNTER_COLUMNS) from its summaries (as for
    ``day_figures``): the time the hottest cell spent above the idle temperature range and
    the coldest below it, the same over the intervals charging throughout (current above 0
    at both ends), and the SoC drift over the intervals at rest throughout (|current| below
    ``rest_current_a`` at both ends) in % per day, falling positive (NaN with less than
    ``MIN_REST_S`` of rest)."""
    time_s, soc, _, current, temp_min, temp_max = records.T[:6]
    charging = (current[:-1] > 0) & (current[1:] > 0)
    still = np.abs(current) < rest_current_a
    steps, rest = _intervals(time_s, soc)
    rest &= still[:-1] & still[1:]
    rest_s = float(steps[rest].sum())
    fall_pct = float((soc[:-1] - soc[1:])[rest].sum())
    return {
        "time_above_temp_s": _above(time_s, temp_max, idle_temp_max_c)[0],
        "time_below_temp_s": _above(time_s, -temp_min, -idle_temp_min_c)[0],
        "charge_time_above_temp_s": _above(time_s, temp_max, idle_temp_max_c, charging)[0],
        "charge_time_below_temp_s": _above(time_s, -temp_min, -idle_temp_min_c, charging)[0],
        "rest_soc_drift_pct_per_day": (
            fall_pct / rest_s * 86400.0 if rest_s >= MIN_REST_S else float("nan")
        ),
    }


def _day_bounds_s(day: date) -> tuple[float, float]:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()
    return start, start + 86400.0


def _nullable(value: object) -> object:
    return None if isinstance(value, float) and not np.isfinite(value) else value


class DailyHistory:
    """The ``pack_daily`` and ``fleet_analytics`` tables."""

    def __init__(self, db: Database, registry: Registry) -> None:
        self.db = db
        self.registry = registry

    # --- packs of a fleet -------------------------------------------------------------------
    def fleet_packs(self, fleet_id: int) -> list[FleetPack]:
        """The fleet's packs with the id each has in a fleet history."""
        rows = self.db.query(
            "SELECT id, device_id, name FROM packs WHERE fleet_id = ? ORDER BY id", (fleet_id,)
        )
        shared = Counter(name for _, _, name in rows)
        return [FleetPack(pack, device, name if shared[name] == 1 else device)
                for pack, device, name in rows]  # fmt: skip

    # --- import and export ------------------------------------------------------------------
    def import_history(
        self, fleet_id: int, history: FleetHistory, create_packs: bool = False
    ) -> ImportReport:
        """Store the history's rows in one transaction, replacing the days they hold.

        A pack is found by its history id or its device id; an unknown one is registered when
        ``create_packs`` (its name and device id the history's pack id, capacity and cell
        count from its rows), else its rows are refused. ``history`` from ``read_import`` or
        ``parse_import`` gives refused rows their line (0 otherwise)."""
        fleet = self.db.query("SELECT org_id, name FROM fleets WHERE id = ?", (fleet_id,))
        if not fleet:
            raise RegistryError(f"no fleet {fleet_id}")
        org_id, fleet_name = fleet[0]
        packs = self.fleet_packs(fleet_id)
        known = {p.device_id: p.id for p in packs} | {p.history_id: p.id for p in packs}
        rows = history.rows
        unknown = sorted(set(rows["pack_id"]) - set(known))
        refused = self._refusals(unknown, fleet_name, create_packs)
        creatable = [name for name in unknown if name not in refused]
        wanted = rows[~rows["pack_id"].isin(list(refused))]
        with self.db.transaction():
            for name in creatable:
                own = wanted[wanted["pack_id"] == name]
                known[name] = self.registry.insert_pack(
                    name, fleet_id, org_id, capacity_ah=_median(own["capacity_nominal_ah"]),
                    cell_count=_integer(_median(own["cell_count"])),
                )  # fmt: skip
            self._upsert(_stored_rows(wanted, known), history.columns)
        lines = rows["line"] if "line" in rows else pd.Series(0, index=rows.index)
        problems = list(history.problems) + [
            RowProblem(int(line), refused[pack])
            for pack, line in zip(rows["pack_id"], lines, strict=True) if pack in refused
        ]  # fmt: skip
        return ImportReport(len(wanted), creatable, sorted(problems, key=lambda p: p.line))

    def _refusals(self, unknown: list[str], fleet: str, create: bool) -> dict[str, str]:
        """The reason each unknown pack's rows are refused (none for packs to be created)."""
        if not create:
            return {name: f"pack {name!r} is not registered in fleet {fleet!r}" for name in unknown}
        refused = {
            name: f"pack {name!r} cannot be registered: a device id is 1-64 letters, digits, "
            "'_', '-' or '.'"
            for name in unknown if not ID_PATTERN.match(name)
        }  # fmt: skip
        candidates = [name for name in unknown if name not in refused]
        for start in range(0, len(candidates), 500):
            chunk = candidates[start : start + 500]
            taken = self.db.query(
                f"SELECT device_id FROM packs WHERE device_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for (name,) in taken:
                refused[name] = (
                    f"pack {name!r} cannot be registered: its device id is another fleet's"
                )
        return refused

    def _upsert(self, rows: list[tuple], columns: Iterable[str]) -> None:
        """Insert the rows; of a day already stored, replace only ``columns`` (what the
        source had): a file or a derivation without a column leaves its stored values."""
        names = ", ".join(STORED_COLUMNS)
        replaced = [name for name in STORED_COLUMNS[2:] if name in set(columns)]
        updates = ", ".join(f"{name} = excluded.{name}" for name in replaced) or "pack = pack"
        self.db.executemany(
            f"INSERT INTO pack_daily ({names}) VALUES ({', '.join('?' * len(STORED_COLUMNS))}) "
            f"ON CONFLICT (pack, day) DO UPDATE SET {updates}",
            rows,
        )

    def export_history(self, fleet_id: int, pack_ids: Sequence[int] | None = None) -> pd.DataFrame:
        """The fleet's rows (of ``pack_ids``, registry ids, when given) as a fleet history,
        sorted by pack and date: ready for ``write_history`` and ``parse_history``."""
        names = {pack.id: pack.history_id for pack in self.fleet_packs(fleet_id)}
        where, params = "p.fleet_id = ?", [fleet_id]
        if pack_ids is not None:
            where += f" AND d.pack IN ({', '.join('?' * len(pack_ids)) or 'NULL'})"
            params += list(pack_ids)
        rows = self.db.query(
            f"SELECT {', '.join(f'd.{name}' for name in STORED_COLUMNS)} FROM pack_daily d "
            f"JOIN packs p ON p.id = d.pack WHERE {where}",
            params,
        )
        frame = pd.DataFrame(rows, columns=list(STORED_COLUMNS))
        out = pd.DataFrame({
            "pack_id": frame["pack"].map(names).astype(str),
            "date": pd.to_datetime(frame["day"], format="%Y-%m-%d"),
            **{name: frame[name].astype(float) for name in NUMERIC_COLUMNS},
            **{name: frame[name].fillna("").astype(str) for name in TEXT_COLUMNS},
        })  # fmt: skip
        out = out[list(ALL_COLUMNS)].sort_values(list(KEY_COLUMNS), kind="stable")
        return out.reset_index(drop=True)

    def day_span(self, fleet_id: int) -> tuple[date, date] | None:
        """The first and last day of the fleet's rows (None without rows)."""
        first, last = self.db.query(
            "SELECT MIN(d.day), MAX(d.day) FROM pack_daily d JOIN packs p ON p.id = d.pack "
            "WHERE p.fleet_id = ?",
            (fleet_id,),
        )[0]
        return None if first is None else (date.fromisoformat(first), date.fromisoformat(last))

    def fleets_with_rows(self) -> list[int]:
        rows = self.db.query(
            "SELECT DISTINCT p.fleet_id FROM pack_daily d JOIN packs p ON p.id = d.pack "
            "ORDER BY p.fleet_id"
        )
        return [fleet for (fleet,) in rows]

    # --- days derived from telemetry --------------------------------------------------------
    def packs_with_summaries(self, day: date) -> list[int]:
        start_s, end_s = _day_bounds_s(day)
        rows = self.db.query(
            "SELECT DISTINCT pack_id FROM summary WHERE time_s >= ? AND time_s < ? "
            "ORDER BY pack_id",
            (start_s, end_s),
        )
        return [pack for (pack,) in rows]

    def day_records(self, pack_id: int, day: date) -> np.ndarray:
        """The pack's summaries of ``day`` (UTC) as rows of time_s and
        ``DAY_SOURCE_COLUMNS``, time-ordered (NaN where missing)."""
        start_s, end_s = _day_bounds_s(day)
        rows = self.db.query(
            f"SELECT time_s, {', '.join(DAY_SOURCE_COLUMNS)} FROM summary "
            "WHERE pack_id = ? AND time_s >= ? AND time_s < ? ORDER BY time_s",
            (pack_id, start_s, end_s),
        )
        return np.array(rows, dtype=float).reshape(-1, 1 + len(DAY_SOURCE_COLUMNS))

    def derive_day(self, pack_id: int, day: date) -> dict[str, object] | None:
        """Compute and store the pack's row of ``day`` (UTC) from its summaries of that day;
        None (nothing stored) when it has none. Type and site carry over from the pack's
        previous row (the site from the registry when there is none); the cycle count adds
        the day's throughput to the last known one; capacity and cell count are the
        registry's."""
        records = self.day_records(pack_id, day)
        if not records.size:
            return None
        start_s, end_s = _day_bounds_s(day)
        trips = self.db.query(
            "SELECT code FROM events WHERE pack_id = ? AND time_s >= ? AND time_s < ? "
            "AND kind = 'trip'",
            (pack_id, start_s, end_s),
        )
        capacity_ah, cell_count, site = self.db.query(
            "SELECT p.capacity_ah, p.cell_count, s.name FROM packs p "
            "LEFT JOIN sites s ON s.id = p.site_id WHERE p.id = ?",
            (pack_id,),
        )[0]
        before = self.db.query(
            "SELECT pack_type, site FROM pack_daily WHERE pack = ? AND day < ? "
            "ORDER BY day DESC LIMIT 1",
            (pack_id, day.isoformat()),
        )
        efc = self.db.query(
            "SELECT efc_total FROM pack_daily WHERE pack = ? AND day < ? "
            "AND efc_total IS NOT NULL ORDER BY day DESC LIMIT 1",
            (pack_id, day.isoformat()),
        )
        pack_type, site = before[0] if before else ("", site or "")
        figures = day_figures(records, capacity_ah, efc[0][0] if efc else 0.0)
        figures |= trip_counts(code for (code,) in trips)
        row: dict[str, object] = {name: float("nan") for name in NUMERIC_COLUMNS}
        row |= figures | {"capacity_nominal_ah": capacity_ah, "cell_count": cell_count,
                          "pack_type": pack_type, "site": site}  # fmt: skip
        stored = [_nullable(row[name]) for name in STORED_COLUMNS[2:]]
        with self.db.transaction():
            self._upsert([(pack_id, day.isoformat(), *stored)], (*figures, *DERIVED_TEXT))
        return {"date": day.isoformat(), **row}

    # --- analyses ---------------------------------------------------------------------------
    def save_analysis(self, fleet_id: int, analysis: dict) -> dict:
        """Keep ``analysis`` (``FleetAnalysis.to_json()`` and more) as the fleet's latest,
        unless the one kept is of a later day (a run on demand for a past day does not
        replace it); the analysis as ``latest_analysis`` would give it."""
        computed_s = time.time()
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO fleet_analytics (fleet, as_of, computed_s, body) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (fleet) DO UPDATE SET as_of = excluded.as_of, "
                "computed_s = excluded.computed_s, body = excluded.body "
                "WHERE excluded.as_of >= fleet_analytics.as_of",
                (fleet_id, analysis["as_of"], computed_s, json.dumps(analysis, allow_nan=False)),
            )
        return self._named(fleet_id, {**analysis, "computed_s": computed_s})

    def latest_analysis(self, fleet_id: int) -> dict | None:
        """The fleet's latest analysis with ``computed_s``; every record naming a pack
        (``pack_id``, ``heavy_pack_id``, ...) also names its device id (``device_id``,
        ``heavy_device_id``, ...; null for a pack no longer in the fleet)."""
        rows = self.db.query(
            "SELECT as_of, computed_s, body FROM fleet_analytics WHERE fleet = ?", (fleet_id,)
        )
        if not rows:
            return None
        as_of, computed_s, body = rows[0]
        return self._named(fleet_id, {**json.loads(body), "as_of": as_of, "computed_s": computed_s})

    def _named(self, fleet_id: int, analysis: dict) -> dict:
        """The analysis with every record's device ids beside its pack ids."""
        devices = {pack.history_id: pack.device_id for pack in self.fleet_packs(fleet_id)}
        for records in analysis.values():
            for record in records if isinstance(records, list) else ():
                for key in [key for key in record if key.endswith("pack_id")]:
                    record[key.removesuffix("pack_id") + "device_id"] = devices.get(record[key])
        return analysis


def _stored_rows(rows: pd.DataFrame, packs: dict[str, int]) -> list[tuple]:
    numeric = rows[list(NUMERIC_COLUMNS)].astype(float)
    values = numeric.astype(object).where(np.isfinite(numeric), None)
    return list(zip(
        rows["pack_id"].map(packs).astype(int).tolist(), rows["date"].dt.strftime("%Y-%m-%d"),
        *(values[name].tolist() for name in NUMERIC_COLUMNS),
        *(rows[name].fillna("").astype(str).tolist() for name in TEXT_COLUMNS), strict=True,
    ))  # fmt: skip


def _median(values: pd.Series) -> float | None:
    known = values.dropna()
    return float(known.median()) if len(known) else None


def _integer(value: float | None) -> int | None:
    return None if value is None else round(value)
