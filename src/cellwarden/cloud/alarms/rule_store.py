"""Alarm rules in the database, and the enabled ones cached per organisation.

Every change bumps the organisation's counter ``alarm_rules:{org_id}`` in ``maintenance``
(in the change's transaction); a reader compares counters (one small query) and reloads only
the organisations whose rules changed, whichever process changed them.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from cellwarden.cloud.alarms.rules import AlarmRule, RuleError, parse_rule
from cellwarden.cloud.store.database import Database

log = logging.getLogger(__name__)

VERSION_PREFIX = "alarm_rules:"
_COLUMNS = "id, org_id, name, body, enabled, created_s"


@dataclass(frozen=True)
class StoredRule:
    id: int
    org_id: int
    enabled: bool
    created_s: float
    rule: AlarmRule


class RuleStore:
    """Reads of alarm_rules, and writes inside the caller's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._cache: dict[int, tuple[float | None, list[StoredRule]]] = {}
        self._lock = threading.Lock()

    # --- reads --------------------------------------------------------------------------------
    def get(self, rule_id: int) -> StoredRule | None:
        rows = self.db.query(f"SELECT {_COLUMNS} FROM alarm_rules WHERE id = ?", (rule_id,))
        return _stored(rows[0]) if rows else None

    def for_org(self, org_id: int) -> list[StoredRule]:
        """Every rule of an organisation, enabled or not, by name."""
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM alarm_rules WHERE org_id = ? ORDER BY name", (org_id,)
        )
        return [_stored(row) for row in rows]

    def enabled(self, org_ids: Iterable[int] | None = None) -> dict[int, list[StoredRule]]:
        """The enabled rules of these organisations (of all, when None), from the cache."""
        versions = {
            int(key.removeprefix(VERSION_PREFIX)): value
            for key, value in self.db.query(
                "SELECT key, value FROM maintenance WHERE key LIKE ?", (f"{VERSION_PREFIX}%",)
            )
        }
        out = {}
        for org_id in versions if org_ids is None else org_ids:
            version = versions.get(org_id)
            cached = self._cache.get(org_id)
            if cached is None or cached[0] != version:
                cached = (version, self._load(org_id) if version is not None else [])
                with self._lock:
                    self._cache[org_id] = cached
            out[org_id] = cached[1]
        return out

    def _load(self, org_id: int) -> list[StoredRule]:
        rows = self.db.query(
            f"SELECT {_COLUMNS} FROM alarm_rules WHERE org_id = ? AND enabled = 1", (org_id,)
        )
        rules = []
        for row in rows:
            try:
                rules.append(_stored(row))
            except ValueError as error:  # written by another version: skip it, keep the rest
                log.error("alarm rule %s of organisation %s is unusable: %s", row[0], org_id, error)
        return rules

    # --- writes (inside the caller's transaction) ---------------------------------------------
    def insert(self, org_id: int, rule: AlarmRule, enabled: bool, now_s: float) -> int:
        if not self.db.execute("SELECT 1 FROM organisations WHERE id = ?", (org_id,)).fetchall():
            raise RuleError(f"no organisation {org_id}")
        if self.db.execute(
            "SELECT 1 FROM alarm_rules WHERE org_id = ? AND name = ?", (org_id, rule.name)
        ).fetchall():
            raise RuleError(f"organisation {org_id} has a rule named {rule.name!r} already")
        row = self.db.execute(
            "INSERT INTO alarm_rules (org_id, name, body, enabled, created_s) "
            "VALUES (?, ?, ?, ?, ?) RETURNING id",
            (org_id, rule.name, rule.model_dump_json(exclude={"name"}), int(enabled), now_s),
        ).fetchone()
        self._changed(org_id)
        return int(row[0])

    def set_enabled(self, rule: StoredRule, enabled: bool) -> None:
        self.db.execute("UPDATE alarm_rules SET enabled = ? WHERE id = ?", (int(enabled), rule.id))
        self._changed(rule.org_id)

    def delete(self, rule: StoredRule) -> None:
        """Delete a rule; its alarms stay, without a rule (``rule`` None in listings)."""
        self.db.execute("UPDATE alarms SET rule_id = NULL WHERE rule_id = ?", (rule.id,))
        self.db.execute("DELETE FROM alarm_rules WHERE id = ?", (rule.id,))
        self._changed(rule.org_id)

    def _changed(self, org_id: int) -> None:
        self.db.execute(
            "INSERT INTO maintenance (key, value) VALUES (?, 1) ON CONFLICT (key) "
            "DO UPDATE SET value = maintenance.value + 1",
            (f"{VERSION_PREFIX}{org_id}",),
        )


def _stored(row: tuple) -> StoredRule:
    rule_id, org_id, name, body, enabled, created_s = row
    rule = parse_rule({**json.loads(body), "name": name})
    return StoredRule(rule_id, org_id, bool(enabled), float(created_s), rule)
