"""A tiny county where allocation can be checked by hand (see the numbers below).

Patches (100 m squares on the ellipsoid, R1):
  A  0101 paddy, TBMJ 10,000, KCMJ 1,000, TBDLMJ 9,000, grain 1.0 kg/m²
  B  0702 rural homestead (construction), 10,000
  C  0301 forest, 20,000 (north of A and B)
  D  0103 dry land, 10,000, no deduction, grain 0.5 kg/m²
Projects (all in the allowed zone):
  K1 provincial, score 90: site A+B → new quota 10,000 (A only, R3), compensation
     9,000 m² cultivated and 9,000 m² paddy (net share, R2), grain 9,000 kg (R4)
  K2 county, score 80: site D → new quota 10,000, cultivated 10,000, paddy 0, grain 5,000
  K3 county, not fixed, 5,000 m² industrial: the stock parcel S1 (reclaimed) fits
Ledger: new_construction 15,000; comp_area 20,000; comp_paddy 9,000; comp_grain 20,000.
Greedy as of 2014-05-01: K1 funded; K3 stock_matched; K2 unfunded, since only 5,000 m²
of new quota is left (insufficient_new_quota).
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

from tests.geoms import Grid

G = Grid(112.6, 24.5)


def mp(poly: shapely.Polygon) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([poly])


def gdf(data: dict, geoms: list) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4490")


def world(
    *, new_quota: float = 15_000.0, comp_area: float = 20_000.0, comp_paddy: float = 9_000.0
) -> dict[str, pd.DataFrame]:
    parcels = gdf(
        {
            "parcel_id": ["A", "B", "C", "D"],
            "land_class": ["0101", "0702", "0301", "0103"],
            "town": ["T"] * 4,
            "gross_m2": [10_000.0, 10_000.0, 20_000.0, 10_000.0],
            "deduction_m2": [1_000.0, 0.0, 0.0, 0.0],
            "net_m2": [9_000.0, 10_000.0, 20_000.0, 10_000.0],
            "grain_kg_per_m2": [1.0, None, None, 0.5],
        },
        [
            mp(G.rect(0, 0, 100, 100)),
            mp(G.rect(100, 0, 200, 100)),
            mp(G.rect(0, 100, 200, 200, xs=[100])),
            mp(G.rect(300, 0, 400, 100)),
        ],
    )
    projects = gdf(
        {
            "project_id": ["K1", "K2", "K3"],
            "name": ["一号工业园", "二号物流园", "三号厂房"],
            "level": ["provincial", "county", "county"],
            "score": [90.0, 80.0, 70.0],
            "planned_use": ["industrial", "warehouse", "industrial"],
            "town": ["T", "T", "T"],
            "annual_plan_yuan": [1e8, 5e7, 2e7],
            "completed_yuan": [1e7, 0.0, 0.0],
            "start_date": pd.to_datetime(["2014-03-01"] * 3),
            "status": ["new_start", "preparatory", "preparatory"],
            "county_leader": ["甲"] * 3,
            "town_cadre": ["乙"] * 3,
            "dept_cadre": ["丙"] * 3,
            "site_fixed": [True, True, False],
            "demand_m2": [None, None, 5_000.0],
            "phaseable": [False, False, False],
            "min_fraction": [None, None, None],
            "national_exception": [False, False, False],
        },
        [mp(G.rect(0, 0, 200, 100, xs=[100])), mp(G.rect(300, 0, 400, 100)), None],
    )
    zones = gdf(
        {"zone_id": ["Z1"], "zone_type": ["allowed"], "plan_version": ["v1"]},
        [mp(G.rect(-50, -50, 500, 300))],
    )
    lines = gdf(
        {"line_id": ["BF1"], "kind": ["basic_farmland"], "plan_version": ["v1"], "paddy_m2": [0.0]},
        [mp(G.rect(1000, 1000, 1100, 1100))],
    )
    stock = gdf(
        {
            "stock_id": ["S1"],
            "kind": ["supplied"],
            "town": ["T"],
            "approval_batch": ["B2009"],
            "approval_date": pd.to_datetime(["2009-01-01"]),
            "supply_date": pd.to_datetime(["2009-06-01"]),
            "agreed_start_date": pd.to_datetime(["2010-01-01"]),
            "actual_start_date": [pd.NaT],
            "developed_ratio": [0.0],
            "invested_ratio": [0.0],
            "suspended_since": [pd.NaT],
            "cause": ["enterprise"],
            "land_price_yuan": [1e6],
            "planned_use": ["industrial"],
            "disposal_status": ["closed"],
            "disposal_method": ["free_reclamation"],
            "disposal_date": pd.to_datetime(["2012-06-01"]),
            "land_used": [False],
        },
        [mp(G.rect(600, 0, 700, 100))],
    )

    def entry(eid: str, pool: str, amount: float) -> dict:
        return {
            "entry_id": eid,
            "pool": pool,
            "kind": "opening",
            "amount": amount,
            "year": 2014,
            "effective_date": pd.Timestamp("2014-01-01"),
            "source": "test opening",
            "entered_at": pd.Timestamp("2014-01-01", tz="UTC"),
            "entered_by": "test",
        }

    ledger = pd.DataFrame(
        [
            entry("O1", "new_construction", new_quota),
            entry("O2", "comp_area", comp_area),
            entry("O3", "comp_paddy", comp_paddy),
            entry("O4", "comp_grain", 20_000.0),
        ]
    )
    return {
        "parcels": parcels,
        "projects": projects,
        "plan_zones": zones,
        "control_lines": lines,
        "stock_land": stock,
        "quota_ledger": ledger,
    }
