"""The power side of the plant against hand-solved circuits.

Parallel strings sharing a load and equalising, the precharge RC, an external short, a welded
contactor and the MOSFET's direction blocking. Strings use flat-parameter analytic cells (see
conftest), so every resistance and OCV in an expectation comes from the configuration alone.
"""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.model.faults import ExternalShort, WeldedContactor
from cellwarden.model.scenario import ChargerSpec
from cellwarden.model.system import SystemSpec
from cellwarden.plant import kernel as k
from cellwarden.plant.duty import DutyMode
from cellwarden.plant.power_path import SwitchStates

SERIES = 12
CONTACTOR_CLOSED_OHM = 0.0005  # PowerPathSpec default
CABLE_OHM = 0.0005  # StringSpec default
PRECHARGE_OHM = 20.0  # PowerPathSpec default
CLOSED = SwitchStates(negative=True, positive=True)
OPEN = SwitchStates()


def _parallel_strings(kit, cells: list[dict], **system) -> SystemSpec:
    spec = {
        "architecture": "multi-master",
        "dc_link_capacitance_f": 0.0,
        "dc_link_bleed_resistance_ohm": kit.HUGE_BLEED_OHM,
        "strings": [
            {"pack": {"cell": cell, "series": SERIES}, "cells_per_slave": 12} for cell in cells
        ],
    }
    spec.update(system)
    return SystemSpec.model_validate(spec)


def _mean_rc(r: float, tau: float, dt: float) -> float:
    """Mean RC voltage per amp over the first step of a constant current from rest."""
    return r * (1.0 - tau / dt * (1.0 - np.exp(-dt / tau)))


def _set_string_soc_by_use(plant, string: int, amps: float, seconds: float) -> None:
    """Move one string's SoC by using it alone (the others open), then open it again."""
    for index in range(plant.layout.string_count):
        plant.set_switches(index, CLOSED if index == string else OPEN)
    plant.set_duty(DutyMode.CURRENT, amps)
    plant.advance(seconds)
    plant.set_duty(DutyMode.REST, 0.0)
    plant.set_switches(string, OPEN)


def _string_emf(kit, plant, string: int) -> float:
    """Sum of the open-circuit voltages of a string's cells (1P), from the chemistry table."""
    first, last = plant.layout.string_first_cell[string : string + 2]
    return float(kit.ocv(plant.soc[first:last]).sum())


def _prepared_strings(kit, r0_values, soc_moves, dt: float = 0.01):
    """Strings of flat cells with the given R0, at different SoCs, rested until RC ~ 0."""
    cells = [
        kit.flat_cell(name=f"flat-r0-{r0}", capacity_ah=50.0, r0_ohm=r0, r1_ohm=0.001,
                      tau1_s=2.0, r2_ohm=0.0015, tau2_s=30.0)
        for r0 in r0_values
    ]  # fmt: skip
    plant = kit.make_plant(
        _parallel_strings(kit, cells), soc_pct=50.0, dt_s=dt, parameter_refresh_s=1.0
    )
    for string, amps in soc_moves.items():
        _set_string_soc_by_use(plant, string, amps, 300.0)
    plant.advance(900.0)  # 30 tau2 of rest: RC voltages ~ e^-30
    assert np.abs(plant.cs[[k.V1, k.V2]]).max() < 1e-9  # RC voltages relaxed
    return plant, cells


