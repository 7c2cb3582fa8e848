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
from typing import Any

import cbor2
import numpy as np
import zstandard

from cellwarden.telemetry.schema import CELL_RESOLUTION, COLUMNS, SCHEMA_VERSION, Kind

RAW = 0x00  # CBOR follows
ZSTD = 0x01  # zstd-compressed CBOR follows
JSON_START = ord("{")
MAX_DECODED_BYTES = 16 * 1024 * 1024  # a payload may not inflate beyond this (zstd bombs)
MAX_RECORDS = 100_000
ZSTD_LEVEL = 9

Record = dict[str, Any]
Batch = list[tuple[int, Record]]  # (sequence number, record)

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


def decode(payload: bytes) -> tuple[Kind, Batch]:
    """The kind and (sequence, record) pairs of a payload; PayloadError when it is malformed."""
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


def _decode_document(document: Any) -> tuple[Kind, Batch]:
    if not isinstance(document, dict):
        raise PayloadError("payload is not a map")
    if document.get("v") != SCHEMA_VERSION:
        raise PayloadError(f"schema version {document.get('v')!r} is not {SCHEMA_VERSION}")
    try:
        kind = Kind(document.get("k"))
    except ValueError:
        raise PayloadError(f"unknown record kind {document.get('k')!r}") from None
    seqs = _integrate(_int_list(document.get("s"), "s"))
    if not 0 < len(seqs) <= MAX_RECORDS:
        raise PayloadError(f"a batch holds 1..{MAX_RECORDS} records, not {len(seqs)}")
    try:
        if kind in COLUMNS:
            records = _decode_columns(kind, document, len(seqs))
        elif kind is Kind.CELLS:
            records = _decode_cells(document, len(seqs))
        else:
            records = document.get("r")
            if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
                raise PayloadError("'r' is not a list of records")
    except (KeyError, TypeError, IndexError, OverflowError) as error:
        raise PayloadError(f"{kind.value} payload is malformed: {error!r}") from error
    if len(records) != len(seqs):
        raise PayloadError(f"{len(seqs)} sequence numbers for {len(records)} records")
    return kind, list(zip(seqs, records, strict=True))


def _inflate(packed: bytes) -> bytes:
    """zstd-decompress, refusing output beyond MAX_DECODED_BYTES whatever the frame declares."""
    reader = _zstd()[1].stream_reader(io.BytesIO(packed))
    body = reader.read(MAX_DECODED_BYTES + 1)
    if len(body) > MAX_DECODED_BYTES:
        raise PayloadError(f"payload inflates beyond {MAX_DECODED_BYTES} bytes")
    return body


def _decode_json(payload: bytes) -> tuple[Kind, Batch]:
    try:
        document = json.loads(payload)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise PayloadError(f"JSON payload does not parse: {error}") from error
    except RecursionError:
        raise PayloadError("JSON payload is nested too deeply") from None
    if not isinstance(document, dict) or document.get("v") != SCHEMA_VERSION:
        raise PayloadError(f"JSON payload is not a schema {SCHEMA_VERSION} batch")
    try:
        kind = Kind(document.get("kind"))
    except ValueError:
        raise PayloadError(f"unknown record kind {document.get('kind')!r}") from None
    records = document.get("records")
    if not isinstance(records, list) or not 0 < len(records) <= MAX_RECORDS:
        raise PayloadError("'records' is not a list of 1.. records")
    batch: Batch = []
    for record in records:
        seq = record.get("seq") if isinstance(record, dict) else None
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise PayloadError("a JSON record lacks its integer 'seq'")
        seq = record.pop("seq")
        batch.append((seq, record))
    return kind, batch


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


