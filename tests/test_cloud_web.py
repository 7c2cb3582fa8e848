"""The web dashboard in a real browser (Debian's chromium driven by Playwright).

The API runs under uvicorn in a thread against a SQLite store seeded through the real code
paths (registry, telemetry writer with encoded-then-decoded payloads, the alarm engine). The
tests sign in with tokens, read the overview and its map, check the cell heat map from a
screenshot, zoom the history chart, read the DTC list and acknowledge an alarm as a viewer
(refused) and as an operator.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.http_server import served

from cellwarden.cloud.alarms.engine import AlarmEngine
from cellwarden.cloud.alarms.rules import parse_rule
from cellwarden.cloud.api.app import create_app
from cellwarden.cloud.store.cloud_store import CloudStore, open_store
from cellwarden.cloud.store.registry import Role
from cellwarden.cloud.store.telemetry_writer import Arrival
from cellwarden.telemetry.codec import decode_frame, encode
from cellwarden.telemetry.schema import Kind

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip
pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(), reason="Debian's chromium (/usr/bin/chromium) is not installed"
)

CENTRE = (52.5200, 13.4050)  # Berlin
HOT_CELL = 7  # 1-based: 3.65 V among 3.30 V cells
CELLS = 16
# device id, fleet, name, status, position offset (deg) or None
PACKS = [
    ("bus-001", "buses", "Bus 1", "online", (0.010, -0.020)),
    ("bus-002", "buses", "Bus 2", "online", (-0.015, 0.030)),
    ("bus-003", "buses", "Bus 3", "offline", (0.030, 0.045)),
    ("ess-01", "storage", "Depot storage 1", "online", (-0.030, -0.040)),
    ("ess-02", "storage", "Depot storage 2", "online", None),  # no GPS
]
MAIN = "bus-001"
UNREAD = ("bus-002", 4)  # a pack whose newest cell record lacks cell 4 (an open sense wire)
WAIT_MS = 10_000


@dataclass
class Site:
    url: str
    tokens: dict[str, str]  # role -> token
    names: dict[str, str]  # role -> user name
    screenshots: Path


# --- seeding through the real write paths ---------------------------------------------------------
def write(store: CloudStore, pack_id: int, kind: Kind, batch: list[tuple[int, dict]],
          received_s: float) -> Arrival:  # fmt: skip
    arrival = Arrival(pack_id, decode_frame(encode(kind, batch)), received_s)
    store.writer.write([arrival])
    return arrival


def summary_batch(first_seq: int, start_s: float, count: int, period_s: float,
                  phase: float) -> list[tuple[int, dict]]:  # fmt: skip
    """Two days of cycling: SoC and current follow a 6-hour charge/discharge sine."""
    out = []
    for i in range(count):
        t = start_s + i * period_s
        angle = 2 * math.pi * t / 21600 + phase
        soc = 55 + 30 * math.sin(angle)
        current = 40 * math.cos(angle)
        out.append((first_seq + i, {
            "time_s": t, "soc_pct": soc, "soh_pct": 96.5, "voltage_v": 48.0 + 0.08 * soc,
            "current_a": current, "cell_voltage_min_v": 3.0 + 0.005 * soc,
            "cell_voltage_max_v": 3.02 + 0.005 * soc, "temp_min_c": 22 + abs(current) / 20,
            "temp_max_c": 25 + abs(current) / 10, "charge_current_limit_a": 100.0,
            "discharge_current_limit_a": 150.0, "charge_voltage_limit_v": 56.8,
            "path_state": 2, "alarms": 0, "warnings": 0, "worst_code": 0,
            "balancing_cells": 1, "strings_connected": 1,
        }))  # fmt: skip
    return out


def cell_record(t: float, hot: bool, missing: int | None = None) -> dict:
    volts: list[float | None] = [3.30] * CELLS
    temps: list[float | None] = [25.0] * CELLS
    balancing = [False] * CELLS
    if missing is not None:
        volts[missing - 1] = temps[missing - 1] = None
    if hot:
        volts[HOT_CELL - 1] = 3.65
        temps[HOT_CELL - 1] = 31.0
        balancing[HOT_CELL - 1] = True
    return {"time_s": t, "voltage_v": volts, "temp_c": temps, "balancing": balancing}


def seed(store: CloudStore, now_s: float) -> tuple[dict[str, str], dict[str, str]]:
    """An organisation of five packs whose telemetry ends at ``now_s``; users' tokens and names."""
    registry = store.registry
    org = registry.add_org("Acme Transit")
    registry.add_fleet(org, "buses")
    registry.add_fleet(org, "storage")
    site = registry.add_site(org, "Depot", *CENTRE)
    engine = AlarmEngine(store.db)
    engine.add_rule(org, parse_rule({
        "name": "Cell over-voltage", "severity": "critical",
        "condition": {"kind": "threshold", "field": "cells.voltage_v", "operator": ">",
                      "threshold": 3.6, "clear_threshold": 3.55},
    }))  # fmt: skip
    tokens, names = {}, {}
    for role in Role:
        names[role.value] = f"{role.value}-user"
        tokens[role.value] = registry.add_user(names[role.value], org, role)
    for index, (device_id, fleet, name, status, offset) in enumerate(PACKS):
        pack_id = registry.add_pack(
            device_id, fleet, name, chemistry="LFP", cell_count=CELLS, capacity_ah=280.0,
            site_id=site if fleet == "storage" else None,
        )  # fmt: skip
        main = device_id == MAIN
        period_s = 60.0 if main else 600.0
        count = int(2 * 86400 / period_s)
        last_s = now_s - 30 - (3 * 3600 if status == "offline" else 0)
        batch = summary_batch(1, last_s - (count - 1) * period_s, count, period_s, index)
        write(store, pack_id, Kind.SUMMARY, batch, last_s + 1)
        if offset is not None:
            lat, lon = CENTRE[0] + offset[0], CENTRE[1] + offset[1]
            write(store, pack_id, Kind.POSITION, [(1, {
                "time_s": last_s, "latitude_deg": lat, "longitude_deg": lon, "speed_kmh": 0.0,
                "course_deg": 0, "satellites": 9, "hdop": 0.9,
            })], last_s + 1)  # fmt: skip
        missing = UNREAD[1] if device_id == UNREAD[0] else None
        cells = [(1, cell_record(last_s - 120, hot=False)),
                 (2, cell_record(last_s - 60, main, missing))]  # fmt: skip
        arrival = write(store, pack_id, Kind.CELLS, cells, last_s + 1)
        engine.evaluate([arrival], last_s + 1)
        store.writer.status(pack_id, status, "2.4.1", last_s + 1)
        if main:
            events = [
                (1, {"time_s": last_s - 5400, "source": "edge", "code": "QUEUE_RECOVERED",
                     "name": "queue recovered", "kind": "info", "value": None, "action": None,
                     "freeze_frame": None}),
                (2, {"time_s": last_s - 600, "source": "string1", "code": "B1101",
                     "name": "cell over-voltage", "kind": "trip", "value": 3.65,
                     "action": "derate", "freeze_frame": {"current_a": 12.5, "soc_pct": 91.0,
                                                          "cell_max": HOT_CELL}}),
            ]  # fmt: skip
            write(store, pack_id, Kind.EVENT, events, last_s + 1)
    store.rollup.run(now_s)
    return tokens, names


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("web")
    store = open_store(f"sqlite:///{folder / 'cloud.db'}")
    tokens, names = seed(store, time.time())
    shots = folder / "screenshots"
    shots.mkdir()
    try:
        with served(create_app(store)) as url:
            yield Site(url, tokens, names, shots)
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


