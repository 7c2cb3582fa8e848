"""Ageing of the plant's cells: direction and magnitude against the chemistry's constants.

Cells here are flat-parameter analytic cells carrying NMC's ageing constants (see conftest),
isothermal (a huge cooling conductance) and without self-discharge, so storage conditions stay
exactly where a test puts them. Expectations come from the published semi-empirical laws the
constants describe: calendar fade k sqrt(t) with Arrhenius in temperature and an exponential
in SoC, cycle fade per equivalent full cycle with a depth-of-discharge exponent.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode

DAY_S = 86_400.0
YEAR_DAYS = 365.0
GAS_CONSTANT = 8.314462618


def _storage_plant(kit, soc_pct: float, temp_c: float):
    system = kit.standalone(kit.flat_cell(ageing=True), series=6)
    return kit.make_plant(
        system, soc_pct=soc_pct, temp_c=temp_c, dt_s=3600.0, parameter_refresh_s=DAY_S
    )


def _stored_fade(kit, soc_pct: float, temp_c: float, days: float = YEAR_DAYS) -> float:
    plant = _storage_plant(kit, soc_pct, temp_c)
    plant.advance(days * DAY_S)
    fade = plant.ageing.capacity_fade
    assert np.ptp(fade) == 0.0  # identical cells age identically
    return float(fade[0])


def test_one_year_storage_at_25c_half_charge_matches_calendar_constant(kit):
    """A year on the shelf at 25 °C and 50 % SoC, open circuit.

    Independent expectation: NMC's calendar constant describes ~2.5 %/year (the brief's
    ±30 % band), precisely k sqrt(365 d) with k = 0.1309 %/sqrt(day) (1 %); the sqrt-time law
    gives half the fade after a quarter of the year (1 %); resistances grow by
    resistance_growth_per_fade (2.0) times the relative fade (R0 read back, 0.1 %); SoC and
    temperature do not move. The year runs in a few seconds (generous bound for busy CI).
    """
    ageing = kit.NMC.ageing
    warm_up = _storage_plant(kit, 50.0, 25.0)  # compile / load the kernel outside the timing
    warm_up.advance(DAY_S)

    started = time.perf_counter()
    plant = _storage_plant(kit, 50.0, 25.0)
    r0_fresh = plant.cp[k.R0].copy()
    plant.advance(YEAR_DAYS / 4 * DAY_S)
    quarter = plant.ageing.capacity_fade.copy()
    plant.advance(3 * YEAR_DAYS / 4 * DAY_S)
    elapsed = time.perf_counter() - started
    fade = plant.ageing.capacity_fade

    assert elapsed < 5.0
    np.testing.assert_allclose(fade, 0.025, rtol=0.3)
    expected = ageing.calendar_fade_pct_per_sqrt_day / 100.0 * np.sqrt(YEAR_DAYS)
    np.testing.assert_allclose(fade, expected, rtol=0.01)
    np.testing.assert_allclose(quarter / fade, 0.5, rtol=0.01)
    np.testing.assert_allclose(plant.ageing.cycle_fade, 0.0, atol=1e-12)
    np.testing.assert_allclose(
        plant.cp[k.R0] / r0_fresh, 1.0 + ageing.resistance_growth_per_fade * fade, rtol=1e-3
    )
    np.testing.assert_allclose(plant.soc, 0.5, atol=1e-12)
    np.testing.assert_allclose(plant.cell_temp_c, 25.0, atol=1e-9)


def test_storage_at_45c_ages_faster_by_the_arrhenius_factor(kit):
    """The same year at 45 °C.

    Independent expectation: the calendar rate scales by
    exp(Ea / R (1/298.15 K - 1/318.15 K)) with Ea = 50 kJ/mol (about 3.55), within 2 %.
    """
    ea = kit.NMC.ageing.calendar_activation_j_per_mol
    factor = np.exp(ea / GAS_CONSTANT * (1.0 / 298.15 - 1.0 / 318.15))
    assert 3.0 < factor < 4.0
    ratio = _stored_fade(kit, 50.0, 45.0) / _stored_fade(kit, 50.0, 25.0)
    np.testing.assert_allclose(ratio, factor, rtol=0.02)


@pytest.mark.parametrize("soc_pct", [20.0, 90.0])
def test_storage_at_higher_soc_ages_faster(kit, soc_pct):
    """The same year at 25 °C but at 20 % or 90 % SoC instead of 50 %.

    Independent expectation: the calendar rate scales by exp(s (SoC - 0.5)) with the
    chemistry's SoC sensitivity s = 1.4: x1.75 at 90 %, x0.66 at 20 % (2 %), i.e. a fuller
    cell ages faster and an emptier one slower.
    """
    s = kit.NMC.ageing.calendar_soc_sensitivity
    ratio = _stored_fade(kit, soc_pct, 25.0) / _stored_fade(kit, 50.0, 25.0)
    np.testing.assert_allclose(ratio, np.exp(s * (soc_pct / 100.0 - 0.5)), rtol=0.02)
    assert (ratio > 1.0) == (soc_pct > 50.0)


def test_cycling_fade_follows_cycle_constant_and_resistance_grows(kit):
    """50 cycles between 95 % and 5 % SoC at 1C and 25 °C (isothermal), 90 h in all.

    Independent expectation: a half cycle of depth D costs (k/2) D^1.5 with
    k = cycle_fade_pct_per_efc = 0.01333 % (Woehler-style DoD law; 1C and 25 °C add nothing),
    so 50 cycles of depth 0.9 give 50 k 0.9^1.5 ~ 0.57 % of cycle fade (±5 %: the depth
    drifts as capacity fades; with D = 1 this is the brief's N x k); equivalent full cycles =
    throughput / (2 Q) = 50 * 0.9 (2 %); calendar fade is smaller (k_cal sqrt(3.75 d) times
    the SoC factor averaged over the sweep, ±10 %: sqrt-time weights the sweep unevenly);
    resistance grows by 2.0 x the total fade (R0 read back, 0.1 %).
    """
    capacity_ah, cycles, depth = 10.0, 50, 0.9
    system = kit.standalone(kit.flat_cell(ageing=True, capacity_ah=capacity_ah), series=6)
    plant = kit.make_plant(system, soc_pct=95.0, dt_s=30.0, parameter_refresh_s=30.0)
    kit.close_all(plant)
    r0_fresh = plant.cp[k.R0].copy()
    half_cycle_s = depth * 3600.0
    for _ in range(cycles):
        plant.set_duty(DutyMode.CURRENT, capacity_ah)  # 1C discharge
        plant.advance(half_cycle_s)
        plant.set_duty(DutyMode.CURRENT, -capacity_ah)  # 1C charge (regeneration)
        plant.advance(half_cycle_s)
    ageing = kit.NMC.ageing
    k_cycle = ageing.cycle_fade_pct_per_efc / 100.0
    expected_cycle = cycles * k_cycle * depth**ageing.dod_exponent
    np.testing.assert_allclose(plant.ageing.cycle_fade, expected_cycle, rtol=0.05)
    np.testing.assert_allclose(plant.ageing.equivalent_full_cycles, cycles * depth, rtol=0.02)

    days = 2 * cycles * half_cycle_s / DAY_S
    soc_sweep = np.linspace(0.05, 0.95, 1001)
    soc_factor = np.mean(np.exp(ageing.calendar_soc_sensitivity * (soc_sweep - 0.5)))
    expected_calendar = ageing.calendar_fade_pct_per_sqrt_day / 100.0 * np.sqrt(days)
    np.testing.assert_allclose(
        plant.ageing.calendar_fade, expected_calendar * soc_factor, rtol=0.10
    )
    assert np.all(plant.ageing.cycle_fade > plant.ageing.calendar_fade)
    total = plant.ageing.capacity_fade
    np.testing.assert_allclose(
        plant.cp[k.R0] / r0_fresh, 1.0 + ageing.resistance_growth_per_fade * total, rtol=1e-3
    )
    assert np.all(plant.cp[k.R0] > r0_fresh)
