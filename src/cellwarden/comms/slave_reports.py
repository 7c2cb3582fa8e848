"""A string's slave reports on the internal bus: each slave's cell voltages, temperatures and
status of one cycle as frames, every reporting slave's encoded at once.

A slave's firmware (``comms.slave_node``) measures and says what it reports; this module puts
the reports of a whole string on the wire, byte for byte as each slave's codecs encode them
one frame at a time (``tests/test_slave_reports.py``): per slave, in chain order, its voltage
frames (three cells each), its temperature frames (six sensors each, a rail reading as its
value-table code) and its status frame, each with the slave's alive counter per identifier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import FrameBlock
from cellwarden.comms.codec import ArrayEncoding, FrameCodec
from cellwarden.comms.e2e import ALIVE_MODULO
from cellwarden.comms.internal_protocol import (
    CELLS_PER_FRAME,
    NTC_OPEN,
    NTC_SHORT,
    SENSORS_PER_FRAME,
    SlaveMessages,
    SlaveState,
    slave_messages,
)

STATUS_SIGNALS = ("State", "OpenWire", "Balancing", "BoardTemp", "BalancingDuty")


@dataclass(frozen=True)
class SlaveReport:
    """What one slave reports in a cycle."""

    voltage_v: np.ndarray
    temp_c: np.ndarray
    ntc_open: np.ndarray
    ntc_short: np.ndarray
    state: SlaveState
    open_wire_bits: int
    balancing_bits: int
    board_temp_c: float
    balancing_duty: float

    def status_values(self) -> list[float]:
        """The status frame's values, in ``STATUS_SIGNALS`` order."""
        return [float(self.state), float(self.open_wire_bits), float(self.balancing_bits),
                self.board_temp_c, self.balancing_duty]  # fmt: skip


@dataclass(frozen=True)
class _Rows:
    """The frames of one message type for every slave of the string, slave by slave."""

    encoding: ArrayEncoding  # the layout every row shares (names and base word aside)
    base_words: np.ndarray
    frame_ids: np.ndarray
    seeds: np.ndarray
    slave: np.ndarray
    source: np.ndarray  # (row, column): the string-wide value each signal carries, or -1
    alive_counter: np.ndarray  # which of the string's alive counters the row takes
    occurrence: np.ndarray  # how many rows before it take the same counter

    @classmethod
    def of(cls, frames: list[tuple[int, FrameCodec, int, list[int]]], counter_of) -> _Rows:
        """``frames``: (slave, codec, multiplexer value, the string-wide value index of each
        signal of the frame's layout or -1), in send order."""
        encodings = [codec.array_encoding(key) for _, codec, key, _ in frames]
        if any(encoding is None for encoding in encodings):
            raise ValueError("the internal DBC's slave frames must encode as arrays")
        first = encodings[0]
        if any(e.geometry() != first.geometry() for e in encodings):  # type: ignore[union-attr]
            raise ValueError("the internal DBC's slave frames of one type must share a layout")
        counters = [counter_of(slave, codec) for slave, codec, _, _ in frames]
        seen: dict[int, int] = {}
        occurrence = []
        for counter in counters:
            occurrence.append(seen.get(counter, 0))
            seen[counter] = occurrence[-1] + 1
        return cls(
            encoding=first,  # type: ignore[arg-type]
            base_words=np.array([e.base_word for e in encodings], dtype=np.uint64),  # type: ignore[union-attr]
            frame_ids=np.array([codec.frame_id for _, codec, _, _ in frames]),
            seeds=np.array([e.crc_seed for e in encodings], dtype=np.uint8),  # type: ignore[union-attr]
            slave=np.array([slave for slave, _, _, _ in frames]),
            source=np.array([sources for _, _, _, sources in frames]),
            alive_counter=np.array(counters),
            occurrence=np.array(occurrence),
        )

    def values(self, string_values: np.ndarray) -> np.ndarray:
        """Each row's signal values from the string-wide values (NaN where not carried)."""
        padded = np.append(string_values, np.nan)  # index -1: not carried
        return padded[self.source]

    def encode(
        self, values: np.ndarray, next_alive: np.ndarray, labels: np.ndarray | None = None
    ) -> np.ndarray:
        alive = next_alive[self.alive_counter] + self.occurrence
        return frame_arrays.encode(self.encoding, values, self.source >= 0, alive, self.seeds,
                                   labels, self.base_words)  # fmt: skip


