"""The passports' dynamic data from the stored BMS history, refreshed once a day.

After the daily rows are derived (``scheduled_analytics.run_day``), each passport in service
gets its pack's counters of the day (``passport_daily``: time outside its battery's idle
temperature range, rest SoC drift) and, when a document builder is plugged in, a new
version if the document built from the battery's condition differs from the current one.
The ratings the condition is measured against are the ones the current document states.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

import pandas as pd

from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.daily_history import day_counters
from cellwarden.cloud.store.passport_store import SCHEDULER, changed_paths
from cellwarden.cloud.store.registry import RegistryError
from cellwarden.passport.condition import BatteryCondition, Ratings, battery_condition
from cellwarden.passport.negative_events import NEGATIVE_CODES

log = logging.getLogger(__name__)
REST_CURRENT_C = 0.01  # at rest: |current| below 1 % of the rated capacity per hour
# the document of a passport (its identifier) in a given condition
PassportBuilder = Callable[[str, BatteryCondition], dict]


@dataclass
class PassportRefresh:
    days: list[date]
    counter_days: int = 0  # (pack, day) counter rows written
    versions_saved: list[str] = field(default_factory=list)  # passports with a new version
    failures: dict[str, str] = field(default_factory=dict)  # passport -> why


def _end_of(day: date) -> datetime:
    """Midnight UTC after ``day``: the as-of time of a condition that includes it."""
    return datetime.combine(day + timedelta(days=1), time(), UTC)


def condition_for_pack(
    store: CloudStore, pack_id: int, ratings: Ratings, as_of: datetime
) -> BatteryCondition:
    """``battery_condition`` of a registered pack from what the store holds: its daily rows,
    its passport counters, its negative trips and its last SoC reading before ``as_of``."""
    fleet = store.db.query("SELECT fleet_id FROM packs WHERE id = ?", (pack_id,))
    if not fleet:
        raise RegistryError(f"no pack {pack_id}")
    before_s = (as_of if as_of.tzinfo else as_of.replace(tzinfo=UTC)).timestamp()
    codes = sorted(NEGATIVE_CODES)
    trips = store.db.query(
        "SELECT code, time_s, kind FROM events WHERE pack_id = ? AND time_s < ? "
        f"AND kind = 'trip' AND code IN ({', '.join('?' * len(codes))}) ORDER BY time_s",
        (pack_id, before_s, *codes),
    )
    soc = store.db.query(
        "SELECT soc_pct FROM summary WHERE pack_id = ? AND time_s < ? AND soc_pct IS NOT NULL "
        "ORDER BY time_s DESC LIMIT 1",
        (pack_id, before_s),
    )
    return battery_condition(
        store.daily.export_history(fleet[0][0], [pack_id]),
        store.passports.counters(pack_id),
        pd.DataFrame(trips, columns=["code", "time_s", "kind"]),
        ratings,
        as_of,
        latest_soc_pct=soc[0][0] if soc else None,
    )


def derive_counters(
    store: CloudStore, pack_id: int, day: date, ratings: Ratings
) -> dict[str, float] | None:
    """Compute and store the pack's passport counters of ``day`` (UTC) from its summaries,
    against the battery's idle range and rest current; None when it has no summaries."""
    records = store.daily.day_records(pack_id, day)
    if not records.size:
        return None
    counters = day_counters(records, ratings.idle_temp_min_c, ratings.idle_temp_max_c,
                            REST_CURRENT_C * ratings.rated_capacity_ah)  # fmt: skip
    store.passports.upsert_counters(pack_id, day, counters)
    return counters


def refresh_passports(
    store: CloudStore, days: Sequence[date], build: PassportBuilder | None = None
) -> PassportRefresh:
    """For every passport in service: its pack's counters of each of ``days``, then (with
    ``build``) a version by the scheduler when the document of its condition as of the end
    of the last day differs from the current one. A passport that fails is noted and the
    others go on."""
    run = PassportRefresh(sorted(days))
    for record in store.passports.in_service():
        try:
            current = store.passports.current(record.urn)
            ratings = Ratings.from_document(current.body)
            for day in run.days:
                run.counter_days += derive_counters(store, record.pack_id, day, ratings) is not None
            if build is None or not run.days:
                continue
            as_of = _end_of(run.days[-1])
            document = build(record.urn, condition_for_pack(store, record.pack_id, ratings, as_of))
            if changed_paths(current.body, document):
                store.passports.save_version(
                    record.urn, document, SCHEDULER, f"dynamic data as of {as_of:%Y-%m-%d %H:%M}Z"
                )
                run.versions_saved.append(record.urn)
        except Exception as error:  # one passport's bad data never stops the others' refresh
            run.failures[record.urn] = f"{type(error).__name__}: {error}"
            log.exception("passport refresh of %s failed", record.urn)
    return run
