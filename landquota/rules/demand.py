"""Land demand of fixed project sites: quota and farmland-compensation needs (R1–R4).

:func:`demand_from_sites` intersects each fixed site red line with the current
land-use survey patches and sums, per project:

- the site's ellipsoidal area and its area on each broad category (R1, R3);
- the new construction-land quota need: the area on agricultural and unused
  land, using the full geometric area of those pieces (R3; the field-ridge
  deduction of a cultivated patch is itself agricultural land, 田坎 1203);
- the farmland-compensation needs (R4): the cultivated *net* area (R2: a
  piece's area × TBDLMJ/TBMJ of its patch), its paddy (0101) part, and its
  grain capacity (net area × the patch's yield, or the default of its class).

See ``docs/accounting.md`` for the design and worked examples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota._parallel import MIN_PARALLEL, chunked, run_all, workers
from landquota._progress import progress_bar
from landquota.errors import DataError, ParameterError
from landquota.rules.landclasses import LAND_CLASSES, category_of, grain_yields, normalize_code
from landquota.rules.overlay import (
    Centre,
    FixedSites,
    as_text_series,
    check_frame,
    check_polygons,
    fixed_sites,
    lonlat_area_m2,
    measure,
    polygonal,
    site_pairs,
    sites_centre,
    union_by_group,
)

__all__ = [
    "DEMAND_COLUMNS",
    "NET_RATIO_TOLERANCE",
    "DemandResult",
    "demand_from_sites",
]

#: Columns of :attr:`DemandResult.table`, in order: the ``demand --out`` columns of
#: the data contract without the compliance ones.
DEMAND_COLUMNS: Final[tuple[str, ...]] = (
    "project_id",
    "site_m2",
    "cultivated_m2",
    "paddy_m2",
    "agricultural_m2",
    "construction_m2",
    "unused_m2",
    "new_quota_m2",
    "comp_area_m2",
    "comp_paddy_m2",
    "comp_grain_kg",
)

#: When a patch has no gross area (TBMJ), its ellipsoidal area is the gross; a net
#: area (TBDLMJ) larger than that by at most this fraction is survey rounding and
#: the net share is capped at 1; more than that is a data error (R2).
NET_RATIO_TOLERANCE: Final = 1e-3

_SITES_PER_CHUNK: Final = 256
_CATEGORY_ORDER: Final = ("agricultural", "construction", "unused")


@dataclass(frozen=True)
class DemandResult:
    """Demand of the fixed project sites.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per fixed site, columns :data:`DEMAND_COLUMNS`. Areas in m²,
        grain in kg/year. ``agricultural_m2`` includes cultivated land;
        ``agricultural_m2 + construction_m2 + unused_m2`` is the covered site
        area, and ``new_quota_m2 = agricultural_m2 + unused_m2`` (R3).
    pieces : geopandas.GeoDataFrame
        One row per site ∩ patch with positive area: ``project_id``,
        ``parcel_id``, ``land_class``, ``category``, ``cultivated``, ``paddy``,
        ``area_m2`` (ellipsoidal, R1), ``net_ratio`` (TBDLMJ/TBMJ, R2),
        ``net_area_m2``, ``grain_kg_per_m2`` (yield used; NaN off cultivated
        land), ``grain_kg`` and the MultiPolygon ``geometry`` (EPSG:4490).
    by_class : pandas.DataFrame
        Long table, one row per project and land class: ``project_id``,
        ``land_class``, ``category``, ``cultivated``, ``area_m2``,
        ``net_area_m2``, ``grain_kg``.
    coverage : pandas.DataFrame
        One row per fixed site: ``project_id``, ``site_m2``, ``covered_m2``
        (area of the union of its pieces), ``uncovered_m2`` (site area on no
        patch: counted in no category), ``overlap_m2`` (area counted twice
        because patches overlap).
    not_fixed : tuple of str
        Projects skipped because their site is not fixed.
    """

    table: pd.DataFrame
    pieces: gpd.GeoDataFrame
    by_class: pd.DataFrame
    coverage: pd.DataFrame
    not_fixed: tuple[str, ...] = field(default=())


def _float_column(frame: pd.DataFrame, name: str) -> NDArray[np.float64]:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    try:
        return np.asarray(pd.to_numeric(frame[name]), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(
            f"parcels: column {name!r} must be numeric (m² or kg/m²); convert it on import"
        ) from exc


def _net_ratios(
    sub: gpd.GeoDataFrame,
    geoms: NDArray[np.object_],
    parcel_ids: NDArray[np.object_],
    centre: Centre | None,
) -> NDArray[np.float64]:
    """TBDLMJ / TBMJ of each hit patch (R2), with the patch's ellipsoidal area as TBMJ if absent."""
    net = _float_column(sub, "net_m2")
    gross = _float_column(sub, "gross_m2")

    def fail(mask: NDArray[np.bool_], what: str, fix: str) -> None:
        if mask.any():
            bad = parcel_ids[mask]
            shown = ", ".join(repr(b) for b in bad[:5]) + (" …" if len(bad) > 5 else "")
            raise DataError(f"parcels: parcel_id {shown}: {what}; {fix}")

    fail(~np.isfinite(net), "net_m2 (TBDLMJ) is missing", "every patch needs its net area (R2)")
    fail(net < 0, "net_m2 is negative", "areas are m² ≥ 0")
    has_gross = np.isfinite(gross)
    fail(
        has_gross & (gross <= 0) & (net > 0),
        "gross_m2 (TBMJ) is 0 but net_m2 > 0",
        "fix TBMJ or leave it empty to use the patch's ellipsoidal area",
    )
    fail(
        has_gross & (net > gross),
        "net_m2 (TBDLMJ) exceeds gross_m2 (TBMJ)",
        "TBDLMJ = TBMJ − KCMJ cannot exceed TBMJ; check the columns were not swapped",
    )
    measured = np.full(len(sub), np.nan)
    if (~has_gross).any():
        measured[~has_gross] = measure(geoms[~has_gross], centre, name="parcels")
    denominator = np.where(has_gross, gross, measured)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(denominator > 0, net / denominator, 0.0)
    fail(
        ~has_gross & (ratio > 1.0 + NET_RATIO_TOLERANCE),
        f"net_m2 exceeds the patch's ellipsoidal area by more than {NET_RATIO_TOLERANCE:.1%}",
        "is net_m2 in m² (not mu or ha)? fill gross_m2 (TBMJ) if the survey area differs",
    )
    return np.minimum(ratio, 1.0)


