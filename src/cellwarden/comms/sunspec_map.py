"""The SunSpec register map of a battery system: the common model (1), battery base (802),
lithium-ion bank (803) with one repeating group per string, one lithium-ion string model (804)
per string with its repeating module groups, and the end model.

Point layouts (names, order, types, scale factors) follow the SunSpec information models. Each
model is a table of points and one routine encodes any table: values are physical (volts, amps,
percent) until they are divided by their scale factor, rounded and clamped to their type; a value
that is None or not finite is written as SunSpec's "not implemented" pattern. Scale-factor
exponents are fixed per system, chosen from its rating. SunSpec current and power are positive
while the battery discharges (the opposite of cellwarden's sign). See docs/modbus-sunspec.md.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from functools import partial
from itertools import zip_longest

from cellwarden import __version__
from cellwarden.bms.alarms import Alarm, to_mask
from cellwarden.bms.system_state import (
    StringReport,
    StringStatus,
    StringView,
    SystemRating,
    SystemState,
)

BASE_ADDRESS = 40000
SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
END_MODEL = (0xFFFF, 0)
LAST_ADDRESS = 0xFFFF
MANUFACTURER = "cellwarden"
ILLEGAL_DATA_ADDRESS = 2  # Modbus exception codes of a refused write
ILLEGAL_DATA_VALUE = 3
COMMAND_VALUES = {1: True, 2: False}  # connect / enable, disconnect / disable

Value = float | int | str | None


class WriteRefusedError(ValueError):
    """A write the map does not accept; ``code`` is the Modbus exception code to answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- point types and tables -------------------------------------------------------------------
@dataclass(frozen=True)
class PointType:
    """A SunSpec point type: registers, the range a value is clamped to, "not implemented"."""

    name: str
    registers: int  # 0: the point's own size (strings)
    low: int
    high: int
    unimplemented: int  # the raw pattern, as unsigned registers


UINT16 = PointType("uint16", 1, 0, 0xFFFE, 0xFFFF)
INT16 = PointType("int16", 1, -0x7FFF, 0x7FFF, 0x8000)
UINT32 = PointType("uint32", 2, 0, 0xFFFF_FFFE, 0xFFFF_FFFF)
ENUM16 = PointType("enum16", 1, 0, 0xFFFE, 0xFFFF)
BITFIELD32 = PointType("bitfield32", 2, 0, 0x7FFF_FFFF, 0xFFFF_FFFF)
SUNSSF = PointType("sunssf", 1, -10, 10, 0x8000)
PAD = PointType("pad", 1, 0, 0, 0x8000)
STRING = PointType("string", 0, 0, 0, 0)


class Action(Enum):
    """What a write to a command point asks of the system."""

    CONNECT_SYSTEM = "connect the system"
    ENABLE_STRING = "enable the string"


@dataclass(frozen=True)
class Command:
    """A decoded write: ``on`` is connect / enable; ``string`` is cellwarden's string index."""

    action: Action
    on: bool
    string: int | None = None

    def __str__(self) -> str:
        if self.action is Action.CONNECT_SYSTEM:
            return "connect the system" if self.on else "disconnect the system"
        return f"{'enable' if self.on else 'disable'} string {_number(self.string or 0)}"


@dataclass(frozen=True)
class Scale:
    """How a scale-factor exponent is chosen: the finest one whose points still hold ``span``."""

    finest: int
    span: Callable[[SystemRating], float]


@dataclass(frozen=True)
class Point:
    """One point of a SunSpec model table."""

    name: str
    type: PointType
    sf: str | None = None  # the scale-factor point of the same model that scales this one
    size: int = 0  # registers of a string point
    scale: Scale | None = None  # on a scale-factor point: how its exponent is chosen
    action: Action | None = None  # on a writable point: what a write asks

    @property
    def registers(self) -> int:
        return self.type.registers or self.size


@dataclass(frozen=True)
class Model:
    """A SunSpec model: its fixed points and the points of its repeating group, if any."""

    id: int
    points: tuple[Point, ...]
    group: tuple[Point, ...] = ()
    group_name: str = ""

    def length(self, repeats: int) -> int:
        """The model's L: registers after ID and L."""
        return sum(p.registers for p in self.points) + repeats * sum(
            p.registers for p in self.group
        )

    def limit_of(self, sf: str) -> int:
        """The largest count every point scaled by ``sf`` can hold."""
        return min(p.type.high for p in (*self.points, *self.group) if p.sf == sf)


