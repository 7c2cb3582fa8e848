"""Capacity fade and resistance growth: sqrt-time calendar ageing plus cycle ageing.

Calendar fade follows k(T, SoC) * sqrt(t), integrated exactly for piecewise-constant
conditions through the equivalent time of the fade already accrued. Cycle fade accrues per
equivalent full cycle, scaled by Arrhenius, C-rate above 1C and depth of discharge: a half
cycle of depth D costs (k / 2) * D**exponent, spread over the half cycle as it happens.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cellwarden.model.chemistry import AgeingConstants

GAS_CONSTANT_J_PER_MOL_K = 8.314462618
SECONDS_PER_DAY = 86_400.0
MIN_DEPTH = 0.01  # depth of discharge below which a half cycle is weighted as this deep


def arrhenius(activation_j_per_mol: np.ndarray, temp_c: np.ndarray, ref_c: np.ndarray):
    """Rate multiplier at temp_c relative to ref_c."""
    temp_k = np.asarray(temp_c) + 273.15
    ref_k = np.asarray(ref_c) + 273.15
    return np.exp(-activation_j_per_mol / GAS_CONSTANT_J_PER_MOL_K * (1.0 / temp_k - 1.0 / ref_k))


@dataclass
class AgeingConstantsArrays:
    """Each cell's ageing constants (from its chemistry), as arrays."""

    reference_temp_c: np.ndarray
    calendar_per_sqrt_s: np.ndarray  # fraction of capacity per sqrt(second)
    calendar_activation: np.ndarray
    calendar_soc_sensitivity: np.ndarray
    cycle_per_efc: np.ndarray  # fraction of capacity per equivalent full cycle
    cycle_activation: np.ndarray
    cycle_c_rate_sensitivity: np.ndarray
    dod_exponent: np.ndarray
    resistance_growth_per_fade: np.ndarray

    @classmethod
    def from_types(cls, constants: list[AgeingConstants], cell_type: np.ndarray):
        def pick(getter) -> np.ndarray:
            return np.array([getter(c) for c in constants], dtype=float)[cell_type]

        return cls(
            reference_temp_c=pick(lambda c: c.reference_temp_c),
            calendar_per_sqrt_s=pick(lambda c: c.calendar_fade_pct_per_sqrt_day / 100.0)
            / np.sqrt(SECONDS_PER_DAY),
            calendar_activation=pick(lambda c: c.calendar_activation_j_per_mol),
            calendar_soc_sensitivity=pick(lambda c: c.calendar_soc_sensitivity),
            cycle_per_efc=pick(lambda c: c.cycle_fade_pct_per_efc / 100.0),
            cycle_activation=pick(lambda c: c.cycle_activation_j_per_mol),
            cycle_c_rate_sensitivity=pick(lambda c: c.cycle_c_rate_sensitivity),
            dod_exponent=pick(lambda c: c.dod_exponent),
            resistance_growth_per_fade=pick(lambda c: c.resistance_growth_per_fade),
        )


@dataclass
class AgeingState:
    """Accrued fade per cell, and the turning point of the half cycle in progress."""

    constants: AgeingConstantsArrays
    calendar_fade: np.ndarray
    cycle_fade: np.ndarray
    half_cycle_start_soc: np.ndarray
    half_cycle_sign: np.ndarray
    equivalent_full_cycles: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.equivalent_full_cycles = np.zeros_like(self.calendar_fade)

    @classmethod
    def fresh(cls, constants: AgeingConstantsArrays, soc: np.ndarray) -> AgeingState:
        zeros = np.zeros_like(soc)
        return cls(constants, zeros.copy(), zeros.copy(), soc.copy(), zeros.copy())

    @property
    def capacity_fade(self) -> np.ndarray:
        """Fraction of the initial capacity lost."""
        return np.minimum(self.calendar_fade + self.cycle_fade, 0.95)

    @property
    def resistance_growth(self) -> np.ndarray:
        """Fractional rise of every resistance over its initial value."""
        return self.constants.resistance_growth_per_fade * self.capacity_fade

    def accrue(
        self,
        elapsed_s: float,
        soc: np.ndarray,
        temp_c: np.ndarray,
        throughput_ah: np.ndarray,
        net_charge_ah: np.ndarray,
        capacity_ah: np.ndarray,
    ) -> None:
        """Add the ageing of one interval with the given mean conditions and charge moved."""
        if elapsed_s <= 0:
            return
        c = self.constants
        soc_clipped = np.clip(soc, 0.0, 1.0)
        calendar_rate = (
            c.calendar_per_sqrt_s
            * arrhenius(c.calendar_activation, temp_c, c.reference_temp_c)
            * np.exp(c.calendar_soc_sensitivity * (soc_clipped - 0.5))
        )
        safe_rate = np.where(calendar_rate > 0, calendar_rate, 1.0)
        equivalent_s = np.where(calendar_rate > 0, (self.calendar_fade / safe_rate) ** 2, 0.0)
        self.calendar_fade = np.where(
            calendar_rate > 0, calendar_rate * np.sqrt(equivalent_s + elapsed_s), self.calendar_fade
        )

        efc = throughput_ah / (2.0 * capacity_ah)
        self.equivalent_full_cycles += efc
        sign = np.sign(net_charge_ah)
        reversed_ = (sign != 0) & (sign != self.half_cycle_sign)
        self.half_cycle_start_soc = np.where(reversed_, soc, self.half_cycle_start_soc)
        self.half_cycle_sign = np.where(sign != 0, sign, self.half_cycle_sign)
        depth = np.maximum(np.abs(soc - self.half_cycle_start_soc), MIN_DEPTH)
        c_rate = throughput_ah / capacity_ah / (elapsed_s / 3600.0)
        cycle_rate = (
            c.cycle_per_efc
            * arrhenius(c.cycle_activation, temp_c, c.reference_temp_c)
            * (1.0 + c.cycle_c_rate_sensitivity * np.maximum(c_rate - 1.0, 0.0))
            * c.dod_exponent
            * depth ** (c.dod_exponent - 1.0)
        )
        self.cycle_fade = self.cycle_fade + cycle_rate * efc
