"""Many frames of like layout encoded or decoded at once: payloads as an ``(n, length)`` byte
array, CRCs, multiplexers and signal values with NumPy, bit for bit as ``FrameCodec.encode``
and ``FrameCodec.decode``.

For the internal bus, where a string's slaves send a hundred frames of a few layouts every
cycle (see ``comms.slave_reports`` and ``comms.slave_chain``).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import ArrayLayout
from cellwarden.comms.e2e import _CRC_TABLE, ALIVE_MODULO

CRC_TABLE = np.array(_CRC_TABLE, dtype=np.uint8)
WORD_BITS = (1 << 64) - 1


def payloads(frames: Sequence[Frame], length: int) -> np.ndarray:
    """The frames' data as an ``(n, length)`` uint8 array (every frame ``length`` long)."""
    joined = b"".join([frame.data for frame in frames])
    return np.frombuffer(joined, dtype=np.uint8).reshape(len(frames), length)


def crcs(payload: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Each frame's CRC over the bytes before its last (``e2e.frame_crc``), from each frame's
    identifier register ``seeds``."""
    crc = seeds.astype(np.uint8)
    for column in range(payload.shape[1] - 1):
        crc = CRC_TABLE[crc ^ payload[:, column]]
    return crc ^ np.uint8(0xFF)


def crc_holds(payload: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """Whether each frame's last byte is its CRC."""
    return payload[:, -1] == crcs(payload, seeds)


def encode(
    layout: ArrayLayout,
    values: np.ndarray,
    carried: np.ndarray,
    alive: np.ndarray,
    seeds: np.ndarray,
    labels: np.ndarray | None = None,
    base_words: np.ndarray | None = None,
) -> np.ndarray:
    """``(n, 8)`` payloads of ``n`` frames of one layout, as ``FrameCodec.encode`` makes them.

    ``values[:, j]`` is each frame's value of ``layout.fields[j]`` where ``carried[:, j]``
    (elsewhere the signal is not given and packs as its physical zero); ``labels[:, j]``,
    where not -1, a value-table raw value sent instead of the number. ``alive`` holds the
    frames' counters and ``seeds`` their identifiers' CRC registers. Frames of several layouts
    of equal ``geometry`` (multiplexed frames, or one message of several senders) go in one
    call, each with its layout's ``base_word`` in ``base_words``."""
    if layout.length != 8:
        raise ValueError("encode() packs 8-byte frames")
    count = values.shape[0]
    fields = _fields(layout)
    number = np.nan_to_num(values, nan=0.0, posinf=np.inf, neginf=-np.inf)
    np.clip(number, fields.low, fields.high, out=number)
    number -= fields.offset  # (an identity signal's offset is 0 and its scale 1: exact)
    number /= fields.scale
    raw = np.rint(number, out=number)
    given = carried
    if labels is not None:
        labelled = labels >= 0
        raw = np.where(labelled, labels, raw)
        given = given | labelled
    bits = np.where(given, raw, 0.0).astype(np.uint64) << fields.shift
    taken = np.bitwise_or.reduce(np.where(given, fields.in_place, np.uint64(0)), axis=1)
    word = np.full(count, layout.base_word, dtype=np.uint64) if base_words is None else \
        base_words.astype(np.uint64)  # fmt: skip
    word &= ~taken
    word |= np.bitwise_or.reduce(bits, axis=1)
    if layout.alive_bits:
        word &= np.uint64(layout.alive_clear & WORD_BITS)
        word |= fields.alive_bits[alive % ALIVE_MODULO]
    payload = word.astype("<u8").view(np.uint8).reshape(count, 8)
    if layout.protected:
        payload[:, 7] = crcs(payload, seeds)
    return payload


def words(payload: np.ndarray) -> np.ndarray:
    """Each 8-byte payload read as one little-endian unsigned integer."""
    if payload.shape[1] != 8:
        raise ValueError("words() reads 8-byte payloads")
    return np.ascontiguousarray(payload).view("<u8")[:, 0]


def raw(word: np.ndarray, shift: np.ndarray | int, mask: np.ndarray | int) -> np.ndarray:
    return (word >> np.asarray(shift, dtype=np.uint64)) & np.asarray(mask, dtype=np.uint64)


def decode(layout: ArrayLayout, word: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(physical values, raw values) of each frame's signals, ``(n, len(layout.fields))``:
    ``raw * scale + offset`` as ``FrameCodec.decode`` computes it (where a value table names
    the raw value, ``decode`` gives the label instead: see ``ArrayField.labels``)."""
    fields = _fields(layout)
    raws = (word[:, None] >> fields.shift) & fields.mask
    values = raws.astype(np.float64)
    values *= fields.scale
    values += fields.offset
    return values, raws


@dataclass(frozen=True)
class _FieldArrays:
    """A layout's signals as arrays, one column per signal."""

    low: np.ndarray
    high: np.ndarray
    offset: np.ndarray
    scale: np.ndarray
    shift: np.ndarray
    mask: np.ndarray
    in_place: np.ndarray  # each signal's bits in the word
    alive_bits: np.ndarray


@functools.cache
def _fields(layout: ArrayLayout) -> _FieldArrays:
    fields = layout.fields
    return _FieldArrays(
        low=np.array([f.low for f in fields]),
        high=np.array([f.high for f in fields]),
        offset=np.array([0.0 if f.identity else f.offset for f in fields]),
        scale=np.array([1.0 if f.identity else f.scale for f in fields]),
        shift=np.array([f.shift for f in fields], dtype=np.uint64),
        mask=np.array([f.mask for f in fields], dtype=np.uint64),
        in_place=np.array([f.mask << f.shift for f in fields], dtype=np.uint64),
        alive_bits=np.array(layout.alive_bits, dtype=np.uint64),
    )