def _rated_current_a(rating: SystemRating) -> float:
    return max(rating.max_charge_current_a, rating.max_discharge_current_a)


PERCENT = Scale(-1, lambda rating: 100.0)
VOLTAGE = Scale(-1, lambda rating: rating.max_voltage_v)
CURRENT = Scale(-1, _rated_current_a)
CELL_VOLTAGE = Scale(-3, lambda rating: 5.0)
TEMPERATURE = Scale(-1, lambda rating: 200.0)
CAPACITY = Scale(-1, lambda rating: rating.rated_capacity_ah)
ENERGY = Scale(0, lambda rating: rating.rated_energy_wh)
RATED_POWER = Scale(0, lambda rating: rating.nominal_voltage_v * _rated_current_a(rating))
POWER = Scale(0, lambda rating: rating.max_voltage_v * _rated_current_a(rating))

P = Point
COMMON = Model(1, (
    P("Mn", STRING, size=16), P("Md", STRING, size=16), P("Opt", STRING, size=8),
    P("Vr", STRING, size=8), P("SN", STRING, size=16), P("DA", UINT16), P("Pad", PAD),
))  # fmt: skip

BATTERY = Model(802, (
    P("AHRtg", UINT16, "AHRtg_SF"), P("WHRtg", UINT16, "WHRtg_SF"),
    P("WChaRteMax", UINT16, "WChaDisChaMax_SF"), P("WDisChaRteMax", UINT16, "WChaDisChaMax_SF"),
    P("DisChaRte", UINT16, "DisChaRte_SF"), P("SoCMax", UINT16, "SoC_SF"),
    P("SoCMin", UINT16, "SoC_SF"), P("SocRsvMax", UINT16, "SoC_SF"),
    P("SoCRsvMin", UINT16, "SoC_SF"), P("SoC", UINT16, "SoC_SF"), P("DoD", UINT16, "DoD_SF"),
    P("SoH", UINT16, "SoH_SF"), P("NCyc", UINT32), P("ChaSt", ENUM16), P("LocRemCtl", ENUM16),
    P("Hb", UINT16), P("CtrlHb", UINT16), P("AlmRst", UINT16), P("Typ", ENUM16),
    P("State", ENUM16), P("StateVnd", ENUM16), P("WarrDt", UINT32), P("Evt1", BITFIELD32),
    P("Evt2", BITFIELD32), P("EvtVnd1", BITFIELD32), P("EvtVnd2", BITFIELD32),
    P("V", UINT16, "V_SF"), P("VMax", UINT16, "V_SF"), P("VMin", UINT16, "V_SF"),
    P("CellVMax", UINT16, "CellV_SF"), P("CellVMaxStr", UINT16), P("CellVMaxMod", UINT16),
    P("CellVMin", UINT16, "CellV_SF"), P("CellVMinStr", UINT16), P("CellVMinMod", UINT16),
    P("CellVAvg", UINT16, "CellV_SF"), P("A", INT16, "A_SF"), P("AChaMax", UINT16, "AMax_SF"),
    P("ADisChaMax", UINT16, "AMax_SF"), P("W", INT16, "W_SF"), P("ReqInvState", ENUM16),
    P("ReqW", INT16, "W_SF"), P("SetOp", ENUM16, action=Action.CONNECT_SYSTEM),
    P("SetInvState", ENUM16), P("AHRtg_SF", SUNSSF, scale=CAPACITY),
    P("WHRtg_SF", SUNSSF, scale=ENERGY), P("WChaDisChaMax_SF", SUNSSF, scale=RATED_POWER),
    P("DisChaRte_SF", SUNSSF), P("SoC_SF", SUNSSF, scale=PERCENT), P("DoD_SF", SUNSSF),
    P("SoH_SF", SUNSSF, scale=PERCENT), P("V_SF", SUNSSF, scale=VOLTAGE),
    P("CellV_SF", SUNSSF, scale=CELL_VOLTAGE), P("A_SF", SUNSSF, scale=CURRENT),
    P("AMax_SF", SUNSSF, scale=CURRENT), P("W_SF", SUNSSF, scale=POWER),
))  # fmt: skip

