"""Telemetry schema, version 2: topics, record kinds, their fields and resolutions.

A record is a flat dict of engineering values (``soc_pct``, ``voltage_v``, ...) with its time in
``time_s`` (the device's clock). Numeric fields of a columnar kind travel as integers in units of
their resolution; docs/telemetry.md is the user's description of the same tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum, StrEnum

SCHEMA_VERSION = 2  # 2: per-cell arrays travel as packed integers (1: as CBOR arrays)
READABLE_VERSIONS = (1, 2)  # what a receiver decodes
TOPIC_ROOT = "cw"
ID_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")  # fleet and device ids: no MQTT wildcards


class Kind(StrEnum):
    """Record kinds; each has its own topic ``cw/{fleet}/{device}/{kind}``."""

    SUMMARY = "summary"  # pack state every few seconds
    CELLS = "cells"  # per-cell voltages, temperatures, balancing
    EVENT = "event"  # DTC trips and clears with freeze frames, geofence and edge events
    POSITION = "position"  # GPS fix
    HEALTH = "health"  # the device itself: link, queue, logger, firmware
    REPLY = "reply"  # answers to downlink commands


class Priority(IntEnum):
    """Store-and-forward classes: a full queue thins the highest number first, never ``KEEP``."""

    KEEP = 0  # events and command replies: never dropped
    SUMMARY = 1
    DETAIL = 2


PRIORITY = {
    Kind.EVENT: Priority.KEEP,
    Kind.REPLY: Priority.KEEP,
    Kind.SUMMARY: Priority.SUMMARY,
    Kind.CELLS: Priority.DETAIL,
    Kind.POSITION: Priority.DETAIL,
    Kind.HEALTH: Priority.DETAIL,
}

STATUS = "status"  # retained "online" / "offline" (the last will)
COMMAND = "cmd"  # downlink commands to the device


def topic(fleet: str, device: str, leaf: str) -> str:
    """``cw/{fleet}/{device}/{leaf}`` after checking both ids."""
    for name, value in (("fleet", fleet), ("device id", device)):
        if not ID_PATTERN.match(value):
            raise ValueError(
                f"{name} {value!r} is not allowed: use 1-64 letters, digits, '_', '-' or '.'"
            )
    return f"{TOPIC_ROOT}/{fleet}/{device}/{leaf}"


def parse_topic(name: str) -> tuple[str, str, str]:
    """(fleet, device, leaf) of a telemetry topic; ValueError naming what is wrong."""
    parts = name.split("/")
    if len(parts) != 4 or parts[0] != TOPIC_ROOT:
        raise ValueError(f"topic {name!r} is not cw/{{fleet}}/{{device}}/{{kind}}")
    _, fleet, device, leaf = parts
    if not (ID_PATTERN.match(fleet) and ID_PATTERN.match(device)):
        raise ValueError(f"topic {name!r} has an invalid fleet or device id")
    return fleet, device, leaf


@dataclass(frozen=True)
class Field:
    """One numeric field of a columnar kind and the resolution it travels at."""

    name: str
    resolution: float
    unit: str
    description: str


PATH_STATES = ("standby", "precharge", "normal", "opening", "fault")

SUMMARY_FIELDS = (
    Field("time_s", 0.1, "s", "device clock"),
    Field("soc_pct", 0.1, "%", "pack state of charge"),
    Field("soh_pct", 0.1, "%", "capacity state of health"),
    Field("voltage_v", 0.01, "V", "pack (or DC bus) voltage"),
    Field("current_a", 0.01, "A", "pack current, positive charging"),
    Field("cell_voltage_min_v", 0.001, "V", "lowest cell voltage"),
    Field("cell_voltage_max_v", 0.001, "V", "highest cell voltage"),
    Field("temp_min_c", 0.1, "°C", "lowest cell temperature"),
    Field("temp_max_c", 0.1, "°C", "highest cell temperature"),
    Field("charge_current_limit_a", 0.1, "A", "allowed charge current"),
    Field("discharge_current_limit_a", 0.1, "A", "allowed discharge current"),
    Field("charge_voltage_limit_v", 0.01, "V", "charge voltage limit"),
    Field("path_state", 1, "", "0 standby, 1 precharge, 2 normal, 3 opening, 4 fault"),
    Field("alarms", 1, "", "alarm category bit mask (docs/telemetry.md)"),
    Field("warnings", 1, "", "warning category bit mask"),
    Field("worst_code", 1, "", "digits of the most severe active DTC, 0 when none"),
    Field("balancing_cells", 1, "", "cells bleeding now"),
    Field("strings_connected", 1, "", "strings on the bus"),
)

POSITION_FIELDS = (
    Field("time_s", 0.1, "s", "device clock"),
    Field("latitude_deg", 1e-7, "°", "WGS-84 latitude"),
    Field("longitude_deg", 1e-7, "°", "WGS-84 longitude"),
    Field("speed_kmh", 0.1, "km/h", "ground speed"),
    Field("course_deg", 1, "°", "course over ground"),
    Field("satellites", 1, "", "satellites used"),
    Field("hdop", 0.1, "", "horizontal dilution of precision"),
)

HEALTH_FIELDS = (
    Field("time_s", 0.1, "s", "device clock"),
    Field("link_up", 1, "", "1 when the cellular link has coverage"),
    Field("signal_dbm", 1, "dBm", "received signal strength"),
    Field("queue_records", 1, "", "records waiting in store-and-forward"),
    Field("queue_bytes", 1, "B", "their size on disk"),
    Field("dropped_records", 1, "", "records thinned since start (detail and summaries only)"),
    Field("logger_dropped", 1, "", "records the data logger could not write"),
    Field("bytes_sent", 1, "B", "MQTT bytes sent since start"),
)

COLUMNS: dict[Kind, tuple[Field, ...]] = {
    Kind.SUMMARY: SUMMARY_FIELDS,
    Kind.POSITION: POSITION_FIELDS,
    Kind.HEALTH: HEALTH_FIELDS,
}

CELL_RESOLUTION = {"voltage_v": 0.001, "temp_c": 0.1}  # per-cell arrays of a cells record
