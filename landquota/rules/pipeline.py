"""The key-project land pipeline: approval stages and joint approval meetings (issue 14).

A key project's land goes through five stages, in this order (:data:`STAGES`):

===============  ===================  ==============================================
code             Chinese              what ends it
===============  ===================  ==============================================
``pre_review``   用地预审              the pre-review opinion (预审意见)
``conversion``   农用地转用及征收报批   the conversion and acquisition approval, by the
                                      province or the State Council as R14 gives
``acquisition``  征地拆迁              land acquired and households resettled
``supply``       供地                  allocation (划拨) or sale (出让) of the land
``construction`` 开工                  (its start is the start of construction)
===============  ===================  ==============================================

Each ``project_stages`` row holds the date a stage started and the date it
finished; the *current* stage of a project and the days spent in it are always
computed from those dates (:func:`current_stages`), never stored, so they cannot
go stale.

Rules enforced here (:func:`check_stages`): a stage cannot finish before it
starts, and construction cannot start before the land is supplied (a supplied
parcel is the legal precondition of 开工; the error names the project and both
dates).

Allocation feeds the pipeline: the quota a committed run gives a funded project
is the input of that project's conversion approval (:func:`conversion_inputs`),
at the approval level R14 gives.

Joint approval meetings (联审会议) decide matters of several departments at
once; a stage decided at a meeting is closed on the meeting's date with the
decision as its source (:func:`record_meeting`). :func:`stage_durations`
compares the days each stage took before and after the first meeting against
the plan's target of cutting approval time by one third. A decision's
deadline (办结时限) is followed up: :func:`overdue_decisions` lists the
decisions whose deadline has passed with their stage still not closed
(``landquota staff --as-of``, the monthly bulletin's overdue lists).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.labels import STAGE_LABELS as _STAGE_LABELS
from landquota.store.pipeline_check import check_stages
from landquota.store.schema import APPROVAL_LEVELS, STAGES

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = [
    "APPROVAL_STAGES",
    "DURATION_COLUMNS",
    "JOINT_MEETING",
    "STAGES",
    "STAGE_LABELS",
    "Decision",
    "check_stages",
    "conversion_inputs",
    "current_stages",
    "merge_conversion_inputs",
    "overdue_decisions",
    "record_meeting",
    "stage_durations",
    "stage_funnel",
]

#: Chinese and English names of the stages, in pipeline order.
STAGE_LABELS: Mapping[str, tuple[str, str]] = {
    "none": ("未报批", "not started"),
    **{k: (v[0], v[1]) for k, v in _STAGE_LABELS.items()},  # one table: landquota.labels
}

#: The approval stages (all but the start of construction, whose "finish" is completion).
APPROVAL_STAGES: tuple[str, ...] = STAGES[:-1]

#: ``decided_by`` of a stage closed by a joint approval meeting.
JOINT_MEETING = "县重点项目联审会议 joint approval meeting"

#: The plan's target: approval time cut by one third (审批时间原则上比原来减少三分之一).
TARGET_RATIO = 2.0 / 3.0

#: Columns of :func:`stage_durations`.
DURATION_COLUMNS: tuple[str, ...] = (
    "stage",
    "n_before",
    "median_before",
    "p90_before",
    "n_after",
    "median_after",
    "p90_after",
    "target_days",
    "cut",
    "target_met",
)

#: Columns of :func:`overdue_decisions`.
OVERDUE_DECISION_COLUMNS = (
    "decision_id",
    "meeting_id",
    "meeting_date",
    "project_id",
    "stage",
    "matter",
    "deadline",
    "days_overdue",
)


def overdue_decisions(stages: pd.DataFrame, meetings: pd.DataFrame, *, as_of: Any) -> pd.DataFrame:
    """Joint-meeting decisions past their deadline whose stage is still not closed.

    A decision (``meetings`` row) with a ``stage`` and a ``deadline`` is overdue
    on day D when the deadline has passed (D > deadline: on the deadline day
    itself it is still in time) and that project's stage has not finished on or
    before D — it has no ``project_stages`` row, no finish date, or one after D.
    A stage closed late, before D, is no longer outstanding and is not listed.
    Decisions without a stage or without a deadline set no term to check.

    Returns
    -------
    pandas.DataFrame
        :data:`OVERDUE_DECISION_COLUMNS`; ``days_overdue`` = D − deadline (≥ 1);
        sorted by days overdue (most first), then decision id.
    """
    day = pd.Timestamp(_day(as_of, "as_of"))
    m = pd.DataFrame(meetings)
    if not len(m):
        return pd.DataFrame({c: pd.Series(dtype="object") for c in OVERDUE_DECISION_COLUMNS})
    m = m[m["stage"].notna() & m["deadline"].notna()].copy()
    deadline = pd.to_datetime(m["deadline"])
    # a decision taken after the review day is not known yet on that day
    m = m[(deadline < day) & (pd.to_datetime(m["meeting_date"]) <= day)].copy()
    st = pd.DataFrame(stages)
    if len(st):
        fin = pd.to_datetime(st["finished"])
        done = st[fin.notna() & (fin <= day)]
        closed = set(zip(done["project_id"], done["stage"], strict=True))
    else:
        closed = set()
    keep = np.array(
        [(p, s) not in closed for p, s in zip(m["project_id"], m["stage"], strict=True)], dtype=bool
    )
    m = m[keep].copy()
    m["days_overdue"] = (day - pd.to_datetime(m["deadline"])).dt.days.astype("int64")
    m = m.sort_values(["days_overdue", "decision_id"], ascending=[False, True], kind="stable")
    return m[list(OVERDUE_DECISION_COLUMNS)].reset_index(drop=True)


_ORDER = {s: i for i, s in enumerate(STAGES)}


def _day(value: Any, what: str) -> date:
    if isinstance(value, bool) or value is None:
        raise ParameterError(f"{what}={value!r} is not a date; give YYYY-MM-DD")
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(f"{what}={value!r} is not a date; give YYYY-MM-DD") from exc
    if pd.isna(ts):
        raise ParameterError(f"{what}={value!r} is not a date; give YYYY-MM-DD")
    return date(ts.year, ts.month, ts.day)


def _iso(v: Any) -> str:
    return "—" if v is None or pd.isna(v) else pd.Timestamp(v).date().isoformat()


def current_stages(
    stages: pd.DataFrame, *, as_of: date, projects: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Each project's current stage on *as_of* and the days spent in it (computed, never stored).

    The current stage is the furthest stage (in :data:`STAGES` order) that had
    started by *as_of*. It is ``open`` while it has not finished by then;
    ``days_in_stage`` counts from its start to *as_of* (open) or to its finish.
    Projects of *projects* without any stage started get ``none``.

    Returns
    -------
    pandas.DataFrame
        ``project_id``, ``current_stage``, ``stage_started``, ``stage_finished``
        (NaT while open), ``open``, ``days_in_stage``, ``stages_done`` (how many
        stages had finished by *as_of*).
    """
    day = pd.Timestamp(_day(as_of, "as_of"))
    df = pd.DataFrame(stages).copy()
    df["started"] = pd.to_datetime(df["started"])
    df["finished"] = pd.to_datetime(df["finished"])
    df = df[df["started"] <= day].copy()
    df.loc[df["finished"] > day, "finished"] = pd.NaT  # not yet finished on as_of
    df["_o"] = df["stage"].map(_ORDER)
    df = df.sort_values(["project_id", "_o"], kind="stable")
    done = df.groupby("project_id")["finished"].count()
    last = df.groupby("project_id", sort=True).tail(1).set_index("project_id")
    ids = (
        sorted(set(map(str, projects["project_id"])) | set(last.index))
        if projects is not None
        else list(last.index)
    )
    out = pd.DataFrame({"project_id": pd.Series(ids, dtype="str")})
    stage_of = {str(k): str(v) for k, v in last["stage"].items()}
    out["current_stage"] = [stage_of.get(p, "none") for p in out["project_id"]]
    out["current_stage"] = out["current_stage"].astype("str")
    for col, src in (("stage_started", "started"), ("stage_finished", "finished")):
        when = {str(k): v for k, v in last[src].items()}
        out[col] = pd.to_datetime(
            pd.Series([when.get(p, pd.NaT) for p in out["project_id"]], dtype="object")
        ).astype("datetime64[ns]")
    has = out["current_stage"] != "none"
    out["open"] = has & out["stage_finished"].isna()
    end = out["stage_finished"].fillna(day)
    out["days_in_stage"] = ((end - out["stage_started"]).dt.days).astype("Int64")
    out["stages_done"] = out["project_id"].map(done).fillna(0).astype("int64")
    return out


