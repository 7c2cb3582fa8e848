"""The SunSpec Modbus server read by a real SunSpec client (pysunspec2) over TCP and RTU, and
written to by a raw pymodbus client.

The system under test: four parallel strings of three 16-cell LFP modules; strings 1 and 2 on
the bus and discharging, string 3 taken out of service, string 4 silent (no report). Every
expectation below is worked out from the state built here, in SunSpec's terms: strings and
modules numbered from 1, current and power positive while discharging.
"""

from __future__ import annotations

import dataclasses
import os
import select
import threading
import tty

import pytest
from pymodbus.client import ModbusSerialClient, ModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from sunspec2.device import get_model_def
from sunspec2.modbus.client import SunSpecModbusClientDeviceRTU, SunSpecModbusClientDeviceTCP

from cellwarden.bms.alarms import Alarm
from cellwarden.bms.system_state import (
    StringReport,
    StringStatus,
    StringView,
    SystemRating,
    SystemState,
)
from cellwarden.comms.modbus_server import RtuEndpoint, SunSpecServer, TcpEndpoint
from cellwarden.comms.sunspec_map import BANK, BATTERY, COMMON, STRING_MODEL

RATING = SystemRating(
    serial_number="CW-TEST-0042",
    topology="parallel",
    strings=4,
    modules_per_string=3,
    cells_per_string=48,
    rated_capacity_ah=1120.0,
    rated_energy_wh=1120.0 * 153.6,
    nominal_voltage_v=153.6,
    max_voltage_v=175.2,
    min_voltage_v=120.0,
    max_charge_current_a=560.0,
    max_discharge_current_a=1120.0,
)
BIG_RATING = dataclasses.replace(
    RATING, strings=1, max_voltage_v=1500.0, max_charge_current_a=2000.0,
    max_discharge_current_a=2000.0,
)  # fmt: skip

CONNECT, DISCONNECT = 1, 2
ILLEGAL_FUNCTION, ILLEGAL_ADDRESS, ILLEGAL_VALUE, DEVICE_FAILURE = 1, 2, 3, 4
GATEWAY_NO_RESPONSE = 0x0B
BLOCK = 125  # registers per Modbus read


def report(index: int, **changes) -> StringReport:
    values = dict(
        index=index, time_s=3605.0, path_state="normal", connected=True, fault=False,
        charge_allowed=True, discharge_allowed=True, pack_voltage_v=160.2, link_voltage_v=160.4,
        current_a=-120.0, soc_pct=61.3, soh_pct=96.4, charge_current_limit_a=140.0,
        discharge_current_limit_a=280.0, charge_voltage_limit_v=175.2, cell_voltage_min_v=3.281,
        cell_voltage_max_v=3.362, temp_min_c=24.5, temp_max_c=31.2, balancing_cells=2,
    )  # fmt: skip
    return StringReport(**(values | changes))


STRINGS = (
    StringView(0, "string-1", 3, StringStatus.CONNECTED, report(0), True, 0.5),
    StringView(1, "string-2", 3, StringStatus.CONNECTED, report(
        1, pack_voltage_v=160.6, current_a=-118.5, soc_pct=62.1, soh_pct=97.9,
        cell_voltage_min_v=3.279, cell_voltage_max_v=3.351, temp_min_c=23.0, temp_max_c=29.8,
        balancing_cells=0, warnings=frozenset({Alarm.IMBALANCE}),
    ), True, 0.5),
    StringView(2, "string-3", 3, StringStatus.DISABLED, report(
        2, connected=False, pack_voltage_v=158.9, current_a=0.0, soc_pct=48.7, soh_pct=95.0,
        cell_voltage_min_v=3.290, cell_voltage_max_v=3.320, temp_min_c=23.4, temp_max_c=27.0,
        balancing_cells=1,
    ), False, 0.0, "taken out of service"),
    StringView(3, "string-4", 3, StringStatus.ISOLATED, None, False, 0.0, "silent"),
)  # fmt: skip

