"""The partitions the Dask engine reads: Hilbert-sorted GeoParquet files of the patches.

:func:`write_partitions` stores a parcel layer once as files of ~100,000 neighbouring
patches (Hilbert order of their centres, :func:`hilbert_distance`), each with its
bounding box in the GeoParquet metadata and every patch's box in a GeoParquet 1.1
``bbox`` column, so that a worker decodes only the patches near a site. A sidecar
(``_landquota.json``) records the source, the row count and the partition sizes, so
that a later run reuses an export of the same workspace (:func:`_reusable`).
:func:`export_partitions` writes them from a workspace. The computation on them is
:mod:`landquota.engines.dask`; this module knows only the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np

from landquota.errors import DataError, ParameterError
from landquota.store.workspace import Workspace

__all__ = ["IN_MEMORY_ROWS", "ROWS_PER_PARTITION", "export_partitions", "hilbert_distance", "write_partitions"]

#: Patches per GeoParquet partition: ~50–80 MB in memory, a few seconds of work.
ROWS_PER_PARTITION: Final = 100_000
#: Layers up to this many patches are exported in one Arrow read (~400 MB per 10⁶);
#: larger ones tile by tile, one partition in memory at a time.
IN_MEMORY_ROWS: Final = 2_000_000
_SIDECAR: Final = "_landquota.json"  # '_' prefix: parquet readers skip it
_FORMAT: Final = 1


def _fresh_dir(path: str | Path, rows_per_partition: Any) -> Path:
    """Check the partition size; create *path* and remove an earlier export from it."""
    if not (isinstance(rows_per_partition, int) and rows_per_partition >= 1):
        raise ParameterError(
            f"rows_per_partition={rows_per_partition!r}; give a whole number ≥ 1 (default "
            f"{ROWS_PER_PARTITION:,})"
        )
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("part.*.parquet"):
        old.unlink()
    (out / _SIDECAR).unlink(missing_ok=True)
    return out


def write_partitions(
    parcels: gpd.GeoDataFrame,
    path: str | Path,
    *,
    rows_per_partition: int = ROWS_PER_PARTITION,
    source: str = "",
) -> dict[str, Any]:
    """Write *parcels* as Hilbert-sorted GeoParquet partitions in directory *path*.

    Patches are sorted by the Hilbert distance of their bounding-box centres
    (level 16 over the layer's extent), so each file holds a compact block of
    the county or province; its bbox goes into the GeoParquet metadata, from
    which a run picks the partitions that meet a site (``dask_geopandas``
    reads the same metadata as ``spatial_partitions``).

    Parameters
    ----------
    parcels : geopandas.GeoDataFrame
        The ``parcels`` layer (EPSG:4490).
    path : str or Path
        Directory, created if needed; old ``part.*.parquet`` files are removed.
        It must be readable by every worker (shared storage).
    rows_per_partition : int, default 100,000
        Patches per file.
    source : str
        Recorded in ``_landquota.json`` (the workspace, passwords masked), with
        the row count, so that a later run can tell whether it may reuse it.

    Returns
    -------
    dict
        The sidecar's content: ``format``, ``source``, ``rows``, ``partitions``
        (rows per file).
    """
    out = _fresh_dir(path, rows_per_partition)
    n = len(parcels)
    if n:
        order = np.argsort(parcels.geometry.hilbert_distance(level=16).to_numpy(), kind="stable")
        parcels = parcels.iloc[order]
    sizes: list[int] = []
    for k, start in enumerate(range(0, n, rows_per_partition)):
        part = parcels.iloc[start : start + rows_per_partition]
        part.to_parquet(out / f"part.{k:05d}.parquet", index=False, write_covering_bbox=True)
        sizes.append(len(part))
    info = {"format": _FORMAT, "source": source, "rows": n, "partitions": sizes}
    (out / _SIDECAR).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def hilbert_distance(bounds: np.ndarray, total_bounds: Any = None, level: int = 16) -> np.ndarray:
    """Distance along a Hilbert curve of each box's centre, as ``GeoSeries.hilbert_distance``.

    The same discretisation and the same public-domain encoding ("Fast Hilbert
    curve algorithm", threadlocalmutex.com, as geopandas uses), but from plain
    (minx, miny, maxx, maxy) rows, so a layer can be ordered from its R-tree
    without reading one geometry. Tested equal to geopandas' result.
    """
    side = (2**level) - 1
    b = np.asarray(bounds, dtype=np.float64)
    mx, my = (b[:, 0] + b[:, 2]) / 2.0, (b[:, 1] + b[:, 3]) / 2.0
    if total_bounds is None:  # geopandas' default: the extent of the centres
        total_bounds = (np.nanmin(mx), np.nanmin(my), np.nanmax(mx), np.nanmax(my))
    xmin, ymin, xmax, ymax = (float(v) for v in total_bounds)

    def discrete(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
        if hi - lo == 0:
            return np.zeros(len(v), dtype=np.uint32)
        res = (v - lo) * (side / (hi - lo))
        np.clip(res, 0, side, out=res)
        ints: np.ndarray = res.astype(np.uint32)
        return ints

    x = discrete(mx, xmin, xmax) << (16 - level)
    y = discrete(my, ymin, ymax) << (16 - level)
    a = x ^ y
    bb = 0xFFFF ^ a
    c = 0xFFFF ^ (x | y)
    d = x & (y ^ 0xFFFF)
    A = a | (bb >> 1)
    B = (a >> 1) ^ a
    C = ((c >> 1) ^ (bb & (d >> 1))) ^ c
    D = ((a & (c >> 1)) ^ (d >> 1)) ^ d
    for shift in (2, 4):
        a, bb, c, d = A.copy(), B.copy(), C.copy(), D.copy()
        A = (a & (a >> shift)) ^ (bb & (bb >> shift))
        B = (a & (bb >> shift)) ^ (bb & ((a ^ bb) >> shift))
        C ^= (a & (c >> shift)) ^ (bb & (d >> shift))
        D ^= (bb & (c >> shift)) ^ ((a ^ bb) & (d >> shift))
    a, bb, c, d = A.copy(), B.copy(), C.copy(), D.copy()
    C ^= (a & (c >> 8)) ^ (bb & (d >> 8))
    D ^= (bb & (c >> 8)) ^ ((a ^ bb) & (d >> 8))
    a = C ^ (C >> 1)
    bb = D ^ (D >> 1)
    i0 = x ^ y
    i1 = bb | (0xFFFF ^ (i0 | a))

    def interleave(v: np.ndarray) -> np.ndarray:
        v = (v | (v << 8)) & 0x00FF00FF
        v = (v | (v << 4)) & 0x0F0F0F0F
        v = (v | (v << 2)) & 0x33333333
        spread: np.ndarray = (v | (v << 1)) & 0x55555555
        return spread

    out: np.ndarray = ((interleave(i1) << 1) | interleave(i0)) >> (32 - 2 * level)
    return out


def export_partitions(
    ws: Workspace,
    path: str | Path,
    *,
    rows_per_partition: int = ROWS_PER_PARTITION,
    source: str = "",
) -> dict[str, Any]:
    """Write the workspace's parcels as Hilbert-sorted GeoParquet partitions, tile by tile.

    Files like :func:`write_partitions`'s (Hilbert order of the boxes' centres,
    the same partition sizes), without holding the layer in memory: the ids and boxes come first
    (:meth:`Workspace.read_bounds`, no geometry), their Hilbert order fixes each
    patch's partition, and each partition is then read with one bbox query and
    kept to its own patches. Memory is one partition plus the ids and boxes
    (about 100 bytes a patch), so 10⁷ patches need about 1–2 GB instead of 8–10.
    """
    out = _fresh_dir(path, rows_per_partition)
    if int(ws.layer_counts()["parcels"]) <= IN_MEMORY_ROWS:
        fast = _export_arrow(ws, out, rows_per_partition, source)
        if fast is not None:
            return fast
    bounds = ws.read_bounds("parcels")
    idc = bounds.columns[0]
    n = len(bounds)
    sizes: list[int] = []
    if n:
        if bounds[["minx", "miny", "maxx", "maxy"]].isna().any().any():
            raise DataError("parcels without geometry cannot be partitioned; run `landquota validate`")
        b = bounds[["minx", "miny", "maxx", "maxy"]].to_numpy()
        order = np.argsort(hilbert_distance(b), kind="stable")
        for k, start in enumerate(range(0, n, rows_per_partition)):
            members = order[start : start + rows_per_partition]
            mb = b[members]
            box = (float(mb[:, 0].min()), float(mb[:, 1].min()), float(mb[:, 2].max()), float(mb[:, 3].max()))
            ids = bounds[idc].to_numpy()[members]
            got = ws.read_layer("parcels", bbox=box)
            # the box also catches neighbours of other partitions: keep exactly these, in order
            got = got.set_index(idc, drop=False).loc[ids].reset_index(drop=True)
            got.to_parquet(out / f"part.{k:05d}.parquet", index=False, write_covering_bbox=True)
            sizes.append(len(got))
    info = {"format": _FORMAT, "source": source, "rows": n, "partitions": sizes}
    (out / _SIDECAR).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def _export_arrow(ws: Workspace, out: Path, rows_per_partition: int, source: str) -> dict[str, Any] | None:
    """Export a county-sized layer in one read, as Arrow: WKB is never decoded.

    The tile-by-tile export decoded every geometry to shapely objects and encoded
    it back to WKB for GeoParquet (10⁶ patches: ~7 s of ``from_wkb`` and ~3.5 s
    of ``to_wkb`` under load, with ten bbox reads); here the source's WKB goes
    to the files as it came, reordered by one Arrow ``take``. Memory is the
    layer as Arrow (~400 MB for 10⁶ patches), hence :data:`IN_MEMORY_ROWS`.
    Returns None for a backend it does not know (the caller exports by tiles).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from landquota.store.schema import layer

    lyr = layer("parcels")
    names = list(lyr.column_names)
    if ws.kind == "gpkg":
        import pyogrio

        meta, table = pyogrio.read_arrow(ws.target, layer="parcels", columns=names, return_fids=True)
        gcol = meta["geometry_name"] or "wkb_geometry"
        fcol = meta["fid_column"] or "fid"
        table = table.combine_chunks()
        # The boxes from the R-tree, read by GDAL straight into Arrow (Python's
        # sqlite3 takes 4–5 times longer to build 10⁶ tuples); SQLite runs the
        # statement as it is, with no input in it. A patch without a box (no
        # geometry) gets NaN and is refused below.
        _, rt = pyogrio.read_arrow(
            ws.target, sql='SELECT id, minx, miny, maxx, maxy FROM "rtree_parcels_geom"'
        )
        rid = rt.column("id").to_numpy(zero_copy_only=False).astype(np.int64)
        rank = np.argsort(rid, kind="stable")
        fids = table.column(fcol).to_numpy(zero_copy_only=False).astype(np.int64)
        at = np.clip(np.searchsorted(rid[rank], fids), 0, max(len(rid) - 1, 0))
        found = (rid[rank][at] == fids) if len(rid) else np.zeros(len(fids), dtype=bool)
        b = np.full((len(fids), 4), np.nan)
        for k, c in enumerate(("minx", "miny", "maxx", "maxy")):
            v = rt.column(c).to_numpy(zero_copy_only=False).astype("float64")[rank]
            b[found, k] = v[at[found]] if len(v) else np.nan
        table = table.select([*names, gcol]).rename_columns([*names, "geometry"])
    elif ws.kind == "postgis":
        import sqlalchemy as sa

        from landquota.store.pgcolumns import read_columns

        t = ws.table("parcels")  # type: ignore[attr-defined]
        g = t.c.geom
        stmt = sa.select(
            *[t.c[c] for c in names],
            sa.func.ST_AsBinary(g).label("geometry"),
            sa.func.ST_XMin(g).label("minx"),
            sa.func.ST_YMin(g).label("miny"),
            sa.func.ST_XMax(g).label("maxx"),
            sa.func.ST_YMax(g).label("maxy"),
        )
        types = [(c, lyr.column(c).type) for c in names] + [("geometry", "wkb")]
        types += [(c, "real") for c in ("minx", "miny", "maxx", "maxy")]
        with ws.engine.connect() as con:  # type: ignore[attr-defined]
            table = read_columns(con, stmt, types)
        table = table.combine_chunks()
        b = np.column_stack(
            [table.column(c).to_numpy(zero_copy_only=False) for c in ("minx", "miny", "maxx", "maxy")]
        )
        table = table.select([*names, "geometry"])
    else:
        return None
    n = table.num_rows
    if n and (np.isnan(b).any() or table.column("geometry").null_count):
        raise DataError("parcels without geometry cannot be partitioned; run `landquota validate`")
    crs = gpd.GeoSeries([], crs=4490).crs
    sizes: list[int] = []
    if n:
        order = np.argsort(hilbert_distance(b), kind="stable")
        table = table.take(pa.array(order))
        b = b[order]
        for k, start in enumerate(range(0, n, rows_per_partition)):
            part = table.slice(start, rows_per_partition)
            pb = b[start : start + rows_per_partition]
            geo = {
                "version": "1.1.0",
                "primary_column": "geometry",
                "columns": {
                    "geometry": {
                        "encoding": "WKB",
                        "crs": crs.to_json_dict() if crs is not None else None,
                        "geometry_types": [],
                        "bbox": [
                            float(pb[:, 0].min()), float(pb[:, 1].min()),
                            float(pb[:, 2].max()), float(pb[:, 3].max()),
                        ],
                        # Each patch's box (GeoParquet 1.1 covering), so that a run
                        # decodes only the patches near its sites.
                        "covering": {
                            "bbox": {k: ["bbox", k] for k in ("xmin", "ymin", "xmax", "ymax")}
                        },
                    }
                },
            }
            boxes = pa.StructArray.from_arrays(
                [pa.array(pb[:, i], type=pa.float64()) for i in range(4)],
                names=["xmin", "ymin", "xmax", "ymax"],
            )
            part = part.append_column("bbox", boxes)
            part = part.replace_schema_metadata({"geo": json.dumps(geo)})
            pq.write_table(part, out / f"part.{k:05d}.parquet")
            sizes.append(part.num_rows)
    info = {"format": _FORMAT, "source": source, "rows": n, "partitions": sizes}
    (out / _SIDECAR).write_text(json.dumps(info, indent=1), encoding="utf-8")
    return info


def _reusable(path: Path, source: str, rows: int) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads((path / _SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if info.get("format") != _FORMAT or info.get("source") != source or info.get("rows") != rows:
        return None
    if len(list(path.glob("part.*.parquet"))) != len(info.get("partitions", [])):
        return None
    return info
