"""The cloud's alarms over a SQLite store: rules on stored telemetry, the lifecycle, escalation,
and notifications delivered to a real SMTP sink and a real local HTTP server."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import threading
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from cellwarden.cloud.alarms import AlarmEngine, AlarmError, Notifier, RuleError, parse_rule
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.telemetry import codec
from cellwarden.telemetry.schema import Kind

T0 = 1_790_000_000.0  # device clock of the first record
NOW = 1_790_000_100.0  # server clock

BASE_SUMMARY = {
    "soc_pct": 80.0,
    "soh_pct": 97.0,
    "voltage_v": 52.0,
    "current_a": -10.0,
    "cell_voltage_min_v": 4.05,
    "cell_voltage_max_v": 4.1,
    "temp_min_c": 24.0,
    "temp_max_c": 27.0,
    "path_state": 2,
    "alarms": 0,
    "warnings": 0,
    "worst_code": 0,
    "balancing_cells": 0,
    "strings_connected": 1,
}


class Device:
    """A pack's telemetry as decoded frames, numbered as the device numbers records."""

    def __init__(self, pack_id: int) -> None:
        self.pack_id = pack_id
        self.seq = 0

    def _arrival(self, kind: Kind, records: list[dict], now_s: float) -> Arrival:
        batch = [(self.seq + i, record) for i, record in enumerate(records)]
        self.seq += len(records)
        return Arrival(self.pack_id, codec.decode_frame(codec.encode(kind, batch)), now_s)

    def summary(self, times_s: list[float], now_s: float = NOW, **fields: Any) -> Arrival:
        """Summaries at ``times_s`` (after T0); a field given as a list varies per record."""
        records = []
        for i, t in enumerate(times_s):
            record = {**BASE_SUMMARY, "time_s": T0 + t}
            record.update({k: v[i] if isinstance(v, list) else v for k, v in fields.items()})
            records.append(record)
        return self._arrival(Kind.SUMMARY, records, now_s)

    def cells(self, times_s: list[float], voltages_v: list[list[float]], now_s: float = NOW):
        records = [
            {
                "time_s": T0 + t,
                "voltage_v": row,
                "temp_c": [25.0] * len(row),
                "balancing": [False] * len(row),
            }
            for t, row in zip(times_s, voltages_v, strict=True)
        ]
        return self._arrival(Kind.CELLS, records, now_s)

    def events(self, records: list[dict], now_s: float = NOW) -> Arrival:
        return self._arrival(Kind.EVENT, [{"time_s": T0, **r} for r in records], now_s)


@pytest.fixture
def cloud(tmp_path):
    store = open_store(str(tmp_path / "c.db"))
    org = store.registry.add_org("acme")
    store.registry.add_fleet(org, "scooters")
    store.registry.add_fleet(org, "ess")
    scooter = store.registry.add_pack("dev-12", "scooters", "Scooter 12", cell_count=16)
    rack = store.registry.add_pack("rack-3", "ess", "Rack 3")
    engine = AlarmEngine(store.db)
    yield SimpleNamespace(
        store=store,
        db=store.db,
        org=org,
        engine=engine,
        scooter=Device(scooter),
        rack=Device(rack),
    )
    store.close()


def feed(cloud, now_s: float, *arrivals: Arrival) -> None:
    """What an ingest worker does with a batch: store it, then evaluate it."""
    cloud.store.writer.write(list(arrivals))
    cloud.engine.evaluate(list(arrivals), now_s)


def limit(field: str, threshold: float, operator: str = ">", **more: Any) -> dict[str, Any]:
    """A threshold condition."""
    return {"kind": "threshold", "field": field, "operator": operator, "threshold": threshold,
            **more}  # fmt: skip


def add(cloud, **rule: Any) -> int:
    return cloud.engine.add_rule(cloud.org, parse_rule({"name": "r", **rule}))


