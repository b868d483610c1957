"""Deterministic XLSX bytes: the same tables give the same file, byte for byte."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Mapping
from datetime import datetime

import pandas as pd

__all__ = ["frames_to_xlsx", "normalise_xlsx"]

#: Stamp of workbooks that have no natural date (the epoch of zip files).
FIXED_STAMP = datetime(1980, 1, 1)


def normalise_xlsx(raw: bytes, stamp: datetime) -> bytes:
    """Rewrite the workbook zip with fixed entry dates and fixed core properties.

    openpyxl stamps ``dcterms:modified`` with the time of saving and the zip
    entries with the current time; both are replaced by *stamp* so that the
    same inputs give byte-identical files.
    """
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    date_time = (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute, stamp.second)
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(raw)) as src,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst,
    ):
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename == "docProps/core.xml":
                data = re.sub(
                    rb"(<dcterms:(created|modified)\b[^>]*>)[^<]*(</dcterms:\2>)",
                    lambda m: m.group(1) + iso + m.group(3),
                    data,
                )
            zi = zipfile.ZipInfo(info.filename, date_time=date_time)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.create_system = 0
            zi.external_attr = 0
            dst.writestr(zi, data, compresslevel=6)
    return out.getvalue()


def frames_to_xlsx(
    frames: Mapping[str, pd.DataFrame],
    *,
    stamp: datetime = FIXED_STAMP,
    formats: Mapping[str, Mapping[str, str]] | None = None,
) -> bytes:
    """One sheet per frame, header row bold and frozen; deterministic bytes.

    *formats* maps a sheet to ``{column: Excel number format}``: display only, the
    cells keep the exact values.
    """
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    wb.remove(wb.active)
    for name, df in frames.items():
        ws = wb.create_sheet(title=name[:31])
        ws.append([str(c) for c in df.columns])
        for cell in ws[1]:
            cell.font = Font(bold=True)
        for row in df.itertuples(index=False):
            ws.append([None if _missing(v) else v for v in row])
        for col, fmt in (formats or {}).get(name, {}).items():
            if col in df.columns:
                k = list(df.columns).index(col) + 1
                for (cell,) in ws.iter_rows(min_row=2, min_col=k, max_col=k):
                    cell.number_format = fmt
        ws.freeze_panes = "A2"
    wb.properties.creator = "landquota"
    raw = io.BytesIO()
    wb.save(raw)
    return normalise_xlsx(raw.getvalue(), stamp)


def _missing(v: object) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and v != v)
