"""Sizes of MQTT 5 control packets on the wire, for the link's byte count (MQTT 5.0, §3)."""

from __future__ import annotations


def varint_bytes(value: int) -> int:
    """Length of MQTT's variable byte integer encoding of ``value``."""
    size = 1
    while value >= 128:
        value //= 128
        size += 1
    return size


def _packet(remaining: int) -> int:
    return 1 + varint_bytes(remaining) + remaining


def publish_bytes(topic: str, payload_bytes: int, qos: int = 1) -> int:
    """A PUBLISH without properties: topic, packet id (QoS > 0), empty property list, payload."""
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + 1 + payload_bytes
    return _packet(remaining)


def puback_bytes() -> int:
    """A PUBACK with reason 'success' and no properties (the short form)."""
    return _packet(2)


def connect_bytes(
    client_id: str,
    username: str | None,
    password: str | None,
    will_topic: str,
    will_payload: bytes,
    session_expiry: bool = True,
) -> int:
    """A CONNECT with a will, session expiry and optional credentials."""  # fmt: skip
    properties = 5 if session_expiry else 0  # session expiry interval: id + 4 bytes
    remaining = 10 + 1 + properties  # protocol name, level, flags, keep alive; property list
    remaining += 2 + len(client_id.encode())
    remaining += 1 + 2 + len(will_topic.encode()) + 2 + len(will_payload)  # will properties
    if username:
        remaining += 2 + len(username.encode())
    if password:
        remaining += 2 + len(password.encode())
    return _packet(remaining)


def connack_bytes() -> int:
    return _packet(3)


def subscribe_bytes(topic: str) -> int:
    return _packet(2 + 1 + 2 + len(topic.encode()) + 1)


def suback_bytes() -> int:
    return _packet(2 + 1 + 1)


PING_EXCHANGE_BYTES = 4  # PINGREQ + PINGRESP