def alarms(cloud, state: str | None = None) -> list[dict]:
    return cloud.engine.list_alarms([cloud.org], state, per_page=500)["items"]


def cell_row(count: int = 16, **cells_v: float) -> list[float]:
    """``count`` cells at 4.10 V, with ``c7=4.3`` setting cell 7 (1-based)."""
    row = [4.10] * count
    for name, value in cells_v.items():
        row[int(name[1:]) - 1] = value
    return row


# --- rules ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"condition": limit("temp_maxx", 45)}, r"condition.threshold.field: .*field 'temp_maxx'"),
        ({"colour": "red"}, "colour: Extra inputs are not permitted"),
        ({"condition": limit("temp_max_c", 45, clear_threshold=50)},
         "clear_threshold 50.0 must be <= the threshold 45.0"),
        ({"escalate_after_s": 60}, "escalate_after_s and escalate_to go together"),
        ({"notify": [{"webhook": "ftp://x.org/hook"}]}, r"is not an http\(s\) URL"),
        ({"notify": [{"email": "nobody"}]}, "'nobody' is not an e-mail address"),
        ({"notify": [{"email": "a@b.org", "webhook": "https://b.org"}]}, "a target is either"),
        ({"condition": {"kind": "gauge"}}, "condition: Input tag 'gauge'"),
        ({"condition": {"kind": "rate", "field": "cells.temp_c", "operator": ">",
                        "threshold_per_min": 2, "window_s": 60}}, "unknown summary field"),
    ],
)  # fmt: skip
def test_rule_errors_name_the_problem(change, problem):
    rule = {"name": "hot", "condition": limit("temp_max_c", 45)} | change
    with pytest.raises(RuleError, match=problem):
        parse_rule(rule)


def test_rules_round_trip_and_names_are_unique(cloud):
    rule = parse_rule(
        {
            "name": "cell over-voltage",
            "severity": "critical",
            "condition": limit("cells.voltage_v", 4.25, clear_threshold=4.2),
            "notify": [{"email": "ops@example.org"}],
            "fleets": ["scooters"],
        }
    )
    rule_id = cloud.engine.add_rule(cloud.org, rule)
    [stored] = cloud.engine.list_rules(cloud.org)
    assert stored == cloud.engine.get_rule(rule_id)
    listed = {key: stored.pop(key) for key in ("id", "org_id", "enabled", "created_s")}
    assert listed["id"] == rule_id and listed["enabled"] is True
    assert parse_rule(stored) == rule
    with pytest.raises(RuleError, match="has a rule named 'cell over-voltage' already"):
        cloud.engine.add_rule(cloud.org, rule)
    with pytest.raises(RuleError, match="no organisation 99"):
        cloud.engine.add_rule(99, rule)


# --- conditions -------------------------------------------------------------------------------
def test_summary_threshold_raises_once_and_a_retrigger_updates_it(cloud):
    add(
        cloud,
        severity="critical",
        fleets=["scooters"],
        condition=limit("temp_max_c", 45),
    )
    feed(
        cloud,
        NOW,
        cloud.scooter.summary([0, 10, 20, 30], temp_max_c=[27, 44.9, 45.0, 46.0]),
        cloud.rack.summary([0], temp_max_c=60.0),
    )
    [alarm] = alarms(cloud)  # the rack's fleet is not the rule's
    assert alarm["state"] == "active" and alarm["severity"] == "critical"
    assert (
        alarm["message"] == "pack Scooter 12 (dev-12): highest cell temperature 46.0 °C > 45.0 °C"
    )
    assert (alarm["value"], alarm["threshold"], alarm["cell"]) == (46.0, 45.0, None)
    feed(cloud, NOW + 40, cloud.scooter.summary([40, 50], temp_max_c=[47.5, 46.2]))
    [again] = alarms(cloud)
    assert again["id"] == alarm["id"]
    assert (again["value"], again["updated_s"], again["raised_s"]) == (46.2, NOW + 40, NOW)


