"""Alarm transitions decided over one evaluation, before they are written in one transaction.

``Changes`` starts from the alarms open when the evaluation began and follows what each batch
says, in order, so that a batch raising an alarm and a later one clearing it in the same
evaluation give a raise and a clear, and a re-trigger while open only updates the value.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from cellwarden.cloud.alarms.packs import PackInfo
from cellwarden.cloud.alarms.rule_store import StoredRule

Key = tuple[int, str]  # (pack id, source key)


@dataclass(frozen=True)
class Hit:
    """The newest record that met a raise condition."""

    value: float | None
    threshold: float | None
    message: str


@dataclass
class Op:
    """One transition; ``alarm_id`` is None for an alarm raised earlier in the same evaluation."""

    action: Literal["raise", "update", "clear"]
    pack: PackInfo
    rule: StoredRule
    source_key: str
    alarm_id: int | None = None
    cell: int | None = None
    code: str | None = None
    value: float | None = None
    threshold: float | None = None
    message: str = ""
    detail: str = ""


class Changes:
    def __init__(self, open_alarms: Mapping[Key, int]) -> None:
        self._open: dict[Key, int | None] = dict(open_alarms)
        self._amendable: dict[Key, Op] = {}  # the raise or update a re-trigger overwrites
        self.ops: list[Op] = []

    def is_open(self, pack_id: int, source_key: str) -> bool:
        return (pack_id, source_key) in self._open

    def open_keys(self, pack_id: int, prefix: str) -> Iterator[str]:
        """Source keys of the pack's open alarms starting with ``prefix``."""
        return (key for pack, key in self._open if pack == pack_id and key.startswith(prefix))

    def observe(
        self, pack: PackInfo, rule: StoredRule, source_key: str, *, hit: Hit | None,
        normal: str | None, cell: int | None = None, code: str | None = None,
    ) -> None:  # fmt: skip
        """What a batch says of one source: ``hit`` when a record met the raise condition,
        ``normal`` (why) when the newest decisive record is back to normal."""
        key = (pack.id, source_key)
        if hit is not None and key not in self._open:
            op = Op("raise", pack, rule, source_key, None, cell, code, hit.value, hit.threshold,
                    hit.message)  # fmt: skip
            self.ops.append(op)
            self._open[key] = None
            self._amendable[key] = op
        elif hit is not None and normal is None:
            op = self._amendable.get(key)
            if op is None:
                op = Op("update", pack, rule, source_key, self._open[key])
                self.ops.append(op)
                self._amendable[key] = op
            op.value, op.message = hit.value, hit.message
        if normal is not None and key in self._open:
            self.ops.append(Op("clear", pack, rule, source_key, self._open.pop(key), detail=normal))
            self._amendable.pop(key, None)