def demand_from_sites(
    sites: gpd.GeoDataFrame,
    parcels: gpd.GeoDataFrame,
    *,
    grain_defaults: Mapping[str, float] | None = None,
    tolerance_m2: float = 1.0,
    check_coverage: bool = True,
    progress: bool = False,
    centre: tuple[float, float] | None = None,
) -> DemandResult:
    """Quota and compensation needs of every fixed project site (R1–R4).

    Parameters
    ----------
    sites : geopandas.GeoDataFrame
        The ``projects`` layer (or part of it): ``project_id`` and the site
        geometry, EPSG:4490; an optional ``site_fixed`` column. Sites with no
        geometry (or ``site_fixed`` False) are skipped and listed in
        :attr:`DemandResult.not_fixed`.
    parcels : geopandas.GeoDataFrame
        The ``parcels`` layer: ``parcel_id``, ``land_class``, ``net_m2``
        (TBDLMJ); optional ``gross_m2`` (TBMJ) and ``grain_kg_per_m2``; EPSG:4490.
    grain_defaults : mapping of str to float, optional
        Grain yield (kg/m²/year) by cultivated class for patches without their
        own, replacing :data:`landquota.rules.landclasses.DEFAULT_GRAIN_KG_PER_M2` for
        the classes given.
    tolerance_m2 : float, default 1.0
        Largest uncovered or doubly covered area of a site accepted as
        digitising noise when *check_coverage* is True.
    check_coverage : bool, default True
        Raise ``DataError`` when a site has more than *tolerance_m2* on no
        patch, or where patches overlap: both would make the needs wrong. With
        False the figures are still computed and the gaps reported in
        :attr:`DemandResult.coverage` (uncovered area is counted in no category).
    progress : bool, default False
        Show a progress bar on stderr.
    centre : (lon, lat), optional
        Centre of the one equal-area projection in which every area of the run
        is measured (R1); default: the middle of the fixed sites' extent. Any
        centre gives ellipsoidal areas; fixing it makes a site's figures
        independent of the other sites (the Dask engine passes the whole run's).

    Returns
    -------
    DemandResult
        ``table`` (one row per fixed site), ``pieces``, ``by_class``, ``coverage``.

    Raises
    ------
    DataError
        Missing columns, duplicate ids, non-polygonal or invalid geometries,
        unknown land classes, missing or inconsistent net/gross areas of the
        patches the sites touch, or (with *check_coverage*) gaps and overlaps.
    CRSError
        If a frame is not in EPSG:4490 (the message names the layer).
    ParameterError
        For a bad *grain_defaults* or *tolerance_m2*.

    Examples
    --------
    A 100 m × 100 m site, west half on a paddy patch with TBDLMJ/TBMJ = 0.9,
    east half on a rural homestead (the hand check in ``tests/test_demand.py``):
    new quota 5,000 m², cultivated and paddy compensation 4,500 m², grain
    4,500 × 0.9 = 4,050 kg.
    """
    yields = grain_yields(grain_defaults)
    if not (tolerance_m2 >= 0):
        raise ParameterError(f"tolerance_m2={tolerance_m2!r}; give an area ≥ 0 in m²")
    fixed = fixed_sites(sites)
    parcels = check_frame(
        parcels, layer="parcels", id_column="parcel_id", required=("land_class", "net_m2")
    )
    cut = cut_pieces(fixed.geoms, parcels, progress=progress)
    return demand_from_pieces(
        fixed,
        cut,
        yields=yields,
        tolerance_m2=tolerance_m2,
        check_coverage=check_coverage,
        centre=sites_centre(fixed.geoms) if centre is None else centre,
    )