def test_cell_threshold_names_the_cell(cloud):
    add(
        cloud,
        condition=limit("cells.voltage_v", 4.25),
    )
    rows = [cell_row(), cell_row(c7=4.262), cell_row(c7=4.30, c2=float("nan"))]
    feed(cloud, NOW, cloud.scooter.cells([0, 60, 120], rows))
    [alarm] = alarms(cloud)
    assert alarm["cell"] == 7
    assert alarm["message"] == "pack Scooter 12 (dev-12): cell 7 voltage 4.300 V > 4.250 V"
    assert alarm["value"] == pytest.approx(4.30)


def test_hysteresis_holds_between_the_limits_and_clears_below(cloud):
    add(
        cloud,
        condition=limit("cells.voltage_v", 4.25, clear_threshold=4.2),
    )
    feed(cloud, NOW, cloud.scooter.cells([0], [cell_row(c7=4.30, c9=4.27)]))
    assert sorted(a["cell"] for a in alarms(cloud, "active")) == [7, 9]
    feed(cloud, NOW + 60, cloud.scooter.cells([60], [cell_row(c7=4.22, c9=4.15)]))
    [still] = alarms(cloud, "active")
    [gone] = alarms(cloud, "cleared")
    assert (still["cell"], gone["cell"]) == (7, 9)
    assert (gone["cleared_by"], gone["cleared_s"], gone["acked_by"]) == ("system", NOW + 60, None)
    log = cloud.engine.get_alarm(gone["id"])["log"]
    assert [(e["action"], e["who"]) for e in log] == [("raised", "system"), ("cleared", "system")]
    assert log[1]["detail"] == "back to normal: 4.150 V"
    feed(cloud, NOW + 120, cloud.scooter.cells([120], [cell_row(c9=4.26)]))
    assert sorted(a["cell"] for a in alarms(cloud, "active")) == [9]  # a new alarm for cell 9
    assert len(alarms(cloud)) == 3


def test_debounce_counts_records_stored_before_the_batch(cloud):
    add(
        cloud,
        condition=limit("temp_max_c", 45, for_s=30),
    )
    feed(cloud, NOW, cloud.scooter.summary([0, 10, 20], temp_max_c=46.0))
    assert alarms(cloud) == []  # held 20 s
    feed(cloud, NOW + 30, cloud.scooter.summary([30], temp_max_c=46.0))
    [alarm] = alarms(cloud)  # held 30 s, counting from the earlier batch
    assert alarm["raised_s"] == NOW + 30


def test_debounce_per_cell_with_stored_cells(cloud):
    add(cloud, condition=limit("cells.voltage_v", 2.8, "<", for_s=60))
    feed(cloud, NOW, cloud.scooter.cells([0], [cell_row(c4=2.7)]))
    feed(cloud, NOW + 60, cloud.scooter.cells([30, 60], [cell_row(c4=2.7, c5=2.7)] * 2))
    [alarm] = alarms(cloud)  # cell 5 has been low for 30 s only
    assert alarm["message"] == "pack Scooter 12 (dev-12): cell 4 voltage 2.700 V < 2.800 V"


def test_rate_of_change_across_two_batches(cloud):
    add(
        cloud,
        condition={
            "kind": "rate",
            "field": "temp_max_c",
            "operator": ">",
            "threshold_per_min": 2.0,
            "window_s": 60,
        },
    )
    feed(cloud, NOW, cloud.scooter.summary([0, 10, 20, 30, 40, 50], temp_max_c=25.0))
    assert alarms(cloud) == []
    second = [60, 70, 80]  # 20 s: no rate from this batch alone
    feed(
        cloud,
        NOW + 60,
        cloud.scooter.summary(second, temp_max_c=28.0),
        cloud.rack.summary(second, temp_max_c=[25.0, 28.0, 28.0]),
    )
    [alarm] = alarms(cloud)
    assert alarm["device_id"] == "dev-12"
    assert alarm["value"] == pytest.approx(3.0)
    assert alarm["message"] == (
        "pack Scooter 12 (dev-12): highest cell temperature changing at 3.00 °C/min "
        "> 2.00 °C/min over 60 s"
    )
    feed(cloud, NOW + 140, cloud.scooter.summary([140, 150], temp_max_c=28.0))
    assert alarms(cloud, "cleared")[0]["cleared_by"] == "system"


