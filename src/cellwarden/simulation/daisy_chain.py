"""The simulated daisy chain between a master and its slaves: it carries the internal bus's
frames both ways and applies the plant's chain and slave faults (a break, frame loss,
corruption, latency, a silent or frozen slave).

On the master's side it is one node of the python-can bus; the slaves hang off it in chain
order, each with its own firmware and front end. Their reports of a cycle go on the bus as one
block of frames (``comms.slave_reports``) when no fault acts on the chain, frame by frame
through the faults otherwise.
"""

from __future__ import annotations

import numpy as np

from cellwarden.comms.can_bus import Frame, FrameBlock, FramePort
from cellwarden.comms.internal_protocol import internal_codec, trigger_codec
from cellwarden.comms.slave_firmware import SlaveFirmware
from cellwarden.comms.slave_reports import ReportLayout, StringReportEncoder, StringReports
from cellwarden.hardware.sim_cell_monitor import FrontEndBatch, SimulatedCellMonitor
from cellwarden.model.faults import ChainFault, SlaveFault
from cellwarden.plant.system_plant import SystemPlant

FROZEN_ALIVE = 0  # the counter a frozen slave repeats


class SlaveTap:
    """A slave's connection to the chain: the frames that reached it."""

    def __init__(self) -> None:
        self.inbox: list[Frame] = []

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
        slaves: SlaveFirmware,
        taps: list[SlaveTap],
        rng: np.random.Generator,
    ) -> None:
        self.plant = plant
        self.string = string
        self.port = port
        self.slaves = slaves
        self.taps = taps
        self._rng = rng
        front_ends = slaves.front_ends
        self._reports = StringReportEncoder(
            ReportLayout(slaves.cells, [fe.sensor_cells.size for fe in front_ends])
        )
        self._batch = (
            FrontEndBatch(front_ends)  # type: ignore[arg-type]
            if all(isinstance(fe, SimulatedCellMonitor) for fe in front_ends)
            else None
        )
        self._trigger_id = trigger_codec().frame_id
        self._recipients: dict[int, list[int]] = {}  # frame identifier -> slaves taking it
        for index in range(len(front_ends)):
            for frame_id in slaves.accepted_ids(index):
                self._recipients.setdefault(frame_id, []).append(index)
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
        slaves, taps = self.slaves, self.taps
        count = len(taps)
        reachable = min([count] + [f.reachable_slaves for f in chain if f.mode == "break"])
        latency_s = sum(f.latency_s for f in chain if f.mode == "latency")
        # the faults that draw random numbers, in the chain's order (as _lost/_corrupted do)
        loss = [f for f in chain if f.mode == "loss"]
        corruption = [f for f in chain if f.mode == "corruption"]
        frames = self.port.receive()
        if frames and not latency_s and not loss and not self._down:
            # the common case: every frame arrives, now, at the slaves whose filter takes it
            recipients = self._recipients
            for frame in frames:
                for index in recipients.get(frame.frame_id, ()):
                    if index < reachable:
                        taps[index].inbox.append(frame)
            if (self._batch is not None and reachable == count and not slave_modes
                    and any(frame.frame_id == self._trigger_id for frame in frames)):  # fmt: skip
                self._batch.prepare(now_s)  # every slave converts now: all at once
        elif frames or self._down:
            for frame in frames:
                for index in range(reachable):
                    if not (loss and self._lost(loss, index)):
                        self._down.append((now_s + latency_s, index, frame))
            arrived, self._down = _split_due(now_s, self._down)
            for _, index, frame in arrived:
                taps[index].inbox.append(frame)
        silent = [i for i, mode in slave_modes.items() if mode == "silent" and i < count]
        for index in silent:  # dead: its bleeders off, whatever reached it lost
            slaves.front_ends[index].set_balancing(np.zeros(slaves.cells[index], dtype=bool))
            taps[index].inbox.clear()
        slaves.tick(now_s, [index for index in range(count) if index not in silent], self._batch)
        block = self._reports_block(now_s, slaves.take_reports())
        if block is not None:
            send_block = getattr(self.port, "send_block", None)
            if send_block is not None and not (
                latency_s or self._up or loss or corruption or reachable < count
                or slave_modes
            ):  # fmt: skip
                send_block(block)  # the common case: every frame arrives, now, as sent
            else:
                self._carry(now_s, block, reachable, latency_s, slave_modes, loss, corruption)
        if self._up:
            arrived_up, self._up = _split_due(now_s, self._up)
            for due_s, frame in arrived_up:
                self.port.send(Frame(due_s, frame.frame_id, frame.data, frame.extended))

    def _reports_block(self, now_s: float, rounds: list[StringReports]) -> FrameBlock | None:
        """The slaves' reports as one block, slave by slave (a slave that reports twice in one
        service, as after a latency fault, sends its two reports one after the other)."""
        blocks = []
        for reports in rounds:
            block = self._reports.encode_string(now_s, reports)
            if block is not None:
                blocks.append(block)
        if len(blocks) <= 1:
            return blocks[0] if blocks else None
        frame_ids = np.concatenate([block.frame_ids for block in blocks])
        order = np.argsort(self._reports.layout.slave_of_id[frame_ids], kind="stable")
        payload = np.concatenate([block.payload for block in blocks])
        return FrameBlock(now_s, frame_ids[order], payload[order])

    def _carry(
        self,
        now_s: float,
        block: FrameBlock,
        reachable: int,
        latency_s: float,
        slave_modes: dict[int, str],
        loss: list[ChainFault],
        corruption: list[ChainFault],
    ) -> None:
        """The slaves' frames up the chain one by one, through its faults."""
        direct = not latency_s and not self._up
        slave_of_id = self._reports.layout.slave_of_id
        for frame in block.frames():
            index = int(slave_of_id[frame.frame_id])
            mode = slave_modes.get(index)
            if index >= reachable or mode == "silent":
                continue
            if loss and self._lost(loss, index):
                continue
            if mode == "frozen":
                frame = _with_alive(frame, FROZEN_ALIVE)
            if corruption:
                frame = self._corrupted(corruption, index, frame)
            if direct:  # due now: sent at once, in the order the general path keeps
                self.port.send(frame)
            else:
                self._up.append((now_s + latency_s, frame))

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
