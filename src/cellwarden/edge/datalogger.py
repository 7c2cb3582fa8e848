"""The BCU's data logger (its MicroSD card): records in append-only, crash-safe segment files.

Each segment starts with a 16-byte header (magic, format version, segment number); each record
is a frame ``magic | length | CRC32 | CBOR payload`` (docs/datalogger.md, byte by byte). A frame
cut short by a power cut, or damaged on the card, fails its CRC and is skipped; reading resumes
at the next frame's magic. The directory is bounded: the oldest segments are deleted first.

Disk errors never leave ``DataLogger.append``: the record is counted in ``dropped``, the problem
is named in ``last_error`` and the next append tries again. Time is injected (``time_s``).
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import struct
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple

import cbor2

MIB = 1024 * 1024
FILE_MAGIC = b"\x89CWLOG\r\n"
FORMAT_VERSION = 1
FILE_HEADER = struct.Struct("<8sHHI")  # magic, format version, flags (0), segment number
FRAME_MAGIC = b"\xfeCWR"
FRAME_HEADER = struct.Struct("<4sII")  # magic, payload length, CRC32 of (length, payload)
LENGTH = struct.Struct("<I")
MAX_PAYLOAD_BYTES = 16 * MIB
MIN_SEGMENT_BYTES = 1024
SEGMENT_SUFFIX = ".cwlog"
_SEGMENT_NAME = re.compile(r"seg-(\d{6,})\.cwlog")
_PROBLEMS = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk full",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.EIO: "I/O error",
    errno.ENOENT: "missing",
}
_RESERVED_COLUMNS = ("time_s", "kind")


class _DiskError(Exception):
    """An OSError of the card, with the message the logger reports."""


@dataclass(frozen=True)
class LogRecord:
    """One record read back; ``segment`` is the file's name, ``offset`` its frame's byte."""

    time_s: float
    kind: str
    record: dict[str, Any]
    segment: str
    offset: int


@dataclass(frozen=True)
class SkippedFrame:
    """Bytes skipped while reading: a frame cut short at the end of a segment ("torn") or
    damaged ("corrupt"), from ``offset`` for ``size_bytes`` up to the next valid frame."""

    segment: str
    offset: int
    size_bytes: int
    reason: Literal["torn", "corrupt"]
    detail: str


@dataclass
class ReadReport:
    """What a read found: records, segments and the frames it had to skip."""

    records: int = 0
    segments: int = 0
    skipped: list[SkippedFrame] = field(default_factory=list)

    @property
    def torn(self) -> int:
        return sum(frame.reason == "torn" for frame in self.skipped)

    @property
    def corrupt(self) -> int:
        return sum(frame.reason == "corrupt" for frame in self.skipped)


# --- writing ---------------------------------------------------------------------------------
class DataLogger:
    """Append-only, rotating, bounded record log in ``directory``.

    A new segment starts when the current one would exceed ``segment_bytes``; the oldest
    segments are deleted to keep the directory's segments within ``max_bytes``. Every record is
    written to the OS at once; ``fsync`` runs at most every ``sync_period_s`` of the injected
    clock, when a segment is closed and on ``close()``.
    """

    def __init__(
        self,
        directory: Path,
        segment_bytes: int = 4 * MIB,
        max_bytes: int = 256 * MIB,
        sync_period_s: float = 1.0,
    ) -> None:
        if segment_bytes < MIN_SEGMENT_BYTES:
            raise ValueError(
                f"data logger: segment_bytes must be at least {MIN_SEGMENT_BYTES} "
                f"(got {segment_bytes})"
            )
        if max_bytes < segment_bytes:
            raise ValueError(
                f"data logger: max_bytes ({max_bytes}) must be at least segment_bytes "
                f"({segment_bytes})"
            )
        if not sync_period_s >= 0:
            raise ValueError(f"data logger: sync_period_s must be >= 0 (got {sync_period_s})")
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.sync_period_s = sync_period_s
        self.written = 0
        self.dropped = 0
        self.last_error = ""  # the latest problem; kept after logging resumes
        self._fd: int | None = None
        self._path: Path | None = None
        self._number = 0  # of the newest segment this logger created
        self._size = 0  # bytes of the open segment
        self._older: list[tuple[Path, int]] = []  # closed segments, oldest first, with sizes
        self._synced_s = -math.inf
        self._closed = False

    @property
    def segment(self) -> Path | None:
        """The segment being written (None between segments)."""
        return self._path

    @property
    def stored_bytes(self) -> int:
        """Bytes of the segments this logger accounts for (within ``max_bytes``)."""
        return sum(size for _, size in self._older) + self._size

    def append(self, kind: str, time_s: float, record: Mapping[str, Any]) -> bool:
        """Log ``record`` of ``kind`` at ``time_s``; False when a disk error dropped it.

        A record that cannot be encoded (or is larger than the log may hold) is the caller's
        error: ValueError.
        """
        if self._closed:
            raise RuntimeError("data logger: append after close()")
        frame = encode_frame(kind, time_s, record)
        if FILE_HEADER.size + len(frame) > self.max_bytes:
            raise ValueError(
                f"data logger: the {kind!r} record at {time_s} s takes {len(frame)} bytes, "
                f"more than max_bytes ({self.max_bytes}) allows"
            )
        try:
            self._make_room(len(frame))
            self._write(frame)
        except _DiskError as error:
            self.dropped += 1
            self.last_error = str(error)
            return False
        self.written += 1
        self._sync_if_due(time_s)
        return True

    def close(self) -> None:
        """Sync and close the current segment; never raises for a disk error."""
        if self._fd is not None:
            try:
                self._close_segment()
            except _DiskError as error:
                self.last_error = str(error)
        self._closed = True

    def __enter__(self) -> DataLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _make_room(self, frame_bytes: int) -> None:
        full = self._size + frame_bytes > self.segment_bytes
        if self._fd is not None and self._size > FILE_HEADER.size and full:
            self._close_segment()
        if self._fd is None:
            self._open_segment()
        self._prune(frame_bytes)

    def _open_segment(self) -> None:
        with _disk("creating", self.directory):
            self.directory.mkdir(parents=True, exist_ok=True)
            existing = list_segments(self.directory)
        self._older = [(path, size) for path in existing if (size := _size_of(path)) is not None]
        numbers = [segment_number(path) for path in existing]
        self._number = max([self._number, *numbers]) + 1  # never reuse a number
        path = self.directory / segment_name(self._number)
        header = FILE_HEADER.pack(FILE_MAGIC, FORMAT_VERSION, 0, self._number % 2**32)
        with _disk("creating", path):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o644)
        try:
            with _disk("writing", path):
                _write_all(fd, header)
        except _DiskError:
            os.close(fd)
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        self._fd, self._path, self._size = fd, path, len(header)
        _sync_directory(self.directory)

    def _prune(self, frame_bytes: int) -> None:
        while self._older and self.stored_bytes + frame_bytes > self.max_bytes:
            path, _ = self._older.pop(0)  # a segment that cannot go is retried at next rotation
            with _disk("deleting", path):
                path.unlink(missing_ok=True)

    def _write(self, frame: bytes) -> None:
        assert self._fd is not None and self._path is not None
        with _disk("writing", self._path):
            try:
                _write_all(self._fd, frame)
            except OSError:
                self._undo_partial_write()
                raise
        self._size += len(frame)

    def _undo_partial_write(self) -> None:
        """Cut a partly written frame off; if even that fails, leave the segment for a new one
        (the reader skips the torn frame)."""
        assert self._fd is not None
        try:
            os.ftruncate(self._fd, self._size)
        except OSError:
            self._abandon_segment()

    def _sync_if_due(self, time_s: float) -> None:
        due = self._synced_s + self.sync_period_s
        if self._fd is None or self._path is None or self._synced_s <= time_s < due:
            return
        try:
            with _disk("syncing", self._path):
                os.fsync(self._fd)
        except _DiskError as error:  # the record is written; its durability is not known
            self.last_error = str(error)
            self._abandon_segment()
            return
        self._synced_s = time_s

    def _close_segment(self) -> None:
        assert self._fd is not None and self._path is not None
        try:
            with _disk("syncing", self._path):
                os.fsync(self._fd)
        finally:
            self._abandon_segment()

    def _abandon_segment(self) -> None:
        """Close the current segment (without syncing); the next record starts a new one."""
        if self._fd is None or self._path is None:
            return
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._older.append((self._path, self._size))
        self._fd, self._path, self._size = None, None, 0


def encode_frame(kind: str, time_s: float, record: Mapping[str, Any]) -> bytes:
    """One record as a frame: magic, payload length, CRC32 and CBOR ``[time_s, kind, record]``."""
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"data logger: the record kind must be a non-empty string (got {kind!r})")
    if not isinstance(time_s, int | float) or not math.isfinite(time_s):
        raise ValueError(f"data logger: time_s must be a finite number (got {time_s!r})")
    if not isinstance(record, Mapping):
        raise ValueError(f"data logger: a record is a mapping (got {type(record).__name__})")
    try:
        payload = cbor2.dumps([float(time_s), kind, dict(record)], default=_encode_extra)
    except (cbor2.CBORError, TypeError, ValueError) as error:
        raise ValueError(
            f"data logger: cannot encode the {kind!r} record at {time_s} s: {error}"
        ) from None
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(
            f"data logger: the {kind!r} record at {time_s} s takes {len(payload)} bytes "
            f"(at most {MAX_PAYLOAD_BYTES})"
        )
    length = LENGTH.pack(len(payload))
    crc = zlib.crc32(payload, zlib.crc32(length))
    return FRAME_MAGIC + length + LENGTH.pack(crc) + payload


def _encode_extra(encoder: Any, value: Any) -> None:
    """NumPy scalars and arrays as their Python values."""
    tolist = getattr(value, "tolist", None)
    if tolist is None:
        raise TypeError(f"cannot encode a value of type {type(value).__name__}")
    encoder.encode(tolist())


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "short write")
        view = view[written:]


def _sync_directory(directory: Path) -> None:
    """Make a new segment's name durable (where the platform allows it)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def _disk(action: str, path: Path) -> Iterator[None]:
    try:
        yield
    except OSError as error:
        problem = _PROBLEMS.get(error.errno or 0, "error")
        cause = error.strerror or str(error) or type(error).__name__
        raise _DiskError(f"data logger: {problem} {action} {path} ({cause})") from error


