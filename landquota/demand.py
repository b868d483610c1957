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
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota._overlay import (
    as_text_series,
    check_frame,
    check_polygons,
    fixed_sites,
    polygonal,
    site_pairs,
    union_by_group,
)
from landquota._progress import progress_bar
from landquota.areas import ellipsoidal_area
from landquota.errors import DataError, ParameterError
from landquota.landclasses import LAND_CLASSES, category_of, grain_yields, normalize_code

__all__ = ["DEMAND_COLUMNS", "NET_RATIO_TOLERANCE", "DemandResult", "demand_from_sites"]

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
    parcels: gpd.GeoDataFrame,
    rows: NDArray[np.intp],
    geoms: NDArray[np.object_],
    parcel_ids: NDArray[np.object_],
) -> NDArray[np.float64]:
    """TBDLMJ / TBMJ of each hit patch (R2), with the patch's ellipsoidal area as TBMJ if absent."""
    sub = parcels.iloc[rows]
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
    measured = np.full(len(rows), np.nan)
    if (~has_gross).any():
        measured[~has_gross] = ellipsoidal_area(geoms[~has_gross], name="parcels")
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
        own, replacing :data:`landquota.landclasses.DEFAULT_GRAIN_KG_PER_M2` for
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
    n_sites = len(fixed.ids)
    site_m2 = ellipsoidal_area(fixed.geoms, name="projects")

    # Candidate pairs through the STRtree, in chunks of sites so that memory
    # stays bounded and a progress bar can move.
    parcel_geoms = np.asarray(parcels.geometry.array, dtype=object)
    tree = shapely.STRtree(parcel_geoms)
    site_idx: list[NDArray[np.intp]] = []
    parcel_idx: list[NDArray[np.intp]] = []
    with progress_bar(n_sites, "demand: site × parcel", enabled=progress) as bar:
        for start in range(0, n_sites, _SITES_PER_CHUNK):
            chunk = fixed.geoms[start : start + _SITES_PER_CHUNK]
            i, j = site_pairs(chunk, tree)
            site_idx.append(i + start)
            parcel_idx.append(j)
            bar.update(len(chunk))
    i_site = np.concatenate(site_idx) if site_idx else np.empty(0, dtype=np.intp)
    j_parcel = np.concatenate(parcel_idx) if parcel_idx else np.empty(0, dtype=np.intp)
    order = np.lexsort((j_parcel, i_site))  # pieces in site order, then patch order
    i_site, j_parcel = i_site[order], j_parcel[order]

    # Only the patches a site touches are checked and measured: validate checks
    # the whole layer; here a bad patch elsewhere must not stop a site's figures.
    hit, j_local = np.unique(j_parcel, return_inverse=True)
    hit_ids = parcels["parcel_id"].astype(object).to_numpy()[hit]
    hit_geoms = np.asarray(shapely.force_2d(parcel_geoms[hit]), dtype=object)
    check_polygons(hit_geoms, hit_ids, layer="parcels", id_column="parcel_id")
    raw_codes = parcels["land_class"].iloc[hit]
    hit_category = category_of(raw_codes, where="parcels.land_class")  # unknown codes raise
    hit_codes = np.array([normalize_code(c) for c in raw_codes], dtype=object)
    hit_cultivated = np.array([LAND_CLASSES[c].cultivated for c in hit_codes], dtype=bool)
    hit_paddy = np.array([LAND_CLASSES[c].paddy for c in hit_codes], dtype=bool)
    hit_ratio = _net_ratios(parcels, hit, hit_geoms, hit_ids)
    own_yield = _float_column(parcels.iloc[hit], "grain_kg_per_m2")
    if (own_yield < 0).any():
        bad = hit_ids[own_yield < 0]
        raise DataError(f"parcels: parcel_id {bad[0]!r} has grain_kg_per_m2 < 0; give a yield ≥ 0")
    default_yield = np.array([yields.get(c, np.nan) for c in hit_codes], dtype=np.float64)
    hit_yield = np.where(
        hit_cultivated, np.where(np.isfinite(own_yield), own_yield, default_yield), np.nan
    )

    # Vectorised intersection and ellipsoidal areas (R1) of the pieces.
    pieces_geom = polygonal(
        np.asarray(shapely.intersection(fixed.geoms[i_site], hit_geoms[j_local]), dtype=object)
    )
    area = ellipsoidal_area(pieces_geom, name="pieces") if len(pieces_geom) else np.empty(0)
    keep = area > 0
    i_site, j_local, pieces_geom, area = i_site[keep], j_local[keep], pieces_geom[keep], area[keep]

    ratio = hit_ratio[j_local]
    net_area = area * ratio  # R2
    cultivated = hit_cultivated[j_local]
    paddy = hit_paddy[j_local]
    category = hit_category[j_local]
    grain_rate = hit_yield[j_local]
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

    covered = ellipsoidal_area(union_by_group(pieces_geom, i_site, n_sites), name="pieces")
    coverage = pd.DataFrame(
        {
            "project_id": as_text_series(fixed.ids),
            "site_m2": site_m2,
            "covered_m2": covered,
            "uncovered_m2": np.maximum(site_m2 - covered, 0.0),
            "overlap_m2": np.maximum(per_site(area) - covered, 0.0),
        }
    )
    if check_coverage:
        _check_coverage(coverage, tolerance_m2)

    parcel_id = hit_ids[j_local]
    pieces = gpd.GeoDataFrame(
        {
            "project_id": as_text_series(fixed.ids[i_site]),
            "parcel_id": as_text_series(parcel_id),
            "land_class": as_text_series(hit_codes[j_local]),
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
