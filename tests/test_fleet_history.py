"""The fleet history format: round trips, tolerance, and bad rows reported, not fatal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellwarden.telemetry.fleet_history import (
    REQUIRED_COLUMNS,
    HistoryError,
    parse_history,
    read_history,
    write_history,
)


def _rows(packs: int = 3, days: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({
        "pack_id": np.repeat([f"p{i}" for i in range(packs)], days),
        "date": np.tile(pd.date_range("2024-02-27", periods=days), packs),
        "pack_type": "e-scooter", "site": "lyon",
    })  # fmt: skip
    for name in REQUIRED_COLUMNS[2:]:
        frame[name] = rng.uniform(10, 90, len(frame))
    frame["balancing_ah"] = rng.uniform(0, 1, len(frame))
    return frame


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_round_trip_keeps_every_value(tmp_path, suffix):
    rows = _rows()
    path = tmp_path / f"history.{suffix}"
    write_history(rows, path)
    history = read_history(path)
    assert history.problems == []
    assert list(history.rows["pack_id"]) == list(rows["pack_id"])
    assert (history.rows["date"] == rows["date"]).all()
    for name in (*REQUIRED_COLUMNS[2:], "balancing_ah"):
        np.testing.assert_allclose(history.rows[name], rows[name], rtol=1e-5)
    assert history.rows["ambient_temp_c"].isna().all()  # optional and absent: missing


def test_unknown_columns_ignored_and_optional_ones_missing(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "pack_id,date,soh_capacity_pct,firmware,dod_mean_pct\n"
        "a,2024-01-01,97.5,v1.2,40\n"
        "a,2024-01-02,,v1.2,41\n"
    )
    history = read_history(path)
    assert history.problems == []
    assert "firmware" not in history.rows.columns
    assert history.rows["soh_capacity_pct"].tolist()[0] == 97.5
    assert np.isnan(history.rows["soh_capacity_pct"].tolist()[1])  # empty cell: missing value
    assert history.rows["efc_total"].isna().all()


def test_bad_rows_reported_by_line_and_the_rest_kept(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text(
        "pack_id,date,soh_capacity_pct,temp_max_c\n"
        "a,2024-01-01,97.5,30\n"  # line 1 good
        "a,2024-13-01,97.4,30\n"  # bad date
        "a,2024-01-03,ninety,30\n"  # not a number
        ",2024-01-04,97.0,30\n"  # no pack
        "a,2024-01-05,97.0,900\n"  # implausible temperature
        "a,2024-01-01,96.0,31\n"  # the same day again
        "a,2024-01-06,inf,30\n"  # not finite
        "b,2024-01-01,99.0,25\n"  # line 8 good
        "b,2024-01-02garbage,99.0,25\n"  # trailing garbage
        "b,2999-12-31,99.0,25\n"  # a wrong year
        "b,2024-01-03T00:00:00,98.9,25\n"  # line 11 good: a timestamp's day
    )
    history = read_history(path)
    reasons = {problem.line: problem.reason for problem in history.problems}
    assert reasons == {
        2: "date is not YYYY-MM-DD", 3: "soh_capacity_pct is not a number",
        4: "empty pack_id", 5: "temp_max_c outside -60..150",
        6: "a second row for the same pack and date", 7: "soh_capacity_pct is not finite",
        9: "date is not YYYY-MM-DD", 10: "date outside 1990-01-01..2099-12-31",
    }  # fmt: skip
    assert history.rows[["pack_id", "soh_capacity_pct"]].values.tolist() == [
        ["a", 97.5], ["b", 99.0], ["b", 98.9],
    ]  # fmt: skip


def test_unreadable_files_name_the_problem(tmp_path):
    with pytest.raises(HistoryError, match="no such history file"):
        read_history(tmp_path / "missing.csv")
    garbage = tmp_path / "h.parquet"
    garbage.write_bytes(b"\x00not parquet at all")
    with pytest.raises(HistoryError, match="cannot be read as history"):
        read_history(garbage)
    other = tmp_path / "h.xlsx"
    other.write_text("x")
    with pytest.raises(HistoryError, match=r"\.csv or \.parquet"):
        read_history(other)
    with pytest.raises(HistoryError, match=r"required column.*date"):
        parse_history(pd.DataFrame({"pack_id": ["a"]}))


def test_up_to_keeps_only_rows_on_or_before_the_day():
    history = parse_history(_rows(packs=1, days=5))
    kept = history.up_to(pd.Timestamp("2024-02-29"))
    assert kept.rows["date"].max() == pd.Timestamp("2024-02-29")
    assert len(kept.rows) == 3