def test_no_data_after_minutes_and_cleared_when_data_returns(cloud):
    add(cloud, condition={"kind": "no_data", "silence_min": 10})
    feed(cloud, NOW, cloud.scooter.summary([0]))
    cloud.engine.check_silence(NOW + 9 * 60)
    assert alarms(cloud) == []
    cloud.engine.check_silence(NOW + 11 * 60)
    cloud.engine.check_silence(NOW + 12 * 60)
    [alarm] = alarms(cloud)  # once; the rack never sent anything
    assert alarm["message"] == "pack Scooter 12 (dev-12): no data for 11.0 min > 10 min"
    assert alarm["raised_s"] == NOW + 11 * 60
    feed(cloud, NOW + 13 * 60, cloud.scooter.summary([780], now_s=NOW + 13 * 60))
    [alarm] = alarms(cloud, "cleared")
    assert (alarm["cleared_by"], alarm["cleared_s"]) == ("system", NOW + 13 * 60)
    assert cloud.engine.get_alarm(alarm["id"])["log"][-1]["detail"] == "data arrived again"


def test_dtc_trips_raise_per_code_and_clears_clear(cloud):
    add(cloud, condition={"kind": "dtc", "codes": ["B1101", "B1103"]})
    trip = {
        "source": "string1",
        "code": "B1101",
        "name": "cell over-voltage",
        "kind": "trip",
        "value": 4.31,
        "action": "open",
        "freeze_frame": {"current_a": 12.0},
    }
    other = trip | {"code": "B2001", "name": "contactor welded"}
    feed(cloud, NOW, cloud.scooter.events([trip, other]))
    [alarm] = alarms(cloud)
    assert (alarm["code"], alarm["value"], alarm["threshold"]) == ("B1101", 4.31, None)
    assert alarm["message"] == (
        "pack Scooter 12 (dev-12): B1101 cell over-voltage tripped on string1, value 4.31, "
        "action open"
    )
    feed(cloud, NOW + 5, cloud.scooter.events([trip | {"kind": "clear", "value": None}]))
    [alarm] = alarms(cloud, "cleared")
    assert alarm["cleared_by"] == "system"


# --- lifecycle --------------------------------------------------------------------------------
def test_lifecycle_records_who_and_when(cloud):
    add(
        cloud,
        condition=limit("cells.voltage_v", 4.25),
    )
    feed(cloud, NOW, cloud.scooter.cells([0], [cell_row(c3=4.3, c5=4.3, c7=4.3)]))
    first, second, third = sorted(alarms(cloud), key=lambda a: a["cell"])
    acked = cloud.engine.acknowledge(first["id"], "alice", NOW + 10, comment="on my way")
    assert (acked["state"], acked["acked_by"], acked["acked_s"]) == (
        "acknowledged",
        "alice",
        NOW + 10,
    )
    with pytest.raises(AlarmError, match="acknowledged by alice"):
        cloud.engine.acknowledge(first["id"], "bob", NOW + 11)
    cleared = cloud.engine.clear(first["id"], "bob", NOW + 20)
    assert (cleared["state"], cleared["cleared_by"], cleared["cleared_s"]) == (
        "cleared",
        "bob",
        NOW + 20,
    )
    assert cleared["acked_by"] == "alice"
    with pytest.raises(AlarmError, match=r"is cleared \(by bob .*nothing to acknowledge"):
        cloud.engine.acknowledge(first["id"], "carol", NOW + 30)
    with pytest.raises(AlarmError, match="nothing to clear"):
        cloud.engine.clear(first["id"], "carol", NOW + 30)
    with pytest.raises(AlarmError, match="no alarm 9999"):
        cloud.engine.acknowledge(9999, "carol", NOW + 30)
    log = cloud.engine.get_alarm(first["id"])["log"]
    assert [(e["time_s"], e["action"], e["who"], e["detail"]) for e in log[1:]] == [
        (NOW + 10, "acknowledged", "alice", "on my way"),
        (NOW + 20, "cleared", "bob", None),
    ]
    assert log[0]["action"] == "raised"
    page = cloud.engine.list_alarms([cloud.org], "open", page=2, per_page=1)
    assert (page["total"], len(page["items"])) == (2, 1)
    assert {a["id"] for a in alarms(cloud, "active")} == {second["id"], third["id"]}
    assert cloud.engine.list_alarms([cloud.org + 1])["total"] == 0
    assert {"rule", "pack", "device_id", "escalation_level"} <= set(page["items"][0])
    with pytest.raises(AlarmError, match="state 'closed'"):
        cloud.engine.list_alarms([cloud.org], "closed")


