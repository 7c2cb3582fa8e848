"""The device API of over-the-air updates (docs/ota-cloud.md): what to install, the bundle's
bytes by range, progress and results. Devices sign in with their update token."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import Field

from cellwarden.cloud.api.alarm_routes import RowId
from cellwarden.cloud.api.auth import StoreDep, bearer, bearer_token
from cellwarden.cloud.api.models import TEXT, _Body
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.ota_store import DeviceRef, OtaConflictError, OtaError

router = APIRouter(prefix="/device/v1/ota", include_in_schema=False)
RANGE = re.compile(r"bytes=([0-9]{1,15})-([0-9]{0,15})")
MAX_RANGE_BYTES = 1 << 20


def current_device(
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> DeviceRef:
    """The device behind the bearer token; 401 otherwise."""
    device = store.ota.device_for_token(bearer_token(credentials, "a device token"))
    if device is None:
        raise HTTPException(401, "unknown device token", {"WWW-Authenticate": "Bearer"})
    return device


DeviceDep = Annotated[DeviceRef, Depends(current_device)]


class StatusReport(_Body):
    state: str = Field(max_length=40)
    progress_pct: float | None = Field(default=None, ge=0, le=100)
    detail: str = Field(default="", max_length=500, pattern=TEXT)
    version: str | None = Field(default=None, max_length=40, pattern=TEXT)


@router.get("/next", response_model=None)
def next_update(
    store: StoreDep, device: DeviceDep,
    version: Annotated[str, Query(max_length=40, pattern=TEXT)] = "",
) -> Any:  # fmt: skip
    """The deployment to install now, or 204."""
    offer = store.ota.next_offer(device, version)
    return offer if offer is not None else Response(status_code=204)


@router.get("/bundles/{bundle_id}")
def bundle_bytes(
    bundle_id: RowId, store: StoreDep, device: DeviceDep,
    range_header: Annotated[str | None, Header(alias="range")] = None,
) -> Response:  # fmt: skip
    """The whole bundle (200, streamed), or the byte range asked for (206, at most 1 MiB)."""
    serving = store.ota.serving(device, bundle_id)
    if serving is None:
        raise HTTPException(404, f"no active deployment of bundle {bundle_id} for this device")
    deployment_id, size = serving
    if range_header is None:
        return StreamingResponse(
            _whole(store, bundle_id, deployment_id, size),
            media_type="application/octet-stream",
            headers={"Content-Length": str(size), "Accept-Ranges": "bytes"},
        )
    match = RANGE.fullmatch(range_header.strip())
    if match is None:
        raise HTTPException(416, "give one range as bytes=START-END",
                            {"Content-Range": f"bytes */{size}"})  # fmt: skip
    start = int(match[1])
    end = min(int(match[2]) if match[2] else size - 1, size - 1, start + MAX_RANGE_BYTES - 1)
    if start >= size or end < start:
        raise HTTPException(416, f"range outside the bundle's {size} bytes",
                            {"Content-Range": f"bytes */{size}"})  # fmt: skip
    data = store.ota.bundle_bytes(bundle_id, start, end + 1)
    store.ota.count_served(deployment_id, len(data))
    return Response(data, status_code=206, media_type="application/octet-stream",
                    headers={"Content-Range": f"bytes {start}-{end}/{size}"})  # fmt: skip


def _whole(store: CloudStore, bundle_id: int, deployment_id: int, size: int) -> Iterator[bytes]:
    """The bundle in chunks of ``MAX_RANGE_BYTES``, each counted as served as it is sent."""
    for start in range(0, size, MAX_RANGE_BYTES):
        chunk = store.ota.bundle_bytes(bundle_id, start, min(size, start + MAX_RANGE_BYTES))
        store.ota.count_served(deployment_id, len(chunk))
        yield chunk


@router.post("/deployments/{deployment_id}/status", status_code=204)
def report(deployment_id: RowId, body: StatusReport, store: StoreDep,
           device: DeviceDep) -> Response:  # fmt: skip
    """Progress or the result of a deployment."""
    try:
        store.ota.report(device, deployment_id, body.state, body.progress_pct, body.detail,
                         body.version)  # fmt: skip
    except LookupError as error:
        raise HTTPException(404, str(error)) from None
    except OtaConflictError as error:
        raise HTTPException(409, str(error)) from None
    except OtaError as error:
        raise HTTPException(422, str(error)) from None
    return Response(status_code=204)
