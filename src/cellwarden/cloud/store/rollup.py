"""Downsampling (raw summaries -> 1-minute -> 1-hour buckets) and retention.

The writer marks the buckets each batch touches (``rollup_dirty``); ``Rollup.run`` recomputes
exactly those from the level below, so late data is folded in. Retention then deletes raw rows
and minute buckets past their age (whole partitions on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.schema_v1 import ROLLUP_COLUMNS

DAY_S = 86400.0
LEVELS = (("1m", 60.0, "summary_1m"), ("1h", 3600.0, "summary_1h"))


@dataclass(frozen=True)
class Retention:
    """How long each level is kept (days)."""

    raw_days: float = 30.0  # summary, cells, positions, health
    events_days: float = 3650.0  # events and command replies
    minute_days: float = 400.0
    hour_days: float = 3650.0


def dirty_rows(pack_id: int, times_s: np.ndarray) -> list[tuple[str, int, float]]:
    """The (level, pack, bucket) marks for summaries at ``times_s``."""
    rows = []
    for level, width_s, _ in LEVELS:
        buckets = np.unique(np.floor(times_s / width_s) * width_s)
        rows += [(level, pack_id, bucket) for bucket in buckets.tolist()]
    return rows


def _select(level: str, width_s: float) -> tuple[str, str]:
    """(source table, aggregate expressions) of one level from the one below."""
    if level == "1m":
        source = "summary"
        parts = [f"{aggregate.upper()}(s.{column})" for _, aggregate, column in ROLLUP_COLUMNS]
        return source, "COUNT(*), " + ", ".join(parts)
    parts = []
    for name, aggregate, _ in ROLLUP_COLUMNS:
        if aggregate == "avg":  # weighted by the samples behind each minute that has one
            parts.append(
                f"SUM(s.{name} * s.samples) / "
                f"NULLIF(SUM(CASE WHEN s.{name} IS NULL THEN 0 ELSE s.samples END), 0)"
            )
        else:
            parts.append(f"{aggregate.upper()}(s.{name})")
    return "summary_1m", "SUM(s.samples), " + ", ".join(parts)


class Rollup:
    def __init__(self, db: Database, retention: Retention | None = None) -> None:
        self.db = db
        self.retention = retention or Retention()

    def run(self, now_s: float) -> dict[str, int]:
        """Recompute dirty buckets level by level, then apply retention; counts of each."""
        done = {}
        source_days = {"1m": self.retention.raw_days, "1h": self.retention.minute_days}
        self._claim()
        for level, width_s, table in LEVELS:  # before expiry: all the source rows are there
            horizon_s = now_s - source_days[level] * DAY_S
            done[level] = self._recompute(level, width_s, table, horizon_s)
        done |= self._expire(now_s)
        return done

    def _claim(self) -> None:
        """Take the marks made so far (as level ``1m*``, ``1h*``): a writer's rows and marks
        commit together, so a mark made from now on (a writer committing while this run
        computes) stays for the next run instead of being deleted with the rows unseen."""
        with self.db.transaction():
            if self.db.dialect.name == "postgresql":  # a writer may have marked (or found its
                # mark there) with its rows uncommitted: wait for it, hold new marks off
                self.db.execute("LOCK TABLE rollup_dirty IN SHARE ROW EXCLUSIVE MODE")
            for level, _, _ in LEVELS:  # marks a failed run took stay taken
                self.db.execute(
                    "DELETE FROM rollup_dirty WHERE level = ? AND EXISTS (SELECT 1 FROM "
                    "rollup_dirty c WHERE c.level = ? AND c.pack_id = rollup_dirty.pack_id "
                    "AND c.bucket_s = rollup_dirty.bucket_s)",
                    (level, f"{level}*"),
                )
                self.db.execute(
                    "UPDATE rollup_dirty SET level = ? WHERE level = ?", (f"{level}*", level)
                )

    def _recompute(self, level: str, width_s: float, table: str, horizon_s: float) -> int:
        source, aggregates = _select(level, width_s)
        names = ", ".join(name for name, _, _ in ROLLUP_COLUMNS)
        updates = ", ".join(f"{n} = excluded.{n}" for n in ("samples", *names.split(", ")))
        level = f"{level}*"  # the marks ``_claim`` took
        with self.db.transaction():
            marked = self.db.execute(
                "SELECT COUNT(*) FROM rollup_dirty WHERE level = ?", (level,)
            ).fetchone()[0]
            time_column = "time_s" if source == "summary" else "bucket_s"
            # a bucket past the source's horizon may have lost source rows to an earlier
            # expiry (late data joins the rows left): one made already stays as it is, one new
            # to the store (a backlog older than the horizon) is made from the rows there are
            for since, conflict in ((">=", f"DO UPDATE SET {updates}"), ("<", "DO NOTHING")):
                self.db.execute(
                    f"INSERT INTO {table} (pack_id, bucket_s, samples, {names}) "
                    f"SELECT d.pack_id, d.bucket_s, {aggregates} FROM rollup_dirty d "
                    f"JOIN {source} s ON s.pack_id = d.pack_id "
                    f"AND s.{time_column} >= d.bucket_s AND s.{time_column} < d.bucket_s + ? "
                    f"WHERE d.level = ? AND d.bucket_s {since} ? GROUP BY d.pack_id, d.bucket_s "
                    f"ON CONFLICT (pack_id, bucket_s) {conflict}",
                    (width_s, level, horizon_s),
                )
            self.db.execute("DELETE FROM rollup_dirty WHERE level = ?", (level,))
        return int(marked)

    def _expire(self, now_s: float) -> dict[str, int]:
        retention = self.retention
        ages = {
            "summary": retention.raw_days, "cells": retention.raw_days,
            "positions": retention.raw_days, "health": retention.raw_days,
            "events": retention.events_days, "replies": retention.events_days,
        }  # fmt: skip
        removed = {}
        for table, days in ages.items():  # one transaction per table: partition drops lock
            with self.db.transaction() as connection:
                before_s = now_s - days * DAY_S
                removed[table] = self.db.dialect.drop_before(connection, table, before_s)
        for table, days in (("summary_1m", retention.minute_days),
                            ("summary_1h", retention.hour_days)):  # fmt: skip
            with self.db.transaction():
                removed[table] = self.db.execute(
                    f"DELETE FROM {table} WHERE bucket_s < ?", (now_s - days * DAY_S,)
                ).rowcount
        return removed
