"""`landquota export --format shp|gpkg|filegdb|vct` (issue 13 item 6), read back by GDAL's own tools."""

from __future__ import annotations

import csv
import re
import subprocess
from pathlib import Path

import pyogrio
import pytest
import shapely
from pyproj import CRS

from landquota.errors import ParameterError
from landquota.intake import vct, vct_reader
from landquota.outputs.export import dbf_names, export_layers
from landquota.store.api import open_workspace
from landquota.store.workspace import Workspace
from tests.sample import sample_layers


@pytest.fixture()
def filled(ws: Workspace) -> Workspace:
    ws.write_layers(sample_layers())
    return ws


def _ogrinfo(*args: str) -> str:
    # Debian's GDAL command-line tool, not the Python bindings: what a colleague would run
    return subprocess.run(["ogrinfo", *args], check=True, capture_output=True, text=True, encoding="utf-8").stdout


def test_dbf_names_are_short_deterministic_and_unique() -> None:
    cols = ["parcel_id", "land_class", "deduction_m2", "grain_kg_per_m2", "agreed_start_date",
            "actual_start_date", "agreed_start_datum", "坐落单位名称"]
    m = dbf_names(cols)
    assert m["parcel_id"] == "parcel_id" and m["land_class"] == "land_class"  # 10 bytes: kept
    assert m["deduction_m2"] == "ddctn_m2"
    assert m["grain_kg_per_m2"] == "grn_kg_pr_"  # vowels dropped, then cut to 10 bytes
    assert m["agreed_start_date"] == "agrd_strt_" and m["agreed_start_datum"] == "agrd_str_1"  # collision
    assert m["坐落单位名称"] == "坐落单"  # whole characters, 9 of 10 UTF-8 bytes
    assert dbf_names(["坐落单位名称"], "gbk")["坐落单位名称"] == "坐落单位名"  # as a GBK DBF cuts it
    assert all(len(v.encode()) <= 10 for v in m.values()) and len({v.upper() for v in m.values()}) == len(m)
    assert dbf_names(cols) == m  # deterministic


