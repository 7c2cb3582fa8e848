"""BMS settings: power-path sequencing, balancing, estimation and diagnosis tunables.

Limits themselves live with the cell (its chemistry's mol/rsl/msl levels); these settings say
how the BMS acts on them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class PowerPathSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    precharge_done_pct: float = Field(
        default=5.0, gt=0, le=50, description="link within this share of the pack voltage"
    )
    precharge_done_current_c: float = Field(
        default=0.05, gt=0, le=2, description="and precharge current below this C-rate"
    )
    precharge_timeout_s: float = Field(default=3.0, gt=0, le=60)
    precharge_min_s: float = Field(
        default=0.0,
        ge=0,
        le=60,
        description="a dead link charged faster than this has no capacitor (0: no check)",
    )
    precharge_retries: int = Field(default=2, ge=0, le=10)
    ramp_down_timeout_s: float = Field(
        default=2.0, ge=0, le=60, description="wait for the load to stop before opening"
    )
    open_current_c: float = Field(
        default=0.02, gt=0, le=1, description="current considered stopped, as a C-rate"
    )
    welded_check_s: float = Field(default=1.0, gt=0, le=30)


class BalancingSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["voltage", "charge"] = "charge"
    threshold_v: float = Field(default=0.010, gt=0, le=0.5, description="voltage strategy")
    threshold_soc_pct: float = Field(
        default=2.0, gt=0, le=20, description="charge strategy: start above this excess"
    )
    min_cell_voltage_v: float | None = Field(
        default=None, description="no balancing below this (default: chemistry nominal)"
    )
    always_allowed: bool = Field(
        default=False, description="balance at any current, not only at rest or while charging"
    )
    max_rest_current_c: float = Field(default=0.05, gt=0, le=1)


class EstimationSettings(BaseModel):
    """The SoC filter's error model (``bms.soc_estimator``) and when it re-anchors.

    The defaults were tuned on cells the model does not share (PyBaMM DFN cells, see
    validation/README.md), not on cellwarden's own plant.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    voltage_noise_v: float = Field(
        default=0.002, gt=0, description="cell-voltage measurement noise (1 sigma)"
    )
    ocv_error_v: float = Field(
        default=0.004, gt=0, le=0.1, description="OCV table and sensor offset error (1 sigma)"
    )
    ocv_error_span_soc: float = Field(
        default=0.1, gt=0, le=1, description="SoC span over which the table's error changes"
    )
    ohmic_error_fraction: float = Field(
        default=0.7, ge=0, le=5, description="instantaneous model error, as a share of R0·|I|"
    )
    polarisation_error_fraction: float = Field(
        default=0.5, ge=0, le=5, description="slow model error, as a share of |v1 + v2|"
    )
    model_error_time_s: float = Field(
        default=300.0, gt=0, description="how long the slow model error lasts"
    )
    resistance_sigma: float = Field(
        default=0.3, gt=0, le=2, description="doubt in the R0 scale the filter tracks"
    )
    resistance_drift_time_s: float = Field(
        default=3600.0, gt=0, description="the R0 scale returns to 1 over this, unobserved"
    )
    current_gain_error: float = Field(
        default=0.005, ge=0, le=0.1, description="current sensor gain error (1 sigma)"
    )
    soc_process_noise: float = Field(default=1e-7, gt=0, description="per second")
    rc_process_noise_v: float = Field(default=1e-5, gt=0, description="per second")
    initial_soc_sigma: float = Field(default=0.3, gt=0, le=1)
    rest_current_c: float = Field(default=0.02, gt=0, le=0.5)
    rest_time_s: float = Field(default=1800.0, gt=0, description="OCV correction after rest")
    full_charge_current_c: float = Field(
        default=0.05, gt=0, le=0.5, description="CV taper current that marks a full cell"
    )


class DiagnosisSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pack_sum_tolerance_pct: float = Field(default=3.0, gt=0, le=20)
    cell_voltage_rate_v_per_s: float = Field(
        default=1.0, gt=0, description="faster cell voltage changes are implausible"
    )
    frozen_current_samples: int = Field(
        default=100, ge=10, description="identical current readings that mean a stuck sensor"
    )
    open_wire_period_s: float = Field(default=1.0, gt=0)
    imbalance_v: float = Field(default=0.15, gt=0, description="warning level of max - min")
    short_circuit_msl_factor: float = Field(
        default=1.5, gt=1, le=10, description="software short-circuit cut-off, x discharge MSL"
    )
    overcurrent_curve_s: float = Field(
        default=12.5,
        gt=0,
        description="time-current curve constant k: trip after k / ((I / I_mol)^2 - 1) s",
    )


class InternalBusSettings(BaseModel):
    """The master's dealings with its slaves over the internal CAN bus."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeout_cycles: int = Field(
        default=3, ge=1, le=20, description="missed cycles before a slave counts as lost"
    )
    balancing_timeout_s: float = Field(
        default=3.0, gt=0, le=25.5, description="a slave stops bleeding this long after a command"
    )
    slave_max_board_temp_c: float = Field(
        default=80.0, ge=20, le=125, description="a slave stops bleeding above this board temp"
    )


class BmsSettings(BaseModel):
    """How the BMS of a scenario behaves; defaults suit most packs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    power_path: PowerPathSettings = PowerPathSettings()
    balancing: BalancingSettings = BalancingSettings()
    estimation: EstimationSettings = EstimationSettings()
    diagnosis: DiagnosisSettings = DiagnosisSettings()
    internal_bus: InternalBusSettings = InternalBusSettings()
