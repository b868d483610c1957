"""Imports never lose data (issue 12, item 1), on both backends.

A damaged source (a ``.shp`` cut short: GDAL reports ``Error in fread()`` and hands
back null geometries), a source whose every geometry is empty, a layer with no
features, and a replace that would leave fewer rows than the layer holds are each
refused; the workspace keeps every row. The CLI ends them with exit status 2.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import geopandas as gpd
import importdata as fx
import pandas as pd
import pyogrio
import pytest
import shapely
from sample import sample_layers

import landquota.intake.importer as imp
import landquota.intake.load as load
from landquota.errors import ImportDataError
from landquota.intake.gdal_errors import GdalErrors, gdal_errors
from landquota.intake.importer import import_layer

ROOT = Path(__file__).resolve().parents[1]
IMPORTABLE = [n for n in sample_layers() if n not in imp._NOT_IMPORTABLE]


def _state(ws: Any, name: str = "parcels") -> list[tuple[Any, ...]]:
    df = ws.read_layer(name)
    geo = df.geometry.to_wkb(hex=True) if isinstance(df, gpd.GeoDataFrame) else [""] * len(df)
    cols = sorted(c for c in df.columns if c != "geometry")
    return sorted(zip(*([str(v) for v in df[c]] for c in cols), [str(g) for g in geo], strict=True))


def _seed(ws: Any, tmp_path: Path) -> list[tuple[Any, ...]]:
    (tmp_path / "seed").mkdir(exist_ok=True)
    import_layer(fx.central_meridian(tmp_path / "seed"), ws, layer="parcels")
    before = _state(ws)
    assert len(before) == 4
    return before


def truncated_shapefile(folder: Path) -> Path:
    """The four patches as a shapefile whose .shp lost its second half (.shx, .dbf intact)."""
    path = fx.write(fx.survey(), folder / "dltb_cut.shp", encoding="UTF-8")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def all_empty_geojson(folder: Path) -> Path:
    """A GeoJSON FeatureCollection whose every geometry is an empty polygon."""
    doc = json.loads(fx.survey().to_crs(4490).to_json())
    for f in doc["features"]:
        f["geometry"] = {"type": "Polygon", "coordinates": []}
    path = folder / "all_empty.geojson"
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


def no_features_gpkg(folder: Path) -> Path:
    return fx.write(fx.survey().iloc[:0], folder / "none.gpkg", layer="DLTB")


def no_features_shp(folder: Path) -> Path:
    return fx.write(fx.survey().iloc[:0], folder / "none.shp", encoding="UTF-8")


REFUSED = [
    ("truncated shapefile", truncated_shapefile, ["dltb_cut.shp", "GDAL reported read errors", "fread",
                                                  "nothing was imported"]),
    ("all-empty GeoJSON", all_empty_geojson, ["all_empty.geojson", "every one of the 4 rows was rejected",
                                              "row 1 ('4418230001'): empty geometry", "row 4"]),
    ("0-feature GeoPackage layer", no_features_gpkg, ["none.gpkg", "'DLTB'", "the layer has no features"]),
    ("0-feature shapefile", no_features_shp, ["none.shp", "the layer has no features"]),
]


@pytest.mark.parametrize(("name", "make", "words"), REFUSED, ids=[r[0] for r in REFUSED])
def test_source_that_would_lose_data_is_refused(ws: Any, tmp_path: Path, name: str, make: Any,
                                                words: list[str]) -> None:
    before = _seed(ws, tmp_path)
    with pytest.raises(ImportDataError) as info:
        import_layer(make(tmp_path), ws, layer="parcels")
    msg = str(info.value)
    for w in words:
        assert w in msg, (w, msg)
    assert "not in China" not in msg  # the plain cause, not a CRS complaint about 0…0
    assert _state(ws) == before
    with pytest.raises(ImportDataError):  # appending nothing is refused as well
        import_layer(make(tmp_path), ws, layer="parcels", mode="append")
    assert _state(ws) == before


def test_cli_refusals_exit_2_with_one_line_and_keep_the_rows(ws_target: str, tmp_path: Path) -> None:
    from landquota.store.api import open_workspace

    with open_workspace(ws_target, create=True) as ws:
        before = _seed(ws, tmp_path)
    for make in (truncated_shapefile, all_empty_geojson, no_features_shp):
        r = subprocess.run(
            [sys.executable, "-m", "landquota", "import", str(make(tmp_path)), "--db", ws_target,
             "--layer", "parcels", "--no-progress"],
            capture_output=True, text=True, cwd=ROOT, timeout=120,
        )
        assert r.returncode == 2, (make.__name__, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "landquota import: 错误 error:" in lines[0], r.stderr  # no GDAL "ERROR 1:" beside it
        assert "Traceback" not in r.stderr and r.stdout == ""
    with open_workspace(ws_target) as ws:
        assert _state(ws) == before


def test_gdal_errors_are_captured_on_the_reading_thread(tmp_path: Path) -> None:
    """GDAL's own reports (not a Python exception) are what tells a cut .shp apart."""
    path = truncated_shapefile(tmp_path)
    errs = GdalErrors()
    with gdal_errors(errs):
        tbl = pyogrio.read_arrow(path)[1]
    assert tbl.num_rows == 4  # GDAL hands back every feature ...
    assert errs.listening and errs.failures and "fread" in errs.failures[0]  # ... and reports the damage
    clean = GdalErrors()
    with gdal_errors(clean):
        pyogrio.read_arrow(fx.central_meridian(tmp_path))
    assert clean.failures == []


