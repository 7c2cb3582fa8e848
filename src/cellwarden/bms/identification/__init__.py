"""Characterise a cell: fit the BMS's cell model from pulse and slow tests (``fit``)."""

from cellwarden.bms.identification.cell_file import to_toml
from cellwarden.bms.identification.fit import Identification, TemperatureFit, identify
from cellwarden.bms.identification.pulses import LevelFit

__all__ = ["Identification", "LevelFit", "TemperatureFit", "identify", "to_toml"]
