"""Rules R1–R18 of the domain notes, each on a hand-checkable case, through a workspace.

Every test takes the ``ws`` fixture, so it runs on both backends (a GeoPackage
file and a PostGIS schema): it writes a tiny world with ``ws.write_layers``,
then calls the public workspace-level functions (``demand_from_workspace``,
``plan_allocation``, ``commit_run``, ``review_stock``, ``credit_linkage_surplus``,
``ws.append_ledger``) and checks the figures against the hand computation in
the comment next to each assertion.

Shapes are rectangles of ``tests.ruleworld.G`` (sides measured on the
ellipsoid), so a "100 m × 100 m" rectangle has 10,000 m² to ~1e-5; areas are
compared with ``rel=1e-4`` (R1's 0.01 %). See ``docs/rules.md`` for where each
rule is enforced and which tests check it.
"""

from __future__ import annotations

from datetime import date

import geopandas as gpd
import pandas as pd
import pytest

from landquota import errors
from landquota.allocation.runs import commit_run, plan_allocation, read_run
from landquota.engines.api import demand_from_workspace
from landquota.rules.adjustment import PlanAdjustment, check_r16
from landquota.rules.areas import ellipsoidal_area
from landquota.rules.bulletin import investment_bulletin, time_progress
from landquota.rules.ledger import balances
from landquota.rules.linkage import credit_linkage_surplus
from landquota.rules.stock import return_lapsed, review_stock
from tests import ruleworld as W
from tests.geoms import ZONE_EDGE_STRADDLING, Grid, geod_area

MAY1 = date(2014, 5, 1)
APR30 = date(2014, 4, 30)
REL = 1e-4  # R1: 0.01 %


def _balance(ws, pool: str) -> float:
    b = balances(ws.read_layer("quota_ledger"))
    return float(b.set_index("pool").loc[pool, "balance"])


def _by_id(frame: pd.DataFrame, column: str = "project_id") -> pd.DataFrame:
    return frame.set_index(column)


# --------------------------------------------------------------------------- R1


def test_r1_areas_read_back_are_ellipsoidal(ws) -> None:
    """R1: sites read back from the workspace measure their ellipsoidal area, as PostGIS does."""
    g = Grid()  # south-west corner on the 37/38 zone edge at 112.5°E
    square = W.mp(g.rect(0, 200, 100, 300))  # 100 m × 100 m, east of the edge
    straddling = W.mp(ZONE_EDGE_STRADDLING)  # 200 m × 100 m across the edge
    site_rows, patch_rows = [], []
    for pid, geom, wh in (("S1", square, (0, 0, 100, 100)), ("S2", straddling, (0, 0, 200, 100))):
        site_rows.append({**W.project(pid, wh), "geometry": geom})
        patch_rows.append({**W.parcel(f"P{pid}", "0702", wh), "geometry": geom})
    ws.write_layers({"parcels": W.parcels(patch_rows), "projects": W.projects(site_rows)})

    back = _by_id(ws.read_layer("projects"))
    area = ellipsoidal_area(back.geometry)
    # 100 m × 100 m = 10,000 m²; 200 m × 100 m = 20,000 m² (on the ellipsoid, R1)
    assert area[0] == pytest.approx(10_000.0, rel=REL)
    assert area[1] == pytest.approx(20_000.0, rel=REL)
    # and the geodesic reference of tests/geoms.py (GeographicLib, what PostGIS uses)
    assert area[1] == pytest.approx(geod_area(straddling), rel=REL)
    # the demand's site areas are the same ellipsoidal figures
    d = _by_id(demand_from_workspace(ws).table)
    assert d.loc["S1", "site_m2"] == pytest.approx(10_000.0, rel=REL)
    assert d.loc["S2", "site_m2"] == pytest.approx(20_000.0, rel=REL)

    if ws.kind != "postgis":
        return  # the ST_Area comparison needs PostGIS
    import sqlalchemy as sa

    stmt = sa.text(
        f'SELECT project_id, ST_Area(geom::geography) FROM "{ws.schema}".projects '
        "ORDER BY project_id"
    )
    with ws.engine.connect() as con:
        pg = dict(con.execute(stmt).all())
    # R1: within 0.01 % of PostGIS ST_Area(geom::geography)
    assert pg["S1"] == pytest.approx(area[0], rel=REL)
    assert pg["S2"] == pytest.approx(area[1], rel=REL)


# --------------------------------------------------------------------------- R2, R3, R4