def test_parallel_strings_share_load_like_the_hand_solved_circuit(kit):
    """Three 12S strings at SoC 41.7 / 50 / 58.3 % with R0 2, 3, 5 mOhm take a 100 A load.

    Independent expectation (Millman's theorem): with E_k the sum of the table OCVs of
    string k's cells and R_k = 12 (R0 + mean RC over the first step) + contactor + cable,
    V = (-I_load + sum E_k / R_k) / sum 1 / R_k and I_k = (V - E_k) / R_k (positive charges)
    for the first step, to 1e-6 relative; the currents sum to -I_load.
    """
    dt = 0.01
    r0_values = (0.002, 0.003, 0.005)
    plant, cells = _prepared_strings(kit, r0_values, {0: 50.0, 2: -50.0}, dt)
    emf = np.array([_string_emf(kit, plant, s) for s in range(3)])
    assert emf[0] < emf[1] < emf[2]
    resistance = np.array(
        [
            SERIES
            * (
                c["r0_ohm"]
                + _mean_rc(c["r1_ohm"], c["tau1_s"], dt)
                + _mean_rc(c["r2_ohm"], c["tau2_s"], dt)
            )
            + CONTACTOR_CLOSED_OHM
            + CABLE_OHM
            for c in cells
        ]
    )
    load = 100.0
    node_v = (-load + np.sum(emf / resistance)) / np.sum(1.0 / resistance)
    expected = (node_v - emf) / resistance

    kit.close_all(plant)
    plant.set_duty(DutyMode.CURRENT, load)
    plant.advance_steps(1)
    np.testing.assert_allclose(plant.string_current_a, expected, rtol=1e-6)
    np.testing.assert_allclose(plant.bus_voltage_v, node_v, rtol=1e-9)
    np.testing.assert_allclose(plant.string_current_a.sum(), -load, rtol=1e-9)
    assert np.all(plant.string_current_a < 0.0)  # here the load outweighs the SoC gaps


def test_circulating_current_between_strings_flows_high_to_low_and_decays(kit):
    """Two 12S strings at SoC 41.7 % and 58.3 % connected with no load.

    Independent expectation: at the first step the current is dE / (R_a + R_b) (R with the
    first-step mean RC), out of the higher string into the lower (1e-6 relative); the two
    currents cancel at every sample (no load, no capacitor); the magnitude falls
    monotonically as RC voltages build and the SoCs equalise (equalisation time constant
    (R_a + R_b) * Q*3600 / (12 dOCV/dSoC) / 2 ~ 25 min), the SoC gap shrinks, and charge is
    conserved: the SoC the high string loses the low string gains.
    """
    dt = 0.01
    plant, cells = _prepared_strings(kit, (0.002, 0.004), {0: -50.0, 1: 50.0}, dt)
    emf = np.array([_string_emf(kit, plant, s) for s in range(2)])
    assert emf[0] > emf[1]
    resistance = sum(
        SERIES
        * (
            c["r0_ohm"]
            + _mean_rc(c["r1_ohm"], c["tau1_s"], dt)
            + _mean_rc(c["r2_ohm"], c["tau2_s"], dt)
        )
        + CONTACTOR_CLOSED_OHM
        + CABLE_OHM
        for c in cells
    )
    soc_start = plant.soc.copy()
    kit.close_all(plant)
    t_connect = plant.time_s
    plant.advance_steps(1)
    expected = (emf[0] - emf[1]) / resistance
    np.testing.assert_allclose(plant.string_current_a, [-expected, expected], rtol=1e-6)

    magnitudes = [expected]
    gaps = [soc_start[:SERIES].mean() - soc_start[SERIES:].mean()]
    for after in (1.0, 10.0, 100.0, 1000.0, 5000.0):
        plant.advance(round(t_connect + after - plant.time_s, 6))
        current = plant.string_current_a
        np.testing.assert_allclose(current.sum(), 0.0, atol=1e-9)
        assert current[0] < 0.0 < current[1]
        magnitudes.append(current[1])
        gaps.append(plant.soc[:SERIES].mean() - plant.soc[SERIES:].mean())
    assert np.all(np.diff(magnitudes) < 0), magnitudes
    assert np.all(np.diff(gaps) < 0) and gaps[-1] < 0.15 * gaps[0], gaps
    moved = soc_start - plant.soc
    np.testing.assert_allclose(moved[:SERIES].sum(), -moved[SERIES:].sum(), rtol=1e-9)


# --- precharge ---------------------------------------------------------------------------------


def _precharge_plant(kit, dt: float):
    cell = kit.flat_cell(capacity_ah=10.0, r0_ohm=0.010)
    system = SystemSpec.model_validate(
        {
            "architecture": "master-slave",
            "dc_link_capacitance_f": 0.002,
            "dc_link_bleed_resistance_ohm": kit.HUGE_BLEED_OHM,
            "strings": [{"pack": {"cell": cell, "series": 24}, "cells_per_slave": 12}],
        }
    )
    plant = kit.make_plant(system, soc_pct=60.0, dt_s=dt, parameter_refresh_s=100 * dt)
    return plant, cell, system