class Console:
    """Console errors and uncaught page errors; ``allow`` names expected failed requests."""

    def __init__(self, page) -> None:
        self.errors: list[str] = []
        self.allowed: list[tuple[str, int]] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        for path, status in self.allowed:
            if path in url and f"status of {status}" in message.text:
                return
        self.errors.append(f"console: {message.text} ({url})")

    def allow(self, path: str, status: int) -> None:
        self.allowed.append((path, status))


@pytest.fixture
def page(browser, site: Site):
    context = browser.new_context(viewport={"width": 1366, "height": 900}, device_scale_factor=1,
                                  accept_downloads=True)  # fmt: skip
    context.set_default_timeout(WAIT_MS)
    tab = context.new_page()
    tab.console = Console(tab)
    yield tab
    context.close()
    assert tab.console.errors == [], tab.console.errors


def sign_in(page, site: Site, role: str) -> None:
    page.goto(f"{site.url}/")
    page.get_by_label("API token").fill(site.tokens[role])
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("user-name").filter(has_text=site.names[role]).wait_for()


def attr(locator, name: str) -> str:
    return locator.get_attribute(name) or ""


def wait_attr(page, testid: str, name: str, predicate: str) -> None:
    """Wait until ``predicate`` (JS over ``v``, the attribute's text) holds."""
    page.wait_for_function(
        f"() => {{ const e = document.querySelector('[data-testid=\"{testid}\"]');"
        f" if (!e) return false; const v = e.getAttribute('{name}'); return {predicate}; }}"
    )


