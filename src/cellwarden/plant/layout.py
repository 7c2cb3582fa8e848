"""Where every cell sits: flat indices, series groups, strings and bus branches."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.model.architecture import Topology
from cellwarden.model.cell import CellSpec
from cellwarden.model.system import StringSpec, SystemSpec


@dataclass(frozen=True)
class CellPosition:
    """A cell's stable identity: string, module (slave), series group and parallel slot."""

    string: int
    module: int
    group: int
    slot: int

    def label(self) -> str:
        return f"S{self.string + 1}.M{self.module + 1}.C{self.group + 1}.P{self.slot + 1}"


@dataclass(frozen=True)
class PlantLayout:
    """Index arrays that map cells to series groups, groups to strings and strings to branches.

    Cells are numbered string by string, group by group, parallel slot by slot. A branch is one
    electrical path to the DC bus: each string is a branch, except in series topology where all
    strings form one stacked branch.
    """

    strings: tuple[StringSpec, ...]
    cell_types: tuple[CellSpec, ...]
    cell_group: np.ndarray  # group index per cell
    cell_type: np.ndarray  # index into cell_types per cell
    cell_string: np.ndarray  # string index per cell
    group_string: np.ndarray  # string index per group
    group_branch: np.ndarray  # branch index per group
    string_branch: np.ndarray  # branch index per string
    string_first_cell: np.ndarray  # first cell index of each string, plus the total at the end
    cells_per_slave: tuple[int | None, ...]

    @property
    def cell_count(self) -> int:
        return int(self.cell_group.size)

    @property
    def group_count(self) -> int:
        return int(self.group_string.size)

    @property
    def string_count(self) -> int:
        return len(self.strings)

    @property
    def branch_count(self) -> int:
        return int(self.string_branch.max()) + 1

    def position(self, cell: int) -> CellPosition:
        """The stable position of a flat cell index."""
        string = int(self.cell_string[cell])
        local = cell - int(self.string_first_cell[string])
        parallel = self.strings[string].pack.parallel
        group = local // parallel
        per_slave = self.cells_per_slave[string]
        module = group // per_slave if per_slave else 0
        return CellPosition(string=string, module=module, group=group, slot=local % parallel)


def build_layout(system: SystemSpec) -> PlantLayout:
    """Lay out every physical string of a system."""
    strings = tuple(system.expanded_strings())
    cell_types: list[CellSpec] = []
    cell_group, cell_type, cell_string, group_string = [], [], [], []
    first_cell = [0]
    group_offset = 0
    for string_index, string in enumerate(strings):
        pack = string.pack
        if pack.cell not in cell_types:
            cell_types.append(pack.cell)
        type_index = cell_types.index(pack.cell)
        groups = np.repeat(np.arange(pack.series) + group_offset, pack.parallel)
        cell_group.append(groups)
        cell_type.append(np.full(groups.size, type_index))
        cell_string.append(np.full(groups.size, string_index))
        group_string.append(np.full(pack.series, string_index))
        group_offset += pack.series
        first_cell.append(first_cell[-1] + groups.size)
    string_branch = (
        np.zeros(len(strings), dtype=np.int64)
        if system.topology is Topology.SERIES
        else np.arange(len(strings), dtype=np.int64)
    )
    group_string_arr = np.concatenate(group_string).astype(np.int64)
    return PlantLayout(
        strings=strings,
        cell_types=tuple(cell_types),
        cell_group=np.concatenate(cell_group).astype(np.int64),
        cell_type=np.concatenate(cell_type).astype(np.int64),
        cell_string=np.concatenate(cell_string).astype(np.int64),
        group_string=group_string_arr,
        group_branch=string_branch[group_string_arr],
        string_branch=string_branch,
        string_first_cell=np.array(first_cell, dtype=np.int64),
        cells_per_slave=tuple(s.cells_per_slave for s in strings),
    )