def stage_funnel(current: pd.DataFrame) -> pd.DataFrame:
    """How many projects stand at each stage (the funnel), ``none`` first, in pipeline order."""
    order = ["none", *STAGES]
    counts = current["current_stage"].value_counts()
    return pd.DataFrame(
        {
            "stage": order,
            "stage_zh": [STAGE_LABELS[s][0] for s in order],
            "projects": [int(counts.get(s, 0)) for s in order],
            "open": [int(((current["current_stage"] == s) & current["open"]).sum()) for s in order],
        }
    )


def conversion_inputs(
    allocations: pd.DataFrame, *, started: date, cadres: Mapping[str, str] | None = None
) -> pd.DataFrame:
    """Open conversion stages for the funded projects of a run (allocation feeds the pipeline).

    A funded or partly funded project's quota (plan quota plus linkage surplus,
    R5) is the input of its conversion and acquisition approval, filed at the
    level R14 gave it. Stock-matched projects need no conversion: their land is
    already approved (批而未供), so they go straight to supply.

    Parameters
    ----------
    allocations : pandas.DataFrame
        ``allocations`` rows of one run.
    started : date
        The date the approvals are filed (usually the day the run was committed).
    cadres : mapping, optional
        ``{project_id: staff_id}`` of the responsible department cadre.

    Returns
    -------
    pandas.DataFrame
        ``project_stages`` rows (open: ``finished`` empty).
    """
    day = _day(started, "started")
    a = pd.DataFrame(allocations)
    a = a[a["outcome"].isin(("funded", "partial"))].sort_values("project_id", kind="stable")
    bad = a["approval_level"].notna() & ~a["approval_level"].isin(APPROVAL_LEVELS)
    if bad.any():  # pragma: no cover - the schema's code check comes first
        raise DataError(f"allocations: unknown approval level {a['approval_level'][bad].iloc[0]!r}")
    quota = a["new_quota_m2"].fillna(0.0) + a["linkage_quota_m2"].fillna(0.0)
    cad = cadres or {}
    return pd.DataFrame(
        {
            "stage_id": [f"{p}:conversion" for p in a["project_id"]],
            "project_id": a["project_id"].astype("str").tolist(),
            "stage": "conversion",
            "started": pd.Timestamp(day),
            "finished": pd.NaT,
            "decided_by": [
                "国务院 State Council" if lv == "state_council" else "省人民政府 province"
                for lv in a["approval_level"]
            ],  # R14: who decides the conversion
            "doc_no": None,
            "cadre": [cad.get(str(p)) for p in a["project_id"]],
            "approval_level": a["approval_level"].tolist(),
            "quota_m2": quota.astype("float64").tolist(),
            "run_id": a["run_id"].astype("str").tolist(),
            "households": pd.array([pd.NA] * len(a), dtype="Int64"),
            "settled_m2": np.nan,
            "supply_method": None,
            "decision_id": None,
        }
    )


