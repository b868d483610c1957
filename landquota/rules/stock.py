"""Stock land (存量土地): idle-land review, approved-but-unsupplied cohorts, available stock.

Pure functions on the ``stock_land`` layer, all evaluated *as of* a date: a
record whose approval, supply or disposal is dated after that date is read as
not having happened yet. The rules are R9–R12 of the domain notes; the
statuses and every date convention are set out in ``docs/ledger-and-stock.md``.

Periods of N years are calendar anniversaries (``pd.DateOffset(years=N)``, so
29 February + 1 year = 28 February), counted in whole days (a time of day is
dropped). "A full year has passed" (R10, 满一年) holds *on* the anniversary;
"older than two years" (R9) holds from the day *after* it. Every such comparison
goes through :mod:`landquota.rules.thresholds`, which cites the articles.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.rules.thresholds import (
    anniversary,
    day,
    full_years_reached,
    more_than_years,
    ratio_under,
)
from landquota.store.schema import CAUSES, DISPOSAL_METHODS, DISPOSAL_STATUSES, STOCK_KINDS, layer

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "IDLE_RULES",
    "STOCK_STATUSES",
    "StockReview",
    "available_stock",
    "five_year_supply_rate",
    "idle_review",
    "review_stock",
    "unsupplied_cohorts",
]

#: Statuses given by :func:`idle_review` (see ``docs/ledger-and-stock.md``).
STOCK_STATUSES = (
    "not_yet_approved",  # approval dated after the review date
    "approved_unsupplied",  # 批而未供, not lapsed
    "lapsed",  # R9: approved > 2 years ago, no land use or compensation carried out
    "not_yet_supplied",  # a supplied record whose supply is dated after the review date
    "not_idle",  # supplied, neither R10 branch holds
    "idle",  # supplied, an R10 branch holds, no closing disposal (R12)
    "reclaimed",  # free or paid reclamation (R11) effective by the review date
    "swapped",  # swap (置换) effective by the review date
    "closed",  # case closed because construction started (R12)
)

#: R10 branches (``idle_rule``).
IDLE_RULES = ("not_started", "suspended_low_development", "suspended_low_investment")

#: R11: the idle fee is 20 % of the land price (闲置土地处置办法 2012, Art. 14).
IDLE_FEE_RATE = 0.20
#: R10: developed area under (不足) one third ... (闲置土地处置办法 2012, Art. 2)
LOW_DEVELOPMENT = 1.0 / 3.0
#: ... or investment (excluding land price and taxes) under 25 % (Art. 2).
LOW_INVESTMENT = 0.25
#: R12: the disposal methods that close a case; an extension (or a change of use,
#: or temporary use) leaves it open.
CLOSING_METHODS = frozenset(
    {"construction_started", "free_reclamation", "paid_reclamation", "swap"}
)
RECLAMATION_METHODS = frozenset({"free_reclamation", "paid_reclamation"})

_DATE_COLS = (
    "approval_date",
    "supply_date",
    "agreed_start_date",
    "actual_start_date",
    "suspended_since",
    "disposal_date",
)


def _add_years(ts: pd.Timestamp, years: int) -> pd.Timestamp:
    """Calendar anniversary as a whole day: 2012-02-29 + 1 year = 2013-02-28."""
    return anniversary(ts, years)


def _full_years(start: pd.Timestamp, end: pd.Timestamp) -> int:
    """Return the number of whole years from *start* to *end* (anniversaries reached)."""
    n = end.year - start.year
    if n > 0 and not full_years_reached(start, end, n):
        n -= 1
    return max(n, 0)


def _as_of(as_of: date) -> pd.Timestamp:
    if as_of is None or isinstance(as_of, bool):
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)")
    try:
        ts = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)") from exc
    if pd.isna(ts):
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)")
    return ts.normalize()


def _prepare(stock: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Check the columns this module reads and return a copy with canonical dtypes.

    Absent optional columns are added as empty, so a partial frame (a test, a
    notebook) works; codes outside the schema are refused.
    """
    if not isinstance(stock, gpd.GeoDataFrame):
        raise DataError(
            f"stock must be a GeoDataFrame of the 'stock_land' layer, not {type(stock).__name__}"
        )
    for col in ("stock_id", "kind"):
        if col not in stock.columns:
            raise DataError(
                f"stock has no {col!r} column; pass the 'stock_land' layer "
                f"(columns {', '.join(layer('stock_land').column_names)})"
            )
    df = stock.copy()
    n = len(df)
    defaults: dict[str, Any] = {
        "cause": "none",
        "disposal_status": "none",
        "disposal_method": "none",
        "land_used": False,
    }
    for col in layer("stock_land").column_names:
        if col not in df.columns:
            df[col] = pd.Series([defaults.get(col, np.nan)] * n, index=df.index)
    for col, dflt in defaults.items():
        df[col] = df[col].where(df[col].notna(), dflt)
    df["land_used"] = df["land_used"].astype(bool)
    for col, codes in (
        ("kind", STOCK_KINDS),
        ("cause", CAUSES),
        ("disposal_status", DISPOSAL_STATUSES),
        ("disposal_method", DISPOSAL_METHODS),
    ):
        bad = ~df[col].isin(codes)
        if bad.any():
            i = df.index[bad][0]
            raise DataError(
                f"stock_land: stock_id={df.at[i, 'stock_id']!r} has {col}={df.at[i, col]!r}; "
                f"allowed: {', '.join(codes)}"
            )
    dup = df["stock_id"][df["stock_id"].duplicated()]
    if len(dup):
        raise DataError(f"stock_land: duplicate stock_id {sorted(set(map(str, dup)))[:5]}")
    try:
        for col in _DATE_COLS:
            # whole days (rules.thresholds): a time of day must not move a legal deadline
            df[col] = pd.to_datetime(df[col], errors="raise").astype("datetime64[ns]").dt.normalize()
        for col in ("developed_ratio", "invested_ratio", "land_price_yuan"):
            df[col] = pd.to_numeric(df[col], errors="raise").astype("float64")
    except (TypeError, ValueError) as exc:
        raise DataError(f"stock_land: a date or number column has a wrong value: {exc}") from exc
    return df


