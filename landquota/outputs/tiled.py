"""City-scale patches for the offline map: levels of detail and compressed patch tiles.

A prefecture-level city has ~10⁶ survey patches. Dissolving them all by class
(the county strategy, :mod:`landquota.outputs.map_layers`) loses the patches
themselves, and embedding them as features makes a page of hundreds of MB. In
the tiled mode the page carries:

* **levels of detail** for low zooms: the patches dissolved by display class
  (``coverage_union_all``), drawn as hole-less shells largest first (as the
  county map), simplified and thinned per level (:data:`LODS`);
* **patch tiles** for street zooms (from :data:`TILE_MIN_ZOOM`): every patch,
  grouped by the web-mercator tile (zoom :data:`TILE_ZOOM`) holding the centre of
  its bounding box, each tile a zlib-compressed binary block (varint columns,
  coordinates quantised to 1e-5° and delta-coded) stored as base64 in the page
  and decompressed in the browser with ``DecompressionStream("deflate")`` when
  the view reaches it. Each patch is drawn on the canvas and is clickable: its
  popup shows the id, the land class (Chinese and English) and the area.

The block layout is documented in ``docs/maps.md`` and decoded by
``TILED_JS`` in :mod:`landquota.outputs._mapjs`. All encoding is vectorised
(numpy over all coordinates at once; the only Python loop is over tiles).
"""

from __future__ import annotations

import base64
import itertools
import math
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

__all__ = [
    "LODS",
    "TILED_THRESHOLD",
    "TILE_MIN_ZOOM",
    "TILE_ZOOM",
    "Lod",
    "encode_tiles",
    "lod_shells",
    "tile_of",
    "varints",
]

#: Above this many patches :func:`landquota.outputs.maps.build_map` uses the tiled mode
#: (``tiled=None``); the county mode dissolves everything and draws no single patch.
TILED_THRESHOLD: Final = 250_000
#: Zoom of the tiles that group the patches (z13: ~4.4 km at 24°N, ~1,000 patches).
TILE_ZOOM: Final = 13
#: From this zoom on the patches themselves are drawn (from the tiles) and clickable.
TILE_MIN_ZOOM: Final = 14
_SCALE: Final = 100_000  # 1e-5 degree, as the rest of the map


@dataclass(frozen=True)
class Lod:
    """One level of detail: shown from ``min_zoom`` to ``max_zoom`` (inclusive)."""

    min_zoom: int
    max_zoom: int
    #: simplification tolerance, degrees (about one screen pixel at ``max_zoom``)
    tolerance: float
    #: shells smaller than this (deg², planar) are dropped: the class around shows
    min_area: float


#: Levels of detail below :data:`TILE_MIN_ZOOM`. A pixel is ~140 m at z10, ~70 m at z11,
#: ~35 m at z12 and ~17 m at z13 (24°N); the tolerance is about a pixel at the level's
#: highest zoom, and shells under ~2×2 pixels of its lowest zoom are left out.
LODS: Final = (
    Lod(0, 10, 1.0e-3, 4.0e-6),
    Lod(11, 11, 4.0e-4, 1.0e-6),
    Lod(12, TILE_MIN_ZOOM - 1, 1.5e-4, 2.0e-7),
)


def tile_of(lon: NDArray[np.float64], lat: NDArray[np.float64], z: int) -> NDArray[np.int64]:
    """Web-mercator tile (x, y) at zoom *z* of each point, as an (n, 2) array."""
    n = 2**z
    x = np.floor((np.asarray(lon) + 180.0) / 360.0 * n)
    rad = np.radians(np.asarray(lat))
    y = np.floor((1.0 - np.log(np.tan(rad) + 1.0 / np.cos(rad)) / math.pi) / 2.0 * n)
    return np.stack([np.clip(x, 0, n - 1), np.clip(y, 0, n - 1)], axis=1).astype(np.int64)