BANK = Model(803, (
    P("NStr", UINT16), P("NStrCon", UINT16), P("ModTmpMax", INT16, "ModTmp_SF"),
    P("ModTmpMaxStr", UINT16), P("ModTmpMaxMod", UINT16), P("ModTmpMin", INT16, "ModTmp_SF"),
    P("ModTmpMinStr", UINT16), P("ModTmpMinMod", UINT16), P("ModTmpAvg", INT16, "ModTmp_SF"),
    P("StrVMax", UINT16, "V_SF"), P("StrVMaxStr", UINT16), P("StrVMin", UINT16, "V_SF"),
    P("StrVMinStr", UINT16), P("StrVAvg", UINT16, "V_SF"), P("StrAMax", INT16, "A_SF"),
    P("StrAMaxStr", UINT16), P("StrAMin", INT16, "A_SF"), P("StrAMinStr", UINT16),
    P("StrAAvg", INT16, "A_SF"), P("NCellBal", UINT16),
    P("CellV_SF", SUNSSF, scale=CELL_VOLTAGE), P("ModTmp_SF", SUNSSF, scale=TEMPERATURE),
    P("A_SF", SUNSSF, scale=CURRENT), P("SoH_SF", SUNSSF, scale=PERCENT),
    P("SoC_SF", SUNSSF, scale=PERCENT), P("V_SF", SUNSSF, scale=VOLTAGE),
), group=(
    P("StrNMod", UINT16), P("StrSt", BITFIELD32), P("StrConFail", ENUM16),
    P("StrSoC", UINT16, "SoC_SF"), P("StrSoH", UINT16, "SoH_SF"), P("StrA", INT16, "A_SF"),
    P("StrCellVMax", UINT16, "CellV_SF"), P("StrCellVMaxMod", UINT16),
    P("StrCellVMin", UINT16, "CellV_SF"), P("StrCellVMinMod", UINT16),
    P("StrCellVAvg", UINT16, "CellV_SF"), P("StrModTmpMax", INT16, "ModTmp_SF"),
    P("StrModTmpMaxMod", UINT16), P("StrModTmpMin", INT16, "ModTmp_SF"),
    P("StrModTmpMinMod", UINT16), P("StrModTmpAvg", INT16, "ModTmp_SF"),
    P("StrDisRsn", ENUM16), P("StrConSt", BITFIELD32), P("StrEvt1", BITFIELD32),
    P("StrEvt2", BITFIELD32), P("StrEvtVnd1", BITFIELD32), P("StrEvtVnd2", BITFIELD32),
    P("StrSetEna", ENUM16, action=Action.ENABLE_STRING),
    P("StrSetCon", ENUM16, action=Action.ENABLE_STRING), P("Pad1", PAD), P("Pad2", PAD),
), group_name="string")  # fmt: skip

STRING_MODEL = Model(804, (
    P("Idx", UINT16), P("NMod", UINT16), P("St", BITFIELD32), P("ConFail", ENUM16),
    P("NCellBal", UINT16), P("SoC", UINT16, "SoC_SF"), P("DoD", UINT16, "DoD_SF"),
    P("NCyc", UINT32), P("SoH", UINT16, "SoH_SF"), P("A", INT16, "A_SF"),
    P("V", UINT16, "V_SF"), P("CellVMax", UINT16, "CellV_SF"), P("CellVMaxMod", UINT16),
    P("CellVMin", UINT16, "CellV_SF"), P("CellVMinMod", UINT16),
    P("CellVAvg", UINT16, "CellV_SF"), P("ModTmpMax", INT16, "ModTmp_SF"),
    P("ModTmpMaxMod", UINT16), P("ModTmpMin", INT16, "ModTmp_SF"), P("ModTmpMinMod", UINT16),
    P("ModTmpAvg", INT16, "ModTmp_SF"), P("Pad1", PAD), P("ConSt", BITFIELD32),
    P("Evt1", BITFIELD32), P("Evt2", BITFIELD32), P("EvtVnd1", BITFIELD32),
    P("EvtVnd2", BITFIELD32), P("SetEna", ENUM16, action=Action.ENABLE_STRING),
    P("SetCon", ENUM16, action=Action.ENABLE_STRING), P("SoC_SF", SUNSSF, scale=PERCENT),
    P("SoH_SF", SUNSSF, scale=PERCENT), P("DoD_SF", SUNSSF), P("A_SF", SUNSSF, scale=CURRENT),
    P("V_SF", SUNSSF, scale=VOLTAGE), P("CellV_SF", SUNSSF, scale=CELL_VOLTAGE),
    P("ModTmp_SF", SUNSSF, scale=TEMPERATURE), P("Pad2", PAD), P("Pad3", PAD), P("Pad4", PAD),
), group=(
    P("ModNCell", UINT16), P("ModSoC", UINT16, "SoC_SF"), P("ModSoH", UINT16, "SoH_SF"),
    P("ModCellVMax", UINT16, "CellV_SF"), P("ModCellVMaxCell", UINT16),
    P("ModCellVMin", UINT16, "CellV_SF"), P("ModCellVMinCell", UINT16),
    P("ModCellVAvg", UINT16, "CellV_SF"), P("ModCellTmpMax", INT16, "ModTmp_SF"),
    P("ModCellTmpMaxCell", UINT16), P("ModCellTmpMin", INT16, "ModTmp_SF"),
    P("ModCellTmpMinCell", UINT16), P("ModCellTmpAvg", INT16, "ModTmp_SF"), P("Pad5", PAD),
    P("Pad6", PAD), P("Pad7", PAD),
), group_name="module")  # fmt: skip


