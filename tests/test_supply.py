"""Supply records of the land-market monitoring system feed idle-land review (issue 13 item 4).

The workbook is the system's export: a title row, then its Chinese columns. Five
supplies on five 100 m squares (≈ 1 ha each, EPSG:4547 near Yangshan). Reviewed
as of 2014-04-30, by hand (R10: idle when one full year has passed since the
agreed start without construction starting; "满一年" holds ON the anniversary;
R11: enterprise cause → fee 20 % of the land price, reclaimed at 2 years):

====  ============  ==============  ============  ========  ===========================================
row   电子监管号      约定开工         实际开工        闲置原因    verdict as of 2014-04-30
====  ============  ==============  ============  ========  ===========================================
A     …B00001       2012-03-01      –             企业原因    idle (not_started) since 2012-03-01: 2 full
                                                             years; fee 20 % × 500 万元 = 1,000,000 yuan;
                                                             reclaim deadline 2014-03-01, due
B     …B00002       2013-06-01      –             –         not idle: the anniversary 2014-06-01 is later
C     …B00003       2012-05-01      2012-06-15    –         not idle: construction started
D     …B00004       2013-04-30      –             政府原因    idle on the anniversary itself, 1 full year;
                                                             government cause: no fee, no reclamation
E     …B00005       2014-08-01      –             –         not yet supplied: contract signed 2014-05-10
====  ============  ==============  ============  ========  ===========================================
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import importdata as fx
import openpyxl
import pandas as pd
import pytest

from landquota.errors import ImportDataError
from landquota.intake.supply import import_supply
from landquota.rules.stock import idle_review

IDS = [f"4418232011B0000{i}" for i in range(1, 6)]
HEADER = ["序号", "电子监管号", "项目名称", "供地方式", "土地用途", "面积(公顷)", "成交价款（万元）",
          "合同签订日期", "合同约定开工时间", "实际开工时间", "合同约定竣工时间", "闲置原因"]
RECORDS = [
    [1, IDS[0], "阳山县某机械厂", "挂牌出让", "工业用地", 1.0, 500, datetime(2011, 12, 20),
     datetime(2012, 3, 1), None, datetime(2014, 3, 1), "企业原因"],
    [2, IDS[1], "阳山县某物流园", "挂牌出让", "仓储用地", 1.0, 200, "2013/3/15", "2013年6月1日", None,
     "2015-06-01", None],
    [3, IDS[2], "阳山县某小区", "拍卖出让", "住宅用地", 1.0, 800, "20120120", "2012-05-01", "2012-06-15",
     "2014-05-01", None],
    [4, IDS[3], "阳山县某学校", "划拨", "教育用地", 1.0, 300, "2013-01-10", "2013-04-30", None,
     "2015-04-30", "政府原因"],
    [5, IDS[4], "阳山县某酒店", "挂牌出让", "商服用地", 2.0, 600, "2014-05-10", "2014-08-01", None,
     "2016-08-01", None],
]


def workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["土地供应结果信息表（阳山县）"])  # the system's title row
    ws.append(HEADER)
    for r in RECORDS:
        ws.append(r)
    wb.save(path)
    return path


def boundaries(folder: Path) -> Path:
    """Supply boundaries (供地红线) keyed by 电子监管号, one per record."""
    gdf = gpd.GeoDataFrame({"电子监管号": IDS}, geometry=fx.squares(n=5), crs=4547)
    path = folder / "供地红线.gpkg"
    gdf.to_file(path)
    return path


def test_supply_workbook_feeds_idle_review(ws: Any, tmp_path: Path) -> None:
    rep = import_supply(workbook(tmp_path / "供地.xlsx"), ws, geometry=boundaries(tmp_path))
    assert rep.rows == 5
    assert rep.field_map["合同约定开工时间"] == "agreed_start_date"
    assert rep.field_map["成交价款（万元）"] == "land_price_yuan"
    assert {"项目名称", "供地方式", "合同约定竣工时间"} <= set(rep.not_stored)
    # E states 2 ha for a 1 ha boundary: warned, the geometry's area is used (R1)
    assert any("row 7" in w and "2 ha stated" in w for w in rep.warnings), rep.warnings
    stock = ws.read_layer("stock_land").sort_values("stock_id").reset_index(drop=True)
    assert stock.stock_id.tolist() == IDS and set(stock.kind) == {"supplied"}
    assert stock.land_price_yuan.tolist() == [5_000_000.0, 2_000_000.0, 8_000_000.0, 3_000_000.0, 6_000_000.0]
    assert stock.cause.tolist() == ["enterprise", "none", "none", "government", "none"]
    assert [str(d.date()) for d in stock.supply_date] == [
        "2011-12-20", "2013-03-15", "2012-01-20", "2013-01-10", "2014-05-10"]

    review = idle_review(stock, as_of=datetime(2014, 4, 30).date()).set_index("stock_id")
    assert review.status.tolist() == ["idle", "not_idle", "not_idle", "idle", "not_yet_supplied"]
    a, d = review.loc[IDS[0]], review.loc[IDS[3]]
    assert a.idle_rule == "not_started" and str(a.idle_since.date()) == "2012-03-01" and a.idle_years == 2
    assert a.fee_due_yuan == 1_000_000.0 and str(a.reclaim_deadline.date()) == "2014-03-01" and a.reclaim_due
    assert d.idle_rule == "not_started" and d.idle_years == 1 and d.fee_due_yuan == 0.0
    assert pd.isna(d.reclaim_deadline) and not d.reclaim_due
    # the day before D's anniversary it is not idle yet
    assert idle_review(stock, as_of=datetime(2014, 4, 29).date()).status.tolist()[3] == "not_idle"


def test_cli_idle_runs_on_the_records(tmp_path: Path) -> None:
    from landquota.cli import main
    from landquota.store.api import init_workspace

    db = tmp_path / "ws.gpkg"
    init_workspace(str(db)).close()
    assert main(["import-supply", str(workbook(tmp_path / "供地.xlsx")), "--db", str(db),
                 "--geometry", str(boundaries(tmp_path))]) == 0
    out = tmp_path / "idle.csv"
    assert main(["idle", "--db", str(db), "--as-of", "2014-04-30", "--out", str(out)]) == 0
    with open(out, encoding="utf-8-sig") as f:
        rows = {r["stock_id"]: r for r in csv.DictReader(f)}
    assert [rows[i]["status"] for i in IDS] == ["idle", "not_idle", "not_idle", "idle", "not_yet_supplied"]
    assert float(rows[IDS[0]]["fee_due_yuan"]) == 1_000_000.0


def test_records_join_to_the_parcels_and_keep_the_review(ws: Any, tmp_path: Path) -> None:
    from landquota.intake.importer import import_layer

    import_layer(fx.gbk_shapefile_without_cpg(tmp_path), ws, layer="parcels")
    # a stock row already reviewed: its cause and disposal case must survive the records
    reviewed = gpd.GeoDataFrame(
        {"stock_id": [IDS[1], "PW-2012-01"], "kind": ["supplied", "approved_unsupplied"],
         "cause": ["government", "none"], "disposal_status": ["open", "none"],
         "disposal_method": ["extension", "none"], "approval_date": [None, "2012-01-05"]},
        geometry=ws.read_layer("parcels").geometry.values[:2], crs=4490,
    )
    ws.write_layer("stock_land", reviewed)
    src = tmp_path / "供地.csv"
    with open(src, "w", encoding="gbk", newline="") as f:  # the system's CSV export, GBK
        w = csv.writer(f)
        w.writerow(["电子监管号", "宗地编号", "合同签订日期", "合同约定开工时间", "实际开工时间"])
        w.writerow([IDS[0], "4418230003", "2011-12-20", "2012-03-01", ""])
        w.writerow([IDS[1], "4418230004", "2013-03-15", "2013-06-01", ""])
    rep = import_supply(src, ws, geometry="parcels", key="宗地编号")
    assert rep.rows == 2 and rep.updated == 1 and rep.kept == 1
    stock = ws.read_layer("stock_land").set_index("stock_id")
    assert sorted(stock.index) == sorted([IDS[0], IDS[1], "PW-2012-01"])
    assert stock.loc[IDS[1], "cause"] == "government" and stock.loc[IDS[1], "disposal_method"] == "extension"
    assert stock.loc["PW-2012-01", "kind"] == "approved_unsupplied"
    parcels = ws.read_layer("parcels").set_index("parcel_id")
    assert stock.loc[IDS[0]].geometry.equals(parcels.loc["4418230003"].geometry)


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda r: r[1].__setitem__(8, "明年"), ["row 4", "'合同约定开工时间'", "'明年'", "not a date"]),
        (lambda r: r[2].__setitem__(1, IDS[0]), ["电子监管号", IDS[0], "rows 3 and 5"]),
        (lambda r: r[0].__setitem__(11, "天气原因"), ["row 3", "闲置原因", "政府原因, 企业原因"]),
        (lambda r: r[4].__setitem__(1, "4418232011B09999"), ["no geometry", "4418232011B09999", "row 7"]),
    ],
)
def test_bad_records_are_refused_naming_the_row(ws: Any, tmp_path: Path, change: Any, words: list[str]) -> None:
    records = [list(r) for r in RECORDS]
    change(records)
    wb = openpyxl.Workbook()
    sheet = wb.active
    sheet.append(["土地供应结果信息表（阳山县）"])
    sheet.append(HEADER)
    for r in records:
        sheet.append(r)
    path = tmp_path / "bad.xlsx"
    wb.save(path)
    with pytest.raises(ImportDataError) as info:
        import_supply(path, ws, geometry=boundaries(tmp_path))
    for w in words:
        assert w in str(info.value), (w, str(info.value))
    assert len(ws.read_layer("stock_land")) == 0