def varints(values: NDArray[Any]) -> bytes:
    """LEB128 unsigned varints of *values* (non-negative integers), vectorised."""
    v = np.asarray(values, dtype=np.uint64)
    if len(v) == 0:
        return b""
    nbytes = np.ones(len(v), dtype=np.int64)
    for k in range(1, 10):
        nbytes += v >= np.uint64(1 << (7 * k))
    starts = np.cumsum(nbytes) - nbytes
    out = np.empty(int(nbytes.sum()), dtype=np.uint8)
    for k in range(int(nbytes.max())):
        sel = nbytes > k
        byte = (v[sel] >> np.uint64(7 * k)) & np.uint64(0x7F)
        more = (nbytes[sel] > k + 1).astype(np.uint64) << np.uint64(7)
        out[starts[sel] + k] = (byte | more).astype(np.uint8)
    return out.tobytes()


def _zigzag(d: NDArray[np.int64]) -> NDArray[np.uint64]:
    return ((d << 1) ^ (d >> 63)).astype(np.uint64)


def _union(members: NDArray[np.object_]) -> Any:
    """Dissolve polygons: GEOS CoverageUnion (fast) where they tessellate exactly.

    Survey data are seldom a perfect coverage: the few polygons whose edges do not
    match their neighbours' (``coverage_invalid_edges``) are united the slow way,
    with the rest already dissolved.
    """
    try:
        return shapely.coverage_union_all(members)
    except shapely.errors.GEOSException:
        bad = ~shapely.is_empty(shapely.coverage_invalid_edges(members))
        try:
            good = shapely.coverage_union_all(members[~bad])
        except shapely.errors.GEOSException:  # not a coverage at all: the slow way throughout
            return shapely.union_all(members)
        return shapely.union_all(np.concatenate([[good], members[bad]]))


def lod_shells(geoms: NDArray[np.object_], classes: NDArray[np.object_], lod: Lod) -> tuple[
    NDArray[np.object_], NDArray[np.object_]
]:
    """Shells (polygons without holes) of the patches dissolved by class, largest first.

    Painted in this order, opaque, they give the dissolved picture (see the county
    strategy in ``docs/maps.md``). Returns ``(shells, class of each)``.
    """
    shells, keys = [], []
    for key in pd.unique(classes):
        members = geoms[classes == key]
        union = _union(members)
        polys = shapely.get_parts(union)
        polys = polys[shapely.get_type_id(polys) == 3]
        outer = shapely.polygons(shapely.get_exterior_ring(polys))
        outer = outer[shapely.area(outer) >= lod.min_area]
        outer = shapely.simplify(outer, lod.tolerance, preserve_topology=True)
        shells.append(outer)
        keys.append(np.full(len(outer), key, dtype=object))
    if not shells:
        return np.empty(0, dtype=object), np.empty(0, dtype=object)
    all_shells, all_keys = np.concatenate(shells), np.concatenate(keys)
    order = np.argsort(-shapely.area(all_shells), kind="stable")
    return all_shells[order], all_keys[order]


