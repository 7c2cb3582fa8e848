"""Migration 1: the registry, telemetry tables, rollups, alarms and ingest bookkeeping.

Frozen once released: a later change is a new migration. Telemetry tables are wide rows per
record (one column per schema field); cell arrays are int16 byte strings (1 mV, 0.1 °C) and
balancing one bit per cell. On PostgreSQL they are partitioned by day on ``time_s`` with BRIN
indexes; ``{real}``, ``{blob}``, ``{serial}`` and ``{partition}`` come from the dialect.
"""

from __future__ import annotations

SUMMARY_COLUMNS = (
    "soc_pct", "soh_pct", "voltage_v", "current_a", "cell_voltage_min_v", "cell_voltage_max_v",
    "temp_min_c", "temp_max_c", "charge_current_limit_a", "discharge_current_limit_a",
    "charge_voltage_limit_v", "path_state", "alarms", "warnings", "worst_code",
    "balancing_cells", "strings_connected",
)  # fmt: skip
POSITION_COLUMNS = ("latitude_deg", "longitude_deg", "speed_kmh", "course_deg", "satellites",
                    "hdop")  # fmt: skip
HEALTH_COLUMNS = ("link_up", "signal_dbm", "queue_records", "queue_bytes", "dropped_records",
                  "logger_dropped", "bytes_sent")  # fmt: skip
ROLLUP_COLUMNS = (
    # (column, aggregate of the finer level, source column)
    ("soc_pct", "avg", "soc_pct"), ("soh_pct", "avg", "soh_pct"),
    ("voltage_v", "avg", "voltage_v"), ("current_a", "avg", "current_a"),
    ("current_min_a", "min", "current_a"), ("current_max_a", "max", "current_a"),
    ("cell_voltage_min_v", "min", "cell_voltage_min_v"),
    ("cell_voltage_max_v", "max", "cell_voltage_max_v"),
    ("temp_min_c", "min", "temp_min_c"), ("temp_max_c", "max", "temp_max_c"),
)  # fmt: skip
TELEMETRY_TABLES = ("summary", "cells", "positions", "health", "events", "replies")


def _columns(names: tuple[str, ...]) -> str:
    return ", ".join(f"{name} {{real}}" for name in names)


_TELEMETRY = {
    "summary": _columns(SUMMARY_COLUMNS),
    "cells": "cell_count INTEGER NOT NULL, voltage_mv {blob} NOT NULL, temp_dc {blob} NOT NULL, "
             "balancing {blob}",
    "positions": _columns(POSITION_COLUMNS),
    "health": _columns(HEALTH_COLUMNS),
    "events": "source TEXT, code TEXT NOT NULL, name TEXT, kind TEXT, value {real}, "
              "action TEXT, freeze_frame TEXT",
    "replies": "command_id TEXT, ok INTEGER, body TEXT",
}  # fmt: skip

