"""The geometry sections of a VCT file (Point, Line, Polygon), read into shapely geometries.

The bodies are described in :mod:`landquota.intake.vct` (GB/T 17798-2007). Every
line object is kept, because a polygon of the chosen layer may reference any of
them: their coordinates go to a temporary file (:class:`_CoordStore`) and come back by
id with ``pread``; polygons made of lines are chained into rings
(:func:`_chain_rings`) whose holes follow from containment (:func:`_polygon`). The
chosen layer's geometries wait as WKB on disk (:class:`_GeomStore`) until the
attribute rows they belong to are read (:mod:`landquota.intake.vct_reader`).
"""

from __future__ import annotations

import io
import itertools
import os
from array import array
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import shapely
from numpy.typing import NDArray

from landquota.intake.vct import VctError, VctHeader, _int, _Lines

__all__: list[str] = []


# ----------------------------------------------------------------------------------------
# temporary stores
# ----------------------------------------------------------------------------------------
class _Spill:
    """Records written back to back to a temporary file, found again by object id.

    In memory only each record's object id, byte offset and size (24 bytes a
    record); :meth:`_index` sorts the ids once their section is read, so a lookup
    is a binary search and one ``pread``.
    """

    def __init__(self, tmpdir: str, name: str) -> None:
        self.f = open(os.path.join(tmpdir, name), "w+b")  # noqa: SIM115 - closed by close()
        self.ids = array("q")
        self.off = array("q")
        self.size = array("q")
        self.pos = 0  # bytes written or buffered
        self.sealed = False
        self.sorted_ids: NDArray[np.int64] = np.empty(0, dtype=np.int64)
        self.order: NDArray[np.int64] = np.empty(0, dtype=np.int64)

    def _record(self, oid: int, size: int) -> None:
        self.ids.append(oid)
        self.off.append(self.pos)
        self.size.append(size)
        self.pos += size

    def _flush(self) -> None:
        """Write out what the subclass buffers."""

    def _index(self) -> NDArray[np.int64]:
        """Write everything out and sort the ids; return them in file order."""
        self._flush()
        self.f.flush()
        ids = np.frombuffer(self.ids, dtype=np.int64)
        self.order = np.argsort(ids, kind="stable")
        self.sorted_ids = ids[self.order]
        self.sealed = True
        return ids

    def _read(self, k: int) -> bytes:
        """Return the bytes of the *k*-th record written."""
        return os.pread(self.f.fileno(), self.size[k], self.off[k])

    def close(self) -> None:
        self.f.close()


class _CoordStore(_Spill):
    """Line coordinates on disk (little-endian float64 x, y pairs), by line id."""

    def __init__(self, tmpdir: str) -> None:
        super().__init__(tmpdir, "lines.bin")
        self._buf = io.BytesIO()

    def add(self, oid: int, xy: NDArray[np.float64]) -> None:
        raw = np.ascontiguousarray(xy, dtype="<f8").tobytes()
        self._record(oid, len(raw))
        self._buf.write(raw)
        if self._buf.tell() > 1 << 22:
            self._flush()

    def _flush(self) -> None:
        self.f.write(self._buf.getvalue())
        self._buf = io.BytesIO()

    def seal(self) -> None:
        if not self.sealed:
            self._index()

    def at(self, k: int) -> NDArray[np.float64]:
        """Return the coordinates of the *k*-th line written (also before :meth:`seal`)."""
        if not self.sealed:
            self._flush()
            self.f.flush()
        return np.frombuffer(self._read(k), dtype="<f8").reshape(-1, 2)

    def get(self, oid: int) -> NDArray[np.float64] | None:
        i = int(np.searchsorted(self.sorted_ids, oid))
        if i >= len(self.sorted_ids) or self.sorted_ids[i] != oid:
            return None
        return self.at(int(self.order[i]))


#: geometries turned into WKB and written out together (bounds the pending shapely objects)
_WKB_CHUNK = 5_000


