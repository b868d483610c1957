"""The monthly key-project investment bulletin (一月一通报), rule R17.

Every key project has an annual investment plan and the investment completed so
far. The bulletin sets each project's completion (completed ÷ annual plan)
against the *time progress* of the year and flags the projects, the levels and
the whole portfolio that lag behind it. The county's 2014 figures are the
yardstick: 78 projects, 2.935 billion yuan planned, 317 million completed at the
end of April, i.e. 10.8 % against 4/12 = 33.3 %, lagging.

Time progress
-------------
R17 says "month ÷ 12". Here the month is the calendar month *of* ``as_of``: the
bulletin of a month counts that month as elapsed, as the county's "end of
April → 4/12" does. So 2014-04-30 and 2014-04-01 both give 4/12 = 33.3 %;
to report on the end of March, pass a date in March. December gives 12/12.

Lagging
-------
A project (a level, the portfolio) lags when completed ÷ plan < time progress,
strictly. The comparison is made as ``completed × 12 < month × plan`` so that a
project exactly on schedule (e.g. 400 of 1,200 in April) is never flagged by a
rounding error. A project with an annual plan of 0 has no completion (NaN) and
is not lagging: nothing was planned for the year.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.labels import LEVEL_LABELS
from landquota.store.schema import LEVELS, PROJECT_STATUSES

__all__ = [
    "BULLETIN_COLUMNS",
    "LEVEL_NAMES",
    "LEVEL_TOTAL_COLUMNS",
    "Bulletin",
    "investment_bulletin",
    "time_progress",
]

#: Chinese and English names of the project levels, in R18 order (an alias of
#: :data:`landquota.labels.LEVEL_LABELS`, the one table).
LEVEL_NAMES: Mapping[str, tuple[str, str]] = LEVEL_LABELS

#: Columns of :attr:`Bulletin.projects`, in order.
BULLETIN_COLUMNS: tuple[str, ...] = (
    "project_id",
    "name",
    "level",
    "status",
    "town",
    "annual_plan_yuan",
    "completed_yuan",
    "completion",
    "time_progress",
    "lag",
    "lagging",
    "county_leader",
    "town_cadre",
    "dept_cadre",
)

#: Columns of :attr:`Bulletin.levels`, in order.
LEVEL_TOTAL_COLUMNS: tuple[str, ...] = (
    "level",
    "projects",
    "lagging_projects",
    "annual_plan_yuan",
    "completed_yuan",
    "completion",
    "time_progress",
    "lag",
    "lagging",
)

_REQUIRED = ("project_id", "name", "level", "annual_plan_yuan", "completed_yuan")
_STAFF = ("county_leader", "town_cadre", "dept_cadre")


def _as_date(as_of: Any) -> date:
    """Return *as_of* as a :class:`datetime.date`, or raise a ParameterError."""
    if isinstance(as_of, bool) or as_of is None:
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)")
    if isinstance(as_of, datetime):
        return as_of.date()
    if isinstance(as_of, date):
        return as_of
    try:
        ts = pd.Timestamp(as_of)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)") from exc
    if pd.isna(ts):
        raise ParameterError(f"as_of={as_of!r} is not a date; give e.g. date(2014, 4, 30)")
    return date(ts.year, ts.month, ts.day)


def time_progress(as_of: date) -> float:
    """Time progress of the year by R17: the month of ``as_of`` ÷ 12.

    Parameters
    ----------
    as_of : datetime.date
        Bulletin date; its calendar month counts as elapsed.

    Returns
    -------
    float
        ``as_of.month / 12``.

    Examples
    --------
    >>> round(time_progress(date(2014, 4, 30)), 3)
    0.333
    >>> time_progress(date(2014, 12, 1))
    1.0
    """
    return _as_date(as_of).month / 12


def _lagging(completed: pd.Series, plan: pd.Series, month: int) -> pd.Series:
    # R17: completed / plan < month / 12, cross-multiplied so that a project exactly on
    # schedule is not flagged by a rounding error; a zero plan never lags.
    return ((completed * 12.0 < plan * float(month)) & (plan > 0)).astype(bool)


def _completion(completed: pd.Series, plan: pd.Series) -> pd.Series:
    return (completed / plan.where(plan > 0)).astype("float64")


def _py(value: Any) -> Any:
    """Return a numpy scalar as the Python scalar (for readable messages)."""
    return value.item() if isinstance(value, np.generic) else value


def _prepare(projects: pd.DataFrame) -> pd.DataFrame:
    """Check the columns the bulletin reads; return a plain, validated copy."""
    if not isinstance(projects, pd.DataFrame):
        raise DataError(
            f"projects must be a DataFrame of the 'projects' layer, not {type(projects).__name__}"
        )
    missing = [c for c in _REQUIRED if c not in projects.columns]
    if missing:
        raise DataError(
            f"projects lacks column(s) {missing}; the bulletin needs {', '.join(_REQUIRED)} "
            "(pass the 'projects' layer)"
        )
    df = pd.DataFrame(projects.drop(columns="geometry", errors="ignore")).copy()
    df = df.reset_index(drop=True)
    for col in ("status", "town", *_STAFF):
        if col not in df.columns:
            df[col] = pd.Series(np.nan, index=df.index, dtype="str")
    dup = df["project_id"][df["project_id"].duplicated()]
    if len(dup):
        raise DataError(
            f"projects: duplicate project_id {sorted(set(map(str, dup)))[:5]}; "
            "every project needs its own id"
        )
    bad = df["level"].isna() | ~df["level"].isin(LEVELS)
    if bad.any():
        i = df.index[bad][0]
        raise DataError(
            f"projects: project_id={df.at[i, 'project_id']!r} has level={df.at[i, 'level']!r}; "
            f"allowed: {', '.join(LEVELS)}"
        )
    bad = df["status"].notna() & ~df["status"].isin(PROJECT_STATUSES)
    if bad.any():
        i = df.index[bad][0]
        raise DataError(
            f"projects: project_id={df.at[i, 'project_id']!r} has status={df.at[i, 'status']!r}; "
            f"allowed: {', '.join(PROJECT_STATUSES)}"
        )
    for col in ("annual_plan_yuan", "completed_yuan"):
        values = pd.to_numeric(df[col], errors="coerce").astype("float64")
        bad = values.isna() | ~np.isfinite(values.to_numpy()) | (values < 0)
        if bad.any():
            i = df.index[bad][0]
            raise DataError(
                f"projects: project_id={df.at[i, 'project_id']!r} has "
                f"{col}={_py(df.at[i, col])!r}; give a number of yuan >= 0 "
                "(0 when nothing is planned or done yet)"
            )
        df[col] = values
    return df


@dataclass(frozen=True)
class Bulletin:
    """The key-project investment bulletin of one month (R17).

    Attributes
    ----------
    as_of : datetime.date
        Bulletin date.
    month : int
        Month of ``as_of`` (the numerator of the time progress).
    time_progress : float
        ``month / 12``.
    projects : pandas.DataFrame
        One row per project (columns :data:`BULLETIN_COLUMNS`), in R18 level order
        then by ``project_id``: annual plan and completed investment (yuan),
        ``completion`` (completed ÷ plan; NaN for a zero plan), ``time_progress``,
        ``lag`` (time progress − completion, as a fraction; positive = behind),
        ``lagging`` and the three service staff.
    levels : pandas.DataFrame
        One row per level that has projects (columns :data:`LEVEL_TOTAL_COLUMNS`),
        in R18 order, with the sums of plan and completion of its projects.
    n_projects, n_lagging : int
        Number of projects, and of lagging projects.
    annual_plan_yuan, completed_yuan : float
        Portfolio totals.
    completion : float
        Portfolio completion (NaN when nothing is planned).
    lag : float
        Portfolio lag: time progress − completion.
    lagging : bool
        Whether the portfolio lags (completion < time progress).
    """

    as_of: date
    month: int
    time_progress: float
    projects: pd.DataFrame
    levels: pd.DataFrame
    n_projects: int
    n_lagging: int
    annual_plan_yuan: float
    completed_yuan: float
    completion: float
    lag: float
    lagging: bool

    def _level_rows(self) -> list[dict[str, Any]]:
        return [{str(k): v for k, v in row.items()} for row in self.levels.to_dict("records")]

    def __str__(self) -> str:
        def pct(v: float) -> str:
            return "—" if np.isnan(v) else f"{100 * v:.1f} %"

        def yi(v: float) -> str:
            return f"{v / 1e8:,.2f} 亿元 ({v:,.0f} yuan)"

        verdict = (
            f"滞后 LAGGING by {100 * self.lag:.1f} pp" if self.lagging else "未滞后 on schedule"
        )
        lines = [
            "重点项目投资通报 Key-project investment bulletin — "
            f"截至 as of {self.as_of.isoformat()}",
            f"时间进度 time progress: {self.month}/12 = {pct(self.time_progress)}",
            f"全部 {self.n_projects} 个项目 all {self.n_projects} projects: "
            f"年度计划 annual plan {yi(self.annual_plan_yuan)}, "
            f"已完成 completed {yi(self.completed_yuan)}",
            f"完成率 completion {pct(self.completion)} — {verdict}; "
            f"滞后项目 lagging projects {self.n_lagging} / {self.n_projects}",
            "分级 by level:",
        ]
        for r in self._level_rows():
            zh, en = LEVEL_NAMES[str(r["level"])]
            flag = "滞后 lagging" if r["lagging"] else "—"
            lines.append(
                f"  {zh} {en:<10} {int(r['projects']):>3} 个 projects  "
                f"{float(r['annual_plan_yuan']) / 1e4:>12,.0f} 万元 plan  "
                f"{float(r['completed_yuan']) / 1e4:>11,.0f} 万元 done  "
                f"{pct(float(r['completion'])):>7}  {flag}"
            )
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        esc = html.escape
        colour = "#c0392b" if self.lagging else "#1e8449"
        head = (
            "<b>重点项目投资通报 Key-project investment bulletin</b> — "
            f"{esc(self.as_of.isoformat())}"
            f"<br>时间进度 time progress {self.month}/12 = {100 * self.time_progress:.1f} %; "
            f"完成率 completion <b style='color:{colour}'>"
            + ("—" if np.isnan(self.completion) else f"{100 * self.completion:.1f} %")
            + "</b>"
            + (" — 滞后 lagging" if self.lagging else "")
            + f"; 滞后项目 lagging projects {self.n_lagging}/{self.n_projects}"
        )
        rows = []
        for r in self._level_rows():
            zh, en = LEVEL_NAMES[str(r["level"])]
            style = " style='background:#f8d7da'" if r["lagging"] else ""
            comp = float(r["completion"])
            rows.append(
                f"<tr{style}><td>{esc(zh)} {esc(en)}</td><td style='text-align:right'>"
                f"{int(r['projects'])}</td><td style='text-align:right'>"
                f"{float(r['annual_plan_yuan']):,.0f}</td><td style='text-align:right'>"
                f"{float(r['completed_yuan']):,.0f}</td><td style='text-align:right'>"
                + ("—" if np.isnan(comp) else f"{100 * comp:.1f} %")
                + "</td></tr>"
            )
        table = (
            "<table><tr><th>级别 level</th><th>项目 projects</th><th>年度计划 plan (yuan)</th>"
            "<th>已完成 completed (yuan)</th><th>完成率 completion</th></tr>"
            + "".join(rows)
            + "</table>"
        )
        return head + table


def investment_bulletin(projects: pd.DataFrame, *, as_of: date) -> Bulletin:
    """Build the monthly key-project investment bulletin (R17).

    Parameters
    ----------
    projects : pandas.DataFrame
        The ``projects`` layer (a GeoDataFrame is fine; the geometry is dropped).
        Needs ``project_id``, ``name``, ``level``, ``annual_plan_yuan`` and
        ``completed_yuan``; ``status``, ``town`` and the three service staff
        (``county_leader``, ``town_cadre``, ``dept_cadre``) are shown when present.
    as_of : datetime.date
        Bulletin date; the time progress is its month ÷ 12 (see the module notes).

    Returns
    -------
    Bulletin
        Per project, per level and portfolio figures; ``str()`` gives a short
        Chinese/English summary.

    Raises
    ------
    DataError
        Missing columns, unknown levels or statuses, duplicate ids, missing or
        negative amounts.
    ParameterError
        ``as_of`` is not a date.

    Examples
    --------
    >>> p = pd.DataFrame({"project_id": ["K1", "K2"], "name": ["甲", "乙"],
    ...     "level": ["county", "county"], "annual_plan_yuan": [1200.0, 800.0],
    ...     "completed_yuan": [400.0, 100.0]})
    >>> b = investment_bulletin(p, as_of=date(2014, 4, 30))
    >>> b.projects["lagging"].tolist(), round(b.completion, 2), b.lagging
    ([False, True], 0.25, True)
    """
    day = _as_date(as_of)
    month = day.month
    tp = month / 12
    df = _prepare(projects)

    plan, done = df["annual_plan_yuan"], df["completed_yuan"]
    out = pd.DataFrame(
        {
            "project_id": df["project_id"].astype("str"),
            "name": df["name"].astype("str"),
            "level": df["level"].astype("str"),
            "status": df["status"].astype("str").where(df["status"].notna()),
            "town": df["town"].astype("str").where(df["town"].notna()),
            "annual_plan_yuan": plan,
            "completed_yuan": done,
        }
    )
    out["completion"] = _completion(done, plan)
    out["time_progress"] = tp
    out["lag"] = tp - out["completion"]
    out["lagging"] = _lagging(done, plan, month)
    for col in _STAFF:
        out[col] = df[col].astype("str").where(df[col].notna())
    order = out["level"].map({lv: i for i, lv in enumerate(LEVELS)})
    out = (
        out.assign(_order=order)
        .sort_values(["_order", "project_id"], kind="stable")
        .drop(columns="_order")
        .reset_index(drop=True)
    )

    grouped = out.groupby("level", sort=False)
    sums = grouped[["annual_plan_yuan", "completed_yuan"]].sum()
    levels = pd.DataFrame({"level": [lv for lv in LEVELS if lv in sums.index]})
    levels["projects"] = levels["level"].map(grouped.size()).astype("int64")
    levels["lagging_projects"] = levels["level"].map(grouped["lagging"].sum()).astype("int64")
    levels["annual_plan_yuan"] = levels["level"].map(sums["annual_plan_yuan"]).astype("float64")
    levels["completed_yuan"] = levels["level"].map(sums["completed_yuan"]).astype("float64")
    levels["completion"] = _completion(levels["completed_yuan"], levels["annual_plan_yuan"])
    levels["time_progress"] = tp
    levels["lag"] = tp - levels["completion"]
    levels["lagging"] = _lagging(levels["completed_yuan"], levels["annual_plan_yuan"], month)
    levels["level"] = levels["level"].astype("str")

    total_plan = float(out["annual_plan_yuan"].sum())
    total_done = float(out["completed_yuan"].sum())
    completion = total_done / total_plan if total_plan > 0 else float("nan")
    return Bulletin(
        as_of=day,
        month=month,
        time_progress=tp,
        projects=out[list(BULLETIN_COLUMNS)],
        levels=levels[list(LEVEL_TOTAL_COLUMNS)],
        n_projects=len(out),
        n_lagging=int(out["lagging"].sum()),
        annual_plan_yuan=total_plan,
        completed_yuan=total_done,
        completion=completion,
        lag=tp - completion,
        lagging=bool(total_plan > 0 and total_done * 12.0 < total_plan * month),
    )
