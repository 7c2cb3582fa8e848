"""What a designer is asked for, checked before any decision is taken."""

from __future__ import annotations

import math
from dataclasses import dataclass

from cellwarden.model.architecture import Topology
from cellwarden.model.errors import ConfigError


class DesignError(ConfigError):
    """Requirements that are contradictory, unknown, or that no architecture can meet."""


@dataclass(frozen=True, kw_only=True)
class Requirements:
    """One design request. ``cells``, ``voltage_v`` and ``capacity_ah`` describe one string;
    ``peak_current_a`` is what the load draws from the whole system."""

    sector: str
    cells: int | None = None
    voltage_v: float | None = None
    chemistry: str | None = None
    cell: str | None = None
    capacity_ah: float | None = None
    peak_current_a: float | None = None
    strings: int = 1
    topology: str | None = None

    def check(self) -> None:
        """Raise DesignError for inputs that are wrong whatever the architecture."""
        if self.cells is not None and self.voltage_v is not None:
            raise DesignError("--cells and --voltage-v are mutually exclusive; give one of them")
        if self.cells is None and self.voltage_v is None:
            raise DesignError(
                "give --cells (series cells per string) or --voltage-v (nominal voltage per string)"
            )
        if self.cells is not None and self.cells < 1:
            raise DesignError(f"--cells = {self.cells} must be at least 1")
        for option, value in (
            ("--voltage-v", self.voltage_v),
            ("--capacity-ah", self.capacity_ah),
            ("--peak-current-a", self.peak_current_a),
        ):
            if value is not None and not (math.isfinite(value) and value > 0):
                raise DesignError(f"{option} = {value:g} must be a positive number")
        if self.strings < 1:
            raise DesignError(f"--strings = {self.strings} must be at least 1")
        self.resolved_topology()

    def as_options(self) -> str:
        """The request as ``cellwarden design`` options."""
        options = [
            ("--cells", self.cells),
            ("--voltage-v", self.voltage_v),
            ("--chemistry", self.chemistry),
            ("--cell", self.cell),
            ("--capacity-ah", self.capacity_ah),
            ("--peak-current-a", self.peak_current_a),
            ("--strings", self.strings if self.strings != 1 else None),
            ("--topology", self.topology),
            ("--sector", self.sector),
        ]
        return " ".join(
            f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}"
            for flag, value in options
            if value is not None
        )

    def resolved_topology(self) -> Topology:
        """The topology asked for (parallel when none was given)."""
        if self.topology is None:
            return Topology.PARALLEL
        try:
            return Topology(self.topology.strip().lower())
        except ValueError:
            known = ", ".join(t.value for t in Topology)
            raise DesignError(
                f"unknown topology {self.topology!r}; known topologies: {known}"
            ) from None
