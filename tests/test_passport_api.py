"""The passport over the cloud's API, over real HTTP: every route gives each role exactly the
attributes the access-level list opens to it, the status and change log only to those who may
see them, and a second life starts a successor passport."""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
import pytest
from tests.http_server import served
from tests.test_passport_model import RIGHTS, _complete_passport, _csv_rights

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.passport_lifecycle import register_passport
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.registry import Role
from cellwarden.passport.access_levels import Role as PassportRole
from cellwarden.passport.manufacturer_file import load_manufacturer_file
from cellwarden.passport.passport_export import from_json_ld
from cellwarden.passport.passport_fields import document_attributes
from cellwarden.simulation.catalogue import load_builtin

DEVICE = "pk-1"


@dataclass
class World:
    url: str
    store: CloudStore
    urn: str
    tokens: dict[str, str]
    fleet_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    store = open_store(f"sqlite:///{tmp_path_factory.mktemp('passport') / 'cloud.db'}")
    registry = store.registry
    maker_org, shop_org = registry.add_org("maker"), registry.add_org("shop")
    fleet_id = registry.add_fleet(maker_org, "scooters")
    pack_id = registry.add_pack(DEVICE, "scooters")
    tokens = {
        "admin": registry.add_user("admin", maker_org, Role.ADMIN),
        "viewer": registry.add_user("viewer", maker_org, Role.VIEWER),
        "repairer": registry.add_user("repairer", shop_org, Role.ADMIN),
        "inspector": registry.add_user("inspector", shop_org, Role.VIEWER),
        "stranger": registry.add_user("stranger", shop_org, Role.VIEWER),
    }
    for name, role in (("repairer", "legitimate-interest"), ("inspector", "authority")):
        user_id = store.db.query("SELECT id FROM users WHERE name = ?", (name,))[0][0]
        store.passports.grant_role(user_id, role, "test")
    document = _complete_passport()
    urn = document["generalProductInformation"]["batteryPassportIdentifier"]
    store.passports.create(urn, document, "test", pack_id=pack_id)
    try:
        with served(create_app(store)) as url:
            yield World(url, store, urn, tokens, fleet_id)
    finally:
        store.close()


CALLERS = {  # who asks -> the role the passport sees in them
    None: PassportRole.PUBLIC,
    "stranger": PassportRole.PUBLIC,
    "repairer": PassportRole.LEGITIMATE_INTEREST,
    "viewer": PassportRole.LEGITIMATE_INTEREST,
    "inspector": PassportRole.AUTHORITY,
    "admin": PassportRole.MANUFACTURER,
}


