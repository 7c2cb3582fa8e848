"""The dashboard's fleet analytics page in a real browser (Debian's chromium via Playwright).

A SQLite store holds a simulated fleet (16 packs over 450 days, half of them given a
developing fault) imported into fleet "scooters" and its analysis, made once. The test signs
in as a viewer and reads the ranking, the forecast and the developing faults against the
stored analysis, picks a pack and checks from a screenshot that the chart draws its daily
SoH and the forecast band; an operator then runs the analysis from the page.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from tests.http_server import served
from tests.test_cloud_web import (  # noqa: F401 - browser and page are fixtures
    CHROMIUM,
    Site,
    _distance,
    _image,
    _line_pixels,
    attr,
    browser,
    page,
    sign_in,
    wait_attr,
)

from cellwarden.cloud.analytics.scheduled_analytics import analyse_stored_fleet
from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import open_store
from cellwarden.cloud.store.daily_history import parse_import
from cellwarden.cloud.store.registry import Role
from cellwarden.simulation.fleet.simulator import FleetSpec, simulate_fleet

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"
)
BAND = (217, 72, 15)  # the forecast band's colour (chart.js), its whiskers and point
BAND_FILL = tuple(255 + 0.35 * (c - 255) for c in BAND)  # the bar: 35 % over white


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, int, dict]]:
    """The site, the fleet's id and its analysis as the API gives it."""
    folder = tmp_path_factory.mktemp("web-analytics")
    store = open_store(f"sqlite:///{folder / 'cloud.db'}")
    registry = store.registry
    org = registry.add_org("Acme Transit")
    fleet_id = registry.add_fleet(org, "scooters")
    history = simulate_fleet(FleetSpec(packs=16, days=450, seed=0, fault_fraction=0.5)).history
    store.daily.import_history(fleet_id, parse_import(history), create_packs=True)
    analysis = analyse_stored_fleet(store, fleet_id)
    assert analysis["prognosis"], "the simulated fleet should have a developing fault"
    names = {role.value: f"{role.value}-user" for role in Role}
    tokens = {role.value: registry.add_user(names[role.value], org, role) for role in Role}
    shots = folder / "screenshots"
    shots.mkdir()
    try:
        with served(create_app(store)) as url:
            yield Site(url, tokens, names, shots), fleet_id, analysis
    finally:
        store.close()


@pytest.fixture(scope="module")
def site(stored: tuple[Site, int, dict]) -> Site:
    return stored[0]


def test_analytics_page(page, stored: tuple[Site, int, dict]) -> None:  # noqa: F811
    site, fleet_id, analysis = stored
    sign_in(page, site, "viewer")
    page.get_by_test_id("nav-analytics").click()
    page.wait_for_url(f"**/#/analytics/{fleet_id}")
    assert page.get_by_test_id("nav-analytics").get_attribute("aria-current") == "page"
    assert page.get_by_test_id("analytics-run").count() == 0  # a viewer may not run it
    status = page.get_by_test_id("analytics-status")
    status.filter(has_text=f"As of {analysis['as_of']}").wait_for()

    # the ranking, fastest fade first, with its outliers' reasons
    rows = page.get_by_test_id("analytics-ranking-row")
    rows.first.wait_for()
    ranking = analysis["ranking"]
    assert [attr(rows.nth(i), "data-pack") for i in range(rows.count())] == [
        r["pack_id"] for r in ranking
    ]
    top = rows.first.inner_text()
    assert f"{ranking[0]['soh_now_pct']:.1f} %" in top and ranking[0]["pack_type"] in top
    assert f"{ranking[0]['fade_pct_per_year']:.2f} %/year" in top
    for i, r in enumerate(ranking):
        outlier = rows.nth(i).get_by_test_id("analytics-outlier").inner_text()
        assert outlier == (f"outlier {r['reason']}" if r["outlier"] else "—")
    link = rows.first.get_by_role("link")
    assert attr(link, "href") == f"#/pack/{ranking[0]['device_id']}"

    # the developing faults with their reasons
    faults = page.get_by_test_id("analytics-prognosis-row")
    assert faults.count() == len(analysis["prognosis"])
    for i, flag in enumerate(analysis["prognosis"]):
        row = faults.nth(i)
        assert attr(row, "data-kind") == flag["fault_kind"]
        assert row.get_by_test_id("prognosis-reason").inner_text() == flag["reason"]
        assert flag["first_flag_date"] in row.inner_text()

    # the forecast; choosing a pack draws its daily SoH and the band at the horizon
    forecast = page.get_by_test_id("analytics-forecast-row")
    assert forecast.count() == len(analysis["forecast"])
    chosen = analysis["forecast"][3]
    row = page.locator(f'[data-testid="analytics-forecast-row"][data-pack="{chosen["pack_id"]}"]')
    assert f"{chosen['soh_p10_pct']:.1f} – {chosen['soh_p90_pct']:.1f} %" in row.inner_text()
    row.get_by_test_id("forecast-show").click()
    chart = page.get_by_test_id("forecast-chart")
    wait_attr(page, "forecast-chart", "data-pack", f"v === '{chosen['device_id']}'")
    wait_attr(page, "forecast-chart", "data-state", "v === 'ready'")
    assert attr(chart, "data-band") == "drawn"
    days = api_json(page, f"/api/v1/packs/{chosen['device_id']}/daily")["rows"]
    known = [day for day in days if day["soh_capacity_pct"] is not None]
    assert int(attr(chart, "data-points")) == len(known) > 300  # a point per day with an SoH
    assert "chosen" in (row.get_attribute("class") or "")
    x, top, bottom = (int(attr(chart, f"data-band-{k}")) for k in ("x", "top", "bottom"))
    assert bottom > top
    png = chart.screenshot(path=site.screenshots / "forecast.png")
    image = _image(png)
    band = [image.getpixel((x + dx, y)) for dx in range(-4, 5) for y in range(top, bottom + 1)]
    tinted = sum(banded(pixel) for pixel in band)
    assert tinted > 0.8 * len(band), (tinted, len(band))  # the bar from p10 to p90
    assert not any(banded(image.getpixel((x, y))) for y in (top - 12, bottom + 12))
    assert _line_pixels(png) > 200  # the daily SoH before the forecast
    page.screenshot(path=site.screenshots / "analytics-viewer.png", full_page=True)

    # an operator runs the analysis from the page
    page.get_by_test_id("sign-out").click()
    sign_in(page, site, "operator")
    page.get_by_test_id("nav-analytics").click()
    page.get_by_test_id("analytics-ranking-row").first.wait_for()
    page.get_by_test_id("analytics-run").click()
    notice = page.get_by_test_id("analytics-notice")
    notice.filter(has_text=f"Analysed as of {analysis['as_of']}").wait_for(timeout=60_000)
    assert page.get_by_test_id("analytics-error").inner_text() == ""
    latest = api_json(page, f"/api/v1/fleets/{fleet_id}/analytics")
    assert latest["computed_s"] > analysis["computed_s"]
    assert page.get_by_test_id("analytics-ranking-row").count() == len(ranking)


def api_json(tab, path: str) -> dict:
    """An API answer fetched in the page with the signed-in user's token."""
    return tab.evaluate(
        "(path) => fetch(path, {headers: {Authorization: "
        "`Bearer ${localStorage.getItem('cellwarden.token')}`}}).then((r) => r.json())",
        path,
    )


def banded(pixel: tuple[int, ...]) -> bool:
    """In the band's colour: its lines and point, or its bar's fill."""
    return min(_distance(pixel, BAND), _distance(pixel, BAND_FILL)) < 60
