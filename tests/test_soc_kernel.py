"""The compiled SoC filter and cell-model lookup (``bms.soc_kernel``) against their NumPy
references: the same float64 results to the last bit (compared as bit patterns, so a signed
zero or a NaN's payload would count too), step by step and over a closed-loop run."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from cellwarden.bms.cell_model import SOC_POINTS, TEMP_STEP_C, CellModel, CellPoint
from cellwarden.bms.soc_estimator import SocEstimator
from cellwarden.bms.soc_kernel import RHO, SOC, SOC_BOUNDS
from cellwarden.compiled import HAVE_NUMBA
from cellwarden.model.bms import EstimationSettings
from cellwarden.model.library import load_cell
from cellwarden.model.scenario import Scenario
from cellwarden.simulation.campaign import FIRMWARE_TIMING
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import Simulation

needs_numba = pytest.mark.skipif(
    not HAVE_NUMBA, reason="numba is not installed: there is no compiled path to compare"
)
# LFP: hysteresis and a flat plateau; NMC: no hysteresis, a steep curve
CELLS = [load_cell("lfp-prismatic-280ah"), load_cell("nmc-21700-5ah")]
SEEDS = range(40)
STEPS = 40
STATE = ("x", "covariance", "hyst", "_dynamic_var", "_table_var")


def _bits(value) -> np.ndarray:
    return np.ascontiguousarray(value, dtype=np.float64).view(np.uint64)


def assert_same_bits(numpy_value, numba_value, what: str) -> None:
    """Equal shapes and equal bit patterns."""
    a, b = _bits(numpy_value), _bits(numba_value)
    assert a.shape == b.shape, what
    differ = np.flatnonzero(a.ravel() != b.ravel())
    assert differ.size == 0, (
        f"{what}: {differ.size} of {a.size} values differ, first at flat index {differ[0]}: "
        f"{np.ravel(numpy_value)[differ[0]]!r} (NumPy) vs {np.ravel(numba_value)[differ[0]]!r}"
    )


def _assert_points_equal(a: CellPoint, b: CellPoint, what: str) -> None:
    for name in CellPoint.__dataclass_fields__:
        assert_same_bits(getattr(a, name), getattr(b, name), f"{what}: {name}")


def _models(cell) -> tuple[CellModel, CellModel]:
    return CellModel(cell, use_numba=False), CellModel(cell, use_numba=True)


# --- the cell-model lookup ------------------------------------------------------------------
@needs_numba
@pytest.mark.parametrize("cell", CELLS, ids=lambda c: c.name)
def test_lookup_is_bit_identical_at_random_states_knots_and_beyond_the_grid(cell):
    reference, compiled = _models(cell)
    rng = np.random.default_rng(1)
    knots_soc = np.arange(SOC_POINTS) / (SOC_POINTS - 1)  # every SoC knot, 0 and 1 included
    knots_temp = np.arange(-40.0, 85.1, TEMP_STEP_C)
    soc = np.concatenate([rng.uniform(-0.2, 1.2, 20000), knots_soc, [-0.0, 0.0, 1.0, -0.05,
                          1.05, -1e-17, 1.0 + 1e-16, np.inf, -np.inf]])  # fmt: skip
    temp = np.concatenate([rng.uniform(-60.0, 100.0, 20000), np.resize(knots_temp, 210)])
    hyst = np.concatenate([rng.uniform(-1.0, 1.0, 20000), np.resize([-1.0, 0.0, -0.0, 1.0], 210)])
    _assert_points_equal(reference.at(soc, temp, hyst), compiled.at(soc, temp, hyst), "random")
    for args in [  # the shapes the BMS passes: a scalar hysteresis, one temperature, one cell
        (soc, 25.0, 0.0),
        (soc[:288], temp[:288], 1.0),
        (np.array([1.0]), np.array([25.0]), 1.0),
        (0.5, 25.0, -1.0),
        (soc[:12].reshape(3, 4), temp[:4], hyst[:12].reshape(3, 4)),
    ]:
        _assert_points_equal(reference.at(*args), compiled.at(*args), f"shape of {args[0]!r}")
    curve = np.linspace(3.0, 3.5, 97)
    assert_same_bits(reference.soc_from_ocv(curve, 25.0, 0.5),
                     compiled.soc_from_ocv(curve, 25.0, 0.5), "soc_from_ocv")  # fmt: skip


@pytest.mark.parametrize("use_numba", [False, True])  # without numba, the kernel as Python
@pytest.mark.parametrize("bad", ["soc", "temp"])
def test_lookup_at_a_nan_state_is_the_same_clear_error(bad, use_numba):
    model = CellModel(CELLS[0], use_numba=use_numba)
    soc, temp = np.array([0.5, 0.4]), np.array([25.0, 25.0])
    (soc if bad == "soc" else temp)[1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.at(soc, temp, 0.0)


# --- the filter step ------------------------------------------------------------------------
def _pair(cell, cells: int, rng, paths=(False, True)) -> list[SocEstimator]:
    """Started estimators, NumPy and numba (each with its own model on the same path)."""
    settings = EstimationSettings()
    noise_a = 0.002 * cell.capacity_ah
    pair = [SocEstimator(CellModel(cell, use_numba=use), cells, settings, noise_a, use_numba=use)
            for use in paths]  # fmt: skip
    reference = pair[0].model
    temp = rng.uniform(0.0, 45.0, cells)
    voltage = reference.at(rng.uniform(0.05, 0.95, cells), temp).ocv_v
    resting = bool(rng.random() < 0.5)
    current_a = 0.0 if resting else float(rng.uniform(-1.0, 1.0) * cell.capacity_ah)
    for estimator in pair:
        estimator.start(voltage, temp, current_a, resting)
        estimator.capacity_ah = cell.capacity_ah * (1.0 + 0.05 * np.arange(cells) / cells)
    return pair


def _inputs(rng, cell, cells: int, truth: np.ndarray, model: CellModel):
    """One step's inputs: the truth's voltages with noise, glitches, some exact zeros."""
    capacity = cell.capacity_ah
    dt_s = float(rng.choice([0.1, 0.1, 1.0, 5.0, 0.0]))
    kind = rng.integers(5)
    if kind == 0:
        current = 0.0  # a rest, as a scalar
    elif kind == 1:
        current = float(rng.normal(0.0, 1.5) * capacity)  # one string current, as a scalar
    else:  # less a balancing bleed on some cells, or exactly zero on some
        current = np.full(cells, rng.normal(0.0, 1.0) * capacity)
        current -= rng.uniform(0.0, 0.4, cells) * (rng.random(cells) < 0.3)
        current[rng.random(cells) < 0.1] = 0.0
    mean_current = current if rng.random() < 0.5 else current * rng.uniform(0.9, 1.1)
    truth += np.asarray(mean_current) * dt_s / (3600.0 * capacity)
    temp = np.where(rng.random(cells) < 0.2, rng.choice([-40.0, 0.0, 25.0, 85.0, 90.0], cells),
                    rng.uniform(-10.0, 50.0, cells))  # fmt: skip
    point = model.at(np.clip(truth, 0.0, 1.0), temp)
    voltage = point.ocv_v + point.r0_ohm * current + rng.normal(0.0, 0.003, cells)
    glitch = rng.random(cells) < 0.05
    voltage[glitch] += rng.choice([-2.0, -0.3, 0.3, 2.0], glitch.sum())  # far beyond the gate
    return dt_s, mean_current, current, voltage, temp


def _counted(lookup, calls: list):
    """``lookup`` noting each call in ``calls``."""

    def counted(*args, **kwargs):
        calls.append(args)
        return lookup(*args, **kwargs)

    return counted


def _compare_run(seed: int, cells: int) -> tuple[int, int]:
    """One random run of both paths, compared after every step; returns how many lookups the
    reference's corrections relinearised with and how many SoCs sat on a bound."""
    rng = np.random.default_rng([cells, seed])
    cell = CELLS[seed % len(CELLS)]
    reference, compiled = _pair(cell, cells, rng)
    truth = rng.uniform(0.0, 1.0, cells)
    if seed % 4 == 0:  # cells started at, or driven across, the SoC's ends
        truth = rng.choice([0.0, 1.0, -0.0, SOC_BOUNDS[0], SOC_BOUNDS[1], 0.999], cells)
        reference.soc = compiled.soc = truth
    numpy_at = reference.model.at
    relinearised = at_bounds = 0
    for step in range(STEPS):
        dt_s, mean_a, current_a, voltage_v, temp_c = _inputs(rng, cell, cells, truth,
                                                              compiled.model)  # fmt: skip
        points = [estimator.model.at(estimator.soc, temp_c, estimator.hyst)
                  for estimator in (reference, compiled)]  # fmt: skip
        what = f"seed {seed}, step {step}"
        _assert_points_equal(*points, what)
        lookups = []
        reference.model.at = _counted(numpy_at, lookups)
        reference.step(dt_s, mean_a, current_a, voltage_v, temp_c, points[0])
        del reference.model.at
        compiled.step(dt_s, mean_a, current_a, voltage_v, temp_c, points[1])
        for name in STATE:
            assert_same_bits(getattr(reference, name), getattr(compiled, name), f"{what}: {name}")
        relinearised += len(lookups)
        at_bounds += int(np.isin(reference.x[:, SOC], SOC_BOUNDS).sum())
    return relinearised, at_bounds


