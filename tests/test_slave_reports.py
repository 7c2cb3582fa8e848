"""A string's slave reports encoded at once are the frames each slave's codecs make one at a
time (``FrameCodec.encode``, itself held to cantools), byte for byte, counters included; and a
block of frames travels and is logged as those frames."""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import CanNetwork, Frame, FrameBlock
from cellwarden.comms.e2e import AliveCounters
from cellwarden.comms.internal_protocol import SlaveState, mask_to_bits, slave_messages
from cellwarden.comms.slave_reports import (
    BalancingCommands,
    ReportLayout,
    SlaveReport,
    StringReportEncoder,
    StringReports,
)
from cellwarden.compiled import HAVE_NUMBA

AWKWARD_VOLTAGES_V = [np.nan, np.inf, -np.inf, -0.0, -1.0, 6.5535, 6.55351, 7.0, 3.30005,
                      3.30015, 1e-4 / 2, 2.5e-4, 1e300]  # fmt: skip
AWKWARD_TEMPS_C = [np.nan, np.inf, -np.inf, -40.0, -40.25, -39.75, 86.5, 86.75, 87.5, 25.25,
                   25.75, -273.15, 300.0]  # fmt: skip


def _report(rng: np.random.Generator, cells: int, sensors: int) -> SlaveReport:
    voltage_v = rng.uniform(2.0, 4.3, cells)
    pick = rng.random(cells) < 0.2
    voltage_v[pick] = rng.choice(AWKWARD_VOLTAGES_V, pick.sum())
    temp_c = np.round(rng.uniform(-45.0, 95.0, sensors) * 4) / 4  # exact quarter degrees
    pick = rng.random(sensors) < 0.2
    temp_c[pick] = rng.choice(AWKWARD_TEMPS_C, pick.sum())
    return SlaveReport(
        voltage_v=voltage_v,
        temp_c=temp_c,
        ntc_open=rng.random(sensors) < 0.1,
        ntc_short=rng.random(sensors) < 0.1,
        state=SlaveState(int(rng.integers(4))),
        open_wire_bits=int(rng.integers(2**cells)),
        balancing_bits=int(rng.integers(2**cells)),
        board_temp_c=float(rng.choice([rng.uniform(-50, 230), np.nan, 25.5, 26.5])),
        balancing_duty=float(rng.choice([rng.integers(16) / 15, 1.2, -0.1, np.nan])),
    )