def _get(world: World, caller: str | None, path: str, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {world.tokens[caller]}"} if caller else {}
    return httpx.get(world.url + path, headers=headers, params=params, timeout=10)


def _expected(role: PassportRole) -> set[int]:
    rights = _csv_rights()
    if role is PassportRole.MANUFACTURER:
        return set(rights) - {26}
    return {n for n, right in rights.items() if right in RIGHTS[role]} - {26}


@pytest.mark.parametrize("caller", list(CALLERS), ids=[str(c) for c in CALLERS])
def test_every_route_shows_each_role_exactly_its_attributes(world: World, caller):
    expected = _expected(CALLERS[caller])
    base = f"/passport/{world.urn}/document"
    as_json = _get(world, caller, base)
    assert as_json.status_code == 200, as_json.text
    assert document_attributes(as_json.json()) == expected
    linked = _get(world, caller, base, format="jsonld")
    assert document_attributes(from_json_ld(linked.json())) == expected
    first = _get(world, caller, base, version=1)
    assert document_attributes(first.json()) == expected
    page = _get(world, caller, f"/passport/{world.urn}")
    assert page.status_code == 200 and "<svg" in page.text
    shown = {int(n) for n in re.findall(r"data-attribute='(\d+)'", page.text)}
    assert shown == expected


@pytest.mark.parametrize(("caller", "status"), [
    (None, 401), ("stranger", 403), ("inspector", 403), ("repairer", 200), ("viewer", 200),
    ("admin", 200)])  # fmt: skip
def test_status_history_is_for_legitimate_interest(world: World, caller, status):
    answer = _get(world, caller, f"/passport/{world.urn}/status")
    assert answer.status_code == status, answer.text
    if status == 200:
        assert answer.json()[0]["status"] == "Original"


@pytest.mark.parametrize(("caller", "status"), [
    (None, 401), ("stranger", 403), ("inspector", 403), ("repairer", 403), ("viewer", 403),
    ("admin", 200)])  # fmt: skip
def test_change_log_is_the_manufacturers(world: World, caller, status):
    answer = _get(world, caller, f"/passport/{world.urn}/versions")
    assert answer.status_code == status, answer.text


def test_unknown_and_malformed_identifiers(world: World):
    assert _get(world, None, "/passport/urn:cellwarden:nosuch/document").status_code == 404
    assert _get(world, None, "/passport/urn:CW:x-1/document").status_code == 422
    assert _get(world, None, "/passport/urn:cellwarden:nosuch").status_code == 404
    bad_token = httpx.get(f"{world.url}/passport/{world.urn}/document",
                          headers={"Authorization": "Bearer nope"}, timeout=10)  # fmt: skip
    assert bad_token.status_code == 401


def test_registration_and_a_second_life(world: World, tmp_path):
    store = world.store
    store.registry.add_pack("pk-2", "scooters")
    scenario = load_builtin("shared-scooter-12s")
    record = register_passport(store, "pk-2", scenario.system, scenario.sector,
                               load_manufacturer_file(), "test")  # fmt: skip
    assert record.urn == "urn:cellwarden:pk2" and record.version == 1
    with pytest.raises(ValueError, match="exists already"):
        register_passport(store, "pk-2", scenario.system, scenario.sector,
                          load_manufacturer_file(), "test")  # fmt: skip
    post = f"/passport/{record.urn}/status"
    headers = {"Authorization": f"Bearer {world.tokens['viewer']}"}
    refused = httpx.post(world.url + post, json={"status": "Repurposed"}, headers=headers)
    assert refused.status_code == 403
    headers = {"Authorization": f"Bearer {world.tokens['admin']}"}
    done = httpx.post(world.url + post, json={"status": "Repurposed", "note": "to ESS"},
                      headers=headers, timeout=10)  # fmt: skip
    assert done.status_code == 200, done.text
    successor = done.json()["successor"]
    assert successor == "urn:cellwarden:pk2l2"
    new = _get(world, "viewer", f"/passport/{successor}/document").json()
    assert new["generalProductInformation"]["batteryStatus"] == "Repurposed"
    assert store.passports.record(successor).predecessor == record.urn
    again = httpx.post(world.url + post, json={"status": "Original"}, headers=headers)
    assert again.status_code == 422  # not a status one changes to
    waste = httpx.post(world.url + f"/passport/{successor}/status",
                       json={"status": "Waste"}, headers=headers, timeout=10)  # fmt: skip
    assert waste.status_code == 200
    final = httpx.post(world.url + f"/passport/{successor}/status",
                       json={"status": "Reused"}, headers=headers, timeout=10)  # fmt: skip
    assert final.status_code == 409 and "Waste" in final.json()["detail"]
    history = _get(world, "admin", f"/passport/{successor}/status").json()
    assert [h["status"] for h in history] == ["Repurposed", "Waste"]


def test_second_life_list_is_for_the_fleets_organisation(world: World):
    assert (
        _get(world, "stranger", f"/api/v1/fleets/{world.fleet_id}/second-life").status_code == 404
    )
    answer = _get(world, "viewer", f"/api/v1/fleets/{world.fleet_id}/second-life")
    assert answer.status_code == 200 and answer.json() == []  # no daily rows yet
