"""The manufacturer file: a battery model's static passport data that no BMS measures.

Identity, addresses, materials, hazardous substances, carbon footprint, recycled content, due
diligence, documents and labels, lifetime and warranty, as TOML (docs/passport.md has the
schema and an example). The rated electrical values come from the system configuration
(rated_values.py), not from here.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from importlib import resources
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from cellwarden.model.library import read_toml, validate

EXAMPLE_NAME = "example-manufacturer.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Address(_Strict):
    street: str = Field(min_length=1)
    postal_code: str = Field(min_length=1)
    country: str = Field(min_length=2)


class Party(_Strict):
    """A manufacturer or operator (ESPR Art. 2(32) identifier, contact, address)."""

    identifier: str = Field(min_length=1)
    name: str = Field(min_length=1)
    address: Address
    web: HttpUrl | None = None


class BatteryCategory(StrEnum):
    LMT = "lmt"
    EV = "ev"
    INDUSTRIAL = "industrial"
    STATIONARY = "stationary"


class Material(_Strict):
    name: str
    cas: str = Field(pattern=r"^\d{2,7}-\d{2}-\d$")
    share_of_cells_mass_pct: float = Field(gt=0, le=100)
    component: str = Field(description="cathode, anode, electrolyte, separator, housing ...")
    critical_raw_material: bool = False
    chemistries: list[str] | None = Field(
        default=None, description="only in batteries of these chemistries (default: all)"
    )


class HazardClass(StrEnum):
    ACUTE_TOXICITY = "AcuteToxicity"
    SKIN = "SkinCorrosionOrIrritation"
    EYE = "EyeDamageOrIrritation"


class HazardousSubstance(_Strict):
    name: str
    cas: str = Field(pattern=r"^\d{2,7}-\d{2}-\d$")
    hazard_class: HazardClass
    concentration_pct: float = Field(ge=0, le=100)
    component: str
    impacts: list[str] = Field(min_length=1)
    chemistries: list[str] | None = None


class LifecycleStages(_Strict):
    """kg CO2-eq per kWh of total energy over the service life, per stage."""

    raw_material_extraction: float = Field(ge=0)
    main_production: float = Field(ge=0)
    distribution: float = Field(ge=0)
    recycling: float = Field(ge=0)


class CarbonFootprint(_Strict):
    performance_class: str
    study_url: HttpUrl
    stages_kg_co2e_per_kwh: LifecycleStages


class DueDiligence(_Strict):
    report_url: HttpUrl
    assurances_url: HttpUrl | None = None
    supply_chain_index: float | None = Field(default=None, ge=0)


class RecycledShare(_Strict):
    material: str = Field(pattern="^(Nickel|Cobalt|Lithium|Lead)$")
    pre_consumer_pct: float = Field(ge=0, le=100)
    post_consumer_pct: float = Field(ge=0, le=100)


class Document(_Strict):
    kind: str = Field(
        pattern="^(BillOfMaterial|Model3D|DismantlingManual|RemovalManual|OtherManual|Drawing)$"
    )
    url: HttpUrl
    mime_type: str = "application/pdf"


class SparePart(_Strict):
    name: str
    number: str


class SparePartSupplier(_Strict):
    name: str
    address: Address
    email: str = Field(pattern=r"^[\w.-]+@[\w.-]+\.[A-Za-z]{2,}$")
    web: HttpUrl
    parts: list[SparePart] = Field(min_length=1)


class Circularity(_Strict):
    documents: list[Document] = Field(min_length=1)
    spare_part_suppliers: list[SparePartSupplier] = Field(min_length=1)
    recycled_content: list[RecycledShare] = Field(default_factory=list)
    renewable_content_pct: float = Field(ge=0, le=100)
    safety_instructions_url: HttpUrl
    extinguishing_agents: list[str] = Field(min_length=1)
    waste_prevention_url: HttpUrl
    separate_collection_url: HttpUrl
    collection_info_url: HttpUrl


class Label(_Strict):
    subject: str = Field(
        pattern="^(SeparateCollection|HazardousMaterial|CarbonFootPrint|ExtinguishingAgent)$"
    )
    symbol_url: HttpUrl
    meaning: str


class Conformity(_Strict):
    declaration_url: HttpUrl
    test_report_url: HttpUrl
    labels: list[Label] = Field(min_length=1)


class Lifetime(_Strict):
    expected_years: int = Field(ge=1, le=50)
    expected_cycles: int = Field(ge=1)
    cycle_life_test_url: HttpUrl
    cycle_life_test_c_rate: float = Field(gt=0)
    exhaustion_capacity_pct: float = Field(gt=0, lt=100, default=80.0)
    round_trip_efficiency_pct: float = Field(gt=0, le=100)
    round_trip_efficiency_at_half_life_pct: float = Field(gt=0, le=100)
    warranty_months: int = Field(ge=1, le=600)


class ManufacturerFile(_Strict):
    namespace: str = Field(
        default="cellwarden",
        pattern="^[a-z0-9]+$",
        description="the identifier's namespace: urn:NAMESPACE:SERIAL",
    )
    category: BatteryCategory | None = Field(
        default=None, description="default: from the scenario's sector (builder.battery_category)"
    )
    model: str
    manufacturer: Party
    operator: Party | None = None  # defaults to the manufacturer
    manufacturing_place: Address
    manufacturing_date: date
    putting_into_service: date | None = None
    packaging_mass_factor: float = Field(
        default=1.35,
        ge=1.0,
        le=5.0,
        description="battery mass over the cells' mass (housing, BMS, busbars, cooling)",
    )
    lifetime: Lifetime
    materials: list[Material] = Field(min_length=1)
    hazardous_substances: list[HazardousSubstance] = Field(default_factory=list)
    carbon_footprint: CarbonFootprint
    due_diligence: DueDiligence
    circularity: Circularity
    conformity: Conformity

    @model_validator(mode="after")
    def _check(self) -> ManufacturerFile:
        for chemistry in {c for m in self.materials for c in m.chemistries or ()} or {None}:
            total = sum(m.share_of_cells_mass_pct for m in self.materials_of(chemistry))
            if total > 100 + 1e-6:
                raise ValueError(
                    f"materials: shares of the cells' mass add up to {total:g} % "
                    f"(> 100) for {chemistry or 'every chemistry'}"
                )
        if self.putting_into_service and self.putting_into_service < self.manufacturing_date:
            raise ValueError("putting_into_service is before manufacturing_date")
        return self

    def materials_of(self, chemistry: str | None) -> list[Material]:
        return [m for m in self.materials if _applies(m.chemistries, chemistry)]

    def hazards_of(self, chemistry: str | None) -> list[HazardousSubstance]:
        return [h for h in self.hazardous_substances if _applies(h.chemistries, chemistry)]


def _applies(chemistries: list[str] | None, chemistry: str | None) -> bool:
    return (
        chemistries is None
        or chemistry is None
        or chemistry.upper() in {c.upper() for c in chemistries}
    )


def load_manufacturer_file(path: Path | None = None) -> ManufacturerFile:
    """Read and check a manufacturer file; without a path, the built-in example."""
    if path is None:
        entry = resources.files("cellwarden.passport") / "library" / EXAMPLE_NAME
        with resources.as_file(entry) as example:
            return validate(ManufacturerFile, read_toml(example), f"built-in {EXAMPLE_NAME}")
    return validate(ManufacturerFile, read_toml(path), str(path))
