"""Charge and discharge current limits and the charge voltage limit, derated by temperature,
cell voltage and the protection status; published for chargers, inverters and loads."""

from __future__ import annotations

from dataclasses import dataclass

from cellwarden.bms.protection import ProtectionStatus
from cellwarden.model.cell import CellSpec

DERATE_FACTOR = 0.5  # what a DERATE action leaves of the limits
TEMP_RAMP_C = 10.0  # limits rise to full over this span inside the temperature operating limits
HOT_RAMP_C = 5.0  # and fall to zero over this span below the upper operating limit
CHARGE_TAPER_V = 0.1  # charge current tapers to zero over the last 100 mV below the limit
DISCHARGE_TAPER_V = 0.2  # discharge current tapers over the first 200 mV above the lower limit
COLD_DISCHARGE_FLOOR = 0.3  # share of the discharge limit left at the lower operating limit


@dataclass(frozen=True)
class Limits:
    """What chargers and loads may do right now. Currents are magnitudes."""

    charge_current_a: float
    discharge_current_a: float
    charge_voltage_v: float
    discharge_voltage_v: float


def _ramp(value: float, zero_at: float, full_at: float) -> float:
    """0 at ``zero_at``, 1 at ``full_at``, linear between (either direction)."""
    if zero_at == full_at:
        return 1.0 if value >= full_at else 0.0
    return min(1.0, max(0.0, (value - zero_at) / (full_at - zero_at)))


class LimitCalculator:
    """Limits of one string from its cell's operating limits and the present measurements."""

    def __init__(self, cell: CellSpec, series: int, parallel: int, path_max_a: float) -> None:
        limits = cell.effective_limits
        self.volts = limits.cell_voltage_v
        self.charge_temp = limits.charge_temp_c
        self.discharge_temp = limits.discharge_temp_c
        amps_per_c = cell.capacity_ah * parallel
        self.base_charge_a = min(limits.charge_current_c.upper.mol * amps_per_c, path_max_a)
        self.base_discharge_a = min(limits.discharge_current_c.upper.mol * amps_per_c, path_max_a)
        self.series = series

    def compute(
        self,
        cell_voltage_max_v: float,
        cell_voltage_min_v: float,
        temp_min_c: float,
        temp_max_c: float,
        status: ProtectionStatus,
    ) -> Limits:
        ct, dt = self.charge_temp, self.discharge_temp
        charge = self.base_charge_a * min(
            _ramp(temp_min_c, ct.lower.mol, ct.lower.mol + TEMP_RAMP_C),
            _ramp(temp_max_c, ct.upper.mol, ct.upper.mol - HOT_RAMP_C),
            _ramp(cell_voltage_max_v, self.volts.upper.mol, self.volts.upper.mol - CHARGE_TAPER_V),
        )
        cold = COLD_DISCHARGE_FLOOR + (1 - COLD_DISCHARGE_FLOOR) * _ramp(
            temp_min_c, dt.lower.mol, dt.lower.mol + TEMP_RAMP_C
        )
        discharge = self.base_discharge_a * min(
            cold if temp_min_c >= dt.lower.mol else 0.0,
            _ramp(temp_max_c, dt.upper.mol, dt.upper.mol - HOT_RAMP_C),
            _ramp(
                cell_voltage_min_v, self.volts.lower.mol, self.volts.lower.mol + DISCHARGE_TAPER_V
            ),
        )
        if status.derate:
            charge *= DERATE_FACTOR
            discharge *= DERATE_FACTOR
        if not status.charge_allowed:
            charge = 0.0
        if not status.discharge_allowed:
            discharge = 0.0
        return Limits(
            charge_current_a=charge,
            discharge_current_a=discharge,
            charge_voltage_v=self.series * self.volts.upper.mol,
            discharge_voltage_v=self.series * self.volts.lower.mol,
        )
