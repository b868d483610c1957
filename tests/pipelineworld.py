"""A small hand-built world for the key-project pipeline tests (issue 14).

Three county projects with a plan of 1,200 yuan each (so R17's lagging test,
completed × 12 < plan × month, is easy to check by hand), three staff, and the
helpers that write them to a workspace.
"""

from __future__ import annotations

from typing import Any

import pandas as pd


def projects() -> pd.DataFrame:
    """Three projects in two towns; staff columns hold staff ids (schema v3)."""
    return pd.DataFrame(
        {
            "project_id": ["A", "B", "C"],
            "name": ["甲项目", "乙项目", "丙项目"],
            "level": ["county", "county", "city"],
            "score": [50.0, 60.0, 70.0],
            "town": ["东镇", "东镇", "西镇"],
            "annual_plan_yuan": [1200.0, 1200.0, 1200.0],
            "completed_yuan": [0.0, 0.0, 0.0],
            "status": ["continuing", "continuing", "new_start"],
            "county_leader": ["L1", "L1", "L2"],
            "town_cadre": ["T1", "T1", "T1"],
            "dept_cadre": ["D1", "D1", "D1"],
            "site_fixed": [False, False, False],
            "demand_m2": [1000.0, 1000.0, 1000.0],
            "phaseable": [False, False, False],
            "national_exception": [False, False, False],
        }
    )


def staff() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "staff_id": ["L1", "L2", "T1", "D1"],
            "name": ["张县长", "李副县长", "王镇长", "陈科长"],
            "role": ["county_leader", "county_leader", "town_cadre", "dept_cadre"],
            "duties": ["liaison,supervisor", "supervisor", "agent,informant", "agent"],
            "town": [None, None, "东镇", None],
            "department": ["县人民政府", "县人民政府", None, "县国土资源局"],
        }
    )


def returns(rows: dict[str, list[float | None]], year: int = 2014) -> pd.DataFrame:
    """Monthly returns from ``{project: [jan, feb, ...]}``; None = no return that month."""
    out: list[dict[str, Any]] = []
    for pid, values in rows.items():
        for m, v in enumerate(values, start=1):
            if v is None:
                continue
            month = f"{year}-{m:02d}"
            out.append(
                {
                    "progress_id": f"{pid}:{month}",
                    "project_id": pid,
                    "month": month,
                    "completed_yuan": float(v),
                    "land_status": None,
                    "problems": "征地慢" if pid == "A" else None,
                    "measures": None,
                }
            )
    return pd.DataFrame(out)


def stage(
    pid: str, name: str, started: str, finished: str | None = None, **kw: Any
) -> dict[str, Any]:
    return {
        "stage_id": f"{pid}:{name}",
        "project_id": pid,
        "stage": name,
        "started": pd.Timestamp(started),
        "finished": pd.Timestamp(finished) if finished else pd.NaT,
        **kw,
    }


def write_world(ws: Any) -> None:
    """Write these projects and staff to a workspace."""
    ws.write_layers({"staff": staff(), "projects": projects()})


def decision(
    did: str, pid: str, stage: str | None, meeting: str, deadline: str | None
) -> dict[str, Any]:
    """One ``meetings`` row (a joint-meeting decision) with its deadline."""
    return {
        "decision_id": did,
        "meeting_id": did.split(":")[0],
        "meeting_date": pd.Timestamp(meeting),
        "departments": "县发改局,县国土资源局",
        "project_id": pid,
        "stage": stage,
        "matter": "办理 the matter",
        "deadline": pd.Timestamp(deadline) if deadline else pd.NaT,
    }


def late_decisions_world(ws: Any) -> None:
    """Projects, staff and four decisions whose deadlines fall in April 2014.

    * ``M1:1`` A pre-review, deadline 04-10, stage still open → overdue from 04-11;
    * ``M1:2`` B pre-review, deadline 04-05, closed late on 04-08 → overdue 04-06..04-07 only;
    * ``M1:3`` C conversion, deadline 04-01, no conversion stage at all → overdue from 04-02;
    * ``M1:4`` A matter without a stage → no term to check, never listed.
    """
    write_world(ws)
    ws.write_layers(
        {
            "project_stages": pd.DataFrame(
                [
                    stage("A", "pre_review", "2014-03-01"),
                    stage("B", "pre_review", "2014-03-01", "2014-04-08"),
                ]
            ),
            "meetings": pd.DataFrame(
                [
                    decision("M1:1", "A", "pre_review", "2014-03-18", "2014-04-10"),
                    decision("M1:2", "B", "pre_review", "2014-03-18", "2014-04-05"),
                    decision("M1:3", "C", "conversion", "2014-03-18", "2014-04-01"),
                    decision("M1:4", "A", None, "2014-03-18", "2014-04-01"),
                ]
            ),
        }
    )
