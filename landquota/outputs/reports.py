"""Reports for the land bureau: one XLSX workbook (or one CSV per sheet) and two charts.

:func:`report_sheets` turns workspace frames into the report's tables, with
Chinese headers and English beside them and every area in m², ha and mu
(1 ha = 10,000 m² = 15 mu exactly); :func:`write_report` writes them. The
figures come from the modules that own them: allocation results (the
``allocations`` layer of one run), the quota-ledger statement
(:func:`landquota.rules.ledger.statement`), the idle-land review
(:func:`landquota.rules.stock.idle_review`), approved-but-unsupplied cohorts
(:func:`landquota.rules.stock.unsupplied_cohorts`), the linkage review
(:func:`landquota.rules.linkage.linkage_review`) and the key-project investment
bulletin (:func:`landquota.rules.bulletin.investment_bulletin`, R17).

Output is deterministic: the same inputs give byte-identical files. Workbook
properties and every zip entry carry the report date (``as_of``, midnight)
instead of the time of writing, and PNGs carry no software stamp. See
``docs/reports.md``.
"""

from __future__ import annotations

import io
import math
import os
import tempfile
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from landquota._xlsx import normalise_xlsx as _normalise_xlsx
from landquota.errors import DataError, ParameterError
from landquota.labels import (
    ACCEPTANCE_LABELS,
    APPROVAL_LABELS,
    CAUSE_LABELS,
    DISPOSAL_METHOD_LABELS,
    DISPOSAL_STATUS_LABELS,
    IDLE_RULE_LABELS,
    LEVEL_LABELS,
    OUTCOME_LABELS,
    PLANNED_USE_LABELS,
    POOL_LABELS,
    PROJECT_STATUS_LABELS,
    REASON_LABELS,
    STOCK_STATUS_LABELS,
    label,
    label_map,
    reason_label,
)
from landquota.outputs.symbology import CHART_COLOURS, CJK_FONT
from landquota.rules.areas import m2_to_ha, m2_to_mu
from landquota.rules.bulletin import Bulletin, investment_bulletin
from landquota.rules.ledger import AREA_POOLS, statement
from landquota.store.chain import head_digest
from landquota.store.schema import CRS_EPSG, LEVELS, POOLS, layer

__all__ = [
    "CHART_FILES",
    "HIGHLIGHT_FILL",
    "REPORT_LAYERS",
    "ReportSheet",
    "report_sheets",
    "select_run",
    "write_report",
]

#: Workspace layers a report reads (pass them to :func:`write_report` by these names).
#: ``parcels`` is only used under linkage construction plots; a caller may pass
#: just the patches within their bounding box.
REPORT_LAYERS: tuple[str, ...] = (
    "projects",
    "quota_ledger",
    "stock_land",
    "linkage_areas",
    "linkage_plots",
    "parcels",
    "allocation_runs",
    "allocations",
    "ledger_chain",  # only its head is shown (issue 12): the digest to file with the report
)

Fmt = Literal["xlsx", "csv"]

# --- labels shown in reports (codes are stored as English tokens) ---------------------------
_YES_NO = ("是 yes", "否 no")
_LEVEL = label_map(LEVEL_LABELS)
_OUTCOME = label_map(OUTCOME_LABELS)
_APPROVAL = label_map(APPROVAL_LABELS)
_STOCK_STATUS = label_map(STOCK_STATUS_LABELS)
_IDLE_RULE = label_map(IDLE_RULE_LABELS)
_CAUSE = label_map(CAUSE_LABELS)
# A parcel without a disposal (method or case ``none``) shows an empty cell, not a label.
_DISPOSAL = {**label_map(DISPOSAL_METHOD_LABELS), "none": ""}
_CASE = {**label_map(DISPOSAL_STATUS_LABELS), "none": ""}
_ACCEPTANCE = label_map(ACCEPTANCE_LABELS)
_PLANNED_USE = label_map(PLANNED_USE_LABELS)
_PROJECT_STATUS = label_map(PROJECT_STATUS_LABELS)


def _pool_names() -> dict[str, tuple[str, str, str]]:
    """Chinese/English pool names, from :data:`landquota.labels.POOL_LABELS` (the one source)."""
    return dict(POOL_LABELS)


