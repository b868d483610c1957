"""The three-level service staff (三级服务员) and their field visits (issue 14).

The county names for every key project a county leader (县领导), a town cadre
(镇干部) and a department cadre (部门干部). They are people in the ``staff``
table; the projects' columns ``county_leader``, ``town_cadre`` and
``dept_cadre`` hold their ``staff_id`` (workspaces made before schema
version 2 held the names there; ``landquota upgrade`` turned them into staff
rows). Code that shows those columns calls :func:`with_staff_names` first, which
also leaves a name it cannot resolve as it is, so frames built by hand with
names still display.

The half-month visit rule
-------------------------
County leaders visit their projects at least every half month (每半月到项目现场
一次). Here "half a month" is exactly :data:`HALF_MONTH_DAYS` = 15 days, a
rolling window, not the calendar halves 1–15 / 16–end (which would let 29
days pass between a visit on the 1st and one on the 30th). A leader is
**overdue** for a project on day D when more than 15 days have passed since
the last visit: ``D − last_visit > 15 days``. A visit on 2014-04-01 is in time
through 2014-04-16 and overdue from 2014-04-17 on (so on 2014-04-15: not
overdue; on 2014-04-20: overdue by 4 days). A project its leader has never
visited is overdue from the day the leader was assigned; as that day is not
recorded, it is listed as overdue with no last visit.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from landquota.errors import ParameterError
from landquota.labels import STAFF_DUTY_LABELS, STAFF_ROLE_LABELS
from landquota.store.schema import STAFF_ROLES

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "DUTY_LABELS",
    "HALF_MONTH_DAYS",
    "ROLE_LABELS",
    "adopt_staff_names",
    "overdue_visits",
    "staff_review",
    "with_staff_names",
]

#: Half a month, in days, for the visit rule (see the module notes).
HALF_MONTH_DAYS = 15

# one table per code list: landquota.labels
ROLE_LABELS: Mapping[str, tuple[str, str]] = {
    k: (v[0], v[1]) for k, v in STAFF_ROLE_LABELS.items()
}
DUTY_LABELS: Mapping[str, tuple[str, str]] = {
    k: (v[0], v[1]) for k, v in STAFF_DUTY_LABELS.items()
}


def _day(value: Any, what: str) -> date:
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what}={value!r} is not a date; give YYYY-MM-DD") from exc
    if value is None or isinstance(value, bool) or pd.isna(ts):
        raise ParameterError(f"{what}={value!r} is not a date; give YYYY-MM-DD")
    return date(ts.year, ts.month, ts.day)


def with_staff_names(projects: pd.DataFrame, staff: pd.DataFrame | None) -> pd.DataFrame:
    """Return *projects* with the three staff columns showing names instead of staff ids.

    Values that are not a ``staff_id`` (names in a frame made by hand, or in a
    workspace not yet upgraded) are kept as they are.
    """
    out = projects.copy()
    if staff is None or not len(staff):
        return out
    names = dict(zip(staff["staff_id"].astype(str), staff["name"].astype(str), strict=True))
    for col in STAFF_ROLES:
        if col in out.columns:
            s = out[col]
            out[col] = s.map(lambda v: names.get(str(v), v) if pd.notna(v) else v).astype("str")
            out[col] = out[col].where(s.notna())
    return out


def overdue_visits(projects: pd.DataFrame, visits: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """Each (county leader, project) pair with its last visit and whether it is overdue.

    Completed projects are left out: the half-month rule serves projects under
    way. Visits after *as_of* are ignored (the review is "as of" that day).

    Returns
    -------
    pandas.DataFrame
        ``staff_id``, ``project_id``, ``last_visit`` (NaT if never),
        ``days_since`` (NaN if never), ``due`` (last visit + 15 days),
        ``overdue`` (bool), ``days_overdue``.
    """
    day = pd.Timestamp(_day(as_of, "as_of"))
    p = projects[projects["county_leader"].notna()]
    if "status" in p.columns:
        p = p[p["status"] != "completed"]
    v = visits[pd.to_datetime(visits["visit_date"]) <= day]
    last = v.groupby(["staff_id", "project_id"])["visit_date"].max()
    out = pd.DataFrame(
        {
            "staff_id": p["county_leader"].astype("str").to_numpy(),
            "project_id": p["project_id"].astype("str").to_numpy(),
        }
    )
    keys = list(zip(out["staff_id"], out["project_id"], strict=True))
    out["last_visit"] = pd.to_datetime(pd.Series([last.get(k, pd.NaT) for k in keys]))
    out["days_since"] = (day - out["last_visit"]).dt.days.astype("float64")
    out["due"] = out["last_visit"] + timedelta(days=HALF_MONTH_DAYS)
    # the half-month rule: more than 15 days since the last visit (never visited: overdue)
    out["overdue"] = (out["days_since"] > HALF_MONTH_DAYS) | out["last_visit"].isna()
    out["days_overdue"] = (out["days_since"] - HALF_MONTH_DAYS).where(out["overdue"])
    return out.sort_values(["staff_id", "project_id"], kind="stable").reset_index(drop=True)


def staff_review(
    projects: pd.DataFrame,
    staff: pd.DataFrame,
    visits: pd.DataFrame,
    *,
    as_of: date,
    lagging: pd.Series | None = None,
    problems: pd.Series | None = None,
    decisions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per person: their projects, the lagging ones, open problems and overdue visits.

    Parameters
    ----------
    projects, staff, visits : pandas.DataFrame
        The layers of those names.
    as_of : date
        Review date.
    lagging : pandas.Series of bool, optional
        Indexed by project_id: lagging in the month of *as_of* (R17), e.g.
        from :func:`landquota.rules.progress.monthly_bulletin`.
    problems : pandas.Series of str, optional
        Indexed by project_id: the problems (问题) of the latest monthly return.
    decisions : pandas.DataFrame, optional
        Joint-meeting decisions overdue on *as_of*
        (:func:`landquota.rules.pipeline.overdue_decisions`): each is listed for
        every staff member serving its project.

    Returns
    -------
    pandas.DataFrame
        One row per person with at least one project: ``staff_id``, ``name``,
        ``role``, ``duties``, ``projects`` (comma-separated ids), ``n_projects``,
        ``lagging`` (ids), ``open_problems`` (visits whose problems are not
        solved, and the latest returns' problems, as text), ``overdue``
        (project ids whose visit is overdue, county leaders only),
        ``n_overdue``, ``overdue_decisions`` (``decision_id (project stage,
        deadline)``, "; "-separated) and ``n_overdue_decisions``.
    """
    day = _day(as_of, "as_of")
    over = overdue_visits(projects, visits, as_of=day)
    v = visits[pd.to_datetime(visits["visit_date"]) <= pd.Timestamp(day)]
    unsolved = v[~v["solved"].astype(bool) & v["problems"].notna()]
    rows: list[dict[str, Any]] = []
    for _, person in staff.sort_values("staff_id", kind="stable").iterrows():
        sid = str(person["staff_id"])
        mine = projects[
            np.logical_or.reduce([projects[c].astype("str") == sid for c in STAFF_ROLES])
        ]["project_id"].astype("str")
        ids = sorted(mine)
        if not ids:
            continue
        lag = [p for p in ids if lagging is not None and bool(lagging.get(p, False))]
        mine_v = unsolved[unsolved["project_id"].isin(ids)]
        open_p = [
            f"{pid} {pd.Timestamp(when).date().isoformat()}: {what}"
            for pid, when, what in zip(
                mine_v["project_id"], mine_v["visit_date"], mine_v["problems"], strict=True
            )
        ]
        if problems is not None:
            open_p += [
                f"{p}: {problems[p]}" for p in ids if p in problems.index and pd.notna(problems[p])
            ]
        od = over[(over["staff_id"] == sid) & over["overdue"]]["project_id"].tolist()
        dec = (
            decisions[decisions["project_id"].astype("str").isin(ids)]
            if decisions is not None
            else pd.DataFrame(columns=["decision_id", "project_id", "stage", "deadline"])
        )
        late = [
            f"{d} ({p} {s}, {pd.Timestamp(t).date().isoformat()})"
            for d, p, s, t in zip(
                dec["decision_id"], dec["project_id"], dec["stage"], dec["deadline"], strict=True
            )
        ]
        rows.append(
            {
                "staff_id": sid,
                "name": person["name"],
                "role": person["role"],
                "duties": person["duties"],
                "projects": ",".join(ids),
                "n_projects": len(ids),
                "lagging": ",".join(lag),
                "n_lagging": len(lag),
                "open_problems": "; ".join(open_p),
                "overdue": ",".join(od),
                "n_overdue": len(od),
                "overdue_decisions": "; ".join(late),
                "n_overdue_decisions": len(late),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "staff_id",
            "name",
            "role",
            "duties",
            "projects",
            "n_projects",
            "lagging",
            "n_lagging",
            "open_problems",
            "overdue",
            "n_overdue",
            "overdue_decisions",
            "n_overdue_decisions",
        ],
    )


