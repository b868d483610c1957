"""Quality rules of a workspace: ``landquota validate`` (LQ-001 … LQ-021).

Each rule has a number, a severity and a message that names the feature and says
how to fix it. *Blocking* findings make allocation refuse the workspace unless
forced (the run is then recorded with ``forced = true``); *warnings* are shown but
do not block. The rules and their tolerances are listed in :data:`RULES` and in
``docs/import.md``.

=========  ========  =================================================================
rule       severity  finding
=========  ========  =================================================================
LQ-001     blocking  ids equal except for case or blanks (``'P1'`` and ``' p1'``)
LQ-002     blocking  unknown land class code (not GB/T 21010-2017 or third survey)
LQ-003     blocking  TBDLMJ ≠ TBMJ − KCMJ by more than 0.1 m² (R2)
LQ-004     blocking  survey patches overlap by more than 1 m² (with the overlap area)
LQ-005     both      a feature outside the county boundary: blocking when wholly
                     outside, a warning when a part of more than 1 m² is outside
LQ-006     blocking  a linkage plot whose linkage area does not exist (orphan plot)
LQ-007     blocking  stock-land dates out of order (approval ≤ supply ≤ agreed start
                     ≤ actual start; suspension after the start; disposal after approval)
LQ-008     blocking  stock-land kind contradicts its dates (approved-unsupplied with
                     a supply date, supplied without one)
LQ-009     blocking  a project with neither a fixed site nor a land demand, or marked
                     ``site_fixed`` without a site geometry
LQ-010     blocking  a linkage plot claims more reclaimed area than it has, or more
                     reclaimed cultivated than reclaimed area (R7)
LQ-011     warning   TBMJ differs from the patch's ellipsoidal area by more than 1 %
                     (wrong CRS or units such as mu) (R1)
LQ-012     blocking  plan zones of one plan version overlap by more than 1 m²
LQ-013     blocking  invalid or empty geometry (written by another program)
LQ-014     warning   no county boundary: LQ-005 could not run
LQ-015     warning   a linkage area without any plots
LQ-016     warning   an approval stage that finishes before it starts (issue 14)
LQ-017     warning   construction started before the land was supplied, or with no
                     supply finished (issue 14)
LQ-018     warning   a monthly return lower than the project's earlier return of the
                     same year: cumulative figures never fall (R17)
LQ-019     warning   a stage, monthly return, visit or meeting decision naming a
                     project that is not in ``projects``
LQ-020     warning   a visit or a stage's cadre naming a staff id not in ``staff``
LQ-021     blocking  the ledger's hash chain does not verify: the first bad record,
                     as ``landquota verify`` names it (issue 12)
=========  ========  =================================================================

LQ-016 … LQ-020 find pipeline rows that bypassed the write-time checks
(:mod:`landquota.store.pipeline_check`; rows written by another program with
sqlite3 or psql). They are warnings: the pipeline tables feed the monthly
bulletin and the staff lists, not the allocation, so they do not block it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.errors import ValidationBlockedError
from landquota.store.schema import CRS_EPSG, LAYERS
from landquota.store.workspace import Frame, Workspace

__all__ = [
    "RULES",
    "ValidationReport",
    "blocking_errors",
    "require_valid",
    "validate_frames",
    "validate_workspace",
]

#: rule -> (severity, short title). LQ-005 is blocking or a warning by case.
RULES: Mapping[str, tuple[str, str]] = {
    "LQ-001": ("blocking", "duplicate id (ignoring case and blanks)"),
    "LQ-002": ("blocking", "unknown land class code"),
    "LQ-003": ("blocking", "TBDLMJ differs from TBMJ − KCMJ"),
    "LQ-004": ("blocking", "overlapping survey patches"),
    "LQ-005": ("blocking", "feature outside the county boundary"),
    "LQ-006": ("blocking", "linkage plot without its linkage area"),
    "LQ-007": ("blocking", "stock-land dates out of order"),
    "LQ-008": ("blocking", "stock-land kind contradicts its dates"),
    "LQ-009": ("blocking", "project without site and without demand"),
    "LQ-010": ("blocking", "linkage plot reclaims more than it has"),
    "LQ-011": ("warning", "TBMJ differs from the ellipsoidal area"),
    "LQ-012": ("blocking", "overlapping plan zones"),
    "LQ-013": ("blocking", "invalid or empty geometry"),
    "LQ-014": ("warning", "no county boundary"),
    "LQ-015": ("warning", "linkage area without plots"),
    "LQ-016": ("warning", "stage finishes before it starts"),
    "LQ-017": ("warning", "construction before supply"),
    "LQ-018": ("warning", "monthly return falls (R17)"),
    "LQ-019": ("warning", "pipeline row naming an unknown project"),
    "LQ-020": ("warning", "pipeline row naming an unknown staff id"),
    "LQ-021": ("blocking", "ledger does not verify"),
}

#: LQ-003: survey areas carry two decimals; anything beyond rounding is an error.
AREA_TOL_M2 = 0.1
#: LQ-004, LQ-005, LQ-012: overlaps smaller than this are coordinate noise at
#: shared edges (1 m² is a 1 m × 1 m sliver; survey tolerances are coarser).
OVERLAP_TOL_M2 = 1.0
#: LQ-011: relative difference between TBMJ and the ellipsoidal area (R1).
GROSS_REL_TOL = 0.01

_SPATIAL_CHECKED = ("towns", "parcels", "plan_zones", "control_lines", "stock_land", "linkage_plots", "projects")
_GEOGRAPHIC = f"EPSG:{CRS_EPSG}"


@dataclass
class ValidationReport:
    """Findings of :func:`validate_workspace`.

    Attributes
    ----------
    errors : GeoDataFrame
        One row per finding, the columns of the ``validation_errors`` layer.
    blocking, warnings : int
        Number of blocking findings and of warnings.
    by_rule : dict
        Rule → number of findings.
    csv : Path or None
        Where the CSV was written.
    """

    errors: gpd.GeoDataFrame
    blocking: int = 0
    warnings: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    csv: Path | None = None

    @property
    def ok(self) -> bool:
        """True when nothing blocks allocation."""
        return self.blocking == 0

    def summary(self) -> str:
        """Return a short Chinese/English summary for the command line."""
        lines = [
            f"校验 validation: {self.blocking} 个阻断性错误 blocking, {self.warnings} 个警告 warnings"
        ]
        for rule, n in sorted(self.by_rule.items()):
            lines.append(f"  {rule} {RULES[rule][1]}: {n}")
        for r in self.errors.head(10).itertuples():
            lines.append(f"  [{r.rule} {r.severity}] {r.layer} {r.feature_id}: {r.message}")
        if self.csv is not None:
            lines.append(f"CSV: {self.csv}")
        if self.blocking:
            lines.append("分配将被拒绝 allocation will refuse this workspace until these are fixed (or --force)")
        return "\n".join(lines)


class _Findings:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(
        self, rule: str, layer: str, feature_id: Any, message: str, geom: Any = None, severity: str | None = None
    ) -> None:
        self.rows.append(
            {
                "rule": rule,
                "severity": severity or RULES[rule][0],
                "layer": layer,
                "feature_id": None if feature_id is None else str(feature_id),
                "message": message,
                "geometry": _multi(geom),
            }
        )


def _multi(g: Any) -> shapely.Geometry | None:
    """Return the polygonal part of *g* as a MultiPolygon (the layer's contract), or None."""
    if g is None or not isinstance(g, shapely.Geometry) or shapely.is_empty(g):
        return None
    polys = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in (3, 6)]
    parts: list[shapely.Polygon] = []
    for p in polys:
        parts += list(shapely.get_parts(p))
    parts = [p for p in parts if not shapely.is_empty(p)]
    return shapely.MultiPolygon(parts) if parts else None


