"""A single-cell lab bench over the plant: characterisation tests and validation profiles.

The bench drives a 6S1P standalone system with no manufacturing spread and reports its cell 0,
the way a cycler with one channel would: each record holds the time, the mean current over the
interval that ends at that time (positive charges), the terminal voltage and the surface
temperature at that time, all with sensor errors from a seeded generator, plus the plant's true
state of charge for validation (``true_soc_pct``; a real bench has no such column).

Sensor errors (``SensorErrors``): voltage noise 1 mV (σ) plus a 0.5 mV offset, current noise and
offset of 0.1 % of 1C each, temperature offset within ±0.3 °C plus 0.05 °C noise. Offsets take
a random sign (and size, for the temperature) from the seed.

Tests (each returns a ``pandas.DataFrame`` with columns ``TRACE_COLUMNS``):

- ``pulse_test``: HPPC-style pulses. CC-CV to full at C/2, 1 h rest, then at each level a 1C
  discharge pulse (10 s), 40 s rest, a 0.75C charge pulse (10 s, left out at full), 40 s rest,
  a 1C discharge of 10 % SoC and a 1 h rest, from 100 % down to 10 %, then a last 5 % step and
  a final level at ~5 % SoC. Sampled at 10 Hz around the pulses, slower in long rests.
- ``slow_discharge_test``: CC-CV to full at C/2, 1 h rest, a C/20 discharge to the lower
  voltage limit, 1 h rest and (``recharge=True``) a C/20 CC-CV recharge to full and 1 h rest.
- ``drive_cycle``: an NMC-style dynamic drive profile of a few hours: trips of micro-cycles
  (accelerate at 1.5–3C, cruise at 0.2–1C, regenerate at 0.3–1C, stop) between parking rests,
  from ``start_soc_pct`` down to about ``end_soc_pct``.
- ``storage_day``: an LFP storage-style day (24 h): CC-CV charge to full at the BMS's charge
  voltage, discharge blocks of 0.2–0.5C with rests, partial recharges.

"Full" for characterisation is a CC-CV charge at ``characterisation_voltage_v`` (the
chemistry's rested OCV at 100 % SoC plus 10 mV, at most the recommended safety limit) ending at
C/20, so that the identification's SoC scale (100 % at the end of that charge) is the plant's.
Operational profiles charge at the BMS's charge voltage (the upper maximum operating limit).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from cellwarden.model.cell import CellSpec
from cellwarden.model.library import load_cell
from cellwarden.model.scenario import ChargerSpec, InitialState, SpreadSpec
from cellwarden.model.system import SystemSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.charger import ChargerSetpoints
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.power_path import SwitchStates
from cellwarden.plant.system_plant import SystemPlant

TRACE_COLUMNS = ("time_s", "current_a", "voltage_v", "temp_c", "true_soc_pct")
SERIES = 6
NO_SPREAD = SpreadSpec(
    capacity_pct=0.0, resistance_pct=0.0, self_discharge_pct_per_month=0.0, initial_soc_pct=0.0
)
NO_BLEED_OHM = 1e12  # a cycler channel has no DC-link bleed resistor drawing at rest
FULL_MARGIN_V = 0.010  # characterisation charge voltage above the OCV at 100 % SoC


@dataclass(frozen=True)
class SensorErrors:
    """Measurement errors of the bench's channel."""

    voltage_noise_v: float = 0.001
    voltage_offset_v: float = 0.0005
    current_noise_c: float = 0.001  # standard deviation, as a fraction of 1C
    current_offset_c: float = 0.001  # as a fraction of 1C
    temp_offset_c: float = 0.3  # the offset is drawn uniformly within ± this
    temp_noise_c: float = 0.05


def resolve_cell(cell: str | CellSpec) -> CellSpec:
    """A built-in cell name, a cell TOML path or a CellSpec."""
    return cell if isinstance(cell, CellSpec) else load_cell(cell)


def characterisation_voltage_v(cell: CellSpec) -> float:
    """The CC-CV voltage that charges the plant's cell to 100 % SoC (its OCV table's end)."""
    chem = cell.chemistry
    top = float(chem.ocv_v.lookup(1.0, 25.0)) + FULL_MARGIN_V
    return min(top, cell.effective_limits.cell_voltage_v.upper.rsl)


