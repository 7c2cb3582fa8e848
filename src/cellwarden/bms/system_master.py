"""The system master: coordinates the string masters of a multi-master system.

Each step takes the strings' latest reports and returns one command per string and the
system's published state. Parallel and distributed strings join the live DC bus one by one,
each only within ``connect_window_pct`` of the bus voltage; a string that faults or falls
silent is isolated and the system carries on with the rest, its limits recomputed from how
current really shares between the strings left (by impedance: the weakest bounds the system).
A recovered string rejoins after ``rejoin_delay_s`` once its voltage matches the bus. Series
strings run only all together. See docs/system-master.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.bms.alarms import Alarm
from cellwarden.bms.event_log import BmsEventLog
from cellwarden.bms.system_state import (
    StringCommand,
    StringReport,
    StringStatus,
    StringView,
    SystemRating,
    SystemState,
)
from cellwarden.model.architecture import Topology
from cellwarden.model.system import StringSpec
from cellwarden.model.system_master import SystemMasterSettings

Reports = list[StringReport | None]  # one entry per string; None: no fresh report

SHARE_MARGIN = 0.95  # system limits keep this share of what the weakest string allows
SHARE_SMOOTHING = 0.2  # weight of each new measured current share
SHARE_MIN_CURRENT_C = 0.05  # current shares are measured above this system C-rate


@dataclass(frozen=True)
class StringInfo:
    """What the system master is told about each string by configuration."""

    name: str
    modules: int
    nominal_voltage_v: float
    capacity_ah: float
    resistance_ohm: float  # cells, power path and cable at 50 % SoC and 25 °C

    @classmethod
    def of(cls, string: StringSpec, group_r0_ohm: float) -> StringInfo:
        """A configured string; ``group_r0_ohm``: one series group's R0 at 50 % and 25 °C."""
        return cls(
            name=string.name or "string",
            modules=max(string.slaves, 1),
            nominal_voltage_v=string.pack.nominal_voltage_v,
            capacity_ah=string.pack.capacity_ah,
            resistance_ohm=string.pack.series * group_r0_ohm
            + string.power_path.closed_resistance_ohm
            + string.cable_resistance_ohm,
        )


