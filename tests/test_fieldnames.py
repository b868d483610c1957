"""Chinese field names in every source format, and CRS help with the county known (issue 13).

The fixtures are the four hand-checked patches of ``tests/importdata.py`` with the
survey fields under their standard Chinese names: in a GBK shapefile (whose DBF
cuts 坐落单位名称 to 坐落单位名) and in a UTF-8 GeoPackage. Both must import with no
mapping file and give exactly the Chinese town names and land classes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import importdata as fx
import pyogrio
import pytest
import shapely

from landquota.errors import CRSError, ImportDataError
from landquota.intake.fieldnames import dbf_cut, match_fields
from landquota.intake.importer import import_layer

EXPECTED_TOWN = ["阳城镇", "阳城镇", "黎埠镇", "黎埠镇"]


def test_gbk_shapefile_with_chinese_field_names_opens(ws: Any, tmp_path: Path) -> None:
    src = fx.chinese_names_gbk_shapefile(tmp_path)
    # the DBF really holds the GBK bytes, cut to 10 bytes (what made GDAL's UTF-8 read fail)
    names = list(pyogrio.read_info(src, encoding="GB18030")["fields"])
    assert "坐落单位名" in names and "扣除地类面" in names and "图斑地类面" in names
    rep = import_layer(src, ws, layer="parcels")
    assert rep.encoding == "gb18030"
    assert rep.field_map == {
        "标识码": "parcel_id", "地类编码": "land_class", "坐落单位名": "town",
        "图斑面积": "gross_m2", "扣除地类面": "deduction_m2", "图斑地类面": "net_m2",
    }
    assert rep.standard_not_stored == ["权属性质"]
    assert not rep.warnings  # 地类名称 was read and matches every 地类编码
    df = ws.read_layer("parcels").sort_values("parcel_id").reset_index(drop=True)
    assert df.parcel_id.tolist() == fx.PATCHES.BSM.tolist()
    assert df.land_class.tolist() == ["0101", "0103", "0702", "0301"]
    assert df.town.tolist() == EXPECTED_TOWN
    assert df.net_m2.tolist() == [9_000.0, 9_000.0, 10_000.0, 10_000.0]
    assert df.deduction_m2.tolist() == [1_000.0, 1_000.0, 0.0, 0.0]


def test_gbk_chinese_field_names_with_the_encoding_given(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.chinese_names_gbk_shapefile(tmp_path), ws, layer="parcels", encoding="gbk")
    assert rep.encoding == "gbk" and rep.field_map["坐落单位名"] == "town"
    assert ws.read_layer("parcels").sort_values("parcel_id").town.tolist() == EXPECTED_TOWN


def test_gbk_field_names_read_as_utf8_on_request_are_refused(ws: Any, tmp_path: Path) -> None:
    with pytest.raises(ImportDataError, match=r"field name 1 .* not valid utf-8"):
        import_layer(fx.chinese_names_gbk_shapefile(tmp_path), ws, layer="parcels", encoding="utf-8")
    assert len(ws.read_layer("parcels")) == 0


def test_geopackage_with_utf8_chinese_field_names(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.chinese_names_gpkg(tmp_path), ws, layer="parcels")
    assert rep.field_map["坐落单位名称"] == "town" and rep.field_map["扣除地类面积"] == "deduction_m2"
    df = ws.read_layer("parcels").sort_values("parcel_id").reset_index(drop=True)
    assert df.land_class.tolist() == ["0101", "0103", "0702", "0301"]
    assert df.town.tolist() == EXPECTED_TOWN
    assert df.net_m2.tolist() == [9_000.0, 9_000.0, 10_000.0, 10_000.0]


@pytest.mark.parametrize(
    ("layer", "fields", "expected"),
    [
        # pinyin codes, any case, full-width letters as Chinese input methods type them
        ("parcels", ["bsm", "ＤＬＢＭ", "ZLDWMC", "TBMJ", "KCMJ", "TBDLMJ"],
         ["parcel_id", "land_class", "town", "gross_m2", "deduction_m2", "net_m2"]),
        # 二调 names: 田坎面积 is the deduction
        ("parcels", ["图斑编号", "地类编码", "田坎面积"], ["parcel_id", "land_class", "deduction_m2"]),
        # UTF-8 DBF: 图斑地类面积 arrives as 图斑地 (9 bytes), still unambiguous
        ("parcels", ["标识码", "地类编码", "图斑地"], ["parcel_id", "land_class", "net_m2"]),
        ("towns", ["XZQDM", "XZQMC"], ["town_id", "name"]),
        ("towns", ["行政区代码", "行政区名称"], ["town_id", "name"]),
        ("plan_zones", ["BSM", "管制区类型代码"], ["zone_id", "zone_type"]),
        ("stock_land", ["电子监管号", "合同约定开工时间", "实际开工时间"],
         ["stock_id", "agreed_start_date", "actual_start_date"]),
        ("county", ["XZQDM", "行政区名称"], ["county_id", "name"]),
        ("projects", ["项目编号", "项目名称", "项目级别", "所在乡镇", "开工时间"],
         ["project_id", "name", "level", "town", "start_date"]),
        ("linkage_plots", ["地块编号", "项目区编号", "地块类型", "复垦耕地面积"],
         ["plot_id", "linkage_id", "role", "reclaimed_cultivated_m2"]),
    ],
)
def test_standard_names_match(layer: str, fields: list[str], expected: list[str]) -> None:
    m = match_fields(layer, fields)
    assert [m.columns[f][0] for f in fields] == expected


def test_cut_names_that_name_two_fields_are_not_guessed() -> None:
    # 坐落单位名称 (ZLDWMC) and 坐落单位代码 (ZLDWDM) both arrive as 坐落单 in a UTF-8 DBF
    assert dbf_cut("坐落单位名称", "utf-8") == dbf_cut("坐落单位代码", "utf-8") == "坐落单"
    assert "坐落单" not in match_fields("parcels", ["坐落单"]).columns
    # in GBK they differ, and the code is known but not stored
    m = match_fields("parcels", ["坐落单位名", "坐落单位代"])
    assert m.columns["坐落单位名"][0] == "town" and m.known == ["坐落单位代"]


def test_mapping_file_still_wins(ws: Any, tmp_path: Path) -> None:
    src = fx.chinese_names_gpkg(tmp_path)
    rep = import_layer(src, ws, layer="parcels", mapping={"fields": {"权属性质": "town"}})
    assert rep.field_map["权属性质"] == "town" and "坐落单位名称" in rep.ignored_fields
    assert sorted(ws.read_layer("parcels").town) == ["20", "30", "30", "30"]


# --- item 5: CRS help with the county boundary in the workspace -----------------------------
@pytest.fixture
def county_ws(ws: Any) -> Any:
    import geopandas as gpd

    # Yangshan's extent, roughly (112.4–113.0°E, 24.1–24.8°N)
    county = gpd.GeoDataFrame(
        {"county_id": ["441823"], "name": ["阳山县"], "admin_code": ["441823"]},
        geometry=[shapely.MultiPolygon([shapely.box(112.4, 24.1, 113.0, 24.8)])], crs=4490,
    )
    ws.write_layer("county", county)
    return ws


def test_prj_that_is_geographic_for_metres_gets_the_county_code(county_ws: Any, tmp_path: Path) -> None:
    with pytest.raises(CRSError) as info:
        import_layer(fx.wrong_prj(tmp_path, 4490), county_ws, layer="parcels")
    msg = str(info.value)
    assert "EPSG:4547" in msg and "workspace's county boundary" in msg and "chosen by nothing" not in msg


def test_prj_of_the_wrong_zone_is_refused_with_the_county_code(county_ws: Any, tmp_path: Path) -> None:
    # EPSG:4549 (CM 120°E) puts the patches near 118.7°E: in China, but ~600 km from the county
    with pytest.raises(CRSError) as info:
        import_layer(fx.wrong_prj(tmp_path, 4549), county_ws, layer="parcels")
    msg = str(info.value)
    assert "EPSG:4549" in msg and "far from the workspace's county" in msg and "--crs EPSG:4547" in msg
    assert len(county_ws.read_layer("parcels")) == 0
    # the right .prj imports
    assert import_layer(fx.wrong_prj(tmp_path, 4547), county_ws, layer="parcels").rows_imported == 4


def test_point_layer_gets_a_plain_message(ws: Any, tmp_path: Path) -> None:
    with pytest.raises(ImportDataError) as info:
        import_layer(fx.point_layer(tmp_path), ws, layer="parcels")
    msg = str(info.value)
    assert "points 点 (Point), not polygons" in msg and "DLTB" in msg
    assert "np.int" not in msg and "-type" not in msg


def test_readme_mapping_example_works(ws: Any, tmp_path: Path) -> None:
    import re

    import geopandas as gpd

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```toml\n(.*?)```", readme, re.S)
    assert block is not None
    mapping = tmp_path / "zones.toml"
    mapping.write_text(block.group(1), encoding="utf-8")
    src = tmp_path / "zones.gpkg"
    gpd.GeoDataFrame({"分区编号": ["Z1", "Z2"], "分区类型": ["1", "3"]}, geometry=fx.squares(n=2),
                     crs=4547).to_file(src)
    rep = import_layer(src, ws, layer="plan_zones", mapping=mapping)
    assert rep.field_map == {"分区编号": "zone_id", "分区类型": "zone_type"}
    zones = ws.read_layer("plan_zones").sort_values("zone_id")
    assert zones.zone_type.tolist() == ["allowed", "restricted"]
    assert set(zones.plan_version) == {"2006-2020"}


def test_cli_import_of_a_gbk_shapefile_with_chinese_field_names(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from landquota.cli import main
    from landquota.store.api import init_workspace, open_workspace

    db = tmp_path / "ws.gpkg"
    init_workspace(str(db)).close()
    src = fx.chinese_names_gbk_shapefile(tmp_path)
    # the failing command: no mapping, no --encoding
    assert main(["import", str(src), "--db", str(db), "--layer", "parcels", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "坐落单位名 → town" in out and "gb18030" in out and "权属性质 (standard)" in out
    with open_workspace(str(db)) as ws:
        assert sorted(ws.read_layer("parcels").town) == sorted(EXPECTED_TOWN)


def test_deduction_from_the_coefficient_when_there_is_no_kcmj(ws: Any, tmp_path: Path) -> None:
    # R2: KCMJ = TBMJ × KCXS. Patches 1–2 are cultivated with KCXS 0.1: 10,000 × 0.1 = 1,000 m²
    # deducted, net 9,000 m²; patches 3–4 have KCXS 0 (net = TBMJ). No KCMJ, no TBDLMJ field.
    gdf = fx.survey().drop(columns=["KCMJ", "TBDLMJ"]).assign(KCXS=[0.1, 0.1, 0.0, 0.0])
    src = tmp_path / "kcxs.gpkg"
    gdf.to_file(src)
    rep = import_layer(src, ws, layer="parcels")
    assert rep.field_map["KCXS"].startswith("deduction_m2")
    assert any("TBMJ × KCXS" in w for w in rep.warnings)
    df = ws.read_layer("parcels").sort_values("parcel_id")
    assert df.deduction_m2.tolist() == [1_000.0, 1_000.0, 0.0, 0.0]
    assert df.net_m2.tolist() == [9_000.0, 9_000.0, 10_000.0, 10_000.0]
    # with KCMJ present the coefficient is not used
    assert match_fields("parcels", ["TBMJ", "KCMJ", "KCXS"]).coefficient is None
    bad = tmp_path / "kcxs_bad.gpkg"
    gdf.assign(KCXS=[0.1, 1.5, 0.0, 0.0]).to_file(bad)
    with pytest.raises(ImportDataError, match=r"row 2, field 'KCXS'.*1\.5.*\[0, 1\)"):
        import_layer(bad, ws, layer="parcels")


def test_a_refused_source_leaves_no_gdal_handler_behind(tmp_path: Path) -> None:
    # pyogrio's failed open pushes a GDAL error handler it never pops; gdal_errors used to
    # pop that one instead of its own and free its callback, so the next GDAL warning on
    # the thread (GDAL laundering long GBK field names) crashed the process. Run in a
    # subprocess: a regression is a segfault, which must not take the test run with it.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from pathlib import Path
        import importdata as fx
        from landquota.errors import ImportDataError
        from landquota.intake.gdal_errors import GdalErrors
        from landquota.intake.importer import import_layer
        from landquota.store.api import init_workspace
        d = Path({str(tmp_path)!r})
        ws = init_workspace(str(d / "w.gpkg"))
        try:
            import_layer(fx.not_data(d), ws, layer="parcels")
        except ImportDataError:
            pass
        fx.chinese_names_gbk_shapefile(d)  # GDAL warns while writing: must not crash
        print("survived")
    """)
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "survived" in r.stdout, (r.returncode, r.stderr[-2000:])
