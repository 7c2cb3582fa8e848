"""Frame codecs over cantools: physical values to bytes and back, with the E2E fields filled.

A message with signals named ``*_Alive`` (4 bits) and ``*_Crc`` (the whole last byte, checked
when the codec is built) is protected: ``encode`` fills both, ``decode`` reports the counter
and whether the CRC holds. Every layout comes from the DBC file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache

from cantools.database.can import Message

from cellwarden.comms.dbc import load_dbc
from cellwarden.comms.e2e import ALIVE_MODULO, AliveCheck, Verdict, frame_crc


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

    def encode(self, values: Mapping[str, float | str], alive: int | None = None) -> bytes:
        """Bytes of a frame; plain signals not given are zero, out-of-range values saturate."""
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

    def decode(self, data: bytes) -> Decoded:
        """Physical values of a frame, its alive counter and whether its CRC holds."""
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


@cache
def bus_codec(name: str) -> BusCodec:
    """Codecs of every message of a shipped DBC file (built once per file)."""
    return BusCodec(load_dbc(name).messages)
