"""The key-project investment bulletin (R17): time progress, completion, lagging, totals.

The demo county's bulletin (build_demo) is checked in tests/test_reports.py, which
builds the demo once for both the bulletin and the workbook.
"""

from __future__ import annotations

import math
from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from landquota.errors import DataError, ParameterError
from landquota.rules.bulletin import (
    BULLETIN_COLUMNS,
    LEVEL_TOTAL_COLUMNS,
    investment_bulletin,
    time_progress,
)
from tests.sample import sample_layers

APRIL = date(2014, 4, 30)


def projects(rows: list[tuple[str, str, float, float]], **extra: list[object]) -> pd.DataFrame:
    """(project_id, level, annual_plan_yuan, completed_yuan) rows as a projects frame."""
    df = pd.DataFrame(rows, columns=["project_id", "level", "annual_plan_yuan", "completed_yuan"])
    df.insert(1, "name", [f"项目{pid}" for pid in df["project_id"]])
    for col, values in extra.items():
        df[col] = values
    return df


def yangshan_2014() -> pd.DataFrame:
    """78 projects summing to the county's published 2014 figures.

    Plan: 77 x 37,500,000 + 47,500,000 = 2,887,500,000 + 47,500,000 = 2,935,000,000 yuan.
    Completed: 76 x 3,500,000 + 15,000,000 + 36,000,000 = 266,000,000 + 51,000,000
    = 317,000,000 yuan. Portfolio completion 317 / 2935 = 0.10801 -> 10.8 %.
    Projects 1-76: 3.5 / 37.5 = 9.3 % < 33.3 % -> lagging; project 77: 15 / 37.5 = 40 %,
    project 78: 36 / 47.5 = 75.8 % -> not lagging.
    Levels: 3 national, 11 provincial, 16 city, 48 county (3 + 11 + 16 + 48 = 78).
    """
    levels = ["national"] * 3 + ["provincial"] * 11 + ["city"] * 16 + ["county"] * 48
    plan = [37_500_000.0] * 77 + [47_500_000.0]
    done = [3_500_000.0] * 76 + [15_000_000.0, 36_000_000.0]
    rows = [(f"K{i + 1:03d}", levels[i], plan[i], done[i]) for i in range(78)]
    return projects(
        rows,
        county_leader=[f"县领导{i % 7}" for i in range(78)],
        town_cadre=[f"镇干部{i}" for i in range(78)],
        dept_cadre=[f"部门干部{i}" for i in range(78)],
        status=["continuing"] * 78,
    )


def test_yangshan_2014_portfolio_is_10_8_against_33_3_and_lagging() -> None:
    df = yangshan_2014()
    assert df["annual_plan_yuan"].sum() == 2_935_000_000
    assert df["completed_yuan"].sum() == 317_000_000
    b = investment_bulletin(df, as_of=APRIL)
    assert b.n_projects == 78
    assert b.month == 4 and b.time_progress == pytest.approx(4 / 12)
    assert round(100 * b.time_progress, 1) == 33.3
    assert round(100 * b.completion, 1) == 10.8
    assert b.completion == pytest.approx(317 / 2935)
    assert b.lag == pytest.approx(4 / 12 - 317 / 2935)  # 22.5 percentage points
    assert b.lagging is True
    assert b.n_lagging == 76
    not_lagging = b.projects.loc[~b.projects["lagging"], "project_id"].tolist()
    assert not_lagging == ["K077", "K078"]


def test_yangshan_2014_text_and_html_summaries() -> None:
    b = investment_bulletin(yangshan_2014(), as_of=APRIL)
    text = str(b)
    assert "10.8 %" in text and "33.3 %" in text and "4/12" in text
    assert "滞后" in text and "LAGGING" in text
    assert "29.35 亿元" in text and "3.17 亿元" in text  # 2,935 and 317 million yuan
    for zh in ("国家级", "省级", "市级", "县级"):
        assert zh in text
    html = b._repr_html_()
    assert "10.8 %" in html and "<table>" in html and "滞后" in html


def test_level_totals_by_hand() -> None:
    # city: C1 300/1200 + C2 600/600 -> 900 / 1800 = 50 % >= 4/12 -> not lagging
    # county: Q1 100/1000 -> 10 % < 33.3 % -> lagging
    # portfolio: 1000 / 2800 = 35.7 % >= 33.3 % -> not lagging, although 2 of 3 projects lag
    df = projects(
        [
            ("Q1", "county", 1000.0, 100.0),
            ("C1", "city", 1200.0, 300.0),
            ("C2", "city", 600.0, 600.0),
        ]
    )
    b = investment_bulletin(df, as_of=APRIL)
    lv = b.levels.set_index("level")
    assert list(b.levels.columns) == list(LEVEL_TOTAL_COLUMNS)
    assert b.levels["level"].tolist() == ["city", "county"]  # R18 order, only levels present
    assert lv.loc["city", "annual_plan_yuan"] == 1800.0
    assert lv.loc["city", "completed_yuan"] == 900.0
    assert lv.loc["city", "completion"] == 0.5 and not lv.loc["city", "lagging"]
    assert lv.loc["city", "projects"] == 2 and lv.loc["city", "lagging_projects"] == 1
    assert lv.loc["county", "completion"] == 0.1 and lv.loc["county", "lagging"]
    assert b.completion == pytest.approx(1000 / 2800) and b.lagging is False
    assert b.n_lagging == 2
    # projects: R18 order (city before county), then by id
    assert b.projects["project_id"].tolist() == ["C1", "C2", "Q1"]
    assert list(b.projects.columns) == list(BULLETIN_COLUMNS)
    assert b.projects["lag"].tolist() == pytest.approx([4 / 12 - 0.25, 4 / 12 - 1.0, 4 / 12 - 0.1])


