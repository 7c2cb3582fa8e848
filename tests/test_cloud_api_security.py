"""Security of the cloud API: roles, organisations kept apart, tokens, hostile input, limits.

The API runs over a SQLite store seeded through the real code paths (registry, telemetry writer
with encoded-then-decoded payloads, the alarm engine raising alarms from rules, rollups): two
organisations, each with fleets, packs with summaries, cells, positions, health and events,
and alarms (and organisation A's first fleet with imported daily rows and their analysis);
users admin, operator and viewer of organisation A, admin of organisation B and a user without
any membership. The store is seeded once per module into a template file; each
test works on its own copy, so a test that changes something cannot affect another.

Routes are enumerated from ``app.routes`` (cross-checked against the OpenAPI document), so a
route added later is covered by the checks of authentication and of organisation scoping
without editing this file (unless it takes a new kind of path parameter or a request body:
the enumeration test then names what to add).
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import shutil
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from tests.cloud_fixtures import cells as cell_batch
from tests.cloud_fixtures import summaries
from tests.http_server import served
from tests.ota_support import make_bundle

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.alarms.rules import parse_rule
from cellwarden.cloud.analytics.scheduled_analytics import analyse_stored_fleet
from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.api.limits import MAX_BODY_BYTES
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.daily_history import parse_import
from cellwarden.cloud.store.ota_store import CampaignSpec
from cellwarden.cloud.store.registry import Role
from cellwarden.cloud.store.schema_v1 import HEALTH_COLUMNS, POSITION_COLUMNS, SUMMARY_COLUMNS
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.ota.bundle import inspect_bundle
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet
from cellwarden.telemetry.codec import Frame, decode_frame, encode
from cellwarden.telemetry.schema import Kind

with warnings.catch_warnings():  # starlette's notice that it prefers httpx2 for its client
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

CELLS = 8
HOT_VOLTAGE_V = 3.75  # above the 3.6 V of the over-voltage rules


# --- what is seeded ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PackSpec:
    device_id: str
    fleet: str
    name: str
    soc_pct: float
    hot_cell: int | None  # 1-based cell over the rule's threshold in the newest cells record
    trip_code: str | None  # a DTC tripped by an event record


@dataclass(frozen=True)
class OrgSpec:
    name: str
    fleets: tuple[str, ...]
    site: tuple[str, float, float]
    rule_prefix: str
    packs: tuple[PackSpec, ...]


ORGS = {
    "A": OrgSpec("Alpha Energy", ("alpha-buses", "alpha-storage"), ("Alpha Depot", 52.52, 13.40),
                 "Alpha", (PackSpec("alpha-bus-1", "alpha-buses", "Alpha Bus 1", 80.0, 3, "B1101"),
                           PackSpec("alpha-ess-1", "alpha-storage", "Alpha Storage 1", 65.0, None,
                                    None))),
    "B": OrgSpec("Beta Mobility", ("beta-scooters",), ("Beta Yard", 48.14, 11.58), "Beta",
                 (PackSpec("beta-scooter-1", "beta-scooters", "Beta Scooter 1", 55.0, 5,
                           "B2202"),)),
}  # fmt: skip
# key -> (user name, organisation key, role); "nobody" has a token but no membership
USERS = {
    "a-admin": ("alpha-admin", "A", Role.ADMIN),
    "a-operator": ("alpha-operator", "A", Role.OPERATOR),
    "a-viewer": ("alpha-viewer", "A", Role.VIEWER),
    "b-admin": ("beta-admin", "B", Role.ADMIN),
    "nobody": ("nobody", None, None),
}
# text found only in organisation A's data (names, fleets, site, users, rules, alarm messages)
A_MARKERS = ("Alpha Energy", "alpha-buses", "alpha-storage", "Alpha Depot", "Alpha Bus 1",
             "Alpha Storage 1", "alpha-admin", "alpha-operator", "alpha-viewer",
             "Alpha cell over-voltage", "Alpha protection trips", "B1101")  # fmt: skip
B_MARKERS = ("Beta Mobility", "beta-scooters", "Beta Yard", "Beta Scooter 1", "beta-admin",
             "Beta cell over-voltage", "B2202")  # fmt: skip
EXPORT_TABLES = ("summary", "cells", "positions", "health", "events")
ROLLUP_TABLES = ("summary_1m", "summary_1h")


@dataclass
class SeededOrg:
    id: int
    fleet_ids: list[int]
    device_ids: list[str]
    alarm_ids: list[int]  # open alarms raised by the engine, oldest first
    rule_ids: list[int]
    campaign_ids: list[int] | None = None  # an update campaign of its first pack


@dataclass
class Seeded:
    """The template store and what went into it."""

    path: Path
    now_s: float
    orgs: dict[str, SeededOrg]
    tokens: dict[str, str]  # user key -> bearer token
    written: dict[tuple[str, str], list[dict[str, Any]]]  # (device, table) -> rows as exported


# --- seeding through the real write paths ---------------------------------------------------------
def write(store: CloudStore, engine: AlarmEngine, pack_id: int, kind: Kind,
          batch: list[tuple[int, dict]], received_s: float) -> Frame:  # fmt: skip
    """Encode and decode a batch as ingest does, store it, run the alarm rules over it."""
    arrival = Arrival(pack_id, decode_frame(encode(kind, batch)), received_s)
    store.writer.write([arrival])
    engine.evaluate([arrival], received_s)
    return arrival.frame


def columnar_rows(frame: Frame, names: tuple[str, ...]) -> list[dict[str, Any]]:
    """A summary, position or health frame as export rows (NULL where a value is missing)."""
    rows = []
    for i, seq in enumerate(frame.seqs.tolist()):
        row: dict[str, Any] = {"time_s": float(frame.columns["time_s"][i]), "seq": seq}
        for name in names:
            value = float(frame.columns[name][i])
            row[name] = None if math.isnan(value) else value
        rows.append(row)
    return rows


def cell_rows(frame: Frame, batch: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    """Cells records as export rows: one column per cell and quantity, the values from the
    inputs, the times as decoded (the codec keeps 0.1 s)."""
    rows = []
    for (seq, record), time_s in zip(batch, frame.columns["time_s"].tolist(), strict=True):
        row: dict[str, Any] = {"time_s": time_s, "seq": seq}
        for quantity, key in (("voltage_v", "voltage_v"), ("temp_c", "temp_c"),
                              ("balancing", "balancing")):  # fmt: skip
            for cell, value in enumerate(record[key], start=1):
                row[f"cell_{cell}_{quantity}"] = value
        rows.append(row)
    return rows


def event_rows(batch: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    return [
        {"time_s": record["time_s"], "seq": seq, "source": record["source"],
         "code": record["code"], "name": record["name"], "kind": record["kind"],
         "value": record["value"], "action": record["action"],
         "freeze_frame": record["freeze_frame"]}
        for seq, record in batch
    ]  # fmt: skip


def seed(store: CloudStore, path: Path, now_s: float) -> Seeded:
    registry, engine = store.registry, AlarmEngine(store.db)
    orgs: dict[str, SeededOrg] = {}
    written: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for key, spec in ORGS.items():
        org_id = registry.add_org(spec.name)
        fleet_ids = [registry.add_fleet(org_id, fleet) for fleet in spec.fleets]
        site_id = registry.add_site(org_id, *spec.site)
        rule_ids = [
            engine.add_rule(org_id, parse_rule({
                "name": f"{spec.rule_prefix} cell over-voltage", "severity": "critical",
                "condition": {"kind": "threshold", "field": "cells.voltage_v", "operator": ">",
                              "threshold": 3.6, "clear_threshold": 3.55}})),
            engine.add_rule(org_id, parse_rule({
                "name": f"{spec.rule_prefix} protection trips", "severity": "warning",
                "condition": {"kind": "dtc"}})),
        ]  # fmt: skip
        orgs[key] = SeededOrg(org_id, fleet_ids, [], [], rule_ids)
        for index, pack in enumerate(spec.packs):
            pack_id = registry.add_pack(
                pack.device_id, pack.fleet, pack.name, site_id=site_id if index else None,
                chemistry="LFP", cell_count=CELLS, capacity_ah=100.0,
            )  # fmt: skip
            orgs[key].device_ids.append(pack.device_id)
            received_s = now_s - 60
            batch = summaries(1, 40, start_s=now_s - 3600, period_s=60.0, soc_pct=pack.soc_pct)
            frame = write(store, engine, pack_id, Kind.SUMMARY, batch, received_s)
            written[pack.device_id, "summary"] = columnar_rows(frame, SUMMARY_COLUMNS)

            cells = cell_batch(1, 4, CELLS, start_s=now_s - 2400, period_s=600.0, seed=index)
            cells[1][1]["voltage_v"][CELLS - 1] = cells[1][1]["temp_c"][CELLS - 1] = None
            if pack.hot_cell is not None:
                cells[-1][1]["voltage_v"][pack.hot_cell - 1] = HOT_VOLTAGE_V
            frame = write(store, engine, pack_id, Kind.CELLS, cells, received_s)
            written[pack.device_id, "cells"] = cell_rows(frame, cells)

            positions = [(seq, {
                "time_s": now_s - 1800 + 600 * seq, "latitude_deg": spec.site[1] + 0.001 * seq,
                "longitude_deg": spec.site[2] - 0.001 * seq, "speed_kmh": 12.5 * seq,
                "course_deg": 90, "satellites": 9, "hdop": None if seq == 2 else 0.9,
            }) for seq in (1, 2, 3)]  # fmt: skip
            frame = write(store, engine, pack_id, Kind.POSITION, positions, received_s)
            written[pack.device_id, "positions"] = columnar_rows(frame, POSITION_COLUMNS)

            health = [(seq, {
                "time_s": now_s - 2300 + 600 * seq, "link_up": 1, "signal_dbm": -70 - seq,
                "queue_records": 10 * seq, "queue_bytes": 1000 * seq, "dropped_records": 0,
                "logger_dropped": 0, "bytes_sent": 50_000 * seq,
            }) for seq in (1, 2, 3)]  # fmt: skip
            frame = write(store, engine, pack_id, Kind.HEALTH, health, received_s)
            written[pack.device_id, "health"] = columnar_rows(frame, HEALTH_COLUMNS)

            events = [(1, {"time_s": now_s - 1500, "source": "edge", "code": "QUEUE_RECOVERED",
                           "name": "queue recovered", "kind": "info", "value": None,
                           "action": None, "freeze_frame": None})]  # fmt: skip
            if pack.trip_code is not None:
                events.append((2, {
                    "time_s": now_s - 900, "source": "string1", "code": pack.trip_code,
                    "name": "cell over-voltage", "kind": "trip", "value": HOT_VOLTAGE_V,
                    "action": "derate",
                    "freeze_frame": {"current_a": 12.5, "soc_pct": 91.0, "cell_max": 3},
                }))  # fmt: skip
            write(store, engine, pack_id, Kind.EVENT, events, received_s)
            written[pack.device_id, "events"] = event_rows(events)
            store.writer.status(pack_id, "online", "2.4.1", received_s)
        orgs[key].alarm_ids = [
            row[0]
            for row in store.db.query(
                "SELECT id FROM alarms WHERE org_id = ? AND state = 'active' ORDER BY id",
                (org_id,),
            )
        ]
    bundle = make_bundle("2.0.0")
    for seeded_org in orgs.values():  # organisation A's bundle is bundle 1 (see BODIES)
        bundle_id = store.ota.add_bundle(seeded_org.id, bundle, inspect_bundle(bundle), "seed")
        seeded_org.campaign_ids = [store.ota.create_campaign(seeded_org.id, CampaignSpec(
            bundle_id["id"], "seed", seeded_org.device_ids[:1]), "seed")]  # fmt: skip
    store.rollup.run(now_s)
    # organisation A's first fleet: 120 days of its first pack, and their analysis
    days = simulate_fleet(FleetSpec(packs=1, days=120, seed=1)).history
    a_fleet = orgs["A"].fleet_ids[0]
    store.daily.import_history(a_fleet, parse_import(days.assign(pack_id=ORGS["A"].packs[0].name)))
    analyse_stored_fleet(store, a_fleet)
    tokens = {}
    for key, (name, org_key, role) in USERS.items():
        tokens[key] = registry.add_user(name, orgs[org_key or "A"].id, role or Role.VIEWER)
    # the registry has no "revoke": a user whose only membership was removed has none
    with store.db.transaction():
        store.db.execute(
            "DELETE FROM memberships WHERE user_id = (SELECT id FROM users WHERE name = ?)",
            (USERS["nobody"][0],),
        )
    return Seeded(path, now_s, orgs, tokens, written)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Seeded:
    path = tmp_path_factory.mktemp("api-security") / "template.db"
    store = open_store(f"sqlite:///{path}")
    try:
        out = seed(store, path, time.time())
    finally:
        store.close()  # the last connection checkpoints the WAL into the file
    assert not Path(f"{path}-wal").exists()
    return out


# --- a fresh copy of the store per test --------------------------------------------------------
@dataclass
class World:
    seeded: Seeded
    store: CloudStore
    app: FastAPI
    client: TestClient

    def call(self, who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", None) or {})
        if who is not None:
            headers["Authorization"] = f"Bearer {self.seeded.tokens[who]}"
        return self.client.request(method, path, headers=headers, **kwargs)

    def ids(self, org: str = "A") -> dict[str, str]:
        """Path parameters naming organisation ``org``'s things."""
        found = self.seeded.orgs[org]
        return {"org_id": str(found.id), "device_id": found.device_ids[0],
                "alarm_id": str(found.alarm_ids[0]), "rule_id": str(found.rule_ids[0]),
                "fleet_id": str(found.fleet_ids[0]), "campaign_id": str(found.campaign_ids[0]),
                "action": "pause"}  # fmt: skip

    def alarm(self, alarm_id: int) -> dict[str, Any]:
        keys = ("state", "acked_by", "acked_s", "cleared_by", "cleared_s")
        rows = self.store.db.query(f"SELECT {', '.join(keys)} FROM alarms WHERE id = ?",
                                   (alarm_id,))  # fmt: skip
        return dict(zip(keys, rows[0], strict=True))


