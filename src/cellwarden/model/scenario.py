"""Scenario schema: a system, its starting state, its duty profile, charger, faults, timing."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cellwarden.model.architecture import INVERTER_CAN_MAX_VOLTAGE_V
from cellwarden.model.bms import BmsSettings
from cellwarden.model.board import BoardSpec
from cellwarden.model.edge import EdgeSpec
from cellwarden.model.faults import FaultSpec
from cellwarden.model.library import read_toml, validate
from cellwarden.model.system import SystemSpec
from cellwarden.model.system_master import SystemMasterSettings


class SpreadSpec(BaseModel):
    """Cell-to-cell manufacturing spread: standard deviations, truncated at three sigma."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    capacity_pct: float = Field(default=1.0, ge=0, le=20)
    resistance_pct: float = Field(default=4.0, ge=0, le=50)
    self_discharge_pct_per_month: float = Field(default=0.3, ge=0, le=10)
    initial_soc_pct: float = Field(default=0.5, ge=0, le=20)


class InitialState(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    soc_pct: float = Field(default=80.0, ge=0, le=100)
    temp_c: float | None = Field(default=None, ge=-40, le=80, description="default: ambient")
    string_soc_pct: dict[int, float] = Field(
        default_factory=dict, description="SoC of whole strings by index, overriding soc_pct"
    )
    cell_soc_pct: dict[int, float] = Field(
        default_factory=dict, description="SoC of single cells by flat index, overriding both"
    )

    @field_validator("cell_soc_pct", "string_soc_pct")
    @classmethod
    def _check_socs(cls, value: dict[int, float], info) -> dict[int, float]:
        for index, soc in value.items():
            if not 0 <= soc <= 100:
                raise ValueError(
                    f"{info.field_name}[{index}] = {soc} is outside the allowed range 0..100"
                )
        return value


class TimingSpec(BaseModel):
    """Task rates of the simulated firmware and the plant's integration step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    plant_step_s: float = Field(default=0.01, gt=0, le=3600)
    protection_period_s: float = Field(default=0.01, gt=0)
    main_period_s: float = Field(default=0.1, gt=0)
    log_period_s: float = Field(default=1.0, gt=0)
    parameter_refresh_s: float = Field(
        default=1.0, gt=0, description="how often SoC/temperature-dependent parameters update"
    )

    @model_validator(mode="after")
    def _check_multiples(self) -> TimingSpec:
        for name in ("protection_period_s", "main_period_s", "log_period_s", "parameter_refresh_s"):
            period = getattr(self, name)
            ratio = period / self.plant_step_s
            if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6:
                raise ValueError(
                    f"{name} = {period} must be a whole multiple of plant_step_s = "
                    f"{self.plant_step_s}"
                )
        if self.main_period_s < self.protection_period_s:
            raise ValueError(
                f"main_period_s = {self.main_period_s} must not be shorter than "
                f"protection_period_s = {self.protection_period_s}"
            )
        return self


class ProfileSpec(BaseModel):
    """A sector duty profile by name with its parameters (see docs/profiles.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    parameters: dict[str, float] = Field(default_factory=dict)
    ignores_limits: bool = Field(
        default=False, description="the load draws what the profile asks, whatever the BMS says"
    )


class ChargerSpec(BaseModel):
    """A CC-CV charger; it obeys the limits it is sent unless ``ignores_limits``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_current_a: float | None = Field(
        default=None, gt=0, description="default: the installed strings' rated charge current"
    )
    max_voltage_v: float = Field(gt=0, description="hardware ceiling of its output")
    voltage_setpoint_v: float | None = Field(
        default=None, gt=0, description="CV setpoint without a request; default: the pack's"
    )
    ignores_limits: bool = False


class BusesSpec(BaseModel):
    """Which links go over CAN (``charger.dbc``, ``external.dbc``)
    rather than straight to the plant; a master always reads its slaves over CAN."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    charger: bool = Field(default=True, description="charger negotiation on the charger bus")
    vehicle: bool = Field(default=True, description="limits and state on the external bus")
    inverter: bool = Field(
        default=False,
        description="the system's limits to an inverter or charger over the Victron/Pylontech "
        "inverter CAN (replaces the charger and vehicle buses)",
    )
    period_s: float | None = Field(
        default=None,
        gt=0,
        le=1.0,
        description="how often the nodes on these buses run (default: the BMS's main period; "
        "frames the DBC sends faster go out once per run)",
    )


class Scenario(BaseModel):
    """Everything one simulation run needs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    sector: str
    seed: int = 1
    duration_s: float = Field(gt=0, le=10 * 365 * 86400)
    ambient_temp_c: float = Field(default=25.0, ge=-40, le=60)
    system: SystemSpec
    spread: SpreadSpec = SpreadSpec()
    initial: InitialState = InitialState()
    timing: TimingSpec = TimingSpec()
    profile: ProfileSpec
    charger: ChargerSpec | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    controller: Literal["bms", "open-loop"] = Field(
        default="bms", description="run the BMS in the loop, or drive the plant open loop"
    )
    board: BoardSpec = BoardSpec()
    bms: BmsSettings = BmsSettings()
    buses: BusesSpec = BusesSpec()
    system_master: SystemMasterSettings = SystemMasterSettings()
    edge: EdgeSpec = EdgeSpec()

    @model_validator(mode="after")
    def _check_faults(self) -> Scenario:
        cells = self.system.cell_count
        strings = self.system.string_count
        for cell in self.initial.cell_soc_pct:
            if not 0 <= cell < cells:
                raise ValueError(
                    f"initial.cell_soc_pct: cell {cell} is outside the allowed range 0..{cells - 1}"
                )
        if self.buses.inverter:
            rating_v = self.system.max_bus_voltage_v
            if rating_v > INVERTER_CAN_MAX_VOLTAGE_V:
                raise ValueError(
                    f"buses.inverter: the system reaches {rating_v:.1f} V, above the "
                    f"{INVERTER_CAN_MAX_VOLTAGE_V} V the inverter CAN (Pylontech low-voltage "
                    "protocol) can carry; serve SunSpec Modbus instead (cellwarden serve-modbus)"
                )
        for string in self.initial.string_soc_pct:
            if not 0 <= string < self.system.string_count:
                raise ValueError(
                    f"initial.string_soc_pct: string {string} is outside the allowed range "
                    f"0..{self.system.string_count - 1}"
                )
        for index, fault in enumerate(self.faults):
            cell = getattr(fault, "cell", None)
            if cell is not None and cell >= cells:
                raise ValueError(
                    f"faults.{index}.cell = {cell} is outside the allowed range 0..{cells - 1}"
                )
            string = getattr(fault, "string", None)
            if string is not None and string >= strings:
                raise ValueError(
                    f"faults.{index}.string = {string} is outside the allowed range "
                    f"0..{strings - 1}"
                )
        return self


def load_scenario(path: Path) -> Scenario:
    """Read and validate a scenario TOML file."""
    return validate(Scenario, read_toml(path), str(path))
