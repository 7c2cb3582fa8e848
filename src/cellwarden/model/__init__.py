"""Typed configuration: chemistries, cells, packs, strings, systems and scenarios.

This package imports nothing else of cellwarden; every other layer reads its schemas.
"""

from cellwarden.model.cell import CellSpec
from cellwarden.model.chemistry import Chemistry, LimitLevels
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import load_cell, load_chemistry
from cellwarden.model.scenario import Scenario, load_scenario
from cellwarden.model.system import PackSpec, StringSpec, SystemSpec
from cellwarden.model.tables import Table2D

__all__ = [
    "CellSpec",
    "Chemistry",
    "ConfigError",
    "LimitLevels",
    "PackSpec",
    "Scenario",
    "StringSpec",
    "SystemSpec",
    "Table2D",
    "load_cell",
    "load_chemistry",
    "load_scenario",
]
