"""Passport documents: valid against the consortium's published schemas for every built-in
scenario, each role sees exactly the attributes the access-level list opens to it, and every
broken rule is named."""

from __future__ import annotations

import codecs
import copy
import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from jsonschema import Draft4Validator
from typer.testing import CliRunner

from cellwarden.cli import app
from cellwarden.cloud.store.schema_v4 import COUNTER_COLUMNS
from cellwarden.model.errors import ConfigError
from cellwarden.passport.access_levels import Role
from cellwarden.passport.batterypass_files import SECTIONS, data_dir
from cellwarden.passport.builder import Identity, build_passport
from cellwarden.passport.condition import Ratings, battery_condition
from cellwarden.passport.condition_update import apply_condition
from cellwarden.passport.identifier import passport_urn, qr_code_svg
from cellwarden.passport.manufacturer_file import Label, load_manufacturer_file
from cellwarden.passport.passport_fields import document_attributes, leaves, project
from cellwarden.passport.rated_values import rated_values
from cellwarden.passport.validation import validate_document
from cellwarden.simulation.catalogue import builtin_scenarios, load_builtin

# Art. 77(2) as the list words it, written out here independently of access_levels.py
RIGHTS = {
    Role.PUBLIC: {"Public"},
    Role.LEGITIMATE_INTEREST: {
        "Public",
        "persons with a legitimate interest",
        "persons with a legitimate interest and the Commission",
    },
    Role.AUTHORITY: {
        "Public",
        "persons with a legitimate interest and the Commission",
        "Notified bodies, market surveillance authorities and the Commission",
    },
}


def _raw_schema(section_path: str) -> dict:
    raw = (data_dir() / "BatteryPass" / section_path).read_bytes()
    text = raw.decode("utf-16") if raw.startswith(codecs.BOM_UTF16_LE) else raw.decode("utf-8")
    return json.loads(text)


def _csv_rights() -> dict[int, str]:
    with (data_dir() / "access_levels_v1.2.csv").open(encoding="utf-8") as handle:
        return {int(row["#"]): row["access_rights"] for row in csv.DictReader(handle)}


def _passport(name: str = "escooter-13s-urban", maker=None) -> dict:
    scenario = load_builtin(name)
    serial = scenario.system.serial_number
    maker = maker or load_manufacturer_file()
    return build_passport(Identity(passport_urn(serial), serial, scenario.sector), maker,
                          rated_values(scenario.system))  # fmt: skip


def _complete_passport() -> dict:
    """A passport with a value for every attribute the schemas have: a day of history with
    negative events of three kinds and the cadmium/lead label included."""
    maker = load_manufacturer_file()
    labels = [*maker.conformity.labels, Label(
        subject="HazardousMaterial", symbol_url="https://example.com/cd-pb.svg",
        meaning="Contains cadmium or lead above the Annex VI thresholds")]  # fmt: skip
    maker = maker.model_copy(update={"conformity": maker.conformity.model_copy(
        update={"labels": labels})})  # fmt: skip
    document = _passport(maker=maker)
    day = pd.Timestamp("2026-05-31")
    daily = pd.DataFrame({"date": [day], "soh_capacity_pct": [97.0], "soh_resistance_pct": [95.0],
                          "efc_total": [40.0], "throughput_ah": [800.0]})  # fmt: skip
    trip_s = (day + pd.Timedelta(hours=12)).timestamp()
    events = pd.DataFrame({"code": ["B1112", "B1102", "B1322"], "time_s": [trip_s] * 3,
                           "kind": ["trip"] * 3})  # fmt: skip
    counters = pd.DataFrame({"date": [day], **{name: [0.0] for name in COUNTER_COLUMNS}})
    condition = battery_condition(daily, counters, events, Ratings.from_document(document),
                                  datetime(2026, 6, 1, tzinfo=UTC))  # fmt: skip
    return apply_condition(document, condition)


@pytest.mark.parametrize("scenario", [s.name for s in builtin_scenarios()])
def test_every_builtin_scenario_passport_validates_against_the_shared_schemas(scenario):
    document = _passport(scenario)
    for section in SECTIONS:
        errors = list(Draft4Validator(_raw_schema(section.schema_path)).iter_errors(
            document[section.key]))  # fmt: skip
        assert errors == [], (section.key, [e.message for e in errors])
    assert validate_document(document) == []


