"""The device's MQTT connection (paho-mqtt 2, MQTT 5): QoS 1, a persistent session, a retained
``online`` status with ``offline`` as the last will, commands in, acknowledgements out.

paho runs its network loop in its own thread; this class hands what arrives (acknowledged
packet ids, commands, connection changes) to the BMS's thread through queues that the edge
drains on its own clock, so the BMS never waits on the network.
"""

from __future__ import annotations

import collections
import json
import ssl
import threading
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cellwarden.telemetry.broker_url import BrokerUrl
from cellwarden.telemetry.schema import COMMAND, SCHEMA_VERSION, STATUS, topic

SESSION_EXPIRY_S = 7 * 86400  # the broker keeps the session (and queued commands) this long
KEEPALIVE_S = 60
RECONNECT_MIN_S, RECONNECT_MAX_S = 1, 60
MAX_INFLIGHT = 32
OFFLINE = b'{"state":"offline"}'


@dataclass(frozen=True)
class Ack:
    """The broker's answer to one PUBLISH: ``refused`` names a reason when it was not accepted."""

    mid: int
    refused: str | None = None


class MqttUplink:
    """One device's MQTT client; ``start`` connects in the background."""

    def __init__(
        self,
        broker: BrokerUrl,
        fleet: str,
        device_id: str,
        ca_file: Path | None = None,
        firmware: str = "",
    ) -> None:
        self.broker = broker
        self.online_payload = json.dumps(
            {"state": "online", "firmware": firmware, "schema": SCHEMA_VERSION}
        ).encode()
        self.fleet = fleet
        self.device_id = device_id
        self.status_topic = topic(fleet, device_id, STATUS)
        self.command_topic = topic(fleet, device_id, COMMAND)
        self.acks: collections.deque[Ack] = collections.deque()
        self.commands: collections.deque[bytes] = collections.deque()
        self.disconnects = 0  # connection losses seen (the edge releases in-flight records)
        self.connects = 0
        self.last_error: str | None = None
        self.connected = False
        self._started = False
        self._stopping: threading.Thread | None = None
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=device_id,
            protocol=mqtt.MQTTv5,
        )
        if broker.username:
            client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            client.tls_set(ca_certs=str(ca_file) if ca_file else None, cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(self.status_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        self.client = client

    @property
    def started(self) -> bool:
        """True between ``start`` and ``drop`` or ``stop``."""
        return self._started

    def start(self) -> None:
        """Connect in the background (retrying with back-off until ``stop``); nothing happens
        while the last connection's thread is still winding down (try again later)."""
        if self._stopping is not None and self._stopping.is_alive():
            return
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(
            self.broker.host, self.broker.port, KEEPALIVE_S, clean_start=False,
            properties=properties,
        )  # fmt: skip
        self.client.loop_start()
        self._started = True

    def drop(self) -> None:
        """The radio link is gone: leave as an unexpected loss would (the will is published)."""
        if not self._started:
            return
        self.client.disconnect(ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
        # paho's thread may sit in a connect or a TLS handshake: let it end on its own
        self._stopping = threading.Thread(target=self.client.loop_stop, daemon=True)
        self._stopping.start()
        self._started = False
        self._lost()

    def stop(self) -> None:
        """Go offline cleanly, saying so on the status topic."""
        if not self._started:
            return
        if self.connected:
            self.client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
        self.client.disconnect()
        self.client.loop_stop()
        self._started = False
        self.connected = False

    def publish(self, name: str, payload: bytes) -> int | None:
        """Queue a QoS 1 PUBLISH; its packet id, or None when not connected."""
        if not self.connected:
            return None
        info = self.client.publish(name, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return None
        return info.mid

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker {self.broker} refused the connection: {reason_code}"
            return
        self.connected = True
        self.connects += 1
        self.last_error = None
        client.subscribe(self.command_topic, qos=1)
        client.publish(self.status_topic, self.online_payload, qos=1, retain=True)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected:
            self._lost()
        if reason_code.is_failure:
            self.last_error = f"disconnected from {self.broker}: {reason_code}"

    def _lost(self) -> None:
        self.connected = False
        self.disconnects += 1

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        refused = str(reason_code) if reason_code.is_failure else None
        self.acks.append(Ack(mid, refused))

    def _on_message(self, client, userdata, message) -> None:
        if message.topic == self.command_topic:
            self.commands.append(bytes(message.payload))