@pytest.mark.parametrize("bulk", [False, True], ids=["delete", "truncate"])
def test_replace_that_shrinks_the_layer_needs_allow_shrink(ws: Any, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, bulk: bool) -> None:
    """4 parcels held; a source of 4 with 2 empty geometries would leave 2: refused, with both counts."""
    if bulk:  # PostGIS's bulk path counts the rows before its TRUNCATE
        monkeypatch.setattr(load, "BULK_ROWS", 2)
    before = _seed(ws, tmp_path)
    src = fx.empty_geometry(tmp_path)  # rows 3 (empty) and 4 (null) are rejected
    with pytest.raises(ImportDataError) as info:
        import_layer(src, ws, layer="parcels")
    msg = str(info.value)
    for w in ["empty.gpkg", "with 2 rows instead of the 4 it holds", "4 read, 2 rejected",
              "row 3 ('4418230003'): empty geometry", "row 4 ('4418230004'): null geometry", "--allow-shrink"]:
        assert w in msg, (w, msg)
    assert _state(ws) == before
    rep = import_layer(src, ws, layer="parcels", allow_shrink=True)
    assert (rep.rows_before, rep.rows_imported) == (4, 2)
    assert "4 rows before" in rep.summary()
    assert sorted(ws.read_layer("parcels").parcel_id) == ["4418230001", "4418230002"]
    # growing or keeping the size needs no flag
    rep = import_layer(fx.central_meridian(tmp_path / "seed"), ws, layer="parcels")
    assert (rep.rows_before, rep.rows_imported) == (2, 4)


