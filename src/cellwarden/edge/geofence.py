"""Geofences: circular zones (depot, customer site, country) and enter/exit events from GPS fixes.

A fence is entered when a fix comes within ``radius_m - hysteresis_m / 2`` of its centre and
left when a fix is farther than ``radius_m + hysteresis_m / 2``; in between the last state holds,
so a receiver jittering on the border does not flap. The first valid fix sets the state by the
border itself and reports "enter" for every fence it lies in. Invalid fixes are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from cellwarden.hardware.gps import GpsFix, haversine_m
from cellwarden.model.errors import ConfigError

__all__ = ["Geofence", "GeofenceEvent", "GeofenceMonitor", "haversine_m"]

EventKind = Literal["enter", "exit"]


@dataclass(frozen=True)
class Geofence:
    """A circle on the ground, named uniquely within a monitor."""

    name: str
    latitude_deg: float
    longitude_deg: float
    radius_m: float

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("a geofence needs a name")
        if not (abs(self.latitude_deg) <= 90.0 and abs(self.longitude_deg) <= 180.0):
            raise ConfigError(f"geofence {self.name!r}: centre is not a position on Earth")
        if not (math.isfinite(self.radius_m) and self.radius_m > 0):
            raise ConfigError(f"geofence {self.name!r}: radius_m must be positive")

    def distance_m(self, latitude_deg: float, longitude_deg: float) -> float:
        """Distance from the centre, in metres."""
        return haversine_m(self.latitude_deg, self.longitude_deg, latitude_deg, longitude_deg)


@dataclass(frozen=True)
class GeofenceEvent:
    """A crossing: ``fence`` is the fence's name, ``distance_m`` the fix's distance from its
    centre."""

    time_s: float
    fence: str
    kind: EventKind
    distance_m: float


class GeofenceMonitor:
    """Tracks which fences a vehicle or site is in and reports crossings."""

    def __init__(self, fences: Iterable[Geofence], hysteresis_m: float = 20.0) -> None:
        self.fences = list(fences)
        names = [fence.name for fence in self.fences]
        if len(set(names)) != len(names):
            raise ConfigError(f"geofence names must be unique, got {names}")
        if not (math.isfinite(hysteresis_m) and hysteresis_m >= 0):
            raise ConfigError(f"hysteresis_m must be zero or positive, got {hysteresis_m}")
        for fence in self.fences:
            if fence.radius_m <= hysteresis_m / 2:
                raise ConfigError(
                    f"geofence {fence.name!r}: radius_m ({fence.radius_m}) must exceed half the "
                    f"hysteresis ({hysteresis_m} m)"
                )
        self.hysteresis_m = hysteresis_m
        self._inside: dict[str, bool] = {}

    def inside(self, name: str) -> bool | None:
        """Whether the last valid fix was in fence ``name`` (None before any valid fix)."""
        return self._inside.get(name)

    def update(self, fix: GpsFix) -> list[GeofenceEvent]:
        """The crossings this fix makes, in fence order; nothing for an invalid fix."""
        if not (fix.valid and math.isfinite(fix.latitude_deg) and math.isfinite(fix.longitude_deg)):
            return []
        events = []
        half_band_m = self.hysteresis_m / 2
        for fence in self.fences:
            distance_m = fence.distance_m(fix.latitude_deg, fix.longitude_deg)
            was_inside = self._inside.get(fence.name)
            if was_inside is None:
                now_inside = distance_m <= fence.radius_m
                entered = now_inside
            elif was_inside:
                now_inside = distance_m <= fence.radius_m + half_band_m
                entered = False
            else:
                now_inside = distance_m <= fence.radius_m - half_band_m
                entered = now_inside
            self._inside[fence.name] = now_inside
            if entered:
                events.append(GeofenceEvent(fix.time_s, fence.name, "enter", distance_m))
            elif was_inside and not now_inside:
                events.append(GeofenceEvent(fix.time_s, fence.name, "exit", distance_m))
        return events
