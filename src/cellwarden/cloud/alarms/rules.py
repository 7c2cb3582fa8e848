"""Alarm rules: what an organisation wants to be told about, stored as JSON in alarm_rules.body.

A rule is a name, a severity, whom to notify (and to escalate to) and one condition, chosen by
its ``kind``: ``threshold`` (a summary field or a per-cell array beyond a limit), ``rate``
(a summary field changing too fast), ``no_data`` (a pack silent too long) or ``dtc`` (a
device's diagnostic trouble code tripped). docs/cloud-alarms.md shows one of each.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from cellwarden.telemetry.schema import CELL_RESOLUTION, SUMMARY_FIELDS

EMAIL_PATTERN = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
CODE_PATTERN = re.compile(r"^[A-Za-z0-9_]{1,32}$")
MAX_TARGETS = 20


class RuleError(ValueError):
    """A rule that cannot be used; the message names every problem."""


@dataclass(frozen=True)
class Quantity:
    """How a field reads in a message: its label, unit and printed resolution."""

    label: str
    unit: str
    resolution: float

    def format(self, value: float, suffix: str = "") -> str:
        decimals = max(0, -math.floor(math.log10(self.resolution) + 1e-9))
        unit = f"{self.unit}{suffix}"
        return f"{value:.{decimals}f} {unit}" if unit else f"{value:.{decimals}f}"


SUMMARY_QUANTITIES = {
    f.name: Quantity(f.description, f.unit, f.resolution)
    for f in SUMMARY_FIELDS
    if f.name != "time_s"
}
CELL_QUANTITIES = {
    "cells.voltage_v": Quantity("voltage", "V", CELL_RESOLUTION["voltage_v"]),
    "cells.temp_c": Quantity("temperature", "°C", CELL_RESOLUTION["temp_c"]),
}


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)


class Target(_Strict):
    """Where a notification goes: ``{"webhook": "https://..."}`` or ``{"email": "a@b.org"}``."""

    webhook: str | None = None
    email: str | None = None

    @model_validator(mode="after")
    def _one_channel(self) -> Target:
        if (self.webhook is None) == (self.email is None):
            raise ValueError('a target is either {"webhook": URL} or {"email": ADDRESS}')
        if self.webhook is not None:
            parts = urlsplit(self.webhook)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(f"webhook {self.webhook!r} is not an http(s) URL")
        if self.email is not None and (
            len(self.email) > 254 or not EMAIL_PATTERN.match(self.email)
        ):
            raise ValueError(f"{self.email!r} is not an e-mail address")
        return self

    @model_serializer
    def _as_written(self) -> dict[str, str]:
        return {self.channel: self.address}

    @property
    def channel(self) -> str:
        return "webhook" if self.webhook is not None else "email"

    @property
    def address(self) -> str:
        return self.webhook if self.webhook is not None else str(self.email)


def _check_clear(operator: str, threshold: float, clear: float | None, what: str) -> None:
    """The clear level lies on the normal side of the raise level (or equals it)."""
    if clear is None:
        return
    if operator == ">" and clear > threshold:
        raise ValueError(f"{what} {clear} must be <= the threshold {threshold} for '>'")
    if operator == "<" and clear < threshold:
        raise ValueError(f"{what} {clear} must be >= the threshold {threshold} for '<'")


class ThresholdCondition(_Strict):
    """A summary field, or every cell of ``cells.voltage_v`` / ``cells.temp_c``, beyond a limit.

    Raised when a value is beyond ``threshold`` (for ``for_s`` seconds of device time, when
    given); cleared when a value is back on the normal side of ``clear_threshold``.
    """

    kind: Literal["threshold"]
    field: str
    operator: Literal[">", "<"]
    threshold: float
    clear_threshold: float | None = None
    for_s: float = Field(0.0, ge=0.0, le=86400.0)

    @field_validator("field")
    @classmethod
    def _known_field(cls, name: str) -> str:
        if name not in SUMMARY_QUANTITIES and name not in CELL_QUANTITIES:
            known = ", ".join([*SUMMARY_QUANTITIES, *CELL_QUANTITIES])
            raise ValueError(f"unknown field {name!r}; use one of {known}")
        return name

    @model_validator(mode="after")
    def _hysteresis(self) -> ThresholdCondition:
        _check_clear(self.operator, self.threshold, self.clear_threshold, "clear_threshold")
        return self

    @property
    def per_cell(self) -> bool:
        return self.field in CELL_QUANTITIES

    @property
    def quantity(self) -> Quantity:
        return CELL_QUANTITIES.get(self.field) or SUMMARY_QUANTITIES[self.field]

    @property
    def clear_level(self) -> float:
        return self.threshold if self.clear_threshold is None else self.clear_threshold


class RateCondition(_Strict):
    """A summary field changing faster than ``threshold_per_min`` (its unit per minute).

    Each record's change is measured against the newest stored record at least ``window_s``
    older (and at most twice that), so a window may span batches and ingest workers.
    """

    kind: Literal["rate"]
    field: str
    operator: Literal[">", "<"]
    threshold_per_min: float
    clear_threshold_per_min: float | None = None
    window_s: float = Field(gt=0.0, le=86400.0)

    @field_validator("field")
    @classmethod
    def _summary_field(cls, name: str) -> str:
        if name not in SUMMARY_QUANTITIES:
            raise ValueError(
                f"unknown summary field {name!r}; use one of {', '.join(SUMMARY_QUANTITIES)}"
            )
        return name

    @model_validator(mode="after")
    def _hysteresis(self) -> RateCondition:
        _check_clear(
            self.operator, self.threshold_per_min, self.clear_threshold_per_min,
            "clear_threshold_per_min",
        )  # fmt: skip
        return self

    @property
    def quantity(self) -> Quantity:
        return SUMMARY_QUANTITIES[self.field]

    @property
    def clear_level(self) -> float:
        if self.clear_threshold_per_min is None:
            return self.threshold_per_min
        return self.clear_threshold_per_min


class NoDataCondition(_Strict):
    """Nothing received from a pack for ``silence_min`` minutes (it had sent before)."""

    kind: Literal["no_data"]
    silence_min: float = Field(gt=0.0, le=525600.0)


class DtcCondition(_Strict):
    """A device's ``trip`` event raises one alarm per code; its ``clear`` event clears it."""

    kind: Literal["dtc"]
    codes: list[str] | None = Field(None, min_length=1, max_length=200)

    @field_validator("codes")
    @classmethod
    def _codes(cls, codes: list[str] | None) -> list[str] | None:
        for code in codes or []:
            if not CODE_PATTERN.match(code):
                raise ValueError(f"code {code!r} is not 1-32 letters, digits or '_'")
        return codes