def _areas(geoms: gpd.GeoSeries) -> np.ndarray:
    # R1: official areas are ellipsoidal; imported lazily so that the module
    # loads even where the areas module is being rebuilt.
    from landquota.rules.areas import ellipsoidal_area

    if len(geoms) == 0:
        return np.zeros(0)
    return np.asarray(ellipsoidal_area(geoms), dtype="float64")


def _lapse_date(approval: pd.Timestamp) -> pd.Timestamp:
    """R9: first day on which an approval is *older than* (超过) two years."""
    return _add_years(approval, 2) + pd.Timedelta(days=1)


def _effective(method: str, when: Any, t: pd.Timestamp) -> bool:
    """Tell whether a recorded disposal counts by *t* (one without a date counts at once)."""
    return method != "none" and (pd.isna(when) or when <= t)


def _review_row_keys() -> tuple[str, ...]:
    return (
        "status",
        "idle_rule",
        "idle_since",
        "days_idle",
        "idle_years",
        "fee_due_yuan",
        "reclaim_deadline",
        "reclaim_due",
        "lapse_date",
        "case_state",
    )


def _review_row(r: Any, t: pd.Timestamp) -> dict[str, Any]:
    """Status and R9–R12 figures of one stock parcel as of *t*."""
    out: dict[str, Any] = {
        "status": "",
        "idle_rule": np.nan,
        "idle_since": pd.NaT,
        "days_idle": pd.NA,
        "idle_years": pd.NA,
        "fee_due_yuan": 0.0,
        "reclaim_deadline": pd.NaT,
        "reclaim_due": False,
        "lapse_date": pd.NaT,
        "case_state": "none",
    }
    supplied = r.kind == "supplied" and (pd.isna(r.supply_date) or r.supply_date <= t)
    if not supplied:
        if r.kind == "supplied" and pd.isna(r.approval_date):
            out["status"] = "not_yet_supplied"
            return out
        if pd.isna(r.approval_date):
            # no approval date: R9 cannot be judged, the parcel stays in the stock
            out["status"] = "approved_unsupplied"
            return out
        if r.approval_date > t:
            out["status"] = "not_yet_approved"
            return out
        out["lapse_date"] = _lapse_date(r.approval_date)
        # R9: an approval older than (超过) 2 years with no land use / compensation
        # lapses: from the day after the anniversary, in whole days
        lapsed = not bool(r.land_used) and more_than_years(r.approval_date, t, 2)
        out["status"] = "lapsed" if lapsed else "approved_unsupplied"
        return out

    method = str(r.disposal_method)
    effective = _effective(method, r.disposal_date, t)

    # R10, first branch (Order 53 Art. 2): a full year (满一年) past the agreed start
    # without starting, in whole days.
    started = pd.notna(r.actual_start_date) and day(r.actual_start_date) <= t
    rule: str | None = None
    since: pd.Timestamp | None = None
    if not started and full_years_reached(r.agreed_start_date, t, 1):
        rule, since = "not_started", day(r.agreed_start_date)
    # R10, second branch (Art. 2): started, developed under (不足) 1/3 or invested under
    # 25 %, suspended a full year. Unknown ratios do not count as low.
    elif (
        started
        and full_years_reached(r.suspended_since, t, 1)
        and (
            ratio_under(r.developed_ratio, LOW_DEVELOPMENT)
            or ratio_under(r.invested_ratio, LOW_INVESTMENT)
        )
    ):
        low_dev = ratio_under(r.developed_ratio, LOW_DEVELOPMENT)
        rule = "suspended_low_development" if low_dev else "suspended_low_investment"
        since = day(r.suspended_since)

    if effective and method in RECLAMATION_METHODS:
        out["status"], out["case_state"] = "reclaimed", "closed"
        return out
    if effective and method == "swap":
        out["status"], out["case_state"] = "swapped", "closed"
        return out
    # A case closed by the start of construction stays closed unless work was
    # suspended after that decision and R10's second branch holds again.
    if (
        effective
        and method == "construction_started"
        and not (
            rule is not None
            and rule != "not_started"
            and pd.notna(r.disposal_date)
            and since is not None
            and since > r.disposal_date
        )
    ):
        out["status"], out["case_state"] = "closed", "closed"
        return out

    if rule is None or since is None:
        out["status"] = "not_idle"
        # R12: a case once opened stays open until a closing method is recorded
        if effective or r.disposal_status == "open":
            out["case_state"] = "open"
        return out

    years = _full_years(since, t)
    out.update(
        status="idle",
        idle_rule=rule,
        idle_since=since,
        days_idle=int((t - since).days),
        idle_years=years,
        case_state="open",
    )
    if r.cause == "enterprise":
        # R11 (Order 53 Art. 14): idle a full year (满一年, always true once idle) -> fee
        # of 20 % of the land price; two full years (满两年) -> reclaimed without
        # compensation (无偿收回), from the anniversary itself.
        fee_due = full_years_reached(since, t, 1)
        out["fee_due_yuan"] = IDLE_FEE_RATE * r.land_price_yuan if fee_due else 0.0
        out["reclaim_deadline"] = _add_years(since, 2)
        out["reclaim_due"] = full_years_reached(since, t, 2)
    elif r.cause == "none":
        # the cause is undetermined: no fee can be assessed until it is recorded
        out["fee_due_yuan"] = np.nan
    return out