def test_precharge_follows_rc_charging_and_limits_inrush(kit):
    """Precharging a 2 mF DC link from a 24S string through the 20 Ohm precharge resistor.

    Independent expectation: with E = 24 OCV(60 %), R = R_pre + cable + 24 R0 and
    tau = R C, the bus follows V(t) = E (1 - e^(-t/tau)) (0.02 % at tau and 3 tau); the
    inrush peak is E / R (0.2 %; 0.01 % against its mean over the first step); the heat
    dissipated in R over 10 tau is 1/2 C E^2, the energy stored 1/2 C V^2 and the energy
    drawn from the cells C E^2 (0.1 % each). A direct close
    of the main contactors without precharge starts at E / R_direct averaged over the first
    step (R_direct = 24 R0 + contactor + cable; 1 %), over 50 times the precharge peak, and
    closing the mains after 5 tau of precharge leaves an inrush of only ~ E e^-5 / R_direct.
    """
    dt = 1e-4
    plant, cell, system = _precharge_plant(kit, dt)
    cap_f = system.dc_link_capacitance_f
    emf = 24 * float(kit.ocv(0.6))
    r_pre_loop = PRECHARGE_OHM + CABLE_OHM + 24 * cell["r0_ohm"]
    tau = r_pre_loop * cap_f
    assert plant.bus_voltage_v == 0.0

    plant.set_switches(0, SwitchStates(negative=True, precharge=True))
    n_tau = round(tau / dt)
    currents, voltages = [], []
    for _ in range(round(10 * tau / dt)):
        plant.advance_steps(1)
        currents.append(-plant.string_current_a[0])
        voltages.append(plant.bus_voltage_v)
    currents_a = np.array(currents)
    t = dt * np.arange(1, len(voltages) + 1)
    for multiple in (1, 3):
        index = round(multiple * tau / dt) - 1
        np.testing.assert_allclose(
            voltages[index], emf * (1.0 - np.exp(-t[index] / tau)), rtol=2e-4
        )
    peak = currents_a.max()
    np.testing.assert_allclose(peak, emf / r_pre_loop, rtol=2e-3)  # a step-mean, dt = tau/400
    np.testing.assert_allclose(
        peak, emf / r_pre_loop * tau / dt * (1.0 - np.exp(-dt / tau)), rtol=1e-4
    )
    heat_j = np.sum(currents_a**2 * r_pre_loop * dt)
    np.testing.assert_allclose(heat_j, 0.5 * cap_f * emf**2, rtol=1e-3)
    np.testing.assert_allclose(0.5 * cap_f * voltages[-1] ** 2, 0.5 * cap_f * emf**2, rtol=1e-3)
    np.testing.assert_allclose(np.sum(emf * currents_a * dt), cap_f * emf**2, rtol=1e-3)
    assert n_tau > 100

    # after 5 tau of precharge, closing the mains gives only a small step
    staged, _, _ = _precharge_plant(kit, dt)
    staged.set_switches(0, SwitchStates(negative=True, precharge=True))
    staged.advance(round(5 * tau / dt) * dt)
    staged.set_switches(0, CLOSED)
    staged.advance_steps(1)
    r_direct = 24 * cell["r0_ohm"] + CONTACTOR_CLOSED_OHM + CABLE_OHM
    tau_direct = r_direct * cap_f
    first_step_mean = tau_direct / dt * (1.0 - np.exp(-dt / tau_direct))
    staged_inrush = -staged.string_current_a[0]
    assert staged_inrush < 1.1 * emf * np.exp(-5.0) / r_direct * first_step_mean

    direct, _, _ = _precharge_plant(kit, dt)
    direct.set_switches(0, CLOSED)
    direct.advance_steps(1)
    direct_inrush = -direct.string_current_a[0]
    np.testing.assert_allclose(direct_inrush, emf / r_direct * first_step_mean, rtol=0.01)
    assert direct_inrush > 50 * peak
    assert direct_inrush > 30 * staged_inrush