def _decode_columns(kind: Kind, document: dict[str, Any], count: int) -> list[Record]:
    columns, missing = document["c"], document.get("m", {})
    fields = COLUMNS[kind]
    if not isinstance(columns, list) or len(columns) != len(fields):
        raise PayloadError(f"'c' must hold the {len(fields)} columns of a {kind.value} record")
    if not isinstance(missing, dict):
        raise PayloadError("'m' must be a map")
    records: list[Record] = [{} for _ in range(count)]
    for index, field in enumerate(fields):
        values = _integrate(_int_list(columns[index], field.name))
        if len(values) != count:
            raise PayloadError(f"column {field.name} has {len(values)} values, not {count}")
        gaps = set(_int_list(missing.get(index, []), field.name))
        for row, value in enumerate(values):
            records[row][field.name] = _scale(value, field.resolution, row in gaps)
    return records


def _encode_cells(records: Sequence[Record]) -> dict[str, Any]:
    counts = {len(r["voltage_v"]) for r in records}
    if len(counts) != 1:
        raise ValueError("a cells batch needs the same cell count in every record")
    times, _ = _quantise([r["time_s"] for r in records], 0.1)
    document: dict[str, Any] = {"t": _deltas(times), "n": counts.pop()}
    for name, resolution in CELL_RESOLUTION.items():
        matrix = np.array([r[name] for r in records], dtype=float)
        nan = np.isnan(matrix)
        quantised = np.round(np.where(nan, 0.0, matrix) / resolution).astype(np.int64)
        flat = np.diff(quantised, axis=0, prepend=0)
        flat[0] = np.diff(quantised[0], prepend=0)
        document[name] = flat.ravel().tolist()
        if nan.any():
            document[f"{name}_missing"] = np.flatnonzero(nan).tolist()
    balancing = np.array([r.get("balancing", []) for r in records], dtype=bool)
    if balancing.size:
        document["balancing"] = np.packbits(balancing, axis=1).tobytes()
    return document


def _decode_cells(document: dict[str, Any], count: int) -> list[Record]:
    cells = document["n"]
    if not isinstance(cells, int) or not 0 < cells <= 100_000:
        raise PayloadError("'n' must be the cell count")
    times = _integrate(_int_list(document["t"], "t"))
    if len(times) != count:
        raise PayloadError(f"{len(times)} times for {count} cell records")
    records: list[Record] = [{"time_s": t * 0.1} for t in times]
    for name, resolution in CELL_RESOLUTION.items():
        flat = np.array(_int_list(document[name], name), dtype=np.int64)
        if flat.size != count * cells:
            raise PayloadError(f"'{name}' holds {flat.size} values, not {count} x {cells}")
        deltas = flat.reshape(count, cells)
        deltas[0] = np.cumsum(deltas[0])
        values = np.cumsum(deltas, axis=0) * resolution
        missing = _int_list(document.get(f"{name}_missing", []), name)
        flat_values = values.ravel()
        if any(not 0 <= i < flat_values.size for i in missing):
            raise PayloadError(f"'{name}_missing' points outside the cells")
        flat_values[missing] = np.nan
        for index, record in enumerate(records):
            record[name] = values[index].tolist()
    packed = document.get("balancing")
    if packed is not None:
        row_bytes = (cells + 7) // 8
        if not isinstance(packed, bytes) or len(packed) != row_bytes * count:
            raise PayloadError("'balancing' is not one bit per cell per record")
        bits = np.unpackbits(
            np.frombuffer(packed, dtype=np.uint8).reshape(count, row_bytes), axis=1
        )
        for index, record in enumerate(records):
            record["balancing"] = bits[index, :cells].astype(bool).tolist()
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


def _scale(value: int, resolution: float, missing: bool) -> float | int | None:
    if missing:
        return None
    if resolution == 1:
        return value
    return round(value * resolution, 10)


def _deltas(values: Sequence[int]) -> list[int]:
    return [values[0], *(b - a for a, b in itertools.pairwise(values))]


def _integrate(deltas: Sequence[int]) -> list[int]:
    total, out = 0, []
    for delta in deltas:
        total += delta
        out.append(total)
    return out


def _int_list(value: Any, name: str) -> list[int]:
    if not isinstance(value, list) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        raise PayloadError(f"'{name}' must be a list of integers")
    if len(value) > MAX_RECORDS * 1000:
        raise PayloadError(f"'{name}' is too long")
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
