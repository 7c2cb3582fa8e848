"""CAN buses by name over python-can, on an injected clock, with a candump-format log.

In simulation every bus is python-can's ``virtual`` interface; on hardware the same ports open
socketcan, PCAN, Kvaser or slcan by configuration. Frames carry the injected clock's time as
their timestamp, so a log of a simulated run is in simulated seconds.

A simulated bus of a ``CanNetwork`` is a ``VirtualBus`` that hands every receiver the one
message sent (python-can's copies it for each; nobody modifies a message once sent) through a
``queue.SimpleQueue``, which a port drains in one go. A sender with many frames of one instant
(a string's slave reports) may send them as one ``FrameBlock``: the same frames, logged line
by line, but carried between the ports of a simulated network as arrays; a real interface, or
any other receiver, gets them frame by frame.
"""

from __future__ import annotations

import itertools
import queue
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TextIO

import can
import numpy as np
from can.interfaces.virtual import VirtualBus, channels_lock

CLOCK_EPS_S = 1e-9  # cycle comparisons on a clock that counts in float steps


def due(now_s: float, last_s: float | None, period_s: float) -> bool:
    """Whether a cyclic frame last sent at ``last_s`` is due again."""
    return last_s is None or now_s - last_s >= period_s - CLOCK_EPS_S


class Frame(NamedTuple):
    """One CAN frame as a node sends or receives it (a tuple: buses carry thousands a second)."""

    time_s: float
    frame_id: int
    data: bytes
    extended: bool = False


@dataclass(frozen=True, eq=False)
class FrameBlock:
    """Frames one sender sends at one instant, in order, as arrays: their identifiers and
    their ``(n, length)`` payloads (uint8). Both are made read-only: one block may sit in
    several receivers' queues."""

    time_s: float
    frame_ids: np.ndarray
    payload: np.ndarray
    extended: bool = False

    def __post_init__(self) -> None:
        ids, payload = np.asarray(self.frame_ids), np.asarray(self.payload)
        if ids.ndim != 1 or ids.dtype.kind not in "iu" or (ids.size and ids.min() < 0):
            raise ValueError("a frame block's identifiers must be non-negative integers")
        if payload.ndim != 2 or payload.dtype != np.uint8 or payload.shape[0] != ids.size:
            shape = f"{payload.shape} {payload.dtype}"
            raise ValueError(f"a block of {ids.size} frames needs an (n, length) uint8 payload, "
                             f"not {shape}")  # fmt: skip
        for array in (ids, payload):
            array.flags.writeable = False
        object.__setattr__(self, "frame_ids", ids)
        object.__setattr__(self, "payload", payload)

    def __len__(self) -> int:
        return int(self.frame_ids.size)

    def frames(self, rows: np.ndarray | None = None) -> list[Frame]:
        """The block's frames (those of ``rows`` only, when given), in order."""
        ids, payload = self.frame_ids, self.payload
        if rows is not None:
            ids, payload = ids[rows], payload[rows]
        length = payload.shape[1]
        joined = payload.tobytes()
        time_s, extended = self.time_s, self.extended
        return [
            Frame(time_s, frame_id, joined[length * row : length * (row + 1)], extended)
            for row, frame_id in enumerate(ids.tolist())
        ]


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

    def write_block(self, channel: str, block: FrameBlock) -> None:
        """A block's frames, line by line as ``write`` writes them."""
        prefix = f"({block.time_s:.6f}) {channel} "
        digits = 8 if block.extended else 3
        width = 2 * block.payload.shape[1]
        data = block.payload.tobytes().hex().upper()
        self._file.write("".join([
            f"{prefix}{frame_id:0{digits}X}#{data[width * row : width * (row + 1)]}\n"
            for row, frame_id in enumerate(block.frame_ids.tolist())
        ]))  # fmt: skip

    def close(self) -> None:
        self._file.close()


class _FrameMessage(can.Message):
    """A ``can.Message`` that also carries the (immutable) ``Frame`` it was made from, so a
    receiver on a simulated bus need not build the same frame again."""

    __slots__ = ("frame",)


class _BlockInbox(queue.SimpleQueue):
    """The receive queue of a ``_SharedVirtualBus``: it takes ``FrameBlock``s as they are."""


