"""The architecture designer: requirements → recommended architecture + scenario config.

``design_system(Requirements(...))`` applies the decision table of DESIGN.md with the limits of
``model/architecture.py`` and returns a :class:`Design` (architecture, reasons, modules, power
path, balancing, comms); ``write_scenario`` turns it into a scenario file that
``cellwarden simulate`` runs. See docs/design.md.
"""

from cellwarden.design.decide import design_system
from cellwarden.design.requirements import DesignError, Requirements
from cellwarden.design.result import Design, Module
from cellwarden.design.scenario_file import default_file_name, scenario_toml, write_scenario
from cellwarden.design.sectors import SECTORS, Sector, resolve_sector
from cellwarden.design.sizing import BalancingDesign, PowerPathDesign

__all__ = [
    "SECTORS",
    "BalancingDesign",
    "Design",
    "DesignError",
    "Module",
    "PowerPathDesign",
    "Requirements",
    "Sector",
    "default_file_name",
    "design_system",
    "resolve_sector",
    "scenario_toml",
    "write_scenario",
]
