"""Checks of a passport document: each section against its published schema, then rules the
schemas cannot express. Every failure is a Problem naming the section, the path and the rule.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlparse

from jsonschema import Draft4Validator, FormatChecker

from cellwarden.passport.batterypass_files import SECTION_KEYS, section_schema
from cellwarden.passport.passport_fields import leaves

# the general section's e-mail pattern as published lost its backslashes: it accepts only
# addresses made of "w", "." and "-" (docs/passport.md)
BROKEN_EMAIL_PATTERN = "^[w.-]+@[w.-]+.[A-Za-z]{2,}$"
CAS_PATTERN = re.compile(r"^(\d{2,7})-(\d{2})-(\d)$")
SHARE_TOLERANCE = 1e-6
STAGE_SUM_TOLERANCE = 0.01  # life-cycle stages add up to the footprint within 1 %
CLOCK_SKEW_S = 86_400.0  # a date up to a day ahead is a time zone, not an error


@dataclass(frozen=True)
class Problem:
    section: str
    path: str  # dotted, array indices as numbers; empty for the whole section
    message: str

    def __str__(self) -> str:
        where = f"{self.section}.{self.path}" if self.path else self.section
        return f"{where}: {self.message}"


FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(text: object) -> bool:
    if not isinstance(text, str):
        return True
    if "T" not in text:
        return False
    datetime.fromisoformat(text)
    return True


@FORMATS.checks("uri", raises=ValueError)
def _uri(text: object) -> bool:
    if not isinstance(text, str):
        return True
    parts = urlparse(text)
    return bool(parts.scheme) and bool(parts.netloc or parts.path)


def _validator(key: str) -> Draft4Validator:
    return Draft4Validator(section_schema(key), format_checker=FORMATS)


def schema_problems(document: dict) -> list[Problem]:
    """Each section against its schema; a missing or unknown section is a problem too."""
    problems = [Problem(key, "", "section missing") for key in SECTION_KEYS if key not in document]
    problems += [
        Problem(key, "", f"unknown section (sections: {', '.join(SECTION_KEYS)})")
        for key in document
        if key not in SECTION_KEYS
    ]
    for key in SECTION_KEYS:
        if key not in document:
            continue
        for error in sorted(_validator(key).iter_errors(document[key]), key=lambda e: e.path):
            message = error.message
            if error.validator == "pattern" and error.validator_value == BROKEN_EMAIL_PATTERN:
                message += " (the published pattern lacks its backslashes: leave it out)"
            path = ".".join(str(step) for step in error.absolute_path)
            problems.append(Problem(key, path, message))
    return problems


def rule_problems(document: dict, now: datetime | None = None) -> list[Problem]:
    """Consistency rules across fields (dates in order, limits in order, shares, sums, CAS
    check digits, every value claimed by an attribute)."""
    now = now or datetime.now(UTC)
    problems: list[Problem] = []
    general = document.get("generalProductInformation", {})
    made = _when(general.get("manufacturingDate"))
    service = _when(general.get("puttingIntoService"))
    if made and service and service < made:
        problems.append(
            Problem(
                "generalProductInformation", "puttingIntoService", "before the manufacturing date"
            )
        )
    for path, value in _dated(document):
        when = _when(value)
        if when and (when - now).total_seconds() > CLOCK_SKEW_S:
            problems.append(Problem(path[0], ".".join(path[1:]), f"{value} is in the future"))
    problems += _performance_rules(document.get("performance", {}))
    problems += _circularity_rules(document.get("circularity", {}))
    problems += _carbon_rules(document.get("carbonFootprint", {}))
    problems += _material_rules(document.get("materialComposition", {}), general)
    for path, attribute, _ in leaves({k: v for k, v in document.items() if k in SECTION_KEYS}):
        if attribute is None:
            problems.append(
                Problem(
                    path[0],
                    ".".join(path[1:]),
                    "no attribute of the access-level list claims this field",
                )
            )
    return problems


def validate_document(document: object) -> list[Problem]:
    if not isinstance(document, dict):
        return [Problem("document", "", "a passport is a JSON object of sections")]
    return schema_problems(document) + rule_problems(document)


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _dated(node: object, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], str]]:
    keys = ("manufacturingDate", "puttingIntoService", "lastUpdate", "rPCLastUpdated")
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in keys and isinstance(value, str):
                found.append(((*path, key), value))
            found += _dated(value, (*path, key))
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found += _dated(item, (*path, str(index)))
    return found


def _performance_rules(performance: dict) -> list[Problem]:
    problems = []
    tech = performance.get("batteryTechicalProperties", {})
    voltages = [tech.get(k) for k in ("minimumVoltage", "nominalVoltage", "maximumVoltage")]
    if all(isinstance(v, int | float) for v in voltages) and not (
        voltages[0] < voltages[1] < voltages[2]
    ):
        problems.append(
            Problem(
                "performance",
                "batteryTechicalProperties",
                f"voltages not in order min < nominal < max: {voltages}",
            )
        )
    idle = tech.get("temperatureRangeIdleState", {})
    if (
        isinstance(idle, dict)
        and _numbers(idle.get("minimum"), idle.get("maximum"))
        and idle["minimum"] >= idle["maximum"]
    ):
        problems.append(
            Problem(
                "performance",
                "batteryTechicalProperties.temperatureRangeIdleState",
                "minimum not below maximum",
            )
        )
    condition = performance.get("batteryCondition", {})
    percent = {
        "stateOfCharge": "stateOfChargeValue",
        "stateOfCertifiedEnergy": "stateOfCertifiedEnergyValue",
        "capacityFade": "capacityFadeValue",
        "remainingRoundTripEnergyEfficiency": "remainingRoundTripEnergyEfficiencyValue",
    }
    for key, value_key in percent.items():
        value = condition.get(key, {}).get(value_key)
        if isinstance(value, int | float) and not 0 <= value <= 100:
            problems.append(
                Problem(
                    "performance",
                    f"batteryCondition.{key}.{value_key}",
                    f"{value} is not a percentage 0..100",
                )
            )
    for key, value_key in (
        ("numberOfFullCycles", "numberOfFullCyclesValue"),
        ("energyThroughput", "energyThroughputValue"),
        ("capacityThroughput", "capacityThroughputValue"),
    ):
        value = condition.get(key, {}).get(value_key)
        if isinstance(value, int | float) and value < 0:
            problems.append(
                Problem(
                    "performance", f"batteryCondition.{key}.{value_key}", f"{value} is negative"
                )
            )
    remaining = condition.get("remainingCapacity", {}).get("remainingCapacityValue")
    rated = tech.get("ratedCapacity")
    if _numbers(remaining, rated) and remaining > 1.2 * rated:
        problems.append(
            Problem(
                "performance",
                "batteryCondition.remainingCapacity",
                f"{remaining} Ah is above 120 % of the rated {rated} Ah",
            )
        )
    return problems


def _circularity_rules(circularity: dict) -> list[Problem]:
    problems = []
    for index, entry in enumerate(circularity.get("recycledContent", []) or []):
        if not isinstance(entry, dict):
            continue
        pre, post = entry.get("preConsumerShare"), entry.get("postConsumerShare")
        if _numbers(pre, post) and pre + post > 100 + SHARE_TOLERANCE:
            problems.append(
                Problem(
                    "circularity",
                    f"recycledContent.{index}",
                    f"pre- and post-consumer shares add up to {pre + post} %",
                )
            )
    return problems


def _carbon_rules(carbon: dict) -> list[Problem]:
    total = carbon.get("batteryCarbonFootprint")
    stages = [
        s.get("carbonFootprint")
        for s in carbon.get("carbonFootprintPerLifecycleStage", [])
        if isinstance(s, dict)
    ]
    if not (isinstance(total, int | float) and stages and _numbers(*stages)):
        return []
    if abs(sum(stages) - total) > STAGE_SUM_TOLERANCE * max(abs(total), 1e-9):
        return [
            Problem(
                "carbonFootprint",
                "carbonFootprintPerLifecycleStage",
                f"stages add up to {sum(stages):g}, the footprint is {total:g}",
            )
        ]
    return []


def _material_rules(materials: dict, general: dict) -> list[Problem]:
    problems = []
    for list_key, id_key in (
        ("batteryMaterials", "batteryMaterialIdentifier"),
        ("hazardousSubstances", "hazardousSubstanceIdentifier"),
    ):
        for index, entry in enumerate(materials.get(list_key, []) or []):
            cas = entry.get(id_key) if isinstance(entry, dict) else None
            if isinstance(cas, str) and CAS_PATTERN.match(cas) and not cas_check_digit_ok(cas):
                problems.append(
                    Problem(
                        "materialComposition",
                        f"{list_key}.{index}.{id_key}",
                        f"CAS number {cas} fails its check digit",
                    )
                )
    masses = [
        m.get("batteryMaterialMass")
        for m in materials.get("batteryMaterials", []) or []
        if isinstance(m, dict)
    ]
    battery_mass = general.get("batteryMass")
    if masses and _numbers(*masses, battery_mass) and sum(masses) > battery_mass:
        problems.append(
            Problem(
                "materialComposition",
                "batteryMaterials",
                f"materials weigh {sum(masses):g} kg, the battery {battery_mass:g} kg",
            )
        )
    return problems


def cas_check_digit_ok(cas: str) -> bool:
    """CAS registry numbers end in a check digit: the other digits, from the right, weighted
    1, 2, 3 ..., summed, modulo 10."""
    match = CAS_PATTERN.match(cas)
    if match is None:
        return False
    digits = (match.group(1) + match.group(2))[::-1]
    return sum((i + 1) * int(d) for i, d in enumerate(digits)) % 10 == int(match.group(3))


def _numbers(*values: object) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
