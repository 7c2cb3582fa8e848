"""Multi-master systems in the closed loop: the system bus on the wire, failover of one string
of four, the campaign's multi-master tests, and a pilot grown by configuration alone."""

from __future__ import annotations

import difflib
from importlib import resources
from pathlib import Path

import can
import cantools
import numpy as np
import pytest

from cellwarden.bms.system_master import SHARE_MARGIN
from cellwarden.comms.dbc import dbc_path
from cellwarden.model.scenario import Scenario
from cellwarden.plant import kernel as k
from cellwarden.simulation import campaign, campaign_multi_master
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.runner import RunResult, Simulation

SCENARIOS = resources.files("cellwarden.simulation") / "scenarios"


def _telecom(**changes) -> Scenario:
    """The telecom site with ``changes`` to its dumped dict (faults cleared)."""
    data = load_builtin("telecom-backup").model_dump(mode="json")
    data["faults"] = []
    for key, value in changes.items():
        data[key] = value
    return Scenario.model_validate(data)


@pytest.fixture(scope="module")
def logged_run(tmp_path_factory) -> tuple[RunResult, list[can.Message]]:
    path = tmp_path_factory.mktemp("mm") / "telecom.log"
    result = Simulation(_telecom(), duration_s=20.0, can_log=path).run()
    return result, list(can.LogReader(str(path)))


def test_string_reports_decode_from_the_dbc_and_match_the_plant(logged_run):
    result, messages = logged_run
    assert {"system", "inverter"} <= {m.channel for m in messages}
    database = cantools.database.load_file(dbc_path("system"))
    system = [m for m in messages if m.channel == "system"]
    last: dict[str, dict] = {}
    for message in system:
        frame = database.get_message_by_frame_id(message.arbitration_id)
        last[frame.name] = frame.decode(bytes(message.data))
    plant = result.plant
    for index in range(3):
        tag = f"S{index + 1:02d}"
        status, measure = last[f"StringStatus_{tag}"], last[f"StringMeasure_{tag}"]
        assert status[f"SS{tag}_Connected"] == 1
        # the string master's own measurements against the plant's truth
        assert status[f"SS{tag}_PackVoltage"] == pytest.approx(
            plant.string_voltage_v[index], abs=0.3
        )
        assert measure[f"SM{tag}_Current"] == pytest.approx(plant.string_current_a[index], abs=1.0)
        command = last[f"SystemCommand_{tag}"]
        assert command[f"SY{tag}_Connect"] == 1


def test_inverter_limits_are_sent_every_second_and_never_zero_volts(logged_run):
    _, messages = logged_run
    limits = [m for m in messages if m.channel == "inverter" and m.arbitration_id == 0x351]
    times = np.array([m.timestamp for m in limits])
    assert len(limits) >= 15 and np.allclose(np.diff(times), 1.0, atol=1e-6)
    charge_v = [int.from_bytes(bytes(m.data[0:2]), "little") / 10.0 for m in limits]
    assert min(charge_v) > 50.0  # a 16S LFP string: never a charge voltage limit of 0


def test_failover_one_of_four_strings():
    """After one string of four fails, no cell of the other three leaves its operating limits
    and the system keeps delivering within its new limits (judged on plant truth)."""
    data = load_builtin("telecom-backup").model_dump(mode="json")
    data["system"]["strings"][0]["count"] = 4
    four = Scenario.model_validate(data)
    test = campaign_multi_master.MULTI_MASTER_TESTS[0]
    outcome = campaign.run_test(four, test)
    assert outcome.passed, outcome.detail
    assert "3 strings carry on" in outcome.detail


@pytest.mark.parametrize(
    "test",
    campaign_multi_master.MULTI_MASTER_TESTS[1:] + campaign_multi_master.INVERTER_TESTS,
    ids=lambda t: t.name,
)
def test_multi_master_campaign(test):
    outcome = campaign.run_test(load_builtin("telecom-backup"), test)
    assert outcome.passed, outcome.detail


def test_the_judge_fails_a_system_master_that_joins_anything():
    """The refused-join judge is not a rubber stamp: with a window wide enough to let the
    emptied string join, the same test fails on the plant's truth."""
    data = load_builtin("telecom-backup").model_dump(mode="json")
    data["system_master"] = {"connect_window_pct": 20.0}
    test = campaign_multi_master.MULTI_MASTER_TESTS[2]
    outcome = campaign.run_test(Scenario.model_validate(data), test)
    assert not outcome.passed
    assert "never conducted" not in outcome.detail and "conducted (" in outcome.detail


def test_pilot_grows_to_eight_racks_by_configuration_alone():
    pilot = (SCENARIOS / "ess-pilot-1rack.toml").read_text(encoding="utf-8").splitlines()
    grown = (SCENARIOS / "ess-pilot-8racks.toml").read_text(encoding="utf-8").splitlines()
    changed = [
        line[1:].split("=")[0].strip()
        for line in difflib.unified_diff(pilot, grown, lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]
    assert sorted(set(changed)) == ["count", "description", "name"]
    results = {}
    for name in ("ess-pilot-1rack", "ess-pilot-8racks"):
        result = Simulation(load_builtin(name), duration_s=30.0).run()
        state = result.controller.system_master.state
        results[name] = state
    small, large = results["ess-pilot-1rack"], results["ess-pilot-8racks"]
    assert small.strings_connected == 1 and large.strings_connected == 8
    # eight equal racks in parallel: eight times the current limits of one, less the margin
    # the system master keeps for uneven sharing (one rack alone carries it all, exactly)
    assert large.discharge_current_limit_a == pytest.approx(
        8 * SHARE_MARGIN * small.discharge_current_limit_a, rel=0.02
    )


def test_series_stack_runs_whole_and_stops_whole():
    """Two 16S strings stacked to 102 V: both connect together; when one loses its slave the
    whole stack leaves the bus (plant truth: the stacked branch stops conducting)."""
    data = load_builtin("telecom-backup").model_dump(mode="json")
    data["system"]["topology"] = "series"
    data["system"]["strings"][0]["count"] = 2
    data["charger"] = {"max_current_a": 60.0, "max_voltage_v": 108.8}
    data["faults"] = [{"kind": "slave_fault", "string": 1, "slave": 0, "at_s": 60.0}]
    result = Simulation(Scenario.model_validate(data), duration_s=90.0).run()
    plant = result.plant
    assert plant.layout.branch_count == 1
    messages = " | ".join(e.message for e in result.events.events if e.source == "system-master")
    assert "the series stack connects" in messages
    assert "the series stack leaves the bus: a string is not healthy" in messages
    assert plant.bs[k.B_CONDUCTING, 0] < 0.5
    assert not any(p.command.positive for p in plant.power_paths)
    assert plant.bs[k.B_CHARGED_AS, 0] > 0.0  # it did carry the float charge before


def test_a_high_voltage_system_cannot_use_the_inverter_bus(tmp_path: Path):
    data = load_builtin("ess-commercial-4rack").model_dump(mode="json")
    data["buses"] = {"inverter": True}
    with pytest.raises(ValueError, match=r"above the 327\.67 V the inverter CAN"):
        Scenario.model_validate(data)
