"""Configuration of a device's edge: telemetry rates, the cellular link, GPS, the data logger."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MOBILE_SECTORS = ("e-scooter", "e-bike", "cargo EV", "forklift", "golf cart", "utility cart",
                  "marine")  # fmt: skip


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Outage(_Spec):
    """A period without any cellular coverage."""

    at_s: float = Field(ge=0, description="simulated time the outage starts")
    duration_s: float = Field(gt=0)


class LinkSpec(_Spec):
    """The cellular uplink (see docs/telemetry.md for the technologies' figures)."""

    technology: Literal["2g", "lte-m", "nb-iot"] = "lte-m"
    outages: list[Outage] = Field(default_factory=list)
    coverage_gaps_per_day: float = Field(
        default=0.0, ge=0, le=1000, description="random dead zones (vehicles), mean per day"
    )
    coverage_gap_mean_s: float = Field(default=120.0, gt=0, le=86400)


class Geofence(_Spec):
    name: str = Field(min_length=1, max_length=64)
    latitude_deg: float = Field(ge=-90, le=90)
    longitude_deg: float = Field(ge=-180, le=180)
    radius_m: float = Field(gt=0, le=1_000_000)


class GpsSpec(_Spec):
    """Where the device is: a simulated route for vehicles, a fixed site otherwise."""

    mode: Literal["auto", "route", "site", "none"] = Field(
        default="auto", description="auto: a route for vehicle sectors, a site for the rest"
    )
    latitude_deg: float = Field(default=52.3702, ge=-90, le=90)
    longitude_deg: float = Field(default=4.8952, ge=-180, le=180)
    route_radius_m: float = Field(default=1500.0, gt=0, le=100_000)
    consumption_wh_per_km: float = Field(default=15.0, gt=0, le=5000)
    max_speed_kmh: float = Field(default=25.0, gt=0, le=300)
    geofences: list[Geofence] = Field(default_factory=list)


class LoggerSpec(_Spec):
    """The data logger (the BCU's MicroSD card)."""

    pack_period_s: float = Field(default=1.0, gt=0)
    snapshot_period_s: float = Field(default=60.0, gt=0)
    segment_bytes: int = Field(default=4 * 1024 * 1024, ge=4096)
    max_bytes: int = Field(default=256 * 1024 * 1024, ge=8192)


class EdgeSpec(_Spec):
    """Telemetry rates and the device's connectivity."""

    summary_period_s: float = Field(default=10.0, gt=0, le=86400)
    cells_period_s: float = Field(default=60.0, gt=0, le=86400)
    position_period_s: float = Field(default=60.0, gt=0, le=86400)
    health_period_s: float = Field(default=300.0, gt=0, le=86400)
    batch_s: float = Field(
        default=300.0, ge=0, le=86400,
        description="records wait up to this long to travel together (events never wait)",
    )  # fmt: skip
    max_batch_records: int = Field(default=500, ge=1, le=10_000)
    queue_max_bytes: int = Field(default=32 * 1024 * 1024, ge=65536)
    queue_commit_s: float = Field(
        default=60.0, ge=0, le=3600,
        description="records are synced to the queue this often (events and replies at once)",
    )  # fmt: skip
    link: LinkSpec = LinkSpec()
    gps: GpsSpec = GpsSpec()
    logger: LoggerSpec = LoggerSpec()
