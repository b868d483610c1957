"""The monthly bulletin as a printable A4 PDF with its charts (一月一通报; R17, issue 14).

Rendered with matplotlib's own PDF backend (no further dependency): text and
tables are real PDF text, so a reader can search and copy them (``pdftotext``
extracts the title and the percentages). Chinese is set in a CJK font found on
the machine (Debian: ``fonts-noto-cjk``), embedded as Type 3 glyphs — the
Noto CJK files are OpenType/CFF collections that matplotlib cannot embed as
TrueType without readers complaining, and Type 3 keeps the text extractable.

Pages
-----
1. Title, the month's figures (completed against plan, completion against
   time progress, R17), investment progress against time progress by level,
   and the month-by-month line of each level against the time-progress line.
2. The stage funnel (how many projects stand at each approval stage), the
   stage durations against the one-third target, and the town ranking.
3. The overdue lists: projects lagging N months running, approvals past their
   target, joint-meeting decisions past their deadline with the stage still
   open, visits overdue under the half-month rule.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landquota.labels import LEVEL_LABELS
from landquota.outputs.monthly import MonthlyReview
from landquota.rules.pipeline import STAGE_LABELS

__all__ = ["A4_INCHES", "write_bulletin_pdf"]

#: A4 portrait, inches.
A4_INCHES = (8.27, 11.69)

_TP_COLOUR = "#c0392b"
_LEVEL_COLOURS = {
    "national": "#1f4e79",
    "provincial": "#2e86c1",
    "city": "#48c9b0",
    "county": "#f5b041",
    "all": "#333333",
}


def _pct(v: float) -> str:
    return "—" if v is None or np.isnan(v) else f"{100 * v:.1f} %"


def _cjk() -> str | None:
    from landquota.outputs.report_charts import _cjk_family

    return _cjk_family()


def _table(ax: Any, df: pd.DataFrame, *, fontsize: float = 7.5) -> None:
    """Draw *df* at the top of *ax*, as many rows as fit (0.2 inch each); say how many were cut."""
    ax.axis("off")
    if not len(df):
        ax.text(0.0, 0.9, "（无 none）", fontsize=fontsize + 1, transform=ax.transAxes)
        return
    fig = ax.get_figure()
    height_in = ax.get_position().height * fig.get_figheight()
    fits = max(1, int(height_in / 0.2) - 1)
    cut = len(df) - fits if len(df) > fits else 0
    if cut:
        df = df.head(fits - 1)
    cells = [
        ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in row]
        for row in df.itertuples(index=False)
    ]
    if cut:
        cells.append(
            [f"…… 另 {cut + 1} 项 {cut + 1} more (see the XLSX)"] + [""] * (df.shape[1] - 1)
        )
    h = min(1.0, (len(cells) + 1) * 0.2 / height_in)
    t = ax.table(
        cellText=cells,
        colLabels=[str(c) for c in df.columns],
        cellLoc="left",
        bbox=(0.0, 1.0 - h, 1.0, h),
    )
    t.auto_set_font_size(False)
    t.set_fontsize(fontsize)
    for (row, _), cell in t.get_celld().items():
        cell.set_linewidth(0.3)
        if row == 0:
            cell.set_facecolor("#e8eef4")


def _page1(fig: Any, r: MonthlyReview) -> None:
    b = r.bulletin
    base = b.base
    fig.text(0.5, 0.955, r.title, ha="center", fontsize=13, weight="bold")
    fig.text(
        0.5, 0.93, f"截至 as of {r.as_of.isoformat()}（一月一通报 R17）", ha="center", fontsize=9
    )
    if r.chain_head:
        # the ledger's chain head, filed with the printed bulletin (issue 12)
        fig.text(0.5, 0.015, f"台账链头 ledger chain head {r.chain_head}", ha="center", fontsize=7)
    verdict = "滞后 lagging" if base.lagging else "未滞后 on schedule"
    lines = [
        f"全县 {base.n_projects} 个重点项目年度计划投资 {b.annual_plan_yuan:,.0f} 元，"
        f"累计完成 {b.completed_yuan:,.0f} 元。",
        f"All {base.n_projects} key projects: completed {b.completed_yuan:,.0f} of "
        f"{b.annual_plan_yuan:,.0f} yuan.",
        f"完成率 completion {_pct(b.completion)}，时间进度 time progress {_pct(b.time_progress)}"
        f"（{base.month}/12）— {verdict}。",
        f"本月完成 invested this month {b.completed_yuan - b.previous_completed_yuan:,.0f} 元；"
        f"滞后项目 lagging projects {base.n_lagging}/{base.n_projects}；"
        f"连续{r.running}个月以上滞后 {len(r.lagging)}。",
    ]
    for i, line in enumerate(lines):
        fig.text(0.08, 0.895 - i * 0.022, line, fontsize=9)

    ax = fig.add_axes((0.1, 0.47, 0.82, 0.28))
    lv = b.levels
    x = np.arange(len(lv))
    ax.bar(
        x,
        lv["completion"].fillna(0.0) * 100,
        color=[_LEVEL_COLOURS[g] for g in lv["group"]],
        width=0.55,
        label="投资完成率 investment completion",
    )
    ax.axhline(
        100 * b.time_progress,
        color=_TP_COLOUR,
        lw=1.5,
        ls="--",
        label=f"时间进度 time progress {_pct(b.time_progress)}",
    )
    for xi, v in zip(x, lv["completion"].fillna(0.0), strict=True):
        ax.text(xi, 100 * v + 0.8, _pct(float(v)), ha="center", fontsize=8)
    ax.set_xticks(
        x, [f"{LEVEL_LABELS[g][0]}\n{LEVEL_LABELS[g][1]}" for g in lv["group"]], fontsize=8
    )
    ax.set_ylabel("%")
    ax.set_ylim(0, max(100 * b.time_progress, float(lv["completion"].max() or 0) * 100) * 1.25 + 1)
    ax.set_title("分级投资进度与时间进度 Investment vs time progress by level", fontsize=10)
    ax.legend(fontsize=7.5, loc="upper right")

    ax2 = fig.add_axes((0.1, 0.08, 0.82, 0.3))
    h = b.history
    months = sorted(h["month"].unique())
    xm = np.arange(1, len(months) + 1)
    for g, part in h.groupby("level", sort=False):
        part = part.set_index("month").reindex(months)
        label = "全部 all" if g == "all" else f"{LEVEL_LABELS[str(g)][0]} {g}"
        ax2.plot(
            xm,
            part["completion"] * 100,
            marker="o",
            ms=3,
            lw=2.2 if g == "all" else 1.2,
            color=_LEVEL_COLOURS[str(g)],
            label=label,
        )
    ax2.plot(
        xm,
        [100 * m / 12 for m in xm],
        color=_TP_COLOUR,
        ls="--",
        lw=1.5,
        label="时间进度 time progress",
    )
    ax2.set_xticks(xm, months, fontsize=8)
    ax2.set_ylabel("%")
    ax2.set_title("逐月累计完成率 Completion month by month", fontsize=10)
    ax2.legend(fontsize=7, ncol=3, loc="upper left")


def _page2(fig: Any, r: MonthlyReview) -> None:
    fig.text(
        0.5,
        0.955,
        "项目用地报批进度 Land-approval pipeline",
        ha="center",
        fontsize=12,
        weight="bold",
    )
    ax = fig.add_axes((0.4, 0.68, 0.52, 0.24))  # room for the long stage names
    f = r.funnel.iloc[::-1]
    y = np.arange(len(f))
    ax.barh(y, f["projects"], color="#5d8aa8")
    for yi, v in zip(y, f["projects"], strict=True):
        ax.text(v + 0.3, yi, str(int(v)), va="center", fontsize=8)
    ax.set_yticks(y, [f"{STAGE_LABELS[s][0]} {STAGE_LABELS[s][1]}" for s in f["stage"]], fontsize=8)
    ax.set_title(f"阶段漏斗 Stage funnel ({r.as_of.isoformat()})", fontsize=10)
    ax.set_xlabel("项目数 projects", fontsize=8)

    ax2 = fig.add_axes((0.06, 0.38, 0.88, 0.24))
    fig.text(
        0.06,
        0.63,
        "审批时限（联审会议前后，天）Stage days before/after the joint meetings; "
        "target: one third less",
        fontsize=9,
    )
    if r.durations is None:
        ax2.axis("off")
        ax2.text(0, 0.9, "尚无联审会议 no joint meeting recorded", fontsize=8)
    else:
        d = r.durations
        show = pd.DataFrame(
            {
                "阶段 stage": [STAGE_LABELS[s][0] for s in d["stage"]],
                "前 n": d["n_before"],
                "前中位 median": d["median_before"].round(1),
                "前P90": d["p90_before"].round(1),
                "后 n": d["n_after"],
                "后中位 median": d["median_after"].round(1),
                "后P90": d["p90_after"].round(1),
                "目标 target": d["target_days"].round(1),
                "达标 met": ["是 yes" if m else "否 no" for m in d["target_met"]],
            }
        )
        _table(ax2, show)
    ax3 = fig.add_axes((0.06, 0.03, 0.88, 0.3))
    fig.text(0.06, 0.34, "乡镇排名（按完成率）Towns ranked by completion", fontsize=9)
    t = r.bulletin.towns
    _table(
        ax3,
        pd.DataFrame(
            {
                "名次 rank": t["rank"],
                "乡镇 town": t["group"],
                "项目 projects": t["projects"],
                "计划 plan (万元)": (t["annual_plan_yuan"] / 1e4).round(0).astype("int64"),
                "完成 done (万元)": (t["completed_yuan"] / 1e4).round(0).astype("int64"),
                "完成率": [_pct(float(v)) for v in t["completion"]],
                "滞后项目 lagging": t["lagging_projects"],
            }
        ),
    )


def _page3(fig: Any, r: MonthlyReview) -> None:
    fig.text(0.5, 0.955, "督办清单 Overdue lists", ha="center", fontsize=12, weight="bold")
    fig.text(
        0.06,
        0.92,
        f"连续{r.running}个月及以上滞后 Lagging {r.running}+ months running ({len(r.lagging)})",
        fontsize=9,
    )
    lag = r.lagging
    _table(
        fig.add_axes((0.06, 0.69, 0.88, 0.22)),
        pd.DataFrame(
            {
                "项目 project": lag["project_id"],
                "名称 name": lag["name"].str.slice(0, 16),
                "完成率": [_pct(float(v)) for v in lag["completion"]],
                "连续月数 months": lag["lagging_months"],
                "县领导 leader": lag["county_leader"],
                "问题 problem": lag["problems"].fillna(""),
            }
        ),
        fontsize=7,
    )
    oa = r.overdue_approvals
    fig.text(0.06, 0.66, f"超期审批 Approvals past target ({len(r.overdue_approvals)})", fontsize=9)
    _table(
        fig.add_axes((0.06, 0.51, 0.88, 0.14)),
        pd.DataFrame(
            {
                "项目 project": oa["project_id"],
                "名称 name": oa["name"].str.slice(0, 16),
                "阶段 stage": oa["stage_zh"],
                "已用天数 days": oa["days_in_stage"],
                "目标 target": oa["target_days"].round(0),
            }
        ),
        fontsize=7,
    )
    od = r.overdue_decisions
    fig.text(
        0.06,
        0.48,
        f"联审决定超期未办结 Meeting decisions past their deadline ({len(od)})",
        fontsize=9,
    )
    _table(
        fig.add_axes((0.06, 0.33, 0.88, 0.14)),
        pd.DataFrame(
            {
                "决定 decision": od["decision_id"],
                "项目 project": od["project_id"],
                "名称 name": od["name"].fillna("").str.slice(0, 16),
                "阶段 stage": od["stage_zh"],
                "时限 deadline": [pd.Timestamp(v).date().isoformat() for v in od["deadline"]],
                "超期天数 days over": od["days_overdue"],
            }
        ),
        fontsize=7,
    )
    ov = r.overdue_visits
    fig.text(
        0.06,
        0.30,
        f"超期未走访（半月规则）Visits overdue, half-month rule ({len(r.overdue_visits)})",
        fontsize=9,
    )
    _table(
        fig.add_axes((0.06, 0.02, 0.88, 0.27)),
        pd.DataFrame(
            {
                "县领导 leader": ov["leader"],
                "项目 project": ov["project_id"],
                "名称 name": ov["name"].str.slice(0, 16),
                "上次走访 last visit": [
                    "从未 never" if pd.isna(v) else pd.Timestamp(v).date().isoformat()
                    for v in ov["last_visit"]
                ],
                "超期天数 days over": ov["days_overdue"].map(
                    lambda v: "—" if pd.isna(v) else str(int(v))
                ),
            }
        ),
        fontsize=7,
    )


def write_bulletin_pdf(r: MonthlyReview, out: str | Path) -> Path:
    """Print the month's bulletin to an A4 PDF (three pages); return its path."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    family = _cjk()
    if family is None:
        warnings.warn(
            "no CJK font found: the bulletin's Chinese text will show as boxes. Install one "
            "(Debian: apt-get install fonts-noto-cjk) and clear ~/.cache/matplotlib",
            UserWarning,
            stacklevel=2,
        )
    rc: dict[str, Any] = {
        "font.family": "sans-serif",
        "font.sans-serif": [*([family] if family else []), "DejaVu Sans"],
        "axes.unicode_minus": False,
        "pdf.fonttype": 3,  # see the module notes: extractable text from the CJK collections
    }
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    meta = {"Title": r.title, "Creator": "landquota", "Producer": "landquota", "CreationDate": None}
    with matplotlib.rc_context(rc), PdfPages(buf, metadata=meta) as pdf:  # type: ignore[arg-type]
        for draw in (_page1, _page2, _page3):
            fig = Figure(figsize=A4_INCHES)
            draw(fig, r)
            pdf.savefig(fig)
    path.write_bytes(buf.getvalue())
    return path
