"""CAN buses by name over python-can, on an injected clock, with a candump-format log.

In simulation every bus is python-can's ``virtual`` interface; on hardware the same ports open
socketcan, PCAN, Kvaser or slcan by configuration. Frames carry the injected clock's time as
their timestamp, so a log of a simulated run is in simulated seconds.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

import can

CLOCK_EPS_S = 1e-9  # cycle comparisons on a clock that counts in float steps


def due(now_s: float, last_s: float | None, period_s: float) -> bool:
    """Whether a cyclic frame last sent at ``last_s`` is due again."""
    return last_s is None or now_s - last_s >= period_s - CLOCK_EPS_S


@dataclass(frozen=True)
class Frame:
    """One CAN frame as a node sends or receives it."""

    time_s: float
    frame_id: int
    data: bytes
    extended: bool = False


class FramePort(Protocol):
    """A node's connection to one bus."""

    def send(self, frame: Frame) -> None: ...

    def receive(self) -> list[Frame]:
        """Every frame that arrived since the last call, oldest first."""
        ...


@dataclass(frozen=True)
class BusConfig:
    """How to open one bus: a python-can interface and channel, and the bit rate."""

    interface: str = "virtual"
    channel: str = ""
    bitrate: int = 500_000


class CanLog:
    """Writes every frame of every bus in the candump log format: ``(time) channel id#data``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", encoding="ascii")

    def write(self, channel: str, frame: Frame) -> None:
        ident = f"{frame.frame_id:08X}" if frame.extended else f"{frame.frame_id:03X}"
        self._file.write(f"({frame.time_s:.6f}) {channel} {ident}#{frame.data.hex().upper()}\n")

    def close(self) -> None:
        self._file.close()


class CanPort:
    """One node on one bus: sends and drains frames through a python-can bus object."""

    def __init__(self, bus: can.BusABC, name: str, log: CanLog | None = None) -> None:
        self.bus = bus
        self.name = name
        self.log = log
        self.sent = 0
        self.received = 0

    def send(self, frame: Frame) -> None:
        self.bus.send(
            can.Message(
                timestamp=frame.time_s,
                arbitration_id=frame.frame_id,
                is_extended_id=frame.extended,
                data=frame.data,
            )
        )
        self.sent += 1
        if self.log is not None:
            self.log.write(self.name, frame)

    def receive(self) -> list[Frame]:
        frames = []
        while (message := self.bus.recv(timeout=0.0)) is not None:
            frames.append(
                Frame(
                    message.timestamp,
                    message.arbitration_id,
                    bytes(message.data),
                    message.is_extended_id,
                )
            )
        self.received += len(frames)
        return frames

    def close(self) -> None:
        self.bus.shutdown()


_network_ids = itertools.count(1)


class CanNetwork:
    """The named buses of one system (``internal``, ``charger``, ``vehicle``, ...).

    Simulated buses get a channel unique to this network, so two simulations in one process
    never hear each other. ``configs`` maps a bus name to a real interface where wanted.
    """

    def __init__(
        self, configs: dict[str, BusConfig] | None = None, log_path: Path | None = None
    ) -> None:
        self.configs = configs or {}
        self.log = CanLog(log_path) if log_path is not None else None
        self._prefix = f"cellwarden-{next(_network_ids)}"
        self.ports: list[CanPort] = []

    def port(self, bus_name: str, logged: bool = True) -> CanPort:
        """A new node on bus ``bus_name``; ``logged`` ports write what they send to the log."""
        config = self.configs.get(bus_name, BusConfig())
        if config.interface == "virtual":
            bus = can.Bus(
                interface="virtual",
                channel=f"{self._prefix}-{config.channel or bus_name}",
                preserve_timestamps=True,
                bitrate=config.bitrate,
            )
        else:
            bus = can.Bus(
                interface=config.interface, channel=config.channel, bitrate=config.bitrate
            )
        port = CanPort(bus, bus_name, self.log if logged else None)
        self.ports.append(port)
        return port

    def close(self) -> None:
        for port in self.ports:
            port.close()
        self.ports.clear()
        if self.log is not None:
            self.log.close()
