"""``landquota import-survey``: a whole survey delivery in one transaction (issue 13 item 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import shapely
import surveydata as sd

from landquota.errors import ImportDataError
from landquota.intake.survey import find_layers, import_survey
from landquota.rules.areas import ellipsoidal_area


def _check_filled(ws: Any) -> None:
    parcels = ws.read_layer("parcels").sort_values("parcel_id").reset_index(drop=True)
    assert parcels.land_class.tolist() == ["0101", "0103", "0702", "0301"]
    assert parcels.town.tolist() == ["阳城镇", "阳城镇", "黎埠镇", "黎埠镇"]
    assert parcels.net_m2.tolist() == [9_000.0, 9_000.0, 10_000.0, 10_000.0]
    towns = ws.read_layer("towns").sort_values("town_id").reset_index(drop=True)
    # 黎埠镇's two rows are one town; its area is patches 3 + 4
    assert towns.town_id.tolist() == ["441823100", "441823101"]
    assert towns.name.tolist() == ["阳城镇", "黎埠镇"]
    p34 = shapely.union_all(parcels.geometry.values[2:])
    assert abs(ellipsoidal_area([towns.geometry[1]])[0] - ellipsoidal_area([p34])[0]) < 1e-3
    county = ws.read_layer("county")
    assert county.county_id.tolist() == ["441823"] and county.admin_code.tolist() == ["441823"]
    assert county.name.tolist() == ["阳山县"]
    # the union of four 100 m squares: 40,000 m² on the plane, ellipsoidal area within 0.5 %
    assert abs(ellipsoidal_area(county.geometry)[0] - 40_000.0) < 200.0
    lines = ws.read_layer("control_lines").sort_values("line_id").reset_index(drop=True)
    assert lines.line_id.tolist() == ["9001", "9002", "9101", "9201"]
    assert lines.kind.tolist() == ["basic_farmland", "basic_farmland", "eco_redline", "urban_boundary"]
    # basic farmland: the 水田 patch's TBDLMJ, 0 for the 旱地 one; other lines have no paddy part
    assert lines.paddy_m2.iloc[:2].tolist() == [9_000.0, 0.0] and lines.paddy_m2.iloc[2:].isna().all()
    assert set(lines.plan_version) == {"2021-2035"}
    zones = ws.read_layer("plan_zones").sort_values("zone_id").reset_index(drop=True)
    assert zones.zone_type.tolist() == ["allowed", "restricted"]


@pytest.mark.parametrize("form", ["filegdb", "shapefiles", "shapefiles, Chinese names"])
def test_import_survey_fills_every_layer_in_one_go(ws: Any, tmp_path: Path, form: str) -> None:
    pkg = sd.filegdb(tmp_path) if form == "filegdb" else sd.shapefile_folder(tmp_path, chinese="Chinese" in form)
    rep = import_survey(pkg, ws, plan_version="2021-2035", county_name="阳山县")
    _check_filled(ws)
    assert rep.rows == {"parcels": 4, "county": 1, "towns": 2, "control_lines": 4, "plan_zones": 2}
    assert not rep.missing and not rep.unrecognised
    text = rep.summary()
    for word in ("DLTB", "地类图斑", "parcels", "XZQ", "towns, county", "JSYDGZQ", "plan_zones", "one transaction"):
        assert word in text, (word, text)
    # the load is one write: validation is stale once, and each layer records its import
    meta = ws.meta()
    assert meta["validation.state"] == "stale"
    assert all(f"import.{n}" in meta for n in rep.rows)


def test_reports_missing_and_unrecognised_layers(ws: Any, tmp_path: Path) -> None:
    data = sd.layers()
    data = {"DLTB": data["DLTB"], "XZQ": data["XZQ"], "LSYD": data["STBHHX"]}  # LSYD: not stored
    rep = import_survey(sd.filegdb(tmp_path, data), ws, county_name="阳山县")
    assert rep.rows == {"parcels": 4, "county": 1, "towns": 2}
    assert rep.unrecognised == ["LSYD (441823三调成果.gdb)"]
    assert "STBHHX 生态保护红线" in rep.missing and "JSYDGZQ 建设用地管制区" in rep.missing
    assert "LSYD" in rep.summary() and "缺少 not in the package" in rep.summary()


@pytest.mark.slow  # two whole deliveries per case
@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("zone code", ["JSYDGZQ 建设用地管制区", "'099'", "zone_type", "workspace is unchanged"]),
        ("duplicate BSM", ["DLTB 地类图斑", "4418230001", "rows 1 and 4", "workspace is unchanged"]),
        ("no XZQMC", ["XZQ 行政区", "行政区名称", "workspace is unchanged"]),
    ],
)
def test_one_broken_layer_changes_nothing(ws: Any, tmp_path: Path, kind: str, words: list[str]) -> None:
    # a first, good delivery; then a broken one must leave every layer exactly as it was
    import_survey(sd.filegdb(tmp_path), ws, plan_version="2021-2035", county_name="阳山县")
    before = sd.snapshot(ws)
    (tmp_path / "bad").mkdir()
    with pytest.raises(ImportDataError) as info:
        import_survey(sd.shapefile_folder(tmp_path / "bad", sd.broken(kind)), ws, plan_version="2035",
                      county_name="另一个县")
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    after = sd.snapshot(ws)
    for name, df in before.items():
        assert df.equals(after[name]), name


def test_refusals_before_anything_is_read(ws: Any, tmp_path: Path) -> None:
    data = sd.layers()
    del data["DLTB"]
    with pytest.raises(ImportDataError, match="no 地类图斑 \\(DLTB\\) layer"):
        import_survey(sd.filegdb(tmp_path, data), ws)
    with pytest.raises(ImportDataError, match="--plan-version"):
        import_survey(_gdb2(tmp_path), ws)  # control lines and zones, but no plan version
    mdb = tmp_path / "delivery.mdb"
    mdb.write_bytes(b"\x00\x01\x00\x00Standard Jet DB\x00")
    with pytest.raises(ImportDataError) as info:
        import_survey(mdb, ws)
    assert "Personal Geodatabase" in str(info.value) and "ogr2ogr -f GPKG" in str(info.value)
    assert len(ws.read_layer("parcels")) == 0


def _gdb2(tmp_path: Path) -> Path:
    (tmp_path / "second").mkdir()
    return sd.filegdb(tmp_path / "second")


def test_layer_names_with_county_code_and_chinese_names(tmp_path: Path) -> None:
    from landquota.intake.survey import _standard

    assert _standard("441823DLTB").code == "DLTB"  # type: ignore[union-attr]
    assert _standard("DLTB_441823").code == "DLTB"  # type: ignore[union-attr]
    assert _standard("永久基本农田").code == "YJJBNTTB"  # type: ignore[union-attr]
    assert _standard("dltb").code == "DLTB"  # type: ignore[union-attr]
    assert _standard("LSYD") is None
    found = find_layers(sd.shapefile_folder(tmp_path, chinese=True))
    assert sorted(f.std.code for f in found if f.std) == sorted(sd.layers())


def test_cli_import_survey(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from landquota.cli import main
    from landquota.store.api import init_workspace

    db = tmp_path / "ws.gpkg"
    init_workspace(str(db)).close()
    pkg = sd.shapefile_folder(tmp_path, chinese=True)
    assert main(["import-survey", str(pkg), "--db", str(db), "--plan-version", "2021-2035",
                 "--county-name", "阳山县"]) == 0
    out = capsys.readouterr().out
    assert "地类图斑.shp = DLTB 地类图斑 → parcels" in out and "地类编码→land_class" in out
    assert "ZLDWDM→town" in out and "坐落单位代码" in out  # the township, by code
    # without a plan version the refusal is a usage-level error, exit code 2, nothing written
    db2 = tmp_path / "ws2.gpkg"
    init_workspace(str(db2)).close()
    assert main(["import-survey", str(pkg), "--db", str(db2)]) == 2
    assert "--plan-version" in capsys.readouterr().err


@pytest.mark.slow  # two whole deliveries per case
def test_a_smaller_delivery_needs_allow_shrink(ws: Any, tmp_path: Path) -> None:
    import_survey(sd.filegdb(tmp_path), ws, plan_version="2021-2035", county_name="阳山县")
    before = sd.snapshot(ws)
    data = sd.layers()
    data["JSYDGZQ"] = data["JSYDGZQ"].iloc[:1]  # one zone instead of two
    (tmp_path / "small").mkdir()
    pkg = sd.filegdb(tmp_path / "small", data)
    with pytest.raises(ImportDataError, match="allow-shrink"):
        import_survey(pkg, ws, plan_version="2021-2035", county_name="阳山县")
    assert all(df.equals(sd.snapshot(ws)[n]) for n, df in before.items())
    rep = import_survey(pkg, ws, plan_version="2021-2035", county_name="阳山县", allow_shrink=True)
    assert rep.rows["plan_zones"] == 1 and len(ws.read_layer("plan_zones")) == 1


def test_import_survey_from_a_vct_file(ws: Any, tmp_path: Path) -> None:
    from landquota.intake import vct_writer

    path = tmp_path / "441823.vct"
    # in VCT, BSM is the object identifier: an integer unique across the file
    data = {k: v.assign(BSM=v["BSM"].astype("int64")) for k, v in sd.layers().items()}
    vct_writer.write(path, data, aliases={"DLTB": "地类图斑", "XZQ": "行政区"})
    assert {f.std.code for f in find_layers(path) if f.std} == set(sd.layers())
    rep = import_survey(path, ws, plan_version="2021-2035", county_name="阳山县")
    assert rep.rows == {"parcels": 4, "county": 1, "towns": 2, "control_lines": 4, "plan_zones": 2}
    _check_filled(ws)


def test_town_comes_from_the_township_code_not_the_village_name(ws: Any, tmp_path: Path) -> None:
    # in a real DLTB, 坐落单位名称 names the village (村); the township is XZQ's row whose
    # 9-digit 行政区代码 begins the 19-digit 坐落单位代码
    data = sd.layers()
    dltb = data["DLTB"].copy()
    dltb["ZLDWMC"] = ["城南村", "城南村", "黎埠村", "黎埠村"]
    dltb.loc[3, "ZLDWDM"] = "4418239990010000000"  # a township XZQ does not have
    data["DLTB"] = dltb
    rep = import_survey(sd.filegdb(tmp_path, data), ws, plan_version="2021-2035", county_name="阳山县")
    towns = ws.read_layer("parcels").sort_values("parcel_id").town.tolist()
    assert towns == ["阳城镇", "阳城镇", "黎埠镇", "441823999"]
    assert any("坐落单位代码" in w and "not in XZQ" in w and "'441823999'" in w for w in rep.warnings)