# --- enumerations --------------------------------------------------------------------------
class BatteryState(IntEnum):
    """802 State (the values used)."""

    DISCONNECTED = 1
    INITIALIZING = 2
    CONNECTED = 3
    FAULT = 99


class Evt1(IntEnum):
    """Bit numbers of the 802/803/804 event bitfield Evt1 (the ones used)."""

    COMMUNICATION_ERROR = 0
    OVER_TEMP_ALARM = 1
    OVER_TEMP_WARNING = 2
    UNDER_TEMP_ALARM = 3
    UNDER_TEMP_WARNING = 4
    OVER_CHARGE_CURRENT_ALARM = 5
    OVER_CHARGE_CURRENT_WARNING = 6
    OVER_DISCHARGE_CURRENT_ALARM = 7
    OVER_DISCHARGE_CURRENT_WARNING = 8
    OVER_VOLT_ALARM = 9
    OVER_VOLT_WARNING = 10
    UNDER_VOLT_ALARM = 11
    UNDER_VOLT_WARNING = 12
    VOLTAGE_IMBALANCE_WARNING = 17
    OTHER_ALARM = 25
    OTHER_WARNING = 26


# Each alarm category as (the bit it sets as an alarm, the bit it sets as a warning).
EVT1_BITS: dict[Alarm, tuple[Evt1, Evt1]] = {
    Alarm.CELL_OVER_VOLTAGE: (Evt1.OVER_VOLT_ALARM, Evt1.OVER_VOLT_WARNING),
    Alarm.CELL_UNDER_VOLTAGE: (Evt1.UNDER_VOLT_ALARM, Evt1.UNDER_VOLT_WARNING),
    Alarm.CHARGE_OVER_CURRENT: (Evt1.OVER_CHARGE_CURRENT_ALARM, Evt1.OVER_CHARGE_CURRENT_WARNING),
    Alarm.DISCHARGE_OVER_CURRENT: (
        Evt1.OVER_DISCHARGE_CURRENT_ALARM,
        Evt1.OVER_DISCHARGE_CURRENT_WARNING,
    ),
    Alarm.OVER_TEMPERATURE: (Evt1.OVER_TEMP_ALARM, Evt1.OVER_TEMP_WARNING),
    Alarm.UNDER_TEMPERATURE: (Evt1.UNDER_TEMP_ALARM, Evt1.UNDER_TEMP_WARNING),
    Alarm.IMBALANCE: (Evt1.OTHER_ALARM, Evt1.VOLTAGE_IMBALANCE_WARNING),
    Alarm.COMMUNICATION: (Evt1.COMMUNICATION_ERROR, Evt1.OTHER_WARNING),
}
OTHER = (Evt1.OTHER_ALARM, Evt1.OTHER_WARNING)  # internal faults and any category not above

