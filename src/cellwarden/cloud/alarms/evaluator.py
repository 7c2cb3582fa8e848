"""A pack's rules over one decoded frame, vectorised over its records (and cells).

Source keys name what an alarm is about, unique per pack: ``{rule}/summary/{field}``,
``{rule}/rate/{field}``, ``{rule}/cell/{n}`` (n from 1), ``{rule}/dtc/{source}/{code}`` and
``{rule}/no_data``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, TypeVar

import numpy as np

from cellwarden.cloud.alarms import detect, lookback, messages
from cellwarden.cloud.alarms.changes import Changes, Hit
from cellwarden.cloud.alarms.packs import PackInfo
from cellwarden.cloud.alarms.rule_store import StoredRule
from cellwarden.cloud.alarms.rules import DtcCondition, RateCondition, ThresholdCondition
from cellwarden.cloud.store.database import Database
from cellwarden.telemetry.codec import Frame
from cellwarden.telemetry.schema import Kind

C = TypeVar("C", ThresholdCondition, RateCondition, DtcCondition)
Earlier = Callable[[float, float], tuple[np.ndarray, np.ndarray]]  # [start, end) -> times, values


class FrameEvaluator:
    def __init__(self, db: Database) -> None:
        self.db = db

    def evaluate(
        self, pack: PackInfo, frame: Frame, rules: Sequence[StoredRule], changes: Changes
    ) -> None:
        """Record in ``changes`` what ``frame`` says under the pack's ``rules``."""
        if frame.kind is Kind.SUMMARY:
            self._summary(pack, frame, rules, changes)
        elif frame.kind is Kind.CELLS:
            self._cells(pack, frame, rules, changes)
        elif frame.kind is Kind.EVENT:
            self._events(pack, frame.records or [], rules, changes)

    def _summary(
        self, pack: PackInfo, frame: Frame, rules: Sequence[StoredRule], changes: Changes
    ) -> None:
        times = frame.columns["time_s"]
        for stored, condition in _with(rules, ThresholdCondition):
            if condition.per_cell:
                continue
            field = condition.field
            earlier = partial(lookback.summary_before, self.db, pack.id, [field])
            result = _threshold_scan(condition, times, frame.columns[field][:, None], earlier)
            _decide(
                changes, pack, stored, result, f"{stored.id}/summary/{field}", False,
                condition.threshold,
                lambda value, _, c=condition: messages.threshold_message(pack, c, value, None),
                condition.quantity.format,
            )  # fmt: skip
        rates = _with(rules, RateCondition)
        if rates:
            self._rates(pack, frame, rates, changes)

    def _rates(
        self, pack: PackInfo, frame: Frame, rules: list[tuple[StoredRule, RateCondition]],
        changes: Changes,
    ) -> None:  # fmt: skip
        """Each record's rate against stored records of up to twice the longest window before."""
        fields = sorted({condition.field for _, condition in rules})
        times = frame.columns["time_s"]
        first_s = float(np.nanmin(times))
        span_s = 2 * max(condition.window_s for _, condition in rules)
        earlier_s, earlier = lookback.summary_before(
            self.db, pack.id, fields, first_s - span_s, first_s
        )
        all_s = np.concatenate([earlier_s, times])
        order = np.argsort(all_s, kind="stable")
        for stored, condition in rules:
            values = np.concatenate([earlier[:, fields.index(condition.field)],
                                     frame.columns[condition.field]])  # fmt: skip
            rates = np.empty_like(values)
            rates[order] = detect.rates_per_min(all_s[order], values[order], condition.window_s)
            rates = rates[len(earlier_s) :, None]
            result = detect.scan(
                rates,
                detect.beyond(rates, condition.operator, condition.threshold_per_min),
                detect.back_within(rates, condition.operator, condition.clear_level),
            )
            _decide(
                changes, pack, stored, result, f"{stored.id}/rate/{condition.field}", False,
                condition.threshold_per_min,
                lambda value, _, c=condition: messages.rate_message(pack, c, value),
                lambda value, c=condition: f"{value:.3g} {c.quantity.unit}/min",
            )  # fmt: skip

    def _cells(
        self, pack: PackInfo, frame: Frame, rules: Sequence[StoredRule], changes: Changes
    ) -> None:
        times = frame.columns["time_s"]
        matrices: dict[str, np.ndarray] = {}
        for stored, condition in _with(rules, ThresholdCondition):
            if not condition.per_cell:
                continue
            name = condition.field.removeprefix("cells.")
            if name not in matrices:
                matrices[name] = lookback.cell_values(frame.cells[name], name)
            values = matrices[name]
            earlier = partial(lookback.cells_before, self.db, pack.id, name, values.shape[1])
            result = _threshold_scan(condition, times, values, earlier)
            _decide(
                changes, pack, stored, result, f"{stored.id}/cell", True, condition.threshold,
                lambda value, cell, c=condition: messages.threshold_message(pack, c, value, cell),
                condition.quantity.format,
            )  # fmt: skip

    def _events(
        self, pack: PackInfo, records: list[dict[str, Any]], rules: Sequence[StoredRule],
        changes: Changes,
    ) -> None:  # fmt: skip
        dtc_rules = _with(rules, DtcCondition)
        for record in records if dtc_rules else []:
            kind, code = record.get("kind"), record.get("code")
            if kind not in ("trip", "clear") or not isinstance(code, str):
                continue
            source = str(record.get("source") or "-")[:64]
            for stored, condition in dtc_rules:
                if condition.codes is not None and code not in condition.codes:
                    continue
                key = f"{stored.id}/dtc/{source}/{code}"
                if kind == "trip":
                    hit = Hit(_real(record.get("value")), None, messages.dtc_message(pack, record))
                    changes.observe(pack, stored, key, hit=hit, normal=None, code=code)
                else:
                    changes.observe(pack, stored, key, hit=None, code=code,
                                    normal=f"{code} cleared on {source}")  # fmt: skip


