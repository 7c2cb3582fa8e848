"""Abuse the packs of a simulated fleet suffer, with its truth kept: deep discharges,
overcharges from a faulty charger, over-temperature and the rare latched safety event.

Every event is a trip the BMS records in its diagnostic memory (the fleet history's event
columns). The rates below are those of ``FleetSpec.abuse`` = 1 (the knob scales them all):

- **Deep discharge** (cell under-voltage RSL, the pack run to its cut-off): on a day of
  discharge, with chance ``DEEP_DISCHARGE_PER_DAY`` of the pack's kind (lightly supervised
  shared e-scooters most, battery-managed ESS least) times the pack's propensity (log-normal,
  σ 0.8: operators differ) times (the day's depth / the kind's depth)².
- **Overcharge** (cell over-voltage RSL): 5 % of packs get a faulty charger for 30–240 days
  from a random day in service; it overcharges on 30 % of the days the pack charges.
- **Over-temperature** (the 55 °C trip): a day's peak plus a heat soak (sun, charging right
  after heavy use) exponential with a mean of 2.5 K outdoors (±30 % per pack) and 1 K indoors:
  the chance is exp(-(55 °C - peak) / soak), so hot sites and heavy duty trip most.
- **Latched safety event** (an MSL trip, the power path locked until serviced): 0.1 % of
  deep discharges, 2 % of overcharges and 0.5 % of over-temperature trips go on to their
  maximum safe limit (the trip counts as both); and an external short circuit, 10⁻⁵ per day
  in service. A latched overcharge gets the faulty charger replaced.

Each event ages the pack a little (``DAMAGE``, fractions per event; fade of the cell's own
capacity, resistance of its new resistance): a deep discharge drives the weakest cell (it
empties first) lowest: 0.1 % fade, +0.5 % resistance (SEI breakdown, copper dissolution); an
overcharge plates lithium and oxidises electrolyte on every cell: 0.05 %, +0.2 %; an
over-temperature grows SEI on every cell: 0.03 %, +0.2 %; an MSL voltage or temperature trip
harms the weakest cell: 1 %, +3 %; a short circuit heats every cell: 0.2 %, +1 %. Harm to
every cell is weighted by a per-cell vulnerability (log-normal, σ 0.3), so abuse also spreads
the cells apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.simulation.fleet.faults import OVER_TEMPERATURE_C
from cellwarden.simulation.fleet.kinds import PackKind
from cellwarden.telemetry.fleet_history import EVENT_COUNT_COLUMNS

DEEP_DISCHARGE = "deep_discharge"
OVERCHARGE = "overcharge"
OVER_TEMPERATURE = "over_temp"
SHORT_CIRCUIT = "short_circuit"
LATCHED = "latched"
EVENT_KINDS = (DEEP_DISCHARGE, OVERCHARGE, OVER_TEMPERATURE)  # an RSL trip, may go on to MSL
# the fleet history's column of each count
HISTORY_COLUMNS = dict(zip((*EVENT_KINDS, LATCHED), EVENT_COUNT_COLUMNS, strict=True))
DEEP_DISCHARGE_PER_DAY = {"e-scooter": 0.02, "golf-cart": 0.01, "forklift": 0.005,
                          "cargo-ev": 0.002, "ess": 0.0005, "telecom": 0.05}  # fmt: skip
PROPENSITY_SIGMA = 0.8
FAULTY_CHARGER_SHARE = 0.05
FAULTY_CHARGER_DAYS = (30, 240)
OVERCHARGE_PER_CHARGING_DAY = 0.3
SOAK_OUTDOOR_K, SOAK_INDOOR_K, SOAK_SIGMA = 2.5, 1.0, 0.3
ESCALATION = {DEEP_DISCHARGE: 0.001, OVERCHARGE: 0.02, OVER_TEMPERATURE: 0.005}
SHORT_CIRCUIT_PER_DAY = 1e-5
VULNERABILITY_SIGMA = 0.3


@dataclass(frozen=True)
class Damage:
    fade: float  # capacity lost per event, a fraction of the cell's own
    resistance: float  # resistance added per event, a fraction of the new cell's
    weakest_cell: bool  # the pack's weakest cell takes it, else every cell by vulnerability


MSL = "msl"
DAMAGE = {
    DEEP_DISCHARGE: Damage(0.001, 0.005, True),
    OVERCHARGE: Damage(0.0005, 0.002, False),
    OVER_TEMPERATURE: Damage(0.0003, 0.002, False),
    MSL: Damage(0.01, 0.03, True),
    SHORT_CIRCUIT: Damage(0.002, 0.01, False),
}


class Abuse:
    """Per pack: the abuse drawn once (propensities, the faulty charger's days, heat soak);
    per cell: the harm accrued. Counts each kind's trips and the first latched event."""

    def __init__(
        self, rng: np.random.Generator, scale: float, kinds: list[PackKind],
        commission_day: np.ndarray, days: int, pack_of_cell: np.ndarray,
    ) -> None:  # fmt: skip
        n = len(kinds)
        self.rng = rng
        self.scale = scale
        self.pack_of_cell = pack_of_cell
        self.first_cells = np.flatnonzero(np.diff(pack_of_cell, prepend=-1))
        self.deep_discharge_rate = scale * np.array(
            [DEEP_DISCHARGE_PER_DAY[kind.name] for kind in kinds]
        ) * rng.lognormal(0.0, PROPENSITY_SIGMA, n)  # fmt: skip
        faulty = rng.random(n) < FAULTY_CHARGER_SHARE
        start = rng.integers(commission_day, days)
        self.charger_from = np.where(faulty, start, -1)
        self.charger_to = np.where(faulty, start + rng.integers(*FAULTY_CHARGER_DAYS, n), -1)
        indoor = np.array([kind.indoor for kind in kinds])
        self.soak_k = np.where(indoor, SOAK_INDOOR_K, SOAK_OUTDOOR_K) * rng.lognormal(
            0.0, SOAK_SIGMA, n
        )
        self.vulnerability = rng.lognormal(0.0, VULNERABILITY_SIGMA, len(pack_of_cell))
        self.fade = np.zeros(len(pack_of_cell))
        self.resistance_growth = np.zeros(len(pack_of_cell))
        self.totals = {name: np.zeros(n) for name in HISTORY_COLUMNS}
        self.latched_day = np.full(n, -1)
        self.latched_cause = np.full(n, "", dtype=object)

    def day(
        self, day: int, in_service: np.ndarray, discharging: np.ndarray, charging: np.ndarray,
        depth_ratio: np.ndarray, temp_max_c: np.ndarray, cell_capacity_ah: np.ndarray,
    ) -> dict[str, np.ndarray]:  # fmt: skip
        """Draw the day's trips and harm the cells; the day's counts by kind and ``LATCHED``."""
        n = len(in_service)
        draws = self.rng.random((2 * len(EVENT_KINDS) + 1, n))
        chance = (
            np.where(discharging, self.deep_discharge_rate * depth_ratio**2, 0.0),
            np.where(
                charging & (day >= self.charger_from) & (day < self.charger_to),
                self.scale * OVERCHARGE_PER_CHARGING_DAY, 0.0,
            ),
            self.scale * np.exp(np.minimum(temp_max_c - OVER_TEMPERATURE_C, 0.0) / self.soak_k),
        )  # fmt: skip
        counts: dict[str, np.ndarray] = {}
        harmed: dict[str, np.ndarray] = {}
        latched = np.zeros(n, dtype=bool)
        for index, kind in enumerate(EVENT_KINDS):
            event = in_service & (draws[index] < chance[index])
            escalated = event & (draws[len(EVENT_KINDS) + index] < ESCALATION[kind])
            harmed[kind] = event & ~escalated
            self._note_latched(day, escalated & ~latched, kind)
            latched |= escalated
            counts[kind] = event.astype(float)
        short = in_service & (draws[-1] < self.scale * SHORT_CIRCUIT_PER_DAY)
        self._note_latched(day, short & ~latched, SHORT_CIRCUIT)
        harmed[MSL], harmed[SHORT_CIRCUIT] = latched, short
        counts[LATCHED] = latched + short.astype(float)
        # the service after a latched overcharge finds the charger
        replaced = latched & (counts[OVERCHARGE] > 0)
        self.charger_to = np.where(replaced, np.minimum(self.charger_to, day + 1), self.charger_to)
        self._harm(harmed, cell_capacity_ah)
        return counts

    def tally(self, counts: dict[str, np.ndarray]) -> None:
        """Add a day's counts (the abuse's and other trips of the same kinds) to the totals."""
        for name, total in self.totals.items():
            total += counts[name]

    def _harm(self, harmed: dict[str, np.ndarray], cell_capacity_ah: np.ndarray) -> None:
        """Add each harmed pack's ``DAMAGE``: to its weakest cell or to every cell."""
        for on_weakest in (True, False):
            kinds = [kind for kind in harmed if DAMAGE[kind].weakest_cell == on_weakest]
            if not any(harmed[kind].any() for kind in kinds):
                continue
            if on_weakest:
                smallest = np.minimum.reduceat(cell_capacity_ah, self.first_cells)
                share = (cell_capacity_ah <= smallest[self.pack_of_cell]).astype(float)
            else:
                share = self.vulnerability
            fade = sum(DAMAGE[kind].fade * harmed[kind] for kind in kinds)
            resistance = sum(DAMAGE[kind].resistance * harmed[kind] for kind in kinds)
            self.fade += fade[self.pack_of_cell] * share
            self.resistance_growth += resistance[self.pack_of_cell] * share

    def _note_latched(self, day: int, packs: np.ndarray, cause: str) -> None:
        first = packs & (self.latched_day < 0)
        if not first.any():
            return
        self.latched_day = np.where(first, day, self.latched_day)
        self.latched_cause = np.where(first, cause, self.latched_cause)
