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
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["plain_multipolygons"]

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


def _u32(data: NDArray[np.uint8], pos: NDArray[np.int64]) -> NDArray[np.int64]:
    """Little-endian uint32 at each byte position in *pos* (unaligned reads)."""
    out: NDArray[np.int64] = data[pos[:, None] + _FOUR].view("<u4")[:, 0].astype(np.int64)
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
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(wkb, pa.ChunkedArray):
        wkb = wkb.combine_chunks()
    n = len(wkb)
    ok = np.zeros(n, dtype=bool)
    if n == 0:
        return ok
    wide = pa.types.is_large_binary(wkb.type)
    _validity, offsets, data = wkb.buffers()
    off: NDArray[np.int64] = np.frombuffer(offsets, dtype=np.int64 if wide else np.int32)[
        wkb.offset : wkb.offset + n + 1].astype(np.int64)
    raw: NDArray[np.uint8] = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, dtype=np.uint8)
    start, end = off[:-1], off[1:]
    present = np.ones(n, dtype=bool) if wkb.null_count == 0 else ~np.asarray(wkb.is_null())
    # Most patches are one polygon with one ring: 18 bytes of headers that are the same
    # for all of them, then the ring's number of points, which must account for the rest.
    # Arrow's prefix test and four byte gathers do these in a few ms per 50,000 rows.
    fast = np.asarray(pc.starts_with(wkb, pattern=_SIMPLE_HEAD).fill_null(False)) & (end - start >= 22)
    q = np.where(fast, start + 18, 0)
    points = (raw[q].astype(np.int64) | (raw[q + 1].astype(np.int64) << 8)
              | (raw[q + 2].astype(np.int64) << 16) | (raw[q + 3].astype(np.int64) << 24)) if len(raw) >= 4 else q
    ok[fast & (points > 0) & (start + 22 + 16 * points == end)] = True
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