class SystemMaster:
    """Coordinates strings; call ``step`` once per bus cycle."""

    def __init__(
        self,
        rating: SystemRating,
        strings: list[StringInfo],
        topology: Topology,
        settings: SystemMasterSettings,
        log: BmsEventLog | None = None,
    ) -> None:
        self.rating = rating
        self.info = strings
        self.topology = topology
        self.settings = settings
        self.log = log or BmsEventLog()
        n = len(strings)
        conductance = [1.0 / s.resistance_ohm for s in strings]
        self._nominal_conductance = conductance
        self._measured_share: list[float | None] = [None] * n
        self._connect = [False] * n
        self._healthy_since: list[float | None] = [None] * n
        self._was_isolated = [False] * n
        self._disabled = [False] * n
        self._waiting_logged = [False] * n
        self._status = [StringStatus.DISCONNECTED] * n
        self._reason = [""] * n
        self._stack_on = False  # series: the whole stack is commanded on
        self.wanted_on = True  # the operator's (or Modbus client's) request
        self.inverter_lost = False

    # --- SystemControl --------------------------------------------------------------------
    def request_connected(self, connected: bool) -> None:
        self.wanted_on = connected

    def request_string_enabled(self, index: int, enabled: bool) -> None:
        if not 0 <= index < len(self.info):
            raise ValueError(f"string {index} is outside the allowed range 0..{len(self.info) - 1}")
        self._disabled[index] = not enabled

    @property
    def stopping(self) -> bool:
        """The system is being taken off its bus: by request, or without its inverter."""
        inverter_gone = self.inverter_lost and self.settings.inverter_loss_action == "open"
        return not self.wanted_on or inverter_gone

    # --- the step -------------------------------------------------------------------------
    def step(
        self, now_s: float, reports: list[StringReport | None]
    ) -> tuple[list[StringCommand], SystemState]:
        fresh = [self._fresh(now_s, report) for report in reports]
        healthy = [self._judge(now_s, i, report) for i, report in enumerate(fresh)]
        live = [i for i, r in enumerate(fresh) if r is not None and r.connected and healthy[i]]
        if self.stopping:
            self._connect = [False] * len(reports)
        elif self.topology is Topology.SERIES:
            self._connect_series(now_s, healthy)
        else:
            self._connect_parallel(now_s, fresh, healthy, live)
        for i, report in enumerate(fresh):
            if self._status[i] not in (StringStatus.ISOLATED, StringStatus.DISABLED):
                self._status[i] = _status_of(report, self._connect[i])
        shares = self._shares(fresh, live)
        state = self._state(now_s, fresh, healthy, live, shares)
        commands = [
            StringCommand(
                connect=self._connect[i],
                charge_allowed=state.charge_allowed and i in live,
                discharge_allowed=state.discharge_allowed and i in live,
                charge_current_a=shares[i] * state.charge_current_limit_a,
                discharge_current_a=shares[i] * state.discharge_current_limit_a,
            )
            for i in range(len(reports))
        ]
        return commands, state

    def _fresh(self, now_s: float, report: StringReport | None) -> StringReport | None:
        if report is None or now_s - report.time_s > self.settings.string_timeout_s:
            return None
        return report

    def _judge(self, now_s: float, index: int, report: StringReport | None) -> bool:
        """Whether the string may be on the bus; isolates a silent or faulted one."""
        name = self.info[index].name
        if self._disabled[index]:
            self._set(index, StringStatus.DISABLED, "taken out of service")
            return False
        problem = "silent" if report is None else "faulted" if report.fault else ""
        if problem:
            if self._status[index] is not StringStatus.ISOLATED:
                self.log.info(now_s, "SYS", f"string {name} {problem}: isolated")
            self._set(index, StringStatus.ISOLATED, problem)
            self._healthy_since[index] = None
            self._was_isolated[index] = True
            return False
        if self._healthy_since[index] is None:
            self._healthy_since[index] = now_s
        if self._status[index] in (StringStatus.ISOLATED, StringStatus.DISABLED):
            settled = now_s - self._healthy_since[index] >= self.settings.rejoin_delay_s
            if self._was_isolated[index] and not settled:
                return False
            self.log.info(now_s, "SYS", f"string {name} healthy again: may rejoin")
            self._set(index, StringStatus.DISCONNECTED, "")
        return True

    def _set(self, index: int, status: StringStatus, reason: str) -> None:
        self._status[index] = status
        self._reason[index] = reason
        if status in (StringStatus.ISOLATED, StringStatus.DISABLED):
            self._connect[index] = False

    def _connect_series(self, now_s: float, healthy: list[bool]) -> None:
        """A stack runs only whole."""
        whole = all(healthy)
        if whole != self._stack_on:
            what = "connects" if whole else "leaves the bus: a string is not healthy"
            self.log.info(now_s, "SYS", f"the series stack {what}")
        self._stack_on = whole
        self._connect = [whole] * len(healthy)

    def _window_v(self, index: int) -> float:
        return self.settings.connect_window_pct / 100.0 * self.info[index].nominal_voltage_v

    def _connect_parallel(
        self, now_s: float, reports: Reports, healthy: list[bool], live: list[int]
    ) -> None:
        candidates = [i for i, ok in enumerate(healthy) if ok]
        for i, ok in enumerate(healthy):
            if not ok:
                self._connect[i] = False
        if live:
            bus_v = sum(reports[i].link_voltage_v for i in live) / len(live)
            for i in candidates:
                if self._connect[i]:
                    continue
                gap_v = reports[i].pack_voltage_v - bus_v
                if abs(gap_v) <= self._window_v(i):
                    self._connect[i] = True
                    self._waiting_logged[i] = False
                    self.log.info(now_s, "SYS", f"string {self.info[i].name} joins the bus",
                                  gap_v=gap_v)  # fmt: skip
                else:
                    self._reason[i] = f"{gap_v:+.1f} V from the bus"
                    if not self._waiting_logged[i]:
                        self._waiting_logged[i] = True
                        self.log.info(
                            now_s, "JOIN_REFUSED",
                            f"string {self.info[i].name} kept off the bus: {gap_v:+.1f} V from "
                            f"it, window {self._window_v(i):.1f} V", gap_v=gap_v,
                        )  # fmt: skip
            return
        if any(self._connect[i] for i in candidates):
            return  # the first group is still precharging onto the dead bus
        group = self._first_group(reports, candidates)
        for i in group:
            self._connect[i] = True
            self.log.info(now_s, "SYS", f"string {self.info[i].name} connects to the dead bus")

    def _first_group(self, reports: Reports, candidates: list[int]) -> list[int]:
        """The largest set of strings within each other's window, by charging priority."""
        if self.settings.charge_priority == "lowest-voltage":
            order = sorted(candidates, key=lambda i: reports[i].pack_voltage_v)
        else:
            order = list(candidates)
        best: list[int] = []
        for lead in order:
            lead_v = reports[lead].pack_voltage_v
            group = [
                i for i in order if abs(reports[i].pack_voltage_v - lead_v) <= self._window_v(i)
            ]
            if len(group) > len(best):
                best = group
        return best

    # --- limits ---------------------------------------------------------------------------
    def _shares(self, reports: Reports, live: list[int]) -> list[float]:
        """Each string's share of the system current: measured where the current is large
        enough, never below its share by nominal impedance (the cautious of the two)."""
        shares = [0.0] * len(reports)
        if not live:
            return shares
        if self.topology is Topology.SERIES:
            return [1.0 if i in live else 0.0 for i in range(len(reports))]
        total_g = sum(self._nominal_conductance[i] for i in live)
        total_a = sum(reports[i].current_a for i in live)
        capacity_ah = sum(self.info[i].capacity_ah for i in live)
        measurable = abs(total_a) > SHARE_MIN_CURRENT_C * capacity_ah and len(live) > 1
        for i in range(len(reports)):
            if i not in live:
                self._measured_share[i] = None
                continue
            nominal = self._nominal_conductance[i] / total_g
            if measurable:
                observed = reports[i].current_a / total_a
                last = self._measured_share[i]
                self._measured_share[i] = (
                    observed if last is None else last + SHARE_SMOOTHING * (observed - last)
                )
            measured = self._measured_share[i]
            shares[i] = max(nominal, measured if measured is not None else 0.0)
        return shares

    def _limits(
        self, reports: Reports, live: list[int], shares: list[float]
    ) -> tuple[float, float, float]:
        """(charge A, discharge A, charge V) for the bus."""
        if not live:
            return 0.0, 0.0, self._fallback_charge_voltage(reports)
        if self.topology is Topology.SERIES:
            headroom_v = min(
                reports[i].charge_voltage_limit_v - reports[i].pack_voltage_v for i in live
            )
            bus_v = sum(reports[i].pack_voltage_v for i in live)
            return (
                min(reports[i].charge_current_limit_a for i in live),
                min(reports[i].discharge_current_limit_a for i in live),
                min(bus_v + headroom_v, self.rating.max_voltage_v),
            )
        charge_a = min(reports[i].charge_current_limit_a / shares[i] for i in live)
        discharge_a = min(reports[i].discharge_current_limit_a / shares[i] for i in live)
        margin = SHARE_MARGIN if len(live) > 1 else 1.0  # one string carries it all, exactly
        return (
            margin * charge_a,
            margin * discharge_a,
            min(reports[i].charge_voltage_limit_v for i in live),
        )

    def _fallback_charge_voltage(self, reports: Reports) -> float:
        """A charge voltage limit with no string on the bus: never 0."""
        known = [r.charge_voltage_limit_v for r in reports if r is not None]
        if known and self.topology is not Topology.SERIES:
            return min(known)
        return self.rating.max_voltage_v

    # --- the published state -----------------------------------------------------------------
    def _state(
        self,
        now_s: float,
        reports: Reports,
        healthy: list[bool],
        live: list[int],
        shares: list[float],
    ) -> SystemState:
        heard = [r for r in reports if r is not None]
        on_bus = [reports[i] for i in live]
        charge_a, discharge_a, charge_v = self._limits(reports, live, shares)
        if self.stopping:  # ramp the load down before the contactors open
            charge_a = discharge_a = 0.0
        series = self.topology is Topology.SERIES
        if on_bus:
            voltage_v = (
                sum(r.pack_voltage_v for r in on_bus)
                if series
                else sum(r.link_voltage_v for r in on_bus) / len(on_bus)
            )
            current_a = on_bus[0].current_a if series else sum(r.current_a for r in on_bus)
        else:
            voltage_v = max((r.link_voltage_v for r in heard), default=0.0)
            current_a = 0.0
        usable = [i for i, ok in enumerate(healthy) if ok and reports[i] is not None]
        weights = {i: self.info[i].capacity_ah * reports[i].soh_pct / 100.0 for i in usable}
        total_w = sum(weights.values())
        if series:
            soc = min((reports[i].soc_pct for i in usable), default=0.0)
        else:
            soc = sum(weights[i] * reports[i].soc_pct for i in usable) / total_w if total_w else 0.0
        soh_w = sum(self.info[i].capacity_ah for i in usable)
        soh = (
            sum(self.info[i].capacity_ah * reports[i].soh_pct for i in usable) / soh_w
            if soh_w
            else 0.0
        )
        connected_ah = [weights[i] for i in live if i in weights]
        capacity_ah = (min(connected_ah) if series else sum(connected_ah)) if connected_ah else 0.0
        alarms, warnings = self._alarms(reports, live)
        views = tuple(
            StringView(
                index=i,
                name=info.name,
                modules=info.modules,
                status=self._status[i],
                report=reports[i],
                connect_commanded=self._connect[i],
                current_share=shares[i],
                reason=self._reason[i],
            )
            for i, info in enumerate(self.info)
        )
        return SystemState(
            time_s=now_s,
            voltage_v=voltage_v,
            current_a=current_a,
            soc_pct=soc,
            soh_pct=soh,
            capacity_ah=capacity_ah,
            charge_voltage_limit_v=charge_v,
            discharge_voltage_limit_v=self.rating.min_voltage_v,
            charge_current_limit_a=max(charge_a, 0.0),
            discharge_current_limit_a=max(discharge_a, 0.0),
            cell_voltage_min_v=min((r.cell_voltage_min_v for r in heard), default=0.0),
            cell_voltage_max_v=max((r.cell_voltage_max_v for r in heard), default=0.0),
            temp_min_c=min((r.temp_min_c for r in heard), default=0.0),
            temp_max_c=max((r.temp_max_c for r in heard), default=0.0),
            strings_connected=len(live),
            charge_allowed=bool(live) and charge_a > 0.0,
            discharge_allowed=bool(live) and discharge_a > 0.0,
            alarms=alarms,
            warnings=warnings,
            strings=views,
        )

    def _alarms(
        self, reports: Reports, live: list[int]
    ) -> tuple[frozenset[Alarm], frozenset[Alarm]]:
        """Alarms of the strings on the bus; an isolated string's trouble is a warning while
        the rest carry on, and an alarm once none is left."""
        alarms: set[Alarm] = set()
        warnings: set[Alarm] = set()
        for i, report in enumerate(reports):
            if report is None:
                (warnings if live else alarms).add(Alarm.COMMUNICATION)
                continue
            warnings |= report.warnings
            if i in live or not live:
                alarms |= report.alarms
            else:
                warnings |= report.alarms
        return frozenset(alarms), frozenset(warnings)


def _status_of(report: StringReport | None, commanded: bool) -> StringStatus:
    if report is not None and report.connected:
        return StringStatus.CONNECTED
    return StringStatus.CONNECTING if commanded else StringStatus.DISCONNECTED
