"""The saved map in real headless Chromium, with the network blocked.

Debian's /usr/bin/chromium is driven through Playwright (never ``playwright
install``). Every request other than the map file itself is aborted and recorded,
so a map that tries to fetch anything fails here. A screenshot is kept in
``tests/artifacts/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import mapdata as d
import pytest

from landquota.outputs.map_popups import _fmt_m2
from landquota.outputs.maps import build_map, save_map

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"
LAYER_NAMES = [
    "地类图斑 Land-use patches", "建设用地管制分区 Plan control zones",
    "永久基本农田 Permanent basic farmland", "生态保护红线 Ecological red line",
    "存量土地 Stock land", "增减挂钩 Linkage plots", "重点项目 Key projects",
    "乡镇界 Town boundaries", "县界 County boundary",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium package to run the "
                    "browser tests (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (python) is absent")
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def map_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = build_map(d.layers(), **d.build_kwargs())
    return save_map(m, tmp_path_factory.mktemp("browser") / "map.html")


class Opened:
    """A page with the map loaded, and what it tried to do."""

    def __init__(self, page: Any, url: str) -> None:
        self.page = page
        self.url = url
        self.errors: list[str] = []
        self.blocked: list[str] = []
        page.on("console",
                lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        page.route("**/*", self._route)

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:  # the network is "cut": record the attempt and refuse it
            self.blocked.append(route.request.url)
            route.abort()

    def open(self) -> Opened:
        self.page.goto(self.url)
        self.page.wait_for_function("window.landquotaReady !== undefined", timeout=20_000)
        return self

    def click_lat_lng(self, lat: float, lng: float) -> None:
        point = self.page.evaluate(
            "([lat, lng]) => { const p = landquota.map.latLngToContainerPoint([lat, lng]);"
            " const r = landquota.map.getContainer().getBoundingClientRect();"
            " return [p.x + r.left, p.y + r.top]; }",
            [lat, lng],
        )
        self.page.mouse.click(point[0], point[1])

    def popup_text(self) -> str:
        self.page.wait_for_selector(".leaflet-popup-content", timeout=5_000)
        return str(self.page.inner_text(".leaflet-popup-content"))


@pytest.fixture
def opened(browser: Any, map_file: Path) -> Iterator[Opened]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    yield Opened(page, map_file.as_uri()).open()
    context.close()


def test_opens_offline_without_errors(opened: Opened) -> None:
    assert opened.errors == []
    assert opened.blocked == []
    assert opened.page.evaluate("window.__pwned") is None  # hostile names stayed text
    ARTIFACTS.mkdir(exist_ok=True)
    opened.page.screenshot(path=str(ARTIFACTS / "map.png"))
    assert (ARTIFACTS / "map.png").stat().st_size > 10_000


def test_layer_control_lists_the_layers(opened: Opened) -> None:
    labels = opened.page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
    assert [t.strip() for t in labels] == LAYER_NAMES
    checked = opened.page.locator(".leaflet-control-layers-overlays input").evaluate_all(
        "els => els.map(e => e.checked)")
    assert checked == [name != "建设用地管制分区 Plan control zones" for name in LAYER_NAMES]
    assert opened.page.locator(".leaflet-control-scale").count() == 1
    legend = opened.page.inner_text("[data-testid=legend]")
    assert "已安排 Funded (1)" in legend and "闲置土地 Idle" in legend


def test_clicking_a_site_opens_its_popup(opened: Opened) -> None:
    site = d.SITES["K1"].centroid  # 112.70°E, 24.50°N
    opened.click_lat_lng(site.y, site.x)
    text = opened.popup_text()
    proj = d.projects().set_index("project_id").loc["K1"]
    dem = d.demand().set_index("project_id").loc["K1"]
    alloc = d.allocations().set_index("project_id").loc["K1"]
    assert proj["name"] in text
    assert "国家级 national" in text
    assert _fmt_m2(dem["site_m2"]) in text and "30,000 m² (3.00 ha, 45.00 亩)" in text
    assert _fmt_m2(dem["cultivated_m2"]) in text
    assert f"{dem['new_quota_m2']:,.0f} m²" in text  # 22,000 = 20,000 agricultural + 2,000 unused
    plan_quota = _fmt_m2(alloc["new_quota_m2"])
    assert f"新增建设用地计划指标 Plan quota (new_construction)\t{plan_quota}" in text
    assert f"{alloc['comp_grain_kg']:,.0f} kg/年" in text
    assert "省政府 Province" in text
    for staff in ("county_leader", "town_cadre", "dept_cadre"):
        assert str(proj[staff]) in text


def test_blocked_project_popup_gives_reasons(opened: Opened) -> None:
    site = d.SITES["K3"].centroid
    opened.click_lat_lng(site.y, site.x)
    text = opened.popup_text()
    assert "不合规受阻 Blocked" in text
    assert "[basic_farmland]" in text and "[eco_redline]" in text
    assert "国务院 State Council" in text  # R14: it would take basic farmland


def test_search_finds_a_project_by_name(opened: Opened) -> None:
    box = opened.page.locator(".lq-search input")
    box.fill("Evil & 'Co'")  # part of the hostile name, matched as plain text
    box.press("Enter")
    text = opened.popup_text()
    assert d.EVIL_NAME in text  # shown literally, not parsed
    assert "部分安排 Partly funded (60%)" in text
    assert "增减挂钩节余指标 Linkage surplus (linkage_surplus)\t5,000 m²" in text
    box.fill("物流中心")  # K6 has no site and no stock parcel
    box.press("Enter")
    assert "no fixed site" in opened.page.inner_text(".lq-search-msg")


def test_a_tile_server_is_the_only_fetch(browser: Any, tmp_path: Path) -> None:
    # Proves the blocking route sees fetches: with tiles, tile requests are attempted.
    m = build_map({"county": d.county()}, tiles="https://tiles.bureau.invalid/{z}/{x}/{y}.png",
                  attribution="县自然资源局")
    path = save_map(m, tmp_path / "tiles.html")
    context = browser.new_context(viewport={"width": 800, "height": 600})
    try:
        opened = Opened(context.new_page(), path.as_uri()).open()
        opened.page.wait_for_timeout(300)
        assert opened.blocked
        assert all(u.startswith("https://tiles.bureau.invalid/") for u in opened.blocked)
    finally:
        context.close()


def _rect(page: Any, selector: str) -> dict[str, float] | None:
    box = page.locator(selector).first.bounding_box()
    return None if box is None else dict(box)


def test_on_a_phone_the_map_fills_the_screen_and_panels_open_on_demand(
    browser: Any, map_file: Path
) -> None:
    width, height = 390, 844
    context = browser.new_context(viewport={"width": width, "height": height},
                                  device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        opened = Opened(context.new_page(), map_file.as_uri()).open()
        page = opened.page
        assert opened.errors == [] and opened.blocked == []
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "map-phone.png"))
        # the search box is visible, inside the screen
        search = _rect(page, ".lq-search input")
        assert search is not None and page.locator(".lq-search input").is_visible()
        assert search["x"] >= 0 and search["y"] >= 0
        assert search["x"] + search["width"] <= width and search["y"] + search["height"] <= height
        # the panels are closed: no layer list, no legend entries
        assert not page.locator(".leaflet-control-layers-list").is_visible()
        assert not page.locator(".lq-legend .lq-item").first.is_visible()
        # the map is at least 70 % of the screen once the controls' boxes are taken off
        mapbox = _rect(page, ".leaflet-container")
        assert mapbox is not None and mapbox["width"] * mapbox["height"] >= 0.99 * width * height
        covered = page.evaluate(
            """() => Array.from(document.querySelectorAll('.leaflet-control'))
                 .map(e => e.getBoundingClientRect())
                 .reduce((s, r) => s + r.width * r.height, 0)"""
        )
        assert 1 - covered / (width * height) >= 0.70, covered
        # open on demand: the layers icon lists the layers, the legend title opens it
        page.locator(".leaflet-control-layers-toggle").click()
        assert page.locator(".leaflet-control-layers-list").is_visible()
        labels = page.locator(".leaflet-control-layers-overlays label").all_inner_texts()
        assert [t.strip() for t in labels] == LAYER_NAMES
        opened.click_lat_lng(24.42, 112.78)  # a tap on the map closes the layer list
        assert not page.locator(".leaflet-control-layers-list").is_visible()
        page.locator(".lq-legend-toggle").click()
        assert page.locator(".lq-legend .lq-item").first.is_visible()
        assert "已安排 Funded (1)" in page.inner_text("[data-testid=legend]")
        page.locator(".lq-legend-toggle").click()  # and closes again
        assert not page.locator(".lq-legend .lq-item").first.is_visible()
        # the search still works with the panels closed
        page.locator(".lq-search input").fill("Evil & 'Co'")
        page.locator(".lq-search input").press("Enter")
        assert d.EVIL_NAME in opened.popup_text()
    finally:
        context.close()


def test_on_a_desktop_the_panels_start_open(opened: Opened) -> None:
    assert opened.page.locator(".leaflet-control-layers-list").is_visible()
    assert opened.page.locator(".lq-legend .lq-item").first.is_visible()


def test_planned_use_is_shown_in_chinese_and_english(opened: Opened) -> None:
    site = d.SITES["K1"].centroid
    opened.click_lat_lng(site.y, site.x)
    assert "交通运输 transport" in opened.popup_text()