def idle_review(stock: gpd.GeoDataFrame, *, as_of: date) -> gpd.GeoDataFrame:
    """Review every stock parcel as of a date (R9–R12).

    Idle status (R10), idle fee and reclamation (R11), disposal cases (R12) and
    lapse of approvals (R9).

    Parameters
    ----------
    stock : geopandas.GeoDataFrame
        The ``stock_land`` layer (both kinds). Absent optional columns are read
        as empty.
    as_of : datetime.date
        Review date. Approvals, supplies, starts, suspensions and disposals dated
        later are treated as not having happened.

    Returns
    -------
    geopandas.GeoDataFrame
        One row per input row, in input order, with ``stock_id``, ``kind``,
        ``town``, ``planned_use``, ``cause``, ``area_m2`` (ellipsoidal, R1),
        ``status`` (one of :data:`STOCK_STATUSES`), ``idle_rule`` (one of
        :data:`IDLE_RULES` for idle parcels), ``idle_since`` (start of the idle
        clock: the agreed start date, or the suspension date), ``days_idle`` and
        ``idle_years`` (whole years) counted from it, ``fee_due_yuan`` (R11: 20 %
        of the land price for an enterprise-caused idle parcel, 0 for a
        government-caused one, NaN when the cause is ``none``), ``reclaim_deadline``
        (enterprise cause: idle clock + 2 years), ``reclaim_due``, ``lapse_date``
        (approved-unsupplied: first day the approval counts as lapsed),
        ``case_state`` (``none``, ``open``, ``closed``; R12),
        ``case_state_recorded`` (the layer's ``disposal_status``),
        ``case_state_mismatch``, ``disposal_method``, ``disposal_date`` and the
        geometry.

    Raises
    ------
    DataError
        Missing ``stock_id`` / ``kind`` columns, unknown codes, duplicate ids,
        unreadable dates.
    ParameterError
        ``as_of`` is not a date.
    """
    t = _as_of(as_of)
    df = _prepare(stock)
    rows = [_review_row(r, t) for r in df.itertuples(index=False)]
    keys = list(_review_row_keys())
    res = pd.DataFrame(rows, index=df.index, columns=keys)
    out = pd.DataFrame(
        {
            "stock_id": df["stock_id"],
            "kind": df["kind"],
            "town": df["town"],
            "planned_use": df["planned_use"],
            "cause": df["cause"],
            "area_m2": _areas(df.geometry),
            "status": res["status"].astype("str"),
            "idle_rule": res["idle_rule"].astype("str").where(res["idle_rule"].notna()),
            "idle_since": pd.to_datetime(res["idle_since"]).astype("datetime64[ns]"),
            "days_idle": res["days_idle"].astype("Int64"),
            "idle_years": res["idle_years"].astype("Int64"),
            "fee_due_yuan": res["fee_due_yuan"].astype("float64"),
            "reclaim_deadline": pd.to_datetime(res["reclaim_deadline"]).astype("datetime64[ns]"),
            "reclaim_due": res["reclaim_due"].astype(bool),
            "lapse_date": pd.to_datetime(res["lapse_date"]).astype("datetime64[ns]"),
            "case_state": res["case_state"].astype("str"),
            "case_state_recorded": df["disposal_status"].astype("str"),
            "disposal_method": df["disposal_method"].astype("str"),
            "disposal_date": df["disposal_date"],
        },
        index=df.index,
    )
    out["case_state_mismatch"] = out["case_state"] != out["case_state_recorded"]
    return gpd.GeoDataFrame(out, geometry=df.geometry.values, crs=df.crs).reset_index(drop=True)