STATE = SystemState(
    time_s=3605.7, voltage_v=160.4, current_a=-238.5, soc_pct=61.7, soh_pct=97.1,
    capacity_ah=560.0, charge_voltage_limit_v=175.2, discharge_voltage_limit_v=120.0,
    charge_current_limit_a=280.0, discharge_current_limit_a=560.0, cell_voltage_min_v=3.279,
    cell_voltage_max_v=3.362, temp_min_c=23.0, temp_max_c=31.2, strings_connected=2,
    charge_allowed=True, discharge_allowed=True,
    warnings=frozenset({Alarm.IMBALANCE, Alarm.COMMUNICATION}), strings=STRINGS,
)  # fmt: skip


class RecordingControl:
    """A system control that records every request (or refuses them all)."""

    def __init__(self, refuse: bool = False) -> None:
        self.refuse = refuse
        self.calls: list[tuple] = []

    def request_connected(self, connected: bool) -> None:
        self.calls.append(("connected", connected))

    def request_string_enabled(self, index: int, enabled: bool) -> None:
        if self.refuse:
            raise ValueError("string is locked out")
        self.calls.append(("string", index, enabled))


@pytest.fixture
def serve():
    """Starts TCP servers on 127.0.0.1 (a free port each) and stops them after the test."""
    servers: list[SunSpecServer] = []

    def start(rating=RATING, state=STATE, **options) -> SunSpecServer:
        server = SunSpecServer(rating, TcpEndpoint("127.0.0.1", 0), **options)
        if state is not None:
            server.update(state)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def raw_client():
    clients: list[ModbusTcpClient] = []

    def connect(server: SunSpecServer) -> ModbusTcpClient:
        client = ModbusTcpClient("127.0.0.1", port=server.port, timeout=2, retries=0)
        assert client.connect()
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def scan(port: int) -> SunSpecModbusClientDeviceTCP:
    device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=2)
    device.scan()
    return device


def address(model, point) -> int:
    return model.model_addr + point.offset


def assert_scaled(point, expected: float) -> None:
    """A scaled point equals ``expected`` within half a step of its scale factor."""
    value = point.cvalue  # resolves the scale factor
    step = 10.0**point.sf_value if point.sf_value is not None else 1.0
    assert value == pytest.approx(expected, abs=step / 2 + 1e-9), point.pdef["name"]


def read_all(client: ModbusTcpClient, server: SunSpecServer) -> list[int]:
    registers = []
    for start in range(40000, server.map.end_address, BLOCK):
        count = min(BLOCK, server.map.end_address - start)
        registers += client.read_holding_registers(start, count=count, device_id=1).registers
    return registers


# --- reading ----------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [COMMON, BATTERY, BANK, STRING_MODEL], ids=lambda m: str(m.id))
def test_point_tables_match_the_sunspec_definitions(model):
    """Names, order, types, sizes and scale factors as in SunSpec's own model files."""

    def ours(points):
        return [(p.name, p.type.name, p.registers, p.sf) for p in points]

    def official(group):
        points = [p for p in group["points"] if p["name"] not in ("ID", "L")]
        return [(p["name"], p["type"], p["size"], p.get("sf")) for p in points]

    definition = get_model_def(model.id)["group"]
    assert ours(model.points) == official(definition)
    assert ours(model.group) == [row for g in definition.get("groups", []) for row in official(g)]


def test_scan_finds_header_and_models_in_order(serve, raw_client):
    server = serve()
    assert raw_client(server).read_holding_registers(40000, count=2).registers == [0x5375, 0x6E53]
    device = scan(server.port)
    assert [m.model_id for m in device.model_list] == [1, 802, 803, 804, 804, 804, 804]
    assert all(m.error_info == "" for m in device.model_list)  # lengths match the definitions
    common = device.models[1][0]
    assert (common.Mn.value, common.SN.value, common.DA.value) == ("cellwarden", "CW-TEST-0042", 1)
    assert common.Vr.value and common.Md.value