def test_rules_reload_in_other_engines_and_disabling_clears(cloud):
    api = AlarmEngine(cloud.db)  # another process's engine on the same database
    feed(cloud, NOW, cloud.scooter.summary([0], temp_max_c=50.0))  # rules cached: none
    rule_id = api.add_rule(
        cloud.org,
        parse_rule({"name": "hot", "condition": limit("temp_max_c", 45)}),
    )
    feed(cloud, NOW + 10, cloud.scooter.summary([10], temp_max_c=50.0))
    [alarm] = alarms(cloud, "active")
    api.set_rule_enabled(rule_id, False, "alice", NOW + 20)
    assert alarms(cloud, "cleared")[0]["cleared_by"] == "alice"
    feed(cloud, NOW + 30, cloud.scooter.summary([30], temp_max_c=50.0))
    assert alarms(cloud, "open") == []
    api.delete_rule(rule_id, "alice", NOW + 40)
    assert cloud.engine.list_rules(cloud.org) == []
    assert cloud.engine.get_alarm(alarm["id"])["rule"] is None


# --- escalation and notifications -------------------------------------------------------------
def notifications(cloud) -> list[tuple]:
    return cloud.db.query(
        "SELECT alarm_id, channel, target, subject, state, attempts, next_s, error "
        "FROM notifications ORDER BY id"
    )


