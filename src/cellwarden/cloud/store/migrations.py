"""Schema migrations: numbered, applied in order, each in one transaction, recorded.

``schema_migrations`` lists what a database has. Opening a database migrates it to this
code's version; a database written by newer code is refused rather than misread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from cellwarden.cloud.store import schema_v1
from cellwarden.cloud.store.database import Database, StoreError


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: Callable[[str], list[str]]  # dialect name -> DDL with type placeholders


MIGRATIONS = (Migration(1, "registry, telemetry, rollups, alarms", schema_v1.statements),)
LATEST = MIGRATIONS[-1].version


def current_version(db: Database) -> int:
    """The newest migration applied (0 for an empty database)."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
        f"name TEXT NOT NULL, applied_s {db.dialect.real} NOT NULL)"
    )
    row = db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    db.connection.commit()
    return int(row[0] or 0)


def migrate(db: Database) -> list[int]:
    """Apply every migration the database lacks; the versions applied."""
    have = current_version(db)
    if have > LATEST:
        raise StoreError(
            f"the database is at schema version {have}, newer than this cellwarden's {LATEST}: "
            "upgrade cellwarden"
        )
    applied = []
    dialect = db.dialect
    for migration in MIGRATIONS:
        if migration.version <= have:
            continue
        with db.transaction():
            for statement in migration.statements(dialect.name):
                db.execute(
                    statement.format(real=dialect.real, blob=dialect.blob,
                                     serial=dialect.serial_key)
                )  # fmt: skip
            db.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time()),
            )
        applied.append(migration.version)
    return applied
