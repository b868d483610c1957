"""Import fixtures, all generated in code: messy bureau files in a temporary folder.

The base is four 100 m × 100 m survey patches in a row, laid out in the plane of
CGCS2000 / 3-degree Gauss–Krüger CM 114°E (EPSG:4547) near Yangshan
(about 112.7°E, 24.4°N). Their survey areas are set by hand so a person can check
every expected value: TBMJ 10,000 m², KCMJ 1,000 m² (ridges on cultivated
land, 0 elsewhere), TBDLMJ = TBMJ − KCMJ.

Every writer returns the path of the file it made. Variants reproduce what bureau
data look like in practice: a GBK shapefile without ``.cpg``, zone-prefixed
eastings, swapped axes, a bow-tie, a duplicate id, an empty geometry, 3D input, a
missing ``.prj``, a wrong field type, a file that is not data, a FileGDB, CSVs.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import geopandas as gpd
import pandas as pd
import pyogrio
import shapely

#: South-west corner of patch 1 in EPSG:4547 metres (≈ 112.70°E, 24.40°N).
X0, Y0 = 368_000.0, 2_700_000.0
SIDE = 100.0

#: 2 cultivated patches (paddy, dry land), a village, a forest patch.
PATCHES = pd.DataFrame(
    {
        "BSM": ["4418230001", "4418230002", "4418230003", "4418230004"],
        "DLBM": ["0101", "0103", "0702", "0301"],
        "DLMC": ["水田", "旱地", "农村宅基地", "乔木林地"],
        "ZLDWMC": ["阳城镇", "阳城镇", "黎埠镇", "黎埠镇"],
        "QSXZ": ["30", "30", "30", "20"],
        "TBMJ": [10_000.0, 10_000.0, 10_000.0, 10_000.0],
        "KCMJ": [1_000.0, 1_000.0, 0.0, 0.0],
        "TBDLMJ": [9_000.0, 9_000.0, 10_000.0, 10_000.0],
    }
)


def squares(x0: float = X0, y0: float = Y0, n: int = 4) -> list[shapely.Polygon]:
    """*n* 100 m squares side by side eastwards from (x0, y0)."""
    return [shapely.box(x0 + i * SIDE, y0, x0 + (i + 1) * SIDE, y0 + SIDE) for i in range(n)]


def survey(crs: str | int | None = 4547, *, x0: float = X0, geoms: list[object] | None = None) -> gpd.GeoDataFrame:
    """The four patches as a GeoDataFrame with survey (三调) field names."""
    g = geoms if geoms is not None else squares(x0)
    return gpd.GeoDataFrame(PATCHES.copy(), geometry=g, crs=crs)


def write(gdf: gpd.GeoDataFrame, path: Path, **kw: object) -> Path:
    pyogrio.write_dataframe(gdf, path, **kw)
    return path


def gbk_shapefile_without_cpg(folder: Path) -> Path:
    """A shapefile whose DBF holds GBK bytes, no .cpg and language driver id 0.

    This is what ArcGIS 9/10 and most Chinese bureau tools write; read naively
    (as Latin-1) the names come out as mojibake such as 'Ë®Ìï' for '水田'.
    """
    path = write(survey(), folder / "dltb_gbk.shp", encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    with open(path.with_suffix(".dbf"), "r+b") as f:
        f.seek(29)  # DBF header: language driver id; 0 = "unknown"
        f.write(b"\x00")
    return path


def utf8_shapefile(folder: Path) -> Path:
    return write(survey(), folder / "dltb_utf8.shp", encoding="UTF-8")


def mojibake_gpkg(folder: Path) -> Path:
    """A GeoPackage whose text was already garbled (GBK read as Latin-1, saved as UTF-8)."""
    g = survey()
    g["ZLDWMC"] = [s.encode("gbk").decode("latin-1") for s in g["ZLDWMC"]]
    return write(g, folder / "garbled.gpkg")


def zone_prefixed(folder: Path) -> Path:
    """Eastings with the zone number (38,368,000): EPSG:4526."""
    g = survey(4526, x0=38_000_000 + X0)
    return write(g, folder / "prefixed.gpkg")


def central_meridian(folder: Path) -> Path:
    return write(survey(4547), folder / "cm114.gpkg")


def no_prj(folder: Path, *, prefixed: bool = False) -> Path:
    """A shapefile without .prj (6-digit or zone-prefixed eastings)."""
    g = survey(None, x0=(38_000_000 + X0) if prefixed else X0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: "'crs' was not provided" — on purpose
        path = write(g, folder / ("noprj8.shp" if prefixed else "noprj6.shp"), encoding="UTF-8")
    path.with_suffix(".prj").unlink(missing_ok=True)
    return path


def swapped_axes(folder: Path) -> Path:
    """Northings stored as x and eastings as y, with a correct .prj."""
    g = survey(4547)
    g = g.set_geometry(shapely.transform(g.geometry.values, lambda c: c[:, ::-1]))
    return write(g, folder / "swapped.gpkg")


def bowtie(folder: Path) -> Path:
    """Patch 2 is a self-intersecting bow-tie (two 50 m × 100 m triangles' worth)."""
    sq = squares()
    x, y = X0 + SIDE, Y0
    sq[1] = shapely.Polygon([(x, y), (x + SIDE, y + SIDE), (x + SIDE, y), (x, y + SIDE), (x, y)])
    return write(survey(geoms=sq), folder / "bowtie.gpkg")


def multipolygons_4490(folder: Path, *, bowtie_at: int | None = None, duplicate: tuple[int, int] | None = None,
                       n: int = 6) -> Path:
    """*n* patches already in the contract's form: 2D MultiPolygons in EPSG:4490.

    This is the importer's fast path (the source's WKB goes to the workspace as it
    is, tested ahead on the read-ahead thread). ``bowtie_at`` makes that 0-based
    patch a self-intersecting bow-tie; ``duplicate=(i, j)`` gives patch j the id of
    patch i.
    """
    sq = squares(n=n)
    if bowtie_at is not None:
        x, y = X0 + bowtie_at * SIDE, Y0
        sq[bowtie_at] = shapely.Polygon([(x, y), (x + SIDE, y + SIDE), (x + SIDE, y), (x, y + SIDE), (x, y)])
    g = gpd.GeoDataFrame(
        {
            "BSM": [f"44182300{i + 1:02d}" for i in range(n)],
            "DLBM": ["0101"] * n,
            "TBMJ": [10_000.0] * n,
            "KCMJ": [0.0] * n,
            "TBDLMJ": [10_000.0] * n,
            "ZLDWMC": ["阳城镇"] * n,
        },
        geometry=sq,
        crs=4547,
    ).to_crs(4490)
    g["geometry"] = shapely.multipolygons(shapely.get_parts(g.geometry.values)[:, None])
    if duplicate is not None:
        g.loc[duplicate[1], "BSM"] = g.loc[duplicate[0], "BSM"]
    return write(g, folder / "mp4490.gpkg", geometry_type="MultiPolygon")


def duplicate_id(folder: Path) -> Path:
    g = survey()
    g.loc[3, "BSM"] = g.loc[1, "BSM"]
    return write(g, folder / "dup.gpkg")


def empty_geometry(folder: Path) -> Path:
    """Patch 3 has an empty polygon and patch 4 none at all."""
    sq: list[object] = list(squares())
    sq[2] = shapely.Polygon()
    sq[3] = None
    return write(survey(geoms=sq), folder / "empty.gpkg")


def three_d(folder: Path) -> Path:
    sq = [shapely.force_3d(p, 35.0) for p in squares()]
    return write(survey(geoms=sq), folder / "z.gpkg")


def wrong_type(folder: Path) -> Path:
    """TBMJ is a text field and row 3 holds '一万' instead of a number."""
    g = survey()
    g["TBMJ"] = ["10000", "10000", "一万", "10000"]
    return write(g, folder / "wrongtype.gpkg")


def numeric_dlbm(folder: Path) -> Path:
    """DLBM saved as an integer field: '0101' became 101."""
    g = survey()
    g["DLBM"] = [101, 103, 702, 301]
    return write(g, folder / "numdlbm.gpkg")


def unknown_class(folder: Path) -> Path:
    g = survey()
    g.loc[3, "DLBM"] = "0399"
    g.loc[3, "DLMC"] = "未知"
    return write(g, folder / "unknown.gpkg")


def not_data(folder: Path) -> Path:
    path = folder / "parcels.gpkg"
    path.write_text("这不是地理数据 — this is a memo, not a GeoPackage\n", encoding="utf-8")
    return path


def filegdb(folder: Path) -> Path:
    """A File Geodatabase written by GDAL's OpenFileGDB driver (GDAL >= 3.6)."""
    path = folder / "survey.gdb"
    pyogrio.write_dataframe(survey(), path, layer="DLTB", driver="OpenFileGDB")
    return path


def geojson_4490(folder: Path) -> Path:
    return write(survey().to_crs(4490), folder / "parcels.geojson", driver="GeoJSON")


def legacy(folder: Path, epsg: int) -> Path:
    """The same patches in a legacy CRS (Xian 1980 2383, Beijing 1954 2435)."""
    g = survey().to_crs(epsg)
    return write(g, folder / f"legacy{epsg}.gpkg")


def csv_wkt(folder: Path, *, encoding: str = "utf-8") -> Path:
    g = survey()
    df = pd.DataFrame(g.drop(columns="geometry"))
    df["WKT"] = g.geometry.to_wkt()
    path = folder / f"wkt_{encoding}.csv"
    df.to_csv(path, index=False, encoding=encoding)
    return path


def csv_vertices(folder: Path) -> Path:
    """A survey coordinate table: one row per vertex, X = northing, Y = easting (surveying)."""
    rows = []
    for (_, r), poly in zip(PATCHES.iterrows(), squares(), strict=True):
        for k, (e, n) in enumerate(list(poly.exterior.coords)[:-1]):
            rows.append({"BSM": r.BSM, "点号": f"J{k + 1}", "X": n, "Y": e, "DLBM": r.DLBM, "TBMJ": r.TBMJ,
                         "KCMJ": r.KCMJ, "TBDLMJ": r.TBDLMJ})
    path = folder / "coords.csv"
    pd.DataFrame(rows).to_csv(path, index=False, encoding="gbk")
    return path


def big_gpkg(folder: Path, n: int, *, seed: int = 0) -> Path:
    """*n* valid 4490 parcels on a grid (for the kill test and benchmarks)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    side = int(np.ceil(np.sqrt(n)))
    i = np.arange(n)
    x = 112.4 + (i % side) * 0.0005
    y = 24.0 + (i // side) * 0.0005
    geoms = shapely.multipolygons(shapely.box(x, y, x + 0.0005, y + 0.0005)[:, None])
    classes = np.array(["0101", "0102", "0103", "0201", "0301", "0702", "1001", "1101"])
    g = gpd.GeoDataFrame(
        {
            "parcel_id": [f"P{k:07d}" for k in range(n)],
            "land_class": classes[rng.integers(0, len(classes), n)],
            "town": "阳城镇",
            "net_m2": 2_500.0,
        },
        geometry=geoms,
        crs=4490,
    )
    path = folder / f"big{n}.gpkg"
    pyogrio.write_dataframe(g, path, layer="parcels")
    return path


def touch_all(folder: Path) -> dict[str, Path]:
    """Write every fixture into *folder* (for a person poking at them by hand)."""
    os.makedirs(folder, exist_ok=True)
    makers = [gbk_shapefile_without_cpg, utf8_shapefile, zone_prefixed, central_meridian, no_prj,
              swapped_axes, bowtie, duplicate_id, empty_geometry, three_d, wrong_type, numeric_dlbm,
              unknown_class, not_data, filegdb, geojson_4490, csv_wkt, csv_vertices, mojibake_gpkg]
    return {m.__name__: m(folder) for m in makers}


#: The survey fields under their standard Chinese names (第三次全国国土调查数据库标准),
#: as desktop GIS exports write them; the DBF cuts the long ones to 10 bytes.
CHINESE_NAMES = {
    "BSM": "标识码",
    "DLBM": "地类编码",
    "DLMC": "地类名称",
    "ZLDWMC": "坐落单位名称",  # 12 bytes in GBK: the DBF keeps 坐落单位名
    "QSXZ": "权属性质",
    "TBMJ": "图斑面积",
    "KCMJ": "扣除地类面积",  # -> 扣除地类面
    "TBDLMJ": "图斑地类面积",  # -> 图斑地类面
}


def chinese_names_gbk_shapefile(folder: Path) -> Path:
    """A GBK shapefile whose DBF field NAMES are Chinese, no .cpg, language driver id 0."""
    gdf = survey().rename(columns=CHINESE_NAMES)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GDAL's note about laundering the long names
        path = write(gdf, folder / "地类图斑_gbk.shp", encoding="GBK")
    path.with_suffix(".cpg").unlink(missing_ok=True)
    with open(path.with_suffix(".dbf"), "r+b") as f:
        f.seek(29)
        f.write(b"\x00")
    return path


def chinese_names_gpkg(folder: Path) -> Path:
    """A GeoPackage with UTF-8 Chinese field names (full names: no 10-byte limit)."""
    return write(survey().rename(columns=CHINESE_NAMES), folder / "地类图斑.gpkg", layer="地类图斑")


def wrong_prj(folder: Path, epsg: int) -> Path:
    """Six-digit eastings of CM 114°E (EPSG:4547) with a .prj saying *epsg*."""
    gdf = survey(crs=None)
    gdf = gdf.set_crs(epsg, allow_override=True)
    return write(gdf, folder / f"dltb_prj{epsg}.shp")


def point_layer(folder: Path) -> Path:
    gdf = gpd.GeoDataFrame(PATCHES.copy(), geometry=[p.centroid for p in squares()], crs=4547)
    return write(gdf, folder / "points.shp")
