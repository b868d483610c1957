"""Small synthetic workspace frames for the map tests, built in code.

A 0.2° × 0.2° county at 112.6–112.8°E, 24.4–24.6°N (near Yangshan) cut into two
towns and a 4 × 4 grid of 0.05° survey patches; a few stock parcels, one linkage
area and six key projects with round demand figures a person can check by hand.
Two names are hostile on purpose (HTML/JS injection) to test the escaping.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import MultiPolygon, box

CRS = "EPSG:4490"
W, S, E, N = 112.60, 24.40, 112.80, 24.60
STEP = 0.05

#: A name that would run script if it reached the page unescaped.
EVIL_NAME = "</script><script>window.__pwned=1</script><b>Evil & 'Co'</b>"
EVIL_TOWN = '<img src=x onerror="window.__pwned=2">黎埠镇'

#: Land classes of the 4 × 4 patch grid, row by row from the south-west corner.
GRID_CLASSES = (
    ("0101", "0101", "0102", "0301"),
    ("0103", "0301", "0301", "0702"),
    ("1101", "08H2", "0301", "1104A"),
    ("0301", "0301", "0101", "ZZ99"),
)


def mbox(x0: float, y0: float, x1: float, y1: float) -> MultiPolygon:
    return MultiPolygon([box(x0, y0, x1, y1)])


def _gdf(rows: list[dict[str, object]]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(pd.DataFrame(rows), geometry="geometry", crs=CRS)


def county() -> gpd.GeoDataFrame:
    return _gdf([{"county_id": "441823", "name": "阳山县", "admin_code": "441823",
                  "geometry": mbox(W, S, E, N)}])


def towns() -> gpd.GeoDataFrame:
    mid = (W + E) / 2
    return _gdf([
        {"town_id": "T1", "name": "阳城镇", "geometry": mbox(W, S, mid, N)},
        {"town_id": "T2", "name": EVIL_TOWN, "geometry": mbox(mid, S, E, N)},
    ])


def parcels() -> gpd.GeoDataFrame:
    rows = []
    for j, row in enumerate(GRID_CLASSES):
        for i, code in enumerate(row):
            # rounded so that neighbours share their edges exactly (a valid coverage)
            x0, y0 = round(W + i * STEP, 6), round(S + j * STEP, 6)
            x1, y1 = round(W + (i + 1) * STEP, 6), round(S + (j + 1) * STEP, 6)
            rows.append({"parcel_id": f"P{j}{i}", "land_class": code, "town": "阳城镇",
                         "net_m2": 1.0, "geometry": mbox(x0, y0, x1, y1)})
    return _gdf(rows)


def plan_zones() -> gpd.GeoDataFrame:
    mid = (W + E) / 2
    return _gdf([
        {"zone_id": "Z1", "zone_type": "allowed", "plan_version": "2006-2020",
         "geometry": mbox(W, S, mid, N)},
        {"zone_id": "Z2", "zone_type": "restricted", "plan_version": "2006-2020",
         "geometry": mbox(mid, S, E, N)},
    ])


def control_lines() -> gpd.GeoDataFrame:
    return _gdf([
        {"line_id": "C1", "kind": "basic_farmland", "plan_version": "2020",
         "geometry": mbox(112.60, 24.40, 112.65, 24.45)},
        {"line_id": "C2", "kind": "eco_redline", "plan_version": "2020",
         "geometry": mbox(112.75, 24.55, 112.80, 24.60)},
    ])


def stock_land() -> gpd.GeoDataFrame:
    def row(
        sid: str, kind: str, approved: str, geom: MultiPolygon, **kw: object
    ) -> dict[str, object]:
        base: dict[str, object] = {
            "stock_id": sid, "kind": kind, "town": "阳城镇", "approval_batch": f"粤府{sid}",
            "approval_date": pd.Timestamp(approved), "cause": "none", "planned_use": "industrial",
            "disposal_status": "none", "disposal_method": "none", "geometry": geom,
        }
        base.update(kw)
        return base

    return _gdf([
        row("S1", "approved_unsupplied", "2012-05-01", mbox(112.61, 24.56, 112.62, 24.57)),
        row("S2", "supplied", "2010-03-01", mbox(112.63, 24.56, 112.64, 24.57),
            cause="enterprise", land_price_yuan=6_000_000.0),
        row("S3", "approved_unsupplied", "2011-01-10", mbox(112.65, 24.56, 112.66, 24.57)),
        row("S4", "supplied", "2009-06-01", mbox(112.67, 24.56, 112.68, 24.57),
            disposal_method="free_reclamation", disposal_status="closed"),
    ])


def idle() -> pd.DataFrame:
    """An idle review: S2 idle 400 days, fee 20 % of 6,000,000 = 1,200,000 yuan (R11)."""
    return pd.DataFrame({
        "stock_id": ["S1", "S2", "S3", "S4"],
        "status": ["approved_unsupplied", "idle", "lapsed", "reclaimed"],
        "days_idle": pd.array([pd.NA, 400, pd.NA, pd.NA], dtype="Int64"),
        "fee_due_yuan": [0.0, 1_200_000.0, 0.0, 0.0],
        "cohort": [2012, pd.NA, 2011, pd.NA],
    })


def linkage_areas() -> pd.DataFrame:
    return pd.DataFrame({
        "linkage_id": ["L1"], "name": ["石角挂钩项目区"], "town": ["阳城镇"],
        "approval_date": [pd.Timestamp("2012-03-01")], "turnover_quota_m2": [40_000.0],
        "acceptance": ["passed"], "acceptance_date": [pd.Timestamp("2013-11-20")],
    })


def linkage_plots() -> gpd.GeoDataFrame:
    return _gdf([
        {"plot_id": "LP1", "linkage_id": "L1", "role": "demolition", "reclaimed_m2": 20_000.0,
         "reclaimed_cultivated_m2": 18_000.0, "geometry": mbox(112.61, 24.42, 112.62, 24.43)},
        {"plot_id": "LP2", "linkage_id": "L1", "role": "demolition", "reclaimed_m2": 15_000.0,
         "reclaimed_cultivated_m2": 14_000.0, "geometry": mbox(112.63, 24.42, 112.64, 24.43)},
        {"plot_id": "LP3", "linkage_id": "L1", "role": "construction",
         "geometry": mbox(112.66, 24.44, 112.67, 24.45)},
    ])


#: Sites of the projects with a fixed site; K1 is in the middle of the county.
SITES = {
    "K1": mbox(112.69, 24.49, 112.71, 24.51),
    "K2": mbox(112.74, 24.46, 112.76, 24.47),
    "K3": mbox(112.62, 24.41, 112.64, 24.43),
    "K5": mbox(112.72, 24.52, 112.73, 24.53),
}


def projects() -> gpd.GeoDataFrame:
    def row(pid: str, name: str, level: str, **kw: object) -> dict[str, object]:
        base: dict[str, object] = {
            "project_id": pid, "name": name, "level": level, "score": 1.0,
            "planned_use": "transport", "town": "阳城镇", "annual_plan_yuan": 1e8,
            "completed_yuan": 1e7, "status": "continuing", "county_leader": f"{pid}县长",
            "town_cadre": f"{pid}镇干部", "dept_cadre": f"{pid}局干部",
            "site_fixed": pid in SITES, "demand_m2": float("nan"), "phaseable": False,
            "national_exception": False, "geometry": SITES.get(pid),
        }
        base.update(kw)
        return base

    return _gdf([
        row("K1", "阳山大道改造", "national"),
        row("K2", EVIL_NAME, "provincial", phaseable=True),
        row("K3", "城北污水厂", "city"),
        row("K4", "电子产业园", "county", planned_use="industrial", demand_m2=12_000.0),
        row("K5", "县医院扩建", "county"),
        row("K6", "物流中心", "county", planned_use="logistics", demand_m2=50_000.0),
    ])


def demand() -> pd.DataFrame:
    """Round figures: K1's site 30,000 m² = 3 ha = 45 mu; new quota = agricultural + unused."""
    return pd.DataFrame({
        "project_id": ["K1", "K2", "K3", "K5"],
        "site_m2": [30_000.0, 20_000.0, 40_000.0, 10_000.0],
        "cultivated_m2": [12_000.0, 5_000.0, 30_000.0, 0.0],
        "paddy_m2": [5_000.0, 0.0, 20_000.0, 0.0],
        "agricultural_m2": [20_000.0, 15_000.0, 40_000.0, 0.0],
        "construction_m2": [8_000.0, 5_000.0, 0.0, 10_000.0],
        "unused_m2": [2_000.0, 0.0, 0.0, 0.0],
        "new_quota_m2": [22_000.0, 15_000.0, 40_000.0, 0.0],
        "comp_area_m2": [12_000.0, 5_000.0, 30_000.0, 0.0],
        "comp_paddy_m2": [5_000.0, 0.0, 20_000.0, 0.0],
        "comp_grain_kg": [9_000.0, 3_000.0, 24_000.0, 0.0],
        "compliance": ["allowed", "allowed", "blocked", "allowed"],
        "approval_level": ["province", "province", "state_council", "province"],
        "reasons": [float("nan"), float("nan"), "basic_farmland", float("nan")],
    })


