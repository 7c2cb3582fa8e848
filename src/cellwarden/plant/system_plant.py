"""The simulated battery system: every cell, its strings, power paths, the bus, load and charger."""

from __future__ import annotations

import numpy as np

from cellwarden.model.faults import (
    CoolingFailure,
    ExternalShort,
    FaultSpec,
    InternalShort,
    SensorDrift,
    SensorStuck,
    WeldedContactor,
)
from cellwarden.model.scenario import ChargerSpec, InitialState, SpreadSpec
from cellwarden.model.system import SystemSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.ageing import AgeingConstantsArrays, AgeingState
from cellwarden.plant.charger import CV_SOURCE_RESISTANCE_OHM, Charger, ChargerSetpoints
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.layout import PlantLayout, build_layout
from cellwarden.plant.parameters import (
    impedance_tables,
    ocv_tables,
    refresh_impedance,
    refresh_thermal,
)
from cellwarden.plant.power_path import PowerPath, SwitchStates, combine_in_series
from cellwarden.plant.spread import draw_spread

SECONDS_PER_MONTH = 30.0 * 86_400.0
POWER_LOAD_CUTOUT_FRACTION = 0.3  # a power load stops drawing below this share of nominal V


class SystemPlant:
    """Ground truth of one battery system, advanced in fixed steps by the compiled kernel."""

    def __init__(
        self,
        system: SystemSpec,
        *,
        rng: np.random.Generator,
        dt_s: float = 0.01,
        parameter_refresh_s: float = 1.0,
        spread: SpreadSpec | None = None,
        initial: InitialState | None = None,
        ambient_temp_c: float = 25.0,
        charger: ChargerSpec | None = None,
        use_numba: bool = k.HAVE_NUMBA,
    ) -> None:
        self.system = system
        self.layout: PlantLayout = build_layout(system)
        self.dt_s = dt_s
        self.refresh_steps = max(1, round(parameter_refresh_s / dt_s))
        self.time_s = 0.0
        self._advance = k.advance if use_numba else k.advance_numpy
        initial = initial or InitialState()
        spread_draw = draw_spread(rng, self.layout.cell_count, spread or SpreadSpec())
        self.spread = spread_draw
        layout = self.layout
        types = layout.cell_types
        cell_type = layout.cell_type
        n = layout.cell_count

        def per_cell(getter) -> np.ndarray:
            return np.array([getter(cell) for cell in types], dtype=float)[cell_type]

        self.rated_capacity_ah = per_cell(lambda c: c.capacity_ah) * spread_draw.capacity_factor
        self.cs = np.zeros((k.N_CELL_STATE, n))
        self.cs[k.SOC] = np.clip(initial.soc_pct / 100.0 + spread_draw.soc_offset, 0.0, 1.0)
        self.cs[k.TEMP] = ambient_temp_c if initial.temp_c is None else initial.temp_c
        self.cp = np.zeros((k.N_CELL_PARAM, n))
        self.cp[k.HEAT_CAP] = per_cell(lambda c: c.heat_capacity_j_per_k)
        self.cp[k.COOL_G] = per_cell(lambda c: c.cooling_conductance_w_per_k)
        neighbour = per_cell(lambda c: c.neighbour_conductance_w_per_k)
        same_string = layout.cell_string[1:] == layout.cell_string[:-1]
        self.cp[k.NB_LEFT, 1:] = np.where(same_string, neighbour[1:], 0.0)
        self.cp[k.NB_RIGHT, :-1] = np.where(same_string, neighbour[:-1], 0.0)
        self.cp[k.SELF_DIS] = (
            (
                per_cell(lambda c: c.self_discharge_pct_per_month)
                + spread_draw.self_discharge_pct_per_month
            )
            / 100.0
            / SECONDS_PER_MONTH
        )
        self.cp[k.HYST_RATE] = per_cell(lambda c: c.chemistry.hysteresis_rate)
        self.ci = np.vstack([layout.cell_group, cell_type]).astype(np.int64)
        self.tables = ocv_tables(types)
        self.impedance = impedance_tables(types)
        self.ageing = AgeingState.fresh(
            AgeingConstantsArrays.from_types([c.chemistry.ageing for c in types], cell_type),
            self.cs[k.SOC],
        )
        self.gs = np.zeros((k.N_GROUP, layout.group_count))
        self.bs = np.zeros((k.N_BRANCH, layout.branch_count))
        self.bus = np.zeros(k.N_BUS)
        self.bus[k.BUS_CAP_F] = system.dc_link_capacitance_f
        self.bus[k.BUS_BLEED_G] = 1.0 / system.dc_link_bleed_resistance_ohm
        self.bus[k.CHARGER_RES] = CV_SOURCE_RESISTANCE_OHM
        self.bus[k.COOLANT_C] = ambient_temp_c
        self.bus[k.LOAD_MIN_V] = POWER_LOAD_CUTOUT_FRACTION * self.branch_nominal_voltage_v
        self.power_paths = [PowerPath(s.power_path, s.cable_resistance_ohm) for s in layout.strings]
        self.charger = Charger(
            charger or self._default_charger(), default_voltage_v=self.branch_max_voltage_v
        )
        self.sensor_faults: list[SensorStuck | SensorDrift] = []
        self._duty = (DutyMode.REST, 0.0)
        self._last_ageing = (
            self.time_s,
            self.cs[k.THROUGHPUT_AS].copy(),
            self.cs[k.CHARGE_AS].copy(),
        )
        self._refresh()
        self._sync_branches()
        self._settle_open_circuit()

    # --- configuration-derived figures -------------------------------------------------
    @property
    def branch_nominal_voltage_v(self) -> float:
        """Nominal voltage of the highest branch (the whole stack in series topology)."""
        return float(
            np.max(self._per_branch([s.pack.nominal_voltage_v for s in self.layout.strings]))
        )

    @property
    def branch_max_voltage_v(self) -> float:
        """Highest branch voltage with every cell at its maximum operating limit."""
        return float(
            np.max(self._per_branch([s.pack.max_operating_voltage_v for s in self.layout.strings]))
        )

    def _per_branch(self, per_string: list[float]) -> np.ndarray:
        return np.bincount(self.layout.string_branch, per_string, self.layout.branch_count)

    def _default_charger(self) -> ChargerSpec:
        strings = self.layout.strings
        current = sum(
            s.pack.capacity_ah * s.pack.cell.effective_limits.charge_current_c.upper.mol
            for s in strings
        )
        return ChargerSpec(max_current_a=current, max_voltage_v=self.branch_max_voltage_v)

    # --- commands --------------------------------------------------------------------------
    def set_switches(self, string: int, states: SwitchStates) -> None:
        """Command one string's power path."""
        self.power_paths[string].command = states
        self._sync_branches()

    def set_duty(self, mode: DutyMode, value: float) -> None:
        """Apply a duty-profile segment to the bus (load demand or charger plug-in)."""
        self._duty = (mode, value)
        self.bus[k.LOAD_MODE] = int(mode)
        self.bus[k.LOAD_VALUE] = value
        self._sync_charger()

    def set_charger_request(self, request: ChargerSetpoints | None) -> None:
        """The charge voltage and current limits the charger is asked to obey."""
        self.charger.request = request
        self._sync_charger()

    def set_coolant_temp(self, temp_c: float) -> None:
        self.bus[k.COOLANT_C] = temp_c

    def inject(self, fault: FaultSpec) -> None:
        """Make a fault happen now."""
        if isinstance(fault, InternalShort):
            self.cp[k.SHORT_COND, fault.cell] = 1.0 / fault.resistance_ohm
        elif isinstance(fault, SensorStuck | SensorDrift):
            self.sensor_faults.append(fault)
        elif isinstance(fault, WeldedContactor):
            self.power_paths[fault.string].welded = True
            self._sync_branches()
        elif isinstance(fault, CoolingFailure):
            self.cp[k.COOL_G] *= fault.remaining_fraction
            refresh_thermal(self.cp, self.dt_s)
        elif isinstance(fault, ExternalShort):
            self.bus[k.SHORT_G] = 1.0 / fault.resistance_ohm

    # --- time ----------------------------------------------------------------------------
    def advance(self, duration_s: float) -> None:
        """Advance by a whole number of plant steps."""
        steps = round(duration_s / self.dt_s)
        if abs(steps * self.dt_s - duration_s) > 1e-6 * max(1.0, duration_s):
            raise ValueError(f"{duration_s} s is not a whole number of {self.dt_s} s steps")
        while steps > 0:
            into_refresh = round(self.time_s / self.dt_s) % self.refresh_steps
            chunk = min(steps, self.refresh_steps - into_refresh)
            self._advance(
                chunk,
                self.dt_s,
                self.cs,
                self.cp,
                self.ci,
                self.tables,
                self.gs,
                self.layout.group_branch,
                self.bs,
                self.bus,
            )
            steps -= chunk
            self.time_s += chunk * self.dt_s
            if into_refresh + chunk == self.refresh_steps:
                self._accrue_ageing()
                self._refresh()

    def _settle_open_circuit(self) -> None:
        """Group voltages before the first step: every group at its open-circuit voltage."""
        groups = self.layout.cell_group
        weights = self.cp[k.COND]
        emf = np.bincount(groups, weights * self.cell_ocv_v, self.layout.group_count)
        self.gs[k.G_VOLT] = emf / np.bincount(groups, weights, self.layout.group_count)

    def _accrue_ageing(self) -> None:
        last_time, last_throughput, last_charge = self._last_ageing
        throughput = self.cs[k.THROUGHPUT_AS]
        charge = self.cs[k.CHARGE_AS]
        self.ageing.accrue(
            self.time_s - last_time,
            self.cs[k.SOC],
            self.cs[k.TEMP],
            (throughput - last_throughput) / 3600.0,
            (charge - last_charge) / 3600.0,
            self.capacity_ah,
        )
        self._last_ageing = (self.time_s, throughput.copy(), charge.copy())

    def _refresh(self) -> None:
        self.cp[k.INV_CAP] = 1.0 / (3600.0 * self.capacity_ah)
        refresh_impedance(
            self.cp,
            self.impedance,
            self.layout.cell_type,
            self.cs[k.SOC],
            self.cs[k.TEMP],
            self.spread.resistance_factor * (1.0 + self.ageing.resistance_growth),
            self.dt_s,
        )
        refresh_thermal(self.cp, self.dt_s)

    def _sync_branches(self) -> None:
        layout = self.layout
        for branch in range(layout.branch_count):
            members = np.flatnonzero(layout.string_branch == branch)
            conduction = combine_in_series([self.power_paths[s].conduction() for s in members])
            self.bs[k.B_CONDUCTING, branch] = float(conduction.conducting)
            self.bs[k.B_PATH_RES, branch] = (
                conduction.resistance_ohm if conduction.conducting else 0.0
            )
            self.bs[k.B_ALLOW_CHARGE, branch] = float(conduction.allow_charge)
            self.bs[k.B_ALLOW_DISCHARGE, branch] = float(conduction.allow_discharge)

    def _sync_charger(self) -> None:
        mode, value = self._duty
        plugged = mode is DutyMode.CHARGE
        setpoints = self.charger.setpoints(value if plugged else 0.0)
        self.bus[k.CHARGER_ON] = float(plugged and setpoints.current_a > 0)
        self.bus[k.CHARGER_IMAX] = setpoints.current_a
        self.bus[k.CHARGER_VSET] = setpoints.voltage_v

    # --- ground truth ------------------------------------------------------------------------
    @property
    def capacity_ah(self) -> np.ndarray:
        """Each cell's present capacity, after ageing."""
        return self.rated_capacity_ah * (1.0 - self.ageing.capacity_fade)

    @property
    def soc(self) -> np.ndarray:
        return self.cs[k.SOC]

    @property
    def cell_temp_c(self) -> np.ndarray:
        return self.cs[k.TEMP]

    @property
    def cell_current_a(self) -> np.ndarray:
        """Each cell's current over the last step (positive charging)."""
        return self.cs[k.CURRENT]

    @property
    def cell_voltage_v(self) -> np.ndarray:
        """Each cell's terminal voltage over the last step (parallel cells share it)."""
        return self.gs[k.G_VOLT, self.layout.cell_group]

    @property
    def cell_ocv_v(self) -> np.ndarray:
        return k.ocv_numpy(
            self.tables, self.layout.cell_type, self.cs[k.SOC], self.cs[k.TEMP], self.cs[k.HYST]
        )

    @property
    def string_current_a(self) -> np.ndarray:
        """Each string's current (positive charging)."""
        return self.bs[k.B_CURRENT, self.layout.string_branch]

    @property
    def string_voltage_v(self) -> np.ndarray:
        """Each string's terminal voltage, before its power path."""
        return np.bincount(self.layout.group_string, self.gs[k.G_VOLT], self.layout.string_count)

    @property
    def bus_voltage_v(self) -> float:
        """DC-link voltage on the load side of the power paths."""
        return float(self.bus[k.BUS_V])

    @property
    def load_current_a(self) -> float:
        return float(self.bus[k.LOAD_CURRENT])

    @property
    def charger_current_a(self) -> float:
        return float(self.bus[k.CHARGER_CURRENT])