def _cohort_rows(stock: gpd.GeoDataFrame, t: pd.Timestamp) -> pd.DataFrame:
    """One row per stock parcel that belongs to an approval cohort, as of *t*.

    How "supplied" is read: a ``supplied`` row with an ``approval_batch`` is land
    of that batch that has been supplied (its approval year is its own
    ``approval_date``, else the earliest ``approval_date`` of its batch); it counts
    as supplied from its ``supply_date`` (at once when that is empty) and as
    unsupplied before. A ``supplied`` row without ``approval_batch`` was not
    newly approved land and is in no cohort. Every ``approved_unsupplied`` row is
    in its approval year's cohort.
    """
    df = _prepare(stock)
    batch_dates = (
        df.dropna(subset=["approval_batch", "approval_date"])
        .groupby("approval_batch")["approval_date"]
        .min()
    )
    in_cohort = (df["kind"] == "approved_unsupplied") | df["approval_batch"].notna()
    df = df[in_cohort].copy()
    from_batch = pd.Series(
        batch_dates.reindex(df["approval_batch"]).to_numpy(), index=df.index
    ).astype("datetime64[ns]")
    approval = df["approval_date"].fillna(from_batch)
    missing = approval.isna()
    if missing.any():
        ids = df.loc[missing, "stock_id"].astype(str).tolist()[:5]
        raise DataError(
            f"stock_land: approval date unknown for stock_id {ids}; an approved-unsupplied "
            "parcel, or a supplied parcel with an approval_batch, needs approval_date (on the "
            "row or on another row of the same batch)"
        )
    df["approval_date"] = approval.astype("datetime64[ns]")
    df = df[df["approval_date"] <= t]
    review = idle_review(df, as_of=t.date()) if len(df) else None
    out = pd.DataFrame(
        {
            "stock_id": df["stock_id"].to_numpy(),
            "approval_batch": df["approval_batch"].to_numpy(),
            "approval_year": df["approval_date"].dt.year.astype("Int64").to_numpy(),
            "area_m2": review["area_m2"].to_numpy() if review is not None else [],
            "status": review["status"].to_numpy() if review is not None else [],
        }
    )
    out["supplied"] = ~out["status"].isin(["approved_unsupplied", "lapsed"])
    out["lapsed"] = out["status"] == "lapsed"
    return out


