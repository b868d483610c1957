"""Reports: the XLSX workbook (figures, highlights, charts, determinism), CSV and PNG charts.

Figures are read back with openpyxl and checked against the input frames and
against hand computations on the tiny sample workspace (tests/sample.py):

- ledger (sample): new_construction +500,000 m² (plan issue, 2014-01-01) and
  comp_area +100,000 m² (opening); closing at 2014-04-30 = 500,000 m² = 50 ha =
  750 mu and 100,000 m² = 10 ha = 150 mu; the other pools 0.
- idle land (sample S1): supplied, enterprise cause, agreed start 2012-03-01, not
  started by 2014-04-30: idle since 2012-03-01 for 2 whole years (R10), so the
  idle fee is 20 % of the land price 12,000,000 = 2,400,000 yuan and free
  reclamation is due (R11, idle >= 2 years).
- bulletin (sample): K01 10 M of 100 M = 10 %, K02 0 of 20 M = 0 %; portfolio
  10 / 120 = 8.3 % against 4/12 = 33.3 %: all lagging.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import date
from pathlib import Path
from typing import Any

import openpyxl
import pandas as pd
import pytest

from landquota.errors import DataError, ParameterError
from landquota.outputs.reports import (
    CHART_FILES,
    HIGHLIGHT_FILL,
    REPORT_LAYERS,
    report_sheets,
    select_run,
    write_report,
)
from landquota.rules.ledger import balances
from tests.sample import sample_layers

APRIL = date(2014, 4, 30)
SHEETS = {
    "summary": "概要 Summary",
    "bulletin": "项目通报 Bulletin",
    "levels": "分级汇总 By level",
    "allocation": "分配结果 Allocation",
    "ledger": "指标台账 Ledger",
    "idle": "闲置土地 Idle land",
    "unsupplied": "批而未供 Unsupplied",
    "linkage": "增减挂钩 Linkage",
    "charts": "图表 Charts",
}


def rows(wb: Any, title: str) -> list[dict[str, Any]]:
    """The data rows of a sheet as dicts keyed by header (up to the first empty row)."""
    ws = wb[title]
    values = list(ws.iter_rows(values_only=True))
    head = list(values[0])
    out = []
    for r in values[1:]:
        if all(v is None for v in r):
            break
        out.append(dict(zip(head, r, strict=True)))
    return out


def filled(wb: Any, title: str, row: int) -> bool:
    """Whether the first cell of data row *row* (0-based) has the highlight fill."""
    cell = wb[title].cell(row=row + 2, column=1)
    return str(cell.fill.fgColor.rgb).upper().endswith(HIGHLIGHT_FILL)


@pytest.fixture(scope="module")
def sample_xlsx(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, pd.DataFrame]]:
    """The sample workspace's report, written once for the tests that only read it."""
    layers = sample_layers()
    out = tmp_path_factory.mktemp("sample") / "report.xlsx"
    return write_report(layers, out=out, as_of=APRIL), layers


