"""Factory provisioning of a device directory: identity, trusted root, slot A with the first
firmware and configuration, the boot environment pointing at it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cellwarden.edge.flash_files import read_json, write_atomic
from cellwarden.edge.ota_agent import ROOT_PATH
from cellwarden.edge.ota_firmware_config import parse_firmware_config
from cellwarden.edge.ota_slots import BootEnv, SlotStore
from cellwarden.edge.ota_verify import DeviceIdentity
from cellwarden.ota.manifest import PAYLOAD_KINDS, parse_version
from cellwarden.ota.root import parse_root

DEVICE_PATH = Path("device.json")


class ProvisionError(ValueError):
    """A device directory that cannot be provisioned; the message names why."""


def provision(
    directory: Path,
    device_id: str,
    identity: DeviceIdentity,
    root: dict[str, Any],
    version: str,
    files: Mapping[str, bytes],
    now_s: float,
) -> None:
    """Write a new device directory; refuses one that already holds a device."""
    if (directory / DEVICE_PATH).exists():
        raise ProvisionError(f"{directory} already holds a device (device.json); not touched")
    try:
        parse_version(version)
        parse_root(root)
        if "config.toml" in files:
            parse_firmware_config(files["config.toml"])
    except ValueError as error:
        raise ProvisionError(str(error)) from None
    unknown = sorted(set(files) - set(PAYLOAD_KINDS))
    if unknown:
        raise ProvisionError(f"slot files are {', '.join(PAYLOAD_KINDS)}; not {', '.join(unknown)}")
    slots = SlotStore(directory)
    write_atomic(directory / ROOT_PATH, json.dumps(root).encode())
    slots.invalidate("a")
    entries = []
    for name, data in files.items():
        entries.append({"path": name, "size": len(data),
                        "sha256": slots.write_file("a", name, [data])})  # fmt: skip
    slots.write_seal("a", {"version": version, "files": entries, "sealed_s": now_s,
                           "manifest": None})  # fmt: skip
    slots.invalidate("b")
    slots.set_env(BootEnv("a"))
    write_atomic(directory / DEVICE_PATH, json.dumps({
        "device_id": device_id, "hardware": identity.hardware,
        "architecture": identity.architecture,
    }).encode())  # fmt: skip


def device_identity(directory: Path) -> tuple[str, DeviceIdentity]:
    """The device id and identity a provisioned directory holds."""
    document = read_json(directory / DEVICE_PATH)
    if document is None:
        raise ProvisionError(f"{directory} holds no provisioned device (device.json)")
    try:
        return str(document["device_id"]), DeviceIdentity(
            str(document["hardware"]), str(document["architecture"])
        )
    except KeyError as error:
        raise ProvisionError(f"{directory / DEVICE_PATH} lacks {error}") from None