# --- faults on the power side -----------------------------------------------------------------


def _mosfet_plant(kit, dt: float = 0.01, bleed_ohm: float | None = None, **plant_kwargs):
    cell = kit.flat_cell(capacity_ah=20.0, r0_ohm=0.010)
    bleed = kit.HUGE_BLEED_OHM if bleed_ohm is None else bleed_ohm
    system = kit.standalone(cell, series=13, dc_link_bleed_resistance_ohm=bleed)
    plant = kit.make_plant(system, soc_pct=60.0, dt_s=dt, parameter_refresh_s=100 * dt,
                           **plant_kwargs)  # fmt: skip
    return plant, cell, system


def test_external_short_current_until_path_opens(kit):
    """A 0.2 Ohm short across the bus of a 13S pack behind closed MOSFETs.

    Independent expectation: once the DC link has dumped into the short (tau ~ 0.1 ms) the
    string delivers E / (R_short + 13 (R0 + R1 (1 - e^(-t/tau1)) + R2 (1 - e^(-t/tau2))) +
    FET + cable), E = 13 OCV(SoC), the RC pairs charging since the short began (0.02 % after
    20 ms; ignoring them would be 0.1 % off); opening the path stops the string current at once
    and the short drains the link to ~0 V within 10 ms (50 time constants of R_short C).
    """
    dt = 1e-4
    plant, cell, _ = _mosfet_plant(kit, dt)
    kit.close_all(plant)
    plant.advance(0.05)  # the DC link charges through the closed FETs
    r_short = 0.2
    plant.inject(ExternalShort(kind="external_short", at_s=plant.time_s, resistance_ohm=r_short))
    t = 0.02
    plant.advance(t)
    emf = float(kit.ocv(plant.soc).sum())
    rc_ohm = cell["r1_ohm"] * (1.0 - np.exp(-t / cell["tau1_s"])) + cell["r2_ohm"] * (
        1.0 - np.exp(-t / cell["tau2_s"])
    )
    r_loop = r_short + 13 * (cell["r0_ohm"] + rc_ohm) + CONTACTOR_CLOSED_OHM + CABLE_OHM
    np.testing.assert_allclose(-plant.string_current_a[0], emf / r_loop, rtol=2e-4)
    np.testing.assert_allclose(plant.bus_voltage_v, emf * r_short / r_loop, rtol=2e-4)

    plant.set_switches(0, OPEN)
    plant.advance_steps(1)
    assert plant.string_current_a[0] == 0.0
    plant.advance(0.01)
    assert abs(plant.bus_voltage_v) < 1e-6 * emf


TRIP_DELAY_S = 200e-6


@pytest.mark.parametrize(
    "dt",
    [
        1e-3,
        2e-5,
    ],
)
def test_analog_short_circuit_cutoff_opens_after_its_delay(kit, dt):
    """A 0.05 Ohm short across the bus of a 13S pack whose MOSFET board trips at 150 A.

    Independent expectation (no DC link, so the short current is the string current): the
    string delivers I_sc = E / (R_short + 13 R0 + FET + cable) ~ 270 A > 150 A until the analog
    cut-off opens its configured 200 us later, so the let-through charge is I_sc * 200 us
    (0.1 %, whether the plant step is longer or shorter than the delay); then the string
    carries nothing, stays open when commanded closed again, and after a re-arm with the
    short still there it lets the same charge through once more.
    """
    cell = kit.flat_cell(capacity_ah=20.0, r0_ohm=0.010)
    path = {"kind": "mosfet", "max_current_a": 250, "short_circuit_trip_a": 150.0,
            "short_circuit_delay_s": TRIP_DELAY_S}  # fmt: skip
    system = SystemSpec.model_validate(
        {
            "architecture": "standalone",
            "dc_link_capacitance_f": 0.0,
            "dc_link_bleed_resistance_ohm": kit.HUGE_BLEED_OHM,
            "strings": [{"pack": {"cell": cell, "series": 13}, "power_path": path}],
        }
    )
    plant = kit.make_plant(system, soc_pct=60.0, dt_s=dt, parameter_refresh_s=1000 * dt)
    kit.close_all(plant)
    plant.advance_steps(10)
    r_short = 0.05
    emf = float(kit.ocv(plant.soc).sum())
    i_short = emf / (r_short + 13 * cell["r0_ohm"] + CONTACTOR_CLOSED_OHM + CABLE_OHM)
    assert i_short > 150.0
    plant.inject(ExternalShort(kind="external_short", at_s=plant.time_s, resistance_ohm=r_short))

    def let_through() -> float:
        charge = 0.0
        for _ in range(round(2e-3 / dt)):
            plant.advance_steps(1)
            charge -= plant.string_current_a[0] * dt
        return charge

    first = let_through()
    np.testing.assert_allclose(first, i_short * TRIP_DELAY_S, rtol=1e-3)
    assert plant.short_circuit_tripped(0)
    assert plant.string_current_a[0] == 0.0
    kit.close_all(plant)
    plant.advance_steps(3)
    assert plant.string_current_a[0] == 0.0
    plant.reset_short_circuit_trip(0)
    np.testing.assert_allclose(let_through(), first, rtol=1e-3)
    assert plant.short_circuit_tripped(0)


