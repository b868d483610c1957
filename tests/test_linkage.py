"""Linkage project areas: R7 balance, R8 turnover deadline, R5 surplus and its idempotent credit.

Construction plots are lon/lat rectangles whose sides are 100 m on the ellipsoid,
so each is 10,000 m² (to ~1e-5). Review date 2014-04-30.
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

from landquota.errors import CRSError, DataError
from landquota.rules.ledger import balances, empty_entries
from landquota.rules.linkage import linkage_credits, linkage_review

AS_OF = date(2014, 4, 30)
GEOD = Geod(ellps="GRS80")


def rect(i: int, side: float = 100.0) -> tuple[float, float, float, float]:
    lon0, lat0 = 112.6 + 0.01 * i, 24.5
    return lon0, lat0, GEOD.fwd(lon0, lat0, 90, side)[0], GEOD.fwd(lon0, lat0, 0, side)[1]


def mp(x0: float, y0: float, x1: float, y1: float) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([shapely.box(x0, y0, x1, y1)])


def fixtures() -> tuple[pd.DataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    areas = pd.DataFrame(
        {
            "linkage_id": ["L1", "L2", "L3"],
            "name": ["青莲项目区", "七拱项目区", "黄坌项目区"],
            "town": ["青莲镇", "七拱镇", "黄坌镇"],
            "approval_date": pd.to_datetime(["2011-03-01", "2010-06-01", "2011-04-30"]),
            "turnover_quota_m2": [30_000.0, 50_000.0, 10_000.0],
            "acceptance": ["passed", "pending", "passed"],
            "acceptance_date": pd.to_datetime(["2014-03-01", None, "2014-06-01"]),
        }
    )
    c1, c2, c3, c4 = rect(0), rect(1), rect(2), rect(3)
    xm = (c1[0] + c1[2]) / 2  # C1's west half is on paddy, its east half on homestead
    plots = gpd.GeoDataFrame(
        {
            "plot_id": ["D1", "D2", "C1", "C2", "D3", "C3", "D4", "C4"],
            "linkage_id": ["L1", "L1", "L1", "L1", "L2", "L2", "L3", "L3"],
            "role": [
                "demolition",
                "demolition",
                "construction",
                "construction",
                "demolition",
                "construction",
                "demolition",
                "construction",
            ],
            "reclaimed_m2": [20_000.0, 12_000.0, None, None, 5_000.0, None, 3_000.0, None],
            "reclaimed_cultivated_m2": [15_000.0, 8_000.0, None, None, 1_000.0, None, 0.0, None],
        },
        geometry=[
            mp(*rect(10)),
            mp(*rect(11)),
            mp(*c1),
            mp(*c2),
            mp(*rect(12)),
            mp(*c3),
            mp(*rect(13)),
            mp(*c4),
        ],
        crs="EPSG:4490",
    )
    d = 0.001
    parcels = gpd.GeoDataFrame(
        {
            "parcel_id": ["P1", "P2", "P3", "P4", "P5"],
            # P1: paddy with TBDLMJ/TBMJ = 90,000/100,000 = 0.9 (the gross area is the
            # attribute, not the drawn one); P3 paddy without a ridge deduction
            "land_class": ["0101", "0702", "0702", "0101", "0301"],
            "gross_m2": [100_000.0, 50_000.0, 50_000.0, 20_000.0, None],
            "net_m2": [90_000.0, 50_000.0, 50_000.0, 20_000.0, 80_000.0],
        },
        geometry=[
            mp(c1[0] - d, c1[1] - d, xm, c1[3] + d),
            mp(xm, c1[1] - d, c1[2] + d, c1[3] + d),
            mp(c2[0] - d, c2[1] - d, c2[2] + d, c2[3] + d),
            mp(c3[0] - d, c3[1] - d, c3[2] + d, c3[3] + d),
            mp(c4[0] - d, c4[1] - d, c4[2] + d, c4[3] + d),
        ],
        crs="EPSG:4490",
    )
    return areas, plots, parcels


@pytest.fixture
def review() -> pd.DataFrame:
    a, p, c = fixtures()
    return linkage_review(a, p, c, as_of=AS_OF).set_index("linkage_id")


def test_areas_and_cultivated_occupation(review: pd.DataFrame) -> None:
    # L1: demolition 20,000 + 12,000 = 32,000; construction C1 + C2 = 2 x 10,000 = 20,000;
    # reclaimed cultivated 15,000 + 8,000 = 23,000; occupied cultivated: C1's west half
    # (5,000 m²) on P1 at net ratio 0.9 -> 4,500 (R2); C2 is on 0702 -> 0.
    l1 = review.loc["L1"]
    assert l1["demolition_m2"] == pytest.approx(32_000.0)
    assert l1["construction_m2"] == pytest.approx(20_000.0, rel=1e-4)
    assert l1["reclaimed_cultivated_m2"] == pytest.approx(23_000.0)
    assert l1["occupied_cultivated_m2"] == pytest.approx(4_500.0, rel=1e-4)
    # L3: C4 on forest 0301 -> no cultivated land occupied
    assert review.loc["L3", "occupied_cultivated_m2"] == 0.0


def test_r7_balance(review: pd.DataFrame) -> None:
    # L1: 20,000 <= 32,000 and 23,000 >= 4,500 -> ok.
    assert bool(review.loc["L1", "r7_ok"]) is True
    assert review.loc["L1", ["construction_excess_m2", "cultivated_shortfall_m2"]].tolist() == [
        0.0,
        0.0,
    ]
    # L2: construction 10,000 > reclaimed 5,000 -> excess 5,000; C3 lies wholly on paddy
    # P4 (net = gross) -> occupied 10,000 > reclaimed cultivated 1,000 -> shortfall 9,000.
    l2 = review.loc["L2"]
    assert bool(l2["r7_ok"]) is False
    assert l2["construction_excess_m2"] == pytest.approx(5_000.0, rel=1e-3)
    assert l2["cultivated_shortfall_m2"] == pytest.approx(9_000.0, rel=1e-3)
    # L3: construction 10,000 > reclaimed 3,000 -> fails on the first test only
    assert bool(review.loc["L3", "r7_ok"]) is False
    assert review.loc["L3", "cultivated_shortfall_m2"] == 0.0


def test_r7_tolerance() -> None:
    a, p, c = fixtures()
    # L3 misses by 10,000 - 3,000 = 7,000 m²: a 7,100 m² tolerance accepts it, 6,900 not
    # (computed area is 10,000 to ~1e-5, i.e. within 0.1 m²).
    ok = linkage_review(a, p, c, as_of=AS_OF, tolerance_m2=7_100.0).set_index("linkage_id")
    ko = linkage_review(a, p, c, as_of=AS_OF, tolerance_m2=6_900.0).set_index("linkage_id")
    assert bool(ok.loc["L3", "r7_ok"]) is True
    assert bool(ko.loc["L3", "r7_ok"]) is False


def test_r8_turnover_due_and_overdue(review: pd.DataFrame) -> None:
    # due = approval + 3 years
    assert review["turnover_due_date"].tolist() == list(
        pd.to_datetime(["2014-03-01", "2013-06-01", "2014-04-30"])
    )
    # L1: past due, but reclaimed 32,000 >= quota 30,000 -> not overdue
    # L2: past due (2013-06-01), reclaimed 5,000 < 50,000 -> overdue, short by 45,000
    # L3: due on the review date itself: not yet *past* due -> not overdue (short 7,000)
    assert review["overdue"].tolist() == [False, True, False]
    assert review["turnover_shortfall_m2"].tolist() == [0.0, 45_000.0, 7_000.0]
    a, p, c = fixtures()
    later = linkage_review(a, p, c, as_of=date(2014, 5, 1)).set_index("linkage_id")
    assert bool(later.loc["L3", "overdue"]) is True


def test_r5_surplus_creditable_only_after_acceptance(review: pd.DataFrame) -> None:
    # L1 surplus = 32,000 - 20,000 = 12,000, accepted 2014-03-01 -> creditable.
    # L2 pending; L3 passes only on 2014-06-01, after the review date.
    assert review.loc["L1", "surplus_m2"] == pytest.approx(12_000.0, rel=1e-4)
    assert review.loc["L2", "surplus_m2"] == 0.0  # never negative
    assert review["creditable"].tolist() == [True, False, False]


def test_credit_once_then_idempotent(review: pd.DataFrame) -> None:
    r = review.reset_index()
    first = linkage_credits(r, empty_entries(), as_of=AS_OF)
    assert first["entry_id"].tolist() == ["linkage:L1:1"]
    e = first.iloc[0]
    assert (e["pool"], e["kind"], e["source"], e["year"]) == (
        "linkage_surplus",
        "linkage_credit",
        "L1",
        2014,
    )
    assert e["amount"] == pytest.approx(12_000.0, rel=1e-4)
    assert e["effective_date"] == pd.Timestamp("2014-03-01")  # the acceptance date
    # a repeated run after the credit was written credits nothing
    again = linkage_credits(r, first, as_of=AS_OF)
    assert again.empty
    assert list(again.columns) == list(first.columns)
    # and the pure function is deterministic
    pd.testing.assert_frame_equal(first, linkage_credits(r, empty_entries(), as_of=AS_OF))


def test_credit_only_the_growth(review: pd.DataFrame) -> None:
    r = review.reset_index()
    first = linkage_credits(r, empty_entries(), as_of=AS_OF)
    grown = r.assign(surplus_m2=np.where(r["linkage_id"] == "L1", 15_000.0, r["surplus_m2"]))
    top_up = linkage_credits(grown, first, as_of=date(2014, 9, 1))
    # 15,000 - 12,000 (credited) = 3,000, effective on the run date
    assert top_up["entry_id"].tolist() == ["linkage:L1:2"]
    assert top_up.iloc[0]["amount"] == pytest.approx(15_000.0 - first.iloc[0]["amount"])
    assert top_up.iloc[0]["effective_date"] == pd.Timestamp("2014-09-01")
    both = pd.concat([first, top_up], ignore_index=True)
    bal = balances(both).set_index("pool")
    assert bal.loc["linkage_surplus", "balance"] == pytest.approx(15_000.0)
    # a shrunken surplus is never debited automatically
    shrunk = r.assign(surplus_m2=1_000.0)
    assert linkage_credits(shrunk, both, as_of=date(2014, 9, 1)).empty


def test_reversed_credit_can_be_credited_again(review: pd.DataFrame) -> None:
    r = review.reset_index()
    first = linkage_credits(r, empty_entries(), as_of=AS_OF)
    rev = first.assign(
        entry_id="adj:1",
        kind="reversal",
        amount=-first["amount"],
        reverses=first["entry_id"],
        source="doc 2014-7",
    )
    again = linkage_credits(r, pd.concat([first, rev], ignore_index=True), as_of=AS_OF)
    # credited net 12,000 - 12,000 = 0 -> the full surplus again, as entry 2
    assert again["entry_id"].tolist() == ["linkage:L1:2"]
    assert again.iloc[0]["amount"] == pytest.approx(first.iloc[0]["amount"])


def test_credit_waits_for_acceptance_date(review: pd.DataFrame) -> None:
    a, p, c = fixtures()
    later = linkage_review(a, p, c, as_of=date(2014, 7, 1))
    # on 2014-07-01 L3 has passed too, but its surplus is 3,000 - 10,000 < 0 -> nothing
    got = linkage_credits(later, empty_entries(), as_of=date(2014, 7, 1))
    assert got["source"].tolist() == ["L1"]


@pytest.mark.parametrize(
    ("change", "error", "match"),
    [
        (lambda a, p, c: (a.assign(acceptance="maybe"), p, c), DataError, "acceptance='maybe'"),
        (lambda a, p, c: (a, p.assign(role="road"), c), DataError, "role='road'"),
        (lambda a, p, c: (a[a.linkage_id != "L2"], p, c), DataError, "'L2'"),
        (lambda a, p, c: (a.assign(approval_date=pd.NaT), p, c), DataError, "approval_date"),
        (
            lambda a, p, c: (a, p, c.to_crs(4326).set_crs(4547, allow_override=True)),
            CRSError,
            "EPSG:4547",
        ),
        (lambda a, p, c: (a.drop(columns="acceptance"), p, c), DataError, "'acceptance'"),
    ],
)
def test_invalid_inputs(change: Any, error: type[Exception], match: str) -> None:
    a, p, c = change(*fixtures())
    with pytest.raises(error, match=match):
        linkage_review(a, p, c, as_of=AS_OF)


def test_unknown_land_class_under_a_plot_is_an_error() -> None:
    a, p, c = fixtures()
    c.loc[c["parcel_id"] == "P4", "land_class"] = "9999"
    with pytest.raises(DataError, match="9999"):
        linkage_review(a, p, c, as_of=AS_OF)


def test_plot_off_the_survey_is_refused_unless_asked() -> None:
    a, p, c = fixtures()
    # drop P3, the only patch under C2: 10,000 m² of C2 lie on no patch
    c = c[c["parcel_id"] != "P3"]
    with pytest.raises(DataError, match="C2"):
        linkage_review(a, p, c, as_of=AS_OF)
    r = linkage_review(a, p, c, as_of=AS_OF, check_coverage=False).set_index("linkage_id")
    # the area still counts in full; its occupied cultivated land is unknown, counted 0
    assert r.loc["L1", "construction_m2"] == pytest.approx(20_000.0, rel=1e-4)
    assert r.loc["L1", "occupied_cultivated_m2"] == pytest.approx(4_500.0, rel=1e-4)