def adopt_staff_names(ws: Workspace) -> pd.DataFrame:
    """Turn names typed into the projects' staff columns into ``staff`` rows and ids.

    For projects imported with names in ``county_leader``, ``town_cadre`` or
    ``dept_cadre`` (as older files have them): a name already in ``staff``
    with that role takes its id; every other name becomes a new person
    (``S`` + the next free number, in role then name order, as the schema-3
    migration numbers them). Running it again changes nothing.

    Returns
    -------
    pandas.DataFrame
        The ``staff`` rows added.
    """
    from landquota.store.migrations import staff_from_names

    projects = ws.read_layer("projects", columns=list(STAFF_ROLES))
    staff = ws.read_layer("staff")
    ids = set(staff["staff_id"].astype(str))
    known = {
        (str(n), str(r)): str(i)
        for n, r, i in zip(staff["name"], staff["role"], staff["staff_id"], strict=True)
    }
    names = projects[list(STAFF_ROLES)].where(~projects[list(STAFF_ROLES)].isin(ids))
    fresh, _ = staff_from_names(names)
    numbers = [int(i[1:]) for i in ids if i[:1] == "S" and i[1:].isdigit()]
    start = max(numbers, default=0)
    keep = [
        (name, role)
        for name, role in zip(fresh["name"], fresh["role"], strict=True)
        if (name, role) not in known
    ]
    new_ids = {nr: f"S{start + k + 1:03d}" for k, nr in enumerate(keep)}
    mask = [(n, r) in new_ids for n, r in zip(fresh["name"], fresh["role"], strict=True)]
    added = fresh.loc[np.asarray(mask, dtype=bool)]
    added = added.assign(
        staff_id=[new_ids[(n, r)] for n, r in zip(added["name"], added["role"], strict=True)]
    )
    if len(added):
        ws.write_layer("staff", added, mode="append")
    for role in STAFF_ROLES:
        recode = {}
        for name in names[role].dropna().unique():
            first_role = fresh.loc[fresh["name"] == name, "role"].iloc[0]
            key = (str(name), str(first_role))
            recode[str(name)] = known.get(key) or new_ids[key]
        if recode:
            ws._recode("projects", role, recode)
    return added.reset_index(drop=True)