def unsupplied_cohorts(stock: gpd.GeoDataFrame, *, as_of: date) -> pd.DataFrame:
    """Approved-but-unsupplied land (批而未供) by approval-year cohort, as of a date.

    Parameters
    ----------
    stock : geopandas.GeoDataFrame
        The ``stock_land`` layer.
    as_of : datetime.date
        Approvals and supplies dated later are left out / read as unsupplied.

    Returns
    -------
    pandas.DataFrame
        One row per approval year (ascending): ``approval_year``, ``batches``
        (distinct approval batches), ``approved_m2`` (supplied + unsupplied),
        ``supplied_m2``, ``unsupplied_m2``, ``lapsed_m2`` (the part of the
        unsupplied area whose approval lapsed, R9), ``supply_rate`` (supplied ÷
        approved of the cohort) and ``in_rate_window`` (the cohort counts in the
        five-year supply rate). ``attrs["five_year_supply_rate"]`` holds
        :func:`five_year_supply_rate`.

    Notes
    -----
    See :func:`five_year_supply_rate` for the window and ``docs/ledger-and-stock.md``
    for how supplied land is linked to its cohort.
    """
    t = _as_of(as_of)
    rows = _cohort_rows(stock, t)
    area = rows["area_m2"]
    parts = pd.DataFrame(
        {
            "approval_year": rows["approval_year"],
            "approved_m2": area,
            "supplied_m2": area.where(rows["supplied"], 0.0),
            "unsupplied_m2": area.where(~rows["supplied"], 0.0),
            "lapsed_m2": area.where(rows["lapsed"], 0.0),
        }
    )
    sums = parts.groupby("approval_year", sort=True).sum()
    batches = rows.groupby("approval_year")["approval_batch"].nunique()
    out = sums.reset_index()
    out.insert(1, "batches", out["approval_year"].map(batches).fillna(0).astype("Int64"))
    out["approval_year"] = out["approval_year"].astype("Int64")
    for col in ("approved_m2", "supplied_m2", "unsupplied_m2", "lapsed_m2"):
        out[col] = out[col].astype("float64")
    out["supply_rate"] = (out["supplied_m2"] / out["approved_m2"]).where(out["approved_m2"] > 0)
    out["in_rate_window"] = out["approval_year"].astype("int64") >= t.year - 4
    out.attrs["five_year_supply_rate"] = _rate(out)
    return out