# --------------------------------------------------------------------------------------
# the rules, on frames
# --------------------------------------------------------------------------------------
def validate_frames(
    frames: Mapping[str, Frame], *, checked_at: pd.Timestamp | None = None
) -> gpd.GeoDataFrame:
    """Run every rule on in-memory layers; return the findings.

    Parameters
    ----------
    frames : mapping of layer name to frame
        Frames as :meth:`Workspace.read_layer` returns them; absent layers are
        treated as empty.
    checked_at : Timestamp, optional
        Time stamp of the findings (default: now, UTC).

    Returns
    -------
    GeoDataFrame
        The columns of the ``validation_errors`` layer, sorted by rule, layer
        and feature id; ``error_id`` is ``rule:layer:feature_id`` (stable, so
        re-validating an unchanged workspace gives the same rows).
    """
    f = _Findings()

    def get(name: str) -> Frame | None:
        return frames.get(name)

    for name in LAYERS:
        df = get(name)
        if df is not None and len(df) and name != "validation_errors":
            _lq001(f, name, df)
            if LAYERS[name].geometry and isinstance(df, gpd.GeoDataFrame):
                _lq013(f, name, df)
    parcels = get("parcels")
    if parcels is not None and len(parcels):
        _lq002(f, parcels)
        _lq003(f, parcels)
        _lq004_012(f, "parcels", "LQ-004", parcels)
        _lq011(f, parcels)
    zones = get("plan_zones")
    if zones is not None and len(zones):
        for _, grp in zones.groupby("plan_version", sort=True):
            _lq004_012(f, "plan_zones", "LQ-012", grp.reset_index(drop=True))
    county = get("county")
    if county is None or not len(county):
        if any(len(frames.get(n, ())) for n in _SPATIAL_CHECKED):
            f.add("LQ-014", "county", None, "the workspace has no county boundary, so LQ-005 (features "
                  "outside the county) was not checked; import it with `landquota import BOUNDARY --layer county`")
    else:
        for name in _SPATIAL_CHECKED:
            df = get(name)
            if df is not None and len(df):
                _lq005(f, name, df, county)
    plots, areas = get("linkage_plots"), get("linkage_areas")
    _lq006_010_015(f, plots, areas)
    stock = get("stock_land")
    if stock is not None and len(stock):
        _lq007_008(f, stock)
    projects = get("projects")
    if projects is not None and len(projects):
        _lq009(f, projects)
    _lq016_020(f, frames)
    return _frame(f, checked_at)


