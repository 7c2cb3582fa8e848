"""Schema migrations: numbered, applied in order, each in one transaction, recorded.

``schema_migrations`` lists what a database has. Opening a database migrates it to this
code's version; a database written by newer code is refused rather than misread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cellwarden.cloud.store import schema_v1, schema_v2, schema_v3, schema_v4, schema_v5
from cellwarden.cloud.store.database import Database, StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[str], list[str]]  # dialect name -> DDL with type placeholders


MIGRATIONS = (
    Migration(1, "registry, telemetry, rollups, alarms", schema_v1.statements),
    Migration(2, "rollup bookkeeping, one open alarm per source", schema_v2.statements),
    Migration(3, "daily pack figures and fleet analyses", schema_v3.statements),
    Migration(4, "battery passports, their counters and daily figures", schema_v4.statements),
    Migration(5, "over-the-air update bundles, campaigns and deployments", schema_v5.statements),
)
LATEST = MIGRATIONS[-1].version


def current_version(db: Database) -> int:
    """The newest migration applied (0 for an empty database)."""
    with db.transaction() as connection:
        db.dialect.lock_migrations(connection)
        return _version(db)


def migrate(db: Database) -> list[int]:
    """Apply every migration the database lacks; the versions applied.

    Each migration is one transaction holding the dialect's migration lock, in which the
    version is read again: of several processes migrating at once, one applies each step
    and the others find it done.
    """
    applied = []
    while (version := _apply_next(db)) is not None:
        applied.append(version)
    return applied


def _version(db: Database) -> int:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        f"name TEXT NOT NULL, applied_s {db.dialect.real} NOT NULL)"
    )
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def _apply_next(db: Database) -> int | None:
    """Apply the first migration the database lacks; its version (None when up to date)."""
    dialect = db.dialect
    with db.transaction() as connection:
        dialect.lock_migrations(connection)
        have = _version(db)
        if have > LATEST:
            raise StoreError(
                f"the database is at schema version {have}, newer than this cellwarden's "
                f"{LATEST}: upgrade cellwarden"
            )
        migration = next((m for m in MIGRATIONS if m.version > have), None)
        if migration is None:
            return None
        for statement in migration.statements(dialect.name):
            db.execute(
                statement.format(real=dialect.real, blob=dialect.blob, serial=dialect.serial_key)
            )
        db.execute(
            "INSERT INTO schema_migrations VALUES (?, ?, ?)",
            (migration.version, migration.name, time.time()),
        )
    return migration.version