# --- the tests ------------------------------------------------------------------------------------
def test_sign_in_overview_and_map(page, site: Site) -> None:
    page.goto(f"{site.url}/")
    page.console.allow("/api/v1/me", 401)
    page.get_by_label("API token").fill("not-a-token")
    page.get_by_test_id("sign-in").click()
    page.get_by_test_id("signin-error").filter(has_text="unknown token").wait_for()
    assert page.evaluate("localStorage.getItem('cellwarden.token')") is None

    sign_in(page, site, "viewer")
    assert page.evaluate("localStorage.getItem('cellwarden.token')") == site.tokens["viewer"]
    assert "Acme Transit" in page.get_by_test_id("org-select").inner_text()
    rows = page.get_by_test_id("overview-row")
    rows.first.wait_for()
    assert rows.count() == len(PACKS)
    assert page.get_by_test_id("count-total").inner_text() == str(len(PACKS))
    assert page.get_by_test_id("count-online").inner_text() == "4"
    assert page.get_by_test_id("count-offline").inner_text() == "1"
    assert page.get_by_test_id("count-alarm").inner_text() == "1"
    main_row = page.locator(f'[data-testid="overview-row"][data-device-id="{MAIN}"]')
    assert main_row.get_by_test_id("row-alarms").inner_text() == "1"
    assert "%" in main_row.inner_text() and "V" in main_row.inner_text()

    # one marker per pack with a position, the one in alarm red
    fleet_map = page.get_by_test_id("fleet-map")
    wait_attr(page, "fleet-map", "data-markers", "v === '4'")
    assert attr(fleet_map, "data-alarm-markers") == "1"
    screen = {d: (x, y, s) for d, x, y, s in json.loads(attr(fleet_map, "data-screen"))}
    assert set(screen) == {d for d, *_, offset in PACKS if offset is not None}
    assert screen[MAIN][2] == "alarm" and screen["bus-003"][2] == "offline"
    # north is up, east is right: Bus 3 is the north-easternmost
    assert screen["bus-003"][0] == max(x for x, _, _ in screen.values())
    assert screen["bus-003"][1] == min(y for _, y, _ in screen.values())
    image = _image(fleet_map.screenshot(path=site.screenshots / "map.png"))
    x, y, _ = screen[MAIN]
    r, g, b = image.getpixel((x, y))[:3]
    assert r > 180 and g < 90 and b < 90, (r, g, b)  # the alarm marker is drawn red

    # filters go to the API
    page.get_by_test_id("filter-fleet").select_option("storage")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"overview-row\"]').length === 2"
    )
    page.get_by_test_id("filter-fleet").select_option("")
    page.get_by_test_id("filter-search").fill("bus-00")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"overview-row\"]').length === 3"
    )
    page.get_by_test_id("filter-search").fill("")
    page.wait_for_function(
        "() => document.querySelectorAll('[data-testid=\"overview-row\"]').length === 5"
    )
    page.screenshot(path=site.screenshots / "overview.png", full_page=True)

    # hovering a marker names the pack, clicking it opens the pack
    fleet_map.scroll_into_view_if_needed()
    box = fleet_map.bounding_box()
    page.mouse.move(box["x"] + x, box["y"] + y)
    assert MAIN in page.locator("#tooltip").inner_text()
    page.mouse.click(box["x"] + x, box["y"] + y)
    page.wait_for_url(f"**/#/pack/{MAIN}")
    page.get_by_test_id("pack-title").filter(has_text="Bus 1").wait_for()


