"""Alarms, their log and their notifications in the database.

Writes run inside the caller's transaction, so that a transition, its ``alarm_log`` line and
its ``notifications`` (the outbox) are stored together or not at all. Reads of many alarms use
``query`` (no snapshot kept); reads inside a transaction use ``execute``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cellwarden.cloud.alarms import messages
from cellwarden.cloud.alarms.changes import Key, Op
from cellwarden.cloud.alarms.rules import Target
from cellwarden.cloud.store.database import Database

OPEN = ("active", "acknowledged")
STATES = {
    "active": ("active",),
    "acknowledged": ("acknowledged",),
    "cleared": ("cleared",),
    "open": OPEN,
}
MAX_PER_PAGE = 500
ALARM_KEYS = (
    "id", "org_id", "pack_id", "device_id", "pack", "fleet", "rule_id", "rule", "cell", "code",
    "state", "severity", "value", "threshold", "message", "raised_s", "updated_s", "acked_by",
    "acked_s", "cleared_by", "cleared_s", "escalation_level",
)  # fmt: skip
_SELECT = (
    "SELECT a.id, a.org_id, a.pack_id, p.device_id, p.name, f.name, a.rule_id, r.name, a.cell, "
    "a.code, a.state, a.severity, a.value, a.threshold, a.message, a.raised_s, a.updated_s, "
    "a.acked_by, a.acked_s, a.cleared_by, a.cleared_s, a.escalation_level FROM alarms a "
    "JOIN packs p ON p.id = a.pack_id JOIN fleets f ON f.id = p.fleet_id "
    "LEFT JOIN alarm_rules r ON r.id = a.rule_id"
)


class AlarmError(ValueError):
    """An alarm operation that cannot be done; the message names why."""


class AlarmStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # --- reads --------------------------------------------------------------------------------
    def open_keys(self, pack_ids: Sequence[int]) -> dict[Key, int]:
        """(pack id, source key) -> alarm id of the open alarms of these packs."""
        if not pack_ids:
            return {}
        rows = self.db.query(
            f"SELECT pack_id, source_key, id FROM alarms WHERE pack_id IN ({_marks(pack_ids)}) "
            "AND state <> 'cleared'",
            list(pack_ids),
        )
        return {(pack_id, key): alarm_id for pack_id, key, alarm_id in rows}

    def open_of_rules(self, rule_ids: Sequence[int], states: Sequence[str]) -> list[tuple]:
        """(id, pack id, rule id, source key, raised_s, escalation level) in these states."""
        if not rule_ids:
            return []
        return self.db.query(
            "SELECT id, pack_id, rule_id, source_key, raised_s, escalation_level FROM alarms "
            f"WHERE rule_id IN ({_marks(rule_ids)}) AND state IN ({_marks(states)})",
            [*rule_ids, *states],
        )

    def get(self, alarm_id: int) -> dict[str, Any] | None:
        """One alarm with its ``log`` (time_s, action, who, detail), oldest first."""
        rows = self.db.query(f"{_SELECT} WHERE a.id = ?", (alarm_id,))
        if not rows:
            return None
        alarm = dict(zip(ALARM_KEYS, rows[0], strict=True))
        alarm["log"] = [
            dict(zip(("time_s", "action", "who", "detail"), row, strict=True))
            for row in self.db.query(
                "SELECT time_s, action, who, detail FROM alarm_log WHERE alarm_id = ? "
                "ORDER BY time_s, id",
                (alarm_id,),
            )
        ]
        return alarm

    def page(
        self, org_ids: Sequence[int], state: str | None, page: int, per_page: int
    ) -> dict[str, Any]:
        """``total`` alarms of these organisations and one page of them (``items``, keys
        ALARM_KEYS), newest first."""
        if state is not None and state not in STATES:
            raise AlarmError(f"state {state!r}: use one of {', '.join(STATES)}")
        if page < 1 or not 1 <= per_page <= MAX_PER_PAGE:
            raise AlarmError(f"page starts at 1 and per_page is 1..{MAX_PER_PAGE}")
        if not org_ids:
            return {"total": 0, "page": page, "per_page": per_page, "items": []}
        where, params = f"a.org_id IN ({_marks(org_ids)})", list(org_ids)
        if state is not None:
            where += f" AND a.state IN ({_marks(STATES[state])})"
            params += STATES[state]
        total = self.db.query(f"SELECT COUNT(*) FROM alarms a WHERE {where}", params)[0][0]
        rows = self.db.query(
            f"{_SELECT} WHERE {where} ORDER BY a.raised_s DESC, a.id DESC LIMIT ? OFFSET ?",
            [*params, per_page, (page - 1) * per_page],
        )
        items = [dict(zip(ALARM_KEYS, row, strict=True)) for row in rows]
        return {"total": total, "page": page, "per_page": per_page, "items": items}

    # --- writes (inside the caller's transaction) ---------------------------------------------
    def apply(self, ops: Sequence[Op], now_s: float) -> None:
        """Write the transitions of an evaluation in order."""
        raised: dict[Key, int] = {}
        for op in ops:
            key = (op.pack.id, op.source_key)
            if op.action == "raise":
                raised[key] = self._raise(op, now_s)
                continue
            alarm_id = op.alarm_id if op.alarm_id is not None else raised.get(key)
            if op.action == "update":
                self.db.execute(
                    "UPDATE alarms SET value = ?, message = ?, updated_s = ? "
                    "WHERE id = ? AND state <> 'cleared'",
                    (op.value, op.message, now_s, alarm_id),
                )
            elif self._close(alarm_id, "system", now_s, op.detail):
                self._notify(alarm_id, "cleared", op.rule.rule.notify, now_s)

    def acknowledge(self, alarm_id: int, user_name: str, now_s: float, comment: str | None) -> None:
        changed = self.db.execute(
            "UPDATE alarms SET state = 'acknowledged', acked_by = ?, acked_s = ? "
            "WHERE id = ? AND state = 'active'",
            (user_name, now_s, alarm_id),
        ).rowcount
        if changed != 1:
            raise AlarmError(self._why_not(alarm_id, "acknowledge"))
        self._log(alarm_id, now_s, "acknowledged", user_name, comment)

    def clear(self, alarm_id: int, user_name: str, now_s: float, notify: Sequence[Target]) -> None:
        if not self._close(alarm_id, user_name, now_s, None):
            raise AlarmError(self._why_not(alarm_id, "clear"))
        self._notify(alarm_id, "cleared", notify, now_s)

    def clear_rule(self, rule_id: int, who: str, now_s: float, detail: str) -> None:
        """Clear every open alarm of a rule (deleted or disabled)."""
        rows = self.db.execute(
            "SELECT id FROM alarms WHERE rule_id = ? AND state <> 'cleared'", (rule_id,)
        ).fetchall()
        for (alarm_id,) in rows:
            self._close(alarm_id, who, now_s, detail)

    def escalate(
        self, alarm_id: int, level: int, to_level: int, notify: Sequence[Target], now_s: float,
        detail: str,
    ) -> None:  # fmt: skip
        changed = self.db.execute(
            "UPDATE alarms SET escalation_level = ? "
            "WHERE id = ? AND state = 'active' AND escalation_level = ?",
            (to_level, alarm_id, level),
        ).rowcount
        if changed == 1:
            self._log(alarm_id, now_s, "escalated", "system", detail)
            self._notify(alarm_id, "escalated", notify, now_s)

    def _raise(self, op: Op, now_s: float) -> int:
        """The new alarm's id, or the open one's when another worker raised it meanwhile."""
        existing = self.db.execute(
            "SELECT id FROM alarms WHERE pack_id = ? AND source_key = ? AND state <> 'cleared'",
            (op.pack.id, op.source_key),
        ).fetchall()
        if existing:
            self.db.execute(
                "UPDATE alarms SET value = ?, message = ?, updated_s = ? WHERE id = ?",
                (op.value, op.message, now_s, existing[0][0]),
            )
            return int(existing[0][0])
        rule = op.rule
        alarm_id = int(self.db.execute(
            "INSERT INTO alarms (org_id, pack_id, rule_id, source_key, cell, code, state, "
            "severity, value, threshold, message, raised_s, updated_s) "
            "VALUES (?, ?, ?, ?, ?, ?, 'active', ?, ?, ?, ?, ?, ?) RETURNING id",
            (op.pack.org_id, op.pack.id, rule.id, op.source_key, op.cell, op.code,
             rule.rule.severity.value, op.value, op.threshold, op.message, now_s, now_s),
        ).fetchone()[0])  # fmt: skip
        self._log(alarm_id, now_s, "raised", "system", f"rule {rule.rule.name}: {op.message}")
        self._notify(alarm_id, "raised", rule.rule.notify, now_s)
        return alarm_id

    def _close(self, alarm_id: int | None, who: str, now_s: float, detail: str | None) -> bool:
        changed = self.db.execute(
            "UPDATE alarms SET state = 'cleared', cleared_by = ?, cleared_s = ? "
            "WHERE id = ? AND state <> 'cleared'",
            (who, now_s, alarm_id),
        ).rowcount
        if changed == 1:
            self._log(alarm_id, now_s, "cleared", who, detail)
        return changed == 1

    def _why_not(self, alarm_id: int, action: str) -> str:
        rows = self.db.execute(
            "SELECT state, acked_by, acked_s, cleared_by, cleared_s FROM alarms WHERE id = ?",
            (alarm_id,),
        ).fetchall()
        if not rows:
            return f"no alarm {alarm_id}"
        state, acked_by, acked_s, cleared_by, cleared_s = rows[0]
        if state == "cleared":
            return (
                f"alarm {alarm_id} is cleared (by {cleared_by} at {cleared_s:.0f} s): "
                f"there is nothing to {action}"
            )
        return f"alarm {alarm_id} was acknowledged by {acked_by} at {acked_s:.0f} s already"

    def _log(self, alarm_id: int, now_s: float, action: str, who: str, detail: str | None) -> None:
        self.db.execute(
            "INSERT INTO alarm_log (alarm_id, time_s, action, who, detail) VALUES (?, ?, ?, ?, ?)",
            (alarm_id, now_s, action, who, detail),
        )

    def _notify(self, alarm_id: int, event: str, targets: Sequence[Target], now_s: float) -> None:
        """Queue one notification per target in the outbox, rendered now."""
        if not targets:
            return
        row = self.db.execute(f"{_SELECT} WHERE a.id = ?", (alarm_id,)).fetchone()
        alarm = dict(zip(ALARM_KEYS, row, strict=True))
        title = messages.subject(alarm, event)
        render = {"webhook": messages.webhook_body, "email": messages.email_body}
        bodies = {t.channel: render[t.channel](alarm, event, now_s) for t in targets}
        self.db.executemany(
            "INSERT INTO notifications (alarm_id, channel, target, subject, body, state, "
            "attempts, next_s) VALUES (?, ?, ?, ?, ?, 'pending', 0, ?)",
            [(alarm_id, t.channel, t.address, title, bodies[t.channel], now_s) for t in targets],
        )


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" * len(values))
