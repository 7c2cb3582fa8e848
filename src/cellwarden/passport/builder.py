"""A passport document from its sources: the manufacturer file (static data no BMS knows), the
rated values of the system configuration, the identity and status, and the battery's condition
from its BMS history (dynamic data). Every section is shaped as its published schema wants
(batterypass_files.SECTIONS); docs/passport.md says where each value comes from.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from cellwarden.passport.condition import POWER_SOC_PCT
from cellwarden.passport.manufacturer_file import ManufacturerFile, Party
from cellwarden.passport.rated_values import RatedValues

STATUSES = ("Original", "Repurposed", "Reused", "Remanufactured", "Waste")


LMT_MAX_MASS_KG = 25.0  # Art. 3(11): a light means of transport battery weighs at most 25 kg
SECTOR_CATEGORIES = {
    "e-bike": "lmt",
    "e-scooter": "lmt",
    "cargo ev": "ev",
    "ess": "stationary",
}


def battery_category(sector: str, mass_kg: float) -> str:
    """The Regulation's category of a battery by its sector: light vehicles' batteries up to
    25 kg are LMT, road vehicles' EV, energy storage systems stationary, the rest (forklifts,
    carts, boats, telecom backup) industrial."""
    category = SECTOR_CATEGORIES.get(sector.strip().lower(), "industrial")
    if category == "lmt" and mass_kg > LMT_MAX_MASS_KG:
        return "ev"
    return category


@dataclass(frozen=True)
class Identity:
    urn: str
    serial_number: str
    sector: str = ""  # the scenario's; sets the category when the manufacturer file does not
    status: str = "Original"
    putting_into_service: date | None = None  # default: the manufacturer file's

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"battery status {self.status!r}: one of {', '.join(STATUSES)}")


SHIPPING_SOC_PCT = 30.0  # a new battery's SoC: UN 3480 ships lithium-ion at up to 30 %


def timestamp(when: datetime | date) -> str:
    """ISO 8601 date-time in UTC with a Z, as the schemas' patterns accept."""
    if not isinstance(when, datetime):
        when = datetime.combine(when, time(), UTC)
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _address(address: Any) -> dict:
    return {
        "addressCountry": address.country,
        "postalCode": address.postal_code,
        "streetAddress": address.street,
    }


def _contact(party: Party) -> dict:
    contact = {
        "identifier": party.identifier,
        "contactName": party.name,
        "postalAddress": _address(party.address),
    }
    if party.web is not None:
        contact["webAddress"] = str(party.web)
    return contact


def general_section(identity: Identity, maker: ManufacturerFile, rated: RatedValues) -> dict:
    in_service = identity.putting_into_service or maker.putting_into_service
    start = in_service or maker.manufacturing_date
    warranty_end = _add_months(start, maker.lifetime.warranty_months)
    mass_kg = round(rated.cells_mass_kg * maker.packaging_mass_factor, 2)
    category = (
        maker.category.value if maker.category else battery_category(identity.sector, mass_kg)
    )
    return {
        "batteryPassportIdentifier": identity.urn,
        "productIdentifier": identity.serial_number,
        "batteryCategory": category,
        "manufacturerInformation": _contact(maker.manufacturer),
        "operatorInformation": _contact(maker.operator or maker.manufacturer),
        "manufacturingPlace": _address(maker.manufacturing_place),
        "manufacturingDate": timestamp(maker.manufacturing_date),
        "puttingIntoService": timestamp(in_service or maker.manufacturing_date),
        # the data model types the warranty as an XSD gMonth ("--MM"): the month it ends;
        # the length in months travels beside it (docs/passport.md)
        "warrentyPeriod": f"--{warranty_end.month:02d}",
        "warrantyPeriodMonths": maker.lifetime.warranty_months,
        "batteryMass": mass_kg,
        "batteryStatus": identity.status,
    }


def carbon_section(maker: ManufacturerFile, rated: RatedValues) -> dict:
    stages = maker.carbon_footprint.stages_kg_co2e_per_kwh
    per_stage = {
        "RawMaterialExtraction": stages.raw_material_extraction,
        "MainProduction": stages.main_production,
        "Distribution": stages.distribution,
        "Recycling": stages.recycling,
    }
    per_kwh = sum(per_stage.values())
    lifetime_energy_kwh = rated.rated_energy_kwh * maker.lifetime.expected_cycles
    return {
        "batteryCarbonFootprint": round(per_kwh, 4),
        "carbonFootprintPerLifecycleStage": [
            {"lifecycleStage": stage, "carbonFootprint": value}
            for stage, value in per_stage.items()
        ],
        "carbonFootprintPerformanceClass": maker.carbon_footprint.performance_class,
        "carbonFootprintStudy": str(maker.carbon_footprint.study_url),
        "absoluteCarbonFootprint": round(per_kwh * lifetime_energy_kwh, 1),
    }


