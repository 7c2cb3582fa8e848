"""The firmware of one slave module: it measures when the master triggers, reports over the
internal bus, and switches its bleed resistors as commanded, within its thermal limits.

Its reports go on the wire through ``comms.slave_reports``, which encodes every slave's of a
string at once (the chain collects them with ``take_reports``).

Balancing stops by itself when the master's commands stop arriving (the configured timeout)
or when the board runs hotter than the configured maximum.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import FrameError
from cellwarden.comms.internal_protocol import (
    SlaveState,
    bits_to_mask,
    mask_to_bits,
    slave_messages,
    trigger_codec,
)
from cellwarden.comms.slave_reports import SlaveReport
from cellwarden.hardware.interfaces import CellMonitor

DEFAULT_BALANCING_TIMEOUT_S = 3.0
DEFAULT_MAX_BOARD_TEMP_C = 80.0
DUTY_STEPS = 15  # the status frame reports the bleed duty in fifteenths


class FrameInbox(Protocol):
    """Where a slave's firmware finds the frames that reached it."""

    def receive(self) -> list[Frame]:
        """Every frame that arrived since the last call, oldest first."""
        ...


class SlaveFrontEnd(CellMonitor, Protocol):
    """A slave's front end also knows its board temperature (balancing heats it)."""

    board_temp_c: float


class SlaveNode:
    """One slave at chain position ``index`` (its address), over its own front end."""

    def __init__(self, index: int, front_end: SlaveFrontEnd, inbox: FrameInbox) -> None:
        self.index = index
        self.front_end = front_end
        self.inbox = inbox
        self.messages = slave_messages(index)
        self._trigger = trigger_codec()
        self.cells = front_end.cell_count
        self.balancing_timeout_s = DEFAULT_BALANCING_TIMEOUT_S
        self.max_board_temp_c = DEFAULT_MAX_BOARD_TEMP_C
        off = np.zeros(self.cells, dtype=bool)
        off.flags.writeable = False  # shared: every "all off" is this one
        self._off = _Bits(off)
        self._mask = self._off  # as commanded (from the raw bits last received)
        self._commanded_bits: float = 0.0
        self._applied = self._off  # as applied
        self._enabled = False
        self._command_s = -np.inf
        self._open_wire = self._off
        self.rejected_frames = 0
        self._reports: list[SlaveReport] = []
        m = self.messages
        self._enable_signal = m.signal("Bal", "Enable")
        self._mask_signal = m.signal("Bal", "Mask")
        self._codecs = {  # the frames addressed to this slave (others pass by)
            self._trigger.frame_id: self._trigger,
            m.balancing.frame_id: m.balancing,
            m.config.frame_id: m.config,
        }

    @property
    def accepted_ids(self) -> frozenset[int]:
        """The identifiers of the frames addressed to this slave (its acceptance filter)."""
        return frozenset(self._codecs)

    def tick(self, now_s: float) -> None:
        """Handle every frame that arrived, then keep the bleeders within their limits."""
        codecs = self._codecs
        for frame in self.inbox.receive():
            if frame.frame_id in codecs:
                self._handle(now_s, frame)
        self._apply_balancing(now_s)

    def _handle(self, now_s: float, frame: Frame) -> None:
        m = self.messages
        codec = self._codecs.get(frame.frame_id)
        if codec is None:
            return  # another slave's frame
        try:
            if codec is self._trigger:  # one broadcast frame, decoded once for all slaves
                decoded = codec._decode_shared(frame.data)
                if not decoded.crc_ok:
                    raise FrameError(f"{codec.name}: CRC error")
            else:
                decoded = codec.decode_checked(frame.data)
        except FrameError:
            self.rejected_frames += 1
            return
        values = decoded.values
        if codec is self._trigger:
            self._report(now_s, bool(values["Trigger_OpenWire"]))
        elif codec is m.balancing:
            self._enabled = bool(values[self._enable_signal])
            bits = values[self._mask_signal]
            if bits != self._commanded_bits:  # a new mask (the same one most cycles)
                self._commanded_bits = bits
                self._mask = _Bits(bits_to_mask(bits, self.cells))
            self._command_s = now_s
        else:
            self.balancing_timeout_s = float(values[m.signal("Cfg", "BalancingTimeout")])
            self.max_board_temp_c = float(values[m.signal("Cfg", "MaxBoardTemp")])

    def _apply_balancing(self, now_s: float) -> None:
        fresh = now_s - self._command_s <= self.balancing_timeout_s
        cool = self.front_end.board_temp_c < self.max_board_temp_c
        on = self._enabled and fresh and cool
        self._applied = self._mask if on else self._off
        self.front_end.set_balancing(self._applied.mask)

    def take_reports(self) -> list[SlaveReport]:
        """The reports made since the last call (one per trigger), to go on the wire."""
        reports, self._reports = self._reports, []
        return reports

    def _report(self, now_s: float, open_wire_test: bool) -> None:
        fe = self.front_end
        voltages = fe.sample_voltages(now_s)
        temps = fe.sample_temperatures(now_s)
        if open_wire_test:
            self._open_wire = _Bits(fe.open_wire_check(now_s))
        balancing, open_wire = self._applied, self._open_wire
        bleeding, opened = balancing.any, open_wire.any
        duty = round(fe.balancing_duty() * DUTY_STEPS) / DUTY_STEPS if bleeding else 0.0
        state = SlaveState.BALANCING if bleeding else SlaveState.NORMAL
        if opened or temps.open_circuit.any() or temps.short_circuit.any():
            state = SlaveState.FAULT
        self._reports.append(SlaveReport(
            voltages.cell_voltage_v, temps.temp_c, temps.open_circuit, temps.short_circuit,
            state, open_wire.bits, balancing.bits, float(fe.board_temp_c), duty,
        ))  # fmt: skip


class _Bits:
    """A mask of the slave's cells with its bits (``mask_to_bits``) and whether any is set,
    worked out once."""

    __slots__ = ("any", "bits", "mask")

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.bits = mask_to_bits(mask)
        # where the bits stand for every element, "any set" is "some bit set"
        exact = mask.dtype == np.bool_ and mask.ndim == 1 and mask.size < 63
        self.any = self.bits != 0 if exact else bool(mask.any())
