"""The FastAPI application: API routes, error handling, request limits and the dashboard."""

from __future__ import annotations

import math
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.api import (
    admin_routes,
    alarm_routes,
    analytics_routes,
    device_ota_routes,
    fleet_routes,
    ota_routes,
    pack_routes,
    passport_routes,
)
from cellwarden.cloud.api.limits import BodyLimit
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.database import StoreError

STATIC = resources.files("cellwarden.cloud.web") / "static"


def create_app(store: CloudStore) -> FastAPI:
    app = FastAPI(
        title="cellwarden cloud",
        version="1",
        description="Fleet telemetry, alarms and history of cellwarden BMSs (docs/cloud-api.md).",
        openapi_url="/api/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
    )
    app.state.store = store
    app.state.alarms = AlarmEngine(store.db)
    for module in (
        fleet_routes,
        pack_routes,
        alarm_routes,
        analytics_routes,
        admin_routes,
        passport_routes,
        ota_routes,
        device_ota_routes,
    ):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, error: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"storage unavailable: {error}"}, status_code=503)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        """FastAPI's 422, with NaN and infinities of the echoed input (JSON bodies may hold
        them; a JSON response may not) as text."""
        return JSONResponse({"detail": _finite(jsonable_encoder(error.errors()))}, status_code=422)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    return app


def _finite(content: Any) -> Any:
    """``content`` (a fresh copy from jsonable_encoder) with non-finite floats as text, changed
    in place without recursion: nesting is as deep as the JSON parser allowed."""
    stack = [content]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict | list):
            continue
        for key, item in list(node.items() if isinstance(node, dict) else enumerate(node)):
            if isinstance(item, float) and not math.isfinite(item):
                node[key] = str(item)
            else:
                stack.append(item)
    return content
