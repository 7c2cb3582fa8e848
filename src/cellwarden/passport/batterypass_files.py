"""The Battery Pass consortium's data model 1.2 files: section schemas and access levels.

The files are not part of cellwarden: they are read from a copy of the consortium's data
(CC-BY-4.0) that ``$CELLWARDEN_BATTERYPASS_DIR`` points at, by default the ``shared/batterypass``
folder beside the repository. Most generated files are UTF-16 with a byte-order mark, so every
file is decoded by its BOM (docs/passport.md lists the quirks and how each is handled).
"""

from __future__ import annotations

import codecs
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ENV_DIR = "CELLWARDEN_BATTERYPASS_DIR"
ACCESS_LEVELS_FILE = "access_levels_v1.2.csv"


@dataclass(frozen=True)
class Section:
    """One section of a passport and the schema it validates against."""

    key: str  # the section's key in a cellwarden passport document
    title: str
    schema_path: str  # relative to the data model folder
    aspect: str  # SAMM aspect namespace, e.g. io.BatteryPass.Labels:1.2.0


SECTIONS = (
    Section(
        "generalProductInformation",
        "General product information",
        "io.BatteryPass.GeneralProductInformation/1.2.0/gen/GeneralProductInformation-schema.json",
        "io.BatteryPass.GeneralProductInformation:1.2.0",
    ),
    Section(
        "carbonFootprint",
        "Carbon footprint",
        "io.BatteryPass.CarbonFootprint/1.2.0/gen/CarbonFootprintForBatteries-schema.json",
        "io.BatteryPass.CarbonFootprint:1.2.0",
    ),
    Section(
        "supplyChainDueDiligence",
        "Supply chain due diligence",
        "io.BatteryPass.SupplyChainDueDiligence/1.2.0/gen/SupplyChainDueDiligence-schema.json",
        "io.BatteryPass.SupplyChainDueDiligence:1.2.0",
    ),
    Section(
        "materialComposition",
        "Materials and composition",
        "io.BatteryPass.MaterialComposition/1.2.0/gen/MaterialComposition-schema.json",
        "io.BatteryPass.MaterialComposition:1.2.0",
    ),
    Section(
        "circularity",
        "Circularity and resource efficiency",
        "io.BatteryPass.Circularity/1.2.0/gen/Circularity-schema.json",
        "io.BatteryPass.Circularity:1.2.0",
    ),
    Section(
        "performance",
        "Performance and durability",
        "io.BatteryPass.Performance/1.2.1/gen/PerformanceAndDurability.schema",
        "io.BatteryPass.Performance:1.2.1",
    ),
    Section(
        "labels",
        "Symbols, labels and conformity",
        "io.BatteryPass.Labels/1.2.0/gen/Labeling-schema.json",
        "io.BatteryPass.Labels:1.2.0",
    ),
)
SECTION_KEYS = tuple(section.key for section in SECTIONS)


class PassportDataError(RuntimeError):
    """The data model files cannot be found or read."""


def data_dir() -> Path:
    """The folder holding ``BatteryPass/`` and the access-level CSV."""
    configured = os.environ.get(ENV_DIR)
    if configured:
        folder = Path(configured)
    else:
        folder = Path(__file__).resolve().parents[4] / "shared" / "batterypass"
    if not (folder / ACCESS_LEVELS_FILE).is_file() or not (folder / "BatteryPass").is_dir():
        raise PassportDataError(
            f"no Battery Pass data model 1.2 in {folder} (BatteryPass/ and {ACCESS_LEVELS_FILE}"
            f" expected): set ${ENV_DIR} to the folder"
        )
    return folder


def decode(raw: bytes) -> str:
    """Text of a file in UTF-16 (LE or BE) or UTF-8, with or without a BOM."""
    for bom, encoding in (
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF8, "utf-8"),
    ):
        if raw.startswith(bom):
            return raw[len(bom) :].decode(encoding)
    return raw.decode("utf-8")


def read_json(path: Path) -> dict:
    try:
        return json.loads(decode(path.read_bytes()))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PassportDataError(f"{path}: cannot be read as JSON: {error}") from error


@cache
def section_schema(key: str) -> dict:
    """The JSON schema (draft-04) of a section, by its key in SECTIONS."""
    section = next((s for s in SECTIONS if s.key == key), None)
    if section is None:
        raise KeyError(f"no passport section {key!r}; sections are {', '.join(SECTION_KEYS)}")
    return read_json(data_dir() / "BatteryPass" / section.schema_path)


def access_levels_path() -> Path:
    return data_dir() / ACCESS_LEVELS_FILE
