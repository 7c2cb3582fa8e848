"""Built-in scenarios, shipped as TOML files beside this module."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

from cellwarden.model.errors import ConfigError
from cellwarden.model.library import validate
from cellwarden.model.scenario import Scenario, load_scenario

_FOLDER = resources.files("cellwarden.simulation") / "scenarios"


def builtin_scenario_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".toml") for p in _FOLDER.iterdir() if p.name.endswith(".toml")
    )


def load_builtin(name: str) -> Scenario:
    entry = _FOLDER / f"{name}.toml"
    if not entry.is_file():
        known = ", ".join(builtin_scenario_names())
        raise ConfigError(f"unknown scenario {name!r}; built-in scenarios are: {known}")
    return validate(
        Scenario, tomllib.loads(entry.read_text(encoding="utf-8")), f"built-in scenario {name}"
    )


def resolve_scenario(name_or_path: str) -> Scenario:
    """A built-in scenario by name, or a scenario TOML file by path."""
    if name_or_path.endswith(".toml") or Path(name_or_path).exists():
        return load_scenario(Path(name_or_path))
    return load_builtin(name_or_path)


def builtin_scenarios() -> list[Scenario]:
    return [load_builtin(name) for name in builtin_scenario_names()]
