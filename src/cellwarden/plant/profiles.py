"""Sector duty profiles: seeded generators of a day (shift, route, outage) of demand; a registry.

Every generator has the signature ``(rng, rating, duration_s, params) -> DutyProfile``: it draws
all its randomness from ``rng`` (the same seed gives the same profile), scales itself to the pack
described by ``rating``, repeats its day pattern until it covers ``duration_s`` and never asks
more than the rating allows. ``params`` is the full parameter set; :func:`build_profile` merges
the defaults with a scenario's parameters, checks them and calls the generator.

Sign convention (see ``duty.py``): load values are positive when they discharge the battery;
negative POWER is regenerative braking; CHARGE segments mean a charger is plugged in offering up
to ``value`` amps (the charger itself does CC-CV). All segment durations are whole seconds, at
least 1 s. A day is 24 h; ``t = 0`` is the start of the day's activity (the first ride, the
shift, the route, the departure) except for the ESS, whose ``t = 0`` is midnight.

Parameters named ``*_c`` are C-rates relative to the pack: a power of ``c`` is
``c × nominal_voltage_v × capacity_ah`` watts, a current of ``c`` is ``c × capacity_ah`` amps.
A current or power parameter whose default is 0 means "scale to the pack" (documented per
profile in ``docs/profiles.md``).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from cellwarden.model.errors import ConfigError
from cellwarden.plant.duty import DutyMode, DutyProfile

DAY_S = 86400.0

Segment = tuple[float, DutyMode, float]  # (duration_s, mode, value)
ProfileGenerator = Callable[
    [np.random.Generator, "PackRating", float, dict[str, float]], DutyProfile
]


@dataclass(frozen=True)
class PackRating:
    """What a generator needs to know about the pack to scale itself."""

    nominal_voltage_v: float
    capacity_ah: float
    max_discharge_current_a: float
    max_charge_current_a: float

    def __post_init__(self) -> None:
        for name in (
            "nominal_voltage_v",
            "capacity_ah",
            "max_discharge_current_a",
            "max_charge_current_a",
        ):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"pack rating {name} = {value!r} must be a positive number")

    @property
    def energy_wh(self) -> float:
        """Nominal energy: nominal voltage × capacity."""
        return self.nominal_voltage_v * self.capacity_ah

    @property
    def max_discharge_power_w(self) -> float:
        return self.max_discharge_current_a * self.nominal_voltage_v

    @property
    def max_charge_power_w(self) -> float:
        return self.max_charge_current_a * self.nominal_voltage_v

    def power_w(self, c_rate: float) -> float:
        """The power of ``c_rate`` C: ``c_rate × nominal energy / 1 h``."""
        return c_rate * self.energy_wh

    def current_a(self, c_rate: float) -> float:
        """The current of ``c_rate`` C."""
        return c_rate * self.capacity_ah


class ParamRule(StrEnum):
    """What values a profile parameter accepts."""

    POSITIVE = "must be positive"
    NON_NEGATIVE = "must be zero or positive"
    FRACTION = "must lie between 0 and 1"
    FLAG = "must be 0 or 1"
    COUNT = "must be a whole number of at least 1"
    FINITE = "must be a finite number"
    MODE = "must be a duty mode code 0..4 (rest, current, power, resistance, charge)"


@dataclass(frozen=True)
class ProfileDefinition:
    """A registered profile: its generator, default parameters and a one-line description.

    ``rules`` names the parameters that accept more than positive values (or only whole numbers);
    every other parameter must be positive.
    """

    generator: ProfileGenerator
    defaults: dict[str, float]
    description: str
    rules: Mapping[str, ParamRule] = field(default_factory=dict)

    def rule(self, name: str) -> ParamRule:
        return self.rules.get(name, ParamRule.POSITIVE)


# --- building blocks ---------------------------------------------------------------------------


def _seg(duration_s: float, mode: DutyMode, value: float = 0.0) -> Segment:
    """One segment, its duration rounded to whole seconds and at least 1 s."""
    return (max(1.0, float(round(duration_s))), mode, float(value))


def _length(segments: list[Segment]) -> float:
    return sum(segment[0] for segment in segments)


def _auto(value: float, fallback: float) -> float:
    """A parameter whose 0 means "scale to the pack"."""
    return value if value > 0 else fallback


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


def _wavy(
    rng: np.random.Generator,
    duration_s: float,
    level: float,
    noise: float,
    chunk_s: tuple[float, float],
    shape: Callable[[float], float] | None = None,
    mode: DutyMode = DutyMode.POWER,
) -> list[Segment]:
    """``level`` for ``duration_s`` in chunks of random length, each off by a Gaussian factor.

    The factor is ``1 + noise × N(0, 1)`` kept within ``1 ± 2 noise`` (and never below 0); an
    optional ``shape`` multiplies it by a function of the time fraction at the chunk's middle.
    """
    total = round(duration_s)
    low, high = max(0.0, 1.0 - 2.0 * noise), 1.0 + 2.0 * noise
    segments: list[Segment] = []
    done = 0
    while done < total:
        chunk = min(max(1, round(rng.uniform(*chunk_s))), total - done)
        if total - done - chunk < chunk_s[0]:
            chunk = total - done  # no sliver at the end
        factor = float(np.clip(1.0 + noise * rng.standard_normal(), low, high))
        if shape is not None:
            factor *= shape((done + chunk / 2) / total)
        segments.append(_seg(chunk, mode, level * factor))
        done += chunk
    return segments


def _span(total_s: float, piece: Callable[[], list[Segment]]) -> list[Segment]:
    """Pieces laid end to end for exactly ``total_s`` (whole seconds); the last one is cut."""
    target = max(1.0, float(round(total_s)))
    segments: list[Segment] = []
    length = 0.0
    while length < target:
        for duration_s, mode, value in piece():
            if length >= target:
                break
            duration_s = min(duration_s, target - length)
            segments.append((duration_s, mode, value))
            length += duration_s
    return segments


def _pad_to(segments: list[Segment], total_s: float, mode: DutyMode, value: float) -> list[Segment]:
    """``segments`` followed by ``mode``/``value`` up to ``total_s`` (a day, usually)."""
    length = _length(segments)
    if length > total_s:
        raise ConfigError(
            f"one day's activity lasts {length:.0f} s, longer than a day of {total_s:.0f} s; "
            "shorten its durations"
        )
    return [*segments, _seg(total_s - length, mode, value)] if total_s - length >= 1 else segments


def _timeline(events: list[tuple[str, float, list[Segment]]], total_s: float) -> list[Segment]:
    """Named events placed at their start times with REST between them and up to ``total_s``."""
    segments: list[Segment] = []
    length = 0.0
    for name, start_s, event in sorted(events, key=lambda item: item[1]):
        start_s = float(round(start_s))
        _require(
            start_s >= length,
            f"{name} starts at {start_s:.0f} s, before the previous event ends at {length:.0f} s",
        )
        if start_s - length >= 1:
            segments.append(_seg(start_s - length, DutyMode.REST))
        segments += event
        length = _length(segments)
        _require(length <= total_s, f"{name} ends at {length:.0f} s, after the end of the day")
    return _pad_to(segments, total_s, DutyMode.REST, 0.0)


def _repeat(duration_s: float, period: Callable[[], list[Segment]]) -> list[Segment]:
    """Periods (days) laid end to end until they cover ``duration_s``."""
    segments: list[Segment] = []
    length = 0.0
    while length < duration_s:
        part = period()
        segments += part
        length += _length(part)
    return segments


def _within_rating(mode: DutyMode, value: float, rating: PackRating) -> float:
    """Clip a request to what the pack is rated for (discharge and charge/regeneration)."""
    if mode == DutyMode.POWER:
        return min(max(value, -rating.max_charge_power_w), rating.max_discharge_power_w)
    if mode == DutyMode.CURRENT:
        return min(max(value, -rating.max_charge_current_a), rating.max_discharge_current_a)
    if mode == DutyMode.CHARGE:
        return min(max(value, 0.0), rating.max_charge_current_a)
    return value


def _finish(
    segments: list[Segment], rating: PackRating, tail: tuple[DutyMode, float]
) -> DutyProfile:
    """The profile of ``segments`` within the rating; ``tail`` starts after them and holds on."""
    laid = [*segments, (1.0, *tail)]
    return DutyProfile.from_segments(
        [
            (duration_s, mode, _within_rating(mode, value, rating))
            for duration_s, mode, value in laid
        ]
    )


def _end_of_day(
    rating: PackRating, params: dict[str, float], auto_c: float
) -> tuple[DutyMode, float]:
    """Once the day's work is done: on the charger (``charge_at_end``) or parked."""
    if params["charge_at_end"]:
        return DutyMode.CHARGE, _auto(params["charge_current_a"], rating.current_a(auto_c))
    return DutyMode.REST, 0.0


