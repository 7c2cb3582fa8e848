"""The protection engine: debounce, hysteresis, latching, locking, release and actions."""

from __future__ import annotations

import pytest

from cellwarden.bms.event_log import BmsEventLog
from cellwarden.bms.protection import Action, ProtectionEngine, Recovery, Rule, Task


def _engine(*rules: Rule) -> ProtectionEngine:
    return ProtectionEngine(list(rules), BmsEventLog())


def _run(engine: ProtectionEngine, values: list[float], dt_s: float = 0.1, **extra: float):
    """Feed one value per tick; returns the tick times at which the rule was active."""
    active = []
    for tick, value in enumerate(values):
        now_s = round(tick * dt_s, 9)
        engine.evaluate(now_s, Task.MAIN, {"x": value, **extra}, lambda v=value: {"x": v})
        if engine.status().active_codes:
            active.append(now_s)
    return active


def test_trips_only_after_the_debounce_time():
    """Beyond the threshold for less than the debounce: nothing; for the debounce: a trip."""
    rule = Rule("T1", "test", "x", 1.0, debounce_s=0.3, action=Action.STOP_CHARGE)
    engine = _engine(rule)
    assert _run(engine, [2.0, 2.0, 0.0, 2.0, 2.0, 0.0]) == []
    engine = _engine(rule)
    assert _run(engine, [2.0, 2.0, 2.0, 2.0])[0] == pytest.approx(0.3)
    trips = engine.log.tripped("T1")
    assert len(trips) == 1 and trips[0].freeze_frame == {"x": 2.0}


def test_recovers_only_below_threshold_minus_hysteresis_for_the_recovery_time():
    rule = Rule("T2", "test", "x", 1.0, hysteresis=0.2, debounce_s=0.0, recovery_s=0.2)
    engine = _engine(rule)
    # trips at 0.0; 0.9 is inside the hysteresis band, so it stays active; 0.7 for 0.2 s clears
    active = _run(engine, [1.5, 0.9, 0.9, 0.7, 0.7, 0.7, 0.7])
    assert active == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
    assert [e.kind for e in engine.log.events] == ["trip", "clear"]


def test_below_rules_trip_on_low_values():
    rule = Rule("T3", "test", "x", 2.5, above=False, debounce_s=0.0)
    assert _run(_engine(rule), [3.0, 2.4])[0] == pytest.approx(0.1)


def test_latched_rules_hold_until_reset_and_locked_rules_forever():
    latch = Rule(
        "L", "latch", "x", 1.0, debounce_s=0.0, recovery=Recovery.LATCH, action=Action.OPEN
    )
    lock = Rule("K", "lock", "x", 5.0, debounce_s=0.0, recovery=Recovery.LOCK, action=Action.OPEN)
    engine = _engine(latch, lock)
    _run(engine, [6.0, 0.0, 0.0, 0.0])
    assert set(engine.status().active_codes) == {"L", "K"}
    assert engine.reset_latches(1.0) == ["L"]
    assert engine.status().active_codes == ("K",)
    assert engine.status().open_all


def test_released_by_needs_its_quantity():
    """An undervoltage stop clears only while charging, not when the cell merely relaxes."""
    rule = Rule("U", "uv", "x", 2.8, above=False, hysteresis=0.1, debounce_s=0.0, recovery_s=0.0,
                action=Action.STOP_DISCHARGE, released_by="charging")  # fmt: skip
    engine = _engine(rule)
    assert _run(engine, [2.7, 3.2, 3.2], charging=0.0) == pytest.approx([0.0, 0.1, 0.2])
    engine = _engine(rule)
    assert _run(engine, [2.7, 3.2], charging=1.0) == pytest.approx([0.0])


def test_armed_rules_watch_only_while_armed():
    rule = Rule("C", "charge temp", "x", 45.0, debounce_s=0.0, armed_by="charging")
    assert _run(_engine(rule), [50.0, 50.0], charging=0.0) == []
    assert _run(_engine(rule), [50.0], charging=1.0) == [0.0]


def test_actions_combine_into_the_status():
    rules = [
        Rule("A", "derate", "x", 1.0, debounce_s=0.0, action=Action.DERATE),
        Rule("B", "stop charge", "x", 2.0, debounce_s=0.0, action=Action.STOP_CHARGE),
        Rule("C", "stop discharge", "x", 3.0, debounce_s=0.0, action=Action.STOP_DISCHARGE),
    ]
    engine = _engine(*rules)
    _run(engine, [2.5])
    status = engine.status()
    assert status.derate and not status.charge_allowed and status.discharge_allowed
    assert not status.open_all
    _run(engine, [3.5])
    assert not engine.status().discharge_allowed


def test_rules_of_the_other_task_are_not_evaluated():
    fast = Rule("F", "fast", "x", 1.0, debounce_s=0.0, task=Task.FAST)
    assert _run(_engine(fast), [5.0]) == []


def test_codes_must_be_unique():
    rule = Rule("D", "dup", "x", 1.0)
    with pytest.raises(ValueError, match="unique"):
        _engine(rule, rule)
