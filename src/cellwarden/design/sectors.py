"""Sectors the designer knows: each one's duty profile kind and typical pack surroundings."""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.design.requirements import DesignError


@dataclass(frozen=True)
class Sector:
    """Typical values of one field of use, taken from the built-in scenarios of that sector.

    ``capacity_ah`` is the string capacity assumed without ``--capacity-ah``;
    ``charge_c`` the charger's current as a C-rate of the system's capacity.
    """

    name: str
    label: str
    profile_kind: str
    chemistry: str
    capacity_ah: float
    dc_link_capacitance_f: float
    cable_resistance_ohm: float
    charge_c: float
    initial_soc_pct: float
    duration_s: float
    ambient_temp_c: float
    serial_code: str
    inverter: bool = False
    peak_parameter: str | None = None
    """Profile parameter that takes the peak current, if the profile has one."""


SECTORS: dict[str, Sector] = {
    sector.name: sector
    for sector in (
        Sector("e-scooter", "e-scooter", "escooter_urban", "NMC", 20.0, 0.00094, 0.004, 0.2,
               95.0, 43200.0, 22.0, "ESC"),
        Sector("e-bike", "e-bike", "ebike", "NMC", 20.0, 0.00068, 0.006, 0.2,
               95.0, 86400.0, 18.0, "EBK"),
        Sector("golf-cart", "golf cart", "golf_cart", "LFP", 100.0, 0.003, 0.0015, 0.2,
               98.0, 86400.0, 24.0, "GLF"),
        Sector("utility-cart", "utility cart", "golf_cart", "LFP", 100.0, 0.003, 0.0015, 0.25,
               98.0, 86400.0, 22.0, "UTC"),
        Sector("agv", "AGV", "forklift_shift", "LFP", 100.0, 0.002, 0.0015, 0.3,
               95.0, 28800.0, 20.0, "AGV", peak_parameter="lift_peak_current_a"),
        Sector("light-ev", "light EV", "cargo_ev_route", "NMC", 50.0, 0.0025, 0.0025, 0.25,
               95.0, 86400.0, 15.0, "LEV"),
        Sector("forklift", "forklift", "forklift_shift", "LFP", 280.0, 0.006, 0.001, 0.3,
               95.0, 28800.0, 20.0, "FLT", peak_parameter="lift_peak_current_a"),
        Sector("cargo-ev", "cargo EV", "cargo_ev_route", "NMC", 150.0, 0.0025, 0.0025, 0.25,
               95.0, 86400.0, 15.0, "CEV"),
        Sector("ess", "ESS", "ess_peak_shaving", "LFP", 280.0, 0.004, 0.004, 0.3,
               30.0, 86400.0, 25.0, "ESS", inverter=True),
        Sector("telecom", "telecom", "telecom_backup", "LFP", 100.0, 0.01, 0.002, 0.2,
               97.0, 43200.0, 27.0, "TEL", inverter=True),
        Sector("marine", "marine", "marine_cruise", "NMC", 50.0, 0.002, 0.005, 0.2,
               95.0, 43200.0, 20.0, "MAR"),
    )
}  # fmt: skip

_ALIASES = {"escooter": "e-scooter", "scooter": "e-scooter", "ebike": "e-bike"}


def resolve_sector(name: str) -> Sector:
    """A sector by name, ignoring case, spaces and underscores ("Golf cart" is golf-cart)."""
    key = "-".join(name.strip().lower().replace("_", " ").split())
    key = _ALIASES.get(key, key)
    if key not in SECTORS:
        raise DesignError(f"unknown sector {name!r}; known sectors: {', '.join(SECTORS)}")
    return SECTORS[key]