# --- number formats (Excel) per column kind -------------------------------------------------
_NUMBER_FORMATS: dict[str, str] = {
    "m2": "#,##0.00",
    "ha": "#,##0.0000",
    "mu": "#,##0.00",
    "kg": "#,##0.00",
    "native": "#,##0.00",
    "yuan": "#,##0",
    "pct": "0.0%",
    "int": "0",
    "date": "yyyy-mm-dd",
    "real": "0.00",
}
#: Light red fill of lagging projects, overdue linkage areas and idle parcels due for reclamation.
HIGHLIGHT_FILL = "F8D7DA"
_HEADER_FILL = "D9E1F2"
_TOTAL_FILL = "EDEDED"


@dataclass(frozen=True)
class ReportSheet:
    """One table of the report.

    Attributes
    ----------
    key : str
        File stem of the sheet's CSV (``allocation`` → ``allocation.csv``).
    title : str
        Worksheet name, Chinese and English (at most 31 characters).
    frame : pandas.DataFrame
        The table as shown: Chinese/English headers, codes replaced by their
        names, booleans as ``是 yes`` / ``否 no``.
    kinds : tuple of str
        Per column, how to format it: ``text``, ``int``, ``m2``, ``ha``, ``mu``,
        ``kg``, ``native`` (m² or kg), ``yuan``, ``pct``, ``date``, ``real``, or
        ``mixed`` (per row, from ``row_kinds``).
    highlight : tuple of bool
        Per row, whether it is highlighted (lagging project, overdue area …).
    totals : tuple of bool
        Per row, whether it is a total row (shown bold on grey).
    row_kinds : tuple of str
        Per row, the format of ``mixed`` columns (the summary sheet).
    note : str
        What the sheet shows, or why it is empty; printed under the table in
        the XLSX.
    """

    key: str
    title: str
    frame: pd.DataFrame
    kinds: tuple[str, ...]
    highlight: tuple[bool, ...] = ()
    totals: tuple[bool, ...] = ()
    row_kinds: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True)
class _C:
    """A column of a report table: source column, Chinese and English header, kind."""

    src: str
    zh: str
    en: str
    kind: str = "text"
    labels: Mapping[str, str] | None = None


@dataclass
class _Table:
    frame: pd.DataFrame
    kinds: list[str] = field(default_factory=list)


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NaT or v is pd.NA:
        return True
    if isinstance(v, float):
        return math.isnan(v)
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _labelled(values: pd.Series, labels: Mapping[str, str]) -> pd.Series:
    return pd.Series(
        [None if _is_missing(v) else labels.get(str(v), str(v)) for v in values],
        index=values.index,
        dtype="object",
    )


def _yes_no(values: pd.Series) -> pd.Series:
    return pd.Series(
        [None if _is_missing(v) else _YES_NO[0] if bool(v) else _YES_NO[1] for v in values],
        index=values.index,
        dtype="object",
    )


def _reasons(values: pd.Series) -> pd.Series:
    out: list[str | None] = []
    for v in values:
        codes = [] if _is_missing(v) else [c.strip() for c in str(v).split(",") if c.strip()]
        out.append(
            "; ".join(
                f"{reason_label(c, lang='zh')} {c}" if c in REASON_LABELS else c for c in codes
            )
            or None
        )
    return pd.Series(out, index=values.index, dtype="object")


def _table(df: pd.DataFrame, cols: Sequence[_C]) -> _Table:
    """Build a display table from *df*; an ``area`` column becomes m², ha and mu."""
    src = df.reset_index(drop=True)
    data: dict[str, Any] = {}
    kinds: list[str] = []
    for c in cols:
        values = (
            src[c.src]
            if c.src in src.columns
            else pd.Series([np.nan] * len(src), index=src.index, dtype="object")
        )
        head = f"{c.zh} {c.en}"
        if c.kind == "area":
            m2 = np.asarray(pd.to_numeric(values, errors="coerce"), dtype=np.float64)
            data[f"{head} (m²)"] = m2
            data[f"{head} (公顷 ha)"] = m2_to_ha(m2)
            data[f"{head} (亩 mu)"] = m2_to_mu(m2)
            kinds += ["m2", "ha", "mu"]
            continue
        if c.labels is not None:
            values = _labelled(values, c.labels)
        elif c.kind == "bool":
            values = _yes_no(values)
        elif c.kind == "date":
            values = pd.to_datetime(values, errors="coerce")
        elif c.kind == "int":
            values = pd.to_numeric(values, errors="coerce").astype("Int64")
        elif c.kind not in ("text", "mixed"):
            values = pd.to_numeric(values, errors="coerce").astype("float64")
        data[head] = values.to_numpy()
        kinds.append("text" if c.kind == "bool" or c.labels is not None else c.kind)
    return _Table(pd.DataFrame(data, index=pd.RangeIndex(len(src))), kinds)