def _size_of(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except OSError:
        return None


# --- segments --------------------------------------------------------------------------------
def segment_name(number: int) -> str:
    """The file name of segment ``number``: ``seg-000001.cwlog``."""
    return f"seg-{number:06d}{SEGMENT_SUFFIX}"


def segment_number(path: Path) -> int:
    match = _SEGMENT_NAME.fullmatch(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a data logger segment")
    return int(match.group(1))


def list_segments(directory: Path) -> list[Path]:
    """The segment files in ``directory``, oldest first."""
    paths = [path for path in Path(directory).iterdir() if _SEGMENT_NAME.fullmatch(path.name)]
    return sorted(paths, key=segment_number)


# --- reading ---------------------------------------------------------------------------------
class _Probe(NamedTuple):
    payload: bytes | None
    end: int
    problem: str
    incomplete: bool  # the frame runs past the end of the data


def read_records(directory: Path, report: ReadReport | None = None) -> Iterator[LogRecord]:
    """The records in ``directory`` in the order they were written, across segments.

    Torn and corrupt frames are skipped (and listed in ``report`` when one is given); reading
    resumes at the next valid frame. A missing directory is a FileNotFoundError.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"data logger directory {directory} does not exist")
    return _read(list_segments(directory), report if report is not None else ReadReport())


def _read(segments: list[Path], report: ReadReport) -> Iterator[LogRecord]:
    for path in segments:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            continue  # deleted by a running logger since it was listed
        except OSError as error:
            report.skipped.append(
                SkippedFrame(path.name, 0, 0, "corrupt", f"unreadable ({error.strerror})")
            )
            continue
        report.segments += 1
        for item in _parse_segment(path.name, data):
            if isinstance(item, SkippedFrame):
                report.skipped.append(item)
            else:
                report.records += 1
                yield item


def _parse_segment(name: str, data: bytes) -> Iterator[LogRecord | SkippedFrame]:
    if not data:
        return
    if len(data) < FILE_HEADER.size:
        yield SkippedFrame(name, 0, len(data), "torn", "file header cut short")
        return
    magic, version, _, _ = FILE_HEADER.unpack_from(data)
    if magic != FILE_MAGIC:
        yield SkippedFrame(name, 0, FILE_HEADER.size, "corrupt", "bad file header magic")
    elif version != FORMAT_VERSION:
        yield SkippedFrame(name, 0, len(data), "corrupt", f"unknown format version {version}")
        return
    pos = FILE_HEADER.size
    while pos < len(data):
        probe = _probe(data, pos)
        if probe.payload is not None:
            decoded = _decode(probe.payload)
            if decoded is None:
                yield SkippedFrame(name, pos, probe.end - pos, "corrupt", "undecodable payload")
            else:
                yield LogRecord(*decoded, segment=name, offset=pos)
            pos = probe.end
            continue
        end = _resync(data, pos + 1)
        torn = probe.incomplete and end == len(data)
        yield SkippedFrame(name, pos, end - pos, "torn" if torn else "corrupt", probe.problem)
        pos = end


def _probe(data: bytes, pos: int) -> _Probe:
    """The frame starting at ``pos``, or why there is none."""
    if len(data) - pos < FRAME_HEADER.size:
        incomplete = FRAME_MAGIC.startswith(data[pos : pos + len(FRAME_MAGIC)])
        return _Probe(None, 0, "frame header cut short" if incomplete else "no frame magic",
                      incomplete)  # fmt: skip
    magic, length, crc = FRAME_HEADER.unpack_from(data, pos)
    if magic != FRAME_MAGIC:
        return _Probe(None, 0, "no frame magic", False)
    if length > MAX_PAYLOAD_BYTES:
        return _Probe(None, 0, f"implausible length {length}", False)
    start = pos + FRAME_HEADER.size
    end = start + length
    if end > len(data):
        return _Probe(None, 0, "frame cut short", True)
    payload = data[start:end]
    if zlib.crc32(payload, zlib.crc32(data[pos + 4 : pos + 8])) != crc:
        return _Probe(None, 0, "CRC mismatch", False)
    return _Probe(payload, end, "", False)


def _resync(data: bytes, start: int) -> int:
    """The offset of the next valid frame at or after ``start`` (the end if there is none)."""
    pos = data.find(FRAME_MAGIC, start)
    while pos != -1:
        if _probe(data, pos).payload is not None:
            return pos
        pos = data.find(FRAME_MAGIC, pos + 1)
    return len(data)


def _decode(payload: bytes) -> tuple[float, str, dict[str, Any]] | None:
    try:
        value = cbor2.loads(payload)
    except Exception:  # any decoder failure: the frame is skipped, never fatal
        return None
    if not (isinstance(value, list) and len(value) == 3):
        return None
    time_s, kind, record = value
    ok = isinstance(time_s, int | float) and isinstance(kind, str) and isinstance(record, dict)
    return (float(time_s), kind, record) if ok else None


# --- export ----------------------------------------------------------------------------------
def export_log(directory: Path, out: Path) -> ReadReport:
    """Write every record of the log in ``directory`` to ``out``, Parquet or CSV by its suffix.

    One row per record: ``time_s``, ``kind``, then the record's fields, nested dicts flattened
    as ``freeze_frame.current_a``. Lists are list columns in Parquet and JSON text in CSV (in a
    column ``name[]`` when other records have single values under the same name).
    """
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".csv"):
        raise ValueError(
            f"cannot export the data log to {out}: unknown format {out.suffix or '(no suffix)'} "
            "(use .parquet or .csv)"
        )
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"data logger directory {directory} does not exist")
    if not list_segments(directory):
        raise ValueError(f"no data logger segments (seg-*{SEGMENT_SUFFIX}) in {directory}")
    report = ReadReport()
    rows = _split_list_columns([_row(item) for item in read_records(directory, report)])
    columns = list(dict.fromkeys([*_RESERVED_COLUMNS, *(name for row in rows for name in row)]))
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        (_write_parquet if suffix == ".parquet" else _write_csv)(rows, columns, partial)
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return report


def _row(item: LogRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"time_s": item.time_s, "kind": item.kind}
    for name, value in _flatten(item.record):
        if name == "time_s" and value == item.time_s:
            continue  # the record's own timestamp, already in the row
        row[f"record.{name}" if name in _RESERVED_COLUMNS else name] = value
    return row


def _split_list_columns(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lists under a name that other records use for single values (the cells' ``voltage_v``
    beside the pack's) move to a column ``name[]``, so both columns keep one type."""
    lists = {name for row in rows for name, value in row.items() if isinstance(value, list)}
    singles = {name for row in rows for name, value in row.items() if _single(value)}
    clashing = lists & singles
    if not clashing:
        return rows
    return [{_list_name(k, v, clashing): v for k, v in row.items()} for row in rows]


def _single(value: Any) -> bool:
    return value is not None and not isinstance(value, list)


def _list_name(name: str, value: Any, clashing: set[str]) -> str:
    return f"{name}[]" if name in clashing and isinstance(value, list) else name


def _flatten(record: Mapping[Any, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def _write_parquet(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {name: _arrow_column([row.get(name) for row in rows]) for name in columns}
    arrays["time_s"] = arrays["time_s"].cast(pa.float64())
    arrays["kind"] = arrays["kind"].cast(pa.string())
    pq.write_table(pa.table(arrays), path)


def _arrow_column(values: list[Any]) -> Any:
    """An Arrow array of ``values``; JSON text when they do not share one Arrow type."""
    import pyarrow as pa

    try:
        return pa.array(values)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([None if v is None else _text(v) for v in values], pa.string())


def _write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    import pandas as pd

    cells = {name: [_csv_cell(row.get(name)) for row in rows] for name in columns}
    pd.DataFrame(cells, columns=columns).to_csv(path, index=False)


def _csv_cell(value: Any) -> Any:
    return _text(value) if isinstance(value, list | tuple | dict | bytes) else value


def _text(value: Any) -> str:
    """A value as text: strings as they are, everything else as JSON (NaN as ``NaN``)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.hex()
    return json.dumps(value, default=str)
