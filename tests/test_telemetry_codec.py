"""The telemetry payloads: round trips within each field's resolution, compactness, and
hostile payloads that must fail with a named reason."""

import math

import cbor2
import numpy as np
import pytest
import zstandard

from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import COLUMNS, SUMMARY_FIELDS, Kind, parse_topic, topic


def summaries(count: int, rng: np.random.Generator) -> list[tuple[int, dict]]:
    batch = []
    for index in range(count):
        batch.append((100 + index, {
            "time_s": 10.0 * index, "soc_pct": 80 - 0.01 * index, "soh_pct": 97.3,
            "voltage_v": 52.1 + rng.normal(0, 0.01), "current_a": rng.normal(-20, 3),
            "cell_voltage_min_v": 3.251, "cell_voltage_max_v": 3.268, "temp_min_c": 24.9,
            "temp_max_c": 27.1, "charge_current_limit_a": 30.0, "discharge_current_limit_a": 150,
            "charge_voltage_limit_v": 56.8, "path_state": 2, "alarms": 0, "warnings": 16,
            "worst_code": 0, "balancing_cells": 3, "strings_connected": 1,
        }))  # fmt: skip
    return batch


def test_summary_round_trip_within_resolution():
    batch = summaries(30, np.random.default_rng(1))
    kind, decoded = codec.decode(codec.encode(Kind.SUMMARY, batch))
    assert kind is Kind.SUMMARY
    assert [seq for seq, _ in decoded] == [seq for seq, _ in batch]
    for (_, sent), (_, got) in zip(batch, decoded, strict=True):
        for field in SUMMARY_FIELDS:
            assert abs(got[field.name] - sent[field.name]) <= field.resolution / 2 + 1e-9


def test_summaries_are_compact_and_json_debug_is_the_same_batch():
    batch = summaries(30, np.random.default_rng(2))
    binary = codec.encode(Kind.SUMMARY, batch)
    as_json = codec.encode(Kind.SUMMARY, batch, debug_json=True)
    assert len(binary) / len(batch) < 20  # bytes per 18-field summary, everything included
    assert len(as_json) > 10 * len(binary)
    _, from_json = codec.decode(as_json)
    assert from_json == batch


def test_missing_values_and_gaps_in_sequence_survive():
    batch = summaries(5, np.random.default_rng(3))
    batch[2][1]["soc_pct"] = float("nan")
    del batch[3][1]["temp_max_c"]
    batch = [(seq * 7, record) for seq, record in batch]  # thinned: numbers not contiguous
    _, decoded = codec.decode(codec.encode(Kind.SUMMARY, batch))
    assert [seq for seq, _ in decoded] == [seq for seq, _ in batch]
    assert decoded[2][1]["soc_pct"] is None
    assert decoded[3][1]["temp_max_c"] is None
    assert decoded[4][1]["soc_pct"] == pytest.approx(batch[4][1]["soc_pct"], abs=0.05)


def test_cells_round_trip_with_open_wire_and_balancing():
    rng = np.random.default_rng(4)
    batch = []
    for index in range(10):
        voltage = 3.3 + rng.normal(0, 0.005, 16)
        if index == 6:
            voltage[4] = np.nan  # an open sense wire: no reading
        batch.append((index + 1, {
            "time_s": 60.0 * index, "voltage_v": voltage.tolist(),
            "temp_c": (25 + rng.normal(0, 0.5, 16)).tolist(),
            "balancing": (rng.random(16) < 0.2).tolist(),
        }))  # fmt: skip
    payload = codec.encode(Kind.CELLS, batch)
    assert len(payload) < 10 * 16 * 4  # under 4 bytes per cell sample before framing
    _, decoded = codec.decode(payload)
    for (_, sent), (_, got) in zip(batch, decoded, strict=True):
        assert got["time_s"] == pytest.approx(sent["time_s"])
        np.testing.assert_allclose(got["voltage_v"], sent["voltage_v"], atol=0.0005)
        np.testing.assert_allclose(got["temp_c"], sent["temp_c"], atol=0.05)
        assert got["balancing"] == sent["balancing"]
    assert math.isnan(decoded[6][1]["voltage_v"][4])


