"""Switches between a string and the DC bus: contactors or MOSFETs, each with precharge."""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.model.architecture import PowerPathKind
from cellwarden.model.system import PowerPathSpec

OPEN_RESISTANCE_OHM = float("inf")


@dataclass(frozen=True)
class Conduction:
    """How a power path conducts right now."""

    resistance_ohm: float  # infinity when open
    allow_charge: bool
    allow_discharge: bool

    @property
    def conducting(self) -> bool:
        return self.resistance_ohm != OPEN_RESISTANCE_OHM


@dataclass
class SwitchStates:
    """Commanded switch states.

    Contactors: ``negative``, ``positive`` and ``precharge`` relays; both mains closed conduct
    both ways. MOSFETs: ``charge`` and ``discharge`` FETs back to back (one on alone conducts
    only its own direction, through the other's body diode) and a ``precharge`` FET with its
    resistor. ``negative`` is ignored on a MOSFET path.
    """

    negative: bool = False
    positive: bool = False
    precharge: bool = False
    charge: bool = False
    discharge: bool = False


class PowerPath:
    """One string's power path; a welded main switch stays closed whatever it is told."""

    def __init__(self, spec: PowerPathSpec, cable_resistance_ohm: float) -> None:
        self.spec = spec
        self.cable_resistance_ohm = cable_resistance_ohm
        self.command = SwitchStates()
        self.welded = False

    def conduction(self) -> Conduction:
        """Resistance and allowed current directions of the path as commanded."""
        s = self.command
        closed = self.spec.closed_resistance_ohm + self.cable_resistance_ohm
        precharge = self.spec.precharge_resistance_ohm + self.cable_resistance_ohm
        if self.spec.kind is PowerPathKind.CONTACTORS:
            if s.negative and (s.positive or self.welded):
                return Conduction(closed, True, True)
            if s.negative and s.precharge:
                return Conduction(precharge, True, True)
            return Conduction(OPEN_RESISTANCE_OHM, False, False)
        charge_on = s.charge or self.welded
        discharge_on = s.discharge or self.welded
        if charge_on or discharge_on:
            return Conduction(closed, charge_on, discharge_on)
        if s.precharge:
            return Conduction(precharge, False, True)
        return Conduction(OPEN_RESISTANCE_OHM, False, False)


def combine_in_series(parts: list[Conduction]) -> Conduction:
    """Paths stacked in series conduct only if all do, in the directions all allow."""
    if not all(p.conducting for p in parts):
        return Conduction(OPEN_RESISTANCE_OHM, False, False)
    return Conduction(
        sum(p.resistance_ohm for p in parts),
        all(p.allow_charge for p in parts),
        all(p.allow_discharge for p in parts),
    )
