"""The whole user path on independent physics: PyBaMM DFN cells (validation/dfn, made by
validation/generate_dfn.py, which CI never runs) identified with ``cellwarden identify`` from
a 1 s HPPC test and a C/20 discharge, then replayed through the BMS's estimator.

The cells share nothing with cellwarden's two-RC plant: solid diffusion, Butler-Volmer
kinetics, a lumped thermal model, OCP hysteresis for LFP. The truth (SoC from the negative
electrode's stoichiometry, capacity from the equilibrium window, pulse resistances) comes from
the DFN itself. Targets are the issue's (#10).
"""

from __future__ import annotations

import numpy as np
import pytest

from cellwarden.bms.identification import identify
from cellwarden.bms.soc_scoring import score
from cellwarden.bms.trace_replay import replay_trace
from cellwarden.model.errors import ConfigError
from validation import suite

NMC_25 = suite.case("nmc-chen2020-25c")
TARGETS = {25.0: (1.0, 2.0, 3.0), 10.0: (1.5, 3.0, 4.0), 40.0: (1.5, 3.0, 4.0)}


@pytest.fixture(scope="module")
def nmc_25():
    return suite.identified(NMC_25)


def _drive_scores(cell, tested: suite.SuiteCase, **replay) -> list:
    scores = []
    for name in tested.names("drive"):
        trace = tested.trace(name)
        estimate = replay_trace(cell, trace, **replay)
        scores.append(score(trace["time_s"], estimate["soc_pct"], trace["true_soc_pct"]))
    return scores


# --- identification -----------------------------------------------------------------------------
def test_identify_measures_capacity_ocv_and_r0_of_a_dfn_cell(nmc_25):
    """From the rated 5 Ah the fit finds the cell's 5.15 Ah, its OCV within a few mV and its
    1 s pulse resistance."""
    cell = nmc_25.cell
    assert cell.capacity_ah == pytest.approx(NMC_25.capacity_ah, rel=0.01)
    soc, true_ocv = NMC_25.true_ocv()
    error_mv = 1000.0 * (cell.chemistry.ocv_v.lookup(soc, NMC_25.temp_c) - true_ocv)
    inside = (soc >= 0.1) & (soc <= 0.9)
    assert np.sqrt(np.mean(error_mv[inside] ** 2)) < 3.0
    assert np.abs(error_mv[inside]).max() < 8.0
    r0 = float(cell.r0_ohm.lookup(0.5, NMC_25.temp_c))
    assert r0 == pytest.approx(NMC_25.truth["pulse_resistance_50pct"]["1s_ohm"], rel=0.10)
    assert nmc_25.base_chemistry == "NMC" and not nmc_25.hysteresis


def test_identify_reads_r0_from_chained_pulses_logged_every_2_s_with_rows_missing(nmc_25):
    """Charge pulses straight after the discharge pulses (no rest between), logged at 2 s with
    3 % of the rows lost: R0 within 5 % of what the 1 s test gives, OCV still within mV."""
    coarse = identify(NMC_25.trace("hppc-chained"), NMC_25.trace("slow"), 5.0)
    expected = [level.r0_ohm for level in nmc_25.levels]
    found = np.interp([lv.soc for lv in nmc_25.levels], [lv.soc for lv in coarse.levels],
                      [lv.r0_ohm for lv in coarse.levels])  # fmt: skip
    np.testing.assert_allclose(found, expected, rtol=0.05)
    soc, true_ocv = NMC_25.true_ocv()
    error_mv = 1000.0 * (coarse.cell.chemistry.ocv_v.lookup(soc, NMC_25.temp_c) - true_ocv)
    assert np.sqrt(np.mean(error_mv[10:91] ** 2)) < 5.0


