"""The BMS side of the inverter CAN: the Pylontech low-voltage protocol with the SMA/Victron
extensions (layout in ``dbc/inverter.dbc``).

Every second the BMS sends its limits (0x351), state of charge and health (0x355), measurements
(0x356), Pylontech protection flags (0x359), SMA/Victron alarm and warning fields (0x35A),
request flags (0x35C) and its name (0x35E); the inverter answers with a keep-alive (0x305).
The limits never carry the known traps: no zero charge or discharge voltage limit, no negative
current limit, zero current limits and cleared request flags while the system is off its bus.
See docs/can-inverter.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from cellwarden.bms.alarms import Alarm
from cellwarden.bms.system_state import SystemRating, SystemState
from cellwarden.comms.can_bus import CLOCK_EPS_S, Frame, FramePort, due
from cellwarden.comms.codec import BusCodec, bus_codec
from cellwarden.model.architecture import INVERTER_CAN_MAX_VOLTAGE_V

LIMITS = "BMS_Limits"
SOC = "BMS_SocSoh"
MEASUREMENTS = "BMS_Measurements"
PROTECTION = "BMS_Protection"
ALARMS = "BMS_AlarmsWarnings"
REQUEST = "BMS_Request"
NAME = "BMS_Name"
KEEPALIVE = "INV_KeepAlive"
BMS_FRAMES = (LIMITS, SOC, MEASUREMENTS, PROTECTION, ALARMS, REQUEST, NAME)
INVERTER_TIMEOUT_S = 5.0  # the BMS counts the inverter lost after this long without a 0x305
NAME_LENGTH = 8
MAX_VOLTAGE_V = INVERTER_CAN_MAX_VOLTAGE_V  # 0x356 carries the voltage as s16 in 0.01 V
CURRENT_STEP_A = 0.1  # the resolution of the current limits
TOKEN_P, TOKEN_N = 0x50, 0x4E  # 'P' and 'N' in 0x359 bytes 5 and 6

# 0x359 (Pylontech): alarms set protection bits (bytes 0-1), warnings set "alarm" bits (2-3)
PYLON_PROTECTION = {
    Alarm.CELL_OVER_VOLTAGE: "Prot_CellOverVoltage",
    Alarm.CELL_UNDER_VOLTAGE: "Prot_CellUnderVoltage",
    Alarm.OVER_TEMPERATURE: "Prot_CellOverTemperature",
    Alarm.UNDER_TEMPERATURE: "Prot_CellUnderTemperature",
    Alarm.DISCHARGE_OVER_CURRENT: "Prot_DischargeOverCurrent",
    Alarm.CHARGE_OVER_CURRENT: "Prot_ChargeOverCurrent",
    Alarm.IMBALANCE: "Prot_SystemError",
    Alarm.COMMUNICATION: "Prot_SystemError",
    Alarm.INTERNAL: "Prot_SystemError",
}
PYLON_WARNING = {  # imbalance and internal warnings have no 0x359 bit (0x35A carries them)
    Alarm.CELL_OVER_VOLTAGE: "Warn_CellHighVoltage",
    Alarm.CELL_UNDER_VOLTAGE: "Warn_CellLowVoltage",
    Alarm.OVER_TEMPERATURE: "Warn_CellHighTemperature",
    Alarm.UNDER_TEMPERATURE: "Warn_CellLowTemperature",
    Alarm.DISCHARGE_OVER_CURRENT: "Warn_DischargeHighCurrent",
    Alarm.CHARGE_OVER_CURRENT: "Warn_ChargeHighCurrent",
    Alarm.COMMUNICATION: "Warn_InternalCommFail",
}
# 0x35A (SMA/Victron): the field each category sets, in the alarm and the warning half alike
SMA_FIELDS = {
    Alarm.CELL_OVER_VOLTAGE: "HighVoltage",
    Alarm.CELL_UNDER_VOLTAGE: "LowVoltage",
    Alarm.OVER_TEMPERATURE: "HighTemperature",
    Alarm.UNDER_TEMPERATURE: "LowTemperature",
    Alarm.DISCHARGE_OVER_CURRENT: "HighDischargeCurrent",
    Alarm.CHARGE_OVER_CURRENT: "HighChargeCurrent",
    Alarm.IMBALANCE: "CellImbalance",
    Alarm.COMMUNICATION: "BmsInternal",
    Alarm.INTERNAL: "BmsInternal",
}
SMA_MONITORED = ("General", *dict.fromkeys(SMA_FIELDS.values()))  # sent as Ok when inactive
SMA_ACTIVE, SMA_OK = 1, 2


def inverter_codec() -> BusCodec:
    """The codecs of every inverter-bus message."""
    return bus_codec("inverter")


@dataclass(frozen=True)
class InverterLimits:
    """What the BMS tells the inverter in 0x351 and 0x35C, the traps already avoided."""

    charge_voltage_v: float  # never 0
    charge_current_a: float  # never negative
    discharge_current_a: float  # never negative
    discharge_voltage_v: float  # never 0
    charge_enable: bool
    discharge_enable: bool
    force_charge: bool  # 0x35C force charge II: charge from any source

    @classmethod
    def of(
        cls,
        state: SystemState,
        rating: SystemRating,
        hold_voltage_when_blocked: bool = True,
        force_charge_soc_pct: float | None = None,
    ) -> InverterLimits:
        """The limits for ``state``.

        Off the bus (no string connected) both current limits are 0 and every request flag is
        cleared. A direction that is not allowed gets a 0 current limit, never a 0 voltage
        limit. With ``hold_voltage_when_blocked`` a blocked charge also lowers the charge
        voltage limit to the present bus voltage, so a charger that ignores the current limit
        (a Victron ESS feeding DC-coupled solar into the grid, see the doc) has nothing to
        charge towards.
        """
        connected = state.connected
        normal_cvl_v = _positive(state.charge_voltage_limit_v)
        present_v = _positive(state.voltage_v) if connected else None
        ccl_a = (
            _current(state.charge_current_limit_a) if connected and state.charge_allowed else 0.0
        )
        dcl_a = (
            _current(state.discharge_current_limit_a)
            if connected and state.discharge_allowed
            else 0.0
        )
        cvl_v = normal_cvl_v or present_v or rating.max_voltage_v
        if ccl_a == 0.0 and hold_voltage_when_blocked and present_v is not None:
            cvl_v = min(cvl_v, present_v)
        dvl_v = _positive(state.discharge_voltage_limit_v) or rating.min_voltage_v
        low_soc = force_charge_soc_pct is not None and state.soc_pct <= force_charge_soc_pct
        under_voltage = Alarm.CELL_UNDER_VOLTAGE in state.alarms | state.warnings
        return cls(
            charge_voltage_v=cvl_v,
            charge_current_a=ccl_a,
            discharge_current_a=dcl_a,
            discharge_voltage_v=dvl_v,
            charge_enable=ccl_a > 0.0,
            discharge_enable=dcl_a > 0.0,
            force_charge=ccl_a > 0.0 and (low_soc or under_voltage),
        )


def _positive(value: float) -> float | None:
    """``value`` if it is a usable (finite, positive) voltage, else None."""
    return value if math.isfinite(value) and value > 0.0 else None


def _current(value: float) -> float:
    """A current limit as sent: finite, never negative, rounded down to the frame's 0.1 A."""
    if not math.isfinite(value) or value <= 0.0:
        return 0.0
    return math.floor(value / CURRENT_STEP_A + 1e-6) * CURRENT_STEP_A


