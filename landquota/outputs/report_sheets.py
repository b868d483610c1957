"""The tables of the bureau's report, one function per sheet.

Allocation results of one run, the quota-ledger statement, idle land (R10–R12),
approved-but-unsupplied cohorts (R9), linkage areas (R5, R7, R8), the key-project
investment bulletin per project and per level (R17) and the summary. Each takes the
workspace frames and returns a :class:`~landquota.outputs.report_base.ReportSheet`; the
figures come from the rule modules that own them.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from landquota.errors import DataError
from landquota.outputs.report_base import (
    _ACCEPTANCE,
    _APPROVAL,
    _C,
    _CASE,
    _CAUSE,
    _DISPOSAL,
    _IDLE_RULE,
    _LEVEL,
    _OUTCOME,
    _PLANNED_USE,
    _PROJECT_STATUS,
    _STOCK_STATUS,
    _YES_NO,
    ReportSheet,
    _empty_gdf,
    _gdf,
    _pool_names,
    _reasons,
    _sheet,
    _Table,
    _table,
)
from landquota.rules.areas import m2_to_ha, m2_to_mu
from landquota.rules.bulletin import Bulletin, investment_bulletin
from landquota.rules.ledger import AREA_POOLS, statement
from landquota.store.schema import LEVELS, POOLS, layer

_ALLOCATION_COLS = (
    _C("project_id", "项目编号", "Project id"),
    _C("name", "项目名称", "Project name"),
    _C("level", "项目级别", "Level", labels=_LEVEL),
    _C("outcome", "分配结果", "Outcome", labels=_OUTCOME),
    _C("fraction", "安排比例", "Fraction funded", "pct"),
    _C("need_new_quota_m2", "新增指标需求", "New-quota need", "area"),
    _C("new_quota_m2", "安排计划指标", "Plan quota given", "area"),
    _C("linkage_quota_m2", "安排挂钩节余指标", "Linkage surplus given", "area"),
    _C("need_comp_area_m2", "补充耕地需求", "Cultivated comp. need", "area"),
    _C("comp_area_m2", "安排补充耕地", "Cultivated comp. given", "area"),
    _C("need_comp_paddy_m2", "水田需求", "Paddy comp. need", "area"),
    _C("comp_paddy_m2", "安排水田指标", "Paddy comp. given", "area"),
    _C("need_comp_grain_kg", "粮食产能需求", "Grain need (kg/yr)", "kg"),
    _C("comp_grain_kg", "安排粮食产能", "Grain given (kg/yr)", "kg"),
    _C("stock_id", "存量地块", "Stock parcel"),
    _C("approval_level", "审批级别", "Approval level", labels=_APPROVAL),
    _C("reasons", "原因", "Reasons"),
)


def _allocation_sheet(
    allocations: pd.DataFrame | None, projects: pd.DataFrame | None, run: str | None
) -> ReportSheet:
    cols = [c for c in layer("allocations").column_names]
    if allocations is None or run is None:
        df = pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
        note = "无分配方案 no allocation run" if run is None else ""
    else:
        df = pd.DataFrame(allocations)
        if "run_id" in df.columns:
            df = df[df["run_id"].astype("str") == run]
        note = f"分配方案 run {run}"
        if df.empty:
            note += ": 无分配记录 no allocation rows"
    df = df.copy()
    if projects is not None and len(df) and "project_id" in projects.columns:
        p = pd.DataFrame(projects.drop(columns="geometry", errors="ignore"))
        keep = [c for c in ("project_id", "name", "level") if c in p.columns]
        df = df.drop(columns=[c for c in ("name", "level") if c in df.columns])
        df = df.merge(p[keep], on="project_id", how="left")
    for c in ("name", "level"):
        if c not in df.columns:
            df[c] = pd.Series(np.nan, index=df.index, dtype="object")
    if "reasons" in df.columns:
        df["reasons"] = _reasons(df["reasons"])
    if len(df):
        # R18 order: level first, then project id
        order = df["level"].map({lv: i for i, lv in enumerate(LEVELS)}).fillna(len(LEVELS))
        df = df.assign(_o=order).sort_values(["_o", "project_id"], kind="stable").drop(columns="_o")
    t = _table(df, _ALLOCATION_COLS)
    outcome = df["outcome"].astype("str").tolist() if "outcome" in df.columns else []
    hl = [o in ("blocked", "unfunded") for o in outcome]
    return _sheet("allocation", "分配结果 Allocation", t, note=note, highlight=hl)


def _ledger_sheet(
    ledger: pd.DataFrame | None, start: date, end: date
) -> tuple[ReportSheet, pd.DataFrame]:
    names = _pool_names()
    if ledger is None or ledger.empty:
        st = pd.DataFrame({"pool": list(POOLS)})
        for col in ("opening", "credits", "debits", "closing"):
            st[col] = 0.0
        note_extra = "; 台账无记录 the ledger has no entries"
    else:
        st = statement(ledger, start=start, end=end)
        note_extra = ""
    area = st["pool"].isin(AREA_POOLS)
    out = pd.DataFrame(
        {
            "指标池 Pool": [f"{names[p][0]} {names[p][1]}" for p in st["pool"]],
            "代码 Code": st["pool"].astype("str").to_numpy(),
            "单位 Unit": ["m²" if a else "kg/年 kg/yr" for a in area],
        }
    )
    kinds = ["text", "text", "text"]
    heads = {
        "opening": "期初 Opening",
        "credits": "本期增加 Credits",
        "debits": "本期减少 Debits",
        "closing": "期末 Closing",
    }
    for col, head in heads.items():
        out[f"{head} (m² / kg)"] = st[col].to_numpy(dtype="float64")
        kinds.append("native")
    for col, head in heads.items():
        v = st[col].where(area).to_numpy(dtype="float64")
        out[f"{head} (公顷 ha)"] = m2_to_ha(v)
        out[f"{head} (亩 mu)"] = m2_to_mu(v)
        kinds += ["ha", "mu"]
    note = (
        f"期间 period {start.isoformat()} – {end.isoformat()}; 期末 = 期初 + 增加 − 减少 "
        f"closing = opening + credits − debits{note_extra}"
    )
    return _sheet("ledger", "指标台账 Ledger", _Table(out, kinds), note=note), st


_IDLE_ORDER = {"idle": 0, "reclaimed": 1, "swapped": 2, "closed": 3, "not_idle": 4}
_IDLE_COLS = (
    _C("stock_id", "地块编号", "Stock id"),
    _C("town", "乡镇", "Town"),
    _C("planned_use", "规划用途", "Planned use", labels=_PLANNED_USE),
    _C("area_m2", "面积", "Area", "area"),
    _C("status", "状态", "Status", labels=_STOCK_STATUS),
    _C("idle_rule", "闲置情形", "Idle rule (R10)", labels=_IDLE_RULE),
    _C("cause", "闲置原因", "Cause (R11)", labels=_CAUSE),
    _C("idle_since", "闲置起算日", "Idle clock from", "date"),
    _C("days_idle", "闲置天数", "Days idle", "int"),
    _C("idle_years", "闲置整年数", "Whole years idle", "int"),
    _C("land_price_yuan", "土地价款", "Land price (yuan)", "yuan"),
    _C("fee_due_yuan", "应缴闲置费", "Idle fee due (yuan, R11)", "yuan"),
    _C("reclaim_deadline", "无偿收回期限", "Free reclamation from (R11)", "date"),
    _C("reclaim_due", "应无偿收回", "Reclamation due", "bool"),
    _C("disposal_method", "处置方式", "Disposal", labels=_DISPOSAL),
    _C("disposal_date", "处置日期", "Disposal date", "date"),
    _C("case_state", "处置案件", "Case (R12)", labels=_CASE),
)


def _idle_sheet(stock: pd.DataFrame | None, as_of: date) -> tuple[ReportSheet, pd.DataFrame | None]:
    from landquota.rules.stock import idle_review

    if stock is None or stock.empty:
        t = _table(pd.DataFrame(), _IDLE_COLS)
        return _sheet("idle_land", "闲置土地 Idle land", t, note="无存量土地 no stock land"), None
    review = idle_review(_gdf(stock, "stock_land"), as_of=as_of)
    price = pd.DataFrame(stock)[["stock_id"]].copy()
    price["land_price_yuan"] = (
        pd.to_numeric(stock["land_price_yuan"], errors="coerce").to_numpy()
        if "land_price_yuan" in stock.columns
        else np.nan
    )
    r = pd.DataFrame(review.drop(columns="geometry")).merge(price, on="stock_id", how="left")
    keep = (r["kind"] == "supplied") & (
        r["status"].isin(["idle", "reclaimed", "swapped", "closed"]) | (r["case_state"] == "open")
    )
    r = r[keep].copy()
    r["_o"] = r["status"].map(_IDLE_ORDER).fillna(9)
    r = r.sort_values(["_o", "stock_id"], kind="stable").drop(columns="_o")
    hl = (r["status"] == "idle") & r["reclaim_due"].astype(bool)
    note = (
        f"截至 as of {as_of.isoformat()}: 闲置 idle, 已收回 reclaimed, 已置换 swapped, 已结案 "
        "closed parcels and open cases; 企业原因闲置满一年征收土地价款20%闲置费，满两年无偿收回 "
        "(R11: enterprise cause, fee 20 % of the land price; free reclamation after 2 years). "
        "Highlighted: free reclamation due."
    )
    sheet = _sheet(
        "idle_land", "闲置土地 Idle land", _table(r, _IDLE_COLS), note=note, highlight=hl.tolist()
    )
    return sheet, review


_COHORT_COLS = (
    _C("approval_year", "批准年份", "Approval year", "mixed"),
    _C("batches", "批次数", "Batches", "int"),
    _C("approved_m2", "批准面积", "Approved", "area"),
    _C("supplied_m2", "已供面积", "Supplied", "area"),
    _C("unsupplied_m2", "批而未供", "Unsupplied", "area"),
    _C("lapsed_m2", "其中批准失效", "of which lapsed (R9)", "area"),
    _C("supply_rate", "供地率", "Supply rate", "pct"),
    _C("in_rate_window", "计入近五年", "In 5-year window", "bool"),
)


def _cohort_sheet(stock: pd.DataFrame | None, as_of: date) -> tuple[ReportSheet, float]:
    from landquota.rules.stock import unsupplied_cohorts

    if stock is None or stock.empty:
        t = _table(pd.DataFrame(), _COHORT_COLS)
        sheet = _sheet("unsupplied", "批而未供 Unsupplied", t, note="无存量土地 no stock land")
        return sheet, float("nan")
    c = unsupplied_cohorts(_gdf(stock, "stock_land"), as_of=as_of)
    rate = float(c.attrs.get("five_year_supply_rate", float("nan")))
    win = c[c["in_rate_window"]]
    y0, y1 = as_of.year - 4, as_of.year
    total = {
        "approval_year": f"近五年合计 last 5 years ({y0}–{y1})",
        "batches": pd.NA,
        "approved_m2": float(win["approved_m2"].sum()),
        "supplied_m2": float(win["supplied_m2"].sum()),
        "unsupplied_m2": float(win["unsupplied_m2"].sum()),
        "lapsed_m2": float(win["lapsed_m2"].sum()),
        "supply_rate": rate,
        "in_rate_window": True,
    }
    rows = pd.DataFrame(c).astype({"approval_year": "object"})
    rows["approval_year"] = [int(v) for v in rows["approval_year"]]
    df = pd.concat([rows, pd.DataFrame([total])], ignore_index=True)
    n = len(df)
    note = (
        f"截至 as of {as_of.isoformat()}; 近五年供地率 = 已供 ÷ 批准 five-year supply rate = "
        f"supplied ÷ approved over the approval years {y0}–{y1}"
    )
    sheet = _sheet(
        "unsupplied",
        "批而未供 Unsupplied",
        _table(df, _COHORT_COLS),
        note=note,
        totals=[i == n - 1 for i in range(n)],
        row_kinds=["int"] * (n - 1) + ["text"],
    )
    return sheet, rate


_LINKAGE_COLS = (
    _C("linkage_id", "项目区编号", "Linkage id"),
    _C("name", "项目区名称", "Name"),
    _C("town", "乡镇", "Town"),
    _C("approval_date", "批准日期", "Approved", "date"),
    _C("acceptance", "验收", "Acceptance (R5)", labels=_ACCEPTANCE),
    _C("acceptance_date", "验收日期", "Acceptance date", "date"),
    _C("turnover_quota_m2", "周转指标", "Turnover quota", "area"),
    _C("demolition_m2", "拆旧复垦", "Reclaimed (demolition)", "area"),
    _C("construction_m2", "建新", "New construction", "area"),
    _C("reclaimed_cultivated_m2", "复垦耕地", "Cultivated reclaimed", "area"),
    _C("occupied_cultivated_m2", "建新占用耕地", "Cultivated occupied", "area"),
    _C("r7_ok", "R7达标", "R7 balance met", "bool"),
    _C("turnover_due_date", "周转指标归还期限", "Turnover due (R8)", "date"),
    _C("turnover_shortfall_m2", "未归还周转指标", "Turnover not returned", "area"),
    _C("overdue", "逾期", "Overdue (R8)", "bool"),
    _C("surplus_m2", "节余指标", "Surplus", "area"),
    _C("creditable", "节余可使用", "Surplus usable (R5)", "bool"),
)


def _linkage_sheet(
    areas: pd.DataFrame | None,
    plots: pd.DataFrame | None,
    parcels: pd.DataFrame | None,
    as_of: date,
) -> tuple[ReportSheet, pd.DataFrame | None]:
    from landquota.rules.linkage import linkage_review

    if areas is None or areas.empty:
        t = _table(pd.DataFrame(), _LINKAGE_COLS)
        note = "无增减挂钩项目区 no linkage areas"
        return _sheet("linkage", "增减挂钩 Linkage", t, note=note), None
    plots_g = (
        _empty_gdf(layer("linkage_plots").column_names)
        if plots is None
        else _gdf(plots, "linkage_plots")
    )
    parcels_g = (
        _empty_gdf(layer("parcels").column_names) if parcels is None else _gdf(parcels, "parcels")
    )
    caveat = ""
    try:
        review = linkage_review(areas, plots_g, parcels_g, as_of=as_of)
    except DataError as exc:
        # A plot off the survey layer should not sink the whole report: review it
        # anyway and say on the sheet that its occupied cultivated area is a lower bound.
        review = linkage_review(areas, plots_g, parcels_g, as_of=as_of, check_coverage=False)
        caveat = (
            " 注意 CAUTION: 建新地块未完全落在调查图斑上，占用耕地可能偏小 construction plots "
            f"lie partly off the survey patches, occupied cultivated area may be understated "
            f"(run `landquota validate`): {exc}"
        )
    hl = review["overdue"].astype(bool) | ~review["r7_ok"].astype(bool)
    note = (
        f"截至 as of {as_of.isoformat()}; R7 建新 ≤ 拆旧, 复垦耕地 ≥ 占用耕地; "
        "R8 周转指标三年内归还; R5 验收后节余方可使用. Highlighted: overdue or R7 not met." + caveat
    )
    sheet = _sheet(
        "linkage",
        "增减挂钩 Linkage",
        _table(review, _LINKAGE_COLS),
        note=note,
        highlight=hl.tolist(),
    )
    return sheet, review


_BULLETIN_COLS = (
    _C("project_id", "项目编号", "Project id"),
    _C("name", "项目名称", "Project name"),
    _C("level", "项目级别", "Level", labels=_LEVEL),
    _C("status", "项目状态", "Status", labels=_PROJECT_STATUS),
    _C("town", "乡镇", "Town"),
    _C("annual_plan_yuan", "年度计划投资", "Annual plan (yuan)", "yuan"),
    _C("completed_yuan", "已完成投资", "Completed (yuan)", "yuan"),
    _C("completion", "完成率", "Completion", "pct"),
    _C("time_progress", "时间进度", "Time progress", "pct"),
    _C("lag", "滞后幅度", "Lag", "pct"),
    _C("lagging", "是否滞后", "Lagging", "bool"),
    _C("county_leader", "挂钩县领导", "County leader"),
    _C("town_cadre", "镇干部", "Town cadre"),
    _C("dept_cadre", "部门干部", "Department cadre"),
)
_LEVEL_COLS = (
    _C("level", "项目级别", "Level", "mixed"),
    _C("projects", "项目数", "Projects", "int"),
    _C("lagging_projects", "滞后项目数", "Lagging projects", "int"),
    _C("annual_plan_yuan", "年度计划投资", "Annual plan (yuan)", "yuan"),
    _C("completed_yuan", "已完成投资", "Completed (yuan)", "yuan"),
    _C("completion", "完成率", "Completion", "pct"),
    _C("time_progress", "时间进度", "Time progress", "pct"),
    _C("lag", "滞后幅度", "Lag", "pct"),
    _C("lagging", "是否滞后", "Lagging", "bool"),
)
_PORTFOLIO = "全部项目 all projects"


def _bulletin_sheets(
    projects: pd.DataFrame | None, as_of: date
) -> tuple[ReportSheet, ReportSheet, Bulletin | None]:
    if projects is None:
        empty = _table(pd.DataFrame(), _BULLETIN_COLS)
        note = "无重点项目 no key projects"
        return (
            _sheet("bulletin", "项目通报 Bulletin", empty, note=note),
            _sheet(
                "bulletin_levels",
                "分级汇总 By level",
                _table(pd.DataFrame(), _LEVEL_COLS),
                note=note,
            ),
            None,
        )
    b = investment_bulletin(projects, as_of=as_of)
    note = (
        f"截至 as of {as_of.isoformat()}; 时间进度 time progress = {b.month}/12 (R17); "
        "完成率 = 已完成 ÷ 年度计划 completion = completed ÷ annual plan; 完成率低于时间进度为滞后 "
        "lagging when completion < time progress (highlighted)."
    )
    projects_sheet = _sheet(
        "bulletin",
        "项目通报 Bulletin",
        _table(b.projects, _BULLETIN_COLS),
        note=note,
        highlight=b.projects["lagging"].tolist(),
    )
    lv = pd.DataFrame(b.levels).astype({"level": "object"})
    lv["level"] = [_LEVEL[str(v)] for v in lv["level"]]
    total = {
        "level": _PORTFOLIO,
        "projects": b.n_projects,
        "lagging_projects": b.n_lagging,
        "annual_plan_yuan": b.annual_plan_yuan,
        "completed_yuan": b.completed_yuan,
        "completion": b.completion,
        "time_progress": b.time_progress,
        "lag": b.lag,
        "lagging": b.lagging,
    }
    df = pd.concat([lv, pd.DataFrame([total])], ignore_index=True)
    n = len(df)
    levels_sheet = _sheet(
        "bulletin_levels",
        "分级汇总 By level",
        _table(df, _LEVEL_COLS),
        note=note,
        highlight=df["lagging"].astype(bool).tolist(),
        totals=[i == n - 1 for i in range(n)],
    )
    return projects_sheet, levels_sheet, b


def _summary_sheet(
    *,
    as_of: date,
    start: date,
    run: str | None,
    runs: pd.DataFrame | None,
    b: Bulletin | None,
    idle: pd.DataFrame | None,
    rate: float,
    linkage: pd.DataFrame | None,
    head: str | None = None,
) -> ReportSheet:
    from landquota._version import __version__

    rows: list[tuple[str, Any, str, str]] = [
        ("报告日期 Report date", as_of, "date", ""),
        ("台账期间 Ledger period", f"{start.isoformat()} – {as_of.isoformat()}", "text", ""),
    ]
    run_note = ""
    if run is not None and runs is not None and "run_id" in runs.columns:
        r = runs[runs["run_id"].astype("str") == run]
        if len(r):
            parts = [f"{c}={r[c].iloc[0]}" for c in ("mode", "status") if c in r.columns]
            run_note = ", ".join(parts)
    rows.append(("分配方案 Allocation run", run or "—", "text", run_note))
    if b is not None:
        rows += [
            ("重点项目数 Key projects", b.n_projects, "int", ""),
            ("年度计划投资 Annual plan (yuan)", b.annual_plan_yuan, "yuan", ""),
            ("已完成投资 Completed (yuan)", b.completed_yuan, "yuan", ""),
            ("完成率 Completion", b.completion, "pct", "已完成 ÷ 年度计划 completed ÷ plan"),
            ("时间进度 Time progress", b.time_progress, "pct", f"{b.month}/12 (R17)"),
            (
                "是否滞后 Lagging",
                _YES_NO[0] if b.lagging else _YES_NO[1],
                "text",
                "完成率 < 时间进度 completion < time progress",
            ),
            ("滞后项目数 Lagging projects", b.n_lagging, "int", ""),
        ]
    if idle is not None:
        i = idle[idle["status"] == "idle"]
        rows += [
            ("闲置土地宗数 Idle parcels", len(i), "int", "R10"),
            ("闲置土地面积 Idle area (公顷 ha)", float(m2_to_ha(i["area_m2"].sum())), "ha", ""),
            (
                "应缴闲置费 Idle fees due (yuan)",
                float(i["fee_due_yuan"].fillna(0.0).sum()),
                "yuan",
                "R11",
            ),
        ]
    if not math.isnan(rate):
        rows.append(("近五年供地率 Five-year supply rate", rate, "pct", "批而未供 cohorts"))
    if linkage is not None:
        rows.append(
            ("逾期挂钩项目区 Overdue linkage areas", int(linkage["overdue"].sum()), "int", "R8")
        )
    if head is not None:
        rows.append(
            (
                "台账链头 Ledger chain head",
                head,
                "text",
                "file it; `landquota verify --head` proves a later ledger extends it",
            )
        )
    rows += [
        ("面积单位 Area units", "1 公顷 ha = 10,000 m² = 15 亩 mu", "text", ""),
        ("软件 Software", f"landquota {__version__}", "text", ""),
    ]
    df = pd.DataFrame(
        {
            "项目 Item": [r[0] for r in rows],
            "数值 Value": [r[1] for r in rows],
            "说明 Note": [r[3] for r in rows],
        }
    )
    t = _Table(df, ["text", "mixed", "text"])
    return _sheet(
        "summary",
        "概要 Summary",
        t,
        row_kinds=[r[2] for r in rows],
        note="重点项目、指标与存量土地报告 Key projects, quota and stock land report",
    )