def test_r2_r3_r4_half_paddy_half_homestead(ws) -> None:
    """The issue's example: 100 m × 100 m, half on 0101 with TBDLMJ/TBMJ = 0.9, half on 0702."""
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    # A: paddy, TBMJ 10,000, KCMJ 1,000, TBDLMJ 9,000 (0.9), 0.8 kg/m²
                    W.parcel("A", "0101", (0, 0, 100, 100), net=9_000.0, grain=0.8, xs=[50]),
                    # B: rural homestead (construction land)
                    W.parcel("B", "0702", (100, 0, 200, 100), xs=[150]),
                    # C: dry land, no yield of its own: the 0103 default 0.5 kg/m² applies
                    W.parcel("C", "0103", (300, 0, 400, 50)),
                ]
            ),
            "projects": W.projects(
                [
                    W.project("K1", (50, 0, 150, 100), xs=[100]),
                    W.project("K2", (300, 0, 400, 50)),
                ]
            ),
            "plan_zones": W.allowed_everywhere(),
        }
    )
    d = _by_id(demand_from_workspace(ws).table)
    k1 = d.loc["K1"]
    assert k1["site_m2"] == pytest.approx(10_000, rel=REL)
    # R3: 5,000 m² on 0101 (ridges included: they are agricultural land) → 5,000 of quota;
    # the 5,000 m² on 0702 (existing construction land) need none
    assert k1["agricultural_m2"] == pytest.approx(5_000, rel=REL)
    assert k1["construction_m2"] == pytest.approx(5_000, rel=REL)
    assert k1["unused_m2"] == 0.0
    assert k1["new_quota_m2"] == pytest.approx(5_000, rel=REL)
    # R2: cultivated = 5,000 × 9,000 / 10,000 = 4,500 m² (net share), all of it paddy
    assert k1["cultivated_m2"] == pytest.approx(4_500, rel=REL)
    assert k1["paddy_m2"] == pytest.approx(4_500, rel=REL)
    # R4: compensation on three dimensions: 4,500 m², 4,500 m² paddy, 4,500 × 0.8 = 3,600 kg
    assert k1["comp_area_m2"] == pytest.approx(4_500, rel=REL)
    assert k1["comp_paddy_m2"] == pytest.approx(4_500, rel=REL)
    assert k1["comp_grain_kg"] == pytest.approx(3_600, rel=REL)
    assert (k1["compliance"], k1["approval_level"], k1["reasons"]) == ("allowed", "province", "")
    k2 = d.loc["K2"]
    # 100 m × 50 m of dry land: quota 5,000, cultivated 5,000, paddy 0, grain 5,000 × 0.5 = 2,500 kg
    assert k2["new_quota_m2"] == pytest.approx(5_000, rel=REL)
    assert k2["comp_area_m2"] == pytest.approx(5_000, rel=REL)
    assert k2["comp_paddy_m2"] == 0.0
    assert k2["comp_grain_kg"] == pytest.approx(2_500, rel=REL)


def test_r3_demand_unchanged_when_the_survey_is_written_again(ws) -> None:
    """Re-importing the same patches (mode='replace') must not change the demand (R3)."""
    patches = W.parcels(
        [
            W.parcel("A", "0101", (0, 0, 100, 100), net=9_000.0, grain=0.8, xs=[50]),
            W.parcel("B", "0702", (100, 0, 200, 100), xs=[150]),
        ]
    )
    ws.write_layers(
        {
            "parcels": patches,
            "projects": W.projects([W.project("K1", (50, 0, 150, 100), xs=[100])]),
            "plan_zones": W.allowed_everywhere(),
        }
    )
    first = demand_from_workspace(ws).table
    ws.write_layer("parcels", patches)  # the same survey again
    # the site is covered by A and B as before: new quota 5,000 m² (the half on 0101)
    assert ws.read_layer("parcels", bbox=tuple(patches.total_bounds))["parcel_id"].tolist() == [
        "A",
        "B",
    ]
    again = demand_from_workspace(ws).table
    assert again.loc[0, "new_quota_m2"] == pytest.approx(5_000, rel=REL)
    pd.testing.assert_frame_equal(again, first)


def test_r4_refused_when_any_one_dimension_is_short_and_all_three_debited(ws) -> None:
    """R4: one short dimension refuses a project; a commit debits all three at once."""
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel("PA", "0103", (0, 0, 100, 150), grain=0.1),
                    W.parcel("PP", "0101", (200, 0, 300, 60), grain=0.1),
                    W.parcel("PG", "0103", (400, 0, 500, 50), grain=2.0),
                    W.parcel("PK", "0101", (600, 0, 700, 40), net=3_600.0, grain=0.5),
                ]
            ),
            "projects": W.projects(
                [
                    # needs area 15,000 (> 10,000), paddy 0, grain 1,500
                    W.project("KA", (0, 0, 100, 150), level="provincial"),
                    # needs area 6,000, paddy 6,000 (> 5,000), grain 600
                    W.project("KP", (200, 0, 300, 60), level="provincial"),
                    # needs area 5,000, paddy 0, grain 5,000 × 2 = 10,000 (> 5,000)
                    W.project("KG", (400, 0, 500, 50), level="provincial"),
                    # 4,000 m² gross, net 3,600: area 3,600, paddy 3,600, grain 1,800; fits
                    W.project("KOK", (600, 0, 700, 40), level="county"),
                ]
            ),
            "plan_zones": W.allowed_everywhere(),
            "quota_ledger": W.ledger(
                new_construction=100_000, comp_area=10_000, comp_paddy=5_000, comp_grain=5_000
            ),
        }
    )
    run = plan_allocation(ws, mode="greedy", as_of=MAY1)
    t = _by_id(run.table())
    for pid, reason in (
        ("KA", "insufficient_comp_area"),
        ("KP", "insufficient_comp_paddy"),
        ("KG", "insufficient_comp_grain"),
    ):
        # each is short on exactly one dimension, and that alone refuses it
        assert t.loc[pid, "outcome"] == "unfunded", pid
        assert t.loc[pid, "reasons"] == reason, pid
        assert t.loc[pid, "new_quota_m2"] == 0.0
    assert t.loc["KOK", "outcome"] == "funded"

    commit_run(ws, run.run_id)
    # one project debited on every pool at once: 100,000 − 4,000; 10,000 − 3,600;
    # 5,000 − 3,600 paddy; 5,000 − 3,600 × 0.5 = 3,200 kg
    assert _balance(ws, "new_construction") == pytest.approx(96_000, rel=REL)
    assert _balance(ws, "comp_area") == pytest.approx(6_400, rel=REL)
    assert _balance(ws, "comp_paddy") == pytest.approx(1_400, rel=REL)
    assert _balance(ws, "comp_grain") == pytest.approx(3_200, rel=REL)


# --------------------------------------------------------------------------- R5