def test_battery_model_802(serve):
    battery = scan(serve(control=RecordingControl()).port).models[802][0]
    expected = {
        "AHRtg": 1120.0, "WHRtg": 1120.0 * 153.6, "WChaRteMax": 560.0 * 153.6,
        "WDisChaRteMax": 1120.0 * 153.6, "SoC": 61.7, "SoH": 97.1, "V": 160.4, "VMax": 175.2,
        "VMin": 120.0, "CellVMax": 3.362, "CellVMin": 3.279, "AChaMax": 280.0,
        "ADisChaMax": 560.0,
        "A": 238.5, "W": 160.4 * 238.5,  # discharging: positive in SunSpec
    }  # fmt: skip
    for name, value in expected.items():
        assert_scaled(battery.points[name], value)
    # the finest scale factors that hold 1120 Ah, 172 kWh and 175 V x 1120 A
    scale_factors = {"AHRtg_SF": -1, "WHRtg_SF": 1, "WChaDisChaMax_SF": 1, "SoC_SF": -1,
                     "SoH_SF": -1, "V_SF": -1, "CellV_SF": -3, "A_SF": -1, "AMax_SF": -1,
                     "W_SF": 1}  # fmt: skip
    assert {name: battery.points[name].value for name in scale_factors} == scale_factors
    assert battery.Typ.value == 4  # lithium-ion
    assert battery.State.value == 3  # connected
    assert battery.LocRemCtl.value == 0  # remote: the server has a control
    assert battery.Hb.value == 3605
    assert (battery.CellVMaxStr.value, battery.CellVMinStr.value) == (1, 2)
    imbalance_warning, other_warning = 17, 26  # communication warning -> other warning
    assert battery.Evt1.value == (1 << imbalance_warning) | (1 << other_warning)
    assert battery.SoCMax.value is None and battery.NCyc.value is None  # not implemented


def test_bank_model_803(serve):
    bank = scan(serve().port).models[803][0]
    assert (bank.NStr.value, bank.NStrCon.value) == (4, 2)
    for name, value in {
        "ModTmpMax": 31.2, "ModTmpMin": 23.0, "StrVMax": 160.6, "StrVMin": 158.9,
        "StrVAvg": (160.2 + 160.6 + 158.9) / 3, "StrAMax": 120.0, "StrAMin": 0.0,
        "StrAAvg": (120.0 + 118.5 + 0.0) / 3,
    }.items():  # fmt: skip
        assert_scaled(bank.points[name], value)
    assert (bank.ModTmpMaxStr.value, bank.ModTmpMinStr.value) == (1, 2)
    assert (bank.StrVMaxStr.value, bank.StrVMinStr.value) == (2, 3)
    assert (bank.StrAMaxStr.value, bank.StrAMinStr.value) == (1, 3)
    assert bank.NCellBal.value == 3
    first, _, disabled, silent = bank.string
    assert_scaled(first.StrSoC, 61.3)
    assert_scaled(first.StrA, 120.0)
    assert_scaled(first.StrCellVMin, 3.281)
    assert_scaled(first.StrModTmpMax, 31.2)
    assert (first.StrSt.value, first.StrConFail.value, first.StrNMod.value) == (0b11, 0, 3)
    assert (disabled.StrSt.value, disabled.StrConFail.value) == (0, 4)  # not enabled
    assert disabled.StrDisRsn.value == 3  # external
    assert_scaled(disabled.StrSoC, 48.7)
    assert (silent.StrConFail.value, silent.StrDisRsn.value) == (8, 1)  # string fault
    assert silent.StrEvt1.value == 1  # communication error
    assert silent.StrSoC.value is None and silent.StrA.value is None