def _rate(cohorts: pd.DataFrame) -> float:
    win = cohorts[cohorts["in_rate_window"]]
    approved = float(win["approved_m2"].sum())
    return float(win["supplied_m2"].sum()) / approved if approved > 0 else float("nan")


def five_year_supply_rate(stock: gpd.GeoDataFrame, *, as_of: date) -> float:
    """Supply rate of the last five years: supplied ÷ approved area (NaN if nothing approved).

    The window is the five approval-year cohorts ending with the year of
    ``as_of`` (2014-04-30 → 2010 … 2014), counting approvals and supplies
    dated on or before ``as_of``. Lapsed approvals stay in the denominator: the
    approval was given and the land was not supplied.

    Parameters
    ----------
    stock : geopandas.GeoDataFrame
        The ``stock_land`` layer.
    as_of : datetime.date
        Review date.

    Returns
    -------
    float
        A fraction in [0, 1], or NaN.
    """
    return _rate(unsupplied_cohorts(stock, as_of=as_of))


def available_stock(
    stock: gpd.GeoDataFrame, *, as_of: date, taken: Iterable[str] = ()
) -> gpd.GeoDataFrame:
    """Stock parcels that can be offered to key projects as of a date (存量优先).

    Per the domain notes these are reclaimed idle land (R11, free or paid
    reclamation effective by ``as_of``) and approved-unsupplied land whose
    approval lapsed (R9). Approved-unsupplied land that has not lapsed still
    belongs to the project it was approved for and is not offered; swapped land
    went to the land user in exchange and is not offered either.

    Parameters
    ----------
    stock : geopandas.GeoDataFrame
        The ``stock_land`` layer.
    as_of : datetime.date
        Review date.
    taken : iterable of str, optional
        ``stock_id`` values already matched to projects by committed runs; they
        are left out.

    Returns
    -------
    geopandas.GeoDataFrame
        ``stock_id``, ``area_m2`` (ellipsoidal, R1), ``planned_use``, ``town``,
        ``source_status`` (``reclaimed`` or ``lapsed``), ``available_since`` (the
        disposal date, or the lapse date) and the geometry, sorted by
        ``stock_id``.
    """
    review = idle_review(stock, as_of=as_of)
    taken_ids = {str(s) for s in taken}
    keep = review["status"].isin(["reclaimed", "lapsed"]) & ~review["stock_id"].astype(str).isin(
        taken_ids
    )
    r = review[keep]
    since = r["disposal_date"].where(r["status"] == "reclaimed", r["lapse_date"])
    out = gpd.GeoDataFrame(
        {
            "stock_id": r["stock_id"],
            "area_m2": r["area_m2"],
            "planned_use": r["planned_use"],
            "town": r["town"],
            "source_status": r["status"],
            "available_since": since.astype("datetime64[ns]"),
        },
        geometry=r.geometry.values,
        crs=review.crs,
    )
    return out.sort_values("stock_id").reset_index(drop=True)