def _frame(layers: Mapping[str, pd.DataFrame], name: str) -> pd.DataFrame | None:
    """Return layer *name* from *layers*, or None when absent; refuse non-frames."""
    df = layers.get(name)
    if df is None:
        return None
    if not isinstance(df, pd.DataFrame):
        raise ParameterError(
            f"layers[{name!r}] is a {type(df).__name__}; pass the layer as a (Geo)DataFrame, "
            f"e.g. ws.read_layer({name!r})"
        )
    return df


def _gdf(df: pd.DataFrame, name: str) -> gpd.GeoDataFrame:
    """Return *df* as a GeoDataFrame, or raise a DataError naming the layer."""
    if isinstance(df, gpd.GeoDataFrame):
        return df
    raise DataError(
        f"layers[{name!r}] is a {type(df).__name__} without geometry; pass the layer as "
        f"ws.read_layer({name!r}) returns it (a GeoDataFrame)"
    )


def _empty_gdf(columns: Sequence[str]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {c: pd.Series(dtype="object") for c in columns},
        geometry=gpd.GeoSeries([], crs=f"EPSG:{CRS_EPSG}"),
        crs=f"EPSG:{CRS_EPSG}",
    )


# --- run selection ----------------------------------------------------------------------------
def select_run(
    runs: pd.DataFrame | None, allocations: pd.DataFrame | None, run_id: str | None = None
) -> str | None:
    """Choose the allocation run a report shows.

    Parameters
    ----------
    runs : pandas.DataFrame or None
        The ``allocation_runs`` table.
    allocations : pandas.DataFrame or None
        The ``allocations`` table.
    run_id : str, optional
        The run asked for; it must appear in either table.

    Returns
    -------
    str or None
        *run_id* when given; else the latest committed run (by ``created_at``,
        then ``run_id``), else the latest draft; reverted runs are never chosen.
        Without a runs table, the only run in ``allocations``. ``None`` when
        there is no run.

    Raises
    ------
    ParameterError
        *run_id* is unknown, or several runs are in ``allocations`` and there is
        no runs table to choose the latest from.
    """
    known: set[str] = set()
    for df in (runs, allocations):
        if df is not None and "run_id" in df.columns:
            known |= {str(v) for v in df["run_id"].dropna()}
    if run_id is not None:
        if str(run_id) not in known:
            listed = ", ".join(sorted(known)[-10:]) or "none"
            raise ParameterError(
                f"run_id={run_id!r} is not a run of this workspace; known runs: {listed} "
                "(`landquota allocate` makes one)"
            )
        return str(run_id)
    if runs is not None and len(runs) and {"run_id", "status"} <= set(runs.columns):
        r = pd.DataFrame(runs)[["run_id", "status"]].copy()
        r["created_at"] = (
            pd.to_datetime(runs["created_at"], utc=True, errors="coerce")
            if "created_at" in runs.columns
            else pd.NaT
        )
        for status in ("committed", "draft"):
            c = r[r["status"] == status]
            if len(c):
                c = c.sort_values(["created_at", "run_id"], na_position="first", kind="stable")
                return str(c["run_id"].iloc[-1])
        return None
    ids = sorted(
        {str(v) for v in allocations["run_id"].dropna()}
        if allocations is not None and "run_id" in allocations.columns
        else set()
    )
    if len(ids) > 1:
        raise ParameterError(
            f"allocations hold several runs ({', '.join(ids[-10:])}) and no allocation_runs "
            "table was given to pick the latest; pass run_id"
        )
    return ids[0] if ids else None


# --- the sheets -------------------------------------------------------------------------------
def _sheet(
    key: str,
    title: str,
    t: _Table,
    *,
    note: str = "",
    highlight: Sequence[bool] | None = None,
    totals: Sequence[bool] | None = None,
    row_kinds: Sequence[str] | None = None,
) -> ReportSheet:
    n = len(t.frame)
    return ReportSheet(
        key=key,
        title=title,
        frame=t.frame,
        kinds=tuple(t.kinds),
        highlight=tuple(bool(x) for x in highlight) if highlight is not None else (False,) * n,
        totals=tuple(bool(x) for x in totals) if totals is not None else (False,) * n,
        row_kinds=tuple(row_kinds) if row_kinds is not None else ("text",) * n,
        note=note,
    )


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


@dataclass(frozen=True)
class _Report:
    sheets: list[ReportSheet]
    ledger: pd.DataFrame
    bulletin: Bulletin | None


