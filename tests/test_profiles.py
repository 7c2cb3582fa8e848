"""Sector duty profiles: determinism, coverage, ratings, plausible energy, clear config errors."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.model.errors import ConfigError
from cellwarden.plant.duty import DutyMode, DutyProfile
from cellwarden.plant.profiles import PROFILES, PackRating, build_profile, resolve_parameters

DAY_S = 86400.0

# a typical pack for each sector
RATINGS = {
    "escooter_urban": PackRating(36.0, 10.0, 20.0, 5.0),
    "ebike": PackRating(36.0, 14.0, 20.0, 5.0),
    "golf_cart": PackRating(48.0, 105.0, 300.0, 50.0),
    "forklift_shift": PackRating(80.0, 600.0, 600.0, 300.0),
    "cargo_ev_route": PackRating(400.0, 100.0, 200.0, 100.0),
    "ess_peak_shaving": PackRating(768.0, 280.0, 140.0, 140.0),
    "telecom_backup": PackRating(48.0, 100.0, 50.0, 20.0),
    "marine_cruise": PackRating(48.0, 400.0, 200.0, 100.0),
}

# discharged ampere-hours over the first day, as a share of the capacity
PLAUSIBLE_DAILY_DISCHARGE = {
    "escooter_urban": (0.2, 1.0),
    "ebike": (0.2, 1.0),
    "golf_cart": (0.15, 1.0),
    "forklift_shift": (0.3, 1.0),
    "cargo_ev_route": (0.3, 1.0),
    "ess_peak_shaving": (0.2, 1.0),
    "telecom_backup": (0.3, 1.0),
    "marine_cruise": (0.3, 1.0),
}

KINDS = sorted(kind for kind in PROFILES if kind != "steps")  # the sector profiles


def make(kind: str, seed: int = 1, duration_s: float = DAY_S, rating=None, **parameters):
    rating = rating or RATINGS[kind]
    return build_profile(kind, parameters, np.random.default_rng(seed), rating, duration_s)


def window(profile: DutyProfile, start_s: float, end_s: float):
    """Per segment overlapping [start_s, end_s): seconds inside the window, mode, value."""
    ends = np.append(profile.start_s[1:], np.inf)
    seconds = np.clip(np.minimum(ends, end_s) - np.maximum(profile.start_s, start_s), 0, None)
    return seconds, profile.mode, profile.value


def discharge_current_a(profile: DutyProfile, rating: PackRating) -> np.ndarray:
    """Each segment's load as a current at the nominal voltage (regeneration negative)."""
    mode, value = profile.mode, profile.value
    power_a = value / rating.nominal_voltage_v
    return np.where(mode == DutyMode.POWER, power_a, np.where(mode == DutyMode.CURRENT, value, 0.0))


def discharged_ah(profile: DutyProfile, rating: PackRating, start_s: float, end_s: float) -> float:
    seconds, _, _ = window(profile, start_s, end_s)
    current_a = discharge_current_a(profile, rating)
    return float(np.sum(np.clip(current_a, 0, None) * seconds) / 3600)


def offered_charge_ah(profile: DutyProfile, start_s: float, end_s: float) -> float:
    seconds, mode, value = window(profile, start_s, end_s)
    return float(np.sum(np.where(mode == DutyMode.CHARGE, value, 0.0) * seconds) / 3600)


def test_every_profile_has_a_rating_and_a_plausibility_range() -> None:
    assert set(RATINGS) == set(KINDS) == set(PLAUSIBLE_DAILY_DISCHARGE)


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_same_profile(kind: str) -> None:
    first, second = make(kind, seed=7), make(kind, seed=7)
    np.testing.assert_array_equal(first.start_s, second.start_s)
    np.testing.assert_array_equal(first.mode, second.mode)
    np.testing.assert_array_equal(first.value, second.value)


@pytest.mark.parametrize("kind", KINDS)
def test_different_seed_different_profile(kind: str) -> None:
    first, second = make(kind, seed=1), make(kind, seed=2)
    same = (
        first.start_s.size == second.start_s.size
        and np.array_equal(first.start_s, second.start_s)
        and np.array_equal(first.value, second.value)
    )
    assert not same


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("duration_s", [600.0, 3600.0, DAY_S, 3.5 * DAY_S])
def test_profile_covers_the_duration(kind: str, duration_s: float) -> None:
    profile = make(kind, duration_s=duration_s)
    assert profile.duration_s >= duration_s