def _frames_one_by_one(index: int, report: SlaveReport, alive: AliveCounters) -> list[bytes]:
    """The reference: the slave's frames through its codecs, one frame at a time."""
    m = slave_messages(index)
    sent = []
    for values in m.voltage_frames(report.voltage_v):
        sent.append(m.voltages.encode(values, alive=alive.next(m.voltages.frame_id)))
    for values in m.temperature_frames(report.temp_c, report.ntc_open, report.ntc_short):
        sent.append(m.temperatures.encode(values, alive=alive.next(m.temperatures.frame_id)))
    status = {m.signal("ST", "State"): int(report.state),
              m.signal("ST", "OpenWire"): report.open_wire_bits,
              m.signal("ST", "Balancing"): report.balancing_bits,
              m.signal("ST", "BoardTemp"): report.board_temp_c,
              m.signal("ST", "BalancingDuty"): report.balancing_duty}  # fmt: skip
    sent.append(m.status.encode(status, alive=alive.next(m.status.frame_id)))
    return sent


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize("seed", range(6))
def test_a_strings_reports_encode_as_its_slaves_codecs_do(monkeypatch, seed, compiled) -> None:
    monkeypatch.setattr(frame_arrays, "USE_NUMBA", compiled and HAVE_NUMBA)
    rng = np.random.default_rng(seed)
    slaves = int(rng.integers(1, 17))
    cells = rng.integers(1, 19, slaves).tolist()
    sensors = [int(rng.integers(0, count + 1)) for count in cells]
    encoder = StringReportEncoder(ReportLayout(cells, sensors))
    counters = [AliveCounters() for _ in range(slaves)]
    for cycle in range(25):  # the alive counters wrap
        reporting = rng.random(slaves) < 0.8
        reports = [_report(rng, c, s) if on else None
                   for c, s, on in zip(cells, sensors, reporting, strict=True)]  # fmt: skip
        block = encoder.encode(10.0 + cycle, reports)
        expected = [
            (slave_messages(index), data)
            for index, report in enumerate(reports) if report is not None
            for data in _frames_one_by_one(index, report, counters[index])
        ]  # fmt: skip
        if not expected:
            assert block is None
            continue
        assert block is not None
        got = [(frame.frame_id, frame.data) for frame in block.frames()]
        want_ids = []
        for index, report in enumerate(reports):
            if report is not None:
                m = slave_messages(index)
                want_ids += [m.voltages.frame_id] * -(-cells[index] // 3)
                want_ids += [m.temperatures.frame_id] * -(-sensors[index] // 6)
                want_ids.append(m.status.frame_id)
        assert got == list(zip(want_ids, [data for _, data in expected], strict=True))


def test_the_compiled_encoder_of_a_signal_with_an_integer_scale_matches_cantools() -> None:
    """The status frame's board temperature converts by cantools' integer conversion: the
    array encode treats it as linear; cantools itself agrees, value by value."""
    m = slave_messages(3)
    name = m.signal("ST", "BoardTemp")
    for value in [*np.linspace(-60.0, 240.0, 1201).tolist(), 25.5, 26.5, -39.5]:
        values = {name: value}
        assert m.status.encode(values, alive=5) == m.status._encode_cantools(values, alive=5)


def test_a_block_is_logged_and_heard_as_its_frames(tmp_path) -> None:
    rng = np.random.default_rng(7)
    payload = rng.integers(0, 256, (5, 8), dtype=np.uint8)
    block = FrameBlock(12.5, np.array([0x200, 0x201, 0x7FF, 0, 0x240]), payload)
    frames = block.frames()
    network = CanNetwork(log_path=tmp_path / "block.log")
    sender, receiver = network.port("internal"), network.port("internal")
    sender.send_block(block)
    sender.send(Frame(12.6, 0x100, b"\x01\x02"))
    assert receiver.receive() == [*frames, Frame(12.6, 0x100, b"\x01\x02")]
    assert receiver.received == 6 and sender.sent == 6
    network.close()
    reference = CanNetwork(log_path=tmp_path / "frames.log")
    one_by_one = reference.port("internal")
    for frame in [*frames, Frame(12.6, 0x100, b"\x01\x02")]:
        one_by_one.send(frame)
    reference.close()
    assert (tmp_path / "block.log").read_text() == (tmp_path / "frames.log").read_text()
    assert (tmp_path / "block.log").read_text().splitlines()[2] == (
        f"(12.500000) internal 7FF#{payload[2].tobytes().hex().upper()}"
    )


def test_a_plain_python_can_receiver_gets_a_blocks_frames() -> None:
    import can

    network = CanNetwork()
    sender = network.port("internal")
    channel = sender.bus.channel_id
    plain = can.Bus(interface="virtual", channel=channel, preserve_timestamps=True)
    block = FrameBlock(3.0, np.array([0x201, 0x202]), np.arange(16, dtype=np.uint8).reshape(2, 8))
    sender.send_block(block)
    received = [plain.recv(timeout=0.0) for _ in range(2)]
    assert [(m.arbitration_id, bytes(m.data), m.timestamp) for m in received] == [
        (0x201, bytes(range(8)), 3.0), (0x202, bytes(range(8, 16)), 3.0)]  # fmt: skip
    assert plain.recv(timeout=0.0) is None
    plain.shutdown()
    network.close()


def test_the_masters_balancing_commands_encode_as_each_slaves_codec_does() -> None:
    rng = np.random.default_rng(3)
    cells = [18, 17, 12, 18, 5]
    layout = ReportLayout(cells, [3] * len(cells))
    commands = BalancingCommands(layout)
    reference = AliveCounters()
    for cycle in range(20):  # the alive counters wrap
        mask = rng.random(sum(cells)) < rng.choice([0.0, 0.1, 0.9])
        block = commands.encode(float(cycle), mask)
        expected, first = [], 0
        for index, count in enumerate(cells):
            m = slave_messages(index)
            part = mask[first : first + count]
            values = {m.signal("Bal", "Enable"): int(part.any()),
                      m.signal("Bal", "Mask"): mask_to_bits(part)}  # fmt: skip
            data = m.balancing.encode(values, alive=reference.next(m.balancing.frame_id))
            expected.append(Frame(float(cycle), m.balancing.frame_id, data))
            first += count
        assert block.frames() == expected
        # and each slave reads its own back (a flipped bit: refused)
        payload = block.payload.copy()
        payload[1, 2] ^= 0x10
        usable, enabled, bits = commands.decode(np.arange(len(cells)), payload)
        parts = np.split(mask, np.cumsum(cells)[:-1])
        assert usable.tolist() == [True, False, True, True, True]
        assert enabled[usable].tolist() == [bool(p.any()) for p in parts if p is not parts[1]]
        assert bits[usable].tolist() == [mask_to_bits(p) for p in parts if p is not parts[1]]


def test_a_slave_reporting_twice_in_one_service_sends_its_reports_together() -> None:
    """After a latency fault two triggers can arrive at once: each slave's two reports go out
    one after the other, slave by slave, as the slaves' own sends would."""
    from cellwarden.simulation.daisy_chain import DaisyChain

    chain = DaisyChain.__new__(DaisyChain)  # only its report encoding is exercised
    layout = ReportLayout([3, 3], [1, 1])
    chain._reports = StringReportEncoder(layout)
    rng = np.random.default_rng(5)
    rounds = [StringReports.join(layout, [_report(rng, 3, 1), _report(rng, 3, 1)]),
              StringReports.join(layout, [_report(rng, 3, 1), None])]  # fmt: skip
    block = chain._reports_block(5.0, rounds)
    assert block is not None
    senders = chain._reports.layout.slave_of_id[block.frame_ids].tolist()
    assert senders == [0] * 6 + [1] * 3
    first_voltages = slave_messages(0).voltages
    alive = [first_voltages.decode(frame.data).alive for frame in block.frames()
             if frame.frame_id == first_voltages.frame_id]  # fmt: skip
    assert alive == [0, 1]


def test_hostile_blocks_and_arrays_are_refused_with_a_reason() -> None:
    good = np.zeros((2, 8), dtype=np.uint8)
    for ids, payload in (
        ([0x200, -1], good),
        ([0x200], good),
        ([0x200, 0x201], good[:, 0]),
        ([0x200, 0x201], good.astype(np.int64)),
        ([0.5, 1.5], good),
    ):
        with pytest.raises(ValueError, match="block"):
            FrameBlock(0.0, np.array(ids), payload)
    empty = FrameBlock(1.0, np.array([0x100, 0x101]), np.zeros((2, 0), dtype=np.uint8))
    assert [frame.data for frame in empty.frames()] == [b"", b""]
    kind = ReportLayout([18], [6]).kinds[0]
    with pytest.raises(ValueError, match="payloads"):
        frame_arrays.decode(kind.layout, np.zeros((3, 6), dtype=np.uint8), np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="signals"):
        frame_arrays.encode(kind.layout, np.zeros((2, 7)), np.ones((2, 7), bool),
                            np.zeros(2, int), np.zeros(2, np.uint8))  # fmt: skip