def merge_conversion_inputs(
    stages: pd.DataFrame, inputs: pd.DataFrame
) -> tuple[pd.DataFrame, int, int]:
    """Feed a run's :func:`conversion_inputs` into the ``project_stages`` rows.

    A project without a conversion stage gets the new (open) one; a project
    whose conversion is open and has no quota yet takes the run's quota, level
    and run id; a conversion already finished, or already fed by a run, is left
    as it is (its approval was decided on other inputs).

    Returns
    -------
    (stages, opened, fed)
        All rows, and how many stages were opened and fed.
    """
    out = pd.DataFrame(stages).copy()
    conv = out["stage"] == "conversion"
    have = dict(zip(out.loc[conv, "project_id"], out.index[conv], strict=True))
    add, fed = [], 0
    for row in inputs.to_dict("records"):
        i = have.get(row["project_id"])
        if i is None:
            add.append(row)
            continue
        if pd.isna(out["finished"][i]) and pd.isna(out["run_id"][i]):
            for col in ("quota_m2", "approval_level", "run_id", "decided_by"):
                out.at[i, col] = row[col]
            fed += 1
    if add:
        out = pd.concat([out, pd.DataFrame(add)], ignore_index=True)
    check_stages(out)
    return out, len(add), fed


@dataclass(frozen=True)
class Decision:
    """One matter decided at a joint approval meeting."""

    project_id: str
    matter: str
    stage: str | None = None
    deadline: date | None = None


