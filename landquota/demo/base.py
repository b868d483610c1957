"""What every builder of the demo county shares: its constants, random streams and shape helpers.

The published figures the demo reproduces (:data:`ANNUAL_PLAN_YUAN`,
:data:`COMPLETED_YUAN`, :data:`N_PROJECTS`), the date and plan version of its
story, and the geometry helpers (projections, clipping to the county, blobs,
rectangles, meanders) the other modules draw with.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from landquota.errors import ParameterError
from landquota.store.schema import CRS_EPSG, LAYERS, layer

#: The date the demo story is told as of: end of April 2014 (R17: 4/12 of the year).
DEMO_AS_OF: Final = date(2014, 4, 30)
#: Plan version of every zone and control line of the demo.
DEMO_PLAN_VERSION: Final = "2006-2020 调整完善"
#: ``entered_at`` of every opening ledger entry (fixed: no clock dependence).
DEMO_ENTERED_AT: Final = pd.Timestamp("2014-01-01T00:00:00Z")
#: ``entered_by`` of every opening ledger entry.
DEMO_ENTERED_BY: Final = "landquota-demo"
#: Layers :func:`build_demo` returns (the run tables are made by runs, not by the demo).
DEMO_LAYERS: Final = tuple(
    n
    for n in LAYERS
    if n not in ("allocation_runs", "allocations", "validation_errors", "ledger_chain")
)
#: Synthetic town names (13, like Yangshan's 13 towns); none is a real Yangshan town.
#: The first is the synthetic county seat.
DEMO_TOWN_NAMES: Final = (
    "凤鸣镇",
    "青溪镇",
    "云岫镇",
    "松岗镇",
    "竹坪镇",
    "白鹭镇",
    "龙潭镇",
    "桂岭镇",
    "梅坑镇",
    "金鸡镇",
    "玉泉镇",
    "兰溪镇",
    "鹤岭瑶族乡",
)

#: Target share of the county area of each land class, in the order classes are
#: laid out (water first, then towns, farmland, other land, then the mountains).
#: "Nine parts mountain, half water, half field": codes 02/03/04 ≈ 89.7 %, water
#: (11xx) 5.0 %, cultivated and construction (01, 05–10) 5.0 %, other (12xx) 0.3 %.
#: 0301 (arbor forest) takes whatever is left.
LAND_CLASS_SHARES: Final = {
    "1101": 0.014,
    "1103": 0.016,
    "1109": 0.002,
    "05H1": 0.0012,
    "0701": 0.0045,
    "1004": 0.0008,
    "08H2": 0.0008,
    "0810": 0.0003,
    "0601": 0.0022,
    "1003": 0.0022,
    "0702": 0.0050,
    "0101": 0.021,
    "0102": 0.001,
    "1107": 0.005,
    "1104": 0.013,
    "0103": 0.009,
    "1006": 0.002,
    "1202": 0.001,
    "1206": 0.001,
    "1207": 0.001,
    "0201": 0.018,
    "0202": 0.010,
    "0204": 0.007,
    "0302": 0.030,
    "0404": 0.022,
    "0305": 0.070,
    "0307": 0.050,
    "0301": float("nan"),  # the rest
}

ANNUAL_PLAN_YUAN: Final = 2_935_000_000
COMPLETED_YUAN: Final = 317_000_000
N_PROJECTS: Final = 78
_WAN: Final = 10_000  # money is drawn in units of 10,000 yuan (万元), like the county's tables
_DESIGN_EPSG: Final = 4547  # CGCS2000 3-degree GK zone 38, metres: where shapes are designed
_M2_PER_MU: Final = 10_000.0 / 15.0
_MIN_PARCELS: Final = 2_000
_MAX_PARCELS: Final = 5_000_000


@contextmanager
def built_workspace(
    target: Any,
    build: Callable[[], Mapping[str, pd.DataFrame]],
    *,
    force: bool,
    progress: bool,
    finish: Callable[[Any], None] | None = None,
) -> Iterator[Any]:
    """Yield the workspace at *target* open: as it is if it exists (unless *force*), else built.

    *build* runs before anything is written (a bad seed or size fails first); its layers
    are written in one transaction, then *finish* (metadata, styles) runs on the new
    workspace. The workspace is closed afterwards either way. Shared by the county and
    the city demo.
    """
    from landquota.errors import WorkspaceError
    from landquota.store.api import init_workspace, open_workspace

    if not force:
        try:
            ws = open_workspace(target)  # it exists: keep it, as documented
        except WorkspaceError as exc:
            if "does not exist" not in str(exc) and "has no landquota workspace" not in str(exc):
                raise
        else:
            try:
                yield ws
            finally:
                ws.close()
            return
    frames = build()
    ws = init_workspace(target, force=force)
    try:
        ws.write_layers(frames, progress=progress)
        if finish is not None:
            finish(ws)
        yield ws
    finally:
        ws.close()


def check_seed_and_size(seed: Any, n_parcels: Any, lo: int, hi: int, hint: str) -> None:
    """Refuse a seed that is not a whole number >= 0 or a patch count outside ``lo..hi``.

    One check for the county and the city generators; *hint* says what a usual size is.
    """
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a whole number >= 0 (e.g. 2014)")
    if (
        isinstance(n_parcels, bool)
        or not isinstance(n_parcels, int | np.integer)
        or not lo <= n_parcels <= hi
    ):
        raise ParameterError(
            f"n_parcels={n_parcels!r} must be a whole number from {lo:,} to {hi:,}; {hint}"
        )


_MIN_PIECE_M2: Final = 1.0  # slivers below this (from clipping) are dropped
#: Features are clipped this far (degrees, ~0.1 mm) inside the county outline (see _clip).
_CLIP_INSET_DEG: Final = 1e-9


def _rng(seed: int, stream: str) -> np.random.Generator:
    """Return a generator per purpose, so that one layer's draws never shift another's."""
    return np.random.default_rng([seed, zlib.crc32(stream.encode("utf-8"))])


@dataclass(frozen=True)
class _Proj:
    to_m: Transformer
    to_geo: Transformer

    def design(self, geoms: Any) -> Any:
        return shapely.transform(geoms, self._f(self.to_m))

    def geo(self, geoms: Any) -> Any:
        return shapely.transform(geoms, self._f(self.to_geo))

    @staticmethod
    def _f(tr: Transformer) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
        def f(xy: NDArray[np.float64]) -> NDArray[np.float64]:
            x, y = tr.transform(xy[:, 0], xy[:, 1])
            return np.column_stack([x, y])

        return f


def _projections() -> _Proj:
    return _Proj(
        Transformer.from_crs(CRS_EPSG, _DESIGN_EPSG, always_xy=True),
        Transformer.from_crs(_DESIGN_EPSG, CRS_EPSG, always_xy=True),
    )


def _areas(geoms_geo: Any) -> NDArray[np.float64]:
    """R1: ellipsoidal areas (m²) of EPSG:4490 geometries."""
    from landquota.rules.areas import ellipsoidal_area

    return np.asarray(
        ellipsoidal_area(gpd.GeoSeries(np.asarray(geoms_geo, dtype=object), crs=CRS_EPSG)),
        dtype=np.float64,
    )


def _polygonal(geoms: Any) -> NDArray[np.object_]:
    """Each geometry as a MultiPolygon of its polygonal parts (None if it has none)."""
    arr = np.asarray(geoms, dtype=object)
    out = np.full(len(arr), None, dtype=object)
    parts, idx = shapely.get_parts(arr, return_index=True)
    while True:  # make_valid may nest multipolygons inside a collection
        nested = np.isin(shapely.get_type_id(parts), (4, 5, 6, 7))
        if not nested.any():
            break
        sub, sub_idx = shapely.get_parts(parts[nested], return_index=True)
        parts = np.concatenate([parts[~nested], sub])
        idx = np.concatenate([idx[~nested], idx[nested][sub_idx]])
        order = np.argsort(idx, kind="stable")
        parts, idx = parts[order], idx[order]
    if len(parts) == 0:
        return out
    ok = (shapely.get_type_id(parts) == 3) & (shapely.area(parts) > 0)
    if ok.any():
        uniq, inv = np.unique(idx[ok], return_inverse=True)
        out[uniq] = shapely.multipolygons(parts[ok], indices=inv)
    return out


def _valid_multi(geoms: Any) -> NDArray[np.object_]:
    """MultiPolygons, repaired where the transformation made a sliver invalid."""
    arr = _polygonal(geoms)
    present = ~shapely.is_missing(arr)
    bad = present.copy()
    bad[present] = ~shapely.is_valid(arr[present])
    if bad.any():
        arr[bad] = _polygonal(shapely.make_valid(arr[bad]))
    return arr


def _snap(geoms: Any) -> NDArray[np.object_]:
    """Snap-round overlay results to a 1 cm grid.

    Differences and unions of organic shapes can leave vertices a hair's breadth
    from an edge; valid here, such a polygon may self-touch after any
    reprojection. Snap rounding removes those near-degeneracies for good.
    """
    return _polygonal(shapely.set_precision(np.asarray(geoms, dtype=object), 0.01))


def _clip(geoms_geo: Any, boundary_geo: Any) -> NDArray[np.object_]:
    """Clip EPSG:4490 MultiPolygons to the county outline, in EPSG:4490 (LQ-005).

    Shapes are designed in a Gauss–Krüger plane and clipped there too, but a
    straight edge in the plane is slightly curved in longitude/latitude: where a
    clip put a vertex in the middle of a long (up to 1.7 km) edge of the outline,
    the transformed edges sag some millimetres past the stored outline, and
    snapping to the 1 cm grid moves them as much. So the features that the
    outline does not cover are intersected again after the transformation (and
    after any snapping); the others are left untouched.

    They are intersected with the outline moved :data:`_CLIP_INSET_DEG` (about
    0.1 mm) inwards, not with the outline itself: a vertex computed on an edge of
    the outline lands a rounding error on either side of it, and a sliver of
    zero width between such vertices along a 1 km edge measures several m² on
    the ellipsoid (its edges are read as geodesics), which LQ-005 would report.
    """
    arr = np.array(geoms_geo, dtype=object)
    present = np.flatnonzero(~shapely.is_missing(arr))
    if not len(present):
        return arr
    shapely.prepare(boundary_geo)
    out = present[~shapely.covers(boundary_geo, arr[present])]
    if len(out):
        inner = shapely.buffer(boundary_geo, -_CLIP_INSET_DEG, join_style="mitre", mitre_limit=10.0)
        arr[out] = _valid_multi(shapely.intersection(arr[out], inner))
    return arr


def _snap_coverage(geoms: Any) -> NDArray[np.object_]:
    """Snap-round a partition to the 1 cm grid as one coverage (metres).

    Snapping each polygon on its own (:func:`_snap`) may move an edge shared by
    two neighbours differently in each, leaving overlaps of a square metre along
    kilometres of edges (LQ-012). Here the edges of all polygons are noded and
    rounded together and polygonised again, so neighbours share their edges
    exactly; each face goes to the first polygon that contains it, so where the
    inputs overlap the earlier one wins (later ones lose what earlier ones hold).
    Faces in no polygon (holes) are dropped, except snapping slivers along an
    edge, which go to the nearest polygon.
    """
    arr = _polygonal(geoms)
    out = np.full(len(arr), None, dtype=object)
    present = np.flatnonzero(~shapely.is_missing(arr))
    if not len(present):
        return out
    src = arr[present]
    lines = shapely.union_all(shapely.boundary(src), grid_size=0.01)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(lines)))
    faces = faces[shapely.area(faces) > 0]
    pts = shapely.point_on_surface(faces)
    tree = shapely.STRtree(src)
    owner = np.full(len(faces), len(src), dtype=np.intp)
    fi, zi = tree.query(pts, predicate="within")
    np.minimum.at(owner, fi, zi)
    lost = np.flatnonzero(owner == len(src))
    if len(lost):
        # a sliver between rounded edges: its point lies within a hair of a polygon
        fi, zi = tree.query(pts[lost], predicate="dwithin", distance=0.02)
        np.minimum.at(owner, lost[fi], zi)
    for k in np.unique(owner[owner < len(src)]):
        out[present[k]] = shapely.coverage_union_all(faces[owner == k])
    return _polygonal(out)


def _blob(rng: np.random.Generator, x: float, y: float, r: float, wobble: float = 0.25) -> Any:
    """Return a star-shaped (hence simple) organic outline of mean radius *r* around (x, y)."""
    theta = np.linspace(0.0, 2 * np.pi, 96, endpoint=False)
    k = np.arange(2, 6)
    amp = rng.uniform(0.0, wobble, len(k)) / k
    phase = rng.uniform(0.0, 2 * np.pi, len(k))
    rr = r * (1.0 + (amp[:, None] * np.cos(k[:, None] * theta + phase[:, None])).sum(axis=0))
    return shapely.Polygon(np.column_stack([x + rr * np.cos(theta), y + rr * np.sin(theta)]))


def _rect(x: float, y: float, area: float, aspect: float, angle: float) -> Any:
    w = float(np.sqrt(area / aspect))
    h = w * aspect
    c, s = np.cos(angle), np.sin(angle)
    pts = np.array([[-w, -h], [w, -h], [w, h], [-w, h]]) / 2.0
    rot = pts @ np.array([[c, s], [-s, c]])
    return shapely.Polygon(rot + np.array([x, y]))


def _rect_maker(area: float, aspect: float, angle: float) -> Callable[[float, float, float], Any]:
    """Return a maker of rectangles of *area* (times a shrink factor) centred at (x, y)."""

    def make(x: float, y: float, shrink: float) -> Any:
        return _rect(x, y, area * shrink, aspect, angle)

    return make


def _blob_maker(rng: np.random.Generator, area: float) -> Callable[[float, float, float], Any]:
    """Return a maker of blobs of about *area* (times a shrink factor) centred at (x, y)."""

    def make(x: float, y: float, shrink: float) -> Any:
        return _blob(rng, x, y, float(np.sqrt(area * shrink / np.pi)), 0.3)

    return make


def _meander(
    rng: np.random.Generator,
    a: NDArray[np.float64],
    b: NDArray[np.float64],
    amp: float,
    n: int = 10,
) -> NDArray[np.float64]:
    """Points of a gently winding line from *a* to *b* (ends fixed)."""
    t = np.linspace(0.0, 1.0, n + 1)
    d = b - a
    length = float(np.hypot(*d)) or 1.0
    normal = np.array([-d[1], d[0]]) / length
    off = rng.normal(0.0, amp * length, n + 1) * np.sin(np.pi * t)
    off = np.convolve(off, np.ones(3) / 3.0, mode="same") * np.sin(np.pi * t)
    return a + t[:, None] * d + off[:, None] * normal


def _segments(lines: Sequence[NDArray[np.float64]]) -> NDArray[np.object_]:
    segs = [
        np.asarray(shapely.linestrings(np.stack([p[:-1], p[1:]], axis=1)), dtype=object)
        for p in lines
    ]
    return np.concatenate(segs)


def _dist(xy: NDArray[np.float64], segs: NDArray[np.object_]) -> NDArray[np.float64]:
    """Distance from each point to the nearest of *segs* (2-point lines or points).

    Plain numpy, one pass per segment: a few hundred segments against 10^6 points
    is several times faster than per-point tree queries.
    """
    c = shapely.get_coordinates(segs)
    if (shapely.get_type_id(segs) == 0).all():
        a, b = c, c
    else:
        a, b = c[0::2], c[1::2]
    x, y = xy[:, 0], xy[:, 1]
    best = np.full(len(xy), np.inf)
    for (ax, ay), (bx, by) in zip(a, b, strict=True):
        dx, dy = bx - ax, by - ay
        px, py = x - ax, y - ay
        len2 = dx * dx + dy * dy
        if len2 > 0:
            t = np.clip((px * dx + py * dy) / len2, 0.0, 1.0)
            px = px - t * dx
            py = py - t * dy
        np.minimum(best, px * px + py * py, out=best)
    out: NDArray[np.float64] = np.sqrt(best)
    return out


def _smooth_field(
    rng: np.random.Generator, bounds: Sequence[float], k: int = 40
) -> Callable[[NDArray[np.float64]], NDArray[np.float64]]:
    """Return a smooth random field in [0, 1] made of Gaussian bumps (patchy land use)."""
    minx, miny, maxx, maxy = bounds
    cx = rng.uniform(minx, maxx, k)
    cy = rng.uniform(miny, maxy, k)
    s = rng.uniform(2_000.0, 8_000.0, k)
    a = rng.uniform(0.3, 1.0, k)

    def f(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        v = np.zeros(len(xy))
        for i in range(k):
            v += a[i] * np.exp(
                -((xy[:, 0] - cx[i]) ** 2 + (xy[:, 1] - cy[i]) ** 2) / (2 * s[i] ** 2)
            )
        return np.asarray(1.0 - np.exp(-v), dtype=np.float64)

    return f


def _take(
    score: NDArray[np.float64], area: NDArray[np.float64], free: NDArray[np.bool_], target: float
) -> NDArray[np.bool_]:
    """Select the free patches of lowest score whose areas add up closest to *target*."""
    sel = np.zeros(len(score), dtype=bool)
    idx = np.flatnonzero(free)
    if target <= 0 or len(idx) == 0:
        return sel
    order = idx[np.argsort(score[idx], kind="stable")]
    cum = np.cumsum(area[order])
    k = int(np.searchsorted(cum, target))
    if k < len(cum) and (k == 0 or abs(cum[k] - target) < abs(cum[k - 1] - target)):
        k += 1
    sel[order[:k]] = True
    return sel


def _typed(values: Any, typ: str, n: int) -> pd.Series:
    if values is None:
        values = [None] * n
    if typ in ("text", "json"):
        return pd.Series(values, dtype="str")
    if typ == "real":
        return pd.Series(values, dtype="float64")
    if typ == "integer":
        return pd.Series(values, dtype="Int64")
    if typ == "boolean":
        return pd.Series(values, dtype="bool")
    if typ == "date":
        return pd.Series(pd.to_datetime(pd.Series(values, dtype="object")), dtype="datetime64[ns]")
    return pd.Series(pd.to_datetime(pd.Series(values, dtype="object"), utc=True)).astype(
        "datetime64[ns, UTC]"
    )


def _frame(name: str, data: dict[str, Any], geoms: Any = None) -> pd.DataFrame:
    """Return a frame with exactly the layer's columns in the canonical dtypes of the brief."""
    lyr = layer(name)
    n = len(data[lyr.id_column])
    cols = {c.name: _typed(data.get(c.name), c.type, n) for c in lyr.columns}
    df = pd.DataFrame(cols, index=pd.RangeIndex(n))
    if not lyr.geometry:
        return df
    gs = gpd.GeoSeries(np.asarray(geoms, dtype=object), crs=f"EPSG:{CRS_EPSG}")
    gdf: pd.DataFrame = gpd.GeoDataFrame(df, geometry=gs.values, crs=f"EPSG:{CRS_EPSG}")
    return gdf


def _ids(prefix: str, n: int, width: int) -> NDArray[np.object_]:
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


@contextmanager
def _stages(enabled: bool, total: int) -> Iterator[Callable[[str], None]]:
    if not enabled:
        yield lambda _s: None
        return
    import sys

    from tqdm import tqdm

    with tqdm(total=total, desc="demo county", unit="step", file=sys.stderr, disable=None) as bar:

        def step(s: str) -> None:
            bar.set_postfix_str(s)
            bar.update(1)

        yield step
