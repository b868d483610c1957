"""Import of messy bureau files (issue 3), on both backends; fixtures from tests/importdata.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import importdata as fx
import pandas as pd
import pytest
import shapely

from landquota.errors import CRSError, ImportDataError, ParameterError
from landquota.intake.crs import suggest_crs
from landquota.intake.encodings import detect_encoding
from landquota.intake.importer import import_layer
from landquota.intake.mapping import load_mapping

ROOT = Path(__file__).resolve().parents[1]

# The base patches: 100 m squares, TBMJ 10,000, KCMJ 1,000 on the two cultivated ones,
# TBDLMJ = TBMJ − KCMJ = 9,000 and 10,000 (hand computation, see importdata.PATCHES).
EXPECTED_NET = [9_000.0, 9_000.0, 10_000.0, 10_000.0]
EXPECTED_TOWN = ["阳城镇", "阳城镇", "黎埠镇", "黎埠镇"]


def _state(ws: Any) -> list[tuple[str, str, float, str]]:
    df = ws.read_layer("parcels")
    return sorted(zip(df.parcel_id, df.land_class, df.net_m2, df.geometry.to_wkb(hex=True), strict=True))


def _seed(ws: Any, tmp_path: Path) -> list[tuple[str, str, float, str]]:
    """Put a known layer in the workspace (the base patches, 4 rows)."""
    import_layer(fx.central_meridian(tmp_path), ws, layer="parcels")
    before = _state(ws)
    assert len(before) == 4
    return before


# --- files that import, with what the report must say ------------------------------------------
OK_CASES: list[tuple[str, Callable[[Path], Path], dict[str, Any], Callable[[Any], None]]] = [
    ("gbk shapefile without .cpg", fx.gbk_shapefile_without_cpg, {},
     lambda r: (r.encoding == "gb18030") or pytest.fail(r.encoding)),
    ("utf-8 shapefile", fx.utf8_shapefile, {}, lambda r: r.encoding == "utf-8" or pytest.fail(r.encoding)),
    ("zone-prefixed GK (EPSG:4526)", fx.zone_prefixed, {}, lambda r: r.source_crs == "EPSG:4526" or pytest.fail(r.source_crs)),
    ("central-meridian GK (EPSG:4547)", fx.central_meridian, {}, lambda r: r.transformed or pytest.fail()),
    ("swapped axes with swap_xy", fx.swapped_axes, {"swap_xy": True}, lambda r: r.swapped_xy or pytest.fail()),
    ("missing .prj with crs given", fx.no_prj, {"crs": "EPSG:4547"}, lambda r: r.source_crs == "EPSG:4547" or pytest.fail()),
    ("3D input", fx.three_d, {}, lambda r: r.dropped_z or pytest.fail("Z not reported")),
    ("FileGDB written by GDAL", fx.filegdb, {"src_layer": "DLTB"}, lambda r: r.driver == "OpenFileGDB" or pytest.fail(r.driver)),
    ("GeoJSON in EPSG:4490", fx.geojson_4490, {}, lambda r: (not r.transformed) or pytest.fail()),
    ("CSV with WKT, GBK", lambda p: fx.csv_wkt(p, encoding="gbk"), {"crs": 4547},
     lambda r: r.encoding == "gb18030" or pytest.fail(r.encoding)),
    ("CSV of vertices, X = northing", fx.csv_vertices, {"crs": 4547},
     lambda r: any("X = northing" in w for w in r.warnings) or pytest.fail(str(r.warnings))),
]


@pytest.mark.parametrize(("name", "make", "kw", "check"), OK_CASES, ids=[c[0] for c in OK_CASES])
def test_import_ok(ws: Any, tmp_path: Path, name: str, make: Callable[[Path], Path], kw: dict[str, Any],
                   check: Callable[[Any], None]) -> None:
    rep = import_layer(make(tmp_path), ws, layer="parcels", **kw)
    check(rep)
    df = ws.read_layer("parcels").sort_values("parcel_id").reset_index(drop=True)
    assert df.parcel_id.tolist() == fx.PATCHES.BSM.tolist()
    assert df.land_class.tolist() == ["0101", "0103", "0702", "0301"]
    assert df.net_m2.tolist() == EXPECTED_NET
    if "vertices" not in name:  # the vertex table has no ZLDWMC column
        assert df.town.tolist() == EXPECTED_TOWN  # never mojibake
    assert rep.rows_imported == 4 and not rep.rejected
    # the first square's south-west corner, 368,000 E / 2,700,000 N in EPSG:4547, ≈ 112.70°E 24.40°N
    minx, miny, _, _ = df.geometry.iloc[0].bounds
    assert abs(minx - 112.6988) < 1e-3 and abs(miny - 24.3981) < 1e-3
    assert (df.geometry.geom_type == "MultiPolygon").all()
    assert not shapely.has_z(df.geometry.values).any()


def test_bowtie_repaired_and_reported(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.bowtie(tmp_path), ws, layer="parcels")
    assert [(r["row"], r["id"]) for r in rep.repaired] == [(2, "4418230002")]
    assert "Self-intersection" in rep.repaired[0]["reason"]
    g = ws.read_layer("parcels", where={"parcel_id": "4418230002"}).geometry.iloc[0]
    # make_valid keeps both triangles of the bow-tie: 2 parts, half the square's area
    assert g.is_valid and len(g.geoms) == 2
    square = ws.read_layer("parcels", where={"parcel_id": "4418230001"}).geometry.iloc[0]
    assert g.area == pytest.approx(square.area / 2, rel=1e-3)


def test_empty_and_null_rejected_and_reported(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.empty_geometry(tmp_path), ws, layer="parcels")
    assert [(r["row"], r["id"]) for r in rep.rejected] == [(3, "4418230003"), (4, "4418230004")]
    assert "empty" in rep.rejected[0]["reason"] and "null" in rep.rejected[1]["reason"]
    assert rep.rows_read == 4 and rep.rows_imported == 2
    assert sorted(ws.read_layer("parcels").parcel_id) == ["4418230001", "4418230002"]


def test_unknown_land_class_reported(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.unknown_class(tmp_path), ws, layer="parcels")
    assert rep.unknown_land_classes == {"0399": 1}
    assert "0399" in rep.summary()


# --- files that are refused: message names file, row/field and fix; workspace unchanged --------
ERR_CASES: list[tuple[str, Callable[[Path], Path], dict[str, Any], type[Exception], list[str]]] = [
    ("missing CRS, 6-digit", fx.no_prj, {}, CRSError, ["noprj6.shp", "no CRS", "--crs", "4534"]),
    ("missing CRS, zone prefix", lambda p: fx.no_prj(p, prefixed=True), {}, CRSError,
     ["noprj8.shp", "EPSG:4526", "zone 38", "--crs"]),
    ("swapped axes", fx.swapped_axes, {}, CRSError, ["swapped.gpkg", "swapped", "--swap-xy"]),
    ("duplicate id", fx.duplicate_id, {}, ImportDataError, ["dup.gpkg", "'4418230002'", "rows 2 and 4", "unique"]),
    ("wrong field type", fx.wrong_type, {}, ImportDataError, ["wrongtype.gpkg", "'TBMJ'", "row 3", "'一万'", "fix"]),
    ("numeric DLBM", fx.numeric_dlbm, {}, ImportDataError, ["numdlbm.gpkg", "'DLBM'", "leading zeros", "text"]),
    ("not spatial data", fx.not_data, {}, ImportDataError, ["parcels.gpkg", "not spatial data", "Shapefile"]),
    ("mojibake in a GeoPackage", fx.mojibake_gpkg, {}, ImportDataError, ["garbled.gpkg", "row 1", "ZLDWMC", "mojibake"]),
    ("GBK read as UTF-8 on request", fx.gbk_shapefile_without_cpg, {"encoding": "utf-8"}, ImportDataError,
     ["dltb_gbk.shp", "row 1, field 'DLMC'", "not valid utf-8", "--encoding"]),
    ("GBK read as Latin-1 on request", fx.gbk_shapefile_without_cpg, {"encoding": "latin-1"}, ImportDataError,
     ["dltb_gbk.shp", "mojibake", "gb18030"]),
    ("wrong CRS given", fx.central_meridian, {"crs": "EPSG:4326"}, CRSError, ["cm114.gpkg", "not in China", "--crs"]),
]


@pytest.mark.parametrize(("name", "make", "kw", "exc", "words"), ERR_CASES, ids=[c[0] for c in ERR_CASES])
def test_import_refused_workspace_unchanged(ws: Any, tmp_path: Path, name: str, make: Callable[[Path], Path],
                                            kw: dict[str, Any], exc: type[Exception], words: list[str]) -> None:
    (tmp_path / "seed").mkdir()
    before = _seed(ws, tmp_path / "seed")
    src = make(tmp_path)
    with pytest.raises(exc) as info:
        import_layer(src, ws, layer="parcels", **kw)
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert _state(ws) == before


def test_append_refuses_duplicate_ids_and_replace_is_idempotent(ws: Any, tmp_path: Path) -> None:
    before = _seed(ws, tmp_path)
    with pytest.raises(ImportDataError, match="already exist"):
        import_layer(fx.central_meridian(tmp_path), ws, layer="parcels", mode="append")
    assert _state(ws) == before
    import_layer(fx.central_meridian(tmp_path), ws, layer="parcels", mode="replace")
    assert _state(ws) == before  # same file, same workspace


def test_append_adds_new_rows(ws: Any, tmp_path: Path) -> None:
    _seed(ws, tmp_path)
    g = fx.survey(x0=fx.X0 + 1_000)
    g["BSM"] = ["N1", "N2", "N3", "N4"]
    rep = import_layer(fx.write(g, tmp_path / "more.gpkg"), ws, layer="parcels", mode="append")
    assert rep.rows_imported == 4 and len(ws.read_layer("parcels")) == 8


def test_error_in_a_late_batch_leaves_workspace_unchanged(ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Batches 1 is written before batch 2 fails: the one transaction rolls both back."""
    import landquota.intake.sources as sources

    before = _seed(ws, tmp_path)
    monkeypatch.setattr(sources, "BATCH_ROWS", 2)
    with pytest.raises(ImportDataError, match="row 3"):
        import_layer(fx.wrong_type(tmp_path), ws, layer="parcels")
    assert _state(ws) == before