def test_string_model_804_once_per_string(serve):
    strings = scan(serve().port).models[804]
    assert [s.Idx.value for s in strings] == [1, 2, 3, 4]
    for model in strings:
        assert model.NMod.value == 3
        assert len(model.lithium_ion_string_module) == 3
        module = model.lithium_ion_string_module[0]
        assert module.ModNCell.value == 16
        assert module.ModSoC.value is None and module.ModCellTmpMax.value is None
    first, second, disabled, silent = strings
    expected = {"SoC": 61.3, "SoH": 96.4, "A": 120.0, "V": 160.2, "CellVMax": 3.362,
                "CellVMin": 3.281, "ModTmpMax": 31.2, "ModTmpMin": 24.5}  # fmt: skip
    for name, value in expected.items():
        assert_scaled(first.points[name], value)
    assert (first.St.value, first.ConSt.value, first.NCellBal.value) == (0b11, 1, 2)
    assert second.Evt1.value == 1 << 17  # voltage imbalance warning
    assert second.EvtVnd2.value == 1 << list(Alarm).index(Alarm.IMBALANCE)
    assert (disabled.St.value, disabled.ConFail.value) == (0, 4)
    assert (silent.St.value, silent.ConFail.value, silent.Evt1.value) == (0, 8, 1)
    assert silent.SoC.value is None and silent.V.value is None and silent.ConSt.value is None


def test_before_the_first_update_the_battery_is_initializing(serve):
    battery = scan(serve(state=None).port).models[802][0]
    assert battery.State.value == 2  # initializing
    assert battery.SoC.value is None and battery.V.value is None
    assert_scaled(battery.AHRtg, 1120.0)


def test_update_reaches_clients_and_alarms_fault_the_battery(serve):
    server = serve()
    device = scan(server.port)
    server.update(dataclasses.replace(STATE, alarms=frozenset({Alarm.CELL_OVER_VOLTAGE}),
                                      soc_pct=12.3, current_a=50.0))  # fmt: skip
    battery = device.models[802][0]
    battery.read()
    assert battery.State.value == 99  # fault
    assert battery.Evt1.value & (1 << 9)  # over-voltage alarm
    assert_scaled(battery.SoC, 12.3)
    assert_scaled(battery.A, -50.0)  # charging: negative in SunSpec


def test_values_beyond_their_type_clamp_and_non_finite_ones_are_not_implemented(serve):
    wild = dataclasses.replace(STATE, voltage_v=1e7, current_a=1e7, soc_pct=float("nan"))
    battery = scan(serve(state=wild).port).models[802][0]
    assert battery.V.value == 0xFFFE  # the largest uint16, not wrapped
    assert battery.A.value == -0x7FFF  # 1e7 A charging, the most negative int16
    assert battery.W.value == -0x7FFF
    assert battery.SoC.value is None


def test_scale_factors_fit_a_1500_v_2000_a_string(serve):
    big = dataclasses.replace(
        STATE, voltage_v=1500.0, current_a=2000.0, soc_pct=99.9, cell_voltage_max_v=3.652,
        strings=(), strings_connected=1,
    )  # fmt: skip
    battery = scan(serve(rating=BIG_RATING, state=big).port).models[802][0]
    assert (battery.V_SF.value, battery.A_SF.value, battery.CellV_SF.value) == (-1, -1, -3)
    assert battery.SoC_SF.value == -1
    for name, value in {"V": 1500.0, "A": -2000.0, "SoC": 99.9, "CellVMax": 3.652}.items():
        assert battery.points[name].cvalue == pytest.approx(value, abs=1e-9)


# --- writing ----------------------------------------------------------------------------------
def test_setop_disconnect_reaches_the_control(serve, raw_client):
    control = RecordingControl()
    server = serve(control=control)
    battery = scan(server.port).models[802][0]
    set_op = address(battery, battery.SetOp)
    client = raw_client(server)
    assert not client.write_register(set_op, DISCONNECT, device_id=1).isError()
    assert control.calls == [("connected", False)]
    assert client.read_holding_registers(set_op, count=1, device_id=1).registers == [DISCONNECT]
    server.update(STATE)  # a new state keeps the last command
    assert client.read_holding_registers(set_op, count=1, device_id=1).registers == [DISCONNECT]


def test_string_commands_reach_the_control(serve, raw_client):
    control = RecordingControl()
    server = serve(control=control)
    device = scan(server.port)
    third, bank = device.models[804][2], device.models[803][0]
    client = raw_client(server)
    assert not client.write_register(address(third, third.SetEna), DISCONNECT).isError()
    assert not client.write_register(address(third, third.SetCon), CONNECT).isError()
    assert not client.write_register(address(bank, bank.string[1].StrSetEna), CONNECT).isError()
    assert control.calls == [("string", 2, False), ("string", 2, True), ("string", 1, True)]