def _frame(f: _Findings, checked_at: pd.Timestamp | None) -> gpd.GeoDataFrame:
    t = checked_at if checked_at is not None else pd.Timestamp.now(tz="UTC").floor("ms")
    cols = ["error_id", "rule", "severity", "layer", "feature_id", "message", "checked_at"]
    if not f.rows:
        empty = pd.DataFrame({c: pd.Series(dtype="str") for c in cols})
        empty["checked_at"] = pd.Series(dtype="datetime64[ns, UTC]")
        return gpd.GeoDataFrame(empty, geometry=gpd.GeoSeries([], crs=_GEOGRAPHIC), crs=_GEOGRAPHIC)
    df = pd.DataFrame(f.rows)
    df = df.sort_values(["rule", "layer", "feature_id"], kind="stable", na_position="first").reset_index(drop=True)
    base = df["rule"] + ":" + df["layer"] + ":" + df["feature_id"].fillna("-")
    n = base.groupby(base).cumcount()
    df["error_id"] = base.where(n == 0, base + "#" + (n + 1).astype(str))
    df["checked_at"] = t
    geoms = df.pop("geometry").to_numpy(dtype=object)
    return gpd.GeoDataFrame(df[cols], geometry=geoms, crs=_GEOGRAPHIC)


def _ids(df: Frame, name: str) -> pd.Series:
    return df[LAYERS[name].id_column].astype(str)


def _geoms(df: Frame) -> NDArray[np.object_]:
    return np.asarray(df.geometry.values, dtype=object)


def _lq001(f: _Findings, name: str, df: Frame) -> None:
    ids = _ids(df, name)
    key = ids.str.strip().str.upper()
    dup = key.duplicated(keep=False) & ~ids.duplicated(keep=False)
    for _, grp in ids[dup].groupby(key[dup], sort=True):
        vals = sorted(grp.tolist())
        for v in vals:
            others = ", ".join(repr(o) for o in vals if o != v)
            f.add("LQ-001", name, v, f"id {v!r} equals {others} except for case or blanks; ids "
                  "must be unique — give one of them another id")


def _lq013(f: _Findings, name: str, df: gpd.GeoDataFrame) -> None:
    g = _geoms(df)
    ids = _ids(df, name)
    missing = shapely.is_missing(g) | shapely.is_empty(g)
    if LAYERS[name].geometry_required:
        for i in np.flatnonzero(missing):
            f.add("LQ-013", name, ids.iloc[i], "empty geometry; re-import the feature with its shape "
                  "(`landquota import` rejects empty shapes)")
    present = ~missing
    bad = np.zeros(len(g), dtype=bool)
    bad[present] = ~shapely.is_valid(g[present])
    for i in np.flatnonzero(bad):
        f.add("LQ-013", name, ids.iloc[i], f"invalid geometry ({shapely.is_valid_reason(g[i])}); "
              "re-import it with `landquota import`, which repairs it with make_valid")