def test_events_keep_nested_freeze_frames():
    event = {"time_s": 12.5, "source": "module", "code": "B1101", "name": "cell over-voltage",
             "kind": "trip", "value": 3.71, "action": "open",
             "freeze_frame": {"current_a": 12.0, "cell_voltage_max_cell": 5}}  # fmt: skip
    assert codec.decode(codec.encode(Kind.EVENT, [(9, event)])) == (Kind.EVENT, [(9, event)])


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\x07abc", "marker"),
        (b"\x00" + b"\xff\xfe", "does not decode"),
        (b"\x01" + b"not zstd at all", "does not decode"),
        (b"\x00" + cbor2.dumps([1, 2]), "not a map"),
        (b"\x00" + cbor2.dumps({"v": 99, "k": "summary", "s": [1]}), "schema version"),
        (b"\x00" + cbor2.dumps({"v": 1, "k": "gossip", "s": [1]}), "unknown record kind"),
        (b"\x00" + cbor2.dumps({"v": 1, "k": "summary", "s": [1], "c": [[1]]}), "columns"),
        (b"\x00" + cbor2.dumps({"v": 1, "k": "event", "s": [1, 1], "r": [{}]}), "2 sequence"),
        (b"\x00" + cbor2.dumps({"v": 1, "k": "event", "s": ["x"], "r": [{}]}), "integers"),
        (b"{not json", "does not parse"),
        (b'{"v":1,"kind":"event","records":[{"code":"x"}]}', "seq"),
    ],
)
def test_hostile_payloads_are_named(payload, reason):
    with pytest.raises(codec.PayloadError, match=reason):
        codec.decode(payload)


def test_a_compression_bomb_is_refused():
    bomb = b"\x01" + zstandard.ZstdCompressor().compress(b"\x00" * (64 * 1024 * 1024))
    assert len(bomb) < 10_000
    with pytest.raises(codec.PayloadError):
        codec.decode(bomb)


def test_topics_refuse_wildcards_and_parse_back():
    assert parse_topic(topic("fleet-a", "dev.1", "summary")) == ("fleet-a", "dev.1", "summary")
    for bad in ("+", "#", "a/b", ""):
        with pytest.raises(ValueError, match="not allowed"):
            topic("fleet", bad, "summary")
    with pytest.raises(ValueError):
        parse_topic("cw/fleet/summary")


def test_every_columnar_kind_has_time_first():
    assert all(fields[0].name == "time_s" for fields in COLUMNS.values())


def test_a_bomb_that_declares_its_size_is_refused_too():
    body = b"\x00" * (64 * 1024 * 1024)
    bomb = b"\x01" + zstandard.ZstdCompressor(write_content_size=True).compress(body)
    with pytest.raises(codec.PayloadError, match="inflates beyond"):
        codec.decode(bomb)


def test_deeply_nested_json_and_boolean_sequence_numbers_are_refused():
    with pytest.raises(codec.PayloadError, match="nested"):
        codec.decode(b'{"a":' + b"[" * 5000 + b"]" * 5000 + b"}")
    with pytest.raises(codec.PayloadError, match="seq"):
        codec.decode(b'{"v":1,"kind":"event","records":[{"seq":true}]}')


def test_schema_1_cells_with_integer_arrays_still_decode():
    import cbor2

    # two records of three cells as a schema 1 device sent them: CBOR integer arrays
    document = {"v": 1, "k": "cells", "s": [7, 1], "t": [100, 600], "n": 3,
                "voltage_v": [3300, 10, -20, 1, 0, 5], "temp_c": [250, 0, 0, 0, 0, 0]}  # fmt: skip
    kind, batch = codec.decode(b"\x00" + cbor2.dumps(document))
    assert kind is Kind.CELLS
    assert [seq for seq, _ in batch] == [7, 8]
    assert batch[0][1]["voltage_v"] == pytest.approx([3.300, 3.310, 3.290])
    assert batch[1][1]["voltage_v"] == pytest.approx([3.301, 3.310, 3.295])
    assert batch[1][1]["time_s"] == pytest.approx(70.0)


def test_packed_cells_fall_back_to_int32_when_a_difference_is_large():
    batch = [(0, {"time_s": 0.0, "voltage_v": [-30.0, 30.0], "temp_c": [-40.0, 150.0]})]
    _, decoded = codec.decode(codec.encode(Kind.CELLS, batch))
    assert decoded[0][1]["voltage_v"] == pytest.approx([-30.0, 30.0])  # a 60 000 mV step


def test_a_cell_reading_no_cell_can_give_travels_as_missing():
    batch = [(0, {"time_s": 0.0, "voltage_v": [3.3, 40.0, 3.31], "temp_c": [25.0, 25.0, 1e6]})]
    _, decoded = codec.decode(codec.encode(Kind.CELLS, batch))
    volts, temps = decoded[0][1]["voltage_v"], decoded[0][1]["temp_c"]
    assert volts[0] == pytest.approx(3.3) and volts[2] == pytest.approx(3.31)
    assert np.isnan(volts[1]) and np.isnan(temps[2])
