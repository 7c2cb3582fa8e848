"""Over-the-air updates in the store: bundles, campaigns and their deployments, device tokens.

The rollout rules are ``cloud.ota.rollout``'s; this module applies them whenever a device asks
for an update or reports, inside the same transaction (the campaign's row is written first,
so concurrent reports of one campaign are judged one after another).
"""

from __future__ import annotations

import json
import math
import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cellwarden.cloud.ota.rollout import (
    CANCELLED,
    COMPLETED,
    DEVICE_STATES,
    FINAL_STATES,
    PAUSED,
    RUNNING,
    WaveCounts,
    judge,
    wave_sizes,
)
from cellwarden.cloud.store.database import Database
from cellwarden.cloud.store.registry import token_digest
from cellwarden.ota.bundle import BundleInfo
from cellwarden.ota.manifest import parse_version

MAX_DETAIL_CHARS = 500
MAX_NAME_CHARS = 128
MAX_WAVES = 20
MAX_WAVE_TIMEOUT_S = 365 * 86400.0
LOOKUP_CHUNK = 500  # device ids per query (the engines bound a statement's parameters)
ACTIONS = {"pause": (RUNNING, PAUSED), "resume": (PAUSED, RUNNING), "cancel": None}
CAMPAIGN_COLUMNS = (
    "id",
    "bundle_id",
    "name",
    "state",
    "canary_pct",
    "wave_pcts",
    "failure_threshold_pct",
    "wave_timeout_s",
    "released_waves",
    "wave_released_s",
    "reason",
    "created_s",
    "created_by",
    "updated_s",
)
DEPLOYMENT_COLUMNS = (
    "id",
    "device_id",
    "wave",
    "state",
    "progress_pct",
    "detail",
    "from_version",
    "version",
    "bytes_served",
    "offered_s",
    "updated_s",
    "finished_s",
)


class OtaError(ValueError):
    """A request the store refuses (the message names why): 422."""


class OtaConflictError(OtaError):
    """A request that contradicts what is stored (a final deployment, a duplicate): 409."""


@dataclass(frozen=True)
class DeviceRef:
    pack_id: int
    org_id: int
    device_id: str


@dataclass(frozen=True)
class CampaignSpec:
    """A new campaign: its bundle, devices and rollout parameters."""

    bundle_id: int
    name: str
    device_ids: list[str]
    canary_pct: float = 10.0
    wave_pcts: tuple[float, ...] = (30.0, 60.0)
    failure_threshold_pct: float = 20.0
    wave_timeout_s: float = 86400.0


