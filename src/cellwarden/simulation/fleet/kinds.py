"""What a simulated fleet is made of: pack kinds (sector, size, duty, cooling) and site climates."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


class FleetSpecError(ValueError):
    """A fleet description that cannot be simulated (unknown kind or site, bad mix)."""


@dataclass(frozen=True)
class PackKind:
    """One sector's pack and its typical day.

    A day discharges ``efc_per_day`` equivalent full cycles (scaled per pack and day) in
    cycles of about ``dod`` depth from ``charge_target`` (a float charger keeps telecom packs
    there), at an RMS current of ``c_rms`` times the capacity for ``use_hours``. Heat is the
    I²R loss of the series groups, the rise above ambient ``thermal_resistance_k_per_w`` per
    watt (``indoor`` packs see a damped, conditioned ambient).
    """

    name: str
    chemistry: str
    cells_series: int
    capacity_ah: float
    cell_resistance_mohm: float  # one series group, new
    efc_per_day: float
    dod: float
    charge_target: float
    use_hours: float
    work_days_per_week: int
    c_rms: float
    c_peak: float
    thermal_resistance_k_per_w: float
    indoor: bool
    bleed_current_a: float  # passive balancing current of one cell
    summer_usage_boost: float = 0.0  # usage +x in summer, -x in winter

    @property
    def voltage_nominal_v(self) -> float:
        return self.cells_series * (3.2 if self.chemistry == "LFP" else 3.65)


KINDS: dict[str, PackKind] = {
    kind.name: kind
    for kind in (
        PackKind("e-scooter", "NMC", 13, 20.0, 5.0, 0.7, 0.6, 0.95, 3.0, 7, 0.4, 2.0, 0.8,
                 False, 0.05, 0.25),
        PackKind("cargo-ev", "NMC", 96, 150.0, 0.6, 0.5, 0.5, 0.9, 8.0, 6, 0.3, 2.0, 0.06,
                 False, 0.1),
        PackKind("forklift", "LFP", 24, 280.0, 0.25, 0.9, 0.7, 1.0, 8.0, 5, 0.25, 1.0, 0.3,
                 True, 0.15),
        PackKind("golf-cart", "LFP", 16, 100.0, 0.6, 0.4, 0.5, 1.0, 4.0, 7, 0.3, 1.5, 0.5,
                 False, 0.1, 0.5),
        PackKind("ess", "LFP", 240, 280.0, 0.25, 0.9, 0.8, 0.9, 8.0, 7, 0.35, 0.5, 0.015,
                 True, 0.2),
        PackKind("telecom", "LFP", 16, 100.0, 0.6, 0.02, 0.2, 1.0, 2.0, 7, 0.2, 0.5, 0.5,
                 True, 0.1),
    )
}  # fmt: skip
DEFAULT_MIX = {"e-scooter": 40, "cargo-ev": 15, "forklift": 15, "golf-cart": 10, "ess": 10,
               "telecom": 10}  # fmt: skip


@dataclass(frozen=True)
class Climate:
    """A site's air temperature: yearly mean, seasonal amplitude (warmest day in July north of
    the equator, in January south of it) and the day's peak above the daily mean."""

    name: str
    mean_c: float
    seasonal_amplitude_c: float
    daily_peak_c: float
    southern: bool = False

    def daily_mean_c(self, day_of_year: np.ndarray) -> np.ndarray:
        phase = (day_of_year - 196.0) / 365.25 * 2.0 * math.pi
        sign = -1.0 if self.southern else 1.0
        return self.mean_c + sign * self.seasonal_amplitude_c * np.cos(phase)


CLIMATES: dict[str, Climate] = {
    climate.name: climate
    for climate in (
        Climate("oslo", 6.5, 9.5, 4.0), Climate("hamburg", 9.5, 8.0, 4.0),
        Climate("lyon", 12.5, 9.0, 5.5), Climate("madrid", 15.0, 9.5, 7.0),
        Climate("seville", 19.0, 8.0, 7.5), Climate("phoenix", 24.0, 10.5, 8.0),
        Climate("dubai", 28.0, 7.0, 5.5), Climate("singapore", 27.5, 1.0, 4.0),
        Climate("sydney", 18.0, 5.0, 4.5, southern=True),
    )
}  # fmt: skip
INDOOR_SETPOINT_C = 22.0
INDOOR_COUPLING = 0.3  # share of the outdoor swing around the setpoint that reaches indoors


def parse_mix(text: str | None) -> dict[str, float]:
    """``"e-scooter:40,ess:10"`` -> shares by kind (any positive numbers, normalised later)."""
    if not text:
        return dict(DEFAULT_MIX)
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.strip().partition(":")
        if name not in KINDS:
            raise FleetSpecError(f"unknown pack kind {name!r} in --mix; known: {', '.join(KINDS)}")
        try:
            value = float(share)
        except ValueError:
            raise FleetSpecError(f"--mix {part!r}: the share after ':' is not a number") from None
        if not 0 < value < 1e6:
            raise FleetSpecError(f"--mix {part!r}: a share is a positive number below 10^6")
        mix[name] = value
    return mix


def parse_sites(text: str | None) -> list[Climate]:
    """``"madrid,dubai"`` or custom ``"name=MEAN/AMPLITUDE/PEAK[/south]"`` sites (°C)."""
    if not text:
        return list(CLIMATES.values())
    sites = []
    for part in text.split(","):
        part = part.strip()
        if "=" not in part:
            if part not in CLIMATES:
                raise FleetSpecError(
                    f"unknown site {part!r}; known: {', '.join(CLIMATES)}, or NAME=MEAN/AMP/PEAK"
                )
            sites.append(CLIMATES[part])
            continue
        name, _, values = part.partition("=")
        fields = values.split("/")
        try:
            mean, amplitude, peak = (float(field) for field in fields[:3])
        except ValueError:
            raise FleetSpecError(
                f"site {part!r}: expected NAME=MEAN/AMPLITUDE/PEAK in °C"
            ) from None
        if len(fields) not in (3, 4) or (len(fields) == 4 and fields[3] != "south"):
            raise FleetSpecError(f"site {part!r}: expected NAME=MEAN/AMPLITUDE/PEAK[/south]")
        sites.append(Climate(name.strip(), mean, amplitude, peak, southern=len(fields) == 4))
    return sites