@dataclass(frozen=True)
class Cut:
    """Site ∩ patch pieces before measuring: the part the Dask engine distributes.

    Attributes
    ----------
    site : numpy.ndarray of intp
        Position of each piece's site among the fixed sites.
    hit : geopandas.GeoDataFrame
        The patches touched by a site (checked polygonal and valid), any order.
    parcel : numpy.ndarray of intp
        Row of :attr:`hit` of each piece.
    geoms : numpy.ndarray of object
        Polygonal part of site ∩ patch, as MultiPolygons (possibly empty).
    """

    site: NDArray[np.intp]
    hit: gpd.GeoDataFrame
    parcel: NDArray[np.intp]
    geoms: NDArray[np.object_]


def cut_pieces(
    site_geoms: NDArray[np.object_], parcels: gpd.GeoDataFrame, *, progress: bool = False
) -> Cut:
    """Intersect the sites with the patches they touch (no measuring, no sums).

    Each (site, patch) pair gives the same piece whichever frame of patches it
    came from, so running this per spatial partition of the parcels and
    concatenating is the same as running it once (``landquota/engines/dask.py``).
    """
    # Candidate pairs through the STRtree, in chunks of sites so that memory
    # stays bounded and a progress bar can move.
    parcel_geoms = np.asarray(parcels.geometry.array, dtype=object)
    tree = shapely.STRtree(parcel_geoms)
    n_sites = len(site_geoms)
    site_idx: list[NDArray[np.intp]] = []
    parcel_idx: list[NDArray[np.intp]] = []
    starts = range(0, n_sites, _SITES_PER_CHUNK)
    with progress_bar(n_sites, "demand: site × parcel", enabled=progress) as bar:

        def query(start: int) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
            chunk = site_geoms[start : start + _SITES_PER_CHUNK]
            pairs = site_pairs(chunk, tree)
            bar.update(len(chunk))
            return pairs

        # the chunks' queries run on the threads (the STRtree query releases the
        # GIL); their pairs are put together in chunk order, as one loop would
        for start, (i, j) in zip(
            starts, run_all([partial(query, s) for s in starts]), strict=True
        ):
            site_idx.append(i + start)
            parcel_idx.append(j)
    i_site = np.concatenate(site_idx) if site_idx else np.empty(0, dtype=np.intp)
    j_parcel = np.concatenate(parcel_idx) if parcel_idx else np.empty(0, dtype=np.intp)

    # Only the patches a site touches are checked: validate checks the whole
    # layer; here a bad patch elsewhere must not stop a site's figures.
    hit, j_local = np.unique(j_parcel, return_inverse=True)
    hit_geoms = parcel_geoms[hit]
    if shapely.has_z(hit_geoms).any():  # copying every geometry costs more than the test
        hit_geoms = np.asarray(shapely.force_2d(hit_geoms), dtype=object)
    hit_frame = parcels.iloc[hit].reset_index(drop=True)
    check_polygons(
        hit_geoms,
        hit_frame["parcel_id"].astype(object).to_numpy(),
        layer="parcels",
        id_column="parcel_id",
    )
    hit_frame = gpd.GeoDataFrame(
        pd.DataFrame(hit_frame.drop(columns=hit_frame.geometry.name)),
        geometry=gpd.GeoSeries(hit_geoms, crs=parcels.crs),
    )
    # A patch wholly inside its site is its own piece: with patches much smaller
    # than sites (a province: 0.5 ha patches, 2–50 ha sites) that spares most of
    # the intersections, the costliest step. Prepared sites make the test cheap.
    sites_here = site_geoms[i_site]
    shapely.prepare(site_geoms)
    # On the threads in runs of whole sites (pairs are sorted by site): a prepared
    # site builds its index on first use, so each one is used by one thread only.
    cuts = np.searchsorted(i_site, np.linspace(0, n_sites, workers() + 1)[1:-1])
    runs = np.split(np.arange(len(i_site)), cuts) if len(i_site) >= MIN_PARALLEL else [None]

    def contained(r: NDArray[np.intp] | None) -> NDArray[np.bool_]:
        if r is None:
            return np.asarray(shapely.contains_properly(sites_here, hit_geoms[j_local]))
        return np.asarray(shapely.contains_properly(sites_here[r], hit_geoms[j_local[r]]))

    inside = np.concatenate(run_all([partial(contained, r) for r in runs]))
    pieces = np.empty(len(i_site), dtype=object)
    pieces[inside] = hit_geoms[j_local[inside]]
    cross = ~inside
    a, b = sites_here[cross], hit_geoms[j_local[cross]]
    # GEOS releases the GIL: the pairs' intersections (the costliest step) run on
    # every core; each pair gives the same piece on whichever thread
    crossing = chunked(lambda k: shapely.intersection(a[k], b[k]), np.arange(len(a)))
    pieces[cross] = polygonal(np.asarray(crossing, dtype=object))
    return Cut(
        site=i_site.astype(np.intp),
        hit=hit_frame,
        parcel=np.asarray(j_local, dtype=np.intp).reshape(-1),
        geoms=pieces,
    )


