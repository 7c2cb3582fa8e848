"""Signed metadata: ``{"signed": {...}, "signatures": [{"keyid": hex, "sig": hex}]}``.

Signatures cover the canonical JSON of ``signed`` (keys sorted, no whitespace, UTF-8), so a
document re-serialised by any JSON tool still verifies and any change to a value does not.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from cellwarden.ota.keys import PublicKey, SigningKey

HEX_SIGNATURE = re.compile(r"[0-9a-f]{128}")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class MetadataError(ValueError):
    """Metadata that is malformed, badly signed or out of date; the message says which."""


def canonical(document: Any) -> bytes:
    """The bytes a signature covers."""
    return json.dumps(
        document, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sign(signed: dict[str, Any], keys: Iterable[SigningKey]) -> dict[str, Any]:
    """An envelope of ``signed`` with one signature per key."""
    message = canonical(signed)
    signatures = [{"keyid": key.keyid, "sig": key.sign(message).hex()} for key in keys]
    return {"signed": signed, "signatures": signatures}


def valid_signers(envelope: Mapping[str, Any], keys: Mapping[str, PublicKey]) -> set[str]:
    """The key ids among ``keys`` whose signature over the envelope verifies."""
    signatures = envelope.get("signatures")
    if not isinstance(signatures, list):
        raise MetadataError("'signatures' must be a list")
    message = canonical(envelope["signed"])
    good = set()
    for entry in signatures:
        if not isinstance(entry, dict):
            raise MetadataError("each signature must be an object with 'keyid' and 'sig'")
        keyid, sig = entry.get("keyid"), entry.get("sig")
        key = keys.get(keyid) if isinstance(keyid, str) else None
        if key is None or not isinstance(sig, str) or not HEX_SIGNATURE.fullmatch(sig):
            continue
        if key.verifies(bytes.fromhex(sig), message):
            good.add(keyid)
    return good


def envelope_of(document: Any, what: str, type_name: str) -> dict[str, Any]:
    """``document`` checked to be an envelope whose ``signed._type`` is ``type_name``."""
    if not isinstance(document, dict) or not isinstance(document.get("signed"), dict):
        raise MetadataError(f"{what} is not signed metadata (no 'signed' object)")
    kind = document["signed"].get("_type")
    if kind != type_name:
        raise MetadataError(f"{what} has _type {kind!r}, expected {type_name!r}")
    return document


def format_time(time_s: float) -> str:
    return datetime.fromtimestamp(time_s, UTC).strftime(TIME_FORMAT)


def parse_time(text: Any, what: str) -> float:
    """Unix seconds of an ``YYYY-MM-DDTHH:MM:SSZ`` time."""
    if not isinstance(text, str):
        raise MetadataError(f"{what} must be a time like 2027-01-31T00:00:00Z")
    try:
        return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise MetadataError(
            f"{what} {text[:40]!r} is not a time like 2027-01-31T00:00:00Z"
        ) from None