def record_meeting(
    ws: Workspace,
    *,
    meeting_id: str,
    meeting_date: date,
    departments: Sequence[str],
    decisions: Iterable[Decision],
) -> pd.DataFrame:
    """Record a joint approval meeting and close the stages it decided, in one transaction.

    A decision with a ``stage`` closes that project's open stage on the
    meeting's date, with the decision as its source (``decision_id``) and the
    meeting as the deciding body unless one is already recorded.

    Returns
    -------
    pandas.DataFrame
        The ``meetings`` rows written.

    Raises
    ------
    DataError
        The meeting id is taken; a decision names an unknown project, an
        unknown stage, a stage the project has not started, one already closed,
        or one that started after the meeting; a deadline before the meeting.
    """
    day = _day(meeting_date, "meeting_date")
    deps = [d.strip() for d in departments if d and d.strip()]
    if not deps:
        raise ParameterError("departments: name at least one department present at the meeting")
    items = list(decisions)
    if not items:
        raise ParameterError(
            "decisions: a meeting record needs at least one decision (project and matter)"
        )
    meetings = ws.read_layer("meetings")
    if (meetings["meeting_id"] == meeting_id).any():
        raise DataError(f"meeting {meeting_id!r} is already recorded; give the meeting a new id")
    projects = set(ws.read_layer("projects", columns=["project_id"])["project_id"])
    stages = ws.read_layer("project_stages")
    rows = []
    for n, d in enumerate(items, start=1):
        did = f"{meeting_id}:{n}"
        if d.project_id not in projects:
            raise DataError(f"decision {n}: project {d.project_id!r} is not in the workspace")
        if d.stage is not None and d.stage not in STAGES:
            raise DataError(f"decision {n}: stage {d.stage!r}; allowed: {', '.join(STAGES)}")
        deadline = None if d.deadline is None else _day(d.deadline, f"decision {n} deadline")
        if deadline is not None and deadline < day:
            raise DataError(
                f"decision {n} ({d.project_id}): deadline {deadline} is before the meeting "
                f"({day}); give a date on or after it"
            )
        if d.stage is not None:
            hit = (stages["project_id"] == d.project_id) & (stages["stage"] == d.stage)
            if not hit.any():
                raise DataError(
                    f"decision {n}: project {d.project_id!r} has no {d.stage!r} stage "
                    f"({STAGE_LABELS[d.stage][0]}) to close; record when it started first"
                )
            i = stages.index[hit][0]
            was_finished = pd.to_datetime(stages["finished"])[i]
            was_started = pd.to_datetime(stages["started"])[i]
            if pd.notna(was_finished):
                raise DataError(
                    f"decision {n}: stage {d.stage!r} of project {d.project_id!r} already "
                    f"finished on {_iso(was_finished)}"
                )
            if was_started > pd.Timestamp(day):
                raise DataError(
                    f"decision {n}: stage {d.stage!r} of project {d.project_id!r} started on "
                    f"{_iso(was_started)}, after the meeting ({day})"
                )
            stages.at[i, "finished"] = pd.Timestamp(day)
            stages.at[i, "decision_id"] = did
            if pd.isna(stages["decided_by"][i]):
                stages.at[i, "decided_by"] = JOINT_MEETING
        rows.append(
            {
                "decision_id": did,
                "meeting_id": meeting_id,
                "meeting_date": pd.Timestamp(day),
                "departments": ",".join(deps),
                "project_id": d.project_id,
                "stage": d.stage,
                "matter": d.matter,
                "deadline": pd.NaT if deadline is None else pd.Timestamp(deadline),
            }
        )
    new = pd.DataFrame(rows)
    check_stages(stages)
    both = pd.concat([meetings, new], ignore_index=True) if len(meetings) else new
    # one transaction: the decisions and the stages they close land together or not at all
    ws.write_layers({"meetings": both, "project_stages": stages}, mode="replace")
    return new