def _linkage_layers(acceptance: str) -> dict[str, pd.DataFrame]:
    """Project area L1: demolition D1 reclaimed 10,000 m²; construction C1 100 m × 60 m."""
    return {
        "linkage_areas": W.linkage_areas(
            [
                {
                    "linkage_id": "L1",
                    "approval_date": "2012-01-01",
                    "acceptance": acceptance,
                    "acceptance_date": "2014-03-01" if acceptance == "passed" else None,
                }
            ]
        ),
        "linkage_plots": W.plots(
            [
                W.plot(
                    "D1",
                    "L1",
                    "demolition",
                    (300, 0, 400, 100),
                    reclaimed=10_000.0,
                    reclaimed_cultivated=8_000.0,
                ),
                W.plot("C1", "L1", "construction", (0, 0, 100, 60)),
            ]
        ),
    }


def test_r5_linkage_surplus_credited_once_after_acceptance_and_used_as_quota(ws) -> None:
    ws.write_layers(
        {
            **_linkage_layers("pending"),
            "parcels": W.parcels(
                [
                    W.parcel("P1", "0103", (0, 0, 100, 60), grain=0.1),  # under C1
                    W.parcel("P2", "0103", (600, 0, 700, 30), grain=0.1),  # under KL
                ]
            ),
            "projects": W.projects([W.project("KL", (600, 0, 700, 30))]),
            "plan_zones": W.allowed_everywhere(),
            # no plan quota at all: only the linkage surplus can fund KL
            "quota_ledger": W.ledger(comp_area=10_000, comp_grain=1_000),
        }
    )
    review, credits = credit_linkage_surplus(ws, as_of=MAY1)
    # surplus = reclaimed 10,000 − construction 100 m × 60 m = 4,000 m², but pending: nothing
    assert review.set_index("linkage_id").loc["L1", "surplus_m2"] == pytest.approx(4_000, rel=REL)
    assert not review.set_index("linkage_id").loc["L1", "creditable"]
    assert len(credits) == 0
    assert _balance(ws, "linkage_surplus") == 0.0

    # acceptance passes on 2014-03-01: the project area is written again (with its plots:
    # they refer to it, so it cannot be replaced alone)
    ws.write_layers(_linkage_layers("passed"))
    review, credits = credit_linkage_surplus(ws, as_of=MAY1)
    assert len(credits) == 1
    c = credits.iloc[0]
    assert (c["pool"], c["kind"], c["source"]) == ("linkage_surplus", "linkage_credit", "L1")
    assert c["amount"] == pytest.approx(4_000, rel=REL)
    assert pd.Timestamp(c["effective_date"]) == pd.Timestamp("2014-03-01")  # the acceptance date
    assert _balance(ws, "linkage_surplus") == pytest.approx(4_000, rel=REL)

    n = len(ws.read_layer("quota_ledger"))
    _, again = credit_linkage_surplus(ws, as_of=MAY1)
    assert len(again) == 0  # idempotent: a repeated run never credits twice
    assert len(ws.read_layer("quota_ledger")) == n
    assert _balance(ws, "linkage_surplus") == pytest.approx(4_000, rel=REL)

    # used like plan quota: KL needs 100 m × 30 m = 3,000 m² of new quota, all from the surplus
    run = plan_allocation(ws, mode="greedy", as_of=MAY1)
    kl = _by_id(run.table()).loc["KL"]
    assert kl["outcome"] == "funded"
    assert kl["new_quota_m2"] == 0.0
    assert kl["linkage_quota_m2"] == pytest.approx(3_000, rel=REL)
    commit_run(ws, run.run_id)
    assert _balance(ws, "linkage_surplus") == pytest.approx(1_000, rel=REL)  # 4,000 − 3,000


def test_r5_project_area_replaced_without_its_plots_is_refused_cleanly(ws) -> None:
    """Writing the accepted area alone breaks its plots' reference: refused, nothing changed."""
    ws.write_layers(_linkage_layers("pending"))
    with pytest.raises(errors.DataError):
        ws.write_layer("linkage_areas", _linkage_layers("passed")["linkage_areas"])
    assert ws.read_layer("linkage_areas")["acceptance"].tolist() == ["pending"]


# --------------------------------------------------------------------------- R6


def test_r6_overdrawing_commit_and_debit_refused_ledger_unchanged(ws) -> None:
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel("P", "0702", (0, 0, 100, 100)),
                    W.parcel("Q", "0103", (200, 0, 300, 100), grain=0.1),
                ]
            ),
            # needs 10,000 m² of quota, 10,000 cultivated, 1,000 kg
            "projects": W.projects([W.project("K", (200, 0, 300, 100))]),
            "plan_zones": W.allowed_everywhere(),
            "quota_ledger": W.ledger(new_construction=15_000, comp_area=30_000, comp_grain=3_000),
        }
    )
    # two drafts planned on the same 15,000 m²; each takes 10,000: only one can land
    r1 = plan_allocation(ws, mode="greedy", as_of=MAY1)
    r2 = plan_allocation(ws, mode="greedy", as_of=date(2014, 5, 2))
    assert r1.run_id != r2.run_id
    commit_run(ws, r1.run_id)
    before = ws.read_layer("quota_ledger").sort_values("entry_id").reset_index(drop=True)
    with pytest.raises(errors.LedgerError, match="R6"):
        commit_run(ws, r2.run_id)  # 15,000 − 10,000 = 5,000 < 10,000
    with pytest.raises(errors.LedgerError):
        ws.append_ledger(  # a direct debit of 5,001 from a balance of 5,000 (+ a few cm²)
            pd.DataFrame(
                [
                    {
                        "entry_id": "X1",
                        "pool": "new_construction",
                        "kind": "adjustment",
                        "amount": -5_001.0,
                        "year": 2014,
                        "effective_date": pd.Timestamp("2014-05-03"),
                        "source": "doc 1",
                    }
                ]
            )
        )
    after = ws.read_layer("quota_ledger").sort_values("entry_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(after, before)
    assert read_run(ws, r2.run_id).status == "draft"
    assert _balance(ws, "new_construction") == pytest.approx(5_000, rel=REL)


# --------------------------------------------------------------------------- R7, R8


def _r7_r8_world(ws) -> None:
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel("P1", "0101", (0, 0, 100, 100), net=9_000.0),  # net share 0.9
                    W.parcel("P2", "0702", (200, 0, 300, 100)),
                    W.parcel("P3", "0103", (400, 0, 500, 100)),
                ]
            ),
            "linkage_areas": W.linkage_areas(
                [
                    {
                        "linkage_id": "L1",
                        "approval_date": "2011-03-15",
                        "turnover_quota_m2": 12_000.0,
                        "acceptance": "pending",
                    },
                    {
                        "linkage_id": "L2",
                        "approval_date": "2011-03-15",
                        "turnover_quota_m2": 5_000.0,
                        "acceptance": "pending",
                    },
                    {
                        "linkage_id": "L3",
                        "approval_date": "2012-06-01",
                        "turnover_quota_m2": 20_000.0,
                        "acceptance": "pending",
                    },
                ]
            ),
            "linkage_plots": W.plots(
                [
                    W.plot(
                        "D1",
                        "L1",
                        "demolition",
                        (0, 500, 100, 600),
                        reclaimed=10_000.0,
                        reclaimed_cultivated=9_500.0,
                    ),
                    W.plot("C1", "L1", "construction", (0, 0, 100, 80)),
                    W.plot(
                        "D2",
                        "L2",
                        "demolition",
                        (200, 500, 300, 600),
                        reclaimed=5_000.0,
                        reclaimed_cultivated=5_000.0,
                    ),
                    W.plot("C2", "L2", "construction", (200, 0, 300, 60)),
                    W.plot(
                        "D3",
                        "L3",
                        "demolition",
                        (400, 500, 500, 600),
                        reclaimed=10_000.0,
                        reclaimed_cultivated=3_000.0,
                    ),
                    W.plot("C3", "L3", "construction", (400, 0, 500, 50)),
                ]
            ),
        }
    )


