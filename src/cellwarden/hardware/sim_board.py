"""Simulated boards: every driver of a string, built over the plant with seeded errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.hardware.sim_cell_monitor import SimulatedCellMonitor
from cellwarden.hardware.sim_current_sensor import SimulatedCurrentSensor
from cellwarden.hardware.sim_hv_measurement import SimulatedHvMeasurement
from cellwarden.hardware.sim_links import SimulatedChargerLink, SimulatedLoadLink
from cellwarden.hardware.sim_power_path import SimulatedPowerPath
from cellwarden.model.board import BoardSpec
from cellwarden.plant.system_plant import SystemPlant


@dataclass
class StringBoard:
    """The hardware a string's BMS (a standalone board or a master with its slaves) sees."""

    monitor: SimulatedCellMonitor
    current: SimulatedCurrentSensor
    power_path: SimulatedPowerPath
    charger: SimulatedChargerLink
    load: SimulatedLoadLink


def build_string_board(
    plant: SystemPlant, string: int, board: BoardSpec, seed: int, load_ignores_limits: bool
) -> StringBoard:
    """All drivers of one string; their manufacturing errors come from ``seed``."""
    rng = np.random.default_rng([seed, 0x5EED, string])
    return StringBoard(
        monitor=SimulatedCellMonitor(
            plant, string, board, np.random.default_rng(rng.integers(2**63))
        ),
        current=SimulatedCurrentSensor(
            plant, string, board.current_sensor, np.random.default_rng(rng.integers(2**63))
        ),
        power_path=SimulatedPowerPath(plant, string),
        charger=SimulatedChargerLink(plant),
        load=SimulatedLoadLink(plant, load_ignores_limits),
    )


@dataclass
class MasterSlaveBoards:
    """A master's own hardware and the front ends of its slaves, in chain order."""

    front_ends: list[SimulatedCellMonitor]
    hv: SimulatedHvMeasurement
    current: SimulatedCurrentSensor
    power_path: SimulatedPowerPath
    charger: SimulatedChargerLink
    load: SimulatedLoadLink


def build_master_slave_boards(
    plant: SystemPlant, string: int, board: BoardSpec, seed: int, load_ignores_limits: bool
) -> MasterSlaveBoards:
    """The master's drivers and one front end per slave; errors seeded from ``seed``."""
    rng = np.random.default_rng([seed, 0x5EED, string])
    spec = plant.layout.strings[string]
    front_ends = []
    first_cell = first_sensor = 0
    for cells in spec.slave_cells:
        front_end = SimulatedCellMonitor(
            plant, string, board, np.random.default_rng(rng.integers(2**63)),
            first_cell=first_cell, cell_count=cells, first_sensor=first_sensor,
        )  # fmt: skip
        front_ends.append(front_end)
        first_cell += cells
        first_sensor += front_end.sensor_cells.size
    groups = np.flatnonzero(plant.layout.group_string == string)
    hv_rng = np.random.default_rng(rng.integers(2**63))
    return MasterSlaveBoards(
        front_ends=front_ends,
        hv=SimulatedHvMeasurement(plant, groups, board.cell_monitor.pack_gain_error_pct, hv_rng),
        current=SimulatedCurrentSensor(
            plant, string, board.current_sensor, np.random.default_rng(rng.integers(2**63))
        ),
        power_path=SimulatedPowerPath(plant, string),
        charger=SimulatedChargerLink(plant),
        load=SimulatedLoadLink(plant, load_ignores_limits),
    )
