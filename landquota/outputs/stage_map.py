"""What the map shows of the land-approval pipeline (issue 14): stage colours and popup rows.

:func:`stage_info` turns the ``project_stages`` layer into, per project, its
current stage on a date (computed, never stored; see
:mod:`landquota.rules.pipeline`) and the lines of its stage history, which
:mod:`landquota.outputs.maps` puts into each project's popup and uses to colour
the "projects by stage" overlay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd

from landquota.rules.pipeline import STAGE_LABELS, STAGES, current_stages

__all__ = ["STAGE_COLOURS", "StageInfo", "stage_info"]

#: Fill colour per current stage, light (not started) to dark (construction started).
STAGE_COLOURS: Mapping[str, str] = {
    "none": "#bdbdbd",
    "pre_review": "#fde0a4",
    "conversion": "#fdae61",
    "acquisition": "#f46d43",
    "supply": "#74add1",
    "construction": "#313695",
}


@dataclass(frozen=True)
class StageInfo:
    """Per project: the current stage, days in it, and the popup lines of its history."""

    current: Mapping[str, str]
    days: Mapping[str, int | None]
    history: Mapping[str, list[list[str]]]


def _d(v: Any) -> str:
    return "" if v is None or pd.isna(v) else pd.Timestamp(v).date().isoformat()


def stage_info(stages: pd.DataFrame, *, as_of: date) -> StageInfo:
    """Return the current stage on *as_of* and the history lines of every staged project."""
    cur = current_stages(stages, as_of=as_of).set_index("project_id")
    order = {s: i for i, s in enumerate(STAGES)}
    history: dict[str, list[list[str]]] = {}
    df = stages.assign(_o=stages["stage"].map(order)).sort_values(["project_id", "_o"])
    for r in df.to_dict("records"):
        pid = str(r["project_id"])
        start, end = _d(r["started"]), _d(r.get("finished"))
        days = ""
        if end:
            days = f" ({(pd.Timestamp(end) - pd.Timestamp(start)).days} 天 days)"
        doc = f" {r['doc_no']}" if isinstance(r.get("doc_no"), str) else ""
        via = " 联审会议 joint meeting" if isinstance(r.get("decision_id"), str) else ""
        history.setdefault(pid, []).append(
            [STAGE_LABELS[str(r["stage"])][0], f"{start} → {end or '进行中 open'}{days}{doc}{via}"]
        )
    return StageInfo(
        current={str(k): str(v) for k, v in cur["current_stage"].items()},
        days={str(k): (None if pd.isna(v) else int(v)) for k, v in cur["days_in_stage"].items()},
        history=history,
    )
