"""Write-time checks of the key-project pipeline tables (issue 14), for every writer.

``Workspace.write_layers`` runs them whenever ``project_stages`` or
``project_progress`` rows are written — by ``landquota import``, the API or the
pipeline's own commands — so that a bad row is refused with one clear message and
nothing is written. They live in the store, like the ledger's R6 check
(:mod:`landquota.store.ledger_check`), so that the store never imports the
rules; :mod:`landquota.rules.pipeline` and :mod:`landquota.rules.progress`
re-export them.

* :func:`check_stages`: a stage cannot finish before it starts; construction
  cannot start before the land is supplied.
* :func:`check_progress`: months are ``YYYY-MM``; one return per project and
  month; a cumulative figure never falls within a year (R17).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.store.schema import STAGES

__all__ = ["check_progress", "check_stages", "parse_month"]

_MONTH = re.compile(r"^(\d{4})-(\d{2})$")


def _iso(v: Any) -> str:
    return "—" if v is None or pd.isna(v) else pd.Timestamp(v).date().isoformat()


def parse_month(value: Any) -> tuple[int, int]:
    """Return (year, month) of a ``YYYY-MM`` text; raise a ParameterError naming the fix."""
    m = _MONTH.match(str(value).strip()) if isinstance(value, str) else None
    if m is None or not 1 <= int(m.group(2)) <= 12:
        raise ParameterError(f"month {value!r} is not a month; give YYYY-MM, e.g. 2014-04")
    return int(m.group(1)), int(m.group(2))


def check_stages(stages: pd.DataFrame) -> None:
    """Check the dates of ``project_stages`` rows; raise one clear error for the first fault.

    Raises
    ------
    DataError
        A stage finished before it started; a stage code outside :data:`STAGES`;
        two rows for one project and stage; construction started before the
        land was supplied, or with no supply finished at all (the message names
        the project and both dates).
    """
    if not len(stages):
        return
    df = pd.DataFrame(stages).reset_index(drop=True)
    bad = ~df["stage"].isin(STAGES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"project_stages: project {df.at[i, 'project_id']!r} has stage "
            f"{df.at[i, 'stage']!r}; allowed: {', '.join(STAGES)}"
        )
    dup = df.duplicated(["project_id", "stage"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"project_stages: project {df.at[i, 'project_id']!r} has stage "
            f"{df.at[i, 'stage']!r} twice; keep one row per project and stage"
        )
    started = pd.to_datetime(df["started"])
    finished = pd.to_datetime(df["finished"])
    bad = finished.notna() & (finished < started)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(
            f"project_stages: stage {df.at[i, 'stage']!r} of project {df.at[i, 'project_id']!r} "
            f"finished on {_iso(finished[i])}, before it started on {_iso(started[i])}; "
            "correct one of the two dates"
        )
    supply = df[df["stage"] == "supply"].set_index("project_id")
    for i in np.flatnonzero((df["stage"] == "construction").to_numpy()).tolist():
        pid = df.at[i, "project_id"]
        start = started[i]
        done = pd.to_datetime(supply["finished"]).get(pid) if pid in supply.index else None
        if done is None or pd.isna(done):
            raise DataError(
                f"project_stages: project {pid!r} started construction on {_iso(start)} but its "
                "land has not been supplied (no 供地 stage with a finish date); record the "
                "supply (划拨 or 出让) first"
            )
        if start < done:
            raise DataError(
                f"project_stages: project {pid!r} started construction on {_iso(start)}, before "
                f"its land was supplied on {_iso(done)}; construction cannot start before supply "
                "(correct one of the two dates)"
            )


def check_progress(progress: pd.DataFrame) -> None:
    """Check monthly returns: months well formed, cumulative figures never falling in a year.

    Raises
    ------
    DataError
        A month that is not ``YYYY-MM``; two returns of one project for one
        month; a cumulative figure lower than the project's earlier return of
        the same year (the message names the project and both months).
    """
    if not len(progress):
        return
    df = pd.DataFrame(progress).reset_index(drop=True)
    for i, v in enumerate(df["month"]):
        try:
            parse_month(v)
        except ParameterError:
            raise DataError(
                f"project_progress: return {df.at[i, 'progress_id']!r} has month {v!r}; "
                "give YYYY-MM, e.g. 2014-04"
            ) from None
    dup = df.duplicated(["project_id", "month"], keep=False)
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"project_progress: project {df.at[i, 'project_id']!r} has two returns for "
            f"{df.at[i, 'month']!s}; keep one per project and month"
        )
    df["_year"] = df["month"].str.slice(0, 4)
    df = df.sort_values(["project_id", "month"], kind="stable")
    prev = df.groupby(["project_id", "_year"])["completed_yuan"].shift()
    prev_month = df.groupby(["project_id", "_year"])["month"].shift()
    bad = prev.notna() & (df["completed_yuan"] < prev)
    if bad.any():
        i = df.index[bad.to_numpy()][0]
        now, before = float(df["completed_yuan"][i]), float(prev[i])
        raise DataError(
            f"project_progress: project {df.at[i, 'project_id']!r} reports "
            f"{now:,.0f} yuan for {df.at[i, 'month']!s}, less than the "
            f"{before:,.0f} yuan of {prev_month[i]!s}; the figure is cumulative from 1 January "
            "and cannot fall (correct one of the two returns)"
        )
