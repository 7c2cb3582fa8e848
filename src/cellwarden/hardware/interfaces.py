"""What a BMS can see and switch on a board. Real drivers and simulated ones implement these.

Voltages are per series cell (parallel cells share one channel), NaN where a channel has no
data (its slave is lost); temperatures are per sensor.
Times are the injected clock's seconds. Positive current charges the battery. Samples are
immutable records (named tuples: a string makes dozens every cycle).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np


class VoltageSample(NamedTuple):
    """One conversion of every cell channel, plus the independent stack and link measurements."""

    time_s: float
    cell_voltage_v: np.ndarray
    pack_voltage_v: float  # the stack measured on its own, independent of the cell channels
    link_voltage_v: float  # load side of the power path (DC link)


class TemperatureSample(NamedTuple):
    """Every temperature sensor, with the open and short flags of its ADC range check."""

    time_s: float
    temp_c: np.ndarray
    open_circuit: np.ndarray
    short_circuit: np.ndarray


class CurrentSample(NamedTuple):
    time_s: float
    current_a: float


@dataclass(frozen=True)
class PathCommand:
    """What the BMS asks of a power path.

    ``negative`` closes the negative contactor on its own (a MOSFET path has none);
    ``precharge`` closes the precharge branch and ``main`` the main path, each with the
    negative contactor; ``charge`` and ``discharge`` enable each direction (a MOSFET path
    switches each FET; a contactor path conducts both ways once closed and ignores them).
    """

    negative: bool = False
    precharge: bool = False
    main: bool = False
    charge: bool = True
    discharge: bool = True


OPEN = PathCommand(charge=False, discharge=False)


class PathFeedback(NamedTuple):
    """What the path reports back: auxiliary contacts or gate-drive feedback."""

    precharge_closed: bool
    main_closed: bool
    short_circuit_tripped: bool


class CellMonitor(Protocol):
    """A cell-monitor front end: cell and stack voltages, NTCs, open-wire test, balancing."""

    cell_count: int
    sensor_cells: np.ndarray  # for each temperature sensor, the series cell it sits on

    def sample_voltages(self, now_s: float) -> VoltageSample: ...

    def sample_temperatures(self, now_s: float) -> TemperatureSample: ...

    def stack_and_link_v(self, now_s: float) -> tuple[float, float]:
        """The independent high-voltage measurement, sampled now: (stack, DC link) volts."""
        ...

    def open_wire_check(self, now_s: float) -> np.ndarray:
        """True for each cell channel whose sense wire is open."""
        ...

    def set_balancing(self, mask: np.ndarray) -> None: ...

    def balancing_duty(self) -> float | np.ndarray:
        """Share of time the bleed resistors are on after thermal derating (per cell, or one
        value for the whole board)."""
        ...

    def lost_modules(self) -> int:
        """Monitoring modules (slaves) not heard from within their timeout; 0 on one board."""
        ...


class CurrentSensor(Protocol):
    def sample(self, now_s: float) -> CurrentSample: ...


class PowerPath(Protocol):
    """A string's switches: MOSFETs or contactors, with precharge and a short-circuit cut-off."""

    kind: str  # "mosfet" or "contactors"

    def command(self, command: PathCommand) -> None: ...

    def feedback(self) -> PathFeedback: ...


class ChargerLink(Protocol):
    """The channel the BMS uses to tell a charger its voltage and current limits."""

    def request(self, voltage_v: float, current_a: float) -> None: ...

    def stop(self) -> None: ...

    def present(self) -> bool:
        """A charger is connected (and, over CAN, talking)."""
        ...


class LoadLink(Protocol):
    """The channel the BMS uses to tell the load (vehicle controller, inverter) its limits."""

    def publish(self, discharge_a: float, regen_a: float, ready: bool) -> None:
        """Current limits, and whether the pack is ready (power path closed) at all."""
        ...
