"""The edge against a real Mosquitto on 127.0.0.1 with passwords, the device ACL and TLS: what
the broker refuses, and no loss and no duplicates through an outage, a broker restart and a
kill -9 of the edge."""

import json
import os
import signal
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from tests.mqtt_support import Collector, make_test_ca

from cellwarden.simulation.catalogue import resolve_scenario
from cellwarden.simulation.edge_run import EdgeOptions, run_edge
from cellwarden.simulation.local_broker import DEVICE_ACL, LocalBroker

SCENARIO = Path(__file__).parent / "data" / "edge-telecom-16s.toml"
USERS = {"cloud": "cloud-pw", "dev-1": "pw-1", "dev-2": "pw-2"}


@pytest.fixture
def broker(tmp_path):
    tls = make_test_ca(tmp_path / "ca")
    with LocalBroker(tmp_path / "broker", USERS, DEVICE_ACL, tls) as running:
        running.tls_files = tls
        yield running


def device_client(broker, user, password=None, ca=None):
    """A bare MQTT 5 client over TLS; returns (client, connack reason, acks by mid)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{user}-raw",
                         protocol=mqtt.MQTTv5)  # fmt: skip
    client.username_pw_set(user, password or USERS.get(user))
    client.tls_set(ca_certs=str(ca or broker.tls_files.ca_file))
    connected, acks = threading.Event(), {}
    result = {}

    def on_connect(c, u, flags, reason, properties):
        result["reason"] = reason
        connected.set()

    client.on_connect = on_connect
    client.on_publish = lambda c, u, mid, reason, properties: acks.__setitem__(mid, reason)
    client.connect("127.0.0.1", broker.tls_port)
    client.loop_start()
    connected.wait(5)
    return client, result.get("reason"), acks


def test_a_device_cannot_publish_under_another_id(broker):
    cloud = Collector(broker.tls_port, username="cloud", password="cloud-pw",
                      tls_ca=broker.tls_files.ca_file)  # fmt: skip
    client, reason, acks = device_client(broker, "dev-1")
    assert not reason.is_failure
    foreign = client.publish("cw/f/dev-2/event", b"forged", qos=1)
    own = client.publish("cw/f/dev-1/status", b"{}", qos=1)
    foreign.wait_for_publish(5)
    own.wait_for_publish(5)
    time.sleep(0.3)
    assert str(acks[foreign.mid]) == "Not authorized"
    assert not acks[own.mid].is_failure
    topics = [name for name, _ in cloud.raw]
    assert "cw/f/dev-1/status" in topics and "cw/f/dev-2/event" not in topics
    client.disconnect()
    client.loop_stop()
    cloud.close()


def test_a_device_reads_only_its_own_commands(broker):
    received = []
    client, _, _ = device_client(broker, "dev-1")
    client.on_message = lambda c, u, message: received.append(message.topic)
    client.subscribe("cw/+/+/cmd", qos=1)
    time.sleep(0.3)
    cloud, _, _ = device_client(broker, "cloud")
    for target in ("dev-1", "dev-2"):
        cloud.publish(f"cw/f/{target}/cmd", b"{}", qos=1).wait_for_publish(5)
    time.sleep(0.5)
    assert received == ["cw/f/dev-1/cmd"]
    for c in (client, cloud):
        c.disconnect()
        c.loop_stop()


def test_bad_credentials_and_an_unknown_ca_are_refused(broker, tmp_path):
    client, reason, _ = device_client(broker, "dev-1", password="wrong")
    assert reason is not None and reason.is_failure
    client.loop_stop()
    stranger = make_test_ca(tmp_path / "other-ca")
    with pytest.raises(ssl.SSLCertVerificationError):
        device_client(broker, "dev-1", ca=stranger.ca_file)


def queue_time(queue_dir: Path) -> float:
    """The newest summary the edge has stored, read beside the running process."""
    try:
        with sqlite3.connect(f"file:{queue_dir / 'queue.sqlite'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'until:summary'").fetchone()
    except sqlite3.Error:
        return -1.0
    return -1.0 if row is None else row[0]


def edge_command(broker, queue: Path, outage: str) -> list[str]:
    return [
        sys.executable, "-m", "cellwarden.cli", "edge", "run", str(SCENARIO),
        "--broker", broker.url("dev-1", "pw-1", tls=True), "--ca", str(broker.tls_files.ca_file),
        "--device-id", "dev-1", "--fleet", "f", "--outage", outage, "--queue", str(queue),
        "--json", "--drain", "30", "--clock-epoch", "0",
    ]  # fmt: skip


def test_no_loss_no_duplicates_through_outage_broker_restart_and_kill(broker, tmp_path):
    duration_s, outage_start_s, outage_s = 93600.0, 3600.0, 86400.0
    reference = run_edge(
        resolve_scenario(str(SCENARIO)),
        EdgeOptions(device_id="ref", queue_dir=tmp_path / "reference"),
    )
    cloud = Collector(broker.tls_port, username="cloud", password="cloud-pw",
                      tls_ca=broker.tls_files.ca_file)  # fmt: skip
    queue = tmp_path / "queue"
    command = edge_command(broker, queue, f"{outage_start_s}:{outage_s}")
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             env=environment)  # fmt: skip
    deadline = time.monotonic() + 120
    while queue_time(queue) < outage_start_s + 0.4 * outage_s and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode()
        time.sleep(0.1)
    killed_at_s = queue_time(queue)
    os.kill(first.pid, signal.SIGKILL)  # mid-outage, with a day of telemetry in the queue
    first.wait()
    assert outage_start_s < killed_at_s < outage_start_s + outage_s
    before_restart = cloud.count("summary")
    assert 0 < before_restart <= outage_start_s / 10 + 1
    broker.restart()  # the cloud's session and the device's survive in the broker
    second = subprocess.run(command, capture_output=True, env=environment, timeout=300)
    assert second.returncode == 0, second.stderr.decode()
    summary = json.loads(second.stdout)
    expected_summaries = int(duration_s / 10) + 1
    assert cloud.wait_for(lambda: cloud.count("summary") >= expected_summaries, 60)
    time.sleep(1.0)
    summaries = cloud.records["summary"]
    times = sorted(r["time_s"] for r in summaries.values())
    assert times == pytest.approx([10.0 * i for i in range(expected_summaries)])  # each once
    events = sorted((r["time_s"], r["code"], r["kind"]) for r in cloud.records["event"].values())
    assert len(events) == reference["produced"]["event"] > 0
    assert len(set(events)) == len(events)
    assert summary["dropped"] == {} and summary["queued"] == {}
    assert cloud.deliveries >= len(summaries)  # QoS 1 may deliver twice; numbers make it once
    cloud.close()
