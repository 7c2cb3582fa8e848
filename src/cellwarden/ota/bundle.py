"""The bundle file: a signed header, then the payload files one after another.

Layout (docs/ota.md): 8 bytes magic ``CWOTA\\0\\1\\n``, a 4-byte big-endian header length, the
header as UTF-8 JSON ``{"manifest": <signed manifest>, "roots": [<signed root>, ...]}``, then
each payload file's bytes in the manifest's order. Nothing else; a file that is shorter or
longer than its manifest says is refused. The signed manifest holds the hashes of the payload
and of the roots, so that no byte of a bundle can change unnoticed. Reading never trusts the
payload before its hash matches the signed manifest.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

from cellwarden.ota.keys import SigningKey
from cellwarden.ota.manifest import (
    MANIFEST_TYPE,
    PAYLOAD_KINDS,
    SPEC_VERSION,
    Manifest,
    parse_manifest,
)
from cellwarden.ota.root import Root, parse_root, update_root
from cellwarden.ota.signed import MetadataError, canonical, format_time, sign

MAGIC = b"CWOTA\x00\x01\n"
LENGTH = struct.Struct(">I")
PREFIX_BYTES = len(MAGIC) + LENGTH.size
MAX_HEADER_BYTES = 1 << 20
CHUNK_BYTES = 1 << 16


class BundleError(ValueError):
    """A bundle that must not be installed; the message names the reason."""


@dataclass(frozen=True)
class BundleHeader:
    manifest: Manifest
    roots: tuple[dict[str, Any], ...]
    payload_offset: int

    @property
    def total_size(self) -> int:
        return self.payload_offset + self.manifest.payload_size


@dataclass(frozen=True)
class BundleInfo:
    """A bundle checked on its own terms: its manifest, and what the cloud stores beside it."""

    manifest: Manifest
    size: int
    sha256: str
    signer_keyids: tuple[str, ...]


def build_bundle(
    files: Mapping[str, bytes],
    *,
    version: str,
    hardware: Sequence[str],
    architecture: str,
    expires_s: float,
    keys: Sequence[SigningKey],
    roots: Sequence[dict[str, Any]],
    min_version: str | None = None,
    created_s: float | None = None,
) -> bytes:
    """A bundle of ``files`` (named as ``PAYLOAD_KINDS``) signed by ``keys``, carrying the root
    chain ``roots`` (oldest first) so that a device can learn rotations from it."""
    unknown = sorted(set(files) - set(PAYLOAD_KINDS))
    if unknown or not files:
        raise BundleError(
            f"a bundle carries {' and/or '.join(PAYLOAD_KINDS)}"
            + (f"; not {', '.join(unknown)}" if unknown else "")
        )
    order = [path for path in PAYLOAD_KINDS if path in files]
    payload = b"".join(files[path] for path in order)
    signed = {
        "_type": MANIFEST_TYPE,
        "spec_version": SPEC_VERSION,
        "version": version,
        "min_version": min_version,
        "hardware": list(hardware),
        "architecture": architecture,
        "created": format_time(time.time() if created_s is None else created_s),
        "expires": format_time(expires_s),
        "files": [
            {
                "path": path,
                "kind": PAYLOAD_KINDS[path],
                "size": len(files[path]),
                "sha256": hashlib.sha256(files[path]).hexdigest(),
            }
            for path in order
        ],
        "payload_size": len(payload),
        "payload_sha256": hashlib.sha256(payload).hexdigest(),
        "roots_sha256": hashlib.sha256(canonical(list(roots))).hexdigest(),
    }
    try:
        manifest = parse_manifest(sign(signed, keys))
    except MetadataError as error:
        raise BundleError(str(error)) from None
    header = canonical({"manifest": manifest.envelope, "roots": list(roots)})
    return MAGIC + LENGTH.pack(len(header)) + header + payload


def read_header(stream: BinaryIO, total_size: int) -> BundleHeader:
    """The header of a bundle of ``total_size`` bytes, its manifest's structure checked and its
    length matched against the file (signatures are checked by ``verify_signatures``)."""
    prefix = stream.read(PREFIX_BYTES)
    if not MAGIC.startswith(prefix[: len(MAGIC)]):
        raise BundleError("not a cellwarden bundle (bad magic)")
    if len(prefix) < PREFIX_BYTES:
        raise BundleError(f"bundle truncated: {len(prefix)} bytes end inside its magic and length")
    (length,) = LENGTH.unpack(prefix[len(MAGIC) :])
    if length > MAX_HEADER_BYTES:
        raise BundleError(f"bundle header of {length} bytes exceeds {MAX_HEADER_BYTES}")
    raw = stream.read(length)
    if len(raw) < length:
        raise BundleError(
            f"bundle truncated: {total_size} bytes end inside the {length}-byte header"
        )
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:
        raise BundleError(f"bundle header is not JSON: {error}") from None
    if not isinstance(header, dict) or not isinstance(header.get("roots"), list):
        raise BundleError("bundle header must be an object with 'manifest' and 'roots'")
    if not header["roots"]:
        raise BundleError("bundle carries no root metadata")
    try:
        manifest = parse_manifest(header.get("manifest"))
    except MetadataError as error:
        raise BundleError(str(error)) from None
    result = BundleHeader(manifest, tuple(header["roots"]), PREFIX_BYTES + length)
    if total_size < result.total_size:
        raise BundleError(f"bundle truncated: {total_size} of {result.total_size} bytes")
    if total_size > result.total_size:
        extra = total_size - result.total_size
        raise BundleError(f"bundle has {extra} bytes after the payload its manifest describes")
    return result


def verify_signatures(header: BundleHeader, trusted: Root, now_s: float) -> tuple[Root, set[str]]:
    """The newest root the bundle's chain leads to from ``trusted`` and the ``targets`` keys
    that signed the manifest; BundleError naming what fails (a root or the manifest)."""
    if hashlib.sha256(canonical(list(header.roots))).hexdigest() != header.manifest.roots_sha256:
        raise BundleError("the root metadata the bundle carries does not match its manifest")
    try:
        root = update_root(trusted, header.roots, now_s)
        signers = root.signed_by(header.manifest.envelope, "targets")
    except MetadataError as error:
        raise BundleError(f"signature check failed: {error}") from None
    return root, signers


def check_payload(stream: BinaryIO, header: BundleHeader) -> None:
    """Every payload file's bytes against the manifest's hashes (and the whole payload's)."""
    stream.seek(header.payload_offset)
    whole = hashlib.sha256()
    for entry in header.manifest.files:
        digest = hashlib.sha256()
        for chunk in _chunks(stream, entry.size):
            digest.update(chunk)
            whole.update(chunk)
        if digest.hexdigest() != entry.sha256:
            raise BundleError(
                f"{entry.path} does not match its signed hash (tampered or corrupt bundle)"
            )
    if whole.hexdigest() != header.manifest.payload_sha256:
        raise BundleError("payload does not match its signed hash (tampered or corrupt bundle)")


def file_chunks(stream: BinaryIO, header: BundleHeader, path: str) -> Iterator[bytes]:
    """The bytes of one payload file, in chunks."""
    offset = header.payload_offset
    for entry in header.manifest.files:
        if entry.path == path:
            stream.seek(offset)
            yield from _chunks(stream, entry.size)
            return
        offset += entry.size
    raise BundleError(f"the bundle carries no {path}")


def inspect_bundle(data: bytes, now_s: float | None = None) -> BundleInfo:
    """A bundle checked on its own terms: its first root signed by itself, the chain, the
    manifest's signature, expiry and payload hashes (a device also checks it against the root
    it was provisioned with)."""
    now_s = time.time() if now_s is None else now_s
    stream = io.BytesIO(data)
    header = read_header(stream, len(data))
    try:
        first = parse_root(header.roots[0])
        first.signed_by(first.envelope, "root")
    except MetadataError as error:
        raise BundleError(f"signature check failed: {error}") from None
    _, signers = verify_signatures(header, first, now_s)
    manifest = header.manifest
    if manifest.expires_s <= now_s:
        raise BundleError(f"bundle expired at {manifest.signed['expires']}")
    check_payload(stream, header)
    return BundleInfo(manifest, len(data), hashlib.sha256(data).hexdigest(),
                      tuple(sorted(signers)))  # fmt: skip


def _chunks(stream: BinaryIO, size: int) -> Iterator[bytes]:
    left = size
    while left > 0:
        chunk = stream.read(min(CHUNK_BYTES, left))
        if not chunk:
            raise BundleError("bundle truncated inside its payload")
        left -= len(chunk)
        yield chunk