LITHIUM_ION = 4  # 802 Typ
REMOTE, LOCAL = 0, 1  # 802 LocRemCtl
STRING_ENABLED, CONTACTOR_CLOSED = 1 << 0, 1 << 1  # 803 StrSt / 804 St bits
NOT_ENABLED = {StringStatus.ISOLATED, StringStatus.DISABLED}
CON_FAIL = {StringStatus.ISOLATED: 8, StringStatus.DISABLED: 4}  # STRING_FAULT, NOT_ENABLED
DIS_RSN = {StringStatus.ISOLATED: 1, StringStatus.DISABLED: 3}  # FAULT, EXTERNAL; else NONE (0)


def evt1_of(alarms: frozenset[Alarm], warnings: frozenset[Alarm]) -> int:
    """The Evt1 bitfield of alarm and warning categories."""
    mask = 0
    for alarm in alarms:
        mask |= 1 << EVT1_BITS.get(alarm, OTHER)[0]
    for warning in warnings:
        mask |= 1 << EVT1_BITS.get(warning, OTHER)[1]
    return mask


# --- values ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Values:
    """Physical values of one model instance by point name: fixed points and each group."""

    points: Mapping[str, Value] = field(default_factory=dict)
    groups: Sequence[Mapping[str, Value]] = ()

    def merged(self, other: Values) -> Values:
        groups = zip_longest(self.groups, other.groups, fillvalue={})
        return Values({**self.points, **other.points}, [{**a, **b} for a, b in groups])


Views = Mapping[int, StringView]  # by cellwarden string index


def _sunspec_current(current_a: float) -> float:
    """SunSpec storage current (and power) is positive discharging; cellwarden's charging."""
    return -current_a


def _number(index: int) -> int:
    """SunSpec numbers strings and modules from 1; cellwarden indexes them from 0."""
    return index + 1


def _reports(views: Views) -> list[tuple[int, StringReport]]:
    return [(_number(i), v.report) for i, v in sorted(views.items()) if v.report is not None]


def _spread(prefix: str, samples: list[tuple[int, float]]) -> dict[str, Value]:
    """``<prefix>Max``, ``MaxStr``, ``Min``, ``MinStr`` and ``Avg`` of (string number, value)."""
    if not samples:
        return {}
    top = max(samples, key=lambda s: s[1])
    bottom = min(samples, key=lambda s: s[1])
    return {
        f"{prefix}Max": top[1],
        f"{prefix}MaxStr": top[0],
        f"{prefix}Min": bottom[1],
        f"{prefix}MinStr": bottom[0],
        f"{prefix}Avg": sum(s[1] for s in samples) / len(samples),
    }


def _which(samples: list[tuple[int, float]], pick: Callable) -> int | None:
    """The string number holding the extreme ``pick`` (max or min) of the samples."""
    return pick(samples, key=lambda s: s[1])[0] if samples else None


def _heartbeat(time_s: float) -> int | None:
    """802 Hb: whole seconds of the system's clock, wrapping below the not-implemented value."""
    return int(time_s) % UINT16.unimplemented if math.isfinite(time_s) else None


def _battery_live(state: SystemState, views: Views) -> Values:
    reports = _reports(views)
    current_a = _sunspec_current(state.current_a)
    if state.alarms:
        battery_state = BatteryState.FAULT
    else:
        battery_state = BatteryState.CONNECTED if state.connected else BatteryState.DISCONNECTED
    return Values({
        "SoC": state.soc_pct,
        "SoH": state.soh_pct,
        "Hb": _heartbeat(state.time_s),
        "State": battery_state,
        "Evt1": evt1_of(state.alarms, state.warnings),
        "EvtVnd1": to_mask(state.alarms),
        "EvtVnd2": to_mask(state.warnings),
        "V": state.voltage_v,
        "VMax": state.charge_voltage_limit_v,
        "VMin": state.discharge_voltage_limit_v,
        "CellVMax": state.cell_voltage_max_v,
        "CellVMaxStr": _which([(n, r.cell_voltage_max_v) for n, r in reports], max),
        "CellVMin": state.cell_voltage_min_v,
        "CellVMinStr": _which([(n, r.cell_voltage_min_v) for n, r in reports], min),
        "A": current_a,
        "AChaMax": state.charge_current_limit_a,
        "ADisChaMax": state.discharge_current_limit_a,
        "W": state.voltage_v * current_a,
    })  # fmt: skip