def test_mapping_file_toml_and_yaml(ws: Any, tmp_path: Path) -> None:
    g = fx.survey().rename(columns={"BSM": "OBJ", "DLBM": "CLS", "TBDLMJ": "NET_MU"})
    g["NET_MU"] = [13.5, 13.5, 15.0, 15.0]  # mu: 13.5 mu = 9,000 m² (1 mu = 10,000/15 m²)
    src = fx.write(g.drop(columns=["TBMJ", "KCMJ"]), tmp_path / "other.gpkg")
    toml = tmp_path / "map.toml"
    toml.write_text('[fields]\nOBJ = "parcel_id"\nCLS = "land_class"\nNET_MU = { column = "net_m2", unit = "mu" }\n',
                    encoding="utf-8")
    rep = import_layer(src, ws, layer="parcels", mapping=toml)
    df = ws.read_layer("parcels").sort_values("parcel_id")
    assert df.net_m2.round(6).tolist() == EXPECTED_NET
    assert rep.field_map["NET_MU"] == "net_m2"
    yml = tmp_path / "map.yaml"
    yml.write_text("fields:\n  OBJ: parcel_id\n  CLS: land_class\n  NET_MU: {column: net_m2, unit: mu}\n", encoding="utf-8")
    import_layer(src, ws, layer="parcels", mapping=yml)
    assert ws.read_layer("parcels").sort_values("parcel_id").net_m2.round(6).tolist() == EXPECTED_NET