def encode_tiles(
    geoms: NDArray[np.object_],
    class_index: NDArray[np.integer[Any]],
    area_m2: NDArray[np.float64],
    ids: NDArray[np.object_],
) -> dict[str, Any]:
    """Group patches by tile and encode each tile as a compressed base64 block.

    Parameters
    ----------
    geoms : array of (Multi)Polygon, EPSG:4490 degrees
    class_index : array of int
        Index of each patch's display class in the page's class table.
    area_m2 : array of float
        The area shown in the popup (rounded to whole m²).
    ids : array of str
        Patch ids (shown, searchable).

    Returns
    -------
    dict
        ``{"z": TILE_ZOOM, "minZoom": TILE_MIN_ZOOM, "pad": degrees, "ids": [[prefix, digits], …], "tiles":
        {"x/y": base64}}``. ``pad`` is the largest distance (degrees) by which a
        patch reaches beyond the tile holding its centre: the browser loads the
        tiles of the view grown by it, so a patch is drawn wherever any of it shows.

    Notes
    -----
    Block (before zlib), unsigned LEB128 varints (signed values zigzagged):
    ``n_patches, n_polygons, n_rings, n_refs, n_vertices``; polygons per patch;
    rings per polygon (shell first); vertex references per ring (closing point
    dropped); class index per patch; area (m²) per patch; one reference per ring
    point: 0 = the next new vertex, r > 0 = the vertex r places back in the
    tile's vertex table; id-prefix index per patch; zigzag difference of the id
    number to the previous patch's; then ``2·n_vertices`` zigzag deltas ``dx, dy``
    of the new vertices in 1e-5° (the first from 0, 0).
    """
    geoms = np.asarray(geoms, dtype=object)
    n = len(geoms)
    if n == 0:
        return {"z": TILE_ZOOM, "minZoom": TILE_MIN_ZOOM, "pad": 1e-5, "ids": [], "tiles": {}}
    box = shapely.bounds(geoms)
    cx, cy = (box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2
    tiles = tile_of(cx, cy, TILE_ZOOM)
    # tile bounds in degrees, to measure how far patches reach out of their tile
    z2 = 2.0**TILE_ZOOM
    west = tiles[:, 0] / z2 * 360.0 - 180.0
    east = (tiles[:, 0] + 1) / z2 * 360.0 - 180.0
    north = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * tiles[:, 1] / z2))))
    south = np.degrees(np.arctan(np.sinh(math.pi * (1 - 2 * (tiles[:, 1] + 1) / z2))))
    reach = np.maximum.reduce(
        [west - box[:, 0], box[:, 2] - east, south - box[:, 1], box[:, 3] - north, np.zeros(n)]
    )
    key = tiles[:, 0] * (1 << 20) + tiles[:, 1]
    order = np.argsort(key, kind="stable")  # patches of a tile together, in input order
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)

    parts, part_owner = shapely.get_parts(geoms, return_index=True)
    parts_order = np.argsort(rank[part_owner], kind="stable")
    parts, part_owner = parts[parts_order], part_owner[parts_order]
    polygonal = shapely.get_type_id(parts) == 3
    parts, part_owner = parts[polygonal], part_owner[polygonal]
    rings, ring_owner = shapely.get_rings(parts, return_index=True)
    coords, pt_ring = shapely.get_coordinates(rings, return_index=True)
    q = np.rint(coords * _SCALE).astype(np.int64)
    keep = np.ones(len(q), dtype=bool)
    last = np.r_[pt_ring[1:] != pt_ring[:-1], True]
    keep &= ~last  # the closing point (Leaflet closes rings)
    same_prev = np.r_[False, (pt_ring[1:] == pt_ring[:-1]) & (q[1:] == q[:-1]).all(axis=1)]
    keep &= ~same_prev
    pts_per_ring = np.bincount(pt_ring[keep], minlength=len(rings))
    ring_ok = pts_per_ring >= 3
    shell = np.r_[True, ring_owner[1:] != ring_owner[:-1]]
    part_ok = np.zeros(len(parts), dtype=bool)
    part_ok[ring_owner[shell & ring_ok]] = True
    ring_ok &= part_ok[ring_owner]
    keep &= ring_ok[pt_ring]

    # per-entity tile keys (entities are already in tile order)
    part_tile = key[part_owner]
    ring_tile = part_tile[ring_owner]
    pt_tile = ring_tile[pt_ring]
    patch_sorted = order
    patch_tile = key[patch_sorted]
    polys_per_patch = np.bincount(rank[part_owner[part_ok]], minlength=n)
    rings_per_part = np.bincount(ring_owner[ring_ok], minlength=len(parts))
    ok_parts = np.flatnonzero(part_ok)
    ok_rings = np.flatnonzero(ring_ok)
    kept = np.flatnonzero(keep)
    qk, tk = q[keep], pt_tile[keep]

    # Shared vertices once per tile: a vertex is written (as a delta from the previous
    # new vertex) where it first appears; later uses are back-references (distance in
    # the tile's vertex table). In a coverage most vertices are shared by 3-4 patches.
    pos = np.arange(len(qk))
    srt = np.lexsort((pos, qk[:, 0], qk[:, 1], tk))
    grp_start = np.r_[
        True,
        (tk[srt][1:] != tk[srt][:-1]) | (qk[srt][1:] != qk[srt][:-1]).any(axis=1),
    ]
    grp = np.cumsum(grp_start) - 1
    first_pos = pos[srt][grp_start]  # stream position of each vertex's first use
    is_first = np.zeros(len(qk), dtype=bool)
    is_first[first_pos] = True
    new_count = np.cumsum(is_first)  # firsts up to and including each position
    vidx = np.empty(len(qk), dtype=np.int64)
    vidx[srt] = (new_count[first_pos] - 1)[grp]  # table index (global) of each use
    ref = np.where(is_first, 0, (new_count - 1) - vidx + 1)
    ref[is_first] = 0
    fq, ft = qk[is_first], tk[is_first]
    delta = np.diff(fq, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    first_of_tile = np.r_[True, ft[1:] != ft[:-1]]  # each tile's chain starts from (0, 0)
    delta[first_of_tile] = fq[first_of_tile]
    zz = _zigzag(delta.ravel()).reshape(-1, 2)
    del kept

    cls = np.asarray(class_index, dtype=np.int64)[patch_sorted]
    area = np.rint(np.nan_to_num(np.asarray(area_m2, dtype=np.float64), nan=0.0))
    area = np.maximum(area, 0).astype(np.int64)[patch_sorted]
    prefixes, pre_idx, number = _split_ids(np.asarray(ids, dtype=object)[patch_sorted])
    num_delta = np.diff(number, prepend=0)
    first_patch = np.r_[True, patch_tile[1:] != patch_tile[:-1]]
    num_delta[first_patch] = number[first_patch]

    def spans(keys: NDArray[np.int64]) -> dict[int, tuple[int, int]]:
        if len(keys) == 0:
            return {}
        cuts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
        return {int(keys[a]): (int(a), int(b)) for a, b in itertools.pairwise(cuts)}

    s_patch = spans(patch_tile)
    s_part = spans(part_tile[ok_parts])
    s_ring = spans(ring_tile[ok_rings])
    s_pt = spans(tk)
    s_new = spans(ft)
    out: dict[str, str] = {}
    for k, (a, b) in s_patch.items():
        pa, pb = s_part.get(k, (0, 0))
        ra, rb = s_ring.get(k, (0, 0))
        qa, qb = s_pt.get(k, (0, 0))
        va, vb = s_new.get(k, (0, 0))
        head = np.array([b - a, pb - pa, rb - ra, qb - qa, vb - va], dtype=np.int64)
        body = np.concatenate(
            [
                head,
                polys_per_patch[a:b],
                rings_per_part[ok_parts[pa:pb]],
                pts_per_ring[ok_rings[ra:rb]],
                cls[a:b],
                area[a:b],
                ref[qa:qb],
                pre_idx[a:b],
            ]
        )
        raw = varints(body) + varints(_zigzag(num_delta[a:b])) + varints(zz[va:vb].ravel())
        blob = zlib.compress(raw, 9)
        out[f"{k >> 20}/{k & ((1 << 20) - 1)}"] = base64.b64encode(blob).decode("ascii")
    return {
        "z": TILE_ZOOM,
        "minZoom": TILE_MIN_ZOOM,
        "pad": round(float(reach.max(initial=0.0)) + 1e-5, 6),
        "ids": prefixes,
        "tiles": out,
    }


def _split_ids(ids: NDArray[np.object_]) -> tuple[list[list[Any]], NDArray[np.int64], NDArray[np.int64]]:
    """Ids as (prefix, number): ``'4418020000001'`` is ``('', 13 digits) + 4418020000001``.

    Survey ids are a few prefixes and running numbers, so a tile stores a prefix
    index and the difference to the previous number (mostly 1). Returns the prefix
    table ``[[prefix, digits], …]`` (digits 0: the id is the prefix alone), and per
    id its prefix index and number. The trailing number has at most 15 digits, so
    it is exact in a JavaScript double.
    """
    text = pd.Series(ids, dtype=object).astype(str)
    parts = text.str.extract(r"^(.*?)(\d{1,15})$")
    digits = parts[1].fillna("")
    prefix = parts[0].where(parts[1].notna(), text)
    width = digits.str.len().astype(np.int64)
    number = pd.to_numeric(digits.where(width > 0, "0")).astype(np.int64).to_numpy()
    code, uniques = pd.factorize(prefix + "\t" + width.astype(str))
    table = [[u.rsplit("\t", 1)[0], int(u.rsplit("\t", 1)[1])] for u in uniques]
    return table, np.asarray(code, dtype=np.int64), np.asarray(number, dtype=np.int64)
