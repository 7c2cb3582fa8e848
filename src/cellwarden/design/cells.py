"""Picking a cell from the library and the number of cells in parallel."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cache

from cellwarden.design.requirements import DesignError
from cellwarden.design.schema import upper_bound
from cellwarden.model.cell import CellSpec
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import builtin_names, load_cell, load_chemistry
from cellwarden.model.system import PackSpec

MAX_PARALLEL = int(upper_bound(PackSpec, "parallel"))
"""Cells in parallel per group the pack schema allows."""
OVERSIZE_NOTE_FACTOR = 1.5
"""A chosen capacity this many times the one asked for earns a note."""


@dataclass(frozen=True)
class CellChoice:
    """The cell (``ref`` is how a scenario names it) and how many sit in parallel."""

    ref: str
    cell: CellSpec
    parallel: int
    reasons: tuple[str, ...]
    notes: tuple[str, ...]

    @property
    def capacity_ah(self) -> float:
        return self.parallel * self.cell.capacity_ah


@cache
def library_cells() -> dict[str, CellSpec]:
    """Every built-in cell by name."""
    return {name: load_cell(name) for name in builtin_names("cells")}


def known_chemistries() -> list[str]:
    return [name.lower() for name in builtin_names("chemistries")]


def resolve_chemistry(name: str) -> str:
    """A built-in chemistry's canonical name (LFP, NMC, LTO) from any case."""
    if name.strip().lower() not in known_chemistries():
        raise DesignError(
            f"unknown chemistry {name!r}; known chemistries: {', '.join(known_chemistries())}"
        )
    return load_chemistry(name.strip().lower()).name


def load_requested_cell(name: str, chemistry: str | None) -> CellSpec:
    """The cell given by ``--cell`` (a built-in name or a TOML file), matching ``chemistry``."""
    try:
        cell = load_cell(name)
    except ConfigError as error:
        raise DesignError(str(error)) from None
    if chemistry is not None and cell.chemistry.name.upper() != chemistry.upper():
        raise DesignError(
            f"--cell {name} is an {cell.chemistry.name} cell, not {chemistry} "
            f"(--chemistry {chemistry.lower()}); drop one of them"
        )
    return cell


def choose_cell(
    chemistry: str,
    capacity_ah: float,
    peak_current_a: float | None,
    explicit_capacity: bool,
    cell_ref: str | None = None,
    cell: CellSpec | None = None,
) -> CellChoice:
    """The cell and parallel count giving at least ``capacity_ah`` per string, and enough
    capacity that ``peak_current_a`` (per string) stays within the cells' discharge ``mol``.

    Among the library's cells of ``chemistry`` (or only ``cell`` when given) it takes the one
    whose string capacity exceeds the need least, then the one with fewer cells in parallel.
    """
    pool = {cell_ref or cell.name: cell} if cell is not None else _cells_of(chemistry)

    def needed_ah(spec: CellSpec) -> float:
        if peak_current_a is None:
            return capacity_ah
        return max(capacity_ah, peak_current_a / _discharge_mol_c(spec))

    def rank(item: tuple[str, CellSpec]) -> tuple[float, int]:
        parallel = _parallel(item[1], needed_ah(item[1]))
        return parallel * item[1].capacity_ah, parallel

    ref, chosen = min(pool.items(), key=rank)
    need = needed_ah(chosen)
    parallel = _parallel(chosen, need)
    total_ah = parallel * chosen.capacity_ah
    notes: list[str] = []
    if need > capacity_ah:
        source = "asked" if explicit_capacity else "the sector's typical string capacity"
        notes.append(
            f"capacity raised from {capacity_ah:g} Ah ({source}) to {need:.0f} Ah so that "
            f"{peak_current_a:g} A per string stays within the {chemistry} cells' "
            f"{_discharge_mol_c(chosen):g} C discharge operating limit"
        )
    if cell is not None:
        reason = (
            f"cell {ref} ({chosen.capacity_ah:g} Ah {chemistry}, given by --cell): {parallel}P "
            f"gives {total_ah:g} Ah per string for the {need:.0f} Ah needed"
        )
    else:
        reason = (
            f"cell {ref} ({chosen.capacity_ah:g} Ah {chemistry}): {parallel}P gives "
            f"{total_ah:g} Ah per string for the {need:.0f} Ah needed, the closest fit of the "
            f"library's {chemistry} cells ({', '.join(pool)})"
        )
    if parallel > MAX_PARALLEL:
        raise DesignError(
            f"{need:.0f} Ah per string needs {parallel} cells of {chosen.capacity_ah:g} Ah in "
            f"parallel, above the {MAX_PARALLEL} a pack allows; use a larger cell or more "
            "parallel strings"
        )
    if total_ah > OVERSIZE_NOTE_FACTOR * need:
        notes.append(
            f"{total_ah:g} Ah per string is well above the {need:.0f} Ah needed: the smallest "
            f"fitting cell is {chosen.capacity_ah:g} Ah (--cell with a smaller cell file trims it)"
        )
    return CellChoice(ref, chosen, parallel, (reason,), tuple(notes))


def _discharge_mol_c(cell: CellSpec) -> float:
    return cell.effective_limits.discharge_current_c.upper.mol


def _cells_of(chemistry: str) -> dict[str, CellSpec]:
    pool = {
        name: cell
        for name, cell in library_cells().items()
        if cell.chemistry.name.upper() == chemistry.upper()
    }
    if not pool:
        raise DesignError(f"the cell library has no {chemistry} cell; give one with --cell FILE")
    return pool


def _parallel(cell: CellSpec, needed_ah: float) -> int:
    return max(1, math.ceil(needed_ah / cell.capacity_ah - 1e-9))