def test_plan_zones_with_chinese_codes_and_defaults(tmp_path: Path) -> None:
    from landquota.store.api import open_workspace

    g = fx.survey()[["BSM", "geometry"]].rename(columns={"BSM": "zone_id"})
    g["GZQLX"] = ["允许建设区", "有条件建设区", "限制建设区", "禁止建设区"]
    src = fx.write(g, tmp_path / "zones.gpkg")
    with open_workspace(tmp_path / "ws.gpkg", create=True) as ws:
        import_layer(src, ws, layer="plan_zones",
                     mapping={"fields": {"GZQLX": "zone_type"}, "defaults": {"plan_version": "2006-2020"}})
        z = ws.read_layer("plan_zones").sort_values("zone_id")
        assert z.zone_type.tolist() == ["allowed", "conditional", "restricted", "prohibited"]
        assert set(z.plan_version) == {"2006-2020"}
        g["GZQLX"] = ["允许建设区", "X区", "限制建设区", "禁止建设区"]
        with pytest.raises(ImportDataError, match=r"'X区'.*row 2.*allowed.*values\.zone_type"):
            import_layer(fx.write(g, tmp_path / "zones2.gpkg"), ws, layer="plan_zones",
                         mapping={"fields": {"GZQLX": "zone_type"}, "defaults": {"plan_version": "v"}})


