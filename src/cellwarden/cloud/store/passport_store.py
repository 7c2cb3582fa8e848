"""Battery passports in the store: records, their versions, status history and counters.

Nothing stored is ever lost: every document a passport had stays as a numbered version
(consecutive from 1, each with its time, author, reason and the field paths it changed), and
every status it had stays in its history; the tables refuse updates and deletes (migration
4). A status change saves a version of the document with the new ``batteryStatus``. The
battery that leaves for a second life gets a successor record that names its predecessor.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.schema_v4 import COUNTER_COLUMNS
from cellwarden.passport.access_levels import Role as PassportRole
from cellwarden.passport.builder import STATUSES
from cellwarden.passport.identifier import check_urn

ORIGINAL, REPURPOSED, REUSED, REMANUFACTURED, WASTE = STATUSES
# what a battery's status may become; Waste is final
NEXT_STATUSES: dict[str, frozenset[str]] = {
    ORIGINAL: frozenset({REPURPOSED, REUSED, REMANUFACTURED, WASTE}),
    REPURPOSED: frozenset({WASTE, REPURPOSED, REUSED}),
    REUSED: frozenset({WASTE, REPURPOSED, REUSED}),
    REMANUFACTURED: frozenset({WASTE, REPURPOSED, REUSED}),
    WASTE: frozenset(),
}
SECOND_LIFE_STATUSES = (REPURPOSED, REUSED, REMANUFACTURED)  # a successor record starts so
SCHEDULER = "scheduler"  # the author of the versions the nightly refresh saves
# passport roles a user of another organisation may be granted (access_levels.Role values);
# the owning organisation's members are its manufacturer or legitimate-interest readers
GRANTABLE_ROLES = (PassportRole.LEGITIMATE_INTEREST.value, PassportRole.AUTHORITY.value)
# where a document states its identifier and status (GeneralProductInformation)
GENERAL = "generalProductInformation"
IDENTIFIER, STATUS = "batteryPassportIdentifier", "batteryStatus"


class UnknownPassportError(LookupError):
    """No passport (or no such version of it) under the identifier asked for."""


@dataclass(frozen=True)
class PassportRecord:
    urn: str
    pack_id: int | None  # the registered pack whose history feeds it
    status: str
    predecessor: str | None  # the original battery's passport of a second-life one
    created_s: float
    version: int  # the current version


@dataclass(frozen=True)
class PassportVersion:
    urn: str
    version: int
    time_s: float
    author: str  # a user's name, or SCHEDULER
    reason: str
    body: dict


@dataclass(frozen=True)
class ChangeLogEntry:
    version: int
    time_s: float
    author: str
    reason: str
    changed: tuple[str, ...]  # field paths that differ from the version before (none for 1)


@dataclass(frozen=True)
class StatusChange:
    status: str
    time_s: float
    author: str
    note: str


def changed_paths(old: Any, new: Any, path: str = "") -> list[str]:
    """The paths (``a.b[2].c``) where two JSON documents differ: a key or list item only one
    of them has, or a value that is not equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for key in [*old, *(key for key in new if key not in old)]:
            inner = f"{path}.{key}" if path else key
            out += (
                changed_paths(old[key], new[key], inner) if key in old and key in new else [inner]
            )
        return out
    if isinstance(old, list) and isinstance(new, list):
        out = []
        for index in range(max(len(old), len(new))):
            inner = f"{path}[{index}]"
            both = index < len(old) and index < len(new)
            out += changed_paths(old[index], new[index], inner) if both else [inner]
        return out
    return [] if old == new and type(old) is type(new) else [path]