def test_r7_construction_within_reclaimed_and_cultivated_balance(ws) -> None:
    _r7_r8_world(ws)
    review, credits = credit_linkage_surplus(ws, as_of=MAY1, write=False)
    r = review.set_index("linkage_id")
    assert len(credits) == 0  # nothing accepted
    # L1: construction 100 × 80 = 8,000 ≤ reclaimed 10,000; it occupies 8,000 × 0.9 = 7,200 m²
    # of cultivated land (R2) ≤ 9,500 reclaimed cultivated → balanced; surplus 2,000
    assert r.loc["L1", "construction_m2"] == pytest.approx(8_000, rel=REL)
    assert r.loc["L1", "occupied_cultivated_m2"] == pytest.approx(7_200, rel=REL)
    assert bool(r.loc["L1", "r7_ok"])
    assert r.loc["L1", "surplus_m2"] == pytest.approx(2_000, rel=REL)
    # L2: construction 100 × 60 = 6,000 > reclaimed 5,000 → 1,000 too much; no surplus
    assert r.loc["L2", "construction_excess_m2"] == pytest.approx(1_000, rel=1e-3)
    assert r.loc["L2", "occupied_cultivated_m2"] == 0.0  # 0702 is not cultivated
    assert not bool(r.loc["L2", "r7_ok"])
    assert r.loc["L2", "surplus_m2"] == 0.0
    # L3: construction 5,000 ≤ 10,000, but it occupies 5,000 m² of dry land and only
    # 3,000 of cultivated land was reclaimed → 2,000 short
    assert r.loc["L3", "construction_excess_m2"] == 0.0
    assert r.loc["L3", "cultivated_shortfall_m2"] == pytest.approx(2_000, rel=1e-3)
    assert not bool(r.loc["L3", "r7_ok"])


@pytest.mark.parametrize(
    ("as_of", "overdue"),
    [
        # L1 approved 2011-03-15: due 2014-03-15; 12,000 lent − 10,000 reclaimed = 2,000 short
        (date(2014, 3, 15), {"L1": False, "L2": False, "L3": False}),  # on the due date: in time
        (date(2014, 3, 16), {"L1": True, "L2": False, "L3": False}),  # a day late: overdue
    ],
)
def test_r8_turnover_due_three_years_after_approval(ws, as_of: date, overdue: dict) -> None:
    _r7_r8_world(ws)
    review, _ = credit_linkage_surplus(ws, as_of=as_of, write=False)
    r = review.set_index("linkage_id")
    assert r.loc["L1", "turnover_due_date"] == pd.Timestamp("2014-03-15")
    assert r.loc["L3", "turnover_due_date"] == pd.Timestamp("2015-06-01")  # 2012-06-01 + 3 y
    assert r.loc["L1", "turnover_shortfall_m2"] == pytest.approx(2_000)
    assert r.loc["L2", "turnover_shortfall_m2"] == 0.0  # 5,000 lent, 5,000 reclaimed: returned
    assert r["overdue"].astype(bool).to_dict() == overdue


# --------------------------------------------------------------------------- R9


