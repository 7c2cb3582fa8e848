"""The bundle manifest: what a bundle installs, on which boards, from which version, until when.

Signed by the ``targets`` role of the root metadata (docs/ota.md lists every field).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cellwarden.model.architecture import Architecture
from cellwarden.ota.signed import MetadataError, envelope_of, parse_time

MANIFEST_TYPE = "cellwarden-bundle"
SPEC_VERSION = 1
PAYLOAD_KINDS = {"firmware.bin": "firmware", "config.toml": "config"}
VERSION_PATTERN = re.compile(r"(0|[1-9][0-9]{0,8})(\.(0|[1-9][0-9]{0,8})){0,3}")
HARDWARE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


def parse_version(text: Any) -> tuple[int, ...]:
    """``"1.10.2"`` as ``(1, 10, 2)`` for comparison; ValueError for anything else."""
    if not isinstance(text, str) or not VERSION_PATTERN.fullmatch(text):
        raise ValueError(f"version {str(text)[:40]!r} is not 1 to 4 dot-separated numbers")
    parts = tuple(int(part) for part in text.split("."))
    return parts + (0,) * (4 - len(parts))


@dataclass(frozen=True)
class PayloadFile:
    path: str
    kind: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    """A manifest whose structure has been checked (its signature is the caller's to check)."""

    envelope: dict[str, Any]
    version: str
    min_version: str | None
    hardware: tuple[str, ...]
    architecture: str
    created_s: float
    expires_s: float
    files: tuple[PayloadFile, ...]
    payload_size: int
    payload_sha256: str
    roots_sha256: str

    @property
    def signed(self) -> dict[str, Any]:
        return self.envelope["signed"]


def parse_manifest(document: Any) -> Manifest:
    """The structure of a manifest envelope; MetadataError naming the first problem."""
    signed = envelope_of(document, "the manifest", MANIFEST_TYPE)["signed"]
    if signed.get("spec_version") != SPEC_VERSION:
        raise MetadataError(
            f"manifest spec_version {signed.get('spec_version')!r} is not {SPEC_VERSION}"
        )
    version = _version(signed.get("version"), "version")
    minimum = signed.get("min_version")
    minimum = None if minimum is None else _version(minimum, "min_version")
    hardware = signed.get("hardware")
    names_ok = isinstance(hardware, list) and all(
        isinstance(name, str) and HARDWARE_PATTERN.fullmatch(name) for name in hardware
    )
    if not names_ok or not hardware:
        raise MetadataError("manifest 'hardware' must list 1+ board names ([A-Za-z0-9._-])")
    architecture = signed.get("architecture")
    if architecture not in {a.value for a in Architecture}:
        known = ", ".join(a.value for a in Architecture)
        raise MetadataError(f"manifest 'architecture' {architecture!r} is not one of {known}")
    files = _files(signed.get("files"))
    size = signed.get("payload_size")
    if size != sum(f.size for f in files):
        raise MetadataError("manifest 'payload_size' is not the sum of its files' sizes")
    for field in ("payload_sha256", "roots_sha256"):
        if not isinstance(signed.get(field), str) or not SHA256_PATTERN.fullmatch(signed[field]):
            raise MetadataError(f"manifest '{field}' must be 64 lower-case hex digits")
    return Manifest(
        envelope=document,
        version=version,
        min_version=minimum,
        hardware=tuple(hardware),
        architecture=architecture,
        created_s=parse_time(signed.get("created"), "manifest 'created'"),
        expires_s=parse_time(signed.get("expires"), "manifest 'expires'"),
        files=files,
        payload_size=size,
        payload_sha256=signed["payload_sha256"],
        roots_sha256=signed["roots_sha256"],
    )


def _version(text: Any, field: str) -> str:
    try:
        parse_version(text)
    except ValueError as error:
        raise MetadataError(f"manifest '{field}': {error}") from None
    return text


def _files(entries: Any) -> tuple[PayloadFile, ...]:
    if not isinstance(entries, list) or not entries:
        raise MetadataError("manifest 'files' must list at least one payload file")
    files, seen = [], set()
    for index, entry in enumerate(entries):
        where = f"manifest files[{index}]"
        if not isinstance(entry, dict):
            raise MetadataError(f"{where} must be an object")
        path, size, digest = entry.get("path"), entry.get("size"), entry.get("sha256")
        if path not in PAYLOAD_KINDS or path in seen:
            raise MetadataError(
                f"{where}: path {str(path)[:40]!r} is not one of {', '.join(PAYLOAD_KINDS)} "
                "(each at most once)"
            )
        if entry.get("kind") != PAYLOAD_KINDS[path]:
            raise MetadataError(f"{where}: kind of {path} must be {PAYLOAD_KINDS[path]!r}")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise MetadataError(f"{where}: size must be a non-negative integer")
        if not isinstance(digest, str) or not SHA256_PATTERN.fullmatch(digest):
            raise MetadataError(f"{where}: sha256 must be 64 lower-case hex digits")
        seen.add(path)
        files.append(PayloadFile(path, PAYLOAD_KINDS[path], size, digest))
    return tuple(files)
