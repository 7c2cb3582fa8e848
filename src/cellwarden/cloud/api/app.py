"""The FastAPI application: API routes, error handling, request limits and the dashboard."""

from __future__ import annotations

from importlib import resources

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.api import admin_routes, alarm_routes, fleet_routes, pack_routes
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
    for module in (fleet_routes, pack_routes, alarm_routes, admin_routes):
        app.include_router(module.router)
    app.add_middleware(BodyLimit)

    @app.exception_handler(StoreError)
    async def store_unavailable(request: Request, error: StoreError) -> JSONResponse:
        return JSONResponse({"detail": f"storage unavailable: {error}"}, status_code=503)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.get("/", include_in_schema=False)
    def dashboard() -> FileResponse:
        return FileResponse(str(STATIC / "index.html"))

    return app
