"""Campaign rules and the device API on both engines: waves, offers, reports, pause on the
failure rate, resume, cancel, wave timeouts, and the API's refusals (tokens, other devices'
deployments, ranges, final deployments)."""

from __future__ import annotations

import httpx
import pytest
from tests.http_server import served
from tests.ota_support import make_bundle

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.ota.rollout import PAUSED, RUNNING, WaveCounts, judge, wave_sizes
from cellwarden.cloud.store.ota_store import CampaignSpec, OtaConflictError, OtaError
from cellwarden.cloud.store.registry import Role
from cellwarden.ota.bundle import inspect_bundle

BUNDLE = make_bundle("3.0.0")


@pytest.mark.parametrize("devices, canary, waves, expected", [
    (50, 10, [30, 60], [5, 15, 30]),
    (7, 10, [30, 60], [1, 2, 4]),
    (1, 10, [30, 60], [1]),
    (10, 100, [50], [10]),
    (20, 5, [10], [1, 2, 17]),
    (3, 50, [50, 50], [2, 1]),
])  # fmt: skip
def test_wave_sizes_cover_every_device_once(devices, canary, waves, expected):
    assert wave_sizes(devices, canary, waves) == expected


def test_judge_pauses_above_the_threshold_and_releases_finished_waves():
    waves = [WaveCounts(5, 0, 0), WaveCounts(15, 0, 0)]
    assert judge(1, waves, 20.0).state == RUNNING
    two_failed = [WaveCounts(5, 0, 2), WaveCounts(15, 0, 0)]
    assert judge(1, two_failed, 20.0).state == RUNNING  # too few finished to judge
    verdict = judge(1, [WaveCounts(5, 1, 2), WaveCounts(15, 0, 0)], 20.0)
    assert verdict.state == PAUSED
    assert verdict.reason == "canary wave: 2 of 3 finished devices failed (67 % > 20 %)"
    assert judge(1, [WaveCounts(5, 5, 0), WaveCounts(15, 0, 0)], 20.0).released_waves == 2
    assert judge(2, [WaveCounts(5, 5, 0), WaveCounts(15, 13, 2)], 20.0).state == "completed"
    assert judge(2, [WaveCounts(5, 4, 1), WaveCounts(15, 12, 3)], 20.0).state == "completed"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def fleet(store):
    registry = store.registry
    org_id = registry.add_org("ota-org")
    registry.add_fleet(org_id, "ota-fleet")
    devices = [f"d-{index}" for index in range(10)]
    for device_id in devices:
        registry.add_pack(device_id, "ota-fleet")
    store.ota.clock = Clock()
    bundle_id = store.ota.add_bundle(org_id, BUNDLE, inspect_bundle(BUNDLE), "tester")["id"]
    tokens = {d: store.ota.issue_device_token(d) for d in devices}
    refs = {d: store.ota.device_for_token(tokens[d]) for d in devices}
    return store, org_id, bundle_id, devices, refs


def wave_of(store, org_id, campaign_id, wave):
    devices = store.ota.campaign(org_id, campaign_id)["devices"]
    return [d for d in devices if d["wave"] == wave]


def test_offers_follow_the_waves_and_a_failing_canary_pauses(fleet):
    store, org_id, bundle_id, devices, refs = fleet
    spec = CampaignSpec(bundle_id, "c", devices, canary_pct=30, wave_pcts=(70,),
                        failure_threshold_pct=40)  # fmt: skip
    campaign_id = store.ota.create_campaign(org_id, spec, "t")
    canary = [d["device_id"] for d in wave_of(store, org_id, campaign_id, 0)]
    assert len(canary) == 3
    for device_id in devices:
        offer = store.ota.next_offer(refs[device_id], "1.0.0")
        assert (offer is not None) == (device_id in canary)
    for device_id, result in zip(canary, ("failure", "failure", "success"), strict=True):
        deployment_id = store.ota.next_offer(refs[device_id], "1.0.0")["deployment_id"]
        store.ota.report(refs[device_id], deployment_id, result, None, "x", None)
    campaign = store.ota.campaign(org_id, campaign_id)
    assert campaign["state"] == "paused" and campaign["released_waves"] == 1
    assert campaign["reason"] == "canary wave: 2 of 3 finished devices failed (67 % > 40 %)"
    assert all(store.ota.next_offer(refs[d], "1.0.0") is None for d in devices)
    with pytest.raises(OtaConflictError, match="final"):
        store.ota.report(refs[canary[0]], campaign["devices"][0]["id"], "success", None, "", None)

    resumed = store.ota.control(org_id, campaign_id, "resume")
    assert resumed["state"] == "running" and resumed["released_waves"] == 2
    later = [d for d in devices if d not in canary]
    assert all(store.ota.next_offer(refs[d], "1.0.0") is not None for d in later)
    for device_id in later:
        offer = store.ota.next_offer(refs[device_id], "3.0.0")  # it reports the new version
        assert offer is None
    assert store.ota.campaign(org_id, campaign_id)["state"] == "completed"
    with pytest.raises(OtaConflictError, match="completed"):
        store.ota.control(org_id, campaign_id, "pause")


