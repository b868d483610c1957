"""The WKB header walk (landquota._wkb): it only ever vouches for what GEOS would say.

An import stores a batch as read when every geometry is a present, non-empty 2D
MultiPolygon (the contract's type). ``plain_multipolygons`` reads that from the WKB's
headers instead of asking GEOS four times per row (issue 18); these tests hold it to
GEOS's answers, on hand-made cases and on corrupted bytes.
"""

from __future__ import annotations

import warnings

import numpy as np
import pyarrow as pa
import pytest
import shapely

from landquota import _wkb as walk
from landquota._wkb import convex_rings, plain_multipolygons


def _arr(values: list[bytes | None], large: bool = False) -> pa.Array:
    return pa.array(values, type=pa.large_binary() if large else pa.binary())


def _geos_says(w: bytes | None) -> bool:
    """What the importer asked GEOS before: present, type 6, not empty, no Z, no M."""
    g = shapely.from_wkb(w, on_invalid="ignore") if w is not None else None
    return bool(
        g is not None and shapely.get_type_id(g) == 6 and not shapely.is_empty(g)
        and not shapely.has_z(g) and not shapely.has_m(g)
    )


SQUARE = shapely.box(0, 0, 1, 1)
HOLED = shapely.box(0, 0, 10, 10).difference(shapely.box(1, 1, 2, 2)).difference(shapely.box(3, 3, 4, 4))
CASES = {
    # name: (geometry as WKT or shapely, what the walk must answer)
    "one square": (shapely.MultiPolygon([SQUARE]), True),
    "two parts, one with two holes": (shapely.MultiPolygon([HOLED, shapely.box(20, 20, 21, 21)]), True),
    "a Polygon, not a MultiPolygon": (SQUARE, False),
    "a 3D MultiPolygon": (shapely.MultiPolygon([shapely.Polygon([(0, 0, 1), (1, 0, 1), (1, 1, 1), (0, 0, 1)])]), False),
    "MULTIPOLYGON EMPTY": (shapely.from_wkt("MULTIPOLYGON EMPTY"), False),
    # GEOS: not empty, as one part has a shell with points
    "an empty part beside a real one": (shapely.from_wkt("MULTIPOLYGON (EMPTY, ((0 0, 1 0, 1 1, 0 0)))"), True),
}


@pytest.mark.parametrize("name", list(CASES))
def test_hand_cases_match_geos(name: str) -> None:
    geom, expected = CASES[name]
    w = shapely.to_wkb(geom, flavor="iso", byte_order=1)
    got = plain_multipolygons(_arr([w]))
    assert got is not None and bool(got[0]) is expected == _geos_says(w)


def test_what_the_walk_leaves_to_geos() -> None:
    mp = shapely.MultiPolygon([SQUARE])
    w = shapely.to_wkb(mp, flavor="iso", byte_order=1)
    rows = [
        w,
        w[:-1],  # one byte short
        w + b"\x00",  # one byte too many
        None,  # no geometry
        shapely.to_wkb(mp, byte_order=0),  # big-endian: GEOS reads it, the walk does not vouch
        shapely.to_wkb(shapely.set_srid(mp, 4490), include_srid=True),  # EWKB with an SRID
    ]
    got = plain_multipolygons(_arr(rows))
    assert got is not None
    assert got.tolist() == [True, False, False, False, False, False]
    # large_binary and sliced arrays read their own offsets
    assert plain_multipolygons(_arr(rows, large=True)).tolist() == got.tolist()  # type: ignore[union-attr]
    assert plain_multipolygons(_arr(rows).slice(4)).tolist() == [False, False]  # type: ignore[union-attr]
    assert plain_multipolygons(_arr([])).tolist() == []  # type: ignore[union-attr]