def test_r9_unused_approval_older_than_two_years_lapses(ws) -> None:
    ws.write_layers(
        {
            "stock_land": W.stock(
                [
                    # approved 2012-04-29, nothing done: older than 2 years from 2014-04-30
                    W.stock_parcel(
                        "U1",
                        (0, 0, 100, 100),
                        kind="approved_unsupplied",
                        approval_batch="B1",
                        approval_date="2012-04-29",
                        supply_date=None,
                    ),
                    # same batch, but land use / compensation carried out: never lapses
                    W.stock_parcel(
                        "U2",
                        (200, 0, 300, 100),
                        kind="approved_unsupplied",
                        approval_batch="B1",
                        approval_date="2012-04-29",
                        supply_date=None,
                        land_used=True,
                    ),
                    # approved 2013: not two years old yet
                    W.stock_parcel(
                        "U3",
                        (400, 0, 500, 50),
                        kind="approved_unsupplied",
                        approval_batch="B2",
                        approval_date="2013-01-01",
                        supply_date=None,
                    ),
                ]
            ),
            # a project without a fixed site that the lapsed land fits
            "projects": W.projects([W.project("KS", None, demand_m2=8_000.0)]),
        }
    )
    on_anniversary = review_stock(ws, as_of=date(2014, 4, 29))
    st = on_anniversary.idle.set_index("stock_id")["status"]
    assert st.to_dict() == {
        "U1": "approved_unsupplied",
        "U2": "approved_unsupplied",
        "U3": "approved_unsupplied",
    }  # exactly 2 years: not older yet
    assert len(on_anniversary.available) == 0

    r = review_stock(ws, as_of=APR30)
    st = r.idle.set_index("stock_id")["status"]
    assert st.to_dict() == {
        "U1": "lapsed",
        "U2": "approved_unsupplied",
        "U3": "approved_unsupplied",
    }
    # the lapsed 10,000 m² leave the unsupplied stock and become available stock
    assert r.available["stock_id"].tolist() == ["U1"]
    assert r.available["area_m2"].iloc[0] == pytest.approx(10_000, rel=REL)
    c2012 = r.cohorts.set_index("approval_year").loc[2012]
    assert c2012["unsupplied_m2"] == pytest.approx(20_000, rel=REL)  # U1 + U2
    assert c2012["lapsed_m2"] == pytest.approx(10_000, rel=REL)  # U1
    # stock first: KS (8,000 m² industrial) gets the lapsed parcel
    ks = _by_id(plan_allocation(ws, mode="greedy", as_of=APR30).table()).loc["KS"]
    assert (ks["outcome"], ks["stock_id"]) == ("stock_matched", "U1")


def test_r9_lapsed_land_returned_as_quota_once_and_no_longer_offered(ws) -> None:
    """R9, second half: U1 (10,000 m², lapsed) is returned by decision as 10,000 m² of quota.

    By hand: the new-construction balance goes 0 → 10,000 m²; U1 leaves the available stock, so
    KS (8,000 m², no fixed site) is no longer matched to it, while KF (a fixed 80 m × 100 m site
    on bare land 1206, unused land: 8,000 m² of new quota, no compensation) is funded from the
    returned quota; U3 (approved 2013) has not lapsed and is refused with the day it would; a
    second call writes nothing.
    """
    ws.write_layers(
        {
            "stock_land": W.stock(
                [
                    W.stock_parcel("U1", (0, 0, 100, 100), kind="approved_unsupplied",
                                   approval_batch="B1", approval_date="2012-04-29", supply_date=None),
                    W.stock_parcel("U3", (400, 0, 500, 50), kind="approved_unsupplied",
                                   approval_batch="B2", approval_date="2013-01-01", supply_date=None),
                ]
            ),
            "parcels": W.parcels([W.parcel("V", "1206", (0, 200, 80, 300))]),
            "plan_zones": W.allowed_everywhere(),
            "projects": W.projects([W.project("KS", None, demand_m2=8_000.0),
                                    W.project("KF", (0, 200, 80, 300))]),
        }
    )
    before = _by_id(plan_allocation(ws, mode="greedy", as_of=APR30).table())
    assert before.loc["KS", "stock_id"] == "U1" and before.loc["KF", "outcome"] == "unfunded"
    with pytest.raises(errors.ParameterError, match=r"'U3' has status 'approved_unsupplied'.*lapses on 2015-01-02"):
        return_lapsed(ws, ["U3"], as_of=APR30, decision="阳国土〔2014〕9号")
    assert _balance(ws, "new_construction") == 0.0

    entries = return_lapsed(ws, ["U1"], as_of=APR30, decision="阳国土〔2014〕9号")
    assert entries["entry_id"].tolist() == ["lapse:U1"]
    assert _balance(ws, "new_construction") == pytest.approx(10_000, rel=REL)
    assert len(return_lapsed(ws, ["U1"], as_of=APR30, decision="阳国土〔2014〕9号")) == 0  # once only
    assert _balance(ws, "new_construction") == pytest.approx(10_000, rel=REL)

    assert review_stock(ws, as_of=APR30).available["stock_id"].tolist() == []  # not counted twice
    after = _by_id(plan_allocation(ws, mode="greedy", as_of=APR30).table())
    assert after.loc["KS", "outcome"] == "unfunded" and "no_matching_stock" in after.loc["KS", "reasons"]
    assert after.loc["KF", "outcome"] == "funded"
    assert after.loc["KF", "new_quota_m2"] == pytest.approx(8_000, rel=REL)


# --------------------------------------------------------------------------- R10, R11, R12


def test_r10_idle_not_started_or_suspended_with_low_development(ws) -> None:
    started = {"actual_start_date": "2012-01-01"}
    ws.write_layer(
        "stock_land",
        W.stock(
            [
                # first branch: agreed start 2013-04-30, not started, one full year on 2014-04-30
                W.stock_parcel("I1", (0, 0, 100, 100), agreed_start_date="2013-04-30"),
                W.stock_parcel("I2", (200, 0, 300, 100), agreed_start_date="2013-05-01"),
                # second branch: started, suspended a full year, developed 0.30 < 1/3
                W.stock_parcel(
                    "I3",
                    (400, 0, 500, 100),
                    **started,
                    developed_ratio=0.30,
                    invested_ratio=0.5,
                    suspended_since="2013-04-30",
                ),
                # ... or invested 0.20 < 25 % (developed 0.5 is not low)
                W.stock_parcel(
                    "I4",
                    (600, 0, 700, 100),
                    **started,
                    developed_ratio=0.5,
                    invested_ratio=0.20,
                    suspended_since="2013-04-30",
                ),
                # suspended long, but developed 0.5 ≥ 1/3 and invested 0.5 ≥ 25 %: not idle
                W.stock_parcel(
                    "I5",
                    (800, 0, 900, 100),
                    **started,
                    developed_ratio=0.5,
                    invested_ratio=0.5,
                    suspended_since="2012-01-01",
                ),
                # low development, suspended 2013-05-01: not a full year yet
                W.stock_parcel(
                    "I6",
                    (1000, 0, 1100, 100),
                    **started,
                    developed_ratio=0.2,
                    invested_ratio=0.1,
                    suspended_since="2013-05-01",
                ),
            ]
        ),
    )
    idle = review_stock(ws, as_of=APR30).idle.set_index("stock_id")
    assert idle["status"].to_dict() == {
        "I1": "idle",
        "I2": "not_idle",
        "I3": "idle",
        "I4": "idle",
        "I5": "not_idle",
        "I6": "not_idle",
    }
    assert idle["idle_rule"].dropna().to_dict() == {
        "I1": "not_started",
        "I3": "suspended_low_development",
        "I4": "suspended_low_investment",
    }
    assert int(idle.loc["I1", "days_idle"]) == 365  # 2013-04-30 → 2014-04-30


