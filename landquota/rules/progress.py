"""Monthly returns and the bulletin of any month (一月一通报, rule R17; issue 14).

Every key project files a monthly return (月报): the investment completed from
1 January to the end of the month (cumulative, yuan), the month's land status,
its problems (问题) and measures (措施). They are the ``project_progress`` layer,
one row per project and month.

The bulletin of a month (:func:`monthly_bulletin`) reads those returns, not the
projects' ``completed_yuan`` snapshot:

* A project's figure for month *m* is its return for *m*; a project that filed
  none for *m* keeps its latest earlier return of the same year (investment is
  cumulative and cannot fall) and is flagged ``reported = False``; with no
  return at all in the year it stands at 0.
* Time progress is *m* ÷ 12 and lagging is completed ÷ plan < *m* ÷ 12,
  strictly (R17, the arithmetic of :mod:`landquota.rules.bulletin`).
* ``lagging_months`` counts the months running, ending with *m*, in which the
  project lagged: lagging in February, March and April gives 3 for April; a
  project that caught up in April gives 0 however long it lagged before.
* ``change_yuan`` is the month's investment: the figure of *m* minus that of
  *m* − 1 (January: the figure itself, the year starting at 0).

Sums per level, town, county leader and department (the department of the
project's department cadre) are given with their completion, and towns and
departments are ranked by completion (highest first; ties by name).
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.rules.bulletin import Bulletin, investment_bulletin
from landquota.rules.staff import with_staff_names
from landquota.store.pipeline_check import check_progress, parse_month
from landquota.store.schema import LEVELS

__all__ = [
    "GROUP_COLUMNS",
    "MonthlyBulletin",
    "check_progress",
    "month_end",
    "monthly_bulletin",
    "parse_month",
]

#: Columns of the per-group tables (towns, leaders, departments).
GROUP_COLUMNS: tuple[str, ...] = (
    "group",
    "projects",
    "lagging_projects",
    "annual_plan_yuan",
    "completed_yuan",
    "change_yuan",
    "completion",
    "lagging",
    "rank",
)


def month_end(value: str) -> date:
    """Return the last day of a ``YYYY-MM`` month (the bulletin's "as of" date)."""
    y, m = parse_month(value)
    return date(y, m, monthrange(y, m)[1])


def _figures(projects: pd.DataFrame, progress: pd.DataFrame, year: int, month: int) -> pd.DataFrame:
    """Cumulative figure per project and month 1..month (carried forward), and reported flags."""
    ids = projects["project_id"].astype("str").tolist()
    p = progress[progress["month"].str.slice(0, 4) == f"{year:04d}"]
    p = p[p["project_id"].isin(ids)]
    wide = p.assign(_m=p["month"].str.slice(5, 7).astype(int)).pivot_table(
        index="project_id", columns="_m", values="completed_yuan", aggfunc="last"
    )
    wide = wide.reindex(index=ids, columns=range(1, month + 1))
    reported = wide.notna()
    filled = wide.ffill(axis=1).fillna(0.0)
    return pd.concat({"value": filled, "reported": reported}, axis=1)


def _group(df: pd.DataFrame, key: str, month: int, *, rank: bool) -> pd.DataFrame:
    g = df.assign(_k=df[key].fillna("—")).groupby("_k", sort=True)
    out = pd.DataFrame(
        {
            "group": g.size().index.astype("str"),
            "projects": g.size().to_numpy().astype("int64"),
            "lagging_projects": g["lagging"].sum().to_numpy().astype("int64"),
            "annual_plan_yuan": g["annual_plan_yuan"].sum().to_numpy(),
            "completed_yuan": g["completed_yuan"].sum().to_numpy(),
            "change_yuan": g["change_yuan"].sum().to_numpy(),
        }
    )
    plan = out["annual_plan_yuan"]
    out["completion"] = (out["completed_yuan"] / plan.where(plan > 0)).astype("float64")
    out["lagging"] = (out["completed_yuan"] * 12.0 < plan * float(month)) & (plan > 0)  # R17
    if rank:
        out = out.sort_values(
            ["completion", "group"], ascending=[False, True], kind="stable", na_position="last"
        ).reset_index(drop=True)
        out["rank"] = np.arange(1, len(out) + 1)
    else:
        out["rank"] = pd.array([pd.NA] * len(out), dtype="Int64")
    return out[list(GROUP_COLUMNS)]


@dataclass(frozen=True)
class MonthlyBulletin:
    """The key-project bulletin of one month, from the monthly returns (R17).

    Attributes
    ----------
    month : str
        ``YYYY-MM``.
    base : Bulletin
        The R17 figures of the month (totals, per project, per level), as
        :func:`landquota.rules.bulletin.investment_bulletin` gives them for the
        month's figures.
    projects : pandas.DataFrame
        ``base.projects`` plus ``previous_yuan``, ``change_yuan``,
        ``reported``, ``lagging_months``, ``land_status``, ``problems``,
        ``measures`` and ``department``; staff columns hold names.
    levels, towns, leaders, departments : pandas.DataFrame
        Per-group sums (:data:`GROUP_COLUMNS`); towns and departments ranked.
    history : pandas.DataFrame
        Completion per level and month, January to *month* (``month``,
        ``level``, ``completed_yuan``, ``annual_plan_yuan``, ``completion``,
        ``time_progress``), the portfolio as level ``all``.
    previous_completed_yuan : float
        Portfolio figure of the month before (0 for January).
    """

    month: str
    base: Bulletin
    projects: pd.DataFrame
    levels: pd.DataFrame
    towns: pd.DataFrame
    leaders: pd.DataFrame
    departments: pd.DataFrame
    history: pd.DataFrame
    previous_completed_yuan: float
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def completed_yuan(self) -> float:
        """Portfolio investment completed by the month's end."""
        return self.base.completed_yuan

    @property
    def annual_plan_yuan(self) -> float:
        """Portfolio annual plan."""
        return self.base.annual_plan_yuan

    @property
    def completion(self) -> float:
        """Portfolio completion (completed ÷ plan)."""
        return self.base.completion

    @property
    def time_progress(self) -> float:
        """Month ÷ 12 (R17)."""
        return self.base.time_progress

    def lagging_running(self, months: int = 2) -> pd.DataFrame:
        """Projects lagging at least *months* months running, longest first."""
        if months < 1:
            raise ParameterError(f"months={months!r}: give 1 or more")
        p = self.projects[self.projects["lagging_months"] >= months]
        return p.sort_values(
            ["lagging_months", "lag", "project_id"], ascending=[False, False, True], kind="stable"
        ).reset_index(drop=True)

    def __str__(self) -> str:
        def pct(v: float) -> str:
            return "—" if np.isnan(v) else f"{100 * v:.1f} %"

        b = self.base
        change = self.completed_yuan - self.previous_completed_yuan
        lines = [
            f"重点项目投资月度通报 Monthly key-project bulletin {self.month} (一月一通报)",
            f"全部 {b.n_projects} 个项目 all {b.n_projects} projects: 完成 completed "
            f"{b.completed_yuan:,.0f} / 计划 plan {b.annual_plan_yuan:,.0f} yuan = "
            f"{pct(b.completion)} against time progress {b.month}/12 = {pct(b.time_progress)}"
            + (" — 滞后 LAGGING" if b.lagging else " — on schedule"),
            f"本月完成 invested this month: {change:,.0f} yuan; "
            f"滞后项目 lagging projects {b.n_lagging} / {b.n_projects}; "
            f"未报 no return this month: {int((~self.projects['reported']).sum())}",
            "分级 by level:",
        ]
        for r in self.levels.to_dict("records"):
            lines.append(
                f"  {r['group']!s:<10} {int(r['projects']):>3} projects  "
                f"{float(r['completed_yuan']):>15,.0f} / {float(r['annual_plan_yuan']):>15,.0f} "
                f"yuan  {pct(float(r['completion'])):>7}"
                + ("  滞后 lagging" if r["lagging"] else "")
            )
        run = self.lagging_running(3)
        lines.append(f"连续3个月及以上滞后 lagging 3+ months running: {len(run)}")
        for r in run.head(10).to_dict("records"):
            lines.append(
                f"  {r['project_id']!s} {r['name']!s}: {int(r['lagging_months'])} months running"
            )
        lines.append(
            "乡镇排名 towns by completion: "
            + ", ".join(
                f"{int(r['rank'])}. {r['group']!s} {pct(float(r['completion']))}"
                for r in self.towns.head(5).to_dict("records")
            )
        )
        return "\n".join(lines)


def _check_month_has_returns(progress: pd.DataFrame, year: int, month: int) -> None:
    """Refuse a bulletin of a month not begun, or of a year the returns do not cover (R17).

    Either would show every project at 0 yuan completed and "lagging" in what reads like a
    real bulletin: a typo such as ``2099-01``, or a year whose returns were never imported.
    A workspace with no return at all is allowed (its first bulletin still has the stages,
    the funnel and the overdue lists; every project counts as 未报), and so is a later month
    of a covered year (the projects with no return yet are listed as such).
    """
    asked = f"{year:04d}-{month:02d}"
    today = date.today()
    if (year, month) > (today.year, today.month):
        raise DataError(
            f"--month {asked}: that month has not begun (today is {today.isoformat()}); "
            "give a month up to the current one"
        )
    months = progress["month"].astype("str") if len(progress) else pd.Series(dtype="str")
    if not len(months) or (months.str.slice(0, 4) == f"{year:04d}").any():
        return
    raise DataError(
        f"--month {asked}: no monthly return (月报) in {year:04d}; the returns cover "
        f"{months.min()} to {months.max()}. Check the month, or import that year's "
        "returns with `landquota progress FILE` first"
    )


def monthly_bulletin(
    projects: pd.DataFrame,
    progress: pd.DataFrame,
    *,
    month: str,
    staff: pd.DataFrame | None = None,
) -> MonthlyBulletin:
    """Build the bulletin of *month* from the monthly returns (R17).

    Parameters
    ----------
    projects : pandas.DataFrame
        The ``projects`` layer (annual plans, levels, towns, staff ids).
    progress : pandas.DataFrame
        The ``project_progress`` layer; only the returns of *month*'s year up to
        *month* are read.
    month : str
        ``YYYY-MM``.
    staff : pandas.DataFrame, optional
        The ``staff`` layer: names for the staff columns and the departments.

    Raises
    ------
    ParameterError
        *month* is not ``YYYY-MM``.
    DataError
        Broken returns (see :func:`check_progress`), no project at all, a month not
        begun yet, or returns that exist but none in *month*'s year (a bulletin of
        zeros would read like a real one).

    Examples
    --------
    >>> p = pd.DataFrame({"project_id": ["K1"], "name": ["甲"], "level": ["county"],
    ...     "annual_plan_yuan": [1200.0], "completed_yuan": [0.0]})
    >>> r = pd.DataFrame({"progress_id": ["K1:2014-03", "K1:2014-04"],
    ...     "project_id": ["K1", "K1"], "month": ["2014-03", "2014-04"],
    ...     "completed_yuan": [200.0, 400.0]})
    >>> b = monthly_bulletin(p, r, month="2014-04")
    >>> b.completed_yuan, bool(b.base.lagging), int(b.projects.at[0, "change_yuan"])
    (400.0, False, 200)
    """
    year, m = parse_month(month)
    if not len(projects):
        raise DataError("the workspace has no projects: nothing to report")
    check_progress(progress)
    _check_month_has_returns(progress, year, m)
    fig = _figures(projects, progress, year, m)
    value = fig["value"]
    cur = value[m]
    prev = value[m - 1] if m > 1 else pd.Series(0.0, index=value.index)
    snap = pd.DataFrame(projects.drop(columns="geometry", errors="ignore")).copy()
    snap["completed_yuan"] = snap["project_id"].astype("str").map(cur).astype("float64")
    named = with_staff_names(snap, staff)
    base = investment_bulletin(named, as_of=month_end(month))

    plan = snap.set_index(snap["project_id"].astype("str"))["annual_plan_yuan"].astype("float64")
    # R17 month by month: lagging[k] when completed by month k * 12 < plan * k
    lag = pd.DataFrame(
        {k: (value[k] * 12.0 < plan * float(k)) & (plan > 0) for k in range(1, m + 1)}
    )
    running = pd.Series(0, index=lag.index, dtype="int64")
    alive = pd.Series(True, index=lag.index)
    for k in range(m, 0, -1):  # count back from the month while the project kept lagging
        alive &= lag[k]
        running += alive.astype("int64")

    out = base.projects.copy()
    pid = out["project_id"]
    out["previous_yuan"] = pid.map(prev).astype("float64").to_numpy()
    out["change_yuan"] = out["completed_yuan"] - out["previous_yuan"]
    out["reported"] = pid.map(fig["reported"][m]).astype(bool).to_numpy()
    out["lagging_months"] = pid.map(running).astype("int64").to_numpy()
    ret = progress[progress["month"] == month].set_index("project_id")
    for col in ("land_status", "problems", "measures"):
        # the free-text columns are optional in a frame built by hand (the layer has them)
        text = pid.map(ret[col]) if col in ret.columns else pd.Series(None, index=pid.index)
        out[col] = text.astype("str").where(text.notna()).to_numpy()
    dept: pd.Series = pd.Series(dtype="str")
    if staff is not None and len(staff):
        dept = staff.set_index("staff_id")["department"]
    raw_cadre = (
        snap.set_index(snap["project_id"].astype("str"))["dept_cadre"]
        if ("dept_cadre" in snap.columns)
        else pd.Series(dtype="str")
    )
    out["department"] = (
        pid.map(raw_cadre)
        .map(dept)
        .astype("str")
        .where(pid.map(raw_cadre).map(dept).notna())
        .to_numpy()
    )

    levels = _group(out, "level", m, rank=False)
    levels = levels.assign(_o=levels["group"].map({lv: i for i, lv in enumerate(LEVELS)}))
    levels = levels.sort_values("_o", kind="stable").drop(columns="_o").reset_index(drop=True)

    hist = []
    for k in range(1, m + 1):
        for lv in [*LEVELS, "all"]:
            pick = plan.index if lv == "all" else snap.loc[snap["level"] == lv, "project_id"]
            sel = [str(x) for x in pick]
            if not sel:
                continue
            done, pl = float(value.loc[sel, k].sum()), float(plan.loc[sel].sum())
            hist.append(
                {
                    "month": f"{year:04d}-{k:02d}",
                    "level": lv,
                    "completed_yuan": done,
                    "annual_plan_yuan": pl,
                    "completion": done / pl if pl > 0 else float("nan"),
                    "time_progress": k / 12,
                }
            )
    return MonthlyBulletin(
        month=f"{year:04d}-{m:02d}",
        base=base,
        projects=out,
        levels=levels,
        towns=_group(out, "town", m, rank=True),
        leaders=_group(out, "county_leader", m, rank=False),
        departments=_group(out, "department", m, rank=True),
        history=pd.DataFrame(hist),
        previous_completed_yuan=float(prev.sum()),
    )