def _string_values(view: StringView) -> dict[str, Value]:
    """The values 803's string group (prefixed ``Str``) and 804 share, by 804 name."""
    report = view.report
    enabled = STRING_ENABLED if view.status not in NOT_ENABLED else 0
    closed = CONTACTOR_CLOSED if report is not None and report.connected else 0
    values: dict[str, Value] = {"St": enabled | closed, "ConFail": CON_FAIL.get(view.status, 0)}
    if report is None:  # silent: nothing measured, a communication problem
        lost = frozenset({Alarm.COMMUNICATION})
        return values | {"Evt1": evt1_of(lost, frozenset()), "EvtVnd1": to_mask(lost)}
    return values | {
        "SoC": report.soc_pct,
        "SoH": report.soh_pct,
        "A": _sunspec_current(report.current_a),
        "CellVMax": report.cell_voltage_max_v,
        "CellVMin": report.cell_voltage_min_v,
        "ModTmpMax": report.temp_max_c,
        "ModTmpMin": report.temp_min_c,
        "ConSt": int(report.connected),
        "Evt1": evt1_of(report.alarms, report.warnings),
        "EvtVnd1": to_mask(report.alarms),
        "EvtVnd2": to_mask(report.warnings),
    }


def _bank_group(view: StringView | None) -> dict[str, Value]:
    if view is None:
        return {}
    shared = {f"Str{name}": value for name, value in _string_values(view).items()}
    return shared | {"StrDisRsn": DIS_RSN.get(view.status, 0)}


def _bank_live(strings: int, state: SystemState, views: Views) -> Values:
    reports = _reports(views)
    points: dict[str, Value] = {
        "NStrCon": state.strings_connected,
        "ModTmpMax": state.temp_max_c,
        "ModTmpMaxStr": _which([(n, r.temp_max_c) for n, r in reports], max),
        "ModTmpMin": state.temp_min_c,
        "ModTmpMinStr": _which([(n, r.temp_min_c) for n, r in reports], min),
        "NCellBal": sum(r.balancing_cells for _, r in reports) if reports else None,
    }
    points |= _spread("StrV", [(n, r.pack_voltage_v) for n, r in reports])
    points |= _spread("StrA", [(n, _sunspec_current(r.current_a)) for n, r in reports])
    return Values(points, [_bank_group(views.get(i)) for i in range(strings)])


def _string_live(index: int, state: SystemState, views: Views) -> Values:
    view = views.get(index)
    if view is None:
        return Values()
    values = _string_values(view)
    if view.report is not None:
        values |= {"V": view.report.pack_voltage_v, "NCellBal": view.report.balancing_cells}
    return Values(values)


# --- the map ---------------------------------------------------------------------------------
LiveValues = Callable[[SystemState, Views], Values]


@dataclass(frozen=True)
class _Instance:
    """One model placed in the map, with its values that never change."""

    model: Model
    address: int  # of its ID register
    repeats: int
    label: str  # "model 802", "model 804 string 3"
    static: Values  # including the scale-factor exponents
    live: LiveValues
    exponents: Mapping[str, int]
    string: int | None = None  # cellwarden string index of an 804

    @property
    def end(self) -> int:
        return self.address + 2 + self.model.length(self.repeats)

    def layout(self) -> Iterator[tuple[int, Point, int | None]]:
        """(address, point, group index or None) of every point, in register order."""
        address = self.address + 2
        for point in self.model.points:
            yield address, point, None
            address += point.registers
        for index in range(self.repeats):
            for point in self.model.group:
                yield address, point, index
                address += point.registers


@dataclass(frozen=True)
class _Target:
    """A writable register: its label and the command a write makes."""

    label: str
    action: Action
    string: int | None


def _nothing(state: SystemState, views: Views) -> Values:
    return Values()


def _exponents(model: Model, rating: SystemRating) -> dict[str, int]:
    """Each scale factor's exponent: the finest one whose points hold the span it is given."""
    exponents = {}
    for point in model.points:
        if point.scale is None:
            continue
        span, limit = abs(point.scale.span(rating)), model.limit_of(point.name)
        exponent = point.scale.finest
        while math.isfinite(span) and span / 10.0**exponent > limit:
            exponent += 1
        exponents[point.name] = exponent
    return exponents