def name_bytes(name: str) -> bytes:
    """A 0x35E name: at most 8 printable ASCII characters, padded with spaces."""
    if len(name) > NAME_LENGTH or not all(" " <= c <= "~" for c in name):
        raise ValueError(f"inverter CAN name {name!r}: at most 8 printable ASCII characters")
    return name.ljust(NAME_LENGTH).encode("ascii")


class InverterCanLink:
    """The BMS's node on the inverter bus; call ``tick`` at least once a second.

    ``rating`` fills the fallbacks (a charge voltage limit when the state has none, the
    discharge voltage limit when the state has none) and the module count; ``name`` goes out in
    0x35E (use ``"PYLON"`` for inverters that only accept Pylontech batteries).
    ``force_charge_soc_pct`` asks for a force charge at or below that state of charge (a cell
    under-voltage alarm or warning always asks, while charging is allowed).
    """

    def __init__(
        self,
        port: FramePort,
        rating: SystemRating,
        name: str = "CELLWARD",
        inverter_timeout_s: float = INVERTER_TIMEOUT_S,
        force_charge_soc_pct: float | None = None,
        hold_voltage_when_blocked: bool = True,
    ) -> None:
        if rating.max_voltage_v > MAX_VOLTAGE_V:
            raise ValueError(
                f"the inverter CAN (Pylontech low-voltage protocol) carries at most "
                f"{MAX_VOLTAGE_V} V; system {rating.serial_number} reaches {rating.max_voltage_v} V"
            )
        if inverter_timeout_s <= 0.0:
            raise ValueError(f"inverter_timeout_s must be positive (got {inverter_timeout_s})")
        self.port = port
        self.rating = rating
        self.name = name_bytes(name)
        self.inverter_timeout_s = inverter_timeout_s
        self.force_charge_soc_pct = force_charge_soc_pct
        self.hold_voltage_when_blocked = hold_voltage_when_blocked
        codecs = inverter_codec()
        self._codecs = {frame: codecs[frame] for frame in BMS_FRAMES}
        self._periods_s = {frame: codec.cycle_s for frame, codec in self._codecs.items()}
        self._keepalive = codecs[KEEPALIVE]
        self._last_sent_s: dict[str, float] = {}
        self.limits: InverterLimits | None = None  # as last sent
        self.keepalive_s: float | None = None  # when the last 0x305 arrived
        self.keepalives = 0

    def inverter_present(self, now_s: float) -> bool:
        """A keep-alive arrived within ``inverter_timeout_s`` of ``now_s`` (read by ``tick``)."""
        return (
            self.keepalive_s is not None
            and now_s - self.keepalive_s <= self.inverter_timeout_s + CLOCK_EPS_S
        )

    def tick(self, now_s: float, state: SystemState | None) -> None:
        """Read the inverter's keep-alives, then send every frame that is due.

        Before the system master's first state (``state`` is None) nothing goes out.
        """
        for frame in self.port.receive():
            if frame.frame_id == self._keepalive.frame_id and not frame.extended:
                self.keepalive_s = now_s
                self.keepalives += 1
        if state is None:
            return
        due_frames = [
            f for f in BMS_FRAMES if due(now_s, self._last_sent_s.get(f), self._periods_s[f])
        ]
        if not due_frames:
            return
        self.limits = InverterLimits.of(
            state, self.rating, self.hold_voltage_when_blocked, self.force_charge_soc_pct
        )
        for frame in due_frames:
            codec = self._codecs[frame]
            data = codec.encode(self._values(frame, state, self.limits))
            self.port.send(Frame(now_s, codec.frame_id, data, codec.extended))
            self._last_sent_s[frame] = now_s

    # --- frame contents --------------------------------------------------------------------
    def _values(
        self, frame: str, state: SystemState, limits: InverterLimits
    ) -> dict[str, float | str]:
        if frame == LIMITS:
            return {
                "Lim_ChargeVoltage": limits.charge_voltage_v,
                "Lim_ChargeCurrent": limits.charge_current_a,
                "Lim_DischargeCurrent": limits.discharge_current_a,
                "Lim_DischargeVoltage": limits.discharge_voltage_v,
            }
        if frame == SOC:
            return {
                "Soc_Soc": state.soc_pct,
                "Soc_Soh": state.soh_pct,
                "Soc_SocHighRes": state.soc_pct,
            }
        if frame == MEASUREMENTS:
            return {
                "Meas_Voltage": state.voltage_v,
                "Meas_Current": state.current_a,
                "Meas_Temperature": (state.temp_min_c + state.temp_max_c) / 2.0,
            }
        if frame == PROTECTION:
            return self._protection_values(state)
        if frame == ALARMS:
            return {
                **sma_fields("Alarm", state.alarms),
                **sma_fields("Warning", state.warnings),
            }
        if frame == REQUEST:
            return {
                "Req_ChargeEnable": int(limits.charge_enable),
                "Req_DischargeEnable": int(limits.discharge_enable),
                "Req_ForceCharge2": int(limits.force_charge),
            }
        return {f"Name_Char{i}": byte for i, byte in enumerate(self.name)}

    def _protection_values(self, state: SystemState) -> dict[str, float | str]:
        modules = state.strings_connected * self.rating.modules_per_string
        values: dict[str, float | str] = {
            "Prot_ModuleCount": min(max(modules, 0), 255),
            "Prot_TokenP": TOKEN_P,
            "Prot_TokenN": TOKEN_N,
        }
        values.update({PYLON_PROTECTION[alarm]: 1 for alarm in state.alarms})
        values.update({PYLON_WARNING[w]: 1 for w in state.warnings if w in PYLON_WARNING})
        return values


def sma_fields(section: str, active: Iterable[Alarm]) -> dict[str, float | str]:
    """One half of 0x35A (``section`` "Alarm" or "Warning"): 1 for an active field, 2 (ok) for a
    monitored inactive one; the fields cellwarden does not monitor stay 0 (not supported)."""
    fields = {SMA_FIELDS[alarm] for alarm in active}
    if fields:
        fields.add("General")
    return {
        f"{section}_{field}": SMA_ACTIVE if field in fields else SMA_OK for field in SMA_MONITORED
    }
