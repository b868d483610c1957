"""The tiled (city-scale) map in real headless Chromium, offline: a patch clicked at zoom 17.

A few thousand patches of the demo city are forced into the tiled mode
(``build_map(tiled=True)``); the page is opened from a file with every other
request aborted and recorded, zoomed to 17 on a known patch, which is clicked:
its popup must show its exact id, its land class in Chinese and English and its
area. Screenshot: ``tests/artifacts/map-city-z17.png``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.ops import polylabel

from landquota.demo.city import build_city
from landquota.outputs.map_popups import _fmt_m2
from landquota.outputs.maps import build_map, save_map
from landquota.rules.landclasses import LAND_CLASSES

pytestmark = [pytest.mark.browser, pytest.mark.slow]  # ~20 s: a city build and Chromium

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.fixture(scope="module")
def city() -> dict[str, pd.DataFrame]:
    return build_city(seed=2014, n_parcels=4_000)


@pytest.fixture(scope="module")
def map_file(city: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    m = build_map(city, tiled=True)
    return save_map(m, tmp_path_factory.mktemp("city") / "city.html")


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


class Page:
    """The map opened offline: console errors and every attempted request recorded."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.as_uri()
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on("console",
                     lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.route("**/*", self._route)
        self.page.goto(self.url)
        self.page.wait_for_function("window.landquotaReady !== undefined", timeout=30_000)

    def _route(self, route: Any) -> None:
        if route.request.url == self.url:
            route.continue_()
        else:
            self.blocked.append(route.request.url)
            route.abort()

    def view(self, lat: float, lng: float, zoom: int) -> None:
        """Set the view without animation and wait until its tiles are drawn."""
        self.page.evaluate(
            "async ([lat, lng, z]) => { landquota.map.setView([lat, lng], z, {animate: false});"
            " await landquota.tilesIdle();"
            " await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r))); }",
            [lat, lng, zoom],
        )

    def click(self, lat: float, lng: float) -> None:
        x, y = self.page.evaluate(
            "([lat, lng]) => { const p = landquota.map.latLngToContainerPoint([lat, lng]);"
            " const r = landquota.map.getContainer().getBoundingClientRect();"
            " return [p.x + r.left, p.y + r.top]; }",
            [lat, lng],
        )
        self.page.mouse.click(x, y)

    def popup(self) -> str:
        self.page.wait_for_selector(".leaflet-popup-content", timeout=5_000)
        return str(self.page.inner_text(".leaflet-popup-content"))

    def drawn_patches(self) -> int:
        """Patch polygons from the tiles on the map."""
        return int(self.page.evaluate(
            "() => { let n = 0; landquota.map.eachLayer(l => {"
            " if (l.lqPatch !== undefined) n++; });"
            " return n; }"
        ))


def _known(parcels: pd.DataFrame, code: str) -> tuple[pd.Series, shapely.Point]:
    """A patch of class *code* (the median-area one) and a point well inside it."""
    rows = parcels[parcels["land_class"] == code].sort_values("net_m2")
    row = rows.iloc[len(rows) // 2]
    geom = row.geometry
    # the pole of inaccessibility: farthest from the edges, so ~1 m quantisation is harmless
    pt = polylabel(max(geom.geoms, key=lambda g: g.area), tolerance=1e-6)
    return row, pt


def test_a_patch_clicked_at_zoom_17_shows_its_popup(
    browser: Any, map_file: Path, city: dict[str, pd.DataFrame]
) -> None:
    page = Page(browser, map_file)
    parcels = city["parcels"]
    # the initial view (the whole city) shows the levels of detail, no patch tiles
    assert page.page.evaluate("() => landquota.map.getZoom()") <= 10
    assert page.drawn_patches() == 0
    for code in ("0101", "0301"):
        row, pt = _known(parcels, code)
        page.view(pt.y, pt.x, 17)
        assert page.page.evaluate("() => landquota.map.getZoom()") == 17
        assert page.drawn_patches() > 0
        page.click(pt.y, pt.x)
        text = page.popup()
        lc = LAND_CLASSES[code]
        assert f"图斑 Patch {row['parcel_id']}" in text
        assert f"图斑编号 Patch id\t{row['parcel_id']}" in text
        assert f"地类 Land class\t{code} {lc.name_zh} {lc.name_en}" in text
        assert f"面积 Area\t{_fmt_m2(round(row['net_m2']))}" in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / f"map-city-z17-{code}.png"))
        page.page.keyboard.press("Escape")
        page.page.evaluate("() => landquota.map.closePopup()")
    # back out to zoom 12: the patch tiles are dropped, the level of detail shows again
    page.view(float(np.mean(parcels.total_bounds[[1, 3]])),
              float(np.mean(parcels.total_bounds[[0, 2]])), 12)
    assert page.drawn_patches() == 0
    assert page.errors == []
    assert page.blocked == []
    page.page.close()


def test_tiled_mode_is_chosen_above_the_threshold(monkeypatch: pytest.MonkeyPatch,
                                                  city: dict[str, pd.DataFrame]) -> None:
    from landquota.outputs import tiled

    small = {"county": city["county"], "parcels": city["parcels"].iloc[:500]}
    page = build_map(small).get_root().render()
    assert "landquota.addTiles(" not in page  # county mode under the threshold
    monkeypatch.setattr(tiled, "TILED_THRESHOLD", 100)
    page = build_map(small).get_root().render()
    assert "landquota.addTiles(" in page
    page = build_map(small, tiled=False).get_root().render()
    assert "landquota.addTiles(" not in page
