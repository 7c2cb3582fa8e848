"""The serial console over a real pseudo-terminal (and ``loop://``), against a BMS that has run
a short closed-loop simulation of the e-scooter scenario."""

from __future__ import annotations

import os
import select
import time
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pytest
import serial

from cellwarden.bms.string_bms import StringBms
from cellwarden.comms.console import (
    DEFAULT_EVENT_COUNT,
    LIVE_KEYS,
    MAX_LINE_BYTES,
    MAX_READ_BYTES,
    SerialConsole,
)
from cellwarden.model.bms import BmsSettings
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation

SCENARIO = "escooter-13s-urban"
REPLY_TIMEOUT_S = 5.0


def _run_bms(duration_s: float = 30.0) -> StringBms:
    result = Simulation(load_builtin(SCENARIO), duration_s=duration_s).run()
    return result.controller.bms[0]


@pytest.fixture
def bms() -> StringBms:
    return _run_bms()


def _is_final(line: str) -> bool:
    return line == "OK" or line.startswith(("OK ", "ERR "))


@dataclass
class PtyUser:
    """The user's end of a pseudo-terminal whose other end is the console's serial port."""

    console: SerialConsole
    master_fd: int
    now_s: float
    _buffer: str = ""

    def send(self, data: bytes) -> None:
        os.write(self.master_fd, data)

    def replies(self, count: int) -> list[list[str]]:
        """Poll the console until ``count`` complete replies have come back."""
        replies: list[list[str]] = []
        current: list[str] = []
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        while len(replies) < count:
            assert time.monotonic() < deadline, f"no reply; got {replies} and {current}"
            self.console.poll(self.now_s)
            ready, _, _ = select.select([self.master_fd], [], [], 0.01)
            if ready:
                self._buffer += os.read(self.master_fd, 65536).decode("ascii")
            while "\r\n" in self._buffer:
                line, self._buffer = self._buffer.split("\r\n", 1)
                current.append(line)
                if _is_final(line):
                    replies.append(current)
                    current = []
        return replies

    def ask(self, command: str) -> list[str]:
        self.send(command.encode("ascii") + b"\r\n")
        return self.replies(1)[0]


@pytest.fixture
def user(bms: StringBms) -> Iterator[PtyUser]:
    master_fd, slave_fd = os.openpty()
    port = serial.Serial(os.ttyname(slave_fd), timeout=0)
    try:
        yield PtyUser(SerialConsole(port, bms), master_fd, now_s=bms.state.time_s + 0.5)
    finally:
        port.close()
        os.close(slave_fd)
        os.close(master_fd)


def _pairs(reply: list[str]) -> dict[str, str]:
    return dict(line.split("=", 1) for line in reply[:-1])


# --- reading ------------------------------------------------------------------------------
def test_status_reports_the_published_state(user: PtyUser, bms: StringBms) -> None:
    reply = user.ask("status")
    assert reply[-1] == "OK"
    values = _pairs(reply)
    state = bms.state
    assert values["path_state"] == state.path_state == "normal"
    assert values["active_codes"] == (",".join(state.active_codes) or "none")
    assert int(values["balancing_cells"]) == state.balancing_cells
    assert float(values["age_s"]) == pytest.approx(0.5)
    expected = {
        "time_s": (state.time_s, 1e-3),
        "soc_pct": (state.soc_pct, 0.01),
        "soc_min_pct": (state.soc_min_pct, 0.01),
        "soc_max_pct": (state.soc_max_pct, 0.01),
        "capacity_soh_pct": (state.capacity_soh_pct, 0.01),
        "resistance_soh_pct": (state.resistance_soh_pct, 0.01),
        "pack_voltage_v": (state.pack_voltage_v, 1e-3),
        "current_a": (state.current_a, 1e-3),
        "cell_voltage_min_v": (state.cell_voltage_min_v, 1e-4),
        "cell_voltage_max_v": (state.cell_voltage_max_v, 1e-4),
        "temp_min_c": (state.temp_min_c, 0.01),
        "temp_max_c": (state.temp_max_c, 0.01),
        "limits.charge_current_a": (state.limits.charge_current_a, 1e-3),
        "limits.discharge_current_a": (state.limits.discharge_current_a, 1e-3),
        "limits.charge_voltage_v": (state.limits.charge_voltage_v, 1e-3),
        "limits.discharge_voltage_v": (state.limits.discharge_voltage_v, 1e-3),
    }
    for key, (value, resolution) in expected.items():
        assert float(values[key]) == pytest.approx(value, abs=resolution / 2), key


