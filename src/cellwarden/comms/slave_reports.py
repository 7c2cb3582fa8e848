"""A string's slave reports on the internal bus, as arrays: every slave's cell voltages,
temperatures and status of one cycle encoded at once (the slaves' side) and decoded at once
(the master's side).

The slaves' firmware (``comms.slave_firmware``) measures and says what it reports; this module puts
the reports of a whole string on the wire, byte for byte as each slave's codecs encode them
one frame at a time (``tests/test_slave_reports.py``): per slave, in chain order, its voltage
frames (three cells each), its temperature frames (six sensors each, a rail reading as its
value-table code) and its status frame, each with the slave's alive counter per identifier.
The master reads any mix of such frames back, each row as ``FrameCodec.decode`` reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from cellwarden.comms import frame_arrays
from cellwarden.comms.can_bus import FrameBlock
from cellwarden.comms.codec import ArrayLayout, FrameCodec
from cellwarden.comms.e2e import ALIVE_MODULO
from cellwarden.comms.internal_protocol import (
    CELLS_PER_FRAME,
    MAX_CELLS,
    MAX_SENSORS,
    NTC_OPEN,
    NTC_SHORT,
    SENSORS_PER_FRAME,
    SlaveState,
    slave_messages,
)

STATUS_SIGNALS = ("State", "OpenWire", "Balancing", "BoardTemp", "BalancingDuty")
STATUS_FIELDS = ("state", "open_wire_bits", "balancing_bits", "board_temp_c", "balancing_duty")
VOLTAGES, TEMPERATURES, STATUS = range(3)  # the report's message kinds, in send order
STANDARD_IDS = 1 << 11
ROUTES_KEPT = 64  # frame sequences whose routes a layout remembers


class SlaveReport(NamedTuple):
    """What one slave reports in a cycle (a tuple: a string's slaves make dozens a cycle)."""

    voltage_v: np.ndarray
    temp_c: np.ndarray
    ntc_open: np.ndarray
    ntc_short: np.ndarray
    state: SlaveState
    open_wire_bits: int
    balancing_bits: int
    board_temp_c: float
    balancing_duty: float


class StringReports(NamedTuple):
    """What the slaves of a string report for one trigger, end to end along the string; a
    slave that does not report sends nothing (its values NaN, its status NaN)."""

    voltage_v: np.ndarray  # per cell
    temp_c: np.ndarray  # per sensor
    ntc_open: np.ndarray
    ntc_short: np.ndarray
    status: np.ndarray  # (slaves, STATUS_FIELDS)
    reporting: np.ndarray  # per slave

    @classmethod
    def join(cls, layout: ReportLayout, reports: list[SlaveReport | None]) -> StringReports:
        """The reports of each slave (None: this slave does not report) joined."""
        reporting = np.array([report is not None for report in reports])
        given = [_missing(layout, slave) if report is None else report
                 for slave, report in enumerate(reports)]  # fmt: skip
        columns = list(zip(*given, strict=True))  # SlaveReport's fields, slave by slave
        fields = SlaveReport._fields
        voltage_v, temp_c, opened, shorted = (
            _joined(columns[fields.index(name)], name, counts)
            for name, counts in (("voltage_v", layout.cells), ("temp_c", layout.sensors),
                                 ("ntc_open", layout.sensors), ("ntc_short", layout.sensors))
        )  # fmt: skip
        status = np.array([columns[fields.index(name)] for name in STATUS_FIELDS],
                          dtype=np.float64).T.copy()  # fmt: skip
        status[~reporting] = np.nan
        return cls(voltage_v, temp_c, opened, shorted, status, reporting)


@dataclass(frozen=True)
class ReportKind:
    """One message kind of every slave of a string: the layout its frames share (signal
    names, multiplexer and identifier aside) and what each frame of each slave carries."""

    layout: ArrayLayout
    frame_ids: np.ndarray  # per slave
    seeds: np.ndarray  # per slave: the identifier's CRC register
    base_words: np.ndarray  # per multiplexer value
    frames: np.ndarray  # per slave: how many frames (multiplexer values 0, 1, ...) it sends
    sources: np.ndarray  # (slave, multiplexer value, column): string-wide value index, or -1
    first_part: np.ndarray  # per slave: the index of its first frame among all kinds' frames

    @property
    def columns(self) -> int:
        return len(self.layout.fields)


class ReportLayout:
    """The report frames of a string's slaves, ``cells`` and ``sensors`` per slave in chain
    order. Each frame a slave sends in a cycle is one "part" of its report (numbered along the
    string, slave by slave, in send order)."""

    def __init__(self, cells: list[int], sensors: list[int]) -> None:
        self.cells, self.sensors = list(cells), list(sensors)
        self.messages = [slave_messages(index) for index in range(len(cells))]
        m = self.messages
        self.first_cell = np.cumsum([0, *cells[:-1]])
        self.first_sensor = np.cumsum([0, *sensors[:-1]])
        frames = [[-(-c // CELLS_PER_FRAME) for c in cells],
                  [-(-n // SENSORS_PER_FRAME) for n in sensors], [1] * len(cells)]  # fmt: skip
        per_slave = np.array(frames).sum(axis=0)
        first_part = np.cumsum([0, *per_slave[:-1]])
        offsets = [first_part, first_part + frames[0], first_part + frames[0] + frames[1]]
        self.parts = int(per_slave.sum())
        self.part_slave = np.repeat(np.arange(len(cells)), per_slave)
        self.kinds = (
            _kind([s.voltages for s in m], [s.cell_signals for s in m], cells, frames[0],
                  offsets[0], list(range(MAX_CELLS // CELLS_PER_FRAME))),
            _kind([s.temperatures for s in m], [s.sensor_signals for s in m], sensors,
                  frames[1], offsets[1], list(range(MAX_SENSORS // SENSORS_PER_FRAME))),
            _kind([s.status for s in m], [[s.signal("ST", n) for n in STATUS_SIGNALS] for s in m],
                  [len(STATUS_SIGNALS)] * len(cells), frames[2], offsets[2], [None]),
        )  # fmt: skip
        labels = dict(self.kinds[TEMPERATURES].layout.fields[0].labels)
        self.ntc_open_raw = labels[NTC_OPEN]
        self.ntc_short_raw = labels[NTC_SHORT]
        # every report identifier -> (kind, slave); its alive counter is its index here
        self.kind_of_id = np.full(STANDARD_IDS, -1)
        self.slave_of_id = np.full(STANDARD_IDS, -1)
        self.counter_of_id = np.full(STANDARD_IDS, -1)
        for number, kind in enumerate(self.kinds):
            self.kind_of_id[kind.frame_ids] = number
            self.slave_of_id[kind.frame_ids] = np.arange(len(cells))
            self.counter_of_id[kind.frame_ids] = number * len(cells) + np.arange(len(cells))
        self.counters = 3 * len(cells)

        self._routes: dict[bytes, ReportRoute] = {}

    def ours(self, frame_ids: np.ndarray) -> np.ndarray:
        """Which identifiers are report frames of this string."""
        inside = frame_ids < STANDARD_IDS
        return inside & (self.kind_of_id[np.where(inside, frame_ids, 0)] >= 0)

    def route(self, frame_ids: np.ndarray) -> ReportRoute:
        """Where the frames ``frame_ids`` (all ``ours``) go; kept for the sequences seen last,
        as a healthy string sends the same identifiers in the same order every cycle."""
        frame_ids = np.asarray(frame_ids, dtype=np.int64)
        key = frame_ids.tobytes()
        found = self._routes.get(key)
        if found is None:
            if len(self._routes) >= ROUTES_KEPT:
                self._routes.clear()
            found = self._routes[key] = self._route(frame_ids)
        return found

    def _route(self, frame_ids: np.ndarray) -> ReportRoute:
        kind = self.kind_of_id[frame_ids]
        slave = self.slave_of_id[frame_ids]
        position = np.zeros(frame_ids.size, dtype=np.int64)
        rows, senders = [], []
        for number in range(len(self.kinds)):
            taken = np.flatnonzero(kind == number)
            position[taken] = np.arange(taken.size)
            rows.append(taken)
            senders.append(slave[taken])
        seeds = [spec.seeds[sender] for spec, sender in zip(self.kinds, senders, strict=True)]
        route = ReportRoute(kind, slave, self.counter_of_id[frame_ids], position, rows, senders,
                            seeds)  # fmt: skip
        for array in (kind, slave, route.counter, position, *rows, *senders, *seeds):
            array.flags.writeable = False  # shared by every cycle that sends this sequence
        return route


@dataclass(frozen=True)
class ReportRoute:
    """A sequence of report frames sorted out by identifier: each frame's kind, slave, alive
    counter and index among its kind's frames; per kind its rows, their senders and their
    identifiers' CRC registers."""

    kind: np.ndarray
    slave: np.ndarray
    counter: np.ndarray
    position: np.ndarray
    rows: list[np.ndarray]
    senders: list[np.ndarray]
    seeds: list[np.ndarray]


def _kind(
    codecs: list[FrameCodec],
    names: list[list[str]],
    counts: list[int],
    frames: list[int],
    first_part: np.ndarray,
    keys: list[int | None],
) -> ReportKind:
    """One kind's layout, of multiplexer values ``keys``; ``names[slave]`` names the signals
    of the slave's ``counts[slave]`` values, which are numbered along the string."""
    layouts = [[codec.array_layout(key) for key in keys] for codec in codecs]
    every = [layout for row in layouts for layout in row]
    if any(layout is None for layout in every):
        raise ValueError(f"{codecs[0].name}: the slaves' report frames must map to arrays")
    first = every[0]
    if any(layout.geometry() != first.geometry() for layout in every):  # type: ignore[union-attr]
        raise ValueError(f"{codecs[0].name}: every slave's report frames must share a layout")
    if first.alive is None or not first.protected:  # type: ignore[union-attr]
        raise ValueError(f"{codecs[0].name}: report frames need an alive counter and a CRC")
    if any(row[key].base_word != layouts[0][key].base_word  # type: ignore[union-attr]
           for row in layouts for key in range(len(keys))):  # fmt: skip
        raise ValueError(f"{codecs[0].name}: every slave's report frames must share a layout")
    sources = np.full((len(codecs), len(keys), len(first.fields)), -1)  # type: ignore[union-attr]
    start = 0
    for slave, row in enumerate(layouts):
        for key, layout in enumerate(row):
            for column, field in enumerate(layout.fields):  # type: ignore[union-attr]
                index = names[slave].index(field.name)
                if index < counts[slave]:
                    sources[slave, key, column] = start + index
        start += counts[slave]
    return ReportKind(
        layout=first,  # type: ignore[arg-type]
        frame_ids=np.array([codec.frame_id for codec in codecs]),
        seeds=np.array([row[0].crc_seed for row in layouts], dtype=np.uint8),  # type: ignore[union-attr]
        base_words=np.array([layout.base_word for layout in layouts[0]], dtype=np.uint64),  # type: ignore[union-attr]
        frames=np.array(frames),
        sources=sources,
        first_part=np.asarray(first_part),
    )


class StringReportEncoder:
    """Encodes the reports of a string's slaves; it keeps their alive counters."""

    def __init__(self, layout: ReportLayout) -> None:
        self.layout = layout
        slaves = len(layout.cells)
        self._next_alive = np.zeros(layout.counters, dtype=np.int64)
        # every frame of every slave in send order: (kind, slave, multiplexer value)
        rows = [(number, slave, key) for slave in range(slaves)
                for number, kind in enumerate(layout.kinds)
                for key in range(int(kind.frames[slave]))]  # fmt: skip
        self._kind, self._slave, self._key = (
            np.array(column) for column in zip(*rows, strict=True)
        )
        self._occurrence = self._key  # a slave's frames of one kind go out in key order
        self._counter = self._kind * slaves + self._slave
        self.frame_ids = np.concatenate(
            [layout.kinds[k].frame_ids[[s]] for k, s in zip(self._kind, self._slave, strict=True)]
        )
        self._parts = [self._part(number) for number in range(len(layout.kinds))]
        self._frames_per_counter = np.bincount(self._counter, minlength=layout.counters)

    def _part(self, number: int) -> _EncodedKind:
        rows = np.flatnonzero(self._kind == number)
        kind = self.layout.kinds[number]
        slave, key = self._slave[rows], self._key[rows]
        sources = kind.sources[slave, key]
        return _EncodedKind(number, kind.layout, rows, sources, sources >= 0, kind.seeds[slave],
                            kind.base_words[key])  # fmt: skip

    def encode(self, time_s: float, reports: list[SlaveReport | None]) -> FrameBlock | None:
        """The frames of the slaves that report (None: this slave sends nothing), in send
        order; their alive counters move on. None when no slave reports."""
        return self.encode_string(time_s, StringReports.join(self.layout, reports))

    def encode_string(self, time_s: float, reports: StringReports) -> FrameBlock | None:
        """``encode``, the reports joined already."""
        layout = self.layout
        reporting = reports.reporting
        if not reporting.any():
            return None
        voltage_v, temp_c = reports.voltage_v, reports.temp_c
        ntc_codes = np.where(reports.ntc_open, layout.ntc_open_raw,
                             np.where(reports.ntc_short, layout.ntc_short_raw, -1))  # fmt: skip
        status = reports.status.ravel()
        payload = np.empty((self._kind.size, 8), dtype=np.uint8)
        alive = self._next_alive[self._counter] + self._occurrence
        string_values = (voltage_v, temp_c, status)
        for part in self._parts:
            rows, sources = part.rows, part.sources
            if not rows.size:
                continue
            values = np.append(string_values[part.number], np.nan)[sources]  # -1: not carried
            labels = np.append(ntc_codes, -1)[sources] if part.number == TEMPERATURES else None
            payload[rows] = frame_arrays.encode(part.layout, values, part.carried, alive[rows],
                                                part.seeds, labels, part.base_words)  # fmt: skip
        frame_ids = self.frame_ids
        if reporting.all():
            self._next_alive += self._frames_per_counter
        else:
            sent = reporting[self._slave]
            payload, frame_ids = payload[sent], frame_ids[sent]
            self._next_alive += np.bincount(self._counter[sent], minlength=layout.counters)
        self._next_alive %= ALIVE_MODULO
        return FrameBlock(time_s, frame_ids, payload)


@dataclass(frozen=True)
class _EncodedKind:
    """A report kind's frames among a string's frames of a cycle, with what encodes them."""

    number: int
    layout: ArrayLayout
    rows: np.ndarray  # among every frame of the cycle, in send order
    sources: np.ndarray  # (rows, columns): string-wide value index, or -1
    carried: np.ndarray
    seeds: np.ndarray
    base_words: np.ndarray


class BalancingCommands:
    """The master's balancing command of every slave of a string as one block, byte for byte
    as each slave's codec encodes its frame."""

    def __init__(self, layout: ReportLayout) -> None:
        codecs = [m.balancing for m in layout.messages]
        layouts = [codec.array_layout() for codec in codecs]
        first = layouts[0]
        if first is None or any(
            other is None
            or other.geometry() != first.geometry()
            or other.base_word != first.base_word
            for other in layouts
        ):
            raise ValueError("the slaves' balancing commands must map to arrays")
        self.layout = first
        self.frame_ids = np.array([codec.frame_id for codec in codecs])
        self._seeds = np.array([other.crc_seed for other in layouts], dtype=np.uint8)  # type: ignore[union-attr]
        names = [field.name for field in first.fields]
        m = layout.messages[0]
        self._enable = names.index(m.signal("Bal", "Enable"))
        self._mask = names.index(m.signal("Bal", "Mask"))
        self._first_cell = layout.first_cell
        self._next_alive = np.zeros(self.frame_ids.size, dtype=np.int64)
        self._carried = np.ones((self.frame_ids.size, len(first.fields)), dtype=bool)
        # each cell's bit in its slave's mask
        self._bit = np.concatenate([1 << np.arange(cells, dtype=np.int64)
                                    for cells in layout.cells])  # fmt: skip

    def encode(self, time_s: float, mask: np.ndarray) -> FrameBlock:
        """Each slave's frame: its cells' bits of the string's bleed ``mask`` (booleans) and
        whether any is set, with the alive counter of its identifier (kept here)."""
        own = np.add.reduceat(np.where(mask, self._bit, 0), self._first_cell)
        values = np.empty((self.frame_ids.size, 2))
        values[:, self._enable] = own != 0
        values[:, self._mask] = own
        alive = self._next_alive
        self._next_alive = (alive + 1) % ALIVE_MODULO
        payload = frame_arrays.encode(self.layout, values, self._carried, alive, self._seeds)
        return FrameBlock(time_s, self.frame_ids, payload)

    def decode(
        self, senders: np.ndarray, payload: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Commands to the slaves ``senders`` (chain positions) with their ``(n, 8)``
        payloads: whether each is usable (its CRC holds), its enable flag and its raw mask."""
        decoded = frame_arrays.decode(self.layout, payload, self._seeds[senders])
        values = decoded.values
        return decoded.usable, values[:, self._enable] != 0, values[:, self._mask]


@dataclass(frozen=True)
class DecodedReports:
    """Report frames decoded, row by row in arrival order."""

    kind: np.ndarray
    slave: np.ndarray
    usable: np.ndarray  # a good CRC and a multiplexer value the slave's layout defines
    alive: np.ndarray
    counter: np.ndarray  # which alive counter (identifier) the row belongs to
    part: np.ndarray  # which part of its slave's report (-1: none of this string's layout)
    key: np.ndarray
    position: np.ndarray  # each row's index among its kind's rows
    values: list[np.ndarray]  # per kind: (its rows, columns) physical values
    raws: list[np.ndarray]
    rows: list[np.ndarray]  # per kind: its rows' positions


def decode_reports(layout: ReportLayout, frame_ids: np.ndarray, payload: np.ndarray):
    """The report frames ``frame_ids`` (all ``layout.ours``) with their ``(n, 8)`` payloads."""
    route = layout.route(frame_ids)
    count = route.kind.size
    usable = np.empty(count, dtype=bool)
    alive = np.empty(count, dtype=np.int64)
    key = np.empty(count, dtype=np.int64)
    part = np.empty(count, dtype=np.int64)
    values, raws = [], []
    for spec, rows, sender, seeds in zip(layout.kinds, route.rows, route.senders, route.seeds,
                                         strict=True):  # fmt: skip
        keys = spec.base_words.size
        decoded = frame_arrays.decode(spec.layout, payload[rows], seeds, keys)
        usable[rows] = decoded.usable
        alive[rows] = decoded.alive
        key[rows] = np.minimum(decoded.mux, keys - 1)
        sent = decoded.mux < spec.frames[sender]
        part[rows] = np.where(sent, spec.first_part[sender] + decoded.mux, -1)
        values.append(decoded.values)
        raws.append(decoded.raws)
    return DecodedReports(route.kind, route.slave, usable, alive, route.counter, part, key,
                          route.position, values, raws, route.rows)  # fmt: skip


def _missing(layout: ReportLayout, slave: int) -> SlaveReport:
    """What stands in for a slave that does not report (its values are not sent)."""
    cells, sensors = layout.cells[slave], layout.sensors[slave]
    unknown = np.full(sensors, False)
    return SlaveReport(np.full(cells, np.nan), np.full(sensors, np.nan), unknown, unknown,
                       SlaveState.INIT, 0, 0, np.nan, np.nan)  # fmt: skip


def _joined(arrays: tuple[np.ndarray, ...], name: str, counts: list[int]) -> np.ndarray:
    """The slaves' arrays ``name`` end to end along the string."""
    shapes = [array.shape for array in arrays]
    for slave, (shape, count) in enumerate(zip(shapes, counts, strict=True)):
        if shape != (count,):
            raise ValueError(f"slave {slave + 1}'s report: {name} has {shape}, not ({count},)")
    return np.concatenate(arrays)
