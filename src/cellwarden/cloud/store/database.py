"""One database connection per thread, whatever the engine: SQLite (WAL) or PostgreSQL.

SQL in this package is written once with ``?`` placeholders and the portable subset both
engines share (``ON CONFLICT``, ``RETURNING``); a ``Dialect`` supplies what differs: the
connection, column types, bulk loading and time partitions.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any, Protocol


class StoreError(RuntimeError):
    """A storage failure that names what went wrong (unreachable server, newer schema, ...)."""


class Dialect(Protocol):
    """What differs between the engines."""

    name: str
    blob: str  # column type of byte strings
    real: str  # column type of floats
    serial_key: str  # an auto-numbered integer primary key
    partitioned: bool  # telemetry tables are time-partitioned

    telemetry_key: tuple[str, ...]  # the unique key of a telemetry row

    def connect(self) -> Any: ...

    def begin(self, connection: Any) -> None:
        """Start a write transaction (taking the write lock at once where that matters)."""
        ...

    def end(self, connection: Any) -> None:
        """After the commit or rollback of a transaction ``begin`` started."""
        ...

    def close(self, connection: Any) -> None:
        """Close a connection and what the dialect keeps for it."""
        ...

    def transient(self, error: BaseException) -> bool:
        """Whether ``error`` is the database being busy or away (retry), not the data."""
        ...

    def lock_migrations(self, connection: Any) -> None:
        """Hold other migrators off until this transaction ends (no-op where ``begin`` did)."""
        ...

    def sql(self, text: str) -> str:
        """``text`` with its ``?`` placeholders in the driver's style."""
        ...

    def bulk_insert(
        self,
        connection: Any,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        conflict: Sequence[str],
    ) -> int:
        """Insert ``rows`` skipping those whose ``conflict`` key exists; how many went in."""
        ...

    def prepare_partitions(self, connection: Any, table: str, times_s: Sequence[float]) -> None:
        """Make sure the partitions holding ``times_s`` exist (no-op without partitions)."""
        ...

    def drop_before(self, connection: Any, table: str, before_s: float) -> int:
        """Delete rows older than ``before_s`` (whole partitions where there are any)."""
        ...


class Database:
    """Connections (one per thread) and transactions over a ``Dialect``."""

    def __init__(self, dialect: Dialect, url: str) -> None:
        self.dialect = dialect
        self.url = url
        self._local = threading.local()
        self._all: list[tuple[threading.Thread, Any]] = []
        self._lock = threading.Lock()

    @property
    def connection(self) -> Any:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            self._close_orphans()
            connection = self._local.connection = self.dialect.connect()
            with self._lock:
                self._all.append((threading.current_thread(), connection))
        return connection

    def _close_orphans(self) -> None:
        """Close the connections of threads that have ended (a server's pool replaces idle
        threads; their connections would otherwise stay open for good)."""
        with self._lock:
            orphans = [c for thread, c in self._all if not thread.is_alive()]
            self._all = [(t, c) for t, c in self._all if t.is_alive()]
        for connection in orphans:
            with contextlib.suppress(Exception):
                self.dialect.close(connection)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Any]:
        """A transaction on this thread's connection, committed or rolled back as a whole."""
        connection = self.connection
        self.dialect.begin(connection)
        try:
            yield connection
            connection.commit()
        except BaseException:
            self._recover(connection)
            raise
        finally:
            self.dialect.end(connection)

    def execute(self, text: str, parameters: Sequence[Any] = ()) -> Any:
        """Run one statement on this thread's connection (inside the caller's transaction)."""
        return self.connection.execute(self.dialect.sql(text), tuple(parameters))

    def executemany(self, text: str, rows: Sequence[Sequence[Any]]) -> None:
        cursor = self.connection.cursor()
        cursor.executemany(self.dialect.sql(text), rows)

    def query(self, text: str, parameters: Sequence[Any] = ()) -> list[tuple]:
        """Rows of a read, ending the read transaction so that no snapshot is held."""
        connection = self.connection
        try:
            rows = connection.execute(self.dialect.sql(text), tuple(parameters)).fetchall()
            connection.commit()
        except BaseException:
            self._recover(connection)
            raise
        return rows

    def _recover(self, connection: Any) -> None:
        """Roll back after a failure; a connection that cannot (the server went away) is
        dropped, and the thread's next call connects afresh."""
        try:
            connection.rollback()
        except Exception:  # the original error is the one to report
            broken = True
        else:
            broken = bool(getattr(connection, "broken", False) or
                          getattr(connection, "closed", False))  # fmt: skip
        if broken:
            self._local.connection = None
            with self._lock:
                self._all = [(t, c) for t, c in self._all if c is not connection]
            with contextlib.suppress(Exception):
                self.dialect.close(connection)

    def close(self) -> None:
        with self._lock:
            for _, connection in self._all:
                with contextlib.suppress(Exception):
                    self.dialect.close(connection)
            self._all.clear()
        self._local = threading.local()


def open_database(url: str) -> Database:
    """``sqlite:///path.db`` (or a plain path) or ``postgresql://...``; StoreError otherwise."""
    if url.startswith(("postgresql://", "postgres://")):
        from cellwarden.cloud.store.postgres_dialect import PostgresDialect

        return Database(PostgresDialect(url), url)
    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    if "://" in path:
        raise StoreError(
            f"database URL {url!r}: use sqlite:///PATH (or a path) or postgresql://..."
        )
    from cellwarden.cloud.store.sqlite_dialect import SqliteDialect

    return Database(SqliteDialect(path), url)
