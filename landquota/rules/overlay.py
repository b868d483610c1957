"""Private helpers shared by demand and compliance: frame checks and site overlays.

Both modules take the in-memory frames of the workspace contract (EPSG:4490,
Polygon/MultiPolygon, a text id column) and intersect project sites with other
polygon layers through an STRtree and vectorised shapely operations, never
``geopandas.overlay`` (see ``docs/accounting.md`` for why).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS, Transformer

from landquota._parallel import chunked
from landquota.errors import CRSError, DataError
from landquota.rules.areas import ellipsoidal_area, equal_area_crs

_CRS_EPSG = 4490  # landquota.store.schema.CRS_EPSG; the contract CRS of every frame
_POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
#: Centres of the equal-area projection are rounded like ``landquota.rules.areas`` does.
_CENTRE_DECIMALS: Final = 2

Centre = tuple[float, float]


def sites_centre(geoms: NDArray[np.object_]) -> Centre | None:
    """Centre (lon, lat) of the extent of *geoms*, rounded to 0.01°; None if all are empty.

    Demand and compliance measure every area of a run in ONE equal-area
    projection centred here (R1), so that a site's figures do not depend on
    which other sites, patches or chunks happen to be measured in the same call.
    That is what makes the Dask engine's chunked results identical to the
    single-machine run.
    """
    present = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    if present.size == 0:
        return None
    xmin, ymin, xmax, ymax = (float(v) for v in shapely.total_bounds(present))
    return (
        round((xmin + xmax) / 2.0, _CENTRE_DECIMALS),
        round((ymin + ymax) / 2.0, _CENTRE_DECIMALS),
    )


@functools.lru_cache(maxsize=16)
def _to_equal_area(lon0: float, lat0: float) -> Transformer:
    return Transformer.from_crs(
        CRS.from_epsg(_CRS_EPSG), equal_area_crs(lon0, lat0), always_xy=True
    )


def measure(geoms: NDArray[np.object_], centre: Centre | None, *, name: str) -> NDArray[np.float64]:
    """Ellipsoidal areas (R1, m²) of EPSG:4490 geometries in the LAEA centred at *centre*.

    The same method as :func:`landquota.rules.areas.ellipsoidal_area` (which centres
    on the data's own extent; used when *centre* is None). Missing geometries
    measure NaN, empty ones 0.
    """
    if centre is None:
        return np.asarray(ellipsoidal_area(geoms, name=name), dtype=np.float64)
    arr = np.asarray(geoms, dtype=object)
    if arr.size == 0:
        return np.empty(0, dtype=np.float64)
    transformer = _to_equal_area(*centre)

    def project(coords: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    def areas(part: NDArray[np.object_]) -> NDArray[np.float64]:
        return np.asarray(shapely.area(shapely.transform(part, project, include_z=False)))

    # Each geometry is projected and measured alone, so splitting the array over
    # threads (pyproj's Transformer is thread-safe, GEOS releases the GIL) gives
    # the same floats as one call; the sums come later, in the caller's order.
    return np.asarray(chunked(areas, arr), dtype=np.float64)


def _ids(values: Sequence[Any] | NDArray[Any], limit: int = 5) -> str:
    shown = ", ".join(repr(v) for v in list(values)[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def check_frame(
    frame: object, *, layer: str, id_column: str, required: Sequence[str] = ()
) -> gpd.GeoDataFrame:
    """Check a spatial frame against the contract and return it.

    Raises ``DataError`` for a wrong type, missing columns or bad ids, and
    ``CRSError`` (naming *layer*) for a missing or non-CGCS2000 CRS.
    """
    if not isinstance(frame, gpd.GeoDataFrame):
        raise DataError(
            f"{layer}: expected a GeoDataFrame, got {type(frame).__name__}; read it with "
            f"ws.read_layer({layer!r}) or geopandas.read_file"
        )
    missing = [c for c in (id_column, *required) if c not in frame.columns]
    if missing:
        raise DataError(
            f"{layer}: missing column(s) {', '.join(map(repr, missing))}; the frame has "
            f"{', '.join(map(repr, map(str, frame.columns)))} (see docs/data-contract.md)"
        )
    if frame.crs is None:
        raise CRSError(
            f"{layer}: the frame has no CRS; it must be EPSG:4490 (CGCS2000). If the "
            "coordinates are CGCS2000 lon/lat use .set_crs(4490), "
            "else .set_crs(source).to_crs(4490)"
        )
    if CRS.from_user_input(frame.crs) != CRS.from_epsg(_CRS_EPSG):
        raise CRSError(
            f"{layer}: CRS is {CRS.from_user_input(frame.crs).to_string()!r}, expected "
            f"'EPSG:4490' (CGCS2000); reproject with .to_crs(4490) (import does this)"
        )
    ids = frame[id_column]
    if ids.isna().any():
        rows = np.flatnonzero(ids.isna().to_numpy())
        raise DataError(f"{layer}: {id_column} is missing in row(s) {_ids(rows.tolist())}")
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        raise DataError(
            f"{layer}: {id_column} is not unique: {_ids(list(dup))} occur more than once; "
            "every feature needs its own id"
        )
    return frame


def check_polygons(
    geoms: NDArray[np.object_], ids: NDArray[Any], *, layer: str, id_column: str
) -> None:
    """Raise ``DataError`` unless every geometry is a valid (multi)polygon."""
    kinds = shapely.get_type_id(geoms)
    bad_type = ~np.isin(kinds, [int(t) for t in _POLYGONAL])
    if bad_type.any():
        i = np.flatnonzero(bad_type)
        raise DataError(
            f"{layer}: {id_column} {_ids(ids[i].tolist())} have geometry type(s) "
            f"{sorted({str(shapely.get_type_id(g)) for g in geoms[i]})} "
            "(shapely type ids); sites, parcels and zones must be polygons or multipolygons"
        )
    invalid = ~chunked(shapely.is_valid, geoms)
    if invalid.any():
        i = np.flatnonzero(invalid)
        reason = shapely.is_valid_reason(geoms[i[0]])
        raise DataError(
            f"{layer}: invalid geometry in {id_column} {_ids(ids[i].tolist())} "
            f"(first: {reason}); run `landquota validate`, or repair with shapely.make_valid"
        )


@dataclass(frozen=True)
class FixedSites:
    """Project sites that are fixed (a red line exists), in input order."""

    ids: NDArray[np.object_]
    geoms: NDArray[np.object_]
    rows: NDArray[np.intp]  # positions in the input frame
    not_fixed: tuple[str, ...]


def fixed_sites(sites: object) -> FixedSites:
    """Validate the projects frame and select the fixed sites.

    A site is fixed when its geometry is present and non-empty and, if the frame
    has a ``site_fixed`` column, that column is True. ``site_fixed`` True with no
    geometry is a contradiction and raises ``DataError``.
    """
    frame = check_frame(sites, layer="projects", id_column="project_id")
    geoms = np.asarray(frame.geometry.array, dtype=object)
    has_geom = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    ids = frame["project_id"].astype(object).to_numpy()
    if "site_fixed" in frame.columns:
        flag = frame["site_fixed"]
        if flag.isna().any():
            raise DataError(
                f"projects: site_fixed is missing for project_id "
                f"{_ids(ids[flag.isna().to_numpy()].tolist())}; set it to True or False"
            )
        declared = flag.astype(bool).to_numpy()
        contradiction = declared & ~has_geom
        if contradiction.any():
            raise DataError(
                f"projects: project_id {_ids(ids[contradiction].tolist())} have site_fixed=True "
                "but no site geometry; import the red line or set site_fixed=False"
            )
        fixed = declared & has_geom
    else:
        fixed = has_geom
    rows = np.flatnonzero(fixed)
    site_geoms = np.asarray(shapely.force_2d(geoms[rows]), dtype=object)
    check_polygons(site_geoms, ids[rows], layer="projects", id_column="project_id")
    return FixedSites(
        ids=ids[rows],
        geoms=site_geoms,
        rows=rows,
        not_fixed=tuple(str(i) for i in ids[~fixed]),
    )


def polygonal(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    """Keep the polygonal parts of each geometry, as MultiPolygons (empty when none).

    Intersections of polygons that share an edge return lines or points, or a
    GeometryCollection mixing them with polygons; only area matters here.
    """
    # elementwise: on threads for large arrays, the same geometries either way
    return np.asarray(chunked(_polygonal, np.asarray(geoms, dtype=object)), dtype=object)


def _polygonal(geoms: NDArray[np.object_]) -> NDArray[np.object_]:
    out = np.full(len(geoms), None, dtype=object)
    if len(geoms) == 0:
        return out
    parts, index = shapely.get_parts(geoms, return_index=True)
    # GeometryCollection members may themselves be multipolygons: split once more.
    parts, sub = shapely.get_parts(parts, return_index=True)
    index = index[sub]
    keep = shapely.get_type_id(parts) == int(shapely.GeometryType.POLYGON)
    keep &= ~shapely.is_empty(parts)
    if keep.any():
        shapely.multipolygons(parts[keep], indices=index[keep], out=out)
    empty = shapely.is_missing(out)
    out[empty] = shapely.from_wkt("MULTIPOLYGON EMPTY")
    return out


#: GRS80 (= CGCS2000) semi-major axis and eccentricity squared.
_A: Final = 6_378_137.0
_E2: Final = 0.006694380022900787


def lonlat_area_m2(geoms: NDArray[np.object_]) -> NDArray[np.float64]:
    """Planar lon/lat area × m² per square degree at each geometry's mid-latitude.

    For tolerance checks of *differences* (site − union of pieces, site − zones),
    never for official figures: within ~0.5 % of the ellipsoidal area for small
    polygons, and ~0 for the degenerate slivers an overlay leaves along a
    straight lon/lat edge. Measured ellipsoidally (R1) such a sliver is not 0,
    because a straight lon/lat edge is curved in any equal-area plane, and
    weighs ~1e-5 of a long-edged site (≈1 m² on 45 ha): enough to trip a 1 m²
    tolerance where the layers fit exactly.
    """
    out = np.zeros(len(geoms), dtype=np.float64)
    if len(geoms) == 0:
        return out
    bounds = shapely.bounds(geoms)
    present = np.isfinite(bounds[:, 1])
    phi = np.radians((bounds[present, 1] + bounds[present, 3]) / 2.0)
    w = np.sqrt(1.0 - _E2 * np.sin(phi) ** 2)
    m_per_deg_lat = np.radians(1.0) * _A * (1.0 - _E2) / w**3
    m_per_deg_lon = np.radians(1.0) * _A * np.cos(phi) / w
    out[present] = shapely.area(geoms[present]) * m_per_deg_lat * m_per_deg_lon
    return out


def site_pairs(
    site_geoms: NDArray[np.object_], tree: shapely.STRtree
) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Index pairs (site, feature) whose geometries intersect, sorted by site, then feature.

    The full sort makes every later per-site sum and union independent of the
    tree's traversal order, hence of how the features were chunked.
    """
    if len(site_geoms) == 0:
        empty = np.empty(0, dtype=np.intp)
        return empty, empty
    pairs = tree.query(site_geoms, predicate="intersects")
    i = np.asarray(pairs[0], dtype=np.intp)
    j = np.asarray(pairs[1], dtype=np.intp)
    order = np.lexsort((j, i))
    return i[order], j[order]


def union_by_group(
    geoms: NDArray[np.object_], groups: NDArray[np.intp], n_groups: int
) -> NDArray[np.object_]:
    """Union of *geoms* per group 0..n_groups-1 (empty MultiPolygon where a group has none)."""
    out = np.array([shapely.from_wkt("MULTIPOLYGON EMPTY")] * n_groups, dtype=object)
    if len(geoms) == 0:
        return out
    order = np.argsort(groups, kind="stable")
    sorted_groups = groups[order]
    starts = np.flatnonzero(np.r_[True, sorted_groups[1:] != sorted_groups[:-1]])
    for start, stop in zip(starts, np.r_[starts[1:], len(order)], strict=True):
        members = geoms[order[start:stop]]
        out[sorted_groups[start]] = members[0] if len(members) == 1 else shapely.union_all(members)
    return out


def as_text_series(values: NDArray[Any] | pd.Series) -> pd.Series:
    """Return *values* as a column of the contract's text dtype."""
    return pd.Series(np.asarray(values, dtype=object), dtype="str")