def _lq002(f: _Findings, parcels: Frame) -> None:
    from landquota.rules.landclasses import LAND_CLASSES, nearest_codes

    lc = parcels["land_class"].astype(str)
    bad = ~lc.isin(list(LAND_CLASSES))
    ids = _ids(parcels, "parcels")
    geoms = _geoms(parcels)
    for i in np.flatnonzero(bad.to_numpy()):
        near = nearest_codes(lc.iloc[i])
        hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
        f.add("LQ-002", "parcels", ids.iloc[i], f"unknown land class {lc.iloc[i]!r}{hint}; use a GB/T "
              "21010-2017 or third-survey code, e.g. through a mapping file's values section", geoms[i])


def _lq003(f: _Findings, parcels: Frame) -> None:
    gross, net = parcels["gross_m2"], parcels["net_m2"]
    ded = parcels["deduction_m2"].fillna(0.0)
    diff = (net - (gross - ded)).abs()
    bad = gross.notna() & net.notna() & (diff > AREA_TOL_M2)
    ids = _ids(parcels, "parcels")
    geoms = _geoms(parcels)
    for i in np.flatnonzero(bad.to_numpy()):
        f.add("LQ-003", "parcels", ids.iloc[i],
              f"TBDLMJ {net.iloc[i]:,.2f} ≠ TBMJ {gross.iloc[i]:,.2f} − KCMJ {ded.iloc[i]:,.2f} "
              f"(off by {diff.iloc[i]:,.2f} m², tolerance {AREA_TOL_M2} m²); correct the survey areas (R2)",
              geoms[i])


def _lq004_012(f: _Findings, name: str, rule: str, df: Frame) -> None:
    """Pairs whose interiors overlap by more than OVERLAP_TOL_M2 (ellipsoidal)."""
    from landquota.rules.areas import ellipsoidal_area

    g = _geoms(df)
    ok = ~(shapely.is_missing(g) | shapely.is_empty(g))
    ok[ok] = shapely.is_valid(g[ok])
    idx = np.flatnonzero(ok)
    if len(idx) < 2:
        return
    gv = g[idx]
    # GEOS' coverage validator flags, in one fast pass, every polygon whose edges
    # cross into a neighbour or fail to match it; of two overlapping polygons at
    # least one is flagged (also for nested and duplicate ones). A clean survey
    # coverage therefore costs one pass, and only flagged polygons are paired up.
    edges = shapely.coverage_invalid_edges(gv)
    flagged = np.flatnonzero(~(shapely.is_missing(edges) | shapely.is_empty(edges)))
    if not len(flagged):
        return
    tree = shapely.STRtree(gv)
    q, hit = tree.query(gv[flagged], predicate="intersects")
    a, b = flagged[q], hit
    left, right = np.minimum(a, b), np.maximum(a, b)
    pairs = np.unique(np.column_stack([left, right])[left != right], axis=0)
    if not len(pairs):
        return
    left, right = pairs[:, 0], pairs[:, 1]
    # Neighbours in a tiling share edges only: the relate pattern keeps pairs whose
    # interiors meet in 2D, without computing any intersection for the rest.
    inner = shapely.relate_pattern(gv[left], gv[right], "2********")
    left, right = left[inner], right[inner]
    if not len(left):
        return
    inter = shapely.intersection(gv[left], gv[right])
    area = ellipsoidal_area(inter)
    ids = _ids(df, name).to_numpy()
    what = "survey patches" if name == "parcels" else "plan zones of the same plan version"
    for a, b, ar, geom in zip(left, right, area, inter, strict=True):
        if ar <= OVERLAP_TOL_M2:
            continue
        ia, ib = ids[idx[a]], ids[idx[b]]
        f.add(rule, name, f"{ia}/{ib}", f"{what} {ia!r} and {ib!r} overlap by {ar:,.1f} m²; "
              "each piece of land must be in one feature only — fix the boundaries", geom)


