"""The GeoPackage R-tree bulk loader writes what SQLite itself would, and bulk writes keep it right."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
import shapely

from landquota.store.gpkg import BULK_RTREE_ROWS, bulk_load_rtree


def _boxes(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, w = rng.uniform(112, 113, n), rng.uniform(24, 25, n), rng.uniform(0, 0.001, n)
    b = np.column_stack([x, y, x + w, y + w])
    b[0] = [-1.3, -2.7, -1.2, -2.6]  # negative coordinates round the other way
    return b


@pytest.mark.parametrize("n", [1, 2, 51, 52, 2_601, 60_000])  # 51 cells fill a 1,228-byte node
@pytest.mark.parametrize("step", [3, 1])  # consecutive ids (a bulk load's) go through json_each
def test_bulk_load_equals_row_by_row_and_passes_rtreecheck(n: int, step: int) -> None:
    b, ids = _boxes(n), np.arange(1, n + 1) * step + 40
    own, bulk = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for con in (own, bulk):
        con.execute("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)")
    own.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)",
                    zip(ids.tolist(), b[:, 0].tolist(), b[:, 2].tolist(), b[:, 1].tolist(), b[:, 3].tolist(), strict=True))
    bulk_load_rtree(bulk, "r", ids, b)
    # the same float32 boxes, rounded outwards exactly as SQLite rounds them
    assert bulk.execute("SELECT * FROM r ORDER BY id").fetchall() == own.execute("SELECT * FROM r ORDER BY id").fetchall()
    assert bulk.execute("SELECT rtreecheck('r')").fetchone() == ("ok",)
    q = "SELECT id FROM r WHERE minx <= 112.5 AND maxx >= 112.4 AND miny <= 24.5 AND maxy >= 24.4 ORDER BY id"
    assert bulk.execute(q).fetchall() == own.execute(q).fetchall()
    # SQLite keeps maintaining the tree afterwards
    bulk.execute("INSERT INTO r VALUES (999999999, 1, 2, 3, 4)")
    bulk.execute("DELETE FROM r WHERE id = 3")
    assert bulk.execute("SELECT rtreecheck('r')").fetchone() == ("ok",)


def _rtree_state(path: Path) -> tuple[str, int, int]:
    con = sqlite3.connect(path)
    try:
        check = con.execute("SELECT rtreecheck('rtree_parcels_geom')").fetchone()[0]
        n = con.execute("SELECT count(*) FROM rtree_parcels_geom").fetchone()[0]
        trig = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'rtree_parcels_geom_%'"
        ).fetchone()[0]
    finally:
        con.close()
    return check, n, trig


def test_bulk_writes_keep_index_triggers_and_extent(tmp_path: Path) -> None:
    """Replace (bulk-loaded), append (row by row) and an edit afterwards: the index stays exact."""
    from landquota.store.api import open_workspace
    from tests.gridcounty import grid_parcels

    path = tmp_path / "w.gpkg"
    ws = open_workspace(path, create=True)
    before = _rtree_state(path)
    parcels = grid_parcels(BULK_RTREE_ROWS * 3)
    n = len(parcels)
    ws.write_layer("parcels", parcels)
    assert _rtree_state(path) == ("ok", n, before[2])  # every trigger back
    box = tuple(parcels.geometry.iloc[[5]].total_bounds)
    want = set(parcels.parcel_id[parcels.intersects(shapely.box(*box))])
    assert set(ws.read_layer("parcels", bbox=box).parcel_id) == want
    x0, y0, x1, y1 = parcels.total_bounds
    con = sqlite3.connect(path)
    ext = con.execute("SELECT min_x, min_y, max_x, max_y FROM gpkg_contents WHERE table_name = 'parcels'").fetchone()
    assert ext == pytest.approx((x0, y0, x1, y1), abs=0)
    con.close()
    more = grid_parcels(10).assign(parcel_id=lambda d: "X" + d.parcel_id)
    ws.write_layer("parcels", more, mode="append")
    assert _rtree_state(path)[:2] == ("ok", n + len(more))
    ws.write_layer("parcels", parcels)  # replace again: the emptied index is bulk-loaded again
    assert _rtree_state(path)[:2] == ("ok", n)
    ws.close()
    # the restored triggers maintain the index on a later edit made outside landquota
    con = sqlite3.connect(path)
    con.execute("DELETE FROM parcels WHERE fid = (SELECT min(fid) FROM parcels)")
    con.commit()
    con.close()
    assert _rtree_state(path)[:2] == ("ok", n - 1)
