"""What alarms say: one-line messages, and the e-mail and webhook forms of a notification."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from cellwarden.cloud.alarms.packs import PackInfo
from cellwarden.cloud.alarms.rules import RateCondition, ThresholdCondition


def threshold_message(
    pack: PackInfo, condition: ThresholdCondition, value: float, cell: int | None
) -> str:
    """``pack Scooter 12 (dev-12): cell 7 voltage 4.262 V > 4.250 V``."""
    quantity = condition.quantity
    what = quantity.label if cell is None else f"cell {cell} {quantity.label}"
    return (
        f"{pack.label}: {what} {quantity.format(value)} {condition.operator} "
        f"{quantity.format(condition.threshold)}"
    )


def rate_message(pack: PackInfo, condition: RateCondition, rate_per_min: float) -> str:
    """``pack Rack 3 (ess-3): highest cell temperature changing at 2.60 °C/min > 2.00 °C/min``."""
    quantity = replace(condition.quantity, resolution=condition.quantity.resolution / 10)
    return (
        f"{pack.label}: {quantity.label} changing at {quantity.format(rate_per_min, '/min')} "
        f"{condition.operator} {quantity.format(condition.threshold_per_min, '/min')} "
        f"over {condition.window_s:g} s"
    )


def silence_message(pack: PackInfo, silent_min: float, limit_min: float) -> str:
    return f"{pack.label}: no data for {silent_min:.1f} min > {limit_min:g} min"


def dtc_message(pack: PackInfo, event: dict[str, Any]) -> str:
    """``pack Forklift 4 (fl-4): B1101 cell over-voltage tripped on string1, value 4.31,
    action open``."""
    code, name = event.get("code"), event.get("name")
    text = f"{pack.label}: {code}{f' {name}' if name else ''} tripped"
    if event.get("source"):
        text += f" on {event['source']}"
    value = event.get("value")
    if isinstance(value, int | float) and not isinstance(value, bool):
        text += f", value {value:g}"
    if event.get("action"):
        text += f", action {event['action']}"
    return text


def subject(alarm: dict[str, Any], event: str) -> str:
    """An e-mail subject naming severity, event, pack and condition."""
    return f"[cellwarden] {alarm['severity'].upper()} {event}: {alarm['message']}"


def email_body(alarm: dict[str, Any], event: str, event_s: float) -> str:
    lines = [
        f"{alarm['severity'].upper()} alarm {event} at {_utc(event_s)}",
        "",
        alarm["message"],
        "",
        f"Pack:      {alarm['pack']} ({alarm['device_id']}), fleet {alarm['fleet']}",
        f"Rule:      {alarm['rule'] or '(deleted)'}",
    ]
    if alarm["cell"] is not None:
        lines.append(f"Cell:      {alarm['cell']}")
    if alarm["code"] is not None:
        lines.append(f"Code:      {alarm['code']}")
    lines += [
        f"Value:     {_number(alarm['value'])}",
        f"Threshold: {_number(alarm['threshold'])}",
        f"State:     {alarm['state']}",
        f"Raised:    {_utc(alarm['raised_s'])}",
    ]
    if alarm["acked_by"] is not None:
        lines.append(f"Acknowledged by {alarm['acked_by']} at {_utc(alarm['acked_s'])}")
    if alarm["cleared_by"] is not None:
        lines.append(f"Cleared by {alarm['cleared_by']} at {_utc(alarm['cleared_s'])}")
    if alarm["escalation_level"]:
        lines.append(f"Escalation level: {alarm['escalation_level']}")
    lines += ["", f"Alarm id {alarm['id']}"]
    return "\n".join(lines) + "\n"


def webhook_body(alarm: dict[str, Any], event: str, event_s: float) -> str:
    """The JSON a webhook receives (docs/cloud-alarms.md); signed as sent, byte for byte."""
    return json.dumps(
        {"event": event, "event_s": event_s, "alarm": alarm}, separators=(",", ":"),
        sort_keys=True,
    )  # fmt: skip


def _utc(time_s: float | None) -> str:
    if time_s is None:
        return "-"
    return datetime.fromtimestamp(time_s, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
