"""Stock land (idle and approved-unsupplied land) and the linkage projects of the demo county.

Every stock parcel and linkage plot is placed where no other feature is
(:class:`_Placer`), with dates that make the R9–R12 and R7–R8 reviews say
something.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np
import pandas as pd
import shapely

from landquota.demo.base import (
    DEMO_AS_OF,
    _areas,
    _blob_maker,
    _frame,
    _ids,
    _rect,
    _rect_maker,
    _rng,
)
from landquota.demo.county import (
    _County,
)
from landquota.store.schema import layer

_STOCK_USES: Final = ("industrial", "commercial", "residential", "public_service")


@dataclass
class _Site:
    geom: Any  # metres
    town: int


class _Placer:
    """Puts non-overlapping sites into regions by seeded rejection sampling."""

    def __init__(self, rng: np.random.Generator, gap: float = 30.0) -> None:
        self.rng = rng
        self.gap = gap
        self.taken: list[Any] = []

    def free(self, g: Any) -> bool:
        if not self.taken:
            return True
        return not bool(np.any(shapely.dwithin(g, np.array(self.taken, dtype=object), self.gap)))

    def place(
        self,
        region: Any,
        make: Callable[[float, float, float], Any],
        *,
        avoid: Any = None,
        tries: int = 1_500,
        must: Callable[[Any], bool] | None = None,
    ) -> Any | None:
        """Place ``make(x, y, shrink)`` inside *region*, away from *avoid* and other sites."""
        if region is None or shapely.is_empty(region):
            return None
        shapely.prepare(region)
        minx, miny, maxx, maxy = region.bounds
        for i in range(tries):
            shrink = 0.8 ** (i // 300)
            x, y = self.rng.uniform([minx, miny], [maxx, maxy])
            if not shapely.contains_xy(region, x, y):
                continue
            g = make(float(x), float(y), shrink)
            if not region.contains(g) or not self.free(g):
                continue
            if avoid is not None and shapely.intersects(g, avoid):
                continue
            if must is not None and not must(g):
                continue
            self.taken.append(g)
            return g
        return None


@dataclass
class _StockRow:
    site: _Site
    kind: str
    values: dict[str, Any]


@dataclass
class _Sites:
    stock: list[_StockRow]
    linkage: list[dict[str, Any]]
    plots: list[dict[str, Any]]  # geom, linkage, role, reclaimed, cult_share, town
    placer: _Placer

    @property
    def burn(self) -> list[tuple[Any, str, int]]:
        """Demolition plots burned into the survey: 0702 until reclaimed, then cultivated."""
        out = []
        for p in self.plots:
            if p["role"] == "demolition":
                code = p["burn_code"]
                out.append((p["geom"], code, p["town"]))
        return out

    def stock_frame(self, county: _County) -> pd.DataFrame:
        cols: dict[str, list[Any]] = {c: [] for c in layer("stock_land").column_names}
        geoms = []
        for i, row in enumerate(self.stock):
            cols["stock_id"].append(f"S{i + 1:03d}")
            cols["kind"].append(row.kind)
            cols["town"].append(county.names[row.site.town])
            for c in layer("stock_land").column_names[3:]:
                cols[c].append(row.values.get(c))
            geoms.append(row.site.geom)
        geo = county.to_geo(np.array(geoms, dtype=object))
        price = np.array([v if v is not None else np.nan for v in cols["land_price_yuan"]], float)
        # Land price: yuan per m² by use times the ellipsoidal area (R1), whole yuan.
        area = _areas(geo)
        cols["land_price_yuan"] = list(np.round(price * area))
        return _frame("stock_land", cols, geo)

    def linkage_frames(self, county: _County) -> tuple[pd.DataFrame, pd.DataFrame]:
        areas = _frame(
            "linkage_areas",
            {k: [a.get(k) for a in self.linkage] for k in layer("linkage_areas").column_names},
        )
        geo = county.to_geo(np.array([p["geom"] for p in self.plots], dtype=object))
        a = _areas(geo)
        reclaimed = np.array(
            [ai if p["reclaimed"] else np.nan for ai, p in zip(a, self.plots, strict=True)]
        )
        share = np.array([p["cult_share"] for p in self.plots], dtype=float)
        plots = _frame(
            "linkage_plots",
            {
                "plot_id": _ids("LP", len(self.plots), 3),
                "linkage_id": [p["linkage_id"] for p in self.plots],
                "role": [p["role"] for p in self.plots],
                "reclaimed_m2": reclaimed,
                "reclaimed_cultivated_m2": np.round(reclaimed * share, 2),
            },
            geo,
        )
        return areas, plots


def _d(y: int, m: int, d: int) -> date:
    return date(y, m, d)


def _rand_date(rng: np.random.Generator, start: date, end: date) -> date:
    days = (end - start).days
    return date.fromordinal(start.toordinal() + int(rng.integers(0, max(days, 0) + 1)))


def _place_stock_and_linkage(seed: int, county: _County) -> _Sites:
    rng = _rng(seed, "stock")
    placer = _Placer(rng)
    n_towns = len(county.names)
    town_w = np.concatenate([[4.0], np.ones(n_towns - 1)])
    town_w /= town_w.sum()

    def zone(t: int) -> Any:
        return shapely.union(county.allowed[t], county.conditional[t])

    def rect(area: float) -> Callable[[float, float, float], Any]:
        aspect = float(rng.uniform(1.0, 2.5))
        angle = float(rng.uniform(0, np.pi))
        return lambda x, y, s: _rect(x, y, area * s, aspect, angle)

    def put(area: float, regions: Callable[[int], Any], town: int | None = None) -> _Site:
        for _ in range(40):
            t = int(rng.choice(n_towns, p=town_w)) if town is None else town
            g = placer.place(regions(t), rect(area), tries=400)
            if g is not None:
                return _Site(g, t)
            area *= 0.8
        raise RuntimeError(f"demo: cannot place a stock site of {area:.0f} m² (seed {seed})")

    stock: list[_StockRow] = []
    # 批而未供: approval-year cohorts 2009-2014, 100-400 ha in all.
    total = rng.uniform(180.0, 300.0) * 10_000.0
    n_batches = 16
    years = np.array(
        [
            2009,
            2009,
            2010,
            2010,
            2010,
            2011,
            2011,
            2011,
            2012,
            2012,
            2012,
            2013,
            2013,
            2013,
            2014,
            2014,
        ]
    )
    sizes = rng.lognormal(0.0, 0.5, n_batches * 2)
    sizes = sizes / sizes.sum() * total
    k = 0
    for b in range(n_batches):
        y = int(years[b])
        approval = _rand_date(rng, _d(y, 1, 10), _d(y, 12, 20) if y < 2014 else _d(2014, 4, 10))
        batch = f"粤府土审（阳）〔{y}〕{b + 1:02d}号"
        old = approval < _d(2012, 4, 30)
        for _ in range(2):
            site = put(float(sizes[k]), zone)
            k += 1
            # R9: an old batch with nothing done lapses; newer ones are still valid.
            land_used = bool(rng.random() < (0.6 if old else 0.5))
            if b in (1, 4, 7):  # make sure some lapse
                land_used = False
            stock.append(
                _StockRow(
                    site,
                    "approved_unsupplied",
                    {
                        "approval_batch": batch,
                        "approval_date": approval,
                        "cause": "none",
                        "planned_use": _STOCK_USES[int(rng.integers(0, len(_STOCK_USES)))],
                        "disposal_status": "none",
                        "disposal_method": "none",
                        "land_used": land_used,
                    },
                )
            )

    # 供而未用: idle cases (R10/R11/R12) and a few supplied parcels that are not idle.
    # (cause, branch, years idle, disposal status, method, planned use)
    idle_cases = [
        ("enterprise", "not_started", 2.6, "closed", "free_reclamation", "industrial"),
        ("enterprise", "not_started", 2.3, "open", "none", "industrial"),
        ("enterprise", "not_started", 1.4, "open", "none", "commercial"),
        ("enterprise", "low_development", 1.5, "open", "none", "industrial"),
        ("enterprise", "not_started", 3.0, "closed", "construction_started", "industrial"),
        ("enterprise", "not_started", 1.1, "open", "none", "residential"),
        ("enterprise", "low_investment", 2.2, "open", "none", "industrial"),
        ("government", "not_started", 1.5, "open", "extension", "industrial"),
        ("government", "not_started", 2.5, "closed", "paid_reclamation", "commercial"),
        ("government", "not_started", 1.2, "open", "change_use", "residential"),
        ("government", "low_development", 1.8, "open", "temporary_use", "industrial"),
        ("government", "not_started", 3.1, "closed", "swap", "industrial"),
        ("government", "low_development", 1.3, "open", "none", "public_service"),
        ("government", "not_started", 1.05, "open", "extension", "commercial"),
    ]
    not_idle = [
        ("built", "industrial"),
        ("built", "residential"),
        ("future_start", "industrial"),
        ("recent_start_due", "commercial"),
        ("recently_suspended", "industrial"),
        ("suspended_but_developed", "industrial"),
    ]
    idle_total = rng.uniform(35.0, 60.0) * 10_000.0
    idle_sizes = rng.lognormal(0.0, 0.45, len(idle_cases))
    idle_sizes = idle_sizes / idle_sizes.sum() * idle_total
    price_per_m2 = {
        "industrial": 180.0,
        "commercial": 1_200.0,
        "residential": 900.0,
        "public_service": 300.0,
    }
    as_of = DEMO_AS_OF

    def ago(years: float) -> date:
        return date.fromordinal(as_of.toordinal() - round(years * 365.25))

    def allowed(t: int) -> Any:
        return county.allowed[t]

    for i, (cause, branch, yrs, status, method, use) in enumerate(idle_cases):
        site = put(float(idle_sizes[i]), allowed)
        v: dict[str, Any] = {"cause": cause, "planned_use": use, "land_used": True}
        v["disposal_status"], v["disposal_method"] = status, method
        if branch == "not_started":
            agreed = ago(yrs)  # Order 53 art. 14: idle years count from the agreed start
            v["agreed_start_date"] = agreed
        else:
            agreed = ago(yrs + 1.3)
            v["agreed_start_date"] = agreed
            v["actual_start_date"] = ago(yrs + 1.1)
            v["suspended_since"] = ago(yrs)
            if branch == "low_development":
                v["developed_ratio"] = round(float(rng.uniform(0.08, 0.3)), 2)
                v["invested_ratio"] = round(float(rng.uniform(0.05, 0.22)), 2)
            else:  # developed enough, but investment under 25 %
                v["developed_ratio"] = round(float(rng.uniform(0.36, 0.5)), 2)
                v["invested_ratio"] = round(float(rng.uniform(0.1, 0.22)), 2)
        supply = date.fromordinal(agreed.toordinal() - int(rng.integers(90, 300)))
        v["supply_date"] = supply
        v["approval_date"] = date.fromordinal(supply.toordinal() - int(rng.integers(200, 500)))
        v["approval_batch"] = f"粤府土审（阳）〔{v['approval_date'].year}〕9{i + 1:02d}号"
        v["land_price_yuan"] = price_per_m2[use]
        if method == "construction_started":
            start = _rand_date(rng, ago(0.9), ago(0.4))
            v["actual_start_date"] = start
            v["developed_ratio"] = round(float(rng.uniform(0.35, 0.6)), 2)
            v["invested_ratio"] = round(float(rng.uniform(0.3, 0.5)), 2)
            v["disposal_date"] = start
        elif method != "none":
            v["disposal_date"] = _rand_date(rng, ago(0.6), ago(0.05))
        stock.append(_StockRow(site, "supplied", v))

    for j, (state, use) in enumerate(not_idle):
        site = put(float(rng.uniform(1.0, 4.0) * 10_000.0), allowed)
        v = {
            "cause": "none",
            "planned_use": use,
            "land_used": True,
            "disposal_status": "none",
            "disposal_method": "none",
        }
        if state == "built":
            v["agreed_start_date"] = ago(3.0)
            v["actual_start_date"] = ago(2.9)
            v["developed_ratio"], v["invested_ratio"] = 0.9, 0.85
        elif state == "future_start":
            v["agreed_start_date"] = _d(2014, 9, 1)
        elif state == "recent_start_due":  # agreed start less than a year ago
            v["agreed_start_date"] = ago(0.6)
        elif state == "recently_suspended":  # R10 needs a full year of suspension
            v["agreed_start_date"] = ago(1.6)
            v["actual_start_date"] = ago(1.5)
            v["suspended_since"] = ago(0.5)
            v["developed_ratio"], v["invested_ratio"] = 0.2, 0.15
        else:  # suspended long ago, but developed >= 1/3 and invested >= 25 %
            v["agreed_start_date"] = ago(3.0)
            v["actual_start_date"] = ago(2.8)
            v["suspended_since"] = ago(1.5)
            v["developed_ratio"], v["invested_ratio"] = 0.5, 0.4
        supply = date.fromordinal(v["agreed_start_date"].toordinal() - 180)
        v["supply_date"] = supply
        v["approval_date"] = date.fromordinal(supply.toordinal() - 300)
        v["approval_batch"] = f"粤府土审（阳）〔{v['approval_date'].year}〕8{j + 1:02d}号"
        v["land_price_yuan"] = price_per_m2[use]
        stock.append(_StockRow(site, "supplied", v))

    linkage, plots = _linkage(rng, county, placer)
    return _Sites(stock, linkage, plots, placer)


def _linkage(
    rng: np.random.Generator, county: _County, placer: _Placer
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # (acceptance, approval, acceptance date, share reclaimed, construction/reclaimed)
    designs = [
        ("passed", _d(2011, 5, 18), _d(2013, 11, 26), 1.0, 0.6),  # R5: surplus creditable
        ("pending", _d(2010, 9, 8), None, 0.55, 0.7),  # R8: overdue (> 3 years, not returned)
        ("failed", _d(2012, 3, 21), _d(2014, 1, 15), 0.9, 0.5),
        ("pending", _d(2012, 10, 30), None, 1.0, 1.2),  # R7: construction > reclaimed
        ("pending", _d(2013, 12, 12), None, 0.3, 0.6),  # recent, on time
    ]
    order = rng.permutation(np.arange(1, len(county.names)))
    areas: list[dict[str, Any]] = []
    plots: list[dict[str, Any]] = []
    keep_out = shapely.union_all(
        [
            county.eco,
            county.prohibited,
            shapely.buffer(
                shapely.union_all(list(county.allowed) + list(county.conditional)), 400.0
            ),
        ]
    )
    for i, (acc, approved, acc_date, share, ratio) in enumerate(designs):
        t = int(order[i % len(order)])
        lid = f"L{i + 1:02d}"
        name = f"{county.names[t]}城乡建设用地增减挂钩项目区（{'一二三四五六'[i]}）"
        # Demolition plots: old homesteads in the town's valleys (restricted zone).
        valley = shapely.intersection(
            shapely.buffer(shapely.union_all(county.rivers), 3_000.0), county.towns[t]
        )
        region = shapely.difference(valley, keep_out)
        n_demo = int(rng.integers(6, 11))
        sizes = rng.lognormal(0.0, 0.4, n_demo)
        sizes = sizes / sizes.sum() * rng.uniform(15.0, 25.0) * 10_000.0
        demo_geoms = []
        for s in sizes:
            g = placer.place(
                region,
                _blob_maker(rng, float(s)),
                tries=600,
            )
            if g is not None:
                demo_geoms.append(g)
        n_rec = max(1, round(share * len(demo_geoms))) if share < 1 else len(demo_geoms)
        rec_area = 0.0
        for j, g in enumerate(demo_geoms):
            reclaimed = j < n_rec
            rec_area += g.area if reclaimed else 0.0
            plots.append(
                {
                    "geom": g,
                    "linkage_id": lid,
                    "role": "demolition",
                    "reclaimed": reclaimed,
                    "cult_share": float(rng.uniform(0.86, 0.95)),
                    # The survey shows reclaimed homesteads as the farmland they became.
                    "burn_code": ("0101" if rng.random() < 0.4 else "0103")
                    if reclaimed
                    else "0702",
                    "town": t,
                }
            )
        # New construction is sized on what has been reclaimed so far (R7), except in
        # the area designed to break R7.
        target = ratio * rec_area
        n_cons = int(rng.integers(1, 4))
        cons_area = 0.0
        # New construction goes into the town's zones; a crowded town spills over
        # onto the restricted land round its centre.
        regions = (
            shapely.union(county.allowed[t], county.conditional[t]),
            shapely.difference(
                shapely.intersection(
                    shapely.buffer(shapely.Point(county.seeds[t]), 3_000.0), county.towns[t]
                ),
                shapely.union(county.eco, county.prohibited),
            ),
        )
        for i_try in range(
            4 * n_cons
        ):  # sites shrink when the town is crowded: go on to the target
            if cons_area >= 0.97 * target:
                break
            area = min(target / n_cons, target - cons_area)
            aspect = float(rng.uniform(1.0, 2.0))
            ang = float(rng.uniform(0, np.pi))
            g = placer.place(
                regions[i_try >= 2 * n_cons], _rect_maker(area, aspect, ang), tries=600
            )
            if g is not None:
                cons_area += g.area
                plots.append(
                    {
                        "geom": g,
                        "linkage_id": lid,
                        "role": "construction",
                        "reclaimed": False,
                        "cult_share": np.nan,
                        "burn_code": None,
                        "town": t,
                    }
                )
        turnover = float(
            np.round(max(cons_area, 0.8 * sum(g.area for g in demo_geoms)) / 100.0) * 100.0
        )
        areas.append(
            {
                "linkage_id": lid,
                "name": name,
                "town": county.names[t],
                "approval_date": approved,
                "turnover_quota_m2": turnover,
                "acceptance": acc,
                "acceptance_date": acc_date,
            }
        )
    return areas, plots