def demand_from_pieces(
    fixed: FixedSites,
    cut: Cut,
    *,
    yields: Mapping[str, float],
    tolerance_m2: float,
    check_coverage: bool,
    centre: Centre | None,
) -> DemandResult:
    """Measure and sum the pieces of :func:`cut_pieces` (R1–R4).

    :func:`measure_pieces` then :func:`sum_pieces`. The Dask engine runs the
    first half per spatial partition of the patches on its workers and the
    second once, on the client; the local engine both here. Every value of the
    first half is computed piece by piece (or patch by patch) and the second
    puts the pieces in a canonical order (site, then ``parcel_id``) before any
    sum, so the two runs give identical floats.
    """
    measured = measure_pieces(cut, yields=yields, centre=centre)
    return sum_pieces(
        fixed, measured, tolerance_m2=tolerance_m2, check_coverage=check_coverage, centre=centre
    )


@dataclass(frozen=True)
class MeasuredPieces:
    """The pieces of :func:`cut_pieces`, checked and measured, before any sum.

    One entry per piece of positive ellipsoidal area, in any order. Each value
    depends on its own piece and patch only, so the pieces of several spatial
    partitions, measured apart, concatenate (:meth:`concat`) to what measuring
    them together gives. What a Dask worker sends back (without shapely
    objects: ``geoms`` as WKB, see ``landquota/engines/dask.py``).

    Attributes
    ----------
    site : numpy.ndarray of intp
        Position of the piece's site among the fixed sites.
    parcel_id, land_class, category : numpy.ndarray of object (str)
        The patch's id, normalised class code and broad category.
    cultivated, paddy : numpy.ndarray of bool
        Class flags of the patch.
    area_m2 : numpy.ndarray of float64
        Ellipsoidal area of the piece in the run's projection (R1).
    planar : numpy.ndarray of float64
        Area in the lon/lat plane (coverage check only, not a figure).
    net_ratio : numpy.ndarray of float64
        TBDLMJ/TBMJ of the patch (R2).
    grain_rate : numpy.ndarray of float64
        Grain yield used (kg/m²/year): the patch's own or its class default;
        NaN off cultivated land (R4).
    geoms : numpy.ndarray of object
        The pieces, MultiPolygons in EPSG:4490.
    """

    site: NDArray[np.intp]
    parcel_id: NDArray[np.object_]
    land_class: NDArray[np.object_]
    category: NDArray[np.object_]
    cultivated: NDArray[np.bool_]
    paddy: NDArray[np.bool_]
    area_m2: NDArray[np.float64]
    planar: NDArray[np.float64]
    net_ratio: NDArray[np.float64]
    grain_rate: NDArray[np.float64]
    geoms: NDArray[np.object_]

    def __len__(self) -> int:
        return len(self.site)

    @staticmethod
    def concat(parts: list[MeasuredPieces]) -> MeasuredPieces:
        """Return the pieces of *parts* as one (in the order given)."""
        if not parts:
            return _measured_empty()
        columns = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in MeasuredPieces.__dataclass_fields__
        }
        return MeasuredPieces(**columns)


