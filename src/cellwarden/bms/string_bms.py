"""The BMS of one string: measurement, protection table, estimation, limits, balancing and the
power path, run as a fast protection task and a slower main task on an injected clock.

A standalone board runs one of these over its own front end and MOSFETs; a master runs one
over its slaves' measurements and its contactors.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cellwarden.bms import protection_table as q
from cellwarden.bms.balancing import Balancer
from cellwarden.bms.cell_estimation import CellEstimation
from cellwarden.bms.cell_model import CellModel, CellPoint
from cellwarden.bms.counters import StressCounters
from cellwarden.bms.event_log import BmsEventLog
from cellwarden.bms.limits import LimitCalculator, Limits
from cellwarden.bms.measurement import Plausibility, TemperatureMap
from cellwarden.bms.pack_state import PackSoc
from cellwarden.bms.power_path import PathInputs, PathState, PowerPathSequencer
from cellwarden.bms.power_prediction import HORIZONS_S, current_limits
from cellwarden.bms.protection import ProtectionEngine, ProtectionStatus, Task
from cellwarden.hardware.interfaces import (
    CellMonitor,
    ChargerLink,
    CurrentSensor,
    LoadLink,
    PowerPath,
    VoltageSample,
)
from cellwarden.model.bms import BmsSettings
from cellwarden.model.cell import CellSpec

OFFSET_GAIN = 0.01  # weight of each zero-current sample in the current-offset calibration
RESISTANCE_BOUND_FACTOR = 20.0  # x nominal R0: the most a current step can move a cell
POWER_PREDICTION_PERIOD_S = 1.0  # state of power is refreshed this often


@dataclass(frozen=True)
class StringConfig:
    """What a string's BMS is told about its hardware."""

    cell: CellSpec
    series: int
    parallel: int
    path_max_current_a: float
    bleed_resistance_ohm: float
    current_noise_a: float
    settings: BmsSettings = field(default_factory=BmsSettings)


@dataclass(frozen=True)
class BmsState:
    """The BMS's published view of its string (what CAN, telemetry and the passport read)."""

    time_s: float
    soc_pct: float
    soc_min_pct: float
    soc_max_pct: float
    energy_wh: float
    capacity_soh_pct: float
    resistance_soh_pct: float
    limits: Limits
    power_limits_a: dict[str, tuple[float, float]]
    path_state: str
    active_codes: tuple[str, ...]
    cell_voltage_min_v: float
    cell_voltage_max_v: float
    temp_min_c: float
    temp_max_c: float
    current_a: float
    pack_voltage_v: float
    balancing_cells: int