class CellBench:
    """One cell on a cycler channel (cell 0 of a 6S1P system without spread)."""

    def __init__(
        self,
        cell: str | CellSpec,
        *,
        soc_pct: float = 50.0,
        ambient_c: float = 25.0,
        seed: int = 0,
        dt_s: float = 0.1,
        parameter_refresh_s: float = 1.0,
        sensors: SensorErrors | None = None,
    ) -> None:
        self.cell = resolve_cell(cell)
        self.capacity_ah = self.cell.capacity_ah
        spec = SystemSpec.model_validate(
            {
                "architecture": "standalone",
                "dc_link_bleed_resistance_ohm": NO_BLEED_OHM,
                "strings": [
                    {
                        "pack": {"cell": self.cell, "series": SERIES},
                        "power_path": {"kind": "mosfet", "max_current_a": 250},
                    }
                ],
            }
        )
        volts = self.cell.effective_limits.cell_voltage_v
        charger = ChargerSpec(
            max_current_a=4.0 * self.capacity_ah, max_voltage_v=SERIES * volts.upper.msl
        )
        self.rng = np.random.default_rng(seed)
        self.plant = SystemPlant(
            spec,
            rng=np.random.default_rng(seed),
            dt_s=dt_s,
            parameter_refresh_s=parameter_refresh_s,
            spread=NO_SPREAD,
            initial=InitialState(soc_pct=soc_pct, temp_c=ambient_c),
            ambient_temp_c=ambient_c,
            charger=charger,
        )
        self.plant.set_switches(0, SwitchStates(charge=True, discharge=True))
        self.plant.advance_steps(max(1, round(1.0 / dt_s)))  # let the closed path settle
        self._t0 = self.plant.time_s
        self.sensors = sensors or SensorErrors()
        s = self.sensors
        one_c = self.capacity_ah
        self._v_offset = s.voltage_offset_v * self.rng.choice([-1.0, 1.0])
        self._i_offset = s.current_offset_c * one_c * self.rng.choice([-1.0, 1.0])
        self._t_offset = self.rng.uniform(-s.temp_offset_c, s.temp_offset_c)
        self._rows: list[tuple[float, float, float, float, float]] = []
        self._charge_as = self._counted_as()
        self._last_time_s = 0.0
        self._record()

    # --- what the bench knows -----------------------------------------------------------
    @property
    def time_s(self) -> float:
        """Time since the bench started recording."""
        return self.plant.time_s - self._t0

    @property
    def voltage_v(self) -> float:
        """The true terminal voltage (for the bench's own cut-offs, like a cycler's)."""
        return float(self.plant.cell_voltage_v[0])

    @property
    def current_a(self) -> float:
        return float(self.plant.cell_current_a[0])

    @property
    def true_soc(self) -> float:
        return float(self.plant.soc[0])

    def _counted_as(self) -> float:
        return float(self.plant.cs[k.CHARGE_AS][0])

    def _record(self) -> None:
        now = self.time_s
        counted = self._counted_as()
        interval = now - self._last_time_s
        mean_a = (counted - self._charge_as) / interval if interval > 0 else self.current_a
        self._charge_as, self._last_time_s = counted, now
        s, rng = self.sensors, self.rng
        one_c = self.capacity_ah
        noise = rng.standard_normal(3)
        self._rows.append(
            (
                round(now, 6),
                mean_a + self._i_offset + s.current_noise_c * one_c * noise[0],
                self.voltage_v + self._v_offset + s.voltage_noise_v * noise[1],
                float(self.plant.cell_temp_c[0]) + self._t_offset + s.temp_noise_c * noise[2],
                100.0 * self.true_soc,
            )
        )

    def frame(self) -> pd.DataFrame:
        """Everything recorded so far."""
        return pd.DataFrame(self._rows, columns=list(TRACE_COLUMNS))

    # --- what the bench does ------------------------------------------------------------
    def _hold(self, duration_s: float, sample_s: float, stop) -> bool:
        """Advance in samples of ``sample_s`` (the last may be shorter); True if stopped."""
        dt = self.plant.dt_s
        steps_total = round(duration_s / dt)
        steps_sample = max(1, round(sample_s / dt))
        while steps_total > 0:
            steps = min(steps_sample, steps_total)
            self.plant.advance_steps(steps)
            steps_total -= steps
            self._record()
            if stop is not None and stop():
                return True
        return False

    def rest(self, duration_s: float, sample_s: float = 1.0) -> None:
        """Nothing connected."""
        self.plant.set_duty(DutyMode.REST, 0.0)
        self._hold(duration_s, sample_s, None)

    def relax(self, duration_s: float) -> None:
        """A rest sampled densely first (10 Hz for 5 s, 1 Hz to 5 min, then every 10 s)."""
        plan = ((5.0, 0.1), (300.0, 1.0), (np.inf, 10.0))
        done = 0.0
        self.plant.set_duty(DutyMode.REST, 0.0)
        for until, period in plan:
            span = min(until, duration_s) - done
            if span > 1e-9:
                self._hold(span, period, None)
                done += span

    def apply(
        self,
        current_a: float,
        duration_s: float,
        sample_s: float = 1.0,
        until_v: float | None = None,
    ) -> bool:
        """A constant current (positive charges); True if it stopped at ``until_v``."""
        self.plant.set_duty(DutyMode.CURRENT, -current_a)
        if until_v is None:
            stop = None
        elif current_a < 0:
            stop = lambda: self.voltage_v <= until_v  # noqa: E731
        else:
            stop = lambda: self.voltage_v >= until_v  # noqa: E731
        stopped = self._hold(duration_s, sample_s, stop)
        self.plant.set_duty(DutyMode.REST, 0.0)
        return stopped

    def charge_cc_cv(
        self,
        current_a: float,
        voltage_v: float,
        end_current_a: float,
        sample_s: float = 1.0,
        max_duration_s: float = 48 * 3600.0,
    ) -> None:
        """Constant current up to ``voltage_v`` per cell, then constant voltage until the
        current falls below ``end_current_a``."""
        plant = self.plant
        plant.set_charger_request(ChargerSetpoints(SERIES * voltage_v, current_a))
        plant.set_duty(DutyMode.CHARGE, current_a)
        started = self.time_s

        def done() -> bool:
            return (self.current_a < end_current_a and self.voltage_v > voltage_v - 0.05) or (
                self.time_s - started >= max_duration_s
            )

        self._hold(max_duration_s, sample_s, done)
        plant.set_duty(DutyMode.REST, 0.0)
        plant.set_charger_request(None)