def test_each_role_sees_exactly_the_attributes_the_list_opens_to_it():
    document = _complete_passport()
    rights = _csv_rights()
    carried = document_attributes(document)
    assert carried == set(rights) - {26}  # 26 has no field of its own in the 1.2 schemas
    for role, allowed in RIGHTS.items():
        expected = {n for n, right in rights.items() if right in allowed} - {26}
        view = project(document, role)
        assert document_attributes(view) == expected, role
        for path, attribute, _ in leaves(view):  # field by field: nothing else leaks
            assert rights[attribute] in allowed, (role, path)
    assert project(document, Role.MANUFACTURER) == document
    shown = {path for path, _, _ in leaves(project(document, Role.LEGITIMATE_INTEREST))}
    assert ("generalProductInformation", "puttingIntoService") in shown
    public = project(document, Role.PUBLIC)
    assert "batteryCondition" not in public["performance"]  # all of it is for legitimate interest
    assert "puttingIntoService" not in public["generalProductInformation"]
    critical = [
        m["isCriticalRawMaterial"] for m in public["materialComposition"]["batteryMaterials"]
    ]
    assert critical and all(critical)  # the public sees the critical raw materials only


def test_negative_events_go_to_their_own_attributes():
    view = project(_complete_passport(), Role.LEGITIMATE_INTEREST)
    events = [e["negativeEvent"] for e in view["performance"]["batteryCondition"]["negativeEvents"]]
    assert sorted(e.split(":")[0] for e in events) == [
        "deep discharge", "latched safety event", "over-temperature", "overcharge"]  # fmt: skip
    assert "deep discharge: 1 event, first on 2026-05-31, last on 2026-05-31" in events
    assert "negativeEvents" not in project(_complete_passport(), Role.AUTHORITY)["performance"].get(
        "batteryCondition", {})  # fmt: skip


def _problems(document: dict) -> set[str]:
    return {f"{p.section}.{p.path}" if p.path else p.section for p in validate_document(document)}


MUTATIONS = [
    ("section missing", lambda d: d.pop("labels"), "labels", "section missing"),
    ("enum", lambda d: d["generalProductInformation"].update(batteryCategory="car"),
     "generalProductInformation.batteryCategory", "is not one of"),
    ("urn", lambda d: d["generalProductInformation"].update(
        batteryPassportIdentifier="urn:CW:ESC-1"),
     "generalProductInformation.batteryPassportIdentifier", "does not match"),
    ("upstream e-mail pattern", lambda d: d["generalProductInformation"][
        "manufacturerInformation"].update(emailAddress="info@example.com"),
     "generalProductInformation.manufacturerInformation.emailAddress", "backslashes"),
    ("type", lambda d: d["performance"]["batteryTechicalProperties"].update(ratedCapacity="20"),
     "performance.batteryTechicalProperties.ratedCapacity", "is not of type 'number'"),
    ("date-time", lambda d: d["generalProductInformation"].update(
        manufacturingDate="2026-13-01T00:00:00Z"),
     "generalProductInformation.manufacturingDate", "is not a 'date-time'"),
    ("future", lambda d: d["performance"]["batteryCondition"]["stateOfCharge"].update(
        lastUpdate="2099-01-01T00:00:00Z"),
     "performance.batteryCondition.stateOfCharge.lastUpdate", "in the future"),
    ("voltages", lambda d: d["performance"]["batteryTechicalProperties"].update(
        minimumVoltage=99.0), "performance.batteryTechicalProperties", "not in order"),
    ("shares", lambda d: d["circularity"]["recycledContent"][0].update(preConsumerShare=99.0),
     "circularity.recycledContent.0", "add up to"),
    ("CAS", lambda d: d["materialComposition"]["batteryMaterials"][0].update(
        batteryMaterialIdentifier="7782-42-6"),
     "materialComposition.batteryMaterials.0.batteryMaterialIdentifier", "check digit"),
    ("stages", lambda d: d["carbonFootprint"].update(batteryCarbonFootprint=1.0),
     "carbonFootprint.carbonFootprintPerLifecycleStage", "add up to"),
    ("unclaimed", lambda d: d["labels"].update(myOwnField=1), "labels.myOwnField",
     "claims this field"),
    ("service before manufacture", lambda d: d["generalProductInformation"].update(
        puttingIntoService="2020-01-01T00:00:00Z"),
     "generalProductInformation.puttingIntoService", "before the manufacturing date"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "mutate", "where", "says"), MUTATIONS,
                         ids=[m[0] for m in MUTATIONS])  # fmt: skip
