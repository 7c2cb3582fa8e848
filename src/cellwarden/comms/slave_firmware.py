"""The firmware of the slave modules on one daisy chain: each slave measures when the master
triggers, reports over the internal bus, and switches its bleed resistors as commanded, within
its thermal limits.

Every slave is one row here, its chain position its address: it takes only the frames
addressed to it (its inbox) and drives only its own front end. What the slaves do in a cycle
is worked out for all of them at once: their balancing commands decoded as one array, their
bleeders' timeouts and thermal limits judged as arrays. Their reports go on the wire through
``comms.slave_reports``, which encodes every slave's of a string at once (the chain collects
them with ``take_reports``).

Balancing stops by itself when the master's commands stop arriving (the configured timeout)
or when the board runs hotter than the configured maximum.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import FrameError
from cellwarden.comms.internal_protocol import (
    SlaveState,
    bits_to_mask,
    mask_to_bits,
    trigger_codec,
)
from cellwarden.comms.slave_reports import (
    BalancingCommands,
    ReportLayout,
    SlaveReport,
    StringReports,
)
from cellwarden.hardware.interfaces import CellMonitor

DEFAULT_BALANCING_TIMEOUT_S = 3.0
DEFAULT_MAX_BOARD_TEMP_C = 80.0
DUTY_STEPS = 15  # the status frame reports the bleed duty in fifteenths
TRIGGER, BALANCING, CONFIG = range(3)  # the frames a slave takes


class FrameInbox(Protocol):
    """Where a slave's firmware finds the frames that reached it."""

    def receive(self) -> list[Frame]:
        """Every frame that arrived since the last call, oldest first."""
        ...


class SlaveFrontEnd(CellMonitor, Protocol):
    """A slave's front end also knows its board temperature (balancing heats it)."""

    board_temp_c: float


class FrontEndBank(Protocol):
    """Every slave's front end of a chain at once (a simulation's shortcut)."""

    def set_balancing(self, masks: list[np.ndarray]) -> None:
        """Each front end's ``set_balancing(masks[k])``."""
        ...

    def take_conversion(self, now_s: float) -> StringConversion | None:
        """The conversion every front end made at ``now_s`` together, end to end along the
        string, as each front end's ``sample_voltages`` and ``sample_temperatures`` would
        give it now (and they then give a conversion of their own); None if they did not."""
        ...


class StringConversion(Protocol):
    """A string's cell voltages and temperature sensors, converted together."""

    voltage_v: np.ndarray
    temp_c: np.ndarray
    open_circuit: np.ndarray
    short_circuit: np.ndarray


