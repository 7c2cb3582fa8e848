"""A battery's passport in the cloud, from registration to its second life or its end.

Registration builds the document from the manufacturer file and the pack's system
configuration and brings it up to date with the stored history; the nightly refresh
(analytics/passport_refresh.py) keeps it so with ``update_document``; a status change is
logged, and a second life (Repurposed, Reused, Remanufactured) starts a successor passport
that names its predecessor; the second-life list grades a fleet's packs from their daily rows.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from cellwarden.cloud.analytics.fleet_analysis import records
from cellwarden.cloud.analytics.passport_refresh import condition_for_pack
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.passport_store import (
    GENERAL,
    IDENTIFIER,
    SECOND_LIFE_STATUSES,
    STATUS,
    PassportRecord,
)
from cellwarden.model.system import SystemSpec
from cellwarden.passport.builder import Identity, build_passport
from cellwarden.passport.condition import BatteryCondition, Ratings
from cellwarden.passport.condition_update import apply_condition
from cellwarden.passport.identifier import passport_urn
from cellwarden.passport.manufacturer_file import ManufacturerFile
from cellwarden.passport.rated_values import rated_values
from cellwarden.passport.second_life import assess, candidates, evidence_from_history
from cellwarden.telemetry.fleet_history import parse_history


def register_passport(
    store: CloudStore, device_id: str, system: SystemSpec, sector: str,
    maker: ManufacturerFile, author: str,
) -> PassportRecord:  # fmt: skip
    """The passport of a registered pack's battery; its serial number is the pack's device id.
    ValueError when the pack is unknown or already has a passport."""
    rows = store.db.query("SELECT id FROM packs WHERE device_id = ?", (device_id,))
    if not rows:
        raise ValueError(f"no pack {device_id!r}: register it first (cloud packs add)")
    pack_id = rows[0][0]
    urn = passport_urn(device_id, maker.namespace)
    document = build_passport(Identity(urn, device_id, sector), maker, rated_values(system))
    ratings = Ratings.from_document(document)
    document = apply_condition(
        document, condition_for_pack(store, pack_id, ratings, datetime.now(UTC))
    )
    return store.passports.create(urn, document, author, pack_id=pack_id, reason="registered")


def update_document(store: CloudStore, urn: str, condition: BatteryCondition) -> dict:
    """The passport's current document with ``condition`` (the nightly refresh's builder)."""
    return apply_condition(store.passports.current(urn).body, condition)


def successor_urn(store: CloudStore, urn: str) -> str:
    """``{urn}l{N}``: the identifier of the battery's N-th life (the first is the original)."""
    life, record = 1, store.passports.record(urn)
    while record.predecessor is not None:
        life, record = life + 1, store.passports.record(record.predecessor)
    return f"{record.urn}l{life + 1}"


def change_status(store: CloudStore, urn: str, status: str, author: str,
                  note: str = "") -> dict[str, Any]:  # fmt: skip
    """Set the battery's status; a second-life status starts its successor passport (a copy
    of the document under the new identifier and status). What was done, as JSON."""
    if status not in SECOND_LIFE_STATUSES:
        record = store.passports.set_status(urn, status, author, note)
        return {"urn": urn, "status": record.status, "version": record.version}
    new_urn = successor_urn(store, urn)
    body = copy.deepcopy(store.passports.current(urn).body)
    body[GENERAL].update({IDENTIFIER: new_urn, STATUS: status})
    successor = store.passports.create_successor(urn, new_urn, status, body, author, note=note)
    return {"urn": urn, "status": status, "successor": successor.urn,
            "version": store.passports.record(urn).version}  # fmt: skip


def second_life_candidates(store: CloudStore, fleet_id: int) -> list[dict[str, Any]]:
    """The fleet's packs graded for a second life from their daily rows, best first."""
    rows = store.daily.export_history(fleet_id)
    if rows.empty:
        return []
    history = parse_history(rows, "stored daily rows")
    as_of = history.rows["date"].max()
    return records(candidates(assess(evidence_from_history(history, as_of))))
