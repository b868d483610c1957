"""The demo county's key-project pipeline: staff, stages, meetings, monthly returns, visits.

Everything here is synthetic except the published totals: the April 2014 returns
add up to exactly 317,000,000 yuan of the 2,935,000,000 planned (10.8 % against
4/12 = 33.3 %, R17), because each project's April return *is* its
``completed_yuan``. January–March are drawn below it, in whole 万元 (10,000
yuan), never falling from one month to the next. See ``docs/demo-county.md``.

Every draw comes from its own stream (``_rng(seed, "pipeline-…")``), so these
tables never shift the draws of the other demo layers.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from types import SimpleNamespace
from typing import Any, Final

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota.rules.compliance import compliance_of_sites
from landquota.rules.demand import demand_from_sites
from landquota.store.migrations import staff_from_names
from landquota.store.schema import STAFF_ROLES, layer
from landquota.store.workspace import coerce_frame

__all__ = ["PIPELINE_LAYERS", "approval_levels", "pipeline_frames"]

#: The layers this module makes (and the projects' staff columns it turns into ids).
PIPELINE_LAYERS: Final = ("staff", "meetings", "project_stages", "project_progress", "visits")

#: Months of monthly returns in the demo (January–April 2014; April is the published month).
RETURN_MONTHS: Final = ("2014-01", "2014-02", "2014-03", "2014-04")

#: County departments the department cadres come from (synthetic but typical).
DEPARTMENTS: Final = (
    "县发展和改革局",
    "县国土资源局",
    "县住房和城乡建设局",
    "县交通运输局",
    "县水务局",
    "县林业局",
    "县环境保护局",
    "县经济和信息化局",
)

#: Dates of the demo's joint approval meetings (联审会议): the county began them in 2014.
MEETING_DATES: Final = (date(2014, 2, 18), date(2014, 3, 18), date(2014, 4, 17))

_DUTIES: Final = {
    "county_leader": "liaison,supervisor",
    "town_cadre": "agent,informant,liaison",
    "dept_cadre": "agent,informant",
}
_PROBLEMS: Final = (
    ("征地拆迁进度慢", "镇政府加派工作组入户协调"),
    ("用地指标未落实", "县国土资源局优先安排存量用地"),
    ("林地报批未完成", "县林业局专人跟踪省厅审批"),
    ("前期设计未完成", "业主加快施工图设计"),
    ("资金未到位", "县发改局协调银行贷款"),
)


def _rng(seed: int, stream: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(stream.encode("utf-8"))])


def _days(rng: np.random.Generator, lo: int, hi: int) -> timedelta:
    return timedelta(days=int(rng.integers(lo, hi + 1)))


def _rows(df: pd.DataFrame) -> list[Any]:
    """Rows with attribute access (``p.status``), typed loosely for the generator's loops."""
    return [SimpleNamespace(**{str(k): v for k, v in r.items()}) for r in df.to_dict("records")]


def _frame(name: str, rows: Sequence[Mapping[Any, Any]]) -> pd.DataFrame:
    lyr = layer(name)
    df = pd.DataFrame(rows, columns=list(lyr.column_names))
    return coerce_frame(lyr, df)