class OtaStore:
    def __init__(self, db: Database, clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.clock = clock

    # --- device tokens ------------------------------------------------------------------------
    def issue_device_token(self, device_id: str) -> str:
        """A new update token for a registered device (its previous one stops working)."""
        rows = self.db.query("SELECT id FROM packs WHERE device_id = ?", (device_id,))
        if not rows:
            raise OtaError(f"no pack {device_id!r}")
        token = secrets.token_urlsafe(24)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO ota_devices (pack_id, token_sha256, issued_s) VALUES (?, ?, ?) "
                "ON CONFLICT (pack_id) DO UPDATE SET token_sha256 = excluded.token_sha256, "
                "issued_s = excluded.issued_s",
                (rows[0][0], token_digest(token), self.clock()),
            )
        return token

    def device_for_token(self, token: str) -> DeviceRef | None:
        rows = self.db.query(
            "SELECT p.id, p.org_id, p.device_id FROM ota_devices d JOIN packs p "
            "ON p.id = d.pack_id WHERE d.token_sha256 = ?",
            (token_digest(token),),
        )
        return DeviceRef(*rows[0]) if rows else None

    # --- bundles ------------------------------------------------------------------------------
    def add_bundle(self, org_id: int, data: bytes, info: BundleInfo, user: str) -> dict[str, Any]:
        manifest = info.manifest
        existing = self.db.query(
            "SELECT id FROM ota_bundles WHERE org_id = ? AND sha256 = ?", (org_id, info.sha256)
        )
        if existing:
            raise OtaConflictError(f"this bundle is stored already as bundle {existing[0][0]}")
        with self.db.transaction():
            bundle_id = self.db.execute(
                "INSERT INTO ota_bundles (org_id, version, hardware, architecture, min_version, "
                "expires, manifest, size, sha256, body, uploaded_s, uploaded_by) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (
                    org_id,
                    manifest.version,
                    json.dumps(list(manifest.hardware)),
                    manifest.architecture,
                    manifest.min_version,
                    manifest.signed["expires"],
                    json.dumps(manifest.envelope),
                    info.size,
                    info.sha256,
                    data,
                    self.clock(),
                    user,
                ),
            ).fetchone()[0]
        return self.bundle(org_id, int(bundle_id)) or {}

    def bundles(self, org_id: int) -> list[dict[str, Any]]:
        return [
            _bundle(row)
            for row in self.db.query(
                f"SELECT {BUNDLE_SELECT} FROM ota_bundles WHERE org_id = ? ORDER BY id", (org_id,)
            )
        ]

    def bundle(self, org_id: int, bundle_id: int) -> dict[str, Any] | None:
        rows = self.db.query(
            f"SELECT {BUNDLE_SELECT} FROM ota_bundles WHERE org_id = ? AND id = ?",
            (org_id, bundle_id),
        )
        return _bundle(rows[0]) if rows else None

    def bundle_bytes(self, bundle_id: int, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (exclusive) of a bundle."""
        rows = self.db.query("SELECT substr(body, ?, ?) FROM ota_bundles WHERE id = ?",
                             (start + 1, end - start, bundle_id))  # fmt: skip
        return bytes(rows[0][0]) if rows else b""

    # --- campaigns ----------------------------------------------------------------------------
    def create_campaign(self, org_id: int, spec: CampaignSpec, user: str) -> int:
        _check_spec(spec)
        bundle = self.bundle(org_id, spec.bundle_id)
        if bundle is None:
            raise OtaError(f"no bundle {spec.bundle_id} in this organisation")
        if not spec.device_ids:
            raise OtaError("a campaign needs at least one device")
        wanted = sorted(set(spec.device_ids))
        packs: dict[str, int] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start : start + LOOKUP_CHUNK]
            marks = ", ".join("?" * len(chunk))
            packs.update(self.db.query(
                f"SELECT device_id, id FROM packs WHERE org_id = ? AND device_id IN ({marks})",
                (org_id, *chunk),
            ))  # fmt: skip
        missing = sorted(set(spec.device_ids) - set(packs))
        if missing:
            raise OtaError(f"no pack(s) {', '.join(missing[:5])} in this organisation")
        now = self.clock()
        with self.db.transaction():
            campaign_id = int(
                self.db.execute(
                    "INSERT INTO ota_campaigns (org_id, bundle_id, name, state, canary_pct, "
                    "wave_pcts, failure_threshold_pct, wave_timeout_s, released_waves, "
                    "wave_released_s, reason, accepted_failed, accepted_finished, created_s, "
                    "created_by, updated_s) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?, '', 0, 0, ?, ?, ?) RETURNING id",
                    (
                        org_id,
                        spec.bundle_id,
                        spec.name,
                        RUNNING,
                        spec.canary_pct,
                        json.dumps(list(spec.wave_pcts)),
                        spec.failure_threshold_pct,
                        spec.wave_timeout_s,
                        now,
                        now,
                        user,
                        now,
                    ),
                ).fetchone()[0]
            )
            order = sorted(packs)
            random.Random(campaign_id).shuffle(order)
            sizes = wave_sizes(len(order), spec.canary_pct, list(spec.wave_pcts))
            waves = [wave for wave, size in enumerate(sizes) for _ in range(size)]
            self.db.executemany(
                "INSERT INTO ota_deployments (campaign_id, pack_id, wave, state, detail, "
                "bytes_served, updated_s) VALUES (?, ?, ?, 'pending', '', 0, ?)",
                [
                    (campaign_id, packs[device], wave, now)
                    for device, wave in zip(order, waves, strict=True)
                ],
            )
        return campaign_id

    def fleet_devices(self, org_id: int, fleet_id: int) -> list[str]:
        """The device ids of a fleet's packs in the organisation (a campaign's devices)."""
        rows = self.db.query(
            "SELECT device_id FROM packs WHERE org_id = ? AND fleet_id = ?", (org_id, fleet_id)
        )
        return [row[0] for row in rows]

    def campaigns(self, org_id: int) -> list[dict[str, Any]]:
        """The organisation's campaigns, newest first, with their waves' counts."""
        running = self.db.query(
            "SELECT id FROM ota_campaigns WHERE org_id = ? AND state = ?", (org_id, RUNNING)
        )
        for (campaign_id,) in running:  # timeouts are seen when someone looks
            with self.db.transaction():
                self._judge(campaign_id)
        rows = self.db.query(
            f"SELECT {', '.join(CAMPAIGN_COLUMNS)} FROM ota_campaigns "
            "WHERE org_id = ? ORDER BY id DESC",
            (org_id,),
        )
        return [self._with_waves(_campaign(row)) for row in rows]

    def campaign(self, org_id: int, campaign_id: int) -> dict[str, Any] | None:
        """A campaign with its waves' counts and every device's deployment (``version``: the
        version the device last said it runs)."""
        if not self.db.query(
            "SELECT 1 FROM ota_campaigns WHERE org_id = ? AND id = ?", (org_id, campaign_id)
        ):
            return None
        with self.db.transaction():
            self._judge(campaign_id)  # timeouts are seen when someone looks
        rows = self.db.query(
            f"SELECT {', '.join(CAMPAIGN_COLUMNS)} FROM ota_campaigns WHERE org_id = ? AND id = ?",
            (org_id, campaign_id),
        )
        campaign = self._with_waves(_campaign(rows[0]))
        campaign["devices"] = [
            dict(zip(DEPLOYMENT_COLUMNS, row, strict=True))
            for row in self.db.query(
                "SELECT d.id, p.device_id, d.wave, d.state, d.progress_pct, d.detail, "
                "d.from_version, v.version, d.bytes_served, d.offered_s, d.updated_s, "
                "d.finished_s FROM ota_deployments d JOIN packs p ON p.id = d.pack_id "
                "LEFT JOIN ota_devices v ON v.pack_id = d.pack_id "
                "WHERE d.campaign_id = ? ORDER BY d.wave, p.device_id",
                (campaign_id,),
            )
        ]
        return campaign

    def control(self, org_id: int, campaign_id: int, action: str) -> dict[str, Any]:
        """Pause, resume or cancel a campaign."""
        with self.db.transaction():
            rows = self.db.execute(
                "UPDATE ota_campaigns SET updated_s = ? WHERE org_id = ? "
                "AND id = ? RETURNING state",
                (self.clock(), org_id, campaign_id),
            ).fetchall()
            if not rows:
                raise LookupError(f"no campaign {campaign_id}")
            state = rows[0][0]
            if state in (CANCELLED, COMPLETED):
                raise OtaConflictError(f"campaign {campaign_id} is {state}")
            allowed = ACTIONS[action]
            if allowed is not None and state != allowed[0]:
                raise OtaConflictError(f"campaign {campaign_id} is {state}: cannot {action}")
            target = CANCELLED if allowed is None else allowed[1]
            reason = f"{action}d by an operator" if action != "resume" else ""
            self.db.execute(
                "UPDATE ota_campaigns SET state = ?, reason = ? WHERE id = ?",
                (target, reason, campaign_id),
            )
            if target == RUNNING:
                self.db.execute(  # the failures so far are accepted; the wave's clock restarts
                    "UPDATE ota_campaigns SET accepted_failed = (SELECT COUNT(*) FROM "
                    "ota_deployments WHERE campaign_id = ? AND state = 'failure'), "
                    "accepted_finished = (SELECT COUNT(*) FROM ota_deployments WHERE "
                    "campaign_id = ? AND state IN ('success', 'failure')), "
                    "wave_released_s = ? WHERE id = ?",
                    (campaign_id, campaign_id, self.clock(), campaign_id),
                )
                self._judge(campaign_id)
        return self.campaign(org_id, campaign_id) or {}

    def device_history(self, pack_id: int) -> list[dict[str, Any]]:
        """Every deployment of a pack with its log, newest campaign first."""
        deployments = self.db.query(
            "SELECT d.id, d.campaign_id, b.version, d.state, d.detail, d.bytes_served "
            "FROM ota_deployments d JOIN ota_campaigns c ON c.id = d.campaign_id "
            "JOIN ota_bundles b ON b.id = c.bundle_id WHERE d.pack_id = ? ORDER BY d.id DESC",
            (pack_id,),
        )
        out = []
        for deployment_id, campaign_id, version, state, detail, served in deployments:
            log = self.db.query(
                "SELECT time_s, state, progress_pct, detail FROM "
                "ota_deployment_log WHERE deployment_id = ? ORDER BY id",
                (deployment_id,),
            )
            out.append(
                {
                    "deployment_id": deployment_id,
                    "campaign_id": campaign_id,
                    "version": version,
                    "state": state,
                    "detail": detail,
                    "bytes_served": served,
                    "log": [
                        dict(zip(("time_s", "state", "progress_pct", "detail"), row, strict=True))
                        for row in log
                    ],
                }
            )
        return out

    # --- the device API -------------------------------------------------------------------------
    def next_offer(self, device: DeviceRef, version: str) -> dict[str, Any] | None:
        """The deployment this device should install now (offered), or None."""
        now = self.clock()
        with self.db.transaction():
            self.db.execute(
                "UPDATE ota_devices SET version = COALESCE(?, version), seen_s = ? "
                "WHERE pack_id = ?",
                (version[:40] or None, now, device.pack_id),
            )
            candidates = self.db.execute(
                "SELECT d.id, d.campaign_id FROM ota_deployments d JOIN ota_campaigns c "
                "ON c.id = d.campaign_id WHERE d.pack_id = ? AND c.state = ? AND d.state NOT IN "
                "('success', 'failure') ORDER BY d.campaign_id",
                (device.pack_id, RUNNING),
            ).fetchall()
            for deployment_id, campaign_id in candidates:
                self._judge(campaign_id)
                row = self.db.execute(
                    "SELECT d.state, d.wave, c.released_waves, c.state, b.id, b.version, "
                    "b.size, b.sha256 FROM ota_deployments d JOIN ota_campaigns c ON "
                    "c.id = d.campaign_id JOIN ota_bundles b ON b.id = c.bundle_id "
                    "WHERE d.id = ?",
                    (deployment_id,),
                ).fetchone()
                state, wave, released, campaign_state, bundle_id, target, size, sha256 = row
                if campaign_state != RUNNING or wave >= released or state in FINAL_STATES:
                    continue
                if _same_version(version, target):
                    self._set_state(
                        deployment_id, "success", None, f"already at version {target}", now
                    )
                    self._judge(campaign_id)
                    continue
                if state == "pending":
                    self.db.execute(
                        "UPDATE ota_deployments SET state = 'offered', "
                        "offered_s = ?, from_version = ?, updated_s = ? WHERE id = ?",
                        (now, version[:40], now, deployment_id),
                    )
                    self._log(deployment_id, "offered", None, f"version {target}", now)
                return {
                    "deployment_id": deployment_id,
                    "campaign_id": campaign_id,
                    "bundle_id": bundle_id,
                    "version": target,
                    "size": size,
                    "sha256": sha256,
                    "url": f"/device/v1/ota/bundles/{bundle_id}",
                }
        return None

    def serving(self, device: DeviceRef, bundle_id: int) -> tuple[int, int] | None:
        """(deployment id, bundle size) when the device has an active deployment of it."""
        rows = self.db.query(
            "SELECT d.id, b.size FROM ota_deployments d JOIN ota_campaigns c ON "
            "c.id = d.campaign_id JOIN ota_bundles b ON b.id = c.bundle_id WHERE d.pack_id = ? "
            "AND b.id = ? AND c.state = ? AND d.state NOT IN ('pending', 'success', 'failure')",
            (device.pack_id, bundle_id, RUNNING),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def count_served(self, deployment_id: int, byte_count: int) -> None:
        with self.db.transaction():
            self.db.execute(
                "UPDATE ota_deployments SET bytes_served = bytes_served + ? WHERE id = ?",
                (byte_count, deployment_id),
            )

    def report(
        self,
        device: DeviceRef,
        deployment_id: int,
        state: str,
        progress_pct: float | None,
        detail: str,
        version: str | None,
    ) -> None:
        """A device's report on its deployment; LookupError for another device's,
        OtaConflictError once it is final, OtaError for an unknown state."""
        if state not in DEVICE_STATES:
            raise OtaError(f"unknown state {state[:40]!r} (known: {', '.join(DEVICE_STATES)})")
        now = self.clock()
        with self.db.transaction():
            if version:  # the device's row first, as in next_offer (one lock order)
                self.db.execute(
                    "UPDATE ota_devices SET version = ?, seen_s = ? WHERE pack_id = ?",
                    (version[:40], now, device.pack_id),
                )
            rows = self.db.execute(
                "SELECT campaign_id FROM ota_deployments WHERE id = ? AND pack_id = ?",
                (deployment_id, device.pack_id),
            ).fetchall()
            if not rows:
                raise LookupError(f"no deployment {deployment_id} for this device")
            campaign_id = rows[0][0]
            self._lock_campaign(campaign_id)  # then the campaign's, then its deployments'
            current = self.db.execute(
                "SELECT state FROM ota_deployments WHERE id = ?", (deployment_id,)
            ).fetchone()[0]
            if current in FINAL_STATES:
                raise OtaConflictError(f"deployment {deployment_id} is final ({current})")
            if current == "pending":
                raise OtaConflictError(f"deployment {deployment_id} has not been offered yet")
            self._set_state(deployment_id, state, progress_pct, detail[:MAX_DETAIL_CHARS], now)
            if state in FINAL_STATES:
                self._judge(campaign_id)

    # --- rules --------------------------------------------------------------------------------
    def _judge(self, campaign_id: int) -> None:
        """Apply the rollout rules to a campaign (inside the caller's transaction)."""
        now = self.clock()
        row = self._lock_campaign(campaign_id)
        if row is None or row[0] != RUNNING:
            return
        _, released, released_s, timeout_s, threshold_pct, *accepted = row
        if now - released_s >= timeout_s:
            late = self.db.execute(
                "SELECT id FROM ota_deployments WHERE campaign_id = ? AND wave < ? AND state "
                "NOT IN ('success', 'failure')",
                (campaign_id, released),
            ).fetchall()
            for (deployment_id,) in late:
                self._set_state(
                    deployment_id,
                    "failure",
                    None,
                    f"timed out: not finished {timeout_s:g} s after its wave's release",
                    now,
                )
        counts = self.db.execute(
            "SELECT wave, COUNT(*), SUM(CASE WHEN state = 'success' THEN 1 ELSE 0 END), "
            "SUM(CASE WHEN state = 'failure' THEN 1 ELSE 0 END) FROM ota_deployments "
            "WHERE campaign_id = ? GROUP BY wave ORDER BY wave",
            (campaign_id,),
        ).fetchall()
        waves = [WaveCounts(int(n), int(ok or 0), int(bad or 0)) for _, n, ok, bad in counts]
        verdict = judge(released, waves, threshold_pct, (int(accepted[0]), int(accepted[1])))
        if (verdict.state, verdict.released_waves) == (RUNNING, released) and not verdict.reason:
            return
        release_s = now if verdict.released_waves != released else released_s
        self.db.execute(
            "UPDATE ota_campaigns SET state = ?, released_waves = ?, wave_released_s = ?, "
            "reason = ?, updated_s = ? WHERE id = ?",
            (verdict.state, verdict.released_waves, release_s, verdict.reason, now, campaign_id),
        )

    def _lock_campaign(self, campaign_id: int) -> tuple | None:
        """Write-lock a campaign's row (every writer of its deployments takes this lock
        first) and return its rule columns."""
        return self.db.execute(
            "UPDATE ota_campaigns SET updated_s = updated_s WHERE id = ? RETURNING state, "
            "released_waves, wave_released_s, wave_timeout_s, failure_threshold_pct, "
            "accepted_failed, accepted_finished",
            (campaign_id,),
        ).fetchone()

    def _set_state(
        self, deployment_id: int, state: str, progress_pct: float | None, detail: str, now: float
    ) -> None:
        final = now if state in FINAL_STATES else None
        self.db.execute(
            "UPDATE ota_deployments SET state = ?, progress_pct = COALESCE(?, progress_pct), "
            "detail = ?, updated_s = ?, finished_s = COALESCE(?, finished_s) WHERE id = ?",
            (state, progress_pct, detail, now, final, deployment_id),
        )
        self._log(deployment_id, state, progress_pct, detail, now)

    def _log(
        self, deployment_id: int, state: str, progress_pct: float | None, detail: str, now: float
    ) -> None:
        self.db.execute(
            "INSERT INTO ota_deployment_log (deployment_id, time_s, state, "
            "progress_pct, detail) VALUES (?, ?, ?, ?, ?)",
            (deployment_id, now, state, progress_pct, detail),
        )

    def _with_waves(self, campaign: dict[str, Any]) -> dict[str, Any]:
        rows = self.db.query(
            "SELECT wave, state, COUNT(*) FROM ota_deployments WHERE campaign_id = ? "
            "GROUP BY wave, state ORDER BY wave",
            (campaign["id"],),
        )
        waves: dict[int, dict[str, int]] = {}
        for wave, state, count in rows:
            waves.setdefault(int(wave), {})[state] = int(count)
        campaign["waves"] = [
            {
                "wave": wave,
                "released": wave < campaign["released_waves"],
                "devices": sum(states.values()),
                "states": states,
            }
            for wave, states in sorted(waves.items())
        ]
        return campaign


BUNDLE_SELECT = (
    "id, version, hardware, architecture, min_version, expires, size, sha256, "
    "uploaded_s, uploaded_by"
)


def _bundle(row: tuple) -> dict[str, Any]:
    keys = [key.strip() for key in BUNDLE_SELECT.split(",")]
    bundle = dict(zip(keys, row, strict=True))
    bundle["hardware"] = json.loads(bundle["hardware"])
    return bundle


def _campaign(row: tuple) -> dict[str, Any]:
    campaign = dict(zip(CAMPAIGN_COLUMNS, row, strict=True))
    campaign["wave_pcts"] = json.loads(campaign["wave_pcts"])
    return campaign


def _check_spec(spec: CampaignSpec) -> None:
    """OtaError naming the first rollout parameter out of its range."""
    if not 0 < len(spec.name.strip()) <= MAX_NAME_CHARS or "\x00" in spec.name:
        raise OtaError(f"a campaign name is 1 to {MAX_NAME_CHARS} characters")
    if not 0 < spec.canary_pct <= 100:
        raise OtaError(f"canary_pct {spec.canary_pct:g} is not in (0, 100]")
    if len(spec.wave_pcts) > MAX_WAVES:
        raise OtaError(f"{len(spec.wave_pcts)} waves: at most {MAX_WAVES}")
    bad = [p for p in spec.wave_pcts if not 0 < p <= 100]
    if bad:
        raise OtaError(f"wave percentage {bad[0]:g} is not in (0, 100]")
    if not 0 <= spec.failure_threshold_pct <= 100:
        raise OtaError(f"failure_threshold_pct {spec.failure_threshold_pct:g} is not in [0, 100]")
    if not (math.isfinite(spec.wave_timeout_s) and 0 < spec.wave_timeout_s <= MAX_WAVE_TIMEOUT_S):
        raise OtaError(
            f"wave_timeout_s {spec.wave_timeout_s:g} is not in (0, {MAX_WAVE_TIMEOUT_S:g}]"
        )


def _same_version(reported: str, target: str) -> bool:
    """Whether a device's reported version is the bundle's ("1.2" is "1.2.0")."""
    try:
        return parse_version(reported) == parse_version(target)
    except ValueError:
        return reported == target
