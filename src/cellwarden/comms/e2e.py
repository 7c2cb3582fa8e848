"""End-to-end protection of CAN frames: an alive counter and a CRC-8 in every protected frame.

The CRC is CRC-8 SAE J1850 (polynomial 0x1D, initial value 0xFF, final XOR 0xFF) over the
frame identifier (two bytes, little endian, so a frame on the wrong identifier fails) and the
payload bytes before the CRC byte. The alive counter counts 0..15 per identifier.
"""

from __future__ import annotations

from enum import Enum

ALIVE_MODULO = 16


def _table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1D) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
        table.append(crc)
    return table


_CRC_TABLE = _table()


def crc8_j1850(data: bytes, crc: int = 0xFF) -> int:
    """CRC-8 SAE J1850 of ``data`` (check value of b"123456789" is 0x4B)."""
    table = _CRC_TABLE
    for byte in data:
        crc = table[crc ^ byte]
    return crc ^ 0xFF


def frame_crc(frame_id: int, payload: bytes) -> int:
    """The CRC a protected frame carries: over its identifier and ``payload``."""
    return crc8_j1850(bytes((frame_id & 0xFF, (frame_id >> 8) & 0xFF)) + payload)


class Verdict(Enum):
    OK = "ok"
    CRC_ERROR = "crc error"  # corrupted on the way, or the wrong sender
    REPEATED = "repeated"  # the same counter again: a frozen sender
    SKIPPED = "skipped"  # counter jumped: frames were lost in between (data still valid)


class AliveCounters:
    """A sender's alive counter per identifier."""

    def __init__(self) -> None:
        self._next: dict[int, int] = {}

    def next(self, frame_id: int) -> int:
        """The counter for the next frame of ``frame_id`` (0, 1, ..., 15, 0, ...)."""
        value = self._next.get(frame_id, 0)
        self._next[frame_id] = (value + 1) % ALIVE_MODULO
        return value


class AliveCheck:
    """The receiver's view of one identifier's alive counter."""

    def __init__(self) -> None:
        self.last: int | None = None

    def judge(self, counter: int) -> Verdict:
        last, self.last = self.last, counter
        if last is None or counter == (last + 1) % ALIVE_MODULO:
            return Verdict.OK
        if counter == last:
            return Verdict.REPEATED
        return Verdict.SKIPPED