def _staff(seed: int, projects: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    staff, mapping = staff_from_names(projects)
    rng = _rng(seed, "pipeline-staff")
    town_of: dict[str, str] = {}
    for role in ("town_cadre",):
        for name, town in zip(projects[role], projects["town"], strict=True):
            town_of.setdefault(str(name), str(town))
    staff["duties"] = staff["role"].map(_DUTIES)
    staff["town"] = [
        town_of.get(n) if r == "town_cadre" else None
        for n, r in zip(staff["name"], staff["role"], strict=True)
    ]
    staff["department"] = [
        DEPARTMENTS[int(rng.integers(len(DEPARTMENTS)))]
        if r == "dept_cadre"
        else ("县人民政府" if r == "county_leader" else None)
        for r in staff["role"]
    ]
    return _frame("staff", staff.to_dict("records")), mapping


def _progress(seed: int, projects: pd.DataFrame) -> pd.DataFrame:
    rng = _rng(seed, "pipeline-returns")
    rows = []
    for p in _rows(projects):
        april = float(p.completed_yuan)
        wan = round(april / 10_000)
        if p.status == "completed":
            # finished early in the year: most of it done in January, all by February
            f = [float(rng.uniform(0.6, 0.9)), 1.0, 1.0]
        elif p.status == "new_start":
            start = pd.Timestamp(p.start_date)
            # nothing before the month it started (R17 counts it lagging until then)
            f = sorted(float(rng.uniform(0.0, 0.7)) for _ in range(3))
            f = [0.0 if start.month > k + 1 else x for k, x in enumerate(f)]
        else:
            f = sorted(float(rng.uniform(0.15, 0.95)) for _ in range(3))
        cum = [int(np.floor(wan * x)) for x in f] + [wan]
        for k in range(1, 4):  # cumulative: never falls
            cum[k] = max(cum[k], cum[k - 1])
        plan = float(p.annual_plan_yuan)
        for k, month in enumerate(RETURN_MONTHS):
            done = cum[k] * 10_000.0
            lagging = done * 12.0 < plan * (k + 1)  # R17
            problem = measure = None
            if lagging and p.status != "preparatory" and rng.random() < 0.5:
                problem, measure = _PROBLEMS[int(rng.integers(len(_PROBLEMS)))]
            rows.append(
                {
                    "progress_id": f"{p.project_id}:{month}",
                    "project_id": p.project_id,
                    "month": month,
                    "completed_yuan": done,
                    "land_status": _land_status(p.status),
                    "problems": problem,
                    "measures": measure,
                }
            )
    out = _frame("project_progress", rows)
    april_returns = out[out["month"] == "2014-04"]["completed_yuan"].to_numpy()
    if not np.array_equal(april_returns, projects["completed_yuan"].to_numpy()):  # pragma: no cover
        raise RuntimeError("demo: the April returns must be the projects' completed_yuan")
    return out


def _land_status(status: str) -> str:
    return {
        "preparatory": "用地报批中 land approval under way",
        "new_start": "已供地并开工 supplied, construction started",
        "continuing": "已供地在建 supplied, under construction",
        "completed": "已竣工 completed",
    }[status]


def _stage_row(
    rng: np.random.Generator,
    p: Any,
    level: str | None,
    stage: str,
    s: date,
    f: date | None,
    **kw: Any,
) -> dict[str, Any]:
    by = {
        "pre_review": "县国土资源局",
        # R14: who decides the conversion; a site not yet fixed has no level (no areas)
        "conversion": {"state_council": "国务院", "province": "广东省人民政府"}.get(level or ""),
        "acquisition": f"{p.town}人民政府",
        "supply": "县人民政府",
        "construction": None,
    }[stage]
    doc = None
    if stage == "pre_review" and f is not None:
        doc = f"阳国土预〔{s.year}〕{int(rng.integers(1, 90))}号"
    elif stage == "conversion" and f is not None:
        doc = f"粤府土审〔{f.year}〕{int(rng.integers(1, 400))}号"
    return {
        "stage_id": f"{p.project_id}:{stage}",
        "project_id": p.project_id,
        "stage": stage,
        "started": s,
        "finished": f,
        "decided_by": by if f is not None else None,
        "doc_no": doc,
        "cadre": p.dept_cadre,
        "approval_level": level if stage == "conversion" else None,
        **kw,
    }


def _stages_and_meetings(
    seed: int,
    projects: pd.DataFrame,
    mapping: dict[str, str],
    levels: Mapping[str, str],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = _rng(seed, "pipeline-stages")
    first = MEETING_DATES[0]
    stages: list[dict[str, Any]] = []
    decisions: list[dict[str, Any]] = []
    for p in _rows(projects):
        # R14 from the site's areas, as `landquota demand` gives it (approval_levels);
        # a project without a fixed site has no areas yet, so no level
        level = levels.get(str(p.project_id))
        start = pd.Timestamp(p.start_date).date()

        def row(
            stage: str, s: date, f: date | None, p: Any = p, level: str | None = level, **kw: Any
        ) -> dict[str, Any]:
            return _stage_row(rng, p, level, stage, s, f, **kw)

        if p.status == "preparatory":
            # filed in 2014 after the meetings began: shorter stages, closed by the meetings
            meeting = MEETING_DATES[int(rng.integers(1, len(MEETING_DATES)))]
            # about 2/3 of the 30-60 days pre-review took before the meetings (below)
            s = meeting - _days(rng, 18, 32)
            if s >= first and rng.random() < 0.8:
                k = MEETING_DATES.index(meeting) + 1
                did = f"LS2014-{k:02d}:{p.project_id}"
                decisions.append(
                    {
                        "decision_id": did,
                        "meeting_id": f"LS2014-{k:02d}",
                        "meeting_date": meeting,
                        "departments": "县发改局,县国土资源局,县住建局,县环保局,县林业局",
                        "project_id": p.project_id,
                        "stage": "pre_review",
                        "matter": "用地预审 pre-review of the site",
                        "deadline": meeting + timedelta(days=30),
                    }
                )
                r = row("pre_review", s, meeting, decision_id=did)
                r["decided_by"] = "县重点项目联审会议 joint approval meeting"
                stages.append(r)
                stages.append(row("conversion", meeting + _days(rng, 3, 10), None))
            else:
                stages.append(row("pre_review", s, None))
            continue
        # started construction on start_date: every earlier stage finished before it
        supply_end = start - _days(rng, 10, 60)
        supply_start = supply_end - _days(rng, 40, 110)
        acq_end = supply_start - _days(rng, 0, 20)
        acq_start = acq_end - _days(rng, 90, 260)
        conv_end = acq_start - _days(rng, 0, 15)
        conv_start = conv_end - _days(rng, 90, 220)
        pre_end = conv_start - _days(rng, 5, 30)
        pre_start = pre_end - _days(rng, 30, 60)
        done_m2 = float(round(rng.uniform(2e4, 3e5), -2))
        stages += [
            row("pre_review", pre_start, pre_end),
            row("conversion", conv_start, conv_end),
            row(
                "acquisition",
                acq_start,
                acq_end,
                households=int(rng.integers(0, 120)),
                settled_m2=done_m2,
            ),
            row(
                "supply",
                supply_start,
                supply_end,
                supply_method="allocation"
                if p.planned_use in ("transport", "water", "energy", "public")
                else "sale",
            ),
            row("construction", start, date(2014, 2, 28) if p.status == "completed" else None),
        ]
    for r in stages:
        r["cadre"] = mapping.get(str(r["cadre"]), r["cadre"])
    return _frame("project_stages", stages), _frame("meetings", decisions)


def _visits(seed: int, projects: pd.DataFrame) -> pd.DataFrame:
    rng = _rng(seed, "pipeline-visits")
    rows = []
    leaders = sorted(set(projects["county_leader"]))
    keen = {s: rng.random() < 0.75 for s in leaders}  # a quarter of the leaders fall behind
    n = 0
    for p in _rows(projects.sort_values("project_id")):
        if p.status == "completed":
            continue
        day = date(2014, 1, 2) + _days(rng, 0, 12)
        gap = (8, 15) if keen[p.county_leader] else (12, 30)
        last = date(2014, 4, 30) if keen[p.county_leader] else date(2014, 4, 5)
        while day <= last:
            n += 1
            problem = None
            if rng.random() < 0.2:
                problem = _PROBLEMS[int(rng.integers(len(_PROBLEMS)))][0]
            rows.append(
                {
                    "visit_id": f"V{n:04d}",
                    "visit_date": day,
                    "staff_id": p.county_leader,
                    "project_id": p.project_id,
                    "problems": problem,
                    "solved": problem is None or rng.random() < 0.6,
                }
            )
            day += _days(rng, *gap)
    return _frame("visits", rows)


def approval_levels(
    projects: gpd.GeoDataFrame, parcels: gpd.GeoDataFrame, zones: gpd.GeoDataFrame, lines: Any
) -> dict[str, str]:
    """R14 approval level of every fixed site, computed as ``landquota demand`` computes it.

    The same two calls as the local engine (:mod:`landquota.engines.local`):
    :func:`~landquota.rules.demand.demand_from_sites` for the cultivated land outside
    basic farmland, then :func:`~landquota.rules.compliance.compliance_of_sites`,
    whose ``approval_level`` is R14 (Land Administration Law Art. 46: basic
    farmland, more than 35 ha of other cultivated land or more than 70 ha of other
    land → State Council; else the province). Default tolerance (1 m²) as the CLI.
    """
    demand = demand_from_sites(projects, parcels)
    verdict = compliance_of_sites(projects, zones, lines, demand=demand)
    return dict(zip(verdict["project_id"], verdict["approval_level"], strict=True))


def pipeline_frames(
    seed: int, projects: pd.DataFrame, levels: Mapping[str, str] | None = None
) -> dict[str, pd.DataFrame]:
    """Return the demo's pipeline tables, and ``projects`` with staff ids in its staff columns.

    *levels* maps project ids to their R14 approval level (:func:`approval_levels`);
    the conversion stages (农用地转用及征收报批) carry it and its deciding body.
    """
    staff, mapping = _staff(seed, projects)
    out = projects.copy()
    for role in STAFF_ROLES:
        out[role] = out[role].map(mapping).astype("str")
    stages, meetings = _stages_and_meetings(seed, out, mapping, levels or {})
    return {
        "projects": out,
        "staff": staff,
        "meetings": meetings,
        "project_stages": stages,
        "project_progress": _progress(seed, out),
        "visits": _visits(seed, out),
    }