class SunSpecMap:
    """The registers from ``BASE_ADDRESS`` of one battery system, and the writes it accepts.

    ``controllable`` says whether writes to command points reach a system control; without one
    every register is read-only.
    """

    def __init__(
        self,
        rating: SystemRating,
        *,
        unit_id: int = 1,
        controllable: bool = True,
        model_name: str = "cellwarden BMS",
        version: str = __version__,
    ) -> None:
        if rating.strings < 1 or rating.modules_per_string < 1:
            raise ValueError(
                f"a SunSpec map needs at least one string and one module per string, not "
                f"{rating.strings} strings of {rating.modules_per_string} modules"
            )
        self.rating = rating
        self.controllable = controllable
        common = Values({
            "Mn": MANUFACTURER, "Md": model_name, "Opt": rating.topology, "Vr": version,
            "SN": rating.serial_number, "DA": unit_id,
        })  # fmt: skip
        self._instances: list[_Instance] = []
        self._place(COMMON, "model 1", common, _nothing)
        self._place(BATTERY, "model 802", self._battery_static(), _battery_live)
        bank_live = partial(_bank_live, rating.strings)
        self._place(BANK, "model 803", self._bank_static(), bank_live, repeats=rating.strings)
        for index in range(rating.strings):
            self._place(
                STRING_MODEL, f"model 804 string {_number(index)}", self._string_static(index),
                partial(_string_live, index), repeats=rating.modules_per_string, string=index,
            )  # fmt: skip
        self.end_address = self._next_address() + len(END_MODEL)  # one past the end model
        if self.end_address - 1 > LAST_ADDRESS:
            raise ValueError(
                f"{rating.strings} strings of {rating.modules_per_string} modules need "
                f"{self.end_address - BASE_ADDRESS} registers; from {BASE_ADDRESS} there is "
                f"room for {LAST_ADDRESS + 1 - BASE_ADDRESS}"
            )
        self._writable = {
            address: _Target(_label(instance, point, group), point.action,
                             instance.string if group is None else group)
            for instance in self._instances
            for address, point, group in instance.layout()
            if point.action is not None
        }  # fmt: skip
        self.blank = self.encode(None)  # before any state: fixed values only

    # --- building ------------------------------------------------------------------------
    def _next_address(self) -> int:
        return self._instances[-1].end if self._instances else BASE_ADDRESS + len(SUNS_MARKER)

    def _place(self, model, label, static, live, repeats=0, string=None) -> None:
        exponents = _exponents(model, self.rating)
        fixed = Values({**static.points, **exponents}, static.groups)
        address = self._next_address()
        self._instances.append(
            _Instance(model, address, repeats, label, fixed, live, exponents, string)
        )

    def _battery_static(self) -> Values:
        rating = self.rating
        return Values({
            "AHRtg": rating.rated_capacity_ah,
            "WHRtg": rating.rated_energy_wh,
            "WChaRteMax": rating.max_charge_current_a * rating.nominal_voltage_v,
            "WDisChaRteMax": rating.max_discharge_current_a * rating.nominal_voltage_v,
            "LocRemCtl": REMOTE if self.controllable else LOCAL,
            "AlmRst": 0,
            "Typ": LITHIUM_ION,
            "State": BatteryState.INITIALIZING,
            "Evt2": 0,
            "SetOp": 0,
        })  # fmt: skip

    def _bank_static(self) -> Values:
        group = {"StrNMod": self.rating.modules_per_string, "StrEvt2": 0, "StrSetEna": 0,
                 "StrSetCon": 0}  # fmt: skip
        return Values({"NStr": self.rating.strings}, [group] * self.rating.strings)

    def _string_static(self, index: int) -> Values:
        rating = self.rating
        cells, rest = divmod(rating.cells_per_string, rating.modules_per_string)
        module = {"ModNCell": cells if not rest else None}  # unknown when modules differ
        points = {"Idx": _number(index), "NMod": rating.modules_per_string, "Evt2": 0,
                  "SetEna": 0, "SetCon": 0}  # fmt: skip
        return Values(points, [module] * rating.modules_per_string)

    # --- encoding ------------------------------------------------------------------------
    def encode(self, state: SystemState | None) -> list[int]:
        """Every register from ``BASE_ADDRESS`` to the end model; ``None``: no state yet."""
        views = _views(state, self.rating.strings) if state is not None else {}
        registers = list(SUNS_MARKER)
        for instance in self._instances:
            live = instance.live(state, views) if state is not None else Values()
            registers += _encode_instance(instance, instance.static.merged(live))
        return registers + list(END_MODEL)

    # --- writes --------------------------------------------------------------------------
    @property
    def command_addresses(self) -> tuple[int, ...]:
        """The command registers: they read back the last accepted command, 0 before one."""
        return tuple(self._writable)

    def decode_write(self, address: int, values: Sequence[int]) -> list[Command]:
        """The commands a write of ``values`` from ``address`` makes.

        Raises ``WriteRefusedError`` (exception 02) if any register is not writable, or (03) if
        any value is not a defined command; nothing is decoded then.
        """
        targets = []
        for register in range(address, address + len(values)):
            target = self._writable.get(register)
            if target is None or not self.controllable:
                reason = "read-only" if target is None else "read-only without a system control"
                raise WriteRefusedError(
                    ILLEGAL_DATA_ADDRESS, f"register {register} ({self.describe(register)}) is "
                    f"{reason}",
                )  # fmt: skip
            targets.append(target)
        for target, value in zip(targets, values, strict=True):
            if value not in COMMAND_VALUES:
                raise WriteRefusedError(
                    ILLEGAL_DATA_VALUE, f"{target.label}={value} is not a command: write 1 to "
                    "connect/enable or 2 to disconnect/disable",
                )  # fmt: skip
        return [
            Command(t.action, COMMAND_VALUES[v], t.string)
            for t, v in zip(targets, values, strict=True)
        ]

    def describe(self, address: int) -> str:
        """What a register holds, e.g. ``model 802 V`` or ``model 804 string 2 module 3 ModSoC``."""
        if BASE_ADDRESS <= address < BASE_ADDRESS + len(SUNS_MARKER):
            return "the SunS marker"
        for instance in self._instances:
            if instance.address <= address < instance.address + 2:
                return f"the {instance.label} header"
            for start, point, group in instance.layout():
                if start <= address < start + point.registers:
                    return _label(instance, point, group)
        if self.end_address - len(END_MODEL) <= address < self.end_address:
            return "the end model"
        return "outside the SunSpec map"


