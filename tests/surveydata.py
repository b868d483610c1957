"""A survey delivery generated in code: the layers of a 三调 database and its plan layers.

Built on the four hand-checked patches of ``importdata.py`` (EPSG:4547, 100 m
squares side by side, ≈ 112.70°E 24.40°N). Every expected figure can be checked
by hand:

* ``DLTB`` 地类图斑: the four patches (BSM 4418230001–4); 0101 水田 and 0103 旱地 in
  阳城镇, 0702 and 0301 in 黎埠镇; TBDLMJ 9,000 / 9,000 / 10,000 / 10,000 m².
* ``XZQ`` 行政区: 阳城镇 (441823100) over patches 1–2 as ONE row; 黎埠镇 (441823101)
  over patches 3–4 as TWO rows (a township in two parts), dissolved to one town.
  The county is their union, code 441823: one 400 m × 100 m rectangle.
* ``YJJBNTTB`` 永久基本农田图斑: patches 1 (0101, TBDLMJ 9,000 → paddy_m2 9,000) and
  2 (0103 → paddy_m2 0).
* ``STBHHX`` 生态保护红线: over patch 4. ``CZKFBJ`` 城镇开发边界: over patch 3.
* ``JSYDGZQ`` 建设用地管制区: 010 (allowed) over patches 1–2, 030 (restricted) over 3–4.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import geopandas as gpd
import importdata as fx
import pandas as pd
import pyogrio
import shapely

CRS = 4547


def _box(i0: int, i1: int) -> shapely.Polygon:
    """Patches i0..i1 (1-based, inclusive) as one rectangle."""
    return shapely.box(fx.X0 + (i0 - 1) * fx.SIDE, fx.Y0, fx.X0 + i1 * fx.SIDE, fx.Y0 + fx.SIDE)


def layers() -> dict[str, gpd.GeoDataFrame]:
    dltb = fx.survey(CRS)
    dltb["ZLDWDM"] = ["4418231000010000000", "4418231000010000000", "4418231010020000000", "4418231010020000000"]
    xzq = gpd.GeoDataFrame(
        {"BSM": ["1", "2", "3"], "XZQDM": ["441823100", "441823101", "441823101"],
         "XZQMC": ["阳城镇", "黎埠镇", "黎埠镇"], "DCMJ": [20_000.0, 10_000.0, 10_000.0]},
        geometry=[_box(1, 2), _box(3, 3), _box(4, 4)], crs=CRS,
    )
    jbnt = gpd.GeoDataFrame(
        {"BSM": ["9001", "9002"], "DLBM": ["0101", "0103"], "DLMC": ["水田", "旱地"],
         "TBMJ": [10_000.0, 10_000.0], "KCMJ": [1_000.0, 1_000.0], "TBDLMJ": [9_000.0, 9_000.0]},
        geometry=[_box(1, 1), _box(2, 2)], crs=CRS,
    )
    hx = gpd.GeoDataFrame({"BSM": ["9101"], "HXMC": ["阳山生态保护红线"]}, geometry=[_box(4, 4)], crs=CRS)
    kfbj = gpd.GeoDataFrame({"BSM": ["9201"]}, geometry=[_box(3, 3)], crs=CRS)
    gzq = gpd.GeoDataFrame(
        {"BSM": ["9301", "9302"], "GZQLXDM": ["010", "030"], "GZQMJ": [20_000.0, 20_000.0]},
        geometry=[_box(1, 2), _box(3, 4)], crs=CRS,
    )
    return {"DLTB": dltb, "XZQ": xzq, "YJJBNTTB": jbnt, "STBHHX": hx, "CZKFBJ": kfbj, "JSYDGZQ": gzq}


def filegdb(folder: Path, data: dict[str, gpd.GeoDataFrame] | None = None) -> Path:
    """The delivery as a File Geodatabase written by GDAL's OpenFileGDB driver."""
    path = folder / "441823三调成果.gdb"
    for name, gdf in (data or layers()).items():
        pyogrio.write_dataframe(gdf, path, layer=name, driver="OpenFileGDB")
    return path


def shapefile_folder(folder: Path, data: dict[str, gpd.GeoDataFrame] | None = None, *,
                     chinese: bool = False) -> Path:
    """The delivery as a folder of GBK shapefiles named by layer code, no .cpg.

    ``chinese=True`` writes the DLTB fields under their Chinese names (cut to 10
    bytes by the DBF) and names the files by the layers' Chinese names.
    """
    out = folder / "441823_shp"
    out.mkdir()
    zh = {"DLTB": "地类图斑", "XZQ": "行政区", "YJJBNTTB": "永久基本农田图斑", "STBHHX": "生态保护红线",
          "CZKFBJ": "城镇开发边界", "JSYDGZQ": "建设用地管制区"}
    for name, gdf in (data or layers()).items():
        if chinese and name == "DLTB":
            gdf = gdf.rename(columns=fx.CHINESE_NAMES)
        path = out / f"{zh[name] if chinese else name}.shp"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pyogrio.write_dataframe(gdf, path, encoding="GBK")
        path.with_suffix(".cpg").unlink(missing_ok=True)
    return out


def broken(kind: str) -> dict[str, gpd.GeoDataFrame]:
    """The delivery with one layer broken (the rest as in :func:`layers`)."""
    data = layers()
    if kind == "zone code":  # a 管制区类型代码 that is no code: refused before anything is written
        data["JSYDGZQ"] = data["JSYDGZQ"].assign(GZQLXDM=["010", "099"])
    elif kind == "duplicate BSM":  # found only at the end of the DLTB stream, inside the transaction
        d = data["DLTB"].copy()
        d["BSM"] = ["4418230001", "4418230002", "4418230003", "4418230001"]
        data["DLTB"] = d
    elif kind == "no XZQMC":
        data["XZQ"] = data["XZQ"].drop(columns=["XZQMC"])
    else:  # pragma: no cover
        raise ValueError(kind)
    return data


def snapshot(ws: object) -> dict[str, pd.DataFrame]:
    """Every layer import-survey writes, sorted, for before/after comparisons."""
    out = {}
    for name in ("parcels", "county", "towns", "control_lines", "plan_zones"):
        df = ws.read_layer(name)  # type: ignore[attr-defined]
        key = df.columns[0]
        df = df.sort_values(key).reset_index(drop=True)
        plain = pd.DataFrame(df.drop(columns="geometry"))
        plain["wkb"] = df.geometry.to_wkb()
        out[name] = plain
    return out
