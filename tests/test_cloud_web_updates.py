"""The dashboard's updates page in a real browser (Debian's chromium via Playwright).

A SQLite store holds a campaign of 10 packs whose canary failed (reported through the store's
device path, as devices do): a viewer reads the paused state, its reason and each device's
status and detail against the store; an operator resumes it from the page.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.http_server import served
from tests.ota_support import make_bundle
from tests.test_cloud_web import CHROMIUM, Site, browser, page, sign_in  # noqa: F401

from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.ota_store import CampaignSpec
from cellwarden.cloud.store.registry import Role
from cellwarden.ota.bundle import inspect_bundle

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"
)
ROLLED_BACK = "rolled back: health check failed: protection tripped after boot: B1103"


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, int, str]]:
    folder = tmp_path_factory.mktemp("web-updates")
    store = open_store(f"sqlite:///{folder / 'cloud.db'}")
    registry = store.registry
    org = registry.add_org("Scooter Share")
    registry.add_fleet(org, "scooters")
    devices = [f"sc-{index}" for index in range(10)]
    for device_id in devices:
        registry.add_pack(device_id, "scooters")
    bundle = make_bundle("1.4.0")
    bundle_id = store.ota.add_bundle(org, bundle, inspect_bundle(bundle), "admin")["id"]
    spec = CampaignSpec(bundle_id, "spring release", devices, canary_pct=30,
                        failure_threshold_pct=20)  # fmt: skip
    campaign_id = store.ota.create_campaign(org, spec, "admin")
    canary = [d["device_id"] for d in store.ota.campaign(org, campaign_id)["devices"]][:3]
    for device_id in canary:
        device = store.ota.device_for_token(store.ota.issue_device_token(device_id))
        offer = store.ota.next_offer(device, "1.3.0")
        store.ota.report(device, offer["deployment_id"], "downloading", 50.0, "", None)
        store.ota.report(device, offer["deployment_id"], "failure", None, ROLLED_BACK, "1.3.0")
    names = {role.value: f"{role.value}-user" for role in Role}
    tokens = {role.value: registry.add_user(names[role.value], org, role) for role in Role}
    shots = folder / "screenshots"
    shots.mkdir()
    try:
        with served(create_app(store)) as url:
            yield Site(url, tokens, names, shots), campaign_id, canary[0]
    finally:
        store.close()


@pytest.fixture(scope="module")
def site(stored) -> Site:
    return stored[0]


def test_viewer_sees_the_paused_campaign_and_each_device(page, stored) -> None:  # noqa: F811
    site, campaign_id, failed_device = stored
    sign_in(page, site, "viewer")
    page.get_by_test_id("nav-updates").click()
    row = page.locator(f'[data-testid="campaign-row"][data-campaign-id="{campaign_id}"]')
    row.wait_for()
    assert row.get_attribute("data-state") == "paused"
    assert "canary wave: 3 of 3 finished devices failed (100 % > 20 %)" in row.inner_text()
    assert page.get_by_test_id("campaign-resume").count() == 0  # a viewer may not act
    row.get_by_role("link").click()
    page.get_by_test_id("campaign-state").filter(has_text="paused").wait_for()
    rows = page.get_by_test_id("deployment-row")
    rows.first.wait_for()
    assert rows.count() == 10
    failed = page.locator(f'[data-testid="deployment-row"][data-device-id="{failed_device}"]')
    assert failed.get_attribute("data-state") == "failure"
    assert failed.get_by_test_id("deployment-detail").inner_text() == ROLLED_BACK
    assert failed.get_by_test_id("deployment-version").inner_text() == "1.3.0"  # running
    pending = page.locator('[data-testid="deployment-row"][data-state="pending"]')
    assert pending.count() == 7


def test_operator_resumes_the_campaign(page, stored) -> None:  # noqa: F811
    site, campaign_id, _ = stored
    sign_in(page, site, "operator")
    page.goto(f"{site.url}/#/updates/{campaign_id}")
    page.get_by_test_id("campaign-resume").click()
    page.get_by_test_id("updates-notice").filter(has_text="is running").wait_for()
    page.get_by_test_id("campaign-state").filter(has_text="running").wait_for()
    assert "wave 1 (3, released): 3 pending" in page.get_by_test_id("wave-list").inner_text()
