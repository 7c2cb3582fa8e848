"""Migration 4: battery passports — the records, their versions and status history, the
per-day counters their dynamic data needs, and the daily figures the passport and the
second-life assessment read.

Frozen once released. ``pack_daily`` gains the fleet history format's columns added for the
passport (docs/fleet-history.md). A passport (``passports``, keyed by its identifier) keeps
every document it ever had in ``passport_versions`` and every status it ever had in
``passport_status``: both are append-only, enforced by triggers that refuse an update or a
delete. ``passport_daily`` holds a pack's day against its battery's idle temperature range;
``passport_grants`` the passport role (legitimate interest, authority) a user outside the
owning organisation has been granted.
"""

from __future__ import annotations

# the format's numeric columns added by this migration, written out (see schema_v3)
DAILY_COLUMNS = (
    "cell_voltage_spread_mv", "energy_charged_kwh", "energy_discharged_kwh",
    "deep_discharge_events", "overcharge_events", "over_temp_events", "latched_safety_events",
)  # fmt: skip
COUNTER_COLUMNS = (
    "time_above_temp_s", "time_below_temp_s", "charge_time_above_temp_s",
    "charge_time_below_temp_s", "rest_soc_drift_pct_per_day",
)  # fmt: skip
APPEND_ONLY_TABLES = ("passport_versions", "passport_status")

PASSPORTS = """
CREATE TABLE passports (
    urn TEXT PRIMARY KEY, pack_id INTEGER REFERENCES packs(id), status TEXT NOT NULL,
    predecessor TEXT REFERENCES passports(urn), created_s {real} NOT NULL,
    version INTEGER NOT NULL
);
CREATE INDEX passports_pack ON passports (pack_id);
CREATE INDEX passports_predecessor ON passports (predecessor);
CREATE TABLE passport_versions (
    urn TEXT NOT NULL REFERENCES passports(urn), version INTEGER NOT NULL,
    time_s {real} NOT NULL, author TEXT NOT NULL, reason TEXT NOT NULL, body TEXT NOT NULL,
    changes TEXT NOT NULL, PRIMARY KEY (urn, version)
);
CREATE TABLE passport_status (
    id {serial}, urn TEXT NOT NULL REFERENCES passports(urn), status TEXT NOT NULL,
    time_s {real} NOT NULL, author TEXT NOT NULL, note TEXT NOT NULL
);
CREATE INDEX passport_status_urn ON passport_status (urn, id);
CREATE TABLE passport_daily (
    pack INTEGER NOT NULL REFERENCES packs(id), day TEXT NOT NULL, {counters},
    PRIMARY KEY (pack, day)
);
CREATE TABLE passport_grants (
    user_id INTEGER PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE, role TEXT NOT NULL,
    granted_s {real} NOT NULL, granted_by TEXT NOT NULL
)
"""
POSTGRES_REFUSAL = (
    "CREATE FUNCTION cw_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION USING MESSAGE = TG_TABLE_NAME || ' is append-only'; END $$"
)


def _append_only(dialect_name: str, table: str) -> list[str]:
    """Triggers that refuse any update or delete of ``table``'s rows."""
    if dialect_name == "postgresql":
        return [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION cw_refuse_change()"
        ]
    return [
        f"CREATE TRIGGER {table}_no_{change.lower()} BEFORE {change} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
        for change in ("UPDATE", "DELETE")
    ]


def statements(dialect_name: str) -> list[str]:
    """The DDL of migration 4 for ``sqlite`` or ``postgresql``, types still as placeholders."""
    out = [f"ALTER TABLE pack_daily ADD COLUMN {name} {{real}}" for name in DAILY_COLUMNS]
    counters = ", ".join(f"{name} {{real}}" for name in COUNTER_COLUMNS)
    out += [part.strip() for part in PASSPORTS.replace("{counters}", counters).split(";")]
    if dialect_name == "postgresql":
        out.append(POSTGRES_REFUSAL)
    for table in APPEND_ONLY_TABLES:
        out += _append_only(dialect_name, table)
    return out