def test_r11_idle_fee_and_reclamation_by_cause(ws) -> None:
    price = {"land_price_yuan": 2_000_000.0}
    ws.write_layer(
        "stock_land",
        W.stock(
            [
                # enterprise cause, idle 1 full year: fee 20 % × 2,000,000 = 400,000
                W.stock_parcel("E1", (0, 0, 100, 100), agreed_start_date="2013-04-30", **price),
                # enterprise cause, idle 2 full years: fee, and reclaimed without compensation
                W.stock_parcel("E2", (200, 0, 300, 100), agreed_start_date="2012-04-30", **price),
                # government cause (late handover…), idle 2 years: no fee, no free reclamation
                W.stock_parcel(
                    "G1",
                    (400, 0, 500, 100),
                    agreed_start_date="2012-04-30",
                    cause="government",
                    **price,
                ),
            ]
        ),
    )
    idle = review_stock(ws, as_of=APR30).idle.set_index("stock_id")
    assert idle.loc["E1", "fee_due_yuan"] == pytest.approx(400_000)
    assert idle.loc["E1", "reclaim_deadline"] == pd.Timestamp("2015-04-30")
    assert not bool(idle.loc["E1", "reclaim_due"])
    assert idle.loc["E2", "fee_due_yuan"] == pytest.approx(400_000)
    assert idle.loc["E2", "reclaim_deadline"] == pd.Timestamp("2014-04-30")  # 2012-04-30 + 2 y
    assert bool(idle.loc["E2", "reclaim_due"])
    assert idle.loc["G1", "status"] == "idle"
    assert idle.loc["G1", "fee_due_yuan"] == 0.0
    assert pd.isna(idle.loc["G1", "reclaim_deadline"]) and not bool(idle.loc["G1", "reclaim_due"])


def test_r12_only_start_reclamation_or_swap_closes_a_case(ws) -> None:
    idle_since_2012 = {
        "agreed_start_date": "2012-04-30",
        "cause": "government",
        "disposal_date": "2014-01-01",
    }
    ws.write_layer(
        "stock_land",
        W.stock(
            [
                W.stock_parcel(
                    "X1",
                    (0, 0, 100, 100),
                    **idle_since_2012,
                    disposal_method="extension",
                    disposal_status="open",
                ),
                W.stock_parcel(
                    "X2",
                    (200, 0, 300, 100),
                    **idle_since_2012,
                    disposal_method="change_use",
                    disposal_status="open",
                ),
                W.stock_parcel(
                    "X3",
                    (400, 0, 500, 100),
                    **idle_since_2012,
                    disposal_method="swap",
                    disposal_status="closed",
                ),
                W.stock_parcel(
                    "X4",
                    (600, 0, 700, 100),
                    **idle_since_2012,
                    disposal_method="paid_reclamation",
                    disposal_status="closed",
                ),
                W.stock_parcel(
                    "X5",
                    (800, 0, 900, 100),
                    **idle_since_2012,
                    actual_start_date="2014-01-01",
                    disposal_method="construction_started",
                    disposal_status="closed",
                ),
            ]
        ),
    )
    r = review_stock(ws, as_of=APR30)
    idle = r.idle.set_index("stock_id")
    assert idle["case_state"].to_dict() == {
        "X1": "open",  # an extension alone does not close the case
        "X2": "open",  # nor does a change of use
        "X3": "closed",  # swapped
        "X4": "closed",  # reclaimed (with compensation, government cause)
        "X5": "closed",  # construction started
    }
    assert idle["status"].to_dict() == {
        "X1": "idle",
        "X2": "idle",
        "X3": "swapped",
        "X4": "reclaimed",
        "X5": "closed",
    }
    assert not idle["case_state_mismatch"].any()
    # reclaimed land is stock for key projects; swapped land went to the land user
    assert r.available["stock_id"].tolist() == ["X4"]


# --------------------------------------------------------------------------- R13


