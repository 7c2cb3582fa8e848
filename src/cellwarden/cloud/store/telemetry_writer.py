"""Decoded telemetry into the tables: wide rows, compact cell arrays, idempotent by sequence.

A record whose (pack, sequence number) is stored already is skipped, so QoS 1 redeliveries
and replays after a worker restart never duplicate. ``pack_latest`` keeps each pack's newest
values for the fleet overview (updated only by newer records).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.schema_v1 import HEALTH_COLUMNS, POSITION_COLUMNS, SUMMARY_COLUMNS
from cellwarden.telemetry.codec import Frame
from cellwarden.telemetry.schema import Kind

MAX_TEXT = 4096  # longest text kept from an event or reply field


@dataclass(frozen=True)
class Arrival:
    """One decoded payload of a registered pack and when it arrived."""

    pack_id: int
    frame: Frame
    received_s: float


@dataclass
class WriteCount:
    accepted: int = 0
    duplicates: int = 0


_COLUMNAR = {
    Kind.SUMMARY: ("summary", SUMMARY_COLUMNS),
    Kind.POSITION: ("positions", POSITION_COLUMNS),
    Kind.HEALTH: ("health", HEALTH_COLUMNS),
}
_LATEST = {
    # kind -> (time column in pack_latest, columns copied from the newest record)
    Kind.SUMMARY: ("time_s", SUMMARY_COLUMNS),
    Kind.POSITION: ("position_time_s", ("latitude_deg", "longitude_deg", "speed_kmh")),
    Kind.CELLS: ("cells_time_s", ("cell_count", "voltage_mv", "temp_dc", "balancing")),
}


class TelemetryWriter:
    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, arrivals: Sequence[Arrival]) -> WriteCount:
        """Store every record of ``arrivals`` in one transaction."""
        rows: dict[str, list[tuple]] = {}
        latest: dict[tuple[Kind, int], tuple] = {}
        for arrival in arrivals:
            table, table_rows = _rows(arrival)
            rows.setdefault(table, []).extend(table_rows)
            if arrival.frame.kind in _LATEST:
                row = _latest_row(arrival, table_rows)
                key = (arrival.frame.kind, arrival.pack_id)
                if key not in latest or row[1] > latest[key][1]:
                    latest[key] = row
        count = WriteCount()
        dialect = self.db.dialect
        with self.db.transaction() as connection:
            for table, table_rows in rows.items():
                columns = _table_columns(table)
                dialect.prepare_partitions(connection, table, [r[1] for r in table_rows])
                stored = dialect.bulk_insert(
                    connection, table, columns, table_rows, dialect.telemetry_key
                )
                count.accepted += stored
                count.duplicates += len(table_rows) - stored
            self._touch(arrivals)
            for (kind, _), row in latest.items():
                self._latest(kind, row)
        return count

    def _touch(self, arrivals: Sequence[Arrival]) -> None:
        newest: dict[int, float] = {}
        for arrival in arrivals:
            newest[arrival.pack_id] = max(newest.get(arrival.pack_id, 0.0), arrival.received_s)
        self.db.executemany(
            "INSERT INTO pack_latest (pack_id, received_s) VALUES (?, ?) ON CONFLICT (pack_id) "
            "DO UPDATE SET received_s = excluded.received_s "
            "WHERE excluded.received_s > COALESCE(pack_latest.received_s, 0)",
            list(newest.items()),
        )

    def _latest(self, kind: Kind, row: tuple) -> None:
        time_column, columns = _LATEST[kind]
        names = ["pack_id", time_column, *columns]
        updates = ", ".join(f"{name} = excluded.{name}" for name in names[1:])
        self.db.execute(
            f"INSERT INTO pack_latest ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT (pack_id) DO UPDATE SET {updates} "
            f"WHERE pack_latest.{time_column} IS NULL "
            f"OR excluded.{time_column} >= pack_latest.{time_column}",
            row,
        )

    def status(self, pack_id: int, state: str, firmware: str | None, received_s: float) -> None:
        """The retained online/offline status message of a device."""
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO pack_latest (pack_id, status, firmware, status_s) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (pack_id) DO UPDATE SET status = excluded.status, "
                "firmware = COALESCE(excluded.firmware, pack_latest.firmware), "
                "status_s = excluded.status_s",
                (pack_id, state, firmware, received_s),
            )


def _table_columns(table: str) -> tuple[str, ...]:
    return ("pack_id", "time_s", "seq", *_BODY_COLUMNS[table], "received_s")


_BODY_COLUMNS = {
    "summary": SUMMARY_COLUMNS,
    "positions": POSITION_COLUMNS,
    "health": HEALTH_COLUMNS,
    "cells": ("cell_count", "voltage_mv", "temp_dc", "balancing"),
    "events": ("source", "code", "name", "kind", "value", "action", "freeze_frame"),
    "replies": ("command_id", "ok", "body"),
}


def _rows(arrival: Arrival) -> tuple[str, list[tuple]]:
    frame, pack_id, received_s = arrival.frame, arrival.pack_id, arrival.received_s
    seqs = frame.seqs.tolist()
    if frame.kind in _COLUMNAR:
        table, names = _COLUMNAR[frame.kind]
        matrix = np.column_stack([frame.columns["time_s"], *(frame.columns[n] for n in names)])
        values = np.where(np.isnan(matrix), None, matrix).tolist()  # NULL where missing
        return table, [(pack_id, v[0], seq, *v[1:], received_s)
                       for seq, v in zip(seqs, values, strict=True)]  # fmt: skip
    if frame.kind is Kind.CELLS:
        volts, temps = frame.cells["voltage_v"], frame.cells["temp_c"]
        bits = None if frame.balancing is None else np.packbits(frame.balancing, axis=1)
        times = frame.columns["time_s"].tolist()
        cells = volts.shape[1]
        return "cells", [
            (pack_id, times[i], seq, cells, volts[i].astype("<i2").tobytes(),
             temps[i].astype("<i2").tobytes(), None if bits is None else bits[i].tobytes(),
             received_s)
            for i, seq in enumerate(seqs)
        ]  # fmt: skip
    records = frame.records or []
    if frame.kind is Kind.EVENT:
        return "events", [
            (pack_id, _time(r), seq, _text(r.get("source")), _text(r.get("code")) or "?",
             _text(r.get("name")), _text(r.get("kind")), _real(r.get("value")),
             _text(r.get("action")), _json(r.get("freeze_frame")), received_s)
            for seq, r in zip(seqs, records, strict=True)
        ]  # fmt: skip
    return "replies", [
        (pack_id, _time(r), seq, _text(r.get("id")), int(bool(r.get("ok"))),
         _json({k: v for k, v in r.items() if k not in ("time_s", "id", "ok")}), received_s)
        for seq, r in zip(seqs, records, strict=True)
    ]  # fmt: skip


def _latest_row(arrival: Arrival, rows: list[tuple]) -> tuple:
    newest = max(rows, key=lambda row: row[1])
    kind = arrival.frame.kind
    if kind is Kind.SUMMARY:
        return (arrival.pack_id, newest[1], *newest[3:-1])
    if kind is Kind.POSITION:
        return (arrival.pack_id, newest[1], *newest[3:6])
    return (arrival.pack_id, newest[1], *newest[3:7])


def _time(record: dict[str, Any]) -> float:
    value = record.get("time_s")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("a record without a numeric time_s")
    return float(value)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return str(value)[:MAX_TEXT]


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _json(value: Any) -> str:
    return json.dumps(value, default=str)[: MAX_TEXT * 4]
