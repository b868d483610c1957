"""Legal thresholds at the edge: exactly at, one unit below and one unit above (R7–R11, R14).

The unit is the law's and the survey's: 0.01 m² for areas, one day for dates
(``landquota.rules.thresholds``). Each case names the article's wording.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pandas as pd
import pytest
from geoms import Grid, frame

from landquota.rules.compliance import (
    STATE_COUNCIL_CULTIVATED_M2,
    STATE_COUNCIL_OTHER_M2,
    compliance_of_sites,
)
from landquota.rules.demand import demand_from_sites
from landquota.rules.thresholds import (
    THRESHOLDS,
    anniversary,
    area_at_most,
    area_exceeds,
    area_units,
    day,
    full_years_reached,
    more_than_years,
    ratio_under,
)

U = 0.01  # one unit of area, m²
G = Grid()
ALL = G.rect(-2_000, -2_000, 4_000, 4_000)

# ------------------------------------------------------------------ the helpers


def test_area_units_round_half_up_at_the_survey_unit() -> None:
    assert area_units(350000.00000000006) == 35_000_000  # the float of "exactly 35 ha"
    assert area_units(0.29) == 29  # 0.29 × 100 = 28.999999999999996 in floats
    assert area_units(0.005) == 1  # half up (四舍五入)
    assert area_units(0.0049) == 0
    assert np.isnan(area_units(float("nan")))
    assert list(area_units(np.array([1.234, 1.235]))) == [123, 124]


@pytest.mark.parametrize(
    ("value", "exceeds"),
    [
        (350_000.0 - U, False),  # one unit below
        (350_000.0, False),  # exactly: 超过 is strict
        (350000.00000000006, False),  # exactly, as a float computes it
        (350_000.0 + 0.004, False),  # rounds to exactly 35 ha
        (350_000.0 + U, True),  # one unit above
        (float("nan"), False),
    ],
)
def test_area_exceeds(value: float, exceeds: bool) -> None:
    assert area_exceeds(value, STATE_COUNCIL_CULTIVATED_M2) is exceeds


def test_area_at_most_vectorised() -> None:
    got = area_at_most(np.array([100.0 - U, 100.0, 100.0 + U, 100.00000000001]), 100.0)
    assert got.tolist() == [True, True, False, True]


@pytest.mark.parametrize(
    ("as_of", "reached", "more_than"),
    [
        ("2014-04-29", False, False),  # one day below the anniversary
        ("2014-04-30", True, False),  # on it: 满一年 holds, 超过一年 not yet
        ("2014-05-01", True, True),  # one day above
    ],
)
def test_year_periods_in_whole_days(as_of: str, reached: bool, more_than: bool) -> None:
    start = pd.Timestamp("2013-04-30 17:45")  # a time of day does not move the deadline
    assert full_years_reached(start, pd.Timestamp(as_of), 1) is reached
    assert more_than_years(start, pd.Timestamp(as_of + " 23:59"), 1) is more_than
    assert full_years_reached(pd.NaT, pd.Timestamp(as_of), 1) is False


def test_anniversary_of_29_february_and_day() -> None:
    assert anniversary("2012-02-29", 1) == pd.Timestamp("2013-02-28")
    assert day(pd.Timestamp("2014-04-30 08:00", tz="Asia/Shanghai")) == pd.Timestamp("2014-04-30")


@pytest.mark.parametrize(
    ("value", "under"), [(1 / 3 - 1e-9, True), (1 / 3, False), (1 / 3 + 1e-9, False), (None, False)]
)
def test_ratio_under(value: float | None, under: bool) -> None:
    assert ratio_under(value, 1 / 3) is under


def test_every_threshold_is_cited_in_the_rules_doc() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[1] / "docs" / "rules.md").read_text(encoding="utf-8")
    for t in THRESHOLDS:
        assert t.wording in doc, t
        assert t.article.split(" (")[0] in doc, t


# ------------------------------------------------------------------ R14 through the net area


def _r14(width: float, height: float, cultivated: Any) -> pd.Series:
    """One dry-land site; the patch's TBDLMJ/TBMJ makes its net cultivated area *cultivated(A)*.

    A is the site's ellipsoidal area: TBMJ = A, TBDLMJ = cultivated(A), so the net
    area is A × cultivated(A) / A, a float within an ulp or so of the figure (R2).
    """
    site = frame(
        [{"project_id": "P1", "national_exception": False, "geometry": G.rect(0, 0, width, height)}]
    )
    patch = G.rect(-100, -100, width + 100, height + 100)

    def parcels(gross: float, net: float) -> Any:
        return frame(
            [
                {
                    "parcel_id": "A",
                    "land_class": "0103",
                    "gross_m2": gross,
                    "net_m2": net,
                    "geometry": patch,
                }
            ]
        )

    area = float(demand_from_sites(site, parcels(1.0, 1.0)).table["cultivated_m2"].iloc[0])
    demand = demand_from_sites(site, parcels(area, cultivated(area)))
    lines = frame(
        [
            {
                "line_id": "L",
                "kind": "urban_boundary",
                "plan_version": "2020",
                "geometry": G.rect(5_000, 5_000, 5_100, 5_100),
            }
        ]
    )
    zones = frame(
        [{"zone_id": "Z", "zone_type": "allowed", "plan_version": "2020", "geometry": ALL}]
    )
    return compliance_of_sites(site, zones, lines, demand=demand).iloc[0]


@pytest.mark.parametrize(
    ("delta", "level"),
    [(-U, "province"), (0.0, "province"), (U, "state_council")],
)
def test_r14_other_cultivated_35_ha(delta: float, level: str) -> None:
    # Art. 46: 永久基本农田以外的耕地超过三十五公顷的 -> State Council; exactly 35 ha is the province's.
    row = _r14(600, 600, lambda a: STATE_COUNCIL_CULTIVATED_M2 + delta)
    assert row["other_cultivated_m2"] == pytest.approx(350_000 + delta, abs=1e-6)
    assert row["other_land_m2"] < STATE_COUNCIL_OTHER_M2  # ~1 ha: only the 35 ha test can bite
    assert row["approval_level"] == level


@pytest.mark.parametrize(
    ("delta", "level"),
    [(-U, "province"), (0.0, "province"), (U, "state_council")],
)
def test_r14_other_land_70_ha_built_through_the_net_area(delta: float, level: str) -> None:
    # 1,000 m × 750 m ≈ 75 ha; the net cultivated area is A − (70 ha + delta), so the other
    # land (site − cultivated) is 70 ha + delta, computed through TBDLMJ/TBMJ (R2).
    # Art. 46: 其他土地超过七十公顷的 -> State Council.
    row = _r14(1_000, 750, lambda a: a - (STATE_COUNCIL_OTHER_M2 + delta))
    assert row["other_land_m2"] == pytest.approx(700_000 + delta, abs=1e-6)
    assert row["other_cultivated_m2"] < STATE_COUNCIL_CULTIVATED_M2
    assert row["approval_level"] == level


# ------------------------------------------------------------------ R9–R11 through the stock review


def _review(row: dict[str, Any], as_of: date) -> pd.Series:
    from test_stock import stock

    from landquota.rules.stock import idle_review

    return idle_review(stock([{"stock_id": "S", **row}]), as_of=as_of).iloc[0]


@pytest.mark.parametrize(
    ("as_of", "status"),
    [
        (date(2014, 4, 30), "approved_unsupplied"),  # exactly 2 years: not 超过 yet
        (date(2014, 4, 29), "approved_unsupplied"),  # one day below
        (date(2014, 5, 1), "lapsed"),  # one day above
    ],
)
def test_r9_lapse_after_more_than_two_years(as_of: date, status: str) -> None:
    # approved 2012-04-30 at 16:00: whole days, so the time of day changes nothing
    row = {
        "kind": "approved_unsupplied",
        "approval_date": "2012-04-30 16:00",
        "land_used": False,
        "cause": "none",
    }
    assert _review(row, as_of)["status"] == status


@pytest.mark.parametrize(
    ("as_of", "status", "fee"),
    [
        (date(2014, 4, 29), "not_idle", 0.0),  # one day below a full year
        (date(2014, 4, 30), "idle", 200_000.0),  # 满一年 on the anniversary: idle, fee 20 %
        (date(2014, 5, 1), "idle", 200_000.0),
    ],
)
def test_r10_r11_not_started_a_full_year(as_of: date, status: str, fee: float) -> None:
    r = _review({"agreed_start_date": "2013-04-30 09:30"}, as_of)
    assert r["status"] == status
    assert r["fee_due_yuan"] == fee


@pytest.mark.parametrize(
    ("as_of", "status"),
    [(date(2014, 2, 28), "not_idle"), (date(2014, 3, 1), "idle"), (date(2014, 3, 2), "idle")],
)
def test_r10_suspended_a_full_year(as_of: date, status: str) -> None:
    r = _review(
        {
            "actual_start_date": "2012-01-01",
            "developed_ratio": 0.2,
            "suspended_since": "2013-03-01",
        },
        as_of,
    )
    assert r["status"] == status


@pytest.mark.parametrize(
    ("developed", "invested", "status"),
    [
        (1 / 3 - 1e-6, 0.9, "idle"),  # under a third (不足三分之一)
        (1 / 3, 0.9, "not_idle"),  # exactly a third
        (1 / 3 + 1e-6, 0.9, "not_idle"),
        (0.9, 0.25 - 1e-6, "idle"),  # under 25 % invested (不足百分之二十五)
        (0.9, 0.25, "not_idle"),
        (0.9, 0.25 + 1e-6, "not_idle"),
    ],
)
def test_r10_low_development_or_investment(developed: float, invested: float, status: str) -> None:
    r = _review(
        {
            "actual_start_date": "2012-01-01",
            "developed_ratio": developed,
            "invested_ratio": invested,
            "suspended_since": "2013-03-01",
        },
        date(2014, 4, 30),
    )
    assert r["status"] == status


@pytest.mark.parametrize(
    ("as_of", "due"),
    [(date(2014, 4, 29), False), (date(2014, 4, 30), True), (date(2014, 5, 1), True)],
)
def test_r11_reclaimed_after_two_full_years(as_of: date, due: bool) -> None:
    # idle since 2012-04-30 (agreed start, never started); 满两年 on 2014-04-30 -> 无偿收回
    r = _review({"agreed_start_date": "2012-04-30 23:00"}, as_of)
    assert r["reclaim_deadline"] == pd.Timestamp("2014-04-30")
    assert bool(r["reclaim_due"]) is due


# ------------------------------------------------------------------ R7, R8 through the linkage review


@pytest.mark.parametrize(
    ("as_of", "overdue"),
    [(date(2014, 4, 29), False), (date(2014, 4, 30), False), (date(2014, 5, 1), True)],
)
def test_r8_overdue_only_after_three_years(as_of: date, overdue: bool) -> None:
    from test_linkage import fixtures

    from landquota.rules.linkage import linkage_review

    a, p, c = fixtures()  # L3: approved 2011-04-30, reclaimed 3,000 < turnover 10,000
    a.loc[a["linkage_id"] == "L3", "approval_date"] = pd.Timestamp("2011-04-30 18:00")
    r = linkage_review(a, p, c, as_of=as_of).set_index("linkage_id").loc["L3"]
    assert r["turnover_due_date"] == pd.Timestamp("2014-04-30")
    assert bool(r["overdue"]) is overdue


@pytest.mark.parametrize(("delta", "overdue"), [(-U, True), (0.0, False), (U, False)])
def test_r8_shortfall_against_tolerance_at_the_unit(delta: float, overdue: bool) -> None:
    from test_linkage import fixtures

    from landquota.rules.linkage import linkage_review

    a, p, c = fixtures()  # L2: overdue, short by 45,000 m²; tolerate 45,000 + delta
    r = linkage_review(a, p, c, as_of=date(2014, 4, 30), tolerance_m2=45_000.0 + delta)
    assert bool(r.set_index("linkage_id").loc["L2", "overdue"]) is overdue


@pytest.mark.parametrize(("delta", "ok"), [(-U, False), (0.0, True), (U, True)])
def test_r7_construction_at_most_reclaimed_at_the_unit(delta: float, ok: bool) -> None:
    from test_linkage import fixtures

    from landquota.rules.linkage import linkage_review

    a, p, c = fixtures()
    # L1: construction ≈ 20,000 m² (two 100 m squares); reclaim exactly that, ± one unit
    first = linkage_review(a, p, c, as_of=date(2014, 4, 30)).set_index("linkage_id").loc["L1"]
    built = float(first["construction_m2"])
    demo = p.index[(p["linkage_id"] == "L1") & (p["role"] == "demolition")]
    p.loc[demo, "reclaimed_m2"] = [built + delta, 0.0]
    r = linkage_review(a, p, c, as_of=date(2014, 4, 30)).set_index("linkage_id").loc["L1"]
    assert bool(r["r7_ok"]) is ok