# --- characterisation tests ---------------------------------------------------------------
def _full_bench(cell: CellSpec, seed: int, ambient_c: float, **kwargs) -> CellBench:
    """A bench whose cell has just been charged to full and rested for an hour."""
    bench = CellBench(cell, soc_pct=90.0, seed=seed, ambient_c=ambient_c, **kwargs)
    c = bench.capacity_ah
    bench.rest(60.0, 1.0)
    bench.charge_cc_cv(0.5 * c, characterisation_voltage_v(bench.cell), c / 20.0)
    bench.relax(3600.0)
    return bench


def pulse_test(
    cell: str | CellSpec,
    *,
    seed: int = 0,
    ambient_c: float = 25.0,
    pulse_s: float = 10.0,
    step_rest_s: float = 3600.0,
    sensors: SensorErrors | None = None,
) -> pd.DataFrame:
    """HPPC-style pulse test from full down to ~5 % SoC (see the module docstring)."""
    bench = _full_bench(resolve_cell(cell), seed, ambient_c, sensors=sensors)
    c = bench.capacity_ah
    lower = bench.cell.effective_limits.cell_voltage_v.lower.mol
    steps = [0.10] * 9 + [0.05]  # 100 % -> 10 % in tens, then 5 %
    for index in range(len(steps) + 1):
        bench.apply(-1.0 * c, pulse_s, 0.1)
        bench.relax(40.0)
        if index > 0:  # no charge pulse at full: it would overshoot the charge voltage
            bench.apply(0.75 * c, 10.0, 0.1)
            bench.relax(40.0)
        if index == len(steps):
            break
        stopped = bench.apply(-1.0 * c, steps[index] * 3600.0, 1.0, until_v=lower)
        bench.relax(step_rest_s)
        if stopped:
            break
    return bench.frame()


def slow_discharge_test(
    cell: str | CellSpec,
    *,
    seed: int = 0,
    ambient_c: float = 25.0,
    c_rate: float = 1.0 / 20.0,
    recharge: bool = False,
    sample_s: float = 10.0,
    sensors: SensorErrors | None = None,
) -> pd.DataFrame:
    """C/20 discharge from full to the lower voltage limit (and optionally a C/20 recharge)."""
    spec = resolve_cell(cell)
    bench = _full_bench(spec, seed, ambient_c, parameter_refresh_s=10.0, sensors=sensors)
    c = bench.capacity_ah
    lower = spec.effective_limits.cell_voltage_v.lower.mol
    bench.apply(-c_rate * c, 2.0 / c_rate * 3600.0, sample_s, until_v=lower)
    bench.relax(3600.0)
    if recharge:
        bench.charge_cc_cv(c_rate * c, characterisation_voltage_v(spec), c / 50.0, sample_s)
        bench.relax(3600.0)
    return bench.frame()