@pytest.mark.parametrize(
    ("mapping", "words"),
    [
        ({"fields": {"BSM": "nope"}}, ["nope", "parcel_id"]),
        ({"fields": {"BSM": {"column": "net_m2", "unit": "acre"}}}, ["acre", "mu"]),
        ({"colums": {}}, ["colums", "fields"]),
        ({"layer": "projects"}, ["projects", "parcels"]),
    ],
)
def test_bad_mapping_refused(mapping: dict[str, Any], words: list[str]) -> None:
    with pytest.raises(ImportDataError) as info:
        load_mapping(mapping, layer_name="parcels")
    for w in words:
        assert w in str(info.value)


def test_legacy_datums_warn(tmp_path: Path) -> None:
    from landquota.store.api import open_workspace

    for epsg, datum in ((2383, "Xian 1980"), (2435, "Beijing 1954")):
        with open_workspace(tmp_path / f"ws{epsg}.gpkg", create=True) as ws:
            rep = import_layer(fx.legacy(tmp_path, epsg), ws, layer="parcels")
            assert rep.transformed and any(datum in w and "metres" in w for w in rep.warnings), rep.warnings


# --- pure helpers ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([b"0101", b"abc"], "utf-8"),
        (["阳城镇".encode()], "utf-8"),
        (["阳城镇".encode("gbk"), b"0101"], "gb18030"),
        (["水田".encode("gb18030")], "gb18030"),
    ],
)
def test_detect_encoding(values: list[bytes], expected: str) -> None:
    assert detect_encoding(values)[0] == expected


def test_detect_encoding_refuses_other_bytes() -> None:
    with pytest.raises(ImportDataError, match="--encoding"):
        detect_encoding([b"\xff\xff\xff"])


@pytest.mark.parametrize(
    ("bounds", "codes", "words"),
    [
        # 38,368,000: zone 38 (CM 114°E) with prefix → EPSG:4513 + 38 − 25 = 4526
        ((38_368_000, 2_700_000, 38_368_400, 2_700_100), ["EPSG:4526"], ["zone 38"]),
        # zone 37 (CM 111°E) → 4525
        ((37_600_000, 2_700_000, 37_600_100, 2_700_100), ["EPSG:4525"], ["zone 37"]),
        ((112.7, 24.4, 112.8, 24.5), ["EPSG:4490"], ["longitudes"]),
        ((24.4, 112.7, 24.5, 112.8), ["EPSG:4490"], ["swapped"]),
        ((2_700_000, 368_000, 2_700_100, 368_400), [], ["swapped", "northing"]),
        ((368_000, 2_700_000, 368_400, 2_700_100), [], ["4534–4554"]),
    ],
)
def test_suggest_crs(bounds: tuple[float, ...], codes: list[str], words: list[str]) -> None:
    got, hint = suggest_crs(bounds)
    assert got == codes
    for w in words:
        assert w in hint


def test_suggest_crs_uses_the_county_for_six_digit_eastings() -> None:
    # 368,000 E under CM 114°E is 112.70°E, which is where Yangshan is: EPSG:4534 + (114 − 75)/3 = 4547
    got, _ = suggest_crs((368_000, 2_700_000, 368_400, 2_700_100), near=(112.37, 23.97, 113.02, 24.93))
    assert got[0] == "EPSG:4547"


