"""A month's review of the key projects, and its bulletin workbook (一月一通报; R17, issue 14).

:func:`monthly_review` reads everything the month's bulletin shows from a
workspace: the R17 figures from the monthly returns
(:func:`landquota.rules.progress.monthly_bulletin`), where each project's land
stands (:func:`landquota.rules.pipeline.current_stages`), the stage durations
against the joint meetings' one-third target, and the overdue lists:

* **lagging N months running** — projects behind time progress in each of the
  last N months (N = ``running``, default 3);
* **overdue approvals** — open stages that have lasted longer than the target
  for that stage (two thirds of its median before the joint meetings began);
  a stage with no history before the meetings has no target and is never
  listed;
* **overdue decisions** — joint-meeting decisions whose deadline has passed
  with their stage still not closed
  (:func:`landquota.rules.pipeline.overdue_decisions`);
* **overdue visits** — county leaders' projects not visited for more than half
  a month (15 days; see :mod:`landquota.rules.staff`) on the month's last day.

:func:`write_bulletin_xlsx` writes it as one workbook (deterministic bytes);
:mod:`landquota.outputs.bulletin_pdf` prints it on A4.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from landquota._xlsx import frames_to_xlsx
from landquota.rules.pipeline import (
    STAGE_LABELS,
    current_stages,
    overdue_decisions,
    stage_durations,
    stage_funnel,
)
from landquota.rules.progress import MonthlyBulletin, month_end, monthly_bulletin
from landquota.rules.staff import overdue_visits

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = ["MonthlyReview", "bulletin_frames", "monthly_review", "write_bulletin_xlsx"]


@dataclass(frozen=True)
class MonthlyReview:
    """Everything the bulletin of one month shows.

    Attributes
    ----------
    bulletin : MonthlyBulletin
        R17 figures of the month, per project, level, town, leader, department.
    county : str
        County name for the title (from the ``county`` layer, else empty).
    stages : pandas.DataFrame
        Current stage and days in it per project, on the month's last day.
    funnel : pandas.DataFrame
        Projects per stage.
    durations : pandas.DataFrame or None
        Stage durations before/after the first joint meeting (None: no meeting).
    lagging : pandas.DataFrame
        Projects lagging ``running`` months or more running.
    overdue_approvals : pandas.DataFrame
        Open stages past their target.
    overdue_visits : pandas.DataFrame
        Overdue (county leader, project) visits, with the leader's name.
    overdue_decisions : pandas.DataFrame
        Joint-meeting decisions past their deadline with the stage not closed,
        on the month's last day, with the project's name.
    running : int
        The N of "lagging N months running".
    chain_head : str
        The ledger's chain head when the bulletin was made (``SEQ:HEX``, issue 12):
        printed on the bulletin so that the bureau files it each month.
    """

    bulletin: MonthlyBulletin
    county: str
    stages: pd.DataFrame
    funnel: pd.DataFrame
    durations: pd.DataFrame | None
    lagging: pd.DataFrame
    overdue_approvals: pd.DataFrame
    overdue_visits: pd.DataFrame
    overdue_decisions: pd.DataFrame
    running: int
    chain_head: str = ""

    @property
    def title(self) -> str:
        """The bulletin's title, Chinese and English."""
        y, m = self.bulletin.month.split("-")
        return (
            f"{self.county}重点项目建设月度通报（{int(y)}年{int(m)}月）"
            f" Key-project monthly bulletin {self.bulletin.month}"
        )

    @property
    def as_of(self) -> date:
        """The month's last day."""
        return month_end(self.bulletin.month)


