"""A pack's stored records just before a batch: what debounce and rate conditions look back on.

A pack's batches may be stored by different ingest workers, so what came before a batch is read
from the telemetry tables, never from a worker's memory.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellwarden.cloud.store.database import Database
from cellwarden.telemetry.codec import CELL_MISSING
from cellwarden.telemetry.schema import CELL_RESOLUTION

_CELL_COLUMNS = {"voltage_v": "voltage_mv", "temp_c": "temp_dc"}


def summary_before(
    db: Database, pack_id: int, fields: Sequence[str], start_s: float, end_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Times and values (records x fields, NaN where missing) in [start_s, end_s), oldest first.

    ``fields`` are summary column names (checked by the rules, never user text)."""
    rows = db.query(
        f"SELECT time_s, {', '.join(fields)} FROM summary "
        "WHERE pack_id = ? AND time_s >= ? AND time_s < ? ORDER BY time_s",
        (pack_id, start_s, end_s),
    )
    matrix = np.array(rows, dtype=float).reshape(-1, len(fields) + 1)
    return matrix[:, 0], matrix[:, 1:]


def cells_before(
    db: Database, pack_id: int, name: str, cell_count: int, start_s: float, end_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """Times and one cell array (records x cells, NaN where missing) in [start_s, end_s),
    oldest first; records with another cell count are left out."""
    rows = db.query(
        f"SELECT time_s, {_CELL_COLUMNS[name]} FROM cells "
        "WHERE pack_id = ? AND cell_count = ? AND time_s >= ? AND time_s < ? ORDER BY time_s",
        (pack_id, cell_count, start_s, end_s),
    )
    times = np.array([row[0] for row in rows], dtype=float)
    ints = np.frombuffer(b"".join(bytes(row[1]) for row in rows), dtype="<i2")
    return times, cell_values(ints.reshape(len(rows), cell_count), name)


def cell_values(ints: np.ndarray, name: str) -> np.ndarray:
    """A cell matrix in units of its resolution as engineering values, NaN where missing."""
    return np.where(ints == CELL_MISSING, np.nan, ints * CELL_RESOLUTION[name])
