"""One pack: latest values and cells, history, events (DTCs), positions, exports."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.responses import StreamingResponse

from cellwarden.cloud.api.auth import StoreDep, UserDep, visible_pack
from cellwarden.cloud.api.export import export_response
from cellwarden.cloud.store.history import HISTORY_TABLES

router = APIRouter(prefix="/api/v1/packs", tags=["packs"])
DeviceId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
TimeS = Annotated[float | None, Query(ge=0, le=1e11, description="Unix seconds")]
DAY_S = 86400.0


def _window(from_s: float | None, to_s: float | None, default_span_s: float) -> tuple[float, float]:
    end_s = time.time() + 60 if to_s is None else to_s
    start_s = end_s - default_span_s if from_s is None else from_s
    if start_s >= end_s:
        raise HTTPException(422, "from_s must be before to_s")
    return start_s, end_s


@router.get("/{device_id}")
def pack(device_id: DeviceId, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """The pack, its status and newest summary, position and per-cell values."""
    found = visible_pack(store, user, device_id)
    alarms, worst = store.history.open_alarms(found.id)
    return {
        "device_id": found.device_id, "name": found.name, "fleet": found.fleet,
        "site": found.site, "chemistry": found.chemistry, "cell_count": found.cell_count,
        "capacity_ah": found.capacity_ah, "active_alarms": alarms, "worst_severity": worst,
        **store.history.latest(found),
    }  # fmt: skip


@router.get("/{device_id}/history")
def history(
    device_id: DeviceId, user: UserDep, store: StoreDep, from_s: TimeS = None, to_s: TimeS = None,
    fields: Annotated[str, Query(max_length=512, description="comma-separated columns")]
    = "soc_pct,voltage_v,current_a,temp_max_c",
    resolution: Literal["auto", "raw", "1m", "1h"] = "auto",
    max_points: Annotated[int, Query(ge=1, le=50_000)] = 5000,
) -> dict[str, Any]:  # fmt: skip
    """Summary columns over time: raw records or 1-minute / 1-hour rollups (``auto`` picks by
    the span: raw up to a day, minutes up to 30 days, hours beyond; and a coarser level when
    the finer one holds more than ``max_points`` rows). ``truncated``: more rows than that."""
    found = visible_pack(store, user, device_id)
    start_s, end_s = _window(from_s, to_s, DAY_S)
    names = [name.strip() for name in fields.split(",") if name.strip()]
    if not names:
        raise HTTPException(422, "name at least one field")
    try:
        return store.history.history(found, start_s, end_s, names, resolution, max_points)
    except KeyError as error:
        raise HTTPException(422, error.args[0]) from None


@router.get("/{device_id}/cells")
def cells(
    device_id: DeviceId, user: UserDep, store: StoreDep, from_s: TimeS = None, to_s: TimeS = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> dict[str, Any]:  # fmt: skip
    """Per-cell voltages, temperatures and balancing (the newest ``limit`` records)."""
    found = visible_pack(store, user, device_id)
    start_s, end_s = _window(from_s, to_s, DAY_S)
    return store.history.cells(found, start_s, end_s, limit)


@router.get("/{device_id}/events")
def events(
    device_id: DeviceId, user: UserDep, store: StoreDep,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
    kind: Literal["trip", "clear", "info"] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The pack's events, newest first: DTC trips and clears with freeze frames, edge events."""
    found = visible_pack(store, user, device_id)
    return store.history.events(found, page, per_page, kind)


@router.get("/{device_id}/export")
def export(
    device_id: DeviceId, user: UserDep, store: StoreDep, from_s: TimeS = None, to_s: TimeS = None,
    table: Literal["summary", "cells", "positions", "health", "events", "summary_1m",
                   "summary_1h"] = "summary",
    format: Literal["csv", "parquet"] = "csv",
) -> StreamingResponse:  # fmt: skip
    """Any history of the pack as CSV (streamed) or Parquet."""
    found = visible_pack(store, user, device_id)
    start_s, end_s = _window(from_s, to_s, 30 * DAY_S)
    assert table == "cells" or table in HISTORY_TABLES
    columns = store.history.export_columns(table, found)
    chunks = store.history.export_rows(table, found, start_s, end_s)
    return export_response(f"{found.device_id}-{table}", columns, chunks, format)
