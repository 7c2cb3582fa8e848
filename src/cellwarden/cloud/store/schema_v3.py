"""Migration 3: fleet analytics — one row of daily figures per pack and day, and the latest
analysis of each fleet.

Frozen once released. ``pack_daily`` holds the fleet history format (docs/fleet-history.md)
in the store: a REAL column per numeric column of the format, the pack type and site as text,
and the day as ``YYYY-MM-DD``. Rows come from imported history files and from each day's
telemetry (``DailyHistory.derive_day``). ``fleet_analytics`` keeps each fleet's newest
analysis as JSON text. The packs' nominal capacity is ``packs.capacity_ah`` (migration 1).
"""

from __future__ import annotations

# the format's numeric columns as of this migration, written out: a later format change needs
# a migration of its own
DAILY_COLUMNS = (
    "soh_capacity_pct", "soh_resistance_pct", "efc_total", "temp_mean_c", "temp_max_c",
    "soc_mean_pct", "dod_mean_pct", "throughput_ah", "ambient_temp_c", "current_rms_a",
    "current_peak_a", "capacity_nominal_ah", "cell_count", "balancing_ah",
    "rest_drift_mv_per_day", "resistance_max_ratio", "current_offset_a", "voltage_mismatch_mv",
    "contactor_resistance_mohm", "protection_trips",
)  # fmt: skip


def statements(dialect_name: str) -> list[str]:
    numeric = ", ".join(f"{name} {{real}}" for name in DAILY_COLUMNS)
    return [
        "CREATE TABLE pack_daily (pack INTEGER NOT NULL REFERENCES packs(id), day TEXT NOT NULL, "
        f"{numeric}, pack_type TEXT, site TEXT, PRIMARY KEY (pack, day))",
        "CREATE TABLE fleet_analytics (fleet INTEGER PRIMARY KEY REFERENCES fleets(id), "
        "as_of TEXT NOT NULL, computed_s {real} NOT NULL, body TEXT NOT NULL)",
    ]
