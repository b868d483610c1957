"""Approval stages and joint meetings (issue 14): dates checked, stages computed, meetings."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
from pipelineworld import decision, projects, stage, write_world

from landquota.errors import DataError
from landquota.rules.pipeline import (
    JOINT_MEETING,
    Decision,
    check_stages,
    conversion_inputs,
    current_stages,
    overdue_decisions,
    record_meeting,
    stage_durations,
    stage_funnel,
)


def frame(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows))


def test_a_stage_cannot_end_before_it_starts() -> None:
    bad = frame(stage("A", "pre_review", "2014-03-10", "2014-03-01"))
    with pytest.raises(
        DataError,
        match=r"'pre_review' of project 'A' finished on 2014-03-01, before it started on 2014-03-10",
    ):
        check_stages(bad)


def test_construction_cannot_start_before_supply() -> None:
    bad = frame(
        stage("B", "supply", "2014-01-05", "2014-03-20", supply_method="sale"),
        stage("B", "construction", "2014-03-01"),
    )
    with pytest.raises(
        DataError,
        match=r"project 'B' started construction on 2014-03-01, before its land was supplied on 2014-03-20",
    ):
        check_stages(bad)
    ok = frame(
        stage("B", "supply", "2014-01-05", "2014-03-20"),
        stage("B", "construction", "2014-03-20"),
    )
    check_stages(ok)  # the same day is allowed: supplied in the morning, started after


def test_construction_without_supply_is_refused() -> None:
    with pytest.raises(
        DataError,
        match=r"project 'C' started construction on 2014-02-01 but its land has not been supplied",
    ):
        check_stages(frame(stage("C", "construction", "2014-02-01")))


def test_current_stage_and_days_are_computed() -> None:
    st = frame(
        stage("A", "pre_review", "2014-01-01", "2014-01-31"),
        stage("A", "conversion", "2014-02-10"),  # open: 2014-02-10 → 2014-04-30 = 79 days
        stage("B", "pre_review", "2014-03-01", "2014-03-21"),  # finished, 20 days
        stage("B", "conversion", "2014-05-01"),  # not started yet on 2014-04-30
    )
    cur = current_stages(st, as_of=date(2014, 4, 30), projects=projects()).set_index("project_id")
    assert cur.loc["A", "current_stage"] == "conversion" and bool(cur.loc["A", "open"])
    assert cur.loc["A", "days_in_stage"] == 79 and cur.loc["A", "stages_done"] == 1
    assert cur.loc["B", "current_stage"] == "pre_review" and not bool(cur.loc["B", "open"])
    assert cur.loc["B", "days_in_stage"] == 20
    assert cur.loc["C", "current_stage"] == "none" and pd.isna(cur.loc["C", "days_in_stage"])
    # a finish after as_of does not count yet
    early = current_stages(st, as_of=date(2014, 1, 15)).set_index("project_id")
    assert bool(early.loc["A", "open"]) and early.loc["A", "days_in_stage"] == 14
    funnel = stage_funnel(cur.reset_index()).set_index("stage")["projects"]
    assert funnel["none"] == 1 and funnel["pre_review"] == 1 and funnel["conversion"] == 1
    assert funnel.sum() == 3


def test_stage_durations_before_and_after_the_first_meeting() -> None:
    meetings = pd.DataFrame({"meeting_date": pd.to_datetime(["2014-03-01", "2014-04-01"])})
    rows = [
        # before: finished before 2014-03-01; 30, 40, 50, 60 days
        stage("P1", "pre_review", "2013-10-01", "2013-10-31"),
        stage("P2", "pre_review", "2013-10-01", "2013-11-10"),
        stage("P3", "pre_review", "2013-10-01", "2013-11-20"),
        stage("P4", "pre_review", "2013-10-01", "2013-11-30"),
        # straddling (open on the day of the first meeting): counted on neither side
        stage("P5", "pre_review", "2014-02-20", "2014-03-30"),
        # after: started on or after 2014-03-01; 20, 28, 35 days
        stage("P6", "pre_review", "2014-03-01", "2014-03-21"),
        stage("P7", "pre_review", "2014-03-05", "2014-04-02"),
        stage("P8", "pre_review", "2014-03-10", "2014-04-14"),
        stage("P9", "pre_review", "2014-03-10"),  # still open: not counted
    ]
    d = stage_durations(pd.DataFrame(rows), meetings).set_index("stage")
    pre = d.loc["pre_review"]
    assert (pre["n_before"], pre["n_after"]) == (4, 3)
    assert pre["median_before"] == 45.0 and pre["median_after"] == 28.0
    # numpy's linear 90th percentile: 50 + 0.7 × 10 and 28 + 0.8 × 7
    assert pre["p90_before"] == pytest.approx(57.0) and pre["p90_after"] == pytest.approx(33.6)
    assert pre["target_days"] == pytest.approx(30.0)  # one third less than 45
    assert bool(pre["target_met"]) and pre["cut"] == pytest.approx(1 - 28 / 45)
    assert np.isnan(d.loc["supply", "median_before"]) and not bool(d.loc["supply", "target_met"])
    with pytest.raises(DataError, match="no joint approval meeting"):
        stage_durations(pd.DataFrame(rows), meetings.iloc[:0])


def test_conversion_inputs_come_from_the_funded_allocations() -> None:
    alloc = pd.DataFrame(
        {
            "run_id": ["R1"] * 3,
            "project_id": ["A", "B", "C"],
            "outcome": ["funded", "unfunded", "partial"],
            "new_quota_m2": [10_000.0, 0.0, 4_000.0],
            "linkage_quota_m2": [0.0, 0.0, 1_000.0],
            "approval_level": ["province", None, "state_council"],
        }
    )
    conv = conversion_inputs(alloc, started=date(2014, 5, 6), cadres={"A": "D1"})
    assert conv["project_id"].tolist() == ["A", "C"]
    assert conv["quota_m2"].tolist() == [10_000.0, 5_000.0]  # plan quota + linkage surplus (R5)
    assert conv["approval_level"].tolist() == ["province", "state_council"]  # R14
    assert conv["decided_by"].str.contains("State Council").tolist() == [False, True]
    assert conv["cadre"].iloc[0] == "D1" and pd.isna(conv["cadre"].iloc[1])
    assert conv["finished"].isna().all()


def test_a_meeting_closes_the_stages_it_decides(ws) -> None:
    write_world(ws)
    ws.write_layer(
        "project_stages",
        frame(stage("A", "pre_review", "2014-02-01"), stage("B", "pre_review", "2014-02-05")),
    )
    rows = record_meeting(
        ws,
        meeting_id="LS2014-01",
        meeting_date=date(2014, 3, 18),
        departments=["县发改局", "县国土资源局"],
        decisions=[
            Decision("A", "用地预审", stage="pre_review", deadline=date(2014, 4, 18)),
            Decision("C", "规划选址 site selection"),
        ],
    )
    assert rows["decision_id"].tolist() == ["LS2014-01:1", "LS2014-01:2"]
    st = ws.read_layer("project_stages").set_index("project_id")
    assert st.loc["A", "finished"] == pd.Timestamp("2014-03-18")
    assert (
        st.loc["A", "decision_id"] == "LS2014-01:1" and st.loc["A", "decided_by"] == JOINT_MEETING
    )
    assert pd.isna(st.loc["B", "finished"])
    m = ws.read_layer("meetings")
    assert m["departments"].tolist() == ["县发改局,县国土资源局"] * 2
    assert m["deadline"].iloc[0] == pd.Timestamp("2014-04-18")


@pytest.mark.parametrize(
    ("decision", "match"),
    [
        (Decision("B", "x", stage="conversion"), "has no 'conversion' stage"),
        (Decision("Z", "x"), "project 'Z' is not in the workspace"),
        (
            Decision("B", "x", deadline=date(2014, 3, 1)),
            "deadline 2014-03-01 is before the meeting",
        ),
        (Decision("B", "x", stage="pre_review"), "started on 2014-04-01, after the meeting"),
    ],
)
def test_a_bad_decision_writes_nothing(ws, decision: Decision, match: str) -> None:
    write_world(ws)
    ws.write_layer(
        "project_stages",
        frame(stage("A", "pre_review", "2014-02-01"), stage("B", "pre_review", "2014-04-01")),
    )
    good = Decision("A", "用地预审", stage="pre_review")
    with pytest.raises(DataError, match=match):
        record_meeting(
            ws,
            meeting_id="M1",
            meeting_date=date(2014, 3, 18),
            departments=["县国土资源局"],
            decisions=[good, decision],
        )
    assert ws.layer_counts()["meetings"] == 0
    assert ws.read_layer("project_stages")["finished"].isna().all()  # A is not closed either


def test_every_writer_gets_the_stage_checks(ws) -> None:
    write_world(ws)
    ws.write_layer("project_stages", frame(stage("B", "supply", "2014-01-05", "2014-03-20")))
    with pytest.raises(DataError, match="before its land was supplied on 2014-03-20"):
        ws.write_layer(
            "project_stages", frame(stage("B", "construction", "2014-03-01")), mode="append"
        )
    with pytest.raises(DataError, match="finished on 2014-01-01, before it started"):
        ws.write_layer(
            "project_stages", frame(stage("A", "pre_review", "2014-02-01", "2014-01-01"))
        )
    assert ws.read_layer("project_stages")["stage_id"].tolist() == ["B:supply"]  # unchanged


@pytest.mark.parametrize(
    ("as_of", "want"),
    [
        ("2014-04-01", {}),  # every deadline still to come or today
        ("2014-04-02", {"M1:3": 1}),  # C's conversion: no stage at all
        ("2014-04-07", {"M1:3": 6, "M1:2": 2}),  # B not closed yet
        ("2014-04-10", {"M1:3": 9}),  # B closed on 04-08 (late: no longer listed); A's day
        ("2014-04-20", {"M1:3": 19, "M1:1": 10}),
    ],
)
def test_overdue_decisions_by_hand(as_of: str, want: dict[str, int]) -> None:
    # a decision is overdue when its deadline has passed and its stage is not closed
    st = frame(
        stage("A", "pre_review", "2014-03-01"),
        stage("B", "pre_review", "2014-03-01", "2014-04-08"),
    )
    m = frame(
        decision("M1:1", "A", "pre_review", "2014-03-18", "2014-04-10"),
        decision("M1:2", "B", "pre_review", "2014-03-18", "2014-04-05"),
        decision("M1:3", "C", "conversion", "2014-03-18", "2014-04-01"),
        decision("M1:4", "A", None, "2014-03-18", "2014-04-01"),  # no stage: no term
        decision("M2:1", "B", "supply", "2014-04-25", "2014-04-26"),  # not yet decided
    )
    got = overdue_decisions(st, m, as_of=as_of)
    assert dict(zip(got["decision_id"], got["days_overdue"], strict=True)) == want
    assert got["days_overdue"].is_monotonic_decreasing
    assert len(overdue_decisions(st, m.iloc[:0], as_of=as_of)) == 0