class _SharedVirtualBus(VirtualBus):
    """python-can's ``virtual`` interface without a copy of each message per receiver.

    ``VirtualBus.send`` deep-copies every message once per receiver; here all receivers get
    the one message sent (stamped as received: ``is_rx``, the channel), which is safe as long
    as nobody modifies a message after sending or receiving it, as the ports of a
    ``CanNetwork`` never do. The receive queue is a ``queue.SimpleQueue``, which ``drain``
    empties in one call. Plain ``VirtualBus`` instances on the same channel still work with it.
    """

    def __init__(self, channel: Any = "channel-0", **kwargs: Any) -> None:
        super().__init__(channel=channel, **kwargs)
        inbox: queue.SimpleQueue[can.Message] = _BlockInbox()
        with channels_lock:
            position = next(i for i, q in enumerate(self.channel) if q is self.queue)
            self.channel[position] = inbox
            self.queue = inbox  # type: ignore[assignment]

    def send(self, msg: can.Message, timeout: float | None = None) -> None:
        if self.receive_own_messages:  # the sender's copy differs (is_rx): copy as usual
            super().send(msg, timeout)
            return
        self._check_if_open()
        if not self.preserve_timestamps:
            msg.timestamp = time.time()
        msg.channel = self.channel_id
        msg.is_rx = True
        own = self.queue
        for inbox in self.channel:
            if inbox is not own:
                inbox.put(msg)

    def send_block(self, block: FrameBlock) -> None:
        """The block to every ``_SharedVirtualBus`` on the channel, its frames to any other."""
        if self.receive_own_messages or not self.preserve_timestamps:
            for frame in block.frames():
                self.send(_message_of(frame))
            return
        self._check_if_open()
        own = self.queue
        for inbox in self.channel:
            if inbox is own:
                continue
            if isinstance(inbox, _BlockInbox):
                inbox.put(block)
                continue
            for frame in block.frames():
                inbox.put(_message_of(frame, self.channel_id))

    def drain(self) -> list[can.Message | FrameBlock]:
        """Every message and block waiting, oldest first (those the bus's filters pass; a
        block meets the filters as its frames)."""
        inbox: queue.SimpleQueue[can.Message] = self.queue  # type: ignore[assignment]
        self._check_if_open()
        get = inbox.get_nowait
        items = [get() for _ in range(inbox.qsize())]
        if self._filters is None:
            return items
        passed: list[can.Message | FrameBlock] = []
        for item in items:
            messages = [item] if isinstance(item, can.Message) else [
                _message_of(frame, self.channel_id) for frame in item.frames()]  # fmt: skip
            passed += [m for m in messages if self._matches_filters(m)]
        return passed


class CanPort:
    """One node on one bus: sends and drains frames through a python-can bus object."""

    def __init__(self, bus: can.BusABC, name: str, log: CanLog | None = None) -> None:
        self.bus = bus
        self.name = name
        self.log = log
        self.sent = 0
        self.received = 0
        self._shared = isinstance(bus, _SharedVirtualBus)

    def send(self, frame: Frame) -> None:
        self.bus.send(_message_of(frame))
        self.sent += 1
        if self.log is not None:
            self.log.write(self.name, frame)

    def send_block(self, block: FrameBlock) -> None:
        """The block's frames, in order: as one block on a simulated network's bus."""
        if self._shared:
            self.bus.send_block(block)  # type: ignore[attr-defined]
            self.sent += len(block)
            if self.log is not None:
                self.log.write_block(self.name, block)
            return
        for frame in block.frames():
            self.send(frame)

    def receive_batch(self) -> list[Frame | FrameBlock]:
        """Every frame and block that arrived since the last call, oldest first."""
        if self._shared:
            items = [item if isinstance(item, FrameBlock) else _frame_of(item)
                     for item in self.bus.drain()]  # type: ignore[attr-defined] # fmt: skip
        else:
            items = []
            while (message := self.bus.recv(timeout=0.0)) is not None:
                items.append(_frame_of(message))
        self.received += sum(len(item) if isinstance(item, FrameBlock) else 1 for item in items)
        return items

    def receive(self) -> list[Frame]:
        frames: list[Frame] = []
        for item in self.receive_batch():
            if isinstance(item, FrameBlock):
                frames += item.frames()
            else:
                frames.append(item)
        return frames

    def close(self) -> None:
        self.bus.shutdown()


def _message_of(frame: Frame, channel: Any = None) -> _FrameMessage:
    """The python-can message of ``frame``, carrying the frame itself along when a receiver
    would rebuild an equal one."""
    message = _FrameMessage(
        timestamp=frame.time_s,
        arbitration_id=frame.frame_id,
        is_extended_id=frame.extended,
        data=frame.data,
        channel=channel,
        is_rx=channel is not None,
    )
    message.frame = frame if type(frame.data) is bytes else None
    return message


def _frame_of(message: can.Message) -> Frame:
    """The ``Frame`` of a received message: the sender's own where it came along unchanged."""
    frame = getattr(message, "frame", None)
    if (
        frame is not None
        and frame.time_s == message.timestamp
        and frame.frame_id == message.arbitration_id
        and frame.extended == message.is_extended_id
    ):
        return frame
    return Frame(
        message.timestamp, message.arbitration_id, bytes(message.data), message.is_extended_id
    )


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
            bus: can.BusABC = _SharedVirtualBus(
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
