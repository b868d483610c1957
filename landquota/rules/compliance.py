"""Plan compliance of fixed project sites (R13–R15) and their approval level (R14).

:func:`compliance_of_sites` overlays each fixed site with the control lines
(三区三线: permanent basic farmland, ecological protection red line, urban
development boundary) and the construction-control zones of the land-use
master plan (allowed, conditional, restricted, prohibited), and decides:

========================  ===============================  ==================
overlap (> tolerance)     reason code                      outcome
========================  ===============================  ==================
basic farmland (R13)      ``basic_farmland``               blocked
  … national exception    (none)                           allowed, State Council
eco red line (R15)        ``eco_redline``                  blocked
prohibited zone (R15)     ``prohibited_zone``              blocked
restricted zone (R15)     ``restricted_zone``              needs_adjustment
conditional zone (R15)    ``conditional_zone_needs_adjustment``  needs_adjustment
outside every zone        ``outside_plan_zones``           needs_adjustment
========================  ===============================  ==================

Precedence: ``blocked`` beats ``needs_adjustment`` beats ``allowed``; every
reason that applies is listed, in the order of the table. Overlaps of at most
``tolerance_m2`` are digitising slivers: ignored, and listed in
``ignored_slivers``. See ``docs/accounting.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray
from pyproj import CRS

from landquota._parallel import chunked
from landquota.errors import CRSError, DataError, ParameterError
from landquota.rules.demand import DemandResult
from landquota.rules.overlay import (
    Centre,
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
from landquota.rules.thresholds import area_exceeds

__all__ = [
    "COMPLIANCE_COLUMNS",
    "OUTCOMES",
    "REASONS",
    "STATE_COUNCIL_CULTIVATED_M2",
    "STATE_COUNCIL_OTHER_M2",
    "compliance_of_sites",
]

#: Outcomes, from best to worst (``compliance`` in ``demand --out``).
OUTCOMES: Final = ("allowed", "needs_adjustment", "blocked")

#: Reason codes in the order they are listed, each with the outcome it forces.
REASONS: Final[dict[str, str]] = {
    "basic_farmland": "blocked",  # R13
    "eco_redline": "blocked",  # R15
    "prohibited_zone": "blocked",  # R15
    "restricted_zone": "needs_adjustment",  # R15
    "conditional_zone_needs_adjustment": "needs_adjustment",  # R15
    "outside_plan_zones": "needs_adjustment",
}

#: R14: more than 35 ha of cultivated land outside basic farmland needs the State Council
#: (Land Administration Law 2019 Art. 46: 永久基本农田以外的耕地超过三十五公顷的).
STATE_COUNCIL_CULTIVATED_M2: Final = 350_000.0
#: R14: more than 70 ha of other land needs the State Council (Art. 46: 其他土地超过七十公顷的).
STATE_COUNCIL_OTHER_M2: Final = 700_000.0

#: Columns of the result, in order.
COMPLIANCE_COLUMNS: Final[tuple[str, ...]] = (
    "project_id",
    "site_m2",
    "basic_farmland_m2",
    "eco_redline_m2",
    "urban_boundary_m2",
    "allowed_m2",
    "conditional_m2",
    "restricted_m2",
    "prohibited_m2",
    "unzoned_m2",
    "adjusted_m2",
    "other_cultivated_m2",
    "other_land_m2",
    "national_exception",
    "outcome",
    "reasons",
    "approval_level",
    "tolerance_m2",
    "ignored_slivers",
)

_CONTROL_KINDS: Final = ("basic_farmland", "eco_redline", "urban_boundary")
_ZONE_TYPES: Final = ("allowed", "conditional", "restricted", "prohibited")
_EMPTY: Final = shapely.from_wkt("MULTIPOLYGON EMPTY")


def _select_version(
    frame: gpd.GeoDataFrame, plan_version: str | None, *, layer: str
) -> gpd.GeoDataFrame:
    if plan_version is None:
        return frame
    versions = sorted(frame["plan_version"].dropna().astype(str).unique())
    if len(frame) and plan_version not in versions:
        raise ParameterError(
            f"plan_version={plan_version!r} is not in {layer}; its versions are "
            f"{', '.join(map(repr, versions))}"
        )
    return frame[frame["plan_version"].astype(str) == plan_version]


def _check_codes(frame: gpd.GeoDataFrame, column: str, allowed: Sequence[str], layer: str) -> None:
    values = frame[column]
    bad = sorted({repr(v) for v in values[~values.isin(allowed)]})
    if bad:
        raise DataError(
            f"{layer}: {column} has value(s) {', '.join(bad)}; allowed are "
            f"{', '.join(map(repr, allowed))}"
        )


def _overlaps(
    site_geoms: NDArray[np.object_], features: NDArray[np.object_]
) -> NDArray[np.object_]:
    """Per site: site ∩ (union of *features*), as a MultiPolygon (empty when none)."""
    n = len(site_geoms)
    if len(features) == 0 or n == 0:
        return np.array([_EMPTY] * n, dtype=object)
    i, j = site_pairs(site_geoms, shapely.STRtree(features))
    pieces = polygonal(np.asarray(shapely.intersection(site_geoms[i], features[j]), dtype=object))
    return union_by_group(pieces, i, n)


def _layer_geoms(frame: gpd.GeoDataFrame, *, layer: str, id_column: str) -> NDArray[np.object_]:
    geoms = np.asarray(shapely.force_2d(np.asarray(frame.geometry.array, dtype=object)))
    check_polygons(
        geoms, frame[id_column].astype(object).to_numpy(), layer=layer, id_column=id_column
    )
    return np.asarray(geoms, dtype=object)


def _adjusted_geoms(adjusted: Any) -> NDArray[np.object_]:
    if not isinstance(adjusted, gpd.GeoSeries | gpd.GeoDataFrame):
        raise ParameterError(
            "adjusted_allowed must be a GeoSeries (EPSG:4490) or None; "
            f"got {type(adjusted).__name__}"
        )
    if adjusted.crs is None or CRS.from_user_input(adjusted.crs) != CRS.from_epsg(4490):
        shown = None if adjusted.crs is None else CRS.from_user_input(adjusted.crs).to_string()
        raise CRSError(
            f"adjusted_allowed: CRS is {shown!r}, expected 'EPSG:4490' (CGCS2000); "
            "set or reproject it with .set_crs(4490) / .to_crs(4490)"
        )
    geoms = np.asarray(shapely.force_2d(np.asarray(adjusted.geometry.array, dtype=object)))
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    check_polygons(
        np.asarray(geoms, dtype=object),
        np.arange(len(geoms)),
        layer="adjusted_allowed",
        id_column="position",
    )
    return np.asarray(geoms, dtype=object)


def _cultivated_in(
    demand: DemandResult,
    ids: NDArray[np.object_],
    bf: NDArray[np.object_],
    centre: Centre | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Cultivated net area per site (R2) and its part inside basic farmland."""
    table = demand.table.set_index("project_id")
    missing = [str(p) for p in ids if p not in table.index]
    if missing:
        raise DataError(
            f"demand has no row for project_id {', '.join(map(repr, missing[:5]))}; compute "
            "demand_from_sites for the same sites"
        )
    cultivated = table.loc[list(ids), "cultivated_m2"].to_numpy(dtype=np.float64)
    pieces = demand.pieces[demand.pieces["cultivated"].to_numpy(dtype=bool)]
    position = {p: k for k, p in enumerate(ids)}
    site_of = pieces["project_id"].map(position)
    pieces = pieces[site_of.notna().to_numpy()]
    k = site_of.dropna().to_numpy(dtype=np.intp)
    piece_geoms = np.asarray(pieces.geometry.array, dtype=object)
    # pairwise, so on the threads (GEOS releases the GIL) with the same pieces
    inside = polygonal(
        np.asarray(
            chunked(lambda r: shapely.intersection(piece_geoms[r], bf[k[r]]), np.arange(len(k))),
            dtype=object,
        )
    )
    net = measure(inside, centre, name="pieces") * pieces["net_ratio"].to_numpy(dtype=np.float64)
    in_bf = np.bincount(k, weights=net, minlength=len(ids)).astype(np.float64)
    return cultivated, in_bf


