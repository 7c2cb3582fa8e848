"""The architecture designer: DESIGN.md's table, errors naming the broken limit, and scenario
files that load (and, for single strings, simulate)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.design import SECTORS, Requirements, design_system, scenario_toml
from cellwarden.design.toml_text import TomlDocument, format_value
from cellwarden.model.scenario import load_scenario
from cellwarden.plant.profiles import PROFILES, resolve_parameters
from cellwarden.simulation.runner import Simulation

runner = CliRunner()


def design_json(*args: str) -> dict:
    result = runner.invoke(app, ["design", *args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def design_error(*args: str) -> str:
    result = runner.invoke(app, ["design", *args])
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.stderr
    return " ".join(result.stderr.split())


def modules(data: dict) -> dict[str, tuple[int, int | None]]:
    return {m["role"]: (m["count"], m.get("cells")) for m in data["modules"]}


# --- the decision table ------------------------------------------------------------------------


def test_13s_escooter_is_standalone_with_a_mosfet_path():
    data = design_json("--cells", "13", "--chemistry", "nmc", "--sector", "e-scooter")
    assert data["architecture"] == "standalone"
    assert data["power_path"] == "mosfet" and data["power_path_rating"]["max_current_a"] <= 250
    assert modules(data) == {"standalone board": (1, 13)}
    assert data["modules_summary"] == "1 standalone board with MOSFET path"
    assert data["cells_per_string"] == data["series"] == 13 and data["strings"] == 1
    assert data["cell"] == "nmc-21700-5ah" and data["parallel"] == 4
    assert data["nominal_voltage_v"] == pytest.approx(13 * 3.65)
    assert data["max_voltage_v"] == pytest.approx(13 * 4.15)
    assert data["cells_per_slave"] is None and data["slaves_per_string"] == 0
    assert 0.40 <= data["balancing_current_a"] <= 0.42
    assert data["balancing_strategy"] == "charge"  # NMC's OCV is steep enough
    assert data["config_file"] is None
    assert any("6S–16S" in reason for reason in data["reasons"])
    assert any("250 A" in reason for reason in data["reasons"])


def test_24s_utility_cart_is_master_slave_with_two_12s_slaves():
    data = design_json("--cells", "24", "--chemistry", "lfp", "--sector", "utility-cart")
    assert data["architecture"] == "master-slave"
    assert modules(data) == {"master": (1, None), "slave": (2, 12)}
    assert data["modules_summary"] == "1 master + 2 slaves of 12S"
    assert data["cells_per_slave"] == 12 and data["slave_cells"] == [12, 12]
    assert data["power_path"] == "contactors"
    assert any("above the standalone board's 16S" in reason for reason in data["reasons"])
    assert data["balancing_strategy"] == "voltage"  # LFP's flat plateau


def test_four_parallel_400v_ess_racks_are_multi_master():
    data = design_json(
        "--voltage-v", "400", "--chemistry", "lfp", "--strings", "4",
        "--topology", "parallel", "--sector", "ess",
    )  # fmt: skip
    assert data["architecture"] == "multi-master" and data["topology"] == "parallel"
    assert data["series"] == 125 and data["strings"] == 4
    assert data["cells_per_slave"] == 18 and data["slaves_per_string"] == 7
    assert data["slave_cells"] == [18] * 6 + [17]
    assert modules(data) == {"system master": (1, None), "string master": (4, None),
                             "slave": (28, 18)}  # fmt: skip
    assert data["modules_summary"] == "1 system master + 4 string masters + 28 slaves of 18S"
    assert data["system_capacity_ah"] == 4 * data["capacity_ah"]
    # 450 V is beyond the inverter CAN's voltage field: the designer says so and leaves it off
    assert data["inverter_can"] is False and any("SunSpec" in note for note in data["notes"])


def test_288s_single_string_fills_sixteen_18s_slaves():
    data = design_json("--cells", "288", "--chemistry", "lfp", "--sector", "ess")
    assert data["architecture"] == "master-slave"
    assert modules(data) == {"master": (1, None), "slave": (16, 18)}
    assert data["max_voltage_v"] <= 1500


def test_telecom_48v_with_three_parallel_strings_is_multi_master():
    data = design_json("--voltage-v", "48", "--strings", "3", "--sector", "telecom")
    assert data["architecture"] == "multi-master" and data["topology"] == "parallel"
    assert data["chemistry"] == "LFP" and data["series"] == 15
    assert modules(data)["string master"] == (3, None)
    assert any("inverter CAN" in line for line in data["comms"])


def test_16s_300a_forklift_stays_standalone_with_external_contactors():
    data = design_json("--cells", "16", "--peak-current-a", "300", "--sector", "forklift")
    assert data["architecture"] == "standalone"
    assert data["power_path"] == "contactors"
    assert data["power_path_rating"]["max_current_a"] >= 300
    assert any("exceeds the integrated MOSFET path's 250 A" in r for r in data["reasons"])


@pytest.mark.parametrize(
    ("args", "architecture", "why"),
    [
        (["--cells", "18", "--chemistry", "nmc"], "standalone", "18S a standalone board accepts"),
        (["--cells", "20", "--chemistry", "lfp"], "master-slave", "above the standalone"),
        (["--cells", "5", "--chemistry", "lfp"], "master-slave", "below the standalone"),
    ],
)
def test_edges_of_the_standalone_range(args, architecture, why):
    data = design_json(*args, "--sector", "light-ev")
    assert data["architecture"] == architecture
    assert any(why in reason for reason in data["reasons"])


def test_slave_type_needs_fewer_slaves_and_spreads_cells_evenly():
    data = design_json("--cells", "25", "--sector", "forklift")
    assert data["cells_per_slave"] == 18 and data["slave_cells"] == [13, 12]
    data = design_json("--cells", "20", "--sector", "cargo-ev")
    assert data["cells_per_slave"] == 12 and data["slave_cells"] == [10, 10]


def test_capacity_and_peak_current_set_the_parallel_count():
    data = design_json("--cells", "13", "--capacity-ah", "15", "--sector", "e-scooter")
    assert data["cell"] == "nmc-21700-5ah" and data["parallel"] == 3
    data = design_json(
        "--cells", "16", "--capacity-ah", "100", "--peak-current-a", "300",
        "--chemistry", "lfp", "--sector", "golf-cart",
    )  # fmt: skip
    assert data["capacity_ah"] >= 200  # 300 A within LFP's 1.5 C operating limit
    assert any("capacity raised" in note for note in data["notes"])


def test_series_topology_within_1500v_is_multi_master():
    data = design_json(
        "--cells", "96", "--chemistry", "nmc", "--strings", "3", "--topology", "series",
        "--sector", "marine",
    )  # fmt: skip
    assert data["architecture"] == "multi-master" and data["topology"] == "series"
    assert data["system_max_voltage_v"] == pytest.approx(3 * 96 * 4.15)
    assert data["system_capacity_ah"] == data["capacity_ah"]


# --- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--cells", "400", "--sector", "ess"], ["400 cells in one string exceed the 288S "
                                                  "per-string limit", "--strings 2 or more"]),
        (["--voltage-v", "1800", "--chemistry", "lfp", "--sector", "ess"],
         ["per string", "exceeds the 1500 V limit", "288S per-string limit"]),
        (["--voltage-v", "800", "--chemistry", "lfp", "--strings", "3", "--topology", "series",
          "--sector", "ess"], ["series topology stacks 3 strings to 2700 V", "2400 V nominal",
                               "above the 1500 V limit"]),
        (["--cells", "13", "--voltage-v", "48", "--sector", "ess"],
         ["--cells and --voltage-v are mutually exclusive"]),
        (["--sector", "ess"], ["give --cells", "--voltage-v"]),
        (["--cells", "3", "--sector", "ess"], ["3 cells in one string", "5S minimum"]),
        (["--cells", "13", "--chemistry", "lead", "--sector", "ess"],
         ["unknown chemistry 'lead'", "lfp, lto, nmc"]),
        (["--cells", "13", "--sector", "submarine"], ["unknown sector 'submarine'", "e-scooter",
                                                      "marine"]),
        (["--cells", "13", "--strings", "2", "--topology", "ring", "--sector", "ess"],
         ["unknown topology 'ring'", "parallel, series, distributed"]),
        (["--cells", "13", "--cell", "nmc-21700-5ah", "--chemistry", "lfp", "--sector", "ess"],
         ["is an NMC cell, not LFP"]),
        (["--cells", "13", "--strings", "17", "--sector", "ess"],
         ["exceeds the 16 string masters"]),
        (["--cells", "13", "--capacity-ah", "-5", "--sector", "ess"],
         ["--capacity-ah", "positive"]),
    ],
)  # fmt: skip
def test_errors_name_the_broken_limit(args, expected):
    message = design_error(*args)
    assert message.startswith("error:")
    for part in expected:
        assert part in message, message


# --- scenario files ----------------------------------------------------------------------------


def test_every_sector_maps_to_a_profile_kind_with_valid_parameters():
    for sector in SECTORS.values():
        assert sector.profile_kind in PROFILES
        if sector.peak_parameter is not None:
            resolve_parameters(sector.profile_kind, {sector.peak_parameter: 300.0})


def test_written_files_load_and_single_strings_simulate(tmp_path: Path):
    cases = {
        "standalone": ["--cells", "13", "--chemistry", "nmc", "--sector", "e-scooter"],
        "contactors": ["--cells", "16", "--peak-current-a", "300", "--sector", "forklift"],
        "master-slave": ["--cells", "24", "--chemistry", "lfp", "--sector", "utility-cart"],
        "long-string": ["--cells", "288", "--chemistry", "lfp", "--sector", "ess"],
    }
    for label, args in cases.items():
        path = tmp_path / f"{label}.toml"
        data = design_json(*args, "--out", str(path))
        assert data["config_file"] == str(path)
        scenario = load_scenario(path)
        assert scenario.system.architecture.value == data["architecture"]
        string = scenario.system.strings[0]
        assert string.pack.series == data["series"] and string.slaves == data["slaves_per_string"]
        assert string.power_path.kind.value == data["power_path"]
        assert scenario.profile.kind == data["profile"]
        result = Simulation(scenario, duration_s=30).run()
        codes = [event["code"] for event in result.summary["events"]]
        assert set(codes) == {"PATH"}, (label, result.summary["events"])  # no fault, no DTC
        assert any("-> normal" in e["message"] for e in result.summary["events"]), label


def test_cli_simulates_a_designed_file(tmp_path: Path):
    path = tmp_path / "cart.toml"
    result = runner.invoke(
        app, ["design", "--cells", "24", "--sector", "utility-cart", "--out", str(path)]
    )
    assert result.exit_code == 0, result.output
    printed = result.stdout.replace("\n", "")  # the console wraps long paths
    assert "master-slave" in printed and str(path) in printed
    result = runner.invoke(
        app, ["simulate", str(path), "--duration", "30", "--out", str(tmp_path / "run"), "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["architecture"] == "master-slave"


@pytest.mark.parametrize(
    ("args", "inverter"),
    [
        (["--voltage-v", "400", "--chemistry", "lfp", "--strings", "4", "--sector", "ess"], False),
        (["--voltage-v", "96", "--chemistry", "lfp", "--strings", "4", "--sector", "ess"], True),
        (["--voltage-v", "48", "--strings", "3", "--sector", "telecom"], True),
        (["--cells", "96", "--strings", "3", "--topology", "distributed", "--sector", "marine"],
         False),
        (["--cells", "96", "--strings", "3", "--topology", "series", "--sector", "marine"], False),
    ],
)  # fmt: skip
def test_multi_master_files_validate_and_run(tmp_path: Path, args, inverter):
    path = tmp_path / "system.toml"
    data = design_json(*args, "--out", str(path))
    scenario = load_scenario(path)
    system = scenario.system
    assert system.architecture.value == "multi-master"
    assert system.topology.value == data["topology"]
    assert system.string_count == data["strings"]
    assert all(s.cells_per_slave == data["cells_per_slave"] for s in system.expanded_strings())
    assert scenario.buses.inverter is inverter
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert "system_master" in raw and "connect_window_pct" in raw["system_master"]
    assert scenario.timing.main_period_s == 1.0
    # and it runs: the system master puts every string on the bus
    result = Simulation(scenario, duration_s=20.0).run()
    assert result.controller.system_master.state.strings_connected == data["strings"]


def test_large_systems_get_coarser_timing():
    small = design_system(Requirements(cells=13, sector="e-scooter"))
    large = design_system(Requirements(cells=126, sector="ess"))
    assert tomllib.loads(scenario_toml(small))["timing"]["plant_step_s"] == 0.01
    assert tomllib.loads(scenario_toml(large))["timing"] == {
        "plant_step_s": 0.1, "protection_period_s": 0.1, "main_period_s": 1.0,
    }  # fmt: skip


def test_precharge_is_sized_for_half_a_second_to_three():
    for sector in SECTORS:
        design = design_system(Requirements(cells=24, sector=sector))
        assert 0.5 <= design.power_path.precharge_time_s <= 3.0


def test_human_output_suggests_a_file_name():
    result = runner.invoke(app, ["design", "--cells", "13", "--sector", "e-bike"])
    assert result.exit_code == 0, result.output
    assert "standalone" in result.stdout and "--out design-standalone.toml" in result.stdout


# --- the TOML writer ---------------------------------------------------------------------------


def test_toml_writer_round_trips_values_and_escapes():
    doc = TomlDocument()
    doc.comment("a comment that is long enough to wrap " * 5)
    doc.value("text", 'quote " backslash \\ tab \t newline \n bell \x07 Ω')
    doc.value("flag", True)
    doc.value("count", 3)
    doc.value("ratio", 0.1 + 0.2)
    doc.value("tiny", 2e-7)
    doc.value("big", 1e300)
    doc.value("whole", 250.0)
    doc.value("odd key", [1, 2.5, "x"], "inline array")
    doc.table("outer.inner")
    doc.value("inline", {"cell": "nmc", "n": 4, "nested": {"a": [1.0]}})
    doc.array_table("items")
    doc.value("name", "first")
    doc.array_table("items")
    doc.value("name", "second")
    text = doc.text()
    assert all(len(line) <= 100 for line in text.splitlines())
    data = tomllib.loads(text)
    assert data["text"] == 'quote " backslash \\ tab \t newline \n bell \x07 Ω'
    assert data["flag"] is True and data["count"] == 3
    assert data["ratio"] == 0.1 + 0.2 and data["tiny"] == 2e-7 and data["big"] == 1e300
    assert isinstance(data["whole"], float)
    assert data["odd key"] == [1, 2.5, "x"]
    assert data["outer"]["inner"]["inline"] == {"cell": "nmc", "n": 4, "nested": {"a": [1.0]}}
    assert [item["name"] for item in data["items"]] == ["first", "second"]
    with pytest.raises(TypeError):
        format_value(object())  # type: ignore[arg-type]
