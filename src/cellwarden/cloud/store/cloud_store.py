"""The storage facade the rest of the cloud uses: one object per database URL."""

from __future__ import annotations

from cellwarden.cloud.store.daily_history import DailyHistory
from cellwarden.cloud.store.database import Database, StoreError, open_database
from cellwarden.cloud.store.history import History
from cellwarden.cloud.store.ingest_log import IngestLog
from cellwarden.cloud.store.migrations import LATEST, current_version, migrate
from cellwarden.cloud.store.ota_store import OtaStore
from cellwarden.cloud.store.passport_store import PassportStore
from cellwarden.cloud.store.registry import Registry
from cellwarden.cloud.store.rollup import Retention, Rollup
from cellwarden.cloud.store.telemetry_writer import TelemetryWriter


class CloudStore:
    """Registry, telemetry writes, history reads, rollups, the ingest log, the daily
    figures and analyses of fleets, the battery passports and over-the-air updates over one
    database."""

    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.registry = Registry(db)
        self.writer = TelemetryWriter(db)
        self.ingest_log = IngestLog(db)
        self.history = History(db)
        self.rollup = Rollup(db, retention)
        self.daily = DailyHistory(db, self.registry)
        self.passports = PassportStore(db)
        self.ota = OtaStore(db)

    def close(self) -> None:
        self.db.close()


def open_store(url: str, *, upgrade: bool = True, retention: Retention | None = None) -> CloudStore:
    """The store at ``url``, migrated to this code's schema (or checked to be, when
    ``upgrade`` is false: ingest workers leave migrations to ``cloud serve``)."""
    db = open_database(url)
    if upgrade:
        migrate(db)
    elif (version := current_version(db)) != LATEST:
        db.close()
        raise StoreError(
            f"the database is at schema version {version}, this cellwarden needs {LATEST}: "
            "run `cellwarden cloud migrate` (or `cloud serve`) first"
        )
    return CloudStore(db, retention)
