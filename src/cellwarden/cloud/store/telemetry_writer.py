"""Decoded telemetry into the tables: wide rows, compact cell arrays, idempotent by sequence.

A record whose (pack, sequence number) is stored already is skipped, so QoS 1 redeliveries
and replays after a worker restart never duplicate. ``pack_latest`` keeps each pack's newest
values for the fleet overview (updated only by newer records).
"""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.rollup import dirty_rows
from cellwarden.cloud.store.schema_v1 import (
    CELL_COLUMNS,
    EVENT_COLUMNS,
    HEALTH_COLUMNS,
    POSITION_COLUMNS,
    REPLY_COLUMNS,
    SUMMARY_COLUMNS,
)
from cellwarden.telemetry.codec import Frame
from cellwarden.telemetry.schema import Kind

MAX_TEXT = 4096  # longest text kept from an event or reply field


@dataclass(frozen=True)
class Arrival:
    """One decoded payload of a registered pack and when it arrived."""

    pack_id: int
    frame: Frame
    received_s: float

    @functools.cached_property
    def rows(self) -> tuple[str, list[tuple]]:
        """(table, rows) as stored; made once (ingest makes them before it takes the lock)."""
        return rows_of(self)


@dataclass
class WriteCount:
    accepted: int = 0
    duplicates: int = 0
    fresh: list[Arrival] = field(default_factory=list)  # arrivals with a record new to the store


_COLUMNAR = {
    Kind.SUMMARY: ("summary", SUMMARY_COLUMNS),
    Kind.POSITION: ("positions", POSITION_COLUMNS),
    Kind.HEALTH: ("health", HEALTH_COLUMNS),
}
_LATEST = {
    # kind -> (time column in pack_latest, columns copied from the newest record)
    Kind.SUMMARY: ("time_s", SUMMARY_COLUMNS),
    Kind.POSITION: ("position_time_s", ("latitude_deg", "longitude_deg", "speed_kmh")),
    Kind.CELLS: ("cells_time_s", CELL_COLUMNS),
}


class TelemetryWriter:
    def __init__(self, db: Database) -> None:
        self.db = db

    def write(self, arrivals: Sequence[Arrival]) -> WriteCount:
        """Store every record of ``arrivals`` in one transaction."""
        rows: dict[str, list[tuple]] = {}
        latest: dict[tuple[Kind, int], tuple] = {}
        for arrival in arrivals:
            table, table_rows = arrival.rows
            rows.setdefault(table, []).extend(table_rows)
            if arrival.frame.kind in _LATEST:
                row = _latest_row(arrival, table_rows)
                key = (arrival.frame.kind, arrival.pack_id)
                if key not in latest or row[1] > latest[key][1]:
                    latest[key] = row
        count = WriteCount()
        dialect = self.db.dialect
        with self.db.transaction() as connection:
            tables = sorted(rows)  # one order for every writer: partition locks never cross
            for table in tables:
                dialect.prepare_partitions(connection, table, [r[1] for r in rows[table]])
            for table in tables:
                table_rows = rows[table]
                columns = _table_columns(table)
                stored = dialect.bulk_insert(
                    connection, table, columns, table_rows, dialect.telemetry_key
                )
                count.accepted += stored
                count.duplicates += len(table_rows) - stored
            self._touch(arrivals)
            self.db.executemany(
                "INSERT INTO rollup_dirty (level, pack_id, bucket_s) VALUES (?, ?, ?) "
                "ON CONFLICT (level, pack_id, bucket_s) DO NOTHING",
                [mark for arrival in arrivals if arrival.frame.kind is Kind.SUMMARY
                 for mark in dirty_rows(arrival.pack_id, arrival.frame.columns["time_s"])],
            )  # fmt: skip
            for (kind, _), row in latest.items():
                self._latest(kind, row)
            count.fresh = list(arrivals)
            if count.duplicates:
                count.fresh = [a for a in arrivals if self._has_fresh(a)]
        return count

    def _has_fresh(self, arrival: Arrival) -> bool:
        """Whether this write stored any of the arrival's records (rows stored before keep
        their earlier ``received_s``)."""
        seqs = arrival.frame.seqs
        table = arrival.rows[0]
        row = self.db.execute(
            f"SELECT 1 FROM {table} WHERE pack_id = ? AND seq >= ? AND seq <= ? "
            "AND received_s = ? LIMIT 1",
            (arrival.pack_id, int(seqs.min()), int(seqs.max()), arrival.received_s),
        ).fetchone()
        return row is not None

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
    "cells": CELL_COLUMNS,
    "events": EVENT_COLUMNS,
    "replies": REPLY_COLUMNS,
}


def rows_of(arrival: Arrival) -> tuple[str, list[tuple]]:
    frame, pack_id, received_s = arrival.frame, arrival.pack_id, arrival.received_s
    seqs = frame.seqs.tolist()
    if frame.kind in _COLUMNAR:
        table, names = _COLUMNAR[frame.kind]
        matrix = np.column_stack([frame.columns["time_s"], *(frame.columns[n] for n in names)])
        missing = np.isnan(matrix)
        values = (np.where(missing, None, matrix) if missing.any() else matrix).tolist()
        return table, [(pack_id, v[0], seq, *v[1:], received_s)
                       for seq, v in zip(seqs, values, strict=True)]  # fmt: skip
    if frame.kind is Kind.CELLS:
        cells = frame.cells["voltage_v"].shape[1]
        volts = _row_bytes(frame.cells["voltage_v"].astype("<i2"))
        temps = _row_bytes(frame.cells["temp_c"].astype("<i2"))
        bits = [None] * len(seqs)
        if frame.balancing is not None:
            bits = _row_bytes(np.packbits(frame.balancing, axis=1))
        return "cells", list(zip(
            itertools.repeat(pack_id), frame.columns["time_s"].tolist(), seqs,
            itertools.repeat(cells), volts, temps, bits, itertools.repeat(received_s),
        ))  # fmt: skip
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


def _row_bytes(matrix: np.ndarray) -> list[bytes]:
    """Each row of a 2-D array as bytes (one copy of the whole, then slices)."""
    flat = np.ascontiguousarray(matrix).tobytes()
    width = matrix.shape[1] * matrix.itemsize
    return [flat[i : i + width] for i in range(0, len(flat), width)]


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


def _json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=str)[: MAX_TEXT * 4]