def _encoded(urn: str, status: str, body: dict) -> str:
    """The document as stored; ValueError when it names another passport or status or is
    not JSON (NaN included)."""
    if not isinstance(body, dict):
        raise ValueError(f"passport {urn}: a document is a JSON object, not {type(body).__name__}")
    general = body.get(GENERAL, {})
    for key, want in ((IDENTIFIER, urn), (STATUS, status)):
        if key in general and general[key] != want:
            raise ValueError(
                f"passport {urn}: the document's {key} is {general[key]!r}, not {want!r}"
            )
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as error:
        raise ValueError(f"passport {urn}: the document is not JSON: {error}") from None


class PassportStore:
    """The ``passports``, ``passport_versions``, ``passport_status`` and ``passport_daily``
    tables."""

    def __init__(self, db: Database) -> None:
        self.db = db

    # --- records ----------------------------------------------------------------------------
    def create(
        self,
        urn: str,
        body: dict,
        author: str,
        *,
        pack_id: int | None = None,
        status: str = ORIGINAL,
        reason: str = "created",
    ) -> PassportRecord:
        """A new passport with ``body`` as its version 1; ValueError when the identifier is
        malformed or taken, the pack unknown or the status not one of STATUSES."""
        with self.db.transaction():
            self._insert(urn, body, author, pack_id, status, None, reason)
        return self.record(urn)

    def create_successor(
        self,
        urn: str,
        new_urn: str,
        status: str,
        body: dict,
        author: str,
        *,
        pack_id: int | None = None,
        note: str = "",
    ) -> PassportRecord:
        """In one transaction: ``urn``'s status becomes ``status`` (a second-life one) and a
        new passport ``new_urn`` with that status and ``body`` names it as its predecessor;
        its pack is ``pack_id``, or the predecessor's. The new record."""
        if status not in SECOND_LIFE_STATUSES:
            raise ValueError(
                f"a successor passport starts {', '.join(SECOND_LIFE_STATUSES)}, not {status!r}"
            )
        with self.db.transaction():
            old = self._locked(urn)
            self._change_status(old, status, author, note or f"successor {new_urn}")
            pack = old.pack_id if pack_id is None else pack_id
            self._insert(new_urn, body, author, pack, status, urn, f"successor of {urn}")
        return self.record(new_urn)

    def _insert(
        self,
        urn: str,
        body: dict,
        author: str,
        pack_id: int | None,
        status: str,
        predecessor: str | None,
        reason: str,
    ) -> None:
        check_urn(urn)
        if status not in STATUSES:
            raise ValueError(f"battery status {status!r}: one of {', '.join(STATUSES)}")
        text = _encoded(urn, status, body)
        if (
            pack_id is not None
            and not self.db.execute("SELECT 1 FROM packs WHERE id = ?", (pack_id,)).fetchone()
        ):
            raise ValueError(f"passport {urn}: no pack {pack_id}")
        now_s = time.time()
        if not self.db.execute(
            "INSERT INTO passports (urn, pack_id, status, predecessor, created_s, version) "
            "VALUES (?, ?, ?, ?, ?, 1) ON CONFLICT (urn) DO NOTHING RETURNING urn",
            (urn, pack_id, status, predecessor, now_s),
        ).fetchall():
            raise ValueError(f"passport {urn} exists already")
        self.db.execute(
            "INSERT INTO passport_versions (urn, version, time_s, author, reason, body, changes) "
            "VALUES (?, 1, ?, ?, ?, ?, '[]')",
            (urn, now_s, author, reason, text),
        )
        self._log_status(urn, status, now_s, author, reason)

    def record(self, urn: str) -> PassportRecord:
        rows = self.db.query(f"SELECT {_RECORD} FROM passports WHERE urn = ?", (urn,))
        if not rows:
            raise UnknownPassportError(f"no passport {urn}")
        return PassportRecord(*rows[0])

    def records(self, pack_id: int | None = None) -> list[PassportRecord]:
        """Every passport (of ``pack_id`` when given), by identifier."""
        where, params = ("WHERE pack_id = ?", (pack_id,)) if pack_id is not None else ("", ())
        rows = self.db.query(f"SELECT {_RECORD} FROM passports {where} ORDER BY urn", params)
        return [PassportRecord(*row) for row in rows]

    def in_service(self) -> list[PassportRecord]:
        """The passports the nightly refresh keeps up to date: with a pack, not waste, and not
        succeeded by a second-life one."""
        rows = self.db.query(
            f"SELECT {_RECORD} FROM passports p WHERE pack_id IS NOT NULL AND status <> ? "
            "AND NOT EXISTS (SELECT 1 FROM passports s WHERE s.predecessor = p.urn) "
            "ORDER BY urn",
            (WASTE,),
        )
        return [PassportRecord(*row) for row in rows]

    def _locked(self, urn: str) -> PassportRecord:
        """The record as committed, its row locked until the transaction ends (an update
        that changes nothing: a concurrent writer waits, then reads what this one wrote)."""
        rows = self.db.execute(
            f"UPDATE passports SET version = version WHERE urn = ? RETURNING {_RECORD}", (urn,)
        ).fetchall()
        if not rows:
            raise UnknownPassportError(f"no passport {urn}")
        return PassportRecord(*rows[0])

    # --- versions ---------------------------------------------------------------------------
    def save_version(self, urn: str, body: dict, author: str, reason: str) -> int:
        """Append ``body`` as the passport's next version; its number."""
        with self.db.transaction():
            return self._append(self._locked(urn), body, author, reason)

    def _current_body(self, record: PassportRecord) -> dict:
        """The document of the record's current version, read in the open transaction."""
        (body,) = self.db.execute(
            "SELECT body FROM passport_versions WHERE urn = ? AND version = ?",
            (record.urn, record.version),
        ).fetchone()
        return json.loads(body)

    def _append(self, record: PassportRecord, body: dict, author: str, reason: str) -> int:
        text = _encoded(record.urn, record.status, body)
        changes = changed_paths(self._current_body(record), body)
        version = record.version + 1
        self.db.execute(
            "INSERT INTO passport_versions (urn, version, time_s, author, reason, body, changes) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (record.urn, version, time.time(), author, reason, text, json.dumps(changes)),
        )
        self.db.execute("UPDATE passports SET version = ? WHERE urn = ?", (version, record.urn))
        return version

    def current(self, urn: str) -> PassportVersion:
        return self.version(urn, self.record(urn).version)

    def version(self, urn: str, version: int) -> PassportVersion:
        rows = self.db.query(
            "SELECT version, time_s, author, reason, body FROM passport_versions "
            "WHERE urn = ? AND version = ?",
            (urn, version),
        )
        if not rows:
            self.record(urn)  # names an unknown passport as such
            raise UnknownPassportError(f"passport {urn} has no version {version}")
        number, time_s, author, reason, body = rows[0]
        return PassportVersion(urn, number, time_s, author, reason, json.loads(body))

    def change_log(self, urn: str) -> list[ChangeLogEntry]:
        """Every version, oldest first, with what it changed."""
        self.record(urn)
        rows = self.db.query(
            "SELECT version, time_s, author, reason, changes FROM passport_versions "
            "WHERE urn = ? ORDER BY version",
            (urn,),
        )
        return [ChangeLogEntry(v, t, who, why, tuple(json.loads(changes)))
                for v, t, who, why, changes in rows]  # fmt: skip

    # --- status -----------------------------------------------------------------------------
    def set_status(self, urn: str, status: str, author: str, note: str = "") -> PassportRecord:
        """Change the battery's status (NEXT_STATUSES; ValueError naming both states
        otherwise), logged with its author and note; the document's status changes in a
        new version."""
        with self.db.transaction():
            self._change_status(self._locked(urn), status, author, note)
        return self.record(urn)

    def _change_status(self, record: PassportRecord, status: str, author: str, note: str) -> None:
        if status not in NEXT_STATUSES.get(record.status, ()):
            allowed = ", ".join(sorted(NEXT_STATUSES.get(record.status, ()))) or "none: it is final"
            raise ValueError(
                f"passport {record.urn}: the status cannot change from {record.status} to "
                f"{status} (from {record.status}: {allowed})"
            )
        body = self._current_body(record)
        if STATUS in body.get(GENERAL, {}):
            body[GENERAL][STATUS] = status
        self.db.execute("UPDATE passports SET status = ? WHERE urn = ?", (status, record.urn))
        reason = f"status {record.status} -> {status}" + (f": {note}" if note else "")
        self._append(replace(record, status=status), body, author, reason)
        self._log_status(record.urn, status, time.time(), author, note)

    def _log_status(self, urn: str, status: str, time_s: float, author: str, note: str) -> None:
        self.db.execute(
            "INSERT INTO passport_status (urn, status, time_s, author, note) "
            "VALUES (?, ?, ?, ?, ?)",
            (urn, status, time_s, author, note),
        )

    def status_history(self, urn: str) -> list[StatusChange]:
        """Every status the battery had, oldest first (the first: its status at creation)."""
        self.record(urn)
        rows = self.db.query(
            "SELECT status, time_s, author, note FROM passport_status WHERE urn = ? ORDER BY id",
            (urn,),
        )
        return [StatusChange(*row) for row in rows]

    # --- grants -----------------------------------------------------------------------------
    def grant_role(self, user_id: int, role: str, granted_by: str) -> None:
        """Give a user outside the batteries' organisations a passport role (GRANTABLE_ROLES),
        replacing the one they had."""
        if role not in GRANTABLE_ROLES:
            raise ValueError(f"passport role {role!r}: grant one of {', '.join(GRANTABLE_ROLES)}")
        if not self.db.execute("SELECT 1 FROM users WHERE id = ?", (user_id,)).fetchone():
            raise ValueError(f"no user {user_id}")
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO passport_grants (user_id, role, granted_s, granted_by) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (user_id) DO UPDATE SET role = excluded.role, "
                "granted_s = excluded.granted_s, granted_by = excluded.granted_by",
                (user_id, role, time.time(), granted_by),
            )

    def granted_role(self, user_id: int) -> str | None:
        rows = self.db.query("SELECT role FROM passport_grants WHERE user_id = ?", (user_id,))
        return rows[0][0] if rows else None

    # --- daily counters ---------------------------------------------------------------------
    def upsert_counters(self, pack_id: int, day: date, counters: Mapping[str, float]) -> None:
        """Store the pack's passport counters of ``day`` (COUNTER_COLUMNS; NaN as NULL),
        replacing those stored for that day."""
        values = [counters[name] for name in COUNTER_COLUMNS]
        names = ", ".join(COUNTER_COLUMNS)
        with self.db.transaction():
            self.db.execute(
                f"INSERT INTO passport_daily (pack, day, {names}) "
                f"VALUES (?, ?, {', '.join('?' * len(COUNTER_COLUMNS))}) ON CONFLICT (pack, day) "
                f"DO UPDATE SET {', '.join(f'{n} = excluded.{n}' for n in COUNTER_COLUMNS)}",
                (pack_id, day.isoformat(), *(None if np.isnan(v) else float(v) for v in values)),
            )

    def counters(self, pack_id: int) -> pd.DataFrame:
        """The pack's passport counters: ``date`` and COUNTER_COLUMNS, oldest first."""
        rows = self.db.query(
            f"SELECT day, {', '.join(COUNTER_COLUMNS)} FROM passport_daily WHERE pack = ? "
            "ORDER BY day",
            (pack_id,),
        )
        frame = pd.DataFrame(rows, columns=["date", *COUNTER_COLUMNS])
        return frame.astype({"date": "datetime64[ns]", **dict.fromkeys(COUNTER_COLUMNS, float)})


_RECORD = "urn, pack_id, status, predecessor, created_s, version"