@pytest.mark.parametrize(("encoding", "cpg", "codec"), [("utf-8", "UTF-8", "utf-8"), ("gbk", "CP936", "gbk")])
def test_shapefile_keeps_chinese_text_for_ogrinfo(filled: Workspace, tmp_path: Path, encoding: str, cpg: str,
                                                   codec: str) -> None:
    out = tmp_path / "shp"
    res = export_layers(filled, out, fmt="shp", layers=["parcels", "towns"], encoding=encoding)
    assert res.rows == {"parcels": 3, "towns": 1}
    assert (out / "parcels.cpg").read_text().strip() == cpg
    raw = (out / "towns.dbf").read_bytes()
    assert "阳城镇（虚构）".encode(codec) in raw  # GDAL wrote the DBF in the encoding asked
    text = _ogrinfo("-al", str(out / "towns.shp"))
    assert "name (String) = 阳城镇（虚构）" in text
    assert 'ID["EPSG",4490]' in text  # the .prj is recognised as CGCS2000
    parcels = _ogrinfo("-al", str(out / "parcels.shp"))
    assert "ddctn_m2 (Real) = 1000" in parcels and "town (String) = 阳城镇（虚构）" in parcels
    with open(out / "fieldnames.csv", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    assert {"layer": "parcels", "column": "deduction_m2", "dbf_field": "ddctn_m2"} in rows
    assert {"layer": "parcels", "column": "grain_kg_per_m2", "dbf_field": "grn_kg_pr_"} in rows


def test_shapefile_warns_of_text_a_dbf_cannot_hold(filled: Workspace, tmp_path: Path) -> None:
    towns = sample_layers()["towns"].assign(name="镇" * 100)  # 300 UTF-8 bytes
    filled.write_layer("towns", towns)
    res = export_layers(filled, tmp_path / "s", fmt="shp", layers=["towns"])
    assert res.warnings and "towns: name" in res.warnings[0] and "254 bytes" in res.warnings[0]
    assert not export_layers(filled, tmp_path / "g", fmt="shp", layers=["towns"], encoding="gbk").warnings  # 200


def test_shapefile_dates_are_dbf_dates_and_timestamps_iso_text(
    filled: Workspace, tmp_path: Path, recwarn: pytest.WarningsRecorder
) -> None:
    out = tmp_path / "shp"
    export_layers(filled, out, fmt="shp", layers=["stock_land", "quota_ledger"])
    assert not [w for w in recwarn if "DateTime requested" in str(w.message)]
    stock = _ogrinfo("-al", str(out / "stock_land.shp"))
    # DBF's own Date type, which desktop GIS sorts and filters as dates
    assert "apprvl_dt (Date) = 2011/03/01" in stock and "dspsl_dt (Date) = 2013/05/01" in stock
    assert "actl_strt_ (Date) = (null)" in stock
    ledger = _ogrinfo("-al", str(out / "quota_ledger.dbf"))
    assert "effctv_dt (Date) = 2014/01/01" in ledger
    # DBF has no date-time: a stamp with a time of day keeps it, as ISO 8601 text in UTC
    # (the stamp is the workspace's own on PostGIS, the row's on a GeoPackage)
    assert re.search(r"entered_at \(String\) = \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\n", ledger)


def test_shapefile_in_a_gauss_kruger_zone(filled: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "gk"
    export_layers(filled, out, fmt="shp", layers=["parcels"], crs="EPSG:4547")
    assert "CGCS2000_3_Degree_GK_CM_114E" in (out / "parcels.prj").read_text()  # the ESRI name desktop GIS knows
    assert CRS.from_user_input(pyogrio.read_info(out / "parcels.shp")["crs"]).to_epsg() == 4547
    text = _ogrinfo("-so", str(out / "parcels.shp"), "parcels")
    assert 'PROJCRS["CGCS2000 / 3-degree Gauss-Kruger CM 114E"' in text and 'ID["EPSG",4547]' in text
    got = pyogrio.read_dataframe(out / "parcels.shp")
    want = sample_layers()["parcels"].to_crs(4547)
    # the shapefile turns rings clockwise and reads single parts as Polygons: same shapes
    assert (shapely.area(shapely.symmetric_difference(got.geometry.values, want.geometry.values)) < 1e-6).all()


def test_filegdb_and_gpkg_layers(filled: Workspace, tmp_path: Path) -> None:
    assert "OpenFileGDB -vector- (rw" in _ogrinfo("--formats")  # GDAL >= 3.6 writes FileGDB
    gdb = tmp_path / "out.gdb"
    res = export_layers(filled, gdb, fmt="filegdb")  # every layer holding rows
    assert res.rows["parcels"] == 3 and all(res.rows.values())  # the layers holding rows, and only them
    text = _ogrinfo("-al", str(gdb), "towns")
    assert "阳城镇（虚构）" in text
    names = {str(n) for n in pyogrio.list_layers(gdb)[:, 0]}
    assert {"county", "towns", "parcels", "projects"} <= names
    gpkg = tmp_path / "two.gpkg"
    export_layers(filled, gpkg, fmt="gpkg", layers=["parcels", "towns"])
    assert {str(n) for n in pyogrio.list_layers(gpkg)[:, 0]} == {"parcels", "towns"}
    assert pyogrio.read_dataframe(gpkg, layer="parcels")["land_class"].tolist() == ["0101", "0702", "0301"]


def test_vct_export_reads_back(filled: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "out.vct"
    res = export_layers(filled, out, fmt="vct", crs="EPSG:4547")
    assert "linkage_areas" in res.skipped  # no geometry: VCT 2.0 has no attribute-only tables
    assert vct.read_header(out).crs == CRS.from_epsg(4547)
    got = vct_reader.read_layer(out, "parcels")
    want = filled.read_layer("parcels").to_crs(4547)
    assert got["parcel_id"].tolist() == want["parcel_id"].tolist()
    assert got["town"].tolist() == ["阳城镇（虚构）", "阳城镇（虚构）", None]
    assert shapely.equals_exact(got.geometry.values, shapely.get_geometry(want.geometry.values, 0),
                                tolerance=1e-6).all()


def test_refusals(filled: Workspace, tmp_path: Path) -> None:
    (tmp_path / "x.vct").write_text("old")
    with pytest.raises(ParameterError, match="exists"):
        export_layers(filled, tmp_path / "x.vct", fmt="vct")
    assert (tmp_path / "x.vct").read_text() == "old"
    with pytest.raises(ParameterError, match="not a workspace layer"):
        export_layers(filled, tmp_path / "y", fmt="shp", layers=["DLTB"])
    with pytest.raises(ParameterError, match="shapefiles only"):
        export_layers(filled, tmp_path / "y.gpkg", fmt="gpkg", layers=["parcels"], encoding="gbk")
    with pytest.raises(ParameterError, match="no geometry"):
        export_layers(filled, tmp_path / "y.vct", fmt="vct", layers=["linkage_areas"])
    assert not list(tmp_path.glob(".*-part*"))


def test_cli_export_formats(tmp_path: Path) -> None:
    from landquota.cli import main

    db = tmp_path / "w.gpkg"
    with open_workspace(db, create=True) as w:
        w.write_layers(sample_layers())
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "s"), "--format", "shp", "--layer", "towns",
                 "--encoding", "gbk"]) == 0
    assert (tmp_path / "s" / "towns.cpg").read_text().strip() == "CP936"
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "a.vct"), "--format", "vct",
                 "--layer", "parcels", "--crs", "EPSG:4547"]) == 0
    assert len(vct_reader.read_layer(tmp_path / "a.vct", "parcels")) == 3
    # plain export and --format gpkg without --layer stay the whole-workspace backup
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "b.gpkg"), "--format", "gpkg"]) == 0
    with open_workspace(tmp_path / "b.gpkg") as b:
        assert b.layer_counts()["parcels"] == 3
    assert main(["export", "--db", str(db), "--out", str(tmp_path / "c.gpkg"), "--crs", "EPSG:4547"]) == 2