def test_r13_basic_farmland_blocks_unless_national_exception(ws) -> None:
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel("A", "0101", (0, 0, 100, 100), xs=[50]),
                    W.parcel("B", "0103", (100, 0, 200, 100), xs=[150]),
                    W.parcel("C", "0101", (0, 200, 100, 300), xs=[50]),
                    W.parcel("D", "0103", (100, 200, 200, 300), xs=[150]),
                    W.parcel("E", "0103", (400, 0, 500, 100)),
                ]
            ),
            "projects": W.projects(
                [
                    # half (5,000 m²) on basic farmland BF1
                    W.project("KB", (50, 0, 150, 100), xs=[100]),
                    # the same on BF2, but a national project that cannot avoid it
                    W.project(
                        "KX",
                        (50, 200, 150, 300),
                        xs=[100],
                        level="national",
                        national_exception=True,
                    ),
                    W.project("KN", (400, 0, 500, 100)),  # no basic farmland
                ]
            ),
            "plan_zones": W.allowed_everywhere(),
            "control_lines": W.lines(
                ("BF1", "basic_farmland", (0, 0, 100, 100)),
                ("BF2", "basic_farmland", (0, 200, 100, 300)),
            ),
            "quota_ledger": W.ledger(
                new_construction=100_000, comp_area=100_000, comp_paddy=100_000, comp_grain=100_000
            ),
        }
    )
    wd = demand_from_workspace(ws)
    d = _by_id(wd.table)
    assert (d.loc["KB", "compliance"], d.loc["KB", "reasons"]) == ("blocked", "basic_farmland")
    assert (d.loc["KX", "compliance"], d.loc["KX", "reasons"]) == ("allowed", "")
    # R13/R14: taking any basic farmland means State Council, though KX is only 1 ha
    assert d.loc["KX", "approval_level"] == "state_council"
    assert (d.loc["KN", "compliance"], d.loc["KN", "approval_level"]) == ("allowed", "province")
    c = _by_id(wd.compliance)
    assert c.loc["KB", "basic_farmland_m2"] == pytest.approx(5_000, rel=REL)  # 50 m × 100 m

    t = _by_id(plan_allocation(ws, mode="greedy", as_of=MAY1).table())
    assert (t.loc["KB", "outcome"], t.loc["KB", "reasons"]) == ("blocked", "basic_farmland")
    assert t.loc["KB", "new_quota_m2"] == 0.0
    assert (t.loc["KX", "outcome"], t.loc["KX", "approval_level"]) == ("funded", "state_council")
    assert (t.loc["KN", "outcome"], t.loc["KN", "approval_level"]) == ("funded", "province")


# --------------------------------------------------------------------------- R14


def test_r14_approval_level_thresholds(ws) -> None:
    sites = {
        # 500 m × 702 m of dry land = 351,000 m² > 35 ha cultivated → State Council
        "C_hi": ("0103", (0, 0, 500, 702), None),
        # 500 m × 698 m = 349,000 m² ≤ 35 ha → province
        "C_lo": ("0103", (600, 0, 1100, 698), None),
        # 1,000 m × 701 m of homestead = 701,000 m² > 70 ha of other land → State Council
        "O_hi": ("0702", (1200, 0, 2200, 701), None),
        # 1,000 m × 699 m = 699,000 m² ≤ 70 ha → province
        "O_lo": ("0702", (2300, 0, 3300, 699), None),
        # 500 m × 720 m of paddy = 360,000 m² gross, but net 0.95 × 360,000 = 342,000 m² of
        # cultivated land (R2) ≤ 35 ha, and the 18,000 m² of ridges are other land → province
        "R_net": ("0101", (3400, 0, 3900, 720), 342_000.0),
    }
    ws.write_layers(
        {
            "parcels": W.parcels(
                [W.parcel(f"P{k}", c, r, net=n) for k, (c, r, n) in sites.items()]
            ),
            "projects": W.projects([W.project(k, r) for k, (_, r, _) in sites.items()]),
            "plan_zones": W.allowed_everywhere(),
            "quota_ledger": W.ledger(
                new_construction=5e6, comp_area=5e6, comp_paddy=5e6, comp_grain=5e6
            ),
        }
    )
    wd = demand_from_workspace(ws)
    level = _by_id(wd.table)["approval_level"].to_dict()
    assert level == {
        "C_hi": "state_council",
        "C_lo": "province",
        "O_hi": "state_council",
        "O_lo": "province",
        "R_net": "province",
    }
    c = _by_id(wd.compliance)
    # meridians converge: a 700 m tall rectangle loses ~0.5 × 700 × tan 24.6° / 6.37e6 ≈ 2.6e-5
    assert c.loc["C_hi", "other_cultivated_m2"] == pytest.approx(351_000, rel=REL)
    assert c.loc["O_hi", "other_land_m2"] == pytest.approx(701_000, rel=REL)
    assert c.loc["R_net", "other_cultivated_m2"] == pytest.approx(342_000, rel=REL)
    assert c.loc["R_net", "other_land_m2"] == pytest.approx(18_000, rel=1e-3)
    # the allocation carries the level through
    t = _by_id(plan_allocation(ws, mode="greedy", as_of=MAY1).table())
    assert t["approval_level"].to_dict() == level
    assert (t["outcome"] == "funded").all()


# --------------------------------------------------------------------------- R15, R16


def _zoned_world(ws) -> None:
    """Five 100 m sites along a row of zones; KE is in the allowed zone but on the red line."""
    ys = (-50.0, 150.0)
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel(f"P{k}", "0103", (x, 0, x + 100, 100), grain=0.1)
                    for k, x in (("A", 0), ("P", 200), ("R", 400), ("C", 600), ("E", 800))
                ]
                + [W.parcel("PF", "0103", (900, 0, 1000, 100), grain=0.1)]
            ),
            "projects": W.projects(
                [
                    W.project(f"K{k}", (x, 0, x + 100, 100))
                    for k, x in (("A", 0), ("P", 200), ("R", 400), ("C", 600), ("E", 800))
                ]
            ),
            "plan_zones": W.zones(
                ("Z1", "allowed", (-50, ys[0], 150, ys[1])),
                ("Z2", "prohibited", (150, ys[0], 350, ys[1])),
                ("Z3", "restricted", (350, ys[0], 550, ys[1])),
                ("Z4", "conditional", (550, ys[0], 750, ys[1])),
                ("Z5", "allowed", (750, ys[0], 1050, ys[1])),
            ),
            "control_lines": W.lines(("ECO", "eco_redline", (800, 0, 900, 100))),
            "quota_ledger": W.ledger(
                new_construction=100_000, comp_area=100_000, comp_paddy=100_000, comp_grain=100_000
            ),
        }
    )


