"""Supplied land from the land-market monitoring system (土地市场动态监测与监管系统).

Every supply of state land (出让 or 划拨) is registered in the Ministry's
land-market monitoring system under an electronic supervision number
(电子监管号), with the contract's dates: signing, agreed start and completion of
construction, actual start. A county bureau exports those records as a
spreadsheet (XLSX, or CSV). This module turns them into ``stock_land`` rows of
kind ``supplied``, with geometry joined by the supervision number from a layer of
supply boundaries (供地红线), or by a parcel number from a parcel layer, so that
idle-land review (R9–R12, ``landquota idle``) runs on the bureau's own records.

Column names are matched by :mod:`landquota.intake.fieldnames` (电子监管号,
合同签订日期, 合同约定开工时间, 实际开工时间, 成交价款 in 万元 …); a title row
above the header (the system's exports have one) is skipped. Rows already in
the workspace keep what the spreadsheet does not say (闲置原因, disposal case,
development ratios), so re-importing the records never erases a review.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from landquota.errors import ImportDataError, LandquotaError, ParameterError
from landquota.intake.convert import _iso_date
from landquota.intake.encodings import detect_encoding
from landquota.intake.fieldnames import match_fields, normalize
from landquota.intake.importer import prepare_import
from landquota.intake.load import Load, load_layers
from landquota.store.schema import layer
from landquota.store.workspace import Workspace, prepare_frame

__all__ = ["SUPPLY_COLUMNS", "SupplyReport", "import_supply", "read_supply_table"]

#: The monitoring system's columns that are read but not stored (the contract has no
#: column for them); the area (公顷) is compared with the geometry's.
SUPPLY_COLUMNS = {
    "key": ("电子监管号", "电子监管编号", "DZJGH"),
    "area_ha": ("面积", "供地面积", "面积(公顷)", "面积（公顷）", "出让面积", "总面积"),
    "name": ("项目名称",),
    "method": ("供地方式",),
}

#: 闲置原因 as the monitoring and idle-land systems write it.
_CAUSES = {"政府原因": "government", "政府": "government", "企业原因": "enterprise", "企业": "enterprise",
           "无": "none", "": "none"}

#: How far the stated area (面积, ha) may differ from the geometry's before a warning.
AREA_TOLERANCE = 0.01


@dataclass
class SupplyReport:
    """What ``import-supply`` did."""

    source: str
    geometry_source: str
    rows: int = 0  # supply records imported
    kept: int = 0  # stock rows already in the workspace, not in the records, kept as they were
    updated: int = 0  # records that updated a row already in the workspace
    field_map: dict[str, str] = field(default_factory=dict)
    not_stored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        """Return the bilingual summary the command prints."""
        lines = [
            f"已导入供地记录 imported {self.rows:,} supply records from {self.source!r} into "
            f"stock_land (geometry: {self.geometry_source}) in {self.seconds:.1f} s; "
            f"{self.updated:,} updated, {self.kept:,} other stock rows kept",
            "字段 fields: " + ", ".join(f"{k} → {v}" for k, v in self.field_map.items()),
        ]
        if self.not_stored:
            lines.append("未导入 not stored: " + ", ".join(self.not_stored))
        lines += [f"警告 warning: {w}" for w in self.warnings]
        return "\n".join(lines)


# --------------------------------------------------------------------------------------
# the spreadsheet
# --------------------------------------------------------------------------------------
def read_supply_table(path: str | Path, *, sheet: str | None = None, encoding: str | None = None) -> tuple[pd.DataFrame, int]:
    """Read the supply spreadsheet as text; return the table and the sheet row of its header.

    XLSX through openpyxl (the first sheet, or *sheet*), CSV with its encoding
    detected (UTF-8, else GB18030). The header is the first of the first ten rows
    that names a supervision number column (电子监管号); rows above it (a title)
    are skipped. Dates that the spreadsheet stores as dates come back as ISO text.
    """
    p = Path(path)
    if not p.exists():
        raise ImportDataError(f"supply records {str(p)!r} do not exist; check the path")
    suffix = p.suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        try:
            raw = pd.read_excel(p, sheet_name=sheet or 0, header=None, dtype=object, engine="openpyxl")
        except ValueError as exc:  # unknown sheet
            raise ImportDataError(f"{str(p)!r}: {exc}") from None
        except Exception as exc:  # zipfile.BadZipFile, openpyxl's own errors
            raise ImportDataError(f"{str(p)!r} is not a readable XLSX workbook ({exc})") from None
    elif suffix in (".csv", ".txt"):
        data = p.read_bytes().removeprefix(b"\xef\xbb\xbf")
        enc = encoding or detect_encoding([data])[0]
        raw = pd.read_csv(io.StringIO(data.decode(enc)), header=None, dtype=object, keep_default_na=False,
                          sep=None, engine="python")
    elif suffix == ".xls":
        raise ImportDataError(
            f"{str(p)!r} is an old Excel .xls workbook; save it as .xlsx (Excel or LibreOffice: "
            "`soffice --headless --convert-to xlsx FILE.xls`) or as CSV"
        )
    else:
        raise ImportDataError(f"{str(p)!r}: supply records must be an .xlsx workbook or a .csv file")
    keys = {normalize(k) for k in SUPPLY_COLUMNS["key"]}
    header = next(
        (i for i in range(min(10, len(raw))) if any(normalize(str(v)) in keys for v in raw.iloc[i] if v is not None)),
        None,
    )
    if header is None:
        raise ImportDataError(
            f"{str(p)!r}: no 电子监管号 (supervision number) column in its first 10 rows; the supply "
            "records of the land-market monitoring system identify every supply by it"
        )
    cols = [str(v).strip() if v is not None and str(v) != "nan" else f"column {j + 1}" for j, v in enumerate(raw.iloc[header])]
    table = raw.iloc[header + 1 :].copy()
    table.columns = cols
    table = table.map(_text)
    table = table[table.notna().any(axis=1)]  # blank rows at the end of a sheet
    return table, header + 1


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, pd.Timestamp | np.datetime64) or hasattr(v, "isoformat"):
        return str(pd.Timestamp(v).date())
    s = str(v).strip()
    return s or None


# --------------------------------------------------------------------------------------
# the import
# --------------------------------------------------------------------------------------
def import_supply(
    src: str | Path,
    ws: Workspace,
    *,
    geometry: str | Path,
    key: str | None = None,
    geometry_key: str | None = None,
    geometry_layer: str | None = None,
    sheet: str | None = None,
    encoding: str | None = None,
    crs: Any = None,
) -> SupplyReport:
    """Import supply records into ``stock_land`` (kind ``supplied``), in one transaction.

    Parameters
    ----------
    src : path
        The monitoring system's supply spreadsheet (``.xlsx``) or a CSV of it.
    ws : Workspace
        The workspace.
    geometry : path or ``'parcels'``
        Where the land's shape comes from: a polygon layer (shapefile,
        GeoPackage, FileGDB, VCT …) of supply boundaries, or ``'parcels'`` for
        the workspace's survey patches.
    key : str, optional
        The spreadsheet column that joins to the geometry; default the
        supervision number (电子监管号). Also the stock id's source when it is
        the supervision number; otherwise the stock id stays 电子监管号 and *key*
        only joins (e.g. 宗地编号 against a parcel layer).
    geometry_key : str, optional
        The geometry layer's field holding *key*; default the field of the same
        name or standard alias (电子监管号/DZJGH), or ``parcel_id`` for
        ``'parcels'``. Several features with one key are dissolved.
    geometry_layer, sheet, encoding, crs : optional
        The layer of a multi-layer geometry source, the workbook's sheet, the
        text encoding, the CRS of a geometry source that has none.

    Returns
    -------
    SupplyReport

    Raises
    ------
    ImportDataError
        Unreadable records, a missing column, an undated or malformed value (the
        message names the spreadsheet row and column), a record whose key has no
        geometry, duplicate supervision numbers. The workspace is then unchanged.
    """
    t0 = time.perf_counter()
    table, header_row = read_supply_table(src, sheet=sheet, encoding=encoding)
    rep = SupplyReport(source=str(src), geometry_source=str(geometry))
    cols = list(table.columns)
    m = match_fields("stock_land", cols)
    colmap = {f: c for f, (c, _u) in m.columns.items()}
    units = {f: u for f, (_c, u) in m.columns.items()}
    id_src = next((f for f, c in colmap.items() if c == "stock_id"), None)
    if id_src is None:  # pragma: no cover - read_supply_table found the header by it
        raise ImportDataError(f"{src!s}: no 电子监管号 column")
    extra = {name: next((c for c in cols if normalize(c) in {normalize(a) for a in names}), None)
             for name, names in SUPPLY_COLUMNS.items() if name != "key"}
    rep.field_map = dict(colmap)
    rep.not_stored = [c for c in cols if c not in colmap and not c.startswith("column ")]
    rows = np.arange(len(table)) + header_row + 1  # spreadsheet row numbers (1-based)
    where = f"{str(src)!r}"

    # --- values ----------------------------------------------------------------------------
    ids = table[id_src]
    if ids.isna().any():
        r = rows[ids.isna().to_numpy()][:5].tolist()
        raise ImportDataError(f"{where}: row(s) {r} have no 电子监管号 (column {id_src!r}); fill it in")
    dup = ids[ids.duplicated(keep=False)]
    if len(dup):
        i = np.flatnonzero(ids.duplicated(keep=False).to_numpy())[:2]
        raise ImportDataError(
            f"{where}: 电子监管号 {dup.iloc[0]!r} appears in rows {rows[i[0]]} and {rows[i[1]]}; one row per supply"
        )
    lyr = layer("stock_land")
    out = pd.DataFrame({"stock_id": ids.astype(str).to_numpy()})
    for f, c in colmap.items():
        if c == "stock_id":
            continue
        col = lyr.column(c)
        s = table[f].reset_index(drop=True)
        if col.type == "date":
            out[c] = _dates(s, f, where, rows)
        elif col.type == "real":
            out[c] = _numbers(s, f, where, rows) * units[f]
        elif c == "cause":
            out[c] = _causes(s, f, where, rows)
        else:
            out[c] = s.to_numpy()
    out["kind"] = "supplied"  # every record of the system is a supply
    for code_col in ("cause", "disposal_status", "disposal_method"):
        # not in the records: undetermined cause, no disposal case (a row already in
        # the workspace keeps its own, see _merge)
        out[code_col] = out[code_col].fillna("none") if code_col in out.columns else None

    # --- geometry --------------------------------------------------------------------------
    join_col = key or id_src
    if join_col not in table.columns:
        raise ImportDataError(f"{where}: no column {join_col!r} to join the geometry by; its columns are {', '.join(cols)}")
    join = table[join_col].astype(str).str.strip().reset_index(drop=True)
    shapes = _geometries(geometry, ws, geometry_key=geometry_key, key_name=join_col,
                         src_layer=geometry_layer, encoding=encoding, crs=crs)
    missing = ~join.isin(shapes.index)
    if missing.any():
        r = rows[missing.to_numpy()][:5].tolist()
        vals = join[missing].tolist()[:5]
        raise ImportDataError(
            f"{where}: {int(missing.sum())} record(s) have no geometry in {str(geometry)!r}: {join_col} "
            f"{vals} ({'row' if len(r) == 1 else 'rows'} {', '.join(map(str, r))}); add their "
            "boundaries, or give the right --key / --geometry-key. "
            "Nothing was imported."
        )
    geoms = shapes.reindex(join).to_numpy()
    frame = gpd.GeoDataFrame(out, geometry=list(geoms), crs=4490)
    area_col = extra.get("area_ha")
    if area_col is not None:
        _check_areas(frame, table[area_col].reset_index(drop=True), area_col, rows, rep)

    # --- merge with what the workspace holds ---------------------------------------------
    frame = _merge(frame, ws, rep)
    prepared = prepare_frame(lyr, frame, source=str(src))
    meta = json.dumps({"source": str(src), "geometry": str(geometry), "rows": rep.rows, "mode": "supply-merge",
                       "at": pd.Timestamp.now(tz="UTC").isoformat()}, ensure_ascii=False, sort_keys=True)
    before = len(ws.read_layer("stock_land"))

    def check(removed: int) -> None:
        if len(prepared) < removed:  # pragma: no cover - the merge keeps every existing row
            raise ImportDataError(f"{where}: stock_land would shrink from {removed} to {len(prepared)} rows")

    load_layers(ws, [Load(lyr, iter([(prepared, None)]), lambda: meta, str(src), "replace", len(prepared),
                          check=check)])
    rep.kept = before - rep.updated
    rep.seconds = time.perf_counter() - t0
    return rep


def _dates(s: pd.Series, name: str, where: str, rows: Any) -> pd.Series:
    txt = s.map(_iso_date)
    when = pd.to_datetime(txt, errors="coerce", format="ISO8601")
    bad = when.isna() & txt.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ImportDataError(
            f"{where}: row {rows[i]}, column {name!r}: {s.iloc[i]!r} is not a date (2014-01-15, "
            "2014/1/15, 20140115 or 2014年1月15日); fix the value"
        )
    return when.dt.normalize()


def _numbers(s: pd.Series, name: str, where: str, rows: Any) -> pd.Series:
    clean = s.map(lambda v: v.replace(",", "") if isinstance(v, str) else v)
    v = pd.to_numeric(clean, errors="coerce").astype("float64")
    bad = v.isna() & clean.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ImportDataError(f"{where}: row {rows[i]}, column {name!r}: {s.iloc[i]!r} is not a number; fix the value")
    return v


def _causes(s: pd.Series, name: str, where: str, rows: Any) -> pd.Series:
    v = s.fillna("").map(lambda x: _CAUSES.get(str(x).strip(), str(x).strip()))
    bad = ~v.isin(["government", "enterprise", "none"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ImportDataError(
            f"{where}: row {rows[i]}, column {name!r}: {s.iloc[i]!r} is not a cause of idleness; use "
            "政府原因, 企业原因 or leave it empty (R11)"
        )
    return v


def _geometries(
    geometry: str | Path, ws: Workspace, *, geometry_key: str | None, key_name: str,
    src_layer: str | None, encoding: str | None, crs: Any,
) -> pd.Series:
    """Key -> one (Multi)Polygon in EPSG:4490, features with one key dissolved."""
    if str(geometry) == "parcels":
        g = ws.read_layer("parcels")
        keycol = geometry_key or "parcel_id"
        if keycol not in g.columns:
            raise ParameterError(f"--geometry-key {keycol!r}: the parcels layer has {', '.join(g.columns)}")
        keys, geoms = g[keycol].astype(str), np.asarray(g.geometry.values, dtype=object)
    else:
        # The boundaries go through the import pipeline (encodings, field names, CRS,
        # repairs), read as stock_land rows with their row numbers as ids.
        probe = prepare_import(geometry, ws, layer="stock_land", src_layer=src_layer, encoding=encoding,
                               crs=crs, row_ids=True, mapping={"defaults": {"kind": "supplied", "cause": "none"}})
        fields = list(probe.report.field_map) + probe.report.ignored_fields
        if geometry_key is None:
            wanted = {normalize(key_name)} | (
                {normalize(a) for a in SUPPLY_COLUMNS["key"]} if normalize(key_name) in
                {normalize(a) for a in SUPPLY_COLUMNS["key"]} else set()
            )
            geometry_key = next((f for f in fields if normalize(f) in wanted), None)
        if geometry_key is None or geometry_key not in fields:
            raise ImportDataError(
                f"{str(geometry)!r} has no field {geometry_key or key_name!r} to join the records by; its "
                f"fields are {', '.join(fields)}. Name it with --geometry-key"
            )
        try:
            prep = prepare_import(geometry, ws, layer="stock_land", src_layer=src_layer, encoding=encoding,
                                  crs=crs, row_ids=True,
                                  mapping={"fields": {geometry_key: "approval_batch"},
                                           "defaults": {"kind": "supplied", "cause": "none"}})
            g = prep.collect()
        except LandquotaError as exc:
            raise ImportDataError(f"supply boundaries {str(geometry)!r}: {exc}") from exc
        keys, geoms = g["approval_batch"].astype(str).str.strip(), np.asarray(g.geometry.values, dtype=object)
    by: dict[str, list[Any]] = {}
    for k, geom in zip(keys, geoms, strict=True):
        if geom is not None:
            by.setdefault(k, []).append(geom)
    return pd.Series(
        {k: _multi(v[0] if len(v) == 1 else shapely.union_all(v)) for k, v in by.items()}, dtype=object
    )


def _multi(g: Any) -> Any:
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) == 3]
    return shapely.MultiPolygon(parts)


def _check_areas(frame: gpd.GeoDataFrame, stated: pd.Series, name: str, rows: Any, rep: SupplyReport) -> None:
    from landquota.rules.areas import ellipsoidal_area

    ha = pd.to_numeric(stated.map(lambda v: v.replace(",", "") if isinstance(v, str) else v), errors="coerce")
    area = np.asarray(ellipsoidal_area(frame.geometry), dtype=float) / 10_000.0
    off = ha.notna().to_numpy() & (np.abs(area - ha.to_numpy()) > AREA_TOLERANCE * np.maximum(ha.to_numpy(), 1e-9))
    if off.any():
        i = int(np.flatnonzero(off)[0])
        rep.warnings.append(
            f"{int(off.sum())} record(s) state an area ({name}, ha) that differs from their geometry's "
            f"by more than {AREA_TOLERANCE:.0%} (e.g. row {rows[i]}: {ha.iloc[i]:g} ha stated, "
            f"{area[i]:.4f} ha drawn); the geometry's area is used (R1)"
        )


#: Columns a supply record never carries: a row already in the workspace keeps its own.
_REVIEW_COLUMNS = ("town", "approval_batch", "approval_date", "developed_ratio", "invested_ratio",
                   "suspended_since", "cause", "disposal_status", "disposal_method", "disposal_date", "land_used")


def _merge(frame: gpd.GeoDataFrame, ws: Workspace, rep: SupplyReport) -> gpd.GeoDataFrame:
    old = ws.read_layer("stock_land")
    rep.rows = len(frame)
    if not len(old):
        for col in ("cause", "disposal_status", "disposal_method"):
            frame[col] = frame[col].fillna("none")
        return frame
    old = old.set_index("stock_id", drop=False)
    hit = frame["stock_id"].isin(old.index)
    rep.updated = int(hit.sum())
    for col in _REVIEW_COLUMNS:
        prev = frame["stock_id"].map(old[col]) if col in old.columns else None
        if prev is None:
            continue
        if col not in frame.columns:
            frame[col] = prev.where(hit, None)
        else:
            frame[col] = frame[col].where(frame[col].notna() | ~hit, prev)
    for col in ("cause", "disposal_status", "disposal_method"):
        frame[col] = frame[col].fillna("none")
    kept = old[~old.index.isin(frame["stock_id"])].reset_index(drop=True)
    if hit.any() and (old.loc[frame["stock_id"][hit], "kind"] != "supplied").any():
        rep.warnings.append("records for stock rows held as approved_unsupplied now make them supplied")
    merged = pd.concat([kept, frame], ignore_index=True)
    return gpd.GeoDataFrame(merged, geometry="geometry", crs=4490)