def _measured_empty() -> MeasuredPieces:
    text = np.empty(0, dtype=object)
    real = np.empty(0, dtype=np.float64)
    flag = np.empty(0, dtype=bool)
    return MeasuredPieces(
        site=np.empty(0, dtype=np.intp),
        parcel_id=text,
        land_class=text,
        category=text,
        cultivated=flag,
        paddy=flag,
        area_m2=real,
        planar=real,
        net_ratio=real,
        grain_rate=real,
        geoms=np.empty(0, dtype=object),
    )


def measure_pieces(
    cut: Cut, *, yields: Mapping[str, float], centre: Centre | None
) -> MeasuredPieces:
    """Check the touched patches and measure the pieces of :func:`cut_pieces` (R1, R2, R4).

    The patches' classes (unknown codes raise), net shares (R2, missing or
    inconsistent areas raise) and grain yields, and each piece's ellipsoidal
    area in the run's projection centred at *centre* (R1); pieces of zero area
    are dropped. Nothing is summed: see :func:`sum_pieces`.
    """
    # Patches in parcel_id order, so that a refusal names the same patches
    # whichever order they were read in.
    raw_ids = cut.hit["parcel_id"].astype(object).to_numpy()
    by_id = np.argsort(raw_ids, kind="stable")
    hit = cut.hit.iloc[by_id].reset_index(drop=True)
    rank = np.empty(len(by_id), dtype=np.intp)
    rank[by_id] = np.arange(len(by_id), dtype=np.intp)
    j_local = rank[cut.parcel]

    hit_ids = hit["parcel_id"].astype(object).to_numpy()
    hit_geoms = np.asarray(hit.geometry.array, dtype=object)
    raw_codes = hit["land_class"]
    hit_category = category_of(raw_codes, where="parcels.land_class")  # unknown codes raise
    # each distinct code looked up once (a county has a few dozen): no Python per patch
    code_of, distinct = pd.factorize(raw_codes.astype(object), use_na_sentinel=False)
    codes = np.array([normalize_code(c) for c in distinct] or [""], dtype=object)
    hit_codes = codes[code_of]
    hit_cultivated = np.array(
        [LAND_CLASSES[c].cultivated for c in codes[: len(distinct)]] or [False], dtype=bool
    )[code_of]
    hit_paddy = np.array(
        [LAND_CLASSES[c].paddy for c in codes[: len(distinct)]] or [False], dtype=bool
    )[code_of]
    hit_ratio = _net_ratios(hit, hit_geoms, hit_ids, centre)
    own_yield = _float_column(hit, "grain_kg_per_m2")
    if (own_yield < 0).any():
        bad = hit_ids[own_yield < 0]
        raise DataError(f"parcels: parcel_id {bad[0]!r} has grain_kg_per_m2 < 0; give a yield ≥ 0")
    default_yield = np.array(
        [yields.get(c, np.nan) for c in codes[: len(distinct)]] or [np.nan], dtype=np.float64
    )[code_of]
    hit_yield = np.where(
        hit_cultivated, np.where(np.isfinite(own_yield), own_yield, default_yield), np.nan
    )

    # Ellipsoidal areas (R1) of the pieces, all in the run's one projection.
    area = measure(cut.geoms, centre, name="pieces")
    keep = area > 0
    j_local, geoms = j_local[keep], cut.geoms[keep]
    return MeasuredPieces(
        site=np.asarray(cut.site[keep], dtype=np.intp),
        parcel_id=hit_ids[j_local],
        land_class=hit_codes[j_local],
        category=hit_category[j_local],
        cultivated=hit_cultivated[j_local],
        paddy=hit_paddy[j_local],
        area_m2=area[keep],
        planar=np.asarray(shapely.area(geoms), dtype=np.float64),
        net_ratio=hit_ratio[j_local],
        grain_rate=hit_yield[j_local],
        geoms=geoms,
    )


