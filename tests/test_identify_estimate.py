"""Cell identification from bench traces and SoC estimation replayed on recorded traces.

The bench (a 6S1P plant without spread, reporting cell 0, with sensor noise and offsets)
records an NMC pulse test, a C/20 discharge and a dynamic drive cycle once per session; the
tests identify a cell from the first two and replay the third through the BMS's estimator.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from cellwarden.bms.identification import identify, to_toml
from cellwarden.bms.trace_replay import check_trace, read_trace, replay_trace
from cellwarden.cli import app
from cellwarden.model.errors import ConfigError
from cellwarden.model.library import load_cell
from cellwarden.simulation import cell_bench

NMC_CELL = "nmc-21700-5ah"
runner = CliRunner()


@pytest.fixture(scope="module")
def nmc_bench() -> dict[str, pd.DataFrame]:
    """Bench traces of the built-in NMC cell (about 5 s)."""
    return {
        "pulse": cell_bench.pulse_test(NMC_CELL, seed=11),
        "slow": cell_bench.slow_discharge_test(NMC_CELL, seed=12),
        # ~2.5 h of driving and parking, from 90 % down to ~45 %
        "drive": cell_bench.drive_cycle(NMC_CELL, seed=13, start_soc_pct=90.0, end_soc_pct=45.0),
    }


@pytest.fixture(scope="module")
def nmc_identified(nmc_bench):
    return identify(nmc_bench["pulse"], nmc_bench["slow"], 5.0, name="nmc-test")


def _true_parameter(cell, name: str, soc: float, temp_c: float) -> float:
    """The plant's parameter: the cell's scalar times its chemistry's shape."""
    chem = cell.chemistry
    shape = chem.time_constant_factor if name.startswith("tau") else chem.resistance_factor
    return float(getattr(cell, name) * shape.lookup(soc, temp_c))


