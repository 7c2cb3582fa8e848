"""Frame codecs compiled from the DBC: physical values to bytes and back, with the E2E fields
filled.

A message with signals named ``*_Alive`` (4 bits) and ``*_Crc`` (the whole last byte, checked
when the codec is built) is protected: ``encode`` fills both, ``decode`` reports the counter
and whether the CRC holds. Every layout comes from the DBC file: cantools parses it, and each
codec compiles its message's signals (position, width, byte order, sign, scale and offset,
range, value table, multiplexer values) into plain integer shifts and masks when it is built,
and from them one straight-line Python function per frame layout (per multiplexer value) to
encode and one to decode, each made on first use. The compiled path gives exactly what
cantools gives, to the bit (``tests/test_codec_fast.py`` holds it to that); anything it does
not cover (float signals, nested multiplexing, unusual input types, every error) goes through
cantools, as before.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cantools.database.can import Message, Signal
from cantools.database.conversion import (
    BaseConversion,
    IdentityConversion,
    LinearConversion,
    LinearIntegerConversion,
)

from cellwarden.comms.dbc import load_dbc
from cellwarden.comms.e2e import _CRC_TABLE, ALIVE_MODULO, AliveCheck, Verdict, frame_crc


class FrameError(ValueError):
    """A frame that cannot be decoded: wrong length, unknown multiplexer value, bad value."""


class RepeatedFrameError(FrameError):
    """A protected frame whose alive counter did not move: its sender is frozen."""


@dataclass(frozen=True)
class Decoded:
    """One decoded frame: physical values (choice labels where the DBC names a raw value)."""

    values: dict[str, float | str]
    alive: int | None
    crc_ok: bool


# How a signal's physical value becomes its raw value (cantools' conversion classes)
_IDENTITY, _LINEAR, _OTHER = 0, 1, 2
# What encode does with a given value besides packing it
_PLAIN, _ALIVE, _MUX = 0, 1, 2
_BYTES = tuple(bytes((value,)) for value in range(256))
_MISSING = object()


def _crc_seed(frame_id: int) -> int:
    """The CRC register after the identifier's two bytes (see ``e2e.frame_crc``)."""
    return _CRC_TABLE[_CRC_TABLE[0xFF ^ (frame_id & 0xFF)] ^ ((frame_id >> 8) & 0xFF)]


class _BailOutError(Exception):
    """Input the compiled path leaves to cantools (which encodes it or says what is wrong)."""


class _NotCompilableError(Exception):
    """A message layout the compiled codec leaves to cantools."""


@dataclass(frozen=True)
class _Field:
    """One signal's compiled layout and conversion, and its role in encode."""

    name: str
    big_endian: bool
    shift: int  # of its least significant bit, in the payload read as one integer
    mask: int  # its width's bits, unshifted
    sign: int  # its sign bit's value (0 if unsigned)
    raw_min: int
    raw_max: int
    kind: int
    scale: float
    offset: float
    to_raw: Callable[[float], int | float]  # cantools' physical-to-raw conversion
    low: float | None  # the DBC range encode saturates to
    high: float | None
    labels: dict[str, int] | None  # value-table label -> raw
    choices: dict[int, str] | None  # raw -> value-table label (decode)
    role: int = _PLAIN

    @property
    def fits(self) -> bool:
        """Whether every value of the DBC range has a raw value the field holds."""
        if self.low is None or self.high is None:
            return False
        try:
            ends = (self.to_raw(self.low), self.to_raw(self.high))
        except (ValueError, OverflowError):
            return False
        return all(isinstance(raw, int) and self.raw_min <= raw <= self.raw_max for raw in ends)

    def encode_entry(self) -> tuple:
        """(shift, clear mask, kind, scale, offset, low, high, common, self).

        ``common`` (1 for a plain signal, 2 for the multiplexer) marks an unsigned,
        little-endian, ranged signal whose range fits its bits: encode handles its float and
        int values inline, anything else through ``raw``."""
        common = (self.role != _ALIVE and not self.big_endian and not self.sign and self.fits) and (
            2 if self.role == _MUX else 1
        )
        return (self.shift, ~(self.mask << self.shift), self.kind, self.scale, self.offset,
                self.low, self.high, common, self)  # fmt: skip

    def raw(self, value: object, key: int | None, mux_labels: dict[str, int] | None) -> int:
        """The raw value ``encode`` packs for ``value`` (any signal, any input)."""
        if self.low is not None and not isinstance(value, str):
            number = 0.0 if math.isnan(value) else float(value)  # type: ignore[arg-type]
            value = min(max(number, self.low), self.high)  # type: ignore[type-var]
        if self.role == _MUX:  # the multiplexer value cantools would pick
            number = mux_labels.get(value) if isinstance(value, str) and mux_labels else value
            if int(number) != key:  # type: ignore[arg-type]
                raise _BailOutError
        if isinstance(value, int | float):
            if self.kind == _LINEAR:
                raw = round((value - self.offset) / self.scale)
            elif self.kind == _IDENTITY:
                raw = round(value)
            else:
                raw = self.to_raw(value)
        elif isinstance(value, str) and self.labels is not None and value in self.labels:
            raw = self.labels[value]
        else:
            raise _BailOutError
        if not self.raw_min <= raw <= self.raw_max:  # type: ignore[operator]
            raise _BailOutError
        return raw & self.mask  # type: ignore[operator]

    def value(self, words: tuple[int, int]) -> float | str:
        """The physical value (or value-table label) of the field in a payload."""
        raw = (words[self.big_endian] >> self.shift) & self.mask
        if self.sign and raw & self.sign:
            raw -= self.sign << 1
        if self.choices is not None:
            label = self.choices.get(raw)
            if label is not None:
                return label
        return raw * self.scale + self.offset


