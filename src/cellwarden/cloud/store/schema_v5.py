"""Migration 5: over-the-air updates — uploaded bundles, campaigns, one deployment per device
and campaign with its log, and the devices' update tokens.

Frozen once released. A campaign rolls a bundle out over its devices in waves (wave 0 is the
canary); each device's deployment carries the state the device last reported, and every report
is kept in ``ota_deployment_log``. ``ota_devices`` holds a device's token (hashed) for the
device API and the version it last said it runs.
"""

from __future__ import annotations

OTA = """
CREATE TABLE ota_bundles (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id), version TEXT NOT NULL,
    hardware TEXT NOT NULL, architecture TEXT NOT NULL, min_version TEXT, expires TEXT NOT NULL,
    manifest TEXT NOT NULL, size BIGINT NOT NULL, sha256 TEXT NOT NULL, body {blob} NOT NULL,
    uploaded_s {real} NOT NULL, uploaded_by TEXT NOT NULL, UNIQUE (org_id, sha256)
);
CREATE TABLE ota_campaigns (
    id {serial}, org_id INTEGER NOT NULL REFERENCES organisations(id),
    bundle_id INTEGER NOT NULL REFERENCES ota_bundles(id), name TEXT NOT NULL,
    state TEXT NOT NULL, canary_pct {real} NOT NULL, wave_pcts TEXT NOT NULL,
    failure_threshold_pct {real} NOT NULL, wave_timeout_s {real} NOT NULL,
    released_waves INTEGER NOT NULL, wave_released_s {real} NOT NULL, reason TEXT NOT NULL,
    accepted_failed INTEGER NOT NULL, accepted_finished INTEGER NOT NULL,
    created_s {real} NOT NULL, created_by TEXT NOT NULL, updated_s {real} NOT NULL
);
CREATE INDEX ota_campaigns_org ON ota_campaigns (org_id, state);
CREATE TABLE ota_deployments (
    id {serial}, campaign_id INTEGER NOT NULL REFERENCES ota_campaigns(id),
    pack_id INTEGER NOT NULL REFERENCES packs(id), wave INTEGER NOT NULL, state TEXT NOT NULL,
    progress_pct {real}, detail TEXT NOT NULL, from_version TEXT, bytes_served BIGINT NOT NULL,
    offered_s {real}, updated_s {real} NOT NULL, finished_s {real},
    UNIQUE (campaign_id, pack_id)
);
CREATE INDEX ota_deployments_pack ON ota_deployments (pack_id, state);
CREATE TABLE ota_deployment_log (
    id {serial}, deployment_id INTEGER NOT NULL REFERENCES ota_deployments(id),
    time_s {real} NOT NULL, state TEXT NOT NULL, progress_pct {real}, detail TEXT NOT NULL
);
CREATE INDEX ota_deployment_log_deployment ON ota_deployment_log (deployment_id, id);
CREATE TABLE ota_devices (
    pack_id INTEGER PRIMARY KEY REFERENCES packs(id), token_sha256 TEXT NOT NULL UNIQUE,
    issued_s {real} NOT NULL, version TEXT, seen_s {real}
)
"""


def statements(dialect_name: str) -> list[str]:
    """The DDL of migration 5 (the same on both engines), types still as placeholders."""
    return [part.strip() for part in OTA.split(";")]
