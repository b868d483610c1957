"""Monthly returns and the bulletin of any month (R17, issue 14)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pipelineworld import projects, returns, staff

from landquota.errors import DataError, ParameterError
from landquota.rules.progress import check_progress, month_end, monthly_bulletin, parse_month


def test_lagging_months_running_by_hand() -> None:
    # plan 1,200 each, so R17 lags when completed < 100 × month
    r = returns(
        {
            "A": [100, 150, 250, 300],  # on time in January, lagging Feb, Mar, Apr: 3 running
            "B": [50, 100, 200, 400],  # lagging Jan-Mar, caught up in April (400 = 4/12)
            "C": [100, 200, None, 350],  # no March return: February's 200 carried, lagging
        }
    )
    b = monthly_bulletin(projects(), r, month="2014-04", staff=staff())
    p = b.projects.set_index("project_id")
    assert p["lagging_months"].to_dict() == {"A": 3, "B": 0, "C": 2}
    assert not bool(p.loc["B", "lagging"])
    listed = b.lagging_running(3)["project_id"].tolist()
    assert listed == ["A"]
    assert "A 甲项目: 3 months running" in str(b) and "B 乙项目" not in str(b).split("running:")[1]
    # change since last month, the carried return and the names of the staff
    assert p["change_yuan"].to_dict() == {"A": 50.0, "B": 200.0, "C": 150.0}
    march = monthly_bulletin(projects(), r, month="2014-03", staff=staff()).projects
    march = march.set_index("project_id")
    assert march.loc["C", "completed_yuan"] == 200.0 and not bool(march.loc["C", "reported"])
    assert march["lagging_months"].to_dict() == {"A": 2, "B": 3, "C": 1}
    assert p.loc["A", "county_leader"] == "张县长" and p.loc["A", "department"] == "县国土资源局"
    assert p.loc["A", "problems"] == "征地慢"


def test_totals_groups_and_rankings() -> None:
    r = returns({"A": [0, 0, 0, 300], "B": [0, 0, 0, 600], "C": [0, 0, 0, 400]})
    b = monthly_bulletin(projects(), r, month="2014-04", staff=staff())
    assert b.completed_yuan == 1300.0 and b.annual_plan_yuan == 3600.0
    assert b.time_progress == pytest.approx(4 / 12)
    assert b.levels["completed_yuan"].sum() == b.completed_yuan
    assert b.levels["group"].tolist() == ["city", "county"]  # R18 order
    towns = b.towns.set_index("group")
    assert towns.loc["东镇", "completed_yuan"] == 900.0 and towns.loc["东镇", "rank"] == 1
    assert towns.loc["西镇", "rank"] == 2  # 400/1200 = 33.3 % < 900/2400 = 37.5 %
    leaders = b.leaders.set_index("group")
    assert (
        leaders.loc["张县长", "projects"] == 2 and leaders.loc["李副县长", "completed_yuan"] == 400
    )
    assert b.departments["group"].tolist() == ["县国土资源局"]
    hist = b.history[b.history["level"] == "all"]
    assert hist["month"].tolist() == ["2014-01", "2014-02", "2014-03", "2014-04"]
    assert hist["completed_yuan"].tolist() == [0.0, 0.0, 0.0, 1300.0]


def test_a_falling_cumulative_return_is_refused() -> None:
    r = returns({"A": [100, 90]})
    with pytest.raises(
        DataError,
        match=r"project 'A' reports 90 yuan for 2014-02, less than the 100 yuan of 2014-01",
    ):
        check_progress(r)
    # a new year starts again from 0
    check_progress(pd.concat([returns({"A": [500]}, year=2013), returns({"A": [100]})]))


@pytest.mark.parametrize("bad", ["2014-13", "2014-4", "April", "", None])
def test_bad_months(bad: object) -> None:
    with pytest.raises(ParameterError, match="give YYYY-MM"):
        parse_month(bad)


def test_month_end() -> None:
    assert month_end("2014-02").isoformat() == "2014-02-28"
    assert month_end("2016-02").isoformat() == "2016-02-29"


def test_demo_april_is_the_published_figure(demo_small: dict[str, pd.DataFrame]) -> None:
    d = demo_small
    b = monthly_bulletin(d["projects"], d["project_progress"], month="2014-04", staff=d["staff"])
    assert b.completed_yuan == 317_000_000 and b.annual_plan_yuan == 2_935_000_000
    assert (
        f"{100 * b.completion:.1f} %" == "10.8 %" and f"{100 * b.time_progress:.1f} %" == "33.3 %"
    )
    assert b.levels["completed_yuan"].sum() == 317_000_000
    assert b.levels["annual_plan_yuan"].sum() == 2_935_000_000
    assert b.base.lagging


def test_demo_march_comes_from_the_march_returns(demo_small: dict[str, pd.DataFrame]) -> None:
    d = demo_small
    ret = d["project_progress"]
    b = monthly_bulletin(d["projects"], ret, month="2014-03", staff=d["staff"])
    march = ret[ret["month"] == "2014-03"]
    assert len(march) == 78 and b.projects["reported"].all()
    assert b.completed_yuan == march["completed_yuan"].sum() < 317_000_000
    assert b.time_progress == 0.25
    april = monthly_bulletin(d["projects"], ret, month="2014-04", staff=d["staff"])
    assert april.previous_completed_yuan == b.completed_yuan
    assert april.projects["change_yuan"].sum() == 317_000_000 - b.completed_yuan


def test_review_of_a_month_on_both_backends(ws) -> None:
    from pipelineworld import write_world

    from landquota.outputs.monthly import monthly_review

    write_world(ws)
    ws.write_layer("project_progress", returns({"A": [100, 150, 250, 300], "B": [0, 0, 0, 400]}))
    with pytest.raises(DataError, match="less than the 300 yuan of 2014-04"):
        ws.write_layer(
            "project_progress", returns({"A": [None, None, None, None, 200]}), mode="append"
        )
    r = monthly_review(ws, month="2014-04")
    assert r.bulletin.completed_yuan == 700.0 and r.bulletin.annual_plan_yuan == 3600.0
    # C filed nothing: lagging since January (4 months running, listed first); A since February
    assert r.lagging["project_id"].tolist() == ["C", "A"]
    r4 = monthly_review(ws, month="2014-04", running=4)
    assert r4.lagging["project_id"].tolist() == ["C"]
    assert r.funnel["projects"].sum() == 3 and r.durations is None


def test_the_bulletin_workbook_is_reproducible(tmp_path) -> None:
    from openpyxl import load_workbook
    from pipelineworld import write_world

    from landquota.outputs.monthly import monthly_review, write_bulletin_xlsx
    from landquota.store.api import open_workspace

    with open_workspace(tmp_path / "w.gpkg", create=True) as ws:
        write_world(ws)
        ws.write_layer("project_progress", returns({"A": [100, 150, 250, 300]}))
        r = monthly_review(ws, month="2014-04")
    one = write_bulletin_xlsx(r, tmp_path / "1.xlsx").read_bytes()
    two = write_bulletin_xlsx(r, tmp_path / "2.xlsx").read_bytes()
    assert one == two
    wb = load_workbook(tmp_path / "1.xlsx", read_only=True)
    assert "连续滞后 lagging" in wb.sheetnames and "超期走访 overdue visits" in wb.sheetnames
    rows = list(wb["连续滞后 lagging"].iter_rows(values_only=True))
    # B and C filed nothing: 4 months running (then by id); A lags since February
    assert [r[0] for r in rows[1:]] == ["B", "C", "A"]
    wb.close()


@pytest.mark.parametrize("content", [b"not a workbook\n", b"PK\x03\x04cut short"])
def test_a_form_that_is_not_a_workbook_is_refused_in_one_line(tmp_path: Path, content: bytes) -> None:
    from landquota.intake.progress import read_returns

    bad = tmp_path / "returns-2014-05.xlsx"
    bad.write_bytes(content)
    with pytest.raises(ParameterError, match=r"returns-2014-05.xlsx' is not an Excel workbook \(.xlsx\)"):
        read_returns(bad, month="2014-05")
