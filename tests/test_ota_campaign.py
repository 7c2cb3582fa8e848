"""Campaigns end to end over real HTTP: the cloud (store, API, rollout rules) and 50 simulated
boards with their update agents. A canary that fails stops the campaign by itself before any
other device downloads a byte; a good bundle then goes out wave after wave. Downloads resume
over link outages and restarts without fetching a byte twice."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from tests.http_server import served
from tests.ota_support import GOOD_CONFIG, firmware_image, make_bundle, provision_device

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.registry import Role
from cellwarden.edge.cellular_link import CellularLink
from cellwarden.edge.ota_agent import AgentSettings
from cellwarden.edge.ota_client import UpdateServer
from cellwarden.model.edge import LinkSpec, Outage
from cellwarden.simulation.catalogue import load_builtin
from cellwarden.simulation.ota_device import SimulatedDevice

SETTINGS = AgentSettings(poll_period_s=10.0, download_bps=2_000_000.0, idle_hold_s=5.0,
                         health_window_s=10.0)  # fmt: skip
TRIPS_AT_BOOT = b'cell = "lfp-prismatic-100ah"\n'  # LFP limits on NMC cells: over-voltage
SCENARIO = "escooter-13s-urban"
FLEET_SIZE = 50


class Cloud:
    """A store with one organisation, its fleet of packs, an admin and the API served."""

    def __init__(self, tmp_path: Path, devices: list[str]) -> None:
        self.store: CloudStore = open_store(f"sqlite:///{tmp_path / 'cloud.db'}")
        registry = self.store.registry
        self.org_id = registry.add_org("scooter-share")
        self.fleet_id = registry.add_fleet(self.org_id, "scooters")
        for device_id in devices:
            registry.add_pack(device_id, "scooters")
        self.admin = registry.add_user("admin", self.org_id, Role.ADMIN)
        self.tokens = {d: self.store.ota.issue_device_token(d) for d in devices}

    def api(self, url: str) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.admin}"}
        return httpx.Client(base_url=f"{url}/api/v1/orgs/{self.org_id}", headers=headers,
                            timeout=30)  # fmt: skip


def boards(tmp_path: Path, cloud: Cloud, url: str, devices: list[str]) -> list[SimulatedDevice]:
    """One simulated board per device, each on a pack of its own (seed), all at 1.0.0."""
    scenario = load_builtin(SCENARIO)
    return [
        SimulatedDevice(scenario.model_copy(update={"seed": 100 + index}),
                        provision_device(tmp_path / device_id, device_id=device_id),
                        server=UpdateServer(url, cloud.tokens[device_id]), settings=SETTINGS,
                        clock_epoch_s=time.time())
        for index, device_id in enumerate(devices)
    ]  # fmt: skip


def run_until(fleet: list[SimulatedDevice], done, limit_s: float, step_s: float = 5.0) -> float:
    """Advance every board in lock-step until ``done()`` or ``limit_s``; the time reached."""
    now_s = fleet[0].now_s
    while now_s < limit_s and not done():
        now_s += step_s
        for board in fleet:
            board.run_until(now_s)
    return now_s


def test_failing_canary_stops_the_campaign_and_a_good_bundle_goes_out_in_waves(tmp_path):
    devices = [f"sc-{index:02d}" for index in range(FLEET_SIZE)]
    cloud = Cloud(tmp_path, devices)
    with served(create_app(cloud.store)) as url, cloud.api(url) as api:
        fleet = boards(tmp_path, cloud, url, devices)
        bad = make_bundle("1.1.0", files={"firmware.bin": firmware_image("1.1.0"),
                                          "config.toml": TRIPS_AT_BOOT})  # fmt: skip
        bundle = api.post("/ota/bundles", content=bad)
        assert bundle.status_code == 201, bundle.text
        created = api.post("/ota/campaigns", json={
            "bundle_id": bundle.json()["id"], "name": "1.1.0", "fleet_id": cloud.fleet_id,
            "canary_pct": 10, "wave_pcts": [30, 60], "failure_threshold_pct": 20,
        })  # fmt: skip
        assert created.status_code == 201, created.text
        path = f"/ota/campaigns/{created.json()['id']}"
        assert [w["devices"] for w in created.json()["waves"]] == [5, 15, 30]

        def canary_finished() -> bool:
            waves = api.get(path).json()["waves"]
            return set(waves[0]["states"]) <= {"success", "failure"}

        stopped_s = run_until(fleet, canary_finished, limit_s=1500)
        run_until(fleet, lambda: False, limit_s=stopped_s + 3 * SETTINGS.poll_period_s)
        campaign = api.get(path).json()
        assert campaign["state"] == "paused"
        assert campaign["reason"].startswith("canary wave: ") and "> 20 %" in campaign["reason"]
        assert campaign["released_waves"] == 1
        canary = [d for d in campaign["devices"] if d["wave"] == 0]
        others = [d for d in campaign["devices"] if d["wave"] > 0]
        assert len(canary) == 5 and len(others) == 45
        for deployment in canary:
            assert deployment["state"] == "failure"
            assert deployment["detail"].startswith(
                "rolled back: health check failed: protection tripped after boot"
            )
            assert deployment["bytes_served"] == len(bad)
        assert all(d["state"] == "pending" and d["bytes_served"] == 0 for d in others)
        for board in fleet:
            assert (board.agent.booted.slot, board.agent.running_version) == ("a", "1.0.0")
        untouched = {d["device_id"] for d in others}
        assert all(b.agent.state.get("last_result") is None
                   for b in fleet if b.device_id in untouched)  # fmt: skip

        # the operator cancels it and rolls out a fixed bundle
        assert api.post(f"{path}/cancel").json()["state"] == "cancelled"
        good = make_bundle("1.1.1", files={"firmware.bin": firmware_image("1.1.1"),
                                           "config.toml": GOOD_CONFIG})  # fmt: skip
        good_id = api.post("/ota/bundles", content=good).json()["id"]
        second = api.post("/ota/campaigns", json={
            "bundle_id": good_id, "name": "1.1.1", "fleet_id": cloud.fleet_id,
        }).json()  # fmt: skip
        path = f"/ota/campaigns/{second['id']}"
        run_until(fleet, lambda: api.get(path).json()["state"] == "completed",
                  limit_s=stopped_s + 3000)  # fmt: skip
        campaign = api.get(path).json()
        assert campaign["state"] == "completed", campaign["reason"]
        assert all(d["state"] == "success" for d in campaign["devices"])
        for wave in (0, 1):  # a wave was released only after the one before had finished
            finished = max(d["finished_s"] for d in campaign["devices"] if d["wave"] == wave)
            offered = min(d["offered_s"] for d in campaign["devices"] if d["wave"] == wave + 1)
            assert offered >= finished
        for board in fleet:
            assert board.agent.running_version == "1.1.1"
            assert board.agent.state["last_result"]["ok"]
            board.close()
        history = api.get(f"/packs/{devices[0]}/ota").json()
        assert history["version"] == "1.1.1"
        assert history["deployments"][0]["version"] == "1.1.1"
    cloud.store.close()


@pytest.mark.parametrize("interruption", ["link outage", "device restart"])
def test_download_resumes_without_fetching_a_byte_twice(tmp_path, interruption):
    cloud = Cloud(tmp_path, ["sc-00"])
    slow = AgentSettings(poll_period_s=5.0, download_bps=80_000.0, chunk_bytes=4096,
                         idle_hold_s=5.0, health_window_s=10.0)  # fmt: skip
    big = make_bundle("1.2.0", files={"firmware.bin": firmware_image("1.2.0", 300 * 1024),
                                      "config.toml": GOOD_CONFIG})  # fmt: skip
    scenario = load_builtin(SCENARIO)
    directory = provision_device(tmp_path / "sc-00", device_id="sc-00")
    with served(create_app(cloud.store)) as url, cloud.api(url) as api:
        bundle_id = api.post("/ota/bundles", content=big).json()["id"]
        body = {"bundle_id": bundle_id, "name": "1.2.0", "device_ids": ["sc-00"]}
        path = f"/ota/campaigns/{api.post('/ota/campaigns', json=body).json()['id']}"
        outages = [Outage(at_s=15.0, duration_s=60.0)] if interruption == "link outage" else []
        link = CellularLink(LinkSpec(outages=outages), 3600.0, seed=1)

        def board() -> SimulatedDevice:
            return SimulatedDevice(scenario, directory, settings=slow, link=link,
                                   server=UpdateServer(url, cloud.tokens["sc-00"]),
                                   clock_epoch_s=time.time())  # fmt: skip

        device = board()
        device.run_until(20.0)
        part = directory / "ota" / "bundle.part"
        assert 0 < part.stat().st_size < len(big), "the download is under way"
        if interruption == "device restart":
            device.close()
            device = board()  # a power cut: the same flash, a new process
        else:
            held = part.stat().st_size
            device.run_until(70.0)
            assert part.stat().st_size == held, "nothing is fetched while the link is down"
        run_until([device], lambda: api.get(path).json()["state"] == "completed", 1500)
        deployment = api.get(path).json()["devices"][0]
        assert deployment["state"] == "success", deployment["detail"]
        assert deployment["bytes_served"] == len(big)
        assert link.bytes_by_kind["ota"] == len(big)
        device.close()
    cloud.store.close()
