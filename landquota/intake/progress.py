"""Import the key projects' monthly returns (月报) from a spreadsheet (issue 14, R17).

The county's return form has one row per project; the columns may carry the
English contract names or the Chinese headings of the form:

=====================  =============================================================
column                 headings accepted
=====================  =============================================================
``project_id``         项目编号, 项目代码, 编号
``month``              月份, 填报月份 (``YYYY-MM``; or give ``--month`` for the file)
``completed_yuan``     累计完成投资（元）, 累计完成投资(元), 累计完成投资
``completed_wan``      累计完成投资（万元）, 累计完成投资(万元) (× 10,000 yuan)
``land_status``        用地情况, 用地进展
``problems``           存在问题, 问题
``measures``           下步措施, 措施, 解决措施
=====================  =============================================================

The import is all or nothing: every row is checked first (known project, month,
a number ≥ 0, cumulative figures that never fall within a year) and the returns
are then written in one transaction. A return for a project and month already
in the workspace is replaced (a corrected return), all others are kept.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from landquota.errors import DataError, ParameterError
from landquota.rules.progress import check_progress, parse_month

if TYPE_CHECKING:
    from landquota.store.workspace import Workspace

__all__ = ["HEADINGS", "import_returns", "read_returns"]

#: Headings accepted for each column (lower-cased English names are accepted too).
HEADINGS: dict[str, tuple[str, ...]] = {
    "project_id": ("project_id", "项目编号", "项目代码", "编号"),
    "month": ("month", "月份", "填报月份"),
    "completed_yuan": ("completed_yuan", "累计完成投资（元）", "累计完成投资(元)", "累计完成投资"),
    "completed_wan": ("completed_wan", "累计完成投资（万元）", "累计完成投资(万元)"),
    "land_status": ("land_status", "用地情况", "用地进展"),
    "problems": ("problems", "存在问题", "问题"),
    "measures": ("measures", "下步措施", "措施", "解决措施"),
}


def _read_table(path: Path, sheet: str | None) -> pd.DataFrame:
    if not path.exists():
        raise ParameterError(f"returns file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        import zipfile

        # An .xlsx is a zip archive; anything else (an old .xls renamed, a web page saved
        # as .xlsx, a file cut short) would get pandas' "specify an engine" message.
        if not zipfile.is_zipfile(path):
            raise ParameterError(
                f"{str(path)!r} is not an Excel workbook (.xlsx) or is damaged; save the form "
                "again from Excel or WPS as .xlsx, or as .csv (UTF-8)"
            )
        try:
            return pd.read_excel(path, sheet_name=sheet or 0, dtype=object)
        except ValueError as exc:
            raise ParameterError(f"{str(path)!r}: {exc}; name the sheet with --sheet") from exc
    if suffix == ".csv":
        for enc in ("utf-8-sig", "gb18030"):  # Excel in China saves CSV as GBK
            try:
                return pd.read_csv(path, dtype=object, encoding=enc)
            except UnicodeDecodeError:
                continue
        raise DataError(f"{str(path)!r} is neither UTF-8 nor GB18030 text")
    raise ParameterError(
        f"returns file {str(path)!r}: use .xlsx or .csv (got {suffix or 'no suffix'})"
    )


def read_returns(
    path: str | Path, *, month: str | None = None, sheet: str | None = None
) -> pd.DataFrame:
    """Read a return form into ``project_progress`` rows (not yet checked against projects).

    Parameters
    ----------
    path : str or Path
        ``.xlsx`` or ``.csv`` (UTF-8 or GB18030).
    month : str, optional
        ``YYYY-MM`` of every row, for a form without a month column; when both
        are given they must agree.
    sheet : str, optional
        Sheet of a workbook (default: the first).

    Raises
    ------
    DataError
        A missing column, a bad month or amount; the message names the file,
        the row (as numbered in the spreadsheet, the heading being row 1) and
        the fix.
    """
    p = Path(path)
    raw = _read_table(p, sheet)
    lookup = {h.strip().lower(): col for col, hs in HEADINGS.items() for h in hs}
    found: dict[str, str] = {}
    for h in raw.columns:
        col = lookup.get(str(h).strip().lower())
        if col is not None and col not in found:
            found[col] = str(h)
    money = "completed_yuan" if "completed_yuan" in found else "completed_wan"
    missing = [c for c in ("project_id", money) if c not in found]
    if "month" not in found and month is None:
        missing.append("month")
    if missing:
        raise DataError(
            f"{str(p)!r}: no column for {', '.join(missing)}; headings found: "
            f"{', '.join(map(str, raw.columns))}. Name them as in docs/pipeline.md "
            "(e.g. 项目编号, 月份, 累计完成投资（元）) or give --month for the whole file"
        )
    want = parse_month(month) if month is not None else None
    rows: list[dict[str, Any]] = []
    for i, r in enumerate(raw.to_dict("records"), start=2):
        pid = r[found["project_id"]]
        if pid is None or (isinstance(pid, float) and math.isnan(pid)) or not str(pid).strip():
            continue  # blank line of the form
        pid = str(pid).strip()
        m = r.get(found["month"]) if "month" in found else None
        if m is None or (isinstance(m, float) and math.isnan(m)):
            if month is None:
                raise DataError(f"{str(p)!r} row {i} ({pid}): the month is empty; give YYYY-MM")
            m = month
        if isinstance(m, pd.Timestamp):
            m = f"{m.year:04d}-{m.month:02d}"  # Excel turned 2014-04 into a date
        m = str(m).strip()[:7]
        try:
            got = parse_month(m)
        except ParameterError:
            raise DataError(f"{str(p)!r} row {i} ({pid}): month {m!r}; give YYYY-MM") from None
        if want is not None and got != want:
            raise DataError(
                f"{str(p)!r} row {i} ({pid}): month {m} differs from --month {month}; "
                "import each month's form with its own --month"
            )
        v = r[found[money]]
        try:
            amount = float(str(v).replace(",", "").strip())
        except ValueError:
            amount = float("nan")
        if not math.isfinite(amount) or amount < 0:
            raise DataError(
                f"{str(p)!r} row {i} ({pid}): {found[money]} = {v!r}; give the cumulative "
                "investment of the year as a number >= 0"
            )
        if money == "completed_wan":
            amount *= 10_000.0
        rec = {
            "progress_id": f"{pid}:{m}",
            "project_id": pid,
            "month": m,
            "completed_yuan": amount,
        }
        for col in ("land_status", "problems", "measures"):
            val = r.get(found[col]) if col in found else None
            text = None if val is None or (isinstance(val, float) and math.isnan(val)) else str(val)
            rec[col] = text.strip() if text else None
        rows.append(rec)
    if not rows:
        raise DataError(f"{str(p)!r} holds no return (no row with a project id)")
    return pd.DataFrame(rows)


def import_returns(
    ws: Workspace, path: str | Path, *, month: str | None = None, sheet: str | None = None
) -> pd.DataFrame:
    """Check and write a return form into ``project_progress`` in one transaction.

    Returns
    -------
    pandas.DataFrame
        The rows imported.

    Raises
    ------
    DataError
        Unknown projects (the message lists them), a project twice for one
        month, a cumulative figure below an earlier month's (R17: the figures
        are cumulative from 1 January), or any error of :func:`read_returns`.
        Nothing is written then.
    """
    new = read_returns(path, month=month, sheet=sheet)
    known = set(ws.read_layer("projects", columns=["project_id"])["project_id"])
    unknown = sorted(set(new["project_id"]) - known)
    if unknown:
        raise DataError(
            f"{str(path)!r}: project(s) {unknown[:5]} are not in the workspace; check the ids "
            "(项目编号) against `landquota report` or import the projects first"
        )
    old = ws.read_layer("project_progress")
    keep = old[~old["progress_id"].isin(new["progress_id"])]
    both = pd.concat([keep, new], ignore_index=True) if len(keep) else new
    check_progress(both)
    ws.write_layers({"project_progress": both}, mode="replace")
    return new