EXPECTED_R15 = {
    "KA": ("allowed", ""),
    "KP": ("blocked", "prohibited_zone"),
    "KR": ("needs_adjustment", "restricted_zone"),
    "KC": ("needs_adjustment", "conditional_zone_needs_adjustment"),
    "KE": ("blocked", "eco_redline"),
}


def test_r15_prohibited_and_red_line_block_restricted_and_conditional_need_adjustment(ws) -> None:
    _zoned_world(ws)
    d = _by_id(demand_from_workspace(ws).table)
    got = {k: (d.loc[k, "compliance"], d.loc[k, "reasons"]) for k in EXPECTED_R15}
    assert got == EXPECTED_R15
    t = _by_id(plan_allocation(ws, mode="greedy", as_of=MAY1).table())
    assert t.loc["KA", "outcome"] == "funded"
    for k in ("KP", "KR", "KC", "KE"):
        # not allocatable without a plan adjustment: blocked, with the compliance reason
        assert (t.loc[k, "outcome"], t.loc[k, "reasons"]) == ("blocked", EXPECTED_R15[k][1])
        assert t.loc[k, "new_quota_m2"] == 0.0


def test_r15_r16_conditional_site_allocated_with_an_equal_area_retired(ws) -> None:
    _zoned_world(ws)
    kc = W.rect((600, 0, 700, 100))  # KC's site, 10,000 m² of conditional zone
    retire = W.rect((900, 0, 1000, 100))  # 10,000 m² of allowed zone Z5, no site on it
    unbalanced = PlanAdjustment("only add", make_allowed=gpd.GeoSeries([kc], crs=4490))
    report = check_r16(unbalanced, ws)
    scale = report.checks.set_index("check").loc["construction_scale"]
    # allowed zone before: Z1 200 × 200 + Z5 300 × 200 = 100,000 m²; +10,000 after
    assert scale["before"] == pytest.approx(100_000, rel=REL)
    assert scale["after"] == pytest.approx(110_000, rel=REL)
    assert not report.passed and scale["failed_by_m2"] == pytest.approx(10_000, rel=REL)
    with pytest.raises(errors.AllocationError, match="construction_scale"):
        plan_allocation(ws, mode="greedy", as_of=MAY1, scenario=unbalanced)

    swap = PlanAdjustment(
        "swap for KC",
        make_allowed=gpd.GeoSeries([kc], crs=4490),
        retire_allowed=gpd.GeoSeries([retire], crs=4490),
    )
    report = check_r16(swap, ws)
    assert report.passed, report.failures()  # scale 100,000 + 10,000 − 10,000 = 100,000
    t = _by_id(plan_allocation(ws, mode="greedy", as_of=MAY1, scenario=swap).table())
    assert t.loc["KC", "outcome"] == "funded"
    assert pd.isna(t.loc["KC", "reasons"]) or t.loc["KC", "reasons"] == ""
    # the adjustment cannot lift the prohibited zone or the red line
    assert t.loc["KP", "outcome"] == "blocked" and t.loc["KE", "outcome"] == "blocked"


# --------------------------------------------------------------------------- R17, R18


def test_r17_bulletin_lagging_against_time_progress(ws) -> None:
    ws.write_layer(
        "projects",
        W.projects(
            [
                # Yangshan 2014: 317 million of 2,935 million = 10.8 % < 4/12 = 33.3 %
                W.project(
                    "Y", None, level="provincial", annual_plan_yuan=2.935e9, completed_yuan=3.17e8
                ),
                W.project("ON", None, annual_plan_yuan=1_200.0, completed_yuan=400.0),  # = 4/12
                W.project("LATE", None, annual_plan_yuan=1_200.0, completed_yuan=399.0),
                W.project("NONE", None, annual_plan_yuan=0.0, completed_yuan=0.0),
            ]
        ),
    )
    b = investment_bulletin(ws.read_layer("projects"), as_of=APR30)
    assert time_progress(APR30) == pytest.approx(4 / 12)
    p = _by_id(b.projects)
    assert p.loc["Y", "completion"] == pytest.approx(0.108, abs=5e-4)
    assert p["lagging"].to_dict() == {"Y": True, "ON": False, "LATE": True, "NONE": False}
    assert b.lagging and b.n_lagging == 2


def test_r18_priority_level_then_score_then_id(ws) -> None:
    order = [  # (id, level, score)
        ("C1", "county", 99.0),
        ("N1", "national", 1.0),
        ("P2", "provincial", 50.0),
        ("P1", "provincial", 50.0),
        ("P3", "provincial", 60.0),
    ]
    ws.write_layers(
        {
            "parcels": W.parcels(
                [
                    W.parcel(f"Q{i}", "0103", (300 * i, 0, 300 * i + 100, 100), grain=0.0)
                    for i in range(len(order))
                ]
            ),
            "projects": W.projects(
                [
                    W.project(pid, (300 * i, 0, 300 * i + 100, 100), level=lv, score=s)
                    for i, (pid, lv, s) in enumerate(order)
                ]
            ),
            "plan_zones": W.allowed_everywhere(),
            # each project needs 10,000 m² (less a few cm²): three fit in 30,000
            "quota_ledger": W.ledger(new_construction=30_000, comp_area=100_000),
        }
    )
    t = _by_id(plan_allocation(ws, mode="greedy", as_of=MAY1).table())
    # order: N1 (national) > P3 (provincial, 60) > P1 = P2 (50, lower id first) > C1 (county)
    assert t["outcome"].to_dict() == {
        "C1": "unfunded",
        "N1": "funded",
        "P1": "funded",
        "P2": "unfunded",
        "P3": "funded",
    }
    assert "insufficient_new_quota" in t.loc["P2", "reasons"]
