"""The configuration a bundle carries (``config.toml``): the BMS's settings and cell model.

::

    cell = "nmc-21700-5ah"        # optional: a built-in cell, or an inline [cell] table
    [bms.balancing]               # optional: any table of the scenario's [bms] (docs/bms.md)
    threshold_soc_pct = 1.5

What is not given keeps the board's own (the scenario's) value. The file is checked when the
bundle is verified, so a configuration the BMS cannot load is refused before install.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from cellwarden.model.bms import BmsSettings
from cellwarden.model.cell import CellSpec
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import cell_from_dict, load_cell, validate

KNOWN_KEYS = {"bms", "cell"}


@dataclass(frozen=True)
class FirmwareConfig:
    """The BMS's settings tables and cell model; None keeps the board's own."""

    bms: dict[str, Any] | None = None
    cell: CellSpec | None = None

    def settings(self, base: BmsSettings) -> BmsSettings:
        """``base`` with this configuration's tables laid over it."""
        if self.bms is None:
            return base
        merged = _merge(base.model_dump(), self.bms)
        return validate(BmsSettings, merged, "config.toml [bms]")


def parse_firmware_config(data: bytes) -> FirmwareConfig:
    """The configuration in ``config.toml``; ConfigError naming the problem."""
    try:
        document = tomllib.loads(data.decode())
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config.toml is not valid TOML: {error}") from None
    unknown = sorted(set(document) - KNOWN_KEYS)
    if unknown:
        raise ConfigError(f"config.toml: unknown key(s) {', '.join(unknown)} (known: bms, cell)")
    bms = document.get("bms")
    if bms is not None:
        if not isinstance(bms, dict):
            raise ConfigError("config.toml: 'bms' must be a table")
        validate(BmsSettings, _merge(BmsSettings().model_dump(), bms), "config.toml [bms]")
    cell = document.get("cell")
    if isinstance(cell, str):
        cell = load_cell(cell)
    elif isinstance(cell, dict):
        cell = cell_from_dict(cell, "config.toml [cell]")
    elif cell is not None:
        raise ConfigError("config.toml: 'cell' must be a cell name or a [cell] table")
    return FirmwareConfig(bms, cell)


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged
