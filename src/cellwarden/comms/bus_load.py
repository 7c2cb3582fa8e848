"""The exact on-wire length of classical CAN frames, and the bus load a set of frames makes.

A frame's length is counted from its real identifier and data: the bit sequence from SOF to the
end of the CRC sequence is built, its CRC-15 computed, and the stuff bits counted (ISO 11898-1:
after five equal bits an opposite bit is inserted, and a stuff bit starts the next run). The
fixed-form tail follows unstuffed: CRC delimiter, ACK slot and delimiter, 7-bit EOF.

Convention: **a frame's length includes the 3-bit intermission** that must follow it before the
next frame may start, so back-to-back frames of ``frame_bits`` bits each fill the bus exactly.
A standard 8-byte data frame is then 111 bits without stuffing and at most 135 with it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import can

from cellwarden.comms.can_bus import Frame

CRC15_POLYNOMIAL = 0x4599
STANDARD_ID_MAX = 0x7FF
EXTENDED_ID_MAX = 0x1FFF_FFFF
MAX_DATA_BYTES = 8
# CRC delimiter 1, ACK slot 1, ACK delimiter 1, end of frame 7, intermission 3
TAIL_BITS = 1 + 1 + 1 + 7 + 3
STUFF_RUN = 5


def crc15(bits: Sequence[int]) -> int:
    """The CAN CRC-15 (polynomial 0x4599, initial value 0) of a bit sequence, MSB first."""
    crc = 0
    for bit in bits:
        feedback = bit ^ (crc >> 14)
        crc = (crc << 1) & 0x7FFF
        if feedback:
            crc ^= CRC15_POLYNOMIAL
    return crc


def _bits(value: int, width: int) -> list[int]:
    return [(value >> shift) & 1 for shift in range(width - 1, -1, -1)]


def stuffed_region(frame_id: int, data: bytes, extended: bool = False) -> list[int]:
    """The destuffed bits from SOF to the end of the CRC sequence of a data frame."""
    if len(data) > MAX_DATA_BYTES:
        raise ValueError(f"a classical CAN frame carries at most 8 data bytes (got {len(data)})")
    limit = EXTENDED_ID_MAX if extended else STANDARD_ID_MAX
    if not 0 <= frame_id <= limit:
        kind = "extended" if extended else "standard"
        raise ValueError(f"identifier 0x{frame_id:X} is outside the {kind} range 0..0x{limit:X}")
    if extended:
        # SOF, base ID (ID28..ID18), SRR, IDE, ID extension (ID17..ID0), RTR, r1, r0
        head = [0, *_bits(frame_id >> 18, 11), 1, 1, *_bits(frame_id & 0x3FFFF, 18), 0, 0, 0]
    else:
        head = [0, *_bits(frame_id, 11), 0, 0, 0]  # SOF, ID, RTR, IDE, r0
    bits = head + _bits(len(data), 4) + _bits(int.from_bytes(data, "big"), 8 * len(data))
    return bits + _bits(crc15(bits), 15)


def stuff_bit_count(bits: Sequence[int]) -> int:
    """How many stuff bits a transmitter inserts into ``bits`` (stuff bits start new runs)."""
    count = run = 0
    last = -1
    for bit in bits:
        if bit == last:
            run += 1
        else:
            last, run = bit, 1
        if run == STUFF_RUN:
            count += 1
            last, run = 1 - bit, 1  # the stuff bit, of opposite level, begins the next run
    return count


def frame_bits(frame_id: int, data: bytes, extended: bool = False) -> int:
    """Bits a classical CAN data frame occupies on the wire, stuff bits and the 3-bit
    intermission included."""
    return _frame_bits(frame_id, bytes(data), extended)


@lru_cache(maxsize=65536)
def _frame_bits(frame_id: int, data: bytes, extended: bool) -> int:
    region = stuffed_region(frame_id, data, extended)
    return len(region) + stuff_bit_count(region) + TAIL_BITS


FrameLike = tuple[float, int, bytes, bool] | can.Message | Frame


def _fields(frame: FrameLike) -> tuple[float, int, bytes, bool]:
    """(time, identifier, data, extended) of a tuple, a ``can.Message`` or a ``Frame``."""
    if isinstance(frame, can.Message):
        if frame.is_remote_frame or frame.is_fd or frame.is_error_frame:
            raise ValueError("only classical CAN data frames are counted")
        return frame.timestamp, frame.arbitration_id, bytes(frame.data), frame.is_extended_id
    if isinstance(frame, tuple):
        time_s, frame_id, data, extended = frame
        return time_s, frame_id, bytes(data), extended
    return frame.time_s, frame.frame_id, bytes(frame.data), frame.extended


def timed_bits(frames: Iterable[FrameLike]) -> list[tuple[float, int]]:
    """(time, on-wire bits) of every frame, in the given order."""
    timed = []
    for frame in frames:
        time_s, frame_id, data, extended = _fields(frame)
        timed.append((time_s, frame_bits(frame_id, data, extended)))
    return timed


def bus_load(frames: Iterable[FrameLike], bitrate: int, duration_s: float) -> float:
    """Share of the bus's time (0..1+) the frames occupy over ``duration_s`` at ``bitrate``.

    ``frames`` are ``(time_s, frame_id, data, extended)`` tuples, ``can.Message`` objects or
    ``cellwarden.comms.can_bus.Frame``; their times are not used.
    """
    if bitrate <= 0 or duration_s <= 0:
        raise ValueError("bit rate and duration must be positive")
    return sum(bits for _, bits in timed_bits(frames)) / (bitrate * duration_s)


def busiest_window(
    frames: Iterable[FrameLike], bitrate: int, window_s: float
) -> tuple[float, float]:
    """(start time, load) of the window ``[t, t + window_s)`` holding the most frame bits,
    over windows starting at a frame's time."""
    timed = sorted(timed_bits(frames))
    if not timed:
        return 0.0, 0.0
    best_bits, best_start = 0, timed[0][0]
    total, first = 0, 0
    for time_s, bits in timed:  # sliding window ending at each frame, then scored from its start
        total += bits
        while timed[first][0] <= time_s - window_s + 1e-9:
            total -= timed[first][1]
            first += 1
        if total > best_bits:
            best_bits, best_start = total, timed[first][0]
    return best_start, best_bits / (bitrate * window_s)