def stage_durations(stages: pd.DataFrame, meetings: pd.DataFrame) -> pd.DataFrame:
    """Days per stage before and after the joint meetings began, against the one-third target.

    *Before* counts the stages that finished before the first meeting's date;
    *after* those that started on or after it. A stage that was open on the day
    of the first meeting straddles the change and is counted in neither, so
    that neither side is credited with the other's days. Durations are
    ``finished − started`` in days; open stages are not counted.

    The 90th percentile is numpy's default (linear interpolation between the
    closest ranks). The target is two thirds of the median before
    (``target_days``); ``cut`` is ``1 − median_after ÷ median_before``;
    ``target_met`` holds when ``median_after ≤ target_days``.

    Returns
    -------
    pandas.DataFrame
        One row per approval stage (:data:`APPROVAL_STAGES`; construction is
        not an approval) with the columns :data:`DURATION_COLUMNS`; NaN where a
        side has no finished stage.
    """
    if not len(meetings):
        raise DataError("no joint approval meeting is recorded: nothing to compare against")
    first = pd.Timestamp(pd.to_datetime(meetings["meeting_date"]).min())
    df = pd.DataFrame(stages).copy()
    df["started"] = pd.to_datetime(df["started"])
    df["finished"] = pd.to_datetime(df["finished"])
    df = df[df["finished"].notna()]
    df["days"] = (df["finished"] - df["started"]).dt.days.astype("float64")
    before = df[df["finished"] < first]
    after = df[df["started"] >= first]
    rows = []
    for s in APPROVAL_STAGES:
        b = before.loc[before["stage"] == s, "days"].to_numpy()
        a = after.loc[after["stage"] == s, "days"].to_numpy()
        mb = float(np.median(b)) if len(b) else float("nan")
        ma = float(np.median(a)) if len(a) else float("nan")
        target = mb * TARGET_RATIO
        rows.append(
            {
                "stage": s,
                "n_before": len(b),
                "median_before": mb,
                "p90_before": float(np.percentile(b, 90)) if len(b) else float("nan"),
                "n_after": len(a),
                "median_after": ma,
                "p90_after": float(np.percentile(a, 90)) if len(a) else float("nan"),
                "target_days": target,
                "cut": 1.0 - ma / mb if len(a) and len(b) and mb > 0 else float("nan"),
                "target_met": bool(len(a) and len(b) and ma <= target),
            }
        )
    return pd.DataFrame(rows, columns=list(DURATION_COLUMNS))