def test_pack_page(page, site: Site) -> None:
    sign_in(page, site, "viewer")
    page.locator(f'[data-testid="overview-row"][data-device-id="{MAIN}"]').click()
    page.wait_for_url(f"**/#/pack/{MAIN}")
    page.get_by_test_id("live-soc_pct").filter(has_text="%").wait_for()
    assert page.get_by_test_id("live-firmware").inner_text() == "2.4.1"
    assert page.get_by_test_id("live-status").inner_text() == "online"
    assert page.get_by_test_id("live-path_state").inner_text() == "normal"
    assert page.get_by_test_id("live-charge_current_limit_a").inner_text() == "100.0 A"

    # the heat map: 16 tiles, the hot cell's the hottest colour of the scale, the rest not
    heat = page.get_by_test_id("cell-heatmap")
    wait_attr(page, "cell-heatmap", "data-cells", "v === '16'")
    assert attr(heat, "data-missing") == "0" and attr(heat, "data-balancing") == "1"
    assert f"max 3.650 V (cell {HOT_CELL})" in page.get_by_test_id("cell-stats").inner_text()
    colours = _tile_colours(heat, site.screenshots / "heatmap.png")
    assert len(colours) == CELLS
    bar = _image(page.get_by_test_id("heatmap-legend-bar").screenshot())
    hottest = bar.getpixel((bar.width - 3, bar.height // 2))[:3]
    coldest = bar.getpixel((2, bar.height // 2))[:3]
    assert hottest[0] > 180 and hottest[2] < 80, hottest  # red end of the scale
    for cell, colour in enumerate(colours, start=1):
        if cell == HOT_CELL:
            assert _distance(colour, hottest) < 40, (cell, colour, hottest)
        else:
            assert _distance(colour, hottest) > 150, (cell, colour, hottest)
            assert _distance(colour, coldest) < 40, (cell, colour, coldest)
    page.get_by_test_id("heatmap-mode-temp").check()
    wait_attr(page, "cell-heatmap", "data-mode", "v === 'temp'")
    assert "max 31.0 °C" in page.get_by_test_id("cell-stats").inner_text()
    temps = _tile_colours(heat, site.screenshots / "heatmap-temp.png")
    assert _distance(temps[HOT_CELL - 1], hottest) < 40
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    tile_w, tile_h = int(attr(heat, "data-tile-w")), int(attr(heat, "data-tile-h"))
    gap = int(attr(heat, "data-gap"))
    page.mouse.move(box["x"] + (HOT_CELL - 1) * (tile_w + gap) + 8, box["y"] + tile_h / 2)
    tip = page.locator("#tooltip").inner_text()
    assert f"Cell {HOT_CELL}" in tip and "3.650 V" in tip and "balancing" in tip

    # the history chart: 24 h of raw minutes, then a drag zooms and re-queries
    chart = page.get_by_test_id("history-chart")
    wait_attr(page, "history-chart", "data-state", "v === 'ready'")
    wait_attr(page, "history-chart", "data-points", "Number(v) > 1000")
    assert attr(chart, "data-resolution") == "raw"
    before = {k: float(attr(chart, f"data-{k}")) for k in ("from-s", "to-s", "points", "queries")}
    assert 86000 < before["to-s"] - before["from-s"] < 86800
    assert _line_pixels(chart.screenshot(path=site.screenshots / "chart.png")) > 500
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    plot_left, plot_width = box["x"] + 64, box["width"] - 64 - 18
    y = box["y"] + 120
    page.mouse.move(plot_left + 0.30 * plot_width, y)
    page.mouse.down()
    page.mouse.move(plot_left + 0.45 * plot_width, y, steps=4)
    page.mouse.move(plot_left + 0.60 * plot_width, y, steps=4)
    page.mouse.up()
    wait_attr(page, "history-chart", "data-queries", f"Number(v) > {before['queries']:.0f}")
    wait_attr(page, "history-chart", "data-state", "v === 'ready'")
    after = {k: float(attr(chart, f"data-{k}")) for k in ("from-s", "to-s", "points")}
    span = before["to-s"] - before["from-s"]
    assert after["from-s"] == pytest.approx(before["from-s"] + 0.30 * span, abs=0.01 * span)
    assert after["to-s"] == pytest.approx(before["from-s"] + 0.60 * span, abs=0.01 * span)
    assert 0 < after["points"] < before["points"]
    assert after["points"] == pytest.approx(0.30 * before["points"], rel=0.1)
    assert page.get_by_test_id("chart-reset").is_enabled()
    assert _line_pixels(chart.screenshot(path=site.screenshots / "chart-zoomed.png")) > 500
    page.get_by_test_id("range-7d").click()
    wait_attr(page, "history-chart", "data-resolution", "v === '1m'")
    wait_attr(page, "history-chart", "data-state", "v === 'ready'")
    assert int(attr(chart, "data-points")) > 1000  # two days of minute rollups
    page.get_by_test_id("history-field").select_option("voltage_v")
    wait_attr(page, "history-chart", "data-queries", f"Number(v) >= {before['queries'] + 3:.0f}")
    wait_attr(page, "history-chart", "data-state", "v === 'ready'")

    # the DTC in the event list
    trip = page.locator('[data-testid="event-row"][data-code="B1101"]')
    trip.wait_for()
    assert "trip" in trip.inner_text() and "cell over-voltage" in trip.inner_text()
    assert page.get_by_test_id("event-row").count() == 2

    # an export downloads through fetch with the token
    with page.expect_download() as info:
        page.get_by_test_id("export-events-csv").click()
    exported = Path(info.value.path()).read_text()
    assert exported.splitlines()[0].startswith("time_s,seq,source,code")
    assert "B1101" in exported
    page.get_by_test_id("export-note").filter(has_text="Downloaded").wait_for()
    page.screenshot(path=site.screenshots / "pack.png", full_page=True)

    # a cell without a reading is drawn as such, not as a value
    page.goto(f"{site.url}/#/pack/{UNREAD[0]}")
    wait_attr(page, "cell-heatmap", "data-missing", "v === '1'")
    assert "1 without reading" in page.get_by_test_id("cell-stats").inner_text()
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    page.mouse.move(box["x"] + (UNREAD[1] - 1) * (tile_w + gap) + 8, box["y"] + tile_h / 2)
    assert "voltage no reading" in page.locator("#tooltip").inner_text()
    grey = _tile_colours(heat, site.screenshots / "heatmap-missing.png")[UNREAD[1] - 1]
    assert max(grey) - min(grey) < 25, grey  # hatched grey, not a colour of the scale


def test_alarm_centre_roles(page, site: Site) -> None:
    sign_in(page, site, "viewer")
    page.get_by_test_id("nav-alarms").click()
    row = page.get_by_test_id("alarm-row")
    row.first.wait_for()
    assert row.count() == 1
    assert attr(row, "data-state") == "active" and attr(row, "data-severity") == "critical"
    text = row.inner_text()
    assert MAIN in text and f"cell {HOT_CELL}" in text and "Cell over-voltage" in text
    # a viewer is refused, with the API's reason on screen
    page.console.allow("/acknowledge", 403)
    row.get_by_test_id("alarm-ack").click()
    error = page.get_by_test_id("alarm-error")
    error.filter(has_text="403").wait_for()
    assert "operator role" in error.inner_text()
    assert attr(row, "data-state") == "active"
    page.screenshot(path=site.screenshots / "alarms-viewer.png", full_page=True)

    page.get_by_test_id("sign-out").click()
    sign_in(page, site, "operator")
    page.get_by_test_id("nav-alarms").click()
    row = page.locator('[data-testid="alarm-row"][data-state="active"]')
    row.get_by_test_id("alarm-ack").click()
    acked = page.locator('[data-testid="alarm-row"][data-state="acknowledged"]')
    acked.wait_for()
    assert site.names["operator"] in acked.get_by_test_id("alarm-acked").inner_text()
    assert site.names["operator"] in page.get_by_test_id("alarm-notice").inner_text()
    assert page.get_by_test_id("alarm-error").inner_text() == ""
    assert acked.get_by_test_id("alarm-ack").is_disabled()
    page.screenshot(path=site.screenshots / "alarms-operator.png", full_page=True)


# --- pixels ---------------------------------------------------------------------------------------
def _image(png: bytes):
    """An RGB image of PNG bytes (PIL when installed, else matplotlib's reader)."""
    try:
        from PIL import Image

        return Image.open(io.BytesIO(png)).convert("RGB")
    except ImportError:  # pragma: no cover - PIL comes with matplotlib's usual installs
        import matplotlib.image

        return _ArrayImage(matplotlib.image.imread(io.BytesIO(png), format="png"))


class _ArrayImage:
    def __init__(self, array) -> None:
        self.array = (array[..., :3] * 255).round().astype(int)
        self.height, self.width = self.array.shape[:2]

    def getpixel(self, xy: tuple[int, int]) -> tuple[int, ...]:
        return tuple(self.array[xy[1], xy[0]].tolist())


def _tile_colours(heat, path: Path) -> list[tuple[int, int, int]]:
    """The colour of each tile of the heat map in a screenshot, sampled in the tile's lower
    middle (clear of its labels and balancing mark): the median of a 5 x 5 patch."""
    image = _image(heat.screenshot(path=path))
    cols, cells = int(attr(heat, "data-cols")), int(attr(heat, "data-cells"))
    tile_w, tile_h = int(attr(heat, "data-tile-w")), int(attr(heat, "data-tile-h"))
    gap = int(attr(heat, "data-gap"))
    out = []
    for i in range(cells):
        x = (i % cols) * (tile_w + gap) + tile_w // 2
        y = (i // cols) * (tile_h + gap) + int(tile_h * 0.85)
        patch = [image.getpixel((x + dx, y + dy))[:3] for dx in range(-2, 3) for dy in range(-2, 3)]
        channels = zip(*patch, strict=True)
        out.append(tuple(sorted(channel)[len(channel) // 2] for channel in channels))
    return out


def _distance(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    return math.dist(a[:3], b[:3])


def _line_pixels(png: bytes) -> int:
    """Pixels of a chart screenshot in the series' line colour (#1f6feb)."""
    image = _image(png)
    return sum(
        _distance(image.getpixel((x, y)), (31, 111, 235)) < 60
        for x in range(0, image.width, 2)
        for y in range(image.height)
    )