def test_corrupted_bytes_are_never_vouched_for_against_geos() -> None:
    """Flip, cut and rewrite bytes of real WKB: where the walk says True, GEOS agrees."""
    rng = np.random.default_rng(18)
    base = [
        shapely.MultiPolygon([SQUARE]),
        shapely.MultiPolygon([HOLED, shapely.box(20, 20, 21, 21)]),
        shapely.MultiPolygon([shapely.box(i, 0, i + 0.5, 1) for i in range(5)]),
    ]
    rows: list[bytes | None] = []
    for g in base:
        w = bytearray(shapely.to_wkb(g, flavor="iso", byte_order=1))
        rows.append(bytes(w))
        for _ in range(400):
            v = bytearray(w)
            kind = rng.integers(4)
            if kind == 0:  # a header or count byte changed
                i = int(rng.integers(0, min(len(v), 40)))
                v[i] = int(rng.integers(0, 256))
            elif kind == 1:  # cut short
                v = v[: int(rng.integers(0, len(v)))]
            elif kind == 2:  # any byte changed
                i = int(rng.integers(0, len(v)))
                v[i] = int(rng.integers(0, 256))
            else:  # trailing garbage
                v += bytes(rng.integers(0, 256, int(rng.integers(1, 20))).astype(np.uint8))
            rows.append(bytes(v))
    got = plain_multipolygons(_arr(rows))
    assert got is not None
    geos = np.array([_geos_says(r) for r in rows])
    # A changed coordinate can leave a ring unclosed: GEOS then cannot decode the row at
    # all (None), which _decode tests on its own. Every row GEOS does decode, where the
    # walk says True, GEOS agrees with: never True where GEOS says otherwise.
    decoded = np.array([shapely.from_wkb(r, on_invalid="ignore") is not None for r in rows])
    wrong = got & decoded & ~geos
    assert not wrong.any(), [rows[i] for i in np.flatnonzero(wrong)][:3]
    assert (got & ~decoded).any()  # the case exists, so _decode's own test of it matters
    # and useful: every untouched row is vouched for, and most survivors
    assert got[[0, 401, 802]].all()
    assert got.sum() >= 0.5 * geos.sum()


def test_too_many_parts_to_walk_gives_up(monkeypatch: pytest.MonkeyPatch) -> None:
    many = shapely.MultiPolygon([shapely.box(i, 0, i + 0.5, 1) for i in range(30)])
    w = shapely.to_wkb(many, flavor="iso", byte_order=1)
    assert plain_multipolygons(_arr([w])).tolist() == [True]  # type: ignore[union-attr]
    monkeypatch.setattr(walk, "MAX_STEPS", 10)
    assert plain_multipolygons(_arr([w])) is None


def test_decode_gives_geos_answers_either_way() -> None:
    """The importer's _decode: the same clean/valid flags through the walk and through GEOS."""
    import pandas as pd

    from landquota.intake.convert import _decode, _Plan
    from landquota.store.schema import layer

    plan = _Plan(lyr=layer("parcels"), source="t", rules={}, values={}, defaults={}, encoding="utf-8",
                 raw_text=False, src_crs=None, transformer=None, swap_xy=False, check_names=None,
                 ogr_types={})
    bowtie = shapely.MultiPolygon([shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1), (0, 0)])])
    batches = {
        "clean and valid": [shapely.MultiPolygon([SQUARE])] * 3,
        "clean, one invalid": [shapely.MultiPolygon([SQUARE]), bowtie],
        "a Polygon among them": [shapely.MultiPolygon([SQUARE]), SQUARE],
        "an empty one": [shapely.MultiPolygon([SQUARE]), shapely.from_wkt("MULTIPOLYGON EMPTY")],
        "an unclosed ring": [shapely.MultiPolygon([SQUARE]), b"unclosed"],
    }
    expected = {"clean and valid": (True, True), "clean, one invalid": (True, False),
                "a Polygon among them": (False, False), "an empty one": (False, False),
                "an unclosed ring": (False, False)}
    square = shapely.to_wkb(shapely.MultiPolygon([SQUARE]), flavor="iso", byte_order=1)
    # the walk vouches for its headers and counts; GEOS refuses the open ring
    unclosed = square[:-16] + np.array([0.5, 0.5], "<f8").tobytes()
    for name, geoms in batches.items():
        wkbs = [unclosed if g == b"unclosed" else shapely.to_wkb(g, flavor="iso", byte_order=1) for g in geoms]
        as_arrow = pd.DataFrame({"_lq_wkb": pd.arrays.ArrowExtensionArray(pa.array(wkbs, pa.binary()))})
        as_objects = pd.DataFrame({"_lq_wkb": np.array(wkbs, dtype=object)})
        a, b = _decode(as_arrow, plan), _decode(as_objects, plan)
        c = _decode(as_arrow, plan, wkb_only=True)
        assert a is not None and b is not None and c is not None
        assert (a.clean, a.valid) == (b.clean, b.valid) == (c.clean, c.valid) == expected[name], name
        # a writer that stores the WKB itself gets no geometries only when all are valid
        assert (c.geoms is None) == (c.clean and c.valid), name
        assert a.geoms is not None and b.geoms is not None
    assert plain_multipolygons(_arr([unclosed])).tolist() == [True]  # type: ignore[union-attr]


