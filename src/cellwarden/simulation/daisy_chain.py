"""The simulated daisy chain between a master and its slaves: it carries the internal bus's
frames both ways and applies the plant's chain and slave faults (a break, frame loss,
corruption, latency, a silent or frozen slave).

On the master's side it is one node of the python-can bus; the slaves hang off it in chain
order, each with its own firmware and front end.
"""

from __future__ import annotations

import numpy as np

from cellwarden.comms.can_bus import Frame, FramePort
from cellwarden.comms.internal_protocol import internal_codec
from cellwarden.comms.slave_node import SlaveNode
from cellwarden.model.faults import ChainFault, SlaveFault
from cellwarden.plant.system_plant import SystemPlant

FROZEN_ALIVE = 0  # the counter a frozen slave repeats


class SlaveTap:
    """A slave's connection to the chain (a ``FramePort``)."""

    def __init__(self) -> None:
        self.inbox: list[Frame] = []
        self.outbox: list[Frame] = []

    def send(self, frame: Frame) -> None:
        self.outbox.append(frame)

    def receive(self) -> list[Frame]:
        frames, self.inbox = self.inbox, []
        return frames


class DaisyChain:
    """Moves frames between the bus port and the slaves, one ``service`` call per cycle."""

    def __init__(
        self,
        plant: SystemPlant,
        string: int,
        port: FramePort,
        nodes: list[SlaveNode],
        taps: list[SlaveTap],
        rng: np.random.Generator,
    ) -> None:
        self.plant = plant
        self.string = string
        self.port = port
        self.nodes = nodes
        self.taps = taps
        self._rng = rng
        self._down: list[tuple[float, int, Frame]] = []  # (due, slave, frame)
        self._up: list[tuple[float, Frame]] = []  # (due, frame)

    def _faults(self) -> tuple[list[ChainFault], dict[int, str]]:
        chain, slaves = [], {}
        for fault in self.plant.active_hardware_faults():
            if isinstance(fault, ChainFault) and fault.string == self.string:
                chain.append(fault)
            elif isinstance(fault, SlaveFault) and fault.string == self.string:
                slaves[fault.slave] = fault.mode
        return chain, slaves

    def service(self, now_s: float) -> None:
        """Deliver the master's frames, let every slave run, carry their answers back."""
        chain, slave_modes = self._faults()
        reachable = min(
            [len(self.nodes)] + [f.reachable_slaves for f in chain if f.mode == "break"]
        )
        latency_s = sum(f.latency_s for f in chain if f.mode == "latency")
        for frame in self.port.receive():
            for index in range(reachable):
                if not self._lost(chain, index):
                    self._down.append((now_s + latency_s, index, frame))
        arrived, self._down = _split_due(now_s, self._down)
        for _, index, frame in arrived:
            self.taps[index].inbox.append(frame)
        for index, node in enumerate(self.nodes):
            if slave_modes.get(index) == "silent":
                node.front_end.set_balancing(np.zeros(node.cells, dtype=bool))
                self.taps[index].inbox.clear()
                continue
            node.tick(now_s)
        for index, tap in enumerate(self.taps):
            frames, tap.outbox = tap.outbox, []
            if index >= reachable or slave_modes.get(index) == "silent":
                continue
            for frame in frames:
                if self._lost(chain, index):
                    continue
                if slave_modes.get(index) == "frozen":
                    frame = _with_alive(frame, FROZEN_ALIVE)
                frame = self._corrupted(chain, index, frame)
                self._up.append((now_s + latency_s, frame))
        arrived_up, self._up = _split_due(now_s, self._up)
        for due_s, frame in arrived_up:
            self.port.send(Frame(due_s, frame.frame_id, frame.data, frame.extended))

    def _applies(self, fault: ChainFault, index: int) -> bool:
        return (fault.slave is None or fault.slave == index) and (
            self._rng.random() < fault.probability
        )

    def _lost(self, chain: list[ChainFault], index: int) -> bool:
        return any(f.mode == "loss" and self._applies(f, index) for f in chain)

    def _corrupted(self, chain: list[ChainFault], index: int, frame: Frame) -> Frame:
        if not any(f.mode == "corruption" and self._applies(f, index) for f in chain):
            return frame
        data = bytearray(frame.data)
        bit = int(self._rng.integers(8 * len(data)))
        data[bit // 8] ^= 1 << (bit % 8)
        return Frame(frame.time_s, frame.frame_id, bytes(data), frame.extended)


def _split_due(now_s: float, pending: list) -> tuple[list, list]:
    """(entries due by ``now_s``, the rest); each entry starts with its due time."""
    due = [entry for entry in pending if entry[0] <= now_s + 1e-9]
    return due, [entry for entry in pending if entry[0] > now_s + 1e-9]


def _with_alive(frame: Frame, alive: int) -> Frame:
    """The same frame with its alive counter stuck (re-encoded, so its CRC still holds)."""
    codec = internal_codec().by_id[frame.frame_id]
    values = codec.decode(frame.data).values
    return Frame(frame.time_s, frame.frame_id, codec.encode(values, alive=alive), frame.extended)
