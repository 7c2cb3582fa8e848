"""The staged-rollout rules as pure functions: wave sizes for any fleet and percentages, and
the verdicts (hold, release, pause with its reason, complete) over wave counts."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from cellwarden.cloud.ota.rollout import (
    COMPLETED,
    MIN_FINISHED,
    PAUSED,
    RUNNING,
    WaveCounts,
    judge,
    wave_sizes,
)

PERCENT = st.floats(min_value=0.01, max_value=100.0, allow_nan=False)


@given(st.integers(min_value=1, max_value=5000), PERCENT, st.lists(PERCENT, max_size=20))
def test_waves_cover_the_fleet_once_with_the_canary_first(devices, canary_pct, wave_pcts):
    sizes = wave_sizes(devices, canary_pct, wave_pcts)
    assert sum(sizes) == devices and all(size >= 1 for size in sizes)
    assert sizes[0] == min(devices, max(1, math.ceil(devices * canary_pct / 100)))
    assert len(sizes) <= len(wave_pcts) + 2


def test_no_devices_no_waves():
    assert wave_sizes(0, 10, [30, 60]) == []


def test_the_canary_is_judged_once_enough_have_finished():
    assert judge(1, [WaveCounts(5, 0, MIN_FINISHED - 1), WaveCounts(5, 0, 0)], 20).state == RUNNING
    paused = judge(1, [WaveCounts(5, 0, MIN_FINISHED), WaveCounts(5, 0, 0)], 20)
    assert (paused.state, paused.released_waves) == (PAUSED, 1)
    assert paused.reason == "canary wave: 3 of 3 finished devices failed (100 % > 20 %)"
    # a canary smaller than MIN_FINISHED is judged when all of it has finished
    assert judge(1, [WaveCounts(1, 0, 1), WaveCounts(9, 0, 0)], 20).state == PAUSED
    assert judge(1, [WaveCounts(2, 1, 0), WaveCounts(8, 0, 0)], 20).state == RUNNING


def test_the_threshold_is_exclusive_and_zero_pauses_on_any_failure():
    assert judge(1, [WaveCounts(5, 4, 1), WaveCounts(5, 0, 0)], 20).released_waves == 2
    assert judge(1, [WaveCounts(5, 4, 1), WaveCounts(5, 0, 0)], 0).state == PAUSED
    assert judge(1, [WaveCounts(5, 5, 0), WaveCounts(5, 0, 0)], 0).released_waves == 2


def test_later_waves_count_every_released_device_and_name_the_waves():
    waves = [WaveCounts(5, 5, 0), WaveCounts(15, 10, 5), WaveCounts(30, 0, 0)]
    verdict = judge(2, waves, 20)
    assert verdict.state == PAUSED
    assert verdict.reason == "waves 0-1: 5 of 20 finished devices failed (25 % > 20 %)"
    assert judge(3, [WaveCounts(5, 5, 0), WaveCounts(15, 14, 1), WaveCounts(30, 30, 0)],
                 20).state == COMPLETED  # fmt: skip


def test_accepted_failures_no_longer_count_after_a_resume():
    waves = [WaveCounts(5, 2, 3), WaveCounts(15, 0, 0)]
    assert judge(1, waves, 20).state == PAUSED
    assert judge(1, waves, 20, accepted=(3, 5)) == judge(1, [WaveCounts(5, 5, 0), waves[1]], 20)
    later = [WaveCounts(5, 2, 3), WaveCounts(15, 2, 2)]
    verdict = judge(2, later, 20, accepted=(3, 5))
    assert verdict.reason == "waves 0-1: 2 of 4 finished devices failed (50 % > 20 %)"
