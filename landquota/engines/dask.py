"""The ``--engine dask`` runner of demand and compliance (R1–R4, R13–R15) on a Dask cluster.

The parcel layer is stored once as Hilbert-sorted GeoParquet partitions
(:func:`write_partitions`; each file holds ~100,000 neighbouring patches and
its bounding box in the GeoParquet metadata). A run then:

1. reads the files' bounding boxes (footers only) and keeps the partitions
   whose extent meets a fixed site;
2. on the workers, a few neighbouring partitions per task, each read from the
   shared storage by the worker itself: the sites whose bounds meet the
   partition's bounds are cut with its patches and the pieces measured
   (:func:`landquota.rules.demand.cut_pieces` and
   :func:`~landquota.rules.demand.measure_pieces`, the local engine's own
   functions: pairs through an STRtree, checks of the touched patches,
   intersection, ellipsoidal area in the run's projection, net share, yield);
   each task sends back one Arrow table: per piece its site, patch
   attributes, areas and WKB, no Python object per piece;
3. on the client: :func:`~landquota.rules.demand.sum_pieces`, the local
   engine's second half, sorts the pieces canonically (site, parcel_id) and
   sums them;
4. on the workers again: compliance per group of neighbouring sites (the plan
   layers are broadcast once), every chunk measuring in the run's one
   equal-area projection.

Every (site, patch) pair lives in exactly one partition and gives the same
piece there as in the local run, every value of step 2 depends on its own
piece and patch only, and the sums run in the same order, so the results are
*identical* to ``engine="local"`` (not merely close). See ``docs/scaling.md``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.errors import DataError, ParameterError, WorkspaceError
from landquota.rules.demand import (
    DemandResult,
    MeasuredPieces,
    cut_pieces,
    measure_pieces,
    sum_pieces,
)
from landquota.rules.overlay import Centre, FixedSites, fixed_sites, sites_centre
from landquota.store.workspace import Workspace

__all__ = [
    "ROWS_PER_PARTITION",
    "demand_and_compliance_dask",
    "export_partitions",
    "hilbert_distance",
    "measure_partitions",
    "write_partitions",
]

#: Patches per GeoParquet partition: ~50–80 MB in memory, a few seconds of work.
ROWS_PER_PARTITION: Final = 100_000
#: Layers up to this many patches are exported in one Arrow read (~400 MB per 10⁶);
#: larger ones tile by tile, one partition in memory at a time.
IN_MEMORY_ROWS: Final = 2_000_000
#: Sites per compliance task.
SITES_PER_TASK: Final = 256
_SIDECAR: Final = "_landquota.json"  # '_' prefix: parquet readers skip it
_FORMAT: Final = 1
#: Tasks per worker thread in the overlay: a few neighbouring partitions per task
#: (fewer round trips), still enough tasks to even out slow and fast partitions.
TASKS_PER_SLOT: Final = 4
#: The parcel columns the demand reads (R2–R4); the rest of a partition stays on disk.
_READ_COLUMNS: Final = (
    "parcel_id", "land_class", "gross_m2", "net_m2", "grain_kg_per_m2", "geometry",
)


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ParameterError(
            "engine='dask' needs distributed: "
            "pip install 'landquota[dask]' (or pip install distributed)"
        ) from exc
    return distributed


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


@contextmanager
def _client(scheduler: Any) -> Iterator[Any]:
    """Yield a distributed Client: the one given, one on an address, or a LocalCluster."""
    distributed = _distributed()
    if isinstance(scheduler, distributed.Client):
        yield scheduler
        return
    with ExitStack() as stack:
        if scheduler is None:
            cluster = stack.enter_context(
                distributed.LocalCluster(processes=True, dashboard_address=None)
            )
            address = cluster.scheduler_address
        elif isinstance(scheduler, str) and scheduler.startswith(("tcp://", "tls://", "inproc://")):
            address = scheduler
        else:
            raise ParameterError(
                f"scheduler={scheduler!r}; give 'tcp://HOST:PORT' of a running dask scheduler "
                "(started with `dask scheduler`), a distributed.Client, or nothing for a "
                "LocalCluster"
            )
        try:
            client = stack.enter_context(distributed.Client(address, timeout="30s"))
        except OSError as exc:
            raise WorkspaceError(
                f"cannot reach the dask scheduler at {address!r}: {exc}; start it with "
                "`dask scheduler` and the workers with `dask worker {address}`"
            ) from None
        yield client


def _partition_files(path: Path) -> list[tuple[Path, tuple[float, float, float, float] | None]]:
    """Return the partition files of *path* in order, each with its GeoParquet bbox.

    Only the files' footers are read. A file without a bbox (written by another
    tool) gets None and is read whatever the sites.
    """
    import pyarrow.parquet as pq

    out: list[tuple[Path, tuple[float, float, float, float] | None]] = []
    for f in sorted(path.glob("part.*.parquet")):
        box: tuple[float, float, float, float] | None = None
        meta = pq.read_schema(f).metadata or {}
        try:
            geo = json.loads(meta[b"geo"])
            b = geo["columns"][geo["primary_column"]]["bbox"]
            box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
        except (KeyError, ValueError, TypeError, IndexError):
            box = None
        out.append((f, box))
    return out


def _measure_file(
    file: str,
    sites: NDArray[np.object_],
    tree: shapely.STRtree,
    *,
    yields: Mapping[str, float],
    centre: Centre | None,
) -> MeasuredPieces:
    """Read one partition and measure the pieces of the sites meeting it (on a worker).

    The same :func:`cut_pieces` and :func:`measure_pieces` as the local engine,
    so each (site, patch) piece, area, net share and yield is the local one.
    Only the columns the demand needs are read.
    """
    import pyarrow.parquet as pq

    schema = pq.read_schema(file)
    covering = _covering(schema)
    if covering is None:
        part = gpd.read_parquet(file, columns=[c for c in _READ_COLUMNS if c in schema.names])
    else:
        part = _read_near_sites(file, schema, covering, sites, tree)
    if len(part) == 0 or len(sites) == 0:
        return MeasuredPieces.concat([])
    # Only the sites whose bounds meet the partition's bounds.
    near = np.sort(np.asarray(tree.query(shapely.box(*part.total_bounds)), dtype=np.intp))
    if len(near) == 0:
        return MeasuredPieces.concat([])
    measured = measure_pieces(cut_pieces(sites[near], part), yields=yields, centre=centre)
    return replace(measured, site=near[measured.site])


def _covering(schema: Any) -> tuple[str, str, tuple[str, str, str, str]] | None:
    """Return the geometry column, the bbox column and its four fields (GeoParquet 1.1 covering).

    None when the file has no per-row bbox column (then every geometry is decoded).
    """
    try:
        geo = json.loads((schema.metadata or {})[b"geo"])
        primary = geo["primary_column"]
        cover = geo["columns"][primary]["covering"]["bbox"]
        paths = [cover[k] for k in ("xmin", "ymin", "xmax", "ymax")]
    except (KeyError, ValueError, TypeError):
        return None
    column = paths[0][0]
    if any(len(p) != 2 or p[0] != column for p in paths) or column not in schema.names:
        return None
    return primary, column, (paths[0][1], paths[1][1], paths[2][1], paths[3][1])


#: Margin (degrees, ~1 m) around each patch's stored box: boxes from a GeoPackage's R-tree
#: or PostGIS are single-precision (~1e-5° at 113°E); a larger box only adds candidates.
_BOX_MARGIN: Final = 2e-5


def _rows_near(
    x0: NDArray[np.float64],
    y0: NDArray[np.float64],
    x1: NDArray[np.float64],
    y1: NDArray[np.float64],
    sites: NDArray[np.object_],
    tree: shapely.STRtree,
) -> NDArray[np.int64]:
    """Rows whose box (widened by :data:`_BOX_MARGIN`) meets the box of a site, in order.

    Plain arrays, no shapely box per patch (building 10⁵ boxes costs as much as
    decoding the patches): the boxes sorted by west edge once, then per site
    near the partition one ``searchsorted`` window and three comparisons.
    """
    if len(x0) == 0:
        return np.empty(0, dtype=np.int64)
    m = _BOX_MARGIN
    extent = shapely.box(float(x0.min()) - m, float(y0.min()) - m, float(x1.max()) + m, float(y1.max()) + m)
    near = np.asarray(tree.query(extent), dtype=np.intp)
    if len(near) == 0:
        return np.empty(0, dtype=np.int64)
    order = np.argsort(x0, kind="stable")
    west = x0[order]
    widest = float(np.max(x1 - x0))
    found: list[NDArray[np.int64]] = []
    for sx0, sy0, sx1, sy1 in shapely.bounds(sites[near]):
        lo = int(np.searchsorted(west, sx0 - widest - 2 * m, side="left"))
        hi = int(np.searchsorted(west, sx1 + m, side="right"))
        cand = order[lo:hi]
        meets = (x1[cand] + m >= sx0) & (y0[cand] - m <= sy1) & (y1[cand] + m >= sy0)
        found.append(cand[meets])
    return np.unique(np.concatenate(found)).astype(np.int64)


def _read_near_sites(
    file: str,
    schema: Any,
    covering: tuple[str, str, tuple[str, str, str, str]],
    sites: NDArray[np.object_],
    tree: shapely.STRtree,
) -> gpd.GeoDataFrame:
    """Read the patches of one partition whose bbox meets a site's: decode only those.

    Sites cover a few per cent of a province, so decoding every geometry
    (``shapely.from_wkb``, the costliest part of reading a partition) and
    indexing it would mostly serve patches no site touches. The per-row bbox
    column picks the candidates; a candidate too many changes nothing (the
    exact pairs come from the geometries), and none can be missed, so the
    pieces are those of the whole partition.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    geometry, column, (fx0, fy0, fx1, fy1) = covering
    columns = [c for c in _READ_COLUMNS if c in schema.names and c != "geometry"]
    table = pq.read_table(file, columns=[*columns, geometry, column])
    box = table.column(column).combine_chunks()
    x0, y0, x1, y1 = (
        np.asarray(box.field(f).to_numpy(zero_copy_only=False), dtype=np.float64)
        for f in (fx0, fy0, fx1, fy1)
    )
    rows = _rows_near(x0, y0, x1, y1, sites, tree)
    near = table.take(pa.array(rows))
    geoms = shapely.from_wkb(near.column(geometry).to_numpy(zero_copy_only=False))
    frame = near.select(columns).to_pandas()
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=4490))


