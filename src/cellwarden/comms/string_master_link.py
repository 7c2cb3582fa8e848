"""A string master's end of the system bus: it reports its string and obeys the system master.

The string joins the DC bus only when the system master asks. Without a valid command for
``command_timeout_s`` the system master counts as lost, and the string falls back to its own
protection: ``open`` takes it off the bus, ``hold`` keeps it as it is (a connected string stays
on, an open one never joins on its own).
"""

from __future__ import annotations

from typing import Literal

from cellwarden.bms.alarms import classify, worst_code
from cellwarden.bms.power_path import PathState
from cellwarden.bms.string_bms import StringBms
from cellwarden.bms.system_state import StringCommand, StringReport
from cellwarden.comms.can_bus import Frame, FramePort
from cellwarden.comms.codec import FrameError
from cellwarden.comms.e2e import AliveCheck, AliveCounters
from cellwarden.comms.system_bus import REPORTS, StringMessages


class StringMasterLink:
    """Call ``tick`` once per bus cycle, after the string's main task."""

    def __init__(
        self,
        port: FramePort,
        index: int,
        bms: StringBms,
        command_timeout_s: float,
        loss_action: Literal["open", "hold"],
    ) -> None:
        self.port = port
        self.index = index
        self.bms = bms
        self.command_timeout_s = command_timeout_s
        self.loss_action = loss_action
        self.messages = StringMessages(index)
        self.command: StringCommand | None = None
        self.decode_errors = 0
        self.silent = False  # fault injection: the string master stops sending
        self._alive = AliveCounters()
        self._command_check = AliveCheck()
        self._command_seen_s: float | None = None
        self._master_lost = False
        bms.wanted_on = False  # nothing joins the bus before the system master says so

    @property
    def master_lost(self) -> bool:
        return self._master_lost

    def tick(self, now_s: float) -> None:
        for frame in self.port.receive():
            self._read(now_s, frame)
        self._follow(now_s)
        state = self.bms.state
        if state is None or self.silent:
            return
        values = self.messages.encode_report(
            string_report(self.bms, self.index, now_s), self._master_lost
        )
        for name in REPORTS:
            self.port.send(self.messages.frame(name, values[name], self._alive, now_s))

    def _read(self, now_s: float, frame: Frame) -> None:
        codec = self.messages.command
        if frame.frame_id != codec.frame_id or frame.extended:
            return
        try:
            values = codec.decode_checked(frame.data, self._command_check).values
        except FrameError:
            self.decode_errors += 1
            return
        prefix = self.messages.prefix["SystemCommand"]
        self.command = StringCommand(
            connect=bool(values[prefix + "Connect"]),
            charge_allowed=bool(values[prefix + "ChargeAllowed"]),
            discharge_allowed=bool(values[prefix + "DischargeAllowed"]),
            charge_current_a=float(values[prefix + "ChargeCurrent"]),
            discharge_current_a=float(values[prefix + "DischargeCurrent"]),
        )
        self._command_seen_s = now_s

    def _follow(self, now_s: float) -> None:
        """The connect request: the system master's, or the fallback without it."""
        bms = self.bms
        fresh = (
            self._command_seen_s is not None
            and now_s - self._command_seen_s <= self.command_timeout_s
        )
        lost = self._command_seen_s is not None and not fresh
        if lost != self._master_lost:
            self._master_lost = lost
            what = "lost: falling back to " + self.loss_action if lost else "heard again"
            bms.log.info(now_s, "SYS", f"system master {what}")
        if fresh and self.command is not None:
            bms.wanted_on = self.command.connect
        elif lost:
            on_bus = bms.path.state in (PathState.NORMAL, PathState.PRECHARGE)
            bms.wanted_on = self.loss_action == "hold" and on_bus and bms.wanted_on


def string_report(bms: StringBms, index: int, now_s: float) -> StringReport:
    """What a string master reports of its string now (its BMS has run a main task); the
    voltages are the BMS's last HV sample, so reporting never draws a measurement of its own."""
    state = bms.state
    assert state is not None
    status = bms.protection.status()
    rules = bms.protection.rules
    alarms, warnings = classify(state.active_codes, rules)
    return StringReport(
        index=index,
        time_s=now_s,
        path_state=bms.path.state.value,
        connected=bms.path.state is PathState.NORMAL,
        fault=status.open_all or bms.path.precharge_failed or bms.path.welded,
        charge_allowed=status.charge_allowed,
        discharge_allowed=status.discharge_allowed,
        pack_voltage_v=bms.pack_voltage_v,
        link_voltage_v=bms.link_voltage_v,
        current_a=bms.current_a,
        soc_pct=state.soc_pct,
        soh_pct=state.capacity_soh_pct,
        charge_current_limit_a=state.limits.charge_current_a,
        discharge_current_limit_a=state.limits.discharge_current_a,
        charge_voltage_limit_v=state.limits.charge_voltage_v,
        cell_voltage_min_v=state.cell_voltage_min_v,
        cell_voltage_max_v=state.cell_voltage_max_v,
        temp_min_c=state.temp_min_c,
        temp_max_c=state.temp_max_c,
        alarms=alarms,
        warnings=warnings,
        worst_code=worst_code(state.active_codes, rules),
        balancing_cells=state.balancing_cells,
    )