def _with(rules: Sequence[StoredRule], kind: type[C]) -> list[tuple[StoredRule, C]]:
    """The rules whose condition is of ``kind``, with it."""
    return [(s, s.rule.condition) for s in rules if isinstance(s.rule.condition, kind)]


def _threshold_scan(
    condition: ThresholdCondition, times_s: np.ndarray, values: np.ndarray, earlier: Earlier
) -> detect.Scan:
    """Scan records x sources; with ``for_s``, runs may begin in stored records before."""
    raising = detect.beyond(values, condition.operator, condition.threshold)
    if condition.for_s > 0 and raising.any():
        if raising[0].any():
            before_s, before = earlier(times_s[0] - condition.for_s, times_s[0])
            before_raising = detect.beyond(before, condition.operator, condition.threshold)
            held = detect.held_for(
                np.concatenate([before_raising, raising]), np.concatenate([before_s, times_s]),
                condition.for_s,
            )  # fmt: skip
            raising = held[len(before_s) :]
        else:
            raising = detect.held_for(raising, times_s, condition.for_s)
    clearing = detect.back_within(values, condition.operator, condition.clear_level)
    return detect.scan(values, raising, clearing)


def _decide(
    changes: Changes, pack: PackInfo, stored: StoredRule, result: detect.Scan, prefix: str,
    per_cell: bool, threshold: float, describe: Callable[[float, int | None], str],
    show: Callable[[float], str],
) -> None:  # fmt: skip
    """Hand the sources that raised, or that are open and back to normal, to ``changes``."""
    raised, normal = result.raised(), result.normal_at_end()
    if per_cell:
        sources = set(np.flatnonzero(raised).tolist())
        for key in changes.open_keys(pack.id, f"{prefix}/"):
            index = int(key.rsplit("/", 1)[1]) - 1
            if index < len(normal) and normal[index]:
                sources.add(index)
    elif raised[0] or (normal[0] and changes.is_open(pack.id, prefix)):
        sources = {0}
    else:
        return
    for index in sorted(sources):
        cell = index + 1 if per_cell else None
        value = round(float(result.raise_value[index]), 9)  # 4262 * 0.001 is 4.2620000000000005
        changes.observe(
            pack, stored, prefix if cell is None else f"{prefix}/{cell}", cell=cell,
            hit=Hit(value, threshold, describe(value, cell)) if raised[index] else None,
            normal=f"back to normal: {show(float(result.clear_value[index]))}"
            if normal[index] else None,
        )  # fmt: skip


def _real(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)
