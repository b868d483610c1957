"""VCT (GB/T 17798-2007) reader and writer, refereed by a file written by hand (tests/vctdata.py)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Transformer

from landquota.intake import vct, vct_geometry, vct_reader, vct_writer
from tests.vctdata import COUNTY_1, PARCEL_11, PARCEL_12, TEXT, write_fixture


@pytest.fixture()
def fixture_vct(tmp_path: Path) -> Path:
    return write_fixture(tmp_path / "hand.vct")


def _rel(a: float, b: float) -> float:
    return abs(a - b) / abs(b)


def test_layers_of_the_hand_written_file(fixture_vct: Path) -> None:
    layers = {x.name: x for x in vct.list_layers(fixture_vct)}
    assert list(layers) == ["XZQ", "DLTB", "DLJX"]
    assert layers["DLTB"].alias == "地类图斑" and layers["DLTB"].code == "2001010000"
    assert layers["DLTB"].geometry_type == "Polygon" and layers["DLJX"].geometry_type == "LineString"
    assert layers["DLTB"].crs == CRS.from_epsg(4547)  # CGCS2000, Gauss-Krüger, CM 114E, FE 500 km
    assert [layers[n].feature_count for n in ("XZQ", "DLTB", "DLJX")] == [1, 2, 4]
    assert [(f.name, f.kind) for f in layers["DLTB"].fields][:5] == [
        ("BSM", "int"), ("DLBM", "str"), ("DLMC", "str"), ("ZLDWMC", "str"), ("TBMJ", "float")]


def test_polygons_from_line_references_with_a_hole_and_a_reversed_line(fixture_vct: Path) -> None:
    d = vct_reader.read_layer(fixture_vct, "DLTB")
    assert d.crs == CRS.from_epsg(4547)
    assert d["BSM"].tolist() == [11, 12] and str(d["BSM"].dtype) == "Int64"
    a, b = d.geometry
    assert len(a.interiors) == 1  # line 103, after the ring break 0, is the hole
    assert a.equals(PARCEL_11) and b.equals(PARCEL_12)
    # areas equal to shapely's computation on the coordinates written by hand
    assert _rel(a.area, PARCEL_11.area) < 1e-9 and _rel(b.area, PARCEL_12.area) < 1e-9
    assert PARCEL_11.area == 100 * 100 - 20 * 20
    # the shared edge 102 is used forwards by 12 and backwards by 11
    assert a.intersection(b).length == pytest.approx(100.0)


def test_direct_coordinates_gb18030_text_and_types(fixture_vct: Path) -> None:
    x = vct_reader.read_layer(fixture_vct, "行政区")  # by the feature type's Chinese name
    assert x.geometry.iloc[0].equals(COUNTY_1) and x.geometry.iloc[0].area == 120_000
    assert x["XZQMC"].tolist() == ["阳山县"] and x["XZQDM"].tolist() == ["441823"]
    d = vct_reader.read_layer(fixture_vct, "2001010000")  # by the feature code
    assert d["DLMC"].tolist() == ["水田", "乔木林地"]
    assert d["ZLDWMC"].tolist() == ["阳城镇", "𠮷田村"]  # 𠮷 is a four-byte GB18030 character (not GBK)
    assert d["DLBM"].tolist() == ["0101", "0301"]  # Char keeps the leading zero
    assert d["TBMJ"].tolist() == [9600.0, 10012.55] and d["TBMJ"].dtype == np.float64
    assert d["GXSJ"].tolist() == ["20191231", None]  # an empty value is missing
    lines = vct_reader.read_layer(fixture_vct, "DLJX")
    assert lines["BSM"].tolist() == [101, 102, 103, 104]
    assert lines.geometry.iloc[1].equals(shapely.LineString([(370100, 2710000), (370100, 2710100)]))


def test_a_line_made_of_lines(tmp_path: Path) -> None:
    # line 105 (feature type 100) = line 101, then line 102 backwards; polygon 11 may use it
    text = TEXT.replace("LineEnd", "105\n2001010300\n0\n100\n2\n101,-102\n0\nLineEnd")
    text = text.replace("4\n101,-102,0,103", "3\n105,0,103").replace("103\n104\nTableEnd", "103\n104\n105\nTableEnd")
    p = tmp_path / "composite.vct"
    p.write_bytes(text.encode("gb18030"))
    lines = vct_reader.read_layer(p, "DLJX")
    assert lines["BSM"].tolist() == [101, 102, 103, 104, 105]
    assert lines.geometry.iloc[4].equals(PARCEL_11.exterior)
    assert vct_reader.read_layer(p, "DLTB").geometry.iloc[0].equals(PARCEL_11)


def test_an_empty_style_code_line(tmp_path: Path) -> None:
    # 图形表现编码 left empty: the object's third line is blank, not missing
    text = TEXT.replace("11\n2001010000\n0\n100", "11\n2001010000\n\n100")
    text = text.replace("101\n2001010300\n0\n1", "101\n2001010300\n\n1")
    assert text.count("\n\n1") == 2
    p = tmp_path / "nostyle.vct"
    p.write_bytes(text.encode("gb18030"))
    assert vct_reader.read_layer(p, "DLTB").geometry.iloc[0].equals(PARCEL_11)


def test_batches_stream_in_the_size_asked(fixture_vct: Path) -> None:
    sizes = [len(b) for b in vct_reader.iter_batches(fixture_vct, "DLJX", batch_size=3)]
    assert sizes == [3, 1]


def test_writer_round_trip_reads_back_identically(fixture_vct: Path, tmp_path: Path) -> None:
    layers = {n: vct_reader.read_layer(fixture_vct, n) for n in ("XZQ", "DLTB", "DLJX")}
    out = tmp_path / "out.vct"
    vct_writer.write(out, layers, codes={"XZQ": "1000600100", "DLTB": "2001010000", "DLJX": "2001010300"},
              aliases={"XZQ": "行政区", "DLTB": "地类图斑", "DLJX": "地类图斑界线"}, date="20191231")
    assert [x.name for x in vct.list_layers(out)] == ["XZQ", "DLTB", "DLJX"]
    for name, a in layers.items():
        b = vct_reader.read_layer(out, name)
        assert b.crs == a.crs
        pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")),
                                      pd.DataFrame(b.drop(columns="geometry")))
        assert shapely.equals_exact(a.geometry.to_numpy(), b.geometry.to_numpy(), tolerance=0).all()


def _objects(text: str, section: str) -> list[list[str]]:
    body = text.split(f"{section}Begin")[1].split(f"{section}End")[0]
    lines = [x.strip() for x in body.splitlines() if x.strip()]
    objs: list[list[str]] = []
    cur: list[str] = []
    for x in lines:
        cur.append(x)
        # an object ends with '0' once its body is complete (the id, code, style lines come first)
        if x == "0" and len(cur) > 4 and not (section == "Polygon" and cur[3] == "100" and len(cur) < 8):
            objs.append(cur)
            cur = []
    return objs


def test_writer_output_has_the_hand_written_files_structure(fixture_vct: Path, tmp_path: Path) -> None:
    """The writer's polygon and line objects are laid out line by line like the referee's."""
    out = tmp_path / "out.vct"
    vct_writer.write(out, {"DLTB": vct_reader.read_layer(fixture_vct, "DLTB")}, codes={"DLTB": "2001010000"})
    text = out.read_bytes().decode("gb18030")
    assert "\r\n" in text and text.startswith("HeadBegin\r\nDataMark:CNSDTF-VCT\r\nVersion:2.0\r\n")
    for key in ("CoordinateSystemType:P", "Spheroid:CGCS2000,6378137,298.257222101", "Projection:高斯-克吕格",
                "Parameters:114,0,,,,1,500000,0,3", "Separator:,"):
        assert key in text
    shape = re.compile(r"^\d+$")
    hand = _objects(TEXT, "Polygon")[1]  # polygon 11: id, code, style, 100, label, 21, count, refs…, 0
    mine = _objects(text.replace("\r\n", "\n"), "Polygon")[0]
    assert [bool(shape.match(x)) for x in hand[:4]] == [bool(shape.match(x)) for x in mine[:4]]
    assert hand[3] == mine[3] == "100" and hand[5] == mine[5] == "21"
    assert mine[7] == "13,0,14" and mine[6] == "3"  # outer ring, ring break, hole: like '101,-102,0,103'
    hand_line = _objects(TEXT, "Line")[0]  # id, code, style, 1, segments, 11, n, points…, 0
    mine_line = _objects(text.replace("\r\n", "\n"), "Line")[0]
    assert hand_line[3:6] == mine_line[3:6] == ["1", "1", "11"]
    assert text.split("AttributeBegin")[1].splitlines()[1:3] == ["DLTB", "11,0101,水田,阳城镇,9600.0,0.0,20191231"]


def test_header_variants_offset_and_northing_first(tmp_path: Path) -> None:
    # the older land-use header keys (MinX…, ScaleM), an offset and X = northing; the extent and the
    # offset are in the file's axis order, the extent relative to the offset like the coordinates
    text = TEXT.replace("XAxisDirection:E\nYAxisDirection:N", "XAxisDirection:N\nYAxisDirection:E")
    text = text.replace("ExtentMin:369900,2709900\nExtentMax:370300,2710200\nMapScale:10000\nOffset:0,0",
                        "MinX:9900\nMinY:69900\nMaxX:10200\nMaxY:70300\nScaleM:10000\nOffset:0,0")

    def swap(m: re.Match[str]) -> str:
        return f"{float(m.group(2)) - 2700000!r},{float(m.group(1)) - 300000!r}"

    body = text.split("HeadEnd")[1]
    body = re.sub(r"^(3\d{5}(?:\.\d+)?),(27\d{5}(?:\.\d+)?)$", swap, body, flags=re.M)
    text = text.split("HeadEnd")[0].replace("Offset:0,0", "Offset:2700000,300000") + "HeadEnd" + body
    p = tmp_path / "north.vct"
    p.write_bytes(text.encode("gb18030"))
    d = vct_reader.read_layer(p, "DLTB")
    assert d.geometry.iloc[0].equals(PARCEL_11) and d.geometry.iloc[1].equals(PARCEL_12)
    assert vct.read_header(p).extent == (369900, 2709900, 370300, 2710200)


def test_older_land_use_variants_of_the_code_and_table_lines(tmp_path: Path) -> None:
    # a colour between the geometry type and the table (the older land-use format), and a
    # table structure without its closing 0
    text = TEXT.replace("2001010000,地类图斑,Polygon,DLTB", "2001010000,地类图斑,Polygon,16711680,DLTB")
    text = text.replace("DLJX,1\nBSM,Int,10\n0\nTableStructureEnd", "DLJX,1\nBSM,Int,10\nTableStructureEnd")
    p = tmp_path / "old.vct"
    p.write_bytes(text.encode("gb18030"))
    assert [x.name for x in vct.list_layers(p)] == ["XZQ", "DLTB", "DLJX"]
    assert vct_reader.read_layer(p, "DLTB")["DLMC"].tolist() == ["水田", "乔木林地"]
    assert len(vct_reader.read_layer(p, "DLJX")) == 4


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("101,-102,0,103", "101,0,103", "do not close a ring"),
        ("101,-102,0,103", "101,-109,0,103", "references line 109, which is not in the Line section"),
        ("12,0301,乔木林地,𠮷田村,10012.55,0.0500,", "12,0301,乔木林地,10012.55,0.0500,", "this row has 6 values, the others 7"),
        ("12,0301,乔木林地,𠮷田村,10012.55,", "12,0301,乔木林地,𠮷田村,一万,", "'TBMJ' is a number field but holds '一万'"),
        ("370040,2710040\n370020,2710040\n370020,2710020\n0", "370040,2710040\n370020,2710040\n0",
         "expected a coordinate x,y, found '0'"),
        ("370100,2710000\n370100,2710100\n0", "370100,2710000\n370100,2710100\n370100,2710200\n0",
         "should end here with a line '0'"),
        ("DataMark:CNSDTF-VCT", "DataMark:SOMETHING", "not CNSDTF-VCT"),
    ],
)
def test_broken_files_are_refused_with_the_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in TEXT
    p = tmp_path / "bad.vct"
    p.write_bytes(TEXT.replace(old, new).encode("gb18030"))
    with pytest.raises(vct.VctError, match=re.escape(message)) as err:
        vct_reader.read_layer(p, "DLTB")
    assert re.search(r"line \d+", str(err.value)) and "bad.vct" in str(err.value)


def test_unknown_layer_lists_the_layers(fixture_vct: Path) -> None:
    with pytest.raises(vct.VctError, match="its layers are DLJX, DLTB, XZQ"):
        vct_reader.read_layer(fixture_vct, "CZKFBJ")


def test_import_through_the_load_pipeline(fixture_vct: Path, ws: object) -> None:
    from landquota.intake.importer import import_layer

    report = import_layer(fixture_vct, ws, layer="parcels", src_layer="DLTB")  # type: ignore[arg-type]
    assert report.rows_imported == 2 and report.driver == "VCT" and report.source_crs == "EPSG:4547"
    assert report.encoding == "gb18030"
    got = ws.read_layer("parcels").sort_values("parcel_id")  # type: ignore[attr-defined]
    assert got["parcel_id"].tolist() == ["11", "12"]
    assert got["land_class"].tolist() == ["0101", "0301"] and got["town"].tolist() == ["阳城镇", "𠮷田村"]
    assert got.crs == CRS.from_epsg(4490)
    # back in the file's CRS, the stored geometries have the hand-computed areas
    back = Transformer.from_crs(4490, 4547, always_xy=True)
    for g, want in zip(got.geometry, (PARCEL_11, PARCEL_12), strict=True):
        g2 = shapely.transform(g, lambda xy: np.column_stack(back.transform(xy[:, 0], xy[:, 1])))
        assert _rel(g2.area, want.area) < 1e-9


def test_cli_import_vct(fixture_vct: Path, tmp_path: Path) -> None:
    from landquota.cli import main

    db = tmp_path / "w.gpkg"
    assert main(["init", "--db", str(db)]) == 0
    assert main(["import", str(fixture_vct), "--db", str(db), "--layer", "parcels"]) == 2  # three layers
    assert main(["import", str(fixture_vct), "--db", str(db), "--layer", "parcels", "--source-layer", "地类图斑"]) == 0


def test_a_line_layer_is_refused_in_plain_words(fixture_vct: Path, ws: object) -> None:
    from landquota.errors import ImportDataError
    from landquota.intake.importer import import_layer

    with pytest.raises(ImportDataError, match="lines"):
        import_layer(fixture_vct, ws, layer="parcels", src_layer="DLJX")  # type: ignore[arg-type]


def test_text_that_is_not_gb18030_is_refused_with_its_line(tmp_path: Path) -> None:
    p = tmp_path / "latin.vct"
    data = TEXT.replace("\n", "\r\n").encode("gb18030")
    p.write_bytes(data.replace("阳山县".encode("gb18030"), b"\x81\x20\xff"))  # not a GB18030 sequence
    want = TEXT.splitlines().index("1,441823,阳山县") + 1
    with pytest.raises(vct.VctError, match=rf"line {want}: not gb18030 text"):
        vct_reader.read_layer(p, "XZQ")


def test_utf8_without_a_byte_order_mark_is_recognised(tmp_path: Path) -> None:
    p = tmp_path / "utf8.vct"
    p.write_bytes(TEXT.encode("utf-8"))
    assert vct_reader.read_layer(p, "DLTB")["ZLDWMC"].tolist() == ["阳城镇", "𠮷田村"]
    assert [x.alias for x in vct.list_layers(p)] == ["行政区", "地类图斑", "地类图斑界线"]


@pytest.mark.slow
def test_memory_grows_by_an_index_not_by_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming: 4x the patches cost only the small id indexes (tracemalloc sees numpy too).

    A reader that kept the rows or the geometries would grow by several hundred bytes to
    kilobytes per patch; this one keeps ~24 bytes per line and per patch (plus sorting).
    """
    import importlib.util
    import tracemalloc

    spec = importlib.util.spec_from_file_location("bench_import", Path(__file__).parents[1] / "benchmarks"
                                                  / "bench_import.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(vct_geometry, "_WKB_CHUNK", 500)  # the pending geometries, constant, kept small here
    peaks = []
    for n in (2_000, 8_000):
        p = bench.generate_vct(tmp_path / f"g{n}.vct", n)
        tracemalloc.start()
        rows = sum(len(b) for b in vct_reader.iter_batches(p, "DLTB", batch_size=500))
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
        assert rows == n
    per_patch = (peaks[1] - peaks[0]) / 6_000
    assert per_patch < 300, f"{per_patch:.0f} bytes per patch"


def test_a_header_crs_landquota_does_not_know_asks_for_crs(tmp_path: Path, ws: object) -> None:
    from landquota.errors import CRSError
    from landquota.intake.importer import import_layer

    p = tmp_path / "nocrs.vct"
    p.write_bytes(TEXT.replace("Spheroid:CGCS2000,6378137,298.257222101", "Spheroid:Krasovsky?").encode("gb18030"))
    assert vct.read_header(p).crs is None
    with pytest.raises(CRSError, match=r"VCT header's Spheroid/Projection/Parameters .* --crs EPSG"):
        import_layer(p, ws, layer="parcels", src_layer="DLTB")  # type: ignore[arg-type]
    assert import_layer(p, ws, layer="parcels", src_layer="DLTB", crs="EPSG:4547").rows_imported == 2  # type: ignore[arg-type]