def _as_date(value: Any, name: str) -> date:
    if isinstance(value, bool) or value is None:
        raise ParameterError(f"{name}={value!r} is not a date; give e.g. date(2014, 4, 30)")
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"{name}={value!r} is not a date; give e.g. date(2014, 4, 30)"
        ) from exc
    if pd.isna(ts):
        raise ParameterError(f"{name}={value!r} is not a date; give e.g. date(2014, 4, 30)")
    return date(ts.year, ts.month, ts.day)


def _build(
    layers: Mapping[str, pd.DataFrame],
    *,
    as_of: date,
    run_id: str | None,
    period_start: date | None,
) -> _Report:
    if not isinstance(layers, Mapping):
        raise ParameterError(
            f"layers must be a mapping of layer name to frame, not {type(layers).__name__}; "
            f"e.g. {{name: ws.read_layer(name) for name in REPORT_LAYERS}}"
        )
    unknown = sorted(set(layers) - set(REPORT_LAYERS) - set(_layer_names()))
    if unknown:
        raise ParameterError(
            f"layers has unknown name(s) {unknown}; a report reads {', '.join(REPORT_LAYERS)}"
        )
    day = _as_date(as_of, "as_of")
    start = date(day.year, 1, 1) if period_start is None else _as_date(period_start, "period_start")
    if start > day:
        raise ParameterError(
            f"period_start={start.isoformat()!r} is after as_of={day.isoformat()!r}; the ledger "
            "period runs from period_start to as_of"
        )

    def get(name: str) -> pd.DataFrame | None:
        return _frame(layers, name)

    runs, allocations, projects = get("allocation_runs"), get("allocations"), get("projects")
    run = select_run(runs, allocations, run_id)
    stock = get("stock_land")
    alloc_sheet = _allocation_sheet(allocations, projects, run)
    ledger_sheet, st = _ledger_sheet(get("quota_ledger"), start, day)
    idle_sheet, idle = _idle_sheet(stock, day)
    cohort_sheet, rate = _cohort_sheet(stock, day)
    link_sheet, link = _linkage_sheet(
        get("linkage_areas"), get("linkage_plots"), get("parcels"), day
    )
    bull_sheet, level_sheet, b = _bulletin_sheets(projects, day)
    chain = get("ledger_chain")
    summary = _summary_sheet(
        as_of=day,
        start=start,
        run=run,
        runs=runs,
        b=b,
        idle=idle,
        rate=rate,
        linkage=link,
        head=None if chain is None else head_digest(chain),
    )
    sheets = [
        summary,
        bull_sheet,
        level_sheet,
        alloc_sheet,
        ledger_sheet,
        idle_sheet,
        cohort_sheet,
        link_sheet,
    ]
    return _Report(sheets=sheets, ledger=st, bulletin=b)


def _layer_names() -> tuple[str, ...]:
    """Names of every workspace layer (a report ignores those it does not read)."""
    from landquota.store.schema import LAYERS

    return tuple(LAYERS)


def report_sheets(
    layers: Mapping[str, pd.DataFrame],
    *,
    as_of: date,
    run_id: str | None = None,
    period_start: date | None = None,
) -> list[ReportSheet]:
    """Build the report's tables without writing them.

    Parameters and errors are those of :func:`write_report`.

    Returns
    -------
    list of ReportSheet
        Summary, bulletin per project, bulletin per level, allocation results,
        ledger statement, idle land, unsupplied cohorts, linkage areas.
    """
    return _build(layers, as_of=as_of, run_id=run_id, period_start=period_start).sheets


# --- writing ----------------------------------------------------------------------------------
def _cell_value(v: Any, kind: str) -> Any:
    if _is_missing(v):
        return None
    if kind == "date":
        ts = pd.Timestamp(v)
        return date(ts.year, ts.month, ts.day)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, pd.Timestamp):
        return date(v.year, v.month, v.day)
    return v


def _display_width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _excel_widths(sheet: ReportSheet) -> list[float]:
    widths = []
    for j, col in enumerate(sheet.frame.columns):
        head = max(_display_width(part) for part in str(col).split(" ", 1))
        cells = [
            _display_width(f"{v:,.2f}" if isinstance(v, float) else str(v))
            for v in sheet.frame.iloc[:, j].head(200)
            if not _is_missing(v)
        ]
        w = max([head + 2, *(c + 2 for c in cells)])
        widths.append(float(min(max(w, 10), 48)))
    return widths


def _font(*, bold: bool = False, italic: bool = False) -> Any:
    """Every cell in the CJK sans-serif font: LibreOffice/Excel fall back to a serif otherwise."""
    from openpyxl.styles import Font

    return Font(name=CJK_FONT, bold=bold, italic=italic)