def _label(instance: _Instance, point: Point, group: int | None) -> str:
    """``model 802 V``, ``model 803 string 2 StrSetEna``, ``model 804 string 1 module 3 ModSoC``."""
    where = "" if group is None else f" {instance.model.group_name} {_number(group)}"
    return f"{instance.label}{where} {point.name}"


def _views(state: SystemState, strings: int) -> dict[int, StringView]:
    views = {view.index: view for view in state.strings}
    if len(views) != len(state.strings) or not all(0 <= i < strings for i in views):
        indexes = sorted(view.index for view in state.strings)
        raise ValueError(
            f"state strings {indexes} do not fit a system of {strings} strings "
            f"(indexes 0..{strings - 1}, each at most once)"
        )
    return views


def _encode_instance(instance: _Instance, values: Values) -> list[int]:
    registers = [instance.model.id, instance.model.length(instance.repeats)]
    for _, point, group in instance.layout():
        source = values.points if group is None else values.groups[group]
        registers += encode_point(point, source.get(point.name), instance.exponents)
    return registers


def encode_point(point: Point, value: Value, exponents: Mapping[str, int]) -> list[int]:
    """A point's registers: the value scaled, rounded and clamped; not implemented if None
    or not finite. ``exponents`` maps scale-factor names to their exponents."""
    if value is None or (not isinstance(value, str) and not math.isfinite(value)):
        if point.type is STRING:
            return [0] * point.size
        return _split(point.type.unimplemented, point.registers)
    if isinstance(value, str):
        return _text(point, value)
    if point.sf is not None:
        value = value / 10.0 ** exponents[point.sf]
    return _split(min(max(round(value), point.type.low), point.type.high), point.registers)


def _split(number: int, registers: int) -> list[int]:
    raw = number & ((1 << (16 * registers)) - 1)
    return [(raw >> (16 * i)) & 0xFFFF for i in reversed(range(registers))]


def _text(point: Point, value: str) -> list[int]:
    data = value.encode("utf-8")
    if len(data) > 2 * point.size:
        raise ValueError(
            f"{point.name} {value!r} is {len(data)} bytes; SunSpec holds at most {2 * point.size}"
        )
    data = data.ljust(2 * point.size, b"\0")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
