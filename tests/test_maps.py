"""Tests of landquota.outputs.maps without a browser: contents, offline-ness, escaping, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import geopandas as gpd
import mapdata as d
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, box

from landquota.errors import CRSError, DataError, LayerError, ParameterError
from landquota.outputs._mapjs import external_references, leaflet_css, leaflet_js
from landquota.outputs.map_geometry import _encode
from landquota.outputs.map_popups import _fmt_m2, _project_popup
from landquota.outputs.maps import build_map, land_display_class, save_map
from landquota.rules.landclasses import LAND_CLASSES, category_of, is_cultivated

_BLOCK = re.compile(r'<script type="application/json" id="(lq-data-\w+)">(.*?)</script>', re.DOTALL)


def _payloads(page: str) -> dict[str, dict[str, Any]]:
    """Layer payloads of a rendered map by overlay name."""
    out = {}
    for _, text in _BLOCK.findall(page):
        data = json.loads(text)
        if "name" in data:
            out[data["name"]] = data
    return out


def _decode(feature: dict[str, Any]) -> list[list[list[tuple[int, int]]]]:
    """Python twin of the JS decoder: integer (x, y) per point, nested polygon/ring."""
    xy = np.cumsum(np.asarray(feature["c"], dtype=np.int64).reshape(-1, 2), axis=0)
    rings, start = [], 0
    for n in feature["r"]:
        rings.append([tuple(p) for p in xy[start:start + n].tolist()])
        start += n
    polys, k = [], 0
    for nrings in feature["q"]:
        polys.append(rings[k:k + nrings])
        k += nrings
    return polys


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> str:
    m = build_map(d.layers(), **d.build_kwargs())
    path = save_map(m, tmp_path_factory.mktemp("map") / "map.html")
    return path.read_bytes().decode("utf-8")  # as written: no newline translation


# --- land classes -----------------------------------------------------------------

@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("0101", "0101"), ("0102", "0102"), ("0103", "0103"),
        ("0201", "garden"), ("0204K", "garden"), ("0301", "forest"), ("0303", "forest"),
        ("0401", "grassland"), ("0402", "grassland"),
        # GB/T 21010-2017's three-category table: reservoirs, ponds and ditches are
        # agricultural land, rivers, lakes, flats, swamps and glaciers are unused land
        ("1103", "agri_water"), ("1104", "agri_water"), ("1104A", "agri_water"),
        ("1104K", "agri_water"), ("1107", "agri_water"), ("1107A", "agri_water"),
        ("1101", "water"), ("1102", "water"), ("1105", "water"), ("1106", "water"),
        ("1108", "water"), ("1110", "water"),
        ("1006", "agricultural"), ("1202", "agricultural"), ("1203", "agricultural"),
        ("0501", "construction"), ("05H1", "construction"), ("0702", "construction"),
        ("08H2", "construction"), ("1001", "construction"), ("1109", "construction"),
        ("1201", "construction"),
        ("0404", "unused"), ("1207", "unused"),
        (" 0101 ", "0101"), ("ZZ99", "unknown"), (None, "unknown"), (float("nan"), "unknown"),
    ],
)
def test_land_display_class(code: Any, expected: str) -> None:
    assert land_display_class(code) == expected


def test_land_display_class_follows_landclasses() -> None:
    # Every known code: its own code if cultivated (0101-0103), else a display class of
    # its own category from landquota.rules.landclasses (R3: a legend never puts a class in
    # another category); an unknown code is not guessed from its prefix.
    from landquota.outputs.symbology import LAND_DISPLAY

    codes = list(LAND_CLASSES)
    category = dict(zip(codes, category_of(codes), strict=True))
    per_class = {
        "agricultural": {"garden", "forest", "grassland", "agri_water", "agricultural"},
        "construction": {"construction"},
        "unused": {"water", "unused"},
    }
    for code, cultivated in zip(codes, is_cultivated(codes), strict=True):
        shown = land_display_class(code)
        assert shown == code if cultivated else shown in per_class[category[code]], code
        assert code in LAND_DISPLAY[shown].codes
    assert sorted(c for d in LAND_DISPLAY.values() for c in d.codes) == sorted(codes)
    assert land_display_class("0199") == "unknown"  # 01 prefix, but no such class


# --- encoding -----------------------------------------------------------------------

def test_encode_square_by_hand() -> None:
    # box(112.7, 24.5, 112.71, 24.51): shapely starts at (xmax, ymin) and turns CCW;
    # in 1e-5° units the first point is (11271000, 2450000), then steps of 1000.
    enc = _encode([box(112.70, 24.50, 112.71, 24.51)])
    assert enc == {
        "q": [1],
        "r": [4],
        "c": [11271000, 2450000, 0, 1000, -1000, 0, 0, -1000],
    }


def test_encode_keeps_holes_and_parts() -> None:
    ring = box(0, 0, 0.01, 0.01).difference(box(0.004, 0.004, 0.006, 0.006))
    geom = MultiPolygon([ring, box(0.02, 0, 0.03, 0.01)])
    enc = _encode([geom])
    assert enc is not None
    polys = _decode(enc)
    assert [len(p) for p in polys] == [2, 1]  # shell + hole, then a plain square
    hole = sorted(polys[0][1])
    assert hole == [(400, 400), (400, 600), (600, 400), (600, 600)]


def test_encode_drops_what_quantisation_collapses() -> None:
    # 3e-6° is a third of the 1e-5° grid: the square collapses to one point.
    assert _encode([box(112.7, 24.5, 112.700003, 24.500003)]) is None
    # ... but a line of two distinct points survives as a line (no "q").
    enc = _encode([shapely.LineString([(0, 0), (0.001, 0.002)])])
    assert enc == {"c": [0, 0, 100, 200], "r": [2]}


# --- formatting ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("m2", "text"),
    [
        (10_000.0, "10,000 m² (1.00 ha, 15.00 亩)"),  # 1 ha = 15 mu exactly
        (30_000.0, "30,000 m² (3.00 ha, 45.00 亩)"),
        (666.67, "667 m² (0.07 ha, 1.00 亩)"),  # 1 mu = 10,000/15 m²
        (float("nan"), "—"),
    ],
)
def test_fmt_m2(m2: float, text: str) -> None:
    assert _fmt_m2(m2) == text


def test_project_popup_rows_match_the_frames() -> None:
    proj = d.projects().set_index("project_id").loc["K1"].to_dict() | {"project_id": "K1"}
    dem = d.demand().set_index("project_id").loc["K1"].to_dict()
    alloc = d.allocations().set_index("project_id").loc["K1"].to_dict()
    rows = dict(tuple(r) for r in _project_popup(proj, "funded", alloc, dem)["rows"] if len(r) == 2)
    assert rows["场址面积 Site"] == "30,000 m² (3.00 ha, 45.00 亩)"
    # new quota need = agricultural 20,000 + unused 2,000 (R3)
    assert rows["需新增建设用地指标 New-quota need"] == "22,000 m² (2.20 ha, 33.00 亩)"
    assert rows["新增建设用地计划指标 Plan quota (new_construction)"].startswith("22,000 m²")
    assert rows["粮食产能 Grain capacity (comp_grain)"] == "9,000 kg/年"
    assert rows["分配结果 Outcome"] == "已安排 Funded (100%)"
    assert rows["审批级别 Approval level (R14)"] == "省政府 Province"
    assert rows["县领导 County leader"] == "K1县长"


# --- the page --------------------------------------------------------------------------

def test_page_fetches_nothing(page: str) -> None:
    assert external_references(page) == []
    assert "cdn.jsdelivr" not in page and "cdnjs" not in page  # folium's defaults dropped
    assert re.search(r"<script[^>]*\ssrc=", page) is None
    assert re.search(r"<link[^>]*\shref=", page) is None


@pytest.mark.parametrize(
    "snippet",
    [
        '<script src="https://cdn.example.com/x.js"></script>',
        "<link rel='stylesheet' href='https://cdn.example.com/x.css'/>",
        '<img src="http://example.com/a.png">',
        "<style>.a { background: url(images/layers.png) }</style>",
        '<style>@import "https://fonts.example.com/f.css";</style>',
        "<div style=\"background:url('//example.com/b.png')\"></div>",
        '<script>L.tileLayer("https://{s}.tile.example.org/{z}/{x}/{y}.png")</script>',
    ],
)
def test_external_references_catches_every_kind(snippet: str) -> None:
    # the offline check above can only fail if the detector sees these
    assert external_references(f"<html><head>{snippet}</head></html>") != []


def test_vendored_leaflet_is_inlined_with_images(page: str) -> None:
    css, js = leaflet_css(), leaflet_js()
    assert "url(images/" not in css
    assert css.count("url(data:image/png;base64,") == 3  # layers, layers-2x, marker-icon
    assert 'version="1.9.4"' in js and "sourceMappingURL" not in js
    assert js in page and css in page


def test_layers_and_legend(page: str) -> None:
    names = set(_payloads(page))
    assert names == {
        "地类图斑 Land-use patches", "建设用地管制分区 Plan control zones",
        "永久基本农田 Permanent basic farmland", "生态保护红线 Ecological red line",
        "存量土地 Stock land", "增减挂钩 Linkage plots", "重点项目 Key projects",
        "乡镇界 Town boundaries", "县界 County boundary",
    }
    for name in names:  # each is listed in the layer control
        assert json.dumps(name) in page
    assert "图例 Legend" in page and "L.control.scale()" in page
    assert re.search(r"landquota\.fitCounty\(map_\w+, \[\[24\.4, 112\.6\], \[24\.6, 112\.8\]\]\)",
                     page)


def test_patches_are_dissolved_by_class(page: str) -> None:
    patches = _payloads(page)["地类图斑 Land-use patches"]
    assert patches["pane"] == "lq-patches"
    by_class: dict[str, list[Any]] = {}
    for f in patches["features"]:
        by_class.setdefault(f["s"], []).extend(_decode(f))
    # 8 display classes in the grid: 0101, 0102, 0103, forest (0301), agri_water (1104A),
    # construction, water (1101) and unknown (ZZ99).
    assert set(by_class) == {"0101", "0102", "0103", "forest", "agri_water", "construction",
                             "water", "unknown"}
    # 0101 patches: (0,0)+(0,1) touch, (3,2) is alone -> 2 polygons after the dissolve.
    assert len(by_class["0101"]) == 2
    # forest (0301 ×6), cells (row,col): (0,3),(1,1),(1,2),(2,2),(3,0),(3,1) -> {(0,3)},
    # {(1,1),(1,2),(2,2)}, {(3,0),(3,1)} (diagonal neighbours do not join): 3 polygons.
    assert len(by_class["forest"]) == 3
    assert len(by_class["agri_water"]) == 1  # the 1104A pond (2,3)
    # painted as shells without holes, largest first (the forest block of 3 cells
    # comes first); every edge lies on the 0.05° grid: coordinates are multiples of 5000
    assert patches["features"][0]["s"] == "forest"
    for polys in by_class.values():
        assert all(len(poly) == 1 for poly in polys)
        for poly in polys:
            for ring in poly:
                assert all(x % 5000 == 0 and y % 5000 == 0 for x, y in ring)


def test_zones_and_lines_are_drawn_where_they_are(page: str) -> None:
    layers = _payloads(page)
    # basic farmland C1 is the 0.05° cell at the south-west corner: 112.60–112.65, 24.40–24.45
    (farmland,) = layers["永久基本农田 Permanent basic farmland"]["features"]
    ring = _decode(farmland)[0][0]
    assert sorted(ring) == [(11260000, 2440000), (11260000, 2445000),
                            (11265000, 2440000), (11265000, 2445000)]
    (redline,) = layers["生态保护红线 Ecological red line"]["features"]
    assert sorted(_decode(redline)[0][0])[0] == (11275000, 2455000)
    zones = layers["建设用地管制分区 Plan control zones"]["features"]
    assert [(z["s"], len(_decode(z))) for z in zones] == [("allowed", 1), ("restricted", 1)]


def test_patches_that_overlap_are_drawn_one_by_one() -> None:
    # Not a coverage (the second square overlaps the first by half): no union, each
    # patch is simplified on its own and drawn in its class's fill.
    parcels = d.parcels().iloc[:2].copy()
    parcels.geometry = [d.mbox(112.60, 24.40, 112.65, 24.45),
                        d.mbox(112.625, 24.40, 112.675, 24.45)]
    m = build_map({"parcels": parcels})
    feature = _payloads(m.get_root().render())["地类图斑 Land-use patches"]["features"][0]
    assert feature["s"] == "0101" and len(_decode(feature)) == 2


def test_stock_and_projects(page: str) -> None:
    stock = _payloads(page)["存量土地 Stock land"]
    styles = [f["s"] for f in stock["features"]]
    assert styles == ["cohort:2012", "idle", "lapsed", "reclaimed"]
    s2 = dict(tuple(r) for r in stock["features"][1]["p"]["rows"])
    assert s2["闲置天数 Days idle"] == "400 天 days"
    assert s2["应缴闲置费 Idle fee due (R11)"] == "1,200,000 元 yuan"  # 20 % of 6,000,000
    projects = _payloads(page)["重点项目 Key projects"]
    by_id = {f["id"]: f for f in projects["features"]}
    assert {k: v["s"] for k, v in by_id.items()} == {
        "K1": "funded", "K2": "partial", "K3": "blocked", "K4": "stock_matched:stock",
        "K5": "not_allocated", "K6": "unfunded",
    }
    assert "c" not in by_id["K6"]  # no site, no stock: searchable but not drawn
    assert by_id["K4"]["c"] == _encode(d.stock_land().geometry.iloc[3])["c"]  # drawn on S4


def test_hostile_names_are_escaped(page: str) -> None:
    assert d.EVIL_NAME not in page
    assert "</script><script>window.__pwned" not in page
    assert d.EVIL_TOWN not in page and '<img src=x' not in page
    projects = _payloads(page)["重点项目 Key projects"]
    assert d.EVIL_NAME in [f.get("n") for f in projects["features"]]


def test_no_idle_review_shows_cohorts_and_unreviewed() -> None:
    m = build_map({"stock_land": d.stock_land()})
    stock = _payloads(m.get_root().render())["存量土地 Stock land"]
    assert [f["s"] for f in stock["features"]] == ["cohort:2012", "unreviewed", "cohort:2011",
                                                   "unreviewed"]


def test_tiles_with_attribution(tmp_path: Path) -> None:
    url = "https://tiles.bureau.example/{z}/{x}/{y}.png"
    m = build_map({"county": d.county()}, tiles=url, attribution="<b>县局</b> © 2014")
    text = save_map(m, tmp_path / "t.html").read_text(encoding="utf-8")
    assert url in text
    # HTML-escaped (Leaflet shows attributions as HTML), then JSON-escaped by folium
    assert "\\u0026lt;b\\u0026gt;\\u53bf\\u5c40" in text and "<b>县局</b>" not in text
    assert external_references(text) == [url]


def test_crs_is_transformed() -> None:
    county = d.county().to_crs("EPSG:4547")
    m = build_map({"county": county})
    feature = _payloads(m.get_root().render())["县界 County boundary"]["features"][0]
    xs = [x for ring in _decode(feature)[0] for x, _ in ring]
    assert min(xs) == 11260000 and max(xs) == 11280000


def test_progress_reports_the_long_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    import contextlib

    import landquota.outputs.maps as maps

    seen: list[tuple[str, object]] = []

    class Bar:
        def update(self, n: int = 1) -> None:
            seen.append(("update", n))

        def set_postfix_str(self, s: str) -> None:
            seen.append(("step", s))

    @contextlib.contextmanager
    def fake(total: int | None, desc: str, *, enabled: bool) -> Any:
        seen.append(("open", (total, desc, enabled)))
        yield Bar()

    monkeypatch.setattr(maps, "progress_bar", fake)
    build_map({"parcels": d.parcels()}, progress=True)
    assert seen[0] == ("open", (5, "地图 map", True))  # 2 + 3 steps for the patches
    steps = [s for kind, s in seen if kind == "step"]
    assert "simplifying 16 polygons" in steps and "encoding patches" in steps
    assert sum(n for kind, n in seen if kind == "update") == 5


def test_save_map_refuses_a_cdn_link(tmp_path: Path) -> None:
    import folium.plugins

    m = build_map({"county": d.county()})
    folium.plugins.Fullscreen().add_to(m)  # links its JS/CSS from a CDN
    with pytest.raises(ParameterError, match="fetch"):
        save_map(m, tmp_path / "x.html")
    assert not (tmp_path / "x.html").exists()


# --- invalid input -----------------------------------------------------------------------

def _two_runs() -> pd.DataFrame:
    a = d.allocations()
    return pd.concat([a, a.assign(run_id="R2")], ignore_index=True)


def _no_crs() -> dict[str, Any]:
    c = d.county()
    return {"county": gpd.GeoDataFrame(c.drop(columns="geometry"), geometry=list(c.geometry))}


@pytest.mark.parametrize(
    ("layers", "kwargs", "error", "match"),
    [
        (lambda: {"county": d.county()}, {"tiles": "https://t.example/{z}/{x}/{y}.png"},
         ParameterError, "attribution"),
        (lambda: {"county": d.county()}, {"attribution": "©"}, ParameterError, "without tiles"),
        (lambda: {"county": d.county()}, {"tiles": "OpenStreetMap", "attribution": "x"},
         ParameterError, "tile URL template"),
        (lambda: {"parcel": d.parcels()}, {}, LayerError, "'parcel'"),
        (lambda: {"parcels": d.parcels().drop(columns="land_class")}, {}, DataError,
         "land_class"),
        (lambda: {"plan_zones": d.plan_zones().assign(zone_type="green")}, {}, DataError,
         "'green'"),
        (lambda: {"projects": pd.concat([d.projects(), d.projects()])}, {}, DataError,
         "repeats"),
        (_no_crs, {}, CRSError, "no CRS"),
        (lambda: {"county": d.county(), "projects": d.projects()}, {"allocations": _two_runs()},
         ParameterError, "2 runs"),
        (lambda: {"stock_land": d.stock_land().iloc[:2]}, {"idle": d.idle()}, DataError,
         "S3"),
        (lambda: {"stock_land": d.stock_land()}, {"idle": d.idle().assign(status="sleepy")},
         DataError, "sleepy"),
        (lambda: {"linkage_areas": d.linkage_areas()}, {}, ParameterError, "no geometry"),
        (lambda: [d.county()], {}, ParameterError, "not a mapping"),
    ],
)
def test_invalid_input(layers: Any, kwargs: dict[str, Any], error: type[Exception],
                       match: str) -> None:
    with pytest.raises(error, match=match):
        build_map(layers(), **kwargs)


def test_save_map_needs_an_existing_folder(tmp_path: Path) -> None:
    m = build_map({"county": d.county()})
    with pytest.raises(ParameterError, match="does not exist"):
        save_map(m, tmp_path / "missing" / "map.html")
