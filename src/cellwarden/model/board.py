"""The measurement and switching hardware of a BMS board: its errors, rates and ratings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CellMonitorSpec(BaseModel):
    """A cell-monitor front end (an LTC681x/BQ769x0-class chip) and its sense lines."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    adc_lsb_v: float = Field(default=100e-6, gt=0, le=0.01, description="voltage resolution")
    noise_v: float = Field(default=0.8e-3, ge=0, le=0.05, description="white noise (1 sigma)")
    gain_error_pct: float = Field(default=0.05, ge=0, le=2, description="per channel (1 sigma)")
    offset_v: float = Field(default=1.0e-3, ge=0, le=0.05, description="per channel (1 sigma)")
    conversion_period_s: float = Field(default=0.1, gt=0, le=10, description="new data every")
    pack_gain_error_pct: float = Field(default=0.2, ge=0, le=5, description="stack measurement")
    cells_per_temp_sensor: int = Field(default=4, ge=1, le=18, description="one NTC every N cells")


class NtcSpec(BaseModel):
    """NTC thermistors read through a pull-up divider by a 12-bit ADC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r25_ohm: float = Field(default=10_000.0, gt=0)
    beta_k: float = Field(default=3435.0, gt=0)
    pullup_ohm: float = Field(default=10_000.0, gt=0)
    adc_bits: int = Field(default=12, ge=8, le=24)
    noise_c: float = Field(default=0.2, ge=0, le=5)
    tolerance_c: float = Field(default=0.5, ge=0, le=5, description="per sensor (1 sigma)")


class CurrentSensorSpec(BaseModel):
    """A shunt with its amplifier and ADC."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_a: float = Field(default=0.02, ge=0, le=10, description="zero offset (1 sigma)")
    gain_error_pct: float = Field(default=0.3, ge=0, le=5, description="(1 sigma)")
    noise_a: float = Field(default=0.05, ge=0, le=10, description="white noise (1 sigma)")
    lsb_a: float = Field(default=0.01, gt=0, le=1)


class BalancingSpec(BaseModel):
    """Passive balancing: a bleed resistor per cell, switched by the front end."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bleed_resistance_ohm: float = Field(default=10.0, gt=0, description="current follows V/R")
    max_board_power_w: float = Field(default=8.0, gt=0, description="all resistors together")
    derate_start_c: float = Field(default=55.0, description="board temperature derating begins")
    derate_stop_c: float = Field(default=85.0, description="balancing fully off")
    board_thermal_resistance_k_per_w: float = Field(default=4.0, ge=0)


class BoardSpec(BaseModel):
    """Everything about a board's hardware that the simulated drivers model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cell_monitor: CellMonitorSpec = CellMonitorSpec()
    ntc: NtcSpec = NtcSpec()
    current_sensor: CurrentSensorSpec = CurrentSensorSpec()
    balancing: BalancingSpec = BalancingSpec()