def _uniform(rng: np.random.Generator, params: dict[str, float], name: str) -> float:
    """A draw between the parameters ``<name>_min<unit>`` and ``<name>_max<unit>``."""
    stem, unit = name.rsplit("_", 1)
    return float(rng.uniform(params[f"{stem}_min_{unit}"], params[f"{stem}_max_{unit}"]))


@dataclass(frozen=True)
class _Drive:
    """How a vehicle moves between two halts: accelerate, cruise, brake (powers in W)."""

    cruise_w: float
    peak_w: float  # while accelerating
    regen_w: float  # fed back while braking (0: no regenerative braking)
    noise: float = 0.15  # relative spread of the cruise power, chunk to chunk
    accel_s: tuple[float, float] = (2.0, 5.0)
    brake_s: tuple[float, float] = (2.0, 4.0)
    chunk_s: tuple[float, float] = (10.0, 30.0)


def _leg(
    rng: np.random.Generator, drive: _Drive, moving_s: float, burst_factor: float = 0.0
) -> list[Segment]:
    """One start-to-halt movement of about ``moving_s``: accelerate, cruise, brake.

    With ``burst_factor`` > 0 the cruise holds a 5–15 s burst (an uphill) at that multiple of the
    cruise power.
    """
    accel_s = rng.uniform(*drive.accel_s)
    brake_s = rng.uniform(*drive.brake_s) if drive.regen_w > 0 else 0.0
    cruise_s = max(moving_s - accel_s - brake_s, 1.0)
    segments = [_seg(accel_s, DutyMode.POWER, drive.peak_w * rng.uniform(0.9, 1.1))]

    def cruise(seconds: float) -> list[Segment]:
        return _wavy(rng, seconds, drive.cruise_w, drive.noise, drive.chunk_s)

    if burst_factor > 0:
        burst_s = min(rng.uniform(5.0, 15.0), cruise_s)
        before_s = rng.uniform(0.0, cruise_s - burst_s)
        segments += cruise(before_s)
        segments.append(_seg(burst_s, DutyMode.POWER, drive.cruise_w * burst_factor))
        segments += cruise(cruise_s - before_s - burst_s)
    else:
        segments += cruise(cruise_s)
    if brake_s > 0:
        segments.append(_seg(brake_s, DutyMode.POWER, -drive.regen_w * rng.uniform(0.7, 1.0)))
    return segments


