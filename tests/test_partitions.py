"""The tile-by-tile partition export: the same patches, Hilbert-ordered, without the whole layer in memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from landquota.engines.dask import export_partitions, hilbert_distance, write_partitions
from tests.gridcounty import grid_parcels


@pytest.mark.parametrize("level", [16, 8, 1])
def test_hilbert_distance_equals_geopandas(level: int) -> None:
    rng = np.random.default_rng(3)
    x, y = rng.uniform(112, 113, 2_000), rng.uniform(24, 25, 2_000)
    boxes = shapely.box(x, y, x + rng.uniform(0, 0.01, 2_000), y + 0.005)
    g = gpd.GeoSeries(boxes, crs=4490)
    got = hilbert_distance(shapely.bounds(boxes), level=level)
    assert got.tolist() == g.hilbert_distance(level=level).tolist()
    wide = (111.0, 23.0, 114.0, 26.0)
    got = hilbert_distance(shapely.bounds(boxes), wide, level=level)
    assert got.tolist() == g.hilbert_distance(total_bounds=wide, level=level).tolist()
    # a degenerate extent (every centre on one line) gives 0 on that axis, as geopandas does
    flat = gpd.GeoSeries(shapely.box(x, 24.0, x + 0.01, 24.0), crs=4490)
    assert hilbert_distance(shapely.bounds(flat.values)).tolist() == flat.hilbert_distance().tolist()


def test_read_bounds_matches_the_geometries(ws: Any) -> None:
    parcels = grid_parcels(500)
    ws.write_layer("parcels", parcels)
    got = ws.read_bounds("parcels").set_index("parcel_id").loc[parcels.parcel_id]
    want = shapely.bounds(parcels.geometry.values)
    # PostGIS gives the exact box; a GeoPackage its R-tree's float32 box, rounded outwards
    tol = 0 if ws.kind == "postgis" else 3e-5  # two float32 steps at 113°
    assert np.allclose(got[["minx", "miny", "maxx", "maxy"]].to_numpy(), want, rtol=0, atol=tol)
    if ws.kind == "gpkg":
        assert (got["minx"].to_numpy() <= want[:, 0]).all() and (got["maxy"].to_numpy() >= want[:, 3]).all()
    with pytest.raises(Exception, match="no geometry"):
        ws.read_bounds("quota_ledger")


def test_export_partitions_equals_the_in_memory_export(ws: Any, tmp_path: Path) -> None:
    parcels = grid_parcels(2_000)
    ws.write_layer("parcels", parcels)
    info = export_partitions(ws, tmp_path / "tiles", rows_per_partition=300, source="s")
    assert info["rows"] == len(parcels) and sum(info["partitions"]) == len(parcels)
    assert info["partitions"][:-1] == [300] * (len(info["partitions"]) - 1)
    mem = write_partitions(ws.read_layer("parcels"), tmp_path / "mem", rows_per_partition=300)
    assert mem["partitions"] == info["partitions"]
    tiles = [gpd.read_parquet(f) for f in sorted((tmp_path / "tiles").glob("part.*.parquet"))]
    whole = pd.concat(tiles, ignore_index=True)
    # every patch exactly once, attributes and geometry as stored
    assert sorted(whole.parcel_id) == sorted(parcels.parcel_id)
    stored = ws.read_layer("parcels").set_index("parcel_id").loc[whole.parcel_id]
    assert shapely.equals(whole.geometry.values, stored.geometry.values).all()
    assert np.allclose(whole.net_m2.to_numpy(), stored.net_m2.to_numpy())
    # compact tiles: each partition's box is a small part of the county's
    total = shapely.box(*whole.total_bounds).area
    assert max(shapely.box(*t.total_bounds).area for t in tiles[:-1]) < total / 2