def _print_setup(ws: Any, title: str, *, one_page: bool = False) -> None:
    """A4 landscape, every column on the page, header row on every page, page numbers.

    Fit to width (any number of pages tall) keeps a table from splitting into column
    strips; the header row repeats on each page (print titles); the page header names the
    sheet, the footer numbers the pages. *one_page* fits the whole sheet on one page (the
    charts sheet: a chart is never cut at a page edge).
    """
    ws.page_setup.orientation = "landscape"
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 1 if one_page else 0
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    ws.page_margins.top = ws.page_margins.bottom = 0.6
    ws.page_margins.header = ws.page_margins.footer = 0.25
    if not one_page:
        ws.print_title_rows = "1:1"
    font = f"{CJK_FONT},Regular"
    ws.oddHeader.center.text = title
    ws.oddHeader.center.font = font
    ws.oddHeader.center.size = 10
    ws.oddFooter.center.text = "第 &[Page] 页 / 共 &[Pages] 页  Page &[Page] of &[Pages]"
    ws.oddFooter.center.font = font
    ws.oddFooter.center.size = 9


def _write_sheet(wb: Any, sheet: ReportSheet) -> None:
    from openpyxl.styles import Alignment, PatternFill
    from openpyxl.utils import get_column_letter

    ws = wb.create_sheet(sheet.title)
    header_fill = PatternFill("solid", fgColor=_HEADER_FILL)
    hl_fill = PatternFill("solid", fgColor=HIGHLIGHT_FILL)
    total_fill = PatternFill("solid", fgColor=_TOTAL_FILL)
    bold, plain = _font(bold=True), _font()
    ncol = len(sheet.frame.columns)
    for j, col in enumerate(sheet.frame.columns, start=1):
        c = ws.cell(row=1, column=j, value=str(col))
        c.font = bold
        c.fill = header_fill
        c.alignment = Alignment(wrap_text=True, vertical="center")
    values = sheet.frame.to_numpy(dtype=object)
    for i in range(len(values)):
        row = i + 2
        for j in range(ncol):
            kind = sheet.kinds[j]
            if kind == "mixed":
                kind = sheet.row_kinds[i]
            cell = ws.cell(row=row, column=j + 1, value=_cell_value(values[i, j], kind))
            fmt = _NUMBER_FORMATS.get(kind)
            if fmt is not None and cell.value is not None and not isinstance(cell.value, str):
                cell.number_format = fmt
            cell.font = plain
            if sheet.totals[i]:
                cell.font = bold
                cell.fill = total_fill
            if sheet.highlight[i]:
                cell.fill = hl_fill
    for j, w in enumerate(_excel_widths(sheet), start=1):
        ws.column_dimensions[get_column_letter(j)].width = w
    ws.row_dimensions[1].height = 45
    ws.freeze_panes = "A2" if ncol < 3 else "C2"
    if len(values) and sheet.key != "summary":
        ws.auto_filter.ref = f"A1:{get_column_letter(ncol)}{len(values) + 1}"
    if sheet.note:
        ws.cell(row=len(values) + 3, column=1, value=sheet.note).font = _font(italic=True)
    _print_setup(ws, sheet.title)