@needs_numba
@pytest.mark.parametrize("cells", [1, 7, 288])
def test_filter_step_is_bit_identical_over_random_runs(cells):
    """Random but realistic runs from wrong starts: relinearisation, gated glitches, rests,
    bleeds, the SoC bounds; every step's state compared, the model point included."""
    relinearised, at_bounds = np.sum([_compare_run(seed, cells) for seed in SEEDS], axis=0)
    assert relinearised > 0  # the iterated corrections ran
    assert at_bounds > 0  # and the SoC's bounds were hit


@needs_numba
def test_filter_step_with_extreme_states_and_currents_is_bit_identical():
    """Hand-picked corners: the R0 scale at its bounds, full hysteresis, currents right at the
    R0 threshold, a huge innovation on a settled cell, dt of zero."""
    cell = CELLS[0]
    rng = np.random.default_rng(7)
    reference, compiled = _pair(cell, 6, rng)
    for estimator in (reference, compiled):
        estimator.x[:, RHO] = [0.3, 3.0, 1.0, 0.3 - 1e-9, 3.0 + 1e-9, 1.0]
        estimator.hyst[:] = [-1.0, 1.0, 0.0, -0.0, 0.5, -1.0]
    threshold = 0.2 * reference.capacity_ah
    current = np.array([threshold[0], -threshold[1], 0.0, -0.0, 3.0 * cell.capacity_ah, 1e-12])
    temp = np.array([-40.0, 85.0, 25.0, 25.0, -41.0, 86.0])
    for dt_s, glitch_v in [(0.1, 0.0), (0.0, 0.0), (0.1, 5.0), (1.0, -5.0), (0.1, 0.0)]:
        voltage = compiled.model.at(compiled.soc, temp, compiled.hyst).ocv_v + glitch_v
        for estimator in (reference, compiled):
            point = estimator.model.at(estimator.soc, temp, estimator.hyst)
            estimator.step(dt_s, current, current, voltage, temp, point)
        for name in STATE:
            assert_same_bits(getattr(reference, name), getattr(compiled, name), name)


