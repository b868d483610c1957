"""The ``--engine dask`` runner of demand and compliance (R1–R4, R13–R15) on a Dask cluster.

The parcel layer is stored once as Hilbert-sorted GeoParquet partitions
(:func:`write_partitions`; each file holds ~100,000 neighbouring patches and
its bounding box in the GeoParquet metadata). A run then:

1. reads the dataset lazily with ``dask_geopandas.read_parquet`` and keeps
   only the partitions whose extent meets a fixed site;
2. on the workers, per partition: the sites whose bounds meet the partition's
   bounds are cut with its patches (:func:`landquota.rules.demand.cut_pieces`: pairs
   through an STRtree, validity checks of the touched patches, intersection);
3. on the client: the pieces are measured and summed by
   :func:`landquota.rules.demand.demand_from_pieces`, the same function the local
   engine uses, after putting them in a canonical order (site, parcel_id);
4. on the workers again: compliance per group of neighbouring sites (the plan
   layers are broadcast once), every chunk measuring in the run's one
   equal-area projection.

Every (site, patch) pair lives in exactly one partition and gives the same
piece there as in the local run, and every area is measured in the same
projection and summed in the same order, so the results are *identical* to
``engine="local"`` (not merely close). See ``docs/scaling.md``.
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
from landquota.rules.demand import Cut, DemandResult, cut_pieces, demand_from_pieces
from landquota.rules.overlay import Centre, FixedSites, fixed_sites, sites_centre
from landquota.store.workspace import Workspace

__all__ = [
    "ROWS_PER_PARTITION",
    "demand_and_compliance_dask",
    "export_partitions",
    "hilbert_distance",
    "overlay_partitions",
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
#: The parcel attributes the demand needs (R2–R4), carried with each piece.
_PARCEL_COLUMNS: Final = ("parcel_id", "land_class", "gross_m2", "net_m2", "grain_kg_per_m2")


def _dask_imports() -> tuple[Any, Any]:
    try:
        import dask_geopandas
        import distributed
    except ImportError as exc:  # pragma: no cover - depends on the installation
        raise ParameterError(
            "engine='dask' needs dask-geopandas and distributed: "
            "pip install 'landquota[dask]' (or dask-geopandas distributed)"
        ) from exc
    return dask_geopandas, distributed


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
    which ``dask_geopandas.read_parquet`` builds ``spatial_partitions``.

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
        part.to_parquet(out / f"part.{k:05d}.parquet", index=False)
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
            got.to_parquet(out / f"part.{k:05d}.parquet", index=False)
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
                "version": "1.0.0",
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
                    }
                },
            }
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
    _, distributed = _dask_imports()
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


def _cut_partition(part: gpd.GeoDataFrame, site_wkb: NDArray[np.object_]) -> gpd.GeoDataFrame:
    """Worker side: pieces of the sites meeting this partition (one row per piece)."""
    sites = np.asarray(shapely.from_wkb(site_wkb), dtype=object)
    if len(part) and len(sites):
        # Only the sites whose bounds meet the partition's bounds.
        near = shapely.STRtree(sites).query(shapely.box(*part.total_bounds))
        near = np.sort(np.asarray(near, dtype=np.intp))
    else:
        near = np.empty(0, dtype=np.intp)
    if len(near) == 0:
        return _meta()
    cut = cut_pieces(sites[near], part)
    hit = cut.hit.iloc[cut.parcel].reset_index(drop=True)
    data: dict[str, Any] = {"site": near[cut.site].astype(np.int64)}
    for column in _PARCEL_COLUMNS:
        data[column] = hit[column] if column in hit.columns else np.full(len(hit), np.nan)
    data["parcel_geometry"] = gpd.GeoSeries(np.asarray(hit.geometry.array), crs=4490)
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(cut.geoms, crs=4490))


def _meta() -> gpd.GeoDataFrame:
    empty = gpd.GeoSeries([], crs=4490)
    return gpd.GeoDataFrame(
        {
            "site": pd.Series(dtype="int64"),
            "parcel_id": pd.Series(dtype="str"),
            "land_class": pd.Series(dtype="str"),
            "gross_m2": pd.Series(dtype="float64"),
            "net_m2": pd.Series(dtype="float64"),
            "grain_kg_per_m2": pd.Series(dtype="float64"),
            "parcel_geometry": empty,
        },
        geometry=empty,
    )


def _cut_from_frame(frame: gpd.GeoDataFrame) -> Cut:
    """Client side: the pieces of all partitions as one :class:`Cut`."""
    frame = frame.reset_index(drop=True)
    first = ~frame["parcel_id"].duplicated()
    hit_rows = frame[first]
    hit = gpd.GeoDataFrame(
        pd.DataFrame(hit_rows[list(_PARCEL_COLUMNS)]).reset_index(drop=True),
        geometry=gpd.GeoSeries(np.asarray(hit_rows["parcel_geometry"].array), crs=4490),
    )
    position = pd.Index(hit["parcel_id"].astype(object)).get_indexer(
        frame["parcel_id"].astype(object)
    )
    return Cut(
        site=frame["site"].to_numpy(dtype=np.intp),
        hit=hit,
        parcel=np.asarray(position, dtype=np.intp),
        geoms=np.asarray(frame.geometry.array, dtype=object),
    )


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
    """Return the demand rows and pieces of some sites (what compliance reads of it)."""
    keep = set(ids)
    return replace(
        demand,
        table=demand.table[demand.table["project_id"].isin(keep)],
        pieces=demand.pieces[demand.pieces["project_id"].isin(keep)],
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


def overlay_partitions(
    path: str | Path, fixed: FixedSites, client: Any = None
) -> tuple[gpd.GeoDataFrame, list[int], list[float]]:
    """Return the pieces of *fixed* sites over the partitions in *path* that meet a site.

    With a Dask *client* the partitions are cut on its workers; without one,
    one after the other in this process (what ``benchmarks/bench_scale.py``
    times as the one-process run, and whose per-partition seconds it reports:
    the third item, empty with a client). The pieces are the same either way
    (each (site, patch) pair lives in one partition), in partition order.
    """
    dask_geopandas, _ = _dask_imports()
    ddf = dask_geopandas.read_parquet(str(path))
    extents = ddf.spatial_partitions
    if extents is None:
        extents = ddf.calculate_spatial_partitions()
        extents = ddf.spatial_partitions
    wanted: list[int] = []
    if len(fixed.ids) and len(extents):
        hits = shapely.STRtree(fixed.geoms).query(
            np.asarray(extents.values, dtype=object), predicate="intersects"
        )
        wanted = sorted({int(k) for k in hits[0]})
    if not wanted:
        return _meta(), wanted, []
    site_wkb = np.asarray(shapely.to_wkb(fixed.geoms), dtype=object)
    if client is not None:
        lazy = ddf.partitions[wanted].map_partitions(_cut_partition, site_wkb, meta=_meta())
        frame = gpd.GeoDataFrame(client.compute(lazy, sync=True), geometry="geometry", crs=4490)
        return frame, wanted, []
    import time

    files = sorted(Path(path).glob("part.*.parquet"))
    parts: list[gpd.GeoDataFrame] = []
    seconds: list[float] = []
    for k in wanted:
        t = time.perf_counter()
        parts.append(_cut_partition(gpd.read_parquet(files[k]), site_wkb))
        seconds.append(time.perf_counter() - t)
    frame = gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=4490)
    return frame, wanted, seconds


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

        # 1–2. Parcel overlay per partition, only where a site is.
        frame, wanted, _ = overlay_partitions(path, fixed, client)
        n_read = int(sum(info["partitions"][k] for k in wanted))

        # 3. Measure and sum on the client, exactly as the local engine does.
        demand = demand_from_pieces(
            fixed,
            _cut_from_frame(frame),
            yields=yields,
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
