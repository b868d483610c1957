"""Urban–rural construction-land linkage (增减挂钩): project-area review and ledger credits.

:func:`linkage_review` checks every project area (项目区) against R7 (balance of
new construction and reclamation), R8 (turnover quota returned within three
years) and R5 (surplus creditable after acceptance). :func:`linkage_credits`
turns the review into the ``linkage_credit`` ledger entries still to write,
idempotently: a surplus is credited once, and only its growth later.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from landquota.errors import CRSError, DataError
from landquota.rules.ledger import _entries_frame, _stamp, _ts
from landquota.rules.thresholds import anniversary, area_at_most, area_exceeds, more_than_years
from landquota.store.ledger_check import TOLERANCE, normalise_entries
from landquota.store.schema import ACCEPTANCE, PLOT_ROLES

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = ["TURNOVER_YEARS", "credit_linkage_surplus", "linkage_credits", "linkage_review"]

#: R8: turnover quota must be returned within three years of approval (城乡建设用地增减挂钩
#: 试点管理办法, 国土资发〔2008〕138号); overdue from the day after the anniversary.
TURNOVER_YEARS = 3


def _construction_figures(
    construction: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, *, check_coverage: bool
) -> pd.DataFrame:
    """Area (R1) and occupied cultivated net area (R2) of each construction plot.

    The plots go through the same overlay as project sites
    (:func:`landquota.rules.demand.demand_from_sites`), so a plot and a project on
    the same land get the same figures: the cultivated net area is each piece's
    ellipsoidal area times its patch's TBDLMJ/TBMJ. Returns ``plot_id``,
    ``construction_m2`` and ``occupied_cultivated_m2``; a plot without geometry
    counts 0.
    """
    from landquota.rules.demand import demand_from_sites

    ids = construction["plot_id"].astype("str").to_numpy()
    out = pd.DataFrame({"plot_id": ids, "construction_m2": 0.0, "occupied_cultivated_m2": 0.0})
    geoms = np.asarray(construction.geometry.array, dtype=object)
    has_geom = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms))
    if not has_geom.any():
        return out
    sites = gpd.GeoDataFrame(
        {"project_id": ids[has_geom]}, geometry=geoms[has_geom], crs=construction.crs
    )
    try:
        table = demand_from_sites(sites, parcels, check_coverage=check_coverage).table
    except DataError as exc:
        # keep the class (CRSError is a DataError too); say which layer it was
        raise type(exc)(f"linkage construction plots (project_id = plot_id): {exc}") from exc
    by_id = table.set_index("project_id")
    out["construction_m2"] = out["plot_id"].map(by_id["site_m2"]).fillna(0.0)
    out["occupied_cultivated_m2"] = out["plot_id"].map(by_id["comp_area_m2"]).fillna(0.0)
    return out


def linkage_review(
    areas: pd.DataFrame,
    plots: gpd.GeoDataFrame,
    parcels: gpd.GeoDataFrame,
    *,
    as_of: date,
    tolerance_m2: float = 0.0,
    check_coverage: bool = True,
) -> pd.DataFrame:
    """Review every linkage project area: R7 balance, R8 turnover deadline, R5 surplus.

    Parameters
    ----------
    areas : pandas.DataFrame
        The ``linkage_areas`` table.
    plots : geopandas.GeoDataFrame
        The ``linkage_plots`` layer (demolition and construction plots).
    parcels : geopandas.GeoDataFrame
        The ``parcels`` layer (at least the patches under the construction plots).
    as_of : datetime.date
        Review date (R8 overdue, R5 acceptance by then).
    tolerance_m2 : float, default 0
        R7 differences up to this many m² are accepted (surveyed reclaimed areas
        against computed plot areas).
    check_coverage : bool, default True
        Refuse construction plots that lie partly on no survey patch or on
        overlapping patches (their occupied cultivated area would be wrong), as
        :func:`landquota.rules.demand.demand_from_sites` does for project sites.

    Returns
    -------
    pandas.DataFrame
        One row per project area, sorted by ``linkage_id``: ``linkage_id``,
        ``name``, ``town``, ``approval_date``, ``acceptance``, ``acceptance_date``,
        ``turnover_quota_m2``, ``demolition_m2`` (sum of ``reclaimed_m2`` of the
        demolition plots), ``construction_m2`` (ellipsoidal area of the
        construction plots, R1), ``reclaimed_cultivated_m2``,
        ``occupied_cultivated_m2`` (cultivated net area under the construction
        plots, R2), ``construction_excess_m2`` and ``cultivated_shortfall_m2``
        (by how much R7 is missed, 0 when met), ``r7_ok``,
        ``turnover_due_date`` (approval + 3 years, R8), ``turnover_shortfall_m2``
        (turnover quota − reclaimed area, ≥ 0), ``overdue`` (past the due date
        with a shortfall), ``surplus_m2`` (reclaimed − construction, ≥ 0) and
        ``creditable`` (acceptance passed by ``as_of``, R5).

    Raises
    ------
    DataError
        Missing columns, unknown codes, plots of an unknown project area.
    CRSError
        Plots and parcels in different CRSs.
    """
    t = _ts(as_of, "as_of")
    for col in ("linkage_id", "approval_date", "acceptance"):
        if col not in areas.columns:
            raise DataError(f"areas has no {col!r} column; pass the 'linkage_areas' table")
    for col in ("plot_id", "linkage_id", "role"):
        if col not in plots.columns:
            raise DataError(f"plots has no {col!r} column; pass the 'linkage_plots' layer")
    a = pd.DataFrame(areas).copy()
    bad = ~a["acceptance"].isin(ACCEPTANCE)
    if bad.any():
        i = a.index[bad][0]
        raise DataError(
            f"linkage_areas: linkage_id={a.at[i, 'linkage_id']!r} has acceptance="
            f"{a.at[i, 'acceptance']!r}; allowed: {', '.join(ACCEPTANCE)}"
        )
    dup = a["linkage_id"][a["linkage_id"].duplicated()]
    if len(dup):
        raise DataError(f"linkage_areas: duplicate linkage_id {sorted(set(map(str, dup)))[:5]}")
    for col in ("name", "town", "acceptance_date", "turnover_quota_m2"):
        if col not in a.columns:
            a[col] = np.nan
    try:
        # whole days (rules.thresholds): a time of day must not move the R8 deadline
        a["approval_date"] = (
            pd.to_datetime(a["approval_date"]).astype("datetime64[ns]").dt.normalize()
        )
        a["acceptance_date"] = (
            pd.to_datetime(a["acceptance_date"]).astype("datetime64[ns]").dt.normalize()
        )
        a["turnover_quota_m2"] = pd.to_numeric(a["turnover_quota_m2"]).astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"linkage_areas: a date or number has a wrong value: {exc}") from exc
    if a["approval_date"].isna().any():
        i = a.index[a["approval_date"].isna()][0]
        raise DataError(
            f"linkage_areas: linkage_id={a.at[i, 'linkage_id']!r} has no approval_date; "
            "R8's three-year clock starts there"
        )

    p = plots.copy()
    bad = ~p["role"].isin(PLOT_ROLES)
    if bad.any():
        i = p.index[bad][0]
        raise DataError(
            f"linkage_plots: plot_id={p.at[i, 'plot_id']!r} has role="
            f"{p.at[i, 'role']!r}; allowed: {', '.join(PLOT_ROLES)}"
        )
    orphan = ~p["linkage_id"].isin(a["linkage_id"])
    if orphan.any():
        raise DataError(
            f"linkage_plots: linkage_id(s) {sorted(set(map(str, p.loc[orphan, 'linkage_id'])))[:5]}"
            " are not in linkage_areas; add the project area or fix the plots"
        )
    if (
        len(p)
        and len(parcels)
        and p.crs is not None
        and parcels.crs is not None
        and CRS.from_user_input(p.crs) != CRS.from_user_input(parcels.crs)
    ):
        raise CRSError(
            f"plots are in {p.crs.to_string()!r} but parcels in {parcels.crs.to_string()!r}; "
            "both must be in EPSG:4490 (read them from the workspace)"
        )
    for col in ("reclaimed_m2", "reclaimed_cultivated_m2"):
        p[col] = pd.to_numeric(p[col], errors="raise").fillna(0.0) if col in p else 0.0

    demo = p[p["role"] == "demolition"]
    cons = p[p["role"] == "construction"]
    figures = _construction_figures(cons, parcels, check_coverage=check_coverage)
    figures["linkage_id"] = cons["linkage_id"].to_numpy()
    per_area = figures.groupby("linkage_id")[["construction_m2", "occupied_cultivated_m2"]].sum()

    ids = a["linkage_id"]
    demolition_m2 = ids.map(demo.groupby("linkage_id")["reclaimed_m2"].sum()).fillna(0.0)
    reclaimed_cult = ids.map(demo.groupby("linkage_id")["reclaimed_cultivated_m2"].sum()).fillna(
        0.0
    )
    construction_m2 = ids.map(per_area["construction_m2"]).fillna(0.0)
    occupied_m2 = ids.map(per_area["occupied_cultivated_m2"]).fillna(0.0)

    out = pd.DataFrame(
        {
            "linkage_id": ids,
            "name": a["name"],
            "town": a["town"],
            "approval_date": a["approval_date"],
            "acceptance": a["acceptance"],
            "acceptance_date": a["acceptance_date"],
            "turnover_quota_m2": a["turnover_quota_m2"],
            "demolition_m2": demolition_m2.astype("float64"),
            "construction_m2": construction_m2.astype("float64"),
            "reclaimed_cultivated_m2": reclaimed_cult.astype("float64"),
            "occupied_cultivated_m2": occupied_m2.astype("float64"),
        }
    )
    # R7: new construction <= reclaimed area; reclaimed cultivated >= occupied cultivated.
    excess = out["construction_m2"] - out["demolition_m2"]
    shortfall = out["occupied_cultivated_m2"] - out["reclaimed_cultivated_m2"]
    out["construction_excess_m2"] = excess.clip(lower=0.0)
    out["cultivated_shortfall_m2"] = shortfall.clip(lower=0.0)
    # R7 compared at 0.01 m² (rules.thresholds): construction at most reclaimed (plus the
    # tolerance), occupied cultivated at most reclaimed cultivated (plus the tolerance).
    out["r7_ok"] = area_at_most(
        out["construction_m2"], out["demolition_m2"] + tolerance_m2
    ) & area_at_most(out["occupied_cultivated_m2"], out["reclaimed_cultivated_m2"] + tolerance_m2)
    # R8: turnover quota returned (by reclaimed area) within 3 years of approval; overdue
    # when more than (超过) 3 years have passed, in whole days, with a shortfall left.
    out["turnover_due_date"] = [anniversary(d, TURNOVER_YEARS) for d in out["approval_date"]]
    out["turnover_due_date"] = out["turnover_due_date"].astype("datetime64[ns]")
    out["turnover_shortfall_m2"] = (
        out["turnover_quota_m2"].fillna(0.0) - out["demolition_m2"]
    ).clip(lower=0.0)
    late = np.array([more_than_years(d, t, TURNOVER_YEARS) for d in out["approval_date"]], dtype=bool)
    out["overdue"] = late & area_exceeds(out["turnover_shortfall_m2"], tolerance_m2)
    out["surplus_m2"] = (out["demolition_m2"] - out["construction_m2"]).clip(lower=0.0)
    # R5: surplus is usable only after acceptance passed.
    out["creditable"] = (out["acceptance"] == "passed") & (
        out["acceptance_date"].isna() | (out["acceptance_date"] <= t)
    )
    return out.sort_values("linkage_id").reset_index(drop=True)


def linkage_credits(
    review: pd.DataFrame,
    ledger: pd.DataFrame,
    *,
    as_of: date,
    entered_at: datetime | None = None,
    entered_by: str | None = None,
) -> pd.DataFrame:
    """Return the ``linkage_credit`` entries still to write for accepted areas (R5).

    For every creditable area the surplus already credited is the sum of the
    ledger's ``linkage_credit`` entries with ``source`` = the ``linkage_id``
    (net of reversals of those entries). If the surplus now exceeds it, one entry
    credits the difference to pool ``linkage_surplus``; otherwise nothing. So a
    repeated run never credits twice, and a grown surplus (more plots
    reclaimed) is credited by its growth only. A surplus that shrank is not
    debited automatically: that needs an ``adjustment`` entry by document.

    Parameters
    ----------
    review : pandas.DataFrame
        The output of :func:`linkage_review`.
    ledger : pandas.DataFrame
        The ``quota_ledger`` layer.
    as_of : datetime.date
        Only areas accepted by this date are credited.
    entered_at, entered_by : optional
        Filled in by the caller at write time.

    Returns
    -------
    pandas.DataFrame
        New entries (``quota_ledger`` columns), id ``linkage:<linkage_id>:<n>``,
        ``year`` = the year of ``effective_date``, which is the acceptance date
        for a first credit and ``as_of`` for a later top-up.
    """
    t = _ts(as_of, "as_of")
    for col in ("linkage_id", "surplus_m2", "creditable"):
        if col not in review.columns:
            raise DataError(f"review has no {col!r} column; pass the output of linkage_review")
    led = normalise_entries(ledger, "ledger")
    credits = led[(led["kind"] == "linkage_credit") & (led["pool"] == "linkage_surplus")]
    reversed_ = led[led["reverses"].isin(credits["entry_id"])]
    by_id = credits.set_index("entry_id")["source"]
    credited = (
        pd.concat(
            [
                credits.groupby("source")["amount"].sum(),
                reversed_.assign(source=reversed_["reverses"].map(by_id))
                .groupby("source")["amount"]
                .sum(),
            ]
        )
        .groupby(level=0)
        .sum()
    )
    n_entries = credits.groupby("source").size()

    rows: list[dict[str, Any]] = []
    for r in review.sort_values("linkage_id").itertuples(index=False):
        acc = getattr(r, "acceptance_date", pd.NaT)
        if not bool(r.creditable) or (pd.notna(acc) and acc > t):
            continue
        lid = str(r.linkage_id)
        done = float(cast(float, credited.get(lid, 0.0)))
        diff = float(cast(float, r.surplus_m2)) - done
        if diff <= TOLERANCE:
            continue
        n = int(n_entries.get(lid, 0)) + 1
        when = pd.Timestamp(acc) if n == 1 and pd.notna(acc) else t
        rows.append(
            {
                "entry_id": f"linkage:{lid}:{n}",
                "pool": "linkage_surplus",
                "kind": "linkage_credit",
                "amount": diff,
                "year": int(when.year),
                "effective_date": when,
                "source": lid,
                "note": (
                    f"R5 surplus of accepted linkage area {lid}"
                    if n == 1
                    else f"R5 surplus of {lid} grew from {done:,.2f} m²"
                ),
            }
        )
    return _stamp(_entries_frame(rows), entered_at, entered_by)


def credit_linkage_surplus(
    ws: Workspace, *, as_of: date, write: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Review every linkage area and credit accepted surplus to the ledger (R5), once.

    Returns the review and the credit entries written (or, with ``write=False``,
    the ones that would be). Idempotent: a second call finds every surplus credited
    and writes nothing.
    """
    review = linkage_review(
        ws.read_layer("linkage_areas"),
        ws.read_layer("linkage_plots"),
        _parcels_under(ws, ws.read_layer("linkage_plots")),
        as_of=as_of,
    )
    credits = linkage_credits(review, ws.read_layer("quota_ledger"), as_of=as_of)
    if write and len(credits):
        credits = ws.append_ledger(credits)
    return review, credits


def _parcels_under(ws: Workspace, plots: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Only the survey patches near the plots (bbox pushed down to the backend)."""
    if not len(plots):
        return ws.read_layer("parcels", where={"parcel_id": []})
    return ws.read_layer("parcels", bbox=tuple(plots.total_bounds))
