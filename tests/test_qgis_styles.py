"""Styles (layer_styles) and the QGIS project stored in the workspace, opened by real QGIS.

The QGIS checks run Debian's PyQGIS (python3-qgis, built for /usr/bin/python3) headless in
a subprocess (tests/qgis_probe.py); without it they skip, which CI counts as a failure.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import shapely

from landquota import labels as lbl
from landquota.demo.build import build_demo
from landquota.outputs import symbology as sym
from landquota.outputs.qgis_project import PROJECT_NAME, qgis_project_xml, write_qgis_project
from landquota.outputs.styles import (
    LAYER_TITLES,
    layer_qml,
    layer_rules,
    layer_sld,
    read_layer_styles,
    write_layer_styles,
)
from landquota.store.api import open_workspace
from landquota.store.workspace import Workspace
from tests.test_gpkg_conformance import validate

SYSTEM_PYTHON = "/usr/bin/python3"
PROBE = Path(__file__).with_name("qgis_probe.py")
SE = "{http://www.opengis.net/se}"
OGC = "{http://www.opengis.net/ogc}"


# --- the styles themselves (no QGIS needed) -------------------------------------------


@pytest.mark.parametrize("layer", list(LAYER_TITLES))
def test_qml_and_sld_have_the_same_classes_colours_and_labels(layer: str) -> None:
    rules = layer_rules(layer)
    qml = ET.fromstring(layer_qml(layer).split("\n", 1)[1])
    qrules = qml.findall("./renderer-v2/rules/rule")
    symbols = {s.get("name"): s for s in qml.findall("./renderer-v2/symbols/symbol")}
    assert [r.get("label") for r in qrules] == [r.symbol.label for r in rules]
    for qr, rule in zip(qrules, rules, strict=True):
        props = {p.get("k"): p.get("v") for p in symbols[qr.get("symbol")].iter("prop")}
        if rule.symbol.fill is not None:
            r, g, b = (int(rule.symbol.fill[i : i + 2], 16) for i in (1, 3, 5))
            assert props["color"].startswith(f"{r},{g},{b},")
        else:
            assert props["style"] == "no"
    sld = ET.fromstring(layer_sld(layer).split("\n", 1)[1])
    srules = [r for r in sld.iter(f"{SE}Rule") if r.find(f"{SE}PolygonSymbolizer") is not None]
    assert [r.findtext(f"{SE}Name") for r in srules] == [r.symbol.label for r in rules]
    for sr, rule in zip(srules, rules, strict=True):
        fills = [p.text for p in sr.iter(f"{SE}SvgParameter") if p.get("name") == "fill"]
        assert fills == ([rule.symbol.fill] if rule.symbol.fill else [])
        if rule.otherwise:
            assert sr.find(f"{SE}ElseFilter") is not None
        elif rule.column is not None:
            literals = [lit.text for lit in sr.iter(f"{OGC}Literal")]
            assert literals == list(rule.values)


def test_land_classes_in_qgis_are_the_maps_classes() -> None:
    # one definition: every display class of the HTML map is a QGIS rule, same colour
    rules = layer_rules("parcels")
    assert [(r.symbol.label, r.symbol.fill) for r in rules] == [
        (d.label, d.colour) for d in sym.LAND_DISPLAY.values()
    ]
    by_label = {r.symbol.label: r for r in rules}
    water = by_label[sym.LAND_DISPLAY["agri_water"].label]
    assert set(water.values) == {"1103", "1104", "1104A", "1104K", "1107", "1107A"}
    assert "农用地" in water.symbol.label  # agricultural land, as GB/T 21010-2017 counts it
    assert not any("incl. water" in r.symbol.label for r in rules)


def test_zone_and_outcome_labels_are_the_report_labels() -> None:
    zones = {r.values[0]: r.symbol.label for r in layer_rules("plan_zones")}
    assert zones == {k: lbl.label(lbl.ZONE_TYPE_LABELS, k, capitalize=True) for k in zones}
    outcomes = [r.symbol.label for r in layer_rules("projects")]
    assert outcomes[-1] == sym.OUTCOMES["not_allocated"].label
    assert lbl.label(lbl.OUTCOME_LABELS, "funded", capitalize=True) in outcomes


# --- stored in the workspace -------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_layers() -> dict[str, pd.DataFrame]:
    return build_demo(seed=2014, n_parcels=2_000)  # the smallest demo


def _fill(ws: Workspace, layers: dict[str, pd.DataFrame]) -> None:
    ws.write_layers(layers)
    write_layer_styles(ws)
    write_qgis_project(ws)


def test_styles_and_project_are_stored_and_the_geopackage_stays_valid(
    tmp_path: Path, demo_layers: dict[str, pd.DataFrame]
) -> None:
    path = tmp_path / "demo.gpkg"
    with open_workspace(path, create=True) as ws:
        _fill(ws, demo_layers)
        write_layer_styles(ws)  # again: replaces its own rows, one default per layer
        stored = read_layer_styles(ws)
        xml = qgis_project_xml(ws)
    assert set(stored) == set(LAYER_TITLES)
    con = sqlite3.connect(path)
    per_layer = con.execute(
        "SELECT f_table_name, count(*), sum(useAsDefault) FROM layer_styles GROUP BY 1"
    ).fetchall()
    (name,) = con.execute("SELECT name FROM qgis_projects").fetchone()
    con.close()
    assert {t: (n, d) for t, n, d in per_layer} == {t: (1, 1) for t in LAYER_TITLES}
    assert name == PROJECT_NAME
    assert f"./{path.name}|layername=parcels" in xml  # relative: the file can move
    assert validate(path) == ""


def _probe(uri: str, point: tuple[float, float], png: Path) -> dict[str, Any]:
    check = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import qgis.core"], capture_output=True, text=True, check=False
    )
    if check.returncode != 0:
        pytest.skip(
            "PyQGIS is not importable by /usr/bin/python3; install Debian's python3-qgis "
            f"(scripts/setup-system): {check.stderr.strip()[-200:]}"
        )
    request = png.with_suffix(".json")
    request.write_text(json.dumps({"uri": uri, "point": point, "png": str(png)}))
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "XDG_RUNTIME_DIR": str(png.parent)}
    env.pop("PYTHONPATH", None)  # the system python must not see the venv's packages
    done = subprocess.run(
        [SYSTEM_PYTHON, str(PROBE), str(request)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def _clear_forest_point(layers: dict[str, pd.DataFrame]) -> tuple[float, float]:
    """A point deep inside a forest patch, away from every other drawn layer and outline."""
    parcels = layers["parcels"]
    forest = parcels[parcels["land_class"].isin(sym.LAND_DISPLAY["forest"].codes)]
    others = [
        layers[n].geometry
        for n in ("control_lines", "stock_land", "linkage_plots", "projects")
        if n in layers
    ]
    cover = shapely.union_all([g for s in others for g in s if g is not None])
    outlines = shapely.union_all(
        [*layers["towns"].geometry.boundary, *layers["county"].geometry.boundary]
    )
    for patch in forest.geometry.iloc[shapely.area(forest.geometry.array).argsort()[::-1]]:
        core = patch.buffer(-0.0008)  # the rendered window is ±0.0005° around the point
        if core.is_empty:
            continue
        pt = core.representative_point()
        if (
            not cover.intersects(pt.buffer(0.0008))
            and pt.distance(outlines) > 0.0008
        ):
            return (pt.x, pt.y)
    raise AssertionError("no forest patch clear of other layers in the demo")


@pytest.mark.slow
def test_qgis_opens_the_stored_project_styled(
    ws: Workspace, tmp_path: Path, demo_layers: dict[str, pd.DataFrame]
) -> None:
    _fill(ws, demo_layers)
    from landquota.outputs.qgis_project import project_uri

    point = _clear_forest_point(demo_layers)
    got = _probe(project_uri(ws), point, tmp_path / f"render-{ws.kind}.png")
    assert got["read"], got
    # grouped and ordered as GROUPS says: boundaries on top, land use at the bottom
    assert [g for g, _ in got["tree"]][:5] == [
        "边界 Boundaries",
        "重点项目 Key projects",
        "存量与挂钩 Stock land and linkage",
        "规划管控 Plan controls",
        "现状 Land use",
    ]
    layers = {info["name"]: info for info in got["layers"].values()}
    for name, title in LAYER_TITLES.items():
        info = layers[title]
        assert info["valid"] and info["crs"] == "EPSG:4490", info
        assert info["count"] == len(demo_layers[name]), name
        assert info["renderer"] == "RuleRenderer"
        for (label, _, colour), rule in zip(info["rules"], layer_rules(name), strict=True):
            assert label == rule.symbol.label
            if rule.symbol.fill is not None:
                assert colour == rule.symbol.fill, (name, label)
        # the same style comes from layer_styles when the table is opened on its own
        assert info["default_style_loaded"], name
        assert [lab for lab, _ in info["default_rules"]] == [r.symbol.label for r in layer_rules(name)]
    assert layers[LAYER_TITLES["towns"]]["default_labels"]
    # the projects are joined to the latest run's allocations (an SQL subquery QGIS's
    # provider accepted): the outcome field the style colours by is there
    assert "run_outcome" in layers[LAYER_TITLES["projects"]]["fields"]
    (alloc,) = [i for i in layers.values() if i["name"].startswith("分配结果")]
    assert alloc["valid"], alloc
    # a pixel of a forest patch is the forest colour
    assert got["pixel"] == sym.LAND_DISPLAY["forest"].colour, got


@pytest.mark.postgis
def test_the_postgis_project_names_no_password(pg_url: str) -> None:
    secret_url = pg_url.replace("postgresql://postgres@", "postgresql://postgres:s3cr3t@", 1)
    assert "s3cr3t" in secret_url
    with open_workspace(secret_url, create=True) as ws:
        uri = write_qgis_project(ws)
        xml = qgis_project_xml(ws)
        stored = read_layer_styles(ws)
    assert "s3cr3t" not in xml and "s3cr3t" not in uri and "password" not in xml
    assert "user='postgres'" in xml and "table=" in xml
    assert stored == {}  # styles are written by write_layer_styles, not by the project


@pytest.mark.postgis
def test_dropping_a_postgis_workspace_takes_its_styles(pg_url: str) -> None:
    with open_workspace(pg_url, create=True) as ws:
        write_layer_styles(ws)
        assert set(read_layer_styles(ws)) == set(LAYER_TITLES)
        ws.drop()  # type: ignore[attr-defined]
    with open_workspace(pg_url, create=True) as ws:
        assert read_layer_styles(ws) == {}  # the shared public.layer_styles kept nothing