def test_refused_writes_change_nothing_and_the_server_carries_on(serve, raw_client):
    control = RecordingControl()
    server = serve(control=control)
    battery = scan(server.port).models[802][0]
    client = raw_client(server)
    before = read_all(client, server)
    set_op, set_inv_state = address(battery, battery.SetOp), address(battery, battery.SetInvState)
    refusals = {
        "read-only V": (address(battery, battery.V), [1], ILLEGAL_ADDRESS),
        "SUNS marker": (40000, [0], ILLEGAL_ADDRESS),
        "below the map": (39990, [1], ILLEGAL_ADDRESS),
        "past the end": (server.map.end_address, [1], ILLEGAL_ADDRESS),
        "SetOp and read-only SetInvState": (set_op, [CONNECT, 1], ILLEGAL_ADDRESS),
        "undefined SetOp value": (set_op, [5], ILLEGAL_VALUE),
        "undefined SetOp zero": (set_op, [0], ILLEGAL_VALUE),
    }
    assert set_inv_state == set_op + 1  # the two-register write covers both
    for what, (start, values, code) in refusals.items():
        response = client.write_registers(start, values, device_id=1)
        assert response.isError() and response.exception_code == code, what
    assert control.calls == []
    assert read_all(client, server) == before
    in_map = [start for start, _, _ in refusals.values() if 40000 <= start < server.map.end_address]
    assert server.refused_writes == len(in_map)  # pymodbus refuses the others itself
    assert "SetOp=5" in server.last_refusal or "SetOp=0" in server.last_refusal
    assert client.read_holding_registers(40000, count=2).registers == [0x5375, 0x6E53]


def test_without_a_control_commands_are_read_only(serve, raw_client):
    server = serve(control=None)
    battery = scan(server.port).models[802][0]
    assert battery.LocRemCtl.value == 1  # local
    response = raw_client(server).write_register(address(battery, battery.SetOp), CONNECT)
    assert response.isError() and response.exception_code == ILLEGAL_ADDRESS
    assert "without a system control" in server.last_refusal


def test_a_refused_command_answers_device_failure(serve, raw_client):
    server = serve(control=RecordingControl(refuse=True))
    first = scan(server.port).models[804][0]
    client = raw_client(server)
    response = client.write_register(address(first, first.SetEna), DISCONNECT)
    assert response.isError() and response.exception_code == DEVICE_FAILURE
    assert server.last_refusal == "the system refused to disable string 1: string is locked out"
    assert client.read_holding_registers(address(first, first.SetEna), count=1).registers == [0]


def test_other_unit_ids_and_bit_functions_get_exceptions(serve, raw_client):
    client = raw_client(serve())
    response = client.read_holding_registers(40000, count=2, device_id=7)
    assert response.isError() and response.exception_code == GATEWAY_NO_RESPONSE
    response = client.read_coils(40000, count=8, device_id=1)
    assert response.isError() and response.exception_code == ILLEGAL_FUNCTION
    assert client.read_holding_registers(40000, count=2, device_id=1).registers[0] == 0x5375


# --- consistency ------------------------------------------------------------------------------
def test_a_read_never_sees_half_an_update(serve, raw_client):
    """update() swaps the image under the lock every request takes: one read of model 802 holds
    SoC and V of the same state while another thread publishes two alternating states."""
    low = dataclasses.replace(STATE, soc_pct=10.0, voltage_v=100.0)
    high = dataclasses.replace(STATE, soc_pct=90.0, voltage_v=170.0)
    server = serve(state=low)
    battery = scan(server.port).models[802][0]
    soc, volts = battery.SoC.offset - 2, battery.V.offset - 2
    start, count = battery.model_addr + 2, battery.model_len
    client = raw_client(server)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            for state in (low, high):
                server.update(state)

    publisher = threading.Thread(target=publish)
    publisher.start()
    try:
        pairs = set()
        for _ in range(200):
            registers = client.read_holding_registers(start, count=count).registers
            pairs.add((registers[soc], registers[volts]))
    finally:
        stop.set()
        publisher.join()
    assert pairs <= {(100, 1000), (900, 1700)}