_CITY_LEG_S = (30.0, 150.0)  # driving between two red lights
_CITY_LIGHT_S = (5.0, 45.0)  # waiting at one


def _city_ride(rng: np.random.Generator, drive: _Drive, ride_s: float) -> list[Segment]:
    """Stop-and-go through town for exactly ``ride_s``: legs between traffic lights."""

    def block() -> list[Segment]:
        leg = _leg(rng, drive, rng.uniform(*_CITY_LEG_S))
        return [*leg, _seg(rng.uniform(*_CITY_LIGHT_S), DutyMode.REST)]

    return _span(ride_s, block)


def _rides_with_parking(
    rng: np.random.Generator,
    params: dict[str, float],
    ride: Callable[[float], list[Segment]],
) -> list[Segment]:
    """``rides_per_day`` rides of ``ride_min_s``..``ride_max_s``, parked (REST) in between."""
    rides = int(params["rides_per_day"])
    worst_s = rides * params["ride_max_s"] + (rides - 1) * params["parking_max_s"]
    _require(
        worst_s <= DAY_S,
        f"rides_per_day × ride_max_s + the parking between rides may last {worst_s:.0f} s, "
        f"more than a day ({DAY_S:.0f} s)",
    )
    segments: list[Segment] = []
    for index in range(rides):
        if index:
            segments.append(_seg(_uniform(rng, params, "parking_s"), DutyMode.REST))
        segments += ride(_uniform(rng, params, "ride_s"))
    return segments


# --- e-scooter ---------------------------------------------------------------------------------

ESCOOTER_URBAN_DEFAULTS: dict[str, float] = {
    "cruise_power_c": 0.9,  # ≈ 325 W on a 36 V 10 Ah pack; each ride ±20 %
    "accel_factor": 2.5,  # acceleration peak / cruise power (±10 % per start)
    "regen_fraction": 0.15,  # braking power fed back / cruise power
    "rides_per_day": 3,
    "ride_min_s": 600.0,
    "ride_max_s": 1500.0,
    "parking_min_s": 1200.0,
    "parking_max_s": 5400.0,
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # 0: 0.2 C
}


