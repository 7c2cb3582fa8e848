"""Battery passports: the public page behind the QR code, the document as each role may see
it (JSON, JSON-LD, HTML, any version), the status with its history, the change log and the
second-life candidates of a fleet.

The passport's own routes live under ``/passport/{identifier}``, outside ``/api/``: they are
the resolver a QR code leads to, open to the public and to roles granted across
organisations, while everything under ``/api/`` is signed in and scoped to the caller's
organisations. They are described in docs/passport.md rather than in the OpenAPI document.

Who sees what (docs/passport.md, "Access levels"): a request without a token is the public;
a member of the organisation that owns the battery is its manufacturer (admin) or a person
with a legitimate interest (operator, viewer); any other user has the passport role granted to
them (`cloud users grant-passport`), or is the public.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field

from cellwarden.cloud import passport_lifecycle as lifecycle
from cellwarden.cloud.api.alarm_routes import RowId
from cellwarden.cloud.api.analytics_routes import visible_fleet
from cellwarden.cloud.api.auth import StoreDep, UserDep, bearer, current_user, require
from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.passport_store import UnknownPassportError
from cellwarden.cloud.store.registry import Role, User
from cellwarden.passport.access_levels import Role as PassportRole
from cellwarden.passport.identifier import URN_PATTERN, qr_code_svg
from cellwarden.passport.passport_export import to_html, to_json_ld
from cellwarden.passport.passport_fields import project

router = APIRouter(tags=["passport"])
Urn = Annotated[str, Path(pattern=URN_PATTERN.pattern, max_length=200,
                          description="the passport identifier, urn:NAMESPACE:ID")]  # fmt: skip
FORMATS = ("json", "jsonld")
ORG_ROLES = {Role.ADMIN: PassportRole.MANUFACTURER, Role.OPERATOR: PassportRole.LEGITIMATE_INTEREST,
             Role.VIEWER: PassportRole.LEGITIMATE_INTEREST}  # fmt: skip
# the battery's status is attribute 11 (persons with a legitimate interest)
STATUS_ROLES = (PassportRole.LEGITIMATE_INTEREST, PassportRole.MANUFACTURER)


def optional_user(
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User | None:
    """The user behind a bearer token, or None without one (a bad token is still a 401)."""
    return None if credentials is None else current_user(store, credentials)


OptionalUserDep = Annotated[User | None, Depends(optional_user)]


def _owner_org(store: CloudStore, pack_id: int | None) -> int | None:
    if pack_id is None:
        return None
    rows = store.db.query("SELECT org_id FROM packs WHERE id = ?", (pack_id,))
    return rows[0][0] if rows else None


def passport_role(store: CloudStore, user: User | None, urn: str) -> PassportRole:
    """What ``user`` is to the passport ``urn`` (404 for an unknown passport)."""
    try:
        record = store.passports.record(urn)
    except UnknownPassportError:
        raise HTTPException(404, f"no passport {urn}") from None
    if user is None:
        return PassportRole.PUBLIC
    org_id = _owner_org(store, record.pack_id)
    if org_id in user.roles:
        return ORG_ROLES[user.roles[org_id]]
    granted = store.passports.granted_role(user.id)
    return PassportRole(granted) if granted else PassportRole.PUBLIC


def _view(store: CloudStore, urn: str, role: PassportRole, version: int | None) -> dict:
    found = store.passports.current(urn) if version is None else store.passports.version(
        urn, version)  # fmt: skip
    return project(found.body, role)


@router.get("/passport/{urn}/document", include_in_schema=False)
def passport(
    urn: Urn, store: StoreDep, user: OptionalUserDep,
    output: Annotated[str, Query(alias="format", pattern="^(json|jsonld)$")] = "json",
    version: Annotated[int | None, Query(ge=1, description="an older version")] = None,
) -> dict[str, Any]:  # fmt: skip
    """The passport as the caller's role may see it (no token: the public's view)."""
    role = passport_role(store, user, urn)
    try:
        view = _view(store, urn, role, version)
    except UnknownPassportError as error:
        raise HTTPException(404, str(error)) from None
    return to_json_ld(view) if output == "jsonld" else view


@router.get("/passport/{urn}", response_class=HTMLResponse, include_in_schema=False)
def passport_page(urn: Urn, request: Request, store: StoreDep, user: OptionalUserDep) -> str:
    """The public page the QR code leads to (a token shows the caller's role's view)."""
    role = passport_role(store, user, urn)
    url = str(request.url_for("passport_page", urn=urn))
    return to_html(_view(store, urn, role, None), role, qr_code_svg(url), url)


@router.get("/passport/{urn}/qr.svg", include_in_schema=False)
def passport_qr(urn: Urn, request: Request, store: StoreDep) -> Response:
    passport_role(store, None, urn)
    url = str(request.url_for("passport_page", urn=urn))
    return Response(qr_code_svg(url), media_type="image/svg+xml")


@router.get("/passport/{urn}/status", include_in_schema=False)
def status_history(urn: Urn, store: StoreDep, user: UserDep) -> list[dict[str, Any]]:
    """Every status the battery had, with who set it and why (legitimate interest)."""
    if passport_role(store, user, urn) not in STATUS_ROLES:
        raise HTTPException(403, "the battery status is for persons with a legitimate interest")
    return [change.__dict__ for change in store.passports.status_history(urn)]


@router.get("/passport/{urn}/versions", include_in_schema=False)
def change_log(urn: Urn, store: StoreDep, user: UserDep) -> list[dict[str, Any]]:
    """Every version with its time, author, reason and the fields it changed (the
    manufacturer's record)."""
    if passport_role(store, user, urn) is not PassportRole.MANUFACTURER:
        raise HTTPException(403, "the change log is the manufacturer's")
    return [{**entry.__dict__, "changed": list(entry.changed)}
            for entry in store.passports.change_log(urn)]  # fmt: skip


class StatusChangeBody(BaseModel):
    status: str = Field(pattern="^(Repurposed|Reused|Remanufactured|Waste)$")
    note: str = Field(default="", max_length=2000)


@router.post("/passport/{urn}/status", include_in_schema=False)
def change_status(urn: Urn, body: StatusChangeBody, store: StoreDep,
                  user: UserDep) -> dict[str, Any]:  # fmt: skip
    """Change the battery's status (an operator of the owning organisation). A second life
    (Repurposed, Reused, Remanufactured) starts a successor passport that names this one."""
    passport_role(store, user, urn)  # 404 for an unknown passport
    org_id = _owner_org(store, store.passports.record(urn).pack_id)
    if org_id is None:
        raise HTTPException(409, f"passport {urn} belongs to no pack of an organisation")
    require(user, org_id, Role.OPERATOR)
    try:
        return lifecycle.change_status(store, urn, body.status, user.name, body.note)
    except ValueError as error:
        raise HTTPException(409, str(error)) from None


@router.get("/api/v1/fleets/{fleet_id}/second-life")
def second_life(fleet_id: RowId, store: StoreDep, user: UserDep) -> list[dict[str, Any]]:
    """The fleet's packs graded for a second life, best first, with the reasons."""
    visible_fleet(store, user, fleet_id)
    return lifecycle.second_life_candidates(store, fleet_id)