def _measure_task(
    files: list[str], site_wkb: NDArray[np.object_], yields: dict[str, float], centre: Centre | None
) -> tuple[Any, list[float]]:
    """Worker side: measure the pieces of a few partitions; return them as one Arrow table.

    No shapely object travels: the pieces go back as WKB in an Arrow table
    (one buffer per column, which distributed sends without pickling each
    value), with their site, patch attributes and areas; the client only sums.
    Also returns each file's seconds (read, cut and measure).
    """
    import time

    sites = np.asarray(shapely.from_wkb(site_wkb), dtype=object)
    tree = shapely.STRtree(sites)
    parts: list[MeasuredPieces] = []
    seconds: list[float] = []
    for file in files:
        t = time.perf_counter()
        parts.append(_measure_file(file, sites, tree, yields=yields, centre=centre))
        seconds.append(time.perf_counter() - t)
    return _to_arrow(MeasuredPieces.concat(parts)), seconds


def _to_arrow(m: MeasuredPieces) -> Any:
    import pyarrow as pa

    return pa.table(
        {
            "site": pa.array(np.asarray(m.site, dtype=np.int64)),
            "parcel_id": pa.array(m.parcel_id, type=pa.string()),
            "land_class": pa.array(m.land_class, type=pa.string()),
            "category": pa.array(m.category, type=pa.string()),
            "cultivated": pa.array(m.cultivated, type=pa.bool_()),
            "paddy": pa.array(m.paddy, type=pa.bool_()),
            "area_m2": pa.array(m.area_m2, type=pa.float64()),
            "planar": pa.array(m.planar, type=pa.float64()),
            "net_ratio": pa.array(m.net_ratio, type=pa.float64()),
            "grain_rate": pa.array(m.grain_rate, type=pa.float64()),
            # WKB keeps every coordinate's 64 bits: the decoded pieces are the local ones.
            "wkb": pa.array(shapely.to_wkb(m.geoms), type=pa.binary()),
        }
    )