def test_commands_are_case_insensitive(user: PtyUser) -> None:
    assert user.ask("STATUS")[-1] == "OK"
    reply = user.ask("Get Balancing.Strategy")
    assert reply == ["balancing.strategy=charge (one of voltage, charge)", "OK"]
    help_reply = user.ask("help")
    assert help_reply[-1] == "OK"
    for command in ("status", "cells", "events", "get", "set"):
        assert any(line.startswith(command) for line in help_reply)


def test_before_the_first_main_task_there_is_no_data_yet() -> None:
    fresh = Simulation(load_builtin(SCENARIO), duration_s=30.0).controller.bms[0]
    assert fresh.state is None
    console = SerialConsole(serial.serial_for_url("loop://", timeout=0), fresh)
    assert console.execute("status", 0.0)[-1].startswith("ERR no data yet")
    assert console.execute("cells", 0.0)[-1].startswith("ERR no data yet")
    assert console.execute("events", 0.0) == ["OK"]


def test_cells_show_the_last_sample_the_estimate_and_the_balancer(
    user: PtyUser, bms: StringBms
) -> None:
    bms.balancer.mask[[2, 7]] = True  # as if the balancer bled these two cells
    reply = user.ask("cells")
    assert reply[0] == "cell voltage_v soc_pct balancing"
    assert reply[-1] == "OK"
    rows = [line.split() for line in reply[1:-1]]
    voltage_v = bms.voltages.cell_voltage_v
    assert [int(r[0]) for r in rows] == list(range(1, bms.config.series + 1))
    np.testing.assert_allclose([float(r[1]) for r in rows], voltage_v, atol=5e-5)
    np.testing.assert_allclose([float(r[2]) for r in rows], 100 * bms.estimator.soc, atol=5e-3)
    assert [r[3] == "yes" for r in rows] == list(bms.balancer.mask)


def test_events_list_the_tail_of_the_log(user: PtyUser, bms: StringBms) -> None:
    for index in range(12):
        bms.log.info(31.0 + index, f"T{index:02d}", f"test event {index}")
    events = bms.log.events
    reply = user.ask("events")
    assert reply[-1] == "OK"
    assert len(reply) - 1 == DEFAULT_EVENT_COUNT
    for line, event in zip(reply[:-1], events[-DEFAULT_EVENT_COUNT:], strict=True):
        assert line == (
            f"time_s={event.time_s:.3f} code={event.code} kind={event.kind} name={event.name}"
        )
    everything = user.ask("events 1000")[:-1]
    assert len(everything) == len(events) == 14
    assert everything[0].endswith("code=PATH kind=info name=power path standby -> precharge")
    assert user.ask("events 2")[:-1] == everything[-2:]
    for bad in ("events 0", "events -1", "events x", "events 1001", "events 1 2"):
        assert user.ask(bad)[-1].startswith("ERR "), bad


# --- settings -----------------------------------------------------------------------------
def test_get_lists_the_settable_keys_with_values_and_model_ranges(
    user: PtyUser, bms: StringBms
) -> None:
    reply = user.ask("get")
    assert reply[-1] == "OK"
    listed = {line.split("=", 1)[0]: line for line in reply[:-1]}
    assert set(listed) == LIVE_KEYS
    assert listed["balancing.threshold_soc_pct"] == (
        "balancing.threshold_soc_pct=2.0 (number, 0 < value <= 20)"
    )
    assert listed["power_path.precharge_retries"] == (
        "power_path.precharge_retries=2 (whole number, 0 <= value <= 10)"
    )
    assert listed["diagnosis.frozen_current_samples"].endswith("(whole number, value >= 10)")
    assert listed["balancing.min_cell_voltage_v"] == (
        "balancing.min_cell_voltage_v=none (any number, or none)"
    )
    # a setting fixed at start-up can be read but is marked read-only
    assert user.ask("get diagnosis.imbalance_v") == [
        "diagnosis.imbalance_v=0.15 (number, value > 0, read-only while running)",
        "OK",
    ]
    assert user.ask("get nothing.here")[-1].startswith("ERR ")