@pytest.mark.parametrize("kind", KINDS)
def test_segments_last_at_least_a_second(kind: str) -> None:
    profile = make(kind, duration_s=2 * DAY_S)
    assert np.all(np.diff(profile.start_s) >= 1.0)


@pytest.mark.parametrize("kind", KINDS)
def test_requests_stay_within_the_rating(kind: str) -> None:
    rating = RATINGS[kind]
    profile = make(kind, duration_s=2 * DAY_S)
    current_a = discharge_current_a(profile, rating)
    assert current_a.max() <= rating.max_discharge_current_a + 1e-9
    assert current_a.min() >= -rating.max_charge_current_a - 1e-9
    charge_a = profile.value[profile.mode == DutyMode.CHARGE]
    assert np.all((charge_a > 0) & (charge_a <= rating.max_charge_current_a + 1e-9))
    assert np.all(profile.value[profile.mode == DutyMode.REST] == 0)
    assert set(np.unique(profile.mode)) <= {int(mode) for mode in DutyMode}


@pytest.mark.parametrize("kind", KINDS)
def test_daily_discharge_is_plausible(kind: str) -> None:
    rating = RATINGS[kind]
    low, high = PLAUSIBLE_DAILY_DISCHARGE[kind]
    for seed in (1, 2, 3):
        profile = make(kind, seed=seed)
        share = discharged_ah(profile, rating, 0.0, DAY_S) / rating.capacity_ah
        assert low <= share <= high, f"{kind} seed {seed}: {share:.2f} of capacity per day"


@pytest.mark.parametrize("kind", KINDS)
def test_the_charger_offers_at_least_what_the_day_took(kind: str) -> None:
    rating = RATINGS[kind]
    profile = make(kind)
    assert offered_charge_ah(profile, 0.0, DAY_S) >= discharged_ah(profile, rating, 0.0, DAY_S)


# --- sector specifics ----------------------------------------------------------------------------


def test_forklift_lifts_peak_past_500_a_on_an_80_v_pack() -> None:
    rating = RATINGS["forklift_shift"]
    profile = make("forklift_shift", rating=rating)
    lifts_a = profile.value[profile.mode == DutyMode.CURRENT]
    assert lifts_a.max() > 500.0
    assert lifts_a.max() <= 550.0


def test_forklift_lifts_scale_down_to_a_weaker_pack() -> None:
    rating = PackRating(80.0, 600.0, 300.0, 300.0)
    strong = make("forklift_shift", seed=3)
    weak = make("forklift_shift", seed=3, rating=rating)
    strong_a = strong.value[strong.mode == DutyMode.CURRENT]
    weak_a = weak.value[weak.mode == DutyMode.CURRENT]
    assert 0.9 * 300.0 <= weak_a.max() <= 300.0
    # proportionally: every lift current scaled by the same factor, not just clipped
    np.testing.assert_allclose(weak_a, strong_a * 300.0 / 550.0)


def test_forklift_charges_in_its_three_breaks() -> None:
    rating = RATINGS["forklift_shift"]
    profile = make("forklift_shift", charge_at_end=0)
    durations = np.diff(profile.start_s)
    charging = profile.mode[:-1] == DutyMode.CHARGE
    assert sorted(durations[charging]) == [900.0, 900.0, 1800.0]
    np.testing.assert_allclose(profile.value[:-1][charging], 0.3 * rating.capacity_ah)
    assert np.all(profile.start_s[:-1][charging] < 28800.0)


@pytest.mark.parametrize("max_discharge_current_a", [15.0, 20.0, 40.0])
def test_escooter_never_asks_more_than_the_max_discharge_current(
    max_discharge_current_a: float,
) -> None:
    rating = PackRating(36.0, 10.0, max_discharge_current_a, 5.0)
    for seed in range(5):
        profile = make("escooter_urban", seed=seed, duration_s=3 * DAY_S, rating=rating)
        power_w = profile.value[profile.mode == DutyMode.POWER]
        assert power_w.max() / rating.nominal_voltage_v <= max_discharge_current_a + 1e-9


def test_escooter_rides_are_stop_and_go_with_small_regeneration() -> None:
    rating = PackRating(36.0, 10.0, 60.0, 10.0)  # generous: nothing is clipped
    profile = make("escooter_urban", rating=rating)
    power_w = profile.value[profile.mode == DutyMode.POWER]
    cruise_w = np.median(power_w[power_w > 0])
    assert 250.0 <= cruise_w <= 400.0
    assert 2.0 * cruise_w <= power_w.max() <= 3.5 * cruise_w
    assert -0.3 * cruise_w <= power_w.min() < 0.0
    assert np.count_nonzero(profile.mode == DutyMode.REST) > 20  # traffic lights and parking