def _from_arrow(table: Any) -> MeasuredPieces:
    from landquota._parallel import chunked

    def column(name: str, dtype: Any) -> Any:
        return np.asarray(table.column(name).to_numpy(zero_copy_only=False), dtype=dtype)

    wkb = column("wkb", object)
    return MeasuredPieces(
        site=column("site", np.intp),
        parcel_id=column("parcel_id", object),
        land_class=column("land_class", object),
        category=column("category", object),
        cultivated=column("cultivated", bool),
        paddy=column("paddy", bool),
        area_m2=column("area_m2", np.float64),
        planar=column("planar", np.float64),
        net_ratio=column("net_ratio", np.float64),
        grain_rate=column("grain_rate", np.float64),
        geoms=np.asarray(chunked(shapely.from_wkb, wkb), dtype=object),
    )


def _batches(files: list[str], slots: int) -> list[list[str]]:
    """Consecutive (neighbouring) files in about TASKS_PER_SLOT tasks per worker thread."""
    if not files:
        return []
    n = max(1, min(len(files), slots * TASKS_PER_SLOT))
    return [list(b) for b in np.array_split(np.asarray(files, dtype=object), n) if len(b)]


def measure_partitions(
    path: str | Path,
    fixed: FixedSites,
    *,
    yields: Mapping[str, float],
    centre: Centre | None,
    client: Any = None,
    timings: dict[str, float] | None = None,
) -> tuple[MeasuredPieces, list[int], list[float]]:
    """Measure the pieces of *fixed* sites over the partitions in *path* that meet a site.

    With a Dask *client* the partitions are read, cut and measured on its
    workers, a few neighbouring files per task (the sites are sent to every
    worker once); without one, one after the other in this process (what
    ``benchmarks/bench_scale.py`` times as the one-process run). Either way the
    pieces are the same (each (site, patch) pair lives in one partition) and
    what remains is :func:`~landquota.rules.demand.sum_pieces`. Returns the
    pieces, the positions of the partitions read and each one's seconds (read,
    cut and measure, on whichever process ran it). *timings*, if given, gets
    the client's seconds with a client: ``tasks`` (all of it) and ``decode``
    (Arrow to arrays and WKB to shapely, each task's table as it arrives,
    while the workers go on).
    """
    files = _partition_files(Path(path))
    wanted: list[int] = []
    if len(fixed.ids) and files:
        tree = shapely.STRtree(fixed.geoms)
        for k, (_, box) in enumerate(files):
            if box is None or len(tree.query(shapely.box(*box), predicate="intersects")):
                wanted.append(k)
    if not wanted:
        return MeasuredPieces.concat([]), wanted, []
    names = [str(files[k][0]) for k in wanted]
    plain_yields = {str(k): float(v) for k, v in yields.items()}
    if client is None:
        sites = fixed.geoms
        site_tree = shapely.STRtree(sites)
        parts: list[MeasuredPieces] = []
        seconds: list[float] = []
        import time

        for name in names:
            t = time.perf_counter()
            parts.append(_measure_file(name, sites, site_tree, yields=plain_yields, centre=centre))
            seconds.append(time.perf_counter() - t)
        return MeasuredPieces.concat(parts), wanted, seconds
    import time

    distributed = _distributed()
    t = time.perf_counter()
    slots = sum(int(n) for n in client.nthreads().values()) or 1
    # The sites go to every worker once, not once per task.
    [site_wkb] = client.scatter(
        [np.asarray(shapely.to_wkb(fixed.geoms), dtype=object)], broadcast=True
    )
    futures = [
        client.submit(_measure_task, batch, site_wkb, plain_yields, centre, pure=False)
        for batch in _batches(names, slots)
    ]
    position = {f.key: k for k, f in enumerate(futures)}
    done: list[MeasuredPieces | None] = [None] * len(futures)
    per_file: list[list[float]] = [[] for _ in futures]
    decode = 0.0
    # Each table is decoded as it arrives, while the workers cut the next partitions.
    for future, (table, seconds) in distributed.as_completed(futures, with_results=True):
        t_in = time.perf_counter()
        k = position[future.key]
        done[k], per_file[k] = _from_arrow(table), seconds
        decode += time.perf_counter() - t_in
    measured = MeasuredPieces.concat([m for m in done if m is not None])
    if timings is not None:
        timings["tasks"] = time.perf_counter() - t
        timings["decode"] = decode
    return measured, wanted, [s for secs in per_file for s in secs]


