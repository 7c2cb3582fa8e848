"""The BCU data logger: round trip, rotation and bound, torn and corrupt frames, disk errors,
kill -9 of a writing process, export to CSV/Parquet and ``cellwarden logger export``."""

from __future__ import annotations

import errno
import itertools
import json
import math
import os
import random
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.edge import datalogger
from cellwarden.edge.datalogger import (
    FILE_HEADER,
    DataLogger,
    LogRecord,
    ReadReport,
    export_log,
    list_segments,
    read_records,
)

NAN = float("nan")


def pack(i: int) -> dict[str, Any]:
    return {"time_s": float(i), "seq": i, "voltage_v": 48.0 + i / 100, "current_a": -12.5,
            "soc_pct": NAN if i % 3 == 0 else 80.0, "state": "discharging"}  # fmt: skip


CELLS = {
    "voltage_v": [3.301, 3.299, NAN, 3.305],  # the pack's voltage_v is a number
    "temp_c": [25.5, 26.0, 24.75, 25.0],
    "balancing": [False, True, False, False],
}
EVENT = {
    "time_s": 12.0,
    "source": "string-1",
    "code": "OV_CELL",
    "kind": "alarm",
    "value": 3.71,
    "freeze_frame": {"current_a": 41.5, "soc_pct": NAN, "cells": {"max_v": 3.71, "idx": 7}},
}


