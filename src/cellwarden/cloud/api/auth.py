"""Who is asking: bearer tokens, roles per organisation, packs visible to the caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from cellwarden.cloud.store.cloud_store import CloudStore
from cellwarden.cloud.store.history import Pack
from cellwarden.cloud.store.registry import Role, User

MAX_TOKEN_CHARS = 256
bearer = HTTPBearer(auto_error=False, description="the token `cloud users add` printed")


def store_of(request: Request) -> CloudStore:
    return request.app.state.store


StoreDep = Annotated[CloudStore, Depends(store_of)]


def bearer_token(credentials: HTTPAuthorizationCredentials | None, what: str) -> str:
    """The token of an ``Authorization: Bearer`` header; 401 naming ``what`` is missing, or
    that it is malformed."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise HTTPException(401, f"{what} is required", {"WWW-Authenticate": "Bearer"})
    token = credentials.credentials
    if not 0 < len(token) <= MAX_TOKEN_CHARS or not token.isascii():
        raise HTTPException(401, "malformed token", {"WWW-Authenticate": "Bearer"})
    return token


def current_user(
    store: StoreDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> User:
    """The user behind the bearer token; 401 for a missing, malformed or unknown one."""
    user = store.registry.user_for_token(bearer_token(credentials, "a bearer token"))
    if user is None:
        raise HTTPException(401, "unknown token", {"WWW-Authenticate": "Bearer"})
    return user


UserDep = Annotated[User, Depends(current_user)]


def require(user: User, org_id: int, role: Role = Role.VIEWER) -> None:
    """404 when the user has no role in the organisation (its existence is not revealed),
    403 when the role is too low."""
    if org_id not in user.roles:
        raise HTTPException(404, "no such organisation")
    if not user.may(org_id, role):
        raise HTTPException(403, f"this needs the {role.value} role in the organisation")


def visible_pack(store: CloudStore, user: User, device_id: str,
                 role: Role = Role.VIEWER) -> Pack:  # fmt: skip
    """A pack of one of the user's organisations; 404 for any other (or none)."""
    pack = store.history.pack(device_id, list(user.roles)) if user.roles else None
    if pack is None:
        raise HTTPException(404, f"no pack {device_id!r}")
    require(user, pack.org_id, role)
    return pack