@dataclass(frozen=True)
class StockReview:
    """A stock-land review of a workspace as of a date (``landquota idle``)."""

    as_of: date
    idle: gpd.GeoDataFrame
    cohorts: pd.DataFrame
    supply_rate: float
    available: gpd.GeoDataFrame

    def __str__(self) -> str:
        idle = self.idle[self.idle["status"] == "idle"]
        fee = float(idle["fee_due_yuan"].fillna(0).sum())
        due = int(idle["reclaim_due"].fillna(False).astype(bool).sum())
        lapsed = self.idle[self.idle["status"] == "lapsed"]
        return "\n".join(
            [
                f"存量土地盘点 stock-land review as of {self.as_of.isoformat()}",
                f"  闲置土地 idle parcels: {len(idle)}, {idle['area_m2'].sum() / 10_000:,.2f} ha; "
                f"闲置费 idle fees due (R11): {fee:,.0f} 元 yuan; 应无偿收回 due for reclamation: {due}",
                f"  批而未供 approved-unsupplied cohorts: {len(self.cohorts)}; "
                f"近五年供地率 five-year supply rate: {self.supply_rate:.1%}; "
                f"失效批文 lapsed (R9): {len(lapsed)}, {lapsed['area_m2'].sum() / 10_000:,.2f} ha",
                f"  可供重点项目的存量 stock available to key projects: {len(self.available)} parcels, "
                f"{self.available['area_m2'].sum() / 10_000:,.2f} ha",
            ]
        )

    def _repr_html_(self) -> str:
        import html as _html

        cols = [
            c
            for c in (
                "stock_id",
                "status",
                "days_idle",
                "fee_due_yuan",
                "reclaim_deadline",
                "area_m2",
            )
            if c in self.idle
        ]
        return (
            "<pre>"
            + _html.escape(str(self))
            + "</pre>"
            + pd.DataFrame(self.idle[cols]).to_html(index=False, na_rep="")
        )


def returned_stock_ids(ledger: pd.DataFrame) -> set[str]:
    """Stock parcels whose lapsed area was returned as quota (R9) and not reversed since.

    Their area is counted in the ``new_construction`` pool; offering the land as
    stock too would count it twice, so :func:`available_stock` callers leave
    them out.
    """
    if not len(ledger):
        return set()
    ret = ledger[ledger["kind"] == "lapse_return"]
    reversed_ids = set(ledger["reverses"].dropna().astype(str))
    return {str(r.source) for r in ret.itertuples(index=False) if str(r.entry_id) not in reversed_ids}


def lapse_returns(
    stock: gpd.GeoDataFrame,
    ledger: pd.DataFrame,
    *,
    as_of: date,
    stock_ids: Iterable[str],
    taken: Iterable[str] = (),
    decision: str,
) -> pd.DataFrame:
    """Build the ledger entries returning lapsed approvals' unsupplied land as quota (R9).

    R9: an approval older than two years with no land use or compensation lapses;
    its unsupplied area leaves the available stock and, *where the plan allows*,
    returns as quota. Whether the plan allows is the bureau's decision, so nothing
    is returned automatically: the caller names the parcels and the decision
    (a document number). Each becomes one ``lapse_return`` credit of its
    ellipsoidal area (R1) to ``new_construction``, vintage ``as_of``'s year.

    Parameters
    ----------
    stock, ledger : the ``stock_land`` and ``quota_ledger`` layers.
    as_of : datetime.date
        The decision date: the entries count from it, and the parcels must have
        lapsed by then.
    stock_ids : iterable of str
        The lapsed parcels to return.
    taken : iterable of str, optional
        Stock matched to projects by committed runs; such a parcel cannot be returned
        (revert the run first).
    decision : str
        The document deciding the return, kept in the entries' note; their
        ``source`` is the stock id (as a linkage credit's is the linkage id).

    Returns
    -------
    pandas.DataFrame
        New ``quota_ledger`` rows, ids ``lapse:<stock_id>``; parcels already
        returned are skipped, so a repeated call writes nothing (idempotent).

    Raises
    ------
    ParameterError
        An unknown id, a parcel that has not lapsed as of ``as_of`` (with its
        status and, for approved-unsupplied land, the day it would lapse), a
        parcel already given to a project, or an empty ``decision``.
    """
    from landquota.rules.ledger import _entries_frame

    if not str(decision or "").strip():
        raise ParameterError("decision='' — give the document that decides the return (R9: 'where the plan allows')")
    ids = [str(i) for i in stock_ids]
    if not ids:
        raise ParameterError("stock_ids is empty; name the lapsed parcels to return (see `landquota idle`)")
    review = idle_review(stock, as_of=as_of).set_index("stock_id")
    taken_ids = {str(t) for t in taken}
    done = returned_stock_ids(ledger)
    used_entry_ids = set(ledger["entry_id"].astype(str)) if len(ledger) else set()
    rows: list[dict[str, Any]] = []
    for sid in dict.fromkeys(ids):  # keep order, drop repeats
        if sid not in review.index:
            raise ParameterError(f"stock_id {sid!r} is not in the stock_land layer")
        r = review.loc[sid]
        if r["status"] != "lapsed":
            when = r.get("lapse_date")
            hint = (
                f"; it lapses on {pd.Timestamp(when).date().isoformat()} if no land is used by then"
                if r["status"] == "approved_unsupplied" and pd.notna(when)
                else ""
            )
            raise ParameterError(
                f"stock_id {sid!r} has status {r['status']!r} as of {as_of.isoformat()}, not 'lapsed' "
                f"(R9: approved more than 2 years ago, no land used){hint}"
            )
        if sid in taken_ids:
            raise ParameterError(
                f"stock_id {sid!r} was given to a project by a committed run; revert that run "
                "before returning the land as quota"
            )
        if sid in done:
            continue
        n, entry_id = 1, f"lapse:{sid}"
        while entry_id in used_entry_ids:  # returned, reversed, returned again
            n += 1
            entry_id = f"lapse:{sid}:{n}"
        rows.append(
            {
                "entry_id": entry_id,
                "pool": "new_construction",
                "kind": "lapse_return",
                "amount": float(r["area_m2"]),
                "year": int(as_of.year),
                "effective_date": pd.Timestamp(as_of),
                "source": sid,
                "note": (
                    f"R9: approval lapsed on {pd.Timestamp(r['lapse_date']).date().isoformat()}; "
                    f"unsupplied area returned as quota by {decision.strip()}"
                ),
            }
        )
    return _entries_frame(rows)


