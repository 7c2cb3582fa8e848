"""Over-the-air updates for the organisation's users: bundles, campaigns, devices' status."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Request
from pydantic import Field

from cellwarden.cloud.api.alarm_routes import RowId
from cellwarden.cloud.api.auth import StoreDep, UserDep, require, visible_pack
from cellwarden.cloud.api.models import ID, TEXT, _Body
from cellwarden.cloud.store.ota_store import CampaignSpec, OtaConflictError, OtaError
from cellwarden.cloud.store.registry import Role
from cellwarden.ota.bundle import BundleError, inspect_bundle

router = APIRouter(prefix="/api/v1", tags=["updates"])


class NewCampaign(_Body):
    bundle_id: int = Field(ge=1, le=2**63 - 1)
    name: str = Field(min_length=1, max_length=128, pattern=TEXT)
    fleet_id: int | None = Field(default=None, ge=1, le=2**63 - 1,
                                 description="every pack of this fleet")  # fmt: skip
    device_ids: list[Annotated[str, Field(pattern=ID)]] | None = Field(
        default=None, max_length=100_000, description="or these packs"
    )
    canary_pct: float = Field(default=10.0, gt=0, le=100)
    wave_pcts: list[Annotated[float, Field(gt=0, le=100)]] = Field(
        default=[30.0, 60.0], max_length=20
    )
    failure_threshold_pct: float = Field(default=20.0, ge=0, le=100)
    wave_timeout_s: float = Field(default=86400.0, gt=0, le=365 * 86400)


def _refusal(error: OtaError) -> HTTPException:
    return HTTPException(409 if isinstance(error, OtaConflictError) else 422, str(error))


BUNDLE_BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}  # fmt: skip


@router.post("/orgs/{org_id}/ota/bundles", status_code=201, openapi_extra=BUNDLE_BODY)
async def upload_bundle(org_id: int, request: Request, store: StoreDep,
                        user: UserDep) -> dict[str, Any]:  # fmt: skip
    """Store a bundle (the request body: the bundle file's bytes, up to 64 MiB). Refused with
    422 and the reason when it is malformed, badly signed, expired or its hashes do not
    match (docs/ota.md); 409 when it is stored already."""
    require(user, org_id, Role.ADMIN)
    data = await request.body()
    try:
        info = inspect_bundle(data)
    except BundleError as error:
        raise HTTPException(422, f"bundle refused: {error}") from None
    try:
        return store.ota.add_bundle(org_id, data, info, user.name)
    except OtaError as error:
        raise _refusal(error) from None


@router.get("/orgs/{org_id}/ota/bundles")
def bundles(org_id: int, store: StoreDep, user: UserDep) -> list[dict[str, Any]]:
    """The organisation's bundles (version, targets, expiry, size, hash)."""
    require(user, org_id)
    return store.ota.bundles(org_id)


@router.post("/orgs/{org_id}/ota/campaigns", status_code=201)
def create_campaign(org_id: int, body: NewCampaign, store: StoreDep,
                    user: UserDep) -> dict[str, Any]:  # fmt: skip
    """Roll a bundle out over a fleet or a list of packs: a canary wave, then waves."""
    require(user, org_id, Role.OPERATOR)
    if (body.fleet_id is None) == (body.device_ids is None):
        raise HTTPException(422, "give either fleet_id or device_ids")
    device_ids = body.device_ids
    if body.fleet_id is not None:
        device_ids = store.ota.fleet_devices(org_id, body.fleet_id)
        if not device_ids:
            raise HTTPException(422, f"fleet {body.fleet_id} has no packs in this organisation")
    spec = CampaignSpec(body.bundle_id, body.name, device_ids or [], body.canary_pct,
                        tuple(body.wave_pcts), body.failure_threshold_pct,
                        body.wave_timeout_s)  # fmt: skip
    try:
        campaign_id = store.ota.create_campaign(org_id, spec, user.name)
    except OtaError as error:
        raise _refusal(error) from None
    return store.ota.campaign(org_id, campaign_id) or {}


@router.get("/orgs/{org_id}/ota/campaigns")
def campaigns(org_id: int, store: StoreDep, user: UserDep) -> list[dict[str, Any]]:
    """The organisation's campaigns, newest first, with their waves' counts."""
    require(user, org_id)
    return store.ota.campaigns(org_id)


@router.get("/orgs/{org_id}/ota/campaigns/{campaign_id}")
def campaign(org_id: int, campaign_id: RowId, store: StoreDep, user: UserDep) -> dict[str, Any]:
    """A campaign, its waves and every device's deployment (state, progress, reason)."""
    require(user, org_id)
    found = store.ota.campaign(org_id, campaign_id)
    if found is None:
        raise HTTPException(404, f"no campaign {campaign_id}")
    return found


@router.post("/orgs/{org_id}/ota/campaigns/{campaign_id}/{action}")
def control_campaign(org_id: int, campaign_id: RowId, action: Literal["pause", "resume", "cancel"],
                     store: StoreDep, user: UserDep) -> dict[str, Any]:  # fmt: skip
    """Pause, resume (the failures so far accepted) or cancel a campaign."""
    require(user, org_id, Role.OPERATOR)
    try:
        return store.ota.control(org_id, campaign_id, action)
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    except OtaError as error:
        raise _refusal(error) from None


@router.get("/orgs/{org_id}/packs/{device_id}/ota")
def device_updates(org_id: int, device_id: str, store: StoreDep,
                   user: UserDep) -> dict[str, Any]:  # fmt: skip
    """A pack's running version (as last reported) and its deployments with their logs."""
    require(user, org_id)
    pack = visible_pack(store, user, device_id)
    if pack.org_id != org_id:
        raise HTTPException(404, f"no pack {device_id!r}")
    rows = store.db.query("SELECT version, seen_s FROM ota_devices WHERE pack_id = ?",
                          (pack.id,))  # fmt: skip
    version, seen_s = rows[0] if rows else (None, None)
    return {"device_id": device_id, "version": version, "seen_s": seen_s,
            "deployments": store.ota.device_history(pack.id)}  # fmt: skip


@router.post("/orgs/{org_id}/packs/{device_id}/ota-token", status_code=201)
def device_token(org_id: int, device_id: str, store: StoreDep, user: UserDep) -> dict[str, str]:
    """A new token for the pack's update agent (shown once; the previous one stops working)."""
    require(user, org_id, Role.ADMIN)
    pack = visible_pack(store, user, device_id, Role.ADMIN)
    if pack.org_id != org_id:
        raise HTTPException(404, f"no pack {device_id!r}")
    return {"device_id": device_id, "token": store.ota.issue_device_token(device_id)}
