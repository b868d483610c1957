"""Reading the patches (地类图斑) a set of sites needs, from either backend.

Demand and compliance (R1–R4, R13–R15) cut sites with the survey patches under them;
reading only those is most of a county run's I/O. :func:`read_parcels_under_sites`
lets the database do the spatial-index join (PostGIS over one session per core,
a GeoPackage's R-tree); :func:`read_parcels_near` reads the patches in a few boxes
around the sites (:func:`read_boxes`: groups of neighbouring sites along a Hilbert
curve). See ``docs/scaling.md``. Kept apart from :mod:`landquota.rules.demand`,
which computes on frames and reads nothing.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota._parallel import chunked, run_all, workers

#: Sites are grouped (in Hilbert order) into at most this many boxes whose
#: parcels are read with one bbox query each (see ``docs/scaling.md``).
MAX_READ_BOXES: Final = 64
#: When the groups' boxes cover more than this share of the sites' whole
#: extent, one query of the whole extent is cheaper than many.
ONE_BOX_SHARE: Final = 0.5


def read_boxes(
    site_geoms: NDArray[np.object_], *, max_boxes: int = MAX_READ_BOXES
) -> list[tuple[float, float, float, float]]:
    """Boxes (minx, miny, maxx, maxy) whose parcels cover every site.

    Sites are sorted along a Hilbert curve and cut into at most *max_boxes*
    runs of neighbours; each run's bounding box is one ``read_layer(bbox=…)``.
    Sites spread over a county then read a few per cent of its patches instead
    of all of them. When the runs' boxes together cover more than
    :data:`ONE_BOX_SHARE` of the whole extent, the whole extent is one box.
    """
    present = site_geoms[~(shapely.is_missing(site_geoms) | shapely.is_empty(site_geoms))]
    if present.size == 0:
        return []
    total = tuple(float(v) for v in shapely.total_bounds(present))
    whole = (total[0], total[1], total[2], total[3])
    if present.size == 1 or max_boxes <= 1:
        return [whole]
    order = np.argsort(
        gpd.GeoSeries(present, crs=4490).hilbert_distance(total_bounds=whole).to_numpy(),
        kind="stable",
    )
    bounds = shapely.bounds(present[order])
    runs = np.array_split(np.arange(len(order)), min(max_boxes, len(order)))
    boxes = [
        (
            float(bounds[r, 0].min()),
            float(bounds[r, 1].min()),
            float(bounds[r, 2].max()),
            float(bounds[r, 3].max()),
        )
        for r in runs
    ]
    covered = sum((b[2] - b[0]) * (b[3] - b[1]) for b in boxes)
    extent = (whole[2] - whole[0]) * (whole[3] - whole[1])
    return [whole] if covered > ONE_BOX_SHARE * extent else boxes


def read_parcels_under_sites(ws: Any) -> gpd.GeoDataFrame | None:
    """Read the patches whose bounding box meets a site's, in one spatial-index join.

    The join runs in the database: the GeoPackage's R-tree of ``parcels``
    against that of ``projects``, or ``parcels.geom && projects.geom`` through
    the GiST indexes on PostGIS. Sites spread over a county touch a few per cent
    of its patches, and only those cross the wire (see ``docs/accounting.md``,
    "PostGIS: SQL or geopandas"). Returns None for a backend it does not know.
    """
    from landquota.store.schema import layer
    from landquota.store.workspace import coerce_frame

    lyr = layer("parcels")
    if ws.kind == "gpkg":
        import pyogrio

        # The GeoPackage driver hands an attribute filter to SQLite as it is, so
        # the R-tree join runs inside SQLite; no value from input enters it.
        # CROSS JOIN fixes the loop order: each of the few sites searches the
        # patches' R-tree (the other order is one search per patch).
        join = (
            'fid IN (SELECT r.id FROM "rtree_projects_geom" s CROSS JOIN "rtree_parcels_geom" r '
            "ON r.minx <= s.maxx AND r.maxx >= s.minx AND r.miny <= s.maxy AND r.maxy >= s.miny)"
        )
        meta, table = pyogrio.read_arrow(ws.target, layer="parcels", where=join)
        gcol = meta["geometry_name"] or "wkb_geometry"
        # WKB decoded on every core (read_dataframe decodes on one)
        geoms = chunked(shapely.from_wkb, table.column(gcol).to_numpy(zero_copy_only=False))
        df = gpd.GeoDataFrame(table.drop_columns([gcol]).to_pandas(), geometry=geoms, crs=4490)
    elif ws.kind == "postgis":
        import sqlalchemy as sa

        parcels, projects = ws.table("parcels"), ws.table("projects")
        # Sites outer, the patches' GiST index inner; patches under two sites are
        # dropped below. No ORDER BY/DISTINCT/EXISTS here: each tempts PostgreSQL
        # into scanning all patches with one index probe of the sites each
        # (8–12 s instead of 0.4 s on 10^6 patches); demand sorts by parcel_id.
        stmt = (
            sa.select(
                *[parcels.c[c] for c in lyr.column_names],
                sa.func.ST_AsBinary(parcels.c.geom).label("wkb"),
            )
            .select_from(projects.join(parcels, projects.c.geom.op("&&")(parcels.c.geom)))
            .where(projects.c.site_fixed)
        )
        import pyarrow as pa
        import pyarrow.compute as pc

        from landquota.store.pgcolumns import read_columns

        types = [(c, lyr.column(c).type) for c in lyr.column_names] + [("wkb", "wkb")]
        n_parts = workers()

        def read_part(k: int) -> Any:
            part = stmt if n_parts == 1 else stmt.where(projects.c.fid % n_parts == k)
            with ws.engine.connect() as con:
                # binary, column-wise, parsed by numpy: no Python object per row until
                # the geometries (1.2–1.3 s as psycopg row tuples for 82,000 patches)
                return read_columns(con, part, types)

        # The sites split by fid over one session per core: the server runs the
        # join and its aggregation on every core (its sessions are single-threaded
        # here) while the parts already received are parsed.
        table = pa.concat_tables(run_all([partial(read_part, k) for k in range(n_parts)]))
        # first row of each parcel_id (a patch under two sites came twice): the
        # dictionary codes number the ids by first appearance
        codes = pc.dictionary_encode(table.column("parcel_id").combine_chunks()).indices
        _, first = np.unique(codes.to_numpy(zero_copy_only=False), return_index=True)
        keep = np.zeros(table.num_rows, dtype=bool)
        keep[first] = True
        table = table.filter(keep)
        wkb = table.column("wkb").to_numpy(zero_copy_only=False)
        df = table.drop_columns(["wkb"]).to_pandas()
        df = gpd.GeoDataFrame(df, geometry=chunked(shapely.from_wkb, wkb), crs=4490)
    else:
        return None
    frame: gpd.GeoDataFrame = coerce_frame(lyr, df)
    return frame


def read_parcels_near(
    ws: Any, site_geoms: NDArray[np.object_], *, max_boxes: int = MAX_READ_BOXES
) -> gpd.GeoDataFrame:
    """Read the patches whose bounding boxes meet the sites' read boxes (bbox pushdown)."""
    boxes = read_boxes(site_geoms, max_boxes=max_boxes)
    if not boxes:
        empty: gpd.GeoDataFrame = ws.read_layer("parcels", where={"parcel_id": []})
        return empty
    parts = [ws.read_layer("parcels", bbox=b) for b in boxes]
    if len(parts) == 1:
        only: gpd.GeoDataFrame = parts[0]
        return only
    frame = pd.concat(parts, ignore_index=True)
    # Boxes overlap; a patch read twice would be counted twice.
    frame = frame[~frame["parcel_id"].duplicated()].reset_index(drop=True)
    return gpd.GeoDataFrame(frame, geometry="geometry", crs=parts[0].crs)
