"""A/B slots and the boot environment on the device's flash, and the bootloader's choice.

Layout under the device directory (docs/ota.md)::

    boot/env.json          {"primary": "a", "trial": null, "trial_attempts": 0}
    slots/a/, slots/b/     payload files and slot.json, written last (the slot's seal)

A slot is bootable when its seal is present and every file matches the seal's hashes (the
bootloader's image check). Every file that decides a boot is replaced atomically (write a
temporary file, fsync, rename, fsync the folder), so a power cut at any instant leaves the old
or the new content, never a mix. The bootloader boots the trial slot once; if that boot does
not confirm its health (the agent clears the trial), the next boot returns to the primary.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellwarden.edge.flash_files import read_json, sync_folder, write_atomic

SLOTS = ("a", "b")
SEAL = "slot.json"
ENV_PATH = Path("boot") / "env.json"


class NoBootableSlotError(RuntimeError):
    """Neither slot passes the image check: the board cannot start (never expected)."""


@dataclass(frozen=True)
class BootEnv:
    primary: str
    trial: str | None = None
    trial_attempts: int = 0

    def as_json(self) -> bytes:
        return json.dumps(self.__dict__, sort_keys=True).encode()


@dataclass(frozen=True)
class BootDecision:
    """Which slot the bootloader started and why."""

    slot: str
    trial: bool
    rolled_back: bool
    reason: str


class SlotStore:
    """The two slots and the boot environment of one device directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, slot: str) -> Path:
        return self.directory / "slots" / slot

    @staticmethod
    def other(slot: str) -> str:
        return SLOTS[1 - SLOTS.index(slot)]

    # --- the boot environment --------------------------------------------------------------
    def env(self) -> BootEnv:
        document = read_json(self.directory / ENV_PATH) or {}
        primary = document.get("primary")
        trial = document.get("trial")
        attempts = document.get("trial_attempts")
        if primary not in SLOTS:
            return BootEnv(primary=self._newest_bootable())
        if trial not in SLOTS or trial == primary or not isinstance(attempts, int):
            trial, attempts = None, 0
        return BootEnv(primary, trial, attempts)

    def set_env(self, env: BootEnv) -> None:
        write_atomic(self.directory / ENV_PATH, env.as_json())

    # --- slots ------------------------------------------------------------------------------
    def seal(self, slot: str) -> dict[str, Any] | None:
        return read_json(self.path(slot) / SEAL)

    def version(self, slot: str) -> str | None:
        seal = self.seal(slot)
        return seal.get("version") if seal else None

    def bootable(self, slot: str) -> str | None:
        """None when ``slot`` passes the image check, else why not."""
        seal = self.seal(slot)
        if seal is None or not isinstance(seal.get("files"), list):
            return f"slot {slot} has no seal"
        for entry in seal["files"]:
            path = self.path(slot) / str(entry.get("path"))
            try:
                digest = file_sha256(path)
            except OSError:
                return f"slot {slot}: {entry.get('path')} is missing"
            if digest != entry.get("sha256"):
                return f"slot {slot}: {entry.get('path')} does not match its seal"
        return None

    def invalidate(self, slot: str) -> None:
        """Make ``slot`` unbootable (seal first), then empty it."""
        folder = self.path(slot)
        seal = folder / SEAL
        if seal.exists():
            seal.unlink()
            sync_folder(folder)
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        sync_folder(folder.parent)

    def write_file(self, slot: str, name: str, chunks: Iterable[bytes]) -> str:
        """Write a payload file into ``slot`` and fsync it; its SHA-256."""
        digest = hashlib.sha256()
        with (self.path(slot) / name).open("wb") as handle:
            for chunk in chunks:
                handle.write(chunk)
                digest.update(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        return digest.hexdigest()

    def write_seal(self, slot: str, seal: dict[str, Any]) -> None:
        write_atomic(self.path(slot) / SEAL, json.dumps(seal, sort_keys=True).encode())

    # --- the bootloader ---------------------------------------------------------------------
    def boot(self) -> BootDecision:
        """Pick the slot to start, as the bootloader does at reset (and record the attempt)."""
        env = self.env()
        if env.trial is not None:
            problem = self.bootable(env.trial)
            if env.trial_attempts > 0 and problem is None:
                self.set_env(BootEnv(env.primary, env.trial, env.trial_attempts - 1))
                return BootDecision(env.trial, True, False, f"trial boot of slot {env.trial}")
            self.set_env(BootEnv(env.primary))
            why = problem or f"slot {env.trial} did not confirm its trial boot"
            return self._primary(BootEnv(env.primary), rolled_back=True, reason=why)
        return self._primary(env, rolled_back=False, reason="")

    def _primary(self, env: BootEnv, rolled_back: bool, reason: str) -> BootDecision:
        problem = self.bootable(env.primary)
        if problem is None:
            return BootDecision(env.primary, False, rolled_back, reason or "primary slot")
        other = self.other(env.primary)
        if self.bootable(other) is not None:
            raise NoBootableSlotError(f"{problem}; {self.bootable(other)}")
        self.set_env(BootEnv(other))
        return BootDecision(other, False, True, f"{problem}: fell back to slot {other}")

    def _newest_bootable(self) -> str:
        bootable = [slot for slot in SLOTS if self.bootable(slot) is None]
        if not bootable:
            return SLOTS[0]
        return max(bootable, key=lambda slot: float((self.seal(slot) or {}).get("sealed_s", 0)))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 16):
            digest.update(chunk)
    return digest.hexdigest()