def test_identify_copes_with_a_logger_that_lost_the_end_of_every_rest(nmc_25):
    """Rows missing for ~50 minutes of every hour's rest (the logger stopped after 11): the
    charge is not counted across the gaps as if the next step had flowed through them, the
    levels sit where they did, and the rests' ends still anchor the OCV (within 6 mV)."""
    pulse = NMC_25.trace("hppc")
    time_s, resting = pulse["time_s"].to_numpy(), pulse["current_a"].abs().to_numpy() < 0.025
    since = np.zeros(time_s.size)
    for row in range(1, time_s.size):
        since[row] = since[row - 1] + time_s[row] - time_s[row - 1] if resting[row] else 0.0
    gappy = pulse[since < 660.0].reset_index(drop=True)
    assert np.diff(gappy["time_s"]).max() > 2000.0
    result = identify(gappy, NMC_25.trace("slow"), 5.0)
    np.testing.assert_allclose([lv.soc for lv in result.levels],
                               [lv.soc for lv in nmc_25.levels], atol=0.005)  # fmt: skip
    assert result.cell.capacity_ah == pytest.approx(NMC_25.capacity_ah, rel=0.01)
    soc, true_ocv = NMC_25.true_ocv()
    error_mv = 1000.0 * (result.cell.chemistry.ocv_v.lookup(soc, NMC_25.temp_c) - true_ocv)
    assert np.sqrt(np.mean(error_mv[10:91] ** 2)) < 6.0


def test_a_pulse_trace_logged_too_coarsely_is_refused_with_the_reason():
    """Every 10 s a 10 s pulse has no row right before and after its edges: say so."""
    coarse = NMC_25.trace("hppc").iloc[::10].reset_index(drop=True)
    with pytest.raises(ConfigError, match=r"no current step .* at most 5 s apart"):
        identify(coarse, NMC_25.trace("slow"), 5.0)


def test_a_slow_test_that_stops_early_falls_back_to_the_rated_capacity():
    slow = NMC_25.trace("slow")
    stopped = slow[slow["voltage_v"] > 3.4].reset_index(drop=True)  # stopped at ~20 %
    result = identify(NMC_25.trace("hppc"), stopped, 5.0)
    assert result.cell.capacity_ah == 5.0
    assert any("cannot be measured" in note for note in result.notes)


# --- NMC drives ---------------------------------------------------------------------------------
def test_nmc_drives_at_25c_from_power_up_meet_the_targets(nmc_25):
    """Two-hour drives from three unknown starts (the estimator starts from the first voltage),
    sensors with gain, offset, noise and quantisation: RMSE <= 1 % after 10 minutes,
    |error| <= 2 % at 10 minutes, max <= 3 % after 10 minutes."""
    scores = _drive_scores(nmc_25.cell, NMC_25)
    assert len(scores) == 3
    for result in scores:
        assert result.meets(*TARGETS[25.0]), result


@pytest.mark.parametrize("key", ["nmc-chen2020-10c", "nmc-chen2020-40c"])
def test_nmc_drives_at_10_and_40c_meet_the_targets(key):
    """Identified at the chamber temperature: 1.5 / 3 / 4 %."""
    tested = suite.case(key)
    for result in _drive_scores(suite.identified(tested).cell, tested):
        assert result.meets(*TARGETS[tested.temp_c]), result


def test_a_cell_identified_at_25c_estimates_at_10c(nmc_25):
    """The base chemistry's temperature dependence carries the 25 °C fit to 10 °C."""
    tested = suite.case("nmc-chen2020-10c")
    for result in _drive_scores(nmc_25.cell, tested):
        assert result.meets(*TARGETS[10.0]), result


@pytest.mark.parametrize("offset_pct", [-20.0, 20.0])
def test_a_start_20_points_wrong_is_recovered(nmc_25, offset_pct):
    trace = NMC_25.trace("drive-2")
    start = float(np.clip(trace["true_soc_pct"].iloc[0] + offset_pct, 0.0, 100.0))
    estimate = replay_trace(nmc_25.cell, trace, initial_soc_pct=start)
    result = score(trace["time_s"], estimate["soc_pct"], trace["true_soc_pct"])
    assert result.meets(*TARGETS[25.0]), result


def test_no_runaway_from_the_true_start(nmc_25):
    """No runaway under a persistent residual: started at the true SoC the estimate stays
    within 2 % throughout the first trip (the issue saw +11.8 % within 5 minutes)."""
    trace = NMC_25.trace("drive-1")
    estimate = replay_trace(nmc_25.cell, trace, initial_soc_pct=trace["true_soc_pct"].iloc[0])
    first_trip = trace["time_s"] < 1800.0
    error = (estimate["soc_pct"] - trace["true_soc_pct"])[first_trip]
    assert np.abs(error).max() < 2.0