class StringBms:
    """One string's BMS; call ``fast_task`` at the protection rate and ``main_task`` slower."""

    def __init__(
        self,
        config: StringConfig,
        monitor: CellMonitor,
        current_sensor: CurrentSensor,
        power_path: PowerPath,
        charger: ChargerLink | None = None,
        load: LoadLink | None = None,
    ) -> None:
        self.config = config
        settings = config.settings
        self.monitor = monitor
        self.current_sensor = current_sensor
        self.charger = charger
        self.load = load
        self.log = BmsEventLog()
        self.model = CellModel(config.cell, config.parallel)
        capacity_ah = self.model.capacity_ah
        n = config.series
        limits = config.cell.effective_limits
        self.protection = ProtectionEngine(
            q.build_table(config.cell, config.parallel, settings), self.log
        )
        self.path = PowerPathSequencer(power_path, settings.power_path, capacity_ah, self.log)
        self.estimation = CellEstimation(
            self.model, n, settings.estimation, config.current_noise_a,
            limits.cell_voltage_v.upper.mol,
        )  # fmt: skip
        self.estimator = self.estimation.estimator
        self.recalibration = self.estimation.recalibration
        self.capacity = self.estimation.capacity
        self.resistance = self.estimation.resistance
        self.limiter = LimitCalculator(config.cell, n, config.parallel, config.path_max_current_a)
        self.balancer = Balancer(
            settings.balancing,
            n,
            config.bleed_resistance_ohm,
            config.cell.chemistry.nominal_voltage_v,
        )
        self.counters = StressCounters(
            capacity_ah, limits.cell_voltage_v.lower.rsl, limits.cell_voltage_v.upper.rsl
        )
        # a series group's ohmic resistance at 50 % SoC and 25 °C
        self.nominal_r0_ohm = float(self.model.at(np.array([0.5]), np.array([25.0])).r0_ohm[0])
        self.plausibility = Plausibility(
            settings.diagnosis, RESISTANCE_BOUND_FACTOR * self.nominal_r0_ohm
        )
        self.pack_soc = PackSoc()
        self._temperature_map = TemperatureMap(monitor.sensor_cells, config.series)
        self.wanted_on = True  # the user (key switch, inverter) wants the pack connected
        self.current_a = 0.0
        self.pack_voltage_v = 0.0  # the last independent HV sample (fast task): the stack
        self.link_voltage_v = 0.0  # and the DC link
        self.current_offset_a = 0.0
        self.charge_counted_ah = 0.0
        self._charge_since_main_as = 0.0
        self._time_since_main_s = 0.0
        self._last_fast_s: float | None = None
        self._last_main_s: float | None = None
        self._dose = 0.0
        self._voltages: VoltageSample | None = None
        self._cell_temp_c = np.full(n, 25.0)
        self._quantities: dict[str, float] = dict.fromkeys(
            [q.CELL_V_MAX, q.CELL_V_MIN, q.TEMP_MAX, q.TEMP_MIN, q.IMBALANCE_V, q.OPEN_WIRE,
             q.NTC_OPEN, q.NTC_SHORT, q.PACK_SUM_ERROR_PCT, q.CELL_RATE_V_PER_S,
             q.CELL_V_INVALID, q.CHARGING, q.DISCHARGING, q.MODULES_LOST], 0.0,
        )  # fmt: skip
        self._last_open_wire_s = -np.inf
        self.limits = self.limiter.compute(0.0, 99.0, 25.0, 25.0, self._status())
        self.power_limits_a: dict[str, tuple[float, float]] = {}
        self._energy_wh = 0.0
        self._power_limits_at_s = -np.inf
        self._published_charge_a = 0.0
        self.state: BmsState | None = None

    # --- the fast (protection) task ----------------------------------------------------------
    def fast_task(self, now_s: float) -> None:
        """Current, over-current and short circuit, the power path."""
        dt_s = 0.0 if self._last_fast_s is None else now_s - self._last_fast_s
        self._last_fast_s = now_s
        sample = self.current_sensor.sample(now_s)
        frozen = self.plausibility.current_is_frozen(sample.current_a)
        if self.path.state in (PathState.STANDBY, PathState.FAULT) and not self.path.welded:
            self.current_offset_a += OFFSET_GAIN * (sample.current_a - self.current_offset_a)
        current = sample.current_a - self.current_offset_a
        self.current_a = current
        self._charge_since_main_as += current * dt_s
        self._time_since_main_s += dt_s
        self._update_dose(dt_s, current)
        feedback = self.path.driver.feedback()
        quantities = self._quantities
        quantities[q.CHARGE_A] = max(current, 0.0)
        quantities[q.CHARGE_EXCESS_A] = current - self._published_charge_a
        quantities[q.DISCHARGE_A] = max(-current, 0.0)
        quantities[q.OVERCURRENT_DOSE] = self._dose
        quantities[q.HW_SHORT_CIRCUIT] = float(feedback.short_circuit_tripped)
        quantities[q.CURRENT_FROZEN] = float(frozen)
        quantities[q.PRECHARGE_FAILED] = float(self.path.precharge_failed)
        quantities[q.WELDED] = float(self.path.welded)
        self.protection.evaluate(now_s, Task.FAST, quantities, lambda: self._freeze_frame(now_s))
        status = self._status()
        pack_v, link_v = self.monitor.stack_and_link_v(now_s)
        self.pack_voltage_v, self.link_voltage_v = pack_v, link_v
        self.path.step(
            now_s,
            PathInputs(
                want_closed=self.wanted_on and not status.open_all and self.estimator.started,
                emergency_open=status.open_all,
                charge_allowed=status.charge_allowed,
                discharge_allowed=status.discharge_allowed,
                pack_voltage_v=pack_v,
                link_voltage_v=link_v,
                current_a=current,
                charger_present=self.charger is not None and self.charger.present(),
            ),
        )

    def _update_dose(self, dt_s: float, current_a: float) -> None:
        """Time-current curve: the dose reaches 1 after k / ((I / I_mol)^2 - 1) seconds."""
        limit_a = self.limiter.base_discharge_a
        ratio_sq = (max(-current_a, 0.0) / limit_a) ** 2
        k = self.config.settings.diagnosis.overcurrent_curve_s
        self._dose = max(0.0, self._dose + (ratio_sq - 1.0) * dt_s / k)

    # --- the main task --------------------------------------------------------------------
    def main_task(self, now_s: float) -> None:
        """Voltages, temperatures, plausibility, the full table, estimation, limits, balancing."""
        dt_s = 0.0 if self._last_main_s is None else now_s - self._last_main_s
        self._last_main_s = now_s
        mean_current = (
            self._charge_since_main_as / self._time_since_main_s
            if self._time_since_main_s > 0
            else self.current_a
        )
        counted_ah = self._charge_since_main_as / 3600.0
        self.charge_counted_ah += counted_ah
        self.counters.count_charge(counted_ah)
        self._charge_since_main_as = 0.0
        self._time_since_main_s = 0.0

        voltages = self.monitor.sample_voltages(now_s)
        self._voltages = voltages
        temps = self.monitor.sample_temperatures(now_s)
        mapped = self._temperature_map.apply(temps)
        self._cell_temp_c = np.where(
            np.isnan(mapped.cell_temp_c), self._cell_temp_c, mapped.cell_temp_c
        )
        cell_v = voltages.cell_voltage_v
        self._quantities[q.MODULES_LOST] = float(self.monitor.lost_modules())
        valid = self._plausible_channels(cell_v)
        if (
            not valid.all()
            or now_s - self._last_open_wire_s >= self.config.settings.diagnosis.open_wire_period_s
        ):
            open_wire = self.monitor.open_wire_check(now_s)
            self._last_open_wire_s = now_s
            self._quantities[q.OPEN_WIRE] = float(open_wire.any())
            valid &= ~open_wire
        self._update_quantities(voltages, temps, valid, mean_current)
        self.protection.evaluate(
            now_s, Task.MAIN, self._quantities, lambda: self._freeze_frame(now_s)
        )
        self._estimate(now_s, dt_s, mean_current, cell_v, valid)
        status = self._status()
        quantities = self._quantities
        self.limits = self.limiter.compute(
            quantities[q.CELL_V_MAX], quantities[q.CELL_V_MIN], quantities[q.TEMP_MIN],
            quantities[q.TEMP_MAX], status,
        )  # fmt: skip
        self._balance(dt_s, cell_v, status)
        self._publish_limits(status)
        self.counters.observe(dt_s, quantities[q.TEMP_MAX], quantities[q.CELL_V_MIN],
                              quantities[q.CELL_V_MAX])  # fmt: skip
        self.state = self._publish(now_s, voltages)

    def _plausible_channels(self, cell_v: np.ndarray) -> np.ndarray:
        """Channels with data inside the measurable range (NaN, no data, is never valid)."""
        volts = self.config.cell.effective_limits.cell_voltage_v
        return (cell_v > 0.5 * volts.lower.msl) & (cell_v < volts.upper.msl + 1.0)

    def _update_quantities(self, voltages, temps, valid, mean_current) -> None:
        quantities = self._quantities
        cell_v = voltages.cell_voltage_v
        trusted = cell_v[valid] if valid.any() else cell_v
        v_max, v_min = float(trusted.max()), float(trusted.min())
        quantities[q.CELL_V_MAX] = v_max
        quantities[q.CELL_V_MIN] = v_min
        # a channel without data (its slave is lost) is the communication rule's business
        quantities[q.CELL_V_INVALID] = float(not (valid | np.isnan(cell_v)).all())
        quantities[q.IMBALANCE_V] = v_max - v_min
        quantities[q.TEMP_MAX] = float(self._cell_temp_c.max())
        quantities[q.TEMP_MIN] = float(self._cell_temp_c.min())
        quantities[q.NTC_OPEN] = float(temps.open_circuit.any())
        quantities[q.NTC_SHORT] = float(temps.short_circuit.any())
        quantities[q.PACK_SUM_ERROR_PCT] = self.plausibility.pack_sum_error_pct(voltages)
        quantities[q.CELL_RATE_V_PER_S] = self.plausibility.cell_rate_v_per_s(
            voltages, self.current_a
        )
        rest_a = self.config.settings.estimation.rest_current_c * self.model.capacity_ah
        quantities[q.CHARGING] = float(mean_current > rest_a)
        quantities[q.DISCHARGING] = float(mean_current < -rest_a)

    def _estimate(self, now_s, dt_s, mean_current, cell_v, valid) -> None:
        # balancing bleeds some cells: their current is the string's less the bleed
        bleed_a = self.balancer.bleed_current_a(cell_v, self.monitor.balancing_duty())
        if not np.isfinite(bleed_a).all():  # (a lost slave's channels read NaN)
            bleed_a = np.nan_to_num(bleed_a)
        step = self.estimation.update(
            dt_s, mean_current, self.current_a, cell_v, self._cell_temp_c, valid, bleed_a,
            self.charge_counted_ah,
        )  # fmt: skip
        if step is None:
            return
        self._assess(step.point)
        done = step.recalibrated
        if done.at_rest is not None:
            self.log.info(now_s, "EST", "SoC corrected from rest voltages",
                          cells=int(done.at_rest.sum()))  # fmt: skip
        if done.full is not None:
            self.log.info(now_s, "EST", "full charge recognised", cells=int(done.full.sum()))

    def _assess(self, point: CellPoint) -> None:
        """State of power and stored energy at the estimated state."""
        e = self.estimator
        self._energy_wh = float(point.energy_wh.sum())
        if self._last_main_s - self._power_limits_at_s < POWER_PREDICTION_PERIOD_S:
            return
        self._power_limits_at_s = self._last_main_s
        volts = self.config.cell.effective_limits.cell_voltage_v
        limits = current_limits(point, e.v1, e.v2, self.model.capacity_ah, volts.lower.mol,
                                volts.upper.mol, HORIZONS_S)  # fmt: skip
        self.power_limits_a = {
            f"{horizon:g}s": limit for horizon, limit in zip(HORIZONS_S, limits, strict=True)
        }

    def _balance(self, dt_s, cell_v, status: ProtectionStatus) -> None:
        balancer = self.balancer
        charge_based = self.config.settings.balancing.strategy == "charge"
        idle = not balancer.mask.any() and not (balancer.excess_ah > balancer.threshold_ah).any()
        if charge_based and self.estimator.started and idle:
            balancer.plan(self.estimator.soc, self.capacity.capacity_ah)
        allowed = not status.open_all and self.estimator.started
        mask = balancer.update(
            dt_s, cell_v, self.current_a, self.model.capacity_ah, allowed,
            self.monitor.balancing_duty(),
        )  # fmt: skip
        self.monitor.set_balancing(mask)

    def _publish_limits(self, status: ProtectionStatus) -> None:
        """Tell the charger and the load what they may do; nothing until the path is ready."""
        ready = self.path.state is PathState.NORMAL
        charge_a = self.limits.charge_current_a if ready and status.charge_allowed else 0.0
        discharge_a = self.limits.discharge_current_a if ready and status.discharge_allowed else 0.0
        # a charger needs a moment to follow a falling limit: judge it against the larger one
        self._published_charge_a = max(charge_a, 0.5 * (charge_a + self._published_charge_a))
        if self.load is not None:
            self.load.publish(discharge_a, charge_a, ready and status.discharge_allowed)
        if self.charger is not None:
            if charge_a > 0.0:
                self.charger.request(self.limits.charge_voltage_v, charge_a)
            else:
                self.charger.stop()

    # --- reporting -------------------------------------------------------------------------
    @property
    def voltages(self) -> VoltageSample | None:
        """The last cell-voltage sample the main task used (None before the first)."""
        return self._voltages

    @property
    def cell_temp_c(self) -> np.ndarray:
        """Each cell's temperature as the main task last mapped it from the sensors."""
        return self._cell_temp_c

    def _status(self) -> ProtectionStatus:
        return self.protection.status()

    def _freeze_frame(self, now_s: float) -> dict[str, Any]:
        voltages = self._voltages
        frame: dict[str, Any] = {
            "time_s": now_s,
            "current_a": self.current_a,
            "path_state": self.path.state.value,
            "temp_min_c": float(self._cell_temp_c.min()),
            "temp_max_c": float(self._cell_temp_c.max()),
        }
        if voltages is not None:
            cell_v = voltages.cell_voltage_v
            frame.update(
                cell_voltage_min_v=float(cell_v.min()),
                cell_voltage_min_cell=int(cell_v.argmin()),
                cell_voltage_max_v=float(cell_v.max()),
                cell_voltage_max_cell=int(cell_v.argmax()),
                pack_voltage_v=voltages.pack_voltage_v,
            )
        if self.estimator.started:
            frame["soc_min_pct"] = 100.0 * float(self.estimator.soc.min())
        return frame

    def _publish(self, now_s: float, voltages: VoltageSample) -> BmsState:
        soc = self.estimator.soc
        soc_min, soc_max = float(soc.min()), float(soc.max())
        quantities = self._quantities
        soc_pct = 100.0 * self.pack_soc.update(
            now_s - (self.state.time_s if self.state else now_s),
            soc_min, soc_max, self.current_a, self.model.capacity_ah,
        )  # fmt: skip
        return BmsState(
            time_s=now_s,
            soc_pct=soc_pct,
            soc_min_pct=100.0 * soc_min,
            soc_max_pct=100.0 * soc_max,
            energy_wh=self._energy_wh,
            capacity_soh_pct=float(self.capacity.soh_pct.min()),
            resistance_soh_pct=float(self.resistance.soh_pct.min()),
            limits=self.limits,
            power_limits_a=self.power_limits_a,
            path_state=self.path.state.value,
            active_codes=self._status().active_codes,
            cell_voltage_min_v=quantities[q.CELL_V_MIN],
            cell_voltage_max_v=quantities[q.CELL_V_MAX],
            temp_min_c=quantities[q.TEMP_MIN],  # of the cells' temperatures this cycle
            temp_max_c=quantities[q.TEMP_MAX],
            current_a=self.current_a,
            pack_voltage_v=voltages.pack_voltage_v,
            balancing_cells=int(self.balancer.mask.sum()),
        )

    def apply_settings(self, settings: BmsSettings) -> None:
        """Take new settings while running (the serial console's ``set``).

        Components that read their settings object at every step get the new one, and the
        values they derived from it at construction (currents from C-rates, the balancing
        threshold in Ah, the balancing voltage floor, the frozen-sensor count) are recomputed.
        The protection table and the power-up SoC doubt are fixed at construction: changes to
        ``diagnosis`` thresholds other than ``open_wire_period_s``, ``overcurrent_curve_s`` and
        ``frozen_current_samples``, and to ``estimation.initial_soc_sigma``, take effect only
        when the BMS is built again.
        """
        self.config = replace(self.config, settings=settings)
        self.path.configure(settings.power_path)
        self.estimation.configure(settings.estimation)
        self.balancer.configure(settings.balancing)
        self.plausibility.configure(settings.diagnosis)