def test_unacknowledged_alarms_escalate_once_per_level(cloud):
    add(
        cloud,
        escalate_after_s=300,
        escalate_to=[{"email": "boss@example.org"}],
        condition=limit("cells.voltage_v", 4.25),
    )
    feed(cloud, NOW, cloud.scooter.cells([0], [cell_row(c1=4.3, c2=4.3)]))
    first, second = sorted(alarms(cloud), key=lambda a: a["cell"])
    cloud.engine.acknowledge(second["id"], "alice", NOW + 60)
    cloud.engine.escalate(NOW + 299)
    assert notifications(cloud) == []
    cloud.engine.escalate(NOW + 300)
    cloud.engine.escalate(NOW + 900)  # escalate_max_level is 1
    levels = {a["cell"]: a["escalation_level"] for a in alarms(cloud)}
    assert levels == {1: 1, 2: 0}
    [(alarm_id, channel, target, subject, state, *_)] = notifications(cloud)
    assert (alarm_id, channel, target, state) == (
        first["id"],
        "email",
        "boss@example.org",
        "pending",
    )
    assert subject.startswith("[cellwarden] WARNING escalated: pack Scooter 12 (dev-12): cell 1")
    log = cloud.engine.get_alarm(first["id"])["log"]
    assert (log[-1]["action"], log[-1]["detail"]) == (
        "escalated",
        "level 1: not acknowledged within 300 s",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Sink:
    """An aiosmtpd handler keeping every message."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd calls it so)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def smtp():
    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield SimpleNamespace(sink=sink, port=controller.port)
    controller.stop()


@pytest.fixture
def webhook():
    """A local HTTP server answering POSTs with the statuses queued, then 200."""
    received: list[tuple[bytes, dict]] = []
    statuses: list[int] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers)))
            self.send_response(statuses.pop(0) if statuses else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield SimpleNamespace(url=url, received=received, statuses=statuses)
    server.shutdown()
    server.server_close()


def test_notifications_reach_smtp_and_a_signed_webhook(cloud, smtp, webhook):
    add(
        cloud,
        severity="critical",
        notify=[{"webhook": webhook.url}, {"email": "ops@example.org"}],
        condition=limit("cells.voltage_v", 4.25, clear_threshold=4.2),
    )
    feed(cloud, NOW, cloud.scooter.cells([0], [cell_row(c7=4.3)]))
    notifier = Notifier(
        cloud.db, "127.0.0.1", smtp.port, "cellwarden@example.org", 5.0, webhook_secret="s3cret"
    )
    delivery = notifier.deliver_due(NOW)
    assert (delivery.sent, delivery.retrying, delivery.failed) == (2, 0, 0)

    [mail] = smtp.sink.messages
    assert mail["To"] == "ops@example.org"
    assert mail["Subject"] == (
        "[cellwarden] CRITICAL raised: pack Scooter 12 (dev-12): cell 7 voltage 4.300 V > 4.250 V"
    )
    text = mail.get_content()
    assert "Cell:      7" in text and "Rule:      r" in text

    [(body, headers)] = webhook.received
    expected = hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert headers["X-Cellwarden-Signature"] == expected
    payload = json.loads(body)
    assert payload["event"] == "raised" and payload["event_s"] == NOW
    assert {k: payload["alarm"][k] for k in ("state", "severity", "pack", "device_id", "cell")} == {
        "state": "active",
        "severity": "critical",
        "pack": "Scooter 12",
        "device_id": "dev-12",
        "cell": 7,
    }
    assert payload["alarm"]["threshold"] == 4.25

    feed(cloud, NOW + 60, cloud.scooter.cells([60], [cell_row()]))  # back to normal
    assert notifier.deliver_due(NOW + 60).sent == 2
    assert json.loads(webhook.received[-1][0])["alarm"]["cleared_by"] == "system"
    assert smtp.sink.messages[-1]["Subject"].startswith("[cellwarden] CRITICAL cleared: ")
    assert {row[4] for row in notifications(cloud)} == {"sent"}


def test_failed_webhooks_back_off_and_give_up(cloud, webhook):
    add(
        cloud,
        notify=[{"webhook": webhook.url}, {"webhook": f"http://127.0.0.1:{free_port()}/"}],
        condition={"kind": "dtc"},
    )
    webhook.statuses.append(500)
    feed(cloud, NOW, cloud.scooter.events([{"code": "B1101", "kind": "trip"}]))
    notifier = Notifier(
        cloud.db, "127.0.0.1", 1, "cw@example.org", 2.0, max_attempts=2, retry_base_s=30.0
    )
    delivery = notifier.deliver_due(NOW)
    assert (delivery.sent, delivery.retrying, delivery.failed) == (0, 2, 0)
    (*_, state, attempts, next_s, error), _ = notifications(cloud)
    assert (state, attempts, next_s, error) == (
        "pending",
        1,
        NOW + 30,
        f"RuntimeError: HTTP 500 from {webhook.url}",
    )
    assert notifier.deliver_due(NOW + 29).sent == 0  # not due yet
    delivery = notifier.deliver_due(NOW + 30)
    assert (delivery.sent, delivery.retrying, delivery.failed) == (1, 0, 1)
    states = [(row[4], row[5]) for row in notifications(cloud)]
    assert states == [("sent", 2), ("failed", 2)]
    assert "ConnectError" in notifications(cloud)[1][7]
    assert len(webhook.received) == 2