def test_set_threshold_changes_what_the_balancer_does(user: PtyUser, bms: StringBms) -> None:
    balancer = bms.balancer
    soc, capacity_ah = bms.estimator.soc, bms.capacity.capacity_ah
    cell_v = bms.voltages.cell_voltage_v

    def bleeding() -> np.ndarray:
        balancer.mask[:] = False
        balancer.plan(soc, capacity_ah)
        return balancer.update(1.0, cell_v, 0.0, bms.model.capacity_ah, True, 1.0).copy()

    excess_pct = 100.0 * (soc - soc.min())
    assert excess_pct.max() < 2.0  # the default threshold: nothing to balance
    assert not bleeding().any()
    assert user.ask("set balancing.threshold_soc_pct 1.0") == ["OK balancing.threshold_soc_pct=1.0"]
    assert bms.config.settings.balancing.threshold_soc_pct == 1.0
    assert balancer.settings is bms.config.settings.balancing
    mask = bleeding()
    assert mask.any()
    np.testing.assert_array_equal(mask, excess_pct > 1.0 + 1e-9)
    assert user.ask("get balancing.threshold_soc_pct")[0].startswith(
        "balancing.threshold_soc_pct=1.0 "
    )


# a valid value, different from the default, for every live key
NEW_VALUES = {
    "power_path.precharge_done_pct": ("7.5", 7.5),
    "power_path.precharge_done_current_c": ("0.1", 0.1),
    "power_path.precharge_timeout_s": ("4", 4.0),
    "power_path.precharge_retries": ("3", 3),
    "power_path.ramp_down_timeout_s": ("0", 0.0),
    "power_path.open_current_c": ("0.05", 0.05),
    "power_path.welded_check_s": ("2.5", 2.5),
    "power_path.precharge_min_s": ("0.3", 0.3),
    "balancing.strategy": ("Voltage", "voltage"),
    "balancing.threshold_v": ("0.02", 0.02),
    "balancing.threshold_soc_pct": ("3", 3.0),
    "balancing.min_cell_voltage_v": ("3.8", 3.8),
    "balancing.always_allowed": ("true", True),
    "balancing.max_rest_current_c": ("0.1", 0.1),
    "estimation.voltage_noise_v": ("0.01", 0.01),
    "estimation.soc_process_noise": ("2e-7", 2e-7),
    "estimation.rc_process_noise_v": ("2e-5", 2e-5),
    "estimation.rest_current_c": ("0.03", 0.03),
    "estimation.rest_time_s": ("600", 600.0),
    "estimation.full_charge_current_c": ("0.04", 0.04),
    "diagnosis.frozen_current_samples": ("50", 50),
    "diagnosis.open_wire_period_s": ("2", 2.0),
    "diagnosis.overcurrent_curve_s": ("10", 10.0),
}


def test_every_live_key_reaches_the_component_that_uses_it(user: PtyUser, bms: StringBms) -> None:
    assert set(NEW_VALUES) == LIVE_KEYS
    for key, (text, value) in NEW_VALUES.items():
        group, name = key.split(".")
        assert getattr(getattr(bms.config.settings, group), name) != value, key
        reply = user.ask(f"set {key} {text}")
        assert reply == [f"OK {key}={str(value).lower() if isinstance(value, bool) else value}"]
        assert getattr(getattr(bms.config.settings, group), name) == value, key
    settings = bms.config.settings
    capacity_ah = bms.model.capacity_ah
    assert bms.path.settings is settings.power_path
    assert bms.path.open_current_a == pytest.approx(0.05 * capacity_ah)
    assert bms.path.precharge_current_a == pytest.approx(0.1 * capacity_ah)
    assert bms.estimator.settings is settings.estimation
    assert bms.recalibration.settings is settings.estimation
    assert bms.recalibration.rest_a == pytest.approx(0.03 * capacity_ah)
    assert bms.recalibration.taper_a == pytest.approx(0.04 * capacity_ah)
    assert bms.balancer.settings is settings.balancing
    assert bms.balancer.min_cell_voltage_v == 3.8
    assert bms.plausibility.current_frozen.samples == 50
    # back to the chemistry's nominal voltage as the balancing floor
    assert user.ask("set balancing.min_cell_voltage_v none") == [
        "OK balancing.min_cell_voltage_v=none"
    ]
    assert bms.balancer.min_cell_voltage_v == bms.config.cell.chemistry.nominal_voltage_v


