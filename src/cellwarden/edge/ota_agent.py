"""The device's update agent: fetch, verify, install into the inactive slot, switch at a safe
moment, check the trial boot's health, then confirm it or roll back.

Runs as a periodic task beside the BMS (``tick``) and never blocks it: a download advances a
few chunks per tick within the link's budget. Every phase is written to ``ota/state.json``
before the step it names, so that after a power cut ``on_boot`` finds out where the update
stood and what the bootloader did, and carries on or reports the outcome. Reports to the cloud
wait in an outbox in the same file until the server has taken them.

Phases: idle → downloading → downloaded → installing → installed → switching → trial →
(confirmed | rolling-back) → idle. docs/ota.md draws the machine.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cellwarden.edge.cellular_link import CellularLink
from cellwarden.edge.flash_files import read_json, write_atomic
from cellwarden.edge.ota_client import DeploymentClosedError, Offer, UpdateServer, UpdateServerError
from cellwarden.edge.ota_health import BmsProbe, check_health
from cellwarden.edge.ota_slots import BootDecision, BootEnv, SlotStore, file_sha256
from cellwarden.edge.ota_verify import DeviceIdentity, verify_bundle
from cellwarden.ota.bundle import BundleError, file_chunks
from cellwarden.ota.manifest import parse_version
from cellwarden.ota.root import Root, parse_root
from cellwarden.ota.signed import MetadataError

STATE_PATH = Path("ota") / "state.json"
DOWNLOAD_PATH = Path("ota") / "bundle.part"
ROOT_PATH = Path("trust") / "root.json"
REPORT_EVERY_PCT = 10.0
TICK_S = 1.0  # the device runs ``tick`` this often
FETCH_RETRY_S = 30.0  # after a failed fetch (server away, campaign paused) wait this long


@dataclass(frozen=True)
class AgentSettings:
    """How the agent behaves (the scenario's or the command line's)."""

    poll_period_s: float = 3600.0
    download_bps: float = 250_000.0  # the link's downlink share for updates
    chunk_bytes: int = 16 * 1024
    idle_current_a: float = 1.0  # at or below this the pack counts as idle
    idle_hold_s: float = 60.0  # idle (or path open) this long before switching
    health_window_s: float = 30.0


class OtaAgent:
    """The update agent of one device directory (slots, trust, state)."""

    def __init__(
        self,
        directory: Path,
        identity: DeviceIdentity,
        probe: BmsProbe,
        *,
        server: UpdateServer | None = None,
        settings: AgentSettings = AgentSettings(),
        link: CellularLink | None = None,
        clock_epoch_s: float = 0.0,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """``clock_epoch_s`` is the Unix time of the device clock's zero (for expiry);
        ``on_step`` hears the name of every step as it completes (progress displays)."""
        self.directory = directory
        self.identity = identity
        self.probe = probe
        self.server = server
        self.settings = settings
        self.link = link
        self.clock_epoch_s = clock_epoch_s
        self.on_step = on_step or (lambda step: None)
        self.slots = SlotStore(directory)
        self.state: dict[str, Any] = read_json(directory / STATE_PATH) or {"phase": "idle"}
        self.state.setdefault("outbox", [])
        self.booted: BootDecision | None = None
        self.reboot_requested = False
        self._next_poll_s = 0.0
        self._idle_since_s: float | None = None
        self._trial_started_s = 0.0
        self._fetch_after_s = 0.0

    # --- facts ------------------------------------------------------------------------------
    @property
    def phase(self) -> str:
        return self.state["phase"]

    @property
    def running_version(self) -> str:
        assert self.booted is not None
        return self.slots.version(self.booted.slot) or "0"

    @property
    def confirmed_version(self) -> str:
        return self.state.get("confirmed_version") or self.running_version

    def trusted_root(self) -> Root:
        try:
            return parse_root(read_json(self.directory / ROOT_PATH))
        except MetadataError as error:
            raise BundleError(f"the device's trusted root is unusable: {error}") from None

    # --- after every reset ------------------------------------------------------------------
    def on_boot(self, decision: BootDecision, now_s: float) -> None:
        """Take up the update where a reset left it, given what the bootloader started."""
        self.booted = decision
        self.reboot_requested = False
        phase = self.phase
        if phase == "installing":  # cut during the install: the inactive slot is not sealed
            self._set(phase="downloaded")
        if phase not in ("switching", "trial", "rolling-back"):
            return
        if decision.slot == self.state["slot"]:
            if decision.trial:
                self._trial_started_s = now_s
                self._set(phase="trial")
                self.on_step("trial-booted")
            else:
                self._confirmed()  # the commit was written before the cut
        elif phase == "switching" and not decision.rolled_back:
            self._set(phase="installed")  # the switch was never written: try again
        else:
            reason = self.state.get("rollback_reason") or (
                f"rolled back by the bootloader: {decision.reason}"
            )
            self._finish(False, reason)

    # --- the periodic task ------------------------------------------------------------------
    def tick(self, now_s: float) -> None:
        self._flush()
        phase = self.phase
        if phase == "idle":
            self._poll(now_s)
        elif phase == "downloading":
            self._download(now_s)
        elif phase == "downloaded":
            self._install(now_s)
        elif phase == "installed":
            self._maybe_switch(now_s)
        elif phase == "trial" and now_s - self._trial_started_s >= self.settings.health_window_s:
            self._judge_trial()
        self._flush()

    def install_file(self, bundle: Path, now_s: float) -> None:
        """Verify and install a bundle from local storage (a service tool or USB stick); the
        switch follows at the next safe moment. BundleError when it is refused."""
        if self.phase not in ("idle", "installed"):
            raise BundleError(f"an update is already under way (phase {self.phase})")
        target = self.directory / DOWNLOAD_PATH
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(bundle, target)
        self._set(phase="downloaded", deployment=None)
        self._install(now_s)
        if self.phase != "installed":
            raise BundleError(self.state["last_result"]["detail"].removeprefix("refused: "))

    # --- phases -----------------------------------------------------------------------------
    def _poll(self, now_s: float) -> None:
        if self.server is None or now_s < self._next_poll_s or not self._link_up(now_s):
            return
        self._next_poll_s = now_s + self.settings.poll_period_s
        try:
            offer = self.server.next_offer(self.running_version)
        except UpdateServerError:
            return
        if offer is not None:
            (self.directory / DOWNLOAD_PATH).unlink(missing_ok=True)
            self._set(phase="downloading", deployment=offer.as_json(), reported_pct=0.0)
            self._report("downloading", 0.0, f"version {offer.version}, {offer.size} bytes")

    def _download(self, now_s: float) -> None:
        if now_s < self._fetch_after_s:
            return
        offer = Offer(**self.state["deployment"])
        path = self.directory / DOWNLOAD_PATH
        have = path.stat().st_size if path.exists() else 0  # resume where the file ends
        budget = max(self.settings.chunk_bytes,
                     int(self.settings.download_bps * TICK_S / 8))  # fmt: skip
        while have < offer.size and budget > 0 and self._link_up(now_s):
            length = min(self.settings.chunk_bytes, offer.size - have, budget)
            try:
                chunk = self.server.fetch(offer.url, have, length) if self.server else b""
            except UpdateServerError:
                self._fetch_after_s = now_s + FETCH_RETRY_S
                return
            if not chunk or len(chunk) > length:
                return
            with path.open("ab") as handle:
                handle.write(chunk)
            have += len(chunk)
            budget -= len(chunk)
            if self.link is not None:
                self.link.count(len(chunk), "ota")
            self.on_step("download-chunk")
        percent = 100.0 * have / max(offer.size, 1)
        if percent - self.state.get("reported_pct", 0.0) >= REPORT_EVERY_PCT and have < offer.size:
            self._set(reported_pct=percent)
            self._report("downloading", percent)
        if have >= offer.size:
            self._set(phase="downloaded")
            self._report("downloaded", 100.0)
            self.on_step("downloaded")

    def _install(self, now_s: float) -> None:
        path = self.directory / DOWNLOAD_PATH
        offer = self.state.get("deployment")
        if offer is not None and _digest(path) != offer["sha256"]:
            self._retry_download(offer)
            return
        try:
            trusted = self.trusted_root()
            verified = verify_bundle(
                path, trusted, self.identity, self.running_version, self.confirmed_version,
                self.clock_epoch_s + now_s,
            )  # fmt: skip
        except (BundleError, OSError) as error:
            self._finish(False, f"refused: {error}")
            return
        if verified.root.version > trusted.version:
            write_atomic(self.directory / ROOT_PATH,
                         json.dumps(verified.root.envelope).encode())  # fmt: skip
        self.on_step("verified")
        active = self.booted.slot if self.booted else self.slots.env().primary
        target = self.slots.other(active)
        manifest = verified.header.manifest
        self._set(phase="installing", slot=target, version=manifest.version)
        self._report("installing", None, f"into slot {target}")
        self.slots.set_env(BootEnv(active))  # nothing may boot the slot being written
        self.slots.invalidate(target)
        self.on_step("slot-invalidated")
        files = []
        with path.open("rb") as stream:
            for entry in manifest.files:
                chunks = self._stepped(file_chunks(stream, verified.header, entry.path))
                digest = self.slots.write_file(target, entry.path, chunks)
                if digest != entry.sha256:
                    self.slots.invalidate(target)
                    self._finish(False, f"refused: {entry.path} changed while it was installed")
                    return
                files.append({"path": entry.path, "size": entry.size, "sha256": digest})
                self.on_step("file-written")
        self.slots.write_seal(target, {
            "version": manifest.version, "files": files, "sealed_s": self.clock_epoch_s + now_s,
            "manifest": manifest.signed,
        })  # fmt: skip
        self.on_step("slot-sealed")
        self._set(phase="installed")
        self._report("installed", None, f"slot {target} holds version {manifest.version}")

    def _retry_download(self, offer: dict[str, Any]) -> None:
        """A download that is not the bundle the cloud offered (corrupted on the way, or
        changed): fetched once more from the start, then given up."""
        (self.directory / DOWNLOAD_PATH).unlink(missing_ok=True)
        if self.state.get("download_retried"):
            self._finish(False, "download does not match the offered sha256 (twice)")
            return
        self._set(phase="downloading", download_retried=True, reported_pct=0.0)
        self._report("downloading", 0.0, "download did not match its sha256: fetching again")

    def _stepped(self, chunks: Iterator[bytes]) -> Iterator[bytes]:
        for chunk in chunks:
            yield chunk
            self.on_step("file-chunk")

    def _maybe_switch(self, now_s: float) -> None:
        """Switch slots once the pack has been idle (or its path open) long enough, with no
        protection trip active; never while it charges or discharges above the threshold."""
        probe = self.probe
        idle = not probe.path_closed() or abs(probe.current_a()) <= self.settings.idle_current_a
        if not idle or probe.trips():
            self._idle_since_s = None
            return
        if self._idle_since_s is None:
            self._idle_since_s = now_s
        if now_s - self._idle_since_s < self.settings.idle_hold_s:
            return
        active = self.slots.other(self.state["slot"])
        self._set(phase="switching")
        self.slots.set_env(BootEnv(active, self.state["slot"], trial_attempts=1))
        self.on_step("boot-env-written")
        self._report("rebooting", None, f"to slot {self.state['slot']}")
        self.reboot_requested = True

    def _judge_trial(self) -> None:
        result = check_health(self.probe, self.settings.health_window_s)
        if result.passed:
            self.slots.set_env(BootEnv(self.state["slot"]))
            self.on_step("committed")
            self._confirmed()
            return
        reason = f"rolled back: health check failed: {result.summary}"
        self._set(phase="rolling-back", rollback_reason=reason)
        self.slots.set_env(BootEnv(self.slots.other(self.state["slot"])))
        self.on_step("rolled-back")
        self.reboot_requested = True

    def _confirmed(self) -> None:
        version = self.state["version"]
        confirmed = max(version, self.confirmed_version, key=parse_version)
        self._set(confirmed_version=confirmed)
        self._finish(True, f"running version {version} in slot {self.state['slot']}")

    def _finish(self, ok: bool, detail: str) -> None:
        self._report("success" if ok else "failure", None, detail)
        (self.directory / DOWNLOAD_PATH).unlink(missing_ok=True)
        self._set(phase="idle", deployment=None, rollback_reason=None, download_retried=False,
                  last_result={"ok": ok, "detail": detail})  # fmt: skip

    # --- state and reports ------------------------------------------------------------------
    def _set(self, **changes: Any) -> None:
        self.state.update(changes)
        write_atomic(self.directory / STATE_PATH, json.dumps(self.state).encode())

    def _report(self, state: str, progress_pct: float | None, detail: str = "") -> None:
        deployment = self.state.get("deployment")
        if deployment is None:
            return
        version = self.running_version if self.booted else None
        self.state["outbox"].append({"deployment_id": deployment["deployment_id"],
                                     "state": state, "progress_pct": progress_pct,
                                     "detail": detail, "version": version})  # fmt: skip
        self._set()

    def _flush(self) -> None:
        if self.server is None or not self.state["outbox"]:
            return
        while self.state["outbox"]:
            entry = self.state["outbox"][0]
            try:
                self.server.report(**entry)
            except DeploymentClosedError:
                pass
            except UpdateServerError:
                break
            self.state["outbox"].pop(0)
            self._set()

    def _link_up(self, now_s: float) -> bool:
        return self.link is None or self.link.up(now_s)


def _digest(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