def _mp(coords: list[tuple[float, float]]) -> bytes:
    """ISO WKB of a one-ring MultiPolygon with exactly these points (closed or not: no checks)."""
    head = b"\x01\x06\x00\x00\x00\x01\x00\x00\x00\x01\x03\x00\x00\x00\x01\x00\x00\x00"
    return head + len(coords).to_bytes(4, "little") + np.asarray(coords, "<f8").tobytes()


def _ring(points: list[tuple[float, float]]) -> bytes:
    return _mp([*points, points[0]])


def _geos_valid(w: bytes) -> bool:
    g = shapely.from_wkb(w, on_invalid="ignore")
    return bool(g is not None and shapely.is_valid(g))


CONVEX_CASES = {
    # name: (WKB, what convex_rings must answer); each checkable by drawing it
    "unit square, counter-clockwise": (_ring([(0, 0), (1, 0), (1, 1), (0, 1)]), True),
    "unit square, clockwise": (_ring([(0, 0), (0, 1), (1, 1), (1, 0)]), True),
    "triangle": (_ring([(0, 0), (1, 0), (0, 1)]), True),
    "hexagon in degrees near Yangshan": (_ring([(112.6 + 1e-4 * np.cos(a), 24.5 + 1e-4 * np.sin(a))
                                                 for a in np.arange(6) * np.pi / 3]), True),
    "a vertical edge": (_ring([(0, 0), (2, 1), (2, 3), (0, 2)]), True),
    "pentagram: all turns one way, winds twice": (
        _ring([(np.cos(a), np.sin(a)) for a in np.arange(5) * 4 * np.pi / 5]), False),
    "a vertex on an edge (collinear: GEOS's call)": (_ring([(0, 0), (0.5, 0), (1, 0), (0, 1)]), False),
    "a repeated point (GEOS's call)": (_ring([(0, 0), (1, 0), (1, 0), (0, 1)]), False),
    "concave L (valid, GEOS's call)": (_ring([(0, 0), (2, 0), (2, 1), (1, 1), (1, 2), (0, 2)]), False),
    "bow-tie": (_ring([(0, 0), (1, 1), (1, 0), (0, 1)]), False),
    "spike out and back": (_ring([(0, 0), (2, 0), (1, 0), (0, 1)]), False),
    "two points only": (_ring([(0, 0), (1, 0)]), False),
    "unclosed ring": (_mp([(0, 0), (1, 0), (1, 1), (0, 1)]), False),
    "a NaN coordinate": (_ring([(0, 0), (1, 0), (1, np.nan), (0, 1)]), False),
    "an infinite coordinate": (_ring([(0, 0), (1, 0), (np.inf, 1), (0, 1)]), False),
    "a square with a hole": (shapely.to_wkb(shapely.MultiPolygon([HOLED]), flavor="iso", byte_order=1), False),
    "two squares": (shapely.to_wkb(shapely.MultiPolygon([SQUARE, shapely.box(2, 2, 3, 3)]), flavor="iso",
                                   byte_order=1), False),
    "a Polygon": (shapely.to_wkb(SQUARE, flavor="iso", byte_order=1), False),
    "big-endian": (shapely.to_wkb(shapely.MultiPolygon([SQUARE]), byte_order=0), False),
    "64-gon": (_ring([(np.cos(a), np.sin(a)) for a in np.arange(63) * 2 * np.pi / 63]), True),
    "65-gon: longer than CONVEX_POINTS, GEOS's call": (
        _ring([(np.cos(a), np.sin(a)) for a in np.arange(64) * 2 * np.pi / 64]), False),
}


@pytest.mark.parametrize("name", list(CONVEX_CASES))
def test_convex_rings_hand_cases(name: str) -> None:
    w, expected = CONVEX_CASES[name]
    assert bool(convex_rings(_arr([w]))[0]) is expected
    if expected:
        assert _geos_valid(w)


