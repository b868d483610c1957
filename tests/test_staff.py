"""The three-level service staff, visits and the half-month rule (issue 14); the v3 migration."""

from __future__ import annotations

import sqlite3
from datetime import date

import pandas as pd
import pytest
from pipelineworld import projects, staff
from sample import sample_layers

from landquota.rules.staff import HALF_MONTH_DAYS, overdue_visits, staff_review, with_staff_names
from landquota.store.api import open_workspace
from landquota.store.schema import SCHEMA_VERSION


def visits(*rows: tuple[str, str, str, str | None, bool]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "visit_id": f"V{i}",
                "visit_date": pd.Timestamp(d),
                "staff_id": s,
                "project_id": p,
                "problems": prob,
                "solved": ok,
            }
            for i, (d, s, p, prob, ok) in enumerate(rows, start=1)
        ]
    )


@pytest.mark.parametrize(
    ("as_of", "overdue"),
    [
        ("2014-04-15", False),
        ("2014-04-16", False),  # 15 days: still in time
        ("2014-04-17", True),  # 16 days: more than half a month
        ("2014-04-20", True),
    ],
)
def test_half_month_rule(as_of: str, overdue: bool) -> None:
    assert HALF_MONTH_DAYS == 15
    v = visits(("2014-04-01", "L1", "A", None, True))
    got = overdue_visits(projects(), v, as_of=date.fromisoformat(as_of)).set_index("project_id")
    assert bool(got.loc["A", "overdue"]) is overdue
    assert got.loc["A", "due"] == pd.Timestamp("2014-04-16")
    assert bool(got.loc["B", "overdue"])  # never visited
    assert pd.isna(got.loc["B", "last_visit"])


def test_a_later_visit_does_not_count_before_it_happens() -> None:
    v = visits(("2014-04-01", "L1", "A", None, True), ("2014-04-25", "L1", "A", None, True))
    got = overdue_visits(projects(), v, as_of=date(2014, 4, 20)).set_index("project_id")
    assert bool(got.loc["A", "overdue"]) and got.loc["A", "days_overdue"] == 4


def test_staff_review_lists_projects_lagging_problems_and_overdue() -> None:
    v = visits(
        ("2014-04-01", "L1", "A", "征地拆迁慢", False),
        ("2014-04-10", "L1", "B", "已解决的问题", True),
        ("2014-04-12", "L2", "C", None, True),
    )
    lag = pd.Series({"A": True, "B": False, "C": False})
    review = staff_review(
        projects(),
        staff(),
        v,
        as_of=date(2014, 4, 20),
        lagging=lag,
        problems=pd.Series({"C": "资金未到位"}),
    ).set_index("staff_id")
    assert review.loc["L1", "projects"] == "A,B" and review.loc["L1", "lagging"] == "A"
    assert review.loc["L1", "overdue"] == "A" and review.loc["L1", "n_overdue"] == 1
    assert review.loc["L1", "open_problems"] == "A 2014-04-01: 征地拆迁慢"
    assert (
        review.loc["L2", "overdue"] == "" and review.loc["L2", "open_problems"] == "C: 资金未到位"
    )
    assert review.loc["T1", "projects"] == "A,B,C" and review.loc["T1", "n_overdue"] == 0


def test_names_are_shown_for_staff_ids_and_kept_otherwise() -> None:
    p = projects()
    p.loc[2, "county_leader"] = "某县长"  # a name typed by hand, not an id
    named = with_staff_names(p, staff())
    assert named["county_leader"].tolist() == ["张县长", "张县长", "某县长"]
    assert named["dept_cadre"].tolist() == ["陈科长"] * 3


def _make_v2(ws_target: str) -> None:
    """A workspace as schema v2 left it: names in the staff columns, no pipeline tables."""
    v3 = ("visits", "project_progress", "project_stages", "meetings", "staff")
    with open_workspace(ws_target, create=True) as ws:
        layers = sample_layers()
        ws.write_layers({"towns": layers["towns"], "projects": layers["projects"]})
        ws.set_meta("schema_version", "2")
        if ws.kind == "gpkg":
            con = sqlite3.connect(ws_target)
            for t in v3:
                con.execute(f'DROP TABLE "{t}"')
                con.execute("DELETE FROM gpkg_contents WHERE table_name = ?", (t,))
            con.commit()
            con.close()
        else:
            import sqlalchemy as sa

            with ws.engine.begin() as con:  # type: ignore[attr-defined]
                for t in v3:
                    con.execute(sa.text(f'DROP TABLE "{ws.schema}"."{t}"'))  # type: ignore[attr-defined]


def test_upgrade_adds_the_pipeline_tables_and_turns_names_into_staff(ws_target: str) -> None:
    _make_v2(ws_target)
    with open_workspace(ws_target, upgrade=True) as ws:
        assert ws.schema_version == SCHEMA_VERSION  # 3, and any later step
        st = ws.read_layer("staff").set_index("name")
        pr = ws.read_layer("projects").set_index("project_id")
        for name in ("meetings", "project_stages", "project_progress", "visits"):
            assert ws.layer_counts()[name] == 0
    assert len(st) == 6
    assert st.loc["张三（虚构）", "role"] == "county_leader"
    assert st.loc["赵六（虚构）", "role"] == "town_cadre"
    assert pr.loc["K01", "county_leader"] == st.loc["张三（虚构）", "staff_id"]
    assert pr.loc["K02", "dept_cadre"] == st.loc["周八（虚构）", "staff_id"]
    # the names read back as before through the staff table
    with open_workspace(ws_target) as ws:
        named = with_staff_names(ws.read_layer("projects"), ws.read_layer("staff"))
    assert named["county_leader"].tolist() == ["张三（虚构）", "李四（虚构）"]
    # running the step again changes nothing
    from landquota.store.migrations import MIGRATIONS

    with open_workspace(ws_target) as ws:
        MIGRATIONS[2](ws)
        assert len(ws.read_layer("staff")) == 6


def test_names_imported_into_a_v3_workspace_are_adopted(ws) -> None:
    from pipelineworld import staff as hand_staff

    from landquota.cli import main

    layers = sample_layers()
    ws.write_layers({"staff": hand_staff(), "projects": layers["projects"]})  # names, not ids
    assert main(["staff", "--db", ws.target, "--adopt-names"]) == 0
    st = ws.read_layer("staff").set_index("name")
    assert len(st) == 4 + 6 and st.loc["张三（虚构）", "staff_id"] == "S001"  # after L1, L2, T1, D1
    pr = ws.read_layer("projects").set_index("project_id")
    # role order, then code-point order of the names: 周八 (U+5468) comes before 陈七 (U+9648)
    assert pr.loc["K01", "county_leader"] == "S001" and pr.loc["K02", "dept_cadre"] == "S005"
    assert main(["staff", "--db", ws.target, "--adopt-names"]) == 0  # again: nothing new
    assert len(ws.read_layer("staff")) == 10
    assert main(["staff", "--db", ws.target]) == 2  # neither --as-of nor --adopt-names