# --- figures against the inputs --------------------------------------------------------------
def test_workbook_has_every_sheet_with_bilingual_headers(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(SHEETS.values())
    for title in wb.sheetnames[:-1]:
        for head in next(wb[title].iter_rows(max_row=1, values_only=True)):
            text = str(head)
            assert re.search(r"[\u4e00-\u9fff]", text), f"{title}: {text!r} has no Chinese"
            assert re.search(r"[A-Za-z]", text), f"{title}: {text!r} has no English"


def test_ledger_closing_balances(sample_xlsx: Any) -> None:
    path, layers = sample_xlsx
    wb = openpyxl.load_workbook(path)
    got = {r["代码 Code"]: r for r in rows(wb, SHEETS["ledger"])}
    expected = balances(layers["quota_ledger"], as_of=APRIL).set_index("pool")["balance"]
    for pool, value in expected.items():
        assert got[pool]["期末 Closing (m² / kg)"] == pytest.approx(value)
    # by hand (module docstring)
    nc, ca = got["new_construction"], got["comp_area"]
    assert nc["期末 Closing (m² / kg)"] == 500_000
    assert nc["期末 Closing (公顷 ha)"] == pytest.approx(50.0)
    assert nc["期末 Closing (亩 mu)"] == pytest.approx(750.0)
    assert ca["期末 Closing (公顷 ha)"] == pytest.approx(10.0)
    assert ca["期末 Closing (亩 mu)"] == pytest.approx(150.0)
    # 1 January 2014 is inside the period: both entries are credits, the opening is 0
    assert nc["期初 Opening (m² / kg)"] == 0 and nc["本期增加 Credits (m² / kg)"] == 500_000
    # the grain pool is in kg and has no ha / mu figure
    assert got["comp_grain"]["单位 Unit"].startswith("kg")
    assert got["comp_grain"]["期末 Closing (公顷 ha)"] is None


def test_period_start_moves_entries_into_the_opening(tmp_path: Path) -> None:
    path = write_report(
        sample_layers(), out=tmp_path / "r.xlsx", as_of=APRIL, period_start=date(2014, 2, 1)
    )
    got = {r["代码 Code"]: r for r in rows(openpyxl.load_workbook(path), SHEETS["ledger"])}
    nc = got["new_construction"]
    assert nc["期初 Opening (m² / kg)"] == 500_000 and nc["本期增加 Credits (m² / kg)"] == 0
    assert nc["期末 Closing (m² / kg)"] == 500_000


def test_idle_fee_of_one_parcel(sample_xlsx: Any) -> None:
    path, layers = sample_xlsx
    wb = openpyxl.load_workbook(path)
    idle = rows(wb, SHEETS["idle"])
    assert [r["地块编号 Stock id"] for r in idle] == ["S1"]
    s1 = idle[0]
    price = float(layers["stock_land"]["land_price_yuan"].iloc[0])
    assert s1["应缴闲置费 Idle fee due (yuan, R11)"] == pytest.approx(0.20 * price) == 2_400_000
    assert s1["闲置原因 Cause (R11)"].startswith("企业原因")
    assert s1["闲置整年数 Whole years idle"] == 2
    assert s1["状态 Status"].startswith("闲置")
    assert s1["无偿收回期限 Free reclamation from (R11)"].date() == date(2014, 3, 1)
    assert s1["应无偿收回 Reclamation due"] == "是 yes"
    assert filled(wb, SHEETS["idle"], 0)
    # areas in m², ha and mu agree (1 ha = 10,000 m² = 15 mu)
    m2 = s1["面积 Area (m²)"]
    assert m2 > 0
    assert s1["面积 Area (公顷 ha)"] == pytest.approx(m2 / 10_000)
    assert s1["面积 Area (亩 mu)"] == pytest.approx(m2 / 10_000 * 15)
    summary = {r["项目 Item"]: r["数值 Value"] for r in rows(wb, SHEETS["summary"])}
    assert summary["应缴闲置费 Idle fees due (yuan)"] == 2_400_000


def test_government_cause_pays_no_fee(tmp_path: Path) -> None:
    layers = sample_layers()
    layers["stock_land"]["cause"] = ["government"]
    path = write_report(layers, out=tmp_path / "r.xlsx", as_of=APRIL)
    s1 = rows(openpyxl.load_workbook(path), SHEETS["idle"])[0]
    assert s1["应缴闲置费 Idle fee due (yuan, R11)"] == 0
    assert s1["应无偿收回 Reclamation due"] == "否 no"


def test_bulletin_sheets_and_highlights(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    wb = openpyxl.load_workbook(path)
    proj = rows(wb, SHEETS["bulletin"])
    assert [r["项目编号 Project id"] for r in proj] == ["K01", "K02"]  # provincial before county
    k01 = proj[0]
    assert k01["完成率 Completion"] == pytest.approx(0.10)
    assert k01["时间进度 Time progress"] == pytest.approx(4 / 12)
    assert k01["滞后幅度 Lag"] == pytest.approx(4 / 12 - 0.10)
    assert k01["是否滞后 Lagging"] == "是 yes"
    assert k01["挂钩县领导 County leader"] == "张三（虚构）"
    assert k01["镇干部 Town cadre"] == "王五（虚构）"
    assert k01["部门干部 Department cadre"] == "陈七（虚构）"
    assert wb[SHEETS["bulletin"]]["H2"].number_format == "0.0%"
    assert filled(wb, SHEETS["bulletin"], 0) and filled(wb, SHEETS["bulletin"], 1)
    levels = rows(wb, SHEETS["levels"])
    total = levels[-1]
    assert total["项目级别 Level"].startswith("全部")
    assert total["年度计划投资 Annual plan (yuan)"] == 120_000_000
    assert total["完成率 Completion"] == pytest.approx(10 / 120)
    assert total["是否滞后 Lagging"] == "是 yes"


def test_only_lagging_projects_are_highlighted(tmp_path: Path) -> None:
    layers = sample_layers()
    # K01: 40 M of 100 M = 40 % >= 33.3 % -> on schedule; K02 stays at 0 % -> lagging
    layers["projects"]["completed_yuan"] = [40_000_000.0, 0.0]
    path = write_report(layers, out=tmp_path / "r.xlsx", as_of=APRIL)
    wb = openpyxl.load_workbook(path)
    proj = rows(wb, SHEETS["bulletin"])
    assert [r["是否滞后 Lagging"] for r in proj] == ["否 no", "是 yes"]
    assert not filled(wb, SHEETS["bulletin"], 0) and filled(wb, SHEETS["bulletin"], 1)
    # portfolio 40 / 120 = 33.3 % = 4/12: on schedule, not highlighted
    levels = rows(wb, SHEETS["levels"])
    assert levels[-1]["是否滞后 Lagging"] == "否 no"
    assert not filled(wb, SHEETS["levels"], len(levels) - 1)


def test_allocation_sheet(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    wb = openpyxl.load_workbook(path)
    alloc = rows(wb, SHEETS["allocation"])
    assert len(alloc) == 1
    a = alloc[0]
    # R1:K01: need 10,000 m² of new quota, all given = 1 ha = 15 mu
    assert a["项目名称 Project name"] == "示例工业园"
    assert a["分配结果 Outcome"].startswith("已安排")
    assert a["新增指标需求 New-quota need (m²)"] == 10_000
    assert a["安排计划指标 Plan quota given (公顷 ha)"] == pytest.approx(1.0)
    assert a["安排计划指标 Plan quota given (亩 mu)"] == pytest.approx(15.0)
    assert a["审批级别 Approval level"].startswith("省政府")


def test_linkage_and_cohort_sheets(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    wb = openpyxl.load_workbook(path)
    link = rows(wb, SHEETS["linkage"])
    # LA1: turnover 30,000 m² = 3 ha = 45 mu; 20,000 m² reclaimed; accepted 2014-02-01
    assert link[0]["项目区编号 Linkage id"] == "LA1"
    assert link[0]["周转指标 Turnover quota (公顷 ha)"] == pytest.approx(3.0)
    assert link[0]["周转指标 Turnover quota (亩 mu)"] == pytest.approx(45.0)
    assert link[0]["拆旧复垦 Reclaimed (demolition) (m²)"] == 20_000
    assert link[0]["节余可使用 Surplus usable (R5)"] == "是 yes"
    # the sample's construction plot lies off the parcels: reviewed anyway, with a caution
    ws = wb[SHEETS["linkage"]]
    notes = [c.value for c in ws["A"] if isinstance(c.value, str)]
    assert any("CAUTION" in n and "LP2" in n for n in notes)
    cohorts = rows(wb, SHEETS["unsupplied"])
    # S1 (batch of 2011) was supplied: the 2011 cohort and the five-year total are 100 % supplied
    assert cohorts[0]["批准年份 Approval year"] == 2011
    assert cohorts[-1]["批准年份 Approval year"].startswith("近五年")
    assert cohorts[-1]["供地率 Supply rate"] == pytest.approx(1.0)


def test_charts_are_in_the_workbook(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    with zipfile.ZipFile(path) as z:
        charts = sorted(n for n in z.namelist() if n.startswith("xl/charts/chart"))
        assert charts == ["xl/charts/chart1.xml", "xl/charts/chart2.xml"]
        xml = z.read("xl/charts/chart2.xml").decode()
    assert "'图表 Charts'" in xml and "完成率" in xml
    wb = openpyxl.load_workbook(path)
    data = rows(wb, SHEETS["charts"])
    # closing balance in ha per area pool: 50 ha of plan quota, 10 ha of cultivated compensation
    assert [r["期末余额 Closing (公顷 ha)"] for r in data] == pytest.approx([50.0, 0.0, 10.0, 0.0])


# --- the demo reproduces the county's 2014 bulletin ---------------------------------------------
@pytest.fixture(scope="module")
def demo_layers() -> dict[str, pd.DataFrame]:
    demo = pytest.importorskip("landquota.demo.build")
    return demo.build_demo(seed=2014, n_parcels=2_000)  # type: ignore[no-any-return]


def test_demo_bulletin_is_10_8_against_33_3(
    demo_layers: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    from landquota.rules.bulletin import investment_bulletin

    p = demo_layers["projects"]
    # the published figures: 78 projects, 2,935 M planned, 317 M completed by end of April
    assert len(p) == 78
    assert p["annual_plan_yuan"].sum() == pytest.approx(2_935_000_000)
    assert p["completed_yuan"].sum() == pytest.approx(317_000_000)
    b = investment_bulletin(p, as_of=APRIL)
    assert round(100 * b.completion, 1) == 10.8 and round(100 * b.time_progress, 1) == 33.3
    assert b.lagging

    path = write_report(demo_layers, out=tmp_path / "demo.xlsx", as_of=APRIL)
    wb = openpyxl.load_workbook(path)
    levels = rows(wb, SHEETS["levels"])
    total = levels[-1]
    assert total["项目数 Projects"] == 78
    assert total["年度计划投资 Annual plan (yuan)"] == pytest.approx(p["annual_plan_yuan"].sum())
    assert total["已完成投资 Completed (yuan)"] == pytest.approx(p["completed_yuan"].sum())
    assert round(100 * total["完成率 Completion"], 1) == 10.8
    assert round(100 * total["时间进度 Time progress"], 1) == 33.3
    assert total["是否滞后 Lagging"] == "是 yes"
    assert filled(wb, SHEETS["levels"], len(levels) - 1)
    assert len(rows(wb, SHEETS["bulletin"])) == 78
    # the ledger sheet agrees with the demo's ledger
    got = {r["代码 Code"]: r for r in rows(wb, SHEETS["ledger"])}
    for pool, value in balances(demo_layers["quota_ledger"], as_of=APRIL).set_index("pool")[
        "balance"
    ].items():
        assert got[pool]["期末 Closing (m² / kg)"] == pytest.approx(value)


# --- through a real workspace (both backends) -----------------------------------------------------
def test_report_from_workspace(ws: Any, tmp_path: Path) -> None:
    ws.write_layers(sample_layers())
    layers = {name: ws.read_layer(name) for name in REPORT_LAYERS}
    path = write_report(layers, out=tmp_path / "ws.xlsx", as_of=APRIL)
    wb = openpyxl.load_workbook(path)
    ledger = {r["代码 Code"]: r["期末 Closing (m² / kg)"] for r in rows(wb, SHEETS["ledger"])}
    expected = balances(layers["quota_ledger"], as_of=APRIL).set_index("pool")["balance"]
    assert ledger == pytest.approx(expected.to_dict())
    assert ledger["new_construction"] == 500_000
    s1 = rows(wb, SHEETS["idle"])[0]
    assert s1["应缴闲置费 Idle fee due (yuan, R11)"] == 2_400_000
    total = rows(wb, SHEETS["levels"])[-1]
    assert total["完成率 Completion"] == pytest.approx(10 / 120)
    assert total["时间进度 Time progress"] == pytest.approx(4 / 12)


# --- determinism -------------------------------------------------------------------------------
def test_same_inputs_give_identical_bytes(tmp_path: Path) -> None:
    layers = sample_layers()
    a = write_report(layers, out=tmp_path / "a.xlsx", as_of=APRIL, png=True)
    time.sleep(1.1)  # openpyxl would stamp another second into docProps/core.xml
    b = write_report(layers, out=tmp_path / "b.xlsx", as_of=APRIL, png=True)
    assert a.read_bytes() == b.read_bytes()
    for name in CHART_FILES:
        pa, pb = tmp_path / f"a_{name}", tmp_path / f"b_{name}"
        assert pa.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pa.read_bytes() == pb.read_bytes()


def test_timestamps_are_the_report_date(sample_xlsx: Any) -> None:
    path, _ = sample_xlsx
    with zipfile.ZipFile(path) as z:
        assert {i.date_time for i in z.infolist()} == {(2014, 4, 30, 0, 0, 0)}
        core = z.read("docProps/core.xml").decode()
    stamps = re.findall(r"<dcterms:(created|modified)[^>]*>([^<]*)<", core)
    assert sorted(stamps) == [
        ("created", "2014-04-30T00:00:00Z"),
        ("modified", "2014-04-30T00:00:00Z"),
    ]
    wb = openpyxl.load_workbook(path)
    assert wb.properties.creator == "landquota"


def test_another_date_gives_another_file(tmp_path: Path) -> None:
    layers = sample_layers()
    a = write_report(layers, out=tmp_path / "a.xlsx", as_of=APRIL)
    b = write_report(layers, out=tmp_path / "b.xlsx", as_of=date(2014, 5, 31))
    assert a.read_bytes() != b.read_bytes()
    levels = rows(openpyxl.load_workbook(b), SHEETS["levels"])
    assert levels[-1]["时间进度 Time progress"] == pytest.approx(5 / 12)


# --- CSV and PNG -------------------------------------------------------------------------------
def test_csv_folder_utf8_bom(tmp_path: Path) -> None:
    out = write_report(sample_layers(), out=tmp_path / "report_csv", as_of=APRIL)
    assert out.is_dir()
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [
            "summary.csv",
            "bulletin.csv",
            "bulletin_levels.csv",
            "allocation.csv",
            "ledger.csv",
            "idle_land.csv",
            "unsupplied.csv",
            "linkage.csv",
            *CHART_FILES,
        ]
    )
    raw = (out / "ledger.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: Excel reads the file as UTF-8
    assert b"\r\n" not in raw
    ledger = pd.read_csv(out / "ledger.csv", encoding="utf-8-sig").set_index("代码 Code")
    assert ledger.loc["new_construction", "期末 Closing (m² / kg)"] == 500_000
    assert ledger.loc["comp_area", "期末 Closing (亩 mu)"] == pytest.approx(150.0)
    idle = pd.read_csv(out / "idle_land.csv", encoding="utf-8-sig")
    assert idle.loc[0, "应缴闲置费 Idle fee due (yuan, R11)"] == 2_400_000
    assert idle.loc[0, "闲置起算日 Idle clock from"] == "2012-03-01"  # ISO dates
    levels = pd.read_csv(out / "bulletin_levels.csv", encoding="utf-8-sig")
    assert levels.iloc[-1]["完成率 Completion"] == pytest.approx(10 / 120)


def test_csv_and_xlsx_hold_the_same_tables(tmp_path: Path) -> None:
    layers = sample_layers()
    xlsx = openpyxl.load_workbook(write_report(layers, out=tmp_path / "r.xlsx", as_of=APRIL))
    folder = write_report(layers, out=tmp_path / "csv", as_of=APRIL, png=False)
    assert not any(p.suffix == ".png" for p in folder.iterdir())
    for sheet in report_sheets(layers, as_of=APRIL):
        csv = pd.read_csv(folder / f"{sheet.key}.csv", encoding="utf-8-sig")
        assert list(csv.columns) == list(sheet.frame.columns)
        assert len(csv) == len(rows(xlsx, sheet.title)) == len(sheet.frame)


def test_png_fallback_without_cjk_font(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import landquota.outputs.report_charts as report_charts

    monkeypatch.setattr(report_charts, "_cjk_family", lambda: None)
    with pytest.warns(UserWarning, match="no CJK font"):
        out = write_report(sample_layers(), out=tmp_path / "csv", as_of=APRIL)
    for name in CHART_FILES:
        assert (out / name).read_bytes()[:4] == b"\x89PNG"


def test_a_cjk_font_is_installed() -> None:
    # scripts/setup-system installs fonts-noto-cjk; charts need it for Chinese labels
    from landquota.outputs.report_charts import _cjk_family

    assert _cjk_family() is not None


# --- run selection -----------------------------------------------------------------------------
def _runs(*spec: tuple[str, str, str]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run_id": [s[0] for s in spec],
            "status": [s[1] for s in spec],
            "created_at": pd.to_datetime([s[2] for s in spec], utc=True),
        }
    )


@pytest.mark.parametrize(
    ("runs", "expected"),
    [
        # the latest committed run wins over a later draft
        (_runs(("A", "committed", "2014-05-01"), ("B", "draft", "2014-05-02")), "A"),
        (_runs(("A", "committed", "2014-05-01"), ("C", "committed", "2014-05-03")), "C"),
        # no committed run: the latest draft; reverted runs are never chosen
        (_runs(("A", "reverted", "2014-05-05"), ("B", "draft", "2014-05-02")), "B"),
        (_runs(("A", "reverted", "2014-05-05")), None),
        # same time: the larger id
        (_runs(("A", "draft", "2014-05-01"), ("B", "draft", "2014-05-01")), "B"),
    ],
)
def test_select_run(runs: pd.DataFrame, expected: str | None) -> None:
    assert select_run(runs, None) == expected


def test_select_run_without_runs_table() -> None:
    one = pd.DataFrame({"run_id": ["R1", "R1"]})
    assert select_run(None, one) == "R1"
    assert select_run(None, None) is None
    with pytest.raises(ParameterError, match="several runs"):
        select_run(None, pd.DataFrame({"run_id": ["R1", "R2"]}))
    with pytest.raises(ParameterError, match=r"run_id=.R9.*R1"):
        select_run(None, one, "R9")
    assert select_run(None, one, "R1") == "R1"


def test_report_of_an_unknown_run(tmp_path: Path) -> None:
    with pytest.raises(ParameterError, match="'nope'"):
        write_report(sample_layers(), out=tmp_path / "r.xlsx", as_of=APRIL, run_id="nope")


# --- inputs ---------------------------------------------------------------------------------
def test_empty_workspace_gives_empty_sheets_that_say_so(tmp_path: Path) -> None:
    path = write_report({}, out=tmp_path / "empty.xlsx", as_of=APRIL)
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == list(SHEETS.values())
    assert rows(wb, SHEETS["bulletin"]) == []
    notes = [c.value for c in wb[SHEETS["idle"]]["A"] if isinstance(c.value, str)]
    assert any("no stock land" in n for n in notes)
    ledger = rows(wb, SHEETS["ledger"])
    assert [r["期末 Closing (m² / kg)"] for r in ledger] == [0, 0, 0, 0, 0]


def test_layers_without_rows(tmp_path: Path) -> None:
    layers = {name: frame.iloc[:0] for name, frame in sample_layers().items()}
    path = write_report(layers, out=tmp_path / "none.xlsx", as_of=APRIL, png=True)
    wb = openpyxl.load_workbook(path)
    assert rows(wb, SHEETS["bulletin"]) == [] and rows(wb, SHEETS["idle"]) == []
    total = rows(wb, SHEETS["levels"])[-1]
    assert total["项目数 Projects"] == 0 and total["是否滞后 Lagging"] == "否 no"


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"out": "r.txt"}, ParameterError, "suffix"),
        ({"out": "r.csv", "fmt": "csv"}, ParameterError, "folder"),
        ({"out": "r", "fmt": "xlsx"}, ParameterError, r"\.xlsx"),
        ({"out": "r.xlsx", "fmt": "pdf"}, ParameterError, "'pdf'"),
        ({"out": "r.xlsx", "as_of": "soon"}, ParameterError, "as_of='soon'"),
        ({"out": "r.xlsx", "period_start": date(2014, 5, 1)}, ParameterError, "period_start"),
        ({"out": "missing/r.xlsx"}, ParameterError, "does not exist"),
        ({"out": "r.xlsx", "layers": {"quota": pd.DataFrame()}}, ParameterError, "'quota'"),
        ({"out": "r.xlsx", "layers": {"projects": [1, 2]}}, ParameterError, "projects"),
        ({"out": "r.xlsx", "layers": [("projects", None)]}, ParameterError, "mapping"),
        (
            {"out": "r.xlsx", "layers": {"stock_land": pd.DataFrame({"stock_id": ["S1"]})}},
            DataError,
            "stock_land",
        ),
    ],
)
def test_bad_arguments(
    tmp_path: Path, kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    kw: dict[str, Any] = {"as_of": APRIL, **kwargs}
    layers = kw.pop("layers", sample_layers())
    kw["out"] = tmp_path / kw["out"]
    with pytest.raises(error, match=match):
        write_report(layers, **kw)
    assert not any(p.suffix == ".xlsx" for p in tmp_path.rglob("*"))


def test_overwrite_replaces_the_file(tmp_path: Path) -> None:
    out = tmp_path / "r.xlsx"
    out.write_bytes(b"old")
    write_report(sample_layers(), out=out, as_of=APRIL)
    with zipfile.ZipFile(io.BytesIO(out.read_bytes())) as z:
        assert "xl/workbook.xml" in z.namelist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.xlsx"]  # no temporary left