def _compile_field(signal: Signal, length: int, role: int) -> _Field | None:
    """The compiled form of ``signal``, or None where only cantools can handle it."""
    conversion = signal.conversion
    if conversion.is_float:
        return None
    # the same plain conversion cantools uses below a value table
    inner = BaseConversion.factory(conversion.scale, conversion.offset, None, False)
    if isinstance(inner, IdentityConversion):
        kind = _IDENTITY
    elif isinstance(inner, LinearConversion):
        kind = _LINEAR
    else:
        kind = _OTHER
    width = signal.length
    if signal.byte_order == "little_endian":
        shift = signal.start
    else:  # Motorola: start is the most significant bit, sawtooth-numbered
        msb = 8 * (signal.start // 8) + 7 - signal.start % 8
        shift = 8 * length - msb - width
    if width < 1 or shift < 0 or shift + width > 8 * length:
        return None
    mask = (1 << width) - 1
    sign = 1 << (width - 1) if signal.is_signed else 0
    raw_min, raw_max = (-sign, sign - 1) if signal.is_signed else (0, mask)
    choices = conversion.choices
    low = high = None
    if signal.minimum is not None and signal.maximum is not None:
        low, high = float(signal.minimum), float(signal.maximum)
    return _Field(
        name=signal.name,
        big_endian=signal.byte_order == "big_endian",
        shift=shift,
        mask=mask,
        sign=sign,
        raw_min=raw_min,
        raw_max=raw_max,
        kind=kind,
        scale=inner.scale,
        offset=inner.offset,
        to_raw=inner.numeric_scaled_to_raw,
        low=low,
        high=high,
        labels={str(label): raw for raw, label in choices.items()} if choices else None,
        choices={int(raw): str(label) for raw, label in choices.items()} if choices else None,
        role=role,
    )


def _default_raw(field: _Field) -> int | None:
    """The raw value of an unset signal (physical zero), None if it cannot be encoded."""
    try:
        raw = field.to_raw(0)
    except Exception:
        return None
    if not isinstance(raw, int) or not field.raw_min <= raw <= field.raw_max:
        return None
    return raw & field.mask


class _Layout:
    """A message compiled into shifts and masks.

    Per multiplexer value (None without a multiplexer): ``plans`` holds what the signal-by-
    signal encoder needs (the encode entry of each signal the frame carries, the raw values of
    unset signals, i.e. their physical zero, packed into the little- and big-endian words, and
    the signals whose zero cannot be encoded, which encode needs a value for); ``encoders`` and
    ``decoders`` the generated straight-line functions.
    """

    def __init__(self, message: Message, alive_signal: str | None, crc_signal: str | None):
        length = message.length
        root: list[str] = []
        self.mux: str | None = None
        branches: dict[int, list[str]] = {}
        for node in message.signal_tree:
            if isinstance(node, str):
                root.append(node)
                continue
            if self.mux is not None or len(node) != 1:
                raise _NotCompilableError  # several multiplexers
            ((self.mux, subtree),) = node.items()
            for key, names in subtree.items():
                if not all(isinstance(name, str) for name in names):
                    raise _NotCompilableError  # nested multiplexing
                branches[int(key)] = list(names)
            root.append(self.mux)
        if any(name is not None and name not in root for name in (alive_signal, crc_signal)):
            raise _NotCompilableError  # E2E fields in some multiplexed frames only
        roles = {alive_signal: _ALIVE, self.mux: _MUX}
        fields: dict[str, _Field] = {}
        for signal in message.signals:
            field = _compile_field(signal, length, roles.get(signal.name, _PLAIN))
            if field is None:
                raise _NotCompilableError
            fields[signal.name] = field
        self.name = message.name
        self.length = length
        self.big_endian = any(field.big_endian for field in fields.values())
        self.crc_seed = _crc_seed(message.frame_id)
        self.alive: dict[int, int] = {}  # counter -> its raw bits in place
        self.alive_clear = self.alive_big = 0
        if alive_signal is not None:
            alive = fields[alive_signal]
            self.alive_clear = ~(alive.mask << alive.shift)
            self.alive_big = int(alive.big_endian)
            for counter in range(ALIVE_MODULO):  # encode sets the counter unsaturated
                raw = alive.to_raw(counter)
                if not isinstance(raw, int) or not alive.raw_min <= raw <= alive.raw_max:
                    raise _NotCompilableError
                self.alive[counter] = (raw & alive.mask) << alive.shift
        # the payload below the CRC byte (a protected frame's CRC fills the last byte)
        self.payload_mask = (1 << (8 * (length - 1))) - 1
        self.mux_labels = fields[self.mux].labels if self.mux is not None else None
        self.mux_field = fields[self.mux] if self.mux is not None else None
        groups = {key: root + names for key, names in branches.items()} if self.mux else {}
        self.frames = {  # the signals of each frame layout
            key: [fields[name] for name in names] for key, names in (groups or {None: root}).items()
        }
        self.plans = {key: self._plan(frame) for key, frame in self.frames.items()}
        self.alive_field = fields.get(alive_signal)  # type: ignore[arg-type]
        self.e2e = (alive_signal, crc_signal)
        # the generated functions, each made on first use (building them all costs start-up)
        self.encoders: dict[int | None, Callable] = {}
        self.decoders: dict[int | None, Callable] = {}
        self.decode: Callable[[bytes], Decoded | None] = self._first_decode

    def encoder(self, key: int | None) -> Callable | None:
        """The generated encoder of multiplexer value ``key``, None if it has no frame."""
        if key not in self.frames:
            return None
        self.encoders[key] = _generate_encoder(
            self, key, self.frames[key], self.plans[key], self.e2e[1]
        )
        return self.encoders[key]

    def decoder(self, key: int | None) -> Callable | None:
        """The generated decoder of multiplexer value ``key``, None if it has no frame."""
        if key not in self.frames:
            return None
        carried = [f for f in self.frames[key] if f.name not in self.e2e]
        self.decoders[key] = _generate_decoder(carried, self.alive_field, f"{self.name} {key}")
        return self.decoders[key]

    def _first_decode(self, data: bytes) -> Decoded | None:
        self.decode = _generate_frame_decoder(self, self.e2e[1] is not None)
        return self.decode(data)

    def mux_number(self, word: int, words: tuple[int, int]) -> int | None:
        """The multiplexer value cantools picks the frame's signals by."""
        value = self.mux_field.value(words)  # type: ignore[union-attr]
        labels = self.mux_labels
        return labels.get(value) if isinstance(value, str) and labels else int(value)

    @staticmethod
    def _plan(fields: list[_Field]) -> tuple[dict[str, tuple], int, int, frozenset[str]]:
        base = [0, 0]
        required = set()
        for field in fields:
            raw = _default_raw(field)
            if raw is None:
                required.add(field.name)
            else:
                base[field.big_endian] |= raw << field.shift
        entries = {field.name: field.encode_entry() for field in fields}
        return entries, base[0], base[1], frozenset(required)


# --- code generation: each frame layout as one straight-line Python function ----------------
def _literal(value: object, namespace: dict[str, object]) -> str:
    """Source text of a constant: a literal where it reads back identical, else a name."""
    if type(value) is int or (
        type(value) is float and math.isfinite(value) and float(repr(value)) == value
    ):
        return f"({value!r})"
    name = f"K{len(namespace)}"
    namespace[name] = value
    return name


def _generate_encoder(
    layout: _Layout,
    key: int | None,
    fields: list[_Field],
    plan: tuple[dict[str, tuple], int, int, frozenset[str]],
    crc_signal: str | None,
) -> Callable:
    """``encode(values, alive) -> bytes | None`` for one frame layout: each signal's value
    looked up, saturated and converted inline, exactly as ``_encode_generic`` does; None where
    ``values`` holds a name the frame does not carry (or one the inline code does not take),
    for the generic path to decide."""
    entries, base_le, base_be, required = plan
    ns: dict[str, object] = {"MISSING": _MISSING, "isnan": math.isnan, "KEY": key,
                             "ML": layout.mux_labels, "ALIVE": layout.alive,
                             "T": _CRC_TABLE, "BYTES": _BYTES, "SEED": layout.crc_seed}  # fmt: skip
    lit = functools.partial(_literal, namespace=ns)
    code = ["def encode(values, alive):", "    get = values.get", "    found = 0",
            f"    word = {lit(base_le)}", f"    word_be = {lit(base_be)}"]  # fmt: skip
    for index, field in enumerate(fields):
        ns[f"F{index}"] = field
        shift = f" << {field.shift}" if field.shift else ""
        # a signal whose unset value packs as zero bits is or-ed in; others replace theirs
        zero = _default_raw(field) == 0
        clear = "" if zero else f" & {lit(~(field.mask << field.shift))}"
        target = "word_be" if field.big_endian else "word"
        generic = f"{target} = ({target}{clear}) | (F{index}.raw(v, KEY, ML){shift})"
        code += [f"    v = get({field.name!r}, MISSING)", "    if v is not MISSING:",
                 "        found += 1"]  # fmt: skip
        common = entries[field.name][7]
        if field.role == _ALIVE:  # the counter comes from ``alive``; the value is checked
            if field.low is not None:
                code.append("        if not isinstance(v, str): 0.0 if isnan(v) else float(v)")
        elif common:
            low, high = lit(field.low), lit(field.high)
            convert = {
                _LINEAR: f"round((v - {lit(field.offset)}) / {lit(field.scale)})",
                _IDENTITY: "round(v)",
            }.get(field.kind, f"F{index}.to_raw(v)")
            code += [
                "        t = type(v)",
                "        if t is float or t is int:",
                "            if t is int:",
                "                v = float(v)",
                "            elif v != v:",
                "                v = 0.0",
                f"            if {low} > v:",
                f"                v = {low}",
                f"            if {high} < v:",
                f"                v = {high}",
            ]
            if common == 2:  # the multiplexer: cantools picks the frame by its value
                code += ["            if int(v) != KEY:", "                return None"]
            code += [f"            word = (word{clear}) | ({convert}{shift})",
                     "        else:", f"            {generic}"]  # fmt: skip
        else:
            code.append(f"        {generic}")
        if field.name in required:
            code += ["    else:", "        return None"]
    code += ["    if found != len(values):", "        return None"]
    if layout.alive:
        target = "word_be" if layout.alive_big else "word"
        code.append(f"    {target} = ({target} & {lit(layout.alive_clear)})"
                    f" | ALIVE[(alive or 0) % {ALIVE_MODULO}]")  # fmt: skip
    length = layout.length
    if layout.big_endian:
        code.append(f"    word |= int.from_bytes(word_be.to_bytes({length}, 'big'), 'little')")
    if crc_signal is None:
        code.append(f"    return word.to_bytes({length}, 'little')")
    else:
        payload = f"(word & {lit(layout.payload_mask)}).to_bytes({length - 1}, 'little')"
        code += [
            f"    payload = {payload}",
            f"    return payload + BYTES[{_crc_source(length - 1)}]",
        ]
    return _compile_function(code, ns, "encode", f"{layout.name} {key}")


def _crc_source(count: int, payload: str = "payload") -> str:
    """Source of ``frame_crc`` over the first ``count`` bytes of ``payload``, unrolled, from
    the identifier's register ``SEED``."""
    crc = "SEED"
    for index in range(count):
        crc = f"T[{crc} ^ {payload}[{index}]]"
    return f"{crc} ^ 255"


def _generate_decoder(fields: list[_Field], alive: _Field | None, where: str) -> Callable:
    """``decode(word, words) -> (values, alive)`` for one frame layout, straight-line: the
    values in cantools' order (without the E2E fields) and the alive counter."""
    ns: dict[str, object] = {}
    lit = functools.partial(_literal, namespace=ns)
    code = ["def decode(word, words):"]
    items = []

    def value_of(index: int, field: _Field) -> str:
        ns[f"F{index}"] = field
        if field.big_endian or field.sign:
            return f"F{index}.value(words)"
        raw = (
            f"((word >> {field.shift}) & {field.mask})" if field.shift else f"(word & {field.mask})"
        )
        if field.choices:
            code.append(f"    r{index} = {raw}")
            raw = f"r{index}"
        scaled = (
            raw if field.kind == _IDENTITY else f"{raw} * {lit(field.scale)} + {lit(field.offset)}"
        )
        if not field.choices:
            return scaled
        ns[f"C{index}"] = field.choices
        return f"(C{index}[{raw}] if {raw} in C{index} else {scaled})"

    for index, field in enumerate(fields):
        items.append(f"{field.name!r}: {value_of(index, field)}")
    counter = "None" if alive is None else f"int({value_of(len(fields), alive)})"
    code.append(f"    return {{{', '.join(items)}}}, {counter}")
    return _compile_function(code, ns, "decode", where)


def _generate_frame_decoder(layout: _Layout, protected: bool) -> Callable:
    """``decode(data) -> Decoded | None`` of a frame of the right length: its CRC checked,
    the signals of its multiplexer value decoded; None for a multiplexer value the DBC does
    not define."""
    ns: dict[str, object] = {"T": _CRC_TABLE, "SEED": layout.crc_seed, "Decoded": Decoded,
                             "DECODERS": layout.decoders, "layout": layout}  # fmt: skip
    length = layout.length
    code = ["def decode(data):", "    word = int.from_bytes(data, 'little')"]
    if layout.big_endian:
        code.append("    words = (word, int.from_bytes(data, 'big'))")
    else:
        code.append("    words = (word, 0)")
    if protected:
        crc = _crc_source(length - 1, "data")
        code.append(f"    crc_ok = data[{length - 1}] == ({crc})")
    else:
        code.append("    crc_ok = True")
    mux = layout.mux_field
    if mux is None:
        ns["DECODER"] = layout.decoders.get(None) or layout.decoder(None)
        code.append("    decoder = DECODER")
    else:
        if mux.kind == _IDENTITY and not (mux.big_endian or mux.sign or mux.choices):
            number = f"(word >> {mux.shift}) & {mux.mask}" if mux.shift else f"word & {mux.mask}"
        else:
            number = "layout.mux_number(word, words)"
        code += [f"    number = {number}", "    decoder = DECODERS.get(number)",
                 "    if decoder is None:", "        decoder = layout.decoder(number)",
                 "        if decoder is None:", "            return None"]  # fmt: skip
    code += [
        "    values, alive = decoder(word, words)",
        "    return Decoded(values, alive, crc_ok)",
    ]
    return _compile_function(code, ns, "decode", f"{layout.name} frame")


def _compile_function(
    code: list[str], namespace: dict[str, object], name: str, where: str
) -> Callable:
    """The function ``name`` defined by ``code``; ``where`` names its frame layout in
    tracebacks and profiles (each generated function gets a file name of its own)."""
    exec(compile("\n".join(code), f"<cellwarden codec {name}: {where}>", "exec"), namespace)
    return namespace[name]  # type: ignore[return-value]


@dataclass(frozen=True)
class ArrayField:
    """A signal as ``encode`` packs a number into it: NaN as 0, saturated to ``low..high``,
    ``round((value - offset) / scale)`` (``round(value)`` where ``identity``), or a value-table
    label's raw value; shifted into place. ``decode`` reads ``raw * scale + offset`` back, or
    the label of a raw value the table names."""

    name: str
    shift: int
    mask: int
    scale: float
    offset: float
    identity: bool
    low: float
    high: float
    labels: tuple[tuple[str, int], ...]  # (value-table label, its raw value)


@dataclass(frozen=True)
class ArrayLayout:
    """One frame layout (one multiplexer value) for encoding or decoding many frames at once
    (``comms.frame_arrays``), exactly as ``encode`` and ``decode`` do: the word of a frame
    with no signal set (each signal at its physical zero, the multiplexer at its value), the
    signals, the multiplexer's and the alive counter's (shift, mask), and the alive counter's
    bits in place for each count."""

    length: int
    base_word: int
    fields: tuple[ArrayField, ...]
    mux: tuple[int, int] | None
    alive: tuple[int, int] | None
    alive_bits: tuple[int, ...]  # counter -> its bits in place; () when unprotected
    alive_clear: int
    protected: bool
    crc_seed: int  # the CRC register after the identifier

    def geometry(self) -> tuple:
        """Everything but the signal names, the base word and the identifier: equal for
        frames that differ only in those."""
        fields = tuple((f.shift, f.mask, f.scale, f.offset, f.identity, f.low, f.high,
                        f.labels) for f in self.fields)  # fmt: skip
        return (self.length, fields, self.mux, self.alive, self.alive_bits, self.alive_clear,
                self.protected)  # fmt: skip


def _integer_linear(field: _Field) -> bool:
    """Whether ``field`` converts by cantools' integer scale and offset, which gives
    ``round((value - offset) / scale)`` as a linear conversion does."""
    return isinstance(getattr(field.to_raw, "__self__", None), LinearIntegerConversion)


class FrameCodec:
    """Encoder and decoder of one DBC message."""

    def __init__(self, message: Message) -> None:
        self.message = message
        self.frame_id: int = message.frame_id
        self.name: str = message.name
        self.length: int = message.length
        self.extended: bool = message.is_extended_frame
        names = [s.name for s in message.signals]
        self.alive_signal = next((n for n in names if n.endswith("_Alive")), None)
        self.crc_signal = next((n for n in names if n.endswith("_Crc")), None)
        if self.crc_signal is not None:
            crc = message.get_signal_by_name(self.crc_signal)
            last_byte = (8 * (self.length - 1), 8, "little_endian")
            if (crc.start, crc.length, crc.byte_order) != last_byte:
                raise ValueError(f"{self.name}: {self.crc_signal} must fill the last byte")
        # cantools wants every signal of the frame: unset ones are zero
        self._zeros = {s.name: 0 for s in message.signals if s.multiplexer_ids is None}
        self.mux_signal = next((s.name for s in message.signals if s.is_multiplexer), None)
        self._mux_zeros: dict[int, dict[str, float]] = {}
        for signal in message.signals:
            for mux in signal.multiplexer_ids or ():
                self._mux_zeros.setdefault(mux, {})[signal.name] = 0
        self._has_choices = any(s.choices for s in message.signals)
        self._ranges = {
            s.name: (float(s.minimum), float(s.maximum))
            for s in message.signals
            if s.minimum is not None and s.maximum is not None
        }
        self._labels = {
            s.name: {str(label): float(raw) for raw, label in s.choices.items()}
            for s in message.signals
            if s.choices
        }
        try:
            self._layout: _Layout | None = _Layout(message, self.alive_signal, self.crc_signal)
        except _NotCompilableError:
            self._layout = None
        if self._layout is not None and self._layout.mux != self.mux_signal:
            self._layout = None
        self._crc_seed = _crc_seed(self.frame_id)
        self._shared: tuple[bytes, Decoded] | None = None
        self._array_layouts: dict[int | None, ArrayLayout | None] = {}

    def array_layout(self, key: int | None = None) -> ArrayLayout | None:
        """The frame layout of multiplexer value ``key`` for encoding and decoding arrays of
        frames exactly as ``encode`` and ``decode`` do; None where a signal is not a plain
        little-endian unsigned number whose DBC range fits its bits, or where one has no
        physical zero (those frames go through ``encode`` and ``decode``). Built once."""
        if key not in self._array_layouts:
            self._array_layouts[key] = self._build_array_layout(key)
        return self._array_layouts[key]

    def _build_array_layout(self, key: int | None) -> ArrayLayout | None:
        layout = self._layout
        if layout is None or layout.big_endian or key not in layout.frames:
            return None
        entries, base_word, _, required = layout.plans[key]
        if required or (layout.alive and layout.alive_big):
            return None
        fields = []
        mux = None
        for field in layout.frames[key]:
            if field.name in layout.e2e:
                continue
            common = entries[field.name][7]
            if not common or (field.kind == _OTHER and not _integer_linear(field)):
                return None
            if common == 2:  # the multiplexer: its value is the layout's
                if field.labels:
                    return None
                mux = (field.shift, field.mask)
                raw = field.raw(key, key, layout.mux_labels)
                base_word = (base_word & ~(field.mask << field.shift)) | (raw << field.shift)
                continue
            fields.append(ArrayField(field.name, field.shift, field.mask, field.scale,
                                      field.offset, field.kind == _IDENTITY, field.low,
                                      field.high, tuple(sorted((field.labels or {}).items()))))  # type: ignore[arg-type] # fmt: skip
        alive_field = layout.alive_field
        alive = None if alive_field is None else (alive_field.shift, alive_field.mask)
        alive_bits = tuple(layout.alive[count] for count in range(ALIVE_MODULO)) if alive else ()
        return ArrayLayout(self.length, base_word, tuple(fields), mux, alive, alive_bits,
                           layout.alive_clear, self.crc_signal is not None,
                           self._crc_seed)  # fmt: skip

    @property
    def cycle_s(self) -> float:
        """The message's send period from the DBC's ``GenMsgCycleTime``."""
        if not self.message.cycle_time:
            raise ValueError(f"{self.name}: the DBC file gives no cycle time")
        return self.message.cycle_time / 1000.0

    def raw(self, name: str, value: float | str) -> float:
        """A decoded value as a number: a value-table label back to its raw value."""
        if not isinstance(value, str):
            return float(value)
        number = self._labels.get(name, {}).get(value)
        if number is None:
            raise FrameError(f"{self.name}: {name} has no value {value!r}")
        return number

    def _saturated(self, name: str, value: float | str) -> float | str:
        """``value`` within the signal's DBC range; NaN becomes the value nearest zero."""
        limits = self._ranges.get(name)
        if limits is None or isinstance(value, str):
            return value
        number = 0.0 if math.isnan(value) else float(value)
        return min(max(number, limits[0]), limits[1])

    # --- encode -----------------------------------------------------------------------------
    def encode(self, values: Mapping[str, float | str], alive: int | None = None) -> bytes:
        """Bytes of a frame; plain signals not given are zero, out-of-range values saturate."""
        if self._layout is not None:
            try:
                data = self._encode_compiled(self._layout, values, alive)
            except Exception:  # every error is reported by cantools' path, as before
                data = None
            if data is not None:
                return data
        return self._encode_cantools(values, alive)

    def _encode_compiled(
        self, layout: _Layout, values: Mapping[str, float | str], alive: int | None
    ) -> bytes | None:
        """The frame's bytes by shifts and masks; None for anything left to cantools."""
        key = None if layout.mux is None else int(values.get(layout.mux, 0))
        encoder = layout.encoders.get(key) or layout.encoder(key)
        if encoder is None:
            return None
        data = encoder(values, alive)
        if data is None:  # names the frame does not carry, or unusual values
            return self._encode_generic(layout, key, values, alive)
        return data

    def _encode_generic(
        self,
        layout: _Layout,
        key: int | None,
        values: Mapping[str, float | str],
        alive: int | None,
    ) -> bytes | None:
        """``_encode_compiled`` one signal at a time, for any input the generated encoder
        leaves alone; None for anything left to cantools."""
        entries, word, word_be, required = layout.plans[key]
        if required and not required.issubset(values.keys()):
            return None
        for name, value in values.items():
            entry = entries.get(name)
            if entry is None:  # not in this frame: ignored, but range-checked as always
                self._saturated(name, value)
                continue
            shift, clear, kind, scale, offset, low, high, common, field = entry
            if common and ((number := type(value)) is float or number is int):
                # the common case inline: saturate as _saturated does, convert as cantools
                if value != value:
                    value = 0.0
                elif number is int:
                    value = float(value)
                if low > value:
                    value = low
                if high < value:
                    value = high
                if common == 2 and int(value) != key:  # cantools would pick another frame
                    return None
                if kind == _LINEAR:
                    word = (word & clear) | (round((value - offset) / scale) << shift)
                elif kind == _IDENTITY:
                    word = (word & clear) | (round(value) << shift)
                else:
                    word = (word & clear) | (field.to_raw(value) << shift)
                continue
            if field.role == _ALIVE:  # the counter comes from ``alive`` (checked as before)
                self._saturated(name, value)
                continue
            raw = field.raw(value, key, layout.mux_labels) << shift
            if field.big_endian:
                word_be = (word_be & clear) | raw
            else:
                word = (word & clear) | raw
        if layout.alive:
            bits = layout.alive[(alive or 0) % ALIVE_MODULO]
            if layout.alive_big:
                word_be = (word_be & layout.alive_clear) | bits
            else:
                word = (word & layout.alive_clear) | bits
        if layout.big_endian:
            word |= int.from_bytes(word_be.to_bytes(self.length, "big"), "little")
        if self.crc_signal is None:
            return word.to_bytes(self.length, "little")
        payload = (word & layout.payload_mask).to_bytes(self.length - 1, "little")
        return payload + _BYTES[self._crc_of(payload)]

    def _encode_cantools(self, values: Mapping[str, float | str], alive: int | None) -> bytes:
        """``encode`` through cantools (the reference the compiled path matches)."""
        full = dict(self._zeros)
        if self.mux_signal is not None:
            full.update(self._mux_zeros.get(int(values.get(self.mux_signal, 0)), {}))
        for name, value in values.items():
            full[name] = self._saturated(name, value)
        if self.alive_signal is not None:
            full[self.alive_signal] = (alive or 0) % ALIVE_MODULO
        try:
            data = bytes(self.message.encode(full, strict=False))
        except Exception as error:  # cantools raises several types for bad values
            raise FrameError(f"{self.name}: cannot encode {dict(values)}: {error}") from error
        if self.crc_signal is None:
            return data
        return data[:-1] + bytes((frame_crc(self.frame_id, data[:-1]),))

    def _crc_of(self, payload: bytes) -> int:
        """``frame_crc(self.frame_id, payload)``, from the identifier's register."""
        crc = self._crc_seed
        for byte in payload:
            crc = _CRC_TABLE[crc ^ byte]
        return crc ^ 0xFF

    # --- decode -----------------------------------------------------------------------------
    def decode(self, data: bytes) -> Decoded:
        """Physical values of a frame, its alive counter and whether its CRC holds."""
        if len(data) != self.length:
            raise FrameError(f"{self.name}: {len(data)} data bytes, expected {self.length}")
        if self._layout is not None:
            decoded = self._layout.decode(data)
            if decoded is not None:
                return decoded
        # no compiled layout, or a multiplexer value the DBC does not define (cantools says so)
        return self._decode_cantools(data)

    def _decode_cantools(self, data: bytes) -> Decoded:
        """``decode`` through cantools (the reference the compiled path matches)."""
        if len(data) != self.length:
            raise FrameError(f"{self.name}: {len(data)} data bytes, expected {self.length}")
        crc_ok = self.crc_signal is None or data[-1] == frame_crc(self.frame_id, data[:-1])
        try:
            values = self.message.decode(data, decode_choices=self._has_choices)
        except Exception as error:  # e.g. a multiplexer value the DBC does not define
            raise FrameError(f"{self.name}: {error}") from error
        if self._has_choices:
            values = {k: v if isinstance(v, int | float) else str(v) for k, v in values.items()}
        alive = int(values.pop(self.alive_signal)) if self.alive_signal else None
        if self.crc_signal is not None:
            values.pop(self.crc_signal)
        return Decoded(values, alive, crc_ok)

    def _decode_shared(self, data: bytes) -> Decoded:
        """``decode``, remembering the last frame: for many receivers of one broadcast frame.
        The result is shared between callers, who must not modify it."""
        shared = self._shared
        if shared is not None and shared[0] == data:
            return shared[1]
        decoded = self.decode(data)
        self._shared = (bytes(data), decoded)
        return decoded

    def decode_checked(self, data: bytes, alive: AliveCheck | None = None) -> Decoded:
        """``decode``, refusing a frame whose CRC fails (FrameError) and, given the receiver's
        ``alive`` check, one whose counter repeats (RepeatedFrameError)."""
        decoded = self.decode(data)
        if not decoded.crc_ok:
            raise FrameError(f"{self.name}: CRC error")
        if alive is not None:
            if decoded.alive is None:
                raise FrameError(f"{self.name}: no alive counter")
            if alive.judge(decoded.alive) is Verdict.REPEATED:
                raise RepeatedFrameError(f"{self.name}: alive counter repeated")
        return decoded


class BusCodec:
    """Every message of one DBC file, by identifier and by name."""

    def __init__(self, messages: list[Message]) -> None:
        self.by_id = {m.frame_id: FrameCodec(m) for m in messages}
        self.by_name = {codec.name: codec for codec in self.by_id.values()}

    def __getitem__(self, name: str) -> FrameCodec:
        return self.by_name[name]


@functools.cache
def bus_codec(name: str) -> BusCodec:
    """Codecs of every message of a shipped DBC file (built once per file)."""
    return BusCodec(load_dbc(name).messages)
