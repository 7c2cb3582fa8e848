"""Which field of a passport document is which attribute of the consortium's list.

A passport document is a dict of sections (batterypass_files.SECTIONS), each valid against its
schema. Every value in it belongs to exactly one attribute (access_levels.attributes): a rule
names a path, optionally narrowed to the array elements whose key has a value, and the most
specific rule that matches a value wins. A role's view keeps only the values of the attributes
it may see; a value no rule claims is never shown to anyone but the manufacturer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cellwarden.passport.access_levels import Role, visible_attributes

ITEM = "[]"  # a path step into every element of an array


@dataclass(frozen=True)
class FieldRule:
    path: tuple[str, ...]
    attribute: int
    where: tuple[str, object] | None = None  # (key, value) of the path's last array element


def _rules(section: str, *entries: tuple) -> list[FieldRule]:
    rules = []
    for entry in entries:
        path, attribute, *where = entry
        rules.append(FieldRule((section, *path.split(".")), attribute, where[0] if where else None))
    return rules


GENERAL = _rules(
    "generalProductInformation",
    ("batteryPassportIdentifier", 1),
    ("productIdentifier", 2),
    ("operatorInformation", 3),
    ("manufacturerInformation", 4),
    ("manufacturingPlace", 5),
    ("manufacturingDate", 6),
    ("puttingIntoService", 7),
    ("warrentyPeriod", 8),
    ("warrantyPeriodMonths", 8),
    ("batteryCategory", 9),
    ("batteryMass", 10),
    ("batteryStatus", 11),
)
CARBON = _rules(
    "carbonFootprint",
    ("batteryCarbonFootprint", 19),
    ("carbonFootprintPerLifecycleStage.[]", 20, ("lifecycleStage", "RawMaterialExtraction")),
    ("carbonFootprintPerLifecycleStage.[]", 21, ("lifecycleStage", "MainProduction")),
    ("carbonFootprintPerLifecycleStage.[]", 22, ("lifecycleStage", "Distribution")),
    ("carbonFootprintPerLifecycleStage.[]", 23, ("lifecycleStage", "Recycling")),
    ("carbonFootprintPerformanceClass", 24),
    ("carbonFootprintStudy", 25),
    ("absoluteCarbonFootprint", 27),
)
DUE_DILIGENCE = _rules(
    "supplyChainDueDiligence",
    ("supplyChainDueDiligenceReport", 28),
    ("thirdPartyAussurances", 29),
    ("supplyChainIndicies", 30),
)
MATERIALS = _rules(
    "materialComposition",
    ("batteryChemistry", 31),
    # a critical raw material is public wherever it is; the other materials of the cathode,
    # anode and electrolyte are for persons with a legitimate interest and the Commission
    ("batteryMaterials.[]", 32, ("isCriticalRawMaterial", True)),
    ("batteryMaterials.[]", 33, ("isCriticalRawMaterial", False)),
    ("hazardousSubstances", 34),
    ("hazardousSubstances.[].hazardousSubstanceImpact", 35),
)
_RECYCLED = (("Nickel", 40, 44), ("Cobalt", 41, 45), ("Lithium", 42, 46), ("Lead", 43, 47))
CIRCULARITY = _rules(
    "circularity",
    ("dismantlingAndRemovalInformation", 36),
    ("sparePartSources", 38),
    ("sparePartSources.[].components", 37),
    ("safetyMeasures", 39),
    ("safetyMeasures.extinguishingAgent", 15),
    ("renewableContent", 48),
    ("endOfLifeInformation.wastePrevention", 49),
    ("endOfLifeInformation.separateCollection", 50),
    ("endOfLifeInformation.informationOnCollection", 51),
    *(
        (f"recycledContent.{ITEM}.{key}", number, ("recycledMaterial", material))
        for material, pre, post in _RECYCLED
        for key, number in (
            ("recycledMaterial", pre),
            ("preConsumerShare", pre),
            ("postConsumerShare", post),
        )
    ),
)
_TECH = "batteryTechicalProperties"  # sic: the schema's spelling
_COND = "batteryCondition"
PERFORMANCE = _rules(
    "performance",
    (f"{_TECH}.ratedCapacity", 52),
    (f"{_TECH}.ratedEnergy", 55),
    (f"{_TECH}.minimumVoltage", 59),
    (f"{_TECH}.maximumVoltage", 60),
    (f"{_TECH}.nominalVoltage", 61),
    (f"{_TECH}.originalPowerCapability", 62),
    (f"{_TECH}.powerFade", 64),
    (f"{_TECH}.ratedMaximumPower", 65),
    (f"{_TECH}.powerCapabilityRatio", 66),
    (f"{_TECH}.roundtripEfficiency", 67),
    (f"{_TECH}.roundTripEfficiencyat50PerCentCycleLife", 68),
    (f"{_TECH}.roundTripEfficiencyFade", 70),
    (f"{_TECH}.initialSelfDischarge", 71),
    (f"{_TECH}.initialInternalResistance", 74),
    (f"{_TECH}.expectedLifetime", 76),
    (f"{_TECH}.expectedNumberOfCycles", 77),
    (f"{_TECH}.lifetimeReferenceTest", 79),
    (f"{_TECH}.cRate", 80),
    (f"{_TECH}.cRateLifeCycleTest", 80),
    (f"{_TECH}.capacityThresholdForExhaustion", 83),
    (f"{_TECH}.temperatureRangeIdleState.minimum", 85),
    (f"{_TECH}.temperatureRangeIdleState.maximum", 86),
    (f"{_COND}.remainingCapacity", 53),
    (f"{_COND}.capacityFade", 54),
    (f"{_COND}.remainingEnergy", 56),
    (f"{_COND}.stateOfCertifiedEnergy", 57),
    (f"{_COND}.stateOfCharge", 58),
    (f"{_COND}.remainingPowerCapability", 63),
    (f"{_COND}.remainingRoundTripEnergyEfficiency", 69),
    (f"{_COND}.currentSelfDischargingRate", 72),
    (f"{_COND}.evolutionOfSelfDischarge", 73),
    (f"{_COND}.internalResistanceIncrease", 75),
    (f"{_COND}.numberOfFullCycles", 78),
    (f"{_COND}.energyThroughput", 81),
    (f"{_COND}.capacityThroughput", 82),
    (f"{_COND}.temperatureInformation", 84),
    (f"{_COND}.temperatureInformation.timeExtremeHighTemp", 87),
    (f"{_COND}.temperatureInformation.timeExtremeLowTemp", 88),
    (f"{_COND}.temperatureInformation.timeExtremeHighTempCharging", 89),
    (f"{_COND}.temperatureInformation.timeExtremeLowTempCharging", 90),
    # negative events by their kind (the text starts with it): deep discharges and
    # overcharges have attributes of their own, every other one is an accident's information
    (f"{_COND}.negativeEvents", 93),
    (f"{_COND}.negativeEvents.[]", 91, ("kind", "deep discharge")),
    (f"{_COND}.negativeEvents.[]", 92, ("kind", "overcharge")),
)
LABELS = _rules(
    "labels",
    ("labels.[]", 12, ("labelingSubject", "SeparateCollection")),
    ("labels.[]", 13, ("labelingSubject", "HazardousMaterial")),
    ("labels.[]", 14, ("labelingSubject", "CarbonFootPrint")),
    ("labels.[]", 15, ("labelingSubject", "ExtinguishingAgent")),
    ("labels.[].labelingMeaning", 16),
    ("declarationOfConformity", 17),
    ("resultOfTestReport", 18),
)
RULES = (*GENERAL, *CARBON, *DUE_DILIGENCE, *MATERIALS, *CIRCULARITY, *PERFORMANCE, *LABELS)
# the list's attributes with no field of their own in the 1.2 schemas: 26 ("general battery
# and manufacturer information" of the carbon footprint) is the general section's 2, 4 and 5
NOT_IN_SCHEMAS = frozenset({26})


def negative_event_kind(event: dict) -> str:
    """The kind of a negative event entry: the text before its first colon."""
    return str(event.get("negativeEvent", "")).split(":", 1)[0].strip()


def _matches(rule: FieldRule, path: tuple[str, ...], elements: dict[int, Any]) -> bool:
    if len(rule.path) > len(path) or path[: len(rule.path)] != rule.path:
        return False
    if rule.where is None:
        return True
    last_item = len(rule.path) - rule.path[::-1].index(ITEM)  # the path up to its last ITEM
    element = elements.get(last_item)
    if not isinstance(element, dict):
        return False
    key, value = rule.where
    found = negative_event_kind(element) if key == "kind" else element.get(key)
    return found == value


def attribute_of(path: tuple[str, ...], elements: dict[int, Any]) -> int | None:
    """The attribute of the value at ``path`` (array steps as ITEM); ``elements`` maps the
    length of a path ending in ITEM to the array element it stands for."""
    best: FieldRule | None = None
    for rule in RULES:
        if _matches(rule, path, elements) and (
            best is None
            or (len(rule.path), rule.where is not None) > (len(best.path), best.where is not None)
        ):
            best = rule
    return None if best is None else best.attribute


Leaf = tuple[tuple[str, ...], int | None, Any]


def leaves(document: dict) -> list[Leaf]:
    """(path, attribute, value) of every value that is not a dict or a list of dicts."""
    found: list[Leaf] = []

    def walk(node: Any, path: tuple[str, ...], elements: dict[int, Any]) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, (*path, key), elements)
        elif isinstance(node, list) and any(isinstance(item, dict) for item in node):
            for item in node:
                walk(item, (*path, ITEM), {**elements, len(path) + 1: item})
        else:
            found.append((path, attribute_of(path, elements), node))

    walk(document, (), {})
    return found


def document_attributes(document: dict) -> frozenset[int]:
    return frozenset(attribute for _, attribute, _ in leaves(document) if attribute is not None)


def project(document: dict, role: Role) -> dict:
    """The part of ``document`` that ``role`` may see (empty objects and arrays dropped)."""
    if role is Role.MANUFACTURER:
        return document
    visible = visible_attributes(role)

    def keep(node: Any, path: tuple[str, ...], elements: dict[int, Any]) -> Any:
        if isinstance(node, dict):
            kept = {key: keep(value, (*path, key), elements) for key, value in node.items()}
            return {key: value for key, value in kept.items() if value is not None} or None
        if isinstance(node, list) and any(isinstance(item, dict) for item in node):
            items = [keep(item, (*path, ITEM), {**elements, len(path) + 1: item}) for item in node]
            return [item for item in items if item is not None] or None
        return node if attribute_of(path, elements) in visible else None

    return keep(document, (), {}) or {}
