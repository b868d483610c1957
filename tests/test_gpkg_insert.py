"""GeoPackage inserts go in blocks of rows per statement: the file holds exactly what one row at a time wrote."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from landquota.store import gpkg
from landquota.store.api import open_workspace
from landquota.store.schema import layer
from tests.gridcounty import grid_parcels


def _table(path: Path) -> list[tuple[object, ...]]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT * FROM parcels ORDER BY fid").fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("block", [7, 100])
def test_blocks_write_what_single_rows_write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int) -> None:
    parcels = grid_parcels(1_234)  # not a multiple of either block: whole blocks, then single rows
    parcels.loc[parcels.index[::5], "town"] = None  # NULLs inside blocks
    written = {}
    for size in (1, block):
        monkeypatch.setattr(gpkg, "INSERT_BLOCK", size)
        path = tmp_path / f"b{size}.gpkg"
        open_workspace(path, create=True).write_layer("parcels", parcels)
        written[size] = _table(path)
    assert len(written[block]) == len(parcels)
    assert written[block] == written[1]  # every value and blob byte, fids 1..n in source order
    assert [r[0] for r in written[block]] == list(range(1, len(parcels) + 1))


def test_block_size_keeps_to_sqlites_parameter_limit(tmp_path: Path) -> None:
    ws = open_workspace(tmp_path / "w.gpkg", create=True)
    assert isinstance(ws, gpkg.GpkgWorkspace)
    con = sqlite3.connect(ws.path)
    try:
        columns = len(layer("parcels").column_names) + 2  # fid and geom too
        con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 2 * columns + 1)
        plan = ws._insert_begin(con, layer("parcels"))
        assert plan.block == 2 and plan.many.count("(?") == 2
        con.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, columns - 1)  # not even one row's worth
        assert ws._insert_begin(con, layer("parcels")).block == 1
    finally:
        con.rollback()
        con.close()


def test_a_refused_block_refuses_the_write_and_keeps_the_layer(tmp_path: Path) -> None:
    """An id already in the layer, inside a block: the statement fails whole, the write changes nothing."""
    from landquota.errors import DataError
    from landquota.store.workspace import prepare_frame

    path = tmp_path / "w.gpkg"
    ws = open_workspace(path, create=True)
    assert isinstance(ws, gpkg.GpkgWorkspace)
    ws.write_layer("parcels", grid_parcels(300))
    before = _table(path)
    more = grid_parcels(300, seed=1).assign(parcel_id=lambda d: "N" + d.parcel_id)
    more.loc[more.index[150], "parcel_id"] = before[7][2]  # row 151 of 300: inside the second block
    frame = prepare_frame(layer("parcels"), more)

    class Bar:
        n = 0

        def update(self, k: int) -> None:
            self.n += k

    bar = Bar()
    with pytest.raises(DataError, match=r"UNIQUE constraint failed: parcels\.parcel_id"), ws._tx() as con:
        ws._insert(con, layer("parcels"), frame, bar)
    assert bar.n == 0  # progress is counted per executemany call of up to 100 blocks
    assert _table(path) == before