def test_convex_rings_reads_each_row_where_it_is() -> None:
    """Rows of every length and byte alignment, sliced and large arrays: each answered for itself."""
    ws = [w for w, _ in CONVEX_CASES.values()]
    want = [e for _, e in CONVEX_CASES.values()]
    rows = [None, *ws, b"", *ws[::-1]]
    expected = [False, *want, False, *want[::-1]]
    assert convex_rings(_arr(rows)).tolist() == expected
    assert convex_rings(_arr(rows, large=True)).tolist() == expected
    assert convex_rings(_arr(rows).slice(3)).tolist() == expected[3:]
    assert convex_rings(_arr([])).tolist() == []


def _random_rings(rng: np.random.Generator, n: int) -> list[bytes]:
    """Convex rings, near-degenerate ones, star-shaped and arbitrary ones, as real data might hold."""
    out = []
    for i in range(n):
        k = int(rng.integers(3, 14))
        kind = i % 6
        scale = 10.0 ** rng.integers(-6, 7)
        cx, cy = rng.uniform(-200, 200, 2)
        if kind == 0:  # convex: points on an ellipse, sorted by angle
            a = np.sort(rng.uniform(0, 2 * np.pi, k))
            pts = np.c_[np.cos(a) * rng.uniform(0.2, 3), np.sin(a)]
        elif kind == 1:  # convex but with one vertex pushed onto (or a hair off) an edge
            a = np.sort(rng.uniform(0, 2 * np.pi, max(k, 4)))
            pts = np.c_[np.cos(a), np.sin(a)]
            t = rng.uniform(0.1, 0.9)
            pts[1] = pts[0] * (1 - t) + pts[2] * t + rng.choice([0.0, 1e-16, -1e-16, 1e-15, -1e-15], 2)
        elif kind == 2:  # star-shaped, mostly concave
            a = np.sort(rng.uniform(0, 2 * np.pi, k))
            pts = np.c_[np.cos(a), np.sin(a)] * rng.uniform(0.3, 1, (k, 1))
        elif kind == 3:  # arbitrary order: self-intersecting or not
            pts = rng.uniform(-1, 1, (k, 2))
        elif kind == 4:  # winds twice or more
            turns = int(rng.integers(2, 4))
            m = max(k, 2 * turns + 1) | 1
            a = np.arange(m) * 2 * np.pi * turns / m
            pts = np.c_[np.cos(a), np.sin(a)]
        else:  # convex with a repeated or a collinear-duplicate vertex
            a = np.sort(rng.uniform(0, 2 * np.pi, k))
            pts = np.c_[np.cos(a), np.sin(a)]
            j = int(rng.integers(0, k))
            pts = np.insert(pts, j, pts[j], axis=0)
        pts = pts * scale + [cx, cy]
        out.append(_ring([tuple(p) for p in pts]))
    return out


def test_convex_rings_never_vouch_for_what_geos_refuses() -> None:
    """Thousands of rings: where the test says valid, GEOS decodes and finds them valid."""
    rng = np.random.default_rng(1718)
    rows = _random_rings(rng, 6000)
    got = convex_rings(_arr(rows))
    geos = np.array([_geos_valid(w) for w in rows])
    wrong = got & ~geos
    assert not wrong.any(), [shapely.from_wkb(rows[i], on_invalid="ignore") for i in np.flatnonzero(wrong)][:3]
    # and useful: the plainly convex rings (kind 0) are nearly all vouched for
    assert got[0::6].mean() > 0.95
    assert not got[4::6].any()  # none that winds twice
    # the corrupted bytes of the header walk's test, through this test too
    base = _ring([(0, 0), (1, 0), (1, 1), (0, 1)])
    bad = []
    for _ in range(2000):
        v = bytearray(base)
        i = int(rng.integers(0, len(v)))
        v[i] = int(rng.integers(0, 256))
        bad.append(bytes(v))
    vouched = convex_rings(_arr(bad))
    assert all(_geos_valid(w) for w, ok in zip(bad, vouched, strict=True) if ok)
    assert vouched.any()  # some changes keep it a convex square (a low mantissa byte)


