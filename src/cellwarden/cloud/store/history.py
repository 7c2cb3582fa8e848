"""Reads for the API and the dashboard: the fleet overview, a pack's latest values and history.

Everything here is scoped by the caller: functions take the organisation ids the user may
see, and a pack outside them is as absent as a pack that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.schema_v1 import (
    CELL_COLUMNS,
    EVENT_COLUMNS,
    HEALTH_COLUMNS,
    POSITION_COLUMNS,
    ROLLUP_COLUMNS,
    SUMMARY_COLUMNS,
)
from cellwarden.telemetry.codec import CELL_MISSING
from cellwarden.telemetry.schema import PATH_STATES

RAW_MAX_SPAN_S = 86400.0  # ``auto`` reads raw rows up to a day, minutes up to 30 days
MINUTE_MAX_SPAN_S = 30 * 86400.0
EXPORT_CHUNK_ROWS = 5000

OVERVIEW_COLUMNS = ("soc_pct", "soh_pct", "voltage_v", "current_a", "temp_max_c",
                    "cell_voltage_min_v", "cell_voltage_max_v", "path_state", "alarms")  # fmt: skip
HISTORY_TABLES = {
    "summary": ("time_s", ("seq", *SUMMARY_COLUMNS)),
    "positions": ("time_s", ("seq", *POSITION_COLUMNS)),
    "health": ("time_s", ("seq", *HEALTH_COLUMNS)),
    "events": ("time_s", ("seq", *EVENT_COLUMNS)),
    "summary_1m": ("bucket_s", ("samples", *(name for name, _, _ in ROLLUP_COLUMNS))),
    "summary_1h": ("bucket_s", ("samples", *(name for name, _, _ in ROLLUP_COLUMNS))),
}  # fmt: skip
RESOLUTIONS = {"raw": "summary", "1m": "summary_1m", "1h": "summary_1h"}


@dataclass(frozen=True)
class Pack:
    id: int
    device_id: str
    org_id: int
    name: str
    fleet: str
    site: str | None
    chemistry: str | None
    cell_count: int | None
    capacity_ah: float | None


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))


def cells_of(count: int, voltage_mv: bytes, temp_dc: bytes, balancing: bytes | None) -> dict:
    """Per-cell arrays in engineering units from their stored form (None where missing)."""
    volts = np.frombuffer(voltage_mv, dtype="<i2").astype(float)
    temps = np.frombuffer(temp_dc, dtype="<i2").astype(float)
    out = {
        "voltage_v": [None if v == CELL_MISSING else round(v * 0.001, 3) for v in volts.tolist()],
        "temp_c": [None if t == CELL_MISSING else round(t * 0.1, 1) for t in temps.tolist()],
        "balancing": [False] * count,
    }
    if balancing:
        bits = np.unpackbits(np.frombuffer(balancing, dtype=np.uint8))[:count]
        out["balancing"] = bits.astype(bool).tolist()
    return out


class History:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- the fleet ----------------------------------------------------------------------------
    def overview(
        self, org_ids: Sequence[int], *, fleet: str | None = None, status: str | None = None,
        search: str | None = None, page: int = 1, per_page: int = 100,
    ) -> dict[str, Any]:  # fmt: skip
        """One page of packs with their latest values, and counts over all of them."""
        where, params = [f"p.org_id IN ({_marks(org_ids)})"], list(org_ids)
        if fleet:
            where.append("f.name = ?")
            params.append(fleet)
        if search:
            where.append("(LOWER(p.device_id) LIKE ? ESCAPE '!' OR LOWER(p.name) LIKE ? "
                         "ESCAPE '!')")  # fmt: skip
            literal = search.lower().replace("!", "!!").replace("%", "!%").replace("_", "!_")
            params += [f"%{literal}%"] * 2
        if status == "alarm":
            where.append("EXISTS (SELECT 1 FROM alarms a WHERE a.pack_id = p.id "
                         "AND a.state <> 'cleared')")  # fmt: skip
        elif status == "fault":
            where.append("l.path_state = 4")
        elif status in ("online", "offline"):
            where.append("l.status = ?")
            params.append(status)
        clause = " AND ".join(where)
        base = (
            "FROM packs p JOIN fleets f ON f.id = p.fleet_id LEFT JOIN sites s ON s.id = p.site_id "
            f"LEFT JOIN pack_latest l ON l.pack_id = p.id WHERE {clause}"
        )
        totals = self.db.query(
            "SELECT COUNT(*), SUM(CASE WHEN l.status = 'online' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN l.status = 'offline' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN l.path_state = 4 THEN 1 ELSE 0 END) " + base,
            params,
        )[0]
        latest = ", ".join(f"l.{name}" for name in OVERVIEW_COLUMNS)
        rows = self.db.query(
            f"SELECT p.id, p.device_id, p.name, f.name, s.name, l.status, l.received_s, "
            f"l.time_s, {latest}, l.latitude_deg, l.longitude_deg, l.position_time_s {base} "
            "ORDER BY p.device_id LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        alarms = self._open_alarms([row[0] for row in rows])
        keys = ("device_id", "name", "fleet", "site", "status", "received_s", "time_s",
                *OVERVIEW_COLUMNS, "latitude_deg", "longitude_deg", "position_time_s")  # fmt: skip
        items = []
        for row in rows:
            item = dict(zip(keys, row[1:], strict=True))
            item["status"] = item["status"] or "unknown"
            item["path_state"] = _path_name(item["path_state"])
            item["active_alarms"], item["worst_severity"] = alarms.get(row[0], (0, None))
            items.append(item)
        return {
            "total": totals[0], "page": page, "per_page": per_page, "items": items,
            "counts": {"online": totals[1] or 0, "offline": totals[2] or 0,
                       "fault": totals[3] or 0, "alarm": self._packs_in_alarm(org_ids)},
        }  # fmt: skip

    def positions(self, org_ids: Sequence[int], limit: int = 20000) -> list[dict[str, Any]]:
        """Every pack's last GPS position (the fleet map)."""
        rows = self.db.query(
            "SELECT p.device_id, p.name, f.name, l.latitude_deg, l.longitude_deg, "
            "l.position_time_s, l.status, "
            "(SELECT COUNT(*) FROM alarms a WHERE a.pack_id = p.id AND a.state <> 'cleared') "
            "FROM packs p JOIN pack_latest l ON l.pack_id = p.id "
            "JOIN fleets f ON f.id = p.fleet_id "
            f"WHERE p.org_id IN ({_marks(org_ids)}) AND l.latitude_deg IS NOT NULL "
            "ORDER BY p.device_id LIMIT ?",
            [*org_ids, limit],
        )
        keys = ("device_id", "name", "fleet", "latitude_deg", "longitude_deg", "position_time_s",
                "status", "active_alarms")  # fmt: skip
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def open_alarms(self, pack_id: int) -> tuple[int, str | None]:
        """(open alarms, worst severity) of one pack."""
        return self._open_alarms([pack_id]).get(pack_id, (0, None))

    def _open_alarms(self, pack_ids: Sequence[int]) -> dict[int, tuple[int, str | None]]:
        if not pack_ids:
            return {}
        rows = self.db.query(
            "SELECT pack_id, COUNT(*), MAX(CASE severity WHEN 'critical' THEN 3 "
            "WHEN 'warning' THEN 2 ELSE 1 END) FROM alarms "
            f"WHERE state <> 'cleared' AND pack_id IN ({_marks(pack_ids)}) GROUP BY pack_id",
            list(pack_ids),
        )
        names = {1: "info", 2: "warning", 3: "critical"}
        return {pack: (count, names[worst]) for pack, count, worst in rows}

    def _packs_in_alarm(self, org_ids: Sequence[int]) -> int:
        return self.db.query(
            "SELECT COUNT(DISTINCT pack_id) FROM alarms WHERE state <> 'cleared' "
            f"AND org_id IN ({_marks(org_ids)})",
            list(org_ids),
        )[0][0]

    # --- one pack -----------------------------------------------------------------------------
    def pack(self, device_id: str, org_ids: Sequence[int]) -> Pack | None:
        rows = self.db.query(
            "SELECT p.id, p.device_id, p.org_id, p.name, f.name, s.name, p.chemistry, "
            "p.cell_count, p.capacity_ah FROM packs p JOIN fleets f ON f.id = p.fleet_id "
            "LEFT JOIN sites s ON s.id = p.site_id "
            f"WHERE p.device_id = ? AND p.org_id IN ({_marks(org_ids)})",
            [device_id, *org_ids],
        )
        return Pack(*rows[0]) if rows else None

    def latest(self, pack: Pack) -> dict[str, Any]:
        """The pack's newest summary, position and cells, its status and firmware."""
        names = ", ".join(SUMMARY_COLUMNS)
        rows = self.db.query(
            f"SELECT status, firmware, received_s, time_s, {names}, position_time_s, "
            "latitude_deg, longitude_deg, speed_kmh, cells_time_s, cell_count, voltage_mv, "
            "temp_dc, balancing FROM pack_latest WHERE pack_id = ?",
            (pack.id,),
        )
        if not rows:
            return {"status": "unknown", "firmware": None, "received_s": None, "latest": None,
                    "position": None, "cells": None}  # fmt: skip
        row = rows[0]
        summary = dict(zip(("time_s", *SUMMARY_COLUMNS), row[3:4 + len(SUMMARY_COLUMNS)],
                           strict=True))  # fmt: skip
        rest = row[4 + len(SUMMARY_COLUMNS) :]
        position = None
        if rest[0] is not None:
            position = dict(zip(("time_s", "latitude_deg", "longitude_deg", "speed_kmh"),
                                rest[:4], strict=True))  # fmt: skip
        cells = None
        if rest[4] is not None:
            cells = {"time_s": rest[4], **cells_of(rest[5], rest[6], rest[7], rest[8])}
        if summary["time_s"] is not None:
            summary["path_state"] = _path_name(summary["path_state"])
        return {
            "status": row[0] or "unknown", "firmware": row[1], "received_s": row[2],
            "latest": summary if summary["time_s"] is not None else None,
            "position": position, "cells": cells,
        }  # fmt: skip

    def history(
        self, pack: Pack, from_s: float, to_s: float, fields: Sequence[str],
        resolution: str = "auto", max_points: int = 5000,
    ) -> dict[str, Any]:  # fmt: skip
        """Columns of the pack's summaries (or their rollups) between two times."""
        levels = [resolution]
        if resolution == "auto":  # the finest level the span allows, coarser when too many rows
            span_s = to_s - from_s
            first = 0 if span_s <= RAW_MAX_SPAN_S else (1 if span_s <= MINUTE_MAX_SPAN_S else 2)
            levels = list(RESOLUTIONS)[first:]
            having = [level for level in levels
                      if set(fields) <= set(HISTORY_TABLES[RESOLUTIONS[level]][1])]  # fmt: skip
            levels = having or levels[:1]
        for resolution in levels:
            table = RESOLUTIONS[resolution]
            time_column, allowed = HISTORY_TABLES[table]
            unknown = [name for name in fields if name not in allowed]
            if unknown:
                raise KeyError(f"{', '.join(unknown)} not in {resolution} history; "
                               f"choose from {', '.join(allowed)}")  # fmt: skip
            rows = self.db.query(
                f"SELECT {time_column}{''.join(', ' + f for f in fields)} FROM {table} "
                f"WHERE pack_id = ? AND {time_column} >= ? AND {time_column} < ? "
                f"ORDER BY {time_column} LIMIT ?",
                (pack.id, from_s, to_s, max_points + 1),
            )
            if len(rows) <= max_points:
                break
        truncated = len(rows) > max_points
        columns = list(zip(*rows[:max_points], strict=True)) or [() for _ in range(len(fields) + 1)]
        return {
            "resolution": resolution, "truncated": truncated, "time_s": list(columns[0]),
            "series": {name: list(columns[i + 1]) for i, name in enumerate(fields)},
        }  # fmt: skip

    def cells(self, pack: Pack, from_s: float, to_s: float, limit: int = 500) -> dict[str, Any]:
        """Per-cell records between two times (newest ``limit`` of them, oldest first)."""
        rows = self.db.query(
            "SELECT time_s, cell_count, voltage_mv, temp_dc, balancing FROM cells "
            "WHERE pack_id = ? AND time_s >= ? AND time_s < ? ORDER BY time_s DESC LIMIT ?",
            (pack.id, from_s, to_s, limit),
        )[::-1]
        records = [cells_of(*row[1:]) for row in rows]
        return {
            "time_s": [row[0] for row in rows],
            **{key: [r[key] for r in records] for key in ("voltage_v", "temp_c", "balancing")},
        }

    def events(self, pack: Pack, page: int = 1, per_page: int = 100,
               kind: str | None = None) -> dict[str, Any]:  # fmt: skip
        where, params = "pack_id = ?", [pack.id]
        if kind:
            where += " AND kind = ?"
            params.append(kind)
        total = self.db.query(f"SELECT COUNT(*) FROM events WHERE {where}", params)[0][0]
        keys = ("time_s", *HISTORY_TABLES["events"][1])
        rows = self.db.query(
            f"SELECT {', '.join(keys)} FROM events WHERE {where} "
            "ORDER BY time_s DESC, seq DESC LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        return {"total": total, "page": page, "per_page": per_page,
                "items": [dict(zip(keys, row, strict=True)) for row in rows]}  # fmt: skip

    # --- export -------------------------------------------------------------------------------
    def export_columns(self, table: str, pack: Pack) -> list[str]:
        if table == "cells":
            count = pack.cell_count or self._cell_count(pack)
            return ["time_s", "seq", *(f"cell_{i + 1}_voltage_v" for i in range(count)),
                    *(f"cell_{i + 1}_temp_c" for i in range(count)),
                    *(f"cell_{i + 1}_balancing" for i in range(count))]  # fmt: skip
        time_column, columns = HISTORY_TABLES[table]
        return [time_column, *columns]

    def export_rows(
        self, table: str, pack: Pack, from_s: float, to_s: float
    ) -> Iterator[list[tuple]]:
        """Chunks of rows of one table, oldest first (cells as one column per cell)."""
        if table == "cells":
            count = pack.cell_count or self._cell_count(pack)
            for rows in self._chunks("cells", ("seq", *CELL_COLUMNS), pack, from_s, to_s):
                yield [_cell_row(row, count) for row in rows]
            return
        yield from self._chunks(table, HISTORY_TABLES[table][1], pack, from_s, to_s)

    def _chunks(
        self, table: str, columns: Sequence[str], pack: Pack, from_s: float, to_s: float
    ) -> Iterator[list[tuple]]:
        """Keyset pagination on (time, seq) or on the bucket time of a rollup."""
        time_column = HISTORY_TABLES.get(table, ("time_s",))[0]
        keyed = "seq" in columns
        order = f"{time_column}, seq" if keyed else time_column
        # not from_s - 1e-9: below a float's step at today's times, it dropped a bucket at from_s
        position: tuple = (from_s, -1) if keyed else (float(np.nextafter(from_s, -np.inf)),)
        selected = f"{time_column}, {', '.join(columns)}"
        seq_index = 1 + list(columns).index("seq") if keyed else 0
        while True:
            if keyed:
                after = f"({time_column} > ? OR ({time_column} = ? AND seq > ?))"
                params = (pack.id, position[0], position[0], position[1], to_s)
            else:
                after, params = f"{time_column} > ?", (pack.id, position[0], to_s)
            rows = self.db.query(
                f"SELECT {selected} FROM {table} WHERE pack_id = ? AND {after} "
                f"AND {time_column} < ? ORDER BY {order} LIMIT ?",
                (*params, EXPORT_CHUNK_ROWS),
            )
            if not rows:
                return
            yield rows
            last = rows[-1]
            position = (last[0], last[seq_index]) if keyed else (last[0],)
            if len(rows) < EXPORT_CHUNK_ROWS:
                return

    def _cell_count(self, pack: Pack) -> int:
        rows = self.db.query("SELECT MAX(cell_count) FROM cells WHERE pack_id = ?", (pack.id,))
        return int(rows[0][0] or 0)


def _cell_row(row: tuple, count: int) -> tuple:
    time_s, seq, *stored = row
    cells = cells_of(*stored)
    return (time_s, seq, *_fit(cells["voltage_v"], count), *_fit(cells["temp_c"], count),
            *_fit(cells["balancing"], count))  # fmt: skip


def _fit(values: list, count: int) -> list:
    return (values + [None] * count)[:count]


def _path_name(value: float | None) -> str | None:
    if value is None or not 0 <= int(value) < len(PATH_STATES):
        return None
    return PATH_STATES[int(value)]