def _lq005(f: _Findings, name: str, df: Frame, county: Frame) -> None:
    from landquota.rules.areas import ellipsoidal_area

    boundary = shapely.union_all(_geoms(county))
    shapely.prepare(boundary)
    g = _geoms(df)
    present = ~(shapely.is_missing(g) | shapely.is_empty(g))
    present[present] = shapely.is_valid(g[present])
    idx = np.flatnonzero(present)
    inside = shapely.covers(boundary, g[idx])
    # coordinate noise: a vertex computed on a boundary edge lands a rounding error
    # outside it, and a zero-width sliver along a 1 km edge measures several m² on
    # the ellipsoid (edges read as geodesics); 1e-8° ≈ 1 mm
    out = ~inside
    if out.any():
        near = shapely.buffer(boundary, 1e-8, join_style="mitre")
        inside[out] = shapely.covers(near, g[idx][out])
    cand = idx[~inside]
    if not len(cand):
        return
    ids = _ids(df, name)
    meets = shapely.intersects(boundary, g[cand])
    outside = shapely.difference(g[cand], boundary)
    areas = ellipsoidal_area(outside)
    for i, m, out, ar in zip(cand, meets, outside, areas, strict=True):
        if not m:
            f.add("LQ-005", name, ids.iloc[i], "the feature lies wholly outside the county boundary; "
                  "check its CRS (swapped X/Y? another zone?) or remove it", g[i], severity="blocking")
        elif ar > OVERLAP_TOL_M2:
            f.add("LQ-005", name, ids.iloc[i], f"{ar:,.1f} m² of the feature lie outside the county "
                  "boundary; check the boundary or clip the feature", out, severity="warning")


def _lq006_010_015(f: _Findings, plots: Frame | None, areas: Frame | None) -> None:
    from landquota.rules.areas import ellipsoidal_area

    area_ids = set(areas["linkage_id"].astype(str)) if areas is not None and len(areas) else set()
    if plots is not None and len(plots):
        ids = _ids(plots, "linkage_plots")
        g = _geoms(plots)
        orphan = ~plots["linkage_id"].astype(str).isin(area_ids)
        for i in np.flatnonzero(orphan.to_numpy()):
            f.add("LQ-006", "linkage_plots", ids.iloc[i], f"plot's linkage area "
                  f"{plots['linkage_id'].iloc[i]!r} does not exist in linkage_areas; import the area "
                  "first or correct linkage_id", g[i])
        size = ellipsoidal_area(plots.geometry)
        rec = plots["reclaimed_m2"]
        recc = plots["reclaimed_cultivated_m2"]
        too_big = rec.notna() & (rec > size * (1 + GROSS_REL_TOL) + OVERLAP_TOL_M2)
        for i in np.flatnonzero(too_big.to_numpy()):
            f.add("LQ-010", "linkage_plots", ids.iloc[i], f"reclaimed_m2 {rec.iloc[i]:,.1f} exceeds the "
                  f"plot's own area {size[i]:,.1f} m²; correct the reclaimed area (R7)", g[i])
        cult = recc.notna() & (recc > rec.fillna(0.0) + AREA_TOL_M2)
        for i in np.flatnonzero(cult.to_numpy()):
            f.add("LQ-010", "linkage_plots", ids.iloc[i], f"reclaimed_cultivated_m2 {recc.iloc[i]:,.1f} "
                  f"exceeds reclaimed_m2 {rec.fillna(0.0).iloc[i]:,.1f}; cultivated land reclaimed is a "
                  "part of the land reclaimed (R7)", g[i])
    if areas is not None and len(areas):
        used = set(plots["linkage_id"].astype(str)) if plots is not None and len(plots) else set()
        for lid in sorted(area_ids - used):
            f.add("LQ-015", "linkage_areas", lid, "the linkage area has no demolition or construction "
                  "plots; import its plots (layer linkage_plots)")


_DATE_ORDER = (
    ("approval_date", "supply_date"),
    ("supply_date", "agreed_start_date"),
    ("agreed_start_date", "actual_start_date"),
    ("actual_start_date", "suspended_since"),
    ("approval_date", "disposal_date"),
)


def _lq007_008(f: _Findings, stock: Frame) -> None:
    ids = _ids(stock, "stock_land")
    g = _geoms(stock)
    for early, late in _DATE_ORDER:
        a, b = stock[early], stock[late]
        bad = a.notna() & b.notna() & (b < a)
        for i in np.flatnonzero(bad.to_numpy()):
            f.add("LQ-007", "stock_land", ids.iloc[i], f"{late} {b.iloc[i].date()} is before {early} "
                  f"{a.iloc[i].date()}; correct the dates (the idle-land rules R9–R11 depend on them)", g[i])
    unsup = (stock["kind"] == "approved_unsupplied") & stock["supply_date"].notna()
    for i in np.flatnonzero(unsup.to_numpy()):
        f.add("LQ-008", "stock_land", ids.iloc[i], "kind is approved_unsupplied but a supply_date is "
              "set; make it 'supplied' or clear the date", g[i])
    sup = (stock["kind"] == "supplied") & stock["supply_date"].isna()
    for i in np.flatnonzero(sup.to_numpy()):
        f.add("LQ-008", "stock_land", ids.iloc[i], "kind is supplied but supply_date is empty; give "
              "the date of supply (R10 counts from it)", g[i])


