"""The cloud's alarms: rules evaluated on arriving telemetry, silence and escalation checks on a
clock, and the lifecycle operators drive (acknowledge, clear).

An alarm is ``active`` when raised, ``acknowledged`` when someone took it, ``cleared`` when its
condition returned to normal (by ``system``) or someone cleared it; there is one open alarm per
rule, pack and source (a cell, a DTC code). Every transition is logged in ``alarm_log`` and its
notifications are queued in the same transaction. Time is injected (``now_s``, server time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from cellwarden.cloud.alarms.alarm_store import OPEN, AlarmError, AlarmStore
from cellwarden.cloud.alarms.changes import Changes, Hit
from cellwarden.cloud.alarms.evaluator import FrameEvaluator
from cellwarden.cloud.alarms.messages import silence_message
from cellwarden.cloud.alarms.packs import PackDirectory
from cellwarden.cloud.alarms.rule_store import RuleStore, StoredRule
from cellwarden.cloud.alarms.rules import AlarmRule, NoDataCondition, RuleError
from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.telemetry.codec import Frame


class AlarmEngine:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._alarms = AlarmStore(db)
        self._rules = RuleStore(db)
        self._packs = PackDirectory(db)
        self._frames = FrameEvaluator(db)

    # --- evaluation ---------------------------------------------------------------------------
    def evaluate(self, arrivals: Sequence[Arrival], now_s: float) -> None:
        """Apply the rules to a batch the ingest worker has just stored."""
        packs = self._packs.get({arrival.pack_id for arrival in arrivals})
        rules = self._rules.enabled({pack.org_id for pack in packs.values()})
        if not any(rules.values()):
            return
        changes = Changes(self._alarms.open_keys(list(packs)))
        for pack in packs.values():
            for stored in rules[pack.org_id]:
                if isinstance(stored.rule.condition, NoDataCondition):
                    changes.observe(pack, stored, f"{stored.id}/no_data", hit=None,
                                    normal="data arrived again")  # fmt: skip
        for arrival in sorted(arrivals, key=_order):
            pack = packs.get(arrival.pack_id)
            if pack is None:
                continue
            applicable = [s for s in rules[pack.org_id] if s.rule.applies_to(pack.fleet)]
            if applicable:
                self._frames.evaluate(pack, arrival.frame, applicable, changes)
        self._write(changes, now_s)

    def check_silence(self, now_s: float) -> None:
        """Raise ``no_data`` alarms for packs silent too long; clear those heard from again."""
        rules = [
            (stored, stored.rule.condition)
            for org_rules in self._rules.enabled().values()
            for stored in org_rules
            if isinstance(stored.rule.condition, NoDataCondition)
        ]
        if not rules:
            return
        last = self._packs.last_received({stored.org_id for stored, _ in rules})
        open_alarms = self._alarms.open_of_rules([stored.id for stored, _ in rules], OPEN)
        changes = Changes({(row[1], row[3]): row[0] for row in open_alarms})
        for stored, condition in rules:
            key = f"{stored.id}/no_data"
            for pack, received_s in last:
                if pack.org_id != stored.org_id or not stored.rule.applies_to(pack.fleet):
                    continue
                silent_min = (now_s - received_s) / 60.0
                if silent_min <= condition.silence_min:
                    changes.observe(pack, stored, key, hit=None, normal="data arrived again")
                elif not changes.is_open(pack.id, key):
                    message = silence_message(pack, silent_min, condition.silence_min)
                    hit = Hit(silent_min, condition.silence_min, message)
                    changes.observe(pack, stored, key, hit=hit, normal=None)
        self._write(changes, now_s)

    def escalate(self, now_s: float) -> None:
        """Raise the escalation level of active alarms not acknowledged in time, telling the
        rule's ``escalate_to`` (once per level, up to ``escalate_max_level``)."""
        rules = {
            stored.id: stored.rule
            for org_rules in self._rules.enabled().values()
            for stored in org_rules
            if stored.rule.escalate_after_s is not None
        }
        due = []
        for alarm_id, _, rule_id, _, raised_s, level in self._alarms.open_of_rules(
            list(rules), ("active",)
        ):
            rule = rules[rule_id]
            reached = min(math.floor((now_s - raised_s) / rule.escalate_after_s),
                          rule.escalate_max_level)  # fmt: skip
            if reached > level:
                due.append((alarm_id, level, reached, rule))
        if not due:
            return
        with self.db.transaction():
            for alarm_id, level, reached, rule in due:
                waited_s = reached * rule.escalate_after_s
                detail = f"level {reached}: not acknowledged within {waited_s:g} s"
                self._alarms.escalate(alarm_id, level, reached, rule.escalate_to, now_s, detail)

    # --- lifecycle ----------------------------------------------------------------------------
    def acknowledge(
        self, alarm_id: int, user_name: str, now_s: float, comment: str | None = None
    ) -> dict[str, Any]:
        """Take an active alarm; AlarmError when it is unknown, acknowledged or cleared."""
        with self.db.transaction():
            self._alarms.acknowledge(alarm_id, user_name, now_s, comment)
        return self._get(alarm_id)

    def clear(self, alarm_id: int, user_name: str, now_s: float) -> dict[str, Any]:
        """Clear an open alarm by hand (the rule's ``notify`` targets are told); AlarmError
        when it is unknown or cleared. A condition still present raises a new one."""
        rule_id = self._get(alarm_id)["rule_id"]
        stored = None if rule_id is None else self._rules.get(rule_id)
        with self.db.transaction():
            self._alarms.clear(alarm_id, user_name, now_s, stored.rule.notify if stored else [])
        return self._get(alarm_id)

    def list_alarms(
        self, org_ids: Sequence[int], state: str | None = None, page: int = 1, per_page: int = 50
    ) -> dict[str, Any]:
        """``{"total", "page", "per_page", "items"}``: alarms of these organisations, newest
        first; ``state`` is active, acknowledged, cleared or open (active or acknowledged)."""
        return self._alarms.page(org_ids, state, page, per_page)

    def get_alarm(self, alarm_id: int) -> dict[str, Any] | None:
        """One alarm with its ``log``, or None."""
        return self._alarms.get(alarm_id)

    # --- rules --------------------------------------------------------------------------------
    def add_rule(self, org_id: int, rule: AlarmRule, enabled: bool = True) -> int:
        """Store a rule; RuleError when the organisation is unknown or has the name."""
        with self.db.transaction():
            return self._rules.insert(org_id, rule, enabled, time.time())

    def list_rules(self, org_id: int) -> list[dict[str, Any]]:
        """The organisation's rules by name, as ``get_rule`` gives them."""
        return [_rule_dict(stored) for stored in self._rules.for_org(org_id)]

    def get_rule(self, rule_id: int) -> dict[str, Any] | None:
        """A rule's JSON fields with its ``id``, ``org_id``, ``enabled`` and ``created_s``."""
        stored = self._rules.get(rule_id)
        return None if stored is None else _rule_dict(stored)

    def set_rule_enabled(
        self, rule_id: int, enabled: bool, user_name: str = "system", now_s: float | None = None
    ) -> None:
        """Switch a rule on or off; switching off clears its open alarms (by ``user_name``)."""
        stored = self._rule(rule_id)
        with self.db.transaction():
            self._rules.set_enabled(stored, enabled)
            if not enabled:
                self._alarms.clear_rule(rule_id, user_name, _now(now_s), "rule disabled")

    def delete_rule(
        self, rule_id: int, user_name: str = "system", now_s: float | None = None
    ) -> None:
        """Delete a rule, clearing its open alarms (by ``user_name``); its alarms stay."""
        stored = self._rule(rule_id)
        with self.db.transaction():
            self._alarms.clear_rule(rule_id, user_name, _now(now_s), "rule deleted")
            self._rules.delete(stored)

    # --- helpers ------------------------------------------------------------------------------
    def _write(self, changes: Changes, now_s: float) -> None:
        if changes.ops:
            with self.db.transaction():
                self._alarms.apply(changes.ops, now_s)

    def _get(self, alarm_id: int) -> dict[str, Any]:
        alarm = self._alarms.get(alarm_id)
        if alarm is None:
            raise AlarmError(f"no alarm {alarm_id}")
        return alarm

    def _rule(self, rule_id: int) -> StoredRule:
        stored = self._rules.get(rule_id)
        if stored is None:
            raise RuleError(f"no alarm rule {rule_id}")
        return stored


def _rule_dict(stored: StoredRule) -> dict[str, Any]:
    return {
        "id": stored.id, "org_id": stored.org_id, "enabled": stored.enabled,
        "created_s": stored.created_s, **stored.rule.model_dump(mode="json"),
    }  # fmt: skip


def _now(now_s: float | None) -> float:
    return time.time() if now_s is None else now_s


def _order(arrival: Arrival) -> tuple[int, float]:
    """Batches of a pack oldest first, whatever order they were stored in."""
    return arrival.pack_id, _first_time_s(arrival.frame)


def _first_time_s(frame: Frame) -> float:
    if "time_s" in frame.columns and len(frame.columns["time_s"]):
        return float(frame.columns["time_s"][0])
    records = frame.records or [{}]
    value = records[0].get("time_s")
    return float(value) if isinstance(value, int | float) else 0.0
