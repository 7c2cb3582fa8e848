"""Ageing laws the fleet simulator can age its cells with, one day at a time.

``plant`` is the plant's own law (sqrt-time calendar fade plus DoD-weighted cycle fade, from
each chemistry's constants). The others are published semi-empirical models, so that fleet
analytics can be scored on ageing they were not built around:

- ``schmalstieg2014`` (NMC; Schmalstieg et al., J. Power Sources 257, 2014): calendar fade
  alpha(V, T) t^0.75 and cycle fade beta(mean V, DoD) sqrt(Q), resistance likewise with a
  linear-in-Q cycle term.
- ``wang2011`` (LFP; Wang et al., J. Power Sources 196, 2011): cycle fade
  B(C) exp(-(31700 - 370.3 C) / RT) Ah^0.55, with a calendar term of the form of Naumann et
  al. (J. Energy Storage 17, 2018: sqrt time, cubic in SoC, 17.1 kJ/mol) scaled to 2 %/year
  at 25 °C and 50 % SoC; resistance grows 1.5 times the relative fade.

Throughputs are taken per cell of the paper's size (2.05 Ah and 2.3 Ah) at the same
equivalent full cycles. Changing conditions are integrated through the equivalent time (or
charge) of the fade already accrued.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellwarden.model.library import load_chemistry
from cellwarden.plant.ageing import GAS_CONSTANT_J_PER_MOL_K, AgeingConstantsArrays, arrhenius


@dataclass
class DayStress:
    """One day's conditions per cell."""

    temp_c: np.ndarray  # time-averaged cell temperature
    cycle_temp_c: np.ndarray  # temperature while charge moves
    soc_mean: np.ndarray  # time-averaged SoC, 0..1
    efc: np.ndarray  # equivalent full cycles of the day
    dod: np.ndarray  # depth of one cycle, 0..1
    c_rate: np.ndarray  # RMS C-rate while in use


class AgeingLaw:
    """Accrued capacity fade and resistance growth (fractions) of every cell."""

    name = ""

    def __init__(self, chemistry: np.ndarray, sensitivity: np.ndarray) -> None:
        self.chemistry = chemistry  # names per cell
        self.sensitivity = sensitivity  # per-cell multiplier of every rate
        self.calendar_fade = np.zeros(len(chemistry))
        self.cycle_fade = np.zeros(len(chemistry))

    @property
    def capacity_fade(self) -> np.ndarray:
        return np.minimum(self.calendar_fade + self.cycle_fade, 0.95)

    @property
    def resistance_growth(self) -> np.ndarray:
        raise NotImplementedError

    def step(self, stress: DayStress) -> None:
        raise NotImplementedError


def _power_law_step(accrued: np.ndarray, rate: np.ndarray, amount: np.ndarray, exponent: float):
    """Fade after adding ``amount`` to a law fade = rate * x^exponent with changing rate."""
    safe = np.where(rate > 0, rate, 1.0)
    equivalent = np.where(rate > 0, (accrued / safe) ** (1.0 / exponent), 0.0)
    return np.where(rate > 0, rate * (equivalent + amount) ** exponent, accrued)


class PlantLaw(AgeingLaw):
    name = "plant"

    def __init__(self, chemistry: np.ndarray, sensitivity: np.ndarray) -> None:
        super().__init__(chemistry, sensitivity)
        names = sorted(set(chemistry))
        index = np.array([names.index(name) for name in chemistry])
        self.constants = AgeingConstantsArrays.from_types(
            [load_chemistry(name).ageing for name in names], index
        )

    @property
    def resistance_growth(self) -> np.ndarray:
        return self.constants.resistance_growth_per_fade * self.capacity_fade

    def step(self, stress: DayStress) -> None:
        c = self.constants
        calendar_rate = (
            self.sensitivity
            * c.calendar_per_sqrt_s
            * np.sqrt(86_400.0)
            * arrhenius(c.calendar_activation, stress.temp_c, c.reference_temp_c)
            * np.exp(c.calendar_soc_sensitivity * (np.clip(stress.soc_mean, 0, 1) - 0.5))
        )
        self.calendar_fade = _power_law_step(self.calendar_fade, calendar_rate, 1.0, 0.5)
        depth = np.maximum(stress.dod, 0.01)
        cycle_rate = (
            self.sensitivity
            * c.cycle_per_efc
            * arrhenius(c.cycle_activation, stress.cycle_temp_c, c.reference_temp_c)
            * (1.0 + c.cycle_c_rate_sensitivity * np.maximum(stress.c_rate - 1.0, 0.0))
            * depth ** (c.dod_exponent - 1.0)
        )
        self.cycle_fade = self.cycle_fade + cycle_rate * stress.efc