def escooter_urban(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """Urban stop-and-go rides separated by parking; plugged in at the end of the day."""
    end = _end_of_day(rating, params, auto_c=0.2)

    def ride(ride_s: float) -> list[Segment]:
        cruise_w = rating.power_w(params["cruise_power_c"]) * rng.uniform(0.8, 1.2)
        drive = _Drive(
            cruise_w=cruise_w,
            peak_w=cruise_w * params["accel_factor"],
            regen_w=cruise_w * params["regen_fraction"],
        )
        return _city_ride(rng, drive, ride_s)

    def day() -> list[Segment]:
        return _pad_to(_rides_with_parking(rng, params, ride), DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- e-bike ------------------------------------------------------------------------------------

EBIKE_DEFAULTS: dict[str, float] = {
    "assist_power_w": 150.0,  # pedal assist on the flat (±20 %)
    "hill_power_w": 420.0,  # assist on climbs and when starting off
    "hill_share": 0.25,  # share of stretches followed by a climb (and its descent)
    "rides_per_day": 2,
    "ride_min_s": 1800.0,
    "ride_max_s": 5400.0,
    "parking_min_s": 14400.0,
    "parking_max_s": 32400.0,
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # 0: 0.2 C
}


def ebike(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """Pedal-assisted rides of 30–90 min over rolling terrain; plugged in at the end of the day."""
    end = _end_of_day(rating, params, auto_c=0.2)
    hill_w = params["hill_power_w"]
    flat = _Drive(cruise_w=params["assist_power_w"], peak_w=hill_w, regen_w=0.0, noise=0.2)

    def stretch() -> list[Segment]:
        """From a junction to the next one, sometimes over a hill (no assist downhill)."""
        segments = _leg(rng, flat, rng.uniform(60.0, 300.0))
        if rng.random() < params["hill_share"]:
            climb_s = rng.uniform(60.0, 300.0)
            segments += _wavy(rng, climb_s, hill_w, 0.08, (10.0, 30.0))
            segments.append(_seg(climb_s * rng.uniform(0.3, 0.6), DutyMode.REST))
        segments.append(_seg(rng.uniform(5.0, 40.0), DutyMode.REST))
        return segments

    def day() -> list[Segment]:
        rides = _rides_with_parking(rng, params, lambda ride_s: _span(ride_s, stretch))
        return _pad_to(rides, DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- golf cart ---------------------------------------------------------------------------------

GOLF_CART_DEFAULTS: dict[str, float] = {
    "holes": 18,
    "round_s": 14400.0,
    "rounds_per_day": 1,
    "drive_min_s": 20.0,
    "drive_max_s": 60.0,
    "drive_min_w": 2000.0,  # for a 48 V pack; scaled by nominal_voltage_v / 48 V
    "drive_max_w": 4000.0,
    "uphill_share": 0.3,  # share of drives with an uphill burst
    "uphill_factor": 1.6,  # burst power / drive power
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # 0: 0.15 C
}

_GOLF_MAX_DRIVES_PER_HOLE = 4
_GOLF_MIN_IDLE_S = 30.0  # at least this long parked before each drive
_GOLF_TURNAROUND_S = 1800.0  # parked between two rounds


def golf_cart(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """Rounds of golf: 2–4 short drives per hole with long idle between, some uphill."""
    end = _end_of_day(rating, params, auto_c=0.15)
    holes, rounds = int(params["holes"]), int(params["rounds_per_day"])
    hole_s = float(round(params["round_s"] / holes))
    # a drive lasts drive_s give or take rounding, and at least its acceleration and braking
    longest_drive_s = max(params["drive_max_s"], 10.0) + 5.0
    need_s = _GOLF_MAX_DRIVES_PER_HOLE * (longest_drive_s + _GOLF_MIN_IDLE_S)
    _require(
        hole_s >= need_s,
        f"round_s / holes = {hole_s:.0f} s is too short for {_GOLF_MAX_DRIVES_PER_HOLE} drives "
        f"of up to drive_max_s and {_GOLF_MIN_IDLE_S:.0f} s idle each (needs {need_s:.0f} s)",
    )
    day_s = rounds * holes * hole_s + (rounds - 1) * _GOLF_TURNAROUND_S
    _require(day_s <= DAY_S, f"rounds_per_day × round_s = {day_s:.0f} s does not fit in a day")
    scale = rating.nominal_voltage_v / 48.0

    def drive() -> list[Segment]:
        cruise_w = _uniform(rng, params, "drive_w") * scale
        cart = _Drive(cruise_w=cruise_w, peak_w=1.3 * cruise_w, regen_w=0.1 * cruise_w, noise=0.1)
        uphill = params["uphill_factor"] if rng.random() < params["uphill_share"] else 0.0
        return _leg(rng, cart, _uniform(rng, params, "drive_s"), burst_factor=uphill)

    def hole() -> list[Segment]:
        drives = [drive() for _ in range(rng.integers(2, _GOLF_MAX_DRIVES_PER_HOLE + 1))]
        spare_s = int(hole_s - sum(_length(d) for d in drives) - _GOLF_MIN_IDLE_S * len(drives))
        cuts = np.sort(rng.integers(0, spare_s + 1, size=len(drives) - 1))
        idles = np.diff([0, *cuts, spare_s]) + _GOLF_MIN_IDLE_S
        segments: list[Segment] = []
        for idle_s, moves in zip(idles, drives, strict=True):
            segments += [_seg(idle_s, DutyMode.REST), *moves]
        return segments

    def day() -> list[Segment]:
        segments: list[Segment] = []
        for index in range(rounds):
            if index:
                segments.append(_seg(_GOLF_TURNAROUND_S, DutyMode.REST))
            for _ in range(holes):
                segments += hole()
        return _pad_to(segments, DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- forklift ----------------------------------------------------------------------------------

FORKLIFT_SHIFT_DEFAULTS: dict[str, float] = {
    "shift_s": 28800.0,
    "drive_min_w": 5000.0,  # for an 80 V pack; scaled by nominal_voltage_v / 80 V
    "drive_max_w": 15000.0,
    "lift_peak_current_a": 550.0,  # scaled down if max_discharge_current_a is lower
    "lift_min_s": 3.0,
    "lift_max_s": 10.0,
    "idle_min_s": 30.0,
    "idle_max_s": 240.0,
    "coffee_break_s": 900.0,
    "lunch_break_s": 1800.0,
    "opportunity_charge_current_a": 0.0,  # 0: 0.3 C
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # after the shift; 0: 0.2 C
}


def forklift_shift(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """An 8 h shift of pick-and-place cycles with opportunity charging in its three breaks."""
    end = _end_of_day(rating, params, auto_c=0.2)
    coffee_s, lunch_s = params["coffee_break_s"], params["lunch_break_s"]
    work_s = (params["shift_s"] - 2 * coffee_s - lunch_s) / 4
    _require(
        work_s >= 600,
        "shift_s must leave at least 4 × 600 s of work around two coffee breaks and lunch",
    )
    _require(params["shift_s"] <= DAY_S, f"shift_s = {params['shift_s']:.0f} s exceeds a day")
    scale = rating.nominal_voltage_v / 80.0
    peak_a = params["lift_peak_current_a"] * min(
        1.0, rating.max_discharge_current_a / params["lift_peak_current_a"]
    )
    opportunity_a = _auto(params["opportunity_charge_current_a"], rating.current_a(0.3))

    def lift() -> list[Segment]:
        """Hydraulic pump: an inrush near the peak, then a hold that depends on the load."""
        surge_a = peak_a * rng.uniform(0.9, 1.0)
        segments = [_seg(1.0, DutyMode.CURRENT, surge_a)]
        hold_s = _uniform(rng, params, "lift_s") - 1.0
        if hold_s >= 1:
            segments.append(_seg(hold_s, DutyMode.CURRENT, surge_a * rng.uniform(0.5, 0.8)))
        return segments

    def cycle() -> list[Segment]:
        """Wait, drive to the pallet, lift it, drive to its place, lower the forks."""
        drive_w = _uniform(rng, params, "drive_w") * scale
        truck = _Drive(
            cruise_w=drive_w,
            peak_w=1.4 * drive_w,
            regen_w=0.15 * drive_w,
            accel_s=(1.0, 3.0),
            brake_s=(1.0, 3.0),
            chunk_s=(5.0, 15.0),
        )
        return [
            _seg(_uniform(rng, params, "idle_s"), DutyMode.REST),
            *_leg(rng, truck, rng.uniform(10.0, 40.0)),
            *lift(),
            *_leg(rng, truck, rng.uniform(10.0, 40.0)),
            _seg(rng.uniform(3.0, 8.0), DutyMode.CURRENT, 0.05 * peak_a),
        ]

    def day() -> list[Segment]:
        segments: list[Segment] = []
        for break_s in (coffee_s, lunch_s, coffee_s, None):
            segments += _span(work_s, cycle)
            if break_s is not None:
                segments.append(_seg(break_s, DutyMode.CHARGE, opportunity_a))
        return _pad_to(segments, DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- cargo EV ----------------------------------------------------------------------------------

CARGO_EV_ROUTE_DEFAULTS: dict[str, float] = {
    "route_s": 12600.0,  # delivering, between the two transfers
    "transfer_s": 900.0,  # depot to the delivery area, and back
    "drive_min_s": 60.0,  # between two deliveries
    "drive_max_s": 300.0,
    "stop_min_s": 120.0,
    "stop_max_s": 300.0,
    "cruise_power_c": 0.4,  # per drive ±25 %
    "peak_power_c": 1.5,
    "regen_power_c": 0.3,
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # overnight at the depot; 0: 0.25 C
}


def cargo_ev_route(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """A delivery route: out of the depot, short urban drives between stops, back to charge."""
    end = _end_of_day(rating, params, auto_c=0.25)

    def van() -> _Drive:
        return _Drive(
            cruise_w=rating.power_w(params["cruise_power_c"]) * rng.uniform(0.75, 1.25),
            peak_w=rating.power_w(params["peak_power_c"]),
            regen_w=rating.power_w(params["regen_power_c"]),
        )

    def delivery() -> list[Segment]:
        drive = _city_ride(rng, van(), _uniform(rng, params, "drive_s"))
        return [*drive, _seg(_uniform(rng, params, "stop_s"), DutyMode.REST)]

    def day() -> list[Segment]:
        segments = _city_ride(rng, van(), params["transfer_s"])
        segments += _span(params["route_s"], delivery)
        segments += _city_ride(rng, van(), params["transfer_s"])
        return _pad_to(segments, DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- stationary storage ------------------------------------------------------------------------

ESS_PEAK_SHAVING_DEFAULTS: dict[str, float] = {
    "peak_power_w": 0.0,  # 0: 0.5 C
    "charge_current_a": 0.0,  # 0: 0.3 C
    "charge_start_s": 3600.0,  # after midnight
    "charge_s": 18000.0,
    "morning_peak_start_s": 25200.0,
    "morning_peak_s": 5400.0,
    "evening_peak_start_s": 63000.0,
    "evening_peak_s": 5400.0,
    "noise": 0.15,  # relative spread of the discharge power
}


def ess_peak_shaving(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """A commercial ESS day: grid charge at night, discharge in the morning and evening peaks."""
    peak_w = _auto(params["peak_power_w"], rating.power_w(0.5))
    charge_a = _auto(params["charge_current_a"], rating.current_a(0.3))

    def shave(name: str) -> list[Segment]:
        """The part of the site load above the grid limit: a noisy bump up to ``peak_w``."""
        bump = _wavy(
            rng,
            params[f"{name}_s"],
            peak_w,
            params["noise"],
            (60.0, 300.0),
            shape=lambda fraction: math.sin(math.pi * fraction) ** 2,
        )
        return [(seconds, mode, min(value, peak_w)) for seconds, mode, value in bump]

    def day() -> list[Segment]:
        night_charge = [_seg(params["charge_s"], DutyMode.CHARGE, charge_a)]
        events = [
            ("the night charge", params["charge_start_s"], night_charge),
            ("the morning peak", params["morning_peak_start_s"], shave("morning_peak")),
            ("the evening peak", params["evening_peak_start_s"], shave("evening_peak")),
        ]
        return _timeline(events, DAY_S)

    return _finish(_repeat(duration_s, day), rating, (DutyMode.REST, 0.0))


TELECOM_BACKUP_DEFAULTS: dict[str, float] = {
    "float_current_a": 0.0,  # 0: 0.02 C
    "outage_start_s": 7200.0,
    "outage_duration_s": 14400.0,
    "load_power_w": 0.0,  # radio equipment during the outage; 0: 0.15 C
    "recharge_current_a": 0.0,  # 0: 0.2 C
}


def telecom_backup(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """Float charge, one grid outage carried by the battery, recharge, float again."""
    float_a = _auto(params["float_current_a"], rating.current_a(0.02))
    load_w = _auto(params["load_power_w"], rating.power_w(0.15))
    recharge_a = _auto(params["recharge_current_a"], rating.current_a(0.2))
    outage_s = params["outage_duration_s"]
    # long enough to put back 1.5 × the ampere-hours the outage took, and at least an hour
    recharge_s = max(3600.0, 1.5 * load_w / rating.nominal_voltage_v * outage_s / recharge_a)
    segments: list[Segment] = []
    if params["outage_start_s"] >= 1:
        segments.append(_seg(params["outage_start_s"], DutyMode.CHARGE, float_a))
    segments += _wavy(rng, outage_s, load_w, 0.08, (60.0, 600.0))
    segments.append(_seg(recharge_s, DutyMode.CHARGE, recharge_a))
    if duration_s - _length(segments) >= 1:
        segments.append(_seg(duration_s - _length(segments), DutyMode.CHARGE, float_a))
    return _finish(segments, rating, (DutyMode.CHARGE, float_a))


# --- marine ------------------------------------------------------------------------------------

MARINE_CRUISE_DEFAULTS: dict[str, float] = {
    "manoeuvre_s": 600.0,  # leaving, and again entering, the harbour
    "cruise_s": 3600.0,  # each way
    "anchor_s": 10800.0,
    "cruise_power_c": 0.25,
    "manoeuvre_power_c": 0.5,  # strongest burst
    "hotel_power_c": 0.01,  # fridge, lights, electronics
    "wave_variation": 0.05,  # relative spread of the propulsion power
    "charge_at_end": 1,
    "charge_current_a": 0.0,  # shore power; 0: 0.2 C
}


def marine_cruise(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """A day on an electric boat: out of harbour, cruise, anchor, back, shore power."""
    end = _end_of_day(rating, params, auto_c=0.2)
    hotel_w = rating.power_w(params["hotel_power_c"])
    burst_w = rating.power_w(params["manoeuvre_power_c"])

    def manoeuvre() -> list[Segment]:
        """Short thrusts ahead or astern, then drifting on hotel loads."""
        return _span(
            params["manoeuvre_s"],
            lambda: [
                _seg(
                    rng.uniform(5.0, 30.0),
                    DutyMode.POWER,
                    hotel_w + burst_w * rng.uniform(0.3, 1.0),
                ),
                _seg(rng.uniform(10.0, 60.0), DutyMode.POWER, hotel_w),
            ],
        )

    def cruise() -> list[Segment]:
        cruise_w = rating.power_w(params["cruise_power_c"]) + hotel_w
        return _wavy(rng, params["cruise_s"], cruise_w, params["wave_variation"], (5.0, 20.0))

    def day() -> list[Segment]:
        anchor = _wavy(rng, params["anchor_s"], hotel_w, 0.3, (120.0, 900.0))
        segments = [*manoeuvre(), *cruise(), *anchor, *cruise(), *manoeuvre()]
        return _pad_to(segments, DAY_S, *end)

    return _finish(_repeat(duration_s, day), rating, end)


# --- registry ----------------------------------------------------------------------------------

_PARKED_RULES = {"charge_at_end": ParamRule.FLAG, "charge_current_a": ParamRule.NON_NEGATIVE}
_RIDES_RULES = {**_PARKED_RULES, "rides_per_day": ParamRule.COUNT}

STEPS = 4
STEPS_DEFAULTS: dict[str, float] = {
    **{f"mode_{n}": 0.0 for n in range(1, STEPS + 1)},
    **{f"value_{n}": 0.0 for n in range(1, STEPS + 1)},
    **{f"duration_{n}_s": 0.0 for n in range(1, STEPS + 1)},
}


def steps(
    rng: np.random.Generator, rating: PackRating, duration_s: float, params: dict[str, float]
) -> DutyProfile:
    """A lab sequence of up to four fixed steps (mode, value, duration); the last one holds.

    Values are taken as given, not clipped to the rating: a test may overload on purpose.
    """
    del rng, rating, duration_s
    laid = [
        (params[f"duration_{n}_s"], DutyMode(int(params[f"mode_{n}"])), params[f"value_{n}"])
        for n in range(1, STEPS + 1)
        if params[f"duration_{n}_s"] > 0
    ]
    _require(bool(laid), "give at least one step with a positive duration_<n>_s")
    return DutyProfile.from_segments(laid)


PROFILES: dict[str, ProfileDefinition] = {
    "steps": ProfileDefinition(
        steps,
        STEPS_DEFAULTS,
        "lab sequence: up to four fixed steps of a duty mode and value, the last one holding",
        {
            **{f"mode_{n}": ParamRule.MODE for n in range(1, STEPS + 1)},
            **{f"value_{n}": ParamRule.FINITE for n in range(1, STEPS + 1)},
            **{f"duration_{n}_s": ParamRule.NON_NEGATIVE for n in range(1, STEPS + 1)},
        },
    ),
    "escooter_urban": ProfileDefinition(
        escooter_urban,
        ESCOOTER_URBAN_DEFAULTS,
        "urban e-scooter: stop-and-go rides of 10–25 min, parking, charging at the end of the day",
        {**_RIDES_RULES, "regen_fraction": ParamRule.FRACTION},
    ),
    "ebike": ProfileDefinition(
        ebike,
        EBIKE_DEFAULTS,
        "pedelec: pedal assist of 100–500 W over hills, rides of 30–90 min",
        {**_RIDES_RULES, "hill_share": ParamRule.FRACTION},
    ),
    "golf_cart": ProfileDefinition(
        golf_cart,
        GOLF_CART_DEFAULTS,
        "golf cart: 18 holes in about 4 h, short drives with long idle and uphill bursts",
        {
            **_PARKED_RULES,
            "holes": ParamRule.COUNT,
            "rounds_per_day": ParamRule.COUNT,
            "uphill_share": ParamRule.FRACTION,
        },
    ),
    "forklift_shift": ProfileDefinition(
        forklift_shift,
        FORKLIFT_SHIFT_DEFAULTS,
        "warehouse forklift: 8 h shift of drives and lifts, opportunity charging in breaks",
        {**_PARKED_RULES, "opportunity_charge_current_a": ParamRule.NON_NEGATIVE},
    ),
    "cargo_ev_route": ProfileDefinition(
        cargo_ev_route,
        CARGO_EV_ROUTE_DEFAULTS,
        "delivery van: urban drives between stops every few minutes, overnight depot charging",
        _PARKED_RULES,
    ),
    "ess_peak_shaving": ProfileDefinition(
        ess_peak_shaving,
        ESS_PEAK_SHAVING_DEFAULTS,
        "commercial ESS: night grid charge, discharge in the morning and evening peaks",
        {
            "peak_power_w": ParamRule.NON_NEGATIVE,
            "charge_current_a": ParamRule.NON_NEGATIVE,
            "charge_start_s": ParamRule.NON_NEGATIVE,
            "noise": ParamRule.FRACTION,
        },
    ),
    "telecom_backup": ProfileDefinition(
        telecom_backup,
        TELECOM_BACKUP_DEFAULTS,
        "telecom site backup: float charge, a grid outage on battery, recharge",
        {
            "float_current_a": ParamRule.NON_NEGATIVE,
            "outage_start_s": ParamRule.NON_NEGATIVE,
            "load_power_w": ParamRule.NON_NEGATIVE,
            "recharge_current_a": ParamRule.NON_NEGATIVE,
        },
    ),
    "marine_cruise": ProfileDefinition(
        marine_cruise,
        MARINE_CRUISE_DEFAULTS,
        "electric boat: harbour manoeuvres, cruise, anchor on hotel loads, shore power",
        {**_PARKED_RULES, "wave_variation": ParamRule.FRACTION},
    ),
}


def _check_value(kind: str, name: str, value: object, rule: ParamRule) -> float:
    """One parameter as a float, or a ConfigError naming it, its value and the rule."""
    where = f"profile {kind!r}: parameter {name} = {value!r}"
    if not isinstance(value, numbers.Real):
        raise ConfigError(f"{where} must be a number")
    number = float(value)
    valid = {
        ParamRule.POSITIVE: number > 0,
        ParamRule.NON_NEGATIVE: number >= 0,
        ParamRule.FRACTION: 0 <= number <= 1,
        ParamRule.FLAG: number in (0.0, 1.0),
        ParamRule.COUNT: number >= 1 and number.is_integer(),
        ParamRule.FINITE: True,
        ParamRule.MODE: number in (0.0, 1.0, 2.0, 3.0, 4.0),
    }[rule]
    if not (math.isfinite(number) and valid):
        raise ConfigError(f"{where} {rule.value}")
    return number


def resolve_parameters(kind: str, parameters: Mapping[str, float]) -> dict[str, float]:
    """The defaults of ``kind`` updated with ``parameters``, checked; ConfigError if wrong."""
    definition = PROFILES.get(kind)
    if definition is None:
        raise ConfigError(
            f"unknown profile kind {kind!r}; known kinds: {', '.join(sorted(PROFILES))}"
        )
    unknown = sorted(set(parameters) - set(definition.defaults))
    if unknown:
        raise ConfigError(
            f"profile {kind!r}: unknown parameter{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(unknown)}; allowed: {', '.join(sorted(definition.defaults))}"
        )
    merged = {**definition.defaults, **parameters}
    params = {
        name: _check_value(kind, name, value, definition.rule(name))
        for name, value in merged.items()
    }
    for name, low in params.items():
        if "_min" in name:
            partner = name.replace("_min", "_max", 1)
            if partner in params and low > params[partner]:
                raise ConfigError(
                    f"profile {kind!r}: {name} = {low:g} must not exceed "
                    f"{partner} = {params[partner]:g}"
                )
    return params


def build_profile(
    kind: str,
    parameters: Mapping[str, float],
    rng: np.random.Generator,
    rating: PackRating,
    duration_s: float,
) -> DutyProfile:
    """The duty profile of sector ``kind`` for ``rating``, covering at least ``duration_s``.

    Raises ConfigError for an unknown kind, an unknown or invalid parameter, or parameters that
    do not fit together (for instance a day's activity longer than a day).
    """
    params = resolve_parameters(kind, parameters)
    if not (isinstance(duration_s, int | float) and math.isfinite(duration_s) and duration_s > 0):
        raise ConfigError(f"profile {kind!r}: duration_s = {duration_s!r} must be positive")
    try:
        return PROFILES[kind].generator(rng, rating, float(duration_s), params)
    except ConfigError as error:
        raise ConfigError(f"profile {kind!r}: {error}") from None
