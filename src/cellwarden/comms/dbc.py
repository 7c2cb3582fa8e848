"""The DBC files shipped with cellwarden: one per bus, the single source of every CAN layout."""

from __future__ import annotations

from functools import cache
from importlib import resources

import cantools
from cantools.database.can import Database

DBC_NAMES = ("internal", "charger", "external", "system", "inverter")


def dbc_path(name: str) -> str:
    """Path of a shipped DBC file (one of ``DBC_NAMES``)."""
    if name not in DBC_NAMES:
        raise ValueError(f"no DBC file named {name!r}; shipped: {', '.join(DBC_NAMES)}")
    return str(resources.files("cellwarden.comms") / "dbc" / f"{name}.dbc")


@cache
def load_dbc(name: str) -> Database:
    """A shipped DBC file, parsed by cantools (cached: the files never change at run time)."""
    return cantools.database.load_file(dbc_path(name), strict=True)
