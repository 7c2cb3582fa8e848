"""The update routes over real HTTP on both engines: uploads (their own 64 MiB limit, chunked
bodies, refusals that store nothing), campaign creation's refusals, pause/resume/cancel by
role, the whole bundle without a range, and the rules' edges (reports before an offer, a resume
after a long pause, numeric version comparison); concurrent reports and timeouts that never
fail with a database error."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import httpx
import pytest
from tests.http_server import served
from tests.ota_support import GOOD_CONFIG, firmware_image, make_bundle

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.api.device_ota_routes import MAX_RANGE_BYTES
from cellwarden.cloud.api.limits import MAX_BODY_BYTES, MAX_BUNDLE_BYTES
from cellwarden.cloud.store.ota_store import CampaignSpec, OtaConflictError, OtaError
from cellwarden.cloud.store.registry import Role
from cellwarden.ota.bundle import inspect_bundle

BUNDLE = make_bundle("2.0.0")
DEVICES = [f"p-{index:02d}" for index in range(10)]


class Clock:
    def __init__(self) -> None:
        self.now = 2_000_000.0

    def __call__(self) -> float:
        return self.now


class World:
    """One organisation with a fleet of ten packs, a user per role, a second organisation, the
    API served, and a client per role."""

    def __init__(self, store, url: str) -> None:
        self.store, self.url = store, url
        registry = store.registry
        self.org_id = registry.add_org("updates-org")
        self.fleet_id = registry.add_fleet(self.org_id, "updates-fleet")
        self.empty_fleet_id = registry.add_fleet(self.org_id, "empty-fleet")
        for device_id in DEVICES:
            registry.add_pack(device_id, "updates-fleet")
        self.other_org = registry.add_org("other-org")
        registry.add_fleet(self.other_org, "other-fleet")
        registry.add_pack("o-00", "other-fleet")
        self.tokens = {role: registry.add_user(f"{role.value}-u", self.org_id, role)
                       for role in Role}  # fmt: skip
        self.other_admin = registry.add_user("other-admin", self.other_org, Role.ADMIN)

    def api(self, role: Role = Role.ADMIN, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.tokens[role]}"}
        return httpx.Client(base_url=f"{self.url}/api/v1/orgs/{self.org_id}", timeout=60,
                            headers=headers)  # fmt: skip

    def device(self, device_id: str) -> httpx.Client:
        token = self.store.ota.issue_device_token(device_id)
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def counts(self) -> dict[str, int]:
        tables = ("ota_bundles", "ota_campaigns", "ota_deployments", "ota_deployment_log")
        return {t: self.store.db.query(f"SELECT COUNT(*) FROM {t}")[0][0] for t in tables}


@pytest.fixture
def world(store) -> Iterator[World]:
    store.ota.clock = Clock()
    with served(create_app(store)) as url:
        yield World(store, url)


def raw_post(world: World, path: str, declared_bytes: int) -> bytes:
    """The start of the answer to a POST that declares a body it never sends."""
    host, port = world.url.removeprefix("http://").split(":")
    request = (f"POST /api/v1/orgs/{world.org_id}{path} HTTP/1.1\r\nHost: {host}\r\n"
               f"Authorization: Bearer {world.tokens[Role.ADMIN]}\r\n"
               f"Content-Length: {declared_bytes}\r\n\r\n")  # fmt: skip
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request.encode())
        return sock.recv(4096)


def chunked(total_bytes: int, chunk_bytes: int = 1 << 20) -> Iterator[bytes]:
    """A body without Content-Length (sent chunked)."""
    block = b"\0" * chunk_bytes
    for start in range(0, total_bytes, chunk_bytes):
        yield block[: min(chunk_bytes, total_bytes - start)]


# --- uploads ------------------------------------------------------------------------------------
def test_upload_has_its_own_limit_and_refusals_store_nothing(world: World) -> None:
    before = world.counts()
    with world.api() as api:
        flipped = bytearray(BUNDLE)
        flipped[len(flipped) // 2] ^= 0x01
        refused = api.post("/ota/bundles", content=bytes(flipped))
        assert refused.status_code == 422 and refused.json()["detail"].startswith("bundle refused")
        assert api.post("/ota/bundles", content=b"").status_code == 422
        declared = raw_post(world, "/ota/bundles", MAX_BUNDLE_BYTES + 1)
        assert declared.startswith(b"HTTP/1.1 413"), declared[:200]
        streamed = api.post("/ota/bundles", content=chunked(MAX_BUNDLE_BYTES + 1))
        assert streamed.status_code == 413, streamed.text
        assert str(MAX_BUNDLE_BYTES) in streamed.json()["detail"]
        assert world.counts() == before
        # a bundle streamed in small chunks is stored whole
        sent = (BUNDLE[i : i + 4096] for i in range(0, len(BUNDLE), 4096))
        stored = api.post("/ota/bundles", content=sent)
        assert stored.status_code == 201, stored.text
        assert (stored.json()["size"], stored.json()["version"]) == (len(BUNDLE), "2.0.0")
        assert api.post("/ota/bundles", content=BUNDLE).status_code == 409
        # every other route keeps the 64 KiB limit
        big = api.post("/ota/campaigns", content=chunked(MAX_BODY_BYTES + 1, 4096),
                       headers={"Content-Type": "application/json"})  # fmt: skip
        assert big.status_code == 413
    for role in (Role.VIEWER, Role.OPERATOR):
        with world.api(role) as api:
            answer = api.post("/ota/bundles", content=make_bundle("2.0.1"))
            assert answer.status_code == 403 and "admin role" in answer.json()["detail"]
    assert world.counts()["ota_bundles"] == 1
    with world.api(token=world.other_admin) as stranger:
        assert stranger.post("/ota/bundles", content=BUNDLE).status_code == 404
        assert stranger.get("/ota/bundles").status_code == 404


# --- campaigns ----------------------------------------------------------------------------------
@pytest.mark.parametrize("change, message", [
    ({"device_ids": ["p-00"]}, "either fleet_id or device_ids"),
    ({"fleet_id": None}, "either fleet_id or device_ids"),
    ({"fleet_id": "EMPTY"}, "has no packs in this organisation"),
    ({"fleet_id": "OTHER"}, "has no packs in this organisation"),
    ({"fleet_id": None, "device_ids": ["p-00", "o-00"]}, "no pack(s) o-00"),
    ({"bundle_id": 999}, "no bundle 999"),
    ({"canary_pct": 0}, "canary_pct"),
    ({"wave_pcts": [30, 101]}, "wave_pcts"),
    ({"failure_threshold_pct": -1}, "failure_threshold_pct"),
    ({"wave_timeout_s": 0}, "wave_timeout_s"),
    ({"name": ""}, "name"),
    ({"surprise": 1}, "surprise"),
])  # fmt: skip
def test_campaign_refusals_name_the_problem(world: World, change, message) -> None:
    with world.api() as api:
        bundle_id = api.post("/ota/bundles", content=BUNDLE).json()["id"]
        body = {"bundle_id": bundle_id, "name": "2.0.0", "fleet_id": world.fleet_id} | change
        if body.get("fleet_id") == "EMPTY":
            body["fleet_id"] = world.empty_fleet_id
        if body.get("fleet_id") == "OTHER":
            body["fleet_id"] = world.store.registry.fleet("other-fleet")[0]
        if body.get("fleet_id") is None:
            body.pop("fleet_id")
        before = world.counts()
        answer = api.post("/ota/campaigns", json=body)
        assert answer.status_code == 422, answer.text
        assert message in answer.text
        assert world.counts() == before


def test_store_refuses_out_of_range_rollout_parameters(store) -> None:
    org_id = store.registry.add_org("o")
    store.registry.add_fleet(org_id, "f")
    store.registry.add_pack("p", "f")
    bundle_id = store.ota.add_bundle(org_id, BUNDLE, inspect_bundle(BUNDLE), "t")["id"]
    for change, message in [
        ({"canary_pct": float("nan")}, "canary_pct nan"),
        ({"wave_pcts": (0.0,)}, "wave percentage 0"),
        ({"wave_pcts": (5.0,) * 21}, "at most 20"),
        ({"failure_threshold_pct": 120.0}, "failure_threshold_pct 120"),
        ({"wave_timeout_s": float("inf")}, "wave_timeout_s inf"),
        ({"name": " "}, "campaign name"),
    ]:
        spec = CampaignSpec(bundle_id, "c", ["p"])
        with pytest.raises(OtaError, match=message):
            store.ota.create_campaign(org_id, CampaignSpec(**spec.__dict__ | change), "t")
    assert store.ota.campaigns(org_id) == []


def test_operators_pause_resume_and_cancel_and_viewers_only_read(world: World) -> None:
    with world.api() as admin:
        bundle_id = admin.post("/ota/bundles", content=BUNDLE).json()["id"]
    body = {"bundle_id": bundle_id, "name": "2.0.0", "fleet_id": world.fleet_id}
    with world.api(Role.VIEWER) as viewer:
        assert viewer.post("/ota/campaigns", json=body).status_code == 403
    with world.api(Role.OPERATOR) as operator:
        created = operator.post("/ota/campaigns", json=body)
        assert created.status_code == 201, created.text
        campaign = created.json()
        assert [w["devices"] for w in campaign["waves"]] == [1, 3, 6]
        assert [w["released"] for w in campaign["waves"]] == [True, False, False]
        assert len(campaign["devices"]) == 10 and campaign["created_by"] == "operator-u"
        path = f"/ota/campaigns/{campaign['id']}"
        with world.api(Role.VIEWER) as viewer:
            assert viewer.get(path).json()["state"] == "running"
            assert [c["id"] for c in viewer.get("/ota/campaigns").json()] == [campaign["id"]]
            answer = viewer.post(f"{path}/pause")
            assert answer.status_code == 403 and "operator role" in answer.json()["detail"]
        paused = operator.post(f"{path}/pause").json()
        assert (paused["state"], paused["reason"]) == ("paused", "paused by an operator")
        again = operator.post(f"{path}/pause")
        assert again.status_code == 409 and "cannot pause" in again.json()["detail"]
        assert operator.post(f"{path}/resume").json()["state"] == "running"
        assert operator.post(f"{path}/stop").status_code == 422
        assert operator.post(f"{path}/cancel").json()["state"] == "cancelled"
        assert operator.post(f"{path}/resume").status_code == 409
        assert operator.get("/ota/campaigns/987654").status_code == 404
    with world.api(token=world.other_admin) as stranger:
        stranger.base_url = f"{world.url}/api/v1/orgs/{world.other_org}"
        assert stranger.get(path).status_code == 404
        assert stranger.post(f"{path}/pause").status_code == 404
        assert stranger.get("/packs/p-00/ota").status_code == 404


# --- device API ---------------------------------------------------------------------------------
def test_whole_bundle_without_a_range_and_long_ranges_capped(world: World) -> None:
    big = make_bundle("2.1.0", files={"firmware.bin": firmware_image("2.1.0", 1_300_000),
                                      "config.toml": GOOD_CONFIG})  # fmt: skip
    with world.api() as admin:
        bundle_id = admin.post("/ota/bundles", content=big).json()["id"]
        admin.post("/ota/campaigns", json={"bundle_id": bundle_id, "name": "big",
                                           "device_ids": ["p-00"]})  # fmt: skip
    with world.device("p-00") as device:
        offer = device.get("/device/v1/ota/next", params={"version": "2.0.0"}).json()
        whole = device.get(offer["url"])
        assert whole.status_code == 200 and whole.content == big
        assert whole.headers["content-length"] == str(len(big))
        first = device.get(offer["url"], headers={"Range": "bytes=0-"})
        assert first.status_code == 206 and first.content == big[:MAX_RANGE_BYTES]
        assert first.headers["content-range"] == f"bytes 0-{MAX_RANGE_BYTES - 1}/{len(big)}"
    history = world.store.ota.device_history(world.store.history.pack("p-00", [world.org_id]).id)
    assert history[0]["bytes_served"] == len(big) + MAX_RANGE_BYTES


def test_reports_before_an_offer_and_versions(world: World) -> None:
    ota = world.store.ota
    bundle_id = ota.add_bundle(world.org_id, BUNDLE, inspect_bundle(BUNDLE), "t")["id"]
    spec = CampaignSpec(bundle_id, "c", DEVICES[:2], canary_pct=50, wave_pcts=())
    campaign_id = ota.create_campaign(world.org_id, spec, "t")
    devices = ota.campaign(world.org_id, campaign_id)["devices"]
    canary, later = devices[0], devices[1]
    with world.device(later["device_id"]) as device:
        status = f"/device/v1/ota/deployments/{later['id']}/status"
        answer = device.post(status, json={"state": "failure"})
        assert answer.status_code == 409 and "not been offered" in answer.json()["detail"]
    with world.device(canary["device_id"]) as device:
        assert device.get("/device/v1/ota/next", params={"version": "1.9.0"}).status_code == 200
        assert device.get("/device/v1/ota/next").status_code == 200  # no version: kept
        shown = ota.campaign(world.org_id, campaign_id)["devices"][0]
        assert (shown["from_version"], shown["version"]) == ("1.9.0", "1.9.0")
        assert device.get("/device/v1/ota/next", params={"version": "2.0"}).status_code == 204
    finished = ota.campaign(world.org_id, campaign_id)["devices"][0]
    assert (finished["state"], finished["detail"]) == ("success", "already at version 2.0.0")


def test_resume_after_a_long_pause_does_not_time_devices_out(world: World) -> None:
    ota = world.store.ota
    bundle_id = ota.add_bundle(world.org_id, BUNDLE, inspect_bundle(BUNDLE), "t")["id"]
    spec = CampaignSpec(bundle_id, "c", DEVICES[:5], canary_pct=100, wave_pcts=(),
                        failure_threshold_pct=50, wave_timeout_s=3600)  # fmt: skip
    campaign_id = ota.create_campaign(world.org_id, spec, "t")
    refs = {d: ota.device_for_token(ota.issue_device_token(d)) for d in DEVICES[:5]}
    offers = {d: ota.next_offer(refs[d], "1.0.0")["deployment_id"] for d in DEVICES[:5]}
    for device_id in DEVICES[:3]:
        ota.report(refs[device_id], offers[device_id], "failure", None, "bad", None)
    assert ota.campaign(world.org_id, campaign_id)["state"] == "paused"
    ota.clock.now += 10 * 3600  # the operator looks the next morning
    resumed = ota.control(world.org_id, campaign_id, "resume")
    assert resumed["state"] == "running", resumed["reason"]
    assert {d["state"] for d in resumed["devices"]} == {"failure", "offered"}
    for device_id in DEVICES[3:5]:
        ota.report(refs[device_id], offers[device_id], "success", None, "", "2.0.0")
    assert ota.campaign(world.org_id, campaign_id)["state"] == "completed"


# --- concurrency --------------------------------------------------------------------------------
def run_threads(jobs) -> list[BaseException]:
    """Run every job in a thread of its own, started together; the unexpected exceptions."""
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(jobs))

    def run(job) -> None:
        barrier.wait()
        try:
            job()
        except OtaConflictError:
            pass
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_concurrent_reports_and_timeouts_finish_each_deployment_once(world: World) -> None:
    ota = world.store.ota
    bundle_id = ota.add_bundle(world.org_id, BUNDLE, inspect_bundle(BUNDLE), "t")["id"]
    spec = CampaignSpec(bundle_id, "c", DEVICES, canary_pct=100, wave_pcts=(),
                        failure_threshold_pct=100, wave_timeout_s=600)  # fmt: skip
    campaign_id = ota.create_campaign(world.org_id, spec, "t")
    refs = {d: ota.device_for_token(ota.issue_device_token(d)) for d in DEVICES}
    offers = {d: ota.next_offer(refs[d], "1.0.0")["deployment_id"] for d in DEVICES}
    ota.clock.now += 601  # every deployment is due to time out as the reports come in
    jobs = []
    for device_id in DEVICES:
        for result in ("success", "failure"):  # two final reports race for each deployment
            jobs.append(lambda d=device_id, r=result: ota.report(refs[d], offers[d], r, None,
                                                                 "", None))  # fmt: skip
        jobs.append(lambda d=device_id: ota.next_offer(refs[d], "1.0.0"))
        jobs.append(lambda: ota.campaign(world.org_id, campaign_id))
    assert run_threads(jobs) == []
    campaign = ota.campaign(world.org_id, campaign_id)
    assert campaign["state"] == "completed"
    finals = world.store.db.query(
        "SELECT deployment_id, COUNT(*) FROM ota_deployment_log WHERE state IN "
        "('success', 'failure') GROUP BY deployment_id"
    )
    assert sorted(count for _, count in finals) == [1] * len(DEVICES)
