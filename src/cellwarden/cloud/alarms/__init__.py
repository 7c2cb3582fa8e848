"""The cloud's alarms: rules over arriving telemetry, a lifecycle operators drive, and
notifications by webhook and e-mail (docs/cloud-alarms.md)."""

from cellwarden.cloud.alarms.alarm_store import AlarmError
from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.alarms.notify import Delivery, Notifier
from cellwarden.cloud.alarms.rules import AlarmRule, RuleError, parse_rule

__all__ = [
    "AlarmEngine",
    "AlarmError",
    "AlarmRule",
    "Delivery",
    "Notifier",
    "RuleError",
    "parse_rule",
]
