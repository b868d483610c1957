"""The report's two charts: pool balances and investment progress by level (R17).

In the workbook as native Excel charts on their own sheet (:func:`_write_charts`), and as
PNGs rendered with matplotlib (:func:`_png_charts`), Chinese labels in a CJK font when one
is installed (English only, with a warning, when none is).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from landquota.labels import LEVEL_LABELS, label
from landquota.outputs.report_base import _atomic_write, _pool_names, _Report
from landquota.outputs.report_xlsx import _NUMBER_FORMATS, _cell_value, _font, _print_setup
from landquota.outputs.symbology import CHART_COLOURS, CJK_FONT
from landquota.rules.areas import m2_to_ha
from landquota.rules.ledger import AREA_POOLS


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
