"""What the report modules share: the sheet type, the table builder, labels, the file write.

:class:`ReportSheet` is one table of the report as shown (Chinese/English headers, codes
replaced by their names, a format per column); :func:`_table` builds one from a frame and
its column specs (:class:`_C`), an ``area`` column becoming m², ha and mu. Used by
:mod:`landquota.outputs.report_sheets` (the tables), :mod:`landquota.outputs.report_xlsx`
and :mod:`landquota.outputs.report_charts` (the workbook and the charts) and
:mod:`landquota.outputs.reports` (the entry points, the CSV output).
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

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
    label_map,
    reason_label,
)
from landquota.rules.areas import m2_to_ha, m2_to_mu
from landquota.rules.bulletin import Bulletin
from landquota.store.schema import CRS_EPSG

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


@dataclass(frozen=True)
class _Report:
    sheets: list[ReportSheet]
    ledger: pd.DataFrame
    bulletin: Bulletin | None


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