def due_diligence_section(maker: ManufacturerFile) -> dict:
    section: dict[str, Any] = {"supplyChainDueDiligenceReport": str(maker.due_diligence.report_url)}
    if maker.due_diligence.assurances_url is not None:
        section["thirdPartyAussurances"] = str(maker.due_diligence.assurances_url)
    if maker.due_diligence.supply_chain_index is not None:
        section["supplyChainIndicies"] = maker.due_diligence.supply_chain_index
    return section


CHEMISTRY_NAMES = {
    "NMC": "Lithium nickel manganese cobalt oxide / graphite",
    "LFP": "Lithium iron phosphate / graphite",
    "LTO": "Lithium manganese oxide / lithium titanate",
}


def materials_section(maker: ManufacturerFile, rated: RatedValues) -> dict:
    chemistry = rated.chemistry.upper()
    return {
        "batteryChemistry": {
            "shortName": chemistry,
            "clearName": CHEMISTRY_NAMES.get(chemistry, chemistry),
        },
        "batteryMaterials": [
            {
                "batteryMaterialLocation": {"componentName": m.component},
                "batteryMaterialIdentifier": m.cas,
                "batteryMaterialName": m.name,
                "batteryMaterialMass": round(
                    rated.cells_mass_kg * m.share_of_cells_mass_pct / 100, 3
                ),
                "isCriticalRawMaterial": m.critical_raw_material,
            }
            for m in maker.materials_of(chemistry)
        ],
        "hazardousSubstances": [
            {
                "hazardousSubstanceClass": h.hazard_class.value,
                "hazardousSubstanceName": h.name,
                "hazardousSubstanceConcentration": h.concentration_pct,
                "hazardousSubstanceImpact": list(h.impacts),
                "hazardousSubstanceLocation": {"componentName": h.component},
                "hazardousSubstanceIdentifier": h.cas,
            }
            for h in maker.hazards_of(chemistry)
        ],
    }


def circularity_section(maker: ManufacturerFile) -> dict:
    circ = maker.circularity
    return {
        "dismantlingAndRemovalInformation": [
            {"documentType": d.kind, "mimeType": d.mime_type, "documentURL": str(d.url)}
            for d in circ.documents
        ],
        "sparePartSources": [
            {
                "nameOfSupplier": s.name,
                "addressOfSupplier": _address(s.address),
                "emailAddressOfSupplier": s.email,
                "supplierWebAddress": str(s.web),
                "components": [{"partName": p.name, "partNumber": p.number} for p in s.parts],
            }
            for s in circ.spare_part_suppliers
        ],
        "recycledContent": [
            {
                "recycledMaterial": r.material,
                "preConsumerShare": r.pre_consumer_pct,
                "postConsumerShare": r.post_consumer_pct,
            }
            for r in circ.recycled_content
        ],
        "renewableContent": circ.renewable_content_pct,
        "safetyMeasures": {
            "safetyInstructions": str(circ.safety_instructions_url),
            "extinguishingAgent": list(circ.extinguishing_agents),
        },
        "endOfLifeInformation": {
            "wastePrevention": str(circ.waste_prevention_url),
            "separateCollection": str(circ.separate_collection_url),
            "informationOnCollection": str(circ.collection_info_url),
        },
    }


