"""Cell specification: capacity, equivalent-circuit parameters, thermal data."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from cellwarden.model.chemistry import CellLimits, Chemistry
from cellwarden.model.tables import Table2D

ParameterValue = float | Table2D
"""A number is the value at 25 °C / 50 % SoC scaled by the chemistry's shape; a table is taken
as it is."""


class CellSpec(BaseModel):
    """One cell type: a two-RC equivalent circuit with a lumped thermal mass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    chemistry: Chemistry
    capacity_ah: float = Field(gt=0, le=2000)
    r0_ohm: ParameterValue = Field(description="series resistance")
    r1_ohm: ParameterValue = Field(description="fast RC pair resistance")
    tau1_s: ParameterValue = Field(description="fast RC pair time constant")
    r2_ohm: ParameterValue = Field(description="slow RC pair resistance")
    tau2_s: ParameterValue = Field(description="slow RC pair time constant")
    mass_kg: float = Field(gt=0)
    specific_heat_j_per_kg_k: float = Field(gt=0, default=1000.0)
    cooling_conductance_w_per_k: float = Field(
        ge=0, description="heat path from the cell to its coolant or the ambient air"
    )
    neighbour_conductance_w_per_k: float = Field(
        ge=0, default=0.0, description="heat path to each adjacent cell"
    )
    self_discharge_pct_per_month: float = Field(ge=0, default=2.0)
    taper_resistance_ohm: float | None = Field(
        default=None,
        gt=0,
        description="apparent resistance at the end of a CC-CV charge: the CV voltage less "
        "the OCV, over the taper current (measured by `cellwarden identify`; default: "
        "R0 + R1 + R2 at full charge)",
    )
    limits: CellLimits | None = Field(
        default=None, description="overrides the chemistry's limits when given"
    )

    @field_validator("r0_ohm", "r1_ohm", "tau1_s", "r2_ohm", "tau2_s")
    @classmethod
    def _positive(cls, value: ParameterValue, info: ValidationInfo) -> ParameterValue:
        values = value.as_array() if isinstance(value, Table2D) else [value]
        if (np.asarray(values) <= 0).any():
            raise ValueError(f"{info.field_name} must be positive everywhere")
        return value

    @property
    def effective_limits(self) -> CellLimits:
        """The cell's own limits, or its chemistry's."""
        return self.limits or self.chemistry.limits

    @property
    def heat_capacity_j_per_k(self) -> float:
        return self.mass_kg * self.specific_heat_j_per_kg_k

    @property
    def max_charge_voltage_v(self) -> float:
        """The charge voltage of normal operation (the upper maximum operating limit)."""
        return self.effective_limits.cell_voltage_v.upper.mol
