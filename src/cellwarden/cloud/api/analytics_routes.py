"""Fleet analytics: the latest analysis of a fleet, a run on demand, daily figures."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from cellwarden.cloud.analytics.fleet_analysis import records
from cellwarden.cloud.analytics.scheduled_analytics import (
    AnalyticsError,
    AsOfError,
    analyse_stored_fleet,
)
from cellwarden.cloud.api.alarm_routes import RowId
from cellwarden.cloud.api.auth import StoreDep, UserDep, require, visible_pack
from cellwarden.cloud.api.pack_routes import DeviceId
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.registry import Role, User
from cellwarden.telemetry.fleet_history import NUMERIC_COLUMNS, write_history

router = APIRouter(prefix="/api/v1", tags=["analytics"])
MEDIA_TYPES = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


def visible_fleet(store: CloudStore, user: User, fleet_id: int, role: Role = Role.VIEWER) -> str:
    """The name of a fleet of one of the user's organisations; 404 for any other (or none)."""
    rows = store.db.query("SELECT org_id, name FROM fleets WHERE id = ?", (fleet_id,))
    if not rows or rows[0][0] not in user.roles:
        raise HTTPException(404, f"no fleet {fleet_id}")
    require(user, rows[0][0], role)
    return rows[0][1]


@router.get("/fleets/{fleet_id}/analytics")
def analytics(fleet_id: RowId, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """The fleet's latest analysis: degradation ranking, SoH forecast, fault prognosis and
    rotation advice as of ``as_of``, computed at ``computed_s``."""
    visible_fleet(store, user, fleet_id)
    found = store.daily.latest_analysis(fleet_id)
    if found is None:
        raise HTTPException(404, f"fleet {fleet_id} has not been analysed yet: the daily run "
                                 "does it, an operator can run it now")  # fmt: skip
    return found


@router.post("/fleets/{fleet_id}/analytics/run")
def run_analytics(
    fleet_id: RowId, user: UserDep, store: StoreDep,
    as_of: Annotated[date | None, Query(description="analyse the rows up to this day "
                                                    "(default: the fleet's last day)")] = None,
) -> dict[str, Any]:  # fmt: skip
    """Analyse the fleet now (seconds to a minute), keep and return the result."""
    visible_fleet(store, user, fleet_id, Role.OPERATOR)
    try:
        return analyse_stored_fleet(store, fleet_id, as_of)
    except AsOfError as error:
        raise HTTPException(422, str(error)) from None
    except AnalyticsError as error:
        raise HTTPException(409, str(error)) from None


def _daily_file(store: CloudStore, user: User, fleet_id: int, file_format: str) -> Response:
    name = visible_fleet(store, user, fleet_id)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"{name}-daily.{file_format}"
        write_history(store.daily.export_history(fleet_id), path)
        content = path.read_bytes()
    disposition = f'attachment; filename="{path.name}"'
    return Response(content, media_type=MEDIA_TYPES[file_format],
                    headers={"Content-Disposition": disposition})  # fmt: skip


@router.get("/fleets/{fleet_id}/daily.csv")
def daily_csv(fleet_id: RowId, user: UserDep, store: StoreDep) -> Response:
    """The fleet's daily rows as a fleet history file (CSV)."""
    return _daily_file(store, user, fleet_id, "csv")


@router.get("/fleets/{fleet_id}/daily.parquet")
def daily_parquet(fleet_id: RowId, user: UserDep, store: StoreDep) -> Response:
    """The fleet's daily rows as a fleet history file (Parquet)."""
    return _daily_file(store, user, fleet_id, "parquet")


@router.get("/packs/{device_id}/daily")
def pack_daily(device_id: DeviceId, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """The pack's daily rows, oldest first: ``date`` and the numeric columns."""
    pack = visible_pack(store, user, device_id)
    fleet_id, _ = store.registry.fleet(pack.fleet)
    frame = store.daily.export_history(fleet_id, [pack.id])
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    return {"rows": records(frame[["date", *NUMERIC_COLUMNS]])}
