"""What a batch's WKB is, read from its Arrow buffers without decoding a geometry.

An import must know, before it stores a batch as read, that every geometry is a
present, non-empty 2D MultiPolygon (the contract's type; R2's areas are measured on
it). Asking GEOS (``get_type_id``, ``is_empty``, ``has_z``, ``has_m``) walks the
decoded geometries four times: about 0.4 s of CPU per 10^6 patches, on the read-ahead
thread that is the import's critical path (issue 18). The answer is also written in
the WKB itself: each part's header (byte order, ISO type code) and its counts. This
module walks those headers for all rows at once with numpy.

The walk is only ever used to *confirm*: a row it cannot vouch for (big-endian WKB,
EWKB, a Z or M part, a count that runs past the row's end, very many parts) makes
:func:`plain_multipolygons` answer False for it, and the caller asks GEOS as before.
So the result of an import never depends on the walk, only its speed does.

:func:`convex_rings` goes one step further for the commonest patch of all, one polygon
of one ring: it reads the ring's coordinates from the same buffers and vouches for its
validity when the ring is strictly convex and winds once, a test of a few numpy passes
over the points (exact, with Shewchuk's error bound on each orientation) that saves
GEOS's ``is_valid`` (about 1.7 s of CPU per 10^6 patches on the read-ahead thread). A
ring it cannot decide, or that is not convex, goes to GEOS as before.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

__all__ = ["bounds", "convex_rings", "plain_multipolygons"]

#: Header steps (polygons plus rings) walked before giving up on a batch: a patch with
#: hundreds of holes is rare; beyond this the caller's GEOS tests are as quick.
MAX_STEPS = 4096

_LE = 1  # WKB byte order: little-endian (NDR)
_MULTIPOLYGON = 6  # ISO WKB type codes, 2D: Z adds 1000, M 2000, ZM 3000
_POLYGON = 3
_FOUR = np.arange(4)
#: the headers of a one-polygon, one-ring 2D MultiPolygon, little-endian: byte order, type 6,
#: one part; byte order, type 3, one ring (the ring's number of points follows)
_SIMPLE_HEAD = b"\x01\x06\x00\x00\x00\x01\x00\x00\x00\x01\x03\x00\x00\x00\x01\x00\x00\x00"


#: Longest ring :func:`convex_rings` reads: rings are grouped by length, and a patch of
#: more points than this is rarely convex (GEOS decides those).
CONVEX_POINTS = 64
#: Shewchuk's bound on the rounding error of a 2D orientation determinant computed in
#: double precision, relative to |detleft| + |detright| ("Adaptive Precision
#: Floating-Point Arithmetic and Fast Robust Geometric Predicates", 1997: ccwerrboundA =
#: (3 + 16e)e, e = 2^-53), taken three times over: a determinant larger than this has
#: the sign exact arithmetic would give it.
_ORIENT_BOUND = 3.0 * (3.0 + 16.0 * 2.0**-53) * 2.0**-53
#: added to the bound: products that underflowed lost at most 2^-1074 each, far below
#: this (no real coordinates come near it)
_TINY = 1e-290


def _u32(data: NDArray[np.uint8], pos: NDArray[np.int64]) -> NDArray[np.int64]:
    """Little-endian uint32 at each byte position in *pos* (unaligned reads)."""
    out: NDArray[np.int64] = data[pos[:, None] + _FOUR].view("<u4")[:, 0].astype(np.int64)
    return out


class _Buffers(NamedTuple):
    """A binary Arrow array's rows as numpy views of its buffers (no copy)."""

    wkb: Any  # the pyarrow array, in one chunk
    raw: NDArray[np.uint8]  # its data buffer
    start: NDArray[np.int64]  # each row's first byte in raw
    end: NDArray[np.int64]  # ... and one past its last


def _buffers(wkb: Any) -> _Buffers:
    import pyarrow as pa

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    n = len(wkb)
    if n == 0:
        none = np.zeros(0, dtype=np.int64)
        return _Buffers(wkb, np.empty(0, dtype=np.uint8), none, none)
    wide = pa.types.is_large_binary(wkb.type)
    _validity, offsets, data = wkb.buffers()
    off: NDArray[np.int64] = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)[
        wkb.offset : wkb.offset + n + 1].astype(np.int64)
    raw: NDArray[np.uint8] = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    return _Buffers(wkb, raw, off[:-1], off[1:])