def test_unfinished_devices_time_out_as_failures(fleet):
    store, org_id, bundle_id, devices, refs = fleet
    spec = CampaignSpec(bundle_id, "c", devices[:4], canary_pct=50, wave_pcts=(),
                        wave_timeout_s=600)  # fmt: skip
    campaign_id = store.ota.create_campaign(org_id, spec, "t")
    canary = [d["device_id"] for d in wave_of(store, org_id, campaign_id, 0)]
    for device_id in canary:
        store.ota.next_offer(refs[device_id], "1.0.0")
    store.ota.clock.now += 601
    campaign = store.ota.campaign(org_id, campaign_id)
    assert campaign["state"] == "paused"
    timed_out = [d for d in campaign["devices"] if d["wave"] == 0]
    assert all(d["state"] == "failure" and d["detail"].startswith("timed out") for d in timed_out)


def test_refusals_name_the_problem(fleet):
    store, org_id, bundle_id, devices, refs = fleet
    with pytest.raises(OtaError, match="no pack"):
        store.ota.create_campaign(org_id, CampaignSpec(bundle_id, "c", ["ghost"]), "t")
    with pytest.raises(OtaError, match="no bundle 999"):
        store.ota.create_campaign(org_id, CampaignSpec(999, "c", devices), "t")
    with pytest.raises(OtaConflictError, match="stored already"):
        store.ota.add_bundle(org_id, BUNDLE, inspect_bundle(BUNDLE), "tester")
    campaign_id = store.ota.create_campaign(org_id, CampaignSpec(bundle_id, "c", devices), "t")
    listed = store.ota.campaign(org_id, campaign_id)["devices"]
    first, second = listed[0]["device_id"], listed[1]["device_id"]  # the canary, and another
    deployment = store.ota.next_offer(refs[first], "1.0.0")
    with pytest.raises(OtaError, match="unknown state 'bricked'"):
        store.ota.report(refs[first], deployment["deployment_id"], "bricked", None, "", None)
    with pytest.raises(LookupError):
        store.ota.report(refs[second], deployment["deployment_id"], "success", None, "", None)
    assert store.ota.control(org_id, campaign_id, "cancel")["state"] == "cancelled"
    assert store.ota.next_offer(refs[first], "1.0.0") is None


def test_device_api_over_http(fleet):
    store, org_id, bundle_id, devices, refs = fleet
    store.ota.create_campaign(org_id, CampaignSpec(bundle_id, "c", devices[:1]), "t")
    token = store.ota.issue_device_token(devices[0])
    other = store.ota.issue_device_token(devices[1])
    admin = store.registry.add_user("ota-admin", org_id, Role.ADMIN)
    with served(create_app(store)) as url:
        device = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        stranger = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {other}"})
        assert httpx.get(f"{url}/device/v1/ota/next").status_code == 401
        user_token = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(f"{url}/device/v1/ota/next", headers=user_token).status_code == 401
        assert stranger.get("/device/v1/ota/next").status_code == 204
        offer = device.get("/device/v1/ota/next", params={"version": "1.0.0"}).json()
        assert (offer["size"], offer["version"]) == (len(BUNDLE), "3.0.0")
        assert stranger.get(offer["url"]).status_code == 404
        part = device.get(offer["url"], headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == BUNDLE[100:200]
        assert part.headers["content-range"] == f"bytes 100-199/{len(BUNDLE)}"
        tail = device.get(offer["url"], headers={"Range": f"bytes={len(BUNDLE) - 5}-"})
        assert tail.content == BUNDLE[-5:]
        for bad in (f"bytes={len(BUNDLE)}-", "bytes=5-2", "pages=1-2", "bytes=1-2,4-5"):
            assert device.get(offer["url"], headers={"Range": bad}).status_code == 416, bad
        status = f"/device/v1/ota/deployments/{offer['deployment_id']}/status"
        assert stranger.post(status, json={"state": "success"}).status_code == 404
        assert device.post(status, json={"state": "bricked"}).status_code == 422
        assert device.post(status, json={"state": "downloading", "progress_pct": 101}
                           ).status_code == 422  # fmt: skip
        assert device.post(status, json={"state": "success", "version": "3.0.0"}).status_code == 204
        assert device.post(status, json={"state": "failure"}).status_code == 409
        deployment = store.ota.device_history(refs[devices[0]].pack_id)[0]
        assert deployment["bytes_served"] == 105
        assert [entry["state"] for entry in deployment["log"]] == ["offered", "success"]
        api = httpx.Client(base_url=f"{url}/api/v1/orgs/{org_id}",
                           headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
        garbage = api.post("/ota/bundles", content=b"not a bundle at all")
        assert garbage.status_code == 422 and "bad magic" in garbage.json()["detail"]
        assert api.post("/ota/bundles", content=BUNDLE).status_code == 409
        history = api.get(f"/packs/{devices[0]}/ota").json()
        assert history["version"] == "3.0.0" and history["deployments"][0]["state"] == "success"
