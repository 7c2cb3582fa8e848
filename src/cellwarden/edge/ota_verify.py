"""A device's checks of a downloaded bundle before anything is written to a slot.

In order: the header and its length (truncation), the root chain from the device's trusted
root and the manifest's signature (tampering, unknown or revoked keys), expiry on the device's
clock, the target board and architecture, the version against what runs and against the
highest version ever confirmed (downgrades), the minimum version, the payload hashes and the
configuration's validity. The first failure is a BundleError naming it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cellwarden.edge.ota_firmware_config import parse_firmware_config
from cellwarden.model.errors import ConfigError
from cellwarden.ota.bundle import (
    BundleError,
    BundleHeader,
    check_payload,
    file_chunks,
    read_header,
    verify_signatures,
)
from cellwarden.ota.manifest import parse_version
from cellwarden.ota.root import Root
from cellwarden.ota.signed import format_time


@dataclass(frozen=True)
class DeviceIdentity:
    """What a bundle must target: the board's name and the BMS architecture it runs."""

    hardware: str
    architecture: str


@dataclass(frozen=True)
class VerifiedBundle:
    header: BundleHeader
    root: Root


def verify_bundle(
    path: Path,
    trusted: Root,
    identity: DeviceIdentity,
    running_version: str,
    confirmed_version: str,
    now_s: float,
) -> VerifiedBundle:
    """The bundle at ``path`` checked for this device; BundleError with the reason."""
    with path.open("rb") as stream:
        header = read_header(stream, path.stat().st_size)
        root, _ = verify_signatures(header, trusted, now_s)
        manifest = header.manifest
        if manifest.expires_s <= now_s:
            raise BundleError(
                f"bundle expired at {manifest.signed['expires']} (device clock "
                f"{format_time(now_s)})"
            )
        if identity.hardware not in manifest.hardware:
            raise BundleError(
                f"wrong target: bundle is for {', '.join(manifest.hardware)}, this board is "
                f"{identity.hardware}"
            )
        if manifest.architecture != identity.architecture:
            raise BundleError(
                f"wrong target: bundle is for a {manifest.architecture} BMS, this one is "
                f"{identity.architecture}"
            )
        floor = max(running_version, confirmed_version, key=parse_version)
        if parse_version(manifest.version) <= parse_version(floor):
            raise BundleError(
                f"downgrade refused: bundle version {manifest.version} is not newer than "
                f"{floor} (running {running_version}, highest confirmed {confirmed_version})"
            )
        if manifest.min_version and parse_version(running_version) < parse_version(
            manifest.min_version
        ):
            raise BundleError(
                f"bundle needs at least version {manifest.min_version} installed; this board "
                f"runs {running_version}"
            )
        check_payload(stream, header)
        if any(entry.path == "config.toml" for entry in manifest.files):
            config = b"".join(file_chunks(stream, header, "config.toml"))
            try:
                parse_firmware_config(config)
            except ConfigError as error:
                raise BundleError(f"configuration refused: {error}") from None
    return VerifiedBundle(header, root)