# --- LFP --------------------------------------------------------------------------------------
def test_lfp_identified_from_1s_data_keeps_a_storage_day_within_target():
    """A123-type LFP with OCP hysteresis: identified from a 1 s HPPC (1C / 0.75C pulses) and a
    C/20 discharge and recharge; a storage day with partial charges and one CC-CV full charge:
    RMSE <= 3 %, max <= 5 % after the first full charge."""
    tested = suite.case("lfp-prada2013-25c")
    result = suite.identified(tested)
    assert result.base_chemistry == "LFP" and result.hysteresis
    trace = tested.trace("storage")
    estimate = replay_trace(result.cell, trace)
    full = np.flatnonzero(estimate["full_charge"])
    assert full.size >= 1
    after = slice(int(full[0]), None)
    error = (estimate["soc_pct"] - trace["true_soc_pct"]).to_numpy()[after]
    assert np.sqrt(np.mean(error**2)) <= 3.0
    assert np.abs(error).max() <= 5.0


# --- state of health --------------------------------------------------------------------------
@pytest.mark.parametrize("key", ["nmc-chen2020-aged-mild-25c", "nmc-chen2020-aged-strong-25c"])
def test_capacity_and_resistance_soh_of_aged_dfn_cells(nmc_25, key):
    """An LG M50 aged by lost lithium, lost active material and film resistance (SoH 86 % and
    72 %, R +18 % and +54 %), seen through a day of use with the fresh cell's model: capacity
    SoH within 2 points, resistance within 10 %."""
    aged = suite.case(key)
    truth = aged.truth
    estimate = replay_trace(nmc_25.cell, aged.trace("usage"))
    final = estimate.iloc[-1]
    true_soh_pct = 100.0 * truth["capacity_ah"] / truth["fresh_capacity_ah"]
    assert final["soh_capacity_pct"] == pytest.approx(true_soh_pct, abs=2.0)
    true_ratio = truth["pulse_resistance_50pct"]["1s_ohm"] / truth[
        "fresh_pulse_resistance_50pct"]["1s_ohm"]  # fmt: skip
    assert 100.0 / final["soh_resistance_pct"] == pytest.approx(true_ratio, rel=0.10)


def test_the_scoring_counts_what_it_says():
    time_s = np.arange(0.0, 1200.0, 1.0)
    truth = np.full(time_s.size, 50.0)
    estimate = truth + np.where(time_s < 600.0, 10.0, 1.0)
    result = score(time_s, estimate, truth)
    assert result.max_pct == pytest.approx(10.0)
    assert result.rmse_after_settle_pct == pytest.approx(1.0)
    assert result.error_at_settle_pct == pytest.approx(1.0)
    assert not result.meets(0.5, 2.0, 3.0) and result.meets(1.0, 1.0, 1.0)


def test_cli_identifies_two_temperatures_and_scores_a_drive(tmp_path):
    """The commands as a user types them, on the DFN's Parquet files: one cell from the 10 and
    25 °C tests, then a 10 °C drive scored against its truth."""
    from typer.testing import CliRunner

    from cellwarden.cli import app
    from cellwarden.model.library import load_cell

    cold, warm = suite.case("nmc-chen2020-10c"), NMC_25
    out = tmp_path / "lgm50.toml"
    arguments = ["identify", "--capacity-ah", "5", "--out", str(out)]
    for tested in (cold, warm):
        arguments += ["--pulse", str(tested.folder / "hppc.parquet"),
                      "--ocv", str(tested.folder / "slow.parquet")]  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    cell = load_cell(str(out))
    header = next(line for line in out.read_text().splitlines() if "tests at" in line)
    tested_temps = [float(t) for t in header.split("tests at ")[1].split(" °C")[0].split(",")]
    assert len(tested_temps) == 2 and tested_temps[0] < 15 < tested_temps[1]
    assert set(tested_temps) <= set(cell.r0_ohm.temp_points_c)
    result = runner.invoke(
        app,
        ["estimate", "--cell", str(out), "--trace", str(cold.folder / "drive-1.parquet"),
         "--out", str(tmp_path / "soc.csv")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    printed = " ".join(result.output.split())
    rmse = float(printed.split("after 10 min RMSE ")[1].split(" %")[0])
    assert rmse <= TARGETS[10.0][0]