def same(a: Any, b: Any) -> bool:
    """Equality with NaN equal to NaN, through nested dicts and lists."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return type(a) is type(b) and a == b


def write(directory: Path, records: list[tuple[str, float, dict]], **options: Any) -> DataLogger:
    logger = DataLogger(directory, **options)
    for kind, time_s, record in records:
        assert logger.append(kind, time_s, record)
    logger.close()
    return logger


def read(directory: Path) -> tuple[list[LogRecord], ReadReport]:
    report = ReadReport()
    return list(read_records(directory, report)), report


def only_segment(directory: Path) -> Path:
    (path,) = list_segments(directory)
    return path


def test_round_trip_of_every_kind_keeps_nan_nested_dicts_and_lists(tmp_path: Path):
    written = [("pack", 10.0, pack(0)), ("cells", 10.0, CELLS), ("event", 12.0, EVENT),
               ("pack", 11.0, pack(1))]  # fmt: skip
    numpy_record = {"voltages_v": np.array([3.3, 3.4]), "count": np.int64(4), "on": np.bool_(1)}
    write(tmp_path, [*written, ("cells", 13.0, numpy_record)])
    records, report = read(tmp_path)
    assert report.records == 5 and report.segments == 1 and report.skipped == []
    for got, (kind, time_s, record) in zip(records, written, strict=False):
        assert (got.kind, got.time_s) == (kind, time_s)
        assert same(got.record, record), (got.record, record)
    assert same(records[-1].record, {"voltages_v": [3.3, 3.4], "count": 4, "on": True})
    assert records[0].segment == "seg-000001.cwlog" and records[0].offset == FILE_HEADER.size
    assert all(a.offset < b.offset for a, b in itertools.pairwise(records))


def test_start_up_continues_in_a_new_segment_and_never_overwrites(tmp_path: Path):
    write(tmp_path, [("pack", float(i), pack(i)) for i in range(3)])
    first = only_segment(tmp_path).read_bytes()
    write(tmp_path, [("pack", float(i), pack(i)) for i in range(3, 5)])
    segments = list_segments(tmp_path)
    assert [p.name for p in segments] == ["seg-000001.cwlog", "seg-000002.cwlog"]
    assert segments[0].read_bytes() == first
    assert [r.record["seq"] for r in read(tmp_path)[0]] == [0, 1, 2, 3, 4]


def test_bad_records_and_settings_are_clear_errors(tmp_path: Path):
    logger = DataLogger(tmp_path)
    with pytest.raises(ValueError, match="cannot encode the 'pack' record"):
        logger.append("pack", 1.0, {"what": object()})
    with pytest.raises(ValueError, match="time_s must be a finite number"):
        logger.append("pack", NAN, {})
    with pytest.raises(ValueError, match="max_bytes"):
        DataLogger(tmp_path, segment_bytes=8192, max_bytes=4096)
    logger.close()
    with pytest.raises(RuntimeError, match="after close"):
        logger.append("pack", 1.0, {})


def test_rotation_keeps_the_directory_within_max_bytes(tmp_path: Path):
    segment_bytes, max_bytes = 4096, 20_000
    logger = DataLogger(tmp_path, segment_bytes=segment_bytes, max_bytes=max_bytes)
    for i in range(3000):
        assert logger.append("pack", i / 100, pack(i))  # 100 Hz: an fsync every 100
        if i % 50 == 0:
            sizes = [p.stat().st_size for p in list_segments(tmp_path)]
            assert sum(sizes) <= max_bytes + segment_bytes
            assert max(sizes) <= segment_bytes
    logger.close()
    segments = list_segments(tmp_path)
    sizes = [p.stat().st_size for p in segments]
    assert sum(sizes) <= max_bytes + segment_bytes and max(sizes) <= segment_bytes
    assert len(segments) >= 4 and datalogger.segment_number(segments[0]) > 10  # oldest deleted
    seqs = [r.record["seq"] for r in read(tmp_path)[0]]
    assert seqs == list(range(seqs[0], 3000))  # the newest records, none missing in between


def _three_to_five(tmp_path: Path, count: int = 5) -> tuple[bytes, list[LogRecord]]:
    source = tmp_path / "source"
    write(source, [("pack", float(i), pack(i)) for i in range(count)])
    return only_segment(source).read_bytes(), read(source)[0]


def test_a_torn_last_record_is_skipped_at_every_cut(tmp_path: Path):
    data, records = _three_to_five(tmp_path)
    last = records[-1].offset
    assert len(data) - last > 50
    for cut in range(last, len(data)):  # every byte offset inside the last frame
        directory = tmp_path / f"cut-{cut}"
        directory.mkdir()
        (directory / "seg-000001.cwlog").write_bytes(data[:cut])
        got, report = read(directory)
        assert [r.record["seq"] for r in got] == [0, 1, 2, 3], cut
        if cut == last:
            assert report.skipped == []
        else:
            (torn,) = report.skipped
            assert (torn.reason, torn.segment, torn.offset) == ("torn", "seg-000001.cwlog", last)
            assert torn.size_bytes == cut - last
        # a logger restarted after the power cut goes on in a new segment
        write(directory, [("pack", 99.0, pack(99))])
        assert [r.record["seq"] for r in read(directory)[0]] == [0, 1, 2, 3, 99]


def test_a_file_header_cut_short_is_skipped(tmp_path: Path):
    data, _ = _three_to_five(tmp_path)
    (tmp_path / "seg-000001.cwlog").write_bytes(data[:7])
    (tmp_path / "seg-000002.cwlog").write_bytes(data)
    got, report = read(tmp_path)
    assert [r.record["seq"] for r in got] == [0, 1, 2, 3, 4]
    assert [(s.segment, s.reason) for s in report.skipped] == [("seg-000001.cwlog", "torn")]


def test_a_flipped_byte_in_the_middle_record_skips_only_that_record(tmp_path: Path):
    data, records = _three_to_five(tmp_path)
    start, end = records[2].offset, records[3].offset
    for position in range(start, end):  # every byte of the middle frame: magic, length, CRC, data
        damaged = bytearray(data)
        damaged[position] ^= 0xFF
        directory = tmp_path / f"flip-{position}"
        directory.mkdir()
        (directory / "seg-000001.cwlog").write_bytes(bytes(damaged))
        got, report = read(directory)
        assert [r.record["seq"] for r in got] == [0, 1, 3, 4], position
        (corrupt,) = report.skipped
        assert (corrupt.reason, corrupt.offset) == ("corrupt", start)
        assert corrupt.size_bytes == end - start


class FullDisk:
    """Stands in for the card's writes: while ``full``, half a frame reaches the file, then
    ENOSPC (as a real full card does)."""

    def __init__(self, real) -> None:
        self.real = real
        self.full = False

    def __call__(self, fd: int, data: bytes) -> None:
        if not self.full:
            return self.real(fd, data)
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_disk_drops_records_names_the_problem_and_logging_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    disk = FullDisk(datalogger._write_all)
    monkeypatch.setattr(datalogger, "_write_all", disk)
    logger = DataLogger(tmp_path)
    assert all(logger.append("pack", float(i), pack(i)) for i in range(3))
    disk.full = True
    assert not any(logger.append("pack", float(i), pack(i)) for i in range(3, 8))
    segment = only_segment(tmp_path)
    assert logger.dropped == 5 and logger.written == 3
    assert logger.last_error == (
        f"data logger: disk full writing {segment} ({os.strerror(errno.ENOSPC)})"
    )
    disk.full = False
    assert all(logger.append("pack", float(i), pack(i)) for i in range(8, 11))
    logger.close()
    got, report = read(tmp_path)
    assert [r.record["seq"] for r in got] == [0, 1, 2, 8, 9, 10]
    assert report.skipped == []  # the half-written frames were cut off again
    assert logger.dropped == 5 and "disk full" in logger.last_error  # kept for the summary


def test_a_full_disk_when_a_segment_starts_leaves_no_file_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    disk = FullDisk(datalogger._write_all)
    monkeypatch.setattr(datalogger, "_write_all", disk)
    disk.full = True
    logger = DataLogger(tmp_path / "card")
    assert not logger.append("pack", 0.0, pack(0))
    assert "disk full writing" in logger.last_error and "seg-000001.cwlog" in logger.last_error
    assert list_segments(tmp_path / "card") == []
    disk.full = False
    assert logger.append("pack", 1.0, pack(1))
    logger.close()
    assert [r.record["seq"] for r in read(tmp_path / "card")[0]] == [1]


def test_a_missing_card_is_reported_and_logging_starts_when_it_is_back(tmp_path: Path):
    card = tmp_path / "card"
    card.write_text("not a directory")  # the mount point is not usable
    logger = DataLogger(card)
    assert not logger.append("pack", 0.0, pack(0))
    assert logger.dropped == 1 and f"creating {card}" in logger.last_error
    card.unlink()
    assert logger.append("pack", 1.0, pack(1))
    logger.close()
    assert [r.record["seq"] for r in read(card)[0]] == [1]


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_directory_is_reported(tmp_path: Path):
    tmp_path.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        logger = DataLogger(tmp_path)
        assert not logger.append("pack", 0.0, pack(0))
        assert "permission denied creating" in logger.last_error
    finally:
        tmp_path.chmod(stat.S_IRWXU)


def test_fsync_runs_at_most_once_per_sync_period_of_the_injected_clock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    synced: list[int] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            synced.append(fd)
        real_fsync(fd)

    monkeypatch.setattr(datalogger.os, "fsync", fsync)
    logger = DataLogger(tmp_path, sync_period_s=1.0)
    for i in range(100):  # 10 s of records every 0.1 s
        logger.append("pack", i / 10, pack(i))
    assert 10 <= len(synced) <= 11
    logger.close()
    assert len(synced) in (11, 12)  # and once more on close
    synced.clear()
    every = DataLogger(tmp_path, sync_period_s=0.0)
    for i in range(5):
        every.append("pack", 0.0, pack(i))
    assert len(synced) == 5
    every.close()


CHILD = """
import sys
from pathlib import Path
from cellwarden.edge.datalogger import DataLogger

