"""The BMS side of the external CAN to a vehicle controller or inverter (``dbc/external.dbc``).

Every frame is E2E-protected (alive counter and CRC, filled by the codec). The BMS sends its
state, pack measurements, limits, cell extremes and alarms every 100 ms and its state of charge
and health every second (the cycles are the DBC's ``GenMsgCycleTime``); the vehicle sends
``VCU_Command`` with its connect request every 100 ms. See docs/can-external.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from cellwarden.bms.alarms import WARNING_ACTIONS, Alarm, alarm_of, worst_code
from cellwarden.bms.protection import Action, Rule
from cellwarden.comms.can_bus import Frame, FramePort, due
from cellwarden.comms.codec import BusCodec, FrameError, bus_codec
from cellwarden.comms.e2e import AliveCheck, AliveCounters

if TYPE_CHECKING:
    from cellwarden.bms.string_bms import BmsState

STATE = "BMS_State"
PACK = "BMS_Pack"
CURRENT_LIMITS = "BMS_CurrentLimits"
VOLTAGE_LIMITS = "BMS_VoltageLimits"
CELL_EXTREMES = "BMS_CellExtremes"
ALARMS = "BMS_Alarms"
SOC = "BMS_Soc"
HEALTH = "BMS_Health"
COMMAND = "VCU_Command"
BMS_FRAMES = (STATE, PACK, CURRENT_LIMITS, VOLTAGE_LIMITS, CELL_EXTREMES, ALARMS, SOC, HEALTH)
VEHICLE_TIMEOUT_S = 0.5  # the BMS counts the vehicle silent after this long without a command
BMS_TIMEOUT_S = 0.5  # the vehicle falls back to zero limits after this long without BMS frames

ALARM_KINDS = ("OverVoltage", "UnderVoltage", "OverCurrent", "Temperature", "InsulationComm",
               "Internal")  # fmt: skip
FAULT_LEVELS = {"None": 0, "Warning": 1, "Fault": 2}


def external_codec() -> BusCodec:
    """The codecs of every external-bus message."""
    return bus_codec("external")


KIND_OF_ALARM = {  # the external bus groups the alarm categories more coarsely
    Alarm.CELL_OVER_VOLTAGE: "OverVoltage",
    Alarm.CELL_UNDER_VOLTAGE: "UnderVoltage",
    Alarm.CHARGE_OVER_CURRENT: "OverCurrent",
    Alarm.DISCHARGE_OVER_CURRENT: "OverCurrent",
    Alarm.OVER_TEMPERATURE: "Temperature",
    Alarm.UNDER_TEMPERATURE: "Temperature",
    Alarm.COMMUNICATION: "InsulationComm",
    Alarm.IMBALANCE: "Internal",
    Alarm.INTERNAL: "Internal",
}


def alarm_kind(code: str) -> str:
    """The alarm group of a DTC code (see docs/can-external.md)."""
    return KIND_OF_ALARM[alarm_of(code)]


class ExternalCanLink:
    """``LoadLink`` over the external CAN; call ``tick`` at least every 100 ms.

    ``rules`` (the BMS's protection table) tell warnings from faults: a code whose rule only
    warns or derates is a warning; any other code, or one the rules do not know, is a fault.
    Ticked more slowly than every 100 ms, raise ``vehicle_timeout_s`` above two tick periods.
    """

    def __init__(
        self,
        port: FramePort,
        rules: Iterable[Rule] = (),
        vehicle_timeout_s: float = VEHICLE_TIMEOUT_S,
    ) -> None:
        self.port = port
        self.vehicle_timeout_s = vehicle_timeout_s
        codecs = external_codec()
        self._codecs = {name: codecs[name] for name in BMS_FRAMES}
        self._periods_s = {name: codec.cycle_s for name, codec in self._codecs.items()}
        self._command = codecs[COMMAND]
        self._rules = tuple(rules)
        self._actions = {rule.code: rule.action for rule in self._rules}
        path_state = self._codecs[STATE].message.get_signal_by_name("State_PathState")
        self._path_labels = {str(v).lower(): str(v) for v in (path_state.choices or {}).values()}
        self.discharge_a = 0.0
        self.regen_a = 0.0
        self.ready = False
        self.decode_errors = 0
        self._alive = AliveCounters()
        self._last_sent_s: dict[str, float] = {}
        self._command_alive = AliveCheck()
        self._connect = False
        self._command_seen_s: float | None = None
        self._started_s: float | None = None
        self._now_s: float | None = None

    # --- LoadLink ------------------------------------------------------------------------------
    def publish(self, discharge_a: float, regen_a: float, ready: bool) -> None:
        """The limits the load may use from now on (sent with the next frames)."""
        self.discharge_a = max(0.0, discharge_a)
        self.regen_a = max(0.0, regen_a)
        self.ready = ready

    # --- the vehicle's side ---------------------------------------------------------------------
    @property
    def vehicle_silent(self) -> bool:
        """No valid ``VCU_Command`` for more than ``vehicle_timeout_s`` (from the first tick)."""
        if self._now_s is None or self._started_s is None:
            return False
        seen_s = self._command_seen_s if self._command_seen_s is not None else self._started_s
        return self._now_s - seen_s > self.vehicle_timeout_s

    @property
    def connect_requested(self) -> bool:
        """The vehicle asks for the pack (key on); False while the vehicle is silent."""
        return self._connect and self._command_seen_s is not None and not self.vehicle_silent

    # --- the task --------------------------------------------------------------------------
    def tick(self, now_s: float, state: BmsState | None) -> None:
        """Read the vehicle's commands, then send every frame that is due.

        Before the BMS's first main task (``state`` is None) only a not-ready state goes out.
        """
        if self._started_s is None:
            self._started_s = now_s
        self._now_s = now_s
        for frame in self.port.receive():
            self._read(now_s, frame)
        for name in BMS_FRAMES if state is not None else (STATE,):
            if due(now_s, self._last_sent_s.get(name), self._periods_s[name]):
                self._send(now_s, name, self._values(name, state))

    def _send(self, now_s: float, name: str, values: dict[str, float | str]) -> None:
        codec = self._codecs[name]
        data = codec.encode(values, alive=self._alive.next(codec.frame_id))
        self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))
        self._last_sent_s[name] = now_s

    def _read(self, now_s: float, frame: Frame) -> None:
        codec = self._command
        if frame.frame_id != codec.frame_id or frame.extended != codec.extended:
            return
        try:
            decoded = codec.decode_checked(frame.data, self._command_alive)
            connect = codec.raw("Veh_ConnectRequest", decoded.values["Veh_ConnectRequest"])
        except (FrameError, KeyError, TypeError, ValueError):
            self.decode_errors += 1
            return
        self._connect = connect == 1
        self._command_seen_s = now_s

    # --- frame contents --------------------------------------------------------------------
    def _values(self, name: str, state: BmsState | None) -> dict[str, float | str]:
        if name == STATE:
            return self._state_values(state)
        assert state is not None
        if name == PACK:
            return {"Pack_Voltage": state.pack_voltage_v, "Pack_Current": state.current_a}
        if name == CURRENT_LIMITS:
            return {
                "Lim_MaxChargeCurrent": self.regen_a,
                "Lim_MaxDischargeCurrent": self.discharge_a,
            }
        if name == VOLTAGE_LIMITS:
            return {
                "VLim_ChargeVoltage": state.limits.charge_voltage_v,
                "VLim_DischargeVoltage": state.limits.discharge_voltage_v,
            }
        if name == CELL_EXTREMES:
            return {
                "Cell_VoltageMin": state.cell_voltage_min_v,
                "Cell_VoltageMax": state.cell_voltage_max_v,
                "Cell_TempMin": state.temp_min_c,
                "Cell_TempMax": state.temp_max_c,
            }
        if name == ALARMS:
            return self._alarm_values(state.active_codes)
        if name == SOC:
            return {
                "Soc_Soc": state.soc_pct,
                "Soc_SocMin": state.soc_min_pct,
                "Soc_SocMax": state.soc_max_pct,
                "Soc_Energy": state.energy_wh / 1000.0,
            }
        return {
            "Soh_Capacity": state.capacity_soh_pct,
            "Soh_Resistance": state.resistance_soh_pct,
        }

    def _state_values(self, state: BmsState | None) -> dict[str, float | str]:
        if state is None:
            return {"State_PathState": "Init", "State_VehicleTimeout": int(self.vehicle_silent)}
        return {
            "State_PathState": self._path_labels.get(state.path_state.lower(), "Fault"),
            "State_Ready": int(self.ready),
            "State_ChargeAllowed": int(self.ready and self.regen_a > 0.0),
            "State_DischargeAllowed": int(self.ready and self.discharge_a > 0.0),
            "State_VehicleTimeout": int(self.vehicle_silent),
            "State_FaultLevel": self._fault_level(state.active_codes),
            "State_BalancingCells": state.balancing_cells,
        }

    def _is_fault(self, code: str) -> bool:
        return self._actions.get(code, Action.OPEN) not in WARNING_ACTIONS

    def _fault_level(self, codes: tuple[str, ...]) -> int:
        if not codes:
            return FAULT_LEVELS["None"]
        return FAULT_LEVELS["Fault" if any(map(self._is_fault, codes)) else "Warning"]

    def _alarm_values(self, codes: tuple[str, ...]) -> dict[str, float | str]:
        values: dict[str, float | str] = {}
        for code in codes:
            level = "Fault" if self._is_fault(code) else "Warn"
            values[f"Alarm_{level}{alarm_kind(code)}"] = 1
        values["Alarm_ActiveCount"] = len(codes)
        values["Alarm_WorstCode"] = worst_code(codes, self._rules)
        return values