def test_escooter_power_scales_with_pack_energy() -> None:
    small = PackRating(36.0, 10.0, 100.0, 10.0)
    large = PackRating(48.0, 15.0, 100.0, 10.0)
    ratio = large.energy_wh / small.energy_wh
    small_ah = discharged_ah(make("escooter_urban", rating=small), small, 0.0, DAY_S)
    large_ah = discharged_ah(make("escooter_urban", rating=large), large, 0.0, DAY_S)
    energy_ratio = (large_ah * large.nominal_voltage_v) / (small_ah * small.nominal_voltage_v)
    assert energy_ratio == pytest.approx(ratio, rel=1e-9)


def test_escooter_charges_at_the_end_only_when_asked() -> None:
    plugged = make("escooter_urban")
    parked = make("escooter_urban", charge_at_end=0)
    assert plugged.mode[-1] == DutyMode.CHARGE
    assert not np.any(parked.mode == DutyMode.CHARGE)


def test_ess_discharges_a_plausible_share_every_day() -> None:
    rating = RATINGS["ess_peak_shaving"]
    profile = make("ess_peak_shaving", duration_s=5 * DAY_S)
    for day in range(5):
        charge_ah = discharged_ah(profile, rating, day * DAY_S, (day + 1) * DAY_S)
        share = charge_ah * rating.nominal_voltage_v / rating.energy_wh
        assert 0.2 <= share <= 1.0
    power_w = profile.value[profile.mode == DutyMode.POWER]
    assert power_w.max() <= 0.5 * rating.energy_wh + 1e-6
    assert power_w.max() >= 0.4 * rating.energy_wh


def test_ess_honours_an_explicit_peak_power_and_its_schedule() -> None:
    profile = make("ess_peak_shaving", peak_power_w=50_000.0)
    power_w = profile.value[profile.mode == DutyMode.POWER]
    assert power_w.max() <= 50_000.0
    charge_starts = profile.start_s[profile.mode == DutyMode.CHARGE]
    assert list(charge_starts) == [3600.0]
    discharge_starts = profile.start_s[profile.mode == DutyMode.POWER]
    morning = (discharge_starts >= 25200) & (discharge_starts < 25200 + 5400)
    evening = (discharge_starts >= 63000) & (discharge_starts < 63000 + 5400)
    assert np.all(morning | evening)


def test_telecom_floats_then_carries_the_outage_then_recharges() -> None:
    rating = RATINGS["telecom_backup"]
    profile = make("telecom_backup")
    index = profile.segment_at
    assert profile.mode[index(3600.0)] == DutyMode.CHARGE
    assert profile.value[index(3600.0)] == pytest.approx(0.02 * rating.capacity_ah)
    outage = (profile.start_s >= 7200.0) & (profile.start_s < 7200.0 + 14400.0)
    assert np.all(profile.mode[outage] == DutyMode.POWER)
    load_w = profile.value[outage]
    assert np.all((load_w > 0.1 * rating.energy_wh) & (load_w < 0.2 * rating.energy_wh))
    after = index(7200.0 + 14400.0)
    assert profile.mode[after] == DutyMode.CHARGE
    assert profile.value[after] == pytest.approx(0.2 * rating.capacity_ah)
    assert profile.mode[-1] == DutyMode.CHARGE


def test_golf_round_takes_about_four_hours_of_short_drives() -> None:
    profile = make("golf_cart")
    active = profile.mode == DutyMode.POWER
    assert profile.start_s[active].max() < 14400.0
    assert profile.start_s[active].max() > 13000.0
    assert np.all(np.diff(profile.start_s)[active[:-1]] <= 60.0)


def test_marine_day_ends_on_shore_power() -> None:
    profile = make("marine_cruise")
    assert profile.mode[0] == DutyMode.POWER
    assert profile.mode[-1] == DutyMode.CHARGE


def test_cargo_route_stops_for_deliveries_and_charges_overnight() -> None:
    profile = make("cargo_ev_route")
    durations = np.diff(profile.start_s)
    rests = durations[profile.mode[:-1] == DutyMode.REST]
    assert np.count_nonzero(rests >= 120.0) >= 20  # delivery stops of 2–5 min
    assert profile.mode[-1] == DutyMode.CHARGE


# --- configuration errors ------------------------------------------------------------------------


def test_unknown_kind_is_named_with_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="hoverboard") as error:
        build_profile("hoverboard", {}, np.random.default_rng(1), RATINGS["ebike"], DAY_S)
    for kind in KINDS:
        assert kind in str(error.value)