Condition = Annotated[
    ThresholdCondition | RateCondition | NoDataCondition | DtcCondition,
    Field(discriminator="kind"),
]


class AlarmRule(_Strict):
    """One alarm rule of an organisation (its name is unique there)."""

    name: str = Field(min_length=1, max_length=128)
    severity: Severity = Severity.WARNING
    condition: Condition
    notify: list[Target] = Field(default_factory=list, max_length=MAX_TARGETS)
    escalate_after_s: float | None = Field(None, gt=0.0, le=30 * 86400.0)
    escalate_to: list[Target] = Field(default_factory=list, max_length=MAX_TARGETS)
    escalate_max_level: int = Field(1, ge=1, le=10)
    fleets: list[str] | None = Field(None, min_length=1, max_length=1000)

    @field_validator("name")
    @classmethod
    def _printable(cls, name: str) -> str:
        if not name.isprintable():
            raise ValueError("a rule name must be printable")
        return name

    @model_validator(mode="after")
    def _escalation(self) -> AlarmRule:
        if (self.escalate_after_s is None) != (not self.escalate_to):
            raise ValueError("escalate_after_s and escalate_to go together: when, and to whom")
        return self

    def applies_to(self, fleet: str) -> bool:
        return self.fleets is None or fleet in self.fleets


def parse_rule(data: Any) -> AlarmRule:
    """A rule from a JSON text or a mapping; RuleError listing every problem otherwise."""
    try:
        if isinstance(data, str | bytes):
            return AlarmRule.model_validate_json(data)
        return AlarmRule.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors(include_url=False):
            where = ".".join(str(part) for part in item["loc"]) or "rule"
            problems.append(f"{where}: {item['msg'].removeprefix('Value error, ')}")
        raise RuleError("; ".join(problems)) from None
