"""Many frames of like layout decoded at once: payloads as an ``(n, length)`` byte array,
CRCs, multiplexers and signal values with NumPy, bit for bit as ``FrameCodec.decode``.

For the master's receive path, where a string's slaves send a hundred frames of the same
layout every cycle (see ``comms.slave_chain``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.e2e import _CRC_TABLE

CRC_TABLE = np.array(_CRC_TABLE, dtype=np.uint8)


def payloads(frames: Sequence[Frame], length: int) -> np.ndarray:
    """The frames' data as an ``(n, length)`` uint8 array (every frame ``length`` long)."""
    joined = b"".join([frame.data for frame in frames])
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(frames), length)


def crc_holds(payload: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Whether each frame's last byte is the CRC of the bytes before it (``e2e.frame_crc``),
    from each frame's identifier register ``seeds``."""
    crc = seeds.astype(np.uint8)
    for column in range(payload.shape[1] - 1):
        crc = CRC_TABLE[crc ^ payload[:, column]]
    return payload[:, -1] == (crc ^ np.uint8(0xFF))


def words(payload: np.ndarray) -> np.ndarray:
    """Each 8-byte payload read as one little-endian unsigned integer."""
    if payload.shape[1] != 8:
        raise ValueError("words() reads 8-byte payloads")
    return np.ascontiguousarray(payload).view("<u8")[:, 0]


def raw(word: np.ndarray, shift: np.ndarray | int, mask: np.ndarray | int) -> np.ndarray:
    return (word >> np.asarray(shift, dtype=np.uint64)) & np.asarray(mask, dtype=np.uint64)