def test_bad_parameters() -> None:
    with pytest.raises(ParameterError, match="mode"):
        import_layer("x.gpkg", object(), layer="parcels", mode="merge")  # type: ignore[arg-type]


# --- a killed import leaves the workspace as it was (PostGIS) ----------------------------------------
KILL_SCRIPT = textwrap.dedent(
    """
    import sys, time
    sys.path.insert(0, {tests!r})
    import landquota.store.postgis as pg
    import landquota.intake.importer as imp
    import landquota.intake.load as load
    import landquota.intake.sources as sources
    from landquota.store.api import open_workspace
    sources.BATCH_ROWS = 500
    load.BULK_ROWS = 1_000  # the bulk path: table truncated, keys and indexes dropped until the end
    real = pg._binary_rows
    calls = []
    def slow_rows(lyr, df, **kw):
        calls.append(1)
        if len(calls) == 3:  # two batches are in the COPY stream, uncommitted
            time.sleep(0.5)
            open({marker!r}, "w").write("ready")
            time.sleep(60)
        return real(lyr, df, **kw)
    pg._binary_rows = slow_rows
    ws = open_workspace({url!r})
    imp.import_layer({src!r}, ws, layer="parcels", mode="replace")
    """
)


@pytest.mark.postgis
def test_sigkill_mid_import_leaves_postgis_unchanged(pg_url: str, tmp_path: Path) -> None:
    from landquota.store.api import open_workspace

    ws = open_workspace(pg_url, create=True)
    try:
        before = _seed(ws, tmp_path)
        schema_before = _pg_keys_and_indexes(ws)
        src = fx.big_gpkg(tmp_path, 3_000)
        marker = tmp_path / "ready"
        script = KILL_SCRIPT.format(tests=str(ROOT / "tests"), marker=str(marker), url=pg_url, src=str(src))
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)
        deadline = time.monotonic() + 60
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"the import subprocess never reached its second batch (rc={proc.returncode})")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        assert _state(ws) == before  # nothing of the 1,000 rows sent, the 4 old rows intact
        assert "import.parcels" in ws.meta() and "big3000" not in ws.meta()["import.parcels"]
        assert _pg_keys_and_indexes(ws) == schema_before  # dropped keys and indexes are back
    finally:
        ws.close()


