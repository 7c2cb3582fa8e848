"""Simulated boards: every driver of a string, built over the plant with seeded errors."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.hardware.sim_cell_monitor import SimulatedCellMonitor
from cellwarden.hardware.sim_current_sensor import SimulatedCurrentSensor
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
