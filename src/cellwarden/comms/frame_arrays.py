"""Many frames of like layout encoded or decoded at once: payloads as an ``(n, length)`` byte
array, CRCs, multiplexers and signal values with NumPy, bit for bit as ``FrameCodec.encode``
and ``FrameCodec.decode``.

For the internal bus, where a string's slaves send a hundred frames of a few layouts every
cycle (see ``comms.slave_reports`` and ``comms.slave_chain``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from cellwarden.comms.can_bus import Frame
from cellwarden.comms.codec import ArrayLayout
from cellwarden.comms.e2e import _CRC_TABLE, ALIVE_MODULO
from cellwarden.compiled import HAVE_NUMBA, njit

CRC_TABLE = np.array(_CRC_TABLE, dtype=np.uint8)
USE_NUMBA = HAVE_NUMBA  # the compiled kernels by default, where numba is installed
WORD_BITS = (1 << 64) - 1
NO_LABELS = np.empty((0, 0), dtype=np.int64)  # the encode kernel's "no value-table labels"


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
    compiled: bool | None = None,
) -> np.ndarray:
    """``(n, 8)`` payloads of ``n`` frames of one layout, as ``FrameCodec.encode`` makes them.

    ``values[:, j]`` is each frame's value of ``layout.fields[j]`` where ``carried[:, j]``
    (elsewhere the signal is not given and packs as its physical zero); ``labels[:, j]``,
    where not -1, a value-table raw value sent instead of the number. ``alive`` holds the
    frames' counters and ``seeds`` their identifiers' CRC registers. Frames of several layouts
    of equal ``geometry`` (multiplexed frames, or one message of several senders) go in one
    call, each with its layout's ``base_word`` in ``base_words``. ``compiled`` (default
    ``USE_NUMBA``) runs the numba kernel, which gives the same bytes as the NumPy code below."""
    if layout.length != 8:
        raise ValueError("encode() packs 8-byte frames")
    shape = values.shape
    if values.ndim != 2 or shape[1] != len(layout.fields):
        raise ValueError(f"encode(): {shape} values for {len(layout.fields)} signals")
    for name, array in (("carried", carried), ("labels", labels)):
        if array is not None and np.shape(array) != shape:
            raise ValueError(f"encode(): {name} is {np.shape(array)}, values {shape}")
    for name, array in (("alive", alive), ("seeds", seeds), ("base_words", base_words)):
        if array is not None and np.shape(array) != shape[:1]:
            raise ValueError(f"encode(): {name} is {np.shape(array)}, not ({shape[0]},)")
    compiled = USE_NUMBA if compiled is None else compiled
    fields = _fields(layout)
    count = shape[0]
    if base_words is None:
        base_words = np.full(count, layout.base_word, dtype=np.uint64)
    if compiled:
        return _encode_kernel(
            np.ascontiguousarray(values, dtype=np.float64), np.ascontiguousarray(carried),
            NO_LABELS if labels is None else np.ascontiguousarray(labels, dtype=np.int64),
            np.asarray(base_words, dtype=np.uint64), np.asarray(alive, dtype=np.int64),
            np.asarray(seeds, dtype=np.uint8), *fields, CRC_TABLE,
        )  # fmt: skip
    number = np.where(np.isnan(values), 0.0, values)
    np.clip(number, fields.low, fields.high, out=number)
    number -= fields.offset  # (an identity signal's offset is 0 and its scale 1: exact)
    number /= fields.scale
    raw = np.rint(number, out=number)
    given = carried
    if labels is not None:
        labelled = labels >= 0
        raw = np.where(labelled, labels, raw)
        given = given | labelled
    bits = (np.where(given, raw, 0.0).astype(np.uint64) & fields.mask) << fields.shift
    taken = np.bitwise_or.reduce(np.where(given, fields.in_place, np.uint64(0)), axis=1)
    word = base_words.astype(np.uint64)
    word &= ~taken
    word |= np.bitwise_or.reduce(bits, axis=1)
    if layout.alive_bits:
        word &= np.uint64(layout.alive_clear & WORD_BITS)
        word |= fields.alive_bits[alive % ALIVE_MODULO]
    payload = word.astype("<u8").view(np.uint8).reshape(count, 8)
    if layout.protected:
        payload[:, 7] = crcs(payload, seeds)
    return payload


@njit(cache=True)
def _encode_kernel(values, carried, labels, base_words, alive, seeds, numbers, bits,
                   alive_bits, word_constants, crc_table):  # fmt: skip
    """``encode``, frame by frame and signal by signal, to the same bytes (``labels`` with no
    rows: none given); the layout as ``_FieldArrays`` holds it."""
    low, high, offset, scale = numbers[0], numbers[1], numbers[2], numbers[3]
    shift, mask, in_place = bits[0], bits[1], bits[2]
    alive_clear, protected = word_constants[0], word_constants[5] != 0
    count, columns = values.shape
    labelled = labels.shape[0] > 0
    payload = np.empty((count, 8), dtype=np.uint8)
    for row in range(count):
        word = base_words[row]
        for column in range(columns):
            label = labels[row, column] if labelled else -1
            if label >= 0:
                raw = np.uint64(label)
            elif carried[row, column]:
                number = values[row, column]
                if number != number:
                    number = 0.0
                number = min(max(number, low[column]), high[column])
                raw = np.uint64(np.rint((number - offset[column]) / scale[column]))
            else:
                continue
            word = (word & ~in_place[column]) | ((raw & mask[column]) << shift[column])
        if alive_bits.size:
            word = (word & alive_clear) | alive_bits[alive[row] % ALIVE_MODULO]
        for byte in range(8):
            payload[row, byte] = (word >> np.uint64(8 * byte)) & np.uint64(0xFF)
        if protected:
            crc = seeds[row]
            for byte in range(7):
                crc = crc_table[crc ^ payload[row, byte]]
            payload[row, 7] = crc ^ 0xFF
    return payload


def words(payload: np.ndarray) -> np.ndarray:
    """Each 8-byte payload read as one little-endian unsigned integer."""
    if payload.shape[1] != 8:
        raise ValueError("words() reads 8-byte payloads")
    return np.ascontiguousarray(payload).view("<u8")[:, 0]


def raw(word: np.ndarray, shift: np.ndarray | int, mask: np.ndarray | int) -> np.ndarray:
    return (word >> np.asarray(shift, dtype=np.uint64)) & np.asarray(mask, dtype=np.uint64)


class DecodedFrames(NamedTuple):
    """Frames of one layout decoded: per frame whether it is usable (its CRC holds and its
    multiplexer value is defined), its multiplexer value and alive counter, and its signals'
    physical values (``raw * scale + offset``, as ``FrameCodec.decode`` computes them; where
    a value table names the raw value, ``decode`` gives the label instead: see ``raws``)."""

    usable: np.ndarray
    mux: np.ndarray
    alive: np.ndarray
    values: np.ndarray  # (frames, signals)
    raws: np.ndarray


def decode(
    layout: ArrayLayout,
    payload: np.ndarray,
    seeds: np.ndarray,
    mux_values: int = 1,
    compiled: bool | None = None,
) -> DecodedFrames:
    """``(n, 8)`` payloads of frames of ``layout``'s geometry, whose identifiers' CRC
    registers are ``seeds`` and whose multiplexer values ``0 .. mux_values - 1`` are defined.
    ``compiled`` (default ``USE_NUMBA``) runs the numba kernel, which gives the same arrays as
    the NumPy code below."""
    if payload.ndim != 2 or payload.shape[1] != 8 or payload.dtype != np.uint8:
        raise ValueError(f"decode(): payloads must be (n, 8) uint8, not {payload.shape} "
                         f"{payload.dtype}")  # fmt: skip
    if np.shape(seeds) != (payload.shape[0],):
        raise ValueError(f"decode(): {np.shape(seeds)} seeds for {payload.shape[0]} frames")
    fields = _fields(layout)
    compiled = USE_NUMBA if compiled is None else compiled
    if compiled:
        return DecodedFrames(*_decode_kernel(np.ascontiguousarray(payload),
                                             np.asarray(seeds, dtype=np.uint8), mux_values,
                                             *fields, CRC_TABLE))  # fmt: skip
    mux_shift, mux_mask = layout.mux or (0, 0)
    alive_shift, alive_mask = layout.alive or (0, 0)
    word = words(payload)
    mux = raw(word, mux_shift, mux_mask).astype(np.int64)
    usable = mux < mux_values
    if layout.protected:
        usable &= crc_holds(payload, seeds)
    raws = (word[:, None] >> fields.shift) & fields.mask
    values = raws.astype(np.float64)
    values *= fields.scale
    values += fields.offset
    alive = raw(word, alive_shift, alive_mask).astype(np.int64)
    return DecodedFrames(usable, mux, alive, values, raws)


@njit(cache=True)
def _decode_kernel(payload, seeds, mux_values, numbers, bits, alive_bits, word_constants,
                   crc_table):  # fmt: skip
    """``decode``, frame by frame and signal by signal, to the same arrays; the layout as
    ``_FieldArrays`` holds it."""
    scale, offset, shift, mask = numbers[3], numbers[2], bits[0], bits[1]
    mux_shift, mux_mask = word_constants[1], word_constants[2]
    alive_shift, alive_mask = word_constants[3], word_constants[4]
    protected = word_constants[5] != 0
    count, columns = payload.shape[0], shift.size
    usable = np.empty(count, dtype=np.bool_)
    mux = np.empty(count, dtype=np.int64)
    alive = np.empty(count, dtype=np.int64)
    values = np.empty((count, columns))
    raws = np.empty((count, columns), dtype=np.uint64)
    for row in range(count):
        word = np.uint64(0)
        for byte in range(8):
            word |= np.uint64(payload[row, byte]) << np.uint64(8 * byte)
        mux[row] = np.int64((word >> mux_shift) & mux_mask)
        good = mux[row] < mux_values
        if protected:
            crc = seeds[row]
            for byte in range(7):
                crc = crc_table[crc ^ payload[row, byte]]
            good = good and payload[row, 7] == (crc ^ 0xFF)
        usable[row] = good
        alive[row] = np.int64((word >> alive_shift) & alive_mask)
        for column in range(columns):
            bits = (word >> shift[column]) & mask[column]
            raws[row, column] = bits
            values[row, column] = np.float64(bits) * scale[column] + offset[column]
    return usable, mux, alive, values, raws


class _FieldArrays(NamedTuple):
    """A layout's signals as arrays, one column per signal, and its word's constants: four
    arrays the kernels take as they are (a numba call checks each argument's type)."""

    numbers: np.ndarray  # (4, signals) float64: low, high, offset, scale
    bits: np.ndarray  # (3, signals) uint64: shift, mask, the signal's bits in the word
    alive_bits: np.ndarray  # each alive count's bits in the word
    word: np.ndarray  # uint64: alive clear, mux shift, mux mask, alive shift, alive mask, CRC

    @property
    def low(self) -> np.ndarray:
        return self.numbers[0]

    @property
    def high(self) -> np.ndarray:
        return self.numbers[1]

    @property
    def offset(self) -> np.ndarray:
        return self.numbers[2]

    @property
    def scale(self) -> np.ndarray:
        return self.numbers[3]

    @property
    def shift(self) -> np.ndarray:
        return self.bits[0]

    @property
    def mask(self) -> np.ndarray:
        return self.bits[1]

    @property
    def in_place(self) -> np.ndarray:
        return self.bits[2]


_FIELD_ARRAYS: dict[int, tuple[ArrayLayout, _FieldArrays]] = {}  # by id: no deep hash per call


def _fields(layout: ArrayLayout) -> _FieldArrays:
    entry = _FIELD_ARRAYS.get(id(layout))
    if entry is not None and entry[0] is layout:
        return entry[1]
    arrays = _field_arrays(layout)
    _FIELD_ARRAYS[id(layout)] = (layout, arrays)
    return arrays


def _field_arrays(layout: ArrayLayout) -> _FieldArrays:
    fields = layout.fields
    mux_shift, mux_mask = layout.mux or (0, 0)
    alive_shift, alive_mask = layout.alive or (0, 0)
    return _FieldArrays(
        numbers=np.array([
            [f.low for f in fields], [f.high for f in fields],
            [0.0 if f.identity else f.offset for f in fields],
            [1.0 if f.identity else f.scale for f in fields],
        ], dtype=np.float64).reshape(4, len(fields)),
        bits=np.array([
            [f.shift for f in fields], [f.mask for f in fields],
            [f.mask << f.shift for f in fields],
        ], dtype=np.uint64).reshape(3, len(fields)),
        alive_bits=np.array(layout.alive_bits, dtype=np.uint64),
        word=np.array([layout.alive_clear & WORD_BITS, mux_shift, mux_mask, alive_shift,
                       alive_mask, int(layout.protected)], dtype=np.uint64),
    )  # fmt: skip