def return_lapsed(
    ws: Workspace, stock_ids: Iterable[str], *, as_of: date, decision: str, write: bool = True
) -> pd.DataFrame:
    """Return lapsed approvals' unsupplied land as quota in the workspace's ledger (R9).

    See :func:`lapse_returns`. The entries are appended atomically with the R6
    check (a return is a credit, so it never overdraws); the parcels are no
    longer offered as stock to projects. Returns the entries written (or, with
    ``write=False``, the ones that would be).
    """
    entries = lapse_returns(
        ws.read_layer("stock_land"),
        ws.read_layer("quota_ledger"),
        as_of=as_of,
        stock_ids=stock_ids,
        taken=committed_stock_ids(ws),
        decision=decision,
    )
    if write and len(entries):
        entries = ws.append_ledger(entries)
    return entries


def review_stock(ws: Workspace, *, as_of: date) -> StockReview:
    """Review the workspace's stock land as of a date: idle land, cohorts, available stock.

    Stock already matched to projects by committed runs, or returned as quota
    (R9, :func:`return_lapsed`), is not offered again.
    """
    stock = ws.read_layer("stock_land")
    # land already given to a project, or returned as quota (R9), is not offered again
    gone = committed_stock_ids(ws) | returned_stock_ids(ws.read_layer("quota_ledger"))
    return StockReview(
        as_of=as_of,
        idle=idle_review(stock, as_of=as_of),
        cohorts=unsupplied_cohorts(stock, as_of=as_of),
        supply_rate=five_year_supply_rate(stock, as_of=as_of),
        available=available_stock(stock, as_of=as_of, taken=gone),
    )


def committed_stock_ids(ws: Workspace) -> set[str]:
    """Stock parcels already given to projects by committed runs (not reverted)."""
    committed = ws.read_layer("allocation_runs", where={"status": "committed"}, columns=["status"])
    if not len(committed):
        return set()
    rows = ws.read_layer(
        "allocations", where={"run_id": committed["run_id"].tolist()}, columns=["stock_id"]
    )
    return set(rows["stock_id"].dropna().astype(str))