def test_welded_contactor_keeps_conducting_after_open_command(kit):
    """The positive contactor of a 12S string welds while it carries 20 A.

    Independent expectation: a contactor path conducts when the negative and the positive
    relay are closed; a welded positive stays closed whatever it is told, so commanding it open
    (negative still closed) leaves the 20 A flowing, whereas a healthy path stops at once;
    opening the negative relay as well breaks the circuit even with the weld.
    """
    commands = []
    for welded in (False, True):
        plant, _ = _prepared_strings(kit, (0.002,) * 2, {})
        plant.set_switches(0, CLOSED)
        plant.set_duty(DutyMode.CURRENT, 20.0)
        plant.advance(1.0)
        if welded:
            plant.inject(WeldedContactor(kind="welded_contactor", at_s=plant.time_s, string=0))
        plant.set_switches(0, SwitchStates(negative=True, positive=False))
        plant.advance(1.0)
        after_open = plant.string_current_a[0]
        plant.set_duty(DutyMode.REST, 0.0)
        plant.set_switches(0, OPEN)
        plant.advance(0.1)
        commands.append((after_open, plant.string_current_a[0]))
    (healthy_open, healthy_both), (welded_open, welded_both) = commands
    assert healthy_open == 0.0 and healthy_both == 0.0
    np.testing.assert_allclose(welded_open, -20.0, rtol=1e-9)
    assert welded_both == 0.0


def test_mosfet_with_one_fet_on_blocks_the_other_direction(kit):
    """Back-to-back MOSFETs: one FET on conducts only its own direction (body diode).

    Independent expectation (default 10 kOhm DC-link bleed, drawing V / 10 kOhm): discharge
    FET only: a 15 A load is served (string -(15 A + bleed)), a 10 A CC charger is blocked
    (string 0 A exactly; the charger holds the bus at its CV setpoint, only the bleed current
    flowing); both FETs on: the charger's 10 A flow in (minus the bleed). Charge FET only: the
    charger still charges, while a 5 Ohm resistive load gets nothing from the pack (string
    0 A, the DC link drains to 0 V through it). Tolerance 1e-4 relative: the DC link follows
    the pack voltage and takes that little share.
    """
    bleed = 10_000.0
    set_v = 13 * 4.15
    charger = ChargerSpec(max_current_a=10.0, max_voltage_v=set_v)
    plant, _, _ = _mosfet_plant(kit, 0.01, bleed, charger=charger)
    plant.set_switches(0, SwitchStates(discharge=True))
    plant.set_duty(DutyMode.CURRENT, 15.0)
    plant.advance(1.0)
    expected = -(15.0 + plant.bus_voltage_v / bleed)
    np.testing.assert_allclose(plant.string_current_a[0], expected, rtol=1e-4)

    plant.set_duty(DutyMode.CHARGE, 10.0)
    plant.advance(1.0)
    assert plant.string_current_a[0] == 0.0
    np.testing.assert_allclose(plant.bus_voltage_v, set_v, rtol=1e-6)
    np.testing.assert_allclose(plant.charger_current_a, set_v / bleed, rtol=1e-3)

    plant.set_switches(0, SwitchStates(charge=True, discharge=True))
    plant.advance(1.0)
    expected = 10.0 - plant.bus_voltage_v / bleed
    np.testing.assert_allclose(plant.string_current_a[0], expected, rtol=1e-4)

    plant.set_switches(0, SwitchStates(charge=True))
    plant.advance(1.0)
    expected = 10.0 - plant.bus_voltage_v / bleed
    np.testing.assert_allclose(plant.string_current_a[0], expected, rtol=1e-4)
    plant.set_duty(DutyMode.RESISTANCE, 5.0)
    plant.advance(0.5)  # 50 time constants of 5 Ohm x 2 mF
    assert plant.string_current_a[0] == 0.0
    assert abs(plant.bus_voltage_v) < 1e-6


