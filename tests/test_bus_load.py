"""On-wire CAN frame lengths against expectations worked out independently of the code.

Convention under test: a frame's length includes the 3-bit intermission, so a standard 8-byte
data frame is 111 bits unstuffed and at most 135 bits (Davis et al. 2007, "CAN schedulability
analysis: refuted, revisited and revised": (g + 8s + 13 + floor((g + 8s - 1) / 4)) bits with
g = 34 standard, 54 extended; Linux include/linux/can/length.h gives the same bounds).
"""

from __future__ import annotations

import itertools
import random

import can
import pytest

from cellwarden.comms.bus_load import (
    bus_load,
    busiest_window,
    crc15,
    frame_bits,
    stuff_bit_count,
    stuffed_region,
)
from cellwarden.comms.can_bus import Frame

# A real frame captured on a car's OBD-II port, published with its CRC as a bit stream
# (github.com/dominic-meads/CAN_2.0, README and CRC_CALC/HDL/sim/can_crc_tb.v): identifier
# 0b00011000001, DLC 8, data 40 01 08 75 00 00 00 00, CRC 101101101000000.
CAR_ID = 0b00011000001
CAR_DATA = bytes.fromhex("4001087500000000")
CAR_BITS = "00001100000100010000100000000000001000010000111010100000000000000000000000000000000"
CAR_CRC = "101101101000000"


def _as_text(bits: list[int]) -> str:
    return "".join(map(str, bits))


def _crc_by_division(bits: str) -> int:
    """CRC-15 as the remainder of bits · x^15 divided by x^15+x^14+x^10+x^8+x^7+x^4+x^3+1."""
    generator = "1100010110011001"
    work = list(bits + "0" * 15)
    for i in range(len(bits)):
        if work[i] == "1":
            for j, g in enumerate(generator):
                work[i + j] = "0" if work[i + j] == g else "1"
    return int("".join(work[-15:]), 2)


def _destuff(stuffed: str) -> str:
    """A receiver's view: drop the bit after every five equal bits (stuff bits count)."""
    out, run, last, skip = [], 0, "", False
    for bit in stuffed:
        if skip:
            assert bit != last, "a stuff bit must have the opposite level"
            last, run, skip = bit, 1, False
            continue
        run = run + 1 if bit == last else 1
        last = bit
        out.append(bit)
        skip = run == 5
    return "".join(out)


def _stuff(bits: str) -> str:
    """A transmitter's view, built separately from the code under test."""
    out = ""
    for bit in bits:
        out += bit
        if len(out) >= 5 and len(set(out[-5:])) == 1:
            out += "1" if out[-1] == "0" else "0"
    return out


def test_crc15_check_value_of_the_crc_catalogue():
    # CRC-15/CAN in the CRC RevEng catalogue: check = 0x059E over ASCII "123456789"
    bits = [int(b) for byte in b"123456789" for b in f"{byte:08b}"]
    assert crc15(bits) == 0x059E
    assert _crc_by_division(_as_text(bits)) == 0x059E


def test_real_car_frame_bits_crc_and_stuffing():
    region = _as_text(stuffed_region(CAR_ID, CAR_DATA))
    assert region == CAR_BITS + CAR_CRC
    # by hand over the runs: 5 zeros → 1, 13 zeros → 2, 32 zeros → 6, the CRC's 6 zeros → 1
    assert stuff_bit_count(stuffed_region(CAR_ID, CAR_DATA)) == 10
    assert frame_bits(CAR_ID, CAR_DATA) == 98 + 10 + 13


def test_all_zero_frame_is_heavily_stuffed():
    # ID 0, no data: SOF..DLC and the CRC of zeros are 34 dominant bits → a stuff bit after
    # every five: 6; then 10 fixed bits and the 3-bit intermission
    assert _as_text(stuffed_region(0, b"")) == "0" * 34
    assert frame_bits(0, b"") == 34 + 6 + 13
    # eight zero bytes: 15 zeros, DLC 1000, 67 zeros, then the CRC
    region = _as_text(stuffed_region(0x000, bytes(8)))
    assert region[:19] == "0" * 15 + "1000"
    expected = len(_stuff(region)) - len(region)
    assert expected >= 16  # (15 → 3) + (67 → 13) before counting the CRC
    assert frame_bits(0x000, bytes(8)) == 98 + expected + 13