def _lq009(f: _Findings, projects: Frame) -> None:
    ids = _ids(projects, "projects")
    g = _geoms(projects)
    no_site = shapely.is_missing(g) | shapely.is_empty(g)
    fixed = projects["site_fixed"].to_numpy(dtype=bool)
    demand = projects["demand_m2"]
    nothing = ~fixed & (demand.isna() | (demand <= 0)).to_numpy()
    for i in np.flatnonzero(nothing):
        f.add("LQ-009", "projects", ids.iloc[i], "the project has no fixed site and no demand_m2; give "
              "its site red line or its land demand")
    for i in np.flatnonzero(fixed & no_site):
        f.add("LQ-009", "projects", ids.iloc[i], "site_fixed is true but the project has no site "
              "geometry; import its red line or set site_fixed to false with a demand_m2")


def _lq011(f: _Findings, parcels: Frame) -> None:
    from landquota.rules.areas import ellipsoidal_area

    gross = parcels["gross_m2"]
    has = gross.notna().to_numpy()
    if not has.any():
        return
    g = _geoms(parcels)
    area = np.full(len(parcels), np.nan)
    ok = has & ~(shapely.is_missing(g) | shapely.is_empty(g))
    area[ok] = ellipsoidal_area(g[ok])
    rel = np.abs(gross.to_numpy(dtype=float) - area) / np.where(area > 0, area, np.nan)
    bad = ok & (rel > GROSS_REL_TOL)
    ids = _ids(parcels, "parcels")
    for i in np.flatnonzero(bad):
        f.add("LQ-011", "parcels", ids.iloc[i], f"TBMJ {gross.iloc[i]:,.1f} m² differs from the "
              f"ellipsoidal area of the shape {area[i]:,.1f} m² by {rel[i]:.1%}; check the CRS and the "
              "area unit (mu? ha?) (R1)", g[i])


def _day_text(v: Any) -> str:
    return "no date" if v is None or pd.isna(v) else pd.Timestamp(v).date().isoformat()