def allocations() -> pd.DataFrame:
    """Run R1: K1 funded from plan quota, K2 60 % (partly linkage surplus), K3 blocked,
    K4 matched to the reclaimed stock parcel S4, K6 unfunded; K5 has no row."""
    nan = float("nan")
    return pd.DataFrame({
        "allocation_id": ["R1:K1", "R1:K2", "R1:K3", "R1:K4", "R1:K6"],
        "run_id": ["R1"] * 5,
        "project_id": ["K1", "K2", "K3", "K4", "K6"],
        "outcome": ["funded", "partial", "blocked", "stock_matched", "unfunded"],
        "fraction": [1.0, 0.6, 0.0, 1.0, 0.0],
        "new_quota_m2": [22_000.0, 4_000.0, 0.0, 0.0, 0.0],
        "linkage_quota_m2": [0.0, 5_000.0, 0.0, 0.0, 0.0],
        "comp_area_m2": [12_000.0, 3_000.0, 0.0, 0.0, 0.0],
        "comp_paddy_m2": [5_000.0, 0.0, 0.0, 0.0, 0.0],
        "comp_grain_kg": [9_000.0, 1_800.0, 0.0, 0.0, 0.0],
        "stock_id": [nan, nan, nan, "S4", nan],
        "approval_level": ["province", "province", "state_council", nan, nan],
        "reasons": [nan, "insufficient_new_quota", "basic_farmland,eco_redline", nan,
                    "no_matching_stock"],
    })


def layers() -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    return {
        "county": county(), "towns": towns(), "parcels": parcels(),
        "plan_zones": plan_zones(), "control_lines": control_lines(),
        "stock_land": stock_land(), "linkage_areas": linkage_areas(),
        "linkage_plots": linkage_plots(), "projects": projects(),
    }


def build_kwargs() -> dict[str, object]:
    return {"allocations": allocations(), "demand": demand(), "idle": idle()}