def test_frame_designed_to_need_no_stuffing():
    # alternating ID and data, last byte chosen so the CRC has no run of five either
    data = bytes([0x55] * 7 + [0x09])
    region = _as_text(stuffed_region(0x555, data))
    assert max(len(list(run)) for _, run in itertools.groupby(region)) < 5
    assert int(region[-15:], 2) == _crc_by_division(region[:-15])
    assert frame_bits(0x555, data) == 111  # 19 + 64 + 15 + 13, the unstuffed minimum
    ext_data = bytes([0x55] * 7 + [0x0A])
    ext_region = _as_text(stuffed_region(0x0AAAAAAA, ext_data, extended=True))
    assert max(len(list(run)) for _, run in itertools.groupby(ext_region)) < 5
    assert frame_bits(0x0AAAAAAA, ext_data, extended=True) == 131  # exactly 20 more


@pytest.mark.parametrize(
    "sequence, stuffs",
    [
        ([0] * 4, 0),
        ([0] * 5, 1),
        ([0] * 9, 1),
        ([0] * 10, 2),
        ([0] * 5 + [1] * 3, 1),  # the stuff bit (1) and three ones make four
        ([0] * 5 + [1] * 4, 2),  # ... and four ones make five: stuffed again
        ([1, 0] * 20, 0),
    ],
)
def test_stuff_bits_count_towards_the_next_run(sequence, stuffs):
    assert stuff_bit_count(sequence) == stuffs
    text = _as_text(sequence)
    assert len(_stuff(text)) - len(text) == stuffs


def test_random_frames_within_bounds_and_round_trip():
    rng = random.Random(7)
    for _ in range(300):
        length = rng.randrange(9)
        data = bytes(rng.randrange(256) for _ in range(length))
        std_id, ext_id = rng.randrange(0x800), rng.randrange(0x2000_0000)
        std = _as_text(stuffed_region(std_id, data))
        ext = _as_text(stuffed_region(ext_id, data, extended=True))
        assert len(ext) - len(std) == 20  # SRR, IDE and 18 extension bits, r1 in place of IDE
        for region, extended, ident, head in ((std, False, std_id, 34), (ext, True, ext_id, 54)):
            assert int(region[-15:], 2) == _crc_by_division(region[:-15])
            stuffed = _stuff(region)
            assert _destuff(stuffed) == region
            bits = frame_bits(ident, data, extended)
            assert bits == len(stuffed) + 13
            unstuffed = head + 8 * length + 13
            assert unstuffed <= bits <= unstuffed + (head + 8 * length - 1) // 4


def test_eight_byte_bounds():
    rng = random.Random(1)
    lengths = [
        frame_bits(rng.randrange(0x800), bytes(rng.randrange(256) for _ in range(8)))
        for _ in range(200)
    ]
    assert min(lengths) >= 111 and max(lengths) <= 135
    ext = [
        frame_bits(rng.randrange(0x2000_0000), bytes(rng.randrange(256) for _ in range(8)), True)
        for _ in range(200)
    ]
    assert min(ext) >= 131 and max(ext) <= 160
    assert sum(ext) / len(ext) > sum(lengths) / len(lengths) + 20


def test_bus_load_from_tuples_messages_and_frames():
    one = frame_bits(CAR_ID, CAR_DATA)
    as_tuple = [(0.0, CAR_ID, CAR_DATA, False)] * 100
    as_message = [can.Message(arbitration_id=CAR_ID, data=CAR_DATA, is_extended_id=False)] * 100
    as_frame = [Frame(0.0, CAR_ID, CAR_DATA)] * 100
    expected = 100 * one / 500_000
    for frames in (as_tuple, as_message, as_frame):
        assert bus_load(frames, 500_000, 1.0) == pytest.approx(expected)
    with pytest.raises(ValueError):
        bus_load([can.Message(arbitration_id=1, is_remote_frame=True)], 500_000, 1.0)


def test_busiest_window():
    # 10 frames at 0.0, 20 at 0.1, 5 at 0.15: the window [0.1, 0.2) holds 25
    counts = ((0.0, 10), (0.1, 20), (0.15, 5))
    frames = [(t, 0, bytes(8), False) for t, n in counts for _ in range(n)]
    start, load = busiest_window(frames, 500_000, 0.1)
    assert start == pytest.approx(0.1)
    assert load == pytest.approx(25 * frame_bits(0, bytes(8)) / 50_000)


def test_bad_frames_are_clear_errors():
    with pytest.raises(ValueError, match="8 data bytes"):
        frame_bits(1, bytes(9))
    with pytest.raises(ValueError, match="standard range"):
        frame_bits(0x800, b"")
    with pytest.raises(ValueError, match="extended range"):
        frame_bits(0x2000_0000, b"", True)
