"""Faults a scenario injects into the plant at a given simulated time."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Fault(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    at_s: float = Field(ge=0, description="simulated time the fault appears")


class InternalShort(_Fault):
    """A soft internal short: a resistance across one cell drains it."""

    kind: Literal["internal_short"]
    cell: int = Field(ge=0, description="flat cell index in the system")
    resistance_ohm: float = Field(gt=0)


class SensorStuck(_Fault):
    """A sensor reading freezes at its value at the time of the fault."""

    kind: Literal["sensor_stuck"]
    sensor: Literal["cell_voltage", "cell_temperature", "current"]
    index: int = Field(
        default=0,
        ge=0,
        description="voltage channel (series cell) or temperature sensor of string 0 of the "
        "system's flat numbering, or string index for current",
    )


class SensorDrift(_Fault):
    """A sensor reading drifts away from the truth at a constant rate."""

    kind: Literal["sensor_drift"]
    sensor: Literal["cell_voltage", "cell_temperature", "current"]
    index: int = Field(default=0, ge=0)
    rate_per_s: float = Field(description="drift in the sensor's unit per second")


class OpenWire(_Fault):
    """A cell-voltage sense wire breaks: wire k sits between series cells k-1 and k."""

    kind: Literal["open_wire"]
    string: int = Field(default=0, ge=0)
    wire: int = Field(ge=0)


class NtcFault(_Fault):
    """A temperature sensor opens (reads the pull-up rail) or shorts (reads zero)."""

    kind: Literal["ntc_fault"]
    string: int = Field(default=0, ge=0)
    sensor: int = Field(ge=0)
    mode: Literal["open", "short"] = "open"


class WeldedContactor(_Fault):
    """A string's positive contactor (or MOSFET) stays closed whatever it is told."""

    kind: Literal["welded_contactor"]
    string: int = Field(default=0, ge=0)


class CoolingFailure(_Fault):
    """The coolant stops: cells lose their heat path to the coolant."""

    kind: Literal["cooling_failure"]
    remaining_fraction: float = Field(default=0.05, ge=0, le=1)


class ExternalShort(_Fault):
    """A low resistance appears across the DC bus (load side of the power path)."""

    kind: Literal["external_short"]
    resistance_ohm: float = Field(default=0.01, gt=0)


class _TransientFault(_Fault):
    duration_s: float | None = Field(
        default=None, gt=0, description="how long the fault lasts (default: for good)"
    )


class SlaveFault(_TransientFault):
    """A slave module misbehaves: it falls silent, or it freezes and repeats its last frames
    (alive counter stuck)."""

    kind: Literal["slave_fault"]
    string: int = Field(default=0, ge=0)
    slave: int = Field(ge=0, description="chain position, 0 = next to the master")
    mode: Literal["silent", "frozen"] = "silent"


class ChainFault(_TransientFault):
    """The daisy chain degrades: it breaks, loses or corrupts frames, or delays them."""

    kind: Literal["chain_fault"]
    string: int = Field(default=0, ge=0)
    mode: Literal["break", "loss", "corruption", "latency"]
    reachable_slaves: int = Field(
        default=0, ge=0, description="break: slaves still connected to the master"
    )
    slave: int | None = Field(
        default=None, ge=0, description="loss, corruption: only this slave's frames (default all)"
    )
    probability: float = Field(default=1.0, ge=0, le=1, description="loss, corruption: per frame")
    latency_s: float = Field(default=0.0, ge=0, le=60, description="latency: added delay")


class NodeSilence(_TransientFault):
    """A node of a multi-master system stops transmitting: a string master on the system bus
    (it still hears commands), the system master itself (dead: it neither hears nor sends), or
    the inverter on the inverter bus (its keep-alive stops)."""

    kind: Literal["node_silence"]
    node: Literal["string_master", "system_master", "inverter"]
    string: int = Field(default=0, ge=0, description="string_master: which string")


SensorFault = SensorStuck | SensorDrift | OpenWire | NtcFault
CommFault = SlaveFault | ChainFault | NodeSilence
HardwareFault = SensorFault | CommFault
"""Faults of the measurement and communication hardware: the plant records them, the simulated
drivers and buses apply them."""

FaultSpec = Annotated[
    InternalShort
    | SensorStuck
    | SensorDrift
    | OpenWire
    | NtcFault
    | WeldedContactor
    | CoolingFailure
    | ExternalShort
    | SlaveFault
    | ChainFault
    | NodeSilence,
    Field(discriminator="kind"),
]