def test_unknown_parameter_is_named_with_the_allowed_ones() -> None:
    with pytest.raises(ConfigError, match="top_speed_kmh") as error:
        make("ebike", top_speed_kmh=25.0)
    assert "assist_power_w" in str(error.value)
    assert "ebike" in str(error.value)


@pytest.mark.parametrize(
    ("kind", "parameters", "names"),
    [
        ("ebike", {"ride_min_s": 0.0}, ["ride_min_s", "positive"]),
        ("forklift_shift", {"lift_peak_current_a": -550.0}, ["lift_peak_current_a", "positive"]),
        ("escooter_urban", {"charge_at_end": 0.5}, ["charge_at_end", "0 or 1"]),
        ("escooter_urban", {"rides_per_day": 2.5}, ["rides_per_day", "whole number"]),
        ("ebike", {"hill_share": 1.5}, ["hill_share", "between 0 and 1"]),
        ("ess_peak_shaving", {"peak_power_w": -1.0}, ["peak_power_w", "zero or positive"]),
        ("golf_cart", {"drive_min_s": 90.0}, ["drive_min_s", "drive_max_s"]),
        ("marine_cruise", {"cruise_s": float("nan")}, ["cruise_s"]),
        ("cargo_ev_route", {"route_s": "long"}, ["route_s", "number"]),
    ],
)
def test_invalid_parameter_values_are_named(
    kind: str, parameters: dict[str, float], names: list[str]
) -> None:
    with pytest.raises(ConfigError) as error:
        make(kind, **parameters)
    for name in names:
        assert name in str(error.value)


@pytest.mark.parametrize(
    ("kind", "parameters", "name"),
    [
        ("escooter_urban", {"rides_per_day": 40}, "rides_per_day"),
        ("golf_cart", {"round_s": 3600.0}, "round_s"),
        ("forklift_shift", {"shift_s": 3000.0}, "shift_s"),
        ("ess_peak_shaving", {"charge_s": 30000.0}, "morning peak"),
        ("marine_cruise", {"anchor_s": 80000.0}, "day"),
    ],
)
def test_parameters_that_do_not_fit_a_day_are_refused(
    kind: str, parameters: dict[str, float], name: str
) -> None:
    with pytest.raises(ConfigError, match=name) as error:
        make(kind, **parameters)
    assert kind in str(error.value)


def test_non_positive_duration_and_rating_are_refused() -> None:
    with pytest.raises(ConfigError, match="duration_s"):
        make("ebike", duration_s=0.0)
    with pytest.raises(ConfigError, match="capacity_ah"):
        PackRating(36.0, 0.0, 20.0, 5.0)


def test_defaults_merge_with_given_parameters() -> None:
    params = resolve_parameters("telecom_backup", {"outage_duration_s": 3600})
    assert params["outage_duration_s"] == 3600.0
    assert params["outage_start_s"] == PROFILES["telecom_backup"].defaults["outage_start_s"]
    assert set(params) == set(PROFILES["telecom_backup"].defaults)


@pytest.mark.parametrize("kind", KINDS)
def test_registry_entries_are_complete(kind: str) -> None:
    definition = PROFILES[kind]
    assert definition.description
    assert definition.defaults
    assert set(definition.rules) <= set(definition.defaults)
    resolve_parameters(kind, {})  # every default passes its own rule


def test_steps_lays_out_a_lab_sequence_without_clipping() -> None:
    """The lab sequence is exactly the steps given, the last holding; an overload stays."""
    rating = PackRating(48.0, 20.0, max_discharge_current_a=40.0, max_charge_current_a=10.0)
    profile = build_profile(
        "steps",
        {"mode_1": 0, "duration_1_s": 30, "mode_2": 1, "value_2": 90.0, "duration_2_s": 60},
        np.random.default_rng(0),
        rating,
        100.0,
    )
    assert profile.start_s.tolist() == [0.0, 30.0]
    assert profile.mode.tolist() == [0, 1]
    assert profile.value.tolist() == [0.0, 90.0]


def test_steps_needs_a_step_and_valid_modes() -> None:
    rating = PackRating(48.0, 20.0, 40.0, 10.0)
    with pytest.raises(ConfigError, match="at least one step"):
        build_profile("steps", {}, np.random.default_rng(0), rating, 10.0)
    with pytest.raises(ConfigError, match="mode_1"):
        build_profile(
            "steps", {"mode_1": 7, "duration_1_s": 5}, np.random.default_rng(0), rating, 10.0
        )
