"""Geometry of the HTML map: simplification, dissolving and the compact coordinate encoding.

Survey patches are simplified as a coverage (shared edges stay shared) and dissolved by
display class; coordinates are quantised to 1e-5° (about 1 m) and delta-coded into integer
chains that the JS runtime (:mod:`landquota.outputs._mapjs`) decodes. ``docs/maps.md``
explains the choices and the measured cost.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import shapely

from landquota.rules.areas import ellipsoidal_area

#: Simplification tolerance of the survey patches, plan zones and control lines, in
#: degrees (about 2 m): below one screen pixel up to zoom 16 at 24.5°N.
DISPLAY_TOLERANCE_DEG = 2e-5
#: Coordinates are stored as integers of 1e-5 degree (about 1.1 m north–south).
_SCALE = 100_000


def _geoms(frame: gpd.GeoDataFrame) -> np.ndarray:
    return np.asarray(frame.geometry.array, dtype=object)


def _encode(geoms: Any) -> dict[str, list[int]] | None:
    """Encode polygons or lines as integer 1e-5° delta chains (see the JS runtime).

    Returns ``{"c": deltas, "r": points per ring, "q": rings per polygon}`` (no
    ``q`` for lines), or ``None`` when nothing drawable is left after quantising.
    The closing vertex of each ring is dropped (Leaflet closes rings) and so are
    repeated points; rings left with fewer than 3 points (2 for lines), and polygons
    whose shell went, are dropped.
    """
    parts = shapely.get_parts(np.asarray(geoms, dtype=object).ravel())
    parts = parts[~shapely.is_empty(parts)]
    kinds = shapely.get_type_id(parts)
    polys = parts[kinds == 3]
    if len(polys):
        rings, ring_owner = shapely.get_rings(polys, return_index=True)
        polygonal = True
    else:
        rings = parts[(kinds == 1) | (kinds == 2)]
        ring_owner = np.arange(len(rings))
        polygonal = False
    if len(rings) == 0:
        return None
    coords, ring_of = shapely.get_coordinates(rings, return_index=True)
    q = np.rint(coords * _SCALE).astype(np.int64)
    same_ring_next = ring_of[1:] == ring_of[:-1]
    keep = np.ones(len(q), dtype=bool)
    keep[1:] &= ~((q[1:] == q[:-1]).all(axis=1) & same_ring_next)
    if polygonal:
        keep &= ~np.r_[~same_ring_next, True]  # drop each ring's closing vertex
    counts = np.bincount(ring_of[keep], minlength=len(rings))
    ring_ok = counts >= (3 if polygonal else 2)
    out: dict[str, list[int]] = {}
    if polygonal:
        shell = np.r_[True, ring_owner[1:] != ring_owner[:-1]]
        poly_ok = np.zeros(len(polys), dtype=bool)
        poly_ok[ring_owner[shell & ring_ok]] = True
        ring_ok &= poly_ok[ring_owner]
        out["q"] = np.bincount(ring_owner[ring_ok], minlength=len(polys))[poly_ok].tolist()
    keep &= ring_ok[ring_of]
    pts = q[keep]
    if len(pts) == 0:
        return None
    out["c"] = np.diff(pts, axis=0, prepend=np.zeros((1, 2), dtype=np.int64)).ravel().tolist()
    out["r"] = counts[ring_ok].tolist()
    return out


def _polygonal(geoms: np.ndarray) -> np.ndarray:
    """Repair invalid polygons so that GEOS coverage operations accept them."""
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad], method="structure", keep_collapsed=False)
    return geoms


def _dissolve(geoms: np.ndarray, keys: np.ndarray, tolerance: float, bar: Any) -> dict[Any, Any]:
    """Simplify a coverage and dissolve it by *keys*: ``{key: array of polygons}``.

    When the patches form a valid coverage (they tessellate, as survey patches
    should) ``coverage_simplify`` keeps shared edges shared, so no gaps or
    slivers open between neighbours, and ``coverage_union`` dissolves each class
    by dropping the shared edges. Otherwise each patch is simplified on its own
    and a class is drawn as the set of its patches (no union: slow and fragile on
    overlapping data), which looks the same with fill only.
    """
    ok = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    geoms, keys = _polygonal(geoms[ok]), keys[ok]
    out: dict[Any, Any] = {}
    if len(geoms) == 0:
        return out
    bar.set_postfix_str(f"checking coverage of {len(geoms):,} polygons")
    coverage = bool(shapely.coverage_is_valid(geoms))
    bar.set_postfix_str(f"simplifying {len(geoms):,} polygons")
    if coverage:
        simple = shapely.coverage_simplify(geoms, tolerance)
    else:
        simple = shapely.simplify(geoms, tolerance, preserve_topology=True)
    bar.update()
    rows: dict[Any, list[int]] = {}  # keys may be tuples: no vectorised ==
    for i, key in enumerate(keys.tolist()):
        rows.setdefault(key, []).append(i)
    for key, index in rows.items():
        bar.set_postfix_str(f"dissolving {key}")
        members = simple[index]
        if coverage:
            members = shapely.get_parts(shapely.coverage_union_all(members))
        out[key] = members
    bar.update()
    return out



def _areas_m2(geoms: gpd.GeoSeries) -> np.ndarray:
    """Ellipsoidal areas (R1) for popups, by :func:`landquota.rules.areas.ellipsoidal_area`."""
    return np.asarray(ellipsoidal_area(geoms), dtype="float64")