def performance_section(maker: ManufacturerFile, rated: RatedValues) -> dict:
    """Rated values, and the condition of a new battery dated its manufacturing day
    (battery_condition_update.apply_condition brings it up to date from the BMS history)."""
    life = maker.lifetime
    updated = timestamp(maker.manufacturing_date)

    def dated(name: str, value: float) -> dict:
        return {f"{name}Value": value, "lastUpdate": updated}

    return {
        "batteryTechicalProperties": {
            "ratedCapacity": round(rated.rated_capacity_ah, 3),
            "ratedEnergy": round(rated.rated_energy_kwh, 4),
            "nominalVoltage": round(rated.nominal_voltage_v, 3),
            "minimumVoltage": round(rated.minimum_voltage_v, 3),
            "maximumVoltage": round(rated.maximum_voltage_v, 3),
            "originalPowerCapability": [
                {"atSoC": soc, "powerCapabilityAt": round(power_w / 1000, 4)}
                for soc, power_w in rated.power_capability_w
            ],
            "ratedMaximumPower": round(rated.rated_max_power_w / 1000, 4),  # kW
            "powerCapabilityRatio": round(
                rated.rated_max_power_w / (rated.rated_energy_kwh * 1000), 4
            ),
            "roundtripEfficiency": life.round_trip_efficiency_pct,
            "roundTripEfficiencyat50PerCentCycleLife": life.round_trip_efficiency_at_half_life_pct,
            "roundTripEfficiencyFade": 0.0,
            "powerFade": 0.0,
            "initialSelfDischarge": rated.self_discharge_pct_per_month,
            "initialInternalResistance": [
                {
                    "ohmicResistance": round(rated.pack_resistance_ohm, 6),
                    "batteryComponent": "pack",
                },
                {
                    "ohmicResistance": round(rated.cell_resistance_ohm, 6),
                    "batteryComponent": "cell",
                },
            ],
            "expectedLifetime": life.expected_years,
            "expectedNumberOfCycles": life.expected_cycles,
            "lifetimeReferenceTest": str(life.cycle_life_test_url),
            "cRate": life.cycle_life_test_c_rate,
            "cRateLifeCycleTest": life.cycle_life_test_c_rate,
            "capacityThresholdForExhaustion": life.exhaustion_capacity_pct,
            "temperatureRangeIdleState": {
                "minimum": rated.idle_temp_min_c,
                "maximum": rated.idle_temp_max_c,
            },
        },
        "batteryCondition": {
            "stateOfCharge": dated("stateOfCharge", SHIPPING_SOC_PCT),
            "remainingCapacity": dated("remainingCapacity", round(rated.rated_capacity_ah, 3)),
            "capacityFade": dated("capacityFade", 0.0),
            "remainingEnergy": dated("remainingEnergy", round(rated.rated_energy_kwh, 4)),
            "stateOfCertifiedEnergy": dated("stateOfCertifiedEnergy", 100.0),
            "remainingPowerCapability": {
                "remainingPowerCapabilityValue": {
                    "atSoC": POWER_SOC_PCT,
                    "powerCapabilityAt": round(
                        dict(rated.power_capability_w)[POWER_SOC_PCT] / 1000, 4
                    ),
                    "rPCLastUpdated": updated,
                },
                "lastUpdate": updated,
            },
            "remainingRoundTripEnergyEfficiency": dated(
                "remainingRoundTripEnergyEfficiency", life.round_trip_efficiency_pct
            ),
            "internalResistanceIncrease": [
                {
                    "internalResistanceIncreaseValue": 0.0,
                    "batteryComponent": "pack",
                    "lastUpdate": updated,
                }
            ],
            "numberOfFullCycles": dated("numberOfFullCycles", 0.0),
            "energyThroughput": dated("energyThroughput", 0.0),
            "capacityThroughput": dated("capacityThroughput", 0.0),
            "currentSelfDischargingRate": dated(
                "currentSelfDischargingRate", rated.self_discharge_pct_per_month
            ),
            "evolutionOfSelfDischarge": dated("evolutionOfSelfDischarge", 0.0),
            "temperatureInformation": {
                "timeExtremeHighTemp": 0.0,
                "timeExtremeLowTemp": 0.0,
                "timeExtremeHighTempCharging": 0.0,
                "timeExtremeLowTempCharging": 0.0,
                "lastUpdate": updated,
            },
            "negativeEvents": [],
        },
    }


def labels_section(maker: ManufacturerFile) -> dict:
    conformity = maker.conformity
    return {
        "declarationOfConformity": str(conformity.declaration_url),
        "resultOfTestReport": str(conformity.test_report_url),
        "labels": [
            {
                "labelingSymbol": str(label.symbol_url),
                "labelingSubject": label.subject,
                "labelingMeaning": {"en": label.meaning},
            }
            for label in conformity.labels
        ],
    }


def build_passport(identity: Identity, maker: ManufacturerFile, rated: RatedValues) -> dict:
    """The full passport document (what the manufacturer sees) of a new battery;
    passport_fields.project cuts it down for other roles."""
    return {
        "generalProductInformation": general_section(identity, maker, rated),
        "carbonFootprint": carbon_section(maker, rated),
        "supplyChainDueDiligence": due_diligence_section(maker),
        "materialComposition": materials_section(maker, rated),
        "circularity": circularity_section(maker),
        "performance": performance_section(maker, rated),
        "labels": labels_section(maker),
    }