def test_each_broken_rule_is_named(name, mutate, where, says):
    document = copy.deepcopy(_passport())
    mutate(document)
    problems = validate_document(document)
    named = [p for p in problems if (f"{p.section}.{p.path}" if p.path else p.section) == where]
    assert named, (name, [str(p) for p in problems])
    assert says in named[0].message
    assert {str(p).split(":")[0] for p in problems} == {where}  # nothing else is blamed


def test_upstream_sample_payload_fails_its_own_cas_pattern():
    # SOURCE.md: the MaterialComposition sample payload breaks its own CAS pattern
    sample = _raw_schema("io.BatteryPass.MaterialComposition/1.2.0/gen/"
                         "MaterialComposition-payload.json")  # fmt: skip
    document = copy.deepcopy(_passport())
    document["materialComposition"] = sample
    assert any("does not match" in p.message and p.section == "materialComposition"
               for p in validate_document(document))  # fmt: skip


def test_identifier_and_qr_code():
    assert passport_urn("CW-ESC-0001") == "urn:cellwarden:cwesc0001"
    assert passport_urn("Rack 7/B", "ACME") == "urn:acme:rack7b"
    with pytest.raises(ValueError, match="no letters or digits"):
        passport_urn("--")
    svg = qr_code_svg("http://127.0.0.1:8080/passport/urn:cellwarden:cwesc0001")
    assert svg.startswith("<svg") and "<path" in svg


def test_a_wrong_manufacturer_file_is_named(tmp_path):
    path = tmp_path / "maker.toml"
    path.write_text('model = "x"\nmanufacturing_date = 2026-01-01\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="manufacturer"):
        load_manufacturer_file(path)


def test_cli_export_validate_and_roles(tmp_path):
    runner = CliRunner()
    out = tmp_path / "passport.json"
    result = runner.invoke(app, ["passport", "export", "ess-pilot-1rack", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert runner.invoke(app, ["passport", "validate", str(out)]).exit_code == 0
    document = json.loads(out.read_text())
    document["performance"]["batteryTechicalProperties"]["nominalVoltage"] = "400 V"
    out.write_text(json.dumps(document))
    bad = runner.invoke(app, ["passport", "validate", str(out)])
    assert bad.exit_code == 1
    assert "performance.batteryTechicalProperties.nominalVoltage" in bad.output
    (tmp_path / "junk.json").write_bytes(b"\xff\x00not json")
    assert runner.invoke(app, ["passport", "validate", str(tmp_path / "junk.json")]).exit_code == 2
    wrong = runner.invoke(app, ["passport", "show", "ess-pilot-1rack", "--role", "police"])
    assert wrong.exit_code == 2 and "legitimate-interest" in wrong.output
    page = tmp_path / "public.html"
    result = runner.invoke(app, ["passport", "export", "ebike-10s", "--role", "public",
                                 "--format", "html", "--out", str(page)])  # fmt: skip
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert "urn:cellwarden:" in text and "<svg" in text
    assert "puttingIntoService" not in text and "Remaining capacity" not in text
    assert "Rated capacity" in text


def test_json_ld_export_names_the_samm_properties():
    from cellwarden.passport.passport_export import from_json_ld, to_json_ld

    document = _passport()
    linked = to_json_ld(document)
    assert linked["@id"] == document["generalProductInformation"]["batteryPassportIdentifier"]
    vocab = linked["performance"]["@context"]["@vocab"]
    schema = _raw_schema(SECTIONS[5].schema_path)
    urn = schema["properties"]["batteryTechicalProperties"]["x-samm-aspect-model-urn"]
    assert urn == vocab + "batteryTechicalProperties"
    assert from_json_ld(linked) == document


def test_missing_data_model_is_named(monkeypatch, tmp_path):
    from cellwarden.passport import batterypass_files

    monkeypatch.setenv(batterypass_files.ENV_DIR, str(tmp_path))
    with pytest.raises(batterypass_files.PassportDataError, match="CELLWARDEN_BATTERYPASS_DIR"):
        batterypass_files.data_dir()


def test_data_dir_is_found():
    assert (Path(data_dir()) / "BatteryPass").is_dir()
