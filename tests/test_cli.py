"""The command line: scenario listing, simulation outputs and clear errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from cellwarden.cli import app

runner = CliRunner()


def test_scenarios_json_lists_required_fields():
    result = runner.invoke(app, ["scenarios", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.output)
    assert len(rows) >= 8
    for row in rows:
        assert {"name", "architecture", "cells", "sector"} <= row.keys()
        assert row["architecture"] in {"standalone", "master-slave", "multi-master"}
        assert row["cells"] > 0


def test_simulate_writes_outputs_and_json_summary(tmp_path: Path):
    out = tmp_path / "run"
    result = runner.invoke(
        app, ["simulate", "escooter-13s-urban", "--duration", "120", "--out", str(out), "--json"]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["simulated_s"] == 120.0 and summary["cells"] == 52
    for key in (
        "wall_s",
        "cell_voltage_min_v",
        "cell_voltage_max_v",
        "cell_temp_min_c",
        "cell_temp_max_c",
        "charge_in_ah",
        "charge_out_ah",
        "energy_in_wh",
        "energy_out_wh",
        "events",
    ):
        assert key in summary
    assert summary["cell_voltage_min_v"] <= summary["cell_voltage_max_v"]
    frame = pd.read_parquet(out / "timeseries.parquet")
    assert len(frame) == 121 and frame["time_s"].iloc[-1] == 120.0
    assert (out / "overview.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "cells.parquet").exists()
    events = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert events and all({"time_s", "code", "message"} <= e.keys() for e in events)


def test_simulate_accepts_a_toml_file(tmp_path: Path):
    scenario = tmp_path / "mine.toml"
    scenario.write_text(
        """
name = "mine"
sector = "e-bike"
duration_s = 60
[system]
architecture = "standalone"
[[system.strings]]
pack = { cell = "nmc-21700-5ah", series = 10, parallel = 3 }
power_path = { kind = "mosfet", max_current_a = 40 }
[profile]
kind = "ebike"
"""
    )
    result = runner.invoke(app, ["simulate", str(scenario), "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["scenario"] == "mine"


def test_bad_config_gives_a_clear_error_and_exit_code(tmp_path: Path):
    scenario = tmp_path / "bad.toml"
    scenario.write_text(
        """
name = "bad"
sector = "e-scooter"
duration_s = 60
[system]
architecture = "standalone"
[[system.strings]]
pack = { cell = "nmc-21700-5ah", series = 20 }
[profile]
kind = "escooter_urban"
"""
    )
    result = subprocess.run(
        [sys.executable, "-m", "cellwarden.cli", "simulate", str(scenario)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "series = 20" in result.stderr and "6..16" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_scenario_lists_the_builtin_ones():
    result = subprocess.run(
        [sys.executable, "-m", "cellwarden.cli", "simulate", "no-such-thing"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 2
    assert "unknown scenario" in result.stderr and "escooter-13s-urban" in result.stderr


def test_help_reads_well():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "simulate" in result.output and "scenarios" in result.output
