"""Migration 3: fleet analytics — one row of daily figures per pack and day, and the latest
analysis of each fleet.

Frozen once released. ``pack_daily`` holds the fleet history format (docs/fleet-history.md)
in the store: a REAL column per numeric column of the format, the pack type and site as text,
and the day as ``YYYY-MM-DD``. Rows come from imported history files and from each day's
telemetry (``DailyHistory.derive_day``). ``fleet_analytics`` keeps each fleet's newest
analysis as JSON text. The packs' nominal capacity is ``packs.capacity_ah`` (migration 1).
"""

from __future__ import annotations

from cellwarden.telemetry.fleet_history import NUMERIC_COLUMNS


def statements(dialect_name: str) -> list[str]:
    numeric = ", ".join(f"{name} {{real}}" for name in NUMERIC_COLUMNS)
    return [
        "CREATE TABLE pack_daily (pack INTEGER NOT NULL REFERENCES packs(id), day TEXT NOT NULL, "
        f"{numeric}, pack_type TEXT, site TEXT, PRIMARY KEY (pack, day))",
        "CREATE TABLE fleet_analytics (fleet INTEGER PRIMARY KEY REFERENCES fleets(id), "
        "as_of TEXT NOT NULL, computed_s {real} NOT NULL, body TEXT NOT NULL)",
    ]