class _GeomStore(_Spill):
    """The chosen layer's geometries as WKB on disk, keyed by object id."""

    def __init__(self, tmpdir: str) -> None:
        super().__init__(tmpdir, "geoms.bin")
        self._pending_ids: list[int] = []
        self._pending: list[Any] = []
        self.used: NDArray[np.bool_] = np.empty(0, dtype=bool)

    def add(self, oid: int, geom: Any) -> None:
        self._pending_ids.append(oid)
        self._pending.append(geom)
        if len(self._pending) >= _WKB_CHUNK:
            self._flush()

    def _flush(self) -> None:
        if not self._pending:
            return
        wkbs = shapely.to_wkb(np.array(self._pending, dtype=object))
        buf = io.BytesIO()
        for oid, w in zip(self._pending_ids, wkbs, strict=True):
            self._record(oid, len(w))
            buf.write(w)
        self.f.write(buf.getvalue())
        self._pending_ids, self._pending = [], []

    def seal(self, path: str, section: str) -> None:
        ids = self._index()
        dup = np.flatnonzero(np.diff(self.sorted_ids) == 0)
        if len(dup):
            raise VctError(f"{path!r}: object id {int(self.sorted_ids[dup[0]])} appears twice in the "
                           f"{section} section; object ids (标识码) must be unique")
        self.used = np.zeros(len(ids), dtype=bool)

    def take(self, oids: NDArray[np.int64]) -> list[Any]:
        """Geometries for the ids (None where there is none), marking them used."""
        out: list[Any] = [None] * len(oids)
        if not len(self.sorted_ids):
            return out
        pos = np.searchsorted(self.sorted_ids, oids)
        pos[pos >= len(self.sorted_ids)] = 0
        hit = self.sorted_ids[pos] == oids
        wkbs: list[bytes] = []
        where: list[int] = []
        for j in np.flatnonzero(hit):
            self.used[pos[j]] = True
            wkbs.append(self._read(int(self.order[pos[j]])))
            where.append(int(j))
        if wkbs:
            geoms = shapely.from_wkb(np.array(wkbs, dtype=object))
            for at, g in zip(where, geoms, strict=True):
                out[at] = g
        return out

    def unused(self) -> Iterator[tuple[int, Any]]:
        """(id, geometry) of the features no attribute row asked for, in file order."""
        ids = np.frombuffer(self.ids, dtype=np.int64)
        used_file_order = np.zeros(len(ids), dtype=bool)
        used_file_order[self.order] = self.used
        for k in np.flatnonzero(~used_file_order):
            yield int(ids[k]), shapely.from_wkb(self._read(int(k)))


# ----------------------------------------------------------------------------------------
# geometry parsing
# ----------------------------------------------------------------------------------------
class _Geo:
    def __init__(self, lines: _Lines, header: VctHeader) -> None:
        self.lines = lines
        self.sep = header.separator
        self.ox, self.oy = header.offset
        self.swap = header.swap_xy

    def xy(self, no: int, text: str) -> tuple[float, float]:
        parts = text.split(self.sep)
        try:
            a, b = float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            raise self.lines.error(f"expected a coordinate x{self.sep}y, found {text[:60]!r}", no) from None
        if self.swap:
            a, b = b, a
        return a + self.ox, b + self.oy

    def points(self, n: int, what: str) -> NDArray[np.float64]:
        if n <= 0:
            raise self.lines.error(f"{what}: a point count must be positive, found {n}")
        rows = [self.lines.next(what) for _ in range(n)]
        try:
            arr = np.array([r[1].split(self.sep)[:2] for r in rows], dtype=np.float64)
        except ValueError:
            for no, text in rows:
                self.xy(no, text)  # raises with the line number of the bad coordinate
            raise
        if arr.ndim != 2 or arr.shape[1] != 2:
            for no, text in rows:
                self.xy(no, text)
        if self.swap:
            arr = arr[:, ::-1].copy()
        if self.ox or self.oy:
            arr = arr + np.array([self.ox, self.oy])
        return arr

    def count(self, what: str) -> int:
        no, text = self.lines.next(what)
        return _int(self.lines, no, text, what)

    def segments(self, oid: int) -> list[NDArray[np.float64]]:
        """Direct line body (after the feature type): segments, each a polyline."""
        n = self.count(f"the number of segments of line {oid}")
        parts: list[NDArray[np.float64]] = []
        for _ in range(n):
            no, text = self.lines.next(f"a segment type of line {oid}")
            t = _int(self.lines, no, text, f"a segment type of line {oid}")
            if t not in (1, 11):
                raise self.lines.error(
                    f"line {oid}: segment type {t} (arcs, splines) is not supported; only polylines "
                    "(11) are read. Convert curves to polylines in the producing software", no)
            parts.append(self.points(self.count(f"the point count of line {oid}"), f"line {oid}"))
        return parts

    def refs(self, oid: int) -> list[int]:
        """Read a reference list: its count, then ids over one or more lines (0 = ring break)."""
        n = self.count(f"the number of references of object {oid}")
        out: list[int] = []
        nonzero = 0
        while len(out) < n and nonzero < n:
            no, text = self.lines.next(f"the references of object {oid}")
            for tok in text.split(self.sep):
                tok = tok.strip()
                if not tok:
                    continue
                v = _int(self.lines, no, tok, f"a referenced object id of object {oid}")
                out.append(v)
                nonzero += v != 0
        return out

    def end(self, oid: int) -> None:
        no, text = self.lines.next(f"the end of object {oid} ('0')")
        if text != "0":
            raise self.lines.error(f"object {oid} should end here with a line '0'; found {text[:60]!r}", no)