logger = DataLogger(Path(sys.argv[1]), segment_bytes=16384, sync_period_s=0.5)
run = int(sys.argv[2])
i = 0
while True:
    logger.append("pack", i * 0.01, {"run": run, "seq": i, "voltage_v": 3.3 + i * 1e-6,
                                     "note": "x" * (i % 97)})
    if i == 0:
        print("ready", flush=True)
    i += 1
"""


def test_kill_9_while_writing_leaves_a_readable_prefix(tmp_path: Path):
    rng = random.Random(11)
    for run in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(tmp_path), str(run)], stdout=subprocess.PIPE
        )
        try:
            assert child.stdout is not None and child.stdout.readline() == b"ready\n"
            time.sleep(rng.uniform(0.05, 0.4))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        assert child.returncode == -signal.SIGKILL
    got, report = read(tmp_path)
    assert all(s.reason == "torn" for s in report.skipped) and len(report.skipped) <= 3
    for run in range(3):
        seqs = [r.record["seq"] for r in got if r.record["run"] == run]
        assert len(seqs) >= 1 and seqs == list(range(len(seqs))), run
    assert [r.record["run"] for r in got] == sorted(r.record["run"] for r in got)
    assert len(list_segments(tmp_path)) > 3  # the runs rotated through segments


def _mixed_log(directory: Path) -> list[tuple[str, float, dict]]:
    written = [("pack", 9.0, pack(9)), ("cells", 10.0, CELLS), ("event", 12.0, EVENT),
               ("pack", 11.0, pack(11))]  # fmt: skip
    write(directory, written)
    return written


def test_export_to_parquet_reads_back_with_pandas(tmp_path: Path):
    _mixed_log(tmp_path / "log")
    report = export_log(tmp_path / "log", tmp_path / "out.parquet")
    assert report.records == 4 and report.skipped == []
    frame = pd.read_parquet(tmp_path / "out.parquet")
    assert list(frame.columns[:2]) == ["time_s", "kind"] and len(frame) == 4
    assert list(frame["kind"]) == ["pack", "cells", "event", "pack"]
    assert list(frame["time_s"]) == [9.0, 10.0, 12.0, 11.0]
    event = frame.iloc[2]
    assert event["freeze_frame.current_a"] == 41.5 and math.isnan(event["freeze_frame.soc_pct"])
    assert event["freeze_frame.cells.idx"] == 7 and event["record.kind"] == "alarm"
    assert "record.time_s" not in frame.columns  # the record's own time_s is the row's
    cells = frame.iloc[1]
    assert same(cells["voltage_v[]"].tolist(), CELLS["voltage_v"])  # a list column
    assert same(cells["temp_c"].tolist(), CELLS["temp_c"])
    assert frame["voltage_v"].dtype == float and frame.iloc[3]["voltage_v"] == pack(11)["voltage_v"]
    assert cells["balancing"].tolist() == CELLS["balancing"]
    assert frame.iloc[0]["state"] == "discharging" and frame.iloc[3]["seq"] == 11
    assert math.isnan(frame.iloc[0]["soc_pct"]) and frame.iloc[3]["soc_pct"] == 80.0


def test_export_to_csv_reads_back_with_pandas(tmp_path: Path):
    _mixed_log(tmp_path / "log")
    report = export_log(tmp_path / "log", tmp_path / "sub" / "out.CSV")
    assert report.records == 4
    frame = pd.read_csv(tmp_path / "sub" / "out.CSV")
    assert list(frame.columns[:2]) == ["time_s", "kind"] and len(frame) == 4
    event, cells = frame.iloc[2], frame.iloc[1]
    assert event["freeze_frame.cells.max_v"] == 3.71 and event["code"] == "OV_CELL"
    assert same(json.loads(cells["voltage_v[]"]), CELLS["voltage_v"])  # lists as JSON text
    assert frame["voltage_v"].dtype == float and frame.iloc[3]["voltage_v"] == pack(11)["voltage_v"]
    assert json.loads(cells["balancing"]) == CELLS["balancing"]
    assert math.isnan(frame.iloc[0]["soc_pct"]) and frame.iloc[3]["soc_pct"] == 80.0


def test_export_errors_are_clear(tmp_path: Path):
    _mixed_log(tmp_path / "log")
    with pytest.raises(ValueError, match=r"unknown format \.xlsx .*use \.parquet or \.csv"):
        export_log(tmp_path / "log", tmp_path / "out.xlsx")
    with pytest.raises(ValueError, match="does not exist"):
        export_log(tmp_path / "nowhere", tmp_path / "out.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no data logger segments \(seg-\*\.cwlog\)"):
        export_log(tmp_path / "empty", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


runner = CliRunner()


def test_cli_logger_export_reports_records_and_skipped_frames(tmp_path: Path):
    log = tmp_path / "log"
    _mixed_log(log)
    segment = only_segment(log)
    segment.write_bytes(segment.read_bytes()[:-5])  # the last record torn
    out = tmp_path / "log.parquet"
    result = runner.invoke(app, ["logger", "export", str(log), "--out", str(out)])
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "exported 3 records from 1 segment to" in text
    assert "skipped 1 torn/corrupt frames (1 torn, 0 corrupt)" in text
    assert "seg-000001.cwlog" in result.stderr
    assert len(pd.read_parquet(out)) == 3


@pytest.mark.parametrize(
    ("target", "out", "message"),
    [("empty", "x.csv", "no data logger segments"), ("log", "x.txt", "unknown format .txt"),
     ("nowhere", "x.csv", "does not exist")],
)  # fmt: skip
def test_cli_logger_export_errors_exit_2(tmp_path: Path, target: str, out: str, message: str):
    (tmp_path / "empty").mkdir()
    _mixed_log(tmp_path / "log")
    result = runner.invoke(
        app, ["logger", "export", str(tmp_path / target), "--out", str(tmp_path / out)]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()) and "Traceback" not in result.output
