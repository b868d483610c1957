"""The legend and popup text of the HTML map (:mod:`landquota.outputs.maps`).

Overlay names, the classes and colours of the legend (one definition in
:mod:`landquota.outputs.symbology`, shared with the QGIS styles and the report charts),
the Chinese/English labels of stored codes, and the rows of the popups with their
number and date formats. Pure text: no geometry and no folium here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from landquota import labels as lbl
from landquota.outputs import symbology as sym
from landquota.outputs.stage_map import StageInfo
from landquota.rules.pipeline import STAGE_LABELS

# --- display names (Chinese first, English beside) ---------------------------------

_OVERLAY_NAMES = {
    "county": "县界 County boundary",
    "towns": "乡镇界 Town boundaries",
    "parcels": "地类图斑 Land-use patches",
    "plan_zones": "建设用地管制分区 Plan control zones",
    **lbl.label_map(lbl.CONTROL_KIND_LABELS, capitalize=True),
    "stock_land": "存量土地 Stock land",
    "linkage": "增减挂钩 Linkage plots",
    "projects": "重点项目 Key projects",
    "project_stages": "重点项目报批阶段 Key projects by approval stage",
}

# Classes, colours and legend labels: one definition (landquota.outputs.symbology) for the
# map, the QGIS styles and project stored in the workspace, and the report charts.
_PATCH_CLASSES: dict[str, tuple[str, str]] = {
    key: (d.label, d.colour) for key, d in sym.LAND_DISPLAY.items()
}
_ZONES = {code: (s.label, str(s.fill)) for code, s in sym.ZONES.items()}
_LINES: dict[str, tuple[str, str, str | None, float]] = {
    # kind: (label, colour, fill colour, fill opacity)
    kind: (s.label, str(s.stroke), s.fill, s.fill_opacity if s.fill else 0.0)
    for kind, s in sym.CONTROL_LINES.items()
}
_STOCK_STATUS = {code: (s.label, str(s.fill)) for code, s in sym.STOCK_STATUSES.items()}
_COHORT_COLOURS = sym.STOCK_COHORT_COLOURS
_OUTCOMES = {code: (s.label, str(s.fill)) for code, s in sym.OUTCOMES.items()}

_LEVELS = lbl.label_map(lbl.LEVEL_LABELS)
_APPROVAL = lbl.label_map(lbl.APPROVAL_LABELS, capitalize=True)
_ROLES = lbl.label_map(lbl.PLOT_ROLE_LABELS, capitalize=True)
_ACCEPT = lbl.label_map(lbl.ACCEPTANCE_LABELS)
_CAUSE = lbl.label_map(lbl.CAUSE_LABELS)
_STOCK_KIND = lbl.label_map(lbl.STOCK_KIND_LABELS)
_DISPOSAL = lbl.label_map(lbl.DISPOSAL_METHOD_LABELS)

# Demand rows of the popup: column of the demand table -> label.
_DEMAND_ROWS = (
    ("site_m2", "场址面积 Site"),
    ("cultivated_m2", "耕地 Cultivated"),
    ("paddy_m2", "其中水田 of which paddy"),
    ("agricultural_m2", "农用地 Agricultural"),
    ("construction_m2", "建设用地 Construction"),
    ("unused_m2", "未利用地 Unused"),
    ("new_quota_m2", "需新增建设用地指标 New-quota need"),
    ("comp_area_m2", "需补充耕地 Compensation need: area"),
    ("comp_paddy_m2", "需补充水田 Compensation need: paddy"),
    ("comp_grain_kg", "需粮食产能 Compensation need: grain"),
)
# Allocation rows: column of the allocations table -> label naming the pool (ledger).
_ALLOC_ROWS = (
    ("new_quota_m2", "新增建设用地计划指标 Plan quota (new_construction)"),
    ("linkage_quota_m2", "增减挂钩节余指标 Linkage surplus (linkage_surplus)"),
    ("comp_area_m2", "补充耕地 Compensation area (comp_area)"),
    ("comp_paddy_m2", "补充水田 Compensation paddy (comp_paddy)"),
    ("comp_grain_kg", "粮食产能 Grain capacity (comp_grain)"),
)
_STAFF = (
    ("county_leader", "县领导 County leader"),
    ("town_cadre", "镇干部 Town cadre"),
    ("dept_cadre", "部门干部 Department cadre"),
)


# --- formatting -----------------------------------------------------------------


def _present(v: Any) -> bool:
    if v is None:
        return False
    try:
        return not bool(pd.isna(v))
    except (TypeError, ValueError):  # arrays and other containers count as present
        return True


def _fmt_m2(v: Any) -> str:
    """``12,345 m² (1.23 ha, 18.52 亩)``; 1 ha = 10,000 m² = 15 mu exactly."""
    if not _present(v):
        return "—"
    x = float(v)
    return f"{x:,.0f} m² ({x / 10_000:,.2f} ha, {x * 15 / 10_000:,.2f} 亩)"


def _fmt_kg(v: Any) -> str:
    return f"{float(v):,.0f} kg/年" if _present(v) else "—"


def _fmt_yuan(v: Any) -> str:
    return f"{float(v):,.0f} 元 yuan" if _present(v) else "—"


def _fmt_date(v: Any) -> str:
    return pd.Timestamp(v).date().isoformat() if _present(v) else "—"


def _text(v: Any) -> str:
    if not _present(v):
        return "—"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _use(v: Any) -> str:
    """Return a planned use in Chinese with English (``交通运输 transport``), or as stored."""
    return lbl.label(lbl.PLANNED_USE_LABELS, _text(v)) if _present(v) else "—"


def _reasons(v: Any) -> list[str]:
    if not _present(v):
        return []
    codes = [c.strip() for c in str(v).split(",") if c.strip()]
    return [lbl.reason_label(c) + (f" [{c}]" if c in lbl.REASON_LABELS else "") for c in codes]


# --- popups -------------------------------------------------------------------------


def _stage_rows(pid: str, stages: StageInfo) -> list[list[str]]:
    code = stages.current.get(pid, "none")
    days = stages.days.get(pid)
    now = STAGE_LABELS[code][0] + (f"（{days} 天 days）" if days is not None else "")
    return [["当前阶段 Current stage", now], ["报批历程 Stage history"], *stages.history.get(pid, [])]


def _project_popup(
    row: Mapping[Any, Any],
    outcome: str,
    a: Mapping[Any, Any] | None,
    d: Mapping[Any, Any] | None,
    stages: StageInfo | None = None,
) -> dict[str, Any]:
    rows: list[list[str]] = [
        ["编号 ID", _text(row["project_id"])],
        ["级别 Level", _LEVELS.get(str(row["level"]), _text(row["level"]))],
    ]
    for column, label, fmt in (
        ("town", "乡镇 Town", _text),
        ("planned_use", "用途 Planned use", _use),
    ):
        if _present(row.get(column)):
            rows.append([label, fmt(row[column])])
    result = _OUTCOMES[outcome][0]
    if a is not None and _present(a.get("fraction")) and outcome in ("funded", "partial"):
        result += f" ({float(a['fraction']):.0%})"
    rows.append(["分配结果 Outcome", result])
    level = a.get("approval_level") if a is not None else None
    if not _present(level) and d is not None:
        level = d.get("approval_level")
    rows.append(
        [
            "审批级别 Approval level (R14)",
            _APPROVAL.get(str(level), _text(level)) if _present(level) else "—",
        ]
    )
    rows.append(["用地需求 Demand"])
    if d is not None:
        for column, label in _DEMAND_ROWS:
            if column in d:
                fmt = _fmt_kg if column.endswith("_kg") else _fmt_m2
                rows.append([label, fmt(d[column])])
    elif _present(row.get("demand_m2")):
        rows.append(["用地需求 Land demand (site not fixed)", _fmt_m2(row["demand_m2"])])
    else:
        rows.append(["—", "未计算 not computed"])
    rows.append(["已安排 Allocated (pool / stock)"])
    if a is None:
        rows.append(["—", "尚未分配 not yet allocated"])
    else:
        for column, label in _ALLOC_ROWS:
            if column in a and _present(a[column]):
                fmt = _fmt_kg if column.endswith("_kg") else _fmt_m2
                rows.append([label, fmt(a[column])])
        if _present(a.get("stock_id")):
            rows.append(["存量地块 Stock parcel", _text(a["stock_id"])])
    reasons = _reasons(a.get("reasons") if a is not None else None)
    if not reasons and d is not None:
        reasons = _reasons(d.get("reasons"))
    if reasons:
        rows.append(["原因 Reasons"])
        rows.extend([["•", r] for r in reasons])
    if stages is not None:
        rows.extend(_stage_rows(str(row["project_id"]), stages))
    rows.append(["三级服务 Service staff"])
    for column, label in _STAFF:
        rows.append([label, _text(row.get(column))])
    return {"title": _text(row["name"]), "rows": rows}
