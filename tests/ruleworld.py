"""Builders of tiny worlds for the rule tests (tests/test_rules.py).

Every shape is a rectangle of a :class:`tests.geoms.Grid` (sides measured on the
GRS80 = CGCS2000 ellipsoid, R1), so "100 m × 100 m" is 10,000 m² to about
1e-5 relative, and the figures of each test can be checked by hand.

The builders fill in the contract's required columns with neutral defaults,
so a test names only what its rule looks at.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import pandas as pd
import shapely

from tests.geoms import Grid

#: A grid away from the one of tests/runworld.py (both would work: each test
#: has a workspace of its own).
G = Grid(112.7, 24.6)

Rect = tuple[float, float, float, float]

#: A plan zone that covers every shape the tests put at x, y in [-1,000, 5,000] m.
EVERYWHERE: Rect = (-1_000.0, -1_000.0, 5_000.0, 2_000.0)


def mp(poly: shapely.Polygon) -> shapely.MultiPolygon:
    return shapely.MultiPolygon([poly])


def rect(r: Rect, *, xs: Sequence[float] = ()) -> shapely.MultiPolygon:
    """The Grid rectangle (x0, y0, x1, y1) in metres, as a MultiPolygon."""
    return mp(G.rect(*r, xs=xs))


def _gdf(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> gpd.GeoDataFrame:
    data = {c: [r[c] for r in rows] for c in columns}
    return gpd.GeoDataFrame(data, geometry=[r["geometry"] for r in rows], crs="EPSG:4490")


def parcel(
    pid: str,
    land_class: str,
    r: Rect,
    *,
    gross: float | None = None,
    net: float | None = None,
    grain: float | None = None,
    xs: Sequence[float] = (),
) -> dict[str, Any]:
    """A survey patch; gross (TBMJ) and net (TBDLMJ) default to the rectangle's w × h."""
    wh = (r[2] - r[0]) * (r[3] - r[1])
    g = wh if gross is None else gross
    return {
        "parcel_id": pid,
        "land_class": land_class,
        "town": "T",
        "gross_m2": g,
        "deduction_m2": g - (g if net is None else net),
        "net_m2": g if net is None else net,
        "grain_kg_per_m2": grain,
        "geometry": rect(r, xs=xs),
    }


def parcels(rows: Sequence[dict[str, Any]]) -> gpd.GeoDataFrame:
    return _gdf(
        rows,
        [
            "parcel_id",
            "land_class",
            "town",
            "gross_m2",
            "deduction_m2",
            "net_m2",
            "grain_kg_per_m2",
        ],
    )


def project(
    pid: str,
    r: Rect | None,
    *,
    level: str = "county",
    score: float = 50.0,
    national_exception: bool = False,
    demand_m2: float | None = None,
    planned_use: str = "industrial",
    annual_plan_yuan: float = 1e8,
    completed_yuan: float = 0.0,
    xs: Sequence[float] = (),
) -> dict[str, Any]:
    """A key project; ``r=None`` is a project whose site is not fixed."""
    return {
        "project_id": pid,
        "name": f"项目{pid}",
        "level": level,
        "score": score,
        "planned_use": planned_use,
        "town": "T",
        "annual_plan_yuan": annual_plan_yuan,
        "completed_yuan": completed_yuan,
        "start_date": pd.Timestamp("2014-03-01"),
        "status": "new_start",
        "county_leader": "甲",
        "town_cadre": "乙",
        "dept_cadre": "丙",
        "site_fixed": r is not None,
        "demand_m2": demand_m2,
        "phaseable": False,
        "min_fraction": None,
        "national_exception": national_exception,
        "geometry": None if r is None else rect(r, xs=xs),
    }


def projects(rows: Sequence[dict[str, Any]]) -> gpd.GeoDataFrame:
    cols = [k for k in rows[0] if k != "geometry"]
    return _gdf(rows, cols)


def zones(*rows: tuple[str, str, Rect]) -> gpd.GeoDataFrame:
    """Plan zones from (zone_id, zone_type, rect) triples."""
    return _gdf(
        [
            {"zone_id": z, "zone_type": t, "plan_version": "v1", "geometry": rect(r)}
            for z, t, r in rows
        ],
        ["zone_id", "zone_type", "plan_version"],
    )


def allowed_everywhere() -> gpd.GeoDataFrame:
    return zones(("Z0", "allowed", EVERYWHERE))