def _pg_keys_and_indexes(ws: Any) -> tuple[list[Any], list[Any]]:
    import sqlalchemy as sa

    with ws.engine.connect() as c:
        t = f'"{ws.schema}".parcels'
        keys = c.execute(sa.text("SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                 "WHERE conrelid = to_regclass(:t) ORDER BY 1"), {"t": t}).all()
        idx = c.execute(sa.text("SELECT pg_get_indexdef(indexrelid) FROM pg_index "
                                "WHERE indrelid = to_regclass(:t) ORDER BY 1"), {"t": t}).all()
    return [tuple(r) for r in keys], [tuple(r) for r in idx]


@pytest.mark.postgis
def test_bulk_replace_on_postgis_restores_keys_and_indexes(pg_url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The bulk path drops the id keys and indexes during the load: after success, and after a
    duplicate id or a bad value in a late batch, the table has exactly its keys and indexes."""
    import landquota.intake.load as load
    import landquota.intake.sources as sources
    from landquota.store.api import open_workspace

    monkeypatch.setattr(load, "BULK_ROWS", 4)
    monkeypatch.setattr(sources, "BATCH_ROWS", 2)
    ws = open_workspace(pg_url, create=True)
    try:
        schema_before = _pg_keys_and_indexes(ws)
        assert any("PRIMARY KEY" in k[1] for k in schema_before[0]) and any("gist" in i[0] for i in schema_before[1])
        rep = import_layer(fx.multipolygons_4490(tmp_path), ws, layer="parcels")
        assert rep.rows_imported == 6 and _pg_keys_and_indexes(ws) == schema_before
        before = _state(ws)
        with pytest.raises(ImportDataError, match="appears in rows 2 and 6"):
            import_layer(fx.multipolygons_4490(tmp_path, duplicate=(1, 5)), ws, layer="parcels")
        with pytest.raises(ImportDataError, match="row 3"):
            import_layer(fx.wrong_type(tmp_path), ws, layer="parcels")
        assert _state(ws) == before and _pg_keys_and_indexes(ws) == schema_before
    finally:
        ws.close()


def test_report_summary_is_bilingual(ws: Any, tmp_path: Path) -> None:
    rep = import_layer(fx.gbk_shapefile_without_cpg(tmp_path), ws, layer="parcels")
    text = rep.summary()
    for w in ("已导入", "imported 4", "编码 encoding: gb18030", "EPSG:4547", "QSXZ"):
        assert w in text
    assert rep.to_dict()["rows_imported"] == 4
    recorded = json.loads(ws.meta()["import.parcels"])
    assert (recorded["encoding"], recorded["source_crs"], recorded["rows"]) == ("gb18030", "EPSG:4547", 4)


def test_table_without_geometry_from_gbk_csv(tmp_path: Path) -> None:
    from landquota.store.api import open_workspace

    src = tmp_path / "areas.csv"
    pd.DataFrame({
        "linkage_id": ["LA1", "LA2"], "name": ["大崀挂钩项目区", "七拱挂钩项目区"],
        "approval_date": ["2012年6月1日", "20130315"], "turnover_quota_m2": ["30,000", ""],
        "acceptance": ["已验收", "待验收"],
    }).to_csv(src, index=False, encoding="gbk")
    with open_workspace(tmp_path / "ws.gpkg", create=True) as ws:
        rep = import_layer(src, ws, layer="linkage_areas")
        got = ws.read_layer("linkage_areas").sort_values("linkage_id")
    assert rep.encoding == "gb18030" and rep.rows_imported == 2
    assert got.name.tolist() == ["大崀挂钩项目区", "七拱挂钩项目区"]
    assert got.approval_date.dt.strftime("%Y-%m-%d").tolist() == ["2012-06-01", "2013-03-15"]
    assert got.turnover_quota_m2.iloc[0] == 30_000.0 and pd.isna(got.turnover_quota_m2.iloc[1])
    assert got.acceptance.tolist() == ["passed", "pending"]


def test_system_layers_cannot_be_imported(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="written by landquota itself"):
        import_layer(tmp_path / "x.csv", object(), layer="quota_ledger")  # type: ignore[arg-type]


# --- the fast path: sources already in the contract's form (EPSG:4490 MultiPolygons) -----------
def test_fast_path_stores_the_source_geometries_exactly(ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """WKB passed through unchanged: the stored geometries equal the file's, bit for bit."""
    import pyogrio

    import landquota.intake.sources as sources

    monkeypatch.setattr(sources, "BATCH_ROWS", 4)  # two batches, so the read-ahead thread runs ahead
    src = fx.multipolygons_4490(tmp_path)
    rep = import_layer(src, ws, layer="parcels")
    assert rep.rows_imported == 6 and not rep.repaired and not rep.rejected
    want = pyogrio.read_dataframe(src)
    got = ws.read_layer("parcels").set_index("parcel_id").loc[want.BSM]
    assert list(shapely.to_wkb(got.geometry.values)) == list(shapely.to_wkb(want.geometry.values))


def test_fast_path_still_repairs_an_invalid_multipolygon(ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The validity test made ahead finds the bow-tie in the second batch; it is repaired and reported."""
    import landquota.intake.sources as sources

    monkeypatch.setattr(sources, "BATCH_ROWS", 4)
    rep = import_layer(fx.multipolygons_4490(tmp_path, bowtie_at=4), ws, layer="parcels")
    assert [(r["row"], r["id"]) for r in rep.repaired] == [(5, "4418230005")]
    g = ws.read_layer("parcels", where={"parcel_id": "4418230005"}).geometry.iloc[0]
    assert g.is_valid and len(g.geoms) == 2


@pytest.mark.parametrize("batch", [2, 100])
def test_duplicate_id_across_batches_names_both_rows(ws: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     batch: int) -> None:
    """Rows 2 and 6 share an id: refused with both rows named, in one batch or across three."""
    import landquota.intake.sources as sources

    before = _seed(ws, tmp_path)
    monkeypatch.setattr(sources, "BATCH_ROWS", batch)
    with pytest.raises(ImportDataError, match=r"'4418230002' appears in rows 2 and 6"):
        import_layer(fx.multipolygons_4490(tmp_path, duplicate=(1, 5)), ws, layer="parcels")
    assert _state(ws) == before


def test_read_ahead_keeps_order_raises_where_it_failed_and_closes_the_source() -> None:
    from landquota.intake.load import read_ahead

    closed: list[bool] = []

    def source(fail_at: int | None) -> Any:
        try:
            for i in range(6):
                if i == fail_at:
                    raise ImportDataError(f"bad batch {i}")
                yield i
        finally:
            closed.append(True)

    assert list(read_ahead(source(None), lambda i: i * i)) == [(i, i * i) for i in range(6)]
    got: list[int] = []
    with pytest.raises(ImportDataError, match="bad batch 3"):
        for i, _ in read_ahead(source(3), lambda i: i):
            got.append(i)
    assert got == [0, 1, 2]  # every batch before the bad one, in order
    it = read_ahead(source(None), lambda i: i, depth=1)
    assert next(it) == (0, 0)
    it.close()  # the consumer stops early (an error downstream): the worker stops too
    assert closed == [True, True, True]


@pytest.mark.parametrize(
    ("values", "maybe"),
    [
        (["阳城镇", "（水田）", None], False),  # Chinese and full-width brackets (EF BC 88): UTF-8 leads E4–EF
        (["Ë®Ìï"], True),  # GBK '水田' read as Latin-1: C3 8B …
        (["ok", "\ufffd"], True),  # the replacement character EF BF BD
        ([None, None], False),
    ],
)
def test_latin1_prefilter(values: list[str | None], maybe: bool) -> None:
    from landquota.intake.encodings import _may_hold_latin1

    assert _may_hold_latin1(pd.Series(values, dtype=object).astype("str")) is maybe


def _dated_gpkg(path: Path) -> Path:
    """linkage_areas with real DateTime fields (aware, then naive) and a real Date field."""
    import datetime as dt

    import pyarrow as pa
    import pyogrio

    base = {"linkage_id": ["LA1", "LA2"], "name": ["大崀", "七拱"], "acceptance": ["passed", "pending"]}
    day = [dt.date(2014, 1, 15), None]
    # aware: written from pandas, GDAL keeps each value's offset (2012-06-01T00:00:00+08:00);
    # 16:00 UTC on 31 May is 1 June 00:00 in Shanghai, 15 March 00:00 UTC is 08:00 there
    aware = pd.to_datetime(["2012-05-31T16:00:00Z", "2013-03-15T00:00:00Z"]).tz_convert("Asia/Shanghai")
    pyogrio.write_dataframe(pd.DataFrame({**base, "approval_date": aware, "acceptance_date": day}), path,
                            layer="aware")
    # naive DateTime plus a real Date field (date32 → OFTDate), written from Arrow
    naive = pd.Series(pd.to_datetime(["2012-06-01 09:30", "2013-03-15 00:00"]))
    pyogrio.write_arrow(pa.table({**base, "approval_date": pa.Array.from_pandas(naive),
                                  "acceptance_date": pa.array(day, pa.date32())}),
                        path, layer="naive", append=True, driver="GPKG", geometry_name=None,
                        geometry_type=None, crs=None)
    return path


@pytest.mark.parametrize(("src_layer", "timed_row"), [("aware", 2), ("naive", 1)])
def test_datetime_and_date_fields_import_as_dates(ws: Any, tmp_path: Path, src_layer: str, timed_row: int) -> None:
    # was: "Cannot use .astype to convert from timezone-aware dtype to timezone-naive"
    src = _dated_gpkg(tmp_path / "areas.gpkg")
    rep = import_layer(src, ws, layer="linkage_areas", src_layer=src_layer)
    got = ws.read_layer("linkage_areas").sort_values("linkage_id")
    assert rep.rows_imported == 2
    # aware: the Shanghai calendar day (not the UTC one, 31 May); naive: the value's own day
    assert got.approval_date.dt.strftime("%Y-%m-%d").tolist() == ["2012-06-01", "2013-03-15"]
    assert got.acceptance_date.iloc[0] == pd.Timestamp("2014-01-15") and pd.isna(got.acceptance_date.iloc[1])
    # the dropped time of day is said once, naming the field and the first row that had one
    timed = [w for w in rep.warnings if "times of day dropped" in w]
    assert len(timed) == 1 and "'approval_date'" in timed[0] and f"first at row {timed_row}" in timed[0]
    assert ("Asia/Shanghai" in timed[0]) == (src_layer == "aware")


def test_plain_source_stored_as_read_whether_decoded_or_not(ws: Any, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A CGCS2000 source goes in as its own WKB; a load need not decode the valid batches at all.

    Patches near Yangshan in EPSG:4490, no area field, so R2's net area is measured on
    the geometry: convex ones (the convex test vouches for them), a concave L and a
    holed square (GEOS judges those) in a second file, and in a third a bow-tie
    (repaired as always, its area measured on the repaired shape: its two lobes cancel
    on the source's). Whether a batch was decoded or not, every valid patch is stored
    exactly as the source has it and the measured areas are the same.
    """
    from landquota.intake import importer
    from landquota.rules.areas import ellipsoidal_area

    d = 0.001  # about 100 m
    x, y = 112.70, 24.40
    convex = [shapely.box(x + i * d, y, x + (i + 1) * d, y + d) for i in range(3)]
    convex.append(shapely.Polygon([(x, y + 2 * d), (x + d, y + 2 * d), (x + 0.5 * d, y + 3 * d)]))
    concave = shapely.Polygon([(x, y + 4 * d), (x + 2 * d, y + 4 * d), (x + 2 * d, y + 5 * d),
                               (x + d, y + 5 * d), (x + d, y + 6 * d), (x, y + 6 * d)])
    holed = shapely.box(x + 3 * d, y + 4 * d, x + 5 * d, y + 6 * d).difference(
        shapely.box(x + 3.5 * d, y + 4.5 * d, x + 4 * d, y + 5 * d))
    bowtie = shapely.Polygon([(x + 6 * d, y), (x + 7 * d, y + d), (x + 7 * d, y), (x + 6 * d, y + d)])

    def source(name: str, geoms: list[Any]) -> Path:
        gdf = gpd.GeoDataFrame({"BSM": [f"44182300{i:02d}" for i in range(len(geoms))], "DLBM": "0101"},
                               geometry=[shapely.MultiPolygon([g]) for g in geoms], crs=4490)
        return fx.write(gdf, tmp_path / name)

    seen: list[Any] = []
    real = importer._decode
    monkeypatch.setattr(importer, "_decode", lambda b, p, **k: seen.append(real(b, p, **k)) or seen[-1])
    for name, geoms, repaired in [("convex.gpkg", convex, []), ("mixed.gpkg", [*convex, concave, holed], []),
                                  ("bowtie.gpkg", [*convex, bowtie], ["4418230004"])]:
        seen.clear()
        rep = import_layer(source(name, geoms), ws, layer="parcels", allow_shrink=True)
        assert [r["id"] for r in rep.repaired] == repaired and not rep.rejected
        assert [dec.geoms is None for dec in seen] == [not repaired], name
        got = ws.read_layer("parcels").sort_values("parcel_id")
        assert len(got) == len(geoms)
        for g, stored, net in zip(geoms, got.geometry, got["net_m2"], strict=True):
            if shapely.is_valid(g):
                assert shapely.to_wkb(stored) == shapely.to_wkb(shapely.MultiPolygon([g])), name
            assert net == pytest.approx(float(ellipsoidal_area([stored], crs=4490)[0]), rel=1e-9)
        assert got["net_m2"].iloc[0] == pytest.approx(d * d * 101_000 * 111_000, rel=0.1)  # ~1.1 ha