class SlaveFirmware:
    """The slaves of one chain, slave ``k`` over ``front_ends[k]`` and ``inboxes[k]``."""

    def __init__(self, front_ends: Sequence[SlaveFrontEnd], inboxes: Sequence[FrameInbox]) -> None:
        if len(front_ends) != len(inboxes):
            raise ValueError(f"{len(front_ends)} front ends for {len(inboxes)} inboxes")
        self.front_ends = list(front_ends)
        self.inboxes = list(inboxes)
        slaves = len(front_ends)
        self.cells = [fe.cell_count for fe in front_ends]
        self.balancing_timeout_s = np.full(slaves, DEFAULT_BALANCING_TIMEOUT_S)
        self.max_board_temp_c = np.full(slaves, DEFAULT_MAX_BOARD_TEMP_C)
        self.rejected_frames = np.zeros(slaves, dtype=np.int64)
        self._enabled = np.zeros(slaves, dtype=bool)
        self._command_s = np.full(slaves, -np.inf)
        self._commanded_bits = np.zeros(slaves)  # the raw mask each slave last received
        self._off = [_Bits(_all_off(cells)) for cells in self.cells]
        self._mask = list(self._off)  # as commanded
        self._applied = list(self._off)  # as applied
        self._open_wire = list(self._off)  # the last open-wire test's result
        self._reports: list[list[SlaveReport]] = [[] for _ in range(slaves)]
        self._string_reports: StringReports | None = None  # every slave's, made together
        self._everyone = np.ones(slaves, dtype=bool)
        self._everyone.flags.writeable = False
        sensors = [fe.sensor_cells.size for fe in front_ends]
        self.layout = layout = ReportLayout(self.cells, sensors)
        # each slave's sensors: where they start and end along the string
        self._sensor_span = (layout.first_sensor, layout.first_sensor + np.array(layout.sensors))
        self._commands = BalancingCommands(layout)
        self._trigger = trigger_codec()
        self._config = [m.config for m in layout.messages]
        self._config_signals = [
            (m.signal("Cfg", "BalancingTimeout"), m.signal("Cfg", "MaxBoardTemp"))
            for m in layout.messages
        ]
        self._kind_of = [  # per slave: the frames addressed to it (others pass by)
            {self._trigger.frame_id: TRIGGER, m.balancing.frame_id: BALANCING,
             m.config.frame_id: CONFIG}
            for m in layout.messages
        ]  # fmt: skip

    def accepted_ids(self, slave: int) -> frozenset[int]:
        """The identifiers of the frames addressed to ``slave`` (its acceptance filter)."""
        return frozenset(self._kind_of[slave])

    def tick(
        self, now_s: float, running: Sequence[int] | None = None, bank: FrontEndBank | None = None
    ) -> None:
        """Every running slave (default: all) handles the frames that reached it, then keeps
        its bleeders within their limits (through ``bank`` when every slave runs).

        A slave's balancing command and configuration act on its bleeders at the end of the
        tick, and its reports carry the bleeders as they were before it; so each slave's
        commands, configurations and triggers are taken kind by kind, each kind in arrival
        order, as one slave handling them frame by frame would leave them."""
        slaves = range(len(self.front_ends)) if running is None else list(running)
        triggers: list[tuple[int, bool]] = []  # (slave, open-wire test asked)
        commands: list[tuple[int, bytes]] = []
        for slave in slaves:
            kind_of = self._kind_of[slave]
            for frame in self.inboxes[slave].receive():
                kind = kind_of.get(frame.frame_id)
                if kind == TRIGGER:
                    self._take_trigger(slave, frame, triggers)
                elif kind == BALANCING:
                    commands.append((slave, frame.data))
                elif kind == CONFIG:
                    self._configure(slave, frame)
        if commands:
            self._command(now_s, commands)
        every = len(slaves) == len(self.cells)
        if not (every and bank is not None and self._report_together(now_s, triggers, bank)):
            for slave, open_wire_test in triggers:
                self._report(now_s, slave, open_wire_test)
        self._apply_balancing(now_s, slaves, bank if every else None)

    def _take_trigger(self, slave: int, frame: Frame, triggers: list[tuple[int, bool]]) -> None:
        try:  # one broadcast frame, decoded once for all slaves
            decoded = self._trigger._decode_shared(frame.data)
        except FrameError:
            decoded = None
        if decoded is None or not decoded.crc_ok:
            self.rejected_frames[slave] += 1
            return
        triggers.append((slave, bool(decoded.values["Trigger_OpenWire"])))

    def _configure(self, slave: int, frame: Frame) -> None:
        try:
            values = self._config[slave].decode_checked(frame.data).values
        except FrameError:
            self.rejected_frames[slave] += 1
            return
        timeout, max_temp = self._config_signals[slave]
        self.balancing_timeout_s[slave] = float(values[timeout])
        self.max_board_temp_c[slave] = float(values[max_temp])

    def _command(self, now_s: float, commands: list[tuple[int, bytes]]) -> None:
        """The balancing commands that arrived, decoded at once; each slave keeps its last
        good one."""
        framed = [(slave, data) for slave, data in commands if len(data) == 8]
        for slave, data in commands:
            if len(data) != 8:
                self.rejected_frames[slave] += 1
        if not framed:
            return
        senders = np.array([slave for slave, _ in framed])
        payload = np.frombuffer(b"".join([data for _, data in framed]), dtype=np.uint8)
        usable, enabled, bits = self._commands.decode(senders, payload.reshape(-1, 8))
        if not usable.all():
            np.add.at(self.rejected_frames, senders[~usable], 1)
        for slave, on, raw in zip(senders[usable].tolist(), enabled[usable].tolist(),
                                  bits[usable].tolist(), strict=True):  # fmt: skip
            self._enabled[slave] = on
            if raw != self._commanded_bits[slave]:  # a new mask (the same one most cycles)
                self._commanded_bits[slave] = raw
                self._mask[slave] = _Bits(bits_to_mask(raw, self.cells[slave]))
            self._command_s[slave] = now_s

    def _apply_balancing(
        self, now_s: float, slaves: Sequence[int], bank: FrontEndBank | None
    ) -> None:
        """Each slave's bleeders on as commanded while its commands are fresh and its board
        cool enough, else off (all of them through ``bank`` where given)."""
        if not len(slaves):
            return
        rows = np.asarray(slaves)
        front_ends = self.front_ends
        board_c = np.array([front_ends[slave].board_temp_c for slave in slaves])
        fresh = now_s - self._command_s[rows] <= self.balancing_timeout_s[rows]
        on = self._enabled[rows] & fresh & (board_c < self.max_board_temp_c[rows])
        for slave, bleed in zip(slaves, on.tolist(), strict=True):
            self._applied[slave] = self._mask[slave] if bleed else self._off[slave]
        if bank is not None:
            bank.set_balancing([applied.mask for applied in self._applied])
            return
        for slave in slaves:
            front_ends[slave].set_balancing(self._applied[slave].mask)

    def take_reports(self) -> list[StringReports]:
        """The reports made since the last call (one per trigger), to go on the wire: round
        by round, each slave's first report in the first, its second (if it made one) in the
        second, and so on."""
        together = [] if self._string_reports is None else [self._string_reports]
        made, self._reports = self._reports, [[] for _ in self.front_ends]
        self._string_reports = None
        return together + [
            StringReports.join(self.layout, [own[round_] if round_ < len(own) else None
                                             for own in made])
            for round_ in range(max(len(own) for own in made))
        ]  # fmt: skip

    def _report_together(
        self, now_s: float, triggers: list[tuple[int, bool]], bank: FrontEndBank
    ) -> bool:
        """Every slave's report of one trigger each, from the string's conversion made
        together (each slave as ``_report`` would make it); False, nothing done, where the
        slaves were not triggered alike or did not convert together."""
        if len(triggers) != len(self.cells) or any(
            slave != index or test != triggers[0][1] for index, (slave, test) in enumerate(triggers)
        ):
            return False
        if self._string_reports is not None or any(self._reports):
            return False  # reports not yet taken: the next ones follow them one by one
        conversion = bank.take_conversion(now_s)
        if conversion is None:
            return False
        front_ends = self.front_ends
        if triggers[0][1]:
            for slave, fe in enumerate(front_ends):
                self._take_open_wires(now_s, slave, fe)
        counted = np.concatenate(([0], np.cumsum(conversion.open_circuit
                                                  | conversion.short_circuit)))  # fmt: skip
        starts, ends = self._sensor_span
        flagged = (counted[ends] > counted[starts]).tolist()  # a sensor of the slave at a rail
        status = np.array([self._status(slave, flag) for slave, flag in enumerate(flagged)],
                          dtype=np.float64)  # fmt: skip
        self._string_reports = StringReports(
            conversion.voltage_v, conversion.temp_c, conversion.open_circuit,
            conversion.short_circuit, status, self._everyone,
        )  # fmt: skip
        return True

    def _take_open_wires(self, now_s: float, slave: int, fe: SlaveFrontEnd) -> None:
        """The slave's open-wire test; the same read-only array as last time needs no new
        bits."""
        flags = fe.open_wire_check(now_s)
        if flags is not self._open_wire[slave].mask or flags.flags.writeable:
            self._open_wire[slave] = _Bits(flags)

    def _report(self, now_s: float, slave: int, open_wire_test: bool) -> None:
        fe = self.front_ends[slave]
        voltages = fe.sample_voltages(now_s)
        temps = fe.sample_temperatures(now_s)
        if open_wire_test:
            self._take_open_wires(now_s, slave, fe)
        flagged = bool(np.count_nonzero(temps.open_circuit | temps.short_circuit))
        self._reports[slave].append(SlaveReport(
            voltages.cell_voltage_v, temps.temp_c, temps.open_circuit, temps.short_circuit,
            *self._status(slave, flagged),
        ))  # fmt: skip

    def _status(self, slave: int, sensor_at_rail: bool) -> tuple:
        """What the slave's status frame says now (``SlaveReport``'s fields from ``state``
        on): a fault where a sense wire is open or a sensor reads at a rail, else balancing or
        normal; the bleed duty in fifteenths while it bleeds."""
        fe = self.front_ends[slave]
        bleeding, open_wire = self._applied[slave], self._open_wire[slave]
        duty = round(fe.balancing_duty() * DUTY_STEPS) / DUTY_STEPS if bleeding.any else 0.0
        state = SlaveState.BALANCING if bleeding.any else SlaveState.NORMAL
        if open_wire.any or sensor_at_rail:
            state = SlaveState.FAULT
        return state, open_wire.bits, bleeding.bits, float(fe.board_temp_c), duty


def _all_off(cells: int) -> np.ndarray:
    off = np.zeros(cells, dtype=bool)
    off.flags.writeable = False  # shared: every "all off" of a slave is this one
    return off


class _Bits:
    """A mask of a slave's cells with its bits (``mask_to_bits``) and whether any is set,
    worked out once."""

    __slots__ = ("any", "bits", "mask")

    def __init__(self, mask: np.ndarray) -> None:
        self.mask = mask
        self.bits = mask_to_bits(mask)
        # where the bits stand for every element, "any set" is "some bit set"
        exact = mask.dtype == np.bool_ and mask.ndim == 1 and mask.size < 63
        self.any = self.bits != 0 if exact else bool(mask.any())
