"""A tiny hand-made workspace: a row or two in every layer, every column type used."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
import shapely

CRS = "EPSG:4490"


def box(x: float, y: float, d: float = 0.001) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([shapely.box(x, y, x + d, y + d)])


def sample_layers() -> dict[str, pd.DataFrame]:
    """Frames for every contract layer, consistent with each other (foreign keys hold)."""
    x0, y0 = 112.6, 24.5
    gdf = lambda d, g: gpd.GeoDataFrame(d, geometry=g, crs=CRS)  # noqa: E731
    return {
        "county": gdf(
            {"county_id": ["441823"], "name": ["阳山县"], "admin_code": ["441823"]},
            [box(x0, y0, 0.1)],
        ),
        "towns": gdf({"town_id": ["T01"], "name": ["阳城镇（虚构）"]}, [box(x0, y0, 0.05)]),
        "parcels": gdf(
            {
                "parcel_id": ["P1", "P2", "P3"],
                "land_class": ["0101", "0702", "0301"],
                "town": ["阳城镇（虚构）", "阳城镇（虚构）", None],
                "gross_m2": [10_000.0, 5_000.0, None],
                "deduction_m2": [1_000.0, 0.0, None],
                "net_m2": [9_000.0, 5_000.0, 20_000.0],
                "grain_kg_per_m2": [0.9, None, None],
            },
            [box(x0, y0), box(x0 + 0.001, y0), box(x0 + 0.002, y0)],
        ),
        "plan_zones": gdf(
            {
                "zone_id": ["Z1", "Z2"],
                "zone_type": ["allowed", "conditional"],
                "plan_version": ["2006-2020", "2006-2020"],
            },
            [box(x0, y0, 0.01), box(x0 + 0.01, y0, 0.01)],
        ),
        "control_lines": gdf(
            {
                "line_id": ["L1"],
                "kind": ["basic_farmland"],
                "plan_version": ["2006-2020"],
                "paddy_m2": [8_000.0],
            },
            [box(x0, y0 + 0.01, 0.01)],
        ),
        "stock_land": gdf(
            {
                "stock_id": ["S1"],
                "kind": ["supplied"],
                "town": ["阳城镇（虚构）"],
                "approval_batch": ["粤国土资（建）字〔2011〕1号"],
                "approval_date": pd.to_datetime(["2011-03-01"]),
                "supply_date": pd.to_datetime(["2011-09-01"]),
                "agreed_start_date": pd.to_datetime(["2012-03-01"]),
                "actual_start_date": [pd.NaT],
                "developed_ratio": [0.0],
                "invested_ratio": [0.0],
                "suspended_since": [pd.NaT],
                "cause": ["enterprise"],
                "land_price_yuan": [12_000_000.0],
                "planned_use": ["industrial"],
                "disposal_status": ["open"],
                "disposal_method": ["extension"],
                "disposal_date": pd.to_datetime(["2013-05-01"]),
                "land_used": [False],
            },
            [box(x0 + 0.02, y0)],
        ),
        "linkage_areas": pd.DataFrame(
            {
                "linkage_id": ["LA1"],
                "name": ["示例挂钩项目区"],
                "town": ["阳城镇（虚构）"],
                "approval_date": pd.to_datetime(["2012-06-01"]),
                "turnover_quota_m2": [30_000.0],
                "acceptance": ["passed"],
                "acceptance_date": pd.to_datetime(["2014-02-01"]),
            }
        ),
        "linkage_plots": gdf(
            {
                "plot_id": ["LP1", "LP2"],
                "linkage_id": ["LA1", "LA1"],
                "role": ["demolition", "construction"],
                "reclaimed_m2": [20_000.0, None],
                "reclaimed_cultivated_m2": [15_000.0, None],
            },
            [box(x0 + 0.03, y0), box(x0 + 0.04, y0)],
        ),
        "projects": gdf(
            {
                "project_id": ["K01", "K02"],
                "name": ["示例工业园", "示例物流中心"],
                "level": ["provincial", "county"],
                "score": [90.0, 50.0],
                "planned_use": ["industrial", "warehouse"],
                "town": ["阳城镇（虚构）", "阳城镇（虚构）"],
                "annual_plan_yuan": [100_000_000.0, 20_000_000.0],
                "completed_yuan": [10_000_000.0, 0.0],
                "start_date": pd.to_datetime(["2014-01-15", "2014-06-01"]),
                "status": ["new_start", "preparatory"],
                "county_leader": ["张三（虚构）", "李四（虚构）"],
                "town_cadre": ["王五（虚构）", "赵六（虚构）"],
                "dept_cadre": ["陈七（虚构）", "周八（虚构）"],
                "site_fixed": [True, False],
                "demand_m2": [None, 20_000.0],
                "phaseable": [True, False],
                "min_fraction": [0.5, None],
                "national_exception": [False, False],
            },
            [box(x0, y0, 0.0015), None],
        ),
        "quota_ledger": pd.DataFrame(
            {
                "entry_id": ["E1", "E2"],
                "pool": ["new_construction", "comp_area"],
                "kind": ["plan_issue", "opening"],
                "amount": [500_000.0, 100_000.0],
                "year": [2014, 2013],
                "effective_date": pd.to_datetime(["2014-01-01", "2014-01-01"]),
                "source": ["清国土资〔2014〕1号", "opening"],
                "project_id": [None, None],
                "run_id": [None, None],
                "reverses": [None, None],
                "entered_at": pd.to_datetime(["2014-01-01T08:00:00.123Z"] * 2, utc=True),
                "entered_by": ["tester", "tester"],
                "note": ["年度计划", None],
            }
        ),
        "allocation_runs": pd.DataFrame(
            {
                "run_id": ["R1"],
                "created_at": pd.to_datetime(["2014-05-01T09:00:00Z"], utc=True),
                "created_by": ["tester"],
                "mode": ["greedy"],
                "as_of": pd.to_datetime(["2014-04-30"]),
                "scenario": [None],
                "params": ['{"mode":"greedy"}'],
                "input_digest": ["0" * 64],
                "software_version": ["0.1.0"],
                "forced": [False],
                "status": ["draft"],
                "status_changed_at": [pd.NaT],
                "status_changed_by": [None],
            }
        ),
        "allocations": pd.DataFrame(
            {
                "allocation_id": ["R1:K01"],
                "run_id": ["R1"],
                "project_id": ["K01"],
                "outcome": ["funded"],
                "fraction": [1.0],
                "need_new_quota_m2": [10_000.0],
                "new_quota_m2": [10_000.0],
                "approval_level": ["province"],
                "reasons": [""],
            }
        ),
        "validation_errors": gpd.GeoDataFrame(
            {
                "error_id": ["V1"],
                "rule": ["LQ-003"],
                "severity": ["warning"],
                "layer": ["parcels"],
                "feature_id": ["P1"],
                "message": ["TBDLMJ ≠ TBMJ − KCMJ"],
                "checked_at": pd.to_datetime(["2014-05-01T09:00:00Z"], utc=True),
            },
            geometry=[None],
            crs=CRS,
        ),
    }