def test_many_rejected_rows_go_to_a_file(ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seed 4; a source of 15 with 12 empty geometries keeps 3 < 4: refused, rows listed in a CSV."""
    before = _seed(ws, tmp_path)
    n = 15
    geoms: list[object] = [shapely.Polygon()] * 12 + fx.squares(n=3)
    g = gpd.GeoDataFrame({"BSM": [f"B{i:02d}" for i in range(n)], "DLBM": ["0101"] * n}, geometry=geoms, crs=4547)
    src = fx.write(g, tmp_path / "mostly_empty.gpkg")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImportDataError) as info:
        import_layer(src, ws, layer="parcels")
    msg = str(info.value)
    assert "The 12 rejected rows (row number, id, reason) are listed in" in msg
    # issue 15: in out/ (made here, it did not exist), never the current folder
    assert not list(tmp_path.glob("landquota-rejected-*"))
    written = list((tmp_path / "out").glob("landquota-rejected-parcels-*.csv"))
    assert len(written) == 1 and str(Path("out") / written[0].name) in msg
    rows = pd.read_csv(written[0], encoding="utf-8-sig", dtype=str)
    assert rows.columns.tolist() == ["source", "row", "id", "reason"]
    assert rows.row.tolist() == [str(i) for i in range(1, 13)] and rows.id.iloc[0] == "B00"
    assert _state(ws) == before
    # an explicit --rejects file is written whether or not the import lands
    out = tmp_path / "rejects.csv"
    rep = import_layer(src, ws, layer="parcels", allow_shrink=True, rejects=out)
    assert rep.rows_imported == 3
    assert len(pd.read_csv(out, encoding="utf-8-sig")) == 12


def test_dbf_records_marked_deleted_are_not_mistaken_for_damage(ws: Any, tmp_path: Path) -> None:
    """GDAL counts a DBF's deleted records in the layer's size but skips them when reading."""
    path = fx.write(fx.survey(), tmp_path / "deleted.shp", encoding="UTF-8")
    dbf = path.with_suffix(".dbf")
    data = bytearray(dbf.read_bytes())
    header, size = int.from_bytes(data[8:10], "little"), int.from_bytes(data[10:12], "little")
    data[header + 3 * size] = ord("*")  # record 4 deleted, as dBASE marks it
    dbf.write_bytes(bytes(data))
    assert pyogrio.read_info(path)["features"] == 4
    rep = import_layer(path, ws, layer="parcels")
    assert rep.rows_imported == 3
    assert any("1 record(s) marked deleted" in w for w in rep.warnings), rep.warnings


def _sample_source(name: str, frame: pd.DataFrame, folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.gpkg"
    frame = frame.copy()
    for c in frame.columns:  # dates as the text bureaus' tables carry
        if pd.api.types.is_datetime64_any_dtype(frame[c]):
            frame[c] = frame[c].dt.strftime("%Y-%m-%d")
    pyogrio.write_dataframe(frame, path, layer=name)
    return path


@pytest.mark.parametrize("name", IMPORTABLE)
def test_every_layer_refuses_an_empty_source_and_a_shrinking_replace(ws: Any, tmp_path: Path, name: str) -> None:
    frames = sample_layers()
    ws.write_layers({k: v for k, v in frames.items() if k in IMPORTABLE})
    before = _state(ws, name)
    empty = _sample_source(name, frames[name].iloc[:0], tmp_path)
    with pytest.raises(ImportDataError, match="the layer has no features"):
        import_layer(empty, ws, layer=name)
    assert _state(ws, name) == before
    if len(frames[name]) > 1:
        fewer = _sample_source(name, frames[name].iloc[:1], tmp_path / "fewer")
        with pytest.raises(ImportDataError, match=f"layer '{name}' with 1 rows instead of the {len(before)}"):
            import_layer(fewer, ws, layer=name)
        assert _state(ws, name) == before


def test_replace_of_a_layer_others_refer_to_is_refused_cleanly(ws: Any, tmp_path: Path) -> None:
    # A committed run's allocations refer to its projects: re-importing the projects over
    # them used to end in a sqlite3/psycopg IntegrityError traceback. Now one refusal that
    # names the referring layers, and every row kept.
    frames = sample_layers()
    ws.write_layers(frames)
    assert len(ws.read_layer("allocations"))
    before = _state(ws, "projects")
    src = _sample_source("projects", frames["projects"], tmp_path)
    with pytest.raises(ImportDataError, match=r"layer 'projects' cannot be replaced: rows of other layers \(allocations, "):
        import_layer(src, ws, layer="projects")
    assert _state(ws, "projects") == before
    assert len(ws.read_layer("allocations")) == len(frames["allocations"])
