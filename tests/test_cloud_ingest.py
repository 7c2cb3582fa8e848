"""Ingest: telemetry stored once, bad input quarantined with its reason, workers that die."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from tests.cloud_fixtures import EPOCH_S, Publisher, cells, payload, summaries

from cellwarden.cloud.ingest.mqtt_source import Message
from cellwarden.cloud.ingest.worker import IngestWorker
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.simulation.local_broker import DEVICE_ACL, LocalBroker
from cellwarden.telemetry.schema import Kind

NOW_S = EPOCH_S + 86400


@pytest.fixture
def store(tmp_path):
    store = open_store(str(tmp_path / "cloud.db"))
    org = store.registry.add_org("acme")
    store.registry.add_fleet(org, "fleet-a")
    store.registry.add_fleet(store.registry.add_org("other"), "fleet-b")
    store.registry.add_pack("dev-1", "fleet-a", cell_count=16)
    store.registry.add_pack("dev-2", "fleet-b", cell_count=16)
    yield store
    store.close()


def message(topic: str, body: bytes, mid: int = 1) -> Message:
    return Message(topic, body, mid, 1, 1)


def count(store, table: str, pack_id: int = 1) -> int:
    return store.db.query(f"SELECT COUNT(*) FROM {table} WHERE pack_id = ?", (pack_id,))[0][0]


def test_records_are_stored_once_and_redeliveries_counted_as_duplicates(store):
    worker = IngestWorker(store, "w1", clock=lambda: NOW_S)
    batch = [
        message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(0, 30))),
        message("cw/fleet-a/dev-1/cells", payload(Kind.CELLS, cells(30, 5, 16))),
    ]
    worker.process(batch)
    worker.process(batch)  # QoS 1 may deliver twice
    overlap = summaries(20, 20)  # a replay after a restart overlaps what is stored
    worker.process([message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, overlap))])
    assert count(store, "summary") == 40
    assert count(store, "cells") == 5
    assert worker.counters.accepted == 45
    assert worker.counters.duplicates == 35 + 10
    stored = store.db.query("SELECT seq, soc_pct FROM summary ORDER BY seq")
    assert [seq for seq, _ in stored] == list(range(40))
    assert stored[39][1] == pytest.approx(80.0 - 19 * 0.1)  # the overlap's own values


@pytest.mark.parametrize(("topic", "body", "reason"), [
    ("cw/fleet-a/dev-9/summary", payload(Kind.SUMMARY, summaries(0, 1)), "not registered"),
    ("cw/fleet-b/dev-1/summary", payload(Kind.SUMMARY, summaries(0, 1)), "not registered in fleet"),
    ("cw/fleet-a/dev-1/cells", payload(Kind.SUMMARY, summaries(0, 1)), "on a cells topic"),
    ("cw/fleet-a/dev-1/summary", b"\x07garbage", "unknown payload marker"),
    ("cw/fleet-a/dev-1/summary", b"\x01" + b"\x28\xb5\x2f\xfd" + b"\x00" * 20, "does not decode"),
    ("cw/fleet-a/dev-1/summary", b"", "empty payload"),
    ("cw/fleet-a/dev-1/weather", payload(Kind.SUMMARY, summaries(0, 1)), "unknown record kind"),
    ("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(0, 1, start_s=NOW_S + 9e5)),
     "ahead"),
    ("cw/fleet-a/dev-1/status", b"not json", "status is not JSON"),
    ("cw/fleet-a/dev-1/event", b'{"v":1,"kind":"event","records":[{"seq":1,"time_s":5}]}',
     "has no code"),
    ("cw/x/y", b"{}", "is not cw/"),
])  # fmt: skip
def test_bad_messages_are_quarantined_with_the_reason_and_the_rest_stored(
    store, topic, body, reason
):
    worker = IngestWorker(store, "w1", clock=lambda: NOW_S)
    good = message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(100, 3)))
    worker.process([message(topic, body), good])
    quarantined = store.ingest_log.quarantined()
    assert len(quarantined) == 1
    assert reason in quarantined[0]["reason"], quarantined[0]["reason"]
    assert quarantined[0]["topic"] == topic
    assert count(store, "summary") == 3  # the good message in the same batch is stored
    assert worker.counters.quarantined == 1


def test_status_and_latest_values_follow_the_newest_record(store):
    worker = IngestWorker(store, "w1", clock=lambda: NOW_S)
    worker.process([
        message("cw/fleet-a/dev-1/summary",
                payload(Kind.SUMMARY, summaries(10, 5, start_s=EPOCH_S + 100))),
        message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(0, 5))),  # older, late
        message("cw/fleet-a/dev-1/status", b'{"state":"online","firmware":"1.2.3","schema":1}'),
    ])  # fmt: skip
    ((time_s, soc, status, firmware),) = store.db.query(
        "SELECT time_s, soc_pct, status, firmware FROM pack_latest WHERE pack_id = 1"
    )
    assert time_s == EPOCH_S + 140
    assert soc == pytest.approx(79.6)
    assert (status, firmware) == ("online", "1.2.3")


WORKER = """
import sys
from cellwarden.cloud.ingest.process import WorkerConfig, run_worker
run_worker(WorkerConfig(sys.argv[1], sys.argv[2], sys.argv[3], alarms=False, receive_maximum=50))
"""


def start_worker(db_url: str, broker_url: str, name: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, db_url, broker_url, name],
                            stderr=subprocess.PIPE)  # fmt: skip


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_a_worker_killed_mid_stream_loses_and_duplicates_nothing(store, tmp_path):
    users = {"cloud": "cloud-pw", "dev-1": "pw-1"}
    db_url = str(tmp_path / "cloud.db")
    with LocalBroker(tmp_path / "broker", users, DEVICE_ACL) as broker:
        cloud_url = broker.url("cloud", "cloud-pw")
        workers = [start_worker(db_url, cloud_url, f"ingest-{i}") for i in range(2)]
        assert wait_for(lambda: len(store.ingest_log.counters()) == 2, 20)  # both subscribed
        publisher = Publisher(broker.port, "dev-1", "pw-1")
        messages, per_message = 400, 20
        for index in range(messages):
            if index == messages // 3:
                os.kill(workers[0].pid, signal.SIGKILL)  # mid-stream, with messages in flight
            if index == 2 * messages // 3:
                workers[0] = start_worker(db_url, cloud_url, "ingest-0")  # same session back
            batch = summaries(index * per_message, per_message, start_s=EPOCH_S + index * 200)
            publisher.publish("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, batch))
        publisher.close()
        total = messages * per_message
        stored = wait_for(lambda: count(store, "summary") >= total, 60)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(10)
        rows = store.db.query("SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) "
                              "FROM summary WHERE pack_id = 1")  # fmt: skip
    assert stored, f"stored {rows} of {total}"
    assert rows[0] == (total, total, 0, total - 1)  # no loss, no duplicate
    counters = store.ingest_log.counters()
    assert all(c["accepted"] > 0 for c in counters.values())  # the group split the load


def test_a_redelivered_trip_after_its_clear_raises_no_new_alarm(store):
    from cellwarden.cloud.alarms.engine import AlarmEngine
    from cellwarden.cloud.alarms.rules import AlarmRule

    engine = AlarmEngine(store.db)
    engine.add_rule(1, AlarmRule.model_validate(
        {"name": "trips", "condition": {"kind": "dtc"}}))  # fmt: skip
    clock = iter(NOW_S + second for second in range(100))
    worker = IngestWorker(store, "w1", on_stored=engine.evaluate, clock=lambda: next(clock))
    trip = {"time_s": EPOCH_S, "source": "pack", "code": "B1101", "kind": "trip",
            "value": 3.71, "action": "open"}  # fmt: skip
    clear = trip | {"time_s": EPOCH_S + 60, "kind": "clear", "value": None, "action": ""}
    trip_message = message("cw/fleet-a/dev-1/event", payload(Kind.EVENT, [(5, trip)]))
    worker.process([trip_message])
    worker.process([message("cw/fleet-a/dev-1/event", payload(Kind.EVENT, [(6, clear)]))])
    worker.process([trip_message])  # QoS 1 redelivery of the old trip
    alarms = engine.list_alarms([1])["items"]
    assert [(a["code"], a["state"], a["cleared_by"]) for a in alarms] == [
        ("B1101", "cleared", "system")
    ]
    assert worker.counters.duplicates == 1


@pytest.mark.parametrize("body", [
    b'{"v":2,"kind":"summary","records":[{"seq":1,"time_s":1e400}]}',  # overflows to inf
    b'{"v":2,"kind":"event","records":[{"seq":1,"time_s":1e309,"code":"X"}]}',
    b"\x00" + __import__("cbor2").dumps({"v": 2, "k": "summary", "s": [[1], [1, 2]]}),
    b"\x00" + __import__("cbor2").dumps(
        {"v": 2, "k": "event", "s": [1], "r": [{"time_s": 10**400, "code": "X"}]}),
])  # fmt: skip
def test_a_payload_that_breaks_the_decoder_is_quarantined_not_retried_forever(store, body):
    worker = IngestWorker(store, "w1", clock=lambda: NOW_S)
    kind = "event" if b"event" in body else "summary"
    good = message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(100, 3)))
    worker.process([message(f"cw/fleet-a/dev-1/{kind}", body), good])  # returns: acked
    assert len(store.ingest_log.quarantined()) == 1
    assert count(store, "summary") == 3


def test_a_batch_retried_after_a_database_failure_is_quarantined_once(store, monkeypatch):
    worker = IngestWorker(store, "w1", clock=lambda: NOW_S)
    batch = [
        message("cw/fleet-a/dev-1/summary", b"\x07garbage"),
        message("cw/fleet-a/dev-1/summary", payload(Kind.SUMMARY, summaries(0, 3))),
    ]
    write = store.writer.write
    failures = iter([sqlite3.OperationalError("database is locked")])

    def flaky(arrivals):
        error = next(failures, None)
        if error is not None:
            raise error
        return write(arrivals)

    monkeypatch.setattr(store.writer, "write", flaky)
    with pytest.raises(sqlite3.OperationalError):
        worker.process(batch)  # the worker's loop retries the batch, unacknowledged
    worker.process(batch)
    assert len(store.ingest_log.quarantined()) == 1
    assert worker.counters.quarantined == 1
    assert count(store, "summary") == 3
