"""The system bus between string masters and the system master (``dbc/system.dbc``).

String ``k`` (0-based) reports on five identifiers of its own (``StringStatus_S{k+1:02d}``,
``StringMeasure``, ``StringLimits``, ``StringCells``, ``StringAlarms``); the system master
answers each string with its ``SystemCommand``. Every frame carries an alive counter and a
CRC (see docs/can-system.md). This module holds both ends' encoding and decoding.
"""

from __future__ import annotations

from cellwarden.bms.alarms import from_mask, to_mask
from cellwarden.bms.system_state import StringCommand, StringReport
from cellwarden.comms.can_bus import Frame, FramePort
from cellwarden.comms.codec import FrameCodec, FrameError, bus_codec
from cellwarden.comms.e2e import AliveCheck, AliveCounters

MAX_STRINGS = 16
REPORTS = ("StringStatus", "StringMeasure", "StringLimits", "StringCells", "StringAlarms")
PATH_LABELS = {"standby": "Standby", "precharge": "Precharge", "normal": "Normal",
               "opening": "Opening", "fault": "Fault"}  # fmt: skip


class StringMessages:
    """The codecs and signal prefixes of one string's identifiers."""

    def __init__(self, index: int) -> None:
        if not 0 <= index < MAX_STRINGS:
            raise ValueError(f"string {index} is outside the allowed range 0..{MAX_STRINGS - 1}")
        codec = bus_codec("system")
        tag = f"S{index + 1:02d}"
        self.index = index
        self.reports: dict[str, FrameCodec] = {name: codec[f"{name}_{tag}"] for name in REPORTS}
        self.command = codec[f"SystemCommand_{tag}"]
        self.prefix = {
            "StringStatus": f"SS{tag}_",
            "StringMeasure": f"SM{tag}_",
            "StringLimits": f"SL{tag}_",
            "StringCells": f"SC{tag}_",
            "StringAlarms": f"SA{tag}_",
            "SystemCommand": f"SY{tag}_",
        }

    def encode_report(self, report: StringReport, master_lost: bool) -> dict[str, dict]:
        """Each report message's physical values (unprefixed names)."""
        return {
            "StringStatus": {
                "State": PATH_LABELS.get(report.path_state, "Fault"),
                "Connected": int(report.connected),
                "Fault": int(report.fault),
                "ChargeAllowed": int(report.charge_allowed),
                "DischargeAllowed": int(report.discharge_allowed),
                "MasterLost": int(master_lost),
                "PackVoltage": report.pack_voltage_v,
                "LinkVoltage": report.link_voltage_v,
            },
            "StringMeasure": {
                "Current": report.current_a,
                "Soc": report.soc_pct,
                "Soh": report.soh_pct,
                "BalancingCells": report.balancing_cells,
            },
            "StringLimits": {
                "ChargeCurrent": report.charge_current_limit_a,
                "DischargeCurrent": report.discharge_current_limit_a,
                "ChargeVoltage": report.charge_voltage_limit_v,
            },
            "StringCells": {
                "CellVoltageMin": report.cell_voltage_min_v,
                "CellVoltageMax": report.cell_voltage_max_v,
                "TempMin": report.temp_min_c,
                "TempMax": report.temp_max_c,
            },
            "StringAlarms": {
                "Alarms": to_mask(report.alarms),
                "Warnings": to_mask(report.warnings),
                "WorstCode": report.worst_code,
            },
        }

    def frame(self, name: str, values: dict, alive: AliveCounters, now_s: float) -> Frame:
        codec = self.command if name == "SystemCommand" else self.reports[name]
        prefix = self.prefix[name]
        data = codec.encode({prefix + k: v for k, v in values.items()}, alive.next(codec.frame_id))
        return Frame(now_s, codec.frame_id, data, codec.extended)


class SystemBusMaster:
    """The system master's end: string reports in, commands out."""

    def __init__(self, port: FramePort, strings: int) -> None:
        self.port = port
        self.strings = [StringMessages(index) for index in range(strings)]
        self._by_id: dict[int, tuple[int, str, FrameCodec]] = {}
        for messages in self.strings:
            for name, codec in messages.reports.items():
                self._by_id[codec.frame_id] = (messages.index, name, codec)
        self._checks = {frame_id: AliveCheck() for frame_id in self._by_id}
        self._parts: list[dict[str, tuple[float, dict]]] = [{} for _ in range(strings)]
        self._alive = AliveCounters()
        self.decode_errors = 0
        self.masters_lost = [False] * strings  # what each string says of the system master

    def receive(self) -> None:
        """Take in every frame that arrived."""
        for frame in self.port.receive():
            entry = self._by_id.get(frame.frame_id)
            if entry is None or frame.extended:
                continue
            index, name, codec = entry
            try:
                decoded = codec.decode_checked(frame.data, self._checks[frame.frame_id])
            except FrameError:
                self.decode_errors += 1
                continue
            prefix = len(self.strings[index].prefix[name])
            values = {key[prefix:]: value for key, value in decoded.values.items()}
            self._parts[index][name] = (frame.time_s, values)

    def report(self, index: int) -> StringReport | None:
        """The string's latest complete report (None until every message came once); its
        time is that of its oldest part."""
        parts = self._parts[index]
        if len(parts) < len(REPORTS):
            return None
        status, measure, limits = (parts[n][1] for n in REPORTS[:3])
        cells, alarms = parts["StringCells"][1], parts["StringAlarms"][1]
        self.masters_lost[index] = bool(status["MasterLost"])
        return StringReport(
            index=index,
            time_s=min(time_s for time_s, _ in parts.values()),
            path_state=str(status["State"]).lower(),
            connected=bool(status["Connected"]),
            fault=bool(status["Fault"]),
            charge_allowed=bool(status["ChargeAllowed"]),
            discharge_allowed=bool(status["DischargeAllowed"]),
            pack_voltage_v=float(status["PackVoltage"]),
            link_voltage_v=float(status["LinkVoltage"]),
            current_a=float(measure["Current"]),
            soc_pct=float(measure["Soc"]),
            soh_pct=float(measure["Soh"]),
            charge_current_limit_a=float(limits["ChargeCurrent"]),
            discharge_current_limit_a=float(limits["DischargeCurrent"]),
            charge_voltage_limit_v=float(limits["ChargeVoltage"]),
            cell_voltage_min_v=float(cells["CellVoltageMin"]),
            cell_voltage_max_v=float(cells["CellVoltageMax"]),
            temp_min_c=float(cells["TempMin"]),
            temp_max_c=float(cells["TempMax"]),
            alarms=from_mask(int(alarms["Alarms"])),
            warnings=from_mask(int(alarms["Warnings"])),
            worst_code=int(alarms["WorstCode"]),
            balancing_cells=int(measure["BalancingCells"]),
        )

    def send(self, now_s: float, commands: list[StringCommand]) -> None:
        """One command frame per string."""
        for messages, command in zip(self.strings, commands, strict=True):
            values = {
                "Connect": int(command.connect),
                "ChargeAllowed": int(command.charge_allowed),
                "DischargeAllowed": int(command.discharge_allowed),
                "ChargeCurrent": command.charge_current_a,
                "DischargeCurrent": command.discharge_current_a,
            }
            self.port.send(messages.frame("SystemCommand", values, self._alive, now_s))