def compliance_of_sites(
    sites: gpd.GeoDataFrame,
    plan_zones: gpd.GeoDataFrame | None,
    control_lines: gpd.GeoDataFrame,
    *,
    demand: DemandResult | None = None,
    tolerance_m2: float = 1.0,
    adjusted_allowed: gpd.GeoSeries | None = None,
    plan_version: str | None = None,
    centre: tuple[float, float] | None = None,
) -> pd.DataFrame:
    """Compliance (R13, R15) and approval level (R14) of every fixed project site.

    Parameters
    ----------
    sites : geopandas.GeoDataFrame
        The ``projects`` layer: ``project_id``, the site geometry (EPSG:4490),
        optional ``site_fixed`` and ``national_exception`` (R13; taken as False
        when the column is absent). Sites not fixed are skipped.
    plan_zones : geopandas.GeoDataFrame or None
        The ``plan_zones`` layer (``zone_id``, ``zone_type``, ``plan_version``).
        None skips the zone rules (a territorial plan with control lines only):
        the zone columns are then NaN.
    control_lines : geopandas.GeoDataFrame
        The ``control_lines`` layer (``line_id``, ``kind``, ``plan_version``).
    demand : DemandResult, optional
        Demand of the same sites; gives the cultivated area outside basic
        farmland and the other land for R14. Without it the approval level is
        given only when the site area alone decides it (else missing).
    tolerance_m2 : float, default 1.0
        Overlaps of at most this area (per site and rule) are slivers: ignored
        and listed in ``ignored_slivers``.
    adjusted_allowed : geopandas.GeoSeries, optional
        Area a scenario's plan adjustment (R16) turns into allowed zone. It
        overrides the conditional and restricted zones and unzoned land, never
        the prohibited zone nor the control lines.
    plan_version : str, optional
        Plan version of the zones and lines to use; required when the layers
        hold more than one.
    centre : (lon, lat), optional
        Centre of the one equal-area projection in which every area is measured
        (R1); default: the middle of the fixed sites' extent. Fixing it makes a
        site's figures independent of the other sites (the Dask engine passes
        the whole run's centre to each chunk of sites).

    Returns
    -------
    pandas.DataFrame
        One row per fixed site, columns :data:`COMPLIANCE_COLUMNS`: overlap
        areas in m² (ellipsoidal, R1; zone areas after the adjustment),
        ``other_cultivated_m2`` and ``other_land_m2`` (R14), ``outcome``
        (allowed, needs_adjustment, blocked), ``reasons`` (comma-separated
        codes, '' when none), ``approval_level`` (province, state_council, or
        missing when undecidable without *demand*), ``tolerance_m2`` and
        ``ignored_slivers`` (``code:area`` pairs, comma-separated).

    Raises
    ------
    DataError
        Missing columns, duplicate ids, bad codes or geometries, or a site
        missing from *demand*.
    CRSError
        If a layer is not in EPSG:4490 (the message names it).
    ParameterError
        For a bad *tolerance_m2*, *plan_version* or *adjusted_allowed*.
    """
    if not (tolerance_m2 >= 0):
        raise ParameterError(f"tolerance_m2={tolerance_m2!r}; give an area ≥ 0 in m²")
    fixed = fixed_sites(sites)
    frame = sites.iloc[fixed.rows]
    if "national_exception" in frame.columns:
        flag = frame["national_exception"]
        if flag.isna().any():
            raise DataError(
                "projects: national_exception is missing for project_id "
                f"{frame.loc[flag.isna(), 'project_id'].iloc[0]!r}; set it to True or False (R13)"
            )
        exception = flag.to_numpy(dtype=bool)
    else:
        exception = np.zeros(len(frame), dtype=bool)

    lines = check_frame(
        control_lines, layer="control_lines", id_column="line_id", required=("kind", "plan_version")
    )
    zones = (
        None
        if plan_zones is None
        else check_frame(
            plan_zones,
            layer="plan_zones",
            id_column="zone_id",
            required=("zone_type", "plan_version"),
        )
    )
    if plan_version is None:
        versions = sorted(
            {str(v) for f in (lines, zones) if f is not None for v in f["plan_version"].dropna()}
        )
        if len(versions) > 1:
            raise ParameterError(
                f"the plan layers hold versions {', '.join(map(repr, versions))}; "
                "choose one with plan_version=…"
            )
    lines = _select_version(lines, plan_version, layer="control_lines")
    if zones is not None:
        zones = _select_version(zones, plan_version, layer="plan_zones")
    _check_codes(lines, "kind", _CONTROL_KINDS, "control_lines")
    line_geoms = _layer_geoms(lines, layer="control_lines", id_column="line_id")
    kinds = lines["kind"].to_numpy()

    s = fixed.geoms
    n = len(s)
    if centre is None:
        centre = sites_centre(s)
    site_m2 = measure(s, centre, name="projects")
    over = {k: _overlaps(s, line_geoms[kinds == k]) for k in _CONTROL_KINDS}
    area = {k: measure(g, centre, name=k) for k, g in over.items()}

    adjusted_m2 = np.zeros(n)
    if zones is not None:
        _check_codes(zones, "zone_type", _ZONE_TYPES, "plan_zones")
        zone_geoms = _layer_geoms(zones, layer="plan_zones", id_column="zone_id")
        types = zones["zone_type"].to_numpy()
        zg = {t: _overlaps(s, zone_geoms[types == t]) for t in _ZONE_TYPES}
        j = (
            _overlaps(s, _adjusted_geoms(adjusted_allowed))
            if adjusted_allowed is not None
            else np.array([_EMPTY] * n, dtype=object)
        )
        # The adjustment turns conditional, restricted and unzoned land into
        # allowed land (R15/R16); it cannot lift the prohibited zone.
        moved = shapely.difference(shapely.difference(j, zg["allowed"]), zg["prohibited"])
        effective = {
            "allowed": shapely.union(zg["allowed"], moved),
            "conditional": shapely.difference(zg["conditional"], j),
            "restricted": shapely.difference(zg["restricted"], j),
            "prohibited": zg["prohibited"],
        }
        zoned = shapely.union_all(np.stack([*zg.values(), j]), axis=0)
        for t in _ZONE_TYPES:
            area[t] = measure(polygonal(np.asarray(effective[t], dtype=object)), centre, name=t)
        if adjusted_allowed is not None:
            # What an adjustment leaves of the conditional and restricted zones is a
            # difference: its degenerate slivers along a long site's edges weigh up to
            # tens of m² ellipsoidally (see lonlat_area_m2) and would keep a site the
            # adjustment frees "needs_adjustment". Nothing in the lon/lat plane is
            # nothing (R15, R16).
            for t in ("conditional", "restricted"):
                flat = lonlat_area_m2(polygonal(np.asarray(effective[t], dtype=object)))
                area[t] = np.where(flat <= tolerance_m2, flat, area[t])
        # Measured in the scaled lon/lat plane: site − zones leaves degenerate
        # slivers along zone edges that weigh ~1 m² ellipsoidally (see
        # lonlat_area_m2) and would trip the tolerance with no gap at all.
        area["unzoned"] = lonlat_area_m2(
            polygonal(np.asarray(shapely.difference(s, zoned), dtype=object))
        )
        adjusted_m2 = measure(polygonal(np.asarray(moved, dtype=object)), centre, name="adjusted")
    else:
        for t in (*_ZONE_TYPES, "unzoned"):
            area[t] = np.full(n, np.nan)
        if adjusted_allowed is not None:
            raise ParameterError(
                "adjusted_allowed was given without plan_zones; an adjustment changes zones"
            )

    # Reasons (R13, R15), sliver tolerance, outcome by precedence.
    triggers = {
        "basic_farmland": area["basic_farmland"],
        "eco_redline": area["eco_redline"],
        "prohibited_zone": area["prohibited"],
        "restricted_zone": area["restricted"],
        "conditional_zone_needs_adjustment": area["conditional"],
        "outside_plan_zones": area["unzoned"],
    }
    reasons: list[str] = []
    outcomes: list[str] = []
    slivers: list[str] = []
    for k in range(n):
        found: list[str] = []
        ignored: list[str] = []
        for code, values in triggers.items():
            value = float(values[k])
            if not value > 0:  # 0 or NaN (rule not applied)
                continue
            if value <= tolerance_m2:
                ignored.append(f"{code}:{value:.2f}")
            elif not (code == "basic_farmland" and exception[k]):  # R13 exception
                found.append(code)
        worst = max((OUTCOMES.index(REASONS[c]) for c in found), default=0)
        reasons.append(",".join(found))
        outcomes.append(OUTCOMES[worst])
        slivers.append(",".join(ignored))

    # R14 approval level.
    bf_m2 = area["basic_farmland"]
    takes_bf = bf_m2 > tolerance_m2
    rest = np.maximum(site_m2 - np.where(takes_bf, bf_m2, 0.0), 0.0)
    if demand is not None:
        cultivated, in_bf = _cultivated_in(demand, fixed.ids, over["basic_farmland"], centre)
        other_cultivated = np.maximum(cultivated - np.where(takes_bf, in_bf, 0.0), 0.0)
        other_land = np.maximum(rest - other_cultivated, 0.0)
        # R14, Land Administration Law 2019 Art. 46: "超过" is strict and the areas are
        # compared at 0.01 m² (rules.thresholds), so exactly 35 ha / 70 ha stay with
        # the province however the float came out (350000.00000000006 m² is 35 ha).
        state_council = (
            takes_bf
            | area_exceeds(other_cultivated, STATE_COUNCIL_CULTIVATED_M2)
            | area_exceeds(other_land, STATE_COUNCIL_OTHER_M2)
        )
        level = np.where(state_council, "state_council", "province").astype(object)
    else:
        other_cultivated = np.full(n, np.nan)
        other_land = np.full(n, np.nan)
        # Without the cultivated split only the total can decide: other cultivated +
        # other land = rest, so rest > 35 + 70 ha forces one threshold and rest
        level = np.full(n, np.nan, dtype=object)
        # ≤ 35 ha forces neither. At 0.01 m² two parts each at most their threshold sum
        # to at most 105 ha + 0.01 m² (each may round down by up to half a unit), so
        # only a rest above that forces the State Council (Art. 46, rules.thresholds).
        level[~area_exceeds(rest, STATE_COUNCIL_CULTIVATED_M2)] = "province"
        both = STATE_COUNCIL_CULTIVATED_M2 + STATE_COUNCIL_OTHER_M2 + 0.01
        level[area_exceeds(rest, both)] = "state_council"
        level[takes_bf] = "state_council"

    result = pd.DataFrame(
        {
            "project_id": as_text_series(fixed.ids),
            "site_m2": site_m2,
            "basic_farmland_m2": bf_m2,
            "eco_redline_m2": area["eco_redline"],
            "urban_boundary_m2": area["urban_boundary"],
            "allowed_m2": area["allowed"],
            "conditional_m2": area["conditional"],
            "restricted_m2": area["restricted"],
            "prohibited_m2": area["prohibited"],
            "unzoned_m2": area["unzoned"],
            "adjusted_m2": adjusted_m2,
            "other_cultivated_m2": other_cultivated,
            "other_land_m2": other_land,
            "national_exception": exception,
            "outcome": pd.Series(outcomes, dtype="str"),
            "reasons": pd.Series(reasons, dtype="str"),
            "approval_level": pd.Series(level, dtype="str"),
            "tolerance_m2": np.full(n, float(tolerance_m2)),
            "ignored_slivers": pd.Series(slivers, dtype="str"),
        },
        columns=list(COMPLIANCE_COLUMNS),
    )
    return result