def lines(*rows: tuple[str, str, Rect]) -> gpd.GeoDataFrame:
    """Control lines from (line_id, kind, rect) triples (none: an empty layer)."""
    return gpd.GeoDataFrame(
        {
            "line_id": [i for i, _, _ in rows],
            "kind": [k for _, k, _ in rows],
            "plan_version": ["v1"] * len(rows),
        },
        geometry=[rect(r) for _, _, r in rows],
        crs="EPSG:4490",
    )


def ledger(*, when: str = "2014-01-01", year: int = 2014, **pools: float) -> pd.DataFrame:
    """Opening entries, one per pool given (``new_construction=15_000.0`` …)."""
    return pd.DataFrame(
        [
            {
                "entry_id": f"O-{pool}",
                "pool": pool,
                "kind": "opening",
                "amount": float(amount),
                "year": year,
                "effective_date": pd.Timestamp(when),
                "source": "test opening",
                "entered_at": pd.Timestamp(when, tz="UTC"),
                "entered_by": "test",
            }
            for pool, amount in pools.items()
        ]
    )


_STOCK_COLUMNS = (
    "stock_id",
    "kind",
    "town",
    "approval_batch",
    "approval_date",
    "supply_date",
    "agreed_start_date",
    "actual_start_date",
    "developed_ratio",
    "invested_ratio",
    "suspended_since",
    "cause",
    "land_price_yuan",
    "planned_use",
    "disposal_status",
    "disposal_method",
    "disposal_date",
    "land_used",
)
_STOCK_DATES = (
    "approval_date",
    "supply_date",
    "agreed_start_date",
    "actual_start_date",
    "suspended_since",
    "disposal_date",
)


def stock_parcel(sid: str, r: Rect, **values: Any) -> dict[str, Any]:
    """A stock_land row: a supplied enterprise parcel with nothing else known, unless told."""
    row: dict[str, Any] = {
        "stock_id": sid,
        "kind": "supplied",
        "town": "T",
        "approval_batch": None,
        "approval_date": None,
        "supply_date": "2010-01-01",
        "agreed_start_date": None,
        "actual_start_date": None,
        "developed_ratio": None,
        "invested_ratio": None,
        "suspended_since": None,
        "cause": "enterprise",
        "land_price_yuan": 1_000_000.0,
        "planned_use": "industrial",
        "disposal_status": "none",
        "disposal_method": "none",
        "disposal_date": None,
        "land_used": False,
        "geometry": rect(r),
    }
    unknown = set(values) - set(row)
    if unknown:
        raise KeyError(f"stock_parcel: unknown column(s) {sorted(unknown)}")
    row.update(values)
    return row


def stock(rows: Sequence[dict[str, Any]]) -> gpd.GeoDataFrame:
    frame = _gdf(rows, _STOCK_COLUMNS)
    for c in _STOCK_DATES:
        frame[c] = pd.to_datetime(frame[c])
    for c in ("developed_ratio", "invested_ratio"):
        frame[c] = frame[c].astype("float64")
    return frame


def linkage_areas(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """linkage_areas rows: linkage_id, approval_date, turnover_quota_m2, acceptance[, acceptance_date]."""
    out = pd.DataFrame(
        [
            {
                "linkage_id": r["linkage_id"],
                "name": f"项目区{r['linkage_id']}",
                "town": "T",
                "approval_date": pd.Timestamp(r["approval_date"]),
                "turnover_quota_m2": r.get("turnover_quota_m2"),
                "acceptance": r["acceptance"],
                "acceptance_date": pd.Timestamp(r["acceptance_date"])
                if r.get("acceptance_date")
                else pd.NaT,
            }
            for r in rows
        ]
    )
    out["turnover_quota_m2"] = out["turnover_quota_m2"].astype("float64")
    return out


def plot(
    plot_id: str,
    linkage_id: str,
    role: str,
    r: Rect,
    *,
    reclaimed: float | None = None,
    reclaimed_cultivated: float | None = None,
) -> dict[str, Any]:
    return {
        "plot_id": plot_id,
        "linkage_id": linkage_id,
        "role": role,
        "reclaimed_m2": reclaimed,
        "reclaimed_cultivated_m2": reclaimed_cultivated,
        "geometry": rect(r),
    }


def plots(rows: Sequence[dict[str, Any]]) -> gpd.GeoDataFrame:
    frame = _gdf(rows, ["plot_id", "linkage_id", "role", "reclaimed_m2", "reclaimed_cultivated_m2"])
    for c in ("reclaimed_m2", "reclaimed_cultivated_m2"):
        frame[c] = frame[c].astype("float64")
    return frame
