"""Cell chemistries: open-circuit voltage, hysteresis, the three limit levels, ageing constants."""

from __future__ import annotations

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cellwarden.model.tables import Table2D


class LimitLevels(BaseModel):
    """Three limit levels in the spirit of foxBMS 2.

    ``mol`` is the maximum operating limit (normal operation ends here), ``rsl`` the recommended
    safety limit (the BMS must act), ``msl`` the maximum safety limit (the cell is at risk).
    For an upper limit they rise ``mol <= rsl <= msl``; for a lower limit they fall.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mol: float
    rsl: float
    msl: float


def _check_order(levels: LimitLevels, rising: bool, name: str) -> None:
    ordered = (levels.mol, levels.rsl, levels.msl)
    ok = ordered == tuple(sorted(ordered)) if rising else ordered == tuple(sorted(ordered))[::-1]
    if not ok:
        direction = "mol <= rsl <= msl" if rising else "mol >= rsl >= msl"
        raise ValueError(f"{name} levels must satisfy {direction} (got {ordered})")


class Band(BaseModel):
    """An upper and a lower set of limit levels for one quantity."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upper: LimitLevels
    lower: LimitLevels

    @model_validator(mode="after")
    def _check(self) -> Band:
        _check_order(self.upper, rising=True, name="upper")
        _check_order(self.lower, rising=False, name="lower")
        if self.lower.mol >= self.upper.mol:
            raise ValueError(
                f"lower.mol ({self.lower.mol}) must lie below upper.mol ({self.upper.mol})"
            )
        return self


class CurrentLevels(BaseModel):
    """Upper limit levels of a current magnitude, in multiples of the rated capacity (C-rate)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    upper: LimitLevels

    @model_validator(mode="after")
    def _check(self) -> CurrentLevels:
        _check_order(self.upper, rising=True, name="upper")
        if self.upper.mol <= 0:
            raise ValueError(f"upper.mol must be positive (got {self.upper.mol})")
        return self


class CellLimits(BaseModel):
    """Voltage, current and temperature limits, charge and discharge separately."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell_voltage_v: Band
    charge_current_c: CurrentLevels
    discharge_current_c: CurrentLevels
    charge_temp_c: Band
    discharge_temp_c: Band


class AgeingConstants(BaseModel):
    """Semi-empirical ageing: sqrt-time calendar fade plus throughput-driven cycle fade.

    Calendar fade [%] = calendar_fade_pct_per_sqrt_day * sqrt(days) at the reference
    temperature and 50 % SoC, scaled by Arrhenius in temperature and exponentially in SoC.
    Cycle fade [%] per equivalent full cycle at 100 % depth of discharge and <= 1C, scaled by
    Arrhenius, C-rate above 1C and depth of discharge (damage of one half cycle ~ DoD^exponent).
    Resistance grows by resistance_growth_per_fade times the relative capacity fade.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reference_temp_c: float = 25.0
    calendar_fade_pct_per_sqrt_day: float = Field(ge=0)
    calendar_activation_j_per_mol: float = Field(ge=0)
    calendar_soc_sensitivity: float = Field(ge=0, description="exp factor per unit SoC above 50 %")
    cycle_fade_pct_per_efc: float = Field(ge=0)
    cycle_activation_j_per_mol: float = Field(ge=0)
    cycle_c_rate_sensitivity: float = Field(ge=0, description="extra fade per C above 1C")
    dod_exponent: float = Field(ge=1.0, le=3.0)
    resistance_growth_per_fade: float = Field(ge=0)


class Chemistry(BaseModel):
    """Everything a cell inherits from its chemistry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    nominal_voltage_v: float = Field(gt=0)
    ocv_v: Table2D = Field(description="OCV after discharge (or the only OCV) [V]")
    ocv_charge_v: Table2D | None = Field(
        default=None, description="OCV after charge, for chemistries with hysteresis [V]"
    )
    hysteresis_rate: float = Field(
        default=0.0, ge=0, description="how fast the OCV moves between branches, per unit SoC"
    )
    resistance_factor: Table2D = Field(description="resistance relative to 25 °C / 50 % SoC")
    time_constant_factor: Table2D = Field(description="RC time constants relative to reference")
    limits: CellLimits
    ageing: AgeingConstants

    @model_validator(mode="after")
    def _check(self) -> Chemistry:
        if self.ocv_charge_v is not None and self.hysteresis_rate <= 0:
            raise ValueError("ocv_charge_v is given, so hysteresis_rate must be positive")
        ocv = self.ocv_v.as_array()
        if (ocv <= 0).any():
            raise ValueError("ocv_v values must be positive volts")
        for row in ocv:
            if (row[1:] < row[:-1]).any():
                raise ValueError("ocv_v must not fall as state of charge rises")
        if self.ocv_charge_v is not None:
            charge = self.ocv_charge_v.resample(
                np.asarray(self.ocv_v.soc_points), np.asarray(self.ocv_v.temp_points_c)
            )
            if (charge < ocv - 1e-9).any():
                raise ValueError("ocv_charge_v must not lie below ocv_v")
        lower = self.limits.cell_voltage_v.lower.msl
        upper = self.limits.cell_voltage_v.upper.msl
        if not lower < self.nominal_voltage_v < upper:
            raise ValueError(
                f"nominal_voltage_v {self.nominal_voltage_v} must lie between the voltage "
                f"safety limits {lower}..{upper}"
            )
        return self
