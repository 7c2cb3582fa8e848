"""``serve-modbus``: a running simulation read by a real SunSpec client (pysunspec2)."""

from __future__ import annotations

import pytest
from pymodbus.client import ModbusTcpClient
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.comms.modbus_server import TcpEndpoint
from cellwarden.model.scenario import Scenario
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation
from cellwarden.simulation.sunspec_service import attach_sunspec


def _scan(port: int) -> SunSpecModbusClientDeviceTCP:
    device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=2)
    device.scan()
    return device


def _scaled(point) -> float:
    return point.cvalue if hasattr(point, "cvalue") else point.value


@pytest.fixture(scope="module")
def served_telecom():
    """The telecom site after 30 s with its string 3 lost, still served."""
    data = load_builtin("telecom-backup").model_dump(mode="json")
    data["faults"] = [{"kind": "slave_fault", "string": 2, "slave": 0, "at_s": 10.0}]
    simulation = Simulation(Scenario.model_validate(data), duration_s=30.0)
    server = attach_sunspec(simulation, TcpEndpoint("127.0.0.1", 0))
    server.start()
    result = simulation.run()
    yield result, server
    server.stop()


def test_the_served_models_hold_the_system_state(served_telecom):
    result, server = served_telecom
    state = result.controller.system_master.state
    device = _scan(server.port)
    battery = device.models[802][0]
    assert battery.SoC.cvalue == pytest.approx(state.soc_pct, abs=0.1)
    # the DC bus voltage: against the plant's truth, within the string masters' HV accuracy
    assert battery.V.cvalue == pytest.approx(result.plant.bus_voltage_v, abs=0.3)
    assert battery.AChaMax.cvalue == pytest.approx(state.charge_current_limit_a, abs=0.1)
    assert battery.ADisChaMax.cvalue == pytest.approx(state.discharge_current_limit_a, abs=0.1)
    assert battery.A.cvalue == pytest.approx(-state.current_a, abs=0.1)  # SunSpec: + discharging
    assert battery.State.value == 3  # connected
    bank = device.models[803][0]
    assert (bank.NStr.value, bank.NStrCon.value) == (3, 2)  # string 3 isolated
    strings = device.models[804]
    assert [s.Idx.value for s in strings] == [1, 2, 3]
    for index in (0, 1):
        assert strings[index].ConSt.value is not None
        assert strings[index].A.cvalue == pytest.approx(
            -result.plant.string_current_a[index], abs=1.0
        )
    assert strings[2].St.value == 0  # off the bus


def test_a_client_disconnects_the_system_and_bad_writes_get_exceptions(served_telecom):
    result, server = served_telecom
    master = result.controller.system_master.master
    battery = _scan(server.port).models[802][0]
    set_op = battery.points["SetOp"]
    client = ModbusTcpClient("127.0.0.1", port=server.port)
    assert client.connect()
    try:
        soc_address = battery.points["SoC"].offset + battery.model_addr
        refused = client.write_register(soc_address, 10, device_id=1)
        assert refused.isError() and refused.exception_code == 2  # read-only
        bad = client.write_register(set_op.offset + battery.model_addr, 99, device_id=1)
        assert bad.isError() and bad.exception_code == 3  # no such operation
        assert master.wanted_on
        done = client.write_register(set_op.offset + battery.model_addr, 2, device_id=1)
        assert not done.isError()
        assert not master.wanted_on  # SetOp = disconnect reached the system master
    finally:
        master.request_connected(True)
        client.close()


def test_serve_modbus_command_runs_and_reports_a_bad_endpoint():
    runner = CliRunner()
    ok = runner.invoke(app, ["serve-modbus", "telecom-backup", "--port", "0", "--speed", "1000",
                             "--duration", "5"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    bad = runner.invoke(app, ["serve-modbus", "telecom-backup", "--rtu", "/dev/no-such-tty",
                              "--duration", "5"])  # fmt: skip
    assert bad.exit_code == 2
    assert "/dev/no-such-tty" in bad.output


def test_a_single_string_is_served_read_only():
    simulation = Simulation(load_builtin("ess-rack-126s"), duration_s=20.0)
    server = attach_sunspec(simulation, TcpEndpoint("127.0.0.1", 0))
    server.start()
    try:
        result = simulation.run()
        state = result.controller.bms[0].state
        device = _scan(server.port)
        battery = device.models[802][0]
        assert battery.SoC.cvalue == pytest.approx(state.soc_pct, abs=0.1)
        assert battery.V.cvalue == pytest.approx(result.plant.bus_voltage_v, abs=1.0)
        assert battery.ADisChaMax.cvalue == pytest.approx(state.limits.discharge_current_a, abs=0.1)
        assert (device.models[803][0].NStr.value, len(device.models[804])) == (1, 1)
        client = ModbusTcpClient("127.0.0.1", port=server.port)
        assert client.connect()
        try:
            set_op = battery.points["SetOp"].offset + battery.model_addr
            refused = client.write_register(set_op, 2, device_id=1)
            assert refused.isError() and refused.exception_code == 2  # no system master
        finally:
            client.close()
    finally:
        server.stop()
