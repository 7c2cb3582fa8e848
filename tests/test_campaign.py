"""Every protection of the standalone BMS, proven by injecting its fault in simulation and
judging the plant's ground truth (the campaign's own tests, run on the e-scooter pack)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.simulation import campaign
from cellwarden.simulation.catalogue import load_builtin

SCENARIO = load_builtin("escooter-13s-urban")


@pytest.mark.parametrize("test", campaign.STANDALONE_TESTS, ids=lambda t: t.name)
def test_protection_against_ground_truth(test: campaign.CampaignTest):
    outcome = campaign.run_test(SCENARIO, test)
    assert outcome.passed, outcome.detail


MASTER_SLAVE = load_builtin("utility-cart-24s")
ON_CONTACTORS = ("overcharge", "charge over-current", "external short", "stuck current")


@pytest.mark.parametrize(
    "test",
    campaign.MASTER_SLAVE_TESTS
    + tuple(t for t in campaign.STANDALONE_TESTS if t.name.startswith(ON_CONTACTORS)),
    ids=lambda t: t.name,
)
def test_master_slave_protection_against_ground_truth(test: campaign.CampaignTest):
    """The master-slave additions, and the standalone tests whose outcome changes with
    contactors instead of MOSFETs, on a master with two slaves over the internal CAN bus."""
    assert test in campaign.tests_for(MASTER_SLAVE)
    outcome = campaign.run_test(MASTER_SLAVE, test)
    assert outcome.passed, outcome.detail


def test_judges_fail_when_the_protection_is_missing():
    """The judge is not a rubber stamp: with the BMS replaced by the open-loop stand-in, the
    overcharge test must fail (cells pass their safety limit, no event is logged)."""
    test = campaign.STANDALONE_TESTS[0]
    data = SCENARIO.model_dump(mode="json")
    test.prepare(SCENARIO, data)
    data.update(duration_s=1200.0, controller="open-loop", timing=campaign.FIRMWARE_TIMING)
    prepared = campaign.Scenario.model_validate(data)
    result = campaign.Simulation(prepared).run()
    ok, _ = campaign._msl_ok(result, campaign.VOLTAGE_REACTION_S)
    assert not ok


def test_cli_reports_json_and_exits_non_zero_on_failure(monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["campaign", SCENARIO.name, "--test", "external short", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["passed"] is True
    assert [r["test"] for r in report["results"]] == ["external short circuit"]
    assert {"scenario", "test", "passed", "detail"} <= report["results"][0].keys()

    failing = campaign.CampaignTest(
        "always fails", "none", lambda scenario, data: None, 1.0,
        lambda result, scenario: campaign.Verdict(False, "forced failure"),
    )  # fmt: skip
    monkeypatch.setattr(campaign, "tests_for", lambda scenario: (failing,))
    result = runner.invoke(app, ["campaign", SCENARIO.name, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.output)["passed"] is False


def test_campaign_in_processes_gives_the_same_results_in_the_same_order():
    """Each test is its own seeded simulation: two processes change only how soon."""
    chosen = [SCENARIO, MASTER_SLAVE]
    only = ["external short", "welded", "open NTC"]
    alone = campaign.run_campaign(chosen, only, jobs=1)
    heard: list[str] = []
    pooled = campaign.run_campaign(chosen, only, lambda r: heard.append(r.test), jobs=2)
    assert [r.as_dict() for r in pooled] == [r.as_dict() for r in alone]
    assert heard == [r.test for r in alone] and len(alone) == 5
