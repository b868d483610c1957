"""The report's XLSX sheets: cell values and number formats, column widths, fonts, printing.

Every cell is in the CJK sans-serif font; each sheet prints on A4 landscape, fitted to
the page width, with the header row repeated and the pages numbered.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from landquota.outputs.report_base import ReportSheet, _is_missing
from landquota.outputs.symbology import CJK_FONT

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