def _lone_rings(b: _Buffers) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Return the rows that are one polygon of one ring, and their ring's number of points.

    Most patches are: 18 bytes of headers that are the same for all of them, then the
    ring's number of points, which must account for the rest of the row exactly.
    Arrow's prefix test and four byte gathers do these in a few ms per 50,000 rows.
    """
    import pyarrow.compute as pc

    if not len(b.start):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    head = np.asarray(pc.starts_with(b.wkb, pattern=_SIMPLE_HEAD).fill_null(False)) & (b.end - b.start >= 22)
    sel = np.flatnonzero(head)
    pts = _u32(b.raw, b.start[sel] + 18)
    fits = (pts > 0) & (b.start[sel] + 22 + 16 * pts == b.end[sel])
    return sel[fits], pts[fits]


def _ring_coords(b: _Buffers, sel: NDArray[np.int64], pts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Return the coordinates of the lone rings *sel* back to back: x0, y0, x1, y1, ...

    Each row's are 16 bytes a point, so once Arrow has cut the 22 header bytes off
    (one C++ pass) they line up as float64 in the new buffer.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not len(sel):
        return np.zeros(0, dtype=np.float64)
    keep = np.zeros(len(b.start), dtype=bool)
    keep[sel] = True
    coords = pc.binary_slice(b.wkb.filter(pa.array(keep)), 22, 1 << 30)
    out: NDArray[np.float64] = np.frombuffer(coords.buffers()[2], dtype="<f8", count=int(2 * pts.sum()))
    return out


def plain_multipolygons(wkb: Any) -> NDArray[np.bool_] | None:
    """Say, per row, whether the WKB is a well-formed, non-empty, 2D ISO MultiPolygon.

    *wkb* is an Arrow binary or large_binary array. True means: little-endian
    throughout, type 6 with polygon parts of type 3 (so no Z or M anywhere), the
    counts account for exactly the row's bytes, and some part has a shell with
    points (GEOS's "not empty"). Coordinates are not read: GEOS may still refuse
    to decode such a row (an unclosed ring, too few points), which the caller
    tests on the decoded array. False means the walk cannot tell, not that the
    geometry is bad. None: the batch has too many parts or rings to walk cheaply.
    """
    b = _buffers(wkb)
    wkb, raw, start, end = b
    n = len(start)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return ok
    present = np.ones(n, dtype=bool) if wkb.null_count == 0 else ~np.asarray(wkb.is_null())
    ok[_lone_rings(b)[0]] = True
    # the outer header of the others: byte order, type, number of parts (9 bytes)
    rest = present & ~ok & (end - start >= 9)
    idx = np.flatnonzero(rest)
    good = (raw[start[idx]] == _LE) & (_u32(raw, start[idx] + 1) == _MULTIPOLYGON)
    idx = idx[good]
    polys_left = _u32(raw, start[idx] + 5)
    pos = start[idx] + 9
    stop = end[idx]
    rings_left = np.zeros(len(idx), dtype=np.int64)
    shell = np.zeros(len(idx), dtype=bool)  # the next ring read is a polygon's shell
    nonempty = np.zeros(len(idx), dtype=bool)
    alive = np.ones(len(idx), dtype=bool)
    steps = 0
    while True:
        # rows with nothing left to read are done: their bytes must end exactly here
        done = alive & (polys_left == 0) & (rings_left == 0)
        if done.any():
            ok[idx[done]] = (pos[done] == stop[done]) & nonempty[done]
            alive &= ~done
        act = np.flatnonzero(alive)
        if not len(act):
            return ok
        steps += 1
        if steps > MAX_STEPS:
            return None
        # one step per row and pass: a polygon's header (9 bytes) or a ring (count, points)
        head = act[rings_left[act] == 0]
        ring = act[rings_left[act] > 0]
        if len(head):
            fits = pos[head] + 9 <= stop[head]
            alive[head[~fits]] = False
            head = head[fits]
            p = pos[head]
            fine = (raw[p] == _LE) & (_u32(raw, p + 1) == _POLYGON)
            alive[head[~fine]] = False
            head = head[fine]
            rings_left[head] = _u32(raw, pos[head] + 5)
            polys_left[head] -= 1
            shell[head] = True
            pos[head] += 9
        if len(ring):
            fits = pos[ring] + 4 <= stop[ring]
            alive[ring[~fits]] = False
            ring = ring[fits]
            npts = _u32(raw, pos[ring])
            nonempty[ring] |= shell[ring] & (npts > 0)
            shell[ring] = False
            pos[ring] += 4 + 16 * npts
            rings_left[ring] -= 1
            over = pos[ring] > stop[ring]
            alive[ring[over]] = False


def convex_rings(wkb: Any) -> NDArray[np.bool_]:
    """Say, per row, whether the WKB is a one-polygon, one-ring MultiPolygon GEOS finds valid.

    True only when the walk can prove it: little-endian 2D headers as in
    :func:`plain_multipolygons`, a ring of 4 to :data:`CONVEX_POINTS` points whose
    last equals its first, finite coordinates, and a *strictly convex* ring that winds
    once: every vertex turns the same way, each turn's sign certain under
    :data:`_ORIENT_BOUND`, and the edges' x-direction changes sign exactly twice
    around the ring (turns all one way with a total turning of 2*pi*k give 2k
    changes; k = 1 is a simple convex polygon, k = 2 a pentagram). Such a ring has no
    self-intersection, repeated point or spike, which is all GEOS's validity asks of
    a lone shell. False means "ask GEOS": collinear or repeated vertices, a concave
    vertex, holes, more than one part, or anything the walk does not read.
    """
    b = _buffers(wkb)
    ok = np.zeros(len(b.start), dtype=bool)
    sel, pts = _lone_rings(b)
    fits = (pts >= 4) & (pts <= CONVEX_POINTS)
    sel, pts = sel[fits], pts[fits]
    if not len(sel):
        return ok
    flat = _ring_coords(b, sel, pts)
    first = 2 * (np.cumsum(pts) - pts)  # each row's first double
    # rings of one length at a time, as (rows, points) arrays: small enough to stay in
    # the CPU's cache through the dozen passes below (one pass over all the rings' points
    # at once measured 0.8 s per 10^6 patches against 0.55 s)
    for k in np.unique(pts).tolist():
        rows = np.flatnonzero(pts == k)
        at = first[rows][:, None] + np.arange(0, 2 * k, 2)
        ok[sel[rows]] = _convex(flat[at], flat[at + 1])
    return ok


def bounds(wkb: Any) -> NDArray[np.float64]:
    """Return each row's (minx, miny, maxx, maxy), as ``shapely.bounds`` gives it, read from the WKB.

    For a writer that stores a batch's WKB without its geometries having been
    decoded (a GeoPackage's R-tree and blob headers need the envelopes): a
    one-polygon, one-ring row is read straight from its coordinates; any other row
    is decoded by GEOS. A null row has NaN bounds, as shapely gives a missing one.
    """
    import pyarrow as pa
    import shapely

    b = _buffers(wkb)
    n = len(b.start)
    out = np.full((n, 4), np.nan)
    sel, pts = _lone_rings(b)
    if len(sel):
        xy = _ring_coords(b, sel, pts).reshape(-1, 2)
        first = np.cumsum(pts) - pts
        # fmin and fmax skip a NaN coordinate as GEOS's envelope does
        lo, hi = np.fmin.reduceat(xy, first, axis=0), np.fmax.reduceat(xy, first, axis=0)
        out[sel] = np.c_[lo, hi]
    others = np.ones(n, dtype=bool)
    others[sel] = False
    if b.wkb.null_count:
        others &= ~np.asarray(b.wkb.is_null())
    if others.any():
        rest = b.wkb.filter(pa.array(others)).to_numpy(zero_copy_only=False)
        out[others] = shapely.bounds(shapely.from_wkb(np.asarray(rest, dtype=object), on_invalid="ignore"))
    return out


def _convex(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.bool_]:
    """For rings of one length k, x and y as (rows, k) with the closing point: see :func:`convex_rings`."""
    closed = (x[:, 0] == x[:, -1]) & (y[:, 0] == y[:, -1])
    with np.errstate(invalid="ignore", over="ignore"):
        # the turn at each vertex v_i (prev a, next c): v_1 .. v_m-1 along the row, v_0 apart
        det, sure = _orient(x[:, :-2], y[:, :-2], x[:, 1:-1], y[:, 1:-1], x[:, 2:], y[:, 2:])
        det0, sure0 = _orient(x[:, -2], y[:, -2], x[:, 0], y[:, 0], x[:, 1], y[:, 1])
    one_way = sure.all(axis=1) & sure0 & (
        ((det > 0).all(axis=1) & (det0 > 0)) | ((det < 0).all(axis=1) & (det0 < 0)))
    # edge i runs from v_i to v_i+1; the sign of a difference of doubles is exact
    sx = np.sign(np.diff(x, axis=1))
    changes = (sx[:, :-1] * sx[:, 1:] < 0).sum(axis=1) + (sx[:, -1] * sx[:, 0] < 0)
    zero = sx == 0
    if zero.any():
        # in a strictly convex ring no two edges in a row are vertical: a vertical edge
        # stands alone and is a change when the edges either side of it differ
        ring = np.concatenate([sx[:, -1:], sx, sx[:, :1]], axis=1)
        changes = changes + (zero & (ring[:, :-2] * ring[:, 2:] < 0)).sum(axis=1)
    out: NDArray[np.bool_] = closed & one_way & (changes == 2)
    return out


def _orient(ax: Any, ay: Any, bx: Any, by: Any, cx: Any, cy: Any) -> tuple[Any, Any]:
    """Orientation determinants of the triangles (a, b, c), and whether each sign is certain.

    Shewchuk's filter: the rounded determinant has the exact sign when it exceeds
    :data:`_ORIENT_BOUND` times |detleft| + |detright|; the absolute :data:`_TINY`
    covers products that underflowed. NaN and infinities fail the comparison.
    """
    left = (ax - cx) * (by - cy)
    right = (ay - cy) * (bx - cx)
    det = left - right
    return det, np.abs(det) > (np.abs(left) + np.abs(right)) * _ORIENT_BOUND + _TINY