def _lq016_020(f: _Findings, frames: Mapping[str, Frame]) -> None:
    """Check the pipeline tables (issue 14): the write-time rules, row by row, and references."""
    empty = pd.DataFrame()
    stages = frames.get("project_stages", empty)
    progress = frames.get("project_progress", empty)
    visits = frames.get("visits", empty)
    meetings = frames.get("meetings", empty)
    if len(stages):
        started = pd.to_datetime(stages["started"])
        finished = pd.to_datetime(stages["finished"])
        for i in np.flatnonzero((finished.notna() & (finished < started)).to_numpy()):
            f.add("LQ-016", "project_stages", stages["stage_id"].iloc[i],
                  f"stage {stages['stage'].iloc[i]!r} of project {stages['project_id'].iloc[i]!r} "
                  f"finished on {_day_text(finished.iloc[i])}, before it started on "
                  f"{_day_text(started.iloc[i])}; correct one of the two dates")
        sup = stages[stages["stage"] == "supply"]
        supplied = dict(zip(sup["project_id"], pd.to_datetime(sup["finished"]), strict=True))
        for i in np.flatnonzero((stages["stage"] == "construction").to_numpy()):
            pid, start = stages["project_id"].iloc[i], started.iloc[i]
            done = supplied.get(pid)
            if done is None or pd.isna(done):
                f.add("LQ-017", "project_stages", stages["stage_id"].iloc[i],
                      f"project {pid!r} started construction on {_day_text(start)} but its land has "
                      "not been supplied (no 供地 stage with a finish date); record the supply first")
            elif start < done:
                f.add("LQ-017", "project_stages", stages["stage_id"].iloc[i],
                      f"project {pid!r} started construction on {_day_text(start)}, before its land "
                      f"was supplied on {_day_text(done)}; correct one of the two dates")
    if len(progress):
        df = progress.assign(_year=progress["month"].astype(str).str.slice(0, 4))
        df = df.sort_values(["project_id", "month"], kind="stable")
        grp = df.groupby(["project_id", "_year"])
        prev, prev_month = grp["completed_yuan"].shift(), grp["month"].shift()
        done = df["completed_yuan"].astype("float64")
        for i in df.index[(prev.notna() & (done < prev)).to_numpy()]:
            f.add("LQ-018", "project_progress", df.at[i, "progress_id"],
                  f"project {df.at[i, 'project_id']!r} reports {done[i]:,.0f} "
                  f"yuan for {df.at[i, 'month']!s}, less than the {float(prev[i]):,.0f} yuan of "
                  f"{prev_month[i]!s}; the figure is cumulative from 1 January and cannot fall (R17): "
                  "correct one of the two returns")
    projects = frames.get("projects", empty)
    known = set(projects["project_id"].astype(str)) if len(projects) else set()
    for name, df in (("project_stages", stages), ("project_progress", progress), ("visits", visits),
                     ("meetings", meetings)):
        if not len(df):
            continue
        ids = _ids(df, name)
        for i in np.flatnonzero(~df["project_id"].astype(str).isin(known).to_numpy()):
            f.add("LQ-019", name, ids.iloc[i], f"names project {df['project_id'].iloc[i]!r}, which is "
                  "not in the projects layer; correct the project id or import the project")
    staff = frames.get("staff", empty)
    people = set(staff["staff_id"].astype(str)) if len(staff) else set()
    for name, df, col in (("visits", visits, "staff_id"), ("project_stages", stages, "cadre")):
        if not len(df):
            continue
        ids = _ids(df, name)
        named = df[col].notna().to_numpy()
        for i in np.flatnonzero(named & ~df[col].astype(str).isin(people).to_numpy()):
            f.add("LQ-020", name, ids.iloc[i], f"{col} {df[col].iloc[i]!r} is not a staff id of the "
                  "staff layer; add the person to staff or correct the id (`landquota staff "
                  "--adopt-names` turns names into staff rows)")


# --------------------------------------------------------------------------------------
# the workspace
# --------------------------------------------------------------------------------------
_STATE, _FINGERPRINT, _AT = "validation.state", "validation.fingerprint", "validation.checked_at"
_CHECKED = [n for n in LAYERS if n not in ("quota_ledger", "allocation_runs", "allocations", "validation_errors", "ledger_chain")]


def _fingerprint(ws: Workspace) -> str:
    """Layer sizes and import records: changes when data are imported or rewritten."""
    meta = ws.meta()
    counts = ws.layer_counts()
    return json.dumps(
        {"counts": {n: counts[n] for n in _CHECKED}, "imports": {k: v for k, v in meta.items() if k.startswith("import.")}},
        sort_keys=True,
    )


def validate_workspace(
    ws: Workspace,
    *,
    write: bool = True,
    csv: str | Path | None = None,
    progress: bool = False,
) -> ValidationReport:
    """Run every rule on the workspace; store the findings and write a CSV.

    Parameters
    ----------
    ws : Workspace
        An open workspace.
    write : bool, default True
        Replace the ``validation_errors`` layer with the findings (one
        transaction) and record that the workspace was validated.
    csv : str or Path, optional
        Also write the findings to this CSV (UTF-8 with BOM, so that Excel shows
        the Chinese text), with the longitude/latitude of a point of each
        finding instead of its geometry.
    progress : bool, default False
        Show a progress bar on stderr (reading each layer, the rules, the write): a
        county's survey takes seconds to read and check.

    Returns
    -------
    ValidationReport
    """
    from landquota._progress import progress_bar

    with progress_bar(len(_CHECKED) + 2, "检查 validate", enabled=progress) as bar:
        frames = {}
        for name in _CHECKED:
            bar.set_postfix_str(f"reading {name}")
            frames[name] = ws.read_layer(name)
            bar.update()
        bar.set_postfix_str("rules LQ-001…LQ-021")
        errors = validate_frames(frames)
        errors = _with_ledger(ws, errors)
        bar.update()
        rep = _report(ws, errors, write=write, csv=csv)
        bar.update()
    return rep


#: LQ-021: the layer of the record ``verify`` names first, by the kind of its reference.
_VERIFY_LAYER = {"entry": "quota_ledger", "run": "allocation_runs", "link": "ledger_chain"}


