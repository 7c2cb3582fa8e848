"""Identify a cell's two-RC model from pulse (HPPC) and slow (C/20) tests, at one or more
chamber temperatures.

Per test temperature (a pulse trace and a slow trace):

1. Current offset: the median current over a trace's rests of a minute or more is its
   sensor's offset and is taken off (a trace without rests takes the other's).
2. The SoC scale is the cell's equilibrium window: 0 % where a slow discharge reaches the
   lower voltage limit, 100 % where the OCV equals the CV voltage of the full charge. A CC-CV
   charge that stops at a taper current leaves the cell short of that; the taper's tail
   (nearly exponential) says by how much: the last current times its time constant. So the
   capacity is the charge counted from the end of the full charge to the end of the slow
   discharge, plus that shortfall; ``capacity_ah`` as given is the rated one, used for the
   C-rates of the analysis and compared with the measurement.
3. R0, R1, tau1, R2, tau2 at every pulse level (``pulses``).
4. The OCV: the slow test's shape on the rests' levels (``ocv``).
5. The taper resistance: the CV voltage less the OCV where the full charge ended, over the
   taper current; the BMS uses it to read the SoC at the end of its own CV charges.

Several temperatures give one row each in every table (interpolated between them). By
default the tables also take the base chemistry's temperature dependence beyond the tested
range; ``temperature_from_base=False`` writes the tested rows alone. Capacity and taper
resistance come from the test closest to 25 °C.

The result is a CellSpec-compatible cell: r0/r1/tau1/r2/tau2 as tables over the levels'
SoC, an inline chemistry copied from the base chemistry (given, or the built-in one whose
OCV is closest) with the identified OCV, and mass and thermal data from the built-in cell of
that chemistry closest in capacity (mass scaled with capacity, heat paths with
capacity^(2/3)); those are not identified.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cellwarden.bms.identification.cell_file import temperature_table, to_toml
from cellwarden.bms.identification.ocv import (
    PARAMETERS,
    branches,
    empty_remainder,
    guess_chemistry,
    identify_ocv,
    join_base,
    model_overpotential,
    ocv_grid,
    smooth_curve,
    to_empty,
    to_full,
)
from cellwarden.bms.identification.pulses import LevelFit, analyse_pulses, edge_resistance, levels
from cellwarden.bms.identification.trace import (
    REST_ANCHOR_S,
    REST_CURRENT_C,
    RestAnchor,
    Trace,
    estimate_offset,
    prepare,
)
from cellwarden.bms.trace_replay import check_trace
from cellwarden.model.cell import CellSpec
from cellwarden.model.chemistry import Chemistry
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import builtin_names, cell_from_dict, load_cell, load_chemistry

DEFAULT_HYSTERESIS_RATE = 30.0
CAPACITY_WARNING = 0.05  # a measured capacity this far from the rated one gets a note
REFERENCE_TEMP_C = 25.0
MIN_ANCHORS = 3  # fewer long rests than this leave the OCV's level to the slow test


@dataclass
class TemperatureFit:
    """What the tests at one chamber temperature gave."""

    temp_c: float
    levels: list[LevelFit]
    ocv_v: np.ndarray  # on the grid (the discharge branch where there is hysteresis)
    ocv_charge_v: np.ndarray | None
    gap_v: float | None
    capacity_ah: float  # equilibrium window, measured (or the rated one when it cannot be)
    lab_capacity_ah: float  # from the end of the full charge to the end of the slow discharge
    full_soc: float  # where the slow test's full charge left the cell
    taper_resistance_ohm: float | None
    current_offset_a: tuple[float, float]  # of the pulse and the slow trace
    anchors: int


def reference_fit(fits: list[TemperatureFit]) -> TemperatureFit:
    """The test closest to 25 °C: capacity and taper resistance come from it."""
    return min(fits, key=lambda fit: abs(fit.temp_c - REFERENCE_TEMP_C))


@dataclass
class Identification:
    """An identified cell: the TOML content, the validated spec and what the fit saw."""

    data: dict[str, Any]
    cell: CellSpec
    fits: list[TemperatureFit]  # one per test temperature, sorted by temperature
    base_chemistry: str
    notes: list[str]

    @property
    def reference(self) -> TemperatureFit:
        return reference_fit(self.fits)

    @property
    def levels(self) -> list[LevelFit]:
        return self.reference.levels

    @property
    def test_temp_c(self) -> float:
        return self.reference.temp_c

    @property
    def hysteresis(self) -> bool:
        return self.cell.chemistry.ocv_charge_v is not None

    def toml(self) -> str:
        """The cell as a TOML document with a commented header."""
        header = [
            f"# {self.cell.name}: identified by `cellwarden identify`",
            f"# base chemistry {self.base_chemistry}; tests at "
            + ", ".join(f"{fit.temp_c:.1f}" for fit in self.fits) + " °C",
        ]  # fmt: skip
        for fit in self.fits:
            header += [
                f"# {fit.temp_c:.1f} °C: current offsets removed: pulse "
                f"{1000 * fit.current_offset_a[0]:.2f} mA, slow "
                f"{1000 * fit.current_offset_a[1]:.2f} mA; {fit.anchors} rest anchors",
                f"#   capacity {fit.capacity_ah:.4f} Ah (full charge to the slow discharge's end"
                f" {fit.lab_capacity_ah:.4f} Ah; the full charge left the cell at "
                f"{100 * fit.full_soc:.2f} %)",
                "#   level SoC %, R0 mOhm, R1 mOhm, tau1 s, R2 mOhm, tau2 s, fit rms mV"
                " (* = from neighbours):",
            ]
            for level in fit.levels:
                mark = "*" if level.filled else " "
                header.append(
                    f"#  {100 * level.soc:6.1f} {1000 * level.r0_ohm:8.3f}"
                    f" {1000 * level.r1_ohm:8.3f} {level.tau1_s:7.1f}"
                    f" {1000 * level.r2_ohm:8.3f} {level.tau2_s:7.0f} {level.rms_mv:6.2f} {mark}"
                )
        header += [f"# note: {note}" for note in self.notes]
        header.append("# mass and thermal data are not identified: they come from a built-in cell")
        return "\n".join(header) + "\n\n" + to_toml(self.data)

    def write(self, path: Path | str) -> Path:
        path = Path(path)
        path.write_text(self.toml(), encoding="utf-8")
        return path


def template_cell(chemistry: Chemistry, capacity_ah: float) -> CellSpec:
    """The built-in cell of the chemistry closest in capacity (any cell if none has it)."""
    cells = [load_cell(name) for name in builtin_names("cells")]
    same = [c for c in cells if c.chemistry.name == chemistry.name] or cells
    return min(same, key=lambda c: abs(math.log(c.capacity_ah / capacity_ah)))


def _scalar(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    return float(value.lookup(0.5, 25.0))


def _template_ratios(template: CellSpec) -> dict[str, float]:
    r0 = _scalar(template.r0_ohm)
    return {
        "r1_ohm": _scalar(template.r1_ohm) / r0,
        "r2_ohm": _scalar(template.r2_ohm) / r0,
        "tau1_s": _scalar(template.tau1_s),
        "tau2_s": _scalar(template.tau2_s),
    }


def _first_curve(slow: Trace, pulse: Trace, rated_ah: float):
    """A first OCV (IR taken off with three times the median R0 of the pulse edges) on a
    coarse grid: it gives the chemistry and the slope the pulse fits need."""
    r0_edges = [edge_resistance(pulse, level, rated_ah, None, 0.0) for level in levels(pulse)]
    r0_guess = float(np.nanmedian(r0_edges)) if np.isfinite(r0_edges).any() else 0.0
    (soc, volts), _ = branches(slow, 3.0 * r0_guess * slow.i, rated_ah)
    if soc.size < 10:
        raise ConfigError("slow-discharge trace: too few discharge rows to build an OCV curve")
    grid = np.linspace(0.0, 1.0, 101)
    rough = smooth_curve(soc, volts, grid, window=0.02)
    known = ~np.isnan(rough)
    rough = np.interp(grid, grid[known], rough[known])
    return soc, volts, grid, np.gradient(rough, grid)


def _scale(
    slow: Trace,
    pulse: Trace,
    rated_ah: float,
    base: Chemistry,
    notes: list[str],
    remainder_ah: float = 0.0,
) -> tuple[float, float]:
    """(capacity of the equilibrium window, charge from full to the slow discharge's end);
    sets both traces' SoC. ``remainder_ah`` is what the cell still held at the discharge's
    end. Without a slow discharge down to the chemistry's lower operating limit the capacity
    cannot be measured: the rated one is used."""
    discharging = np.flatnonzero(slow.i < -REST_CURRENT_C * rated_ah)
    lab_ah = float(slow.removed_ah[discharging].max())
    lowest_v = float(slow.v[discharging].min())
    floor_v = base.limits.cell_voltage_v.lower.mol
    if lowest_v <= floor_v:
        capacity_ah = lab_ah + slow.beyond_full_ah + remainder_ah
    else:
        capacity_ah = rated_ah
        notes.append(
            f"the slow discharge stopped at {lowest_v:.3f} V, above the {base.name} lower "
            f"operating limit of {floor_v:g} V: the capacity cannot be measured, the rated "
            f"{rated_ah:g} Ah is used"
        )
    for trace in (slow, pulse):
        trace.set_scale(capacity_ah, 1.0 - trace.beyond_full_ah / capacity_ah)
    return capacity_ah, lab_ah


def _discharge_end(slow: Trace, rated_ah: float) -> tuple[float, RestAnchor | None]:
    """The slow discharge's floor voltage and the rest anchor right after it (if any)."""
    discharging = np.flatnonzero(slow.i < -REST_CURRENT_C * rated_ah)
    end = int(discharging[np.argmax(slow.removed_ah[discharging])])
    after = [a for a in slow.rest_anchors() if a.row > end and slow.rest[end + 1 : a.row].all()]
    return float(slow.v[end]), (after[0] if after else None)


def _fit_at_scale(pulse: Trace, slow: Trace, rated_ah: float, template: CellSpec, grid):
    """The pulse levels and the OCV branches with the traces' SoC as it is set now."""
    _, _, slope_grid, slopes = _first_curve(slow, pulse, rated_ah)
    fits = analyse_pulses(
        pulse, rated_ah, lambda s: float(np.interp(s, slope_grid, slopes)),
        _template_ratios(template),
    )  # fmt: skip
    discharge_points, charge_points = branches(slow, model_overpotential(slow, fits), rated_ah)
    anchors = [(float(tr.soc[a.row]), a) for tr in (pulse, slow) for a in tr.rest_anchors()]
    result = identify_ocv(grid, discharge_points, charge_points, anchors)
    if np.isnan(result.discharge_v).all():
        raise ConfigError("slow-discharge trace: too few discharge rows to build an OCV curve")
    return fits, result


def _fit_temperature(
    pulse_frame: pd.DataFrame,
    slow_frame: pd.DataFrame,
    rated_ah: float,
    chemistry: str | None,
    notes: list[str],
) -> tuple[TemperatureFit, Chemistry, np.ndarray]:
    """Everything the tests at one temperature give (``chemistry`` guessed when None)."""
    pulse_offset = estimate_offset(pulse_frame, rated_ah)
    slow_offset = estimate_offset(slow_frame, rated_ah)
    pulse_offset = pulse_offset if pulse_offset is not None else (slow_offset or 0.0)
    slow_offset = slow_offset if slow_offset is not None else pulse_offset
    pulse = prepare(pulse_frame, rated_ah, pulse_offset)
    slow = prepare(slow_frame, rated_ah, slow_offset)
    if not (slow.i < -REST_CURRENT_C * rated_ah).any():
        raise ConfigError("slow-discharge trace: it holds no discharge")
    for trace in (slow, pulse):  # provisional: counted with the rated capacity
        trace.set_scale(rated_ah, 1.0)
    if chemistry is None:
        chemistry = guess_chemistry(*_first_curve(slow, pulse, rated_ah)[:2])
        notes.append(f"chemistry guessed from the OCV: {chemistry}")
    base = load_chemistry(chemistry)
    template = template_cell(base, rated_ah)
    grid = ocv_grid(base)
    capacity_ah, lab_ah = _scale(slow, pulse, rated_ah, base, notes)
    fits, result = _fit_at_scale(pulse, slow, rated_ah, template, grid)
    floor_v, end = _discharge_end(slow, rated_ah)
    end_soc = 0.0
    if end is not None and capacity_ah != rated_ah:
        rests = [(float(pulse.soc[a.row]), a.voltage_v) for a in pulse.rest_anchors()
                 if not a.after_charge]  # fmt: skip
        remainder = empty_remainder((float(slow.soc[end.row]), end.voltage_v), rests, floor_v)
        if remainder > 0.0:  # the scale again, with the charge left at the end, and the fits
            capacity_ah, lab_ah = _scale(slow, pulse, rated_ah, base, notes,
                                         remainder * capacity_ah)  # fmt: skip
            fits, result = _fit_at_scale(pulse, slow, rated_ah, template, grid)
            end_soc = float(slow.soc[end.row])
    temp_c = float(np.mean([fit.temp_c for fit in fits]))
    full_soc = float(slow.soc[slow.full_row])

    def complete(curve: np.ndarray) -> np.ndarray:
        curve = to_empty(grid, curve, end_soc, floor_v)
        return to_full(grid, join_base(grid, curve, base, temp_c), full_soc, slow.cv_voltage_v)

    ocv = complete(result.discharge_v)
    ocv_charge = None
    if result.charge_v is not None:
        ocv_charge = np.maximum(complete(result.charge_v), ocv)
    taper = None
    if np.isfinite(slow.taper_current_a) and slow.taper_current_a > 0:
        at_full = float(np.interp(full_soc, grid, ocv if ocv_charge is None else ocv_charge))
        taper = max((slow.cv_voltage_v - at_full) / slow.taper_current_a, 1e-6)
    if result.anchors < MIN_ANCHORS:
        notes.append(
            f"{temp_c:.1f} °C: {result.anchors} rest(s) of {REST_ANCHOR_S / 60:.0f} minutes or "
            "more: the OCV's level rests on the slow test's overpotential correction (a few to "
            "tens of mV off); rest an hour between pulse levels"
        )
    fit = TemperatureFit(
        temp_c=temp_c, levels=fits, ocv_v=ocv, ocv_charge_v=ocv_charge, gap_v=result.gap_v,
        capacity_ah=capacity_ah, lab_capacity_ah=lab_ah, full_soc=full_soc,
        taper_resistance_ohm=taper, current_offset_a=(pulse_offset, slow_offset),
        anchors=result.anchors,
    )  # fmt: skip
    return fit, base, grid


def _as_list(frames: pd.DataFrame | Sequence[pd.DataFrame]) -> list[pd.DataFrame]:
    return [frames] if isinstance(frames, pd.DataFrame) else list(frames)


def identify(
    pulse: pd.DataFrame | Sequence[pd.DataFrame],
    slow: pd.DataFrame | Sequence[pd.DataFrame],
    capacity_ah: float,
    *,
    chemistry: str | None = None,
    name: str = "identified-cell",
    temperature_from_base: bool = True,
) -> Identification:
    """Fit a cell from pulse and slow traces (see the module docstring).

    ``pulse`` and ``slow`` are one trace each, or lists of equal length whose pairs are the
    tests at one chamber temperature each. ``capacity_ah`` is the rated capacity.
    """
    if not capacity_ah > 0:
        raise ConfigError(f"capacity must be positive (got {capacity_ah})")
    pulses, slows = _as_list(pulse), _as_list(slow)
    if len(pulses) != len(slows) or not pulses:
        raise ConfigError(
            f"pulse and slow traces come in pairs, one per temperature (got {len(pulses)} "
            f"pulse and {len(slows)} slow)"
        )
    notes: list[str] = []
    fits: list[TemperatureFit] = []
    base = grid = None
    for index, (pulse_frame, slow_frame) in enumerate(zip(pulses, slows, strict=True)):
        suffix = f" {index + 1}" if len(pulses) > 1 else ""
        fit, base, grid = _fit_temperature(
            check_trace(pulse_frame, f"pulse trace{suffix}"),
            check_trace(slow_frame, f"slow-discharge trace{suffix}"),
            capacity_ah, chemistry, notes,
        )  # fmt: skip
        chemistry = base.name
        fits.append(fit)
    fits.sort(key=lambda fit: fit.temp_c)
    temps = [round(fit.temp_c, 1) for fit in fits]
    if len(set(temps)) != len(temps):
        raise ConfigError(f"two test pairs at the same temperature ({temps} °C)")
    return _assemble(fits, base, grid, capacity_ah, name, temperature_from_base, notes)


def _assemble(
    fits: list[TemperatureFit],
    base: Chemistry,
    grid: np.ndarray,
    rated_ah: float,
    name: str,
    temperature_from_base: bool,
    notes: list[str],
) -> Identification:
    """The cell's tables and data from the fits at every temperature."""
    reference = reference_fit(fits)
    if abs(reference.capacity_ah / rated_ah - 1.0) > CAPACITY_WARNING:
        notes.append(
            f"measured capacity {reference.capacity_ah:.3f} Ah differs from the rated "
            f"{rated_ah:g} Ah by {100 * (reference.capacity_ah / rated_ah - 1):+.1f} %"
        )
    for fit in fits:
        filled = [f"{100 * lv.soc:.0f} %: {', '.join(lv.filled)}" for lv in fit.levels
                  if lv.filled]  # fmt: skip
        if filled:
            notes.append(f"{fit.temp_c:.1f} °C: parameters from neighbouring levels or the "
                         "template at " + "; ".join(filled))  # fmt: skip
    socs = np.clip([level.soc for level in reference.levels], 0.0, 1.0)
    keep = np.concatenate([[True], np.diff(np.round(socs, 4)) > 0])
    socs = socs[keep]
    if socs.size < 2:
        raise ConfigError("pulse trace: pulses at two or more SoC levels are needed")
    shape = temperature_from_base
    chem = base.model_dump(exclude_none=True)
    chem["name"] = f"{base.name} (identified)"
    chem["ocv_v"] = temperature_table(grid, {round(f.temp_c, 1): f.ocv_v for f in fits}, 5,
                                      base.ocv_v if shape else None, additive=True)  # fmt: skip
    chem.pop("ocv_charge_v", None)
    chem["hysteresis_rate"] = 0.0
    if reference.ocv_charge_v is not None:
        gap = reference.ocv_charge_v - reference.ocv_v
        rows = {round(f.temp_c, 1): np.maximum(
                    f.ocv_charge_v if f.ocv_charge_v is not None else f.ocv_v + gap, f.ocv_v)
                for f in fits}  # fmt: skip
        table = temperature_table(grid, rows, 5, (base.ocv_charge_v or base.ocv_v)
                                  if shape else None, additive=True)  # fmt: skip
        below = np.asarray(chem["ocv_v"]["values"])
        table["values"] = np.maximum(np.asarray(table["values"]), below).tolist()
        chem["ocv_charge_v"] = table
        chem["hysteresis_rate"] = base.hysteresis_rate or DEFAULT_HYSTERESIS_RATE
        notes.append(f"hysteresis found: median charge-discharge OCV gap "
                     f"{1000 * reference.gap_v:.1f} mV")  # fmt: skip
    elif reference.gap_v is not None:
        notes.append(f"slow charge found, no hysteresis: median gap {1000 * reference.gap_v:.1f}"
                     " mV")  # fmt: skip
    template = template_cell(base, rated_ah)
    scale = reference.capacity_ah / template.capacity_ah
    data: dict[str, Any] = {
        "name": name,
        "capacity_ah": round(float(reference.capacity_ah), 5),
        "mass_kg": round(template.mass_kg * scale, 4),
        "specific_heat_j_per_kg_k": template.specific_heat_j_per_kg_k,
        "cooling_conductance_w_per_k": round(
            template.cooling_conductance_w_per_k * scale ** (2 / 3), 5
        ),
        "neighbour_conductance_w_per_k": round(
            template.neighbour_conductance_w_per_k * scale ** (2 / 3), 5
        ),
        "self_discharge_pct_per_month": template.self_discharge_pct_per_month,
    }
    if reference.taper_resistance_ohm is not None:
        data["taper_resistance_ohm"] = round(reference.taper_resistance_ohm, 6)
    for parameter in PARAMETERS:
        rows = {}
        for fit in fits:
            fit_socs = np.array([level.soc for level in fit.levels])
            values = np.array([getattr(level, parameter) for level in fit.levels])
            rows[round(fit.temp_c, 1)] = np.interp(socs, fit_socs, values)
        tau = parameter.startswith("tau")
        factor = base.time_constant_factor if tau else base.resistance_factor
        data[parameter] = temperature_table(socs, rows, 2 if tau else 7,
                                            factor if shape else None)  # fmt: skip
    data["chemistry"] = chem
    cell = cell_from_dict(data, f"identified cell {name!r}")
    return Identification(data=data, cell=cell, fits=fits, base_chemistry=base.name, notes=notes)
