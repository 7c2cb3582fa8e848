"""History as files: CSV streamed chunk by chunk, Parquet written in row groups."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from fastapi.responses import StreamingResponse


def export_response(
    stem: str, columns: Sequence[str], chunks: Iterable[list[tuple]], file_format: str
) -> StreamingResponse:
    if file_format == "csv":
        return StreamingResponse(
            _csv(columns, chunks), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{stem}.csv"'},
        )  # fmt: skip
    return StreamingResponse(
        _parquet(columns, chunks), media_type="application/vnd.apache.parquet",
        headers={"Content-Disposition": f'attachment; filename="{stem}.parquet"'},
    )  # fmt: skip


def _csv(columns: Sequence[str], chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for rows in chunks:
        writer.writerows(rows)
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


TEXT_COLUMNS = {"source", "code", "name", "kind", "action", "freeze_frame"}
INTEGER_COLUMNS = {"seq", "samples"}


def _arrow_type(name: str) -> pa.DataType:
    if name in TEXT_COLUMNS:
        return pa.string()
    if name in INTEGER_COLUMNS:
        return pa.int64()
    if name.endswith("_balancing"):
        return pa.bool_()
    return pa.float64()


def _parquet(columns: Sequence[str], chunks: Iterable[list[tuple]]) -> Iterator[bytes]:
    """Row groups into a spooled file (Parquet's footer comes last), then streamed out."""
    schema = pa.schema([(name, _arrow_type(name)) for name in columns])
    with tempfile.SpooledTemporaryFile(max_size=16 * 1024 * 1024) as spool:
        with pq.ParquetWriter(spool, schema) as writer:
            for rows in chunks:
                arrays = [
                    pa.array(column, type=field.type)
                    for column, field in zip(zip(*rows, strict=True), schema, strict=True)
                ]
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        spool.seek(0)
        while block := spool.read(1 << 20):
            yield block