@pytest.mark.parametrize("use_numba", [False, True])
def test_a_nan_cell_voltage_is_the_same_clear_error_on_both_paths(use_numba):
    """NaN reaches the state, and the relinearisation's lookup refuses it (the BMS itself
    never steps a channel without data)."""
    rng = np.random.default_rng(3)
    for estimator in _pair(CELLS[1], 4, rng, paths=(use_numba,)):
        temp = np.full(4, 25.0)
        voltage = estimator.model.at(estimator.soc, temp).ocv_v
        voltage[2] = np.nan
        point = estimator.model.at(estimator.soc, temp, estimator.hyst)
        with pytest.raises(ValueError, match="NaN"):
            estimator.step(0.1, np.zeros(4), np.zeros(4), voltage, temp, point)


# --- a closed loop --------------------------------------------------------------------------
def _history(scenario: Scenario, use_numba: bool) -> list[np.ndarray]:
    simulation = Simulation(scenario)
    for bms in simulation.controller.bms:
        bms.model.use_numba = bms.estimator.use_numba = use_numba
    estimators = [bms.estimator for bms in simulation.controller.bms]
    history = []
    for _ in simulation.steps():
        for estimator in estimators:
            if estimator.started:
                history += [estimator.x.copy(), estimator.covariance.copy()]
    simulation.result(0.0)  # closes the buses
    return history


@needs_numba
def test_a_master_slave_run_has_the_same_soc_history_on_both_paths():
    """A cart's 24 cells from unequal starts, driving, then regenerating: every state after
    every plant step, bit for bit."""
    data = copy.deepcopy(load_builtin("utility-cart-24s").model_dump(mode="json"))
    data.update(duration_s=40.0, timing=dict(FIRMWARE_TIMING))
    data["initial"] = {"soc_pct": 60.0, "cell_soc_pct": {3: 20.0, 17: 95.0}}
    data["profile"] = {"kind": "steps", "parameters": {  # 1C out, then 0.5C back in
        "mode_1": 1, "value_1": 100.0, "duration_1_s": 20.0,
        "mode_2": 1, "value_2": -50.0, "duration_2_s": 20.0}}  # fmt: skip
    scenario = Scenario.model_validate(data)
    reference, compiled = _history(scenario, False), _history(scenario, True)
    assert len(reference) == len(compiled) > 100
    for index, (a, b) in enumerate(zip(reference, compiled, strict=True)):
        assert_same_bits(a, b, f"record {index}")
