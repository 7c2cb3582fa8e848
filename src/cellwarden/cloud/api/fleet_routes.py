"""Organisations, fleets, sites, packs, users and the fleet overview."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from cellwarden.cloud.api.auth import StoreDep, UserDep, require
from cellwarden.cloud.api.models import TEXT, NewFleet, NewPack, NewSite, NewUser
from cellwarden.cloud.store.registry import RegistryError, Role

router = APIRouter(prefix="/api/v1", tags=["fleet"])
Page = Annotated[int, Query(ge=1, le=1_000_000)]
PerPage = Annotated[int, Query(ge=1, le=500)]


@router.get("/me")
def me(user: UserDep, store: StoreDep) -> dict[str, Any]:
    """The caller and their role in each organisation."""
    orgs = sorted(user.roles)
    marks = ", ".join("?" * len(orgs))
    names = dict(store.db.query(f"SELECT id, name FROM organisations WHERE id IN ({marks})",
                                orgs)) if orgs else {}  # fmt: skip
    return {
        "name": user.name, "email": user.email,
        "organisations": [{"id": org, "name": names.get(org), "role": role.value}
                          for org, role in sorted(user.roles.items())],
    }  # fmt: skip


@router.get("/orgs/{org_id}/fleets")
def fleets(org_id: int, user: UserDep, store: StoreDep) -> dict[str, Any]:
    require(user, org_id)
    rows = store.db.query(
        "SELECT f.id, f.name, COUNT(p.id) FROM fleets f LEFT JOIN packs p ON p.fleet_id = f.id "
        "WHERE f.org_id = ? GROUP BY f.id, f.name ORDER BY f.name",
        (org_id,),
    )
    return {"items": [{"id": i, "name": n, "packs": c} for i, n, c in rows]}


@router.post("/orgs/{org_id}/fleets", status_code=201)
def add_fleet(org_id: int, body: NewFleet, user: UserDep, store: StoreDep) -> dict[str, Any]:
    require(user, org_id, Role.ADMIN)
    return {"id": _registry_call(store.registry.add_fleet, org_id, body.name), "name": body.name}


@router.get("/orgs/{org_id}/sites")
def sites(org_id: int, user: UserDep, store: StoreDep) -> dict[str, Any]:
    require(user, org_id)
    rows = store.db.query(
        "SELECT id, name, latitude_deg, longitude_deg FROM sites WHERE org_id = ? ORDER BY name",
        (org_id,),
    )
    keys = ("id", "name", "latitude_deg", "longitude_deg")
    return {"items": [dict(zip(keys, row, strict=True)) for row in rows]}


@router.post("/orgs/{org_id}/sites", status_code=201)
def add_site(org_id: int, body: NewSite, user: UserDep, store: StoreDep) -> dict[str, Any]:
    require(user, org_id, Role.ADMIN)
    site_id = _registry_call(store.registry.add_site, org_id, body.name, body.latitude_deg,
                             body.longitude_deg)  # fmt: skip
    return {"id": site_id, "name": body.name}


@router.post("/orgs/{org_id}/packs", status_code=201)
def add_pack(org_id: int, body: NewPack, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """Register a device (its id is its MQTT client id and topic level)."""
    require(user, org_id, Role.ADMIN)
    fleet = store.db.query("SELECT id FROM fleets WHERE name = ? AND org_id = ?",
                           (body.fleet, org_id))  # fmt: skip
    if not fleet:
        raise HTTPException(422, f"no fleet {body.fleet!r} in this organisation")
    site_id = None
    if body.site is not None:
        site = store.db.query("SELECT id FROM sites WHERE name = ? AND org_id = ?",
                              (body.site, org_id))  # fmt: skip
        if not site:
            raise HTTPException(422, f"no site {body.site!r} in this organisation")
        site_id = site[0][0]
    pack_id = _registry_call(
        store.registry.add_pack, body.device_id, body.fleet, body.name, site_id=site_id,
        chemistry=body.chemistry, cell_count=body.cell_count, capacity_ah=body.capacity_ah,
    )  # fmt: skip
    return {"id": pack_id, "device_id": body.device_id}


@router.get("/orgs/{org_id}/users")
def users(org_id: int, user: UserDep, store: StoreDep) -> dict[str, Any]:
    require(user, org_id, Role.ADMIN)
    rows = store.db.query(
        "SELECT u.name, u.email, m.role FROM users u JOIN memberships m ON m.user_id = u.id "
        "WHERE m.org_id = ? ORDER BY u.name",
        (org_id,),
    )
    return {"items": [{"name": n, "email": e, "role": r} for n, e, r in rows]}


@router.post("/orgs/{org_id}/users", status_code=201)
def add_user(org_id: int, body: NewUser, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """Create a user with a role here; the token is shown only in this answer."""
    require(user, org_id, Role.ADMIN)
    token = _registry_call(store.registry.add_user, body.name, org_id, body.role, body.email)
    return {"name": body.name, "role": body.role.value, "token": token}


@router.get("/orgs/{org_id}/overview")
def overview(
    org_id: int, user: UserDep, store: StoreDep, page: Page = 1, per_page: PerPage = 100,
    fleet: Annotated[str | None, Query(max_length=64, pattern=TEXT)] = None,
    status: Annotated[str | None, Query(pattern="^(online|offline|alarm|fault)$")] = None,
    q: Annotated[str | None, Query(max_length=64, pattern=TEXT,
                                   description="device id or name contains")] = None,
) -> dict[str, Any]:  # fmt: skip
    """One page of the organisation's packs with latest values and open alarms, and counts."""
    require(user, org_id)
    return store.history.overview([org_id], fleet=fleet, status=status, search=q, page=page,
                                  per_page=per_page)  # fmt: skip


@router.get("/orgs/{org_id}/positions")
def positions(org_id: int, user: UserDep, store: StoreDep) -> dict[str, Any]:
    """Every pack's last GPS position, for the fleet map."""
    require(user, org_id)
    return {"items": store.history.positions([org_id])}


def _registry_call(function, *args, **kwargs):
    try:
        return function(*args, **kwargs)
    except RegistryError as error:
        raise HTTPException(409, str(error)) from None