def _same(a: NDArray[np.float64], b: NDArray[np.float64]) -> bool:
    """Whether two points are the same (exactly: both come from the same text)."""
    return bool(a[0] == b[0] and a[1] == b[1])


def _join(parts: Sequence[NDArray[np.float64]]) -> NDArray[np.float64]:
    if len(parts) == 1:
        return parts[0]
    out = [parts[0]]
    for p in parts[1:]:
        out.append(p[1:] if len(p) and _same(out[-1][-1], p[0]) else p)
    return np.concatenate(out)


def _chain_rings(lines: _Lines, oid: int, refs: Sequence[int], store: _CoordStore) -> list[NDArray[np.float64]]:
    """Chain line references into closed rings (negative = reversed, 0 = ring break)."""
    rings: list[NDArray[np.float64]] = []
    cur: list[NDArray[np.float64]] = []
    start: tuple[float, float] = (0.0, 0.0)
    end: tuple[float, float] = (0.0, 0.0)

    def close() -> None:
        if not cur:
            return
        ring = _join(cur)
        if len(ring) < 4 or not _same(ring[0], ring[-1]):
            raise lines.error(f"polygon {oid}: its lines {list(refs)} do not close a ring "
                              f"(the chain ends at {tuple(ring[-1])}, not at its start {tuple(ring[0])})")
        rings.append(ring)
        cur.clear()

    for r in refs:
        if r == 0:
            close()
            continue
        c = store.get(abs(r))
        if c is None:
            raise lines.error(f"polygon {oid} references line {abs(r)}, which is not in the Line section "
                              "before it")
        if r < 0:
            c = c[::-1]
        a = (float(c[0, 0]), float(c[0, 1]))
        b = (float(c[-1, 0]), float(c[-1, 1]))
        if cur and end != a:
            if end == b:  # a line whose sign does not say it runs backwards
                c, a, b = c[::-1], b, a
            elif len(cur) == 1 and start in (a, b):  # the first line was the one backwards
                cur[0] = cur[0][::-1]
                start, end = end, start
                if end != a:
                    c, a, b = c[::-1], b, a
            else:
                raise lines.error(f"polygon {oid}: line {r} does not continue the ring (it runs from "
                                  f"{a} to {b}, the ring is at {end})")
        if not cur:
            start = a
        cur.append(c)
        end = b
        if start == end and sum(len(x) for x in cur) >= 4:
            close()
    close()
    return rings


def _polygon(rings: Sequence[NDArray[np.float64]]) -> Any:
    """Build a (Multi)Polygon from rings; which are holes follows from containment."""
    if len(rings) == 1:
        return shapely.Polygon(rings[0])
    polys = [shapely.Polygon(r) for r in rings]
    order = sorted(range(len(rings)), key=lambda i: -polys[i].area)
    shells: list[int] = []
    holes: dict[int, list[int]] = {}
    placed: list[int] = []
    for i in order:
        pt = polys[i].representative_point() if polys[i].area > 0 else shapely.Point(rings[i][0])
        inside = [j for j in placed if polys[j].contains(pt)]
        placed.append(i)
        if len(inside) % 2 == 0:
            shells.append(i)
            holes[i] = []
        else:
            # innermost container (smallest area among those containing it) is its shell
            holes[min(inside, key=lambda j: polys[j].area)].append(i)
    parts = [shapely.Polygon(rings[s], [rings[h] for h in holes[s]]) for s in shells]
    return parts[0] if len(parts) == 1 else shapely.MultiPolygon(parts)


