"""The alarm centre: open and past alarms, acknowledgement, rules."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request

from cellwarden.cloud.alarms.engine import AlarmEngine, AlarmError
from cellwarden.cloud.alarms.rules import AlarmRule
from cellwarden.cloud.api.auth import UserDep, require
from cellwarden.cloud.api.models import Acknowledgement
from cellwarden.cloud.store.registry import Role

router = APIRouter(prefix="/api/v1", tags=["alarms"])
# a database id: beyond a signed 64-bit integer it cannot be bound (SQLite raises OverflowError)
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]


def _engine(request: Request) -> AlarmEngine:
    return request.app.state.alarms


@router.get("/orgs/{org_id}/alarms")
def alarms(
    org_id: int, request: Request, user: UserDep,
    state: Literal["active", "acknowledged", "cleared", "open"] | None = None,
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
    per_page: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:  # fmt: skip
    """Alarms of the organisation, newest first (``open``: active or acknowledged)."""
    require(user, org_id)
    return _engine(request).list_alarms([org_id], state, page, per_page)


def _alarm_for(request: Request, user, alarm_id: int, role: Role) -> dict[str, Any]:
    alarm = _engine(request).get_alarm(alarm_id)
    if alarm is None or alarm["org_id"] not in user.roles:
        raise HTTPException(404, f"no alarm {alarm_id}")
    require(user, alarm["org_id"], role)
    return alarm


@router.post("/alarms/{alarm_id}/acknowledge")
def acknowledge(
    alarm_id: RowId, request: Request, user: UserDep,
    body: Acknowledgement | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Operators and admins acknowledge; the alarm records who and when."""
    _alarm_for(request, user, alarm_id, Role.OPERATOR)
    try:
        _engine(request).acknowledge(alarm_id, user.name, time.time(),
                                     body.comment if body else None)  # fmt: skip
    except AlarmError as error:
        raise HTTPException(409, str(error)) from None
    return _engine(request).get_alarm(alarm_id)


@router.post("/alarms/{alarm_id}/clear")
def clear(alarm_id: RowId, request: Request, user: UserDep) -> dict[str, Any]:
    """Operators and admins clear an alarm by hand (it may be raised again by its rule)."""
    _alarm_for(request, user, alarm_id, Role.OPERATOR)
    try:
        _engine(request).clear(alarm_id, user.name, time.time())
    except AlarmError as error:
        raise HTTPException(409, str(error)) from None
    return _engine(request).get_alarm(alarm_id)


@router.get("/orgs/{org_id}/alarm-rules")
def rules(org_id: int, request: Request, user: UserDep) -> dict[str, Any]:
    require(user, org_id)
    return {"items": _engine(request).list_rules(org_id)}


@router.post("/orgs/{org_id}/alarm-rules", status_code=201)
def add_rule(org_id: int, rule: AlarmRule, request: Request, user: UserDep) -> dict[str, Any]:
    require(user, org_id, Role.ADMIN)
    try:
        rule_id = _engine(request).add_rule(org_id, rule)
    except (AlarmError, ValueError) as error:
        raise HTTPException(409, str(error)) from None
    return {"id": rule_id, "name": rule.name}


@router.delete("/alarm-rules/{rule_id}", status_code=204)
def delete_rule(rule_id: RowId, request: Request, user: UserDep) -> None:
    """Admins delete a rule; its open alarms are cleared by them."""
    engine = _engine(request)
    rule = engine.get_rule(rule_id)
    if rule is None or rule["org_id"] not in user.roles:
        raise HTTPException(404, f"no rule {rule_id}")
    require(user, rule["org_id"], Role.ADMIN)
    engine.delete_rule(rule_id, user.name, time.time())