@pytest.mark.parametrize(
    ("command", "names"),
    [
        ("set balancing.threshold_soc_pct 25", ["balancing.threshold_soc_pct=25", "<= 20"]),
        ("set balancing.threshold_soc_pct 0", ["balancing.threshold_soc_pct=0", "0 < value"]),
        ("set balancing.threshold_soc_pct abc", ["balancing.threshold_soc_pct=abc", "<= 20"]),
        ("set power_path.precharge_retries 2.5", ["precharge_retries=2.5", "whole number"]),
        ("set power_path.precharge_retries 11", ["precharge_retries=11", "0 <= value <= 10"]),
        ("set balancing.strategy fast", ["balancing.strategy=fast", "voltage, charge"]),
        ("set balancing.always_allowed maybe", ["always_allowed=maybe", "true or false"]),
        ("set balancing.threshold_v none", ["balancing.threshold_v=none", "0 < value <= 0.5"]),
        ("set estimation.rest_time_s inf", ["rest_time_s=inf", "value > 0"]),
        ("set estimation.rest_time_s nan", ["rest_time_s=nan", "value > 0"]),
        ("set diagnosis.imbalance_v 0.2", ["diagnosis.imbalance_v=0.2", "read-only"]),
        ("set estimation.initial_soc_sigma 0.1", ["initial_soc_sigma=0.1", "read-only"]),
        ("set balancing.no_such_key 1", ["balancing.no_such_key=1", "unknown key"]),
        ("set nothing 1", ["nothing=1", "unknown key"]),
        ("set balancing.threshold_soc_pct", ["usage: set KEY VALUE"]),
        ("set balancing.threshold_soc_pct 1 2", ["usage: set KEY VALUE"]),
    ],
)
def test_bad_set_is_refused_and_changes_nothing(
    user: PtyUser, bms: StringBms, command: str, names: list[str]
) -> None:
    before = bms.config.settings
    balancer_settings, path_settings = bms.balancer.settings, bms.path.settings
    reply = user.ask(command)
    assert len(reply) == 1
    assert reply[0].startswith("ERR ")
    for name in names:
        assert name in reply[0]
    assert bms.config.settings is before
    assert before == BmsSettings()
    assert bms.balancer.settings is balancer_settings
    assert bms.path.settings is path_settings


def test_unknown_command(user: PtyUser) -> None:
    reply = user.ask("reboot now")
    assert reply == ["ERR unknown command 'reboot now'; 'help' lists the commands"]


# --- framing and bad input ------------------------------------------------------------------
def test_long_lines_and_binary_garbage_are_refused_and_the_console_keeps_answering(
    user: PtyUser,
) -> None:
    user.send(b"x" * (MAX_LINE_BYTES + 1) + b"\r\n")
    user.send(b"\xff\xfe\x00\x1b[2J\x80binary\n")
    user.send(b"status\r\n")
    too_long, garbage, status = user.replies(3)
    assert too_long == [f"ERR line longer than {MAX_LINE_BYTES} bytes, discarded"]
    assert garbage == ["ERR line holds non-ASCII or control bytes, discarded"]
    assert status[-1] == "OK"
    # exactly the limit is still a line
    assert user.ask("help".ljust(MAX_LINE_BYTES))[-1] == "OK"


def test_cr_lf_and_crlf_end_lines_and_empty_lines_get_no_reply(user: PtyUser) -> None:
    user.send(b"\n\n  \t \r\nget balancing.strategy\rget balancing.strategy\n")
    user.send(b"get balancing.strategy\r\nhelp\r")
    replies = user.replies(4)
    assert [r[0].split(" ")[0] for r in replies[:3]] == ["balancing.strategy=charge"] * 3
    assert replies[3][0].startswith("help")
    assert replies[3][-1] == "OK"
    for _ in range(5):  # nothing more comes
        user.console.poll(user.now_s)
        assert not select.select([user.master_fd], [], [], 0.02)[0]