def _site_groups(fixed: FixedSites, size: int) -> list[NDArray[np.intp]]:
    """Positions of the fixed sites in groups of *size* neighbours (Hilbert order)."""
    n = len(fixed.ids)
    if n == 0:
        return []
    order = np.argsort(
        gpd.GeoSeries(fixed.geoms, crs=4490).hilbert_distance(level=16).to_numpy(), kind="stable"
    )
    return [np.sort(g) for g in np.array_split(order, max(1, -(-n // size)))]


def _sub_demand(demand: DemandResult, ids: list[str]) -> DemandResult:
    """Return the demand rows and cultivated pieces of some sites (what compliance reads).

    Compliance reads only the cultivated pieces (R14: cultivated land outside
    basic farmland); the others would travel to the workers for nothing.
    """
    keep = set(ids)
    pieces = demand.pieces
    return replace(
        demand,
        table=demand.table[demand.table["project_id"].isin(keep)],
        pieces=pieces[pieces["project_id"].isin(keep).to_numpy() & pieces["cultivated"].to_numpy()],
    )


def _compliance_task(
    sites: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame | None,
    lines: gpd.GeoDataFrame,
    demand: DemandResult,
    options: Mapping[str, Any],
) -> pd.DataFrame:
    from landquota.rules.compliance import compliance_of_sites

    return compliance_of_sites(
        sites,
        zones,
        lines,
        demand=demand,
        tolerance_m2=float(options["tolerance_m2"]),
        adjusted_allowed=options["adjusted_allowed"],
        plan_version=options["plan_version"],
        centre=options["centre"],
    )


def demand_and_compliance_dask(
    ws: Any,
    sites: gpd.GeoDataFrame,
    zones: gpd.GeoDataFrame | None,
    lines: gpd.GeoDataFrame,
    *,
    yields: Mapping[str, float],
    tolerance_m2: float,
    check_coverage: bool,
    scheduler: Any = None,
    partitions: str | Path | None = None,
    plan_version: str | None = None,
    adjusted_allowed: gpd.GeoSeries | None = None,
    progress: bool = False,
) -> tuple[DemandResult, pd.DataFrame, int]:
    """Demand and compliance of *sites* on a Dask cluster (``engine='dask'``).

    Called by :func:`landquota.engines.api.demand_from_workspace`, which reads
    *sites*, *zones* and *lines*. Returns the demand, the compliance frame and
    the number of patches in the partitions that met a site.
    """
    from landquota.settings import mask_url

    fixed = fixed_sites(sites)
    centre: Centre | None = sites_centre(fixed.geoms)
    with ExitStack() as stack:
        # Connect first: a wrong address must fail before minutes of export.
        client = stack.enter_context(_client(scheduler))
        if partitions is None:
            path = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="landquota-")))
        else:
            path = Path(partitions)
        source = mask_url(str(ws.target))
        rows = int(ws.layer_counts()["parcels"])
        info = _reusable(path, source, rows)
        if info is None:
            info = export_partitions(ws, path, source=source)

        # 1–2. Read, cut and measure per partition on the workers, only where a site is.
        measured, wanted, _ = measure_partitions(
            path, fixed, yields=yields, centre=centre, client=client
        )
        n_read = int(sum(info["partitions"][k] for k in wanted))

        # 3. Sum on the client, exactly as the local engine does.
        demand = sum_pieces(
            fixed,
            measured,
            tolerance_m2=tolerance_m2,
            check_coverage=check_coverage,
            centre=centre,
        )

        # 4. Compliance per group of neighbouring sites, in the run's projection.
        options = {
            "tolerance_m2": tolerance_m2,
            "adjusted_allowed": adjusted_allowed,
            "plan_version": plan_version,
            "centre": centre,
        }
        groups = _site_groups(fixed, SITES_PER_TASK)
        if groups:
            zones_f, lines_f = client.scatter([zones, lines], broadcast=True)
            futures = []
            for group in groups:
                ids = [str(i) for i in fixed.ids[group]]
                futures.append(
                    client.submit(
                        _compliance_task,
                        sites.iloc[fixed.rows[group]],
                        zones_f,
                        lines_f,
                        _sub_demand(demand, ids),
                        options,
                        pure=False,
                    )
                )
            parts = client.gather(futures)
            compliance = pd.concat(parts, ignore_index=True)
            rank = {p: k for k, p in enumerate(fixed.ids)}
            compliance = (
                compliance.assign(_rank=compliance["project_id"].map(rank))
                .sort_values("_rank", kind="stable")
                .drop(columns="_rank")
                .reset_index(drop=True)
            )
        else:
            compliance = _compliance_task(sites, zones, lines, demand, options)
    return demand, compliance, n_read