class StringReportEncoder:
    """Encodes the reports of the slaves of one string (chain positions 0, 1, ...), with
    ``cells`` and ``sensors`` per slave; it keeps their alive counters."""

    def __init__(self, cells: list[int], sensors: list[int]) -> None:
        self.messages = [slave_messages(index) for index in range(len(cells))]
        self.cells, self.sensors = list(cells), list(sensors)
        counters: dict[int, int] = {}  # frame identifier -> counter

        def counter_of(slave: int, codec: FrameCodec) -> int:
            return counters.setdefault(codec.frame_id, len(counters))

        voltage, temperature, status = [], [], []
        first_cell = first_sensor = 0
        for slave, (m, count, sensor_count) in enumerate(
            zip(self.messages, self.cells, self.sensors, strict=True)
        ):
            voltage += _grouped(slave, m, m.voltages, m.cell_signals, first_cell, count)
            temperature += _grouped(slave, m, m.temperatures, m.sensor_signals, first_sensor,
                                    sensor_count)  # fmt: skip
            names = [m.signal("ST", name) for name in STATUS_SIGNALS]
            encoding = m.status.array_encoding()
            columns = [names.index(f.name) for f in encoding.fields] if encoding else []
            status.append((slave, m.status, None, [slave * len(names) + c for c in columns]))
            first_cell += count
            first_sensor += sensor_count
        self._voltage = _Rows.of(voltage, counter_of)
        self._temperature = _Rows.of(temperature, counter_of) if temperature else None
        self._status = _Rows.of(status, counter_of)
        self._next_alive = np.zeros(len(counters), dtype=np.int64)
        labels = dict(self._temperature.encoding.fields[0].labels) if self._temperature else {}
        self._open_raw = labels.get(NTC_OPEN, -1)
        self._short_raw = labels.get(NTC_SHORT, -1)
        # the rows of all three types in send order: slave by slave, voltages first
        parts = [self._voltage, self._temperature, self._status]
        slave = np.concatenate([rows.slave for rows in parts if rows is not None])
        kind = np.concatenate([np.full(rows.slave.size, k) for k, rows in enumerate(parts)
                               if rows is not None])  # fmt: skip
        self._order = np.lexsort((kind, slave))  # stable: within a type, in row order
        self._row_slave = slave[self._order]
        self._frame_ids = np.concatenate([rows.frame_ids for rows in parts if rows is not None])[
            self._order
        ]
        self.slave_of_id = dict(
            zip(self._frame_ids.tolist(), self._row_slave.tolist(), strict=True)
        )

    def encode(self, time_s: float, reports: list[SlaveReport | None]) -> FrameBlock | None:
        """The frames of the slaves that report (None: this slave sends nothing), in send
        order; their alive counters move on. None when no slave reports."""
        reporting = np.array([report is not None for report in reports])
        if not reporting.any():
            return None
        voltage_v = _joined(reports, "voltage_v", self.cells, np.nan)
        parts = [self._voltage.encode(self._voltage.values(voltage_v), self._next_alive)]
        if self._temperature is not None:
            parts.append(self._temperatures(reports))
        status = np.array([r.status_values() if r is not None else [np.nan] * 5
                           for r in reports]).ravel()  # fmt: skip
        parts.append(self._status.encode(self._status.values(status), self._next_alive))
        payload = np.concatenate(parts)[self._order]
        frame_ids = self._frame_ids
        if not reporting.all():
            rows = reporting[self._row_slave]
            payload, frame_ids = payload[rows], frame_ids[rows]
        for rows in (self._voltage, self._temperature, self._status):
            if rows is not None:
                sent = reporting[rows.slave]
                np.add.at(self._next_alive, rows.alive_counter[sent], 1)
        self._next_alive %= ALIVE_MODULO
        return FrameBlock(time_s, frame_ids, payload)

    def _temperatures(self, reports: list[SlaveReport | None]) -> np.ndarray:
        rows = self._temperature
        assert rows is not None
        temp_c = _joined(reports, "temp_c", self.sensors, np.nan)
        opened = _joined(reports, "ntc_open", self.sensors, False)
        shorted = _joined(reports, "ntc_short", self.sensors, False)
        label = np.where(opened, self._open_raw, np.where(shorted, self._short_raw, -1))
        labels = np.append(label, -1)[rows.source]
        return rows.encode(rows.values(temp_c), self._next_alive, labels)


def _grouped(
    slave: int, m: SlaveMessages, codec: FrameCodec, names: list[str], first: int, count: int
) -> list[tuple[int, FrameCodec, int, list[int]]]:
    """The multiplexed frames of one slave's ``count`` values, ``per_frame`` to a frame."""
    per_frame = CELLS_PER_FRAME if codec is m.voltages else SENSORS_PER_FRAME
    frames = []
    for key in range(-(-count // per_frame)):
        encoding = codec.array_encoding(key)
        sources = []
        for field in encoding.fields if encoding else ():
            index = names.index(field.name)
            sources.append(first + index if index < count else -1)
        frames.append((slave, codec, key, sources))
    return frames


def _joined(
    reports: list[SlaveReport | None], name: str, counts: list[int], missing: float
) -> np.ndarray:
    """The reports' arrays ``name`` end to end along the string, ``missing`` for the slaves
    that do not report."""
    return np.concatenate([
        np.full(count, missing) if report is None else getattr(report, name)
        for report, count in zip(reports, counts, strict=True)
    ])  # fmt: skip