# --- validation profiles ------------------------------------------------------------------
def drive_cycle_segments(
    rng: np.random.Generator, capacity_ah: float, soc_span: float
) -> list[tuple[float, float]]:
    """(duration_s, current_a) segments of trips and parking rests moving ``soc_span``."""
    c = capacity_ah
    budget_as = soc_span * c * 3600.0
    segments: list[tuple[float, float]] = []
    moved_as = 0.0
    while moved_as < budget_as:
        trip_s = rng.uniform(900.0, 1800.0)
        elapsed = 0.0
        while elapsed < trip_s and moved_as < budget_as:
            micro = [
                (float(rng.integers(3, 13)), -rng.uniform(1.5, 3.0) * c),  # accelerate
                (float(rng.integers(10, 91)), -rng.uniform(0.2, 1.0) * c),  # cruise
                (float(rng.integers(3, 11)), rng.uniform(0.3, 1.0) * c),  # regenerate
                (float(rng.integers(5, 41)), 0.0),  # stop
            ]
            for duration, current in micro:
                segments.append((duration, current))
                elapsed += duration
                moved_as -= current * duration
        segments.append((float(rng.integers(600, 2401)), 0.0))  # parked
    return segments


def drive_cycle(
    cell: str | CellSpec = "nmc-21700-5ah",
    *,
    seed: int = 0,
    start_soc_pct: float = 95.0,
    end_soc_pct: float = 15.0,
    ambient_c: float = 25.0,
    sensors: SensorErrors | None = None,
) -> pd.DataFrame:
    """A dynamic drive profile of a few hours at 1 Hz, from a rested cell."""
    spec = resolve_cell(cell)
    bench = CellBench(spec, soc_pct=start_soc_pct, seed=seed, ambient_c=ambient_c, sensors=sensors)
    lower = spec.effective_limits.cell_voltage_v.lower.mol
    rng = np.random.default_rng(seed + 10_000)
    bench.rest(60.0)
    span = (start_soc_pct - end_soc_pct) / 100.0
    for duration, current in drive_cycle_segments(rng, bench.capacity_ah, span):
        if current == 0.0:
            bench.rest(duration)
        elif bench.apply(current, duration, 1.0, until_v=lower if current < 0 else None):
            break
    bench.rest(600.0)
    return bench.frame()


def storage_day(
    cell: str | CellSpec = "lfp-prismatic-100ah",
    *,
    seed: int = 0,
    start_soc_pct: float = 40.0,
    ambient_c: float = 25.0,
    duration_s: float = 86_400.0,
    sensors: SensorErrors | None = None,
) -> pd.DataFrame:
    """A storage-style day at 1 Hz: full charge, discharge blocks, rests, partial recharges."""
    spec = resolve_cell(cell)
    bench = CellBench(
        spec, soc_pct=start_soc_pct, seed=seed, ambient_c=ambient_c, dt_s=1.0, sensors=sensors
    )
    c = bench.capacity_ah
    volts = spec.effective_limits.cell_voltage_v
    rng = np.random.default_rng(seed + 20_000)
    bench.rest(600.0)
    bench.charge_cc_cv(0.5 * c, volts.upper.mol, c / 50.0)
    bench.rest(1800.0)
    while bench.time_s < duration_s:
        left = duration_s - bench.time_s
        soc = bench.true_soc  # the site's own plan; the BMS under test never sees it
        if soc > 0.3:  # discharge blocks with rests, down to ~20 %
            rate = rng.uniform(0.2, 0.5)
            block = min(float(rng.integers(1800, 5401)), (soc - 0.2) / rate * 3600.0, left)
            bench.apply(-rate * c, max(block, 60.0), 1.0, until_v=volts.lower.mol)
        else:  # a partial recharge of 25-45 % at 0.2-0.4C
            rate = rng.uniform(0.2, 0.4)
            block = min(rng.uniform(0.25, 0.45) / rate * 3600.0, left)
            bench.apply(rate * c, max(block, 60.0), 1.0, until_v=volts.upper.mol)
        bench.rest(min(float(rng.integers(900, 3601)), max(duration_s - bench.time_s, 1.0)))
    return bench.frame()