@pytest.fixture
def world(seeded: Seeded, tmp_path: Path) -> Iterator[World]:
    path = tmp_path / "cloud.db"
    shutil.copyfile(seeded.path, path)
    store = open_store(f"sqlite:///{path}")
    app = create_app(store)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            yield World(seeded, store, app, client)
    finally:
        store.close()


def snapshot(store: CloudStore) -> dict[str, list[tuple]]:
    """Every row of every table, and the schema: equal before and after means nothing changed."""
    tables = [name for (name,) in store.db.query(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]  # fmt: skip
    out = {table: store.db.query(f"SELECT * FROM {table} ORDER BY rowid") for table in tables}
    out["<schema>"] = store.db.query("SELECT type, name, sql FROM sqlite_master ORDER BY name")
    return out


def row_counts(store: CloudStore) -> dict[str, int]:
    return {table: len(rows) for table, rows in snapshot(store).items()}


def leaked(response: httpx.Response, markers: tuple[str, ...]) -> list[str]:
    return [marker for marker in markers if marker in response.text]


# --- the routes, from the application -------------------------------------------------------------
KNOWN_PATH_PARAMS = {"org_id", "device_id", "alarm_id", "rule_id", "fleet_id", "campaign_id",
                     "action"}  # fmt: skip
GHOST_IDS = {"org_id": "987654", "device_id": "ghost-pack-9", "alarm_id": "987654",
             "rule_id": "987654", "fleet_id": "987654", "campaign_id": "987654",
             "action": "pause"}  # fmt: skip
# a valid body for each route that takes one, so that only the check under test can refuse it
BODIES: dict[tuple[str, str], dict[str, Any] | bytes] = {
    ("POST", "/api/v1/orgs/{org_id}/fleets"): {"name": "new-fleet"},
    ("POST", "/api/v1/orgs/{org_id}/sites"): {
        "name": "New Site",
        "latitude_deg": 50.0,
        "longitude_deg": 8.0,
    },
    ("POST", "/api/v1/orgs/{org_id}/packs"): {
        "device_id": "new-pack-1",
        "fleet": "alpha-buses",
        "name": "New Pack",
        "cell_count": 4,
    },
    ("POST", "/api/v1/orgs/{org_id}/users"): {"name": "new-user", "role": "viewer"},
    ("POST", "/api/v1/orgs/{org_id}/alarm-rules"): {
        "name": "pack silent",
        "condition": {"kind": "no_data", "silence_min": 30},
    },
    ("POST", "/api/v1/alarms/{alarm_id}/acknowledge"): {"comment": "on it"},
    ("POST", "/api/v1/orgs/{org_id}/ota/bundles"): make_bundle("2.0.1"),
    ("POST", "/api/v1/orgs/{org_id}/ota/campaigns"): {
        "bundle_id": 1,
        "name": "2.0.0 again",
        "device_ids": ["alpha-bus-1"],
    },
}


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # with {placeholders}
    params: frozenset[str]  # path parameter names
    query: tuple[str, ...]  # declared query parameter names
    has_body: bool

    def url(self, ids: dict[str, str]) -> str:
        return self.path.format(**{name: quote(ids[name], safe="") for name in self.params})

    @property
    def body(self) -> dict[str, Any] | None:
        return BODIES.get((self.method, self.path))

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


def _api_routes(routes: list, prefix: str = "") -> Iterator[tuple[str, APIRoute]]:
    """Every APIRoute, also inside included routers (FastAPI >= 0.13x keeps them nested)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield prefix + route.path, route
        elif hasattr(route, "original_router"):
            inner = getattr(getattr(route, "include_context", None), "prefix", "") or ""
            yield from _api_routes(route.original_router.routes, prefix + inner)


def endpoints(app: FastAPI) -> list[Endpoint]:
    """Every operation under /api/, as the application routes it."""
    out = []
    for path, route in _api_routes(app.routes):
        if not path.startswith("/api/"):
            continue
        for method in sorted(route.methods - {"HEAD"}):
            out.append(Endpoint(
                method, path, frozenset(re.findall(r"{(\w+)}", path)),
                tuple(param.name for param in route.dependant.query_params),
                route.body_field is not None,
            ))  # fmt: skip
    return out


def parametrised(app: FastAPI) -> list[Endpoint]:
    return [endpoint for endpoint in endpoints(app) if endpoint.params]


def request(world: World, who: str | None, endpoint: Endpoint, ids: dict[str, str],
            **kwargs: Any) -> httpx.Response:  # fmt: skip
    if isinstance(endpoint.body, bytes):
        kwargs.setdefault("content", endpoint.body)
    elif endpoint.body is not None:
        kwargs.setdefault("json", endpoint.body)
    return world.call(who, endpoint.method, endpoint.url(ids), **kwargs)


def test_routes_are_enumerated_from_the_application(world: World) -> None:
    found = endpoints(world.app)
    spec = {(method.upper(), path) for path, item in world.app.openapi()["paths"].items()
            for method in item if path.startswith("/api/")}  # fmt: skip
    assert {(e.method, e.path) for e in found} == spec, "the walk of app.routes missed routes"
    with_params = parametrised(world.app)
    assert len(with_params) >= 19, [str(e) for e in with_params]
    assert {str(e) for e in with_params} == {str(e) for e in found if "{" in e.path}
    unknown = {name for e in with_params for name in e.params} - KNOWN_PATH_PARAMS
    assert not unknown, f"new path parameters {unknown}: add them to KNOWN_PATH_PARAMS/ids()"
    bodiless = [str(e) for e in found if e.has_body and e.body is None]
    assert not bodiless, f"add a valid request body to BODIES for {bodiless}"
    public = {
        route.path
        for route in world.app.routes
        if not isinstance(route, APIRoute) and getattr(route, "path", "").startswith("/api")
    }
    assert public == {"/api/openapi.json", "/api/docs"}  # fmt: skip


# --- roles ------------------------------------------------------------------------------------
def test_viewer_cannot_acknowledge_an_alarm(world: World) -> None:
    alarm_id = world.seeded.orgs["A"].alarm_ids[0]
    listed = world.call("a-viewer", "GET", f"/api/v1/orgs/{world.ids()['org_id']}/alarms")
    assert listed.status_code == 200 and alarm_id in [a["id"] for a in listed.json()["items"]]
    before = snapshot(world.store)
    answer = world.call("a-viewer", "POST", f"/api/v1/alarms/{alarm_id}/acknowledge",
                        json={"comment": "mine"})  # fmt: skip
    assert answer.status_code == 403, answer.text
    assert "operator role" in answer.json()["detail"]
    assert world.alarm(alarm_id) == {"state": "active", "acked_by": None, "acked_s": None,
                                     "cleared_by": None, "cleared_s": None}  # fmt: skip
    assert snapshot(world.store) == before


def test_viewer_cannot_clear_an_alarm(world: World) -> None:
    alarm_id = world.seeded.orgs["A"].alarm_ids[0]
    before = snapshot(world.store)
    answer = world.call("a-viewer", "POST", f"/api/v1/alarms/{alarm_id}/clear")
    assert answer.status_code == 403, answer.text
    assert "operator role" in answer.json()["detail"]
    assert world.alarm(alarm_id)["state"] == "active"
    assert snapshot(world.store) == before


ADMIN_ONLY = {
    "add fleet": ("POST", "/api/v1/orgs/{org_id}/fleets"),
    "add site": ("POST", "/api/v1/orgs/{org_id}/sites"),
    "add pack": ("POST", "/api/v1/orgs/{org_id}/packs"),
    "add user": ("POST", "/api/v1/orgs/{org_id}/users"),
    "list users": ("GET", "/api/v1/orgs/{org_id}/users"),
    "add alarm rule": ("POST", "/api/v1/orgs/{org_id}/alarm-rules"),
    "delete alarm rule": ("DELETE", "/api/v1/alarm-rules/{rule_id}"),
    "issue update token": ("POST", "/api/v1/orgs/{org_id}/packs/{device_id}/ota-token"),
}


def refused_for_role(world: World, who: str, action: str) -> httpx.Response:
    method, path = ADMIN_ONLY[action]
    before = snapshot(world.store)
    answer = world.call(who, method, path.format(**world.ids()), json=BODIES.get((method, path)))
    assert answer.status_code == 403, answer.text
    assert "admin role" in answer.json()["detail"]
    assert snapshot(world.store) == before
    return answer


def test_viewer_cannot_add_packs(world: World) -> None:
    refused_for_role(world, "a-viewer", "add pack")
    assert world.store.db.query("SELECT 1 FROM packs WHERE device_id = 'new-pack-1'") == []


def test_viewer_cannot_add_users(world: World) -> None:
    answer = refused_for_role(world, "a-viewer", "add user")
    assert "token" not in answer.json()
    assert world.store.db.query("SELECT 1 FROM users WHERE name = 'new-user'") == []


def test_viewer_cannot_add_alarm_rules(world: World) -> None:
    refused_for_role(world, "a-viewer", "add alarm rule")
    assert world.store.db.query("SELECT 1 FROM alarm_rules WHERE name = 'pack silent'") == []


def test_operator_cannot_add_users(world: World) -> None:
    answer = refused_for_role(world, "a-operator", "add user")
    assert "token" not in answer.json()
    assert world.store.db.query("SELECT 1 FROM users WHERE name = 'new-user'") == []


@pytest.mark.parametrize("action", list(ADMIN_ONLY))
@pytest.mark.parametrize("who", ["a-viewer", "a-operator"])
def test_admin_only_actions_are_refused_below_admin(world: World, who: str, action: str) -> None:
    refused_for_role(world, who, action)


def test_admin_only_actions_succeed_for_the_admin(world: World) -> None:
    """The control of the refusals above: the same requests work with the admin role."""
    for action, (method, path) in ADMIN_ONLY.items():
        answer = world.call("a-admin", method, path.format(**world.ids()),
                            json=BODIES.get((method, path)))  # fmt: skip
        assert answer.status_code in (200, 201, 204), (action, answer.text)


def test_operator_acknowledges_an_alarm_and_is_recorded_as_acked_by(world: World) -> None:
    alarm_id = world.seeded.orgs["A"].alarm_ids[0]
    before_s = time.time()
    answer = world.call("a-operator", "POST", f"/api/v1/alarms/{alarm_id}/acknowledge",
                        json={"comment": "crew informed"})  # fmt: skip
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["state"] == "acknowledged" and body["acked_by"] == "alpha-operator"
    assert body["log"][-1] == {"time_s": body["acked_s"], "action": "acknowledged",
                               "who": "alpha-operator", "detail": "crew informed"}  # fmt: skip
    stored = world.alarm(alarm_id)
    assert stored["state"] == "acknowledged" and stored["acked_by"] == "alpha-operator"
    assert before_s <= stored["acked_s"] <= time.time()
    again = world.call("a-operator", "POST", f"/api/v1/alarms/{alarm_id}/acknowledge")
    assert again.status_code == 409 and "alpha-operator" in again.json()["detail"]


def test_operator_clears_an_alarm_and_is_recorded_as_cleared_by(world: World) -> None:
    alarm_id = world.seeded.orgs["A"].alarm_ids[0]
    answer = world.call("a-operator", "POST", f"/api/v1/alarms/{alarm_id}/clear")
    assert answer.status_code == 200, answer.text
    stored = world.alarm(alarm_id)
    assert stored["state"] == "cleared" and stored["cleared_by"] == "alpha-operator"
    assert stored["acked_by"] is None


@pytest.mark.parametrize("who", ["a-viewer", "a-operator", "nobody"])
def test_platform_ingest_routes_need_an_admin_role(world: World, who: str) -> None:
    for path in ("/api/v1/ingest", "/api/v1/ingest/quarantine"):
        answer = world.call(who, "GET", path)
        assert answer.status_code == 403, (path, answer.text)
        assert set(answer.json()) == {"detail"}


# --- organisations are kept apart ------------------------------------------------------------
def normalised(answer: httpx.Response, ids: dict[str, str]) -> tuple[int, str]:
    """Status and body with the requested ids blanked (404s echo them)."""
    text = answer.text
    for value in ids.values():
        text = re.sub(rf"(?<![\w-]){re.escape(value)}(?![\w-])", "<id>", text)
    return answer.status_code, text


def assert_every_parametrised_route_is_404(world: World, who: str) -> None:
    a_ids = world.ids("A")
    before = snapshot(world.store)
    failures = []
    checked = parametrised(world.app)
    assert checked
    for endpoint in checked:
        answer = request(world, who, endpoint, a_ids)
        ghost = request(world, who, endpoint, GHOST_IDS)
        problems = []
        if answer.status_code != 404:
            problems.append(f"status {answer.status_code}")
        if not answer.headers.get("content-type", "").startswith("application/json") or set(
            answer.json()
        ) != {"detail"}:
            problems.append("more than a detail")
        if found := leaked(answer, A_MARKERS):
            problems.append(f"leaks {found}")
        if normalised(answer, a_ids) != normalised(ghost, GHOST_IDS):
            problems.append("answers otherwise than for an id that does not exist")
        if problems:
            failures.append(f"{endpoint}: {', '.join(problems)}: {answer.text[:200]}")
    assert failures == []
    assert snapshot(world.store) == before


def test_other_organisations_admin_gets_404_on_every_parametrised_route(world: World) -> None:
    assert_every_parametrised_route_is_404(world, "b-admin")


def test_user_without_membership_gets_404_on_every_parametrised_route(world: World) -> None:
    assert_every_parametrised_route_is_404(world, "nobody")


def test_own_admin_reaches_every_parametrised_route(world: World) -> None:
    """The control of the 404s above: the very same requests succeed for A's admin."""
    failures = []
    for endpoint in parametrised(world.app):
        answer = request(world, "a-admin", endpoint, world.ids("A"))
        if not 200 <= answer.status_code < 300:
            failures.append(f"{endpoint}: {answer.status_code} {answer.text[:200]}")
    assert failures == []


def test_listings_show_only_the_callers_organisation(world: World) -> None:
    b = world.seeded.orgs["B"]
    me = world.call("b-admin", "GET", "/api/v1/me").json()
    assert me["organisations"] == [{"id": b.id, "name": "Beta Mobility", "role": "admin"}]
    nobody = world.call("nobody", "GET", "/api/v1/me")
    assert nobody.status_code == 200 and nobody.json()["organisations"] == []
    for path in ("overview", "positions", "alarms", "alarm-rules", "users", "fleets",
                 "sites"):  # fmt: skip
        answer = world.call("b-admin", "GET", f"/api/v1/orgs/{b.id}/{path}")
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json()["items"], path
        assert leaked(answer, A_MARKERS) == [], path
    overview = world.call("b-admin", "GET", f"/api/v1/orgs/{b.id}/overview")
    assert [item["device_id"] for item in overview.json()["items"]] == b.device_ids
    alarms = world.call("b-admin", "GET", f"/api/v1/orgs/{b.id}/alarms").json()["items"]
    assert {alarm["org_id"] for alarm in alarms} == {b.id}


def test_quarantine_is_scoped_to_the_callers_organisation(world: World) -> None:
    world.store.ingest_log.quarantine("cw/alpha-buses/alpha-bus-1/summary",
                                      "payload does not decode", b"\x00", time.time())  # fmt: skip
    world.store.ingest_log.quarantine("cw/nobody/x/summary", "device 'x' is not registered",
                                      b"\x00", time.time())  # fmt: skip
    answer = world.call("b-admin", "GET", "/api/v1/ingest/quarantine")
    assert answer.status_code == 200
    assert answer.json()["items"] == []  # neither org A's topic nor an unowned one
    own = world.call("a-admin", "GET", "/api/v1/ingest/quarantine").json()["items"]
    assert [item["topic"] for item in own] == ["cw/alpha-buses/alpha-bus-1/summary"]


# --- authentication ---------------------------------------------------------------------------
BAD_CREDENTIALS = {
    "missing": lambda token: None,
    "empty bearer": lambda token: "Bearer ",
    "non-ascii": lambda token: "Bearer t\u00f6k\u00e9n-\u2603".encode(),
    "10 KB long": lambda token: "Bearer " + "a" * 10_240,
    "basic scheme": lambda token: "Basic dXNlcjpwYXNzd29yZA==",
    "valid token, basic scheme": lambda token: f"Basic {token}",
    "valid token, no scheme": lambda token: token,
    "unknown token": lambda token: "Bearer Xk3v_9QpZ2mN8sR4tL6wY1aB5cD7eF0gH2jK4lM6nP8",
    "valid token and more": lambda token: f"Bearer {token}x",
    "two tokens": lambda token: f"Bearer {token} {token}",
}


@pytest.mark.parametrize("credential", list(BAD_CREDENTIALS))
def test_bad_credentials_get_401_on_every_api_route(world: World, credential: str) -> None:
    value = BAD_CREDENTIALS[credential](world.seeded.tokens["a-admin"])
    headers = {} if value is None else {"Authorization": value}
    before = snapshot(world.store)
    failures = []
    checked = endpoints(world.app)
    assert len(checked) >= 21
    for endpoint in checked:
        answer = request(world, None, endpoint, world.ids("A"), headers=headers)
        if (answer.status_code != 401 or answer.headers.get("www-authenticate") != "Bearer"
                or set(answer.json()) != {"detail"} or leaked(answer, A_MARKERS)):  # fmt: skip
            failures.append(f"{endpoint}: {answer.status_code} {answer.text[:200]}")
    assert failures == []
    assert snapshot(world.store) == before


def test_openapi_document_is_public_and_api_is_not(world: World) -> None:
    assert world.call(None, "GET", "/api/openapi.json").status_code == 200
    assert world.call(None, "GET", "/api/docs").status_code == 200
    assert world.call(None, "GET", "/api/v1/me").status_code == 401


# --- hostile input ----------------------------------------------------------------------------
HOSTILE = {
    "quote or": "' OR 1=1 --",
    "stacked drop": "pack-1; DROP TABLE packs",
    "percent": "%",
    "underscore": "_",
    "union": "1 UNION SELECT token_sha256 FROM users",
    "delete": '"; DELETE FROM alarms; --',
    "like or": "%' OR '1'='1",
    "unicode": "\u00fcn\u00efc\u00f8d\u00e9-\u2603-\U0001f50b",
    "null byte": "alpha\x00bus",
    "only null": "\x00",
}


def test_sql_looking_path_parameters_are_refused(world: World) -> None:
    before = snapshot(world.store)
    failures = []
    for endpoint in parametrised(world.app):
        for name in endpoint.params:
            for label, value in HOSTILE.items():
                answer = request(world, "a-admin", endpoint, {**world.ids("A"), name: value})
                if not 400 <= answer.status_code < 500 or leaked(answer, B_MARKERS):
                    failures.append(f"{endpoint} {name}={label}: {answer.status_code}")
    assert failures == []
    assert snapshot(world.store) == before


def test_sql_looking_query_parameters_are_refused_or_find_nothing(world: World) -> None:
    """Each declared query parameter of each GET route, as A's admin: 4xx, or (the overview's
    ``fleet`` and ``q`` filters) an answer with none or only A's own packs."""
    before = snapshot(world.store)
    a_packs = set(world.seeded.orgs["A"].device_ids)
    filters = {("/api/v1/orgs/{org_id}/overview", "fleet"), ("/api/v1/orgs/{org_id}/overview", "q")}
    failures, answered = [], {}
    gets = [e for e in endpoints(world.app) if e.method == "GET" and e.query]
    assert len(gets) >= 7
    for endpoint in gets:
        for name in endpoint.query:
            for label, value in HOSTILE.items():
                answer = request(world, "a-admin", endpoint, world.ids("A"), params={name: value})
                where = f"{endpoint} {name}={label}: {answer.status_code}"
                if 400 <= answer.status_code < 500:
                    continue
                if answer.status_code != 200 or (endpoint.path, name) not in filters:
                    failures.append(where)
                    continue
                found = {item["device_id"] for item in answer.json()["items"]}
                answered[name, label] = found
                if not found <= a_packs or leaked(answer, B_MARKERS):
                    failures.append(f"{where} found {found}")
    assert failures == []
    assert answered[("fleet", "percent")] == set()  # a fleet name is compared, not matched
    assert answered[("q", "quote or")] == set()
    assert snapshot(world.store) == before


def test_search_matches_literally_and_ignores_case_within_the_organisation(
    world: World,
) -> None:
    """``q`` is a case-insensitive substring of the device id or name: ``%`` and ``_`` are
    plain characters (not LIKE wildcards), and only the caller's organisation is searched."""
    a, b = world.seeded.orgs["A"], world.seeded.orgs["B"]

    def search(who: str, org: int, q: str) -> list[str]:
        answer = world.call(who, "GET", f"/api/v1/orgs/{org}/overview", params={"q": q})
        assert answer.status_code == 200, answer.text
        return [item["device_id"] for item in answer.json()["items"]]

    assert search("a-admin", a.id, "%") == []
    assert search("a-admin", a.id, "_") == []
    assert search("a-admin", a.id, "alpha%ess") == []
    assert search("a-admin", a.id, "bus_1") == []
    assert search("a-admin", a.id, "BUS-1") == ["alpha-bus-1"]
    assert search("a-admin", a.id, "Storage 1") == ["alpha-ess-1"]  # the name matches too
    assert search("a-admin", a.id, "alpha") == a.device_ids
    assert search("a-admin", a.id, "beta") == []
    assert search("b-admin", b.id, "beta") == b.device_ids
    assert search("a-admin", a.id, "' OR 1=1 --") == []


def test_null_bytes_are_refused_before_they_reach_the_database(world: World) -> None:
    """PostgreSQL text cannot hold NUL: every text a request stores or searches refuses it."""
    a = world.ids("A")
    before = snapshot(world.store)
    attempts = [
        ("GET", f"/api/v1/orgs/{a['org_id']}/overview", {"params": {"q": "a\x00"}}),
        ("GET", f"/api/v1/orgs/{a['org_id']}/overview", {"params": {"fleet": "a\x00"}}),
        ("POST", f"/api/v1/orgs/{a['org_id']}/packs",
         {"json": {"device_id": "p-9", "fleet": "alpha-buses", "name": "x\x00"}}),
        ("POST", f"/api/v1/orgs/{a['org_id']}/packs",
         {"json": {"device_id": "p-9", "fleet": "alpha-buses", "site": "x\x00"}}),
        ("POST", f"/api/v1/orgs/{a['org_id']}/packs",
         {"json": {"device_id": "p-9", "fleet": "alpha-buses", "chemistry": "x\x00"}}),
        ("POST", f"/api/v1/orgs/{a['org_id']}/users",
         {"json": {"name": "u-9", "role": "viewer", "email": "a\x00@b.org"}}),
        ("POST", f"/api/v1/alarms/{a['alarm_id']}/acknowledge", {"json": {"comment": "\x00"}}),
    ]  # fmt: skip
    for method, path, kwargs in attempts:
        answer = world.call("a-admin", method, path, **kwargs)
        assert answer.status_code == 422, (path, kwargs, answer.text)
    for method, path, body in [
        ("POST", f"/api/v1/orgs/{a['org_id']}/users", {"name": "u\x00", "role": "viewer"}),
        ("POST", f"/api/v1/orgs/{a['org_id']}/sites", {"name": "s\x00"}),
    ]:  # the registry refuses names that are not printable
        answer = world.call("a-admin", method, path, json=body)
        assert answer.status_code == 409 and "printable" in answer.json()["detail"], answer.text
    assert snapshot(world.store) == before


def test_hostile_input_leaves_every_table_intact(world: World) -> None:
    """Row counts of every table before and after the hostile values in every path and query
    parameter of every route (and in the query of every GET route with real ids)."""
    before, rows = row_counts(world.store), snapshot(world.store)
    assert before["packs"] == 3 and before["alarms"] == 4 and before["users"] == 5
    assert before["summary"] == 120 and before["events"] == 5
    failures = []
    for endpoint in endpoints(world.app):
        for label, value in HOSTILE.items():
            params = dict.fromkeys(endpoint.query, value)
            ids = {**world.ids("A"), **dict.fromkeys(endpoint.params, value)}
            answer = request(world, "a-admin", endpoint, ids, params=params)
            if answer.status_code >= 500 or (endpoint.params and answer.status_code < 400):
                failures.append(f"{endpoint} {label}: {answer.status_code}")
            if endpoint.method == "GET":  # the real pack, organisation...: 4xx or an answer
                answer = request(world, "a-admin", endpoint, world.ids("A"), params=params)
                if answer.status_code >= 500:
                    failures.append(f"{endpoint} {label} with real ids: {answer.status_code}")
    assert failures == []
    assert row_counts(world.store) == before
    assert snapshot(world.store) == rows


# --- oversized requests -----------------------------------------------------------------------
def oversized_document(endpoint: Endpoint, size: int) -> bytes:
    """The route's valid body with one more (refused) key carrying ``size`` bytes."""
    return json.dumps({**(endpoint.body or {}), "padding": "x" * size}).encode()


def body_endpoints(world: World) -> list[Endpoint]:
    found = [e for e in endpoints(world.app) if e.has_body]
    assert len(found) >= 6
    return found


def test_json_body_over_64_kib_with_content_length_is_413(world: World) -> None:
    before = snapshot(world.store)
    for endpoint in body_endpoints(world):
        body = oversized_document(endpoint, MAX_BODY_BYTES + 1)
        answer = request(world, "a-admin", endpoint, world.ids("A"), content=body,
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.request.headers["content-length"] == str(len(body))
        assert answer.status_code == 413, (str(endpoint), answer.text)
        assert answer.json() == {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}
    assert snapshot(world.store) == before


def test_body_at_the_limit_is_read(world: World) -> None:
    """The control: a body of exactly 64 KiB is read and validated (422 for its padding)."""
    for endpoint in body_endpoints(world):
        body = oversized_document(endpoint, 0)
        body = body[:-1] + b" " * (MAX_BODY_BYTES - len(body)) + b"}"
        assert len(body) == MAX_BODY_BYTES
        answer = request(world, "a-admin", endpoint, world.ids("A"), content=body,
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 422, (str(endpoint), answer.text[:200])


def chunks(body: bytes, size: int = 8192) -> Iterator[bytes]:
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_chunked_json_body_over_64_kib_is_413(world: World) -> None:
    """Without Content-Length the limit counts the bytes as they stream in."""
    before = snapshot(world.store)
    headers = {"Authorization": f"Bearer {world.seeded.tokens['a-admin']}",
               "Content-Type": "application/json"}  # fmt: skip
    with served(world.app) as base_url, httpx.Client(base_url=base_url, timeout=10) as client:
        for endpoint in body_endpoints(world):
            # a little over: uvicorn closes after the 413 and should find little unread
            body = oversized_document(endpoint, MAX_BODY_BYTES + 1024)
            answer = client.request(endpoint.method, endpoint.url(world.ids("A")),
                                    content=chunks(body), headers=headers)  # fmt: skip
            assert "content-length" not in answer.request.headers
            assert answer.request.headers["transfer-encoding"] == "chunked"
            assert answer.status_code == 413, (str(endpoint), answer.text)
            assert answer.json() == {"detail": f"request body larger than {MAX_BODY_BYTES} bytes"}
    # the same through the in-process client (one ASGI message, no Content-Length)
    for endpoint in body_endpoints(world):
        body = oversized_document(endpoint, 2 * MAX_BODY_BYTES)
        answer = request(world, "a-admin", endpoint, world.ids("A"), content=chunks(body),
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert "content-length" not in answer.request.headers
        assert answer.status_code == 413, (str(endpoint), answer.text)
    assert snapshot(world.store) == before


def test_huge_query_values_are_422(world: World) -> None:
    """60 KB in each declared query parameter of each GET route: every one is bounded."""
    before = snapshot(world.store)
    failures = []
    for endpoint in endpoints(world.app):
        for name in endpoint.query:
            answer = request(world, "a-admin", endpoint, world.ids("A"),
                             params={name: "9" * 60_000})  # fmt: skip
            if answer.status_code != 422:
                failures.append(f"{endpoint} {name}: {answer.status_code}")
    assert failures == []
    assert snapshot(world.store) == before


def test_huge_unknown_query_parameter_is_ignored(world: World) -> None:
    """Not a limit of the API: a parameter no route declares is ignored whatever its size
    (the HTTP server's bound on the request line is all there is; docs/cloud-api.md)."""
    answer = world.call("a-viewer", "GET", "/api/v1/me", params={"junk": "x" * 60_000})
    assert answer.status_code == 200 and answer.json()["name"] == "alpha-viewer"


@pytest.mark.parametrize(("depth", "status"), [(20_000, 400), (700, 422), (50, 422)])
def test_deeply_nested_json_is_refused(world: World, depth: int, status: int) -> None:
    """Beyond the JSON parser's recursion limit: 400; parsed but the wrong shape: 422."""
    before = snapshot(world.store)
    nested = "[" * depth + "]" * depth
    for endpoint in body_endpoints(world):
        first = next(iter(endpoint.body or {"name": None}))
        body = json.dumps({**(endpoint.body or {}), first: None}).replace("null", nested, 1)
        assert len(body) <= MAX_BODY_BYTES
        answer = request(world, "a-admin", endpoint, world.ids("A"), content=body.encode(),
                         headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == status, (str(endpoint), answer.text[:200])
    assert snapshot(world.store) == before


def test_nesting_around_the_parsers_limit_is_never_500(world: World) -> None:
    """Just below the recursion limit the parser succeeds and the 422 echoes the input;
    just above it fails (400). Neither side may fail while answering."""
    path = f"/api/v1/orgs/{world.ids()['org_id']}/fleets"
    seen = set()
    for depth in range(900, 1021, 5):
        body = '{"name": ' + "[" * depth + "]" * depth + "}"
        answer = world.call("a-admin", "POST", path, content=body.encode(),
                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code in (400, 422), (depth, answer.text[:200])
        seen.add(answer.status_code)
    assert seen == {400, 422}, "the sweep no longer spans the parser's limit"


def not_json(name: str) -> None:
    pytest.fail(f"{name} is not JSON")


def test_non_finite_numbers_in_a_body_are_422(world: World) -> None:
    """JSON bodies may spell NaN and Infinity (Python's parser takes them); the answer is a
    422 whose echo of the input is still valid JSON."""
    a = world.ids("A")
    before = snapshot(world.store)
    for path, body in [
        (f"/api/v1/orgs/{a['org_id']}/sites", '{"name": "S", "latitude_deg": NaN}'),
        (f"/api/v1/orgs/{a['org_id']}/packs",
         '{"device_id": "p-9", "fleet": "alpha-buses", "capacity_ah": Infinity}'),
        (f"/api/v1/orgs/{a['org_id']}/alarm-rules",
         '{"name": "r", "condition": {"kind": "threshold", "field": "soc_pct", '
         '"operator": "<", "threshold": -Infinity}}'),
        (f"/api/v1/orgs/{a['org_id']}/fleets", '{"name": "f", "extra": [NaN, Infinity]}'),
    ]:  # fmt: skip
        answer = world.call("a-admin", "POST", path, content=body.encode(),
                            headers={"Content-Type": "application/json"})  # fmt: skip
        assert answer.status_code == 422, (path, answer.text)
        json.loads(answer.text, parse_constant=not_json)
    assert snapshot(world.store) == before


def test_ids_beyond_64_bits_are_422(world: World) -> None:
    for who in ("a-admin", "b-admin"):
        for method, path in [("POST", "/api/v1/alarms/{}/acknowledge"),
                             ("POST", "/api/v1/alarms/{}/clear"),
                             ("DELETE", "/api/v1/alarm-rules/{}")]:  # fmt: skip
            for value in (2**63, 2**64 + 5, -(2**63) - 1, 10**40):
                answer = world.call(who, method, path.format(value))
                assert answer.status_code == 422, (path, value, answer.text)
    for value in (2**63, 10**40):  # an organisation the caller is not in, whatever its id
        answer = world.call("a-admin", "GET", f"/api/v1/orgs/{value}/alarms")
        assert answer.status_code == 404, answer.text


# --- exports ----------------------------------------------------------------------------------
TEXT_COLUMNS = {"source", "code", "name", "kind", "action", "freeze_frame"}


def typed(column: str, value: Any) -> Any:
    """An exported value as the written one: CSV text parsed, the freeze frame's JSON read."""
    if value == "" or value is None:
        return None
    if column == "freeze_frame":
        return json.loads(value)
    if column in TEXT_COLUMNS or not isinstance(value, str):
        return value
    if column in ("seq", "samples"):
        return int(value)
    if column.endswith("_balancing"):
        return {"True": True, "False": False}[value]
    return float(value)


def read_csv(content: bytes) -> tuple[list[str], list[dict[str, Any]]]:
    reader = csv.reader(io.StringIO(content.decode()))
    header = next(reader)
    return header, [{c: typed(c, v) for c, v in zip(header, row, strict=True)} for row in reader]


def read_parquet(content: bytes) -> tuple[pa.Schema, list[dict[str, Any]]]:
    table = pq.read_table(io.BytesIO(content))
    rows = [{c: typed(c, v) for c, v in row.items()} for row in table.to_pylist()]
    return table.schema, rows


def comparable(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cell values at their stored resolution (1 mV, 0.1 °C): the inputs had more digits."""
    if table != "cells":
        return rows
    digits = {"voltage_v": 3, "temp_c": 1}
    out = []
    for row in rows:
        fixed = {}
        for column, value in row.items():
            quantity = column.split("_", 2)[-1] if column.startswith("cell_") else None
            if quantity in digits and value is not None:
                value = round(value, digits[quantity])
            fixed[column] = value
        out.append(fixed)
    return out


def export(world: World, who: str, device_id: str, table: str, file_format: str,
           from_s: float | None = None, to_s: float | None = None) -> httpx.Response:  # fmt: skip
    now_s = world.seeded.now_s
    params = {"table": table, "format": file_format,
              "from_s": now_s - 7200 if from_s is None else from_s,
              "to_s": now_s + 60 if to_s is None else to_s}  # fmt: skip
    return world.call(who, "GET", f"/api/v1/packs/{device_id}/export", params=params)


def expected_columns(table: str) -> list[str]:
    if table == "cells":
        return ["time_s", "seq", *(f"cell_{i}_{quantity}" for quantity in
                                   ("voltage_v", "temp_c", "balancing")
                                   for i in range(1, CELLS + 1))]  # fmt: skip
    body = {
        "summary": SUMMARY_COLUMNS,
        "positions": POSITION_COLUMNS,
        "health": HEALTH_COLUMNS,
        "events": ("source", "code", "name", "kind", "value", "action", "freeze_frame"),
    }
    return ["time_s", "seq", *body[table]]


@pytest.mark.parametrize("table", EXPORT_TABLES)
def test_csv_export_holds_exactly_the_written_rows(world: World, table: str) -> None:
    for device_id in world.seeded.orgs["A"].device_ids:
        answer = export(world, "a-viewer", device_id, table, "csv")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/csv")
        assert f'filename="{device_id}-{table}.csv"' in answer.headers["content-disposition"]
        header, rows = read_csv(answer.content)
        assert header == expected_columns(table)
        written = world.seeded.written[device_id, table]
        assert len(rows) == len(written) > 0
        assert comparable(table, rows) == comparable(table, written)


@pytest.mark.parametrize("table", EXPORT_TABLES)
def test_parquet_export_holds_exactly_the_written_rows(world: World, table: str) -> None:
    for device_id in world.seeded.orgs["A"].device_ids:
        answer = export(world, "a-viewer", device_id, table, "parquet")
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/vnd.apache.parquet"
        schema, rows = read_parquet(answer.content)
        assert schema.names == expected_columns(table)
        for field in schema:
            if field.name in ("seq",):
                assert field.type == pa.int64()
            elif field.name.endswith("_balancing"):
                assert field.type == pa.bool_()
            elif field.name in TEXT_COLUMNS:
                assert field.type == pa.string()
            else:
                assert field.type == pa.float64(), field
        written = world.seeded.written[device_id, table]
        assert len(rows) == len(written) > 0
        assert comparable(table, rows) == comparable(table, written)


@pytest.mark.parametrize("file_format", ["csv", "parquet"])
def test_rollup_exports_hold_exactly_the_stored_rollups(world: World, file_format: str) -> None:
    device_id = world.seeded.orgs["A"].device_ids[0]
    for table in ROLLUP_TABLES:
        answer = export(world, "a-viewer", device_id, table, file_format,
                        from_s=world.seeded.now_s - 30 * 86400)  # fmt: skip
        assert answer.status_code == 200, answer.text
        read = read_csv if file_format == "csv" else read_parquet
        header, rows = read(answer.content)
        columns = list(header) if file_format == "csv" else header.names
        stored = world.store.db.query(
            f"SELECT {', '.join(columns)} FROM {table} WHERE pack_id = "
            "(SELECT id FROM packs WHERE device_id = ?) ORDER BY bucket_s",
            (device_id,),
        )
        assert stored and rows == [dict(zip(columns, row, strict=True)) for row in stored]
        assert sum(row["samples"] for row in rows) == 40


def test_export_window_is_from_inclusive_to_exclusive(world: World) -> None:
    device_id = world.seeded.orgs["A"].device_ids[0]
    written = world.seeded.written[device_id, "summary"]
    from_s, to_s = written[10]["time_s"], written[20]["time_s"]
    for file_format in ("csv", "parquet"):
        answer = export(world, "a-viewer", device_id, "summary", file_format, from_s, to_s)
        read = read_csv if file_format == "csv" else read_parquet
        assert read(answer.content)[1] == written[10:20]


@pytest.mark.parametrize("who", ["b-admin", "nobody"])
def test_exports_are_refused_to_others(world: World, who: str) -> None:
    for device_id in world.seeded.orgs["A"].device_ids:
        for table in (*EXPORT_TABLES, *ROLLUP_TABLES):
            for file_format in ("csv", "parquet"):
                answer = export(world, who, device_id, table, file_format)
                assert answer.status_code == 404, answer.text
                assert answer.json() == {"detail": f"no pack {device_id!r}"}
                assert "content-disposition" not in answer.headers
    own = export(world, "b-admin", world.seeded.orgs["B"].device_ids[0], "summary", "csv")
    assert own.status_code == 200 and len(read_csv(own.content)[1]) == 40


# --- PostgreSQL: the NUL characters refused above would fail there as a 500 -------------------
def test_null_bytes_never_reach_postgresql(tmp_path: Path) -> None:
    import secrets

    from psycopg import sql
    from tests.cloud_db import admin_connection, drop_schema, schema_url

    schema = f"cw_test_{secrets.token_hex(6)}"
    with admin_connection() as admin:  # skips when the test server is unreachable
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    store = None
    try:
        store = open_store(schema_url(schema))
        org = store.registry.add_org("Alpha Energy")
        store.registry.add_fleet(org, "alpha-buses")
        store.registry.add_pack("alpha-bus-1", "alpha-buses")
        token = store.registry.add_user("alpha-admin", org, Role.ADMIN)
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            for kwargs in ({"params": {"q": "a\x00"}}, {"params": {"fleet": "a\x00"}},
                           {"params": {"q": "%"}}):  # fmt: skip
                answer = client.get(f"/api/v1/orgs/{org}/overview", headers=headers, **kwargs)
                assert answer.status_code == (200 if kwargs["params"].get("q") == "%" else 422)
            for field in ("name", "site", "chemistry"):
                body = {"device_id": "p-9", "fleet": "alpha-buses", field: "x\x00"}
                answer = client.post(f"/api/v1/orgs/{org}/packs", headers=headers, json=body)
                assert answer.status_code == 422, answer.text
            body = {"name": "u", "role": "viewer", "email": "a\x00@b.org"}
            answer = client.post(f"/api/v1/orgs/{org}/users", headers=headers, json=body)
            assert answer.status_code == 422, answer.text
    finally:
        if store is not None:
            store.close()
        drop_schema(schema)
