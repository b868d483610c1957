"""Tests of the demo city (landquota.demo.city): Qingyuan, its divisions and patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely

from landquota.demo.city import CITY_COUNTIES, build_city, city_boundary
from landquota.errors import ParameterError
from landquota.rules.landclasses import LAND_CLASSES
from landquota.store.schema import LAYERS

pytestmark = pytest.mark.slow  # a few city builds of 3,000 patches: ~15 s together

N = 3_000


@pytest.fixture(scope="module")
def city() -> dict[str, pd.DataFrame]:
    return build_city(seed=2014, n_parcels=N)


def test_same_seed_same_city_other_seed_other_patches(city: dict[str, pd.DataFrame]) -> None:
    again = build_city(seed=2014, n_parcels=N)
    for name in ("county", "parcels"):
        pd.testing.assert_frame_equal(city[name], again[name])
    other = build_city(seed=7, n_parcels=N)["parcels"]
    assert not other["land_class"].reset_index(drop=True).equals(
        city["parcels"]["land_class"].reset_index(drop=True)
    )


def test_divisions_partition_the_real_city(city: dict[str, pd.DataFrame]) -> None:
    county = city["county"]
    assert list(county["county_id"]) == [c[0] for c in CITY_COUNTIES]
    geoms = np.asarray(county.geometry.array)
    assert shapely.is_valid(geoms).all()
    whole = city_boundary()
    # the divisions tile the city: no overlaps, no gaps (to 1e-9 of its area)
    assert shapely.area(shapely.union_all(geoms)) == pytest.approx(whole.area, rel=1e-9)
    assert shapely.area(geoms).sum() == pytest.approx(whole.area, rel=1e-9)
    # Yangshan keeps its real boundary; the other seven say they are synthetic
    yangshan = county.set_index("county_id").loc["441823"]
    assert yangshan["name"] == "阳山县"
    others = county[county["county_id"] != "441823"]
    assert others["name"].str.contains("synthetic").all()


def test_patches_follow_the_contract(city: dict[str, pd.DataFrame]) -> None:
    from landquota.rules.areas import ellipsoidal_area
    from landquota.store.workspace import prepare_frame

    p = city["parcels"]
    prepare_frame(LAYERS["parcels"], p, source="demo city")
    prepare_frame(LAYERS["county"], city["county"], source="demo city")
    assert N <= len(p) <= 1.1 * N
    assert p["parcel_id"].is_unique
    assert set(p["land_class"]) <= set(LAND_CLASSES)
    assert (p.geometry.geom_type == "MultiPolygon").all() and p.geometry.is_valid.all()
    # R1 (ellipsoidal, to the cent) and R2 (net = gross - deduction)
    np.testing.assert_allclose(p["gross_m2"], ellipsoidal_area(p.geometry), atol=0.006)
    np.testing.assert_allclose(p["net_m2"], p["gross_m2"] - p["deduction_m2"], atol=1e-6)
    # each patch lies in the division its id and town name say
    county = city["county"].set_index("county_id")
    pts = shapely.point_on_surface(np.asarray(p.geometry.array))
    code = p["parcel_id"].str[:6]
    for cid, geom in county.geometry.items():
        mine = (code == cid).to_numpy()
        assert shapely.covers(shapely.buffer(geom, 1e-7), pts[mine]).all()
    names = {c[0]: c[1] for c in CITY_COUNTIES}
    assert (p["town"] == code.map(names)).all()


def test_patches_cover_the_city_without_overlap(city: dict[str, pd.DataFrame]) -> None:
    g = np.asarray(city["parcels"].geometry.array)
    whole = city_boundary()
    assert shapely.area(g).sum() == pytest.approx(whole.area, rel=1e-6)
    # a tessellation: the sum of areas equals the area of the union
    assert shapely.area(shapely.union_all(g)) == pytest.approx(shapely.area(g).sum(), rel=1e-6)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ParameterError, match="city='guangzhou'"):
        build_city("guangzhou", n_parcels=N)
    with pytest.raises(ParameterError, match="n_parcels=10"):
        build_city(n_parcels=10)
    with pytest.raises(ParameterError, match="seed=-1"):
        build_city(seed=-1, n_parcels=N)


def test_cli_builds_the_city_workspace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from landquota.cli import main
    from landquota.store.api import open_workspace

    target = tmp_path / "city.gpkg"
    assert main(["demo", "--city", "qingyuan", "--parcels", "2000", "--db", str(target)]) == 0
    out = capsys.readouterr().out
    assert "Qingyuan" in out and "synthetic" in out
    with open_workspace(target) as ws:
        counts = ws.layer_counts()
    assert counts["county"] == 8 and 2_000 <= counts["parcels"] <= 2_400
    # a second run reuses it (nothing rebuilt)
    assert main(["demo", "--city", "qingyuan", "--parcels", "2000", "--db", str(target)]) == 0
    assert "reused" in capsys.readouterr().out
    # the city map, forced into the tiled mode (2,000 patches are under the threshold)
    html = tmp_path / "city.html"
    assert main(["map", "--db", str(target), "--tiled", "--out", str(html)]) == 0
    page = html.read_text("utf-8")
    assert "landquota.addTiles(" in page and "data-min-zoom=\"14\"" in page
    assert main(["map", "--db", str(target), "--out", str(html)]) == 0
    assert "landquota.addTiles(" not in html.read_text("utf-8")
