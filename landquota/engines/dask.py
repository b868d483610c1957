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

from landquota.engines.partitions import (
    ROWS_PER_PARTITION,
    _reusable,
    export_partitions,
    hilbert_distance,
    write_partitions,
)
from landquota.errors import ParameterError, WorkspaceError
from landquota.rules.demand import (
    DemandResult,
    MeasuredPieces,
    cut_pieces,
    measure_pieces,
    sum_pieces,
)
from landquota.rules.overlay import Centre, FixedSites, fixed_sites, sites_centre

__all__ = [
    "ROWS_PER_PARTITION",
    "demand_and_compliance_dask",
    "export_partitions",
    "hilbert_distance",
    "measure_partitions",
    "write_partitions",
]
# the partitions' format (writing, the sidecar) is landquota.engines.partitions; re-exported
# here because `--engine dask` users meet them as the engine's own functions

#: Sites per compliance task.
SITES_PER_TASK: Final = 256
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
    sites = np.asarray(shapely.from_wkb(site_wkb), dtype=object)
    pieces, seconds = _measure_files(files, sites, yields, centre)
    return _to_arrow(pieces), seconds


def _measure_files(
    files: list[str], sites: NDArray[np.object_], yields: dict[str, float], centre: Centre | None,
    tree: shapely.STRtree | None = None,
) -> tuple[MeasuredPieces, list[float]]:
    """Measure the pieces of *files* against *sites* (*tree*: theirs, if already built); return them and each file's seconds."""
    import time

    tree = tree if tree is not None else shapely.STRtree(sites)
    parts: list[MeasuredPieces] = []
    seconds: list[float] = []
    for file in files:
        t = time.perf_counter()
        parts.append(_measure_file(file, sites, tree, yields=yields, centre=centre))
        seconds.append(time.perf_counter() - t)
    return MeasuredPieces.concat(parts), seconds


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
    tree = shapely.STRtree(fixed.geoms)
    if len(fixed.ids) and files:
        for k, (_, box) in enumerate(files):
            if box is None or len(tree.query(shapely.box(*box), predicate="intersects")):
                wanted.append(k)
    if not wanted:
        return MeasuredPieces.concat([]), wanted, []
    names = [str(files[k][0]) for k in wanted]
    plain_yields = {str(k): float(v) for k, v in yields.items()}
    if client is None:
        pieces, seconds = _measure_files(names, fixed.geoms, plain_yields, centre, tree)
        return pieces, wanted, seconds
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
