"""Stock land: idle review (R10–R12), approved-unsupplied cohorts (R9), available stock.

Every parcel is a lon/lat rectangle whose sides are N metres on the ellipsoid,
so its area is N² m² (to ~1e-5); the review date is 2014-04-30 unless a test
says otherwise.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import Geod

from landquota.errors import DataError, ParameterError
from landquota.rules.stock import (
    STOCK_STATUSES,
    available_stock,
    five_year_supply_rate,
    idle_review,
    unsupplied_cohorts,
)

AS_OF = date(2014, 4, 30)
GEOD = Geod(ellps="GRS80")  # the CGCS2000 ellipsoid differs from GRS80 by ~0.1 mm in b


def square(i: int, side: float = 100.0) -> shapely.MultiPolygon:
    """A side × side metre lon/lat rectangle, the i-th along a row near Yangshan."""
    lon0, lat0 = 112.6 + 0.01 * i, 24.5
    lon1 = GEOD.fwd(lon0, lat0, 90, side)[0]
    lat1 = GEOD.fwd(lon0, lat0, 0, side)[1]
    return shapely.MultiPolygon([shapely.box(lon0, lat0, lon1, lat1)])


def ts(s: str | None) -> pd.Timestamp:
    return pd.Timestamp(s) if s else pd.NaT


def stock(rows: list[dict[str, Any]]) -> gpd.GeoDataFrame:
    """Stock rows with defaults: a supplied enterprise parcel, land price 1,000,000 yuan."""
    base = {
        "kind": "supplied",
        "cause": "enterprise",
        "land_price_yuan": 1_000_000.0,
        "disposal_status": "none",
        "disposal_method": "none",
        "land_used": True,
        "planned_use": "industrial",
        "town": "阳城镇",
    }
    full = [{**base, **r} for r in rows]
    geoms = [square(i, r.pop("side", 100.0)) for i, r in enumerate(full)]
    df = pd.DataFrame(full)
    for col in (
        "approval_date",
        "supply_date",
        "agreed_start_date",
        "actual_start_date",
        "suspended_since",
        "disposal_date",
    ):
        df[col] = pd.to_datetime(df[col]) if col in df else pd.NaT
    return gpd.GeoDataFrame(df, geometry=geoms, crs="EPSG:4490")


def one(row: dict[str, Any], as_of: date = AS_OF) -> pd.Series:
    return idle_review(stock([{"stock_id": "S", **row}]), as_of=as_of).iloc[0]


# --- R10: idle status, both branches -----------------------------------------------------


def test_r10_not_started_enterprise_fee_and_reclamation() -> None:
    # Agreed start 2012-03-01, never started. On 2014-04-30: anniversaries 2013-03-01 and
    # 2014-03-01 passed -> idle, 2 full years; days = 365 + 365 + 31 (Mar) + 29 (Apr) = 790.
    # R11: fee = 20 % x 1,000,000 = 200,000 yuan; reclaim deadline = 2012-03-01 + 2 y =
    # 2014-03-01, passed -> reclamation due.
    r = one({"supply_date": "2011-06-01", "agreed_start_date": "2012-03-01"})
    assert r["status"] == "idle"
    assert r["idle_rule"] == "not_started"
    assert r["idle_since"] == ts("2012-03-01")
    assert r["days_idle"] == 790
    assert r["idle_years"] == 2
    assert r["fee_due_yuan"] == pytest.approx(200_000.0)
    assert r["reclaim_deadline"] == ts("2014-03-01")
    assert bool(r["reclaim_due"]) is True
    assert r["case_state"] == "open"
    assert r["area_m2"] == pytest.approx(10_000.0, rel=1e-4)


@pytest.mark.parametrize(
    ("agreed", "status"),
    [
        ("2013-04-30", "idle"),  # anniversary falls on the review date: a full year has passed
        ("2013-05-01", "not_idle"),  # one day short of a full year
        ("2014-01-01", "not_idle"),
        (None, "not_idle"),  # no agreed start date: the first branch cannot apply
    ],
)
def test_r10_not_started_full_year_boundary(agreed: str | None, status: str) -> None:
    assert one({"supply_date": "2012-01-01", "agreed_start_date": agreed})["status"] == status


def test_r10_started_before_review_is_not_idle_even_if_late() -> None:
    # Agreed 2012-01-01 but started 2013-06-01 (late, yet before the review): not idle
    # under the first branch, and not suspended.
    r = one({"agreed_start_date": "2012-01-01", "actual_start_date": "2013-06-01"})
    assert r["status"] == "not_idle"
    # ... while on 2013-05-31 it had not started yet and was idle.
    assert (
        one(
            {"agreed_start_date": "2012-01-01", "actual_start_date": "2013-06-01"},
            as_of=date(2013, 5, 31),
        )["status"]
        == "idle"
    )


@pytest.mark.parametrize(
    ("developed", "invested", "suspended", "status", "rule"),
    [
        # developed 0.2 < 1/3, suspended since 2013-03-01 (>= a full year by 2014-04-30)
        (0.2, 0.9, "2013-03-01", "idle", "suspended_low_development"),
        # developed 0.5 >= 1/3 but invested 0.2 < 25 %
        (0.5, 0.2, "2013-03-01", "idle", "suspended_low_investment"),
        # both low: the development test is named first
        (0.1, 0.1, "2013-03-01", "idle", "suspended_low_development"),
        # neither low
        (0.5, 0.3, "2013-03-01", "not_idle", None),
        # exactly 1/3 developed and exactly 25 % invested are not "under"
        (1 / 3, 0.25, "2013-03-01", "not_idle", None),
        # low, but suspended for less than a year (2013-06-01 + 1 y > 2014-04-30)
        (0.2, 0.2, "2013-06-01", "not_idle", None),
        # low, never suspended
        (0.2, 0.2, None, "not_idle", None),
        # ratios unknown: not counted as low
        (None, None, "2013-03-01", "not_idle", None),
    ],
)
def test_r10_suspended_branch(
    developed: float | None,
    invested: float | None,
    suspended: str | None,
    status: str,
    rule: str | None,
) -> None:
    r = one(
        {
            "agreed_start_date": "2011-01-01",
            "actual_start_date": "2011-06-01",
            "developed_ratio": developed,
            "invested_ratio": invested,
            "suspended_since": suspended,
        }
    )
    assert r["status"] == status
    assert (r["idle_rule"] if pd.notna(r["idle_rule"]) else None) == rule


def test_r10_suspended_clock_starts_at_suspension() -> None:
    # Suspended 2013-03-01, developed 0.2: idle since 2013-03-01, 1 full year,
    # days = 365 + 31 + 29 = 425; fee 200,000; deadline 2015-03-01, not yet due.
    r = one(
        {
            "actual_start_date": "2012-01-01",
            "developed_ratio": 0.2,
            "suspended_since": "2013-03-01",
        }
    )
    assert (r["idle_since"], r["days_idle"], r["idle_years"]) == (ts("2013-03-01"), 425, 1)
    assert r["fee_due_yuan"] == pytest.approx(200_000.0)
    assert r["reclaim_deadline"] == ts("2015-03-01")
    assert bool(r["reclaim_due"]) is False


# --- R11: fee and reclamation ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cause", "fee", "deadline", "due"),
    [
        ("enterprise", 200_000.0, "2014-03-01", True),  # 20 % of 1,000,000
        ("government", 0.0, None, False),  # government cause: no fee, no free reclamation
        ("none", np.nan, None, False),  # cause undetermined: fee cannot be assessed
    ],
)
def test_r11_fee_by_cause(cause: str, fee: float, deadline: str | None, due: bool) -> None:
    r = one({"agreed_start_date": "2012-03-01", "cause": cause})
    assert r["status"] == "idle"
    if np.isnan(fee):
        assert np.isnan(r["fee_due_yuan"])
    else:
        assert r["fee_due_yuan"] == pytest.approx(fee)
    assert (r["reclaim_deadline"] if pd.notna(r["reclaim_deadline"]) else None) == (
        ts(deadline) if deadline else None
    )
    assert bool(r["reclaim_due"]) is due


@pytest.mark.parametrize(
    ("agreed", "due"),
    [
        ("2012-04-30", True),  # idle 2 years exactly on 2014-04-30 -> 无偿收回 due
        ("2012-05-01", False),  # one day short of 2 years
    ],
)
def test_r11_two_year_reclamation_boundary(agreed: str, due: bool) -> None:
    r = one({"agreed_start_date": agreed})
    assert r["reclaim_deadline"] == ts(agreed) + pd.DateOffset(years=2)
    assert bool(r["reclaim_due"]) is due


def test_r11_fee_is_twenty_percent_of_each_price() -> None:
    # 20 % of 2,500,000 = 500,000; of 0 = 0
    s = stock(
        [
            {"stock_id": "A", "agreed_start_date": "2012-01-01", "land_price_yuan": 2_500_000.0},
            {"stock_id": "B", "agreed_start_date": "2012-01-01", "land_price_yuan": 0.0},
        ]
    )
    assert idle_review(s, as_of=AS_OF)["fee_due_yuan"].tolist() == pytest.approx([500_000.0, 0.0])


# --- R12: disposal cases -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "case"),
    [
        ("extension", "idle", "open"),  # an extension alone never closes a case
        ("change_use", "idle", "open"),
        ("temporary_use", "idle", "open"),
        ("construction_started", "closed", "closed"),
        ("free_reclamation", "reclaimed", "closed"),
        ("paid_reclamation", "reclaimed", "closed"),
        ("swap", "swapped", "closed"),
    ],
)
def test_r12_only_started_reclaimed_or_swapped_closes(method: str, status: str, case: str) -> None:
    r = one(
        {
            "agreed_start_date": "2012-03-01",
            "cause": "government",
            "disposal_status": "open",
            "disposal_method": method,
            "disposal_date": "2014-01-15",
        }
    )
    assert (r["status"], r["case_state"]) == (status, case)


def test_r12_disposal_dated_after_review_is_not_yet_effective() -> None:
    r = one(
        {
            "agreed_start_date": "2012-03-01",
            "disposal_status": "closed",
            "disposal_method": "free_reclamation",
            "disposal_date": "2014-06-01",
        }
    )
    assert (r["status"], r["case_state"]) == ("idle", "open")
    assert bool(r["case_state_mismatch"]) is True  # the layer says closed; as of the date it is not


def test_r12_recorded_closed_extension_is_flagged() -> None:
    r = one(
        {
            "agreed_start_date": "2012-03-01",
            "disposal_status": "closed",
            "disposal_method": "extension",
            "disposal_date": "2013-06-01",
        }
    )
    assert r["case_state"] == "open"
    assert bool(r["case_state_mismatch"]) is True


def test_r12_extension_keeps_case_open_after_construction_starts() -> None:
    # Extended, then work started (not suspended): no longer idle, but the case stays
    # open until "construction_started" is recorded as the disposal.
    r = one(
        {
            "agreed_start_date": "2012-03-01",
            "actual_start_date": "2014-02-01",
            "disposal_status": "open",
            "disposal_method": "extension",
            "disposal_date": "2013-06-01",
        }
    )
    assert (r["status"], r["case_state"]) == ("not_idle", "open")


# --- R9 and the approved-unsupplied statuses ---------------------------------------------


@pytest.mark.parametrize(
    ("approval", "land_used", "status"),
    [
        ("2012-04-30", False, "approved_unsupplied"),  # exactly 2 years: not *older* than 2
        ("2012-04-29", False, "lapsed"),  # 2 years and a day
        ("2009-01-01", True, "approved_unsupplied"),  # land use carried out: never lapses
        ("2014-06-01", False, "not_yet_approved"),
    ],
)
def test_r9_lapse(approval: str, land_used: bool, status: str) -> None:
    r = one(
        {
            "kind": "approved_unsupplied",
            "approval_date": approval,
            "land_used": land_used,
            "cause": "none",
        }
    )
    assert r["status"] == status


def test_statuses_are_all_documented() -> None:
    s = stock(
        [
            {"stock_id": "a", "kind": "approved_unsupplied", "approval_date": "2013-01-01"},
            {
                "stock_id": "b",
                "kind": "approved_unsupplied",
                "approval_date": "2010-01-01",
                "land_used": False,
            },
            {"stock_id": "c", "supply_date": "2015-01-01"},
            {"stock_id": "d", "agreed_start_date": "2012-01-01"},
        ]
    )
    got = idle_review(s, as_of=AS_OF)["status"].tolist()
    assert got == ["approved_unsupplied", "lapsed", "not_yet_supplied", "idle"]
    assert set(got) <= set(STOCK_STATUSES)


# --- cohorts and the five-year supply rate (R9) ------------------------------------------


def cohort_stock() -> gpd.GeoDataFrame:
    return stock(
        [
            # batch A, approved 2010-05-01: U1 1 ha unsupplied and unused (lapsed by 2014),
            # S1 4 ha supplied 2011 (approval date read from the batch)
            {
                "stock_id": "U1",
                "kind": "approved_unsupplied",
                "approval_batch": "A",
                "approval_date": "2010-05-01",
                "land_used": False,
            },
            {"stock_id": "S1", "approval_batch": "A", "supply_date": "2011-03-01", "side": 200.0},
            # batch B, approved 2013-02-01: U2 1 ha (not lapsed yet), S2 9 ha supplied
            # 2013-09-01, S3 1 ha supplied only on 2014-06-01 (after the review date)
            {
                "stock_id": "U2",
                "kind": "approved_unsupplied",
                "approval_batch": "B",
                "approval_date": "2013-02-01",
                "land_used": False,
            },
            {
                "stock_id": "S2",
                "approval_batch": "B",
                "approval_date": "2013-02-01",
                "supply_date": "2013-09-01",
                "side": 300.0,
            },
            {
                "stock_id": "S3",
                "approval_batch": "B",
                "approval_date": "2013-02-01",
                "supply_date": "2014-06-01",
            },
            # batch C, 2008: outside the five-year window
            {
                "stock_id": "S4",
                "approval_batch": "C",
                "approval_date": "2008-07-01",
                "supply_date": "2009-01-01",
            },
            # supplied without an approval batch: existing construction land, no cohort
            {"stock_id": "S5", "supply_date": "2012-01-01", "side": 500.0},
            # batch D approved after the review date
            {
                "stock_id": "U3",
                "kind": "approved_unsupplied",
                "approval_batch": "D",
                "approval_date": "2014-06-01",
            },
        ]
    )


def test_cohorts_by_approval_year() -> None:
    # 2008: approved 1 ha, supplied 1 ha.
    # 2010: approved 1 + 4 = 5 ha, supplied 4 ha, unsupplied 1 ha, lapsed 1 ha (U1).
    # 2013: approved 1 + 9 + 1 = 11 ha, supplied 9 ha, unsupplied 2 ha (U2, S3), lapsed 0.
    c = unsupplied_cohorts(cohort_stock(), as_of=AS_OF)
    assert c["approval_year"].tolist() == [2008, 2010, 2013]
    assert c["batches"].tolist() == [1, 1, 1]
    ha = c[["approved_m2", "supplied_m2", "unsupplied_m2", "lapsed_m2"]].to_numpy() / 1e4
    np.testing.assert_allclose(ha, [[1, 1, 0, 0], [5, 4, 1, 1], [11, 9, 2, 0]], rtol=1e-4)
    np.testing.assert_allclose(c["supply_rate"], [1.0, 0.8, 9 / 11], rtol=1e-4)
    assert c["in_rate_window"].tolist() == [False, True, True]


def test_five_year_supply_rate() -> None:
    # window 2010-2014: supplied 4 + 9 = 13 ha of approved 5 + 11 = 16 ha -> 0.8125
    assert five_year_supply_rate(cohort_stock(), as_of=AS_OF) == pytest.approx(0.8125, rel=1e-4)
    c = unsupplied_cohorts(cohort_stock(), as_of=AS_OF)
    assert c.attrs["five_year_supply_rate"] == pytest.approx(0.8125, rel=1e-4)
    # a year later the window is 2011-2015: cohort 2013 has S3 supplied too (10 of 11 ha)
    # and U3 (1 ha, approved 2014-06-01) has joined: 10 / (11 + 1) ha
    assert five_year_supply_rate(cohort_stock(), as_of=date(2015, 4, 30)) == pytest.approx(
        10 / 12, rel=1e-4
    )


def test_cohort_needs_an_approval_date() -> None:
    s = stock([{"stock_id": "X", "kind": "approved_unsupplied", "approval_batch": "Z"}])
    with pytest.raises(DataError, match="'X'"):
        unsupplied_cohorts(s, as_of=AS_OF)


# --- available stock ---------------------------------------------------------------------


def test_available_stock_is_reclaimed_and_lapsed_land() -> None:
    s = stock(
        [
            {
                "stock_id": "R1",
                "agreed_start_date": "2011-01-01",
                "disposal_method": "free_reclamation",
                "disposal_status": "closed",
                "disposal_date": "2013-05-01",
                "side": 200.0,
            },
            {
                "stock_id": "L1",
                "kind": "approved_unsupplied",
                "approval_date": "2011-01-01",
                "land_used": False,
                "planned_use": "residential",
            },
            {
                "stock_id": "U1",
                "kind": "approved_unsupplied",
                "approval_date": "2013-01-01",
                "land_used": False,
            },  # not lapsed: still belongs to its approval
            {
                "stock_id": "W1",
                "agreed_start_date": "2011-01-01",
                "disposal_method": "swap",
                "disposal_date": "2013-05-01",
            },
            {"stock_id": "I1", "agreed_start_date": "2011-01-01"},  # idle, not yet reclaimed
            {
                "stock_id": "R2",
                "agreed_start_date": "2011-01-01",
                "disposal_method": "paid_reclamation",
                "disposal_date": "2014-01-01",
            },
        ]
    )
    a = available_stock(s, as_of=AS_OF, taken=["R2"])
    assert a["stock_id"].tolist() == ["L1", "R1"]
    assert a["source_status"].tolist() == ["lapsed", "reclaimed"]
    assert a["planned_use"].tolist() == ["residential", "industrial"]
    # L1 lapses the day after its second anniversary; R1 is available from its disposal
    assert a["available_since"].tolist() == [ts("2013-01-02"), ts("2013-05-01")]
    np.testing.assert_allclose(a["area_m2"], [10_000.0, 40_000.0], rtol=1e-4)
    assert list(a.columns[:5]) == ["stock_id", "area_m2", "planned_use", "town", "source_status"]
    assert a.crs == "EPSG:4490"


# --- invalid input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"kind": "idle"}, "kind='idle'"),
        ({"cause": "weather"}, "cause='weather'"),
        ({"disposal_method": "sell"}, "disposal_method='sell'"),
        ({"agreed_start_date": "not a date"}, "wrong value"),
    ],
)
def test_invalid_stock_rows(change: dict[str, Any], match: str) -> None:
    s = stock([{"stock_id": "S"}])
    for k, v in change.items():
        s[k] = pd.Series([v], dtype=object)
    with pytest.raises(DataError, match=match):
        idle_review(s, as_of=AS_OF)


@pytest.mark.parametrize("bad", [None, "soon", True])
def test_invalid_as_of(bad: Any) -> None:
    with pytest.raises(ParameterError, match="as_of"):
        idle_review(stock([{"stock_id": "S"}]), as_of=bad)


def test_plain_dataframe_is_refused() -> None:
    with pytest.raises(DataError, match="GeoDataFrame"):
        idle_review(pd.DataFrame({"stock_id": ["S"], "kind": ["supplied"]}), as_of=AS_OF)  # type: ignore[arg-type]


def test_cohort_without_batch_and_empty_layer() -> None:
    # an approved-unsupplied parcel without a batch still counts in its approval year
    s = stock([{"stock_id": "U", "kind": "approved_unsupplied", "approval_date": "2012-05-05"}])
    c = unsupplied_cohorts(s, as_of=AS_OF)
    assert c[["approval_year", "batches"]].values.tolist() == [[2012, 0]]
    assert c["unsupplied_m2"].iloc[0] == pytest.approx(10_000.0, rel=1e-4)
    empty = unsupplied_cohorts(s.iloc[:0], as_of=AS_OF)
    assert empty.empty and np.isnan(empty.attrs["five_year_supply_rate"])
    assert idle_review(s.iloc[:0], as_of=AS_OF).empty
    assert available_stock(s.iloc[:0], as_of=AS_OF).empty


# --- R9, second half: lapsed land returned as quota by decision --------------------------------
def _empty_ledger() -> pd.DataFrame:
    from landquota.rules.ledger import _entries_frame

    return _entries_frame([])


def _lapse_stock() -> gpd.GeoDataFrame:
    return stock(
        [
            {"stock_id": "L1", "kind": "approved_unsupplied", "approval_date": "2011-01-01", "land_used": False},
            {"stock_id": "U1", "kind": "approved_unsupplied", "approval_date": "2013-06-30", "land_used": False},
            {"stock_id": "S1", "supply_date": "2013-01-01"},
        ]
    )


def test_lapse_return_is_one_credit_of_the_ellipsoidal_area() -> None:
    from landquota.rules.stock import lapse_returns

    e = lapse_returns(_lapse_stock(), _empty_ledger(), as_of=AS_OF, stock_ids=["L1", "L1"], decision="阳国土〔2014〕9号")
    assert e[["entry_id", "pool", "kind", "source", "year"]].values.tolist() == [
        ["lapse:L1", "new_construction", "lapse_return", "L1", 2014]
    ]
    assert e["amount"].iloc[0] == pytest.approx(10_000, rel=1e-4)  # a 100 m × 100 m square, R1: 0.01 %
    assert "阳国土〔2014〕9号" in e["note"].iloc[0] and "2013-01-02" in e["note"].iloc[0]  # lapsed the day after


@pytest.mark.parametrize(
    ("ids", "kw", "words"),
    [
        (["U1"], {}, ["'U1'", "approved_unsupplied", "lapses on 2015-07-01"]),
        (["S1"], {}, ["'S1'", "not 'lapsed'"]),
        (["X9"], {}, ["'X9' is not in the stock_land layer"]),
        (["L1"], {"taken": ["L1"]}, ["committed run", "revert"]),
        (["L1"], {"decision": " "}, ["decision", "where the plan allows"]),
        ([], {}, ["stock_ids is empty"]),
    ],
)
def test_lapse_return_refusals(ids: list[str], kw: dict[str, Any], words: list[str]) -> None:
    from landquota.rules.stock import lapse_returns

    args: dict[str, Any] = {"decision": "D1", **kw}
    with pytest.raises(ParameterError) as exc:
        lapse_returns(_lapse_stock(), _empty_ledger(), as_of=AS_OF, stock_ids=ids, **args)
    for w in words:
        assert w in str(exc.value)


def test_lapse_return_again_after_a_reversal_gets_a_new_id() -> None:
    from landquota.rules.ledger import _entries_frame
    from landquota.rules.stock import lapse_returns, returned_stock_ids

    first = lapse_returns(_lapse_stock(), _empty_ledger(), as_of=AS_OF, stock_ids=["L1"], decision="D1")
    first["entered_at"] = pd.Timestamp("2014-04-30", tz="UTC")
    first["entered_by"] = "test"
    assert returned_stock_ids(first) == {"L1"}
    assert len(lapse_returns(_lapse_stock(), first, as_of=AS_OF, stock_ids=["L1"], decision="D1")) == 0
    rev = _entries_frame([{"entry_id": "rev:lapse:L1", "pool": "new_construction", "kind": "reversal",
                           "amount": -float(first["amount"].iloc[0]), "year": 2014,
                           "effective_date": pd.Timestamp(AS_OF), "source": "D2", "reverses": "lapse:L1"}])
    both = pd.concat([first, rev], ignore_index=True)
    assert returned_stock_ids(both) == set()  # reversed: the land is stock again
    again = lapse_returns(_lapse_stock(), both, as_of=AS_OF, stock_ids=["L1"], decision="D3")
    assert again["entry_id"].tolist() == ["lapse:L1:2"]
