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

This module holds the entry points (:func:`report_sheets`, :func:`write_report`,
:func:`select_run`), the workbook assembly and the CSV output; the tables are built in
:mod:`landquota.outputs.report_sheets`, written to XLSX by
:mod:`landquota.outputs.report_xlsx`, charted by :mod:`landquota.outputs.report_charts`,
on the types of :mod:`landquota.outputs.report_base`.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from landquota._xlsx import normalise_xlsx as _normalise_xlsx
from landquota.errors import ParameterError
from landquota.outputs.report_base import (
    ReportSheet,
    _atomic_write,
    _frame,
    _is_missing,
    _Report,
)
from landquota.outputs.report_charts import _png_charts, _write_charts
from landquota.outputs.report_sheets import (
    _allocation_sheet,
    _bulletin_sheets,
    _cohort_sheet,
    _idle_sheet,
    _ledger_sheet,
    _linkage_sheet,
    _summary_sheet,
)
from landquota.outputs.report_xlsx import HIGHLIGHT_FILL, _write_sheet
from landquota.store.chain import head_digest

# ReportSheet (what report_sheets returns) and HIGHLIGHT_FILL (the colour of highlighted
# rows) are defined with the tables and the workbook, and stay part of this module's API.
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


def _stamp(as_of: date) -> datetime:
    # ZIP dates hold the years 1980-2107 only; outside them, the nearest end of that range
    if as_of.year > 2107:
        return datetime(2107, 12, 31)
    return datetime(max(as_of.year, 1980), as_of.month, as_of.day)


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
