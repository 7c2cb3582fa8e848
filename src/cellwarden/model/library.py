"""Built-in chemistries and cells, and loading of user TOML files with clear errors."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from cellwarden.model.cell import CellSpec
from cellwarden.model.chemistry import Chemistry
from cellwarden.model.errors import ConfigError, describe_validation_error

_LIBRARY = resources.files("cellwarden.model") / "library"


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a missing or malformed file is a ConfigError naming it."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def validate(model: type[BaseModel], data: dict[str, Any], source: str) -> Any:
    """Validate data against a schema, turning failures into a ConfigError."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise describe_validation_error(error, source) from None


def builtin_names(kind: str) -> list[str]:
    """Names of the built-in entries of one kind ("chemistries" or "cells")."""
    folder = _LIBRARY / kind
    return sorted(
        p.name.removesuffix(".toml") for p in folder.iterdir() if p.name.endswith(".toml")
    )


def _resolve(kind: str, name_or_path: str) -> tuple[dict[str, Any], str]:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        return read_toml(candidate), str(candidate)
    entry = _LIBRARY / kind / f"{name_or_path.lower()}.toml"
    if not entry.is_file():
        known = ", ".join(builtin_names(kind))
        raise ConfigError(
            f"unknown {kind[:-1] if kind != 'chemistries' else 'chemistry'} "
            f"{name_or_path!r}; built-in ones are: {known}"
        )
    source = f"built-in {kind}/{entry.name}"
    try:
        return tomllib.loads(entry.read_text(encoding="utf-8")), source
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source} is not valid TOML: {error}") from None


def load_chemistry(name_or_path: str) -> Chemistry:
    """A built-in chemistry by name (LFP, NMC, LTO) or a chemistry TOML file."""
    data, source = _resolve("chemistries", name_or_path)
    return validate(Chemistry, data, source)


def cell_from_dict(data: dict[str, Any], source: str, folder: Path | None = None) -> CellSpec:
    """Validate a cell table whose ``chemistry`` is a name, a path or an inline table.

    A relative chemistry path is taken from ``folder`` (the cell file's folder) when given.
    """
    data = dict(data)
    chemistry = data.get("chemistry")
    if isinstance(chemistry, str):
        if folder is not None and chemistry.endswith(".toml"):
            chemistry = str(folder / chemistry)
        data["chemistry"] = load_chemistry(chemistry)
    return validate(CellSpec, data, source)


def load_cell(name_or_path: str) -> CellSpec:
    """A built-in cell by name or a cell TOML file."""
    data, source = _resolve("cells", name_or_path)
    folder = Path(name_or_path).parent if name_or_path.endswith(".toml") else None
    return cell_from_dict(data, source, folder)
