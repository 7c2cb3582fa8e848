"""Fleet analytics over the store: a fleet's analysis on demand, and the daily run that
derives yesterday's rows from telemetry, refreshes the passports' dynamic data and analyses
every fleet that has rows."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cellwarden.cloud.analytics.fleet_analysis import analyse_fleet
from cellwarden.cloud.analytics.passport_refresh import (
    PassportBuilder,
    PassportRefresh,
    refresh_passports,
)
from cellwarden.cloud.analytics.soh_forecast import ForecastSettings
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.telemetry.fleet_history import parse_history

log = logging.getLogger(__name__)
DONE_KEY = "fleet_analytics_day"  # in ``maintenance``: the ordinal of the last day run
CATCH_UP_DAYS = 7  # days missed while the service was down are derived, up to this many


class AnalyticsError(ValueError):
    """A fleet that cannot be analysed (no daily rows, too few to analyse)."""


class AsOfError(AnalyticsError):
    """An as-of day outside the fleet's daily rows."""


def analyse_stored_fleet(store: CloudStore, fleet_id: int, as_of: date | None = None) -> dict:
    """Analyse the fleet's daily rows up to ``as_of`` (default: its last day), keep the
    result as its latest (unless a later day's is kept) and return it as
    ``latest_analysis`` gives it."""
    span = store.daily.day_span(fleet_id)
    if span is None:
        raise AnalyticsError(f"fleet {fleet_id} has no daily rows yet: import a history or "
                             "wait for the daily run to derive them from telemetry")  # fmt: skip
    first, last = span
    as_of = as_of or last
    if not first <= as_of <= last:
        raise AsOfError(f"as_of {as_of} is outside the fleet's daily rows ({first} to {last})")
    history = parse_history(store.daily.export_history(fleet_id), f"fleet {fleet_id}")
    settings = ForecastSettings()
    started_s = time.perf_counter()
    try:
        analysis = analyse_fleet(history, as_of, settings)
    except ValueError as error:
        raise AnalyticsError(
            f"fleet {fleet_id} cannot be analysed as of {as_of}: {error}"
        ) from error
    duration_s = round(time.perf_counter() - started_s, 3)
    body = analysis.to_json() | {"horizon_days": settings.horizon_days, "duration_s": duration_s}
    return store.daily.save_analysis(fleet_id, body)


@dataclass
class DailyRun:
    day: date
    rows_derived: int = 0
    fleets_analysed: list[int] = field(default_factory=list)
    failures: dict[int, str] = field(default_factory=dict)  # fleet id -> why
    passports: PassportRefresh | None = None


def run_day(
    store: CloudStore,
    day: date,
    derive: list[date] | None = None,
    build: PassportBuilder | None = None,
) -> DailyRun:
    """Derive the rows of ``derive`` (default: ``day``) for every pack with telemetry on
    them, refresh the passports for those days (``build`` makes their documents; without
    it only their counters are derived), then analyse every fleet with rows as of ``day``
    (or its last row, if earlier). A fleet that cannot be analysed is noted and the others
    go on."""
    run = DailyRun(day)
    for derived in derive or [day]:
        for pack_id in store.daily.packs_with_summaries(derived):
            run.rows_derived += store.daily.derive_day(pack_id, derived) is not None
    run.passports = refresh_passports(store, derive or [day], build)
    for fleet_id in store.daily.fleets_with_rows():
        first, last = store.daily.day_span(fleet_id)
        try:
            analyse_stored_fleet(store, fleet_id, max(first, min(day, last)))
        except AnalyticsError as error:
            run.failures[fleet_id] = str(error)
            log.warning("fleet analytics: %s", error)
        except Exception as error:  # one fleet's bad data never stops the others' analysis
            run.failures[fleet_id] = f"{type(error).__name__}: {error}"
            log.exception("fleet analytics of fleet %s failed", fleet_id)
        else:
            run.fleets_analysed.append(fleet_id)
    return run


def run_if_due(
    store: CloudStore, now_s: float, build: PassportBuilder | None = None
) -> DailyRun | None:
    """The scheduler's job: once per UTC day, the run of yesterday (with the days missed
    since the last run, up to ``CATCH_UP_DAYS``); None when it has run already."""
    yesterday = datetime.fromtimestamp(now_s, UTC).date() - timedelta(days=1)
    done = store.db.query("SELECT value FROM maintenance WHERE key = ?", (DONE_KEY,))
    last_done = int(done[0][0]) if done else yesterday.toordinal() - 1
    if last_done >= yesterday.toordinal():
        return None
    first = max(last_done + 1, yesterday.toordinal() - CATCH_UP_DAYS + 1)
    days = [date.fromordinal(ordinal) for ordinal in range(first, yesterday.toordinal() + 1)]
    run = run_day(store, yesterday, days, build)
    with store.db.transaction():
        store.db.execute(
            "INSERT INTO maintenance (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (DONE_KEY, float(yesterday.toordinal())),
        )
    return run