def _errors(estimate: pd.DataFrame, trace: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    t = trace["time_s"].to_numpy() - trace["time_s"].iloc[0]
    return t, estimate["soc_pct"].to_numpy() - trace["true_soc_pct"].to_numpy()


def _back_within(t: np.ndarray, error: np.ndarray, band: float) -> float:
    """The time after which the error stays inside the band."""
    outside = np.flatnonzero(np.abs(error) > band)
    return 0.0 if not outside.size else float(t[min(outside[-1] + 1, t.size - 1)])


# --- the bench ---------------------------------------------------------------------------------
def test_bench_traces_have_the_documented_shape(nmc_bench):
    pulse, slow = nmc_bench["pulse"], nmc_bench["slow"]
    for trace in nmc_bench.values():
        assert list(trace.columns) == list(cell_bench.TRACE_COLUMNS)
        assert (np.diff(trace["time_s"]) > 0).all()
    assert pulse["current_a"].min() == pytest.approx(-5.0, abs=0.05)  # 1C discharge pulses
    assert pulse["current_a"].max() > 3.7  # 0.75C charge pulses
    assert pulse["true_soc_pct"].min() == pytest.approx(5.0, abs=2.0)  # down to ~5 %
    assert (np.diff(pulse["time_s"]).min()) == pytest.approx(0.1)  # 10 Hz around pulses
    discharging = slow[slow["current_a"] < -0.1]["current_a"]
    assert discharging.median() == pytest.approx(-0.25, abs=0.01)  # C/20
    assert slow["true_soc_pct"].min() < 1.0  # empty at the end


# --- identification ----------------------------------------------------------------------------
def test_identified_resistance_capacity_and_time_constants(nmc_identified):
    nominal = load_cell(NMC_CELL)
    cell = nmc_identified.cell
    # measured, not given: the plant's cell holds 5 Ah between its OCV table's ends
    assert cell.capacity_ah == pytest.approx(5.0, rel=0.01)
    assert len(nmc_identified.levels) >= 10
    for level in nmc_identified.levels:
        r0 = _true_parameter(nominal, "r0_ohm", level.soc, level.temp_c)
        assert level.r0_ohm == pytest.approx(r0, rel=0.10), level
        for name in ("r1_ohm", "tau1_s", "r2_ohm", "tau2_s"):
            truth = _true_parameter(nominal, name, level.soc, level.temp_c)
            assert 0.6 * truth <= getattr(level, name) <= 1.6 * truth, (name, level)
        assert 5.0 <= level.tau1_s <= 40.0 and 300.0 <= level.tau2_s <= 1200.0
    # the tables carry the fit at the test temperature
    middle = min(nmc_identified.levels, key=lambda lv: abs(lv.soc - 0.5))
    table_r0 = float(cell.r0_ohm.lookup(middle.soc, nmc_identified.test_temp_c))
    assert table_r0 == pytest.approx(middle.r0_ohm, rel=1e-3)


def test_identified_ocv_matches_the_plant_over_10_to_90_percent(nmc_identified):
    nominal = load_cell(NMC_CELL)
    soc = np.linspace(0.1, 0.9, 81)
    temp = nmc_identified.test_temp_c
    identified = nmc_identified.cell.chemistry.ocv_v.lookup(soc, temp)
    truth = nominal.chemistry.ocv_v.lookup(soc, temp)
    assert np.max(np.abs(identified - truth)) < 0.006
    assert np.sqrt(np.mean((identified - truth) ** 2)) < 0.003
    assert nmc_identified.cell.chemistry.ocv_charge_v is None  # NMC: no hysteresis found
    assert nmc_identified.base_chemistry == "NMC"  # guessed from the OCV


def test_identified_file_loads(nmc_identified, tmp_path: Path):
    path = nmc_identified.write(tmp_path / "cell.toml")
    loaded = load_cell(str(path))
    assert loaded == nmc_identified.cell
    assert loaded.chemistry.name == "NMC (identified)"
    text = path.read_text()
    assert text.startswith("# nmc-test: identified")


def test_single_temperature_tables_hold_one_row(nmc_bench):
    result = identify(
        nmc_bench["pulse"], nmc_bench["slow"], 5.0, chemistry="NMC", temperature_from_base=False
    )
    assert len(result.cell.r0_ohm.temp_points_c) == 1
    assert len(result.cell.chemistry.ocv_v.temp_points_c) == 1
    assert not any("guessed" in note for note in result.notes)


def test_lfp_hysteresis_is_identified_from_a_slow_charge():
    """A C/20 recharge after the discharge shows the LFP charge branch ~18 mV higher."""
    nominal = load_cell("lfp-prismatic-100ah")
    pulse = cell_bench.pulse_test(nominal, seed=21, step_rest_s=1800.0)
    slow = cell_bench.slow_discharge_test(nominal, seed=22, recharge=True)
    result = identify(pulse, slow, 100.0)
    assert result.base_chemistry == "LFP" and result.hysteresis
    chem = result.cell.chemistry
    assert chem.hysteresis_rate == nominal.chemistry.hysteresis_rate
    soc = np.linspace(0.2, 0.9, 57)
    for identified, truth in ((chem.ocv_v, nominal.chemistry.ocv_v),
                              (chem.ocv_charge_v, nominal.chemistry.ocv_charge_v)):  # fmt: skip
        error = identified.lookup(soc, 25.0) - truth.lookup(soc, 25.0)
        assert np.max(np.abs(error)) < 0.0045
    for level in result.levels:
        r0 = _true_parameter(nominal, "r0_ohm", level.soc, level.temp_c)
        assert level.r0_ohm == pytest.approx(r0, rel=0.10)


def test_toml_writer_round_trips():
    data = {"a": 1.5, "b": 'x"y', "t": {"soc_points": [0.0, 1.0], "values": [[1.0, 2.0]]}}
    assert tomllib.loads(to_toml(data)) == data


# --- estimation ----------------------------------------------------------------------------
def test_estimate_recovers_from_a_20_point_initial_error(nmc_bench, nmc_identified):
    """The power-up start is taken from the first voltage; the test biases it 20 points low."""
    trace = nmc_bench["drive"]
    truth0 = float(trace["true_soc_pct"].iloc[0])
    estimate = replay_trace(nmc_identified.cell, trace, initial_soc_pct=truth0 - 20.0)
    assert estimate["soc_pct"].iloc[0] == pytest.approx(truth0 - 20.0)
    t, error = _errors(estimate, trace)
    assert np.sqrt(np.mean(error**2)) <= 1.0
    assert _back_within(t, error, 2.0) <= 600.0
    assert np.abs(error[t > 600.0]).max() <= 2.0
    assert len(estimate) == len(trace)
    assert estimate["soc_sigma_pct"].iloc[-1] < estimate["soc_sigma_pct"].iloc[0]


def test_estimate_recovers_when_started_under_load(nmc_bench, nmc_identified):
    """Started mid-trip with an estimate 20 points high."""
    trace = nmc_bench["drive"]
    moving = trace[(trace["time_s"] > 3000.0) & (trace["current_a"].abs() > 1.0)]
    tail = trace.loc[moving.index[0] :].reset_index(drop=True)
    truth0 = float(tail["true_soc_pct"].iloc[0])
    estimate = replay_trace(nmc_identified.cell, tail, initial_soc_pct=truth0 + 20.0)
    t, error = _errors(estimate, tail)
    assert np.sqrt(np.mean(error**2)) <= 1.0
    assert _back_within(t, error, 2.0) <= 600.0


def test_full_charge_and_rest_correction_are_flagged():
    """A CV charge at the BMS's limit (4.15 V, below the OCV at 100 %, 4.19 V) ends short
    of 100 %: the BMS reads how far from the taper."""
    cell = load_cell(NMC_CELL)
    bench = cell_bench.CellBench(cell, soc_pct=85.0, seed=1)
    bench.charge_cc_cv(2.5, cell.effective_limits.cell_voltage_v.upper.mol, 0.1)
    bench.rest(2000.0, 10.0)
    trace = bench.frame()
    estimate = replay_trace(cell, trace)
    assert estimate["full_charge"].sum() == 1
    full_row = int(np.flatnonzero(estimate["full_charge"])[0])
    truth = float(trace["true_soc_pct"].iloc[full_row])
    assert truth < 99.0
    assert estimate["soc_pct"].iloc[full_row] == pytest.approx(truth, abs=0.5)
    assert estimate["rest_correction"].sum() == 1


# --- trace checks and the command line ----------------------------------------------------------
def _write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_cli_identify_then_estimate_round_trip(nmc_bench, tmp_path: Path):
    pulse = _write(nmc_bench["pulse"], tmp_path / "pulse.csv")
    slow = _write(nmc_bench["slow"], tmp_path / "slow.csv")
    drive = nmc_bench["drive"].iloc[:1800]
    trace = _write(drive[["time_s", "current_a", "voltage_v", "temp_c"]], tmp_path / "trace.csv")
    cell = tmp_path / "my-cell.toml"
    result = runner.invoke(
        app,
        ["identify", "--pulse", str(pulse), "--ocv", str(slow), "--capacity-ah", "5",
         "--out", str(cell), "--chemistry", "NMC"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert load_cell(str(cell)).name == "my-cell"
    out = tmp_path / "soc.csv"
    result = runner.invoke(
        app, ["estimate", "--cell", str(cell), "--trace", str(trace), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    soc = pd.read_csv(out)
    assert {"time_s", "soc_pct"} <= set(soc.columns)
    assert len(soc) == len(drive)
    assert np.allclose(soc["time_s"], drive["time_s"])
    assert np.abs(soc["soc_pct"] - drive["true_soc_pct"].to_numpy()).max() < 3.0


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda f: f.drop(columns=["voltage_v"]), "missing column(s) voltage_v"),
        (lambda f: f.assign(current_a=f["current_a"].astype(object).where(f.index != 3, "x")),
         "current_a must hold finite numbers"),
        (lambda f: f.assign(time_s=f["time_s"].where(f.index != 5, 0.0)),
         "time_s must strictly increase"),
    ],
)  # fmt: skip
def test_bad_trace_csv_is_a_clear_error(tmp_path: Path, mutate, message):
    frame = pd.DataFrame(
        {
            "time_s": np.arange(10.0),
            "current_a": np.zeros(10),
            "voltage_v": np.full(10, 3.7),
            "temp_c": np.full(10, 25.0),
        }
    )
    bad = _write(mutate(frame), tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_trace(bad)
    result = runner.invoke(
        app, ["estimate", "--cell", NMC_CELL, "--trace", str(bad), "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    good = _write(frame, tmp_path / "good.csv")
    result = runner.invoke(
        app,
        ["identify", "--pulse", str(bad), "--ocv", str(good), "--capacity-ah", "5",
         "--out", str(tmp_path / "c.toml")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "bad.csv" in " ".join(result.output.split())


def test_missing_trace_file_and_unusable_data_are_clear_errors(tmp_path: Path):
    result = runner.invoke(
        app,
        ["estimate", "--cell", NMC_CELL, "--trace", str(tmp_path / "nope.csv"),
         "--out", str(tmp_path / "o.csv")],
    )  # fmt: skip
    assert result.exit_code == 2 and "not found" in result.output
    flat = pd.DataFrame(
        {"time_s": [0.0, 1.0, 2.0], "current_a": 0.0, "voltage_v": 3.7, "temp_c": 25.0}
    )
    with pytest.raises(ConfigError, match="no discharge"):
        identify(flat, flat, 5.0)
    with pytest.raises(ConfigError, match="at least 2 rows"):
        check_trace(flat.iloc[:1], "one row")


def test_parquet_traces_are_read_and_a_damaged_file_is_a_clear_error(tmp_path: Path):
    frame = pd.DataFrame(
        {"time_s": [0.0, 1.0, 2.0], "current_a": 0.0, "voltage_v": 3.7, "temp_c": 25.0}
    )
    good = tmp_path / "good.parquet"
    frame.to_parquet(good)
    assert read_trace(good)["voltage_v"].tolist() == [3.7, 3.7, 3.7]
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 this is not a parquet file")
    with pytest.raises(ConfigError, match=r"damaged\.parquet is not a readable Parquet file"):
        read_trace(damaged)


def test_cli_identify_wants_one_slow_test_per_pulse_test(nmc_bench, tmp_path: Path):
    pulse = _write(nmc_bench["pulse"], tmp_path / "pulse.csv")
    slow = _write(nmc_bench["slow"], tmp_path / "slow.csv")
    result = runner.invoke(
        app,
        ["identify", "--pulse", str(pulse), "--pulse", str(pulse), "--ocv", str(slow),
         "--capacity-ah", "5", "--out", str(tmp_path / "c.toml")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "come in pairs" in " ".join(result.output.split())
