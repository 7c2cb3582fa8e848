"""A design as a complete, commented scenario file that ``cellwarden simulate`` runs."""

from __future__ import annotations

from pathlib import Path

from cellwarden.design.result import Design
from cellwarden.design.sizing import (
    BOARD_RISE_K,
    BOARD_W_PER_A,
    DEFAULT_PRECHARGE_TIMEOUT_S,
    LONG_STRING_SERIES,
)
from cellwarden.design.toml_text import TomlDocument
from cellwarden.model.architecture import Architecture, PowerPathKind, Topology
from cellwarden.model.scenario import Scenario, load_scenario
from cellwarden.model.system_master import SystemMasterSettings

SHORT_CIRCUIT_DELAY_S = 0.0002
INVERTER_FIELDS = ("inverter_timeout_s", "inverter_loss_action")


def default_file_name(design: Design) -> str:
    """The file name the CLI suggests: ``design-<architecture>.toml``."""
    return f"design-{design.architecture.value}.toml"


def scenario_name(design: Design) -> str:
    strings = f"{design.strings}x" if design.strings > 1 else ""
    return f"design-{design.sector.name}-{strings}{design.series}s{design.parallel}p"


def write_scenario(design: Design, path: Path) -> Scenario:
    """Write the scenario file and read it back; ConfigError if it does not validate."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(scenario_toml(design), encoding="utf-8")
    return load_scenario(path)


def scenario_toml(design: Design) -> str:
    """The scenario as TOML text, each choice explained in a comment."""
    doc = TomlDocument()
    _header(doc, design)
    _system(doc, design)
    _initial_and_timing(doc, design)
    _profile_and_charger(doc, design)
    _board_and_bms(doc, design)
    _buses(doc, design)
    if design.architecture is Architecture.MULTI_MASTER:
        _system_master(doc, design)
    return doc.text()


def _header(doc: TomlDocument, design: Design) -> None:
    doc.comment(f"Designed by `cellwarden design {design.requirements.as_options()}`.")
    doc.comment(f"Architecture: {design.architecture.value}, {design.modules_summary}.")
    doc.comment("Why:")
    for reason in (*design.reasons, *design.notes):
        doc.comment(f"- {reason}")
    doc.blank()
    sector = design.sector
    doc.value("name", scenario_name(design))
    doc.value("description", _description(design))
    doc.value("sector", sector.label)
    doc.value("seed", 1)
    doc.value("duration_s", sector.duration_s, f"a typical {sector.label} day; --duration cuts it")
    doc.value("ambient_temp_c", sector.ambient_temp_c)


def _description(design: Design) -> str:
    strings = f"{design.strings} × " if design.strings > 1 else ""
    topology = f", {design.topology.value}" if design.topology else ""
    return (
        f"{design.sector.label} system designed by cellwarden: {strings}{design.series}S"
        f"{design.parallel}P {design.cell_ref} ({design.system_nominal_voltage_v:.0f} V, "
        f"{design.energy_kwh:.1f} kWh{topology}), {design.modules_summary}"
    )


def _system(doc: TomlDocument, design: Design) -> None:
    path = design.power_path
    doc.table("system")
    doc.value("architecture", design.architecture.value)
    if design.topology is not None:
        doc.value("topology", design.topology.value, _topology_comment(design.topology))
    doc.value("serial_number", f"CW-{design.sector.serial_code}-D001")
    doc.value(
        "dc_link_capacitance_f",
        path.dc_link_capacitance_f,
        f"input capacitors of the {design.sector.label} load (typical; set your own)",
    )
    doc.array_table("system.strings")
    doc.value("name", "string" if design.strings > 1 else "pack")
    if design.strings > 1:
        doc.value("count", design.strings, "identical strings, each with its own string master")
    if design.cells_per_slave is not None:
        cells = ", ".join(str(c) for c in design.slave_cells)
        doc.value(
            "cells_per_slave",
            design.cells_per_slave,
            f"{design.slaves_per_string} slaves of {design.cells_per_slave}S per string, "
            f"monitoring {cells} cells (spread evenly)",
        )
    doc.value(
        "cable_resistance_ohm",
        design.sector.cable_resistance_ohm,
        "cable from the string to the bus, both poles (typical; set your own)",
    )
    doc.value(
        "pack",
        {"cell": design.cell_ref, "series": design.series, "parallel": design.parallel},
    )
    doc.table("system.strings.power_path")
    doc.value("kind", path.kind.value)
    doc.value(
        "max_current_a",
        path.max_current_a,
        f"rating of the switches for {design.string_current_a:.0f} A per string",
    )
    doc.value("closed_resistance_ohm", path.closed_resistance_ohm)
    capacitance_mf = path.dc_link_capacitance_f * 1000
    doc.value(
        "precharge_resistance_ohm",
        path.precharge_resistance_ohm,
        f"5 × {path.precharge_resistance_ohm:g} Ω × {capacitance_mf:g} mF = "
        f"{path.precharge_time_s:.2f} s of precharge; at most "
        f"{design.max_voltage_v / path.precharge_resistance_ohm:.1f} A through the resistor",
    )
    if path.kind is PowerPathKind.MOSFET and path.short_circuit_trip_a is not None:
        doc.value(
            "short_circuit_trip_a",
            path.short_circuit_trip_a,
            "the board's analog short-circuit cut-off",
        )
        doc.value("short_circuit_delay_s", SHORT_CIRCUIT_DELAY_S)


def _topology_comment(topology: Topology) -> str:
    return {
        Topology.PARALLEL: "every string its own branch to the common DC bus",
        Topology.SERIES: "the strings stacked into one branch; the bus sees their sum",
        Topology.DISTRIBUTED: "packs apart, each on its own cable (edit cable_resistance_ohm "
        "per string by splitting the strings entry)",
    }[topology]


def _initial_and_timing(doc: TomlDocument, design: Design) -> None:
    doc.table("initial")
    doc.value("soc_pct", design.sector.initial_soc_pct)
    doc.table("timing")
    large = design.series * design.strings >= LONG_STRING_SERIES
    if large:
        doc.comment(
            f"{design.series * design.strings} cells in series in the system: 0.1 s plant steps "
            "and protection ticks, estimation, balancing and limits every second, as the large "
            "built-in scenarios do"
        )
    else:
        doc.comment(
            "BMS tasks at 100 ms (protection) and 1 s (estimation, balancing, limits), as the "
            "built-in scenarios run long days"
        )
    doc.value("plant_step_s", 0.1 if large else 0.01)
    doc.value("protection_period_s", 0.1)
    doc.value("main_period_s", 1.0)


def _profile_and_charger(doc: TomlDocument, design: Design) -> None:
    sector = design.sector
    doc.table("profile", f"the {sector.label} duty profile (docs/profiles.md)")
    doc.value("kind", sector.profile_kind)
    if sector.peak_parameter is not None:
        doc.value(
            "parameters",
            {sector.peak_parameter: float(design.peak_current_a)},
            "the peak current of the requirements",
        )
    cell = design.cell
    branch_series = design.series * design.stacked
    charge_mol_c = cell.effective_limits.charge_current_c.upper.mol
    capacity_ah = design.system_capacity_ah
    current_a = round(min(sector.charge_c, charge_mol_c) * capacity_ah, 1)
    per_cell_v = design.charge_ceiling_per_cell_v
    voltage_v = round(per_cell_v * branch_series, 1)
    mol_v = cell.effective_limits.cell_voltage_v.upper.mol
    doc.table("charger")
    doc.value(
        "max_current_a",
        current_a,
        f"{min(sector.charge_c, charge_mol_c):g} C of {capacity_ah:g} Ah",
    )
    doc.value(
        "max_voltage_v",
        voltage_v,
        f"{per_cell_v:g} V per cell × {branch_series}: below the {mol_v:g} V operating limit "
        f"and a full cell's {design.balancing.full_cell_voltage_v:.2f} V rest voltage, so the "
        "highest cell of an unbalanced pack stays inside its limits while plugged in",
    )
    if design.architecture is Architecture.MULTI_MASTER:
        doc.value(
            "voltage_setpoint_v",
            voltage_v,
            "the setpoint the charger holds without a request",
        )


def _board_and_bms(doc: TomlDocument, design: Design) -> None:
    balancing = design.balancing
    doc.table(
        "board.balancing",
        f"passive balancing at {balancing.current_a * 1000:.0f} mA per cell",
    )
    doc.value(
        "bleed_resistance_ohm",
        balancing.bleed_resistance_ohm,
        f"{balancing.full_cell_voltage_v:.2f} V / {balancing.current_a:g} A",
    )
    doc.value(
        "max_board_power_w",
        balancing.max_board_power_w,
        f"heat budget of a board's bleed resistors: {BOARD_W_PER_A:g} W per A of bleed current",
    )
    doc.value(
        "board_thermal_resistance_k_per_w",
        balancing.board_thermal_resistance_k_per_w,
        f"{BOARD_RISE_K:g} K rise at that budget",
    )
    doc.table("bms.balancing")
    doc.value(
        "strategy",
        balancing.strategy,
        f"the OCV rises {balancing.plateau_slope_mv_per_pct:g} mV per % SoC on its middle part"
        + (
            ": too flat to plan bleeding from SoC estimates, so cells are bled by voltage"
            if balancing.strategy == "voltage"
            else ": each cell's excess charge is planned from the SoC estimates"
        ),
    )
    path = design.power_path
    doc.table("bms.power_path")
    doc.value(
        "precharge_min_s",
        path.precharge_min_s,
        "one time constant: a dead link charged faster has lost its DC-link capacitor",
    )
    if path.precharge_timeout_s > DEFAULT_PRECHARGE_TIMEOUT_S:
        doc.value(
            "precharge_timeout_s",
            float(path.precharge_timeout_s),
            "a slow precharge needs more than the default 3 s",
        )


def _buses(doc: TomlDocument, design: Design) -> None:
    doc.table("buses")
    if design.inverter_can:
        doc.value(
            "inverter",
            True,
            "the system master sends the system's limits to the inverter over the "
            "Victron/Pylontech-style inverter CAN (replaces the charger and vehicle buses)",
        )
        return
    doc.value("charger", True, "charger negotiation on the charger bus (charger.dbc)")
    doc.value("vehicle", True, "limits and state to the load on the external bus (external.dbc)")


def _system_master(doc: TomlDocument, design: Design) -> None:
    settings = SystemMasterSettings()
    doc.table(
        "system_master",
        "the system master's defaults, written out to tune (docs/system-master.md)",
    )
    for name, field in SystemMasterSettings.model_fields.items():
        if name in INVERTER_FIELDS and not design.inverter_can:
            continue
        doc.value(name, getattr(settings, name), field.description)
