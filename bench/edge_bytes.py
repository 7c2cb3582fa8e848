"""Bytes on the wire per 30-day month for a 16S pack's telemetry.

The built-in ``lfp-16s-48v`` (16S LFP, a grid outage to ride through) runs a simulated day with
its edge at the default rates (summaries every 10 s, every cell every 60 s, all events, and
position and device health besides) against a Mosquitto of the benchmark's own on 127.0.0.1.
The edge counts every MQTT packet it sends or receives (PUBLISH, PUBACK, CONNECT, SUBSCRIBE,
keep-alives: MQTT 5 framing, TCP/IP and TLS not included); the broker's own ``$SYS`` counter of
bytes received checks the uplink half of it. The baseline is the same records the subscriber
received, sent the naive way: one JSON message per record, QoS 1. Target: ≤ 10 MB per month.
"""

from __future__ import annotations

import json
import tempfile
import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from cellwarden.edge.mqtt_framing import puback_bytes, publish_bytes
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.edge_run import EdgeOptions, run_edge
from cellwarden.simulation.local_broker import LocalBroker
from cellwarden.telemetry import codec

SCENARIO = "lfp-16s-48v"
SIMULATED_S = 86400.0
MONTH_S = 30 * 86400.0
TARGET_MB = 10.0


class _Listener:
    """Collects decoded records and the broker's byte counter."""

    def __init__(self, port: int) -> None:
        self.records: list[tuple[str, dict]] = []
        self.received_bytes: list[int] = []
        self.lock = threading.Lock()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        client.on_message = self._on_message
        client.connect("127.0.0.1", port)
        client.subscribe([("cw/#", 1), ("$SYS/broker/bytes/received", 0)])
        client.loop_start()
        self.client = client

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            if message.topic.startswith("$SYS"):
                self.received_bytes.append(int(message.payload))
            elif not message.topic.endswith("/status"):
                _, batch = codec.decode(message.payload)
                self.records += [(message.topic, record) for _, record in batch]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def measure() -> list[dict]:
    import time

    scenario = load_builtin(SCENARIO)
    with tempfile.TemporaryDirectory() as folder, LocalBroker(Path(folder) / "broker") as broker:
        listener = _Listener(broker.port)
        time.sleep(1.5)
        before = listener.received_bytes[-1] if listener.received_bytes else 0
        summary = run_edge(
            scenario,
            EdgeOptions(device_id="pack-16s", fleet="bench", broker=broker.url(),
                        queue_dir=Path(folder) / "queue", duration_s=SIMULATED_S),
        )  # fmt: skip
        time.sleep(2.5)  # the broker's counter is published every second
        after = listener.received_bytes[-1]
        listener.close()
    naive = sum(
        publish_bytes(name, len(json.dumps(record))) + puback_bytes()
        for name, record in listener.records
    )
    scale = MONTH_S / summary["simulated_s"]
    month_mb = summary["bytes_sent"] * scale / 1e6
    rows = [
        {
            "what": "cellwarden (CBOR, delta, zstd, 5 min batches)",
            "records": sum(summary["acknowledged"].values()),
            "MB per 30 days": month_mb,
            "ratio to naive JSON": summary["bytes_sent"] / naive,
            "target MB": TARGET_MB,
            "meets": month_mb <= TARGET_MB,
        },
        {
            "what": "naive: one JSON message per record",
            "records": len(listener.records),
            "MB per 30 days": naive * scale / 1e6,
            "ratio to naive JSON": 1.0,
            "target MB": TARGET_MB,
            "meets": naive * scale / 1e6 <= TARGET_MB,
        },
        {
            "what": "uplink seen by the broker ($SYS bytes received)",
            "records": 0,
            "MB per 30 days": (after - before) * scale / 1e6,
            "ratio to naive JSON": (after - before) / naive,
            "target MB": TARGET_MB,
            "meets": (after - before) * scale / 1e6 <= TARGET_MB,
        },
    ]
    for kind, size in sorted(summary["bytes_by_kind"].items()):
        rows.append({"what": f"  of which {kind}", "records": summary["acknowledged"].get(kind, 0),
                     "MB per 30 days": size * scale / 1e6, "ratio to naive JSON": size / naive,
                     "target MB": TARGET_MB, "meets": True})  # fmt: skip
    return rows
