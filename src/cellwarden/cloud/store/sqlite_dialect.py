"""SQLite, embedded: one file in WAL mode, readers never wait for the writer.

Writers (ingest processes, the API, the scheduler) take an advisory file lock next to the
database before ``BEGIN IMMEDIATE``, polling it every few milliseconds, instead of SQLite's
busy handler whose back-off sleeps grow to 100 ms.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cellwarden.cloud.store.database import StoreError

BUSY_TIMEOUT_S = 30.0  # writers of several ingest processes take turns


def _wal(connection: sqlite3.Connection) -> None:
    """WAL mode; switching may meet another process's lock, which the busy handler does not
    wait for: retried until ``BUSY_TIMEOUT_S``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _lock(descriptor: int, path: Path) -> None:
    """The writers' file lock, waited for up to ``BUSY_TIMEOUT_S`` (StoreError after)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    wait_s = 0.0005
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise StoreError(
                    f"{path} is locked by another writer for more than {BUSY_TIMEOUT_S:.0f} s"
                ) from None
            time.sleep(wait_s)
            wait_s = min(wait_s * 2, 0.005)


class SqliteDialect:
    name = "sqlite"
    blob = "BLOB"
    real = "REAL"
    serial_key = "INTEGER PRIMARY KEY AUTOINCREMENT"
    partitioned = False
    telemetry_key = ("pack_id", "seq")

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self._lock_files: dict[int, int] = {}  # connection id -> its own lock file descriptor

    def connect(self) -> sqlite3.Connection:
        if self.path.parent and not self.path.parent.exists():
            raise StoreError(f"database folder {self.path.parent} does not exist")
        try:
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, check_same_thread=False)
            _wal(connection)
            connection.execute("PRAGMA synchronous=NORMAL")  # durable at each checkpoint
            connection.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as error:
            raise StoreError(f"{self.path} is not a usable SQLite database: {error}") from error
        return connection

    def begin(self, connection: sqlite3.Connection) -> None:
        if connection.in_transaction:
            connection.commit()
        descriptor = self._lock_files.get(id(connection))
        if descriptor is None:
            lock_path = self.path.with_name(self.path.name + ".writer-lock")
            descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            self._lock_files[id(connection)] = descriptor
        _lock(descriptor, self.path)
        try:
            connection.execute("BEGIN IMMEDIATE")  # a deferred writer can fail without waiting
        except BaseException:
            fcntl.flock(descriptor, fcntl.LOCK_UN)
            raise

    def end(self, connection: sqlite3.Connection) -> None:
        descriptor = self._lock_files.get(id(connection))
        if descriptor is not None:
            fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self, connection: sqlite3.Connection) -> None:
        descriptor = self._lock_files.pop(id(connection), None)
        if descriptor is not None:
            os.close(descriptor)
        connection.close()

    def transient(self, error: BaseException) -> bool:
        return isinstance(error, sqlite3.OperationalError | StoreError | OSError)

    def lock_migrations(self, connection: sqlite3.Connection) -> None:
        return None  # BEGIN IMMEDIATE serialises writers already

    def sql(self, text: str) -> str:
        return text

    def bulk_insert(
        self, connection: sqlite3.Connection, table: str, columns: Sequence[str],
        rows: Sequence[Sequence[Any]], conflict: Sequence[str],
    ) -> int:  # fmt: skip
        if not rows:
            return 0
        marks = ", ".join("?" * len(columns))
        before = connection.total_changes
        connection.executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT ({', '.join(conflict)}) DO NOTHING",
            rows,
        )
        return connection.total_changes - before

    def prepare_partitions(self, connection: Any, table: str, times_s: Sequence[float]) -> None:
        return None

    def drop_before(self, connection: sqlite3.Connection, table: str, before_s: float) -> int:
        return connection.execute(f"DELETE FROM {table} WHERE time_s < ?", (before_s,)).rowcount