def _with_ledger(ws: Workspace, errors: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Add LQ-021 when the ledger's hash chain does not verify (R6 history, issue 12)."""
    from landquota.store.verify import verify_workspace

    rep = verify_workspace(ws)
    first = rep.first
    if first is None:
        return errors
    kind, _, ref = first.ref.partition(" ")
    f = _Findings()
    f.add("LQ-021", _VERIFY_LAYER.get(kind, "quota_ledger"), ref or None,
          f"the ledger does not verify ({len(rep.findings)} problem(s)); first: {first}. "
          "Allocation commits are refused until it does: run `landquota verify` to see every "
          "problem, undo the change or restore a backup that verifies")
    found = _frame(f, None)
    found["checked_at"] = errors["checked_at"].iloc[0] if len(errors) else found["checked_at"]
    both = pd.concat([errors, found], ignore_index=True) if len(errors) else found
    both = both.sort_values(["rule", "layer", "feature_id"], kind="stable", na_position="first")
    return gpd.GeoDataFrame(both.reset_index(drop=True), geometry="geometry", crs=_GEOGRAPHIC)


def _report(
    ws: Workspace, errors: gpd.GeoDataFrame, *, write: bool, csv: str | Path | None
) -> ValidationReport:
    by_rule = errors["rule"].value_counts().sort_index().to_dict()
    rep = ValidationReport(
        errors=errors,
        blocking=int((errors["severity"] == "blocking").sum()),
        warnings=int((errors["severity"] == "warning").sum()),
        by_rule={str(k): int(v) for k, v in by_rule.items()},
    )
    if write:
        ws.write_layer("validation_errors", errors, mode="replace")
        ws.set_meta(_FINGERPRINT, _fingerprint(ws))
        ws.set_meta(_AT, pd.Timestamp.now(tz="UTC").isoformat())
        ws.set_meta(_STATE, "current")
    if csv is not None:
        rep.csv = write_csv(errors, csv)
    return rep


def write_csv(errors: gpd.GeoDataFrame, path: str | Path) -> Path:
    """Write findings as CSV (UTF-8 with BOM) with a point's longitude/latitude."""
    out = pd.DataFrame(errors.drop(columns="geometry"))
    g = _geoms(errors)
    pts = np.full(len(g), None, dtype=object)
    has = ~(shapely.is_missing(g) | shapely.is_empty(g))
    pts[has] = shapely.point_on_surface(g[has])
    out["lon"] = [p.x if p is not None else None for p in pts]
    out["lat"] = [p.y if p is not None else None for p in pts]
    out["checked_at"] = out["checked_at"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    p = Path(path)
    out.to_csv(p, index=False, encoding="utf-8-sig")
    return p


def blocking_errors(ws: Workspace, *, revalidate: bool = True) -> int:
    """Count the blocking findings of the workspace's current data.

    The stored findings are used when they are current; when data were imported
    or layers changed size since the last validation (or it never ran), the
    workspace is validated again first (with ``revalidate``, the default).

    Parameters
    ----------
    ws : Workspace
    revalidate : bool, default True
        Re-run the rules when the stored findings are stale.
    """
    meta = ws.meta()
    stale = meta.get(_STATE) != "current" or meta.get(_FINGERPRINT) != _fingerprint(ws)
    if stale and revalidate:
        return validate_workspace(ws, write=True).blocking
    found = ws.read_layer("validation_errors", where={"severity": "blocking"}, columns=["rule"])
    return len(found)


def require_valid(ws: Workspace, *, force: bool = False) -> int:
    """Refuse a workspace with blocking findings unless *force*; allocation calls this.

    Returns
    -------
    int
        The number of blocking findings (non-zero only when forced: the
        allocation run must then be recorded with ``forced = true``).

    Raises
    ------
    ValidationBlockedError
        Blocking findings exist and *force* is false; the message names the
        first rules and how to proceed.
    """
    n = blocking_errors(ws)
    if n and not force:
        found = ws.read_layer("validation_errors", where={"severity": "blocking"})
        triples = list(zip(found["rule"], found["layer"], found["feature_id"], strict=True))[:3]
        first = "; ".join(f"{rule!s} {lyr!s} {fid!s}" for rule, lyr, fid in triples)
        raise ValidationBlockedError(
            f"the workspace has {n} blocking validation error(s) ({first}…); see them with "
            "`landquota validate --csv errors.csv`, fix the data and re-import, or run the allocation "
            "with --force (the run is then recorded as forced)"
        )
    return n