def test_bounds_are_shapelys() -> None:
    """Envelopes read from the WKB (a GeoPackage writer's R-tree and blob headers) equal shapely's."""
    from landquota._wkb import bounds

    rows: list[bytes | None] = [w for w, _ in CONVEX_CASES.values()]
    rows += [None, *_random_rings(np.random.default_rng(6), 600)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # GEOS cannot read some: left out
        geoms = shapely.from_wkb(np.array(rows, dtype=object), on_invalid="ignore")
    keep = [i for i, r in enumerate(rows) if r is None or geoms[i] is not None]  # what GEOS can read
    rows = [rows[i] for i in keep]
    want = shapely.bounds(geoms[keep])
    for arr in (_arr(rows), _arr(rows, large=True)):
        assert np.array_equal(bounds(arr), want, equal_nan=True)
    assert np.array_equal(bounds(_arr(rows).slice(5)), want[5:], equal_nan=True)
    assert bounds(_arr([])).shape == (0, 4)


def test_writers_decode_wkb_they_cannot_pass_through() -> None:
    """Geometries left undecoded never become NULLs, even when their WKB is not the plain kind."""
    import geopandas as gpd
    import pandas as pd

    from landquota.store.gpkg import to_blobs
    from landquota.store.postgis import _binary_rows
    from landquota.store.schema import layer
    from landquota.store.workspace import prepare_frame

    big_endian = shapely.to_wkb(shapely.MultiPolygon([SQUARE]), byte_order=0)
    blobs = to_blobs(np.array([None], dtype=object), [big_endian])
    assert blobs[0] is not None and shapely.equals(shapely.from_wkb(blobs[0][40:]), shapely.MultiPolygon([SQUARE]))
    lyr = layer("parcels")
    df = prepare_frame(lyr, gpd.GeoDataFrame(
        {"parcel_id": ["a"], "land_class": ["0101"], "net_m2": [1.0]},
        geometry=[shapely.MultiPolygon([SQUARE])], crs=4490))
    undecoded = df.set_geometry(pd.Series([None], dtype=object).pipe(gpd.GeoSeries, crs=4490))
    assert bytes(_binary_rows(lyr, undecoded, wkb=[big_endian])) == bytes(_binary_rows(lyr, df))


def test_convex_test_runs_only_while_it_finds_convex_rings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Survey-like batches (concave rings) stop paying for the convex test; the verdicts stay GEOS's."""
    import pandas as pd

    from landquota.intake import convert
    from landquota.store.schema import layer

    plan = convert._Plan(lyr=layer("parcels"), source="t", rules={}, values={}, defaults={}, encoding="utf-8",
                         raw_text=False, src_crs=None, transformer=None, swap_xy=False, check_names=None,
                         ogr_types={})
    concave = CONVEX_CASES["concave L (valid, GEOS's call)"][0]
    convex = CONVEX_CASES["unit square, counter-clockwise"][0]
    calls: list[int] = []
    real = convert.convex_rings
    monkeypatch.setattr(convert, "convex_rings", lambda w: calls.append(1) or real(w))

    def batch(w: bytes) -> pd.DataFrame:
        return pd.DataFrame({"_lq_wkb": pd.arrays.ArrowExtensionArray(pa.array([w] * 10, pa.binary()))})

    share = convert._ConvexShare()
    for _ in range(20):
        d = convert._decode(batch(concave), plan, wkb_only=True, convex=share)
        assert d is not None and d.clean and d.valid and d.geoms is not None  # decoded: GEOS judged them
    assert len(calls) == 3  # the first batch, then the 8th and the 16th
    calls.clear()
    share = convert._ConvexShare()
    for _ in range(5):
        d = convert._decode(batch(convex), plan, wkb_only=True, convex=share)
        assert d is not None and d.clean and d.valid and d.geoms is None  # proved valid, never decoded
    assert len(calls) == 5
    # half convex: only the concave half is decoded, and held to be freed with the batch
    mixed = pd.DataFrame({"_lq_wkb": pd.arrays.ArrowExtensionArray(pa.array([convex, concave] * 5, pa.binary()))})
    d = convert._decode(mixed, plan, wkb_only=True, convex=convert._ConvexShare())
    assert d is not None and d.geoms is None and d.valid and len(d.held) == 5