@pytest.mark.parametrize(
    ("plan", "done", "lagging"),
    [
        (1200.0, 400.0, False),  # exactly on schedule in April: 400/1200 = 4/12, not lagging
        (1200.0, 399.0, True),  # one yuan behind
        (3.0, 1.0, False),  # 1/3 = 4/12 exactly, whatever the float rounding of 1/3
        (0.0, 0.0, False),  # nothing planned: no completion, not lagging
        (0.0, 50.0, False),
    ],
)
def test_lagging_boundary(plan: float, done: float, lagging: bool) -> None:
    b = investment_bulletin(projects([("K1", "county", plan, done)]), as_of=APRIL)
    assert bool(b.projects["lagging"].iloc[0]) is lagging
    assert b.lagging is lagging
    if plan == 0:
        assert math.isnan(b.projects["completion"].iloc[0]) and math.isnan(b.completion)


@pytest.mark.parametrize(
    ("as_of", "month"),
    [
        (date(2014, 4, 30), 4),  # the county's "end of April": 4/12
        (date(2014, 4, 1), 4),  # the month of as_of counts as elapsed
        (date(2014, 1, 31), 1),
        (date(2014, 12, 31), 12),
        (datetime(2014, 4, 30, 18, 0), 4),
        (pd.Timestamp("2014-04-30"), 4),
        ("2014-04-30", 4),
    ],
)
def test_time_progress_is_month_over_12(as_of: object, month: int) -> None:
    assert time_progress(as_of) == month / 12  # type: ignore[arg-type]
    b = investment_bulletin(projects([("K1", "county", 12.0, 1.0)]), as_of=as_of)  # type: ignore[arg-type]
    assert b.month == month and b.time_progress == month / 12


@pytest.mark.parametrize("as_of", [None, True, "not a date", "", np.nan])
def test_bad_as_of(as_of: object) -> None:
    with pytest.raises(ParameterError, match="as_of"):
        investment_bulletin(projects([("K1", "county", 12.0, 1.0)]), as_of=as_of)  # type: ignore[arg-type]


def _bad(change: str) -> pd.DataFrame:
    df = projects([("K1", "county", 100.0, 10.0), ("K2", "city", 100.0, 50.0)])
    if change == "no_level":
        return df.drop(columns="level")
    if change == "level":
        df.loc[1, "level"] = "township"
    elif change == "negative":
        df.loc[1, "annual_plan_yuan"] = -1.0
    elif change == "nan":
        df.loc[0, "completed_yuan"] = np.nan
    elif change == "text":
        df["completed_yuan"] = df["completed_yuan"].astype(object)
        df.loc[0, "completed_yuan"] = "ten"
    elif change == "dup":
        df.loc[1, "project_id"] = "K1"
    elif change == "status":
        df["status"] = ["continuing", "finished"]
    return df


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ("no_level", "lacks column"),
        ("level", "'township'"),
        ("negative", "annual_plan_yuan=-1.0"),
        ("nan", "completed_yuan=nan"),
        ("text", "completed_yuan='ten'"),
        ("dup", "duplicate project_id"),
        ("status", "'finished'"),
    ],
)
def test_bad_projects(change: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        investment_bulletin(_bad(change), as_of=APRIL)


def test_not_a_frame() -> None:
    with pytest.raises(DataError, match="DataFrame"):
        investment_bulletin([("K1", "county")], as_of=APRIL)  # type: ignore[arg-type]


def test_workspace_projects_layer_with_geometry_and_staff() -> None:
    # sample: K01 provincial 10 M of 100 M = 10 %; K02 county 0 of 20 M; both lag in April
    p = sample_layers()["projects"]
    b = investment_bulletin(p, as_of=APRIL)
    assert "geometry" not in b.projects.columns
    k01 = b.projects.set_index("project_id").loc["K01"]
    assert k01["completion"] == pytest.approx(0.1) and bool(k01["lagging"])
    assert (k01["county_leader"], k01["town_cadre"], k01["dept_cadre"]) == (
        "张三（虚构）",
        "王五（虚构）",
        "陈七（虚构）",
    )
    assert b.completion == pytest.approx(10 / 120)


def test_missing_optional_columns_are_empty() -> None:
    b = investment_bulletin(projects([("K1", "county", 100.0, 50.0)]), as_of=APRIL)
    row = b.projects.iloc[0]
    for col in ("status", "town", "county_leader", "town_cadre", "dept_cadre"):
        assert pd.isna(row[col])
    assert str(b)  # renders without staff or status
