"""Commands of the key-project pipeline (issue 14): bulletin, progress, meeting, stages, staff.

Registered with :func:`landquota.cli.main.command`; each only calls the public
functions of :mod:`landquota.rules.progress`, :mod:`landquota.rules.pipeline`,
:mod:`landquota.rules.staff`, :mod:`landquota.intake.progress` and
:mod:`landquota.outputs.monthly`.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from landquota.cli.main import _date, _db, _maybe_csv, _target, args, command
from landquota.errors import ParameterError

if TYPE_CHECKING:
    from landquota.outputs.console import Col


# --- bulletin ----------------------------------------------------------------------------------
def _bulletin_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--month", required=True, help="bulletin month YYYY-MM (e.g. 2014-04)")
    p.add_argument(
        "--out",
        action="append",
        default=[],
        help="write the bulletin: .xlsx (workbook) or .pdf (printable A4 with charts); repeatable",
    )
    p.add_argument(
        "--running",
        type=int,
        default=3,
        help="list projects lagging this many months running or more (default 3)",
    )


@command("bulletin", "monthly key-project bulletin of any month 重点项目月度通报（一月一通报）")
@args(_bulletin_args)
def _bulletin(ns: argparse.Namespace) -> int:
    from landquota.outputs.monthly import monthly_review, write_bulletin_xlsx
    from landquota.rules.progress import parse_month
    from landquota.store.api import open_workspace

    parse_month(ns.month)  # refuse a bad month before opening anything
    if ns.running < 1:
        raise ParameterError(f"--running {ns.running}: give 1 or more months")
    for out in ns.out:
        if Path(out).suffix.lower() not in (".xlsx", ".pdf"):
            raise ParameterError(f"--out {out!r}: use a .xlsx or .pdf file name")
    with open_workspace(_target(ns)) as ws:
        review = monthly_review(ws, month=ns.month, running=ns.running)
    print(review.bulletin)
    print(f"链头 chain head {review.chain_head}  (file it with the bulletin)")
    for out in ns.out:
        if Path(out).suffix.lower() == ".pdf":
            from landquota.outputs.bulletin_pdf import write_bulletin_pdf

            path = write_bulletin_pdf(review, out)
        else:
            path = write_bulletin_xlsx(review, out)
        print(f"已写出 written: {path}")
    return 0


# --- progress ------------------------------------------------------------------------------------
def _progress_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("src", help="the month's return form (.xlsx or .csv); see docs/pipeline.md")
    _db(p)
    p.add_argument(
        "--month", default=None, help="YYYY-MM of every row (when the form has no month)"
    )
    p.add_argument("--sheet", default=None, help="sheet of the workbook (default: the first)")


@command("progress", "import the key projects' monthly returns 导入重点项目月报")
@args(_progress_args)
def _progress(ns: argparse.Namespace) -> int:
    from landquota.intake.progress import import_returns
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        rows = import_returns(ws, ns.src, month=ns.month, sheet=ns.sheet)
    months = ", ".join(sorted(set(rows["month"])))
    print(
        f"已导入月报 imported {len(rows)} returns ({months}); "
        f"累计完成投资合计 total completed {rows['completed_yuan'].sum():,.0f} yuan"
    )
    return 0


# --- meeting -------------------------------------------------------------------------------------
def _meeting_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--id", dest="meeting_id", required=True, help="meeting id, e.g. LS2014-05")
    p.add_argument("--date", required=True, help="meeting date YYYY-MM-DD")
    p.add_argument(
        "--departments", required=True, help="departments present, comma-separated (中文 fine)"
    )
    p.add_argument(
        "--decision",
        action="append",
        default=[],
        metavar="PROJECT|MATTER[|STAGE[|DEADLINE]]",
        help="one matter decided, fields separated by '|': project id, matter, optionally the "
        "stage it closes (pre_review, conversion, acquisition, supply, construction) and a "
        "deadline YYYY-MM-DD; repeatable",
    )


def _decision(text: str, n: int) -> object:
    from landquota.rules.pipeline import Decision

    parts = [x.strip() for x in text.split("|")]
    if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
        raise ParameterError(
            f"--decision {n} {text!r}: give PROJECT|MATTER[|STAGE[|DEADLINE]], e.g. "
            "'K012|用地预审|pre_review|2014-06-30'"
        )
    stage = parts[2] if len(parts) > 2 and parts[2] else None
    deadline = _date(parts[3], f"--decision {n} deadline") if len(parts) > 3 and parts[3] else None
    return Decision(parts[0], parts[1], stage=stage, deadline=deadline)


@command("meeting", "record a joint approval meeting 记录重点项目联审会议")
@args(_meeting_args)
def _meeting(ns: argparse.Namespace) -> int:
    from landquota.rules.pipeline import Decision, record_meeting
    from landquota.store.api import open_workspace

    if not ns.decision:
        raise ParameterError("give at least one --decision PROJECT|MATTER[|STAGE[|DEADLINE]]")
    decisions = [_decision(d, n) for n, d in enumerate(ns.decision, start=1)]
    day = _date(ns.date, "--date")
    with open_workspace(_target(ns)) as ws:
        rows = record_meeting(
            ws,
            meeting_id=ns.meeting_id,
            meeting_date=day,
            departments=ns.departments.replace("，", ",").split(","),
            decisions=[d for d in decisions if isinstance(d, Decision)],
        )
    closed = int(rows["stage"].notna().sum())
    print(
        f"已记录联审会议 meeting {ns.meeting_id} ({day}): {len(rows)} decisions, "
        f"{closed} stage(s) closed"
    )
    return 0


# --- stages --------------------------------------------------------------------------------------
def _stage_tables() -> dict[str, tuple[Col, ...]]:
    """Return the columns a clerk reads for ``stages`` and ``staff``.

    Chinese above English headers, stored codes as their labels (``landquota.labels``),
    ``—`` for a missing figure.
    """
    from landquota.labels import STAFF_ROLE_LABELS, STAGE_LABELS, label_map
    from landquota.outputs.console import Col

    stage = {"none": "未报批 not started", **label_map(STAGE_LABELS)}
    role = label_map(STAFF_ROLE_LABELS)
    return {
        "funnel": (
            Col("stage", "阶段", "Stage", labels=stage),
            Col("projects", "到达项目", "Projects reached", "int"),
            Col("open", "在办", "Open", "int"),
        ),
        "durations": (
            Col("stage", "阶段", "Stage", labels=stage),
            Col("n_before", "联审前件数", "n before", "int"),
            Col("median_before", "联审前中位天数", "Median days before", "float"),
            Col("p90_before", "联审前90%天数", "P90 days before", "float"),
            Col("n_after", "联审后件数", "n after", "int"),
            Col("median_after", "联审后中位天数", "Median days after", "float"),
            Col("p90_after", "联审后90%天数", "P90 days after", "float"),
            Col("target_days", "目标天数", "Target days", "float"),
            Col("cut", "缩短", "Cut", "pct"),
            Col("target_met", "达到减少三分之一", "One third cut met", "bool"),
        ),
        "staff": (
            Col("staff_id", "编号", "Staff id"),
            Col("name", "姓名", "Name"),
            Col("role", "层级", "Role", labels=role),
            Col("n_projects", "联系项目", "Projects", "int"),
            Col("n_lagging", "滞后项目", "Lagging", "int"),
            Col("n_overdue", "超期未走访", "Visits overdue", "int"),
            Col("overdue", "超期项目", "Overdue projects"),
        ),
        "decisions": (
            Col("decision_id", "决定编号", "Decision"),
            Col("project_id", "项目", "Project"),
            Col("stage", "阶段", "Stage", labels=stage),
            Col("deadline", "办结期限", "Deadline", "date"),
            Col("days_overdue", "超期天数", "Days overdue", "int"),
        ),
    }


def _stages_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="date YYYY-MM-DD (default: the workspace's as_of)")
    p.add_argument(
        "--from-run",
        default=None,
        metavar="RUN_ID",
        help="open the conversion stage of every project the committed run funded (its quota is "
        "the approval's input), dated the run's commit day",
    )
    p.add_argument("--out", default=None, help="write the per-project stages as CSV")


@command("stages", "land-approval stages: funnel, days in stage, one-third target 用地报批进度")
@args(_stages_args)
def _stages(ns: argparse.Namespace) -> int:
    import pandas as pd

    from landquota.rules.pipeline import (
        conversion_inputs,
        current_stages,
        merge_conversion_inputs,
        stage_durations,
        stage_funnel,
    )
    from landquota.store.api import open_workspace

    with open_workspace(_target(ns)) as ws:
        if ns.from_run:
            runs = ws.read_layer("allocation_runs", where={"run_id": ns.from_run})
            if not len(runs) or runs["status"].iloc[0] != "committed":
                raise ParameterError(
                    f"--from-run {ns.from_run!r}: no committed run of that id; commit it first "
                    "(landquota commit) or list the runs with landquota report"
                )
            when = runs["status_changed_at"].iloc[0]
            alloc = ws.read_layer("allocations", where={"run_id": ns.from_run})
            cadres = ws.read_layer("projects", columns=["dept_cadre"]).set_index("project_id")
            new = conversion_inputs(
                alloc,
                started=pd.Timestamp(when).date(),
                cadres={str(k): str(v) for k, v in cadres["dept_cadre"].dropna().items()},
            )
            merged, opened, fed = merge_conversion_inputs(ws.read_layer("project_stages"), new)
            ws.write_layers({"project_stages": merged}, mode="replace")  # one transaction
            print(
                f"转用报批 conversion from run {ns.from_run}: {opened} stage(s) opened, "
                f"{fed} open stage(s) given the run's quota"
            )
        recorded = ws.meta().get("as_of") if ns.as_of is None else ns.as_of
        from datetime import date

        as_of = _date(recorded, "--as-of") or date.today()
        projects = ws.read_layer("projects")
        stages = ws.read_layer("project_stages")
        meetings = ws.read_layer("meetings")
    cur = current_stages(stages, as_of=as_of, projects=projects)
    from landquota.outputs.console import render_table

    cols = _stage_tables()
    print(
        render_table(
            stage_funnel(cur),
            cols["funnel"],
            title=f"报批阶段漏斗 stage funnel as of {as_of.isoformat()}",
        )
    )
    if len(meetings):
        print(
            render_table(
                stage_durations(stages, meetings),
                cols["durations"],
                title="审批时限（联审会议前后）days per stage before/after the first joint meeting",
            )
        )
    _maybe_csv(cur, ns.out)
    return 0


# --- staff ---------------------------------------------------------------------------------------
def _staff_args(p: argparse.ArgumentParser) -> None:
    _db(p)
    p.add_argument("--as-of", default=None, help="review date YYYY-MM-DD")
    p.add_argument("--out", default=None, help="write the list as CSV")
    p.add_argument(
        "--adopt-names",
        action="store_true",
        help="turn names typed into the projects' county_leader/town_cadre/dept_cadre columns "
        "(an imported file) into staff rows and ids first",
    )


@command(
    "staff",
    "service staff: projects, lagging, problems, overdue visits and decisions 三级服务员督办",
)
@args(_staff_args)
def _staff(ns: argparse.Namespace) -> int:
    from landquota.rules.pipeline import overdue_decisions
    from landquota.rules.progress import monthly_bulletin
    from landquota.rules.staff import HALF_MONTH_DAYS, staff_review
    from landquota.store.api import open_workspace

    if ns.as_of is None and not ns.adopt_names:
        raise ParameterError("give --as-of YYYY-MM-DD (the review date), or --adopt-names")
    with open_workspace(_target(ns)) as ws:
        if ns.adopt_names:
            from landquota.rules.staff import adopt_staff_names

            added = adopt_staff_names(ws)
            print(f"已登记服务员 {len(added)} new staff from the projects' name columns")
            if ns.as_of is None:
                return 0
        day = _date(ns.as_of, "--as-of")
        month = f"{day.year:04d}-{day.month:02d}"
        projects = ws.read_layer("projects")
        staff = ws.read_layer("staff")
        visits = ws.read_layer("visits")
        progress = ws.read_layer("project_progress")
        late = overdue_decisions(
            ws.read_layer("project_stages"), ws.read_layer("meetings"), as_of=day
        )
    lagging = problems = None
    if len(progress):
        b = monthly_bulletin(projects, progress, month=month, staff=staff)
        lagging = b.projects.set_index("project_id")["lagging"]
        problems = b.projects.set_index("project_id")["problems"].dropna()
    review = staff_review(
        projects, staff, visits, as_of=day, lagging=lagging, problems=problems, decisions=late
    )
    print(
        f"三级服务员 service staff as of {day.isoformat()} (visits overdue after "
        f"{HALF_MONTH_DAYS} days, the half-month rule):"
    )
    from landquota.outputs.console import render_table

    cols = _stage_tables()
    print(render_table(review, cols["staff"]))
    print(
        f"超期未走访 overdue visits: {int(review['n_overdue'].sum())} "
        f"(leaders: {int((review['n_overdue'] > 0).sum())})"
    )
    print(f"超期未办结的联审决定 joint-meeting decisions past their deadline: {len(late)}")
    if len(late):
        print(render_table(late, cols["decisions"]))
    _maybe_csv(review, ns.out)
    return 0