def test_loop_url_port() -> None:
    """``loop://`` hands the console's own replies back: read them before the next poll."""
    bms = _run_bms(5.0)
    port = serial.serial_for_url("loop://", timeout=0)
    console = SerialConsole(port, bms)
    port.write(b"set balancing.threshold_soc_pct 5\r\n")
    assert console.poll(5.0) == 1
    assert port.read(port.in_waiting) == b"OK balancing.threshold_soc_pct=5.0\r\n"
    assert bms.balancer.settings.threshold_soc_pct == 5.0
    # a line and its CR LF split over several polls
    port.write(b"get balan")
    assert console.poll(5.0) == 0
    port.write(b"cing.strategy\r")
    assert console.poll(5.0) == 1
    assert port.read(port.in_waiting).startswith(b"balancing.strategy=charge (")
    port.write(b"\nhel")
    assert console.poll(5.0) == 0
    port.write(b"p\r\n")
    assert console.poll(5.0) == 1
    assert port.read(port.in_waiting).endswith(b"\r\nOK\r\n")
    # a flood over several polls is one over-long line, answered once when it ends
    for _ in range(3):
        port.write(b"\x00" * 3000)  # a loop:// port holds at most 4096 bytes
        assert console.poll(5.0) == 0
    port.write(b"\n")
    assert console.poll(5.0) == 1
    assert port.read(port.in_waiting) == (
        f"ERR line longer than {MAX_LINE_BYTES} bytes, discarded\r\n".encode()
    )


class MemoryPort:
    """An in-memory port: ``incoming`` is what the user typed, ``outgoing`` the replies."""

    def __init__(self, incoming: bytes) -> None:
        self.incoming = bytearray(incoming)
        self.outgoing = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self.incoming)

    def read(self, size: int = 1) -> bytes:
        data = bytes(self.incoming[:size])
        del self.incoming[:size]
        return data

    def write(self, data: bytes, /) -> int | None:
        self.outgoing += data
        return len(data)


def test_one_poll_reads_a_bounded_amount(bms: StringBms) -> None:
    commands = b"help\r\n" * (MAX_READ_BYTES // 6 + 10)
    port = MemoryPort(commands)
    console = SerialConsole(port, bms)
    assert console.poll(31.0) == MAX_READ_BYTES // 6
    assert port.in_waiting == len(commands) - MAX_READ_BYTES
    assert console.poll(31.0) == 10
    assert port.outgoing.count(b"\r\nOK\r\n") == MAX_READ_BYTES // 6 + 10


class BrokenPort:
    """A port whose every write fails (an unplugged USB adapter)."""

    in_waiting = 6

    def read(self, size: int = 1) -> bytes:
        return b"help\r\n"[:size]

    def write(self, data: bytes, /) -> int | None:
        raise serial.SerialException("device disconnected")


def test_a_failing_port_is_counted_never_raised(bms: StringBms) -> None:
    console = SerialConsole(BrokenPort(), bms)
    assert console.poll(31.0) == 1
    assert console.port_errors == 1
    assert "disconnected" in console.last_port_error


def test_simulate_serves_the_console_on_a_pseudo_terminal(tmp_path):
    """`cellwarden simulate --console pty` paces the run and answers a user on the pty."""
    import re
    import select
    import subprocess
    import sys
    import time

    command = [
        sys.executable, "-c", "from cellwarden.cli import app; app()", "simulate",
        "utility-cart-24s", "--duration", "40", "--out", str(tmp_path), "--console", "pty",
        "--speed", "10",
    ]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        device = re.search(r"(/dev/pts/\d+)", process.stderr.readline()).group(1)
        fd = os.open(device, os.O_RDWR | os.O_NOCTTY)
        time.sleep(0.5)  # at 10x, the first main tasks have run
        os.write(fd, b"status\r\n")
        reply = b""
        deadline = time.monotonic() + 10.0
        while not reply.endswith(b"OK\r\n") and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                reply += os.read(fd, 4096)
        os.close(fd)
        assert b"path_state=" in reply and reply.endswith(b"OK\r\n")
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
