"""Telemetry payloads: batches of records of one kind, compact on the wire or JSON for debugging.

Binary payload: one marker byte, then a CBOR document, zstd-compressed when that is smaller.
Numeric columns travel as integers in units of their resolution, delta-encoded (first value,
then differences), so slowly changing values cost a byte or less before compression; per-cell
arrays are delta-encoded across cells in a batch's first record and across time after it.
A payload starting with ``{`` is the JSON debug form of the same batch, in engineering units.
docs/telemetry.md describes the layout byte by byte.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any

import cbor2
import numpy as np
import zstandard

from cellwarden.telemetry.schema import (
    CELL_RESOLUTION,
    COLUMNS,
    READABLE_VERSIONS,
    SCHEMA_VERSION,
    Kind,
)

RAW = 0x00  # CBOR follows
ZSTD = 0x01  # zstd-compressed CBOR follows
JSON_START = ord("{")
MAX_DECODED_BYTES = 16 * 1024 * 1024  # a payload may not inflate beyond this (zstd bombs)
MAX_RECORDS = 100_000
ZSTD_LEVEL = 9

Record = dict[str, Any]
Batch = list[tuple[int, Record]]  # (sequence number, record)

RESOLUTIONS = {kind: np.array([float(f.resolution) for f in fields])
               for kind, fields in COLUMNS.items()}  # fmt: skip
_contexts = threading.local()  # zstd contexts are not thread-safe: one pair per thread


def _zstd() -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
    pair = getattr(_contexts, "pair", None)
    if pair is None:
        pair = _contexts.pair = (
            zstandard.ZstdCompressor(level=ZSTD_LEVEL),
            zstandard.ZstdDecompressor(),
        )
    return pair


class PayloadError(ValueError):
    """A payload that cannot be decoded; the message names the problem."""


def encode(kind: Kind, batch: Batch, debug_json: bool = False) -> bytes:
    """One payload carrying ``batch`` (records of one kind, in sequence order)."""
    if not batch:
        raise ValueError("an empty batch has no payload")
    if debug_json:
        records = [{"seq": seq, **record} for seq, record in batch]
        document = {"v": SCHEMA_VERSION, "kind": kind.value, "records": records}
        return json.dumps(document, separators=(",", ":"), default=_json_default).encode()
    seqs = [seq for seq, _ in batch]
    records = [record for _, record in batch]
    document: dict[str, Any] = {"v": SCHEMA_VERSION, "k": kind.value, "s": _deltas(seqs)}
    if kind in COLUMNS:
        document.update(_encode_columns(kind, records))
    elif kind is Kind.CELLS:
        document.update(_encode_cells(records))
    else:
        document["r"] = records
    body = cbor2.dumps(document)
    packed = _zstd()[0].compress(body)
    return bytes([ZSTD]) + packed if len(packed) < len(body) else bytes([RAW]) + body


@dataclass
class Frame:
    """A decoded payload as arrays, for receivers that store columns (the cloud's ingest).

    ``columns`` holds the columnar kinds' fields as float arrays (NaN where missing); a cells
    batch holds ``time_s`` there and its integer matrices (records x cells, in units of
    ``CELL_RESOLUTION``, ``CELL_MISSING`` where missing) in ``cells``, balancing as a bool
    matrix; events and replies keep their records.
    """

    kind: Kind
    seqs: np.ndarray
    columns: dict[str, np.ndarray] = dataclass_field(default_factory=dict)
    cells: dict[str, np.ndarray] = dataclass_field(default_factory=dict)
    balancing: np.ndarray | None = None
    records: list[Record] | None = None

    def __len__(self) -> int:
        return len(self.seqs)


CELL_MISSING = np.iinfo(np.int16).min  # a cell value with no reading, in ``Frame.cells``


def decode(payload: bytes) -> tuple[Kind, Batch]:
    """The kind and (sequence, record) pairs of a payload; PayloadError when it is malformed."""
    frame = decode_frame(payload)
    seqs = frame.seqs.tolist()
    if frame.records is not None:
        return frame.kind, list(zip(seqs, frame.records, strict=True))
    records = _cell_records(frame) if frame.kind is Kind.CELLS else _column_records(frame)
    return frame.kind, list(zip(seqs, records, strict=True))


def decode_frame(payload: bytes) -> Frame:
    """A payload as arrays (see ``Frame``); PayloadError when it is malformed."""
    if not payload:
        raise PayloadError("empty payload")
    try:
        if payload[0] == JSON_START:
            return _decode_json(payload)
        if payload[0] == ZSTD:
            body = _inflate(payload[1:])
        elif payload[0] == RAW:
            body = payload[1:]
        else:
            raise PayloadError(f"unknown payload marker 0x{payload[0]:02x}")
        document = cbor2.loads(body)
    except PayloadError:
        raise
    except (zstandard.ZstdError, cbor2.CBORDecodeError, ValueError, MemoryError) as error:
        raise PayloadError(f"payload does not decode: {error}") from error
    return _decode_document(document)


def _decode_document(document: Any) -> Frame:
    if not isinstance(document, dict):
        raise PayloadError("payload is not a map")
    version = document.get("v")
    if version not in READABLE_VERSIONS:
        raise PayloadError(f"schema version {version!r} is not one of {READABLE_VERSIONS}")
    try:
        kind = Kind(document.get("k"))
    except ValueError:
        raise PayloadError(f"unknown record kind {document.get('k')!r}") from None
    seqs = np.cumsum(_ints(document.get("s"), "s"))
    if not 0 < len(seqs) <= MAX_RECORDS:
        raise PayloadError(f"a batch holds 1..{MAX_RECORDS} records, not {len(seqs)}")
    frame = Frame(kind, seqs)
    try:
        if kind in COLUMNS:
            frame.columns = _decode_columns(kind, document, len(seqs))
        elif kind is Kind.CELLS:
            _decode_cells(frame, document, packed=version >= 2)
        else:
            records = document.get("r")
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise PayloadError("'r' is not a list of records")
            if len(records) != len(seqs):
                raise PayloadError(f"{len(seqs)} sequence numbers for {len(records)} records")
            frame.records = records
    except (KeyError, TypeError, IndexError, OverflowError) as error:
        raise PayloadError(f"{kind.value} payload is malformed: {error!r}") from error
    return frame


def _inflate(packed: bytes) -> bytes:
    """zstd-decompress, refusing output beyond MAX_DECODED_BYTES whatever the frame declares."""
    reader = _zstd()[1].stream_reader(io.BytesIO(packed))
    body = reader.read(MAX_DECODED_BYTES + 1)
    if len(body) > MAX_DECODED_BYTES:
        raise PayloadError(f"payload inflates beyond {MAX_DECODED_BYTES} bytes")
    return body


def _decode_json(payload: bytes) -> Frame:
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PayloadError(f"JSON payload does not parse: {error}") from error
    except RecursionError:
        raise PayloadError("JSON payload is nested too deeply") from None
    if not isinstance(document, dict) or document.get("v") not in READABLE_VERSIONS:
        raise PayloadError(f"JSON payload is not a batch of schema {READABLE_VERSIONS}")
    try:
        kind = Kind(document.get("kind"))
    except ValueError:
        raise PayloadError(f"unknown record kind {document.get('kind')!r}") from None
    records = document.get("records")
    if not isinstance(records, list) or not 0 < len(records) <= MAX_RECORDS:
        raise PayloadError("'records' is not a list of 1.. records")
    seqs = []
    for record in records:
        seq = record.get("seq") if isinstance(record, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise PayloadError("a JSON record lacks its integer 'seq'")
        seqs.append(record.pop("seq"))
    return _frame_of_records(kind, np.array(seqs, dtype=np.int64), records)


def _frame_of_records(kind: Kind, seqs: np.ndarray, records: list[Record]) -> Frame:
    """A frame from records in engineering units (the JSON debug form)."""
    frame = Frame(kind, seqs, records=records)
    try:
        if kind in COLUMNS:
            frame.columns = {
                f.name: np.array([_number(r.get(f.name)) for r in records], dtype=float)
                for f in COLUMNS[kind]
            }
        elif kind is Kind.CELLS:
            frame.columns = {"time_s": np.array([float(r["time_s"]) for r in records])}
            for name, resolution in CELL_RESOLUTION.items():
                matrix = np.array([r[name] for r in records], dtype=float)
                frame.cells[name] = _cell_ints(matrix, resolution)
            if all("balancing" in r for r in records):
                frame.balancing = np.array([r["balancing"] for r in records], dtype=bool)
    except (KeyError, TypeError, ValueError) as error:
        raise PayloadError(f"JSON {kind.value} records are malformed: {error!r}") from error
    if frame.cells and len({m.shape for m in frame.cells.values()}) != 1:
        raise PayloadError("JSON cells records differ in their cell counts")
    return frame


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{value!r} is not a number")
    return float(value)


def _cell_ints(matrix: np.ndarray, resolution: float) -> np.ndarray:
    """Cell values in units of ``resolution`` as int16, ``CELL_MISSING`` where NaN."""
    if matrix.ndim != 2:
        raise ValueError("cell values must be one array per record")
    scaled = np.round(matrix / resolution)
    limit = np.iinfo(np.int16).max
    if np.any(np.abs(scaled[~np.isnan(scaled)]) > limit):
        raise ValueError("a cell value is out of range")
    return np.where(np.isnan(scaled), CELL_MISSING, scaled).astype(np.int16)


def _encode_columns(kind: Kind, records: Sequence[Record]) -> dict[str, Any]:
    """Columns in the schema's field order; missing values listed by column index."""
    columns: list[list[int]] = []
    missing: dict[int, list[int]] = {}
    for index, field in enumerate(COLUMNS[kind]):
        values, gaps = _quantise([r.get(field.name) for r in records], field.resolution)
        columns.append(_deltas(values))
        if gaps:
            missing[index] = gaps
    document: dict[str, Any] = {"c": columns}
    if missing:
        document["m"] = missing
    return document


def _decode_columns(kind: Kind, document: dict[str, Any], count: int) -> dict[str, np.ndarray]:
    columns, missing = document["c"], document.get("m", {})
    fields = COLUMNS[kind]
    if not isinstance(columns, list) or len(columns) != len(fields):
        raise PayloadError(f"'c' must hold the {len(fields)} columns of a {kind.value} record")
    if not isinstance(missing, dict):
        raise PayloadError("'m' must be a map")
    matrix = _int_matrix(columns, len(fields), count)
    scaled = np.cumsum(matrix, axis=1) * RESOLUTIONS[kind][:, None]
    out: dict[str, np.ndarray] = {}
    for index, field in enumerate(fields):
        values = scaled[index]
        if index in missing:
            gaps = _ints(missing[index], field.name)
            if np.any((gaps < 0) | (gaps >= count)):
                raise PayloadError(f"missing rows of {field.name} point outside the batch")
            values[gaps] = np.nan
        out[field.name] = values
    return out


def _int_matrix(columns: list, rows: int, count: int) -> np.ndarray:
    """All columns at once as a rows x count int64 array; PayloadError naming a bad column."""
    try:
        matrix = np.array(columns)
    except (ValueError, OverflowError):
        matrix = None
    if matrix is None or matrix.shape != (rows, count) or matrix.dtype.kind != "i":
        for index, column in enumerate(columns):  # find the column to name
            values = _ints(column, f"c[{index}]")
            if len(values) != count:
                raise PayloadError(f"column {index} has {len(values)} values, not {count}")
        raise PayloadError("'c' must be columns of integers")
    return matrix.astype(np.int64, copy=False)


def _column_records(frame: Frame) -> list[Record]:
    fields = COLUMNS[frame.kind]
    records: list[Record] = [{} for _ in range(len(frame))]
    for field in fields:
        for record, value in zip(records, frame.columns[field.name].tolist(), strict=True):
            record[field.name] = _scale(value, field.resolution)
    return records


def _encode_cells(records: Sequence[Record]) -> dict[str, Any]:
    counts = {len(r["voltage_v"]) for r in records}
    if len(counts) != 1:
        raise ValueError("a cells batch needs the same cell count in every record")
    times, _ = _quantise([r["time_s"] for r in records], 0.1)
    document: dict[str, Any] = {"t": _deltas(times), "n": counts.pop()}
    for name, resolution in CELL_RESOLUTION.items():
        matrix = np.array([r[name] for r in records], dtype=float)
        limit = np.iinfo(np.int16).max * resolution
        nan = ~(np.abs(matrix) <= limit)  # no reading, or one no cell can give (a glitch)
        quantised = np.round(np.where(nan, 0.0, matrix) / resolution).astype(np.int64)
        flat = np.diff(quantised, axis=0, prepend=0)
        flat[0] = np.diff(quantised[0], prepend=0)
        document[name] = list(_pack(flat.ravel()))
        if nan.any():
            document[f"{name}_missing"] = np.flatnonzero(nan).tolist()
    balancing = np.array([r.get("balancing", []) for r in records], dtype=bool)
    if balancing.size:
        document["balancing"] = np.packbits(balancing, axis=1).tobytes()
    return document


PACKED_TYPES = ("<i1", "<i2", "<i4")  # the narrowest that holds every difference


def _pack(deltas: np.ndarray) -> tuple[int, bytes]:
    """The first value apart, the differences after it as little-endian int8, int16 or int32
    (the byte length tells which)."""
    first, rest = (int(deltas[0]), deltas[1:]) if deltas.size else (0, deltas)
    largest = int(np.abs(rest).max()) if rest.size else 0
    dtype = next(t for t in PACKED_TYPES if largest <= np.iinfo(np.dtype(t)).max)
    return first, rest.astype(dtype).tobytes()


def _unpack(value: Any, name: str, size: int) -> np.ndarray:
    if not (isinstance(value, list) and len(value) == 2 and isinstance(value[0], int)
            and isinstance(value[1], bytes)):  # fmt: skip
        raise PayloadError(f"'{name}' must be [first value, packed differences]")
    first, packed = value
    for dtype in PACKED_TYPES:
        if len(packed) == (size - 1) * np.dtype(dtype).itemsize:
            rest = np.frombuffer(packed, dtype=dtype).astype(np.int64)
            return np.concatenate(([first], rest))
    raise PayloadError(f"'{name}' holds {len(packed)} bytes: not {size - 1} packed values")


def _decode_cells(frame: Frame, document: dict[str, Any], packed: bool) -> None:
    count = len(frame)
    cells = document["n"]
    if not isinstance(cells, int) or not 0 < cells <= 100_000:
        raise PayloadError("'n' must be the cell count")
    times = np.cumsum(_ints(document["t"], "t"))
    if len(times) != count:
        raise PayloadError(f"{len(times)} times for {count} cell records")
    frame.columns = {"time_s": np.round(times * 0.1, 1)}
    for name in CELL_RESOLUTION:
        if packed:
            flat = _unpack(document[name], name, count * cells)
        else:
            flat = _ints(document[name], name)
        if flat.size != count * cells:
            raise PayloadError(f"'{name}' holds {flat.size} values, not {count} x {cells}")
        deltas = flat.reshape(count, cells)
        deltas[0] = np.cumsum(deltas[0])
        values = np.cumsum(deltas, axis=0)
        limit = np.iinfo(np.int16).max
        if values.size and np.abs(values).max() > limit:
            raise PayloadError(f"'{name}' holds values beyond the schema's range")
        missing = _ints(document.get(f"{name}_missing", []), name)
        if np.any((missing < 0) | (missing >= values.size)):
            raise PayloadError(f"'{name}_missing' points outside the cells")
        values = values.astype(np.int16)
        values.ravel()[missing] = CELL_MISSING
        frame.cells[name] = values
    packed = document.get("balancing")
    if packed is not None:
        row_bytes = (cells + 7) // 8
        if not isinstance(packed, bytes) or len(packed) != row_bytes * count:
            raise PayloadError("'balancing' is not one bit per cell per record")
        bits = np.unpackbits(
            np.frombuffer(packed, dtype=np.uint8).reshape(count, row_bytes), axis=1
        )
        frame.balancing = bits[:, :cells].astype(bool)


def _cell_records(frame: Frame) -> list[Record]:
    records: list[Record] = [{"time_s": t} for t in frame.columns["time_s"].tolist()]
    for name, resolution in CELL_RESOLUTION.items():
        ints = frame.cells[name]
        values = np.where(ints == CELL_MISSING, np.nan, ints * resolution)
        for record, row in zip(records, np.round(values, 6).tolist(), strict=True):
            record[name] = row
    if frame.balancing is not None:
        for record, row in zip(records, frame.balancing.tolist(), strict=True):
            record["balancing"] = row
    return records


def _quantise(values: Sequence[Any], resolution: float) -> tuple[list[int], list[int]]:
    """Integers in units of ``resolution``; a missing value repeats its predecessor."""
    out: list[int] = []
    gaps: list[int] = []
    previous = 0
    for index, value in enumerate(values):
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            gaps.append(index)
            out.append(previous)
            continue
        previous = round(float(value) / resolution)
        out.append(previous)
    return out, gaps


def _scale(value: float, resolution: float) -> float | int | None:
    if math.isnan(value):
        return None
    if resolution == 1:
        return round(value)
    return round(value, 10)


def _deltas(values: Sequence[int]) -> list[int]:
    return [values[0], *(b - a for a, b in itertools.pairwise(values))]


def _ints(value: Any, name: str) -> np.ndarray:
    """A CBOR list of integers as an int64 array; PayloadError for anything else."""
    if not isinstance(value, list):
        raise PayloadError(f"'{name}' must be a list of integers")
    if len(value) > MAX_RECORDS * 1000:
        raise PayloadError(f"'{name}' is too long")
    array = np.array(value) if value else np.zeros(0, dtype=np.int64)
    if array.dtype.kind != "i" or array.ndim != 1:
        raise PayloadError(f"'{name}' must be a list of integers")
    return array.astype(np.int64, copy=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
