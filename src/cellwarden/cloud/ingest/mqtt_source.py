"""The ingest's MQTT 5 connection: a shared subscription, manual acknowledgement, flow control.

Each worker joins ``$share/{group}/cw/#``; the broker hands every message to one member of the
group, so N workers (on N machines) split the load. A message is acknowledged only after it
is stored (``ack``), and the worker's Receive Maximum caps how many unacknowledged messages
the broker sends it: a slow database slows the flow at the broker instead of filling memory.
The session persists (fixed client id, clean start off), so what a killed worker had not
acknowledged is delivered again when it comes back.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from cellwarden.telemetry.broker_url import BrokerUrl
from cellwarden.telemetry.schema import TOPIC_ROOT

log = logging.getLogger(__name__)
SESSION_EXPIRY_S = 86400
KEEPALIVE_S = 30


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int = 0  # which connection delivered it (a packet id is per connection)


class MqttSource:
    """Messages of the shared subscription in ``inbox``; ``ack`` once stored."""

    def __init__(
        self, broker: BrokerUrl, client_id: str, group: str = "ingest",
        ca_file: Path | None = None, receive_maximum: int = 1000,
    ) -> None:  # fmt: skip
        self.inbox: queue.Queue[Message] = queue.Queue()
        self.subscription = f"$share/{group}/{TOPIC_ROOT}/#"
        self.connected = False
        self.subscribed = threading.Event()  # set at the first SUBACK
        self.last_error: str | None = None
        self.broker = broker
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        client.manual_ack_set(True)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self.connections = 0
        self._properties = Properties(PacketTypes.CONNECT)
        self._properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self._properties.ReceiveMaximum = receive_maximum
        self.client = client

    def start(self) -> None:
        self.client.connect_async(
            self.broker.host, self.broker.port, KEEPALIVE_S, clean_start=False,
            properties=self._properties,
        )  # fmt: skip
        self.client.loop_start()

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def ack(self, message: Message) -> None:
        """Acknowledge a stored message; one from an earlier connection is not (the broker
        sends it again on this one, and its packet id may now name another message)."""
        if message.qos > 0 and message.connection == self.connections:
            self.client.ack(message.mid, message.qos)

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            self.last_error = f"broker refused the connection: {reason}"
            log.error(self.last_error)
            return
        self.connected = True
        self.connections += 1
        client.subscribe(self.subscription, qos=1)

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self.connected = False
        if reason.is_failure:
            self.last_error = f"disconnected: {reason}"

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(code) for code in reason_codes if code.is_failure]
        if refused:
            self.last_error = f"subscription to {self.subscription} refused: {', '.join(refused)}"
            log.error(self.last_error)
            return
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        self.inbox.put(Message(message.topic, bytes(message.payload), message.mid, message.qos,
                               self.connections))  # fmt: skip