REGISTRY = """
CREATE TABLE organisations (
    id {serial}, name TEXT NOT NULL UNIQUE, created_s {real} NOT NULL
);
CREATE TABLE fleets (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id),
    name TEXT NOT NULL UNIQUE, created_s {real} NOT NULL
);
CREATE TABLE sites (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id), name TEXT NOT NULL,
    latitude_deg {real}, longitude_deg {real}, UNIQUE (org_id, name)
);
CREATE TABLE packs (
    id {serial}, device_id TEXT NOT NULL UNIQUE,
    org_id INTEGER NOT NULL REFERENCES organisations(id),
    fleet_id INTEGER NOT NULL REFERENCES fleets(id), site_id INTEGER REFERENCES sites(id),
    name TEXT NOT NULL, chemistry TEXT, cell_count INTEGER, capacity_ah {real},
    created_s {real} NOT NULL
);
CREATE INDEX packs_org ON packs (org_id, device_id);
CREATE TABLE users (
    id {serial}, name TEXT NOT NULL UNIQUE, token_sha256 TEXT NOT NULL UNIQUE,
    email TEXT, created_s {real} NOT NULL
);
CREATE TABLE memberships (
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    org_id INTEGER NOT NULL REFERENCES organisations(id), role TEXT NOT NULL,
    PRIMARY KEY (user_id, org_id)
);
CREATE TABLE pack_latest (
    pack_id INTEGER PRIMARY KEY REFERENCES packs(id), received_s {real}, time_s {real},
    {summary_columns},
    position_time_s {real}, latitude_deg {real}, longitude_deg {real}, speed_kmh {real},
    cells_time_s {real}, cell_count INTEGER, voltage_mv {blob}, temp_dc {blob}, balancing {blob},
    status TEXT, firmware TEXT, status_s {real}
);
CREATE TABLE quarantine (
    id {serial}, received_s {real} NOT NULL, topic TEXT NOT NULL, reason TEXT NOT NULL,
    payload {blob}
);
CREATE TABLE ingest_counters (
    worker TEXT PRIMARY KEY, accepted INTEGER NOT NULL, duplicates INTEGER NOT NULL,
    quarantined INTEGER NOT NULL, messages INTEGER NOT NULL, updated_s {real} NOT NULL
);
CREATE TABLE maintenance (key TEXT PRIMARY KEY, value {real} NOT NULL);
CREATE TABLE alarm_rules (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id), name TEXT NOT NULL,
    body TEXT NOT NULL, enabled INTEGER NOT NULL, created_s {real} NOT NULL,
    UNIQUE (org_id, name)
);
CREATE TABLE alarms (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id),
    pack_id INTEGER NOT NULL REFERENCES packs(id), rule_id INTEGER REFERENCES alarm_rules(id),
    source_key TEXT NOT NULL, cell INTEGER, code TEXT, state TEXT NOT NULL,
    severity TEXT NOT NULL, value {real}, threshold {real}, message TEXT NOT NULL,
    raised_s {real} NOT NULL, updated_s {real} NOT NULL, acked_by TEXT, acked_s {real},
    cleared_by TEXT, cleared_s {real}, escalation_level INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alarms_open ON alarms (pack_id, source_key, state);
CREATE INDEX alarms_org ON alarms (org_id, state, raised_s);
CREATE TABLE alarm_log (
    id {serial}, alarm_id INTEGER NOT NULL REFERENCES alarms(id), time_s {real} NOT NULL,
    action TEXT NOT NULL, who TEXT NOT NULL, detail TEXT
);
CREATE TABLE notifications (
    id {serial}, alarm_id INTEGER NOT NULL REFERENCES alarms(id), channel TEXT NOT NULL,
    target TEXT NOT NULL, subject TEXT NOT NULL, body TEXT NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_s {real} NOT NULL, error TEXT
);
CREATE INDEX notifications_due ON notifications (state, next_s);
"""


def telemetry_ddl(table: str, partition: str, key: str) -> list[str]:
    body = _TELEMETRY[table]
    return [
        f"CREATE TABLE {table} (pack_id INTEGER NOT NULL, time_s {{real}} NOT NULL, "
        f"seq BIGINT NOT NULL, {body}, received_s {{real}}, PRIMARY KEY ({key})){partition}",
        f"CREATE INDEX {table}_pack_time ON {table} (pack_id, time_s)",
    ]


def rollup_ddl(table: str) -> str:
    columns = ", ".join(f"{name} {{real}}" for name, _, _ in ROLLUP_COLUMNS)
    return (
        f"CREATE TABLE {table} (pack_id INTEGER NOT NULL, bucket_s {{real}} NOT NULL, "
        f"samples INTEGER NOT NULL, {columns}, PRIMARY KEY (pack_id, bucket_s))"
    )


def statements(dialect_name: str) -> list[str]:
    """The DDL of migration 1 for ``sqlite`` or ``postgresql``, types still as placeholders."""
    registry = REGISTRY.replace("{summary_columns}", _columns(SUMMARY_COLUMNS))
    out = [part.strip() for part in registry.split(";") if part.strip()]
    postgres = dialect_name == "postgresql"
    key = "pack_id, seq, time_s" if postgres else "pack_id, seq"
    partition = " PARTITION BY RANGE (time_s)" if postgres else ""
    for table in TELEMETRY_TABLES:
        out += telemetry_ddl(table, partition, key)
        if postgres:
            out.append(f"CREATE TABLE {table}_default PARTITION OF {table} DEFAULT")
            out.append(f"CREATE INDEX {table}_time_brin ON {table} USING BRIN (time_s)")
    out += [rollup_ddl("summary_1m"), rollup_ddl("summary_1h")]
    return out