def canonical_order(site: NDArray[np.intp], parcel_id: NDArray[np.object_]) -> NDArray[np.intp]:
    """Positions of the pieces sorted by site, then ``parcel_id`` (code-point order).

    Arrow sorts the ids as UTF-8 bytes, whose order is Python's order of the
    strings (code points), at a third of the cost of ``numpy.lexsort`` on
    Python strings (0.5 M pieces of a province: ~0.4 s against ~0.9 s).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(site) == 0:
        return np.empty(0, dtype=np.intp)
    try:
        ids = pa.array(parcel_id, type=pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):  # ids that are not text (frames built in code)
        rank = np.unique(parcel_id, return_inverse=True)[1].reshape(-1)
        return np.asarray(np.lexsort((rank, site)), dtype=np.intp)
    table = pa.table({"site": pa.array(site), "parcel_id": ids})
    order = pc.sort_indices(table, sort_keys=[("site", "ascending"), ("parcel_id", "ascending")])
    return np.asarray(order.to_numpy(), dtype=np.intp)


def sum_pieces(
    fixed: FixedSites,
    measured: MeasuredPieces,
    *,
    tolerance_m2: float,
    check_coverage: bool,
    centre: Centre | None,
) -> DemandResult:
    """Sum measured pieces per site (R2–R4), check coverage and build the result.

    The pieces are first put in a canonical order (:func:`canonical_order`:
    site, then ``parcel_id``), so the sums do not depend on the order of the
    patches or on how they were partitioned: the local and the Dask runs give
    identical floats.
    """
    n_sites = len(fixed.ids)
    site_m2 = measure(fixed.geoms, centre, name="projects")

    order = canonical_order(measured.site, measured.parcel_id)
    i_site = measured.site[order]
    area = measured.area_m2[order]
    pieces_geom = measured.geoms[order]
    ratio = measured.net_ratio[order]
    net_area = area * ratio  # R2
    cultivated = measured.cultivated[order]
    paddy = measured.paddy[order]
    category = measured.category[order]
    grain_rate = measured.grain_rate[order]
    grain = np.where(cultivated, net_area * np.nan_to_num(grain_rate), 0.0)  # R4

    def per_site(
        values: NDArray[np.float64], mask: NDArray[np.bool_] | None = None
    ) -> NDArray[np.float64]:
        weights = values if mask is None else np.where(mask, values, 0.0)
        return np.bincount(i_site, weights=weights, minlength=n_sites).astype(np.float64)

    cultivated_m2 = per_site(net_area, cultivated)
    paddy_m2 = per_site(net_area, paddy)
    by_category = {c: per_site(area, category == c) for c in _CATEGORY_ORDER}
    table = pd.DataFrame(
        {
            "project_id": as_text_series(fixed.ids),
            "site_m2": site_m2,
            "cultivated_m2": cultivated_m2,
            "paddy_m2": paddy_m2,
            "agricultural_m2": by_category["agricultural"],
            "construction_m2": by_category["construction"],
            "unused_m2": by_category["unused"],
            # R3: agricultural (ridges included: they are 1203, agricultural) + unused.
            "new_quota_m2": by_category["agricultural"] + by_category["unused"],
            # R4: the three compensation dimensions.
            "comp_area_m2": cultivated_m2,
            "comp_paddy_m2": paddy_m2,
            "comp_grain_kg": per_site(grain),
        },
        columns=list(DEMAND_COLUMNS),
    )

    coverage = _coverage(fixed, site_m2, i_site, pieces_geom, measured.planar[order])
    if check_coverage:
        _check_coverage(coverage, tolerance_m2)

    pieces = gpd.GeoDataFrame(
        {
            "project_id": as_text_series(fixed.ids[i_site]),
            "parcel_id": as_text_series(measured.parcel_id[order]),
            "land_class": as_text_series(measured.land_class[order]),
            "category": as_text_series(category),
            "cultivated": cultivated,
            "paddy": paddy,
            "area_m2": area,
            "net_ratio": ratio,
            "net_area_m2": net_area,
            "grain_kg_per_m2": grain_rate,
            "grain_kg": grain,
        },
        geometry=gpd.GeoSeries(pieces_geom, crs=4490),
    )
    by_class = _by_class(pieces, fixed.ids)
    return DemandResult(
        table=table, pieces=pieces, by_class=by_class, coverage=coverage, not_fixed=fixed.not_fixed
    )


#: Largest |site − Σ pieces| (m², lon/lat plane) taken as an exact tiling; float
#: noise there is ~1e-9 m² on a 50 ha site.
_EXACT_M2: Final = 1e-6


def _coverage(
    fixed: FixedSites,
    site_m2: NDArray[np.float64],
    i_site: NDArray[np.intp],
    pieces: NDArray[np.object_],
    planar: NDArray[np.float64],
) -> pd.DataFrame:
    """Uncovered and doubly covered area of each site (checked against the tolerance).

    Measured in the lon/lat plane scaled to m² at the site's latitude
    (:func:`~landquota.rules.overlay.lonlat_area_m2`), not ellipsoidally: where a
    patch edge crosses a site edge the pieces get a vertex on the site's
    straight lon/lat edge, and a straight lon/lat edge is slightly curved in
    any equal-area plane (nor is it a geodesic in PostGIS), so site − Σ pieces
    measured ellipsoidally is ~1e-5 of a long-edged site (≈1 m² on 45 ha)
    where the patches cover it exactly. In the lon/lat plane it is ~1e-15.
    This is a check, not an official figure (R1 is untouched).

    Only sites whose pieces do not sum to the site area need the union of their
    pieces (gap = site − union, overlap = Σ pieces − union): per-site unions
    were most of the demand's time, and survey layers are meant to be clean.
    """
    n_sites = len(fixed.ids)
    scale = np.zeros(n_sites)
    present = ~(shapely.is_missing(fixed.geoms) | shapely.is_empty(fixed.geoms))
    planar_site = shapely.area(fixed.geoms)
    scale[present] = lonlat_area_m2(fixed.geoms[present]) / np.where(
        planar_site[present] > 0, planar_site[present], 1.0
    )
    planar_pieces = np.bincount(i_site, weights=planar, minlength=n_sites).astype(np.float64)
    # In the lon/lat plane pieces that tile a site exactly sum to its area to
    # ~1e-15; any other residual means a gap, an overlap, or both, and only those
    # sites need the union of their pieces to tell which. (A gap and an overlap
    # cancelling to within 1e-6 m² would pass as clean: not a real-world case.)
    exact = np.abs(planar_site - planar_pieces) * scale <= _EXACT_M2
    gap = np.zeros(n_sites)
    overlap = np.zeros(n_sites)
    slow = ~exact
    if slow.any():
        sel = slow[i_site]
        unions = union_by_group(pieces[sel], i_site[sel], n_sites)
        planar_union = shapely.area(unions)
        gap[slow] = np.maximum(planar_site[slow] - planar_union[slow], 0.0)
        overlap[slow] = np.maximum(planar_pieces[slow] - planar_union[slow], 0.0)
    uncovered = gap * scale
    return pd.DataFrame(
        {
            "project_id": as_text_series(fixed.ids),
            "site_m2": site_m2,
            "covered_m2": site_m2 - uncovered,
            "uncovered_m2": uncovered,
            "overlap_m2": overlap * scale,
        }
    )


def _check_coverage(coverage: pd.DataFrame, tolerance_m2: float) -> None:
    for column, what, fix in (
        (
            "uncovered_m2",
            "lies on no survey patch",
            "import the missing parcels (is the site outside the county?), or pass "
            "check_coverage=False to count that area in no category",
        ),
        (
            "overlap_m2",
            "is counted twice because survey patches overlap",
            "fix the parcel topology (`landquota validate` lists overlaps)",
        ),
    ):
        bad = coverage[coverage[column] > tolerance_m2]
        if len(bad):
            first = bad.iloc[0]
            raise DataError(
                f"projects: project_id {first['project_id']!r}: {first[column]:.2f} m² of the "
                f"site {what} (tolerance {tolerance_m2:g} m²; {len(bad)} site(s) affected); {fix}"
            )


def _by_class(pieces: gpd.GeoDataFrame, order: NDArray[Any]) -> pd.DataFrame:
    columns = [
        "project_id",
        "land_class",
        "category",
        "cultivated",
        "area_m2",
        "net_area_m2",
        "grain_kg",
    ]
    if pieces.empty:
        frame = pd.DataFrame({c: pd.Series(dtype="float64") for c in columns})
        for c in ("project_id", "land_class", "category"):
            frame[c] = frame[c].astype("str")
        frame["cultivated"] = frame["cultivated"].astype(bool)
        return frame
    grouped = (
        pd.DataFrame(pieces.drop(columns="geometry"))
        .groupby(
            ["project_id", "land_class", "category", "cultivated"], sort=False, as_index=False
        )[["area_m2", "net_area_m2", "grain_kg"]]
        .sum()
    )
    rank = {pid: k for k, pid in enumerate(order)}
    grouped["_rank"] = grouped["project_id"].map(rank)
    grouped = grouped.sort_values(["_rank", "land_class"], kind="stable").drop(columns="_rank")
    return grouped.reset_index(drop=True)[columns]
