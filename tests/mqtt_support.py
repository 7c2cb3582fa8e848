"""Helpers for tests against a real Mosquitto: a test CA made with ``cryptography``, a subscriber
that collects what arrives."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections import defaultdict
from pathlib import Path

import paho.mqtt.client as mqtt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from cellwarden.simulation.local_broker import TlsFiles
from cellwarden.telemetry import codec


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_test_ca(directory: Path) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 (PEM files in ``directory``)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("cellwarden test CA"))
        .issuer_name(_name("cellwarden test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return files


class Collector:
    """A persistent-session QoS 1 subscriber that decodes telemetry and counts by sequence."""

    def __init__(self, port: int, topic: str = "cw/#", username=None, password=None,
                 client_id: str = "collector", tls_ca: Path | None = None) -> None:  # fmt: skip
        self.lock = threading.Lock()
        self.records: dict[str, dict[int, dict]] = defaultdict(dict)  # kind -> seq -> record
        self.deliveries = 0
        self.raw: list[tuple[str, bytes]] = []
        self.connected = threading.Event()
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        if username:
            client.username_pw_set(username, password)
        if tls_ca:
            client.tls_set(ca_certs=str(tls_ca))
        client.on_connect = lambda c, u, f, rc, p: (c.subscribe(topic, qos=1), self.connected.set())
        client.on_message = self._on_message
        client.reconnect_delay_set(0.2, 2)
        self.client = client
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 3600
        client.connect("127.0.0.1", port, clean_start=False, properties=properties)
        client.loop_start()
        assert self.connected.wait(10), "collector could not connect"

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.raw.append((message.topic, bytes(message.payload)))
            if message.topic.endswith(("/status", "/cmd")):
                return
            kind, batch = codec.decode(message.payload)
            for seq, record in batch:
                self.deliveries += 1
                self.records[kind.value][seq] = record

    def count(self, kind: str) -> int:
        with self.lock:
            return len(self.records[kind])

    def wait_for(self, predicate, timeout_s: float = 30.0) -> bool:
        return wait_for(predicate, timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for(predicate, timeout_s: float = 30.0) -> bool:
    """True as soon as ``predicate()`` is, False when it still is not after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()