def _read_objects(lines: _Lines, geo: _Geo, kind: str, want: set[str], coords: _CoordStore,
                  geoms: _GeomStore) -> None:
    end = kind + "End"
    while True:
        no, text = lines.next(end)
        if text == end:
            return
        oid = _int(lines, no, text, f"an object id (标识码) in the {kind} section")
        _cno, code = lines.next(f"the feature code of object {oid}")
        # the style code (图形表现编码) may be an empty line: read it as a physical line
        lines.physical(f"the style code of object {oid}")
        tno, ttext = lines.next(f"the feature type of object {oid}")
        ftype = _int(lines, tno, ttext, f"the feature type of object {oid}")
        if kind == "Point":
            g = _point_body(lines, geo, oid, ftype)
            if code in want:
                geoms.add(oid, g)
        elif kind == "Line":
            if 1 <= ftype <= 6:
                parts = geo.segments(oid)
            elif ftype == 100:
                refs = geo.refs(oid)
                parts = _line_refs(lines, oid, refs, coords)
            else:
                raise lines.error(f"line {oid}: feature type {ftype}; 1-6 (direct) or 100 (made of "
                                  "other lines) expected", tno)
            joined = _join(parts)
            coords.add(oid, joined)  # polygons may reference a line made of lines too
            if code in want:
                if all(_same(a[-1], b[0]) for a, b in itertools.pairwise(parts)):
                    geoms.add(oid, shapely.LineString(joined))
                else:
                    geoms.add(oid, shapely.MultiLineString(parts))
        else:
            g = _polygon_body(lines, geo, oid, ftype, tno, coords, code in want)
            if code in want:
                geoms.add(oid, g)
        geo.end(oid)


def _line_refs(lines: _Lines, oid: int, refs: Sequence[int], coords: _CoordStore) -> list[NDArray[np.float64]]:
    # A line made of lines references earlier lines; the index is searched unsorted here
    # (rare in survey files), by a linear scan of the ids seen so far.
    ids = np.frombuffer(coords.ids, dtype=np.int64)
    parts: list[NDArray[np.float64]] = []
    for r in refs:
        if r == 0:
            continue
        hit = np.flatnonzero(ids == abs(r))
        if not len(hit):
            raise lines.error(f"line {oid} references line {abs(r)}, which is not defined before it")
        c = coords.at(int(hit[0]))
        parts.append(c[::-1] if r < 0 else c)
    return parts


def _point_body(lines: _Lines, geo: _Geo, oid: int, ftype: int) -> Any:
    no, text = lines.next(f"the coordinates of point {oid}")
    if geo.sep not in text:  # a point group: a count, then the points
        n = _int(lines, no, text, f"the point count of point group {oid}")
        xy = geo.points(n, f"point group {oid}")
        return shapely.Point(xy[0]) if n == 1 else shapely.MultiPoint(xy)
    x, y = geo.xy(no, text)
    nxt = lines.peek()
    if nxt is not None and nxt[1] != "0" and geo.sep in nxt[1]:
        lines.next()  # a directed point's second coordinate gives its direction: not kept
    return shapely.Point(x, y)


def _polygon_body(lines: _Lines, geo: _Geo, oid: int, ftype: int, tno: int, coords: _CoordStore,
                  wanted: bool) -> Any:
    lno, ltext = lines.next(f"the label point of polygon {oid}")
    geo.xy(lno, ltext)
    if ftype == 1:
        n = geo.count(f"the number of rings of polygon {oid}")
        rings: list[NDArray[np.float64]] = []
        for _ in range(n):
            rno, rtext = lines.next(f"a ring type of polygon {oid}")
            t = _int(lines, rno, rtext, f"a ring type of polygon {oid}")
            if t not in (1, 11):
                raise lines.error(f"polygon {oid}: ring type {t} (circle, ellipse) is not supported; only "
                                  "rings of straight segments (11) are read", rno)
            ring = geo.points(geo.count(f"the point count of a ring of polygon {oid}"), f"polygon {oid}")
            if not _same(ring[0], ring[-1]):
                ring = np.vstack([ring, ring[:1]])
            rings.append(ring)
        return _polygon(rings) if wanted else None
    if ftype == 100:
        mno, mtext = lines.next(f"the make-up type of polygon {oid}")
        make = _int(lines, mno, mtext, f"the make-up type of polygon {oid} (21 = of lines)")
        if make != 21:
            raise lines.error(f"polygon {oid}: make-up type {make}; only polygons made of lines (21) are "
                              "read (22, of other polygons, is not supported)", mno)
        refs = geo.refs(oid)
        if not wanted:
            return None
        return _polygon(_chain_rings(lines, oid, refs, coords))
    raise lines.error(f"polygon {oid}: feature type {ftype}; 1 (direct coordinates) or 100 (made of lines) "
                      "expected", tno)