def _chart_data(rep: _Report) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the chart data: closing balance (ha) per area pool; progress per level and in all."""
    names = _pool_names()
    st = rep.ledger[rep.ledger["pool"].isin(AREA_POOLS)]
    pools = pd.DataFrame(
        {
            "pool": [names[p][0] for p in st["pool"]],
            "pool_en": [names[p][1] for p in st["pool"]],
            "closing_ha": m2_to_ha(st["closing"].to_numpy(dtype="float64")),
        }
    )
    b = rep.bulletin
    if b is None:
        prog = pd.DataFrame(columns=["level", "level_en", "completion", "time_progress"])
    else:
        prog = pd.DataFrame(
            {
                "level": [label(LEVEL_LABELS, v, lang="zh") for v in b.levels["level"]] + ["全部"],
                "level_en": [label(LEVEL_LABELS, v, lang="en") for v in b.levels["level"]]
                + ["all"],
                "completion": [*b.levels["completion"].astype("float64"), b.completion],
                "time_progress": [b.time_progress] * (len(b.levels) + 1),
            }
        )
    return pools, prog


def _write_charts(wb: Any, rep: _Report) -> None:
    from openpyxl.chart import BarChart, Reference

    pools, prog = _chart_data(rep)
    ws = wb.create_sheet("图表 Charts")
    ws["A1"] = "指标池 Pool"
    ws["B1"] = "期末余额 Closing (公顷 ha)"
    for i, (name, ha) in enumerate(zip(pools["pool"], pools["closing_ha"], strict=True), start=2):
        ws.cell(row=i, column=1, value=str(name)).font = _font()
        c = ws.cell(row=i, column=2, value=float(ha))
        c.number_format = _NUMBER_FORMATS["ha"]
        c.font = _font()
    ws["A1"].font = ws["B1"].font = _font(bold=True)
    ch = BarChart()
    ch.type = "col"
    ch.title = "指标池期末余额 Pool balances (公顷 ha)"
    ch.y_axis.title = "公顷 ha"
    ch.x_axis.delete = False
    ch.y_axis.delete = False
    ch.legend = None
    ch.add_data(Reference(ws, min_col=2, min_row=1, max_row=1 + len(pools)), titles_from_data=True)
    ch.set_categories(Reference(ws, min_col=1, min_row=2, max_row=1 + len(pools)))
    ch.width, ch.height = 18, 9
    ch.txPr = _chart_text()
    ch.series[0].graphicalProperties.solidFill = CHART_COLOURS["pool"].lstrip("#")
    ws.add_chart(ch, "E1")

    top = 21
    ws.cell(row=top, column=1, value="项目级别 Level").font = _font(bold=True)
    ws.cell(row=top, column=2, value="完成率 Completion").font = _font(bold=True)
    ws.cell(row=top, column=3, value="时间进度 Time progress").font = _font(bold=True)
    for i, r in enumerate(prog.to_dict("records"), start=top + 1):
        ws.cell(row=i, column=1, value=f"{r['level']} {r['level_en']}").font = _font()
        for j, col in ((2, "completion"), (3, "time_progress")):
            c = ws.cell(row=i, column=j, value=_cell_value(r[col], "pct"))
            c.number_format = _NUMBER_FORMATS["pct"]
            c.font = _font()
    if len(prog):
        pc = BarChart()
        pc.type = "col"
        pc.grouping = "clustered"
        pc.title = "投资完成率与时间进度 Completion against time progress"
        pc.y_axis.number_format = "0%"
        pc.y_axis.scaling.min = 0
        pc.x_axis.delete = False
        pc.y_axis.delete = False
        data = Reference(ws, min_col=2, max_col=3, min_row=top, max_row=top + len(prog))
        pc.add_data(data, titles_from_data=True)
        pc.set_categories(Reference(ws, min_col=1, min_row=top + 1, max_row=top + len(prog)))
        pc.width, pc.height = 18, 9
        pc.txPr = _chart_text()
        for series, key in zip(pc.series, ("on_track", "time_progress"), strict=True):
            series.graphicalProperties.solidFill = CHART_COLOURS[key].lstrip("#")
        ws.add_chart(pc, f"E{top}")
    ws.column_dimensions["A"].width = 26
    ws.column_dimensions["B"].width = 22
    ws.column_dimensions["C"].width = 22
    _print_setup(ws, "图表 Charts", one_page=True)


def _chart_text() -> Any:
    """Chart text (titles, axes, legend) in the CJK sans-serif font, 9 pt."""
    from openpyxl.chart.text import RichText
    from openpyxl.drawing.text import CharacterProperties, Font, Paragraph, ParagraphProperties

    face = Font(typeface=CJK_FONT)
    props = CharacterProperties(latin=face, ea=face, cs=face, sz=900)
    return RichText(p=[Paragraph(pPr=ParagraphProperties(defRPr=props), endParaRPr=props)])


def _stamp(as_of: date) -> datetime:
    # ZIP dates hold the years 1980-2107 only; outside them, the nearest end of that range
    if as_of.year > 2107:
        return datetime(2107, 12, 31)
    return datetime(max(as_of.year, 1980), as_of.month, as_of.day)


def _atomic_write(path: Path, data: bytes) -> None:
    """Write *data* to *path* through a temporary file in the same folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _xlsx_bytes(rep: _Report, as_of: date) -> bytes:
    from openpyxl import Workbook

    stamp = _stamp(as_of)
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in rep.sheets:
        _write_sheet(wb, sheet)
    _write_charts(wb, rep)
    wb.properties.creator = "landquota"
    wb.properties.lastModifiedBy = None
    wb.properties.title = f"重点项目、指标与存量土地报告 {as_of.isoformat()}"
    wb.properties.created = stamp
    wb.properties.modified = stamp
    buf = io.BytesIO()
    wb.save(buf)
    return _normalise_xlsx(buf.getvalue(), stamp)