# --- construction and endpoints ---------------------------------------------------------------
def test_bad_configuration_is_a_clear_error(serve):
    with pytest.raises(ValueError, match="unit id 0"):
        SunSpecServer(RATING, TcpEndpoint(port=0), unit_id=0)
    with pytest.raises(ValueError, match="SN"):
        SunSpecServer(dataclasses.replace(RATING, serial_number="X" * 33), TcpEndpoint(port=0))
    with pytest.raises(ValueError, match="parity"):
        RtuEndpoint("/dev/ttyUSB0", parity="X")  # type: ignore[arg-type]
    server = serve()
    stranger = dataclasses.replace(STRINGS[0], index=4)
    with pytest.raises(ValueError, match=r"\[0, 1, 2, 4\]"):
        server.update(dataclasses.replace(STATE, strings=(*STRINGS[:3], stranger)))
    with pytest.raises(OSError, match=f"127.0.0.1:{server.port}"):
        SunSpecServer(RATING, TcpEndpoint("127.0.0.1", server.port)).start()
    with pytest.raises(OSError, match="/nonexistent/tty"):
        SunSpecServer(RATING, RtuEndpoint("/nonexistent/tty")).start()


class PtyBridge:
    """Two pseudo-terminals joined back to back, like a null-modem cable: what is written to
    one ``devices`` entry is read from the other."""

    def __init__(self) -> None:
        self._pairs = [os.openpty() for _ in range(2)]
        for _, user in self._pairs:
            tty.setraw(user)
        self.devices = [os.ttyname(user) for _, user in self._pairs]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        (a, _), (b, _) = self._pairs
        peer = {a: b, b: a}
        while not self._stop.is_set():
            ready, _, _ = select.select([a, b], [], [], 0.05)
            for fd in ready:
                os.write(peer[fd], os.read(fd, 4096))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for pair in self._pairs:
            for fd in pair:
                os.close(fd)


@pytest.fixture
def rtu_server():
    """A server with unit id 3 on one end of a pseudo-terminal bridge; yields its control and
    the device a client opens."""
    bridge = PtyBridge()
    control = RecordingControl()
    endpoint = RtuEndpoint(bridge.devices[0], parity="N")  # a pseudo-terminal has no parity
    server = SunSpecServer(RATING, endpoint, control=control, unit_id=3)
    server.update(STATE)
    try:
        server.start()
        yield control, bridge.devices[1]
    finally:
        server.stop()
        bridge.close()


def test_rtu_over_a_pseudo_terminal(rtu_server):
    control, device_path = rtu_server
    device = SunSpecModbusClientDeviceRTU(3, device_path, baudrate=19200, parity="N", timeout=1)
    try:
        device.scan()
        assert [s.Idx.value for s in device.models[804]] == [1, 2, 3, 4]
        assert device.models[1][0].DA.value == 3
        battery = device.models[802][0]
        assert_scaled(battery.SoC, 61.7)
        battery.SetOp.value = DISCONNECT
        battery.SetOp.write()
        assert control.calls == [("connected", False)]
    finally:
        device.close()


def test_rtu_ignores_other_unit_ids(rtu_server):
    _, device_path = rtu_server
    client = ModbusSerialClient(device_path, baudrate=19200, parity="N", timeout=0.3, retries=0)
    try:
        assert client.connect()
        with pytest.raises(ModbusIOException, match="No response"):
            client.read_holding_registers(40000, count=2, device_id=4)
        response = client.read_holding_registers(40000, count=2, device_id=3)
        assert response.registers == [0x5375, 0x6E53]
    finally:
        client.close()


def test_stop_closes_the_socket_and_the_server_can_start_again(serve):
    server = serve()
    port = server.port
    server.stop()
    assert server.port is None
    assert not ModbusTcpClient("127.0.0.1", port=port, timeout=0.5, retries=0).connect()
    assert not any(t.name == "sunspec-modbus" for t in threading.enumerate())
    server.start()
    assert scan(server.port).models[802][0].State.value == 3
