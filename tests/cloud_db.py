"""A store URL per test on each engine: SQLite in tmp_path, PostgreSQL in a schema of its own.

Use it from a test module with ``from tests.cloud_db import store_url`` (and ``store`` for
an open store). The PostgreSQL server
is ``CELLWARDEN_TEST_POSTGRES`` (default: user postgres, database test on 127.0.0.1:5432); its
parameter is skipped only when that server is unreachable.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from cellwarden.cloud.store.cloud_store import CloudStore, open_store

POSTGRES_URL = os.environ.get(
    "CELLWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)
ENGINES = ("sqlite", "postgresql")


def admin_connection() -> psycopg.Connection:
    """An autocommit connection to the test server; skips the test when it is unreachable."""
    try:
        return psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as error:
        pytest.skip(f"PostgreSQL test server {POSTGRES_URL} is unreachable: {error}")


def schema_url(schema: str) -> str:
    """The test server's URL with ``schema`` first on the search path."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(params=ENGINES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database URL for an empty store; the PostgreSQL schema is dropped afterwards."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'cloud.db'}"
        return
    schema = f"cw_test_{secrets.token_hex(6)}"
    with admin_connection() as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield schema_url(schema)
    finally:
        drop_schema(schema)


@pytest.fixture
def store(store_url: str) -> Iterator[CloudStore]:
    """An open, migrated store on each engine, closed after the test."""
    opened = open_store(store_url)
    yield opened
    opened.close()


def drop_schema(schema: str) -> None:
    """Drop a test schema, warning (not hanging) when an unclosed store still locks it."""
    with admin_connection() as admin:
        admin.execute("SET lock_timeout = '5s'")
        try:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
        except psycopg.errors.LockNotAvailable:
            warnings.warn(f"test schema {schema} left behind: a store was not closed", stacklevel=1)


def partitions(store: CloudStore, table: str) -> set[str]:
    """The partitions of a PostgreSQL table."""
    rows = store.db.query(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = ?::regclass",
        (table,),
    )
    return {name for (name,) in rows}
