"""R1 against PostGIS itself: our areas agree with ``ST_Area(geom::geography)`` within 0.01 %.

And the demand table is the same whether the workspace is a GeoPackage or PostGIS.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from gridcounty import county, grid_parcels

from landquota.engines.api import DEMAND_OUT_COLUMNS, demand_from_workspace
from landquota.rules.areas import ellipsoidal_area
from landquota.store.api import open_workspace

pytestmark = pytest.mark.postgis

R1_RTOL = 1e-4  # 0.01 %


def _st_area(ws: object, layer: str, id_column: str) -> pd.Series:
    eng = ws.engine  # type: ignore[attr-defined]
    schema = ws.schema  # type: ignore[attr-defined]
    sql = f'SELECT "{id_column}", ST_Area(geom::geography) AS a FROM "{schema}"."{layer}" WHERE geom IS NOT NULL'
    with eng.connect() as con:
        rows = con.execute(sa.text(sql)).all()
    return pd.Series({str(k): float(a) for k, a in rows}, name="st_area")


def _check_layer(ws: object, layer: str, id_column: str) -> int:
    frame = ws.read_layer(layer)  # type: ignore[attr-defined]
    frame = frame[~frame.geometry.isna()]
    ours = pd.Series(ellipsoidal_area(frame.geometry), index=frame[id_column].astype(str))
    theirs = _st_area(ws, layer, id_column).loc[ours.index]
    rel = (ours - theirs).abs() / theirs
    worst = rel.idxmax()
    assert rel.max() < R1_RTOL, f"{layer} {worst}: ours {ours[worst]!r}, ST_Area {theirs[worst]!r}"
    return len(rel)


def test_parcel_areas_match_st_area_geography(pg_url: str) -> None:
    parcels = grid_parcels(2_000, seed=11)
    lon = parcels.geometry.bounds
    # Patches on both sides of 112.5°E, the edge of Gauss–Krüger zones 37 and 38.
    assert (lon["maxx"] < 112.5).any() and (lon["minx"] > 112.5).any()
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layer("parcels", parcels)
        assert _check_layer(ws, "parcels", "parcel_id") == len(parcels)


def test_demo_county_areas_match_st_area_geography(pg_url: str) -> None:
    demo = pytest.importorskip("landquota.demo.build")
    layers = demo.build_demo(seed=2014, n_parcels=2_000)
    with open_workspace(pg_url, create=True) as ws:
        ws.write_layers(layers)
        n = _check_layer(ws, "parcels", "parcel_id")
        n += _check_layer(ws, "projects", "project_id")
        n += _check_layer(ws, "plan_zones", "zone_id")
    assert n > 2_000


def test_demand_is_the_same_on_geopackage_and_postgis(pg_url: str, tmp_path: Path) -> None:
    layers = county(2_000, 12, seed=5)
    tables = []
    for target in (str(tmp_path / "ws.gpkg"), pg_url):
        with open_workspace(target, create=True) as ws:
            ws.write_layers(layers)
            tables.append(demand_from_workspace(ws).table)
    gpkg, pg = tables
    assert tuple(pg.columns) == DEMAND_OUT_COLUMNS
    assert len(gpkg) == 12 and gpkg["site_m2"].gt(0).all()
    text = ["project_id", "compliance", "approval_level", "reasons"]
    pd.testing.assert_frame_equal(gpkg[text], pg[text])
    numbers = [c for c in DEMAND_OUT_COLUMNS if c not in text]
    np.testing.assert_allclose(
        pg[numbers].to_numpy(), gpkg[numbers].to_numpy(), rtol=R1_RTOL, atol=1e-6
    )