def _csv_frame(sheet: ReportSheet) -> pd.DataFrame:
    df = sheet.frame.copy()
    for j, col in enumerate(df.columns):
        if sheet.kinds[j] == "date":
            df[col] = [
                None if _is_missing(v) else pd.Timestamp(v).date().isoformat() for v in df[col]
            ]
        elif sheet.kinds[j] == "mixed":
            df[col] = [
                None if _is_missing(v) else v.isoformat() if isinstance(v, date) else v
                for v in df[col]
            ]
    return df


# --- PNG charts (matplotlib) ---------------------------------------------------------------------
_CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Noto Serif CJK SC",
)


def _cjk_family() -> str | None:
    """Return the name of an installed font family with Chinese glyphs, or None."""
    from matplotlib import font_manager

    names = {f.name for f in font_manager.fontManager.ttflist}
    for fam in _CJK_FAMILIES:
        if fam in names:
            return fam
    for name in sorted(names):
        if "CJK" in name:
            return name
    return None


def _save_png(fig: Any, path: Path) -> None:
    buf = io.BytesIO()
    # no "Software" stamp: the same inputs give the same bytes on any matplotlib version
    fig.savefig(buf, format="png", metadata={"Software": None})
    _atomic_write(path, buf.getvalue())


def _png_charts(rep: _Report, paths: tuple[Path, Path]) -> None:
    """Render the two charts with matplotlib (Agg), Chinese labels in a CJK font.

    Without a CJK font the labels fall back to English (with a warning) rather
    than render as empty boxes.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import PercentFormatter

    family = _cjk_family()
    if family is None:
        warnings.warn(
            "no CJK font found for the chart PNGs; their labels are in English only. "
            "Install one (Debian: apt-get install fonts-noto-cjk) and clear matplotlib's "
            "font cache (~/.cache/matplotlib) to get Chinese labels.",
            UserWarning,
            stacklevel=3,
        )
    zh = family is not None

    def label(zh_text: str, en_text: str) -> str:
        return f"{zh_text} {en_text}" if zh else en_text

    pools, prog = _chart_data(rep)
    rc: dict[str, Any] = {
        "font.family": "sans-serif",
        "font.sans-serif": [*([family] if family else []), "DejaVu Sans"],
        "axes.unicode_minus": False,
        "svg.hashsalt": "landquota",
    }
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]
        fig = Figure(figsize=(8, 4.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        cats = [
            f"{a}\n{b}" if zh else b for a, b in zip(pools["pool"], pools["pool_en"], strict=True)
        ]
        ax.bar(range(len(pools)), pools["closing_ha"], color=CHART_COLOURS["pool"])
        ax.set_xticks(range(len(pools)), cats, fontsize=8)
        for x, v in enumerate(pools["closing_ha"]):
            ax.annotate(f"{v:,.2f}", (x, v), ha="center", va="bottom", fontsize=8)
        ax.set_ylabel(label("公顷", "ha"))
        ax.set_title(label("指标池期末余额", "Pool balances (ha)"))
        fig.tight_layout()
        _save_png(fig, paths[0])

        fig = Figure(figsize=(8, 4.5), dpi=100)
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        xs = np.arange(len(prog))
        comp = prog["completion"].astype("float64").fillna(0.0).to_numpy()
        tp = float(prog["time_progress"].iloc[0]) if len(prog) else 0.0
        # R17: red where completion < time progress (lagging), green otherwise
        colours = [CHART_COLOURS["behind"] if v < tp else CHART_COLOURS["on_track"] for v in comp]
        ax.bar(xs, comp, width=0.6, color=colours, label=label("完成率", "completion"))
        ax.axhline(
            tp,
            color=CHART_COLOURS["time_progress"],
            linestyle="--",
            linewidth=1.5,
            label=label("时间进度", "time progress") + f" {100 * tp:.1f}%",
        )
        for x, v in zip(xs.tolist(), comp.tolist(), strict=True):
            ax.annotate(f"{100 * v:.1f}%", (x, v), ha="center", va="bottom", fontsize=9)
        ax.set_xticks(
            xs,
            [
                f"{a}\n{b}" if zh else b
                for a, b in zip(prog["level"], prog["level_en"], strict=True)
            ],
        )
        ax.set_ylim(0, max([tp, *comp, 0.01]) * 1.15)
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
        ax.set_title(label("投资完成率与时间进度", "Completion against time progress"))
        ax.legend(loc="upper left")
        fig.tight_layout()
        _save_png(fig, paths[1])


def _resolve_format(out: Path, fmt: str | None) -> Fmt:
    if fmt is None:
        if out.suffix.lower() == ".xlsx":
            return "xlsx"
        if out.suffix == "" or out.is_dir():
            return "csv"
        raise ParameterError(
            f"out={str(out)!r}: cannot tell the format from the suffix {out.suffix!r}; "
            "name an .xlsx file, or a folder for CSV, or pass fmt='xlsx' or fmt='csv'"
        )
    if fmt not in ("xlsx", "csv"):
        raise ParameterError(f"fmt={fmt!r} is not a report format; allowed: 'xlsx', 'csv'")
    if fmt == "xlsx" and out.suffix.lower() != ".xlsx":
        raise ParameterError(
            f"out={str(out)!r} does not end in .xlsx; Excel refuses workbooks with another "
            "suffix. Name the file e.g. report.xlsx"
        )
    if fmt == "csv" and out.suffix.lower() in (".csv", ".xlsx"):
        raise ParameterError(
            f"out={str(out)!r}: CSV reports are one file per sheet in a folder; "
            "give a folder name such as report_csv"
        )
    return "csv" if fmt == "csv" else "xlsx"


#: CSV/PNG file names of the two charts.
CHART_FILES = ("pool_balances.png", "progress_by_level.png")


def write_report(
    layers: Mapping[str, pd.DataFrame],
    *,
    out: Path | str,
    as_of: date,
    run_id: str | None = None,
    fmt: Fmt | None = None,
    period_start: date | None = None,
    png: bool | None = None,
) -> Path:
    r"""Write the bureau's report: an XLSX workbook, or one CSV per sheet in a folder.

    Parameters
    ----------
    layers : mapping of str to pandas.DataFrame
        Workspace layers by name (see :data:`REPORT_LAYERS`), as
        ``Workspace.read_layer`` returns them. A layer left out gives an empty
        sheet that says so.
    out : pathlib.Path or str
        The ``.xlsx`` file, or the folder for CSV (created if needed; files of
        the same names are replaced).
    as_of : datetime.date
        Report date: ledger closing date, idle-land and linkage review date,
        bulletin month (time progress = its month ÷ 12, R17). Also the
        timestamp written into the workbook, so that output is reproducible.
    run_id : str, optional
        Allocation run to show; by default the latest committed run, else the
        latest draft (:func:`select_run`).
    fmt : {'xlsx', 'csv'}, optional
        Output format; by default from ``out`` (``.xlsx`` → workbook, no
        suffix → CSV folder).
    period_start : datetime.date, optional
        First day of the ledger statement period; default 1 January of the
        year of ``as_of``.
    png : bool, optional
        Also render the two charts as PNGs with matplotlib (CJK font). Default:
        yes for CSV (``pool_balances.png``, ``progress_by_level.png`` in the
        folder), no for XLSX, which holds the same charts natively; with
        ``png=True`` they are written beside it as ``<stem>_pool_balances.png``
        and ``<stem>_progress_by_level.png``.

    Returns
    -------
    pathlib.Path
        The workbook written, or the CSV folder.

    Raises
    ------
    ParameterError
        Unknown run, bad date, format or output name.
    DataError
        A layer breaks the contract (raised by the module that reads it).

    Notes
    -----
    CSV files are UTF-8 with a byte-order mark, so that Excel opens the Chinese
    headers correctly; lines end in ``\n``. Dates are ISO dates; areas, money
    and fractions are unrounded numbers (the XLSX formats them for display).
    """
    path = Path(out)
    kind = _resolve_format(path, fmt)
    rep = _build(layers, as_of=as_of, run_id=run_id, period_start=period_start)
    day = _as_date(as_of, "as_of")
    want_png = (kind == "csv") if png is None else bool(png)
    if kind == "xlsx":
        if not path.parent.exists():
            raise ParameterError(
                f"out={str(path)!r}: folder {str(path.parent)!r} does not exist; create it first"
            )
        _atomic_write(path, _xlsx_bytes(rep, day))
        charts = (
            path.with_name(f"{path.stem}_{CHART_FILES[0]}"),
            path.with_name(f"{path.stem}_{CHART_FILES[1]}"),
        )
    else:
        path.mkdir(parents=True, exist_ok=True)
        for sheet in rep.sheets:
            text = _csv_frame(sheet).to_csv(index=False, lineterminator="\n")
            _atomic_write(path / f"{sheet.key}.csv", text.encode("utf-8-sig"))
        charts = (path / CHART_FILES[0], path / CHART_FILES[1])
    if want_png:
        _png_charts(rep, charts)
    return path