def test_charger_on_open_power_path_never_lifts_bus_above_cv_setpoint(kit):
    """A 10 A CC-CV charger plugged into the DC link while the MOSFETs are open.

    Independent expectation: with the path open the link bleeds down through its 10 kOhm
    resistor as V0 e^(-t / (R_b C)) (0.1 %). A CC-CV charger regulates its output to at most
    its CV setpoint, and the link's only other load is the bleed, so the link charges up to
    the setpoint and stays there (never more than 1 mV above it, steady within 1 mV), with the
    charger then supplying just the bleed current.
    """
    set_v = 13 * 4.15
    bleed = 10_000.0
    charger = ChargerSpec(max_current_a=10.0, max_voltage_v=set_v)
    plant, _, system = _mosfet_plant(kit, 0.01, bleed, charger=charger)
    kit.close_all(plant)
    plant.advance(1.0)
    linked_v = plant.bus_voltage_v
    plant.set_switches(0, OPEN)
    plant.advance(18.0)
    decay = np.exp(-18.0 / (bleed * system.dc_link_capacitance_f))
    np.testing.assert_allclose(plant.bus_voltage_v, linked_v * decay, rtol=1e-3)

    plant.set_duty(DutyMode.CHARGE, 10.0)
    highest = 0.0
    for _ in range(100):
        plant.advance_steps(1)
        highest = max(highest, plant.bus_voltage_v)
    assert plant.string_current_a[0] == 0.0
    assert highest < set_v + 1e-3
    np.testing.assert_allclose(plant.bus_voltage_v, set_v, atol=1e-3)
    np.testing.assert_allclose(plant.charger_current_a, set_v / bleed, rtol=1e-3)


def test_floating_dc_link_energy_balance_with_high_bleed_resistance(kit):
    """A 0.2 A regenerative current source charges a floating 2 mF DC link (path open).

    The link starts above the load's undervoltage lockout (a load draws or feeds nothing on a
    dead bus). Independent expectation: energy conservation on the bus node: the energy the
    source delivers (the plant's load energy, negative for regeneration) equals the change of
    1/2 C V^2 plus the energy burnt in the 100 MOhm bleed (1e-6 relative); the link voltage is
    V0 e^(-t/tau) + I R_b (1 - e^(-t/tau)) with tau = R_b C (1e-6).
    """
    bleed, dt, current, duration = 1e8, 1e-3, 0.2, 0.5
    plant, _, system = _mosfet_plant(kit, dt, bleed)
    cap_f = system.dc_link_capacitance_f
    start_v = 2.0 * plant.bus[k.LOAD_MIN_V]
    plant.bus[k.BUS_V] = start_v
    plant.set_duty(DutyMode.CURRENT, -current)
    plant.advance(duration)
    tau = bleed * cap_f
    decay = np.exp(-duration / tau)
    np.testing.assert_allclose(
        plant.bus_voltage_v, start_v * decay + current * bleed * (1.0 - decay), rtol=1e-6
    )
    stored = 0.5 * cap_f * (plant.bus_voltage_v**2 - start_v**2)
    delivered = -plant.bus[k.LOAD_ENERGY_J]
    np.testing.assert_allclose(delivered, stored + plant.bus[k.BLEED_ENERGY_J], rtol=1e-6)
