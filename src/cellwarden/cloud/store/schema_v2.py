"""Migration 2: rollup bookkeeping and one open alarm per source.

``rollup_dirty`` holds the buckets whose rollups must be (re)computed, marked as telemetry is
written: late data (a device back from a week without coverage) marks its old buckets again,
so the 1-minute and 1-hour rollups always agree with the raw rows they were made from. The
partial unique index keeps two ingest workers from opening the same alarm twice.
"""

from __future__ import annotations


def statements(dialect_name: str) -> list[str]:
    return [
        "CREATE TABLE rollup_dirty (level TEXT NOT NULL, pack_id INTEGER NOT NULL, "
        "bucket_s {real} NOT NULL, PRIMARY KEY (level, pack_id, bucket_s))",
        "CREATE UNIQUE INDEX alarms_one_open ON alarms (pack_id, source_key) "
        "WHERE state <> 'cleared'",
    ]
