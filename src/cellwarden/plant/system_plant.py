"""The simulated battery system: every cell, its strings, power paths, the bus, load and charger."""

from __future__ import annotations

import numpy as np

from cellwarden.compiled import HAVE_NUMBA
from cellwarden.model.faults import (
    CoolingFailure,
    ExternalShort,
    FaultSpec,
    HardwareFault,
    InternalShort,
    WeldedContactor,
)
from cellwarden.model.scenario import ChargerSpec, InitialState, SpreadSpec
from cellwarden.model.system import SystemSpec
from cellwarden.plant import kernel as k
from cellwarden.plant import kernel_numpy as kn
from cellwarden.plant.ageing import AgeingConstantsArrays, AgeingState
from cellwarden.plant.charger import CV_SOURCE_RESISTANCE_OHM, Charger, ChargerSetpoints
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.layout import PlantLayout, build_layout
from cellwarden.plant.parameters import impedance_tables, ocv_tables
from cellwarden.plant.power_path import PowerPath, SwitchStates, combine_in_series
from cellwarden.plant.spread import draw_spread

SECONDS_PER_MONTH = 30.0 * 86_400.0
LOAD_CUTOUT_FRACTION = 0.3  # current and power loads stop drawing below this share of nominal V
AGEING_INTERVAL_S = 60.0  # ageing accrues at most this often (at every refresh if slower)


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
        use_numba: bool = HAVE_NUMBA,
    ) -> None:
        self.system = system
        self.layout: PlantLayout = build_layout(system)
        self.dt_s = dt_s
        self.refresh_steps = max(1, round(parameter_refresh_s / dt_s))
        self.step_count = 0
        self.use_numba = use_numba
        self._advance, self._refresh_cells, self._relax = (
            (k.advance, k.refresh_cells, k.relax_temperatures)
            if use_numba
            else (kn.advance_numpy, kn.refresh_cells_numpy, kn.relax_temperatures_numpy)
        )
        initial = initial or InitialState()
        layout = self.layout
        self.spread = draw_spread(rng, layout.cell_count, spread or SpreadSpec())
        self.rated_capacity_ah = (
            self._per_cell(lambda c: c.capacity_ah) * self.spread.capacity_factor
        )
        # Cells are stored cell-major for the compiled kernel; ``cs`` and ``cp`` are the
        # quantity-major views of the same memory (``cs[k.SOC]`` is every cell's SoC).
        self.cs = self._initial_cell_state(initial, ambient_temp_c)
        self.cp = self._static_cell_parameters()
        self.ci = np.vstack([layout.cell_group, layout.cell_type]).astype(np.int64)
        self.tables = ocv_tables(layout.cell_types)
        self.impedance = impedance_tables(layout.cell_types)
        self.ageing = AgeingState.fresh(
            AgeingConstantsArrays.from_types(
                [c.chemistry.ageing for c in layout.cell_types], layout.cell_type
            ),
            self.cs[k.SOC],
        )
        self.gs = self._group_state()
        self.bs = self._branch_state()
        self.bus = np.zeros(k.N_BUS)
        self.bus[k.BUS_CAP_F] = system.dc_link_capacitance_f
        self.bus[k.BUS_BLEED_G] = 1.0 / system.dc_link_bleed_resistance_ohm
        self.bus[k.CHARGER_RES] = CV_SOURCE_RESISTANCE_OHM
        self.bus[k.COOLANT_C] = ambient_temp_c
        self.bus[k.LOAD_MIN_V] = LOAD_CUTOUT_FRACTION * self.branch_nominal_voltage_v
        self.bus[k.LOAD_MAX_DISCHARGE_A] = np.inf
        self.bus[k.LOAD_MAX_REGEN_A] = np.inf
        self.power_paths = [PowerPath(s.power_path, s.cable_resistance_ohm) for s in layout.strings]
        self.charger = Charger(self._charger_spec(charger), self.branch_max_voltage_v)
        self.hardware_faults: list[tuple[float, HardwareFault]] = []  # (since_s, fault)
        self._duty = (DutyMode.REST, 0.0)
        self._last_ageing = (0.0, self.cs[k.THROUGHPUT_AS].copy(), self.cs[k.CHARGE_AS].copy())
        self._refresh()
        self._sync_branches()
        self._settle_open_circuit()

    def _per_cell(self, getter) -> np.ndarray:
        """A cell-type property spread out to every cell."""
        values = np.array([getter(cell) for cell in self.layout.cell_types], dtype=float)
        return values[self.layout.cell_type]

    def _initial_cell_state(self, initial: InitialState, ambient_temp_c: float) -> np.ndarray:
        cs = np.zeros((self.layout.cell_count, k.N_CELL_STATE)).T
        soc = np.full(self.layout.cell_count, initial.soc_pct / 100.0)
        for string, soc_pct in initial.string_soc_pct.items():
            soc[self.layout.cell_string == string] = soc_pct / 100.0
        cs[k.SOC] = np.clip(soc + self.spread.soc_offset, 0.0, 1.0)
        for cell, soc_pct in initial.cell_soc_pct.items():
            cs[k.SOC, cell] = soc_pct / 100.0
        cs[k.TEMP] = ambient_temp_c if initial.temp_c is None else initial.temp_c
        cs[k.TEMP_MIN_SEEN] = cs[k.TEMP]
        cs[k.TEMP_MAX_SEEN] = cs[k.TEMP]
        return cs

    def _static_cell_parameters(self) -> np.ndarray:
        layout = self.layout
        cp = np.zeros((layout.cell_count, k.N_CELL_PARAM)).T
        cp[k.HEAT_CAP] = self._per_cell(lambda c: c.heat_capacity_j_per_k)
        cp[k.COOL_G] = self._per_cell(lambda c: c.cooling_conductance_w_per_k)
        neighbour = self._per_cell(lambda c: c.neighbour_conductance_w_per_k)
        same_string = layout.cell_string[1:] == layout.cell_string[:-1]
        cp[k.NB_LEFT, 1:] = np.where(same_string, neighbour[1:], 0.0)
        cp[k.NB_RIGHT, :-1] = np.where(same_string, neighbour[:-1], 0.0)
        monthly_pct = (
            self._per_cell(lambda c: c.self_discharge_pct_per_month)
            + self.spread.self_discharge_pct_per_month
        )
        cp[k.SELF_DIS] = monthly_pct / 100.0 / SECONDS_PER_MONTH
        cp[k.HYST_RATE] = self._per_cell(lambda c: c.chemistry.hysteresis_rate)
        cp[k.LIMIT_MAX_C] = self._per_cell(lambda c: c.effective_limits.discharge_temp_c.upper.msl)
        cp[k.LIMIT_MIN_C] = self._per_cell(lambda c: c.effective_limits.discharge_temp_c.lower.msl)
        return cp

    def _branch_state(self) -> np.ndarray:
        layout = self.layout
        bs = np.zeros((k.N_BRANCH, layout.branch_count))
        for branch in range(layout.branch_count):
            paths = [
                layout.strings[s].power_path for s in np.flatnonzero(layout.string_branch == branch)
            ]
            trips = [p.short_circuit_trip_a for p in paths if p.short_circuit_trip_a is not None]
            if trips:
                bs[k.B_TRIP_A, branch] = min(trips)
                bs[k.B_TRIP_DELAY_S, branch] = max(p.short_circuit_delay_s for p in paths)
        return bs

    def _group_state(self) -> np.ndarray:
        layout = self.layout
        gs = np.zeros((k.N_GROUP, layout.group_count))
        gs[k.G_V_MIN_SEEN] = np.inf
        gs[k.G_V_MAX_SEEN] = -np.inf
        first_cell = np.searchsorted(layout.cell_group, np.arange(layout.group_count))
        group_type = layout.cell_type[first_cell]
        bands = [c.effective_limits.cell_voltage_v for c in layout.cell_types]
        gs[k.G_LIMIT_MAX_V] = np.array([band.upper.msl for band in bands])[group_type]
        gs[k.G_LIMIT_MIN_V] = np.array([band.lower.msl for band in bands])[group_type]
        return gs

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

    def _charger_spec(self, spec: ChargerSpec | None) -> ChargerSpec:
        """The scenario's charger, its current defaulting to the strings' rating."""
        default = self._default_charger()
        if spec is None:
            return default
        if spec.max_current_a is None:
            return spec.model_copy(update={"max_current_a": default.max_current_a})
        return spec

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

    @property
    def charger_plugged_in(self) -> bool:
        """The duty profile has the charger connected to the bus now."""
        return self._duty[0] is DutyMode.CHARGE

    def set_load_limits(self, discharge_a: float, regen_a: float) -> None:
        """The current a limit-respecting load (a vehicle or inverter) may draw or feed back."""
        self.bus[k.LOAD_MAX_DISCHARGE_A] = max(discharge_a, 0.0)
        self.bus[k.LOAD_MAX_REGEN_A] = max(regen_a, 0.0)

    def set_charger_request(self, request: ChargerSetpoints | None) -> None:
        """The charge voltage and current limits the charger is asked to obey."""
        self.charger.request = request
        self._sync_charger()

    def set_bleed_conductance(
        self, conductance_s: np.ndarray, groups: slice | np.ndarray = slice(None)
    ) -> None:
        """Balancing: the conductance of the bleed resistor switched across each series group
        (of ``groups`` only, when given)."""
        self.gs[k.G_BLEED_G, groups] = conductance_s

    def short_circuit_tripped(self, string: int) -> bool:
        """Whether the string's analog short-circuit cut-off has opened its path."""
        return bool(self.bs[k.B_TRIPPED, self.layout.string_branch[string]] > 0.5)

    def reset_short_circuit_trip(self, string: int) -> None:
        """Re-arm the analog cut-off (the path conducts again as commanded)."""
        self.bs[k.B_TRIPPED, self.layout.string_branch[string]] = 0.0
        self._sync_branches()

    def inject(self, fault: FaultSpec) -> None:
        """Make a fault happen now."""
        if isinstance(fault, InternalShort):
            self.cp[k.SHORT_COND, fault.cell] = 1.0 / fault.resistance_ohm
        elif isinstance(fault, HardwareFault):
            self.hardware_faults.append((self.time_s, fault))
        elif isinstance(fault, WeldedContactor):
            self.power_paths[fault.string].welded = True
            self._sync_branches()
        elif isinstance(fault, CoolingFailure):
            self.cp[k.COOL_G] *= fault.remaining_fraction
        elif isinstance(fault, ExternalShort):
            self.bus[k.SHORT_G] = 1.0 / fault.resistance_ohm

    def active_hardware_faults(self) -> list[HardwareFault]:
        """The measurement and communication faults in effect now (transient ones end)."""
        now_s = self.time_s
        return [
            fault
            for since_s, fault in self.hardware_faults
            if getattr(fault, "duration_s", None) is None
            or now_s < since_s + fault.duration_s - 1e-9
        ]

    # --- time ----------------------------------------------------------------------------
    @property
    def time_s(self) -> float:
        """Simulated time since the start."""
        return self.step_count * self.dt_s

    @property
    def refresh_interval_s(self) -> float:
        """How often circuit parameters, temperatures and ageing update."""
        return self.refresh_steps * self.dt_s

    def advance(self, duration_s: float) -> None:
        """Advance by a whole number of plant steps."""
        steps = round(duration_s / self.dt_s)
        if abs(steps * self.dt_s - duration_s) > 1e-6 * max(1.0, duration_s):
            raise ValueError(f"{duration_s} s is not a whole number of {self.dt_s} s steps")
        self.advance_steps(steps)

    def advance_steps(self, steps: int) -> None:
        """Advance ``steps`` plant steps; slow physics updates at every refresh boundary."""
        while steps > 0:
            into_refresh = self.step_count % self.refresh_steps
            chunk = min(steps, self.refresh_steps - into_refresh)
            self._advance(
                chunk, self.dt_s, *self._cell_arrays(), self.ci, self.tables, self.gs,
                self.layout.group_branch, self.bs, self.bus,
            )  # fmt: skip
            steps -= chunk
            self.step_count += chunk
            if into_refresh + chunk == self.refresh_steps:
                self._relax(*self._cell_arrays(), self.bus[k.COOLANT_C], self.refresh_interval_s)
                if self.time_s - self._last_ageing[0] >= AGEING_INTERVAL_S - 1e-9:
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
        self.cp[k.RES_SCALE] = self.spread.resistance_factor * (1.0 + self.ageing.resistance_growth)
        self._refresh_cells(
            self.impedance, self.tables, self.layout.cell_type, *self._cell_arrays(), self.dt_s
        )

    def _cell_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell state and parameters as the active kernel takes them."""
        if self.use_numba:
            return self.cs.T, self.cp.T
        return self.cs, self.cp

    def _sync_branches(self) -> None:
        layout = self.layout
        for branch in range(layout.branch_count):
            members = np.flatnonzero(layout.string_branch == branch)
            conduction = combine_in_series([self.power_paths[s].conduction() for s in members])
            tripped = self.bs[k.B_TRIPPED, branch] > 0.5
            self.bs[k.B_CONDUCTING, branch] = float(conduction.conducting and not tripped)
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
        return kn.ocv_numpy(
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
