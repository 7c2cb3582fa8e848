"""Signing keys, root metadata and bundles for the OTA tests."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cellwarden.edge.ota_provision import provision
from cellwarden.edge.ota_verify import DeviceIdentity
from cellwarden.ota.bundle import build_bundle
from cellwarden.ota.keys import SigningKey
from cellwarden.ota.root import make_root

HARDWARE = "cw-bms1810"
DAY_S = 86400.0
GOOD_CONFIG = b"""# a firmware configuration: balancing starts earlier, precharge may take longer
[bms.balancing]
threshold_soc_pct = 1.5

[bms.power_path]
precharge_timeout_s = 4.0
"""


@dataclass
class Signer:
    """A root key, a targets key and the root metadata naming them (version 1)."""

    root_key: SigningKey = field(default_factory=SigningKey.generate)
    targets_key: SigningKey = field(default_factory=SigningKey.generate)
    roots: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.roots:
            self.roots.append(
                make_root(
                    1,
                    time.time() + 365 * DAY_S,
                    [self.root_key.public],
                    [self.targets_key.public],
                    [self.root_key],
                )
            )


def firmware_image(version: str, size: int = 48 * 1024) -> bytes:
    """A firmware image of ``size`` bytes, different for every version."""
    seed = sum(ord(c) * 31**i for i, c in enumerate(version)) % 2**32
    return np.random.default_rng(seed).bytes(size)


def make_bundle(version: str = "1.1.0", signer: Signer | None = None, **overrides: Any) -> bytes:
    """A valid bundle of a firmware image and ``GOOD_CONFIG``; keyword arguments replace
    ``build_bundle``'s (``files``, ``hardware``, ``architecture``, ``expires_s``, ``keys``,
    ``roots``, ``min_version``)."""
    signer = signer or DEFAULT_SIGNER
    arguments: dict[str, Any] = {
        "files": {"firmware.bin": firmware_image(version), "config.toml": GOOD_CONFIG},
        "version": version,
        "hardware": [HARDWARE],
        "architecture": "standalone",
        "expires_s": time.time() + 30 * DAY_S,
        "keys": [signer.targets_key],
        "roots": signer.roots,
    }
    arguments.update(overrides)
    return build_bundle(**arguments)


DEFAULT_SIGNER = Signer()


def provision_device(
    directory: Path, signer: Signer | None = None, version: str = "1.0.0",
    architecture: str = "standalone", device_id: str = "dev-1",
) -> Path:  # fmt: skip
    """A device directory with slot A at ``version`` trusting ``signer``'s first root."""
    signer = signer or DEFAULT_SIGNER
    provision(directory, device_id, DeviceIdentity(HARDWARE, architecture), signer.roots[0],
              version, {"firmware.bin": firmware_image(version)}, time.time())  # fmt: skip
    return directory


def tree_digest(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder`` by relative path (to show nothing changed)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file()}  # fmt: skip