def monthly_review(ws: Workspace, *, month: str, running: int = 3) -> MonthlyReview:
    """Read a workspace and assemble the review of *month* (``YYYY-MM``)."""
    from landquota.store.chain import chain_head

    projects = ws.read_layer("projects")
    staff = ws.read_layer("staff")
    b = monthly_bulletin(projects, ws.read_layer("project_progress"), month=month, staff=staff)
    day = month_end(b.month)
    stages = ws.read_layer("project_stages")
    meetings = ws.read_layer("meetings")
    cur = current_stages(stages, as_of=day, projects=projects)
    names = projects.set_index("project_id")["name"]
    cur.insert(1, "name", cur["project_id"].map(names))
    durations = stage_durations(stages, meetings) if len(meetings) else None
    over = cur[cur["open"]].copy()
    target = (
        durations.set_index("stage")["target_days"]
        if durations is not None
        else pd.Series(dtype="float64")
    )
    over["target_days"] = over["current_stage"].map(target).astype("float64")
    over = over[over["target_days"].notna() & (over["days_in_stage"] > over["target_days"])]
    over["stage_zh"] = over["current_stage"].map(lambda s: STAGE_LABELS[s][0])
    over = over.sort_values(["days_in_stage", "project_id"], ascending=[False, True])
    visits = overdue_visits(projects, ws.read_layer("visits"), as_of=day)
    visits = visits[visits["overdue"]].copy()
    who = staff.set_index("staff_id")["name"] if len(staff) else pd.Series(dtype="str")
    visits.insert(1, "leader", visits["staff_id"].map(who))
    visits.insert(3, "name", visits["project_id"].map(names))
    late = overdue_decisions(stages, meetings, as_of=day)
    late.insert(4, "name", late["project_id"].map(names))
    late.insert(5, "stage_zh", late["stage"].map(lambda s: STAGE_LABELS[s][0]))
    county = ws.read_layer("county", columns=["name"])
    lag = b.lagging_running(running)
    return MonthlyReview(
        bulletin=b,
        county=str(county["name"].iloc[0]) if len(county) else "",
        stages=cur,
        funnel=stage_funnel(cur),
        durations=durations,
        lagging=lag,
        overdue_approvals=over.reset_index(drop=True),
        overdue_visits=visits.reset_index(drop=True),
        overdue_decisions=late,
        running=running,
        chain_head=chain_head(ws),
    )


def _summary(r: MonthlyReview) -> pd.DataFrame:
    b = r.bulletin
    base = b.base

    def pct(v: float) -> str:
        return "—" if np.isnan(v) else f"{100 * v:.1f} %"

    items = [
        ("通报 Bulletin", r.title),
        ("截至 As of", r.as_of.isoformat()),
        ("项目数 Projects", f"{base.n_projects}"),
        ("年度计划投资 Annual plan (yuan)", f"{b.annual_plan_yuan:,.0f}"),
        ("累计完成投资 Completed (yuan)", f"{b.completed_yuan:,.0f}"),
        (
            "本月完成 Invested this month (yuan)",
            f"{b.completed_yuan - b.previous_completed_yuan:,.0f}",
        ),
        ("完成率 Completion", pct(b.completion)),
        ("时间进度 Time progress (R17)", f"{base.month}/12 = {pct(b.time_progress)}"),
        ("总体 Portfolio", "滞后 lagging" if base.lagging else "未滞后 on schedule"),
        ("滞后项目 Lagging projects", f"{base.n_lagging}"),
        (f"连续{r.running}个月以上滞后 Lagging {r.running}+ months running", f"{len(r.lagging)}"),
        ("超期审批 Overdue approvals", f"{len(r.overdue_approvals)}"),
        ("联审决定超期未办结 Meeting decisions past deadline", f"{len(r.overdue_decisions)}"),
        ("超期未走访 Overdue visits (half-month rule)", f"{len(r.overdue_visits)}"),
    ]
    if r.chain_head:
        items.append(("台账链头 Ledger chain head (file it)", r.chain_head))
    return pd.DataFrame(items, columns=["item", "value"])


def bulletin_frames(r: MonthlyReview) -> dict[str, pd.DataFrame]:
    """Return the workbook's sheets, by name."""
    b = r.bulletin
    frames: dict[str, pd.DataFrame] = {
        "通报 summary": _summary(r),
        "分级 levels": b.levels,
        "项目 projects": b.projects.drop(columns=["time_progress"]),
        "乡镇排名 towns": b.towns,
        "部门排名 departments": b.departments,
        "县领导 leaders": b.leaders,
        "连续滞后 lagging": r.lagging[
            [
                "project_id",
                "name",
                "level",
                "town",
                "completion",
                "lagging_months",
                "problems",
                "measures",
                "county_leader",
            ]
        ],
        "月度走势 monthly": b.history,
        "报批阶段 stages": r.stages,
        "阶段漏斗 funnel": r.funnel,
        "超期审批 overdue approvals": r.overdue_approvals,
        "超期走访 overdue visits": r.overdue_visits,
        "超期决定 overdue decisions": r.overdue_decisions,
    }
    if r.durations is not None:
        frames["审批时限 durations"] = r.durations
    return frames


def write_bulletin_xlsx(r: MonthlyReview, out: str | Path) -> Path:
    """Write the month's bulletin workbook (the same review gives the same bytes)."""
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    d = r.as_of
    data = frames_to_xlsx(bulletin_frames(r), stamp=datetime(d.year, d.month, d.day))
    path.write_bytes(data)
    return path
