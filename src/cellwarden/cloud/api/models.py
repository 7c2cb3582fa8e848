"""Request bodies of the API (validated; OpenAPI is generated from them)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from cellwarden.cloud.store.registry import Role

ID = r"^[A-Za-z0-9_.-]{1,64}$"
TEXT = r"^[^\x00]*$"  # PostgreSQL text cannot hold NUL: refused here (422), not by the database


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewOrganisation(_Body):
    name: str = Field(min_length=1, max_length=128)


class NewFleet(_Body):
    name: str = Field(pattern=ID, description="the fleet id devices use in their topics")


class NewSite(_Body):
    name: str = Field(min_length=1, max_length=128)
    latitude_deg: float | None = Field(default=None, ge=-90, le=90)
    longitude_deg: float | None = Field(default=None, ge=-180, le=180)


class NewPack(_Body):
    device_id: str = Field(pattern=ID)
    fleet: str = Field(pattern=ID)
    name: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT)
    site: str | None = Field(default=None, min_length=1, max_length=128, pattern=TEXT)
    chemistry: str | None = Field(default=None, max_length=32, pattern=TEXT)
    cell_count: int | None = Field(default=None, ge=1, le=4096)
    capacity_ah: float | None = Field(default=None, gt=0, le=100_000)


class NewUser(_Body):
    name: str = Field(min_length=1, max_length=128)
    role: Role
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s\x00]+@[^@\s\x00]+$")


class Acknowledgement(_Body):
    comment: str | None = Field(default=None, max_length=1000, pattern=TEXT)
