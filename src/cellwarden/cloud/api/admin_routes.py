"""The platform itself: ingest counters, the quarantine, health."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from cellwarden.cloud.api.auth import StoreDep, UserDep
from cellwarden.cloud.store.registry import Role

router = APIRouter(tags=["platform"])


@router.get("/healthz")
def healthz(store: StoreDep) -> dict[str, str]:
    """Up, with its database reachable."""
    store.db.query("SELECT 1")
    return {"status": "ok"}


def _any_admin(user) -> None:
    if not any(role is Role.ADMIN for role in user.roles.values()):
        raise HTTPException(403, "this needs the admin role")


@router.get("/api/v1/ingest")
def ingest(user: UserDep, store: StoreDep) -> dict[str, Any]:
    """Each ingest worker's counters (records stored, duplicates, quarantined)."""
    _any_admin(user)
    return {"workers": store.ingest_log.counters()}


@router.get("/api/v1/ingest/quarantine")
def quarantine(
    user: UserDep, store: StoreDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
) -> dict[str, Any]:
    """The newest payloads ingest set aside, with the reason: those on topics of the fleets of
    the organisations the caller administers."""
    _any_admin(user)
    orgs = [org for org, role in user.roles.items() if role is Role.ADMIN]
    marks = ", ".join("?" * len(orgs))
    fleets = [name for (name,) in store.db.query(
        f"SELECT name FROM fleets WHERE org_id IN ({marks})", orgs)]  # fmt: skip
    return {"items": store.ingest_log.quarantined(limit, fleets)}