def _nmc_voltage_v(soc: np.ndarray) -> np.ndarray:
    return np.interp(soc, [0.0, 0.1, 0.2, 0.5, 0.8, 1.0], [3.30, 3.55, 3.62, 3.72, 3.95, 4.18])


class Schmalstieg2014(AgeingLaw):
    name = "schmalstieg2014"
    PAPER_CELL_AH = 2.05

    def __init__(self, chemistry: np.ndarray, sensitivity: np.ndarray) -> None:
        super().__init__(chemistry, sensitivity)
        self.calendar_resistance = np.zeros(len(chemistry))
        self.cycle_resistance = np.zeros(len(chemistry))
        self.charge_ah = np.zeros(len(chemistry))

    @property
    def resistance_growth(self) -> np.ndarray:
        return self.calendar_resistance + self.cycle_resistance

    def step(self, stress: DayStress) -> None:
        temp_k = stress.temp_c + 273.15
        voltage = _nmc_voltage_v(np.clip(stress.soc_mean, 0, 1))
        alpha_cap = np.maximum((7.543 * voltage - 23.75) * 1e6 * np.exp(-6976.0 / temp_k), 0.0)
        alpha_res = np.maximum((5.270 * voltage - 16.32) * 1e5 * np.exp(-5986.0 / temp_k), 0.0)
        self.calendar_fade = _power_law_step(
            self.calendar_fade, self.sensitivity * alpha_cap, 1.0, 0.75
        )
        self.calendar_resistance = _power_law_step(
            self.calendar_resistance, self.sensitivity * alpha_res, 1.0, 0.75
        )
        cycle_voltage = _nmc_voltage_v(np.clip(stress.soc_mean, 0, 1))
        dod = np.clip(stress.dod, 0.0, 1.0)
        beta_cap = 7.348e-3 * (cycle_voltage - 3.667) ** 2 + 7.60e-4 + 4.081e-3 * dod
        beta_res = np.maximum(
            2.153e-4 * (cycle_voltage - 3.725) ** 2 - 1.521e-5 + 2.798e-4 * dod, 0.0
        )
        charge = stress.efc * 2.0 * self.PAPER_CELL_AH
        self.cycle_fade = _power_law_step(self.cycle_fade, self.sensitivity * beta_cap, charge, 0.5)
        self.cycle_resistance += self.sensitivity * beta_res * charge
        self.charge_ah += charge


class Wang2011(AgeingLaw):
    name = "wang2011"
    PAPER_CELL_AH = 2.3
    ACTIVATION_J_PER_MOL = 31_700.0
    C_RATE_POINTS = (0.5, 2.0, 6.0, 10.0)
    PREFACTORS = (31_630.0, 21_681.0, 12_934.0, 15_512.0)
    CALENDAR_PER_SQRT_DAY = 0.02 / np.sqrt(365.0) / 0.60225

    @property
    def resistance_growth(self) -> np.ndarray:
        return 1.5 * self.capacity_fade

    def step(self, stress: DayStress) -> None:
        soc = np.clip(stress.soc_mean, 0, 1)
        calendar_rate = (
            self.sensitivity
            * self.CALENDAR_PER_SQRT_DAY
            * arrhenius(np.full_like(soc, 17_126.0), stress.temp_c, np.full_like(soc, 25.0))
            * (2.8575 * (soc - 0.5) ** 3 + 0.60225)
        )
        self.calendar_fade = _power_law_step(self.calendar_fade, calendar_rate, 1.0, 0.5)
        c_rate = np.clip(stress.c_rate, 0.5, 10.0)
        prefactor = np.interp(c_rate, self.C_RATE_POINTS, self.PREFACTORS)
        temp_k = stress.cycle_temp_c + 273.15
        cycle_rate = (
            self.sensitivity
            * prefactor
            * np.exp(
                -(self.ACTIVATION_J_PER_MOL - 370.3 * c_rate) / (GAS_CONSTANT_J_PER_MOL_K * temp_k)
            )
            / 100.0
        )
        charge = stress.efc * 2.0 * self.PAPER_CELL_AH
        self.cycle_fade = _power_law_step(self.cycle_fade, cycle_rate, charge, 0.55)


LAWS: dict[str, type[AgeingLaw]] = {law.name: law for law in (PlantLaw, Schmalstieg2014, Wang2011)}
